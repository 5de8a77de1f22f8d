/// @file
/// `xcnn::Dense`: fully connected layer, PyTorch's `Linear`.
#ifndef XCNN_LAYERS_DENSE_HPP
#define XCNN_LAYERS_DENSE_HPP

#include <array>
#include <cstddef>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../core/activation.hpp"
#include "../core/error.hpp"
#include "../core/gemm.hpp"
#include "../core/gemm_nt.hpp"
#include "../core/tensordot.hpp"
#include "../core/xtensor_shim.hpp"
#include "init.hpp"
#include "layer.hpp"

namespace xcnn
{

/// y = x W^T + b for x (N, in_features); `weight()` is (out_features, in_features) and
/// `bias()` (out_features), PyTorch's `Linear` layout.
template <class T>
class Dense : public layer<Dense<T>, T, 2>
{
    static_assert(std::is_floating_point<T>::value, "xcnn::Dense<T>: T must be float or double");
    using base = layer<Dense<T>, T, 2>;

public:
    using typename base::input_type;
    using typename base::output_type;

    /// Maps `in_features` inputs to `out_features` outputs. The parameters get PyTorch's default
    /// initialisation from a fixed seed (see `reset_parameters`).
    /// @throws value_error if a feature count is zero or larger than `max_extent` (a negative
    /// number converted to `std::size_t`), or the weight would have more than `max_extent` elements.
    Dense(std::size_t in_features, std::size_t out_features) : m_in(in_features), m_out(out_features)
    {
        const std::string layer = name();
        detail::require_size_argument(layer, "in_features", in_features, in_features, 1);
        detail::require_size_argument(layer, "out_features", out_features, out_features, 1);
        detail::require_addressable_weight(layer, std::array<std::size_t, 2>{out_features, in_features});
        m_weight = learnable<T, 2>("weight", {out_features, in_features});
        m_bias = learnable<T, 1>("bias", {out_features});
        std::mt19937 rng(detail::default_init_seed);
        reset_parameters(rng);
    }

    /// Number of input features.
    std::size_t in_features() const noexcept { return m_in; }
    /// Number of output features.
    std::size_t out_features() const noexcept { return m_out; }

    /// The kind in a `layer_spec`.
    static constexpr const char* kind = "Dense";

    /// in_features and out_features, the names of PyTorch's `Linear` arguments. (A `Dense` always
    /// has a bias, so no `bias` option.)
    layer_spec spec() const
    {
        return layer_spec{kind, {}, {}}.set_size("in_features", m_in).set_size("out_features", m_out);
    }

    /// The layer `spec` describes, freshly initialised.
    /// @throws value_error for another kind, an unknown, missing or malformed option, or a value
    /// the constructor refuses.
    static Dense from_spec(const layer_spec& spec)
    {
        const spec_reader r(spec, kind, {"in_features", "out_features"});
        return Dense(r.size("in_features"), r.size("out_features"));
    }

    /// (out_features, in_features). Assign a tensor of this shape to load weights.
    xt::xtensor<T, 2>& weight() noexcept { return m_weight.value(); }
    /// (out_features, in_features), read-only.
    const xt::xtensor<T, 2>& weight() const noexcept { return m_weight.value(); }
    /// (out_features). Assign a tensor of this shape to load biases.
    xt::xtensor<T, 1>& bias() noexcept { return m_bias.value(); }
    /// (out_features), read-only.
    const xt::xtensor<T, 1>& bias() const noexcept { return m_bias.value(); }
    /// dLoss/dweight of the last `backward` (overwritten, not accumulated).
    const xt::xtensor<T, 2>& weight_grad() const noexcept { return m_weight.grad(); }
    /// dLoss/dbias of the last `backward` (overwritten, not accumulated).
    const xt::xtensor<T, 1>& bias_grad() const noexcept { return m_bias.grad(); }

    /// The learnable tensors, "weight" and "bias", for `parameters()` and `num_parameters()`.
    auto parameter_slots() { return std::tie(m_weight, m_bias); }

