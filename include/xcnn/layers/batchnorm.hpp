/// @file
/// `xcnn::BatchNorm2D` and `xcnn::BatchNorm1D`: PyTorch's `BatchNorm2d` over (N, C, H, W) and
/// `BatchNorm1d` over (N, F), one class template over the input rank.
#ifndef XCNN_LAYERS_BATCHNORM_HPP
#define XCNN_LAYERS_BATCHNORM_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../core/activation.hpp"
#include "../core/error.hpp"
#include "../core/parameter.hpp"
#include "../core/simd.hpp"
#include "../core/threading.hpp"
#include "../core/xtensor_shim.hpp"
#include "layer.hpp"

namespace xcnn
{
namespace detail
{

// The kernels see an input as N samples of C channels of `plane` contiguous values (H·W for
// BatchNorm2D, 1 for BatchNorm1D) and work on one channel at a time: its N planes, `stride`
// values apart. A channel's values are read a few times in a row, so after the first pass they
// come from cache; channels are independent, which is what threads share out.

/// Sum of `n` values at `p`. Two vector accumulators hide the latency of the additions.
template <class T>
T plane_sum(const T* p, std::size_t n)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    batch a0(T(0)), a1(T(0));
    std::size_t i = 0;
    for (; i + 2 * S <= n; i += 2 * S)
    {
        a0 += batch::load_unaligned(p + i);
        a1 += batch::load_unaligned(p + i + S);
    }
    if (i + S <= n)
    {
        a0 += batch::load_unaligned(p + i);
        i += S;
    }
    T s = sum_lanes(a0 + a1);
    for (; i < n; ++i)
    {
        s += p[i];
    }
    return s;
}

/// Sum of (p[i] - mean)^2 over `n` values: the variance from the mean, not from the sum of
/// squares, whose cancellation would lose float's digits when the mean is large.
template <class T>
T plane_squared_deviation(const T* p, std::size_t n, T mean)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const batch m(mean);
    batch a0(T(0)), a1(T(0));
    std::size_t i = 0;
    for (; i + 2 * S <= n; i += 2 * S)
    {
        const batch d0 = batch::load_unaligned(p + i) - m;
        const batch d1 = batch::load_unaligned(p + i + S) - m;
        a0 = xsimd::fma(d0, d0, a0);
        a1 = xsimd::fma(d1, d1, a1);
    }
    if (i + S <= n)
    {
        const batch d = batch::load_unaligned(p + i) - m;
        a0 = xsimd::fma(d, d, a0);
        i += S;
    }
    T s = sum_lanes(a0 + a1);
    for (; i < n; ++i)
    {
        s += (p[i] - mean) * (p[i] - mean);
    }
    return s;
}

/// y = xhat * weight + bias, the training output, as one expression for vectors and scalars:
/// the backward pass of a fused ReLU recomputes its sign from xhat, and must get the same bits.
template <class T>
XCNN_ALWAYS_INLINE xsimd::batch<T> normalized_output(const xsimd::batch<T>& xhat, const xsimd::batch<T>& weight,
                                                     const xsimd::batch<T>& bias)
{
    return xsimd::fma(xhat, weight, bias);
}
/// @overload
template <class T>
XCNN_ALWAYS_INLINE T normalized_output(T xhat, T weight, T bias)
{
    return std::fma(xhat, weight, bias);
}

/// xhat = (x - mean) * invstd and y = xhat * weight + bias over `n` values: the training
/// output and what its backward reads. With `Rectified`, y goes through ReLU's max(y, 0) as it
/// is written (a NaN passes, as `relu_op` lets it).
template <bool Rectified, class T>
void plane_normalize(const T* x, T* xhat, T* y, std::size_t n, T mean, T invstd, T weight, T bias)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const batch m(mean), s(invstd), w(weight), b(bias);
    std::size_t i = 0;
    for (; i + S <= n; i += S)
    {
        const batch h = (batch::load_unaligned(x + i) - m) * s;
        h.store_unaligned(xhat + i);
        batch out = normalized_output(h, w, b);
        if constexpr (Rectified)
        {
            out = xsimd::select(out < batch(T(0)), batch(T(0)), out);
        }
        out.store_unaligned(y + i);
    }
    for (; i < n; ++i)
    {
        xhat[i] = (x[i] - mean) * invstd;
        const T out = normalized_output(xhat[i], weight, bias);
        y[i] = Rectified && out < T(0) ? T(0) : out;
    }
}

