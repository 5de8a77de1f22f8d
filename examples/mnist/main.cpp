// xcnn-mnist: train and evaluate a CNN on MNIST-format data (MNIST, Fashion-MNIST, ...).
//
//   xcnn-mnist --data data/mnist                       # LeNet, the default recipe
//   xcnn-mnist --data /usr/share/datasets/fashion-mnist # Fashion-MNIST (Debian: dataset-fashion-mnist)
//   xcnn-mnist --data DIR --model seed --epochs 3 --lr 0.01 --log run.csv --save model.xcnn
//   xcnn-mnist --data DIR --load model.xcnn --eval-only   # any model file, whatever --model saved it
//   xcnn-mnist --data DIR --checkpoint run.ckpt ...     # interrupted? continue bit for bit:
//   xcnn-mnist --data DIR --checkpoint run.ckpt --resume run.ckpt ...
//   mpirun -np 2 xcnn-mnist --distributed --data DIR ...  # data-parallel (distributed.hpp)
//   xcnn-mnist --data DIR --optimizer adamw --schedule onecycle --lr 0.003
//
// Run with --help for every option. Exit status: 0 success, 1 a runtime error (invalid or
// missing data files, a model file that does not fit, a diverged run), 2 invalid arguments,
// including a --data directory or --load file that does not exist.
#include "distributed.hpp"
#include "models.hpp"

#include <xcnn/core/threading.hpp>
#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(_WIN32)
#include <io.h>
#define XCNN_ISATTY(fd) _isatty(fd)
#else
#include <unistd.h>
#define XCNN_ISATTY(fd) isatty(fd)
#endif

namespace
{

constexpr std::size_t classes = 10;
constexpr std::size_t image_size = 28;

// The default recipe (no --lr given): SGD with momentum 0.9 and weight decay 5e-4, batch 64,
// 10 epochs, the learning rate warmed up linearly from 0 to 0.05 over the first half epoch and
// then decayed to 0 along a cosine, per step. With --lr X the learning rate is X, constant, and
// there is no weight decay: a plain PyTorch training loop.
constexpr int default_epochs = 10;
constexpr std::size_t default_batch = 64;
constexpr double default_peak_lr = 0.05;
constexpr double default_warmup_epochs = 0.5;
constexpr double default_momentum = 0.9;
constexpr double default_weight_decay = 5e-4;
// --model resnet's default recipe (without --lr, --optimizer and --schedule): what fits a
// BatchNorm ResNet, as benchmarks/fashion_pytorch.py trains the same network in PyTorch.
constexpr std::size_t resnet_batch = 128;
constexpr double resnet_peak_lr = 0.2;
// Test images per evaluation batch: memory for one batch's activations, not the test set's.
constexpr std::size_t evaluation_batch = 500;

// With --optimizer adam or adamw and no --lr: PyTorch's default rate (AdamW's weight decay is
// PyTorch's default 1e-2, Adam has none). --schedule step decays the rate by 0.7 every epoch
// (PyTorch's MNIST example); cosine and onecycle span all epochs, onecycle peaking at the rate.
constexpr double default_adam_lr = 1e-3;
constexpr double step_schedule_gamma = 0.7;

const char* const usage_text = R"(usage: xcnn-mnist [options]

Trains a CNN on MNIST-format data and evaluates it on the test set after every epoch.

