/// @file
/// Stride-1 correlation of image planes computed over the padded width, the form of the window
/// contraction that needs no packing at all.
///
/// Flatten a padded plane (Hp x Wp) row-major. The window of output pixel (oh, ow) at kernel tap
/// (kh, kw) reads flat position `oh * Wp + ow + kh * Wp + kw`, so for a fixed tap the inputs of
/// consecutive flat positions `j = oh * Wp + ow` are consecutive in memory: every row of the
/// window matrix is one contiguous strip of the plane, shifted by the tap's offset. Computing
/// the output at every flat position j in [0, (OH - 1) * Wp + OW) -- the real pixels plus the
/// `Wp - OW` "wrap-around" positions between output rows, which are computed and then dropped
/// -- turns the convolution into a GEMM whose B operand is read in place, whatever OW is. The
/// window view with panels of NR output pixels only reads in place when OW is a multiple of NR;
/// small images (28 x 28, 10 x 10) would otherwise pay a packing copy of K times the input.
///
/// The weight gradient is the same idea transposed: dW[o, tap] = sum over images and flat
/// positions of dY[o, j] * x[tap + j], a dot product of two contiguous strips (core/gemm_nt.hpp;
/// for many output channels the packed GEMM, which transposes the strips once per block), with
/// dY spread to the flat layout and zeros at the wrap-around positions.
#ifndef XCNN_CORE_PLANE_CORRELATION_HPP
#define XCNN_CORE_PLANE_CORRELATION_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>
#include <vector>

#include "gemm.hpp"
#include "gemm_nt.hpp"
#include "padding.hpp"
#include "simd.hpp"
#include "threading.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Shape of a stride-1 correlation of N images of C planes (already padded) with a KH x KW kernel
/// whose taps are DH rows and DW columns apart (dilation): a tap is still one contiguous strip
/// of the flat plane, only at another offset.
struct plane_geometry
{
    std::size_t batch = 0;
    std::size_t channels = 0;
    std::size_t height = 0;
    std::size_t width = 0;
    std::size_t kernel_h = 1;
    std::size_t kernel_w = 1;
    std::size_t dilation_h = 1;
    std::size_t dilation_w = 1;

    std::size_t out_h() const noexcept { return height - (kernel_h - 1) * dilation_h; }
    std::size_t out_w() const noexcept { return width - (kernel_w - 1) * dilation_w; }
    std::size_t plane() const noexcept { return height * width; }
    std::size_t image() const noexcept { return channels * plane(); }
    std::size_t taps() const noexcept { return channels * kernel_h * kernel_w; }
    /// Flat output positions per plane, wrap-around positions included.
    std::size_t span() const noexcept { return (out_h() - 1) * width + out_w(); }
    /// Offset of tap (c, kh, kw) in the input image, for t = (c * KH + kh) * KW + kw.
    std::ptrdiff_t tap_offset(std::size_t t) const noexcept
    {
        const std::size_t kk = kernel_h * kernel_w;
        const std::size_t c = t / kk, r = t % kk;
        return static_cast<std::ptrdiff_t>(c * plane() + (r / kernel_w) * dilation_h * width +
                                           (r % kernel_w) * dilation_w);
    }
};

/// Offset tables of `correlate_planes`, kept by the caller so steady-state calls allocate nothing.
struct plane_tables
{
    std::vector<std::ptrdiff_t> taps;
    std::vector<std::ptrdiff_t> positions;
    std::vector<std::ptrdiff_t> out_rows;
    std::vector<std::ptrdiff_t> out_positions;
    /// dW's GEMM: rows and (image, position) columns of dY, (image, position) rows of the input,
    /// rows and columns of dW.
    std::vector<std::ptrdiff_t> grad_rows, grad_positions, input_positions, weight_rows, weight_cols;
};

inline void fill_tap_offsets(const plane_geometry& g, std::vector<std::ptrdiff_t>& taps)
{
    taps.resize(g.taps());
    for (std::size_t t = 0; t < taps.size(); ++t)
    {
        taps[t] = g.tap_offset(t);
    }
}

/// Length of an output plane of `correlate_planes`: the span rounded up to whole GEMM panels, so
/// no panel straddles two images and every panel but the last image's tail is read in place.
template <class T>
std::size_t correlation_plane(const plane_geometry& g) noexcept
{
    constexpr std::size_t NR = gemm_blocking<T>::nr;
    return (g.span() + NR - 1) / NR * NR;
}

