/// @file
/// ONNX import: the graph of an ONNX model (what `torch.onnx.export` writes for the layers xcnn
/// has, and what `save_onnx` writes) as a `layer_spec` tree and the weights, named like the
/// `state_dict` keys of the network that spec builds.
///
/// `onnx::import_graph(model)` does the conversion and needs no network type; `load_onnx`
/// builds the network from its result (see the end of this file).
///
/// The conversion follows the values from the graph's input to its output:
/// - a value that two nodes read starts a residual fork: both branches are followed until they
///   meet at an Add, which becomes `Residual(main, shortcut)` (`Residual(main)` when one branch is
///   empty); forks nest;
/// - Conv, Gemm, MatMul (with the Add of its bias), BatchNormalization, Relu, LeakyRelu, Sigmoid,
///   Tanh, MaxPool, AveragePool (with the Pad PyTorch puts before it), GlobalAveragePool or
///   ReduceMean over (H, W), Flatten, Reshape to (N, -1) (also as the Shape, Gather, Unsqueeze,
///   Concat chain of `x.view(x.size(0), -1)`), the erf form of GELU, Identity and Dropout become
///   layers or nothing;
/// - weights come from initializers, Constant nodes and Identity nodes of either.
///
/// Anything else is a `format_error` naming the node, its operator and, for an attribute, the
/// attribute. docs/onnx.md has the table.
#ifndef XCNN_IO_ONNX_IMPORT_HPP
#define XCNN_IO_ONNX_IMPORT_HPP

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/layer_spec.hpp"
#include "../network/network.hpp"
#include "../network/registry.hpp"
#include "onnx.hpp"

namespace xcnn
{
namespace onnx
{

/// A weight of an imported network: a parameter or buffer and where the file had it.
struct imported_tensor
{
    /// The `state_dict` key of the built network ("4.main.0.weight").
    std::string key;
    /// Its shape.
    std::vector<std::size_t> shape;
    /// Its values, row-major; doubles hold every float and double of the file exactly.
    std::vector<double> values;
    /// The node and initializer it came from, for messages.
    std::string origin;
};

/// What `import_graph` makes of a model: the network's structure, its weights and its input.
struct imported_network
{
    /// A "Sequential" spec whose children are the layers, in order.
    layer_spec spec;
    /// Every parameter and buffer the built network has, except BatchNorm's
    /// `num_batches_tracked` (ONNX has no such value; it stays 0).
    std::vector<imported_tensor> weights;
    /// The graph input's dimensions, -1 where the file leaves them symbolic (the batch).
    std::vector<std::int64_t> input_dims;
    /// The graph input's name.
    std::string input_name;
    /// The graph output's dimensions as the conversion computed them, -1 where unknown.
    std::vector<std::int64_t> output_dims;
};

namespace detail
{

/// The shortest decimal that names the float `f`, as a double: `LeakyReLU(0.1)` exported as the
/// float 0.1f comes back as the double 0.1, which is what both PyTorch and a `double` network
/// meant, and rounds to 0.1f again in a `float` network.
inline double decimal_of(float f)
{
    if (!std::isfinite(f))
    {
        return static_cast<double>(f);
    }
    char text[64];
    const auto written = std::to_chars(text, text + sizeof(text), f);
    double d = static_cast<double>(f);
    if (written.ec == std::errc())
    {
        const auto parsed = std::from_chars(text, written.ptr, d);
        if (parsed.ec != std::errc())
        {
            d = static_cast<double>(f);
        }
    }
    return d;
}

/// `1 - m` for a momentum `m` read as `decimal_of`, rounded to the decimals `m` has: ONNX's 0.9
/// becomes xcnn's (and PyTorch's) 0.1, not 0.09999999999999998.
inline double one_minus_decimal(double m)
{
    for (int digits = 0; digits <= 12; ++digits)
    {
        const double scale = std::pow(10.0, digits);
        if (std::nearbyint(m * scale) / scale == m)
        {
            return std::nearbyint((1.0 - m) * scale) / scale;
        }
    }
    return 1.0 - m;
}

/// An element of a shape computed inside the graph (`x.size(0)`): a number, the batch size,
/// or something the importer does not know.
struct shape_element
{
    /// What the element is.
    enum kind_type
    {
        known,
        batch,
        unknown
    } kind = unknown;
    /// The number, for `known`.
    std::int64_t value = 0;
};

/// The state of a value while the graph is followed: its dims (batch first, -1 where unknown)
/// and whether it is the (N, C, 1, 1) of a global pool that xcnn holds as (N, C).
struct value_state
{
    /// Batch first; -1 where not known.
    std::vector<std::int64_t> dims;
    /// A GlobalAveragePool's output, still rank 4 in ONNX, already (N, C) in xcnn.
    bool squeezed = false;
};

/// A layer while the graph is converted: its spec without children, its weights under local
/// names ("weight"), its inner layers.
struct converted_layer
{
    layer_spec spec;
    std::vector<imported_tensor> weights;
    std::vector<converted_layer> children;
};

/// How a branch of the graph ended.
struct branch
{
    std::vector<converted_layer> layers;
    std::string end;
    value_state state;
    /// The Add that ends it, or `none`.
    std::size_t join;
};

/// Converts one graph (see the file comment).
class graph_converter
{
public:
    /// No node.
    static constexpr std::size_t none = static_cast<std::size_t>(-1);
    /// Residual blocks nest at most this deep (a fuzzed file must not exhaust the stack).
    static constexpr std::size_t max_depth = 64;
    /// Kernel sizes, strides, paddings and dilations from attributes are at most this.
    static constexpr std::int64_t max_attribute_extent = std::int64_t(1) << 24;

    /// A converter for `m`; `source` names the file in messages.
    graph_converter(const model& m, std::string source) : m_graph(m.graph), m_source(std::move(source))
    {
        for (const auto& o : m.opsets)
        {
            if (o.domain.empty() || o.domain == "ai.onnx")
            {
                m_opset = o.version;
            }
        }
    }

    /// The network for inputs of rank `input_rank` and outputs of rank `output_rank`.
    imported_network run(std::size_t input_rank, std::size_t output_rank)
    {
        if (m_opset < 9 || m_opset > 21)
        {
            fail_graph(concat("imports opset ", m_opset, " of the default domain; xcnn imports opsets 9 to 21"));
        }
        index_graph();
        imported_network result;
        const value_info* input = nullptr;
        for (const auto& v : m_graph.inputs)
        {
            if (m_constants.count(v.name) == 0)
            {
                if (input != nullptr)
                {
                    fail_graph(concat("has two inputs that are not initializers, '", input->name, "' and '", v.name,
                                      "'; xcnn networks take one"));
                }
                input = &v;
            }
        }
        if (input == nullptr)
        {
            fail_graph("has no input that is not an initializer");
        }
        if (m_graph.outputs.size() != 1)
        {
            fail_graph(concat("has ", m_graph.outputs.size(), " outputs; xcnn networks have one"));
        }
        if (input->elem_type != type_undefined && input->elem_type != type_float && input->elem_type != type_double)
        {
            fail_graph(concat("input '", input->name, "' has element type ", input->elem_type,
                              "; xcnn reads FLOAT (1) and DOUBLE (11) models"));
        }
        value_state start;
        start.dims = input->dims;
        if (start.dims.empty())
        {
            start.dims.assign(input_rank, -1); // no shape in the file: trust the caller's rank
        }
        if (start.dims.size() != input_rank)
        {
            fail_graph(concat("input '", input->name, "' has rank ", start.dims.size(), " (",
                              xcnn::detail::shape_to_string(start.dims), "); this network takes rank ", input_rank));
        }
        start.dims[0] = -1;
        result.input_dims = start.dims;
        result.input_name = input->name;
        m_states[input->name] = start;

        branch top = follow(input->name, start, none, 0);
        const std::string& output = m_graph.outputs.front().name;
        if (top.join != none)
        {
            fail_node(top.join, concat("adds '", top.end,
                                       "' to a value that does not branch off from the same value before it: "
                                       "xcnn's Residual adds two branches of one input"));
        }
        if (top.end != output)
        {
            fail_graph(concat("output '", output, "' is not reached from input '", input->name,
                              "' (the path through the graph ends at '", top.end, "')"));
        }
        if (top.layers.empty())
        {
            fail_graph(concat("has no operator between input '", input->name, "' and output '", output, "'"));
        }
        if (top.state.squeezed)
        {
            fail_graph(concat("output '", output,
                              "' is a GlobalAveragePool's (N, C, 1, 1) without a Flatten; xcnn's GlobalAvgPool2D "
                              "returns (N, C)"));
        }
        if (top.state.dims.size() != output_rank)
        {
            fail_graph(concat("output '", output, "' has rank ", top.state.dims.size(), "; this network returns rank ",
                              output_rank));
        }
        result.output_dims = top.state.dims;
        converted_layer root{layer_spec{"Sequential", {}, {}}, {}, std::move(top.layers)};
        result.spec = assemble(root, "", result.weights);
        return result;
    }

private:
    // ---- Messages --------------------------------------------------------------------------

