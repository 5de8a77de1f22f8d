// Tests of xcnn::view_as_windows against a naive index mapping written here:
//   view(lead..., p_0, ..., p_{W-1}, o_0, ..., o_{W-1}) == x(lead..., p_0 * s_0 + o_0, ...).
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"
#include "support/shapes.hpp"

#include <xcnn/core/error.hpp>
#include <xcnn/core/windows.hpp>

#include <array>
#include <cstddef>
#include <numeric>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace
{

using xcnn_test::next_index;
using xcnn_test::product;
using xcnn_test::shape_t;
using xcnn_test::str;
using xcnn_test::to_shape;

/// A tensor of the given shape holding 1, 2, 3, ... in row-major order: every element is
/// distinct, so any indexing mistake changes a value.
template <class T>
void fill_iota(T& t)
{
    double v = 1.0;
    for (auto& e : t)
    {
        e = v;
        v += 1.0;
    }
}

xt::xarray<double> iota_array(const shape_t& shape)
{
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    fill_iota(a);
    return a;
}

/// The window-view shape by the definition: leading axes, then (n - w) / s + 1 per windowed
/// axis, then the window axes.
shape_t expected_windows_shape(const shape_t& in_shape, const shape_t& window, const shape_t& step)
{
    const std::size_t lead = in_shape.size() - window.size();
    shape_t out(in_shape.begin(), in_shape.begin() + static_cast<std::ptrdiff_t>(lead));
    for (std::size_t i = 0; i < window.size(); ++i)
    {
        out.push_back((in_shape[lead + i] - window[i]) / step[i] + 1);
    }
    out.insert(out.end(), window.begin(), window.end());
    return out;
}

/// Checks shape and every element of `view` against the naive mapping into `input`, the
/// logical values of the tensor the windows were taken from.
template <class V>
void check_windows(const V& view, const xt::xarray<double>& input, const shape_t& window, const shape_t& step)
{
    const shape_t in_shape = to_shape(input.shape());
    const std::size_t in_rank = in_shape.size();
    const std::size_t lead = in_rank - window.size();
    const shape_t expected = expected_windows_shape(in_shape, window, step);
    INFO("input " << str(in_shape) << ", window " << str(window) << ", step " << str(step));
    REQUIRE(to_shape(view.shape()) == expected);
    REQUIRE(view.size() == product(expected));

    if (product(expected) == 0)
    {
        return;
    }
    shape_t idx(expected.size(), 0), src(in_rank, 0);
    std::size_t checked = 0, mismatches = 0;
    std::string first_mismatch;
    do
    {
        for (std::size_t i = 0; i < lead; ++i)
        {
            src[i] = idx[i];
        }
        for (std::size_t i = 0; i < window.size(); ++i)
        {
            src[lead + i] = idx[lead + i] * step[i] + idx[in_rank + i];
        }
        const double got = view.element(idx.begin(), idx.end());
        const double want = input.element(src.begin(), src.end());
        if (got != want)
        {
            if (mismatches == 0)
            {
                std::ostringstream out;
                out << "view" << str(idx) << " = " << got << " but x" << str(src) << " = " << want;
                first_mismatch = out.str();
            }
            ++mismatches;
        }
        ++checked;
    } while (next_index(idx, expected));
    INFO(first_mismatch);
    CHECK(checked == product(expected));
    CHECK(mismatches == 0);
}

/// The values of a 2-D expression, read element by element.
template <class E>
xt::xarray<double> to_double_loops(const E& e)
{
    xt::xarray<double> out = xt::xarray<double>::from_shape({e.shape(0), e.shape(1)});
    for (std::size_t i = 0; i < e.shape(0); ++i)
    {
        for (std::size_t j = 0; j < e.shape(1); ++j)
        {
            out(i, j) = e(i, j);
        }
    }
    return out;
}

struct case2d
{
    std::size_t h, w, kh, kw, sh, sw;
};

} // namespace

