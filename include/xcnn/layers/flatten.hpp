/// @file
/// `xcnn::Flatten`: (N, C, H, W) -> (N, C * H * W), the bridge from convolutions to `Dense`.
#ifndef XCNN_LAYERS_FLATTEN_HPP
#define XCNN_LAYERS_FLATTEN_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "../network/parameter.hpp"
#include "layer.hpp"

namespace xcnn
{

/// Flattens each sample of an NCHW batch in row-major (C, H, W) order, as `torch.flatten(x, 1)`.
template <class T>
class Flatten : public detail::expression_input<Flatten<T>, T, 4, 2>
{
public:
    /// Scalar type of the layer's tensors and parameters (`float` or `double`).
    using value_type = T;
    using detail::expression_input<Flatten<T>, T, 4, 2>::forward;
    using detail::expression_input<Flatten<T>, T, 4, 2>::predict;
    using detail::expression_input<Flatten<T>, T, 4, 2>::backward;
    /// The input layout named in rank errors.
    static constexpr const char* input_layout = "(N, C, H, W)";
    /// The gradient layout named in rank errors.
    static constexpr const char* output_layout = "(N, features)";
    /// What `forward` takes: (N, C, H, W).
    using input_type = xt::xtensor<T, 4>;
    /// What `forward` returns: (N, C * H * W).
    using output_type = xt::xtensor<T, 2>;
    /// Rank of the input; `Sequential` checks it against the previous layer at compile time.
    static constexpr int input_rank = 4;
    /// Rank of the output; `Sequential` checks it against the next layer at compile time.
    static constexpr int output_rank = 2;

    /// `Flatten()`, as shown in `Sequential::summary` and in error messages.
    std::string name() const { return "Flatten()"; }
    /// (N, C * H * W) for an (N, C, H, W) input; N may be 0.
    /// @throws shape_error for an input of another rank, a zero channel count, height or width, or
    /// C * H * W larger than `max_extent`.
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const
    {
        const auto shape = checked_output_shape(input_shape);
        return std::vector<std::size_t>(shape.begin(), shape.end());
    }
    /// None: this layer has no parameters.
    std::vector<parameter<T>> parameters() { return {}; }
    /// 0: this layer has no parameters.
    std::size_t num_parameters() const { return 0; }
    /// Nothing to draw; present so every layer has the same interface.
    void reset_parameters(std::mt19937&) {}

    /// Each sample copied into one row of (N, C * H * W); remembers the input shape for `backward`.
    /// @throws shape_error as `output_shape` does; the layer is then unchanged.
    const output_type& forward(const input_type& x)
    {
        predict(x);
        m_input_shape = x.shape();
        m_has_cache = true;
        return m_output;
    }

    /// Same result as `forward`, marked as inference: `backward` after it is an error.
    const output_type& predict(const input_type& x)
    {
        const auto out = checked_output_shape(x.shape());
        m_has_cache = false;
        detail::ensure_shape(m_output, out);
        std::copy(x.begin(), x.end(), m_output.begin());
        return m_output;
    }

    /// The gradient reshaped back to the input's (N, C, H, W).
    /// @throws error without a `forward` since construction or after a `predict`; shape_error if
    /// `grad_output` does not have the shape of the last output.
    const input_type& backward(const output_type& grad_output)
    {
        if (!m_has_cache)
        {
            throw error(detail::concat(name(), ": backward needs a forward (not predict) first"));
        }
        const auto& s = m_input_shape;
        detail::require_grad_shape(*this, grad_output.shape(), std::array<std::size_t, 2>{s[0], s[1] * s[2] * s[3]});
        detail::ensure_shape(m_input_grad, s);
        std::copy(grad_output.begin(), grad_output.end(), m_input_grad.begin());
        return m_input_grad;
    }

private:
    template <class S>
    std::array<std::size_t, 2> checked_output_shape(const S& input_shape) const
    {
        detail::require_rank(*this, input_shape, 4, "(N, C, H, W)");
        detail::require_nonempty_axes(*this, input_shape, 1);
        // An empty batch can carry any C, H and W, so their product is not bounded by the input's
        // size.
        const std::array<std::size_t, 3> sample{input_shape[1], input_shape[2], input_shape[3]};
        if (!detail::addressable(sample))
        {
            throw shape_error(detail::concat(name(), ": input ", detail::shape_to_string(input_shape),
                                             " has more than ", max_extent, " features per sample"));
        }
        return {input_shape[0], input_shape[1] * input_shape[2] * input_shape[3]};
    }

    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
    bool m_has_cache = false;
};

} // namespace xcnn

#endif // XCNN_LAYERS_FLATTEN_HPP
