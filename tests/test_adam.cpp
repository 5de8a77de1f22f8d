// Tests of xcnn::Adam and xcnn::AdamW: PyTorch parity in double over 20 steps from
// tests/fixtures/torch_optim (torch_optim.py), a naive long-double reference on tensors large
// enough for the vector loop and the threads, the state interface, invalid hyperparameters and
// non-finite values.
#include "catch_compat.hpp"
#include "support/error_of.hpp"
#include "support/gradcheck.hpp"
#include "support/torch_optim.hpp"

#include <xcnn/xcnn.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace
{

using xcnn_test::contains;
using xcnn_test::error_of;

template <class Optimizer>
double run_against_torch(Optimizer& opt, xcnn_test::torch_parameters<typename Optimizer::value_type>& model,
                         const std::string& fixture)
{
    const auto grads = xcnn_test::torch_optim("grads");
    const auto expected = xcnn_test::torch_optim(fixture);
    double worst = 0;
    for (std::size_t step = 0; step < 20; ++step)
    {
        model.set_gradients(grads, step);
        REQUIRE(opt.step());
        worst = std::max(worst, model.max_rel_diff(expected, step));
    }
    const auto state = xcnn_test::torch_optim(fixture + "_state");
    worst = std::max(worst, xcnn_test::max_rel_state_diff<typename Optimizer::value_type>(
                                {&opt.exp_avg(0), &opt.exp_avg(1), &opt.exp_avg(2)}, state, 0));
    worst = std::max(worst, xcnn_test::max_rel_state_diff<typename Optimizer::value_type>(
                                {&opt.exp_avg_sq(0), &opt.exp_avg_sq(1), &opt.exp_avg_sq(2)}, state, 1));
    CHECK(opt.steps() == 20);
    return worst;
}

/// torch.optim.Adam / AdamW written from their documentation, element by element in long double.
struct reference_adam
{
    long double lr, beta1, beta2, eps, weight_decay;
    bool decoupled;
    std::vector<long double> m, v;
    std::uint64_t t = 0;

    void step(std::vector<long double>& p, const std::vector<long double>& g)
    {
        m.resize(p.size(), 0);
        v.resize(p.size(), 0);
        ++t;
        const long double bc1 = 1 - std::pow(beta1, static_cast<long double>(t));
        const long double bc2 = 1 - std::pow(beta2, static_cast<long double>(t));
        for (std::size_t j = 0; j < p.size(); ++j)
        {
            long double grad = g[j];
            if (decoupled)
            {
                p[j] *= 1 - lr * weight_decay;
            }
            else
            {
                grad += weight_decay * p[j];
            }
            m[j] = beta1 * m[j] + (1 - beta1) * grad;
            v[j] = beta2 * v[j] + (1 - beta2) * grad * grad;
            p[j] -= lr / bc1 * m[j] / (std::sqrt(v[j]) / std::sqrt(bc2) + eps);
        }
    }
};

/// Runs 5 steps of `Optimizer` on one large parameter at `threads` threads and returns its values.
template <class Optimizer>
std::vector<typename Optimizer::value_type> large_run(std::size_t size, std::size_t threads, double weight_decay,
                                                      double* worst_vs_reference)
{
    using T = typename Optimizer::value_type;
    constexpr bool decoupled = std::is_same<Optimizer, xcnn::AdamW<T>>::value;
    const std::size_t saved = xcnn::get_num_threads();
    xcnn::set_num_threads(threads);
    xt::xtensor<T, 1> value(std::array<std::size_t, 1>{size}), grad(std::array<std::size_t, 1>{size});
    std::mt19937 rng(5);
    std::normal_distribution<double> normal(0, 1);
    for (auto& x : value)
    {
        x = static_cast<T>(normal(rng));
    }
    std::vector<long double> ref(value.begin(), value.end());
    reference_adam reference{0.01L,     0.9L, 0.999L, 1e-8L, static_cast<long double>(static_cast<T>(weight_decay)),
                             decoupled, {},   {}};
    Optimizer opt({xcnn::parameter<T>("w", value, grad)}, T(0.01), T(0.9), T(0.999), T(1e-8),
                  static_cast<T>(weight_decay));
    for (int step = 0; step < 5; ++step)
    {
        for (auto& g : grad)
        {
            g = static_cast<T>(normal(rng));
        }
        std::vector<long double> g(grad.begin(), grad.end());
        opt.step();
        reference.step(ref, g);
    }
    double worst = 0;
    for (std::size_t j = 0; j < size; ++j)
    {
        worst = std::max(worst, static_cast<double>(std::abs(static_cast<long double>(value(j)) - ref[j]) /
                                                    std::max<long double>(std::abs(ref[j]), 1e-3L)));
    }
    *worst_vs_reference = worst;
    xcnn::set_num_threads(saved);
    return std::vector<T>(value.begin(), value.end());
}

} // namespace

