// Tests of xcnn::clip_grad_norm against torch.nn.utils.clip_grad_norm_ (tests/fixtures/torch_optim,
// torch_optim.py), and its behaviour on non-finite gradients, which is PyTorch's default
// (error_if_nonfinite=False).
#include "catch_compat.hpp"
#include "support/error_of.hpp"
#include "support/torch_optim.hpp"

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

TEST_CASE("clip_grad_norm matches torch: the norm before, the gradients after", "[clip][torch]")
{
    const auto grads = xcnn_test::torch_optim("grads");
    const auto expected = xcnn_test::torch_optim("clip");
    const double max_norm = GENERATE(0.5, 100.0);
    const std::size_t row = max_norm == 0.5 ? 0 : 1;
    xcnn_test::torch_parameters<double> model;
    model.set_gradients(grads, 0);
    const double norm = xcnn::clip_grad_norm(model.parameters(), max_norm);
    CHECK(xcnn_test::rel_diff(norm, expected(row, 0)) < 1e-12);
    double worst = 0, unchanged = 0;
    for (std::size_t j = 0; j < model.size; ++j)
    {
        worst = std::max(worst, xcnn_test::rel_diff(*model.element(j, true), expected(row, 1 + j)));
        unchanged = std::max(unchanged, std::abs(*model.element(j, true) - grads(0, j)));
    }
    CHECK(worst < 1e-12);
    if (row == 1)
    {
        CHECK(unchanged == 0.0); // not clipped: the gradients are untouched, bit for bit
    }
    else
    {
        // Clipped: the new norm is max_norm / (1 + 1e-6 / norm).
        CHECK(std::abs(xcnn::clip_grad_norm(model.parameters(), 1e9) - max_norm * norm / (norm + 1e-6)) < 1e-12);
    }
}

TEST_CASE("clip_grad_norm in float accumulates in double", "[clip]")
{
    // Squares of 1e20 overflow float but not double: the norm of (3e20, 4e20) is 5e20.
    xt::xtensor<float, 1> p = {0.f, 0.f}, g = {3e20f, 4e20f};
    std::vector<xcnn::parameter<float>> params{xcnn::parameter<float>("p", p, g)};
    const double norm = xcnn::clip_grad_norm(params, 1.0);
    CHECK(std::abs(norm - 5e20) / 5e20 < 1e-7);
    CHECK(std::abs(g(0) - 0.6f) < 1e-6f);
    CHECK(std::abs(g(1) - 0.8f) < 1e-6f);
}

TEST_CASE("clip_grad_norm with non-finite gradients does what torch does by default", "[clip][nonfinite]")
{
    const double inf = std::numeric_limits<double>::infinity();
    xt::xtensor<double, 1> p1 = {0., 0., 0.}, g1 = {1., inf, 2.}, p2 = {0., 0., 0.}, g2 = {1., 2., 3.};
    std::vector<xcnn::parameter<double>> params{xcnn::parameter<double>("a", p1, g1),
                                                xcnn::parameter<double>("b", p2, g2)};
    SECTION("an infinite gradient: the norm is inf, the factor 0 (inf * 0 is NaN)")
    {
        CHECK(xcnn::clip_grad_norm(params, 1.0) == inf);
        CHECK(g1(0) == 0.0);
        CHECK(std::isnan(g1(1)));
        CHECK(g1(2) == 0.0);
        CHECK(xt::all(xt::equal(g2, 0.0)));
    }
    SECTION("a NaN gradient: every gradient becomes NaN")
    {
        g1(1) = std::numeric_limits<double>::quiet_NaN();
        CHECK(std::isnan(xcnn::clip_grad_norm(params, 1.0)));
        CHECK(xt::all(xt::isnan(g1)));
        CHECK(xt::all(xt::isnan(g2)));
    }
}

TEST_CASE("clip_grad_norm: no parameters, a large tensor, invalid max_norm", "[clip]")
{
    CHECK(xcnn::clip_grad_norm(std::vector<xcnn::parameter<float>>{}, 1.0) == 0.0);

    // A tensor large enough for whole vectors, a partial one and two threads: every gradient
    // scaled by the same factor, the same at one and two threads.
    const std::size_t n = (std::size_t(1) << 17) + 5;
    xt::xtensor<float, 1> p = xt::zeros<float>({n}), g = xt::ones<float>({n});
    std::vector<xcnn::parameter<float>> params{xcnn::parameter<float>("p", p, g)};
    const std::size_t saved = xcnn::get_num_threads();
    xcnn::set_num_threads(2);
    const double norm = xcnn::clip_grad_norm(params, 2.0);
    xcnn::set_num_threads(saved);
    CHECK(norm == std::sqrt(static_cast<double>(n)));
    const float factor = static_cast<float>(2.0 / (norm + 1e-6));
    CHECK(xt::all(xt::equal(g, factor)));

    CHECK(xcnn_test::error_of([&] { xcnn::clip_grad_norm(params, -1.0); }) ==
          "clip_grad_norm: max_norm -1 must be >= 0");
    CHECK_THROWS_AS(xcnn::clip_grad_norm(params, std::numeric_limits<double>::quiet_NaN()), xcnn::value_error);
    CHECK(xt::all(xt::equal(g, factor))); // unchanged by the refusals
}
