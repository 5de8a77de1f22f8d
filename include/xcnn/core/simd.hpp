/// @file
/// Small vector helpers the kernels share, on top of xsimd: a lane sum, a partial load that
/// reads nothing past its end, a gather, and a register barrier.
#ifndef XCNN_CORE_SIMD_HPP
#define XCNN_CORE_SIMD_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "xtensor_shim.hpp"

/// For helpers called inside a micro-kernel's loop: an out-of-line call there would make the
/// compiler save and restore every vector accumulator (they are all caller-saved) around it.
#if defined(__GNUC__)
#define XCNN_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define XCNN_ALWAYS_INLINE __forceinline
#else
#define XCNN_ALWAYS_INLINE inline
#endif

/// For a micro-kernel: compiled on its own, its accumulators get the whole register file.
/// Inlined into the blocking loops around it, GCC kept their indices in vector registers, which
/// measured slower (docs/performance.md); a call per tile costs nothing next to the thousands of
/// cycles a tile takes.
#if defined(__GNUC__)
#define XCNN_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define XCNN_NOINLINE __declspec(noinline)
#else
#define XCNN_NOINLINE
#endif

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

/// The index type of a gather of T's: 32-bit for float, 64-bit for double, as many lanes.
template <class T>
using gather_index = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;

/// p[index[0]], ..., p[index[S - 1]] (S the vector size; `index` 64-byte aligned) in a vector:
/// one gather instruction with AVX-512 or AVX2, a loop elsewhere. xsimd 8's own gather builds
/// its all-lanes mask in an out-of-line call that costs as much as the gather. The masked forms
/// start from zero rather than from an "undefined" register, which GCC 12 warns about.
template <class T>
XCNN_ALWAYS_INLINE xsimd::batch<T> gather(const T* p, const gather_index<T>* index)
{
    using batch = xsimd::batch<T>;
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        return batch(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), static_cast<__mmask16>(0xFFFF),
                                              _mm512_load_si512(index), p, 4));
    }
    else if constexpr (std::is_same<T, double>::value)
    {
        return batch(
            _mm512_mask_i64gather_pd(_mm512_setzero_pd(), static_cast<__mmask8>(0xFF), _mm512_load_si512(index), p, 8));
    }
    else
#elif XSIMD_WITH_AVX2
    if constexpr (std::is_same<T, float>::value)
    {
        const __m256 all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        return batch(_mm256_mask_i32gather_ps(_mm256_setzero_ps(), p,
                                              _mm256_load_si256(reinterpret_cast<const __m256i*>(index)), all, 4));
    }
    else if constexpr (std::is_same<T, double>::value)
    {
        const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
        return batch(_mm256_mask_i64gather_pd(_mm256_setzero_pd(), p,
                                              _mm256_load_si256(reinterpret_cast<const __m256i*>(index)), all, 8));
    }
    else
#endif
    {
        alignas(64) T lanes[batch::size];
        for (std::size_t i = 0; i < batch::size; ++i)
        {
            lanes[i] = p[index[i]];
        }
        return batch::load_aligned(lanes);
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_SIMD_HPP
