// ONNX import (io/onnx_import.hpp): PyTorch's exports (tests/fixtures/torch_onnx_import.py) become
// the layers and weights xcnn has; every graph xcnn cannot import is a format_error naming the
// node, its operator and the attribute or initializer.
#include "catch_compat.hpp"

#include "support/onnx_models.hpp"
#include "support/require_error.hpp"

#include "models.hpp" // examples/mnist: LeNet and the ResNet of xcnn-mnist

#include <xcnn/io/npy.hpp>
#include <xcnn/io/onnx.hpp>
#include <xcnn/io/onnx_import.hpp>
#include <xcnn/io/protobuf.hpp>
#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace
{

namespace onnx = xcnn::onnx;
using xcnn_test::require_error;

const std::string fixtures = std::string(XCNN_TEST_FIXTURES_DIR) + "/onnx_import/";
using bytes = std::vector<unsigned char>;
namespace pb = xcnn::protobuf;
namespace field = xcnn::onnx::detail::field;

// ---- An encoder of onnx::model, so that edited models go through the whole load path ----------

pb::writer encode_tensor(const onnx::tensor& t)
{
    pb::writer w;
    w.repeated_int64(field::tensor_dims, t.dims);
    w.int64(field::tensor_data_type, t.type);
    w.string(field::tensor_name, t.name);
    bytes raw;
    auto put = [&raw](auto v)
    {
        unsigned char b[sizeof(v)];
        xcnn::io::detail::store_scalar(b, v, false);
        raw.insert(raw.end(), b, b + sizeof(v));
    };
    for (const auto v : t.floats)
    {
        put(v);
    }
    for (const auto v : t.doubles)
    {
        put(v);
    }
    for (const auto v : t.int64s)
    {
        put(v);
    }
    w.bytes(field::tensor_raw_data, raw.data(), raw.size());
    return w;
}

pb::writer encode_value_info(const onnx::value_info& v)
{
    pb::writer shape;
    for (std::size_t i = 0; i < v.dims.size(); ++i)
    {
        pb::writer dim;
        if (v.dims[i] >= 0)
        {
            dim.int64(field::dim_value, v.dims[i]);
        }
        else
        {
            dim.string(field::dim_param, v.dim_params[i]);
        }
        shape.message(field::shape_dim, dim);
    }
    pb::writer tensor_type;
    tensor_type.int64(field::tensor_type_elem, v.elem_type);
    tensor_type.message(field::tensor_type_shape, shape);
    pb::writer type;
    type.message(field::type_tensor, tensor_type);
    pb::writer w;
    w.string(field::value_name, v.name);
    w.message(field::value_type, type);
    return w;
}

bytes encode(const onnx::model& m)
{
    pb::writer g;
    for (const auto& n : m.graph.nodes)
    {
        pb::writer w;
        for (const auto& i : n.inputs)
        {
            w.string(field::node_input, i);
        }
        for (const auto& o : n.outputs)
        {
            w.string(field::node_output, o);
        }
        w.string(field::node_name, n.name);
        w.string(field::node_op_type, n.op_type);
        if (!n.domain.empty())
        {
            w.string(field::node_domain, n.domain);
        }
        for (const auto& a : n.attributes)
        {
            pb::writer aw;
            aw.string(field::attr_name, a.name);
            aw.int64(field::attr_type, a.type);
            switch (a.type)
            {
            case onnx::attribute_float:
                aw.float32(field::attr_f, a.f);
                break;
            case onnx::attribute_int:
                aw.int64(field::attr_i, a.i);
                break;
            case onnx::attribute_string:
                aw.string(field::attr_s, a.s);
                break;
            case onnx::attribute_tensor:
                aw.message(field::attr_t, encode_tensor(a.t.at(0)));
                break;
            case onnx::attribute_floats:
                aw.packed_float(field::attr_floats, a.floats);
                break;
            case onnx::attribute_ints:
                aw.repeated_int64(field::attr_ints, a.ints);
                break;
            default:
                break;
            }
            w.message(field::node_attribute, aw);
        }
        g.message(field::graph_node, w);
    }
    g.string(field::graph_name, m.graph.name);
    for (const auto& t : m.graph.initializers)
    {
        g.message(field::graph_initializer, encode_tensor(t));
    }
    for (const auto& v : m.graph.inputs)
    {
        g.message(field::graph_input, encode_value_info(v));
    }
    for (const auto& v : m.graph.outputs)
    {
        g.message(field::graph_output, encode_value_info(v));
    }
    pb::writer w;
    w.int64(field::model_ir_version, m.ir_version);
    w.message(field::model_graph, g);
    for (const auto& o : m.opsets)
    {
        pb::writer ow;
        ow.string(field::opset_domain, o.domain);
        ow.int64(field::opset_version, o.version);
        w.message(field::model_opset_import, ow);
    }
    return w.release();
}

template <class T = float>
xcnn::Network<T> load_bytes(const bytes& b)
{
    return onnx::from_bytes<T>(b.data(), b.size(), "m.onnx");
}

onnx::model fixture_model(const std::string& name)
{
    return onnx::read_model(fixtures + name + "/model.onnx");
}

/// The kinds of the spec's children, nested ones in brackets: "Conv2D ReLU Residual[Conv2D ReLU]".
std::string kinds(const xcnn::layer_spec& s)
{
    std::string out;
    for (const auto& c : s.children)
    {
        out += (out.empty() ? "" : " ") + c.kind;
        if (!c.children.empty())
        {
            out += "[";
            for (std::size_t i = 0; i < c.children.size(); ++i)
            {
                out += (i == 0 ? "" : " | ") + kinds(c.children[i]);
            }
            out += "]";
        }
    }
    return out;
}

const onnx::imported_tensor& weight(const onnx::imported_network& n, const std::string& key)
{
    for (const auto& w : n.weights)
    {
        if (w.key == key)
        {
            return w;
        }
    }
    FAIL("no weight " << key);
    return n.weights.front();
}

onnx::node& node_of(onnx::model& m, const std::string& op, std::size_t which = 0)
{
    for (auto& n : m.graph.nodes)
    {
        if (n.op_type == op && which-- == 0)
        {
            return n;
        }
    }
    FAIL("no node " << op);
    return m.graph.nodes.front();
}

onnx::tensor& initializer_of(onnx::model& m, const std::string& name)
{
    for (auto& t : m.graph.initializers)
    {
        if (t.name == name)
        {
            return t;
        }
    }
    FAIL("no initializer " << name);
    return m.graph.initializers.front();
}

onnx::attribute ints(const std::string& name, std::vector<std::int64_t> v)
{
    onnx::attribute a;
    a.name = name;
    a.type = onnx::attribute_ints;
    a.ints = std::move(v);
    return a;
}

onnx::attribute int1(const std::string& name, std::int64_t v)
{
    onnx::attribute a;
    a.name = name;
    a.type = onnx::attribute_int;
    a.i = v;
    return a;
}

void set_attribute(onnx::node& n, const onnx::attribute& a)
{
    for (auto& x : n.attributes)
    {
        if (x.name == a.name)
        {
            x = a;
            return;
        }
    }
    n.attributes.push_back(a);
}

/// import_graph of `name`'s fixture after `edit` throws a format_error with every string of `parts`.
void require_import_error(const std::string& name, const std::function<void(onnx::model&)>& edit,
                          const std::vector<std::string>& parts, std::size_t in = 4, std::size_t out = 2)
{
    onnx::model m = fixture_model(name);
    edit(m);
    require_error<xcnn::format_error>([&] { (void)onnx::import_graph(m, in, out, "m.onnx"); }, parts);
}

} // namespace

