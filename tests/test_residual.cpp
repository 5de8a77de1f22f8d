// Tests of xcnn::Residual (network/residual.hpp): construction by CTAD inside a Sequential,
// forward/predict/backward/backward_parameters against the branches run separately and added,
// finite-difference gradients of both forms, PyTorch parity of a small ResNet-style network
// (tests/fixtures/torch_residual.py), state_dict names, shape errors, model files, .npy files,
// checkpoints, and training. test_layers and test_allocations cover both forms through their zoo
// entries (tests/support/layer_zoo.hpp).
#include "catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include "consumer/user_layer/channel_scale.hpp"
#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"
#include "support/require_error.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace
{

using xcnn_test::contains;
using xcnn_test::require_error;

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
xt::xtensor<T, N> random_tensor(const std::array<std::size_t, N>& shape, std::mt19937& rng)
{
    xt::xtensor<T, N> t(shape);
    xcnn_test::fill_uniform(t, rng);
    return t;
}

/// a + b element by element, in a loop of its own: the reference for the block's sums.
template <class T, std::size_t N>
xt::xtensor<T, N> sum_of(const xt::xtensor<T, N>& a, const xt::xtensor<T, N>& b)
{
    REQUIRE(as_vector(a.shape()) == as_vector(b.shape()));
    xt::xtensor<T, N> out(a.shape());
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        out.data()[i] = a.data()[i] + b.data()[i];
    }
    return out;
}

using xcnn_test::names_of;

/// Every value of every parameter and buffer of `net`.
template <class Net>
std::vector<typename Net::value_type> state_of(Net& net)
{
    std::vector<typename Net::value_type> out;
    for (const auto& p : net.parameters())
    {
        out.insert(out.end(), p.data(), p.data() + p.size());
    }
    for (const auto& b : net.buffers())
    {
        out.insert(out.end(), b.data(), b.data() + b.size());
    }
    return out;
}

/// sum(y * r): a scalar loss whose gradient with respect to y is r.
template <class Y, class R>
double weighted_sum(const Y& y, const R& r)
{
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i)
    {
        s += static_cast<double>(y.data()[i]) * static_cast<double>(r.data()[i]);
    }
    return s;
}

/// The identity form: two 3x3 convolutions that keep the shape.
template <class T>
auto make_identity_block()
{
    return xcnn::Residual(
        xcnn::Sequential{xcnn::Conv2D<T>(3, 3, 3, 1, 1), xcnn::ReLU<T>{}, xcnn::Conv2D<T>(3, 3, 3, 1, 1)});
}

/// The projection form of ResNet: stride 2 and more channels in main, a 1x1 stride-2 convolution
/// in the shortcut.
template <class T>
auto make_projection_block()
{
    return xcnn::Residual(
        xcnn::Sequential{xcnn::Conv2D<T>(2, 4, 3, 2, 1), xcnn::ReLU<T>{}, xcnn::Conv2D<T>(4, 4, 3, 1, 1)},
        xcnn::Sequential{xcnn::Conv2D<T>(2, 4, 1, 2)});
}

/// Checks the gradients `backward` gives for the input and every parameter of `block` against
/// central differences of sum(y * r), in double.
template <class Block, std::size_t N>
void check_gradients(Block& block, xt::xtensor<double, N> x, std::mt19937& rng)
{
    constexpr std::size_t M = static_cast<std::size_t>(Block::output_rank);
    std::array<std::size_t, M> out_shape{};
    const auto shape = block.output_shape(as_vector(x.shape()));
    std::copy(shape.begin(), shape.end(), out_shape.begin());
    const auto r = random_tensor<double, M>(out_shape, rng);
    (void)block.forward(x);
    const xt::xtensor<double, N> dx = block.backward(r);
    auto parameters = block.parameters();
    REQUIRE(!parameters.empty());
    std::vector<std::vector<double>> analytic;
    for (const auto& p : parameters)
    {
        analytic.emplace_back(p.grad_data(), p.grad_data() + p.size());
    }
    const std::function<double()> loss = [&]
    {
        return weighted_sum(block.predict(x), r);
    };
    REQUIRE(xt::amax(xt::abs(dx))() > 0.0);
    const auto numeric_dx = xcnn_test::numeric_gradient(loss, x.data(), x.size());
    CHECK(xcnn_test::relative_error(numeric_dx, dx.data(), dx.size()) < 1e-7);
    for (std::size_t i = 0; i < parameters.size(); ++i)
    {
        CAPTURE(parameters[i].name());
        REQUIRE(std::any_of(analytic[i].begin(), analytic[i].end(), [](double v) { return v != 0.0; }));
        const auto numeric = xcnn_test::numeric_gradient(loss, parameters[i].data(), parameters[i].size());
        CHECK(xcnn_test::relative_error(numeric, analytic[i], analytic[i].size()) < 1e-7);
    }
}

