// Conv2D: forward and backward against the naive seven-loop convolution, finite-difference
// gradient checks, buffer/overwrite semantics, parameter assignment and the error cases.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"

#include <xcnn/layers/conv2d.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace
{

using xcnn::Conv2D;
using xcnn::Conv2DOptions;
using xcnn::size2;
namespace naive = xcnn_test::naive;
using xcnn_test::identical;
using xcnn_test::max_scaled_error;
using xcnn_test::random_tensor;
using xcnn_test::same_extents;

/// How a test constructs its layer.
enum class ctor
{
    scalar,         // Conv2D(in, out, k, stride, padding): square everything
    options_scalar, // Conv2DOptions(in, out, k).stride(s).padding(p): square everything
    options_size2,  // Conv2DOptions(in, out, {kh, kw}).stride({sh, sw}).padding({ph, pw})
};

struct conv_case
{
    std::size_t n, c_in, c_out, h, w;
    size2 k, s, p;
    ctor how;

    std::string describe() const
    {
        std::ostringstream out;
        out << "N=" << n << " C_in=" << c_in << " C_out=" << c_out << " H=" << h << " W=" << w << " kernel=(" << k[0]
            << ", " << k[1] << ") stride=(" << s[0] << ", " << s[1] << ") padding=(" << p[0] << ", " << p[1]
            << ") ctor=" << static_cast<int>(how);
        return out.str();
    }
    std::array<std::size_t, 4> input_shape() const { return {n, c_in, h, w}; }
    std::array<std::size_t, 4> weight_shape() const { return {c_out, c_in, k[0], k[1]}; }
    std::array<std::size_t, 4> output_shape() const
    {
        return {n, c_out, naive::out_extent(h, k[0], s[0], p[0]), naive::out_extent(w, k[1], s[1], p[1])};
    }
    /// True when (extent + 2 pad - kernel) is not a multiple of the stride along axis d.
    bool non_divisible(std::size_t d) const
    {
        const std::size_t extent = d == 0 ? h : w;
        return (extent + 2 * p[d] - k[d]) % s[d] != 0;
    }
};

template <class T>
Conv2D<T> make_layer(const conv_case& c)
{
    switch (c.how)
    {
    case ctor::scalar:
        return Conv2D<T>(c.c_in, c.c_out, c.k[0], c.s[0], c.p[0]);
    case ctor::options_scalar:
        return Conv2D<T>(Conv2DOptions(c.c_in, c.c_out, c.k[0]).stride(c.s[0]).padding(c.p[0]));
    case ctor::options_size2:
    default:
        return Conv2D<T>(Conv2DOptions(c.c_in, c.c_out, c.k).stride(c.s).padding(c.p));
    }
}

/// Which input rows (axis 0) or columns (axis 1) at least one window reaches, found by walking
/// every window tap.
std::vector<bool> reached(const conv_case& c, std::size_t axis)
{
    const std::size_t extent = axis == 0 ? c.h : c.w;
    const std::size_t out = naive::out_extent(extent, c.k[axis], c.s[axis], c.p[axis]);
    std::vector<bool> hit(extent, false);
    for (std::size_t o = 0; o < out; ++o)
    {
        for (std::size_t t = 0; t < c.k[axis]; ++t)
        {
            const long i = static_cast<long>(o * c.s[axis] + t) - static_cast<long>(c.p[axis]);
            if (i >= 0 && i < static_cast<long>(extent))
            {
                hit[static_cast<std::size_t>(i)] = true;
            }
        }
    }
    return hit;
}

/// Number of entries of dx (N, C, H, W) in rows or columns no window reaches that are not
/// exactly zero, and (through `unreached`) how many such entries there are.
template <class D>
std::size_t nonzero_in_unreached(const conv_case& c, const D& dx, std::size_t& unreached)
{
    const auto rows = reached(c, 0), cols = reached(c, 1);
    std::size_t bad = 0;
    unreached = 0;
    for (std::size_t n = 0; n < c.n; ++n)
    {
        for (std::size_t ch = 0; ch < c.c_in; ++ch)
        {
            for (std::size_t y = 0; y < c.h; ++y)
            {
                for (std::size_t x = 0; x < c.w; ++x)
                {
                    if (!rows[y] || !cols[x])
                    {
                        ++unreached;
                        bad += dx(n, ch, y, x) != 0 ? 1 : 0;
                    }
                }
            }
        }
    }
    return bad;
}

/// `count` cases in which every value of every parameter occurs: each parameter gets a column
/// that cycles through its range and is then shuffled on its own, so the combinations are
/// random but the coverage is not. Input extents are random in [max(1, K - 2P), that + 7].
std::vector<conv_case> sweep_cases(std::size_t count, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    auto column = [&](const std::vector<std::size_t>& values)
    {
        std::vector<std::size_t> v(count);
        for (std::size_t i = 0; i < count; ++i)
        {
            v[i] = values[i % values.size()];
        }
        std::shuffle(v.begin(), v.end(), rng);
        return v;
    };
    auto range = [&](std::size_t lo, std::size_t hi)
    {
        std::vector<std::size_t> v;
        for (std::size_t i = lo; i <= hi; ++i)
        {
            v.push_back(i);
        }
        return column(v);
    };
    const auto n = range(1, 5), c_in = range(1, 8), c_out = range(1, 8);
    const auto kh = range(1, 5), kw = range(1, 5), sh = range(1, 3), sw = range(1, 3), ph = range(0, 2),
               pw = range(0, 2);
    // Half the cases rectangular through Conv2DOptions' size2 setters, a quarter square through
    // each of the scalar constructor and the scalar setters.
    const auto how = column({0, 1, 2, 2});
    std::uniform_int_distribution<std::size_t> extra(0, 7);

    std::vector<conv_case> cases;
    for (std::size_t i = 0; i < count; ++i)
    {
        conv_case c{};
        c.n = n[i];
        c.c_in = c_in[i];
        c.c_out = c_out[i];
        c.how = static_cast<ctor>(how[i]);
        c.k = {kh[i], kw[i]};
        c.s = {sh[i], sw[i]};
        c.p = {ph[i], pw[i]};
        if (c.how != ctor::options_size2)
        {
            c.k[1] = c.k[0];
            c.s[1] = c.s[0];
            c.p[1] = c.p[0];
        }
        auto min_extent = [](std::size_t k, std::size_t p)
        {
            return k > 2 * p ? k - 2 * p : std::size_t(1);
        };
        c.h = min_extent(c.k[0], c.p[0]) + extra(rng);
        c.w = min_extent(c.k[1], c.p[1]) + extra(rng);
        cases.push_back(c);
    }
    return cases;
}

constexpr std::size_t sweep_size = 150;
constexpr std::uint32_t float_sweep_seed = 20240611u;
constexpr std::uint32_t double_sweep_seed = 424242u;

/// One case of the sweep: forward, backward and predict against the naive loops. `tol` bounds
/// |library - naive| / (sum of |terms|) for every entry of y, dX, dW and db.
template <class T>
void check_against_naive(const conv_case& c, std::mt19937& rng, double tol)
{
    INFO(c.describe());
    auto layer = make_layer<T>(c);
    layer.weight() = random_tensor<T, 4>(c.weight_shape(), rng);
    layer.bias() = random_tensor<T, 1>({c.c_out}, rng);
    const auto x = random_tensor<T, 4>(c.input_shape(), rng);

    xt::xtensor<double, 4> magnitude;
    const auto expected = naive::conv2d(x, layer.weight(), layer.bias(), c.s, c.p, &magnitude);
    const xt::xtensor<T, 4> y = layer.forward(x);
    REQUIRE(same_extents(y, expected));
    const auto declared = layer.output_shape({c.n, c.c_in, c.h, c.w});
    CHECK(std::vector<std::size_t>(y.shape().begin(), y.shape().end()) == declared);
    const auto out_shape = c.output_shape();
    CHECK(std::equal(out_shape.begin(), out_shape.end(), y.shape().begin()));
    CHECK(max_scaled_error(y, expected, magnitude) <= tol);

    const auto dy = random_tensor<T, 4>(out_shape, rng);
    const auto g = naive::conv2d_backward(x, layer.weight(), dy, c.s, c.p);
    const xt::xtensor<T, 4> dx = layer.backward(dy);
    REQUIRE(same_extents(dx, x));
    REQUIRE(same_extents(layer.weight_grad(), layer.weight()));
    REQUIRE(same_extents(layer.bias_grad(), layer.bias()));
    CHECK(max_scaled_error(dx, g.dx, g.dx_magnitude) <= tol);
    CHECK(max_scaled_error(layer.weight_grad(), g.dw, g.dw_magnitude) <= tol);
    CHECK(max_scaled_error(layer.bias_grad(), g.db, g.db_magnitude) <= tol);
    std::size_t unreached = 0;
    CHECK(nonzero_in_unreached(c, dx, unreached) == 0);

    // predict gives bit-identical output.
    CHECK(identical(layer.predict(x), y));
}

template <class T>
void run_sweep(std::uint32_t seed, double tol)
{
    std::mt19937 rng(seed + 1);
    for (const auto& c : sweep_cases(sweep_size, seed))
    {
        check_against_naive<T>(c, rng, tol);
    }
}

/// Finite-difference check in double of dX, dW and db for loss = sum(y * R), i.e. dy = R.
/// `expect_unreached`: the geometry leaves input rows or columns that no window reads.
void gradient_check(const conv_case& c, bool expect_unreached, std::uint32_t seed)
{
    INFO(c.describe());
    std::mt19937 rng(seed);
    auto layer = make_layer<double>(c);
    layer.weight() = random_tensor<double, 4>(c.weight_shape(), rng);
    layer.bias() = random_tensor<double, 1>({c.c_out}, rng);
    auto x = random_tensor<double, 4>(c.input_shape(), rng);
    const auto r = random_tensor<double, 4>(c.output_shape(), rng);

    layer.forward(x);
    const xt::xtensor<double, 4> dx = layer.backward(r);
    const xt::xtensor<double, 4> dw = layer.weight_grad();
    const xt::xtensor<double, 1> db = layer.bias_grad();

    const auto loss = [&]
    {
        return xcnn_test::weighted_sum(layer.predict(x), r);
    };
    const auto num_dx = xcnn_test::numeric_gradient(loss, x.data(), x.size());
    const auto num_dw = xcnn_test::numeric_gradient(loss, layer.weight().data(), layer.weight().size());
    const auto num_db = xcnn_test::numeric_gradient(loss, layer.bias().data(), layer.bias().size());
    CHECK(xcnn_test::relative_error(num_dx.data(), dx.data(), dx.size()) < 1e-6);
    CHECK(xcnn_test::relative_error(num_dw.data(), dw.data(), dw.size()) < 1e-6);
    CHECK(xcnn_test::relative_error(num_db.data(), db.data(), db.size()) < 1e-6);

    // Rows and columns that no window reaches get exactly zero gradient.
    std::size_t unreached = 0;
    CHECK(nonzero_in_unreached(c, dx, unreached) == 0);
    CAPTURE(unreached);
    CHECK((unreached > 0) == expect_unreached);
}

} // namespace

