// The program every consumer test builds (tests/consumer/*): it is compiled against xcnn the way
// a user's project would be — through the installed CMake package, add_subdirectory,
// FetchContent or pkg-config — and must build and run there with nothing else configured.
//
// It trains one SGD step of a tiny Conv2D-ReLU-MaxPool2D-Flatten-Dense network on a fixed batch
// and exits non-zero unless the loss is finite before and after the step and the step lowered it.
// It also checks what the consumer must have received from xcnn: C++17, XTENSOR_USE_XSIMD, zlib's
// link flags whenever the package says it has zlib (XCNN_HAS_ZLIB: a .gz round trip must link
// and work) and, when the build passes XCNN_EXPECTED_VERSION, a package version equal to the
// headers' version.
#include <xcnn/xcnn.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

static_assert(__cplusplus >= 201703L, "xcnn must bring C++17 to its consumers");

#ifndef XTENSOR_USE_XSIMD
#error "xcnn must define XTENSOR_USE_XSIMD for its consumers"
#endif

#define XCNN_CONSUMER_STR2(x) #x
#define XCNN_CONSUMER_STR(x) XCNN_CONSUMER_STR2(x)

int main()
{
    const std::string header_version = std::to_string(XCNN_VERSION_MAJOR) + "." + std::to_string(XCNN_VERSION_MINOR) +
                                       "." + std::to_string(XCNN_VERSION_PATCH);
    std::cout << "xcnn " << header_version << '\n';
#ifdef XCNN_EXPECTED_VERSION
    const std::string package_version = XCNN_CONSUMER_STR(XCNN_EXPECTED_VERSION);
    if (package_version != header_version)
    {
        std::cerr << "FAIL: the package says version " << package_version << ", the headers say " << header_version
                  << '\n';
        return 1;
    }
#endif

    // Four 8x8 images: a bright left half (class 0) or a bright right half (class 1).
    const std::size_t n = 4;
    xt::xtensor<float, 4> images = xt::zeros<float>({n, std::size_t(1), std::size_t(8), std::size_t(8)});
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({n});
    for (std::size_t i = 0; i < n; ++i)
    {
        labels(i) = static_cast<std::int64_t>(i % 2);
        for (std::size_t r = 0; r < 8; ++r)
        {
            for (std::size_t c = 0; c < 8; ++c)
            {
                const bool left = c < 4;
                images(i, 0, r, c) = (left == (labels(i) == 0)) ? 1.0f : 0.0f;
            }
        }
    }

    // zlib: the define and the library must come together.
    std::cout << "zlib: " << (xcnn::has_zlib ? "yes" : "no") << '\n';
    if (xcnn::has_zlib)
    {
        const std::vector<unsigned char> bytes{'x', 'c', 'n', 'n'};
        xcnn::write_gzip_file("train_one_step.gz", bytes.data(), bytes.size());
        if (xcnn::read_gzip_file("train_one_step.gz") != bytes)
        {
            std::cerr << "FAIL: a .gz round trip changed the data\n";
            return 1;
        }
    }

    xcnn::Sequential net{xcnn::Conv2D<float>(1, 4, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::MaxPool2D<float>(2),
                         xcnn::Flatten<float>{}, xcnn::Dense<float>(4 * 4 * 4, 2)};
    net.reset_parameters(7u);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), /*lr=*/0.1f);

    const float before = loss.forward(net.forward(images), labels);
    net.backward(loss.backward());
    sgd.step();
    const float after = loss.forward(net.forward(images), labels);

    std::cout << "loss before the step " << before << ", after " << after << '\n';
    if (!std::isfinite(before) || !std::isfinite(after))
    {
        std::cerr << "FAIL: the loss is not finite\n";
        return 1;
    }
    if (!(after < before))
    {
        std::cerr << "FAIL: one SGD step did not lower the loss\n";
        return 1;
    }
    std::cout << "OK\n";
    return 0;
}
