/// @file
/// The direct form: a tile of output pixels times a block of output channels, summed in
/// registers straight from the padded input, with no copy of the windows.
///
/// The window view's contraction, y[o, q] = sum over taps t = (c, kh, kw) of W[o, t] x[q + t],
/// is a GEMM whose B operand (taps x pixels) is the window matrix. The GEMM forms copy it (the
/// window view packs panels of it, the lowered form writes it out whole) because their
/// micro-kernel reads B as vectors of consecutive pixels, which strided or short output rows do
/// not give. Turned around, with output channels along the vector lanes and pixels broadcast one
/// value at a time, the micro-kernel reads its pixel operand an element at a time from wherever
/// it lies: pixel q at tap t is `source + pixel[q] + tap[t]`, one broadcast load, whatever the
/// stride, dilation, padding or plane size. The weight is packed once per call (taps x output
/// channels, channels contiguous); nothing else is copied, and nothing is computed that is not
/// an output.
///
/// The same kernel runs the three passes:
/// - forward: pixels = output pixels (n, oh, ow), taps = (c, kh, kw) of the padded input;
/// - dX: pixels = input pixels, grouped by their phase modulo the stride, taps = the (o, kh, kw)
///   of the rotated kernel that reach that phase, over dY placed in a zero border: dX of a
///   strided layer is one stride-1 correlation per phase, none of it multiplying the zeros a
///   dilated dY would hold;
/// - dW: the roles of the two offset tables swapped, a tile of taps times a block of output
///   channels summed over the pixels, reading dY transposed to (pixels, channels), the one copy
///   of this form, which also applies a ReLU mask and sums db.
#ifndef XCNN_CORE_CONV_DIRECT_HPP
#define XCNN_CORE_CONV_DIRECT_HPP

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "../padding.hpp"
#include "../simd.hpp"
#include "../threading.hpp"
#include "../xtensor_shim.hpp"
#include "geometry.hpp"

namespace xcnn
{
namespace detail
{

/// The tile of the direct form's micro-kernel: `rows` pixels (taps, for dW) times up to two
/// vectors of output channels, rows x vectors accumulators and the vectors of one tap's weights
/// in registers (32 of them with AVX-512, 16 otherwise).
template <class T>
struct direct_blocking
{
    static constexpr std::size_t lanes = xsimd::batch<T>::size;
    static constexpr std::size_t rows = XSIMD_WITH_AVX512F ? 12 : 6;
};

/// Vectors of output channels per block for `channels` output channels: one where a single
/// vector holds them all (LeNet's 6 or 16), two otherwise.
template <class T>
std::size_t direct_vectors(std::size_t channels) noexcept
{
    return channels <= direct_blocking<T>::lanes ? 1 : 2;
}

/// Offset tables of one pass, rebuilt only when the geometry changes.
struct direct_tables
{
    /// Offsets of the taps and pixels in the source, where each pixel's output lands, and each
    /// tap's weight.
    std::vector<std::ptrdiff_t> taps, pixels, outputs, weights;
    /// dX's stride phases: where each one's taps and pixels start in the tables.
    std::vector<std::size_t> phase_taps, phase_pixels;
    /// The geometry the tables were built for, if `built`.
    conv_geometry geometry;
    bool built = false;

