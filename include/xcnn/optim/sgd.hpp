/// @file
/// `xcnn::SGD`: stochastic gradient descent with momentum and weight decay, PyTorch's rule.
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
#include "optimizer.hpp"

namespace xcnn
{

/// What `SGD::step` does when a gradient or a parameter is not finite (NaN or infinite).
enum class nonfinite_policy
{
    raise,    ///< throw `numeric_error` naming the step and the parameter (the default)
    skip_step ///< leave every parameter and momentum buffer as it is, count the step as skipped
};

/// Updates each parameter p with its gradient g exactly as `torch.optim.SGD` does
/// (dampening 0, no Nesterov):
///
///     g = g + weight_decay * p
///     b = g                     (first step)
///     b = momentum * b + g      (later steps)
///     p = p - lr * b            (b = g when momentum is 0)
///
/// Before it changes anything, `step` checks that every parameter and every gradient is finite
/// (one vectorised pass, no allocation). A NaN or infinity throws `numeric_error` naming the
/// step and the parameter, e.g. "SGD step 1234: non-finite gradient in parameter '3.weight'
/// (Conv2D(6, 16, ...)): ...; no parameter was changed", so a diverged run never turns its
/// weights into NaN; with `nonfinite_policy::skip_step` the step is skipped and counted instead
/// (as PyTorch's GradScaler does with mixed-precision overflows).
template <class T>
class SGD
{
public:
    /// Scalar type of the parameters.
    using value_type = T;

    /// Updates `parameters` (usually `net.parameters()`) with learning rate `lr`, `momentum` and L2
    /// penalty `weight_decay`; as in PyTorch, both default to 0.
    /// @throws value_error if `lr` is negative or not finite, or `momentum` or `weight_decay` is negative.
    SGD(std::vector<parameter<T>> parameters, T lr, T momentum = T(0), T weight_decay = T(0))
        : m_parameters(std::move(parameters)), m_momentum(momentum), m_weight_decay(weight_decay)
    {
        set_lr(lr);
        if (!(momentum >= T(0)) || !(weight_decay >= T(0)))
        {
            throw value_error(
                detail::concat("SGD: momentum (", momentum, ") and weight_decay (", weight_decay, ") must be >= 0"));
        }
        m_buffers.resize(m_parameters.size());
    }

    /// The learning rate.
    T lr() const noexcept { return m_lr; }
    /// Changes the learning rate, e.g. for a schedule.
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
    /// The L2 penalty factor added to each gradient.
    T weight_decay() const noexcept { return m_weight_decay; }
    /// The parameters this optimizer updates.
    const std::vector<parameter<T>>& parameters() const noexcept { return m_parameters; }
    /// Momentum buffer of parameter i (empty before the first step or without momentum).
    const std::vector<T>& momentum_buffer(std::size_t i) const { return m_buffers.at(i); }

    /// What `step` does with a non-finite gradient or parameter.
    xcnn::nonfinite_policy nonfinite_policy() const noexcept { return m_policy; }
    /// Raise (the default) or skip the step on a non-finite gradient or parameter.
    void set_nonfinite_policy(xcnn::nonfinite_policy policy) noexcept { m_policy = policy; }
    /// Number of updates applied so far (skipped and failed steps not included).
    std::uint64_t steps() const noexcept { return m_steps; }
    /// Number of steps skipped under `nonfinite_policy::skip_step`.
    std::uint64_t skipped_steps() const noexcept { return m_skipped; }
    /// Why the last skipped step was skipped (the message `raise` would have thrown); empty if
    /// no step was skipped.
    const std::string& last_skip_reason() const noexcept { return m_skip_reason; }

    /// The optimizer's kind, "SGD" (`optimizer_state::kind`, a checkpoint's `xcnn.optimizer`).
    std::string name() const { return "SGD"; }

