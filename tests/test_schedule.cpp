// Tests of the learning-rate schedules (optim/schedule.hpp): StepLR, CosineAnnealingLR and
// OneCycleLR against torch.optim.lr_scheduler's get_last_lr() (and OneCycleLR's momentum or
// beta1) over a few hundred steps from tests/fixtures/torch_optim (torch_optim.py); class template
// argument deduction; PyTorch's limit on OneCycleLR's steps; invalid settings; the state interface.
#include "catch_compat.hpp"
#include "support/error_of.hpp"
#include "support/torch_optim.hpp"

#include <xcnn/xcnn.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace
{

using xcnn_test::contains;
using xcnn_test::error_of;

/// One scalar parameter, enough for an optimizer to drive.
struct scalar_model
{
    xt::xtensor<double, 1> p = {0.0};
    xt::xtensor<double, 1> g = {1.0};
    std::vector<xcnn::parameter<double>> parameters() { return {xcnn::parameter<double>("p", p, g)}; }
};

/// Steps `schedule` `steps` times (each after an optimizer step) and returns the largest relative
/// difference of its rate (and of the optimizer's rate, and of `momentum()` when given) from the
/// fixture's.
template <class Optimizer, class Schedule, class Momentum>
double compare(Optimizer& opt, Schedule& schedule, const std::string& fixture, std::size_t steps, Momentum momentum)
{
    const auto lrs = xcnn_test::torch_optim(fixture + "_lr");
    REQUIRE(lrs.size() == steps + 1);
    xt::xarray<double> momenta;
    constexpr bool with_momentum = !std::is_same<Momentum, std::nullptr_t>::value;
    if constexpr (with_momentum)
    {
        momenta = xcnn_test::torch_optim(fixture + "_momentum");
    }
    double worst = 0;
    for (std::size_t t = 0; t <= steps; ++t)
    {
        if (t > 0)
        {
            opt.step();
            schedule.step();
        }
        CHECK(schedule.steps() == t);
        worst = std::max(worst, xcnn_test::rel_diff(schedule.last_lr(), lrs(t)));
        // A linear anneal's last rate falls below 0 in PyTorch: the optimizer gets 0.
        worst = std::max(worst, xcnn_test::rel_diff(opt.lr(), std::max(lrs(t), 0.0)));
        if constexpr (with_momentum)
        {
            worst = std::max(worst, xcnn_test::rel_diff(momentum(), momenta(t)));
            worst = std::max(worst, xcnn_test::rel_diff(schedule.last_momentum(), momenta(t)));
        }
    }
    return worst;
}

/// The rate of OneCycleLR(max_lr 1, 10 steps, pct_start 0.3, linear) at step 10, as PyTorch
/// computes it: phase 2 runs from 1 to 4e-6 over steps 2 to 9, and step 10 is 8/7 of it.
double detail_last_linear_lr()
{
    const double min_lr = 1.0 / 25 / 1e4;
    const volatile double product = (min_lr - 1.0) * ((10 - 2.0) / (9 - 2.0));
    return product + 1.0;
}

/// An optimizer with a learning rate and nothing else: no momentum to cycle.
struct plain_optimizer
{
    using value_type = double;
    double rate = 0.1;
    std::string name() const { return "Plain"; }
    double lr() const { return rate; }
    void set_lr(double lr) { rate = lr; }
};

} // namespace

TEST_CASE("StepLR matches torch over hundreds of steps", "[schedule][torch]")
{
    scalar_model model;
    SECTION("SGD, step_size 30, gamma 0.5, 300 steps")
    {
        xcnn::SGD<double> sgd(model.parameters(), 0.1);
        xcnn::StepLR schedule(sgd, 30, 0.5);
        static_assert(std::is_same<decltype(schedule), xcnn::StepLR<xcnn::SGD<double>>>::value,
                      "the optimizer type is deduced");
        CHECK(schedule.name() == "StepLR");
        CHECK(schedule.base_lr() == 0.1);
        CHECK(compare(sgd, schedule, "step", 300, nullptr) < 1e-9);
        CHECK(schedule.last_lr() == 0.1 * std::pow(0.5, 10)); // exact powers of two
    }
    SECTION("Adam, step_size 7, PyTorch's default gamma 0.1")
    {
        xcnn::Adam<double> adam(model.parameters(), 0.01);
        xcnn::StepLR schedule(adam, 7);
        CHECK(schedule.gamma() == 0.1);
        CHECK(compare(adam, schedule, "step_default_gamma", 40, nullptr) < 1e-9);
    }
}