    /// Whether the tables were built for `g`.
    bool hold(const conv_geometry& g) const noexcept
    {
        const conv_geometry& h = geometry;
        return built && h.batch == g.batch && h.in_channels == g.in_channels && h.out_channels == g.out_channels &&
               h.input == g.input && h.kernel == g.kernel && h.stride == g.stride && h.padding == g.padding &&
               h.dilation == g.dilation && h.groups == g.groups;
    }
};

/// What the direct passes keep between calls, so a steady shape allocates nothing.
template <class T>
struct direct_workspace
{
    /// The weight packed as (blocks, taps, block channels), zeros past the last channel.
    conv_buffer<T> packed;
    /// dY transposed to (blocks, pixels, block channels) for dW; dY placed in a zero border for dX.
    conv_buffer<T> grad;
    /// dW's sums as (blocks, taps rounded up to whole tiles, block channels).
    conv_buffer<T> weight_grad;
    /// The tables of the forward pass and dW, and those of dX.
    direct_tables forward, input_grad;
};

/// out (R x V vectors) = sum over k < count of `stream` row k (V vectors) times the broadcast
/// value `bases[r][offsets[k]]`, added to `out` when `accumulate`. The micro-kernel of every pass
/// of the direct form: R bases and one offset per step keep every broadcast a single load.
template <class T, std::size_t R, std::size_t V>
XCNN_NOINLINE void direct_tile(const T* const* bases, const std::ptrdiff_t* offsets, std::size_t count, const T* stream,
                               T* out, bool accumulate)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    batch acc[R][V];
    const T* base[R];
#pragma GCC unroll 16
    for (std::size_t r = 0; r < R; ++r)
    {
        base[r] = bases[r];
#pragma GCC unroll 4
        for (std::size_t v = 0; v < V; ++v)
        {
            acc[r][v] = accumulate ? batch::load_aligned(out + (r * V + v) * S) : batch(T(0));
        }
    }
    for (std::size_t k = 0; k < count; ++k, stream += V * S)
    {
        const std::ptrdiff_t at = offsets[k];
        batch w[V];
#pragma GCC unroll 4
        for (std::size_t v = 0; v < V; ++v)
        {
            w[v] = batch::load_aligned(stream + v * S);
        }
#pragma GCC unroll 16
        for (std::size_t r = 0; r < R; ++r)
        {
            const batch value(base[r][at]);
#pragma GCC unroll 4
            for (std::size_t v = 0; v < V; ++v)
            {
                acc[r][v] = xsimd::fma(value, w[v], acc[r][v]);
            }
        }
    }
#pragma GCC unroll 16
    for (std::size_t r = 0; r < R; ++r)
    {
#pragma GCC unroll 4
        for (std::size_t v = 0; v < V; ++v)
        {
            acc[r][v].store_aligned(out + (r * V + v) * S);
        }
    }
}

/// `packed` (blocks, taps, V vectors) = the (channels x taps) matrix whose element (o, t) is
/// `weight[o * o_step + weights[t]]`, transposed into blocks of V vectors of channels, zeros past
/// the last channel.
template <class T>
void pack_direct_weight(const T* weight, std::size_t channels, std::size_t taps, std::ptrdiff_t o_step,
                        const std::ptrdiff_t* weights, std::size_t vectors, T* packed)
{
    const std::size_t width = vectors * direct_blocking<T>::lanes, blocks = (channels + width - 1) / width;
    for (std::size_t b = 0; b < blocks; ++b)
    {
        T* block = packed + b * taps * width;
        for (std::size_t t = 0; t < taps; ++t)
        {
            for (std::size_t j = 0; j < width; ++j)
            {
                const std::size_t o = b * width + j;
                block[t * width + j] =
                    o < channels ? weight[static_cast<std::ptrdiff_t>(o) * o_step + weights[t]] : T(0);
            }
        }
    }
}

/// Elements `pack_direct_weight` writes for `channels` x `taps` with V = `vectors`.
template <class T>
std::size_t direct_packed_size(std::size_t channels, std::size_t taps, std::size_t vectors) noexcept
{
    const std::size_t width = vectors * direct_blocking<T>::lanes;
    return (channels + width - 1) / width * taps * width;
}

/// Channel j < `width` of a tile's `sums` (R rows of pixels, V vectors of channels each) plus
/// bias[j] (when not null), ReLU'd with `relu`, into `out` + j `channel_step`, rows [0, `rows`)
/// side by side: each vector of 16 channels transposed in registers to 16 runs of pixels, each one
/// masked store, where the element loop wrote R times 32 values one by one. Returns false where
/// it does not apply (not float with AVX-512).
template <class T>
bool write_tile_run(const T* sums, std::size_t rows, std::size_t width, std::size_t vectors, const T* bias, bool relu,
                    T* out, std::size_t channel_step)
{
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value && direct_blocking<T>::rows <= 16)
    {
        constexpr std::size_t R = direct_blocking<T>::rows;
        const auto lanes = static_cast<__mmask16>(first_lanes(rows));
        const std::size_t stride = vectors * 16;
        for (std::size_t v = 0; v * 16 < width; ++v)
        {
            __m512 row[16];
            for (std::size_t r = 0; r < 16; ++r)
            {
                row[r] = r < R ? _mm512_load_ps(sums + r * stride + v * 16) : _mm512_setzero_ps();
            }
            // Pairs, then quads of rows interleaved within 128-bit lanes, then the lanes gathered:
            // col[j] lane r = row[r] lane j.
            __m512 pair[16], quad[16], col[16];
            for (std::size_t r = 0; r < 16; r += 2)
            {
                pair[r] = _mm512_unpacklo_ps(row[r], row[r + 1]);
                pair[r + 1] = _mm512_unpackhi_ps(row[r], row[r + 1]);
            }
            for (std::size_t r = 0; r < 16; r += 4)
            {
                quad[r] = _mm512_shuffle_ps(pair[r], pair[r + 2], 0x44);
                quad[r + 1] = _mm512_shuffle_ps(pair[r], pair[r + 2], 0xEE);
                quad[r + 2] = _mm512_shuffle_ps(pair[r + 1], pair[r + 3], 0x44);
                quad[r + 3] = _mm512_shuffle_ps(pair[r + 1], pair[r + 3], 0xEE);
            }
            // quad[4 g + k] holds element k + 4 l of rows 4 g .. 4 g + 3 in 128-bit lane l.
            for (std::size_t k = 0; k < 4; ++k)
            {
                const __m512 low0 = _mm512_shuffle_f32x4(quad[k], quad[4 + k], 0x88);
                const __m512 high0 = _mm512_shuffle_f32x4(quad[k], quad[4 + k], 0xDD);
                const __m512 low1 = _mm512_shuffle_f32x4(quad[8 + k], quad[12 + k], 0x88);
                const __m512 high1 = _mm512_shuffle_f32x4(quad[8 + k], quad[12 + k], 0xDD);
                col[k] = _mm512_shuffle_f32x4(low0, low1, 0x88);
                col[k + 8] = _mm512_shuffle_f32x4(low0, low1, 0xDD);
                col[k + 4] = _mm512_shuffle_f32x4(high0, high1, 0x88);
                col[k + 12] = _mm512_shuffle_f32x4(high0, high1, 0xDD);
            }
            for (std::size_t j = 0; j < 16 && v * 16 + j < width; ++j)
            {
                const std::size_t o = v * 16 + j;
                __m512 value = col[j];
                if (bias != nullptr)
                {
                    value = _mm512_add_ps(value, _mm512_set1_ps(bias[o]));
                }
                if (relu)
                {
                    value = _mm512_max_ps(value, _mm512_setzero_ps());
                }
                _mm512_mask_storeu_ps(out + o * channel_step, lanes, value);
            }
        }
        return true;
    }
#endif
    (void)sums, (void)rows, (void)width, (void)vectors, (void)bias, (void)relu, (void)out, (void)channel_step;
    return false;
}

