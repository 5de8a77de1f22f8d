// MaxPool2D: forward and backward against naive loops for overlapping, non-divisible and padded
// geometries, the three kernels against each other, a finite-difference check on tie-free
// inputs, tie-breaking, NaN propagation, PyTorch parity in double (tests/fixtures/torch_pools.py)
// and the error cases.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"
#include "support/require_error.hpp"
#include "support/torch_pools.hpp"

#include <xcnn/layers/maxpool2d.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace
{

using xcnn::MaxPool2D;
namespace naive = xcnn_test::naive;
using size2 = std::array<std::size_t, 2>;
using xcnn_test::identical;
using xcnn_test::max_scaled_error;
using xcnn_test::random_tensor;

/// A tensor whose values are a seeded random permutation of {0, 0.1, 0.2, ...} - offset: all
/// distinct and at least 0.1 apart, so no window has a tie and no finite-difference step can
/// change an argmax.
template <class T>
xt::xtensor<T, 4> distinct_values(const std::array<std::size_t, 4>& shape, std::mt19937& rng)
{
    xt::xtensor<T, 4> x(shape);
    std::vector<std::size_t> order(x.size());
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::shuffle(order.begin(), order.end(), rng);
    const double offset = 0.05 * static_cast<double>(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        x.data()[i] = static_cast<T>(0.1 * static_cast<double>(order[i]) - offset);
    }
    return x;
}

std::string describe(const std::array<std::size_t, 4>& s, size2 k, size2 st, size2 p = {0, 0})
{
    std::ostringstream out;
    out << "input (" << s[0] << ", " << s[1] << ", " << s[2] << ", " << s[3] << ") kernel (" << k[0] << ", " << k[1]
        << ") stride (" << st[0] << ", " << st[1] << ") padding (" << p[0] << ", " << p[1] << ")";
    return out.str();
}

/// Forward, predict and backward of `layer` on `x` against the naive loops. The maximum is
/// exact, so y must be identical; dX may differ only by the order of the sums of overlapping
/// windows.
template <class T>
void check_against_naive(MaxPool2D<T>& layer, const xt::xtensor<T, 4>& x, std::mt19937& rng)
{
    const auto s = x.shape();
    INFO(describe(s, layer.kernel_size(), layer.stride(), layer.padding()));
    const auto expected = naive::maxpool2d(x, layer.kernel_size(), layer.stride(), layer.padding());
    const xt::xtensor<T, 4> y = layer.forward(x);
    CHECK(identical(y, expected.y));
    const auto declared = layer.output_shape({s[0], s[1], s[2], s[3]});
    CHECK(std::vector<std::size_t>(y.shape().begin(), y.shape().end()) == declared);

    const auto dy = random_tensor<T, 4>(y.shape(), rng);
    const auto expected_dx = naive::maxpool2d_backward(expected, s, dy);
    xt::xtensor<double, 4> scale = xt::abs(expected_dx) + 1.0;
    const auto& dx = layer.backward(dy);
    REQUIRE(dx.shape() == s);
    CHECK(max_scaled_error(dx, expected_dx, scale) <= (sizeof(T) == 4 ? 1e-6 : 1e-14));

    CHECK(identical(layer.predict(x), y));
}

} // namespace

TEST_CASE("MaxPool2D: the naive reference and the layer reproduce hand-computed results", "[maxpool2d][naive]")
{
    // 1x1x4x5, kernel 2, stride 2: windows over rows {0,1}, {2,3} and columns {0,1}, {2,3};
    // column 4 is dropped (floor mode).
    const xt::xtensor<double, 4> x = {{{{1, 9, 2, 3, 99}, {4, 5, 8, 7, 99}, {-1, -2, 0, 6, 99}, {-3, -4, 6, 5, 99}}}};
    const xt::xtensor<double, 4> expected = {{{{9, 8}, {-1, 6}}}};
    CHECK(identical(naive::maxpool2d(x, {2, 2}, {2, 2}).y, expected));
    MaxPool2D<double> layer(2);
    CHECK(identical(layer.forward(x), expected));
    const xt::xtensor<double, 4> dy = {{{{1, 2}, {3, 4}}}};
    const xt::xtensor<double, 4> dx = {{{{0, 1, 0, 0, 0}, {0, 0, 2, 0, 0}, {3, 0, 0, 4, 0}, {0, 0, 0, 0, 0}}}};
    CHECK(identical(layer.backward(dy), dx));
}

