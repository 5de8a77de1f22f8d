// Helper program for xcnn's file-format tests (never installed):
//
//   xcnn_io_test_tool tiny-mnist DIR N_TRAIN N_TEST
//       writes a small, easy MNIST-format data set to DIR (the four standard file names; the
//       training files gzip-compressed when xcnn has zlib, the test files raw): 28x28 images of
//       a horizontal (labels 0-4) or vertical (5-9) bar at one of five positions, with noise.
//   xcnn_io_test_tool export-lenet FIXTURE_DIR OUT_DIR
//       exports a seeded LeNet with xcnn::export_npy to OUT_DIR/state_dict, copies
//       FIXTURE_DIR/input.npy to OUT_DIR and writes xcnn's logits for it to OUT_DIR/logits.npy,
//       for `torch_lenet.py check OUT_DIR` (the xcnn -> NumPy/PyTorch direction).
//   xcnn_io_test_tool other-model FILE
//       saves a seeded network for 28x28 images and 10 classes that is none of xcnn-mnist's
//       --model networks (strided convolutions, BatchNorm, a residual block, global average
//       pooling) to the model file FILE, for xcnn-mnist --load (mnist_example_load.cmake).
#include "models.hpp"

#include <xcnn/io/idx.hpp>
#include <xcnn/io/npy.hpp>
#include <xcnn/xcnn.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

namespace
{

void write_split(const std::string& dir, const std::string& prefix, std::size_t n, std::uint32_t seed, bool gzip)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> noise(0.0f, 0.25f);
    xt::xtensor<float, 4> images(std::array<std::size_t, 4>{n, 1, 28, 28});
    xt::xtensor<std::int64_t, 1> labels(std::array<std::size_t, 1>{n});
    for (std::size_t i = 0; i < n; ++i)
    {
        const auto label = static_cast<std::int64_t>(rng() % 10);
        labels(i) = label;
        for (std::size_t r = 0; r < 28; ++r)
        {
            for (std::size_t c = 0; c < 28; ++c)
            {
                images(i, 0, r, c) = noise(rng);
            }
        }
        const std::size_t at = 3 + 5 * static_cast<std::size_t>(label % 5) + rng() % 2; // 3..24
        const std::size_t from = 2 + rng() % 8, length = 14 + rng() % 5;
        for (std::size_t k = from; k < from + length; ++k)
        {
            for (std::size_t t = 0; t < 2; ++t)
            {
                float& px = label < 5 ? images(i, 0, at + t, k) : images(i, 0, k, at + t);
                px = 0.8f + noise(rng);
            }
        }
    }
    const std::string suffix = gzip ? ".gz" : "";
    xcnn::io::save_idx_images(dir + "/" + prefix + "-images-idx3-ubyte" + suffix, images);
    xcnn::io::save_idx_labels(dir + "/" + prefix + "-labels-idx1-ubyte" + suffix, labels);
}

int usage()
{
    std::cerr << "usage: xcnn_io_test_tool tiny-mnist DIR N_TRAIN N_TEST\n"
                 "       xcnn_io_test_tool export-lenet FIXTURE_DIR OUT_DIR\n"
                 "       xcnn_io_test_tool other-model FILE\n";
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    try
    {
        const std::string command = argc > 1 ? argv[1] : "";
        if (command == "tiny-mnist" && argc == 5)
        {
            const std::string dir = argv[2];
            std::filesystem::create_directories(dir);
            write_split(dir, "train", std::stoul(argv[3]), 1, xcnn::io::has_zlib);
            write_split(dir, "t10k", std::stoul(argv[4]), 2, false);
            return 0;
        }
        if (command == "export-lenet" && argc == 4)
        {
            const std::string fixture = argv[2], out = argv[3];
            auto net = mnist_models::make_lenet<float>();
            net.reset_parameters(7u);
            xcnn::export_npy(net, out + "/state_dict");
            const xt::xtensor<float, 4> input = xcnn::io::load_npy<float>(fixture + "/input.npy");
            xcnn::io::save_npy(out + "/input.npy", input);
            xcnn::io::save_npy(out + "/logits.npy", net.predict(input));
            return 0;
        }
        if (command == "other-model" && argc == 3)
        {
            xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 2, 1),
                                 xcnn::BatchNorm2D<float>(8),
                                 xcnn::ReLU<float>{},
                                 xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<float>(8, 8, 3, 1, 1),
                                                                 xcnn::BatchNorm2D<float>(8), xcnn::ReLU<float>{}}),
                                 xcnn::Conv2D<float>(8, 16, 3, 2, 1),
                                 xcnn::ReLU<float>{},
                                 xcnn::GlobalAvgPool2D<float>{},
                                 xcnn::Dense<float>(16, 10)};
            net.reset_parameters(11u);
            xcnn::save(net, argv[2]);
            return 0;
        }
        return usage();
    }
    catch (const std::exception& e)
    {
        std::cerr << "xcnn_io_test_tool: " << e.what() << '\n';
        return 1;
    }
}