/// out[outputs[q] + o * channel_step] = f(bias[o] + sum over taps t of packed(o, t) *
/// source[pixels[q] + taps[t]]) for every pixel q < `count` and channel o < `channels`, f = ReLU
/// with `relu`, the identity otherwise; `bias` may be null. `packed` as `pack_direct_weight` made
/// it with V vectors per block. Threads share out tiles of pixels; each output is summed by one
/// tile in tap order, so the thread count changes nothing.
template <class T, std::size_t V>
void direct_contract(const T* source, const std::ptrdiff_t* pixels, const std::ptrdiff_t* outputs, std::size_t count,
                     const std::ptrdiff_t* taps, std::size_t tap_count, const T* packed, std::size_t channels,
                     std::size_t channel_step, const T* bias, bool relu, T* out)
{
    constexpr std::size_t R = direct_blocking<T>::rows, W = V * direct_blocking<T>::lanes;
    const std::size_t tiles = (count + R - 1) / R, blocks = (channels + W - 1) / W;
    if (count == 0)
    {
        return;
    }
    // A tile reads R C_in KH KW values and makes R C_out outputs: below ~1e6 multiply-adds in
    // all a second thread costs more than it saves.
    const double work = double(count) * double(tap_count) * double(channels);
    parallel_for(tiles, work >= 1e6 ? 1 : tiles,
                 [&](std::size_t begin, std::size_t end, std::size_t)
                 {
                     alignas(64) T sums[R * W];
                     const T* bases[R];
                     for (std::size_t tile = begin; tile < end; ++tile)
                     {
                         const std::size_t q0 = tile * R, rows = std::min(R, count - q0);
                         for (std::size_t r = 0; r < R; ++r)
                         {
                             // Past the last pixel, the tile repeats it; those sums are dropped.
                             bases[r] = source + pixels[q0 + std::min(r, rows - 1)];
                         }
                         // The tile's outputs lie side by side in each channel's plane (a run of
                         // one output row, or rows of a plane) unless they are a stride phase's.
                         const bool run = outputs[q0 + rows - 1] - outputs[q0] == std::ptrdiff_t(rows - 1);
                         for (std::size_t b = 0; b < blocks; ++b)
                         {
                             direct_tile<T, R, V>(bases, taps, tap_count, packed + b * tap_count * W, sums, false);
                             const std::size_t o0 = b * W, width = std::min(W, channels - o0);
                             if (run && write_tile_run(sums, rows, width, V, bias == nullptr ? nullptr : bias + o0,
                                                       relu, out + o0 * channel_step + outputs[q0], channel_step))
                             {
                                 continue;
                             }
                             for (std::size_t j = 0; j < width; ++j)
                             {
                                 T* channel = out + (o0 + j) * channel_step;
                                 for (std::size_t r = 0; r < rows; ++r)
                                 {
                                     const T value = bias != nullptr ? sums[r * W + j] + bias[o0 + j] : sums[r * W + j];
                                     channel[outputs[q0 + r]] = relu ? (value > T(0) ? value : T(0)) : value;
                                 }
                             }
                         }
                     }
                 });
}

