/// @file
/// Depthwise convolution (groups = C_in: each output channel reads one input channel) as direct
/// per-channel kernels: forward, dW and dX, vectorised along the output rows, no GEMM.
///
/// A depthwise output channel is a K-tap (K = KH KW, 9 for 3x3) correlation of one plane. As a
/// GEMM its inner dimension is K, too short to amortise the packing and the micro-kernel's
/// set-up, so the multiply-adds are written directly, in the plane form's flat layout
/// (core/plane_form.hpp): for a stride-1 plane of pitch Wp, tap (a, b) of every output position
/// j = oh Wp + ow reads position j + a DH Wp + b DW, so each tap is one contiguous strip and an
/// output plane is K scaled strips added (`sum_strips`), Wp - OW wrap-around positions per row
/// computed and dropped.
///
/// A stride S > 1 keeps the same strips: the outputs are the stride-1 outputs at rows SH i and
/// columns SW j, so the kernels run over the stride-1 positions up to the last strided one and
/// the copy into NCHW takes every SH-th row and SW-th column. That multiplies the FMAs by about
/// SH SW (4 at stride 2) but leaves every load contiguous: for the small planes of depthwise
/// layers (8 x 8, 28 x 28) splitting each plane into its S_H S_W phases cost more in scalar
/// bookkeeping than the FMAs it saved.
///
/// The backward pass reads dY spread over the same flat positions (dY[i, j] at SH i Wp + SW j)
/// with zeros everywhere else and in a margin before it: dW[o, t] is the dot product of the
/// spread dY with tap t's strip (`dot_strips`), and dX over the padded plane is again a sum of
/// scaled strips of the spread dY, shifted the other way, of which the interior is copied out.
/// A channel multiplier M = C_out / C_in > 1 adds M output channels into each input channel's
/// dX. Threads share out planes in the forward pass and input channels (all images) in the
/// backward pass, so dW needs no reduction across threads.
#ifndef XCNN_CORE_CONV_DEPTHWISE_HPP
#define XCNN_CORE_CONV_DEPTHWISE_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>

#include "../elementwise.hpp"
#include "../simd.hpp"
#include "../threading.hpp"
#include "geometry.hpp"

namespace xcnn
{
namespace detail
{

/// out[i] = init + sum over k < count of coefficients[k] * sources[k][i], for i < length, the
/// terms added in the order of k. Reads nothing past sources[k] + length; writes whole vectors,
/// so `out` must hold `length` rounded up to the vector size.
template <class T>
void sum_strips(const T* const* sources, const T* coefficients, std::size_t count, T init, std::size_t length, T* out)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    std::size_t i = 0;
    // Four independent accumulators hide the FMA latency of the chain over the taps.
    for (; i + 4 * S <= length; i += 4 * S)
    {
        batch a0(init), a1(init), a2(init), a3(init);
        for (std::size_t k = 0; k < count; ++k)
        {
            const batch c(coefficients[k]);
            const T* p = sources[k] + i;
            a0 = xsimd::fma(c, batch::load_unaligned(p), a0);
            a1 = xsimd::fma(c, batch::load_unaligned(p + S), a1);
            a2 = xsimd::fma(c, batch::load_unaligned(p + 2 * S), a2);
            a3 = xsimd::fma(c, batch::load_unaligned(p + 3 * S), a3);
        }
        a0.store_unaligned(out + i);
        a1.store_unaligned(out + i + S);
        a2.store_unaligned(out + i + 2 * S);
        a3.store_unaligned(out + i + 3 * S);
    }
    for (; i + S <= length; i += S)
    {
        batch a(init);
        for (std::size_t k = 0; k < count; ++k)
        {
            a = xsimd::fma(batch(coefficients[k]), batch::load_unaligned(sources[k] + i), a);
        }
        a.store_unaligned(out + i);
    }
    if (i < length)
    {
        batch a(init);
        for (std::size_t k = 0; k < count; ++k)
        {
            a = xsimd::fma(batch(coefficients[k]), load_partial(sources[k] + i, length - i), a);
        }
        a.store_unaligned(out + i);
    }
}

/// result[t] += sum over i < length of a[i] * sources[t][i] for t < B: B dot products sharing
/// the loads of `a`, one accumulator each.
template <std::size_t B, class T>
void dot_block(const T* a, const T* const* sources, std::size_t length, T* result)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    batch acc[B];
    for (std::size_t t = 0; t < B; ++t)
    {
        acc[t] = batch(T(0));
    }
    std::size_t i = 0;
    for (; i + S <= length; i += S)
    {
        const batch av = batch::load_unaligned(a + i);
        for (std::size_t t = 0; t < B; ++t)
        {
            acc[t] = xsimd::fma(av, batch::load_unaligned(sources[t] + i), acc[t]);
        }
    }
    if (i < length)
    {
        const batch av = load_partial(a + i, length - i);
        for (std::size_t t = 0; t < B; ++t)
        {
            acc[t] = xsimd::fma(av, load_partial(sources[t] + i, length - i), acc[t]);
        }
    }
    for (std::size_t t = 0; t < B; ++t)
    {
        result[t] += sum_lanes(acc[t]);
    }
}

