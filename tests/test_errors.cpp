// The error contract of xcnn in one place: each misuse throws a typed exception (derived from
// xcnn::error, caught here both by its exact type and as xcnn::error) whose message names the
// layer and the shapes or values involved.
//
//   wrong rank (e.g. an xt::xarray input)          -> xcnn::shape_error
//   wrong channel / feature count                  -> xcnn::shape_error
//   input smaller than the kernel                  -> xcnn::shape_error
//   gradient of the wrong shape                    -> xcnn::shape_error
//   parameter assigned with the wrong shape        -> xcnn::shape_error
//   zero stride / kernel / channel count           -> xcnn::value_error
//   label outside [0, classes)                     -> xcnn::value_error
//   wrong number of labels                         -> xcnn::shape_error
//   invalid learning rate / momentum               -> xcnn::value_error
//   backward without a forward (or after predict)  -> xcnn::error
//   a size > 2^63 - 1 (a negative int) at construction, a weight too large -> xcnn::value_error
//   an empty batch (N = 0)                         -> an empty output, zero parameter gradients
//   a zero channel count, height or width          -> xcnn::shape_error
//   a tensor of more than 2^63 - 1 elements        -> xcnn::shape_error
//   a gradient, logits or labels of another rank   -> xcnn::shape_error (not a conversion)
//   label outside [0, classes) in accuracy         -> xcnn::value_error
//   Sequential backward after a forward that threw -> xcnn::error
//   inside a Sequential, every xcnn error keeps its type and is prefixed with
//   "Sequential layer <index>: ".
//
// What every layer must do (wrong rank, backward without forward, empty batch, ...) is checked
// for every layer type by tests/test_layers.cpp; this file keeps the cases with specific values
// and what a Sequential adds.
#include "catch_compat.hpp"
#include "support/require_error.hpp"

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace
{

using xcnn_test::require_error;

const std::string conv_1_4_3 = "Conv2D(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0))";

} // namespace

TEST_CASE("Exception hierarchy", "[errors]")
{
    STATIC_REQUIRE(std::is_base_of<std::runtime_error, xcnn::error>::value);
    STATIC_REQUIRE(std::is_base_of<xcnn::error, xcnn::shape_error>::value);
    STATIC_REQUIRE(std::is_base_of<xcnn::error, xcnn::value_error>::value);
    STATIC_REQUIRE(std::is_base_of<xcnn::error, xcnn::format_error>::value);
    STATIC_REQUIRE(std::is_base_of<xcnn::error, xcnn::io_error>::value);
    STATIC_REQUIRE(std::is_base_of<xcnn::error, xcnn::numeric_error>::value);
    STATIC_REQUIRE(!std::is_base_of<xcnn::shape_error, xcnn::value_error>::value);
}

TEST_CASE("Wrong rank: an xt::xarray input of another rank is a shape_error", "[errors]")
{
    SECTION("inside a Sequential")
    {
        xcnn::Sequential net{xcnn::Conv2D<float>(1, 4, 3), xcnn::ReLU<float>{}, xcnn::Flatten<float>{},
                             xcnn::Dense<float>(4 * 6 * 6, 10)};
        const xt::xarray<float> x = xt::zeros<float>({1, 8, 8});
        require_error<xcnn::shape_error>([&] { (void)net.forward(x); },
                                         {"Sequential layer 0: " + conv_1_4_3, "rank-4", "(1, 8, 8)"});
        require_error<xcnn::shape_error>([&] { (void)net.predict(x); }, {"Sequential layer 0", "(1, 8, 8)"});
        require_error<xcnn::shape_error>(
            [&] {
                (void)net.output_shape({1, 8, 8});
            },
            {"Sequential layer 0", "(1, 8, 8)"});
        // The right rank as an xarray is accepted.
        const xt::xarray<float> good = xt::zeros<float>({2, 1, 8, 8});
        CHECK_NOTHROW(net.forward(good));
    }
}