  --data DIR         directory with train-images-idx3-ubyte, train-labels-idx1-ubyte,
                     t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each raw or .gz)
                     [data/mnist]. Fashion-MNIST has the same files: on Debian,
                     apt install dataset-fashion-mnist, then
                     --data /usr/share/datasets/fashion-mnist
  --model NAME       lenet: LeNet-5 with ReLU (Conv 6@5x5 pad 2, pool, Conv 16@5x5, pool,
                            Dense 120, 84, 10)
                     seed:  Conv 8@3x3 pad 1, Conv 16@3x3 pad 1, Dense 10
                     resnet: Conv 32@3x3, BN, pool, 3 residual blocks (32, 64 stride 2,
                            64 channels), global average pool, Dense 10; its own
                            default recipe: batch 128, 10 epochs, SGD with Nesterov
                            momentum 0.9, weight decay 5e-4, --schedule onecycle
                            peaking at 0.2 (93 % on Fashion-MNIST)   [lenet]
  --epochs N         passes over the training set [10]
  --batch-size N     images per SGD step [64; resnet: 128]
  --lr X             constant learning rate X, no weight decay; without --lr: the
                     default recipe, warm-up to 0.05 over half an epoch, cosine decay to
                     0, weight decay 5e-4
  --momentum X       SGD momentum in [0, 1) [0.9]
  --optimizer NAME   sgd, adam or adamw (PyTorch's defaults; adamw: weight decay 1e-2)
                     [sgd]; adam and adamw run at --lr or 0.001, constant unless
                     --schedule says otherwise
  --schedule NAME    the learning rate over the run instead of the default recipe:
                     none (constant), step (x0.7 every epoch), cosine (cosine decay
                     to 0 over all epochs), onecycle (1cycle peaking at the rate);
                     the rate is --lr or the optimizer's default
  --seed N           seed of the initial weights and of the shuffling [1]
  --threads N        threads for xcnn's kernels, 0 = one per hardware thread
                     [XCNN_NUM_THREADS or 1]
  --save FILE        save the model to FILE after every epoch (atomically)
  --load FILE        start from the model in FILE (saved with --save): the network
                     the file describes, whatever --model saved it (a file of
                     xcnn 0.1, which does not describe it: the same --model)
  --eval-only        only evaluate the model loaded with --load on the test set
  --export-onnx FILE write the model to FILE as ONNX (opset 13, for ONNX Runtime; see
                     docs/onnx.md) after the last epoch, or with --eval-only after
                     evaluating it
  --checkpoint FILE  save a checkpoint to FILE after every epoch (atomically): the model,
                     the optimizer's state and the run's progress, for --resume
  --checkpoint-every N
                     also save the checkpoint every N training steps
  --resume FILE      continue the run saved in the checkpoint FILE, with the same --model,
                     --batch-size, --lr, --momentum, --optimizer, --schedule, --seed
                     and (with the default recipe, cosine or onecycle) --epochs:
                     the weights end bit-identical to those of an uninterrupted run
  --stop-after N     stop after N training steps of this run, saving the checkpoint
                     first (a time-boxed part of a longer run; needs --checkpoint)
  --log CSV          write epoch,train_loss,test_loss,test_accuracy,seconds per epoch
                     (accuracy a fraction in [0, 1], seconds the epoch's wall time)
  --distributed      data-parallel training over MPI: run with mpirun -np N; each
                     --batch-size batch is split across the N ranks (docs/distributed.md)
  -h, --help         show this help

Exit status: 0 success, 1 runtime error (data, model file), 2 invalid arguments
(including a --data directory or --load file that does not exist).
)";

struct usage_error : std::runtime_error
{
    using std::runtime_error::runtime_error;
};

struct options
{
    std::string data = "data/mnist";
    std::string model = "lenet";
    bool model_given = false;
    std::string model_file; // --load's file, when the network is the one it describes
    int epochs = default_epochs;
    std::size_t batch_size = default_batch;
    bool lr_given = false;
    double lr = default_peak_lr;
    double momentum = default_momentum;
    bool momentum_given = false;
    std::string optimizer = "sgd";
    std::string schedule; // empty: not given
    bool batch_given = false;
    bool resnet_recipe = false; // --model resnet's recipe: Nesterov SGD, weight decay, 1cycle
    std::uint32_t seed = 1;
    bool threads_given = false;
    std::size_t threads = 1;
    std::string save, load, log;
    std::string export_onnx;
    std::string checkpoint, resume;
    std::size_t checkpoint_every = 0; // 0: only at the end of every epoch
    std::size_t stop_after = 0;       // 0: never
    bool eval_only = false;
    bool distributed = false;
    bool help = false;
    std::vector<std::string> training_options; // given options that only matter when training
};

/// Checks the paths before anything runs, so a typo is a usage error (exit status 2) rather than
/// a failure after the data has been loaded or, for --save, after the first epoch.
void check_paths(const options& o)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto quoted = [](const std::string& option, const std::string& path)
    {
        return option + " '" + path + "'";
    };
    if (!fs::exists(o.data, ec))
    {
        throw usage_error(quoted("--data", o.data) + ": no such directory");
    }
    if (!fs::is_directory(o.data, ec))
    {
        throw usage_error(quoted("--data", o.data) + " is not a directory");
    }
    fs::directory_iterator listing(o.data, ec);
    if (ec)
    {
        throw usage_error(quoted("--data", o.data) + ": cannot read the directory (" + ec.message() + ")");
    }
    if (!o.load.empty())
    {
        if (!fs::exists(o.load, ec))
        {
            throw usage_error(quoted("--load", o.load) + ": no such file");
        }
        if (fs::is_directory(o.load, ec))
        {
            throw usage_error(quoted("--load", o.load) + " is a directory, not a model file");
        }
        if (!std::ifstream(o.load, std::ios::binary))
        {
            throw usage_error(quoted("--load", o.load) + ": cannot open the file for reading");
        }
    }
    if (!o.resume.empty() && !fs::is_regular_file(o.resume, ec))
    {
        throw usage_error(quoted("--resume", o.resume) +
                          (fs::exists(o.resume, ec) ? " is not a checkpoint file" : ": no such file"));
    }
    const std::pair<const char*, const std::string*> outputs[] = {
        {"--save", &o.save}, {"--log", &o.log}, {"--checkpoint", &o.checkpoint}, {"--export-onnx", &o.export_onnx}};
    for (const auto& [option, path] : outputs)
    {
        if (path->empty())
        {
            continue;
        }
        if (fs::is_directory(*path, ec))
        {
            throw usage_error(quoted(option, *path) + " is a directory, not a file");
        }
        const fs::path parent = fs::path(*path).parent_path();
        if (!parent.empty() && !fs::is_directory(parent, ec))
        {
            throw usage_error(quoted(option, *path) + ": the directory '" + parent.string() + "' does not exist");
        }
    }
}