TEST_CASE("CosineAnnealingLR matches torch's recursive formula, past t_max too", "[schedule][torch]")
{
    scalar_model model;
    SECTION("SGD, t_max 50, eta_min 0.001: six half periods")
    {
        xcnn::SGD<double> sgd(model.parameters(), 0.1, 0.9);
        xcnn::CosineAnnealingLR schedule(sgd, 50, 0.001);
        CHECK(compare(sgd, schedule, "cosine", 300, nullptr) < 1e-9);
    }
    SECTION("Adam, t_max 37, eta_min 0: the rate touches 0 at every odd multiple of t_max")
    {
        xcnn::Adam<double> adam(model.parameters(), 0.003);
        xcnn::CosineAnnealingLR schedule(adam, 37);
        CHECK(compare(adam, schedule, "cosine_eta0", 300, nullptr) < 1e-9);
    }
    SECTION("the closed form agrees within rounding")
    {
        xcnn::SGD<double> sgd(model.parameters(), 0.1);
        xcnn::CosineAnnealingLR schedule(sgd, 20, 0.01);
        for (int t = 1; t <= 100; ++t)
        {
            schedule.step();
            const double closed = 0.01 + (0.1 - 0.01) * (1 + std::cos(3.141592653589793 * t / 20)) / 2;
            CHECK(std::abs(schedule.last_lr() - closed) < 1e-14);
        }
    }
}

TEST_CASE("OneCycleLR matches torch's rate and momentum, then refuses a step too many", "[schedule][torch]")
{
    scalar_model model;
    SECTION("SGD with momentum: 300 steps, PyTorch's defaults")
    {
        xcnn::SGD<double> sgd(model.parameters(), 0.1, 0.9);
        xcnn::OneCycleLR schedule(sgd, 0.5, 300);
        CHECK(schedule.name() == "OneCycleLR");
        CHECK(schedule.pct_start() == 0.3);
        CHECK(compare(sgd, schedule, "onecycle_sgd", 300, [&] { return sgd.momentum(); }) < 1e-9);
        const double lr = sgd.lr(), momentum = sgd.momentum();
        CHECK_THROWS_AS(schedule.step(), xcnn::value_error);
        CHECK(error_of([&] { schedule.step(); }) ==
              "OneCycleLR: Tried to step 302 times. The specified number of total steps is 300");
        CHECK(schedule.steps() == 300);
        CHECK(sgd.lr() == lr);
        CHECK(sgd.momentum() == momentum);
    }
    SECTION("SGD built without momentum: PyTorch cycles its momentum all the same")
    {
        xcnn::SGD<double> sgd(model.parameters(), 0.1);
        xcnn::OneCycleLR schedule(sgd, 0.2, 100);
        CHECK(sgd.momentum() == 0.95); // from the constructor's step 0
        CHECK(compare(sgd, schedule, "onecycle_sgd_no_momentum", 100, [&] { return sgd.momentum(); }) < 1e-9);
        CHECK_FALSE(sgd.momentum_buffer(0).empty());
    }
    SECTION("Adam, three phases: beta1 cycles")
    {
        xcnn::Adam<double> adam(model.parameters(), 0.001);
        xcnn::one_cycle_options options;
        options.three_phase = true;
        xcnn::OneCycleLR schedule(adam, 0.01, 250, 0.25, options);
        CHECK(adam.beta2() == 0.999);
        CHECK(compare(adam, schedule, "onecycle_adam_three_phase", 250, [&] { return adam.beta1(); }) < 1e-9);
    }
    SECTION("AdamW, linear anneal and other factors and momenta")
    {
        xcnn::AdamW<double> adamw(model.parameters(), 0.001);
        xcnn::one_cycle_options options;
        options.anneal = xcnn::anneal_strategy::linear;
        options.div_factor = 10;
        options.final_div_factor = 100;
        options.base_momentum = 0.8;
        options.max_momentum = 0.9;
        xcnn::OneCycleLR schedule(adamw, 0.02, 200, 0.4, options);
        CHECK(compare(adamw, schedule, "onecycle_adamw_linear", 200, [&] { return adamw.beta1(); }) < 1e-9);
    }
    SECTION("without cycle_momentum the momentum is left alone")
    {
        xcnn::SGD<double> sgd(model.parameters(), 0.1, 0.5);
        xcnn::one_cycle_options options;
        options.cycle_momentum = false;
        xcnn::OneCycleLR schedule(sgd, 0.5, 10, 0.3, options);
        schedule.step();
        CHECK(sgd.momentum() == 0.5);
        CHECK(std::isnan(schedule.last_momentum()));
    }
}