TEST_CASE("view_as_windows: 2-D full-rank windows (skimage semantics)", "[windows]")
{
    const case2d c = GENERATE(values<case2d>({
        {6, 7, 3, 2, 1, 1},  // non-square window, unit step
        {6, 7, 3, 2, 2, 3},  // per-axis steps
        {9, 5, 2, 2, 3, 3},  // step > window: gaps between windows
        {4, 5, 4, 5, 1, 1},  // window == full extent: a single window
        {4, 5, 4, 5, 7, 2},  // full extent with a step larger than the input
        {8, 8, 1, 1, 1, 1},  // 1x1 windows
        {7, 10, 3, 4, 2, 3}, // steps that do not divide (n - w)
        {1, 9, 1, 3, 1, 4},  // degenerate leading extent
    }));
    xt::xtensor<double, 2> x = xt::xtensor<double, 2>::from_shape({c.h, c.w});
    fill_iota(x);
    const xt::xarray<double> ref = x;
    const shape_t window{c.kh, c.kw};
    CAPTURE(c.h, c.w, c.kh, c.kw, c.sh, c.sw);

    SECTION("C-array window, per-axis C-array step")
    {
        const auto v = xcnn::view_as_windows(x, {c.kh, c.kw}, {c.sh, c.sw});
        STATIC_REQUIRE(xt::static_dimension<typename std::decay_t<decltype(v)>::shape_type>::value == 4);
        check_windows(v, ref, window, {c.sh, c.sw});
    }
    SECTION("std::array window and steps")
    {
        const auto v =
            xcnn::view_as_windows(x, std::array<std::size_t, 2>{c.kh, c.kw}, std::array<std::size_t, 2>{c.sh, c.sw});
        STATIC_REQUIRE(xt::static_dimension<typename std::decay_t<decltype(v)>::shape_type>::value == 4);
        check_windows(v, ref, window, {c.sh, c.sw});
    }
    SECTION("std::vector window and steps: dynamic rank")
    {
        const auto v = xcnn::view_as_windows(x, shape_t{c.kh, c.kw}, shape_t{c.sh, c.sw});
        STATIC_REQUIRE(xt::static_dimension<typename std::decay_t<decltype(v)>::shape_type>::value < 0);
        check_windows(v, ref, window, {c.sh, c.sw});
    }
    SECTION("scalar step (same on both axes)")
    {
        const auto v1 = xcnn::view_as_windows(x, {c.kh, c.kw}, c.sh);
        check_windows(v1, ref, window, {c.sh, c.sh});
        const auto v2 = xcnn::view_as_windows(x, std::array<std::size_t, 2>{c.kh, c.kw}, c.sw);
        check_windows(v2, ref, window, {c.sw, c.sw});
        const auto v3 = xcnn::view_as_windows(x, {c.kh, c.kw}); // default step 1
        check_windows(v3, ref, window, {1, 1});
    }
}

TEST_CASE("view_as_windows: 1-D input", "[windows]")
{
    const std::size_t n = GENERATE(as<std::size_t>(), 1, 5, 10, 13);
    const std::size_t k = GENERATE(as<std::size_t>(), 1, 2, 5);
    const std::size_t s = GENERATE(as<std::size_t>(), 1, 2, 3, 6);
    if (k > n)
    {
        return;
    }
    CAPTURE(n, k, s);
    xt::xtensor<double, 1> x = xt::xtensor<double, 1>::from_shape({n});
    fill_iota(x);
    const auto v = xcnn::view_as_windows(x, {k}, s);
    STATIC_REQUIRE(xt::static_dimension<typename std::decay_t<decltype(v)>::shape_type>::value == 2);
    check_windows(v, xt::xarray<double>(x), {k}, {s});
}

TEST_CASE("view_as_windows: fewer window axes than input axes keeps the leading axes", "[windows]")
{
    SECTION("2-D input, 1-D window")
    {
        xt::xtensor<double, 2> x = xt::xtensor<double, 2>::from_shape({4, 9});
        fill_iota(x);
        const auto v = xcnn::view_as_windows(x, {3}, 2);
        REQUIRE(to_shape(v.shape()) == shape_t{4, 4, 3});
        check_windows(v, xt::xarray<double>(x), {3}, {2});
    }
    SECTION("3-D input, 1-D window over the last axis of an xarray")
    {
        const xt::xarray<double> x = iota_array({2, 3, 8});
        const auto v = xcnn::view_as_windows(x, std::vector<std::size_t>{4}, std::vector<std::size_t>{3});
        REQUIRE(to_shape(v.shape()) == shape_t{2, 3, 2, 4});
        check_windows(v, x, {4}, {3});
    }
    SECTION("3-D input, full-rank 3-D window")
    {
        const xt::xarray<double> x = iota_array({5, 4, 6});
        const auto v = xcnn::view_as_windows(x, {2, 3, 2}, {2, 1, 3});
        REQUIRE(to_shape(v.shape()) == shape_t{2, 2, 2, 2, 3, 2});
        check_windows(v, x, {2, 3, 2}, {2, 1, 3});
    }
}

