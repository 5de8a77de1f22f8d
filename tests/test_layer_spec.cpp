// Layer specs (core/layer_spec.hpp, core/layer_spec_text.hpp) and the layers' spec()/from_spec:
// the text form reads back exactly (every double bit for bit), malformed texts are format_errors
// that say where and what was expected, every built-in layer goes spec -> text -> spec ->
// from_spec -> the same spec and, with the weights loaded, bit-identical predictions, and bad
// options are value_errors naming the kind and the option. Model files record the spec.
#include "catch_compat.hpp"

#include <xcnn/core/layer_spec.hpp>
#include <xcnn/core/layer_spec_text.hpp>
#include <xcnn/io/model.hpp>
#include <xcnn/xcnn.hpp>

#include "models.hpp"
#include "support/naive_layers.hpp"
#include "support/require_error.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace
{

using xcnn_test::contains;
using xcnn_test::random_tensor;
using xcnn_test::require_error;
using xcnn_test::same_bits;

/// spec -> text -> spec -> from_spec gives the same spec, and the rebuilt layer with the
/// original's parameters and buffers predicts the same bits for an input of `shape`.
template <class L, std::size_t N>
void check_round_trip(L& layer, const std::array<std::size_t, N>& shape)
{
    using T = typename L::value_type;
    const xcnn::layer_spec spec = layer.spec();
    const std::string text = xcnn::to_string(spec);
    INFO("spec: " << text);
    const xcnn::layer_spec parsed = xcnn::parse_layer_spec(text);
    CHECK(parsed == spec);
    CHECK(xcnn::to_string(parsed) == text);
    L rebuilt = L::from_spec(parsed);
    CHECK(rebuilt.spec() == spec);
    CHECK(rebuilt.name() == layer.name());
    CHECK(rebuilt.num_parameters() == layer.num_parameters());
    xcnn::load_state(rebuilt, xcnn::model_state(layer));
    const auto x = random_tensor<T>(shape, 11);
    const auto expected = layer.predict(x);
    CHECK(same_bits(rebuilt.predict(x), expected));
}

/// A layer of a user's without spec(): networks holding it do not describe themselves.
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

} // namespace

TEST_CASE("layer spec text: the documented form, and it reads back exactly", "[layer_spec]")
{
    const xcnn::layer_spec conv = xcnn::Conv2D<float>(1, 8, 3, 1, 1).spec();
    CHECK(xcnn::to_string(conv) == "Conv2D(in_channels=1, out_channels=8, kernel_size=[3, 3], stride=[1, 1], "
                                   "padding=[1, 1], dilation=[1, 1], groups=1, bias=1)");
    xcnn::layer_spec s{"Sequential", {}, {conv, xcnn::layer_spec{"ReLU", {}, {}}}};
    s.set("eps", {1e-5}).set("list", {1, 2.5, -3}).set("empty", {}).set("tiny", {5e-324}).set("neg_zero", {-0.0});
    s.set("big", {1e300}).set("whole", {6272}).set("float_eps", {static_cast<double>(1e-5f)});
    s.set("inf", {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()});
    const std::string text = xcnn::to_string(s);
    CHECK(text == "Sequential(eps=1e-05, list=[1, 2.5, -3], empty=[], tiny=5e-324, neg_zero=-0, big=1e+300, "
                  "whole=6272, float_eps=9.999999747378752e-06, inf=[inf, -inf], " +
                      xcnn::to_string(conv) + ", ReLU())");
    const auto back = xcnn::parse_layer_spec(text);
    CHECK(back == s);
    CHECK(std::signbit(back.find("neg_zero")->front()));

    // Blanks anywhere between tokens; a list of one number is that number.
    const auto spaced = xcnn::parse_layer_spec(" \n Sequential ( eps = 1e-05 ,\tlist=[ 1 ,2.5,-3 ] , empty=[ ],"
                                               "Conv2D(in_channels=1, out_channels=8, kernel_size=[3, 3], stride=1,"
                                               " padding=[1], dilation=[1, 1], groups=1, bias=1) , ReLU( ) ) \r\n");
    CHECK(spaced.options.size() == 3);
    CHECK(spaced.children.size() == 2);
    CHECK(*spaced.children[0].find("stride") == std::vector<double>{1});
    CHECK(*spaced.children[0].find("padding") == std::vector<double>{1});
    CHECK(xcnn::parse_layer_spec("nan_holder(x=nan)").find("x")->size() == 1);
    CHECK(std::isnan(xcnn::parse_layer_spec("nan_holder(x=nan)").find("x")->front()));
    CHECK(xcnn::parse_layer_spec("my::Layer_2.v1()").kind == "my::Layer_2.v1");
}

