// Every layer type of xcnn, and a user's own layer, described once for the tests that must hold
// for all of them (tests/test_layers.cpp, the zero-allocation case of tests/test_allocations.cpp):
// how to build each in float and double and an input it takes. A new layer gets an entry here
// and is checked by every such test.
//
// An entry `E` provides:
//   E::label                  how test output names it
//   E::make<T>()              the layer over scalar T, parameters drawn from a fixed seed
//   E::rank, E::input_shape() the rank and shape of an input it takes (batch 3 or less, N > 0)
//   E::takes_expressions      whether forward/predict/backward take any xtensor expression (an
//                             xt::xarray, a view); activations take xt::xtensor<T, N> of any N only
//   E::named(layer)           what every error message of the layer contains
//   E::buffer_count           how many buffers it has
#ifndef XCNN_TESTS_SUPPORT_LAYER_ZOO_HPP
#define XCNN_TESTS_SUPPORT_LAYER_ZOO_HPP

#include <xcnn/xcnn.hpp>

#include "../consumer/user_layer/channel_scale.hpp"
#include "../consumer/user_layer/softsign.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace xcnn_test
{
namespace zoo
{

/// What most entries share.
struct entry
{
    static constexpr bool takes_expressions = true;
    static constexpr std::size_t buffer_count = 0;
    template <class L>
    static std::string named(const L& layer)
    {
        return layer.name();
    }
};

struct conv_3x3_same : entry
{
    static constexpr const char* label = "Conv2D 3x3, stride 1, padding 1";
    template <class T>
    static xcnn::Conv2D<T> make()
    {
        return xcnn::Conv2D<T>(2, 3, 3, 1, 1);
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 5, 6}; }
};

struct conv_strided : entry
{
    static constexpr const char* label = "Conv2D 3x3, stride 2, no padding";
    template <class T>
    static xcnn::Conv2D<T> make()
    {
        return xcnn::Conv2D<T>(2, 3, 3, 2, 0);
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 7, 6}; }
};

struct conv_rectangular : entry
{
    static constexpr const char* label = "Conv2D 2x3, stride (2, 1), padding (1, 0)";
    template <class T>
    static xcnn::Conv2D<T> make()
    {
        return xcnn::Conv2D<T>(xcnn::Conv2DOptions(1, 2, {2, 3}).stride({2, 1}).padding({1, 0}));
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {3, 1, 5, 6}; }
};

struct conv_depthwise : entry
{
    static constexpr const char* label = "Conv2D depthwise 3x3, 2 filters per channel, stride 2, padding 1";
    template <class T>
    static xcnn::Conv2D<T> make()
    {
        return xcnn::Conv2D<T>(xcnn::Conv2DOptions(3, 6, 3).stride(2).padding(1).groups(3));
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 7, 6}; }
};

struct conv_dilated : entry
{
    static constexpr const char* label = "Conv2D 3x3, dilation (2, 1), 2 groups, padding (2, 1)";
    template <class T>
    static xcnn::Conv2D<T> make()
    {
        return xcnn::Conv2D<T>(xcnn::Conv2DOptions(4, 2, 3).padding({2, 1}).dilation({2, 1}).groups(2));
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 4, 6, 5}; }
};

struct conv_no_bias : entry
{
    static constexpr const char* label = "Conv2D 3x3 without bias";
    template <class T>
    static xcnn::Conv2D<T> make()
    {
        return xcnn::Conv2D<T>(xcnn::Conv2DOptions(2, 3, 3).padding(1).bias(false));
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 5, 4}; }
};

struct dense : entry
{
    static constexpr const char* label = "Dense";
    template <class T>
    static xcnn::Dense<T> make()
    {
        return xcnn::Dense<T>(6, 4);
    }
    static constexpr std::size_t rank = 2;
    static std::vector<std::size_t> input_shape() { return {3, 6}; }
};

struct relu : entry
{
    static constexpr const char* label = "ReLU";
    static constexpr bool takes_expressions = false;
    template <class T>
    static xcnn::ReLU<T> make()
    {
        return xcnn::ReLU<T>{};
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 2, 4}; }
};

struct leaky_relu : entry
{
    static constexpr const char* label = "LeakyReLU(0.2)";
    static constexpr bool takes_expressions = false;
    template <class T>
    static xcnn::LeakyReLU<T> make()
    {
        return xcnn::LeakyReLU<T>(T(0.2));
    }
    static constexpr std::size_t rank = 2;
    static std::vector<std::size_t> input_shape() { return {3, 7}; }
};

