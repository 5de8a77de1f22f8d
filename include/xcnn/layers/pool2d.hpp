/// @file
/// What the sliding-window pooling layers (MaxPool2D, AvgPool2D) share: their kernel, stride
/// and padding, the constructors and checks of those, how names show them, and the output shape
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

/// The constructors, accessors, name and output shape of a sliding-window pooling layer
/// `Derived` (a `layer<Derived, T, 4>` whose `static constexpr const char* kind` is its class
/// name), which adds only its passes. The stride defaults to the kernel size, the padding to 0.
template <class Derived, class T>
class pool2d_layer : public layer<Derived, T, 4>
{
public:
    /// Height and width of a window, a stride or a padding.
    using size2 = std::array<std::size_t, 2>;

    /// A square window, moved by its own size (PyTorch's default stride).
    /// @throws value_error if `kernel_size` is zero or larger than `max_extent`.
    explicit pool2d_layer(std::size_t kernel_size) : pool2d_layer(size2{kernel_size, kernel_size}) {}
    /// A square window and stride, and the same padding on every side.
    /// @throws value_error if the kernel or the stride is zero or larger than `max_extent`, or
    /// the padding is more than half the kernel.
    pool2d_layer(std::size_t kernel_size, std::size_t stride, std::size_t padding = 0)
        : pool2d_layer(size2{kernel_size, kernel_size}, size2{stride, stride}, size2{padding, padding})
    {
    }
    /// A (KH, KW) window, moved by its own size.
    /// @throws value_error if a size is zero or larger than `max_extent`.
    explicit pool2d_layer(size2 kernel_size) : pool2d_layer(kernel_size, kernel_size) {}
    /// A (KH, KW) window moved by (SH, SW), the input padded by PH rows above and below and PW
    /// columns left and right.
    /// @throws value_error if a kernel or stride size is zero or larger than `max_extent` (a
    /// negative number converted to `std::size_t`), or a padding is more than half the kernel.
    pool2d_layer(size2 kernel_size, size2 stride, size2 padding = {0, 0}) : m_window{kernel_size, stride, padding}
    {
        m_window.check(name());
    }

    /// (KH, KW).
    size2 kernel_size() const noexcept { return m_window.kernel; }
    /// (SH, SW).
    size2 stride() const noexcept { return m_window.stride; }
    /// (PH, PW).
    size2 padding() const noexcept { return m_window.padding; }

    /// E.g. `MaxPool2D(kernel_size=(KH, KW), stride=(SH, SW))`, with `, padding=(PH, PW)` when
    /// padded, as shown in `Sequential::summary` and in error messages.
    std::string name() const { return concat(Derived::kind, "(", m_window.describe(), ")"); }

    /// kernel_size, stride and padding (pairs), the names of PyTorch's `MaxPool2d` arguments.
    layer_spec spec() const
    {
        return layer_spec{Derived::kind, {}, {}}
            .set_pair("kernel_size", m_window.kernel)
            .set_pair("stride", m_window.stride)
            .set_pair("padding", m_window.padding);
    }

    /// The layer `spec` describes; as in PyTorch, the stride defaults to the kernel size and the
    /// padding to 0, and a pair may be one number for both.
    /// @throws value_error for another kind, an unknown, missing or malformed option, or a value
    /// the constructor refuses.
    static Derived from_spec(const layer_spec& spec)
    {
        const spec_reader r(spec, Derived::kind, {"kernel_size", "stride", "padding"});
        const size2 kernel = r.pair("kernel_size");
        return Derived(kernel, r.pair("stride", kernel), r.pair("padding", {0, 0}));
    }

    /// (N, C, (H + 2 PH - KH) / SH + 1, (W + 2 PW - KW) / SW + 1) for an (N, C, H, W) input; N
    /// may be 0.
    /// @throws shape_error for another rank, a zero channel count, height or width, or an input
    /// that, padded, is smaller than the window.
    template <class S>
    std::array<std::size_t, 4> checked_output_shape(const S& input_shape) const
    {
        return m_window.output_shape(static_cast<const Derived&>(*this), input_shape);
    }

protected:
    /// The kernel, stride and padding.
    pool_window m_window;
};

} // namespace detail
} // namespace xcnn

#endif // XCNN_LAYERS_POOL2D_HPP
