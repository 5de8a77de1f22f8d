/// @file
/// Depthwise convolution read in place through masked taps, over the stride phases of the input:
/// forward, dW and dX with no padded copy and no copy-out of wrap-around positions.
///
/// With stride (SH, SW), split each input plane into its SH SW phases: phase (rh, rw) holds the
/// pixels (i SH + rh, j SW + rw), a plane of H' x W' = H / SH x W / SW. When the output is H' x
/// W' too ("same" padding), output pixel (i, j) at tap (a, b) reads input row i SH + a DH - PH,
/// which is row i + floor(e / SH) of phase e mod SH, with e = a DH - PH, and the same along the
/// width: every tap reads one phase plane at a fixed shift. Flattened, output position q = i W' +
/// j reads position q + shift of that phase plane, so a vector of consecutive outputs reads a
/// vector of consecutive inputs, with the lanes whose shifted pixel falls outside the plane (the
/// zero padding, a wrap to the next row) masked off. A plane is then K masked loads and FMAs per
/// vector of outputs, whatever its width (4 x 4 planes are one vector), where
/// core/conv/depthwise.hpp's strips compute the wrap-around positions of the padded width and
/// copy rows out.
///
/// At stride 1 the single phase is the input itself; the layer still keeps a copy of it for the
/// backward pass, written plane by plane while the plane is read. dX is the same correlation
/// run the other way: dX's phase plane is a sum, over the taps reading that phase, of dY shifted
/// back, masked where the shifted pixel leaves dY. dW is, per tap, the dot product of dY with
/// the tap's masked, shifted input, summed over the images in vector accumulators.
///
/// `depthwise_phases_apply` says when the layout holds; core/conv/select.hpp uses this form then.
#ifndef XCNN_CORE_CONV_DEPTHWISE_PHASES_HPP
#define XCNN_CORE_CONV_DEPTHWISE_PHASES_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../simd.hpp"
#include "../threading.hpp"
#include "depthwise.hpp"
#include "geometry.hpp"

