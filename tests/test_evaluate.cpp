// xcnn::evaluate against a direct computation on all logits at once (softmax cross-entropy by a
// naive loop in long double, argmax, the confusion matrix), whatever the batch size and order,
// for a Sequential and a single layer; its errors; and Sequential::predict of one unbatched
// sample against the batched predict. That evaluate's memory is one batch's, not the data set's,
// is checked in test_allocations.cpp (its counting operator new cannot run under the sanitizers).
#include "catch_compat.hpp"

#include "support/require_error.hpp"

#include <xcnn/xcnn.hpp>

#include <xcnn/loss/evaluate.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

namespace
{

using xcnn_test::require_error;

struct dataset
{
    xt::xtensor<double, 4> images;
    xt::xtensor<std::int64_t, 1> labels;
};

dataset random_images(std::size_t n, std::size_t classes, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    std::normal_distribution<double> pixel(0.0, 1.0);
    dataset d{xt::xtensor<double, 4>(std::array<std::size_t, 4>{n, 1, 6, 6}),
              xt::xtensor<std::int64_t, 1>(std::array<std::size_t, 1>{n})};
    for (auto& v : d.images)
    {
        v = pixel(rng);
    }
    for (std::size_t i = 0; i < n; ++i)
    {
        d.labels(i) = static_cast<std::int64_t>(rng() % classes);
    }
    return d;
}

auto make_net()
{
    auto net = xcnn::Sequential{xcnn::Conv2D<double>(1, 3, 3, 1, 1), xcnn::ReLU<double>{}, xcnn::MaxPool2D<double>(2),
                                xcnn::Flatten<double>{}, xcnn::Dense<double>(27, 5)};
    net.reset_parameters(7u);
    return net;
}

/// What evaluate must return, from logits (N, classes) of the whole set at once.
struct direct
{
    double loss = 0;
    std::size_t correct = 0;
    std::vector<std::size_t> confusion;
};

direct direct_evaluation(const xt::xtensor<double, 2>& logits, const xt::xtensor<std::int64_t, 1>& labels)
{
    const std::size_t n = logits.shape()[0], k = logits.shape()[1];
    direct d;
    d.confusion.assign(k * k, 0);
    long double total = 0;
    const auto predicted = xcnn::argmax(logits);
    for (std::size_t i = 0; i < n; ++i)
    {
        long double sum = 0;
        for (std::size_t c = 0; c < k; ++c)
        {
            sum += std::exp(static_cast<long double>(logits(i, c)));
        }
        total += std::log(sum) - static_cast<long double>(logits(i, static_cast<std::size_t>(labels(i))));
        const auto t = static_cast<std::size_t>(labels(i)), p = static_cast<std::size_t>(predicted(i));
        d.correct += t == p ? 1 : 0;
        ++d.confusion[t * k + p];
    }
    d.loss = static_cast<double>(total / static_cast<long double>(n));
    return d;
}

void check_against(const xcnn::evaluation& e, const direct& d, std::size_t n)
{
    CHECK(e.count == n);
    CHECK(e.correct == d.correct);
    CHECK(e.accuracy == static_cast<double>(d.correct) / static_cast<double>(n));
    CHECK_THAT(e.loss, xcnn_test::near(d.loss, 1e-12 * std::abs(d.loss)));
    CHECK(e.confusion == d.confusion);
}

} // namespace