TEST_CASE("Conv2D: the naive reference reproduces hand-computed results", "[conv2d][naive]")
{
    // 1x1x4x4 input 1..16, kernel [[1, 2], [3, 4]], bias 0.5, stride 2: cross-correlation
    // (no kernel flip), e.g. the top-left output is 1*1 + 2*2 + 3*5 + 4*6 + 0.5.
    xt::xtensor<double, 4> x({1, 1, 4, 4});
    for (std::size_t i = 0; i < 16; ++i)
    {
        x.data()[i] = static_cast<double>(i + 1);
    }
    const xt::xtensor<double, 4> w = {{{{1, 2}, {3, 4}}}};
    const xt::xtensor<double, 1> b = {0.5};
    const xt::xtensor<double, 4> expected = {{{{44.5, 64.5}, {124.5, 144.5}}}};
    CHECK(identical(naive::conv2d(x, w, b, {2, 2}, {0, 0}), expected));

    Conv2D<double> layer(1, 1, 2, 2);
    layer.weight() = w;
    layer.bias() = b;
    CHECK(identical(layer.forward(x), expected));
}

TEST_CASE("Conv2D: padding and channel layout on known answers", "[conv2d]")
{
    SECTION("a single tap selects a shifted, zero-padded copy of the input")
    {
        const xt::xtensor<double, 4> x = {{{{1, 2}, {3, 4}}}};
        Conv2D<double> layer(1, 1, 3, 1, 1);
        layer.bias() = xt::zeros<double>({1});
        // Top-left tap: y(i, j) = x(i - 1, j - 1).
        layer.weight() = xt::zeros<double>({1, 1, 3, 3});
        layer.weight()(0, 0, 0, 0) = 1;
        const xt::xtensor<double, 4> top_left = {{{{0, 0}, {0, 1}}}};
        CHECK(identical(layer.forward(x), top_left));
        CHECK(identical(naive::conv2d(x, layer.weight(), layer.bias(), {1, 1}, {1, 1}), top_left));
        // Bottom-right tap: y(i, j) = x(i + 1, j + 1).
        layer.weight() = xt::zeros<double>({1, 1, 3, 3});
        layer.weight()(0, 0, 2, 2) = 1;
        const xt::xtensor<double, 4> bottom_right = {{{{4, 0}, {0, 0}}}};
        CHECK(identical(layer.forward(x), bottom_right));
        CHECK(identical(naive::conv2d(x, layer.weight(), layer.bias(), {1, 1}, {1, 1}), bottom_right));
    }
    SECTION("weight is (C_out, C_in, KH, KW)")
    {
        // 1x1 kernel mixing 2 input channels (all 1, all 10) into 2 outputs.
        xt::xtensor<float, 4> x({1, 2, 2, 3});
        std::fill(x.begin(), x.begin() + 6, 1.0f);
        std::fill(x.begin() + 6, x.end(), 10.0f);
        Conv2D<float> layer(2, 2, 1);
        layer.weight() = xt::xtensor<float, 4>({{{{1}}, {{2}}}, {{{3}}, {{4}}}});
        layer.bias() = xt::xtensor<float, 1>({0.25f, -0.5f});
        const auto& y = layer.forward(x);
        REQUIRE(y.shape() == (std::array<std::size_t, 4>{1, 2, 2, 3}));
        for (std::size_t i = 0; i < 2; ++i)
        {
            for (std::size_t j = 0; j < 3; ++j)
            {
                CHECK(y(0, 0, i, j) == 21.25f);
                CHECK(y(0, 1, i, j) == 42.5f);
            }
        }
    }
}

