// GlobalAvgPool2D: the mean of each plane against naive loops (plane counts around multiples of
// the vector size, planes smaller and larger than a vector), finite-difference gradients, PyTorch
// parity with AdaptiveAvgPool2d(1) + Flatten, a Dense straight after it in a Sequential, and the
// error cases.
#include "catch_compat.hpp"

#include "support/naive_layers.hpp"
#include "support/require_error.hpp"
#include "support/torch_pools.hpp"

#include <xcnn/xcnn.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace
{

using xcnn::GlobalAvgPool2D;
namespace naive = xcnn_test::naive;
using shape4 = std::array<std::size_t, 4>;
using xcnn_test::max_scaled_error;
using xcnn_test::random_tensor;

/// y (N, C): the mean of each plane, summed in double; dX: dy / (H W) everywhere in the plane.
template <class T>
void check_against_naive(GlobalAvgPool2D<T>& layer, const xt::xtensor<T, 4>& x, std::mt19937& rng)
{
    const auto s = x.shape();
    INFO("input (" << s[0] << ", " << s[1] << ", " << s[2] << ", " << s[3] << ")");
    // The naive average pooling with the plane as its window, read as (N, C).
    const xt::xtensor<double, 4> means = naive::avgpool2d(x, {s[2], s[3]}, {1, 1}, {0, 0});
    const xt::xtensor<double, 4> x_abs = xt::abs(xt::xtensor<double, 4>(xt::cast<double>(x)));
    const xt::xtensor<double, 4> scale = naive::avgpool2d(x_abs, {s[2], s[3]}, {1, 1}, {0, 0}) + 1e-3;
    const double tolerance = sizeof(T) == 4 ? 1e-6 : 1e-14;
    const xt::xtensor<T, 2> y = layer.forward(x);
    REQUIRE(y.shape() == (std::array<std::size_t, 2>{s[0], s[1]}));
    CHECK(max_scaled_error(y, means, scale) <= tolerance);
    CHECK(layer.output_shape({s[0], s[1], s[2], s[3]}) == std::vector<std::size_t>{s[0], s[1]});

    const auto dy = random_tensor<T, 2>({s[0], s[1]}, rng);
    const xt::xtensor<T, 4> dy4 = xt::reshape_view(dy, {s[0], s[1], std::size_t(1), std::size_t(1)});
    const auto expected_dx = naive::avgpool2d_backward(s, dy4, {s[2], s[3]}, {1, 1}, {0, 0});
    const auto& dx = layer.backward(dy);
    REQUIRE(dx.shape() == s);
    CHECK(max_scaled_error(dx, expected_dx, xt::xtensor<double, 4>(xt::abs(expected_dx) + 1e-30)) <=
          (sizeof(T) == 4 ? 1e-6 : 1e-15));
    CHECK(xcnn_test::identical(layer.predict(x), y));
}

} // namespace

TEST_CASE("GlobalAvgPool2D matches the naive means for many plane counts and sizes", "[global_avgpool2d]")
{
    std::mt19937 rng(50);
    GlobalAvgPool2D<float> pool_f;
    GlobalAvgPool2D<double> pool_d;
    CHECK(pool_f.name() == "GlobalAvgPool2D()");
    // N * C around multiples of the vector sizes (8, 16); planes of 1, 9, 35, 64, 37 and 66
    // elements: below, at and above a vector.
    const std::vector<shape4> shapes = {{2, 3, 7, 5},   {1, 1, 1, 1},   {3, 5, 3, 3}, {2, 8, 8, 8},
                                        {1, 17, 1, 37}, {2, 16, 2, 33}, {4, 9, 8, 8}, {1, 40, 6, 11}};
    for (const auto& shape : shapes)
    {
        check_against_naive(pool_f, random_tensor<float, 4>(shape, rng), rng);
        check_against_naive(pool_d, random_tensor<double, 4>(shape, rng), rng);
    }
    const xt::xtensor<double, 4> empty = xt::zeros<double>({0, 3, 4, 4});
    CHECK(pool_d.forward(empty).shape() == (std::array<std::size_t, 2>{0, 3}));
    CHECK(pool_d.backward(xt::xtensor<double, 2>(xt::zeros<double>({0, 3}))).shape() == empty.shape());
}