TEST_CASE("onnx::import_graph: PyTorch's exports become xcnn's layers", "[onnx][import]")
{
    SECTION("LeNet with x.view(x.size(0), -1)")
    {
        const auto n = onnx::import_graph(fixture_model("lenet"));
        CHECK(kinds(n.spec) == "Conv2D ReLU MaxPool2D Conv2D ReLU MaxPool2D Flatten Dense ReLU Dense ReLU Dense");
        CHECK(n.input_dims == std::vector<std::int64_t>{-1, 1, 28, 28});
        CHECK(n.output_dims == std::vector<std::int64_t>{-1, 10});
        CHECK(weight(n, "7.weight").shape == std::vector<std::size_t>{32, 400});
        CHECK(weight(n, "0.bias").shape == std::vector<std::size_t>{6});
        CHECK(n.weights.size() == 10);
        const auto& conv = n.spec.children[0];
        CHECK(*conv.find("padding") == std::vector<double>{2, 2});
        CHECK(*conv.find("kernel_size") == std::vector<double>{5, 5});
        CHECK(*conv.find("bias") == std::vector<double>{1});
    }
    SECTION("the resnet: BatchNorm folded into the convolutions, two kinds of Residual, ReduceMean")
    {
        const auto n = onnx::import_graph(fixture_model("resnet"));
        CHECK(kinds(n.spec) == "Conv2D ReLU MaxPool2D Residual[Conv2D ReLU Conv2D] ReLU "
                               "Residual[Conv2D ReLU Conv2D | Conv2D] ReLU Residual[Conv2D ReLU Conv2D] ReLU "
                               "GlobalAvgPool2D Dense");
        CHECK(weight(n, "5.shortcut.0.weight").shape == std::vector<std::size_t>{16, 8, 1, 1});
        CHECK(weight(n, "5.shortcut.0.bias").shape == std::vector<std::size_t>{16}); // the folded BatchNorm
        CHECK(*n.spec.children[5].children[0].children[0].find("stride") == std::vector<double>{2, 2});
    }
    SECTION("the resnet exported with its BatchNormalization nodes and GlobalAveragePool")
    {
        const auto n = onnx::import_graph(fixture_model("resnet_bn"));
        CHECK(kinds(n.spec) == "Conv2D BatchNorm2D ReLU MaxPool2D Residual[Conv2D BatchNorm2D ReLU Conv2D BatchNorm2D] "
                               "ReLU Residual[Conv2D BatchNorm2D ReLU Conv2D BatchNorm2D | Conv2D BatchNorm2D] ReLU "
                               "Residual[Conv2D BatchNorm2D ReLU Conv2D BatchNorm2D] ReLU GlobalAvgPool2D Dense");
        const auto& bn = n.spec.children[1];
        CHECK(*bn.find("eps") == std::vector<double>{1e-5});
        CHECK(*bn.find("momentum") == std::vector<double>{0.1});
        CHECK(weight(n, "6.shortcut.1.running_var").shape == std::vector<std::size_t>{16});
        // The file's values, exactly.
        onnx::model m = fixture_model("resnet_bn");
        const auto& var = initializer_of(m, "6.shortcut.1.running_var").floats;
        CHECK(weight(n, "6.shortcut.1.running_var").values == std::vector<double>(var.begin(), var.end()));
    }
    SECTION("a depthwise block")
    {
        const auto n = onnx::import_graph(fixture_model("depthwise"));
        CHECK(kinds(n.spec) ==
              "Conv2D ReLU Residual[Conv2D ReLU Conv2D ReLU Conv2D] Conv2D ReLU GlobalAvgPool2D Dense");
        const auto& dw = n.spec.children[2].children[0].children[2];
        CHECK(*dw.find("groups") == std::vector<double>{16});
        CHECK(*dw.find("dilation") == std::vector<double>{2, 2});
        CHECK(*dw.find("in_channels") == std::vector<double>{16});
        CHECK(*n.spec.children[3].find("kernel_size") == std::vector<double>{5, 3});
        CHECK(*n.spec.children[3].find("stride") == std::vector<double>{2, 1});
        CHECK(n.output_dims == std::vector<std::int64_t>{-1, 5});
    }
    SECTION("the operator zoo: LeakyRelu, GELU, Pad + AveragePool, Dropout, MatMul, BatchNorm1d, reshape(-1, K)")
    {
        const auto n = onnx::import_graph(fixture_model("zoo"));
        CHECK(kinds(n.spec) == "Conv2D LeakyReLU MaxPool2D Conv2D GELU AvgPool2D Residual[Conv2D Tanh] Flatten "
                               "Dense BatchNorm1D Sigmoid Dense");
        CHECK(*n.spec.children[1].find("negative_slope") == std::vector<double>{0.1}); // not 0.1f
        CHECK(*n.spec.children[5].find("padding") == std::vector<double>{1, 1});       // from the Pad node
        CHECK(*n.spec.children[2].find("padding") == std::vector<double>{1, 1});
        CHECK(*n.spec.children[9].find("eps") == std::vector<double>{1e-3});
        // Linear(bias=False) is a MatMul by the transposed weight: back to (out, in), zero bias.
        onnx::model m = fixture_model("zoo");
        const onnx::node& mm = node_of(m, "MatMul");
        const auto& t = initializer_of(m, mm.inputs[1]);
        REQUIRE(t.dims == std::vector<std::int64_t>{120, 12});
        const auto& w = weight(n, "8.weight");
        REQUIRE(w.shape == std::vector<std::size_t>{12, 120});
        CHECK(w.values[5 * 120 + 7] == static_cast<double>(t.floats[7 * 12 + 5]));
        CHECK(weight(n, "8.bias").values == std::vector<double>(12, 0.0));
    }
}

