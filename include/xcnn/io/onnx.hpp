/// @file
/// ONNX files: `xcnn::save_onnx(net, path, input_shape)` exports a `Sequential` or a `Network` (with
/// nested networks and `Residual` blocks) as an ONNX model of opset 13 that ONNX Runtime runs, and
/// `xcnn::onnx::read_model(path)` reads any ONNX file's graph into plain structs with every bound
/// checked. Both are built on the wire format of io/protobuf.hpp: no libprotobuf or libonnx.
///
/// What each layer becomes (docs/onnx.md):
/// - `Conv2D`: Conv (kernel_shape, strides, pads, dilations, group; the bias input when it has one)
/// - `Dense`: Gemm with transB = 1 (the weight stays (out, in), as PyTorch stores it)
/// - `ReLU`, `Sigmoid`, `Tanh`: Relu, Sigmoid, Tanh; `LeakyReLU`: LeakyRelu(alpha)
/// - `GELU`: its erf form x * 0.5 * (1 + erf(x / sqrt 2)) as Div, Erf, Add, Mul, Mul
/// - `MaxPool2D`: MaxPool; `AvgPool2D`: AveragePool with count_include_pad = 1
/// - `GlobalAvgPool2D`: GlobalAveragePool then Flatten; `Flatten`: Flatten(axis = 1)
/// - `BatchNorm2D`, `BatchNorm1D`: BatchNormalization with the running statistics (inference),
///   epsilon and momentum = 1 - xcnn's momentum (ONNX weighs the running value, PyTorch the batch)
/// - `Residual`: its branches, then Add; `Dropout`: nothing (identity at inference)
///
/// The graph is written from each layer's description (`spec()`, core/layer_spec.hpp) and its
/// tensors, so a `Network`, whose layer types are erased, exports as its `Sequential` does.
/// Weights are initializers named like the network's `state_dict` keys ("0.weight",
/// "3.main.1.running_mean"); the values between nodes are named after the layer that makes them.
#ifndef XCNN_IO_ONNX_HPP
#define XCNN_IO_ONNX_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/layer_spec.hpp"
#include "../network/network.hpp"
#include "../network/residual.hpp"
#include "../network/sequential.hpp"
#include "../version.hpp"
#include "binary.hpp"
#include "protobuf.hpp"

namespace xcnn
{
namespace onnx
{
namespace detail
{

/// The first element of `items` whose `name` is `key`, or nullptr.
template <class T>
const T* find_named(const std::vector<T>& items, const std::string& key)
{
    for (const auto& item : items)
    {
        if (item.name == key)
        {
            return &item;
        }
    }
    return nullptr;
}

} // namespace detail

/// The opset of the default domain `save_onnx` writes.
inline constexpr std::int64_t export_opset = 13;
/// The IR version `save_onnx` writes (7: the one that goes with opset 13).
inline constexpr std::int64_t export_ir_version = 7;

/// `TensorProto.DataType` values xcnn reads or writes.
enum data_type : std::int32_t
{
    type_undefined = 0, ///< not set
    type_float = 1,     ///< FLOAT
    type_int64 = 7,     ///< INT64
    type_double = 11    ///< DOUBLE
};

/// `AttributeProto.AttributeType` values.
enum attribute_type : std::int32_t
{
    attribute_undefined = 0, ///< not set
    attribute_float = 1,     ///< FLOAT: `f`
    attribute_int = 2,       ///< INT: `i`
    attribute_string = 3,    ///< STRING: `s`
    attribute_tensor = 4,    ///< TENSOR: `t`
    attribute_graph = 5,     ///< GRAPH (a subgraph; its content is not read)
    attribute_floats = 6,    ///< FLOATS: `floats`
    attribute_ints = 7,      ///< INTS: `ints`
    attribute_strings = 8    ///< STRINGS (their content is not read)
};

/// A tensor of an ONNX file (an initializer or a node's constant), values converted from
/// whichever field held them (`raw_data`, `float_data`, `double_data`, `int64_data`).
struct tensor
{
    /// Its name (the initializer's value name).
    std::string name;
    /// `type_float`, `type_double` or `type_int64`; other types are rejected.
    std::int32_t type = type_undefined;
    /// Its shape; empty for a scalar.
    std::vector<std::int64_t> dims;
    /// The values of a `type_float` tensor, row-major.
    std::vector<float> floats;
    /// The values of a `type_double` tensor.
    std::vector<double> doubles;
    /// The values of a `type_int64` tensor.
    std::vector<std::int64_t> int64s;
    /// The number of elements, the product of `dims` (1 for a scalar).
    std::size_t size() const
    {
        std::size_t n = 1;
        for (const auto d : dims)
        {
            n *= static_cast<std::size_t>(d);
        }
        return n;
    }
};

/// A node attribute: `type` says which member holds the value.
struct attribute
{
    /// The attribute's name ("kernel_shape").
    std::string name;
    /// An `attribute_type`.
    std::int32_t type = attribute_undefined;
    /// FLOAT.
    float f = 0;
    /// INT.
    std::int64_t i = 0;
    /// STRING.
    std::string s;
    /// FLOATS.
    std::vector<float> floats;
    /// INTS.
    std::vector<std::int64_t> ints;
    /// TENSOR: one element, the tensor (empty otherwise).
    std::vector<tensor> t;
};

/// A graph node.
struct node
{
    /// The node's name (may be empty).
    std::string name;
    /// The operator ("Conv").
    std::string op_type;
    /// The operator's domain; empty for the default ONNX domain.
    std::string domain;
    /// Names of the input values, in order (an empty name is an absent optional input).
    std::vector<std::string> inputs;
    /// Names of the output values.
    std::vector<std::string> outputs;
    /// The attributes, in file order.
    std::vector<attribute> attributes;

