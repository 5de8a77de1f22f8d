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
#include <tuple>
#include <vector>

#include "../core/activation.hpp"
#include "../core/conv/forward.hpp"
#include "../core/conv/select.hpp"
#include "../core/elementwise.hpp"
#include "../core/error.hpp"
#include "../core/padding.hpp"
#include "../core/xtensor_shim.hpp"
#include "init.hpp"
#include "layer.hpp"

namespace xcnn
{

/// Height and width of a kernel, stride, padding or dilation.
using size2 = std::array<std::size_t, 2>;

/// Options of a `Conv2D`, named after PyTorch's `torch::nn::Conv2dOptions`: each setter
/// returns the options so they chain, each getter has the setter's name.
/// `Conv2D<float>(Conv2DOptions(3, 16, 5).stride(2).padding({1, 2}))`;
/// `Conv2DOptions(32, 32, 3).padding(1).groups(32).bias(false)` is a depthwise 3x3 without bias.
class Conv2DOptions
{
public:
    /// A square `kernel_size` x `kernel_size` kernel, stride 1, no padding, dilation 1, one group,
    /// a bias.
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
    /// (DH, DW), the distance between kernel taps; (1, 1) unless set.
    size2 dilation() const noexcept { return m_dilation; }
    /// G: input and output channels split into G groups, output group g reading input group g
    /// only; 1 unless set.
    std::size_t groups() const noexcept { return m_groups; }
    /// Whether the layer has a bias; true unless set.
    bool bias() const noexcept { return m_bias; }

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
    /// The same dilation along H and W.
    Conv2DOptions& dilation(std::size_t d) { return dilation(size2{d, d}); }
    /// Dilation (DH, DW): tap (a, b) reads input pixel (oh SH + a DH - PH, ow SW + b DW - PW), so
    /// the kernel spans (KH - 1) DH + 1 rows, as in PyTorch.
    Conv2DOptions& dilation(size2 d)
    {
        m_dilation = d;
        return *this;
    }
    /// G groups: in_channels and out_channels must be multiples of G (the layer checks). G =
    /// in_channels is a depthwise convolution, out_channels / in_channels filters per channel.
    Conv2DOptions& groups(std::size_t g)
    {
        m_groups = g;
        return *this;
    }
    /// With `false`, no bias at all: `parameters()` lists only "weight", as PyTorch's
    /// `Conv2d(..., bias=False)` registers none.
    Conv2DOptions& bias(bool b)
    {
        m_bias = b;
        return *this;
    }

private:
    std::size_t m_in;
    std::size_t m_out;
    size2 m_kernel;
    size2 m_stride{1, 1};
    size2 m_padding{0, 0};
    size2 m_dilation{1, 1};
    std::size_t m_groups = 1;
    bool m_bias = true;
};

/// 2-D convolution over NCHW input with PyTorch's semantics and layouts: `weight()` is
/// (C_out, C_in / groups, KH, KW), `bias()` is (C_out) unless built with `bias(false)`, output
/// (N, C_out, OH, OW) with OH = (H + 2 pad_h - dilation_h (KH - 1) - 1) / stride_h + 1.
///
/// The forward pass is the contraction of the window view (N, C_in, OH, OW, KH, KW) of the
/// zero-padded input with the kernel over (C_in, KH, KW), group by group; see docs/design.md. The
/// layer checks shapes and keeps the buffers; the passes are the forms in core/conv/, picked for
/// each pass by core/conv/select.hpp (a depthwise convolution runs direct per-channel kernels).
template <class T>
class Conv2D : public layer<Conv2D<T>, T, 4>
{
    static_assert(std::is_floating_point<T>::value, "xcnn::Conv2D<T>: T must be float or double");
    using base = layer<Conv2D<T>, T, 4>;

public:
    using typename base::input_type;
    using typename base::output_type;

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