TEST_CASE("Conv2D: the seeded sweeps cover every parameter value", "[conv2d][sweep]")
{
    for (const std::uint32_t seed : {float_sweep_seed, double_sweep_seed})
    {
        INFO("seed " << seed);
        const auto cases = sweep_cases(sweep_size, seed);
        std::set<std::size_t> n, c_in, c_out, kh, kw, sh, sw, ph, pw;
        std::set<int> how;
        std::size_t non_divisible = 0, pad_beyond_kernel = 0, non_square_input = 0, rectangular = 0,
                    unreached_lines = 0;
        for (const auto& c : cases)
        {
            n.insert(c.n);
            c_in.insert(c.c_in);
            c_out.insert(c.c_out);
            kh.insert(c.k[0]);
            kw.insert(c.k[1]);
            sh.insert(c.s[0]);
            sw.insert(c.s[1]);
            ph.insert(c.p[0]);
            pw.insert(c.p[1]);
            how.insert(static_cast<int>(c.how));
            non_divisible += (c.non_divisible(0) || c.non_divisible(1)) ? 1 : 0;
            pad_beyond_kernel += (c.p[0] > c.k[0] - 1 || c.p[1] > c.k[1] - 1) ? 1 : 0;
            non_square_input += c.h != c.w ? 1 : 0;
            rectangular += (c.k[0] != c.k[1] || c.s[0] != c.s[1] || c.p[0] != c.p[1]) ? 1 : 0;
            const auto rows = reached(c, 0), cols = reached(c, 1);
            unreached_lines +=
                (std::count(rows.begin(), rows.end(), false) + std::count(cols.begin(), cols.end(), false)) > 0 ? 1 : 0;
        }
        const std::set<std::size_t> one_to_three{1, 2, 3}, one_to_five{1, 2, 3, 4, 5},
            one_to_eight{1, 2, 3, 4, 5, 6, 7, 8}, zero_to_two{0, 1, 2};
        CHECK(n == one_to_five);
        CHECK(c_in == one_to_eight);
        CHECK(c_out == one_to_eight);
        CHECK(kh == one_to_five);
        CHECK(kw == one_to_five);
        CHECK(sh == one_to_three);
        CHECK(sw == one_to_three);
        CHECK(ph == zero_to_two);
        CHECK(pw == zero_to_two);
        CHECK(how == std::set<int>{0, 1, 2});
        CHECK(non_divisible >= 10);
        CHECK(pad_beyond_kernel >= 10);
        CHECK(non_square_input >= 10);
        CHECK(rectangular >= 10);
        CHECK(unreached_lines >= 5);
    }
}

