/// @file
/// `xcnn::Conv2D`: 2-D convolution (cross-correlation, as in PyTorch) of NCHW tensors as one
/// contraction of a window view with the kernel.
#ifndef XCNN_LAYERS_CONV2D_HPP
#define XCNN_LAYERS_CONV2D_HPP

#include <array>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../core/conv/select.hpp"
#include "../core/elementwise.hpp"
#include "../core/error.hpp"
#include "../core/padding.hpp"
#include "../core/xtensor_shim.hpp"
#include "../network/parameter.hpp"
#include "init.hpp"
#include "layer.hpp"

namespace xcnn
{

/// Height and width of a kernel, stride or padding.
using size2 = std::array<std::size_t, 2>;

/// Options of a `Conv2D`, named after PyTorch's `torch::nn::Conv2dOptions`: each setter
/// returns the options so they chain, each getter has the setter's name.
/// `Conv2D<float>(Conv2DOptions(3, 16, 5).stride(2).padding({1, 2}))`.
class Conv2DOptions
{
public:
    /// A square `kernel_size` x `kernel_size` kernel, stride 1, no padding.
    Conv2DOptions(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size)
        : Conv2DOptions(in_channels, out_channels, size2{kernel_size, kernel_size})
    {
    }
    /// A (KH, KW) kernel, stride 1, no padding.
    Conv2DOptions(std::size_t in_channels, std::size_t out_channels, size2 kernel_size)
        : m_in(in_channels), m_out(out_channels), m_kernel(kernel_size)
    {
    }

    /// C_in, the channels of the input.
    std::size_t in_channels() const noexcept { return m_in; }
    /// C_out, the channels of the output.
    std::size_t out_channels() const noexcept { return m_out; }
    /// (KH, KW).
    size2 kernel_size() const noexcept { return m_kernel; }
    /// (SH, SW); (1, 1) unless set.
    size2 stride() const noexcept { return m_stride; }
    /// (PH, PW) zeros added on each side; (0, 0) unless set.
    size2 padding() const noexcept { return m_padding; }

    /// The same stride along H and W.
    Conv2DOptions& stride(std::size_t s) { return stride(size2{s, s}); }
    /// Stride (SH, SW).
    Conv2DOptions& stride(size2 s)
    {
        m_stride = s;
        return *this;
    }
    /// The same padding along H and W.
    Conv2DOptions& padding(std::size_t p) { return padding(size2{p, p}); }
    /// Padding (PH, PW).
    Conv2DOptions& padding(size2 p)
    {
        m_padding = p;
        return *this;
    }

private:
    std::size_t m_in;
    std::size_t m_out;
    size2 m_kernel;
    size2 m_stride{1, 1};
    size2 m_padding{0, 0};
};

/// 2-D convolution over NCHW input with PyTorch's semantics and layouts: `weight()` is
/// (C_out, C_in, KH, KW), `bias()` is (C_out), output (N, C_out, OH, OW) with
/// OH = (H + 2 pad_h - KH) / stride_h + 1.
///
/// The forward pass is the contraction of the window view (N, C_in, OH, OW, KH, KW) of the
/// zero-padded input with the kernel over (C_in, KH, KW); see docs/design.md. The layer checks
/// shapes and keeps the buffers; the passes are the forms in core/conv/, picked for each pass
/// by core/conv/select.hpp.
template <class T>
class Conv2D : public detail::expression_input<Conv2D<T>, T, 4>
{
    static_assert(std::is_floating_point<T>::value, "xcnn::Conv2D<T>: T must be float or double");

public:
    /// Scalar type of the layer's tensors and parameters (`float` or `double`).
    using value_type = T;
    using detail::expression_input<Conv2D<T>, T, 4>::forward;
    using detail::expression_input<Conv2D<T>, T, 4>::predict;
    using detail::expression_input<Conv2D<T>, T, 4>::backward;
    /// The input layout named in rank errors.
    static constexpr const char* input_layout = "(N, C, H, W)";
    /// The gradient layout named in rank errors.
    static constexpr const char* output_layout = "(N, C, H, W)";
    /// What `forward` takes: (N, C_in, H, W).
    using input_type = xt::xtensor<T, 4>;
    /// What `forward` returns: (N, C_out, OH, OW).
    using output_type = xt::xtensor<T, 4>;
    /// Rank of the input; `Sequential` checks it against the previous layer at compile time.
    static constexpr int input_rank = 4;
    /// Rank of the output; `Sequential` checks it against the next layer at compile time.
    static constexpr int output_rank = 4;

