// Tests of xcnn::Sequential: construction by CTAD, forward/predict/backward against the layers
// chained by hand, layer access, parameters(), summary(), output_shape(), initialisation,
// nesting, run-time size errors and a finite-difference gradient check of a whole network.
#include "catch_compat.hpp"
#include "support/gradcheck.hpp"

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace
{

using xcnn_test::contains;

template <class S>
std::vector<std::size_t> as_vector(const S& shape)
{
    return std::vector<std::size_t>(shape.begin(), shape.end());
}

/// Same shape and bit-identical elements.
template <class A, class B>
bool identical(const A& a, const B& b)
{
    return as_vector(a.shape()) == as_vector(b.shape()) && std::equal(a.begin(), a.end(), b.begin());
}

template <class T, std::size_t N>
xt::xtensor<T, N> random_tensor(const std::array<std::size_t, N>& shape, std::mt19937& rng, double lo = -1.0,
                                double hi = 1.0)
{
    xt::xtensor<T, N> t(shape);
    xcnn_test::fill_uniform(t, rng, lo, hi);
    return t;
}

/// The network of the issue, built exactly as documented.
auto make_mnist_net()
{
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::Flatten<float>{},
                         xcnn::Dense<float>(8 * 28 * 28, 10)};
    return net;
}

using mnist_net = xcnn::Sequential<xcnn::Conv2D<float>, xcnn::ReLU<float>, xcnn::Flatten<float>, xcnn::Dense<float>>;

} // namespace

TEST_CASE("Sequential is built by CTAD and exposes its layers", "[sequential]")
{
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::Flatten<float>{},
                         xcnn::Dense<float>(8 * 28 * 28, 10)};
    STATIC_REQUIRE(std::is_same<decltype(net), mnist_net>::value);
    STATIC_REQUIRE(std::is_same<decltype(net)::value_type, float>::value);
    STATIC_REQUIRE(decltype(net)::size() == 4);
    STATIC_REQUIRE(decltype(net)::input_rank == 4);
    STATIC_REQUIRE(decltype(net)::output_rank == 2);
    STATIC_REQUIRE(std::is_same<std::remove_reference_t<decltype(net.get<0>())>, xcnn::Conv2D<float>>::value);
    STATIC_REQUIRE(std::is_same<std::remove_reference_t<decltype(net.get<3>())>, xcnn::Dense<float>>::value);

    const auto& cnet = net;
    STATIC_REQUIRE(std::is_same<decltype(cnet.get<3>()), const xcnn::Dense<float>&>::value);
    CHECK(&cnet.get<3>() == &net.get<3>());
    CHECK(net.get<3>().in_features() == 8 * 28 * 28);
    CHECK(net.get<3>().out_features() == 10);
    CHECK(net.get<0>().options().out_channels() == 8);

    // A layer that keeps the rank (ReLU) does not fix the rank of a network that starts with it.
    xcnn::Sequential relu_first{xcnn::ReLU<double>{}, xcnn::Dense<double>(3, 2)};
    STATIC_REQUIRE(decltype(relu_first)::input_rank == xcnn::any_rank);
    STATIC_REQUIRE(decltype(relu_first)::output_rank == 2);
    xcnn::Sequential relu_last{xcnn::Conv2D<double>(1, 1, 1), xcnn::ReLU<double>{}};
    STATIC_REQUIRE(decltype(relu_last)::output_rank == 4);

    // One layer is a network too.
    xcnn::Sequential single{xcnn::Dense<double>(3, 2)};
    STATIC_REQUIRE(std::is_same<decltype(single), xcnn::Sequential<xcnn::Dense<double>>>::value);
    auto dense = single.get<0>();
    const xt::xtensor<double, 2> x = {{1.0, -2.0, 0.5}};
    const xt::xtensor<double, 2> expected = dense.forward(x);
    CHECK(identical(single.forward(x), expected));
    const xt::xtensor<double, 2> dy = {{0.25, -1.0}};
    const xt::xtensor<double, 2> expected_dx = dense.backward(dy);
    CHECK(identical(single.backward(dy), expected_dx));
}