/// The network of tests/fixtures/torch_residual.py, layer for layer.
auto make_torch_net()
{
    return xcnn::Sequential{xcnn::Conv2D<double>(3, 4, 3, 1, 1),
                            xcnn::ReLU<double>{},
                            xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<double>(4, 4, 3, 1, 1), xcnn::ReLU<double>{},
                                                            xcnn::Conv2D<double>(4, 4, 3, 1, 1)}),
                            xcnn::ReLU<double>{},
                            xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<double>(4, 8, 3, 2, 1), xcnn::ReLU<double>{},
                                                            xcnn::Conv2D<double>(8, 8, 3, 1, 1)},
                                           xcnn::Conv2D<double>(4, 8, 1, 2)),
                            xcnn::ReLU<double>{},
                            xcnn::Flatten<double>{},
                            xcnn::Dense<double>(8 * 5 * 4, 3)};
}

/// Both forms with a buffer in each branch (ChannelScale stands in for BatchNorm), for the file
/// round trips.
template <class T>
auto make_net_with_buffers()
{
    return xcnn::Sequential{xcnn::Conv2D<T>(2, 4, 3, 1, 1),
                            xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<T>(4, 4, 3, 1, 1), my::ChannelScale<T>(4),
                                                            xcnn::ReLU<T>{}, xcnn::Conv2D<T>(4, 4, 3, 1, 1)}),
                            xcnn::ReLU<T>{},
                            xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<T>(4, 6, 3, 2, 1), xcnn::ReLU<T>{},
                                                            xcnn::Conv2D<T>(6, 6, 3, 1, 1)},
                                           xcnn::Sequential{xcnn::Conv2D<T>(4, 6, 1, 2), my::ChannelScale<T>(6)}),
                            xcnn::ReLU<T>{},
                            xcnn::Flatten<T>{},
                            xcnn::Dense<T>(6 * 3 * 3, 3)};
}

/// A batch of 16 inputs (2, 6, 6) and labels for `make_net_with_buffers`.
struct batch
{
    xt::xtensor<float, 4> x;
    xt::xtensor<std::int64_t, 1> labels;
};

batch make_batch(std::uint32_t seed)
{
    std::mt19937 rng(seed);
    batch b{random_tensor<float, 4>({16, 2, 6, 6}, rng), xt::zeros<std::int64_t>({std::size_t(16)})};
    for (std::size_t i = 0; i < 16; ++i)
    {
        b.labels(i) = static_cast<std::int64_t>(i % 3);
    }
    return b;
}

const std::string fixture = std::string(XCNN_TEST_FIXTURES_DIR) + "/torch_residual";

xt::xarray<double> fixture_array(const std::string& name)
{
    return xcnn::io::load_npy<double>(fixture + "/" + name + ".npy");
}

} // namespace

TEST_CASE("Residual is built by CTAD inside a Sequential, its ranks, types and branches", "[residual]")
{
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 4, 3, 1, 1),
                         xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<float>(4, 4, 3, 1, 1), xcnn::ReLU<float>{},
                                                         xcnn::Conv2D<float>(4, 4, 3, 1, 1)}),
                         xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<float>(4, 8, 3, 2, 1), xcnn::ReLU<float>{},
                                                         xcnn::Conv2D<float>(8, 8, 3, 1, 1)},
                                        xcnn::Sequential{xcnn::Conv2D<float>(4, 8, 1, 2)}),
                         xcnn::Flatten<float>{}, xcnn::Dense<float>(8 * 3 * 3, 2)};

    using conv = xcnn::Conv2D<float>;
    using relu = xcnn::ReLU<float>;
    using identity_block = xcnn::Residual<xcnn::Sequential<conv, relu, conv>>;
    using projection_block = xcnn::Residual<xcnn::Sequential<conv, relu, conv>, xcnn::Sequential<conv>>;
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(net.get<1>())>, identity_block>::value);
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(net.get<2>())>, projection_block>::value);
    STATIC_REQUIRE(std::is_same<identity_block, xcnn::Residual<xcnn::Sequential<conv, relu, conv>, void>>::value);
    STATIC_REQUIRE(!identity_block::has_shortcut);
    STATIC_REQUIRE(projection_block::has_shortcut);
    STATIC_REQUIRE(identity_block::input_rank == 4);
    STATIC_REQUIRE(identity_block::output_rank == 4);
    STATIC_REQUIRE(std::is_same<identity_block::value_type, float>::value);
#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
    STATIC_REQUIRE(xcnn::Layer<identity_block>);
    STATIC_REQUIRE(xcnn::Layer<projection_block>);