/// Offsets of the taps (c, kh, kw) of `g` in one padded image, in weight order: c Hp Wp + kh DH
/// Wp + kw DW.
inline void fill_direct_taps(const conv_geometry& g, std::vector<std::ptrdiff_t>& taps)
{
    const std::size_t hp = g.padded_h(), wp = g.padded_w(), kk = g.kernel[0] * g.kernel[1];
    taps.resize(g.in_channels * kk);
    for (std::size_t t = 0; t < taps.size(); ++t)
    {
        const std::size_t c = t / kk, kh = t % kk / g.kernel[1], kw = t % g.kernel[1];
        taps[t] = static_cast<std::ptrdiff_t>(c * hp * wp + kh * g.dilation[0] * wp + kw * g.dilation[1]);
    }
}

/// Offsets of the output pixels (n, oh, ow) of `g` in the padded input (their windows' first
/// value) and in the output (N, C_out, OH, OW) at channel 0.
inline void fill_direct_pixels(const conv_geometry& g, std::vector<std::ptrdiff_t>& pixels,
                               std::vector<std::ptrdiff_t>& outputs)
{
    const std::size_t oh = g.out_h(), ow = g.out_w(), plane = oh * ow, wp = g.padded_w();
    const std::size_t image = g.in_channels * g.padded_h() * wp, count = g.batch * plane;
    pixels.resize(count);
    outputs.resize(count);
    for (std::size_t q = 0; q < count; ++q)
    {
        const std::size_t n = q / plane, r = q % plane;
        pixels[q] = static_cast<std::ptrdiff_t>(n * image + r / ow * g.stride[0] * wp + r % ow * g.stride[1]);
        outputs[q] = static_cast<std::ptrdiff_t>(n * g.out_channels * plane + r);
    }
}

/// The tables of the forward pass and dW of `g` (taps, pixels, outputs, and the weight's taps in
/// order), built on the first call for a geometry.
template <class T>
direct_tables& forward_tables(const conv_geometry& g, direct_workspace<T>& ws)
{
    direct_tables& tables = ws.forward;
    if (!tables.hold(g))
    {
        tables.built = false;
        fill_direct_taps(g, tables.taps);
        fill_direct_pixels(g, tables.pixels, tables.outputs);
        tables.weights.resize(tables.taps.size());
        for (std::size_t t = 0; t < tables.weights.size(); ++t)
        {
            tables.weights[t] = static_cast<std::ptrdiff_t>(t);
        }
        tables.geometry = g;
        tables.built = true;
    }
    return tables;
}

