/// @file
/// The lowered form: the windows of a chunk of images copied into a column matrix (im2col),
/// then one GEMM per chunk for the forward pass, dW and dX, with col2im for dX.
///
/// Rows of the column matrix are the K = C_in KH KW taps (c, kh, kw), columns the output pixels
/// (n, oh, ow) of the chunk's images, so every row is contiguous. It costs one copy of the
/// windows per pass, which the other forms avoid, and buys what they lose on small or strided
/// outputs:
///
/// - the plane form computes an output at every position of the padded width, rounded up to
///   whole GEMM panels per image: 1.5 times the useful work for 8 x 8 planes, 2 times for
///   4 x 4 (NR is 32 floats with AVX-512), and its dW runs on dot products as short as a plane;
/// - the window view's panels straddle images and rows on small outputs and, at a stride above
///   1, are gathered element by element, once per K block and panel;
/// - the strided dX runs one GEMM of only C_in rows per kernel tap, each adding into dX.
///
/// Here the copy is contiguous for stride 1 and a fixed-step gather for stride 2, the GEMMs
/// have the full K (forward, dW) or M = K (dX) and no wasted columns, and dW contracts long
/// rows: dY is transposed once to (C_out, N OH OW), fusing a ReLU mask.
///
/// Chunks hold about `lowered_chunk_elements` elements of columns, at least one image, so the
/// buffer stays in the last-level cache between the copy and the GEMM that reads it. Their size
/// depends on the geometry only: dW, summed chunk by chunk, does not depend on the thread count.
#ifndef XCNN_CORE_CONV_LOWERED_HPP
#define XCNN_CORE_CONV_LOWERED_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../elementwise.hpp"
#include "../gemm.hpp"
#include "../gemm_nt.hpp"
#include "../simd.hpp"
#include "../threading.hpp"
#include "depthwise.hpp"
#include "geometry.hpp"

