// Checkpoints (io/checkpoint.hpp): save_checkpoint / load_checkpoint restore the network, SGD's
// state and the loop's progress so that training continues bit for bit; a checkpoint is also a
// model file; a checkpoint that does not fit is a clear error that changes nothing; non-finite
// state is refused; a writer killed at any moment leaves an intact file holding the last or the
// next state and no pile of temporary files; a full disk or an unwritable directory is an
// io_error naming the path that keeps the previous file.
#include "catch_compat.hpp"

#include "support/buffered_net.hpp"
#include "support/error_of.hpp"
#include "support/temp_dir.hpp"
#include "support/training_state.hpp"

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace
{

using xcnn_test::contains;
using xcnn_test::error_of;

std::size_t count_temporary_files(const xcnn_test::temp_dir& dir)
{
    std::size_t n = 0;
    for (const auto& name : dir.entries())
    {
        n += name.find(".tmp-") != std::string::npos ? 1 : 0;
    }
    return n;
}

/// Trains `steps` steps on batches drawn from `data_rng`.
template <class Net, class T>
void train(Net& net, xcnn::SGD<T>& sgd, std::mt19937& data_rng, int steps)
{
    xcnn::SoftmaxCrossEntropy<T> loss;
    for (int i = 0; i < steps; ++i)
    {
        xcnn_test::compute_gradients(net, loss, xcnn_test::random_batch<T>(4, data_rng));
        REQUIRE(sgd.step());
    }
}

xcnn::training_progress sample_progress()
{
    xcnn::training_progress p;
    p.epoch = 1;
    p.step_in_epoch = 2;
    p.global_step = 3;
    p.order = {4, 0, 3, 1, 2, std::numeric_limits<std::uint64_t>::max()};
    p.scalars = {{"loss_sum", 1.25}, {"best_accuracy", 0.875}};
    p.description = "model=small batch=4";
    return p;
}

template <class T>
void check_bit_identical_continuation()
{
    xcnn_test::temp_dir dir;
    const std::string path = dir / "run.ckpt";
    auto net = xcnn_test::small_net<T>();
    net.reset_parameters(1u);
    xcnn::SGD<T> sgd(net.parameters(), T(0.05), T(0.9), T(1e-3));
    std::mt19937 data_rng(2);
    train(net, sgd, data_rng, 3);
    auto progress = sample_progress();
    xcnn::save_checkpoint(path, net, sgd, progress, data_rng);
    const auto at_checkpoint = xcnn_test::parameter_bytes(net);
    train(net, sgd, data_rng, 4); // the uninterrupted run

    // The resumed run starts from another network, other hyperparameters and another generator.
    auto resumed = xcnn_test::small_net<T>();
    resumed.reset_parameters(99u);
    xcnn::SGD<T> resumed_sgd(resumed.parameters(), T(0.5), T(0), T(0));
    std::mt19937 resumed_rng(12345);
    const auto back = xcnn::load_checkpoint(path, resumed, resumed_sgd, resumed_rng);
    CHECK(xcnn_test::parameter_bytes(resumed) == at_checkpoint);
    CHECK(back.epoch == progress.epoch);
    CHECK(back.step_in_epoch == progress.step_in_epoch);
    CHECK(back.global_step == progress.global_step);
    CHECK(back.order == progress.order);
    CHECK(back.scalars == progress.scalars);
    CHECK(back.description == progress.description);
    CHECK(back.rng == xcnn::rng_state(resumed_rng));
    CHECK(resumed_sgd.lr() == T(0.05));
    CHECK(resumed_sgd.momentum() == T(0.9));
    CHECK(resumed_sgd.weight_decay() == T(1e-3));
    CHECK(resumed_sgd.steps() == 3);

    train(resumed, resumed_sgd, resumed_rng, 4);
    CHECK(xcnn_test::parameter_bytes(resumed) == xcnn_test::parameter_bytes(net));
    CHECK(xcnn_test::momentum_bytes(resumed_sgd) == xcnn_test::momentum_bytes(sgd));
    CHECK(resumed_sgd.steps() == 7);
    CHECK(resumed_rng == data_rng);
}

/// Makes a directory immutable (chattr +i) for its lifetime, which stops root too; `ok()` is
/// false where the file system or the missing CAP_LINUX_IMMUTABLE does not allow it.
class immutable_directory
{
public:
    explicit immutable_directory(const std::string& path) : m_fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY))
    {
        int flags = 0;
        if (m_fd >= 0 && ::ioctl(m_fd, FS_IOC_GETFLAGS, &flags) == 0)
        {
            m_flags = flags;
            flags |= FS_IMMUTABLE_FL;
            m_ok = ::ioctl(m_fd, FS_IOC_SETFLAGS, &flags) == 0;
        }
    }
    immutable_directory(const immutable_directory&) = delete;
    immutable_directory& operator=(const immutable_directory&) = delete;
    ~immutable_directory()
    {
        if (m_ok)
        {
            ::ioctl(m_fd, FS_IOC_SETFLAGS, &m_flags);
        }
        if (m_fd >= 0)
        {
            ::close(m_fd);
        }
    }
    bool ok() const noexcept { return m_ok; }

private:
    int m_fd;
    int m_flags = 0;
    bool m_ok = false;
};

} // namespace

TEST_CASE("a checkpoint restores network, SGD state and progress: training continues bit for bit")
{
    SECTION("float")
    {
        check_bit_identical_continuation<float>();
    }
    SECTION("double")
    {
        check_bit_identical_continuation<double>();
    }
}