/// y = a * x + b over `n` values: inference, and the input gradient (with x = xhat).
template <class T>
void plane_affine(const T* x, T* y, std::size_t n, T a, T b)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const batch va(a), vb(b);
    std::size_t i = 0;
    for (; i + S <= n; i += S)
    {
        xsimd::fma(batch::load_unaligned(x + i), va, vb).store_unaligned(y + i);
    }
    for (; i < n; ++i)
    {
        y[i] = x[i] * a + b;
    }
}

/// The ReLU after the layer that `forward_activated` fuses, as its backward pass sees it: dY
/// passes where the output was positive, y = xhat * weight + bias recomputed from xhat (read
/// anyway), so no pass over the activations is needed for the mask.
template <class T>
struct rectifier
{
    T weight, bias;
};

/// dY through `rect` (a `rectifier`, or `std::nullptr_t` for none): ReLU's backward,
/// select(y > 0, dy, 0).
template <class V, class R>
XCNN_ALWAYS_INLINE V rectified(const V& dy, const V& xhat, const R& rect)
{
    if constexpr (std::is_same<R, std::nullptr_t>::value)
    {
        (void)xhat;
        (void)rect;
        return dy;
    }
    else
    {
        using T = decltype(rect.weight);
        if constexpr (std::is_same<V, T>::value)
        {
            return normalized_output(xhat, rect.weight, rect.bias) > T(0) ? dy : T(0);
        }
        else
        {
            return xsimd::select(normalized_output(xhat, V(rect.weight), V(rect.bias)) > V(T(0)), dy, V(T(0)));
        }
    }
}

/// sum(dy) into `sum_dy` and sum(dy * xhat) into `sum_dy_xhat` over `n` values, dY through
/// `rect` (`rectified`): the bias and weight gradients, which the input gradient needs too.
template <class T, class R>
void plane_gradient_sums(const T* dy, const T* xhat, std::size_t n, T& sum_dy, T& sum_dy_xhat, const R& rect)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    batch g0(T(0)), g1(T(0)), p0(T(0)), p1(T(0));
    std::size_t i = 0;
    for (; i + 2 * S <= n; i += 2 * S)
    {
        const batch h0 = batch::load_unaligned(xhat + i);
        const batch h1 = batch::load_unaligned(xhat + i + S);
        const batch d0 = rectified(batch::load_unaligned(dy + i), h0, rect);
        const batch d1 = rectified(batch::load_unaligned(dy + i + S), h1, rect);
        g0 += d0;
        g1 += d1;
        p0 = xsimd::fma(d0, h0, p0);
        p1 = xsimd::fma(d1, h1, p1);
    }
    if (i + S <= n)
    {
        const batch h = batch::load_unaligned(xhat + i);
        const batch d = rectified(batch::load_unaligned(dy + i), h, rect);
        g0 += d;
        p0 = xsimd::fma(d, h, p0);
        i += S;
    }
    T g = sum_lanes(g0 + g1), p = sum_lanes(p0 + p1);
    for (; i < n; ++i)
    {
        const T d = rectified(dy[i], xhat[i], rect);
        g += d;
        p += d * xhat[i];
    }
    sum_dy = g;
    sum_dy_xhat = p;
}

/// dx = a * dy + b * xhat + c over `n` values, dY through `rect` (`rectified`): the input
/// gradient of a normalisation by the batch's own statistics (a = weight * invstd, b and c
/// carry the paths through the variance and the mean).
template <class T, class R>
void plane_input_gradient(const T* dy, const T* xhat, T* dx, std::size_t n, T a, T b, T c, const R& rect)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    const batch va(a), vb(b), vc(c);
    std::size_t i = 0;
    for (; i + S <= n; i += S)
    {
        const batch xh = batch::load_unaligned(xhat + i);
        const batch h = xsimd::fma(xh, vb, vc);
        xsimd::fma(rectified(batch::load_unaligned(dy + i), xh, rect), va, h).store_unaligned(dx + i);
    }
    for (; i < n; ++i)
    {
        dx[i] = rectified(dy[i], xhat[i], rect) * a + (xhat[i] * b + c);
    }
}

} // namespace detail

