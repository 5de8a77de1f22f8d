/// @file
/// `C = A * B^T` for operands whose rows are both contiguous along the contracted axis, read in
/// place: every element of C is a dot product of two contiguous strips.
///
/// The packed GEMM (gemm.hpp) streams one operand along its rows and broadcasts the other; when
/// both operands are contiguous along K it must transpose one of them into its panels first,
/// which costs a copy of the whole operand for every call. Here the micro-kernel instead holds
/// an RI x RJ block of vector accumulators, loads RI rows of A and RJ rows of B one vector at a
/// time along K, and reduces the lanes once at the end. That is the shape of a dense layer's
/// forward pass (X (N x in) times W (out x in) transposed) and of a convolution's weight
/// gradient over the padded width (core/plane_correlation.hpp), where K is long and C is small.
#ifndef XCNN_CORE_GEMM_NT_HPP
#define XCNN_CORE_GEMM_NT_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemm.hpp"
#include "simd.hpp"
#include "threading.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Register blocking: RI rows of A times RJ rows of B of accumulators, plus the RJ strips of B
/// and one of A, fit the vector register file (32 with AVX-512, 16 otherwise).
template <class T>
struct gemm_nt_blocking
{
    static constexpr std::size_t ri = XSIMD_WITH_AVX512F ? 4 : 2;
    static constexpr std::size_t rj = XSIMD_WITH_AVX512F ? 6 : 5;
    /// Bytes of A and B one pass over a group of segments reads. A tile keeps its accumulators
    /// over a whole group and pays its lane sums and update of C once per group, which costs
    /// more than re-reading a group larger than L2 from L3 (docs/performance.md, "Measurements
    /// behind choices in the code").
    static constexpr std::size_t chunk_bytes = std::size_t(8) << 20;
};

/// The operands of `gemm_nt`. K is split into `segments` equal runs of `length` contiguous
/// elements (the images of a batch, for a convolution; one run for a dense layer): run s of row
/// i of A starts at `a + s * a_segment + i * a_row`, run s of row j of B at
/// `b + s * b_segment + b_rows[j]`.
template <class T>
struct gemm_nt_operands
{
    const T* a = nullptr;
    std::size_t a_row = 0;
    std::size_t a_segment = 0;
    const T* b = nullptr;
    const std::ptrdiff_t* b_rows = nullptr;
    std::size_t b_segment = 0;
    std::size_t length = 0;
    std::size_t segments = 1;
    /// C (m x n): element (i, j) at `c[i * c_row + j]`.
    T* c = nullptr;
    std::size_t c_row = 0;
    /// Optional, added to every element of column j (a dense layer's bias).
    const T* col_bias = nullptr;
    /// Optional room for `gemm_nt_group_sums` elements: with it, threads can run whole groups of
    /// segments (see `gemm_nt`).
    T* group_sums = nullptr;
};

/// Segments per group of `gemm_nt`: a tile keeps its accumulators over a whole group and adds the
/// group's sums into C, group after group. Groups of at most `chunk_bytes` of A and B, and at least
/// 4 groups when there are 4 segments or more, so that threads can share groups out. Fixed by the
/// shape alone, so the order of the sums does not depend on the thread count.
template <class T>
std::size_t gemm_nt_group(std::size_t m, std::size_t n, const gemm_nt_operands<T>& op) noexcept
{
    const std::size_t segment_bytes = std::max<std::size_t>(1, (m + n) * op.length * sizeof(T));
    const std::size_t by_size = std::max<std::size_t>(1, gemm_nt_blocking<T>::chunk_bytes / segment_bytes);
    return std::max<std::size_t>(1, std::min(by_size, (op.segments + 3) / 4));
}

/// Elements of `gemm_nt_operands::group_sums` for C (m x n): every group's sums but the first's.
template <class T>
std::size_t gemm_nt_group_sums(std::size_t m, std::size_t n, const gemm_nt_operands<T>& op) noexcept
{
    const std::size_t group = gemm_nt_group(m, n, op), groups = (op.segments + group - 1) / group;
    return groups > 1 ? (groups - 1) * m * n : 0;
}

