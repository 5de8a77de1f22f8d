/// @file
/// `xcnn::layer_registry` and `xcnn::build_network`: a `Network` rebuilt from a `layer_spec`, the
/// description of its layers that model files record ("xcnn.layers") and the ONNX importer makes.
///
/// A registry maps each layer kind ("Conv2D") to the layer type that `from_spec` rebuilds; it knows
/// every built-in layer, and a program adds its own (`registry.add<my::ChannelScale<float>>()`).
/// There is no global registry: each call gets the registry it should use.
///
/// How specs become layers:
/// - a kind the registry knows: that type's `from_spec`, pushed into the network as itself (so the
///   network fuses it with its neighbours as it would have fused the original);
/// - "Sequential": at the top, its layers are the network's; inside, a nested chain (a layer that
///   runs like a nested `Network`, `detail::chain_node`), so the
///   parameters keep the names a nested `Sequential` gave them ("3.1.weight");
/// - "Residual": `Residual` over one or two run-time branches (`detail::spec_branch`) of the rank
///   reached so far; a branch is a nested chain for a "Sequential" spec or the single layer
///   otherwise, and its parameters keep the names the original branch gave them
///   ("4.main.0.weight", "6.shortcut.weight"). Blocks whose output has another rank than their
///   input are not rebuilt (a `value_error` says so).
#ifndef XCNN_NETWORK_REGISTRY_HPP
#define XCNN_NETWORK_REGISTRY_HPP

#include <algorithm>
#include <cstddef>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/generator.hpp"
#include "../core/layer_spec.hpp"
#include "../core/parameter.hpp"
#include "../core/xtensor_shim.hpp"
#include "../layers/avgpool2d.hpp"
#include "../layers/batchnorm.hpp"
#include "../layers/conv2d.hpp"
#include "../layers/dense.hpp"
#include "../layers/dropout.hpp"
#include "../layers/flatten.hpp"
#include "../layers/gelu.hpp"
#include "../layers/global_avgpool2d.hpp"
#include "../layers/layer.hpp"
#include "../layers/leaky_relu.hpp"
#include "../layers/maxpool2d.hpp"
#include "../layers/relu.hpp"
#include "../layers/sigmoid.hpp"
#include "../layers/tanh.hpp"
#include "network.hpp"
#include "residual.hpp"

namespace xcnn
{
namespace detail
{

/// `f(std::integral_constant<int, rank>{})` for a rank from 1 to 4 known at run time.
template <class F>
decltype(auto) with_rank(int rank, F&& f)
{
    switch (rank)
    {
    case 1:
        return f(std::integral_constant<int, 1>{});
    case 2:
        return f(std::integral_constant<int, 2>{});
    case 3:
        return f(std::integral_constant<int, 3>{});
    default:
        return f(std::integral_constant<int, 4>{});
    }
}

/// A "Sequential" nested in a spec, built at run time: a `layer_chain` as one layer of the chain
/// around it, taking and returning the ranks its layers take and produce. What a nested
/// `Network` would be, without a `Network` type per pair of ranks: the registry compiles one.
template <class T>
class chain_node final : public network_node<T>
{
public:
    /// The node of `chain`: it takes the chain's input rank and returns the rank its layers produce.
    explicit chain_node(layer_chain<T> chain) : m_chain(std::move(chain)) {}

    std::unique_ptr<network_node<T>> clone() const override { return std::make_unique<chain_node>(*this); }
    std::string name() const override { return chain_name(m_chain, "Network"); }
    layer_spec spec() const override { return m_chain.spec(); }
    const std::type_info& type() const noexcept override { return typeid(layer_chain<T>); }
    int input_rank() const noexcept override { return m_chain.input_rank(); }
    int output_rank() const noexcept override { return m_chain.produced_rank(); }
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const override
    {
        return chain_output_shape(m_chain, "Network", input_shape);
    }
    std::size_t num_parameters() const override { return m_chain.num_parameters(); }
    std::vector<parameter<T>> parameters() override { return m_chain.parameters(); }
    std::vector<buffer<T>> buffers() override { return m_chain.buffers(); }
    std::vector<generator_handle> generators() override { return m_chain.generators(); }
    void reset_parameters(std::mt19937& rng) override { m_chain.reset_parameters(rng); }
    ranked_ref<T> forward(ranked_ref<T> x, bool training) override
    {
        m_chain.require_runnable(m_chain.produced_rank());
        return m_chain.run(x, training);
    }
    ranked_ref<T> backward(ranked_ref<T> dy) override { return m_chain.back(dy, true); }
    bool backward_parameters(ranked_ref<T> dy) override
    {
        m_chain.back(dy, false);
        return true;
    }