#endif
    STATIC_REQUIRE(xcnn::detail::is_layer<projection_block>::value);

    // The accessors reach the branches themselves.
    const auto params = net.parameters();
    CHECK(params[2].data() == net.get<1>().main().get<0>().weight().data());
    CHECK(params[10].data() == net.get<2>().shortcut().get<0>().weight().data());
    const auto& const_block = net.get<2>();
    STATIC_REQUIRE(std::is_same<decltype(const_block.shortcut()), const xcnn::Sequential<conv>&>::value);
    STATIC_REQUIRE(std::is_same<decltype(const_block.main()), const xcnn::Sequential<conv, relu, conv>&>::value);

    std::mt19937 rng(1);
    const auto x = random_tensor<float, 4>({2, 1, 6, 6}, rng);
    CHECK(net.output_shape({2, 1, 6, 6}) == std::vector<std::size_t>{2, 2});
    CHECK(net.forward(x).shape()[1] == 2);

    // A branch that starts with a layer of any rank takes the rank its output has...
    xcnn::Residual any_first(xcnn::Sequential{xcnn::ReLU<double>{}, xcnn::Conv2D<double>(2, 2, 3, 1, 1)});
    STATIC_REQUIRE(decltype(any_first)::input_rank == 4);
    // ... a plain layer is a branch too, and the branches may change the rank.
    xcnn::Residual to_rows(xcnn::Sequential{xcnn::Flatten<double>{}, xcnn::Dense<double>(8, 3)},
                           xcnn::Sequential{xcnn::Flatten<double>{}, xcnn::Dense<double>(8, 3)});
    STATIC_REQUIRE(decltype(to_rows)::input_rank == 4);
    STATIC_REQUIRE(decltype(to_rows)::output_rank == 2);
    xcnn::Residual dense_block(xcnn::Dense<double>(5, 5));
    STATIC_REQUIRE(decltype(dense_block)::input_rank == 2);
    CHECK(to_rows.output_shape({3, 2, 2, 2}) == std::vector<std::size_t>{3, 3});

    // A Residual directly inside another: the type spelled, as CTAD would copy the argument.
    auto inner = xcnn::Residual(xcnn::Dense<double>(3, 3));
    xcnn::Residual<decltype(inner)> outer{inner};
    STATIC_REQUIRE(std::is_same<std::decay_t<decltype(outer.main())>, decltype(inner)>::value);
    CHECK(names_of(outer.parameters()) == std::vector<std::string>{"main.main.weight", "main.main.bias"});
    const auto rows = random_tensor<double, 2>({2, 3}, rng);
    auto dense = inner.main();
    const xt::xtensor<double, 2> dense_out = dense.forward(rows);
    const xt::xtensor<double, 2> expected = sum_of<double, 2>(sum_of<double, 2>(dense_out, rows), rows);
    CHECK(identical(outer.forward(rows), expected));
}

TEST_CASE("Residual forward, predict, backward and backward_parameters equal the branches run separately and added",
          "[residual]")
{
    std::mt19937 rng(2);
    SECTION("identity form, float")
    {
        auto block = make_identity_block<float>();
        auto main = block.main(); // a copy: the reference runs on its own
        const auto x = random_tensor<float, 4>({3, 3, 5, 6}, rng);
        const auto dy = random_tensor<float, 4>({3, 3, 5, 6}, rng);

        const xt::xtensor<float, 4> expected = sum_of<float, 4>(main.forward(x), x);
        CHECK(identical(block.predict(x), expected));
        CHECK(identical(block.forward(x), expected));
        const xt::xtensor<float, 4> expected_dx = sum_of<float, 4>(main.backward(dy), dy);
        CHECK(identical(block.backward(dy), expected_dx));
        CHECK(identical(block.main().get<0>().weight_grad(), main.get<0>().weight_grad()));
        CHECK(identical(block.main().get<2>().bias_grad(), main.get<2>().bias_grad()));

        // backward_parameters: the same parameter gradients, after they were changed.
        (void)block.forward(x);
        (void)block.backward(random_tensor<float, 4>({3, 3, 5, 6}, rng));
        CHECK(!identical(block.main().get<0>().weight_grad(), main.get<0>().weight_grad()));
        (void)block.forward(x);
        block.backward_parameters(dy);
        CHECK(identical(block.main().get<0>().weight_grad(), main.get<0>().weight_grad()));
        CHECK(identical(block.main().get<2>().weight_grad(), main.get<2>().weight_grad()));
    }
    SECTION("projection form, double, odd sizes")
    {
        auto block = make_projection_block<double>();
        auto main = block.main();
        auto shortcut = block.shortcut();
        const auto x = random_tensor<double, 4>({2, 2, 7, 5}, rng);
        const xt::xtensor<double, 4> expected = sum_of<double, 4>(main.forward(x), shortcut.forward(x));
        REQUIRE(as_vector(expected.shape()) == std::vector<std::size_t>{2, 4, 4, 3});
        CHECK(block.output_shape({2, 2, 7, 5}) == std::vector<std::size_t>{2, 4, 4, 3});
        CHECK(identical(block.forward(x), expected));
        CHECK(identical(block.predict(x), expected));
        (void)block.forward(x);
        const auto dy = random_tensor<double, 4>({2, 4, 4, 3}, rng);
        const xt::xtensor<double, 4> expected_dx = sum_of<double, 4>(main.backward(dy), shortcut.backward(dy));
        CHECK(identical(block.backward(dy), expected_dx));
        CHECK(identical(block.main().get<0>().weight_grad(), main.get<0>().weight_grad()));
        CHECK(identical(block.shortcut().get<0>().weight_grad(), shortcut.get<0>().weight_grad()));
        CHECK(identical(block.shortcut().get<0>().bias_grad(), shortcut.get<0>().bias_grad()));

        // First in a Sequential, the block gets backward_parameters: the same gradients.
        xcnn::Sequential<decltype(block)> net{block};
        (void)net.forward(x);
        net.backward_parameters(dy);
        CHECK(identical(net.get<0>().main().get<2>().weight_grad(), main.get<2>().weight_grad()));
        CHECK(identical(net.get<0>().shortcut().get<0>().weight_grad(), shortcut.get<0>().weight_grad()));
    }
    SECTION("a rank-2 block of Dense layers")
    {
        xcnn::Residual block(
            xcnn::Sequential{xcnn::Dense<double>(5, 7), xcnn::ReLU<double>{}, xcnn::Dense<double>(7, 5)});
        auto main = block.main();
        const auto x = random_tensor<double, 2>({4, 5}, rng);
        const auto dy = random_tensor<double, 2>({4, 5}, rng);
        CHECK(identical(block.forward(x), sum_of<double, 2>(main.forward(x), x)));
        CHECK(identical(block.backward(dy), sum_of<double, 2>(main.backward(dy), dy)));
    }
}

