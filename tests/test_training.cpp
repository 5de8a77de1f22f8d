// End-to-end: a small conv net learns a synthetic task in float with a fixed seed, and training
// is bit-for-bit reproducible.
//
// The task: an 8x8 image of Gaussian noise holds one bright 2x2 blob (intensity 0.6 to 1.2) at a
// random position inside one of its four 4x4 quadrants; the label is the quadrant (0 top-left,
// 1 top-right, 2 bottom-left, 3 bottom-right). Conv(3x3) + ReLU + MaxPool(2) keep where the blob
// is to within the pooled 4x4 grid, which a Dense layer maps to the quadrant.
#include "catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace
{

struct dataset
{
    xt::xtensor<float, 4> images;
    xt::xtensor<std::int64_t, 1> labels;
};

dataset make_quadrant_data(std::size_t n, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.0f, 0.15f);
    std::uniform_real_distribution<float> intensity(0.6f, 1.2f);
    dataset d{xt::zeros<float>({n, std::size_t(1), std::size_t(8), std::size_t(8)}), xt::zeros<std::int64_t>({n})};
    for (std::size_t i = 0; i < n; ++i)
    {
        const auto label = static_cast<std::size_t>(rng() % 4);
        d.labels(i) = static_cast<std::int64_t>(label);
        for (std::size_t r = 0; r < 8; ++r)
        {
            for (std::size_t c = 0; c < 8; ++c)
            {
                d.images(i, 0, r, c) = noise(rng);
            }
        }
        const std::size_t top = (label / 2) * 4 + rng() % 3, left = (label % 2) * 4 + rng() % 3;
        const float value = intensity(rng);
        for (std::size_t r = top; r < top + 2; ++r)
        {
            for (std::size_t c = left; c < left + 2; ++c)
            {
                d.images(i, 0, r, c) += value;
            }
        }
    }
    return d;
}

auto make_net()
{
    return xcnn::Sequential{xcnn::Conv2D<float>(1, 4, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::MaxPool2D<float>(2),
                            xcnn::Flatten<float>{}, xcnn::Dense<float>(4 * 4 * 4, 4)};
}

struct run_result
{
    double initial_loss = 0, final_loss = 0, train_accuracy = 0, test_accuracy = 0;
    std::vector<std::vector<float>> initial_parameters, parameters;
};

/// Trains from `seed` (initialisation and batch order) on `train` and evaluates on `test`.
run_result train_and_evaluate(std::uint32_t seed, const dataset& train, const dataset& test)
{
    auto net = make_net();
    net.reset_parameters(seed);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.05f, 0.9f);

    run_result result;
    for (const auto& p : net.parameters())
    {
        result.initial_parameters.emplace_back(p.data(), p.data() + p.size());
    }
    result.initial_loss = loss.forward(net.predict(train.images), train.labels);

    const std::size_t n = train.labels.size(), batch = 32, epochs = 30;
    std::mt19937 rng(seed);
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t(0));
    xt::xtensor<float, 4> x({batch, 1, 8, 8});
    xt::xtensor<std::int64_t, 1> y = xt::zeros<std::int64_t>({batch});
    for (std::size_t epoch = 0; epoch < epochs; ++epoch)
    {
        std::shuffle(order.begin(), order.end(), rng);
        for (std::size_t start = 0; start + batch <= n; start += batch)
        {
            for (std::size_t b = 0; b < batch; ++b)
            {
                xt::view(x, b) = xt::view(train.images, order[start + b]);
                y(b) = train.labels(order[start + b]);
            }
            (void)loss.forward(net.forward(x), y);
            (void)net.backward(loss.backward());
            sgd.step();
        }
    }

    const xt::xtensor<float, 2> train_logits = net.predict(train.images);
    result.final_loss = loss.forward(train_logits, train.labels);
    result.train_accuracy = xcnn::accuracy(train_logits, train.labels);
    result.test_accuracy = xcnn::accuracy(net.predict(test.images), test.labels);
    for (const auto& p : net.parameters())
    {
        result.parameters.emplace_back(p.data(), p.data() + p.size());
    }
    return result;
}

} // namespace

TEST_CASE("A small conv net learns which quadrant holds the blob", "[training]")
{
    const dataset train = make_quadrant_data(128, 2024);
    const dataset test = make_quadrant_data(256, 7); // fresh samples, never trained on
    // Every class is present in both sets.
    for (std::int64_t c = 0; c < 4; ++c)
    {
        CHECK(xt::sum(xt::equal(train.labels, c))() >= 16);
        CHECK(xt::sum(xt::equal(test.labels, c))() >= 32);
    }

    const run_result run = train_and_evaluate(1u, train, test);
    INFO("initial loss " << run.initial_loss << ", final loss " << run.final_loss << ", train accuracy "
                         << run.train_accuracy << ", test accuracy " << run.test_accuracy);
    REQUIRE(std::isfinite(run.final_loss));
    // Untrained: about log(4) = 1.39.
    CHECK(run.initial_loss > 1.0);
    CHECK(run.final_loss * 10.0 < run.initial_loss);
    CHECK(run.train_accuracy >= 0.95);
    CHECK(run.test_accuracy >= 0.9);
    // Every layer learned, not only the last one: each parameter tensor moved by more than a
    // tenth of its initial norm.
    REQUIRE(run.parameters.size() == 4);
    for (std::size_t i = 0; i < run.parameters.size(); ++i)
    {
        double moved = 0, norm = 0;
        for (std::size_t j = 0; j < run.parameters[i].size(); ++j)
        {
            const double d = run.parameters[i][j] - run.initial_parameters[i][j];
            moved += d * d;
            norm += double(run.initial_parameters[i][j]) * run.initial_parameters[i][j];
        }
        INFO("parameter " << i << ": moved " << std::sqrt(moved) << ", initial norm " << std::sqrt(norm));
        CHECK(std::sqrt(moved) > 0.1 * std::sqrt(norm));
    }

    SECTION("the same seed gives bit-identical weights")
    {
        const run_result again = train_and_evaluate(1u, train, test);
        REQUIRE(again.parameters.size() == 4);
        CHECK(again.parameters == run.parameters);
        CHECK(again.final_loss == run.final_loss);
    }
    SECTION("another seed gives different weights")
    {
        const run_result other = train_and_evaluate(2u, train, test);
        REQUIRE(other.parameters.size() == run.parameters.size());
        for (std::size_t i = 0; i < run.parameters.size(); ++i)
        {
            INFO("parameter " << i);
            CHECK(other.parameters[i] != run.parameters[i]);
            CHECK(other.initial_parameters[i] != run.initial_parameters[i]);
        }
        // The result does not hinge on the lucky seed.
        CHECK(other.final_loss * 10.0 < other.initial_loss);
        CHECK(other.train_accuracy >= 0.95);
        CHECK(other.test_accuracy >= 0.9);
    }
}