TEST_CASE("MaxPool2D matches the naive loops for kernels 2 and 3, strides 1 to 3, padding 0 and 1", "[maxpool2d]")
{
    const std::size_t k = GENERATE(2, 3);
    const std::size_t s = GENERATE(1, 2, 3);
    const std::size_t p = GENERATE(0, 1);
    // Non-square, with extents that are and are not reached exactly by the windows; widths up to
    // several vectors, odd and even, so the vectorised 2 x 2 kernel runs its edge lanes too.
    const std::vector<std::array<std::size_t, 4>> shapes = {{2, 3, 7, 9},  {1, 2, 8, 5},  {3, 1, 6, 11},
                                                            {1, 1, 3, 3},  {2, 2, 10, 4}, {2, 3, 28, 28},
                                                            {1, 2, 9, 37}, {1, 1, 4, 33}, {2, 3, 7, 5}};
    std::mt19937 rng(static_cast<std::uint32_t>(100 * k + 10 * s + p));
    MaxPool2D<float> pool_f(k, s, p);
    MaxPool2D<double> pool_d(k, s, p);
    REQUIRE(pool_d.kernel_size() == (size2{k, k}));
    REQUIRE(pool_d.stride() == (size2{s, s}));
    REQUIRE(pool_d.padding() == (size2{p, p}));
    for (const auto& shape : shapes)
    {
        check_against_naive(pool_f, random_tensor<float, 4>(shape, rng), rng);
        check_against_naive(pool_d, random_tensor<double, 4>(shape, rng), rng);
        // Many ties: values from {-1, 0, 1}.
        auto ties = random_tensor<double, 4>(shape, rng, -1.5, 1.5);
        for (auto& v : ties)
        {
            v = std::round(v);
        }
        check_against_naive(pool_d, ties, rng);
    }
}

TEST_CASE("MaxPool2D: stride defaults to the kernel, rectangular kernels and strides", "[maxpool2d]")
{
    std::mt19937 rng(40);
    MaxPool2D<double> square(3);
    CHECK(square.stride() == (size2{3, 3}));
    CHECK(square.output_shape({1, 1, 8, 9}) == std::vector<std::size_t>{1, 1, 2, 3});
    check_against_naive(square, random_tensor<double, 4>({2, 2, 8, 9}, rng), rng);

    MaxPool2D<double> rect(size2{2, 3});
    CHECK(rect.kernel_size() == (size2{2, 3}));
    CHECK(rect.stride() == (size2{2, 3}));
    CHECK(rect.output_shape({2, 4, 7, 11}) == std::vector<std::size_t>{2, 4, 3, 3});
    check_against_naive(rect, random_tensor<double, 4>({2, 4, 7, 11}, rng), rng);

    MaxPool2D<float> rect_stride(size2{3, 2}, size2{1, 3});
    CHECK(rect_stride.output_shape({1, 2, 6, 9}) == std::vector<std::size_t>{1, 2, 4, 3});
    check_against_naive(rect_stride, random_tensor<float, 4>({1, 2, 6, 9}, rng), rng);
    check_against_naive(rect_stride, random_tensor<float, 4>({3, 1, 3, 2}, rng), rng); // one window
}