TEST_CASE("Residual's sum, split between threads on large tensors, gives the one-thread result", "[residual]")
{
    // 2 x 8 x 64 x 80 = 81920 elements: more than the 64K below which the sum stays on one thread.
    xcnn::Residual block(xcnn::Conv2D<float>(8, 8, 1));
    std::mt19937 rng(3);
    const auto x = random_tensor<float, 4>({2, 8, 64, 80}, rng);
    const auto dy = random_tensor<float, 4>({2, 8, 64, 80}, rng);
    auto main = block.main();
    const xt::xtensor<float, 4> expected = sum_of<float, 4>(main.forward(x), x);
    const xt::xtensor<float, 4> expected_dx = sum_of<float, 4>(main.backward(dy), dy);
    const std::size_t saved_threads = xcnn::get_num_threads();
    for (std::size_t threads : {1, 2, 3})
    {
        CAPTURE(threads);
        xcnn::set_num_threads(threads);
        CHECK(identical(block.forward(x), expected));
        CHECK(identical(block.backward(dy), expected_dx));
    }
    xcnn::set_num_threads(saved_threads);
}

TEST_CASE("Residual's gradients match finite differences in both forms", "[residual][gradcheck]")
{
    std::mt19937 rng(4);
    SECTION("identity: Conv2D, ReLU, Conv2D")
    {
        auto block = make_identity_block<double>();
        check_gradients(block, random_tensor<double, 4>({2, 3, 4, 5}, rng), rng);
    }
    SECTION("projection: Conv2D stride 2, ReLU, Conv2D + Conv2D 1x1 stride 2")
    {
        auto block = make_projection_block<double>();
        check_gradients(block, random_tensor<double, 4>({2, 2, 5, 6}, rng), rng);
    }
    SECTION("identity: Dense, ReLU, Dense")
    {
        xcnn::Residual block(
            xcnn::Sequential{xcnn::Dense<double>(5, 7), xcnn::ReLU<double>{}, xcnn::Dense<double>(7, 5)});
        check_gradients(block, random_tensor<double, 2>({3, 5}, rng), rng);
    }
    SECTION("projection: Dense, ReLU, Dense + Dense (5 -> 4 features)")
    {
        xcnn::Residual block(
            xcnn::Sequential{xcnn::Dense<double>(5, 7), xcnn::ReLU<double>{}, xcnn::Dense<double>(7, 4)},
            xcnn::Dense<double>(5, 4));
        check_gradients(block, random_tensor<double, 2>({3, 5}, rng), rng);
    }
    SECTION("two blocks in a Sequential")
    {
        xcnn::Sequential net{make_identity_block<double>(), xcnn::ReLU<double>{},
                             xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<double>(3, 2, 3, 2, 1), xcnn::ReLU<double>{},
                                                             xcnn::Conv2D<double>(2, 2, 3, 1, 1)},
                                            xcnn::Conv2D<double>(3, 2, 1, 2))};
        check_gradients(net, random_tensor<double, 4>({2, 3, 5, 4}, rng), rng);
    }
}