    std::string node_label(std::size_t n) const
    {
        const node& nd = m_graph.nodes[n];
        return nd.name.empty() ? concat("node #", n, " (", nd.op_type, ")")
                               : concat("node '", nd.name, "' (", nd.op_type, ")");
    }
    [[noreturn]] void fail_node(std::size_t n, const std::string& message) const
    {
        throw format_error(concat(m_source, ": ", node_label(n), ": ", message));
    }
    [[noreturn]] void fail_graph(const std::string& message) const
    {
        throw format_error(concat(m_source, ": the graph ", message));
    }

    // ---- Indexing --------------------------------------------------------------------------

    /// Records constants, producers, data values and the nodes that read each data value.
    void index_graph()
    {
        for (const auto& t : m_graph.initializers)
        {
            m_constants[t.name] = &t;
        }
        std::set<std::string> data;
        for (const auto& v : m_graph.inputs)
        {
            if (m_constants.count(v.name) == 0)
            {
                data.insert(v.name);
            }
        }
        for (std::size_t n = 0; n < m_graph.nodes.size(); ++n)
        {
            const node& nd = m_graph.nodes[n];
            if (!nd.domain.empty() && nd.domain != "ai.onnx")
            {
                fail_node(n, concat("is of domain '", nd.domain, "'; xcnn imports operators of the default domain"));
            }
            for (const auto& i : nd.inputs)
            {
                if (!i.empty() && m_constants.count(i) == 0 && m_producer.count(i) == 0 && data.count(i) == 0)
                {
                    fail_node(n, concat("reads '", i,
                                        "', which no earlier node, initializer or graph input provides (ONNX nodes "
                                        "come in topological order)"));
                }
                m_read.insert(i);
            }
            for (const auto& o : nd.outputs)
            {
                if (o.empty())
                {
                    continue;
                }
                if (m_producer.count(o) != 0 || m_constants.count(o) != 0 || data.count(o) != 0)
                {
                    fail_node(n, concat("writes '", o, "', which is already defined"));
                }
                m_producer[o] = n;
            }
            if (nd.op_type == "Constant" && nd.outputs.size() == 1)
            {
                add_constant_node(n);
                continue;
            }
            if (nd.op_type == "Identity" && nd.inputs.size() == 1 && nd.outputs.size() == 1 &&
                m_constants.count(nd.inputs[0]) != 0)
            {
                m_constants[nd.outputs[0]] = m_constants[nd.inputs[0]];
                continue;
            }
            bool reads_data = false;
            for (const auto& i : nd.inputs)
            {
                reads_data = reads_data || data.count(i) != 0;
            }
            if (nd.op_type == "Shape")
            {
                m_shape_read.insert(nd.inputs.begin(), nd.inputs.end());
            }
            if (!reads_data || nd.op_type == "Shape")
            {
                continue; // a shape computation, evaluated when a Reshape asks for it
            }
            for (const auto& o : nd.outputs)
            {
                data.insert(o);
            }
            for (const auto& i : nd.inputs)
            {
                if (data.count(i) != 0)
                {
                    m_consumers[i].push_back(n);
                }
            }
        }
        for (const auto& o : m_graph.outputs)
        {
            m_read.insert(o.name);
        }
    }

    /// A Constant node's tensor, from `value` or one of the scalar and list forms of opset 12.
    void add_constant_node(std::size_t n)
    {
        const node& nd = m_graph.nodes[n];
        if (nd.attributes.size() != 1)
        {
            fail_node(n, concat("has ", nd.attributes.size(), " attributes; a Constant has one"));
        }
        const attribute& a = nd.attributes.front();
        tensor t;
        t.name = nd.outputs[0];
        if (a.name == "value" && a.type == attribute_tensor && a.t.size() == 1)
        {
            t = a.t.front();
            t.name = nd.outputs[0];
        }
        else if (a.name == "value_float" && a.type == attribute_float)
        {
            t.type = type_float;
            t.floats = {a.f};
        }
        else if (a.name == "value_floats" && a.type == attribute_floats)
        {
            t.type = type_float;
            t.floats = a.floats;
            t.dims = {static_cast<std::int64_t>(a.floats.size())};
        }
        else if (a.name == "value_int" && a.type == attribute_int)
        {
            t.type = type_int64;
            t.int64s = {a.i};
        }
        else if (a.name == "value_ints" && a.type == attribute_ints)
        {
            t.type = type_int64;
            t.int64s = a.ints;
            t.dims = {static_cast<std::int64_t>(a.ints.size())};
        }
        else
        {
            fail_node(n, concat("attribute '", a.name,
                                "' is not supported (xcnn reads value, value_float, "
                                "value_floats, value_int and value_ints)"));
        }
        m_owned.push_back(std::move(t));
        m_constants[nd.outputs[0]] = &m_owned.back();
    }

    // ---- Attributes and constant inputs ----------------------------------------------------

    /// Fails unless every attribute of node `n` is one of `allowed`.
    void allow_attributes(std::size_t n, std::initializer_list<const char*> allowed) const
    {
        for (const auto& a : m_graph.nodes[n].attributes)
        {
            if (std::none_of(allowed.begin(), allowed.end(), [&](const char* k) { return a.name == k; }))
            {
                fail_node(n, concat("attribute '", a.name, "' is not supported"));
            }
        }
    }
    const attribute* find_attribute(std::size_t n, const char* key, std::int32_t type) const
    {
        const attribute* a = m_graph.nodes[n].find(key);
        if (a != nullptr && a->type != type && a->type != attribute_undefined)
        {
            fail_node(n, concat("attribute '", key, "' has type ", a->type, ", expected ", type));
        }
        return a;
    }
    std::int64_t int_attribute(std::size_t n, const char* key, std::int64_t fallback) const
    {
        const attribute* a = find_attribute(n, key, attribute_int);
        return a == nullptr ? fallback : a->i;
    }
    double float_attribute(std::size_t n, const char* key, double fallback) const
    {
        const attribute* a = find_attribute(n, key, attribute_float);
        return a == nullptr ? fallback : decimal_of(a->f);
    }
    /// An INTS attribute of `count` values (`fallback` when absent), each in [minimum, max_attribute_extent].
    std::vector<std::int64_t> ints_attribute(std::size_t n, const char* key, std::size_t count,
                                             std::vector<std::int64_t> fallback, std::int64_t minimum) const
    {
        const attribute* a = find_attribute(n, key, attribute_ints);
        std::vector<std::int64_t> v = a == nullptr ? std::move(fallback) : a->ints;
        if (v.size() != count)
        {
            fail_node(n, concat("attribute '", key, "' has ", v.size(), " values ", xcnn::detail::shape_to_string(v),
                                "; xcnn's 2-d layers need ", count));
        }
        for (const auto x : v)
        {
            if (x < minimum || x > max_attribute_extent)
            {
                fail_node(n, concat("attribute '", key, "' ", xcnn::detail::shape_to_string(v),
                                    " has a value outside [", minimum, ", ", max_attribute_extent, "]"));
            }
        }
        return v;
    }
    /// Fails unless attribute `key` is absent or the string `expected`.
    void require_string(std::size_t n, const char* key, const char* expected) const
    {
        const attribute* a = find_attribute(n, key, attribute_string);
        if (a != nullptr && a->s != expected)
        {
            fail_node(n, concat("attribute '", key, "' = '", a->s, "' is not supported (only '", expected, "')"));
        }
    }
    /// Fails unless INT attribute `key` is absent or `expected`.
    void require_int(std::size_t n, const char* key, std::int64_t expected, const char* why) const
    {
        const std::int64_t v = int_attribute(n, key, expected);
        if (v != expected)
        {
            fail_node(n, concat("attribute '", key, "' = ", v, " is not supported: ", why));
        }
    }
    /// Symmetric (begin, end) pads of two axes as (PH, PW); asymmetric ones fail.
    std::vector<std::int64_t> symmetric_pads(std::size_t n, const std::vector<std::int64_t>& pads) const
    {
        if (pads[0] != pads[2] || pads[1] != pads[3])
        {
            fail_node(n, concat("attribute 'pads' ", xcnn::detail::shape_to_string(pads),
                                " pads the two sides of an axis differently; xcnn pads both sides alike"));
        }
        return {pads[0], pads[1]};
    }
    /// Fails unless `auto_pad` is absent or NOTSET (or VALID with no pads).
    void check_auto_pad(std::size_t n, const std::vector<std::int64_t>& pads) const
    {
        const attribute* a = find_attribute(n, "auto_pad", attribute_string);
        if (a == nullptr || a->s == "NOTSET" ||
            (a->s == "VALID" && std::all_of(pads.begin(), pads.end(), [](std::int64_t p) { return p == 0; })))
        {
            return;
        }
        fail_node(n, concat("attribute 'auto_pad' = '", a->s, "' is not supported (explicit pads only)"));
    }

