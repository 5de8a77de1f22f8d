// PyTorch -> xcnn for a ResNet-style network: the state_dict of tests/fixtures/torch_resnet (made by
// tests/fixtures/torch_resnet.py with torch 1.13, after three training steps so the BatchNorm running
// statistics are not their initial values) loads into the same network built with xcnn through
// xcnn::import_npy, buffers included, and gives torch's eval-mode logits.
#include "catch_compat.hpp"

#include "support/temp_dir.hpp"

#include <xcnn/io/npy.hpp>
#include <xcnn/xcnn.hpp>

#include <cmath>
#include <string>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace
{

const std::string fixture = std::string(XCNN_TEST_FIXTURES_DIR) + "/torch_resnet";

/// 3x3 convolution without bias, padding 1 (a convolution followed by BatchNorm needs none).
template <class T>
xcnn::Conv2D<T> conv3x3(std::size_t in, std::size_t out, std::size_t stride)
{
    return xcnn::Conv2D<T>(xcnn::Conv2DOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

/// tests/fixtures/torch_resnet.py's network, index for index and name for name.
template <class T>
auto make_resnet()
{
    return xcnn::Sequential{
        conv3x3<T>(1, 8, 1),
        xcnn::BatchNorm2D<T>(8),
        xcnn::ReLU<T>{},             // 0 1 2
        xcnn::MaxPool2D<T>(3, 2, 1), // 3
        xcnn::Residual(xcnn::Sequential{conv3x3<T>(8, 8, 1), xcnn::BatchNorm2D<T>(8), xcnn::ReLU<T>{},
                                        conv3x3<T>(8, 8, 1), xcnn::BatchNorm2D<T>(8)}), // 4
        xcnn::ReLU<T>{},                                                                // 5
        xcnn::Residual(xcnn::Sequential{conv3x3<T>(8, 16, 2), xcnn::BatchNorm2D<T>(16), xcnn::ReLU<T>{},
                                        conv3x3<T>(16, 16, 1), xcnn::BatchNorm2D<T>(16)},
                       xcnn::Sequential{xcnn::Conv2D<T>(xcnn::Conv2DOptions(8, 16, 1).stride(2).bias(false)),
                                        xcnn::BatchNorm2D<T>(16)}), // 6
        xcnn::ReLU<T>{},                                            // 7
        xcnn::GlobalAvgPool2D<T>{},                                 // 8 (torch: AdaptiveAvgPool2d(1), Flatten)
        xcnn::Dense<T>(16, 10)};                                    // 9 (torch: 10)
}

} // namespace

TEST_CASE("A PyTorch ResNet-style state_dict loads through import_npy and gives PyTorch's logits")
{
    auto net = make_resnet<float>();
    // torch's index 10 (Linear) is xcnn's 9: GlobalAvgPool2D is AdaptiveAvgPool2d(1) and Flatten
    // in one layer. Everything before it has the same index, so only the head is renamed.
    xcnn_test::temp_dir dir;
    const std::string state = fixture + "/state_dict";
    for (const auto& entry : std::filesystem::directory_iterator(state))
    {
        std::string name = entry.path().filename().string();
        if (name.rfind("10.", 0) == 0)
        {
            name = "9." + name.substr(3);
        }
        std::filesystem::copy_file(entry.path(), dir.path() / name);
    }
    xcnn::import_npy(net, dir.path().string());

    // Every buffer came from the file: num_batches_tracked is 3 after torch's three steps.
    std::size_t tracked = 0;
    for (auto& b : net.buffers())
    {
        if (b.name().find("num_batches_tracked") != std::string::npos)
        {
            CHECK(b.data()[0] == 3.0f);
            ++tracked;
        }
    }
    CHECK(tracked == 6); // the stem, two in each main branch, one in the projection shortcut

    const auto x = xcnn::load_npy<float>(fixture + "/input.npy");
    const auto expected = xcnn::load_npy<float>(fixture + "/logits.npy");
    const xt::xtensor<float, 4> input = x;
    const auto logits = net.predict(input);
    REQUIRE(logits.shape(0) == expected.shape(0));
    REQUIRE(logits.shape(1) == expected.shape(1));
    double worst = 0;
    for (std::size_t i = 0; i < logits.size(); ++i)
    {
        const double e = expected.data()[i];
        worst = std::max(worst, std::abs(double(logits.data()[i]) - e) / std::max(1.0, std::abs(e)));
    }
    INFO("largest difference from torch's logits (relative, at least absolute): " << worst);
    CHECK(worst < 1e-5);
}
