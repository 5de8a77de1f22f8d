/// @file
/// The Winograd forms F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5) of a stride-1 3x3 or 5x5
/// convolution: alpha^2 = (m + r - 1)^2 multiplications per m x m output tile and input channel
/// where the other forms take r^2 m^2 -- 16 for 4 outputs of a 3x3 kernel, 36 for 16, and 36 for 4
/// outputs of a 5x5 kernel.
///
/// The window view contracts every r x r window with the kernel. Winograd's minimal filtering
/// algorithm computes an m x m block of outputs from the alpha x alpha input tile d that covers it
/// as Y = A^T [(G g G^T) . (B^T d B)] A, where . multiplies element by element: the alpha^2
/// products of the transformed kernel U = G g G^T and the transformed tile V = B^T d B replace the
/// r^2 m^2 of the windows, and the transforms only add and scale by constants. Summed over input
/// channels, each of the products is a GEMM: M[xi] (C_out, tiles) = U[xi] (C_out, C_in) V[xi]
/// (C_in, tiles), so the convolution runs as alpha^2 GEMMs r^2 m^2 / alpha^2 times smaller than
/// the one the window view would run (2.25 for F(2, 3), 4 for F(4, 3), 2.8 for F(2, 5)), plus the
/// transforms, O((C_in + C_out) tiles) each against the GEMMs' O(C_in C_out tiles). The larger
/// tile rounds the output up to a multiple of 4 and its transforms cost more per product, so
/// `winograd_tile_size` takes it only where it saves enough products over enough tiles.
///
/// The 2 x 2 tiles' input transform reads the padded plane split into its four stride-2 phases
/// with a pitch of TW + (r - 1) / 2 (TW tiles per row): tile (i, j) reads phase (a mod 2, b mod 2)
/// at row i + a / 2, column j + b / 2 for its element (a, b), so every element of the tiles at
/// consecutive grid positions is a contiguous vector, as in core/conv/depthwise_phases.hpp; the
/// grid's last column holds no tile, and its lanes are dropped when the transformed tiles are
/// stored, compressed. The 4 x 4 tiles' input transform first unfolds a few images' tiles into a
/// buffer that stays in L1: element (r, c) of tile (i, j), padded row 4 i + r, column 4 j + c,
/// goes to a row of its own at the tile's column (each padded row split into its stride-4 phases
/// in registers and stored to the one or two tile rows that read it), and the transform reads
/// whole vectors of one element of consecutive tiles from there into V. The output transform
/// writes the m x m blocks into the m^2 phases of the output plane and interleaves them back into
/// rows.
///
/// A dilated layer runs as the undilated convolution of its dilation phases
/// (`winograd_phase_geometry`): output phase (p, q) is the correlation of input phase (p, q) with
/// the same kernel, so the form's images are the phases of the layer's, split from each plane of
/// the input and of dY as the transforms read it (`winograd_image_plane`, in a buffer that stays
/// in L1) and merged into the output planes as the output transform writes them; no dilated
/// kernel's wrap-around positions are computed and nothing of the size of the batch is copied.
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
#include <type_traits>
#include <utility>
#include <vector>

#include "../elementwise.hpp"
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

/// Whether the Winograd form computes `g`: one group, a 3x3 or 5x5 kernel, stride 1, any
/// dilation D, padding up to D (r - 1) (dX is then the same kind of convolution, of dY padded by
/// D (r - 1) less the padding).
inline bool winograd_applies(const conv_geometry& g) noexcept
{
    const std::size_t r = g.kernel[0];
    return g.groups == 1 && (r == 3 || r == 5) && g.kernel[1] == r && g.unit_stride() &&
           g.padding[0] <= g.dilation[0] * (r - 1) && g.padding[1] <= g.dilation[1] * (r - 1);
}

/// The undilated convolution the Winograd form computes for `g`: `g` itself, or with a dilation
/// (DH, DW), the convolution of its dilation phases. Tap (a, b) of output pixel (y, x) reads
/// padded pixel (y + a DH, x + b DW); with y = i DH + p and x = j DW + q, that is pixel (i + a,
/// j + b) of phase (p, q) of the padded plane, the pixels (i DH + p, j DW + q). So output phase
/// (p, q) is the undilated correlation of input phase (p, q) with the same kernel, and the DH DW
/// phases of N images are one batch of N DH DW images of ceil(Hp / DH) x ceil(Wp / DW) pixels,
/// already padded (zeros past the plane where Hp or Wp is not a multiple of the dilation); image
/// n DH DW + p DW + q is phase (p, q) of image n. Its outputs are ceil(OH / DH) x ceil(OW / DW),
/// the last row or column of a phase dropped where OH or OW is not a multiple of the dilation.
inline conv_geometry winograd_phase_geometry(const conv_geometry& g) noexcept
{
    if (g.undilated())
    {
        return g;
    }
    const auto d = g.dilation;
    conv_geometry p = g;
    p.batch = g.batch * d[0] * d[1];
    p.input = {(g.padded_h() + d[0] - 1) / d[0], (g.padded_w() + d[1] - 1) / d[1]};
    p.padding = {0, 0};
    p.dilation = {1, 1};
    return p;
}

/// The tile grid of `g` for m x m output tiles of an r x r kernel (F(2, 3), F(4, 3) or F(2, 5)):
/// TH x TW tiles of input tiles alpha = m + r - 1 on a side; for 2 x 2 tiles, the phase planes'
/// pitch TW + (r - 1) / 2 and rows TH + (r - 1) / 2 (a tile reads (r - 1) / 2 positions past its
/// own in each phase). A dilated layer's grid is that of its phases' convolution
/// (`winograd_phase_geometry`), `phases` (DH DW) of its images for each of the layer's.
struct winograd_grid
{
    std::size_t m = 2;
    std::size_t r = 3;
    std::size_t th = 0, tw = 0;
    std::size_t phases = 1;
    /// The input tile's side m + r - 1, and the products alpha^2.
    std::size_t alpha() const noexcept { return m + r - 1; }
    std::size_t products() const noexcept { return alpha() * alpha(); }
    std::size_t tiles() const noexcept { return th * tw; }
    std::size_t pitch() const noexcept { return tw + (r - 1) / 2; }
    std::size_t phase_plane() const noexcept { return (th + (r - 1) / 2) * pitch(); }
};

/// The grid of `g` for m x m tiles; a 5x5 kernel takes 2 x 2 tiles whatever `m` (F(4, 5) would
/// need input tiles of 8 and points whose powers lose a float's precision).
inline winograd_grid winograd_tiles(const conv_geometry& g, std::size_t m) noexcept
{
    const std::size_t r = g.kernel[0];
    if (r != 3)
    {
        m = 2;
    }
    const conv_geometry p = winograd_phase_geometry(g);
    return {m, r, (p.out_h() + m - 1) / m, (p.out_w() + m - 1) / m, g.dilation[0] * g.dilation[1]};
}

/// Elements of the transformed input and output of one chunk: 1 MB of floats, so that they stay
/// in L2 between the transforms and the GEMMs (with 4 MB, a network of a few such layers went
/// through memory: each layer's buffers were cold at every call).
constexpr std::size_t winograd_chunk_elements = std::size_t(1) << 18;
/// Tiles of a chunk at least, whatever its size: the GEMMs' N, below which packing U for each
/// of the products' GEMMs costs more than the cache misses a larger chunk takes.
constexpr std::size_t winograd_chunk_tiles = 256;

/// The output tile of `g`: 4 x 4 where its GEMMs take at most 5/8 of the 2 x 2 tiles' products
/// (9/16 on a plane of 3, 4, 7, 8, 11, 12, 16 or 28 rows and columns; not 14, where the 4 x 4
/// tiles cover 16 and take 0.73, nor 6 or 10) and the batch has a chunk's worth of them
/// (`winograd_chunk_tiles`), else 2 x 2. Per product the larger tile's transforms cost more (its
/// unfold writes each input value 2.25 times), and its kernel transform and the packing of U, per
/// chunk, cost 36 / 16 times more, paid back only over enough tiles: a single 16 x 16 image ran
/// twice as long, 64 images of 4 x 4 at two threads 1.5 times (docs/performance.md).
inline std::size_t winograd_tile_size(const conv_geometry& g) noexcept
{
    if (g.kernel[0] != 3)
    {
        return 2;
    }
    const auto products = [&](std::size_t m)
    {
        const winograd_grid grid = winograd_tiles(g, m);
        return grid.products() * grid.tiles();
    };
    const std::size_t images = winograd_phase_geometry(g).batch;
    return 8 * products(4) <= 5 * products(2) && images * winograd_tiles(g, 4).tiles() >= winograd_chunk_tiles ? 4 : 2;
}

inline winograd_grid winograd_tiles(const conv_geometry& g) noexcept
{
    return winograd_tiles(g, winograd_tile_size(g));
}