namespace xcnn
{
namespace detail
{

/// What the lowered passes keep between calls, so a steady shape allocates nothing.
template <class T>
struct lowered_workspace
{
    /// The column matrix of a chunk (K, chunk pixels); in dX, its gradient.
    conv_buffer<T> columns;
    /// dY as (C_out, N OH OW), masked.
    conv_buffer<T> grad;
    /// dW of a chunk after the first, added into dW.
    conv_buffer<T> weight_grad;
    /// Offset tables of the GEMM's operands.
    std::vector<std::ptrdiff_t> a_rows, a_cols, b_rows, b_cols, c_rows, c_cols;
    /// Offset tables of dW's packed GEMM.
    transposed_b_tables weight_grad_tables;
};

/// Elements of the column matrix of one chunk: 4 MB of floats.
constexpr std::size_t lowered_chunk_elements = std::size_t(1) << 20;

/// Images per chunk of `g`: as many as fit `lowered_chunk_elements`, at least one.
inline std::size_t lowered_chunk(const conv_geometry& g) noexcept
{
    const std::size_t per_image =
        std::max<std::size_t>(1, g.in_channels * g.kernel[0] * g.kernel[1] * g.out_h() * g.out_w());
    return std::max<std::size_t>(1, std::min(g.batch, lowered_chunk_elements / per_image));
}

/// `table[i] = i * step` for i < count.
inline void fill_linear(std::vector<std::ptrdiff_t>& table, std::size_t count, std::size_t step)
{
    table.resize(count);
    for (std::size_t i = 0; i < count; ++i)
    {
        table[i] = static_cast<std::ptrdiff_t>(i * step);
    }
}

/// The most kernel taps `raise_planes_in_a_vector` keeps permutations for (7 x 7).
constexpr std::size_t lowered_vector_taps = 49;

/// Whether `lower_columns` and `raise_columns` move whole planes in one vector of floats (AVX-512):
/// an output plane (OH OW) and an input plane (H W) of at most 16 values, and every tap's
/// window of the padded plane within 32 values of its first one. Each column segment is then one
/// permute of two loads, and each plane of dX the sum of K permuted column segments held in a
/// register: on 4 x 4 planes the rows of 4 values cost more in loop control than in copies, and
/// col2im's zero fill and read-modify-writes went row by row (docs/performance.md).
template <class T>
bool lowered_planes_in_a_vector(const conv_geometry& g) noexcept
{
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        const std::size_t oh = g.out_h(), ow = g.out_w();
        return oh * ow <= 16 && g.input[0] * g.input[1] <= 16 && g.kernel[0] * g.kernel[1] <= lowered_vector_taps &&
               (oh - 1) * g.stride[0] * g.padded_w() + (ow - 1) * g.stride[1] < 32;
    }
#endif
    (void)g;
    return false;
}

#if XSIMD_WITH_AVX512F
/// `lower_columns` when `lowered_planes_in_a_vector`: output pixel q = i OW + j of every tap reads
/// the padded plane at the same offset i SH Wp + j SW from the tap's first pixel.
inline void lower_planes_in_a_vector(const conv_geometry& g, const float* padded, std::size_t n0, std::size_t n1,
                                     float* columns)
{
    const std::size_t kh_count = g.kernel[0], kw_count = g.kernel[1], taps = kh_count * kw_count;
    const std::size_t oh = g.out_h(), ow = g.out_w(), wp = g.padded_w(), plane = g.padded_h() * wp;
    const std::size_t pixels = oh * ow, cols = (n1 - n0) * pixels, rows = g.in_channels * taps;
    const std::size_t total = g.batch * g.in_channels * plane;
    const auto s = g.stride, d = g.dilation;
    alignas(64) std::int32_t offsets[16] = {};
    for (std::size_t q = 0; q < pixels; ++q)
    {
        offsets[q] = static_cast<std::int32_t>(q / ow * s[0] * wp + q % ow * s[1]);
    }
    const __m512i index = _mm512_load_si512(offsets);
    const std::size_t span = static_cast<std::size_t>(offsets[pixels - 1]) + 1; // values a window reads
    const auto store_lanes = static_cast<__mmask16>(first_lanes(pixels));
    parallel_for_items(
        rows, cols,
        [&](std::size_t begin, std::size_t end, std::size_t)
        {
            for (std::size_t r = begin; r < end; ++r)
            {
                const std::size_t c = r / taps, kh = r % taps / kw_count, kw = r % kw_count;
                float* dst = columns + r * cols;
                for (std::size_t n = n0; n < n1; ++n, dst += pixels)
                {
                    const std::size_t at = (n * g.in_channels + c) * plane + kh * d[0] * wp + kw * d[1];
                    const float* src = padded + at;
                    __m512 lo, hi;
                    if (at + 32 <= total)
                    {
                        lo = _mm512_loadu_ps(src);
                        hi = _mm512_loadu_ps(src + 16);
                    }
                    else // the last planes: nothing past the padded input is read
                    {
                        lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>(first_lanes(std::min<std::size_t>(span, 16))),
                                                   src);
                        hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>(first_lanes(span > 16 ? span - 16 : 0)),
                                                   address_at(src, 16));
                    }
                    _mm512_mask_storeu_ps(dst, store_lanes, _mm512_permutex2var_ps(lo, index, hi));
                }
            }
        });
}

/// `raise_columns` when `lowered_planes_in_a_vector`: each plane of dX is the sum, in a register,
/// of its K column segments, each permuted to the input pixels its tap read (zero where the
/// tap read padding), added tap by tap in the order the element loop adds them.
inline void raise_planes_in_a_vector(const conv_geometry& g, const float* columns, std::size_t n0, std::size_t n1,
                                     float* dx)
{
    const std::size_t kh_count = g.kernel[0], kw_count = g.kernel[1], taps = kh_count * kw_count;
    const std::size_t oh = g.out_h(), ow = g.out_w(), h = g.input[0], w = g.input[1];
    const std::size_t pixels = oh * ow, cols = (n1 - n0) * pixels, plane = h * w;
    const auto s = g.stride, d = g.dilation, p = g.padding;
    // Tap t: which output pixel each input pixel x receives (lane x of index[t]) and whether it
    // receives one (bit x of receives[t]).
    __m512i index[lowered_vector_taps];
    __mmask16 receives[lowered_vector_taps];
    for (std::size_t t = 0; t < taps; ++t)
    {
        alignas(64) std::int32_t source[16] = {};
        std::uint32_t lanes = 0;
        const std::size_t kh = t / kw_count, kw = t % kw_count;
        for (std::size_t q = 0; q < pixels; ++q)
        {
            const std::size_t row = q / ow * s[0] + kh * d[0], col = q % ow * s[1] + kw * d[1];
            if (row >= p[0] && row - p[0] < h && col >= p[1] && col - p[1] < w)
            {
                const std::size_t x = (row - p[0]) * w + (col - p[1]);
                source[x] = static_cast<std::int32_t>(q);
                lanes |= std::uint32_t(1) << x;
            }
        }
        index[t] = _mm512_load_si512(source);
        receives[t] = static_cast<__mmask16>(lanes);
    }
    const auto load_lanes = static_cast<__mmask16>(first_lanes(pixels));
    const auto store_lanes = static_cast<__mmask16>(first_lanes(plane));
    parallel_for_items(g.in_channels, taps * cols,
                       [&](std::size_t begin, std::size_t end, std::size_t)
                       {
                           for (std::size_t c = begin; c < end; ++c)
                           {
                               for (std::size_t n = n0; n < n1; ++n)
                               {
                                   const float* src = columns + c * taps * cols + (n - n0) * pixels;
                                   __m512 sum = _mm512_setzero_ps();
                                   for (std::size_t t = 0; t < taps; ++t, src += cols)
                                   {
                                       const __m512 segment = _mm512_maskz_loadu_ps(load_lanes, src);
                                       sum = _mm512_add_ps(sum,
                                                           _mm512_maskz_permutexvar_ps(receives[t], index[t], segment));
                                   }
                                   _mm512_mask_storeu_ps(dx + (n * g.in_channels + c) * plane, store_lanes, sum);
                               }
                           }
                       });
}
#endif