TEST_CASE("Sequential forward, predict and backward equal the layers chained by hand", "[sequential]")
{
    auto net = make_mnist_net();
    net.reset_parameters(123u);
    // Copies of the very same layers (same weights), run one after the other by hand. Inside the
    // Sequential, Flatten + Dense run as one step (Dense::forward_flattened reads the ReLU's
    // output in place): the results must not change by a bit.
    auto conv = net.get<0>();
    auto relu = net.get<1>();
    auto flatten = net.get<2>();
    auto dense = net.get<3>();

    std::mt19937 rng(1);
    const auto x = random_tensor<float>(std::array<std::size_t, 4>{3, 1, 28, 28}, rng);
    const auto dy = random_tensor<float>(std::array<std::size_t, 2>{3, 10}, rng);

    const auto& h1 = conv.forward(x);
    const auto& h2 = relu.forward(h1);
    const auto& h3 = flatten.forward(h2);
    const xt::xtensor<float, 2> expected = dense.forward(h3);

    const xt::xtensor<float, 2> y = net.forward(x);
    REQUIRE(as_vector(y.shape()) == std::vector<std::size_t>{3, 10});
    CHECK(identical(y, expected));
    // Not a vacuous comparison: the logits vary.
    CHECK(xt::amax(y)() > xt::amin(y)());

    SECTION("predict gives the forward result")
    {
        const xt::xtensor<float, 2> p = net.predict(x);
        CHECK(identical(p, y));
    }

    SECTION("backward equals the layers' backward in reverse order")
    {
        const auto& g3 = dense.backward(dy);
        const auto& g2 = flatten.backward(g3);
        const auto& g1 = relu.backward(g2);
        const xt::xtensor<float, 4> expected_dx = conv.backward(g1);

        const xt::xtensor<float, 4> dx = net.backward(dy);
        REQUIRE(as_vector(dx.shape()) == std::vector<std::size_t>{3, 1, 28, 28});
        CHECK(identical(dx, expected_dx));
        CHECK(xt::amax(xt::abs(dx))() > 0.0f);
        CHECK(identical(net.get<0>().weight_grad(), conv.weight_grad()));
        CHECK(identical(net.get<0>().bias_grad(), conv.bias_grad()));
        CHECK(identical(net.get<3>().weight_grad(), dense.weight_grad()));
        CHECK(identical(net.get<3>().bias_grad(), dense.bias_grad()));
    }

    SECTION("the buffers follow a change of batch size")
    {
        // Samples are independent: the first sample alone gives the first row (up to the
        // summation order of the GEMM, which may depend on the batch size).
        const xt::xtensor<float, 4> first = xt::view(x, xt::range(0, 1));
        const xt::xtensor<float, 2> y1 = net.forward(first);
        REQUIRE(as_vector(y1.shape()) == std::vector<std::size_t>{1, 10});
        CHECK(xcnn_test::max_abs_diff(y1, xt::xtensor<float, 2>(xt::view(y, xt::range(0, 1)))) < 1e-5);
        const xt::xtensor<float, 4> dx1 = net.backward(xt::xtensor<float, 2>(xt::view(dy, xt::range(0, 1))));
        REQUIRE(as_vector(dx1.shape()) == std::vector<std::size_t>{1, 1, 28, 28});
        const xt::xtensor<float, 2> y3 = net.forward(x);
        CHECK(identical(y3, y));
    }

    SECTION("forward accepts an xt::xarray input")
    {
        const xt::xarray<float> xa = x;
        const xt::xtensor<float, 2> ya = net.forward(xa);
        CHECK(identical(ya, y));
    }

    SECTION("backward after predict (no training caches) is an error")
    {
        (void)net.predict(x);
        CHECK_THROWS_AS(net.backward(dy), xcnn::error);
    }
}

TEST_CASE("Conv2D + ReLU run as one step in a Sequential, with the results of the two layers", "[sequential]")
{
    // Every form of the fused step: the padded-width form (14 x 14), a stride-2 convolution
    // (the ReLU mask applied to a copy of dY) and the window form (rows of 32 pixels), first
    // layer included (backward_parameters_relu), against the same layers run by hand.
    xcnn::Sequential net{xcnn::Conv2D<double>(2, 3, 3, 1, 1),
                         xcnn::ReLU<double>{},
                         xcnn::Conv2D<double>(xcnn::Conv2DOptions(3, 4, 3).stride(2).padding(1)),
                         xcnn::ReLU<double>{},
                         xcnn::Conv2D<double>(4, 2, 1),
                         xcnn::ReLU<double>{}};
    net.reset_parameters(7u);
    auto c1 = net.get<0>();
    auto r1 = net.get<1>();
    auto c2 = net.get<2>();
    auto r2 = net.get<3>();
    auto c3 = net.get<4>();
    auto r3 = net.get<5>();
    std::mt19937 rng(3);
    for (const std::size_t width : {14u, 64u})
    {
        INFO("input width " << width);
        const auto x = random_tensor<double>(std::array<std::size_t, 4>{2, 2, 6, width}, rng);
        const xt::xtensor<double, 4> expected =
            r3.forward(c3.forward(r2.forward(c2.forward(r1.forward(c1.forward(x))))));
        const xt::xtensor<double, 4> y = net.forward(x);
        REQUIRE(identical(y, expected));
        // Not vacuous: the ReLUs clamp some outputs and pass others.
        CHECK(xt::amin(y)() == 0.0);
        CHECK(xt::amax(y)() > 0.0);
        CHECK(identical(net.predict(x), expected));
        (void)net.forward(x);

        const auto dy = random_tensor<double>(std::array<std::size_t, 4>(y.shape()), rng);
        const xt::xtensor<double, 4> expected_dx =
            c1.backward(r1.backward(c2.backward(r2.backward(c3.backward(r3.backward(dy))))));
        const xt::xtensor<double, 4> dx = net.backward(dy);
        CHECK(identical(dx, expected_dx));
        CHECK(identical(net.get<0>().weight_grad(), c1.weight_grad()));
        CHECK(identical(net.get<2>().weight_grad(), c2.weight_grad()));
        CHECK(identical(net.get<2>().bias_grad(), c2.bias_grad()));
        CHECK(identical(net.get<4>().weight_grad(), c3.weight_grad()));

        net.backward_parameters(dy);
        CHECK(identical(net.get<0>().weight_grad(), c1.weight_grad()));
        CHECK(identical(net.get<0>().bias_grad(), c1.bias_grad()));
    }
}