    /// Any kernel, stride, padding, dilation, groups and bias, e.g.
    /// `Conv2D<float>(Conv2DOptions(3, 16, {3, 5}).stride(2).dilation(2))`.
    /// @throws value_error if a channel count, a kernel size, a stride, a dilation or the groups
    /// are zero, any size is larger than `max_extent` (a negative number converted to
    /// `std::size_t`), the channel counts are not multiples of the groups, or the weight would
    /// have more than `max_extent` elements.
    explicit Conv2D(const Conv2DOptions& options) : m_options(options)
    {
        const auto k = options.kernel_size(), s = options.stride(), p = options.padding(), d = options.dilation();
        const std::string layer = name();
        detail::require_size_argument(layer, "in_channels", options.in_channels(), options.in_channels(), 1);
        detail::require_size_argument(layer, "out_channels", options.out_channels(), options.out_channels(), 1);
        detail::require_size_argument(layer, "groups", options.groups(), options.groups(), 1);
        for (std::size_t a = 0; a < 2; ++a)
        {
            detail::require_size_argument(layer, "kernel_size", k[a], detail::shape_to_string(k), 1);
            detail::require_size_argument(layer, "stride", s[a], detail::shape_to_string(s), 1);
            detail::require_size_argument(layer, "padding", p[a], detail::shape_to_string(p), 0);
            detail::require_size_argument(layer, "dilation", d[a], detail::shape_to_string(d), 1);
            // The kernel's span (K - 1) D + 1 must not wrap either.
            if ((k[a] - 1) > (max_extent - 1) / d[a])
            {
                throw value_error(detail::concat(layer, ": kernel_size ", detail::shape_to_string(k), " dilated by ",
                                                 detail::shape_to_string(d), " spans more than ", max_extent,
                                                 " pixels"));
            }
        }
        if (options.in_channels() % options.groups() != 0 || options.out_channels() % options.groups() != 0)
        {
            throw value_error(detail::concat(layer, ": in_channels (", options.in_channels(), ") and out_channels (",
                                             options.out_channels(), ") must both be divisible by groups (",
                                             options.groups(), ")"));
        }
        const std::array<std::size_t, 4> weight_shape{options.out_channels(), options.in_channels() / options.groups(),
                                                      k[0], k[1]};
        detail::require_addressable_weight(layer, weight_shape);
        m_weight = learnable<T, 4>("weight", weight_shape);
        if (options.bias())
        {
            m_bias = learnable<T, 1>("bias", {options.out_channels()});
        }
        std::mt19937 rng(detail::default_init_seed);
        reset_parameters(rng);
    }

    /// The channels, kernel size, stride, padding, dilation, groups and bias the layer was built with.
    const Conv2DOptions& options() const noexcept { return m_options; }

    /// The kind in a `layer_spec`.
    static constexpr const char* kind = "Conv2D";

    /// Every option, under the names of PyTorch's `Conv2d` arguments: in_channels, out_channels,
    /// kernel_size, stride, padding, dilation (pairs), groups, bias (0 or 1).
    layer_spec spec() const
    {
        const auto& o = m_options;
        return layer_spec{kind, {}, {}}
            .set_size("in_channels", o.in_channels())
            .set_size("out_channels", o.out_channels())
            .set_pair("kernel_size", o.kernel_size())
            .set_pair("stride", o.stride())
            .set_pair("padding", o.padding())
            .set_pair("dilation", o.dilation())
            .set_size("groups", o.groups())
            .set_size("bias", o.bias() ? 1 : 0);
    }

    /// The layer `spec` describes, freshly initialised; options left out take PyTorch's defaults
    /// (stride 1, padding 0, dilation 1, groups 1, bias 1), a pair may be one number for both.
    /// @throws value_error for another kind, an unknown, missing or malformed option, or a value
    /// the constructor refuses.
    static Conv2D from_spec(const layer_spec& spec)
    {
        const spec_reader r(
            spec, kind,
            {"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias"});
        return Conv2D(Conv2DOptions(r.size("in_channels"), r.size("out_channels"), r.pair("kernel_size"))
                          .stride(r.pair("stride", {1, 1}))
                          .padding(r.pair("padding", {0, 0}))
                          .dilation(r.pair("dilation", {1, 1}))
                          .groups(r.size("groups", 1))
                          .bias(r.flag("bias", true)));
    }