    /// The attribute named `key`, or nullptr.
    const attribute* find(const std::string& key) const { return detail::find_named(attributes, key); }
};

/// A graph input or output: a name, an element type and a shape whose symbolic dimensions are
/// -1 with their name in `dim_params`.
struct value_info
{
    /// The value's name.
    std::string name;
    /// Its `data_type` (0 if the file does not say).
    std::int32_t elem_type = type_undefined;
    /// Its dimensions, -1 where symbolic or unknown.
    std::vector<std::int64_t> dims;
    /// For each dimension, its symbolic name ("N"), or empty.
    std::vector<std::string> dim_params;
};

/// An operator set the model imports.
struct opset
{
    /// The domain; empty for the default ONNX domain.
    std::string domain;
    /// Its version.
    std::int64_t version = 0;
};

/// The graph of a model.
struct graph
{
    /// Its name.
    std::string name;
    /// The nodes, in file order (ONNX requires topological order).
    std::vector<node> nodes;
    /// The initializers: the weights.
    std::vector<tensor> initializers;
    /// The graph's inputs (in older files, initializers are listed here too).
    std::vector<value_info> inputs;
    /// The graph's outputs.
    std::vector<value_info> outputs;

    /// The initializer named `key`, or nullptr.
    const tensor* find_initializer(const std::string& key) const { return detail::find_named(initializers, key); }
};

/// What `read_model` reads from an ONNX file.
struct model
{
    /// `ir_version`.
    std::int64_t ir_version = 0;
    /// The imported operator sets.
    std::vector<opset> opsets;
    /// `producer_name`.
    std::string producer_name;
    /// `producer_version`.
    std::string producer_version;
    /// The graph.
    onnx::graph graph;
};

namespace detail
{

using xcnn::detail::concat;

// Field numbers of onnx.proto (ONNX 1.12), by message.
namespace field
{
inline constexpr std::uint32_t model_ir_version = 1, model_producer_name = 2, model_producer_version = 3,
                               model_graph = 7, model_opset_import = 8;
inline constexpr std::uint32_t opset_domain = 1, opset_version = 2;
inline constexpr std::uint32_t graph_node = 1, graph_name = 2, graph_initializer = 5, graph_input = 11,
                               graph_output = 12;
inline constexpr std::uint32_t node_input = 1, node_output = 2, node_name = 3, node_op_type = 4, node_attribute = 5,
                               node_domain = 7;
inline constexpr std::uint32_t attr_name = 1, attr_f = 2, attr_i = 3, attr_s = 4, attr_t = 5, attr_floats = 7,
                               attr_ints = 8, attr_type = 20;
inline constexpr std::uint32_t value_name = 1, value_type = 2;
inline constexpr std::uint32_t type_tensor = 1, tensor_type_elem = 1, tensor_type_shape = 2;
inline constexpr std::uint32_t shape_dim = 1, dim_value = 1, dim_param = 2;
inline constexpr std::uint32_t tensor_dims = 1, tensor_data_type = 2, tensor_float_data = 4, tensor_int32_data = 5,
                               tensor_int64_data = 7, tensor_name = 8, tensor_raw_data = 9, tensor_double_data = 10,
                               tensor_data_location = 14;
} // namespace field

// ---- Writing -------------------------------------------------------------------------------------

/// The ONNX data type of `T`.
template <class T>
constexpr std::int32_t data_type_of()
{
    static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                  "xcnn::save_onnx: networks of float or double");
    return std::is_same<T, float>::value ? type_float : type_double;
}

/// An INT attribute.
inline protobuf::writer attr_int(const std::string& name, std::int64_t v)
{
    protobuf::writer a;
    a.string(field::attr_name, name);
    a.int64(field::attr_i, v);
    a.int64(field::attr_type, attribute_int);
    return a;
}

/// A FLOAT attribute.
inline protobuf::writer attr_float(const std::string& name, float v)
{
    protobuf::writer a;
    a.string(field::attr_name, name);
    a.float32(field::attr_f, v);
    a.int64(field::attr_type, attribute_float);
    return a;
}

/// An INTS attribute of the two values of `pair`, or of both twice (`twice`: ONNX pads list the
/// begins of every axis, then the ends).
inline protobuf::writer attr_ints(const std::string& name, const std::array<std::size_t, 2>& pair, bool twice = false)
{
    const auto a0 = static_cast<std::int64_t>(pair[0]), a1 = static_cast<std::int64_t>(pair[1]);
    const std::vector<std::int64_t> v =
        twice ? std::vector<std::int64_t>{a0, a1, a0, a1} : std::vector<std::int64_t>{a0, a1};
    protobuf::writer a;
    a.string(field::attr_name, name);
    a.repeated_int64(field::attr_ints, v); // proto2, not declared packed
    a.int64(field::attr_type, attribute_ints);
    return a;
}

/// A node as `save_onnx` collects it before writing the graph.
struct node_spec
{
    std::string op_type;
    std::string name;
    std::vector<std::string> inputs;
    std::vector<std::string> outputs;
    std::vector<protobuf::writer> attributes;
};

/// Collects the nodes and initializers of the graph `save_onnx` writes.
template <class T>
class graph_builder
{
public:
    /// Adds an initializer of `shape` holding `count` values from `data`; returns its name.
    std::string initializer(const std::string& name, const std::vector<std::size_t>& shape, const T* data,
                            std::size_t count)
    {
        protobuf::writer t;
        std::vector<std::int64_t> dims;
        for (const auto d : shape)
        {
            dims.push_back(static_cast<std::int64_t>(d));
        }
        t.repeated_int64(field::tensor_dims, dims); // proto2, not declared packed
        t.int64(field::tensor_data_type, data_type_of<T>());
        t.string(field::tensor_name, name);
        std::vector<unsigned char> raw(count * sizeof(T));
        for (std::size_t i = 0; i < count; ++i)
        {
            io::detail::store_scalar(raw.data() + i * sizeof(T), data[i], false);
        }
        t.bytes(field::tensor_raw_data, raw.data(), raw.size());
        m_initializers.push_back(std::move(t));
        return name;
    }
    /// Adds an initializer with the values and shape of an xtensor container.
    template <class E>
    std::string initializer(const std::string& name, const E& values)
    {
        return initializer(name, std::vector<std::size_t>(values.shape().begin(), values.shape().end()), values.data(),
                           values.size());
    }
    /// The name of a scalar constant of value `v`, added the first time it is asked for.
    std::string constant(const std::string& name, T v)
    {
        const std::string full = "const." + name;
        for (const auto& c : m_constants)
        {
            if (c == full)
            {
                return full;
            }
        }
        m_constants.push_back(full);
        return initializer(full, {}, &v, 1);
    }
    /// Adds a node; returns its (first) output's name.
    std::string add(node_spec n)
    {
        std::string out = n.outputs.front();
        m_nodes.push_back(std::move(n));
        return out;
    }

