// Conv2D's PyTorch options: dilation, groups (depthwise with and without a channel multiplier)
// and bias(false). Every combination against the naive loops in float and double, the fused
// activations against the layers run one after the other, finite-difference gradients, PyTorch
// parity from tests/fixtures/torch_conv_options.py, the form selection, the parameter list and
// files of a layer without bias, and the errors.
#include "catch_compat.hpp"

#include "consumer/user_layer/softsign.hpp"
#include "support/error_of.hpp"
#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"
#include "support/temp_dir.hpp"

#include <xcnn/xcnn.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <utility>
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

struct options_case
{
    std::size_t n, c_in, c_out, h, w;
    size2 k, s, p, d;
    std::size_t groups;
    bool bias;

    std::string describe() const
    {
        std::ostringstream out;
        out << "N=" << n << " C_in=" << c_in << " C_out=" << c_out << " H=" << h << " W=" << w << " kernel=(" << k[0]
            << ", " << k[1] << ") stride=(" << s[0] << ", " << s[1] << ") padding=(" << p[0] << ", " << p[1]
            << ") dilation=(" << d[0] << ", " << d[1] << ") groups=" << groups << " bias=" << bias;
        return out.str();
    }
    Conv2DOptions options() const
    {
        return Conv2DOptions(c_in, c_out, k).stride(s).padding(p).dilation(d).groups(groups).bias(bias);
    }
    std::array<std::size_t, 4> input_shape() const { return {n, c_in, h, w}; }
    /// The geometry the form selector sees.
    xcnn::detail::conv_geometry geometry() const
    {
        xcnn::detail::conv_geometry g;
        g.batch = n;
        g.in_channels = c_in;
        g.out_channels = c_out;
        g.input = {h, w};
        g.kernel = k;
        g.stride = s;
        g.padding = p;
        g.dilation = d;
        g.groups = groups;
        return g;
    }
    std::array<std::size_t, 4> weight_shape() const { return {c_out, c_in / groups, k[0], k[1]}; }
    std::array<std::size_t, 4> output_shape() const
    {
        return {n, c_out, naive::out_extent(h, (k[0] - 1) * d[0] + 1, s[0], p[0]),
                naive::out_extent(w, (k[1] - 1) * d[1] + 1, s[1], p[1])};
    }
};

/// stride {1, 2} x padding {0, 1, 2} x dilation {1, 2} x groups {1, 2, C_in (depthwise), C_in with
/// 2 filters per channel} x bias {on, off}, odd sizes. C_in = 4 so that 2 and 4 groups divide it;
/// the kernel alternates between 3x3 and a rectangular 2x3, the input between two odd sizes.
std::vector<options_case> all_combinations()
{
    std::vector<options_case> cases;
    std::size_t i = 0;
    for (std::size_t s : {1, 2})
    {
        for (std::size_t p : {0, 1, 2})
        {
            for (std::size_t d : {1, 2})
            {
                for (int grouping = 0; grouping < 4; ++grouping)
                {
                    for (bool bias : {true, false})
                    {
                        options_case c{};
                        c.n = 1 + i % 3;
                        c.c_in = 4;
                        c.groups = grouping == 0 ? 1 : grouping == 1 ? 2 : 4;
                        c.c_out = grouping == 0 ? 6 : grouping == 1 ? 6 : grouping == 2 ? 4 : 8;
                        c.k = i % 2 == 0 ? size2{3, 3} : size2{2, 3};
                        c.s = {s, s};
                        c.p = {p, p};
                        c.d = {d, d};
                        c.bias = bias;
                        c.h = i % 3 == 0 ? 7 : 9;
                        c.w = i % 4 < 2 ? 11 : 5;
                        cases.push_back(c);
                        ++i;
                    }
                }
            }
        }
    }
    return cases;
}

template <class T>
Conv2D<T> make_layer(const options_case& c, std::mt19937& rng)
{
    Conv2D<T> layer(c.options());
    layer.weight() = random_tensor<T, 4>(c.weight_shape(), rng);
    if (c.bias)
    {
        layer.bias() = random_tensor<T, 1>({c.c_out}, rng);
    }
    return layer;
}

/// The bias of `layer` for the naive loops: zeros without one.
template <class T>
xt::xtensor<T, 1> bias_or_zeros(const Conv2D<T>& layer, std::size_t c_out)
{
    return layer.has_bias() ? layer.bias() : xt::xtensor<T, 1>(xt::zeros<T>({c_out}));
}

