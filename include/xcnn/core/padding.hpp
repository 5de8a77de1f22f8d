/// @file
/// Zero padding of the spatial axes of NCHW tensors, written into reusable buffers. Includes
/// core/elementwise.hpp, whose short copies it is built on.
#ifndef XCNN_CORE_PADDING_HPP
#define XCNN_CORE_PADDING_HPP

#include <algorithm>
#include <array>
#include <cstddef>

#include "elementwise.hpp"
#include "error.hpp"
#include "threading.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Copies the contiguous NCHW tensor `src` (n, c, h, w) into the contiguous `dst`
/// (n, c, out_h, out_w) so that src(., ., y, x) lands at dst(., ., y + top, x + left), and
/// zeroes the rest of dst. Negative offsets crop: the parts of src outside dst are dropped.
/// With `mask` (laid out like src), src passes only where mask > 0 (`copy_short_masked`).
/// One pass over dst, row by row: no temporary, unlike `xt::pad`.
template <class T>
void place_2d(const T* src, std::size_t planes, std::size_t h, std::size_t w, T* dst, std::size_t out_h,
              std::size_t out_w, std::ptrdiff_t top, std::ptrdiff_t left, const T* mask = nullptr)
{
    const auto ih = static_cast<std::ptrdiff_t>(h), iw = static_cast<std::ptrdiff_t>(w);
    const auto oh = static_cast<std::ptrdiff_t>(out_h), ow = static_cast<std::ptrdiff_t>(out_w);
    // Columns of dst that receive data: [col_begin, col_end).
    const std::ptrdiff_t col_begin = std::clamp<std::ptrdiff_t>(left, 0, ow);
    const std::ptrdiff_t col_end = std::clamp<std::ptrdiff_t>(left + iw, 0, ow);
    // Whether dst has rows or columns src does not fill.
    const bool padding = top > 0 || left > 0 || top + ih < oh || left + iw < ow;
    parallel_for_items(
        planes, out_h * out_w,
        [&](std::size_t begin, std::size_t end, std::size_t)
        {
            if (mask == nullptr && !padding && left == 0 && iw == ow)
            {
                // Whole rows, none added: each plane's rows are one run in src and dst (a 1x1
                // convolution's input is copied as a block, not 8 floats at a time).
                for (std::size_t p = begin; p < end; ++p)
                {
                    const T* from = src + static_cast<std::ptrdiff_t>(p) * ih * iw - top * iw;
                    std::copy(from, from + oh * ow, dst + p * out_h * out_w);
                }
                return;
            }
            for (std::size_t p = begin; p < end; ++p)
            {
                T* plane_out = dst + p * out_h * out_w;
                if (mask == nullptr && padding)
                {
                    // Zero the plane in one run of vector stores, then copy the rows
                    // over it: on small planes (10 x 10 padded) the two short fills per
                    // row cost more than the copy.
                    fill_zero_short(plane_out, out_h * out_w);
                    if (col_begin >= col_end)
                    {
                        continue;
                    }
                    const auto count = static_cast<std::size_t>(col_end - col_begin);
                    for (std::ptrdiff_t y = std::max<std::ptrdiff_t>(0, top);
                         y < std::min<std::ptrdiff_t>(oh, top + ih); ++y)
                    {
                        copy_short(src + static_cast<std::ptrdiff_t>(p) * ih * iw + (y - top) * iw + (col_begin - left),
                                   count, plane_out + y * ow + col_begin);
                    }
                    continue;
                }
                for (std::ptrdiff_t y = 0; y < oh; ++y)
                {
                    T* row = plane_out + y * ow;
                    const std::ptrdiff_t sy = y - top;
                    if (sy < 0 || sy >= ih || col_begin >= col_end)
                    {
                        std::fill(row, row + ow, T(0));
                        continue;
                    }
                    std::fill(row, row + col_begin, T(0));
                    const std::ptrdiff_t from = static_cast<std::ptrdiff_t>(p) * ih * iw + sy * iw + (col_begin - left);
                    const auto count = static_cast<std::size_t>(col_end - col_begin);
                    if (mask != nullptr)
                    {
                        copy_short_masked(src + from, mask + from, count, row + col_begin);
                    }
                    else
                    {
                        copy_short(src + from, count, row + col_begin);
                    }
                    std::fill(row + col_end, row + ow, T(0));
                }
            }
        });
}

} // namespace detail

/// Writes `x` (N, C, H, W) zero-padded by `pad_h` rows above and below and `pad_w` columns left
/// and right into `out`, resized to (N, C, H + 2 pad_h, W + 2 pad_w). `out` keeps its memory
/// when its shape does not change, so a layer calling this on every batch allocates once.
/// @throws value_error if `x` and `out` are the same tensor (the resize would destroy `x`).
template <class T>
void zero_pad2d_into(const xt::xtensor<T, 4>& x, std::size_t pad_h, std::size_t pad_w, xt::xtensor<T, 4>& out)
{
    if (&x == &out)
    {
        throw value_error("zero_pad2d_into: the input and the output must be different tensors");
    }
    const auto& s = x.shape();
    const std::array<std::size_t, 4> shape{s[0], s[1], s[2] + 2 * pad_h, s[3] + 2 * pad_w};
    if (out.shape() != shape)
    {
        out.resize(shape);
    }
    detail::place_2d(x.data(), s[0] * s[1], s[2], s[3], out.data(), shape[2], shape[3],
                     static_cast<std::ptrdiff_t>(pad_h), static_cast<std::ptrdiff_t>(pad_w));
}

/// `x` (N, C, H, W) zero-padded by `pad_h` rows above and below and `pad_w` columns on each
/// side; `numpy.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))`.
template <class E>
auto zero_pad2d(const xt::xexpression<E>& x, std::size_t pad_h, std::size_t pad_w)
{
    using T = typename E::value_type;
    if (x.derived_cast().dimension() != 4)
    {
        throw shape_error(detail::concat("zero_pad2d: expected a rank-4 (N, C, H, W) input, got shape ",
                                         detail::shape_to_string(x.derived_cast().shape())));
    }
    const xt::xtensor<T, 4> input = x.derived_cast();
    xt::xtensor<T, 4> out;
    zero_pad2d_into(input, pad_h, pad_w, out);
    return out;
}

} // namespace xcnn

#endif // XCNN_CORE_PADDING_HPP
