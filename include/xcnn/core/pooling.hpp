/// @file
/// Pooling kernels over the planes of NCHW tensors: the window geometry (kernel, stride, zero or
/// -inf padding) that max and average pooling share, max pooling (any window one at a time,
/// vectorised along the rows, and a vectorised 2 x 2 stride-2 form) and the scatter of its
/// gradient, and average pooling and its gradient (any window, the whole plane included). Layers (MaxPool2D, AvgPool2D,
/// GlobalAvgPool2D) own the buffers and the threading; these functions read and write raw planes.
#ifndef XCNN_CORE_POOLING_HPP
#define XCNN_CORE_POOLING_HPP

#include <algorithm>
#include <cstddef>
#include <limits>

#include "padding.hpp"
#include "simd.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Planes, their size, the output size, the kernel, the stride and the padding of a pooling.
/// Padding is at most half the kernel (PyTorch's rule), so every window overlaps the input.
struct pool_geometry
{
    std::size_t planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
};

/// Number of windows of `kernel` moved by `stride` over `extent` + 2 `padding` positions, floor
/// mode (PyTorch's default `ceil_mode=False`); 0 if even one window does not fit.
constexpr std::size_t pool_extent(std::size_t extent, std::size_t kernel, std::size_t stride,
                                  std::size_t padding) noexcept
{
    return extent + 2 * padding < kernel ? 0 : (extent + 2 * padding - kernel) / stride + 1;
}

/// Input positions [begin, end) window `i` covers along one axis: the window starts at i * stride
/// in padded coordinates, and the padding it covers is cut off. Never empty while padding is
/// below the kernel.
struct window_span
{
    std::size_t begin, end;
};

/// The `window_span` of window `i` along an axis of `extent` positions.
inline window_span window_of(std::size_t i, std::size_t kernel, std::size_t stride, std::size_t padding,
                             std::size_t extent) noexcept
{
    const std::size_t start = i * stride; // padded coordinate
    return {start < padding ? 0 : start - padding, std::min(start + kernel - padding, extent)};
}

/// True if `candidate` replaces `best` as the maximum: larger, or a NaN replacing a number (a
/// NaN wins and stays, so NaNs propagate as in PyTorch; ties keep `best`).
template <class T>
bool takes_over(T candidate, T best)
{
    return (candidate > best) || (candidate != candidate && best == best);
}

/// `takes_over` lane by lane (xsimd's `!=` is an ordered comparison, false for NaN).
template <class T, class A>
xsimd::batch_bool<T, A> takes_over(const xsimd::batch<T, A>& candidate, const xsimd::batch<T, A>& best)
{
    return (candidate > best) | (xsimd::isnan(candidate) & ~xsimd::isnan(best));
}

/// Max of one window, rows [`rows.begin`, `rows.end`) and columns [`cols.begin`, `cols.end`)
/// of the plane at flat index `base` of `in` (`w` columns): its value in `best` and its flat
/// index in `where`. Ties keep the first maximum in row-major window order.
template <class T>
void max_of_window(const T* in, std::size_t base, std::size_t w, window_span rows, window_span cols, T& best,
                   std::size_t& where)
{
    where = base + rows.begin * w + cols.begin;
    best = in[where];
    for (std::size_t a = rows.begin; a < rows.end; ++a)
    {
        for (std::size_t b = cols.begin; b < cols.end; ++b)
        {
            const std::size_t at = base + a * w + b;
            const T v = in[at];
            if (takes_over(v, best))
            {
                best = v;
                where = at;
            }
        }
    }
}

/// Max of every window of planes [first, last), and (if `argmax` is not null) the flat input
/// index it came from, for any kernel, stride and padding, one window at a time. Padded
/// positions are -inf and never chosen, as in PyTorch: a window is cut to the input it covers.
/// Ties keep the first maximum in row-major window order. `in`, `y` and `argmax` address all
/// the planes.
template <class T>
void max_pool_planes(const pool_geometry& g, std::size_t first, std::size_t last, const T* in, T* y,
                     std::size_t* argmax)
{
    y += first * g.oh * g.ow;
    argmax = argmax != nullptr ? argmax + first * g.oh * g.ow : nullptr;
    for (std::size_t plane = first; plane < last; ++plane)
    {
        for (std::size_t i = 0; i < g.oh; ++i)
        {
            const window_span rows = window_of(i, g.kh, g.sh, g.ph, g.h);
            for (std::size_t j = 0; j < g.ow; ++j)
            {
                std::size_t where = 0;
                max_of_window(in, plane * g.h * g.w, g.w, rows, window_of(j, g.kw, g.sw, g.pw, g.w), *y++, where);
                if (argmax != nullptr)
                {
                    *argmax++ = where;
                }
            }
        }
    }
}