TEST_CASE("schedules on a float optimizer: the optimizer gets the rate rounded, the schedule keeps double",
          "[schedule]")
{
    xt::xtensor<float, 1> p = {0.0f}, g = {1.0f};
    xcnn::SGD<float> sgd({xcnn::parameter<float>("p", p, g)}, 0.1f, 0.9f);
    xcnn::CosineAnnealingLR schedule(sgd, 7, 1e-3);
    CHECK(schedule.base_lr() == static_cast<double>(0.1f));
    for (int t = 0; t < 30; ++t)
    {
        schedule.step();
        CHECK(sgd.lr() == static_cast<float>(schedule.last_lr()));
    }
}

TEST_CASE("StepLR and CosineAnnealingLR follow a rate changed by hand, as PyTorch's do", "[schedule]")
{
    scalar_model model;
    xcnn::SGD<double> sgd(model.parameters(), 0.1);
    xcnn::StepLR schedule(sgd, 3, 0.5);
    schedule.step();
    sgd.set_lr(0.8); // PyTorch: optimizer.param_groups[0]['lr'] = 0.8
    schedule.step();
    CHECK(schedule.last_lr() == 0.8);
    schedule.step();
    CHECK(schedule.last_lr() == 0.4);
    CHECK(sgd.lr() == 0.4);
}

