/// @file
/// The Winograd form F(2x2, 3x3) of a stride-1 3x3 convolution: 16 multiplications per 2x2
/// output tile and input channel where the other forms take 36.
///
/// The window view contracts every 3x3 window with the kernel. Winograd's minimal filtering
/// algorithm computes a 2x2 block of outputs from the 4x4 input tile d that covers it as
/// Y = A^T [(G g G^T) . (B^T d B)] A, where . multiplies element by element: the 16 products of
/// the transformed kernel U = G g G^T and the transformed tile V = B^T d B replace the 36 of the
/// four windows, and the transforms only add and halve. Summed over input channels, each of the 16
/// products is a GEMM: M[xi] (C_out, tiles) = U[xi] (C_out, C_in) V[xi] (C_in, tiles), so the
/// convolution runs as 16 GEMMs 2.25 times smaller than the one the window view would run, plus
/// the transforms, O((C_in + C_out) tiles) each against the GEMMs' O(C_in C_out tiles).
///
/// The input transform reads the padded plane split into its four stride-2 phases with a pitch
/// of TW + 1 (TW tiles per row): tile (i, j) reads phase (r mod 2, c mod 2) at row i + r / 2,
/// column j + c / 2 for its element (r, c), so in the flattened phase grid every element of the
/// tiles at consecutive positions is a contiguous vector, as in core/conv/depthwise_phases.hpp.
/// The grid's last column holds no tile; its lanes are dropped when the transformed tiles are
/// stored, compressed, tile after tile. The output transform writes the 2x2 blocks into the four
/// phases of the output plane and interleaves them back into rows.
///
/// Batches are split into chunks of images whose transformed tiles stay in the last-level
/// cache between the transform and the GEMMs; the chunk size depends on the geometry only, so the
/// sums (in another order than the other forms', hence other last bits) do not depend on the
/// thread count.
#ifndef XCNN_CORE_CONV_WINOGRAD_HPP
#define XCNN_CORE_CONV_WINOGRAD_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "../gemm.hpp"
#include "../gemm_nt.hpp"
#include "../simd.hpp"
#include "../threading.hpp"
#include "depthwise.hpp"
#include "geometry.hpp"
#include "lowered.hpp"

