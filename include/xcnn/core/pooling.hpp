/// @file
/// Pooling kernels over the planes of NCHW tensors: the window geometry, max pooling (any window,
/// and a vectorised 2 x 2 stride-2 form) and the scatter of its gradient. Layers (MaxPool2D) own
/// the buffers and the threading; these functions read and write raw planes.
#ifndef XCNN_CORE_POOLING_HPP
#define XCNN_CORE_POOLING_HPP

#include <algorithm>
#include <cstddef>

#include "padding.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Planes, their size, the output size, the kernel and the stride of a max pooling.
struct pool_geometry
{
    std::size_t planes, h, w, oh, ow, kh, kw, sh, sw;
};

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

/// Max of every window of planes [first, last), and (if `argmax` is not null) the flat input
/// index it came from, for any kernel and stride. Ties keep the first maximum in row-major
/// window order. `in`, `y` and `argmax` address all the planes.
template <class T>
void max_pool_planes(const pool_geometry& g, std::size_t first, std::size_t last, const T* in, T* y,
                     std::size_t* argmax)
{
    const std::size_t kh = g.kh, kw = g.kw;
    y += first * g.oh * g.ow;
    argmax = argmax != nullptr ? argmax + first * g.oh * g.ow : nullptr;
    for (std::size_t plane = first; plane < last; ++plane)
    {
        const std::size_t base = plane * g.h * g.w;
        for (std::size_t i = 0; i < g.oh; ++i)
        {
            for (std::size_t j = 0; j < g.ow; ++j)
            {
                const std::size_t start = base + i * g.sh * g.w + j * g.sw;
                T best = in[start];
                std::size_t where = start;
                for (std::size_t a = 0; a < kh; ++a)
                {
                    for (std::size_t b = 0; b < kw; ++b)
                    {
                        const std::size_t at = start + a * g.w + b;
                        const T v = in[at];
                        if (takes_over(v, best))
                        {
                            best = v;
                            where = at;
                        }
                    }
                }
                *y++ = best;
                if (argmax != nullptr)
                {
                    *argmax++ = where;
                }
            }
        }
    }
}

/// Elements of scratch one thread of `max_pool_planes_2x2` uses: four rows of whole vectors.
template <class T>
std::size_t max_pool_2x2_scratch(const pool_geometry& g) noexcept
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    return 4 * ((g.w + 1 + S - 1) / S * S + S);
}

/// `max_pool_planes` for the common 2 x 2 kernel with stride 2, vectorised: for each pair of
/// input rows, the max of horizontal neighbours (a shifted load), then of the two rows, at every
/// column; the outputs are the even columns. The selects replace data-dependent branches, which
/// mispredict half the time on real activations. Rows are copied into `scratch` (zero-padded to
/// whole vectors) first, so the shifted loads never leave the input. Same results, ties and
/// NaNs included, as `max_pool_planes`. `scratch` holds `max_pool_2x2_scratch(g)` elements,
/// 64-byte aligned.
template <class T>
void max_pool_planes_2x2(const pool_geometry& g, std::size_t first, std::size_t last, const T* in, T* y,
                         std::size_t* argmax, T* scratch)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t padded = max_pool_2x2_scratch<T>(g) / 4;
    T* row0 = scratch;
    T* row1 = row0 + padded;
    T* best = row1 + padded;
    T* code = best + padded;
    std::fill(row0, row0 + 2 * padded, T(0));
    const batch one(T(1)), zero(T(0)), below(static_cast<T>(g.w));
    y += first * g.oh * g.ow;
    argmax = argmax != nullptr ? argmax + first * g.oh * g.ow : nullptr;
    for (std::size_t plane = first; plane < last; ++plane)
    {
        const T* base = in + plane * g.h * g.w;
        for (std::size_t i = 0; i < g.oh; ++i)
        {
            const T* top = base + 2 * i * g.w;
            copy_short(top, g.w, row0);
            copy_short(top + g.w, g.w, row1);
            for (std::size_t c = 0; c + 1 < g.w; c += S)
            {
                const batch a0 = batch::load_aligned(row0 + c), b0 = batch::load_unaligned(row0 + c + 1);
                const batch a1 = batch::load_aligned(row1 + c), b1 = batch::load_unaligned(row1 + c + 1);
                const auto right0 = takes_over(b0, a0), right1 = takes_over(b1, a1);
                const batch h0 = xsimd::select(right0, b0, a0), h1 = xsimd::select(right1, b1, a1);
                const auto lower = takes_over(h1, h0);
                xsimd::select(lower, h1, h0).store_aligned(best + c);
                xsimd::select(lower, below + xsimd::select(right1, one, zero), xsimd::select(right0, one, zero))
                    .store_aligned(code + c);
            }
            const std::size_t first = plane * g.h * g.w + 2 * i * g.w;
            for (std::size_t j = 0; j < g.ow; ++j)
            {
                *y++ = best[2 * j];
                if (argmax != nullptr)
                {
                    *argmax++ = first + 2 * j + static_cast<std::size_t>(code[2 * j]);
                }
            }
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

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_POOLING_HPP
