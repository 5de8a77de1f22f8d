/// @file
/// Learning-rate schedules, PyTorch's (torch.optim.lr_scheduler of torch 1.13): `StepLR`,
/// `CosineAnnealingLR` and `OneCycleLR` (which also cycles SGD's momentum or Adam's beta1).
///
/// A schedule drives one optimizer: it sets the optimizer's learning rate when it is built (to
/// the value of step 0) and at every `step()`, which a training loop calls after each optimizer
/// step, as in PyTorch. The class template argument is deduced from the optimizer:
///
///     xcnn::SGD<float> sgd(net.parameters(), 0.1f, 0.9f);
///     xcnn::StepLR schedule(sgd, 30, 0.5);
///     for (...) { ...; sgd.step(); schedule.step(); }
///
/// Rates are computed in double with PyTorch's formulas in PyTorch's order (the recursive forms
/// of `StepLR` and `CosineAnnealingLR` included), so `last_lr()` equals PyTorch's
/// `get_last_lr()[0]` to the last bits; the optimizer receives them rounded to its scalar type.
/// Schedules follow the schedule contract of optim/optimizer.hpp: checkpoints save and restore
/// them (`save_checkpoint(path, net, optimizer, schedule, progress)`).
#ifndef XCNN_OPTIM_SCHEDULE_HPP
#define XCNN_OPTIM_SCHEDULE_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "optimizer.hpp"

namespace xcnn
{
namespace detail
{

inline constexpr double schedule_pi = 3.14159265358979323846; // Python's math.pi

/// `x` rounded to a double as computed: GCC fuses a product and a following addition into one
/// FMA by default in C++ (-ffp-contract=fast), which Python never does; a product passed through
/// this cannot be fused, so the schedules compute PyTorch's values to the bit (and decide its
/// branches, such as a phase of length 0, as it does).
inline double rounded(double x) noexcept
{
    volatile double stored = x;
    return stored;
}

/// Whether optimizer `O` has Adam's `beta1()` / `set_beta1()` (PyTorch: 'betas' in defaults).
template <class O, class = void>
struct has_beta1 : std::false_type
{
};
template <class O>
struct has_beta1<O, std::void_t<decltype(std::declval<O&>().set_beta1(std::declval<typename O::value_type>())),
                                decltype(std::declval<const O&>().beta1())>> : std::true_type
{
};

/// Whether optimizer `O` has SGD's `momentum()` / `set_momentum()`.
template <class O, class = void>
struct has_momentum : std::false_type
{
};
template <class O>
struct has_momentum<O, std::void_t<decltype(std::declval<O&>().set_momentum(std::declval<typename O::value_type>())),
                                   decltype(std::declval<const O&>().momentum())>> : std::true_type
{
};

} // namespace detail

/// What the schedules share: the optimizer they drive, their step count and the last rate.
template <class Optimizer>
class lr_schedule
{
public:
    /// The optimizer type this schedule drives.
    using optimizer_type = Optimizer;

    /// The optimizer this schedule drives.
    const Optimizer& optimizer() const noexcept { return *m_optimizer; }
    /// The learning rate set by the last `step()` (or the constructor), in double: PyTorch's
    /// `get_last_lr()[0]`.
    double last_lr() const noexcept { return m_last_lr; }
    /// How many times `step()` was called: PyTorch's `last_epoch`.
    std::uint64_t steps() const noexcept { return m_steps; }

protected:
    /// Drives `optimizer`, starting from its current learning rate.
    explicit lr_schedule(Optimizer& optimizer) : m_optimizer(&optimizer), m_last_lr(static_cast<double>(optimizer.lr()))
    {
    }

    /// The rate the optimizer runs at, for the recursive schedules (PyTorch's `group['lr']`): the
    /// last rate in double while the optimizer still has it, the optimizer's own if someone else
    /// changed it since (as PyTorch's chainable schedules follow such a change).
    double current_lr() const
    {
        const auto lr = m_optimizer->lr();
        return lr == static_cast<typename Optimizer::value_type>(m_last_lr) ? m_last_lr : static_cast<double>(lr);
    }

