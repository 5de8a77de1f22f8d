// Tests of xcnn::tensordot against a generic naive contraction written here (a loop over the
// multi-index of the result and of the contracted axes), on containers, transposed and strided
// views, window views, lazy expressions, and sizes that cross the GEMM's block boundaries.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"
#include "support/shapes.hpp"

#include <xcnn/core/error.hpp>
#include <xcnn/core/gemm.hpp>
#include <xcnn/core/tensordot.hpp>
#include <xcnn/core/windows.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace
{

using xcnn_test::next_index;
using xcnn_test::product;
using xcnn_test::shape_t;
using xcnn_test::str;
using xcnn_test::to_shape;

/// numpy.tensordot(a, b, (axes_a, axes_b)) by definition: the result has the free axes of a,
/// then those of b; each element sums a * b over the paired contracted axes.
xt::xarray<double> naive_tensordot(const xt::xarray<double>& a, const xt::xarray<double>& b, const shape_t& axes_a,
                                   const shape_t& axes_b)
{
    const shape_t sa = to_shape(a.shape()), sb = to_shape(b.shape());
    shape_t free_a, free_b, out_shape, k_shape;
    for (std::size_t i = 0; i < sa.size(); ++i)
    {
        if (std::find(axes_a.begin(), axes_a.end(), i) == axes_a.end())
        {
            free_a.push_back(i);
            out_shape.push_back(sa[i]);
        }
    }
    for (std::size_t i = 0; i < sb.size(); ++i)
    {
        if (std::find(axes_b.begin(), axes_b.end(), i) == axes_b.end())
        {
            free_b.push_back(i);
            out_shape.push_back(sb[i]);
        }
    }
    for (auto axis : axes_a)
    {
        k_shape.push_back(sa[axis]);
    }
    xt::xarray<double> out = xt::xarray<double>::from_shape(out_shape);
    if (product(out_shape) == 0)
    {
        return out;
    }
    shape_t idx(out_shape.size(), 0), ia(sa.size(), 0), ib(sb.size(), 0);
    do
    {
        for (std::size_t i = 0; i < free_a.size(); ++i)
        {
            ia[free_a[i]] = idx[i];
        }
        for (std::size_t i = 0; i < free_b.size(); ++i)
        {
            ib[free_b[i]] = idx[free_a.size() + i];
        }
        double sum = 0;
        if (product(k_shape) != 0)
        {
            shape_t k(k_shape.size(), 0);
            do
            {
                for (std::size_t t = 0; t < k.size(); ++t)
                {
                    ia[axes_a[t]] = k[t];
                    ib[axes_b[t]] = k[t];
                }
                sum += a.element(ia.begin(), ia.end()) * b.element(ib.begin(), ib.end());
            } while (next_index(k, k_shape));
        }
        out.element(idx.begin(), idx.end()) = sum;
    } while (next_index(idx, out_shape));
    return out;
}

/// out = a.transpose(perm) by definition: out.shape[i] = a.shape[perm[i]] and
/// out[i_0, i_1, ...] = a[j] with j[perm[k]] = i_k.
xt::xarray<double> naive_permute(const xt::xarray<double>& a, const shape_t& perm)
{
    const shape_t sa = to_shape(a.shape());
    shape_t so(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i)
    {
        so[i] = sa[perm[i]];
    }
    xt::xarray<double> out = xt::xarray<double>::from_shape(so);
    shape_t idx(so.size(), 0), src(sa.size(), 0);
    do
    {
        for (std::size_t i = 0; i < perm.size(); ++i)
        {
            src[perm[i]] = idx[i];
        }
        out.element(idx.begin(), idx.end()) = a.element(src.begin(), src.end());
    } while (next_index(idx, so));
    return out;
}

/// out[i...] = a[start + i * step ...] with `count` elements per axis (steps may be negative).
xt::xarray<double> naive_slice(const xt::xarray<double>& a, const std::vector<std::ptrdiff_t>& start,
                               const std::vector<std::ptrdiff_t>& step, const shape_t& count)
{
    xt::xarray<double> out = xt::xarray<double>::from_shape(count);
    shape_t idx(count.size(), 0), src(count.size(), 0);
    do
    {
        for (std::size_t i = 0; i < count.size(); ++i)
        {
            src[i] = static_cast<std::size_t>(start[i] + static_cast<std::ptrdiff_t>(idx[i]) * step[i]);
        }
        out.element(idx.begin(), idx.end()) = a.element(src.begin(), src.end());
    } while (next_index(idx, count));
    return out;
}

/// The logical values of any expression, in double, read element by element.
template <class E>
xt::xarray<double> to_double(const E& e)
{
    const shape_t s = to_shape(e.shape());
    xt::xarray<double> out = xt::xarray<double>::from_shape(s);
    if (product(s) == 0)
    {
        return out;
    }
    shape_t idx(s.size(), 0);
    do
    {
        out.element(idx.begin(), idx.end()) = static_cast<double>(e.element(idx.begin(), idx.end()));
    } while (next_index(idx, s));
    return out;
}

template <class T>
double tolerance(std::size_t k)
{
    const double base = std::is_same<T, float>::value ? 1e-5 : 1e-12;
    return base * std::max(1.0, std::sqrt(static_cast<double>(k)));
}

template <class T, class C>
C random_tensor(const shape_t& shape, std::mt19937& rng)
{
    C c = C::from_shape(shape);
    xcnn_test::fill_uniform(c, rng);
    return c;
}

/// `got` (any container) equals the double reference within `tol`, shape included.
template <class R>
void check_close(const R& got, const xt::xarray<double>& want, double tol)
{
    REQUIRE(to_shape(got.shape()) == to_shape(want.shape()));
    const double diff = xcnn_test::max_abs_diff(got, want);
    INFO("shape " << str(to_shape(want.shape())) << ", max |got - want| = " << diff << ", tolerance " << tol);
    CHECK(diff <= tol);
}

template <class T>
const char* type_name()
{
    return std::is_same<T, float>::value ? "float" : "double";
}

// ---------------------------------------------------------------------------------------------
// Test bodies, instantiated for float and double.
// ---------------------------------------------------------------------------------------------

template <class T>
void matrix_products()
{
    std::mt19937 rng(11);
    using M = xt::xtensor<T, 2>;
    const M a = random_tensor<T, M>({5, 7}, rng);
    const M b = random_tensor<T, M>({7, 4}, rng);
    const M bt = random_tensor<T, M>({4, 7}, rng);
    const M at = random_tensor<T, M>({7, 5}, rng);

    const auto ab = xcnn::tensordot(a, b, {1}, {0});
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(ab)>, xt::xtensor<T, 2>>::value);
    check_close(ab, naive_tensordot(to_double(a), to_double(b), {1}, {0}), tolerance<T>(7));

    // A * B^T, A^T * B, A^T * B^T (as (B * A)^T's contraction order: free axes of a first).
    check_close(xcnn::tensordot(a, bt, {1}, {1}), naive_tensordot(to_double(a), to_double(bt), {1}, {1}),
                tolerance<T>(7));
    check_close(xcnn::tensordot(at, b, {0}, {0}), naive_tensordot(to_double(at), to_double(b), {0}, {0}),
                tolerance<T>(7));
    check_close(xcnn::tensordot(at, bt, {0}, {1}), naive_tensordot(to_double(at), to_double(bt), {0}, {1}),
                tolerance<T>(7));

    // The plain triple loop, once, so the generic reference is itself cross-checked.
    std::size_t bad = 0;
    for (std::size_t i = 0; i < 5; ++i)
    {
        for (std::size_t j = 0; j < 4; ++j)
        {
            double s = 0;
            for (std::size_t p = 0; p < 7; ++p)
            {
                s += static_cast<double>(a(i, p)) * static_cast<double>(b(p, j));
            }
            bad += std::abs(static_cast<double>(ab(i, j)) - s) > tolerance<T>(7);
        }
    }
    CHECK(bad == 0);

    // Matrix-vector and vector-vector.
    using V = xt::xtensor<T, 1>;
    const V v = random_tensor<T, V>({7}, rng);
    const auto av = xcnn::tensordot(a, v, {1}, {0});
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(av)>, xt::xtensor<T, 1>>::value);
    check_close(av, naive_tensordot(to_double(a), to_double(v), {1}, {0}), tolerance<T>(7));
    const auto vv = xcnn::tensordot(v, v, {0}, {0});
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(vv)>, xt::xtensor<T, 0>>::value);
    check_close(vv, naive_tensordot(to_double(v), to_double(v), {0}, {0}), tolerance<T>(7));
}