    // A nested chain is one step: nothing fuses into it or around it.
    const known_activation<T>* activation() const noexcept override { return nullptr; }
    bool applies(const known_activation<T>&) const noexcept override { return false; }
    ranked_ref<T> forward_activated(ranked_ref<T>, bool, const known_activation<T>&) override { throw refusal(); }
    ranked_ref<T> backward_activated(ranked_ref<T>, const known_activation<T>&) override { throw refusal(); }
    void backward_parameters_activated(ranked_ref<T>, const known_activation<T>&) override { throw refusal(); }
    bool reshapes_to_rows() const noexcept override { return false; }
    bool reads_rows() const noexcept override { return false; }
    ranked_ref<T> forward_flattened(ranked_ref<T>, bool) override { throw refusal(); }
    ranked_ref<T> backward_flattened(ranked_ref<T>) override { throw refusal(); }
    bool is_channel_affine() const noexcept override { return false; }
    std::size_t affine_features() const override { throw refusal(); }
    void inference_affine(T*, T*) const override { throw refusal(); }
    bool folds_affine() const noexcept override { return false; }
    ranked_ref<T> predict_affine(ranked_ref<T>, const network_node<T>&, const known_activation<T>*) override
    {
        throw refusal();
    }

private:
    void* address() noexcept override { return &m_chain; }
    value_error refusal() const
    {
        return value_error(concat("Network: ", name(), " is a nested chain and fuses with no neighbour"));
    }

    layer_chain<T> m_chain;
};

/// A branch of a `Residual` built at run time: one layer of any type, behind `Network`'s type
/// erasure, taking and returning rank `R`. Its parameters, buffers and generators are the layer's
/// own, under the layer's own names: a `Residual` over it names them as it named those of the
/// original branch ("main.0.weight" for a nested network, "shortcut.weight" for a single layer).
template <class T, int R>
class spec_branch
{
public:
    /// The scalar type.
    using value_type = T;
    /// Rank of the input.
    static constexpr int input_rank = R;
    /// Rank of the output, the input's.
    static constexpr int output_rank = R;
    /// The type of the input, the output and their gradients.
    using tensor_type = xt::xtensor<T, static_cast<std::size_t>(R)>;

    /// The branch holding `node`.
    explicit spec_branch(std::unique_ptr<network_node<T>> node) : m_node(std::move(node)) {}
    /// A copy of the layer, state included.
    /// @throws value_error if the layer cannot be copied.
    spec_branch(const spec_branch& other) : m_node(other.m_node->clone()) {}
    /// Takes over `other`'s layer.
    spec_branch(spec_branch&& other) noexcept = default;
    /// A copy of `other`'s layer.
    spec_branch& operator=(const spec_branch& other)
    {
        m_node = other.m_node->clone();
        return *this;
    }
    /// Takes over `other`'s layer.
    spec_branch& operator=(spec_branch&& other) noexcept = default;
    ~spec_branch() = default;

    /// The layer's name.
    std::string name() const { return m_node->name(); }
    /// The layer's spec.
    layer_spec spec() const { return m_node->spec(); }
    /// The layer's output shape for `input_shape`.
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& input_shape) const
    {
        return m_node->output_shape(input_shape);
    }
    /// The layer's parameters, under its own names.
    std::vector<parameter<T>> parameters() { return m_node->parameters(); }
    /// The layer's buffers, under its own names.
    std::vector<buffer<T>> buffers() { return m_node->buffers(); }
    /// The layer's generators, under its own names.
    std::vector<generator_handle> generators() { return m_node->generators(); }
    /// The layer's number of trainable scalars.
    std::size_t num_parameters() const { return m_node->num_parameters(); }
    /// Re-draws the layer's parameters from `rng`.
    void reset_parameters(std::mt19937& rng) { m_node->reset_parameters(rng); }
    /// The layer's `forward`.
    const tensor_type& forward(const tensor_type& x) { return run(x, true); }
    /// The layer's `predict`.
    const tensor_type& predict(const tensor_type& x) { return run(x, false); }
    /// The layer's `backward`.
    const tensor_type& backward(const tensor_type& dy)
    {
        return checked(m_node->backward(ranked_ref<T>::of(dy)), "its gradient");
    }
    /// The layer's `backward_parameters`, or its `backward` for a layer without one.
    void backward_parameters(const tensor_type& dy)
    {
        if (!m_node->backward_parameters(ranked_ref<T>::of(dy)))
        {
            (void)m_node->backward(ranked_ref<T>::of(dy));
        }
    }

private:
    const tensor_type& run(const tensor_type& x, bool training)
    {
        return checked(m_node->forward(ranked_ref<T>::of(x), training), "its output");
    }

