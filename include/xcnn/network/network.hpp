/// @file
/// `xcnn::Network`: layers chained at run time — a `Sequential` whose layers a program chooses
/// while it runs (read from a model file or an ONNX graph), behind one type.
#ifndef XCNN_NETWORK_NETWORK_HPP
#define XCNN_NETWORK_NETWORK_HPP

#include <cstddef>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include "../core/error.hpp"
#include "../core/generator.hpp"
#include "../core/layer_spec.hpp"
#include "../core/parameter.hpp"
#include "../core/xtensor_shim.hpp"
#include "../layers/gelu.hpp"
#include "../layers/layer.hpp"
#include "../layers/leaky_relu.hpp"
#include "../layers/relu.hpp"
#include "../layers/sigmoid.hpp"
#include "../layers/tanh.hpp"
#include "chain.hpp"
#include "sequential.hpp"

namespace xcnn
{

template <class T, int InputRank, int OutputRank>
class Network;

namespace detail
{

/// The largest tensor rank a `Network` passes between its layers.
inline constexpr int network_max_rank = 4;

/// A tensor of rank 1 to 4 passed between the layers of a `Network`: its rank and its address.
/// The layers own the tensors; this only points at them.
template <class T>
struct ranked_ref
{
    /// The tensor's rank, 0 when it points at nothing.
    int rank = 0;
    /// The `xt::xtensor<T, rank>` it points at.
    const void* address = nullptr;

    /// A reference to `x`.
    template <std::size_t N>
    static ranked_ref of(const xt::xtensor<T, N>& x) noexcept
    {
        return {static_cast<int>(N), &x};
    }

    /// The tensor as an `xt::xtensor<T, N>`.
    /// @throws shape_error if it has another rank (a layer produced a rank its neighbour does not
    /// take, which `Network::push_back` checks for layers of fixed rank).
    template <std::size_t N>
    const xt::xtensor<T, N>& as() const
    {
        if (rank != static_cast<int>(N))
        {
            throw shape_error(concat("expected a tensor of rank ", N, ", got rank ", rank));
        }
        return *static_cast<const xt::xtensor<T, N>*>(address);
    }
};

/// The activation functors a `Network` can hand to the layer before them (a `Conv2D`, a
/// `Dense`), as a `Sequential` does with any functor: a run-time network only knows the ones it
/// names here. Others run as layers of their own, with the same results.
template <class T>
using known_activation = std::variant<relu_op, leaky_relu_op<T>, sigmoid_op, tanh_op, gelu_op>;

/// The known functor of an activation layer `L`, or nothing.
template <class T, class L>
std::optional<known_activation<T>> known_activation_of(const L& layer)
{
    if constexpr (is_activation<L>::value)
    {
        using op = typename L::activation_op;
        if constexpr (std::is_constructible<known_activation<T>, op>::value)
        {
            return known_activation<T>(layer.op());
        }
    }
    (void)layer;
    return std::nullopt;
}

/// A layer of a `Network`, its type erased: what a `Network` calls on it.
template <class T>
class network_node
{
public:
    virtual ~network_node() = default;
    /// A copy of the layer, state included.
    virtual std::unique_ptr<network_node> clone() const = 0;
    /// The layer's `name()`.
    virtual std::string name() const = 0;
    /// The layer's `spec()`.
    /// @throws value_error for a layer without one.
    virtual layer_spec spec() const = 0;
    /// The `std::type_info` of the layer.
    virtual const std::type_info& type() const noexcept = 0;
    /// The layer's `input_rank` (`any_rank` for any).
    virtual int input_rank() const noexcept = 0;
    /// The layer's `output_rank` (`any_rank`: the input's).
    virtual int output_rank() const noexcept = 0;
    /// The layer's `output_shape`.
    virtual std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const = 0;
    /// The layer's `num_parameters()`.
    virtual std::size_t num_parameters() const = 0;
    /// The layer's `parameters()`.
    virtual std::vector<parameter<T>> parameters() = 0;
    /// The layer's `buffers()`, none if it has none.
    virtual std::vector<buffer<T>> buffers() = 0;
    /// The layer's `generators()`, none if it has none.
    virtual std::vector<generator_handle> generators() = 0;
    /// The layer's `reset_parameters(rng)`.
    virtual void reset_parameters(std::mt19937& rng) = 0;
    /// The layer's `forward(x)` (`training`) or `predict(x)`.
    virtual ranked_ref<T> forward(ranked_ref<T> x, bool training) = 0;
    /// The layer's `backward(dy)`.
    virtual ranked_ref<T> backward(ranked_ref<T> dy) = 0;
    /// The layer's `backward_parameters(dy)`; false, having done nothing, for a layer without one.
    virtual bool backward_parameters(ranked_ref<T> dy) = 0;

