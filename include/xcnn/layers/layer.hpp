/// @file
/// The layer concept and what implements most of it: `layer_state` (parameters and buffers
/// from declared slots) and `layer` (types, ranks, `output_shape`, the public forward/backward
/// entry points and their checks), plus the shape checks that make errors readable.
///
/// A layer `L` over scalar `T` provides (`Sequential` checks each member at compile time, and
/// `detail::is_layer<L>` / the C++20 concept `xcnn::Layer` test them all):
/// - `value_type`; `static constexpr int input_rank, output_rank` (`any_rank` for layers such as
///   ReLU that accept any rank and keep it), checked between neighbours of a `Sequential`;
/// - `forward(x)`: output as a const reference to a buffer the layer owns and reuses, caching
///   what `backward` needs; `predict(x)`: the same output without the training caches;
/// - `backward(dy)`: dX (const reference), overwriting the parameter gradients;
/// - `output_shape(input_shape)` (throws `shape_error` on an input it cannot take), `name()`,
///   `parameters()`, `num_parameters()`, `reset_parameters(rng)`, and optionally `buffers()` and
///   `backward_parameters(dy)`.
///
/// Deriving from `layer<Derived, T, InRank, OutRank>` supplies all of it but the mathematics;
/// docs/adding-a-layer.md walks through a layer written that way.
///
/// Validation contract (docs/reliability.md): every check is O(1) in the tensor sizes, made
/// before anything changes, and fails with a typed error naming the layer and the values. A
/// batch of 0 samples is valid and gives an empty output; a zero channel, height or width is a
/// `shape_error`. Sizes given at construction must be at most `max_extent`: a negative `int`
/// converted to `std::size_t` is a `value_error`, not an attempt to allocate 2^64 elements.
#ifndef XCNN_LAYERS_LAYER_HPP
#define XCNN_LAYERS_LAYER_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../core/layer_spec.hpp"
#include "../core/parameter.hpp"
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

/// The layout a rank's tensors have, for messages: "(N, C, H, W)" for rank 4.
constexpr const char* layout_of_rank(std::size_t rank) noexcept
{
    switch (rank)
    {
    case 1:
        return "(N,)";
    case 2:
        return "(N, features)";
    case 3:
        return "(N, C, L)";
    case 4:
        return "(N, C, H, W)";
    default:
        return "(N, ...)";
    }
}

template <class L, class = void>
struct has_parameter_slots : std::false_type
{
};
template <class L>
struct has_parameter_slots<L, std::void_t<decltype(std::declval<L&>().parameter_slots())>> : std::true_type
{
};
template <class L, class = void>
struct has_buffer_slots : std::false_type
{
};
template <class L>
struct has_buffer_slots<L, std::void_t<decltype(std::declval<L&>().buffer_slots())>> : std::true_type
{
};
template <class L, class G, class = void>
struct has_run_backward_parameters : std::false_type
{
};
template <class L, class G>
struct has_run_backward_parameters<
    L, G, std::void_t<decltype(std::declval<L&>().run_backward_parameters(std::declval<const G&>()))>> : std::true_type
{
};

/// Calls `f(slot)` for every declared (present) slot of the tuple of references `slots`.
template <class Tuple, class F>
void for_each_slot(Tuple&& slots, F&& f)
{
    std::apply(
        [&](auto&... slot)
        {
            (
                [&](auto& s)
                {
                    if (s.declared())
                    {
                        f(s);
                    }
                }(slot),
                ...);
        },
        slots);
}

// ---- The layer concept, member by member, so a failed check names what is missing. ----------

