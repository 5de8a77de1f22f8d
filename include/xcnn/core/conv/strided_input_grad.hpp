/// @file
/// dX of a convolution with a stride above 1, as col2im done by contractions: one per kernel
/// tap, each adding into the padded dX through strides.
///
/// Window position (i, j) at tap (a, b) reads input pixel (i SH + a, j SW + b). For a fixed tap
/// those positions are all distinct, so W[:, :, a, b] (C_out, C_in) contracted with dY over
/// C_out, (C_in, N, OH, OW), is added (beta = 1) into the padded dX at rows a + SH i and columns
/// b + SW j: a strided output starting at offset a Wp + b. Overlapping windows are summed across
/// taps. At stride 1 the window view's rotated-kernel correlation (core/conv/window_contraction.hpp)
/// or the plane form (core/conv/plane_form.hpp) does the same work as one contraction.
#ifndef XCNN_CORE_CONV_STRIDED_INPUT_GRAD_HPP
#define XCNN_CORE_CONV_STRIDED_INPUT_GRAD_HPP

#include <algorithm>
#include <array>
#include <cstddef>

#include "../gemm.hpp"
#include "../padding.hpp"
#include "../tensordot.hpp"
#include "geometry.hpp"

namespace xcnn
{
namespace detail
{

/// What `strided_input_grad` keeps between calls, so a steady shape allocates nothing.
template <class T>
struct strided_workspace
{
    /// The offset tables of the GEMM, rebuilt by every tap's contraction.
    contraction_tables tables;
    /// dX over the padded input (N, C_in, Hp, Wp), accumulated tap by tap, before the crop.
    conv_buffer<T> padded_input_grad;
};

/// Any stride, dilation and groups. dx (N, C_in, H, W) of dY (N, C_out, OH, OW, contiguous)
/// through `weight` (C_out, C_in / G, KH, KW): per group and tap (a, b), W[group, :, a, b]
/// contracted with the group's dY, added at offset a DH Wp + b DW. Rows and columns no window
/// reaches (when H + 2 PH - (KH - 1) DH - 1 is not a multiple of SH, or between dilated taps)
/// keep a zero gradient.
template <class T>
void strided_input_grad(const conv_geometry& g, const T* weight, const T* dy, T* dx, strided_workspace<T>& ws,
                        gemm_workspace<T>& gemm)
{
    const auto k = g.kernel, s = g.stride, d = g.dilation;
    const std::size_t n = g.batch, c_out = g.out_channels, c_in = g.in_channels, oh = g.out_h(), ow = g.out_w();
    const std::size_t hp = g.padded_h(), wp = g.padded_w(), group_in = g.group_in(), group_out = g.group_out();
    grow_to(ws.padded_input_grad, n * c_in * hp * wp);
    T* padded = ws.padded_input_grad.data();
    std::fill(padded, padded + n * c_in * hp * wp, T(0));

    const auto y_plane = static_cast<std::ptrdiff_t>(oh * ow);
    const auto plane = static_cast<std::ptrdiff_t>(hp * wp);
    const std::array<std::size_t, 4> tap_shape{group_in, n, oh, ow};
    const std::array<std::ptrdiff_t, 4> tap_strides{plane, plane * static_cast<std::ptrdiff_t>(c_in),
                                                    static_cast<std::ptrdiff_t>(s[0] * wp),
                                                    static_cast<std::ptrdiff_t>(s[1])};
    gemm_epilogue<T> accumulate;
    accumulate.beta = T(1);
    const auto kk = static_cast<std::ptrdiff_t>(k[0] * k[1]);
    for (std::size_t group = 0; group < g.groups; ++group)
    {
        const auto dy_ref =
            make_tensor_ref<const T>(dy + group * group_out * oh * ow, std::array<std::size_t, 4>{n, group_out, oh, ow},
                                     std::array<std::ptrdiff_t, 4>{y_plane * static_cast<std::ptrdiff_t>(c_out),
                                                                   y_plane, static_cast<std::ptrdiff_t>(ow), 1});
        const T* group_weight = weight + group * group_out * group_in * k[0] * k[1];
        T* group_dx = padded + group * group_in * hp * wp;
        for (std::size_t kh = 0; kh < k[0]; ++kh)
        {
            for (std::size_t kw = 0; kw < k[1]; ++kw)
            {
                const auto tap = make_tensor_ref<const T>(
                    group_weight + kh * k[1] + kw, std::array<std::size_t, 2>{group_out, group_in},
                    std::array<std::ptrdiff_t, 2>{kk * static_cast<std::ptrdiff_t>(group_in), kk});
                const auto out = make_tensor_ref<T>(group_dx + kh * d[0] * wp + kw * d[1], tap_shape, tap_strides);
                contract<T>(tap, {0}, dy_ref, {1}, out, accumulate, ws.tables, gemm);
            }
        }
    }
    place_2d(padded, n * c_in, hp, wp, dx, g.input[0], g.input[1], -static_cast<std::ptrdiff_t>(g.padding[0]),
             -static_cast<std::ptrdiff_t>(g.padding[1]));
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_STRIDED_INPUT_GRAD_HPP