    /// A square kernel, stride and padding: `Conv2D<float>(3, 16, 5, 1, 2)` is PyTorch's
    /// `Conv2d(3, 16, 5, stride=1, padding=2)`. The parameters get PyTorch's default initialisation
    /// from a fixed seed (see `reset_parameters`).
    /// @throws value_error if a channel count, the kernel size or the stride is zero, or any size is
    /// larger than `max_extent` (a negative number converted to `std::size_t`).
    Conv2D(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size, std::size_t stride = 1,
           std::size_t padding = 0)
        : Conv2D(Conv2DOptions(in_channels, out_channels, kernel_size).stride(stride).padding(padding))
    {
    }

    /// Any kernel, stride and padding, e.g. `Conv2D<float>(Conv2DOptions(3, 16, {3, 5}).stride(2))`.
    /// @throws value_error if a channel count, a kernel size or a stride is zero, any size is larger
    /// than `max_extent` (a negative number converted to `std::size_t`), or the weight would have
    /// more than `max_extent` elements.
    explicit Conv2D(const Conv2DOptions& options) : m_options(options)
    {
        const auto k = options.kernel_size(), s = options.stride(), p = options.padding();
        const std::string layer = name();
        detail::require_size_argument(layer, "in_channels", options.in_channels(), options.in_channels(), 1);
        detail::require_size_argument(layer, "out_channels", options.out_channels(), options.out_channels(), 1);
        for (std::size_t d = 0; d < 2; ++d)
        {
            detail::require_size_argument(layer, "kernel_size", k[d], detail::shape_to_string(k), 1);
            detail::require_size_argument(layer, "stride", s[d], detail::shape_to_string(s), 1);
            detail::require_size_argument(layer, "padding", p[d], detail::shape_to_string(p), 0);
        }
        detail::require_addressable_weight(
            layer, std::array<std::size_t, 4>{options.out_channels(), options.in_channels(), k[0], k[1]});
        m_weight.resize({options.out_channels(), options.in_channels(), k[0], k[1]});
        m_bias.resize({options.out_channels()});
        m_weight_grad = xt::zeros<T>(m_weight.shape());
        m_bias_grad = xt::zeros<T>(m_bias.shape());
        std::mt19937 rng(detail::default_init_seed);
        reset_parameters(rng);
    }

    /// The channels, kernel size, stride and padding the layer was built with.
    const Conv2DOptions& options() const noexcept { return m_options; }

    /// (C_out, C_in, KH, KW). Assign a tensor of this shape to load weights.
    xt::xtensor<T, 4>& weight() noexcept { return m_weight; }
    /// (C_out, C_in, KH, KW), read-only.
    const xt::xtensor<T, 4>& weight() const noexcept { return m_weight; }
    /// (C_out).
    xt::xtensor<T, 1>& bias() noexcept { return m_bias; }
    /// (C_out), read-only.
    const xt::xtensor<T, 1>& bias() const noexcept { return m_bias; }
    /// dLoss/dweight of the last `backward` (overwritten, not accumulated).
    const xt::xtensor<T, 4>& weight_grad() const noexcept { return m_weight_grad; }
    /// dLoss/dbias of the last `backward` (overwritten, not accumulated).
    const xt::xtensor<T, 1>& bias_grad() const noexcept { return m_bias_grad; }

    /// Handles on the weight and the bias with their gradients, named "weight" and "bias".
    /// @throws shape_error if `weight()` or `bias()` was assigned a tensor of another shape.
    std::vector<parameter<T>> parameters()
    {
        check_parameter_shapes();
        return {parameter<T>("weight", m_weight, m_weight_grad), parameter<T>("bias", m_bias, m_bias_grad)};
    }
    /// Number of trainable scalars, C_out * C_in * KH * KW + C_out.
    std::size_t num_parameters() const { return m_weight.size() + m_bias.size(); }

    /// Kaiming-uniform weights and uniform biases, PyTorch's defaults, drawn from `rng`.
    void reset_parameters(std::mt19937& rng)
    {
        const std::size_t fan_in = m_options.in_channels() * m_options.kernel_size()[0] * m_options.kernel_size()[1];
        init::kaiming_uniform(m_weight, fan_in, rng);
        init::bias_uniform(m_bias, fan_in, rng);
    }