TEST_CASE("layer spec text: every double reads back bit for bit", "[layer_spec]")
{
    std::mt19937_64 rng(20261206);
    xcnn::layer_spec s{"Numbers", {}, {}};
    std::vector<double> values;
    for (int i = 0; i < 4000; ++i)
    {
        const std::uint64_t bits = rng();
        double v = 0;
        std::memcpy(&v, &bits, sizeof v);
        if (!std::isnan(v))
        {
            values.push_back(v);
        }
    }
    for (double v : {0.1, 1.0 / 3, 1e-7, 0.5, 123456789.0, 1e16, 1e17, 2e17, 9007199254740993.0,
                     std::numeric_limits<double>::max(), std::numeric_limits<double>::min(),
                     std::numeric_limits<double>::denorm_min(), static_cast<double>(0.1f),
                     static_cast<double>(std::numeric_limits<float>::max())})
    {
        values.push_back(v);
        values.push_back(-v);
    }
    s.set("v", values);
    const auto back = xcnn::parse_layer_spec(xcnn::to_string(s));
    REQUIRE(back.find("v") != nullptr);
    const auto& read = *back.find("v");
    REQUIRE(read.size() == values.size());
    CHECK(std::memcmp(read.data(), values.data(), values.size() * sizeof(double)) == 0);
}

TEST_CASE("layer spec text: malformed texts are format_errors saying where and what was expected", "[layer_spec]")
{
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
        {"", {"at character 0", "expected a layer kind", "got the end of the text"}},
        {"   ", {"at character 3", "expected a layer kind"}},
        {"Conv2D", {"at character 6", "expected '(' after the layer kind", "got the end of the text"}},
        {"Conv2D(", {"at character 7", "expected an option (name=value) or an inner layer"}},
        {"Conv2D(in_channels)", {"at character 18", "'=' after the option name or '(' after the layer kind"}},
        {"Conv2D(in_channels=)", {"at character 19", "expected a number", "got ')'"}},
        {"Conv2D(in_channels=1", {"at character 20", "expected ',' or ')'"}},
        {"Conv2D(in_channels=1,)", {"at character 21", "expected an option (name=value) or an inner layer"}},
        {"Conv2D(in_channels=1 2)", {"at character 21", "expected ',' or ')'", "got '2)'"}},
        {"Conv2D(k=[1, 2)", {"at character 14", "expected ',' or ']' in a list of numbers"}},
        {"Conv2D(k=[1,,2])", {"at character 12", "expected a number"}},
        {"Conv2D(k=.5)", {"at character 9", "expected a number"}},
        {"Conv2D(k=5.)", {"at character 11", "a digit after the decimal point"}},
        {"Conv2D(k=5e)", {"at character 11", "a digit in the exponent"}},
        {"Conv2D(k=+5)", {"at character 9", "expected a number"}},
        {"Conv2D(k=0x10)", {"at character 10", "expected ',' or ')'"}},
        {"Conv2D(k=1e999)", {"at character 9", "within the range of a double"}},
        {"Conv2D(k=-nan)", {"at character 9", "expected a number"}},
        {"Conv2D(k=infinity)", {"at character 9", "expected a number"}},
        {"Conv2D(k=" + std::string(70, '1') + ")", {"at character 9", "at most 64 characters"}},
        {"Conv2D(1)", {"at character 7", "expected an option (name=value) or an inner layer"}},
        {"2D()", {"at character 0", "expected a layer kind"}},
        {"Conv2D() ReLU()", {"at character 9", "expected the end of the text", "got 'ReLU()'"}},
        {"Conv2D(k=1))", {"at character 11", "expected the end of the text"}},
        {"Conv2D(k=\x01)", {"at character 9", "got '?)'"}},
        {"Sequential(ReLU(), Conv2D(k=[1 2]))", {"at character 31", "expected ',' or ']'"}},
    };
    for (const auto& [text, parts] : cases)
    {
        INFO("text: " << text);
        require_error<xcnn::format_error>([&] { (void)xcnn::parse_layer_spec(text); }, parts);
    }
}

