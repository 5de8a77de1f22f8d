// Model files that carry their architecture: xcnn::save records the network's layer spec
// ("xcnn.layers") and xcnn::load_network rebuilds the network from it (network/registry.hpp,
// io/load_network.hpp) without knowing it: LeNet, the ResNet of xcnn-mnist (BatchNorm buffers,
// identity and projection blocks), a block with a single-layer shortcut and a nested chain come
// back with the same parameter names and bit-identical predictions, and train as the originals
// do. Older files, damaged or unknown specs, other scalar types and other ranks are typed errors
// that say what to do; a user's layer loads once added to the registry.
#include "catch_compat.hpp"

#include <xcnn/core/layer_spec_text.hpp>
#include <xcnn/io/load_network.hpp>
#include <xcnn/io/model.hpp>
#include <xcnn/network/registry.hpp>
#include <xcnn/xcnn.hpp>

#include "consumer/user_layer/channel_scale.hpp"
#include "models.hpp"
#include "support/naive_layers.hpp"
#include "support/require_error.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace
{

using xcnn_test::contains;
using xcnn_test::require_error;
using xcnn_test::same_bits;

template <class T>
xt::xtensor<T, 4> images(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::uint32_t seed)
{
    return xcnn_test::random_tensor<T, 4>({n, c, h, w}, seed);
}

template <class Net>
std::vector<std::string> state_names(Net& net)
{
    std::vector<std::string> out;
    for (const auto& p : net.parameters())
    {
        out.push_back(p.name());
    }
    for (const auto& b : net.buffers())
    {
        out.push_back("buffer " + b.name());
    }
    return out;
}

/// The file `net` saves loads with load_network into a network with the same parameter and
/// buffer names, the same spec and bit-identical predictions on `x`.
template <class Net, class X>
void check_loads(Net& net, const X& x, const std::string& path)
{
    using T = typename Net::value_type;
    net.reset_parameters(7u);
    (void)net.forward(x); // running statistics other than the initial ones
    xcnn::save(net, path);
    auto loaded = xcnn::load_network<T, Net::input_rank, Net::output_rank>(path);
    CHECK(state_names(loaded) == state_names(net));
    CHECK(loaded.spec() == net.spec());
    CHECK(loaded.num_parameters() == net.num_parameters());
    CHECK(same_bits(loaded.predict(x), net.predict(x)));
}

/// A block whose shortcut is one layer (its parameters "shortcut.weight"), a nested chain
/// ("3.1.weight") and a block inside a block's branch.
template <class T>
auto mixed_net()
{
    return xcnn::Sequential{
        xcnn::Conv2D<T>(1, 4, 3, 1, 1),
        xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<T>(4, 4, 3, 1, 1), xcnn::BatchNorm2D<T>(4), xcnn::ReLU<T>{}},
                       xcnn::Conv2D<T>(xcnn::Conv2DOptions(4, 4, 1).bias(false))),
        xcnn::Residual(xcnn::Sequential{xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<T>(4, 4, 3, 1, 1)}),
                                        xcnn::LeakyReLU<T>(T(0.1))}),
        xcnn::Sequential{xcnn::AvgPool2D<T>(2), xcnn::Dropout<T>(0.25), xcnn::GELU<T>{}},
        xcnn::Flatten<T>{},
        xcnn::Dense<T>(4 * 3 * 3, 5),
        xcnn::BatchNorm1D<T>(5),
        xcnn::Tanh<T>{},
        xcnn::Dense<T>(5, 3),
        xcnn::Sigmoid<T>{}};
}

/// A layer without spec(): a network holding it does not describe itself.
template <class T>
class Opaque : public xcnn::layer<Opaque<T>, T, 2>
{
public:
    using typename xcnn::layer<Opaque<T>, T, 2>::input_type;
    using typename xcnn::layer<Opaque<T>, T, 2>::output_type;
    std::string name() const { return "Opaque()"; }
    template <class S>
    std::array<std::size_t, 2> checked_output_shape(const S& s) const
    {
        return {s[0], s[1]};
    }
    const output_type& run_forward(const input_type& x, bool) { return m_y = x; }
    const input_type& run_backward(const output_type& dy) { return m_dx = dy; }

private:
    output_type m_y;
    input_type m_dx;
};

/// `file` with the text of its "xcnn.layers" record replaced by `text`.
xcnn::io::model_file with_layers(xcnn::io::model_file file, const std::string& text)
{
    for (auto& r : file.records)
    {
        if (r.name == "xcnn.layers")
        {
            r = xcnn::io::tensor_record::text("xcnn.layers", text);
        }
    }
    return file;
}

} // namespace