    /// (C_out, C_in / groups, KH, KW). Assign a tensor of this shape to load weights.
    xt::xtensor<T, 4>& weight() noexcept { return m_weight.value(); }
    /// (C_out, C_in / groups, KH, KW), read-only.
    const xt::xtensor<T, 4>& weight() const noexcept { return m_weight.value(); }
    /// Whether the layer has a bias (`Conv2DOptions::bias`).
    bool has_bias() const noexcept { return m_bias.declared(); }
    /// (C_out).
    /// @throws error if the layer was built with `bias(false)`.
    xt::xtensor<T, 1>& bias()
    {
        require_bias();
        return m_bias.value();
    }
    /// (C_out), read-only.
    /// @throws error if the layer was built with `bias(false)`.
    const xt::xtensor<T, 1>& bias() const
    {
        require_bias();
        return m_bias.value();
    }
    /// dLoss/dweight of the last `backward` (overwritten, not accumulated).
    const xt::xtensor<T, 4>& weight_grad() const noexcept { return m_weight.grad(); }
    /// dLoss/dbias of the last `backward` (overwritten, not accumulated).
    /// @throws error if the layer was built with `bias(false)`.
    const xt::xtensor<T, 1>& bias_grad() const
    {
        require_bias();
        return m_bias.grad();
    }

    /// The learnable tensors, "weight" and "bias", for `parameters()` and `num_parameters()`; a
    /// layer built with `bias(false)` leaves its bias undeclared, so only "weight" is listed.
    auto parameter_slots() { return std::tie(m_weight, m_bias); }

    /// Kaiming-uniform weights and uniform biases, PyTorch's defaults, drawn from `rng`; the fan-in
    /// is that of one group, (C_in / groups) KH KW, as in PyTorch.
    void reset_parameters(std::mt19937& rng)
    {
        const std::size_t fan_in =
            m_options.in_channels() / m_options.groups() * m_options.kernel_size()[0] * m_options.kernel_size()[1];
        init::kaiming_uniform(m_weight.value(), fan_in, rng);
        if (m_bias.declared())
        {
            init::bias_uniform(m_bias.value(), fan_in, rng);
        }
    }

    /// `Conv2D(C_in, C_out, kernel_size=(KH, KW), stride=(SH, SW), padding=(PH, PW))`, followed,
    /// as PyTorch's repr does, by those options that differ from their defaults:
    /// `dilation=(DH, DW)`, `groups=G`, `bias=False`. Shown in `Sequential::summary` and in error
    /// messages.
    std::string name() const
    {
        const auto k = m_options.kernel_size(), s = m_options.stride(), p = m_options.padding(),
                   d = m_options.dilation();
        const bool dilated = d[0] != 1 || d[1] != 1;
        return detail::concat("Conv2D(", m_options.in_channels(), ", ", m_options.out_channels(),
                              ", kernel_size=", detail::shape_to_string(k), ", stride=", detail::shape_to_string(s),
                              ", padding=", detail::shape_to_string(p),
                              dilated ? ", dilation=" + detail::shape_to_string(d) : std::string(),
                              m_options.groups() != 1 ? ", groups=" + std::to_string(m_options.groups())
                                                      : std::string(),
                              m_options.bias() ? "" : ", bias=False", ")");
    }

    /// (N, C_out, OH, OW) for an (N, C_in, H, W) input; N may be 0.
    /// @throws shape_error for another rank or channel count, a zero height or width, an input
    /// smaller than the (dilated) kernel, or a padded input or output of more than `max_extent`
    /// elements.
    template <class S>
    std::array<std::size_t, 4> checked_output_shape(const S& input_shape) const
    {
        detail::require_rank(*this, input_shape, 4, "(N, C, H, W)");
        const auto s = m_options.stride(), p = m_options.padding(), dil = m_options.dilation();
        // The span of the dilated kernel, (K - 1) D + 1 (the constructor checked it fits).
        const size2 k{(m_options.kernel_size()[0] - 1) * dil[0] + 1, (m_options.kernel_size()[1] - 1) * dil[1] + 1};
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
                                                 dil[0] * dil[1] == 1 ? " is smaller than the kernel "
                                                                      : " is smaller than the dilated kernel's span ",
                                                 detail::shape_to_string(k)));
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

    /// y = conv(x, weight) + bias; keeps the padded input for `backward`.
    const output_type& run_forward(const input_type& x, bool)
    {
        run(x, false);
        return m_output;
    }

    /// dX for dY = `grad_output`; overwrites `weight_grad()` and `bias_grad()`.
    const input_type& run_backward(const output_type& grad_output) { return gradients(grad_output, nullptr); }

    /// Overwrites `weight_grad()` and `bias_grad()` without computing dX.
    void run_backward_parameters(const output_type& grad_output) { weight_grads(geometry(), grad_output, nullptr); }

