// AvgPool2D: forward and backward against naive loops over kernels, strides and paddings on odd,
// non-square inputs (narrow windows summed with shifted vectors, wide ones window by window, and
// a window as large as the input), finite-difference gradients, PyTorch parity in double from
// tests/fixtures/torch_pools.py, and the error cases.
#include "catch_compat.hpp"

#include "support/naive_layers.hpp"
#include "support/require_error.hpp"
#include "support/torch_pools.hpp"

#include <xcnn/xcnn.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace
{

using xcnn::AvgPool2D;
namespace naive = xcnn_test::naive;
using size2 = std::array<std::size_t, 2>;
using shape4 = std::array<std::size_t, 4>;
using xcnn_test::identical;
using xcnn_test::max_scaled_error;
using xcnn_test::random_tensor;

std::string describe(const shape4& s, size2 k, size2 st, size2 p)
{
    std::ostringstream out;
    out << "input (" << s[0] << ", " << s[1] << ", " << s[2] << ", " << s[3] << ") kernel (" << k[0] << ", " << k[1]
        << ") stride (" << st[0] << ", " << st[1] << ") padding (" << p[0] << ", " << p[1] << ")";
    return out.str();
}

/// Forward, predict and backward of `layer` on `x` against the naive loops, to rounding: the sums
/// are taken in another order. Each output is scaled by the sum of the |x| it averages.
template <class T>
void check_against_naive(AvgPool2D<T>& layer, const xt::xtensor<T, 4>& x, std::mt19937& rng)
{
    const auto s = x.shape();
    const size2 k = layer.kernel_size(), st = layer.stride(), p = layer.padding();
    INFO(describe(s, k, st, p));
    const double tolerance = sizeof(T) == 4 ? 1e-6 : 1e-14;
    const auto expected = naive::avgpool2d(x, k, st, p);
    const xt::xtensor<T, 4> y = layer.forward(x);
    REQUIRE(xcnn_test::same_extents(y, expected));
    const xt::xtensor<double, 4> x_abs = xt::abs(xt::xtensor<double, 4>(xt::cast<double>(x)));
    const xt::xtensor<double, 4> y_scale = naive::avgpool2d(x_abs, k, st, p) + 1e-3;
    CHECK(max_scaled_error(y, expected, y_scale) <= tolerance);
    const auto declared = layer.output_shape({s[0], s[1], s[2], s[3]});
    CHECK(std::vector<std::size_t>(y.shape().begin(), y.shape().end()) == declared);

    const auto dy = random_tensor<T, 4>(y.shape(), rng);
    const auto expected_dx = naive::avgpool2d_backward(s, dy, k, st, p);
    const xt::xtensor<double, 4> dy_abs = xt::abs(xt::xtensor<double, 4>(xt::cast<double>(dy)));
    const xt::xtensor<double, 4> dx_scale = naive::avgpool2d_backward(s, dy_abs, k, st, p) + 1e-3;
    const auto& dx = layer.backward(dy);
    REQUIRE(dx.shape() == s);
    CHECK(max_scaled_error(dx, expected_dx, dx_scale) <= tolerance);

    CHECK(identical(layer.predict(x), y));
}

} // namespace

TEST_CASE("AvgPool2D: the naive reference and the layer reproduce hand-computed results", "[avgpool2d][naive]")
{
    // 1x1x3x4, kernel 2, stride 2, padding 1 (count_include_pad): every window divides by 4.
    // Padded rows -1..3 and columns -1..4: windows rows {-1,0}, {1,2}; columns {-1,0}, {1,2}, {3,4}.
    const xt::xtensor<double, 4> x = {{{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}}}};
    const xt::xtensor<double, 4> expected = {{{{1. / 4, 5. / 4, 4. / 4}, {14. / 4, 34. / 4, 20. / 4}}}};
    CHECK(max_scaled_error(naive::avgpool2d(x, {2, 2}, {2, 2}, {1, 1}), expected,
                           xt::xtensor<double, 4>(xt::ones<double>({1, 1, 2, 3}))) < 1e-15);
    AvgPool2D<double> layer(2, 2, 1);
    CHECK(max_scaled_error(layer.forward(x), expected, xt::xtensor<double, 4>(xt::ones<double>({1, 1, 2, 3}))) < 1e-15);
    const xt::xtensor<double, 4> dy = {{{{4, 8, 12}, {16, 20, 24}}}};
    // Row 0 is in the first row of windows, rows 1 and 2 in the second; columns 0 / 1, 2 / 3.
    const xt::xtensor<double, 4> dx = {{{{1, 2, 2, 3}, {4, 5, 5, 6}, {4, 5, 5, 6}}}};
    CHECK(identical(layer.backward(dy), dx));
    CHECK(identical(naive::avgpool2d_backward(x.shape(), dy, {2, 2}, {2, 2}, {1, 1}), dx));
}