namespace xcnn
{
namespace detail
{

/// Whether a depthwise convolution's taps land in its input's stride phases at fixed shifts:
/// each input size a multiple of its stride, and the output as large as a phase plane.
inline bool depthwise_phases_apply(const conv_geometry& g) noexcept
{
    return g.groups > 1 && g.groups == g.in_channels && g.input[0] % g.stride[0] == 0 &&
           g.input[1] % g.stride[1] == 0 && g.out_h() == g.input[0] / g.stride[0] &&
           g.out_w() == g.input[1] / g.stride[1];
}

/// Where each tap reads, and which lanes of each output vector it reads.
struct depthwise_phase_plan
{
    std::size_t taps = 0;       ///< K = KH KW
    std::size_t multiplier = 1; ///< M = C_out / C_in
    std::size_t phases = 1;     ///< SH SW
    std::size_t plane = 0;      ///< P = H' W' = OH OW, the size of a phase plane and of an output plane
    std::size_t vectors = 0;    ///< ceil(P / S)
    /// Tap t reads the phase plane starting at `phase_start[t]` (an offset into the input plane),
    /// at flat shift `shift[t]` = floor(e_h / SH) W' + floor(e_w / SW).
    std::vector<std::size_t> phase_of, phase_start;
    std::vector<std::ptrdiff_t> shift;
    /// floor(e_h / SH) and floor(e_w / SW) of tap t: its shift in phase rows and columns.
    std::vector<std::ptrdiff_t> row_shift, col_shift;
    /// Lanes of output vector v where tap t's pixel lies in its phase plane: `reads[v K + t]`;
    /// lanes of dX vector v where dY shifted back by tap t lies in dY: `receives[v K + t]`.
    std::vector<std::uint32_t> reads, receives;
    /// The lanes of vector v that are outputs (all but the last vector's tail).
    std::vector<std::uint32_t> valid;
};

/// floor(a / b) for b > 0.
inline std::ptrdiff_t floor_div(std::ptrdiff_t a, std::ptrdiff_t b) noexcept
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/// The plan of `g` (for which `depthwise_phases_apply` holds) with S-lane vectors, into `plan`,
/// whose tables keep their memory between calls.
inline void plan_depthwise_phases(const conv_geometry& g, std::size_t lanes, depthwise_phase_plan& plan)
{
    const auto k = g.kernel, s = g.stride, d = g.dilation, p = g.padding;
    const std::size_t ph = g.input[0] / s[0], pw = g.input[1] / s[1];
    plan.taps = k[0] * k[1];
    plan.multiplier = g.out_channels / g.in_channels;
    plan.phases = s[0] * s[1];
    plan.plane = ph * pw;
    plan.vectors = (plan.plane + lanes - 1) / lanes;
    plan.phase_of.resize(plan.taps);
    plan.phase_start.resize(plan.taps);
    plan.shift.resize(plan.taps);
    plan.row_shift.resize(plan.taps);
    plan.col_shift.resize(plan.taps);
    auto& row_shift = plan.row_shift;
    auto& col_shift = plan.col_shift;
    for (std::size_t a = 0; a < k[0]; ++a)
    {
        for (std::size_t b = 0; b < k[1]; ++b)
        {
            const std::size_t t = a * k[1] + b;
            const auto eh = static_cast<std::ptrdiff_t>(a * d[0]) - static_cast<std::ptrdiff_t>(p[0]);
            const auto ew = static_cast<std::ptrdiff_t>(b * d[1]) - static_cast<std::ptrdiff_t>(p[1]);
            const auto sh = static_cast<std::ptrdiff_t>(s[0]), sw = static_cast<std::ptrdiff_t>(s[1]);
            row_shift[t] = floor_div(eh, sh);
            col_shift[t] = floor_div(ew, sw);
            const auto rh = static_cast<std::size_t>(eh - row_shift[t] * sh);
            const auto rw = static_cast<std::size_t>(ew - col_shift[t] * sw);
            plan.phase_of[t] = rh * s[1] + rw;
            plan.phase_start[t] = plan.phase_of[t] * plan.plane;
            plan.shift[t] = row_shift[t] * static_cast<std::ptrdiff_t>(pw) + col_shift[t];
        }
    }
    plan.reads.assign(plan.vectors * plan.taps, 0);
    plan.receives.assign(plan.vectors * plan.taps, 0);
    plan.valid.assign(plan.vectors, 0);
    const auto inside = [&](std::ptrdiff_t i, std::ptrdiff_t j)
    {
        return i >= 0 && j >= 0 && i < static_cast<std::ptrdiff_t>(ph) && j < static_cast<std::ptrdiff_t>(pw);
    };
    for (std::size_t q = 0; q < plan.plane; ++q)
    {
        const std::size_t v = q / lanes;
        const std::uint32_t bit = std::uint32_t(1) << (q % lanes);
        const auto i = static_cast<std::ptrdiff_t>(q / pw), j = static_cast<std::ptrdiff_t>(q % pw);
        plan.valid[v] |= bit;
        for (std::size_t t = 0; t < plan.taps; ++t)
        {
            if (inside(i + row_shift[t], j + col_shift[t]))
            {
                plan.reads[v * plan.taps + t] |= bit;
            }
            if (inside(i - row_shift[t], j - col_shift[t]))
            {
                plan.receives[v * plan.taps + t] |= bit;
            }
        }
    }
}

/// out[q] = init + sum over k < count of coefficients[k] * source[q + offsets[k]] for q <
/// `length` (the plan's plane), each term masked by masks[v stride + mask_column[k]] for the vector
/// v holding q, the terms added in the order of k; then ReLU with `relu`. Writes only [0, length).
template <class T>
void masked_tap_sum(const depthwise_phase_plan& plan, const T* source, const std::ptrdiff_t* offsets,
                    const T* coefficients, const std::uint32_t* masks, std::size_t stride,
                    const std::size_t* mask_column, std::size_t count, T init, bool relu, T* out)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    constexpr std::size_t V = 4; // independent accumulator chains, to hide the FMA latency
    const auto finish = [&](batch a, std::size_t v)
    {
        if (relu)
        {
            a = xsimd::max(a, batch(T(0)));
        }
        if (plan.valid[v] == first_lanes(S))
        {
            a.store_unaligned(out + v * S);
        }
        else
        {
            store_masked(out + v * S, a, plan.valid[v]);
        }
    };
    std::size_t v = 0;
    for (; v + V <= plan.vectors; v += V)
    {
        // Even and odd terms in separate chains, added at the end: a small plane is one block,
        // and 4 chains of K dependent FMAs would wait on the FMA latency.
        batch even[V], odd[V];
        for (std::size_t u = 0; u < V; ++u)
        {
            even[u] = batch(init);
            odd[u] = batch(T(0));
        }
        const auto term = [&](std::size_t k, batch* acc)
        {
            const batch c(coefficients[k]);
            const std::uint32_t* mask = masks + v * stride + mask_column[k];
            const std::ptrdiff_t at = offsets[k] + static_cast<std::ptrdiff_t>(v * S);
            for (std::size_t u = 0; u < V; ++u)
            {
                acc[u] = xsimd::fma(c, load_masked(source, at + static_cast<std::ptrdiff_t>(u * S), mask[u * stride]),
                                    acc[u]);
            }
        };
        std::size_t k = 0;
        for (; k + 2 <= count; k += 2)
        {
            term(k, even);
            term(k + 1, odd);
        }
        if (k < count)
        {
            term(k, even);
        }
        for (std::size_t u = 0; u < V; ++u)
        {
            finish(even[u] + odd[u], v + u);
        }
    }
    for (; v < plan.vectors; ++v)
    {
        batch acc(init);
        for (std::size_t k = 0; k < count; ++k)
        {
            acc = xsimd::fma(batch(coefficients[k]),
                             load_masked(source, offsets[k] + static_cast<std::ptrdiff_t>(v * S),
                                         masks[v * stride + mask_column[k]]),
                             acc);
        }
        finish(acc, v);
    }
}

/// sums[t] += a[q] * source[q + offsets[t]] lane by lane for q < the plan's plane and t <
/// count, masked by the plan's `reads` of tap t: the dot products of dW, left in vectors.
template <class T>
void masked_tap_dots(const depthwise_phase_plan& plan, const T* a, const T* source, const std::ptrdiff_t* offsets,
                     std::size_t count, xsimd::batch<T>* sums)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    constexpr std::size_t B = 8; // taps per pass over `a`: 8 accumulators and the loads fit the registers
    for (std::size_t t0 = 0; t0 < count; t0 += B)
    {
        const std::size_t block = std::min(B, count - t0);
        batch acc[B];
        for (std::size_t t = 0; t < B; ++t)
        {
            acc[t] = batch(T(0));
        }
        for (std::size_t v = 0; v < plan.vectors; ++v)
        {
            const batch av = load_masked(a, static_cast<std::ptrdiff_t>(v * S), plan.valid[v]);
            const std::uint32_t* mask = plan.reads.data() + v * plan.taps + t0;
            for (std::size_t t = 0; t < block; ++t)
            {
                acc[t] = xsimd::fma(
                    av, load_masked(source, offsets[t0 + t] + static_cast<std::ptrdiff_t>(v * S), mask[t]), acc[t]);
            }
        }
        for (std::size_t t = 0; t < block; ++t)
        {
            sums[t0 + t] += acc[t];
        }
    }
}