TEST_CASE("Conv2D<float> forward and backward match the naive loops (seeded sweep)", "[conv2d][sweep]")
{
    run_sweep<float>(float_sweep_seed, 1e-5);
}

TEST_CASE("Conv2D<double> forward and backward match the naive loops (seeded sweep)", "[conv2d][sweep]")
{
    run_sweep<double>(double_sweep_seed, 1e-12);
}

TEST_CASE("Conv2D stride 1: the window form and the padded-width form both match the naive loops", "[conv2d]")
{
    // Stride-1 layers whose output rows are a multiple of the GEMM panel width (32 floats or
    // 16 doubles with AVX-512, fewer elsewhere) run on the window view; the others over the
    // padded width. Widths around those multiples, both kernels, with and without padding.
    std::mt19937 rng(77);
    for (const std::size_t out_w : {8u, 15u, 16u, 17u, 31u, 32u, 33u, 48u, 64u})
    {
        for (const std::size_t k : {1u, 3u})
        {
            for (const std::size_t pad : {0u, 1u})
            {
                conv_case c{};
                c.n = 2;
                c.c_in = 3;
                c.c_out = 5;
                c.how = ctor::options_size2;
                c.k = {k, k};
                c.s = {1, 1};
                c.p = {pad, pad};
                c.h = 3 + k - 1 - std::min(2 * pad, k - 1);
                c.w = out_w + k - 1 - 2 * pad;
                check_against_naive<float>(c, rng, 1e-5);
                check_against_naive<double>(c, rng, 1e-12);
            }
        }
    }
}

TEST_CASE("Conv2D: hand-picked edge geometries match the naive loops", "[conv2d]")
{
    // clang-format off
    const std::vector<conv_case> cases = {
        {2, 3, 2, 5, 6, {1, 1}, {1, 1}, {2, 2}, ctor::scalar},        // K = 1, padding 2 > K - 1
        {1, 2, 3, 4, 4, {1, 1}, {3, 3}, {2, 2}, ctor::scalar},        // K = 1, stride 3, padding 2
        {2, 2, 2, 3, 3, {5, 5}, {1, 1}, {1, 1}, ctor::scalar},        // kernel larger than the input
        {1, 1, 1, 1, 1, {1, 1}, {1, 1}, {0, 0}, ctor::scalar},        // everything 1
        {3, 1, 8, 11, 4, {5, 2}, {3, 1}, {0, 2}, ctor::options_size2}, // non-divisible rows
        {1, 8, 1, 7, 13, {2, 5}, {2, 3}, {1, 0}, ctor::options_size2}, // non-divisible both
        {2, 4, 3, 5, 5, {5, 5}, {3, 3}, {2, 2}, ctor::options_scalar},
        {5, 2, 2, 2, 9, {1, 4}, {1, 2}, {2, 1}, ctor::options_size2},  // padding > K - 1 on rows
        {1, 3, 5, 16, 15, {3, 3}, {2, 2}, {1, 1}, ctor::scalar},       // LeNet-like, larger
        // Beyond the GEMM's blocks (kc = 256, mc = 60 or 120, nc = 768 to 3072):
        {1, 11, 125, 5, 6, {5, 5}, {1, 1}, {0, 0}, ctor::scalar},     // forward: K = C_in*KH*KW = 275, M = C_out = 125
        {3, 1, 2, 12, 12, {3, 3}, {1, 1}, {1, 1}, ctor::scalar},      // dW: K = N*OH*OW = 432
        {1, 2, 260, 6, 7, {3, 3}, {2, 2}, {1, 1}, ctor::scalar},      // strided dX: K = C_out = 260 per tap
        {1, 2, 260, 5, 5, {3, 3}, {1, 1}, {1, 1}, ctor::scalar},      // unit-stride dX: K = C_out*KH*KW = 2340
        {2, 1, 1, 40, 40, {1, 1}, {1, 1}, {0, 0}, ctor::scalar},      // forward: N = N*OH*OW = 3200
        {2, 3, 13, 5, 70, {3, 3}, {1, 1}, {1, 1}, ctor::scalar},      // rows wider than 2 micro-tiles: B read in place
    };
    // clang-format on
    std::mt19937 rng(7);
    for (const auto& c : cases)
    {
        check_against_naive<double>(c, rng, 1e-12);
        check_against_naive<float>(c, rng, 1e-5);
    }
}