/// The column matrix (K, (n1 - n0) OH OW) of images [n0, n1) of `padded` (N, C_in, Hp, Wp)
/// into `columns`: row (c, kh, kw), column (n, oh, ow) holds padded[n, c, oh SH + kh DH,
/// ow SW + kw DW]. Groups of 1 only.
template <class T>
void lower_columns(const conv_geometry& g, const T* padded, std::size_t n0, std::size_t n1, T* columns)
{
    const std::size_t kh_count = g.kernel[0], kw_count = g.kernel[1], taps = kh_count * kw_count;
    const std::size_t oh = g.out_h(), ow = g.out_w(), wp = g.padded_w(), plane = g.padded_h() * wp;
    const std::size_t cols = (n1 - n0) * oh * ow, rows = g.in_channels * taps;
    const auto s = g.stride, d = g.dilation;
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        if (lowered_planes_in_a_vector<T>(g))
        {
            lower_planes_in_a_vector(g, padded, n0, n1, columns);
            return;
        }
    }
#endif
    parallel_for_items(rows, cols,
                       [&](std::size_t begin, std::size_t end, std::size_t)
                       {
                           for (std::size_t r = begin; r < end; ++r)
                           {
                               const std::size_t c = r / taps, kh = r % taps / kw_count, kw = r % kw_count;
                               T* dst = columns + r * cols;
                               for (std::size_t n = n0; n < n1; ++n)
                               {
                                   const T* src = padded + (n * g.in_channels + c) * plane + kh * d[0] * wp + kw * d[1];
                                   for (std::size_t i = 0; i < oh; ++i, dst += ow)
                                   {
                                       // Rows are short (8 pixels): a library copy's call costs more than the copy.
                                       if (s[1] == 1)
                                       {
                                           copy_short<true>(src + i * s[0] * wp, ow, dst);
                                       }
                                       else
                                       {
                                           gather_strided(src + i * s[0] * wp, s[1], ow, dst);
                                       }
                                   }
                               }
                           }
                       });
}

/// dx (N, C_in, H, W), images [n0, n1), = col2im of the column gradient `columns` (K,
/// (n1 - n0) OH OW): every element added to the input pixel it was copied from, padding
/// dropped. Overwrites those images of dX.
template <class T>
void raise_columns(const conv_geometry& g, const T* columns, std::size_t n0, std::size_t n1, T* dx)
{
    const std::size_t kh_count = g.kernel[0], kw_count = g.kernel[1], taps = kh_count * kw_count;
    const std::size_t oh = g.out_h(), ow = g.out_w(), h = g.input[0], w = g.input[1];
    const std::size_t cols = (n1 - n0) * oh * ow;
    const auto s = g.stride, d = g.dilation, p = g.padding;
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        if (lowered_planes_in_a_vector<T>(g))
        {
            raise_planes_in_a_vector(g, columns, n0, n1, dx);
            return;
        }
    }