    /// `y` as a rank-R tensor; a layer of any rank returns its input's, so only a layer that
    /// changes the rank (refused when the branch is built) could give another.
    const tensor_type& checked(ranked_ref<T> y, const char* what) const
    {
        if (y.rank != R)
        {
            throw shape_error(concat(name(), ": a Residual branch of rank ", R, " got ", what, " of rank ", y.rank));
        }
        return y.template as<static_cast<std::size_t>(R)>();
    }

    std::unique_ptr<network_node<T>> m_node;
};

} // namespace detail

/// The layer kinds `build_network` and `load_network` turn into layers: every built-in layer,
/// plus the ones a program adds. No global state: build one where it is needed, or pass a
/// default-constructed one (what `build_network` and `load_network` take when given none).
///
///     xcnn::layer_registry<float> registry;            // the built-in kinds
///     registry.add<my::ChannelScale<float>>();          // kind "ChannelScale"
///     auto net = xcnn::load_network<float>("model.xcnn", registry);
///
/// A layer type `L` can be added when it has `static constexpr const char* kind`, `spec()` and
/// `static L from_spec(const layer_spec&)` (docs/adding-a-layer.md, "Saving the architecture").
template <class T>
class layer_registry
{
public:
    /// A registry of the built-in kinds: Conv2D, Dense, BatchNorm2D, BatchNorm1D, MaxPool2D,
    /// AvgPool2D, GlobalAvgPool2D, Flatten, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Dropout, and the
    /// containers Sequential and Residual.
    layer_registry()
    {
        add<Conv2D<T>>();
        add<Dense<T>>();
        add<BatchNorm2D<T>>();
        add<BatchNorm1D<T>>();
        add<MaxPool2D<T>>();
        add<AvgPool2D<T>>();
        add<GlobalAvgPool2D<T>>();
        add<Flatten<T>>();
        add<ReLU<T>>();
        add<LeakyReLU<T>>();
        add<Sigmoid<T>>();
        add<Tanh<T>>();
        add<GELU<T>>();
        add<Dropout<T>>();
    }

    /// Adds layer type `L` under its kind `L::kind`; returns the registry for chaining.
    /// @throws value_error if the kind is already known (the containers included).
    template <class L>
    layer_registry& add()
    {
        static_assert(std::is_same<typename L::value_type, T>::value,
                      "xcnn::layer_registry<T>::add<L>: L must have the registry's scalar type T");
        static_assert(detail::has_from_spec<L>::value,
                      "xcnn::layer_registry::add<L>: L needs `static L from_spec(const xcnn::layer_spec&)`");
        static_assert(detail::has_spec<L>::value, "xcnn::layer_registry::add<L>: L needs `layer_spec spec() const`");
        const std::string kind = L::kind;
        if (contains(kind))
        {
            throw value_error(detail::concat("layer_registry: kind '", kind, "' is already known"));
        }
        entry e;
        e.input_rank = L::input_rank;
        e.output_rank = L::output_rank;
        e.node = [](const layer_spec& spec) -> std::unique_ptr<detail::network_node<T>>
        {
            return std::make_unique<detail::network_model<T, L>>(L::from_spec(spec));
        };
        m_entries.emplace(kind, std::move(e));
        return *this;
    }

    /// Whether `kind` is known ("Sequential" and "Residual" always are).
    bool contains(const std::string& kind) const
    {
        return kind == "Sequential" || kind == residual_kind || m_entries.count(kind) != 0;
    }

