/// @file
/// `xcnn::Sequential`: layers chained at compile time, forward and backward.
#ifndef XCNN_NETWORK_SEQUENTIAL_HPP
#define XCNN_NETWORK_SEQUENTIAL_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/generator.hpp"
#include "../core/layer_spec.hpp"
#include "../core/parameter.hpp"
#include "../layers/layer.hpp"
#include "chain.hpp"

namespace xcnn
{
namespace detail
{

/// Rank of the tensor leaving layer `i` of a chain, `any_rank` while it is not yet fixed.
template <std::size_t N>
constexpr int produced_rank(const std::array<int, N>& out, std::size_t i)
{
    int rank = any_rank;
    for (std::size_t k = 0; k <= i; ++k)
    {
        rank = out[k] == any_rank ? rank : out[k];
    }
    return rank;
}

template <class>
struct always_false : std::false_type
{
};

// ---- Rank mismatches between neighbours: the layer's index and both ranks in the message. ------
// A static_assert message must be a literal, so the messages are spelled out for the first 64
// layers and for each pair of ranks 1 to 4; `sizeof` instantiates them only on a mismatch.

template <bool Match, std::size_t Layer, class D = void>
struct mismatch_at_layer
{
};
template <std::size_t Layer, class D>
struct mismatch_at_layer<false, Layer, D>
{
    static_assert(always_false<D>::value, "xcnn::Sequential: rank mismatch at a layer past the 64th (its index is the "
                                          "second template argument of mismatch_at_layer)");
};
/// The message for a mismatch at layer I (internal; undefined again below).
#define XCNN_MISMATCH_AT_LAYER(I)                                                                                      \
    template <class D>                                                                                                 \
    struct mismatch_at_layer<false, I, D>                                                                              \
    {                                                                                                                  \
        static_assert(always_false<D>::value, "xcnn::Sequential: layer " #I " cannot take the tensor the layer "       \
                                              "before it produces (the next error says which ranks)");                 \
    };
/// The messages for layers I1 to I8 (internal; undefined again below).
#define XCNN_MISMATCH_AT_LAYERS8(I)                                                                                    \
    XCNN_MISMATCH_AT_LAYER(I##1)                                                                                       \
    XCNN_MISMATCH_AT_LAYER(I##2)                                                                                       \
    XCNN_MISMATCH_AT_LAYER(I##3)                                                                                       \
    XCNN_MISMATCH_AT_LAYER(I##4)                                                                                       \
    XCNN_MISMATCH_AT_LAYER(I##5) XCNN_MISMATCH_AT_LAYER(I##6) XCNN_MISMATCH_AT_LAYER(I##7) XCNN_MISMATCH_AT_LAYER(I##8)
XCNN_MISMATCH_AT_LAYER(1)
XCNN_MISMATCH_AT_LAYER(2)
XCNN_MISMATCH_AT_LAYER(3)
XCNN_MISMATCH_AT_LAYER(4)
XCNN_MISMATCH_AT_LAYER(5)
XCNN_MISMATCH_AT_LAYER(6)
XCNN_MISMATCH_AT_LAYER(7)
XCNN_MISMATCH_AT_LAYER(8)
XCNN_MISMATCH_AT_LAYER(9)
XCNN_MISMATCH_AT_LAYER(10)
XCNN_MISMATCH_AT_LAYER(11)
XCNN_MISMATCH_AT_LAYER(12)
XCNN_MISMATCH_AT_LAYER(13)
XCNN_MISMATCH_AT_LAYER(14)
XCNN_MISMATCH_AT_LAYER(15)
XCNN_MISMATCH_AT_LAYER(16)
XCNN_MISMATCH_AT_LAYER(17)
XCNN_MISMATCH_AT_LAYER(18)
XCNN_MISMATCH_AT_LAYER(19)
XCNN_MISMATCH_AT_LAYERS8(2)
XCNN_MISMATCH_AT_LAYER(20)
XCNN_MISMATCH_AT_LAYER(29)
XCNN_MISMATCH_AT_LAYERS8(3)
XCNN_MISMATCH_AT_LAYER(30)
XCNN_MISMATCH_AT_LAYER(39)
XCNN_MISMATCH_AT_LAYERS8(4)
XCNN_MISMATCH_AT_LAYER(40)
XCNN_MISMATCH_AT_LAYER(49)
XCNN_MISMATCH_AT_LAYERS8(5)
XCNN_MISMATCH_AT_LAYER(50)
XCNN_MISMATCH_AT_LAYER(59)
XCNN_MISMATCH_AT_LAYER(60)
XCNN_MISMATCH_AT_LAYER(61)
XCNN_MISMATCH_AT_LAYER(62)
XCNN_MISMATCH_AT_LAYER(63)
XCNN_MISMATCH_AT_LAYER(64)
#undef XCNN_MISMATCH_AT_LAYERS8
#undef XCNN_MISMATCH_AT_LAYER

template <int Produced, int Expected, class D = void>
struct mismatched_ranks
{
    static_assert(always_false<D>::value, "xcnn::Sequential: a layer expects a tensor of another rank than the layer "
                                          "before it produces (ranks in mismatched_ranks<produced, expected>)");
};
/// The message for rank P produced, rank E expected, with a hint (internal; undefined again below).
#define XCNN_MISMATCHED_RANKS(P, E, HINT)                                                                              \
    template <class D>                                                                                                 \
    struct mismatched_ranks<P, E, D>                                                                                   \
    {                                                                                                                  \
        static_assert(always_false<D>::value,                                                                          \
                      "xcnn::Sequential: the layer expects a rank-" #E " input but the layer before it produces "      \
                      "rank " #P HINT);                                                                                \
    };
XCNN_MISMATCHED_RANKS(4, 2, ": a Dense after a convolution or pooling layer needs a Flatten between them")
XCNN_MISMATCHED_RANKS(2, 4,
                      ": a convolution or pooling layer takes (N, C, H, W) and cannot follow Flatten or Dense; "
                      "reorder the layers")
XCNN_MISMATCHED_RANKS(1, 2, "")
XCNN_MISMATCHED_RANKS(1, 3, "")
XCNN_MISMATCHED_RANKS(1, 4, "")
XCNN_MISMATCHED_RANKS(2, 1, "")
XCNN_MISMATCHED_RANKS(2, 3, "")
XCNN_MISMATCHED_RANKS(3, 1, "")
XCNN_MISMATCHED_RANKS(3, 2, "")
XCNN_MISMATCHED_RANKS(3, 4, "")
XCNN_MISMATCHED_RANKS(4, 1, "")
XCNN_MISMATCHED_RANKS(4, 3, "")
#undef XCNN_MISMATCHED_RANKS

/// Checks the ranks between layer `Layer` and the one before it; on a mismatch, instantiates
/// the two messages.
template <std::size_t Layer, int Produced, int Expected>
constexpr bool check_neighbour_ranks()
{
    constexpr bool match = Produced == any_rank || Expected == any_rank || Produced == Expected;
    if constexpr (!match)
    {
        (void)sizeof(mismatch_at_layer<false, Layer>);
        (void)sizeof(mismatched_ranks<Produced, Expected>);
    }
    return true;
}

// ---- Fusion: what neighbours declare they can do as one step. ------------------------------------

/// An element-wise activation layer declares its functor as `activation_op` (layers/activation.hpp).
template <class L, class = void>
struct is_activation : std::false_type
{
};
template <class L>
struct is_activation<L, std::void_t<typename L::activation_op>> : std::true_type
{
};

/// Whether layer L applies a following activation of functor Op in its own output pass
/// (`forward_activated`, as `Dense` and `Conv2D` do).
template <class L, class Op, class = void>
struct applies_activation : std::false_type
{
};
template <class L, class Op>
struct applies_activation<L, Op,
                          std::void_t<decltype(std::declval<L&>().forward_activated(
                              std::declval<const typename L::input_type&>(), true, std::declval<const Op&>()))>>
    : std::true_type
{
};

/// Whether layer L declares that its output is its (N, C, H, W) input read as rows (`Flatten`).
template <class L, class = void>
struct reshapes_to_rows : std::false_type
{
};
template <class L>
struct reshapes_to_rows<L, std::enable_if_t<L::reshapes_to_rows>> : std::true_type
{
};

/// Whether layer L reads an (N, C, H, W) input in place as rows (`forward_flattened`, as `Dense`).
template <class L, class = void>
struct reads_rows : std::false_type
{
};
template <class L>
struct reads_rows<L, std::void_t<decltype(std::declval<L&>().forward_flattened(
                         std::declval<const xt::xtensor<typename L::value_type, 4>&>(), true))>> : std::true_type
{
};

/// Whether layer L can skip its input gradient (`backward_parameters(dy)`).
template <class L, class G, class = void>
struct has_backward_parameters : std::false_type
{
};
template <class L, class G>
struct has_backward_parameters<L, G,
                               std::void_t<decltype(std::declval<L&>().backward_parameters(std::declval<const G&>()))>>
    : std::true_type
{
};

/// Whether layers `L` and `Next` (at `index` and index + 1) can run as one step of `kind`.
template <class L, class Next>
constexpr step_kind fusion_of(std::size_t index)
{
    if constexpr (is_activation<Next>::value)
    {
        if constexpr (applies_activation<L, typename Next::activation_op>::value)
        {
            return step_kind::with_activation;
        }
    }
    // Not for a first layer, whose input is the caller's tensor, which may change before
    // `backward`.
    if (index > 0 && reshapes_to_rows<L>::value && reads_rows<Next>::value)
    {
        return step_kind::rows_into_next;
    }
    return step_kind::single;
}

} // namespace detail

/// A network that runs its layers in order: `forward` chains their outputs, `backward` runs
/// them in reverse and returns the gradient of the input.
///
/// Built with class template argument deduction:
///
///     xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::ReLU<float>{},
///                          xcnn::Flatten<float>{}, xcnn::Dense<float>(8 * 28 * 28, 10)};
///
/// Neighbours must agree on tensor rank (checked at compile time); sizes are checked at run
/// time and a mismatch throws `shape_error` naming the layer's index, the layer and the shapes.
/// Every `xcnn::error` a layer throws reaches the caller with the same type and its message
/// prefixed by "Sequential layer <index>: ". A Sequential is itself a layer, so it nests.
template <class... Layers>
class Sequential
{
    static_assert(sizeof...(Layers) >= 1, "xcnn::Sequential needs at least one layer");
    using first_layer = std::tuple_element_t<0, std::tuple<Layers...>>;

public:
    /// Scalar type every layer shares (`float` or `double`).
    using value_type = typename first_layer::value_type;
    static_assert((std::is_same<value_type, typename Layers::value_type>::value && ...),
                  "xcnn::Sequential: every layer must have the same scalar type (all float or all double)");

    /// Number of layers.
    static constexpr std::size_t layer_count = sizeof...(Layers);
    /// `input_rank` of each layer (`any_rank` for layers that keep the rank, such as ReLU).
    static constexpr std::array<int, layer_count> layer_input_ranks{Layers::input_rank...};
    /// `output_rank` of each layer.
    static constexpr std::array<int, layer_count> layer_output_ranks{Layers::output_rank...};
    /// Rank the network takes, the first layer's: a Sequential is a layer and can be nested.
    static constexpr int input_rank = layer_input_ranks[0];
    /// Rank the network returns: that of the last layer that fixes a rank.
    static constexpr int output_rank = detail::produced_rank(layer_output_ranks, layer_count - 1);

private:
    template <std::size_t... I>
    static constexpr bool check_ranks(std::index_sequence<I...>)
    {
        return (detail::check_neighbour_ranks<I + 1, detail::produced_rank(layer_output_ranks, I),
                                              layer_input_ranks[I + 1]>() &&
                ... && true);
    }
    // Always true: on a mismatch, the checks' own messages are the errors.
    static_assert(check_ranks(std::make_index_sequence<layer_count - 1>{}));

    template <std::size_t I>
    using layer_type = std::tuple_element_t<I, std::tuple<Layers...>>;

    /// The steps forward and backward both run, planned once from what the layers declare:
    /// left to right, a layer and its neighbour form one step when they can.
    template <std::size_t... I>
    static constexpr std::array<detail::step_kind, layer_count> make_plan(std::index_sequence<I...>)
    {
        return detail::plan_steps(std::array<detail::step_kind, layer_count>{
            detail::fusion_of<layer_type<I>, layer_type<(I + 1 < layer_count ? I + 1 : I)>>(I)...});
    }

public:
    /// How each layer runs: `single`, or the first or second (`absorbed`) layer of a fused step.
    static constexpr std::array<detail::step_kind, layer_count> plan =
        make_plan(std::make_index_sequence<layer_count>{});

public:
    /// The layers, in the order they run. Usually written with class template argument deduction,
    /// `xcnn::Sequential net{layer0, layer1, ...}`.
    explicit Sequential(Layers... layers) : m_layers(std::move(layers)...) {}

    static_assert((detail::check_layer<Layers>::value && ...), "xcnn::Sequential: see the error above");

    /// Layer `I` (0-based).
    template <std::size_t I>
    auto& get() noexcept
    {
        return std::get<I>(m_layers);
    }
    /// Layer `I` (0-based), read-only.
    template <std::size_t I>
    const auto& get() const noexcept
    {
        return std::get<I>(m_layers);
    }
    /// Number of layers, `layer_count`.
    static constexpr std::size_t size() noexcept { return layer_count; }

    /// Runs every layer's `forward` (keeping what `backward` needs); returns the last output,
    /// a reference to a buffer of the last layer that the next call overwrites. An empty batch
    /// (N = 0) gives an empty output.
    /// @throws shape_error for an input a layer cannot take (or any error a layer throws), its
    /// message prefixed by "Sequential layer <index>: "; `backward` is then refused until a
    /// `forward` succeeds.
    template <class X>
    decltype(auto) forward(const X& x)
    {
        m_has_cache = false;
        decltype(auto) y = run_from<true, 0>(x);
        m_has_cache = true;
        return y;
    }

    /// Runs every layer's `predict`: same result as `forward`, no training caches.
    ///
    /// A single sample without the batch axis, a tensor of fixed rank `input_rank - 1` such as one
    /// (C, H, W) image, gives its output without the batch axis, such as the (classes) logits, as
    /// PyTorch does for unbatched inputs: the sample is copied into a batch of one (the layers take
    /// owning tensors, so a copy it is, one sample long) and the output row into a tensor the
    /// network keeps, valid until the next call. Only for fixed ranks: an `xt::xarray` is taken as
    /// a batch, and so is a view (`xt::view(images, i)` has no fixed rank in xtensor 0.24:
    /// evaluate it into an `xt::xtensor` first).
    /// @throws shape_error as `forward` does.
    template <class X>
    decltype(auto) predict(const X& x)
    {
        if constexpr (detail::is_unbatched<X, input_rank>::value)
        {
            return predict_unbatched(x);
        }
        else
        {
            m_has_cache = false;
            return run_from<false, 0>(x);
        }
    }

    /// Runs every layer's `backward` from the last to the first; returns dLoss/dinput and
    /// leaves each layer's parameter gradients overwritten.
    /// @throws error unless the last `forward` or `predict` call was a `forward` that succeeded;
    /// shape_error (prefixed by "Sequential layer <index>: ") for a gradient whose shape is not
    /// that of the last output.
    template <class G>
    decltype(auto) backward(const G& grad_output)
    {
        require_forward();
        return backward_from<true, layer_count - 1>(grad_output);
    }

    /// Like `backward`, but the first layer only computes its parameter gradients, not the
    /// gradient of the network's input, which training never needs (a first convolution with
    /// one input channel would spend most of its backward time on it).
    /// @throws error, shape_error as `backward` does.
    template <class G>
    void backward_parameters(const G& grad_output)
    {
        require_forward();
        backward_from<false, layer_count - 1>(grad_output);
    }

    /// Every (parameter, gradient) pair, named like PyTorch's `state_dict` keys ("0.weight").
    std::vector<parameter<value_type>> parameters()
    {
        std::vector<parameter<value_type>> all;
        collect_parameters(all, std::make_index_sequence<layer_count>{});
        return all;
    }

    /// Every buffer (non-trainable state such as BatchNorm's running mean), named like PyTorch's
    /// `state_dict` keys ("1.running_mean"); optimizers never see them.
    std::vector<buffer<value_type>> buffers()
    {
        std::vector<buffer<value_type>> all;
        collect_buffers(all, std::make_index_sequence<layer_count>{});
        return all;
    }

    /// The generators of the stochastic layers (`Dropout`), named "<index>.<name>" ("3.rng"):
    /// neither parameters nor buffers, so model files and `.npy` exports leave them out, but
    /// checkpoints save and restore them (core/generator.hpp).
    std::vector<generator_handle> generators()
    {
        std::vector<generator_handle> all;
        auto add = [&](std::size_t index, auto& layer)
        {
            if constexpr (detail::has_generators<std::decay_t<decltype(layer)>>::value)
            {
                detail::add_indexed(all, layer.generators(), index, std::string());
            }
        };
        std::apply(
            [&](auto&... layer)
            {
                std::size_t index = 0;
                (add(index++, layer), ...);
            },
            m_layers);
        return all;
    }

    /// Number of trainable scalars of all layers together.
    std::size_t num_parameters() const
    {
        return std::apply([](const auto&... layer) { return (std::size_t(0) + ... + layer.num_parameters()); },
                          m_layers);
    }

    /// Re-draws every layer's parameters, in layer order, from `rng` (and re-seeds the generators
    /// of stochastic layers, which draw from it in their turn).
    void reset_parameters(std::mt19937& rng)
    {
        std::apply([&](auto&... layer) { (layer.reset_parameters(rng), ...); }, m_layers);
    }

    /// Re-draws every layer's parameters from `std::mt19937(seed)`: one seed, one network.
    void reset_parameters(std::mt19937::result_type seed)
    {
        std::mt19937 rng(seed);
        reset_parameters(rng);
    }

    /// Shape of the output for an input of `input_shape`.
    /// @throws shape_error naming the first layer that cannot take its input.
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const
    {
        return detail::chain_output_shape(*this, "Sequential", input_shape);
    }

    /// The kind in a `layer_spec`.
    static constexpr const char* kind = "Sequential";

    /// "Sequential" with each layer's spec as an inner layer, in order: what model files record
    /// so that `load_network` rebuilds the network. Only for networks whose every layer has a
    /// `spec()` (a user's layer without one leaves the network without one too).
    template <bool Describable = (detail::has_spec<Layers>::value && ...)>
    std::enable_if_t<Describable, layer_spec> spec() const
    {
        layer_spec out{kind, {}, {}};
        for_each_layer([&](std::size_t, const auto& layer) { out.children.push_back(layer.spec()); });
        return out;
    }

    /// The network `spec` describes, its layers freshly initialised: each inner layer of the spec
    /// through its type's `from_spec`. Only for networks whose every layer has a `from_spec`.
    /// @throws value_error for another kind, any option, another number of inner layers, or an
    /// inner layer its type refuses (prefixed by "Sequential layer <index>: ").
    template <bool Rebuildable = (detail::has_from_spec<Layers>::value && ...)>
    static std::enable_if_t<Rebuildable, Sequential> from_spec(const layer_spec& spec)
    {
        spec_reader(spec, kind, {}, layer_count, layer_count);
        return from_spec_impl(spec, std::make_index_sequence<layer_count>{});
    }

    /// `Sequential(<name of layer 0>, <name of layer 1>, ...)`.
    std::string name() const { return detail::chain_name(*this, "Sequential"); }

    /// A table of the layers with their output shapes and parameter counts for an input of
    /// `input_shape`, like `torchsummary`/Keras' `summary()`.
    std::string summary(const std::vector<std::size_t>& input_shape) const
    {
        return detail::chain_summary(*this, "Sequential", input_shape);
    }

    /// Calls `f(index, layer)` for each layer in order, the layer as a const reference of its own
    /// type: what exporters (io/onnx.hpp) and `summary` walk the network with.
    template <class F>
    void for_each_layer(F&& f) const
    {
        for_each_layer_impl(f, std::make_index_sequence<layer_count>{});
    }

private:
    template <std::size_t... I>
    static Sequential from_spec_impl(const layer_spec& spec, std::index_sequence<I...>)
    {
        // Braces: the layers are built, and their errors reported, in order.
        return Sequential{guarded<I>([&] { return layer_type<I>::from_spec(spec.children[I]); })...};
    }

    template <class F, std::size_t... I>
    void for_each_layer_impl(F& f, std::index_sequence<I...>) const
    {
        (f(I, std::get<I>(m_layers)), ...);
    }

    template <std::size_t... I>
    void collect_parameters(std::vector<parameter<value_type>>& all, std::index_sequence<I...>)
    {
        (detail::add_indexed(all, std::get<I>(m_layers).parameters(), I, std::get<I>(m_layers).name()), ...);
    }

    template <std::size_t... I>
    void collect_buffers(std::vector<buffer<value_type>>& all, std::index_sequence<I...>)
    {
        auto add = [&](std::size_t index, auto& layer)
        {
            if constexpr (detail::has_buffers<std::decay_t<decltype(layer)>, value_type>::value)
            {
                detail::add_indexed(all, layer.buffers(), index, layer.name());
            }
        };
        (add(I, std::get<I>(m_layers)), ...);
    }

    /// After a `forward` that threw, the layers before the failing one hold caches of the new
    /// input and the others of the old one: a backward through that mix must not run.
    void require_forward() const
    {
        if (!m_has_cache)
        {
            throw error(detail::concat("Sequential of ", layer_count,
                                       " layers: backward needs a forward (not predict) that succeeded first"));
        }
    }

    /// Runs `call` (a layer's forward/predict/backward) and names the layer in any xcnn error,
    /// keeping its type.
    template <std::size_t I, class F>
    static decltype(auto) guarded(F&& call)
    {
        try
        {
            return call();
        }
        catch (const error&)
        {
            detail::rethrow_with_prefix(detail::concat("Sequential layer ", I, ": "));
        }
    }

    /// Runs layer I and the ones after it, step by step as `plan` says: `forward` when
    /// training, `predict` otherwise.
    template <bool Training, std::size_t I, class X>
    decltype(auto) run_from(const X& x)
    {
        if constexpr (I == layer_count)
        {
            return (x);
        }
        else if constexpr (plan[I] == detail::step_kind::with_activation)
        {
            auto& layer = std::get<I>(m_layers);
            const auto& op = std::get<I + 1>(m_layers).op();
            const auto& y = *guarded<I>([&] { return &layer.forward_activated(x, Training, op); });
            return run_from<Training, I + 2>(y);
        }
        else if constexpr (plan[I] == detail::step_kind::rows_into_next)
        {
            auto& next = std::get<I + 1>(m_layers);
            const auto& y = *guarded<I + 1>([&] { return &next.forward_flattened(x, Training); });
            return run_from<Training, I + 2>(y);
        }
        else
        {
            auto& layer = std::get<I>(m_layers);
            const auto& y = *guarded<I>(
                [&]
                {
                    if constexpr (Training)
                    {
                        return &layer.forward(x);
                    }
                    else
                    {
                        return &layer.predict(x);
                    }
                });
            return run_from<Training, I + 1>(y);
        }
    }

    /// Runs the backward pass of the step that ends at layer I and of the ones before it, and
    /// returns dX of the first layer, or, without InputGrad, lets the first step compute only its
    /// parameter gradients when it can.
    template <bool InputGrad, std::size_t I, class G>
    decltype(auto) backward_from(const G& grad)
    {
        constexpr bool fused = plan[I] == detail::step_kind::absorbed;
        constexpr std::size_t first = fused ? I - 1 : I; // the step's first layer
        constexpr bool parameters_only = first == 0 && !InputGrad;
        auto& layer = std::get<first>(m_layers);
        if constexpr (fused && plan[first] == detail::step_kind::with_activation)
        {
            const auto& op = std::get<I>(m_layers).op();
            if constexpr (parameters_only)
            {
                guarded<0>([&] { return (layer.backward_parameters_activated(grad, op), 0); });
            }
            else
            {
                const auto& dx = *guarded<first>([&] { return &layer.backward_activated(grad, op); });
                return backward_rest<InputGrad, first>(dx);
            }
        }
        else if constexpr (fused)
        {
            // rows_into_next: the second layer reads the first one's input, and returns its dX.
            auto& next = std::get<I>(m_layers);
            const auto& dx = *guarded<I>([&] { return &next.backward_flattened(grad); });
            return backward_rest<InputGrad, first>(dx);
        }
        else if constexpr (parameters_only && detail::has_backward_parameters<std::decay_t<decltype(layer)>, G>::value)
        {
            guarded<0>([&] { return (layer.backward_parameters(grad), 0); });
        }
        else
        {
            const auto& dx = *guarded<I>([&] { return &layer.backward(grad); });
            return backward_rest<InputGrad, first>(dx);
        }
    }

    /// Continues `backward_from` before the step that starts at layer `First`, or returns `dx`
    /// when it was the first.
    template <bool InputGrad, std::size_t First, class D>
    decltype(auto) backward_rest(const D& dx)
    {
        if constexpr (First > 0)
        {
            return backward_from<InputGrad, First - 1>(dx);
        }
        else if constexpr (InputGrad)
        {
            return (dx);
        }
    }

    /// `predict` of one sample without its batch axis: through a batch of one.
    template <class X>
    const auto& predict_unbatched(const X& x)
    {
        static_assert(output_rank >= 2, "xcnn::Sequential: predict of a single sample needs a network whose output "
                                        "has a batch axis and at least one more (such as logits (N, classes))");
        return m_unbatched.run(x, [&](const auto& batch) -> decltype(auto) { return predict(batch); });
    }

    std::tuple<Layers...> m_layers;
    bool m_has_cache = false;
    detail::unbatched_buffers<value_type, input_rank, output_rank> m_unbatched;
};

/// Deduction guide: `Sequential net{Conv2D<float>(1, 8, 3), ReLU<float>{}}` is a
/// `Sequential<Conv2D<float>, ReLU<float>>`.
template <class... Layers>
Sequential(Layers...) -> Sequential<Layers...>;

} // namespace xcnn

#endif // XCNN_NETWORK_SEQUENTIAL_HPP