TEST_CASE("GlobalAvgPool2D backward passes a finite-difference gradient check", "[global_avgpool2d][gradcheck]")
{
    std::mt19937 rng(51);
    GlobalAvgPool2D<double> layer;
    for (const auto& shape : std::vector<shape4>{{2, 3, 7, 5}, {3, 9, 2, 2}})
    {
        auto x = random_tensor<double, 4>(shape, rng);
        const auto r = random_tensor<double, 2>({shape[0], shape[1]}, rng);
        const auto check = xcnn_test::check_input_gradient(layer, x, r);
        CHECK(check.relative_error < 1e-8);
    }
}

TEST_CASE("GlobalAvgPool2D matches PyTorch's AdaptiveAvgPool2d(1) + Flatten in double", "[global_avgpool2d][torch]")
{
    GlobalAvgPool2D<double> layer;
    xcnn_test::check_torch_pools(layer, "global_avg");
    xcnn_test::check_torch_pools(layer, "global_avg_large");
}

TEST_CASE("GlobalAvgPool2D feeds a Dense directly in a Sequential", "[global_avgpool2d][sequential]")
{
    using net_type = xcnn::Sequential<xcnn::Conv2D<double>, GlobalAvgPool2D<double>, xcnn::Dense<double>>;
    STATIC_REQUIRE(net_type::plan[1] == xcnn::detail::step_kind::single);
    std::mt19937 rng(52);
    net_type net{xcnn::Conv2D<double>(2, 6, 3, 1, 1), GlobalAvgPool2D<double>{}, xcnn::Dense<double>(6, 4)};
    const auto x = random_tensor<double, 4>({3, 2, 5, 7}, rng);
    CHECK(net.output_shape({3, 2, 5, 7}) == std::vector<std::size_t>{3, 4});
    const xt::xtensor<double, 2> y = net.forward(x);
    auto conv = net.get<0>();
    auto dense = net.get<2>();
    const xt::xtensor<double, 4> features = conv.forward(x);
    const xt::xtensor<double, 2> means = xt::mean(features, {2, 3});
    CHECK(max_scaled_error(y, dense.forward(means), xt::xtensor<double, 2>(xt::ones<double>({3, 4}))) < 1e-13);
    // Gradients through the whole network against central differences of the input.
    const auto r = random_tensor<double, 2>({3, 4}, rng);
    auto xv = x;
    const auto check = xcnn_test::check_input_gradient(net, xv, r);
    CHECK(check.relative_error < 1e-8);
}

TEST_CASE("GlobalAvgPool2D reports invalid shapes", "[global_avgpool2d][errors]")
{
    using xcnn_test::require_error;
    GlobalAvgPool2D<float> layer;
    const xt::xarray<float> x3 = xt::zeros<float>({3, 4, 4});
    require_error<xcnn::shape_error>([&] { layer.forward(x3); }, {"GlobalAvgPool2D()", "(3, 4, 4)"});
    require_error<xcnn::shape_error>(
        [&] {
            layer.output_shape({2, 3, 0, 4});
        },
        {"GlobalAvgPool2D()", "(2, 3, 0, 4)", "empty axis 2"});
    const xt::xtensor<float, 2> dy = xt::zeros<float>({2, 3});
    require_error<xcnn::error>([&] { layer.backward(dy); }, {"GlobalAvgPool2D()", "forward"});
    layer.forward(xt::xtensor<float, 4>(xt::zeros<float>({2, 4, 3, 3})));
    require_error<xcnn::shape_error>([&] { layer.backward(dy); }, {"GlobalAvgPool2D()", "(2, 3)", "(2, 4)"});
    const xt::xarray<float> dy3 = xt::zeros<float>({2, 4, 1});
    require_error<xcnn::shape_error>([&] { layer.backward(dy3); }, {"GlobalAvgPool2D()", "(2, 4, 1)"});
}