TEST_CASE("Conv2D: geometries the lowered form runs match the naive loops", "[conv2d]")
{
    // clang-format off
    const std::vector<conv_case> cases = {
        {16, 3, 32, 16, 16, {3, 3}, {2, 2}, {1, 1}, ctor::scalar},  // stride 2: the lowered backward passes
        {64, 4, 32, 4, 4, {3, 3}, {1, 1}, {1, 1}, ctor::scalar},    // 4 x 4 planes: every pass lowered
        {16, 1, 32, 22, 21, {7, 7}, {2, 2}, {3, 3}, ctor::scalar},  // a strided stem: every pass lowered
    };
    // clang-format on
    for (const auto& c : cases)
    {
        INFO(c.describe());
        xcnn::detail::conv_geometry g;
        g.batch = c.n;
        g.in_channels = c.c_in;
        g.out_channels = c.c_out;
        g.input = {c.h, c.w};
        g.kernel = c.k;
        g.stride = c.s;
        g.padding = c.p;
        CHECK(xcnn::detail::choose_weight_grad_form<float>(g) == xcnn::detail::conv_form::lowered);
    }
    std::mt19937 rng(8);
    for (const auto& c : cases)
    {
        check_against_naive<double>(c, rng, 1e-12);
        check_against_naive<float>(c, rng, 1e-5);
    }
}

TEST_CASE("Conv2D backward passes finite-difference gradient checks", "[conv2d][gradcheck]")
{
    struct gradcheck_case
    {
        conv_case c;
        bool unreached;
    };
    const std::vector<gradcheck_case> cases = {
        // baseline
        {{2, 3, 4, 6, 7, {3, 3}, {1, 1}, {1, 1}, ctor::scalar}, false},
        // stride 2 with padding; the last padded column is never read, but it is padding
        {{2, 2, 3, 7, 8, {3, 3}, {2, 2}, {1, 1}, ctor::scalar}, false},
        // stride 3 with padding, non-divisible: padded rows 9, 10 unread, so input row 8 is
        {{1, 2, 2, 9, 10, {3, 3}, {3, 3}, {1, 2}, ctor::options_size2}, true},
        // non-divisible without padding: the last row and the last column are unread
        {{2, 2, 3, 8, 9, {3, 2}, {2, 3}, {0, 0}, ctor::options_size2}, true},
        // K = 1, stride 3, padding 2: interior rows and columns are unread
        {{1, 2, 2, 7, 8, {1, 1}, {3, 3}, {2, 2}, ctor::scalar}, true},
        // rectangular kernel and stride
        {{2, 3, 2, 5, 9, {2, 4}, {1, 2}, {0, 1}, ctor::options_size2}, false},
        // stride 1, K = 1, padding 2 > K - 1
        {{2, 2, 3, 4, 5, {1, 1}, {1, 1}, {2, 2}, ctor::scalar}, false},
        // stride 1, padding > K - 1 on both axes, rectangular kernel
        {{1, 2, 2, 5, 6, {2, 3}, {1, 1}, {3, 3}, ctor::options_size2}, false},
        // stride > 1 with padding > K - 1: input rows 0, 3, 6 are unread
        {{2, 2, 2, 7, 7, {2, 2}, {3, 2}, {2, 3}, ctor::options_size2}, true},
    };
    std::uint32_t seed = 100;
    for (const auto& gc : cases)
    {
        gradient_check(gc.c, gc.unreached, seed++);
    }
}

TEST_CASE("Conv2D: rows and columns no window reaches get exactly zero gradient", "[conv2d]")
{
    // H = 8, K = 3, stride 2: windows start at rows 0, 2, 4 and end at row 6, so row 7 is never
    // read; W = 9, K = 2, stride 3: windows start at 0, 3, 6 and end at 7, so column 8 is never read.
    const conv_case c{2, 3, 2, 8, 9, {3, 2}, {2, 3}, {0, 0}, ctor::options_size2};
    std::mt19937 rng(11);
    auto layer = make_layer<double>(c);
    const auto x = random_tensor<double, 4>(c.input_shape(), rng);
    REQUIRE(layer.forward(x).shape() == (std::array<std::size_t, 4>{2, 2, 3, 3}));
    const auto dy = random_tensor<double, 4>({2, 2, 3, 3}, rng, 1.0, 2.0); // all nonzero
    const auto& dx = layer.backward(dy);
    for (std::size_t n = 0; n < 2; ++n)
    {
        for (std::size_t ch = 0; ch < 3; ++ch)
        {
            for (std::size_t i = 0; i < 8; ++i)
            {
                CHECK(dx(n, ch, i, 8) == 0.0);
            }
            for (std::size_t j = 0; j < 9; ++j)
            {
                CHECK(dx(n, ch, 7, j) == 0.0);
            }
            CHECK(dx(n, ch, 6, 7) != 0.0); // the last reached entry
        }
    }
}