    /// Fails unless the outputs of node `n` after the first are unused (Dropout's mask,
    /// MaxPool's indices, BatchNormalization's training outputs).
    void require_one_output(std::size_t n) const
    {
        const node& nd = m_graph.nodes[n];
        if (nd.outputs.empty() || nd.outputs[0].empty())
        {
            fail_node(n, "has no output");
        }
        for (std::size_t i = 1; i < nd.outputs.size(); ++i)
        {
            if (!nd.outputs[i].empty() && m_read.count(nd.outputs[i]) != 0)
            {
                fail_node(n, concat("output ", i, " ('", nd.outputs[i], "') is used; xcnn computes only the first"));
            }
        }
    }

    /// The constant (initializer, Constant node, or an Identity of one) at input `index` of node
    /// `n`; `what` names the input in messages.
    const tensor& constant_input(std::size_t n, std::size_t index, const char* what) const
    {
        const node& nd = m_graph.nodes[n];
        if (index >= nd.inputs.size() || nd.inputs[index].empty())
        {
            fail_node(n, concat("has no ", what, " (input ", index, ")"));
        }
        const auto found = m_constants.find(nd.inputs[index]);
        if (found == m_constants.end())
        {
            fail_node(n, concat("its ", what, " '", nd.inputs[index],
                                "' is not an initializer or a constant; xcnn imports weights stored in the file"));
        }
        return *found->second;
    }
    /// Whether input `index` of node `n` is present and a constant.
    bool has_constant(std::size_t n, std::size_t index) const
    {
        const node& nd = m_graph.nodes[n];
        return index < nd.inputs.size() && !nd.inputs[index].empty() && m_constants.count(nd.inputs[index]) != 0;
    }
    /// A weight: the FLOAT or DOUBLE constant at input `index` of node `n`, of `rank`.
    imported_tensor weight(std::size_t n, std::size_t index, const char* what, std::size_t rank) const
    {
        const tensor& t = constant_input(n, index, what);
        imported_tensor w;
        w.origin = concat(node_label(n), ", ", what, " '", t.name, "'");
        if (t.type == type_float)
        {
            w.values.assign(t.floats.begin(), t.floats.end());
        }
        else if (t.type == type_double)
        {
            w.values = t.doubles;
        }
        else
        {
            fail_node(n, concat("its ", what, " '", t.name, "' has data type ", t.type,
                                "; weights are FLOAT (1) or DOUBLE (11)"));
        }
        if (t.dims.size() != rank)
        {
            fail_node(n, concat("its ", what, " '", t.name, "' has shape ", xcnn::detail::shape_to_string(t.dims),
                                "; expected rank ", rank));
        }
        for (const auto d : t.dims)
        {
            if (d == 0)
            {
                fail_node(n, concat("its ", what, " '", t.name, "' has shape ", xcnn::detail::shape_to_string(t.dims),
                                    ", with no elements"));
            }
            w.shape.push_back(static_cast<std::size_t>(d));
        }
        return w;
    }
    /// Fails unless weight `w` (input `what` of node `n`) has `shape`.
    void expect_shape(std::size_t n, const imported_tensor& w, const char* what,
                      const std::vector<std::size_t>& shape) const
    {
        if (w.shape != shape)
        {
            fail_node(n, concat("its ", what, " has shape ", xcnn::detail::shape_to_string(w.shape), "; expected ",
                                xcnn::detail::shape_to_string(shape)));
        }
    }
    /// The single number of a scalar (or one-element) FLOAT or DOUBLE constant at input `index`.
    bool scalar_near(std::size_t n, std::size_t index, double expected) const
    {
        if (!has_constant(n, index))
        {
            return false;
        }
        const tensor& t = *m_constants.at(m_graph.nodes[n].inputs[index]);
        double v = 0;
        if (t.type == type_float && t.floats.size() == 1)
        {
            v = t.floats[0];
        }
        else if (t.type == type_double && t.doubles.size() == 1)
        {
            v = t.doubles[0];
        }
        else
        {
            return false;
        }
        return std::fabs(v - expected) <= 1e-6 * std::fabs(expected);
    }

    // ---- Shapes computed inside the graph ----------------------------------------------------

    /// The elements of the 1-d INT64 value `name` (a constant, or a Shape, Gather, Unsqueeze,
    /// Concat, Squeeze or Cast of them), for the target of a Reshape read by node `reader`.
    std::vector<shape_element> shape_value(const std::string& name, std::size_t reader, std::size_t depth)
    {
        const auto memo = m_shape_values.find(name);
        if (memo != m_shape_values.end())
        {
            return memo->second;
        }
        if (depth > max_depth)
        {
            fail_node(reader, concat("the shape '", name, "' is computed by more than ", max_depth, " nodes"));
        }
        std::vector<shape_element> out;
        const auto c = m_constants.find(name);
        if (c != m_constants.end())
        {
            if (c->second->type != type_int64 || c->second->dims.size() > 1)
            {
                fail_node(reader, concat("reads '", name, "' as a shape, but it is not a 0-d or 1-d INT64 tensor"));
            }
            for (const auto v : c->second->int64s)
            {
                out.push_back({shape_element::known, v});
            }
        }
        else
        {
            const auto p = m_producer.find(name);
            if (p == m_producer.end())
            {
                fail_node(reader, concat("reads '", name, "' as a shape, but it is the graph's input"));
            }
            const std::size_t n = p->second;
            const node& nd = m_graph.nodes[n];
            if (nd.op_type == "Shape")
            {
                allow_attributes(n, {});
                const auto s = m_states.find(nd.inputs.empty() ? std::string() : nd.inputs[0]);
                if (s == m_states.end())
                {
                    fail_node(n, "reads the shape of a value before the path from the input reaches it");
                }
                for (std::size_t i = 0; i < s->second.dims.size(); ++i)
                {
                    const std::int64_t d = s->second.dims[i];
                    out.push_back(i == 0  ? shape_element{shape_element::batch, 0}
                                  : d < 0 ? shape_element{shape_element::unknown, 0}
                                          : shape_element{shape_element::known, d});
                }
                if (s->second.squeezed)
                {
                    out.push_back({shape_element::known, 1});
                    out.push_back({shape_element::known, 1});
                }
            }
            else if (nd.op_type == "Gather")
            {
                allow_attributes(n, {"axis"});
                require_int(n, "axis", 0, "a shape is gathered along axis 0");
                if (nd.inputs.size() != 2)
                {
                    fail_node(n, "needs two inputs");
                }
                const auto from = shape_value(nd.inputs[0], n, depth + 1);
                for (const auto& index : shape_value(nd.inputs[1], n, depth + 1))
                {
                    const std::int64_t size = static_cast<std::int64_t>(from.size());
                    if (index.kind != shape_element::known || index.value < -size || index.value >= size)
                    {
                        fail_node(n, concat("gathers an index outside [", -size, ", ", size, ")"));
                    }
                    out.push_back(from[static_cast<std::size_t>(index.value < 0 ? index.value + size : index.value)]);
                }
            }
            else if (nd.op_type == "Unsqueeze" || nd.op_type == "Squeeze" || nd.op_type == "Cast")
            {
                allow_attributes(n, {"axes", "to"});
                if (nd.inputs.empty())
                {
                    fail_node(n, "has no input");
                }
                out = shape_value(nd.inputs[0], n, depth + 1); // the values stay; only their rank changes
            }
            else if (nd.op_type == "Concat")
            {
                allow_attributes(n, {"axis"});
                require_int(n, "axis", 0, "shapes are concatenated along axis 0");
                for (const auto& i : nd.inputs)
                {
                    const auto part = shape_value(i, n, depth + 1);
                    out.insert(out.end(), part.begin(), part.end());
                    if (out.size() > 64)
                    {
                        fail_node(n, "computes a shape of more than 64 elements");
                    }
                }
            }
            else
            {
                fail_node(n,
                          concat("computes the shape that node '", m_graph.nodes[reader].name,
                                 "' reads; xcnn evaluates Shape, Gather, Unsqueeze, Squeeze, Cast and Concat there"));
            }
        }
        m_shape_values[name] = out;
        return out;
    }

