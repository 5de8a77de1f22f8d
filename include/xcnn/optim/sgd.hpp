/// @file
/// `xcnn::SGD`: stochastic gradient descent with momentum (plain or Nesterov) and weight decay,
/// PyTorch's rule.
#ifndef XCNN_OPTIM_SGD_HPP
#define XCNN_OPTIM_SGD_HPP

#include <algorithm>
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

/// Updates each parameter p with its gradient g exactly as `torch.optim.SGD` does
/// (dampening 0):
///
///     g = g + weight_decay * p
///     b = g                     (first step)
///     b = momentum * b + g      (later steps)
///     p = p - lr * b            (b = g when momentum is 0)
///     p = p - lr * (g + momentum * b)   (instead, with Nesterov momentum)
///
/// Before it changes anything, `step` checks that every parameter and every gradient is finite
/// (one vectorised pass, no allocation). A NaN or infinity throws `numeric_error` naming the
/// step and the parameter, e.g. "SGD step 1234: non-finite gradient in parameter '3.weight'
/// (Conv2D(6, 16, ...)): ...; no parameter was changed", so a diverged run never turns its
/// weights into NaN; with `nonfinite_policy::skip_step` the step is skipped and counted instead
/// (as PyTorch's GradScaler does with mixed-precision overflows). The update is one vector pass
/// per parameter over its value, gradient and buffer, split between threads for large tensors.
template <class T>
class SGD : public detail::optimizer_base<T>
{
    using base = detail::optimizer_base<T>;
    using base::m_parameters;
    using base::m_skipped;
    using base::m_steps;

public:
    /// Scalar type of the parameters.
    using value_type = T;

    /// Updates `parameters` (usually `net.parameters()`) with learning rate `lr`, `momentum`, L2
    /// penalty `weight_decay` and, if `nesterov`, Nesterov momentum; as in PyTorch, momentum
    /// and weight decay default to 0 and Nesterov momentum to off.
    /// @throws value_error if `lr` is negative or not finite, `momentum` or `weight_decay` is
    /// negative or not finite, or `nesterov` is set without a positive momentum (PyTorch's rule).
    SGD(std::vector<parameter<T>> parameters, T lr, T momentum = T(0), T weight_decay = T(0), bool nesterov = false)
        : base(std::move(parameters)), m_momentum(momentum), m_weight_decay(weight_decay), m_nesterov(nesterov)
    {
        set_lr(lr);
        if (!(momentum >= T(0)) || !(weight_decay >= T(0)) || !std::isfinite(momentum) || !std::isfinite(weight_decay))
        {
            throw value_error(detail::concat("SGD: momentum (", momentum, ") and weight_decay (", weight_decay,
                                             ") must be finite and >= 0"));
        }
        check_nesterov(nesterov, momentum);
        m_buffers.resize(m_parameters.size());
    }

    /// The learning rate.
    T lr() const noexcept { return m_lr; }
    /// Changes the learning rate, e.g. for a schedule.
    /// @throws value_error if `lr` is negative or not finite; nothing changes then.
    void set_lr(T lr)
    {
        if (!(lr >= T(0)) || !std::isfinite(lr))
        {
            throw value_error(detail::concat("SGD: learning rate ", lr, " must be finite and >= 0"));
        }
        m_lr = lr;
    }
    /// The momentum factor (0: plain SGD).
    T momentum() const noexcept { return m_momentum; }
    /// Changes the momentum factor, e.g. for `OneCycleLR`. As in PyTorch, a parameter without a
    /// momentum buffer (momentum was 0 so far) starts one at its next update.
    /// @throws value_error if `momentum` is negative or not finite, or 0 with Nesterov momentum;
    /// nothing changes then.
    void set_momentum(T momentum)
    {
        if (!(momentum >= T(0)) || !std::isfinite(momentum))
        {
            throw value_error(detail::concat("SGD: momentum ", momentum, " must be finite and >= 0"));
        }
        check_nesterov(m_nesterov, momentum);
        m_momentum = momentum;
    }
    /// The L2 penalty factor added to each gradient.
    T weight_decay() const noexcept { return m_weight_decay; }
    /// Whether the update uses Nesterov momentum.
    bool nesterov() const noexcept { return m_nesterov; }
    /// Momentum buffer of parameter i (empty before the first step or without momentum).
    const std::vector<T>& momentum_buffer(std::size_t i) const { return m_buffers.at(i); }

