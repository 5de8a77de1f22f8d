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
///
/// Validation contract (docs/reliability.md): every check is O(1) in the tensor sizes, made
/// before anything changes, and fails with a typed error naming the layer and the values. A
/// batch of 0 samples is valid and gives an empty output; a zero channel, height or width is a
/// `shape_error`. Sizes given at construction must be at most `max_extent`: a negative `int`
/// converted to `std::size_t` is a `value_error`, not an attempt to allocate 2^64 elements.
#ifndef XCNN_LAYERS_LAYER_HPP
#define XCNN_LAYERS_LAYER_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"

namespace xcnn
{

/// Rank of a layer that takes any rank and returns the same rank.
inline constexpr int any_rank = -1;

/// Largest size a layer accepts as a channel or feature count, kernel size, stride or padding,
/// and largest element count of any tensor it allocates: xtensor computes strides and offsets in
/// `std::ptrdiff_t`, and larger sizes are in practice negative numbers converted to `std::size_t`.
inline constexpr std::size_t max_extent = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());

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

/// Throws `shape_error` unless `shape` has rank `rank`; `what` is "input" or "gradient". The
/// layer's name is only built when the check fails: these checks run on every call and must not
/// allocate.
template <class Layer, class Shape>
void require_rank(const Layer& layer, const Shape& shape, std::size_t rank, const char* layout,
                  const char* what = "input")
{
    if (shape.size() != rank)
    {
        throw shape_error(detail::concat(layer.name(), ": expected a rank-", rank, " ", what, " ", layout,
                                         ", got shape ", detail::shape_to_string(shape)));
    }
}

/// Throws `shape_error` if an axis from `first_axis` on has extent 0: only the batch axis may be
/// empty, as an empty image or feature vector is always a mistake upstream.
template <class Layer, class Shape>
void require_nonempty_axes(const Layer& layer, const Shape& shape, std::size_t first_axis)
{
    for (std::size_t d = first_axis; d < shape.size(); ++d)
    {
        if (shape[d] == 0)
        {
            throw shape_error(detail::concat(layer.name(), ": input ", detail::shape_to_string(shape),
                                             " has an empty axis ", d,
                                             "; only the batch axis may be 0 (an empty batch gives an empty output)"));
        }
    }
}

/// Whether a tensor of `shape` can be allocated and indexed: the product of its non-zero extents
/// (xtensor multiplies those into strides even when another extent is 0) is at most `max_extent`.
template <class Shape>
bool addressable(const Shape& shape) noexcept
{
    std::size_t product = 1;
    for (std::size_t extent : shape)
    {
        if (extent != 0)
        {
            if (extent > max_extent / product)
            {
                return false;
            }
            product *= extent;
        }
    }
    return true;
}

/// Throws `shape_error` unless a tensor of `shape`, which the layer would create from an input
/// of `input_shape`, is addressable.
template <class Layer, class S1, class S2>
void require_addressable(const Layer& layer, const S1& input_shape, const S2& shape, const char* what)
{
    if (!addressable(shape))
    {
        throw shape_error(detail::concat(layer.name(), ": input ", detail::shape_to_string(input_shape), " gives ",
                                         what, " ", detail::shape_to_string(shape), " of more than ", max_extent,
                                         " elements"));
    }
}

/// Throws `value_error` unless the size `value` a layer was constructed with lies in
/// [`min`, `max_extent`]; `what` names the argument, `shown` is how the layer's name shows it.
template <class Shown>
void require_size_argument(const std::string& layer, const char* what, std::size_t value, const Shown& shown,
                           std::size_t min)
{
    if (value < min)
    {
        throw value_error(detail::concat(layer, ": ", what, " must be >= ", min, ", got ", shown));
    }
    if (value > max_extent)
    {
        throw value_error(detail::concat(layer, ": ", what, " must be at most ", max_extent, ", got ", shown,
                                         " (a negative number converted to std::size_t?)"));
    }
}

/// Throws `value_error` unless a weight of `shape` is addressable: a layer whose sizes are each
/// valid can still ask for more elements than memory can index.
template <class Shape>
void require_addressable_weight(const std::string& layer, const Shape& shape)
{
    if (!addressable(shape))
    {
        throw value_error(detail::concat(layer, ": a weight of shape ", detail::shape_to_string(shape),
                                         " would have more than ", max_extent, " elements"));
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

/// Converts an input (or, with `what` = "gradient", a gradient) of any expression type (an
/// `xt::xarray`, a view) to the layer's fixed-rank type in `buffer`, after checking its rank:
/// converting a tensor of another rank to an `xt::xtensor<T, N>` writes past xtensor's shape
/// array, so this must come first.
template <std::size_t N, class Layer, class T, class E>
const xt::xtensor<T, N>& evaluate_input(const Layer& layer, const xt::xexpression<E>& expression,
                                        xt::xtensor<T, N>& buffer, const char* layout, const char* what = "input")
{
    const auto& x = expression.derived_cast();
    require_rank(layer, x.shape(), N, layout, what);
    // For a fixed rank other than N, require_rank has thrown; not instantiating the conversion
    // also keeps GCC's -Warray-bounds quiet about it.
    if constexpr (xt::get_rank<E>::value == SIZE_MAX || xt::get_rank<E>::value == N)
    {
        ensure_shape(buffer, x.shape());
        xt::noalias(buffer) = x;
    }
    return buffer;
}

/// Base of the fixed-rank layers: `forward`, `predict` and `backward` for tensors of any
/// expression type (an `xt::xarray`, a view, an `xt::xtensor` of another rank), whose rank is
/// checked (a wrong rank is a `shape_error` naming the layer, not memory corruption in xtensor's
/// implicit conversion) before they are evaluated into the layer's input type (rank `N`) or
/// output type (rank `M`). The layer's own overloads for its exact types take precedence and
/// never copy.
template <class Derived, class T, std::size_t N, std::size_t M = N>
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

    /// @overload
    /// For gradients of any expression type; checks the rank and evaluates the gradient first.
    template <class E>
    decltype(auto) backward(const xt::xexpression<E>& grad_output)
    {
        auto& self = static_cast<Derived&>(*this);
        return self.backward(
            evaluate_input<M>(self, grad_output, m_converted_grad, Derived::output_layout, "gradient"));
    }

protected:
    /// `x` as the layer's input type; what a layer's own overloads for expressions call it with.
    template <class E>
    const xt::xtensor<T, N>& converted_input(const xt::xexpression<E>& x)
    {
        auto& self = static_cast<Derived&>(*this);
        return evaluate_input<N>(self, x, m_converted_input, Derived::input_layout);
    }

    /// `grad_output` as the layer's output type; what a layer's own overload of
    /// `backward_parameters` for expressions calls it with.
    template <class E>
    const xt::xtensor<T, M>& converted_gradient(const xt::xexpression<E>& grad_output)
    {
        auto& self = static_cast<Derived&>(*this);
        return evaluate_input<M>(self, grad_output, m_converted_grad, Derived::output_layout, "gradient");
    }

private:
    xt::xtensor<T, N> m_converted_input;
    xt::xtensor<T, M> m_converted_grad;
};

} // namespace detail
} // namespace xcnn

#endif // XCNN_LAYERS_LAYER_HPP
