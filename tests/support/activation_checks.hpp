// What the tests of the element-wise activations (test_leaky_relu, test_sigmoid, test_tanh,
// test_gelu) share: PyTorch parity on the fixture of tests/fixtures/torch_activations.py, a
// scalar reference on several ranks through one object, special values in float and double, and
// the fused Conv2D + activation and Dense + activation steps of a Sequential against the layers
// run one by one.
#ifndef XCNN_TESTS_SUPPORT_ACTIVATION_CHECKS_HPP
#define XCNN_TESTS_SUPPORT_ACTIVATION_CHECKS_HPP

#include "../catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include "gradcheck.hpp"
#include "naive_layers.hpp"

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <vector>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace xcnn_test
{
namespace activation_checks
{

/// A float64 array of the fixture, `<name>.npy`, as a rank-N tensor.
template <std::size_t N>
xt::xtensor<double, N> fixture(const std::string& name)
{
    const xt::xarray<double> a =
        xcnn::load_npy<double>(std::string(XCNN_TEST_FIXTURES_DIR) + "/torch_activations/" + name + ".npy");
    REQUIRE(a.dimension() == N);
    xt::xtensor<double, N> t = a;
    return t;
}

/// The largest |a - b| / |b| over the elements, where equal values (infinities, zeros of either
/// sign) and NaN against NaN count as 0 and anything else against a NaN or an infinity as
/// +infinity: NaN propagation and saturation must match exactly.
template <class A, class B>
double parity_error(const A& a, const B& b)
{
    if (!same_extents(a, b))
    {
        return std::numeric_limits<double>::infinity();
    }
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        const double x = static_cast<double>(a.data()[i]), y = static_cast<double>(b.data()[i]);
        if (x == y || (std::isnan(x) && std::isnan(y)))
        {
            continue;
        }
        if (!std::isfinite(x) || !std::isfinite(y))
        {
            return std::numeric_limits<double>::infinity();
        }
        worst = std::max(worst, std::abs(x - y) / std::abs(y));
    }
    return worst;
}

/// `layer` (double) against PyTorch: f(x) and dX on the (2, 3, 4, 5) fixture input, then at the
/// special values (±inf, ±huge, ±tiny, ±0, NaN) with dY = 1; `key` names the fixture's files.
template <class Layer>
void check_torch_parity(Layer& layer, const std::string& key)
{
    INFO(layer.name() << " against PyTorch (" << key << ")");
    const auto x = fixture<4>("input");
    const auto dy = fixture<4>("grad_output");
    const xt::xtensor<double, 4> y = layer.forward(x);
    const double forward_error = parity_error(y, fixture<4>(key + "_output"));
    const double backward_error = parity_error(layer.backward(dy), fixture<4>(key + "_grad"));
    CHECK(forward_error < 1e-9);
    CHECK(backward_error < 1e-9);

    const auto special = fixture<1>("special");
    const xt::xtensor<double, 1> y_special = layer.forward(special);
    const xt::xtensor<double, 1> ones = xt::ones<double>(special.shape());
    const xt::xtensor<double, 1> dx_special = layer.backward(ones);
    const auto expected_y = fixture<1>(key + "_special_output");
    const auto expected_dx = fixture<1>(key + "_special_grad");
    for (std::size_t i = 0; i < special.size(); ++i)
    {
        INFO("x = " << special(i) << ": f(x) " << y_special(i) << " vs " << expected_y(i) << ", dX " << dx_special(i)
                    << " vs " << expected_dx(i));
        CHECK(parity_error(xt::xtensor<double, 1>{y_special(i)}, xt::xtensor<double, 1>{expected_y(i)}) < 1e-9);
        CHECK(parity_error(xt::xtensor<double, 1>{dx_special(i)}, xt::xtensor<double, 1>{expected_dx(i)}) < 1e-9);
    }
    UNSCOPED_INFO(layer.name() << ": largest relative difference to PyTorch " << forward_error << " (forward), "
                               << backward_error << " (backward)");
}

/// forward, predict and backward of `layer` on a rank-N input of `shape` (values 3 U(-1, 1))
/// against the scalar reference `f` and its derivative `df` (in double), within `tolerance`
/// relative to max(|reference|, 1).
template <class T, std::size_t N, class Layer, class F, class DF>
void check_rank(Layer& layer, const std::array<std::size_t, N>& shape, std::mt19937& rng, F f, DF df, double tolerance)
{
    INFO(layer.name() << " on rank " << N);
    const auto x = random_tensor<T, N>(shape, rng, -3.0, 3.0);
    const auto dy = random_tensor<T, N>(shape, rng);
    const xt::xtensor<T, N> y = layer.forward(x);
    const xt::xtensor<T, N> dx = layer.backward(dy);
    double worst_y = 0, worst_dx = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        const double xi = static_cast<double>(x.data()[i]);
        const double ry = f(xi), rdx = static_cast<double>(dy.data()[i]) * df(xi);
        worst_y = std::max(worst_y, std::abs(static_cast<double>(y.data()[i]) - ry) / std::max(std::abs(ry), 1.0));
        worst_dx = std::max(worst_dx, std::abs(static_cast<double>(dx.data()[i]) - rdx) / std::max(std::abs(rdx), 1.0));
    }
    CHECK(worst_y < tolerance);
    CHECK(worst_dx < tolerance);
    CHECK(identical(layer.predict(x), y));
}

