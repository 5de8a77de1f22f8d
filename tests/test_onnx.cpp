// ONNX export (io/onnx.hpp) and the protobuf wire format under it (io/protobuf.hpp): the writer's
// bytes against protobuf's documented encodings, the reader on every kind of malformed input, and
// exported networks (LeNet, the BatchNorm ResNet, a zoo of every other exportable layer) read back
// with xcnn's own reader: nodes, wiring, attributes and initializer values. ONNX's checker and
// ONNX Runtime check the same files from outside (tests/fixtures/onnx_check.py, onnx_ort_parity.js).
#include "catch_compat.hpp"

#include "consumer/user_layer/softsign.hpp"
#include "support/error_of.hpp"
#include "support/onnx_models.hpp"
#include "support/temp_dir.hpp"

#include "models.hpp" // examples/mnist: LeNet and the ResNet of xcnn-mnist

#include <xcnn/io/onnx.hpp>
#include <xcnn/io/protobuf.hpp>
#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace
{

using xcnn_test::error_of;
using bytes = std::vector<unsigned char>;
namespace pb = xcnn::protobuf;

pb::reader reader_of(const bytes& b)
{
    return pb::reader(b.data(), b.size(), "test.bin", "Message");
}

/// The message of the format_error that reading every field of `b` (recursing into every
/// length-delimited field as a message when `nested`) throws.
std::string read_all_error(const bytes& b, bool nested, std::size_t max_depth = pb::default_max_depth)
{
    struct walker
    {
        bool nested;
        void walk(pb::reader r)
        {
            while (r.next())
            {
                if (nested && r.type() == pb::wire_type::length_delimited)
                {
                    walk(r.message("m"));
                }
                else
                {
                    r.skip();
                }
            }
        }
    };
    return error_of([&] { walker{nested}.walk(pb::reader(b.data(), b.size(), "test.bin", "Message", max_depth)); });
}

// ---- protobuf -------------------------------------------------------------------------------------

TEST_CASE("protobuf writer: the encodings of protobuf's documentation", "[onnx][protobuf]")
{
    pb::writer w;
    w.varint(1, 150); // the "a = 150" example: 08 96 01
    CHECK(w.data() == bytes{0x08, 0x96, 0x01});
    pb::writer s;
    s.string(2, "testing"); // 12 07 74 65 73 74 69 6e 67
    CHECK(s.data() == bytes{0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g'});
    pb::writer n;
    n.message(3, w); // 1a 03 08 96 01
    CHECK(n.data() == bytes{0x1a, 0x03, 0x08, 0x96, 0x01});
    pb::writer p;
    p.packed_int64(4, {3, 270, 86942}); // 22 06 03 8e 02 9e a7 05
    CHECK(p.data() == bytes{0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05});
    pb::writer unpacked;
    unpacked.repeated_int64(4, {3, 270}); // proto2's default for repeated scalars: 20 03 20 8e 02
    CHECK(unpacked.data() == bytes{0x20, 0x03, 0x20, 0x8e, 0x02});
    pb::writer neg;
    neg.int64(1, -1); // ten bytes: 08 ff ff ff ff ff ff ff ff ff 01
    CHECK(neg.data() == bytes{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01});
    pb::writer f;
    f.float32(5, 1.0f); // 2d 00 00 80 3f
    CHECK(f.data() == bytes{0x2d, 0x00, 0x00, 0x80, 0x3f});
    pb::writer big;
    big.varint(pb::max_field_number, 0); // the largest field number: a five-byte tag
    CHECK(big.size() == 6);
    CHECK_THROWS_AS(big.varint(0, 0), xcnn::value_error);
    CHECK_THROWS_AS(big.varint(pb::max_field_number + 1, 0), xcnn::value_error);
}

TEST_CASE("protobuf reader: reads back what the writer wrote, packed or not, and skips the rest", "[onnx][protobuf]")
{
    pb::writer inner;
    inner.string(1, "inner");
    pb::writer w;
    w.varint(1, std::numeric_limits<std::uint64_t>::max());
    w.int64(2, -5);
    w.fixed32(3, 0xdeadbeef);
    w.fixed64(4, 0x0123456789abcdefull);
    w.float32(5, -2.5f);
    w.float64(6, 0.1);
    w.string(7, std::string("a\0b", 3));
    w.message(8, inner);
    w.packed_int64(9, {-1, 0, 1, 1 << 20});
    w.int64(9, 42); // the same field unpacked: parsers accept both
    w.packed_float(10, {1.5f, -0.0f});
    w.float32(10, 3.0f);
    w.varint(99, 7); // unknown: skipped
    const bytes b = w.release();

    auto r = reader_of(b);
    std::vector<std::int64_t> ints;
    std::vector<std::uint32_t> floats;
    int seen = 0;
    while (r.next())
    {
        ++seen;
        switch (r.field())
        {
        case 1:
            CHECK(r.uint64() == std::numeric_limits<std::uint64_t>::max());
            break;
        case 2:
            CHECK(r.int64() == -5);
            break;
        case 3:
            CHECK(r.fixed32() == 0xdeadbeefu);
            break;
        case 4:
            CHECK(r.fixed64() == 0x0123456789abcdefull);
            break;
        case 5:
            CHECK(r.float32() == -2.5f);
            break;
        case 6:
            CHECK(r.float64() == 0.1);
            break;
        case 7:
            CHECK(r.string() == std::string("a\0b", 3));
            break;
        case 8:
        {
            auto m = r.message("inner");
            CHECK(m.path() == "Message.inner");
            REQUIRE(m.next());
            CHECK(m.string() == "inner");
            CHECK_FALSE(m.next());
            break;
        }
        case 9:
            r.append_int64(ints);
            break;
        case 10:
            r.append_fixed<32>(floats);
            break;
        default:
            CHECK(r.field() == 99);
            r.skip();
        }
    }
    CHECK(seen == 13);
    CHECK(ints == std::vector<std::int64_t>{-1, 0, 1, 1 << 20, 42});
    REQUIRE(floats.size() == 3);
    float values[3];
    std::memcpy(values, floats.data(), sizeof values);
    CHECK(values[0] == 1.5f);
    CHECK(std::signbit(values[1]));
    CHECK(values[2] == 3.0f);
}

TEST_CASE("protobuf reader: malformed input is a format_error naming the source, field and offset", "[onnx][protobuf]")
{
    SECTION("a truncated varint")
    {
        const std::string e = read_all_error({0x08, 0x96}, false);
        CHECK(e.find("test.bin: Message field 1 at byte 0: a varint is cut off") != std::string::npos);
    }
    SECTION("a truncated tag")
    {
        CHECK(read_all_error({0x08, 0x01, 0x80}, false).find("at byte 2: a field tag is cut off") != std::string::npos);
    }
    SECTION("a truncated fixed32 and fixed64")
    {
        CHECK(read_all_error({0x2d, 0x00, 0x00, 0x80}, false).find("needs 4 bytes but 3 remain") != std::string::npos);
        CHECK(read_all_error({0x09, 1, 2, 3, 4, 5, 6, 7}, false).find("needs 8 bytes but 7 remain") !=
              std::string::npos);
    }
    SECTION("a varint above 64 bits")
    {
        CHECK(read_all_error({0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, false)
                  .find("does not fit 64 bits") != std::string::npos);
        CHECK(read_all_error({0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00}, false)
                  .find("does not fit 64 bits") != std::string::npos);
    }
    SECTION("a lying length: longer than what remains, up to 2^64 - 1, never allocated")
    {
        CHECK(read_all_error({0x08, 0x01, 0x12, 0x05, 'a', 'b'}, false)
                  .find("test.bin: Message field 2 at byte 2: length 5 exceeds the 2 bytes left") != std::string::npos);
        const bytes huge{0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'x'};
        CHECK(read_all_error(huge, false).find("length 18446744073709551615 exceeds the 1 bytes left") !=
              std::string::npos);
        // A nested message whose length runs past its parent's end, though not past the buffer's.
        const bytes nested{0x0a, 0x02, 0x12, 0x03, 'a', 'b', 'c'};
        CHECK(read_all_error(nested, true).find("Message.m field 2 at byte 2: length 3 exceeds the 0 bytes left") !=
              std::string::npos);
    }
    SECTION("wrong wire types")
    {
        pb::writer w;
        w.varint(3, 1);
        const bytes b = w.release();
        auto r = reader_of(b);
        REQUIRE(r.next());
        const std::string e = error_of([&] { (void)r.string(); });
        CHECK(e == "test.bin: Message field 3 at byte 0: has wire type 0 but must be length-delimited bytes (wire "
                   "type 2)");
        CHECK_THROWS_AS(r.float32(), xcnn::format_error);
        CHECK_THROWS_AS(r.float64(), xcnn::format_error);
        CHECK_THROWS_AS(r.message("m"), xcnn::format_error);
        CHECK(r.uint64() == 1); // the right accessor still works
        CHECK(read_all_error({0x0b, 0x00}, false).find("wire type 3 (a group") != std::string::npos);
        CHECK(read_all_error({0x0e, 0x00}, false).find("wire type 6 does not exist") != std::string::npos);
        CHECK(read_all_error({0x00, 0x00}, false).find("field number 0 is outside") != std::string::npos);
        // Packed floats whose length is not a multiple of four.
        pb::writer p;
        p.bytes(4, "abcde", 5);
        const bytes pf = p.release();
        auto rp = reader_of(pf);
        REQUIRE(rp.next());
        std::vector<std::uint32_t> out;
        CHECK(error_of([&] { rp.append_fixed<32>(out); }).find("take 5 bytes, not a multiple of 4") !=
              std::string::npos);
        // A varint inside a packed field cut off by the field's end.
        pb::writer pv;
        pv.bytes(4, "\x01\x80", 2);
        const bytes pvb = pv.release();
        auto rv = reader_of(pvb);
        REQUIRE(rv.next());
        std::vector<std::int64_t> ints;
        CHECK(error_of([&] { rv.append_int64(ints); }).find("a packed varint is cut off") != std::string::npos);
        // An int32 field holding a value beyond 32 bits.
        pb::writer i;
        i.int64(1, std::int64_t(1) << 40);
        const bytes ib = i.release();
        auto ri = reader_of(ib);
        REQUIRE(ri.next());
        CHECK(error_of([&] { (void)ri.int32(); }).find("does not fit an int32") != std::string::npos);
    }
    SECTION("messages nested too deep")
    {
        pb::writer w;
        w.varint(1, 1);
        for (int level = 0; level < 40; ++level)
        {
            pb::writer outer;
            outer.message(2, w);
            w = outer;
        }
        const bytes b = w.release();
        CHECK(read_all_error(b, true).find("messages nest deeper than 32 levels") != std::string::npos);
        CHECK(read_all_error(b, true, 40) == "(no exception)");
    }
}

// ---- export -----------------------------------------------------------------------------------

/// The attribute `key` of `n`, which must exist.
const xcnn::onnx::attribute& attr(const xcnn::onnx::node& n, const std::string& key)
{
    const auto* a = n.find(key);
    INFO("node " << n.name << " (" << n.op_type << ") attribute " << key);
    REQUIRE(a != nullptr);
    return *a;
}

std::vector<std::string> op_types(const xcnn::onnx::graph& g)
{
    std::vector<std::string> ops;
    for (const auto& n : g.nodes)
    {
        ops.push_back(n.op_type);
    }
    return ops;
}

/// Checks that every initializer of `g` holds exactly the values of the parameter or buffer of
/// `net` of the same name, and that every parameter and every buffer but num_batches_tracked
/// is there.
template <class Net>
void check_initializers(const xcnn::onnx::graph& g, Net& net)
{
    using T = typename Net::value_type;
    std::map<std::string, std::vector<T>> state;
    std::map<std::string, std::vector<std::int64_t>> shapes;
    auto add = [&](const auto& handle)
    {
        state[handle.name()] = std::vector<T>(handle.data(), handle.data() + handle.size());
        const auto s = handle.shape();
        shapes[handle.name()] = std::vector<std::int64_t>(s.begin(), s.end());
    };
    for (const auto& p : net.parameters())
    {
        add(p);
    }
    for (const auto& b : net.buffers())
    {
        if (b.name().find("num_batches_tracked") == std::string::npos)
        {
            add(b);
        }
    }
    std::size_t weights = 0;
    for (const auto& t : g.initializers)
    {
        if (t.name.rfind("const.", 0) == 0)
        {
            continue;
        }
        INFO("initializer " << t.name);
        ++weights;
        REQUIRE(state.count(t.name) == 1);
        CHECK(t.dims == shapes[t.name]);
        const auto& want = state[t.name];
        if constexpr (std::is_same<T, float>::value)
        {
            CHECK(t.type == xcnn::onnx::type_float);
            CHECK(t.floats == want);
        }
        else
        {
            CHECK(t.type == xcnn::onnx::type_double);
            CHECK(t.doubles == want);
        }
    }
    CHECK(weights == state.size());
}

/// Checks that the nodes form a chain from "input" to "output" in which every input is the
/// graph's input, an initializer or an earlier node's output.
void check_wiring(const xcnn::onnx::graph& g)
{
    std::vector<std::string> known{"input"};
    for (const auto& t : g.initializers)
    {
        known.push_back(t.name);
    }
    for (const auto& n : g.nodes)
    {
        for (const auto& i : n.inputs)
        {
            INFO("node " << n.name << " reads " << i);
            CHECK(std::find(known.begin(), known.end(), i) != known.end());
        }
        REQUIRE(n.outputs.size() == 1);
        CHECK(std::find(known.begin(), known.end(), n.outputs[0]) == known.end());
        known.push_back(n.outputs[0]);
    }
    REQUIRE_FALSE(g.nodes.empty());
    CHECK(g.nodes.back().outputs[0] == "output");
}

TEST_CASE("save_onnx: LeNet as Conv, Relu, MaxPool, Flatten and Gemm, read back", "[onnx]")
{
    auto net = mnist_models::make_lenet<float>();
    onnx_models::randomize(net, 3);
    xcnn_test::temp_dir dir;
    const std::string path = dir / "lenet.onnx";
    xcnn::save_onnx(net, path, {1, 1, 28, 28});
    const xcnn::onnx::model m = xcnn::onnx::read_model(path);
    CHECK(m.ir_version == 7);
    REQUIRE(m.opsets.size() == 1);
    CHECK(m.opsets[0].domain.empty());
    CHECK(m.opsets[0].version == 13);
    CHECK(m.producer_name == "xcnn");
    const auto& g = m.graph;
    CHECK(op_types(g) == std::vector<std::string>{"Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten",
                                                  "Gemm", "Relu", "Gemm", "Relu", "Gemm"});
    check_wiring(g);
    check_initializers(g, net);
    const auto& conv = g.nodes[0];
    CHECK(conv.name == "0");
    CHECK(conv.inputs == std::vector<std::string>{"input", "0.weight", "0.bias"});
    CHECK(attr(conv, "kernel_shape").ints == std::vector<std::int64_t>{5, 5});
    CHECK(attr(conv, "strides").ints == std::vector<std::int64_t>{1, 1});
    CHECK(attr(conv, "pads").ints == std::vector<std::int64_t>{2, 2, 2, 2});
    CHECK(attr(conv, "dilations").ints == std::vector<std::int64_t>{1, 1});
    CHECK(attr(conv, "group").i == 1);
    CHECK(attr(conv, "group").type == xcnn::onnx::attribute_int);
    CHECK(attr(conv, "pads").type == xcnn::onnx::attribute_ints);
    const auto& pool = g.nodes[2];
    CHECK(attr(pool, "kernel_shape").ints == std::vector<std::int64_t>{2, 2});
    CHECK(attr(pool, "strides").ints == std::vector<std::int64_t>{2, 2});
    CHECK(attr(pool, "pads").ints == std::vector<std::int64_t>{0, 0, 0, 0});
    CHECK(attr(g.nodes[6], "axis").i == 1);
    const auto& gemm = g.nodes[7];
    CHECK(gemm.inputs == std::vector<std::string>{"6", "7.weight", "7.bias"});
    CHECK(attr(gemm, "transB").i == 1);
    REQUIRE(g.inputs.size() == 1);
    CHECK(g.inputs[0].name == "input");
    CHECK(g.inputs[0].elem_type == xcnn::onnx::type_float);
    CHECK(g.inputs[0].dims == std::vector<std::int64_t>{-1, 1, 28, 28});
    CHECK(g.inputs[0].dim_params == std::vector<std::string>{"N", "", "", ""});
    REQUIRE(g.outputs.size() == 1);
    CHECK(g.outputs[0].name == "output");
    CHECK(g.outputs[0].dims == std::vector<std::int64_t>{-1, 10});
    // The bytes save_onnx wrote are those of to_bytes.
    CHECK(xcnn_test::read_bytes(path) == xcnn::onnx::to_bytes(net, {1, 1, 28, 28}));
}

TEST_CASE("save_onnx: the ResNet's BatchNorm, Residual (identity and projection) and global pooling", "[onnx]")
{
    auto net = mnist_models::make_resnet<float>();
    onnx_models::randomize(net, 4);
    const auto b = xcnn::onnx::to_bytes(net, {2, 1, 28, 28});
    const auto m = xcnn::onnx::parse_model(b.data(), b.size(), "resnet");
    const auto& g = m.graph;
    check_wiring(g);
    check_initializers(g, net);
    const auto ops = op_types(g);
    CHECK(std::count(ops.begin(), ops.end(), "BatchNormalization") == 8);
    CHECK(std::count(ops.begin(), ops.end(), "Conv") == 8);
    CHECK(std::count(ops.begin(), ops.end(), "Add") == 3);
    CHECK(ops[ops.size() - 3] == "GlobalAveragePool");
    CHECK(ops[ops.size() - 2] == "Flatten");
    CHECK(ops.back() == "Gemm");
    const auto& bn = g.nodes[1];
    CHECK(bn.op_type == "BatchNormalization");
    CHECK(bn.inputs == std::vector<std::string>{"0", "1.weight", "1.bias", "1.running_mean", "1.running_var"});
    CHECK(attr(bn, "epsilon").f == 1e-5f);
    CHECK(attr(bn, "momentum").f == 0.9f); // ONNX weighs the running value: 1 - PyTorch's 0.1
    CHECK(attr(bn, "epsilon").type == xcnn::onnx::attribute_float);
    // The projection block (layer 6): main and shortcut both read its input, Add sums them.
    const xcnn::onnx::node* add = nullptr;
    for (const auto& n : g.nodes)
    {
        if (n.name == "6")
        {
            add = &n;
        }
    }
    REQUIRE(add != nullptr);
    CHECK(add->op_type == "Add");
    CHECK(add->inputs == std::vector<std::string>{"6.main.4", "6.shortcut.1"});
    const auto* shortcut_conv = &g.nodes[0];
    for (const auto& n : g.nodes)
    {
        if (n.name == "6.shortcut.0")
        {
            shortcut_conv = &n;
        }
    }
    CHECK(shortcut_conv->inputs == std::vector<std::string>{"5", "6.shortcut.0.weight"}); // no bias
    CHECK(attr(*shortcut_conv, "strides").ints == std::vector<std::int64_t>{2, 2});
    CHECK(attr(*shortcut_conv, "kernel_shape").ints == std::vector<std::int64_t>{1, 1});
    // The identity block (layer 4) adds its input.
    for (const auto& n : g.nodes)
    {
        if (n.name == "4")
        {
            CHECK(n.inputs == std::vector<std::string>{"4.main.4", "3"});
        }
    }
}

TEST_CASE("save_onnx: depthwise, dilated, strided and non-square convolutions, padded pools, GELU, "
          "LeakyReLU, BatchNorm1D, Dropout left out, in float and double",
          "[onnx]")
{
    auto check = [](auto net)
    {
        using T = typename decltype(net)::value_type;
        onnx_models::randomize(net, 5);
        const auto b = xcnn::onnx::to_bytes(net, onnx_models::zoo_input_shape(1));
        const auto m = xcnn::onnx::parse_model(b.data(), b.size(), "zoo");
        const auto& g = m.graph;
        check_wiring(g);
        check_initializers(g, net);
        CHECK(op_types(g) == std::vector<std::string>{"Conv",
                                                      "BatchNormalization",
                                                      "LeakyRelu",
                                                      "Conv",
                                                      "Div",
                                                      "Erf",
                                                      "Add",
                                                      "Mul",
                                                      "Mul",
                                                      "Conv",
                                                      "Sigmoid",
                                                      "MaxPool",
                                                      "AveragePool",
                                                      "Conv",
                                                      "Tanh",
                                                      "Add",
                                                      "Flatten",
                                                      "Gemm",
                                                      "BatchNormalization",
                                                      "Tanh",
                                                      "Gemm"});
        const auto& first = g.nodes[0];
        CHECK(attr(first, "kernel_shape").ints == std::vector<std::int64_t>{3, 5});
        CHECK(attr(first, "pads").ints == std::vector<std::int64_t>{1, 2, 1, 2});
        CHECK(attr(g.nodes[1], "epsilon").f == 1e-3f);
        CHECK(attr(g.nodes[1], "momentum").f == static_cast<float>(T(1) - T(0.2)));
        CHECK(attr(g.nodes[2], "alpha").f == 0.2f);
        const auto& depthwise = g.nodes[3];
        CHECK(depthwise.inputs == std::vector<std::string>{"2", "3.weight"});
        CHECK(attr(depthwise, "group").i == 8);
        // GELU: x * 0.5 * (1 + erf(x / sqrt 2)), its constants scalar initializers.
        CHECK(g.nodes[4].inputs == std::vector<std::string>{"3", "const.sqrt2"});
        CHECK(g.nodes[6].inputs == std::vector<std::string>{"4/erf", "const.one"});
        CHECK(g.nodes[7].inputs == std::vector<std::string>{"3", "4/add"});
        CHECK(g.nodes[8].inputs == std::vector<std::string>{"4/mul", "const.half"});
        const auto* sqrt2 = g.find_initializer("const.sqrt2");
        REQUIRE(sqrt2 != nullptr);
        CHECK(sqrt2->dims.empty());
        if constexpr (std::is_same<T, float>::value)
        {
            CHECK(sqrt2->floats == std::vector<float>{std::sqrt(2.0f)});
        }
        else
        {
            CHECK(sqrt2->doubles == std::vector<double>{std::sqrt(2.0)});
        }
        const auto& dilated = g.nodes[9];
        CHECK(attr(dilated, "dilations").ints == std::vector<std::int64_t>{2, 2});
        CHECK(attr(dilated, "strides").ints == std::vector<std::int64_t>{2, 2});
        CHECK(attr(dilated, "pads").ints == std::vector<std::int64_t>{2, 2, 2, 2});
        CHECK(attr(g.nodes[11], "pads").ints == std::vector<std::int64_t>{1, 1, 1, 1});
        CHECK(attr(g.nodes[11], "kernel_shape").ints == std::vector<std::int64_t>{3, 3});
        CHECK(attr(g.nodes[12], "count_include_pad").i == 1);
        CHECK(attr(g.nodes[12], "strides").ints == std::vector<std::int64_t>{1, 1});
        CHECK(g.nodes[15].inputs == std::vector<std::string>{"9.main.1", "8"}); // the identity Residual
        CHECK(g.nodes[16].inputs == std::vector<std::string>{"9"});             // Flatten reads past the Dropout
        CHECK(attr(g.nodes[18], "momentum").f == 0.9f);
        CHECK(g.inputs[0].elem_type == (std::is_same<T, float>::value ? 1 : 11));
        CHECK(g.inputs[0].dims == std::vector<std::int64_t>{-1, 3, 13, 11});
        CHECK(g.outputs[0].dims == std::vector<std::int64_t>{-1, 5});
    };
    check(onnx_models::make_zoo<float>());
    check(onnx_models::make_zoo<double>());
}

TEST_CASE("save_onnx: a layer without an ONNX form, a wrong input shape and an unwritable path are typed "
          "errors that leave the file as it was",
          "[onnx]")
{
    xcnn_test::temp_dir dir;
    const std::string path = dir / "net.onnx";
    auto good = xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3), xcnn::ReLU<float>{}};
    xcnn::save_onnx(good, path, {1, 1, 5, 5});
    const bytes before = xcnn_test::read_bytes(path);

    auto bad = xcnn::Sequential{
        xcnn::Conv2D<float>(1, 2, 3),
        xcnn::Residual(xcnn::Sequential{xcnn::ReLU<float>{}, my::Softsign<float>{}, xcnn::Conv2D<float>(2, 2, 1)})};
    const std::string e = error_of([&] { xcnn::save_onnx(bad, path, {1, 1, 5, 5}); });
    CHECK(e == "save_onnx: layer 1.main.1, Softsign, has no ONNX form (docs/onnx.md lists the layers that have "
               "one)");
    CHECK_THROWS_AS(xcnn::save_onnx(bad, path, {1, 1, 5, 5}), xcnn::value_error);

    CHECK_THROWS_AS(xcnn::save_onnx(good, path, {1, 5, 5}), xcnn::shape_error);
    CHECK(error_of([&] { xcnn::save_onnx(good, path, {1, 3, 5, 5}); }).find("Sequential layer 0") != std::string::npos);
    CHECK_THROWS_AS(xcnn::save_onnx(good, dir / "missing/net.onnx", {1, 1, 5, 5}), xcnn::io_error);
    CHECK(xcnn_test::read_bytes(path) == before);
    CHECK(dir.entries() == std::vector<std::string>{"net.onnx"}); // no temporary file left behind

    // A network of nothing but Dropout still has a node that names its output.
    auto identity = xcnn::Sequential{xcnn::Dropout<float>(0.1)};
    const auto b = xcnn::onnx::to_bytes(identity, {2, 3});
    const auto m = xcnn::onnx::parse_model(b.data(), b.size());
    CHECK(op_types(m.graph) == std::vector<std::string>{"Identity"});
    check_wiring(m.graph);
}

// ---- reading ------------------------------------------------------------------------------------

/// A ModelProto whose graph holds one initializer, the TensorProto `tensor`.
bytes model_with_tensor(const pb::writer& tensor)
{
    pb::writer graph;
    graph.message(5, tensor);
    pb::writer opset;
    opset.int64(2, 13);
    pb::writer model;
    model.int64(1, 7);
    model.message(7, graph);
    model.message(8, opset);
    return model.release();
}

TEST_CASE("onnx::parse_model: tensors in typed fields, and tensors that do not hold what they say", "[onnx]")
{
    auto tensor = [](std::int32_t type, std::vector<std::int64_t> dims)
    {
        pb::writer t;
        t.packed_int64(1, dims);
        t.int64(2, type);
        t.string(8, "w");
        return t;
    };
    auto error_for = [](const pb::writer& t)
    {
        const bytes b = model_with_tensor(t);
        return error_of([&] { (void)xcnn::onnx::parse_model(b.data(), b.size(), "m.onnx"); });
    };
    SECTION("float_data, double_data and int64 values, packed and raw")
    {
        auto f = tensor(xcnn::onnx::type_float, {2});
        f.packed_float(4, {1.5f, -2.0f});
        const bytes bf = model_with_tensor(f);
        const auto mf = xcnn::onnx::parse_model(bf.data(), bf.size());
        REQUIRE(mf.graph.initializers.size() == 1);
        CHECK(mf.graph.initializers[0].floats == std::vector<float>{1.5f, -2.0f});
        CHECK(mf.graph.initializers[0].size() == 2);

        auto d = tensor(xcnn::onnx::type_double, {1, 1});
        d.float64(10, 0.25); // unpacked double_data
        const bytes bd = model_with_tensor(d);
        CHECK(xcnn::onnx::parse_model(bd.data(), bd.size()).graph.initializers[0].doubles == std::vector<double>{0.25});

        auto i = tensor(xcnn::onnx::type_int64, {3});
        i.packed_int64(7, {-1, 0, 5});
        const bytes bi = model_with_tensor(i);
        CHECK(xcnn::onnx::parse_model(bi.data(), bi.size()).graph.initializers[0].int64s ==
              std::vector<std::int64_t>{-1, 0, 5});

        auto r = tensor(xcnn::onnx::type_int64, {});
        const unsigned char raw[8] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        r.bytes(9, raw, 8);
        const bytes br = model_with_tensor(r);
        const auto mr = xcnn::onnx::parse_model(br.data(), br.size());
        CHECK(mr.graph.initializers[0].int64s == std::vector<std::int64_t>{-2});
        CHECK(mr.graph.initializers[0].size() == 1); // a scalar
    }
    SECTION("data that does not match the shape")
    {
        auto t = tensor(xcnn::onnx::type_float, {2, 3});
        t.bytes(9, "12345678", 8);
        CHECK(error_for(t) == "m.onnx: ModelProto.graph.initializer at byte 6: tensor 'w': shape (2, 3) needs 6 "
                              "values but the file holds 8 bytes of raw_data");
        auto f = tensor(xcnn::onnx::type_float, {3});
        f.packed_float(4, {1, 2});
        CHECK(error_for(f).find("shape (3,) needs 3 values but the file holds 2") != std::string::npos);
        auto both = tensor(xcnn::onnx::type_float, {1});
        both.packed_float(4, {1});
        both.bytes(9, "1234", 4);
        CHECK(error_for(both).find("both in raw_data and in a typed field") != std::string::npos);
        auto other = tensor(xcnn::onnx::type_float, {1});
        other.packed_int64(7, {1});
        CHECK(error_for(other).find("in a field of another data type") != std::string::npos);
    }
    SECTION("shapes no tensor can have, types xcnn does not read, external data")
    {
        CHECK(error_for(tensor(xcnn::onnx::type_float, {2, -1})).find("has a negative dimension, (2, -1)") !=
              std::string::npos);
        CHECK(error_for(tensor(xcnn::onnx::type_float, {1ll << 40, 1ll << 40})).find("is too large") !=
              std::string::npos);
        CHECK(error_for(tensor(10, {1})).find("has data type 10; xcnn reads FLOAT (1), DOUBLE (11) and INT64 (7)") !=
              std::string::npos);
        auto external = tensor(xcnn::onnx::type_float, {1});
        external.int64(14, 1);
        CHECK(error_for(external).find("stored outside the file") != std::string::npos);
    }
    SECTION("a file that is not a model")
    {
        const bytes empty;
        CHECK(error_of([&] { (void)xcnn::onnx::parse_model(empty.data(), 0, "e.onnx"); }) ==
              "e.onnx: ModelProto has no graph (field 7): not an ONNX model");
        pb::writer node;
        node.string(1, "x");
        pb::writer graph;
        graph.message(1, node);
        pb::writer model;
        model.message(7, graph);
        pb::writer empty_graph;
        empty_graph.message(7, pb::writer{});
        const bytes no_opset = empty_graph.release();
        CHECK(error_of([&] { (void)xcnn::onnx::parse_model(no_opset.data(), no_opset.size(), "n.onnx"); }) ==
              "n.onnx: ModelProto imports no operator set (field 8), which ONNX requires since IR version 3");
        pb::writer opset;
        opset.int64(2, 13);
        model.message(8, opset);
        const bytes b = model.release();
        CHECK(error_of([&] { (void)xcnn::onnx::parse_model(b.data(), b.size(), "n.onnx"); })
                  .find("n.onnx: ModelProto.graph.node at byte 4: node '' has no op_type") != std::string::npos);
        CHECK_THROWS_AS(xcnn::onnx::read_model("/nonexistent/x.onnx"), xcnn::io_error);
    }
}

TEST_CASE("onnx::parse_model: every truncation of an exported model is a format_error", "[onnx]")
{
    auto net = xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3), xcnn::BatchNorm2D<float>(2), xcnn::GELU<float>{},
                                xcnn::Flatten<float>{}, xcnn::Dense<float>(2 * 3 * 3, 2)};
    const bytes b = xcnn::onnx::to_bytes(net, {1, 1, 5, 5});
    const auto whole = xcnn::onnx::parse_model(b.data(), b.size());
    CHECK(whole.graph.nodes.size() == 9);
    std::size_t errors = 0;
    for (std::size_t n = 0; n < b.size(); ++n)
    {
        // A copy of exactly n bytes, so that reading past them is a sanitizer report.
        const bytes cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
        try
        {
            (void)xcnn::onnx::parse_model(cut.data(), cut.size(), "cut");
        }
        catch (const xcnn::format_error&)
        {
            ++errors;
        }
    }
    // A cut before the end of the graph loses the graph or truncates a field, a cut after it
    // loses the operator set, which is the last field.
    CHECK(errors == b.size());
}

} // namespace