TEST_CASE("onnx::import_graph: graphs xcnn cannot import are format_errors naming the node", "[onnx][import]")
{
    SECTION("a missing initializer")
    {
        require_import_error(
            "seed", [](onnx::model& m) { m.graph.initializers.erase(m.graph.initializers.begin()); },
            {"m.onnx", "node '/0/Conv' (Conv)", "reads '0.weight', which no earlier node, initializer or graph input"});
    }
    SECTION("a weight that is computed, not stored")
    {
        require_import_error("seed", [](onnx::model& m) { node_of(m, "Conv", 1).inputs[1] = "input"; },
                             {"node '/2/Conv' (Conv)", "its weight 'input' is not an initializer or a constant"});
    }
    SECTION("an initializer of the wrong shape")
    {
        require_import_error("seed",
                             [](onnx::model& m)
                             {
                                 auto& b = initializer_of(m, "0.bias");
                                 b.dims = {9};
                                 b.floats.push_back(0);
                             },
                             {"node '/0/Conv' (Conv)", "its bias has shape (9,); expected (8,)"});
        require_import_error("seed",
                             [](onnx::model& m)
                             {
                                 auto& w = initializer_of(m, "2.weight");
                                 w.dims = {16, 4, 3, 3}; // takes 4 channels; the first Conv makes 8
                                 w.floats.resize(16 * 4 * 9);
                             },
                             {"node '/2/Conv' (Conv)", "takes 4 channels, but its input has shape (-1, 8, 10, 10)"});
        require_import_error("seed",
                             [](onnx::model& m)
                             {
                                 auto& w = initializer_of(m, "5.weight");
                                 w.dims = {10, 1599};
                                 w.floats.resize(15990);
                             },
                             {"node '/5/Gemm' (Gemm)", "takes 1599 features, but its input has shape (-1, 1600)"});
        require_import_error(
            "resnet_bn",
            [](onnx::model& m)
            {
                auto& v = initializer_of(m, "1.running_var");
                v.dims = {7};
                v.floats.resize(7);
            },
            {"node '/1/BatchNormalization' (BatchNormalization)", "its var has shape (7,); expected (8,)"});
        require_import_error("seed",
                             [](onnx::model& m)
                             {
                                 auto& w = initializer_of(m, "0.weight");
                                 w.dims = {8, 1, 9};
                             },
                             {"node '/0/Conv' (Conv)", "its weight '0.weight' has shape (8, 1, 9); expected rank 4"});
    }
    SECTION("unsupported operators")
    {
        require_import_error("seed", [](onnx::model& m) { node_of(m, "Relu").op_type = "Softplus"; },
                             {"node '/1/Relu' (Softplus)", "is not supported"});
        require_import_error("seed", [](onnx::model& m) { node_of(m, "Relu").domain = "com.microsoft"; },
                             {"node '/1/Relu' (Relu)", "domain 'com.microsoft'"});
        require_import_error("zoo", [](onnx::model& m) { node_of(m, "Erf").op_type = "Tanh"; },
                             {"(Div)", "GELU's erf form"});
    }
    SECTION("unsupported attributes")
    {
        require_import_error(
            "seed",
            [](onnx::model& m) {
                set_attribute(node_of(m, "Conv"), ints("pads", {0, 1, 2, 1}));
            },
            {"node '/0/Conv' (Conv)", "attribute 'pads' (0, 1, 2, 1)", "pads the two sides of an axis differently"});
        require_import_error("lenet",
                             [](onnx::model& m) { set_attribute(node_of(m, "MaxPool"), int1("ceil_mode", 1)); },
                             {"node '/2/MaxPool' (MaxPool)", "attribute 'ceil_mode' = 1 is not supported"});
        require_import_error("seed", [](onnx::model& m) { set_attribute(node_of(m, "Relu"), int1("frobnicate", 1)); },
                             {"node '/1/Relu' (Relu)", "attribute 'frobnicate' is not supported"});
        require_import_error("seed", [](onnx::model& m) { set_attribute(node_of(m, "Gemm"), int1("transA", 1)); },
                             {"node '/5/Gemm' (Gemm)", "attribute 'transA' = 1 is not supported"});
        require_import_error("zoo",
                             [](onnx::model& m)
                             {
                                 onnx::attribute a;
                                 a.name = "auto_pad";
                                 a.type = onnx::attribute_string;
                                 a.s = "SAME_UPPER";
                                 set_attribute(node_of(m, "Conv"), a);
                             },
                             {"(Conv)", "attribute 'auto_pad' = 'SAME_UPPER' is not supported"});
        require_import_error(
            "lenet",
            [](onnx::model& m)
            {
                set_attribute(node_of(m, "MaxPool"), ints("pads", {1, 1, 1, 1}));
                set_attribute(node_of(m, "MaxPool"), ints("kernel_shape", {2, 2}));
                node_of(m, "MaxPool").op_type = "AveragePool";
            },
            {"node '/2/MaxPool' (AveragePool)", "attribute 'count_include_pad' = 0 with pads is not supported"});
        require_import_error("seed",
                             [](onnx::model& m) {
                                 set_attribute(node_of(m, "Conv"), ints("strides", {0, 1}));
                             },
                             {"node '/0/Conv' (Conv)", "attribute 'strides' (0, 1) has a value outside [1, "});
        require_import_error("seed", [](onnx::model& m) { set_attribute(node_of(m, "Conv"), int1("group", 3)); },
                             {"node '/0/Conv' (Conv)", "attribute 'group' = 3 does not divide its 8 output channels"});
        require_import_error("zoo",
                             [](onnx::model& m)
                             {
                                 onnx::attribute a;
                                 a.name = "alpha";
                                 a.type = onnx::attribute_float;
                                 a.f = -0.5f;
                                 set_attribute(node_of(m, "LeakyRelu"), a);
                             },
                             {"(LeakyRelu)", "attribute 'alpha' = -0.5 is not supported"});
        require_import_error("seed", [](onnx::model& m) { set_attribute(node_of(m, "Flatten"), int1("axis", 2)); },
                             {"node '/4/Flatten' (Flatten)", "attribute 'axis' = 2 is not supported"});
    }
    SECTION("a graph whose output is not reached, or whose fork never joins")
    {
        require_import_error("seed", [](onnx::model& m) { m.graph.outputs[0].name = node_of(m, "Relu").outputs[0]; },
                             {"output '/1/Relu_output_0' is not reached from input 'input'"});
        require_import_error("seed",
                             [](onnx::model& m)
                             {
                                 onnx::node side = node_of(m, "Relu");
                                 side.name = "side";
                                 side.outputs = {"side_output"};
                                 m.graph.nodes.push_back(side);
                             },
                             {"starts a branch from '/0/Conv_output_0' that never joins"});
        require_import_error("resnet",
                             [](onnx::model& m)
                             {
                                 // The identity block's Add adds the block's input to a value of another block.
                                 node_of(m, "Add", 1).inputs[1] = node_of(m, "Relu", 1).outputs[0];
                             },
                             {"Add"});
        require_import_error("seed",
                             [](onnx::model& m)
                             {
                                 onnx::node again = node_of(m, "Relu");
                                 m.graph.nodes.push_back(again);
                             },
                             {"writes '/1/Relu_output_0', which is already defined"});
    }
    SECTION("shapes that do not fit")
    {
        require_import_error(
            "seed", [](onnx::model&) {}, {"input 'input' has rank 4", "this network takes rank 2"}, 2, 2);
        require_import_error(
            "seed", [](onnx::model&) {}, {"output 'logits' has rank 2; this network returns rank 4"}, 4, 4);
        require_import_error("zoo",
                             [](onnx::model& m)
                             {
                                 for (auto& t : m.graph.initializers)
                                 {
                                     if (t.type == onnx::type_int64 && t.int64s == std::vector<std::int64_t>{-1, 120})
                                     {
                                         t.int64s = {-1, 7};
                                     }
                                 }
                                 for (auto& n : m.graph.nodes)
                                 {
                                     if (n.op_type == "Constant" && !n.attributes.empty() &&
                                         !n.attributes[0].t.empty() &&
                                         n.attributes[0].t[0].int64s == std::vector<std::int64_t>{-1, 120})
                                     {
                                         n.attributes[0].t[0].int64s = {-1, 7};
                                     }
                                 }
                             },
                             {"(Reshape)", "reshapes a value of shape (-1, 6, 5, 4) to (-1, 7)"});
        require_import_error("lenet",
                             [](onnx::model& m) {
                                 set_attribute(node_of(m, "MaxPool", 1), ints("kernel_shape", {20, 20}));
                             },
                             {"node '/5/MaxPool' (MaxPool)", "does not fit an input of 10 padded by 0"});
    }
}