TEST_CASE("layer spec text: nesting and length are bounded, to_string refuses what would not read back", "[layer_spec]")
{
    auto nested = [](std::size_t depth)
    {
        std::string text;
        for (std::size_t i = 0; i < depth; ++i)
        {
            text += "S(";
        }
        return text + std::string(depth, ')');
    };
    CHECK(xcnn::parse_layer_spec(nested(xcnn::max_spec_depth)).kind == "S");
    require_error<xcnn::format_error>([&] { (void)xcnn::parse_layer_spec(nested(xcnn::max_spec_depth + 1)); },
                                      {"at most 64 nested layers"});
    // Far deeper than the stack would take without the bound.
    require_error<xcnn::format_error>([&] { (void)xcnn::parse_layer_spec(nested(1000000 / 3)); },
                                      {"at most 64 nested layers"});
    require_error<xcnn::format_error>(
        [&] { (void)xcnn::parse_layer_spec("A(x=[" + std::string(xcnn::max_spec_text, ' ') + "])"); },
        {"characters, more than the 1048576"});

    xcnn::layer_spec deep{"S", {}, {}};
    for (std::size_t i = 0; i < xcnn::max_spec_depth; ++i)
    {
        deep = xcnn::layer_spec{"S", {}, {deep}};
    }
    require_error<xcnn::value_error>([&] { (void)xcnn::to_string(deep); }, {"deeper than 64"});
    require_error<xcnn::value_error>(
        [&] {
            (void)xcnn::to_string(xcnn::layer_spec{"Conv 2D", {}, {}});
        },
        {"'Conv 2D' is not a valid layer kind"});
    require_error<xcnn::value_error>(
        [&] {
            (void)xcnn::to_string(xcnn::layer_spec{"", {}, {}});
        },
        {"'' is not a valid layer kind"});
    require_error<xcnn::value_error>(
        [&] {
            (void)xcnn::to_string(xcnn::layer_spec{"Conv2D", {{"in-channels", {1}}}, {}});
        },
        {"Conv2D: 'in-channels' is not a valid option name"});
}