TEST_CASE("Residual matches PyTorch in double: a ResNet-style network's output, input gradient and every parameter "
          "gradient",
          "[residual][pytorch]")
{
    // tests/fixtures/torch_residual.py: the same network in torch 1.13, float64; its state_dict
    // keys are the names xcnn gives, so import_npy (which requires every name) loads it.
    auto net = make_torch_net();
    xcnn::import_npy(net, fixture + "/state_dict");
    const xt::xtensor<double, 4> x = fixture_array("input");
    const xt::xtensor<double, 2> r = fixture_array("upstream");
    const xt::xtensor<double, 2> y_torch = fixture_array("output");
    const xt::xtensor<double, 4> dx_torch = fixture_array("input_grad");

    const xt::xtensor<double, 2> y = net.forward(x);
    REQUIRE(as_vector(y.shape()) == as_vector(y_torch.shape()));
    const double y_error = xcnn_test::relative_error(y.data(), y_torch.data(), y.size());
    const xt::xtensor<double, 4> dx = net.backward(r);
    REQUIRE(as_vector(dx.shape()) == as_vector(dx_torch.shape()));
    const double dx_error = xcnn_test::relative_error(dx.data(), dx_torch.data(), dx.size());
    INFO("relative error: output " << y_error << ", input gradient " << dx_error);
    CHECK(y_error < 1e-9);
    CHECK(dx_error < 1e-9);
    double worst = 0;
    const auto parameters = net.parameters();
    REQUIRE(parameters.size() == 14);
    for (const auto& p : parameters)
    {
        CAPTURE(p.name());
        const xt::xarray<double> expected = fixture_array("grad/" + p.name());
        REQUIRE(as_vector(expected.shape()) == p.shape());
        const double error = xcnn_test::relative_error(p.grad_data(), expected.data(), p.size());
        worst = std::max(worst, error);
        CHECK(error < 1e-9);
    }
    INFO("worst relative error of a parameter gradient " << worst);
    CHECK(worst < 1e-9);
}

TEST_CASE("Residual names its parameters and buffers main.<name> and shortcut.<name>, like a PyTorch module's "
          "attributes",
          "[residual]")
{
    auto net = make_torch_net();
    const auto parameters = net.parameters();
    CHECK(names_of(parameters) ==
          std::vector<std::string>{"0.weight", "0.bias", "2.main.0.weight", "2.main.0.bias", "2.main.2.weight",
                                   "2.main.2.bias", "4.main.0.weight", "4.main.0.bias", "4.main.2.weight",
                                   "4.main.2.bias", "4.shortcut.weight", "4.shortcut.bias", "7.weight", "7.bias"});
    // Each handle names the layer it belongs to, for optimizer and file messages.
    CHECK(parameters[2].layer() == "Conv2D(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");
    CHECK(parameters[10].layer() == "Conv2D(4, 8, kernel_size=(1, 1), stride=(2, 2), padding=(0, 0))");
    CHECK(net.get<4>().parameters()[4].name() == "shortcut.weight");
    CHECK(net.num_parameters() ==
          112 + 2 * (4 * 4 * 9 + 4) + (8 * 4 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 4 + 8) + (160 * 3 + 3));
    CHECK(net.get<4>().num_parameters() == (8 * 4 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 4 + 8));

    auto buffered = make_net_with_buffers<float>();
    CHECK(names_of(buffered.buffers()) ==
          std::vector<std::string>{"1.main.1.running_mean_abs", "3.shortcut.1.running_mean_abs"});
    CHECK(names_of(buffered.get<3>().buffers()) == std::vector<std::string>{"shortcut.1.running_mean_abs"});
    CHECK(buffered.buffers()[0].layer() == "ChannelScale(4, momentum=0.1)");
    CHECK(names_of(buffered.parameters()) ==
          std::vector<std::string>{"0.weight", "0.bias", "1.main.0.weight", "1.main.0.bias", "1.main.1.weight",
                                   "1.main.3.weight", "1.main.3.bias", "3.main.0.weight", "3.main.0.bias",
                                   "3.main.2.weight", "3.main.2.bias", "3.shortcut.0.weight", "3.shortcut.0.bias",
                                   "3.shortcut.1.weight", "6.weight", "6.bias"});
}