/// Whether `max_pool_planes_rows` can run `g`: its position codes, (row in window) * W +
/// (column in window), must be exact in `T`.
template <class T>
bool max_pool_rows_fits(const pool_geometry& g) noexcept
{
    constexpr std::size_t exact = std::size_t(1) << std::numeric_limits<T>::digits;
    return g.kh < exact / (g.w + g.kw + 1);
}

/// Length of one scratch row of `max_pool_planes_rows`: the padded row and a window and a vector
/// past its end, in whole vectors.
template <class T>
std::size_t max_pool_rows_row(const pool_geometry& g) noexcept
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    return (g.w + 2 * g.pw + g.kw + 2 * S) / S * S;
}

/// Elements of scratch one thread of `max_pool_planes_rows` uses: three rows.
template <class T>
std::size_t max_pool_rows_scratch(const pool_geometry& g) noexcept
{
    return 3 * max_pool_rows_row<T>(g);
}

/// `max_pool_planes` vectorised along the rows, for any window (ResNet's 3 x 3, stride 2,
/// padding 1): for each output row, the max of the window starting at every padded column of
/// each of its input rows (shifted loads, first maximum from the left), merged down the rows
/// (the first row wins ties): row-major order's first maximum. Selects replace data-dependent
/// branches. Rows are copied into `scratch` between -inf margins, which a strict comparison
/// never chooses; only a window starting in the left padding can begin with one, and those few
/// run through `max_of_window`. Same results, ties and NaNs included, as `max_pool_planes`.
/// Needs `max_pool_rows_fits(g)`; `scratch` holds `max_pool_rows_scratch(g)` elements, 64-byte
/// aligned.
template <class T>
void max_pool_planes_rows(const pool_geometry& g, std::size_t first, std::size_t last, const T* in, T* y,
                          std::size_t* argmax, T* scratch)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t row = max_pool_rows_row<T>(g);
    T* padded = scratch;
    T* best = padded + row;
    T* code = best + row;
    std::fill(padded, padded + row, -std::numeric_limits<T>::infinity());
    const std::size_t starts = (g.ow - 1) * g.sw + 1;                  // padded columns where a window starts
    const std::size_t left = std::min(g.ow, (g.pw + g.sw - 1) / g.sw); // windows starting in the padding
    y += first * g.oh * g.ow;
    argmax = argmax != nullptr ? argmax + first * g.oh * g.ow : nullptr;
    for (std::size_t plane = first; plane < last; ++plane)
    {
        const std::size_t base = plane * g.h * g.w;
        for (std::size_t i = 0; i < g.oh; ++i)
        {
            const window_span rows = window_of(i, g.kh, g.sh, g.ph, g.h);
            for (std::size_t r = rows.begin; r < rows.end; ++r)
            {
                copy_short(in + base + r * g.w, g.w, padded + g.pw);
                const batch down(static_cast<T>((r - rows.begin) * g.w));
                for (std::size_t c = 0; c < starts; c += S)
                {
                    batch v = batch::load_unaligned(padded + c), at(T(0));
                    for (std::size_t b = 1; b < g.kw; ++b)
                    {
                        const batch candidate = batch::load_unaligned(padded + c + b);
                        const auto right = takes_over(candidate, v);
                        v = xsimd::select(right, candidate, v);
                        at = xsimd::select(right, batch(static_cast<T>(b)), at);
                    }
                    if (r == rows.begin)
                    {
                        v.store_aligned(best + c);
                        at.store_aligned(code + c);
                        continue;
                    }
                    const batch above = batch::load_aligned(best + c);
                    const auto lower = takes_over(v, above);
                    xsimd::select(lower, v, above).store_aligned(best + c);
                    xsimd::select(lower, at + down, batch::load_aligned(code + c)).store_aligned(code + c);
                }
            }
            // Window j starts at padded column j * sw, input column j * sw - pw (+ its code).
            const std::size_t origin = base + rows.begin * g.w;
            for (std::size_t j = 0; j < g.ow; ++j)
            {
                if (j < left)
                {
                    std::size_t where = 0;
                    max_of_window(in, base, g.w, rows, window_of(j, g.kw, g.sw, g.pw, g.w), y[j], where);
                    if (argmax != nullptr)
                    {
                        argmax[j] = where;
                    }
                    continue;
                }
                y[j] = best[j * g.sw];
                if (argmax != nullptr)
                {
                    argmax[j] = origin + j * g.sw + static_cast<std::size_t>(code[j * g.sw]) - g.pw;
                }
            }
            y += g.ow;
            argmax = argmax != nullptr ? argmax + g.ow : nullptr;
        }
    }
}