template <class L, class = void>
struct has_value_type : std::false_type
{
};
template <class L>
struct has_value_type<L, std::void_t<typename L::value_type>> : std::true_type
{
};
template <class L, class = void>
struct has_ranks : std::false_type
{
};
template <class L>
struct has_ranks<L, std::void_t<decltype(int{L::input_rank}), decltype(int{L::output_rank})>> : std::true_type
{
};
template <class L, class = void>
struct has_layer_name : std::false_type
{
};
template <class L>
struct has_layer_name<
    L, std::enable_if_t<std::is_convertible<decltype(std::declval<const L&>().name()), std::string>::value>>
    : std::true_type
{
};
template <class L, class = void>
struct has_output_shape : std::false_type
{
};
template <class L>
struct has_output_shape<L, std::enable_if_t<std::is_same<decltype(std::declval<const L&>().output_shape(
                                                             std::declval<const std::vector<std::size_t>&>())),
                                                         std::vector<std::size_t>>::value>> : std::true_type
{
};
template <class L, class T, class = void>
struct has_parameters : std::false_type
{
};
template <class L, class T>
struct has_parameters<
    L, T, std::enable_if_t<std::is_same<decltype(std::declval<L&>().parameters()), std::vector<parameter<T>>>::value>>
    : std::true_type
{
};
template <class L, class = void>
struct has_num_parameters : std::false_type
{
};
template <class L>
struct has_num_parameters<L, std::void_t<decltype(std::size_t{std::declval<const L&>().num_parameters()})>>
    : std::true_type
{
};
template <class L, class = void>
struct has_reset_parameters : std::false_type
{
};
template <class L>
struct has_reset_parameters<L,
                            std::void_t<decltype(std::declval<L&>().reset_parameters(std::declval<std::mt19937&>()))>>
    : std::true_type
{
};
/// A layer's own buffers are optional: a layer written before buffers existed has none.
template <class L, class T, class = void>
struct has_buffers : std::false_type
{
};
template <class L, class T>
struct has_buffers<
    L, T, std::enable_if_t<std::is_same<decltype(std::declval<L&>().buffers()), std::vector<buffer<T>>>::value>>
    : std::true_type
{
};

/// The tensor a layer is checked with: its input rank, or rank 4 for a layer that takes any rank.
template <class L>
using probe_input =
    xt::xtensor<typename L::value_type, static_cast<std::size_t>(L::input_rank == any_rank ? 4 : L::input_rank)>;
template <class L>
using probe_output =
    xt::xtensor<typename L::value_type, static_cast<std::size_t>(L::output_rank == any_rank ? 4 : L::output_rank)>;

template <class L, class = void>
struct has_forward : std::false_type
{
};
template <class L>
struct has_forward<L, std::void_t<decltype(std::declval<L&>().forward(std::declval<const probe_input<L>&>())),
                                  decltype(std::declval<L&>().predict(std::declval<const probe_input<L>&>()))>>
    : std::true_type
{
};
template <class L, class = void>
struct has_backward : std::false_type
{
};
template <class L>
struct has_backward<L, std::void_t<decltype(std::declval<L&>().backward(std::declval<const probe_output<L>&>()))>>
    : std::true_type
{
};

/// Whether `L` satisfies xcnn's layer concept (docs/adding-a-layer.md): `value_type`,
/// `input_rank`/`output_rank`, `name()`, `output_shape(shape)`, `parameters()`,
/// `num_parameters()`, `reset_parameters(rng)`, `forward(x)`, `predict(x)` and `backward(dy)`.
template <class L, class = void>
struct is_layer : std::false_type
{
};
template <class L>
struct is_layer<L, std::enable_if_t<has_value_type<L>::value && has_ranks<L>::value>>
    : std::bool_constant<has_layer_name<L>::value && has_output_shape<L>::value &&
                         has_parameters<L, typename L::value_type>::value && has_num_parameters<L>::value &&
                         has_reset_parameters<L>::value && has_forward<L>::value && has_backward<L>::value>
{
};