    /// The functor of an activation layer a layer before it can apply, or nullptr.
    virtual const known_activation<T>* activation() const noexcept = 0;
    /// Whether the layer applies `op` in its own output pass (`forward_activated`).
    virtual bool applies(const known_activation<T>& op) const noexcept = 0;
    /// `forward_activated(x, training, op)`.
    virtual ranked_ref<T> forward_activated(ranked_ref<T> x, bool training, const known_activation<T>& op) = 0;
    /// `backward_activated(dy, op)`.
    virtual ranked_ref<T> backward_activated(ranked_ref<T> dy, const known_activation<T>& op) = 0;
    /// `backward_parameters_activated(dy, op)`.
    virtual void backward_parameters_activated(ranked_ref<T> dy, const known_activation<T>& op) = 0;
    /// Whether the layer's output is its (N, C, H, W) input read as rows (`Flatten`).
    virtual bool reshapes_to_rows() const noexcept = 0;
    /// Whether the layer reads an (N, C, H, W) input in place as rows (`Dense`).
    virtual bool reads_rows() const noexcept = 0;
    /// `forward_flattened(x, training)`.
    virtual ranked_ref<T> forward_flattened(ranked_ref<T> x, bool training) = 0;
    /// `backward_flattened(dy)`.
    virtual ranked_ref<T> backward_flattened(ranked_ref<T> dy) = 0;
    /// Whether the layer is a per-channel map at inference (`BatchNorm2D`).
    virtual bool is_channel_affine() const noexcept = 0;
    /// Its number of channels, for a per-channel map.
    virtual std::size_t affine_features() const = 0;
    /// Its `inference_affine(scale, shift)`, for a per-channel map.
    virtual void inference_affine(T* scale, T* shift) const = 0;
    /// Whether the layer folds a following per-channel map into its weights (`Conv2D`).
    virtual bool folds_affine() const noexcept = 0;
    /// `predict_affine(x, affine[, op])`: the layer, the map of `affine` and, unless `op` is
    /// null, the activation `op`, as one step at inference.
    virtual ranked_ref<T> predict_affine(ranked_ref<T> x, const network_node& affine,
                                         const known_activation<T>* op) = 0;

    /// The layer if it is an `L`, else nullptr.
    template <class L>
    L* as() noexcept
    {
        return type() == typeid(L) ? static_cast<L*>(address()) : nullptr;
    }
    /// The layer if it is an `L`, else nullptr.
    template <class L>
    const L* as() const noexcept
    {
        return type() == typeid(L) ? static_cast<const L*>(const_cast<network_node*>(this)->address()) : nullptr;
    }

protected:
    /// The layer's address.
    virtual void* address() noexcept = 0;
};

/// A `network_node` that is a per-channel map, as `predict_affine` takes one.
template <class T>
struct node_affine
{
    /// The scalar type.
    using value_type = T;
    /// The node.
    const network_node<T>* node;
    /// Its number of channels.
    std::size_t num_features() const { return node->affine_features(); }
    /// Its scale and shift per channel.
    void inference_affine(T* scale, T* shift) const { node->inference_affine(scale, shift); }
    /// Its name.
    std::string name() const { return node->name(); }
};

/// The `network_node` of a layer of type `L`.
template <class T, class L>
class network_model final : public network_node<T>
{
    static constexpr int in_rank = L::input_rank;
    static constexpr int out_rank = L::output_rank;
    // The ranks as tensor ranks (4 for a layer of any rank, whose fused passes are never called).
    static constexpr std::size_t fixed_in = in_rank == any_rank ? 4 : static_cast<std::size_t>(in_rank);
    static constexpr std::size_t fixed_out = out_rank == any_rank ? 4 : static_cast<std::size_t>(out_rank);
    using output_of_fixed = xt::xtensor<T, static_cast<std::size_t>(out_rank == any_rank ? 4 : out_rank)>;
    using input_of_fixed = xt::xtensor<T, static_cast<std::size_t>(in_rank == any_rank ? 4 : in_rank)>;

public:
    explicit network_model(L layer) : m_layer(std::move(layer)), m_activation(known_activation_of<T>(m_layer)) {}

    std::unique_ptr<network_node<T>> clone() const override
    {
        if constexpr (std::is_copy_constructible<L>::value)
        {
            return std::make_unique<network_model>(*this);
        }
        else
        {
            throw value_error(concat("Network: cannot copy layer ", m_layer.name(), ", whose type is not copyable"));
        }
    }
    std::string name() const override { return m_layer.name(); }
    layer_spec spec() const override
    {
        if constexpr (has_spec<L>::value)
        {
            return m_layer.spec();
        }
        else
        {
            throw value_error(concat("layer ", m_layer.name(),
                                     " has no spec() saying how to build it again (docs/adding-a-layer.md)"));
        }
    }
    const std::type_info& type() const noexcept override { return typeid(L); }
    int input_rank() const noexcept override { return in_rank; }
    int output_rank() const noexcept override { return out_rank; }
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const override
    {
        return m_layer.output_shape(input_shape);
    }
    std::size_t num_parameters() const override { return m_layer.num_parameters(); }
    std::vector<parameter<T>> parameters() override { return m_layer.parameters(); }
    std::vector<buffer<T>> buffers() override
    {
        if constexpr (has_buffers<L, T>::value)
        {
            return m_layer.buffers();
        }
        return {};
    }
    std::vector<generator_handle> generators() override
    {
        if constexpr (has_generators<L>::value)
        {
            return m_layer.generators();
        }
        return {};
    }
    void reset_parameters(std::mt19937& rng) override { m_layer.reset_parameters(rng); }

