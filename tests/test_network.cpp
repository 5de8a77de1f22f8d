// Tests of xcnn::Network (network/network.hpp): a network built at run time gives, bit for bit,
// what the same layers in a Sequential give (forward, predict, backward, backward_parameters,
// training); finite-difference gradients through Residual blocks of Networks; names of
// parameters, buffers and generators; model files, .npy files and checkpoints shared with the
// Sequential; copies; the rank checks of push_back and the errors of a run. test_layers and
// test_allocations cover it through the zoo entries "network" and "residual_of_networks".
#include "catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include "models.hpp"
#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"
#include "support/require_error.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace
{

using xcnn_test::identical;
using xcnn_test::names_of;
using xcnn_test::random_tensor;
using xcnn_test::require_error;
using xcnn_test::weighted_sum;

/// Every value and gradient of every parameter, and every buffer value, of `net`.
template <class Net>
std::vector<typename Net::value_type> state_of(Net& net)
{
    std::vector<typename Net::value_type> out;
    for (const auto& p : net.parameters())
    {
        out.insert(out.end(), p.data(), p.data() + p.size());
        out.insert(out.end(), p.grad_data(), p.grad_data() + p.size());
    }
    for (const auto& b : net.buffers())
    {
        out.insert(out.end(), b.data(), b.data() + b.size());
    }
    return out;
}

/// A network with every kind of step: Conv2D + ReLU fused, a Residual of Networks with BatchNorm,
/// a plain layer, Flatten into Dense, Dense + Tanh fused, Dropout.
template <class T>
auto make_mixed(double dropout = 0.25)
{
    using branch = xcnn::Network<T, 4, 4>;
    return xcnn::Sequential{
        xcnn::Conv2D<T>(2, 4, 3, 1, 1),
        xcnn::ReLU<T>{},
        xcnn::Residual(branch(xcnn::Conv2D<T>(xcnn::Conv2DOptions(4, 6, 3).stride(2).padding(1).bias(false)),
                              xcnn::BatchNorm2D<T>(6), xcnn::ReLU<T>{}, xcnn::Conv2D<T>(6, 6, 3, 1, 1)),
                       branch(xcnn::Conv2D<T>(4, 6, 1, 2))),
        xcnn::LeakyReLU<T>(xcnn::leaky_relu_op<T>(T(0.2))),
        xcnn::MaxPool2D<T>(2),
        xcnn::Flatten<T>{},
        xcnn::Dense<T>(6 * 2 * 2, 8),
        xcnn::Tanh<T>{},
        xcnn::Dropout<T>(dropout),
        xcnn::Dense<T>(8, 3)};
}

/// Runs `forward`, `backward`, `backward_parameters` and `predict` of `a` (a Sequential) and `b`
/// (a Network built from the same layers) on the same data, requiring identical results.
template <class A, class B>
void require_same_passes(A& a, B& b, const xt::xtensor<double, 4>& x, std::mt19937& rng)
{
    for (int step = 0; step < 2; ++step)
    {
        const xt::xtensor<double, 2> ya = a.forward(x);
        const xt::xtensor<double, 2> yb = b.forward(x);
        REQUIRE(identical(ya, yb));
        const auto dy = random_tensor<double, 2>({ya.shape()[0], ya.shape()[1]}, rng);
        const xt::xtensor<double, 4> dxa = a.backward(dy);
        const xt::xtensor<double, 4> dxb = b.backward(dy);
        REQUIRE(identical(dxa, dxb));
        REQUIRE(state_of(a) == state_of(b));
        (void)a.forward(x);
        (void)b.forward(x);
        a.backward_parameters(dy);
        b.backward_parameters(dy);
        REQUIRE(state_of(a) == state_of(b));
        REQUIRE(identical(a.predict(x), b.predict(x)));
    }
}

} // namespace

TEST_CASE("A Network of a Sequential's layers gives the Sequential's results bit for bit", "[network]")
{
    std::mt19937 rng(11);
    SECTION("LeNet")
    {
        auto sequential = mnist_models::make_lenet<double>();
        sequential.reset_parameters(5u);
        xcnn::Network<double> network(mnist_models::make_lenet<double>());
        network.reset_parameters(5u);
        REQUIRE(network.size() == 12);
        require_same_passes(sequential, network, random_tensor<double, 4>({3, 1, 28, 28}, rng), rng);
    }
    SECTION("every kind of step, Residual blocks of Networks, BatchNorm and Dropout")
    {
        auto sequential = make_mixed<double>();
        sequential.reset_parameters(6u);
        xcnn::Network<double> network(make_mixed<double>());
        network.reset_parameters(6u);
        require_same_passes(sequential, network, random_tensor<double, 4>({3, 2, 9, 8}, rng), rng);
    }
    SECTION("push_back, one layer at a time")
    {
        auto sequential = mnist_models::make_resnet<double>();
        sequential.reset_parameters(7u);
        xcnn::Network<double> network;
        auto source = mnist_models::make_resnet<double>();
        source.for_each_layer([&](std::size_t, const auto& layer) { network.push_back(layer); });
        network.reset_parameters(7u);
        require_same_passes(sequential, network, random_tensor<double, 4>({2, 1, 12, 12}, rng), rng);
    }
}

