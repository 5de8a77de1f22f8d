/// @file
/// The matrix-multiply kernel every contraction in xcnn runs on.
///
/// `C = alpha * A * B + beta * C (+ bias)` where each matrix is addressed through *offset
/// tables*: element (i, j) of a matrix lives at `data[row_offset[i] + col_offset[j]]`. A plain
/// row-major matrix has `row_offset[i] = i * ld` and `col_offset[j] = j`; a strided window view
/// flattened to a matrix (rows = free axes, columns = contracted axes) has tables built from
/// its multi-dimensional strides. That is how `tensordot` contracts a window view without ever
/// copying it to an im2col buffer: the only copy is the packing into the kernel's panels,
/// which every fast GEMM makes anyway.
///
/// The kernel follows the GotoBLAS/BLIS scheme: B is packed into KC x NR panels, A into
/// MR x KC panels, and an MR x NR register-blocked micro-kernel written with xsimd runs
/// over them, so it vectorises for whatever architecture xsimd is compiled for.
#ifndef XCNN_CORE_GEMM_HPP
#define XCNN_CORE_GEMM_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "error.hpp"
#include "simd.hpp"
#include "threading.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{

/// A matrix addressed through offset tables: element (i, j) is `data[row[i] + col[j]]`.
/// The tables must outlive the call that reads them.
template <class T>
struct offset_matrix
{
    /// Base pointer the offsets are added to.
    T* data = nullptr;
    /// Offset of each row (M or K entries), in elements.
    const std::ptrdiff_t* row = nullptr;
    /// Offset of each column (K or N entries), in elements.
    const std::ptrdiff_t* col = nullptr;
};

/// What the GEMM does with the product before it lands in C.
template <class T>
struct gemm_epilogue
{
    /// Scale of the product: C = alpha * A * B + beta * C.
    T alpha = T(1);
    /// 0 means C is write-only: its old contents (even NaN) are never read.
    T beta = T(0);
    /// Optional bias added to every element of row i (length M), e.g. a conv bias per channel.
    const T* row_bias = nullptr;
    /// Optional bias added to every element of column j (length N), e.g. a dense-layer bias.
    const T* col_bias = nullptr;
};

/// Packing buffers of the GEMM, one set per thread. Reusing one workspace across calls avoids
/// re-allocating (and page-faulting) the panels on every call: the buffers only ever grow, so
/// once a workspace has served the largest shape at a thread count, later calls allocate nothing.
template <class T>
struct gemm_workspace
{
    /// The packed panels of one thread.
    struct buffers
    {
        /// MR x KC panels of A.
        std::vector<T, xsimd::aligned_allocator<T, 64>> packed_a;
        /// KC x NR panels of B.
        std::vector<T, xsimd::aligned_allocator<T, 64>> packed_b;
        /// Working memory of kernels built on the GEMM, e.g. the columns that
        /// `correlate_planes_input_grad` scatters into an image's gradient.
        std::vector<T, xsimd::aligned_allocator<T, 64>> scratch;
    };
    /// One set of buffers per thread, grown on demand.
    std::vector<buffers> threads;

    /// Makes sure there are buffers for `count` threads (never shrinks).
    void reserve_threads(std::size_t count)
    {
        if (threads.size() < count)
        {
            threads.resize(count);
        }
    }
};