    /// Checks the kind and the names of `state` (the schedule contract).
    /// @throws value_error naming `kind`.
    static void check_names(const std::string& kind, const schedule_state& state,
                            const std::vector<std::string>& scalars, const std::vector<std::string>& counters)
    {
        if (state.kind != kind)
        {
            throw value_error(detail::concat(kind, ": the state is that of a '", state.kind, "' schedule"));
        }
        detail::check_state_names(kind, state.scalars, scalars, "scalar");
        detail::check_state_names(kind, state.counters, counters, "counter");
        const double last_lr = *state.scalar("last_lr");
        if (!(last_lr >= 0) || !std::isfinite(last_lr))
        {
            throw value_error(detail::concat(kind, ": invalid state: last_lr ", last_lr, " must be finite and >= 0"));
        }
    }

    /// The optimizer (to set its rate).
    Optimizer* m_optimizer;
    /// `steps()`.
    std::uint64_t m_steps = 0;
    /// `last_lr()`.
    double m_last_lr;
};

/// Multiplies the learning rate by `gamma` every `step_size` steps (torch.optim.lr_scheduler.StepLR):
/// after step t the rate is the previous one, times `gamma` when t is a multiple of `step_size`.
template <class Optimizer>
class StepLR : public lr_schedule<Optimizer>
{
public:
    /// Drives `optimizer` from its current learning rate.
    /// @throws value_error if `step_size` is 0 or `gamma` is negative or not finite.
    StepLR(Optimizer& optimizer, std::uint64_t step_size, double gamma = 0.1)
        : lr_schedule<Optimizer>(optimizer), m_step_size(step_size), m_gamma(gamma),
          m_base_lr(static_cast<double>(optimizer.lr()))
    {
        check(step_size, gamma, "StepLR: ");
    }

    /// The schedule's kind, "StepLR" (a checkpoint's `xcnn.schedule`).
    std::string name() const { return "StepLR"; }
    /// Steps between two decays.
    std::uint64_t step_size() const noexcept { return m_step_size; }
    /// The decay factor.
    double gamma() const noexcept { return m_gamma; }
    /// The optimizer's rate when the schedule was built (PyTorch's `base_lrs[0]`).
    double base_lr() const noexcept { return m_base_lr; }

    /// Sets the optimizer's learning rate for the next step; call after each optimizer step.
    /// @throws value_error if the optimizer refuses the rate (nothing changes then).
    void step()
    {
        const std::uint64_t t = this->m_steps + 1;
        const double previous = this->current_lr();
        const double lr = t % m_step_size != 0 ? previous : previous * m_gamma;
        this->m_optimizer->set_lr(static_cast<typename Optimizer::value_type>(lr));
        this->m_steps = t;
        this->m_last_lr = lr;
    }

    /// The schedule's state: scalars "base_lr", "last_lr", "gamma"; counters "steps", "step_size".
    schedule_state state_dict() const
    {
        return {name(),
                {{"base_lr", m_base_lr}, {"last_lr", this->m_last_lr}, {"gamma", m_gamma}},
                {{"steps", this->m_steps}, {"step_size", m_step_size}}};
    }
    /// Throws what `load_state_dict(state)` would throw, changing nothing.
    void check_state_dict(const schedule_state& state) const
    {
        this->check_names(name(), state, {"base_lr", "last_lr", "gamma"}, {"steps", "step_size"});
        check(*state.counter("step_size"), *state.scalar("gamma"), "StepLR: invalid state: ");
    }
    /// Restores a state from `state_dict()` (the optimizer's rate is the optimizer's state).
    /// @throws value_error if `state` is of another kind, lacks or adds a value or holds an
    /// invalid one; nothing changes then.
    void load_state_dict(const schedule_state& state)
    {
        check_state_dict(state);
        m_base_lr = *state.scalar("base_lr");
        m_gamma = *state.scalar("gamma");
        m_step_size = *state.counter("step_size");
        this->m_last_lr = *state.scalar("last_lr");
        this->m_steps = *state.counter("steps");
    }

private:
    static void check(std::uint64_t step_size, double gamma, const char* where)
    {
        if (step_size == 0 || !(gamma >= 0) || !std::isfinite(gamma))
        {
            throw value_error(
                detail::concat(where, "step_size ", step_size, " must be >= 1 and gamma ", gamma, " finite and >= 0"));
        }
    }

