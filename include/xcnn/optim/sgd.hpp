/// @file
/// `xcnn::SGD`: stochastic gradient descent with momentum and weight decay, PyTorch's rule.
#ifndef XCNN_OPTIM_SGD_HPP
#define XCNN_OPTIM_SGD_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../network/parameter.hpp"

namespace xcnn
{

/// What `SGD::step` does when a gradient or a parameter is not finite (NaN or infinite).
enum class nonfinite_policy
{
    raise,    ///< throw `numeric_error` naming the step and the parameter (the default)
    skip_step ///< leave every parameter and momentum buffer as it is, count the step as skipped
};

/// Everything `SGD` carries from one step to the next, like PyTorch's `optimizer.state_dict()`:
/// what a checkpoint must hold to continue training exactly.
template <class T>
struct sgd_state
{
    T lr = 0;                                     ///< learning rate
    T momentum = 0;                               ///< momentum factor
    T weight_decay = 0;                           ///< L2 penalty factor
    std::uint64_t steps = 0;                      ///< updates applied so far
    std::uint64_t skipped_steps = 0;              ///< steps skipped for non-finite values
    std::vector<std::vector<T>> momentum_buffers; ///< one per parameter; empty before its first update
};

namespace detail
{

/// The unsigned integer holding the bits of `T` and the mask of its exponent field, which is all
/// ones exactly for infinities and NaNs.
template <class T>
struct float_bits;
template <>
struct float_bits<float>
{
    using type = std::uint32_t;
    static constexpr type exponent = 0x7F800000u;
};
template <>
struct float_bits<double>
{
    using type = std::uint64_t;
    static constexpr type exponent = 0x7FF0000000000000ull;
};

/// Whether all `size` values are finite. The optimizer runs this over every parameter and
/// gradient at every step, so it tests exponent bits with integer operations in fixed-size
/// blocks, which GCC 12 vectorises at -O2 as well as -O3 (it leaves a loop on `std::isfinite` or
/// `std::abs(x) <= max` scalar, about 5 times slower; Clang vectorises both).
template <class T>
bool all_finite(const T* values, std::size_t size) noexcept
{
    using bits = typename float_bits<T>::type;
    constexpr bits exponent = float_bits<T>::exponent;
    constexpr std::size_t block = 64;
    bits bad = 0;
    std::size_t j = 0;
    for (; j + block <= size; j += block)
    {
        for (std::size_t k = 0; k < block; ++k)
        {
            bits b;
            std::memcpy(&b, values + j + k, sizeof b);
            bad |= static_cast<bits>((b & exponent) == exponent);
        }
    }
    for (; j < size; ++j)
    {
        bits b;
        std::memcpy(&b, values + j, sizeof b);
        bad |= static_cast<bits>((b & exponent) == exponent);
    }
    return bad == 0;
}

/// "'3.weight' (Conv2D(...))": a parameter as messages name it.
template <class T>
std::string describe_parameter(const parameter<T>& p)
{
    return p.layer().empty() ? concat("'", p.name(), "'") : concat("'", p.name(), "' (", p.layer(), ")");
}

/// "3 of 2400 elements are not finite, the first at index 17 (nan)", for `size` values that are
/// not all finite.
template <class T>
std::string nonfinite_summary(const T* values, std::size_t size)
{
    std::size_t count = 0, first = size;
    for (std::size_t j = 0; j < size; ++j)
    {
        if (!std::isfinite(values[j]))
        {
            first = count++ == 0 ? j : first;
        }
    }
    return concat(count, " of ", size, " elements ", count == 1 ? "is" : "are", " not finite, the first at index ",
                  first, " (", values[first], ")");
}

} // namespace detail

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

    /// A copy of the state a checkpoint needs: hyperparameters, counters and momentum buffers.
    sgd_state<T> state_dict() const
    {
        return sgd_state<T>{m_lr, m_momentum, m_weight_decay, m_steps, m_skipped, m_buffers};
    }

    /// Restores a state from `state_dict()`, after checking that it fits this optimizer's
    /// parameters; on an exception nothing has changed.
    /// @throws shape_error if the number of momentum buffers differs from the number of
    /// parameters or a buffer's size from its parameter's; value_error for invalid hyperparameters.
    void load_state_dict(sgd_state<T> state)
    {
        check_state_dict(state);
        m_lr = state.lr;
        m_momentum = state.momentum;
        m_weight_decay = state.weight_decay;
        m_steps = state.steps;
        m_skipped = state.skipped_steps;
        m_buffers.swap(state.momentum_buffers);
    }

    /// Throws what `load_state_dict(state)` would throw, changing nothing.
    void check_state_dict(const sgd_state<T>& state) const
    {
        if (state.momentum_buffers.size() != m_parameters.size())
        {
            throw shape_error(detail::concat("SGD: the state holds ", state.momentum_buffers.size(),
                                             " momentum buffers but the optimizer has ", m_parameters.size(),
                                             " parameters"));
        }
        for (std::size_t i = 0; i < m_parameters.size(); ++i)
        {
            const auto& buffer = state.momentum_buffers[i];
            if (!buffer.empty() && buffer.size() != m_parameters[i].size())
            {
                throw shape_error(detail::concat("SGD: the momentum buffer of parameter ",
                                                 detail::describe_parameter(m_parameters[i]), " has ", buffer.size(),
                                                 " elements, the parameter ", m_parameters[i].size(), " (shape ",
                                                 detail::shape_to_string(m_parameters[i].shape()), ")"));
            }
        }
        if (!(state.lr >= T(0)) || !std::isfinite(state.lr) || !(state.momentum >= T(0)) ||
            !(state.weight_decay >= T(0)) || !std::isfinite(state.momentum) || !std::isfinite(state.weight_decay))
        {
            throw value_error(detail::concat("SGD: invalid state: learning rate ", state.lr, ", momentum ",
                                             state.momentum, ", weight_decay ", state.weight_decay,
                                             " (each must be finite and >= 0)"));
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
