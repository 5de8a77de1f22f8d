/// @file
/// Stride-1 correlation of image planes computed over the padded width, the form of the window
/// contraction that needs no packing at all.
///
/// Flatten a padded plane (Hp x Wp) row-major. The window of output pixel (oh, ow) at kernel tap
/// (kh, kw) reads flat position `oh * Wp + ow + kh * Wp + kw`, so for a fixed tap the inputs of
/// consecutive flat positions `j = oh * Wp + ow` are consecutive in memory: every row of the
/// window matrix is one contiguous strip of the plane, shifted by the tap's offset. Computing
/// the output at every flat position j in [0, (OH - 1) * Wp + OW) -- the real pixels plus the
/// `Wp - OW` "wrap-around" positions between output rows, which are computed and then dropped
/// -- turns the convolution into a GEMM whose B operand is read in place, whatever OW is. The
/// window view with panels of NR output pixels only reads in place when OW is a multiple of NR;
/// small images (28 x 28, 10 x 10) would otherwise pay a packing copy of K times the input.
///
/// The weight gradient is the same idea transposed: dW[o, tap] = sum over images and flat
/// positions of dY[o, j] * x[tap + j], a dot product of two contiguous strips, with dY spread
/// to the flat layout and zeros at the wrap-around positions.
#ifndef XCNN_CORE_PLANE_CORRELATION_HPP
#define XCNN_CORE_PLANE_CORRELATION_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>
#include <vector>

#include "gemm.hpp"
#include "padding.hpp"
#include "threading.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Shape of a stride-1 correlation of N images of C planes (already padded) with a KH x KW kernel.
struct plane_geometry
{
    std::size_t batch = 0;
    std::size_t channels = 0;
    std::size_t height = 0;
    std::size_t width = 0;
    std::size_t kernel_h = 1;
    std::size_t kernel_w = 1;

    std::size_t out_h() const noexcept { return height - kernel_h + 1; }
    std::size_t out_w() const noexcept { return width - kernel_w + 1; }
    std::size_t plane() const noexcept { return height * width; }
    std::size_t image() const noexcept { return channels * plane(); }
    std::size_t taps() const noexcept { return channels * kernel_h * kernel_w; }
    /// Flat output positions per plane, wrap-around positions included.
    std::size_t span() const noexcept { return (out_h() - 1) * width + out_w(); }
    /// Offset of tap (c, kh, kw) in the input image, for t = (c * KH + kh) * KW + kw.
    std::ptrdiff_t tap_offset(std::size_t t) const noexcept
    {
        const std::size_t kk = kernel_h * kernel_w;
        const std::size_t c = t / kk, r = t % kk;
        return static_cast<std::ptrdiff_t>(c * plane() + (r / kernel_w) * width + r % kernel_w);
    }
};

/// Offset tables of `correlate_planes`, kept by the caller so steady-state calls allocate nothing.
struct plane_tables
{
    std::vector<std::ptrdiff_t> taps;
    std::vector<std::ptrdiff_t> positions;
    std::vector<std::ptrdiff_t> out_rows;
    std::vector<std::ptrdiff_t> out_positions;
};

inline void fill_tap_offsets(const plane_geometry& g, std::vector<std::ptrdiff_t>& taps)
{
    taps.resize(g.taps());
    for (std::size_t t = 0; t < taps.size(); ++t)
    {
        taps[t] = g.tap_offset(t);
    }
}

/// Length of an output plane of `correlate_planes`: the span rounded up to whole GEMM panels, so
/// no panel straddles two images and every panel but the last image's tail is read in place.
template <class T>
std::size_t correlation_plane(const plane_geometry& g) noexcept
{
    constexpr std::size_t NR = gemm_blocking<T>::nr;
    return (g.span() + NR - 1) / NR * NR;
}

/// out[n, o, j] = bias[o] + sum over taps t of kernel(o, t) * input[n, t + j], for every image
/// n, output channel o and flat position j < span; `out` is (N, out_channels,
/// correlation_plane(g)), contiguous. `kernel` addresses the (out_channels x taps) matrix
/// through its own tables, so a rotated or transposed kernel costs nothing. The GEMM reads the
/// input in place.
template <class T>
void correlate_planes(const plane_geometry& g, std::size_t out_channels, const offset_matrix<const T>& kernel,
                      const T* input, const T* bias, T* out, plane_tables& tables, gemm_workspace<T>& workspace)
{
    if (g.batch == 0)
    {
        return;
    }
    // Each image's columns run past its span up to whole panels: those extra positions read the
    // next image's memory and are dropped like the wrap-around ones. The last image stops at its
    // span, so nothing past the input is read.
    const std::size_t span = g.span(), plane = correlation_plane<T>(g);
    const std::size_t columns = (g.batch - 1) * plane + span;
    fill_tap_offsets(g, tables.taps);
    tables.positions.resize(columns);
    tables.out_positions.resize(columns);
    for (std::size_t n = 0; n < g.batch; ++n)
    {
        const std::size_t count = n + 1 < g.batch ? plane : span;
        for (std::size_t j = 0; j < count; ++j)
        {
            tables.positions[n * plane + j] = static_cast<std::ptrdiff_t>(n * g.image() + j);
            tables.out_positions[n * plane + j] = static_cast<std::ptrdiff_t>((n * out_channels) * plane + j);
        }
    }
    tables.out_rows.resize(out_channels);
    for (std::size_t o = 0; o < out_channels; ++o)
    {
        tables.out_rows[o] = static_cast<std::ptrdiff_t>(o * plane);
    }
    gemm_epilogue<T> epilogue;
    epilogue.row_bias = bias;
    gemm<T>(out_channels, columns, g.taps(), kernel, {input, tables.taps.data(), tables.positions.data()},
            {out, tables.out_rows.data(), tables.out_positions.data()}, epilogue, workspace);
}

