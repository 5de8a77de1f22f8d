/// @file
/// Element-wise kernels for the short rows of small images: copies, with a ReLU or a ReLU's
/// gradient mask fused in, that overlap their last vector instead of running a scalar tail.
#ifndef XCNN_CORE_ELEMENTWISE_HPP
#define XCNN_CORE_ELEMENTWISE_HPP

#include <cstddef>

#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Runs an element-wise operation over [0, count), for the short rows of small images (28, 10
/// pixels): `vector(c)` on whole vectors from c, and for a partial last vector once more on the
/// vector that ends at `count`, overlapping the one before instead of a scalar tail. That is
/// only right for operations whose result is the same when computed twice, even in place
/// (copies, ReLU, masking). Below one vector, `scalar(c)` runs element by element.
template <class T, class Vector, class Scalar>
inline void for_short_run(std::size_t count, Vector&& vector, Scalar&& scalar)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    if (count < S)
    {
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

/// dst[0, count) = src[0, count), where a memcpy call costs more than the copy.
template <class T>
inline void copy_short(const T* src, std::size_t count, T* dst)
{
    using batch = xsimd::batch<T>;
    for_short_run<T>(
        count, [&](std::size_t c) { batch::load_unaligned(src + c).store_unaligned(dst + c); },
        [&](std::size_t c) { dst[c] = src[c]; });
}

/// dst[c] = mask[c] > 0 ? src[c] : 0 for c < count: a gradient through a ReLU whose output is
/// `mask` (a NaN output passes no gradient, as in `ReLU::backward`), fused into a copy.
template <class T>
inline void copy_short_masked(const T* src, const T* mask, std::size_t count, T* dst)
{
    using batch = xsimd::batch<T>;
    for_short_run<T>(
        count,
        [&](std::size_t c)
        {
            const batch m = batch::load_unaligned(mask + c);
            xsimd::select(m > batch(T(0)), batch::load_unaligned(src + c), batch(T(0))).store_unaligned(dst + c);
        },
        [&](std::size_t c) { dst[c] = mask[c] > T(0) ? src[c] : T(0); });
}

/// dst[c] = ReLU(src[c]) = (src[c] < 0 ? 0 : src[c]) for c < count (a NaN passes, as in `ReLU`),
/// fused into a copy.
template <class T>
inline void copy_short_relu(const T* src, std::size_t count, T* dst)
{
    using batch = xsimd::batch<T>;
    for_short_run<T>(
        count,
        [&](std::size_t c)
        {
            const batch v = batch::load_unaligned(src + c);
            xsimd::select(v < batch(T(0)), batch(T(0)), v).store_unaligned(dst + c);
        },
        [&](std::size_t c) { dst[c] = src[c] < T(0) ? T(0) : src[c]; });
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_ELEMENTWISE_HPP