template <class T>
void multi_axis_contractions()
{
    std::mt19937 rng(12);
    using T3 = xt::xtensor<T, 3>;
    using T4 = xt::xtensor<T, 4>;

    SECTION("two axes")
    {
        const T3 a = random_tensor<T, T3>({3, 4, 5}, rng);
        const T3 b = random_tensor<T, T3>({4, 5, 6}, rng);
        const auto r = xcnn::tensordot(a, b, {1, 2}, {0, 1});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 2>>::value);
        check_close(r, naive_tensordot(to_double(a), to_double(b), {1, 2}, {0, 1}), tolerance<T>(20));
        // Same pairs listed in the other order give the same sum.
        check_close(xcnn::tensordot(a, b, {2, 1}, {1, 0}), naive_tensordot(to_double(a), to_double(b), {1, 2}, {0, 1}),
                    tolerance<T>(20));
    }
    SECTION("three axes, paired out of order")
    {
        const T4 a = random_tensor<T, T4>({2, 3, 4, 5}, rng);
        const T4 b = random_tensor<T, T4>({5, 3, 6, 4}, rng);
        const auto r = xcnn::tensordot(a, b, {1, 2, 3}, {1, 3, 0});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 2>>::value);
        check_close(r, naive_tensordot(to_double(a), to_double(b), {1, 2, 3}, {1, 3, 0}), tolerance<T>(60));
    }
    SECTION("axes in non-sorted order: {2, 0} with {1, 3}")
    {
        const T4 a = random_tensor<T, T4>({4, 3, 5, 6}, rng);
        const T4 b = random_tensor<T, T4>({2, 5, 7, 4}, rng);
        const auto r = xcnn::tensordot(a, b, {2, 0}, {1, 3});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 4>>::value);
        REQUIRE(to_shape(r.shape()) == shape_t{3, 6, 2, 7});
        check_close(r, naive_tensordot(to_double(a), to_double(b), {2, 0}, {1, 3}), tolerance<T>(20));
    }
    SECTION("all axes: a scalar result")
    {
        const T3 a = random_tensor<T, T3>({3, 4, 2}, rng);
        const T3 b = random_tensor<T, T3>({2, 3, 4}, rng);
        const auto r = xcnn::tensordot(a, b, {0, 1, 2}, {1, 2, 0});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 0>>::value);
        check_close(r, naive_tensordot(to_double(a), to_double(b), {0, 1, 2}, {1, 2, 0}), tolerance<T>(24));
    }
    SECTION("no axes: the outer product")
    {
        const T3 a = random_tensor<T, T3>({2, 3, 2}, rng);
        using T2 = xt::xtensor<T, 2>;
        const T2 b = random_tensor<T, T2>({4, 3}, rng);
        const auto r = xcnn::tensordot(a, b, std::array<std::size_t, 0>{}, std::array<std::size_t, 0>{});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 5>>::value);
        check_close(r, naive_tensordot(to_double(a), to_double(b), {}, {}), tolerance<T>(1));
    }
    SECTION("std::array axes")
    {
        const T4 a = random_tensor<T, T4>({4, 3, 5, 6}, rng);
        const T4 b = random_tensor<T, T4>({2, 5, 7, 4}, rng);
        const auto r = xcnn::tensordot(a, b, std::array<std::size_t, 2>{2, 0}, std::array<std::size_t, 2>{1, 3});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 4>>::value);
        check_close(r, naive_tensordot(to_double(a), to_double(b), {2, 0}, {1, 3}), tolerance<T>(20));
    }
    SECTION("std::vector axes give an xarray")
    {
        const T4 a = random_tensor<T, T4>({4, 3, 5, 6}, rng);
        const T4 b = random_tensor<T, T4>({2, 5, 7, 4}, rng);
        const auto r = xcnn::tensordot(a, b, shape_t{2, 0}, shape_t{1, 3});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xarray<T>>::value);
        check_close(r, naive_tensordot(to_double(a), to_double(b), {2, 0}, {1, 3}), tolerance<T>(20));
    }
    SECTION("xarray operands give an xarray")
    {
        using A = xt::xarray<T>;
        const A a = random_tensor<T, A>({3, 4, 5}, rng);
        const T3 b = random_tensor<T, T3>({5, 2, 4}, rng);
        const auto r = xcnn::tensordot(a, b, {1, 2}, {2, 0});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xarray<T>>::value);
        check_close(r, naive_tensordot(to_double(a), to_double(b), {1, 2}, {2, 0}), tolerance<T>(20));
        const auto r2 = xcnn::tensordot(b, a, {2, 0}, {1, 2});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r2)>, xt::xarray<T>>::value);
        check_close(r2, naive_tensordot(to_double(b), to_double(a), {2, 0}, {1, 2}), tolerance<T>(20));
    }
}