TEST_CASE("A Network trains with SGD exactly as the Sequential it was built from", "[network][training]")
{
    auto sequential = mnist_models::make_resnet<float>();
    sequential.reset_parameters(3u);
    xcnn::Network<float> network(mnist_models::make_resnet<float>());
    network.reset_parameters(3u);
    std::mt19937 rng(2);
    const auto x = random_tensor<float, 4>({4, 1, 10, 10}, rng);
    const xt::xtensor<std::int64_t, 1> labels{1, 7, 3, 3};
    xcnn::SoftmaxCrossEntropy<float> loss_a, loss_b;
    xcnn::SGD<float> sgd_a(sequential.parameters(), 0.05f, 0.9f);
    xcnn::SGD<float> sgd_b(network.parameters(), 0.05f, 0.9f);
    float first = 0, last = 0;
    for (int step = 0; step < 5; ++step)
    {
        const float la = loss_a.forward(sequential.forward(x), labels);
        const float lb = loss_b.forward(network.forward(x), labels);
        REQUIRE(la == lb);
        sequential.backward_parameters(loss_a.backward());
        network.backward_parameters(loss_b.backward());
        sgd_a.step();
        sgd_b.step();
        first = step == 0 ? la : first;
        last = la;
    }
    CHECK(last < first);
    REQUIRE(state_of(sequential) == state_of(network));
}

TEST_CASE("A Network's gradients match finite differences", "[network][gradcheck]")
{
    std::mt19937 rng(4);
    xcnn::Network<double> net(make_mixed<double>(0.0)); // a mask redrawn per call has no derivative
    const auto x = random_tensor<double, 4>({2, 2, 9, 8}, rng);
    const auto r = random_tensor<double, 2>({2, 3}, rng);
    // BatchNorm normalises with batch statistics in forward and running ones in predict: the
    // loss is the training-mode output.
    const std::function<double()> loss = [&]
    {
        return weighted_sum(net.forward(x), r);
    };
    (void)net.forward(x);
    const xt::xtensor<double, 4> dx = net.backward(r);
    auto parameters = net.parameters();
    std::vector<std::vector<double>> analytic;
    for (const auto& p : parameters)
    {
        analytic.emplace_back(p.grad_data(), p.grad_data() + p.size());
    }
    xt::xtensor<double, 4> probe = x;
    const std::function<double()> loss_of_x = [&]
    {
        return weighted_sum(net.forward(probe), r);
    };
    const auto numeric_dx = xcnn_test::numeric_gradient(loss_of_x, probe.data(), probe.size());
    CHECK(xcnn_test::relative_error(numeric_dx, dx.data(), dx.size()) < 1e-6);
    for (std::size_t i = 0; i < parameters.size(); ++i)
    {
        CAPTURE(parameters[i].name());
        REQUIRE(std::any_of(analytic[i].begin(), analytic[i].end(), [](double v) { return v != 0.0; }));
        const auto numeric = xcnn_test::numeric_gradient(loss, parameters[i].data(), parameters[i].size());
        CHECK(xcnn_test::relative_error(numeric, analytic[i], analytic[i].size()) < 1e-6);
    }
}