TEST_CASE("save_onnx: a Network writes the file its Sequential writes, byte for byte, and names a layer without "
          "an ONNX form by its index",
          "[onnx][network]")
{
    auto sequential = mnist_models::make_resnet<float>();
    onnx_models::randomize(sequential, 4);
    const xcnn::Network<float> network(sequential);
    CHECK(xcnn::onnx::to_bytes(network, {2, 1, 28, 28}) == xcnn::onnx::to_bytes(sequential, {2, 1, 28, 28}));

    // Residual blocks of Networks, as load_network and load_onnx build them.
    using branch = xcnn::Network<float, 4, 4>;
    auto of_networks =
        xcnn::Sequential{xcnn::Conv2D<float>(1, 4, 3, 1, 1), xcnn::ReLU<float>{},
                         xcnn::Residual(branch(xcnn::Conv2D<float>(4, 4, 3, 1, 1), xcnn::ReLU<float>{}),
                                        branch(xcnn::Conv2D<float>(4, 4, 1), xcnn::BatchNorm2D<float>(4))),
                         xcnn::Flatten<float>{}, xcnn::Dense<float>(4 * 5 * 5, 3)};
    const xcnn::Network<float> nested(of_networks);
    const auto b = xcnn::onnx::to_bytes(nested, {1, 1, 5, 5});
    const auto m = xcnn::onnx::parse_model(b.data(), b.size(), "nested");
    check_wiring(m.graph);
    CHECK(op_types(m.graph) == std::vector<std::string>{"Conv", "Relu", "Conv", "Relu", "Conv", "BatchNormalization",
                                                        "Add", "Flatten", "Gemm"});
    CHECK(m.graph.find_initializer("2.shortcut.1.running_var") != nullptr);
    CHECK(xcnn::onnx::to_bytes(of_networks, {1, 1, 5, 5}) == b);

    xcnn::Network<float> bad(xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3), my::Softsign<float>{}});
    CHECK(error_of(
              [&] {
                  (void)xcnn::onnx::to_bytes(bad, {1, 1, 5, 5});
              }) == "save_onnx: layer 1, Softsign, has no ONNX form (docs/onnx.md lists the layers that have one)");
}
