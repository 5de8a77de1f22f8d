/// @file
/// `xcnn::Sequential`: layers chained at compile time, forward and backward.
#ifndef XCNN_NETWORK_SEQUENTIAL_HPP
#define XCNN_NETWORK_SEQUENTIAL_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <iomanip>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../layers/flatten.hpp"
#include "../layers/layer.hpp"
#include "../layers/relu.hpp"
#include "parameter.hpp"

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

/// Whether layer L reads a Flatten's input in place (`forward_flattened`, as `Dense` does).
template <class L, class = void>
struct reads_flattened : std::false_type
{
};
template <class L>
struct reads_flattened<L, std::void_t<decltype(std::declval<L&>().forward_flattened(
                              std::declval<const xt::xtensor<typename L::value_type, 4>&>(), true))>> : std::true_type
{
};

/// Whether layer L applies a following ReLU itself (`forward_relu`, as `Conv2D` does).
template <class L, class = void>
struct applies_relu : std::false_type
{
};
template <class L>
struct applies_relu<
    L, std::void_t<decltype(std::declval<L&>().forward_relu(std::declval<const typename L::input_type&>(), true))>>
    : std::true_type
{
};

/// Instantiated for every pair of neighbours; the template arguments in the compiler's
/// message say which layer and which ranks.
template <std::size_t LayerIndex, int ProducedRank, int ExpectedRank>
struct check_neighbour_ranks
{
    static_assert(ProducedRank == any_rank || ExpectedRank == any_rank || ProducedRank == ExpectedRank,
                  "xcnn::Sequential: layer LayerIndex expects a tensor of rank ExpectedRank but the layer "
                  "before it produces rank ProducedRank (e.g. a Dense right after a Conv2D needs a Flatten "
                  "between them)");
    static constexpr bool value = true;
};

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
                                              layer_input_ranks[I + 1]>::value &&
                ... && true);
    }
    static_assert(check_ranks(std::make_index_sequence<layer_count - 1>{}), "xcnn::Sequential: rank mismatch");

public:
    /// The layers, in the order they run. Usually written with class template argument deduction,
    /// `xcnn::Sequential net{layer0, layer1, ...}`.
    explicit Sequential(Layers... layers) : m_layers(std::move(layers)...) {}

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
    /// @throws shape_error as `forward` does.
    template <class X>
    decltype(auto) predict(const X& x)
    {
        m_has_cache = false;
        return run_from<false, 0>(x);
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

    /// Number of trainable scalars of all layers together.
    std::size_t num_parameters() const
    {
        return std::apply([](const auto&... layer) { return (std::size_t(0) + ... + layer.num_parameters()); },
                          m_layers);
    }

    /// Re-draws every layer's parameters, in layer order, from `rng`.
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
        std::vector<std::size_t> shape = input_shape;
        for_each_layer(
            [&](std::size_t index, const auto& layer)
            {
                try
                {
                    shape = layer.output_shape(shape);
                }
                catch (const shape_error& e)
                {
                    throw shape_error(detail::concat("Sequential layer ", index, ": ", e.what()));
                }
            });
        return shape;
    }

    /// `Sequential(<name of layer 0>, <name of layer 1>, ...)`.
    std::string name() const
    {
        std::string out = "Sequential(";
        for_each_layer([&](std::size_t index, const auto& layer) { out += (index ? ", " : "") + layer.name(); });
        return out + ")";
    }

    /// A table of the layers with their output shapes and parameter counts for an input of
    /// `input_shape`, like `torchsummary`/Keras' `summary()`.
    std::string summary(const std::vector<std::size_t>& input_shape) const
    {
        struct row
        {
            std::string index, layer, shape, params;
        };
        std::vector<row> rows{{"", "Input", detail::shape_to_string(input_shape), ""}};
        std::vector<std::size_t> shape = input_shape;
        for_each_layer(
            [&](std::size_t index, const auto& layer)
            {
                try
                {
                    shape = layer.output_shape(shape);
                }
                catch (const shape_error& e)
                {
                    throw shape_error(detail::concat("Sequential layer ", index, ": ", e.what()));
                }
                rows.push_back({std::to_string(index), layer.name(), detail::shape_to_string(shape),
                                std::to_string(layer.num_parameters())});
            });
        row widths{"#", "Layer", "Output shape", "Params"};
        std::size_t w_index = widths.index.size(), w_layer = widths.layer.size(), w_shape = widths.shape.size(),
                    w_params = widths.params.size();
        for (const auto& r : rows)
        {
            w_index = std::max(w_index, r.index.size());
            w_layer = std::max(w_layer, r.layer.size());
            w_shape = std::max(w_shape, r.shape.size());
            w_params = std::max(w_params, r.params.size());
        }
        std::ostringstream out;
        auto print = [&](const row& r)
        {
            out << std::left << std::setw(int(w_index)) << r.index << "  " << std::setw(int(w_layer)) << r.layer << "  "
                << std::setw(int(w_shape)) << r.shape << "  " << std::right << std::setw(int(w_params)) << r.params
                << '\n';
        };
        const std::string rule(w_index + w_layer + w_shape + w_params + 6, '-');
        out << rule << '\n';
        print(widths);
        out << rule << '\n';
        for (const auto& r : rows)
        {
            print(r);
        }
        out << rule << '\n' << "Total parameters: " << num_parameters() << '\n';
        return out.str();
    }