/// Images per chunk of `g` on `grid` (images of its phases' convolution): as many as keep the
/// transformed input and output, alpha^2 (C_in + C_out) values per tile, within
/// `winograd_chunk_elements`, but enough for `winograd_chunk_tiles`; at least one of the layer's
/// images, and whole ones (all of an image's dilation phases).
inline std::size_t winograd_chunk(const conv_geometry& g, const winograd_grid& grid) noexcept
{
    const std::size_t tiles = std::max<std::size_t>(1, grid.tiles());
    const std::size_t per_image = grid.products() * (g.in_channels + g.out_channels) * tiles * grid.phases;
    const std::size_t images = std::max(winograd_chunk_elements / std::max<std::size_t>(per_image, 1),
                                        (winograd_chunk_tiles + tiles * grid.phases - 1) / (tiles * grid.phases));
    return grid.phases * std::max<std::size_t>(1, std::min(g.batch, images));
}

/// The distance between two products xi of a chunk's transformed tiles, `rows` (C_in or C_out)
/// rows of `pitch` each: a cache line more than the rows, since rows a multiple of 4 KB apart
/// (C_in times 256 tiles is one for every C_in a multiple of 4) fall into the same L1 sets, and the
/// transforms, which write or read the alpha^2 products of each vector of tiles, evicted their
/// own lines on every store.
inline std::size_t winograd_product_stride(std::size_t rows, std::size_t pitch) noexcept
{
    return rows * pitch + 16;
}

/// Elements of a thread's unfolded tiles: 16 KB of floats, within L1 between the unfold and the
/// transform (unfolded straight into V, whose rows lie C_in times a chunk's tiles apart, often a
/// multiple of 4 KB, every 16-byte store of the unfold went to a line the other rows had evicted).
constexpr std::size_t winograd_unfold_elements = 4096;

/// Images unfolded together: as many as `winograd_unfold_elements` holds, at least one, so that
/// the transform's vectors run on from one small plane's tiles into the next's.
inline std::size_t winograd_unfold_images(const winograd_grid& grid) noexcept
{
    return std::max<std::size_t>(1,
                                 winograd_unfold_elements / std::max<std::size_t>(1, grid.products() * grid.tiles()));
}

/// What one thread of the Winograd form works in.
template <class T>
struct winograd_thread_buffers
{
    /// 2 x 2 tiles: the four phases of a chunk's padded input planes of one channel, side by side,
    /// with a vector of slack.
    conv_buffer<T> phases;
    /// 4 x 4 tiles: the tiles of a few images of one channel, unfolded (`winograd_unfold_images`).
    conv_buffer<T> unfolded;
    /// The m^2 phases of a chunk's output planes of one channel.
    conv_buffer<T> outputs;
    /// The chunk this thread runs: V (alpha^2, C_in, chunk tiles), and M (alpha^2, C_out, chunk
    /// tiles) or, for dW, dY's transformed tiles (alpha^2, C_out, chunk tiles); the products
    /// `winograd_product_stride` apart.
    conv_buffer<T> input, product;
    /// dW: a chunk's share of dU, added to its part's sum.
    conv_buffer<T> chunk_kernel_grad;
    /// A dilated layer: the dilation phases of one plane of the input or of dY and its column
    /// phases on the way (`split_dilation_phases`), and the output planes of a chunk's phases of
    /// one channel before they are merged.
    conv_buffer<T> plane_phases, column_phases, phase_outputs;
};

/// What the Winograd form keeps between calls, so a steady shape allocates nothing.
template <class T>
struct winograd_workspace
{
    /// U (alpha^2, C_out, C_in).
    conv_buffer<T> kernel;
    /// dX's pass: the kernel rotated and transposed (C_in, C_out, r, r), and dY padded.
    conv_buffer<T> rotated, padded_grad;
    /// dW's pass: the gradient of U (alpha^2, C_out, C_in), one sum per part of the batch.
    conv_buffer<T> kernel_grad;
    std::vector<winograd_thread_buffers<T>> threads;
    /// 2 x 2 tiles: lanes of each vector of the phase grid that hold a tile.
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
/// count. Up to 8 parts and 2^20 elements of copies (a 256 x 256 layer's dU has 2^20 for 2 x 2
/// tiles: one part, whose chunks' products the threads then share).
inline std::size_t winograd_weight_grad_parts(const conv_geometry& g, const winograd_grid& grid)
{
    const std::size_t chunk = winograd_chunk(g, grid), images = g.batch * grid.phases;
    const std::size_t chunks = (images + chunk - 1) / chunk;
    const std::size_t copy = grid.products() * g.out_channels * g.in_channels;
    const std::size_t fit = (std::size_t(1) << 20) / std::max<std::size_t>(copy, 1);
    return std::max<std::size_t>(1, std::min({chunks, std::size_t(8), fit}));
}

/// The one-dimensional transforms of F(m, r), on scalars or on vectors V: `input` B^T d,
/// `output` A^T e, `kernel` G g, `grad` A y (dY's tiles, for dW) and `kernel_grad` G^T e (dU back
/// to dW). Written out, so that each costs the adds and multiplies its zeros and ones leave.
template <std::size_t M, std::size_t R>
struct winograd_transforms;

/// F(2, 3) on the points 0, 1, -1 and infinity: B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
/// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], A^T = [1 1 1 0; 0 1 -1 -1].
template <>
struct winograd_transforms<2, 3>
{
    static constexpr std::size_t m = 2, r = 3, alpha = 4;

    template <class V>
    static void input(const V (&d)[4], V (&out)[4])
    {
        out[0] = d[0] - d[2];
        out[1] = d[1] + d[2];
        out[2] = d[2] - d[1];
        out[3] = d[1] - d[3];
    }
    template <class V>
    static void output(const V (&e)[4], V (&out)[2])
    {
        out[0] = e[0] + e[1] + e[2];
        out[1] = e[1] - e[2] - e[3];
    }
    template <class V>
    static void kernel(const V (&g)[3], V (&out)[4])
    {
        using S = decltype(g[0] + g[0]);
        out[0] = g[0];
        out[1] = (g[0] + g[1] + g[2]) * S(0.5);
        out[2] = (g[0] - g[1] + g[2]) * S(0.5);
        out[3] = g[2];
    }
    template <class V>
    static void grad(const V (&y)[2], V (&out)[4])
    {
        out[0] = y[0];
        out[1] = y[0] + y[1];
        out[2] = y[0] - y[1];
        out[3] = -y[1];
    }
    template <class V>
    static void kernel_grad(const V (&e)[4], V (&out)[3])
    {
        using S = decltype(e[0] + e[0]);
        out[0] = e[0] + S(0.5) * (e[1] + e[2]);
        out[1] = S(0.5) * (e[1] - e[2]);
        out[2] = S(0.5) * (e[1] + e[2]) + e[3];
    }
};

/// F(4, 3) on the points 0, 1, -1, 2, -2 and infinity: B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0;
/// 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1], G = [1/4 0 0; -1/6 -1/6 -1/6;
/// -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1], A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0;
/// 0 1 1 4 4 0; 0 1 -1 8 -8 1].
template <>
struct winograd_transforms<4, 3>
{
    static constexpr std::size_t m = 4, r = 3, alpha = 6;

    template <class V>
    static void input(const V (&d)[6], V (&out)[6])
    {
        using S = decltype(d[0] + d[0]);
        const V a = d[4] - S(4) * d[2], b = d[3] - S(4) * d[1];
        const V c = d[4] - d[2], e = S(2) * (d[3] - d[1]);
        out[0] = d[4] + S(4) * d[0] - S(5) * d[2];
        out[1] = a + b;
        out[2] = a - b;
        out[3] = c + e;
        out[4] = c - e;
        out[5] = d[5] + S(4) * d[1] - S(5) * d[3];
    }
    template <class V>
    static void output(const V (&e)[6], V (&out)[4])
    {
        using S = decltype(e[0] + e[0]);
        const V s1 = e[1] + e[2], t1 = e[1] - e[2], s2 = e[3] + e[4], t2 = e[3] - e[4];
        out[0] = e[0] + s1 + s2;
        out[1] = t1 + S(2) * t2;
        out[2] = s1 + S(4) * s2;
        out[3] = t1 + S(8) * t2 + e[5];
    }
    template <class V>
    static void kernel(const V (&g)[3], V (&out)[6])
    {
        using S = decltype(g[0] + g[0]);
        const V outer = g[0] + g[2], near = g[0] * S(1.0 / 24) + g[2] * S(1.0 / 6), odd = g[1] * S(1.0 / 12);
        out[0] = g[0] * S(0.25);
        out[1] = (outer + g[1]) * S(-1.0 / 6);
        out[2] = (outer - g[1]) * S(-1.0 / 6);
        out[3] = near + odd;
        out[4] = near - odd;
        out[5] = g[2];
    }
    template <class V>
    static void grad(const V (&y)[4], V (&out)[6])
    {
        using S = decltype(y[0] + y[0]);
        const V s1 = y[0] + y[2], t1 = y[1] + y[3];
        const V s2 = y[0] + S(4) * y[2], t2 = S(2) * y[1] + S(8) * y[3];
        out[0] = y[0];
        out[1] = s1 + t1;
        out[2] = s1 - t1;
        out[3] = s2 + t2;
        out[4] = s2 - t2;
        out[5] = y[3];
    }
    template <class V>
    static void kernel_grad(const V (&e)[6], V (&out)[3])
    {
        using S = decltype(e[0] + e[0]);
        const V s1 = e[1] + e[2], t1 = e[2] - e[1], s2 = e[3] + e[4], t2 = e[3] - e[4];
        out[0] = e[0] * S(0.25) - s1 * S(1.0 / 6) + s2 * S(1.0 / 24);
        out[1] = t1 * S(1.0 / 6) + t2 * S(1.0 / 12);
        out[2] = (s2 - s1) * S(1.0 / 6) + e[5];
    }
};

/// F(2, 5) on the points of F(4, 3), whose input transform B^T it shares (B^T depends on the
/// points only): G = [1/4 0 0 0 0; -1/6 -1/6 -1/6 -1/6 -1/6; -1/6 1/6 -1/6 1/6 -1/6;
/// 1/24 1/12 1/6 1/3 2/3; 1/24 -1/12 1/6 -1/3 2/3; 0 0 0 0 1], A^T = [1 1 1 1 1 0;
/// 0 1 -1 2 -2 1]: 36 products for 2 x 2 outputs where the windows take 100.
template <>
struct winograd_transforms<2, 5>
{
    static constexpr std::size_t m = 2, r = 5, alpha = 6;