    /// Every known kind, in alphabetical order.
    std::vector<std::string> kinds() const
    {
        std::vector<std::string> out;
        for (const auto& e : m_entries)
        {
            out.push_back(e.first);
        }
        out.insert(std::upper_bound(out.begin(), out.end(), std::string(residual_kind)), residual_kind);
        out.insert(std::upper_bound(out.begin(), out.end(), std::string("Sequential")), "Sequential");
        return out;
    }

    /// Appends the layer `spec` describes, freshly initialised, to `net`: a layer of a known kind
    /// as itself, a "Sequential" as a nested chain, a "Residual" over run-time branches.
    /// @throws value_error for an unknown kind (naming it and listing the known ones), options a
    /// layer refuses, or a Residual that does not keep the rank; shape_error if the layer cannot
    /// take the rank `net` produces. Messages say where in the spec ("Sequential layer 2:
    /// Residual main: ...").
    template <int In, int Out>
    void make(const layer_spec& spec, Network<T, In, Out>& net) const
    {
        push(spec, net.m_chain);
    }

    /// The rank of a tensor of rank `input_rank` after the layer `spec` describes, without building it.
    /// @throws value_error as `make` does for an unknown kind.
    int output_rank(const layer_spec& spec, int input_rank) const
    {
        if (spec.kind == "Sequential")
        {
            int rank = input_rank;
            for (std::size_t i = 0; i < spec.children.size(); ++i)
            {
                try
                {
                    rank = output_rank(spec.children[i], rank);
                }
                catch (const error&)
                {
                    detail::rethrow_with_prefix(detail::concat("Sequential layer ", i, ": "));
                }
            }
            return rank;
        }
        if (spec.kind == residual_kind)
        {
            return input_rank;
        }
        const int out = find(spec.kind).output_rank;
        return out == any_rank ? input_rank : out;
    }

    /// Appends the layers of the "Sequential" `spec` to `net`, each as `make` does, so that they
    /// are `net`'s own layers ("0.weight", not "0.0.weight"); any other spec, as `make` does.
    /// @throws as `make`, the message prefixed by "Sequential layer <index>: " for the layer at fault.
    template <int In, int Out>
    void append(const layer_spec& spec, Network<T, In, Out>& net) const
    {
        append_to(spec, net.m_chain);
    }

private:
    static constexpr const char* residual_kind = "Residual";

    /// What the registry keeps of a kind.
    struct entry
    {
        int input_rank = any_rank;  // the type's input_rank
        int output_rank = any_rank; // the type's output_rank
        /// `L::from_spec(spec)` behind a `network_node`.
        std::function<std::unique_ptr<detail::network_node<T>>(const layer_spec&)> node;
    };

    const entry& find(const std::string& kind) const
    {
        const auto it = m_entries.find(kind);
        if (it == m_entries.end())
        {
            std::string known;
            for (const auto& k : kinds())
            {
                known += (known.empty() ? "" : ", ") + k;
            }
            throw value_error(detail::concat("layer spec: unknown layer kind '", kind, "' (known: ", known,
                                             "; add a layer of your own with layer_registry::add<L>())"));
        }
        return it->second;
    }

    /// Checks that a layer taking `layer_input` can follow a tensor of rank `rank`.
    static void require_takes(const std::string& kind, int layer_input, int rank)
    {
        if (layer_input != any_rank && layer_input != rank)
        {
            throw shape_error(detail::concat(kind, " takes a rank-", layer_input, " input but gets rank ", rank,
                                             rank == 4 && layer_input == 2
                                                 ? " (a Dense after a convolution or pooling layer needs a Flatten)"
                                                 : ""));
        }
    }

    /// The layers of the "Sequential" `spec` pushed one by one into `target`.
    void append_to(const layer_spec& spec, detail::layer_chain<T>& target) const
    {
        if (spec.kind != "Sequential")
        {
            push(spec, target);
            return;
        }
        spec_reader(spec, "Sequential", {}, 1, std::numeric_limits<std::size_t>::max());
        for (std::size_t i = 0; i < spec.children.size(); ++i)
        {
            try
            {
                push(spec.children[i], target);
            }
            catch (const error&)
            {
                detail::rethrow_with_prefix(detail::concat("Sequential layer ", i, ": "));
            }
        }
    }