TEST_CASE("Residual's name and summary show both branches, reset_parameters draws main, then shortcut", "[residual]")
{
    auto net = make_torch_net();
    CHECK(net.get<2>().name() == "Residual(main=Sequential(Conv2D(4, 4, kernel_size=(3, 3), stride=(1, 1), "
                                 "padding=(1, 1)), ReLU(), Conv2D(4, 4, kernel_size=(3, 3), stride=(1, 1), "
                                 "padding=(1, 1))))");
    const std::string summary = net.summary({2, 3, 9, 7});
    CHECK_THAT(summary, contains("Residual(main=Sequential(Conv2D(4, 8, kernel_size=(3, 3), stride=(2, 2)"));
    CHECK_THAT(summary, contains("shortcut=Conv2D(4, 8, kernel_size=(1, 1), stride=(2, 2), padding=(0, 0)))"));
    CHECK_THAT(summary, contains("(2, 8, 5, 4)"));
    CHECK_THAT(summary, contains(std::to_string(net.get<4>().num_parameters())));

    auto& block = net.get<4>();
    auto main = block.main();
    auto shortcut = block.shortcut();
    std::mt19937 rng_block(9), rng_hand(9);
    block.reset_parameters(rng_block);
    main.reset_parameters(rng_hand);
    shortcut.reset_parameters(rng_hand);
    CHECK(rng_block == rng_hand);
    CHECK(identical(block.main().get<0>().weight(), main.get<0>().weight()));
    CHECK(identical(block.main().get<2>().bias(), main.get<2>().bias()));
    CHECK(identical(block.shortcut().weight(), shortcut.weight()));
    // The whole network draws its layers in order, the blocks' branches included.
    std::mt19937 rng_net(10), rng_layers(10);
    net.reset_parameters(rng_net);
    auto first = net.get<0>();
    auto identity_main = net.get<2>().main();
    first.reset_parameters(rng_layers);
    identity_main.reset_parameters(rng_layers);
    CHECK(identical(net.get<2>().main().get<2>().weight(), identity_main.get<2>().weight()));
}

TEST_CASE("Residual reports shape errors naming the block, the branch and the shapes", "[residual][errors]")
{
    SECTION("identity form: main changes the shape")
    {
        xcnn::Residual block(xcnn::Sequential{xcnn::Conv2D<float>(4, 8, 3, 1, 1)});
        const std::vector<std::string> parts{"Residual(main=Sequential(Conv2D(4, 8", "main gives (2, 8, 5, 6)",
                                             "for an input (2, 4, 5, 6)", "must keep the shape"};
        require_error<xcnn::shape_error>([&] { (void)block.output_shape({2, 4, 5, 6}); }, parts);
        require_error<xcnn::shape_error>(
            [&] {
                (void)block.forward(xt::xtensor<float, 4>::from_shape({2, 4, 5, 6}));
            },
            parts);
    }
    SECTION("projection form: main and shortcut give different shapes")
    {
        // The shortcut forgot the stride: (2, 4, 6, 6) against main's (2, 4, 3, 3).
        xcnn::Residual block(xcnn::Sequential{xcnn::Conv2D<float>(2, 4, 3, 2, 1)}, xcnn::Conv2D<float>(2, 4, 1));
        const std::vector<std::string> parts{"Residual(main=",
                                             "shortcut=Conv2D(2, 4, kernel_size=(1, 1)",
                                             "for an input (2, 2, 6, 6)",
                                             "main gives (2, 4, 3, 3)",
                                             "shortcut gives (2, 4, 6, 6)",
                                             "must have the same shape"};
        require_error<xcnn::shape_error>([&] { (void)block.output_shape({2, 2, 6, 6}); }, parts);
        require_error<xcnn::shape_error>(
            [&] {
                (void)block.predict(xt::xtensor<float, 4>::from_shape({2, 2, 6, 6}));
            },
            parts);
        // An empty batch is checked like any other.
        require_error<xcnn::shape_error>(
            [&] {
                (void)block.output_shape({0, 2, 6, 6});
            },
            {"main gives (0, 4, 3, 3)", "shortcut gives (0, 4, 6, 6)"});
    }
    SECTION("a branch that cannot take the input: its error, prefixed by the branch, at every level")
    {
        auto block = make_projection_block<float>();
        require_error<xcnn::shape_error>(
            [&] {
                (void)block.output_shape({2, 3, 6, 6});
            },
            {"Residual main: Sequential layer 0: Conv2D(2, 4", "(2, 3, 6, 6)"});
        xcnn::Residual shortcut_first(xcnn::Sequential{xcnn::ReLU<float>{}, xcnn::Conv2D<float>(3, 3, 3, 1, 1)},
                                      xcnn::Conv2D<float>(2, 3, 1));
        require_error<xcnn::shape_error>(
            [&] {
                (void)shortcut_first.output_shape({2, 3, 6, 6});
            },
            {"Residual shortcut: Conv2D(2, 3", "(2, 3, 6, 6)"});
        xcnn::Sequential net{xcnn::Conv2D<float>(1, 3, 3), make_projection_block<float>()};
        require_error<xcnn::shape_error>(
            [&] {
                (void)net.forward(xt::xtensor<float, 4>::from_shape({1, 1, 6, 6}));
            },
            {"Sequential layer 1: Residual main: Sequential layer 0: Conv2D(2, 4", "got input (1, 3, 4, 4)"});
    }
    SECTION("a failed forward leaves the last one's caches; a branch that throws mid-way blocks backward")
    {
        auto block = make_projection_block<double>();
        std::mt19937 rng(5);
        const auto x = random_tensor<double, 4>({2, 2, 6, 6}, rng);
        const auto dy = random_tensor<double, 4>({2, 4, 3, 3}, rng);
        (void)block.forward(x);
        const xt::xtensor<double, 4> dx = block.backward(dy);
        // Checked before any branch runs: the caches are those of the forward before.
        CHECK_THROWS_AS(block.forward(xt::xtensor<double, 4>::from_shape({2, 3, 6, 6})), xcnn::shape_error);
        CHECK(identical(block.backward(dy), dx));

        // The shortcut's weight replaced by one of another shape: main has run when the shortcut
        // refuses, so the block refuses backward until a forward succeeds.
        block.shortcut().get<0>().weight() = xt::zeros<double>({4, 2, 3, 3});
        require_error<xcnn::shape_error>([&] { (void)block.forward(x); },
                                         {"Residual shortcut: Sequential layer 0: Conv2D(2, 4", "(4, 2, 3, 3)"});
        require_error<xcnn::error>([&] { (void)block.backward(dy); }, {"Residual(main=", "forward that succeeded"});
        require_error<xcnn::error>([&] { block.backward_parameters(dy); }, {"forward that succeeded"});
        block.shortcut().get<0>().weight() = xt::zeros<double>({4, 2, 1, 1});
        (void)block.forward(x);
        CHECK_NOTHROW(block.backward(dy));
    }
    SECTION("backward before forward and after predict")
    {
        auto block = make_identity_block<float>();
        const xt::xtensor<float, 4> dy = xt::zeros<float>({1, 3, 4, 4});
        require_error<xcnn::error>([&] { (void)block.backward(dy); }, {"Residual(main=", "forward"});
        (void)block.predict(dy);
        require_error<xcnn::error>([&] { (void)block.backward(dy); }, {"Residual(main=", "forward (not predict)"});
    }
}