    /// dW and db of dY = `dy` on the form `choose_weight_grad_form` picks. `mask`: the output of
    /// `forward_activated` with a rectifier, or null; the window view reads dY in place and
    /// ignores it, so its callers mask dY first.
    void weight_grads(const detail::conv_geometry& g, const output_type& dy, const T* mask)
    {
        if (detail::depthwise(g))
        {
            depthwise_grads(g, dy, mask, false);
            return;
        }
        switch (detail::choose_weight_grad_form<T>(g))
        {
        case detail::conv_form::winograd:
            winograd_grads(g, dy, mask);
            break;
        case detail::conv_form::lowered:
            lowered_grads(g, dy, mask, false);
            break;
        case detail::conv_form::direct:
            direct_grads(g, dy, mask);
            break;
        default:
            parameter_grads(g, dy, mask);
        }
    }

    /// What `Sequential` runs for this layer followed by an activation of functor `Op`: f(conv(x)),
    /// applied while the output is written (`training` false is `predict`). Then
    /// `backward_activated` takes the gradient of the activation's output. For a functor that
    /// `rectifies` (ReLU) the forms apply it in the copy that writes the output and mask dY
    /// inside the copies the backward pass makes anyway; other functors run over the output
    /// while it is in cache. The results are those of the two layers one after the other, bit
    /// for bit, without the activation's passes over the activations.
    template <class Op>
    const output_type& forward_activated(const input_type& x, bool training, const Op& op)
    {
        return this->cached_forward(training,
                                    [&]() -> const output_type&
                                    {
                                        this->check_parameter_shapes();
                                        run(x, detail::rectifies<Op>::value);
                                        if constexpr (!detail::rectifies<Op>::value)
                                        {
                                            detail::activate_in_place(op, m_output, m_preactivation);
                                        }
                                        return m_output;
                                    });
    }

    /// @overload
    /// For inputs of any expression type; checks the rank and evaluates the input first.
    template <class E, class Op>
    const output_type& forward_activated(const xt::xexpression<E>& x, bool training, const Op& op)
    {
        return forward_activated(this->converted_input(x), training, op);
    }

    /// What `Sequential` and `Network` run at inference for this layer followed by a per-channel
    /// affine map — an inference BatchNorm2D, `affine.inference_affine(scale, shift)` — and
    /// optionally an activation: f(scale[c] * conv(x)[c] + shift[c]) in one convolution. The map
    /// is folded into a copy of the weights and bias first, W'[c] = scale[c] W[c] and
    /// b'[c] = scale[c] b[c] + shift[c], as ONNX Runtime and oneDNN fold BatchNorm: O(C_out C_in
    /// KH KW) work before the convolution, and no pass over the activations for the map. The
    /// result equals the layers one after the other to rounding (the products associate
    /// differently). Keeps no training cache.
    /// @throws shape_error if `affine` has another number of channels than the output.
    template <class Affine, class Op>
    const output_type& predict_affine(const input_type& x, const Affine& affine, const Op& op)
    {
        fold(affine);
        return this->cached_forward(false,
                                    [&]() -> const output_type&
                                    {
                                        run(x, detail::rectifies<Op>::value, m_folded_weight, m_folded_bias.data());
                                        if constexpr (!detail::rectifies<Op>::value)
                                        {
                                            detail::activate_in_place(op, m_output, m_preactivation);
                                        }
                                        return m_output;
                                    });
    }

    /// `predict_affine` without an activation.
    template <class Affine>
    const output_type& predict_affine(const input_type& x, const Affine& affine)
    {
        fold(affine);
        return this->cached_forward(false,
                                    [&]() -> const output_type&
                                    {
                                        run(x, false, m_folded_weight, m_folded_bias.data());
                                        return m_output;
                                    });
    }

    /// `backward` of the gradient of f(conv(x)) after `forward_activated`.
    template <class Op>
    const input_type& backward_activated(const output_type& grad_output, const Op& op)
    {
        check_backward(grad_output);
        if constexpr (detail::rectifies<Op>::value)
        {
            // The plane form's spread, the window view's placed dY and the depthwise kernels'
            // spread apply the mask in their copies; the passes that read dY in place (window dW,
            // strided dX) need it masked first.
            const auto g = geometry();
            const auto weight_form = detail::choose_weight_grad_form<T>(g);
            const bool fused = detail::depthwise(g) || weight_form == detail::conv_form::lowered ||
                               weight_form == detail::conv_form::winograd ||
                               ((weight_form == detail::conv_form::plane || weight_form == detail::conv_form::direct) &&
                                detail::choose_input_grad_form<T>(g) != detail::conv_form::strided_col2im);
            return fused ? gradients(grad_output, m_output.data())
                         : gradients(activated_gradient(grad_output, op), nullptr);
        }
        else
        {
            return gradients(activated_gradient(grad_output, op), nullptr);
        }
    }

