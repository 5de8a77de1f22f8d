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
/// Built like every pooling layer (`detail::pool2d_layer`): `AvgPool2D<T>(kernel)`,
/// `(kernel, stride, padding = 0)`, or the same with (height, width) pairs.
template <class T>
class AvgPool2D : public detail::pool2d_layer<AvgPool2D<T>, T>
{
    using base = detail::pool2d_layer<AvgPool2D<T>, T>;

public:
    using base::base;
    using typename base::input_type;
    using typename base::output_type;
    using typename base::size2;

    /// The class name, which `name()` shows: `AvgPool2D(kernel_size=(KH, KW), stride=(SH, SW))`.
    static constexpr const char* kind = "AvgPool2D";

    /// Average of each window. Backward needs only the input's shape, so training keeps nothing
    /// more.
    const output_type& run_forward(const input_type& x, bool)
    {
        const auto out = this->checked_output_shape(x.shape());
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

    using base::m_window;
    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
    std::vector<T, xsimd::aligned_allocator<T, 64>> m_scratch; // row sums of each thread
};

} // namespace xcnn

#endif // XCNN_LAYERS_AVGPOOL2D_HPP