TEST_CASE("Sequential::get returns the layer itself", "[sequential]")
{
    auto net = make_mnist_net();
    std::mt19937 rng(2);
    const auto x = random_tensor<float>(std::array<std::size_t, 4>{2, 1, 28, 28}, rng);
    const xt::xtensor<float, 2> before = net.forward(x);

    SECTION("changing the Dense bias shifts every logit")
    {
        net.get<3>().bias() += 1.0f;
        const xt::xtensor<float, 2> after = net.forward(x);
        CHECK(xcnn_test::max_abs_diff(after, xt::xtensor<float, 2>(before + 1.0f)) < 1e-5);
    }

    SECTION("zeroing the convolution leaves only the Dense bias")
    {
        net.get<0>().weight().fill(0.0f);
        net.get<0>().bias().fill(0.0f);
        const xt::xtensor<float, 2> after = net.forward(x);
        for (std::size_t i = 0; i < 2; ++i)
        {
            for (std::size_t c = 0; c < 10; ++c)
            {
                CHECK(after(i, c) == net.get<3>().bias()(c));
            }
        }
        CHECK_FALSE(identical(after, before));
    }
}

TEST_CASE("Sequential::parameters names, shapes and gradients", "[sequential]")
{
    auto net = make_mnist_net();
    auto params = net.parameters();
    REQUIRE(params.size() == 4);

    const std::vector<std::string> names{"0.weight", "0.bias", "3.weight", "3.bias"};
    const std::vector<std::vector<std::size_t>> shapes{{8, 1, 3, 3}, {8}, {10, 8 * 28 * 28}, {10}};
    const std::vector<std::size_t> sizes{72, 8, 62720, 10};
    std::size_t total = 0;
    for (std::size_t i = 0; i < params.size(); ++i)
    {
        INFO("parameter " << i);
        CHECK(params[i].name() == names[i]);
        CHECK(params[i].shape() == shapes[i]);
        CHECK(params[i].size() == sizes[i]);
        CHECK(as_vector(params[i].value().shape()) == shapes[i]);
        CHECK(as_vector(params[i].grad().shape()) == shapes[i]);
        total += params[i].size();
    }
    CHECK(total == 62810);
    CHECK(net.num_parameters() == 62810);

    // The handles refer to the layers' own tensors.
    CHECK(params[0].data() == net.get<0>().weight().data());
    CHECK(params[1].data() == net.get<0>().bias().data());
    CHECK(params[2].data() == net.get<3>().weight().data());
    CHECK(params[3].data() == net.get<3>().bias().data());
    CHECK(identical(params[2].value(), net.get<3>().weight()));

    std::mt19937 rng(3);
    const auto x = random_tensor<float>(std::array<std::size_t, 4>{2, 1, 28, 28}, rng);
    const auto dy = random_tensor<float>(std::array<std::size_t, 2>{2, 10}, rng);

    SECTION("the gradients are the layers' gradients after backward")
    {
        (void)net.forward(x);
        (void)net.backward(dy);
        CHECK(identical(params[0].grad(), net.get<0>().weight_grad()));
        CHECK(identical(params[1].grad(), net.get<0>().bias_grad()));
        CHECK(identical(params[2].grad(), net.get<3>().weight_grad()));
        CHECK(identical(params[3].grad(), net.get<3>().bias_grad()));
        CHECK(xt::amax(xt::abs(net.get<0>().weight_grad()))() > 0.0f);
        CHECK(xt::amax(xt::abs(net.get<3>().weight_grad()))() > 0.0f);
    }

    SECTION("writing through a handle changes the layer")
    {
        auto w = params[2].value();
        w(0, 0) = 3.5f;
        CHECK(net.get<3>().weight()(0, 0) == 3.5f);
    }

    SECTION("handles stay valid after a new tensor is assigned to a layer's weight")
    {
        const auto w_copy = random_tensor<float>(std::array<std::size_t, 4>{8, 1, 3, 3}, rng);
        net.get<0>().weight() = w_copy; // copy assignment
        CHECK(identical(params[0].value(), w_copy));
        CHECK(params[0].data() == net.get<0>().weight().data());

        net.get<0>().weight() = xt::xtensor<float, 4>(2.0f * w_copy); // move assignment, new buffer
        CHECK(identical(params[0].value(), xt::xtensor<float, 4>(2.0f * w_copy)));
        CHECK(params[0].data() == net.get<0>().weight().data());

        // An optimizer holding handles taken before the assignment updates the new tensor.
        xcnn::SGD<float> sgd(params, 0.5f);
        (void)net.forward(x);
        (void)net.backward(dy);
        CHECK(params[0].grad_data() == net.get<0>().weight_grad().data());
        const xt::xtensor<float, 4> expected = net.get<0>().weight() - 0.5f * net.get<0>().weight_grad();
        sgd.step();
        CHECK(xcnn_test::max_abs_diff(net.get<0>().weight(), expected) < 1e-6);
        CHECK_FALSE(identical(net.get<0>().weight(), xt::xtensor<float, 4>(2.0f * w_copy)));
    }

    SECTION("a weight of another shape is reported, not silently used")
    {
        net.get<3>().weight() = xt::zeros<float>({10, 5});
        CHECK_THROWS_AS(net.forward(x), xcnn::shape_error);
        CHECK_THROWS_AS(net.parameters(), xcnn::shape_error);
    }
}

