// libFuzzer harness for the ONNX reader (io/onnx.hpp), the protobuf wire-format reader under it
// (io/protobuf.hpp) and the importer (io/onnx_import.hpp).
//
// Every input is read twice: by onnx::parse_model, and by a schema-less walk that reads every
// field with the accessor of its wire type and descends into every length-delimited field as if it
// were a message, so mutations reach every path of protobuf::reader, not only those ONNX's schema
// leads to. A malformed input must end in an xcnn::format_error; an accepted model must hold what
// the reader documents (tensor values that match their dims and type, nodes with an op type, shapes
// with one symbolic name per dimension). An accepted model then goes through load_onnx's graph
// conversion (as a network of images and as one of rank-2 inputs) and, when that succeeds, is
// built into a Network whose parameters must be the imported weights. No read may run past the input (the replay gives
// the harness a copy of exactly the input's size, which ASan bounds). Anything else (another exception, a crash, a
// sanitizer report, a broken invariant) aborts.
#include "fuzz_check.hpp"

#include <xcnn/io/onnx.hpp>
#include <xcnn/io/onnx_import.hpp>
#include <xcnn/io/protobuf.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace
{

/// Reads every field of `r`; length-delimited ones are tried as nested messages (a format_error in
/// one is what many such fields, strings and packed arrays, give, and is expected), then as bytes
/// and packed arrays. Returns the number of fields read.
std::size_t walk(xcnn::protobuf::reader r)
{
    std::size_t fields = 0;
    while (r.next())
    {
        ++fields;
        XCNN_FUZZ_CHECK(r.field() >= 1 && r.field() <= xcnn::protobuf::max_field_number, "field number in range");
        switch (r.type())
        {
        case xcnn::protobuf::wire_type::varint:
            (void)r.uint64();
            break;
        case xcnn::protobuf::wire_type::fixed32:
            (void)r.float32();
            break;
        case xcnn::protobuf::wire_type::fixed64:
            (void)r.float64();
            break;
        case xcnn::protobuf::wire_type::length_delimited:
        {
            const std::size_t before = r.remaining();
            // A copy of the reader reads the same field three ways.
            xcnn::protobuf::reader as_bytes = r;
            const auto view = as_bytes.bytes();
            XCNN_FUZZ_CHECK(view.size <= before, "a field's bytes lie inside the message");
            XCNN_FUZZ_CHECK(as_bytes.remaining() <= before - view.size, "reading bytes consumes them");
            xcnn::protobuf::reader as_packed = r;
            std::vector<std::int64_t> ints;
            try
            {
                as_packed.append_int64(ints);
                XCNN_FUZZ_CHECK(ints.size() <= view.size, "at most one packed varint per byte");
            }
            catch (const xcnn::format_error&)
            {
            }
            try
            {
                (void)walk(r.message("m"));
            }
            catch (const xcnn::format_error&)
            {
                r = as_bytes; // skip the field, as a reader that knew it was not a message would
            }
            break;
        }
        }
    }
    return fields;
}

void check_tensor(const xcnn::onnx::tensor& t)
{
    std::size_t elements = 1;
    for (const auto d : t.dims)
    {
        XCNN_FUZZ_CHECK(d >= 0, "an accepted tensor has no negative dimension");
        elements *= static_cast<std::size_t>(d);
    }
    XCNN_FUZZ_CHECK(t.size() == elements, "size() is the product of the dims");
    const std::size_t floats = t.type == xcnn::onnx::type_float ? elements : 0;
    const std::size_t doubles = t.type == xcnn::onnx::type_double ? elements : 0;
    const std::size_t int64s = t.type == xcnn::onnx::type_int64 ? elements : 0;
    XCNN_FUZZ_CHECK(t.type == xcnn::onnx::type_float || t.type == xcnn::onnx::type_double ||
                        t.type == xcnn::onnx::type_int64,
                    "an accepted tensor has a type xcnn reads");
    XCNN_FUZZ_CHECK(t.floats.size() == floats && t.doubles.size() == doubles && t.int64s.size() == int64s,
                    "an accepted tensor holds exactly its elements, in the field of its type");
}

void check_model(const xcnn::onnx::model& m)
{
    XCNN_FUZZ_CHECK(!m.opsets.empty(), "an accepted model imports an operator set");
    for (const auto& t : m.graph.initializers)
    {
        check_tensor(t);
    }
    for (const auto& n : m.graph.nodes)
    {
        XCNN_FUZZ_CHECK(!n.op_type.empty(), "an accepted node has an op type");
        for (const auto& a : n.attributes)
        {
            XCNN_FUZZ_CHECK(a.t.size() <= 1, "an attribute holds at most one tensor");
            XCNN_FUZZ_CHECK(a.type != xcnn::onnx::attribute_tensor || a.t.size() == 1,
                            "a TENSOR attribute holds its tensor");
            for (const auto& t : a.t)
            {
                check_tensor(t);
            }
            const auto* found = n.find(a.name);
            XCNN_FUZZ_CHECK(found != nullptr && found->name == a.name, "find() finds every attribute by name");
        }
    }
    for (const auto* values : {&m.graph.inputs, &m.graph.outputs})
    {
        for (const auto& v : *values)
        {
            XCNN_FUZZ_CHECK(v.dims.size() == v.dim_params.size(), "one symbolic name per dimension");
        }
    }
}

std::size_t check_spec(const xcnn::layer_spec& s, std::size_t depth)
{
    XCNN_FUZZ_CHECK(depth <= 2 * xcnn::onnx::detail::graph_converter::max_depth + 2, "specs nest boundedly");
    static const char* const kinds[] = {"Sequential",  "Residual",  "Conv2D",    "Dense",   "BatchNorm2D",
                                        "BatchNorm1D", "MaxPool2D", "AvgPool2D", "ReLU",    "Sigmoid",
                                        "Tanh",        "GELU",      "LeakyReLU", "Flatten", "GlobalAvgPool2D"};
    bool known = false;
    for (const char* k : kinds)
    {
        known = known || s.kind == k;
    }
    XCNN_FUZZ_CHECK(known, "an imported layer is of a kind xcnn has");
    XCNN_FUZZ_CHECK(s.kind != "Residual" || (s.children.size() == 1 || s.children.size() == 2),
                    "a Residual has one or two branches");
    std::size_t layers = 1;
    for (const auto& c : s.children)
    {
        layers += check_spec(c, depth + 1);
    }
    return layers;
}

/// The importer on an accepted model: a format_error, or a network whose weights are the imported ones.
template <int In, int Out>
void check_import(const xcnn::onnx::model& m, const std::vector<unsigned char>& input)
{
    xcnn::onnx::imported_network imported;
    try
    {
        imported = xcnn::onnx::import_graph(m, std::size_t(In), std::size_t(Out), "fuzz");
    }
    catch (const xcnn::format_error&)
    {
        return;
    }
    XCNN_FUZZ_CHECK(imported.spec.kind == "Sequential", "the imported network is a Sequential spec");
    (void)check_spec(imported.spec, 0);
    XCNN_FUZZ_CHECK(imported.input_dims.size() == std::size_t(In) && imported.output_dims.size() == std::size_t(Out),
                    "the imported network has the requested ranks");
    std::size_t values = 0;
    for (const auto& w : imported.weights)
    {
        std::size_t n = 1;
        for (const auto d : w.shape)
        {
            n *= d;
        }
        XCNN_FUZZ_CHECK(n == w.values.size() && n > 0, "an imported weight holds its shape's values");
        values += n;
    }
    try
    {
        auto net = xcnn::onnx::from_bytes<float, In, Out>(input.data(), input.size(), "fuzz");
        std::size_t held = 0;
        for (const auto& p : net.parameters())
        {
            held += p.size();
        }
        for (const auto& b : net.buffers())
        {
            held += b.name().find("num_batches_tracked") == std::string::npos ? b.size() : 0;
        }
        XCNN_FUZZ_CHECK(held == values, "the built network holds exactly the imported weights");
    }
    catch (const xcnn::format_error&)
    {
        // The built network cannot take the file's input shape: the conversion could not know.
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    // An exact-size copy: a read past the input is a heap overflow under ASan, even where libFuzzer's
    // own buffer would have had room.
    const std::vector<unsigned char> input(data, data + size);
    try
    {
        (void)walk(xcnn::protobuf::reader(input.data(), input.size(), "fuzz", "Message"));
    }
    catch (const xcnn::format_error&)
    {
    }
    xcnn::onnx::model m;
    try
    {
        m = xcnn::onnx::parse_model(input.data(), input.size(), "fuzz");
    }
    catch (const xcnn::format_error&)
    {
        return 0;
    }
    check_model(m);
    check_import<4, 2>(m, input);
    check_import<2, 2>(m, input);
    return 0;
}
