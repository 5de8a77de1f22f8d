/// @file
/// Which convolution form runs each pass, and `conv_workspace`, the scratch memory of all of
/// them that a layer keeps.
///
/// The forms: the window view contracted with the kernel (core/conv/window_contraction.hpp),
/// the stride-1 correlation over the padded width (core/conv/plane_form.hpp), for dX at a
/// stride above 1 col2im as one contraction per kernel tap (core/conv/strided_input_grad.hpp),
/// and for a depthwise convolution the direct per-channel kernels (core/conv/depthwise.hpp).
/// All of them compute the same sums, in orders of their own: the choice changes the last bits
/// of a result, so it depends on the geometry only, never on timing or the thread count.
#ifndef XCNN_CORE_CONV_SELECT_HPP
#define XCNN_CORE_CONV_SELECT_HPP

#include "../gemm.hpp"
#include "../xtensor_shim.hpp"
#include "depthwise.hpp"
#include "geometry.hpp"
#include "plane_form.hpp"
#include "strided_input_grad.hpp"
#include "window_contraction.hpp"

namespace xcnn
{
namespace detail
{

/// A way to compute one pass of a convolution.
enum class conv_form
{
    window_view,    ///< core/conv/window_contraction.hpp
    plane,          ///< core/conv/plane_form.hpp
    strided_col2im, ///< core/conv/strided_input_grad.hpp (dX only)
    depthwise       ///< core/conv/depthwise.hpp
};

/// Whether every output channel reads one input channel of a grouped convolution (groups =
/// C_in > 1, so C_in / groups = 1): then a GEMM's inner dimension would be the KH KW taps alone
/// (9 for 3x3), too short for its packing and micro-kernel, and the direct per-channel kernels
/// of core/conv/depthwise.hpp run every pass. Ungrouped convolutions of one input channel keep
/// the GEMM forms chosen below for them.
inline bool depthwise(const conv_geometry& g) noexcept
{
    return g.groups > 1 && g.groups == g.in_channels;
}

/// Whether the plane form applies: stride 1 and one group (it reads whole images of C_in
/// planes; a dilation only moves its taps).
inline bool plane_applies(const conv_geometry& g) noexcept
{
    return g.unit_stride() && g.groups == 1;
}

/// Whether stride-1 output rows of `width` pixels are cut into whole GEMM panels: the window
/// view's panels of B are NR adjacent output pixels, read in place only when they lie inside
/// one output row.
template <class T>
bool rows_fill_panels(std::size_t width) noexcept
{
    return width % gemm_blocking<T>::nr == 0;
}

/// The forward pass. Stride 1 with OW not a multiple of the GEMM's NR: the plane form, since on
/// the window view almost every panel would straddle two output rows and be packed, a copy of
/// K times the input for a few FMAs per element, while the plane form reads every panel in
/// place and pays (Wp - OW) / OW extra arithmetic and a crop. Otherwise (OW a multiple of NR,
/// or a stride above 1, where the plane form does not apply) the window view: its panels are
/// read in place, or packed where the stride forces it, and the output lands in NCHW directly.
/// Depthwise: the direct kernels. Other grouped convolutions: the window view, group by group.
template <class T>
conv_form choose_forward_form(const conv_geometry& g) noexcept
{
    if (depthwise(g))
    {
        return conv_form::depthwise;
    }
    return plane_applies(g) && !rows_fill_panels<T>(g.out_w()) ? conv_form::plane : conv_form::window_view;
}

/// dW and db. Stride 1: the plane form, whatever OW, since `gemm_nt` reads both dY's spread
/// rows and the input's strips in place and packs nothing, where the window view's GEMM
/// (K = N OH OW) would pack a window matrix; db comes from the spread for free. A stride above
/// 1: the window view.
/// Depthwise: the direct kernels; other grouped convolutions: the window view.
template <class T>
conv_form choose_weight_grad_form(const conv_geometry& g) noexcept
{
    if (depthwise(g))
    {
        return conv_form::depthwise;
    }
    return plane_applies(g) ? conv_form::plane : conv_form::window_view;
}

/// dX. A stride above 1: col2im by per-tap contractions (a window view of dY would need the
/// zeros of a dilated dY). Stride 1 with OW not a multiple of NR: the plane form, for the
/// forward's reason, and because the rotated-kernel correlation would multiply the zero border
/// placed around dY (2.5 times the useful work for LeNet's second convolution) in a GEMM of
/// only C_in rows. Stride 1 with OW a multiple of NR: the window view's rotated-kernel
/// correlation, whose panels are all read in place (docs/performance.md has L1's numbers).
/// Depthwise: the direct kernels; other grouped convolutions at stride 1: the window view.
template <class T>
conv_form choose_input_grad_form(const conv_geometry& g) noexcept
{
    if (depthwise(g))
    {
        return conv_form::depthwise;
    }
    if (!g.unit_stride())
    {
        return conv_form::strided_col2im;
    }
    return rows_fill_panels<T>(g.out_w()) || !plane_applies(g) ? conv_form::window_view : conv_form::plane;
}

/// The scratch memory of every form, kept by a layer so that a steady shape allocates nothing.
/// Each form owns what it reads between calls; the GEMM's packing buffers are shared, since the
/// passes run one after another.
template <class T>
struct conv_workspace
{
    /// The GEMM's packing buffers, one set per thread.
    gemm_workspace<T> gemm;
    /// The window view's offset tables and placed dY.
    window_workspace<T> window;
    /// The plane form's planes (output, then spread dY), kernel tables and padded dX.
    plane_workspace<T> plane;
    /// The strided dX's offset tables and padded dX.
    strided_workspace<T> strided;
    /// The depthwise kernels' tap offsets and per-thread planes.
    depthwise_workspace<T> depthwise;
    /// dY through a fused ReLU, for the passes that read dY in place (window dW, strided dX).
    xt::xtensor<T, 4> masked_grad;
};

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_SELECT_HPP
