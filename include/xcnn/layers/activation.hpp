/// @file
/// `xcnn::activation<T, Op>`: an element-wise activation layer for tensors of any rank, one
/// template over a small functor (core/activation.hpp says what a functor provides). `ReLU<T>`
/// is `activation<T, relu_op>`; a new activation is a functor and an alias.
///
/// In a `Sequential`, an activation right after a layer that can apply it in its own output pass
/// (`Conv2D`, `Dense`: they provide `forward_activated`) runs as one step with it; see
/// network/sequential.hpp.
#ifndef XCNN_LAYERS_ACTIVATION_HPP
#define XCNN_LAYERS_ACTIVATION_HPP

#include <cstddef>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../core/activation.hpp"
#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "layer.hpp"

namespace xcnn
{

/// f(x) element-wise for the functor `Op`; takes a tensor of any rank (1 to 8) and returns the
/// same shape.
template <class T, class Op>
class activation : public layer_state<activation<T, Op>, T>
{
public:
    /// Scalar type of the layer's tensors (`float` or `double`).
    using value_type = T;
    /// The functor; `Sequential` hands it to a previous layer that applies it itself.
    using activation_op = Op;
    /// `any_rank`: an activation takes a tensor of any rank from 1 to `max_rank`.
    static constexpr int input_rank = any_rank;
    /// `any_rank`: the output has the rank and shape of the input.
    static constexpr int output_rank = any_rank;
    /// Highest rank taken.
    static constexpr std::size_t max_rank = 8;

    /// The activation of a default-constructed functor.
    activation() = default;
    /// The activation of `op` (for functors with settings, e.g. a negative slope).
    explicit activation(Op op) : m_op(std::move(op)) {}

    /// The functor.
    const Op& op() const noexcept { return m_op; }

    /// The functor's name, e.g. `ReLU()`, as shown in `Sequential::summary` and in error messages.
    std::string name() const { return m_op.name(); }

    /// `input_shape` itself, including empty ones (it is element-wise).
    /// @throws shape_error for a rank outside 1 to `max_rank`.
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const
    {
        if (input_shape.empty() || input_shape.size() > max_rank)
        {
            throw shape_error(detail::concat(name(), ": expected an input of rank 1 to ", max_rank, ", got shape ",
                                             detail::shape_to_string(input_shape)));
        }
        return input_shape;
    }

    /// f(x), keeping what `backward` needs (the output, and the input if the functor's gradient
    /// reads it).
    template <std::size_t N>
    const xt::xtensor<T, N>& forward(const xt::xtensor<T, N>& x)
    {
        const auto& y = predict(x);
        if constexpr (Op::backward_reads_input)
        {
            auto& kept = std::get<N - 1>(m_inputs);
            detail::ensure_shape(kept, x.shape());
            std::copy(x.begin(), x.end(), kept.begin());
        }
        m_cached_rank = N;
        return y;
    }

    /// Same result as `forward`, marked as inference: `backward` after it is an error.
    template <std::size_t N>
    const xt::xtensor<T, N>& predict(const xt::xtensor<T, N>& x)
    {
        static_assert(N >= 1 && N <= max_rank, "xcnn activations support ranks 1 to 8");
        m_cached_rank = 0;
        auto& y = std::get<N - 1>(m_outputs);
        detail::ensure_shape(y, x.shape());
        detail::apply_activation(m_op, x.data(), y.data(), x.size());
        return y;
    }

    /// dX = dY f'(x).
    /// @throws error unless the last call was a `forward` of rank N; shape_error if `grad_output`
    /// does not have the shape of the last output.
    template <std::size_t N>
    const xt::xtensor<T, N>& backward(const xt::xtensor<T, N>& grad_output)
    {
        const auto& y = checked_output<N>(grad_output);
        auto& dx = std::get<N - 1>(m_input_grads);
        detail::ensure_shape(dx, y.shape());
        const T* x = Op::backward_reads_input ? std::get<N - 1>(m_inputs).data() : nullptr;
        detail::activation_gradient(m_op, grad_output.data(), x, y.data(), dx.data(), y.size());
        return dx;
    }

    /// Nothing to compute (no parameters); checks what `backward` checks.
    template <std::size_t N>
    void backward_parameters(const xt::xtensor<T, N>& grad_output)
    {
        checked_output<N>(grad_output);
    }

private:
    template <std::size_t N>
    const xt::xtensor<T, N>& checked_output(const xt::xtensor<T, N>& grad_output) const
    {
        if (m_cached_rank != N)
        {
            throw error(detail::concat(name(), ": backward of a rank-", N,
                                       " gradient needs a forward (not predict) of that rank first"));
        }
        const auto& y = std::get<N - 1>(m_outputs);
        detail::require_grad_shape(*this, grad_output.shape(), y.shape());
        return y;
    }

    template <std::size_t... I>
    static auto make_buffers(std::index_sequence<I...>) -> std::tuple<xt::xtensor<T, I + 1>...>;
    using buffers_by_rank = decltype(make_buffers(std::make_index_sequence<max_rank>{}));

    // One (empty until used) buffer per rank: an activation after a Conv2D and one after a Dense
    // are the same type, and each still returns a fixed-rank container.
    Op m_op{};
    buffers_by_rank m_outputs;
    buffers_by_rank m_inputs; // only with Op::backward_reads_input
    buffers_by_rank m_input_grads;
    std::size_t m_cached_rank = 0;
};

} // namespace xcnn

#endif // XCNN_LAYERS_ACTIVATION_HPP