    ranked_ref<T> forward(ranked_ref<T> x, bool training) override
    {
        return on_input(x, [&](const auto& t)
                        { return ranked_ref<T>::of(training ? m_layer.forward(t) : m_layer.predict(t)); });
    }
    ranked_ref<T> backward(ranked_ref<T> dy) override
    {
        return on_output(dy, [&](const auto& g) { return ranked_ref<T>::of(m_layer.backward(g)); });
    }
    bool backward_parameters(ranked_ref<T> dy) override
    {
        if constexpr (out_rank != any_rank && has_backward_parameters<L, output_of_fixed>::value)
        {
            m_layer.backward_parameters(dy.template as<out_rank>());
            return true;
        }
        (void)dy;
        return false;
    }

    const known_activation<T>* activation() const noexcept override { return m_activation ? &*m_activation : nullptr; }
    bool applies(const known_activation<T>& op) const noexcept override
    {
        return std::visit([](const auto& o) { return applies_activation<L, std::decay_t<decltype(o)>>::value; }, op);
    }
    ranked_ref<T> forward_activated(ranked_ref<T> x, bool training, const known_activation<T>& op) override
    {
        return std::visit([&](const auto& o) { return this->forward_activated_by(x, training, o); }, op);
    }
    ranked_ref<T> backward_activated(ranked_ref<T> dy, const known_activation<T>& op) override
    {
        return std::visit([&](const auto& o) { return this->backward_activated_by(dy, o); }, op);
    }
    void backward_parameters_activated(ranked_ref<T> dy, const known_activation<T>& op) override
    {
        std::visit([&](const auto& o) { this->backward_parameters_activated_by(dy, o); }, op);
    }
    bool reshapes_to_rows() const noexcept override { return detail::reshapes_to_rows<L>::value; }
    bool reads_rows() const noexcept override { return detail::reads_rows<L>::value; }
    ranked_ref<T> forward_flattened(ranked_ref<T> x, bool training) override
    {
        if constexpr (detail::reads_rows<L>::value)
        {
            return ranked_ref<T>::of(m_layer.forward_flattened(x.template as<4>(), training));
        }
        else
        {
            (void)x;
            (void)training;
            throw value_error(concat("Network: ", m_layer.name(), " does not read rows"));
        }
    }
    ranked_ref<T> backward_flattened(ranked_ref<T> dy) override
    {
        if constexpr (detail::reads_rows<L>::value)
        {
            return ranked_ref<T>::of(m_layer.backward_flattened(dy.template as<out_rank>()));
        }
        else
        {
            (void)dy;
            throw value_error(concat("Network: ", m_layer.name(), " does not read rows"));
        }
    }

    bool is_channel_affine() const noexcept override { return detail::is_channel_affine<L>::value; }
    std::size_t affine_features() const override
    {
        if constexpr (detail::is_channel_affine<L>::value)
        {
            return m_layer.num_features();
        }
        throw value_error(concat("Network: ", m_layer.name(), " is no per-channel map"));
    }
    void inference_affine(T* scale, T* shift) const override
    {
        if constexpr (detail::is_channel_affine<L>::value)
        {
            m_layer.inference_affine(scale, shift);
        }
        else
        {
            (void)scale;
            (void)shift;
            throw value_error(concat("Network: ", m_layer.name(), " is no per-channel map"));
        }
    }
    bool folds_affine() const noexcept override { return detail::folds_affine<L, node_affine<T>>::value; }
    ranked_ref<T> predict_affine(ranked_ref<T> x, const network_node<T>& affine, const known_activation<T>* op) override
    {
        const node_affine<T> map{&affine};
        if (op == nullptr)
        {
            return predict_affine_by(x, map, no_activation{});
        }
        return std::visit([&](const auto& o) { return this->predict_affine_by(x, map, o); }, *op);
    }

private:
    /// What `predict_affine` runs without an activation.
    struct no_activation
    {
    };