TEST_CASE("view_as_windows: NCHW input gives (N, C, OH, OW, KH, KW)", "[windows]")
{
    const case2d c = GENERATE(values<case2d>({
        {7, 6, 3, 2, 2, 1},
        {5, 5, 3, 3, 1, 1},
        {8, 9, 2, 4, 3, 2},
        {4, 4, 4, 4, 1, 1},
        {6, 11, 1, 3, 4, 5},
    }));
    CAPTURE(c.h, c.w, c.kh, c.kw, c.sh, c.sw);
    xt::xtensor<double, 4> x = xt::xtensor<double, 4>::from_shape({2, 3, c.h, c.w});
    fill_iota(x);
    const auto v = xcnn::view_as_windows(x, {c.kh, c.kw}, {c.sh, c.sw});
    STATIC_REQUIRE(xt::static_dimension<typename std::decay_t<decltype(v)>::shape_type>::value == 6);
    const std::size_t oh = (c.h - c.kh) / c.sh + 1, ow = (c.w - c.kw) / c.sw + 1;
    REQUIRE(to_shape(v.shape()) == shape_t{2, 3, oh, ow, c.kh, c.kw});
    check_windows(v, xt::xarray<double>(x), {c.kh, c.kw}, {c.sh, c.sw});

    // The explicit convolution indexing, spelled out once more for NCHW.
    std::size_t mismatches = 0;
    for (std::size_t n = 0; n < 2; ++n)
        for (std::size_t ch = 0; ch < 3; ++ch)
            for (std::size_t i = 0; i < oh; ++i)
                for (std::size_t j = 0; j < ow; ++j)
                    for (std::size_t a = 0; a < c.kh; ++a)
                        for (std::size_t b = 0; b < c.kw; ++b)
                        {
                            mismatches += v(n, ch, i, j, a, b) != x(n, ch, i * c.sh + a, j * c.sw + b);
                        }
    CHECK(mismatches == 0);
}

TEST_CASE("view_as_windows: zero-copy view of an lvalue", "[windows]")
{
    xt::xtensor<double, 4> x = xt::xtensor<double, 4>::from_shape({2, 2, 5, 6});
    fill_iota(x);
    auto v = xcnn::view_as_windows(x, {3, 2}, {1, 2});

    SECTION("the view addresses x's buffer")
    {
        REQUIRE(v.data() == x.data());
        REQUIRE(v.data() + v.data_offset() == &v(0, 0, 0, 0, 0, 0));
        REQUIRE(&v(0, 0, 0, 0, 0, 0) == &x(0, 0, 0, 0));
        REQUIRE(&v(1, 1, 2, 2, 2, 1) == &x(1, 1, 4, 5));
    }
    SECTION("writing x is visible through the view")
    {
        x(1, 0, 3, 4) = -7.5;
        // OH = 3, OW = 3: row 3 is window row oh = 1 (offset 2) and oh = 2 (offset 1); column 4 is
        // window column ow = 2 (offset 0).
        CHECK(v(1, 0, 1, 2, 2, 0) == -7.5);
        CHECK(v(1, 0, 2, 2, 1, 0) == -7.5);
        std::fill(x.begin(), x.end(), 3.25);
        for (const double e : v)
        {
            REQUIRE(e == 3.25);
        }
    }
    SECTION("writing through the view writes x")
    {
        v(0, 1, 2, 1, 1, 1) = 99.0;
        CHECK(x(0, 1, 3, 3) == 99.0);
        // Overlapping windows alias the same element.
        CHECK(v(0, 1, 1, 1, 2, 1) == 99.0);
    }
}