TEST_CASE("Adam and AdamW match torch.optim in double over 20 steps", "[adam][torch]")
{
    xcnn_test::torch_parameters<double> model;
    SECTION("Adam, lr 0.01, PyTorch's other defaults")
    {
        xcnn::Adam<double> adam(model.parameters(), 0.01);
        CHECK(run_against_torch(adam, model, "adam") < 1e-9);
    }
    SECTION("Adam with an L2 penalty, betas (0.8, 0.99), eps 1e-6")
    {
        xcnn::Adam<double> adam(model.parameters(), 0.02, 0.8, 0.99, 1e-6, 0.1);
        CHECK(run_against_torch(adam, model, "adam_l2") < 1e-9);
    }
    SECTION("AdamW, lr 0.01, default weight decay 1e-2")
    {
        xcnn::AdamW<double> adamw(model.parameters(), 0.01);
        CHECK(adamw.weight_decay() == 1e-2);
        CHECK(run_against_torch(adamw, model, "adamw") < 1e-9);
    }
    SECTION("AdamW without weight decay")
    {
        xcnn::AdamW<double> adamw(model.parameters(), 0.01, 0.9, 0.999, 1e-8, 0.0);
        CHECK(run_against_torch(adamw, model, "adamw_nodecay") < 1e-9);
    }
}

TEST_CASE("Adam and AdamW in float follow torch's double trajectory closely", "[adam][torch]")
{
    xcnn_test::torch_parameters<float> model;
    SECTION("Adam")
    {
        xcnn::Adam<float> adam(model.parameters(), 0.02f, 0.8f, 0.99f, 1e-6f, 0.1f);
        CHECK(run_against_torch(adam, model, "adam_l2") < 1e-4);
    }
    SECTION("AdamW")
    {
        xcnn::AdamW<float> adamw(model.parameters(), 0.01f);
        CHECK(run_against_torch(adamw, model, "adamw") < 1e-4);
    }
}

TEST_CASE("Adam's vector loop and threads: a large tensor matches the reference, at any thread count",
          "[adam][threads]")
{
    // 2^17 + 13 elements: whole vectors, a partial last one, and two threads' shares.
    const std::size_t size = (std::size_t(1) << 17) + 13;
    double worst1 = 1, worst2 = 1;
    SECTION("Adam, double")
    {
        const auto one = large_run<xcnn::Adam<double>>(size, 1, 0.01, &worst1);
        const auto two = large_run<xcnn::Adam<double>>(size, 2, 0.01, &worst2);
        CHECK(one == two);
        CHECK(worst1 < 1e-12);
    }
    SECTION("AdamW, float")
    {
        const auto one = large_run<xcnn::AdamW<float>>(size, 1, 0.05, &worst1);
        const auto two = large_run<xcnn::AdamW<float>>(size, 2, 0.05, &worst2);
        CHECK(one == two);
        CHECK(worst1 < 1e-4);
    }
    SECTION("odd small sizes: every partial vector")
    {
        for (std::size_t n = 1; n < 40; n += 3)
        {
            CAPTURE(n);
            (void)large_run<xcnn::Adam<float>>(n, 1, 0.0, &worst1);
            CHECK(worst1 < 1e-4);
            (void)large_run<xcnn::AdamW<double>>(n, 1, 0.1, &worst1);
            CHECK(worst1 < 1e-12);
        }
    }
}