/// Batch normalisation with PyTorch's semantics, over (N, C, H, W) (`Rank` 4, `BatchNorm2D`,
/// PyTorch's `BatchNorm2d`) or (N, F) (`Rank` 2, `BatchNorm1D`, PyTorch's `BatchNorm1d` on 2-D
/// input): y = (x - mean) / sqrt(var + eps) * weight + bias for each channel or feature.
///
/// - `forward` is PyTorch's training mode: mean and the biased variance over the batch (and H,
///   W); it updates `running_mean` and `running_var` (the latter with the unbiased variance) as
///   running = (1 - momentum) * running + momentum * batch statistic, and adds 1 to
///   `num_batches_tracked`.
/// - `predict` is eval mode: it normalises with the running statistics and changes nothing.
/// - `backward` differentiates the training mode, through the batch mean and variance; after a
///   `predict` it is an error, as for every layer.
///
/// Parameters `weight` (initialised to 1) and `bias` (0); buffers `running_mean` (0),
/// `running_var` (1) and `num_batches_tracked` (0, a scalar kept as `T`: PyTorch's
/// `load_state_dict` converts it to its int64 on loading). An empty batch (N = 0) is no batch: it
/// leaves all three buffers as they were, where PyTorch would count it in `num_batches_tracked`.
/// PyTorch's `affine=False`, `track_running_stats=False` and `momentum=None` have no equivalent.
template <class T, std::size_t Rank>
class batch_norm : public layer<batch_norm<T, Rank>, T, Rank>
{
    static_assert(std::is_floating_point<T>::value, "xcnn::BatchNorm2D/BatchNorm1D<T>: T must be float or double");
    static_assert(Rank == 2 || Rank == 4, "xcnn::batch_norm: rank 2 (BatchNorm1D) or 4 (BatchNorm2D)");
    using base = layer<batch_norm<T, Rank>, T, Rank>;

public:
    using typename base::input_type;
    using typename base::output_type;

    /// Normalises `num_features` channels (BatchNorm2D) or features (BatchNorm1D), adding `eps` to
    /// the variance; `momentum` weighs each batch in the running statistics.
    /// @throws value_error if `num_features` is 0 or larger than `max_extent`, `eps` is negative
    /// or not finite, or `momentum` is outside [0, 1].
    explicit batch_norm(std::size_t num_features, T eps = T(1e-5), T momentum = T(0.1))
        : m_features(num_features), m_eps(eps), m_momentum(momentum)
    {
        const std::string layer = name();
        detail::require_size_argument(layer, "num_features", num_features, num_features, 1);
        if (!(eps >= T(0)) || !std::isfinite(eps))
        {
            throw value_error(detail::concat(layer, ": eps must be finite and >= 0, got ", eps));
        }
        if (!(momentum >= T(0) && momentum <= T(1)))
        {
            throw value_error(detail::concat(layer, ": momentum must be in [0, 1], got ", momentum));
        }
        m_weight = learnable<T, 1>("weight", {num_features});
        m_bias = learnable<T, 1>("bias", {num_features});
        m_running_mean = persistent<T, 1>("running_mean", {num_features});
        m_running_var = persistent<T, 1>("running_var", {num_features});
        m_num_batches_tracked = persistent<T, 0>("num_batches_tracked", {});
        m_invstd.resize(num_features);
        std::mt19937 rng(detail::default_init_seed);
        reset_parameters(rng);
    }

    /// Number of channels or features.
    std::size_t num_features() const noexcept { return m_features; }

    /// What `predict` computes, as a map per channel: y = scale[c] * x + shift[c] with
    /// scale = weight / sqrt(running_var + eps) and shift = bias - running_mean * scale, written
    /// to `scale` and `shift` (`num_features()` values each). A convolution before this layer
    /// folds it into its own weights at inference (`Conv2D::predict_affine`).
    /// @throws shape_error if a parameter or buffer was assigned a tensor of another shape.
    void inference_affine(T* scale, T* shift) const
    {
        this->check_parameter_shapes();
        this->check_buffer_shapes();
        for (std::size_t c = 0; c < m_features; ++c)
        {
            scale[c] = inference_scale(c);
            shift[c] = m_bias.value().data()[c] - m_running_mean.value().data()[c] * scale[c];
        }
    }
    /// What is added to the variance.
    T eps() const noexcept { return m_eps; }
    /// The weight of each batch in the running statistics.
    T momentum() const noexcept { return m_momentum; }