    // The passes for one functor `Op`: member templates, so that the branch a layer cannot take
    // is never instantiated (in a generic lambda of a member of a concrete type, clang checks it).
    template <class Op>
    ranked_ref<T> forward_activated_by(ranked_ref<T> x, bool training, const Op& op)
    {
        if constexpr (applies_activation<L, Op>::value)
        {
            return ranked_ref<T>::of(m_layer.forward_activated(x.template as<fixed_in>(), training, op));
        }
        else
        {
            (void)x;
            (void)training;
            throw value_error(concat("Network: ", m_layer.name(), " cannot apply ", op.name()));
        }
    }
    template <class Op>
    ranked_ref<T> backward_activated_by(ranked_ref<T> dy, const Op& op)
    {
        if constexpr (applies_activation<L, Op>::value)
        {
            return ranked_ref<T>::of(m_layer.backward_activated(dy.template as<fixed_out>(), op));
        }
        else
        {
            (void)dy;
            throw value_error(concat("Network: ", m_layer.name(), " cannot apply ", op.name()));
        }
    }
    template <class Op>
    void backward_parameters_activated_by(ranked_ref<T> dy, const Op& op)
    {
        if constexpr (applies_activation<L, Op>::value)
        {
            m_layer.backward_parameters_activated(dy.template as<fixed_out>(), op);
        }
        else
        {
            (void)dy;
            throw value_error(concat("Network: ", m_layer.name(), " cannot apply ", op.name()));
        }
    }
    template <class Op>
    ranked_ref<T> predict_affine_by(ranked_ref<T> x, const node_affine<T>& map, const Op& op)
    {
        constexpr bool plain = std::is_same<Op, no_activation>::value;
        if constexpr (!detail::folds_affine<L, node_affine<T>>::value)
        {
            (void)x;
            (void)map;
            (void)op;
            throw value_error(concat("Network: ", m_layer.name(), " folds no per-channel map"));
        }
        else if constexpr (plain)
        {
            (void)op;
            return ranked_ref<T>::of(m_layer.predict_affine(x.template as<fixed_in>(), map));
        }
        else if constexpr (applies_activation<L, Op>::value)
        {
            return ranked_ref<T>::of(m_layer.predict_affine(x.template as<fixed_in>(), map, op));
        }
        else
        {
            (void)x;
            (void)map;
            throw value_error(concat("Network: ", m_layer.name(), " cannot apply ", op.name()));
        }
    }

public:
private:
    void* address() noexcept override { return &m_layer; }

    /// `f(x as the layer's input type)`; for a layer of any rank, of x's own rank.
    template <class F>
    static ranked_ref<T> on_rank(ranked_ref<T> x, int fixed, F&& f)
    {
        switch (fixed == any_rank ? x.rank : fixed)
        {
        case 1:
            return f(x.template as<1>());
        case 2:
            return f(x.template as<2>());
        case 3:
            return f(x.template as<3>());
        default:
            return f(x.template as<4>());
        }
    }
    template <class F>
    ranked_ref<T> on_input(ranked_ref<T> x, F&& f)
    {
        if constexpr (in_rank != any_rank)
        {
            return f(x.template as<in_rank>());
        }
        else
        {
            return on_rank(x, in_rank, f);
        }
    }
    template <class F>
    ranked_ref<T> on_output(ranked_ref<T> dy, F&& f)
    {
        if constexpr (out_rank != any_rank)
        {
            return f(dy.template as<out_rank>());
        }
        else
        {
            return on_rank(dy, out_rank, f);
        }
    }

    L m_layer;
    std::optional<known_activation<T>> m_activation;
};

template <class>
struct is_sequential_type : std::false_type
{
};
template <class... L>
struct is_sequential_type<Sequential<L...>> : std::true_type
{
};

/// The layers of a `Network` and how to run them, whatever ranks the network takes and returns:
/// what `Network<T, In, Out>` wraps, and what `layer_registry` builds into (a chain nested in a
/// network built at run time is one too, behind `chain_node`). Ranks are checked as layers are
/// added; tensors pass as `ranked_ref`s. Every `xcnn::error` a layer throws reaches the caller with
/// its type and its message prefixed by "Network layer <index>: ".
template <class T>
class layer_chain
{
    using node = network_node<T>;
    using ref = ranked_ref<T>;

public:
    /// A chain without layers that takes tensors of rank `input_rank`.
    explicit layer_chain(int input_rank) noexcept : m_input_rank(input_rank), m_produced(input_rank) {}
    /// A copy of every layer, state included.
    /// @throws value_error if a layer cannot be copied.
    layer_chain(const layer_chain& other)
        : m_steps(other.m_steps), m_predict_steps(other.m_predict_steps), m_input_rank(other.m_input_rank),
          m_produced(other.m_produced)
    {
        m_nodes.reserve(other.m_nodes.size());
        for (const auto& n : other.m_nodes)
        {
            m_nodes.push_back(n->clone());
        }
    }
    layer_chain(layer_chain&& other) noexcept = default;
    layer_chain& operator=(const layer_chain& other)
    {
        if (this != &other)
        {
            layer_chain copy(other);
            *this = std::move(copy);
        }
        return *this;
    }
    layer_chain& operator=(layer_chain&& other) noexcept = default;
    ~layer_chain() = default;