namespace xcnn
{
namespace detail
{

/// Whether F(2x2, 3x3) computes `g`: one group, a 3x3 kernel, stride and dilation 1, padding up
/// to 2 (dX is then the same kind of convolution, of dY padded by 2 - padding).
inline bool winograd_applies(const conv_geometry& g) noexcept
{
    return g.groups == 1 && g.kernel[0] == 3 && g.kernel[1] == 3 && g.unit_stride() && g.undilated() &&
           g.padding[0] <= 2 && g.padding[1] <= 2;
}

/// The tile grid of `g`: TH x TW tiles of 2x2 outputs, and the phase planes' pitch TW + 1 and
/// rows TH + 1.
struct winograd_grid
{
    std::size_t th = 0, tw = 0;
    std::size_t pitch() const noexcept { return tw + 1; }
    std::size_t phase_plane() const noexcept { return (th + 1) * (tw + 1); }
    std::size_t tiles() const noexcept { return th * tw; }
};

inline winograd_grid winograd_tiles(const conv_geometry& g) noexcept
{
    return {(g.out_h() + 1) / 2, (g.out_w() + 1) / 2};
}

/// Elements of the transformed input and output of one chunk: 1 MB of floats, so that they stay
/// in L2 between the transforms and the GEMMs (with 4 MB, a network of a few such layers went
/// through memory: each layer's buffers were cold at every call).
constexpr std::size_t winograd_chunk_elements = std::size_t(1) << 18;
/// Tiles of a chunk at least, whatever its size: the GEMMs' N, below which packing U for each
/// of the 16 GEMMs costs more than the cache misses a larger chunk takes.
constexpr std::size_t winograd_chunk_tiles = 256;

/// Images per chunk: as many as keep the transformed input and output, 16 (C_in + C_out) values
/// per tile, within `winograd_chunk_elements`, but enough for `winograd_chunk_tiles`; at least one.
inline std::size_t winograd_chunk(const conv_geometry& g) noexcept
{
    const std::size_t tiles = std::max<std::size_t>(1, winograd_tiles(g).tiles());
    const std::size_t per_image = 16 * (g.in_channels + g.out_channels) * tiles;
    const std::size_t images = std::max(winograd_chunk_elements / std::max<std::size_t>(per_image, 1),
                                        (winograd_chunk_tiles + tiles - 1) / tiles);
    return std::max<std::size_t>(1, std::min(g.batch, images));
}

/// What one thread of the Winograd form works in.
template <class T>
struct winograd_thread_buffers
{
    /// The four phases of a chunk's padded input planes of one channel, side by side, with a
    /// vector of slack.
    conv_buffer<T> phases;
    /// The four phases of a chunk's output planes of one channel.
    conv_buffer<T> outputs;
    /// The chunk this thread runs: V (16, C_in, chunk tiles), and M (16, C_out, chunk tiles) or,
    /// for dW, dY's transformed tiles (16, C_out, chunk tiles).
    conv_buffer<T> input, product;
    /// dW: a chunk's share of dU, added to its part's sum.
    conv_buffer<T> chunk_kernel_grad;
};

/// What the Winograd form keeps between calls, so a steady shape allocates nothing.
template <class T>
struct winograd_workspace
{
    /// U (16, C_out, C_in).
    conv_buffer<T> kernel;
    /// dX's pass: the kernel rotated and transposed (C_in, C_out, 3, 3), and dY padded.
    conv_buffer<T> rotated, padded_grad;
    /// dW's pass: the gradient of U (16, C_out, C_in), one sum per part of the batch.
    conv_buffer<T> kernel_grad;
    std::vector<winograd_thread_buffers<T>> threads;
    /// Lanes of each vector of the phase grid that hold a tile.
    std::vector<std::uint32_t> tile_lanes;
    std::vector<std::ptrdiff_t> a_rows, a_cols, b_rows, b_cols, c_rows, c_cols;
    /// Offset tables of dU's packed GEMMs.
    transposed_b_tables transposed_tables;
};

/// Whether `units` pieces of a Winograd pass (images, or dW's parts) are shared out whole between
/// threads, each thread running the transforms and the products of its own chunks; with fewer
/// pieces than threads, the threads share each chunk's transforms and products instead. Whole
/// pieces keep a chunk in one core's cache: shared by channel and by product, every stage's
/// output went from one core's cache to the other's, and two threads ran a network's Winograd
/// layers little faster than one (docs/performance.md).
inline bool winograd_whole_units(std::size_t units) noexcept
{
    const std::size_t threads = get_num_threads();
    return threads > 1 && units >= threads;
}

/// dW's parts: runs of whole chunks each summed into its own copy of dU, the copies then added in
/// order, so that threads can run whole parts and the sums still do not depend on the thread
/// count. Up to 8 parts and 2^20 elements of copies (a 256 x 256 layer's dU has 2^20: one part,
/// whose chunks' products the threads then share).
inline std::size_t winograd_weight_grad_parts(const conv_geometry& g) noexcept
{
    const std::size_t chunk = winograd_chunk(g), chunks = (g.batch + chunk - 1) / chunk;
    const std::size_t copy = 16 * g.out_channels * g.in_channels;
    const std::size_t fit = (std::size_t(1) << 20) / std::max<std::size_t>(copy, 1);
    return std::max<std::size_t>(1, std::min({chunks, std::size_t(8), fit}));
}

/// t[xi] = (G g G^T)[xi] for a 3x3 kernel g (g[k] = row k / 3, column k % 3), G = [1 0 0;
/// 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]; for scalars or for vectors of S kernels.
template <class V>
void winograd_kernel_tile(const V (&g)[9], V (&u)[16])
{
    using T = decltype(g[0] + g[0]);
    V t[4][3];
    for (std::size_t col = 0; col < 3; ++col)
    {
        const V a = g[col], b = g[3 + col], c = g[6 + col];
        t[0][col] = a;
        t[1][col] = (a + b + c) * T(0.5);
        t[2][col] = (a - b + c) * T(0.5);
        t[3][col] = c;
    }
    for (std::size_t row = 0; row < 4; ++row)
    {
        const V a = t[row][0], b = t[row][1], c = t[row][2];
        u[row * 4] = a;
        u[row * 4 + 1] = (a + b + c) * T(0.5);
        u[row * 4 + 2] = (a - b + c) * T(0.5);
        u[row * 4 + 3] = c;
    }
}

/// U[xi][o][c] = (G g G^T)[xi] for the 3x3 kernel g = weight[o][c]: S kernels at a time, gathered
/// into vectors, so that each store writes a whole vector of one U[xi] (the 16 rows of U lie
/// C_out C_in apart, often a multiple of 4 KB, and a kernel at a time would write them one
/// element at a time into the same cache sets).
template <class T>
void winograd_kernel_transform(std::size_t c_out, std::size_t c_in, const T* weight, T* u)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t planes = c_out * c_in;
    alignas(64) gather_index<T> index[S];
    for (std::size_t l = 0; l < S; ++l)
    {
        index[l] = static_cast<gather_index<T>>(9 * l);
    }
    std::size_t p = 0;
    for (; p + S <= planes; p += S)
    {
        batch g[9], out[16];
        for (std::size_t k = 0; k < 9; ++k)
        {
            g[k] = gather(weight + p * 9 + k, index);
        }
        winograd_kernel_tile(g, out);
        for (std::size_t xi = 0; xi < 16; ++xi)
        {
            out[xi].store_unaligned(u + xi * planes + p);
        }
    }
    for (; p < planes; ++p)
    {
        T g[9], out[16];
        std::copy(weight + p * 9, weight + p * 9 + 9, g);
        winograd_kernel_tile(g, out);
        for (std::size_t xi = 0; xi < 16; ++xi)
        {
            u[xi * planes + p] = out[xi];
        }
    }
}

/// The four stride-2 phases of the padded plane `padded` (Hp, Wp) into `phases`, each (TH + 1) x
/// (TW + 1), phase (rho, gamma) at (2 rho + gamma) times `phase_step`; zeros where a phase has a
/// row or column more than the plane (Hp or Wp odd), so that no value of an earlier plane is left.
template <class T>
void winograd_split(const conv_geometry& g, const winograd_grid& grid, const T* padded, T* phases,
                    std::size_t phase_step)
{
    const std::size_t hp = g.padded_h(), wp = g.padded_w(), pitch = grid.pitch();
    for (std::size_t y = 0; y < hp; ++y)
    {
        const T* row = padded + y * wp;
        T* even = phases + (y % 2) * 2 * phase_step + y / 2 * pitch;
        deinterleave_pairs(row, wp / 2, even, even + phase_step);
        if (wp % 2 != 0)
        {
            even[wp / 2] = row[wp - 1];
            even[phase_step + wp / 2] = T(0);
        }
    }
    if (hp % 2 != 0)
    {
        T* last = phases + 2 * phase_step + hp / 2 * pitch;
        std::fill(last, last + pitch, T(0));
        std::fill(last + phase_step, last + phase_step + pitch, T(0));
    }
}

/// V[xi][c][k] for the k-th tile of `images` input planes whose phases are `phases` (phase f of
/// image i at (f images + i) phase planes), image i's tiles from k = i TH TW: B^T d B with B^T =
/// [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. `stride` is the distance between two xi of V (C_in
/// times the chunk's tiles). The grid positions run on from one image's phase plane into the
/// next, so that a vector holds the tiles of several small planes.
template <class T>
void winograd_input_tiles(const winograd_grid& grid, std::size_t images, const std::uint32_t* tile_lanes,
                          const T* phases, T* v, std::size_t stride)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t pitch = grid.pitch(), step = images * grid.phase_plane();
    // The last image's bottom row of positions holds no tile (nor do the others', masked off).
    const std::size_t positions = step - grid.phase_plane() + grid.th * pitch;
    const T* phase[4] = {phases, phases + step, phases + 2 * step, phases + 3 * step};
    std::size_t stored = 0;
    for (std::size_t q = 0, vector = 0; q < positions; q += S, ++vector)
    {
        // d[r][c] of the S tiles at grid positions q, q + 1, ...
        batch t[4][4];
        for (std::size_t c = 0; c < 4; ++c)
        {
            batch d[4];
            for (std::size_t r = 0; r < 4; ++r)
            {
                d[r] = batch::load_unaligned(phase[(r % 2) * 2 + c % 2] + q + r / 2 * pitch + c / 2);
            }
            t[0][c] = d[0] - d[2];
            t[1][c] = d[1] + d[2];
            t[2][c] = d[2] - d[1];
            t[3][c] = d[1] - d[3];
        }
        const std::uint32_t lanes = tile_lanes[vector];
        std::size_t count = 0;
        for (std::size_t r = 0; r < 4; ++r)
        {
            const batch out[4] = {t[r][0] - t[r][2], t[r][1] + t[r][2], t[r][2] - t[r][1], t[r][1] - t[r][3]};
            for (std::size_t c = 0; c < 4; ++c)
            {
                count = compress_store(v + (r * 4 + c) * stride + stored, out[c], lanes);
            }
        }
        stored += count;
    }
}