    /// The nodes so far.
    std::vector<node_spec>& nodes() noexcept { return m_nodes; }
    /// The encoded initializers.
    const std::vector<protobuf::writer>& initializers() const noexcept { return m_initializers; }

private:
    std::vector<node_spec> m_nodes;
    std::vector<protobuf::writer> m_initializers;
    std::vector<std::string> m_constants;
};

template <class>
struct is_sequential : std::false_type
{
};
template <class... L>
struct is_sequential<Sequential<L...>> : std::true_type
{
};
template <class>
struct is_residual : std::false_type
{
};
template <class M, class S>
struct is_residual<Residual<M, S>> : std::true_type
{
};

/// The path of a layer without the trailing dot: "" at the top becomes "net".
inline std::string node_name(const std::string& prefix)
{
    return prefix.empty() ? std::string("net") : prefix.substr(0, prefix.size() - 1);
}

/// The parameters and buffers of a layer, by their names relative to it ("0.weight",
/// "main.1.running_mean"): what `export_spec` reads the weights from.
template <class T>
class tensor_table
{
public:
    /// The parameters and buffers of `layer` (read only: the handles are not written through).
    template <class L>
    explicit tensor_table(const L& layer)
    {
        auto& mutable_layer = const_cast<L&>(layer); // `parameters()` is not const: its handles could write
        for (const auto& p : mutable_layer.parameters())
        {
            add_entry(p);
        }
        if constexpr (xcnn::detail::has_buffers<L, T>::value)
        {
            for (const auto& b : mutable_layer.buffers())
            {
                add_entry(b);
            }
        }
    }