TEST_CASE("view_as_windows: non-contiguous inputs", "[windows]")
{
    SECTION("xt::transpose of a 2-D tensor")
    {
        xt::xtensor<double, 2> x = xt::xtensor<double, 2>::from_shape({7, 5});
        fill_iota(x);
        xt::xarray<double> ref = xt::xarray<double>::from_shape({5, 7});
        for (std::size_t i = 0; i < 5; ++i)
            for (std::size_t j = 0; j < 7; ++j)
            {
                ref(i, j) = x(j, i);
            }
        const std::size_t s = GENERATE(as<std::size_t>(), 1, 2);
        const auto v = xcnn::view_as_windows(xt::transpose(x), {2, 3}, {s, 1});
        check_windows(v, ref, {2, 3}, {s, 1});
        // Still zero-copy: the view reads x's buffer.
        x(4, 1) = -1.0; // transposed (1, 4)
        CHECK(v(0, 2, 1, 2) == -1.0);
    }
    SECTION("xt::transpose of a 3-D tensor with a permutation")
    {
        xt::xtensor<double, 3> x = xt::xtensor<double, 3>::from_shape({4, 6, 5});
        fill_iota(x);
        const std::array<std::size_t, 3> perm{2, 0, 1}; // result shape (5, 4, 6)
        xt::xarray<double> ref = xt::xarray<double>::from_shape({5, 4, 6});
        for (std::size_t i = 0; i < 5; ++i)
            for (std::size_t j = 0; j < 4; ++j)
                for (std::size_t k = 0; k < 6; ++k)
                {
                    ref(i, j, k) = x(j, k, i);
                }
        const auto v = xcnn::view_as_windows(xt::transpose(x, perm), {3, 2}, {1, 2});
        check_windows(v, ref, {3, 2}, {1, 2});
    }
    SECTION("xt::view with step ranges")
    {
        xt::xtensor<double, 2> x = xt::xtensor<double, 2>::from_shape({10, 12});
        fill_iota(x);
        auto sliced = xt::view(x, xt::range(1, 10, 2), xt::range(2, 12, 3)); // rows 1,3,5,7,9; cols 2,5,8,11
        xt::xarray<double> ref = xt::xarray<double>::from_shape({5, 4});
        for (std::size_t i = 0; i < 5; ++i)
            for (std::size_t j = 0; j < 4; ++j)
            {
                ref(i, j) = x(1 + 2 * i, 2 + 3 * j);
            }
        const auto v = xcnn::view_as_windows(sliced, {2, 2}, {2, 1});
        check_windows(v, ref, {2, 2}, {2, 1});
        x(5, 8) = -3.0; // sliced (2, 2)
        CHECK(v(1, 1, 0, 1) == -3.0);
        CHECK(v(1, 2, 0, 0) == -3.0);
    }
    SECTION("xt::view of an NCHW tensor with an index, a range and a step")
    {
        xt::xtensor<double, 4> x = xt::xtensor<double, 4>::from_shape({3, 4, 9, 8});
        fill_iota(x);
        // (C', H', W') = x(2, 1:4, 0:9:2, 1:8) -> shape (3, 5, 7)
        const auto sliced = xt::view(x, 2, xt::range(1, 4), xt::range(0, 9, 2), xt::range(1, 8));
        xt::xarray<double> ref = xt::xarray<double>::from_shape({3, 5, 7});
        for (std::size_t c = 0; c < 3; ++c)
            for (std::size_t i = 0; i < 5; ++i)
                for (std::size_t j = 0; j < 7; ++j)
                {
                    ref(c, i, j) = x(2, 1 + c, 2 * i, 1 + j);
                }
        const auto v = xcnn::view_as_windows(sliced, {3, 3}, {1, 2});
        check_windows(v, ref, {3, 3}, {1, 2});
    }
    SECTION("xt::view with a negative step")
    {
        xt::xtensor<double, 2> x = xt::xtensor<double, 2>::from_shape({6, 7});
        fill_iota(x);
        const auto reversed = xt::view(x, xt::range(5, xt::placeholders::_, -1), xt::all()); // rows 5..0
        xt::xarray<double> ref = xt::xarray<double>::from_shape({6, 7});
        for (std::size_t i = 0; i < 6; ++i)
            for (std::size_t j = 0; j < 7; ++j)
            {
                ref(i, j) = x(5 - i, j);
            }
        const auto v = xcnn::view_as_windows(reversed, {2, 3}, {2, 2});
        check_windows(v, ref, {2, 3}, {2, 2});
    }
}

