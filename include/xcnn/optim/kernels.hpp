/// @file
/// The loop every optimizer's update runs: one pass over a parameter's elements in vectors,
/// the last partial vector computed by the same vector code (so an element's result does not
/// depend on where a vector or a thread's share starts), split between threads for large
/// tensors.
#ifndef XCNN_OPTIM_KERNELS_HPP
#define XCNN_OPTIM_KERNELS_HPP

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "../core/simd.hpp"
#include "../core/threading.hpp"

namespace xcnn
{
namespace detail
{

/// The `count` (<= the vector size) elements at `p` in a vector; zeros in the other lanes.
template <class T>
XCNN_ALWAYS_INLINE xsimd::batch<T> load_n(const T* p, std::size_t count)
{
    return count == xsimd::batch<T>::size ? xsimd::batch<T>::load_unaligned(p) : load_partial(p, count);
}

/// Stores the first `count` (<= the vector size) lanes of `v` at `p`, nothing past them.
template <class T>
XCNN_ALWAYS_INLINE void store_n(T* p, std::size_t count, const xsimd::batch<T>& v)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    if (count == S)
    {
        v.store_unaligned(p);
        return;
    }
    alignas(64) T lanes[S];
    v.store_aligned(lanes);
    std::copy(lanes, lanes + count, p);
}

/// The square roots of the lanes of `v`. With AVX-512, through the zero-masked instruction:
/// GCC 12's plain `_mm512_sqrt_pd` reads an "undefined" register that -Wuninitialized flags.
template <class T>
XCNN_ALWAYS_INLINE xsimd::batch<T> sqrt_lanes(const xsimd::batch<T>& v)
{
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        return xsimd::batch<T>(_mm512_maskz_sqrt_ps(static_cast<__mmask16>(0xFFFF), v));
    }
    else if constexpr (std::is_same<T, double>::value)
    {
        return xsimd::batch<T>(_mm512_maskz_sqrt_pd(static_cast<__mmask8>(0xFF), v));
    }
    else
#endif
    {
        return xsimd::sqrt(v);
    }
}

/// Below this many elements an update runs on the calling thread: a wake-up of the pool costs
/// more than the second thread saves on a memory-bound pass.
inline constexpr std::size_t parallel_update_grain = std::size_t(1) << 16;

/// Calls `body(j, count)` for the vectors of [0, size): `count` is the vector size except for a
/// last partial vector; `body` loads and stores with `load_n` / `store_n`. Tensors of at least
/// two `parallel_update_grain`s are split between the threads of core/threading.hpp.
template <class T, class Body>
void update_elementwise(std::size_t size, const Body& body)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    auto run = [&](std::size_t begin, std::size_t end, std::size_t)
    {
        std::size_t j = begin;
        for (; j + S <= end; j += S)
        {
            body(j, S);
        }
        if (j < end)
        {
            body(j, end - j);
        }
    };
    if (size < 2 * parallel_update_grain)
    {
        run(0, size, 0);
        return;
    }
    parallel_for(size, parallel_update_grain, run);
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_OPTIM_KERNELS_HPP