TEMPLATE_TEST_CASE("every built-in layer: spec -> text -> from_spec -> same spec and bit-identical predict",
                   "[layer_spec]", float, double)
{
    using T = TestType;
    const std::array<std::size_t, 4> image{2, 4, 7, 6};
    SECTION("Conv2D")
    {
        xcnn::Conv2D<T> plain(4, 6, 3, 1, 1);
        check_round_trip(plain, image);
        xcnn::Conv2D<T> every(
            xcnn::Conv2DOptions(4, 6, {3, 2}).stride({2, 1}).padding({1, 0}).dilation({1, 2}).groups(2).bias(false));
        check_round_trip(every, image);
        xcnn::Conv2D<T> depthwise(xcnn::Conv2DOptions(4, 8, 3).padding(1).groups(4));
        check_round_trip(depthwise, image);
    }
    SECTION("Dense")
    {
        xcnn::Dense<T> dense(5, 3);
        check_round_trip(dense, std::array<std::size_t, 2>{4, 5});
    }
    SECTION("BatchNorm2D and BatchNorm1D, with trained running statistics")
    {
        xcnn::BatchNorm2D<T> bn2(4, T(1e-3), T(0.3));
        (void)bn2.forward(random_tensor<T>(image, 3));
        (void)bn2.forward(random_tensor<T>(image, 4));
        check_round_trip(bn2, image);
        xcnn::BatchNorm1D<T> bn1(5);
        (void)bn1.forward(random_tensor<T>(std::array<std::size_t, 2>{3, 5}, 5));
        check_round_trip(bn1, std::array<std::size_t, 2>{3, 5});
    }
    SECTION("pooling")
    {
        xcnn::MaxPool2D<T> max(3, 2, 1);
        check_round_trip(max, image);
        xcnn::AvgPool2D<T> avg({2, 3}, {1, 2}, {1, 1});
        check_round_trip(avg, image);
        xcnn::GlobalAvgPool2D<T> global;
        check_round_trip(global, image);
        xcnn::Flatten<T> flatten;
        check_round_trip(flatten, image);
    }
    SECTION("activations and dropout")
    {
        xcnn::ReLU<T> relu;
        check_round_trip(relu, image);
        xcnn::LeakyReLU<T> leaky(T(0.2));
        check_round_trip(leaky, image);
        xcnn::LeakyReLU<T> leaky_default;
        check_round_trip(leaky_default, std::array<std::size_t, 2>{3, 5});
        xcnn::Sigmoid<T> sigmoid;
        check_round_trip(sigmoid, image);
        xcnn::Tanh<T> tanh;
        check_round_trip(tanh, image);
        xcnn::GELU<T> gelu;
        check_round_trip(gelu, image);
        xcnn::Dropout<T> dropout(0.3);
        check_round_trip(dropout, image);
    }
    SECTION("Sequential and Residual: LeNet and the ResNet of xcnn-mnist")
    {
        auto lenet = mnist_models::make_lenet<T>();
        check_round_trip(lenet, std::array<std::size_t, 4>{2, 1, 28, 28});
        auto resnet = mnist_models::make_resnet<T>();
        const auto x = random_tensor<T>(std::array<std::size_t, 4>{4, 1, 12, 12}, 8);
        (void)resnet.forward(x); // running statistics that are not the initial ones
        check_round_trip(resnet, std::array<std::size_t, 4>{2, 1, 12, 12});
        xcnn::Residual projection(xcnn::Sequential{xcnn::Conv2D<T>(4, 4, 3, 1, 1), xcnn::ReLU<T>{}},
                                  xcnn::Conv2D<T>(4, 4, 1));
        CHECK(projection.spec().children.size() == 2);
        check_round_trip(projection, image);
    }
}

TEST_CASE("from_spec: options left out take PyTorch's defaults", "[layer_spec]")
{
    const auto conv =
        xcnn::Conv2D<float>::from_spec(xcnn::parse_layer_spec("Conv2D(in_channels=2, out_channels=4, kernel_size=3)"));
    CHECK(conv.spec() == xcnn::Conv2D<float>(2, 4, 3).spec());
    const auto pool = xcnn::MaxPool2D<float>::from_spec(xcnn::parse_layer_spec("MaxPool2D(kernel_size=[2, 3])"));
    CHECK(pool.stride() == xcnn::size2{2, 3});
    CHECK(pool.padding() == xcnn::size2{0, 0});
    const auto bn = xcnn::BatchNorm2D<double>::from_spec(xcnn::parse_layer_spec("BatchNorm2D(num_features=3)"));
    CHECK(bn.eps() == 1e-5);
    CHECK(bn.momentum() == 0.1);
    CHECK(xcnn::LeakyReLU<float>::from_spec(xcnn::parse_layer_spec("LeakyReLU()")).op().negative_slope() == 0.01f);
    CHECK(xcnn::Dropout<float>::from_spec(xcnn::parse_layer_spec("Dropout()")).p() == 0.5);
    // A float layer keeps the float nearest a double option, as its constructor would.
    CHECK(xcnn::BatchNorm2D<float>::from_spec(xcnn::parse_layer_spec("BatchNorm2D(num_features=3, eps=1e-3)")).eps() ==
          1e-3f);
}