#endif
    parallel_for_items(
        g.in_channels, taps * cols,
        [&](std::size_t begin, std::size_t end, std::size_t)
        {
            for (std::size_t c = begin; c < end; ++c)
            {
                for (std::size_t n = n0; n < n1; ++n)
                {
                    T* plane = dx + (n * g.in_channels + c) * h * w;
                    std::fill(plane, plane + h * w, T(0));
                    for (std::size_t kh = 0; kh < kh_count; ++kh)
                    {
                        for (std::size_t kw = 0; kw < kw_count; ++kw)
                        {
                            // Columns ow with 0 <= ow SW + kw DW - PW < W.
                            const std::size_t shift = kw * d[1];
                            const std::size_t lo = shift >= p[1] ? 0 : (p[1] - shift + s[1] - 1) / s[1];
                            const std::size_t hi =
                                std::min(ow, w + p[1] > shift ? (w + p[1] - shift + s[1] - 1) / s[1] : 0);
                            const T* src = columns + ((c * kh_count + kh) * kw_count + kw) * cols + (n - n0) * oh * ow;
                            for (std::size_t i = 0; i < oh; ++i)
                            {
                                const std::size_t row = i * s[0] + kh * d[0];
                                if (row < p[0] || row - p[0] >= h || lo >= hi)
                                {
                                    continue;
                                }
                                T* out = plane + (row - p[0]) * w + (lo * s[1] + shift - p[1]);
                                const T* in = src + i * ow + lo;
                                if (s[1] == 1)
                                {
                                    for (std::size_t j = 0; j < hi - lo; ++j)
                                    {
                                        out[j] += in[j];
                                    }
                                }
                                else
                                {
                                    for (std::size_t j = 0; j < hi - lo; ++j)
                                    {
                                        out[j * s[1]] += in[j];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
}

/// Groups of 1. y (N, C_out, OH, OW) = `weight` (C_out, K) times the column matrix of `padded`
/// (N, C_in, Hp, Wp), chunk by chunk, plus `bias` (C_out, or null) fused into the GEMM's
/// write-back, which lands in NCHW through its offset tables; with `relu`, ReLU of that.
template <class T>
void lowered_forward(const conv_geometry& g, const T* weight, const T* bias, const T* padded, T* y, bool relu,
                     lowered_workspace<T>& ws, gemm_workspace<T>& gemm_ws)
{
    const std::size_t k = g.in_channels * g.kernel[0] * g.kernel[1], pixels = g.out_h() * g.out_w();
    const std::size_t c_out = g.out_channels, chunk = lowered_chunk(g);
    grow_to(ws.columns, k * chunk * pixels);
    fill_linear(ws.a_rows, c_out, k);
    fill_linear(ws.a_cols, k, 1);
    fill_linear(ws.c_rows, c_out, pixels);
    ws.c_cols.resize(chunk * pixels);
    for (std::size_t j = 0; j < chunk * pixels; ++j)
    {
        ws.c_cols[j] = static_cast<std::ptrdiff_t>(j / pixels * c_out * pixels + j % pixels);
    }
    fill_linear(ws.b_cols, chunk * pixels, 1);
    gemm_epilogue<T> epilogue;
    epilogue.row_bias = bias;
    for (std::size_t n0 = 0; n0 < g.batch; n0 += chunk)
    {
        const std::size_t n1 = std::min(g.batch, n0 + chunk), cols = (n1 - n0) * pixels;
        lower_columns(g, padded, n0, n1, ws.columns.data());
        fill_linear(ws.b_rows, k, cols);
        gemm<T>(c_out, cols, k, {weight, ws.a_rows.data(), ws.a_cols.data()},
                {ws.columns.data(), ws.b_rows.data(), ws.b_cols.data()},
                {y + n0 * c_out * pixels, ws.c_rows.data(), ws.c_cols.data()}, epilogue, gemm_ws);
    }
    if (relu)
    {
        copy_short_relu(y, g.batch * c_out * pixels, y);
    }
}

/// Groups of 1. dw (C_out, C_in, KH, KW; or null, for dX alone), db (C_out, or null) and,
/// unless `dx` is null, dx (N, C_in, H, W) from dY (N, C_out, OH, OW) and the padded input,
/// chunk by chunk: dW is the transposed dY times the column matrix transposed (`gemm_nt`, both
/// read along their rows, or the packed GEMM for many output channels, `packed_gemm_beats_nt`),
/// the column gradient is the weight transposed times dY, raised into dX by col2im. With `mask`
/// (the ReLU'd output, laid out like dY), dY passes only where it is positive, inside the
/// transposing copy.
template <class T>
void lowered_backward(const conv_geometry& g, const T* weight, const T* padded, const T* dy, const T* mask, T* dw,
                      T* db, T* dx, lowered_workspace<T>& ws, gemm_workspace<T>& gemm_ws)
{
    const std::size_t k = g.in_channels * g.kernel[0] * g.kernel[1], pixels = g.out_h() * g.out_w();
    const std::size_t c_out = g.out_channels, chunk = lowered_chunk(g), all = g.batch * pixels;
    if (g.batch == 0)
    {
        std::fill(dw, dw == nullptr ? dw : dw + c_out * k, T(0));
        if (db != nullptr)
        {
            std::fill(db, db + c_out, T(0));
        }
        return;
    }
    grow_to(ws.columns, k * chunk * pixels);
    grow_to(ws.grad, c_out * all);
    grow_to(ws.weight_grad, c_out * k);
    T* grad = ws.grad.data();
    // dY (N, C_out, P) -> (C_out, N P), masked, and db from it while it is in cache.
    parallel_for_items(c_out, all,
                       [&](std::size_t begin, std::size_t end, std::size_t)
                       {
                           for (std::size_t o = begin; o < end; ++o)
                           {
                               T* row = grad + o * all;
                               for (std::size_t n = 0; n < g.batch; ++n)
                               {
                                   const std::size_t at = (n * c_out + o) * pixels;
                                   if (mask != nullptr)
                                   {
                                       copy_short_masked(dy + at, mask + at, pixels, row + n * pixels);
                                   }
                                   else
                                   {
                                       copy_short(dy + at, pixels, row + n * pixels);
                                   }
                               }
                               if (db != nullptr)
                               {
                                   using batch = xsimd::batch<T>;
                                   constexpr std::size_t S = batch::size;
                                   const std::size_t vector_end = all - all % S;
                                   batch partial(T(0));
                                   T sum = 0;
                                   for (std::size_t i = 0; i < vector_end; i += S)
                                   {
                                       partial += batch::load_unaligned(row + i);
                                   }
                                   for (std::size_t i = vector_end; i < all; ++i)
                                   {
                                       sum += row[i];
                                   }
                                   db[o] = sum + sum_lanes(partial);
                               }
                           }
                       });
    // dX's GEMM: A = the weight transposed (K, C_out), B = dY's rows (C_out, chunk pixels).
    fill_linear(ws.a_rows, k, 1);
    fill_linear(ws.a_cols, c_out, k);
    fill_linear(ws.b_rows, c_out, all);
    fill_linear(ws.b_cols, chunk * pixels, 1);
    fill_linear(ws.c_cols, chunk * pixels, 1);
    for (std::size_t n0 = 0; n0 < g.batch; n0 += chunk)
    {
        const std::size_t n1 = std::min(g.batch, n0 + chunk), cols = (n1 - n0) * pixels;
        fill_linear(ws.c_rows, k, cols); // the columns' rows, for gemm_nt's B and dX's C
        if (dw != nullptr && packed_gemm_beats_nt(c_out))
        {
            // dW += dY's rows times the columns transposed.
            lower_columns(g, padded, n0, n1, ws.columns.data());
            gemm_transposed_b(c_out, k, cols, grad + n0 * pixels, all, ws.columns.data(), cols, dw, k, n0 != 0,
                              ws.weight_grad_tables, gemm_ws);
        }
        else if (dw != nullptr)
        {
            lower_columns(g, padded, n0, n1, ws.columns.data());
            gemm_nt_operands<T> op;
            op.a = grad + n0 * pixels;
            op.a_row = all;
            op.b = ws.columns.data();
            op.b_rows = ws.c_rows.data();
            op.length = cols;
            op.c = n0 == 0 ? dw : ws.weight_grad.data();
            op.c_row = k;
            gemm_nt(c_out, k, op);
            if (n0 != 0)
            {
                for (std::size_t i = 0; i < c_out * k; ++i)
                {
                    dw[i] += ws.weight_grad[i];
                }
            }
        }
        if (dx == nullptr)
        {
            continue;
        }
        gemm<T>(k, cols, c_out, {weight, ws.a_rows.data(), ws.a_cols.data()},
                {grad + n0 * pixels, ws.b_rows.data(), ws.b_cols.data()},
                {ws.columns.data(), ws.c_rows.data(), ws.c_cols.data()}, {}, gemm_ws);
        raise_columns(g, ws.columns.data(), n0, n1, dx);
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_LOWERED_HPP