/// result[t] += the dot product of a[0, length) and sources[t][0, length), for t < count: in
/// blocks of at most 9 taps per pass over `a` (9 accumulators, `a` and a load fit 16 vector
/// registers), of equal sizes, since a small block's few accumulator chains are
/// latency-bound: 9 taps (3x3) are one pass, 25 (5x5) are 9 + 8 + 8.
template <class T>
void dot_strips(const T* a, const T* const* sources, std::size_t count, std::size_t length, T* result)
{
    const std::size_t blocks = (count + 8) / 9;
    std::size_t t = 0;
    for (std::size_t block = 0; block < blocks; ++block)
    {
        const std::size_t size = count / blocks + (block < count % blocks ? 1 : 0);
        switch (size)
        {
        case 9:
            dot_block<9>(a, sources + t, length, result + t);
            break;
        case 8:
            dot_block<8>(a, sources + t, length, result + t);
            break;
        case 7:
            dot_block<7>(a, sources + t, length, result + t);
            break;
        case 6:
            dot_block<6>(a, sources + t, length, result + t);
            break;
        case 5:
            dot_block<5>(a, sources + t, length, result + t);
            break;
        case 4:
            dot_block<4>(a, sources + t, length, result + t);
            break;
        case 3:
            dot_block<3>(a, sources + t, length, result + t);
            break;
        case 2:
            dot_block<2>(a, sources + t, length, result + t);
            break;
        default:
            dot_block<1>(a, sources + t, length, result + t);
            break;
        }
        t += size;
    }
}

/// dst[j] = src[j * Step] for j < count: a stride known at compile time lets the compiler
/// vectorise the gather with shuffles.
template <std::size_t Step, class T>
void gather_every(const T* src, std::size_t count, T* dst)
{
    for (std::size_t j = 0; j < count; ++j)
    {
        dst[j] = src[j * Step];
    }
}

/// dst[j * Step] = src[j] for j < count.
template <std::size_t Step, class T>
void scatter_every(const T* src, std::size_t count, T* dst)
{
    for (std::size_t j = 0; j < count; ++j)
    {
        dst[j * Step] = src[j];
    }
}

/// dst[j] = src[j * step] for j < count.
template <class T>
void gather_strided(const T* src, std::size_t step, std::size_t count, T* dst)
{
    switch (step)
    {
    case 1:
        std::copy(src, src + count, dst);
        break;
    case 2:
        gather_every<2>(src, count, dst);
        break;
    default:
        for (std::size_t j = 0; j < count; ++j)
        {
            dst[j] = src[j * step];
        }
    }
}

