/// @file
/// `xcnn::MaxPool2D`: max over sliding windows of NCHW tensors.
#ifndef XCNN_LAYERS_MAXPOOL2D_HPP
#define XCNN_LAYERS_MAXPOOL2D_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/padding.hpp"
#include "../core/threading.hpp"
#include "../core/xtensor_shim.hpp"
#include "../network/parameter.hpp"
#include "layer.hpp"

namespace xcnn
{
namespace detail
{

/// Planes, their size, the output size, the kernel and the stride of a max pooling.
struct pool_geometry
{
    std::size_t planes, h, w, oh, ow, kh, kw, sh, sw;
};

/// True if `candidate` replaces `best` as the maximum: larger, or a NaN replacing a number (a
/// NaN wins and stays, so NaNs propagate as in PyTorch; ties keep `best`).
template <class T>
bool takes_over(T candidate, T best)
{
    return (candidate > best) || (candidate != candidate && best == best);
}

/// `takes_over` lane by lane (xsimd's `!=` is an ordered comparison, false for NaN).
template <class T, class A>
xsimd::batch_bool<T, A> takes_over(const xsimd::batch<T, A>& candidate, const xsimd::batch<T, A>& best)
{
    return (candidate > best) | (xsimd::isnan(candidate) & ~xsimd::isnan(best));
}

/// Max of every window of planes [first, last), and (if `argmax` is not null) the flat input
/// index it came from, for any kernel and stride. Ties keep the first maximum in row-major
/// window order. `in`, `y` and `argmax` address all the planes.
template <class T>
void max_pool_planes(const pool_geometry& g, std::size_t first, std::size_t last, const T* in, T* y,
                     std::size_t* argmax)
{
    const std::size_t kh = g.kh, kw = g.kw;
    y += first * g.oh * g.ow;
    argmax = argmax != nullptr ? argmax + first * g.oh * g.ow : nullptr;
    for (std::size_t plane = first; plane < last; ++plane)
    {
        const std::size_t base = plane * g.h * g.w;
        for (std::size_t i = 0; i < g.oh; ++i)
        {
            for (std::size_t j = 0; j < g.ow; ++j)
            {
                const std::size_t start = base + i * g.sh * g.w + j * g.sw;
                T best = in[start];
                std::size_t where = start;
                for (std::size_t a = 0; a < kh; ++a)
                {
                    for (std::size_t b = 0; b < kw; ++b)
                    {
                        const std::size_t at = start + a * g.w + b;
                        const T v = in[at];
                        if (takes_over(v, best))
                        {
                            best = v;
                            where = at;
                        }
                    }
                }
                *y++ = best;
                if (argmax != nullptr)
                {
                    *argmax++ = where;
                }
            }
        }
    }
}

/// Elements of scratch one thread of `max_pool_planes_2x2` uses: four rows of whole vectors.
template <class T>
std::size_t max_pool_2x2_scratch(const pool_geometry& g) noexcept
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    return 4 * ((g.w + 1 + S - 1) / S * S + S);
}

/// `max_pool_planes` for the common 2 x 2 kernel with stride 2, vectorised: for each pair of
/// input rows, the max of horizontal neighbours (a shifted load), then of the two rows, at every
/// column; the outputs are the even columns. The selects replace data-dependent branches, which
/// mispredict half the time on real activations. Rows are copied into `scratch` (zero-padded to
/// whole vectors) first, so the shifted loads never leave the input. Same results, ties and
/// NaNs included, as `max_pool_planes`. `scratch` holds `max_pool_2x2_scratch(g)` elements,
/// 64-byte aligned.
template <class T>
void max_pool_planes_2x2(const pool_geometry& g, std::size_t first, std::size_t last, const T* in, T* y,
                         std::size_t* argmax, T* scratch)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t padded = max_pool_2x2_scratch<T>(g) / 4;
    T* row0 = scratch;
    T* row1 = row0 + padded;
    T* best = row1 + padded;
    T* code = best + padded;
    std::fill(row0, row0 + 2 * padded, T(0));
    const batch one(T(1)), zero(T(0)), below(static_cast<T>(g.w));
    y += first * g.oh * g.ow;
    argmax = argmax != nullptr ? argmax + first * g.oh * g.ow : nullptr;
    for (std::size_t plane = first; plane < last; ++plane)
    {
        const T* base = in + plane * g.h * g.w;
        for (std::size_t i = 0; i < g.oh; ++i)
        {
            const T* top = base + 2 * i * g.w;
            copy_short(top, g.w, row0);
            copy_short(top + g.w, g.w, row1);
            for (std::size_t c = 0; c + 1 < g.w; c += S)
            {
                const batch a0 = batch::load_aligned(row0 + c), b0 = batch::load_unaligned(row0 + c + 1);
                const batch a1 = batch::load_aligned(row1 + c), b1 = batch::load_unaligned(row1 + c + 1);
                const auto right0 = takes_over(b0, a0), right1 = takes_over(b1, a1);
                const batch h0 = xsimd::select(right0, b0, a0), h1 = xsimd::select(right1, b1, a1);
                const auto lower = takes_over(h1, h0);
                xsimd::select(lower, h1, h0).store_aligned(best + c);
                xsimd::select(lower, below + xsimd::select(right1, one, zero), xsimd::select(right0, one, zero))
                    .store_aligned(code + c);
            }
            const std::size_t first = plane * g.h * g.w + 2 * i * g.w;
            for (std::size_t j = 0; j < g.ow; ++j)
            {
                *y++ = best[2 * j];
                if (argmax != nullptr)
                {
                    *argmax++ = first + 2 * j + static_cast<std::size_t>(code[2 * j]);
                }
            }
        }
    }
}

} // namespace detail

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
        const T* dy = grad_output.data();
        T* dx = m_input_grad.data();
        const std::size_t planes = m_input_shape[0] * m_input_shape[1];
        const std::size_t in_plane = m_input_shape[2] * m_input_shape[3];
        const std::size_t out_plane = planes == 0 ? 0 : grad_output.size() / planes;
        // A window's maximum lies in its own plane, so threads sharing out planes never add
        // into the same element.
        detail::parallel_for_items(planes, in_plane,
                                   [&](std::size_t first, std::size_t last, std::size_t)
                                   {
                                       std::fill(dx + first * in_plane, dx + last * in_plane, T(0));
                                       for (std::size_t i = first * out_plane; i < last * out_plane; ++i)
                                       {
                                           dx[m_argmax[i]] += dy[i];
                                       }
                                   });
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
        const detail::pool_geometry g{x.shape()[0] * x.shape()[1],
                                      x.shape()[2],
                                      x.shape()[3],
                                      out[2],
                                      out[3],
                                      m_kernel[0],
                                      m_kernel[1],
                                      m_stride[0],
                                      m_stride[1]};
        std::size_t* argmax = keep_argmax ? m_argmax.data() : nullptr;
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
    }

    size2 m_kernel;
    size2 m_stride;
    std::array<std::size_t, 4> m_input_shape{};
    output_type m_output;
    input_type m_input_grad;
    std::vector<std::size_t> m_argmax;
    std::vector<T, xsimd::aligned_allocator<T, 64>> m_rows; // scratch rows of the 2 x 2 kernel
    bool m_has_cache = false;
};

} // namespace xcnn

#endif // XCNN_LAYERS_MAXPOOL2D_HPP