    /// Appends `layer`.
    /// @throws shape_error naming the index, the layer and both ranks if it cannot take the rank
    /// the layer before it produces (or, first, the chain's input rank), or produces a rank above 4.
    void push_back(std::unique_ptr<node> layer)
    {
        const int in = layer->input_rank();
        const int out = layer->output_rank();
        if (in != any_rank && in != m_produced)
        {
            throw shape_error(concat(
                "Network layer ", m_nodes.size(), ": ", layer->name(), " takes a rank-", in, " input but ",
                m_nodes.empty() ? std::string("the network takes rank ")
                                : std::string("the layer before it produces rank "),
                m_produced,
                m_produced == 4 && in == 2 ? " (a Dense after a convolution or pooling layer needs a Flatten)" : ""));
        }
        if (out != any_rank && (out < 1 || out > network_max_rank))
        {
            throw shape_error(concat("Network layer ", m_nodes.size(), ": ", layer->name(), " produces rank ", out,
                                     "; a Network passes ranks 1 to 4"));
        }
        m_nodes.push_back(std::move(layer));
        m_produced = out == any_rank ? m_produced : out;
        plan();
    }

    /// Number of layers.
    std::size_t size() const noexcept { return m_nodes.size(); }
    /// The rank the chain takes.
    int input_rank() const noexcept { return m_input_rank; }
    /// The rank its layers produce (its input rank when it has none).
    int produced_rank() const noexcept { return m_produced; }

    /// Layer `index`.
    /// @throws value_error for an index past the last layer.
    node& at(std::size_t index)
    {
        if (index >= m_nodes.size())
        {
            throw value_error(concat("Network: no layer ", index, " in a network of ", m_nodes.size()));
        }
        return *m_nodes[index];
    }

    /// Calls `f(index, layer)` for each layer in order.
    template <class F>
    void for_each_layer(F&& f) const
    {
        for (std::size_t i = 0; i < m_nodes.size(); ++i)
        {
            f(i, static_cast<const node&>(*m_nodes[i]));
        }
    }

    /// Every (parameter, gradient) pair, named like PyTorch's `state_dict` keys ("0.weight").
    std::vector<parameter<T>> parameters()
    {
        std::vector<parameter<T>> all;
        for (std::size_t i = 0; i < m_nodes.size(); ++i)
        {
            add_indexed(all, m_nodes[i]->parameters(), i, m_nodes[i]->name());
        }
        return all;
    }
    /// Every buffer, named like PyTorch's `state_dict` keys ("1.running_mean").
    std::vector<buffer<T>> buffers()
    {
        std::vector<buffer<T>> all;
        for (std::size_t i = 0; i < m_nodes.size(); ++i)
        {
            add_indexed(all, m_nodes[i]->buffers(), i, m_nodes[i]->name());
        }
        return all;
    }
    /// The generators of the stochastic layers, named "<index>.<name>" ("3.rng").
    std::vector<generator_handle> generators()
    {
        std::vector<generator_handle> all;
        for (std::size_t i = 0; i < m_nodes.size(); ++i)
        {
            add_indexed(all, m_nodes[i]->generators(), i, std::string());
        }
        return all;
    }
    /// Number of trainable scalars of all layers together.
    std::size_t num_parameters() const
    {
        std::size_t count = 0;
        for (const auto& n : m_nodes)
        {
            count += n->num_parameters();
        }
        return count;
    }
    /// Re-draws every layer's parameters, in layer order, from `rng`.
    void reset_parameters(std::mt19937& rng)
    {
        for (auto& n : m_nodes)
        {
            n->reset_parameters(rng);
        }
    }
    /// Kind "Sequential" with each layer's spec as a child.
    layer_spec spec() const
    {
        layer_spec s{"Sequential", {}, {}};
        for (const auto& n : m_nodes)
        {
            s.children.push_back(n->spec());
        }
        return s;
    }

    /// Refuses to run a chain without layers or whose layers do not produce `output_rank` (the
    /// message names the layers; nothing is allocated unless it throws).
    void require_runnable(int output_rank) const
    {
        if (m_nodes.empty())
        {
            throw value_error("Network: it has no layers (add them with push_back)");
        }
        // m_produced is a rank, never any_rank: a layer of any rank keeps the rank before it.
        if (m_produced != output_rank)
        {
            throw value_error(concat("Network: its layers produce rank ", m_produced,
                                     " but it is declared to return rank ", output_rank, " (",
                                     chain_name(*this, "Network"), ")"));
        }
    }

    /// Every layer's `forward` (`training`) or `predict`, in the planned steps.
    ref run(ref v, bool training)
    {
        m_has_cache = false;
        const std::size_t n = m_nodes.size();
        const auto& steps = training ? m_steps : m_predict_steps;
        for (std::size_t i = 0; i < n;)
        {
            switch (steps[i])
            {
            case step_kind::with_activation:
                v = guarded(i,
                            [&] { return m_nodes[i]->forward_activated(v, training, *m_nodes[i + 1]->activation()); });
                i += 2;
                break;
            case step_kind::with_affine:
                v = guarded(i, [&] { return m_nodes[i]->predict_affine(v, *m_nodes[i + 1], nullptr); });
                i += 2;
                break;
            case step_kind::with_affine_activation:
                v = guarded(i, [&]
                            { return m_nodes[i]->predict_affine(v, *m_nodes[i + 1], m_nodes[i + 2]->activation()); });
                i += 3;
                break;
            case step_kind::rows_into_next:
                v = guarded(i + 1, [&] { return m_nodes[i + 1]->forward_flattened(v, training); });
                i += 2;
                break;
            default:
                v = guarded(i, [&] { return m_nodes[i]->forward(v, training); });
                ++i;
            }
        }
        m_has_cache = training;
        return v;
    }

