// Tanh: the scalar reference on several ranks through one object, PyTorch parity in double
// (tests/fixtures/torch_activations.py), no exp(2x) overflow at large |x| in float and double, NaN
// propagation, finite differences, and the fused Conv2D/Dense + Tanh steps.
#include "catch_compat.hpp"

#include "support/activation_checks.hpp"

#include <xcnn/layers/tanh.hpp>
#include <xcnn/xcnn.hpp>

#include <cmath>

namespace
{

namespace checks = xcnn_test::activation_checks;

double tanh_derivative(double x)
{
    return 1.0 - std::tanh(x) * std::tanh(x);
}

double tanh_reference(double x)
{
    return std::tanh(x);
}

} // namespace

TEST_CASE("Tanh on ranks 1, 2 and 4 with one object matches the scalar reference", "[tanh]")
{
    checks::check_ranks<float>(xcnn::Tanh<float>{}, tanh_reference, tanh_derivative);
    checks::check_ranks<double>(xcnn::Tanh<double>{}, tanh_reference, tanh_derivative);
}

TEST_CASE("Tanh matches PyTorch in double, special values included", "[tanh][torch]")
{
    xcnn::Tanh<double> layer;
    CHECK(layer.name() == "Tanh()");
    checks::check_torch_parity(layer, "tanh");
}

TEST_CASE("Tanh saturates without overflow at large |x| and propagates NaN", "[tanh]")
{
    checks::check_large_values<float>(xcnn::Tanh<float>{}, tanh_reference, tanh_derivative);
    checks::check_large_values<double>(xcnn::Tanh<double>{}, tanh_reference, tanh_derivative);
    xcnn::Tanh<float> layer;
    const xt::xtensor<float, 1> x = {-1e30f, 0.0f, 1e30f};
    const auto& y = layer.forward(x);
    CHECK(y(0) == -1.0f);
    CHECK(y(1) == 0.0f);
    CHECK(y(2) == 1.0f);
}

TEST_CASE("Tanh backward passes a finite-difference gradient check", "[tanh][gradcheck]")
{
    xcnn::Tanh<double> layer;
    CHECK(checks::gradient_error(layer, 31) < 1e-6);
}

TEST_CASE("Conv2D + Tanh and Dense + Tanh fused in a Sequential equal the layers run one by one", "[tanh][sequential]")
{
    checks::check_fusion<float>(xcnn::Tanh<float>{});
    checks::check_fusion<double>(xcnn::Tanh<double>{});
}
