/// @file
/// `xcnn::Flatten`: (N, C, H, W) -> (N, C * H * W), the bridge from convolutions to `Dense`.
#ifndef XCNN_LAYERS_FLATTEN_HPP
#define XCNN_LAYERS_FLATTEN_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "layer.hpp"

namespace xcnn
{

/// Flattens each sample of an NCHW batch in row-major (C, H, W) order, as `torch.flatten(x, 1)`.
template <class T>
class Flatten : public layer<Flatten<T>, T, 4, 2>
{
public:
    using typename layer<Flatten<T>, T, 4, 2>::input_type;
    using typename layer<Flatten<T>, T, 4, 2>::output_type;

    /// Declares that the output is the input's memory read as (N, C * H * W): a next layer that
    /// can read an (N, C, H, W) input as rows (`forward_flattened`) runs with this one as one
    /// step, with no copy in either direction.
    static constexpr bool reshapes_to_rows = true;

    /// `Flatten()`, as shown in `Sequential::summary` and in error messages.
    std::string name() const { return "Flatten()"; }

    /// The kind in a `layer_spec`.
    static constexpr const char* kind = "Flatten";
    /// No options: xcnn's Flatten is PyTorch's with its defaults, start_dim=1, end_dim=-1.
    layer_spec spec() const { return layer_spec{kind, {}, {}}; }
    /// A `Flatten`.
    /// @throws value_error for another kind or any option.
    static Flatten from_spec(const layer_spec& spec)
    {
        spec_reader(spec, kind, {});
        return Flatten();
    }

    /// (N, C * H * W) for an (N, C, H, W) input; N may be 0.
    /// @throws shape_error for an input of another rank, a zero channel count, height or width, or
    /// C * H * W larger than `max_extent`.
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

    /// Each sample copied into one row of (N, C * H * W); remembers the input shape for `backward`.
    const output_type& run_forward(const input_type& x, bool)
    {
        detail::ensure_shape(m_output, checked_output_shape(x.shape()));
        std::copy(x.begin(), x.end(), m_output.begin());
        m_input_shape = x.shape();
        return m_output;
    }

    /// The gradient reshaped back to the input's (N, C, H, W).
    const input_type& run_backward(const output_type& grad_output)
    {
        detail::ensure_shape(m_input_grad, m_input_shape);
        std::copy(grad_output.begin(), grad_output.end(), m_input_grad.begin());
        return m_input_grad;
    }

private:
    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
};

} // namespace xcnn

#endif // XCNN_LAYERS_FLATTEN_HPP