/// Copies the real pixels out of flat planes: dst plane p (rows x cols, contiguous) gets rows of
/// `flat + p * flat_plane`, `row_stride` apart.
template <class T>
void crop_planes(const T* flat, std::size_t planes, std::size_t flat_plane, std::size_t row_stride, std::size_t rows,
                 std::size_t cols, T* dst)
{
    for (std::size_t p = 0; p < planes; ++p)
    {
        const T* src = flat + p * flat_plane;
        for (std::size_t r = 0; r < rows; ++r, src += row_stride, dst += cols)
        {
            copy_short(src, cols, dst);
        }
    }
}

/// The inverse of `crop_planes` for a gradient: dst plane p (length `flat_plane`) gets the rows
/// of src plane p (rows x cols) `row_stride` apart and zeros everywhere else, so the wrap-around
/// positions contribute nothing to a dot product over the flat plane.
template <class T>
void spread_planes(const T* src, std::size_t planes, std::size_t rows, std::size_t cols, std::size_t row_stride,
                   std::size_t flat_plane, T* dst)
{
    for (std::size_t p = 0; p < planes; ++p)
    {
        T* out = dst + p * flat_plane;
        std::fill(out, out + flat_plane, T(0));
        for (std::size_t r = 0; r < rows; ++r)
        {
            copy_short(src, cols, out + r * row_stride);
            src += cols;
        }
    }
}

/// Register blocking of the weight-gradient kernel: RO gradient rows times RT taps of
/// accumulators, plus RO + 1 operands, fit the vector register file.
template <class T>
struct weight_grad_blocking
{
    static constexpr std::size_t ro = XSIMD_WITH_AVX512F ? 4 : 2;
    static constexpr std::size_t rt = XSIMD_WITH_AVX512F ? 6 : 5;
    /// Bytes of gradient and input rows one pass over a chunk of images keeps in L2.
    static constexpr std::size_t chunk_bytes = 512 * 1024;
};

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

/// What one weight-gradient tile needs to know.
template <class T>
struct weight_grad_args
{
    const T* grad;              // (N, O, grad_plane): flat dY with zeros at wrap-around positions
    std::size_t grad_plane;     // >= span, a multiple of the vector size (rows stay aligned)
    std::size_t out_channels;   // O
    const T* input;             // (N, image) padded input
    const T* input_end;         // one past the input buffer: tail loads never read past it
    std::size_t image;          // elements per input image
    std::size_t span;           // flat positions per plane
    const std::ptrdiff_t* taps; // tap offsets
    T* dw;                      // (O, taps), row-major
    std::size_t taps_count;
};

/// dw[o0 + r, t0 + t] (+)= sum over images [n0, n1) and flat positions of
/// grad[n, o0 + r, j] * input[n, taps[t0 + t] + j], for r < RO and t < RT.
template <class T, std::size_t RO, std::size_t RT>
void weight_grad_tile(const weight_grad_args<T>& a, std::size_t o0, std::size_t t0, std::size_t n0, std::size_t n1,
                      bool overwrite)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    batch acc[RO][RT];