    std::uint64_t m_step_size;
    double m_gamma;
    double m_base_lr;
};

/// Anneals the learning rate from its initial value to `eta_min` along a cosine over `t_max`
/// steps (torch.optim.lr_scheduler.CosineAnnealingLR): lr(t) = eta_min + (base - eta_min) *
/// (1 + cos(pi * t / t_max)) / 2, computed with PyTorch's recursive formula (so it follows a
/// rate changed by someone else, as PyTorch does); past `t_max` the rate rises again along the
/// same periodic curve, as in PyTorch.
template <class Optimizer>
class CosineAnnealingLR : public lr_schedule<Optimizer>
{
public:
    /// Drives `optimizer` from its current learning rate (the curve's maximum).
    /// @throws value_error if `t_max` is 0 (or above 2^62) or `eta_min` is negative or not finite.
    CosineAnnealingLR(Optimizer& optimizer, std::uint64_t t_max, double eta_min = 0)
        : lr_schedule<Optimizer>(optimizer), m_t_max(t_max), m_eta_min(eta_min),
          m_base_lr(static_cast<double>(optimizer.lr()))
    {
        check(t_max, eta_min, "CosineAnnealingLR: ");
    }

    /// The schedule's kind, "CosineAnnealingLR" (a checkpoint's `xcnn.schedule`).
    std::string name() const { return "CosineAnnealingLR"; }
    /// Steps of a half period.
    std::uint64_t t_max() const noexcept { return m_t_max; }
    /// The minimum rate.
    double eta_min() const noexcept { return m_eta_min; }
    /// The optimizer's rate when the schedule was built (PyTorch's `base_lrs[0]`).
    double base_lr() const noexcept { return m_base_lr; }

    /// Sets the optimizer's learning rate for the next step; call after each optimizer step.
    /// @throws value_error if the optimizer refuses the rate (nothing changes then).
    void step()
    {
        using detail::schedule_pi;
        const std::uint64_t t = this->m_steps + 1;
        const double e = static_cast<double>(t), period = static_cast<double>(m_t_max);
        const double previous = this->current_lr();
        double lr = 0;
        // PyTorch's get_lr: (last_epoch - 1 - T_max) % (2 * T_max) == 0 marks the step after a
        // minimum, where the recursion would divide by 1 + cos(pi) = 0.
        const auto offset = static_cast<std::int64_t>(t) - 1 - static_cast<std::int64_t>(m_t_max);
        if (offset % (2 * static_cast<std::int64_t>(m_t_max)) == 0)
        {
            lr = previous + detail::rounded((m_base_lr - m_eta_min) * (1 - std::cos(schedule_pi / period)) / 2);
        }
        else
        {
            lr = detail::rounded((1 + std::cos(schedule_pi * e / period)) /
                                 (1 + std::cos(schedule_pi * (e - 1) / period)) * (previous - m_eta_min)) +
                 m_eta_min;
        }
        this->m_optimizer->set_lr(static_cast<typename Optimizer::value_type>(lr));
        this->m_steps = t;
        this->m_last_lr = lr;
    }