/// The output planes y (OH, OW) of `images` consecutive images, `image_step` apart in y, from
/// M[xi][k] for their tiles (image i's are k = i TH TW ... (i + 1) TH TW - 1): the 2x2 block
/// A^T m A of each tile, A^T = [1 1 1 0; 0 1 -1 -1], plus `bias`, through ReLU when `relu`;
/// `phases` (4 images TH TW elements and a vector) holds the four output phases on the way.
/// `stride` is the distance between two xi of M. The transform runs along all the images'
/// tiles in whole vectors: a plane at a time, a small plane's tiles filled a fraction of one
/// (a 4 x 4 output is 4 tiles).
template <class T>
void winograd_output_tiles(const conv_geometry& g, const winograd_grid& grid, const T* m, std::size_t stride,
                           std::size_t images, T bias, bool relu, T* phases, T* y, std::size_t image_step)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t tiles = grid.tiles(), columns = images * tiles;
    for (std::size_t k = 0; k < columns; k += S)
    {
        const std::uint32_t lanes = first_lanes(std::min(S, columns - k));
        batch s[2][4];
        for (std::size_t c = 0; c < 4; ++c)
        {
            batch e[4];
            for (std::size_t r = 0; r < 4; ++r)
            {
                e[r] = load_masked(m + (r * 4 + c) * stride, static_cast<std::ptrdiff_t>(k), lanes);
            }
            s[0][c] = e[0] + e[1] + e[2];
            s[1][c] = e[1] - e[2] - e[3];
        }
        for (std::size_t a = 0; a < 2; ++a)
        {
            batch out[2] = {s[a][0] + s[a][1] + s[a][2] + batch(bias), s[a][1] - s[a][2] - s[a][3] + batch(bias)};
            for (std::size_t b = 0; b < 2; ++b)
            {
                if (relu)
                {
                    out[b] = xsimd::max(out[b], batch(T(0)));
                }
                store_masked(phases + (a * 2 + b) * columns + k, out[b], lanes);
            }
        }
    }
    const std::size_t oh = g.out_h(), ow = g.out_w(), tw = grid.tw;
    for (std::size_t i = 0; i < images; ++i)
    {
        for (std::size_t row = 0; row < oh; ++row)
        {
            const T* even = phases + (row % 2) * 2 * columns + i * tiles + row / 2 * tw;
            T* out = y + i * image_step + row * ow;
            interleave_pairs(even, even + columns, ow / 2, out);
            if (ow % 2 != 0)
            {
                out[ow - 1] = even[ow / 2];
            }
        }
    }
}