template <class T>
void check_against_naive(const options_case& c, std::mt19937& rng, double tol)
{
    INFO(c.describe());
    auto layer = make_layer<T>(c, rng);
    REQUIRE(layer.has_bias() == c.bias);
    const auto x = random_tensor<T, 4>(c.input_shape(), rng);
    const auto b = bias_or_zeros(layer, c.c_out);

    xt::xtensor<double, 4> magnitude;
    const auto expected = naive::conv2d(x, layer.weight(), b, c.s, c.p, &magnitude, c.d, c.groups);
    const xt::xtensor<T, 4> y = layer.forward(x);
    REQUIRE(same_extents(y, expected));
    const auto out_shape = c.output_shape();
    CHECK(std::equal(out_shape.begin(), out_shape.end(), y.shape().begin()));
    CHECK(layer.output_shape({c.n, c.c_in, c.h, c.w}) == std::vector<std::size_t>(out_shape.begin(), out_shape.end()));
    CHECK(max_scaled_error(y, expected, magnitude) <= tol);

    const auto dy = random_tensor<T, 4>(out_shape, rng);
    const auto g = naive::conv2d_backward(x, layer.weight(), dy, c.s, c.p, c.d, c.groups);
    const xt::xtensor<T, 4> dx = layer.backward(dy);
    REQUIRE(same_extents(dx, x));
    REQUIRE(same_extents(layer.weight_grad(), g.dw));
    CHECK(max_scaled_error(dx, g.dx, g.dx_magnitude) <= tol);
    CHECK(max_scaled_error(layer.weight_grad(), g.dw, g.dw_magnitude) <= tol);
    if (c.bias)
    {
        CHECK(max_scaled_error(layer.bias_grad(), g.db, g.db_magnitude) <= tol);
    }

    // backward_parameters gives the same parameter gradients without dX.
    const xt::xtensor<T, 4> dw = layer.weight_grad();
    (void)layer.forward(x);
    layer.backward_parameters(dy);
    CHECK(identical(layer.weight_grad(), dw));
    CHECK(identical(layer.predict(x), y));
}

TEST_CASE("Conv2D options: every stride, padding, dilation, grouping and bias matches the naive loops",
          "[conv2d][options]")
{
    const auto cases = all_combinations();
    REQUIRE(cases.size() == 2 * 3 * 2 * 4 * 2);
    std::mt19937 rng(91);
    for (const auto& c : cases)
    {
        check_against_naive<float>(c, rng, 1e-5);
        check_against_naive<double>(c, rng, 1e-12);
    }
}

/// Conv2D followed by `Act` as one fused step of a Sequential, against the two layers run one
/// after the other: identical outputs and gradients.
template <class Act>
void check_fused(const options_case& c, std::mt19937& rng)
{
    INFO(c.describe());
    xcnn::Sequential net{make_layer<double>(c, rng), Act{}};
    auto conv = net.template get<0>();
    Act act{};
    const auto x = random_tensor<double, 4>(c.input_shape(), rng);
    const xt::xtensor<double, 4> expected = act.forward(conv.forward(x));
    const xt::xtensor<double, 4> y = net.forward(x);
    REQUIRE(identical(y, expected));
    const auto dy = random_tensor<double, 4>(c.output_shape(), rng);
    const xt::xtensor<double, 4> expected_dx = conv.backward(act.backward(dy));
    CHECK(identical(net.backward(dy), expected_dx));
    CHECK(identical(net.template get<0>().weight_grad(), conv.weight_grad()));
    if (c.bias)
    {
        CHECK(identical(net.template get<0>().bias_grad(), conv.bias_grad()));
    }
    net.backward_parameters(dy);
    CHECK(identical(net.template get<0>().weight_grad(), conv.weight_grad()));
}

TEST_CASE("Conv2D options: the fused activations give the results of the two layers", "[conv2d][options]")
{
    std::mt19937 rng(17);
    const auto cases = all_combinations();
    // Every grouping and bias with each stride and dilation (not every padding: the kernels do
    // not depend on it).
    for (std::size_t i = 0; i < cases.size(); i += 3)
    {
        check_fused<xcnn::ReLU<double>>(cases[i], rng);
        check_fused<my::Softsign<double>>(cases[i], rng);
    }
}

/// Forward, dX and dW of a layer at one, two and three threads: the same, bit for bit. Each
/// thread count runs a fresh layer with the same parameters, so that no output of an earlier run
/// is left in place.
void check_thread_counts(const options_case& c, std::mt19937& rng)
{
    const auto original = make_layer<float>(c, rng);
    const auto x = random_tensor<float, 4>(c.input_shape(), rng);
    const auto dy = random_tensor<float, 4>(c.output_shape(), rng);
    std::vector<xt::xtensor<float, 4>> results;
    for (const std::size_t threads : {1, 2, 3})
    {
        xcnn::set_num_threads(threads);
        Conv2D<float> layer(c.options());
        layer.weight() = original.weight();
        if (c.bias)
        {
            layer.bias() = original.bias();
        }
        results.push_back(layer.forward(x));
        results.push_back(layer.backward(dy));
        results.push_back(layer.weight_grad());
    }
    xcnn::set_num_threads(1);
    for (std::size_t i = 3; i < results.size(); ++i)
    {
        INFO("threads " << i / 3 + 1 << ", result " << i % 3 << " (forward, dX, dW)");
        CHECK(identical(results[i], results[i % 3]));
    }
}

