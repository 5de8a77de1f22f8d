// Tests of xcnn::zero_pad2d, xcnn::zero_pad2d_into and xcnn::detail::place_2d against naive
// loops written here (numpy.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) semantics).
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"

#include <xcnn/core/padding.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

namespace
{

struct nchw
{
    std::size_t n, c, h, w;
};

struct pads
{
    std::size_t ph, pw;
};

template <class T>
xt::xtensor<T, 4> random_nchw(const nchw& s, std::mt19937& rng)
{
    xt::xtensor<T, 4> x = xt::xtensor<T, 4>::from_shape({s.n, s.c, s.h, s.w});
    // Nonzero values only, so a padding zero cannot be mistaken for data.
    std::uniform_real_distribution<double> dist(0.5, 2.0);
    for (auto& e : x)
    {
        e = static_cast<T>(dist(rng));
    }
    return x;
}

/// Checks `out` == x zero-padded by (ph, pw), element by element (exact: padding only copies).
template <class X, class O>
void check_padded(const X& x, const O& out, std::size_t ph, std::size_t pw)
{
    const std::size_t n = x.shape(0), c = x.shape(1), h = x.shape(2), w = x.shape(3);
    REQUIRE(out.shape(0) == n);
    REQUIRE(out.shape(1) == c);
    REQUIRE(out.shape(2) == h + 2 * ph);
    REQUIRE(out.shape(3) == w + 2 * pw);
    std::size_t mismatches = 0, zeros = 0;
    for (std::size_t in = 0; in < n; ++in)
        for (std::size_t ic = 0; ic < c; ++ic)
            for (std::size_t y = 0; y < h + 2 * ph; ++y)
                for (std::size_t xx = 0; xx < w + 2 * pw; ++xx)
                {
                    const bool inside = y >= ph && y < ph + h && xx >= pw && xx < pw + w;
                    const double want = inside ? static_cast<double>(x(in, ic, y - ph, xx - pw)) : 0.0;
                    const double got = static_cast<double>(out(in, ic, y, xx));
                    mismatches += !(got == want);
                    zeros += got == 0.0;
                }
    CHECK(mismatches == 0);
    // Exactly the border is zero (the data is nonzero).
    CHECK(zeros == n * c * ((h + 2 * ph) * (w + 2 * pw) - h * w));
}

template <class T>
void pad_against_naive()
{
    const nchw s = GENERATE(values<nchw>({{1, 1, 1, 1}, {2, 3, 5, 4}, {1, 2, 7, 9}, {3, 1, 4, 4}}));
    const pads p = GENERATE(values<pads>({{0, 0}, {1, 1}, {2, 0}, {0, 3}, {1, 2}, {3, 1}}));
    CAPTURE(s.n, s.c, s.h, s.w, p.ph, p.pw);
    std::mt19937 rng(static_cast<unsigned>(s.h * 31 + s.w + p.ph * 7 + p.pw));
    const xt::xtensor<T, 4> x = random_nchw<T>(s, rng);
    const auto out = xcnn::zero_pad2d(x, p.ph, p.pw);
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(out)>, xt::xtensor<T, 4>>::value);
    check_padded(x, out, p.ph, p.pw);
    // A new tensor, never an alias of the input (also with zero padding).
    CHECK(out.data() != x.data());
}

} // namespace

TEST_CASE("zero_pad2d matches numpy.pad", "[padding]")
{
    SECTION("float")
    {
        pad_against_naive<float>();
    }
    SECTION("double")
    {
        pad_against_naive<double>();
    }
}