/// Instantiated for each layer of a `Sequential`: one message per missing member.
template <class L>
struct check_layer
{
    static_assert(has_value_type<L>::value, "xcnn::Sequential: a layer type has no `value_type` (its scalar type, "
                                            "float or double); see docs/adding-a-layer.md");
    static_assert(has_ranks<L>::value, "xcnn::Sequential: a layer type has no `static constexpr int input_rank` and "
                                       "`output_rank` (xcnn::any_rank for any); see docs/adding-a-layer.md");
    static_assert(has_layer_name<L>::value,
                  "xcnn::Sequential: a layer type has no `std::string name() const`; see docs/adding-a-layer.md");
    static_assert(has_output_shape<L>::value, "xcnn::Sequential: a layer type has no `std::vector<std::size_t> "
                                              "output_shape(const std::vector<std::size_t>&) const`");
    static_assert(has_parameters<L, typename L::value_type>::value,
                  "xcnn::Sequential: a layer type has no `std::vector<xcnn::parameter<T>> parameters()` (derive from "
                  "xcnn::layer or xcnn::layer_state to get it)");
    static_assert(has_num_parameters<L>::value,
                  "xcnn::Sequential: a layer type has no `std::size_t num_parameters() const` (derive from xcnn::layer "
                  "or xcnn::layer_state to get it)");
    static_assert(has_reset_parameters<L>::value,
                  "xcnn::Sequential: a layer type has no `void reset_parameters(std::mt19937&)` (derive from "
                  "xcnn::layer or xcnn::layer_state to get it)");
    static_assert(has_forward<L>::value, "xcnn::Sequential: a layer type has no `forward(x)` and `predict(x)` taking "
                                         "an xt::xtensor<value_type, input_rank>");
    static_assert(
        has_backward<L>::value,
        "xcnn::Sequential: a layer type has no `backward(dy)` taking an xt::xtensor<value_type, output_rank>");
    static constexpr bool value = true;
};

} // namespace detail

/// What every layer gets from its declared state: `parameters()`, `buffers()`,
/// `num_parameters()`, the check that no tensor was assigned another shape, and, for a layer
/// without parameters, a `reset_parameters` that draws nothing.
///
/// A layer `Derived` declares its state as members (`learnable<T, N>` for trainable tensors,
/// `persistent<T, N>` for buffers, core/parameter.hpp) and lists them once:
///
///     auto parameter_slots() { return std::tie(m_weight, m_bias); }
///     auto buffer_slots() { return std::tie(m_running_mean); }
///
/// Either function may be left out: no parameters, no buffers.
template <class Derived, class T>
class layer_state
{
public:
    /// Handles on every declared learnable tensor and its gradient, in declaration order, named
    /// as declared ("weight", "bias").
    /// @throws shape_error if a tensor was assigned a tensor of another shape.
    std::vector<parameter<T>> parameters()
    {
        std::vector<parameter<T>> out;
        if constexpr (detail::has_parameter_slots<Derived>::value)
        {
            check_parameter_shapes();
            detail::for_each_slot(self().parameter_slots(), [&](auto& slot) { out.push_back(slot.handle()); });
        }
        return out;
    }

    /// Handles on every declared buffer (non-trainable state such as a running mean), named as
    /// declared ("running_mean"); what model files, `.npy` export and checkpoints save besides
    /// the parameters, and what no optimizer sees.
    /// @throws shape_error if a buffer was assigned a tensor of another shape.
    std::vector<buffer<T>> buffers()
    {
        std::vector<buffer<T>> out;
        if constexpr (detail::has_buffer_slots<Derived>::value)
        {
            check_buffer_shapes();
            detail::for_each_slot(self().buffer_slots(), [&](auto& slot) { out.push_back(slot.handle()); });
        }
        return out;
    }

    /// Number of trainable scalars.
    std::size_t num_parameters() const
    {
        std::size_t count = 0;
        if constexpr (detail::has_parameter_slots<Derived>::value)
        {
            // The slots are listed by a non-const member; counting changes nothing.
            detail::for_each_slot(const_cast<Derived&>(self()).parameter_slots(),
                                  [&](const auto& slot) { count += slot.size(); });
        }
        return count;
    }

    /// Draws nothing: a layer with parameters defines its own.
    void reset_parameters(std::mt19937&) {}

protected:
    /// Throws `shape_error` naming the layer if a learnable tensor was assigned another shape:
    /// what every use of the parameters checks first.
    void check_parameter_shapes() const
    {
        if constexpr (detail::has_parameter_slots<Derived>::value)
        {
            check_shapes(const_cast<Derived&>(self()).parameter_slots());
        }
    }