    /// The kind in a `layer_spec`: "BatchNorm2D" or "BatchNorm1D".
    static constexpr const char* kind = Rank == 4 ? "BatchNorm2D" : "BatchNorm1D";

    /// num_features, eps and momentum, the names of PyTorch's `BatchNorm2d` arguments.
    layer_spec spec() const
    {
        return layer_spec{kind, {}, {}}
            .set_size("num_features", m_features)
            .set("eps", {static_cast<double>(m_eps)})
            .set("momentum", {static_cast<double>(m_momentum)});
    }

    /// The layer `spec` describes, freshly initialised; eps and momentum default to PyTorch's 1e-5
    /// and 0.1.
    /// @throws value_error for another kind, an unknown, missing or malformed option, or a value
    /// the constructor refuses.
    static batch_norm from_spec(const layer_spec& spec)
    {
        const spec_reader r(spec, kind, {"num_features", "eps", "momentum"});
        return batch_norm(r.size("num_features"), r.real<T>("eps", T(1e-5)), r.real<T>("momentum", T(0.1)));
    }

    /// (C). Assign a tensor of this shape to load weights.
    xt::xtensor<T, 1>& weight() noexcept { return m_weight.value(); }
    /// (C), read-only.
    const xt::xtensor<T, 1>& weight() const noexcept { return m_weight.value(); }
    /// (C). Assign a tensor of this shape to load biases.
    xt::xtensor<T, 1>& bias() noexcept { return m_bias.value(); }
    /// (C), read-only.
    const xt::xtensor<T, 1>& bias() const noexcept { return m_bias.value(); }
    /// dLoss/dweight of the last `backward` (overwritten, not accumulated).
    const xt::xtensor<T, 1>& weight_grad() const noexcept { return m_weight.grad(); }
    /// dLoss/dbias of the last `backward` (overwritten, not accumulated).
    const xt::xtensor<T, 1>& bias_grad() const noexcept { return m_bias.grad(); }
    /// (C): the running mean `predict` subtracts.
    xt::xtensor<T, 1>& running_mean() noexcept { return m_running_mean.value(); }
    /// (C), read-only.
    const xt::xtensor<T, 1>& running_mean() const noexcept { return m_running_mean.value(); }
    /// (C): the running (unbiased) variance `predict` divides by.
    xt::xtensor<T, 1>& running_var() noexcept { return m_running_var.value(); }
    /// (C), read-only.
    const xt::xtensor<T, 1>& running_var() const noexcept { return m_running_var.value(); }
    /// A scalar tensor: how many non-empty batches `forward` has seen (read it as
    /// `num_batches_tracked()()`).
    xt::xtensor<T, 0>& num_batches_tracked() noexcept { return m_num_batches_tracked.value(); }
    /// The count, read-only.
    const xt::xtensor<T, 0>& num_batches_tracked() const noexcept { return m_num_batches_tracked.value(); }

    /// The learnable tensors, "weight" and "bias".
    auto parameter_slots() { return std::tie(m_weight, m_bias); }
    /// The buffers, "running_mean", "running_var" and "num_batches_tracked", in PyTorch's
    /// `state_dict` order.
    auto buffer_slots() { return std::tie(m_running_mean, m_running_var, m_num_batches_tracked); }

    /// Weights of 1, biases of 0 and fresh running statistics, as PyTorch's `reset_parameters`;
    /// draws nothing, so adding the layer leaves the other layers' initial weights unchanged.
    void reset_parameters(std::mt19937&)
    {
        m_weight.value().fill(T(1));
        m_bias.value().fill(T(0));
        m_running_mean.value().fill(T(0));
        m_running_var.value().fill(T(1));
        m_num_batches_tracked.value().fill(T(0));
    }

    /// `BatchNorm2D(C, eps=E, momentum=M)` (or `BatchNorm1D`), as PyTorch's repr shows it, in
    /// `Sequential::summary` and in error messages.
    std::string name() const
    {
        return detail::concat(Rank == 4 ? "BatchNorm2D(" : "BatchNorm1D(", m_features, ", eps=", m_eps,
                              ", momentum=", m_momentum, ")");
    }

