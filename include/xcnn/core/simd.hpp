/// @file
/// Small vector helpers the kernels share, on top of xsimd: a lane sum, a partial load that
/// reads nothing past its end, and a register barrier.
#ifndef XCNN_CORE_SIMD_HPP
#define XCNN_CORE_SIMD_HPP

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// The sum of a vector's lanes, added in lane order. Through memory rather than xsimd::hadd,
/// which trips a false -Wmaybe-uninitialized in GCC 12's AVX-512 intrinsics for double.
template <class T, class A>
T sum_lanes(const xsimd::batch<T, A>& v)
{
    constexpr std::size_t S = xsimd::batch<T, A>::size;
    alignas(64) T lanes[S];
    v.store_aligned(lanes);
    T sum = 0;
    for (std::size_t l = 0; l < S; ++l)
    {
        sum += lanes[l];
    }
    return sum;
}

/// Stops GCC from folding a reused load into every FMA that reads it: an unaligned vector load
/// crosses a cache line and costs two load slots each time it is repeated.
template <class B>
inline void keep_in_register(B& value) noexcept
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __asm__("" : "+v"(value.data));
#else
    (void)value;
#endif
}

/// The first `count` (< the vector size) elements at `p` in a vector, zeros in the other lanes;
/// nothing past them is read (a masked load with AVX-512, a copy elsewhere).
template <class T>
xsimd::batch<T> load_partial(const T* p, std::size_t count)
{
    using batch = xsimd::batch<T>;
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        return batch(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), p));
    }
    else if constexpr (std::is_same<T, double>::value)
    {
        return batch(_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << count) - 1u), p));
    }
    else
#endif
    {
        alignas(64) T part[batch::size] = {};
        std::copy(p, p + count, part);
        return batch::load_aligned(part);
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_SIMD_HPP