    /// `check_parameter_shapes` for the buffers.
    void check_buffer_shapes() const
    {
        if constexpr (detail::has_buffer_slots<Derived>::value)
        {
            check_shapes(const_cast<Derived&>(self()).buffer_slots());
        }
    }

private:
    template <class Slots>
    void check_shapes(Slots&& slots) const
    {
        detail::for_each_slot(slots, [&](const auto& slot) { slot.check_shape(self()); });
    }

    Derived& self() noexcept { return static_cast<Derived&>(*this); }
    const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }
};

/// Base of a layer from rank-`InRank` to rank-`OutRank` tensors of `T`: everything but the
/// layer's mathematics. It supplies the type aliases and rank constants `Sequential` checks,
/// `output_shape`, the public `forward`/`predict`/`backward`/`backward_parameters` for the
/// layer's exact types and for any xtensor expression (rank-checked, then evaluated), the
/// forward-before-backward and gradient-shape checks, the check that no parameter or buffer
/// was assigned a tensor of another shape (before every `run_forward` and `run_backward`), and
/// (through `layer_state`) the parameters and buffers.
///
/// `Derived` writes (see docs/adding-a-layer.md):
/// - `std::string name() const`;
/// - `std::array<std::size_t, OutRank> checked_output_shape(const S& input_shape) const` for any
///   container of sizes, which the base has checked to have rank `InRank`: validates and returns
///   the output shape without allocating;
/// - `const output_type& run_forward(const input_type& x, bool training)`: the output, in a buffer
///   the layer owns; with `training`, it keeps what `run_backward` needs;
/// - `const input_type& run_backward(const output_type& dy)`: dX, overwriting the gradients of
///   the parameters; the base has checked that a training forward came first and that `dy` has
///   the shape of its output;
/// - optionally `void run_backward_parameters(const output_type& dy)`: the parameter gradients
///   alone, when that is cheaper than `run_backward`.
template <class Derived, class T, std::size_t InRank, std::size_t OutRank = InRank>
class layer : public layer_state<Derived, T>
{
public:
    /// Scalar type of the layer's tensors and parameters (`float` or `double`).
    using value_type = T;
    /// What `forward` takes.
    using input_type = xt::xtensor<T, InRank>;
    /// What `forward` returns.
    using output_type = xt::xtensor<T, OutRank>;
    /// Rank of the input; `Sequential` checks it against the previous layer at compile time.
    static constexpr int input_rank = static_cast<int>(InRank);
    /// Rank of the output; `Sequential` checks it against the next layer at compile time.
    static constexpr int output_rank = static_cast<int>(OutRank);
    /// The input layout named in rank errors.
    static constexpr const char* input_layout = detail::layout_of_rank(InRank);
    /// The gradient layout named in rank errors.
    static constexpr const char* output_layout = detail::layout_of_rank(OutRank);

    /// Shape of the output for an input of `input_shape`; the batch may be 0.
    /// @throws shape_error for an input the layer cannot take, naming the layer and the shape.
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const
    {
        // checked_output_shape may then index the input's InRank axes.
        detail::require_rank(self(), input_shape, InRank, Derived::input_layout);
        const auto shape = self().checked_output_shape(input_shape);
        return std::vector<std::size_t>(shape.begin(), shape.end());
    }

    /// The output for `x`, keeping what `backward` needs; a reference to a buffer of the layer
    /// that the next call overwrites.
    /// @throws shape_error for an input the layer cannot take, or if a parameter was assigned a
    /// tensor of another shape; the layer is then unchanged.
    const output_type& forward(const input_type& x) { return forward_or_predict(x, true); }

    /// Same result as `forward`, marked as inference: `backward` after it is an error.
    /// @throws shape_error as `forward` does.
    const output_type& predict(const input_type& x) { return forward_or_predict(x, false); }

    /// dLoss/dinput for `grad_output` = dLoss/doutput of the last `forward`; overwrites the
    /// gradients of the parameters.
    /// @throws error without a `forward` since construction or after a `predict`; shape_error if
    /// `grad_output` does not have the shape of the last output.
    const input_type& backward(const output_type& grad_output)
    {
        require_cache(grad_output);
        check_state_shapes();
        return self().run_backward(grad_output);
    }