template <class T>
void non_contiguous_operands()
{
    std::mt19937 rng(13);
    using T2 = xt::xtensor<T, 2>;
    using T3 = xt::xtensor<T, 3>;

    SECTION("xt::transpose of both operands")
    {
        const T2 a = random_tensor<T, T2>({9, 6}, rng); // a^T is (6, 9)
        const T2 b = random_tensor<T, T2>({5, 9}, rng); // b^T is (9, 5)
        const auto r = xcnn::tensordot(xt::transpose(a), xt::transpose(b), {1}, {0});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 2>>::value);
        check_close(r,
                    naive_tensordot(naive_permute(to_double(a), {1, 0}), naive_permute(to_double(b), {1, 0}), {1}, {0}),
                    tolerance<T>(9));
    }
    SECTION("xt::transpose with a permutation")
    {
        const T3 a = random_tensor<T, T3>({4, 5, 3}, rng);
        const T3 b = random_tensor<T, T3>({5, 6, 4}, rng);
        const shape_t pa{2, 0, 1}, pb{1, 2, 0}; // a' (3, 4, 5), b' (6, 4, 5)
        const auto r = xcnn::tensordot(xt::transpose(a, pa), xt::transpose(b, pb), {1, 2}, {1, 2}); // (3, 6)
        check_close(r,
                    naive_tensordot(naive_permute(to_double(a), pa), naive_permute(to_double(b), pb), {1, 2}, {1, 2}),
                    tolerance<T>(20));
    }
    SECTION("strided xt::view operands with step ranges")
    {
        const T3 a = random_tensor<T, T3>({7, 10, 4}, rng);
        const T3 b = random_tensor<T, T3>({6, 9, 5}, rng);
        // a' = a[1:7:2, ::3, 1:] -> (3, 4, 3); b' = b[::2, 0:8:2, 2:5] -> (3, 4, 3)
        const auto va = xt::view(a, xt::range(1, 7, 2), xt::range(0, 10, 3), xt::range(1, 4));
        const auto vb = xt::view(b, xt::range(0, 6, 2), xt::range(0, 8, 2), xt::range(2, 5));
        const auto ra = naive_slice(to_double(a), {1, 0, 1}, {2, 3, 1}, {3, 4, 3});
        const auto rb = naive_slice(to_double(b), {0, 0, 2}, {2, 2, 1}, {3, 4, 3});
        const auto r = xcnn::tensordot(va, vb, {1, 0}, {1, 2});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 2>>::value);
        check_close(r, naive_tensordot(ra, rb, {1, 0}, {1, 2}), tolerance<T>(12));
    }
    SECTION("xt::view with an integer index and a negative step")
    {
        const T3 a = random_tensor<T, T3>({3, 8, 6}, rng);
        const T2 b = random_tensor<T, T2>({6, 5}, rng);
        // a' = a[2, ::-1, :] -> (8, 6)
        const auto va = xt::view(a, 2, xt::range(7, xt::placeholders::_, -1), xt::all());
        xt::xarray<double> ra = xt::xarray<double>::from_shape({8, 6});
        for (std::size_t i = 0; i < 8; ++i)
        {
            for (std::size_t j = 0; j < 6; ++j)
            {
                ra(i, j) = static_cast<double>(a(2, 7 - i, j));
            }
        }
        const auto r = xcnn::tensordot(va, b, {1}, {0});
        check_close(r, naive_tensordot(ra, to_double(b), {1}, {0}), tolerance<T>(6));
    }
}