/// Elements of scratch one thread of `max_pool_planes_2x2` uses: a row of outputs in whole
/// vectors, for the argmax offsets.
template <class T>
std::size_t max_pool_2x2_scratch(const pool_geometry& g) noexcept
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    return (g.ow + S - 1) / S * S;
}

/// `max_pool_planes` for the common 2 x 2 kernel with stride 2 and no padding, vectorised: a
/// vector of outputs is the max of four vectors, the even and odd columns of the two input rows
/// (`load_pairs`, split in registers); the selects replace data-dependent branches, which
/// mispredict half the time on real activations. Same results, ties and NaNs included, as
/// `max_pool_planes`. `scratch` holds `max_pool_2x2_scratch(g)` elements, 64-byte aligned.
template <class T>
void max_pool_planes_2x2(const pool_geometry& g, std::size_t first, std::size_t last, const T* in, T* y,
                         std::size_t* argmax, T* scratch)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const batch one(T(1)), zero(T(0)), below(static_cast<T>(g.w));
    y += first * g.oh * g.ow;
    argmax = argmax != nullptr ? argmax + first * g.oh * g.ow : nullptr;
    for (std::size_t plane = first; plane < last; ++plane)
    {
        const T* base = in + plane * g.h * g.w;
        for (std::size_t i = 0; i < g.oh; ++i)
        {
            const T* top = base + 2 * i * g.w;
            for (std::size_t j = 0; j < g.ow; j += S)
            {
                const std::size_t count = std::min(S, g.ow - j);
                batch a0, b0, a1, b1;
                load_pairs(top + 2 * j, count, a0, b0);
                load_pairs(top + g.w + 2 * j, count, a1, b1);
                const auto right0 = takes_over(b0, a0), right1 = takes_over(b1, a1);
                const batch h0 = xsimd::select(right0, b0, a0), h1 = xsimd::select(right1, b1, a1);
                const auto lower = takes_over(h1, h0);
                // The lanes past the row are not stored: they would be the next plane's, which
                // may be another thread's.
                store_masked(y + j, xsimd::select(lower, h1, h0), first_lanes(count));
                if (argmax != nullptr)
                {
                    // The window's offset of its maximum.
                    xsimd::select(lower, below + xsimd::select(right1, one, zero), xsimd::select(right0, one, zero))
                        .store_aligned(scratch + j);
                }
            }
            if (argmax != nullptr)
            {
                const std::size_t row = plane * g.h * g.w + 2 * i * g.w;
                for (std::size_t j = 0; j < g.ow; ++j)
                {
                    *argmax++ = row + 2 * j + static_cast<std::size_t>(scratch[j]);
                }
            }
            y += g.ow;
        }
    }
}

/// dX of max pooling for planes [first, last): zero, then each output gradient added at the
/// input element its window's maximum came from (`argmax`, flat input indices). A window's
/// maximum lies in its own plane, so callers sharing out planes never add into one element.
template <class T>
void max_pool_input_grad_planes(std::size_t first, std::size_t last, std::size_t in_plane, std::size_t out_plane,
                                const T* dy, const std::size_t* argmax, T* dx)
{
    std::fill(dx + first * in_plane, dx + last * in_plane, T(0));
    for (std::size_t i = first * out_plane; i < last * out_plane; ++i)
    {
        dx[argmax[i]] += dy[i];
    }
}

/// The sum of `p[0, count)` as a vector whose lanes add up to it (two accumulators, a partial
/// load for the tail).
template <class T>
xsimd::batch<T> partial_sums(const T* p, std::size_t count)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    batch acc0(T(0)), acc1(T(0));
    std::size_t c = 0;
    for (; c + 2 * S <= count; c += 2 * S)
    {
        acc0 += batch::load_unaligned(p + c);
        acc1 += batch::load_unaligned(p + c + S);
    }
    if (c + S <= count)
    {
        acc0 += batch::load_unaligned(p + c);
        c += S;
    }
    if (c < count)
    {
        acc1 += load_partial(p + c, count - c);
    }
    return acc0 + acc1;
}