/// Whether `C = A * B^T` with `m` rows of C runs faster as a packed GEMM (gemm.hpp), whose
/// packing transposes B once per block, than here: `gemm_nt` reads all of B again for every RI
/// rows of C, from beyond L2 for a convolution's dW, and its micro-kernel does 2.4 FMAs per
/// vector load against the packed kernel's 12 per load. On the convolution sweep the packed GEMM
/// won from 128 rows of C (output channels) and lost below 64 (docs/performance.md).
inline bool packed_gemm_beats_nt(std::size_t m) noexcept
{
    return m >= 128;
}

/// The offset tables of C (m x n, rows `c_row` apart) = A (m x k, rows `a_row` apart) times B
/// (n x k, rows `b_row` apart) transposed, as the packed GEMM (gemm.hpp) reads them: B's
/// transpose is only its tables swapped. Kept by the caller so that a steady shape allocates
/// nothing.
struct transposed_b_tables
{
    std::vector<std::ptrdiff_t> a_rows, a_cols, b_rows, b_cols, c_rows, c_cols;

    void prepare(std::size_t m, std::size_t n, std::size_t k, std::size_t a_row, std::size_t b_row, std::size_t c_row)
    {
        const auto linear = [](std::vector<std::ptrdiff_t>& table, std::size_t count, std::size_t step)
        {
            table.resize(count);
            for (std::size_t i = 0; i < count; ++i)
            {
                table[i] = static_cast<std::ptrdiff_t>(i * step);
            }
        };
        linear(a_rows, m, a_row);
        linear(a_cols, k, 1);
        linear(b_rows, k, 1);
        linear(b_cols, n, b_row);
        linear(c_rows, m, c_row);
        linear(c_cols, n, 1);
    }

    template <class T>
    offset_matrix<const T> a(const T* data) const noexcept
    {
        return {data, a_rows.data(), a_cols.data()};
    }
    template <class T>
    offset_matrix<const T> b(const T* data) const noexcept
    {
        return {data, b_rows.data(), b_cols.data()};
    }
    template <class T>
    offset_matrix<T> c(T* data) const noexcept
    {
        return {data, c_rows.data(), c_cols.data()};
    }
};

/// What `gemm_transposed_b` adds to C: nothing (`accumulate` false) or C itself.
template <class T>
gemm_epilogue<T> transposed_b_epilogue(bool accumulate) noexcept
{
    gemm_epilogue<T> epilogue;
    epilogue.beta = accumulate ? T(1) : T(0);
    return epilogue;
}

/// C (m x n, rows `c_row` apart) = A (m x k, rows `a_row` apart) times B (n x k, rows `b_row`
/// apart) transposed, plus C when `accumulate`: what `gemm_nt` computes, through the packed GEMM,
/// whose packing transposes B once per block (`packed_gemm_beats_nt` says when that wins).
template <class T>
void gemm_transposed_b(std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t a_row, const T* b,
                       std::size_t b_row, T* c, std::size_t c_row, bool accumulate, transposed_b_tables& tables,
                       gemm_workspace<T>& ws)
{
    tables.prepare(m, n, k, a_row, b_row, c_row);
    gemm<T>(m, n, k, tables.a(a), tables.b(b), tables.c(c), transposed_b_epilogue<T>(accumulate), ws);
}

/// The RI x RJ block of C at (i0, j0), summed over segments [s0, s1); `overwrite` for the first
/// group of segments (it also adds the column bias), accumulate for the others.
template <class T, std::size_t RI, std::size_t RJ>
void gemm_nt_tile(const gemm_nt_operands<T>& op, std::size_t i0, std::size_t j0, std::size_t s0, std::size_t s1,
                  bool overwrite)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    batch acc[RI][RJ];