TEST_CASE("zero_pad2d of expressions and views", "[padding]")
{
    std::mt19937 rng(1);
    const xt::xtensor<double, 4> x = random_nchw<double>({2, 2, 6, 5}, rng);

    SECTION("a lazy expression")
    {
        xt::xtensor<double, 4> doubled = xt::xtensor<double, 4>::from_shape({2, 2, 6, 5});
        for (std::size_t i = 0; i < x.size(); ++i)
        {
            doubled.data()[i] = 2.0 * x.data()[i];
        }
        check_padded(doubled, xcnn::zero_pad2d(2.0 * x, 1, 2), 1, 2);
    }
    SECTION("a strided view")
    {
        // x[:, ::-1, ::2, 1:] -> (2, 2, 3, 4)
        const auto v =
            xt::view(x, xt::all(), xt::range(1, xt::placeholders::_, -1), xt::range(0, 6, 2), xt::range(1, 5));
        xt::xtensor<double, 4> ref = xt::xtensor<double, 4>::from_shape({2, 2, 3, 4});
        for (std::size_t n = 0; n < 2; ++n)
            for (std::size_t c = 0; c < 2; ++c)
                for (std::size_t y = 0; y < 3; ++y)
                    for (std::size_t w = 0; w < 4; ++w)
                    {
                        ref(n, c, y, w) = x(n, 1 - c, 2 * y, 1 + w);
                    }
        check_padded(ref, xcnn::zero_pad2d(v, 2, 1), 2, 1);
    }
    SECTION("a column-major tensor")
    {
        using CM = xt::xtensor<double, 4, xt::layout_type::column_major>;
        CM cm = CM::from_shape({2, 2, 6, 5});
        for (std::size_t n = 0; n < 2; ++n)
            for (std::size_t c = 0; c < 2; ++c)
                for (std::size_t y = 0; y < 6; ++y)
                    for (std::size_t w = 0; w < 5; ++w)
                    {
                        cm(n, c, y, w) = x(n, c, y, w);
                    }
        check_padded(x, xcnn::zero_pad2d(cm, 1, 1), 1, 1);
    }
    SECTION("an xarray of rank 4")
    {
        const xt::xarray<double> a = x;
        const auto out = xcnn::zero_pad2d(a, 3, 0);
        STATIC_REQUIRE(std::is_same<std::decay_t<decltype(out)>, xt::xtensor<double, 4>>::value);
        check_padded(x, out, 3, 0);
    }
}

TEST_CASE("zero_pad2d_into resizes its output and reuses the buffer", "[padding]")
{
    std::mt19937 rng(2);
    const xt::xtensor<double, 4> x1 = random_nchw<double>({2, 3, 5, 4}, rng);
    const xt::xtensor<double, 4> x2 = random_nchw<double>({2, 3, 5, 4}, rng);
    const xt::xtensor<double, 4> x3 = random_nchw<double>({1, 2, 3, 7}, rng);
    const double nan = std::numeric_limits<double>::quiet_NaN();

    xt::xtensor<double, 4> out;
    xcnn::zero_pad2d_into(x1, 2, 1, out);
    check_padded(x1, out, 2, 1);

    SECTION("same shape: same buffer, every element rewritten")
    {
        const double* buffer = out.data();
        std::fill(out.begin(), out.end(), nan);
        xcnn::zero_pad2d_into(x2, 2, 1, out);
        CHECK(out.data() == buffer);
        check_padded(x2, out, 2, 1);
        // And once more with the first input: nothing of x2 survives.
        xcnn::zero_pad2d_into(x1, 2, 1, out);
        CHECK(out.data() == buffer);
        check_padded(x1, out, 2, 1);
    }
    SECTION("another shape: resized")
    {
        std::fill(out.begin(), out.end(), nan);
        xcnn::zero_pad2d_into(x3, 1, 3, out);
        check_padded(x3, out, 1, 3);
        // Same input, other padding: the output shape changes again.
        xcnn::zero_pad2d_into(x3, 0, 0, out);
        check_padded(x3, out, 0, 0);
    }
    SECTION("an output already of the right shape keeps its buffer on the first call")
    {
        xt::xtensor<float, 4> fx = xt::xtensor<float, 4>::from_shape({1, 2, 3, 7});
        for (std::size_t i = 0; i < fx.size(); ++i)
        {
            fx.data()[i] = static_cast<float>(x3.data()[i]);
        }
        xt::xtensor<float, 4> fout = xt::xtensor<float, 4>::from_shape({1, 2, 5, 9});
        std::fill(fout.begin(), fout.end(), std::numeric_limits<float>::quiet_NaN());
        const float* buffer = fout.data();
        xcnn::zero_pad2d_into(fx, 1, 1, fout);
        CHECK(fout.data() == buffer);
        check_padded(fx, fout, 1, 1);
    }
}

namespace
{

struct place_case
{
    std::size_t h, w, out_h, out_w;
};

} // namespace

