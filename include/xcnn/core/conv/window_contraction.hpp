/// @file
/// The founding idea of xcnn: a convolution is a zero-copy window view of the padded input and
/// one contraction with the kernel (docs/design.md, "Conv2D forward" and "Conv2D backward").
///
/// `view_as_windows(padded, {KH, KW}, {SH, SW})` is the padded input (N, C_in, Hp, Wp) seen as
/// (N, C_in, OH, OW, KH, KW) without a copy; then
///
/// - forward: Y = tensordot(W, windows, {1, 2, 3}, {1, 4, 5}), (C_out, N, OH, OW);
/// - dW = tensordot(dY, windows, {0, 2, 3}, {0, 2, 3}), (C_out, C_in, KH, KW);
/// - dX (stride 1) = tensordot(W rotated by 180 degrees, windows of dY placed in a zero border
///   of K - 1 - P, {0, 2, 3}, {1, 4, 5}), (C_in, N, H, W).
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
#include "../windows.hpp"
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
    /// dY placed into a zero border of K - 1 - P, (N, C_out, H + KH - 1, W + KW - 1): the
    /// tensor the stride-1 dX takes its windows of.
    xt::xtensor<T, 4> placed_grad;
    /// `ref_of`'s storage for operands without a data interface; window views have one, so it
    /// stays empty.
    xt::xarray<T> scratch;
};

/// The NCHW tensor `t` addressed as (C, N, H, W): axes 0 and 1 swapped, nothing moved.
template <class T>
tensor_ref<T> as_cnhw(xt::xtensor<T, 4>& t)
{
    const auto& s = t.shape();
    const auto& st = t.strides();
    return make_tensor_ref<T>(t.data(), std::array<std::size_t, 4>{s[1], s[0], s[2], s[3]},
                              std::array<std::ptrdiff_t, 4>{st[1], st[0], st[2], st[3]});
}

/// y (N, C_out, OH, OW, already that shape) = the windows of `padded` (N, C_in, Hp, Wp)
/// contracted with `weight` (C_out, C_in, KH, KW) over (C_in, KH, KW), plus `bias` (C_out),
/// fused into the GEMM's write-back; with `relu`, ReLU of that.
template <class T>
void window_forward(const conv_geometry& g, const xt::xtensor<T, 4>& padded, const xt::xtensor<T, 4>& weight,
                    const T* bias, xt::xtensor<T, 4>& y, bool relu, window_workspace<T>& ws, gemm_workspace<T>& gemm)
{
    const auto windows = view_as_windows(padded, g.kernel, g.stride); // (N, C_in, OH, OW, KH, KW)
    gemm_epilogue<T> epilogue;
    epilogue.row_bias = bias;
    // (C_out) free in W, (N, OH, OW) free in the windows: the result is (C_out, N, OH, OW).
    contract<T>(make_tensor_ref<const T>(weight.data(), weight.shape(), weight.strides()), {1, 2, 3},
                ref_of<T>(windows, ws.scratch), {1, 4, 5}, as_cnhw(y), epilogue, ws.tables, gemm);
    if (relu)
    {
        copy_short_relu(y.data(), y.size(), y.data());
    }
}

/// dw (C_out, C_in, KH, KW) = dY (N, C_out, OH, OW) contracted with the windows of `padded`
/// over (N, OH, OW); db (C_out) = the sum of dY over (N, OH, OW). dY is read in place.
template <class T>
void window_weight_grad(const conv_geometry& g, const xt::xtensor<T, 4>& padded, const xt::xtensor<T, 4>& dy,
                        xt::xtensor<T, 4>& dw, T* db, window_workspace<T>& ws, gemm_workspace<T>& gemm)
{
    const auto windows = view_as_windows(padded, g.kernel, g.stride);
    contract<T>(make_tensor_ref<const T>(dy.data(), dy.shape(), dy.strides()), {0, 2, 3},
                ref_of<T>(windows, ws.scratch), {0, 2, 3}, make_tensor_ref<T>(dw.data(), dw.shape(), dw.strides()), {},
                ws.tables, gemm);

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
            const T* plane = dy.data() + (b * c_out + o) * plane_size;
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

/// Stride 1 only. dx (N, C_in, H, W, already that shape) = the full correlation of dY with the
/// kernel rotated by 180 degrees: dY placed at offset (KH - 1 - PH, KW - 1 - PW) in a zero
/// border, its windows (N, C_out, H, W, KH, KW) contracted with the rotated kernel over
/// (C_out, KH, KW). A padding larger than K - 1 makes that offset negative, a crop, which
/// `place_2d` handles. With `mask` (the ReLU'd output, laid out like dY), dY passes only where
/// it is positive, inside the placing copy.
template <class T>
void window_input_grad(const conv_geometry& g, const xt::xtensor<T, 4>& weight, const xt::xtensor<T, 4>& dy,
                       const T* mask, xt::xtensor<T, 4>& dx, window_workspace<T>& ws, gemm_workspace<T>& gemm)
{
    const auto k = g.kernel, p = g.padding;
    const std::size_t h = g.input[0], w = g.input[1], c_in = g.in_channels, c_out = g.out_channels;
    resize_to(ws.placed_grad, std::array<std::size_t, 4>{g.batch, c_out, h + k[0] - 1, w + k[1] - 1});
    place_2d(dy.data(), g.batch * c_out, g.out_h(), g.out_w(), ws.placed_grad.data(), h + k[0] - 1, w + k[1] - 1,
             static_cast<std::ptrdiff_t>(k[0]) - 1 - static_cast<std::ptrdiff_t>(p[0]),
             static_cast<std::ptrdiff_t>(k[1]) - 1 - static_cast<std::ptrdiff_t>(p[1]), mask);
    const auto windows = view_as_windows(ws.placed_grad, k, std::size_t(1)); // (N, C_out, H, W, KH, KW)
    // W rotated by 180 degrees in its spatial axes: start at the last tap, negative strides.
    const std::ptrdiff_t sh = static_cast<std::ptrdiff_t>(k[1]), sc = sh * static_cast<std::ptrdiff_t>(k[0]);
    const auto rotated = make_tensor_ref<const T>(
        weight.data() + (k[0] - 1) * k[1] + (k[1] - 1), std::array<std::size_t, 4>{c_out, c_in, k[0], k[1]},
        std::array<std::ptrdiff_t, 4>{sc * static_cast<std::ptrdiff_t>(c_in), sc, -sh, -1});
    // (C_in) free in the rotated W, (N, H, W) free in the windows: the result is (C_in, N, H, W).
    contract<T>(rotated, {0, 2, 3}, ref_of<T>(windows, ws.scratch), {1, 4, 5}, as_cnhw(dx), {}, ws.tables, gemm);
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_WINDOW_CONTRACTION_HPP