    /// A copy of the state a checkpoint needs (the optimizer contract of optim/optimizer.hpp):
    /// scalars "lr", "momentum", "weight_decay"; counters "steps", "skipped_steps"; a tensor
    /// "momentum_buffer" per parameter that has one (none before its first update or without
    /// momentum, as in PyTorch's `state_dict`).
    optimizer_state<T> state_dict() const
    {
        optimizer_state<T> state;
        state.kind = name();
        state.scalars = {{"lr", m_lr}, {"momentum", m_momentum}, {"weight_decay", m_weight_decay}};
        state.counters = {{"steps", m_steps}, {"skipped_steps", m_skipped}};
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
    /// `state` has none afterwards (its next update starts one, as the first does).
    /// @throws value_error if `state` is of another kind, lacks or adds a scalar, a counter or a
    /// kind of tensor, lists a buffer twice or holds an invalid hyperparameter; shape_error if a
    /// buffer belongs to no parameter of this optimizer or its size differs from its parameter's.
    void load_state_dict(const optimizer_state<T>& state)
    {
        check_state_dict(state);
        std::vector<std::vector<T>> buffers(m_parameters.size());
        for (const auto& t : state.tensors)
        {
            buffers[index_of(t.parameter)] = t.values;
        }
        // Everything fits and is copied: commit (nothing below throws).
        m_lr = *state.scalar("lr");
        m_momentum = *state.scalar("momentum");
        m_weight_decay = *state.scalar("weight_decay");
        m_steps = *state.counter("steps");
        m_skipped = *state.counter("skipped_steps");
        m_buffers.swap(buffers);
    }

    /// Throws what `load_state_dict(state)` would throw, changing nothing.
    void check_state_dict(const optimizer_state<T>& state) const
    {
        if (state.kind != name())
        {
            throw value_error(detail::concat("SGD: the state is that of a '", state.kind, "' optimizer"));
        }
        check_names(state.scalars, {"lr", "momentum", "weight_decay"}, "scalar");
        check_names(state.counters, {"steps", "skipped_steps"}, "counter");
        std::vector<bool> seen(m_parameters.size(), false);
        for (const auto& t : state.tensors)
        {
            if (t.name != momentum_buffer_name)
            {
                throw value_error(detail::concat("SGD: the state holds a tensor '", t.name, "' of parameter '",
                                                 t.parameter, "'; SGD keeps only '", momentum_buffer_name, "'"));
            }
            const std::size_t i = index_of(t.parameter);
            if (i == m_parameters.size())
            {
                throw shape_error(detail::concat("SGD: the state holds a momentum buffer of '", t.parameter,
                                                 "', which is none of the optimizer's ", m_parameters.size(),
                                                 " parameters"));
            }
            if (seen[i])
            {
                throw value_error(detail::concat("SGD: the state holds two momentum buffers of parameter ",
                                                 detail::describe_parameter(m_parameters[i])));
            }
            seen[i] = true;
            if (t.values.size() != m_parameters[i].size())
            {
                throw shape_error(detail::concat("SGD: the momentum buffer of parameter ",
                                                 detail::describe_parameter(m_parameters[i]), " has ", t.values.size(),
                                                 " elements, the parameter ", m_parameters[i].size(), " (shape ",
                                                 detail::shape_to_string(m_parameters[i].shape()), ")"));
            }
        }
        const T lr = *state.scalar("lr"), momentum = *state.scalar("momentum");
        const T weight_decay = *state.scalar("weight_decay");
        if (!(lr >= T(0)) || !std::isfinite(lr) || !(momentum >= T(0)) || !(weight_decay >= T(0)) ||
            !std::isfinite(momentum) || !std::isfinite(weight_decay))
        {
            throw value_error(detail::concat("SGD: invalid state: learning rate ", lr, ", momentum ", momentum,
                                             ", weight_decay ", weight_decay, " (each must be finite and >= 0)"));
        }
    }

    /// Sets every gradient to zero. Layers overwrite their gradients in `backward`, so a
    /// training loop does not need this; it exists for code written in PyTorch's idiom.
    void zero_grad()
    {
        for (auto& p : m_parameters)
        {
            std::fill(p.grad_data(), p.grad_data() + p.size(), T(0));
        }
    }

    /// One update of every parameter from its current gradient. Returns false if the step was
    /// skipped (`nonfinite_policy::skip_step`) because a gradient or parameter is not finite.
    /// @throws numeric_error under `nonfinite_policy::raise` if a parameter or gradient holds a
    /// NaN or infinity, naming the step (1-based: applied and skipped steps so far, plus one) and the parameter; no
    /// parameter or momentum buffer has changed then.
    bool step()
    {
        if (!all_finite())
        {
            std::string reason = nonfinite_message();
            if (m_policy == xcnn::nonfinite_policy::raise)
            {
                throw numeric_error(reason);
            }
            ++m_skipped;
            m_skip_reason = std::move(reason);
            return false;
        }
        for (std::size_t i = 0; i < m_parameters.size(); ++i)
        {
            auto& p = m_parameters[i];
            T* value = p.data();
            const T* grad = p.grad_data();
            const std::size_t size = p.size();
            if (m_momentum == T(0))
            {
                for (std::size_t j = 0; j < size; ++j)
                {
                    value[j] -= m_lr * (grad[j] + m_weight_decay * value[j]);
                }
                continue;
            }
            auto& buffer = m_buffers[i];
            const bool first = buffer.empty();
            if (!first && buffer.size() != size)
            {
                throw shape_error(detail::concat("SGD: parameter '", p.name(), "' changed size from ", buffer.size(),
                                                 " to ", size, " between steps"));
            }
            buffer.resize(size);
            for (std::size_t j = 0; j < size; ++j)
            {
                const T g = grad[j] + m_weight_decay * value[j];
                buffer[j] = first ? g : m_momentum * buffer[j] + g;
                value[j] -= m_lr * buffer[j];
            }
        }
        ++m_steps;
        return true;
    }

private:
    static constexpr const char* momentum_buffer_name = "momentum_buffer";

    /// The index of the parameter named `parameter`, `parameters().size()` if there is none.
    std::size_t index_of(const std::string& parameter) const noexcept
    {
        std::size_t i = 0;
        while (i < m_parameters.size() && m_parameters[i].name() != parameter)
        {
            ++i;
        }
        return i;
    }

    /// Checks that `list` names exactly `expected`, each once (in any order).
    template <class V>
    static void check_names(const std::vector<std::pair<std::string, V>>& list,
                            const std::vector<std::string>& expected, const char* what)
    {
        for (const auto& name : expected)
        {
            const auto count =
                std::count_if(list.begin(), list.end(), [&](const auto& entry) { return entry.first == name; });
            if (count != 1)
            {
                throw value_error(detail::concat("SGD: the state holds ", count, " ", what, "s '", name, "', not one"));
            }
        }
        if (list.size() != expected.size())
        {
            for (const auto& entry : list)
            {
                if (std::find(expected.begin(), expected.end(), entry.first) == expected.end())
                {
                    throw value_error(detail::concat("SGD: the state holds an unknown ", what, " '", entry.first, "'"));
                }
            }
        }
    }

    bool all_finite() const noexcept
    {
        bool finite = true;
        for (const auto& p : m_parameters)
        {
            finite &= detail::all_finite(p.data(), p.size()) && detail::all_finite(p.grad_data(), p.size());
        }
        return finite;
    }

    /// The error for a step that found non-finite values. A non-finite parameter is named before
    /// any gradient: it is the cause, and it makes the gradients of every layer before it
    /// non-finite too.
    std::string nonfinite_message() const
    {
        const std::string where = detail::concat("SGD step ", m_steps + m_skipped + 1, ": ");
        const char* const outcome =
            m_policy == xcnn::nonfinite_policy::raise ? "; no parameter was changed" : "; the step was skipped";
        for (const auto& p : m_parameters)
        {
            if (!detail::all_finite(p.data(), p.size()))
            {
                return detail::concat(where, "non-finite value in parameter ", detail::describe_parameter(p), ": ",
                                      detail::nonfinite_summary(p.data(), p.size()), outcome);
            }
        }
        std::size_t affected = 0;
        const parameter<T>* first = nullptr;
        for (const auto& p : m_parameters)
        {
            if (!detail::all_finite(p.grad_data(), p.size()))
            {
                first = first != nullptr ? first : &p;
                ++affected;
            }
        }
        if (first == nullptr) // unreachable when called after all_finite() failed
        {
            return where + "non-finite values" + outcome;
        }
        return detail::concat(where, "non-finite gradient in parameter ", detail::describe_parameter(*first), ": ",
                              detail::nonfinite_summary(first->grad_data(), first->size()), " (", affected, " of ",
                              m_parameters.size(), " gradients are affected; the loss or the input may be non-finite)",
                              outcome);
    }

    std::vector<parameter<T>> m_parameters;
    std::vector<std::vector<T>> m_buffers;
    T m_lr = 0;
    T m_momentum;
    T m_weight_decay;
    xcnn::nonfinite_policy m_policy = xcnn::nonfinite_policy::raise;
    std::uint64_t m_steps = 0;
    std::uint64_t m_skipped = 0;
    std::string m_skip_reason;
};

} // namespace xcnn

#endif // XCNN_OPTIM_SGD_HPP