/// Groups of 1. y (N, C_out, OH, OW) = the correlation of `padded` (N, C_in, Hp, Wp) with
/// `weight` (C_out, C_in, KH, KW), plus `bias` (C_out, or null), ReLU'd with `relu`: tiles of
/// output pixels times blocks of output channels, each summed in registers.
template <class T>
void direct_forward(const conv_geometry& g, const T* weight, const T* bias, const T* padded, T* y, bool relu,
                    direct_workspace<T>& ws)
{
    const std::size_t taps = g.in_channels * g.kernel[0] * g.kernel[1], vectors = direct_vectors<T>(g.out_channels);
    direct_tables& tables = forward_tables(g, ws);
    grow_to(ws.packed, direct_packed_size<T>(g.out_channels, taps, vectors));
    pack_direct_weight(weight, g.out_channels, taps, static_cast<std::ptrdiff_t>(taps), tables.weights.data(), vectors,
                       ws.packed.data());
    const auto run = [&](auto v)
    {
        direct_contract<T, decltype(v)::value>(padded, tables.pixels.data(), tables.outputs.data(),
                                               tables.pixels.size(), tables.taps.data(), taps, ws.packed.data(),
                                               g.out_channels, g.out_h() * g.out_w(), bias, relu, y);
    };
    if (vectors == 1)
    {
        run(std::integral_constant<std::size_t, 1>{});
    }
    else
    {
        run(std::integral_constant<std::size_t, 2>{});
    }
}