/// out[n, o, j] = bias[o] + sum over taps t of kernel(o, t) * input[n, t + j], for every image
/// n, output channel o and flat position j < span; `out` is (N, out_channels,
/// correlation_plane(g)), contiguous. `kernel` addresses the (out_channels x taps) matrix
/// through its own tables, so a rotated or transposed kernel costs nothing. The GEMM reads the
/// input in place.
template <class T>
void correlate_planes(const plane_geometry& g, std::size_t out_channels, const offset_matrix<const T>& kernel,
                      const T* input, const T* bias, T* out, plane_tables& tables, gemm_workspace<T>& workspace)
{
    if (g.batch == 0)
    {
        return;
    }
    // Each image's columns run past its span up to whole panels: those extra positions are
    // dropped like the wrap-around ones, and they read the next image's memory, so that every
    // panel is read in place. Where that would read past the input (the last image, or images
    // smaller than a panel), the extra positions repeat the last real one instead: the panels
    // there are packed, and nothing outside the input is read.
    const std::size_t span = g.span(), plane = correlation_plane<T>(g);
    const std::size_t columns = g.batch * plane;
    const std::size_t reach = static_cast<std::size_t>(g.tap_offset(g.taps() - 1)) + plane;
    fill_tap_offsets(g, tables.taps);
    tables.positions.resize(columns);
    tables.out_positions.resize(columns);
    for (std::size_t n = 0; n < g.batch; ++n)
    {
        const bool runs_on = n * g.image() + reach <= g.batch * g.image();
        for (std::size_t j = 0; j < plane; ++j)
        {
            const std::size_t read = runs_on ? j : std::min(j, span - 1);
            tables.positions[n * plane + j] = static_cast<std::ptrdiff_t>(n * g.image() + read);
            tables.out_positions[n * plane + j] = static_cast<std::ptrdiff_t>((n * out_channels) * plane + j);
        }
    }
    tables.out_rows.resize(out_channels);
    for (std::size_t o = 0; o < out_channels; ++o)
    {
        tables.out_rows[o] = static_cast<std::ptrdiff_t>(o * plane);
    }
    gemm_epilogue<T> epilogue;
    epilogue.row_bias = bias;
    gemm<T>(out_channels, columns, g.taps(), kernel, {input, tables.taps.data(), tables.positions.data()},
            {out, tables.out_rows.data(), tables.out_positions.data()}, epilogue, workspace);
}

/// Copies the real pixels out of flat planes: dst plane p (rows x cols, contiguous) gets rows of
/// `flat + p * flat_plane`, `row_stride` apart; with `relu`, ReLU of them (a ReLU fused into the
/// copy that has to happen anyway).
template <class T>
void crop_planes(const T* flat, std::size_t planes, std::size_t flat_plane, std::size_t row_stride, std::size_t rows,
                 std::size_t cols, T* dst, bool relu = false)
{
    parallel_for_items(planes, flat_plane,
                       [&](std::size_t begin, std::size_t end, std::size_t)
                       {
                           for (std::size_t p = begin; p < end; ++p)
                           {
                               const T* src = flat + p * flat_plane;
                               T* out = dst + p * rows * cols;
                               if (row_stride == cols)
                               {
                                   // No wrap-around columns (a 1 x 1 kernel without padding):
                                   // the plane is one run, not rows too short for a vector.
                                   if (relu)
                                   {
                                       copy_short_relu(src, rows * cols, out);
                                   }
                                   else
                                   {
                                       copy_short(src, rows * cols, out);
                                   }
                                   continue;
                               }
                               for (std::size_t r = 0; r < rows; ++r)
                               {
                                   if (relu)
                                   {
                                       copy_short_relu<true>(src + r * row_stride, cols, out + r * cols);
                                   }
                                   else
                                   {
                                       copy_short<true>(src + r * row_stride, cols, out + r * cols);
                                   }
                               }
                           }
                       });
}