TEST_CASE("Adam and AdamW: PyTorch's defaults, accessors and setters", "[adam]")
{
    xcnn_test::torch_parameters<float> model;
    xcnn::Adam<float> adam(model.parameters());
    CHECK(adam.name() == "Adam");
    CHECK(adam.lr() == 1e-3f);
    CHECK(adam.beta1() == 0.9f);
    CHECK(adam.beta2() == 0.999f);
    CHECK(adam.eps() == 1e-8f);
    CHECK(adam.weight_decay() == 0.0f);
    CHECK(adam.steps() == 0);
    CHECK(adam.exp_avg(0).empty());
    xcnn::AdamW<float> adamw(model.parameters());
    CHECK(adamw.name() == "AdamW");
    CHECK(adamw.weight_decay() == 1e-2f);
    adam.set_lr(0.5f);
    adam.set_beta1(0.5f);
    adam.set_beta2(0.75f);
    CHECK(adam.lr() == 0.5f);
    CHECK(adam.beta1() == 0.5f);
    CHECK(adam.beta2() == 0.75f);
    static_assert(xcnn::is_optimizer<xcnn::Adam<float>>::value, "Adam satisfies the optimizer contract");
    static_assert(xcnn::is_optimizer<xcnn::AdamW<double>>::value, "AdamW satisfies the optimizer contract");

    // zero_grad zeroes the gradients; a step on zero gradients without decay leaves p alone.
    model.a_grad.fill(1.f);
    adam.zero_grad();
    CHECK(xt::all(xt::equal(model.a_grad, 0.f)));
    const auto a = model.a;
    adam.step();
    CHECK(xcnn_test::max_abs_diff(model.a, a) == 0.0);
}

TEST_CASE("Adam and AdamW refuse invalid hyperparameters, naming the optimizer and the value", "[adam][errors]")
{
    xcnn_test::torch_parameters<double> model;
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    const auto params = model.parameters();
    auto adam = [&](double lr, double b1, double b2, double eps, double wd)
    {
        return error_of([&] { xcnn::Adam<double>(params, lr, b1, b2, eps, wd); });
    };
    auto adamw = [&](double lr, double b1, double b2, double eps, double wd)
    {
        return error_of([&] { xcnn::AdamW<double>(params, lr, b1, b2, eps, wd); });
    };

    CHECK(adam(-0.1, 0.9, 0.999, 1e-8, 0) == "Adam: learning rate -0.1 must be finite and >= 0");
    CHECK(adamw(inf, 0.9, 0.999, 1e-8, 0) == "AdamW: learning rate inf must be finite and >= 0");
    CHECK_THAT(adam(nan, 0.9, 0.999, 1e-8, 0), contains("learning rate nan"));
    CHECK(adam(0.1, 1.0, 0.999, 1e-8, 0) == "Adam: beta1 1 and beta2 0.999 must lie in [0, 1)");
    CHECK(adamw(0.1, -0.1, 0.999, 1e-8, 0) == "AdamW: beta1 -0.1 and beta2 0.999 must lie in [0, 1)");
    CHECK(adam(0.1, 0.9, 1.5, 1e-8, 0) == "Adam: beta1 0.9 and beta2 1.5 must lie in [0, 1)");
    CHECK_THAT(adam(0.1, 0.9, nan, 1e-8, 0), contains("beta2 nan"));
    CHECK(adam(0.1, 0.9, 0.999, -1e-8, 0) == "Adam: eps -1e-08 must be finite and >= 0");
    CHECK(adamw(0.1, 0.9, 0.999, 1e-8, -0.01) == "AdamW: weight_decay -0.01 must be finite and >= 0");
    CHECK_THROWS_AS(xcnn::Adam<double>(params, 0.1, 0.9, 0.999, 1e-8, nan), xcnn::value_error);
    CHECK_NOTHROW(xcnn::Adam<double>(params, 0.0, 0.0, 0.0, 0.0, 0.0));

    xcnn::Adam<double> opt(params);
    CHECK(error_of([&] { opt.set_lr(-1); }) == "Adam: learning rate -1 must be finite and >= 0");
    CHECK(error_of([&] { opt.set_beta1(1); }) == "Adam: beta1 1 must lie in [0, 1)");
    CHECK(error_of([&] { opt.set_beta2(-0.5); }) == "Adam: beta2 -0.5 must lie in [0, 1)");
    CHECK_THROWS_AS(opt.set_beta1(nan), xcnn::value_error);
    CHECK(opt.lr() == 1e-3);
    CHECK(opt.beta1() == 0.9);
    CHECK(opt.beta2() == 0.999);
}