/// Sizes the buffers for `g` (they only grow) and the offset tables of the forward products,
/// whose V and M rows lie a whole chunk's tiles apart whatever the chunk's images; fills the lanes
/// of the tile grid.
template <class T>
void prepare_winograd(const conv_geometry& g, winograd_workspace<T>& ws, gemm_workspace<T>& gemm_ws)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    const std::size_t c_in = g.in_channels, c_out = g.out_channels;
    const winograd_grid grid = winograd_tiles(g);
    const std::size_t chunk = winograd_chunk(g), tiles = grid.tiles(), pitch = chunk * tiles;
    grow_to(ws.kernel, 16 * c_out * c_in);
    const std::size_t workers = get_num_threads();
    gemm_ws.reserve_threads(workers);
    if (ws.threads.size() < workers)
    {
        ws.threads.resize(workers);
    }
    const std::size_t phase_elements = 4 * chunk * grid.phase_plane() + S;
    for (auto& t : ws.threads)
    {
        grow_to(t.phases, phase_elements);
        grow_to(t.outputs, 4 * pitch + S);
        grow_to(t.input, 16 * c_in * pitch);
        grow_to(t.product, 16 * c_out * pitch);
    }
    const std::size_t positions = chunk * grid.phase_plane(), vectors = (positions + S - 1) / S;
    ws.tile_lanes.assign(vectors, 0);
    for (std::size_t q = 0; q < positions; ++q)
    {
        const std::size_t at = q % grid.phase_plane();
        if (at < grid.th * grid.pitch() && at % grid.pitch() < grid.tw)
        {
            ws.tile_lanes[q / S] |= std::uint32_t(1) << (q % S);
        }
    }
    fill_linear(ws.a_rows, c_out, c_in);
    fill_linear(ws.a_cols, c_in, 1);
    fill_linear(ws.b_rows, c_in, pitch);
    fill_linear(ws.b_cols, pitch, 1);
    fill_linear(ws.c_rows, c_out, pitch);
    fill_linear(ws.c_cols, pitch, 1);
}

/// Runs `body(begin, end, worker)` over `count` items of about `item_size` elements: shared
/// between the threads when `shared`, else on the calling thread, as worker `own`.
template <class F>
void winograd_items(bool shared, std::size_t own, std::size_t count, std::size_t item_size, F&& body)
{
    if (shared)
    {
        parallel_for_items(count, item_size, std::forward<F>(body));
    }
    else if (count > 0)
    {
        body(std::size_t(0), count, own);
    }
}