    /// @overload
    /// For gradients of any expression type; checks the rank and evaluates the gradient first.
    template <class E, class Op>
    const input_type& backward_activated(const xt::xexpression<E>& grad_output, const Op& op)
    {
        return backward_activated(this->converted_gradient(grad_output), op);
    }

    /// `backward_parameters` of the gradient of f(conv(x)) after `forward_activated`.
    template <class Op>
    void backward_parameters_activated(const output_type& grad_output, const Op& op)
    {
        check_backward(grad_output);
        const auto g = geometry();
        if constexpr (detail::rectifies<Op>::value)
        {
            // Every weight form but the window view's applies the mask in its copies.
            if (detail::depthwise(g) || detail::choose_weight_grad_form<T>(g) != detail::conv_form::window_view)
            {
                weight_grads(g, grad_output, m_output.data());
                return;
            }
        }
        weight_grads(g, activated_gradient(grad_output, op), nullptr);
    }

    /// @overload
    /// For gradients of any expression type; checks the rank and evaluates the gradient first.
    template <class E, class Op>
    void backward_parameters_activated(const xt::xexpression<E>& grad_output, const Op& op)
    {
        backward_parameters_activated(this->converted_gradient(grad_output), op);
    }

private:
    /// Throws `error` naming the layer if it was built with `bias(false)`.
    void require_bias() const
    {
        if (!m_bias.declared())
        {
            throw error(detail::concat(name(), ": the layer has no bias (built with bias(false))"));
        }
    }

    /// The bias, or null without one.
    const T* bias_data() const noexcept { return m_bias.declared() ? m_bias.value().data() : nullptr; }
    /// The bias's gradient, or null without a bias.
    T* bias_grad_data() noexcept { return m_bias.declared() ? m_bias.grad().data() : nullptr; }

    /// dX, dW and db of dY = `dy`; `mask` as for `parameter_grads`, for the forms that fuse it.
    const input_type& gradients(const output_type& dy, const T* mask)
    {
        const auto g = geometry();
        if (detail::depthwise(g))
        {
            depthwise_grads(g, dy, mask, true);
            return m_input_grad;
        }
        switch (detail::choose_weight_grad_form<T>(g))
        {
        case detail::conv_form::winograd:
            winograd_grads(g, dy, mask);
            return input_grad(g, dy, mask, {});
        case detail::conv_form::lowered:
        {
            // dX along, from the same transposed dY, unless another form runs it.
            const bool along = detail::choose_input_grad_form<T>(g) == detail::conv_form::lowered;
            lowered_grads(g, dy, mask, along);
            return along ? m_input_grad : input_grad(g, dy, mask, {});
        }
        case detail::conv_form::direct:
            direct_grads(g, dy, mask);
            return input_grad(g, dy, mask, {});
        default:
            return input_grad(g, dy, mask, parameter_grads(g, dy, mask));
        }
    }

    /// The depthwise kernels' dW, db and, with `input_grad`, dX in one pass over dY.
    void depthwise_grads(const detail::conv_geometry& g, const output_type& dy, const T* mask, bool input_grad)
    {
        if (input_grad)
        {
            detail::ensure_shape(m_input_grad, g.input_shape());
        }
        T* dx = input_grad ? m_input_grad.data() : nullptr;
        if (detail::depthwise_form(g) == detail::conv_form::depthwise_phases)
        {
            detail::depthwise_phases_backward(g, m_weight.value().data(), m_padded.data(), dy.data(), mask,
                                              m_weight.grad().data(), bias_grad_data(), dx, m_work.depthwise_phases);
            return;
        }
        detail::depthwise_backward(g, m_weight.value().data(), m_padded.data(), dy.data(), mask, m_weight.grad().data(),
                                   bias_grad_data(), dx, m_work.depthwise);
    }