#pragma GCC unroll 32
    for (std::size_t i = 0; i < RI; ++i)
    {
#pragma GCC unroll 32
        for (std::size_t j = 0; j < RJ; ++j)
        {
            acc[i][j] = batch(T(0));
        }
    }
    const std::size_t vector_end = op.length / S * S;
    for (std::size_t s = s0; s < s1; ++s)
    {
        const T* a = op.a + s * op.a_segment + i0 * op.a_row;
        const T* b[RJ];
#pragma GCC unroll 32
        for (std::size_t j = 0; j < RJ; ++j)
        {
            b[j] = op.b + s * op.b_segment + op.b_rows[j0 + j];
        }
        for (std::size_t k = 0; k < vector_end; k += S)
        {
            // Each strip of B is loaded once and kept in a register (shifted strips of a
            // convolution are unaligned); the rows of A are the ones read per use.
            batch bv[RJ];
#pragma GCC unroll 32
            for (std::size_t j = 0; j < RJ; ++j)
            {
                bv[j] = batch::load_unaligned(b[j] + k);
                keep_in_register(bv[j]);
            }
#pragma GCC unroll 32
            for (std::size_t i = 0; i < RI; ++i)
            {
                const batch av = batch::load_unaligned(a + i * op.a_row + k);
#pragma GCC unroll 32
                for (std::size_t j = 0; j < RJ; ++j)
                {
                    acc[i][j] = xsimd::fma(av, bv[j], acc[i][j]);
                }
            }
        }
        if (vector_end < op.length)
        {
            // The last partial vector: what lies past a run is never read, so neither garbage nor
            // the end of the buffer can leak in.
            const std::size_t rest = op.length - vector_end;
            batch bv[RJ];
            // Unrolled like the main loop: an accumulator indexed by a loop variable anywhere
            // would keep all of them on the stack, stored and reloaded around every segment.
#pragma GCC unroll 32
            for (std::size_t j = 0; j < RJ; ++j)
            {
                bv[j] = load_partial(b[j] + vector_end, rest);
            }
#pragma GCC unroll 32
            for (std::size_t i = 0; i < RI; ++i)
            {
                const batch av = load_partial(a + i * op.a_row + vector_end, rest);
#pragma GCC unroll 32
                for (std::size_t j = 0; j < RJ; ++j)
                {
                    acc[i][j] = xsimd::fma(av, bv[j], acc[i][j]);
                }
            }
        }
    }
#pragma GCC unroll 32
    for (std::size_t i = 0; i < RI; ++i)
    {
#pragma GCC unroll 32
        for (std::size_t j = 0; j < RJ; ++j)
        {
            const T sum = sum_lanes(acc[i][j]);
            T& out = op.c[(i0 + i) * op.c_row + j0 + j];
            if (overwrite)
            {
                out = op.col_bias != nullptr ? sum + op.col_bias[j0 + j] : sum;
            }
            else
            {
                out += sum;
            }
        }
    }
}

template <class T>
using gemm_nt_tile_fn = void (*)(const gemm_nt_operands<T>&, std::size_t, std::size_t, std::size_t, std::size_t, bool);

template <class T, std::size_t RI, std::size_t... RJ>
constexpr std::array<gemm_nt_tile_fn<T>, sizeof...(RJ)> gemm_nt_tiles_of_height(std::index_sequence<RJ...>)
{
    return {&gemm_nt_tile<T, RI, RJ + 1>...};
}

/// tiles[ri - 1][rj - 1] is the tile of ri x rj: the edges of C get exact tiles.
template <class T, std::size_t... RI>
constexpr auto gemm_nt_tile_table(std::index_sequence<RI...>)
{
    return std::array<std::array<gemm_nt_tile_fn<T>, gemm_nt_blocking<T>::rj>, sizeof...(RI)>{
        gemm_nt_tiles_of_height<T, RI + 1>(std::make_index_sequence<gemm_nt_blocking<T>::rj>{})...};
}