    /// `Conv2D(C_in, C_out, kernel_size=(KH, KW), stride=(SH, SW), padding=(PH, PW))`, as shown in
    /// `Sequential::summary` and in error messages.
    std::string name() const
    {
        const auto k = m_options.kernel_size(), s = m_options.stride(), p = m_options.padding();
        return detail::concat("Conv2D(", m_options.in_channels(), ", ", m_options.out_channels(),
                              ", kernel_size=", detail::shape_to_string(k), ", stride=", detail::shape_to_string(s),
                              ", padding=", detail::shape_to_string(p), ")");
    }

    /// (N, C_out, OH, OW) for an (N, C_in, H, W) input; N may be 0.
    /// @throws shape_error for another rank or channel count, a zero height or width, an input
    /// smaller than the kernel, or a padded input or output of more than `max_extent` elements.
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const
    {
        const auto shape = checked_output_shape(input_shape);
        return std::vector<std::size_t>(shape.begin(), shape.end());
    }

    /// y = conv(x, weight) + bias; keeps the padded input for `backward`.
    /// @throws shape_error as `output_shape` does, or if `weight()` or `bias()` was assigned a
    /// tensor of another shape; the layer is then unchanged.
    const output_type& forward(const input_type& x)
    {
        run(x, false);
        m_has_cache = true;
        return m_output;
    }

    /// Same result as `forward`, marked as inference: `backward` after it is an error.
    const output_type& predict(const input_type& x)
    {
        run(x, false);
        m_has_cache = false;
        return m_output;
    }

    /// What `Sequential` runs for this layer followed by a `ReLU`: ReLU(conv(x)), the ReLU
    /// applied in the copy that writes the output (`training` false is `predict`). Then
    /// `backward_relu` takes the gradient of the ReLU's output. The results are those of the two
    /// layers one after the other, bit for bit, without the ReLU's passes over the activations.
    const output_type& forward_relu(const input_type& x, bool training)
    {
        run(x, true);
        m_has_cache = training;
        return m_output;
    }

    /// @overload
    /// For inputs of any expression type; checks the rank and evaluates the input first.
    template <class E>
    const output_type& forward_relu(const xt::xexpression<E>& x, bool training)
    {
        return forward_relu(this->converted_input(x), training);
    }

    /// @overload
    /// For gradients of any expression type; checks the rank and evaluates the gradient first.
    template <class E>
    const input_type& backward_relu(const xt::xexpression<E>& grad_output)
    {
        return backward_relu(this->converted_gradient(grad_output));
    }

    /// @overload
    /// For gradients of any expression type; checks the rank and evaluates the gradient first.
    template <class E>
    void backward_parameters_relu(const xt::xexpression<E>& grad_output)
    {
        backward_parameters_relu(this->converted_gradient(grad_output));
    }

    /// `backward` of the gradient of ReLU(conv(x)) after `forward_relu`: dY is passed only where
    /// the output is positive, inside the copies the backward pass makes anyway.
    const input_type& backward_relu(const output_type& grad_output)
    {
        check_backward(grad_output);
        const auto g = geometry();
        // The plane form's spread and the window view's placed dY apply the mask in their copies;
        // the passes that read dY in place (window dW, strided dX) need it masked first.
        const bool fused = detail::choose_weight_grad_form<T>(g) == detail::conv_form::plane &&
                           detail::choose_input_grad_form<T>(g) != detail::conv_form::strided_col2im;
        const output_type& dy = fused ? grad_output : masked_gradient(grad_output);
        const T* mask = fused ? m_output.data() : nullptr;
        const detail::spread_grad<T> spread = parameter_grads(g, dy, mask);
        return input_grad(g, dy, mask, spread);
    }

    /// `backward_parameters` of the gradient of ReLU(conv(x)) after `forward_relu`.
    void backward_parameters_relu(const output_type& grad_output)
    {
        check_backward(grad_output);
        const auto g = geometry();
        if (detail::choose_weight_grad_form<T>(g) == detail::conv_form::plane)
        {
            parameter_grads(g, grad_output, m_output.data());
        }
        else
        {
            parameter_grads(g, masked_gradient(grad_output), nullptr);
        }
    }