    /// Adds the tensor named `name` as an initializer named `full_name`; returns that name.
    /// @throws value_error if the layer has no tensor of that name.
    std::string add(graph_builder<T>& g, const std::string& name, const std::string& full_name) const
    {
        for (const auto& e : m_entries)
        {
            if (e.name == name)
            {
                std::size_t count = 1;
                for (const auto d : e.shape)
                {
                    count *= d;
                }
                return g.initializer(full_name, e.shape, e.data, count);
            }
        }
        throw value_error(
            concat("save_onnx: the network has no tensor '", full_name, "' that its layer's description names"));
    }

private:
    struct entry
    {
        std::string name;
        std::vector<std::size_t> shape;
        const T* data;
    };
    template <class Handle>
    void add_entry(const Handle& h)
    {
        const auto shape = h.shape(); // by value: one copy for begin and end
        m_entries.push_back({h.name(), std::vector<std::size_t>(shape.begin(), shape.end()), h.data()});
    }
    std::vector<entry> m_entries;
};

/// Option `key` of `spec`, which the layer's own `spec()` always writes.
inline const std::vector<double>& spec_values(const layer_spec& spec, const char* key)
{
    const auto* values = spec.find(key);
    if (values == nullptr || values->empty())
    {
        throw value_error(concat("save_onnx: a ", spec.kind, " description has no option '", key, "'"));
    }
    return *values;
}

/// An INTS attribute from a (height, width) option of `spec`, both values twice for `pads`.
inline protobuf::writer attr_pair(const char* name, const layer_spec& spec, const char* key, bool twice = false)
{
    const auto& v = spec_values(spec, key);
    return attr_ints(name, {static_cast<std::size_t>(v.at(0)), static_cast<std::size_t>(v.at(v.size() - 1))}, twice);
}

/// Adds the nodes of the layer `spec` describes, whose tensors are `tensors`' entries named
/// "<rel><name>" and become initializers named "<prefix><name>", reading value `x`; returns the
/// name of the value it produces.
/// @throws value_error naming the layer if it has no ONNX form.
template <class T>
std::string export_spec(graph_builder<T>& g, const layer_spec& spec, const tensor_table<T>& tensors,
                        const std::string& rel, const std::string& prefix, const std::string& x)
{
    const std::string name = node_name(prefix);
    const std::string& kind = spec.kind;
    auto tensor = [&](const char* key)
    {
        return tensors.add(g, rel + key, prefix + key);
    };
    auto number = [&](const char* key)
    {
        return spec_values(spec, key).front();
    };
    if (kind == "Sequential")
    {
        std::string v = x;
        for (std::size_t i = 0; i < spec.children.size(); ++i)
        {
            const std::string index = std::to_string(i) + ".";
            v = export_spec(g, spec.children[i], tensors, rel + index, prefix + index, v);
        }
        return v;
    }
    if (kind == "Residual" && !spec.children.empty())
    {
        const std::string a = export_spec(g, spec.children[0], tensors, rel + "main.", prefix + "main.", x);
        const std::string b = spec.children.size() > 1 ? export_spec(g, spec.children[1], tensors, rel + "shortcut.",
                                                                     prefix + "shortcut.", x)
                                                       : x;
        return g.add({"Add", name, {a, b}, {name}, {}});
    }
    if (kind == "Conv2D")
    {
        node_spec n{"Conv", name, {x, tensor("weight")}, {name}, {}};
        if (number("bias") != 0)
        {
            n.inputs.push_back(tensor("bias"));
        }
        n.attributes.push_back(attr_pair("kernel_shape", spec, "kernel_size"));
        n.attributes.push_back(attr_pair("strides", spec, "stride"));
        n.attributes.push_back(attr_pair("pads", spec, "padding", true));
        n.attributes.push_back(attr_pair("dilations", spec, "dilation"));
        n.attributes.push_back(attr_int("group", static_cast<std::int64_t>(number("groups"))));
        return g.add(std::move(n));
    }
    if (kind == "Dense")
    {
        node_spec n{"Gemm", name, {x, tensor("weight"), tensor("bias")}, {name}, {}};
        n.attributes.push_back(attr_int("transB", 1));
        return g.add(std::move(n));
    }
    if (kind == "BatchNorm2D" || kind == "BatchNorm1D")
    {
        node_spec n{"BatchNormalization",
                    name,
                    {x, tensor("weight"), tensor("bias"), tensor("running_mean"), tensor("running_var")},
                    {name},
                    {}};
        n.attributes.push_back(attr_float("epsilon", static_cast<float>(number("eps"))));
        // ONNX weighs the running value by momentum, PyTorch and xcnn the batch's.
        n.attributes.push_back(attr_float("momentum", static_cast<float>(1.0 - number("momentum"))));
        return g.add(std::move(n));
    }
    if (kind == "MaxPool2D" || kind == "AvgPool2D")
    {
        const bool max = kind == "MaxPool2D";
        node_spec n{max ? "MaxPool" : "AveragePool", name, {x}, {name}, {}};
        n.attributes.push_back(attr_pair("kernel_shape", spec, "kernel_size"));
        n.attributes.push_back(attr_pair("strides", spec, "stride"));
        n.attributes.push_back(attr_pair("pads", spec, "padding", true));
        if (!max)
        {
            n.attributes.push_back(attr_int("count_include_pad", 1));
        }
        return g.add(std::move(n));
    }
    if (kind == "GlobalAvgPool2D")
    {
        const std::string pooled = g.add({"GlobalAveragePool", name + "/pool", {x}, {name + "/pool"}, {}});
        node_spec n{"Flatten", name, {pooled}, {name}, {}};
        n.attributes.push_back(attr_int("axis", 1));
        return g.add(std::move(n));
    }
    if (kind == "Flatten")
    {
        node_spec n{"Flatten", name, {x}, {name}, {}};
        n.attributes.push_back(attr_int("axis", 1));
        return g.add(std::move(n));
    }
    if (kind == "ReLU" || kind == "Sigmoid" || kind == "Tanh")
    {
        return g.add({kind == "ReLU" ? "Relu" : kind, name, {x}, {name}, {}});
    }
    if (kind == "LeakyReLU")
    {
        node_spec n{"LeakyRelu", name, {x}, {name}, {}};
        n.attributes.push_back(attr_float("alpha", static_cast<float>(number("negative_slope"))));
        return g.add(std::move(n));
    }
    if (kind == "GELU")
    {
        // Opset 13 has no Gelu (it came in opset 20): the erf form, as torch.onnx exports it.
        const std::string sqrt2 = g.constant("sqrt2", std::sqrt(T(2)));
        const std::string one = g.constant("one", T(1));
        const std::string half = g.constant("half", T(0.5));
        const std::string d = g.add({"Div", name + "/div", {x, sqrt2}, {name + "/div"}, {}});
        const std::string e = g.add({"Erf", name + "/erf", {d}, {name + "/erf"}, {}});
        const std::string a = g.add({"Add", name + "/add", {e, one}, {name + "/add"}, {}});
        const std::string m = g.add({"Mul", name + "/mul", {x, a}, {name + "/mul"}, {}});
        return g.add({"Mul", name, {m, half}, {name}, {}});
    }
    if (kind == "Dropout")
    {
        return x; // the identity at inference
    }
    throw value_error(concat("save_onnx: layer ", prefix.empty() ? std::string("(the network)") : name, ", ", kind,
                             ", has no ONNX form (docs/onnx.md lists the layers that have one)"));
}

template <class>
struct is_network : std::false_type
{
};
template <class T, int I, int O>
struct is_network<Network<T, I, O>> : std::true_type
{
};

/// Adds the nodes of `layer`, whose parameters are named "<prefix><name>", reading value `x`;
/// returns the name of the value it produces. A layer that describes itself (`spec()`) is
/// exported from its description; a `Sequential` or `Residual` holding a layer that does not is
/// walked here, so the error names that layer.
/// @throws value_error naming the layer if it has no ONNX form.
template <class T, class L>
std::string export_layer(graph_builder<T>& g, const L& layer, const std::string& prefix, const std::string& x)
{
    if constexpr (xcnn::detail::has_spec<L>::value && !is_network<L>::value)
    {
        return export_spec(g, layer.spec(), tensor_table<T>(layer), "", prefix, x);
    }
    else if constexpr (is_network<L>::value)
    {
        // Layer by layer: a layer without a description is named by its index, as in a Sequential.
        std::string v = x;
        auto parameters = tensor_table<T>(layer);
        layer.for_each_layer(
            [&](std::size_t index, const auto& inner)
            {
                const std::string at = concat(index, ".");
                layer_spec spec;
                try
                {
                    spec = inner.spec();
                }
                catch (const value_error&)
                {
                    throw value_error(concat("save_onnx: layer ", node_name(prefix + at), ", ", inner.name(),
                                             ", has no ONNX form (docs/onnx.md lists the layers that have one)"));
                }
                v = export_spec(g, spec, parameters, at, prefix + at, v);
            });
        return v;
    }
    else if constexpr (is_sequential<L>::value)
    {
        std::string v = x;
        layer.for_each_layer([&](std::size_t index, const auto& inner)
                             { v = export_layer(g, inner, concat(prefix, index, "."), v); });
        return v;
    }
    else if constexpr (is_residual<L>::value)
    {
        const std::string a = export_layer(g, layer.main(), prefix + "main.", x);
        std::string b = x;
        if constexpr (L::has_shortcut)
        {
            b = export_layer(g, layer.shortcut(), prefix + "shortcut.", x);
        }
        const std::string name = node_name(prefix);
        return g.add({"Add", name, {a, b}, {name}, {}});
    }
    else
    {
        (void)g;
        (void)x;
        throw value_error(concat("save_onnx: layer ", prefix.empty() ? std::string("(the network)") : node_name(prefix),
                                 ", ", layer.name(),
                                 ", has no ONNX form (docs/onnx.md lists the layers that have one)"));
    }
}

/// A ValueInfoProto of element type `type` and shape `shape`, its first dimension symbolic "N".
inline protobuf::writer value_info_of(const std::string& name, std::int32_t type, const std::vector<std::size_t>& shape)
{
    protobuf::writer dims;
    for (std::size_t i = 0; i < shape.size(); ++i)
    {
        protobuf::writer dim;
        if (i == 0)
        {
            dim.string(field::dim_param, "N");
        }
        else
        {
            dim.int64(field::dim_value, static_cast<std::int64_t>(shape[i]));
        }
        dims.message(field::shape_dim, dim);
    }
    protobuf::writer tensor_type;
    tensor_type.int64(field::tensor_type_elem, type);
    tensor_type.message(field::tensor_type_shape, dims);
    protobuf::writer type_proto;
    type_proto.message(field::type_tensor, tensor_type);
    protobuf::writer v;
    v.string(field::value_name, name);
    v.message(field::value_type, type_proto);
    return v;
}

// ---- Reading -------------------------------------------------------------------------------------

/// Reads a TensorProto; checks that the data holds exactly the elements its dims say.
inline tensor read_tensor(protobuf::reader r)
{
    tensor t;
    protobuf::byte_view raw;
    bool has_raw = false;
    std::vector<std::uint32_t> float_bits;
    std::vector<std::uint64_t> double_bits;
    std::vector<std::int64_t> int32s;
    std::int64_t location = 0;
    while (r.next())
    {
        switch (r.field())
        {
        case field::tensor_dims:
            r.append_int64(t.dims);
            break;
        case field::tensor_data_type:
            t.type = r.int32();
            break;
        case field::tensor_name:
            t.name = r.string();
            break;
        case field::tensor_raw_data:
            raw = r.bytes();
            has_raw = true;
            break;
        case field::tensor_float_data:
            r.append_fixed<32>(float_bits);
            break;
        case field::tensor_double_data:
            r.append_fixed<64>(double_bits);
            break;
        case field::tensor_int64_data:
            r.append_int64(t.int64s);
            break;
        case field::tensor_int32_data:
            r.append_int64(int32s);
            break;
        case field::tensor_data_location:
            location = r.int64();
            break;
        default:
            r.skip();
        }
    }
    const std::string what = concat("tensor '", t.name, "'");
    auto fail = [&](const std::string& message)
    {
        r.fail_message(concat(what, ": ", message));
    };
    if (location != 0)
    {
        fail("its data is stored outside the file (external data), which xcnn does not read");
    }
    for (const auto d : t.dims)
    {
        if (d < 0)
        {
            fail(concat("has a negative dimension, ", xcnn::detail::shape_to_string(t.dims)));
        }
    }
    std::size_t width = 0;
    switch (t.type)
    {
    case type_float:
        width = 4;
        break;
    case type_double:
        width = 8;
        break;
    case type_int64:
        width = 8;
        break;
    default:
        fail(concat("has data type ", t.type, "; xcnn reads FLOAT (1), DOUBLE (11) and INT64 (7)"));
    }
    std::size_t elements = 0, bytes = 0;
    if (!io::detail::checked_extent(t.dims, width, elements, bytes))
    {
        fail(concat("shape ", xcnn::detail::shape_to_string(t.dims), " is too large"));
    }
    const std::size_t typed = t.type == type_float    ? float_bits.size()
                              : t.type == type_double ? double_bits.size()
                                                      : t.int64s.size();
    const std::size_t others = float_bits.size() + double_bits.size() + t.int64s.size() + int32s.size() - typed;
    if (others != 0)
    {
        fail("holds values in a field of another data type");
    }
    if (has_raw && typed != 0)
    {
        fail("holds its values both in raw_data and in a typed field");
    }
    const std::size_t present = has_raw ? raw.size / width : typed;
    if ((has_raw && raw.size != bytes) || (!has_raw && present != elements))
    {
        fail(concat("shape ", xcnn::detail::shape_to_string(t.dims), " needs ", elements, " values but the file holds ",
                    has_raw ? concat(raw.size, " bytes of raw_data") : concat(present)));
    }
    if (t.type == type_float)
    {
        t.floats.resize(elements);
        for (std::size_t i = 0; i < elements; ++i)
        {
            const std::uint32_t bits = has_raw ? io::detail::load_le<std::uint32_t>(raw.data + 4 * i) : float_bits[i];
            std::memcpy(&t.floats[i], &bits, 4);
        }
    }
    else if (t.type == type_double)
    {
        t.doubles.resize(elements);
        for (std::size_t i = 0; i < elements; ++i)
        {
            const std::uint64_t bits = has_raw ? io::detail::load_le<std::uint64_t>(raw.data + 8 * i) : double_bits[i];
            std::memcpy(&t.doubles[i], &bits, 8);
        }
    }
    else if (has_raw)
    {
        t.int64s.resize(elements);
        for (std::size_t i = 0; i < elements; ++i)
        {
            t.int64s[i] = static_cast<std::int64_t>(io::detail::load_le<std::uint64_t>(raw.data + 8 * i));
        }
    }
    return t;
}

/// Reads an AttributeProto.
inline attribute read_attribute(protobuf::reader r)
{
    attribute a;
    std::vector<std::uint32_t> float_bits;
    while (r.next())
    {
        switch (r.field())
        {
        case field::attr_name:
            a.name = r.string();
            break;
        case field::attr_type:
            a.type = r.int32();
            break;
        case field::attr_f:
            a.f = r.float32();
            break;
        case field::attr_i:
            a.i = r.int64();
            break;
        case field::attr_s:
            a.s = r.string();
            break;
        case field::attr_t:
            a.t.clear();
            a.t.push_back(read_tensor(r.message("t")));
            break;
        case field::attr_floats:
            r.append_fixed<32>(float_bits);
            break;
        case field::attr_ints:
            r.append_int64(a.ints);
            break;
        default:
            r.skip();
        }
    }
    a.floats.resize(float_bits.size());
    for (std::size_t i = 0; i < float_bits.size(); ++i)
    {
        std::memcpy(&a.floats[i], &float_bits[i], 4);
    }
    if (a.type == attribute_tensor && a.t.empty())
    {
        r.fail_message(concat("attribute '", a.name, "' is of type TENSOR but holds no tensor"));
    }
    return a;
}

/// Reads a NodeProto.
inline node read_node(protobuf::reader r)
{
    node n;
    while (r.next())
    {
        switch (r.field())
        {
        case field::node_input:
            n.inputs.push_back(r.string());
            break;
        case field::node_output:
            n.outputs.push_back(r.string());
            break;
        case field::node_name:
            n.name = r.string();
            break;
        case field::node_op_type:
            n.op_type = r.string();
            break;
        case field::node_domain:
            n.domain = r.string();
            break;
        case field::node_attribute:
            n.attributes.push_back(read_attribute(r.message("attribute")));
            break;
        default:
            r.skip();
        }
    }
    if (n.op_type.empty())
    {
        r.fail_message(concat("node '", n.name, "' has no op_type"));
    }
    return n;
}

/// Reads a ValueInfoProto (a tensor type; other types leave the element type 0 and no dims).
inline value_info read_value_info(protobuf::reader r)
{
    value_info v;
    while (r.next())
    {
        if (r.field() == field::value_name)
        {
            v.name = r.string();
        }
        else if (r.field() == field::value_type)
        {
            protobuf::reader type = r.message("type");
            while (type.next())
            {
                if (type.field() != field::type_tensor)
                {
                    type.skip();
                    continue;
                }
                protobuf::reader tensor_type = type.message("tensor_type");
                while (tensor_type.next())
                {
                    if (tensor_type.field() == field::tensor_type_elem)
                    {
                        v.elem_type = tensor_type.int32();
                    }
                    else if (tensor_type.field() == field::tensor_type_shape)
                    {
                        protobuf::reader shape = tensor_type.message("shape");
                        while (shape.next())
                        {
                            if (shape.field() != field::shape_dim)
                            {
                                shape.skip();
                                continue;
                            }
                            protobuf::reader dim = shape.message("dim");
                            std::int64_t value = -1;
                            std::string param;
                            while (dim.next())
                            {
                                if (dim.field() == field::dim_value)
                                {
                                    value = dim.int64();
                                }
                                else if (dim.field() == field::dim_param)
                                {
                                    param = dim.string();
                                }
                                else
                                {
                                    dim.skip();
                                }
                            }
                            v.dims.push_back(value);
                            v.dim_params.push_back(std::move(param));
                        }
                    }
                    else
                    {
                        tensor_type.skip();
                    }
                }
            }
        }
        else
        {
            r.skip();
        }
    }
    return v;
}

/// Reads a GraphProto.
inline graph read_graph(protobuf::reader r)
{
    graph g;
    while (r.next())
    {
        switch (r.field())
        {
        case field::graph_node:
            g.nodes.push_back(read_node(r.message("node")));
            break;
        case field::graph_name:
            g.name = r.string();
            break;
        case field::graph_initializer:
            g.initializers.push_back(read_tensor(r.message("initializer")));
            break;
        case field::graph_input:
            g.inputs.push_back(read_value_info(r.message("input")));
            break;
        case field::graph_output:
            g.outputs.push_back(read_value_info(r.message("output")));
            break;
        default:
            r.skip();
        }
    }
    return g;
}

} // namespace detail

/// The model in the `size` bytes at `data`; `source` names it in errors.
/// @throws format_error naming the source, the message path, the field and the byte offset for
/// anything malformed: truncated data, a wrong wire type, a length larger than what remains,
/// messages nested too deep, a tensor whose data does not match its shape or whose type is not
/// FLOAT, DOUBLE or INT64, a node without op_type, a file without a graph or without opset_import.
inline model parse_model(const unsigned char* data, std::size_t size, const std::string& source = "<onnx>")
{
    protobuf::reader r(data, size, source, "ModelProto");
    model m;
    bool has_graph = false;
    while (r.next())
    {
        switch (r.field())
        {
        case detail::field::model_ir_version:
            m.ir_version = r.int64();
            break;
        case detail::field::model_producer_name:
            m.producer_name = r.string();
            break;
        case detail::field::model_producer_version:
            m.producer_version = r.string();
            break;
        case detail::field::model_opset_import:
        {
            protobuf::reader o = r.message("opset_import");
            opset set;
            while (o.next())
            {
                if (o.field() == detail::field::opset_domain)
                {
                    set.domain = o.string();
                }
                else if (o.field() == detail::field::opset_version)
                {
                    set.version = o.int64();
                }
                else
                {
                    o.skip();
                }
            }
            m.opsets.push_back(std::move(set));
            break;
        }
        case detail::field::model_graph:
            m.graph = detail::read_graph(r.message("graph"));
            has_graph = true;
            break;
        default:
            r.skip();
        }
    }
    if (!has_graph)
    {
        throw format_error(detail::concat(source, ": ModelProto has no graph (field 7): not an ONNX model"));
    }
    if (m.opsets.empty())
    {
        throw format_error(detail::concat(source, ": ModelProto imports no operator set (field 8), which ONNX "
                                                  "requires since IR version 3"));
    }
    return m;
}

/// The model in the ONNX file at `path` (see `parse_model`).
/// @throws io_error if the file cannot be read; format_error as `parse_model`.
inline model read_model(const std::string& path)
{
    const std::vector<unsigned char> bytes = io::detail::read_file_bytes(path, "read_model");
    return parse_model(bytes.data(), bytes.size(), "'" + path + "'");
}

/// The ONNX model of `net` for inputs of shape `input_shape` (its batch dimension written as
/// the symbolic "N", so any batch size runs), as bytes.
/// @throws value_error naming the first layer that has no ONNX form; shape_error if the network
/// cannot take an input of `input_shape`.
template <class Net>
std::vector<unsigned char> to_bytes(const Net& net, const std::vector<std::size_t>& input_shape)
{
    using T = typename Net::value_type;
    if (Net::input_rank != any_rank && input_shape.size() != static_cast<std::size_t>(Net::input_rank))
    {
        throw shape_error(detail::concat("save_onnx: the network takes rank-", Net::input_rank,
                                         " inputs but input_shape is ", xcnn::detail::shape_to_string(input_shape)));
    }
    if (input_shape.empty())
    {
        throw shape_error("save_onnx: input_shape must have a batch dimension");
    }
    const std::vector<std::size_t> output_shape = net.output_shape(input_shape);
    detail::graph_builder<T> g;
    std::string out = detail::export_layer(g, net, "", "input");
    if (out == "input") // nothing but Dropout: ONNX needs a node to name the output
    {
        out = g.add({"Identity", "identity", {out}, {"identity"}, {}});
    }
    protobuf::writer graph;
    for (auto& n : g.nodes())
    {
        for (auto& o : n.outputs)
        {
            o = o == out ? std::string("output") : o;
        }
        protobuf::writer w;
        for (const auto& i : n.inputs)
        {
            w.string(detail::field::node_input, i);
        }
        for (const auto& o : n.outputs)
        {
            w.string(detail::field::node_output, o);
        }
        w.string(detail::field::node_name, n.name);
        w.string(detail::field::node_op_type, n.op_type);
        for (const auto& a : n.attributes)
        {
            w.message(detail::field::node_attribute, a);
        }
        graph.message(detail::field::graph_node, w);
    }
    graph.string(detail::field::graph_name, "xcnn");
    for (const auto& t : g.initializers())
    {
        graph.message(detail::field::graph_initializer, t);
    }
    graph.message(detail::field::graph_input, detail::value_info_of("input", detail::data_type_of<T>(), input_shape));
    graph.message(detail::field::graph_output,
                  detail::value_info_of("output", detail::data_type_of<T>(), output_shape));

    protobuf::writer model;
    model.int64(detail::field::model_ir_version, export_ir_version);
    model.string(detail::field::model_producer_name, "xcnn");
    model.string(detail::field::model_producer_version,
                 detail::concat(XCNN_VERSION_MAJOR, ".", XCNN_VERSION_MINOR, ".", XCNN_VERSION_PATCH));
    model.message(detail::field::model_graph, graph);
    protobuf::writer set;
    set.string(detail::field::opset_domain, "");
    set.int64(detail::field::opset_version, export_opset);
    model.message(detail::field::model_opset_import, set);
    return model.release();
}

} // namespace onnx

/// Writes `net` (a `Sequential` or a `Network`, possibly with nested networks and `Residual` blocks) to
/// `path` as an ONNX model of opset 13 for inputs of shape `input_shape`, e.g. {1, 1, 28, 28};
/// the file's batch dimension is the symbolic "N", so ONNX Runtime runs any batch size. The
/// network runs as `predict` does: BatchNorm with its running statistics, Dropout left out.
/// The file is replaced atomically (a temporary file renamed over it); on any error the old
/// file is left as it was.
/// @throws value_error naming the first layer that has no ONNX form; shape_error if the network
/// cannot take an input of `input_shape`; io_error if the file cannot be written.
template <class Net>
void save_onnx(const Net& net, const std::string& path, const std::vector<std::size_t>& input_shape)
{
    const std::vector<unsigned char> bytes = onnx::to_bytes(net, input_shape);
    io::detail::write_file_atomically(path, bytes.data(), bytes.size(), "save_onnx");
}

} // namespace xcnn

#endif // XCNN_IO_ONNX_HPP