TEST_CASE("Sequential::output_shape and summary", "[sequential]")
{
    const auto net = make_mnist_net();
    CHECK(net.output_shape({2, 1, 28, 28}) == std::vector<std::size_t>{2, 10});
    CHECK(net.output_shape({7, 1, 28, 28}) == std::vector<std::size_t>{7, 10});
    // 8 * 12 * 12 features do not fit Dense(6272, 10): the size check reaches the last layer.
    REQUIRE_THROWS_AS(net.output_shape({2, 1, 12, 12}), xcnn::shape_error);
    REQUIRE_THROWS_WITH(net.output_shape({2, 1, 12, 12}), contains("Sequential layer 3"));
    REQUIRE_THROWS_WITH(net.output_shape({2, 1, 12, 12}), contains("(2, 1152)"));
    REQUIRE_THROWS_WITH(net.output_shape({2, 3, 28, 28}), contains("Sequential layer 0"));

    const std::string summary = net.summary({2, 1, 28, 28});
    INFO(summary);
    const std::vector<std::string> in_order{
        "Input",     "(2, 1, 28, 28)", net.get<0>().name(), "(2, 8, 28, 28)", "80",    "ReLU()", "(2, 8, 28, 28)",
        "Flatten()", "(2, 6272)",      "Dense(6272, 10)",   "(2, 10)",        "62730", "62810"};
    CHECK(net.get<0>().name() == "Conv2D(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");
    std::size_t at = 0;
    for (const auto& part : in_order)
    {
        INFO("looking for '" << part << "' after position " << at);
        const auto found = summary.find(part, at);
        REQUIRE(found != std::string::npos);
        at = found + part.size();
    }
    CHECK_THAT(summary, contains("Total parameters: 62810"));

    REQUIRE_THROWS_AS(net.summary({2, 1, 12, 12}), xcnn::shape_error);
    REQUIRE_THROWS_WITH(net.summary({2, 1, 12, 12}), contains("Sequential layer 3"));

    CHECK(net.name() == "Sequential(" + net.get<0>().name() + ", ReLU(), Flatten(), Dense(6272, 10))");
}

TEST_CASE("Sequential::reset_parameters", "[sequential][init]")
{
    auto params_of = [](auto& net)
    {
        std::vector<std::vector<float>> values;
        for (const auto& p : net.parameters())
        {
            values.emplace_back(p.data(), p.data() + p.size());
        }
        return values;
    };

    SECTION("the same seed gives bit-identical weights, another seed different ones")
    {
        auto a = make_mnist_net();
        auto b = make_mnist_net();
        auto c = make_mnist_net();
        const auto defaults = params_of(a);
        a.reset_parameters(7u);
        b.reset_parameters(7u);
        c.reset_parameters(8u);
        const auto pa = params_of(a), pb = params_of(b), pc = params_of(c);
        REQUIRE(pa.size() == 4);
        CHECK(pa == pb);
        for (std::size_t i = 0; i < pa.size(); ++i)
        {
            INFO("parameter " << i);
            CHECK(pa[i] != pc[i]);
            CHECK(pa[i] != defaults[i]);
        }
        // Resetting again with the same seed restores exactly the same weights.
        c.reset_parameters(7u);
        CHECK(params_of(c) == pa);
    }

    SECTION("reset_parameters(seed) is reset_parameters(std::mt19937(seed))")
    {
        auto a = make_mnist_net();
        auto b = make_mnist_net();
        a.reset_parameters(11u);
        std::mt19937 rng(11u);
        b.reset_parameters(rng);
        CHECK(params_of(a) == params_of(b));
    }

    SECTION("reset_parameters(rng) draws the layers in order from one generator")
    {
        auto net = make_mnist_net();
        std::mt19937 rng(99);
        net.reset_parameters(rng);

        xcnn::Conv2D<float> conv(1, 8, 3, 1, 1);
        xcnn::Dense<float> dense(8 * 28 * 28, 10);
        std::mt19937 by_hand(99);
        conv.reset_parameters(by_hand);
        dense.reset_parameters(by_hand);

        CHECK(identical(net.get<0>().weight(), conv.weight()));
        CHECK(identical(net.get<0>().bias(), conv.bias()));
        CHECK(identical(net.get<3>().weight(), dense.weight()));
        CHECK(identical(net.get<3>().bias(), dense.bias()));
        // Exactly the same number of draws was consumed.
        CHECK(rng == by_hand);
    }
}