TEST_CASE("load_onnx: PyTorch's exports give PyTorch's logits", "[onnx][import]")
{
    // Measured (float): lenet 4.8e-8, seed 2.6e-7, resnet 1.9e-7, resnet_bn 3.3e-7, depthwise
    // 1.3e-7, zoo 3.7e-7 of the largest |logit|.
    for (const std::string name : {"lenet", "seed", "resnet", "resnet_bn", "depthwise", "zoo"})
    {
        INFO(name);
        const xt::xtensor<float, 4> x = xcnn::load_npy<float>(fixtures + name + "/input.npy");
        const xt::xtensor<float, 2> expected = xcnn::load_npy<float>(fixtures + name + "/logits.npy");
        const double scale = xt::amax(xt::abs(expected))();
        REQUIRE(scale > 0.01);
        auto net = xcnn::load_onnx<float>(fixtures + name + "/model.onnx");
        const xt::xtensor<float, 2> y = net.predict(x);
        REQUIRE(y.shape() == expected.shape());
        CHECK(double(xt::amax(xt::abs(y - expected))()) <= 1e-5 * scale);
        // In double, from the same float weights.
        auto netd = xcnn::load_onnx<double>(fixtures + name + "/model.onnx");
        const xt::xtensor<double, 4> xd = xt::cast<double>(x);
        const xt::xtensor<double, 2> yd = netd.predict(xd);
        CHECK(double(xt::amax(xt::abs(yd - xt::cast<double>(expected)))()) <= 1e-5 * scale);
        // The encoder of these tests writes what the reader read: the same network.
        const bytes again = encode(fixture_model(name));
        auto net2 = load_bytes(again);
        CHECK(net2.predict(x) == y);
    }
}