    /// The schedule's state: scalars "base_lr", "last_lr", "eta_min"; counters "steps", "t_max".
    schedule_state state_dict() const
    {
        return {name(),
                {{"base_lr", m_base_lr}, {"last_lr", this->m_last_lr}, {"eta_min", m_eta_min}},
                {{"steps", this->m_steps}, {"t_max", m_t_max}}};
    }
    /// Throws what `load_state_dict(state)` would throw, changing nothing.
    void check_state_dict(const schedule_state& state) const
    {
        this->check_names(name(), state, {"base_lr", "last_lr", "eta_min"}, {"steps", "t_max"});
        check(*state.counter("t_max"), *state.scalar("eta_min"), "CosineAnnealingLR: invalid state: ");
    }
    /// Restores a state from `state_dict()` (the optimizer's rate is the optimizer's state).
    /// @throws value_error if `state` is of another kind, lacks or adds a value or holds an
    /// invalid one; nothing changes then.
    void load_state_dict(const schedule_state& state)
    {
        check_state_dict(state);
        m_base_lr = *state.scalar("base_lr");
        m_eta_min = *state.scalar("eta_min");
        m_t_max = *state.counter("t_max");
        this->m_last_lr = *state.scalar("last_lr");
        this->m_steps = *state.counter("steps");
    }

private:
    static void check(std::uint64_t t_max, double eta_min, const char* where)
    {
        if (t_max == 0 || t_max > (std::uint64_t(1) << 62) || !(eta_min >= 0) || !std::isfinite(eta_min))
        {
            throw value_error(detail::concat(where, "t_max ", t_max, " must be >= 1 (and <= 2^62) and eta_min ",
                                             eta_min, " finite and >= 0"));
        }
    }

    std::uint64_t m_t_max;
    double m_eta_min;
    double m_base_lr;
};

/// How `OneCycleLR` goes from one value to the next within a phase.
enum class anneal_strategy
{
    cos,   ///< along a half cosine (PyTorch's default, 'cos')
    linear ///< along a straight line ('linear')
};

/// The settings of `OneCycleLR` besides the peak rate, the length and `pct_start`, with
/// PyTorch's defaults.
struct one_cycle_options
{
    anneal_strategy anneal = anneal_strategy::cos; ///< PyTorch's `anneal_strategy`
    bool cycle_momentum = true;                    ///< cycle SGD's momentum or Adam's beta1 inversely to the rate
    double base_momentum = 0.85;                   ///< the momentum at the peak rate
    double max_momentum = 0.95;                    ///< the momentum at the start and the end
    double div_factor = 25;                        ///< the initial rate is max_lr / div_factor
    double final_div_factor = 1e4;                 ///< the final rate is the initial one / final_div_factor
    bool three_phase = false;                      ///< PyTorch's `three_phase`: back to the initial rate first
};

/// The 1cycle policy (torch.optim.lr_scheduler.OneCycleLR): the rate rises from max_lr /
/// div_factor to `max_lr` over the first `pct_start` of `total_steps`, then falls to the initial
/// rate / final_div_factor, while the momentum (SGD's `momentum`, Adam's and AdamW's `beta1`)
/// goes the other way between `max_momentum` and `base_momentum`. As in PyTorch, building it sets
/// the rate (and momentum) of step 0, and `step()` may be called exactly `total_steps` times;
/// PyTorch cycles the momentum of an SGD built without momentum too (its 'momentum' default
/// exists), and so does this. For an optimizer with neither momentum nor beta1, set
/// `cycle_momentum` to false.
template <class Optimizer>
class OneCycleLR : public lr_schedule<Optimizer>
{
public:
    /// Drives `optimizer` (its current rate is not used) and sets the rate and momentum of step 0.
    /// @throws value_error if `max_lr` or a factor or momentum is negative or not finite, a
    /// factor is 0, `total_steps` is 0, `pct_start` lies outside [0, 1], a phase that would be
    /// reached is 0 steps long (PyTorch divides by zero there), the optimizer refuses the
    /// momentum, or `cycle_momentum` is set for an optimizer without momentum or beta1 (PyTorch:
    /// "optimizer must support momentum"); the optimizer is unchanged then.
    OneCycleLR(Optimizer& optimizer, double max_lr, std::uint64_t total_steps, double pct_start = 0.3,
               const one_cycle_options& options = {})
        : lr_schedule<Optimizer>(optimizer), m_max_lr(max_lr), m_total_steps(total_steps), m_pct_start(pct_start),
          m_options(options)
    {
        check(max_lr, total_steps, pct_start, options, "OneCycleLR: ");
        const auto [lr, momentum] = value_at(0);
        apply(lr, momentum);
        this->m_last_lr = lr;
        m_last_momentum = momentum;
    }