TEST_CASE("A Sequential nests as a layer of a Sequential", "[sequential]")
{
    xcnn::Sequential inner{xcnn::Conv2D<double>(2, 4, 3, 1, 1), xcnn::ReLU<double>{}};
    xcnn::Sequential net{
        inner, xcnn::MaxPool2D<double>(2), xcnn::Flatten<double>{},
        xcnn::Sequential{xcnn::Dense<double>(4 * 3 * 3, 5), xcnn::ReLU<double>{}, xcnn::Dense<double>(5, 3)}};
    STATIC_REQUIRE(decltype(net)::size() == 4);
    STATIC_REQUIRE(decltype(net)::input_rank == 4);
    STATIC_REQUIRE(decltype(net)::output_rank == 2);
    net.reset_parameters(5u);

    auto params = net.parameters();
    std::vector<std::string> names;
    for (const auto& p : params)
    {
        names.push_back(p.name());
    }
    CHECK(names ==
          std::vector<std::string>{"0.0.weight", "0.0.bias", "3.0.weight", "3.0.bias", "3.2.weight", "3.2.bias"});
    CHECK(net.num_parameters() == (4 * 2 * 9 + 4) + (5 * 36 + 5) + (3 * 5 + 3));
    CHECK(params[0].data() == net.get<0>().get<0>().weight().data());
    CHECK(params[5].data() == net.get<3>().get<2>().bias().data());

    CHECK(net.output_shape({2, 2, 6, 7}) == std::vector<std::size_t>{2, 3});
    const std::string summary = net.summary({2, 2, 6, 7});
    CHECK_THAT(summary,
               contains("Sequential(Conv2D(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), ReLU())"));
    CHECK_THAT(summary, contains("Sequential(Dense(36, 5), ReLU(), Dense(5, 3))"));
    CHECK_THAT(summary, contains("(2, 4, 6, 7)"));
    CHECK_THAT(summary, contains("(2, 4, 3, 3)"));
    CHECK_THAT(summary, contains("Total parameters: " + std::to_string(net.num_parameters())));

    // The same layers chained by hand.
    auto conv = net.get<0>().get<0>();
    auto relu = net.get<0>().get<1>();
    auto pool = net.get<1>();
    auto flatten = net.get<2>();
    auto dense1 = net.get<3>().get<0>();
    auto relu2 = net.get<3>().get<1>();
    auto dense2 = net.get<3>().get<2>();

    std::mt19937 rng(4);
    const auto x = random_tensor<double>(std::array<std::size_t, 4>{2, 2, 6, 7}, rng);
    const auto dy = random_tensor<double>(std::array<std::size_t, 2>{2, 3}, rng);

    const xt::xtensor<double, 2> expected =
        dense2.forward(relu2.forward(dense1.forward(flatten.forward(pool.forward(relu.forward(conv.forward(x)))))));
    const xt::xtensor<double, 2> y = net.forward(x);
    CHECK(identical(y, expected));
    const xt::xtensor<double, 2> p = net.predict(x);
    CHECK(identical(p, expected));

    (void)net.forward(x);
    const xt::xtensor<double, 4> expected_dx = conv.backward(
        relu.backward(pool.backward(flatten.backward(dense1.backward(relu2.backward(dense2.backward(dy)))))));
    const xt::xtensor<double, 4> dx = net.backward(dy);
    CHECK(identical(dx, expected_dx));
    CHECK(identical(params[0].grad(), conv.weight_grad()));
    CHECK(identical(params[2].grad(), dense1.weight_grad()));
    CHECK(identical(params[4].grad(), dense2.weight_grad()));

    // Initialisation of a nested network draws the inner layers in order too.
    std::mt19937 rng_net(21), rng_hand(21);
    net.reset_parameters(rng_net);
    conv.reset_parameters(rng_hand);
    dense1.reset_parameters(rng_hand);
    dense2.reset_parameters(rng_hand);
    CHECK(identical(net.get<0>().get<0>().weight(), conv.weight()));
    CHECK(identical(net.get<3>().get<0>().weight(), dense1.weight()));
    CHECK(identical(net.get<3>().get<2>().bias(), dense2.bias()));
    CHECK(rng_net == rng_hand);

    // A size error inside the nested network names both levels.
    REQUIRE_THROWS_AS(net.forward(xt::xtensor<double, 4>(xt::zeros<double>({2, 3, 6, 7}))), xcnn::shape_error);
    REQUIRE_THROWS_WITH(net.forward(xt::xtensor<double, 4>(xt::zeros<double>({2, 3, 6, 7}))),
                        contains("Sequential layer 0: Sequential layer 0: Conv2D(2, 4"));
}