TEST_CASE("place_2d: positive, negative (cropping) and out-of-range offsets", "[padding]")
{
    const place_case pc = GENERATE(values<place_case>({
        {3, 4, 5, 6}, // source smaller than the destination
        {7, 8, 3, 4}, // source larger: always cropped
        {4, 5, 4, 5}, // same size
        {1, 1, 1, 1},
        {2, 9, 6, 3}, // wide source into a tall destination
        {6, 5, 3, 5}, // same width, rows cropped: whole planes copied as one run
    }));
    const std::ptrdiff_t top = GENERATE(as<std::ptrdiff_t>(), -9, -4, -2, -1, 0, 1, 2, 3, 6, 10);
    const std::ptrdiff_t left = GENERATE(as<std::ptrdiff_t>(), -10, -4, -2, -1, 0, 1, 3, 5, 9);
    CAPTURE(pc.h, pc.w, pc.out_h, pc.out_w, top, left);
    const std::size_t planes = 3;

    std::vector<double> src(planes * pc.h * pc.w);
    for (std::size_t i = 0; i < src.size(); ++i)
    {
        src[i] = static_cast<double>(i + 1); // distinct and nonzero
    }
    std::vector<double> dst(planes * pc.out_h * pc.out_w + 1, std::numeric_limits<double>::quiet_NaN());
    const double guard = -12345.0;
    dst.back() = guard; // one element past the destination must not be written

    xcnn::detail::place_2d(src.data(), planes, pc.h, pc.w, dst.data(), pc.out_h, pc.out_w, top, left);

    std::size_t mismatches = 0, copied = 0;
    for (std::size_t p = 0; p < planes; ++p)
        for (std::size_t y = 0; y < pc.out_h; ++y)
            for (std::size_t x = 0; x < pc.out_w; ++x)
            {
                const std::ptrdiff_t sy = static_cast<std::ptrdiff_t>(y) - top;
                const std::ptrdiff_t sx = static_cast<std::ptrdiff_t>(x) - left;
                const bool inside = sy >= 0 && sy < static_cast<std::ptrdiff_t>(pc.h) && sx >= 0 &&
                                    sx < static_cast<std::ptrdiff_t>(pc.w);
                const double want =
                    inside ? src[(p * pc.h + static_cast<std::size_t>(sy)) * pc.w + static_cast<std::size_t>(sx)] : 0.0;
                const double got = dst[(p * pc.out_h + y) * pc.out_w + x];
                mismatches += !(got == want); // NaN (never written) is a mismatch
                copied += inside;
            }
    CHECK(mismatches == 0);
    CHECK(dst.back() == guard);

    // The overlap size by interval arithmetic, as a cross-check of the naive loop itself.
    auto overlap = [](std::ptrdiff_t offset, std::size_t src_len, std::size_t dst_len)
    {
        const std::ptrdiff_t lo = std::max<std::ptrdiff_t>(offset, 0);
        const std::ptrdiff_t hi = std::min<std::ptrdiff_t>(offset + static_cast<std::ptrdiff_t>(src_len),
                                                           static_cast<std::ptrdiff_t>(dst_len));
        return static_cast<std::size_t>(std::max<std::ptrdiff_t>(hi - lo, 0));
    };
    CHECK(copied == planes * overlap(top, pc.h, pc.out_h) * overlap(left, pc.w, pc.out_w));
}

TEST_CASE("place_2d: float, source entirely outside, crop strictly inside", "[padding]")
{
    const std::size_t planes = 2, h = 4, w = 5;
    std::vector<float> src(planes * h * w);
    for (std::size_t i = 0; i < src.size(); ++i)
    {
        src[i] = static_cast<float>(i) + 0.5f;
    }

    SECTION("source entirely outside: the destination is all zeros")
    {
        const std::ptrdiff_t top = GENERATE(as<std::ptrdiff_t>(), -4, -100, 3, 50);
        const std::ptrdiff_t left = GENERATE(as<std::ptrdiff_t>(), -5, -77, 0, 6, 40);
        std::vector<float> dst(planes * 3 * 6, std::numeric_limits<float>::quiet_NaN());
        const bool rows_miss = top <= -4 || top >= 3;
        const bool cols_miss = left <= -5 || left >= 6;
        if (!rows_miss && !cols_miss)
        {
            return;
        }
        CAPTURE(top, left);
        xcnn::detail::place_2d(src.data(), planes, h, w, dst.data(), 3, 6, top, left);
        std::size_t nonzero = 0;
        for (const float v : dst)
        {
            nonzero += !(v == 0.0f);
        }
        CHECK(nonzero == 0);
    }
    SECTION("a crop window strictly inside the source")
    {
        // dst (2 x 3) = src[1:3, 2:5] of each plane.
        std::vector<float> dst(planes * 2 * 3, std::numeric_limits<float>::quiet_NaN());
        xcnn::detail::place_2d(src.data(), planes, h, w, dst.data(), 2, 3, -1, -2);
        std::size_t mismatches = 0;
        for (std::size_t p = 0; p < planes; ++p)
            for (std::size_t y = 0; y < 2; ++y)
                for (std::size_t x = 0; x < 3; ++x)
                {
                    mismatches += !(dst[(p * 2 + y) * 3 + x] == src[(p * h + y + 1) * w + x + 2]);
                }
        CHECK(mismatches == 0);
    }
}