#pragma GCC unroll 32
    for (std::size_t r = 0; r < RO; ++r)
    {
#pragma GCC unroll 32
        for (std::size_t t = 0; t < RT; ++t)
        {
            acc[r][t] = batch(T(0));
        }
    }
    const std::size_t vector_end = a.span / S * S;
    for (std::size_t n = n0; n < n1; ++n)
    {
        const T* g = a.grad + (n * a.out_channels + o0) * a.grad_plane;
        const T* x = a.input + n * a.image;
        const T* x_tap[RT];
#pragma GCC unroll 32
        for (std::size_t t = 0; t < RT; ++t)
        {
            x_tap[t] = x + a.taps[t0 + t];
        }
        for (std::size_t j = 0; j < vector_end; j += S)
        {
            // The input strips are unaligned (every tap shifts them): each is loaded once and
            // kept in a register; the aligned gradient rows are the ones read per use.
            batch xv[RT];
#pragma GCC unroll 32
            for (std::size_t t = 0; t < RT; ++t)
            {
                xv[t] = batch::load_unaligned(x_tap[t] + j);
                keep_in_register(xv[t]);
            }
#pragma GCC unroll 32
            for (std::size_t r = 0; r < RO; ++r)
            {
                const batch gv = batch::load_aligned(g + r * a.grad_plane + j);
#pragma GCC unroll 32
                for (std::size_t t = 0; t < RT; ++t)
                {
                    acc[r][t] = xsimd::fma(gv, xv[t], acc[r][t]);
                }
            }
        }
        if (vector_end < a.span)
        {
            // The gradient rows are zero-padded to whole vectors; the input may end inside the
            // last vector, so it is read through a zero-filled copy there.
            batch gv[RO];
            for (std::size_t r = 0; r < RO; ++r)
            {
                gv[r] = batch::load_unaligned(g + r * a.grad_plane + vector_end);
            }
            for (std::size_t t = 0; t < RT; ++t)
            {
                const T* from = x_tap[t] + vector_end;
                batch xv;
                if (from + S <= a.input_end)
                {
                    xv = batch::load_unaligned(from);
                }
                else
                {
                    alignas(64) T part[S] = {};
                    std::copy(from, a.input_end, part);
                    xv = batch::load_aligned(part);
                }
                for (std::size_t r = 0; r < RO; ++r)
                {
                    acc[r][t] = xsimd::fma(gv[r], xv, acc[r][t]);
                }
            }
        }
    }
    for (std::size_t r = 0; r < RO; ++r)
    {
        for (std::size_t t = 0; t < RT; ++t)
        {
            // Lanes summed through memory: xsimd::hadd trips a false -Wmaybe-uninitialized in
            // GCC 12's AVX-512 intrinsics for double.
            alignas(64) T lanes[S];
            acc[r][t].store_aligned(lanes);
            T sum = 0;
            for (std::size_t l = 0; l < S; ++l)
            {
                sum += lanes[l];
            }
            T& out = a.dw[(o0 + r) * a.taps_count + t0 + t];
            out = overwrite ? sum : out + sum;
        }
    }
}

template <class T>
using weight_grad_tile_fn = void (*)(const weight_grad_args<T>&, std::size_t, std::size_t, std::size_t, std::size_t,
                                     bool);

template <class T, std::size_t RO, std::size_t... RT>
constexpr std::array<weight_grad_tile_fn<T>, sizeof...(RT)> weight_grad_tiles_for_rows(std::index_sequence<RT...>)
{
    return {&weight_grad_tile<T, RO, RT + 1>...};
}

/// kernels[ro - 1][rt - 1] is the tile of ro rows and rt taps: the edges of dW get exact tiles.
template <class T, std::size_t... RO>
constexpr auto weight_grad_tile_table(std::index_sequence<RO...>)
{
    return std::array<std::array<weight_grad_tile_fn<T>, weight_grad_blocking<T>::rt>, sizeof...(RO)>{
        weight_grad_tiles_for_rows<T, RO + 1>(std::make_index_sequence<weight_grad_blocking<T>::rt>{})...};
}

/// dw (out_channels x taps, row-major) = sum over images and flat positions of
/// grad[n, o, j] * input[n, tap + j]. `grad` is (N, out_channels, grad_plane) as `spread_planes`
/// writes it, with `grad_plane` >= span rounded up to whole vectors. Threads split the tiles of dw,
/// each tile summed over the images in a fixed order, so the result does not depend on the
/// thread count.
template <class T>
void correlate_planes_weight_grad(const plane_geometry& g, std::size_t out_channels, const T* grad,
                                  std::size_t grad_plane, const T* input, T* dw, plane_tables& tables)
{
    using blocking = weight_grad_blocking<T>;
    constexpr std::size_t RO = blocking::ro, RT = blocking::rt;
    static constexpr auto kernels = weight_grad_tile_table<T>(std::make_index_sequence<RO>{});
    fill_tap_offsets(g, tables.taps);
    const std::size_t taps = g.taps();
    const weight_grad_args<T> args{grad,      grad_plane, out_channels,       input, input + g.batch * g.image(),
                                   g.image(), g.span(),   tables.taps.data(), dw,    taps};
    const std::size_t row_blocks = (out_channels + RO - 1) / RO;
    const std::size_t tap_blocks = (taps + RT - 1) / RT;
    const std::size_t image_bytes = (out_channels * grad_plane + g.image()) * sizeof(T);
    const std::size_t chunk = std::max<std::size_t>(1, blocking::chunk_bytes / std::max<std::size_t>(image_bytes, 1));
    parallel_for(row_blocks * tap_blocks, 1,
                 [&](std::size_t begin, std::size_t end, std::size_t)
                 {
                     for (std::size_t n0 = 0; n0 < g.batch; n0 += chunk)
                     {
                         const std::size_t n1 = std::min(g.batch, n0 + chunk);
                         for (std::size_t u = begin; u < end; ++u)
                         {
                             const std::size_t o0 = u / tap_blocks * RO, t0 = u % tap_blocks * RT;
                             const std::size_t ro = std::min(RO, out_channels - o0), rt = std::min(RT, taps - t0);
                             kernels[ro - 1][rt - 1](args, o0, t0, n0, n1, n0 == 0);
                         }
                     }
                 });
    if (g.batch == 0)
    {
        std::fill(dw, dw + out_channels * taps, T(0));
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_PLANE_CORRELATION_HPP