TEST_CASE("the SGD state round trips and is checked against the parameters")
{
    auto net = xcnn_test::small_net();
    net.reset_parameters(3u);
    xcnn::SGD<float> sgd(net.parameters(), 0.1f, 0.9f, 0.01f);
    std::mt19937 data_rng(4);
    train(net, sgd, data_rng, 2);
    const auto state = sgd.state_dict();
    CHECK(state.kind == "SGD");
    CHECK(state.scalars ==
          std::vector<std::pair<std::string, float>>{{"lr", 0.1f}, {"momentum", 0.9f}, {"weight_decay", 0.01f}});
    CHECK(state.counters == std::vector<std::pair<std::string, std::uint64_t>>{{"steps", 2}, {"skipped_steps", 0}});
    REQUIRE(state.tensors.size() == 4);
    CHECK(state.tensors[0].parameter == "0.weight");
    CHECK(state.tensors[0].name == "momentum_buffer");
    CHECK(state.tensors[0].values == sgd.momentum_buffer(0));
    CHECK(state.tensor("4.bias", "momentum_buffer") == &state.tensors[3]);

    xcnn::SGD<float> other(net.parameters(), 1.f);
    other.load_state_dict(state);
    CHECK(xcnn_test::momentum_bytes(other) == xcnn_test::momentum_bytes(sgd));
    CHECK(other.momentum() == 0.9f);
    CHECK(other.weight_decay() == 0.01f);
    CHECK(other.steps() == 2);

    // A missing tensor is a buffer that does not exist yet (PyTorch's state_dict): restored so.
    auto fewer = state;
    fewer.tensors.pop_back();
    xcnn::SGD<float> third(net.parameters(), 1.f);
    third.load_state_dict(fewer);
    CHECK(third.momentum_buffer(3).empty());
    CHECK(third.momentum_buffer(2) == sgd.momentum_buffer(2));

    auto wrong_size = state;
    wrong_size.tensor("4.bias", "momentum_buffer")->values.push_back(1.f);
    CHECK_THROWS_AS(other.load_state_dict(wrong_size), xcnn::shape_error);
    CHECK(error_of([&] { other.load_state_dict(wrong_size); }) ==
          "SGD: the momentum buffer of parameter '4.bias' (Dense(18, 3)) has 4 elements, the parameter 3 (shape (3,))");
    auto foreign = state;
    foreign.tensors.back().parameter = "5.bias";
    CHECK_THROWS_AS(other.load_state_dict(foreign), xcnn::shape_error);
    CHECK(error_of([&] { other.load_state_dict(foreign); }) ==
          "SGD: the state holds a momentum buffer of '5.bias', which is none of the optimizer's 4 parameters");
    auto twice = state;
    twice.tensors.push_back(twice.tensors.front());
    CHECK(error_of([&] { other.load_state_dict(twice); }) ==
          "SGD: the state holds two momentum buffers of parameter '0.weight' (" + net.get<0>().name() + ")");
    auto other_tensor = state;
    other_tensor.tensors.front().name = "exp_avg";
    CHECK_THROWS_AS(other.load_state_dict(other_tensor), xcnn::value_error);
    CHECK(error_of([&] { other.load_state_dict(other_tensor); }) ==
          "SGD: the state holds a tensor 'exp_avg' of parameter '0.weight'; SGD keeps only 'momentum_buffer'");
    auto other_kind = state;
    other_kind.kind = "Adam";
    CHECK(error_of([&] { other.load_state_dict(other_kind); }) == "SGD: the state is that of a 'Adam' optimizer");
    auto missing = state;
    missing.scalars.pop_back();
    CHECK(error_of([&] { other.load_state_dict(missing); }) ==
          "SGD: the state holds 0 scalars 'weight_decay', not one");
    auto extra = state;
    extra.counters.emplace_back("epochs", 1);
    CHECK(error_of([&] { other.load_state_dict(extra); }) == "SGD: the state holds an unknown counter 'epochs'");
    auto negative = state;
    *negative.scalar("lr") = -1.f;
    CHECK_THROWS_AS(other.load_state_dict(negative), xcnn::value_error);
    CHECK(error_of([&] { other.load_state_dict(negative); }) ==
          "SGD: invalid state: learning rate -1, momentum 0.9, weight_decay 0.01 (each must be finite and >= 0)");
    CHECK(xcnn_test::momentum_bytes(other) == xcnn_test::momentum_bytes(sgd)); // unchanged by the failures
    CHECK(other.lr() == 0.1f);
    CHECK(other.steps() == 2);
}

TEST_CASE("the checkpoint records are the documented ones, and xcnn::load reads a checkpoint")
{
    xcnn_test::temp_dir dir;
    auto net = xcnn_test::small_net();
    net.reset_parameters(5u);
    xcnn::SGD<float> sgd(net.parameters(), 0.1f, 0.9f);
    std::mt19937 data_rng(6);
    train(net, sgd, data_rng, 1);
    xcnn::save_checkpoint(dir / "c.ckpt", net, sgd, sample_progress());

    const auto file = xcnn::io::read_model_file(dir / "c.ckpt");
    using kind = xcnn::io::record_kind;
    REQUIRE(file.find("xcnn.optimizer", kind::metadata) != nullptr);
    CHECK(file.find("xcnn.optimizer", kind::metadata)->as_text() == "SGD");
    CHECK(file.find("optimizer.lr", kind::state)->values<float>() == std::vector<float>{0.1f});
    CHECK(file.find("optimizer.steps", kind::state)->values<std::uint64_t>() == std::vector<std::uint64_t>{1});
    const auto* buffer = file.find("optimizer.0.weight.momentum_buffer", kind::state);
    REQUIRE(buffer != nullptr);
    CHECK(buffer->shape == std::vector<std::uint64_t>{2, 1, 3, 3});
    CHECK(buffer->values<float>() == sgd.momentum_buffer(0));
    CHECK(file.find("train.global_step", kind::state)->values<std::uint64_t>() == std::vector<std::uint64_t>{3});
    CHECK(file.find("train.scalar.loss_sum", kind::state)->values<double>() == std::vector<double>{1.25});
    CHECK(file.of_kind(kind::parameter).size() == 4);

    auto plain = xcnn_test::small_net();
    xcnn::load(plain, dir / "c.ckpt");
    CHECK(xcnn_test::parameter_bytes(plain) == xcnn_test::parameter_bytes(net));

    // Without momentum there are no buffers, as in PyTorch's state_dict.
    xcnn::SGD<float> plain_sgd(net.parameters(), 0.1f);
    train(net, plain_sgd, data_rng, 1);
    xcnn::save_checkpoint(dir / "no-momentum.ckpt", net, plain_sgd, {});
    const auto without = xcnn::io::read_model_file(dir / "no-momentum.ckpt");
    CHECK(without.find("optimizer.0.weight.momentum_buffer", kind::state) == nullptr);
    xcnn::SGD<float> back(net.parameters(), 0.3f, 0.5f);
    xcnn::load_checkpoint(dir / "no-momentum.ckpt", net, back);
    CHECK(back.momentum() == 0.f);
    CHECK(back.momentum_buffer(0).empty());
}