    /// The optimizer's kind, "SGD" (`optimizer_state::kind`, a checkpoint's `xcnn.optimizer`).
    std::string name() const { return "SGD"; }

    /// A copy of the state a checkpoint needs (the optimizer contract of optim/optimizer.hpp):
    /// scalars "lr", "momentum", "weight_decay"; counters "steps", "skipped_steps" and, only
    /// with Nesterov momentum, "nesterov" = 1 (absent means off, so the states and checkpoints of
    /// releases before Nesterov momentum keep their meaning and records); a tensor
    /// "momentum_buffer" per parameter that has one (none before its first update or without
    /// momentum, as in PyTorch's `state_dict`).
    optimizer_state<T> state_dict() const
    {
        optimizer_state<T> state;
        state.kind = name();
        state.scalars = {{"lr", m_lr}, {"momentum", m_momentum}, {"weight_decay", m_weight_decay}};
        state.counters = {{"steps", m_steps}, {"skipped_steps", m_skipped}};
        if (m_nesterov)
        {
            state.counters.emplace_back(nesterov_name, 1);
        }
        for (std::size_t i = 0; i < m_parameters.size(); ++i)
        {
            if (!m_buffers[i].empty())
            {
                state.tensors.push_back({m_parameters[i].name(), momentum_buffer_name, m_buffers[i]});
            }
        }
        return state;
    }

    /// Restores a state from `state_dict()`, after checking that it fits this optimizer's
    /// parameters; on an exception nothing has changed. A parameter without a momentum buffer in
    /// `state` has none afterwards (its next update starts one, as the first does). A state
    /// without a "nesterov" counter turns Nesterov momentum off.
    /// @throws value_error if `state` is of another kind, lacks or adds a scalar, a counter or a
    /// kind of tensor, lists a buffer twice or holds an invalid hyperparameter; shape_error if a
    /// buffer belongs to no parameter of this optimizer or its size differs from its parameter's.
    void load_state_dict(const optimizer_state<T>& state)
    {
        check_state_dict(state);
        std::vector<std::vector<T>> buffers(m_parameters.size());
        for (const auto& t : state.tensors)
        {
            buffers[detail::parameter_index(m_parameters, t.parameter)] = t.values;
        }
        // Everything fits and is copied: commit (nothing below throws).
        m_lr = *state.scalar("lr");
        m_momentum = *state.scalar("momentum");
        m_weight_decay = *state.scalar("weight_decay");
        m_steps = *state.counter("steps");
        m_skipped = *state.counter("skipped_steps");
        m_nesterov = state.counter(nesterov_name) != nullptr && *state.counter(nesterov_name) == 1;
        m_buffers.swap(buffers);
    }

    /// Throws what `load_state_dict(state)` would throw, changing nothing.
    void check_state_dict(const optimizer_state<T>& state) const
    {
        if (state.kind != name())
        {
            throw value_error(detail::concat("SGD: the state is that of a '", state.kind, "' optimizer"));
        }
        detail::check_state_names(name(), state.scalars, {"lr", "momentum", "weight_decay"}, "scalar");
        const std::uint64_t* nesterov = state.counter(nesterov_name);
        std::vector<std::string> counters{"steps", "skipped_steps"};
        if (nesterov != nullptr)
        {
            counters.push_back(nesterov_name);
        }
        detail::check_state_names(name(), state.counters, counters, "counter");
        (void)detail::check_state_tensors(name(), m_parameters, state.tensors, {momentum_buffer_name});
        const T lr = *state.scalar("lr"), momentum = *state.scalar("momentum");
        const T weight_decay = *state.scalar("weight_decay");
        if (!(lr >= T(0)) || !std::isfinite(lr) || !(momentum >= T(0)) || !(weight_decay >= T(0)) ||
            !std::isfinite(momentum) || !std::isfinite(weight_decay))
        {
            throw value_error(detail::concat("SGD: invalid state: learning rate ", lr, ", momentum ", momentum,
                                             ", weight_decay ", weight_decay, " (each must be finite and >= 0)"));
        }
        if (nesterov != nullptr && *nesterov > 1)
        {
            throw value_error(
                detail::concat("SGD: invalid state: the counter 'nesterov' is ", *nesterov, " (1: on; absent: off)"));
        }
        check_nesterov(nesterov != nullptr && *nesterov == 1, momentum, "SGD: invalid state: ");
    }