    /// Kaiming-uniform weights and uniform biases, PyTorch's defaults, drawn from `rng`.
    void reset_parameters(std::mt19937& rng)
    {
        init::kaiming_uniform(m_weight.value(), m_in, rng);
        init::bias_uniform(m_bias.value(), m_in, rng);
    }

    /// `Dense(in_features, out_features)`, as shown in `Sequential::summary` and in error messages.
    std::string name() const { return detail::concat("Dense(", m_in, ", ", m_out, ")"); }

    /// (N, out_features) for an (N, in_features) input; N may be 0.
    /// @throws shape_error for another rank or feature count, or an output of more than
    /// `max_extent` elements.
    template <class S>
    std::array<std::size_t, 2> checked_output_shape(const S& input_shape) const
    {
        detail::require_rank(*this, input_shape, 2, "(N, features)");
        if (input_shape[1] != m_in)
        {
            throw shape_error(detail::concat(name(), ": expected ", m_in, " input features, got input ",
                                             detail::shape_to_string(input_shape)));
        }
        const std::array<std::size_t, 2> out{input_shape[0], m_out};
        detail::require_addressable(*this, input_shape, out, "an output");
        return out;
    }

    /// y = x W^T + b; in training, keeps x for `backward`.
    const output_type& run_forward(const input_type& x, bool training)
    {
        run(x.data(), checked_output_shape(x.shape()));
        if (training)
        {
            detail::ensure_shape(m_input, x.shape());
            std::copy(x.begin(), x.end(), m_input.begin());
            m_cached_input = m_input.data();
        }
        m_flattened = false;
        return m_output;
    }

    /// dX = dY W; overwrites dW = dY^T X and db = sum of dY over the batch.
    const input_type& run_backward(const output_type& grad_output)
    {
        run_backward_parameters(grad_output);
        detail::ensure_shape(m_input_grad, std::array<std::size_t, 2>{grad_output.shape()[0], m_in});
        input_gradient(grad_output, m_input_grad.data());
        return m_input_grad;
    }

    /// Overwrites dW and db without computing dX.
    void run_backward_parameters(const output_type& grad_output)
    {
        this->check_parameter_shapes();
        const std::size_t rows = grad_output.shape()[0];
        detail::contract<T>(ref(grad_output), {0}, rows_ref(m_cached_input, rows), {0}, mutable_ref(m_weight.grad()),
                            {}, m_tables, m_workspace);
        auto& bias_grad = m_bias.grad();
        for (std::size_t o = 0; o < m_out; ++o)
        {
            bias_grad(o) = T(0);
        }
        for (std::size_t b = 0; b < rows; ++b)
        {
            const T* row = grad_output.data() + b * m_out;
            for (std::size_t o = 0; o < m_out; ++o)
            {
                bias_grad(o) += row[o];
            }
        }
    }

    /// What `Sequential` runs for a layer that reshapes to rows (a `Flatten`) followed by this
    /// layer: `forward` (or, with `training` false, `predict`) of `x` (N, C, H, W) read in place as
    /// N rows of C * H * W features. Neither the flattened copy nor the copy of the input that
    /// `forward` keeps for `backward` is made, so `x` must stay alive and unchanged until
    /// `backward_flattened`, as a `Sequential`'s layer outputs do.
    /// @throws shape_error for a zero channel count, height or width, or if C * H * W is not
    /// `in_features()`.
    const output_type& forward_flattened(const xt::xtensor<T, 4>& x, bool training)
    {
        const auto& s = x.shape();
        // What Flatten would have checked: no empty sample axis, C * H * W without overflow.
        detail::require_nonempty_axes(*this, s, 1);
        if (!detail::addressable(std::array<std::size_t, 3>{s[1], s[2], s[3]}))
        {
            throw shape_error(detail::concat(name(), ": input ", detail::shape_to_string(s), " has more than ",
                                             max_extent, " features per sample"));
        }
        const std::size_t features = s[1] * s[2] * s[3];
        if (features != m_in)
        {
            throw shape_error(detail::concat(name(), ": expected ", m_in, " input features, got input (", s[0], ", ",
                                             features, ") (flattened from ", detail::shape_to_string(s), ")"));
        }
        const std::array<std::size_t, 2> out{s[0], m_out};
        detail::require_addressable(*this, s, out, "an output");
        return this->cached_forward(training,
                                    [&]() -> const output_type&
                                    {
                                        run(x.data(), out);
                                        m_cached_input = training ? x.data() : nullptr;
                                        m_flattened_shape = s;
                                        m_flattened = true;
                                        return m_output;
                                    });
    }