TEST_CASE("a checkpoint that does not fit is a clear error and changes nothing")
{
    xcnn_test::temp_dir dir;
    auto source = xcnn_test::small_net();
    source.reset_parameters(7u);
    xcnn::SGD<float> source_sgd(source.parameters(), 0.1f, 0.9f);
    std::mt19937 data_rng(8);
    train(source, source_sgd, data_rng, 2);
    const std::string good = dir / "good.ckpt";
    xcnn::save_checkpoint(good, source, source_sgd, sample_progress(), data_rng);
    xcnn::save(source, dir / "plain.xcnn");

    auto net = xcnn_test::small_net();
    net.reset_parameters(9u);
    xcnn::SGD<float> sgd(net.parameters(), 0.2f, 0.5f);
    std::mt19937 rng(10);
    train(net, sgd, rng, 1);
    const auto params_before = xcnn_test::parameter_bytes(net);
    const auto momentum_before = xcnn_test::momentum_bytes(sgd);
    const auto rng_before = rng;

    // Writes `good` with one change to its records.
    auto variant = [&](const std::string& name, auto change)
    {
        auto file = xcnn::io::read_model_file(good);
        change(file);
        xcnn::io::write_model_file(dir / name, file);
        return dir / name;
    };
    auto find_record = [](xcnn::io::model_file& file, const std::string& name) -> xcnn::io::tensor_record&
    {
        for (auto& r : file.records)
        {
            if (r.name == name)
            {
                return r;
            }
        }
        FAIL("no record " << name);
        return file.records.front();
    };
    std::string message;

    SECTION("a plain model file")
    {
        CHECK_THROWS_AS(xcnn::load_checkpoint(dir / "plain.xcnn", net, sgd), xcnn::format_error);
        message = error_of([&] { xcnn::load_checkpoint(dir / "plain.xcnn", net, sgd); });
        CHECK_THAT(message, contains("plain.xcnn': this is a model file without training state (written by "
                                     "xcnn::save, not xcnn::save_checkpoint)"));
    }
    SECTION("a momentum buffer of the wrong shape")
    {
        const auto path = variant("shape.ckpt",
                                  [&](auto& file)
                                  {
                                      auto& r = find_record(file, "optimizer.4.weight.momentum_buffer");
                                      r.shape = {18, 3};
                                  });
        CHECK_THROWS_AS(xcnn::load_checkpoint(path, net, sgd, rng), xcnn::shape_error);
        message = error_of([&] { xcnn::load_checkpoint(path, net, sgd, rng); });
        CHECK_THAT(message, contains("shape.ckpt': the optimizer state does not match the network: "
                                     "'optimizer.4.weight.momentum_buffer' has shape (18, 3), parameter '4.weight' "
                                     "(Dense(18, 3)) has shape (3, 18)"));
    }
    SECTION("a momentum buffer for a parameter the network does not have")
    {
        const auto path = variant("extra.ckpt",
                                  [&](auto& file)
                                  {
                                      auto r = find_record(file, "optimizer.4.bias.momentum_buffer");
                                      r.name = "optimizer.5.bias.momentum_buffer";
                                      file.records.push_back(r);
                                  });
        CHECK_THROWS_AS(xcnn::load_checkpoint(path, net, sgd, rng), xcnn::shape_error);
        message = error_of([&] { xcnn::load_checkpoint(path, net, sgd, rng); });
        CHECK_THAT(message, contains("the checkpoint has 5 momentum buffers, 4 of them for the network's 4 "
                                     "parameters; 'optimizer.5.bias.momentum_buffer' belongs to no parameter"));
    }
    SECTION("another architecture")
    {
        auto wide = xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3), xcnn::ReLU<float>{}, xcnn::MaxPool2D<float>(2),
                                     xcnn::Flatten<float>{}, xcnn::Dense<float>(18, 4)};
        xcnn::SGD<float> wide_sgd(wide.parameters(), 0.1f, 0.9f);
        xcnn::save_checkpoint(dir / "wide.ckpt", wide, wide_sgd, {});
        CHECK_THROWS_AS(xcnn::load_checkpoint(dir / "wide.ckpt", net, sgd, rng), xcnn::shape_error);
        message = error_of([&] { xcnn::load_checkpoint(dir / "wide.ckpt", net, sgd, rng); });
        CHECK_THAT(message, contains("architecture mismatch at tensor 2: the file has '4.weight' of shape (4, 18)"));
    }
    SECTION("a missing progress record")
    {
        const auto path = variant("missing.ckpt",
                                  [&](auto& file)
                                  {
                                      auto& r = find_record(file, "train.global_step");
                                      r.name = "train.something_else";
                                  });
        CHECK_THROWS_AS(xcnn::load_checkpoint(path, net, sgd, rng), xcnn::format_error);
        message = error_of([&] { xcnn::load_checkpoint(path, net, sgd, rng); });
        CHECK_THAT(message, contains("missing.ckpt': the checkpoint has no state record 'train.global_step'"));
    }
    SECTION("a record of the wrong type")
    {
        const auto path = variant("type.ckpt",
                                  [&](auto& file)
                                  {
                                      const double lr = 0.1;
                                      find_record(file, "optimizer.lr") = xcnn::io::tensor_record::from(
                                          "optimizer.lr", xcnn::io::record_kind::state, &lr, std::vector<int>{});
                                  });
        CHECK_THROWS_AS(xcnn::load_checkpoint(path, net, sgd, rng), xcnn::format_error);
        message = error_of([&] { xcnn::load_checkpoint(path, net, sgd, rng); });
        CHECK_THAT(message, contains("state record 'optimizer.lr' holds float64 of shape (), expected float32 scalar"));
    }
    SECTION("a generator state of another engine type")
    {
        std::mt19937_64 rng64(11);
        const auto rng64_before = rng64;
        CHECK_THROWS_AS(xcnn::load_checkpoint(good, net, sgd, rng64), xcnn::value_error);
        message = error_of([&] { xcnn::load_checkpoint(good, net, sgd, rng64); });
        CHECK_THAT(message, contains("the generator state 'train.rng'"));
        CHECK(rng64 == rng64_before);
    }
    SECTION("an optimizer of another network")
    {
        auto other = xcnn_test::small_net();
        xcnn::SGD<float> foreign(other.parameters(), 0.1f);
        CHECK_THROWS_AS(xcnn::load_checkpoint(good, net, foreign), xcnn::value_error);
        message = error_of([&] { xcnn::load_checkpoint(good, net, foreign); });
        CHECK_THAT(message, contains("the optimizer's tensor 0 ('0.weight') is not the network's parameter "
                                     "'0.weight'"));
    }
    INFO(message);
    CHECK(xcnn_test::parameter_bytes(net) == params_before);
    CHECK(xcnn_test::momentum_bytes(sgd) == momentum_before);
    CHECK(sgd.lr() == 0.2f);
    CHECK(sgd.steps() == 1);
    CHECK(rng == rng_before);

    // The good checkpoint still loads into the same objects.
    xcnn::load_checkpoint(good, net, sgd, rng);
    CHECK(xcnn_test::parameter_bytes(net) == xcnn_test::parameter_bytes(source));
    CHECK(rng == data_rng);
}

TEST_CASE("save_checkpoint refuses non-finite parameters and momentum and keeps the previous checkpoint")
{
    xcnn_test::temp_dir dir;
    const std::string path = dir / "c.ckpt";
    auto net = xcnn_test::small_net();
    net.reset_parameters(12u);
    xcnn::SGD<float> sgd(net.parameters(), 0.1f, 0.9f);
    std::mt19937 data_rng(13);
    train(net, sgd, data_rng, 1);
    xcnn::save_checkpoint(path, net, sgd, {});
    const auto original = xcnn_test::read_bytes(path);

    SECTION("a parameter")
    {
        net.get<4>().bias()(2) = std::numeric_limits<float>::quiet_NaN();
        CHECK_THROWS_AS(xcnn::save_checkpoint(path, net, sgd, {}), xcnn::numeric_error);
        CHECK(error_of([&] { xcnn::save_checkpoint(path, net, sgd, {}); }) ==
              "save_checkpoint '" + path +
                  "': parameter '4.bias' (Dense(18, 3)) holds non-finite values: 1 of 3 elements is not finite, the "
                  "first at index 2 (nan); '" +
                  path + "' was left unchanged");
    }
    SECTION("a momentum buffer")
    {
        auto state = sgd.state_dict();
        state.tensor("0.bias", "momentum_buffer")->values[0] = -std::numeric_limits<float>::infinity();
        sgd.load_state_dict(state);
        CHECK_THROWS_AS(xcnn::save_checkpoint(path, net, sgd, {}), xcnn::numeric_error);
        CHECK_THAT(error_of([&] { xcnn::save_checkpoint(path, net, sgd, {}); }),
                   contains("the momentum buffer of parameter '0.bias' (" + net.get<0>().name() +
                            ") holds non-finite values: 1 of 2 elements is not finite, the first at index 0 (-inf)"));
    }
    CHECK(xcnn_test::read_bytes(path) == original);
    CHECK(count_temporary_files(dir) == 0);
}