TEST_CASE("Sequential reports run-time size mismatches with the layer index, layer and shapes", "[sequential][errors]")
{
    SECTION("Dense(100, 10) fed 120 features")
    {
        // 2 channels of 6 x 10 flatten to 120 features per sample.
        xcnn::Sequential net{xcnn::Conv2D<float>(1, 2, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::Flatten<float>{},
                             xcnn::Dense<float>(100, 10)};
        const xt::xtensor<float, 4> x = xt::ones<float>({2, 1, 6, 10});
        REQUIRE_THROWS_AS(net.forward(x), xcnn::shape_error);
        REQUIRE_THROWS_AS(net.predict(x), xcnn::shape_error);
        for (int use_predict = 0; use_predict < 2; ++use_predict)
        {
            std::string what;
            try
            {
                if (use_predict)
                {
                    (void)net.predict(x);
                }
                else
                {
                    (void)net.forward(x);
                }
            }
            catch (const xcnn::shape_error& e)
            {
                what = e.what();
            }
            INFO(what);
            CHECK_THAT(what, contains("Sequential layer 3"));
            CHECK_THAT(what, contains("Dense(100, 10)"));
            CHECK_THAT(what, contains("expected 100 input features")); // what the layer takes
            CHECK_THAT(what, contains("(2, 120)"));                    // what it got
            // The whole message, as documented in docs/design.md.
            CHECK_THAT(what,
                       contains("Sequential layer 3: Dense(100, 10): expected 100 input features, got input (2, 120)"));
        }
        REQUIRE_THROWS_WITH(net.output_shape({2, 1, 6, 10}), contains("Sequential layer 3: Dense(100, 10)"));
    }

    SECTION("3 channels fed into Conv2D(1, ...)")
    {
        xcnn::Sequential net{xcnn::ReLU<float>{}, xcnn::Conv2D<float>(1, 4, 3), xcnn::Flatten<float>{},
                             xcnn::Dense<float>(4 * 6 * 6, 10)};
        const xt::xtensor<float, 4> x = xt::ones<float>({2, 3, 8, 8});
        REQUIRE_THROWS_AS(net.forward(x), xcnn::shape_error);
        std::string what;
        try
        {
            (void)net.forward(x);
        }
        catch (const xcnn::shape_error& e)
        {
            what = e.what();
        }
        INFO(what);
        CHECK_THAT(what, contains("Sequential layer 1"));
        CHECK_THAT(what, contains("Conv2D(1, 4, kernel_size=(3, 3)"));
        CHECK_THAT(what, contains("expected 1 input channels"));
        CHECK_THAT(what, contains("(2, 3, 8, 8)"));
        // The same input with one channel is fine.
        CHECK_NOTHROW(net.forward(xt::xtensor<float, 4>(xt::ones<float>({2, 1, 8, 8}))));
    }
}

namespace
{

/// Smallest distance of the network's ReLU inputs from 0 and of each max-pool window's maximum
/// from the runner-up: when both exceed the finite-difference step by far, the loss is smooth
/// around the point and central differences are exact up to O(eps^2).
template <class Conv>
double kink_margin(const Conv& conv_layer, const xt::xtensor<double, 4>& x, std::size_t pool)
{
    auto conv = conv_layer;
    const xt::xtensor<double, 4> z = conv.predict(x);
    double margin = xt::amin(xt::abs(z))();
    const auto& s = z.shape();
    for (std::size_t n = 0; n < s[0]; ++n)
    {
        for (std::size_t c = 0; c < s[1]; ++c)
        {
            for (std::size_t i = 0; i + pool <= s[2]; i += pool)
            {
                for (std::size_t j = 0; j + pool <= s[3]; j += pool)
                {
                    std::vector<double> window;
                    for (std::size_t a = 0; a < pool; ++a)
                    {
                        for (std::size_t b = 0; b < pool; ++b)
                        {
                            window.push_back(std::max(z(n, c, i + a, j + b), 0.0));
                        }
                    }
                    std::sort(window.rbegin(), window.rend());
                    if (window[0] > 0)
                    {
                        margin = std::min(margin, window[0] - window[1]);
                    }
                }
            }
        }
    }
    return margin;
}

} // namespace

TEST_CASE("Sequential + SoftmaxCrossEntropy pass a finite-difference gradient check", "[sequential][gradcheck]")
{
    xcnn::Sequential net{xcnn::Conv2D<double>(2, 3, 3, 2, 1), xcnn::ReLU<double>{}, xcnn::MaxPool2D<double>(2),
                         xcnn::Flatten<double>{}, xcnn::Dense<double>(3 * 2 * 2, 4)};
    // (2, 2, 8, 7) -> conv (2, 3, 4, 4) -> pool (2, 3, 2, 2) -> (2, 12) -> (2, 4)
    REQUIRE(net.output_shape({2, 2, 8, 7}) == std::vector<std::size_t>{2, 4});
    xcnn::SoftmaxCrossEntropy<double> loss;
    xt::xtensor<std::int64_t, 1> labels = {1, 3};
    xt::xtensor<double, 4> x({2, 2, 8, 7});

    // Deterministic search for a point away from the ReLU and max-pool kinks.
    const double required_margin = 1e-3;
    bool found = false;
    for (unsigned seed = 1; seed <= 100 && !found; ++seed)
    {
        std::mt19937 rng(seed);
        net.reset_parameters(rng);
        xcnn_test::fill_uniform(x, rng);
        found = kink_margin(net.get<0>(), x, 2) > required_margin;
    }
    REQUIRE(found);

    auto value = [&]
    {
        return loss.forward(net.forward(x), labels);
    };
    (void)value();
    const xt::xtensor<double, 4> dx = net.backward(loss.backward());

    auto params = net.parameters();
    REQUIRE(params.size() == 4);
    std::vector<std::vector<double>> analytic;
    for (const auto& p : params)
    {
        analytic.emplace_back(p.grad_data(), p.grad_data() + p.size());
    }

    {
        INFO("input");
        xt::xtensor<double, 4> x_perturbed = x;
        const auto numeric = xcnn_test::numeric_gradient(value, x.data(), x.size());
        CHECK(xcnn_test::max_abs_diff(x, x_perturbed) == 0.0); // restored
        const double err = xcnn_test::relative_error(dx.data(), numeric.data(), dx.size());
        CAPTURE(err);
        CHECK(err < 1e-6);
        CHECK(xt::amax(xt::abs(dx))() > 1e-4); // not vacuous
    }
    for (std::size_t i = 0; i < params.size(); ++i)
    {
        INFO("parameter " << params[i].name());
        const auto numeric = xcnn_test::numeric_gradient(value, params[i].data(), params[i].size());
        const double err = xcnn_test::relative_error(analytic[i].data(), numeric.data(), params[i].size());
        CAPTURE(err);
        CHECK(err < 1e-6);
        double largest = 0;
        for (double g : analytic[i])
        {
            largest = std::max(largest, std::abs(g));
        }
        CHECK(largest > 1e-4); // not vacuous
    }
}

TEST_CASE("Sequential::backward_parameters gives backward's parameter gradients without dX of the input",
          "[sequential]")
{
    std::mt19937 rng(77);
    auto make = []
    {
        xcnn::Sequential inner{xcnn::Conv2D<double>(xcnn::Conv2DOptions(2, 3, 3).stride(2).padding(1)),
                               xcnn::ReLU<double>{}};
        xcnn::Sequential net{inner, xcnn::Flatten<double>{}, xcnn::Dense<double>(3 * 4 * 4, 5)};
        net.reset_parameters(5u);
        return net;
    };
    auto full = make();
    auto partial = make();
    xt::xtensor<double, 4> x({3, 2, 7, 8});
    xcnn_test::fill_uniform(x, rng);
    xt::xtensor<double, 2> dy({3, 5});
    xcnn_test::fill_uniform(dy, rng);
    full.forward(x);
    full.backward(dy);
    partial.forward(x);
    partial.backward_parameters(dy);
    const auto a = full.parameters();
    const auto b = partial.parameters();
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        CAPTURE(a[i].name());
        const bool identical = a[i].grad() == b[i].grad();
        CHECK(identical);
    }
}