    /// Every layer's `backward`, last to first; with `input_grad` false the first layer only
    /// computes its parameter gradients when it can (then an empty reference is returned).
    ref back(ref g, bool input_grad)
    {
        if (!m_has_cache)
        {
            throw error(concat("Network of ", m_nodes.size(),
                               " layers: backward needs a forward (not predict) that succeeded first"));
        }
        for (std::size_t end = m_nodes.size(); end > 0;)
        {
            const std::size_t last = end - 1;
            const bool fused = m_steps[last] == step_kind::absorbed;
            const std::size_t first = fused ? last - 1 : last;
            const bool parameters_only = first == 0 && !input_grad;
            node& step = *m_nodes[first];
            if (fused && m_steps[first] == step_kind::with_activation)
            {
                const auto& op = *m_nodes[last]->activation();
                if (parameters_only)
                {
                    guarded(0, [&] { return (step.backward_parameters_activated(g, op), ref{}); });
                    return {};
                }
                g = guarded(first, [&] { return step.backward_activated(g, op); });
            }
            else if (fused)
            {
                g = guarded(last, [&] { return m_nodes[last]->backward_flattened(g); });
            }
            else if (parameters_only)
            {
                bool done = false;
                guarded(0, [&] { return (done = step.backward_parameters(g), ref{}); });
                if (done)
                {
                    return {};
                }
                g = guarded(0, [&] { return step.backward(g); });
            }
            else
            {
                g = guarded(first, [&] { return step.backward(g); });
            }
            end = first;
        }
        return g;
    }

private:
    /// The steps of training and of `predict`, planned as `Sequential` plans its own from the
    /// same declarations.
    void plan()
    {
        const std::size_t n = m_nodes.size();
        std::vector<step_kind> fusions(n, step_kind::single);
        for (std::size_t i = 0; i + 1 < n; ++i)
        {
            const auto* op = m_nodes[i + 1]->activation();
            if (op != nullptr && m_nodes[i]->applies(*op))
            {
                fusions[i] = step_kind::with_activation;
            }
            // Not for a first layer, whose input is the caller's tensor, which may change before
            // `backward`.
            else if (i > 0 && m_nodes[i]->reshapes_to_rows() && m_nodes[i + 1]->reads_rows())
            {
                fusions[i] = step_kind::rows_into_next;
            }
        }
        std::vector<step_kind> predict_fusions = fusions;
        for (std::size_t i = 0; i + 1 < n; ++i)
        {
            if (m_nodes[i]->folds_affine() && m_nodes[i + 1]->is_channel_affine())
            {
                const auto* op = i + 2 < n ? m_nodes[i + 2]->activation() : nullptr;
                predict_fusions[i] = op != nullptr && m_nodes[i]->applies(*op) ? step_kind::with_affine_activation
                                                                               : step_kind::with_affine;
            }
        }
        m_steps = plan_steps(std::move(fusions));
        m_predict_steps = plan_steps(std::move(predict_fusions));
        m_has_cache = false;
    }

    /// Runs `call` and names layer `index` in any xcnn error, keeping its type.
    template <class F>
    static ref guarded(std::size_t index, F&& call)
    {
        try
        {
            return call();
        }
        catch (const error&)
        {
            rethrow_with_prefix(concat("Network layer ", index, ": "));
        }
    }

    std::vector<std::unique_ptr<node>> m_nodes;
    std::vector<step_kind> m_steps;         // forward and backward
    std::vector<step_kind> m_predict_steps; // predict
    int m_input_rank;                       // the rank the chain takes
    int m_produced;                         // the rank the last layer produces
    bool m_has_cache = false;
};

} // namespace detail

/// A network of layers chosen at run time, run in order like a `Sequential`, with the same
/// interface and the same fusions (an activation after a `Conv2D` or `Dense`, a `Flatten` before
/// a `Dense`), planned each time a layer is added.
///
///     xcnn::Network<float> net;            // takes (N, C, H, W), returns (N, classes)
///     net.push_back(xcnn::Conv2D<float>(1, 8, 3, 1, 1));
///     net.push_back(xcnn::ReLU<float>{});
///     net.push_back(xcnn::Flatten<float>{});
///     net.push_back(xcnn::Dense<float>(8 * 28 * 28, 10));
///
/// or `xcnn::Network<float> net(xcnn::Sequential{...})`, which takes over the Sequential's
/// layers (their parameters keep their names, "0.weight"). `load_network` and `load_onnx` build
/// one from a file.
///
/// `InputRank` and `OutputRank` are the ranks the network takes and returns: a network is a
/// layer, so `Network<T, 4, 4>` can be a branch of a `Residual`. Ranks between neighbours are
/// checked by `push_back`, tensors are passed as ranks 1 to 4. Every `xcnn::error` a layer throws
/// reaches the caller with its type and its message prefixed by "Network layer <index>: ".
/// The layers and their running live in `detail::layer_chain`, which does not depend on the
/// ranks: a program that builds networks of several ranks compiles that code once.
template <class T, int InputRank = 4, int OutputRank = 2>
class Network
{
    static_assert(InputRank >= 1 && InputRank <= detail::network_max_rank && OutputRank >= 1 &&
                      OutputRank <= detail::network_max_rank,
                  "xcnn::Network takes and returns tensors of rank 1 to 4");
    using node = detail::network_node<T>;
    using ref = detail::ranked_ref<T>;

public:
    /// The scalar type (`float` or `double`).
    using value_type = T;
    /// The rank of the input.
    static constexpr int input_rank = InputRank;
    /// The rank of the output.
    static constexpr int output_rank = OutputRank;
    /// The input's type.
    using input_type = xt::xtensor<T, static_cast<std::size_t>(InputRank)>;
    /// The output's type.
    using output_type = xt::xtensor<T, static_cast<std::size_t>(OutputRank)>;