template <class T>
void convolution_windows()
{
    std::mt19937 rng(14);
    const std::size_t s = GENERATE(as<std::size_t>(), 1, 2);
    const std::size_t n = 2, c = 3, h = 7, w = 8, f = 4, kh = 3, kw = 2;
    const std::size_t oh = (h - kh) / s + 1, ow = (w - kw) / s + 1;
    CAPTURE(s);
    using T4 = xt::xtensor<T, 4>;
    const T4 x = random_tensor<T, T4>({n, c, h, w}, rng);
    const T4 k = random_tensor<T, T4>({f, c, kh, kw}, rng);

    // Direct convolution (cross-correlation), written without windows.
    xt::xarray<double> want = xt::xarray<double>::from_shape({n, oh, ow, f});
    for (std::size_t in = 0; in < n; ++in)
        for (std::size_t i = 0; i < oh; ++i)
            for (std::size_t j = 0; j < ow; ++j)
                for (std::size_t of = 0; of < f; ++of)
                {
                    double sum = 0;
                    for (std::size_t ic = 0; ic < c; ++ic)
                        for (std::size_t a = 0; a < kh; ++a)
                            for (std::size_t b = 0; b < kw; ++b)
                            {
                                sum += static_cast<double>(x(in, ic, i * s + a, j * s + b)) *
                                       static_cast<double>(k(of, ic, a, b));
                            }
                    want(in, i, j, of) = sum;
                }

    const auto windows = xcnn::view_as_windows(x, {kh, kw}, s); // (N, C, OH, OW, KH, KW)
    const auto r = xcnn::tensordot(windows, k, {1, 4, 5}, {1, 2, 3});
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 4>>::value);
    check_close(r, want, tolerance<T>(c * kh * kw));

    // Kernel first: (F, N, OH, OW).
    const auto r2 = xcnn::tensordot(k, windows, {1, 2, 3}, {1, 4, 5});
    check_close(r2, naive_permute(want, {3, 0, 1, 2}), tolerance<T>(c * kh * kw));

    // Windows of an interior crop (a strided xt::view with an offset) of a larger tensor.
    const T4 big = random_tensor<T, T4>({n, c + 1, h + 3, w + 2}, rng);
    const auto crop = xt::view(big, xt::all(), xt::range(1, c + 1), xt::range(2, h + 2), xt::range(1, w + 1));
    xt::xarray<double> want_crop = xt::xarray<double>::from_shape({n, oh, ow, f});
    for (std::size_t in = 0; in < n; ++in)
        for (std::size_t i = 0; i < oh; ++i)
            for (std::size_t j = 0; j < ow; ++j)
                for (std::size_t of = 0; of < f; ++of)
                {
                    double sum = 0;
                    for (std::size_t ic = 0; ic < c; ++ic)
                        for (std::size_t a = 0; a < kh; ++a)
                            for (std::size_t b = 0; b < kw; ++b)
                            {
                                sum += static_cast<double>(big(in, 1 + ic, 2 + i * s + a, 1 + j * s + b)) *
                                       static_cast<double>(k(of, ic, a, b));
                            }
                    want_crop(in, i, j, of) = sum;
                }
    check_close(xcnn::tensordot(xcnn::view_as_windows(crop, {kh, kw}, s), k, {1, 4, 5}, {1, 2, 3}), want_crop,
                tolerance<T>(c * kh * kw));

    // Windows of a lazy expression (no data interface: evaluated before the contraction).
    check_close(xcnn::tensordot(xcnn::view_as_windows(T(2) * x, {kh, kw}, s), k, {1, 4, 5}, {1, 2, 3}), 2.0 * want,
                2 * tolerance<T>(c * kh * kw));

    // A window view with dynamic rank (std::vector window) gives an xarray.
    const auto dyn = xcnn::view_as_windows(x, shape_t{kh, kw}, shape_t{s, s});
    const auto r3 = xcnn::tensordot(dyn, k, {1, 4, 5}, {1, 2, 3});
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r3)>, xt::xarray<T>>::value);
    check_close(r3, want, tolerance<T>(c * kh * kw));
}