    /// The gradients of the parameters alone, without dLoss/dinput: what a first layer, whose
    /// input needs no gradient, does in training (`Sequential::backward_parameters`).
    /// @throws error, shape_error as `backward` does.
    void backward_parameters(const output_type& grad_output)
    {
        require_cache(grad_output);
        check_state_shapes();
        if constexpr (detail::has_run_backward_parameters<Derived, output_type>::value)
        {
            self().run_backward_parameters(grad_output);
        }
        else if constexpr (detail::has_parameter_slots<Derived>::value)
        {
            self().run_backward(grad_output);
        }
    }

    /// @overload
    /// For inputs of any expression type (an `xt::xarray`, a view); checks the rank first.
    template <class E>
    const output_type& forward(const xt::xexpression<E>& x)
    {
        return forward(converted_input(x));
    }
    /// @overload
    /// For inputs of any expression type; checks the rank first.
    template <class E>
    const output_type& predict(const xt::xexpression<E>& x)
    {
        return predict(converted_input(x));
    }
    /// @overload
    /// For gradients of any expression type; checks the rank first.
    template <class E>
    const input_type& backward(const xt::xexpression<E>& grad_output)
    {
        return backward(converted_gradient(grad_output));
    }
    /// @overload
    /// For gradients of any expression type; checks the rank first.
    template <class E>
    void backward_parameters(const xt::xexpression<E>& grad_output)
    {
        backward_parameters(converted_gradient(grad_output));
    }

protected:
    /// Runs `compute()` (which returns the output) as a forward pass that keeps a cache for
    /// `backward` when `training`: what the public `forward` and a layer's fused forms share.
    /// A forward that throws (its checks come before any change) leaves the last one's cache.
    template <class F>
    const output_type& cached_forward(bool training, F&& compute)
    {
        const output_type& y = compute();
        m_has_cache = training;
        std::copy(y.shape().begin(), y.shape().end(), m_output_shape.begin());
        return y;
    }

    /// Throws `error` unless the last forward pass kept a cache, and `shape_error` unless
    /// `grad_output` has the shape of its output.
    void require_cache(const output_type& grad_output) const
    {
        if (!m_has_cache)
        {
            throw error(detail::concat(self().name(), ": backward needs a forward (not predict) first"));
        }
        detail::require_grad_shape(self(), grad_output.shape(), m_output_shape);
    }

    /// `x` checked for rank `InRank` and evaluated into the layer's input type.
    template <class E>
    const input_type& converted_input(const xt::xexpression<E>& x)
    {
        return detail::evaluate_input<InRank>(self(), x, m_converted_input, Derived::input_layout);
    }

    /// `grad_output` checked for rank `OutRank` and evaluated into the layer's output type.
    template <class E>
    const output_type& converted_gradient(const xt::xexpression<E>& grad_output)
    {
        return detail::evaluate_input<OutRank>(self(), grad_output, m_converted_grad, Derived::output_layout,
                                               "gradient");
    }

    /// `forward(x)` when `training`, else `predict(x)`: for a layer's fused forms that run the
    /// plain pass and then work on its output.
    const output_type& forward_or_predict(const input_type& x, bool training)
    {
        check_state_shapes();
        return cached_forward(training, [&]() -> const output_type& { return self().run_forward(x, training); });
    }

private:
    /// Throws `shape_error` naming the layer if a parameter or a buffer was assigned a tensor of
    /// another shape, before `run_forward` or `run_backward` reads it.
    void check_state_shapes() const
    {
        this->check_parameter_shapes();
        this->check_buffer_shapes();
    }

    Derived& self() noexcept { return static_cast<Derived&>(*this); }
    const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }

    std::array<std::size_t, OutRank> m_output_shape{};
    bool m_has_cache = false;
    input_type m_converted_input;
    output_type m_converted_grad;
};

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
/// C++20: whether `L` is an xcnn layer (see the top of this file; `Sequential` checks the same
/// members one by one, with a message for each).
template <class L>
concept Layer = detail::is_layer<L>::value;
#endif

} // namespace xcnn

#endif // XCNN_LAYERS_LAYER_HPP
