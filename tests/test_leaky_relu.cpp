// LeakyReLU: a functor that carries its slope. The scalar reference on several ranks through one
// object, PyTorch parity in double for the default slope and 0.2
// (tests/fixtures/torch_activations.py), the gradient at 0 and at NaN, finite differences, the
// slope reaching the fused Conv2D/Dense steps, and the errors of a bad slope.
#include "catch_compat.hpp"

#include "support/activation_checks.hpp"
#include "support/require_error.hpp"

#include <xcnn/layers/leaky_relu.hpp>
#include <xcnn/xcnn.hpp>

#include <cmath>
#include <limits>

namespace
{

namespace checks = xcnn_test::activation_checks;

} // namespace

TEST_CASE("LeakyReLU on ranks 1, 2 and 4 with one object matches the scalar reference", "[leaky_relu]")
{
    for (const double slope : {0.01, 0.2, 0.0, 1.5})
    {
        INFO("negative_slope " << slope);
        auto f = [slope](double x)
        {
            return x > 0 ? x : x * slope;
        };
        auto df = [slope](double x)
        {
            return x > 0 ? 1.0 : slope;
        };
        checks::check_ranks<float>(xcnn::LeakyReLU<float>(static_cast<float>(slope)), f, df);
        checks::check_ranks<double>(xcnn::LeakyReLU<double>(slope), f, df);
    }
}

TEST_CASE("LeakyReLU: default slope 0.01, names as PyTorch's repr, the functor carries the slope", "[leaky_relu]")
{
    xcnn::LeakyReLU<float> standard;
    CHECK(standard.op().negative_slope() == 0.01f);
    CHECK(standard.name() == "LeakyReLU(negative_slope=0.01)");
    xcnn::LeakyReLU<double> steep(0.2);
    CHECK(steep.op().negative_slope() == 0.2);
    CHECK(steep.name() == "LeakyReLU(negative_slope=0.2)");
    const xt::xtensor<double, 1> x = {-2.0, -0.0, 0.0, 3.0};
    const xt::xtensor<double, 1> expected = {-0.4, -0.0, 0.0, 3.0};
    CHECK(xcnn_test::identical(steep.forward(x), expected));
    CHECK(std::signbit(steep.forward(x)(1))); // -0 · 0.2 = -0, as in PyTorch
    // At 0 the gradient is the slope (PyTorch: x > 0 ? dy : dy · slope).
    const xt::xtensor<double, 1> dy = {1.0, 1.0, 1.0, 1.0};
    const xt::xtensor<double, 1> dx = {0.2, 0.2, 0.2, 1.0};
    CHECK(xcnn_test::identical(steep.backward(dy), dx));
    // The slope shows in a Sequential's summary.
    xcnn::Sequential net{xcnn::Dense<double>(3, 2), xcnn::LeakyReLU<double>(0.25)};
    CHECK_THAT(net.summary({1, 3}), xcnn_test::contains("LeakyReLU(negative_slope=0.25)"));
}

TEST_CASE("LeakyReLU matches PyTorch in double, special values included", "[leaky_relu][torch]")
{
    xcnn::LeakyReLU<double> standard;
    checks::check_torch_parity(standard, "leaky_relu");
    xcnn::LeakyReLU<double> steep(0.2);
    checks::check_torch_parity(steep, "leaky_relu_0.2");
}

TEST_CASE("LeakyReLU at large |x| stays finite and propagates NaN with the slope as its gradient", "[leaky_relu]")
{
    auto f = [](double x)
    {
        return x > 0 ? x : x * 0.01;
    };
    auto df = [](double x)
    {
        return x > 0 ? 1.0 : 0.01;
    };
    checks::check_large_values<float>(xcnn::LeakyReLU<float>{}, f, df);
    checks::check_large_values<double>(xcnn::LeakyReLU<double>{}, f, df);
    xcnn::LeakyReLU<double> layer(0.5);
    const xt::xtensor<double, 1> x = {std::numeric_limits<double>::quiet_NaN()};
    CHECK(std::isnan(layer.forward(x)(0)));
    CHECK(layer.backward(xt::xtensor<double, 1>{4.0})(0) == 2.0);
}

TEST_CASE("LeakyReLU backward passes a finite-difference gradient check away from 0", "[leaky_relu][gradcheck]")
{
    xcnn::LeakyReLU<double> standard;
    CHECK(checks::gradient_error(standard, 35) < 1e-6);
    xcnn::LeakyReLU<double> steep(0.3);
    CHECK(checks::gradient_error(steep, 36) < 1e-6);
}

TEST_CASE("Conv2D + LeakyReLU and Dense + LeakyReLU fused in a Sequential equal the layers run one by one, slope "
          "included",
          "[leaky_relu][sequential]")
{
    // A slope other than the default: a fused step that built its own functor would use 0.01.
    checks::check_fusion<float>(xcnn::LeakyReLU<float>(0.2f));
    checks::check_fusion<double>(xcnn::LeakyReLU<double>(0.2));
}

TEST_CASE("LeakyReLU rejects a negative, infinite or NaN slope with a value_error naming it", "[leaky_relu][errors]")
{
    using xcnn_test::require_error;
    require_error<xcnn::value_error>([] { xcnn::LeakyReLU<double> layer(-0.5); },
                                     {"LeakyReLU(negative_slope=-0.5)", "must be finite and >= 0"});
    require_error<xcnn::value_error>([] { xcnn::LeakyReLU<float> layer(std::numeric_limits<float>::infinity()); },
                                     {"LeakyReLU(negative_slope=inf)"});
    require_error<xcnn::value_error>([] { xcnn::LeakyReLU<double> layer(std::nan("")); },
                                     {"LeakyReLU(negative_slope=nan)"});
}