    template <class V>
    static void input(const V (&d)[6], V (&out)[6])
    {
        winograd_transforms<4, 3>::input(d, out);
    }
    template <class V>
    static void output(const V (&e)[6], V (&out)[2])
    {
        using S = decltype(e[0] + e[0]);
        const V s1 = e[1] + e[2], s2 = e[3] + e[4];
        out[0] = e[0] + s1 + s2;
        out[1] = e[1] - e[2] + S(2) * (e[3] - e[4]) + e[5];
    }
    template <class V>
    static void kernel(const V (&g)[5], V (&out)[6])
    {
        using S = decltype(g[0] + g[0]);
        const V even = g[0] + g[2] + g[4], odd = g[1] + g[3];
        const V even2 = g[0] * S(1.0 / 24) + g[2] * S(1.0 / 6) + g[4] * S(2.0 / 3);
        const V odd2 = g[1] * S(1.0 / 12) + g[3] * S(1.0 / 3);
        out[0] = g[0] * S(0.25);
        out[1] = (even + odd) * S(-1.0 / 6);
        out[2] = (even - odd) * S(-1.0 / 6);
        out[3] = even2 + odd2;
        out[4] = even2 - odd2;
        out[5] = g[4];
    }
    template <class V>
    static void grad(const V (&y)[2], V (&out)[6])
    {
        using S = decltype(y[0] + y[0]);
        out[0] = y[0];
        out[1] = y[0] + y[1];
        out[2] = y[0] - y[1];
        out[3] = y[0] + S(2) * y[1];
        out[4] = y[0] - S(2) * y[1];
        out[5] = y[1];
    }
    template <class V>
    static void kernel_grad(const V (&e)[6], V (&out)[5])
    {
        using S = decltype(e[0] + e[0]);
        // G^T e: column k of G holds (-1/6)(1, (-1)^k) and (1/24) 2^k (1, (-2)^k) at points 1, -1,
        // 2 and -2.
        const V s1 = e[1] + e[2], t1 = e[1] - e[2], s2 = e[3] + e[4], t2 = e[3] - e[4];
        out[0] = e[0] * S(0.25) - s1 * S(1.0 / 6) + s2 * S(1.0 / 24);
        out[1] = t1 * S(-1.0 / 6) + t2 * S(1.0 / 12);
        out[2] = s1 * S(-1.0 / 6) + s2 * S(1.0 / 6);
        out[3] = t1 * S(-1.0 / 6) + t2 * S(1.0 / 3);
        out[4] = s1 * S(-1.0 / 6) + s2 * S(2.0 / 3) + e[5];
    }
};

/// Runs `body(winograd_transforms<2, r>{})` for the kernel of `grid`, whose tiles are 2 x 2 (the
/// passes over stride-2 phases, which only those tiles read).
template <class F>
void with_winograd_pair_tile(const winograd_grid& grid, F&& body)
{
    if (grid.r == 5)
    {
        body(winograd_transforms<2, 5>{});
    }
    else
    {
        body(winograd_transforms<2, 3>{});
    }
}

/// Runs `body(winograd_transforms<m, r>{})` for the tiles and kernel of `grid`.
template <class F>
void with_winograd_tile(const winograd_grid& grid, F&& body)
{
    if (grid.m == 4)
    {
        body(winograd_transforms<4, 3>{});
    }
    else
    {
        with_winograd_pair_tile(grid, std::forward<F>(body));
    }
}

/// u = G g G^T for an r x r kernel g (g[k] = row k / r, column k % r), u[i alpha + c] its row i,
/// column c; for scalars or for vectors of S kernels.
template <class F, class V>
XCNN_ALWAYS_INLINE void winograd_kernel_tile(const V (&g)[F::r * F::r], V (&u)[F::alpha * F::alpha])
{
    constexpr std::size_t A = F::alpha, R = F::r;
    V t[A][R];
    for (std::size_t col = 0; col < R; ++col)
    {
        V column[R];
        for (std::size_t k = 0; k < R; ++k)
        {
            column[k] = g[k * R + col];
        }
        V out[A];
        F::kernel(column, out);
        for (std::size_t r = 0; r < A; ++r)
        {
            t[r][col] = out[r];
        }
    }
    for (std::size_t row = 0; row < A; ++row)
    {
        V out[A];
        F::kernel(t[row], out);
        for (std::size_t c = 0; c < A; ++c)
        {
            u[row * A + c] = out[c];
        }
    }
}

/// U[xi][o][c] = (G g G^T)[xi] for the r x r kernel g = weight[o][c]: S kernels at a time, gathered
/// into vectors, so that each store writes a whole vector of one U[xi] (the rows of U lie
/// C_out C_in apart, often a multiple of 4 KB, and a kernel at a time would write them one
/// element at a time into the same cache sets); the vectors of kernels shared between the threads
/// (with 4 x 4 tiles, a 256 x 128 layer's transform on one thread took a quarter of its forward
/// pass at two).
template <class F, class T>
void winograd_kernel_transform(std::size_t c_out, std::size_t c_in, const T* weight, T* u)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size, P = F::alpha * F::alpha, K = F::r * F::r;
    const std::size_t planes = c_out * c_in;
    alignas(64) gather_index<T> index[S];
    for (std::size_t l = 0; l < S; ++l)
    {
        index[l] = static_cast<gather_index<T>>(K * l);
    }
    parallel_for_items((planes + S - 1) / S, (K + P) * S,
                       [&](std::size_t begin, std::size_t end, std::size_t)
                       {
                           for (std::size_t block = begin; block < end; ++block)
                           {
                               const std::size_t p = block * S;
                               if (p + S <= planes)
                               {
                                   batch g[K], out[P];
                                   for (std::size_t k = 0; k < K; ++k)
                                   {
                                       g[k] = gather(weight + p * K + k, index);
                                   }
                                   winograd_kernel_tile<F>(g, out);
                                   for (std::size_t xi = 0; xi < P; ++xi)
                                   {
                                       out[xi].store_unaligned(u + xi * planes + p);
                                   }
                                   continue;
                               }
                               for (std::size_t q = p; q < planes; ++q)
                               {
                                   T g[K], out[P];
                                   std::copy(weight + q * K, weight + q * K + K, g);
                                   winograd_kernel_tile<F>(g, out);
                                   for (std::size_t xi = 0; xi < P; ++xi)
                                   {
                                       u[xi * planes + q] = out[xi];
                                   }
                               }
                           }
                       });
}

/// The 4 x 4 transpose of a vector of 16 floats as lane indices: lane 4 b + j <- lane 4 j + b,
/// so that four values of each stride-4 phase of a row come out in one 128-bit lane (and back).
#if XSIMD_WITH_AVX512F
inline __m512i quad_transpose_index() noexcept
{
    return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}
#endif

/// out[0, count) from M phases, out[x] = phase x % M at x / M, phase b at `phases` + b `step`:
/// the stride-m phases of a row interleaved back.
template <std::size_t M, class T>
void winograd_gather_row(const T* phases, std::size_t step, std::size_t count, T* out)
{
    static_assert(M == 2 || M == 4, "F(2, 3) and F(4, 3) only");
    if constexpr (M == 2)
    {
        interleave_pairs(phases, phases + step, count / 2, out);
        if (count % 2 != 0)
        {
            out[count - 1] = phases[count / 2];
        }
        return;
    }
    std::size_t x = 0;
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value)
    {
        const __m512i index = quad_transpose_index();
        for (; x < count; x += 16)
        {
            const std::size_t n = std::min<std::size_t>(16, count - x), j = x / 4;
            // Phase b holds ceil((n - b) / 4) of this piece's values.
            const auto lanes = [n](std::size_t b)
            {
                return static_cast<__mmask8>(first_lanes((n + 3 - b) / 4));
            };
            __m512 v = _mm512_castps128_ps512(_mm_maskz_loadu_ps(lanes(0), phases + j));
            v = _mm512_insertf32x4(v, _mm_maskz_loadu_ps(lanes(1), phases + step + j), 1);
            v = _mm512_insertf32x4(v, _mm_maskz_loadu_ps(lanes(2), phases + 2 * step + j), 2);
            v = _mm512_insertf32x4(v, _mm_maskz_loadu_ps(lanes(3), phases + 3 * step + j), 3);
            _mm512_mask_storeu_ps(out + x, static_cast<__mmask16>(first_lanes(n)), _mm512_permutexvar_ps(index, v));
        }
    }