    /// The schedule's kind, "OneCycleLR" (a checkpoint's `xcnn.schedule`).
    std::string name() const { return "OneCycleLR"; }
    /// The peak rate.
    double max_lr() const noexcept { return m_max_lr; }
    /// The number of `step()` calls the schedule allows.
    std::uint64_t total_steps() const noexcept { return m_total_steps; }
    /// The share of the steps spent raising the rate.
    double pct_start() const noexcept { return m_pct_start; }
    /// The other settings.
    const one_cycle_options& options() const noexcept { return m_options; }
    /// The momentum (or beta1) set by the last `step()` or the constructor; NaN without
    /// `cycle_momentum`.
    double last_momentum() const noexcept { return m_last_momentum; }

    /// Sets the optimizer's learning rate (and momentum) for the next step; call after each
    /// optimizer step.
    /// With a linear anneal the last step's rate can fall below 0 (PyTorch extrapolates the last
    /// phase one step past its end): `last_lr()` is that value, the optimizer gets 0.
    /// @throws value_error past `total_steps` calls, with PyTorch's message ("Tried to step 1002
    /// times. The specified number of total steps is 1000", counting the constructor's step as
    /// PyTorch does), or if the optimizer refuses a momentum (beta1 1 or more); nothing changes
    /// then.
    void step()
    {
        const std::uint64_t t = this->m_steps + 1;
        if (t > m_total_steps)
        {
            throw value_error(detail::concat("OneCycleLR: Tried to step ", t + 1,
                                             " times. The specified number of total steps is ", m_total_steps));
        }
        const auto [lr, momentum] = value_at(t);
        apply(lr, momentum);
        this->m_steps = t;
        this->m_last_lr = lr;
        m_last_momentum = momentum;
    }

    /// The schedule's state: scalars "last_lr", "max_lr", "pct_start", "div_factor",
    /// "final_div_factor", "base_momentum", "max_momentum"; counters "steps", "total_steps",
    /// "three_phase" (0 or 1), "cycle_momentum" (0 or 1), "anneal_strategy" (0 cos, 1 linear).
    schedule_state state_dict() const
    {
        return {name(),
                {{"last_lr", this->m_last_lr},
                 {"max_lr", m_max_lr},
                 {"pct_start", m_pct_start},
                 {"div_factor", m_options.div_factor},
                 {"final_div_factor", m_options.final_div_factor},
                 {"base_momentum", m_options.base_momentum},
                 {"max_momentum", m_options.max_momentum}},
                {{"steps", this->m_steps},
                 {"total_steps", m_total_steps},
                 {"three_phase", m_options.three_phase ? 1u : 0u},
                 {"cycle_momentum", m_options.cycle_momentum ? 1u : 0u},
                 {"anneal_strategy", m_options.anneal == anneal_strategy::linear ? 1u : 0u}}};
    }
    /// Throws what `load_state_dict(state)` would throw, changing nothing.
    void check_state_dict(const schedule_state& state) const { (void)read(state); }
    /// Restores a state from `state_dict()` (the optimizer's rate and momentum are the
    /// optimizer's state).
    /// @throws value_error if `state` is of another kind, lacks or adds a value or holds an
    /// invalid one (a flag other than 0 or 1, more steps than `total_steps`); nothing changes then.
    void load_state_dict(const schedule_state& state)
    {
        const one_cycle_options options = read(state);
        m_options = options;
        m_max_lr = *state.scalar("max_lr");
        m_pct_start = *state.scalar("pct_start");
        m_total_steps = *state.counter("total_steps");
        this->m_steps = *state.counter("steps");
        this->m_last_lr = *state.scalar("last_lr");
        m_last_momentum = value_at(this->m_steps).second;
    }

private:
    struct phase
    {
        double end_step;
        double start_lr, end_lr, start_momentum, end_momentum;
    };