TEST_CASE("MaxPool2D backward passes a finite-difference gradient check (no ties)", "[maxpool2d][gradcheck]")
{
    const auto geometry =
        GENERATE(std::array<std::size_t, 6>{2, 2, 2, 2, 0, 0}, std::array<std::size_t, 6>{3, 3, 1, 1, 0, 0},
                 std::array<std::size_t, 6>{3, 3, 2, 2, 0, 0}, std::array<std::size_t, 6>{2, 3, 3, 1, 0, 0},
                 std::array<std::size_t, 6>{3, 2, 3, 2, 0, 0}, std::array<std::size_t, 6>{3, 3, 2, 2, 1, 1},
                 std::array<std::size_t, 6>{2, 3, 1, 2, 1, 1}, std::array<std::size_t, 6>{2, 2, 1, 1, 1, 0});
    const size2 kernel{geometry[0], geometry[1]}, stride{geometry[2], geometry[3]}, padding{geometry[4], geometry[5]};
    const std::array<std::size_t, 4> shape{2, 3, 7, 8};
    INFO(describe(shape, kernel, stride, padding));
    std::mt19937 rng(41);
    MaxPool2D<double> layer(kernel, stride, padding);
    auto x = distinct_values<double>(shape, rng);
    const auto out = layer.output_shape({2, 3, 7, 8});
    const auto r = random_tensor<double, 4>({out[0], out[1], out[2], out[3]}, rng);
    const auto check = xcnn_test::check_input_gradient(layer, x, r);
    CHECK(check.relative_error < 1e-6);
    // Each output's gradient lands on exactly one input: the total is preserved.
    double total_dy = 0, total_dx = 0;
    for (auto v : r)
    {
        total_dy += v;
    }
    for (auto v : check.analytic)
    {
        total_dx += v;
    }
    CHECK_THAT(total_dx, xcnn_test::near(total_dy, 1e-12));
}

TEST_CASE("MaxPool2D: ties go to the first maximum in row-major window order", "[maxpool2d]")
{
    MaxPool2D<float> layer(2);
    // Window (0, 0): all equal -> (0, 0). Window (0, 1): maxima at (0, 3) and (1, 2) -> (0, 3).
    // Window (1, 0): maxima at (3, 0) and (3, 1) -> (3, 0). Window (1, 1): (2, 2) and (3, 3) -> (2, 2).
    const xt::xtensor<float, 4> x = {{{{5, 5, 1, 7}, {5, 5, 7, 0}, {0, 0, 4, 3}, {2, 2, 1, 4}}}};
    const xt::xtensor<float, 4> expected = {{{{5, 7}, {2, 4}}}};
    CHECK(identical(layer.forward(x), expected));
    const xt::xtensor<float, 4> dy = {{{{1, 2}, {3, 4}}}};
    const xt::xtensor<float, 4> dx = {{{{1, 0, 0, 2}, {0, 0, 0, 0}, {0, 0, 4, 0}, {3, 0, 0, 0}}}};
    CHECK(identical(layer.backward(dy), dx));
    CHECK(identical(naive::maxpool2d_backward(naive::maxpool2d(x, {2, 2}, {2, 2}), x.shape(), dy), dx));

    SECTION("overlapping windows sharing a maximum sum their gradients")
    {
        MaxPool2D<double> overlap(2, 1);
        const xt::xtensor<double, 4> x2 = {{{{0, 0, 0}, {0, 9, 0}, {0, 0, 0}}}};
        CHECK(identical(overlap.forward(x2), xt::xtensor<double, 4>{{{{9, 9}, {9, 9}}}}));
        const xt::xtensor<double, 4> dy2 = {{{{1, 2}, {4, 8}}}};
        CHECK(identical(overlap.backward(dy2), xt::xtensor<double, 4>{{{{0, 0, 0}, {0, 15, 0}, {0, 0, 0}}}}));
    }
    SECTION("all -inf: the first element")
    {
        MaxPool2D<double> pool(size2{1, 3});
        const double inf = std::numeric_limits<double>::infinity();
        const xt::xtensor<double, 4> x3 = {{{{-inf, -inf, -inf}}}};
        CHECK(identical(pool.forward(x3), xt::xtensor<double, 4>{{{{-inf}}}}));
        CHECK(identical(pool.backward(xt::xtensor<double, 4>{{{{1}}}}), xt::xtensor<double, 4>{{{{1, 0, 0}}}}));
    }
}