#endif
    for (; x < count; ++x)
    {
        out[x] = phases[(x % 4) * step + x / 4];
    }
}

/// 2 x 2 tiles: the four stride-2 phases of the padded plane `padded` (Hp, Wp) into `phases`, each
/// (TH + 1) x (TW + 1), phase (rho, gamma) at (2 rho + gamma) times `phase_step`; zeros where a phase has a
/// row or column more than the plane (Hp or Wp odd), so that no value of an earlier plane is left.
template <class T>
void winograd_split_pairs(const conv_geometry& g, const winograd_grid& grid, const T* padded, T* phases,
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

/// The distance between two dilation phases of a plane in `split_dilation_phases`' output: a
/// phase and a vector of slack, which its rows' whole-vector copies write into.
template <class T>
std::size_t dilation_phase_stride(std::size_t rows, std::size_t cols, std::size_t dh, std::size_t dw) noexcept
{
    return ((rows + dh - 1) / dh) * ((cols + dw - 1) / dw) + xsimd::batch<T>::size;
}

/// The DH DW dilation phases of the plane `src` (rows x cols) into `out`, each (ceil(rows / DH),
/// ceil(cols / DW)), phase (p, q) at (p DW + q) `dilation_phase_stride`: out[i][j] = src[i DH +
/// p][j DW + q], zeros past the plane; with `mask` (laid out like src, or null), a value passes
/// where the mask is positive. `columns` (DW (rows + 1) (ceil(cols / DW) + a vector) elements)
/// holds the plane's column phases on the way: for DW = 2 and an even width, the whole plane is
/// one run of pairs, split by whole vectors (a row of a small plane is a fraction of one, and
/// masked stores at every row's end cost more than the split), and each phase's rows are then
/// copied by whole vectors, their excess overwritten by the next row or left in the slack.
template <class T>
void split_dilation_phases(const T* src, const T* mask, std::size_t rows, std::size_t cols, std::size_t dh,
                           std::size_t dw, T* out, T* columns)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const std::size_t out_rows = (rows + dh - 1) / dh, out_cols = (cols + dw - 1) / dw;
    const std::size_t step = dilation_phase_stride<T>(rows, cols, dh, dw);
    // Column phase q: `rows` rows of out_cols, at q (rows + 1) out_cols (a spare row of slack).
    const std::size_t column_plane = (rows + 1) * out_cols + S;
    if (dw == 2 && cols % 2 == 0)
    {
        const std::size_t pairs = rows * cols / 2;
        if (mask == nullptr)
        {
            deinterleave_pairs(src, pairs, columns, columns + column_plane);
        }
        else
        {
            // Through the mask a piece at a time, in the slack of the second column phase.
            T* piece = columns + 2 * column_plane;
            for (std::size_t x = 0; x < 2 * pairs; x += 256)
            {
                const std::size_t count = std::min<std::size_t>(256, 2 * pairs - x);
                copy_short_masked(src + x, mask + x, count, piece);
                deinterleave_pairs(piece, count / 2, columns + x / 2, columns + column_plane + x / 2);
            }
        }
    }
    else
    {
        for (std::size_t y = 0; y < rows; ++y)
        {
            for (std::size_t q = 0; q < dw; ++q)
            {
                const std::size_t count = cols > q ? (cols - q + dw - 1) / dw : 0;
                T* to = columns + q * column_plane + y * out_cols;
                for (std::size_t j = 0; j < count; ++j)
                {
                    const std::size_t x = j * dw + q;
                    to[j] = mask == nullptr || mask[y * cols + x] > T(0) ? src[y * cols + x] : T(0);
                }
                std::fill(to + count, to + out_cols, T(0));
            }
        }
    }
    for (std::size_t p = 0; p < dh; ++p)
    {
        for (std::size_t q = 0; q < dw; ++q)
        {
            T* to = out + (p * dw + q) * step;
            const T* from = columns + q * column_plane;
            for (std::size_t i = 0; i < out_rows; ++i)
            {
                const std::size_t y = i * dh + p;
                for (std::size_t j = 0; j < out_cols; j += S)
                {
                    const batch values = y < rows ? batch::load_unaligned(from + y * out_cols + j) : batch(T(0));
                    values.store_unaligned(to + i * out_cols + j);
                }
            }
        }
    }
}

/// The plane `dst` (rows x cols) from its DH DW dilation phases laid out as
/// `split_dilation_phases` writes them: the phases' positions past the plane are dropped.
template <class T>
void merge_dilation_phases(const T* src, std::size_t rows, std::size_t cols, std::size_t dh, std::size_t dw, T* dst)
{
    const std::size_t out_rows = (rows + dh - 1) / dh, out_cols = (cols + dw - 1) / dw, plane = out_rows * out_cols;
    for (std::size_t y = 0; y < rows; ++y)
    {
        const T* from = src + (y % dh) * dw * plane + y / dh * out_cols;
        T* to = dst + y * cols;
        if (dw == 2)
        {
            interleave_pairs(from, from + plane, cols / 2, to);
            if (cols % 2 != 0)
            {
                to[cols - 1] = from[cols / 2];
            }
            continue;
        }
        for (std::size_t q = 0; q < dw; ++q)
        {
            const std::size_t count = cols > q ? (cols - q + dw - 1) / dw : 0;
            scatter_strided(from + q * plane, dw, count, to + q);
        }
    }
}

/// Channel c of the Winograd form's image `image` from `planes` (N, C, rows, cols), the layer's
/// input or dY: for an undilated `g`, plane (image, c); for a dilated one, phase image mod DH DW
/// of plane (image / DH DW, c), all of whose phases are split into `buffer` at its first phase or
/// when `refresh` (`columns` holds their column phases on the way). `mask` (laid out like
/// `planes`, or null) passes a value where it is positive, for dilated layers only (the undilated
/// passes read it with the plane).
template <class T>
const T* winograd_image_plane(const conv_geometry& g, const T* planes, const T* mask, std::size_t channels,
                              std::size_t c, std::size_t rows, std::size_t cols, std::size_t image, bool refresh,
                              T* buffer, T* columns)
{
    const std::size_t dh = g.dilation[0], dw = g.dilation[1], phases = dh * dw, plane = rows * cols;
    if (phases == 1)
    {
        return planes + (image * channels + c) * plane;
    }
    const std::size_t n = image / phases, f = image % phases;
    if (f == 0 || refresh)
    {
        const std::size_t at = (n * channels + c) * plane;
        split_dilation_phases(planes + at, mask == nullptr ? nullptr : mask + at, rows, cols, dh, dw, buffer, columns);
    }
    return buffer + f * dilation_phase_stride<T>(rows, cols, dh, dw);
}

/// 2 x 2 tiles: V[xi][c][k] for the k-th tile of `images` input planes whose phases are `phases`
/// (phase f of image i at (f images + i) phase planes), image i's tiles from k = i TH TW: B^T d B
/// (F's `input`).
/// `stride` is the distance between two xi of V (C_in times the chunk's tiles). The grid positions
/// run on from one image's phase plane into the next, so that a vector holds the tiles of several
/// small planes.
template <class F, class T>
void winograd_phase_tiles(const winograd_grid& grid, std::size_t images, const std::uint32_t* tile_lanes,
                          const T* phases, T* v, std::size_t stride)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size, A = F::alpha;
    const std::size_t pitch = grid.pitch(), step = images * grid.phase_plane();
    // The last image's bottom rows of positions hold no tile (nor do the others', masked off).
    const std::size_t positions = step - grid.phase_plane() + grid.th * pitch;
    const T* phase[4] = {phases, phases + step, phases + 2 * step, phases + 3 * step};
    std::size_t stored = 0;
    for (std::size_t q = 0, vector = 0; q < positions; q += S, ++vector)
    {
        // d[r][c] of the S tiles at grid positions q, q + 1, ...
        batch t[A][A];
        for (std::size_t c = 0; c < A; ++c)
        {
            batch d[A], values[A];
            for (std::size_t r = 0; r < A; ++r)
            {
                d[r] = batch::load_unaligned(phase[(r % 2) * 2 + c % 2] + q + r / 2 * pitch + c / 2);
            }
            F::input(d, values);
            for (std::size_t r = 0; r < A; ++r)
            {
                t[r][c] = values[r];
            }
        }
        const std::uint32_t lanes = tile_lanes[vector];
        std::size_t count = 0;
        for (std::size_t r = 0; r < A; ++r)
        {
            batch out[A];
            F::input(t[r], out);
            for (std::size_t c = 0; c < A; ++c)
            {
                count = compress_store(v + (r * A + c) * stride + stored, out[c], lanes);
            }
        }
        stored += count;
    }
}