    /// A network without layers; add them with `push_back`.
    Network() = default;

    /// A network of `layers`, in order; or, for one `Sequential`, of its layers.
    /// @throws shape_error as `push_back` does.
    template <class... Layers, std::enable_if_t<(sizeof...(Layers) > 1 ||
                                                 (sizeof...(Layers) == 1 &&
                                                  !(std::is_same<std::decay_t<Layers>, Network>::value || ...))),
                                                int> = 0>
    explicit Network(Layers... layers)
    {
        (add(std::move(layers)), ...);
    }

    /// A copy of every layer, state included.
    /// @throws value_error if a layer cannot be copied.
    Network(const Network& other) : m_chain(other.m_chain) {}
    /// Takes over `other`'s layers.
    Network(Network&& other) noexcept = default;
    /// A copy of every layer of `other`, state included.
    /// Leaves this network unchanged if a layer cannot be copied (`layer_chain`'s assignment copies
    /// first).
    Network& operator=(const Network& other)
    {
        m_chain = other.m_chain;
        return *this;
    }
    /// Takes over `other`'s layers.
    Network& operator=(Network&& other) noexcept = default;
    ~Network() = default;

    /// Appends `layer` (any layer: an xcnn layer, yours, a `Sequential`, a `Residual`, a `Network`).
    /// @throws shape_error naming the index, the layer and both ranks if it cannot take the rank
    /// the layer before it produces (or, first, the network's input rank), or produces a rank
    /// above 4.
    template <class L>
    void push_back(L layer)
    {
        static_assert(detail::check_layer<L>::value, "xcnn::Network: see the error above");
        static_assert(std::is_same<typename L::value_type, T>::value,
                      "xcnn::Network: every layer must have the network's scalar type");
        m_chain.push_back(std::make_unique<detail::network_model<T, L>>(std::move(layer)));
    }

    /// Number of layers.
    std::size_t size() const noexcept { return m_chain.size(); }
    /// Whether the network has no layers.
    bool empty() const noexcept { return m_chain.size() == 0; }

    /// Layer `index` as an `L` (`net.layer<xcnn::Conv2D<float>>(0)`), or nullptr if it is not one.
    /// @throws value_error for an index past the last layer.
    template <class L>
    L* layer(std::size_t index)
    {
        return m_chain.at(index).template as<L>();
    }
    /// Layer `index` as an `L`, read-only, or nullptr if it is not one.
    /// @throws value_error for an index past the last layer.
    template <class L>
    const L* layer(std::size_t index) const
    {
        return const_cast<Network*>(this)->m_chain.at(index).template as<L>();
    }

    /// Runs every layer's `forward` (keeping what `backward` needs); returns the last output, a
    /// buffer of the last layer that the next call overwrites.
    /// @throws value_error for a network without layers or whose layers do not produce
    /// `OutputRank`; shape_error for an input a layer cannot take (or any error a layer throws),
    /// its message prefixed by "Network layer <index>: "; `backward` is then refused until a
    /// `forward` succeeds.
    const output_type& forward(const input_type& x) { return run(x, true); }
    /// @overload
    /// For inputs of any expression type; checks the rank first.
    template <class E>
    const output_type& forward(const xt::xexpression<E>& x)
    {
        return forward(converted(x));
    }

    /// Runs every layer's `predict`: same result as `forward`, no training caches.
    /// @throws as `forward`.
    const output_type& predict(const input_type& x) { return run(x, false); }
    /// @overload
    /// For inputs of any expression type; a tensor of fixed rank `InputRank - 1` (one (C, H, W)
    /// image) is one sample, whose output comes without the batch axis, as with `Sequential`.
    template <class E>
    decltype(auto) predict(const xt::xexpression<E>& x)
    {
        if constexpr (detail::is_unbatched<E, InputRank>::value)
        {
            static_assert(OutputRank >= 2, "xcnn::Network: predict of a single sample needs an output with a batch "
                                           "axis and at least one more");
            return m_unbatched.run(x.derived_cast(),
                                   [&](const input_type& batch) -> const output_type& { return predict(batch); });
        }
        else
        {
            return predict(converted(x));
        }
    }