    /// PyTorch's `_schedule_phases` for some settings: two or three phases (without allocating:
    /// `step()` computes them).
    struct phase_list
    {
        std::array<phase, 3> phases;
        std::size_t count;
    };
    static phase_list phases(double max_lr, std::uint64_t total_steps, double pct_start, const one_cycle_options& o)
    {
        const double initial_lr = max_lr / o.div_factor, min_lr = initial_lr / o.final_div_factor;
        const double total = static_cast<double>(total_steps);
        const phase warm_up{detail::rounded(pct_start * total) - 1, initial_lr, max_lr, o.max_momentum,
                            o.base_momentum};
        if (o.three_phase)
        {
            return {{warm_up,
                     {detail::rounded(2 * pct_start * total) - 2, max_lr, initial_lr, o.base_momentum, o.max_momentum},
                     {total - 1, initial_lr, min_lr, o.max_momentum, o.max_momentum}},
                    3};
        }
        return {{warm_up, {total - 1, max_lr, min_lr, o.base_momentum, o.max_momentum}, phase{}}, 2};
    }

    static double anneal(anneal_strategy strategy, double start, double end, double pct)
    {
        if (strategy == anneal_strategy::linear)
        {
            return detail::rounded((end - start) * pct) + start;
        }
        const double cos_out = std::cos(detail::schedule_pi * pct) + 1;
        return end + detail::rounded((start - end) / 2.0 * cos_out);
    }

    /// The rate and momentum of step `t` (PyTorch's get_lr at last_epoch `t`).
    std::pair<double, double> value_at(std::uint64_t t) const
    {
        const auto list = phases(m_max_lr, m_total_steps, m_pct_start, m_options);
        const double step_num = static_cast<double>(t);
        double start_step = 0;
        for (std::size_t i = 0; i < list.count; ++i)
        {
            const phase& p = list.phases[i];
            if (step_num <= p.end_step || i + 1 == list.count)
            {
                const double pct = (step_num - start_step) / (p.end_step - start_step);
                const double lr = anneal(m_options.anneal, p.start_lr, p.end_lr, pct);
                const double momentum = m_options.cycle_momentum
                                            ? anneal(m_options.anneal, p.start_momentum, p.end_momentum, pct)
                                            : std::nan("");
                return {lr, momentum};
            }
            start_step = p.end_step;
        }
        return {0.0, 0.0}; // unreachable: the last phase always matches
    }

    /// Sets the optimizer's rate and momentum, both or neither.
    void apply(double lr, double momentum)
    {
        using T = typename Optimizer::value_type;
        Optimizer& o = *this->m_optimizer;
        const T old_lr = o.lr();
        // A linear anneal overshoots below 0 at the last step (the rate of no further update, in
        // a loop that steps the schedule after the optimizer): PyTorch sets it, an optimizer of
        // xcnn refuses it, so the optimizer gets 0 and `last_lr()` PyTorch's value.
        o.set_lr(static_cast<T>(lr < 0 ? 0.0 : lr));
        if (!m_options.cycle_momentum)
        {
            return;
        }
        try
        {
            if constexpr (detail::has_beta1<Optimizer>::value)
            {
                o.set_beta1(static_cast<T>(momentum));
            }
            else if constexpr (detail::has_momentum<Optimizer>::value)
            {
                o.set_momentum(static_cast<T>(momentum));
            }
        }
        catch (...)
        {
            o.set_lr(old_lr); // valid: the optimizer had it
            throw;
        }
    }