TEST_CASE("zero_pad2d rejects a wrong rank and zero_pad2d_into rejects aliasing", "[padding][errors]")
{
    const xt::xarray<double> rank3 = xt::ones<double>({2, 3, 4});
    REQUIRE_THROWS_AS(xcnn::zero_pad2d(rank3, 1, 1), xcnn::shape_error);
    REQUIRE_THROWS_WITH(xcnn::zero_pad2d(rank3, 1, 1), xcnn_test::contains("(2, 3, 4)"));
    xt::xtensor<double, 4> x = xt::ones<double>({1, 1, 2, 2});
    REQUIRE_THROWS_AS(xcnn::zero_pad2d_into(x, 1, 1, x), xcnn::value_error);
    CHECK(x.shape() == (std::array<std::size_t, 4>{1, 1, 2, 2}));
}

namespace
{

/// copy_short, copy_short_masked and copy_short_relu against element-wise loops, for every
/// count up to three vectors and a bit (the overlapping last vector), out of place and in place,
/// with NaN, negative zero and the guard elements past `count` untouched; below a vector element
/// by element or, with `Masked`, with masked accesses.
template <class T, bool Masked>
void short_copies()
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    const T guard = T(12345);
    std::mt19937 rng(31);
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    for (std::size_t count = 0; count <= 3 * S + 1; ++count)
    {
        CAPTURE(count);
        std::vector<T> src(count + 4), mask(count + 4);
        for (std::size_t i = 0; i < src.size(); ++i)
        {
            src[i] = i % 7 == 3 ? nan : (i % 5 == 1 ? T(-0.0) : T(dist(rng)));
            mask[i] = i % 6 == 2 ? nan : T(dist(rng));
        }
        auto same = [](T a, T b)
        {
            return (std::isnan(a) && std::isnan(b)) || (a == b && std::signbit(a) == std::signbit(b));
        };
        std::vector<T> dst(count + 4, guard);
        xcnn::detail::copy_short<Masked>(src.data(), count, dst.data());
        for (std::size_t i = 0; i < count + 4; ++i)
        {
            CHECK(same(dst[i], i < count ? src[i] : guard));
        }
        std::fill(dst.begin(), dst.end(), guard);
        xcnn::detail::copy_short_masked<Masked>(src.data(), mask.data(), count, dst.data());
        for (std::size_t i = 0; i < count + 4; ++i)
        {
            CHECK(same(dst[i], i < count ? (mask[i] > T(0) ? src[i] : T(0)) : guard));
        }
        auto relu = [](T v)
        {
            return v < T(0) ? T(0) : v;
        };
        std::fill(dst.begin(), dst.end(), guard);
        xcnn::detail::copy_short_relu<Masked>(src.data(), count, dst.data());
        for (std::size_t i = 0; i < count + 4; ++i)
        {
            CHECK(same(dst[i], i < count ? relu(src[i]) : guard));
        }
        // In place, as Conv2D's window form applies a fused ReLU to its own output.
        std::vector<T> in_place = src;
        xcnn::detail::copy_short_relu<Masked>(in_place.data(), count, in_place.data());
        std::vector<T> masked_in_place = src;
        xcnn::detail::copy_short_masked<Masked>(masked_in_place.data(), mask.data(), count, masked_in_place.data());
        for (std::size_t i = 0; i < count + 4; ++i)
        {
            CHECK(same(in_place[i], i < count ? relu(src[i]) : src[i]));
            CHECK(same(masked_in_place[i], i < count ? (mask[i] > T(0) ? src[i] : T(0)) : src[i]));
        }
    }
}

} // namespace

TEST_CASE("copy_short, copy_short_masked and copy_short_relu at every count up to 3 vectors", "[padding]")
{
    SECTION("float")
    {
        short_copies<float, false>();
        short_copies<float, true>();
    }
    SECTION("double")
    {
        short_copies<double, false>();
        short_copies<double, true>();
    }
}