    // ---- Following the graph -----------------------------------------------------------------

    /// Whether node `n` is an Add of two values that depend on the input (a residual join).
    bool is_join(std::size_t n) const
    {
        const node& nd = m_graph.nodes[n];
        if (nd.op_type != "Add" || nd.inputs.size() != 2)
        {
            return false;
        }
        return m_constants.count(nd.inputs[0]) == 0 && m_constants.count(nd.inputs[1]) == 0;
    }

    /// The one node that reads `value`, or `none` when zero or several do or it is the output.
    std::size_t only_reader(const std::string& value) const
    {
        if (value == m_graph.outputs.front().name)
        {
            return none;
        }
        const auto c = m_consumers.find(value);
        if (c == m_consumers.end() || c->second.size() != 1)
        {
            return none;
        }
        return m_shape_read.count(value) != 0 ? none : c->second.front();
    }

    /// The nodes of the GELU erf form that starts with Div node `div` on value `x`: {Erf, Add,
    /// Mul, Mul}, or empty when it is not that form.
    std::vector<std::size_t> gelu_pattern(std::size_t div, const std::string& x) const
    {
        const node& d = m_graph.nodes[div];
        if (d.op_type != "Div" || d.inputs.size() != 2 || d.inputs[0] != x || !scalar_near(div, 1, std::sqrt(2.0)) ||
            d.outputs.size() != 1)
        {
            return {};
        }
        const std::size_t erf = only_reader(d.outputs[0]);
        if (erf == none || m_graph.nodes[erf].op_type != "Erf" || m_graph.nodes[erf].outputs.size() != 1)
        {
            return {};
        }
        const std::size_t add = only_reader(m_graph.nodes[erf].outputs[0]);
        if (add == none || m_graph.nodes[add].op_type != "Add" || m_graph.nodes[add].inputs.size() != 2 ||
            m_graph.nodes[add].outputs.size() != 1)
        {
            return {};
        }
        const node& a = m_graph.nodes[add];
        if (!((a.inputs[0] == m_graph.nodes[erf].outputs[0] && scalar_near(add, 1, 1.0)) ||
              (a.inputs[1] == m_graph.nodes[erf].outputs[0] && scalar_near(add, 0, 1.0))))
        {
            return {};
        }
        const std::size_t mul = only_reader(a.outputs[0]);
        std::size_t mul_half = none;
        if (mul == none)
        {
            return {};
        }
        const node& m = m_graph.nodes[mul];
        if (m.op_type != "Mul" || m.inputs.size() != 2 || m.outputs.size() != 1 ||
            !((m.inputs[0] == x && m.inputs[1] == a.outputs[0]) || (m.inputs[1] == x && m.inputs[0] == a.outputs[0])))
        {
            return {};
        }
        mul_half = only_reader(m.outputs[0]);
        if (mul_half == none)
        {
            return {};
        }
        const node& h = m_graph.nodes[mul_half];
        if (h.op_type != "Mul" || h.inputs.size() != 2 || h.outputs.size() != 1 ||
            !((h.inputs[0] == m.outputs[0] && scalar_near(mul_half, 1, 0.5)) ||
              (h.inputs[1] == m.outputs[0] && scalar_near(mul_half, 0, 0.5))))
        {
            return {};
        }
        return {erf, add, mul, mul_half};
    }

    /// The nodes that read `value`, each GELU erf form counted once (by its Div).
    std::vector<std::size_t> units(const std::string& value) const
    {
        const auto c = m_consumers.find(value);
        if (c == m_consumers.end())
        {
            return {};
        }
        std::vector<std::size_t> out = c->second;
        for (const auto n : c->second)
        {
            const auto g = gelu_pattern(n, value);
            if (!g.empty())
            {
                out.erase(std::remove(out.begin(), out.end(), g[2]), out.end());
            }
        }
        return out;
    }

    /// Follows the graph from `value` (whose state is `state`): from node `first` if given,
    /// else from every node that reads `value`; stops at the output, or at an Add that joins
    /// the branch with another.
    branch follow(std::string value, value_state state, std::size_t first, std::size_t depth)
    {
        if (depth > max_depth)
        {
            fail_node(first, concat("is inside more than ", max_depth, " nested residual forks"));
        }
        branch out{{}, {}, {}, none};
        for (bool start = true;; start = false)
        {
            m_states[value] = state;
            const std::vector<std::size_t> next =
                start && first != none ? std::vector<std::size_t>{first} : units(value);
            if (next.empty())
            {
                break;
            }
            if (next.size() == 1)
            {
                if (is_join(next[0]))
                {
                    out.join = next[0];
                    break;
                }
                step(next[0], value, state, out.layers);
                continue;
            }
            if (next.size() > 2)
            {
                fail_node(next[2], concat("is the third node that reads '", value,
                                          "'; xcnn's Residual joins two branches, and other forks are not supported"));
            }
            fork(next, value, state, out.layers, depth);
        }
        out.end = value;
        out.state = state;
        return out;
    }

    /// The residual block of the two branches that leave `value` through nodes `starts`.
    void fork(const std::vector<std::size_t>& starts, std::string& value, value_state& state,
              std::vector<converted_layer>& layers, std::size_t depth)
    {
        if (starts[0] == starts[1])
        {
            fail_node(starts[0], concat("reads '", value, "' twice; xcnn has no layer for that"));
        }
        branch b[2];
        for (int i = 0; i < 2; ++i)
        {
            if (is_join(starts[i]))
            {
                b[i] = branch{{}, value, state, starts[i]};
            }
            else
            {
                b[i] = follow(value, state, starts[i], depth + 1);
            }
            if (b[i].join == none)
            {
                fail_node(starts[i],
                          concat("starts a branch from '", value, "' that never joins the other branch ", "(through ",
                                 node_label(starts[1 - i]), ") in an Add: xcnn's Residual adds its two branches"));
            }
        }
        if (b[0].join != b[1].join)
        {
            fail_node(b[0].join, concat("ends one branch from '", value, "', but the other branch ends at ",
                                        node_label(b[1].join), "; xcnn's Residual adds its two branches in one Add"));
        }
        const std::size_t join = b[0].join;
        const node& add = m_graph.nodes[join];
        int main = 0;
        if (b[0].end == add.inputs[1] && b[1].end == add.inputs[0])
        {
            main = 1;
        }
        else if (!(b[0].end == add.inputs[0] && b[1].end == add.inputs[1]))
        {
            fail_node(join, concat("does not add the ends of the branches from '", value, "'"));
        }
        if (b[main].layers.empty())
        {
            main = 1 - main; // x + f(x) is f(x) + x, exactly
        }
        branch& m = b[main];
        branch& s = b[1 - main];
        if (m.state.dims.size() != s.state.dims.size() || m.state.squeezed != s.state.squeezed)
        {
            fail_node(join, concat("adds values of ranks ", m.state.dims.size(), " and ", s.state.dims.size()));
        }
        for (std::size_t i = 1; i < m.state.dims.size(); ++i)
        {
            if (m.state.dims[i] >= 0 && s.state.dims[i] >= 0 && m.state.dims[i] != s.state.dims[i])
            {
                fail_node(join, concat("adds values of shapes ", xcnn::detail::shape_to_string(m.state.dims), " and ",
                                       xcnn::detail::shape_to_string(s.state.dims)));
            }
        }
        require_one_output(join);
        converted_layer residual{layer_spec{"Residual", {}, {}}, {}, {}};
        residual.children.push_back({layer_spec{"Sequential", {}, {}}, {}, std::move(m.layers)});
        if (!s.layers.empty())
        {
            residual.children.push_back({layer_spec{"Sequential", {}, {}}, {}, std::move(s.layers)});
        }
        layers.push_back(std::move(residual));
        state = m.state;
        for (std::size_t i = 1; i < state.dims.size(); ++i)
        {
            state.dims[i] = state.dims[i] >= 0 ? state.dims[i] : s.state.dims[i];
        }
        value = add.outputs[0];
    }

