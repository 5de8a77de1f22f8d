/// @file
/// `xcnn::MaxPool2D`: max over sliding windows of NCHW tensors.
#ifndef XCNN_LAYERS_MAXPOOL2D_HPP
#define XCNN_LAYERS_MAXPOOL2D_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/pooling.hpp"
#include "../core/threading.hpp"
#include "../core/xtensor_shim.hpp"
#include "layer.hpp"

namespace xcnn
{

/// Max pooling with PyTorch's `MaxPool2d` semantics (no padding, floor mode): output
/// (N, C, (H - KH) / SH + 1, (W - KW) / SW + 1). The stride defaults to the kernel size.
/// Ties go to the first maximum in row-major window order, as in PyTorch.
template <class T>
class MaxPool2D : public layer<MaxPool2D<T>, T, 4>
{
public:
    using typename layer<MaxPool2D<T>, T, 4>::input_type;
    using typename layer<MaxPool2D<T>, T, 4>::output_type;
    /// Height and width of a window or a stride.
    using size2 = std::array<std::size_t, 2>;

    /// A square window, moved by its own size (PyTorch's default stride).
    /// @throws value_error if `kernel_size` is zero or larger than `max_extent`.
    explicit MaxPool2D(std::size_t kernel_size) : MaxPool2D(size2{kernel_size, kernel_size}) {}
    /// A square window and stride.
    /// @throws value_error if a size is zero or larger than `max_extent`.
    MaxPool2D(std::size_t kernel_size, std::size_t stride)
        : MaxPool2D(size2{kernel_size, kernel_size}, size2{stride, stride})
    {
    }
    /// A (KH, KW) window, moved by its own size.
    /// @throws value_error if a size is zero or larger than `max_extent`.
    explicit MaxPool2D(size2 kernel_size) : MaxPool2D(kernel_size, kernel_size) {}
    /// A (KH, KW) window moved by (SH, SW).
    /// @throws value_error if a size is zero or larger than `max_extent` (a negative number
    /// converted to `std::size_t`).
    MaxPool2D(size2 kernel_size, size2 stride) : m_kernel(kernel_size), m_stride(stride)
    {
        const std::string layer = name();
        for (std::size_t d = 0; d < 2; ++d)
        {
            detail::require_size_argument(layer, "kernel_size", m_kernel[d], detail::shape_to_string(m_kernel), 1);
            detail::require_size_argument(layer, "stride", m_stride[d], detail::shape_to_string(m_stride), 1);
        }
    }

    /// (KH, KW).
    size2 kernel_size() const noexcept { return m_kernel; }
    /// (SH, SW).
    size2 stride() const noexcept { return m_stride; }

    /// `MaxPool2D(kernel_size=(KH, KW), stride=(SH, SW))`, as shown in `Sequential::summary` and in
    /// error messages.
    std::string name() const
    {
        return detail::concat("MaxPool2D(kernel_size=", detail::shape_to_string(m_kernel),
                              ", stride=", detail::shape_to_string(m_stride), ")");
    }

    /// (N, C, (H - KH) / SH + 1, (W - KW) / SW + 1) for an (N, C, H, W) input; N may be 0.
    /// @throws shape_error for another rank, a zero channel count, height or width, or an input
    /// smaller than the window.
    template <class S>
    std::array<std::size_t, 4> checked_output_shape(const S& input_shape) const
    {
        detail::require_rank(*this, input_shape, 4, "(N, C, H, W)");
        detail::require_nonempty_axes(*this, input_shape, 1);
        if (input_shape[2] < m_kernel[0] || input_shape[3] < m_kernel[1])
        {
            throw shape_error(detail::concat(name(), ": input ", detail::shape_to_string(input_shape),
                                             " is smaller than the kernel ", detail::shape_to_string(m_kernel)));
        }
        return {input_shape[0], input_shape[1], (input_shape[2] - m_kernel[0]) / m_stride[0] + 1,
                (input_shape[3] - m_kernel[1]) / m_stride[1] + 1};
    }

    /// Max of each window; in training, remembers where each maximum came from.
    const output_type& run_forward(const input_type& x, bool training)
    {
        const auto out = checked_output_shape(x.shape());
        detail::ensure_shape(m_output, out);
        m_argmax.resize(training ? m_output.size() : 0);
        m_input_shape = x.shape();
        const detail::pool_geometry g{x.shape()[0] * x.shape()[1],
                                      x.shape()[2],
                                      x.shape()[3],
                                      out[2],
                                      out[3],
                                      m_kernel[0],
                                      m_kernel[1],
                                      m_stride[0],
                                      m_stride[1]};
        std::size_t* argmax = training ? m_argmax.data() : nullptr;
        const bool two_by_two = m_kernel == size2{2, 2} && m_stride == size2{2, 2};
        const std::size_t scratch = two_by_two ? detail::max_pool_2x2_scratch<T>(g) : 0;
        m_rows.resize(std::max(m_rows.size(), scratch * get_num_threads()));
        // Planes are independent: threads share them out, each with its own scratch rows.
        detail::parallel_for_items(g.planes, g.h * g.w,
                                   [&](std::size_t first, std::size_t last, std::size_t worker)
                                   {
                                       if (two_by_two)
                                       {
                                           detail::max_pool_planes_2x2(g, first, last, x.data(), m_output.data(),
                                                                       argmax, m_rows.data() + worker * scratch);
                                       }
                                       else
                                       {
                                           detail::max_pool_planes(g, first, last, x.data(), m_output.data(), argmax);
                                       }
                                   });
        return m_output;
    }

    /// Routes each output gradient to the input element that was the window's maximum
    /// (summing where overlapping windows share a maximum).
    const input_type& run_backward(const output_type& grad_output)
    {
        detail::ensure_shape(m_input_grad, m_input_shape);
        const std::size_t planes = m_input_shape[0] * m_input_shape[1];
        const std::size_t in_plane = m_input_shape[2] * m_input_shape[3];
        const std::size_t out_plane = planes == 0 ? 0 : grad_output.size() / planes;
        detail::parallel_for_items(planes, in_plane,
                                   [&](std::size_t first, std::size_t last, std::size_t)
                                   {
                                       detail::max_pool_input_grad_planes(first, last, in_plane, out_plane,
                                                                          grad_output.data(), m_argmax.data(),
                                                                          m_input_grad.data());
                                   });
        return m_input_grad;
    }

private:
    size2 m_kernel;
    size2 m_stride;
    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
    std::vector<std::size_t> m_argmax;
    std::vector<T, xsimd::aligned_allocator<T, 64>> m_rows; // scratch rows of the 2 x 2 kernel
};

} // namespace xcnn

#endif // XCNN_LAYERS_MAXPOOL2D_HPP