TEST_CASE("evaluate equals the loss, accuracy and confusion matrix of all logits at once", "[evaluate]")
{
    const dataset d = random_images(103, 5, 1);
    auto net = make_net();
    const xt::xtensor<double, 2> logits = net.predict(d.images);
    const direct expected = direct_evaluation(logits, d.labels);
    // The loss agrees with SoftmaxCrossEntropy's too.
    xcnn::SoftmaxCrossEntropy<double> ce;
    REQUIRE_THAT(expected.loss, xcnn_test::near(ce.forward(logits, d.labels), 1e-12));
    REQUIRE(expected.correct > 0);
    REQUIRE(expected.correct < 103); // neither extreme: a wrong count would show

    const std::size_t batch = GENERATE(1, 7, 10, 103, 1000);
    CAPTURE(batch);
    const xcnn::evaluation e = xcnn::evaluate(net, d.images, d.labels, batch);
    check_against(e, expected, 103);
    CHECK(e.classes == 5);
    std::size_t diagonal = 0, total = 0;
    for (std::size_t t = 0; t < 5; ++t)
    {
        diagonal += e.confusion_at(t, t);
        std::size_t row = 0;
        for (std::size_t p = 0; p < 5; ++p)
        {
            row += e.confusion_at(t, p);
        }
        CHECK(row == static_cast<std::size_t>(xt::sum(xt::equal(d.labels, static_cast<std::int64_t>(t)))()));
        total += row;
    }
    CHECK(diagonal == e.correct);
    CHECK(total == 103);
}

TEST_CASE("evaluate takes a DataLoader, a data set with images and labels, or a single layer", "[evaluate]")
{
    const dataset d = random_images(50, 5, 2);
    auto net = make_net();
    const direct expected = direct_evaluation(net.predict(d.images), d.labels);

    SECTION("a shuffled loader: the same counts, the loss up to the order of the sum")
    {
        xcnn::DataLoader loader(d.images, d.labels, 8, xcnn::loader_options{}.shuffled(3));
        const auto e = xcnn::evaluate(net, loader);
        check_against(e, expected, 50);
        CHECK(loader.epoch() == 1);
    }
    SECTION("a loader with drop_last evaluates the full batches only")
    {
        xcnn::DataLoader loader(d.images, d.labels, 8, xcnn::loader_options{}.dropping_last());
        const auto e = xcnn::evaluate(net, loader);
        CHECK(e.count == 48);
        const xt::xtensor<double, 4> first = xt::view(d.images, xt::range(0, 48));
        const xt::xtensor<std::int64_t, 1> first_labels = xt::view(d.labels, xt::range(0, 48));
        check_against(e, direct_evaluation(net.predict(first), first_labels), 48);
    }
    SECTION("a data set with images and labels members")
    {
        const auto e = xcnn::evaluate(net, d, 16);
        check_against(e, expected, 50);
    }
    SECTION("a single Dense layer on (N, F) rows")
    {
        xcnn::Dense<double> dense(36, 5);
        const xt::xtensor<double, 2> rows = xt::reshape_view(d.images, {std::size_t(50), std::size_t(36)});
        const xt::xtensor<double, 2> logits = dense.predict(rows);
        const auto e = xcnn::evaluate(dense, rows, d.labels, 9);
        check_against(e, direct_evaluation(logits, d.labels), 50);
    }
}

TEST_CASE("evaluate's errors are typed and name the values", "[evaluate][errors]")
{
    auto net = make_net();
    dataset d = random_images(12, 5, 3);
    require_error<xcnn::value_error>([&] { (void)xcnn::evaluate(net, d.images, d.labels, 0); },
                                     {"batch size must be at least 1"});
    const dataset empty = random_images(0, 5, 3);
    require_error<xcnn::value_error>([&] { (void)xcnn::evaluate(net, empty.images, empty.labels, 4); },
                                     {"evaluate: no samples to evaluate", "0 samples"});
    xcnn::DataLoader dropping(d.images, d.labels, 20, xcnn::loader_options{}.dropping_last());
    require_error<xcnn::value_error>([&] { (void)xcnn::evaluate(net, dropping); },
                                     {"no samples", "12 samples in batches of 20 with drop_last"});
    const xt::xtensor<std::int64_t, 1> eleven = xt::zeros<std::int64_t>({11});
    require_error<xcnn::shape_error>([&] { (void)xcnn::evaluate(net, d.images, eleven, 4); },
                                     {"(12, 1, 6, 6)", "(11,)", "disagree"});
    d.labels(9) = 5;
    require_error<xcnn::value_error>([&] { (void)xcnn::evaluate(net, d.images, d.labels, 4); },
                                     {"evaluate: label 5 of sample 1 of batch 2", "out of range for 5 classes"});
    d.labels(9) = -1;
    require_error<xcnn::value_error>([&] { (void)xcnn::evaluate(net, d.images, d.labels, 4); }, {"label -1"});
    // A network error keeps its type and its layer.
    const xt::xtensor<double, 4> wrong = xt::zeros<double>({4, 2, 6, 6});
    require_error<xcnn::shape_error>([&] { (void)xcnn::evaluate(net, wrong, eleven, 2); }, {"disagree"});
    const xt::xtensor<std::int64_t, 1> four = xt::zeros<std::int64_t>({4});
    require_error<xcnn::shape_error>([&] { (void)xcnn::evaluate(net, wrong, four, 2); },
                                     {"Sequential layer 0", "(2, 2, 6, 6)"});
}

