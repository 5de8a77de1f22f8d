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
#include <cstring>
#include <vector>

#include "error.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{

/// A matrix addressed through offset tables: element (i, j) is `data[row[i] + col[j]]`.
/// The tables must outlive the call that reads them.
template <class T>
struct offset_matrix
{
    T* data = nullptr;
    const std::ptrdiff_t* row = nullptr;
    const std::ptrdiff_t* col = nullptr;
};

/// What the GEMM does with the product before it lands in C.
template <class T>
struct gemm_epilogue
{
    T alpha = T(1);
    /// 0 means C is write-only: its old contents (even NaN) are never read.
    T beta = T(0);
    /// Optional bias added to every element of row i (length M), e.g. a conv bias per channel.
    const T* row_bias = nullptr;
    /// Optional bias added to every element of column j (length N), e.g. a dense-layer bias.
    const T* col_bias = nullptr;
};

/// Packing buffers of the GEMM. Reusing one across calls avoids re-allocating (and
/// page-faulting) the panels on every call: the buffers only ever grow, so once a workspace
/// has served the largest shape, later calls allocate nothing.
template <class T>
struct gemm_workspace
{
    std::vector<T, xsimd::aligned_allocator<T, 64>> packed_a;
    std::vector<T, xsimd::aligned_allocator<T, 64>> packed_b;
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
    static constexpr std::size_t mc = mr * 10;
    static constexpr std::size_t nc = nr * 96;
};

/// Packs rows [i0, i0 + mc) x columns [k0, k0 + kc) of A into MR-row panels laid out k-major,
/// zero-filling the rows past the edge so the micro-kernel never branches.
template <class T, std::size_t MR>
void pack_a(const offset_matrix<const T>& a, std::size_t i0, std::size_t mc, std::size_t k0, std::size_t kc, T* dst)
{
    for (std::size_t p = 0; p < mc; p += MR)
    {
        const std::size_t rows = std::min(MR, mc - p);
        for (std::size_t r = 0; r < rows; ++r)
        {
            const T* src = a.data + a.row[i0 + p + r];
            const std::ptrdiff_t* col = a.col + k0;
            T* out = dst + r;
            for (std::size_t k = 0; k < kc; ++k)
            {
                out[k * MR] = src[col[k]];
            }
        }
        for (std::size_t r = rows; r < MR; ++r)
        {
            for (std::size_t k = 0; k < kc; ++k)
            {
                dst[k * MR + r] = T(0);
            }
        }
        dst += MR * kc;
    }
}

/// Packs rows [k0, k0 + kc) x columns [j0, j0 + nc) of B into NR-column panels laid out
/// k-major. Panels whose columns are contiguous in memory are copied row by row; others are
/// gathered through the column table.
template <class T, std::size_t NR>
void pack_b(const offset_matrix<const T>& b, std::size_t k0, std::size_t kc, std::size_t j0, std::size_t nc, T* dst)
{
    for (std::size_t p = 0; p < nc; p += NR)
    {
        const std::size_t cols = std::min(NR, nc - p);
        const std::ptrdiff_t* col = b.col + j0 + p;
        bool contiguous = true;
        for (std::size_t c = 1; c < cols; ++c)
        {
            contiguous = contiguous && col[c] == col[0] + static_cast<std::ptrdiff_t>(c);
        }
        for (std::size_t k = 0; k < kc; ++k)
        {
            const T* src = b.data + b.row[k0 + k];
            T* out = dst + k * NR;
            if (contiguous)
            {
                std::memcpy(out, src + col[0], cols * sizeof(T));
            }
            else
            {
                for (std::size_t c = 0; c < cols; ++c)
                {
                    out[c] = src[col[c]];
                }
            }
            for (std::size_t c = cols; c < NR; ++c)
            {
                out[c] = T(0);
            }
        }
        dst += NR * kc;
    }
}

/// tile (MR x NR, row-major) = packed A panel * packed B panel over kc steps.
template <class T, std::size_t MR, std::size_t NR>
void micro_kernel(std::size_t kc, const T* a, const T* b, T* tile)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    static_assert(NR == 2 * S, "the micro-kernel holds two vector registers per tile row");
    batch acc0[MR];
    batch acc1[MR];