TEST_CASE("Wrong channel or feature count is a shape_error", "[errors]")
{
    SECTION("Conv2D")
    {
        xcnn::Conv2D<float> conv(1, 4, 3);
        const xt::xtensor<float, 4> x = xt::zeros<float>({2, 3, 8, 8});
        require_error<xcnn::shape_error>([&] { (void)conv.forward(x); },
                                         {conv_1_4_3, "expected 1 input channels", "(2, 3, 8, 8)"});
        xcnn::Conv2D<float> rgb(3, 4, 3);
        require_error<xcnn::shape_error>(
            [&] {
                (void)rgb.predict(xt::xtensor<float, 4>(xt::zeros<float>({2, 1, 8, 8})));
            },
            {"Conv2D(3, 4", "expected 3 input channels", "(2, 1, 8, 8)"});
    }
    SECTION("Dense")
    {
        xcnn::Dense<float> dense(100, 10);
        const xt::xtensor<float, 2> x = xt::zeros<float>({2, 120});
        require_error<xcnn::shape_error>([&] { (void)dense.forward(x); },
                                         {"Dense(100, 10)", "expected 100 input features", "(2, 120)"});
    }
    SECTION("inside a Sequential, with the layer index")
    {
        xcnn::Sequential net{xcnn::Conv2D<float>(1, 2, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::Flatten<float>{},
                             xcnn::Dense<float>(100, 10)};
        const xt::xtensor<float, 4> x = xt::zeros<float>({2, 1, 6, 10}); // 2 * 6 * 10 = 120 features
        require_error<xcnn::shape_error>([&] { (void)net.forward(x); },
                                         {"Sequential layer 3: Dense(100, 10)", "expected 100", "(2, 120)"});
        const xt::xtensor<float, 4> rgb = xt::zeros<float>({2, 3, 10, 10});
        require_error<xcnn::shape_error>(
            [&] { (void)net.forward(rgb); },
            {"Sequential layer 0: Conv2D(1, 2", "expected 1 input channels", "(2, 3, 10, 10)"});
        require_error<xcnn::shape_error>(
            [&] {
                (void)net.summary({2, 1, 6, 10});
            },
            {"Sequential layer 3: Dense(100, 10)", "(2, 120)"});
    }
}

TEST_CASE("An input smaller than the kernel is a shape_error", "[errors]")
{
    SECTION("Conv2D")
    {
        xcnn::Conv2D<float> conv(1, 1, 5);
        const xt::xtensor<float, 4> x = xt::zeros<float>({1, 1, 3, 8});
        require_error<xcnn::shape_error>(
            [&] { (void)conv.forward(x); },
            {"Conv2D(1, 1, kernel_size=(5, 5)", "input (1, 1, 3, 8)", "smaller than the kernel (5, 5)"});
        // Padding counts: 3 + 2 * 1 = 5 fits a 5x5 kernel, 2 + 2 * 1 does not.
        xcnn::Conv2D<float> padded(1, 1, 5, 1, 1);
        CHECK(padded.output_shape({1, 1, 3, 3}) == std::vector<std::size_t>{1, 1, 1, 1});
        CHECK_NOTHROW(padded.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 3, 3}))));
        require_error<xcnn::shape_error>(
            [&] {
                (void)padded.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 2, 9})));
            },
            {"padding=(1, 1)", "(1, 1, 2, 9)", "(5, 5)"});
    }
    SECTION("MaxPool2D")
    {
        xcnn::MaxPool2D<float> pool(4);
        const xt::xtensor<float, 4> x = xt::zeros<float>({1, 2, 8, 3});
        require_error<xcnn::shape_error>([&] { (void)pool.forward(x); },
                                         {"MaxPool2D(kernel_size=(4, 4)", "(1, 2, 8, 3)", "smaller than the kernel"});
    }
    SECTION("inside a Sequential")
    {
        xcnn::Sequential net{xcnn::Conv2D<float>(1, 2, 3), xcnn::MaxPool2D<float>(4), xcnn::Flatten<float>{},
                             xcnn::Dense<float>(2, 2)};
        // 5x5 -> conv 3x3 -> pool 4 does not fit.
        const xt::xtensor<float, 4> x = xt::zeros<float>({1, 1, 5, 5});
        require_error<xcnn::shape_error>([&] { (void)net.forward(x); },
                                         {"Sequential layer 1: MaxPool2D", "(1, 2, 3, 3)", "(4, 4)"});
    }
}

TEST_CASE("A zero stride, kernel or size is a value_error", "[errors]")
{
    require_error<xcnn::value_error>([] { xcnn::Conv2D<float> conv(1, 1, 3, 0); },
                                     {"Conv2D(1, 1, kernel_size=(3, 3), stride=(0, 0)", "stride must be >= 1"});
    require_error<xcnn::value_error>(
        [] {
            xcnn::Conv2D<double> conv(xcnn::Conv2DOptions(2, 3, 3).stride({1, 0}));
        },
        {"Conv2D(2, 3", "stride=(1, 0)", "stride"});
    require_error<xcnn::value_error>([] { xcnn::Conv2D<float> conv(1, 1, 0); }, {"kernel_size=(0, 0)", "kernel_size"});
    require_error<xcnn::value_error>([] { xcnn::Conv2D<float> conv(0, 1, 3); }, {"Conv2D(0, 1", "channel"});
    require_error<xcnn::value_error>([] { xcnn::MaxPool2D<float> pool(2, 0); },
                                     {"MaxPool2D(kernel_size=(2, 2), stride=(0, 0))", "stride must be >= 1"});
    require_error<xcnn::value_error>([] { xcnn::MaxPool2D<float> pool(0); }, {"MaxPool2D", "kernel_size"});
    require_error<xcnn::value_error>([] { xcnn::Dense<float> dense(0, 3); }, {"Dense(0, 3)", "feature"});
}