namespace detail
{

/// Register and cache blocking for scalar type T on the architecture xsimd compiles for.
template <class T>
struct gemm_blocking
{
    using batch = xsimd::batch<T>;
    static constexpr std::size_t simd = batch::size;
    /// Columns of the micro-tile: two vector registers wide.
    static constexpr std::size_t nr = 2 * simd;
    /// Rows of the micro-tile: as many as leave 2 * mr accumulators plus 3 operands in the
    /// register file (32 vector registers with AVX-512, 16 otherwise).
    static constexpr std::size_t mr = XSIMD_WITH_AVX512F ? 12 : 6;
    static constexpr std::size_t kc = 256;
    /// K block when every block's rows of B lie close together, so that its panels are read in
    /// place (a convolution's window view): no packed block has to fit in L2 then, and one
    /// block for K = 288 rather than two saves C a round trip (docs/performance.md).
    static constexpr std::size_t kc_in_place = 384;
    /// The longest K block either way.
    static constexpr std::size_t kc_capacity = kc_in_place > kc ? kc_in_place : kc;
    static constexpr std::size_t mc = mr * 10;
    static constexpr std::size_t nc = nr * 16;
};

/// True if offsets[0, count) are consecutive: offsets[i] == offsets[0] + i. Without an early
/// exit the compiler vectorises the comparison.
inline bool offsets_contiguous(const std::ptrdiff_t* offsets, std::size_t count) noexcept
{
    std::ptrdiff_t mismatch = 0;
    for (std::size_t i = 1; i < count; ++i)
    {
        mismatch |= offsets[i] - (offsets[0] + static_cast<std::ptrdiff_t>(i));
    }
    return mismatch == 0;
}

/// Packs rows [i0, i0 + mc) x columns [k0, k0 + kc) of A into panels of `tile_rows` (<= MR)
/// rows laid out k-major with a stride of MR, zero-filling the rows past the edge so the
/// micro-kernel never branches.
template <class T, std::size_t MR>
void pack_a(const offset_matrix<const T>& a, std::size_t i0, std::size_t mc, std::size_t k0, std::size_t kc,
            std::size_t tile_rows, T* dst)
{
    const std::ptrdiff_t* col = a.col + k0;
    const bool contiguous = offsets_contiguous(col, kc);
    for (std::size_t p = 0; p < mc; p += tile_rows)
    {
        const std::size_t rows = std::min(tile_rows, mc - p);
        const T* src[MR];
        for (std::size_t r = 0; r < rows; ++r)
        {
            src[r] = a.data + a.row[i0 + p + r] + col[0];
        }
        // Writing the panel in order, one k (MR values) at a time, with a read stream per row:
        // a row at a time would store every element MR apart. The rows are read a vector at a
        // time into a small buffer first: a row-major A whose rows are a power of two apart
        // puts all MR streams in one cache set, and element-wise reads would evict each other.
        std::size_t k = 0;
        if (contiguous)
        {
            using batch = xsimd::batch<T>;
            constexpr std::size_t S = batch::size;
            alignas(64) T chunk[MR][S];
            for (; k + S <= kc; k += S)
            {
                for (std::size_t r = 0; r < rows; ++r)
                {
                    __builtin_prefetch(src[r] + k + 4 * S, 0, 2);
                    batch::load_unaligned(src[r] + k).store_aligned(chunk[r]);
                }
                T* out = dst + k * MR;
                for (std::size_t t = 0; t < S; ++t)
                {
                    for (std::size_t r = 0; r < rows; ++r)
                    {
                        out[t * MR + r] = chunk[r][t];
                    }
                    for (std::size_t r = rows; r < MR; ++r)
                    {
                        out[t * MR + r] = T(0);
                    }
                }
            }
        }
        for (; k < kc; ++k)
        {
            const std::ptrdiff_t offset = contiguous ? static_cast<std::ptrdiff_t>(k) : col[k] - col[0];
            T* out = dst + k * MR;
            for (std::size_t r = 0; r < rows; ++r)
            {
                out[r] = src[r][offset];
            }
            for (std::size_t r = rows; r < MR; ++r)
            {
                out[r] = T(0);
            }
        }
        dst += MR * kc;
    }
}

/// Whether rows [k0, k0 + kc) of B lie close enough together to read a panel in place: while
/// they do (a window view: neighbouring taps and channels of one image region, likely in cache)
/// or are few, panels are read where they are. Many rows far apart, like those of a large
/// row-major matrix, put every k on another page: those panels are packed, and prefetched.
template <class T>
bool rows_close_together(const offset_matrix<const T>& b, std::size_t k0, std::size_t kc)
{
    std::ptrdiff_t lowest = b.row[k0], highest = b.row[k0];
    for (std::size_t k = 1; k < kc; ++k)
    {
        lowest = std::min(lowest, b.row[k0 + k]);
        highest = std::max(highest, b.row[k0 + k]);
    }
    // A short block (a dense layer's batch of 64 as K) stays within the TLB's reach wherever
    // its rows lie.
    return static_cast<std::size_t>(highest - lowest) * sizeof(T) <= 256 * 1024 || kc <= 64;
}

#if XSIMD_WITH_AVX512F
/// `gather_panel` for float where each vector of columns lies in a few windows of 32 floats of a
/// row of B (a stride of 2 puts 8 to 16 columns of an image row in one): per window two masked
/// loads and a two-source permute, whose indices are the same on every row of B, in place of a
/// gather, which the cores load one element at a time. Returns false, packing nothing, when a
/// vector's columns need more than four windows.
template <std::size_t NR>
bool permute_panel(const offset_matrix<const float>& b, std::size_t k0, std::size_t kc, const std::ptrdiff_t* col,
                   float* panel)
{
    constexpr std::size_t S = 16, most = 4;
    struct window
    {
        std::ptrdiff_t base = 0;
        __m512i index{};
        __mmask16 lanes = 0, low = 0, high = 0;
    };
    window windows[NR / S][most];
    std::size_t counts[NR / S];
    for (std::size_t v = 0; v < NR / S; ++v)
    {
        std::size_t count = 0;
        alignas(64) std::int32_t index[S];
        for (std::size_t l = 0; l < S;)
        {
            if (count == most)
            {
                return false;
            }
            window& w = windows[v][count++];
            w.base = col[v * S + l];
            std::uint32_t lanes = 0, low = 0, high = 0;
            for (; l < S && col[v * S + l] >= w.base && col[v * S + l] < w.base + 32; ++l)
            {
                const auto at = static_cast<std::uint32_t>(col[v * S + l] - w.base);
                index[l] = static_cast<std::int32_t>(at);
                lanes |= 1u << l;
                (at < S ? low : high) |= 1u << (at % S);
            }
            w.lanes = static_cast<__mmask16>(lanes);
            w.low = static_cast<__mmask16>(low);
            w.high = static_cast<__mmask16>(high);
            // Lanes outside the window index 0: the blend drops them.
            for (std::size_t m = 0; m < S; ++m)
            {
                index[m] = ((lanes >> m) & 1u) != 0 ? index[m] : 0;
            }
            w.index = _mm512_load_si512(index);
        }
        counts[v] = count;
    }
    for (std::size_t k = 0; k < kc; ++k)
    {
        const float* src = b.data + b.row[k0 + k];
        for (std::size_t v = 0; v < NR / S; ++v)
        {
            __m512 out = _mm512_setzero_ps();
            for (std::size_t i = 0; i < counts[v]; ++i)
            {
                const window& w = windows[v][i];
                // Only the lanes the columns read are loaded; the addresses are formed as
                // integers, since a window may reach past the end of B.
                const __m512 a = _mm512_maskz_loadu_ps(w.low, address_at(src, w.base));
                const __m512 c = _mm512_maskz_loadu_ps(w.high, address_at(src, w.base + std::ptrdiff_t(S)));
                out = _mm512_mask_mov_ps(out, w.lanes, _mm512_permutex2var_ps(a, w.index, c));
            }
            _mm512_store_ps(panel + k * NR + v * S, out);
        }
    }
    return true;
}
#endif

/// Packs a full NR-column panel whose columns are scattered (a stride above 1 puts every column
/// of a window view in a run of its own; a row of the image ends inside the panel) with one
/// vector gather per vector of columns and row of B, through the columns' offsets from the
/// panel's first column. Returns false, packing nothing, when an offset does not fit the index
/// type of the gather.
template <class T, std::size_t NR>
bool gather_panel(const offset_matrix<const T>& b, std::size_t k0, std::size_t kc, const std::ptrdiff_t* col, T* panel)
{
    using batch = xsimd::batch<T>;
    using index_type = gather_index<T>;
    constexpr std::size_t S = batch::size;
    static_assert(NR % S == 0, "a panel is whole vectors of columns");
    alignas(64) index_type lanes[NR];
    for (std::size_t c = 0; c < NR; ++c)
    {
        const std::ptrdiff_t offset = col[c] - col[0];
        if (offset < std::numeric_limits<index_type>::min() || offset > std::numeric_limits<index_type>::max())
        {
            return false;
        }
        lanes[c] = static_cast<index_type>(offset);
    }
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        if (permute_panel<NR>(b, k0, kc, col, panel))
        {
            return true;
        }
    }
#endif
    for (std::size_t k = 0; k < kc; ++k)
    {
        const T* src = b.data + b.row[k0 + k] + col[0];
        for (std::size_t v = 0; v < NR; v += S)
        {
            gather(src, lanes + v).store_aligned(panel + k * NR + v);
        }
    }
    return true;
}

