/// @file
/// `xcnn::Adam` and `xcnn::AdamW`: adaptive moment estimation with an L2 penalty added to the
/// gradient (Adam) or decoupled weight decay (AdamW), PyTorch's rules (torch.optim.Adam and
/// AdamW of torch 1.13, without amsgrad). Both run the same one-pass update kernel.
#ifndef XCNN_OPTIM_ADAM_HPP
#define XCNN_OPTIM_ADAM_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/finite.hpp"
#include "../core/parameter.hpp"
#include "kernels.hpp"
#include "optimizer.hpp"

namespace xcnn
{

/// What `Adam` and `AdamW` share: everything but their name, their default weight decay and
/// where the weight decay enters the update (`Decoupled`: AdamW). With t the step (1-based),
/// for each element of a parameter p with gradient g, moments m and v (zero before the first
/// step):
///
///     g = g + weight_decay * p                     (Adam)
///     p = p * (1 - lr * weight_decay)              (AdamW)
///     m = beta1 * m + (1 - beta1) * g
///     v = beta2 * v + (1 - beta2) * g * g
///     p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
///
/// The step's coefficients are computed in double, as PyTorch computes them in Python floats;
/// `steps()` is PyTorch's per-parameter `step`, so the bias corrections of the next step use
/// `steps() + 1`.
template <class T, bool Decoupled>
class adam_optimizer : public detail::optimizer_base<T>
{
    using base = detail::optimizer_base<T>;
    using base::m_parameters;
    using base::m_skipped;
    using base::m_steps;

public:
    /// Scalar type of the parameters.
    using value_type = T;

    /// The optimizer's kind, "Adam" or "AdamW" (`optimizer_state::kind`, a checkpoint's
    /// `xcnn.optimizer`).
    std::string name() const { return Decoupled ? "AdamW" : "Adam"; }

    /// The learning rate.
    T lr() const noexcept { return m_lr; }
    /// Changes the learning rate, e.g. for a schedule.
    /// @throws value_error if `lr` is negative or not finite; nothing changes then.
    void set_lr(T lr)
    {
        check_lr(lr);
        m_lr = lr;
    }
    /// The decay rate of the first moment (PyTorch's `betas[0]`).
    T beta1() const noexcept { return m_beta1; }
    /// Changes the decay rate of the first moment, e.g. for `OneCycleLR`.
    /// @throws value_error unless 0 <= `beta1` < 1; nothing changes then.
    void set_beta1(T beta1)
    {
        check_beta(beta1, 1);
        m_beta1 = beta1;
    }
    /// The decay rate of the second moment (PyTorch's `betas[1]`).
    T beta2() const noexcept { return m_beta2; }
    /// Changes the decay rate of the second moment.
    /// @throws value_error unless 0 <= `beta2` < 1; nothing changes then.
    void set_beta2(T beta2)
    {
        check_beta(beta2, 2);
        m_beta2 = beta2;
    }
    /// The term added to the denominator.
    T eps() const noexcept { return m_eps; }
    /// The weight decay factor: an L2 penalty added to the gradient (Adam) or a decay of the
    /// parameters decoupled from the gradient (AdamW).
    T weight_decay() const noexcept { return m_weight_decay; }
    /// The first moment (PyTorch's `exp_avg`) of parameter i; empty before the first step.
    const std::vector<T>& exp_avg(std::size_t i) const { return m_exp_avg.at(i); }
    /// The second moment (PyTorch's `exp_avg_sq`) of parameter i; empty before the first step.
    const std::vector<T>& exp_avg_sq(std::size_t i) const { return m_exp_avg_sq.at(i); }

