/// @file
/// `xcnn::AvgPool2D`: average over sliding windows of NCHW tensors.
#ifndef XCNN_LAYERS_AVGPOOL2D_HPP
#define XCNN_LAYERS_AVGPOOL2D_HPP

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

/// Average pooling with PyTorch's `AvgPool2d` defaults (`count_include_pad=True`, floor mode):
/// output (N, C, (H + 2 PH - KH) / SH + 1, (W + 2 PW - KW) / SW + 1), each the sum of its window
/// divided by KH * KW, padded positions counting as zeros. The stride defaults to the kernel
/// size, the padding to 0 (at most half the kernel).
template <class T>
class AvgPool2D : public layer<AvgPool2D<T>, T, 4>
{
public:
    using typename layer<AvgPool2D<T>, T, 4>::input_type;
    using typename layer<AvgPool2D<T>, T, 4>::output_type;
    /// Height and width of a window, a stride or a padding.
    using size2 = std::array<std::size_t, 2>;

    /// A square window, moved by its own size (PyTorch's default stride).
    /// @throws value_error if `kernel_size` is zero or larger than `max_extent`.
    explicit AvgPool2D(std::size_t kernel_size) : AvgPool2D(size2{kernel_size, kernel_size}) {}
    /// A square window and stride, and the same padding on every side.
    /// @throws value_error if the kernel or the stride is zero or larger than `max_extent`, or
    /// the padding is more than half the kernel.
    AvgPool2D(std::size_t kernel_size, std::size_t stride, std::size_t padding = 0)
        : AvgPool2D(size2{kernel_size, kernel_size}, size2{stride, stride}, size2{padding, padding})
    {
    }
    /// A (KH, KW) window, moved by its own size.
    /// @throws value_error if a size is zero or larger than `max_extent`.
    explicit AvgPool2D(size2 kernel_size) : AvgPool2D(kernel_size, kernel_size) {}
    /// A (KH, KW) window moved by (SH, SW), the input zero-padded by PH rows above and below and
    /// PW columns left and right.
    /// @throws value_error if a kernel or stride size is zero or larger than `max_extent` (a
    /// negative number converted to `std::size_t`), or a padding is more than half the kernel.
    AvgPool2D(size2 kernel_size, size2 stride, size2 padding = {0, 0}) : m_window{kernel_size, stride, padding}
    {
        m_window.check(name());
    }

    /// (KH, KW).
    size2 kernel_size() const noexcept { return m_window.kernel; }
    /// (SH, SW).
    size2 stride() const noexcept { return m_window.stride; }
    /// (PH, PW).
    size2 padding() const noexcept { return m_window.padding; }

    /// `AvgPool2D(kernel_size=(KH, KW), stride=(SH, SW))`, with `, padding=(PH, PW)` when padded,
    /// as shown in `Sequential::summary` and in error messages.
    std::string name() const { return detail::concat("AvgPool2D(", m_window.describe(), ")"); }

    /// (N, C, (H + 2 PH - KH) / SH + 1, (W + 2 PW - KW) / SW + 1) for an (N, C, H, W) input; N
    /// may be 0.
    /// @throws shape_error for another rank, a zero channel count, height or width, or an input
    /// that, padded, is smaller than the window.
    template <class S>
    std::array<std::size_t, 4> checked_output_shape(const S& input_shape) const
    {
        return m_window.output_shape(*this, input_shape);
    }

    /// Average of each window. Backward needs only the input's shape, so training keeps nothing
    /// more.
    const output_type& run_forward(const input_type& x, bool)
    {
        const auto out = checked_output_shape(x.shape());
        detail::ensure_shape(m_output, out);
        m_input_shape = x.shape();
        const detail::pool_geometry g = m_window.geometry(x.shape(), out);
        const std::size_t scratch = reserve_scratch(g);
        detail::parallel_for_items(g.planes, g.h * g.w,
                                   [&](std::size_t first, std::size_t last, std::size_t worker) {
                                       detail::avg_pool_planes(g, first, last, x.data(), m_output.data(),
                                                               m_scratch.data() + worker * scratch);
                                   });
        return m_output;
    }

    /// Spreads each output gradient evenly, divided by KH * KW, over the input its window covers
    /// (summing where windows overlap).
    const input_type& run_backward(const output_type& grad_output)
    {
        detail::ensure_shape(m_input_grad, m_input_shape);
        const detail::pool_geometry g = m_window.geometry(m_input_shape, grad_output.shape());
        const std::size_t scratch = reserve_scratch(g);
        detail::parallel_for_items(g.planes, g.h * g.w,
                                   [&](std::size_t first, std::size_t last, std::size_t worker)
                                   {
                                       detail::avg_pool_input_grad_planes(g, first, last, grad_output.data(),
                                                                          m_input_grad.data(),
                                                                          m_scratch.data() + worker * scratch);
                                   });
        return m_input_grad;
    }

private:
    /// Scratch rows for every thread, grown (never shrunk) so steady steps allocate nothing.
    std::size_t reserve_scratch(const detail::pool_geometry& g)
    {
        const std::size_t scratch = detail::avg_pool_scratch<T>(g);
        m_scratch.resize(std::max(m_scratch.size(), scratch * get_num_threads()));
        return scratch;
    }

    detail::pool_window m_window;
    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
    std::vector<T, xsimd::aligned_allocator<T, 64>> m_scratch; // row sums of each thread
};

} // namespace xcnn

#endif // XCNN_LAYERS_AVGPOOL2D_HPP