TEST_CASE("AvgPool2D matches the naive loops for kernels 2 and 3, strides 1 to 3, padding 0 and 1", "[avgpool2d]")
{
    const std::size_t k = GENERATE(2, 3);
    const std::size_t s = GENERATE(1, 2, 3);
    const std::size_t p = GENERATE(0, 1);
    // Odd and non-square; widths up to several vectors so the shifted sums run their edge lanes.
    const std::vector<shape4> shapes = {{2, 3, 7, 5},  {1, 2, 8, 9},  {3, 1, 6, 11}, {1, 1, 3, 3},
                                        {2, 2, 10, 4}, {1, 2, 9, 37}, {1, 1, 4, 33}};
    std::mt19937 rng(static_cast<std::uint32_t>(100 * k + 10 * s + p));
    AvgPool2D<float> pool_f(k, s, p);
    AvgPool2D<double> pool_d(k, s, p);
    REQUIRE(pool_d.kernel_size() == (size2{k, k}));
    REQUIRE(pool_d.stride() == (size2{s, s}));
    REQUIRE(pool_d.padding() == (size2{p, p}));
    for (const auto& shape : shapes)
    {
        check_against_naive(pool_f, random_tensor<float, 4>(shape, rng), rng);
        check_against_naive(pool_d, random_tensor<double, 4>(shape, rng), rng);
    }
}

TEST_CASE("AvgPool2D: defaults, rectangular windows, wide windows and a window as large as the input", "[avgpool2d]")
{
    std::mt19937 rng(40);
    AvgPool2D<double> square(3);
    CHECK(square.stride() == (size2{3, 3}));
    CHECK(square.padding() == (size2{0, 0}));
    CHECK(square.name() == "AvgPool2D(kernel_size=(3, 3), stride=(3, 3))");
    CHECK(square.output_shape({1, 1, 8, 9}) == std::vector<std::size_t>{1, 1, 2, 3});
    check_against_naive(square, random_tensor<double, 4>({2, 2, 8, 9}, rng), rng);

    AvgPool2D<float> rect(size2{2, 3}, size2{1, 2}, size2{1, 1});
    CHECK(rect.name() == "AvgPool2D(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))");
    CHECK(rect.output_shape({2, 4, 7, 5}) == std::vector<std::size_t>{2, 4, 8, 3});
    check_against_naive(rect, random_tensor<float, 4>({2, 3, 7, 5}, rng), rng);

    // Wider than a vector of float (16) and of double (8): summed window by window.
    AvgPool2D<float> wide_f(size2{2, 19}, size2{1, 2}, size2{1, 9});
    AvgPool2D<double> wide_d(size2{3, 10}, size2{2, 3}, size2{1, 5});
    check_against_naive(wide_f, random_tensor<float, 4>({2, 2, 5, 40}, rng), rng);
    check_against_naive(wide_d, random_tensor<double, 4>({2, 2, 6, 23}, rng), rng);
    check_against_naive(wide_d, random_tensor<double, 4>({1, 1, 3, 10}, rng), rng); // one window

    // The window is the whole input: the plane-mean path GlobalAvgPool2D uses.
    AvgPool2D<double> whole(size2{7, 5});
    const auto x = random_tensor<double, 4>({2, 3, 7, 5}, rng);
    check_against_naive(whole, x, rng);
    xcnn::GlobalAvgPool2D<double> global;
    const xt::xtensor<double, 4> y = whole.forward(x);
    CHECK(max_scaled_error(xt::xtensor<double, 2>(xt::reshape_view(y, {2, 3})), global.forward(x),
                           xt::xtensor<double, 2>(xt::ones<double>({2, 3}))) < 1e-15);
}