TEST_CASE("schedules refuse invalid settings with value_error, and OneCycleLR a missing momentum", "[schedule][errors]")
{
    scalar_model model;
    xcnn::SGD<double> sgd(model.parameters(), 0.1, 0.9);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    CHECK(error_of([&] { xcnn::StepLR(sgd, 0, 0.5); }) ==
          "StepLR: step_size 0 must be >= 1 and gamma 0.5 finite and >= 0");
    CHECK_THAT(error_of([&] { xcnn::StepLR(sgd, 3, -1.0); }), contains("gamma -1"));
    CHECK_THAT(error_of([&] { xcnn::StepLR(sgd, 3, nan); }), contains("gamma nan"));
    CHECK(error_of([&] { xcnn::CosineAnnealingLR(sgd, 0); }) ==
          "CosineAnnealingLR: t_max 0 must be >= 1 (and <= 2^62) and eta_min 0 finite and >= 0");
    CHECK_THAT(error_of([&] { xcnn::CosineAnnealingLR(sgd, 10, -0.1); }), contains("eta_min -0.1"));
    CHECK(error_of([&] { xcnn::OneCycleLR(sgd, 0.1, 0); }) ==
          "OneCycleLR: Expected positive integer total_steps, but got 0");
    CHECK(error_of([&] { xcnn::OneCycleLR(sgd, 0.1, 100, 1.5); }) ==
          "OneCycleLR: Expected float between 0 and 1 pct_start, but got 1.5");
    CHECK_THAT(error_of([&] { xcnn::OneCycleLR(sgd, -0.1, 100); }), contains("OneCycleLR: max_lr -0.1 must be"));
    xcnn::one_cycle_options zero_div;
    zero_div.div_factor = 0;
    CHECK_THAT(error_of([&] { xcnn::OneCycleLR(sgd, 0.1, 100, 0.3, zero_div); }), contains("div_factor 0"));
    // pct_start * total_steps == 1: PyTorch divides by zero at step 0; pct_start 1: at the last.
    CHECK(error_of([&] { xcnn::OneCycleLR(sgd, 0.1, 10, 0.1); }) ==
          "OneCycleLR: pct_start 0.1 of total_steps 10 leaves the first phase 0 steps long (PyTorch divides by zero "
          "there)");
    CHECK_THAT(error_of([&] { xcnn::OneCycleLR(sgd, 0.1, 10, 1.0); }), contains("leaves the last phase 0 steps"));
    xcnn::one_cycle_options negative_momentum;
    negative_momentum.base_momentum = -0.5;
    CHECK_THAT(error_of([&] { xcnn::OneCycleLR(sgd, 0.1, 100, 0.3, negative_momentum); }),
               contains("base_momentum -0.5 and max_momentum 0.95 must be finite and >= 0"));
    // Adam refuses a beta1 of 1: the schedule's constructor changes nothing then.
    xcnn::Adam<double> adam(model.parameters(), 0.001);
    xcnn::one_cycle_options beta_one;
    beta_one.max_momentum = 1.0;
    CHECK(error_of([&] { xcnn::OneCycleLR(adam, 0.1, 100, 0.3, beta_one); }) == "Adam: beta1 1 must lie in [0, 1)");
    CHECK(adam.lr() == 0.001);
    CHECK(adam.beta1() == 0.9);

    plain_optimizer plain;
    CHECK(error_of([&] { xcnn::OneCycleLR(plain, 0.1, 100); }) ==
          "OneCycleLR: optimizer must support momentum with `cycle_momentum` option enabled: Plain has neither a "
          "momentum nor a beta1; set cycle_momentum to false");
    xcnn::one_cycle_options no_cycle;
    no_cycle.cycle_momentum = false;
    xcnn::OneCycleLR schedule(plain, 0.1, 100, 0.3, no_cycle);
    CHECK(plain.rate == schedule.last_lr());
    CHECK(std::abs(plain.rate - 0.004) < 1e-15);
    // A linear anneal overshoots below 0 at the last step, as in PyTorch: last_lr() says so, the
    // optimizer (which refuses a negative rate) gets 0.
    xcnn::one_cycle_options linear = no_cycle;
    linear.anneal = xcnn::anneal_strategy::linear;
    xcnn::SGD<double> overshoot(model.parameters(), 0.1);
    xcnn::OneCycleLR steep(overshoot, 1.0, 10, 0.3, linear);
    for (int t = 0; t < 10; ++t)
    {
        steep.step();
    }
    CHECK(steep.last_lr() == detail_last_linear_lr());
    CHECK(steep.last_lr() < 0);
    CHECK(overshoot.lr() == 0.0);
    // A momentum the optimizer refuses at a step: value_error, nothing changed.
    xcnn::Adam<double> adam_near_one(model.parameters(), 0.001);
    xcnn::one_cycle_options near_one;
    near_one.anneal = xcnn::anneal_strategy::linear;
    near_one.max_momentum = 0.99;
    near_one.base_momentum = 0.5;
    xcnn::OneCycleLR beyond(adam_near_one, 0.1, 10, 0.3, near_one);
    for (int t = 0; t < 9; ++t)
    {
        beyond.step();
    }
    const double lr_before = adam_near_one.lr(), beta1_before = adam_near_one.beta1();
    CHECK_THAT(error_of([&] { beyond.step(); }), contains("Adam: beta1 1.0"));
    CHECK(adam_near_one.lr() == lr_before);
    CHECK(adam_near_one.beta1() == beta1_before);
    CHECK(beyond.steps() == 9);
}