struct sigmoid : entry
{
    static constexpr const char* label = "Sigmoid";
    static constexpr bool takes_expressions = false;
    template <class T>
    static xcnn::Sigmoid<T> make()
    {
        return xcnn::Sigmoid<T>{};
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 2, 4}; }
};

struct tanh : entry
{
    static constexpr const char* label = "Tanh";
    static constexpr bool takes_expressions = false;
    template <class T>
    static xcnn::Tanh<T> make()
    {
        return xcnn::Tanh<T>{};
    }
    static constexpr std::size_t rank = 3;
    static std::vector<std::size_t> input_shape() { return {2, 3, 5}; }
};

struct gelu : entry
{
    static constexpr const char* label = "GELU (keeps its input)";
    static constexpr bool takes_expressions = false;
    template <class T>
    static xcnn::GELU<T> make()
    {
        return xcnn::GELU<T>{};
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 2, 4}; }
};

struct dropout : entry
{
    static constexpr const char* label = "Dropout(0.5) (stochastic: its gradients are checked with the mask fixed)";
    static constexpr bool takes_expressions = false;
    template <class T>
    static xcnn::Dropout<T> make()
    {
        return xcnn::Dropout<T>(0.5);
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 2, 4}; }
};

struct softsign : entry
{
    static constexpr const char* label = "Softsign (a user's activation)";
    static constexpr bool takes_expressions = false;
    template <class T>
    static my::Softsign<T> make()
    {
        return my::Softsign<T>{};
    }
    static constexpr std::size_t rank = 2;
    static std::vector<std::size_t> input_shape() { return {3, 5}; }
};

struct flatten : entry
{
    static constexpr const char* label = "Flatten";
    template <class T>
    static xcnn::Flatten<T> make()
    {
        return xcnn::Flatten<T>{};
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 2, 4}; }
};

struct maxpool : entry
{
    static constexpr const char* label = "MaxPool2D 2x3, stride (1, 2) (overlapping windows)";
    template <class T>
    static xcnn::MaxPool2D<T> make()
    {
        return xcnn::MaxPool2D<T>({2, 3}, {1, 2});
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 5, 7}; }
};

struct maxpool_2x2 : entry
{
    static constexpr const char* label = "MaxPool2D 2x2 (its own kernel)";
    template <class T>
    static xcnn::MaxPool2D<T> make()
    {
        return xcnn::MaxPool2D<T>(2);
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 6, 4}; }
};

struct maxpool_padded : entry
{
    static constexpr const char* label = "MaxPool2D 3x3, stride 2, padding 1 (ResNet's stem)";
    template <class T>
    static xcnn::MaxPool2D<T> make()
    {
        return xcnn::MaxPool2D<T>(3, 2, 1);
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 7, 5}; }
};

struct avgpool : entry
{
    static constexpr const char* label = "AvgPool2D 2x3, stride (1, 2), padding (1, 1)";
    template <class T>
    static xcnn::AvgPool2D<T> make()
    {
        return xcnn::AvgPool2D<T>({2, 3}, {1, 2}, {1, 1});
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 5, 7}; }
};

struct avgpool_2x2 : entry
{
    static constexpr const char* label = "AvgPool2D 2x2";
    template <class T>
    static xcnn::AvgPool2D<T> make()
    {
        return xcnn::AvgPool2D<T>(2);
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 6, 5}; }
};

struct global_avgpool : entry
{
    static constexpr const char* label = "GlobalAvgPool2D";
    template <class T>
    static xcnn::GlobalAvgPool2D<T> make()
    {
        return xcnn::GlobalAvgPool2D<T>{};
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 4, 5}; }
};

struct channel_scale : entry
{
    static constexpr const char* label = "ChannelScale (a user's layer with a parameter and a buffer)";
    template <class T>
    static my::ChannelScale<T> make()
    {
        my::ChannelScale<T> layer(3);
        layer.weight() = xt::xtensor<T, 1>{T(0.5), T(-1.5), T(2)}; // not the initial 1: dX must use them
        return layer;
    }
    static constexpr std::size_t buffer_count = 1;
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 4, 5}; }
};