TEST_CASE("a full disk or an unwritable directory: io_error naming the path, the previous file kept")
{
    xcnn_test::temp_dir dir;
    auto net = xcnn_test::small_net();
    net.reset_parameters(14u);
    xcnn::SGD<float> sgd(net.parameters(), 0.1f, 0.9f);
    std::mt19937 data_rng(15);
    train(net, sgd, data_rng, 1);
    xcnn::training_progress progress;
    progress.order.assign(4000, 7); // 32 KB: larger than the file size limit below
    const std::string model = dir / "m.xcnn", checkpoint = dir / "c.ckpt";
    xcnn::save(net, model);
    xcnn::save_checkpoint(checkpoint, net, sgd, progress);
    const auto model_bytes = xcnn_test::read_bytes(model), checkpoint_bytes = xcnn_test::read_bytes(checkpoint);
    train(net, sgd, data_rng, 1); // what the failing saves would write differs from the files

    SECTION("the disk fills up mid-write (file size limit)")
    {
        struct rlimit old_limit;
        REQUIRE(getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
        auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = old_limit;
        limit.rlim_cur = 4096;
        REQUIRE(setrlimit(RLIMIT_FSIZE, &limit) == 0);
        const std::string message = error_of([&] { xcnn::save_checkpoint(checkpoint, net, sgd, progress); });
        setrlimit(RLIMIT_FSIZE, &old_limit);
        std::signal(SIGXFSZ, old_handler);
        CHECK_THAT(message, contains("save: writing"));
        CHECK_THAT(message, contains("(for '" + checkpoint + "') failed: File too large; '" + checkpoint +
                                     "' was left unchanged"));
    }
    SECTION("the parent 'directory' is a regular file")
    {
        const std::string below_file = model + "/c.ckpt";
        CHECK_THROWS_AS(xcnn::save_checkpoint(below_file, net, sgd, progress), xcnn::io_error);
        CHECK_THAT(error_of([&] { xcnn::save_checkpoint(below_file, net, sgd, progress); }),
                   contains("cannot create a temporary file next to '" + below_file + "'"));
        CHECK_THAT(error_of([&] { xcnn::save(net, below_file); }), contains("Not a directory"));
    }
    SECTION("the directory is not writable")
    {
        if (::geteuid() != 0)
        {
            std::filesystem::permissions(dir.path(),
                                         std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
            const std::string message = error_of([&] { xcnn::save_checkpoint(checkpoint, net, sgd, progress); });
            const std::string model_message = error_of([&] { xcnn::save(net, model); });
            std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all);
            CHECK_THAT(message, contains("cannot create a temporary file next to '" + checkpoint + "'"));
            CHECK_THAT(message, contains("Permission denied"));
            CHECK_THAT(model_message, contains("cannot create a temporary file next to '" + model + "'"));
        }
        else
        {
            // Permissions do not stop root; the immutable attribute does, where root may set it.
            immutable_directory frozen(dir.path().string());
            if (frozen.ok())
            {
                const std::string message = error_of([&] { xcnn::save_checkpoint(checkpoint, net, sgd, progress); });
                const std::string model_message = error_of([&] { xcnn::save(net, model); });
                CHECK_THAT(message, contains("cannot create a temporary file next to '" + checkpoint + "'"));
                CHECK_THAT(message, contains("Operation not permitted"));
                CHECK_THAT(model_message, contains("cannot create a temporary file next to '" + model + "'"));
            }
            else
            {
                WARN("running as root without CAP_LINUX_IMMUTABLE: the unwritable-directory case is not checked");
            }
        }
    }
    CHECK(xcnn_test::read_bytes(model) == model_bytes);
    CHECK(xcnn_test::read_bytes(checkpoint) == checkpoint_bytes);
    CHECK(count_temporary_files(dir) == 0);
}

TEST_CASE("save_checkpoint removes the temporary files of killed writers, and only those")
{
    xcnn_test::temp_dir dir;
    const std::string path = dir / "c.ckpt";
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0)
    {
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child); // reaped: its pid names no process now
    const std::string dead = ".c.ckpt.tmp-" + std::to_string(child) + "-0123456789abcdef";
    const std::string mine = ".c.ckpt.tmp-" + std::to_string(::getpid()) + "-0123456789abcdef";
    const std::string parent = ".c.ckpt.tmp-" + std::to_string(::getppid()) + "-0123456789abcdef";
    const std::string malformed = ".c.ckpt.tmp-" + std::to_string(child) + "-xyz";
    const std::string other_target = ".d.ckpt.tmp-" + std::to_string(child) + "-0123456789abcdef";
    for (const auto& name : {dead, mine, parent, malformed, other_target})
    {
        xcnn_test::write_bytes(dir / name, {1, 2, 3});
    }
    auto net = xcnn_test::small_net();
    xcnn::SGD<float> sgd(net.parameters(), 0.1f);
    xcnn::save_checkpoint(path, net, sgd, {});
    CHECK_FALSE(std::filesystem::exists(dir / dead));
    for (const auto& name : {mine, parent, malformed, other_target})
    {
        CHECK(std::filesystem::exists(dir / name));
    }
    CHECK(xcnn::io::remove_stale_temporaries(path) == 0);
}