/// V (16, C_in, chunk tiles) in `v`, rows `pitch` apart, for images [n0, n1) of `padded`: plane
/// (n, c) fills columns [(n - n0) tiles, ...) of row c of every V[xi]. A channel's planes are
/// split side by side and transformed together.
template <class T>
void winograd_transform_input(const conv_geometry& g, const T* padded, std::size_t n0, std::size_t n1, T* v,
                              std::size_t pitch, bool shared, std::size_t own, winograd_workspace<T>& ws)
{
    const std::size_t c_in = g.in_channels, in_plane = g.padded_h() * g.padded_w(), images = n1 - n0;
    const winograd_grid grid = winograd_tiles(g);
    const std::size_t plane = grid.phase_plane();
    winograd_items(shared, own, c_in, 16 * grid.tiles() * images,
                   [&](std::size_t begin, std::size_t end, std::size_t worker)
                   {
                       T* phases = ws.threads[worker].phases.data();
                       for (std::size_t c = begin; c < end; ++c)
                       {
                           for (std::size_t i = 0; i < images; ++i)
                           {
                               winograd_split(g, grid, padded + ((n0 + i) * c_in + c) * in_plane, phases + i * plane,
                                              images * plane);
                           }
                           winograd_input_tiles(grid, images, ws.tile_lanes.data(), phases, v + c * pitch,
                                                c_in * pitch);
                       }
                   });
}

/// The forward pass of images [first, last), chunk by chunk in worker `own`'s chunk buffers, the
/// threads sharing each chunk's transforms and products when `shared`.
template <class T>
void winograd_forward_images(const conv_geometry& g, const T* bias, const T* padded, T* y, bool relu, std::size_t first,
                             std::size_t last, bool shared, std::size_t own, winograd_workspace<T>& ws,
                             gemm_workspace<T>& gemm_ws)
{
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, chunk = winograd_chunk(g);
    const winograd_grid grid = winograd_tiles(g);
    const std::size_t tiles = grid.tiles(), pitch = chunk * tiles, out_plane = g.out_h() * g.out_w();
    const T* u = ws.kernel.data();
    T* v = ws.threads[own].input.data();
    T* m = ws.threads[own].product.data();
    const gemm_batch_strides products{16, static_cast<std::ptrdiff_t>(c_out * c_in),
                                      static_cast<std::ptrdiff_t>(c_in * pitch),
                                      static_cast<std::ptrdiff_t>(c_out * pitch)};
    const offset_matrix<const T> a{u, ws.a_rows.data(), ws.a_cols.data()};
    const offset_matrix<const T> b{v, ws.b_rows.data(), ws.b_cols.data()};
    const offset_matrix<T> c{m, ws.c_rows.data(), ws.c_cols.data()};
    for (std::size_t n0 = first; n0 < last; n0 += chunk)
    {
        const std::size_t n1 = std::min(last, n0 + chunk), cols = (n1 - n0) * tiles;
        winograd_transform_input(g, padded, n0, n1, v, pitch, shared, own, ws);
        if (shared)
        {
            gemm_batch<T>(c_out, cols, c_in, a, b, c, {}, gemm_ws, products);
        }
        else
        {
            gemm_batch_serial<T>(c_out, cols, c_in, a, b, c, {}, gemm_ws.threads[own], products, 0, 16);
        }
        winograd_items(shared, own, c_out, 16 * cols,
                       [&](std::size_t begin, std::size_t end, std::size_t worker)
                       {
                           T* phases = ws.threads[worker].outputs.data();
                           for (std::size_t o = begin; o < end; ++o)
                           {
                               winograd_output_tiles(g, grid, m + o * pitch, c_out * pitch, n1 - n0,
                                                     bias == nullptr ? T(0) : bias[o], relu, phases,
                                                     y + (n0 * c_out + o) * out_plane, c_out * out_plane);
                           }
                       });
    }
}

/// y (N, C_out, OH, OW) = the convolution of `padded` (N, C_in, Hp, Wp) with `weight` (C_out,
/// C_in, 3, 3), plus `bias` (C_out, or null), with ReLU when `relu`, for `g` where
/// `winograd_applies`. Each output depends on its own tiles only, so the split of the images
/// between threads (`winograd_whole_units`) does not change a bit of it.
template <class T>
void winograd_forward(const conv_geometry& g, const T* weight, const T* bias, const T* padded, T* y, bool relu,
                      winograd_workspace<T>& ws, gemm_workspace<T>& gemm_ws)
{
    prepare_winograd(g, ws, gemm_ws);
    winograd_kernel_transform(g.out_channels, g.in_channels, weight, ws.kernel.data());
    if (winograd_whole_units(g.batch))
    {
        parallel_for(g.batch, 1,
                     [&](std::size_t begin, std::size_t end, std::size_t worker)
                     { winograd_forward_images(g, bias, padded, y, relu, begin, end, false, worker, ws, gemm_ws); });
        return;
    }
    winograd_forward_images(g, bias, padded, y, relu, 0, g.batch, true, 0, ws, gemm_ws);
}

