/// @file
/// Element-wise kernels for the short rows of small images: copies, with a ReLU or a ReLU's
/// gradient mask fused in, that overlap their last vector instead of running a scalar tail.
#ifndef XCNN_CORE_ELEMENTWISE_HPP
#define XCNN_CORE_ELEMENTWISE_HPP

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "simd.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Runs an element-wise operation over [0, count), for the short rows of small images (28, 10
/// pixels): `vector(c)` on whole vectors from c, and for a partial last vector once more on the
/// vector that ends at `count`, overlapping the one before instead of a scalar tail. That is
/// only right for operations whose result is the same when computed twice, even in place
/// (copies, ReLU, masking). Below one vector, `scalar(c)` runs element by element, or with
/// `Masked` and AVX-512, `masked(lanes)` once on the first `count` lanes: a masked store, which
/// is faster than the elements (a row of 7 or 10 pixels) but cannot pass its data to a load
/// that follows soon, which then waits for it to reach the cache: for rows nothing reads back
/// at once.
template <class T, bool Masked, class Vector, class Partial, class Scalar>
inline void for_short_run(std::size_t count, Vector&& vector, Partial&& masked, Scalar&& scalar)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    if (count < S)
    {
#if XSIMD_WITH_AVX512F
        if constexpr (Masked && (std::is_same<T, float>::value || std::is_same<T, double>::value))
        {
            if (count > 0)
            {
                masked(first_lanes(count));
            }
            return;
        }
#endif
        (void)masked;
        for (std::size_t c = 0; c < count; ++c)
        {
            scalar(c);
        }
        return;
    }
    std::size_t c = 0;
    for (; c + S <= count; c += S)
    {
        vector(c);
    }
    if (c < count)
    {
        vector(count - S);
    }
}

/// dst[0, count) = 0, where a memset call costs more than the stores.
template <class T>
inline void fill_zero_short(T* dst, std::size_t count)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    std::size_t c = 0;
    for (; c + S <= count; c += S)
    {
        batch(T(0)).store_unaligned(dst + c);
    }
    for (; c < count; ++c)
    {
        dst[c] = T(0);
    }
}

/// dst[0, count) = src[0, count), where a memcpy call costs more than the copy; below a vector
/// with masked accesses when `Masked` (see `for_short_run`).
template <bool Masked = false, class T>
inline void copy_short(const T* src, std::size_t count, T* dst)
{
    using batch = xsimd::batch<T>;
    for_short_run<T, Masked>(
        count, [&](std::size_t c) { batch::load_unaligned(src + c).store_unaligned(dst + c); },
        [&](std::uint32_t lanes) { store_masked(dst, 0, load_masked(src, 0, lanes), lanes); },
        [&](std::size_t c) { dst[c] = src[c]; });
}

/// dst[c] = mask[c] > 0 ? src[c] : 0 for c < count: a gradient through a ReLU whose output is
/// `mask` (a NaN output passes no gradient, as in `ReLU::backward`), fused into a copy.
template <bool Masked = false, class T>
inline void copy_short_masked(const T* src, const T* mask, std::size_t count, T* dst)
{
    using batch = xsimd::batch<T>;
    for_short_run<T, Masked>(
        count,
        [&](std::size_t c)
        {
            const batch m = batch::load_unaligned(mask + c);
            xsimd::select(m > batch(T(0)), batch::load_unaligned(src + c), batch(T(0))).store_unaligned(dst + c);
        },
        [&](std::uint32_t lanes)
        {
            const batch m = load_masked(mask, 0, lanes);
            store_masked(dst, 0, xsimd::select(m > batch(T(0)), load_masked(src, 0, lanes), batch(T(0))), lanes);
        },
        [&](std::size_t c) { dst[c] = mask[c] > T(0) ? src[c] : T(0); });
}

/// dst[c] = ReLU(src[c]) = (src[c] < 0 ? 0 : src[c]) for c < count (a NaN passes, as in `ReLU`),
/// fused into a copy.
template <bool Masked = false, class T>
inline void copy_short_relu(const T* src, std::size_t count, T* dst)
{
    using batch = xsimd::batch<T>;
    for_short_run<T, Masked>(
        count,
        [&](std::size_t c)
        {
            const batch v = batch::load_unaligned(src + c);
            xsimd::select(v < batch(T(0)), batch(T(0)), v).store_unaligned(dst + c);
        },
        [&](std::uint32_t lanes)
        {
            const batch v = load_masked(src, 0, lanes);
            store_masked(dst, 0, xsimd::select(v < batch(T(0)), batch(T(0)), v), lanes);
        },
        [&](std::size_t c) { dst[c] = src[c] < T(0) ? T(0) : src[c]; });
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_ELEMENTWISE_HPP
