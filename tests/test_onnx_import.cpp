// ONNX import (io/onnx_import.hpp): PyTorch's exports (tests/fixtures/torch_onnx_import.py) become
// the layers and weights xcnn has; every graph xcnn cannot import is a format_error naming the
// node, its operator and the attribute or initializer.
#include "catch_compat.hpp"

#include "support/require_error.hpp"

#include <xcnn/io/onnx.hpp>
#include <xcnn/io/onnx_import.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace
{

namespace onnx = xcnn::onnx;
using xcnn_test::require_error;

const std::string fixtures = std::string(XCNN_TEST_FIXTURES_DIR) + "/onnx_import/";

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