/// One object over ranks 1, 2 and 4 and back, against the scalar reference.
template <class T, class Layer, class F, class DF>
void check_ranks(Layer layer, F f, DF df)
{
    const double tolerance = std::is_same<T, float>::value ? 1e-5 : 1e-13;
    std::mt19937 rng(sizeof(T) + 40);
    check_rank<T, 1>(layer, std::array<std::size_t, 1>{37}, rng, f, df, tolerance);
    check_rank<T, 2>(layer, std::array<std::size_t, 2>{5, 13}, rng, f, df, tolerance);
    check_rank<T, 4>(layer, std::array<std::size_t, 4>{2, 3, 5, 7}, rng, f, df, tolerance);
    check_rank<T, 1>(layer, std::array<std::size_t, 1>{64}, rng, f, df, tolerance);
    check_rank<T, 2>(layer, std::array<std::size_t, 2>{5, 13}, rng, f, df, tolerance);
}

/// At large and special inputs in T: finite inputs give finite outputs and gradients (no
/// overflow into inf / inf or 0 · inf), both equal to the double reference `f`, `df` rounded to T
/// (within 1e-6 relative, or 1e-30 absolute near 0 for f and T's epsilon for the gradient), and a
/// NaN gives a NaN.
template <class T, class Layer, class F, class DF>
void check_large_values(Layer layer, F f, DF df)
{
    const T big = std::numeric_limits<T>::max();
    const xt::xtensor<T, 1> x = {-big,     T(-1e30), T(-1000), T(-100), T(-20),  T(-1e-30), T(0),
                                 T(1e-30), T(20),    T(100),   T(1000), T(1e30), big};
    const xt::xtensor<T, 1> y = layer.forward(x);
    const xt::xtensor<T, 1> dx = layer.backward(xt::xtensor<T, 1>(xt::ones<T>(x.shape())));
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        const double xi = static_cast<double>(x(i));
        INFO(layer.name() << " at x = " << xi << ": f(x) = " << y(i) << ", f'(x) = " << dx(i));
        REQUIRE(std::isfinite(y(i)));
        REQUIRE(std::isfinite(dx(i)));
        CHECK(std::abs(static_cast<double>(y(i)) - static_cast<double>(T(f(xi)))) <= 1e-6 * std::abs(f(xi)) + 1e-30);
        // The gradients of Sigmoid and Tanh come from the output, which rounds to ±1 once the
        // true gradient is below T's epsilon: within epsilon absolute.
        CHECK(std::abs(static_cast<double>(dx(i)) - static_cast<double>(T(df(xi)))) <=
              1e-6 * std::abs(df(xi)) + std::numeric_limits<T>::epsilon());
    }
    const T nan = std::numeric_limits<T>::quiet_NaN();
    const xt::xtensor<T, 1> nans = {nan, T(1), nan};
    const xt::xtensor<T, 1> y_nan = layer.forward(nans);
    CHECK(std::isnan(y_nan(0)));
    CHECK(std::isnan(y_nan(2)));
    CHECK(std::isfinite(y_nan(1)));
}

/// The input gradient of `layer` (double) on a (2, 3, 4, 5) input of 3 U(-1, 1) values, away
/// from 0 by 1e-2 (a kink there is beyond finite differences), against central differences.
template <class Layer>
double gradient_error(Layer& layer, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    auto x = random_tensor<double, 4>({2, 3, 4, 5}, rng, -3.0, 3.0);
    for (auto& v : x)
    {
        if (std::abs(v) < 1e-2)
        {
            v = v < 0 ? v - 1e-2 : v + 1e-2;
        }
    }
    const auto r = random_tensor<double, 4>({2, 3, 4, 5}, rng);
    return check_input_gradient(layer, x, r).relative_error;
}