    /// Fails unless `state` is rank 4 and not squeezed (for a node that needs (N, C, H, W)).
    void require_image(std::size_t n, const value_state& state) const
    {
        if (state.squeezed)
        {
            fail_node(n, "reads a GlobalAveragePool's output; xcnn's GlobalAvgPool2D returns (N, C), so only a "
                         "Flatten, a Reshape to (N, -1) or an activation may follow it");
        }
        if (state.dims.size() != 4)
        {
            fail_node(n, concat("reads a value of shape ", xcnn::detail::shape_to_string(state.dims),
                                "; it needs (N, C, H, W)"));
        }
    }
    /// Fails unless the data value is input 0 of node `n`.
    void require_data_first(std::size_t n, const std::string& value) const
    {
        if (m_graph.nodes[n].inputs.empty() || m_graph.nodes[n].inputs[0] != value)
        {
            fail_node(n, concat("reads '", value,
                                "' as an input other than its first; xcnn reads weights from "
                                "initializers"));
        }
    }
    /// The output extent of a window over `in` (padded by `pad` on both sides), or fails.
    std::int64_t window_extent(std::size_t n, std::int64_t in, std::int64_t kernel, std::int64_t stride,
                               std::int64_t pad, std::int64_t dilation) const
    {
        if (in < 0)
        {
            return -1;
        }
        const std::int64_t span = dilation * (kernel - 1) + 1;
        if (in + 2 * pad < span)
        {
            fail_node(n, concat("its window of ", span, " does not fit an input of ", in, " padded by ", pad));
        }
        return (in + 2 * pad - span) / stride + 1;
    }
    /// Pool attributes shared by MaxPool and AveragePool: kernel, stride, padding (PH, PW).
    layer_spec pool_spec(std::size_t n, const char* kind, const std::vector<std::int64_t>& extra_pad,
                         value_state& state) const
    {
        const auto kernel = ints_attribute(n, "kernel_shape", 2, {}, 1);
        const auto stride = ints_attribute(n, "strides", 2, {1, 1}, 1);
        const auto pads4 = ints_attribute(n, "pads", 4, {0, 0, 0, 0}, 0);
        check_auto_pad(n, pads4);
        auto pad = symmetric_pads(n, pads4);
        require_int(n, "ceil_mode", 0, "xcnn's pools round the output size down");
        if (!extra_pad.empty())
        {
            if (pad[0] != 0 || pad[1] != 0)
            {
                fail_node(n, "has pads of its own after a Pad node");
            }
            pad = extra_pad;
        }
        for (int i = 0; i < 2; ++i)
        {
            if (2 * pad[static_cast<std::size_t>(i)] > kernel[static_cast<std::size_t>(i)])
            {
                fail_node(n, concat("pads ", xcnn::detail::shape_to_string(pad), " more than half its kernel ",
                                    xcnn::detail::shape_to_string(kernel), ", which xcnn's pools do not take"));
            }
        }
        state.dims[2] = window_extent(n, state.dims[2], kernel[0], stride[0], pad[0], 1);
        state.dims[3] = window_extent(n, state.dims[3], kernel[1], stride[1], pad[1], 1);
        layer_spec s{kind, {}, {}};
        s.set("kernel_size", {double(kernel[0]), double(kernel[1])});
        s.set("stride", {double(stride[0]), double(stride[1])});
        s.set("padding", {double(pad[0]), double(pad[1])});
        return s;
    }
    /// Flattens `state` (rank 4 or squeezed) to (N, features); returns whether a Flatten layer
    /// is needed.
    bool flatten_state(value_state& state) const
    {
        if (state.squeezed)
        {
            state.squeezed = false;
            return false;
        }
        if (state.dims.size() == 2)
        {
            return false;
        }
        std::int64_t features = 1;
        for (std::size_t i = 1; i < state.dims.size(); ++i)
        {
            features = state.dims[i] < 0 || features < 0 ? -1 : features * state.dims[i];
        }
        state.dims = {-1, features};
        return true;
    }