TEST_CASE("Labels outside 0 to classes - 1 are a value_error, a wrong label count a shape_error", "[errors]")
{
    xcnn::SoftmaxCrossEntropy<float> loss;
    const xt::xtensor<float, 2> logits = xt::zeros<float>({2, 3});
    require_error<xcnn::value_error>(
        [&] {
            (void)loss.forward(logits, xt::xtensor<std::int64_t, 1>{0, 3});
        },
        {"SoftmaxCrossEntropy", "label 3", "index 1", "3 classes", "(2, 3)"});
    require_error<xcnn::value_error>(
        [&] {
            (void)loss.forward(logits, xt::xtensor<std::int64_t, 1>{-2, 0});
        },
        {"SoftmaxCrossEntropy", "label -2", "index 0"});
    require_error<xcnn::shape_error>(
        [&] {
            (void)loss.forward(logits, xt::xtensor<std::int64_t, 1>{0, 1, 2});
        },
        {"SoftmaxCrossEntropy", "(2, 3)", "(3,)"});
    require_error<xcnn::shape_error>([&] { (void)xcnn::accuracy(logits, xt::xtensor<std::int64_t, 1>{0}); },
                                     {"accuracy", "(2, 3)", "(1,)"});
}

TEST_CASE("Gradients of the wrong shape and parameters of the wrong shape are shape_errors", "[errors]")
{
    SECTION("a gradient that does not match the last output")
    {
        xcnn::Dense<float> dense(4, 3);
        (void)dense.forward(xt::xtensor<float, 2>(xt::zeros<float>({2, 4})));
        require_error<xcnn::shape_error>(
            [&] {
                (void)dense.backward(xt::xtensor<float, 2>(xt::zeros<float>({2, 4})));
            },
            {"Dense(4, 3)", "gradient of shape (2, 4)", "produced (2, 3)"});
        xcnn::Conv2D<float> conv(1, 4, 3);
        (void)conv.forward(xt::xtensor<float, 4>(xt::zeros<float>({2, 1, 5, 5})));
        require_error<xcnn::shape_error>(
            [&] {
                (void)conv.backward(xt::xtensor<float, 4>(xt::zeros<float>({2, 4, 5, 5})));
            },
            {conv_1_4_3, "(2, 4, 5, 5)", "(2, 4, 3, 3)"});
    }
    SECTION("inside a Sequential")
    {
        xcnn::Sequential net{xcnn::Conv2D<float>(1, 4, 3), xcnn::ReLU<float>{}, xcnn::Flatten<float>{},
                             xcnn::Dense<float>(4 * 3 * 3, 2)};
        (void)net.forward(xt::xtensor<float, 4>(xt::zeros<float>({2, 1, 5, 5})));
        require_error<xcnn::shape_error>(
            [&] {
                (void)net.backward(xt::xtensor<float, 2>(xt::zeros<float>({3, 2})));
            },
            {"Sequential layer 3: Dense(36, 2)", "(3, 2)", "(2, 2)"});
    }
    SECTION("a weight replaced by a tensor of another shape")
    {
        xcnn::Conv2D<float> conv(1, 4, 3);
        conv.weight() = xt::zeros<float>({4, 1, 5, 5});
        require_error<xcnn::shape_error>(
            [&] {
                (void)conv.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 8, 8})));
            },
            {conv_1_4_3, "(4, 1, 5, 5)", "(4, 1, 3, 3)"});
        require_error<xcnn::shape_error>([&] { (void)conv.parameters(); }, {conv_1_4_3, "(4, 1, 5, 5)"});
        xcnn::Dense<float> dense(4, 3);
        dense.bias() = xt::zeros<float>({4});
        require_error<xcnn::shape_error>(
            [&] {
                (void)dense.forward(xt::xtensor<float, 2>(xt::zeros<float>({1, 4})));
            },
            {"Dense(4, 3)", "(4,)", "(3,)"});
    }
}

TEST_CASE("SoftmaxCrossEntropy::backward without a forward is an xcnn::error", "[errors]")
{
    // Every layer's backward without a forward, or after predict: tests/test_layers.cpp.
    require_error<xcnn::error>(
        []
        {
            xcnn::SoftmaxCrossEntropy<double> loss;
            (void)loss.backward();
        },
        {"SoftmaxCrossEntropy", "forward"});
}

