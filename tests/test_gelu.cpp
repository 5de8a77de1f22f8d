// GELU (exact, erf-based): the scalar reference on several ranks through one object, PyTorch
// parity in double with approximate='none' (tests/fixtures/torch_activations.py), large |x| in
// float and double, NaN propagation, finite differences, and the fused Conv2D/Dense + GELU steps
// (whose gradient reads the pre-activation the fused layer keeps).
#include "catch_compat.hpp"

#include "support/activation_checks.hpp"

#include <xcnn/layers/gelu.hpp>
#include <xcnn/xcnn.hpp>

#include <cmath>

namespace
{

namespace checks = xcnn_test::activation_checks;

double gelu(double x)
{
    return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

double gelu_derivative(double x)
{
    const double pi = 3.14159265358979323846;
    return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * pi);
}

} // namespace

TEST_CASE("GELU on ranks 1, 2 and 4 with one object matches the scalar reference", "[gelu]")
{
    checks::check_ranks<float>(xcnn::GELU<float>{}, gelu, gelu_derivative);
    checks::check_ranks<double>(xcnn::GELU<double>{}, gelu, gelu_derivative);
}

TEST_CASE("GELU matches PyTorch's exact GELU in double, special values included", "[gelu][torch]")
{
    xcnn::GELU<double> layer;
    CHECK(layer.name() == "GELU(approximate='none')");
    checks::check_torch_parity(layer, "gelu");
}

TEST_CASE("GELU is exact, not the tanh approximation", "[gelu]")
{
    // At x = 1 the two differ by about 1.6e-4: GELU(1) = Φ(1) = 0.841344746068543.
    xcnn::GELU<double> layer;
    const xt::xtensor<double, 1> x = {1.0, -1.0, 2.0};
    const auto& y = layer.forward(x);
    CHECK(std::abs(y(0) - 0.8413447460685429) < 1e-15);
    CHECK(std::abs(y(1) - (-0.15865525393145707)) < 1e-15);
    CHECK(std::abs(y(2) - 1.9544997361036416) < 1e-15);
}

TEST_CASE("GELU at large |x| gives x or -0 and gradients 1 or 0, and propagates NaN", "[gelu]")
{
    checks::check_large_values<float>(xcnn::GELU<float>{}, gelu, gelu_derivative);
    checks::check_large_values<double>(xcnn::GELU<double>{}, gelu, gelu_derivative);
}

TEST_CASE("GELU backward passes a finite-difference gradient check", "[gelu][gradcheck]")
{
    xcnn::GELU<double> layer;
    CHECK(checks::gradient_error(layer, 33) < 1e-6);
}

TEST_CASE("Conv2D + GELU and Dense + GELU fused in a Sequential equal the layers run one by one", "[gelu][sequential]")
{
    checks::check_fusion<float>(xcnn::GELU<float>{});
    checks::check_fusion<double>(xcnn::GELU<double>{});
}