/// C (m x n) = A (m x K) * B (n x K)^T (+ column bias), K laid out as `op` describes. Threads
/// split the tiles of C; each tile is summed over the segments in a fixed order (in groups that
/// fit L2), so the result does not depend on the thread count.
template <class T>
void gemm_nt(std::size_t m, std::size_t n, const gemm_nt_operands<T>& op)
{
    using blocking = gemm_nt_blocking<T>;
    constexpr std::size_t RI = blocking::ri, RJ = blocking::rj;
    static constexpr auto tiles = gemm_nt_tile_table<T>(std::make_index_sequence<RI>{});
    if (m == 0 || n == 0)
    {
        return;
    }
    if (op.segments == 0 || op.length == 0)
    {
        for (std::size_t i = 0; i < m; ++i)
        {
            for (std::size_t j = 0; j < n; ++j)
            {
                op.c[i * op.c_row + j] = op.col_bias != nullptr ? op.col_bias[j] : T(0);
            }
        }
        return;
    }
    const std::size_t row_blocks = (m + RI - 1) / RI;
    const std::size_t col_blocks = (n + RJ - 1) / RJ;
    const std::size_t group = gemm_nt_group(m, n, op), groups = (op.segments + group - 1) / group;
    // Too little work to share: a thread costs a wake-up of a few microseconds.
    const bool parallel = double(m) * double(n) * double(op.length) * double(op.segments) >= 1e6;
    const std::size_t threads = get_num_threads();
    const auto run_tiles = [&](const gemm_nt_operands<T>& target, std::size_t s0, std::size_t s1, bool overwrite,
                               std::size_t begin, std::size_t end)
    {
        for (std::size_t u = begin; u < end; ++u)
        {
            const std::size_t i0 = u / col_blocks * RI, j0 = u % col_blocks * RJ;
            const std::size_t ri = std::min(RI, m - i0), rj = std::min(RJ, n - j0);
            tiles[ri - 1][rj - 1](target, i0, j0, s0, s1, overwrite);
        }
    };
    if (parallel && op.group_sums != nullptr && threads > 1 && groups >= threads && !thread_pool::in_job())
    {
        // Whole groups per thread: each thread reads only its own segments (split by tiles,
        // every thread would stream all of A and B). Group q > 0 writes its sums apart, added
        // into C in order afterwards: the same additions, in the same order, as one thread makes.
        parallel_for(groups, 1,
                     [&](std::size_t begin, std::size_t end, std::size_t)
                     {
                         for (std::size_t q = begin; q < end; ++q)
                         {
                             gemm_nt_operands<T> target = op;
                             if (q > 0)
                             {
                                 target.c = op.group_sums + (q - 1) * m * n;
                                 target.c_row = n;
                                 target.col_bias = nullptr;
                             }
                             run_tiles(target, q * group, std::min(op.segments, (q + 1) * group), true, 0,
                                       row_blocks * col_blocks);
                         }
                     });
        parallel_for_items(m, n * groups,
                           [&](std::size_t begin, std::size_t end, std::size_t)
                           {
                               for (std::size_t q = 1; q < groups; ++q)
                               {
                                   const T* sums = op.group_sums + (q - 1) * m * n;
                                   for (std::size_t i = begin; i < end; ++i)
                                   {
                                       for (std::size_t j = 0; j < n; ++j)
                                       {
                                           op.c[i * op.c_row + j] += sums[i * n + j];
                                       }
                                   }
                               }
                           });
        return;
    }
    parallel_for(row_blocks * col_blocks, parallel ? 1 : row_blocks * col_blocks,
                 [&](std::size_t begin, std::size_t end, std::size_t)
                 {
                     for (std::size_t s0 = 0; s0 < op.segments; s0 += group)
                     {
                         run_tiles(op, s0, std::min(op.segments, s0 + group), s0 == 0, begin, end);
                     }
                 });
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_GEMM_NT_HPP