/// dx (N, C_in, H, W) from dY (N, C_out, OH, OW): input pixel (y, x) receives W[o, c, kh, kw]
/// dY[o, oh, ow] wherever oh SH + kh DH = y + PH and ow SW + kw DW = x + PW. The pixels of one
/// phase, (y + PH) mod SH = a and (x + PW) mod SW = b, are reached by the taps with kh DH = a and
/// kw DW = b modulo the strides only, at oh = (y + PH - a) / SH - (kh DH - a) / SH: a stride-1
/// correlation of dY with those taps, which `direct_contract` runs phase by phase on dY placed in
/// a zero border (through `mask` when given), whose reads past dY's edges find zeros. Pixels of a
/// phase no tap reaches get zeros.
template <class T>
void direct_input_grad(const conv_geometry& g, const T* weight, const T* dy, const T* mask, T* dx,
                       direct_workspace<T>& ws)
{
    const std::size_t sh = g.stride[0], sw = g.stride[1], dh = g.dilation[0], dw = g.dilation[1];
    const std::size_t kh_count = g.kernel[0], kw_count = g.kernel[1], h = g.input[0], w = g.input[1];
    const std::size_t oh = g.out_h(), ow = g.out_w(), c_in = g.in_channels, c_out = g.out_channels;
    // dY at (top, left) of a (gh, gw) plane of zeros: every row index a tap subtracts from a
    // pixel's (y + PH - a) / SH, at most (KH - 1) DH / SH, lands in it.
    const std::size_t top = (kh_count - 1) * dh / sh, left = (kw_count - 1) * dw / sw;
    const std::size_t gh = top + std::max(oh, (h - 1 + g.padding[0]) / sh + 1);
    const std::size_t gw = left + std::max(ow, (w - 1 + g.padding[1]) / sw + 1);
    const std::size_t plane = gh * gw, vectors = direct_vectors<T>(c_in);
    grow_to(ws.grad, g.batch * c_out * plane);
    place_2d(dy, g.batch * c_out, oh, ow, ws.grad.data(), gh, gw, static_cast<std::ptrdiff_t>(top),
             static_cast<std::ptrdiff_t>(left), mask);
    direct_tables& tables = ws.input_grad;
    if (!tables.hold(g))
    {
        tables.built = false;
        tables.taps.clear();
        tables.weights.clear();
        tables.pixels.clear();
        tables.outputs.clear();
        tables.phase_taps.assign(1, 0);
        tables.phase_pixels.assign(1, 0);
        for (std::size_t a = 0; a < sh; ++a)
        {
            for (std::size_t b = 0; b < sw; ++b)
            {
                for (std::size_t o = 0; o < c_out; ++o)
                {
                    for (std::size_t kh = 0; kh < kh_count; ++kh)
                    {
                        for (std::size_t kw = 0; kw < kw_count; ++kw)
                        {
                            if (kh * dh % sh != a || kw * dw % sw != b)
                            {
                                continue;
                            }
                            tables.taps.push_back(
                                static_cast<std::ptrdiff_t>(o * plane) -
                                static_cast<std::ptrdiff_t>((kh * dh - a) / sh * gw + (kw * dw - b) / sw));
                            tables.weights.push_back(
                                static_cast<std::ptrdiff_t>((o * c_in * kh_count + kh) * kw_count + kw));
                        }
                    }
                }
                for (std::size_t n = 0; n < g.batch; ++n)
                {
                    for (std::size_t y = 0; y < h; ++y)
                    {
                        if ((y + g.padding[0]) % sh != a)
                        {
                            continue;
                        }
                        for (std::size_t x = 0; x < w; ++x)
                        {
                            if ((x + g.padding[1]) % sw != b)
                            {
                                continue;
                            }
                            const std::size_t i = (y + g.padding[0] - a) / sh, j = (x + g.padding[1] - b) / sw;
                            tables.pixels.push_back(
                                static_cast<std::ptrdiff_t>(n * c_out * plane + (i + top) * gw + j + left));
                            tables.outputs.push_back(static_cast<std::ptrdiff_t>(n * c_in * h * w + y * w + x));
                        }
                    }
                }
                tables.phase_taps.push_back(tables.taps.size());
                tables.phase_pixels.push_back(tables.pixels.size());
            }
        }
        tables.geometry = g;
        tables.built = true;
    }
    grow_to(ws.packed, direct_packed_size<T>(c_in, tables.taps.size(), vectors));
    const auto run = [&](auto v)
    {
        std::size_t packed = 0;
        for (std::size_t f = 0; f + 1 < tables.phase_taps.size(); ++f)
        {
            const std::size_t t0 = tables.phase_taps[f], taps = tables.phase_taps[f + 1] - t0;
            const std::size_t q0 = tables.phase_pixels[f], count = tables.phase_pixels[f + 1] - q0;
            if (taps == 0)
            {
                for (std::size_t q = q0; q < q0 + count; ++q)
                {
                    for (std::size_t c = 0; c < c_in; ++c)
                    {
                        dx[tables.outputs[q] + static_cast<std::ptrdiff_t>(c * h * w)] = T(0);
                    }
                }
                continue;
            }
            T* phase_weight = ws.packed.data() + packed;
            pack_direct_weight(weight, c_in, taps, static_cast<std::ptrdiff_t>(kh_count * kw_count),
                               tables.weights.data() + t0, decltype(v)::value, phase_weight);
            packed += direct_packed_size<T>(c_in, taps, decltype(v)::value);
            direct_contract<T, decltype(v)::value>(
                ws.grad.data(), tables.pixels.data() + q0, tables.outputs.data() + q0, count, tables.taps.data() + t0,
                taps, phase_weight, c_in, h * w, static_cast<const T*>(nullptr), false, dx);
        }
    };
    if (vectors == 1)
    {
        run(std::integral_constant<std::size_t, 1>{});
    }
    else
    {
        run(std::integral_constant<std::size_t, 2>{});
    }
}

/// Pixels per block of dW's sums: a block of transposed dY (pixels x 32 floats, 64 KB) and the
/// input it meets stay in L2 while every tile of taps reads them.
constexpr std::size_t direct_pixel_block = 512;