TEST_CASE("MaxPool2D: NaN in a window propagates to the output", "[maxpool2d]")
{
    const double nan = std::numeric_limits<double>::quiet_NaN();
    MaxPool2D<double> layer(2);
    // NaN first in window (0, 0) followed by larger values; NaN last in window (0, 1) after the
    // maximum; two NaNs in window (1, 0); window (1, 1) clean.
    const xt::xtensor<double, 4> x = {{{{nan, 5, 1, 7}, {3, 4, 2, nan}, {nan, 1, 1, 2}, {0, nan, 3, 0}}}};
    const auto& y = layer.forward(x);
    CHECK(std::isnan(y(0, 0, 0, 0)));
    CHECK(std::isnan(y(0, 0, 0, 1)));
    CHECK(std::isnan(y(0, 0, 1, 0)));
    CHECK(y(0, 0, 1, 1) == 3.0);
    const auto expected = naive::maxpool2d(x, {2, 2}, {2, 2});
    // The gradient goes to the (first) NaN, as PyTorch's indices do.
    const xt::xtensor<double, 4> dy = {{{{1, 2}, {3, 4}}}};
    const xt::xtensor<double, 4> dx = {{{{1, 0, 0, 0}, {0, 0, 0, 2}, {3, 0, 0, 0}, {0, 0, 4, 0}}}};
    CHECK(identical(layer.backward(dy), dx));
    CHECK(identical(naive::maxpool2d_backward(expected, x.shape(), dy), dx));

    SECTION("float, overlapping windows: only the windows containing the NaN")
    {
        MaxPool2D<float> pool(3, 1);
        xt::xtensor<float, 4> xf = xt::zeros<float>({1, 2, 5, 5});
        xf(0, 1, 4, 4) = std::numeric_limits<float>::quiet_NaN();
        const auto& yf = pool.forward(xf);
        REQUIRE(yf.shape() == (std::array<std::size_t, 4>{1, 2, 3, 3}));
        for (std::size_t c = 0; c < 2; ++c)
            for (std::size_t i = 0; i < 3; ++i)
                for (std::size_t j = 0; j < 3; ++j)
                    CHECK(std::isnan(yf(0, c, i, j)) == (c == 1 && i == 2 && j == 2));
    }
}

TEST_CASE("MaxPool2D backward overwrites and reuses buffers across shapes", "[maxpool2d]")
{
    std::mt19937 rng(42);
    MaxPool2D<double> layer(3, 2);
    const auto x = random_tensor<double, 4>({2, 2, 9, 7}, rng);
    layer.forward(x);
    const auto dy = random_tensor<double, 4>({2, 2, 4, 3}, rng);
    const xt::xtensor<double, 4> a = layer.backward(dy);
    CHECK(identical(layer.backward(dy), a));
    for (const auto& shape : std::vector<std::array<std::size_t, 4>>{{1, 3, 5, 12}, {4, 1, 11, 3}, {2, 2, 9, 7}})
    {
        check_against_naive(layer, random_tensor<double, 4>(shape, rng), rng);
    }
}

TEST_CASE("MaxPool2D: predict equals forward, also through xt::xarray", "[maxpool2d]")
{
    std::mt19937 rng(43);
    MaxPool2D<float> layer(size2{2, 3}, size2{2, 1});
    const auto x = random_tensor<float, 4>({2, 3, 6, 7}, rng);
    const xt::xtensor<float, 4> y = layer.forward(x);
    CHECK(identical(layer.predict(x), y));
    const xt::xarray<float> xa = x;
    CHECK(identical(layer.forward(xa), y));
    CHECK(identical(layer.predict(xa), y));
}