/// Packs rows [k0, k0 + kc) x columns [j0, j0 + nc) of B into NR-column panels laid out
/// k-major. A panel's columns are split once into runs that are contiguous in memory (a window
/// view's columns are contiguous along an image row), and each run is copied for every k.
/// Panels that are one contiguous run on every row are not copied at all: `direct[panel]` is
/// set to their base so the micro-kernel reads them in place (nullptr for packed panels).
template <class T, std::size_t NR>
void pack_b(const offset_matrix<const T>& b, std::size_t k0, std::size_t kc, std::size_t j0, std::size_t nc, T* dst,
            const T** direct)
{
    std::size_t run_start[NR];
    std::size_t run_length[NR];
    // Runs of consecutive k whose rows are contiguous in memory (a window view contracted over
    // (N, OH, OW), as for a convolution's dW: consecutive output columns are adjacent pixels).
    std::size_t k_run_start[gemm_blocking<T>::kc_capacity];
    std::size_t k_run_length[gemm_blocking<T>::kc_capacity];
    std::size_t k_runs = 0;
    for (std::size_t k = 0; k < kc;)
    {
        std::size_t length = 1;
        while (k + length < kc && b.row[k0 + k + length] == b.row[k0 + k] + static_cast<std::ptrdiff_t>(length))
        {
            ++length;
        }
        k_run_start[k_runs] = k;
        k_run_length[k_runs] = length;
        ++k_runs;
        k += length;
    }
    const bool may_read_in_place = rows_close_together(b, k0, kc);
    using batch = xsimd::batch<T>;
    // Panels whose every row is one contiguous run but that must be packed are gathered here and
    // copied together, row by row of B: reading each row of the block left to right lets the
    // hardware prefetcher stream it, where a panel at a time would hop between rows far apart
    // (a row-major B has its rows N elements apart) for two cache lines each.
    std::size_t row_copied[gemm_blocking<T>::nc / NR];
    std::size_t row_copied_count = 0;
    for (std::size_t p = 0; p < nc; p += NR)
    {
        const std::size_t cols = std::min(NR, nc - p);
        const std::ptrdiff_t* col = b.col + j0 + p;
        T* panel = dst + p * kc;
        std::size_t runs = 0;
        for (std::size_t c = 0; c < cols;)
        {
            std::size_t length = 1;
            while (c + length < cols && col[c + length] == col[c] + static_cast<std::ptrdiff_t>(length))
            {
                ++length;
            }
            run_start[runs] = c;
            run_length[runs] = length;
            ++runs;
            c += length;
        }
        direct[p / NR] = nullptr;
        if (runs == 1 && cols == NR && may_read_in_place)
        {
            // Every row of the panel is contiguous in memory (NR adjacent pixels of a window
            // row): the micro-kernel reads it in place, no copy.
            direct[p / NR] = b.data + col[0];
        }
        else if (runs == 1 && cols == NR)
        {
            row_copied[row_copied_count++] = p;
        }
        else if (4 * runs > cols && 4 * k_runs <= kc)
        {
            // Short column runs but long k runs: copy column by column along k, reading memory
            // in order (a transposing copy).
            for (std::size_t c = 0; c < cols; ++c)
            {
                const T* src = b.data + col[c];
                for (std::size_t r = 0; r < k_runs; ++r)
                {
                    const T* from = src + b.row[k0 + k_run_start[r]];
                    T* out = panel + k_run_start[r] * NR + c;
                    for (std::size_t t = 0; t < k_run_length[r]; ++t)
                    {
                        out[t * NR] = from[t];
                    }
                }
            }
            for (std::size_t k = 0; k < kc; ++k)
            {
                for (std::size_t c = cols; c < NR; ++c)
                {
                    panel[k * NR + c] = T(0);
                }
            }
        }
        else if (cols == NR && gather_panel<T, NR>(b, k0, kc, col, panel))
        {
            // Short runs across a whole panel (a stride above 1, a row boundary of the image):
            // gathered, a vector of columns at a time.
        }
        else
        {
            // Short runs at the right edge of B (a panel of fewer than NR columns): plain
            // element copies, which beat a memcpy call per run.
            for (std::size_t k = 0; k < kc; ++k)
            {
                const T* src = b.data + b.row[k0 + k];
                T* out = panel + k * NR;
                for (std::size_t r = 0; r < runs; ++r)
                {
                    const std::size_t c = run_start[r];
                    const T* from = src + col[c];
                    for (std::size_t t = 0; t < run_length[r]; ++t)
                    {
                        out[c + t] = from[t];
                    }
                }
                for (std::size_t c = cols; c < NR; ++c)
                {
                    out[c] = T(0);
                }
            }
        }
    }
    constexpr std::size_t ahead = 4;
    for (std::size_t k = 0; k < kc; ++k)
    {
        const T* src = b.data + b.row[k0 + k];
        if (k + ahead < kc)
        {
            const T* next = b.data + b.row[k0 + k + ahead];
            for (std::size_t q = 0; q < row_copied_count; ++q)
            {
                const T* line = next + b.col[j0 + row_copied[q]];
                __builtin_prefetch(line);
                __builtin_prefetch(line + NR - 1);
            }
        }
        for (std::size_t q = 0; q < row_copied_count; ++q)
        {
            const std::size_t p = row_copied[q];
            const T* from = src + b.col[j0 + p];
            T* out = dst + p * kc + k * NR;
            for (std::size_t c = 0; c < NR; c += batch::size)
            {
                batch::load_unaligned(from + c).store_aligned(out + c);
            }
        }
    }
}

