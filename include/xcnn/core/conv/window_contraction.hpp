/// @file
/// The founding idea of xcnn: a convolution is a zero-copy window view of the padded input and
/// one contraction with the kernel (docs/design.md, "Conv2D forward" and "Conv2D backward").
///
/// `view_as_windows(padded, {KH, KW}, {SH, SW})` is the padded input (N, C_in, Hp, Wp) seen as
/// (N, C_in, OH, OW, KH, KW) without a copy: strides (., ., SH Wp, SW, Wp, 1). A dilation
/// (DH, DW) only multiplies the strides of the two window axes, (., ., SH Wp, SW, DH Wp, DW), so
/// `windows_of` builds the view itself with them; then
///
/// - forward: Y = tensordot(W, windows, {1, 2, 3}, {1, 4, 5}), (C_out, N, OH, OW);
/// - dW = tensordot(dY, windows, {0, 2, 3}, {0, 2, 3}), (C_out, C_in, KH, KW);
/// - dX (stride 1) = tensordot(W rotated by 180 degrees, windows of dY placed in a zero border
///   of (K - 1) D - P, {0, 2, 3}, {1, 4, 5}), (C_in, N, H, W).
///
/// With groups, each contraction runs once per group on channel slices of the same views: a
/// slice is an offset into the tensor, nothing is copied.
///
/// Each contraction is `contract`, tensordot's own lowering to the GEMM, writing into the
/// layer's buffers: a result whose natural order is (C, N, H, W) is written through the NCHW
/// tensor's strides permuted to that order, so it lands in NCHW with no transpose pass.
#ifndef XCNN_CORE_CONV_WINDOW_CONTRACTION_HPP
#define XCNN_CORE_CONV_WINDOW_CONTRACTION_HPP

#include <array>
#include <cstddef>

#include "../elementwise.hpp"
#include "../gemm.hpp"
#include "../padding.hpp"
#include "../simd.hpp"
#include "../tensordot.hpp"
#include "../xtensor_shim.hpp"
#include "geometry.hpp"