TEST_CASE("MaxPool2D reports invalid arguments and shapes", "[maxpool2d][errors]")
{
    SECTION("zero kernel or stride at construction: value_error")
    {
        REQUIRE_THROWS_AS(MaxPool2D<double>(0), xcnn::value_error);
        REQUIRE_THROWS_WITH(MaxPool2D<double>(0), xcnn_test::contains("MaxPool2D(kernel_size=(0, 0)"));
        REQUIRE_THROWS_AS(MaxPool2D<double>(2, 0), xcnn::value_error);
        REQUIRE_THROWS_WITH(MaxPool2D<double>(2, 0), xcnn_test::contains("stride=(0, 0)"));
        REQUIRE_THROWS_AS(MaxPool2D<float>(size2{2, 0}), xcnn::value_error);
        REQUIRE_THROWS_AS(MaxPool2D<float>(size2{2, 2}, size2{1, 0}), xcnn::value_error);
        REQUIRE_THROWS_WITH(MaxPool2D<float>(size2{2, 2}, size2{1, 0}), xcnn_test::contains("MaxPool2D("));
    }
    SECTION("input smaller than the kernel: shape_error")
    {
        MaxPool2D<double> layer(3);
        const xt::xtensor<double, 4> x = xt::zeros<double>({1, 1, 2, 5});
        REQUIRE_THROWS_AS(layer.forward(x), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("MaxPool2D(kernel_size=(3, 3)"));
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("(1, 1, 2, 5)"));
        const xt::xtensor<double, 4> narrow = xt::zeros<double>({1, 1, 5, 2});
        REQUIRE_THROWS_AS(layer.predict(narrow), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.predict(narrow), xcnn_test::contains("(1, 1, 5, 2)"));
        REQUIRE_THROWS_AS(layer.output_shape({1, 1, 5, 2}), xcnn::shape_error);
    }
    SECTION("wrong rank through the xt::xarray overload: shape_error")
    {
        MaxPool2D<double> layer(2);
        const xt::xarray<double> x3 = xt::zeros<double>({3, 4, 4});
        REQUIRE_THROWS_AS(layer.forward(x3), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x3), xcnn_test::contains("MaxPool2D("));
        REQUIRE_THROWS_WITH(layer.forward(x3), xcnn_test::contains("(3, 4, 4)"));
        REQUIRE_THROWS_AS(layer.predict(x3), xcnn::shape_error);
        REQUIRE_THROWS_AS(layer.output_shape({3, 4, 4}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.output_shape({3, 4, 4}), xcnn_test::contains("(3, 4, 4)"));
    }
    SECTION("backward before forward, or after predict: xcnn::error")
    {
        MaxPool2D<double> layer(2);
        const xt::xtensor<double, 4> dy = xt::zeros<double>({1, 1, 2, 2});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("MaxPool2D("));
        const xt::xtensor<double, 4> x = xt::zeros<double>({1, 1, 4, 4});
        layer.forward(x);
        REQUIRE_NOTHROW(layer.backward(dy));
        layer.predict(x);
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("MaxPool2D("));
    }
    SECTION("dY of the wrong shape: shape_error naming both shapes")
    {
        MaxPool2D<double> layer(2);
        const xt::xtensor<double, 4> x = xt::zeros<double>({2, 3, 6, 5});
        layer.forward(x);
        const xt::xtensor<double, 4> dy = xt::zeros<double>({2, 3, 3, 3});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("MaxPool2D("));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 3, 3, 3)"));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 3, 3, 2)"));
    }
}

TEST_CASE("MaxPool2D with padding: ResNet's 3, 2, 1 by hand, and -inf inputs never lose to the padding",
          "[maxpool2d][padding]")
{
    // 1x1x3x4, kernel 3, stride 2, padding 1: output 2x2, windows rows {-1..1}, {1..3} and
    // columns {-1..1}, {1..3}; positions outside the input are skipped.
    const xt::xtensor<double, 4> x = {{{{-5, -1, -7, -2}, {-3, -6, -4, -8}, {-9, -10, -11, -12}}}};
    MaxPool2D<double> layer(3, 2, 1);
    CHECK(layer.name() == "MaxPool2D(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))");
    CHECK(identical(layer.forward(x), xt::xtensor<double, 4>{{{{-1, -1}, {-3, -4}}}}));
    const xt::xtensor<double, 4> dy = {{{{1, 2}, {4, 8}}}};
    CHECK(identical(layer.backward(dy), xt::xtensor<double, 4>{{{{0, 3, 0, 0}, {4, 0, 8, 0}, {0, 0, 0, 0}}}}));
    CHECK(identical(naive::maxpool2d(x, {3, 3}, {2, 2}, {1, 1}).y, layer.forward(x)));

    // All -inf: every window's maximum is its first input element, never a padded position.
    const double inf = std::numeric_limits<double>::infinity();
    for (const auto& shape : std::vector<std::array<std::size_t, 4>>{{1, 2, 5, 6}, {1, 1, 3, 37}})
    {
        xt::xtensor<double, 4> all = xt::zeros<double>(shape);
        all.fill(-inf);
        for (const auto& geometry : std::vector<std::array<std::size_t, 3>>{{3, 2, 1}, {2, 1, 1}, {3, 1, 1}})
        {
            MaxPool2D<double> pool(geometry[0], geometry[1], geometry[2]);
            INFO(describe(shape, pool.kernel_size(), pool.stride(), pool.padding()));
            const auto expected = naive::maxpool2d(all, pool.kernel_size(), pool.stride(), pool.padding());
            CHECK(identical(pool.forward(all), expected.y));
            const auto ones = xt::xtensor<double, 4>(xt::ones<double>(expected.y.shape()));
            CHECK(identical(pool.backward(ones), naive::maxpool2d_backward(expected, shape, ones)));
        }
    }
}

