// Writes the seed inputs of the fuzz harnesses: valid files as xcnn writes them and hand-made edge
// cases, so the fuzzers start from the real formats and the replay test always sees valid files.
//
//   xcnn_fuzz_seeds OUT_DIR     writes OUT_DIR/idx/*, OUT_DIR/model/*, OUT_DIR/onnx/* and OUT_DIR/spec/*
#include "models.hpp"

#include <xcnn/io/idx.hpp>
#include <xcnn/io/model.hpp>
#include <xcnn/io/onnx.hpp>
#include <xcnn/io/protobuf.hpp>
#include <xcnn/xcnn.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace
{

using bytes = std::vector<unsigned char>;
namespace fs = std::filesystem;

void write(const fs::path& path, const bytes& content)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
    if (!out)
    {
        throw std::runtime_error("cannot write " + path.string());
    }
}

bytes read(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

template <class E>
bytes idx_bytes(const E& e)
{
    std::ostringstream out(std::ios::binary);
    xcnn::io::write_idx(out, e);
    const std::string s = out.str();
    return bytes(s.begin(), s.end());
}

/// An IDX header with any magic bytes and dimensions, then `data`.
bytes raw_idx(unsigned char type, unsigned char rank, const std::vector<std::uint32_t>& dims, const bytes& data)
{
    bytes out{0, 0, type, rank};
    for (auto d : dims)
    {
        unsigned char be[4];
        xcnn::io::detail::store_be(be, d);
        out.insert(out.end(), be, be + 4);
    }
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

void idx_seeds(const fs::path& dir)
{
    std::mt19937 rng(7);
    xt::xtensor<std::uint8_t, 3> images(std::array<std::size_t, 3>{3, 5, 4});
    for (auto& v : images)
    {
        v = static_cast<std::uint8_t>(rng());
    }
    const xt::xtensor<std::uint8_t, 1> labels = {3, 1, 4};
    const bytes image_file = idx_bytes(images);
    write(dir / "images-3x5x4-idx3-ubyte", image_file);
    write(dir / "labels-3-idx1-ubyte", idx_bytes(labels));

    write(dir / "int8", idx_bytes(xt::xtensor<std::int8_t, 1>{-128, 0, 127}));
    write(dir / "int16", idx_bytes(xt::xtensor<std::int16_t, 2>{{-3, 300}, {32767, -32768}}));
    write(dir / "int32", idx_bytes(xt::xtensor<std::int32_t, 1>{-1, 70000, 5}));
    write(dir / "float32", idx_bytes(xt::xtensor<float, 2>{{0.5f, -7.0f}, {3.25f, 1e30f}}));
    write(dir / "float64", idx_bytes(xt::xtensor<double, 1>{1.5, -2.25, 1e300, -0.0}));
    write(dir / "zero-images", raw_idx(0x08, 3, {0, 28, 28}, {}));

    write(dir / "empty", {});
    write(dir / "magic-only", {0, 0, 8});
    write(dir / "rank0", raw_idx(0x08, 0, {}, {}));
    write(dir / "rank17", raw_idx(0x08, 17, {}, {}));
    write(dir / "unknown-type", raw_idx(0x07, 1, {1}, {0}));
    write(dir / "truncated-header", raw_idx(0x08, 3, {3, 5}, {}));
    write(dir / "lying-count", raw_idx(0x08, 3, {60000, 2, 2}, bytes(12, 1)));
    write(dir / "overflow", raw_idx(0x0E, 3, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, bytes(8, 0)));
    bytes extra = image_file;
    extra.push_back(0);
    write(dir / "extra-byte", extra);
    const bytes cut(image_file.begin(), image_file.end() - 1);
    write(dir / "truncated-data", cut);
    write(dir / "gzip-magic-only", {0x1f, 0x8b});

    if (xcnn::io::has_zlib)
    {
        // gzip through xcnn's own writer, as the data scripts store MNIST.
        xcnn::io::save_idx((dir / "images-3x5x4-idx3-ubyte.gz").string(), images);
        xcnn::io::save_idx((dir / "labels-3-idx1-ubyte.gz").string(), labels);
        xcnn::io::write_gzip_file((dir / "truncated-idx.gz").string(), cut.data(), cut.size());
        const bytes gz = read(dir / "images-3x5x4-idx3-ubyte.gz");
        write(dir / "truncated-gzip.gz", bytes(gz.begin(), gz.begin() + static_cast<long>(gz.size() / 2)));
    }
}

/// A model file with `header_size` > 40 (later versions may add header fields).
bytes with_longer_header(const bytes& file, std::size_t extra)
{
    bytes out(file.begin(), file.begin() + 40);
    out.insert(out.end(), extra, 0);
    out.insert(out.end(), file.begin() + 40, file.end() - 4);
    xcnn::io::detail::store_le(out.data() + 12, static_cast<std::uint32_t>(40 + extra));
    xcnn::io::detail::store_le(out.data() + 16, static_cast<std::uint64_t>(out.size() + 4));
    xcnn::io::detail::append_le(out, xcnn::io::detail::crc32(out.data(), out.size()));
    return out;
}

void model_seeds(const fs::path& dir)
{
    auto lenet = mnist_models::make_lenet<float>();
    lenet.reset_parameters(1u);
    xcnn::save(lenet, (dir / "lenet.xcnn").string());

    auto small = xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3), xcnn::ReLU<float>{}, xcnn::MaxPool2D<float>(2),
                                  xcnn::Flatten<float>{}, xcnn::Dense<float>(2 * 3 * 3, 3)};
    small.reset_parameters(2u);
    xcnn::save(small, (dir / "small.xcnn").string());
    auto small_double =
        xcnn::Sequential{xcnn::Conv2D<double>(1, 2, 3), xcnn::ReLU<double>{}, xcnn::MaxPool2D<double>(2),
                         xcnn::Flatten<double>{}, xcnn::Dense<double>(2 * 3 * 3, 3)};
    small_double.reset_parameters(3u);
    xcnn::save(small_double, (dir / "small-double.xcnn").string());

    // Every kind of record: state tensors, a scalar, a record of a kind this version does not know.
    auto file = xcnn::model_state(small);
    const std::vector<std::int64_t> step{1234};
    file.records.push_back(xcnn::io::tensor_record::from("train.step", xcnn::io::record_kind::state, step.data(),
                                                         std::vector<std::size_t>{}));
    const std::vector<float> momentum(4, 0.5f);
    file.records.push_back(xcnn::io::tensor_record::from("optimizer.momentum", xcnn::io::record_kind::state,
                                                         momentum.data(), std::vector<std::size_t>{2, 2}));
    xcnn::io::tensor_record future;
    future.name = "future.thing";
    future.kind = static_cast<xcnn::io::record_kind>(42);
    future.type = static_cast<std::uint8_t>(xcnn::io::dtype::f32);
    future.shape = {2};
    future.data = {1, 2, 3, 4, 5, 6, 7, 8};
    file.records.push_back(future);
    const bytes full = xcnn::io::encode_model(file);
    write(dir / "all-kinds.xcnn", full);
    write(dir / "longer-header.xcnn", with_longer_header(full, 8));

    xcnn::io::model_file empty;
    write(dir / "no-records.xcnn", xcnn::io::encode_model(empty));

    const bytes good = read(dir / "small.xcnn");
    write(dir / "empty", {});
    write(dir / "truncated.xcnn", bytes(good.begin(), good.begin() + static_cast<long>(good.size() / 2)));
    bytes newer = good;
    newer[8] = 2;
    write(dir / "version2.xcnn", newer);
    bytes flipped = good;
    flipped[100] ^= 0x01;
    write(dir / "bad-checksum.xcnn", flipped);
    bytes npy{0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    npy.resize(64, ' ');
    write(dir / "looks-like.npy", npy);
}

/// ONNX files as save_onnx writes them (float and double, every exported operator, the big
/// LeNet for the replay), tensors in every field the reader takes, and broken files.
void onnx_seeds(const fs::path& dir)
{
    namespace pb = xcnn::protobuf;
    auto small = xcnn::Sequential{xcnn::Conv2D<float>(xcnn::Conv2DOptions(2, 4, 3).padding(1).groups(2)),
                                  xcnn::BatchNorm2D<float>(4),
                                  xcnn::ReLU<float>{},
                                  xcnn::MaxPool2D<float>(2),
                                  xcnn::Flatten<float>{},
                                  xcnn::Dense<float>(4 * 2 * 2, 3)};
    const bytes conv = xcnn::onnx::to_bytes(small, {1, 2, 4, 4});
    write(dir / "conv-bn-pool-dense.onnx", conv);
    auto ops = xcnn::Sequential{
        xcnn::Conv2D<double>(xcnn::Conv2DOptions(1, 2, 2).dilation(2).bias(false)),
        xcnn::GELU<double>{},
        xcnn::LeakyReLU<double>(0.1),
        xcnn::AvgPool2D<double>(2, 1, 1),
        xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<double>(2, 2, 1), xcnn::Sigmoid<double>{}, xcnn::Tanh<double>{}}),
        xcnn::GlobalAvgPool2D<double>{},
        xcnn::Dropout<double>(0.5)};
    write(dir / "gelu-pools-residual-double.onnx", xcnn::onnx::to_bytes(ops, {1, 1, 4, 4}));
    write(dir / "lenet.onnx", xcnn::onnx::to_bytes(mnist_models::make_lenet<float>(), {1, 1, 28, 28}));

    // One Constant node whose tensor attribute holds int64_data, an initializer in float_data and
    // one in double_data, a symbolic input.
    pb::writer int_tensor;
    int_tensor.packed_int64(1, {2});
    int_tensor.int64(2, xcnn::onnx::type_int64);
    int_tensor.packed_int64(7, {1, -1});
    pb::writer value;
    value.string(1, "value");
    value.message(5, int_tensor);
    value.int64(20, xcnn::onnx::attribute_tensor);
    pb::writer constant;
    constant.string(2, "shape");
    constant.string(4, "Constant");
    constant.message(5, value);
    pb::writer floats;
    floats.packed_int64(1, {2, 1});
    floats.int64(2, xcnn::onnx::type_float);
    floats.string(8, "f");
    floats.packed_float(4, {0.5f, -1.0f});
    pb::writer doubles;
    doubles.int64(2, xcnn::onnx::type_double);
    doubles.string(8, "d");
    doubles.float64(10, 2.0);
    pb::writer dim;
    dim.string(2, "batch");
    pb::writer shape;
    shape.message(1, dim);
    pb::writer tensor_type;
    tensor_type.int64(1, xcnn::onnx::type_float);
    tensor_type.message(2, shape);
    pb::writer type;
    type.message(1, tensor_type);
    pb::writer input;
    input.string(1, "x");
    input.message(2, type);
    pb::writer graph;
    graph.message(1, constant);
    graph.message(5, floats);
    graph.message(5, doubles);
    graph.message(11, input);
    pb::writer opset;
    opset.int64(2, 13);
    pb::writer model;
    model.int64(1, 8);
    model.message(7, graph);
    model.message(8, opset);
    write(dir / "typed-fields.onnx", model.release());

    write(dir / "empty", {});
    write(dir / "truncated.onnx", bytes(conv.begin(), conv.begin() + static_cast<long>(conv.size() / 2)));
    pb::writer deep;
    deep.varint(1, 1);
    for (int level = 0; level < 40; ++level)
    {
        pb::writer outer;
        outer.message(7, deep);
        deep = outer;
    }
    write(dir / "deep.bin", deep.release());
    // A length of 2^62 where two bytes follow.
    write(dir / "lying-length.bin", {0x3a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x08, 0x01});
}