TEMPLATE_TEST_CASE("load_network rebuilds what xcnn::save saved, bit for bit", "[load_network]", float, double)
{
    using T = TestType;
    xcnn_test::temp_dir dir;
    const auto x = images<T>(3, 1, 28, 28, 5);
    SECTION("LeNet")
    {
        auto net = mnist_models::make_lenet<T>();
        check_loads(net, x, dir / "lenet.xcnn");
    }
    SECTION("the ResNet of xcnn-mnist")
    {
        auto net = mnist_models::make_resnet<T>();
        check_loads(net, x, dir / "resnet.xcnn");
    }
    SECTION("a single-layer shortcut, nested blocks and chains, every kind of layer")
    {
        auto net = mixed_net<T>();
        const auto small = images<T>(2, 1, 6, 6, 6);
        check_loads(net, small, dir / "mixed.xcnn");
        auto loaded = xcnn::load_network<T>(dir / "mixed.xcnn");
        const auto names = state_names(loaded);
        for (const char* name : {"1.main.0.weight", "1.shortcut.weight", "2.main.0.main.0.weight", "6.weight",
                                 "buffer 1.main.1.running_mean", "buffer 6.running_var"})
        {
            CHECK(std::find(names.begin(), names.end(), name) != names.end());
        }
    }
    SECTION("a Network saves and loads the same way")
    {
        xcnn::Network<T> net(mnist_models::make_seed_net<T>());
        check_loads(net, x, dir / "seed.xcnn");
    }
    SECTION("a network of other ranks: (N, features) to (N, features)")
    {
        xcnn::Sequential net{xcnn::Dense<T>(6, 4), xcnn::BatchNorm1D<T>(4), xcnn::ReLU<T>{}, xcnn::Dense<T>(4, 2)};
        xt::xtensor<T, 2> rows = xt::ones<T>({5, 6});
        check_loads(net, rows, dir / "dense.xcnn");
    }
}

TEST_CASE("a network loaded with load_network trains as the original does", "[load_network]")
{
    xcnn_test::temp_dir dir;
    auto net = mnist_models::make_resnet<double>();
    net.reset_parameters(3u);
    xcnn::save(net, dir / "resnet.xcnn");
    auto loaded = xcnn::load_network<double>(dir / "resnet.xcnn");
    const auto x = images<double>(4, 1, 12, 12, 9);
    const xt::xtensor<std::int64_t, 1> labels = {1, 7, 3, 0};
    xcnn::SoftmaxCrossEntropy<double> loss_a, loss_b;
    xcnn::SGD<double> sgd_a(net.parameters(), 0.1, 0.9), sgd_b(loaded.parameters(), 0.1, 0.9);
    for (int step = 0; step < 3; ++step)
    {
        const double a = loss_a.forward(net.forward(x), labels);
        const double b = loss_b.forward(loaded.forward(x), labels);
        CHECK(a == b);
        net.backward_parameters(loss_a.backward());
        loaded.backward_parameters(loss_b.backward());
        sgd_a.step();
        sgd_b.step();
    }
    const auto pa = net.parameters();
    const auto pb = loaded.parameters();
    REQUIRE(pa.size() == pb.size());
    for (std::size_t i = 0; i < pa.size(); ++i)
    {
        INFO(pa[i].name());
        CHECK(std::memcmp(pa[i].data(), pb[i].data(), pa[i].size() * sizeof(double)) == 0);
    }
    const auto ba = net.buffers();
    const auto bb = loaded.buffers();
    REQUIRE(ba.size() == bb.size());
    for (std::size_t i = 0; i < ba.size(); ++i)
    {
        CHECK(std::memcmp(ba[i].data(), bb[i].data(), ba[i].size() * sizeof(double)) == 0);
    }
}

TEST_CASE("files written today still load into a matching Sequential, older files name the way to load them",
          "[load_network]")
{
    xcnn_test::temp_dir dir;
    auto net = mnist_models::make_lenet<float>();
    net.reset_parameters(4u);
    xcnn::save(net, dir / "lenet.xcnn");
    auto sequential = mnist_models::make_lenet<float>();
    xcnn::load(sequential, dir / "lenet.xcnn");
    const auto x = images<float>(2, 1, 28, 28, 1);
    CHECK(same_bits(sequential.predict(x), net.predict(x)));

    // Written by xcnn 0.1.0, before the record existed (tests/fixtures/v1).
    const std::string v1 = std::string(XCNN_TEST_FIXTURES_DIR) + "/v1/small_net.xcnn";
    require_error<xcnn::format_error>([&] { (void)xcnn::load_network<float>(v1); },
                                      {"load_network '", "small_net.xcnn': the file has no \"xcnn.layers\" record",
                                       "saved before xcnn recorded architectures", "xcnn::load(net, path)",
                                       "the file was saved from Sequential(Conv2D(1, 2"});
}