TEST_CASE("Adam's state round trips and continues bit for bit, a state that does not fit is refused", "[adam][state]")
{
    xcnn_test::torch_parameters<double> model;
    const auto grads = xcnn_test::torch_optim("grads");
    xcnn::AdamW<double> adamw(model.parameters(), 0.01, 0.85, 0.995, 1e-7, 0.05);
    CHECK(adamw.state_dict().tensors.empty()); // none before the first step, as in PyTorch
    for (std::size_t step = 0; step < 3; ++step)
    {
        model.set_gradients(grads, step);
        adamw.step();
    }
    const auto state = adamw.state_dict();
    CHECK(state.kind == "AdamW");
    CHECK(state.scalars == std::vector<std::pair<std::string, double>>{
                               {"lr", 0.01}, {"beta1", 0.85}, {"beta2", 0.995}, {"eps", 1e-7}, {"weight_decay", 0.05}});
    CHECK(state.counters == std::vector<std::pair<std::string, std::uint64_t>>{{"steps", 3}, {"skipped_steps", 0}});
    REQUIRE(state.tensors.size() == 6);
    CHECK(state.tensors[0].parameter == "a");
    CHECK(state.tensors[0].name == "exp_avg");
    CHECK(state.tensors[1].name == "exp_avg_sq");
    CHECK(state.tensor("c", "exp_avg_sq")->values == adamw.exp_avg_sq(2));

    // Another optimizer over a copy of the parameters continues identically.
    xcnn_test::torch_parameters<double> copy;
    copy.a = model.a;
    copy.b = model.b;
    copy.c = model.c;
    xcnn::AdamW<double> resumed(copy.parameters());
    resumed.load_state_dict(state);
    CHECK(resumed.lr() == 0.01);
    CHECK(resumed.beta2() == 0.995);
    CHECK(resumed.steps() == 3);
    for (std::size_t step = 3; step < 8; ++step)
    {
        model.set_gradients(grads, step);
        copy.set_gradients(grads, step);
        adamw.step();
        resumed.step();
    }
    CHECK(xcnn_test::max_abs_diff(model.a, copy.a) == 0.0);
    CHECK(xcnn_test::max_abs_diff(model.c, copy.c) == 0.0);
    CHECK(resumed.exp_avg(1) == adamw.exp_avg(1));

    xcnn::AdamW<double> other(copy.parameters());
    auto refused = [&](auto change)
    {
        auto s = state;
        change(s);
        return error_of([&] { other.load_state_dict(s); });
    };
    CHECK(refused([](auto& s) { s.kind = "Adam"; }) == "AdamW: the state is that of a 'Adam' optimizer");
    CHECK(error_of([&] { xcnn::Adam<double>(copy.parameters()).load_state_dict(state); }) ==
          "Adam: the state is that of a 'AdamW' optimizer");
    CHECK(refused([](auto& s) { s.scalars.erase(s.scalars.begin() + 1); }) ==
          "AdamW: the state holds 0 scalars 'beta1', not one");
    CHECK(refused([](auto& s) { s.counters.emplace_back("epochs", 2); }) ==
          "AdamW: the state holds an unknown counter 'epochs'");
    CHECK(refused([](auto& s) { s.tensors.pop_back(); }) ==
          "AdamW: invalid state: 3 steps applied but no exp avg sq of parameter 'c' (the moments exist exactly "
          "once a step was applied)");
    CHECK(refused([](auto& s) { *s.counter("steps") = 0; }) ==
          "AdamW: invalid state: 0 steps applied but an exp avg of parameter 'a' (the moments exist exactly once a "
          "step was applied)");
    CHECK(refused([](auto& s) { s.tensors[2].values.pop_back(); }) ==
          "AdamW: the exp avg of parameter 'b' has 4 elements, the parameter 5 (shape (5,))");
    CHECK(refused([](auto& s) { s.tensors[0].parameter = "z"; }) ==
          "AdamW: the state holds an exp avg of 'z', which is none of the optimizer's 3 parameters");
    CHECK(refused([](auto& s) { s.tensors.push_back(s.tensors[0]); }) ==
          "AdamW: the state holds two exp avgs of parameter 'a'");
    CHECK(refused([](auto& s) { s.tensors[0].name = "momentum_buffer"; }) ==
          "AdamW: the state holds a tensor 'momentum_buffer' of parameter 'a'; AdamW keeps only 'exp_avg' and "
          "'exp_avg_sq'");
    CHECK(refused([](auto& s) { *s.scalar("beta2") = 1; }) ==
          "AdamW: invalid state: beta1 0.85 and beta2 1 must lie in [0, 1)");
    CHECK(refused([](auto& s) { *s.scalar("eps") = -1; }) == "AdamW: invalid state: eps -1 must be finite and >= 0");
    auto short_tensor = state;
    short_tensor.tensors[2].values.pop_back();
    CHECK_THROWS_AS(other.load_state_dict(short_tensor), xcnn::shape_error);
    // Nothing changed by the refusals.
    CHECK(other.steps() == 0);
    CHECK(other.exp_avg(0).empty());
    CHECK(other.lr() == 1e-3);

    // A state before any step: no moments, and the next step starts them at zero.
    xcnn::Adam<double> fresh(copy.parameters());
    auto empty = fresh.state_dict();
    xcnn::Adam<double> loaded(copy.parameters(), 0.5);
    loaded.load_state_dict(empty);
    CHECK(loaded.lr() == 1e-3);
    CHECK(loaded.exp_avg(0).empty());
}

