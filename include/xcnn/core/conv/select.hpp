/// @file
/// Which convolution form runs each pass, and `conv_workspace`, the scratch memory of all of
/// them that a layer keeps.
///
/// The forms: the window view contracted with the kernel (core/conv/window_contraction.hpp),
/// the stride-1 correlation over the padded width (core/conv/plane_form.hpp), for dX at a
/// stride above 1 col2im as one contraction per kernel tap (core/conv/strided_input_grad.hpp),
/// for a depthwise convolution the direct per-channel kernels (core/conv/depthwise.hpp), and
/// im2col by chunks of images with one GEMM per chunk (core/conv/lowered.hpp) for small planes
/// and strided layers, Winograd's transforms (core/conv/winograd.hpp) for 3x3 and 5x5 layers of
/// 32 channels or more, and tiles of pixels summed in registers from the input in place
/// (core/conv/direct.hpp) for strided layers and small planes.
/// All of them compute the same sums, in orders of their own: the choice changes the last bits
/// of a result, so it depends on the geometry only, never on timing or the thread count.
#ifndef XCNN_CORE_CONV_SELECT_HPP
#define XCNN_CORE_CONV_SELECT_HPP

#include "../gemm.hpp"
#include "../xtensor_shim.hpp"
#include "depthwise.hpp"
#include "depthwise_phases.hpp"
#include "direct.hpp"
#include "geometry.hpp"
#include "lowered.hpp"
#include "plane_form.hpp"
#include "strided_input_grad.hpp"
#include "window_contraction.hpp"
#include "winograd.hpp"