template <class T>
void other_containers()
{
    std::mt19937 rng(17);
    SECTION("column-major operands")
    {
        using CM = xt::xtensor<T, 3, xt::layout_type::column_major>;
        CM a = CM::from_shape({4, 3, 5});
        CM b = CM::from_shape({5, 6, 3});
        xcnn_test::fill_uniform(a, rng);
        xcnn_test::fill_uniform(b, rng);
        const auto r = xcnn::tensordot(a, b, {2, 1}, {0, 2});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 2>>::value);
        check_close(r, naive_tensordot(to_double(a), to_double(b), {2, 1}, {0, 2}), tolerance<T>(15));
    }
    SECTION("xt::adapt of std::vectors")
    {
        std::vector<T> va(6 * 4), vb(4 * 3);
        xcnn_test::fill_uniform(va, rng);
        xcnn_test::fill_uniform(vb, rng);
        const auto a = xt::adapt(va, std::array<std::size_t, 2>{6, 4});
        const auto b = xt::adapt(vb, std::array<std::size_t, 2>{4, 3});
        const auto r = xcnn::tensordot(a, b, {1}, {0});
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 2>>::value);
        check_close(r, naive_tensordot(to_double(a), to_double(b), {1}, {0}), tolerance<T>(4));
    }
    SECTION("size-1 axes")
    {
        using T3 = xt::xtensor<T, 3>;
        const T3 a = random_tensor<T, T3>({1, 5, 1}, rng);
        const T3 b = random_tensor<T, T3>({5, 1, 3}, rng);
        const auto r = xcnn::tensordot(a, b, {1}, {0}); // (1, 1, 1, 3)
        check_close(r, naive_tensordot(to_double(a), to_double(b), {1}, {0}), tolerance<T>(5));
        const auto r2 = xcnn::tensordot(a, b, {1, 2}, {0, 1}); // (1, 3)
        check_close(r2, naive_tensordot(to_double(a), to_double(b), {1, 2}, {0, 1}), tolerance<T>(5));
    }
    SECTION("zero-length axes")
    {
        using T2 = xt::xtensor<T, 2>;
        // Contracted axis of length 0: the sum is empty, the result is all zeros.
        const T2 a = T2::from_shape({3, 0});
        const T2 b = T2::from_shape({0, 4});
        const auto r = xcnn::tensordot(a, b, {1}, {0});
        REQUIRE(to_shape(r.shape()) == shape_t{3, 4});
        check_close(r, naive_tensordot(to_double(a), to_double(b), {1}, {0}), 0.0);
        // Free axis of length 0: an empty result.
        const T2 e = T2::from_shape({0, 5});
        const T2 f = random_tensor<T, T2>({5, 2}, rng);
        const auto r2 = xcnn::tensordot(e, f, {1}, {0});
        REQUIRE(to_shape(r2.shape()) == shape_t{0, 2});
        CHECK(r2.size() == 0);
    }
}