struct batchnorm2d : entry
{
    static constexpr const char* label = "BatchNorm2D (statistics of the batch in training, running ones in eval)";
    template <class T>
    static xcnn::BatchNorm2D<T> make()
    {
        xcnn::BatchNorm2D<T> layer(3);
        layer.weight() = xt::xtensor<T, 1>{T(0.5), T(-1.5), T(2)}; // not the initial 1 and 0: dX must use them
        layer.bias() = xt::xtensor<T, 1>{T(0.25), T(-0.5), T(0.125)};
        return layer;
    }
    static constexpr std::size_t buffer_count = 3;
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 5, 7}; }
};

struct batchnorm1d : entry
{
    static constexpr const char* label = "BatchNorm1D";
    template <class T>
    static xcnn::BatchNorm1D<T> make()
    {
        // A large eps: over a batch of 2, (x - mean) / sqrt(var) is +-1 whatever x, and only eps
        // gives the finite-difference test an input gradient to check.
        xcnn::BatchNorm1D<T> layer(5, T(0.1), T(0.2));
        layer.weight() = xt::xtensor<T, 1>{T(0.5), T(-1.5), T(2), T(1), T(0.75)};
        layer.bias() = xt::xtensor<T, 1>{T(0.25), T(-0.5), T(0.125), T(0), T(1)};
        return layer;
    }
    static constexpr std::size_t buffer_count = 3;
    static constexpr std::size_t rank = 2;
    static std::vector<std::size_t> input_shape() { return {3, 5}; }
};

/// A Sequential is a layer: this one has fused steps (Flatten into Dense), a user's layer with a
/// buffer and every kind of library layer.
struct nested_sequential : entry
{
    static constexpr const char* label = "nested Sequential";
    static constexpr std::size_t buffer_count = 1;
    template <class T>
    static auto make()
    {
        return xcnn::Sequential{xcnn::Conv2D<T>(2, 3, 3, 1, 1), my::ChannelScale<T>(3), xcnn::ReLU<T>{},
                                xcnn::MaxPool2D<T>(2),          xcnn::Flatten<T>{},     xcnn::Dense<T>(3 * 2 * 3, 4)};
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 5, 6}; }
    /// A Sequential's errors start "Sequential layer <index>: " or "Sequential of <n> layers".
    template <class L>
    static std::string named(const L&)
    {
        return "Sequential";
    }
};

/// A residual block that adds its input: x + main(x).
struct residual_identity : entry
{
    static constexpr const char* label = "Residual(main): x + main(x)";
    template <class T>
    static auto make()
    {
        return xcnn::Residual(
            xcnn::Sequential{xcnn::Conv2D<T>(3, 3, 3, 1, 1), xcnn::ReLU<T>{}, xcnn::Conv2D<T>(3, 3, 3, 1, 1)});
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 3, 5, 6}; }
    /// Errors of the block start with its name, "Residual(main=...".
    template <class L>
    static std::string named(const L&)
    {
        return "Residual(main=";
    }
};

/// ResNet's projection block: main(x) + shortcut(x), a 1x1 stride-2 convolution with a buffered
/// layer after it (as BatchNorm would be) in the shortcut.
struct residual_projection : entry
{
    static constexpr const char* label = "Residual(main, shortcut) with a stride-2 1x1 projection and a buffer";
    static constexpr std::size_t buffer_count = 1;
    template <class T>
    static auto make()
    {
        my::ChannelScale<T> scale(4);
        scale.weight() = xt::xtensor<T, 1>{T(0.5), T(-1.5), T(2), T(1.25)};
        return xcnn::Residual(
            xcnn::Sequential{xcnn::Conv2D<T>(2, 4, 3, 2, 1), xcnn::ReLU<T>{}, xcnn::Conv2D<T>(4, 4, 3, 1, 1)},
            xcnn::Sequential{xcnn::Conv2D<T>(2, 4, 1, 2), std::move(scale)});
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 5, 6}; }
    /// Errors of the block start with its name, "Residual(main=...".
    template <class L>
    static std::string named(const L&)
    {
        return "Residual(main=";
    }
};

/// The layers of `nested_sequential` in a `Network`, chained at run time.
struct network : entry
{
    static constexpr const char* label = "Network (layers chained at run time)";
    static constexpr std::size_t buffer_count = 1;
    template <class T>
    static auto make()
    {
        return xcnn::Network<T>(nested_sequential::make<T>());
    }
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 5, 6}; }
    /// A Network's errors start "Network layer <index>: " or "Network of <n> layers".
    template <class L>
    static std::string named(const L&)
    {
        return "Network";
    }
};