TEST_CASE("view_as_windows: other containers and layouts", "[windows]")
{
    SECTION("column-major xtensor")
    {
        using CM = xt::xtensor<double, 3, xt::layout_type::column_major>;
        CM x = CM::from_shape({3, 6, 5});
        xt::xarray<double> ref = xt::xarray<double>::from_shape({3, 6, 5});
        double v = 1.0;
        for (std::size_t i = 0; i < 3; ++i)
            for (std::size_t j = 0; j < 6; ++j)
                for (std::size_t k = 0; k < 5; ++k, v += 1.0)
                {
                    x(i, j, k) = v;
                    ref(i, j, k) = v;
                }
        const auto w = xcnn::view_as_windows(x, {2, 3}, {3, 1});
        check_windows(w, ref, {2, 3}, {3, 1});
        REQUIRE(w.data() == x.data());
    }
    SECTION("xt::adapt of a std::vector")
    {
        std::vector<double> buffer(4 * 7);
        std::iota(buffer.begin(), buffer.end(), 1.0);
        auto a = xt::adapt(buffer, std::array<std::size_t, 2>{4, 7});
        const auto w = xcnn::view_as_windows(a, {2, 2}, {1, 3});
        check_windows(w, iota_array({4, 7}), {2, 2}, {1, 3});
        buffer[2 * 7 + 3] = -1.0; // a(2, 3)
        CHECK(w(1, 1, 1, 0) == -1.0);
    }
    SECTION("a zero-length leading axis")
    {
        const xt::xtensor<double, 2> x = xt::zeros<double>({0, 5});
        const auto w = xcnn::view_as_windows(x, {3});
        REQUIRE(to_shape(w.shape()) == shape_t{0, 3, 3});
        CHECK(w.size() == 0);
    }
    SECTION("windows of a window view")
    {
        xt::xtensor<double, 1> x = xt::xtensor<double, 1>::from_shape({10});
        fill_iota(x);
        const auto w1 = xcnn::view_as_windows(x, {3});             // (8, 3): w1(i, a) = x(i + a)
        const auto w2 = xcnn::view_as_windows(w1, {4, 2}, {2, 1}); // (3, 2, 4, 2)
        REQUIRE(to_shape(w2.shape()) == shape_t{3, 2, 4, 2});
        std::size_t mismatches = 0;
        for (std::size_t p = 0; p < 3; ++p)
            for (std::size_t q = 0; q < 2; ++q)
                for (std::size_t a = 0; a < 4; ++a)
                    for (std::size_t b = 0; b < 2; ++b)
                    {
                        mismatches += w2(p, q, a, b) != x(2 * p + a + q + b);
                    }
        CHECK(mismatches == 0);
        check_windows(w2, to_double_loops(w1), {4, 2}, {2, 1});
    }
}

TEST_CASE("view_as_windows: rvalue inputs are owned by the view", "[windows]")
{
    SECTION("an rvalue container")
    {
        auto make = []
        {
            xt::xtensor<double, 2> t = xt::xtensor<double, 2>::from_shape({6, 5});
            fill_iota(t);
            return t;
        };
        const xt::xarray<double> ref = make();
        const auto v = xcnn::view_as_windows(make(), {3, 2}, {1, 2});
        check_windows(v, ref, {3, 2}, {1, 2});
        // A copy of an owning view carries its own tensor and outlives the view it was copied from.
        auto copied = [&]
        {
            auto local = xcnn::view_as_windows(make(), {3, 2}, {1, 2});
            auto copy = local;
            return copy;
        }();
        check_windows(copied, ref, {3, 2}, {1, 2});
    }
    SECTION("an lvalue moved into the view")
    {
        xt::xtensor<double, 4> t = xt::xtensor<double, 4>::from_shape({1, 2, 5, 5});
        fill_iota(t);
        const xt::xarray<double> ref = t;
        const auto v = xcnn::view_as_windows(std::move(t), {2, 2}, 3);
        check_windows(v, ref, {2, 2}, {3, 3});
    }
    SECTION("an expression without a data interface")
    {
        xt::xtensor<double, 2> x = xt::xtensor<double, 2>::from_shape({5, 7});
        fill_iota(x);
        xt::xarray<double> ref = xt::xarray<double>::from_shape({5, 7});
        for (std::size_t i = 0; i < 5; ++i)
            for (std::size_t j = 0; j < 7; ++j)
            {
                ref(i, j) = 2.0 * x(i, j) - 1.0;
            }
        const auto v = xcnn::view_as_windows(2.0 * x - 1.0, {2, 3}, {1, 2});
        check_windows(v, ref, {2, 3}, {1, 2});
    }
    SECTION("an expression with a broadcast (size-1) axis")
    {
        xt::xtensor<double, 3> x = xt::xtensor<double, 3>::from_shape({1, 4, 6});
        fill_iota(x);
        xt::xarray<double> ref = xt::xarray<double>::from_shape({1, 4, 6});
        for (std::size_t i = 0; i < 4; ++i)
            for (std::size_t j = 0; j < 6; ++j)
            {
                ref(0, i, j) = x(0, i, j) + 0.5;
            }
        const auto v = xcnn::view_as_windows(x + 0.5, {1, 3, 2}, {1, 1, 2});
        check_windows(v, ref, {1, 3, 2}, {1, 1, 2});
    }
}