template <class T>
void expression_operands()
{
    std::mt19937 rng(15);
    using T3 = xt::xtensor<T, 3>;
    using T2 = xt::xtensor<T, 2>;
    const T3 a = random_tensor<T, T3>({3, 4, 5}, rng);
    const T3 b = random_tensor<T, T3>({3, 4, 5}, rng);
    const T2 c = random_tensor<T, T2>({5, 6}, rng);
    xt::xarray<double> sum_ab = xt::xarray<double>::from_shape({3, 4, 5});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 4; ++j)
            for (std::size_t l = 0; l < 5; ++l)
            {
                sum_ab(i, j, l) = static_cast<double>(a(i, j, l)) + static_cast<double>(b(i, j, l));
            }
    xt::xarray<double> c2 = xt::xarray<double>::from_shape({5, 6});
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t j = 0; j < 6; ++j)
        {
            c2(i, j) = 2 * static_cast<double>(c(i, j)) - 1;
        }
    const auto r = xcnn::tensordot(a + b, T(2) * c - T(1), {2}, {0});
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(r)>, xt::xtensor<T, 3>>::value);
    check_close(r, naive_tensordot(sum_ab, c2, {2}, {0}), 3 * tolerance<T>(5));

    // An expression mixed with a view.
    const auto r2 = xcnn::tensordot(xt::transpose(c), a - b, {1}, {2}); // (6, 3, 4)
    xt::xarray<double> diff_ab = xt::xarray<double>::from_shape({3, 4, 5});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 4; ++j)
            for (std::size_t l = 0; l < 5; ++l)
            {
                diff_ab(i, j, l) = static_cast<double>(a(i, j, l)) - static_cast<double>(b(i, j, l));
            }
    check_close(r2, naive_tensordot(naive_permute(to_double(c), {1, 0}), diff_ab, {1}, {2}), 3 * tolerance<T>(5));
}

/// A (M x K) * B (K x N) for M, N over every pair of `sizes` and K cycling through them, read
/// three ways (plain, A transposed in memory, B transposed in memory) so the packing paths for
/// strided rows and gathered columns also meet the edge tiles.
template <class T>
void gemm_edge_sizes()
{
    static const std::size_t sizes[] = {1, 7, 13, 33, 67, 130, 300};
    const std::size_t im = GENERATE(range<std::size_t>(0, 7));
    const std::size_t in = GENERATE(range<std::size_t>(0, 7));
    const std::size_t m = sizes[im], n = sizes[in], k = sizes[(im + 2 * in) % 7];
    const std::size_t variant = (im + in) % 3;
    CAPTURE(type_name<T>(), m, n, k, variant);
    std::mt19937 rng(static_cast<unsigned>(100 + 7 * im + in));

    using T2 = xt::xtensor<T, 2>;
    // Logical A (m x k) and B (k x n) stored as given by the variant.
    const T2 a_store = random_tensor<T, T2>(variant == 1 ? shape_t{k, m} : shape_t{m, k}, rng);
    const T2 b_store = random_tensor<T, T2>(variant == 2 ? shape_t{n, k} : shape_t{k, n}, rng);
    auto a_at = [&](std::size_t i, std::size_t p)
    {
        return double(variant == 1 ? a_store(p, i) : a_store(i, p));
    };
    auto b_at = [&](std::size_t p, std::size_t j)
    {
        return double(variant == 2 ? b_store(j, p) : b_store(p, j));
    };

    xt::xtensor<T, 2> got;
    if (variant == 0)
    {
        got = xcnn::tensordot(a_store, b_store, {1}, {0});
    }
    else if (variant == 1)
    {
        got = xcnn::tensordot(a_store, b_store, {0}, {0});
    }
    else
    {
        got = xcnn::tensordot(a_store, b_store, {1}, {1});
    }
    REQUIRE(got.shape(0) == m);
    REQUIRE(got.shape(1) == n);

    std::vector<double> arow(k);
    double worst = 0;
    for (std::size_t i = 0; i < m; ++i)
    {
        for (std::size_t p = 0; p < k; ++p)
        {
            arow[p] = a_at(i, p);
        }
        for (std::size_t j = 0; j < n; ++j)
        {
            double s = 0;
            for (std::size_t p = 0; p < k; ++p)
            {
                s += arow[p] * b_at(p, j);
            }
            worst = std::max(worst, std::abs(static_cast<double>(got(i, j)) - s));
        }
    }
    INFO("max |got - want| = " << worst);
    CHECK(worst <= tolerance<T>(k));
}

