/// @file
/// `xcnn::GlobalAvgPool2D`: the mean of each channel's plane, (N, C, H, W) -> (N, C).
#ifndef XCNN_LAYERS_GLOBAL_AVGPOOL2D_HPP
#define XCNN_LAYERS_GLOBAL_AVGPOOL2D_HPP

#include <array>
#include <cstddef>
#include <string>

#include "../core/error.hpp"
#include "../core/pooling.hpp"
#include "../core/threading.hpp"
#include "../core/xtensor_shim.hpp"
#include "layer.hpp"

namespace xcnn
{

/// Global average pooling: y[n, c] = the mean of x[n, c, :, :], PyTorch's
/// `AdaptiveAvgPool2d(1)` followed by `Flatten()` (the head of ResNet-style networks). The
/// output has rank 2, so a `Dense` follows it directly, without a `Flatten`. It is average
/// pooling with the whole plane as its window, and runs the same kernels as `AvgPool2D`.
template <class T>
class GlobalAvgPool2D : public layer<GlobalAvgPool2D<T>, T, 4, 2>
{
public:
    using typename layer<GlobalAvgPool2D<T>, T, 4, 2>::input_type;
    using typename layer<GlobalAvgPool2D<T>, T, 4, 2>::output_type;

    /// `GlobalAvgPool2D()`, as shown in `Sequential::summary` and in error messages.
    std::string name() const { return "GlobalAvgPool2D()"; }

    /// The kind in a `layer_spec`.
    static constexpr const char* kind = "GlobalAvgPool2D";
    /// No options.
    layer_spec spec() const { return layer_spec{kind, {}, {}}; }
    /// A `GlobalAvgPool2D`.
    /// @throws value_error for another kind or any option.
    static GlobalAvgPool2D from_spec(const layer_spec& spec)
    {
        spec_reader(spec, kind, {});
        return GlobalAvgPool2D();
    }

    /// (N, C) for an (N, C, H, W) input; N may be 0.
    /// @throws shape_error for another rank or a zero channel count, height or width.
    template <class S>
    std::array<std::size_t, 2> checked_output_shape(const S& input_shape) const
    {
        detail::require_rank(*this, input_shape, 4, "(N, C, H, W)");
        detail::require_nonempty_axes(*this, input_shape, 1);
        return {input_shape[0], input_shape[1]};
    }

    /// The mean of each plane. Backward needs only the input's shape.
    const output_type& run_forward(const input_type& x, bool)
    {
        detail::ensure_shape(m_output, checked_output_shape(x.shape()));
        m_input_shape = x.shape();
        const detail::pool_geometry g = geometry();
        // (N, C) is laid out as (N, C, 1, 1): one output per plane.
        detail::parallel_for_items(
            g.planes, g.h * g.w,
            [&](std::size_t first, std::size_t last, std::size_t)
            { detail::avg_pool_planes(g, first, last, x.data(), m_output.data(), static_cast<T*>(nullptr)); });
        return m_output;
    }

    /// Each output gradient divided by H * W, over its whole plane.
    const input_type& run_backward(const output_type& grad_output)
    {
        detail::ensure_shape(m_input_grad, m_input_shape);
        const detail::pool_geometry g = geometry();
        detail::parallel_for_items(g.planes, g.h * g.w,
                                   [&](std::size_t first, std::size_t last, std::size_t)
                                   {
                                       detail::avg_pool_input_grad_planes(g, first, last, grad_output.data(),
                                                                          m_input_grad.data(),
                                                                          static_cast<T*>(nullptr));
                                   });
        return m_input_grad;
    }

private:
    /// The plane as the window: the kernels then need no scratch (`window_is_plane`).
    detail::pool_geometry geometry() const
    {
        const std::size_t h = m_input_shape[2], w = m_input_shape[3];
        return {m_input_shape[0] * m_input_shape[1], h, w, 1, 1, h, w, 1, 1, 0, 0};
    }

    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
};

} // namespace xcnn

#endif // XCNN_LAYERS_GLOBAL_AVGPOOL2D_HPP