/// What one thread of the phase form works in.
template <class T>
struct depthwise_phase_buffers
{
    /// dY of the M output channels of one plane through the ReLU mask (M planes of whole vectors).
    conv_buffer<T> grad;
    /// dX's phase planes before they are interleaved into dX (stride above 1).
    conv_buffer<T> phases;
    /// dW of the current input channel's M K taps, in vectors.
    std::vector<xsimd::batch<T>, xsimd::aligned_allocator<xsimd::batch<T>, 64>> weight_grad;
    /// Where tap t reads in an input plane: its phase plane's start plus its shift.
    std::vector<std::ptrdiff_t> tap_offsets;
    /// The terms of dX's `masked_tap_sum`s, phase after phase: phase f's are [first[f], first[f + 1]).
    std::vector<std::size_t> first;
    std::vector<std::ptrdiff_t> offsets;
    std::vector<T> coefficients;
    std::vector<std::size_t> mask_column;
};

/// What the phase form keeps between calls, so a steady shape allocates nothing.
template <class T>
struct depthwise_phase_workspace
{
    depthwise_phase_plan plan;
    std::vector<depthwise_phase_buffers<T>> threads;
};

/// Plans `g` and gives every thread its buffers (they only grow).
template <class T>
void prepare_depthwise_phases(const conv_geometry& g, depthwise_phase_workspace<T>& ws)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    auto& plan = ws.plan;
    plan_depthwise_phases(g, S, plan);
    const std::size_t workers = get_num_threads(), terms = plan.taps * plan.multiplier;
    if (ws.threads.size() < workers)
    {
        ws.threads.resize(workers);
    }
    for (auto& t : ws.threads)
    {
        grow_to(t.grad, plan.multiplier * plan.vectors * S);
        grow_to(t.phases, plan.phases * plan.plane + S);
        grow_to(t.weight_grad, terms);
        grow_to(t.tap_offsets, plan.taps);
        grow_to(t.first, plan.phases + 1);
        grow_to(t.offsets, terms);
        grow_to(t.coefficients, terms);
        grow_to(t.mask_column, terms);
        for (std::size_t k = 0; k < plan.taps; ++k)
        {
            t.tap_offsets[k] = static_cast<std::ptrdiff_t>(plan.phase_start[k]) + plan.shift[k];
        }
    }
}