TEST_CASE("load_network: damaged specs, other scalar types and ranks, unknown kinds are typed errors", "[load_network]")
{
    xcnn_test::temp_dir dir;
    auto net = mnist_models::make_lenet<float>();
    const auto file = xcnn::model_state(net);
    const std::string lenet = xcnn::to_string(net.spec());
    auto write = [&](const std::string& name, const xcnn::io::model_file& f)
    {
        xcnn::io::write_model_file(dir / name, f);
        return dir / name;
    };

    require_error<xcnn::shape_error>([&] { (void)xcnn::load_network<double>(write("float.xcnn", file)); },
                                     {"the file holds a float32 network; load it as load_network<float>"});
    require_error<xcnn::format_error>(
        [&] { (void)xcnn::load_network<float>(write("cut.xcnn", with_layers(file, lenet.substr(0, 40)))); },
        {"load_network '", "record \"xcnn.layers\": layer spec: at character 40: expected"});
    std::string unknown = lenet;
    unknown.replace(unknown.find("MaxPool2D"), 9, "MaxPool3D");
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::load_network<float>(write("unknown.xcnn", with_layers(file, unknown))); },
        {"load_network '", "Sequential layer 2: layer spec: unknown layer kind 'MaxPool3D' (known: AvgPool2D",
         "add a layer of your own with layer_registry::add<L>()"});
    std::string refused = lenet;
    refused.replace(refused.find("out_channels=6"), 14, "out_channels=0");
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::load_network<float>(write("refused.xcnn", with_layers(file, refused))); },
        {"Sequential layer 0: Conv2D(1, 0", "out_channels must be >= 1"});
    std::string other = lenet;
    other.replace(other.find("out_features=10"), 15, "out_features=11");
    require_error<xcnn::shape_error>(
        [&] { (void)xcnn::load_network<float>(write("other.xcnn", with_layers(file, other))); },
        {"architecture mismatch at tensor 8", "the file has '11.weight' of shape (10, 84)",
         "the network has '11.weight' of shape (11, 84)"});
    require_error<xcnn::value_error>([&] { (void)xcnn::load_network<float, 4, 4>(write("lenet.xcnn", file)); },
                                     {"load_network '", "the layers turn a rank-4 input into rank 2, not the rank 4"});
    require_error<xcnn::shape_error>([&] { (void)xcnn::load_network<float, 2, 2>(dir / "lenet.xcnn"); },
                                     {"Sequential layer 0: Conv2D takes a rank-4 input but gets rank 2"});
    require_error<xcnn::io_error>([&] { (void)xcnn::load_network<float>(dir / "missing.xcnn"); }, {"missing.xcnn"});

    // A network holding a layer that cannot describe itself saves without the record.
    xcnn::Network<float, 2, 2> opaque;
    opaque.push_back(xcnn::Dense<float>(3, 3));
    opaque.push_back(Opaque<float>{});
    xcnn::save(opaque, dir / "opaque.xcnn");
    CHECK(xcnn::io::read_model_file(dir / "opaque.xcnn").find("xcnn.layers", xcnn::io::record_kind::metadata) ==
          nullptr);
    require_error<xcnn::format_error>([&] { (void)xcnn::load_network<float, 2, 2>(dir / "opaque.xcnn"); },
                                      {"or from a network with a layer without spec()"});
}

TEST_CASE("a user's layer loads once added to the registry", "[load_network]")
{
    xcnn_test::temp_dir dir;
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 3, 3, 1, 1), my::ChannelScale<float>(3, 0.2f), xcnn::ReLU<float>{},
                         xcnn::GlobalAvgPool2D<float>{}, xcnn::Dense<float>(3, 2)};
    const auto x = images<float>(4, 1, 5, 5, 2);
    (void)net.forward(x); // a running mean of |x| to save
    xcnn::save(net, dir / "user.xcnn");
    require_error<xcnn::value_error>([&] { (void)xcnn::load_network<float>(dir / "user.xcnn"); },
                                     {"Sequential layer 1: layer spec: unknown layer kind 'ChannelScale'"});
    xcnn::layer_registry<float> registry;
    CHECK(!registry.contains("ChannelScale"));
    registry.add<my::ChannelScale<float>>();
    CHECK(registry.contains("ChannelScale"));
    auto loaded = xcnn::load_network<float>(dir / "user.xcnn", registry);
    CHECK(loaded.spec() == net.spec());
    CHECK(same_bits(loaded.predict(x), net.predict(x)));
    CHECK(loaded.layer<my::ChannelScale<float>>(1) != nullptr);
    CHECK(loaded.layer<my::ChannelScale<float>>(1)->running_mean_abs() == net.get<1>().running_mean_abs());
    require_error<xcnn::value_error>([&] { registry.add<my::ChannelScale<float>>(); },
                                     {"kind 'ChannelScale' is already known"});
}