TEST_CASE("AvgPool2D backward passes a finite-difference gradient check", "[avgpool2d][gradcheck]")
{
    const auto geometry =
        GENERATE(std::array<std::size_t, 6>{2, 2, 2, 2, 0, 0}, std::array<std::size_t, 6>{3, 3, 2, 2, 1, 1},
                 std::array<std::size_t, 6>{3, 3, 1, 1, 1, 1}, std::array<std::size_t, 6>{2, 3, 3, 1, 1, 1},
                 std::array<std::size_t, 6>{3, 2, 1, 3, 0, 1});
    const size2 kernel{geometry[0], geometry[1]}, stride{geometry[2], geometry[3]}, padding{geometry[4], geometry[5]};
    const shape4 shape{2, 3, 7, 5};
    INFO(describe(shape, kernel, stride, padding));
    std::mt19937 rng(41);
    AvgPool2D<double> layer(kernel, stride, padding);
    auto x = random_tensor<double, 4>(shape, rng);
    const auto out = layer.output_shape({2, 3, 7, 5});
    const auto r = random_tensor<double, 4>({out[0], out[1], out[2], out[3]}, rng);
    const auto check = xcnn_test::check_input_gradient(layer, x, r);
    CHECK(check.relative_error < 1e-8);
}

TEST_CASE("AvgPool2D matches PyTorch's AvgPool2d in double", "[avgpool2d][torch]")
{
    AvgPool2D<double> k2(2);
    xcnn_test::check_torch_pools(k2, "avg_k2");
    AvgPool2D<double> k3_s2_p1(3, 2, 1);
    xcnn_test::check_torch_pools(k3_s2_p1, "avg_k3_s2_p1");
    AvgPool2D<double> k3_s1_p1(3, 1, 1);
    xcnn_test::check_torch_pools(k3_s1_p1, "avg_k3_s1_p1");
    AvgPool2D<double> rect(size2{2, 3}, size2{1, 2}, size2{1, 1});
    xcnn_test::check_torch_pools(rect, "avg_k2x3_s1x2_p1x1");
    AvgPool2D<double> wide(5, 3, 2);
    xcnn_test::check_torch_pools(wide, "avg_k5_s3_p2_wide");
}

TEST_CASE("AvgPool2D: an empty batch, and buffers reused across shapes", "[avgpool2d]")
{
    std::mt19937 rng(42);
    AvgPool2D<double> layer(3, 2, 1);
    const xt::xtensor<double, 4> empty = xt::zeros<double>({0, 2, 5, 5});
    CHECK(layer.forward(empty).shape() == (shape4{0, 2, 3, 3}));
    CHECK(layer.backward(xt::xtensor<double, 4>(xt::zeros<double>({0, 2, 3, 3}))).shape() == empty.shape());
    for (const auto& shape : std::vector<shape4>{{1, 3, 5, 12}, {4, 1, 11, 3}, {2, 2, 9, 7}, {1, 3, 5, 12}})
    {
        check_against_naive(layer, random_tensor<double, 4>(shape, rng), rng);
    }
}