TEST_CASE("MaxPool2D: the vectorised kernels give the generic kernel's results bit for bit", "[maxpool2d]")
{
    // max_pool_planes (one window at a time) is the reference; max_pool_planes_rows serves any
    // window, max_pool_planes_2x2 the unpadded 2 x 2 stride 2. Values from {-1, 0, 1} and some
    // NaNs: many ties, NaN propagation.
    std::mt19937 rng(44);
    const std::vector<std::array<std::size_t, 6>> windows = {{2, 2, 2, 2, 0, 0}, {3, 3, 2, 2, 1, 1}, {2, 2, 1, 1, 1, 1},
                                                             {3, 3, 1, 1, 1, 1}, {2, 3, 2, 1, 1, 1}, {3, 2, 3, 3, 1, 0},
                                                             {1, 5, 1, 2, 0, 2}, {4, 4, 2, 3, 2, 2}};
    const std::vector<std::array<std::size_t, 4>> shapes = {{2, 3, 7, 5},   {1, 2, 9, 37}, {1, 1, 4, 2},
                                                            {2, 1, 12, 19}, {1, 2, 6, 64}, {1, 3, 4, 33}};
    auto run = [&](auto zero)
    {
        using T = decltype(zero);
        for (const auto& shape : shapes)
        {
            auto x = random_tensor<T, 4>(shape, rng, -1.5, 1.5);
            for (std::size_t i = 0; i < x.size(); ++i)
            {
                x.data()[i] = i % 29 == 7 ? std::numeric_limits<T>::quiet_NaN() : std::round(x.data()[i]);
            }
            for (const auto& w : windows)
            {
                const xcnn::detail::pool_window window{{w[0], w[1]}, {w[2], w[3]}, {w[4], w[5]}};
                INFO(describe(shape, window.kernel, window.stride, window.padding));
                if (shape[2] + 2 * w[4] < w[0] || shape[3] + 2 * w[5] < w[1])
                {
                    continue;
                }
                MaxPool2D<T> probe(window.kernel, window.stride, window.padding);
                const auto out = probe.checked_output_shape(shape);
                const auto g = window.geometry(shape, out);
                const std::size_t count = g.planes * g.oh * g.ow;
                std::vector<T> y_ref(count), y(count);
                std::vector<std::size_t> arg_ref(count), arg(count);
                xcnn::detail::max_pool_planes(g, 0, g.planes, x.data(), y_ref.data(), arg_ref.data());
                REQUIRE(xcnn::detail::max_pool_rows_fits<T>(g));
                std::vector<T, xsimd::aligned_allocator<T, 64>> scratch(xcnn::detail::max_pool_rows_scratch<T>(g));
                // Planes [1, last) alone, as a second thread would run them: plane 0 untouched.
                std::fill(y.begin(), y.end(), T(7));
                xcnn::detail::max_pool_planes_rows(g, 1, g.planes, x.data(), y.data(), arg.data(), scratch.data());
                xcnn::detail::max_pool_planes_rows(g, 0, 1, x.data(), y.data(), arg.data(), scratch.data());
                auto same = [](T a, T b)
                {
                    return a == b || (std::isnan(a) && std::isnan(b));
                };
                CHECK(std::equal(y.begin(), y.end(), y_ref.begin(), same));
                CHECK(arg == arg_ref);
                if (w[0] == 2 && w[1] == 2 && w[2] == 2 && w[3] == 2 && w[4] == 0 && w[5] == 0)
                {
                    scratch.resize(xcnn::detail::max_pool_2x2_scratch<T>(g));
                    std::fill(y.begin(), y.end(), T(7));
                    xcnn::detail::max_pool_planes_2x2(g, 0, g.planes, x.data(), y.data(), arg.data(), scratch.data());
                    CHECK(std::equal(y.begin(), y.end(), y_ref.begin(), same));
                    CHECK(arg == arg_ref);
                    // Without argmax (inference), and planes [1, last) alone: plane 0 untouched.
                    std::fill(y.begin(), y.end(), T(7));
                    xcnn::detail::max_pool_planes_2x2(g, 1, g.planes, x.data(), y.data(),
                                                      static_cast<std::size_t*>(nullptr), scratch.data());
                    const std::size_t plane = g.oh * g.ow;
                    CHECK(std::all_of(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(plane),
                                      [](T v) { return v == T(7); }));
                    CHECK(std::equal(y.begin() + static_cast<std::ptrdiff_t>(plane), y.end(),
                                     y_ref.begin() + static_cast<std::ptrdiff_t>(plane), same));
                }
            }
        }
    };
    run(0.0f);
    run(0.0);
}