namespace
{

/// A layer with a buffer: y = x, and `seen` counts the samples of every training forward (the
/// kind of state BatchNorm's running statistics are).
template <class T>
class SampleCounter : public xcnn::layer<SampleCounter<T>, T, 2>
{
public:
    using typename xcnn::layer<SampleCounter<T>, T, 2>::input_type;
    using typename xcnn::layer<SampleCounter<T>, T, 2>::output_type;

    SampleCounter() : m_seen("seen", {1}) {}
    auto buffer_slots() { return std::tie(m_seen); }
    std::string name() const { return "SampleCounter()"; }
    template <class S>
    std::array<std::size_t, 2> checked_output_shape(const S& s) const
    {
        xcnn::detail::require_rank(*this, s, 2, "(N, features)");
        return {s[0], s[1]};
    }
    const output_type& run_forward(const input_type& x, bool training)
    {
        m_seen.value()(0) += training ? static_cast<T>(x.shape()[0]) : T(0);
        m_y = x;
        return m_y;
    }
    const input_type& run_backward(const output_type& dy)
    {
        m_dx = dy;
        return m_dx;
    }

private:
    xcnn::persistent<T, 1> m_seen;
    output_type m_y;
    input_type m_dx;
};

} // namespace

TEST_CASE("Sequential::buffers names each layer's buffers like state_dict keys, optimizers never see them",
          "[sequential][buffers]")
{
    xcnn::Sequential net{xcnn::Dense<double>(3, 4), SampleCounter<double>{}, xcnn::ReLU<double>{},
                         xcnn::Sequential{xcnn::Dense<double>(4, 4), SampleCounter<double>{}},
                         xcnn::Dense<double>(4, 2)};
    const auto buffers = net.buffers();
    REQUIRE(buffers.size() == 2);
    CHECK(buffers[0].name() == "1.seen");
    CHECK(buffers[0].layer() == "SampleCounter()");
    CHECK(buffers[1].name() == "3.1.seen");
    for (const auto& p : net.parameters())
    {
        CHECK(p.name().find("seen") == std::string::npos);
    }
    CHECK(net.num_parameters() == (3 * 4 + 4) + (4 * 4 + 4) + (4 * 2 + 2));

    xt::xtensor<double, 2> x = xt::ones<double>({5, 3});
    net.forward(x);
    net.forward(x);
    net.predict(x); // inference leaves the statistics alone
    CHECK(buffers[0].data()[0] == 10.0);
    CHECK(buffers[1].value()(0) == 10.0);
    CHECK(buffers[1].size() == 1);
    CHECK(buffers[1].shape() == std::vector<std::size_t>{1});
}