TEST_CASE("Invalid optimizer hyper-parameters are value_errors", "[errors]")
{
    xt::xtensor<float, 1> w = {1.0f}, g = {0.0f};
    std::vector<xcnn::parameter<float>> params{xcnn::parameter<float>("w", w, g)};
    require_error<xcnn::value_error>([&] { xcnn::SGD<float> sgd(params, -0.1f); }, {"SGD", "learning rate", "-0.1"});
    require_error<xcnn::value_error>([&] { xcnn::SGD<float> sgd(params, 0.1f, -0.9f); }, {"SGD", "momentum", "-0.9"});
    require_error<xcnn::value_error>([&] { xcnn::SGD<float> sgd(params, 0.1f, 0.9f, -1.0f); }, {"SGD", "weight_decay"});
    xcnn::SGD<float> sgd(params, 0.1f);
    require_error<xcnn::value_error>([&] { sgd.set_lr(-2.0f); }, {"SGD", "learning rate", "-2"});
}

// ---------------------------------------------------------------------------------------------
// The validation audit (docs/reliability.md): sizes out of range, empty axes, tensors of another
// rank reaching xtensor's implicit conversions, errors inside a Sequential, state after an error.
// ---------------------------------------------------------------------------------------------

namespace
{

// What `int(-1)` becomes when a caller passes it where xcnn takes a std::size_t.
constexpr std::size_t minus_one = static_cast<std::size_t>(-1);
const std::string minus_one_text = "18446744073709551615";

template <std::size_t N>
xt::xtensor<float, N> ramp(const std::array<std::size_t, N>& shape)
{
    xt::xtensor<float, N> t(shape);
    for (std::size_t i = 0; i < t.size(); ++i)
    {
        t.data()[i] = static_cast<float>(i % 7) - 3.0f;
    }
    return t;
}

/// A layer that throws `E` from forward: how a Sequential reports the errors of any layer.
template <class E>
struct throwing_layer
{
    using value_type = float;
    static constexpr int input_rank = xcnn::any_rank;
    static constexpr int output_rank = xcnn::any_rank;
    std::string name() const { return "Throwing()"; }
    std::vector<std::size_t> output_shape(const std::vector<std::size_t>& s) const { return s; }
    std::vector<xcnn::parameter<float>> parameters() { return {}; }
    std::size_t num_parameters() const { return 0; }
    void reset_parameters(std::mt19937&) {}
    template <std::size_t N>
    const xt::xtensor<float, N>& forward(const xt::xtensor<float, N>&)
    {
        throw E("Throwing(): value 42 rejected");
    }
    template <std::size_t N>
    const xt::xtensor<float, N>& predict(const xt::xtensor<float, N>& x)
    {
        return forward(x);
    }
    template <std::size_t N>
    const xt::xtensor<float, N>& backward(const xt::xtensor<float, N>& g)
    {
        return forward(g);
    }
};

} // namespace

TEST_CASE("A size that is a negative number converted to std::size_t is a value_error at construction", "[errors]")
{
    const std::string negative = "must be at most 9223372036854775807, got ";
    require_error<xcnn::value_error>([] { xcnn::Conv2D<float> conv(minus_one, 4, 3); },
                                     {"Conv2D(" + minus_one_text + ", 4", "in_channels " + negative + minus_one_text});
    require_error<xcnn::value_error>([] { xcnn::Conv2D<float> conv(1, minus_one, 3); },
                                     {"Conv2D(1, " + minus_one_text, "out_channels " + negative + minus_one_text});
    require_error<xcnn::value_error>(
        [] {
            xcnn::Conv2D<float> conv(xcnn::Conv2DOptions(1, 4, {3, minus_one}));
        },
        {"Conv2D(1, 4", "kernel_size " + negative + "(3, " + minus_one_text + ")"});
    require_error<xcnn::value_error>([] { xcnn::Conv2D<float> conv(1, 4, 3, minus_one); },
                                     {"Conv2D(1, 4", "stride " + negative + "(" + minus_one_text});
    // A negative padding used to wrap around and give a silently wrong (cropped) output shape.
    require_error<xcnn::value_error>([] { xcnn::Conv2D<float> conv(1, 4, 3, 1, minus_one); },
                                     {"Conv2D(1, 4", "padding " + negative + "(" + minus_one_text});
    require_error<xcnn::value_error>(
        [] {
            xcnn::Conv2D<float> conv(xcnn::Conv2DOptions(1, 4, 3).padding({1, minus_one - 1}));
        },
        {"padding " + negative + "(1, 18446744073709551614)"});
    require_error<xcnn::value_error>([] { xcnn::Dense<float> dense(minus_one, 3); },
                                     {"Dense(" + minus_one_text + ", 3)", "in_features " + negative});
    require_error<xcnn::value_error>([] { xcnn::Dense<float> dense(3, minus_one); },
                                     {"Dense(3, " + minus_one_text + ")", "out_features " + negative});
    require_error<xcnn::value_error>([] { xcnn::MaxPool2D<float> pool(minus_one); },
                                     {"MaxPool2D(kernel_size=(" + minus_one_text, "kernel_size " + negative});
    require_error<xcnn::value_error>([] { xcnn::MaxPool2D<float> pool(2, minus_one); },
                                     {"MaxPool2D(kernel_size=(2, 2)", "stride " + negative});
    // The largest valid size is accepted (nothing is allocated for a stride or a padding).
    CHECK_NOTHROW(xcnn::Conv2D<float>(1, 1, 1, xcnn::max_extent, 0));
}