TEST_CASE("Adam refuses or skips a step with non-finite values, changing nothing", "[adam][nonfinite]")
{
    xcnn_test::torch_parameters<float> model;
    const auto grads = xcnn_test::torch_optim("grads");
    xcnn::Adam<float> adam(model.parameters(), 0.01f);
    model.set_gradients(grads, 0);
    adam.step();
    const auto a = model.a;
    const auto c = model.c;
    const auto m = adam.exp_avg(2);
    model.set_gradients(grads, 1);
    model.c_grad(1, 2, 0) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(adam.step(), xcnn::numeric_error);
    CHECK(error_of([&] { adam.step(); }) ==
          "Adam step 2: non-finite gradient in parameter 'c': 1 of 12 elements is not finite, the first at index 10 "
          "(nan) (1 of 3 gradients are affected; the loss or the input may be non-finite); no parameter was changed");
    adam.set_nonfinite_policy(xcnn::nonfinite_policy::skip_step);
    CHECK_FALSE(adam.step());
    CHECK(adam.skipped_steps() == 1);
    CHECK(adam.steps() == 1);
    CHECK_THAT(adam.last_skip_reason(), contains("Adam step 2: non-finite gradient in parameter 'c'"));
    CHECK_THAT(adam.last_skip_reason(), contains("; the step was skipped"));
    CHECK(xcnn_test::max_abs_diff(model.a, a) == 0.0);
    CHECK(xcnn_test::max_abs_diff(model.c, c) == 0.0);
    CHECK(adam.exp_avg(2) == m);
}