TEST_CASE("Parameter and buffer handles survive moving the network, a copy is a new network", "[sequential]")
{
    auto net = xcnn::Sequential{xcnn::Dense<double>(3, 4), SampleCounter<double>{}, xcnn::Dense<double>(4, 2)};
    {
        // The case: a convolutional network moved after its optimizer was built.
        auto conv_net = xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3), xcnn::ReLU<float>{}, xcnn::Flatten<float>{},
                                         xcnn::Dense<float>(2 * 4 * 4, 3)};
        xcnn::SGD<float> sgd(conv_net.parameters(), 0.1f);
        auto moved_conv = std::move(conv_net);
        const xt::xtensor<float, 4> before = moved_conv.get<0>().weight();
        xt::xtensor<float, 4> images = xt::ones<float>({2, 1, 6, 6});
        const auto& logits = moved_conv.forward(images);
        moved_conv.backward(xt::xtensor<float, 2>(xt::ones<float>(logits.shape())));
        sgd.step();
        CHECK_FALSE(identical(moved_conv.get<0>().weight(), before));
    }
    xcnn::SGD<double> optimizer(net.parameters(), 0.1);
    const auto buffers = net.buffers();
    auto moved = std::move(net);
    const xt::xtensor<double, 2> before = moved.get<0>().weight();

    xt::xtensor<double, 2> x = xt::ones<double>({2, 3});
    const auto& y = moved.forward(x);
    moved.backward(xt::xtensor<double, 2>(xt::ones<double>(y.shape())));
    optimizer.step();
    // The optimizer updated the moved network's weights, not a moved-from shell.
    CHECK_FALSE(identical(moved.get<0>().weight(), before));
    CHECK(buffers[0].data()[0] == 2.0);

    auto copy = moved;
    const xt::xtensor<double, 2> copied = copy.get<0>().weight();
    moved.forward(x);
    moved.backward(xt::xtensor<double, 2>(xt::ones<double>(y.shape())));
    optimizer.step();
    CHECK(identical(copy.get<0>().weight(), copied)); // the optimizer belongs to the original
    CHECK_FALSE(identical(moved.get<0>().weight(), copied));
}

TEST_CASE("Sequential plans its fused steps once from what the layers declare", "[sequential]")
{
    using xcnn::detail::step_kind;
    using net_type = xcnn::Sequential<xcnn::Dense<float>, xcnn::ReLU<float>, xcnn::Dense<float>, xcnn::ReLU<float>,
                                      xcnn::ReLU<float>>;
    STATIC_REQUIRE(net_type::plan[0] == step_kind::with_activation);
    STATIC_REQUIRE(net_type::plan[1] == step_kind::absorbed);
    STATIC_REQUIRE(net_type::plan[2] == step_kind::with_activation);
    STATIC_REQUIRE(net_type::plan[3] == step_kind::absorbed);
    STATIC_REQUIRE(net_type::plan[4] == step_kind::single); // an activation applies no activation
    using flat = xcnn::Sequential<xcnn::Flatten<float>, xcnn::Dense<float>>;
    STATIC_REQUIRE(flat::plan[0] == step_kind::single); // the caller's input is not read in place
    using rows = xcnn::Sequential<xcnn::MaxPool2D<float>, xcnn::Flatten<float>, xcnn::Dense<float>>;
    STATIC_REQUIRE(rows::plan[1] == step_kind::rows_into_next);
    STATIC_REQUIRE(rows::plan[2] == step_kind::absorbed);
    using conv = xcnn::Sequential<xcnn::Conv2D<float>, xcnn::ReLU<float>, xcnn::Flatten<float>, xcnn::Dense<float>>;
    STATIC_REQUIRE(conv::plan[0] == step_kind::with_activation);
    STATIC_REQUIRE(conv::plan[2] == step_kind::rows_into_next);
    STATIC_REQUIRE(xcnn::detail::is_layer<xcnn::Conv2D<float>>::value);
    STATIC_REQUIRE(xcnn::detail::is_layer<xcnn::Dense<float>>::value);
    STATIC_REQUIRE(xcnn::detail::is_layer<xcnn::ReLU<float>>::value);
    STATIC_REQUIRE(xcnn::detail::is_layer<net_type>::value);
    STATIC_REQUIRE_FALSE(xcnn::detail::is_layer<int>::value);
    STATIC_REQUIRE_FALSE(xcnn::detail::is_layer<std::vector<float>>::value);
}

TEST_CASE("Dense + ReLU run as one step in a Sequential, with the results of the two layers", "[sequential]")
{
    std::mt19937 rng(3);
    xcnn::Sequential fused{xcnn::Dense<double>(6, 5), xcnn::ReLU<double>{}, xcnn::Dense<double>(5, 3)};
    fused.reset_parameters(11u);
    auto dense0 = fused.get<0>();
    auto relu = fused.get<1>();
    auto dense2 = fused.get<2>();
    const auto x = random_tensor<double, 2>({4, 6}, rng);
    const auto dy = random_tensor<double, 2>({4, 3}, rng);

    const xt::xtensor<double, 2> y = fused.forward(x);
    const xt::xtensor<double, 2> dx = fused.backward(dy);
    const xt::xtensor<double, 2> expected_y = dense2.forward(relu.forward(dense0.forward(x)));
    const xt::xtensor<double, 2> expected_dx = dense0.backward(relu.backward(dense2.backward(dy)));
    CHECK(identical(y, expected_y));
    CHECK(identical(dx, expected_dx));
    CHECK(identical(fused.get<0>().weight_grad(), dense0.weight_grad()));
    CHECK(identical(fused.get<0>().bias_grad(), dense0.bias_grad()));
    // Not vacuous: the ReLU clamps some values and passes others.
    const auto& h = relu.forward(dense0.forward(x));
    CHECK(std::count(h.begin(), h.end(), 0.0) > 0);
    CHECK(std::count_if(h.begin(), h.end(), [](double v) { return v > 0; }) > 0);

    fused.backward_parameters(dy);
    CHECK(identical(fused.get<0>().weight_grad(), dense0.weight_grad()));
    CHECK(identical(fused.predict(x), expected_y));
}