TEST_CASE("Conv2D options: a wide depthwise layer matches the naive loops, at any thread count", "[conv2d][options]")
{
    // Rows of many vectors, several planes per thread, multiplier 2, stride 1 and 2.
    std::mt19937 rng(5);
    for (std::size_t s : {1, 2})
    {
        const options_case c{3, 6, 12, 19, 45, {3, 3}, {s, s}, {1, 1}, {1, 1}, 6, true};
        check_against_naive<float>(c, rng, 1e-5);
        check_against_naive<double>(c, rng, 1e-12);

        // Two threads share out planes and channels: the same results, bit for bit.
        check_thread_counts(c, rng);
    }
}

TEST_CASE("Conv2D options: the depthwise phase form matches the naive loops, fused, at any thread count",
          "[conv2d][options]")
{
    // "Same" padding at stride 1 and 2 (the output as large as a stride phase of the input):
    // planes of one vector or less (4 x 4, 5 x 5), several, rows spanning vectors (28 x 28),
    // rectangles, dilation, 1 x 1 and 2 x 2 kernels whose taps leave some phases unread,
    // multipliers 1 and 2, with and without bias.
    const std::vector<options_case> cases{
        {3, 4, 4, 8, 8, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 4, true},
        {2, 3, 6, 4, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 3, true},
        {2, 2, 2, 5, 5, {5, 5}, {1, 1}, {2, 2}, {1, 1}, 2, false},
        {1, 2, 2, 28, 28, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 2, true},
        {2, 3, 3, 14, 14, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 3, true},
        {2, 2, 4, 6, 10, {3, 5}, {1, 1}, {1, 2}, {1, 1}, 2, true},
        {2, 3, 3, 5, 7, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 3, true},
        {3, 4, 4, 16, 16, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 4, true},
        {2, 2, 4, 8, 12, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 2, false},
        {2, 3, 3, 16, 16, {5, 5}, {2, 2}, {2, 2}, {1, 1}, 3, true},
        {2, 2, 2, 8, 7, {3, 3}, {2, 1}, {1, 1}, {1, 1}, 2, true},
        {2, 3, 3, 8, 8, {1, 1}, {2, 2}, {0, 0}, {1, 1}, 3, true},
        {2, 3, 6, 8, 8, {2, 2}, {2, 2}, {0, 0}, {1, 1}, 3, true},
        {2, 2, 2, 12, 12, {3, 3}, {3, 3}, {1, 1}, {1, 1}, 2, true},
    };
    std::mt19937 rng(29);
    for (const auto& c : cases)
    {
        INFO(c.describe());
        const auto g = c.geometry();
        REQUIRE(xcnn::detail::choose_forward_form<float>(g) == xcnn::detail::conv_form::depthwise_phases);
        REQUIRE(xcnn::detail::choose_input_grad_form<double>(g) == xcnn::detail::conv_form::depthwise_phases);
        check_against_naive<float>(c, rng, 1e-5);
        check_against_naive<double>(c, rng, 1e-12);
        check_fused<xcnn::ReLU<double>>(c, rng);
        check_fused<my::Softsign<double>>(c, rng);

        check_thread_counts(c, rng);
    }
}

TEST_CASE("Conv2D options: the GEMM forms share a batch out by images, with the same bits at any thread count",
          "[conv2d][options]")
{
    // Two images per thread or more: each thread runs the forward form on its own images with its
    // own workspace (`forward_by_images`); every output is the same, bit for bit, as on one thread.
    // The plane form (plain and dilated), the lowered form (small planes, and a stem), the window
    // view (stride 2, and grouped), odd batches that split unevenly.
    const std::vector<std::pair<options_case, xcnn::detail::conv_form>> cases{
        {{6, 5, 12, 10, 10, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true}, xcnn::detail::conv_form::plane},
        {{7, 4, 6, 11, 9, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 1, false}, xcnn::detail::conv_form::plane},
        {{6, 16, 40, 4, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true}, xcnn::detail::conv_form::lowered},
        {{5, 1, 8, 20, 20, {7, 7}, {2, 2}, {3, 3}, {1, 1}, 1, true}, xcnn::detail::conv_form::lowered},
        {{6, 6, 10, 12, 12, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true}, xcnn::detail::conv_form::window_view},
        {{9, 6, 8, 9, 9, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 2, false}, xcnn::detail::conv_form::window_view},
    };
    std::mt19937 rng(41);
    for (const auto& [c, form] : cases)
    {
        INFO(c.describe());
        const auto g = c.geometry();
        REQUIRE(xcnn::detail::choose_forward_form<float>(g) == form);
        xcnn::set_num_threads(2);
        CHECK(xcnn::detail::forward_by_images(g, form));
        xcnn::set_num_threads(1);
        CHECK_FALSE(xcnn::detail::forward_by_images(g, form));
        check_against_naive<float>(c, rng, 1e-5);
        check_thread_counts(c, rng);
    }
}