/// The 4x4 transforms A y A^T, A = [1 0; 1 1; 1 -1; 0 -1], of the 2x2 tiles of the dY plane `dy`
/// (OH, OW), through `mask` (laid out like dY, or null) when given: into Y[xi][t0 + k] for tile
/// k, `stride` apart between two xi. `phases` holds the four TH x TW phases of dY on the way,
/// zeros past an odd edge.
template <class T>
void winograd_grad_tiles(const conv_geometry& g, const winograd_grid& grid, const T* dy, const T* mask, T* phases,
                         T* out, std::size_t stride)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t oh = g.out_h(), ow = g.out_w(), tw = grid.tw, tiles = grid.tiles();
    T row_buffer[2][64];
    for (std::size_t row = 0; row < 2 * grid.th; ++row)
    {
        T* even = phases + (row % 2) * 2 * tiles + row / 2 * tw;
        if (row >= oh)
        {
            std::fill(even, even + tw, T(0));
            std::fill(even + tiles, even + tiles + tw, T(0));
            continue;
        }
        const T* src = dy + row * ow;
        if (mask != nullptr)
        {
            // Masked a piece at a time through a small buffer, then split.
            for (std::size_t x0 = 0; x0 < ow; x0 += 64)
            {
                const std::size_t count = std::min<std::size_t>(64, ow - x0);
                copy_short_masked(src + x0, mask + row * ow + x0, count, row_buffer[0]);
                deinterleave_pairs(row_buffer[0], count / 2, even + x0 / 2, even + tiles + x0 / 2);
                if (count % 2 != 0)
                {
                    even[(x0 + count) / 2] = row_buffer[0][count - 1];
                    even[tiles + (x0 + count) / 2] = T(0);
                }
            }
            continue;
        }
        deinterleave_pairs(src, ow / 2, even, even + tiles);
        if (ow % 2 != 0)
        {
            even[ow / 2] = src[ow - 1];
            even[tiles + ow / 2] = T(0);
        }
    }
    for (std::size_t k = 0; k < tiles; k += S)
    {
        const std::uint32_t lanes = first_lanes(std::min(S, tiles - k));
        const auto at = static_cast<std::ptrdiff_t>(k);
        const batch y00 = load_masked(phases, at, lanes), y01 = load_masked(phases + tiles, at, lanes);
        const batch y10 = load_masked(phases + 2 * tiles, at, lanes), y11 = load_masked(phases + 3 * tiles, at, lanes);
        // Rows of A y: y0, y0 + y1, y0 - y1, -y1 (each a pair across the columns).
        const batch rows[4][2] = {{y00, y01}, {y00 + y10, y01 + y11}, {y00 - y10, y01 - y11}, {-y10, -y11}};
        for (std::size_t r = 0; r < 4; ++r)
        {
            const batch a = rows[r][0], b = rows[r][1];
            const batch values[4] = {a, a + b, a - b, -b};
            for (std::size_t c = 0; c < 4; ++c)
            {
                store_masked(out + (r * 4 + c) * stride + k, values[c], lanes);
            }
        }
    }
}

/// dw (C_out, C_in, 3, 3) = G^T dU G for every kernel, from dU (16, C_out C_in), G^T = [1 1/2 1/2 0;
/// 0 1/2 -1/2 0; 0 1/2 1/2 1].
template <class T>
void winograd_kernel_grad_transform(std::size_t planes, const T* du, T* dw)
{
    for (std::size_t p = 0; p < planes; ++p)
    {
        T m[4][4];
        for (std::size_t xi = 0; xi < 16; ++xi)
        {
            m[xi / 4][xi % 4] = du[xi * planes + p];
        }
        T t[3][4];
        for (std::size_t c = 0; c < 4; ++c)
        {
            t[0][c] = m[0][c] + T(0.5) * (m[1][c] + m[2][c]);
            t[1][c] = T(0.5) * (m[1][c] - m[2][c]);
            t[2][c] = T(0.5) * (m[1][c] + m[2][c]) + m[3][c];
        }
        T* out = dw + p * 9;
        for (std::size_t r = 0; r < 3; ++r)
        {
            out[r * 3] = t[r][0] + T(0.5) * (t[r][1] + t[r][2]);
            out[r * 3 + 1] = T(0.5) * (t[r][1] - t[r][2]);
            out[r * 3 + 2] = T(0.5) * (t[r][1] + t[r][2]) + t[r][3];
        }
    }
}