    /// Pushes the layer `spec` describes into `target`.
    void push(const layer_spec& spec, detail::layer_chain<T>& target) const
    {
        const int rank = target.produced_rank();
        if (spec.kind == "Sequential")
        {
            // A nested chain: a layer of its own, whose parameters are named "<index>.<name>".
            detail::layer_chain<T> nested(rank);
            append_to(spec, nested);
            target.push_back(std::make_unique<detail::chain_node<T>>(std::move(nested)));
        }
        else if (spec.kind == residual_kind)
        {
            detail::with_rank(rank,
                              [&](auto r)
                              {
                                  make_residual<decltype(r)::value>(
                                      spec,
                                      [&](auto block) {
                                          target.push_back(std::make_unique<detail::network_model<T, decltype(block)>>(
                                              std::move(block)));
                                      });
                              });
        }
        else
        {
            const entry& e = find(spec.kind);
            require_takes(spec.kind, e.input_rank, rank);
            target.push_back(e.node(spec));
        }
    }

    /// Builds the "Residual" `spec` as a block of rank R and hands it to `consume`.
    template <int R, class F>
    void make_residual(const layer_spec& spec, F&& consume) const
    {
        spec_reader(spec, residual_kind, {}, 1, 2);
        auto main = branch<R>(spec.children[0], "main");
        if (spec.children.size() == 1)
        {
            consume(Residual<detail::spec_branch<T, R>>(std::move(main)));
        }
        else
        {
            consume(Residual<detail::spec_branch<T, R>, detail::spec_branch<T, R>>(
                std::move(main), branch<R>(spec.children[1], "shortcut")));
        }
    }

    /// The branch `spec` describes for a Residual block of rank R, its errors prefixed by
    /// "Residual <which>: ": a Network of the layers of a "Sequential", else the single layer.
    template <int R>
    detail::spec_branch<T, R> branch(const layer_spec& spec, const char* which) const
    {
        try
        {
            if (spec.kind != "Sequential" && spec.kind != residual_kind)
            {
                require_takes(spec.kind, find(spec.kind).input_rank, R);
            }
            const int out = output_rank(spec, R);
            if (out != R)
            {
                throw value_error(detail::concat(spec.kind, " turns the block's rank-", R, " input into rank ", out,
                                                 "; a rebuilt Residual keeps the rank of its input"));
            }
            std::unique_ptr<detail::network_node<T>> node;
            if (spec.kind == "Sequential")
            {
                detail::layer_chain<T> chain(R);
                append_to(spec, chain);
                node = std::make_unique<detail::chain_node<T>>(std::move(chain));
            }
            else if (spec.kind == residual_kind)
            {
                make_residual<R>(
                    spec, [&](auto block)
                    { node = std::make_unique<detail::network_model<T, decltype(block)>>(std::move(block)); });
            }
            else
            {
                node = find(spec.kind).node(spec);
            }
            return detail::spec_branch<T, R>(std::move(node));
        }
        catch (const error&)
        {
            detail::rethrow_with_prefix(detail::concat("Residual ", which, ": "));
        }
    }

    std::map<std::string, entry> m_entries;
};

/// The `Network` `spec` describes, its layers freshly initialised (PyTorch's initialisation from
/// each layer's fixed seed, as when constructed): a "Sequential" spec's layers become the
/// network's own layers, named "0.weight", ... as the `Sequential` that wrote the spec named
/// them; any other spec, a network of that one layer. `registry` says which kinds exist.
///
///     auto net = xcnn::build_network<float>(xcnn::parse_layer_spec("Sequential(Conv2D(...), ...)"));
///
/// @throws value_error for an unknown kind, an option a layer refuses, or layers that end in
/// another rank than `OutputRank`; shape_error for neighbours whose ranks do not match; each
/// message says where in the spec ("Sequential layer 3: ...").
template <class T, int InputRank = 4, int OutputRank = 2>
Network<T, InputRank, OutputRank> build_network(const layer_spec& spec,
                                                const layer_registry<T>& registry = layer_registry<T>())
{
    Network<T, InputRank, OutputRank> net;
    registry.append(spec, net);
    const int out = registry.output_rank(spec, InputRank);
    if (out != OutputRank)
    {
        throw value_error(detail::concat(
            "build_network: the layers turn a rank-", InputRank, " input into rank ", out, ", not the rank ",
            OutputRank, " the network is declared to return (build_network<T, ", InputRank, ", ", out, ">)"));
    }
    return net;
}

} // namespace xcnn

#endif // XCNN_NETWORK_REGISTRY_HPP
