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
#include "pool2d.hpp"

namespace xcnn
{

/// Max pooling with PyTorch's `MaxPool2d` semantics (floor mode, no dilation): output
/// (N, C, (H + 2 PH - KH) / SH + 1, (W + 2 PW - KW) / SW + 1). The stride defaults to the kernel
/// size, the padding to 0; padded positions count as -inf and are never chosen (ResNet's stem
/// pools 3, 2, 1). Ties go to the first maximum in row-major window order, as in PyTorch.
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
    /// A square window and stride, and the same padding on every side.
    /// @throws value_error if the kernel or the stride is zero or larger than `max_extent`, or
    /// the padding is more than half the kernel.
    MaxPool2D(std::size_t kernel_size, std::size_t stride, std::size_t padding = 0)
        : MaxPool2D(size2{kernel_size, kernel_size}, size2{stride, stride}, size2{padding, padding})
    {
    }
    /// A (KH, KW) window, moved by its own size.
    /// @throws value_error if a size is zero or larger than `max_extent`.
    explicit MaxPool2D(size2 kernel_size) : MaxPool2D(kernel_size, kernel_size) {}
    /// A (KH, KW) window moved by (SH, SW), the input padded by PH rows above and below and PW
    /// columns left and right.
    /// @throws value_error if a kernel or stride size is zero or larger than `max_extent` (a
    /// negative number converted to `std::size_t`), or a padding is more than half the kernel.
    MaxPool2D(size2 kernel_size, size2 stride, size2 padding = {0, 0}) : m_window{kernel_size, stride, padding}
    {
        m_window.check(name());
    }

    /// (KH, KW).
    size2 kernel_size() const noexcept { return m_window.kernel; }
    /// (SH, SW).
    size2 stride() const noexcept { return m_window.stride; }
    /// (PH, PW).
    size2 padding() const noexcept { return m_window.padding; }

    /// `MaxPool2D(kernel_size=(KH, KW), stride=(SH, SW))`, with `, padding=(PH, PW)` when padded,
    /// as shown in `Sequential::summary` and in error messages.
    std::string name() const { return detail::concat("MaxPool2D(", m_window.describe(), ")"); }

    /// (N, C, (H + 2 PH - KH) / SH + 1, (W + 2 PW - KW) / SW + 1) for an (N, C, H, W) input; N
    /// may be 0.
    /// @throws shape_error for another rank, a zero channel count, height or width, or an input
    /// that, padded, is smaller than the window.
    template <class S>
    std::array<std::size_t, 4> checked_output_shape(const S& input_shape) const
    {
        return m_window.output_shape(*this, input_shape);
    }

    /// Max of each window; in training, remembers where each maximum came from.
    const output_type& run_forward(const input_type& x, bool training)
    {
        const auto out = checked_output_shape(x.shape());
        detail::ensure_shape(m_output, out);
        m_argmax.resize(training ? m_output.size() : 0);
        m_input_shape = x.shape();
        const detail::pool_geometry g = m_window.geometry(x.shape(), out);
        std::size_t* argmax = training ? m_argmax.data() : nullptr;
        const bool two_by_two =
            m_window.kernel == size2{2, 2} && m_window.stride == size2{2, 2} && m_window.padding == size2{0, 0};
        const bool by_rows = !two_by_two && detail::max_pool_rows_fits<T>(g);
        const std::size_t scratch = two_by_two ? detail::max_pool_2x2_scratch<T>(g)
                                    : by_rows  ? detail::max_pool_rows_scratch<T>(g)
                                               : 0;
        m_rows.resize(std::max(m_rows.size(), scratch * get_num_threads()));
        // Planes are independent: threads share them out, each with its own scratch rows.
        detail::parallel_for_items(
            g.planes, g.h * g.w,
            [&](std::size_t first, std::size_t last, std::size_t worker)
            {
                T* rows = m_rows.data() + worker * scratch;
                if (two_by_two)
                {
                    detail::max_pool_planes_2x2(g, first, last, x.data(), m_output.data(), argmax, rows);
                }
                else if (by_rows)
                {
                    detail::max_pool_planes_rows(g, first, last, x.data(), m_output.data(), argmax, rows);
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
    detail::pool_window m_window;
    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
    std::vector<std::size_t> m_argmax;
    std::vector<T, xsimd::aligned_allocator<T, 64>> m_rows; // scratch rows of the vectorised kernels
};

} // namespace xcnn

#endif // XCNN_LAYERS_MAXPOOL2D_HPP