/// kept (H W elements) = the phases of the input plane `x` (H, W), one after another: input row
/// r holds row r / SH of the phases (r mod SH, rw) for every rw.
template <class T>
void split_phases(const conv_geometry& g, const T* x, T* kept)
{
    const std::size_t h = g.input[0], w = g.input[1], sh = g.stride[0], sw = g.stride[1];
    if (sh == 1 && sw == 1)
    {
        std::copy(x, x + h * w, kept);
        return;
    }
    const std::size_t pw = w / sw, plane = h / sh * pw;
    for (std::size_t r = 0; r < h; ++r)
    {
        const T* row = x + r * w;
        T* first = kept + (r % sh) * sw * plane + r / sh * pw; // phase (r mod SH, 0), row r / SH
        if (sw == 2)
        {
            deinterleave_pairs(row, pw, first, first + plane);
        }
        else
        {
            for (std::size_t rw = 0; rw < sw; ++rw)
            {
                gather_strided(row + rw, sw, pw, first + rw * plane);
            }
        }
    }
}

/// dx (H, W) = the phase planes `phases`, one after another, interleaved back.
template <class T>
void merge_phases(const conv_geometry& g, const T* phases, T* dx)
{
    const std::size_t h = g.input[0], w = g.input[1], sh = g.stride[0], sw = g.stride[1];
    const std::size_t pw = w / sw, plane = h / sh * pw;
    for (std::size_t r = 0; r < h; ++r)
    {
        T* row = dx + r * w;
        const T* first = phases + (r % sh) * sw * plane + r / sh * pw;
        if (sw == 2)
        {
            interleave_pairs(first, first + plane, pw, row);
        }
        else
        {
            for (std::size_t rw = 0; rw < sw; ++rw)
            {
                scatter_strided(first + rw * plane, sw, pw, row + rw);
            }
        }
    }
}

/// y (N, C_out, OH, OW) of the depthwise convolution of x (N, C_in, H, W) with `weight` (C_out,
/// 1, KH, KW), plus `bias` (C_out, or null), with ReLU when `relu`; `kept` (N C_in H W elements)
/// receives the input's phase planes for `depthwise_phases_backward`.
template <class T>
void depthwise_phases_forward(const conv_geometry& g, const T* weight, const T* bias, const T* x, T* kept, T* y,
                              bool relu, depthwise_phase_workspace<T>& ws)
{
    prepare_depthwise_phases(g, ws);
    const auto& plan = ws.plan;
    const std::size_t planes = g.batch * g.in_channels, in_plane = g.input[0] * g.input[1];
    const std::size_t m = plan.multiplier, taps = plan.taps, out_plane = plan.plane;
    parallel_for_items(planes, m * out_plane * taps / 4,
                       [&](std::size_t begin, std::size_t end, std::size_t worker)
                       {
                           auto& buffers = ws.threads[worker];
                           for (std::size_t t = 0; t < taps; ++t)
                           {
                               buffers.mask_column[t] = t;
                           }
                           for (std::size_t p = begin; p < end; ++p)
                           {
                               T* source = kept + p * in_plane;
                               split_phases(g, x + p * in_plane, source);
                               for (std::size_t j = 0; j < m; ++j)
                               {
                                   // Output channel o = c M + j of image n is plane p M + j.
                                   const std::size_t o = (p % g.in_channels) * m + j;
                                   masked_tap_sum(plan, source, buffers.tap_offsets.data(), weight + o * taps,
                                                  plan.reads.data(), taps, buffers.mask_column.data(), taps,
                                                  bias == nullptr ? T(0) : bias[o], relu, y + (p * m + j) * out_plane);
                               }
                           }
                       });
}

