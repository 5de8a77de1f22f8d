/// @file
/// What every xcnn layer shares: the rank marker for rank-preserving layers, default
/// initialisation seeds and the shape checks that make errors readable.
///
/// A layer `L` over scalar `T` provides
/// - `static constexpr int input_rank, output_rank` (`any_rank` for layers such as ReLU that
///   accept any rank and keep it), checked between neighbours of a `Sequential` at compile time;
/// - `forward(x)`: output as a const reference to a buffer the layer owns and reuses, caching
///   what `backward` needs; `predict(x)`: the same output without the training caches;
/// - `backward(dy)`: dX (const reference), overwriting the parameter gradients;
/// - `output_shape(input_shape)` (throws `shape_error` on an input it cannot take), `name()`,
///   `parameters()`, `num_parameters()`, `reset_parameters(rng)`.
#ifndef XCNN_LAYERS_LAYER_HPP
#define XCNN_LAYERS_LAYER_HPP

#include <algorithm>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"

namespace xcnn
{

/// Rank of a layer that takes any rank and returns the same rank.
inline constexpr int any_rank = -1;

namespace detail
{

/// Seed of the generator a layer initialises itself from when it is constructed. Runs are
/// reproducible without any hidden global generator; `reset_parameters(rng)` (or
/// `Sequential::reset_parameters(seed)`) gives each layer its own draws.
inline constexpr std::mt19937::result_type default_init_seed = 5489u;

/// Resizes `t` to `shape` only when the shape differs, so buffers are reused across batches.
template <class Tensor, class Shape>
void ensure_shape(Tensor& t, const Shape& shape)
{
    if (!std::equal(shape.begin(), shape.end(), t.shape().begin(), t.shape().end()))
    {
        typename Tensor::shape_type s{};
        std::copy(shape.begin(), shape.end(), s.begin());
        t.resize(s);
    }
}

/// Throws `shape_error` unless `shape` has rank `rank`. The layer's name is only built when the
/// check fails: these checks run on every call and must not allocate.
template <class Layer, class Shape>
void require_rank(const Layer& layer, const Shape& shape, std::size_t rank, const char* layout)
{
    if (shape.size() != rank)
    {
        throw shape_error(detail::concat(layer.name(), ": expected a rank-", rank, " input ", layout, ", got shape ",
                                         detail::shape_to_string(shape)));
    }
}

/// Throws `shape_error` unless the gradient has the shape of the layer's last output.
template <class Layer, class S1, class S2>
void require_grad_shape(const Layer& layer, const S1& grad_shape, const S2& output_shape)
{
    if (!std::equal(grad_shape.begin(), grad_shape.end(), output_shape.begin(), output_shape.end()))
    {
        throw shape_error(detail::concat(layer.name(), ": backward got a gradient of shape ",
                                         detail::shape_to_string(grad_shape), " but the last forward produced ",
                                         detail::shape_to_string(output_shape), " (call forward before backward)"));
    }
}

/// Converts an input of any expression type (an `xt::xarray`, a view) to the layer's fixed-rank
/// input type in `buffer`, after checking its rank, so a wrong rank is a `shape_error` rather
/// than an xtensor assertion.
template <std::size_t N, class Layer, class T, class E>
const xt::xtensor<T, N>& evaluate_input(const Layer& layer, const xt::xexpression<E>& expression,
                                        xt::xtensor<T, N>& buffer, const char* layout)
{
    const auto& x = expression.derived_cast();
    require_rank(layer, x.shape(), N, layout);
    ensure_shape(buffer, x.shape());
    xt::noalias(buffer) = x;
    return buffer;
}

/// Base of the fixed-rank layers: `forward` and `predict` for inputs of any expression type (an
/// `xt::xarray`, a view), whose rank is checked (a wrong rank is a `shape_error` naming the
/// layer, not an xtensor assertion) before they are evaluated into the layer's input type. The
/// layer's own overloads for its input type take precedence and never copy.
template <class Derived, class T, std::size_t N>
class expression_input
{
public:
    /// @overload
    /// For inputs of any expression type; checks the rank and evaluates the input first.
    template <class E>
    decltype(auto) forward(const xt::xexpression<E>& x)
    {
        auto& self = static_cast<Derived&>(*this);
        return self.forward(evaluate_input<N>(self, x, m_converted_input, Derived::input_layout));
    }

    /// @overload
    /// For inputs of any expression type; checks the rank and evaluates the input first.
    template <class E>
    decltype(auto) predict(const xt::xexpression<E>& x)
    {
        auto& self = static_cast<Derived&>(*this);
        return self.predict(evaluate_input<N>(self, x, m_converted_input, Derived::input_layout));
    }

private:
    xt::xtensor<T, N> m_converted_input;
};

} // namespace detail
} // namespace xcnn

#endif // XCNN_LAYERS_LAYER_HPP