    /// A copy of the state a checkpoint needs (the optimizer contract of optim/optimizer.hpp):
    /// scalars "lr", "beta1", "beta2", "eps", "weight_decay"; counters "steps",
    /// "skipped_steps"; tensors "exp_avg" and "exp_avg_sq" of every parameter once a step was
    /// applied (none before, as in PyTorch's `state_dict`).
    optimizer_state<T> state_dict() const
    {
        optimizer_state<T> state;
        state.kind = name();
        state.scalars = {
            {"lr", m_lr}, {"beta1", m_beta1}, {"beta2", m_beta2}, {"eps", m_eps}, {"weight_decay", m_weight_decay}};
        state.counters = {{"steps", m_steps}, {"skipped_steps", m_skipped}};
        for (std::size_t i = 0; i < m_parameters.size() && m_steps > 0; ++i)
        {
            state.tensors.push_back({m_parameters[i].name(), exp_avg_name, m_exp_avg[i]});
            state.tensors.push_back({m_parameters[i].name(), exp_avg_sq_name, m_exp_avg_sq[i]});
        }
        return state;
    }

    /// Throws what `load_state_dict(state)` would throw, changing nothing.
    void check_state_dict(const optimizer_state<T>& state) const
    {
        const std::string who = name();
        if (state.kind != who)
        {
            throw value_error(detail::concat(who, ": the state is that of a '", state.kind, "' optimizer"));
        }
        detail::check_state_names(who, state.scalars, {"lr", "beta1", "beta2", "eps", "weight_decay"}, "scalar");
        detail::check_state_names(who, state.counters, {"steps", "skipped_steps"}, "counter");
        const auto has = detail::check_state_tensors(who, m_parameters, state.tensors, {exp_avg_name, exp_avg_sq_name});
        const std::uint64_t steps = *state.counter("steps");
        for (std::size_t k = 0; k < has.size(); ++k)
        {
            for (std::size_t i = 0; i < m_parameters.size(); ++i)
            {
                // Every parameter is updated at every step: the moments exist exactly after one.
                if (has[k][i] != (steps > 0))
                {
                    const std::string moment = detail::state_description(k == 0 ? exp_avg_name : exp_avg_sq_name);
                    throw value_error(detail::concat(who, ": invalid state: ", steps, " steps applied but ",
                                                     has[k][i] ? "an " : "no ", moment, " of parameter ",
                                                     detail::describe_parameter(m_parameters[i]),
                                                     " (the moments exist exactly once a step was applied)"));
                }
            }
        }
        check_hyperparameters(*state.scalar("lr"), *state.scalar("beta1"), *state.scalar("beta2"), *state.scalar("eps"),
                              *state.scalar("weight_decay"), who + ": invalid state: ");
    }

    /// Restores a state from `state_dict()`, after checking that it fits this optimizer's
    /// parameters; on an exception nothing has changed.
    /// @throws value_error if `state` is of another kind, lacks or adds a scalar, a counter or a
    /// kind of tensor, lists a tensor twice, lacks a moment or holds one before any step, or
    /// holds an invalid hyperparameter; shape_error if a tensor belongs to no parameter of this
    /// optimizer or its size differs from its parameter's.
    void load_state_dict(const optimizer_state<T>& state)
    {
        check_state_dict(state);
        std::vector<std::vector<T>> exp_avg(m_parameters.size()), exp_avg_sq(m_parameters.size());
        for (const auto& t : state.tensors)
        {
            const std::size_t i = detail::parameter_index(m_parameters, t.parameter);
            (t.name == exp_avg_name ? exp_avg : exp_avg_sq)[i] = t.values;
        }
        // Everything fits and is copied: commit (nothing below throws).
        m_lr = *state.scalar("lr");
        m_beta1 = *state.scalar("beta1");
        m_beta2 = *state.scalar("beta2");
        m_eps = *state.scalar("eps");
        m_weight_decay = *state.scalar("weight_decay");
        m_steps = *state.counter("steps");
        m_skipped = *state.counter("skipped_steps");
        m_exp_avg.swap(exp_avg);
        m_exp_avg_sq.swap(exp_avg_sq);
    }

