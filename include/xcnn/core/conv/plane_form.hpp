/// @file
/// The stride-1 convolution computed over the padded width: forward, dW and dX as the layer
/// runs them on the kernels of core/plane_correlation.hpp.
///
/// Flattened row-major, a padded plane (Hp x Wp) puts the inputs of consecutive output
/// positions j = oh * Wp + ow at consecutive addresses for every kernel tap; computing the
/// output at every j < (OH - 1) * Wp + OW, the Wp - OW "wrap-around" positions between rows
/// included, makes every row of the GEMM's B operand a contiguous strip of the padded input,
/// read in place whatever OW is (docs/design.md). Outputs come out over the padded width and are
/// cropped into NCHW; gradients are spread to it, with zeros at the wrap-around positions.
///
/// The backward passes both read dY spread over the padded width: `spread_output_grad` spreads
/// it and returns a `spread_grad`, which `plane_weight_grad` and `plane_input_grad` take as an
/// argument.
#ifndef XCNN_CORE_CONV_PLANE_FORM_HPP
#define XCNN_CORE_CONV_PLANE_FORM_HPP

#include <cstddef>
#include <vector>

#include "../error.hpp"
#include "../gemm.hpp"
#include "../plane_correlation.hpp"
#include "geometry.hpp"

namespace xcnn
{
namespace detail
{

/// dY (N, C_out, OH, OW) spread over the padded width, as `spread_output_grad` returns it: what
/// the plane form's dW and dX read. It points into the `plane_workspace` that made it and stays
/// valid until the next `plane_forward` or `spread_output_grad` on that workspace.
template <class T>
struct spread_grad
{
    /// (N, C_out, plane): plane p holds dY's rows `Wp` apart and zeros everywhere else, up to
    /// whole GEMM panels (`correlation_plane`).
    const T* values = nullptr;
    /// The sum of each of the N * C_out planes, taken while the plane was in cache: db.
    const T* plane_sums = nullptr;
    /// Length of one plane; 0 when nothing was spread.
    std::size_t plane = 0;
    /// N * C_out of the dY it holds.
    std::size_t planes = 0;
};

/// What the plane passes keep between calls, so a steady shape allocates nothing.
template <class T>
struct plane_workspace
{
    /// Memory over the padded width, (N, C_out, plane): the forward's output planes until
    /// `plane_forward` has cropped them, then dY as `spread_output_grad` spreads it. The output
    /// planes are dead once cropped, so the spread takes their memory instead of adding as much
    /// again to every layer.
    conv_buffer<T> planes;
    /// The sums of the spread planes.
    std::vector<T> plane_sums;
    /// Offset tables addressing the weight as the (C_out x taps) kernel or its transpose.
    std::vector<std::ptrdiff_t> kernel_rows, kernel_cols;
    /// The offset tables of the plane kernels.
    plane_tables tables;
    /// dX over the padded input (N, C_in, Hp, Wp), before the crop; unused without padding.
    conv_buffer<T> padded_input_grad;
};

/// Fills `rows` and `cols` with the offsets of the row-major (rows x cols) matrix starting at
/// the weight (C_out, taps), or of its transpose when `transposed`.
inline void fill_kernel_tables(std::size_t c_out, std::size_t taps, bool transposed, std::vector<std::ptrdiff_t>& rows,
                               std::vector<std::ptrdiff_t>& cols)
{
    auto& outs = transposed ? cols : rows;
    auto& tap_offsets = transposed ? rows : cols;
    outs.resize(c_out);
    tap_offsets.resize(taps);
    for (std::size_t o = 0; o < c_out; ++o)
    {
        outs[o] = static_cast<std::ptrdiff_t>(o * taps);
    }
    for (std::size_t t = 0; t < taps; ++t)
    {
        tap_offsets[t] = static_cast<std::ptrdiff_t>(t);
    }
}

/// Stride 1. y (N, C_out, OH, OW) = the correlation of `padded` (N, C_in, Hp, Wp) with
/// `weight` (C_out, C_in, KH, KW) plus `bias` (C_out, or null): the GEMM reads the padded input in place
/// and writes over the padded width with the bias fused; the crop into NCHW drops the
/// wrap-around positions and, with `relu`, applies ReLU on the way.
template <class T>
void plane_forward(const conv_geometry& g, const T* weight, const T* bias, const T* padded, T* y, bool relu,
                   plane_workspace<T>& ws, gemm_workspace<T>& gemm)
{
    const auto pg = g.planes();
    const std::size_t c_out = g.out_channels;
    fill_kernel_tables(c_out, pg.taps(), false, ws.kernel_rows, ws.kernel_cols);
    const std::size_t plane = correlation_plane<T>(pg);
    grow_to(ws.planes, g.batch * c_out * plane);
    correlate_planes<T>(pg, c_out, {weight, ws.kernel_rows.data(), ws.kernel_cols.data()}, padded, bias,
                        ws.planes.data(), ws.tables, gemm);
    crop_planes(ws.planes.data(), g.batch * c_out, plane, pg.width, g.out_h(), g.out_w(), y, relu);
}

/// Stride 1. Spreads dY (N, C_out, OH, OW) over the padded width into `ws.planes`, with each
/// plane's sum, and returns where it is; with `mask` (the ReLU'd output, laid out like dY), dY
/// passes only where it is positive.
template <class T>
spread_grad<T> spread_output_grad(const conv_geometry& g, const T* dy, const T* mask, plane_workspace<T>& ws)
{
    spread_grad<T> out;
    out.planes = g.batch * g.out_channels;
    // Whole GEMM panels per image, zeros past the span: `plane_input_grad` reads it that way.
    out.plane = correlation_plane<T>(g.planes());
    grow_to(ws.planes, out.planes * out.plane);
    grow_to(ws.plane_sums, out.planes);
    spread_planes(dy, out.planes, g.out_h(), g.out_w(), g.padded_w(), out.plane, ws.planes.data(), ws.plane_sums.data(),
                  mask);
    out.values = ws.planes.data();
    out.plane_sums = ws.plane_sums.data();
    return out;
}

/// Stride 1. dw (C_out, C_in, KH, KW) = dot products of the rows of the spread dY with strips
/// of `padded` (N, C_in, Hp, Wp) (`correlate_planes_weight_grad`); db (C_out, or null for no
/// bias) = the sums of the spread planes.
template <class T>
void plane_weight_grad(const conv_geometry& g, const spread_grad<T>& dy, const T* padded, T* dw, T* db,
                       plane_workspace<T>& ws, gemm_workspace<T>& gemm_ws)
{
    const std::size_t n = g.batch, c_out = g.out_channels;
    correlate_planes_weight_grad(g.planes(), c_out, dy.values, dy.plane, padded, dw, ws.tables, gemm_ws);
    if (db == nullptr)
    {
        return;
    }
    for (std::size_t o = 0; o < c_out; ++o)
    {
        T sum = 0;
        for (std::size_t b = 0; b < n; ++b)
        {
            sum += dy.plane_sums[b * c_out + o];
        }
        db[o] = sum;
    }
}

/// Stride 1. dx (N, C_in, H, W) from the spread dY: per image, the kernel's transpose times the
/// spread dY, added into the padded dX tap by tap (col2im, `correlate_planes_input_grad`), then
/// cropped (without padding, written into `dx` directly). A mask was applied by the spread.
/// @throws error if `dy` is empty or was spread for another geometry.
template <class T>
void plane_input_grad(const conv_geometry& g, const T* weight, const spread_grad<T>& dy, T* dx, plane_workspace<T>& ws,
                      gemm_workspace<T>& gemm)
{
    const auto pg = g.planes();
    if (dy.planes != g.batch * g.out_channels || dy.plane != correlation_plane<T>(pg))
    {
        throw error("plane_input_grad: the spread dY was made for another geometry");
    }
    // A(tap, o) = W[o, tap]: the kernel transposed by its tables.
    fill_kernel_tables(g.out_channels, pg.taps(), true, ws.kernel_rows, ws.kernel_cols);
    T* target = dx;
    if (g.padded())
    {
        grow_to(ws.padded_input_grad, g.batch * pg.image());
        target = ws.padded_input_grad.data();
    }
    correlate_planes_input_grad<T>(pg, g.out_channels, {weight, ws.kernel_rows.data(), ws.kernel_cols.data()},
                                   dy.values, target, ws.tables, gemm);
    if (g.padded())
    {
        crop_planes(target + g.padding[0] * pg.width + g.padding[1], g.batch * g.in_channels, pg.plane(), pg.width,
                    g.input[0], g.input[1], dx);
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_PLANE_FORM_HPP