/// Fetches the next B block into the caches a little at a time while the current block is
/// multiplied. A row-major B far larger than the caches (a convolution's lowered input) is
/// otherwise read from memory by pack_b alone, with the arithmetic waiting; spread over the
/// micro-kernel calls, the same reads overlap with it. Only blocks whose rows are contiguous
/// runs far apart are fetched this way (the case pack_b copies row by row).
///
/// The micro-kernel issues the prefetches from inside its k loop, one small group every
/// `interval` steps: a burst of dozens per call fills the core's miss buffers and stalls the
/// arithmetic behind it. They go to L1 (and so L2): on Zen 4 a block staged with L2-only
/// prefetches was copied barely faster than a cold one (docs/performance.md has the numbers).
template <class T>
struct next_block_prefetch
{
    static constexpr std::size_t line = 64 / sizeof(T);
    const T* base = nullptr;
    const std::ptrdiff_t* rows = nullptr;
    std::size_t row_count = 0;
    std::size_t lines_per_row = 0;
    /// Lines fetched per step, and k steps of the micro-kernel between two steps.
    std::size_t per_step = 0;
    std::size_t interval = 1;
    std::size_t row = 0;
    std::size_t line_in_row = 0;

    /// Aims at rows [k0, k0 + kc) x columns [j0, j0 + nc) of b, spread over `calls`
    /// micro-kernel calls of `k_steps` steps each.
    void aim(const offset_matrix<const T>& b, std::size_t k0, std::size_t kc, std::size_t j0, std::size_t nc,
             std::size_t calls, std::size_t k_steps)
    {
        row_count = 0;
        if (!offsets_contiguous(b.col + j0, nc) || rows_close_together(b, k0, kc))
        {
            return;
        }
        base = b.data + b.col[j0];
        rows = b.row + k0;
        row_count = kc;
        lines_per_row = (nc + line - 1) / line;
        const std::size_t lines = row_count * lines_per_row;
        const std::size_t steps = std::max<std::size_t>(calls * k_steps, 1);
        interval = std::max<std::size_t>(steps / lines, 1);
        per_step = (lines + steps / interval - 1) / (steps / interval);
        row = 0;
        line_in_row = 0;
    }

    /// True while lines are left to fetch.
    bool active() const noexcept { return row < row_count; }

    XCNN_ALWAYS_INLINE void step() noexcept
    {
        for (std::size_t i = 0; i < per_step && row < row_count; ++i)
        {
            __builtin_prefetch(base + rows[row] + line_in_row * line, 0, 3);
            if (++line_in_row == lines_per_row)
            {
                line_in_row = 0;
                ++row;
            }
        }
    }
};

/// Where a micro-kernel puts its ROWS x NR product. When the tile's columns are contiguous in C
/// and the epilogue is a plain sum (alpha 1, no column bias, and beta 0, a later K block, or
/// beta 1 without a row bias), the kernel writes C itself: a round trip through the tile buffer
/// costs as much as the C traffic.
/// Otherwise it fills `tile` (row-major, NR columns) and `write_tile` finishes the epilogue.
template <class T>
struct tile_target
{
    /// The tile's first column in C (row offsets in `rows`), or nullptr to fill `tile`.
    T* c = nullptr;
    const std::ptrdiff_t* rows = nullptr;
    /// Added to each row on the first K block; nullptr for none.
    const T* row_bias = nullptr;
    /// Add to what C holds: later K blocks, or beta 1.
    bool accumulate = false;
    T* tile = nullptr;
};

/// The product of the first ROWS rows of a packed A panel (MR rows apart) and a B panel, over
/// kc steps, delivered to `target`. ROWS < MR serves the bottom edge of C without computing
/// rows that would be thrown away (a 1-channel convolution has M = 1). `prefetch`, when not
/// null, is stepped every `prefetch->interval` k steps.
template <class T, std::size_t MR, std::size_t NR, std::size_t ROWS, bool DIRECT>
XCNN_NOINLINE void micro_kernel(std::size_t kc, const T* a, const T* b, const std::ptrdiff_t* b_rows,
                                const tile_target<T>& target, next_block_prefetch<T>* prefetch)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    static_assert(NR == 2 * S, "the micro-kernel holds two vector registers per tile row");
    static_assert(ROWS >= 1 && ROWS <= MR, "a micro-tile has 1 to MR rows");
    batch acc0[ROWS];
    batch acc1[ROWS];
#pragma GCC unroll 16
    for (std::size_t r = 0; r < ROWS; ++r)
    {
        acc0[r] = batch(T(0));
        acc1[r] = batch(T(0));
        if (target.c != nullptr)
        {
            // C's rows are far apart (a whole row of C each): start fetching them now so the
            // write-back does not wait on them.
            __builtin_prefetch(target.c + target.rows[r], 1);
            __builtin_prefetch(target.c + target.rows[r] + NR - 1, 1);
        }
    }
    const std::size_t interval = prefetch != nullptr ? prefetch->interval : kc;
    for (std::size_t k = 0; k < kc;)
    {
        if (k != 0 && prefetch != nullptr)
        {
            prefetch->step();
        }
        for (const std::size_t stop = std::min(kc, k + interval); k < stop; ++k)
        {
            // DIRECT: row k of the panel lives at b + b_rows[k] in the operand itself.
            const T* bk = DIRECT ? b + b_rows[k] : b;
            const batch b0 = DIRECT ? batch::load_unaligned(bk) : batch::load_aligned(bk);
            const batch b1 = DIRECT ? batch::load_unaligned(bk + S) : batch::load_aligned(bk + S);
#pragma GCC unroll 16
            for (std::size_t r = 0; r < ROWS; ++r)
            {
                const batch ar(a[r]);
                acc0[r] = xsimd::fma(ar, b0, acc0[r]);
                acc1[r] = xsimd::fma(ar, b1, acc1[r]);
            }
            a += MR;
            if (!DIRECT)
            {
                b += NR;
            }
        }
    }
    if (target.c == nullptr)
    {
#pragma GCC unroll 16
        for (std::size_t r = 0; r < ROWS; ++r)
        {
            acc0[r].store_unaligned(target.tile + r * NR);
            acc1[r].store_unaligned(target.tile + r * NR + S);
        }
        return;
    }