/// The inverse of `crop_planes` for a gradient: dst plane p (length `flat_plane`, a multiple of
/// the vector size, 64-byte aligned) gets the rows of src plane p (rows x cols) `row_stride`
/// apart and zeros everywhere else, so the wrap-around positions contribute nothing to a dot
/// product over the flat plane. If `sums` is not null, sums[p] = the sum of plane p (a
/// convolution's bias gradient, while the plane is in cache). With `mask` (laid out like src),
/// src passes only where mask > 0: the gradient through a ReLU whose output is `mask`.
template <class T>
void spread_planes(const T* src, std::size_t planes, std::size_t rows, std::size_t cols, std::size_t row_stride,
                   std::size_t flat_plane, T* dst, T* sums, const T* mask = nullptr)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    parallel_for_items(planes, flat_plane,
                       [&](std::size_t begin, std::size_t end, std::size_t)
                       {
                           for (std::size_t p = begin; p < end; ++p)
                           {
                               T* out = dst + p * flat_plane;
                               const T* in = src + p * rows * cols;
                               std::fill(out, out + flat_plane, T(0));
                               for (std::size_t r = 0; r < rows; ++r)
                               {
                                   if (mask != nullptr)
                                   {
                                       copy_short_masked(in + r * cols, mask + p * rows * cols + r * cols, cols,
                                                         out + r * row_stride);
                                   }
                                   else
                                   {
                                       copy_short(in + r * cols, cols, out + r * row_stride);
                                   }
                               }
                               if (sums != nullptr)
                               {
                                   batch partial(T(0));
                                   for (std::size_t i = 0; i < flat_plane; i += S)
                                   {
                                       partial += batch::load_aligned(out + i);
                                   }
                                   sums[p] = sum_lanes(partial);
                               }
                           }
                       });
}

/// dw (out_channels x taps, row-major) = sum over images and flat positions j < span of
/// grad[n, o, j] * input[n, tap + j]. `grad` is (N, out_channels, grad_plane) as
/// `spread_planes` writes it, with zeros at the wrap-around positions. Dot products of strips
/// read in place (`gemm_nt`), or for many output channels (`packed_gemm_beats_nt`) one packed
/// GEMM over K = N span (image, position), whose packing transposes the taps' strips into panels
/// once per block and reuses them for every row of dW.
template <class T>
void correlate_planes_weight_grad(const plane_geometry& g, std::size_t out_channels, const T* grad,
                                  std::size_t grad_plane, const T* input, T* dw, plane_tables& tables,
                                  gemm_workspace<T>& gemm_ws)
{
    fill_tap_offsets(g, tables.taps);
    if (!packed_gemm_beats_nt(out_channels))
    {
        gemm_nt_operands<T> op;
        op.a = grad;
        op.a_row = grad_plane;
        op.a_segment = out_channels * grad_plane;
        op.b = input;
        op.b_rows = tables.taps.data();
        op.b_segment = g.image();
        op.length = g.span();
        op.segments = g.batch;
        op.c = dw;
        op.c_row = g.taps();
        gemm_ws.reserve_threads(1);
        auto& sums = gemm_ws.threads[0].scratch;
        sums.resize(std::max(sums.size(), gemm_nt_group_sums(out_channels, g.taps(), op)));
        op.group_sums = sums.data();
        gemm_nt(out_channels, g.taps(), op);
        return;
    }
    const std::size_t span = g.span(), k = g.batch * span;
    tables.grad_rows.resize(out_channels);
    for (std::size_t o = 0; o < out_channels; ++o)
    {
        tables.grad_rows[o] = static_cast<std::ptrdiff_t>(o * grad_plane);
    }
    tables.grad_positions.resize(k);
    tables.input_positions.resize(k);
    for (std::size_t n = 0; n < g.batch; ++n)
    {
        for (std::size_t j = 0; j < span; ++j)
        {
            tables.grad_positions[n * span + j] = static_cast<std::ptrdiff_t>(n * out_channels * grad_plane + j);
            tables.input_positions[n * span + j] = static_cast<std::ptrdiff_t>(n * g.image() + j);
        }
    }
    tables.weight_rows.resize(out_channels);
    for (std::size_t o = 0; o < out_channels; ++o)
    {
        tables.weight_rows[o] = static_cast<std::ptrdiff_t>(o * g.taps());
    }
    tables.weight_cols.resize(g.taps());
    for (std::size_t t = 0; t < g.taps(); ++t)
    {
        tables.weight_cols[t] = static_cast<std::ptrdiff_t>(t);
    }
    gemm<T>(out_channels, g.taps(), k, {grad, tables.grad_rows.data(), tables.grad_positions.data()},
            {input, tables.input_positions.data(), tables.taps.data()},
            {dw, tables.weight_rows.data(), tables.weight_cols.data()}, {}, gemm_ws);
}

