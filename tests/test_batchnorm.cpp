// BatchNorm2D and BatchNorm1D: training and eval mode against naive loops, finite-difference
// gradients, PyTorch parity (tests/fixtures/torch_batchnorm.py), the error cases, model files and
// .npy round trips with the buffers, and a Sequential {Conv2D, BatchNorm2D, ReLU} that trains.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"
#include "support/require_error.hpp"
#include "support/shapes.hpp"
#include "support/temp_dir.hpp"

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace
{

using xcnn::BatchNorm1D;
using xcnn::BatchNorm2D;
using xcnn_test::random_tensor;
using xcnn_test::require_error;
using xcnn_test::to_shape;

const std::string fixture = std::string(XCNN_TEST_FIXTURES_DIR) + "/torch_batchnorm";

/// What the naive loops compute, in double.
struct naive_result
{
    std::vector<double> y, mean, var, dx, dweight, dbias;
};

/// Batch norm of `x` (viewed as N, C, plane) written from the definitions, one element at a time:
/// with `training`, the batch's mean and biased variance (also returned); otherwise the given
/// running statistics. The input gradient for `dy` is the chain rule spelled out through the
/// variance and the mean (a different form from the layer's).
template <class T, std::size_t N>
naive_result naive_batch_norm(const xt::xtensor<T, N>& x, const std::vector<double>& weight,
                              const std::vector<double>& bias, double eps, bool training,
                              const std::vector<double>& running_mean, const std::vector<double>& running_var,
                              const xt::xtensor<T, N>* dy = nullptr)
{
    const std::size_t n = x.shape()[0], c_count = x.shape()[1],
                      plane = x.size() / std::max<std::size_t>(n * c_count, 1);
    const double m = static_cast<double>(n * plane);
    naive_result r;
    r.y.assign(x.size(), 0.0);
    r.dx.assign(x.size(), 0.0);
    auto at = [&](std::size_t b, std::size_t c, std::size_t i)
    {
        return (b * c_count + c) * plane + i;
    };
    for (std::size_t c = 0; c < c_count; ++c)
    {
        double mean = running_mean[c], var = running_var[c];
        if (training)
        {
            mean = 0;
            for (std::size_t b = 0; b < n; ++b)
                for (std::size_t i = 0; i < plane; ++i)
                    mean += static_cast<double>(x.data()[at(b, c, i)]);
            mean /= m;
            var = 0;
            for (std::size_t b = 0; b < n; ++b)
                for (std::size_t i = 0; i < plane; ++i)
                    var += std::pow(static_cast<double>(x.data()[at(b, c, i)]) - mean, 2);
            var /= m;
        }
        r.mean.push_back(mean);
        r.var.push_back(var);
        const double invstd = 1.0 / std::sqrt(var + eps);
        for (std::size_t b = 0; b < n; ++b)
            for (std::size_t i = 0; i < plane; ++i)
            {
                const std::size_t k = at(b, c, i);
                r.y[k] = (static_cast<double>(x.data()[k]) - mean) * invstd * weight[c] + bias[c];
            }
        if (dy == nullptr)
        {
            continue;
        }
        double dweight = 0, dbias = 0, dvar = 0, dmean = 0, centred = 0;
        for (std::size_t b = 0; b < n; ++b)
            for (std::size_t i = 0; i < plane; ++i)
            {
                const std::size_t k = at(b, c, i);
                const double g = static_cast<double>(dy->data()[k]), d = static_cast<double>(x.data()[k]) - mean;
                dbias += g;
                dweight += g * d * invstd;
                dvar += g * weight[c] * d * -0.5 * std::pow(var + eps, -1.5);
                dmean += -g * weight[c] * invstd;
                centred += -2.0 * d;
            }
        dmean += dvar * centred / m;
        r.dweight.push_back(dweight);
        r.dbias.push_back(dbias);
        for (std::size_t b = 0; b < n; ++b)
            for (std::size_t i = 0; i < plane; ++i)
            {
                const std::size_t k = at(b, c, i);
                const double d = static_cast<double>(x.data()[k]) - mean;
                r.dx[k] = static_cast<double>(dy->data()[k]) * weight[c] * invstd + dvar * 2.0 * d / m + dmean / m;
            }
    }
    return r;
}

/// max |a - b| / max(max |b|, 1): the worst error relative to the values' scale.
template <class A>
double scaled_error(const A& a, const std::vector<double>& b)
{
    double worst = 0, scale = 1;
    for (std::size_t i = 0; i < b.size(); ++i)
    {
        scale = std::max(scale, std::abs(b[i]));
    }
    for (std::size_t i = 0; i < b.size(); ++i)
    {
        const double d = std::abs(static_cast<double>(a.data()[i]) - b[i]);
        worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    }
    return worst / scale;
}

template <class Tensor>
std::vector<double> values_of(const Tensor& t)
{
    return std::vector<double>(t.data(), t.data() + t.size());
}

/// Forward, backward and predict of a layer over `shape` against the naive loops, for a few
/// steps (the running statistics accumulate).
template <class T, std::size_t N>
void check_against_naive(const std::array<std::size_t, N>& shape, double tolerance)
{
    CAPTURE(xcnn_test::str(to_shape(shape)));
    std::mt19937 rng(11);
    const std::size_t channels = shape[1];
    xcnn::batch_norm<T, N> layer(channels, T(1e-3), T(0.3));
    layer.weight() = random_tensor<T, 1>({channels}, rng, 0.5, 2.0);
    layer.bias() = random_tensor<T, 1>({channels}, rng);
    const auto weight = values_of(layer.weight()), bias = values_of(layer.bias());
    std::vector<double> running_mean(channels, 0.0), running_var(channels, 1.0);
    for (int step = 0; step < 3; ++step)
    {
        CAPTURE(step);
        // Offset and scaled: the mean is not 0, the variance not 1.
        xt::xtensor<T, N> x = random_tensor<T, N>(shape, rng);
        x = x * T(1 + step) + T(0.5 * step);
        const auto dy = random_tensor<T, N>(shape, rng);
        const auto expected = naive_batch_norm(x, weight, bias, 1e-3, true, running_mean, running_var, &dy);
        const xt::xtensor<T, N> y = layer.forward(x);
        CHECK(scaled_error(y, expected.y) < tolerance);
        const xt::xtensor<T, N> dx = layer.backward(dy);
        CHECK(scaled_error(dx, expected.dx) < tolerance);
        CHECK(scaled_error(layer.weight_grad(), expected.dweight) < tolerance);
        CHECK(scaled_error(layer.bias_grad(), expected.dbias) < tolerance);
        const double m = static_cast<double>(x.size() / channels);
        for (std::size_t c = 0; c < channels; ++c)
        {
            running_mean[c] = 0.7 * running_mean[c] + 0.3 * expected.mean[c];
            running_var[c] = 0.7 * running_var[c] + 0.3 * expected.var[c] * m / (m - 1);
        }
        CHECK(scaled_error(layer.running_mean(), running_mean) < tolerance);
        CHECK(scaled_error(layer.running_var(), running_var) < tolerance);
        CHECK(layer.num_batches_tracked()() == T(2 * step + 1)); // two forwards a step

        // backward_parameters gives the same parameter gradients.
        (void)layer.forward(x);
        layer.backward_parameters(dy);
        CHECK(scaled_error(layer.weight_grad(), expected.dweight) < tolerance);
        CHECK(scaled_error(layer.bias_grad(), expected.dbias) < tolerance);
        for (std::size_t c = 0; c < channels; ++c) // the repeated forward moved the statistics again
        {
            running_mean[c] = 0.7 * running_mean[c] + 0.3 * expected.mean[c];
            running_var[c] = 0.7 * running_var[c] + 0.3 * expected.var[c] * m / (m - 1);
        }
    }
    const auto x = random_tensor<T, N>(shape, rng);
    const auto expected = naive_batch_norm(x, weight, bias, 1e-3, false, running_mean, running_var);
    const auto buffers_before = values_of(layer.running_mean());
    CHECK(scaled_error(layer.predict(x), expected.y) < tolerance);
    CHECK(values_of(layer.running_mean()) == buffers_before);
    CHECK(layer.num_batches_tracked()() == T(6));
}

TEST_CASE("BatchNorm2D and BatchNorm1D match naive loops in training and eval mode", "[batchnorm][naive]")
{
    // Planes shorter than, equal to and longer than a vector, with and without a tail.
    check_against_naive<double, 4>({2, 3, 5, 7}, 1e-12);
    check_against_naive<double, 4>({3, 4, 1, 1}, 1e-12);
    check_against_naive<double, 4>({2, 2, 4, 4}, 1e-12);
    check_against_naive<double, 4>({4, 5, 17, 19}, 1e-12);
    check_against_naive<double, 2>({6, 5}, 1e-12);
    check_against_naive<double, 2>({2, 37}, 1e-12);
    check_against_naive<float, 4>({2, 3, 5, 7}, 2e-5);
    check_against_naive<float, 4>({8, 3, 28, 28}, 2e-5);
    check_against_naive<float, 2>({7, 33}, 2e-5);
}

TEST_CASE("BatchNorm: hand-computed values", "[batchnorm]")
{
    BatchNorm1D<double> layer(1, 0.0, 0.5);
    xt::xtensor<double, 2> x = {{1.0}, {3.0}}; // mean 2, biased variance 1, unbiased 2
    const xt::xtensor<double, 2> y = layer.forward(x);
    CHECK(y(0, 0) == -1.0);
    CHECK(y(1, 0) == 1.0);
    CHECK(layer.running_mean()(0) == 1.0); // 0.5 * 0 + 0.5 * 2
    CHECK(layer.running_var()(0) == 1.5);  // 0.5 * 1 + 0.5 * 2
    CHECK(layer.num_batches_tracked()() == 1.0);
    // dy = (1, 0): mean(dy) = 0.5, mean(dy * xhat) = -0.5, dx = dy - 0.5 - xhat * (-0.5).
    const xt::xtensor<double, 2> dx = layer.backward(xt::xtensor<double, 2>{{1.0}, {0.0}});
    CHECK(dx(0, 0) == 0.0);
    CHECK(dx(1, 0) == 0.0);
    CHECK(layer.bias_grad()(0) == 1.0);
    CHECK(layer.weight_grad()(0) == -1.0);
    CHECK(layer.predict(x)(1, 0) == Catch::Approx((3.0 - 1.0) / std::sqrt(1.5)).epsilon(1e-15));
}

TEST_CASE("BatchNorm: defaults, name and state_dict names are PyTorch's", "[batchnorm]")
{
    BatchNorm2D<float> bn(4);
    CHECK(bn.name() == "BatchNorm2D(4, eps=1e-05, momentum=0.1)");
    CHECK(BatchNorm1D<double>(7, 1e-3, 0.01).name() == "BatchNorm1D(7, eps=0.001, momentum=0.01)");
    CHECK(bn.num_features() == 4);
    CHECK(bn.eps() == 1e-5f);
    CHECK(bn.momentum() == 0.1f);
    CHECK(bn.num_parameters() == 8);
    CHECK(values_of(bn.weight()) == std::vector<double>(4, 1.0));
    CHECK(values_of(bn.bias()) == std::vector<double>(4, 0.0));
    CHECK(values_of(bn.running_mean()) == std::vector<double>(4, 0.0));
    CHECK(values_of(bn.running_var()) == std::vector<double>(4, 1.0));
    CHECK(bn.num_batches_tracked()() == 0.0f);
    const auto params = bn.parameters();
    REQUIRE(params.size() == 2);
    CHECK(params[0].name() == "weight");
    CHECK(params[1].name() == "bias");
    const auto buffers = bn.buffers();
    REQUIRE(buffers.size() == 3);
    CHECK(buffers[0].name() == "running_mean");
    CHECK(buffers[1].name() == "running_var");
    CHECK(buffers[2].name() == "num_batches_tracked");
    CHECK(buffers[2].shape().empty()); // a scalar, as PyTorch's
    CHECK(buffers[2].size() == 1);

    // reset_parameters restores all of it, as PyTorch's does.
    std::mt19937 rng(1);
    (void)bn.forward(random_tensor<float, 4>({2, 4, 3, 3}, rng));
    bn.weight().fill(3.0f);
    bn.reset_parameters(rng);
    CHECK(values_of(bn.weight()) == std::vector<double>(4, 1.0));
    CHECK(values_of(bn.running_mean()) == std::vector<double>(4, 0.0));
    CHECK(values_of(bn.running_var()) == std::vector<double>(4, 1.0));
    CHECK(bn.num_batches_tracked()() == 0.0f);
}

/// The largest relative error between the analytic training-mode gradients of `layer` for input
/// `x` (input, weight, bias) and central differences of sum(forward(x) * r).
template <std::size_t N>
void check_gradients(xcnn::batch_norm<double, N>& layer, xt::xtensor<double, N> x, std::mt19937& rng)
{
    const auto r = random_tensor<double, N>(x.shape(), rng);
    (void)layer.forward(x);
    const xt::xtensor<double, N> dx = layer.backward(r);
    const auto dweight = values_of(layer.weight_grad()), dbias = values_of(layer.bias_grad());
    // The training function: forward, whose output does not depend on the running statistics
    // it updates.
    const std::function<double()> loss = [&]
    {
        return xcnn_test::weighted_sum(layer.forward(x), r);
    };
    REQUIRE(xt::amax(xt::abs(dx))() > 1e-3);
    CHECK(xcnn_test::relative_error(xcnn_test::numeric_gradient(loss, x.data(), x.size()), dx.data(), dx.size()) <
          1e-7);
    CHECK(xcnn_test::relative_error(xcnn_test::numeric_gradient(loss, layer.weight().data(), layer.weight().size()),
                                    dweight, dweight.size()) < 1e-7);
    CHECK(xcnn_test::relative_error(xcnn_test::numeric_gradient(loss, layer.bias().data(), layer.bias().size()), dbias,
                                    dbias.size()) < 1e-7);
}

TEST_CASE("BatchNorm backward passes a finite-difference check through the batch statistics", "[batchnorm][gradcheck]")
{
    std::mt19937 rng(21);
    SECTION("BatchNorm2D (2, 3, 5, 7)")
    {
        BatchNorm2D<double> layer(3);
        layer.weight() = xt::xtensor<double, 1>{0.5, -1.5, 2.0};
        layer.bias() = xt::xtensor<double, 1>{0.1, 0.2, -0.3};
        check_gradients(layer, random_tensor<double, 4>({2, 3, 5, 7}, rng), rng);
    }
    SECTION("BatchNorm2D (3, 2, 1, 1): a channel of 3 values")
    {
        BatchNorm2D<double> layer(2, 0.1);
        layer.weight() = xt::xtensor<double, 1>{0.7, 1.3};
        check_gradients(layer, random_tensor<double, 4>({3, 2, 1, 1}, rng), rng);
    }
    SECTION("BatchNorm1D (6, 5)")
    {
        BatchNorm1D<double> layer(5);
        layer.weight() = random_tensor<double, 1>({5}, rng, 0.5, 2.0);
        check_gradients(layer, random_tensor<double, 2>({6, 5}, rng), rng);
    }
}

/// Runs the PyTorch fixture `name` through `layer`: each training step's y, dX, dweight, dbias,
/// running statistics and counter, then eval mode, all to 1e-9 of PyTorch's.
template <std::size_t N>
void check_fixture(const std::string& name, xcnn::batch_norm<double, N>& layer)
{
    const std::string dir = fixture + "/" + name;
    auto load = [&](const char* file)
    {
        return xcnn::load_npy<double>(dir + "/" + file + ".npy");
    };
    layer.weight() = load("weight");
    layer.bias() = load("bias");
    const auto x = load("x"), dy = load("dy"), y = load("y"), dx = load("dx"), dweight = load("dweight"),
               dbias = load("dbias"), running_mean = load("running_mean"), running_var = load("running_var"),
               counts = load("num_batches_tracked");
    REQUIRE(x.dimension() == N + 1);
    auto step_of = [](const xt::xarray<double>& a, std::size_t k)
    {
        return values_of(xt::xarray<double>(xt::view(a, k)));
    };
    double worst = 0;
    for (std::size_t k = 0; k < x.shape()[0]; ++k)
    {
        CAPTURE(name, k);
        const xt::xtensor<double, N> xk = xt::view(x, k);
        const xt::xtensor<double, N> dyk = xt::view(dy, k);
        const xt::xtensor<double, N> yk = layer.forward(xk);
        const xt::xtensor<double, N> dxk = layer.backward(dyk);
        for (double e : {scaled_error(yk, step_of(y, k)), scaled_error(dxk, step_of(dx, k)),
                         scaled_error(layer.weight_grad(), step_of(dweight, k)),
                         scaled_error(layer.bias_grad(), step_of(dbias, k)),
                         scaled_error(layer.running_mean(), step_of(running_mean, k)),
                         scaled_error(layer.running_var(), step_of(running_var, k))})
        {
            CHECK(e < 1e-9);
            worst = std::max(worst, e);
        }
        CHECK(layer.num_batches_tracked()() == counts(k));
    }
    const xt::xtensor<double, N> x_eval = load("x_eval");
    const double eval_error = scaled_error(layer.predict(x_eval), values_of(load("y_eval")));
    CHECK(eval_error < 1e-9);
    worst = std::max(worst, eval_error);
    CAPTURE(name, worst); // PyTorch's values are matched to ~1e-15
    CHECK(worst < 1e-9);
    REQUIRE_THROWS_AS(layer.backward(xt::xtensor<double, N>(layer.predict(x_eval))), xcnn::error);
}

TEST_CASE("BatchNorm matches PyTorch in double: training steps, running statistics, then eval", "[batchnorm][pytorch]")
{
    SECTION("BatchNorm2d(3) on (2, 3, 5, 7)")
    {
        BatchNorm2D<double> layer(3);
        check_fixture("bn2d", layer);
    }
    SECTION("BatchNorm2d(2, eps=1e-3, momentum=0.25) on (3, 2, 1, 2)")
    {
        BatchNorm2D<double> layer(2, 1e-3, 0.25);
        check_fixture("bn2d_options", layer);
    }
    SECTION("BatchNorm1d(5) on (6, 5)")
    {
        BatchNorm1D<double> layer(5);
        check_fixture("bn1d", layer);
    }
}

TEST_CASE("BatchNorm reports bad arguments and inputs, naming the layer and the shapes", "[batchnorm][errors]")
{
    require_error<xcnn::value_error>([] { BatchNorm2D<float> bn(0); }, {"BatchNorm2D(0", "num_features"});
    require_error<xcnn::value_error>([] { BatchNorm2D<float> bn(static_cast<std::size_t>(-3)); },
                                     {"BatchNorm2D(", "num_features"});
    require_error<xcnn::value_error>([] { BatchNorm1D<float> bn(3, -1e-5f); }, {"BatchNorm1D(3", "eps", "-1e-05"});
    require_error<xcnn::value_error>([] { BatchNorm1D<double> bn(3, 1e-5, 1.5); },
                                     {"BatchNorm1D(3", "momentum", "1.5"});
    require_error<xcnn::value_error>([] { BatchNorm1D<double> bn(3, NAN); }, {"BatchNorm1D(3", "eps"});

    std::mt19937 rng(31);
    BatchNorm2D<float> bn(3);
    const std::string named = "BatchNorm2D(3, eps=1e-05, momentum=0.1)";
    const auto wrong = random_tensor<float, 4>({2, 4, 5, 5}, rng);
    require_error<xcnn::shape_error>([&] { (void)bn.forward(wrong); }, {named, "(N, 3, H, W)", "(2, 4, 5, 5)"});
    require_error<xcnn::shape_error>([&] { (void)bn.predict(wrong); }, {named, "(N, 3, H, W)", "(2, 4, 5, 5)"});
    require_error<xcnn::shape_error>([&] { (void)bn.output_shape({2, 4, 5, 5}); }, {named, "(2, 4, 5, 5)"});
    require_error<xcnn::shape_error>([&] { (void)bn.output_shape({2, 3, 0, 5}); }, {named, "(2, 3, 0, 5)"});
    require_error<xcnn::shape_error>([&] { (void)bn.output_shape({2, 3, 5}); }, {named, "(2, 3, 5)"});
    BatchNorm1D<float> bn1(5);
    require_error<xcnn::shape_error>(
        [&] {
            (void)bn1.forward(random_tensor<float, 2>({4, 6}, rng));
        },
        {"BatchNorm1D(5", "(N, 5)", "(4, 6)"});

    // One value per channel: no variance in training (PyTorch's ValueError); eval mode is fine.
    const auto single = random_tensor<float, 4>({1, 3, 1, 1}, rng);
    const auto good = random_tensor<float, 4>({2, 3, 2, 2}, rng);
    const xt::xtensor<float, 4> y = bn.forward(good);
    const auto dy = random_tensor<float, 4>({2, 3, 2, 2}, rng);
    const auto mean_before = values_of(bn.running_mean());
    require_error<xcnn::value_error>([&] { (void)bn.forward(single); },
                                     {named, "expected more than 1 value per channel when training", "(1, 3, 1, 1)"});
    require_error<xcnn::value_error>(
        [&] {
            (void)bn1.forward(random_tensor<float, 2>({1, 5}, rng));
        },
        {"BatchNorm1D(5", "more than 1 value per channel", "(1, 5)"});
    // A forward that throws changes nothing: statistics, counter, the last forward's cache.
    CHECK(values_of(bn.running_mean()) == mean_before);
    CHECK(bn.num_batches_tracked()() == 1.0f);
    CHECK(to_shape(bn.backward(dy).shape()) == to_shape(good.shape()));
    CHECK_NOTHROW(bn.predict(single));
    CHECK_NOTHROW(bn1.predict(random_tensor<float, 2>({1, 5}, rng)));
    CHECK(to_shape(bn.forward(random_tensor<float, 4>({1, 3, 1, 2}, rng)).shape()) == xcnn_test::shape_t{1, 3, 1, 2});

    // backward follows the layer base: not after predict.
    (void)bn.forward(good);
    (void)bn.predict(good);
    require_error<xcnn::error>([&] { (void)bn.backward(dy); }, {named, "forward"});
    // A weight of another shape is refused by the base before any use.
    bn.weight() = xt::xtensor<float, 1>{1.0f, 2.0f};
    require_error<xcnn::shape_error>([&] { (void)bn.forward(good); }, {named, "weight", "(2,)", "(3,)"});
}

TEST_CASE("BatchNorm2D gives the same bits at 1 and 3 threads (channels shared out)", "[batchnorm][threads]")
{
    struct restore_threads
    {
        std::size_t saved = xcnn::get_num_threads();
        ~restore_threads() { xcnn::set_num_threads(saved); }
    } guard;
    std::mt19937 rng(71);
    // 16K values a channel: large enough for the channels to be split between threads.
    const auto x = random_tensor<float, 4>({16, 8, 32, 32}, rng);
    const auto dy = random_tensor<float, 4>({16, 8, 32, 32}, rng);
    auto run = [&](std::size_t threads)
    {
        xcnn::set_num_threads(threads);
        BatchNorm2D<float> bn(8);
        bn.weight() = xt::linspace<float>(0.5f, 2.0f, 8);
        std::vector<xt::xtensor<float, 4>> out;
        out.push_back(bn.forward(x));
        out.push_back(bn.backward(dy));
        out.push_back(bn.predict(x));
        out.push_back(
            xt::broadcast(bn.weight_grad(), {std::size_t(1), std::size_t(1), std::size_t(1), std::size_t(8)}));
        out.push_back(
            xt::broadcast(bn.running_var(), {std::size_t(1), std::size_t(1), std::size_t(1), std::size_t(8)}));
        return out;
    };
    const auto serial = run(1);
    const auto parallel = run(3);
    REQUIRE(serial.size() == parallel.size());
    for (std::size_t i = 0; i < serial.size(); ++i)
    {
        CAPTURE(i);
        CHECK(xcnn_test::identical(serial[i], parallel[i]));
    }
}

/// {Conv2D, BatchNorm2D, ReLU, MaxPool2D, Flatten, Dense, BatchNorm1D, ReLU, Dense}: both
/// batch norms in one network.
template <class T>
auto make_net()
{
    return xcnn::Sequential{
        xcnn::Conv2D<T>(1, 4, 3, 1, 1), BatchNorm2D<T>(4), xcnn::ReLU<T>{}, xcnn::MaxPool2D<T>(2), xcnn::Flatten<T>{},
        xcnn::Dense<T>(4 * 3 * 3, 8),   BatchNorm1D<T>(8), xcnn::ReLU<T>{}, xcnn::Dense<T>(8, 3)};
}

TEST_CASE("Sequential: after Conv2D, BatchNorm2D applies the ReLU in training and gives the layers' "
          "results, at inference it folds into the convolution",
          "[batchnorm][sequential]")
{
    using xcnn::detail::step_kind;
    using net_type = xcnn::Sequential<xcnn::Conv2D<double>, BatchNorm2D<double>, xcnn::ReLU<double>>;
    // Conv2D fuses a ReLU that follows it directly; between them, the BatchNorm2D applies it.
    STATIC_REQUIRE(net_type::plan[0] == step_kind::single);
    STATIC_REQUIRE(net_type::plan[1] == step_kind::with_activation);
    STATIC_REQUIRE(net_type::plan[2] == step_kind::absorbed);
    // predict folds the BatchNorm's map into the convolution's weights and applies the ReLU too.
    STATIC_REQUIRE(net_type::predict_plan[0] == step_kind::with_affine_activation);
    STATIC_REQUIRE(net_type::predict_plan[1] == step_kind::absorbed);
    STATIC_REQUIRE(net_type::predict_plan[2] == step_kind::absorbed);
    STATIC_REQUIRE(xcnn::Sequential<xcnn::Conv2D<double>, xcnn::ReLU<double>>::plan[0] == step_kind::with_activation);
    STATIC_REQUIRE(xcnn::detail::is_layer<BatchNorm2D<float>>::value);
    STATIC_REQUIRE(xcnn::detail::is_layer<BatchNorm1D<float>>::value);

    std::mt19937 rng(41);
    net_type net{xcnn::Conv2D<double>(2, 3, 3, 1, 1), BatchNorm2D<double>(3), xcnn::ReLU<double>{}};
    net.get<1>().weight() = xt::xtensor<double, 1>{0.5, -1.5, 2.0};
    net.get<1>().bias() = xt::xtensor<double, 1>{0.1, 0.3, -0.2};
    xcnn::Conv2D<double> conv = net.get<0>();
    BatchNorm2D<double> bn = net.get<1>();
    xcnn::ReLU<double> relu;
    for (int step = 0; step < 2; ++step)
    {
        const auto x = random_tensor<double, 4>({2, 2, 5, 6}, rng);
        const auto dy = random_tensor<double, 4>({2, 3, 5, 6}, rng);
        const xt::xtensor<double, 4> y = net.forward(x);
        const xt::xtensor<double, 4> expected = relu.forward(bn.forward(conv.forward(x)));
        CHECK(xcnn_test::identical(y, expected));
        CHECK(xt::any(xt::equal(y, 0.0))); // the ReLU did something
        const xt::xtensor<double, 4> dx = net.backward(dy);
        const xt::xtensor<double, 4> expected_dx = conv.backward(bn.backward(relu.backward(dy)));
        CHECK(xcnn_test::identical(dx, expected_dx));
        CHECK(xcnn_test::identical(net.get<1>().weight_grad(), bn.weight_grad()));
        CHECK(xcnn_test::identical(net.get<0>().weight_grad(), conv.weight_grad()));
        CHECK(xcnn_test::identical(net.get<1>().running_var(), bn.running_var()));
        const xt::xtensor<double, 4> layers = relu.predict(bn.predict(conv.predict(x)));
        CHECK(xcnn_test::max_abs_diff(net.predict(x), layers) < 1e-13 * (1 + xt::amax(xt::abs(layers))()));
    }
}

/// {BatchNorm, activation} as one fused step against the two layers run one by one, over
/// several training steps (the running statistics move) and `predict`: forward, dX and the
/// parameter gradients bit for bit, and `backward_parameters` (the first step's parameters only).
template <class BN, class Act, std::size_t N>
void check_fused_activation(BN bn, Act act, const std::array<std::size_t, N>& shape, std::uint32_t seed)
{
    using T = typename BN::value_type;
    xcnn::Sequential net{bn, act};
    STATIC_REQUIRE(decltype(net)::plan[0] == xcnn::detail::step_kind::with_activation);
    std::mt19937 rng(seed);
    for (int step = 0; step < 3; ++step)
    {
        CAPTURE(step);
        const auto x = random_tensor<T, N>(shape, rng, -2.0, 2.0);
        const auto dy = random_tensor<T, N>(shape, rng);
        const xt::xtensor<T, N> y = net.forward(x);
        const xt::xtensor<T, N> pre = bn.forward(x);
        const xt::xtensor<T, N> expected = act.forward(pre);
        CHECK(xcnn_test::identical(y, expected));
        CHECK(xt::any(xt::not_equal(y, pre))); // not vacuous: the activation changed values
        const xt::xtensor<T, N> dx = net.backward(dy);
        const xt::xtensor<T, N> expected_dx = bn.backward(act.backward(dy));
        CHECK(xcnn_test::identical(dx, expected_dx));
        CHECK(xcnn_test::identical(net.template get<0>().weight_grad(), bn.weight_grad()));
        CHECK(xcnn_test::identical(net.template get<0>().bias_grad(), bn.bias_grad()));
        net.backward_parameters(dy);
        CHECK(xcnn_test::identical(net.template get<0>().weight_grad(), bn.weight_grad()));
        CHECK(xcnn_test::identical(net.template get<0>().bias_grad(), bn.bias_grad()));
        CHECK(xcnn_test::identical(net.template get<0>().running_var(), bn.running_var()));
        CHECK(xcnn_test::identical(net.predict(x), act.predict(bn.predict(x))));
    }
}

TEST_CASE("BatchNorm applies a following activation in its own passes, bit for bit the layers' results",
          "[batchnorm][sequential]")
{
    SECTION("BatchNorm2D + ReLU: planes of whole vectors and planes with a scalar tail")
    {
        check_fused_activation(BatchNorm2D<double>(3), xcnn::ReLU<double>{}, std::array<std::size_t, 4>{4, 3, 5, 7},
                               61);
        check_fused_activation(BatchNorm2D<float>(5), xcnn::ReLU<float>{}, std::array<std::size_t, 4>{3, 5, 8, 8}, 62);
        check_fused_activation(BatchNorm2D<float>(2), xcnn::ReLU<float>{}, std::array<std::size_t, 4>{2, 2, 19, 21},
                               63);
    }
    SECTION("BatchNorm1D + ReLU")
    {
        check_fused_activation(BatchNorm1D<float>(37), xcnn::ReLU<float>{}, std::array<std::size_t, 2>{9, 37}, 64);
    }
    SECTION("activations applied in place: LeakyReLU, and GELU whose gradient reads its input")
    {
        check_fused_activation(BatchNorm2D<double>(3), xcnn::LeakyReLU<double>(0.2),
                               std::array<std::size_t, 4>{4, 3, 5, 5}, 65);
        check_fused_activation(BatchNorm2D<float>(4), xcnn::GELU<float>{}, std::array<std::size_t, 4>{3, 4, 6, 5}, 66);
    }
}

TEST_CASE("A network with BatchNorm2D and BatchNorm1D trains: the loss decreases", "[batchnorm][training]")
{
    auto net = make_net<float>();
    net.reset_parameters(3);
    std::mt19937 rng(51);
    // Three classes told apart by where an image's bright square is.
    const std::size_t n = 24;
    xt::xtensor<float, 4> x = random_tensor<float, 4>({n, 1, 6, 6}, rng, 0.0, 0.3);
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({n});
    for (std::size_t i = 0; i < n; ++i)
    {
        labels(i) = static_cast<std::int64_t>(i % 3);
        const std::size_t r = 2 * (i % 3);
        xt::view(x, i, 0, xt::range(r, r + 2), xt::range(r, r + 2)) += 1.0f;
    }
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.05f, 0.9f);
    const float first = loss.forward(net.forward(x), labels);
    float last = first;
    for (int step = 0; step < 40; ++step)
    {
        last = loss.forward(net.forward(x), labels);
        net.backward_parameters(loss.backward());
        sgd.step();
    }
    CAPTURE(first, last);
    CHECK(std::isfinite(last));
    CHECK(last < 0.25f * first);
    CHECK(xcnn::accuracy(net.predict(x), labels) == Catch::Approx(1.0));
    CHECK(net.get<1>().num_batches_tracked()() == 41.0f);
    CHECK(net.get<6>().num_batches_tracked()() == 41.0f);
    CHECK(net.buffers().size() == 6);
}