    /// The input's shape; the batch may be 0.
    /// @throws shape_error naming the layer, the expected layout and the input's shape for
    /// another channel (feature) count or an empty H or W.
    template <class S>
    std::array<std::size_t, Rank> checked_output_shape(const S& input_shape) const
    {
        bool ok = input_shape[1] == m_features;
        for (std::size_t d = 2; d < Rank; ++d)
        {
            ok = ok && input_shape[d] != 0;
        }
        if (!ok)
        {
            throw shape_error(detail::concat(name(), ": expected an input (N, ", m_features,
                                             Rank == 4 ? ", H, W)" : ")", Rank == 4 ? " with H, W >= 1" : "",
                                             ", got input ", detail::shape_to_string(input_shape)));
        }
        std::array<std::size_t, Rank> out{};
        std::copy(input_shape.begin(), input_shape.end(), out.begin());
        return out;
    }

    /// Training: normalises with the batch's statistics, keeps xhat for `run_backward` and
    /// updates the running statistics. Inference: one pass with the running statistics.
    /// @throws value_error in training when a channel has a single value (N·H·W = 1), whose
    /// variance is undefined, as PyTorch does.
    const output_type& run_forward(const input_type& x, bool training) { return normalize(x, training, false); }

    /// What `Sequential` and `Network` run for this layer followed by an activation of functor
    /// `Op`: f(batch_norm(x)) (`training` false is `predict`). In training, a rectifier (ReLU) is
    /// applied as the output is written, and `backward_activated` passes dY where the output was
    /// positive inside its own passes, recomputing the output's sign from xhat: neither direction
    /// makes a pass over the activations for the ReLU. Other functors, and `predict`, run over
    /// the output in place while it is in cache. The results are those of the two layers one
    /// after the other, bit for bit.
    template <class Op>
    const output_type& forward_activated(const input_type& x, bool training, const Op& op)
    {
        if constexpr (detail::rectifies<Op>::value)
        {
            if (training)
            {
                this->check_parameter_shapes();
                this->check_buffer_shapes();
                return this->cached_forward(true, [&]() -> const output_type& { return normalize(x, true, true); });
            }
        }
        this->forward_or_predict(x, training);
        return m_activated.apply(op, m_output);
    }

    /// @overload
    /// For inputs of any expression type; checks the rank and evaluates the input first.
    template <class E, class Op>
    const output_type& forward_activated(const xt::xexpression<E>& x, bool training, const Op& op)
    {
        return forward_activated(this->converted_input(x), training, op);
    }

    /// `backward` of the gradient of f(batch_norm(x)) after `forward_activated`.
    template <class Op>
    const input_type& backward_activated(const output_type& grad_output, const Op& op)
    {
        if constexpr (detail::rectifies<Op>::value)
        {
            this->require_cache(grad_output);
            detail::ensure_shape(m_input_grad, grad_output.shape());
            gradients(grad_output, m_input_grad.data(), true);
            return m_input_grad;
        }
        else
        {
            return this->backward(activated_gradient(grad_output, op));
        }
    }

    /// @overload
    /// For gradients of any expression type; checks the rank and evaluates the gradient first.
    template <class E, class Op>
    const input_type& backward_activated(const xt::xexpression<E>& grad_output, const Op& op)
    {
        return backward_activated(this->converted_gradient(grad_output), op);
    }

    /// `backward_parameters` of the gradient of f(batch_norm(x)) after `forward_activated`.
    template <class Op>
    void backward_parameters_activated(const output_type& grad_output, const Op& op)
    {
        if constexpr (detail::rectifies<Op>::value)
        {
            this->require_cache(grad_output);
            gradients(grad_output, nullptr, true);
        }
        else
        {
            this->backward_parameters(activated_gradient(grad_output, op));
        }
    }

    /// @overload
    /// For gradients of any expression type; checks the rank and evaluates the gradient first.
    template <class E, class Op>
    void backward_parameters_activated(const xt::xexpression<E>& grad_output, const Op& op)
    {
        backward_parameters_activated(this->converted_gradient(grad_output), op);
    }

    /// dX through the batch statistics:
    /// dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)); overwrites
    /// dweight = sum(dy * xhat) and dbias = sum(dy) over the batch (and H, W).
    const input_type& run_backward(const output_type& grad_output)
    {
        detail::ensure_shape(m_input_grad, grad_output.shape());
        gradients(grad_output, m_input_grad.data(), false);
        return m_input_grad;
    }