TEST_CASE("a writer killed at random moments leaves an intact checkpoint of the last or the next state")
{
    // A child process saves checkpoint after checkpoint, state k holding parameters drawn from
    // seed k, momentum buffers filled with k and global step k, and reports each completed save
    // through a pipe; it is killed with SIGKILL after a random delay. The file must then load and
    // hold exactly the last reported state, or the next one when the kill came between the rename
    // and the report. A killed writer leaves its temporary file; the next save removes it, so
    // there is never more than one.
    xcnn_test::temp_dir dir;
    const std::string path = dir / "c.ckpt";
    constexpr std::size_t order_size = 20000; // 160 KB: kills land in write() as well as in fsync()
    auto make_state = [](std::uint64_t k, auto& net, auto& sgd, xcnn::training_progress& progress)
    {
        net.reset_parameters(static_cast<std::mt19937::result_type>(k));
        auto state = sgd.state_dict();
        state.tensors.clear();
        for (const auto& p : sgd.parameters())
        {
            state.tensors.push_back({p.name(), "momentum_buffer", std::vector<float>(p.size(), static_cast<float>(k))});
        }
        *state.counter("steps") = k;
        sgd.load_state_dict(state);
        progress.global_step = k;
        progress.order.assign(order_size, k);
    };
    auto net = xcnn_test::small_net();
    xcnn::SGD<float> sgd(net.parameters(), 0.1f, 0.9f);
    xcnn::training_progress progress;
    make_state(0, net, sgd, progress);
    const auto save_start = std::chrono::steady_clock::now();
    xcnn::save_checkpoint(path, net, sgd, progress);
    const auto save_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - save_start).count();

    std::mt19937 rng(2024);
    // Kills land within about three saves of the writer's start (at least 12 ms): on a loaded
    // machine (sanitizers, parallel tests) a save takes tens of milliseconds, and a fixed window
    // would kill every writer before its first rename.
    std::uniform_int_distribution<long long> delay_us(0, std::max<long long>(12000, 3 * save_us));
    // A kill during fsync waits for the flush, tens of milliseconds on a busy disk: the rounds
    // stop after 15 s (but never before 30), whatever the machine.
    const int max_rounds = 120, min_rounds = 30;
    const double budget_seconds = 15;
    int rounds = 0;
    std::uint64_t current = 0; // the state the file holds
    int advanced = 0, temporaries_left = 0;
    const auto start = std::chrono::steady_clock::now();
    auto elapsed = [&]
    {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    for (int round = 0; round < max_rounds && (round < min_rounds || elapsed() < budget_seconds); ++round)
    {
        ++rounds;
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0)
        {
            ::close(fds[0]);
            ::alarm(30); // never outlive a parent that died
            auto child_net = xcnn_test::small_net();
            xcnn::SGD<float> child_sgd(child_net.parameters(), 0.1f, 0.9f);
            xcnn::training_progress child_progress;
            // "Ready": the parent's delay starts once the writer has started, not at the fork.
            if (::write(fds[1], &current, sizeof current) != static_cast<ssize_t>(sizeof current))
            {
                ::_exit(1);
            }
            try
            {
                for (std::uint64_t k = current + 1;; ++k)
                {
                    make_state(k, child_net, child_sgd, child_progress);
                    xcnn::save_checkpoint(path, child_net, child_sgd, child_progress);
                    if (::write(fds[1], &k, sizeof k) != static_cast<ssize_t>(sizeof k))
                    {
                        ::_exit(1);
                    }
                }
            }
            catch (const std::exception& e)
            {
                std::fprintf(stderr, "checkpoint writer: %s\n", e.what());
                ::_exit(2);
            }
        }
        ::close(fds[1]);
        std::uint64_t ready = 0;
        REQUIRE(::read(fds[0], &ready, sizeof ready) == static_cast<ssize_t>(sizeof ready));
        std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
        ::kill(child, SIGKILL);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        REQUIRE(WIFSIGNALED(status)); // not an exit: the writer never failed
        std::uint64_t reported = current, k = 0;
        while (::read(fds[0], &k, sizeof k) == static_cast<ssize_t>(sizeof k))
        {
            reported = k;
        }
        ::close(fds[0]);

        CAPTURE(round, current, reported);
        auto loaded = xcnn_test::small_net();
        xcnn::SGD<float> loaded_sgd(loaded.parameters(), 1.f);
        xcnn::training_progress back;
        REQUIRE_NOTHROW(back = xcnn::load_checkpoint(path, loaded, loaded_sgd));
        REQUIRE((back.global_step == reported || back.global_step == reported + 1));
        make_state(back.global_step, net, sgd, progress);
        REQUIRE(xcnn_test::parameter_bytes(loaded) == xcnn_test::parameter_bytes(net));
        REQUIRE(xcnn_test::momentum_bytes(loaded_sgd) == xcnn_test::momentum_bytes(sgd));
        REQUIRE(loaded_sgd.steps() == back.global_step);
        REQUIRE(back.order == progress.order);
        advanced += back.global_step != current ? 1 : 0;
        current = back.global_step;

        const std::size_t temporaries = count_temporary_files(dir);
        REQUIRE(temporaries <= 1);
        temporaries_left += static_cast<int>(temporaries);
    }
    const double seconds = elapsed();
    INFO(rounds << " kills in " << seconds << " s; the file advanced in " << advanced << " rounds, " << temporaries_left
                << " kills left a temporary file; last state " << current);
    // The kills must have hit both sides of the rename for the test to mean something.
    CHECK(advanced > 0);
    CHECK(temporaries_left > 0);
    make_state(current + 1, net, sgd, progress);
    xcnn::save_checkpoint(path, net, sgd, progress);
    CHECK(count_temporary_files(dir) == 0);
}

TEST_CASE("a checkpoint written by xcnn 0.1.0 still loads, and saving it again writes the same records")
{
    // tests/fixtures/v1/small_net.ckpt was written by tests/fixtures/v1/make_v1_fixtures.cpp with
    // the release before the optimizer state interface and buffers: element j of parameter i is
    // (i + 1) / 8 - j / 64, of momentum buffer i j / 32 - i / 4; '0.bias' has no buffer.
    const std::string path = std::string(XCNN_TEST_FIXTURES_DIR) + "/v1/small_net.ckpt";
    auto net = xcnn_test::small_net();
    xcnn::SGD<float> sgd(net.parameters(), 1.f);
    std::mt19937 rng;
    const auto progress = xcnn::load_checkpoint(path, net, sgd, rng);
    CHECK(sgd.lr() == 0.125f);
    CHECK(sgd.momentum() == 0.75f);
    CHECK(sgd.weight_decay() == 0.0625f);
    CHECK(sgd.steps() == 3);
    CHECK(sgd.skipped_steps() == 1);
    CHECK(progress.epoch == 2);
    CHECK(progress.step_in_epoch == 5);
    CHECK(progress.global_step == 17);
    CHECK(progress.order == std::vector<std::uint64_t>{3, 1, 4, 0, 2});
    CHECK(progress.scalars == std::map<std::string, double>{{"loss_sum", 1.25}});
    CHECK(progress.description == "fixture");
    CHECK(rng == std::mt19937(11));
    const auto params = net.parameters();
    for (std::size_t i = 0; i < params.size(); ++i)
    {
        const auto& buffer = sgd.momentum_buffer(i);
        CHECK(buffer.size() == (i == 1 ? 0 : params[i].size()));
        for (std::size_t j = 0; j < params[i].size(); ++j)
        {
            CHECK(params[i].data()[j] == float(i + 1) / 8 - float(j) / 64);
            if (i != 1)
            {
                CHECK(buffer[j] == float(j) / 32 - float(i) / 4);
            }
        }
    }

    // The records this xcnn writes for the restored state are those of the old file, byte for
    // byte (the version metadata aside, and the layers' spec, a metadata record added since), so
    // the format did not change.
    const auto old_file = xcnn::io::read_model_file(path);
    const auto new_file = xcnn::checkpoint_state(net, sgd, progress);
    auto comparable = [](const xcnn::io::model_file& f)
    {
        std::vector<std::tuple<int, std::string, int, std::vector<std::uint64_t>, std::vector<unsigned char>>> out;
        for (const auto& r : f.records)
        {
            if (r.name != "xcnn.version" && r.name != "xcnn.layers")
            {
                out.emplace_back(static_cast<int>(r.kind), r.name, r.type, r.shape, r.data);
            }
        }
        return out;
    };
    CHECK(comparable(new_file) == comparable(old_file));
    CHECK(new_file.scalar_type == old_file.scalar_type);
}