/// Sum of `p[0, count)`, vectorised.
template <class T>
T sum_contiguous(const T* p, std::size_t count)
{
    return sum_lanes(partial_sums(p, count));
}

/// Means of planes [first, last) of `hw` elements each into `y[first, last)`: a vector of
/// partial sums per plane, then the lanes of a vector's worth of planes added together, one
/// independent chain per plane (a plane at a time, the lane sums would be one chain of
/// dependent adds after another: the cost of a small plane).
template <class T>
void plane_means(std::size_t first, std::size_t last, std::size_t hw, const T* in, T* y)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const T scale = T(1) / static_cast<T>(hw);
    alignas(64) T lanes[S * S];
    std::size_t plane = first;
    for (; plane + S <= last; plane += S)
    {
        for (std::size_t k = 0; k < S; ++k)
        {
            partial_sums(in + (plane + k) * hw, hw).store_aligned(lanes + k * S);
        }
        T sums[S] = {};
        for (std::size_t l = 0; l < S; ++l)
        {
            for (std::size_t k = 0; k < S; ++k)
            {
                sums[k] += lanes[k * S + l];
            }
        }
        for (std::size_t k = 0; k < S; ++k)
        {
            y[plane + k] = sums[k] * scale;
        }
    }
    for (; plane < last; ++plane)
    {
        y[plane] = sum_contiguous(in + plane * hw, hw) * scale;
    }
}

/// Whether average pooling sums a window's columns one window at a time (wide windows) rather
/// than at every column with shifted vectors, `kw` vectors per column (narrow ones).
inline bool sums_window_by_window(const pool_geometry& g, std::size_t vector_size) noexcept
{
    return g.kw > vector_size;
}

/// Length of one scratch row of average pooling: the padded row, a window's overhang on either
/// side and a vector past the end, in whole vectors, so shifted loads stay inside it.
template <class T>
std::size_t avg_pool_row(const pool_geometry& g) noexcept
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    return (g.w + 2 * g.pw + 2 * g.kw + 2 * S) / S * S;
}

/// Elements of scratch one thread of `avg_pool_planes` or `avg_pool_input_grad_planes` uses.
template <class T>
std::size_t avg_pool_scratch(const pool_geometry& g) noexcept
{
    return 2 * avg_pool_row<T>(g);
}

/// Whether the window is the whole plane (global average pooling): then a window is one
/// contiguous run of the input and the kernels skip the row passes.
inline bool window_is_plane(const pool_geometry& g) noexcept
{
    return g.kh == g.h && g.kw == g.w && g.ph == 0 && g.pw == 0;
}

/// dst[0, count) += src[0, count), or = with `first`: the rows of a window summed in place.
template <class T>
void add_row(const T* src, std::size_t count, T* dst, bool first)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    std::size_t c = 0;
    if (first)
    {
        for (; c + S <= count; c += S)
        {
            batch::load_unaligned(src + c).store_unaligned(dst + c);
        }
        for (; c < count; ++c)
        {
            dst[c] = src[c];
        }
        return;
    }
    for (; c + S <= count; c += S)
    {
        (batch::load_unaligned(dst + c) + batch::load_unaligned(src + c)).store_unaligned(dst + c);
    }
    for (; c < count; ++c)
    {
        dst[c] += src[c];
    }
}