TEST_CASE("schedule states round trip and continue identically, a state that does not fit is refused",
          "[schedule][state]")
{
    scalar_model model;
    xcnn::Adam<double> adam(model.parameters(), 0.001);
    xcnn::one_cycle_options options;
    options.three_phase = true;
    xcnn::OneCycleLR schedule(adam, 0.01, 120, 0.25, options);
    for (int t = 0; t < 37; ++t)
    {
        schedule.step();
    }
    const auto state = schedule.state_dict();
    CHECK(state.kind == "OneCycleLR");
    CHECK(*state.counter("steps") == 37);
    CHECK(*state.counter("three_phase") == 1);
    CHECK(*state.scalar("last_lr") == schedule.last_lr());

    scalar_model other_model;
    xcnn::Adam<double> other(other_model.parameters(), 0.001);
    xcnn::OneCycleLR resumed(other, 0.5, 10);
    resumed.load_state_dict(state);
    CHECK(resumed.steps() == 37);
    CHECK(resumed.total_steps() == 120);
    CHECK(resumed.options().three_phase);
    CHECK(resumed.last_momentum() == schedule.last_momentum());
    for (int t = 37; t < 120; ++t)
    {
        schedule.step();
        resumed.step();
        CHECK(resumed.last_lr() == schedule.last_lr());
        CHECK(other.beta1() == adam.beta1());
    }

    auto refused = [&](auto change)
    {
        auto s = state;
        change(s);
        return error_of([&] { resumed.load_state_dict(s); });
    };
    CHECK(refused([](auto& s) { s.kind = "StepLR"; }) == "OneCycleLR: the state is that of a 'StepLR' schedule");
    CHECK(refused([](auto& s) { s.scalars.pop_back(); }) ==
          "OneCycleLR: the state holds 0 scalars 'max_momentum', not one");
    CHECK(refused([](auto& s) { *s.counter("three_phase") = 2; }) ==
          "OneCycleLR: invalid state: three_phase is 2, not 0 or 1");
    CHECK(refused([](auto& s) { *s.counter("steps") = 121; }) == "OneCycleLR: invalid state: 121 steps of 120");
    CHECK(refused([](auto& s) { *s.scalar("last_lr") = -1; }) ==
          "OneCycleLR: invalid state: last_lr -1 must be finite and >= 0");
    CHECK(resumed.steps() == 120);

    xcnn::SGD<double> sgd(model.parameters(), 0.1);
    xcnn::StepLR step(sgd, 4, 0.25);
    step.step();
    xcnn::StepLR step_back(sgd, 1);
    step_back.load_state_dict(step.state_dict());
    CHECK(step_back.step_size() == 4);
    CHECK(step_back.gamma() == 0.25);
    CHECK(step_back.steps() == 1);
    auto bad_step = step.state_dict();
    *bad_step.counter("step_size") = 0;
    CHECK(error_of([&] { step_back.load_state_dict(bad_step); }) ==
          "StepLR: invalid state: step_size 0 must be >= 1 and gamma 0.25 finite and >= 0");
    xcnn::CosineAnnealingLR cosine(sgd, 9, 0.01);
    cosine.step();
    xcnn::CosineAnnealingLR cosine_back(sgd, 1);
    cosine_back.load_state_dict(cosine.state_dict());
    CHECK(cosine_back.t_max() == 9);
    CHECK(cosine_back.eta_min() == 0.01);
    CHECK(error_of([&] { cosine_back.load_state_dict(step.state_dict()); }) ==
          "CosineAnnealingLR: the state is that of a 'StepLR' schedule");
    static_assert(xcnn::is_schedule<xcnn::StepLR<xcnn::SGD<float>>>::value, "StepLR satisfies the contract");
    static_assert(xcnn::is_schedule<xcnn::CosineAnnealingLR<xcnn::AdamW<float>>>::value, "so does the cosine");
    static_assert(xcnn::is_schedule<xcnn::OneCycleLR<xcnn::Adam<double>>>::value, "and OneCycleLR");
    static_assert(!xcnn::is_schedule<xcnn::SGD<float>>::value, "an optimizer is no schedule");
}