namespace
{

/// save_onnx then load_onnx: the same predictions, bit for bit, and the same parameter names.
template <class T, class Net>
void check_round_trip(Net& net, const std::vector<std::size_t>& input_shape, bool same_names)
{
    onnx_models::randomize(net, 11);
    const auto file = onnx::to_bytes(net, input_shape);
    auto loaded = onnx::from_bytes<T>(file.data(), file.size(), "round trip");
    const auto x = onnx_models::random_input<T>(input_shape, 5);
    const xt::xtensor<T, 2> expected = net.predict(x);
    const xt::xtensor<T, 2> got = loaded.predict(x);
    CHECK(got == expected);
    if (same_names && std::is_same<T, double>::value)
    {
        // The layers themselves: kinds, every option (eps and slopes written as floats come back
        // as the decimals they were) and the nesting.
        CHECK(onnx::import_graph(onnx::parse_model(file.data(), file.size())).spec == net.spec());
    }
    if (same_names)
    {
        std::vector<std::string> a, b;
        for (auto& p : net.parameters())
        {
            a.push_back(p.name());
        }
        for (auto& p : loaded.parameters())
        {
            b.push_back(p.name());
        }
        CHECK(a == b);
        a.clear();
        b.clear();
        for (auto& p : net.buffers())
        {
            a.push_back(p.name());
        }
        for (auto& p : loaded.buffers())
        {
            b.push_back(p.name());
        }
        CHECK(a == b);
    }
}

} // namespace