TEST_CASE("from_spec: a wrong kind, or a missing, unknown, repeated or invalid option, is a value_error naming "
          "the kind and the option",
          "[layer_spec]")
{
    auto conv = [](const std::string& text)
    {
        return xcnn::Conv2D<float>::from_spec(xcnn::parse_layer_spec(text));
    };
    const std::string c = "Conv2D(in_channels=1, out_channels=2, kernel_size=3";
    require_error<xcnn::value_error>([&] { conv("Dense(in_features=1, out_features=2)"); },
                                     {"expected a Conv2D, got a 'Dense'"});
    require_error<xcnn::value_error>(
        [&] { conv("Conv2D(in_channels=1, kernel_size=3)"); },
        {"layer spec Conv2D: missing option 'out_channels'", "Conv2D takes in_channels, out_channels, kernel_size"});
    require_error<xcnn::value_error>([&] { conv(c + ", stide=2)"); },
                                     {"layer spec Conv2D: unknown option 'stide'", "stride"});
    require_error<xcnn::value_error>([&] { conv(c + ", stride=2, stride=1)"); }, {"option 'stride' is given twice"});
    require_error<xcnn::value_error>([&] { conv("Conv2D(in_channels=1.5, out_channels=2, kernel_size=3)"); },
                                     {"option 'in_channels' must be a whole number >= 0, got 1.5"});
    require_error<xcnn::value_error>([&] { conv("Conv2D(in_channels=-1, out_channels=2, kernel_size=3)"); },
                                     {"option 'in_channels' must be a whole number >= 0, got -1"});
    require_error<xcnn::value_error>([&] { conv("Conv2D(in_channels=[1, 1], out_channels=2, kernel_size=3)"); },
                                     {"option 'in_channels' must be one whole number >= 0, got [1, 1]"});
    require_error<xcnn::value_error>([&] { conv("Conv2D(in_channels=1e300, out_channels=2, kernel_size=3)"); },
                                     {"option 'in_channels' must be a whole number >= 0"});
    require_error<xcnn::value_error>([&] { conv("Conv2D(in_channels=nan, out_channels=2, kernel_size=3)"); },
                                     {"option 'in_channels' must be a whole number >= 0, got nan"});
    require_error<xcnn::value_error>([&] { conv(c + ", stride=[1, 2, 3])"); },
                                     {"option 'stride' must be one or two whole numbers >= 0, got [1, 2, 3]"});
    require_error<xcnn::value_error>([&] { conv(c + ", padding=[1, 0.5])"); },
                                     {"option 'padding' must hold whole numbers >= 0, got [1, 0.5]"});
    require_error<xcnn::value_error>([&] { conv(c + ", bias=2)"); }, {"option 'bias' must be 0 or 1, got 2"});
    // Ranges are the constructor's to check, with its own messages naming the layer and the option.
    require_error<xcnn::value_error>([&] { conv("Conv2D(in_channels=0, out_channels=2, kernel_size=3)"); },
                                     {"Conv2D(0, 2", "in_channels must be >= 1"});
    require_error<xcnn::value_error>([&] { conv(c + ", groups=2)"); }, {"divisible by groups"});
    require_error<xcnn::value_error>([&] { conv(c + ", ReLU())"); },
                                     {"layer spec Conv2D: expected 0 inner layers, got 1"});

    require_error<xcnn::value_error>(
        [&]
        { (void)xcnn::BatchNorm2D<float>::from_spec(xcnn::parse_layer_spec("BatchNorm2D(num_features=2, eps=-1)")); },
        {"eps must be finite and >= 0"});
    require_error<xcnn::value_error>(
        [&] {
            (void)xcnn::BatchNorm2D<float>::from_spec(
                xcnn::parse_layer_spec("BatchNorm2D(num_features=2, momentum=1e300)"));
        },
        {"layer spec BatchNorm2D: option 'momentum' is beyond the range of the layer's scalar type"});
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::BatchNorm1D<float>::from_spec(xcnn::parse_layer_spec("BatchNorm2D(num_features=2)")); },
        {"expected a BatchNorm1D, got a 'BatchNorm2D'"});
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::LeakyReLU<float>::from_spec(xcnn::parse_layer_spec("LeakyReLU(negative_slope=[1, 2])")); },
        {"layer spec LeakyReLU: option 'negative_slope' must be one number, got [1, 2]"});
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::LeakyReLU<float>::from_spec(xcnn::parse_layer_spec("LeakyReLU(negative_slope=-1)")); },
        {"negative_slope must be finite and >= 0"});
    require_error<xcnn::value_error>([&]
                                     { (void)xcnn::ReLU<float>::from_spec(xcnn::parse_layer_spec("ReLU(inplace=1)")); },
                                     {"layer spec ReLU: unknown option 'inplace' (ReLU takes no options)"});
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::Dropout<float>::from_spec(xcnn::parse_layer_spec("Dropout(p=1.5)")); }, {"p"});
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::MaxPool2D<float>::from_spec(xcnn::parse_layer_spec("MaxPool2D(stride=2)")); },
        {"layer spec MaxPool2D: missing option 'kernel_size'"});
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::AvgPool2D<float>::from_spec(xcnn::parse_layer_spec("AvgPool2D(kernel_size=2, padding=2)")); },
        {"padding must be at most half the kernel size"});
    require_error<xcnn::value_error>(
        [&] { (void)xcnn::Flatten<float>::from_spec(xcnn::parse_layer_spec("Flatten(start_dim=1)")); },
        {"unknown option 'start_dim' (Flatten takes no options)"});

    using lenet_type = decltype(mnist_models::make_lenet<float>());
    const auto lenet = mnist_models::make_lenet<float>().spec();
    auto fewer = lenet;
    fewer.children.pop_back();
    require_error<xcnn::value_error>([&] { (void)lenet_type::from_spec(fewer); },
                                     {"layer spec Sequential: expected 12 inner layers, got 11"});
    auto wrong = lenet;
    wrong.children[3].options[1].values = {0};
    require_error<xcnn::value_error>([&] { (void)lenet_type::from_spec(wrong); },
                                     {"Sequential layer 3: Conv2D(6, 0", "out_channels must be >= 1"});
    auto swapped = lenet;
    std::swap(swapped.children[0], swapped.children[1]);
    require_error<xcnn::value_error>([&] { (void)lenet_type::from_spec(swapped); },
                                     {"Sequential layer 0: layer spec: expected a Conv2D, got a 'ReLU'"});

    using resnet_type = decltype(mnist_models::make_resnet<float>());
    auto resnet = mnist_models::make_resnet<float>().spec();
    resnet.children[6].children.pop_back(); // the projection block without its shortcut
    require_error<xcnn::value_error>([&] { (void)resnet_type::from_spec(resnet); },
                                     {"Sequential layer 6: layer spec Residual: expected 2 inner layers, got 1"});
    resnet = mnist_models::make_resnet<float>().spec();
    resnet.children[6].children[1].children[1].kind = "BatchNorm1D";
    require_error<xcnn::value_error>(
        [&] { (void)resnet_type::from_spec(resnet); },
        {"Sequential layer 6: Residual shortcut: Sequential layer 1: layer spec: expected a BatchNorm2D"});
}