unsigned long long parse_unsigned(const std::string& option, const std::string& value, unsigned long long max)
{
    std::size_t used = 0;
    unsigned long long v = 0;
    try
    {
        // std::stoull skips leading blanks and accepts a sign (wrapping "-3" to 2^64 - 3).
        if (value.empty() || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        {
            throw std::invalid_argument(value);
        }
        v = std::stoull(value, &used, 10);
    }
    catch (const std::exception&)
    {
        throw usage_error(option + " expects a non-negative integer, got '" + value + "'");
    }
    if (used != value.size())
    {
        throw usage_error(option + " expects a non-negative integer, got '" + value + "'");
    }
    if (v > max)
    {
        throw usage_error(option + " must be at most " + std::to_string(max) + ", got " + value);
    }
    return v;
}

double parse_double(const std::string& option, const std::string& value)
{
    std::size_t used = 0;
    double v = 0;
    try
    {
        // std::stod skips leading blanks; a value of " 0.1" is a quoting mistake.
        if (value.empty() || std::isspace(static_cast<unsigned char>(value[0])))
        {
            throw std::invalid_argument(value);
        }
        v = std::stod(value, &used);
    }
    catch (const std::exception&)
    {
        throw usage_error(option + " expects a number, got '" + value + "'");
    }
    if (used != value.size() || !std::isfinite(v))
    {
        throw usage_error(option + " expects a finite number, got '" + value + "'");
    }
    return v;
}

options parse_arguments(int argc, char** argv)
{
    options o;
    for (int i = 1; i < argc; ++i)
    {
        std::string arg = argv[i];
        std::string value;
        bool has_inline_value = false;
        if (arg.rfind("--", 0) == 0)
        {
            const auto eq = arg.find('=');
            if (eq != std::string::npos)
            {
                value = arg.substr(eq + 1);
                arg = arg.substr(0, eq);
                has_inline_value = true;
            }
        }
        auto next = [&]() -> std::string
        {
            if (has_inline_value)
            {
                return value;
            }
            if (i + 1 >= argc)
            {
                throw usage_error(arg + " needs a value");
            }
            return argv[++i];
        };
        auto no_value = [&]
        {
            if (has_inline_value)
            {
                throw usage_error(arg + " takes no value");
            }
        };
        if (arg == "-h" || arg == "--help")
        {
            no_value();
            o.help = true;
        }
        else if (arg == "--data")
        {
            o.data = next();
            if (o.data.empty())
            {
                throw usage_error("--data needs a directory");
            }
        }
        else if (arg == "--model")
        {
            o.model = next();
            o.model_given = true;
            if (o.model != "lenet" && o.model != "seed" && o.model != "resnet")
            {
                throw usage_error("--model must be lenet, seed or resnet, got '" + o.model + "'");
            }
        }
        else if (arg == "--epochs")
        {
            const std::string value = next();
            o.epochs = static_cast<int>(parse_unsigned(arg, value, 1000000));
            o.training_options.push_back(arg);
            if (o.epochs < 1)
            {
                throw usage_error("--epochs must be at least 1, got " + value);
            }
        }
        else if (arg == "--batch-size")
        {
            const std::string value = next();
            o.batch_size = static_cast<std::size_t>(parse_unsigned(arg, value, 1u << 20));
            o.batch_given = true;
            o.training_options.push_back(arg);
            if (o.batch_size < 1)
            {
                throw usage_error("--batch-size must be at least 1, got " + value);
            }
        }
        else if (arg == "--lr")
        {
            const std::string value = next();
            o.lr = parse_double(arg, value);
            o.lr_given = true;
            o.training_options.push_back(arg);
            if (!(o.lr > 0))
            {
                throw usage_error("--lr must be positive, got " + value);
            }
            // The optimizer runs in float: a larger value would not convert (undefined behaviour),
            // a smaller one would round to a learning rate of 0.
            if (o.lr > std::numeric_limits<float>::max() || static_cast<float>(o.lr) == 0.0f)
            {
                throw usage_error("--lr must lie within float's range (1e-45 to 3.4e38), got " + value);
            }
        }
        else if (arg == "--momentum")
        {
            const std::string value = next();
            o.momentum = parse_double(arg, value);
            o.momentum_given = true;
            o.training_options.push_back(arg);
            if (!(o.momentum >= 0 && o.momentum < 1))
            {
                throw usage_error("--momentum must be at least 0 and less than 1, got " + value);
            }
        }
        else if (arg == "--optimizer")
        {
            o.optimizer = next();
            o.training_options.push_back(arg);
            if (o.optimizer != "sgd" && o.optimizer != "adam" && o.optimizer != "adamw")
            {
                throw usage_error("--optimizer must be sgd, adam or adamw, got '" + o.optimizer + "'");
            }
        }
        else if (arg == "--schedule")
        {
            o.schedule = next();
            o.training_options.push_back(arg);
            if (o.schedule != "none" && o.schedule != "step" && o.schedule != "cosine" && o.schedule != "onecycle")
            {
                throw usage_error("--schedule must be none, step, cosine or onecycle, got '" + o.schedule + "'");
            }
        }
        else if (arg == "--seed")
        {
            o.seed = static_cast<std::uint32_t>(parse_unsigned(arg, next(), 0xFFFFFFFFull));
            o.training_options.push_back(arg);
        }
        else if (arg == "--threads")
        {
            o.threads = static_cast<std::size_t>(parse_unsigned(arg, next(), 1024));
            o.threads_given = true;
        }
        else if (arg == "--save")
        {
            o.save = next();
            if (o.save.empty())
            {
                throw usage_error("--save needs a file name");
            }
        }
        else if (arg == "--export-onnx")
        {
            o.export_onnx = next();
            if (o.export_onnx.empty())
            {
                throw usage_error("--export-onnx needs a file name");
            }
        }
        else if (arg == "--load")
        {
            o.load = next();
            if (o.load.empty())
            {
                throw usage_error("--load needs a file name");
            }
        }
        else if (arg == "--log")
        {
            o.log = next();
            if (o.log.empty())
            {
                throw usage_error("--log needs a file name");
            }
        }
        else if (arg == "--checkpoint" || arg == "--resume")
        {
            (arg == "--checkpoint" ? o.checkpoint : o.resume) = next();
            o.training_options.push_back(arg);
            if ((arg == "--checkpoint" ? o.checkpoint : o.resume).empty())
            {
                throw usage_error(arg + " needs a file name");
            }
        }
        else if (arg == "--checkpoint-every" || arg == "--stop-after")
        {
            const std::string value = next();
            (arg == "--stop-after" ? o.stop_after : o.checkpoint_every) =
                static_cast<std::size_t>(parse_unsigned(arg, value, 1ull << 40));
            o.training_options.push_back(arg);
            if (value.find_first_not_of('0') == std::string::npos)
            {
                throw usage_error(arg + " must be at least 1, got " + value);
            }
        }
        else if (arg == "--eval-only")
        {
            no_value();
            o.eval_only = true;
        }
        else if (arg == "--distributed")
        {
            no_value();
            o.distributed = true;
        }
        else if (arg.rfind("-", 0) == 0)
        {
            throw usage_error("unknown option '" + arg + "'");
        }
        else
        {
            throw usage_error("unexpected argument '" + arg + "'");
        }
    }
    if (o.momentum_given && o.optimizer != "sgd")
    {
        throw usage_error("--momentum applies to --optimizer sgd, not " + o.optimizer);
    }
    if (!o.lr_given && o.optimizer != "sgd")
    {
        o.lr = default_adam_lr;
    }
    if (o.model == "resnet" && !o.lr_given && o.optimizer == "sgd" && o.schedule.empty())
    {
        o.resnet_recipe = true;
        o.schedule = "onecycle";
        o.lr = resnet_peak_lr;
        if (!o.batch_given)
        {
            o.batch_size = resnet_batch;
        }
    }
    if (o.eval_only && o.load.empty())
    {
        throw usage_error("--eval-only needs --load FILE (a model to evaluate)");
    }
    if (o.eval_only && !o.save.empty())
    {
        throw usage_error("--save has no effect with --eval-only");
    }
    if (o.eval_only && !o.training_options.empty())
    {
        throw usage_error(o.training_options.front() + " has no effect with --eval-only");
    }
    if ((o.checkpoint_every > 0 || o.stop_after > 0) && o.checkpoint.empty())
    {
        throw usage_error(std::string(o.stop_after > 0 ? "--stop-after" : "--checkpoint-every") +
                          " needs --checkpoint FILE");
    }
    if (!o.resume.empty() && !o.load.empty())
    {
        throw usage_error("--load has no effect with --resume (the checkpoint holds the model)");
    }
    if (!o.help)
    {
        check_paths(o);
    }
    return o;
}

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start)
{
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

std::string format_duration(double seconds)
{
    const long s = std::lround(std::max(0.0, seconds));
    std::ostringstream out;
    if (s >= 3600)
    {
        out << s / 3600 << ':' << std::setw(2) << std::setfill('0') << (s / 60) % 60 << ':' << std::setw(2) << s % 60;
    }
    else
    {
        out << s / 60 << ':' << std::setw(2) << std::setfill('0') << s % 60;
    }
    return out.str();
}

/// Progress of one epoch: a bar redrawn in place on a terminal, plain lines at 25/50/75 %
/// otherwise (logs, pipes, CI).
class progress
{
public:
    progress(bool terminal, int epoch, int epochs, std::size_t batches)
        : m_terminal(terminal), m_epoch(epoch), m_epochs(epochs), m_batches(batches), m_start(clock_type::now())
    {
    }

    void update(std::size_t batch, double mean_loss, std::size_t images)
    {
        const double elapsed = seconds_since(m_start);
        const double rate = elapsed > 0 ? static_cast<double>(images) / elapsed : 0.0;
        const double eta =
            batch > 0 ? elapsed * static_cast<double>(m_batches - batch) / static_cast<double>(batch) : 0;
        std::ostringstream status;
        status << std::setw(std::to_string(m_batches).size()) << batch << '/' << m_batches << "  loss " << std::fixed
               << std::setprecision(4) << mean_loss << "  " << std::setprecision(0) << rate << " img/s  ETA "
               << format_duration(eta);
        if (m_terminal)
        {
            if (batch != m_batches && elapsed - m_last_draw < 0.1)
            {
                return;
            }
            m_last_draw = elapsed;
            constexpr std::size_t width = 20;
            const std::size_t filled = m_batches ? width * batch / m_batches : width;
            std::string bar(filled, '=');
            if (filled < width)
            {
                bar += '>';
                bar.append(width - filled - 1, ' ');
            }
            std::cout << "\r\033[Kepoch " << m_epoch << '/' << m_epochs << " [" << bar << "] " << status.str()
                      << std::flush;
        }
        else
        {
            const std::size_t quarter = (m_batches + 3) / 4;
            if (batch < m_batches && quarter > 0 && batch % quarter == 0)
            {
                std::cout << "epoch " << m_epoch << '/' << m_epochs << "  batch " << status.str() << std::endl;
            }
        }
    }

    void finish()
    {
        if (m_terminal)
        {
            std::cout << "\r\033[K" << std::flush;
        }
    }

private:
    bool m_terminal;
    int m_epoch, m_epochs;
    std::size_t m_batches;
    clock_type::time_point m_start;
    double m_last_draw = -1;
};

void print_confusion(const xcnn::evaluation& e)
{
    std::cout << "\nconfusion matrix (rows: true label, columns: predicted label)\n      ";
    for (std::size_t c = 0; c < e.classes; ++c)
    {
        std::cout << std::setw(6) << c;
    }
    std::cout << "   recall\n";
    for (std::size_t t = 0; t < e.classes; ++t)
    {
        std::cout << std::setw(6) << t;
        std::size_t total = 0;
        for (std::size_t p = 0; p < e.classes; ++p)
        {
            std::cout << std::setw(6) << e.confusion_at(t, p);
            total += e.confusion_at(t, p);
        }
        std::cout << "   ";
        if (total > 0)
        {
            std::cout << std::fixed << std::setprecision(1) << std::setw(5)
                      << 100.0 * static_cast<double>(e.confusion_at(t, t)) / static_cast<double>(total) << " %";
        }
        else
        {
            std::cout << "    -";
        }
        std::cout << '\n';
    }
}

/// Checks what the models need: 28x28 single-channel images, labels in [0, 10).
void check_dataset(const xcnn::labelled_images<float>& d, const std::string& what)
{
    const auto& s = d.images.shape();
    if (s[2] != image_size || s[3] != image_size)
    {
        throw xcnn::shape_error("the " + what + " images are " + std::to_string(s[2]) + "x" + std::to_string(s[3]) +
                                "; the models take 28x28 images");
    }
    for (std::size_t i = 0; i < d.labels.size(); ++i)
    {
        if (d.labels(i) < 0 || d.labels(i) >= static_cast<std::int64_t>(classes))
        {
            throw xcnn::value_error("the " + what + " label " + std::to_string(i) + " is " +
                                    std::to_string(d.labels(i)) + "; the models have 10 classes (0 to 9)");
        }
    }
    if (d.labels.size() == 0)
    {
        throw xcnn::value_error("the " + what + " set is empty");
    }
}

/// The learning rate of the default recipe at `step` of `total` steps.
double scheduled_lr(std::size_t step, std::size_t total, std::size_t steps_per_epoch)
{
    const double warmup = std::max(1.0, default_warmup_epochs * static_cast<double>(steps_per_epoch));
    const double s = static_cast<double>(step);
    if (s < warmup)
    {
        return default_peak_lr * (s + 1) / warmup;
    }
    const double progress = (s - warmup) / std::max(1.0, static_cast<double>(total) - warmup);
    return default_peak_lr * 0.5 * (1 + std::cos(3.14159265358979323846 * std::min(1.0, progress)));
}

/// Whether the run follows the default recipe: SGD, no --lr, no --schedule.
bool default_recipe(const options& o)
{
    return !o.lr_given && o.schedule.empty() && o.optimizer == "sgd";
}

/// The optimizer and the learning-rate schedule of a run behind one interface, so that the
/// training loop is compiled once per model, not once per combination.
template <class Net>
class training_driver
{
public:
    virtual ~training_driver() = default;
    /// Sets the learning rate (the default recipe's own schedule).
    virtual void set_lr(float lr) = 0;
    /// One optimizer step, then one schedule step.
    virtual void step() = 0;
    /// Saves a checkpoint of the network, the optimizer, the schedule and the progress.
    virtual void save(const std::string& path, Net& net, const xcnn::training_progress& progress,
                      const std::mt19937& rng) = 0;
    /// Restores them from a checkpoint.
    virtual xcnn::training_progress load(const std::string& path, Net& net, std::mt19937& rng) = 0;
};

/// No schedule: the rate stays as set.
struct constant_rate
{
};

template <class Net, class Optimizer, class Schedule>
class driver_of final : public training_driver<Net>
{
public:
    template <class MakeSchedule>
    driver_of(Optimizer optimizer, MakeSchedule make_schedule) : m_optimizer(std::move(optimizer))
    {
        if constexpr (scheduled)
        {
            m_schedule.emplace(make_schedule(m_optimizer));
        }
    }
    void set_lr(float lr) override { m_optimizer.set_lr(lr); }
    void step() override
    {
        m_optimizer.step();
        if constexpr (scheduled)
        {
            m_schedule->step();
        }
    }
    void save(const std::string& path, Net& net, const xcnn::training_progress& progress,
              const std::mt19937& rng) override
    {
        if constexpr (scheduled)
        {
            xcnn::save_checkpoint(path, net, m_optimizer, *m_schedule, progress, rng);
        }
        else
        {
            xcnn::save_checkpoint(path, net, m_optimizer, progress, rng);
        }
    }
    xcnn::training_progress load(const std::string& path, Net& net, std::mt19937& rng) override
    {
        if constexpr (scheduled)
        {
            return xcnn::load_checkpoint(path, net, m_optimizer, *m_schedule, rng);
        }
        else
        {
            return xcnn::load_checkpoint(path, net, m_optimizer, rng);
        }
    }

private:
    static constexpr bool scheduled = !std::is_same<Schedule, constant_rate>::value;
    Optimizer m_optimizer;
    std::optional<Schedule> m_schedule; // drives m_optimizer: the driver stays where it is built
};

template <class Net, class Optimizer>
std::unique_ptr<training_driver<Net>> with_schedule(Optimizer optimizer, const options& o, std::size_t batches,
                                                    std::size_t total_steps)
{
    if (o.schedule == "step")
    {
        return std::make_unique<driver_of<Net, Optimizer, xcnn::StepLR<Optimizer>>>(
            std::move(optimizer), [&](Optimizer& x) { return xcnn::StepLR(x, batches, step_schedule_gamma); });
    }
    if (o.schedule == "cosine")
    {
        return std::make_unique<driver_of<Net, Optimizer, xcnn::CosineAnnealingLR<Optimizer>>>(
            std::move(optimizer), [&](Optimizer& x) { return xcnn::CosineAnnealingLR(x, total_steps); });
    }
    if (o.schedule == "onecycle")
    {
        return std::make_unique<driver_of<Net, Optimizer, xcnn::OneCycleLR<Optimizer>>>(
            std::move(optimizer), [&](Optimizer& x) { return xcnn::OneCycleLR(x, o.lr, total_steps); });
    }
    return std::make_unique<driver_of<Net, Optimizer, constant_rate>>(std::move(optimizer),
                                                                      [](Optimizer&) { return constant_rate{}; });
}

/// The optimizer and schedule the options ask for, over the parameters of `net`.
template <class Net>
std::unique_ptr<training_driver<Net>> make_driver(Net& net, const options& o, std::size_t batches,
                                                  std::size_t total_steps)
{
    const auto lr = static_cast<float>(o.lr);
    if (o.optimizer == "adam")
    {
        return with_schedule<Net>(xcnn::Adam<float>(net.parameters(), lr), o, batches, total_steps);
    }
    if (o.optimizer == "adamw")
    {
        return with_schedule<Net>(xcnn::AdamW<float>(net.parameters(), lr), o, batches, total_steps);
    }
    const double weight_decay = default_recipe(o) || o.resnet_recipe ? default_weight_decay : 0.0;
    return with_schedule<Net>(xcnn::SGD<float>(net.parameters(), lr, static_cast<float>(o.momentum),
                                               static_cast<float>(weight_decay), o.resnet_recipe),
                              o, batches, total_steps);
}

/// What a checkpoint must share with the run that continues it: everything that shapes the
/// sequence of updates. Not the thread count: results are bit-identical at any count.
std::string run_description(const options& o, std::size_t training_images)
{
    // The shortest text that reads back as the same double: equal texts, equal values.
    const auto exact = [](double v)
    {
        char text[32];
        return std::string(text, std::to_chars(text, text + sizeof text, v).ptr);
    };
    std::ostringstream out;
    out << "--model " << o.model << " --batch-size " << o.batch_size << " --momentum " << exact(o.momentum)
        << " --seed " << o.seed;
    // An SGD run without --schedule describes itself as before either existed, so that its
    // checkpoints resume across the change.
    if (o.optimizer != "sgd")
    {
        out << " --optimizer " << o.optimizer;
    }
    if (!o.schedule.empty())
    {
        out << " --schedule " << o.schedule;
    }
    if (default_recipe(o))
    {
        out << " --epochs " << o.epochs << " (default recipe)"; // the schedule spans all epochs
    }
    else
    {
        out << " --lr " << exact(o.lr);
        if (o.schedule == "cosine" || o.schedule == "onecycle")
        {
            out << " --epochs " << o.epochs;
        }
        if (o.resnet_recipe)
        {
            out << " (resnet recipe: Nesterov, weight decay " << exact(default_weight_decay) << ")";
        }
    }
    out << ", " << training_images << " training images";
    return out.str();
}

/// Whether `net` has the parameters and buffers of `file`.
template <class Net>
bool holds(Net net, const xcnn::io::model_file& file)
{
    try
    {
        xcnn::check_state(net, file);
        return true;
    }
    catch (const xcnn::shape_error&)
    {
        return false;
    }
}

/// Calls `f` with the network of `--model name` (a fresh one, built at compile time).
template <class F>
void with_model(const std::string& name, F&& f)
{
    if (name == "resnet")
    {
        f(mnist_models::make_resnet<float>());
    }
    else if (name == "seed")
    {
        f(mnist_models::make_seed_net<float>());
    }
    else
    {
        f(mnist_models::make_lenet<float>());
    }
}

/// --export-onnx: the model as ONNX for batches of 28x28 single-channel images (a --model
/// network, or the Network a model file describes: save_onnx writes both from their layers' specs).
template <class Net>
void export_onnx(Net& net, const options& o)
{
    if (o.export_onnx.empty())
    {
        return;
    }
    xcnn::require_finite(net, "not exporting the model to '" + o.export_onnx + "'");
    xcnn::save_onnx(net, o.export_onnx, {1, 1, 28, 28});
    std::cout << "exported " << o.export_onnx << " (ONNX, opset 13)\n";
}

/// Whether --load runs the network its file describes (xcnn::load_network) rather than --model's:
/// without --model, or when --model builds another architecture than the file's. A file without
/// the description (xcnn 0.1) loads into --model's network, lenet by default, as before.
bool load_described_network(options& o)
{
    if (o.load.empty())
    {
        return false;
    }
    const auto file = xcnn::io::read_model_file(o.load);
    if (file.find(xcnn::io::layers_record, xcnn::io::record_kind::metadata) == nullptr)
    {
        return false;
    }
    if (o.model_given)
    {
        bool same = false;
        with_model(o.model, [&](auto net) { same = holds(std::move(net), file); });
        if (same)
        {
            return false;
        }
        std::cout << "note: " << o.load << " holds another network than --model " << o.model
                  << "; running the one it describes\n";
    }
    o.model_file = o.load;
    return true;
}

template <class Net>
int run(Net net, const options& o, mnist_distributed::session& dist)
{
    net.reset_parameters(o.seed);
    if (!o.load.empty())
    {
        xcnn::load(net, o.load);
        std::cout << "loaded " << o.load << '\n';
    }

    const auto load_start = clock_type::now();
    const auto test = xcnn::load_mnist<float>(o.data, xcnn::mnist_split::test);
    check_dataset(test, "test");
    xcnn::labelled_images<float> train;
    if (!o.eval_only)
    {
        train = xcnn::load_mnist<float>(o.data, xcnn::mnist_split::train);
        check_dataset(train, "training");
    }
    std::cout << "data: " << o.data << ": " << train.labels.size() << " training and " << test.labels.size()
              << " test images (" << std::fixed << std::setprecision(1) << seconds_since(load_start) << " s to load)\n";
    std::cout << std::defaultfloat << std::setprecision(6);
    std::cout << "model: " << (o.model_file.empty() ? o.model : "the network " + o.model_file + " describes") << ", "
              << net.num_parameters() << " parameters; threads: " << xcnn::get_num_threads() << '\n';

    std::ofstream log;
    if (!o.log.empty())
    {
        // A resumed run continues the log of the run it continues.
        log.open(o.log, o.resume.empty() ? std::ios::trunc : std::ios::app);
        if (!log)
        {
            throw xcnn::io_error("cannot write the log file '" + o.log + "'");
        }
        if (log.tellp() == 0)
        {
            log << "epoch,train_loss,test_loss,test_accuracy,seconds\n" << std::flush;
        }
    }

    if (o.eval_only)
    {
        const auto start = clock_type::now();
        const auto e = xcnn::evaluate(net, test, evaluation_batch);
        const double seconds = seconds_since(start);
        std::cout << "test loss " << std::fixed << std::setprecision(4) << e.loss << "  test accuracy "
                  << std::setprecision(2) << 100 * e.accuracy << " %  (" << std::setprecision(1) << seconds << " s)\n";
        if (log)
        {
            log << "0,," << std::setprecision(6) << e.loss << ',' << e.accuracy << ',' << std::setprecision(3)
                << seconds << '\n'
                << std::flush;
        }
        print_confusion(e);
        export_onnx(net, o);
        return 0;
    }

    // The samples in a new order every epoch. The shuffling generator is seeded as this program
    // has always seeded it, so a --seed gives the orders, and the weights, it gave before the
    // DataLoader existed, and checkpoints of those runs resume.
    xcnn::DataLoader loader(train, o.batch_size, xcnn::loader_options{}.shuffled(o.seed));
    std::seed_seq shuffle_seed{o.seed, 0x5eedu};
    loader.generator() = std::mt19937(shuffle_seed);
    const std::size_t n = train.labels.size();
    const std::size_t batches = loader.size();
    const std::size_t total_steps = batches * static_cast<std::size_t>(o.epochs);
    if (o.optimizer == "sgd")
    {
        std::cout << "recipe: SGD, batch " << o.batch_size << ", momentum " << o.momentum << ", " << o.epochs
                  << " epoch(s), ";
    }
    else
    {
        std::cout << "recipe: " << (o.optimizer == "adam" ? "Adam" : "AdamW") << ", batch " << o.batch_size << ", "
                  << o.epochs << " epoch(s), ";
    }
    if (default_recipe(o))
    {
        std::cout << "learning rate warm-up to " << default_peak_lr << " then cosine decay, weight decay "
                  << default_weight_decay;
    }
    else if (o.schedule.empty() || o.schedule == "none")
    {
        std::cout << "learning rate " << o.lr << " (constant)";
    }
    else
    {
        std::cout << "learning rate " << o.lr << ", schedule " << o.schedule;
        if (o.resnet_recipe)
        {
            std::cout << ", Nesterov, weight decay " << default_weight_decay;
        }
    }
    std::cout << ", seed " << o.seed << "\n\n";

    xcnn::SoftmaxCrossEntropy<float> loss;
    const auto driver = make_driver(net, o, batches, total_steps);
    const std::string description = run_description(o, n);
    xcnn::training_progress start;
    if (!o.resume.empty())
    {
        start = driver->load(o.resume, net, loader.generator());
        if (start.description != description || start.order.size() != n)
        {
            throw xcnn::value_error("--resume '" + o.resume + "': the checkpoint continues a run with " +
                                    start.description + "; this run has " + description +
                                    ". Resume with the same arguments.");
        }
        loader.set_order(std::vector<std::size_t>(start.order.begin(), start.order.end()));
        std::cout << "resumed " << o.resume << " after " << start.global_step << " steps: epoch " << start.epoch + 1
                  << ", batch " << start.step_in_epoch << '/' << batches << " done\n";
    }
    // The sample order and the generator as they are after the shuffle of the epoch in progress:
    // a run resumed inside an epoch goes on with that epoch's order.
    auto save_checkpoint =
        [&](std::uint64_t epochs_done, std::uint64_t batches_done, std::uint64_t steps_done, double epoch_loss_sum)
    {
        xcnn::training_progress p;
        p.epoch = epochs_done;
        p.step_in_epoch = batches_done;
        p.global_step = steps_done;
        const auto order = loader.order();
        p.order.assign(order.begin(), order.end());
        p.scalars["epoch_loss_sum"] = epoch_loss_sum;
        p.description = description;
        driver->save(o.checkpoint, net, p, loader.generator());
    };
    dist.begin_training(net);
    // This rank's share of each batch in a data-parallel run; a plain run trains on the batch itself.
    xt::xtensor<float, 4> part_images;
    xt::xtensor<std::int64_t, 1> part_labels;
    const std::size_t pixels = image_size * image_size;
    // mpirun gives its ranks a pseudo-terminal even when its own output goes to a file or a pipe.
    const bool terminal = XCNN_ISATTY(1) != 0 && !dist.enabled();
    xcnn::evaluation last;
    bool evaluated = false;
    std::size_t step = static_cast<std::size_t>(start.global_step);
    std::size_t steps_this_run = 0;
    const int first_epoch = static_cast<int>(start.epoch) + 1;
    for (int epoch = first_epoch; epoch <= o.epochs; ++epoch)
    {
        const auto epoch_start = clock_type::now();
        const std::size_t first_batch = epoch == first_epoch ? static_cast<std::size_t>(start.step_in_epoch) : 0;
        progress bar(terminal, epoch, o.epochs, batches);
        const auto resumed_sum = start.scalars.find("epoch_loss_sum");
        double loss_sum = first_batch > 0 && resumed_sum != start.scalars.end() ? resumed_sum->second : 0.0;
        std::size_t images_this_run = 0;
        bool stop = false;
        // A new order, or the rest of the epoch a checkpoint was saved in.
        const auto epoch_batches = first_batch == 0 ? loader.epoch_batches() : loader.resume_epoch(first_batch);
        for (auto it = epoch_batches.begin(); it != epoch_batches.end() && !stop; ++it, ++step)
        {
            const std::size_t b = it.index();
            const auto& batch = *it;
            const std::size_t count = batch.labels.size();
            const auto part = dist.part(count); // this rank's samples of the batch: all in a plain run
            const bool whole_batch = part.count == count;
            if (!whole_batch)
            {
                if (part_images.shape()[0] != part.count)
                {
                    part_images.resize(std::array<std::size_t, 4>{part.count, std::size_t(1), image_size, image_size});
                    part_labels.resize(std::array<std::size_t, 1>{part.count});
                }
                std::copy(batch.images.data() + part.offset * pixels,
                          batch.images.data() + (part.offset + part.count) * pixels, part_images.data());
                std::copy(batch.labels.data() + part.offset, batch.labels.data() + part.offset + part.count,
                          part_labels.data());
            }
            const auto& images = whole_batch ? batch.images : part_images;
            const auto& labels = whole_batch ? batch.labels : part_labels;
            if (default_recipe(o))
            {
                driver->set_lr(static_cast<float>(scheduled_lr(step, total_steps, batches)));
            }
            float value = 0;
            if (part.count > 0)
            {
                const auto& logits = net.forward(images);
                value = loss.forward(logits, labels);
                net.backward(loss.backward());
            }
            value = dist.average(value, part.count, count); // the global batch's gradients and loss
            // The optimizer refuses non-finite gradients and weights before it changes anything, naming the
            // parameter and its layer; nothing is saved after that, so --save and --checkpoint
            // keep the last good state.
            auto where = [&]
            {
                return "epoch " + std::to_string(epoch) + ", batch " + std::to_string(b + 1) + "/" +
                       std::to_string(batches) + " (training step " + std::to_string(step + 1) + ")";
            };
            try
            {
                driver->step();
            }
            catch (const xcnn::numeric_error& e)
            {
                bar.finish();
                std::ostringstream loss_text;
                loss_text << value;
                throw xcnn::numeric_error("training diverged in " + where() + ": " + e.what() + "; the loss was " +
                                          loss_text.str() + ". Try a smaller --lr.");
            }
            if (!std::isfinite(value))
            {
                bar.finish();
                throw xcnn::numeric_error("training diverged in " + where() + ": the loss is " + std::to_string(value) +
                                          " although every gradient is finite. Try a smaller --lr.");
            }
            loss_sum += static_cast<double>(value) * static_cast<double>(count);
            images_this_run += count;
            ++steps_this_run;
            bar.update(b + 1, loss_sum / static_cast<double>(b * o.batch_size + count), images_this_run);
            const bool last_batch = b + 1 == batches;
            stop = !last_batch && steps_this_run == o.stop_after;
            const bool periodic = o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0;
            if (!o.checkpoint.empty() && !last_batch && (periodic || stop))
            {
                save_checkpoint(static_cast<std::uint64_t>(epoch - 1), b + 1, step + 1, loss_sum);
            }
        }
        bar.finish();
        if (stop)
        {
            std::cout << "stopped after " << steps_this_run << " steps (--stop-after) in epoch " << epoch
                      << "; checkpoint " << o.checkpoint << ", continue with --resume " << o.checkpoint << '\n';
            return 0;
        }
        const double train_seconds = seconds_since(epoch_start);
        const double train_loss = loss_sum / static_cast<double>(n);
        last = xcnn::evaluate(net, test, evaluation_batch);
        evaluated = true;
        const double seconds = seconds_since(epoch_start);
        std::cout << "epoch " << epoch << '/' << o.epochs << "  train loss " << std::fixed << std::setprecision(4)
                  << train_loss << "  test loss " << last.loss << "  test accuracy " << std::setprecision(2)
                  << 100 * last.accuracy << " %  (" << std::setprecision(1) << train_seconds << " s training, "
                  << std::setprecision(0) << static_cast<double>(images_this_run) / train_seconds << " img/s; "
                  << std::setprecision(1) << seconds - train_seconds << " s test)" << std::endl;
        std::cout << dist.epoch_statistics() << std::flush;
        if (log)
        {
            log << epoch << ',' << std::setprecision(6) << train_loss << ',' << last.loss << ',' << last.accuracy << ','
                << std::setprecision(3) << seconds << '\n'
                << std::flush;
        }
        if (!o.save.empty())
        {
            // An update can overflow to infinity without a non-finite gradient; such a model
            // must not replace the last good file (save_checkpoint checks this itself).
            xcnn::require_finite(net, "epoch " + std::to_string(epoch) + ": not saving the model to '" + o.save + "'");
            xcnn::save(net, o.save);
        }
        if (!o.checkpoint.empty())
        {
            save_checkpoint(static_cast<std::uint64_t>(epoch), 0, step, 0.0);
        }
        if (o.stop_after > 0 && steps_this_run >= o.stop_after && epoch < o.epochs)
        {
            std::cout << "stopped after " << steps_this_run << " steps (--stop-after) at the end of epoch " << epoch
                      << "; checkpoint " << o.checkpoint << ", continue with --resume " << o.checkpoint << '\n';
            return 0;
        }
    }
    if (!evaluated) // resumed from a checkpoint of a finished run
    {
        std::cout << "nothing left to train: the checkpoint is at the end of epoch " << start.epoch << '\n';
        last = xcnn::evaluate(net, test, evaluation_batch);
    }
    if (!o.save.empty())
    {
        std::cout << "saved " << o.save << '\n';
    }
    if (!o.checkpoint.empty())
    {
        std::cout << "checkpoint " << o.checkpoint << '\n';
    }
    export_onnx(net, o);
    print_confusion(last);
    std::cout << "\nfinal test accuracy " << std::fixed << std::setprecision(2) << 100 * last.accuracy << " %\n";
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    options o;
    mnist_distributed::session dist;
    try
    {
        o = parse_arguments(argc, argv);
    }
    catch (const usage_error& e)
    {
        std::cerr << "xcnn-mnist: " << e.what() << "\n\n" << usage_text;
        return 2;
    }
    if (o.help)
    {
        std::cout << usage_text;
        return 0;
    }
    try
    {
        if (o.distributed)
        {
            dist.start(argc, argv);
            o = dist.outputs_on_rank_0(o);
        }
        if (o.threads_given)
        {
            xcnn::set_num_threads(o.threads);
        }
        if (load_described_network(o))
        {
            return run(xcnn::load_network<float>(o.load), o, dist);
        }
        if (o.model == "resnet")
        {
            return run(mnist_models::make_resnet<float>(), o, dist);
        }
        return o.model == "lenet" ? run(mnist_models::make_lenet<float>(), o, dist)
                                  : run(mnist_models::make_seed_net<float>(), o, dist);
    }
    catch (const std::exception& e)
    {
        std::cout << std::flush;
        dist.fail("xcnn-mnist", e.what(), 1); // in a data-parallel run: ends every rank
        return 1;
    }
}