TEST_CASE("load_onnx: xcnn -> save_onnx -> load_onnx predicts bit for bit what the network did", "[onnx][import]")
{
    SECTION("float")
    {
        auto lenet = mnist_models::make_lenet<float>();
        check_round_trip<float>(lenet, {3, 1, 28, 28}, true);
        auto resnet = mnist_models::make_resnet<float>();
        check_round_trip<float>(resnet, {2, 1, 28, 28}, true);
        auto zoo = onnx_models::make_zoo<float>(); // every other layer; Dropout leaves no layer
        check_round_trip<float>(zoo, onnx_models::zoo_input_shape(4), false);
        auto seed = mnist_models::make_seed_net<float>();
        check_round_trip<float>(seed, {2, 1, 28, 28}, true);
    }
    SECTION("double")
    {
        auto lenet = mnist_models::make_lenet<double>();
        check_round_trip<double>(lenet, {3, 1, 28, 28}, true);
        auto resnet = mnist_models::make_resnet<double>();
        check_round_trip<double>(resnet, {2, 1, 28, 28}, true);
        auto zoo = onnx_models::make_zoo<double>();
        check_round_trip<double>(zoo, onnx_models::zoo_input_shape(4), false);
    }
    SECTION("a network of rank-2 inputs")
    {
        auto mlp = xcnn::Sequential{xcnn::Dense<double>(6, 5), xcnn::Tanh<double>{}, xcnn::BatchNorm1D<double>(5),
                                    xcnn::Dense<double>(5, 3)};
        onnx_models::randomize(mlp, 3);
        const auto file = onnx::to_bytes(mlp, {4, 6});
        auto loaded = onnx::from_bytes<double, 2, 2>(file.data(), file.size());
        xt::xtensor<double, 2> x = xt::reshape_view(xt::arange<double>(24) / 7.0 - 1.5, {4, 6});
        const xt::xtensor<double, 2> expected = mlp.predict(x);
        CHECK(loaded.predict(x) == expected);
    }
}