TEST_CASE("A weight of more elements than std::ptrdiff_t can index is a value_error", "[errors]")
{
    // 2^16 in each of the 4 axes is 2^64 elements: the product wrapped to 0 before the check.
    require_error<xcnn::value_error>(
        [] {
            xcnn::Conv2D<float> conv(xcnn::Conv2DOptions(65536, 65536, {65536, 65536}));
        },
        {"Conv2D(65536, 65536, kernel_size=(65536, 65536)", "weight of shape (65536, 65536, 65536, 65536)",
         "more than 9223372036854775807 elements"});
    require_error<xcnn::value_error>([] { xcnn::Dense<float> dense(std::size_t(1) << 32, std::size_t(1) << 32); },
                                     {"Dense(4294967296, 4294967296)", "weight of shape (4294967296, 4294967296)"});
}

TEST_CASE("An empty batch through a Sequential gives an empty output and zero parameter gradients", "[errors]")
{
    SECTION("Sequential, forward, predict, backward and backward_parameters")
    {
        xcnn::Sequential net{xcnn::Conv2D<float>(1, 2, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::MaxPool2D<float>(2),
                             xcnn::Flatten<float>{}, xcnn::Dense<float>(2 * 2 * 2, 3)};
        const xt::xtensor<float, 4> empty = xt::zeros<float>({0, 1, 4, 4});
        CHECK(net.output_shape({0, 1, 4, 4}) == std::vector<std::size_t>{0, 3});
        CHECK(net.predict(empty).shape() == (std::array<std::size_t, 2>{0, 3}));
        CHECK(net.forward(empty).shape() == (std::array<std::size_t, 2>{0, 3}));
        const xt::xtensor<float, 2> no_grad = xt::zeros<float>({0, 3});
        CHECK(net.backward(no_grad).shape() == (std::array<std::size_t, 4>{0, 1, 4, 4}));
        CHECK_NOTHROW(net.backward_parameters(no_grad));
        for (const auto& p : net.parameters())
        {
            INFO(p.name());
            CHECK(std::all_of(p.grad_data(), p.grad_data() + p.size(), [](float g) { return g == 0.0f; }));
        }
    }
}

TEST_CASE("A zero channel count, height or width is a shape_error", "[errors]")
{
    const std::string only_batch = "only the batch axis may be 0";
    // With padding, an empty image used to give a non-empty output of padding alone.
    xcnn::Conv2D<float> conv(1, 2, 1, 1, 1);
    const std::string conv_name = "Conv2D(1, 2, kernel_size=(1, 1), stride=(1, 1), padding=(1, 1))";
    require_error<xcnn::shape_error>(
        [&] {
            (void)conv.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 0, 5})));
        },
        {conv_name, "input (1, 1, 0, 5) has an empty axis 2", only_batch});
    require_error<xcnn::shape_error>(
        [&] {
            (void)conv.output_shape({1, 1, 5, 0});
        },
        {conv_name, "input (1, 1, 5, 0) has an empty axis 3"});
    // Zero input channels fail the channel count check.
    require_error<xcnn::shape_error>(
        [&] {
            (void)conv.output_shape({1, 0, 5, 5});
        },
        {conv_name, "expected 1 input channels", "(1, 0, 5, 5)"});
    xcnn::MaxPool2D<float> pool(2);
    require_error<xcnn::shape_error>(
        [&] {
            (void)pool.forward(xt::xtensor<float, 4>(xt::zeros<float>({2, 0, 4, 4})));
        },
        {"MaxPool2D(kernel_size=(2, 2), stride=(2, 2))", "input (2, 0, 4, 4) has an empty axis 1", only_batch});
    xcnn::Flatten<float> flatten;
    require_error<xcnn::shape_error>(
        [&] {
            (void)flatten.predict(xt::xtensor<float, 4>(xt::zeros<float>({2, 3, 0, 4})));
        },
        {"Flatten()", "input (2, 3, 0, 4) has an empty axis 2"});
    require_error<xcnn::shape_error>(
        [&] {
            (void)flatten.output_shape({2, 0, 3, 4});
        },
        {"Flatten()", "input (2, 0, 3, 4) has an empty axis 1"});
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 2, 3, 1, 1), xcnn::Flatten<float>{}, xcnn::Dense<float>(2, 2)};
    require_error<xcnn::shape_error>(
        [&] {
            (void)net.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 0, 1})));
        },
        {"Sequential layer 0: Conv2D(1, 2", "input (1, 1, 0, 1) has an empty axis 2"});
}

