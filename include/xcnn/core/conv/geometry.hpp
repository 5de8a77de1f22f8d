/// @file
/// The geometry of one 2-D convolution, which every form in core/conv/ takes, and the buffer
/// type the forms keep their scratch in.
#ifndef XCNN_CORE_CONV_GEOMETRY_HPP
#define XCNN_CORE_CONV_GEOMETRY_HPP

#include <array>
#include <cstddef>
#include <vector>

#include "../plane_correlation.hpp"
#include "../xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Input (N, C_in, H, W), weight (C_out, C_in / groups, KH, KW), stride (SH, SW), padding
/// (PH, PW), dilation (DH, DW), groups: everything a convolution pass needs to know besides its
/// operands.
///
/// Output pixel (oh, ow) at tap (kh, kw) reads padded pixel (oh SH + kh DH, ow SW + kw DW): a
/// dilated kernel is a kernel of (KH - 1) DH + 1 rows with zeros between its taps, and those
/// zeros are never multiplied. Group g maps input channels [g C_in / G, (g + 1) C_in / G) to
/// output channels [g C_out / G, (g + 1) C_out / G).
struct conv_geometry
{
    std::size_t batch = 0;                     ///< N
    std::size_t in_channels = 0;               ///< C_in
    std::size_t out_channels = 0;              ///< C_out
    std::array<std::size_t, 2> input{};        ///< (H, W), before padding
    std::array<std::size_t, 2> kernel{1, 1};   ///< (KH, KW)
    std::array<std::size_t, 2> stride{1, 1};   ///< (SH, SW)
    std::array<std::size_t, 2> padding{0, 0};  ///< (PH, PW), zeros on each side
    std::array<std::size_t, 2> dilation{1, 1}; ///< (DH, DW), the distance between taps
    std::size_t groups = 1;                    ///< G

    /// C_in / G: the input channels each output channel reads.
    std::size_t group_in() const noexcept { return in_channels / groups; }
    /// C_out / G.
    std::size_t group_out() const noexcept { return out_channels / groups; }
    /// (KH - 1) DH + 1: the rows a dilated kernel spans.
    std::size_t span_h() const noexcept { return (kernel[0] - 1) * dilation[0] + 1; }
    /// (KW - 1) DW + 1.
    std::size_t span_w() const noexcept { return (kernel[1] - 1) * dilation[1] + 1; }
    /// Whether the dilation is 1 along both axes.
    bool undilated() const noexcept { return dilation[0] == 1 && dilation[1] == 1; }

    /// H + 2 PH.
    std::size_t padded_h() const noexcept { return input[0] + 2 * padding[0]; }
    /// W + 2 PW.
    std::size_t padded_w() const noexcept { return input[1] + 2 * padding[1]; }
    /// OH = (H + 2 PH - span_h) / SH + 1.
    std::size_t out_h() const noexcept { return (padded_h() - span_h()) / stride[0] + 1; }
    /// OW = (W + 2 PW - span_w) / SW + 1.
    std::size_t out_w() const noexcept { return (padded_w() - span_w()) / stride[1] + 1; }
    /// Whether the stride is 1 along both axes.
    bool unit_stride() const noexcept { return stride[0] == 1 && stride[1] == 1; }
    /// Whether any padding is added.
    bool padded() const noexcept { return padding[0] != 0 || padding[1] != 0; }
    /// (N, C_in, H, W).
    std::array<std::size_t, 4> input_shape() const noexcept { return {batch, in_channels, input[0], input[1]}; }
    /// (N, C_in, H + 2 PH, W + 2 PW).
    std::array<std::size_t, 4> padded_shape() const noexcept { return {batch, in_channels, padded_h(), padded_w()}; }
    /// (N, C_out, OH, OW).
    std::array<std::size_t, 4> output_shape() const noexcept { return {batch, out_channels, out_h(), out_w()}; }
    /// The stride-1 correlation of the padded input with the kernel (core/plane_correlation.hpp);
    /// one group only.
    plane_geometry planes() const noexcept
    {
        return {batch, in_channels, padded_h(), padded_w(), kernel[0], kernel[1], dilation[0], dilation[1]};
    }
};

/// Scratch memory of the convolution forms: 64-byte aligned, so the vector loads of the
/// kernels that read it never split a cache line.
template <class T>
using conv_buffer = std::vector<T, xsimd::aligned_allocator<T, 64>>;

/// Makes `buffer` hold at least `count` elements. It never shrinks, so a layer whose batch
/// shapes alternate allocates only for the largest.
template <class V>
void grow_to(V& buffer, std::size_t count)
{
    if (buffer.size() < count)
    {
        buffer.resize(count);
    }
}

/// Resizes `t` to `shape` when it has another shape: called on every pass, it allocates only
/// when the shape changes.
template <class T, std::size_t N>
void resize_to(xt::xtensor<T, N>& t, const std::array<std::size_t, N>& shape)
{
    if (t.shape() != shape)
    {
        t.resize(shape);
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_GEOMETRY_HPP