/// The text of a spec.
bytes spec_text(const xcnn::layer_spec& spec)
{
    const std::string text = xcnn::to_string(spec);
    return bytes(text.begin(), text.end());
}

/// Layer specs as model files record them: xcnn-mnist's networks and every built-in layer with
/// options that differ from the defaults.
void spec_seeds(const fs::path& dir)
{
    write(dir / "lenet.txt", spec_text(mnist_models::make_lenet<float>().spec()));
    write(dir / "resnet.txt", spec_text(mnist_models::make_resnet<float>().spec()));
    write(dir / "seed-double.txt", spec_text(mnist_models::make_seed_net<double>().spec()));
    const xcnn::Sequential layers{
        xcnn::Conv2D<float>(xcnn::Conv2DOptions(4, 6, {3, 2}).stride({2, 1}).padding({1, 0}).dilation(2).groups(2)),
        xcnn::BatchNorm2D<float>(6, 1e-3f, 0.3f),
        xcnn::LeakyReLU<float>(0.2f),
        xcnn::AvgPool2D<float>({2, 3}, {1, 2}, {1, 1}),
        xcnn::Dropout<float>(0.25),
        xcnn::MaxPool2D<float>(2),
        xcnn::GELU<float>{},
        xcnn::Flatten<float>{},
        xcnn::Dense<float>(6, 4),
        xcnn::BatchNorm1D<float>(4),
        xcnn::Sigmoid<float>{},
        xcnn::Tanh<float>{}};
    write(dir / "every-layer.txt", spec_text(layers.spec()));
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::cerr << "usage: " << argv[0] << " OUT_DIR\n";
        return 2;
    }
    try
    {
        const fs::path out(argv[1]);
        fs::create_directories(out / "idx");
        fs::create_directories(out / "model");
        fs::create_directories(out / "onnx");
        fs::create_directories(out / "spec");
        idx_seeds(out / "idx");
        model_seeds(out / "model");
        onnx_seeds(out / "onnx");
        spec_seeds(out / "spec");
        std::size_t count = 0;
        for (const char* sub : {"idx", "model", "onnx", "spec"})
        {
            count +=
                static_cast<std::size_t>(std::distance(fs::directory_iterator(out / sub), fs::directory_iterator{}));
        }
        std::cout << "wrote " << count << " seed files to " << out.string() << '\n';
    }
    catch (const std::exception& e)
    {
        std::cerr << argv[0] << ": " << e.what() << '\n';
        return 1;
    }
    return 0;
}