    /// dweight and dbias alone: one pass over dY and xhat instead of two.
    void run_backward_parameters(const output_type& grad_output) { gradients(grad_output, nullptr, false); }

private:
    /// `run_forward`, with ReLU applied to the training output when `rectified`.
    const output_type& normalize(const input_type& x, bool training, bool rectified)
    {
        const auto shape = checked_output_shape(x.shape());
        const std::size_t n = shape[0], plane = plane_size(shape), count = n * plane;
        if (training && count == 1)
        {
            throw value_error(detail::concat(name(),
                                             ": expected more than 1 value per channel when training, got input ",
                                             detail::shape_to_string(shape)));
        }
        detail::ensure_shape(m_output, shape);
        const std::size_t stride = m_features * plane;
        const T* in = x.data();
        T* out = m_output.data();
        const T* weight = m_weight.value().data();
        const T* bias = m_bias.value().data();
        T* running_mean = m_running_mean.value().data();
        T* running_var = m_running_var.value().data();
        if (!training)
        {
            detail::parallel_for_items(m_features, count,
                                       [&](std::size_t first, std::size_t last, std::size_t)
                                       {
                                           for (std::size_t c = first; c < last; ++c)
                                           {
                                               const T scale = inference_scale(c);
                                               const T shift = bias[c] - running_mean[c] * scale;
                                               for (std::size_t b = 0; b < n; ++b)
                                               {
                                                   const std::size_t at = b * stride + c * plane;
                                                   detail::plane_affine(in + at, out + at, plane, scale, shift);
                                               }
                                           }
                                       });
            return m_output;
        }
        detail::ensure_shape(m_normalized, shape);
        if (count == 0) // an empty batch has no statistics
        {
            return m_output;
        }
        T* xhat = m_normalized.data();
        const T unbias = static_cast<T>(count) / static_cast<T>(count - 1);
        detail::parallel_for_items(
            m_features, count,
            [&](std::size_t first, std::size_t last, std::size_t)
            {
                for (std::size_t c = first; c < last; ++c)
                {
                    // Each plane's sum in T, the planes' sums in double: float keeps its digits
                    // over large batches, as PyTorch's CPU kernel accumulates in double.
                    double sum = 0;
                    for (std::size_t b = 0; b < n; ++b)
                    {
                        sum += static_cast<double>(detail::plane_sum(in + b * stride + c * plane, plane));
                    }
                    const T mean = static_cast<T>(sum / static_cast<double>(count));
                    double squares = 0;
                    for (std::size_t b = 0; b < n; ++b)
                    {
                        squares += static_cast<double>(
                            detail::plane_squared_deviation(in + b * stride + c * plane, plane, mean));
                    }
                    const T var = static_cast<T>(squares / static_cast<double>(count));
                    const T invstd = T(1) / std::sqrt(var + m_eps);
                    m_invstd[c] = invstd;
                    for (std::size_t b = 0; b < n; ++b)
                    {
                        const std::size_t at = b * stride + c * plane;
                        if (rectified)
                        {
                            detail::plane_normalize<true>(in + at, xhat + at, out + at, plane, mean, invstd, weight[c],
                                                          bias[c]);
                        }
                        else
                        {
                            detail::plane_normalize<false>(in + at, xhat + at, out + at, plane, mean, invstd, weight[c],
                                                           bias[c]);
                        }
                    }
                    running_mean[c] = (T(1) - m_momentum) * running_mean[c] + m_momentum * mean;
                    running_var[c] = (T(1) - m_momentum) * running_var[c] + m_momentum * var * unbias;
                }
            });
        m_num_batches_tracked.value()() += T(1);
        return m_output;
    }

    /// weight / sqrt(running_var + eps) of channel `c`: the one expression `predict` and
    /// `inference_affine` share, so a folded convolution scales exactly as the layer does.
    T inference_scale(std::size_t c) const
    {
        return m_weight.value().data()[c] / std::sqrt(m_running_var.value().data()[c] + m_eps);
    }

    template <class S>
    static std::size_t plane_size(const S& shape) noexcept
    {
        return Rank == 4 ? shape[2] * shape[3] : 1;
    }