#pragma GCC unroll 16
    for (std::size_t r = 0; r < ROWS; ++r)
    {
        T* out = target.c + target.rows[r];
        if (target.accumulate)
        {
            acc0[r] += batch::load_unaligned(out);
            acc1[r] += batch::load_unaligned(out + S);
        }
        else if (target.row_bias != nullptr)
        {
            const batch bias(target.row_bias[r]);
            acc0[r] += bias;
            acc1[r] += bias;
        }
        acc0[r].store_unaligned(out);
        acc1[r].store_unaligned(out + S);
    }
}

template <class T, std::size_t MR, std::size_t NR, bool DIRECT, std::size_t... R>
void micro_kernel_rows(std::size_t rows, std::size_t kc, const T* a, const T* b, const std::ptrdiff_t* b_rows,
                       const tile_target<T>& target, next_block_prefetch<T>* prefetch, std::index_sequence<R...>)
{
    // One instantiation per row count; `rows` picks it.
    (void)((rows == R + 1 ? (micro_kernel<T, MR, NR, R + 1, DIRECT>(kc, a, b, b_rows, target, prefetch), true)
                          : false) ||
           ...);
}

/// The micro-kernel for a tile of `rows` (1 to MR) rows, on a packed B panel or, when `direct`
/// is not null, on B read in place at `direct + b_rows[k]`.
template <class T, std::size_t MR, std::size_t NR>
void run_micro_kernel(std::size_t rows, std::size_t kc, const T* a, const T* packed, const T* direct,
                      const std::ptrdiff_t* b_rows, const tile_target<T>& target, next_block_prefetch<T>* prefetch)
{
    if (direct != nullptr)
    {
        if (rows == MR)
        {
            micro_kernel<T, MR, NR, MR, true>(kc, a, direct, b_rows, target, prefetch);
        }
        else
        {
            micro_kernel_rows<T, MR, NR, true>(rows, kc, a, direct, b_rows, target, prefetch,
                                               std::make_index_sequence<MR - 1>{});
        }
    }
    else if (rows == MR)
    {
        micro_kernel<T, MR, NR, MR, false>(kc, a, packed, b_rows, target, prefetch);
    }
    else
    {
        micro_kernel_rows<T, MR, NR, false>(rows, kc, a, packed, b_rows, target, prefetch,
                                            std::make_index_sequence<MR - 1>{});
    }
}

/// True if columns [j0, j0 + NR) of C are NR consecutive elements, so tiles there are written
/// with vector stores.
template <class T, std::size_t NR>
bool contiguous_panel(const offset_matrix<T>& c, std::size_t j0, std::size_t cols)
{
    return cols == NR && offsets_contiguous(c.col + j0, NR);
}

/// `write_tile` for a full-width tile whose columns are a few contiguous runs per vector (the
/// output pixels of two small images side by side, in NCHW): each run is written with one masked
/// vector store instead of element by element. Returns false, writing nothing, when a vector
/// of columns holds more than `max_runs` runs.
template <class T, std::size_t NR>
bool write_tile_runs(const T* tile, std::size_t rows, const offset_matrix<T>& c, std::size_t i0, std::size_t j0,
                     const gemm_epilogue<T>& ep, bool first)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size, vectors = NR / S, max_runs = 4;
    const std::ptrdiff_t* col = c.col + j0;
    // Run r of vector v: lanes `lanes[v][r]`, lane l written at offset[v][r] + l of a row of C.
    std::uint32_t lanes[vectors][max_runs];
    std::ptrdiff_t offset[vectors][max_runs];
    std::size_t runs[vectors];
    for (std::size_t v = 0; v < vectors; ++v)
    {
        runs[v] = 0;
        for (std::size_t a = 0; a < S;)
        {
            std::size_t length = 1;
            while (a + length < S && col[v * S + a + length] == col[v * S + a] + static_cast<std::ptrdiff_t>(length))
            {
                ++length;
            }
            if (runs[v] == max_runs)
            {
                return false;
            }
            lanes[v][runs[v]] = first_lanes(a + length) & ~first_lanes(a);
            offset[v][runs[v]] = col[v * S + a] - static_cast<std::ptrdiff_t>(a);
            ++runs[v];
            a += length;
        }
    }
    const batch alpha(ep.alpha);
    const batch beta(ep.beta);
    for (std::size_t r = 0; r < rows; ++r)
    {
        T* out = c.data + c.row[i0 + r];
        const batch row_bias(first && ep.row_bias ? ep.row_bias[i0 + r] : T(0));
        for (std::size_t v = 0; v < vectors; ++v)
        {
            batch value = batch::load_aligned(tile + r * NR + v * S);
            if (ep.alpha != T(1))
            {
                value *= alpha;
            }
            const bool reads_c = !first || ep.beta != T(0);
            batch old(T(0));
            if (reads_c)
            {
                for (std::size_t q = 0; q < runs[v]; ++q)
                {
                    old += load_masked(out, offset[v][q], lanes[v][q]);
                }
            }
            if (first)
            {
                value += row_bias;
                if (ep.col_bias)
                {
                    value += batch::load_unaligned(ep.col_bias + j0 + v * S);
                }
                if (ep.beta != T(0))
                {
                    value = xsimd::fma(beta, old, value);
                }
            }
            else
            {
                value += old;
            }
            for (std::size_t q = 0; q < runs[v]; ++q)
            {
                store_masked(out, offset[v][q], value, lanes[v][q]);
            }
        }
    }
    return true;
}