TEST_CASE("MaxPool2D matches PyTorch's MaxPool2d in double", "[maxpool2d][torch]")
{
    MaxPool2D<double> stem(3, 2, 1);
    xcnn_test::check_torch_pools(stem, "max_k3_s2_p1");
    xcnn_test::check_torch_pools(stem, "max_k3_s2_p1_wide");
    MaxPool2D<double> k2_s1_p1(2, 1, 1);
    xcnn_test::check_torch_pools(k2_s1_p1, "max_k2_s1_p1");
    MaxPool2D<double> rect(size2{2, 3}, size2{2, 1}, size2{1, 1});
    xcnn_test::check_torch_pools(rect, "max_k2x3_s2x1_p1x1");
    MaxPool2D<double> k2(2);
    xcnn_test::check_torch_pools(k2, "max_k2");
}

TEST_CASE("MaxPool2D reports bad padding and inputs too small for the padded kernel", "[maxpool2d][errors]")
{
    using xcnn_test::require_error;
    require_error<xcnn::value_error>([] { MaxPool2D<float> pool(3, 2, 2); },
                                     {"MaxPool2D(kernel_size=(3, 3), stride=(2, 2), padding=(2, 2))",
                                      "padding must be at most half the kernel size"});
    require_error<xcnn::value_error>(
        [] {
            MaxPool2D<double> pool(size2{1, 4}, size2{1, 1}, size2{1, 0});
        },
        {"MaxPool2D(", "padding=(1, 0)", "kernel_size (1, 4)"});
    require_error<xcnn::value_error>([] { MaxPool2D<double> pool(2, 2, static_cast<std::size_t>(-1)); },
                                     {"MaxPool2D(", "padding", "negative number"});
    MaxPool2D<double> layer(size2{5, 3}, size2{1, 1}, size2{2, 1});
    CHECK(layer.output_shape({1, 1, 1, 1}) == std::vector<std::size_t>{1, 1, 1, 1});
    MaxPool2D<double> stem(3, 2, 1);
    CHECK(stem.output_shape({2, 3, 1, 1}) == std::vector<std::size_t>{2, 3, 1, 1});
    CHECK(stem.output_shape({64, 32, 56, 56}) == std::vector<std::size_t>{64, 32, 28, 28});
    MaxPool2D<double> wide(size2{4, 4}, size2{1, 1}, size2{1, 1});
    const xt::xtensor<double, 4> x = xt::zeros<double>({1, 2, 1, 5});
    require_error<xcnn::shape_error>([&] { wide.forward(x); }, {"MaxPool2D(kernel_size=(4, 4)", "(1, 2, 1, 5)",
                                                                "padded by (1, 1)", "smaller than the kernel"});
}