private:
    template <class F>
    void for_each_layer(F&& f) const
    {
        for_each_layer_impl(f, std::make_index_sequence<layer_count>{});
    }
    template <class F, std::size_t... I>
    void for_each_layer_impl(F& f, std::index_sequence<I...>) const
    {
        (f(I, std::get<I>(m_layers)), ...);
    }

    template <std::size_t... I>
    void collect_parameters(std::vector<parameter<value_type>>& all, std::index_sequence<I...>)
    {
        auto add = [&](std::size_t index, auto& layer)
        {
            for (auto& p : layer.parameters())
            {
                p.add_prefix(std::to_string(index) + ".");
                if (p.layer().empty()) // a nested Sequential has named its own layers already
                {
                    p.set_layer(layer.name());
                }
                all.push_back(std::move(p));
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

    template <std::size_t I>
    using layer_type = std::tuple_element_t<I, std::tuple<Layers...>>;

    /// Whether layers I (a Flatten) and I + 1 run as one step: the next layer reads the Flatten's
    /// input in place (no copy in either direction). Not for a first layer, whose input is the
    /// caller's tensor, which may change before `backward`.
    template <std::size_t I>
    static constexpr bool flattens_in_place()
    {
        if constexpr (I == 0 || I + 1 >= layer_count)
        {
            return false;
        }
        else
        {
            return std::is_same<layer_type<I>, Flatten<value_type>>::value &&
                   detail::reads_flattened<layer_type<I + 1>>::value;
        }
    }

    /// Whether layers I and I + 1 (a ReLU) run as one step: layer I applies the ReLU in the copy
    /// that writes its output and masks the gradient in the copies its backward makes, which
    /// saves the ReLU's two passes over the activations. Same results, bit for bit.
    template <std::size_t I>
    static constexpr bool fuses_relu()
    {
        if constexpr (I + 1 >= layer_count)
        {
            return false;
        }
        else
        {
            return std::is_same<layer_type<I + 1>, ReLU<value_type>>::value &&
                   detail::applies_relu<layer_type<I>>::value;
        }
    }

    /// Runs layer I and the ones after it: `forward` when training, `predict` otherwise.
    template <bool Training, std::size_t I, class X>
    decltype(auto) run_from(const X& x)
    {
        if constexpr (I == layer_count)
        {
            return (x);
        }
        else if constexpr (fuses_relu<I>())
        {
            auto& layer = std::get<I>(m_layers);
            const auto& y = *guarded<I>([&] { return &layer.forward_relu(x, Training); });
            return run_from<Training, I + 2>(y);
        }
        else if constexpr (flattens_in_place<I>())
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

    /// Runs `backward` of layer I and the ones before it and returns dX of the first layer, or,
    /// without InputGrad, lets the first layer compute only its parameter gradients when it can.
    template <bool InputGrad, std::size_t I, class G>
    decltype(auto) backward_from(const G& grad)
    {
        auto& layer = std::get<I>(m_layers);
        if constexpr (I > 0 && fuses_relu<(I > 0 ? I - 1 : 0)>())
        {
            auto& fused = std::get<I - 1>(m_layers);
            if constexpr (I == 1 && !InputGrad)
            {
                guarded<0>([&] { return (fused.backward_parameters_relu(grad), 0); });
            }
            else
            {
                const auto& dx = *guarded<I - 1>([&] { return &fused.backward_relu(grad); });
                if constexpr (I > 1)
                {
                    return backward_from<InputGrad, I - 2>(dx);
                }
                else
                {
                    return (dx);
                }
            }
        }
        else if constexpr (I > 0 && flattens_in_place<(I > 0 ? I - 1 : 0)>())
        {
            const auto& dx = *guarded<I>([&] { return &layer.backward_flattened(grad); });
            return backward_from<InputGrad, I - 2>(dx);
        }
        else if constexpr (I == 0 && !InputGrad &&
                           detail::has_backward_parameters<std::decay_t<decltype(layer)>, G>::value)
        {
            guarded<0>([&] { return (layer.backward_parameters(grad), 0); });
        }
        else
        {
            const auto& dx = *guarded<I>([&] { return &layer.backward(grad); });
            if constexpr (I > 0)
            {
                return backward_from<InputGrad, I - 1>(dx);
            }
            else if constexpr (InputGrad)
            {
                return (dx);
            }
        }
    }

    std::tuple<Layers...> m_layers;
    bool m_has_cache = false;
};

/// Deduction guide: `Sequential net{Conv2D<float>(1, 8, 3), ReLU<float>{}}` is a
/// `Sequential<Conv2D<float>, ReLU<float>>`.
template <class... Layers>
Sequential(Layers...) -> Sequential<Layers...>;

} // namespace xcnn

#endif // XCNN_NETWORK_SEQUENTIAL_HPP
