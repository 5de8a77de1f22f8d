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
//   inside a Sequential, shape errors are prefixed with "Sequential layer <index>: ".
#include "catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace
{

/// `f()` throws exactly `Expected` (not a subclass), which is also an `xcnn::error`, with a
/// message containing every string of `parts`.
template <class Expected, class F>
void require_error(F&& f, const std::vector<std::string>& parts)
{
    static_assert(std::is_base_of<xcnn::error, Expected>::value, "xcnn exceptions derive from xcnn::error");
    CHECK_THROWS_AS(f(), Expected);
    CHECK_THROWS_AS(f(), xcnn::error);
    CHECK_THROWS_AS(f(), std::runtime_error);
    std::string what = "<no exception>";
    bool exact_type = false;
    try
    {
        f();
    }
    catch (const xcnn::error& e)
    {
        what = e.what();
        exact_type = typeid(e) == typeid(Expected);
    }
    INFO("message: " << what);
    CHECK(exact_type);
    for (const auto& part : parts)
    {
        CHECK_THAT(what, xcnn_test::contains(part));
    }
}

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
    SECTION("Conv2D")
    {
        xcnn::Conv2D<float> conv(1, 4, 3);
        const xt::xarray<float> x = xt::zeros<float>({1, 8, 8});
        require_error<xcnn::shape_error>([&] { (void)conv.forward(x); },
                                         {conv_1_4_3, "expected a rank-4 input (N, C, H, W)", "got shape (1, 8, 8)"});
        require_error<xcnn::shape_error>([&] { (void)conv.predict(x); }, {conv_1_4_3, "(1, 8, 8)"});
        require_error<xcnn::shape_error>([&] { (void)conv.output_shape({1, 8, 8}); }, {conv_1_4_3, "(1, 8, 8)"});
    }
    SECTION("Dense")
    {
        xcnn::Dense<float> dense(16, 4);
        const xt::xarray<float> x = xt::zeros<float>({2, 1, 4, 4});
        require_error<xcnn::shape_error>([&] { (void)dense.forward(x); },
                                         {"Dense(16, 4)", "expected a rank-2 input (N, features)", "(2, 1, 4, 4)"});
        const xt::xarray<float> vector = xt::zeros<float>({16});
        require_error<xcnn::shape_error>([&] { (void)dense.predict(vector); }, {"Dense(16, 4)", "(16,)"});
    }
    SECTION("MaxPool2D and Flatten")
    {
        xcnn::MaxPool2D<double> pool(2);
        const xt::xarray<double> x = xt::zeros<double>({4, 4});
        require_error<xcnn::shape_error>([&] { (void)pool.forward(x); },
                                         {"MaxPool2D(kernel_size=(2, 2), stride=(2, 2))", "rank-4", "(4, 4)"});
        xcnn::Flatten<double> flatten;
        require_error<xcnn::shape_error>([&] { (void)flatten.forward(x); }, {"Flatten()", "rank-4", "(4, 4)"});
    }
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

TEST_CASE("backward without a forward is an xcnn::error naming the layer", "[errors]")
{
    require_error<xcnn::error>(
        []
        {
            xcnn::Conv2D<float> conv(1, 4, 3);
            (void)conv.backward(xt::xtensor<float, 4>(xt::zeros<float>({1, 4, 3, 3})));
        },
        {conv_1_4_3, "forward"});
    require_error<xcnn::error>(
        []
        {
            xcnn::Dense<float> dense(4, 3);
            (void)dense.predict(xt::xtensor<float, 2>(xt::zeros<float>({1, 4})));
            (void)dense.backward(xt::xtensor<float, 2>(xt::zeros<float>({1, 3})));
        },
        {"Dense(4, 3)", "forward"});
    require_error<xcnn::error>(
        []
        {
            xcnn::MaxPool2D<float> pool(2);
            (void)pool.predict(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 4, 4})));
            (void)pool.backward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 2, 2})));
        },
        {"MaxPool2D(kernel_size=(2, 2), stride=(2, 2))", "forward"});
    require_error<xcnn::error>(
        []
        {
            xcnn::MaxPool2D<float> pool(2);
            (void)pool.backward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 2, 2})));
        },
        {"MaxPool2D(kernel_size=(2, 2), stride=(2, 2))", "forward"});
    require_error<xcnn::error>(
        []
        {
            xcnn::Flatten<float> flatten;
            (void)flatten.backward(xt::xtensor<float, 2>(xt::zeros<float>({1, 4})));
        },
        {"Flatten()", "forward"});
    require_error<xcnn::error>(
        []
        {
            xcnn::Flatten<float> flatten;
            (void)flatten.predict(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 2, 2})));
            (void)flatten.backward(xt::xtensor<float, 2>(xt::zeros<float>({1, 4})));
        },
        {"Flatten()", "forward"});
    // predict between forward and backward replaces what backward needs: an error, not a
    // gradient computed from the predict input.
    require_error<xcnn::error>(
        []
        {
            xcnn::ReLU<float> relu;
            (void)relu.forward(xt::xtensor<float, 2>{{1.0f, -1.0f}});
            (void)relu.predict(xt::xtensor<float, 2>{{-1.0f, 1.0f}});
            (void)relu.backward(xt::xtensor<float, 2>{{1.0f, 1.0f}});
        },
        {"ReLU()", "forward"});
    require_error<xcnn::error>(
        []
        {
            xcnn::Conv2D<float> conv(1, 4, 3);
            (void)conv.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 5, 5})));
            (void)conv.predict(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 5, 5})));
            (void)conv.backward(xt::xtensor<float, 4>(xt::zeros<float>({1, 4, 3, 3})));
        },
        {conv_1_4_3, "forward"});
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
