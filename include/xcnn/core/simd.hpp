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

/// base + offset, formed as an integer: for masked accesses whose first lanes lie before the
/// array (they are never touched), where pointer arithmetic out of the array would be undefined.
template <class T>
XCNN_ALWAYS_INLINE T* address_at(T* base, std::ptrdiff_t offset) noexcept
{
    return reinterpret_cast<T*>(reinterpret_cast<std::uintptr_t>(base) +
                                static_cast<std::uintptr_t>(offset * std::ptrdiff_t(sizeof(T))));
}

/// base[offset + l] in lane l of a vector for every lane l whose bit is set in `lanes`, zero in
/// the others; the other lanes' addresses are not read, and may lie outside `base`'s array (a
/// masked load with AVX-512, element copies elsewhere).
template <class T>
XCNN_ALWAYS_INLINE xsimd::batch<T> load_masked(const T* base, std::ptrdiff_t offset, std::uint32_t lanes)
{
    using batch = xsimd::batch<T>;
#if XSIMD_WITH_AVX512F
    const T* p = address_at(base, offset);
    if constexpr (std::is_same<T, float>::value)
    {
        return batch(_mm512_maskz_loadu_ps(static_cast<__mmask16>(lanes), p));
    }
    else if constexpr (std::is_same<T, double>::value)
    {
        return batch(_mm512_maskz_loadu_pd(static_cast<__mmask8>(lanes), p));
    }
    else
#endif
    {
        alignas(64) T part[batch::size] = {};
        for (std::size_t l = 0; l < batch::size; ++l)
        {
            if ((lanes >> l) & 1u)
            {
                part[l] = base[offset + static_cast<std::ptrdiff_t>(l)];
            }
        }
        return batch::load_aligned(part);
    }
}

/// Stores lane l of `v` at base[offset + l] for every lane whose bit is set in `lanes`; writes
/// nothing else, and the other lanes' addresses may lie outside `base`'s array.
template <class T, class A>
XCNN_ALWAYS_INLINE void store_masked(T* base, std::ptrdiff_t offset, const xsimd::batch<T, A>& v, std::uint32_t lanes)
{
#if XSIMD_WITH_AVX512F
    T* p = address_at(base, offset);
    if constexpr (std::is_same<T, float>::value)
    {
        _mm512_mask_storeu_ps(p, static_cast<__mmask16>(lanes), v);
        return;
    }
    else if constexpr (std::is_same<T, double>::value)
    {
        _mm512_mask_storeu_pd(p, static_cast<__mmask8>(lanes), v);
        return;
    }
#endif
    constexpr std::size_t S = xsimd::batch<T, A>::size;
    alignas(64) T part[S];
    v.store_aligned(part);
    for (std::size_t l = 0; l < S; ++l)
    {
        if ((lanes >> l) & 1u)
        {
            base[offset + static_cast<std::ptrdiff_t>(l)] = part[l];
        }
    }
}

/// Stores lane l of `v` at p[l] for every lane whose bit is set in `lanes`; writes nothing else.
template <class T, class A>
XCNN_ALWAYS_INLINE void store_masked(T* p, const xsimd::batch<T, A>& v, std::uint32_t lanes)
{
    store_masked(p, 0, v, lanes);
}

/// Stores the lanes of `v` whose bits are set in `lanes`, in lane order, at p[0, count) and
/// returns count; writes nothing else. With AVX-512 a compress within the register and a masked
/// store (the compressing store to memory is microcoded on AMD's cores).
template <class T, class A>
XCNN_ALWAYS_INLINE std::size_t compress_store(T* p, const xsimd::batch<T, A>& v, std::uint32_t lanes)
{
    const auto count = static_cast<std::size_t>(__builtin_popcount(lanes));
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        const auto mask = static_cast<__mmask16>(lanes);
        _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1u), _mm512_maskz_compress_ps(mask, v));
        return count;
    }
    else if constexpr (std::is_same<T, double>::value)
    {
        const auto mask = static_cast<__mmask8>(lanes);
        _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << count) - 1u), _mm512_maskz_compress_pd(mask, v));
        return count;
    }
#endif
    constexpr std::size_t S = xsimd::batch<T, A>::size;
    alignas(64) T part[S];
    v.store_aligned(part);
    std::size_t out = 0;
    for (std::size_t l = 0; l < S; ++l)
    {
        if ((lanes >> l) & 1u)
        {
            p[out++] = part[l];
        }
    }
    return count;
}

/// The mask of the first `count` (<= the vector size) lanes.
inline std::uint32_t first_lanes(std::size_t count) noexcept
{
    return count >= 32 ? ~std::uint32_t(0) : (std::uint32_t(1) << count) - 1u;
}