namespace
{

/// A second kind of optimizer, to check that checkpoints work with any optimizer of the contract
/// (optim/optimizer.hpp): p -= lr * v, v = g + v, with a "velocity" per parameter from its first
/// step on and a step counter.
template <class T>
class velocity_optimizer
{
public:
    using value_type = T;
    velocity_optimizer(std::vector<xcnn::parameter<T>> parameters, T lr)
        : m_parameters(std::move(parameters)), m_velocity(m_parameters.size()), m_lr(lr)
    {
    }
    std::string name() const { return "Velocity"; }
    const std::vector<xcnn::parameter<T>>& parameters() const { return m_parameters; }
    void step()
    {
        for (std::size_t i = 0; i < m_parameters.size(); ++i)
        {
            m_velocity[i].resize(m_parameters[i].size());
            for (std::size_t j = 0; j < m_velocity[i].size(); ++j)
            {
                m_velocity[i][j] += m_parameters[i].grad_data()[j];
                m_parameters[i].data()[j] -= m_lr * m_velocity[i][j];
            }
        }
        ++m_steps;
    }
    xcnn::optimizer_state<T> state_dict() const
    {
        xcnn::optimizer_state<T> state{name(), {{"lr", m_lr}}, {{"steps", m_steps}}, {}};
        for (std::size_t i = 0; i < m_parameters.size(); ++i)
        {
            if (!m_velocity[i].empty())
            {
                state.tensors.push_back({m_parameters[i].name(), "velocity", m_velocity[i]});
            }
        }
        return state;
    }
    void check_state_dict(const xcnn::optimizer_state<T>& state) const
    {
        if (state.kind != name() || state.scalar("lr") == nullptr || state.counter("steps") == nullptr)
        {
            throw xcnn::value_error("Velocity: not a state of mine");
        }
        for (const auto& t : state.tensors)
        {
            if (t.name != "velocity")
            {
                throw xcnn::value_error("Velocity: unknown tensor " + t.name);
            }
        }
    }
    void load_state_dict(const xcnn::optimizer_state<T>& state)
    {
        check_state_dict(state);
        std::vector<std::vector<T>> velocity(m_parameters.size());
        for (const auto& t : state.tensors)
        {
            for (std::size_t i = 0; i < m_parameters.size(); ++i)
            {
                velocity[i] = m_parameters[i].name() == t.parameter ? t.values : velocity[i];
            }
        }
        m_lr = *state.scalar("lr");
        m_steps = *state.counter("steps");
        m_velocity.swap(velocity);
    }
    const std::vector<T>& velocity(std::size_t i) const { return m_velocity[i]; }

private:
    std::vector<xcnn::parameter<T>> m_parameters;
    std::vector<std::vector<T>> m_velocity;
    T m_lr;
    std::uint64_t m_steps = 0;
};

static_assert(xcnn::is_optimizer<xcnn::SGD<float>>::value, "SGD satisfies the optimizer contract");
static_assert(xcnn::is_optimizer<velocity_optimizer<double>>::value, "so does the test's optimizer");
static_assert(!xcnn::is_optimizer<xcnn_test::buffered_net<float>>::value, "a network is no optimizer");

/// Sets the gradients of `net` to values depending on `seed`.
template <class Net>
void set_gradients(Net& net, int seed)
{
    for (const auto& p : net.parameters())
    {
        for (std::size_t j = 0; j < p.size(); ++j)
        {
            p.grad_data()[j] = static_cast<float>(seed) / 8 - static_cast<float>(j) / 16;
        }
    }
}

} // namespace

TEST_CASE("a checkpoint restores the buffers of the network, which no optimizer sees")
{
    xcnn_test::temp_dir dir;
    xcnn_test::buffered_net<float> net;
    net.fill(1);
    xcnn::SGD<float> sgd(net.parameters(), 0.5f, 0.75f);
    CHECK(sgd.parameters().size() == 2); // the buffers are not parameters
    set_gradients(net, 1);
    REQUIRE(sgd.step());
    xcnn::save_checkpoint(dir / "b.ckpt", net, sgd, sample_progress());
    const auto file = xcnn::io::read_model_file(dir / "b.ckpt");
    CHECK(file.of_kind(xcnn::io::record_kind::buffer).size() == 2);
    CHECK(file.find("optimizer.1.running_mean.momentum_buffer", xcnn::io::record_kind::state) == nullptr);

    xcnn_test::buffered_net<float> back;
    back.fill(5);
    xcnn::SGD<float> back_sgd(back.parameters(), 1.f);
    xcnn::load_checkpoint(dir / "b.ckpt", back, back_sgd);
    CHECK(back.values() == net.values());
    CHECK(xcnn_test::momentum_bytes(back_sgd) == xcnn_test::momentum_bytes(sgd));

    SECTION("a buffer of another shape: shape_error, nothing changed")
    {
        xcnn_test::buffered_net<float> wide(4);
        wide.fill(6);
        xcnn::SGD<float> wide_sgd(wide.parameters(), 1.f);
        const auto before = wide.values();
        CHECK_THROWS_AS(xcnn::load_checkpoint(dir / "b.ckpt", wide, wide_sgd), xcnn::shape_error);
        CHECK_THAT(error_of([&] { xcnn::load_checkpoint(dir / "b.ckpt", wide, wide_sgd); }),
                   contains("architecture mismatch at buffer 0: the file has '1.running_mean' of shape (3,)"));
        CHECK(wide.values() == before);
        CHECK(wide_sgd.momentum_buffer(0).empty());
        CHECK(wide_sgd.steps() == 0);
    }
    SECTION("a non-finite buffer is refused at save")
    {
        net.running_var.value()(1) = std::numeric_limits<float>::quiet_NaN();
        CHECK_THROWS_AS(xcnn::save_checkpoint(dir / "b.ckpt", net, sgd, {}), xcnn::numeric_error);
        CHECK_THAT(error_of([&] { xcnn::save_checkpoint(dir / "b.ckpt", net, sgd, {}); }),
                   contains("buffer '1.running_var' holds non-finite values: 1 of 3 elements is not finite, the "
                            "first at index 1 (nan)"));
    }
}