TEST_CASE("A Network names its parameters, buffers and generators as the Sequential does", "[network]")
{
    auto sequential = make_mixed<float>();
    xcnn::Network<float> network(make_mixed<float>());
    CHECK(names_of(network.parameters()) == names_of(sequential.parameters()));
    CHECK(names_of(network.buffers()) == names_of(sequential.buffers()));
    CHECK(names_of(network.generators()) == names_of(sequential.generators()));
    CHECK(names_of(network.parameters()).at(2) == "2.main.0.weight");
    CHECK(network.num_parameters() == sequential.num_parameters());
    CHECK(network.output_shape({5, 2, 9, 8}) == std::vector<std::size_t>{5, 3});
    std::string summary = network.summary({5, 2, 9, 8});
    CHECK_THAT(summary, xcnn_test::contains("Total parameters: " + std::to_string(sequential.num_parameters())));
    CHECK_THAT(summary, xcnn_test::contains("(5, 6, 5, 4)"));
    CHECK(network.name().rfind("Network(Conv2D(2, 4", 0) == 0);
    REQUIRE(network.layer<xcnn::Conv2D<float>>(0) != nullptr);
    CHECK(network.layer<xcnn::Conv2D<float>>(0)->options().out_channels() == 4);
    CHECK(network.layer<xcnn::Dense<float>>(0) == nullptr);
    require_error<xcnn::value_error>([&] { (void)network.layer<xcnn::Dense<float>>(10); },
                                     {"no layer 10", "network of 10"});
}

TEST_CASE("A Network shares model files, .npy files and checkpoints with its Sequential", "[network][io]")
{
    xcnn_test::temp_dir dir;
    auto sequential = make_mixed<double>();
    sequential.reset_parameters(9u);
    std::mt19937 rng(1);
    const auto x = random_tensor<double, 4>({2, 2, 9, 8}, rng);
    (void)sequential.forward(x); // running statistics and the dropout generator move
    xcnn::save(sequential, (dir / "model.xcnn"));
    xcnn::export_npy(sequential, (dir / "npy"));

    xcnn::Network<double> loaded(make_mixed<double>());
    xcnn::load(loaded, (dir / "model.xcnn"));
    CHECK(identical(loaded.predict(x), sequential.predict(x)));
    xcnn::Network<double> imported(make_mixed<double>());
    xcnn::import_npy(imported, (dir / "npy"));
    CHECK(identical(imported.predict(x), sequential.predict(x)));

    // And back: a Network's file loads into the Sequential.
    xcnn::save(loaded, (dir / "network.xcnn"));
    auto back = make_mixed<double>();
    xcnn::load(back, (dir / "network.xcnn"));
    CHECK(identical(back.predict(x), sequential.predict(x)));

    // A checkpoint restores the dropout generator too: the next training outputs agree.
    xcnn::SGD<double> sgd(loaded.parameters(), 0.1);
    xcnn::training_progress progress;
    xcnn::save_checkpoint((dir / "run.ckpt"), loaded, sgd, progress);
    const xt::xtensor<double, 2> next = loaded.forward(x);
    xcnn::Network<double> resumed(make_mixed<double>());
    xcnn::SGD<double> sgd2(resumed.parameters(), 0.1);
    (void)xcnn::load_checkpoint((dir / "run.ckpt"), resumed, sgd2);
    CHECK(identical(resumed.forward(x), next));
}

TEST_CASE("A copy of a Network is independent of the original", "[network]")
{
    xcnn::Network<double> a(mnist_models::make_seed_net<double>());
    a.reset_parameters(1u);
    xcnn::Network<double> b = a;
    std::mt19937 rng(3);
    const auto x = random_tensor<double, 4>({2, 1, 28, 28}, rng);
    const xt::xtensor<double, 2> before = a.predict(x);
    CHECK(identical(b.predict(x), before));
    b.reset_parameters(2u);
    CHECK(identical(a.predict(x), before));
    CHECK(!identical(b.predict(x), before));
    a = b;
    CHECK(identical(a.predict(x), b.predict(x)));
}

TEST_CASE("Network::predict of one unbatched image returns its logits without the batch axis", "[network]")
{
    xcnn::Network<float> net(mnist_models::make_lenet<float>());
    std::mt19937 rng(5);
    const auto images = random_tensor<float, 4>({2, 1, 28, 28}, rng);
    const xt::xtensor<float, 2> batch = net.predict(images);
    const xt::xtensor<float, 3> one = xt::view(images, 1);
    const auto& logits = net.predict(one);
    REQUIRE(logits.dimension() == 1);
    CHECK(std::equal(logits.begin(), logits.end(), batch.begin() + 10));
    // An expression of another type is converted: an xarray batch.
    const xt::xarray<float> as_array = images;
    CHECK(identical(net.predict(as_array), batch));
}