TEST_CASE("Conv2D options: the Winograd form in a layer matches the naive loops, fused", "[conv2d][options]")
{
    // 32 channels or more, 3x3 or 5x5 at stride 1, 64 tiles or more: the forward pass and (on
    // planes of 8 tiles or more) dX and dW run the Winograd form; padding 0 to 4, odd sizes, with
    // and without bias, dilated layers over their dilation phases.
    const std::vector<options_case> cases{
        {4, 32, 33, 8, 8, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
        {4, 33, 32, 9, 11, {3, 3}, {1, 1}, {0, 0}, {1, 1}, 1, false},
        {4, 32, 32, 7, 6, {3, 3}, {1, 1}, {2, 2}, {1, 1}, 1, true},
        {16, 32, 48, 4, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
        // Several chunks and parts of dW's sum (threads run them whole), gemm_nt and packed dW.
        {12, 32, 32, 16, 16, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
        {8, 32, 128, 8, 8, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false},
        // F(2x2, 5x5).
        {4, 32, 33, 8, 8, {5, 5}, {1, 1}, {2, 2}, {1, 1}, 1, true},
        {8, 33, 32, 9, 11, {5, 5}, {1, 1}, {0, 0}, {1, 1}, 1, false},
        {4, 32, 32, 7, 6, {5, 5}, {1, 1}, {4, 3}, {1, 1}, 1, true},
        {12, 32, 32, 16, 16, {5, 5}, {1, 1}, {2, 2}, {1, 1}, 1, true},
        // Over the dilation phases: even and odd planes, dilation 2, 3 and (2, 1), 5x5.
        {4, 32, 64, 12, 12, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 1, true},
        {4, 64, 32, 11, 13, {3, 3}, {1, 1}, {1, 3}, {2, 2}, 1, false},
        {3, 64, 64, 15, 14, {3, 3}, {1, 1}, {3, 3}, {3, 3}, 1, true},
        {4, 64, 48, 10, 9, {3, 3}, {1, 1}, {2, 1}, {2, 1}, 1, true},
        {4, 48, 64, 13, 12, {5, 5}, {1, 1}, {4, 4}, {2, 2}, 1, true},
    };
    std::mt19937 rng(37);
    for (const auto& c : cases)
    {
        INFO(c.describe());
        const auto g = c.geometry();
        REQUIRE(xcnn::detail::choose_forward_form<float>(g) == xcnn::detail::conv_form::winograd);
        check_against_naive<float>(c, rng, 1e-5);
        check_against_naive<double>(c, rng, 1e-12);
        check_fused<xcnn::ReLU<double>>(c, rng);
        check_fused<my::Softsign<double>>(c, rng);
        check_thread_counts(c, rng);
    }
}

TEST_CASE("Conv2D options: the direct form in a layer matches the naive loops, fused", "[conv2d][options]")
{
    // Strided layers with sums of 64 terms or more (forward and dW on the direct form, dX on it
    // too where `direct_input_grad_wins`), a strided stem of three channels, 5x5 and 3x3 kernels
    // on planes where the padded-width form would compute 1.3 times the outputs or more; odd
    // sizes, dilation, padding 0, with and without bias, one vector of output channels or two.
    const std::vector<options_case> cases{
        {16, 8, 24, 14, 13, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true},
        {16, 8, 32, 16, 16, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true}, // dX on the lowered form
        {8, 32, 64, 14, 14, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, false},
        {12, 16, 40, 12, 11, {3, 3}, {2, 2}, {0, 1}, {2, 1}, 1, true},
        {6, 3, 16, 24, 24, {7, 7}, {2, 2}, {3, 3}, {1, 1}, 1, true},
        {8, 6, 16, 14, 14, {5, 5}, {1, 1}, {0, 0}, {1, 1}, 1, true},
        {16, 16, 24, 5, 6, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false},
    };
    std::mt19937 rng(39);
    for (const auto& c : cases)
    {
        INFO(c.describe());
        const auto g = c.geometry();
        REQUIRE(xcnn::detail::choose_forward_form<float>(g) == xcnn::detail::conv_form::direct);
        check_against_naive<float>(c, rng, 1e-5);
        check_against_naive<double>(c, rng, 1e-12);
        check_fused<xcnn::ReLU<double>>(c, rng);
        check_fused<my::Softsign<double>>(c, rng);
        check_thread_counts(c, rng);
    }
}

/// Finite differences in double of dX, dW and (with a bias) db for loss = sum(y * R); with
/// `samples` > 0, of that many elements of x and of the weight spread evenly over them (each a
/// pair of forward passes).
void gradient_check(const options_case& c, std::uint32_t seed, std::size_t samples = 0)
{
    INFO(c.describe());
    std::mt19937 rng(seed);
    auto layer = make_layer<double>(c, rng);
    auto x = random_tensor<double, 4>(c.input_shape(), rng);
    const auto r = random_tensor<double, 4>(c.output_shape(), rng);
    (void)layer.forward(x);
    const xt::xtensor<double, 4> dx = layer.backward(r);
    const xt::xtensor<double, 4> dw = layer.weight_grad();
    const auto loss = [&]
    {
        return xcnn_test::weighted_sum(layer.predict(x), r);
    };
    // The numeric and analytic gradients of `values` (`size` of them), all or `samples` spread.
    const auto check = [&](double* values, const double* analytic, std::size_t size)
    {
        const std::size_t count = samples == 0 ? size : std::min(samples, size);
        std::vector<double> numeric, expected;
        for (std::size_t k = 0; k < count; ++k)
        {
            const std::size_t i = k * size / count;
            numeric.push_back(xcnn_test::numeric_gradient(loss, values + i, 1)[0]);
            expected.push_back(analytic[i]);
        }
        CHECK(xcnn_test::relative_error(numeric.data(), expected.data(), count) < 1e-7);
    };
    check(x.data(), dx.data(), x.size());
    check(layer.weight().data(), dw.data(), dw.size());
    if (c.bias)
    {
        const xt::xtensor<double, 1> db = layer.bias_grad();
        const auto num_db = xcnn_test::numeric_gradient(loss, layer.bias().data(), layer.bias().size());
        CHECK(xcnn_test::relative_error(num_db.data(), db.data(), db.size()) < 1e-7);
    }
}

TEST_CASE("Conv2D options: finite-difference gradients", "[conv2d][options][gradcheck]")
{
    SECTION("dilation")
    {
        gradient_check({2, 3, 4, 8, 9, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 1, true}, 1);
        gradient_check({2, 2, 3, 9, 8, {2, 3}, {2, 1}, {1, 0}, {3, 2}, 1, true}, 2);
    }
    SECTION("groups")
    {
        gradient_check({2, 4, 6, 7, 6, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 2, true}, 3);
        gradient_check({2, 6, 3, 8, 7, {3, 2}, {2, 2}, {1, 1}, {2, 1}, 3, true}, 4);
    }
    SECTION("depthwise")
    {
        gradient_check({2, 3, 3, 7, 9, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 3, true}, 5);
        gradient_check({2, 3, 3, 9, 8, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 3, true}, 6);
        gradient_check({1, 2, 4, 9, 10, {3, 3}, {2, 3}, {2, 1}, {2, 2}, 2, true}, 7);
        // The phase form: "same" padding at stride 2, and at stride 1 with a multiplier.
        gradient_check({2, 3, 3, 8, 6, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 3, true}, 10);
        gradient_check({2, 2, 4, 5, 6, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 2, true}, 11);
    }
    SECTION("Winograd")
    {
        const options_case c{4, 32, 32, 16, 16, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true};
        const auto g = c.geometry();
        REQUIRE(xcnn::detail::choose_forward_form<double>(g) == xcnn::detail::conv_form::winograd);
        REQUIRE(xcnn::detail::choose_weight_grad_form<double>(g) == xcnn::detail::conv_form::winograd);
        // 128 K parameters and inputs: the differences of a spread of 400 of each.
        gradient_check(c, 12, 400);
        const options_case k5{8, 32, 32, 12, 12, {5, 5}, {1, 1}, {2, 2}, {1, 1}, 1, true};
        REQUIRE(xcnn::detail::choose_forward_form<double>(k5.geometry()) == xcnn::detail::conv_form::winograd);
        REQUIRE(xcnn::detail::choose_weight_grad_form<double>(k5.geometry()) == xcnn::detail::conv_form::winograd);
        gradient_check(k5, 13, 400);
        const options_case dilated{4, 32, 64, 11, 12, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 1, true};
        REQUIRE(xcnn::detail::choose_forward_form<double>(dilated.geometry()) == xcnn::detail::conv_form::winograd);
        REQUIRE(xcnn::detail::choose_input_grad_form<double>(dilated.geometry()) == xcnn::detail::conv_form::winograd);
        gradient_check(dilated, 14, 400);
    }
    SECTION("direct")
    {
        const options_case strided{12, 8, 20, 10, 9, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true};
        REQUIRE(xcnn::detail::choose_forward_form<double>(strided.geometry()) == xcnn::detail::conv_form::direct);
        REQUIRE(xcnn::detail::choose_weight_grad_form<double>(strided.geometry()) == xcnn::detail::conv_form::direct);
        gradient_check(strided, 15, 400);
        const options_case small{8, 8, 12, 5, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true};
        REQUIRE(xcnn::detail::choose_forward_form<double>(small.geometry()) == xcnn::detail::conv_form::direct);
        gradient_check(small, 16, 400);
    }
    SECTION("no bias")
    {
        gradient_check({2, 3, 4, 6, 7, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false}, 8);
        gradient_check({2, 3, 6, 6, 7, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 3, false}, 9);
    }
}

// ---- PyTorch parity ------------------------------------------------------------------------

const std::string fixture = std::string(XCNN_TEST_FIXTURES_DIR) + "/torch_conv_options";

template <std::size_t N>
xt::xtensor<double, N> load(const std::string& path)
{
    return xcnn::load_npy<double>(path);
}

/// max |a - b| / max |b|.
template <class A, class B>
double relative_max_error(const A& a, const B& b)
{
    return xcnn_test::max_abs_diff(a, b) / std::max(1e-300, static_cast<double>(xt::amax(xt::abs(b))()));
}

TEST_CASE("Conv2D options: forward, dX, dW and db equal PyTorch's in double", "[conv2d][options][torch]")
{
    const std::vector<std::string> cases{"dilated",
                                         "dilated_strided_rect",
                                         "groups2",
                                         "groups2_strided_dilated",
                                         "depthwise",
                                         "depthwise_strided",
                                         "depthwise_multiplier2_nobias",
                                         "depthwise_dilated_strided_5x5",
                                         "nobias"};
    for (const auto& name : cases)
    {
        INFO(name);
        const std::string dir = fixture + "/" + name + "/";
        const auto o = xcnn::load_npy<std::int64_t>(dir + "options.npy");
        REQUIRE(o.size() == 12);
        auto at = [&](std::size_t i)
        {
            return static_cast<std::size_t>(o(i));
        };
        const bool bias = o(11) != 0;
        Conv2D<double> layer(Conv2DOptions(at(0), at(1), size2{at(2), at(3)})
                                 .stride({at(4), at(5)})
                                 .padding({at(6), at(7)})
                                 .dilation({at(8), at(9)})
                                 .groups(at(10))
                                 .bias(bias));
        layer.weight() = load<4>(dir + "weight.npy");
        if (bias)
        {
            layer.bias() = load<1>(dir + "bias.npy");
        }
        const auto x = load<4>(dir + "x.npy");
        const xt::xtensor<double, 4> y = layer.forward(x);
        const auto y_torch = load<4>(dir + "y.npy");
        REQUIRE(same_extents(y, y_torch));
        CHECK(relative_max_error(y, y_torch) < 1e-9);
        const xt::xtensor<double, 4> dx = layer.backward(load<4>(dir + "dy.npy"));
        const auto dx_torch = load<4>(dir + "dx.npy");
        REQUIRE(same_extents(dx, dx_torch));
        CHECK(relative_max_error(dx, dx_torch) < 1e-9);
        CHECK(relative_max_error(layer.weight_grad(), load<4>(dir + "dweight.npy")) < 1e-9);
        if (bias)
        {
            CHECK(relative_max_error(layer.bias_grad(), load<1>(dir + "dbias.npy")) < 1e-9);
        }
        CHECK(layer.parameters().size() == (bias ? 2u : 1u));
    }
}

// ---- Forms, parameters, files, errors ------------------------------------------------------

TEST_CASE("Conv2D options: the dilated window view is view_as_windows with the tap strides multiplied",
          "[conv2d][options]")
{
    std::mt19937 rng(2);
    const auto padded = random_tensor<double, 4>({2, 3, 9, 11}, rng);
    const std::array<std::size_t, 4> shape{2, 3, 9, 11};
    const auto plain = xcnn::view_as_windows(padded, size2{3, 2}, size2{2, 1});
    const auto view = xcnn::detail::windows_of(padded.data(), shape, 0, 3, {3, 2}, {2, 1}, {1, 1});
    CHECK(std::equal(view.shape.begin(), view.shape.end(), plain.shape().begin(), plain.shape().end()));
    CHECK(std::equal(view.strides.begin(), view.strides.end(), plain.strides().begin(), plain.strides().end()));
    CHECK(view.data == padded.data());

    // Dilation (2, 3): the same window positions, taps 2 rows and 3 columns apart, fewer positions.
    const auto dilated = xcnn::detail::windows_of(padded.data(), shape, 1, 2, {3, 2}, {2, 1}, {2, 3});
    CHECK(dilated.data == padded.data() + 9 * 11);
    CHECK(dilated.shape[1] == 2);
    CHECK(dilated.shape[2] == (9 - 5) / 2 + 1);
    CHECK(dilated.shape[3] == (11 - 4) / 1 + 1);
    CHECK(dilated.strides[2] == plain.strides()[2]);
    CHECK(dilated.strides[3] == plain.strides()[3]);
    CHECK(dilated.strides[4] == 2 * plain.strides()[4]);
    CHECK(dilated.strides[5] == 3 * plain.strides()[5]);
}

TEST_CASE("Conv2D options: the form selector's rules for groups", "[conv2d][options]")
{
    using xcnn::detail::conv_form;
    auto geometry = [](std::size_t c_in, std::size_t c_out, std::size_t groups, std::size_t stride)
    {
        xcnn::detail::conv_geometry g;
        g.batch = 2;
        g.in_channels = c_in;
        g.out_channels = c_out;
        g.input = {9, 9};
        g.kernel = {3, 3};
        g.stride = {stride, stride};
        g.groups = groups;
        return g;
    };
    for (std::size_t stride : {1, 2})
    {
        // groups = C_in: one input channel per output channel, with or without a multiplier.
        for (const auto& g : {geometry(8, 8, 8, stride), geometry(8, 16, 8, stride), geometry(3, 3, 3, stride)})
        {
            CHECK(xcnn::detail::choose_forward_form<float>(g) == conv_form::depthwise);
            CHECK(xcnn::detail::choose_weight_grad_form<float>(g) == conv_form::depthwise);
            CHECK(xcnn::detail::choose_input_grad_form<float>(g) == conv_form::depthwise);
        }
        // Other groups: the GEMM forms over channel slices (the plane form takes whole images).
        const auto grouped = geometry(8, 8, 2, stride);
        CHECK(xcnn::detail::choose_forward_form<float>(grouped) == conv_form::window_view);
        CHECK(xcnn::detail::choose_weight_grad_form<float>(grouped) == conv_form::window_view);
        CHECK(xcnn::detail::choose_input_grad_form<float>(grouped) ==
              (stride == 1 ? conv_form::window_view : conv_form::strided_col2im));
        // One input channel and one group is an ordinary convolution (LeNet's first layer).
        CHECK(xcnn::detail::choose_forward_form<float>(geometry(1, 6, 1, stride)) != conv_form::depthwise);
    }
}

TEST_CASE("Conv2D options: a layer without bias has one parameter, in every list and file", "[conv2d][options]")
{
    Conv2D<float> layer(Conv2DOptions(3, 4, 3).padding(1).bias(false));
    CHECK_FALSE(layer.has_bias());
    const auto params = layer.parameters();
    REQUIRE(params.size() == 1);
    CHECK(params[0].name() == "weight");
    CHECK(layer.num_parameters() == 4 * 3 * 3 * 3);
    CHECK_THAT(xcnn_test::error_of([&] { (void)layer.bias(); }), xcnn_test::contains("has no bias"));
    CHECK_THROWS_AS(layer.bias_grad(), xcnn::error);
    CHECK(layer.name() == "Conv2D(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)");

    // PyTorch's parameter names and fan-in: groups of 2 input channels, so bound 1 / sqrt(2 * 9).
    Conv2D<double> grouped(Conv2DOptions(4, 6, 3).groups(2).dilation(2));
    CHECK(grouped.weight().shape()[1] == 2);
    CHECK(xt::amax(xt::abs(grouped.weight()))() <= 1.0 / std::sqrt(18.0));
    CHECK(xt::amax(xt::abs(grouped.bias()))() <= 1.0 / std::sqrt(18.0));
    CHECK(xt::amax(xt::abs(grouped.weight()))() > 0.8 / std::sqrt(18.0));
    CHECK(grouped.name() ==
          "Conv2D(4, 6, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0), dilation=(2, 2), groups=2)");

    auto make_net = []
    {
        return xcnn::Sequential{Conv2D<float>(Conv2DOptions(2, 4, 3).padding(1).groups(2).bias(false)),
                                xcnn::ReLU<float>{},
                                Conv2D<float>(Conv2DOptions(4, 4, 3).groups(4).dilation(2).bias(false)),
                                xcnn::Flatten<float>{}, xcnn::Dense<float>(4 * 2 * 2, 3)};
    };
    auto net = make_net();
    net.reset_parameters(3u);
    std::vector<std::string> names;
    for (const auto& p : net.parameters())
    {
        names.push_back(p.name());
    }
    CHECK(names == std::vector<std::string>{"0.weight", "2.weight", "4.weight", "4.bias"});

    // An optimizer step trains it; save/load and export_npy/import_npy restore only the weights.
    std::mt19937 rng(4);
    const auto x = random_tensor<float, 4>({2, 2, 6, 6}, rng);
    xcnn::SGD<float> sgd(net.parameters(), 0.1f);
    const xt::xtensor<float, 4> w_before = net.get<2>().weight();
    const xt::xtensor<float, 2> y = net.forward(x);
    (void)net.backward(xt::xtensor<float, 2>(xt::ones<float>(y.shape())));
    sgd.step();
    CHECK_FALSE(identical(net.get<2>().weight(), w_before));

    xcnn_test::temp_dir dir;
    const std::string model = (dir.path() / "nobias.xcnn").string();
    xcnn::save(net, model);
    auto loaded = make_net();
    CHECK_FALSE(identical(loaded.predict(x), net.predict(x)));
    xcnn::load(loaded, model);
    CHECK(identical(loaded.predict(x), net.predict(x)));
    CHECK(identical(loaded.get<0>().weight(), net.get<0>().weight()));

    const std::string npy_dir = (dir.path() / "npy").string();
    xcnn::export_npy(net, npy_dir);
    CHECK(std::filesystem::is_regular_file(npy_dir + "/0.weight.npy"));
    CHECK_FALSE(std::filesystem::exists(npy_dir + "/0.bias.npy"));
    CHECK_FALSE(std::filesystem::exists(npy_dir + "/2.bias.npy"));
    auto imported = make_net();
    xcnn::import_npy(imported, npy_dir);
    CHECK(identical(imported.predict(x), net.predict(x)));

    // A file of the same network with biases does not load into it.
    auto with_bias = xcnn::Sequential{Conv2D<float>(Conv2DOptions(2, 4, 3).padding(1).groups(2)), xcnn::ReLU<float>{},
                                      Conv2D<float>(Conv2DOptions(4, 4, 3).groups(4).dilation(2)),
                                      xcnn::Flatten<float>{}, xcnn::Dense<float>(4 * 2 * 2, 3)};
    const std::string biased = (dir.path() / "bias.xcnn").string();
    xcnn::save(with_bias, biased);
    CHECK_THROWS(xcnn::load(loaded, biased));
    CHECK(identical(loaded.predict(x), net.predict(x)));
}

TEST_CASE("Conv2D options: invalid groups and dilation are typed errors naming the layer and values",
          "[conv2d][options][errors]")
{
    const std::string groups_message = xcnn_test::error_of([] { Conv2D<float>(Conv2DOptions(6, 4, 3).groups(4)); });
    CHECK_THAT(groups_message, xcnn_test::contains("Conv2D(6, 4"));
    CHECK_THAT(groups_message, xcnn_test::contains("in_channels (6) and out_channels (4)"));
    CHECK_THAT(groups_message, xcnn_test::contains("divisible by groups (4)"));
    CHECK_THROWS_AS(Conv2D<float>(Conv2DOptions(6, 4, 3).groups(4)), xcnn::value_error);
    CHECK_THROWS_AS(Conv2D<float>(Conv2DOptions(4, 6, 3).groups(4)), xcnn::value_error);
    CHECK_THROWS_AS(Conv2D<float>(Conv2DOptions(4, 4, 3).groups(0)), xcnn::value_error);
    CHECK_THAT(xcnn_test::error_of(
                   [] {
                       Conv2D<float>(Conv2DOptions(4, 4, 3).dilation({1, 0}));
                   }),
               xcnn_test::contains("dilation must be >= 1, got (1, 0)"));
    CHECK_THROWS_AS(Conv2D<float>(Conv2DOptions(4, 4, 3).dilation(static_cast<std::size_t>(-1))), xcnn::value_error);

    // The dilated kernel spans 5 x 5: a 4 x 6 input is too small, a 5 x 5 one is not.
    Conv2D<float> layer(Conv2DOptions(2, 2, 3).dilation(2));
    CHECK(layer.output_shape({1, 2, 5, 5}) == std::vector<std::size_t>{1, 2, 1, 1});
    const std::string message = xcnn_test::error_of([&] { (void)layer.output_shape({1, 2, 4, 6}); });
    CHECK_THAT(message, xcnn_test::contains("dilation=(2, 2)"));
    CHECK_THAT(message, xcnn_test::contains("smaller than the dilated kernel's span (5, 5)"));
    CHECK_THROWS_AS(layer.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 2, 4, 6}))), xcnn::shape_error);
}

} // namespace