TEST_CASE("load_onnx: malformed files are format_errors, never a crash", "[onnx][import]")
{
    const onnx::model m = fixture_model("depthwise");
    const bytes file = encode(m);
    SECTION("every truncation")
    {
        std::size_t errors = 0;
        for (std::size_t size = 0; size < file.size(); ++size)
        {
            try
            {
                (void)onnx::from_bytes<float>(file.data(), size, "cut");
            }
            catch (const xcnn::format_error&)
            {
                ++errors;
            }
        }
        CHECK(errors == file.size());
    }
    SECTION("a wrong wire type, a lying length")
    {
        bytes wrong = file;
        // The first field is ir_version (field 1, varint: tag 0x08); as fixed64 (tag 0x09) it reads
        // eight bytes that are not one.
        REQUIRE(wrong[0] == 0x08);
        wrong[0] = 0x0d; // fixed32: the rest no longer lines up with the fields
        require_error<xcnn::format_error>([&] { (void)load_bytes(wrong); }, {"m.onnx"});
        bytes lying{0x08, 0x07, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0x00}; // a graph of 4 GB
        require_error<xcnn::format_error>([&] { (void)load_bytes(lying); },
                                          {"m.onnx", "field 7", "length 4294967295 exceeds"});
    }
    SECTION("a missing initializer, one of the wrong shape, an unsupported operator, through the file")
    {
        onnx::model edited = m;
        edited.graph.initializers.erase(edited.graph.initializers.begin() + 1);
        const std::string missing = m.graph.initializers[1].name;
        require_error<xcnn::format_error>([&] { (void)load_bytes(encode(edited)); },
                                          {"m.onnx", "reads '" + missing + "', which no earlier node, initializer"});
        edited = m;
        node_of(edited, "Gemm").op_type = "Einsum";
        require_error<xcnn::format_error>([&] { (void)load_bytes(encode(edited)); },
                                          {"m.onnx", "(Einsum): is not supported"});
        edited = m;
        auto& w = initializer_of(edited, node_of(edited, "Gemm").inputs[1]);
        w.dims = {5, 4, 2};
        require_error<xcnn::format_error>([&] { (void)load_bytes(encode(edited)); },
                                          {"m.onnx", "(Gemm)", "has shape (5, 4, 2); expected rank 2"});
        edited = m;
        edited.graph.inputs[0].dims = {-1, 4, 12, 10}; // the first convolution takes 3 channels
        edited.graph.inputs[0].dim_params = {"N", "", "", ""};
        require_error<xcnn::format_error>([&] { (void)load_bytes(encode(edited)); },
                                          {"m.onnx", "node '/0/Conv' (Conv)",
                                           "takes 3 channels, but its input has "
                                           "shape (-1, 4, 12, 10)"});
    }
}