TEST_CASE("Network rejects layers of the wrong rank, empty or unfinished networks, and names the layer in errors",
          "[network][errors]")
{
    xcnn::Network<float> net;
    require_error<xcnn::value_error>(
        [&] {
            (void)net.predict(xt::xtensor<float, 4>::from_shape({1, 1, 4, 4}));
        },
        {"no layers"});
    require_error<xcnn::shape_error>([&] { net.push_back(xcnn::Dense<float>(16, 4)); },
                                     {"Network layer 0", "Dense(16, 4)", "rank-2", "network takes rank 4"});
    net.push_back(xcnn::Conv2D<float>(1, 2, 3));
    net.push_back(xcnn::ReLU<float>{});
    require_error<xcnn::shape_error>([&] { net.push_back(xcnn::Dense<float>(8, 4)); },
                                     {"Network layer 2", "rank 4", "needs a Flatten"});
    REQUIRE(net.size() == 2);
    const xt::xtensor<float, 4> x = xt::ones<float>({2, 1, 4, 4});
    require_error<xcnn::value_error>([&] { (void)net.forward(x); }, {"produce rank 4", "return rank 2"});
    net.push_back(xcnn::Flatten<float>{});
    net.push_back(xcnn::Dense<float>(8, 3));
    CHECK(net.forward(x).shape()[1] == 3);
    require_error<xcnn::shape_error>(
        [&] {
            (void)net.forward(xt::xtensor<float, 4>::from_shape({2, 3, 4, 4}));
        },
        {"Network layer 0: ", "Conv2D"});
    require_error<xcnn::error>(
        [&] {
            (void)net.backward(xt::xtensor<float, 2>::from_shape({2, 3}));
        },
        {"backward needs a forward"});
    (void)net.predict(x);
    require_error<xcnn::error>(
        [&] {
            (void)net.backward(xt::xtensor<float, 2>::from_shape({2, 3}));
        },
        {"backward needs a forward"});
    (void)net.forward(x);
    require_error<xcnn::shape_error>(
        [&] {
            (void)net.backward(xt::xtensor<float, 2>::from_shape({2, 4}));
        },
        {"Network layer 3: ", "(2, 4)"});
    require_error<xcnn::shape_error>([&] { (void)net.forward(xt::xarray<float>::from_shape({2, 1, 4})); }, {"rank"});
}

TEST_CASE("The Network example of docs/getting-started.md runs, with and without its BatchNorm", "[network][docs]")
{
    const bool use_batchnorm = GENERATE(false, true);
    xcnn::Network<float> net; // takes (N, C, H, W), returns (N, classes)
    net.push_back(xcnn::Conv2D<float>(1, 8, 3, 1, 1));
    if (use_batchnorm)
    {
        net.push_back(xcnn::BatchNorm2D<float>(8));
    }
    net.push_back(xcnn::ReLU<float>{});
    net.push_back(xcnn::Flatten<float>{});
    net.push_back(xcnn::Dense<float>(8 * 28 * 28, 10));
    CHECK(net.size() == (use_batchnorm ? 5u : 4u));
    CHECK(net.buffers().size() == (use_batchnorm ? 3u : 0u));
    const xt::xtensor<float, 4> x = xt::ones<float>({2, 1, 28, 28});
    CHECK(net.forward(x).shape()[1] == 10);
}

namespace
{

/// Conv - BN - ReLU (folded with its activation at inference), Conv - BN (folded), pool, Dense.
template <class T>
auto make_batchnormed()
{
    return xcnn::Sequential{xcnn::Conv2D<T>(3, 5, 3, 1, 1),
                            xcnn::BatchNorm2D<T>(5),
                            xcnn::ReLU<T>{},
                            xcnn::Conv2D<T>(xcnn::Conv2DOptions(5, 4, 3).stride(2).bias(false)),
                            xcnn::BatchNorm2D<T>(4),
                            xcnn::GELU<T>{},
                            xcnn::Conv2D<T>(xcnn::Conv2DOptions(4, 4, 1).bias(false)),
                            xcnn::BatchNorm2D<T>(4),
                            xcnn::GlobalAvgPool2D<T>{},
                            xcnn::Dense<T>(4, 3)};
}

/// Each layer's own `predict`, one after the other: what the folded steps must equal.
template <std::size_t I = 0, class Net>
xt::xarray<double> predict_layer_by_layer(Net& net, const xt::xarray<double>& v)
{
    if constexpr (I == Net::layer_count)
    {
        return v;
    }
    else
    {
        auto& layer = net.template get<I>();
        using L = std::decay_t<decltype(layer)>;
        constexpr std::size_t rank = L::input_rank == xcnn::any_rank ? 4 : static_cast<std::size_t>(L::input_rank);
        const xt::xtensor<double, rank> input = v;
        return predict_layer_by_layer<I + 1>(net, xt::xarray<double>(layer.predict(input)));
    }
}

} // namespace