/// out[t] + c `stride` + j = row[m j + c] for j < `tw`, c < E (m + 2 for the input's tiles, m for
/// dY's) and each of the `targets` (one or two) tile rows that read the row `row` (`count` values;
/// zeros past it); through `mask` (laid out like the row, or null) when given: a value passes
/// where the mask is positive. With AVX-512 and m = 4, a vector of the row's stride-4 phases at a
/// time, stored straight from registers (a phase row stored and read back would wait on every
/// masked store: they do not forward).
template <std::size_t M, std::size_t E, class T>
void winograd_unfold_row(const T* row, const T* mask, std::size_t count, std::size_t tw, T* const* out,
                         std::size_t targets, std::size_t stride)
{
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_same<T, float>::value && M == 4)
    {
        // 16 values of the row: 4 of each stride-4 phase in a 128-bit lane after one permute. Tile
        // j's elements c < 4 are phase c at j, elements 4 and 5 phases 0 and 1 at j + 1: each
        // lane is stored at j and, for those two, one position back.
        const __m512i index = quad_transpose_index();
        const __m512 zero = _mm512_setzero_ps();
        for (std::size_t j0 = 0; j0 <= tw; j0 += 4)
        {
            const std::size_t x = 4 * j0, real = x < count ? std::min<std::size_t>(16, count - x) : 0;
            const auto lanes = static_cast<__mmask16>(first_lanes(real));
            const auto from = static_cast<std::ptrdiff_t>(x);
            __m512 values = _mm512_maskz_loadu_ps(lanes, address_at(row, from));
            if (mask != nullptr)
            {
                const __m512 m = _mm512_maskz_loadu_ps(lanes, address_at(mask, from));
                values = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, zero, _CMP_GT_OQ), values);
            }
            values = _mm512_permutexvar_ps(index, values);
            const __m128 q[4] = {_mm512_extractf32x4_ps(values, 0), _mm512_extractf32x4_ps(values, 1),
                                 _mm512_extractf32x4_ps(values, 2), _mm512_extractf32x4_ps(values, 3)};
            const auto here = static_cast<__mmask8>(j0 < tw ? first_lanes(std::min<std::size_t>(4, tw - j0)) : 0u);
            const auto back =
                static_cast<__mmask8>(first_lanes(std::min<std::size_t>(4, tw + 1 - j0)) & (j0 == 0 ? ~1u : ~0u));
            for (std::size_t t = 0; t < targets; ++t)
            {
                T* at = out[t] + j0;
                for (std::size_t c = 0; c < 4; ++c)
                {
                    _mm_mask_storeu_ps(at + c * stride, here, q[c]);
                }
                if constexpr (E > 4)
                {
                    _mm_mask_storeu_ps(address_at(at + 4 * stride, std::ptrdiff_t(-1)), back, q[0]);
                    _mm_mask_storeu_ps(address_at(at + 5 * stride, std::ptrdiff_t(-1)), back, q[1]);
                }
            }
        }
        return;
    }
#endif
    for (std::size_t t = 0; t < targets; ++t)
    {
        for (std::size_t c = 0; c < E; ++c)
        {
            T* to = out[t] + c * stride;
            for (std::size_t j = 0; j < tw; ++j)
            {
                const std::size_t x = M * j + c;
                to[j] = x < count && (mask == nullptr || mask[x] > T(0)) ? row[x] : T(0);
            }
        }
    }
}

/// Element (r, c) of every m x m tile of the padded plane `padded` (Hp, Wp) into row r (m + 2) + c
/// of `v`, rows `stride` apart: v[(r (m + 2) + c) stride + i TW + j] = padded[m i + r][m j + c],
/// zeros past the plane, so that the transform reads and writes whole vectors of tiles.
template <std::size_t M, class T>
void winograd_unfold(const conv_geometry& g, const winograd_grid& grid, const T* padded, T* v, std::size_t stride)
{
    constexpr std::size_t A = M + 2;
    const std::size_t hp = g.padded_h(), wp = g.padded_w(), th = grid.th, tw = grid.tw;
    for (std::size_t y = 0; y < hp; ++y)
    {
        // Row y is element r = y mod m of tile row y / m, and r = y mod m + m of the row above.
        T* out[2];
        std::size_t targets = 0;
        for (std::size_t above = 0; above < 2 && above <= y / M; ++above)
        {
            const std::size_t r = y % M + above * M, ti = y / M - above;
            if (r < A && ti < th)
            {
                out[targets++] = v + r * A * stride + ti * tw;
            }
        }
        winograd_unfold_row<M, A>(padded + y * wp, static_cast<const T*>(nullptr), wp, tw, out, targets, stride);
    }
    for (std::size_t ti = 0; ti < th; ++ti)
    {
        for (std::size_t r = hp > M * ti ? hp - M * ti : 0; r < A; ++r)
        {
            for (std::size_t c = 0; c < A; ++c)
            {
                T* out = v + (r * A + c) * stride + ti * tw;
                std::fill(out, out + tw, T(0));
            }
        }
    }
}

/// out[(r A + c) `stride` + k] = (P d P^T)[r][c] for the `columns` tiles k whose I x I elements
/// d[a][b] lie at `d` + (a I + b) `d_stride` + k, where P, A x I, is the one-dimensional transform
/// `apply(in[I], out[A])`: a vector of tiles at a time, each element a whole vector, the columns
/// transformed, then the rows.
template <std::size_t I, std::size_t A, class T, class Apply>
void winograd_tile_transform(std::size_t columns, const T* d, std::size_t d_stride, T* out, std::size_t stride,
                             Apply apply)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    for (std::size_t k = 0; k < columns; k += S)
    {
        const std::uint32_t lanes = first_lanes(std::min(S, columns - k));
        const auto at = static_cast<std::ptrdiff_t>(k);
        batch t[A][I];
        for (std::size_t c = 0; c < I; ++c)
        {
            batch column[I], values[A];
            for (std::size_t r = 0; r < I; ++r)
            {
                column[r] = load_masked(d + (r * I + c) * d_stride, at, lanes);
            }
            apply(column, values);
            for (std::size_t r = 0; r < A; ++r)
            {
                t[r][c] = values[r];
            }
        }
        for (std::size_t r = 0; r < A; ++r)
        {
            batch values[A];
            apply(t[r], values);
            for (std::size_t c = 0; c < A; ++c)
            {
                store_masked(out + (r * A + c) * stride, at, values[c], lanes);
            }
        }
    }
}

/// V[xi][k] = (B^T d B)[xi] into `v` (rows `stride` apart) for the `columns` tiles whose elements
/// d `winograd_unfold` laid out in `d` (rows `d_stride` apart).
template <class F, class T>
void winograd_input_tiles(std::size_t columns, const T* d, std::size_t d_stride, T* v, std::size_t stride)
{
    using batch = xsimd::batch<T>;
    winograd_tile_transform<F::alpha, F::alpha>(columns, d, d_stride, v, stride,
                                                [](const batch(&in)[F::alpha], batch(&values)[F::alpha])
                                                { F::input(in, values); });
}

/// The output planes y (OH, OW) of `images` consecutive images, `image_step` apart in y, from
/// M[xi][k] for their tiles (image i's are k = i TH TW ... (i + 1) TH TW - 1): the m x m block
/// A^T e A of each tile, plus `bias`, through ReLU when `relu`; `phases` (m^2 images TH TW
/// elements and a vector) holds the output phases on the way. `stride` is the distance between
/// two xi of M. The transform runs along all the images' tiles in whole vectors: a plane at a
/// time, a small plane's tiles filled a fraction of one (a 4 x 4 output is 4 tiles of 2 x 2).
template <class F, class T>
void winograd_output_tiles(const conv_geometry& g, const winograd_grid& grid, const T* m, std::size_t stride,
                           std::size_t images, T bias, bool relu, T* phases, T* y, std::size_t image_step)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size, A = F::alpha, M = F::m;
    const std::size_t tiles = grid.tiles(), columns = images * tiles;
    for (std::size_t k = 0; k < columns; k += S)
    {
        const std::uint32_t lanes = first_lanes(std::min(S, columns - k));
        batch s[M][A];
        for (std::size_t c = 0; c < A; ++c)
        {
            batch e[A], out[M];
            for (std::size_t r = 0; r < A; ++r)
            {
                e[r] = load_masked(m + (r * A + c) * stride, static_cast<std::ptrdiff_t>(k), lanes);
            }
            F::output(e, out);
            for (std::size_t a = 0; a < M; ++a)
            {
                s[a][c] = out[a];
            }
        }
        for (std::size_t a = 0; a < M; ++a)
        {
            batch out[M];
            F::output(s[a], out);
            for (std::size_t b = 0; b < M; ++b)
            {
                out[b] = out[b] + batch(bias);
                if (relu)
                {
                    out[b] = xsimd::max(out[b], batch(T(0)));
                }
                store_masked(phases + (a * M + b) * columns + k, out[b], lanes);
            }
        }
    }
    const std::size_t oh = g.out_h(), ow = g.out_w(), tw = grid.tw;
    for (std::size_t i = 0; i < images; ++i)
    {
        for (std::size_t row = 0; row < oh; ++row)
        {
            const T* first = phases + (row % M) * M * columns + i * tiles + row / M * tw;
            winograd_gather_row<M>(first, columns, ow, y + i * image_step + row * ow);
        }
    }
}