TEST_CASE("view_as_windows: errors", "[windows][errors]")
{
    xt::xtensor<double, 2> x = xt::xtensor<double, 2>::from_shape({3, 4});
    fill_iota(x);
    xt::xtensor<double, 1> x1 = xt::xtensor<double, 1>::from_shape({5});
    fill_iota(x1);

    SECTION("window larger than the input")
    {
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, {4, 2}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, {3, 5}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x1, {6}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(xcnn::view_as_windows(x, {3, 5}), xcnn_test::contains("(3, 5)"));
        REQUIRE_THROWS_WITH(xcnn::view_as_windows(x, {3, 5}), xcnn_test::contains("(3, 4)"));
        REQUIRE_THROWS_WITH(xcnn::view_as_windows(x1, {6}), xcnn_test::contains("(5,)"));
        // Only the trailing axes are windowed: a window that would fit the leading axis does not.
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, {5}), xcnn::shape_error);
        // Caught as the library's base class too.
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, {4, 4}), xcnn::error);
    }
    SECTION("zero-sized window")
    {
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, {0, 2}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, shape_t{2, 0}, shape_t{1, 1}), xcnn::shape_error);
    }
    SECTION("more window axes than input axes")
    {
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x1, {2, 2}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, {1, 1, 1}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(xcnn::view_as_windows(x, {1, 1, 1}), xcnn_test::contains("(1, 1, 1)"));
        REQUIRE_THROWS_WITH(xcnn::view_as_windows(x, {1, 1, 1}), xcnn_test::contains("(3, 4)"));
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, shape_t{1, 1, 1}, shape_t{1, 1, 1}), xcnn::shape_error);
    }
    SECTION("empty window")
    {
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, shape_t{}, shape_t{}), xcnn::shape_error);
    }
    SECTION("step 0")
    {
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, {2, 2}, 0), xcnn::value_error);
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, {2, 2}, {1, 0}), xcnn::value_error);
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, std::array<std::size_t, 2>{2, 2}, std::array<std::size_t, 2>{0, 1}),
                          xcnn::value_error);
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, shape_t{2, 2}, shape_t{0, 3}), xcnn::value_error);
        REQUIRE_THROWS_WITH(xcnn::view_as_windows(x, {2, 2}, {1, 0}), xcnn_test::contains("(1, 0)"));
        REQUIRE_THROWS_WITH(xcnn::view_as_windows(x, {2, 2}, {1, 0}), xcnn_test::contains("step"));
    }
    SECTION("step count differs from window axes (run-time overload)")
    {
        REQUIRE_THROWS_AS(xcnn::view_as_windows(x, shape_t{2, 2}, shape_t{1}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(xcnn::view_as_windows(x, shape_t{2, 2}, shape_t{1}), xcnn_test::contains("(2, 2)"));
    }
}

TEST_CASE("view_as_windows: run-time window with one scalar step", "[windows]")
{
    xt::xtensor<double, 2> x = xt::zeros<double>({5, 7});
    std::iota(x.begin(), x.end(), 1.0);
    const auto w = xcnn::view_as_windows(x, std::vector<std::size_t>{2, 3}, 2);
    REQUIRE(std::vector<std::size_t>(w.shape().begin(), w.shape().end()) == std::vector<std::size_t>{2, 3, 2, 3});
    bool all_equal = true;
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t a = 0; a < 2; ++a)
                for (std::size_t b = 0; b < 3; ++b)
                    all_equal = all_equal && w(i, j, a, b) == x(2 * i + a, 2 * j + b);
    CHECK(all_equal);
    REQUIRE_THROWS_WITH(xcnn::view_as_windows(x, std::vector<std::size_t>{2, 3}, 0), xcnn_test::contains("(5, 7)"));
}