template <class T, std::size_t V>
void direct_weight_grad_on(const conv_geometry& g, const T* padded, const T* dy, const T* mask, T* dw, T* db,
                           direct_workspace<T>& ws)
{
    constexpr std::size_t R = direct_blocking<T>::rows, W = V * direct_blocking<T>::lanes;
    const std::size_t c_out = g.out_channels, blocks = (c_out + W - 1) / W, plane = g.out_h() * g.out_w();
    const std::size_t pixels = g.batch * plane, taps = g.in_channels * g.kernel[0] * g.kernel[1];
    const std::size_t tiles = (taps + R - 1) / R, rows = tiles * R;
    const direct_tables& tables = forward_tables(g, ws);
    // dY through the mask into (blocks, pixels, W), zeros in the lanes past C_out; db from it.
    grow_to(ws.grad, blocks * pixels * W);
    T* grad = ws.grad.data();
    parallel_for_items(blocks, pixels * W,
                       [&](std::size_t begin, std::size_t end, std::size_t)
                       {
                           for (std::size_t b = begin; b < end; ++b)
                           {
                               T* block = grad + b * pixels * W;
                               for (std::size_t j = 0; j < W; ++j)
                               {
                                   const std::size_t o = b * W + j;
                                   T sum = 0;
                                   for (std::size_t n = 0; n < g.batch; ++n)
                                   {
                                       const std::size_t at = (n * c_out + o) * plane;
                                       T* to = block + n * plane * W + j;
                                       for (std::size_t r = 0; r < plane; ++r)
                                       {
                                           T value = T(0);
                                           if (o < c_out)
                                           {
                                               value = dy[at + r];
                                               if (mask != nullptr && !(mask[at + r] > T(0)))
                                               {
                                                   value = T(0);
                                               }
                                           }
                                           to[r * W] = value;
                                           sum += value;
                                       }
                                   }
                                   if (db != nullptr && o < c_out)
                                   {
                                       db[o] = sum;
                                   }
                               }
                           }
                       });
    grow_to(ws.weight_grad, blocks * rows * W);
    T* sums = ws.weight_grad.data();
    // Pixel blocks in order, each added into every tile's sums: the order of the sums depends on
    // the geometry only. Threads share out the tiles of a block.
    for (std::size_t q0 = 0; q0 < pixels; q0 += direct_pixel_block)
    {
        const std::size_t count = std::min(direct_pixel_block, pixels - q0);
        const double work = double(count) * double(taps) * double(c_out);
        parallel_for(tiles * blocks, work >= 1e6 ? 1 : tiles * blocks,
                     [&](std::size_t begin, std::size_t end, std::size_t)
                     {
                         const T* bases[R];
                         for (std::size_t u = begin; u < end; ++u)
                         {
                             const std::size_t tile = u / blocks, b = u % blocks;
                             for (std::size_t r = 0; r < R; ++r)
                             {
                                 // Past the last tap, the tile repeats it; those sums are dropped.
                                 bases[r] = padded + tables.taps[std::min(tile * R + r, taps - 1)];
                             }
                             direct_tile<T, R, V>(bases, tables.pixels.data() + q0, count, grad + (b * pixels + q0) * W,
                                                  sums + (b * rows + tile * R) * W, q0 != 0);
                         }
                     });
    }
    for (std::size_t o = 0; o < c_out; ++o)
    {
        const T* from = sums + (o / W) * rows * W + o % W;
        for (std::size_t t = 0; t < taps; ++t)
        {
            dw[o * taps + t] = from[t * W];
        }
    }
}

/// Groups of 1. dw (C_out, C_in, KH, KW) and db (C_out, or null) from dY (N, C_out, OH, OW) and
/// `padded` (N, C_in, Hp, Wp): tiles of taps times blocks of output channels, summed over the
/// pixels in registers, a block of pixels at a time. With `mask` (the ReLU'd output, laid out
/// like dY), dY passes only where it is positive.
template <class T>
void direct_weight_grad(const conv_geometry& g, const T* padded, const T* dy, const T* mask, T* dw, T* db,
                        direct_workspace<T>& ws)
{
    if (direct_vectors<T>(g.out_channels) == 1)
    {
        direct_weight_grad_on<T, 1>(g, padded, dy, mask, dw, db, ws);
    }
    else
    {
        direct_weight_grad_on<T, 2>(g, padded, dy, mask, dw, db, ws);
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_DIRECT_HPP