TEST_CASE("BatchNorm buffers survive model files and .npy export/import, and PyTorch's int64 counter imports",
          "[batchnorm][io]")
{
    xcnn_test::temp_dir dir;
    auto net = make_net<double>();
    std::mt19937 rng(61);
    xcnn::SGD<double> sgd(net.parameters(), 0.1);
    for (int step = 0; step < 3; ++step)
    {
        (void)net.forward(random_tensor<double, 4>({5, 1, 6, 6}, rng));
        net.backward(random_tensor<double, 2>({5, 3}, rng));
        sgd.step();
    }
    const auto x = random_tensor<double, 4>({4, 1, 6, 6}, rng);
    const xt::xtensor<double, 2> expected = net.predict(x);
    std::vector<std::string> names;
    for (const auto& b : net.buffers())
    {
        names.push_back(b.name());
    }
    CHECK(names == std::vector<std::string>{"1.running_mean", "1.running_var", "1.num_batches_tracked",
                                            "6.running_mean", "6.running_var", "6.num_batches_tracked"});

    SECTION("model file")
    {
        xcnn::save(net, dir / "bn.xcnn");
        auto loaded = make_net<double>();
        CHECK(loaded.get<1>().num_batches_tracked()() == 0.0);
        xcnn::load(loaded, dir / "bn.xcnn");
        CHECK((loaded.get<1>().running_mean() == net.get<1>().running_mean()));
        CHECK((loaded.get<6>().running_var() == net.get<6>().running_var()));
        CHECK(loaded.get<1>().num_batches_tracked()() == 3.0);
        CHECK(xcnn_test::identical(loaded.predict(x), expected));
    }
    SECTION(".npy files: one per state_dict key, the counter a scalar")
    {
        const std::string npy = dir / "npy";
        xcnn::export_npy(net, npy);
        const auto header = xcnn::load_npy_header(npy + "/1.num_batches_tracked.npy");
        CHECK(header.shape.empty());
        CHECK(xcnn::load_npy<double>(npy + "/1.num_batches_tracked.npy")() == 3.0);
        CHECK(xcnn::load_npy_header(npy + "/6.running_var.npy").shape == std::vector<std::size_t>{8});
        auto imported = make_net<double>();
        xcnn::import_npy(imported, npy);
        CHECK((imported.get<6>().running_mean() == net.get<6>().running_mean()));
        CHECK(imported.get<6>().num_batches_tracked()() == 3.0);
        CHECK(xcnn_test::identical(imported.predict(x), expected));

        // PyTorch's state_dict holds the counter as an int64 scalar: np.save of it imports.
        xcnn::save_npy(npy + "/1.num_batches_tracked.npy", xt::xtensor<std::int64_t, 0>(std::int64_t(17)));
        CHECK(xcnn::load_npy_header(npy + "/1.num_batches_tracked.npy").descr == "<i8");
        xcnn::import_npy(imported, npy);
        CHECK(imported.get<1>().num_batches_tracked()() == 17.0);
    }
}

} // namespace