    /// Runs every layer's `backward` from the last to the first; returns dLoss/dinput and leaves
    /// each layer's parameter gradients overwritten.
    /// @throws error unless the last `forward` or `predict` call was a `forward` that succeeded;
    /// shape_error (prefixed by "Network layer <index>: ") for a gradient whose shape is not that
    /// of the last output.
    const input_type& backward(const output_type& dy)
    {
        return m_chain.back(ref::of(dy), true).template as<static_cast<std::size_t>(InputRank)>();
    }
    /// @overload
    /// For gradients of any expression type; checks the rank first.
    template <class E>
    const input_type& backward(const xt::xexpression<E>& dy)
    {
        return backward(converted_gradient(dy));
    }

    /// Like `backward`, but the first layer only computes its parameter gradients, when it can.
    /// @throws as `backward`.
    void backward_parameters(const output_type& dy) { m_chain.back(ref::of(dy), false); }
    /// @overload
    /// For gradients of any expression type; checks the rank first.
    template <class E>
    void backward_parameters(const xt::xexpression<E>& dy)
    {
        backward_parameters(converted_gradient(dy));
    }

    /// Every (parameter, gradient) pair, named like PyTorch's `state_dict` keys ("0.weight").
    std::vector<parameter<T>> parameters() { return m_chain.parameters(); }
    /// Every buffer, named like PyTorch's `state_dict` keys ("1.running_mean").
    std::vector<buffer<T>> buffers() { return m_chain.buffers(); }
    /// The generators of the stochastic layers, named "<index>.<name>" ("3.rng").
    std::vector<generator_handle> generators() { return m_chain.generators(); }
    /// Number of trainable scalars of all layers together.
    std::size_t num_parameters() const { return m_chain.num_parameters(); }
    /// Re-draws every layer's parameters, in layer order, from `rng`.
    void reset_parameters(std::mt19937& rng) { m_chain.reset_parameters(rng); }
    /// Re-draws every layer's parameters from `std::mt19937(seed)`.
    void reset_parameters(std::mt19937::result_type seed)
    {
        std::mt19937 rng(seed);
        reset_parameters(rng);
    }

    /// Shape of the output for an input of `input_shape`.
    /// @throws shape_error naming the first layer that cannot take its input.
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const
    {
        return detail::chain_output_shape(m_chain, "Network", input_shape);
    }
    /// `Network(<name of layer 0>, <name of layer 1>, ...)`.
    std::string name() const { return detail::chain_name(m_chain, "Network"); }
    /// A table of the layers with their output shapes and parameter counts, as `Sequential`'s.
    std::string summary(const std::vector<std::size_t>& input_shape) const
    {
        return detail::chain_summary(m_chain, "Network", input_shape);
    }
    /// The architecture: kind "Sequential" (a chain, as PyTorch's `nn.Sequential`) with each
    /// layer's spec as a child.
    /// @throws value_error naming a layer without `spec()`.
    layer_spec spec() const { return m_chain.spec(); }

    /// Calls `f(index, layer)` for each layer in order, the layer as a `detail::network_node<T>`
    /// (`name()`, `output_shape()`, `num_parameters()`, `spec()`, `as<L>()`).
    template <class F>
    void for_each_layer(F&& f) const
    {
        m_chain.for_each_layer(std::forward<F>(f));
    }

private:
    template <class U>
    friend class layer_registry;

    template <class L>
    void add(L&& layer)
    {
        if constexpr (detail::is_sequential_type<std::decay_t<L>>::value)
        {
            take_layers(layer, std::make_index_sequence<std::decay_t<L>::layer_count>{});
        }
        else
        {
            push_back(std::forward<L>(layer));
        }
    }
    template <class S, std::size_t... I>
    void take_layers(S& sequential, std::index_sequence<I...>)
    {
        (push_back(std::move(sequential.template get<I>())), ...);
    }

    const output_type& run(const input_type& x, bool training)
    {
        m_chain.require_runnable(OutputRank);
        return m_chain.run(ref::of(x), training).template as<static_cast<std::size_t>(OutputRank)>();
    }

    template <class E>
    const input_type& converted(const xt::xexpression<E>& x)
    {
        return detail::evaluate_input<static_cast<std::size_t>(InputRank)>(*this, x, m_converted_input,
                                                                           detail::layout_of_rank(InputRank));
    }
    template <class E>
    const output_type& converted_gradient(const xt::xexpression<E>& dy)
    {
        return detail::evaluate_input<static_cast<std::size_t>(OutputRank)>(
            *this, dy, m_converted_gradient, detail::layout_of_rank(OutputRank), "gradient");
    }

    detail::layer_chain<T> m_chain{InputRank};
    input_type m_converted_input;
    output_type m_converted_gradient;
    detail::unbatched_buffers<T, InputRank, OutputRank> m_unbatched;
};

} // namespace xcnn

#endif // XCNN_NETWORK_NETWORK_HPP
