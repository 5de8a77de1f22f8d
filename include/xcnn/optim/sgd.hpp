/// @file
/// `xcnn::SGD`: stochastic gradient descent with momentum and weight decay, PyTorch's rule.
#ifndef XCNN_OPTIM_SGD_HPP
#define XCNN_OPTIM_SGD_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../network/parameter.hpp"

namespace xcnn
{

/// Updates each parameter p with its gradient g exactly as `torch.optim.SGD` does
/// (dampening 0, no Nesterov):
///
///     g = g + weight_decay * p
///     b = g                     (first step)
///     b = momentum * b + g      (later steps)
///     p = p - lr * b            (b = g when momentum is 0)
template <class T>
class SGD
{
public:
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

    /// Sets every gradient to zero. Layers overwrite their gradients in `backward`, so a
    /// training loop does not need this; it exists for code written in PyTorch's idiom.
    void zero_grad()
    {
        for (auto& p : m_parameters)
        {
            std::fill(p.grad_data(), p.grad_data() + p.size(), T(0));
        }
    }

    /// One update of every parameter from its current gradient.
    void step()
    {
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
    }

private:
    std::vector<parameter<T>> m_parameters;
    std::vector<std::vector<T>> m_buffers;
    T m_lr = 0;
    T m_momentum;
    T m_weight_decay;
};

} // namespace xcnn

#endif // XCNN_OPTIM_SGD_HPP