    /// One update of every parameter from its current gradient. Returns false if the step was
    /// skipped (`nonfinite_policy::skip_step`) because a gradient or parameter is not finite.
    /// @throws numeric_error under `nonfinite_policy::raise` if a parameter or gradient holds a
    /// NaN or infinity, naming the step and the parameter; nothing has changed then.
    bool step()
    {
        if (!this->admit_step(name()))
        {
            return false;
        }
        for (std::size_t i = 0; i < m_parameters.size(); ++i)
        {
            const std::size_t size = m_parameters[i].size();
            if (m_steps > 0 && m_exp_avg[i].size() != size)
            {
                throw shape_error(detail::concat(name(), ": parameter '", m_parameters[i].name(),
                                                 "' changed size from ", m_exp_avg[i].size(), " to ", size,
                                                 " between steps"));
            }
        }
        if (m_steps == 0)
        {
            // The moments start at zero with the first update (allocated then, as in PyTorch).
            for (std::size_t i = 0; i < m_parameters.size(); ++i)
            {
                m_exp_avg[i].assign(m_parameters[i].size(), T(0));
                m_exp_avg_sq[i].assign(m_parameters[i].size(), T(0));
            }
        }
        const double t = static_cast<double>(m_steps + 1);
        const double lr = static_cast<double>(m_lr), beta1 = static_cast<double>(m_beta1);
        const double beta2 = static_cast<double>(m_beta2);
        coefficients c;
        c.beta1 = m_beta1;
        c.beta2 = m_beta2;
        c.one_minus_beta1 = static_cast<T>(1 - beta1);
        c.one_minus_beta2 = static_cast<T>(1 - beta2);
        c.step_size = static_cast<T>(lr / (1 - std::pow(beta1, t)));
        c.inv_bias_correction2_sqrt = static_cast<T>(1 / std::sqrt(1 - std::pow(beta2, t)));
        c.eps = m_eps;
        c.weight_decay = m_weight_decay;
        c.decay = static_cast<T>(1 - lr * static_cast<double>(m_weight_decay));
        for (std::size_t i = 0; i < m_parameters.size(); ++i)
        {
            update(m_parameters[i], m_exp_avg[i].data(), m_exp_avg_sq[i].data(), c);
        }
        ++m_steps;
        return true;
    }

protected:
    /// Checks the hyperparameters (the optimizers' constructors document them) and takes the
    /// parameters.
    adam_optimizer(std::vector<parameter<T>> parameters, T lr, T beta1, T beta2, T eps, T weight_decay)
        : base(std::move(parameters)), m_lr(lr), m_beta1(beta1), m_beta2(beta2), m_eps(eps),
          m_weight_decay(weight_decay), m_exp_avg(m_parameters.size()), m_exp_avg_sq(m_parameters.size())
    {
        check_hyperparameters(lr, beta1, beta2, eps, weight_decay, name() + ": ");
    }

private:
    static constexpr const char* exp_avg_name = "exp_avg";
    static constexpr const char* exp_avg_sq_name = "exp_avg_sq";

    /// A step's constants, in the parameters' type.
    struct coefficients
    {
        T beta1, beta2, one_minus_beta1, one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps, weight_decay,
            decay;
    };

    void check_lr(T lr) const
    {
        if (!(lr >= T(0)) || !std::isfinite(lr))
        {
            throw value_error(detail::concat(name(), ": learning rate ", lr, " must be finite and >= 0"));
        }
    }
    void check_beta(T beta, int which) const
    {
        if (!(beta >= T(0) && beta < T(1)))
        {
            throw value_error(detail::concat(name(), ": beta", which, " ", beta, " must lie in [0, 1)"));
        }
    }
    void check_hyperparameters(T lr, T beta1, T beta2, T eps, T weight_decay, const std::string& where) const
    {
        if (!(lr >= T(0)) || !std::isfinite(lr))
        {
            throw value_error(detail::concat(where, "learning rate ", lr, " must be finite and >= 0"));
        }
        if (!(beta1 >= T(0) && beta1 < T(1)) || !(beta2 >= T(0) && beta2 < T(1)))
        {
            throw value_error(detail::concat(where, "beta1 ", beta1, " and beta2 ", beta2, " must lie in [0, 1)"));
        }
        if (!(eps >= T(0)) || !std::isfinite(eps))
        {
            throw value_error(detail::concat(where, "eps ", eps, " must be finite and >= 0"));
        }
        if (!(weight_decay >= T(0)) || !std::isfinite(weight_decay))
        {
            throw value_error(detail::concat(where, "weight_decay ", weight_decay, " must be finite and >= 0"));
        }
    }