TEST_CASE("Conv2D backward overwrites the gradients instead of accumulating", "[conv2d]")
{
    const auto c = GENERATE(conv_case{2, 3, 4, 6, 7, {3, 3}, {1, 1}, {1, 1}, ctor::scalar},
                            conv_case{2, 3, 4, 7, 8, {3, 2}, {2, 3}, {1, 0}, ctor::options_size2},
                            conv_case{1, 2, 2, 5, 5, {1, 1}, {1, 1}, {2, 2}, ctor::scalar});
    INFO(c.describe());
    std::mt19937 rng(3);
    auto layer = make_layer<double>(c);
    const auto x = random_tensor<double, 4>(c.input_shape(), rng);
    const auto dy1 = random_tensor<double, 4>(c.output_shape(), rng);
    const auto dy2 = random_tensor<double, 4>(c.output_shape(), rng);
    layer.forward(x);

    const xt::xtensor<double, 4> dx_a = layer.backward(dy1);
    const xt::xtensor<double, 4> dw_a = layer.weight_grad();
    const xt::xtensor<double, 1> db_a = layer.bias_grad();

    SECTION("the same dy twice gives identical gradients")
    {
        const xt::xtensor<double, 4> dx_b = layer.backward(dy1);
        CHECK(identical(dx_b, dx_a));
        CHECK(identical(layer.weight_grad(), dw_a));
        CHECK(identical(layer.bias_grad(), db_a));
    }
    SECTION("another dy in between leaves no trace")
    {
        layer.backward(dy2);
        CHECK_FALSE(identical(layer.weight_grad(), dw_a));
        const xt::xtensor<double, 4> dx_b = layer.backward(dy1);
        CHECK(identical(dx_b, dx_a));
        CHECK(identical(layer.weight_grad(), dw_a));
        CHECK(identical(layer.bias_grad(), db_a));
    }
}

TEST_CASE("Conv2D reuses its buffers correctly when the input shape changes", "[conv2d]")
{
    const auto how = GENERATE(0, 1);
    const size2 stride = how == 0 ? size2{1, 1} : size2{2, 3};
    Conv2D<double> layer(Conv2DOptions(3, 4, {3, 2}).stride(stride).padding({1, 2}));
    std::mt19937 rng(5);
    // Shrinking and growing batches and extents, and back to the first shape.
    const std::vector<std::array<std::size_t, 4>> shapes = {{4, 3, 9, 8}, {1, 3, 5, 11}, {3, 3, 12, 3}, {4, 3, 9, 8}};
    for (const auto& shape : shapes)
    {
        conv_case c{shape[0], 3, 4, shape[2], shape[3], {3, 2}, stride, {1, 2}, ctor::options_size2};
        INFO(c.describe());
        const auto x = random_tensor<double, 4>(shape, rng);
        xt::xtensor<double, 4> magnitude;
        const auto expected = naive::conv2d(x, layer.weight(), layer.bias(), c.s, c.p, &magnitude);
        const auto& y = layer.forward(x);
        REQUIRE(same_extents(y, expected));
        CHECK(max_scaled_error(y, expected, magnitude) <= 1e-12);
        const auto dy = random_tensor<double, 4>(c.output_shape(), rng);
        const auto g = naive::conv2d_backward(x, layer.weight(), dy, c.s, c.p);
        const auto& dx = layer.backward(dy);
        REQUIRE(same_extents(dx, x));
        CHECK(max_scaled_error(dx, g.dx, g.dx_magnitude) <= 1e-12);
        CHECK(max_scaled_error(layer.weight_grad(), g.dw, g.dw_magnitude) <= 1e-12);
        CHECK(max_scaled_error(layer.bias_grad(), g.db, g.db_magnitude) <= 1e-12);
    }
}

TEST_CASE("Conv2D: an empty batch gives an empty output and exactly zero parameter gradients", "[conv2d]")
{
    const std::size_t stride = GENERATE(1, 2);
    INFO("stride " << stride);
    std::mt19937 rng(17);
    Conv2D<double> layer(2, 3, 3, stride, 1);
    // A real batch first, so stale gradients would show.
    layer.forward(random_tensor<double, 4>({2, 2, 5, 6}, rng));
    const auto out = layer.output_shape({2, 2, 5, 6});
    layer.backward(random_tensor<double, 4>({out[0], out[1], out[2], out[3]}, rng));
    REQUIRE(xt::amax(xt::abs(layer.weight_grad()))() > 0);

    const xt::xtensor<double, 4> x = xt::zeros<double>({0, 2, 5, 6});
    const auto& y = layer.forward(x);
    CHECK(y.shape() == (std::array<std::size_t, 4>{0, 3, out[2], out[3]}));
    const xt::xtensor<double, 4> dy = xt::zeros<double>(y.shape());
    CHECK(layer.backward(dy).shape() == x.shape());
    CHECK(identical(layer.weight_grad(), xt::xtensor<double, 4>(xt::zeros<double>({3, 2, 3, 3}))));
    CHECK(identical(layer.bias_grad(), xt::xtensor<double, 1>(xt::zeros<double>({3}))));
}