TEST_CASE("AvgPool2D reports invalid arguments and shapes", "[avgpool2d][errors]")
{
    using xcnn_test::require_error;
    SECTION("zero kernel or stride, padding over half the kernel: value_error naming the values")
    {
        require_error<xcnn::value_error>([] { AvgPool2D<double> pool(0); },
                                         {"AvgPool2D(kernel_size=(0, 0)", "kernel_size must be >= 1"});
        require_error<xcnn::value_error>([] { AvgPool2D<double> pool(2, 0); },
                                         {"stride=(0, 0)", "stride must be >= 1"});
        require_error<xcnn::value_error>([] { AvgPool2D<float> pool(3, 1, 2); },
                                         {"AvgPool2D(kernel_size=(3, 3), stride=(1, 1), padding=(2, 2))",
                                          "padding must be at most half the kernel size", "(2, 2)", "(3, 3)"});
        require_error<xcnn::value_error>(
            [] {
                AvgPool2D<float> pool(size2{2, 4}, size2{1, 1}, size2{1, 3});
            },
            {"AvgPool2D(", "padding=(1, 3)", "at most half"});
        const auto minus_one = static_cast<std::size_t>(-1);
        require_error<xcnn::value_error>([&] { AvgPool2D<float> pool(minus_one); },
                                         {"AvgPool2D(kernel_size=(", "negative number"});
        require_error<xcnn::value_error>([&] { AvgPool2D<float> pool(3, 1, minus_one); },
                                         {"AvgPool2D(", "padding", "negative number"});
    }
    SECTION("input smaller than the padded kernel: shape_error")
    {
        AvgPool2D<double> layer(3);
        const xt::xtensor<double, 4> x = xt::zeros<double>({1, 1, 2, 5});
        require_error<xcnn::shape_error>([&] { layer.forward(x); },
                                         {"AvgPool2D(kernel_size=(3, 3)", "(1, 1, 2, 5)", "smaller than the kernel"});
        AvgPool2D<double> padded(size2{5, 4}, size2{1, 1}, size2{1, 2});
        CHECK(padded.output_shape({1, 1, 3, 1}) == std::vector<std::size_t>{1, 1, 1, 2}); // 3 + 2 >= 5
        require_error<xcnn::shape_error>(
            [&] {
                padded.output_shape({1, 1, 2, 1});
            },
            {"AvgPool2D(kernel_size=(5, 4)", "(1, 1, 2, 1)", "padded by (1, 2)"});
    }
    SECTION("wrong rank, an empty axis, backward without forward, dY of the wrong shape")
    {
        AvgPool2D<double> layer(2);
        const xt::xarray<double> x3 = xt::zeros<double>({3, 4, 4});
        require_error<xcnn::shape_error>([&] { layer.forward(x3); }, {"AvgPool2D(", "(3, 4, 4)"});
        require_error<xcnn::shape_error>([&] { layer.output_shape({2, 0, 4, 4}); }, {"AvgPool2D(", "empty axis 1"});
        const xt::xtensor<double, 4> dy = xt::zeros<double>({1, 1, 2, 2});
        require_error<xcnn::error>([&] { layer.backward(dy); }, {"AvgPool2D(", "forward"});
        layer.forward(xt::xtensor<double, 4>(xt::zeros<double>({2, 3, 6, 5})));
        require_error<xcnn::shape_error>([&] { layer.backward(dy); }, {"AvgPool2D(", "(1, 1, 2, 2)", "(2, 3, 3, 2)"});
    }
}

TEST_CASE("AvgPool2D in a Sequential: through Flatten into Dense, trained by backward", "[avgpool2d][sequential]")
{
    std::mt19937 rng(43);
    xcnn::Sequential net{xcnn::Conv2D<double>(2, 3, 3, 1, 1), xcnn::AvgPool2D<double>(3, 2, 1), xcnn::Flatten<double>{},
                         xcnn::Dense<double>(3 * 3 * 3, 4)};
    const auto x = random_tensor<double, 4>({2, 2, 5, 6}, rng);
    CHECK(net.output_shape({2, 2, 5, 6}) == std::vector<std::size_t>{2, 4});
    const auto& y = net.forward(x);
    // The pooled features by hand: conv, then the layer alone, then Dense.
    auto conv = net.get<0>();
    auto pool = net.get<1>();
    auto dense = net.get<3>();
    const xt::xtensor<double, 4> pooled = pool.forward(conv.forward(x));
    const xt::xtensor<double, 2> rows = xt::reshape_view(pooled, {std::size_t(2), std::size_t(27)});
    CHECK(max_scaled_error(y, dense.forward(rows), xt::xtensor<double, 2>(xt::ones<double>({2, 4}))) < 1e-13);
    const auto dy = random_tensor<double, 2>({2, 4}, rng);
    CHECK(net.backward(dy).shape() == x.shape());
}