/// The first `count` (< the vector size) elements at `p` in a vector, zeros in the other lanes;
/// nothing past them is read.
template <class T>
xsimd::batch<T> load_partial(const T* p, std::size_t count)
{
    return load_masked(p, 0, first_lanes(count));
}

/// Lane j of `even` = src[2 j], of `odd` = src[2 j + 1], for j < pairs (at most a vector's
/// lanes), zeros in the lanes past them; nothing past src[2 pairs) is read. With AVX-512 two
/// masked loads and two permutes, in registers: a caller that computes on the two phases right
/// away does not read back what it just stored (masked stores do not forward to loads).
template <class T>
XCNN_ALWAYS_INLINE void load_pairs(const T* src, std::size_t pairs, xsimd::batch<T>& even, xsimd::batch<T>& odd)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
#if XSIMD_WITH_AVX512F
    const std::uint32_t low = first_lanes(std::min(S, 2 * pairs)),
                        high = first_lanes(2 * pairs > S ? 2 * pairs - S : 0);
    if constexpr (std::is_same<T, float>::value)
    {
        const __m512i even_index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i odd_index = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        const __m512 a = _mm512_maskz_loadu_ps(static_cast<__mmask16>(low), src);
        const __m512 b = _mm512_maskz_loadu_ps(static_cast<__mmask16>(high), address_at(src, std::ptrdiff_t(S)));
        even = _mm512_permutex2var_ps(a, even_index, b);
        odd = _mm512_permutex2var_ps(a, odd_index, b);
        return;
    }
    else if constexpr (std::is_same<T, double>::value)
    {
        const __m512i even_index = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
        const __m512i odd_index = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
        const __m512d a = _mm512_maskz_loadu_pd(static_cast<__mmask8>(low), src);
        const __m512d b = _mm512_maskz_loadu_pd(static_cast<__mmask8>(high), address_at(src, std::ptrdiff_t(S)));
        even = _mm512_permutex2var_pd(a, even_index, b);
        odd = _mm512_permutex2var_pd(a, odd_index, b);
        return;
    }
#endif
    alignas(64) T e[S] = {}, o[S] = {};
    for (std::size_t j = 0; j < pairs; ++j)
    {
        e[j] = src[2 * j];
        o[j] = src[2 * j + 1];
    }
    even = xsimd::batch<T>::load_aligned(e);
    odd = xsimd::batch<T>::load_aligned(o);
}

/// even[j] = src[2 j], odd[j] = src[2 j + 1] for j < pairs: the two stride-2 phases of a row.
/// A vector pair at a time (`load_pairs`) with AVX-512, where an element loop keeps the load
/// ports busy for one value at a time; the element loop elsewhere.
template <class T>
void deinterleave_pairs(const T* src, std::size_t pairs, T* even, T* odd)
{
    std::size_t j = 0;
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value)
    {
        constexpr std::size_t S = xsimd::batch<T>::size;
        for (; j < pairs; j += S)
        {
            const std::size_t count = std::min(S, pairs - j);
            xsimd::batch<T> e, o;
            load_pairs(src + 2 * j, count, e, o);
            store_masked(even + j, e, first_lanes(count));
            store_masked(odd + j, o, first_lanes(count));
        }
    }
#endif
    for (; j < pairs; ++j)
    {
        even[j] = src[2 * j];
        odd[j] = src[2 * j + 1];
    }
}

/// dst[2 j] = even[j], dst[2 j + 1] = odd[j] for j < pairs: `deinterleave_pairs` undone.
template <class T>
void interleave_pairs(const T* even, const T* odd, std::size_t pairs, T* dst)
{
    std::size_t j = 0;
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        const __m512i low_index = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const __m512i high_index = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        for (; j < pairs; j += 16)
        {
            const std::size_t count = std::min<std::size_t>(16, pairs - j);
            const auto mask = static_cast<__mmask16>(first_lanes(count));
            const __m512 a = _mm512_maskz_loadu_ps(mask, even + j);
            const __m512 b = _mm512_maskz_loadu_ps(mask, odd + j);
            const auto low = static_cast<__mmask16>(first_lanes(std::min<std::size_t>(16, 2 * count)));
            const auto high = static_cast<__mmask16>(first_lanes(2 * count > 16 ? 2 * count - 16 : 0));
            _mm512_mask_storeu_ps(dst + 2 * j, low, _mm512_permutex2var_ps(a, low_index, b));
            _mm512_mask_storeu_ps(dst + 2 * j + 16, high, _mm512_permutex2var_ps(a, high_index, b));
        }
    }
#endif
    for (; j < pairs; ++j)
    {
        dst[2 * j] = even[j];
        dst[2 * j + 1] = odd[j];
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