/// dst[j * step] = src[j] for j < count.
template <class T>
void scatter_strided(const T* src, std::size_t step, std::size_t count, T* dst)
{
    switch (step)
    {
    case 1:
        std::copy(src, src + count, dst);
        break;
    case 2:
        scatter_every<2>(src, count, dst);
        break;
    default:
        for (std::size_t j = 0; j < count; ++j)
        {
            dst[j * step] = src[j];
        }
    }
}

/// Where the taps of a depthwise convolution read in a flat padded plane.
struct depthwise_plan
{
    std::size_t kernel_taps = 0;     ///< K = KH KW
    std::size_t multiplier = 1;      ///< M = C_out / C_in
    std::size_t span = 0;            ///< (OH - 1) SH Wp + (OW - 1) SW + 1: the flat positions computed
    std::size_t margin = 0;          ///< the largest tap offset: the zeros before the spread dY
    std::vector<std::size_t> offset; ///< offset a DH Wp + b DW of tap (a, b), for t = a KW + b

    /// Elements of one spread dY plane with its margin: every strip of dX reads inside it.
    std::size_t spread_plane(const conv_geometry& g) const noexcept { return margin + g.padded_h() * g.padded_w(); }
};

/// The plan of `g` into `plan`, whose table keeps its memory between calls.
inline void plan_depthwise(const conv_geometry& g, depthwise_plan& plan)
{
    const auto k = g.kernel, s = g.stride, d = g.dilation;
    const std::size_t wp = g.padded_w();
    plan.kernel_taps = k[0] * k[1];
    plan.multiplier = g.out_channels / g.in_channels;
    plan.span = (g.out_h() - 1) * s[0] * wp + (g.out_w() - 1) * s[1] + 1;
    plan.offset.resize(plan.kernel_taps);
    for (std::size_t a = 0; a < k[0]; ++a)
    {
        for (std::size_t b = 0; b < k[1]; ++b)
        {
            plan.offset[a * k[1] + b] = a * d[0] * wp + b * d[1];
        }
    }
    plan.margin = plan.offset[plan.kernel_taps - 1];
}

/// What one thread of the depthwise passes works in.
template <class T>
struct depthwise_thread_buffers
{
    /// An output plane over the flat positions (forward), or dX over the padded width (backward).
    conv_buffer<T> out;
    /// M spread dY planes with their margins, zeros outside dY's pixels.
    conv_buffer<T> spread;
    /// dW of the M output channels of the current input channel, summed over the images.
    std::vector<T> weight_grad;
    /// The strips of one `sum_strips` or `dot_strips`.
    std::vector<const T*> sources;
    /// The coefficients of `sources`.
    std::vector<T> coefficients;
};

/// What the depthwise passes keep between calls, so a steady shape allocates nothing.
template <class T>
struct depthwise_workspace
{
    /// The tap layout of the current geometry.
    depthwise_plan plan;
    /// One set per thread.
    std::vector<depthwise_thread_buffers<T>> threads;
};

/// Gives every thread its buffers for the plan (they only grow): `out_length` elements of
/// output, `spread_length` of spread dY.
template <class T>
void reserve_depthwise_threads(depthwise_workspace<T>& ws, std::size_t out_length, std::size_t spread_length)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    const std::size_t workers = get_num_threads(), taps = ws.plan.kernel_taps * ws.plan.multiplier;
    if (ws.threads.size() < workers)
    {
        ws.threads.resize(workers);
    }
    for (auto& t : ws.threads)
    {
        // `sum_strips` stores whole vectors: it may write S - 1 past `out_length`.
        grow_to(t.out, out_length + S);
        grow_to(t.spread, spread_length);
        grow_to(t.weight_grad, taps);
        grow_to(t.sources, taps);
        grow_to(t.coefficients, taps);
    }
}