    /// One update of every parameter from its current gradient. Returns false if the step was
    /// skipped (`nonfinite_policy::skip_step`) because a gradient or parameter is not finite.
    /// @throws numeric_error under `nonfinite_policy::raise` if a parameter or gradient holds a
    /// NaN or infinity, naming the step (1-based: applied and skipped steps so far, plus one) and the parameter; no
    /// parameter or momentum buffer has changed then.
    bool step()
    {
        if (!this->admit_step(name()))
        {
            return false;
        }
        for (std::size_t i = 0; i < m_parameters.size(); ++i)
        {
            auto& buffer = m_buffers[i];
            const std::size_t size = m_parameters[i].size();
            if (m_momentum != T(0) && !buffer.empty() && buffer.size() != size)
            {
                throw shape_error(detail::concat("SGD: parameter '", m_parameters[i].name(), "' changed size from ",
                                                 buffer.size(), " to ", size, " between steps"));
            }
        }
        for (std::size_t i = 0; i < m_parameters.size(); ++i)
        {
            update(m_parameters[i], m_buffers[i]);
        }
        ++m_steps;
        return true;
    }

private:
    static constexpr const char* momentum_buffer_name = "momentum_buffer";
    static constexpr const char* nesterov_name = "nesterov";

    static void check_nesterov(bool nesterov, T momentum, const char* where = "SGD: ")
    {
        if (nesterov && !(momentum > T(0)))
        {
            throw value_error(
                detail::concat(where, "Nesterov momentum requires a momentum > 0, got momentum ", momentum));
        }
    }

    /// One parameter's update: a single pass over its value, gradient and momentum buffer.
    void update(const parameter<T>& p, std::vector<T>& buffer)
    {
        using batch = xsimd::batch<T>;
        T* value = p.data();
        const T* grad = p.grad_data();
        const std::size_t size = p.size();
        const batch lr(m_lr), wd(m_weight_decay), momentum(m_momentum);
        if (m_momentum == T(0))
        {
            detail::update_elementwise<T>(size,
                                          [&](std::size_t j, std::size_t n)
                                          {
                                              const batch v = detail::load_n(value + j, n);
                                              const batch g = xsimd::fma(wd, v, detail::load_n(grad + j, n));
                                              detail::store_n(value + j, n, xsimd::fnma(lr, g, v));
                                          });
            return;
        }
        const bool first = buffer.empty();
        buffer.resize(size); // allocates on a parameter's first update only
        T* b = buffer.data();
        const bool nesterov = m_nesterov;
        detail::update_elementwise<T>(size,
                                      [&](std::size_t j, std::size_t n)
                                      {
                                          const batch v = detail::load_n(value + j, n);
                                          const batch g = xsimd::fma(wd, v, detail::load_n(grad + j, n));
                                          const batch m = first ? g : xsimd::fma(momentum, detail::load_n(b + j, n), g);
                                          detail::store_n(b + j, n, m);
                                          const batch d = nesterov ? xsimd::fma(momentum, m, g) : m;
                                          detail::store_n(value + j, n, xsimd::fnma(lr, d, v));
                                      });
    }

    std::vector<std::vector<T>> m_buffers;
    T m_lr = 0;
    T m_momentum;
    T m_weight_decay;
    bool m_nesterov;
};

} // namespace xcnn

#endif // XCNN_OPTIM_SGD_HPP