/// Random ranks, shapes and axis pairings on xarray operands (dynamic rank, std::vector axes),
/// some operands transposed.
template <class T>
void random_contractions()
{
    std::mt19937 rng(16);
    auto uniform = [&](std::size_t lo, std::size_t hi)
    {
        return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
    };
    for (int trial = 0; trial < 40; ++trial)
    {
        const std::size_t ra = uniform(1, 4), rb = uniform(1, 4);
        const std::size_t nk = uniform(0, std::min(ra, rb));
        shape_t perm_a(ra), perm_b(rb);
        std::iota(perm_a.begin(), perm_a.end(), 0);
        std::iota(perm_b.begin(), perm_b.end(), 0);
        std::shuffle(perm_a.begin(), perm_a.end(), rng);
        std::shuffle(perm_b.begin(), perm_b.end(), rng);
        const shape_t axes_a(perm_a.begin(), perm_a.begin() + static_cast<std::ptrdiff_t>(nk));
        const shape_t axes_b(perm_b.begin(), perm_b.begin() + static_cast<std::ptrdiff_t>(nk));
        shape_t sa(ra), sb(rb);
        for (auto& d : sa)
        {
            d = uniform(1, 5);
        }
        for (auto& d : sb)
        {
            d = uniform(1, 5);
        }
        for (std::size_t i = 0; i < nk; ++i)
        {
            sb[axes_b[i]] = sa[axes_a[i]];
        }
        INFO("trial " << trial << ": a " << str(sa) << " axes " << str(axes_a) << ", b " << str(sb) << " axes "
                      << str(axes_b));
        using A = xt::xarray<T>;
        const A a = random_tensor<T, A>(sa, rng);
        const A b = random_tensor<T, A>(sb, rng);
        std::size_t k = 1;
        for (auto axis : axes_a)
        {
            k *= sa[axis];
        }
        check_close(xcnn::tensordot(a, b, axes_a, axes_b), naive_tensordot(to_double(a), to_double(b), axes_a, axes_b),
                    tolerance<T>(k));
        if (trial % 2 == 0)
        {
            // The same contraction on b reversed in memory: b == transpose(b_rev).
            shape_t rev(rb);
            std::iota(rev.rbegin(), rev.rend(), 0);
            const A b_rev = naive_permute(to_double(b), rev);
            // transpose(b_rev) has b's shape and values but reversed strides.
            check_close(xcnn::tensordot(a, xt::transpose(b_rev), axes_a, axes_b),
                        naive_tensordot(to_double(a), to_double(b), axes_a, axes_b), tolerance<T>(k));
        }
    }
}

} // namespace

TEST_CASE("tensordot: matrix products", "[tensordot]")
{
    SECTION("float")
    {
        matrix_products<float>();
    }
    SECTION("double")
    {
        matrix_products<double>();
    }
}

TEST_CASE("tensordot: contractions over several axes", "[tensordot]")
{
    SECTION("float")
    {
        multi_axis_contractions<float>();
    }
    SECTION("double")
    {
        multi_axis_contractions<double>();
    }
}

TEST_CASE("tensordot: transposed and strided operands are read in place", "[tensordot]")
{
    SECTION("float")
    {
        non_contiguous_operands<float>();
    }
    SECTION("double")
    {
        non_contiguous_operands<double>();
    }
}

TEST_CASE("tensordot: a window view contracted with a kernel is a convolution", "[tensordot][windows]")
{
    SECTION("float")
    {
        convolution_windows<float>();
    }
    SECTION("double")
    {
        convolution_windows<double>();
    }
}

