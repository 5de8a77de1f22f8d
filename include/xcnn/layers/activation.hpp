/// @file
/// `xcnn::activation<T, Op>`: an element-wise activation layer for tensors of any rank, one
/// template over a small functor (core/activation.hpp says what a functor provides). `ReLU<T>`
/// is `activation<T, relu_op>`; a new activation is a functor and an alias.
///
/// In a `Sequential`, an activation right after a layer that can apply it in its own output pass
/// (`Conv2D`, `Dense`, BatchNorm: they provide `forward_activated`) runs as one step with it; see
/// network/sequential.hpp.
#ifndef XCNN_LAYERS_ACTIVATION_HPP
#define XCNN_LAYERS_ACTIVATION_HPP

#include <algorithm>
#include <cstddef>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../core/activation.hpp"
#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "any_rank.hpp"
#include "layer.hpp"

namespace xcnn
{
namespace detail
{

/// What an activation takes from its functor for `layer_spec`s: the functor's `kind`, when it
/// names one (a functor without one makes a layer that does not describe itself).
template <class Op, class = void>
struct activation_kind
{
};
template <class Op>
struct activation_kind<Op, std::void_t<decltype(Op::kind)>>
{
    /// The kind in a `layer_spec`, the functor's ("ReLU").
    static constexpr const char* kind = Op::kind;
};

/// Whether an activation functor adds options to its layer's spec (`describe(spec)`).
template <class Op, class = void>
struct describes_options : std::false_type
{
};
template <class Op>
struct describes_options<Op, std::void_t<decltype(std::declval<const Op&>().describe(std::declval<layer_spec&>()))>>
    : std::true_type
{
};

} // namespace detail

/// f(x) element-wise for the functor `Op`; takes a tensor of any rank (1 to 8) and returns the
/// same shape.
template <class T, class Op>
class activation : public any_rank_layer<activation<T, Op>, T>, public detail::activation_kind<Op>
{
    using base = any_rank_layer<activation<T, Op>, T>;

public:
    /// The functor; `Sequential` hands it to a previous layer that applies it itself.
    using activation_op = Op;

    /// The activation of a default-constructed functor.
    activation() = default;
    /// The activation of `op` (for functors with settings, e.g. a negative slope).
    explicit activation(Op op) : m_op(std::move(op)) {}

    /// The functor.
    const Op& op() const noexcept { return m_op; }

    /// The functor's name, e.g. `ReLU()`, as shown in `Sequential::summary` and in error messages.
    std::string name() const { return m_op.name(); }

    /// The functor's kind and the options it adds (`describe`), for functors with a `kind`.
    template <class O = Op, class = decltype(O::kind)>
    layer_spec spec() const
    {
        layer_spec spec{O::kind, {}, {}};
        if constexpr (detail::describes_options<O>::value)
        {
            m_op.describe(spec);
        }
        return spec;
    }

    /// The activation `spec` describes: the functor's `from_spec`, or, for a functor without one,
    /// its default.
    /// @throws value_error for another kind or an option the functor does not take.
    template <class O = Op, class = decltype(O::kind)>
    static activation from_spec(const layer_spec& spec)
    {
        if constexpr (detail::has_from_spec<O>::value)
        {
            return activation(O::from_spec(spec));
        }
        else
        {
            spec_reader(spec, O::kind, {});
            return activation();
        }
    }

    /// f(x), keeping what `backward` needs (the output, and the input if the functor's gradient
    /// reads it).
    template <std::size_t N>
    const xt::xtensor<T, N>& forward(const xt::xtensor<T, N>& x)
    {
        auto& y = this->template output_for<N>(x.shape(), true);
        detail::apply_activation(m_op, x.data(), y.data(), x.size());
        if constexpr (Op::backward_reads_input)
        {
            auto& kept = std::get<N - 1>(m_inputs);
            detail::ensure_shape(kept, x.shape());
            std::copy(x.begin(), x.end(), kept.begin());
        }
        return y;
    }

    /// Same result as `forward`, marked as inference: `backward` after it is an error.
    template <std::size_t N>
    const xt::xtensor<T, N>& predict(const xt::xtensor<T, N>& x)
    {
        auto& y = this->template output_for<N>(x.shape(), false);
        detail::apply_activation(m_op, x.data(), y.data(), x.size());
        return y;
    }

    /// dX = dY f'(x).
    /// @throws error unless the last call was a `forward` of rank N; shape_error if `grad_output`
    /// does not have the shape of the last output.
    template <std::size_t N>
    const xt::xtensor<T, N>& backward(const xt::xtensor<T, N>& grad_output)
    {
        const auto& y = this->checked_output(grad_output);
        auto& dx = this->input_grad_for(y);
        const T* x = Op::backward_reads_input ? std::get<N - 1>(m_inputs).data() : nullptr;
        detail::activation_gradient(m_op, grad_output.data(), x, y.data(), dx.data(), y.size());
        return dx;
    }

private:
    Op m_op{};
    typename base::buffers_by_rank m_inputs; // only with Op::backward_reads_input
};

} // namespace xcnn

#endif // XCNN_LAYERS_ACTIVATION_HPP