TEST_CASE("Sequential::predict of one unbatched sample equals the batched predict without the batch axis",
          "[evaluate][predict]")
{
    SECTION("a (C, H, W) image gives (classes) logits")
    {
        const dataset d = random_images(5, 5, 4);
        auto net = make_net();
        const xt::xtensor<double, 2> batched = net.predict(d.images);
        for (std::size_t i = 0; i < 5; ++i)
        {
            const xt::xtensor<double, 3> image = xt::view(d.images, i);
            const auto& logits = net.predict(image);
            STATIC_REQUIRE(std::is_same<std::decay_t<decltype(logits)>, xt::xtensor<double, 1>>::value);
            REQUIRE(logits.shape() == (std::array<std::size_t, 1>{5}));
            // Exactly the batch of one; and the row of the batch of five to rounding.
            const xt::xtensor<double, 4> one = xt::view(d.images, xt::range(i, i + 1));
            const xt::xtensor<double, 2> batch_of_one = net.predict(one);
            for (std::size_t c = 0; c < 5; ++c)
            {
                CHECK(logits(c) == batch_of_one(0, c));
                CHECK_THAT(logits(c), xcnn_test::near(batched(i, c), 1e-12));
            }
        }
        // The output is a buffer of the network, reused by the next call.
        const xt::xtensor<double, 3> image = xt::view(d.images, 2);
        const auto* first = &net.predict(image);
        CHECK(first == &net.predict(image));
        // After an unbatched predict, backward is refused as after any predict.
        require_error<xcnn::error>(
            [&] {
                (void)net.backward(xt::xtensor<double, 2>(xt::zeros<double>({1, 5})));
            },
            {"backward needs a forward"});
        // A wrong sample is a shape_error naming the batch of one.
        const xt::xtensor<double, 3> two_channels = xt::zeros<double>({2, 6, 6});
        require_error<xcnn::shape_error>([&] { (void)net.predict(two_channels); },
                                         {"Sequential layer 0", "(1, 2, 6, 6)"});
    }
    SECTION("an (F) row through Dense layers gives (classes)")
    {
        xcnn::Sequential net{xcnn::Dense<float>(4, 6), xcnn::ReLU<float>{}, xcnn::Dense<float>(6, 3)};
        net.reset_parameters(2u);
        const xt::xtensor<float, 2> rows = {{0.5f, -1.0f, 2.0f, 0.25f}, {1.0f, 1.0f, -1.0f, 0.0f}};
        const xt::xtensor<float, 2> batched = net.predict(rows);
        for (std::size_t i = 0; i < 2; ++i)
        {
            const xt::xtensor<float, 1> row = xt::view(rows, i);
            const xt::xtensor<float, 1> logits = net.predict(row);
            REQUIRE(logits.size() == 3);
            for (std::size_t c = 0; c < 3; ++c)
            {
                CHECK_THAT(logits(c), xcnn_test::near(batched(i, c), 1e-6));
            }
        }
    }
    SECTION("a dynamic-rank xarray is taken as a batch, as before")
    {
        auto net = make_net();
        const xt::xarray<double> image = xt::zeros<double>({1, 6, 6});
        require_error<xcnn::shape_error>([&] { (void)net.predict(image); }, {"Sequential layer 0", "(1, 6, 6)"});
    }
}