    /// A temporary would be gone before `backward_flattened` reads it.
    const output_type& forward_flattened(xt::xtensor<T, 4>&& x, bool training) = delete;

    /// @overload
    /// For inputs of any expression type: evaluated into a buffer of the layer first.
    template <class E>
    const output_type& forward_flattened(const xt::xexpression<E>& x, bool training)
    {
        return forward_flattened(detail::evaluate_input<4>(*this, x, m_flattened_input, "(N, C, H, W)"), training);
    }

    /// dX of the last `forward_flattened` in its input's (N, C, H, W) shape; overwrites the
    /// parameter gradients like `backward`.
    /// @throws error unless the last call was a `forward_flattened` in training; shape_error if
    /// `grad_output` does not have the shape of the last output.
    const xt::xtensor<T, 4>& backward_flattened(const output_type& grad_output)
    {
        this->require_cache(grad_output);
        if (!m_flattened)
        {
            // The (N, C, H, W) shape to write dX in is that of an older forward_flattened, if any.
            throw error(detail::concat(name(), ": backward_flattened needs a forward_flattened (not forward) first"));
        }
        run_backward_parameters(grad_output);
        detail::ensure_shape(m_input_grad_flattened, m_flattened_shape);
        input_gradient(grad_output, m_input_grad_flattened.data());
        return m_input_grad_flattened;
    }

    /// @overload
    /// For gradients of any expression type; checks the rank first (a `Sequential` ending in
    /// Flatten and Dense hands its caller's gradient here: an `xt::xarray` of another rank
    /// converted implicitly to `xt::xtensor<T, 2>` would write past its shape).
    template <class E>
    const xt::xtensor<T, 4>& backward_flattened(const xt::xexpression<E>& grad_output)
    {
        return backward_flattened(this->converted_gradient(grad_output));
    }

    /// What `Sequential` runs for this layer followed by an activation of functor `Op`: f(x W^T + b),
    /// the activation applied in place while the output is in cache (`training` false is
    /// `predict`). Then `backward_activated` takes the gradient of the activation's output.
    template <class Op>
    const output_type& forward_activated(const input_type& x, bool training, const Op& op)
    {
        this->forward_or_predict(x, training);
        return m_activated.apply(op, m_output);
    }

    /// @overload
    /// For inputs of any expression type.
    template <class E, class Op>
    const output_type& forward_activated(const xt::xexpression<E>& x, bool training, const Op& op)
    {
        return forward_activated(this->converted_input(x), training, op);
    }

    /// `backward` of the gradient of f(y) after `forward_activated`.
    template <class Op>
    const input_type& backward_activated(const output_type& grad_output, const Op& op)
    {
        return this->backward(activated_gradient(grad_output, op));
    }

    /// @overload
    /// For gradients of any expression type.
    template <class E, class Op>
    const input_type& backward_activated(const xt::xexpression<E>& grad_output, const Op& op)
    {
        return backward_activated(this->converted_gradient(grad_output), op);
    }

    /// `backward_parameters` of the gradient of f(y) after `forward_activated`.
    template <class Op>
    void backward_parameters_activated(const output_type& grad_output, const Op& op)
    {
        this->backward_parameters(activated_gradient(grad_output, op));
    }