/// dU's sum over chunks [c0, c1) of the batch into `du` (16, C_out C_in), in worker `own`'s chunk
/// buffers, the threads sharing each chunk's transforms and products when `shared`: V and the
/// transformed dY of each chunk, then dU[xi] += the transformed dY times V[xi] transposed, the
/// first chunk writing `du`.
template <class T>
void winograd_weight_grad_chunks(const conv_geometry& g, const T* padded, const T* dy, const T* mask, std::size_t c0,
                                 std::size_t c1, T* du, bool shared, std::size_t own, winograd_workspace<T>& ws,
                                 gemm_workspace<T>& gemm_ws)
{
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, chunk = winograd_chunk(g);
    const winograd_grid grid = winograd_tiles(g);
    const std::size_t tiles = grid.tiles(), pitch = chunk * tiles, out_plane = g.out_h() * g.out_w();
    const std::size_t planes = c_out * c_in;
    winograd_thread_buffers<T>& mine = ws.threads[own];
    T* v = mine.input.data();
    T* dyt = mine.product.data();
    for (std::size_t q = c0; q < c1; ++q)
    {
        const std::size_t n0 = q * chunk, n1 = std::min(g.batch, n0 + chunk), cols = (n1 - n0) * tiles;
        winograd_transform_input(g, padded, n0, n1, v, pitch, shared, own, ws);
        winograd_items(shared, own, (n1 - n0) * c_out, 16 * tiles,
                       [&](std::size_t begin, std::size_t end, std::size_t worker)
                       {
                           T* phases = ws.threads[worker].outputs.data();
                           for (std::size_t p = begin; p < end; ++p)
                           {
                               const std::size_t n = n0 + p / c_out, o = p % c_out, at = (n * c_out + o) * out_plane;
                               winograd_grad_tiles(g, grid, dy + at, mask == nullptr ? nullptr : mask + at, phases,
                                                   dyt + o * pitch + (n - n0) * tiles, c_out * pitch);
                           }
                       });
        if (packed_gemm_beats_nt(c_out))
        {
            const transposed_b_tables& tables = ws.transposed_tables;
            const gemm_batch_strides products{16, static_cast<std::ptrdiff_t>(c_out * pitch),
                                              static_cast<std::ptrdiff_t>(c_in * pitch),
                                              static_cast<std::ptrdiff_t>(planes)};
            const gemm_epilogue<T> epilogue = transposed_b_epilogue<T>(q != c0);
            if (shared)
            {
                gemm_batch<T>(c_out, c_in, cols, tables.a(static_cast<const T*>(dyt)),
                              tables.b(static_cast<const T*>(v)), tables.c(du), epilogue, gemm_ws, products);
            }
            else
            {
                gemm_batch_serial<T>(c_out, c_in, cols, tables.a(static_cast<const T*>(dyt)),
                                     tables.b(static_cast<const T*>(v)), tables.c(du), epilogue, gemm_ws.threads[own],
                                     products, 0, 16);
            }
            continue;
        }
        T* target = q == c0 ? du : mine.chunk_kernel_grad.data();
        // The 16 products run whole, one thread each when shared (`gemm_nt` inside a parallel
        // section is serial).
        const auto run_products = [&](std::size_t begin, std::size_t end, std::size_t)
        {
            for (std::size_t xi = begin; xi < end; ++xi)
            {
                gemm_nt_operands<T> op;
                op.a = dyt + xi * c_out * pitch;
                op.a_row = pitch;
                op.b = v + xi * c_in * pitch;
                op.b_rows = ws.b_rows.data();
                op.length = cols;
                op.c = target + xi * planes;
                op.c_row = c_in;
                gemm_nt(c_out, c_in, op);
            }
        };
        if (shared)
        {
            parallel_for(16, 1, run_products);
        }
        else
        {
            run_products(0, 16, own);
        }
        if (q != c0)
        {
            for (std::size_t i = 0; i < 16 * planes; ++i)
            {
                du[i] += target[i];
            }
        }
    }
}