/// `residual_projection` with `Network` branches.
struct residual_of_networks : entry
{
    static constexpr const char* label = "Residual(main, shortcut) of two Networks";
    template <class T>
    static auto make()
    {
        using branch = xcnn::Network<T, 4, 4>;
        return xcnn::Residual(
            branch(xcnn::Conv2D<T>(2, 4, 3, 2, 1), xcnn::ReLU<T>{}, xcnn::Conv2D<T>(4, 4, 3, 1, 1)),
            branch(xcnn::Conv2D<T>(xcnn::Conv2DOptions(2, 4, 1).stride(2).bias(false)), xcnn::BatchNorm2D<T>(4)));
    }
    static constexpr std::size_t buffer_count = 3;
    static constexpr std::size_t rank = 4;
    static std::vector<std::size_t> input_shape() { return {2, 2, 5, 6}; }
    /// Errors of the block start with its name, "Residual(main=...".
    template <class L>
    static std::string named(const L&)
    {
        return "Residual(main=";
    }
};

/// Every entry: TEMPLATE_LIST_TEST_CASE(..., xcnn_test::zoo::all).
using all = std::tuple<conv_3x3_same, conv_strided, conv_rectangular, conv_depthwise, conv_dilated, conv_no_bias, dense,
                       relu, leaky_relu, sigmoid, tanh, gelu, dropout, softsign, flatten, maxpool, maxpool_2x2,
                       maxpool_padded, avgpool, avgpool_2x2, global_avgpool, channel_scale, batchnorm2d, batchnorm1d,
                       nested_sequential, residual_identity, residual_projection, network, residual_of_networks>;

/// The layer type of entry `E` over `T`.
template <class E, class T>
using layer_t = decltype(E::template make<T>());

/// The rank of what the layer of `E` returns for its input.
template <class E, class T>
constexpr std::size_t output_rank = layer_t<E, T>::output_rank == xcnn::any_rank
                                        ? E::rank
                                        : static_cast<std::size_t>(layer_t<E, T>::output_rank);

/// An input for the layer of `E`, U(-1, 1) from `rng`, with batch `batch`.
template <class E, class T>
xt::xtensor<T, E::rank> input(std::mt19937& rng, std::size_t batch)
{
    auto shape = E::input_shape();
    shape[0] = batch;
    std::array<std::size_t, E::rank> s{};
    std::copy(shape.begin(), shape.end(), s.begin());
    xt::xtensor<T, E::rank> x(s);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    for (auto& v : x)
    {
        v = static_cast<T>(u(rng));
    }
    return x;
}

/// A tensor of `shape` (of rank N), U(-1, 1) from `rng`.
template <class T, std::size_t N>
xt::xtensor<T, N> random_of_shape(const std::vector<std::size_t>& shape, std::mt19937& rng)
{
    std::array<std::size_t, N> s{};
    std::copy(shape.begin(), shape.end(), s.begin());
    xt::xtensor<T, N> t(s);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    for (auto& v : t)
    {
        v = static_cast<T>(u(rng));
    }
    return t;
}

/// Whether `L::buffers()` exists (Conv2D is not on the layer base yet and has none).
template <class L>
constexpr bool has_buffers = xcnn::detail::has_buffers<L, typename L::value_type>::value;

/// The buffers of `layer`, or none.
template <class L>
auto buffers_of(L& layer)
{
    if constexpr (has_buffers<L>)
    {
        return layer.buffers();
    }
    else
    {
        return std::vector<xcnn::buffer<typename L::value_type>>{};
    }
}

/// The generators of `layer` (a stochastic layer's, core/generator.hpp), or none.
template <class L>
std::vector<xcnn::generator_handle> generators_of(L& layer)
{
    if constexpr (xcnn::detail::has_generators<L>::value)
    {
        return layer.generators();
    }
    else
    {
        return {};
    }
}

/// Every value of every parameter of `layer`, then of every buffer.
template <class L>
std::vector<typename L::value_type> state_of(L& layer)
{
    std::vector<typename L::value_type> out;
    for (const auto& p : layer.parameters())
    {
        out.insert(out.end(), p.data(), p.data() + p.size());
    }
    for (const auto& b : buffers_of(layer))
    {
        out.insert(out.end(), b.data(), b.data() + b.size());
    }
    return out;
}

} // namespace zoo
} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_LAYER_ZOO_HPP