/// Sizes the buffers for `g` on `grid` (they only grow) and the offset tables of the forward
/// products, whose V and M rows lie a whole chunk's tiles apart whatever the chunk's images; for
/// 2 x 2 tiles, fills the lanes of the phase grid that hold a tile.
template <class T>
void prepare_winograd(const conv_geometry& g, const winograd_grid& grid, winograd_workspace<T>& ws,
                      gemm_workspace<T>& gemm_ws)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, products = grid.products();
    const std::size_t chunk = winograd_chunk(g, grid), tiles = grid.tiles(), pitch = chunk * tiles;
    const std::size_t phases = grid.m * grid.m;
    grow_to(ws.kernel, products * c_out * c_in);
    const std::size_t workers = get_num_threads();
    gemm_ws.reserve_threads(workers);
    if (ws.threads.size() < workers)
    {
        ws.threads.resize(workers);
    }
    for (auto& t : ws.threads)
    {
        if (grid.m == 2)
        {
            // Slack past the last phase: a vector, and the (r - 1) / 2 columns a tile reads past
            // its own position.
            grow_to(t.phases, 4 * chunk * grid.phase_plane() + 2 * S);
        }
        else
        {
            grow_to(t.unfolded, grid.products() * winograd_unfold_images(grid) * tiles + S);
        }
        grow_to(t.outputs, phases * pitch + S);
        grow_to(t.input, products * winograd_product_stride(c_in, pitch));
        grow_to(t.product, products * winograd_product_stride(c_out, pitch));
        if (grid.phases > 1)
        {
            // A plane's dilation phases: the padded input's, which hold at least as many as dY's.
            const conv_geometry p = winograd_phase_geometry(g);
            const std::size_t hp = g.padded_h(), wp = g.padded_w();
            grow_to(t.plane_phases, grid.phases * dilation_phase_stride<T>(hp, wp, g.dilation[0], g.dilation[1]));
            grow_to(t.column_phases, g.dilation[1] * ((hp + 1) * p.padded_w() + S) + 256);
            grow_to(t.phase_outputs, chunk * p.out_h() * p.out_w());
        }
    }
    if (grid.m == 2)
    {
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

/// V (alpha^2, C_in, chunk tiles) in `v`, rows `pitch` apart, for images [n0, n1) of `padded`:
/// plane (n, c) fills columns [(n - n0) tiles, ...) of row c of every V[xi]. A channel's planes
/// are unfolded a few side by side (`winograd_unfold_images`) and transformed together.
template <class T>
void winograd_transform_input(const conv_geometry& g, const winograd_grid& grid, const T* padded, std::size_t n0,
                              std::size_t n1, T* v, std::size_t pitch, bool shared, std::size_t own,
                              winograd_workspace<T>& ws)
{
    const conv_geometry p = winograd_phase_geometry(g);
    const std::size_t c_in = g.in_channels, hp = g.padded_h(), wp = g.padded_w(), images = n1 - n0;
    const std::size_t tiles = grid.tiles(), group = winograd_unfold_images(grid), group_pitch = group * tiles;
    // The plane of image n0 + i, channel c.
    const auto plane_of = [&](std::size_t worker, std::size_t c, std::size_t i)
    {
        winograd_thread_buffers<T>& mine = ws.threads[worker];
        return winograd_image_plane(g, padded, static_cast<const T*>(nullptr), c_in, c, hp, wp, n0 + i, i == 0,
                                    mine.plane_phases.data(), mine.column_phases.data());
    };
    if (grid.m == 2)
    {
        const std::size_t plane = grid.phase_plane();
        winograd_items(shared, own, c_in, 16 * tiles * images,
                       [&](std::size_t begin, std::size_t end, std::size_t worker)
                       {
                           T* phases = ws.threads[worker].phases.data();
                           with_winograd_pair_tile(grid,
                                                   [&](auto tile)
                                                   {
                                                       for (std::size_t c = begin; c < end; ++c)
                                                       {
                                                           for (std::size_t i = 0; i < images; ++i)
                                                           {
                                                               winograd_split_pairs(p, grid, plane_of(worker, c, i),
                                                                                    phases + i * plane, images * plane);
                                                           }
                                                           winograd_phase_tiles<decltype(tile)>(
                                                               grid, images, ws.tile_lanes.data(), phases,
                                                               v + c * pitch, winograd_product_stride(c_in, pitch));
                                                       }
                                                   });
                       });
        return;
    }
    winograd_items(shared, own, c_in, grid.products() * tiles * images,
                   [&](std::size_t begin, std::size_t end, std::size_t worker)
                   {
                       T* unfolded = ws.threads[worker].unfolded.data();
                       for (std::size_t c = begin; c < end; ++c)
                       {
                           for (std::size_t i0 = 0; i0 < images; i0 += group)
                           {
                               const std::size_t i1 = std::min(images, i0 + group);
                               for (std::size_t i = i0; i < i1; ++i)
                               {
                                   winograd_unfold<4>(p, grid, plane_of(worker, c, i), unfolded + (i - i0) * tiles,
                                                      group_pitch);
                               }
                               winograd_input_tiles<winograd_transforms<4, 3>>((i1 - i0) * tiles, unfolded, group_pitch,
                                                                               v + c * pitch + i0 * tiles,
                                                                               winograd_product_stride(c_in, pitch));
                           }
                       }
                   });
}

/// The forward pass of the form's images [first, last) (whole images of the layer), chunk by
/// chunk in worker `own`'s chunk buffers, the threads sharing each chunk's transforms and products
/// when `shared`.
template <class T>
void winograd_forward_images(const conv_geometry& g, const winograd_grid& grid, const T* bias, const T* padded, T* y,
                             bool relu, std::size_t first, std::size_t last, bool shared, std::size_t own,
                             winograd_workspace<T>& ws, gemm_workspace<T>& gemm_ws)
{
    const conv_geometry p = winograd_phase_geometry(g);
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, chunk = winograd_chunk(g, grid);
    const std::size_t tiles = grid.tiles(), pitch = chunk * tiles, out_plane = g.out_h() * g.out_w();
    const std::size_t phase_plane = p.out_h() * p.out_w();
    const std::size_t count = grid.products();
    const T* u = ws.kernel.data();
    T* v = ws.threads[own].input.data();
    T* m = ws.threads[own].product.data();
    const gemm_batch_strides products{count, static_cast<std::ptrdiff_t>(c_out * c_in),
                                      static_cast<std::ptrdiff_t>(winograd_product_stride(c_in, pitch)),
                                      static_cast<std::ptrdiff_t>(winograd_product_stride(c_out, pitch))};
    const offset_matrix<const T> a{u, ws.a_rows.data(), ws.a_cols.data()};
    const offset_matrix<const T> b{v, ws.b_rows.data(), ws.b_cols.data()};
    const offset_matrix<T> c{m, ws.c_rows.data(), ws.c_cols.data()};
    for (std::size_t n0 = first; n0 < last; n0 += chunk)
    {
        const std::size_t n1 = std::min(last, n0 + chunk), cols = (n1 - n0) * tiles;
        winograd_transform_input(g, grid, padded, n0, n1, v, pitch, shared, own, ws);
        if (shared)
        {
            gemm_batch<T>(c_out, cols, c_in, a, b, c, {}, gemm_ws, products);
        }
        else
        {
            gemm_batch_serial<T>(c_out, cols, c_in, a, b, c, {}, gemm_ws.threads[own], products, 0, count);
        }
        winograd_items(shared, own, c_out, count * cols,
                       [&](std::size_t begin, std::size_t end, std::size_t worker)
                       {
                           T* phases = ws.threads[worker].outputs.data();
                           with_winograd_tile(
                               grid,
                               [&](auto tile)
                               {
                                   using F = decltype(tile);
                                   for (std::size_t o = begin; o < end; ++o)
                                   {
                                       const T b = bias == nullptr ? T(0) : bias[o];
                                       const std::size_t stride = winograd_product_stride(c_out, pitch);
                                       if (grid.phases == 1)
                                       {
                                           winograd_output_tiles<F>(p, grid, m + o * pitch, stride, n1 - n0, b, relu,
                                                                    phases, y + (n0 * c_out + o) * out_plane,
                                                                    c_out * out_plane);
                                           continue;
                                       }
                                       // The phases' output planes, then each of the
                                       // layer's merged from its phases.
                                       T* planes = ws.threads[worker].phase_outputs.data();
                                       winograd_output_tiles<F>(p, grid, m + o * pitch, stride, n1 - n0, b, relu,
                                                                phases, planes, phase_plane);
                                       for (std::size_t n = n0 / grid.phases; n < n1 / grid.phases; ++n)
                                       {
                                           merge_dilation_phases(planes + (n * grid.phases - n0) * phase_plane,
                                                                 g.out_h(), g.out_w(), g.dilation[0], g.dilation[1],
                                                                 y + (n * c_out + o) * out_plane);
                                       }
                                   }
                               });
                       });
    }
}

/// The grid of `g` for tiles of `tile` (2 or 4), or of `winograd_tile_size(g)` when `tile` is 0.
inline winograd_grid winograd_tiles_of(const conv_geometry& g, std::size_t tile) noexcept
{
    return winograd_tiles(g, tile == 0 ? winograd_tile_size(g) : tile);
}

/// y (N, C_out, OH, OW) = the convolution of `padded` (N, C_in, Hp, Wp) with `weight` (C_out,
/// C_in, r, r), plus `bias` (C_out, or null), with ReLU when `relu`, for `g` where
/// `winograd_applies`, on m x m tiles, m = `tile` (2 or 4) or, when 0, `winograd_tile_size`. Each
/// output depends on its own tiles only, so the split of the images between threads
/// (`winograd_whole_units`) does not change a bit of it.
template <class T>
void winograd_forward(const conv_geometry& g, const T* weight, const T* bias, const T* padded, T* y, bool relu,
                      winograd_workspace<T>& ws, gemm_workspace<T>& gemm_ws, std::size_t tile = 0)
{
    const winograd_grid grid = winograd_tiles_of(g, tile);
    prepare_winograd(g, grid, ws, gemm_ws);
    with_winograd_tile(
        grid, [&](auto tile)
        { winograd_kernel_transform<decltype(tile)>(g.out_channels, g.in_channels, weight, ws.kernel.data()); });
    const std::size_t phases = grid.phases;
    if (winograd_whole_units(g.batch))
    {
        parallel_for(g.batch, 1,
                     [&](std::size_t begin, std::size_t end, std::size_t worker) {
                         winograd_forward_images(g, grid, bias, padded, y, relu, begin * phases, end * phases, false,
                                                 worker, ws, gemm_ws);
                     });
        return;
    }
    winograd_forward_images(g, grid, bias, padded, y, relu, 0, g.batch * phases, true, 0, ws, gemm_ws);
}

/// 2 x 2 tiles: the alpha x alpha transforms A y A^T (F's `grad`) of the 2x2 tiles of the dY plane
/// `dy` (OH, OW), through `mask` (laid out like dY, or null) when given: into Y[xi][t0 + k] for
/// tile k, `stride` apart between two xi. `phases` holds the four TH x TW phases of dY on the way,
/// zeros past an odd edge.
template <class F, class T>
void winograd_plane_grad_tiles(const conv_geometry& g, const winograd_grid& grid, const T* dy, const T* mask, T* phases,
                               T* out, std::size_t stride)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size, A = F::alpha;
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
        const batch left[2] = {load_masked(phases, at, lanes), load_masked(phases + 2 * tiles, at, lanes)};
        const batch right[2] = {load_masked(phases + tiles, at, lanes), load_masked(phases + 3 * tiles, at, lanes)};
        // The rows of A y, each a pair across the columns, then A applied to each pair.
        batch rows[2][A];
        F::grad(left, rows[0]);
        F::grad(right, rows[1]);
        for (std::size_t r = 0; r < A; ++r)
        {
            const batch pair[2] = {rows[0][r], rows[1][r]};
            batch values[A];
            F::grad(pair, values);
            for (std::size_t c = 0; c < A; ++c)
            {
                store_masked(out + (r * A + c) * stride + k, values[c], lanes);
            }
        }
    }
}