/// y (N, C_out, OH, OW) of the depthwise convolution of `padded` (N, C_in, Hp, Wp) with
/// `weight` (C_out, 1, KH, KW), plus `bias` (C_out, or null); with `relu`, ReLU of that.
template <class T>
void depthwise_forward(const conv_geometry& g, const T* weight, const T* bias, const T* padded, T* y, bool relu,
                       depthwise_workspace<T>& ws)
{
    auto& plan = ws.plan;
    plan_depthwise(g, plan);
    const std::size_t planes = g.batch * g.in_channels, m = plan.multiplier, taps = plan.kernel_taps;
    const std::size_t oh = g.out_h(), ow = g.out_w(), wp = g.padded_w(), plane_size = g.padded_h() * wp;
    const auto s = g.stride;
    reserve_depthwise_threads(ws, plan.span, 0);
    parallel_for_items(planes, m * plan.span * taps / 4,
                       [&](std::size_t begin, std::size_t end, std::size_t worker)
                       {
                           auto& buffers = ws.threads[worker];
                           T* flat = buffers.out.data();
                           for (std::size_t p = begin; p < end; ++p)
                           {
                               for (std::size_t t = 0; t < taps; ++t)
                               {
                                   buffers.sources[t] = padded + p * plane_size + plan.offset[t];
                               }
                               // Output channel o = c M + j of image n is plane p M + j.
                               for (std::size_t j = 0; j < m; ++j)
                               {
                                   const std::size_t o = (p % g.in_channels) * m + j;
                                   sum_strips(buffers.sources.data(), weight + o * taps, taps,
                                              bias == nullptr ? T(0) : bias[o], plan.span, flat);
                                   T* out = y + (p * m + j) * oh * ow;
                                   for (std::size_t r = 0; r < oh; ++r)
                                   {
                                       const T* row = flat + r * s[0] * wp;
                                       if (s[1] != 1)
                                       {
                                           gather_strided(row, s[1], ow, out + r * ow);
                                           if (relu)
                                           {
                                               copy_short_relu(out + r * ow, ow, out + r * ow);
                                           }
                                       }
                                       else if (relu)
                                       {
                                           copy_short_relu(row, ow, out + r * ow);
                                       }
                                       else
                                       {
                                           copy_short(row, ow, out + r * ow);
                                       }
                                   }
                               }
                           }
                       });
}

/// db (C_out) = the sums of dY (N, C_out, OH, OW) over (N, OH, OW), as every other form takes
/// them; with `mask` (laid out like dY), only where it is positive.
template <class T>
void output_bias_grad(const conv_geometry& g, const T* dy, const T* mask, T* db)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t c_out = g.out_channels, out_plane = g.out_h() * g.out_w(), vector_end = out_plane - out_plane % S;
    for (std::size_t o = 0; o < c_out; ++o)
    {
        batch partial(T(0));
        T sum = 0;
        for (std::size_t b = 0; b < g.batch; ++b)
        {
            const T* src = dy + (b * c_out + o) * out_plane;
            const T* msk = mask == nullptr ? nullptr : mask + (b * c_out + o) * out_plane;
            for (std::size_t i = 0; i < vector_end; i += S)
            {
                batch v = batch::load_unaligned(src + i);
                if (msk != nullptr)
                {
                    v = xsimd::select(batch::load_unaligned(msk + i) > batch(T(0)), v, batch(T(0)));
                }
                partial += v;
            }
            for (std::size_t i = vector_end; i < out_plane; ++i)
            {
                sum += msk == nullptr || msk[i] > T(0) ? src[i] : T(0);
            }
        }
        db[o] = sum + sum_lanes(partial);
    }
}