TEST_CASE("A Sequential with Residual blocks round-trips through model files, .npy files and checkpoints",
          "[residual][io]")
{
    xcnn_test::temp_dir dir;
    const batch data = make_batch(6);
    auto net = make_net_with_buffers<float>();
    net.reset_parameters(11u);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.05f, 0.9f);
    auto step = [&](auto& network, auto& optimizer)
    {
        (void)loss.forward(network.forward(data.x), data.labels);
        network.backward(loss.backward());
        optimizer.step();
    };
    step(net, sgd);
    step(net, sgd);
    const auto trained = state_of(net);
    const xt::xtensor<float, 2> logits = net.predict(data.x);
    // Training moved the buffers of both blocks away from their reset values.
    for (const auto& b : net.buffers())
    {
        CAPTURE(b.name());
        CHECK(xt::amax(b.value())() > 0.0f);
    }

    SECTION("xcnn::save / xcnn::load")
    {
        xcnn::save(net, dir / "net.xcnn");
        auto loaded = make_net_with_buffers<float>();
        CHECK(state_of(loaded) != trained);
        xcnn::load(loaded, dir / "net.xcnn");
        CHECK(state_of(loaded) == trained);
        CHECK(identical(loaded.predict(data.x), logits));
    }
    SECTION("export_npy / import_npy, one file per state_dict key")
    {
        const std::string npy = dir / "npy";
        xcnn::export_npy(net, npy);
        for (const char* key : {"1.main.0.weight", "1.main.1.running_mean_abs", "3.main.2.bias", "3.shortcut.0.weight",
                                "3.shortcut.1.weight", "3.shortcut.1.running_mean_abs"})
        {
            CAPTURE(key);
            CHECK(std::filesystem::is_regular_file(npy + "/" + key + ".npy"));
        }
        auto imported = make_net_with_buffers<float>();
        xcnn::import_npy(imported, npy);
        CHECK(state_of(imported) == trained);
        CHECK(identical(imported.predict(data.x), logits));
    }
    SECTION("save_checkpoint / load_checkpoint: training resumes bit for bit, momentum included")
    {
        xcnn::save_checkpoint(dir / "net.ckpt", net, sgd, xcnn::training_progress{});
        auto resumed = make_net_with_buffers<float>();
        xcnn::SGD<float> resumed_sgd(resumed.parameters(), 0.05f, 0.9f);
        (void)xcnn::load_checkpoint(dir / "net.ckpt", resumed, resumed_sgd);
        CHECK(state_of(resumed) == trained);
        step(net, sgd);
        step(resumed, resumed_sgd);
        CHECK(state_of(resumed) == state_of(net));
        CHECK(state_of(net) != trained);
    }
}