#pragma GCC unroll 16
    for (std::size_t r = 0; r < MR; ++r)
    {
        acc0[r] = batch(T(0));
        acc1[r] = batch(T(0));
    }
    for (std::size_t k = 0; k < kc; ++k)
    {
        const batch b0 = batch::load_aligned(b);
        const batch b1 = batch::load_aligned(b + S);
#pragma GCC unroll 16
        for (std::size_t r = 0; r < MR; ++r)
        {
            const batch ar(a[r]);
            acc0[r] = xsimd::fma(ar, b0, acc0[r]);
            acc1[r] = xsimd::fma(ar, b1, acc1[r]);
        }
        a += MR;
        b += NR;
    }
#pragma GCC unroll 16
    for (std::size_t r = 0; r < MR; ++r)
    {
        acc0[r].store_unaligned(tile + r * NR);
        acc1[r].store_unaligned(tile + r * NR + S);
    }
}

/// Writes `rows x cols` of a micro-tile into C. `first` is true for the first K block, which
/// applies beta and the biases; later K blocks accumulate.
template <class T, std::size_t NR>
void write_tile(const T* tile, std::size_t rows, std::size_t cols, const offset_matrix<T>& c, std::size_t i0,
                std::size_t j0, const gemm_epilogue<T>& ep, bool first)
{
    const std::ptrdiff_t* col = c.col + j0;
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

} // namespace detail

/// `C = alpha * A(m x k) * B(k x n) + beta * C + biases`, every matrix addressed through its
/// offset tables (see `offset_matrix`). C must not overlap A or B.
template <class T>
void gemm(std::size_t m, std::size_t n, std::size_t k, const offset_matrix<const T>& a, const offset_matrix<const T>& b,
          const offset_matrix<T>& c, const gemm_epilogue<T>& epilogue, gemm_workspace<T>& workspace)
{
    using blocking = detail::gemm_blocking<T>;
    constexpr std::size_t MR = blocking::mr;
    constexpr std::size_t NR = blocking::nr;
    if (m == 0 || n == 0)
    {
        return;
    }
    if (k == 0)
    {
        detail::gemm_empty_k(m, n, c, epilogue);
        return;
    }
    const std::size_t kc_max = std::min(blocking::kc, k);
    const std::size_t mc_max = std::min(blocking::mc, (m + MR - 1) / MR * MR);
    const std::size_t nc_max = std::min(blocking::nc, (n + NR - 1) / NR * NR);
    workspace.packed_a.resize(std::max(workspace.packed_a.size(), mc_max * kc_max));
    workspace.packed_b.resize(std::max(workspace.packed_b.size(), nc_max * kc_max));
    alignas(64) T tile[MR * NR];

    for (std::size_t j0 = 0; j0 < n; j0 += blocking::nc)
    {
        const std::size_t nc = std::min(blocking::nc, n - j0);
        for (std::size_t k0 = 0; k0 < k; k0 += blocking::kc)
        {
            const std::size_t kc = std::min(blocking::kc, k - k0);
            const bool first = k0 == 0;
            detail::pack_b<T, NR>(b, k0, kc, j0, nc, workspace.packed_b.data());
            for (std::size_t i0 = 0; i0 < m; i0 += blocking::mc)
            {
                const std::size_t mc = std::min(blocking::mc, m - i0);
                detail::pack_a<T, MR>(a, i0, mc, k0, kc, workspace.packed_a.data());
                for (std::size_t jr = 0; jr < nc; jr += NR)
                {
                    const T* b_panel = workspace.packed_b.data() + jr * kc;
                    for (std::size_t ir = 0; ir < mc; ir += MR)
                    {
                        const T* a_panel = workspace.packed_a.data() + ir * kc;
                        detail::micro_kernel<T, MR, NR>(kc, a_panel, b_panel, tile);
                        detail::write_tile<T, NR>(tile, std::min(MR, mc - ir), std::min(NR, nc - jr), c, i0 + ir,
                                                  j0 + jr, epilogue, first);
                    }
                }
            }
        }
    }
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