/// Writes `rows x cols` of a micro-tile into C. `first` is true for the first K block, which
/// applies beta and the biases; later K blocks accumulate. Full-width tiles whose columns are
/// contiguous in C (`contiguous_panel`; the common case: rows of an NCHW output) are written
/// with vector loads and stores; the others element by element through the column table.
template <class T, std::size_t NR>
void write_tile(const T* tile, std::size_t rows, std::size_t cols, const offset_matrix<T>& c, std::size_t i0,
                std::size_t j0, const gemm_epilogue<T>& ep, bool first, bool contiguous)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::ptrdiff_t* col = c.col + j0;
    if (contiguous)
    {
        const batch alpha(ep.alpha);
        const batch beta(ep.beta);
        for (std::size_t r = 0; r < rows; ++r)
        {
            T* out = c.data + c.row[i0 + r] + col[0];
            const T* acc = tile + r * NR;
            const batch row_bias(first && ep.row_bias ? ep.row_bias[i0 + r] : T(0));
            for (std::size_t j = 0; j < NR; j += S)
            {
                batch value = batch::load_aligned(acc + j);
                if (ep.alpha != T(1))
                {
                    value *= alpha;
                }
                if (first)
                {
                    value += row_bias;
                    if (ep.col_bias)
                    {
                        value += batch::load_unaligned(ep.col_bias + j0 + j);
                    }
                    if (ep.beta != T(0))
                    {
                        value = xsimd::fma(beta, batch::load_unaligned(out + j), value);
                    }
                }
                else
                {
                    value += batch::load_unaligned(out + j);
                }
                value.store_unaligned(out + j);
            }
        }
        return;
    }
    if (cols == NR && write_tile_runs<T, NR>(tile, rows, c, i0, j0, ep, first))
    {
        return;
    }
    for (std::size_t r = 0; r < rows; ++r)
    {
        T* out = c.data + c.row[i0 + r];
        const T* acc = tile + r * NR;
        if (first)
        {
            const T row_bias = ep.row_bias ? ep.row_bias[i0 + r] : T(0);
            for (std::size_t j = 0; j < cols; ++j)
            {
                T value = ep.alpha * acc[j] + row_bias;
                if (ep.col_bias)
                {
                    value += ep.col_bias[j0 + j];
                }
                if (ep.beta != T(0))
                {
                    value += ep.beta * out[col[j]];
                }
                out[col[j]] = value;
            }
        }
        else
        {
            for (std::size_t j = 0; j < cols; ++j)
            {
                out[col[j]] += ep.alpha * acc[j];
            }
        }
    }
}

/// C = epilogue(A * B) without any product term, for K == 0.
template <class T>
void gemm_empty_k(std::size_t m, std::size_t n, const offset_matrix<T>& c, const gemm_epilogue<T>& ep)
{
    for (std::size_t i = 0; i < m; ++i)
    {
        T* out = c.data + c.row[i];
        for (std::size_t j = 0; j < n; ++j)
        {
            T value = (ep.row_bias ? ep.row_bias[i] : T(0)) + (ep.col_bias ? ep.col_bias[j] : T(0));
            if (ep.beta != T(0))
            {
                value += ep.beta * out[c.col[j]];
            }
            out[c.col[j]] = value;
        }
    }
}