TEST_CASE("model files record the spec of a network that describes itself", "[layer_spec]")
{
    auto lenet = mnist_models::make_lenet<float>();
    const auto file = xcnn::model_state(lenet);
    const auto* record = file.find("xcnn.layers", xcnn::io::record_kind::metadata);
    REQUIRE(record != nullptr);
    CHECK(record->as_text() == xcnn::to_string(lenet.spec()));
    CHECK(file.find("xcnn.architecture", xcnn::io::record_kind::metadata) != nullptr);

    // A network holding a layer without spec() has none (and saves and loads as before).
    xcnn::Sequential opaque{xcnn::Dense<float>(3, 3), Opaque<float>{}};
    STATIC_REQUIRE(!xcnn::detail::has_spec<decltype(opaque)>::value);
    STATIC_REQUIRE(!xcnn::detail::has_from_spec<decltype(opaque)>::value);
    STATIC_REQUIRE(xcnn::detail::has_spec<decltype(lenet)>::value);
    STATIC_REQUIRE(xcnn::detail::has_from_spec<decltype(lenet)>::value);
    const auto opaque_file = xcnn::model_state(opaque);
    CHECK(opaque_file.find("xcnn.layers", xcnn::io::record_kind::metadata) == nullptr);
    xcnn::Sequential other{xcnn::Dense<float>(3, 3), Opaque<float>{}};
    other.reset_parameters(7u);
    xcnn::load_state(other, opaque_file);
    CHECK(same_bits(other.parameters()[0].value(), opaque.parameters()[0].value()));
}