TEST_CASE("Conv2D: predict equals forward and output_shape equals forward's shape", "[conv2d]")
{
    std::mt19937 rng(9);
    Conv2D<float> layer(Conv2DOptions(2, 3, {2, 3}).stride({2, 1}).padding({0, 1}));
    const auto x = random_tensor<float, 4>({3, 2, 7, 6}, rng);
    const xt::xtensor<float, 4> y = layer.forward(x);
    CHECK(identical(layer.predict(x), y));
    const auto shape = layer.output_shape({3, 2, 7, 6});
    CHECK(shape == std::vector<std::size_t>{3, 3, 3, 6});
    CHECK(std::vector<std::size_t>(y.shape().begin(), y.shape().end()) == shape);

    // Through the xt::xarray overloads too.
    const xt::xarray<float> xa = x;
    CHECK(identical(layer.forward(xa), y));
    CHECK(identical(layer.predict(xa), y));
}

TEST_CASE("Conv2D: assigning weight() and bias() changes the output", "[conv2d]")
{
    std::mt19937 rng(13);
    Conv2D<double> layer(Conv2DOptions(2, 3, {3, 2}).stride({1, 2}).padding({1, 0}));
    const auto x = random_tensor<double, 4>({2, 2, 5, 6}, rng);
    const xt::xtensor<double, 4> before = layer.forward(x);

    // Known, exactly representable weights: w(o, c, i, j) = (o - c) + i / 2 - j / 4.
    xt::xtensor<double, 4> w({3, 2, 3, 2});
    for (std::size_t o = 0; o < 3; ++o)
        for (std::size_t c = 0; c < 2; ++c)
            for (std::size_t i = 0; i < 3; ++i)
                for (std::size_t j = 0; j < 2; ++j)
                    w(o, c, i, j) = static_cast<double>(o) - static_cast<double>(c) + 0.5 * static_cast<double>(i) -
                                    0.25 * static_cast<double>(j);
    const xt::xtensor<double, 1> b = {1.0, -2.0, 0.5};
    layer.weight() = w;
    layer.bias() = b;
    const xt::xtensor<double, 4> after = layer.forward(x);
    CHECK_FALSE(identical(after, before));
    xt::xtensor<double, 4> magnitude;
    const auto expected = naive::conv2d(x, w, b, {1, 2}, {1, 0}, &magnitude);
    CHECK(max_scaled_error(after, expected, magnitude) <= 1e-12);

    // Only the bias changes: the output shifts by exactly that much per channel.
    layer.bias() = xt::xtensor<double, 1>{0.0, 0.0, 0.0};
    const xt::xtensor<double, 4> unbiased = layer.forward(x);
    for (std::size_t n = 0; n < 2; ++n)
        for (std::size_t o = 0; o < 3; ++o)
            for (std::size_t i = 0; i < after.shape()[2]; ++i)
                for (std::size_t j = 0; j < after.shape()[3]; ++j)
                    CHECK_THAT(after(n, o, i, j) - unbiased(n, o, i, j), xcnn_test::near(b(o), 1e-12));
}