TEST_CASE("A shape whose tensors would have more than 2^63 - 1 elements is a shape_error", "[errors]")
{
    // Padding 2^40 on each side: the padded input's element count overflows std::ptrdiff_t,
    // which xtensor computes its strides in.
    xcnn::Conv2D<float> conv(1, 1, 3, 1, std::size_t(1) << 40);
    require_error<xcnn::shape_error>(
        [&] {
            (void)conv.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 5, 5})));
        },
        {"padding=(1099511627776, 1099511627776)", "input (1, 1, 5, 5) gives a padded input",
         "(1, 1, 2199023255557, 2199023255557)", "more than 9223372036854775807 elements"});
    require_error<xcnn::shape_error>([&] { (void)conv.output_shape({1, 1, 5, 5}); }, {"a padded input"});
    // Shapes can be asked about without a tensor: N x out_features overflows.
    xcnn::Dense<float> dense(4, 8);
    require_error<xcnn::shape_error>(
        [&] {
            (void)dense.output_shape({std::size_t(1) << 62, 4});
        },
        {"Dense(4, 8)", "input (4611686018427387904, 4)", "an output"});
    // An empty batch can carry any C, H and W; their product must still fit.
    xcnn::Flatten<float> flatten;
    require_error<xcnn::shape_error>(
        [&] {
            (void)flatten.output_shape({0, std::size_t(1) << 32, std::size_t(1) << 32, 2});
        },
        {"Flatten()", "input (0, 4294967296, 4294967296, 2)", "features per sample"});
}

TEST_CASE("A gradient of another rank is a shape_error, not an implicit conversion", "[errors]")
{
    // xtensor converts any expression to an xt::xtensor<T, N> implicitly; from another rank that
    // conversion wrote past the fixed-size shape array (ASan: stack-buffer-overflow). An
    // xt::xarray of another rank, for every layer: tests/test_layers.cpp. Here: xt::xtensors of
    // another fixed rank, and the fused steps of a Sequential.
    xcnn::Dense<float> dense(3, 2);
    (void)dense.forward(ramp<2>({1, 3}));
    require_error<xcnn::shape_error>([&] { (void)dense.backward(xt::xtensor<float, 1>(xt::zeros<float>({2}))); },
                                     {"Dense(3, 2)", "expected a rank-2 gradient (N, features)", "got shape (2,)"});
    xcnn::Conv2D<float> conv(1, 4, 3);
    (void)conv.forward(ramp<4>({1, 1, 5, 5}));
    require_error<xcnn::shape_error>(
        [&] {
            conv.backward_parameters(xt::xtensor<float, 2>(xt::zeros<float>({4, 9})));
        },
        {conv_1_4_3, "expected a rank-4 gradient (N, C, H, W)", "(4, 9)"});
    xcnn::Flatten<float> flatten;
    (void)flatten.forward(ramp<4>({1, 1, 2, 2}));
    require_error<xcnn::shape_error>(
        [&] {
            (void)flatten.backward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 2, 2})));
        },
        {"Flatten()", "expected a rank-2 gradient (N, features)", "(1, 1, 2, 2)"});
    xcnn::Sequential net{xcnn::Dense<float>(3, 2)};
    (void)net.forward(ramp<2>({1, 3}));
    require_error<xcnn::shape_error>(
        [&] {
            (void)net.backward(xt::xtensor<float, 3>(xt::zeros<float>({1, 1, 2})));
        },
        {"Sequential layer 0: Dense(3, 2)", "rank-2 gradient", "(1, 1, 2)"});
    require_error<xcnn::shape_error>(
        [&] {
            net.backward_parameters(xt::xtensor<float, 3>(xt::zeros<float>({1, 1, 2})));
        },
        {"Sequential layer 0: Dense(3, 2)", "rank-2 gradient"});
    // Flatten and Dense run as one step (Dense::backward_flattened), which took only an
    // xt::xtensor<T, 2>: an xt::xarray of rank 4 was converted implicitly.
    xcnn::Sequential rows{xcnn::MaxPool2D<float>(2), xcnn::Flatten<float>{}, xcnn::Dense<float>(4, 2)};
    (void)rows.forward(ramp<4>({1, 1, 4, 4}));
    require_error<xcnn::shape_error>(
        [&] {
            (void)rows.backward(xt::xarray<float>(xt::zeros<float>({1, 2, 1, 1})));
        },
        {"Sequential layer 2: Dense(4, 2)", "expected a rank-2 gradient", "(1, 2, 1, 1)"});
    require_error<xcnn::shape_error>([&] { rows.backward_parameters(xt::xarray<float>(xt::zeros<float>({2}))); },
                                     {"Sequential layer 2: Dense(4, 2)", "rank-2 gradient", "(2,)"});
}