/// dst[0, count) += src[0, count), a vector at a time and the tail element by element (an
/// addition is not idempotent, so the tail cannot overlap the last vector as the short copies
/// do).
template <class T>
void add_short(const T* src, std::size_t count, T* dst)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    std::size_t i = 0;
    for (; i + S <= count; i += S)
    {
        (batch::load_unaligned(dst + i) + batch::load_unaligned(src + i)).store_unaligned(dst + i);
    }
    for (; i < count; ++i)
    {
        dst[i] += src[i];
    }
}

/// The gradient of `correlate_planes`' input: dx[n, c, tap(c, kh, kw) + j] += sum over o of
/// kernel(o, (c, kh, kw)) * grad[n, o, j] for every flat position j < span -- dX of a stride-1
/// convolution, from dY in the flat layout of `spread_planes` (zeros at the wrap-around
/// positions, which then add nothing). Per image it is one GEMM, columns (taps x positions) =
/// kernel^T x dY, and a col2im: each tap's row of columns added into the plane at that tap's
/// shift. Unlike correlating a zero-padded dY with the rotated kernel, nothing is multiplied by
/// the padding, and the GEMM's rows are the C_in x KH x KW taps, not the few input channels.
/// One image's columns stay in cache between the GEMM and the col2im; adding each tap's whole
/// row at once keeps the overlapping rows' read-modify-writes apart.
///
/// `grad` is (N, out_channels, correlation_plane(g)) with zeros past the span; `dx` is
/// (N, channels, height, width) of `g` (the padded input) and is overwritten; `kernel_t`
/// addresses the (taps x out_channels) transposed kernel. Threads share out whole images.
template <class T>
void correlate_planes_input_grad(const plane_geometry& g, std::size_t out_channels,
                                 const offset_matrix<const T>& kernel_t, const T* grad, T* dx, plane_tables& tables,
                                 gemm_workspace<T>& workspace)
{
    const std::size_t taps = g.taps(), span = g.span(), grad_plane = correlation_plane<T>(g);
    const std::size_t kk = g.kernel_h * g.kernel_w;
    fill_tap_offsets(g, tables.taps);
    // B = one image of grad: rows o, columns j; C = the columns buffer: rows taps, columns j.
    tables.out_rows.resize(std::max(out_channels, taps));
    tables.positions.resize(grad_plane);
    for (std::size_t j = 0; j < grad_plane; ++j)
    {
        tables.positions[j] = static_cast<std::ptrdiff_t>(j);
    }
    for (std::size_t r = 0; r < tables.out_rows.size(); ++r)
    {
        tables.out_rows[r] = static_cast<std::ptrdiff_t>(r * grad_plane);
    }
    workspace.reserve_threads(get_num_threads());
    for (auto& buffers : workspace.threads)
    {
        buffers.scratch.resize(std::max(buffers.scratch.size(), taps * grad_plane));
    }
    // Below ~1e6 multiply-adds in all, a second thread costs more than it saves.
    const double work = double(g.batch) * double(taps) * double(grad_plane) * double(out_channels);
    const std::size_t grain = work >= 1e6 ? 1 : g.batch;
    parallel_for(g.batch, grain,
                 [&](std::size_t begin, std::size_t end, std::size_t worker)
                 {
                     auto& buffers = workspace.threads[worker];
                     T* columns = buffers.scratch.data();
                     for (std::size_t n = begin; n < end; ++n)
                     {
                         gemm_serial<T>(
                             taps, grad_plane, out_channels, kernel_t,
                             {grad + n * out_channels * grad_plane, tables.out_rows.data(), tables.positions.data()},
                             {columns, tables.out_rows.data(), tables.positions.data()}, {}, buffers);
                         T* image = dx + n * g.image();
                         for (std::size_t t = 0; t < taps; ++t)
                         {
                             if (t % kk == 0)
                             {
                                 // A channel's first tap, (0, 0), covers the plane's first span
                                 // positions: copied rather than added, so only the plane's end is
                                 // zeroed first.
                                 T* plane = image + tables.taps[t];
                                 std::copy(columns + t * grad_plane, columns + t * grad_plane + span, plane);
                                 std::fill(plane + span, plane + g.plane(), T(0));
                             }
                             else
                             {
                                 add_short(columns + t * grad_plane, span, image + tables.taps[t]);
                             }
                         }
                     }
                 });
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_PLANE_CORRELATION_HPP