namespace xcnn
{
namespace detail
{

/// What the window-view passes keep between calls, so a steady shape allocates nothing.
template <class T>
struct window_workspace
{
    /// The offset tables of the GEMM, rebuilt by every contraction.
    contraction_tables tables;
    /// dY placed into a zero border of (K - 1) D - P, (N, C_out, H + (KH - 1) DH, W + (KW - 1) DW):
    /// the tensor the stride-1 dX takes its windows of.
    xt::xtensor<T, 4> placed_grad;
};

/// The NCHW tensor at `data` (N, C, H, W, contiguous) restricted to channels [first, first +
/// count) and addressed as (count, N, H, W): axes 0 and 1 swapped, nothing moved.
template <class T>
tensor_ref<T> as_cnhw(T* data, const std::array<std::size_t, 4>& shape, std::size_t first, std::size_t count)
{
    const auto plane = static_cast<std::ptrdiff_t>(shape[2] * shape[3]);
    return make_tensor_ref<T>(data + first * shape[2] * shape[3],
                              std::array<std::size_t, 4>{count, shape[0], shape[2], shape[3]},
                              std::array<std::ptrdiff_t, 4>{plane, plane * static_cast<std::ptrdiff_t>(shape[1]),
                                                            static_cast<std::ptrdiff_t>(shape[3]), 1});
}

/// Channels [first, first + count) of the NCHW tensor at `data`, (N, count, H, W).
template <class T>
tensor_ref<T> channel_slice(T* data, const std::array<std::size_t, 4>& shape, std::size_t first, std::size_t count)
{
    const auto plane = static_cast<std::ptrdiff_t>(shape[2] * shape[3]);
    return make_tensor_ref<T>(data + first * shape[2] * shape[3],
                              std::array<std::size_t, 4>{shape[0], count, shape[2], shape[3]},
                              std::array<std::ptrdiff_t, 4>{plane * static_cast<std::ptrdiff_t>(shape[1]), plane,
                                                            static_cast<std::ptrdiff_t>(shape[3]), 1});
}

/// The windows of channels [first, first + count) of the NCHW tensor at `data` (N, C, Hp, Wp):
/// (N, count, OH, OW, KH, KW), zero-copy. The window positions are `step` apart, the taps of a
/// window `dilation` apart: `view_as_windows(x, kernel, step)` when the dilation is 1.
template <class T>
tensor_ref<const T> windows_of(const T* data, const std::array<std::size_t, 4>& shape, std::size_t first,
                               std::size_t count, const std::array<std::size_t, 2>& kernel,
                               const std::array<std::size_t, 2>& step, const std::array<std::size_t, 2>& dilation)
{
    const std::size_t out_h = (shape[2] - ((kernel[0] - 1) * dilation[0] + 1)) / step[0] + 1;
    const std::size_t out_w = (shape[3] - ((kernel[1] - 1) * dilation[1] + 1)) / step[1] + 1;
    const auto row = static_cast<std::ptrdiff_t>(shape[3]), plane = row * static_cast<std::ptrdiff_t>(shape[2]);
    auto sz = [](std::size_t v)
    {
        return static_cast<std::ptrdiff_t>(v);
    };
    return make_tensor_ref<const T>(data + first * shape[2] * shape[3],
                                    std::array<std::size_t, 6>{shape[0], count, out_h, out_w, kernel[0], kernel[1]},
                                    std::array<std::ptrdiff_t, 6>{plane * sz(shape[1]), plane, row * sz(step[0]),
                                                                  sz(step[1]), // window positions: the stride
                                                                  row * sz(dilation[0]),
                                                                  sz(dilation[1])}); // taps: the dilation
}

/// The weight (C_out, C_in / G, KH, KW) of group `group`: (C_out / G, C_in / G, KH, KW).
template <class T>
tensor_ref<const T> group_weight(const conv_geometry& g, const T* weight, std::size_t group)
{
    const std::size_t kk = g.kernel[0] * g.kernel[1], per_group = g.group_out() * g.group_in() * kk;
    const auto kw = static_cast<std::ptrdiff_t>(g.kernel[1]), sc = static_cast<std::ptrdiff_t>(kk);
    return make_tensor_ref<const T>(
        weight + group * per_group, std::array<std::size_t, 4>{g.group_out(), g.group_in(), g.kernel[0], g.kernel[1]},
        std::array<std::ptrdiff_t, 4>{sc * static_cast<std::ptrdiff_t>(g.group_in()), sc, kw, 1});
}

/// y (N, C_out, OH, OW, already that shape) = the windows of `padded` (N, C_in, Hp, Wp)
/// contracted with `weight` (C_out, C_in / G, KH, KW) over (C_in / G, KH, KW), group by group,
/// plus `bias` (C_out, or null for none), fused into the GEMM's write-back; with `relu`, ReLU
/// of that.
template <class T>
void window_forward(const conv_geometry& g, const T* padded, const T* weight, const T* bias, T* y, bool relu,
                    window_workspace<T>& ws, gemm_workspace<T>& gemm)
{
    const auto padded_shape = g.padded_shape(), out_shape = g.output_shape();
    for (std::size_t group = 0; group < g.groups; ++group)
    {
        // (N, C_in / G, OH, OW, KH, KW): the windows of this group's input channels.
        const auto windows =
            windows_of(padded, padded_shape, group * g.group_in(), g.group_in(), g.kernel, g.stride, g.dilation);
        gemm_epilogue<T> epilogue;
        epilogue.row_bias = bias == nullptr ? nullptr : bias + group * g.group_out();
        // (C_out / G) free in W, (N, OH, OW) free in the windows: the result is (C_out / G, N, OH, OW).
        contract<T>(group_weight(g, weight, group), {1, 2, 3}, windows, {1, 4, 5},
                    as_cnhw(y, out_shape, group * g.group_out(), g.group_out()), epilogue, ws.tables, gemm);
    }
    if (relu)
    {
        const std::size_t size = g.batch * g.out_channels * g.out_h() * g.out_w();
        copy_short_relu(y, size, y);
    }
}

/// db (C_out) = the sum of dY (N, C_out, OH, OW) over (N, OH, OW).
template <class T>
void bias_grad(const conv_geometry& g, const T* dy, T* db)
{
    // Vector partial sums: the compiler may not vectorise a scalar sum, which would reorder it.
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t n = g.batch, c_out = g.out_channels, plane_size = g.out_h() * g.out_w();
    const std::size_t vector_end = plane_size - plane_size % S;
    for (std::size_t o = 0; o < c_out; ++o)
    {
        batch partial(T(0));
        T sum = 0;
        for (std::size_t b = 0; b < n; ++b)
        {
            const T* plane = dy + (b * c_out + o) * plane_size;
            for (std::size_t i = 0; i < vector_end; i += S)
            {
                partial += batch::load_unaligned(plane + i);
            }
            for (std::size_t i = vector_end; i < plane_size; ++i)
            {
                sum += plane[i];
            }
        }
        sum += sum_lanes(partial);
        db[o] = sum;
    }
}

/// dw (C_out, C_in / G, KH, KW) = dY (N, C_out, OH, OW) contracted with the windows of `padded`
/// over (N, OH, OW), group by group; db (C_out, or null for none) = the sum of dY over
/// (N, OH, OW). dY is read in place.
template <class T>
void window_weight_grad(const conv_geometry& g, const xt::xtensor<T, 4>& padded, const xt::xtensor<T, 4>& dy,
                        xt::xtensor<T, 4>& dw, T* db, window_workspace<T>& ws, gemm_workspace<T>& gemm)
{
    const auto padded_shape = g.padded_shape(), out_shape = g.output_shape();
    const std::size_t per_group = g.group_out() * g.group_in() * g.kernel[0] * g.kernel[1];
    for (std::size_t group = 0; group < g.groups; ++group)
    {
        const auto windows =
            windows_of(padded.data(), padded_shape, group * g.group_in(), g.group_in(), g.kernel, g.stride, g.dilation);
        const auto dy_group = channel_slice<const T>(dy.data(), out_shape, group * g.group_out(), g.group_out());
        const auto dw_group =
            make_tensor_ref<T>(dw.data() + group * per_group,
                               std::array<std::size_t, 4>{g.group_out(), g.group_in(), g.kernel[0], g.kernel[1]},
                               std::array<std::ptrdiff_t, 4>{static_cast<std::ptrdiff_t>(per_group / g.group_out()),
                                                             static_cast<std::ptrdiff_t>(g.kernel[0] * g.kernel[1]),
                                                             static_cast<std::ptrdiff_t>(g.kernel[1]), 1});
        contract<T>(dy_group, {0, 2, 3}, windows, {0, 2, 3}, dw_group, {}, ws.tables, gemm);
    }
    if (db != nullptr)
    {
        bias_grad(g, dy.data(), db);
    }
}

/// Stride 1 only. dx (N, C_in, H, W, already that shape) = the full correlation of dY with the
/// kernel rotated by 180 degrees: dY placed at offset ((KH - 1) DH - PH, (KW - 1) DW - PW) in a
/// zero border, its windows (N, C_out, H, W, KH, KW) with taps D apart contracted with the
/// rotated kernel over (C_out / G, KH, KW), group by group. A padding larger than (K - 1) D makes
/// that offset negative, a crop, which `place_2d` handles. With `mask` (the ReLU'd output, laid
/// out like dY), dY passes only where it is positive, inside the placing copy.
template <class T>
void window_input_grad(const conv_geometry& g, const xt::xtensor<T, 4>& weight, const xt::xtensor<T, 4>& dy,
                       const T* mask, xt::xtensor<T, 4>& dx, window_workspace<T>& ws, gemm_workspace<T>& gemm)
{
    const auto k = g.kernel, p = g.padding;
    const std::size_t h = g.input[0], w = g.input[1], c_out = g.out_channels;
    const std::array<std::size_t, 4> placed_shape{g.batch, c_out, h + g.span_h() - 1, w + g.span_w() - 1};
    resize_to(ws.placed_grad, placed_shape);
    place_2d(dy.data(), g.batch * c_out, g.out_h(), g.out_w(), ws.placed_grad.data(), placed_shape[2], placed_shape[3],
             static_cast<std::ptrdiff_t>(g.span_h()) - 1 - static_cast<std::ptrdiff_t>(p[0]),
             static_cast<std::ptrdiff_t>(g.span_w()) - 1 - static_cast<std::ptrdiff_t>(p[1]), mask);
    const std::size_t kk = k[0] * k[1], per_group = g.group_out() * g.group_in() * kk;
    const std::ptrdiff_t sh = static_cast<std::ptrdiff_t>(k[1]), sc = sh * static_cast<std::ptrdiff_t>(k[0]);
    for (std::size_t group = 0; group < g.groups; ++group)
    {
        // (N, C_out / G, H, W, KH, KW)
        const auto windows = windows_of(ws.placed_grad.data(), placed_shape, group * g.group_out(), g.group_out(), k,
                                        {1, 1}, g.dilation);
        // W rotated by 180 degrees in its spatial axes: start at the last tap, negative strides.
        const auto rotated = make_tensor_ref<const T>(
            weight.data() + group * per_group + (k[0] - 1) * k[1] + (k[1] - 1),
            std::array<std::size_t, 4>{g.group_out(), g.group_in(), k[0], k[1]},
            std::array<std::ptrdiff_t, 4>{sc * static_cast<std::ptrdiff_t>(g.group_in()), sc, -sh, -1});
        // (C_in / G) free in the rotated W, (N, H, W) free in the windows: the result is (C_in / G, N, H, W).
        contract<T>(rotated, {0, 2, 3}, windows, {1, 4, 5},
                    as_cnhw(dx.data(), g.input_shape(), group * g.group_in(), g.group_in()), {}, ws.tables, gemm);
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_WINDOW_CONTRACTION_HPP