    /// The lowered form's dW, db and, with `input_grad`, dX, from one transposed dY.
    void lowered_grads(const detail::conv_geometry& g, const output_type& dy, const T* mask, bool input_grad)
    {
        if (input_grad)
        {
            detail::ensure_shape(m_input_grad, g.input_shape());
        }
        detail::lowered_backward(g, m_weight.value().data(), m_padded.data(), dy.data(), mask, m_weight.grad().data(),
                                 bias_grad_data(), input_grad ? m_input_grad.data() : nullptr, m_work.lowered,
                                 m_work.gemm);
    }

    /// The Winograd form's dW and db.
    void winograd_grads(const detail::conv_geometry& g, const output_type& dy, const T* mask)
    {
        detail::winograd_weight_grad(g, m_padded.data(), dy.data(), mask, m_weight.grad().data(), bias_grad_data(),
                                     m_work.winograd, m_work.gemm);
    }

    /// The direct form's dW and db.
    void direct_grads(const detail::conv_geometry& g, const output_type& dy, const T* mask)
    {
        detail::direct_weight_grad(g, m_padded.data(), dy.data(), mask, m_weight.grad().data(), bias_grad_data(),
                                   m_work.direct);
    }

    /// What the base checks before `run_backward`, for the fused forms.
    void check_backward(const output_type& grad_output) const
    {
        this->require_cache(grad_output);
        this->check_parameter_shapes();
    }

    /// Overwrites `weight_grad()` and `bias_grad()`. `mask` (the output of `forward_activated` with a rectifier: dY
    /// counts only where it is positive) is for the plane form only, which fuses it into its
    /// spread. Returns the dY spread over the padded width when the plane form made one, for the
    /// plane form's dX, which reads it too; an empty `spread_grad` otherwise.
    detail::spread_grad<T> parameter_grads(const detail::conv_geometry& g, const output_type& dy, const T* mask)
    {
        if (detail::choose_weight_grad_form<T>(g) == detail::conv_form::plane)
        {
            const auto spread = detail::spread_output_grad(g, dy.data(), mask, m_work.plane);
            detail::plane_weight_grad(g, spread, m_padded.data(), m_weight.grad().data(), bias_grad_data(),
                                      m_work.plane, m_work.gemm);
            return spread;
        }
        detail::window_weight_grad(g, m_padded, dy, m_weight.grad(), bias_grad_data(), m_work.window, m_work.gemm);
        return {};
    }