    /// Checks the settings (PyTorch's checks, and what PyTorch would divide by zero on).
    void check(double max_lr, std::uint64_t total_steps, double pct_start, const one_cycle_options& o,
               const std::string& where) const
    {
        const auto finite_nonnegative = [](double v)
        {
            return v >= 0 && std::isfinite(v);
        };
        if (total_steps == 0)
        {
            throw value_error(detail::concat(where, "Expected positive integer total_steps, but got ", total_steps));
        }
        if (!(pct_start >= 0 && pct_start <= 1))
        {
            throw value_error(detail::concat(where, "Expected float between 0 and 1 pct_start, but got ", pct_start));
        }
        if (!finite_nonnegative(max_lr) || !finite_nonnegative(o.div_factor) || o.div_factor == 0 ||
            !finite_nonnegative(o.final_div_factor) || o.final_div_factor == 0)
        {
            throw value_error(detail::concat(where, "max_lr ", max_lr, " must be finite and >= 0, div_factor ",
                                             o.div_factor, " and final_div_factor ", o.final_div_factor,
                                             " finite and > 0"));
        }
        if (o.cycle_momentum)
        {
            if constexpr (!detail::has_beta1<Optimizer>::value && !detail::has_momentum<Optimizer>::value)
            {
                throw value_error(detail::concat(where,
                                                 "optimizer must support momentum with `cycle_momentum` option "
                                                 "enabled: ",
                                                 this->m_optimizer->name(),
                                                 " has neither a momentum nor a beta1; set cycle_momentum to false"));
            }
            if (!finite_nonnegative(o.base_momentum) || !finite_nonnegative(o.max_momentum))
            {
                throw value_error(detail::concat(where, "base_momentum ", o.base_momentum, " and max_momentum ",
                                                 o.max_momentum, " must be finite and >= 0"));
            }
        }
        const auto list = phases(max_lr, total_steps, pct_start, o);
        const bool first_empty = list.phases[0].end_step == 0;
        const bool last_empty = list.phases[list.count - 2].end_step == list.phases[list.count - 1].end_step;
        if (first_empty || last_empty)
        {
            throw value_error(detail::concat(where, "pct_start ", pct_start, " of total_steps ", total_steps,
                                             " leaves the ", first_empty ? "first" : "last",
                                             " phase 0 steps long (PyTorch divides by zero there)"));
        }
    }

    /// The options stored in `state`, after checking all of it.
    one_cycle_options read(const schedule_state& state) const
    {
        this->check_names(
            name(), state,
            {"last_lr", "max_lr", "pct_start", "div_factor", "final_div_factor", "base_momentum", "max_momentum"},
            {"steps", "total_steps", "three_phase", "cycle_momentum", "anneal_strategy"});
        const std::string where = "OneCycleLR: invalid state: ";
        for (const char* flag : {"three_phase", "cycle_momentum", "anneal_strategy"})
        {
            if (*state.counter(flag) > 1)
            {
                throw value_error(detail::concat(where, flag, " is ", *state.counter(flag), ", not 0 or 1"));
            }
        }
        one_cycle_options o;
        o.anneal = *state.counter("anneal_strategy") == 1 ? anneal_strategy::linear : anneal_strategy::cos;
        o.cycle_momentum = *state.counter("cycle_momentum") == 1;
        o.three_phase = *state.counter("three_phase") == 1;
        o.base_momentum = *state.scalar("base_momentum");
        o.max_momentum = *state.scalar("max_momentum");
        o.div_factor = *state.scalar("div_factor");
        o.final_div_factor = *state.scalar("final_div_factor");
        const std::uint64_t total_steps = *state.counter("total_steps");
        check(*state.scalar("max_lr"), total_steps, *state.scalar("pct_start"), o, where);
        if (*state.counter("steps") > total_steps)
        {
            throw value_error(detail::concat(where, *state.counter("steps"), " steps of ", total_steps));
        }
        return o;
    }

    double m_max_lr;
    std::uint64_t m_total_steps;
    double m_pct_start;
    one_cycle_options m_options;
    double m_last_momentum = 0;
};

} // namespace xcnn

#endif // XCNN_OPTIM_SCHEDULE_HPP