TEST_CASE("checkpoints work with any optimizer of the contract, and refuse the state of another kind")
{
    xcnn_test::temp_dir dir;
    xcnn_test::buffered_net<double> net;
    net.fill(1);
    velocity_optimizer<double> opt(net.parameters(), 0.25);
    set_gradients(net, 2);
    opt.step();
    xcnn::save_checkpoint(dir / "v.ckpt", net, opt, sample_progress());

    const auto file = xcnn::io::read_model_file(dir / "v.ckpt");
    using kind = xcnn::io::record_kind;
    CHECK(file.find("xcnn.optimizer", kind::metadata)->as_text() == "Velocity");
    CHECK(file.find("optimizer.lr", kind::state)->values<double>() == std::vector<double>{0.25});
    CHECK(file.find("optimizer.steps", kind::state)->values<std::uint64_t>() == std::vector<std::uint64_t>{1});
    const auto* velocity = file.find("optimizer.0.weight.velocity", kind::state);
    REQUIRE(velocity != nullptr);
    CHECK(velocity->shape == std::vector<std::uint64_t>{3, 2});
    CHECK(velocity->values<double>() == opt.velocity(0));

    xcnn_test::buffered_net<double> back;
    velocity_optimizer<double> back_opt(back.parameters(), 1.0);
    xcnn::load_checkpoint(dir / "v.ckpt", back, back_opt);
    CHECK(back.values() == net.values());
    CHECK(back_opt.state_dict().scalars == opt.state_dict().scalars);
    CHECK(back_opt.velocity(1) == opt.velocity(1));

    // The velocity state in an SGD and the SGD state in a Velocity optimizer: format_error,
    // nothing changed.
    xcnn::SGD<double> sgd(back.parameters(), 0.5, 0.9);
    set_gradients(back, 3);
    REQUIRE(sgd.step());
    const auto before = back.values();
    CHECK_THROWS_AS(xcnn::load_checkpoint(dir / "v.ckpt", back, sgd), xcnn::format_error);
    CHECK_THAT(error_of([&] { xcnn::load_checkpoint(dir / "v.ckpt", back, sgd); }),
               contains("v.ckpt': the checkpoint holds the state of a 'Velocity' optimizer, not of SGD"));
    xcnn::save_checkpoint(dir / "s.ckpt", back, sgd, {});
    CHECK_THAT(error_of([&] { xcnn::load_checkpoint(dir / "s.ckpt", back, back_opt); }),
               contains("s.ckpt': the checkpoint holds the state of a 'SGD' optimizer, not of Velocity"));
    CHECK(back.values() == before);
    CHECK(sgd.steps() == 1);
    CHECK(back_opt.velocity(1) == opt.velocity(1));

    // A tensor SGD does not keep in an SGD checkpoint: refused by SGD's check, as a damaged file.
    auto foreign = xcnn::io::read_model_file(dir / "s.ckpt");
    foreign.records.push_back(*file.find("optimizer.0.weight.velocity", kind::state));
    xcnn::io::write_model_file(dir / "foreign.ckpt", foreign);
    CHECK_THROWS_AS(xcnn::load_checkpoint(dir / "foreign.ckpt", back, sgd), xcnn::format_error);
    CHECK_THAT(error_of([&] { xcnn::load_checkpoint(dir / "foreign.ckpt", back, sgd); }),
               contains("foreign.ckpt': SGD: the state holds a tensor 'velocity' of parameter '0.weight'; SGD keeps "
                        "only 'momentum_buffer'"));
    CHECK(back.values() == before);
}

namespace
{

/// Trains `steps` steps with `opt` and `schedule` (stepped after each optimizer step).
template <class Net, class Optimizer, class Schedule>
void train_scheduled(Net& net, Optimizer& opt, Schedule& schedule, std::mt19937& data_rng, int steps)
{
    xcnn::SoftmaxCrossEntropy<typename Optimizer::value_type> loss;
    for (int i = 0; i < steps; ++i)
    {
        xcnn_test::compute_gradients(net, loss, xcnn_test::random_batch<typename Optimizer::value_type>(4, data_rng));
        REQUIRE(opt.step());
        schedule.step();
    }
}

/// Saves a run of `Optimizer` and `Schedule` (made by the two factories) after 3 steps, continues
/// it 5 steps, resumes it from the checkpoint in new objects and checks the resumed run ends
/// identically, byte for byte.
template <class T, class MakeOptimizer, class MakeSchedule>
void check_scheduled_continuation(MakeOptimizer make_optimizer, MakeSchedule make_schedule)
{
    xcnn_test::temp_dir dir;
    const std::string path = dir / "run.ckpt";
    auto net = xcnn_test::small_net<T>();
    net.reset_parameters(21u);
    auto opt = make_optimizer(net, false);
    auto schedule = make_schedule(opt, false);
    std::mt19937 data_rng(22);
    train_scheduled(net, opt, schedule, data_rng, 3);
    xcnn::save_checkpoint(path, net, opt, schedule, sample_progress(), data_rng);
    train_scheduled(net, opt, schedule, data_rng, 5);

    auto resumed = xcnn_test::small_net<T>();
    resumed.reset_parameters(23u);
    auto resumed_opt = make_optimizer(resumed, true); // other hyperparameters
    auto resumed_schedule = make_schedule(resumed_opt, true);
    std::mt19937 resumed_rng(24);
    const auto back = xcnn::load_checkpoint(path, resumed, resumed_opt, resumed_schedule, resumed_rng);
    CHECK(back.global_step == 3);
    CHECK(resumed_schedule.steps() == 3);
    train_scheduled(resumed, resumed_opt, resumed_schedule, resumed_rng, 5);
    CHECK(xcnn_test::parameter_bytes(resumed) == xcnn_test::parameter_bytes(net));
    CHECK(resumed_schedule.last_lr() == schedule.last_lr());
    CHECK(resumed_schedule.state_dict().scalars == schedule.state_dict().scalars);
    CHECK(resumed_schedule.state_dict().counters == schedule.state_dict().counters);
    const auto a = resumed_opt.state_dict(), b = opt.state_dict();
    CHECK(a.scalars == b.scalars);
    CHECK(a.counters == b.counters);
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (std::size_t i = 0; i < a.tensors.size(); ++i)
    {
        CHECK(xcnn_test::bytes_of(a.tensors[i].values.data(), a.tensors[i].values.size()) ==
              xcnn_test::bytes_of(b.tensors[i].values.data(), b.tensors[i].values.size()));
    }
}

} // namespace

TEST_CASE("a checkpoint of Adam, AdamW or Nesterov SGD with a schedule continues bit for bit")
{
    SECTION("AdamW + OneCycleLR, float")
    {
        check_scheduled_continuation<float>(
            [](auto& net, bool other) { return xcnn::AdamW<float>(net.parameters(), other ? 0.5f : 0.01f); },
            [](auto& opt, bool other) { return xcnn::OneCycleLR(opt, other ? 0.9 : 0.05, other ? 50 : 20); });
    }
    SECTION("Adam + CosineAnnealingLR, double")
    {
        check_scheduled_continuation<double>(
            [](auto& net, bool other)
            { return xcnn::Adam<double>(net.parameters(), other ? 0.5 : 0.01, 0.8, 0.99, 1e-7, other ? 0.0 : 0.01); },
            [](auto& opt, bool other) { return xcnn::CosineAnnealingLR(opt, other ? 3 : 4, 1e-4); });
    }
    SECTION("Nesterov SGD + StepLR, float")
    {
        check_scheduled_continuation<float>(
            [](auto& net, bool other)
            { return xcnn::SGD<float>(net.parameters(), 0.05f, other ? 0.1f : 0.9f, 1e-3f, !other); },
            [](auto& opt, bool other) { return xcnn::StepLR(opt, other ? 1 : 2, other ? 0.9 : 0.5); });
    }
}