TEST_CASE("Conv2D reports invalid arguments and shapes", "[conv2d][errors]")
{
    SECTION("zero kernel, stride or channels at construction: value_error")
    {
        REQUIRE_THROWS_AS(Conv2D<double>(3, 4, 0), xcnn::value_error);
        REQUIRE_THROWS_WITH(Conv2D<double>(3, 4, 0), xcnn_test::contains("Conv2D(3, 4"));
        REQUIRE_THROWS_WITH(Conv2D<double>(3, 4, 0), xcnn_test::contains("kernel_size"));
        REQUIRE_THROWS_AS(Conv2D<double>(3, 4, 3, 0), xcnn::value_error);
        REQUIRE_THROWS_WITH(Conv2D<double>(3, 4, 3, 0), xcnn_test::contains("Conv2D(3, 4"));
        REQUIRE_THROWS_WITH(Conv2D<double>(3, 4, 3, 0), xcnn_test::contains("stride"));
        REQUIRE_THROWS_AS(Conv2D<float>(Conv2DOptions(3, 4, {3, 0})), xcnn::value_error);
        REQUIRE_THROWS_AS(Conv2D<float>(Conv2DOptions(3, 4, {0, 3})), xcnn::value_error);
        REQUIRE_THROWS_AS(Conv2D<float>(Conv2DOptions(3, 4, 3).stride({1, 0})), xcnn::value_error);
        REQUIRE_THROWS_WITH(Conv2D<float>(Conv2DOptions(3, 4, 3).stride({1, 0})), xcnn_test::contains("stride=(1, 0)"));
        REQUIRE_THROWS_AS(Conv2D<float>(Conv2DOptions(3, 4, 3).stride({0, 2})), xcnn::value_error);
        REQUIRE_THROWS_AS(Conv2D<double>(0, 4, 3), xcnn::value_error);
        REQUIRE_THROWS_AS(Conv2D<double>(3, 0, 3), xcnn::value_error);
        REQUIRE_THROWS_WITH(Conv2D<double>(3, 0, 3), xcnn_test::contains("Conv2D(3, 0"));
    }
    SECTION("wrong channel count: shape_error naming the layer and the input")
    {
        Conv2D<double> layer(3, 4, 3);
        const xt::xtensor<double, 4> x = xt::zeros<double>({2, 2, 5, 5});
        REQUIRE_THROWS_AS(layer.forward(x), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("Conv2D(3, 4, kernel_size=(3, 3)"));
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("(2, 2, 5, 5)"));
        REQUIRE_THROWS_AS(layer.predict(x), xcnn::shape_error);
        REQUIRE_THROWS_AS(layer.output_shape({2, 2, 5, 5}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.output_shape({2, 2, 5, 5}), xcnn_test::contains("(2, 2, 5, 5)"));
    }
    SECTION("input smaller than the kernel: shape_error")
    {
        Conv2D<double> layer(Conv2DOptions(1, 2, {5, 3}));
        const xt::xtensor<double, 4> x = xt::zeros<double>({1, 1, 4, 6});
        REQUIRE_THROWS_AS(layer.forward(x), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("Conv2D(1, 2"));
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("(1, 1, 4, 6)"));
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("the kernel (5, 3)"));
        const xt::xtensor<double, 4> narrow = xt::zeros<double>({1, 1, 6, 2});
        REQUIRE_THROWS_AS(layer.forward(narrow), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(narrow), xcnn_test::contains("(1, 1, 6, 2)"));
        // Padding can make it fit: 3 + 2 * 1 = 5.
        Conv2D<double> padded(1, 1, 5, 1, 1);
        const xt::xtensor<double, 4> small = xt::ones<double>({1, 1, 3, 3});
        REQUIRE(padded.forward(small).shape() == (std::array<std::size_t, 4>{1, 1, 1, 1}));
    }
    SECTION("wrong rank through the xt::xarray overload: shape_error")
    {
        Conv2D<double> layer(1, 2, 3);
        const xt::xarray<double> x3 = xt::zeros<double>({1, 5, 5});
        REQUIRE_THROWS_AS(layer.forward(x3), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x3), xcnn_test::contains("Conv2D(1, 2"));
        REQUIRE_THROWS_WITH(layer.forward(x3), xcnn_test::contains("(1, 5, 5)"));
        REQUIRE_THROWS_AS(layer.predict(x3), xcnn::shape_error);
        const xt::xarray<double> x5 = xt::zeros<double>({1, 1, 1, 5, 5});
        REQUIRE_THROWS_WITH(layer.forward(x5), xcnn_test::contains("(1, 1, 1, 5, 5)"));
        REQUIRE_THROWS_AS(layer.output_shape({1, 5, 5}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.output_shape({1, 5, 5}), xcnn_test::contains("(1, 5, 5)"));
    }
    SECTION("backward before forward, or after predict: xcnn::error")
    {
        Conv2D<double> layer(1, 2, 3);
        const xt::xtensor<double, 4> dy = xt::zeros<double>({1, 2, 3, 3});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("Conv2D(1, 2"));
        const xt::xtensor<double, 4> x = xt::zeros<double>({1, 1, 5, 5});
        layer.forward(x);
        REQUIRE_NOTHROW(layer.backward(dy));
        layer.predict(x);
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("Conv2D(1, 2"));
    }
    SECTION("dY of the wrong shape: shape_error naming both shapes")
    {
        Conv2D<double> layer(3, 4, 3, 2, 1);
        const xt::xtensor<double, 4> x = xt::zeros<double>({2, 3, 6, 8});
        REQUIRE(layer.forward(x).shape() == (std::array<std::size_t, 4>{2, 4, 3, 4}));
        const xt::xtensor<double, 4> dy = xt::zeros<double>({2, 4, 4, 4});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("Conv2D(3, 4"));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 4, 4, 4)"));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 4, 3, 4)"));
        const xt::xtensor<double, 4> dy_batch = xt::zeros<double>({1, 4, 3, 4});
        REQUIRE_THROWS_AS(layer.backward(dy_batch), xcnn::shape_error);
    }
    SECTION("weight or bias assigned with the wrong shape: shape_error at the next forward")
    {
        Conv2D<double> layer(2, 3, 3);
        const xt::xtensor<double, 4> x = xt::zeros<double>({1, 2, 5, 5});
        layer.weight() = xt::zeros<double>({3, 2, 2, 2});
        REQUIRE_THROWS_AS(layer.forward(x), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("Conv2D(2, 3"));
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("(3, 2, 2, 2)"));
        layer.weight() = xt::zeros<double>({3, 2, 3, 3});
        layer.bias() = xt::zeros<double>({2});
        REQUIRE_THROWS_AS(layer.forward(x), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("(2,)"));
    }
}
