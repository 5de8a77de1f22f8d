/// @file
/// `xcnn::ReLU`: max(x, 0) element-wise, for tensors of any rank.
#ifndef XCNN_LAYERS_RELU_HPP
#define XCNN_LAYERS_RELU_HPP

#include <cstddef>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "../network/parameter.hpp"
#include "layer.hpp"

namespace xcnn
{

/// Rectified linear unit. Takes a tensor of any rank (1 to 8) and returns the same shape.
template <class T>
class ReLU
{
public:
    /// Scalar type of the layer's tensors and parameters (`float` or `double`).
    using value_type = T;
    /// `any_rank`: ReLU takes a tensor of any rank from 1 to `max_rank`.
    static constexpr int input_rank = any_rank;
    /// `any_rank`: the output has the rank and shape of the input.
    static constexpr int output_rank = any_rank;
    /// Highest rank ReLU takes.
    static constexpr std::size_t max_rank = 8;

    /// `ReLU()`, as shown in `Sequential::summary` and in error messages.
    std::string name() const { return "ReLU()"; }
    /// `input_shape` itself: ReLU keeps the shape, including empty ones (it is element-wise).
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
    /// None: this layer has no parameters.
    std::vector<parameter<T>> parameters() { return {}; }
    /// 0: this layer has no parameters.
    std::size_t num_parameters() const { return 0; }
    /// Nothing to draw; present so every layer has the same interface.
    void reset_parameters(std::mt19937&) {}

    /// max(x, 0) (NaN stays NaN); keeps the output, whose sign is the mask `backward` needs.
    template <std::size_t N>
    const xt::xtensor<T, N>& forward(const xt::xtensor<T, N>& x)
    {
        const auto& y = predict(x);
        m_cached_rank = N;
        return y;
    }

    /// Same result as `forward`, marked as inference: it overwrites the output `backward`
    /// masks with, so `backward` after it is an error (as for the other layers).
    template <std::size_t N>
    const xt::xtensor<T, N>& predict(const xt::xtensor<T, N>& x)
    {
        static_assert(N >= 1 && N <= max_rank, "xcnn::ReLU supports ranks 1 to 8");
        m_cached_rank = 0;
        auto& y = std::get<N - 1>(m_outputs);
        detail::ensure_shape(y, x.shape());
        const T* in = x.data();
        T* out = y.data();
        for (std::size_t i = 0, size = x.size(); i < size; ++i)
        {
            // `x < 0 ? 0 : x` rather than `x > 0 ? x : 0`: a NaN passes through, as in PyTorch,
            // so a diverging network is not hidden.
            out[i] = in[i] < T(0) ? T(0) : in[i];
        }
        return y;
    }

    /// dX = dY where the input was positive, 0 elsewhere (PyTorch's choice at 0).
    /// @throws error unless the last call was a `forward` of rank N; shape_error if `grad_output`
    /// does not have the shape of the last output.
    template <std::size_t N>
    const xt::xtensor<T, N>& backward(const xt::xtensor<T, N>& grad_output)
    {
        if (m_cached_rank != N)
        {
            throw error(detail::concat(name(), ": backward of a rank-", N,
                                       " gradient needs a forward (not predict) of that rank first"));
        }
        const auto& y = std::get<N - 1>(m_outputs);
        detail::require_grad_shape(*this, grad_output.shape(), y.shape());
        auto& dx = std::get<N - 1>(m_input_grads);
        detail::ensure_shape(dx, y.shape());
        const T* out = y.data();
        const T* dy = grad_output.data();
        T* g = dx.data();
        for (std::size_t i = 0, size = y.size(); i < size; ++i)
        {
            g[i] = out[i] > T(0) ? dy[i] : T(0);
        }
        return dx;
    }

private:
    template <std::size_t... I>
    static auto make_buffers(std::index_sequence<I...>) -> std::tuple<xt::xtensor<T, I + 1>...>;
    using buffers = decltype(make_buffers(std::make_index_sequence<max_rank>{}));

    // One (empty until used) buffer per rank: a ReLU after a Conv2D and one after a Dense are
    // the same type, and each still returns a fixed-rank container.
    buffers m_outputs;
    buffers m_input_grads;
    std::size_t m_cached_rank = 0;
};

} // namespace xcnn

#endif // XCNN_LAYERS_RELU_HPP
