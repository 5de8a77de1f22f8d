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

#include "../core/error.hpp"
#include "../core/gemm.hpp"
#include "../core/padding.hpp"
#include "../core/plane_correlation.hpp"
#include "../core/simd.hpp"
#include "../core/tensordot.hpp"
#include "../core/windows.hpp"
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
/// zero-padded input with the kernel over (C_in, KH, KW); see docs/design.md.
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
        const output_type& dy = unit_stride() ? grad_output : masked_gradient(grad_output);
        const T* mask = unit_stride() ? m_output.data() : nullptr;
        backward_parameters_masked(dy, mask);
        if (unit_stride())
        {
            backward_input_unit_stride(dy, mask);
        }
        else
        {
            backward_input_strided(dy);
        }
        return m_input_grad;
    }

    /// `backward_parameters` of the gradient of ReLU(conv(x)) after `forward_relu`.
    void backward_parameters_relu(const output_type& grad_output)
    {
        if (unit_stride())
        {
            backward_parameters_masked(grad_output, m_output.data());
        }
        else
        {
            backward_parameters_masked(masked_gradient(grad_output), nullptr);
        }
    }

    /// dX for dY = `grad_output`; overwrites `weight_grad()` and `bias_grad()`.
    /// @throws error without a `forward` since construction or after a `predict`; shape_error if
    /// `grad_output` does not have the shape of the last output.
    const input_type& backward(const output_type& grad_output)
    {
        backward_parameters(grad_output);
        const auto s = m_options.stride();
        if (s[0] == 1 && s[1] == 1)
        {
            backward_input_unit_stride(grad_output, nullptr);
        }
        else
        {
            backward_input_strided(grad_output);
        }
        return m_input_grad;
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
    void backward_parameters(const output_type& grad_output) { backward_parameters_masked(grad_output, nullptr); }

private:
    /// `backward_parameters`; with `mask` (the ReLU'd output of `forward_relu`, stride 1 only), dY
    /// counts only where the mask is positive.
    void backward_parameters_masked(const output_type& grad_output, const T* mask)
    {
        if (!m_has_cache)
        {
            throw error(detail::concat(name(), ": backward needs a forward (not predict) first"));
        }
        detail::require_grad_shape(*this, grad_output.shape(), m_output.shape());
        check_parameter_shapes();
        const auto& ys = grad_output.shape();
        const std::size_t n = ys[0], c_out = ys[1], oh = ys[2], ow = ys[3];
        if (unit_stride())
        {
            // dW[o, tap] = dot products of dY's rows spread over the padded width with strips
            // of the padded input (see core/plane_correlation.hpp): both read in place.
            const auto g = plane_geometry();
            // Whole GEMM panels per image, zeros past the span: backward_input_unit_stride reads
            // this spread as well.
            const std::size_t grad_plane = detail::correlation_plane<T>(g);
            m_flat.resize(std::max(m_flat.size(), n * c_out * grad_plane));
            // db comes out of the spread: each plane's sum, taken while it is in cache.
            m_plane_sums.resize(std::max(m_plane_sums.size(), n * c_out));
            detail::spread_planes(grad_output.data(), n * c_out, oh, ow, g.width, grad_plane, m_flat.data(),
                                  m_plane_sums.data(), mask);
            detail::correlate_planes_weight_grad(g, c_out, m_flat.data(), grad_plane, m_padded.data(),
                                                 m_weight_grad.data(), m_plane_tables);
            for (std::size_t o = 0; o < c_out; ++o)
            {
                T sum = 0;
                for (std::size_t b = 0; b < n; ++b)
                {
                    sum += m_plane_sums[b * c_out + o];
                }
                m_bias_grad(o) = sum;
            }
            return;
        }
        {
            const auto windows = view_as_windows(m_padded, m_options.kernel_size(), m_options.stride());
            const auto dy = detail::make_tensor_ref<const T>(grad_output.data(), ys, grad_output.strides());
            // dW (C_out, C_in, KH, KW) = dY (N, C_out, OH, OW) . windows (N, C_in, OH, OW, KH, KW)
            // over (N, OH, OW).
            detail::contract<T>(
                dy, {0, 2, 3}, detail::ref_of<T>(windows, m_scratch), {0, 2, 3},
                detail::make_tensor_ref<T>(m_weight_grad.data(), m_weight_grad.shape(), m_weight_grad.strides()), {},
                m_tables, m_workspace);
        }

        // db = sum of dY over (N, OH, OW), with vector partial sums (a scalar sum cannot be
        // vectorised by the compiler without reordering it).
        using batch = xsimd::batch<T>;
        constexpr std::size_t S = batch::size;
        const std::size_t plane_size = oh * ow;
        const std::size_t vector_end = plane_size - plane_size % S;
        for (std::size_t o = 0; o < c_out; ++o)
        {
            batch partial(T(0));
            T sum = 0;
            for (std::size_t b = 0; b < n; ++b)
            {
                const T* plane = grad_output.data() + (b * c_out + o) * plane_size;
                for (std::size_t i = 0; i < vector_end; i += S)
                {
                    partial += batch::load_unaligned(plane + i);
                }
                for (std::size_t i = vector_end; i < plane_size; ++i)
                {
                    sum += plane[i];
                }
            }
            sum += detail::sum_lanes(partial);
            m_bias_grad(o) = sum;
        }
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
            // What backward_input_unit_stride allocates; checked here so backward cannot fail on it.
            detail::require_addressable(*this, input_shape,
                                        std::array<std::size_t, 4>{input_shape[0], out[1], input_shape[2] + k[0] - 1,
                                                                   input_shape[3] + k[1] - 1},
                                        "a gradient buffer");
        }
        return out;
    }

    bool unit_stride() const noexcept { return m_options.stride()[0] == 1 && m_options.stride()[1] == 1; }

    /// Whether a stride-1 correlation producing rows of `width` pixels runs over the padded
    /// width (core/plane_correlation.hpp) rather than on the window view. The window view's
    /// GEMM panels are `nr` adjacent output pixels: when rows are a multiple of that, every
    /// panel is read in place and the output lands in NCHW without the plane form's crop copy.
    static bool prefers_plane_form(std::size_t width) noexcept { return width % detail::gemm_blocking<T>::nr != 0; }

    /// The stride-1 correlation of the padded input of the last forward.
    detail::plane_geometry plane_geometry() const
    {
        const auto& s = m_padded.shape();
        const auto k = m_options.kernel_size();
        return {s[0], s[1], s[2], s[3], k[0], k[1]};
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
    /// read dY in place (stride > 1).
    const output_type& masked_gradient(const output_type& grad_output)
    {
        if (!m_has_cache)
        {
            throw error(detail::concat(name(), ": backward needs a forward (not predict) first"));
        }
        detail::require_grad_shape(*this, grad_output.shape(), m_output.shape());
        detail::ensure_shape(m_masked_grad, m_output.shape());
        detail::copy_short_masked(grad_output.data(), m_output.data(), m_output.size(), m_masked_grad.data());
        return m_masked_grad;
    }

    void run(const input_type& x, bool relu)
    {
        const auto out_shape = checked_output_shape(x.shape());
        check_parameter_shapes();
        zero_pad2d_into(x, m_options.padding()[0], m_options.padding()[1], m_padded);
        detail::ensure_shape(m_output, out_shape);
        if (unit_stride() && prefers_plane_form(out_shape[3]))
        {
            // Over the padded width, the GEMM reads the padded input in place; the wrap-around
            // positions are dropped by the crop into NCHW.
            const auto g = plane_geometry();
            const std::size_t c_out = m_options.out_channels(), taps = g.taps();
            m_kernel_rows.resize(c_out);
            m_kernel_cols.resize(taps);
            for (std::size_t o = 0; o < c_out; ++o)
            {
                m_kernel_rows[o] = static_cast<std::ptrdiff_t>(o * taps);
            }
            for (std::size_t t = 0; t < taps; ++t)
            {
                m_kernel_cols[t] = static_cast<std::ptrdiff_t>(t);
            }
            const std::size_t plane = detail::correlation_plane<T>(g);
            m_flat.resize(std::max(m_flat.size(), g.batch * c_out * plane));
            detail::correlate_planes<T>(g, c_out, {m_weight.data(), m_kernel_rows.data(), m_kernel_cols.data()},
                                        m_padded.data(), m_bias.data(), m_flat.data(), m_plane_tables, m_workspace);
            detail::crop_planes(m_flat.data(), g.batch * c_out, plane, g.width, out_shape[2], out_shape[3],
                                m_output.data(), relu);
            return;
        }

        // The window view (N, C_in, OH, OW, KH, KW) contracted with W (C_out, C_in, KH, KW) over
        // (C_in, KH, KW) gives (C_out, N, OH, OW); writing it through Y's strides permuted to
        // that order lands it in NCHW directly.
        const auto windows = view_as_windows(m_padded, m_options.kernel_size(), m_options.stride());
        const auto& ys = m_output.shape();
        const auto& yt = m_output.strides();
        const auto out =
            detail::make_tensor_ref<T>(m_output.data(), std::array<std::size_t, 4>{ys[1], ys[0], ys[2], ys[3]},
                                       std::array<std::ptrdiff_t, 4>{yt[1], yt[0], yt[2], yt[3]});
        gemm_epilogue<T> epilogue;
        epilogue.row_bias = m_bias.data();
        detail::contract<T>(detail::make_tensor_ref<const T>(m_weight.data(), m_weight.shape(), m_weight.strides()),
                            {1, 2, 3}, detail::ref_of<T>(windows, m_scratch), {1, 4, 5}, out, epilogue, m_tables,
                            m_workspace);
        if (relu)
        {
            detail::copy_short_relu(m_output.data(), m_output.size(), m_output.data());
        }
    }

    /// Stride 1. Over the padded width (`prefers_plane_form`): per image, the kernel's transpose
    /// times dY spread over the padded width, added into the padded dX tap by tap (col2im;
    /// `correlate_planes_input_grad`); it reads the spread dY that `backward_parameters_masked`
    /// left in `m_flat`, so it runs after that. Otherwise: dX = the windows of dY padded by
    /// (K - 1 - pad) contracted with the kernel rotated by 180 degrees over (C_out, KH, KW). A
    /// padding larger than K - 1 makes that "padding" negative, i.e. a crop, which `place_2d`
    /// handles.
    void backward_input_unit_stride(const output_type& grad_output, const T* mask)
    {
        const auto k = m_options.kernel_size(), p = m_options.padding();
        const auto& ys = grad_output.shape();
        const std::size_t n = ys[0], c_out = ys[1];
        const std::size_t h = m_padded.shape()[2] - 2 * p[0], w = m_padded.shape()[3] - 2 * p[1];
        const std::size_t c_in = m_options.in_channels();
        detail::ensure_shape(m_input_grad, std::array<std::size_t, 4>{n, c_in, h, w});
        if (prefers_plane_form(ys[3]))
        {
            const auto g = plane_geometry();
            const std::size_t taps = g.taps();
            // A(tap, o) = W[o, tap]: the kernel transposed by its tables.
            m_kernel_rows.resize(taps);
            m_kernel_cols.resize(c_out);
            for (std::size_t t = 0; t < taps; ++t)
            {
                m_kernel_rows[t] = static_cast<std::ptrdiff_t>(t);
            }
            for (std::size_t o = 0; o < c_out; ++o)
            {
                m_kernel_cols[o] = static_cast<std::ptrdiff_t>(o * taps);
            }
            const bool padded = p[0] != 0 || p[1] != 0;
            if (padded)
            {
                detail::ensure_shape(m_grad_padded, m_padded.shape());
            }
            T* dx = padded ? m_grad_padded.data() : m_input_grad.data();
            detail::correlate_planes_input_grad<T>(g, c_out,
                                                   {m_weight.data(), m_kernel_rows.data(), m_kernel_cols.data()},
                                                   m_flat.data(), dx, m_plane_tables, m_workspace);
            if (padded)
            {
                detail::crop_planes(m_grad_padded.data() + p[0] * g.width + p[1], n * c_in, g.plane(), g.width, h, w,
                                    m_input_grad.data());
            }
            return;
        }
        detail::ensure_shape(m_grad_padded, std::array<std::size_t, 4>{n, c_out, h + k[0] - 1, w + k[1] - 1});
        detail::place_2d(grad_output.data(), n * c_out, ys[2], ys[3], m_grad_padded.data(), h + k[0] - 1, w + k[1] - 1,
                         static_cast<std::ptrdiff_t>(k[0]) - 1 - static_cast<std::ptrdiff_t>(p[0]),
                         static_cast<std::ptrdiff_t>(k[1]) - 1 - static_cast<std::ptrdiff_t>(p[1]), mask);
        const auto windows = view_as_windows(m_grad_padded, k, std::size_t(1)); // (N, C_out, H, W, KH, KW)
        // W rotated by 180 degrees in its spatial axes: start at the last tap, negative strides.
        const std::ptrdiff_t sh = static_cast<std::ptrdiff_t>(k[1]), sc = sh * static_cast<std::ptrdiff_t>(k[0]);
        const auto rotated = detail::make_tensor_ref<const T>(
            m_weight.data() + (k[0] - 1) * k[1] + (k[1] - 1), std::array<std::size_t, 4>{c_out, c_in, k[0], k[1]},
            std::array<std::ptrdiff_t, 4>{sc * static_cast<std::ptrdiff_t>(c_in), sc, -sh, -1});
        const auto& xs = m_input_grad.shape();
        const auto& xst = m_input_grad.strides();
        const auto out =
            detail::make_tensor_ref<T>(m_input_grad.data(), std::array<std::size_t, 4>{xs[1], xs[0], xs[2], xs[3]},
                                       std::array<std::ptrdiff_t, 4>{xst[1], xst[0], xst[2], xst[3]});
        // (C_in) free in W, (N, H, W) free in the windows: the result (C_in, N, H, W).
        detail::contract<T>(rotated, {0, 2, 3}, detail::ref_of<T>(windows, m_scratch), {1, 4, 5}, out, {}, m_tables,
                            m_workspace);
    }

    /// Stride > 1, the general form (col2im as contractions): for each kernel tap (kh, kw),
    /// W[:, :, kh, kw] contracted with dY over C_out gives (C_in, N, OH, OW), accumulated into
    /// the padded dX at rows kh + stride * oh and columns kw + stride * ow. Each tap writes a
    /// disjoint strided set, so the taps are separate contractions; rows and columns no window
    /// reaches (when (H + 2 pad - K) is not a multiple of the stride) keep a zero gradient.
    void backward_input_strided(const output_type& grad_output)
    {
        const auto k = m_options.kernel_size(), s = m_options.stride(), p = m_options.padding();
        const auto& ys = grad_output.shape();
        const std::size_t n = ys[0], c_out = ys[1], oh = ys[2], ow = ys[3];
        const std::size_t c_in = m_options.in_channels();
        const std::size_t hp = m_padded.shape()[2], wp = m_padded.shape()[3];
        detail::ensure_shape(m_input_grad_padded, m_padded.shape());
        std::fill(m_input_grad_padded.begin(), m_input_grad_padded.end(), T(0));

        const auto dy = detail::make_tensor_ref<const T>(grad_output.data(), ys, grad_output.strides());
        const auto plane = static_cast<std::ptrdiff_t>(hp * wp);
        const std::array<std::size_t, 4> tap_shape{c_in, n, oh, ow};
        const std::array<std::ptrdiff_t, 4> tap_strides{plane, plane * static_cast<std::ptrdiff_t>(c_in),
                                                        static_cast<std::ptrdiff_t>(s[0] * wp),
                                                        static_cast<std::ptrdiff_t>(s[1])};
        gemm_epilogue<T> accumulate;
        accumulate.beta = T(1);
        const auto kk = static_cast<std::ptrdiff_t>(k[0] * k[1]);
        for (std::size_t kh = 0; kh < k[0]; ++kh)
        {
            for (std::size_t kw = 0; kw < k[1]; ++kw)
            {
                const auto tap = detail::make_tensor_ref<const T>(
                    m_weight.data() + kh * k[1] + kw, std::array<std::size_t, 2>{c_out, c_in},
                    std::array<std::ptrdiff_t, 2>{kk * static_cast<std::ptrdiff_t>(c_in), kk});
                const auto out =
                    detail::make_tensor_ref<T>(m_input_grad_padded.data() + kh * wp + kw, tap_shape, tap_strides);
                detail::contract<T>(tap, {0}, dy, {1}, out, accumulate, m_tables, m_workspace);
            }
        }
        const std::size_t h = hp - 2 * p[0], w = wp - 2 * p[1];
        detail::ensure_shape(m_input_grad, std::array<std::size_t, 4>{n, c_in, h, w});
        detail::place_2d(m_input_grad_padded.data(), n * c_in, hp, wp, m_input_grad.data(), h, w,
                         -static_cast<std::ptrdiff_t>(p[0]), -static_cast<std::ptrdiff_t>(p[1]));
    }

    Conv2DOptions m_options;
    xt::xtensor<T, 4> m_weight;
    xt::xtensor<T, 1> m_bias;
    xt::xtensor<T, 4> m_weight_grad;
    xt::xtensor<T, 1> m_bias_grad;

    xt::xtensor<T, 4> m_padded;                             // zero-padded input of the last forward
    xt::xtensor<T, 4> m_output;                             // y (ReLU(y) after forward_relu)
    xt::xtensor<T, 4> m_masked_grad;                        // dY through the ReLU (backward_relu, stride > 1)
    xt::xtensor<T, 4> m_input_grad;                         // dX
    xt::xtensor<T, 4> m_grad_padded;                        // dY placed for the stride-1 dX contraction
    xt::xtensor<T, 4> m_input_grad_padded;                  // padded dX accumulated by the strided form
    xt::xarray<T> m_scratch;                                // unused unless an operand needs evaluating
    std::vector<T, xsimd::aligned_allocator<T, 64>> m_flat; // outputs or dY over the padded width
    std::vector<std::ptrdiff_t> m_kernel_rows;              // offset tables of W for the stride-1 forms
    std::vector<std::ptrdiff_t> m_kernel_cols;
    detail::plane_tables m_plane_tables;
    std::vector<T> m_plane_sums; // sum of each plane of dY, for db
    detail::contraction_tables m_tables;
    gemm_workspace<T> m_workspace;
    bool m_has_cache = false;
};

} // namespace xcnn

#endif // XCNN_LAYERS_CONV2D_HPP