TEST_CASE("predict folds each BatchNorm2D into the Conv2D before it, with the activation after it", "[network]")
{
    using kind = xcnn::detail::step_kind;
    auto sequential = make_batchnormed<double>();
    using S = decltype(sequential);
    CHECK(S::predict_plan[0] == kind::with_affine_activation);
    CHECK(S::predict_plan[1] == kind::absorbed);
    CHECK(S::predict_plan[2] == kind::absorbed);
    CHECK(S::predict_plan[3] == kind::with_affine_activation);
    CHECK(S::predict_plan[6] == kind::with_affine);
    CHECK(S::predict_plan[8] == kind::single);
    // Training: the convolution alone (BatchNorm needs the batch's statistics), BatchNorm with
    // the activation after it.
    CHECK(S::plan[0] == kind::single);
    CHECK(S::plan[1] == kind::with_activation);
    CHECK(S::plan[2] == kind::absorbed);

    sequential.reset_parameters(8u);
    std::mt19937 rng(6);
    const auto x = random_tensor<double, 4>({3, 3, 9, 7}, rng);
    for (int step = 0; step < 3; ++step) // running statistics and affine weights away from 0 and 1
    {
        (void)sequential.forward(random_tensor<double, 4>({4, 3, 9, 7}, rng));
    }
    std::uniform_real_distribution<double> gain(0.5, 1.5);
    for (auto& p : sequential.parameters())
    {
        if (p.name().find("weight") != std::string::npos && p.shape().size() == 1) // BatchNorm's
        {
            std::generate(p.data(), p.data() + p.size(), [&] { return gain(rng); });
        }
    }
    const xt::xtensor<double, 2> reference = predict_layer_by_layer(sequential, x);
    const xt::xtensor<double, 2> folded = sequential.predict(x);
    REQUIRE(folded.shape() == reference.shape());
    CHECK(xcnn_test::max_abs_diff(folded, reference) < 1e-12 * (1 + xt::amax(xt::abs(reference))()));
    xcnn::Network<double> network(sequential);
    CHECK(identical(network.predict(x), folded));
    const xt::xtensor<double, 2> trained = network.forward(x); // training mode is another function
    CHECK(xcnn_test::max_abs_diff(trained, folded) > 1e-6);
    network = xcnn::Network<double>(sequential); // forward moved the running statistics
    // The folded weights are recomputed at every call: a changed BatchNorm changes the result.
    network.layer<xcnn::BatchNorm2D<double>>(1)->running_mean() += 0.5;
    sequential.get<1>().running_mean() += 0.5;
    const xt::xtensor<double, 2> moved = predict_layer_by_layer(sequential, x);
    CHECK(xcnn_test::max_abs_diff(network.predict(x), moved) < 1e-12 * (1 + xt::amax(xt::abs(moved))()));
    CHECK(xcnn_test::max_abs_diff(moved, reference) > 1e-6);
}

TEST_CASE("predict folds BatchNorm2D into a strided 7x7 stem (the lowered form) and a depthwise convolution",
          "[network]")
{
    std::mt19937 rng(9);
    auto net = xcnn::Sequential{xcnn::Conv2D<double>(xcnn::Conv2DOptions(3, 6, 7).stride(2).padding(3).bias(false)),
                                xcnn::BatchNorm2D<double>(6),
                                xcnn::ReLU<double>{},
                                xcnn::Conv2D<double>(xcnn::Conv2DOptions(6, 6, 3).padding(1).groups(6)),
                                xcnn::BatchNorm2D<double>(6),
                                xcnn::Tanh<double>{},
                                xcnn::GlobalAvgPool2D<double>{},
                                xcnn::Dense<double>(6, 2)};
    using kind = xcnn::detail::step_kind;
    STATIC_REQUIRE(decltype(net)::predict_plan[0] == kind::with_affine_activation);
    STATIC_REQUIRE(decltype(net)::predict_plan[3] == kind::with_affine_activation);
    net.reset_parameters(2u);
    for (int step = 0; step < 2; ++step)
    {
        (void)net.forward(random_tensor<double, 4>({3, 3, 20, 18}, rng));
    }
    const auto x = random_tensor<double, 4>({2, 3, 20, 18}, rng);
    const xt::xtensor<double, 2> reference = predict_layer_by_layer(net, x);
    const double scale = 1 + xt::amax(xt::abs(reference))();
    CHECK(xcnn_test::max_abs_diff(net.predict(x), reference) < 1e-12 * scale);
    xcnn::Network<double> network(net);
    CHECK(xcnn_test::max_abs_diff(network.predict(x), reference) < 1e-12 * scale);
}