/// dw (C_out, C_in, 3, 3) and db (C_out, or null) from dY (N, C_out, OH, OW) and `padded` (N, C_in,
/// Hp, Wp) for `g` where `winograd_applies`: the forward pass is y = A^T [U . V] A per tile, so
/// dU[xi] (C_out, C_in) is the sum over tiles of (A dy A^T)[xi] times V[xi], 16 GEMMs along the
/// tiles (`gemm_nt`, or the packed GEMM for many output channels: `packed_gemm_beats_nt`), and
/// dW = G^T dU G. The sum runs as `winograd_weight_grad_parts` partial sums, added in order. With
/// `mask` (the ReLU'd output, laid out like dY), dY passes only where it is positive.
template <class T>
void winograd_weight_grad(const conv_geometry& g, const T* padded, const T* dy, const T* mask, T* dw, T* db,
                          winograd_workspace<T>& ws, gemm_workspace<T>& gemm_ws)
{
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, chunk = winograd_chunk(g);
    const std::size_t pitch = chunk * winograd_tiles(g).tiles(), planes = c_out * c_in;
    const std::size_t chunks = (g.batch + chunk - 1) / chunk, parts = winograd_weight_grad_parts(g);
    prepare_winograd(g, ws, gemm_ws);
    grow_to(ws.kernel_grad, parts * 16 * planes);
    for (auto& t : ws.threads)
    {
        grow_to(t.chunk_kernel_grad, 16 * planes);
    }
    ws.transposed_tables.prepare(c_out, c_in, pitch, pitch, pitch, c_in);
    T* du = ws.kernel_grad.data();
    const auto run_part = [&](std::size_t p, bool shared, std::size_t own)
    {
        winograd_weight_grad_chunks(g, padded, dy, mask, chunks * p / parts, chunks * (p + 1) / parts,
                                    du + p * 16 * planes, shared, own, ws, gemm_ws);
    };
    if (winograd_whole_units(parts))
    {
        parallel_for(parts, 1,
                     [&](std::size_t begin, std::size_t end, std::size_t worker)
                     {
                         for (std::size_t p = begin; p < end; ++p)
                         {
                             run_part(p, false, worker);
                         }
                     });
    }
    else
    {
        for (std::size_t p = 0; p < parts; ++p)
        {
            run_part(p, true, 0);
        }
    }
    if (parts > 1)
    {
        parallel_for_items(16 * planes, parts,
                           [&](std::size_t begin, std::size_t end, std::size_t)
                           {
                               for (std::size_t p = 1; p < parts; ++p)
                               {
                                   const T* part = du + p * 16 * planes;
                                   for (std::size_t i = begin; i < end; ++i)
                                   {
                                       du[i] += part[i];
                                   }
                               }
                           });
    }
    winograd_kernel_grad_transform(planes, du, dw);
    if (db != nullptr)
    {
        output_bias_grad(g, dy, mask, db);
    }
}

/// dx (N, C_in, H, W) from dY (N, C_out, OH, OW) for `g` where `winograd_applies`: at stride 1,
/// dX is the convolution of dY, padded by 2 - padding, with the kernel rotated by 180 degrees
/// and its channel axes swapped, which `winograd_forward` computes. With `mask` (the ReLU'd
/// output, laid out like dY), dY passes only where it is positive, inside the padding copy.
template <class T>
void winograd_input_grad(const conv_geometry& g, const T* weight, const T* dy, const T* mask, T* dx,
                         winograd_workspace<T>& ws, gemm_workspace<T>& gemm_ws)
{
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, oh = g.out_h(), ow = g.out_w();
    conv_geometry back = g;
    back.in_channels = c_out;
    back.out_channels = c_in;
    back.input = {oh, ow};
    back.padding = {2 - g.padding[0], 2 - g.padding[1]};
    grow_to(ws.rotated, c_in * c_out * 9);
    for (std::size_t o = 0; o < c_out; ++o)
    {
        for (std::size_t c = 0; c < c_in; ++c)
        {
            const T* from = weight + (o * c_in + c) * 9;
            T* to = ws.rotated.data() + (c * c_out + o) * 9;
            for (std::size_t t = 0; t < 9; ++t)
            {
                to[t] = from[8 - t];
            }
        }
    }
    const std::size_t hp = back.padded_h(), wp = back.padded_w(), plane = hp * wp;
    const std::size_t top = back.padding[0], left = back.padding[1];
    grow_to(ws.padded_grad, g.batch * c_out * plane);
    T* padded = ws.padded_grad.data();
    parallel_for_items(g.batch * c_out, plane,
                       [&](std::size_t begin, std::size_t end, std::size_t)
                       {
                           for (std::size_t p = begin; p < end; ++p)
                           {
                               T* out = padded + p * plane;
                               std::fill(out, out + plane, T(0));
                               for (std::size_t r = 0; r < oh; ++r)
                               {
                                   const std::size_t at = (p * oh + r) * ow;
                                   T* row = out + (top + r) * wp + left;
                                   if (mask != nullptr)
                                   {
                                       copy_short_masked<true>(dy + at, mask + at, ow, row);
                                   }
                                   else
                                   {
                                       copy_short<true>(dy + at, ow, row);
                                   }
                               }
                           }
                       });
    winograd_forward(back, ws.rotated.data(), static_cast<const T*>(nullptr), static_cast<const T*>(padded), dx, false,
                     ws, gemm_ws);
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_WINOGRAD_HPP
