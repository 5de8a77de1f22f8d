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

/// Every entry: TEMPLATE_LIST_TEST_CASE(..., xcnn_test::zoo::all).
using all = std::tuple<conv_3x3_same, conv_strided, conv_rectangular, conv_depthwise, conv_dilated, conv_no_bias, dense,
                       relu, softsign, flatten, maxpool, maxpool_2x2, channel_scale, nested_sequential>;

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
