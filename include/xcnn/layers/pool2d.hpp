/// @file
/// What the sliding-window pooling layers (MaxPool2D, AvgPool2D) share: their kernel, stride
/// and padding, the checks of those at construction, how names show them, and the output shape
/// and kernel geometry for an input. The kernels themselves are in core/pooling.hpp.
#ifndef XCNN_LAYERS_POOL2D_HPP
#define XCNN_LAYERS_POOL2D_HPP

#include <array>
#include <cstddef>
#include <string>

#include "../core/error.hpp"
#include "../core/pooling.hpp"
#include "layer.hpp"

namespace xcnn
{
namespace detail
{

/// Kernel, stride and padding of a 2-D pooling layer, each as (height, width), with PyTorch's
/// rules: kernel and stride at least 1, padding at most half the kernel (so every window
/// overlaps the input), floor mode.
struct pool_window
{
    /// (KH, KW).
    std::array<std::size_t, 2> kernel;
    /// (SH, SW).
    std::array<std::size_t, 2> stride;
    /// (PH, PW).
    std::array<std::size_t, 2> padding;

    /// "kernel_size=(KH, KW), stride=(SH, SW)", then ", padding=(PH, PW)" unless the padding is
    /// zero (names of unpadded layers stay as they were before padding existed).
    std::string describe() const
    {
        std::string out = concat("kernel_size=", shape_to_string(kernel), ", stride=", shape_to_string(stride));
        if (padding[0] != 0 || padding[1] != 0)
        {
            out += concat(", padding=", shape_to_string(padding));
        }
        return out;
    }

    /// Throws `value_error` naming `layer` (the layer's name) unless kernel and stride lie in
    /// [1, `max_extent`] and the padding is at most half the kernel.
    void check(const std::string& layer) const
    {
        for (std::size_t d = 0; d < 2; ++d)
        {
            require_size_argument(layer, "kernel_size", kernel[d], shape_to_string(kernel), 1);
            require_size_argument(layer, "stride", stride[d], shape_to_string(stride), 1);
            require_size_argument(layer, "padding", padding[d], shape_to_string(padding), 0);
        }
        for (std::size_t d = 0; d < 2; ++d)
        {
            if (padding[d] > kernel[d] / 2)
            {
                throw value_error(concat(layer, ": padding must be at most half the kernel size, got padding ",
                                         shape_to_string(padding), " for kernel_size ", shape_to_string(kernel)));
            }
        }
    }

    /// (N, C, OH, OW) for an (N, C, H, W) input with OH = (H + 2 PH - KH) / SH + 1 and likewise
    /// OW; N may be 0.
    /// @throws shape_error naming `layer` for another rank, a zero C, H or W, or an input that,
    /// padded, is smaller than the kernel.
    template <class Layer, class S>
    std::array<std::size_t, 4> output_shape(const Layer& layer, const S& input_shape) const
    {
        require_rank(layer, input_shape, 4, "(N, C, H, W)");
        require_nonempty_axes(layer, input_shape, 1);
        const std::size_t oh = pool_extent(input_shape[2], kernel[0], stride[0], padding[0]);
        const std::size_t ow = pool_extent(input_shape[3], kernel[1], stride[1], padding[1]);
        if (oh == 0 || ow == 0)
        {
            const bool padded = padding[0] != 0 || padding[1] != 0;
            throw shape_error(concat(layer.name(), ": input ", shape_to_string(input_shape),
                                     padded ? concat(" padded by ", shape_to_string(padding)) : std::string(),
                                     " is smaller than the kernel ", shape_to_string(kernel)));
        }
        return {input_shape[0], input_shape[1], oh, ow};
    }

    /// The kernels' description of pooling `input` (N, C, H, W) into `output`.
    pool_geometry geometry(const std::array<std::size_t, 4>& input, const std::array<std::size_t, 4>& output) const
    {
        return {input[0] * input[1], input[2],  input[3],  output[2],  output[3], kernel[0],
                kernel[1],           stride[0], stride[1], padding[0], padding[1]};
    }
};

} // namespace detail
} // namespace xcnn

#endif // XCNN_LAYERS_POOL2D_HPP
