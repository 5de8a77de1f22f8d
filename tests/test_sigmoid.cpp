// Sigmoid: the scalar reference on several ranks through one object, PyTorch parity in double
// (tests/fixtures/torch_activations.py), no overflow at large |x| in float and double, NaN
// propagation, finite differences, and the fused Conv2D/Dense + Sigmoid steps.
#include "catch_compat.hpp"

#include "support/activation_checks.hpp"

#include <xcnn/layers/sigmoid.hpp>
#include <xcnn/xcnn.hpp>

#include <cmath>

namespace
{

namespace checks = xcnn_test::activation_checks;

double sigmoid(double x)
{
    return 1.0 / (1.0 + std::exp(-x));
}

double sigmoid_derivative(double x)
{
    return sigmoid(x) * (1.0 - sigmoid(x));
}

} // namespace

TEST_CASE("Sigmoid on ranks 1, 2 and 4 with one object matches the scalar reference", "[sigmoid]")
{
    checks::check_ranks<float>(xcnn::Sigmoid<float>{}, sigmoid, sigmoid_derivative);
    checks::check_ranks<double>(xcnn::Sigmoid<double>{}, sigmoid, sigmoid_derivative);
}

TEST_CASE("Sigmoid matches PyTorch in double, special values included", "[sigmoid][torch]")
{
    xcnn::Sigmoid<double> layer;
    CHECK(layer.name() == "Sigmoid()");
    checks::check_torch_parity(layer, "sigmoid");
}

TEST_CASE("Sigmoid saturates without overflow at large |x| and propagates NaN", "[sigmoid]")
{
    checks::check_large_values<float>(xcnn::Sigmoid<float>{}, sigmoid, sigmoid_derivative);
    checks::check_large_values<double>(xcnn::Sigmoid<double>{}, sigmoid, sigmoid_derivative);
    xcnn::Sigmoid<float> layer;
    const xt::xtensor<float, 1> x = {-1e30f, 0.0f, 1e30f};
    const auto& y = layer.forward(x);
    CHECK(y(0) == 0.0f);
    CHECK(y(1) == 0.5f);
    CHECK(y(2) == 1.0f);
}

TEST_CASE("Sigmoid backward passes a finite-difference gradient check", "[sigmoid][gradcheck]")
{
    xcnn::Sigmoid<double> layer;
    CHECK(checks::gradient_error(layer, 31) < 1e-6);
}

TEST_CASE("Conv2D + Sigmoid and Dense + Sigmoid fused in a Sequential equal the layers run one by one",
          "[sigmoid][sequential]")
{
    checks::check_fusion<float>(xcnn::Sigmoid<float>{});
    checks::check_fusion<double>(xcnn::Sigmoid<double>{});
}