/// Average of every window of planes [first, last), PyTorch's `avg_pool2d` with
/// `count_include_pad=True`: padded positions count as zeros, so every window (floor mode)
/// divides by KH * KW. Separable: for each output row, the sum of its input rows (vectors along
/// the row), then of each window's columns in that sum. `in` and `y` address all the planes;
/// `scratch` holds `avg_pool_scratch(g)` elements (none, null, when the window is the plane).
template <class T>
void avg_pool_planes(const pool_geometry& g, std::size_t first, std::size_t last, const T* in, T* y, T* scratch)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const T scale = T(1) / static_cast<T>(g.kh * g.kw);
    if (window_is_plane(g))
    {
        plane_means(first, last, g.h * g.w, in, y);
        return;
    }
    y += first * g.oh * g.ow;
    // rows: the padded row sum, zero in the padding (written once, never overwritten);
    // windows: the sum of the window starting at each padded column.
    const std::size_t row = avg_pool_row<T>(g);
    T* rows = scratch;
    T* windows = scratch + row;
    std::fill(rows, rows + row, T(0));
    const bool by_window = sums_window_by_window(g, S);
    const std::size_t starts = (g.ow - 1) * g.sw + 1; // padded columns where a window starts
    for (std::size_t plane = first; plane < last; ++plane)
    {
        const T* base = in + plane * g.h * g.w;
        for (std::size_t i = 0; i < g.oh; ++i)
        {
            const window_span span = window_of(i, g.kh, g.sh, g.ph, g.h);
            for (std::size_t r = span.begin; r < span.end; ++r)
            {
                add_row(base + r * g.w, g.w, rows + g.pw, r == span.begin);
            }
            if (by_window)
            {
                for (std::size_t j = 0; j < g.ow; ++j)
                {
                    *y++ = sum_contiguous(rows + j * g.sw, g.kw) * scale;
                }
                continue;
            }
            for (std::size_t c = 0; c < starts; c += S)
            {
                batch sum = batch::load_unaligned(rows + c);
                for (std::size_t b = 1; b < g.kw; ++b)
                {
                    sum += batch::load_unaligned(rows + c + b);
                }
                sum.store_aligned(windows + c);
            }
            for (std::size_t j = 0; j < g.ow; ++j)
            {
                *y++ = windows[j * g.sw] * scale;
            }
        }
    }
}

/// dX of average pooling for planes [first, last): each output gradient, divided by KH * KW,
/// added to every input its window covers (padding takes its share and drops it). The
/// transpose of `avg_pool_planes`, separable the same way: for each output row, the sum at
/// every input column of the scaled gradients of the windows covering it, then added to each
/// input row of the window. `scratch` holds `avg_pool_scratch(g)` elements (none, null, when
/// the window is the plane).
template <class T>
void avg_pool_input_grad_planes(const pool_geometry& g, std::size_t first, std::size_t last, const T* dy, T* dx,
                                T* scratch)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const T scale = T(1) / static_cast<T>(g.kh * g.kw);
    const std::size_t in_plane = g.h * g.w;
    dy += first * g.oh * g.ow;
    if (window_is_plane(g))
    {
        for (std::size_t plane = first; plane < last; ++plane)
        {
            std::fill(dx + plane * in_plane, dx + (plane + 1) * in_plane, *dy++ * scale);
        }
        return;
    }
    std::fill(dx + first * in_plane, dx + last * in_plane, T(0));
    // starts: the scaled gradient at the padded column where its window starts, after kw - 1
    // zeros so that shifted loads reach back a whole window; zero between window starts (the
    // positions written are the same in every row). columns: what each input column receives.
    const std::size_t row = avg_pool_row<T>(g);
    const std::size_t lead = g.kw - 1;
    T* starts = scratch;
    T* columns = scratch + row;
    std::fill(starts, starts + row, T(0));
    const bool by_window = sums_window_by_window(g, S);
    for (std::size_t plane = first; plane < last; ++plane)
    {
        T* base = dx + plane * in_plane;
        for (std::size_t i = 0; i < g.oh; ++i)
        {
            if (by_window)
            {
                std::fill(columns, columns + g.w, T(0));
                for (std::size_t j = 0; j < g.ow; ++j)
                {
                    const window_span cols = window_of(j, g.kw, g.sw, g.pw, g.w);
                    const T share = *dy++ * scale;
                    const batch d(share);
                    std::size_t c = cols.begin;
                    for (; c + S <= cols.end; c += S)
                    {
                        (batch::load_unaligned(columns + c) + d).store_unaligned(columns + c);
                    }
                    for (; c < cols.end; ++c)
                    {
                        columns[c] += share;
                    }
                }
            }
            else
            {
                for (std::size_t j = 0; j < g.ow; ++j)
                {
                    starts[lead + j * g.sw] = *dy++ * scale;
                }
                // Input column c is padded column c + pw, covered by the windows starting at
                // padded columns c + pw - kw + 1 to c + pw.
                const T* at = starts + lead + g.pw;
                for (std::size_t c = 0; c < g.w; c += S)
                {
                    batch sum = batch::load_unaligned(at + c);
                    for (std::size_t b = 1; b < g.kw; ++b)
                    {
                        sum += batch::load_unaligned(at + c - b);
                    }
                    sum.store_aligned(columns + c);
                }
            }
            const window_span span = window_of(i, g.kh, g.sh, g.ph, g.h);
            for (std::size_t r = span.begin; r < span.end; ++r)
            {
                add_row(columns, g.w, base + r * g.w, false);
            }
        }
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_POOLING_HPP