TEST_CASE("build_network and layer_registry", "[load_network]")
{
    const xcnn::layer_registry<float> registry;
    CHECK(registry.kinds() == std::vector<std::string>{"AvgPool2D", "BatchNorm1D", "BatchNorm2D", "Conv2D", "Dense",
                                                       "Dropout", "Flatten", "GELU", "GlobalAvgPool2D", "LeakyReLU",
                                                       "MaxPool2D", "ReLU", "Residual", "Sequential", "Sigmoid",
                                                       "Tanh"});
    CHECK(registry.contains("Sequential"));
    CHECK(!registry.contains("Conv3D"));

    // The layers of a Sequential spec are the network's own; built as themselves, so that the
    // network fuses them as a Sequential does.
    auto lenet = xcnn::build_network<float>(mnist_models::make_lenet<float>().spec());
    CHECK(lenet.size() == 12);
    CHECK(lenet.layer<xcnn::Conv2D<float>>(0) != nullptr);
    CHECK(lenet.layer<xcnn::ReLU<float>>(1) != nullptr);
    auto fresh = mnist_models::make_lenet<float>();
    const auto x = images<float>(2, 1, 28, 28, 3);
    CHECK(same_bits(lenet.predict(x), fresh.predict(x))); // the same default initialisation

    // One layer that is not a Sequential: a network of that layer.
    auto conv = xcnn::build_network<float, 4, 4>(xcnn::parse_layer_spec("Conv2D(in_channels=1, out_channels=2, "
                                                                        "kernel_size=3)"));
    CHECK(conv.size() == 1);
    CHECK(conv.parameters()[0].name() == "0.weight");

    // make: one layer appended to a network; a Sequential as a nested network.
    xcnn::Network<float> net;
    registry.make(xcnn::parse_layer_spec("Conv2D(in_channels=1, out_channels=2, kernel_size=3)"), net);
    registry.make(xcnn::parse_layer_spec("Sequential(ReLU(), Flatten(), Dense(in_features=8, out_features=3))"), net);
    CHECK(net.size() == 2);
    CHECK(net.parameters()[2].name() == "1.2.weight");
    CHECK(net.predict(images<float>(2, 1, 4, 4, 4)).shape()[1] == 3);
    require_error<xcnn::shape_error>(
        [&] { registry.make(xcnn::parse_layer_spec("Conv2D(in_channels=1, out_channels=2, kernel_size=3)"), net); },
        {"Conv2D takes a rank-4 input but gets rank 2"});
    CHECK(registry.output_rank(xcnn::parse_layer_spec("Sequential(ReLU(), Flatten())"), 4) == 2);

    require_error<xcnn::value_error>([&] { (void)xcnn::build_network<float>(xcnn::parse_layer_spec("Sequential()")); },
                                     {"layer spec Sequential: expected at least 1 inner layers, got 0"});
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::build_network<float>(xcnn::parse_layer_spec("Sequential(x=1, Flatten())")); },
        {"layer spec Sequential: unknown option 'x' (Sequential takes no options)"});
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::build_network<float>(xcnn::parse_layer_spec("Sequential(Residual(), Flatten())")); },
        {"Sequential layer 0: layer spec Residual: expected 1 to 2 inner layers, got 0"});
    require_error<xcnn::value_error>(
        [&]
        {
            (void)xcnn::build_network<float>(
                xcnn::parse_layer_spec("Sequential(Residual(Sequential(ReLU()), Flatten()), Flatten())"));
        },
        {"Sequential layer 0: Residual shortcut: Flatten turns the block's rank-4 input into rank 2"});
    require_error<xcnn::value_error>(
        [&]
        {
            (void)xcnn::build_network<float>(xcnn::parse_layer_spec(
                "Sequential(Residual(Sequential(Conv2D(in_channels=1, out_channels=1, kernel_size=3, padding=1), "
                "Foo())), Flatten())"));
        },
        {"Sequential layer 0: Residual main: Sequential layer 1: layer spec: unknown layer kind 'Foo'"});
    require_error<xcnn::shape_error>(
        [&]
        {
            (void)xcnn::build_network<float>(
                xcnn::parse_layer_spec("Sequential(Residual(Dense(in_features=2, out_features=2)), Flatten())"));
        },
        {"Sequential layer 0: Residual main: Dense takes a rank-2 input but gets rank 4"});
}