TEST_CASE("A Sequential with two Residual blocks trains with SGD", "[residual][training]")
{
    // Two classes: whether the left or the right half of a (1, 8, 8) image is brighter.
    std::mt19937 rng(12);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    const std::size_t n = 64;
    xt::xtensor<float, 4> x = xt::zeros<float>({n, std::size_t(1), std::size_t(8), std::size_t(8)});
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({n});
    for (std::size_t i = 0; i < n; ++i)
    {
        labels(i) = static_cast<std::int64_t>(i % 2);
        for (std::size_t r = 0; r < 8; ++r)
        {
            for (std::size_t c = 0; c < 8; ++c)
            {
                x(i, 0, r, c) = 0.5f * noise(rng) + ((c < 4) == (i % 2 == 0) ? 0.5f : 0.0f);
            }
        }
    }
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 4, 3, 1, 1),
                         xcnn::ReLU<float>{},
                         xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<float>(4, 4, 3, 1, 1), xcnn::ReLU<float>{},
                                                         xcnn::Conv2D<float>(4, 4, 3, 1, 1)}),
                         xcnn::ReLU<float>{},
                         xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<float>(4, 8, 3, 2, 1), xcnn::ReLU<float>{},
                                                         xcnn::Conv2D<float>(8, 8, 3, 1, 1)},
                                        xcnn::Conv2D<float>(4, 8, 1, 2)),
                         xcnn::ReLU<float>{},
                         xcnn::Flatten<float>{},
                         xcnn::Dense<float>(8 * 4 * 4, 2)};
    net.reset_parameters(13u);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.02f, 0.9f);
    const auto before = state_of(net);
    const float initial = loss.forward(net.predict(x), labels);
    for (int step = 0; step < 40; ++step)
    {
        (void)loss.forward(net.forward(x), labels);
        net.backward_parameters(loss.backward());
        sgd.step();
    }
    const xt::xtensor<float, 2> logits = net.predict(x);
    const float final = loss.forward(logits, labels);
    INFO("loss " << initial << " -> " << final << ", accuracy " << xcnn::accuracy(logits, labels));
    REQUIRE(std::isfinite(final));
    CHECK(final < 0.25f * initial);
    CHECK(xcnn::accuracy(logits, labels) > 0.95);
    // Every parameter of both blocks was trained (none is cut off from the gradient).
    const auto after = net.parameters();
    std::size_t offset = 0;
    for (const auto& p : after)
    {
        CAPTURE(p.name());
        CHECK(!std::equal(p.data(), p.data() + p.size(), before.begin() + static_cast<std::ptrdiff_t>(offset)));
        offset += p.size();
    }
}

TEST_CASE("The ResNet example of docs/getting-started.md compiles and runs", "[residual][docs]")
{
    // Copied from docs/getting-started.md ("Residual blocks").
    // ResNet's basic block without BatchNorm: two 3x3 convolutions, added to the input...
    auto same_shape = [](std::size_t channels)
    {
        return xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<float>(channels, channels, 3, 1, 1), xcnn::ReLU<float>{},
                                               xcnn::Conv2D<float>(channels, channels, 3, 1, 1)});
    };
    // ... or, where it changes the shape, to a 1x1 convolution of the input (the projection).
    auto downsample = [](std::size_t in, std::size_t out)
    {
        return xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<float>(in, out, 3, 2, 1), xcnn::ReLU<float>{},
                                               xcnn::Conv2D<float>(out, out, 3, 1, 1)},
                              xcnn::Conv2D<float>(in, out, 1, 2));
    };
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 16, 3, 1, 1),
                         xcnn::ReLU<float>{}, // (N, 16, 28, 28)
                         same_shape(16),
                         xcnn::ReLU<float>{}, // (N, 16, 28, 28)
                         downsample(16, 32),
                         xcnn::ReLU<float>{}, // (N, 32, 14, 14)
                         xcnn::MaxPool2D<float>(2),
                         xcnn::Flatten<float>{},
                         xcnn::Dense<float>(32 * 7 * 7, 10)};
    net.reset_parameters(42u);
    CHECK(net.output_shape({64, 1, 28, 28}) == std::vector<std::size_t>{64, 10});
    CHECK(names_of(net.parameters())[6] == "4.main.0.weight");
    CHECK(names_of(net.parameters())[10] == "4.shortcut.weight");
    const xt::xtensor<float, 4> x = xt::zeros<float>({2, 1, 28, 28});
    CHECK(as_vector(net.forward(x).shape()) == std::vector<std::size_t>{2, 10});
}