TEST_CASE("Logits and labels of another rank are shape_errors, and accuracy checks labels like the loss", "[errors]")
{
    xcnn::SoftmaxCrossEntropy<float> loss;
    const xt::xtensor<std::int64_t, 1> labels{0, 2};
    require_error<xcnn::shape_error>(
        [&] {
            (void)loss.forward(xt::xarray<float>(xt::zeros<float>({2, 3, 1})), labels);
        },
        {"SoftmaxCrossEntropy", "expected logits of rank 2 (N, classes)", "got shape (2, 3, 1)"});
    require_error<xcnn::shape_error>(
        [&]
        {
            (void)loss.forward(xt::xtensor<float, 2>(xt::zeros<float>({2, 3})),
                               xt::xarray<std::int64_t>(xt::zeros<std::int64_t>({2, 1})));
        },
        {"SoftmaxCrossEntropy", "expected labels of rank 1 (N,)", "got shape (2, 1)"});
    require_error<xcnn::shape_error>(
        [&]
        {
            (void)xcnn::accuracy(xt::xtensor<float, 2>(xt::zeros<float>({2, 3})),
                                 xt::xarray<std::int64_t>(xt::zeros<std::int64_t>({2, 2})));
        },
        {"accuracy", "expected labels of rank 1 (N,)", "(2, 2)"});
    require_error<xcnn::shape_error>(
        [&]
        {
            (void)loss.forward(xt::xtensor<float, 2>(xt::zeros<float>({0, 3})),
                               xt::xtensor<std::int64_t, 1>(xt::zeros<std::int64_t>({0})));
        },
        {"SoftmaxCrossEntropy", "logits (0, 3)", "at least one sample"});
    // Out-of-range labels no longer count as wrong predictions.
    const xt::xtensor<float, 2> logits = {{0.0f, 1.0f, 0.0f}, {2.0f, 0.0f, 0.0f}};
    require_error<xcnn::value_error>(
        [&] {
            (void)xcnn::accuracy(logits, xt::xtensor<std::int64_t, 1>{1, 3});
        },
        {"accuracy", "label 3 at index 1", "3 classes", "(2, 3)"});
    require_error<xcnn::value_error>(
        [&] {
            (void)xcnn::accuracy(logits, xt::xtensor<std::int64_t, 1>{-1, 0});
        },
        {"accuracy", "label -1 at index 0"});
    require_error<xcnn::shape_error>(
        [&] {
            (void)xcnn::accuracy(xt::xtensor<float, 2>(xt::zeros<float>({2, 0})), xt::xtensor<std::int64_t, 1>{0, 0});
        },
        {"accuracy", "logits (2, 0)", "no classes"});
    // The right ranks in other container and integer types give the same numbers.
    CHECK(xcnn::accuracy(xt::xarray<float>(logits), xt::xtensor<int, 1>{1, 1}) == 0.5);
    CHECK(xcnn::accuracy(logits, xt::xtensor<std::int64_t, 1>(xt::zeros<std::int64_t>({2}))) == 0.5);
    xcnn::SoftmaxCrossEntropy<float> reference;
    CHECK(loss.forward(xt::xarray<double>(logits), xt::xtensor<std::uint8_t, 1>{1, 0}) ==
          reference.forward(logits, xt::xtensor<std::int64_t, 1>{1, 0}));
}

TEST_CASE("Inside a Sequential every xcnn error keeps its type and names the layer index", "[errors]")
{
    const xt::xtensor<float, 2> x = xt::zeros<float>({1, 3});
    xcnn::Sequential values{xcnn::ReLU<float>{}, throwing_layer<xcnn::value_error>{}};
    require_error<xcnn::value_error>([&] { (void)values.forward(x); },
                                     {"Sequential layer 1: Throwing(): value 42 rejected"});
    xcnn::Sequential numerics{throwing_layer<xcnn::numeric_error>{}};
    require_error<xcnn::numeric_error>([&] { (void)numerics.predict(x); }, {"Sequential layer 0: Throwing()"});
    xcnn::Sequential formats{xcnn::ReLU<float>{}, xcnn::ReLU<float>{}, throwing_layer<xcnn::format_error>{}};
    require_error<xcnn::format_error>([&] { (void)formats.forward(x); }, {"Sequential layer 2: Throwing()"});
    xcnn::Sequential ios{throwing_layer<xcnn::io_error>{}};
    require_error<xcnn::io_error>([&] { (void)ios.forward(x); }, {"Sequential layer 0: Throwing()"});
    xcnn::Sequential plain{throwing_layer<xcnn::error>{}};
    require_error<xcnn::error>([&] { (void)plain.forward(x); }, {"Sequential layer 0: Throwing()"});
    // Nested: each level adds its index.
    xcnn::Sequential outer{xcnn::ReLU<float>{}, xcnn::Sequential{xcnn::ReLU<float>{}, xcnn::Dense<float>(4, 2)}};
    require_error<xcnn::shape_error>(
        [&] { (void)outer.forward(x); },
        {"Sequential layer 1: Sequential layer 1: Dense(4, 2): expected 4 input features", "got input (1, 3)"});
}