/// Element (a, b) of every m x m tile of the dY plane `dy` (OH, OW) into row a m + b of `out`, rows
/// `stride` apart: out[(a m + b) stride + i TW + j] = dy[m i + a][m j + b], zeros past the plane;
/// through `mask` (laid out like dY, or null) when given.
template <std::size_t M, class T>
void winograd_unfold_grad(const conv_geometry& g, const winograd_grid& grid, const T* dy, const T* mask, T* out,
                          std::size_t stride)
{
    const std::size_t oh = g.out_h(), ow = g.out_w(), tw = grid.tw;
    for (std::size_t row = 0; row < M * grid.th; ++row)
    {
        T* first = out + row % M * M * stride + row / M * tw;
        if (row >= oh)
        {
            for (std::size_t b = 0; b < M; ++b)
            {
                std::fill(first + b * stride, first + b * stride + tw, T(0));
            }
            continue;
        }
        winograd_unfold_row<M, M>(dy + row * ow, mask == nullptr ? nullptr : mask + row * ow, ow, tw, &first, 1,
                                  stride);
    }
}

/// The alpha x alpha transforms A y A^T into `out` (rows `stride` apart) of the `columns` tiles
/// of dY whose elements y `winograd_unfold_grad` laid out in `d` (rows `d_stride` apart).
template <class F, class T>
void winograd_grad_tiles(std::size_t columns, const T* d, std::size_t d_stride, T* out, std::size_t stride)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t M = F::m;
    winograd_tile_transform<M, F::alpha>(columns, d, d_stride, out, stride,
                                         [](const batch(&in)[M], batch(&values)[F::alpha]) { F::grad(in, values); });
}

/// dw (C_out, C_in, r, r) = G^T dU G for every kernel, from dU (alpha^2, C_out C_in): S kernels
/// at a time, each element of dU a whole vector of them, then written kernel by kernel.
template <class F, class T>
void winograd_kernel_grad_transform(std::size_t planes, const T* du, T* dw)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t A = F::alpha, R = F::r, K = R * R, S = batch::size;
    // G^T e G for one kernel, or for S of them; `load(xi)` gives element xi of dU.
    const auto transform = [](auto load, auto(&out)[K])
    {
        using V = std::decay_t<decltype(out[0])>;
        V t[R][A];
        for (std::size_t c = 0; c < A; ++c)
        {
            V column[A], values[R];
            for (std::size_t r = 0; r < A; ++r)
            {
                column[r] = load(r * A + c);
            }
            F::kernel_grad(column, values);
            for (std::size_t r = 0; r < R; ++r)
            {
                t[r][c] = values[r];
            }
        }
        for (std::size_t r = 0; r < R; ++r)
        {
            V values[R];
            F::kernel_grad(t[r], values);
            std::copy(values, values + R, out + r * R);
        }
    };
    std::size_t p = 0;
    for (; p + S <= planes; p += S)
    {
        batch out[K];
        transform([&](std::size_t xi) { return batch::load_unaligned(du + xi * planes + p); }, out);
        alignas(64) T lanes[K][S];
        for (std::size_t k = 0; k < K; ++k)
        {
            out[k].store_aligned(lanes[k]);
        }
        for (std::size_t l = 0; l < S; ++l)
        {
            for (std::size_t k = 0; k < K; ++k)
            {
                dw[(p + l) * K + k] = lanes[k][l];
            }
        }
    }
    for (; p < planes; ++p)
    {
        T out[K];
        transform([&](std::size_t xi) { return du[xi * planes + p]; }, out);
        std::copy(out, out + K, dw + p * K);
    }
}

