// Networks exported to ONNX by tests/test_onnx.cpp and tests/tools/onnx_test_tool.cpp (whose files
// tests/fixtures/onnx_check.py and onnx_ort_parity.js check): LeNet, the BatchNorm ResNet of
// examples/mnist/models.hpp and a network of every other exportable layer, with weights and
// BatchNorm statistics drawn from a seed so that no parameter has its trivial initial value.
#ifndef XCNN_TESTS_SUPPORT_ONNX_MODELS_HPP
#define XCNN_TESTS_SUPPORT_ONNX_MODELS_HPP

#include "models.hpp"

#include <xcnn/xcnn.hpp>

#include <cstddef>
#include <random>
#include <vector>

namespace onnx_models
{

/// Every layer kind save_onnx exports but those of LeNet and the ResNet, on a (N, 3, 13, 11)
/// input: a non-square kernel with non-square padding, a depthwise convolution without bias, a
/// dilated strided convolution, padded pools, the activations, Dropout, BatchNorm in 2-D and
/// 1-D, and an identity Residual.
template <class T>
auto make_zoo()
{
    return xcnn::Sequential{
        xcnn::Conv2D<T>(xcnn::Conv2DOptions(3, 8, {3, 5}).padding({1, 2})),              // (8, 13, 11)
        xcnn::BatchNorm2D<T>(8, T(1e-3), T(0.2)),                                        //
        xcnn::LeakyReLU<T>(T(0.2)),                                                      //
        xcnn::Conv2D<T>(xcnn::Conv2DOptions(8, 8, 3).groups(8).padding(1).bias(false)),  // depthwise
        xcnn::GELU<T>{},                                                                 //
        xcnn::Conv2D<T>(xcnn::Conv2DOptions(8, 12, 3).dilation(2).padding(2).stride(2)), // (12, 7, 6)
        xcnn::Sigmoid<T>{},                                                              //
        xcnn::MaxPool2D<T>(3, 2, 1),                                                     // (12, 4, 3)
        xcnn::AvgPool2D<T>(2, 1, 1),                                                     // (12, 5, 4)
        xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<T>(12, 12, 3, 1, 1), xcnn::Tanh<T>{}}),
        xcnn::Dropout<T>(0.5),    //
        xcnn::Flatten<T>{},       // 240
        xcnn::Dense<T>(240, 16),  //
        xcnn::BatchNorm1D<T>(16), //
        xcnn::Tanh<T>{},          //
        xcnn::Dense<T>(16, 5)};
}

/// The input shape of `make_zoo` for a batch of `n`.
inline std::vector<std::size_t> zoo_input_shape(std::size_t n)
{
    return {n, 3, 13, 11};
}

/// Gives every parameter and buffer of `net` values drawn from `seed`: weights around their
/// initial scale, BatchNorm weights in [0.5, 1.5], running means in [-0.5, 0.5] and running
/// variances in [0.5, 2], so that a mix-up between any two of them changes the outputs.
template <class Net>
void randomize(Net& net, unsigned seed)
{
    using T = typename Net::value_type;
    std::mt19937 rng(seed);
    net.reset_parameters(rng);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (auto& p : net.parameters())
    {
        // BatchNorm weights start at 1 and biases at 0 (they draw nothing): move them too.
        const bool batchnorm = p.layer().find("BatchNorm") != std::string::npos;
        if (!batchnorm)
        {
            continue;
        }
        const bool weight = p.name().size() >= 6 && p.name().compare(p.name().size() - 6, 6, "weight") == 0;
        for (std::size_t i = 0; i < p.size(); ++i)
        {
            p.data()[i] = static_cast<T>(weight ? 0.5 + u(rng) : u(rng) - 0.5);
        }
    }
    for (auto& b : net.buffers())
    {
        const std::string& name = b.name();
        const bool mean = name.find("running_mean") != std::string::npos;
        const bool var = name.find("running_var") != std::string::npos;
        for (std::size_t i = 0; (mean || var) && i < b.size(); ++i)
        {
            b.data()[i] = static_cast<T>(mean ? u(rng) - 0.5 : 0.5 + 1.5 * u(rng));
        }
    }
}

/// A tensor of `shape` with values uniform in [-1, 1] drawn from `seed`.
template <class T>
xt::xtensor<T, 4> random_input(const std::vector<std::size_t>& shape, unsigned seed)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    xt::xtensor<T, 4> x(std::array<std::size_t, 4>{shape[0], shape[1], shape[2], shape[3]});
    for (auto& v : x)
    {
        v = static_cast<T>(u(rng));
    }
    return x;
}

} // namespace onnx_models

#endif // XCNN_TESTS_SUPPORT_ONNX_MODELS_HPP