/// dw (C_out, 1, KH, KW), db (C_out, or null) and, unless `dx` is null, dx (N, C_in, H, W) of
/// the depthwise convolution, from dY (N, C_out, OH, OW) and the padded input `padded`. With
/// `mask` (the ReLU'd output, laid out like dY), dY passes only where it is positive, inside the
/// spreading copy.
template <class T>
void depthwise_backward(const conv_geometry& g, const T* weight, const T* padded, const T* dy, const T* mask, T* dw,
                        T* db, T* dx, depthwise_workspace<T>& ws)
{
    auto& plan = ws.plan;
    plan_depthwise(g, plan);
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, m = plan.multiplier, taps = plan.kernel_taps;
    const std::size_t oh = g.out_h(), ow = g.out_w(), spread_plane = plan.spread_plane(g);
    const std::size_t h = g.input[0], w = g.input[1], wp = g.padded_w(), plane_size = g.padded_h() * wp;
    const auto s = g.stride;
    // dX over the padded width, from the first pixel of the input, (PH, PW), to its last.
    const std::size_t first = g.padding[0] * wp + g.padding[1], dx_length = (h - 1) * wp + w;
    reserve_depthwise_threads(ws, dx_length, m * spread_plane);
    parallel_for_items(
        c_in, g.batch * m * plan.span * taps / 2,
        [&](std::size_t begin, std::size_t end, std::size_t worker)
        {
            auto& buffers = ws.threads[worker];
            T* spread = buffers.spread.data();
            // Only dY's pixels are ever written: the margins and the positions between them stay zero.
            std::fill(spread, spread + m * spread_plane, T(0));
            for (std::size_t c = begin; c < end; ++c)
            {
                std::fill(buffers.weight_grad.begin(), buffers.weight_grad.begin() + m * taps, T(0));
                for (std::size_t n = 0; n < g.batch; ++n)
                {
                    const std::size_t plane = n * c_in + c;
                    for (std::size_t j = 0; j < m; ++j)
                    {
                        const std::size_t at = (n * c_out + c * m + j) * oh * ow;
                        T* target = spread + j * spread_plane + plan.margin;
                        for (std::size_t r = 0; r < oh; ++r)
                        {
                            T* row = target + r * s[0] * wp;
                            if (mask != nullptr)
                            {
                                if (s[1] == 1)
                                {
                                    copy_short_masked(dy + at + r * ow, mask + at + r * ow, ow, row);
                                }
                                else
                                {
                                    for (std::size_t i = 0; i < ow; ++i)
                                    {
                                        row[i * s[1]] = mask[at + r * ow + i] > T(0) ? dy[at + r * ow + i] : T(0);
                                    }
                                }
                            }
                            else
                            {
                                scatter_strided(dy + at + r * ow, s[1], ow, row);
                            }
                        }
                    }
                    // dW: the spread dY against every tap's strip of the input.
                    for (std::size_t t = 0; t < taps; ++t)
                    {
                        buffers.sources[t] = padded + plane * plane_size + plan.offset[t];
                    }
                    for (std::size_t j = 0; j < m; ++j)
                    {
                        dot_strips(spread + j * spread_plane + plan.margin, buffers.sources.data(), taps, plan.span,
                                   buffers.weight_grad.data() + j * taps);
                    }
                    if (dx == nullptr)
                    {
                        continue;
                    }
                    // dX: every tap of every output channel reads the spread dY shifted back.
                    for (std::size_t j = 0; j < m; ++j)
                    {
                        for (std::size_t t = 0; t < taps; ++t)
                        {
                            buffers.sources[j * taps + t] =
                                spread + j * spread_plane + plan.margin + first - plan.offset[t];
                            buffers.coefficients[j * taps + t] = weight[(c * m + j) * taps + t];
                        }
                    }
                    sum_strips(buffers.sources.data(), buffers.coefficients.data(), m * taps, T(0), dx_length,
                               buffers.out.data());
                    T* dx_plane = dx + plane * h * w;
                    for (std::size_t r = 0; r < h; ++r)
                    {
                        copy_short<true>(buffers.out.data() + r * wp, w, dx_plane + r * w);
                    }
                }
                std::copy(buffers.weight_grad.begin(), buffers.weight_grad.begin() + m * taps, dw + c * m * taps);
            }
        });
    if (db != nullptr)
    {
        output_bias_grad(g, dy, mask, db);
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_DEPTHWISE_HPP