template <class T>
void winograd_weight_grad_chunks(const conv_geometry& g, const winograd_grid& grid, const T* padded, const T* dy,
                                 const T* mask, std::size_t c0, std::size_t c1, T* du, bool shared, std::size_t own,
                                 winograd_workspace<T>& ws, gemm_workspace<T>& gemm_ws)
{
    const conv_geometry p = winograd_phase_geometry(g);
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, chunk = winograd_chunk(g, grid);
    const std::size_t tiles = grid.tiles(), pitch = chunk * tiles;
    const std::size_t planes = c_out * c_in, count = grid.products(), batch = p.batch;
    winograd_thread_buffers<T>& mine = ws.threads[own];
    T* v = mine.input.data();
    T* dyt = mine.product.data();
    for (std::size_t q = c0; q < c1; ++q)
    {
        const std::size_t n0 = q * chunk, n1 = std::min(batch, n0 + chunk), cols = (n1 - n0) * tiles;
        winograd_transform_input(g, grid, padded, n0, n1, v, pitch, shared, own, ws);
        const std::size_t images = n1 - n0;
        // Channel o of dY for image n0 + i, and the mask to read it through (a dilated layer's
        // phases pass through the mask as they are split).
        const auto grad_plane = [&](std::size_t worker, std::size_t o, std::size_t i, bool refresh)
        {
            winograd_thread_buffers<T>& buffers = ws.threads[worker];
            const T* plane = winograd_image_plane(g, dy, mask, c_out, o, g.out_h(), g.out_w(), n0 + i, refresh,
                                                  buffers.plane_phases.data(), buffers.column_phases.data());
            const T* through = mask == nullptr || grid.phases > 1 ? nullptr : mask + (plane - dy);
            return std::make_pair(plane, through);
        };
        if (grid.m == 2)
        {
            // Items image-major for an undilated layer; channel-major for a dilated one, so that
            // consecutive items read the phases of one plane of dY, split once.
            winograd_items(shared, own, images * c_out, 16 * tiles,
                           [&](std::size_t begin, std::size_t end, std::size_t worker)
                           {
                               T* phases = ws.threads[worker].outputs.data();
                               with_winograd_pair_tile(grid,
                                                       [&](auto tile)
                                                       {
                                                           for (std::size_t t = begin; t < end; ++t)
                                                           {
                                                               const bool dilated = grid.phases > 1;
                                                               const std::size_t i = dilated ? t % images : t / c_out;
                                                               const std::size_t o = dilated ? t / images : t % c_out;
                                                               const auto source = grad_plane(worker, o, i, t == begin);
                                                               winograd_plane_grad_tiles<decltype(tile)>(
                                                                   p, grid, source.first, source.second, phases,
                                                                   dyt + o * pitch + i * tiles,
                                                                   winograd_product_stride(c_out, pitch));
                                                           }
                                                       });
                           });
        }
        else
        {
            // dY's tiles of each output channel, a few images unfolded and transformed together.
            const std::size_t group = winograd_unfold_images(grid), group_pitch = group * tiles;
            winograd_items(shared, own, c_out, count * tiles * images,
                           [&](std::size_t begin, std::size_t end, std::size_t worker)
                           {
                               T* unfolded = ws.threads[worker].unfolded.data();
                               for (std::size_t o = begin; o < end; ++o)
                               {
                                   for (std::size_t i0 = 0; i0 < images; i0 += group)
                                   {
                                       const std::size_t i1 = std::min(images, i0 + group);
                                       for (std::size_t i = i0; i < i1; ++i)
                                       {
                                           const auto source = grad_plane(worker, o, i, i == 0);
                                           winograd_unfold_grad<4>(p, grid, source.first, source.second,
                                                                   unfolded + (i - i0) * tiles, group_pitch);
                                       }
                                       winograd_grad_tiles<winograd_transforms<4, 3>>(
                                           (i1 - i0) * tiles, unfolded, group_pitch, dyt + o * pitch + i0 * tiles,
                                           winograd_product_stride(c_out, pitch));
                                   }
                               }
                           });
        }
        if (packed_gemm_beats_nt(c_out))
        {
            const transposed_b_tables& tables = ws.transposed_tables;
            const gemm_batch_strides products{count, static_cast<std::ptrdiff_t>(winograd_product_stride(c_out, pitch)),
                                              static_cast<std::ptrdiff_t>(winograd_product_stride(c_in, pitch)),
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
                                     products, 0, count);
            }
            continue;
        }
        T* target = q == c0 ? du : mine.chunk_kernel_grad.data();
        // The products run whole, one thread each when shared (`gemm_nt` inside a parallel
        // section is serial).
        const auto run_products = [&](std::size_t begin, std::size_t end, std::size_t)
        {
            for (std::size_t xi = begin; xi < end; ++xi)
            {
                gemm_nt_operands<T> op;
                op.a = dyt + xi * winograd_product_stride(c_out, pitch);
                op.a_row = pitch;
                op.b = v + xi * winograd_product_stride(c_in, pitch);
                op.b_rows = ws.b_rows.data();
                op.length = cols;
                op.c = target + xi * planes;
                op.c_row = c_in;
                gemm_nt(c_out, c_in, op);
            }
        };
        if (shared)
        {
            parallel_for(count, 1, run_products);
        }
        else
        {
            run_products(0, count, own);
        }
        if (q != c0)
        {
            for (std::size_t i = 0; i < count * planes; ++i)
            {
                du[i] += target[i];
            }
        }
    }
}

/// The output tile dW's pass runs on: the forward pass's where its sum then splits into two parts
/// or more (`winograd_weight_grad_parts`), else 2 x 2. A single part is shared by the threads chunk
/// by chunk (`winograd_whole_units`), each stage's output crossing from one core's cache to the
/// other's, and small planes' 4 x 4 tiles make a chunk of the whole batch: 8 x 8 planes of 128
/// channels ran 13 % longer at two threads than on 2 x 2 tiles (docs/performance.md).
inline std::size_t winograd_weight_grad_tile_size(const conv_geometry& g)
{
    const std::size_t m = winograd_tile_size(g);
    return m == 4 && winograd_weight_grad_parts(g, winograd_tiles(g, 4)) >= 2 ? 4 : 2;
}

/// dw (C_out, C_in, r, r) and db (C_out, or null) from dY (N, C_out, OH, OW) and `padded` (N, C_in,
/// Hp, Wp) for `g` where `winograd_applies`, on m x m tiles, m = `tile` or, when 0,
/// `winograd_weight_grad_tile_size`: the forward pass is y = A^T [U . V] A per tile, so dU[xi]
/// (C_out, C_in) is the sum over tiles of (A dy A^T)[xi] times V[xi], alpha^2 GEMMs along the
/// tiles (`gemm_nt`, or the packed GEMM for many output channels: `packed_gemm_beats_nt`), and
/// dW = G^T dU G. The sum runs as
/// `winograd_weight_grad_parts` partial sums, added in order. With `mask` (the ReLU'd output, laid
/// out like dY), dY passes only where it is positive.
template <class T>
void winograd_weight_grad(const conv_geometry& g, const T* padded, const T* dy, const T* mask, T* dw, T* db,
                          winograd_workspace<T>& ws, gemm_workspace<T>& gemm_ws, std::size_t tile = 0)
{
    const winograd_grid grid = winograd_tiles(g, tile == 0 ? winograd_weight_grad_tile_size(g) : tile);
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, chunk = winograd_chunk(g, grid);
    const std::size_t pitch = chunk * grid.tiles(), planes = c_out * c_in, count = grid.products();
    const std::size_t images = g.batch * grid.phases, chunks = (images + chunk - 1) / chunk;
    const std::size_t parts = winograd_weight_grad_parts(g, grid);
    prepare_winograd(g, grid, ws, gemm_ws);
    grow_to(ws.kernel_grad, parts * count * planes);
    for (auto& t : ws.threads)
    {
        grow_to(t.chunk_kernel_grad, count * planes);
    }
    ws.transposed_tables.prepare(c_out, c_in, pitch, pitch, pitch, c_in);
    T* du = ws.kernel_grad.data();
    const auto run_part = [&](std::size_t p, bool shared, std::size_t own)
    {
        winograd_weight_grad_chunks(g, grid, padded, dy, mask, chunks * p / parts, chunks * (p + 1) / parts,
                                    du + p * count * planes, shared, own, ws, gemm_ws);
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
        parallel_for_items(count * planes, parts,
                           [&](std::size_t begin, std::size_t end, std::size_t)
                           {
                               for (std::size_t p = 1; p < parts; ++p)
                               {
                                   const T* part = du + p * count * planes;
                                   for (std::size_t i = begin; i < end; ++i)
                                   {
                                       du[i] += part[i];
                                   }
                               }
                           });
    }
    with_winograd_tile(grid, [&](auto tile) { winograd_kernel_grad_transform<decltype(tile)>(planes, du, dw); });
    if (db != nullptr)
    {
        output_bias_grad(g, dy, mask, db);
    }
}

/// dx (N, C_in, H, W) from dY (N, C_out, OH, OW) for `g` where `winograd_applies`: at stride 1,
/// dX is the convolution of dY, padded by D (r - 1) - padding, with the kernel rotated by 180
/// degrees and its channel axes swapped (and g's dilation D), which `winograd_forward` computes.
/// With `mask` (the ReLU'd output, laid out like dY), dY passes only where it is positive, inside
/// the padding copy. `tile` is that forward pass's (0: `winograd_tile_size` of it).
template <class T>
void winograd_input_grad(const conv_geometry& g, const T* weight, const T* dy, const T* mask, T* dx,
                         winograd_workspace<T>& ws, gemm_workspace<T>& gemm_ws, std::size_t tile = 0)
{
    const std::size_t c_in = g.in_channels, c_out = g.out_channels, oh = g.out_h(), ow = g.out_w();
    conv_geometry back = g;
    back.in_channels = c_out;
    back.out_channels = c_in;
    back.input = {oh, ow};
    const std::size_t r = g.kernel[0], taps = r * r;
    back.padding = {g.dilation[0] * (r - 1) - g.padding[0], g.dilation[1] * (r - 1) - g.padding[1]};
    grow_to(ws.rotated, c_in * c_out * taps);
    for (std::size_t o = 0; o < c_out; ++o)
    {
        for (std::size_t c = 0; c < c_in; ++c)
        {
            const T* from = weight + (o * c_in + c) * taps;
            T* to = ws.rotated.data() + (c * c_out + o) * taps;
            for (std::size_t t = 0; t < taps; ++t)
            {
                to[t] = from[taps - 1 - t];
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
                     ws, gemm_ws, tile);
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_WINOGRAD_HPP
