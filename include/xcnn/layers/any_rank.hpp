/// @file
/// `xcnn::any_rank_layer`: what an element-wise layer taking a tensor of any rank (1 to 8) has
/// in common: its rank contract and output shape, one output and one input-gradient buffer per
/// rank, and the check that a `backward` follows a `forward` of its rank. The activations
/// (layers/activation.hpp) and Dropout derive from it and add their passes.
#ifndef XCNN_LAYERS_ANY_RANK_HPP
#define XCNN_LAYERS_ANY_RANK_HPP

#include <cstddef>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "layer.hpp"

namespace xcnn
{

/// The base of an element-wise layer `Derived` over any rank (a CRTP base: `Derived` provides
/// `name()` and its passes, which take their buffers from `output_for` and `input_grad_for`).
template <class Derived, class T>
class any_rank_layer : public layer_state<Derived, T>
{
public:
    /// Scalar type of the layer's tensors (`float` or `double`).
    using value_type = T;
    /// `any_rank`: the layer takes a tensor of any rank from 1 to `max_rank`.
    static constexpr int input_rank = any_rank;
    /// `any_rank`: the output has the rank and shape of the input.
    static constexpr int output_rank = any_rank;
    /// Highest rank taken.
    static constexpr std::size_t max_rank = 8;

    /// `input_shape` itself, including empty ones (it is element-wise).
    /// @throws shape_error for a rank outside 1 to `max_rank`.
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const
    {
        if (input_shape.empty() || input_shape.size() > max_rank)
        {
            throw shape_error(detail::concat(derived().name(), ": expected an input of rank 1 to ", max_rank,
                                             ", got shape ", detail::shape_to_string(input_shape)));
        }
        return input_shape;
    }

    /// Nothing to compute (no parameters); checks what `backward` checks.
    template <std::size_t N>
    void backward_parameters(const xt::xtensor<T, N>& grad_output)
    {
        checked_output<N>(grad_output);
    }

protected:
    /// The type of a tuple of one tensor per rank from 1 to sizeof...(I) (declared only: its
    /// return type is what `buffers_by_rank` names).
    template <std::size_t... I>
    static auto make_buffers(std::index_sequence<I...>) -> std::tuple<xt::xtensor<T, I + 1>...>;
    /// One (empty until used) buffer per rank: the layer after a Conv2D and the one after a Dense
    /// are the same type, and each still returns a fixed-rank container.
    using buffers_by_rank = decltype(make_buffers(std::make_index_sequence<max_rank>{}));

    /// The rank-N output buffer, shaped `shape`. A `training` pass lets a `backward` of rank N
    /// follow; an inference pass makes `backward` an error until the next training pass.
    template <std::size_t N, class S>
    xt::xtensor<T, N>& output_for(const S& shape, bool training)
    {
        static_assert(N >= 1 && N <= max_rank, "xcnn's element-wise layers take ranks 1 to 8");
        m_forward_rank = training ? N : 0;
        auto& y = std::get<N - 1>(m_outputs);
        detail::ensure_shape(y, shape);
        return y;
    }

    /// The output of the last training pass, which `grad_output` must match.
    /// @throws error unless the last pass was a training pass of rank N; shape_error if
    /// `grad_output` does not have the output's shape.
    template <std::size_t N>
    const xt::xtensor<T, N>& checked_output(const xt::xtensor<T, N>& grad_output) const
    {
        if (m_forward_rank != N)
        {
            throw error(detail::concat(derived().name(), ": backward of a rank-", N,
                                       " gradient needs a forward (not predict) of that rank first"));
        }
        const auto& y = std::get<N - 1>(m_outputs);
        detail::require_grad_shape(derived(), grad_output.shape(), y.shape());
        return y;
    }

    /// The rank-N input-gradient buffer, shaped like the output of the last training pass.
    template <std::size_t N>
    xt::xtensor<T, N>& input_grad_for(const xt::xtensor<T, N>& output)
    {
        auto& dx = std::get<N - 1>(m_input_grads);
        detail::ensure_shape(dx, output.shape());
        return dx;
    }

private:
    const Derived& derived() const noexcept { return static_cast<const Derived&>(*this); }

    buffers_by_rank m_outputs;
    buffers_by_rank m_input_grads;
    std::size_t m_forward_rank = 0; // N after a training pass of rank N, 0 after an inference
};

} // namespace xcnn

#endif // XCNN_LAYERS_ANY_RANK_HPP
