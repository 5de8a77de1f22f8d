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
/// Built like every pooling layer (`detail::pool2d_layer`): `MaxPool2D<T>(kernel)`,
/// `(kernel, stride, padding = 0)`, or the same with (height, width) pairs.
template <class T>
class MaxPool2D : public detail::pool2d_layer<MaxPool2D<T>, T>
{
    using base = detail::pool2d_layer<MaxPool2D<T>, T>;

public:
    using base::base;
    using typename base::input_type;
    using typename base::output_type;
    using typename base::size2;

    /// The class name, which `name()` shows: `MaxPool2D(kernel_size=(KH, KW), stride=(SH, SW))`.
    static constexpr const char* kind = "MaxPool2D";

    /// Max of each window; in training, remembers where each maximum came from.
    const output_type& run_forward(const input_type& x, bool training)
    {
        const auto out = this->checked_output_shape(x.shape());
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
    using base::m_window;
    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
    std::vector<std::size_t> m_argmax;
    std::vector<T, xsimd::aligned_allocator<T, 64>> m_rows; // scratch rows of the vectorised kernels
};

} // namespace xcnn

#endif // XCNN_LAYERS_MAXPOOL2D_HPP