TEST_CASE("checkpoints with and without a schedule: the records, and what does not fit is refused")
{
    xcnn_test::temp_dir dir;
    auto net = xcnn_test::small_net();
    net.reset_parameters(25u);
    xcnn::Adam<float> adam(net.parameters(), 0.01f);
    xcnn::StepLR schedule(adam, 2, 0.5);
    std::mt19937 data_rng(26);
    train_scheduled(net, adam, schedule, data_rng, 3);
    xcnn::save_checkpoint(dir / "s.ckpt", net, adam, schedule, sample_progress());
    xcnn::save_checkpoint(dir / "plain.ckpt", net, adam, sample_progress());

    using kind = xcnn::io::record_kind;
    const auto file = xcnn::io::read_model_file(dir / "s.ckpt");
    CHECK(file.find("xcnn.optimizer", kind::metadata)->as_text() == "Adam");
    CHECK(file.find("xcnn.schedule", kind::metadata)->as_text() == "StepLR");
    CHECK(file.find("schedule.last_lr", kind::state)->values<double>() == std::vector<double>{schedule.last_lr()});
    CHECK(file.find("schedule.steps", kind::state)->values<std::uint64_t>() == std::vector<std::uint64_t>{3});
    CHECK(file.find("schedule.step_size", kind::state)->values<std::uint64_t>() == std::vector<std::uint64_t>{2});
    CHECK(file.find("optimizer.beta2", kind::state)->values<float>() == std::vector<float>{0.999f});
    CHECK(file.find("optimizer.0.weight.exp_avg_sq", kind::state)->shape == std::vector<std::uint64_t>{2, 1, 3, 3});
    CHECK(xcnn::io::read_model_file(dir / "plain.ckpt").find("xcnn.schedule", kind::metadata) == nullptr);

    auto other = xcnn_test::small_net();
    xcnn::Adam<float> other_adam(other.parameters());
    xcnn::StepLR other_schedule(other_adam, 5);
    xcnn::CosineAnnealingLR cosine(other_adam, 5);
    CHECK_THAT(error_of([&] { xcnn::load_checkpoint(dir / "plain.ckpt", other, other_adam, other_schedule); }),
               contains("plain.ckpt': the checkpoint holds no schedule state (it was saved without a schedule), but a "
                        "StepLR schedule was given to restore"));
    CHECK_THROWS_AS(xcnn::load_checkpoint(dir / "plain.ckpt", other, other_adam, other_schedule), xcnn::format_error);
    CHECK_THAT(error_of([&] { xcnn::load_checkpoint(dir / "s.ckpt", other, other_adam); }),
               contains("s.ckpt': the checkpoint holds the state of a 'StepLR' schedule: pass the schedule to "
                        "load_checkpoint to restore it"));
    CHECK_THAT(error_of([&] { xcnn::load_checkpoint(dir / "s.ckpt", other, other_adam, cosine); }),
               contains("the checkpoint holds the state of a 'StepLR' schedule, not of CosineAnnealingLR"));
    xcnn::Adam<float> foreign_adam(other.parameters());
    xcnn::StepLR foreign_schedule(foreign_adam, 5);
    CHECK_THROWS_AS(xcnn::load_checkpoint(dir / "s.ckpt", other, other_adam, foreign_schedule), xcnn::value_error);
    CHECK_THAT(error_of([&] { xcnn::save_checkpoint(dir / "x.ckpt", net, adam, foreign_schedule, {}); }),
               contains("the StepLR schedule drives another Adam optimizer than the one given"));
    xcnn::AdamW<float> adamw(other.parameters());
    CHECK_THAT(error_of([&] { xcnn::load_checkpoint(dir / "s.ckpt", other, adamw); }),
               contains("the checkpoint holds the state of a 'Adam' optimizer, not of AdamW"));
    // A damaged schedule record: format_error naming the problem.
    auto damaged = file;
    for (auto& r : damaged.records)
    {
        if (r.name == "schedule.step_size")
        {
            const std::uint64_t zero = 0;
            r = xcnn::io::tensor_record::from("schedule.step_size", kind::state, &zero, std::vector<int>{});
        }
    }
    xcnn::io::write_model_file(dir / "damaged.ckpt", damaged);
    CHECK_THAT(error_of([&] { xcnn::load_checkpoint(dir / "damaged.ckpt", other, other_adam, other_schedule); }),
               contains("damaged.ckpt': StepLR: invalid state: step_size 0 must be >= 1"));
    // Nothing changed by the refusals.
    CHECK(other_adam.steps() == 0);
    CHECK(other_schedule.steps() == 0);
    CHECK(other_schedule.step_size() == 5);

    xcnn::load_checkpoint(dir / "s.ckpt", other, other_adam, other_schedule);
    CHECK(other_schedule.step_size() == 2);
    CHECK(other_schedule.last_lr() == schedule.last_lr());
    CHECK(other_adam.lr() == adam.lr());
    CHECK(other_adam.exp_avg(3) == adam.exp_avg(3));
    xcnn::load_checkpoint(dir / "plain.ckpt", other, other_adam);
    CHECK(other_adam.steps() == 3);
}

TEST_CASE("an xcnn 0.1.0 checkpoint loads into a Nesterov SGD as plain momentum, and into no schedule")
{
    const std::string path = std::string(XCNN_TEST_FIXTURES_DIR) + "/v1/small_net.ckpt";
    auto net = xcnn_test::small_net();
    xcnn::SGD<float> sgd(net.parameters(), 1.f, 0.5f, 0.f, true);
    xcnn::load_checkpoint(path, net, sgd);
    CHECK_FALSE(sgd.nesterov());
    CHECK(sgd.momentum() == 0.75f);
    xcnn::StepLR schedule(sgd, 3);
    CHECK_THROWS_AS(xcnn::load_checkpoint(path, net, sgd, schedule), xcnn::format_error);

    // A Nesterov SGD's checkpoint has the one extra record, and reads back into a plain SGD.
    xcnn_test::temp_dir dir;
    xcnn::SGD<float> nesterov(net.parameters(), 0.1f, 0.9f, 0.f, true);
    xcnn::save_checkpoint(dir / "n.ckpt", net, nesterov, {});
    const auto file = xcnn::io::read_model_file(dir / "n.ckpt");
    CHECK(file.find("optimizer.nesterov", xcnn::io::record_kind::state)->values<std::uint64_t>() ==
          std::vector<std::uint64_t>{1});
    xcnn::SGD<float> plain(net.parameters(), 0.5f);
    xcnn::load_checkpoint(dir / "n.ckpt", net, plain);
    CHECK(plain.nesterov());
    CHECK(plain.momentum() == 0.9f);
}