/// Conv2D + `act` (three times: the padded-width form, a stride-2 convolution and a 1x1 one,
/// at two widths) and Dense + `act` (twice), each fused into one step by a Sequential, give bit
/// for bit what the layers give one by one: forward, predict, backward and backward_parameters.
template <class T, class Act>
void check_fusion(const Act& act)
{
    using xcnn::detail::step_kind;
    INFO(act.name() << " fused into Conv2D and Dense");
    {
        xcnn::Sequential net{xcnn::Conv2D<T>(2, 3, 3, 1, 1),
                             act,
                             xcnn::Conv2D<T>(xcnn::Conv2DOptions(3, 4, 3).stride(2).padding(1)),
                             act,
                             xcnn::Conv2D<T>(4, 2, 1),
                             act};
        using net_type = decltype(net);
        CHECK(net_type::plan[0] == step_kind::with_activation);
        CHECK(net_type::plan[2] == step_kind::with_activation);
        CHECK(net_type::plan[4] == step_kind::with_activation);
        net.reset_parameters(7u);
        auto c1 = net.template get<0>();
        auto a1 = net.template get<1>();
        auto c2 = net.template get<2>();
        auto a2 = net.template get<3>();
        auto c3 = net.template get<4>();
        auto a3 = net.template get<5>();
        std::mt19937 rng(3);
        for (const std::size_t width : {14u, 64u})
        {
            INFO("input width " << width);
            const auto x = random_tensor<T>(std::array<std::size_t, 4>{2, 2, 6, width}, rng, -3.0, 3.0);
            const xt::xtensor<T, 4> pre = c3.forward(a2.forward(c2.forward(a1.forward(c1.forward(x)))));
            const xt::xtensor<T, 4> expected = a3.forward(pre);
            CHECK_FALSE(identical(pre, expected)); // not vacuous: the activation changed the values
            const xt::xtensor<T, 4> y = net.forward(x);
            CHECK(identical(y, expected));
            CHECK(identical(net.predict(x), expected));
            (void)net.forward(x);

            const auto dy = random_tensor<T>(std::array<std::size_t, 4>(y.shape()), rng);
            const xt::xtensor<T, 4> expected_dx =
                c1.backward(a1.backward(c2.backward(a2.backward(c3.backward(a3.backward(dy))))));
            const xt::xtensor<T, 4> dx = net.backward(dy);
            CHECK(identical(dx, expected_dx));
            CHECK(identical(net.template get<0>().weight_grad(), c1.weight_grad()));
            CHECK(identical(net.template get<2>().weight_grad(), c2.weight_grad()));
            CHECK(identical(net.template get<2>().bias_grad(), c2.bias_grad()));
            CHECK(identical(net.template get<4>().weight_grad(), c3.weight_grad()));
            CHECK(identical(net.template get<4>().bias_grad(), c3.bias_grad()));

            net.backward_parameters(dy);
            CHECK(identical(net.template get<0>().weight_grad(), c1.weight_grad()));
            CHECK(identical(net.template get<0>().bias_grad(), c1.bias_grad()));
        }
    }
    {
        xcnn::Sequential net{xcnn::Dense<T>(6, 5), act, xcnn::Dense<T>(5, 3), act};
        using net_type = decltype(net);
        CHECK(net_type::plan[0] == step_kind::with_activation);
        CHECK(net_type::plan[2] == step_kind::with_activation);
        net.reset_parameters(11u);
        auto d1 = net.template get<0>();
        auto a1 = net.template get<1>();
        auto d2 = net.template get<2>();
        auto a2 = net.template get<3>();
        std::mt19937 rng(4);
        const auto x = random_tensor<T, 2>({4, 6}, rng, -3.0, 3.0);
        const auto dy = random_tensor<T, 2>({4, 3}, rng);
        const xt::xtensor<T, 2> pre = d2.forward(a1.forward(d1.forward(x)));
        const xt::xtensor<T, 2> expected = a2.forward(pre);
        CHECK_FALSE(identical(pre, expected));
        CHECK(identical(net.forward(x), expected));
        const xt::xtensor<T, 2> expected_dx = d1.backward(a1.backward(d2.backward(a2.backward(dy))));
        CHECK(identical(net.backward(dy), expected_dx));
        CHECK(identical(net.template get<0>().weight_grad(), d1.weight_grad()));
        CHECK(identical(net.template get<0>().bias_grad(), d1.bias_grad()));
        CHECK(identical(net.template get<2>().weight_grad(), d2.weight_grad()));
        net.backward_parameters(dy);
        CHECK(identical(net.template get<0>().weight_grad(), d1.weight_grad()));
        CHECK(identical(net.predict(x), expected));
    }
}

} // namespace activation_checks
} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_ACTIVATION_CHECKS_HPP