/// One thread's GEMM over the whole of its (sub-)matrices, with its own packing buffers.
template <class T>
void gemm_serial(std::size_t m, std::size_t n, std::size_t k, const offset_matrix<const T>& a,
                 const offset_matrix<const T>& b, const offset_matrix<T>& c, const gemm_epilogue<T>& epilogue,
                 typename gemm_workspace<T>::buffers& buffers)
{
    using blocking = gemm_blocking<T>;
    constexpr std::size_t MR = blocking::mr;
    constexpr std::size_t NR = blocking::nr;
    // Equal K blocks: K = 288 runs as 2 x 144 rather than 256 + 32, whose short second block
    // would pay a full write-back for little work.
    std::size_t k_blocks = (k + blocking::kc - 1) / blocking::kc;
    std::size_t nc_limit = blocking::nc;
    if (k > blocking::kc)
    {
        const std::size_t long_blocks = (k + blocking::kc_in_place - 1) / blocking::kc_in_place;
        const std::size_t long_kc = (k + long_blocks - 1) / long_blocks;
        bool in_place = true;
        for (std::size_t k0 = 0; k0 < k && in_place; k0 += long_kc)
        {
            in_place = rows_close_together(b, k0, std::min(long_kc, k - k0));
        }
        if (in_place && long_blocks < k_blocks)
        {
            k_blocks = long_blocks;
            // Panels that are packed after all (columns not in runs of NR) keep the packed
            // block no larger than a default one.
            nc_limit = std::max(NR, blocking::kc * blocking::nc / long_kc / NR * NR);
        }
    }
    const std::size_t kc_max = (k + k_blocks - 1) / k_blocks;
    const std::size_t mc_max = std::min(blocking::mc, (m + MR - 1) / MR * MR);
    const std::size_t nc_max = std::min(nc_limit, (n + NR - 1) / NR * NR);
    // With more than one column block, A would be packed again for each of them (128 times for
    // a convolution's forward GEMM, whose N is every output pixel of the batch). While all of
    // packed A stays within the L2/L3 reach, it is packed once, on the first column block, and
    // reused: one slot of MR-row panels per (K block, row block).
    const std::size_t m_blocks = (m + blocking::mc - 1) / blocking::mc;
    const std::size_t a_slot = (mc_max + MR - 1) / MR * MR * kc_max;
    const bool keep_packed_a = n > nc_limit && a_slot * m_blocks * k_blocks * sizeof(T) <= (std::size_t(8) << 20);
    buffers.packed_a.resize(std::max(buffers.packed_a.size(), keep_packed_a ? a_slot * m_blocks * k_blocks : a_slot));
    buffers.packed_b.resize(std::max(buffers.packed_b.size(), nc_max * kc_max));
    alignas(64) T tile[MR * NR];
    const T* direct[blocking::nc / NR];
    bool c_contiguous[blocking::nc / NR];
    next_block_prefetch<T> prefetch;

    for (std::size_t j0 = 0; j0 < n; j0 += nc_limit)
    {
        const std::size_t nc = std::min(nc_limit, n - j0);
        for (std::size_t jr = 0; jr < nc; jr += NR)
        {
            c_contiguous[jr / NR] = contiguous_panel<T, NR>(c, j0 + jr, std::min(NR, nc - jr));
        }
        for (std::size_t k0 = 0; k0 < k; k0 += kc_max)
        {
            const std::size_t kc = std::min(kc_max, k - k0);
            const bool first = k0 == 0;
            // beta 1 without a row bias is a plain sum too: acc + C rounds as fma(1, C, acc).
            const bool accumulate = !first || (epilogue.beta == T(1) && epilogue.row_bias == nullptr);
            const bool plain_sum =
                epilogue.alpha == T(1) && epilogue.col_bias == nullptr && (accumulate || epilogue.beta == T(0));
            pack_b<T, NR>(b, k0, kc, j0, nc, buffers.packed_b.data(), direct);
            {
                const bool last_k = k0 + kc >= k;
                const std::size_t next_j0 = last_k ? j0 + nc_limit : j0;
                const std::size_t next_k0 = last_k ? 0 : k0 + kc;
                if (next_j0 < n)
                {
                    const std::size_t calls = (m + MR - 1) / MR * ((nc + NR - 1) / NR);
                    prefetch.aim(b, next_k0, std::min(kc_max, k - next_k0), next_j0, std::min(nc_limit, n - next_j0),
                                 calls, kc);
                }
                else
                {
                    prefetch.row_count = 0;
                }
            }
            for (std::size_t i0 = 0; i0 < m; i0 += blocking::mc)
            {
                const std::size_t mc = std::min(blocking::mc, m - i0);
                // Rows split evenly between the tiles: 16 rows run as 8 + 8, not 12 + 4, whose
                // short tile would load as much of B for a third of the arithmetic.
                const std::size_t tiles = (mc + MR - 1) / MR;
                const std::size_t tile_rows = (mc + tiles - 1) / tiles;
                T* packed_a = buffers.packed_a.data();
                if (keep_packed_a)
                {
                    packed_a += (k0 / kc_max * m_blocks + i0 / blocking::mc) * a_slot;
                }
                if (!keep_packed_a || j0 == 0)
                {
                    pack_a<T, MR>(a, i0, mc, k0, kc, tile_rows, packed_a);
                }
                // The A micro-panel (kc x MR) stays in L1 while the B micro-panels stream from
                // the L2-sized packed block: the order BLIS uses for wide-vector machines.
                for (std::size_t ir = 0; ir < mc; ir += tile_rows)
                {
                    const T* a_panel = packed_a + ir / tile_rows * MR * kc;
                    const std::size_t rows = std::min(tile_rows, mc - ir);
                    for (std::size_t jr = 0; jr < nc; jr += NR)
                    {
                        const T* b_panel = buffers.packed_b.data() + jr * kc;
                        tile_target<T> target;
                        target.tile = tile;
                        if (c_contiguous[jr / NR] && plain_sum)
                        {
                            target.c = c.data + c.col[j0 + jr];
                            target.rows = c.row + i0 + ir;
                            target.row_bias = epilogue.row_bias ? epilogue.row_bias + i0 + ir : nullptr;
                            target.accumulate = accumulate;
                        }
                        run_micro_kernel<T, MR, NR>(rows, kc, a_panel, b_panel, direct[jr / NR], b.row + k0, target,
                                                    prefetch.active() ? &prefetch : nullptr);
                        if (target.c == nullptr)
                        {
                            write_tile<T, NR>(tile, rows, std::min(NR, nc - jr), c, i0 + ir, j0 + jr, epilogue, first,
                                              c_contiguous[jr / NR]);
                        }
                    }
                }
            }
        }
    }
}

} // namespace detail

/// `C = alpha * A(m x k) * B(k x n) + beta * C + biases`, every matrix addressed through its
/// offset tables (see `offset_matrix`). C must not overlap A or B.
///
/// With several threads (`set_num_threads`), each thread computes its own block of columns of C
/// (or of rows, when C has too few columns to share), so the result does not depend on the
/// thread count.
template <class T>
void gemm(std::size_t m, std::size_t n, std::size_t k, const offset_matrix<const T>& a, const offset_matrix<const T>& b,
          const offset_matrix<T>& c, const gemm_epilogue<T>& epilogue, gemm_workspace<T>& workspace)
{
    using blocking = detail::gemm_blocking<T>;
    if (m == 0 || n == 0)
    {
        return;
    }
    if (k == 0)
    {
        detail::gemm_empty_k(m, n, c, epilogue);
        return;
    }
    const std::size_t threads = get_num_threads();
    workspace.reserve_threads(threads);
    // Too little work to share: a thread costs a wake-up of a few microseconds.
    const bool parallel = threads > 1 && double(m) * double(n) * double(k) >= 1e6;
    const std::size_t column_units = (n + blocking::nr - 1) / blocking::nr;
    const std::size_t row_units = (m + blocking::mr - 1) / blocking::mr;
    if (!parallel)
    {
        detail::gemm_serial(m, n, k, a, b, c, epilogue, workspace.threads[0]);
    }
    else if (column_units >= 2 * threads || column_units >= row_units)
    {
        detail::parallel_for(n, blocking::nr,
                             [&](std::size_t begin, std::size_t end, std::size_t worker)
                             {
                                 gemm_epilogue<T> ep = epilogue;
                                 ep.col_bias = ep.col_bias ? ep.col_bias + begin : nullptr;
                                 detail::gemm_serial<T>(m, end - begin, k, a, {b.data, b.row, b.col + begin},
                                                        {c.data, c.row, c.col + begin}, ep, workspace.threads[worker]);
                             });
    }
    else
    {
        detail::parallel_for(m, blocking::mr,
                             [&](std::size_t begin, std::size_t end, std::size_t worker)
                             {
                                 gemm_epilogue<T> ep = epilogue;
                                 ep.row_bias = ep.row_bias ? ep.row_bias + begin : nullptr;
                                 detail::gemm_serial<T>(end - begin, n, k, {a.data, a.row + begin, a.col}, b,
                                                        {c.data, c.row + begin, c.col}, ep, workspace.threads[worker]);
                             });
    }
}