    /// dX into `m_input_grad`. `mask` as for `parameter_grads`, here for the window view's placed
    /// dY and the Winograd form's padded dY (the strided form reads dY in place); `spread` is
    /// what `parameter_grads` returned.
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
            detail::plane_input_grad(g, m_weight.value().data(), spread, m_input_grad.data(), m_work.plane,
                                     m_work.gemm);
            break;
        case detail::conv_form::window_view:
            detail::window_input_grad(g, m_weight.value(), dy, mask, m_input_grad, m_work.window, m_work.gemm);
            break;
        case detail::conv_form::strided_col2im:
            detail::strided_input_grad(g, m_weight.value().data(), dy.data(), m_input_grad.data(), m_work.strided,
                                       m_work.gemm);
            break;
        case detail::conv_form::depthwise: // `gradients` runs the depthwise form itself
        case detail::conv_form::winograd:
            detail::winograd_input_grad(g, m_weight.value().data(), dy.data(), mask, m_input_grad.data(),
                                        m_work.winograd, m_work.gemm);
            break;
        case detail::conv_form::lowered: // dX alone: dW ran on another form
            detail::lowered_backward(g, m_weight.value().data(), m_padded.data(), dy.data(), mask,
                                     static_cast<T*>(nullptr), static_cast<T*>(nullptr), m_input_grad.data(),
                                     m_work.lowered, m_work.gemm);
            break;
        case detail::conv_form::direct:
            detail::direct_input_grad(g, m_weight.value().data(), dy.data(), mask, m_input_grad.data(), m_work.direct);
            break;
        case detail::conv_form::depthwise_phases:
            break;
        }
        return m_input_grad;
    }

    /// The geometry of the last forward, from the shape of the padded input it kept.
    detail::conv_geometry geometry() const
    {
        const auto& s = m_padded.shape();
        const auto p = m_options.padding();
        return geometry_for({s[0], s[1], s[2] - 2 * p[0], s[3] - 2 * p[1]});
    }

    /// The geometry of a forward pass on an input of shape (N, C_in, H, W).
    detail::conv_geometry geometry_for(const std::array<std::size_t, 4>& input_shape) const
    {
        const auto p = m_options.padding();
        detail::conv_geometry g;
        g.batch = input_shape[0];
        g.in_channels = input_shape[1];
        g.out_channels = m_options.out_channels();
        g.input = {input_shape[2], input_shape[3]};
        g.kernel = m_options.kernel_size();
        g.stride = m_options.stride();
        g.padding = p;
        g.dilation = m_options.dilation();
        g.groups = m_options.groups();
        return g;
    }

    /// dL/dy through the activation into the workspace, for the passes that read dY in place.
    template <class Op>
    const output_type& activated_gradient(const output_type& grad_output, const Op& op)
    {
        return detail::activation_gradient_into(op, grad_output, m_preactivation, m_output, m_work.masked_grad);
    }

    void run(const input_type& x, bool relu) { run(x, relu, m_weight.value(), bias_data()); }

    void run(const input_type& x, bool relu, const xt::xtensor<T, 4>& weight, const T* bias)
    {
        const auto out_shape = checked_output_shape(x.shape());
        detail::ensure_shape(m_output, out_shape);
        const auto g = geometry_for({x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]});
        const auto form = detail::choose_forward_form<T>(g);
        if (form == detail::conv_form::depthwise_phases)
        {
            // Read in place: the kept input is its phase planes, no padding.
            detail::ensure_shape(m_padded, g.padded_shape());
            detail::depthwise_phases_forward(g, weight.data(), bias, x.data(), m_padded.data(), m_output.data(), relu,
                                             m_work.depthwise_phases);
            return;
        }
        zero_pad2d_into(x, m_options.padding()[0], m_options.padding()[1], m_padded);
        detail::conv_forward(form, g, weight.data(), bias, m_padded.data(), m_output.data(), relu, m_work,
                             m_thread_work);
    }

    /// The weights and bias of `predict_affine`: this layer's with `affine`'s map folded in.
    template <class Affine>
    void fold(const Affine& affine)
    {
        this->check_parameter_shapes();
        const std::size_t out = m_options.out_channels();
        if (affine.num_features() != out)
        {
            throw shape_error(detail::concat(name(), ": cannot fold ", affine.name(), " into its weights: ", out,
                                             " output channels, ", affine.num_features(), " features"));
        }
        auto& w = m_folded_weight;
        auto& b = m_folded_bias;
        detail::ensure_shape(w, m_weight.value().shape());
        detail::ensure_shape(b, std::array<std::size_t, 1>{out});
        detail::ensure_shape(m_fold_scale, std::array<std::size_t, 1>{out});
        T* scale = m_fold_scale.data();
        affine.inference_affine(scale, b.data()); // b = shift
        const std::size_t per_channel = w.size() / out;
        const T* from = m_weight.value().data();
        const T* bias = bias_data();
        for (std::size_t c = 0; c < out; ++c)
        {
            for (std::size_t k = 0; k < per_channel; ++k)
            {
                w.data()[c * per_channel + k] = from[c * per_channel + k] * scale[c];
            }
            b.data()[c] += bias != nullptr ? bias[c] * scale[c] : T(0);
        }
    }

    Conv2DOptions m_options;
    learnable<T, 4> m_weight;
    learnable<T, 1> m_bias;

    xt::xtensor<T, 4> m_padded;        // zero-padded input of the last forward; with the depthwise phase form,
                                       // its first N C_in H W elements hold the input's phase planes instead
    xt::xtensor<T, 4> m_output;        // y (f(y) after forward_activated)
    xt::xtensor<T, 4> m_preactivation; // y before an activation whose gradient reads it
    xt::xtensor<T, 4> m_input_grad;    // dX
    detail::conv_workspace<T> m_work;
    std::vector<detail::conv_workspace<T>> m_thread_work; // one per thread, for a batch shared out by images
    xt::xtensor<T, 4> m_folded_weight;                    // predict_affine's weights, bias and scale
    xt::xtensor<T, 1> m_folded_bias;
    xt::xtensor<T, 1> m_fold_scale;
};

} // namespace xcnn

#endif // XCNN_LAYERS_CONV2D_HPP