TEST_CASE("tensordot: other containers, layouts and degenerate axes", "[tensordot]")
{
    SECTION("float")
    {
        other_containers<float>();
    }
    SECTION("double")
    {
        other_containers<double>();
    }
}

TEST_CASE("tensordot: lazy expressions as operands", "[tensordot]")
{
    SECTION("float")
    {
        expression_operands<float>();
    }
    SECTION("double")
    {
        expression_operands<double>();
    }
}

TEST_CASE("tensordot: sizes across the GEMM's edge tiles and blocks", "[tensordot][gemm]")
{
    // The grid below must reach past every cache block of the kernel (K and M beyond kc and mc).
    REQUIRE(xcnn::detail::gemm_blocking<double>::kc < 300);
    REQUIRE(xcnn::detail::gemm_blocking<double>::mc < 300);
    REQUIRE(xcnn::detail::gemm_blocking<float>::mc < 300);
    SECTION("float")
    {
        gemm_edge_sizes<float>();
    }
    SECTION("double")
    {
        gemm_edge_sizes<double>();
    }
}

TEST_CASE("tensordot: random ranks, shapes and axes", "[tensordot]")
{
    SECTION("float")
    {
        random_contractions<float>();
    }
    SECTION("double")
    {
        random_contractions<double>();
    }
}

TEST_CASE("tensordot: errors name the shapes", "[tensordot][errors]")
{
    const xt::xtensor<double, 2> a = xt::ones<double>({3, 4});
    const xt::xtensor<double, 2> b = xt::ones<double>({5, 6});
    const xt::xtensor<double, 2> b4 = xt::ones<double>({4, 6});
    const xt::xtensor<double, 3> c = xt::ones<double>({3, 3, 3});

    SECTION("axis out of range")
    {
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b4, {2}, {0}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(xcnn::tensordot(a, b4, {2}, {0}), xcnn_test::contains("out of range"));
        REQUIRE_THROWS_WITH(xcnn::tensordot(a, b4, {2}, {0}), xcnn_test::contains("(3, 4)"));
        REQUIRE_THROWS_WITH(xcnn::tensordot(a, b4, {2}, {0}), xcnn_test::contains("(4, 6)"));
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b4, {1}, {7}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b4, shape_t{1}, shape_t{2}), xcnn::shape_error);
    }
    SECTION("repeated axis")
    {
        REQUIRE_THROWS_AS(xcnn::tensordot(c, c, {0, 0}, {0, 1}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::tensordot(c, c, {0, 1}, {2, 2}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(xcnn::tensordot(c, c, {0, 0}, {0, 1}), xcnn_test::contains("twice"));
        REQUIRE_THROWS_WITH(xcnn::tensordot(c, c, {0, 0}, {0, 1}), xcnn_test::contains("(3, 3, 3)"));
        REQUIRE_THROWS_AS(xcnn::tensordot(c, c, shape_t{1, 1}, shape_t{0, 1}), xcnn::shape_error);
    }
    SECTION("length mismatch")
    {
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b, {1}, {0}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(xcnn::tensordot(a, b, {1}, {0}), xcnn_test::contains("(3, 4)"));
        REQUIRE_THROWS_WITH(xcnn::tensordot(a, b, {1}, {0}), xcnn_test::contains("(5, 6)"));
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b4, {0}, {0}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::tensordot(xt::transpose(a), b, {0}, {0}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::tensordot(a + a, b, {1}, {1}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b, shape_t{0}, shape_t{1}), xcnn::shape_error);
        // The axis of a longer than that of b, not only shorter.
        const xt::xtensor<double, 2> b2 = xt::ones<double>({2, 5});
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b2, {0}, {0}), xcnn::shape_error);
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b2, {1}, {1}), xcnn::shape_error);
    }
    SECTION("different numbers of axes")
    {
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b4, shape_t{1}, shape_t{0, 1}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(xcnn::tensordot(a, b4, shape_t{1}, shape_t{0, 1}), xcnn_test::contains("(3, 4)"));
        REQUIRE_THROWS_WITH(xcnn::tensordot(a, b4, shape_t{1}, shape_t{0, 1}), xcnn_test::contains("(4, 6)"));
        REQUIRE_THROWS_AS(xcnn::tensordot(a, b4, shape_t{}, shape_t{0}), xcnn::shape_error);
    }
    SECTION("valid calls on the same operands do not throw")
    {
        REQUIRE_NOTHROW(xcnn::tensordot(a, b4, {1}, {0}));
        REQUIRE_NOTHROW(xcnn::tensordot(c, c, {0, 1}, {2, 1}));
    }
}