/// How far apart the matrices of a batch of GEMMs lie (`gemm_batch`), in elements.
struct gemm_batch_strides
{
    /// Products in the batch.
    std::size_t count = 1;
    /// From one product's A to the next one's.
    std::ptrdiff_t a = 0;
    /// From one product's B to the next one's.
    std::ptrdiff_t b = 0;
    /// From one product's C to the next one's.
    std::ptrdiff_t c = 0;
};

namespace detail
{

/// Products [first, last) of a batch of GEMMs (`gemm_batch`), on the calling thread with one
/// thread's packing buffers: for callers that share out the work themselves.
template <class T>
void gemm_batch_serial(std::size_t m, std::size_t n, std::size_t k, const offset_matrix<const T>& a,
                       const offset_matrix<const T>& b, const offset_matrix<T>& c, const gemm_epilogue<T>& epilogue,
                       typename gemm_workspace<T>::buffers& buffers, const gemm_batch_strides& batch, std::size_t first,
                       std::size_t last)
{
    if (m == 0 || n == 0)
    {
        return;
    }
    for (std::size_t p = first; p < last; ++p)
    {
        const auto at = static_cast<std::ptrdiff_t>(p);
        const offset_matrix<T> cp{c.data + at * batch.c, c.row, c.col};
        if (k == 0)
        {
            gemm_empty_k(m, n, cp, epilogue);
            continue;
        }
        gemm_serial<T>(m, n, k, {a.data + at * batch.a, a.row, a.col}, {b.data + at * batch.b, b.row, b.col}, cp,
                       epilogue, buffers);
    }
}

} // namespace detail

/// `batch.count` GEMMs of one shape and one set of offset tables, product p reading A, B and C
/// at the tables' bases plus p times the batch's strides (a strided batched GEMM, as cuBLAS and
/// oneMKL call it). With several threads the products are shared out whole, each computed on one
/// thread as `gemm` computes it: a batch of small products (the 16 of a Winograd chunk, each a
/// few hundred columns) would each fall below the size worth splitting, and whole products need
/// one wake-up for all; the result does not depend on the thread count.
template <class T>
void gemm_batch(std::size_t m, std::size_t n, std::size_t k, const offset_matrix<const T>& a,
                const offset_matrix<const T>& b, const offset_matrix<T>& c, const gemm_epilogue<T>& epilogue,
                gemm_workspace<T>& workspace, const gemm_batch_strides& batch)
{
    const std::size_t threads = get_num_threads();
    if (batch.count < 2 * threads)
    {
        // Too few products to share evenly: each one split by columns or rows.
        for (std::size_t p = 0; p < batch.count; ++p)
        {
            const auto at = static_cast<std::ptrdiff_t>(p);
            gemm<T>(m, n, k, {a.data + at * batch.a, a.row, a.col}, {b.data + at * batch.b, b.row, b.col},
                    {c.data + at * batch.c, c.row, c.col}, epilogue, workspace);
        }
        return;
    }
    workspace.reserve_threads(threads);
    detail::parallel_for(
        batch.count, 1,
        [&](std::size_t begin, std::size_t end, std::size_t worker)
        { detail::gemm_batch_serial(m, n, k, a, b, c, epilogue, workspace.threads[worker], batch, begin, end); });
}

/// `C = alpha * A * B + beta * C` on strided matrices, BLAS-style: element (i, j) of A is
/// `a[i * a_row_stride + j * a_col_stride]` (strides in elements, may be negative), and
/// likewise for B and C. A transposed operand is the same matrix with its strides swapped.
template <class T>
void gemm(std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a, std::ptrdiff_t a_row_stride,
          std::ptrdiff_t a_col_stride, const T* b, std::ptrdiff_t b_row_stride, std::ptrdiff_t b_col_stride, T beta,
          T* c, std::ptrdiff_t c_row_stride, std::ptrdiff_t c_col_stride)
{
    auto table = [](std::size_t count, std::ptrdiff_t stride)
    {
        std::vector<std::ptrdiff_t> offsets(count);
        for (std::size_t i = 0; i < count; ++i)
        {
            offsets[i] = static_cast<std::ptrdiff_t>(i) * stride;
        }
        return offsets;
    };
    const auto a_rows = table(m, a_row_stride), a_cols = table(k, a_col_stride);
    const auto b_rows = table(k, b_row_stride), b_cols = table(n, b_col_stride);
    const auto c_rows = table(m, c_row_stride), c_cols = table(n, c_col_stride);
    gemm_workspace<T> workspace;
    gemm_epilogue<T> epilogue;
    epilogue.alpha = alpha;
    epilogue.beta = beta;
    gemm<T>(m, n, k, {a, a_rows.data(), a_cols.data()}, {b, b_rows.data(), b_cols.data()},
            {c, c_rows.data(), c_cols.data()}, epilogue, workspace);
}

} // namespace xcnn

#endif // XCNN_CORE_GEMM_HPP