    /// One parameter's update: a single pass over its value, gradient and moments.
    static void update(const parameter<T>& p, T* exp_avg, T* exp_avg_sq, const coefficients& c)
    {
        using batch = xsimd::batch<T>;
        T* value = p.data();
        const T* grad = p.grad_data();
        const batch beta1(c.beta1), beta2(c.beta2), one_minus_beta1(c.one_minus_beta1);
        const batch one_minus_beta2(c.one_minus_beta2), step_size(c.step_size);
        const batch inv_bc2_sqrt(c.inv_bias_correction2_sqrt), eps(c.eps), weight_decay(c.weight_decay);
        const batch decay(c.decay);
        const bool penalty = !Decoupled && c.weight_decay != T(0);
        const bool decoupled_decay = Decoupled && c.weight_decay != T(0);
        detail::update_elementwise<T>(
            p.size(),
            [&](std::size_t j, std::size_t n)
            {
                batch v = detail::load_n(value + j, n);
                batch g = detail::load_n(grad + j, n);
                if (penalty)
                {
                    g = xsimd::fma(weight_decay, v, g);
                }
                if (decoupled_decay)
                {
                    v = v * decay;
                }
                const batch m = xsimd::fma(beta1, detail::load_n(exp_avg + j, n), one_minus_beta1 * g);
                const batch s = xsimd::fma(beta2, detail::load_n(exp_avg_sq + j, n), one_minus_beta2 * (g * g));
                detail::store_n(exp_avg + j, n, m);
                detail::store_n(exp_avg_sq + j, n, s);
                const batch denominator = xsimd::fma(detail::sqrt_lanes(s), inv_bc2_sqrt, eps);
                detail::store_n(value + j, n, xsimd::fnma(step_size, m / denominator, v));
            });
    }

    T m_lr;
    T m_beta1;
    T m_beta2;
    T m_eps;
    T m_weight_decay;
    std::vector<std::vector<T>> m_exp_avg;
    std::vector<std::vector<T>> m_exp_avg_sq;
};

/// Adam (torch.optim.Adam of torch 1.13 without amsgrad): the weight decay is an L2 penalty
/// added to the gradient before the moments see it. The update is one vector pass per parameter
/// over its value, gradient and two moments, split between threads for large tensors; like
/// `SGD`, `step` first checks that every parameter and gradient is finite (`nonfinite_policy`).
template <class T>
class Adam : public adam_optimizer<T, false>
{
public:
    /// Updates `parameters` (usually `net.parameters()`) with PyTorch's defaults: learning rate
    /// 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay.
    /// @throws value_error naming the value if `lr`, `eps` or `weight_decay` is negative or not
    /// finite, or a beta lies outside [0, 1).
    explicit Adam(std::vector<parameter<T>> parameters, T lr = T(1e-3), T beta1 = T(0.9), T beta2 = T(0.999),
                  T eps = T(1e-8), T weight_decay = T(0))
        : adam_optimizer<T, false>(std::move(parameters), lr, beta1, beta2, eps, weight_decay)
    {
    }
};

/// AdamW (torch.optim.AdamW of torch 1.13 without amsgrad): Adam with the weight decay
/// decoupled from the gradient, p = p * (1 - lr * weight_decay) before the Adam update.
template <class T>
class AdamW : public adam_optimizer<T, true>
{
public:
    /// Updates `parameters` (usually `net.parameters()`) with PyTorch's defaults: learning rate
    /// 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2.
    /// @throws value_error naming the value if `lr`, `eps` or `weight_decay` is negative or not
    /// finite, or a beta lies outside [0, 1).
    explicit AdamW(std::vector<parameter<T>> parameters, T lr = T(1e-3), T beta1 = T(0.9), T beta2 = T(0.999),
                   T eps = T(1e-8), T weight_decay = T(1e-2))
        : adam_optimizer<T, true>(std::move(parameters), lr, beta1, beta2, eps, weight_decay)
    {
    }
};

} // namespace xcnn

#endif // XCNN_OPTIM_ADAM_HPP