    /// dX for dY = `grad_output`; overwrites `weight_grad()` and `bias_grad()`.
    /// @throws error without a `forward` since construction or after a `predict`; shape_error if
    /// `grad_output` does not have the shape of the last output.
    const input_type& backward(const output_type& grad_output)
    {
        check_backward(grad_output);
        const auto g = geometry();
        const detail::spread_grad<T> spread = parameter_grads(g, grad_output, nullptr);
        return input_grad(g, grad_output, nullptr, spread);
    }

    /// @overload
    /// For gradients of any expression type; checks the rank and evaluates the gradient first.
    template <class E>
    void backward_parameters(const xt::xexpression<E>& grad_output)
    {
        backward_parameters(this->converted_gradient(grad_output));
    }

    /// Overwrites `weight_grad()` and `bias_grad()` without computing dX: what a first layer,
    /// whose input needs no gradient, does in training (`Sequential::backward_parameters`).
    /// @throws error without a `forward` first, shape_error for a gradient of another shape, as
    /// `backward` does.
    void backward_parameters(const output_type& grad_output)
    {
        check_backward(grad_output);
        parameter_grads(geometry(), grad_output, nullptr);
    }

private:
    void check_backward(const output_type& grad_output) const
    {
        if (!m_has_cache)
        {
            throw error(detail::concat(name(), ": backward needs a forward (not predict) first"));
        }
        detail::require_grad_shape(*this, grad_output.shape(), m_output.shape());
        check_parameter_shapes();
    }

    /// Overwrites `weight_grad()` and `bias_grad()`. `mask` (the output of `forward_relu`: dY
    /// counts only where it is positive) is for the plane form only, which fuses it into its
    /// spread. Returns the dY spread over the padded width when the plane form made one, for the
    /// plane form's dX, which reads it too; an empty `spread_grad` otherwise.
    detail::spread_grad<T> parameter_grads(const detail::conv_geometry& g, const output_type& dy, const T* mask)
    {
        if (detail::choose_weight_grad_form<T>(g) == detail::conv_form::plane)
        {
            const auto spread = detail::spread_output_grad(g, dy.data(), mask, m_work.plane);
            detail::plane_weight_grad(g, spread, m_padded.data(), m_weight_grad.data(), m_bias_grad.data(),
                                      m_work.plane);
            return spread;
        }
        detail::window_weight_grad(g, m_padded, dy, m_weight_grad, m_bias_grad.data(), m_work.window, m_work.gemm);
        return {};
    }

    /// dX into `m_input_grad`. `mask` as for `parameter_grads`, here for the window view's placed
    /// dY (the strided form reads dY in place); `spread` is what `parameter_grads` returned.
    const input_type& input_grad(const detail::conv_geometry& g, const output_type& dy, const T* mask,
                                 detail::spread_grad<T> spread)
    {
        detail::ensure_shape(m_input_grad, g.input_shape());
        switch (detail::choose_input_grad_form<T>(g))
        {
        case detail::conv_form::plane:
            if (spread.plane == 0)
            {
                spread = detail::spread_output_grad(g, dy.data(), mask, m_work.plane);
            }
            detail::plane_input_grad(g, m_weight.data(), spread, m_input_grad.data(), m_work.plane, m_work.gemm);
            break;
        case detail::conv_form::window_view:
            detail::window_input_grad(g, m_weight, dy, mask, m_input_grad, m_work.window, m_work.gemm);
            break;
        case detail::conv_form::strided_col2im:
            detail::strided_input_grad(g, m_weight.data(), dy.data(), m_input_grad.data(), m_work.strided, m_work.gemm);
            break;
        }
        return m_input_grad;
    }

