// xcnn-onnx-classify: classifies the images of an IDX file with an ONNX model (exported from
// PyTorch with torch.onnx.export, or by xcnn's save_onnx) and prints the accuracy.
//
//   xcnn-onnx-classify MODEL.onnx IMAGES LABELS [--batch-size N] [--mean M] [--std S]
//   xcnn-onnx-classify lenet.onnx data/t10k-images-idx3-ubyte.gz data/t10k-labels-idx1-ubyte.gz
//
// Pixels are scaled to [0, 1], then (x - M) / S (M = 0 and S = 1 unless given: pass the
// mean and standard deviation of a transforms.Normalize the model was trained with). The
// model must take (N, 1, H, W) images and return (N, classes) logits. Exit status: 0 success,
// 1 a runtime error (a model xcnn cannot import, invalid data files, a model that does not fit
// the images), 2 invalid arguments. docs/onnx.md shows the route from PyTorch.
#include <xcnn/io/mnist.hpp>
#include <xcnn/io/onnx_import.hpp>
#include <xcnn/xcnn.hpp>

#include <charconv>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <string>
#include <system_error>
#include <vector>

namespace
{

const char* const usage = "usage: xcnn-onnx-classify MODEL.onnx IMAGES LABELS [--batch-size N] [--mean M] [--std S]\n"
                          "  MODEL.onnx  an ONNX model taking (N, 1, H, W) images, returning (N, classes) logits\n"
                          "  IMAGES      an IDX image file (raw or .gz), e.g. t10k-images-idx3-ubyte.gz\n"
                          "  LABELS      the IDX label file of the same images\n"
                          "  --batch-size N  images per predict call (default 256)\n"
                          "  --mean M, --std S  normalise pixels in [0, 1] as (x - M) / S (default 0 and 1)\n";

int bad_arguments(const std::string& message)
{
    std::fprintf(stderr, "xcnn-onnx-classify: %s\n%s", message.c_str(), usage);
    return 2;
}

template <class V>
bool parse(const std::string& text, V& value)
{
    const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
    return result.ec == std::errc() && result.ptr == text.data() + text.size();
}

} // namespace

int main(int argc, char** argv)
{
    std::vector<std::string> positional;
    std::size_t batch_size = 256;
    double mean = 0, stddev = 1;
    for (int i = 1; i < argc; ++i)
    {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h")
        {
            std::printf("%s", usage);
            return 0;
        }
        if (arg == "--batch-size" || arg == "--mean" || arg == "--std")
        {
            if (i + 1 >= argc)
            {
                return bad_arguments(arg + " needs a value");
            }
            const std::string value = argv[++i];
            const bool ok = arg == "--batch-size" ? parse(value, batch_size) && batch_size > 0
                            : arg == "--mean"     ? parse(value, mean)
                                                  : parse(value, stddev) && stddev > 0;
            if (!ok)
            {
                return bad_arguments("invalid " + arg + " '" + value + "'");
            }
            continue;
        }
        if (arg.size() > 1 && arg[0] == '-')
        {
            return bad_arguments("unknown option '" + arg + "'");
        }
        positional.push_back(arg);
    }
    if (positional.size() != 3)
    {
        return bad_arguments("expected MODEL.onnx IMAGES LABELS");
    }
    try
    {
        auto net = xcnn::load_onnx<float>(positional[0]);
        const auto data = xcnn::load_idx_dataset<float>(positional[1], positional[2]);
        const auto& shape = data.images.shape();
        const std::size_t n = shape[0];
        std::printf("model %s: %zu layers\n", positional[0].c_str(), net.size());
        std::printf("%zu images of %zux%zu\n", n, shape[2], shape[3]);
        std::size_t correct = 0;
        for (std::size_t start = 0; start < n; start += batch_size)
        {
            const std::size_t end = std::min(n, start + batch_size);
            xt::xtensor<float, 4> batch = xt::view(data.images, xt::range(start, end));
            if (mean != 0 || stddev != 1)
            {
                batch = (batch - static_cast<float>(mean)) / static_cast<float>(stddev);
            }
            const auto& logits = net.predict(batch);
            const std::size_t classes = logits.shape()[1];
            for (std::size_t b = 0; b < end - start; ++b)
            {
                std::size_t best = 0;
                for (std::size_t c = 1; c < classes; ++c)
                {
                    best = logits(b, c) > logits(b, best) ? c : best;
                }
                correct += static_cast<std::int64_t>(best) == data.labels(start + b) ? 1 : 0;
            }
        }
        std::printf("accuracy %.2f %% (%zu of %zu)\n", n == 0 ? 0.0 : 100.0 * double(correct) / double(n), correct, n);
        return 0;
    }
    catch (const std::exception& e)
    {
        std::fprintf(stderr, "xcnn-onnx-classify: %s\n", e.what());
        return 1;
    }
}