TEST_CASE("Sequential refuses backward before forward, after predict and after a forward that threw", "[errors]")
{
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 2, 3), xcnn::Flatten<float>{}, xcnn::Dense<float>(2 * 4 * 4, 2)};
    const xt::xtensor<float, 4> good = ramp<4>({2, 1, 6, 6});
    const xt::xtensor<float, 2> grad = ramp<2>({2, 2});
    const std::vector<std::string> refused{"Sequential of 3 layers",
                                           "backward needs a forward (not predict) that succeeded first"};
    require_error<xcnn::error>([&] { (void)net.backward(grad); }, refused);
    require_error<xcnn::error>([&] { net.backward_parameters(grad); }, refused);
    (void)net.forward(good);
    (void)net.predict(good);
    require_error<xcnn::error>([&] { (void)net.backward(grad); }, refused);
    (void)net.forward(good);
    // Layers 0 and 1 take this input and cache it; layer 2 rejects it and keeps the old one. A
    // backward through that mix must be refused, not half computed.
    const xt::xtensor<float, 4> bad = ramp<4>({2, 1, 7, 7});
    require_error<xcnn::shape_error>([&] { (void)net.forward(bad); },
                                     {"Sequential layer 2: Dense(32, 2)", "got input (2, 50)"});
    require_error<xcnn::error>([&] { (void)net.backward(grad); }, refused);
    require_error<xcnn::error>([&] { net.backward_parameters(grad); }, refused);
    (void)net.forward(good);
    CHECK(net.backward(grad).shape() == good.shape());
}

TEST_CASE("A layer whose forward threw still holds its last successful forward", "[errors]")
{
    const xt::xtensor<float, 4> x = ramp<4>({2, 1, 6, 6});
    xcnn::Conv2D<float> reference(1, 3, 3, 2, 1), conv(1, 3, 3, 2, 1);
    const xt::xtensor<float, 4> y = reference.forward(x);
    const xt::xtensor<float, 4> dy = ramp<4>({y.shape()[0], y.shape()[1], y.shape()[2], y.shape()[3]});
    const xt::xtensor<float, 4> dx = reference.backward(dy);
    (void)conv.forward(x);
    require_error<xcnn::shape_error>(
        [&] {
            (void)conv.forward(xt::xtensor<float, 4>(xt::zeros<float>({2, 2, 6, 6})));
        },
        {"expected 1 input channels"});
    CHECK(conv.backward(dy) == dx);
    CHECK(conv.weight_grad() == reference.weight_grad());
}

TEST_CASE("Dense::forward_flattened checks what Flatten and Dense check, and backward_flattened needs it", "[errors]")
{
    xcnn::Dense<float> dense(8, 3);
    // forward_flattened reads its input in place until backward_flattened, so the inputs live here
    // (a temporary xt::xtensor does not compile).
    const xt::xtensor<float, 4> no_channels = xt::zeros<float>({2, 0, 2, 4}), twelve = ramp<4>({2, 3, 2, 2}),
                                empty = xt::zeros<float>({0, 2, 2, 2}), one = ramp<4>({1, 2, 2, 2}),
                                five = ramp<4>({5, 2, 1, 4});
    require_error<xcnn::shape_error>([&] { (void)dense.forward_flattened(no_channels, true); },
                                     {"Dense(8, 3)", "input (2, 0, 2, 4) has an empty axis 1"});
    require_error<xcnn::shape_error>(
        [&] { (void)dense.forward_flattened(twelve, true); },
        {"Dense(8, 3)", "expected 8 input features", "got input (2, 12) (flattened from (2, 3, 2, 2))"});
    require_error<xcnn::shape_error>(
        [&] {
            (void)dense.forward_flattened(xt::xarray<float>(xt::zeros<float>({2, 8})), true);
        },
        {"Dense(8, 3)", "expected a rank-4 input (N, C, H, W)", "(2, 8)"});
    CHECK(dense.forward_flattened(empty, true).shape() == (std::array<std::size_t, 2>{0, 3}));
    // After a plain forward, backward_flattened would write dX in the shape of an older
    // forward_flattened (ASan: heap-buffer-overflow); it is refused.
    (void)dense.forward_flattened(one, true);
    (void)dense.forward(ramp<2>({5, 8}));
    require_error<xcnn::error>(
        [&] {
            (void)dense.backward_flattened(ramp<2>({5, 3}));
        },
        {"Dense(8, 3)", "backward_flattened needs a forward_flattened"});
    (void)dense.forward_flattened(five, true);
    CHECK(dense.backward_flattened(ramp<2>({5, 3})).shape() == five.shape());
}