    /// dL/dy through an activation `forward_activated` applied in place.
    template <class Op>
    const output_type& activated_gradient(const output_type& grad_output, const Op& op)
    {
        this->require_cache(grad_output);
        return m_activated.gradient(op, grad_output, m_output);
    }

    /// The parameter gradients, and, unless `dx` is null, dX into `dx`; with `rectified`, of
    /// dY through the ReLU `forward_activated` applied.
    void gradients(const output_type& grad_output, T* dx, bool rectified)
    {
        if (rectified)
        {
            gradients_through(grad_output, dx,
                              [this](std::size_t c) {
                                  return detail::rectifier<T>{m_weight.value().data()[c], m_bias.value().data()[c]};
                              });
        }
        else
        {
            gradients_through(grad_output, dx, [](std::size_t) { return nullptr; });
        }
    }

    /// `gradients`, dY through `rectifier_of(c)` in channel c (`detail::rectified`).
    template <class R>
    void gradients_through(const output_type& grad_output, T* dx, R rectifier_of)
    {
        const auto& shape = grad_output.shape();
        const std::size_t n = shape[0], plane = plane_size(shape), count = n * plane;
        const std::size_t stride = m_features * plane;
        T* weight_grad = m_weight.grad().data();
        T* bias_grad = m_bias.grad().data();
        if (count == 0)
        {
            m_weight.grad().fill(T(0));
            m_bias.grad().fill(T(0));
            return;
        }
        const T* dy = grad_output.data();
        const T* xhat = m_normalized.data();
        const T* weight = m_weight.value().data();
        detail::parallel_for_items(m_features, count * (dx ? 2 : 1),
                                   [&](std::size_t first, std::size_t last, std::size_t)
                                   {
                                       for (std::size_t c = first; c < last; ++c)
                                       {
                                           const auto rect = rectifier_of(c);
                                           // Planes summed in T, planes' sums in double, as in
                                           // the forward pass.
                                           double total_dy = 0, total_dy_xhat = 0;
                                           for (std::size_t b = 0; b < n; ++b)
                                           {
                                               const std::size_t at = b * stride + c * plane;
                                               T g = 0, p = 0;
                                               detail::plane_gradient_sums(dy + at, xhat + at, plane, g, p, rect);
                                               total_dy += static_cast<double>(g);
                                               total_dy_xhat += static_cast<double>(p);
                                           }
                                           const T sum_dy = static_cast<T>(total_dy);
                                           const T sum_dy_xhat = static_cast<T>(total_dy_xhat);
                                           bias_grad[c] = sum_dy;
                                           weight_grad[c] = sum_dy_xhat;
                                           if (dx == nullptr)
                                           {
                                               continue;
                                           }
                                           const T a = weight[c] * m_invstd[c];
                                           const T per = a / static_cast<T>(count);
                                           for (std::size_t b = 0; b < n; ++b)
                                           {
                                               const std::size_t at = b * stride + c * plane;
                                               detail::plane_input_gradient(dy + at, xhat + at, dx + at, plane, a,
                                                                            -per * sum_dy_xhat, -per * sum_dy, rect);
                                           }
                                       }
                                   });
    }

    std::size_t m_features;
    T m_eps;
    T m_momentum;
    learnable<T, 1> m_weight;
    learnable<T, 1> m_bias;
    persistent<T, 1> m_running_mean;
    persistent<T, 1> m_running_var;
    persistent<T, 0> m_num_batches_tracked;
    std::vector<T> m_invstd;                           // 1 / sqrt(var + eps) of the last training forward, per channel
    input_type m_normalized;                           // xhat of the last training forward
    output_type m_output;                              // y (f(y) after forward_activated)
    detail::activated_output<output_type> m_activated; // what forward_activated keeps
    input_type m_input_grad;                           // dX
};

/// PyTorch's `BatchNorm2d(num_features, eps=1e-5, momentum=0.1)` over (N, C, H, W); see
/// `batch_norm`.
template <class T>
using BatchNorm2D = batch_norm<T, 4>;

/// PyTorch's `BatchNorm1d(num_features, eps=1e-5, momentum=0.1)` over (N, F); see `batch_norm`.
template <class T>
using BatchNorm1D = batch_norm<T, 2>;

} // namespace xcnn

#endif // XCNN_LAYERS_BATCHNORM_HPP