namespace xcnn
{
namespace detail
{

/// A way to compute one pass of a convolution.
enum class conv_form
{
    window_view,      ///< core/conv/window_contraction.hpp
    plane,            ///< core/conv/plane_form.hpp
    strided_col2im,   ///< core/conv/strided_input_grad.hpp (dX only)
    depthwise,        ///< core/conv/depthwise.hpp
    depthwise_phases, ///< core/conv/depthwise_phases.hpp
    winograd,         ///< core/conv/winograd.hpp
    lowered,          ///< core/conv/lowered.hpp
    direct            ///< core/conv/direct.hpp
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

/// The depthwise form of `g`: the masked taps over the stride phases where the output is as
/// large as a phase plane (they read the input in place and compute no wrap-around positions),
/// the strips of the padded plane otherwise.
inline conv_form depthwise_form(const conv_geometry& g) noexcept
{
    return depthwise_phases_apply(g) ? conv_form::depthwise_phases : conv_form::depthwise;
}

/// Whether the Winograd form runs the forward pass: where it applies (a 3x3 or 5x5 kernel at
/// stride 1, one group, any dilation: over the dilation phases), with 32 channels or more on both
/// sides, so that its 2.25 to 2.8 times smaller GEMMs outweigh the transforms, which cost
/// O(C_in + C_out) per tile against the GEMMs' O(C_in C_out) (at 16 channels it lost), and 64
/// tiles of 2 x 2 or more in the batch, which the kernel's transform, O(C_in C_out) per call, is
/// paid for (one 7 x 7 or 14 x 14 image lost). The rules count 2 x 2 tiles, a quarter of the
/// outputs, whichever tile the form then runs. A dilated layer also splits its input and dY into
/// their dilation phases and merges its output, a copy per value, so it needs C_in C_out of 2048
/// or more (at 32 -> 32 it lost to the padded-width form; docs/performance.md).
inline bool winograd_wins(const conv_geometry& g) noexcept
{
    if (!winograd_applies(g) || g.in_channels < 32 || g.out_channels < 32 ||
        (!g.undilated() && g.in_channels * g.out_channels < 2048))
    {
        return false;
    }
    const winograd_grid grid = winograd_tiles(g, 2);
    return g.batch * grid.phases * grid.tiles() >= 64;
}

/// Whether the Winograd form runs dX: as for the forward pass, and with at least half the lanes
/// of the vectors its transforms step through holding a tile (a 4 x 4 output is 4 tiles in one
/// vector of 16 floats). On smaller planes the transforms' mostly empty vectors and the padded
/// copy of dY cost more than the lowered form's dX (docs/performance.md).
template <class T>
bool winograd_input_grad_wins(const conv_geometry& g) noexcept
{
    if (!winograd_wins(g))
    {
        return false;
    }
    constexpr std::size_t S = xsimd::batch<T>::size;
    // dX's tiles cover the input plane (each of its dilation phases), its transforms step
    // through dY's padded phases.
    const std::size_t h = (g.input[0] + g.dilation[0] - 1) / g.dilation[0];
    const std::size_t w = (g.input[1] + g.dilation[1] - 1) / g.dilation[1];
    const std::size_t th = (h + 1) / 2, tw = (w + 1) / 2;
    const std::size_t vectors = (th * (tw + (g.kernel[1] - 1) / 2) + S - 1) / S;
    return 2 * th * tw >= S * vectors;
}

/// Whether the Winograd form runs dW and db: where it runs dX, and with 256 tiles or more in the
/// batch, since its GEMMs contract along the tiles and short dot products cost more in lane
/// sums than they compute (a single 16 x 16 image is 64 tiles).
template <class T>
bool winograd_weight_grad_wins(const conv_geometry& g) noexcept
{
    const winograd_grid grid = winograd_tiles(g, 2);
    return winograd_input_grad_wins<T>(g) && g.batch * grid.phases * grid.tiles() >= 256;
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

/// The plane form's columns per useful output: its GEMM computes every position of the padded
/// width and rounds each image up to whole panels, so small planes pay more (1.06 for 32 x 32
/// with padding 1, 1.5 for 8 x 8, 2 for 4 x 4 at NR = 32).
template <class T>
double plane_overhead(const conv_geometry& g) noexcept
{
    const std::size_t useful = g.out_h() * g.out_w();
    return useful == 0 ? 1.0 : double(correlation_plane<T>(g.planes())) / double(useful);
}

/// Whether the direct form (core/conv/direct.hpp) can pay for itself on `g`: groups of 1, a kernel
/// of more than one tap (a 1x1 kernel's windows are the input itself, which the GEMM forms read
/// in place), sums of C_in KH KW terms of 64 or more (a tile writes its R x 32 outputs back one
/// by one, which short sums do not pay for: 3x3 stems of 1 to 8 channels ran 1.5 to 3 times
/// slower) and `pixels` output pixels or more in the batch (the weight is packed per call).
inline bool direct_applies(const conv_geometry& g, std::size_t pixels) noexcept
{
    const std::size_t taps = g.kernel[0] * g.kernel[1];
    return g.groups == 1 && taps > 1 && g.in_channels * taps >= 64 && g.batch * g.out_h() * g.out_w() >= pixels;
}

/// Whether the direct form runs the forward pass (where the Winograd form does not): where it
/// applies with 128 output pixels or more, and either at a stride above 1, where the window view
/// gathers every panel it packs and the plane form does not apply, or on planes so small that the
/// plane form computes 1.3 times the useful outputs or more (5x5 kernels on 14 x 14, every 3x3
/// layer below 10 x 10). At 1.1 to 1.28 the plane form's GEMM was as fast or faster
/// (docs/performance.md).
template <class T>
bool direct_forward_wins(const conv_geometry& g) noexcept
{
    return direct_applies(g, 128) && (!g.unit_stride() || plane_overhead<T>(g) >= 1.3);
}

/// Whether the direct form runs dW and db (where the Winograd form does not): where it applies
/// with 256 output pixels or more, at a stride above 1. At stride 1 the plane form's dot products
/// of whole spread rows were faster on every 3x3 layer measured, whose dY the direct form
/// transposes first.
inline bool direct_weight_grad_wins(const conv_geometry& g) noexcept
{
    return direct_applies(g, 256) && !g.unit_stride();
}

/// Whether the direct form runs dX (where the Winograd form does not): groups of 1, a kernel of
/// more than one tap, input channels (dX's outputs, along the vector lanes) filling a vector,
/// C_out KH KW of 64 or more, 128 input pixels or more in the batch, and either a stride above 1
/// or planes where the plane form computes 1.3 times the useful outputs or more, as for the
/// forward pass. A stem's 1 to 8 input channels left most lanes empty and ran 1.5 to 2 times
/// slower than the lowered or padded-width dX.
template <class T>
bool direct_input_grad_wins(const conv_geometry& g) noexcept
{
    const std::size_t taps = g.kernel[0] * g.kernel[1];
    return g.groups == 1 && taps > 1 && g.in_channels >= direct_blocking<T>::lanes && g.out_channels * taps >= 64 &&
           g.batch * g.input[0] * g.input[1] >= 128 && (!g.unit_stride() || plane_overhead<T>(g) >= 1.3);
}

/// Whether the lowered form (core/conv/lowered.hpp) runs the forward pass: groups of 1, and
/// either planes so small that the plane form computes twice the useful outputs or more, or a
/// stride above 1 on a few input channels with a large kernel (a stem), where the window view
/// gathers each of its many taps' short rows once per panel while the column copy moves whole
/// rows. Elsewhere the column copy costs more than it saves.
template <class T>
bool lowered_forward_wins(const conv_geometry& g) noexcept
{
    if (g.groups != 1)
    {
        return false;
    }
    if (g.unit_stride())
    {
        return plane_overhead<T>(g) >= 1.8;
    }
    return g.in_channels < 8 && g.kernel[0] * g.kernel[1] >= 25;
}

/// Whether the lowered form runs dW, db and dX (the three together: they share the transposed
/// dY). Groups of 1; at least 32 output channels, so that each column element the copies move
/// takes part in 2 C_out or more FLOPs of each GEMM; and at least 1024 output pixels in the
/// batch, since dW's dot products run along them (short ones cost more in lane sums than they
/// compute). Then at a stride above 1, where the window view's dW gathers the columns once per
/// panel and the strided dX runs one thin GEMM per tap, and at stride 1 where the plane form
/// computes 1.4 times the useful positions or more (small planes), except for 1x1 kernels, whose
/// column matrix would be the input itself.
template <class T>
bool lowered_backward_wins(const conv_geometry& g) noexcept
{
    if (g.groups != 1 || g.out_channels < 32 || g.batch * g.out_h() * g.out_w() < 1024)
    {
        return false;
    }
    if (!g.unit_stride())
    {
        return true;
    }
    return g.kernel[0] * g.kernel[1] > 1 && plane_overhead<T>(g) >= 1.4;
}

/// The forward pass. Stride 1 with OW not a multiple of the GEMM's NR: the plane form, since on
/// the window view almost every panel would straddle two output rows and be packed, a copy of
/// K times the input for a few FMAs per element, while the plane form reads every panel in
/// place and pays (Wp - OW) / OW extra arithmetic and a crop. Otherwise (OW a multiple of NR,
/// or a stride above 1, where the plane form does not apply) the window view: its panels are
/// read in place, or packed where the stride forces it, and the output lands in NCHW directly.
/// Before all of these, the Winograd form and then the direct form where they win
/// (`winograd_wins`, `direct_forward_wins`).
/// Depthwise: the direct kernels. Other grouped convolutions: the window view, group by group.
template <class T>
conv_form choose_forward_form(const conv_geometry& g) noexcept
{
    if (depthwise(g))
    {
        return depthwise_form(g);
    }
    if (winograd_wins(g))
    {
        return conv_form::winograd;
    }
    if (direct_forward_wins<T>(g))
    {
        return conv_form::direct;
    }
    if (lowered_forward_wins<T>(g))
    {
        return conv_form::lowered;
    }
    return plane_applies(g) && !rows_fill_panels<T>(g.out_w()) ? conv_form::plane : conv_form::window_view;
}

/// dW and db. Stride 1: the plane form, whatever OW, since it reads dY's spread rows and the
/// input's strips in place (or, for many output channels, transposes the strips once per GEMM
/// block), where the window view's GEMM (K = N OH OW) would pack a window matrix; db comes from
/// the spread for free. A stride above 1: the direct form (`direct_weight_grad_wins`), the
/// lowered form, or the window view. The Winograd form before all of them where it wins.
/// Depthwise: the direct kernels; other grouped convolutions: the window view.
template <class T>
conv_form choose_weight_grad_form(const conv_geometry& g) noexcept
{
    if (depthwise(g))
    {
        return depthwise_form(g);
    }
    if (winograd_weight_grad_wins<T>(g))
    {
        return conv_form::winograd;
    }
    if (direct_weight_grad_wins(g))
    {
        return conv_form::direct;
    }
    if (lowered_backward_wins<T>(g))
    {
        return conv_form::lowered;
    }
    return plane_applies(g) ? conv_form::plane : conv_form::window_view;
}

/// dX. The Winograd form, then the direct form where they win (`direct_input_grad_wins`), then
/// the lowered form with its rule. Otherwise a stride above 1: col2im by per-tap contractions (a
/// window view of dY would need the zeros of a dilated dY). Stride 1 with OW not a multiple of
/// NR: the plane form, for the forward's reason, and because the rotated-kernel correlation
/// would multiply the zero border placed around dY (2.5 times the useful work for LeNet's second
/// convolution) in a GEMM of only C_in rows. Stride 1 with OW a multiple of NR: the window view's
/// rotated-kernel correlation, whose panels are all read in place (docs/performance.md has L1's
/// numbers).
/// Depthwise: the direct kernels; other grouped convolutions at stride 1: the window view.
template <class T>
conv_form choose_input_grad_form(const conv_geometry& g) noexcept
{
    if (depthwise(g))
    {
        return depthwise_form(g);
    }
    if (winograd_input_grad_wins<T>(g))
    {
        return conv_form::winograd;
    }
    if (direct_input_grad_wins<T>(g))
    {
        return conv_form::direct;
    }
    if (lowered_backward_wins<T>(g))
    {
        return conv_form::lowered;
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
    /// The depthwise phase form's masks and per-thread buffers.
    depthwise_phase_workspace<T> depthwise_phases;
    /// The lowered form's column matrix, transposed dY and tables.
    lowered_workspace<T> lowered;
    /// The Winograd form's transformed kernel, input and products.
    winograd_workspace<T> winograd;
    /// The direct form's packed weight, transposed dY and offset tables.
    direct_workspace<T> direct;
    /// dY through a fused ReLU, for the passes that read dY in place (window dW, strided dX).
    xt::xtensor<T, 4> masked_grad;
};

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_SELECT_HPP