    /// Validates an input shape (any container of sizes) and returns the output shape, without
    /// allocating.
    template <class S>
    std::array<std::size_t, 4> checked_output_shape(const S& input_shape) const
    {
        detail::require_rank(*this, input_shape, 4, "(N, C, H, W)");
        const auto k = m_options.kernel_size(), s = m_options.stride(), p = m_options.padding();
        if (input_shape[1] != m_options.in_channels())
        {
            throw shape_error(detail::concat(name(), ": expected ", m_options.in_channels(),
                                             " input channels, got input ", detail::shape_to_string(input_shape)));
        }
        detail::require_nonempty_axes(*this, input_shape, 2);
        std::array<std::size_t, 2> padded{};
        for (std::size_t d = 0; d < 2; ++d)
        {
            // The constructor bounds p by max_extent, so 2 * p cannot wrap; H + 2 * p can.
            if (input_shape[2 + d] > std::numeric_limits<std::size_t>::max() - 2 * p[d])
            {
                throw shape_error(detail::concat(name(), ": input ", detail::shape_to_string(input_shape),
                                                 " padded by ", detail::shape_to_string(p), " overflows std::size_t"));
            }
            padded[d] = input_shape[2 + d] + 2 * p[d];
            if (padded[d] < k[d])
            {
                throw shape_error(detail::concat(name(), ": input ", detail::shape_to_string(input_shape),
                                                 " padded by ", detail::shape_to_string(p),
                                                 " is smaller than the kernel ", detail::shape_to_string(k)));
            }
        }
        const std::array<std::size_t, 4> out{input_shape[0], m_options.out_channels(), (padded[0] - k[0]) / s[0] + 1,
                                             (padded[1] - k[1]) / s[1] + 1};
        detail::require_addressable(*this, input_shape,
                                    std::array<std::size_t, 4>{input_shape[0], input_shape[1], padded[0], padded[1]},
                                    "a padded input");
        detail::require_addressable(*this, input_shape, out, "an output");
        if (s[0] == 1 && s[1] == 1)
        {
            // The placed dY of the window view's dX; checked here so backward cannot fail on it.
            detail::require_addressable(*this, input_shape,
                                        std::array<std::size_t, 4>{input_shape[0], out[1], input_shape[2] + k[0] - 1,
                                                                   input_shape[3] + k[1] - 1},
                                        "a gradient buffer");
        }
        return out;
    }

    /// The geometry of the last forward, from the padded input it kept.
    detail::conv_geometry geometry() const
    {
        const auto& s = m_padded.shape();
        const auto p = m_options.padding();
        detail::conv_geometry g;
        g.batch = s[0];
        g.in_channels = s[1];
        g.out_channels = m_options.out_channels();
        g.input = {s[2] - 2 * p[0], s[3] - 2 * p[1]};
        g.kernel = m_options.kernel_size();
        g.stride = m_options.stride();
        g.padding = p;
        return g;
    }

    void check_parameter_shapes() const
    {
        const auto k = m_options.kernel_size();
        const std::array<std::size_t, 4> w{m_options.out_channels(), m_options.in_channels(), k[0], k[1]};
        if (m_weight.shape() != w || m_bias.size() != m_options.out_channels())
        {
            throw shape_error(detail::concat(name(), ": weight ", detail::shape_to_string(m_weight.shape()),
                                             " and bias ", detail::shape_to_string(m_bias.shape()),
                                             " were assigned with shapes other than ", detail::shape_to_string(w),
                                             " and (", m_options.out_channels(), ",)"));
        }
    }

    /// dY where the output of `forward_relu` is positive, zero elsewhere, for the forms that
    /// read dY in place.
    const output_type& masked_gradient(const output_type& grad_output)
    {
        detail::ensure_shape(m_work.masked_grad, m_output.shape());
        detail::copy_short_masked(grad_output.data(), m_output.data(), m_output.size(), m_work.masked_grad.data());
        return m_work.masked_grad;
    }

    void run(const input_type& x, bool relu)
    {
        const auto out_shape = checked_output_shape(x.shape());
        check_parameter_shapes();
        zero_pad2d_into(x, m_options.padding()[0], m_options.padding()[1], m_padded);
        detail::ensure_shape(m_output, out_shape);
        const auto g = geometry();
        if (detail::choose_forward_form<T>(g) == detail::conv_form::plane)
        {
            detail::plane_forward(g, m_weight.data(), m_bias.data(), m_padded.data(), m_output.data(), relu,
                                  m_work.plane, m_work.gemm);
        }
        else
        {
            detail::window_forward(g, m_padded, m_weight, m_bias.data(), m_output, relu, m_work.window, m_work.gemm);
        }
    }

    Conv2DOptions m_options;
    xt::xtensor<T, 4> m_weight;
    xt::xtensor<T, 1> m_bias;
    xt::xtensor<T, 4> m_weight_grad;
    xt::xtensor<T, 1> m_bias_grad;

    xt::xtensor<T, 4> m_padded;     // zero-padded input of the last forward
    xt::xtensor<T, 4> m_output;     // y (ReLU(y) after forward_relu)
    xt::xtensor<T, 4> m_input_grad; // dX
    detail::conv_workspace<T> m_work;
    bool m_has_cache = false;
};

} // namespace xcnn

#endif // XCNN_LAYERS_CONV2D_HPP