/// dw (C_out, 1, KH, KW), db (C_out, or null) and, unless `dx` is null, dx (N, C_in, H, W),
/// from dY (N, C_out, OH, OW) and the phase planes `kept` of the last forward. With `mask` (the
/// ReLU'd output, laid out like dY), dY counts only where it is positive.
template <class T>
void depthwise_phases_backward(const conv_geometry& g, const T* weight, const T* kept, const T* dy, const T* mask,
                               T* dw, T* db, T* dx, depthwise_phase_workspace<T>& ws)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    prepare_depthwise_phases(g, ws);
    const auto& plan = ws.plan;
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, in_plane = g.input[0] * g.input[1];
    const std::size_t m = plan.multiplier, taps = plan.taps, out_plane = plan.plane, padded_plane = plan.vectors * S;
    const bool unit = g.unit_stride();
    parallel_for_items(
        c_in, g.batch * m * out_plane * taps / 2,
        [&](std::size_t begin, std::size_t end, std::size_t worker)
        {
            auto& buffers = ws.threads[worker];
            // dY's M planes of an image lie `grad_step` apart: in dY itself, or masked in `grad`.
            const std::size_t grad_step = mask != nullptr ? padded_plane : out_plane;
            for (std::size_t c = begin; c < end; ++c)
            {
                // dX's terms, phase by phase: the taps that read the phase, on dY shifted back.
                std::size_t count = 0;
                for (std::size_t phase = 0; phase < plan.phases; ++phase)
                {
                    buffers.first[phase] = count;
                    for (std::size_t j = 0; j < m; ++j)
                    {
                        for (std::size_t t = 0; t < taps; ++t)
                        {
                            if (plan.phase_of[t] == phase)
                            {
                                buffers.offsets[count] = static_cast<std::ptrdiff_t>(j * grad_step) - plan.shift[t];
                                buffers.coefficients[count] = weight[(c * m + j) * taps + t];
                                buffers.mask_column[count] = t;
                                ++count;
                            }
                        }
                    }
                }
                buffers.first[plan.phases] = count;
                std::fill(buffers.weight_grad.begin(), buffers.weight_grad.begin() + m * taps, batch(T(0)));
                for (std::size_t n = 0; n < g.batch; ++n)
                {
                    const T* source = kept + (n * c_in + c) * in_plane;
                    const std::size_t at = (n * c_out + c * m) * out_plane;
                    const T* grad = dy + at;
                    if (mask != nullptr)
                    {
                        for (std::size_t j = 0; j < m; ++j)
                        {
                            T* masked = buffers.grad.data() + j * padded_plane;
                            for (std::size_t v = 0; v < plan.vectors; ++v)
                            {
                                const auto off = static_cast<std::ptrdiff_t>(j * out_plane + v * S);
                                const batch value = load_masked(dy + at, off, plan.valid[v]);
                                const batch keep = load_masked(mask + at, off, plan.valid[v]);
                                xsimd::select(keep > batch(T(0)), value, batch(T(0))).store_aligned(masked + v * S);
                            }
                        }
                        grad = buffers.grad.data();
                    }
                    for (std::size_t j = 0; j < m; ++j)
                    {
                        masked_tap_dots(plan, grad + j * grad_step, source, buffers.tap_offsets.data(), taps,
                                        buffers.weight_grad.data() + j * taps);
                    }
                    if (dx == nullptr)
                    {
                        continue;
                    }
                    T* dx_plane = dx + (n * c_in + c) * in_plane;
                    for (std::size_t phase = 0; phase < plan.phases; ++phase)
                    {
                        const std::size_t k0 = buffers.first[phase];
                        masked_tap_sum(plan, grad, buffers.offsets.data() + k0, buffers.coefficients.data() + k0,
                                       plan.receives.data(), taps, buffers.mask_column.data() + k0,
                                       buffers.first[phase + 1] - k0, T(0), false,
                                       unit ? dx_plane : buffers.phases.data() + phase * out_plane);
                    }
                    if (!unit)
                    {
                        merge_phases(g, buffers.phases.data(), dx_plane);
                    }
                }
                for (std::size_t k = 0; k < m * taps; ++k)
                {
                    dw[c * m * taps + k] = sum_lanes(buffers.weight_grad[k]);
                }
            }
        });
    if (db != nullptr)
    {
        output_bias_grad(g, dy, mask, db);
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_DEPTHWISE_PHASES_HPP