    /// @overload
    /// For gradients of any expression type.
    template <class E, class Op>
    void backward_parameters_activated(const xt::xexpression<E>& grad_output, const Op& op)
    {
        backward_parameters_activated(this->converted_gradient(grad_output), op);
    }

private:
    /// dL/dy through the activation.
    template <class Op>
    const output_type& activated_gradient(const output_type& grad_output, const Op& op)
    {
        this->require_cache(grad_output);
        return m_activated.gradient(op, grad_output, m_output);
    }

    template <std::size_t N>
    static detail::tensor_ref<const T> ref(const xt::xtensor<T, N>& t)
    {
        return detail::make_tensor_ref<const T>(t.data(), t.shape(), t.strides());
    }
    template <std::size_t N>
    static detail::tensor_ref<T> mutable_ref(xt::xtensor<T, N>& t)
    {
        return detail::make_tensor_ref<T>(t.data(), t.shape(), t.strides());
    }

    /// dX (N x in, row-major at `dx`) = dY W.
    void input_gradient(const output_type& grad_output, T* dx)
    {
        const std::size_t rows = grad_output.shape()[0];
        detail::contract<T>(
            ref(grad_output), {1}, ref(m_weight.value()), {0},
            detail::make_tensor_ref<T>(dx, std::array<std::size_t, 2>{rows, m_in},
                                       std::array<std::ptrdiff_t, 2>{static_cast<std::ptrdiff_t>(m_in), 1}),
            {}, m_tables, m_workspace);
    }

    /// The (rows x in) row-major input at `data`.
    detail::tensor_ref<const T> rows_ref(const T* data, std::size_t rows) const
    {
        return detail::make_tensor_ref<const T>(data, std::array<std::size_t, 2>{rows, m_in},
                                                std::array<std::ptrdiff_t, 2>{static_cast<std::ptrdiff_t>(m_in), 1});
    }

    /// y = x W^T + b for the (out_shape[0] x in) row-major input at `x`.
    void run(const T* x, const std::array<std::size_t, 2>& out_shape)
    {
        this->check_parameter_shapes();
        detail::ensure_shape(m_output, out_shape);
        // Y (N x out) = X (N x in) . W (out x in)^T + b: both operands are contiguous along the
        // contracted axis, so every output is a dot product of two rows read in place.
        m_weight_rows.resize(m_out);
        for (std::size_t o = 0; o < m_out; ++o)
        {
            m_weight_rows[o] = static_cast<std::ptrdiff_t>(o * m_in);
        }
        detail::gemm_nt_operands<T> op;
        op.a = x;
        op.a_row = m_in;
        op.b = m_weight.value().data();
        op.b_rows = m_weight_rows.data();
        op.length = m_in;
        op.c = m_output.data();
        op.c_row = m_out;
        op.col_bias = m_bias.value().data();
        detail::gemm_nt(out_shape[0], m_out, op);
    }

    std::size_t m_in;
    std::size_t m_out;
    learnable<T, 2> m_weight;
    learnable<T, 1> m_bias;
    xt::xtensor<T, 2> m_input;
    const T* m_cached_input = nullptr;              // what backward reads: m_input or a caller's rows
    std::array<std::size_t, 4> m_flattened_shape{}; // input shape of the last forward_flattened
    bool m_flattened = false;                       // whether the last forward was forward_flattened
    xt::xtensor<T, 4> m_input_grad_flattened;       // dX of backward_flattened
    xt::xtensor<T, 4> m_flattened_input;            // forward_flattened's input if not an xtensor
    xt::xtensor<T, 2> m_output;
    xt::xtensor<T, 2> m_input_grad;
    detail::activated_output<xt::xtensor<T, 2>> m_activated; // what forward_activated keeps
    detail::contraction_tables m_tables;
    std::vector<std::ptrdiff_t> m_weight_rows; // row offsets of W for gemm_nt
    gemm_workspace<T> m_workspace;
};

} // namespace xcnn

#endif // XCNN_LAYERS_DENSE_HPP