    /// Converts the node(s) starting at node `n` that read `value`; moves `value` and `state`
    /// past them.
    void step(std::size_t n, std::string& value, value_state& state, std::vector<converted_layer>& layers)
    {
        const node& nd = m_graph.nodes[n];
        const std::string& op = nd.op_type;
        auto advance = [&](std::size_t last)
        {
            require_one_output(last);
            value = m_graph.nodes[last].outputs[0];
        };
        auto simple = [&](const char* kind)
        {
            allow_attributes(n, {});
            require_data_first(n, value);
            if (nd.inputs.size() != 1)
            {
                fail_node(n, concat("has ", nd.inputs.size(), " inputs; expected 1"));
            }
            layers.push_back({layer_spec{kind, {}, {}}, {}, {}});
            advance(n);
        };
        if (op == "Relu")
        {
            simple("ReLU");
        }
        else if (op == "Sigmoid")
        {
            simple("Sigmoid");
        }
        else if (op == "Tanh")
        {
            simple("Tanh");
        }
        else if (op == "LeakyRelu")
        {
            allow_attributes(n, {"alpha"});
            require_data_first(n, value);
            const double slope = float_attribute(n, "alpha", 0.01);
            if (!(slope >= 0) || !std::isfinite(slope))
            {
                fail_node(n, concat("attribute 'alpha' = ", slope,
                                    " is not supported: xcnn's LeakyReLU takes a "
                                    "finite slope >= 0"));
            }
            layer_spec s{"LeakyReLU", {}, {}};
            s.set("negative_slope", {slope});
            layers.push_back({s, {}, {}});
            advance(n);
        }
        else if (op == "Identity")
        {
            allow_attributes(n, {});
            advance(n);
        }
        else if (op == "Dropout")
        {
            allow_attributes(n, {"ratio", "seed", "is_test"});
            require_data_first(n, value);
            if (nd.inputs.size() > 2 && !nd.inputs[2].empty())
            {
                const tensor& mode = constant_input(n, 2, "training_mode");
                if (mode.int64s.size() == 1 && mode.int64s[0] != 0)
                {
                    fail_node(n, "runs in training mode; xcnn imports the inference form");
                }
            }
            advance(n); // the identity at inference
        }
        else if (op == "Div")
        {
            const auto g = gelu_pattern(n, value);
            if (g.empty())
            {
                fail_node(n, "is not supported (a Div is imported only as part of GELU's erf form "
                             "x * 0.5 * (1 + erf(x / sqrt(2))))");
            }
            for (const auto k : {n, g[0], g[1], g[2], g[3]})
            {
                allow_attributes(k, {});
            }
            layers.push_back({layer_spec{"GELU", {}, {}}, {}, {}});
            advance(g[3]);
        }
        else if (op == "Conv")
        {
            allow_attributes(n, {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"});
            require_data_first(n, value);
            require_image(n, state);
            imported_tensor w = weight(n, 1, "weight", 4);
            const auto group = int_attribute(n, "group", 1);
            const auto out = static_cast<std::int64_t>(w.shape[0]);
            if (group < 1 || group > out || out % group != 0)
            {
                fail_node(n, concat("attribute 'group' = ", group, " does not divide its ", out, " output channels"));
            }
            const auto in = static_cast<std::int64_t>(w.shape[1]) * group;
            if (state.dims[1] >= 0 && state.dims[1] != in)
            {
                fail_node(n, concat("its weight '", nd.inputs[1], "' of shape ", xcnn::detail::shape_to_string(w.shape),
                                    " with group ", group, " takes ", in, " channels, but its input has shape ",
                                    xcnn::detail::shape_to_string(state.dims)));
            }
            const std::vector<std::int64_t> kernel{static_cast<std::int64_t>(w.shape[2]),
                                                   static_cast<std::int64_t>(w.shape[3])};
            if (ints_attribute(n, "kernel_shape", 2, kernel, 1) != kernel)
            {
                fail_node(n, concat("attribute 'kernel_shape' disagrees with its weight of shape ",
                                    xcnn::detail::shape_to_string(w.shape)));
            }
            const auto stride = ints_attribute(n, "strides", 2, {1, 1}, 1);
            const auto dilation = ints_attribute(n, "dilations", 2, {1, 1}, 1);
            const auto pads4 = ints_attribute(n, "pads", 4, {0, 0, 0, 0}, 0);
            check_auto_pad(n, pads4);
            const auto pad = symmetric_pads(n, pads4);
            layer_spec s{"Conv2D", {}, {}};
            s.set("in_channels", {double(in)});
            s.set("out_channels", {double(out)});
            s.set("kernel_size", {double(kernel[0]), double(kernel[1])});
            s.set("stride", {double(stride[0]), double(stride[1])});
            s.set("padding", {double(pad[0]), double(pad[1])});
            s.set("dilation", {double(dilation[0]), double(dilation[1])});
            s.set("groups", {double(group)});
            const bool bias = nd.inputs.size() > 2 && !nd.inputs[2].empty();
            s.set("bias", {bias ? 1.0 : 0.0});
            converted_layer c{s, {}, {}};
            w.key = "weight";
            c.weights.push_back(std::move(w));
            if (bias)
            {
                imported_tensor b = weight(n, 2, "bias", 1);
                expect_shape(n, b, "bias", {static_cast<std::size_t>(out)});
                b.key = "bias";
                c.weights.push_back(std::move(b));
            }
            if (nd.inputs.size() > 3)
            {
                fail_node(n, concat("has ", nd.inputs.size(), " inputs; expected 2 or 3"));
            }
            state.dims[1] = out;
            state.dims[2] = window_extent(n, state.dims[2], kernel[0], stride[0], pad[0], dilation[0]);
            state.dims[3] = window_extent(n, state.dims[3], kernel[1], stride[1], pad[1], dilation[1]);
            layers.push_back(std::move(c));
            advance(n);
        }
        else if (op == "Gemm" || op == "MatMul")
        {
            require_data_first(n, value);
            if (state.squeezed || state.dims.size() != 2)
            {
                fail_node(n, concat("reads a value of shape ", xcnn::detail::shape_to_string(state.dims),
                                    "; xcnn's Dense takes (N, features): flatten first"));
            }
            bool transposed = true; // the weight is (out, in), as xcnn and PyTorch store it
            std::size_t last = n;
            imported_tensor w = weight(n, 1, "weight", 2);
            imported_tensor b;
            bool has_bias = false;
            if (op == "Gemm")
            {
                allow_attributes(n, {"alpha", "beta", "transA", "transB"});
                require_int(n, "transA", 0, "the input is (N, features)");
                const auto trans_b = int_attribute(n, "transB", 0);
                if (trans_b != 0 && trans_b != 1)
                {
                    fail_node(n, concat("attribute 'transB' = ", trans_b, " is not 0 or 1"));
                }
                transposed = trans_b == 1;
                for (const char* key : {"alpha", "beta"})
                {
                    if (float_attribute(n, key, 1.0) != 1.0)
                    {
                        fail_node(n, concat("attribute '", key, "' = ", float_attribute(n, key, 1.0),
                                            " is not supported (only 1)"));
                    }
                }
                if (nd.inputs.size() > 3)
                {
                    fail_node(n, concat("has ", nd.inputs.size(), " inputs; expected 2 or 3"));
                }
                if (nd.inputs.size() == 3 && !nd.inputs[2].empty())
                {
                    const tensor& t = constant_input(n, 2, "bias");
                    b = weight(n, 2, "bias", t.dims.size());
                    has_bias = true;
                }
            }
            else
            {
                allow_attributes(n, {});
                transposed = false;
                if (nd.inputs.size() != 2)
                {
                    fail_node(n, concat("has ", nd.inputs.size(), " inputs; expected 2"));
                }
                require_one_output(n);
                const std::size_t add = only_reader(nd.outputs[0]);
                if (add != none && m_graph.nodes[add].op_type == "Add" && m_graph.nodes[add].inputs.size() == 2)
                {
                    const node& a = m_graph.nodes[add];
                    const std::size_t other = a.inputs[0] == nd.outputs[0] ? 1 : 0;
                    if (a.inputs[1 - other] == nd.outputs[0] && has_constant(add, other))
                    {
                        allow_attributes(add, {});
                        const tensor& t = constant_input(add, other, "bias");
                        b = weight(add, other, "bias", t.dims.size());
                        has_bias = true;
                        last = add;
                    }
                }
            }
            const std::size_t out = transposed ? w.shape[0] : w.shape[1];
            const std::size_t in = transposed ? w.shape[1] : w.shape[0];
            if (!transposed)
            {
                std::vector<double> t(w.values.size());
                for (std::size_t i = 0; i < in; ++i)
                {
                    for (std::size_t o = 0; o < out; ++o)
                    {
                        t[o * in + i] = w.values[i * out + o];
                    }
                }
                w.values = std::move(t);
                w.shape = {out, in};
            }
            if (state.dims[1] >= 0 && state.dims[1] != static_cast<std::int64_t>(in))
            {
                fail_node(n, concat("its weight '", nd.inputs[1], "' takes ", in, " features, but its input has shape ",
                                    xcnn::detail::shape_to_string(state.dims)));
            }
            if (has_bias)
            {
                if (b.shape.size() == 2 && b.shape[0] == 1)
                {
                    b.shape = {b.shape[1]};
                }
                if (b.shape != std::vector<std::size_t>{out})
                {
                    fail_node(last, concat("its bias has shape ", xcnn::detail::shape_to_string(b.shape), "; expected ",
                                           xcnn::detail::shape_to_string(std::vector<std::size_t>{out})));
                }
            }
            else
            {
                b.shape = {out};
                b.values.assign(out, 0.0); // xcnn's Dense always has a bias: PyTorch's bias=False is a zero one
                b.origin = concat(node_label(n), ", no bias (zeros)");
            }
            layer_spec s{"Dense", {}, {}};
            s.set("in_features", {double(in)});
            s.set("out_features", {double(out)});
            converted_layer c{s, {}, {}};
            w.key = "weight";
            b.key = "bias";
            c.weights.push_back(std::move(w));
            c.weights.push_back(std::move(b));
            layers.push_back(std::move(c));
            state.dims[1] = static_cast<std::int64_t>(out);
            advance(last);
        }
        else if (op == "BatchNormalization")
        {
            allow_attributes(n, {"epsilon", "momentum", "training_mode", "spatial"});
            require_data_first(n, value);
            require_int(n, "training_mode", 0, "xcnn imports the inference form");
            require_int(n, "spatial", 1, "statistics are per channel");
            if (state.squeezed || (state.dims.size() != 4 && state.dims.size() != 2))
            {
                fail_node(n, concat("reads a value of shape ", xcnn::detail::shape_to_string(state.dims),
                                    "; xcnn's BatchNorm2D takes (N, C, H, W), BatchNorm1D (N, features)"));
            }
            if (nd.inputs.size() != 5)
            {
                fail_node(n, concat("has ", nd.inputs.size(), " inputs; expected 5"));
            }
            const double eps = float_attribute(n, "epsilon", 1e-5);
            const double momentum = one_minus_decimal(float_attribute(n, "momentum", 0.9));
            if (!(eps >= 0) || !std::isfinite(eps) || !(momentum >= 0 && momentum <= 1))
            {
                fail_node(n, concat("has epsilon ", eps, " and momentum ", 1 - momentum,
                                    "; xcnn needs epsilon >= 0 and momentum in [0, 1]"));
            }
            imported_tensor scale = weight(n, 1, "scale", 1);
            const std::size_t features = scale.shape[0];
            if (state.dims[1] >= 0 && state.dims[1] != static_cast<std::int64_t>(features))
            {
                fail_node(n, concat("its scale '", nd.inputs[1], "' has ", features,
                                    " values, but its input has shape ", xcnn::detail::shape_to_string(state.dims)));
            }
            layer_spec s{state.dims.size() == 4 ? "BatchNorm2D" : "BatchNorm1D", {}, {}};
            s.set("num_features", {double(features)});
            s.set("eps", {eps});
            s.set("momentum", {momentum});
            converted_layer c{s, {}, {}};
            const char* names[] = {"weight", "bias", "running_mean", "running_var"};
            const char* what[] = {"scale", "bias", "mean", "var"};
            for (std::size_t i = 0; i < 4; ++i)
            {
                imported_tensor t = i == 0 ? std::move(scale) : weight(n, i + 1, what[i], 1);
                expect_shape(n, t, what[i], {features});
                t.key = names[i];
                c.weights.push_back(std::move(t));
            }
            state.dims[1] = static_cast<std::int64_t>(features);
            layers.push_back(std::move(c));
            advance(n);
        }
        else if (op == "MaxPool")
        {
            allow_attributes(
                n, {"kernel_shape", "strides", "pads", "ceil_mode", "dilations", "storage_order", "auto_pad"});
            require_data_first(n, value);
            require_image(n, state);
            if (ints_attribute(n, "dilations", 2, {1, 1}, 1) != std::vector<std::int64_t>{1, 1})
            {
                fail_node(n, "attribute 'dilations' is not supported (only 1)");
            }
            require_int(n, "storage_order", 0, "xcnn has no pooling indices");
            layers.push_back({pool_spec(n, "MaxPool2D", {}, state), {}, {}});
            advance(n);
        }
        else if (op == "AveragePool" || op == "Pad")
        {
            require_data_first(n, value);
            require_image(n, state);
            std::vector<std::int64_t> extra;
            std::size_t pool = n;
            if (op == "Pad")
            {
                allow_attributes(n, {"mode", "pads", "value"});
                require_string(n, "mode", "constant");
                std::vector<std::int64_t> pads;
                if (const attribute* a = find_attribute(n, "pads", attribute_ints))
                {
                    pads = a->ints;
                }
                else
                {
                    if (nd.inputs.size() < 2 || nd.inputs[1].empty())
                    {
                        fail_node(n, "has no pads");
                    }
                    for (const auto& e : shape_value(nd.inputs[1], n, 0))
                    {
                        if (e.kind != shape_element::known)
                        {
                            fail_node(n, "has pads that are not constant");
                        }
                        pads.push_back(e.value);
                    }
                }
                if (float_attribute(n, "value", 0.0) != 0.0 ||
                    (nd.inputs.size() > 2 && !nd.inputs[2].empty() && !scalar_near(n, 2, 0.0)))
                {
                    fail_node(n, "pads with a value other than 0");
                }
                if (pads.size() != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0)
                {
                    fail_node(n, concat("pads ", xcnn::detail::shape_to_string(pads),
                                        " are not the (H, W) padding of an (N, C, H, W) value"));
                }
                const std::vector<std::int64_t> hw{pads[2], pads[3], pads[6], pads[7]};
                for (const auto p : hw)
                {
                    if (p < 0 || p > max_attribute_extent)
                    {
                        fail_node(n, concat("pads ", xcnn::detail::shape_to_string(pads), " are out of range"));
                    }
                }
                extra = symmetric_pads(n, hw);
                require_one_output(n);
                pool = only_reader(nd.outputs[0]);
                if (pool == none || m_graph.nodes[pool].op_type != "AveragePool")
                {
                    if (extra[0] != 0 || extra[1] != 0)
                    {
                        fail_node(n, "is supported only before an AveragePool (how PyTorch exports AvgPool2d's "
                                     "padding) or when it pads nothing");
                    }
                    advance(n); // pads nothing
                    return;
                }
            }
            allow_attributes(pool, {"kernel_shape", "strides", "pads", "ceil_mode", "count_include_pad", "auto_pad"});
            if (m_graph.nodes[pool].inputs.size() != 1)
            {
                fail_node(pool, concat("has ", m_graph.nodes[pool].inputs.size(), " inputs; expected 1"));
            }
            layer_spec s = pool_spec(pool, "AvgPool2D", extra, state);
            const auto& padding = *s.find("padding");
            if ((padding[0] != 0 || padding[1] != 0) && extra.empty() &&
                int_attribute(pool, "count_include_pad", 0) != 1)
            {
                fail_node(pool, "attribute 'count_include_pad' = 0 with pads is not supported: xcnn's AvgPool2D "
                                "counts the padding (PyTorch's default)");
            }
            layers.push_back({s, {}, {}});
            advance(pool);
        }
        else if (op == "GlobalAveragePool" || op == "ReduceMean")
        {
            require_data_first(n, value);
            require_image(n, state);
            bool squeeze = true;
            if (op == "ReduceMean")
            {
                allow_attributes(n, {"axes", "keepdims"});
                std::vector<std::int64_t> axes;
                if (const attribute* a = find_attribute(n, "axes", attribute_ints))
                {
                    axes = a->ints;
                }
                else if (nd.inputs.size() > 1)
                {
                    for (const auto& e : shape_value(nd.inputs[1], n, 0))
                    {
                        axes.push_back(e.kind == shape_element::known ? e.value : 0);
                    }
                }
                for (auto& a : axes)
                {
                    a = a < 0 ? a + 4 : a;
                }
                std::sort(axes.begin(), axes.end());
                if (axes != std::vector<std::int64_t>{2, 3})
                {
                    fail_node(n, concat("attribute 'axes' ", xcnn::detail::shape_to_string(axes),
                                        " is not supported: xcnn averages over (H, W) = (2, 3) only"));
                }
                const auto keep = int_attribute(n, "keepdims", 1);
                squeeze = keep != 0;
            }
            else
            {
                allow_attributes(n, {});
            }
            layers.push_back({layer_spec{"GlobalAvgPool2D", {}, {}}, {}, {}});
            state.dims = {-1, state.dims[1]};
            state.squeezed = squeeze;
            advance(n);
        }
        else if (op == "Flatten")
        {
            allow_attributes(n, {"axis"});
            require_data_first(n, value);
            require_int(n, "axis", 1, "xcnn flattens (N, ...) to (N, features)");
            if (flatten_state(state))
            {
                layers.push_back({layer_spec{"Flatten", {}, {}}, {}, {}});
            }
            advance(n);
        }
        else if (op == "Reshape")
        {
            allow_attributes(n, {"allowzero"});
            require_data_first(n, value);
            if (nd.inputs.size() != 2)
            {
                fail_node(n, "needs two inputs");
            }
            const auto target = shape_value(nd.inputs[1], n, 0);
            value_state flat = state;
            const bool needs_layer = flatten_state(flat);
            const std::int64_t features = flat.dims[1];
            const bool zero_copies = int_attribute(n, "allowzero", 0) == 0;
            auto is_batch = [&](const shape_element& e)
            {
                return e.kind == shape_element::batch ||
                       (e.kind == shape_element::known && e.value == 0 && zero_copies);
            };
            auto is_features = [&](const shape_element& e)
            {
                return e.kind == shape_element::known && (e.value == -1 || e.value == features) && e.value != 0;
            };
            const bool ok = target.size() == 2 &&
                            ((is_batch(target[0]) &&
                              (is_features(target[1]) ||
                               (features < 0 && target[1].kind == shape_element::known && target[1].value > 0))) ||
                             (target[0].kind == shape_element::known && target[0].value == -1 &&
                              target[1].kind == shape_element::known && target[1].value > 0 &&
                              (features < 0 || target[1].value == features)));
            if (!ok)
            {
                std::vector<std::string> shown;
                for (const auto& e : target)
                {
                    shown.push_back(e.kind == shape_element::known   ? concat(e.value)
                                    : e.kind == shape_element::batch ? std::string("N")
                                                                     : std::string("?"));
                }
                fail_node(n, concat("reshapes a value of shape ", xcnn::detail::shape_to_string(state.dims), " to ",
                                    xcnn::detail::shape_to_string(shown),
                                    "; xcnn imports a Reshape only as a flatten to (N, features)"));
            }
            if (features < 0 && target[1].kind == shape_element::known && target[1].value > 0)
            {
                flat.dims[1] = target[1].value;
            }
            state = flat;
            if (needs_layer)
            {
                layers.push_back({layer_spec{"Flatten", {}, {}}, {}, {}});
            }
            advance(n);
        }
        else if (op == "Add" || op == "Sub" || op == "Mul")
        {
            fail_node(n,
                      concat("is not supported: xcnn imports an ", op == "Add" ? "Add only as the join of a "
                                                                                 "residual block or a MatMul's bias"
                                                                               : "arithmetic node only inside GELU"));
        }
        else
        {
            fail_node(n, "is not supported (docs/onnx.md lists the operators xcnn imports)");
        }
    }

    // ---- The result --------------------------------------------------------------------------

    /// The spec of `c` with its children; appends its weights, keyed "<prefix><name>", to `weights`.
    static layer_spec assemble(converted_layer& c, const std::string& prefix, std::vector<imported_tensor>& weights)
    {
        for (auto& w : c.weights)
        {
            w.key = prefix + w.key;
            weights.push_back(std::move(w));
        }
        layer_spec s = std::move(c.spec);
        for (std::size_t i = 0; i < c.children.size(); ++i)
        {
            const std::string child = s.kind == "Residual" ? (i == 0 ? "main." : "shortcut.") : concat(i, ".");
            s.children.push_back(assemble(c.children[i], prefix + child, weights));
        }
        return s;
    }

    template <class... Args>
    static std::string concat(const Args&... args)
    {
        return xcnn::detail::concat(args...);
    }

    const graph& m_graph;
    std::string m_source;
    std::int64_t m_opset = 0;
    std::map<std::string, const tensor*> m_constants;
    std::deque<tensor> m_owned;
    std::map<std::string, std::size_t> m_producer;
    std::map<std::string, std::vector<std::size_t>> m_consumers;
    std::set<std::string> m_read;
    std::set<std::string> m_shape_read;
    std::map<std::string, value_state> m_states;
    std::map<std::string, std::vector<shape_element>> m_shape_values;
};

} // namespace detail

/// The network of model `m`'s graph: its layers as a `layer_spec` ("Sequential" with the layers
/// as children) and its weights keyed like the built network's `state_dict`, for inputs of
/// rank `input_rank` and outputs of rank `output_rank`. `source` names the file in messages.
/// @throws format_error naming the node, its operator and the attribute or initializer for a
/// graph xcnn cannot import: an unsupported operator or attribute (asymmetric pads, ceil_mode,
/// auto_pad SAME), a weight that is not an initializer or has the wrong shape, a fork whose
/// branches never meet in one Add, an output the input does not reach, ranks other than the
/// requested ones.
inline imported_network import_graph(const model& m, std::size_t input_rank = 4, std::size_t output_rank = 2,
                                     const std::string& source = "<onnx>")
{
    return detail::graph_converter(m, source).run(input_rank, output_rank);
}

namespace detail
{

/// Copies the imported weights into the parameters and buffers of `net` by name; `source`
/// names the file in messages.
/// @throws format_error if a weight has another shape than the network's tensor of its name, or
/// the network has a tensor the file does not provide (BatchNorm's num_batches_tracked aside).
template <class Net>
void assign_weights(Net& net, const imported_network& imported, const std::string& source)
{
    std::map<std::string, const imported_tensor*> by_key;
    for (const auto& w : imported.weights)
    {
        by_key[w.key] = &w;
    }
    std::size_t assigned = 0;
    auto assign = [&](const auto& handle)
    {
        const std::string& name = handle.name();
        const auto found = by_key.find(name);
        if (found == by_key.end())
        {
            const std::string tracked = "num_batches_tracked";
            if (name.size() >= tracked.size() &&
                name.compare(name.size() - tracked.size(), tracked.size(), tracked) == 0)
            {
                return; // ONNX has no such value: it stays 0
            }
            throw format_error(xcnn::detail::concat(source, ": the graph gives no value for the network's '", name,
                                                    "' of shape ", xcnn::detail::shape_to_string(handle.shape())));
        }
        const imported_tensor& w = *found->second;
        if (handle.shape() != w.shape)
        {
            throw format_error(xcnn::detail::concat(
                source, ": ", w.origin, " has shape ", xcnn::detail::shape_to_string(w.shape), " but the network's '",
                name, "' has shape ", xcnn::detail::shape_to_string(handle.shape())));
        }
        using T = typename std::decay_t<decltype(handle)>::value_type;
        T* data = handle.data();
        for (std::size_t i = 0; i < w.values.size(); ++i)
        {
            data[i] = static_cast<T>(w.values[i]);
        }
        ++assigned;
    };
    for (const auto& p : net.parameters())
    {
        assign(p);
    }
    for (const auto& b : net.buffers())
    {
        assign(b);
    }
    if (assigned != imported.weights.size())
    {
        throw format_error(xcnn::detail::concat(source, ": the graph has ", imported.weights.size(),
                                                " weights, but the network built from it takes ", assigned));
    }
}

} // namespace detail

/// The network of the ONNX model in the `size` bytes at `data` (see `load_onnx`); `source`
/// names it in messages.
/// @throws format_error for a malformed file (as `parse_model`) or a graph xcnn cannot import
/// (as `import_graph`).
template <class T, int InputRank = 4, int OutputRank = 2>
Network<T, InputRank, OutputRank> from_bytes(const unsigned char* data, std::size_t size,
                                             const std::string& source = "<onnx>")
{
    const model m = parse_model(data, size, source);
    const imported_network imported =
        import_graph(m, static_cast<std::size_t>(InputRank), static_cast<std::size_t>(OutputRank), source);
    Network<T, InputRank, OutputRank> net = [&]
    {
        try
        {
            return build_network<T, InputRank, OutputRank>(imported.spec);
        }
        catch (const format_error&)
        {
            throw;
        }
        catch (const error& e)
        {
            throw format_error(xcnn::detail::concat(source, ": the graph's layers cannot be built: ", e.what()));
        }
    }();
    detail::assign_weights(net, imported, source);
    bool known = true;
    std::vector<std::size_t> input(imported.input_dims.size(), 1);
    for (std::size_t i = 1; i < input.size(); ++i)
    {
        known = known && imported.input_dims[i] > 0;
        input[i] = known ? static_cast<std::size_t>(imported.input_dims[i]) : 1;
    }
    if (known)
    {
        try
        {
            (void)net.output_shape(input);
        }
        catch (const error& e)
        {
            throw format_error(xcnn::detail::concat(source, ": the network built from the graph cannot take its input ",
                                                    xcnn::detail::shape_to_string(imported.input_dims), ": ",
                                                    e.what()));
        }
    }
    return net;
}

} // namespace onnx

/// The network of the ONNX model at `path`, as `torch.onnx.export` writes it for the layers xcnn
/// has (BatchNorm folded into the convolutions or not, residual blocks, `x.view(x.size(0), -1)`)
/// or as `save_onnx` writes it: a `Network<T, InputRank, OutputRank>` whose layers are the
/// graph's, with the file's weights converted to `T`. It computes what the graph computes at
/// inference; BatchNorm layers get the file's running statistics and Dropout is left out.
/// @throws io_error if the file cannot be read; format_error naming the node, its operator and
/// the attribute or initializer for a malformed file or a graph xcnn cannot import.
template <class T, int InputRank = 4, int OutputRank = 2>
Network<T, InputRank, OutputRank> load_onnx(const std::string& path)
{
    const std::vector<unsigned char> bytes = io::detail::read_file_bytes(path, "load_onnx");
    return onnx::from_bytes<T, InputRank, OutputRank>(bytes.data(), bytes.size(), "'" + path + "'");
}

} // namespace xcnn

#endif // XCNN_IO_ONNX_IMPORT_HPP
