/// @file
/// `xcnn::MaxPool2D`: max over sliding windows of NCHW tensors.
#ifndef XCNN_LAYERS_MAXPOOL2D_HPP
#define XCNN_LAYERS_MAXPOOL2D_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "../network/parameter.hpp"
#include "layer.hpp"

namespace xcnn
{

/// Max pooling with PyTorch's `MaxPool2d` semantics (no padding, floor mode): output
/// (N, C, (H - KH) / SH + 1, (W - KW) / SW + 1). The stride defaults to the kernel size.
/// Ties go to the first maximum in row-major window order, as in PyTorch.
template <class T>
class MaxPool2D : public detail::expression_input<MaxPool2D<T>, T, 4>
{
public:
    /// Scalar type of the layer's tensors and parameters (`float` or `double`).
    using value_type = T;
    using detail::expression_input<MaxPool2D<T>, T, 4>::forward;
    using detail::expression_input<MaxPool2D<T>, T, 4>::predict;
    using detail::expression_input<MaxPool2D<T>, T, 4>::backward;
    /// The input layout named in rank errors.
    static constexpr const char* input_layout = "(N, C, H, W)";
    /// The gradient layout named in rank errors.
    static constexpr const char* output_layout = "(N, C, H, W)";
    /// What `forward` takes: (N, C, H, W).
    using input_type = xt::xtensor<T, 4>;
    /// What `forward` returns: (N, C, OH, OW).
    using output_type = xt::xtensor<T, 4>;
    /// Height and width of a window or a stride.
    using size2 = std::array<std::size_t, 2>;
    /// Rank of the input; `Sequential` checks it against the previous layer at compile time.
    static constexpr int input_rank = 4;
    /// Rank of the output; `Sequential` checks it against the next layer at compile time.
    static constexpr int output_rank = 4;

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

    /// Max of each window; remembers where each maximum came from for `backward`.
    /// @throws shape_error as `output_shape` does; the layer is then unchanged.
    const output_type& forward(const input_type& x)
    {
        run(x, true);
        m_input_shape = x.shape();
        m_has_cache = true;
        return m_output;
    }

    /// Same result as `forward`, marked as inference: `backward` after it is an error.
    const output_type& predict(const input_type& x)
    {
        run(x, false);
        m_has_cache = false;
        return m_output;
    }

    /// Routes each output gradient to the input element that was the window's maximum
    /// (summing where overlapping windows share a maximum).
    /// @throws error without a `forward` since construction or after a `predict`; shape_error if
    /// `grad_output` does not have the shape of the last output.
    const input_type& backward(const output_type& grad_output)
    {
        if (!m_has_cache)
        {
            throw error(detail::concat(name(), ": backward needs a forward (not predict) first"));
        }
        detail::require_grad_shape(*this, grad_output.shape(), m_output.shape());
        detail::ensure_shape(m_input_grad, m_input_shape);
        std::fill(m_input_grad.begin(), m_input_grad.end(), T(0));
        const T* dy = grad_output.data();
        T* dx = m_input_grad.data();
        for (std::size_t i = 0, size = grad_output.size(); i < size; ++i)
        {
            dx[m_argmax[i]] += dy[i];
        }
        return m_input_grad;
    }

private:
    /// Validates an input shape (any container of sizes) and returns the output shape, without
    /// allocating.
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

    void run(const input_type& x, bool keep_argmax)
    {
        const auto out = checked_output_shape(x.shape());
        detail::ensure_shape(m_output, out);
        m_argmax.resize(keep_argmax ? m_output.size() : 0);
        const auto& s = x.shape();
        const std::size_t h = s[2], w = s[3], oh = out[2], ow = out[3];
        const T* in = x.data();
        T* y = m_output.data();
        std::size_t o = 0;
        for (std::size_t plane = 0; plane < s[0] * s[1]; ++plane)
        {
            const std::size_t base = plane * h * w;
            for (std::size_t i = 0; i < oh; ++i)
            {
                for (std::size_t j = 0; j < ow; ++j, ++o)
                {
                    std::size_t best = base + i * m_stride[0] * w + j * m_stride[1];
                    for (std::size_t a = 0; a < m_kernel[0]; ++a)
                    {
                        const std::size_t row = base + (i * m_stride[0] + a) * w + j * m_stride[1];
                        for (std::size_t b = 0; b < m_kernel[1]; ++b)
                        {
                            const T v = in[row + b], m = in[best];
                            // A NaN wins and stays, so NaNs propagate as in PyTorch.
                            if (v > m || (v != v && m == m))
                            {
                                best = row + b;
                            }
                        }
                    }
                    y[o] = in[best];
                    if (keep_argmax)
                    {
                        m_argmax[o] = best;
                    }
                }
            }
        }
    }

    size2 m_kernel;
    size2 m_stride;
    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
    std::vector<std::size_t> m_argmax;
    bool m_has_cache = false;
};

} // namespace xcnn

#endif // XCNN_LAYERS_MAXPOOL2D_HPP
