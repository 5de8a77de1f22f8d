// Tests of xcnn::SoftmaxCrossEntropy and the classification metrics argmax / accuracy.
#include "catch_compat.hpp"
#include "support/gradcheck.hpp"

#include <xcnn/xcnn.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace
{

using xcnn_test::contains;
using labels_t = xt::xtensor<std::int64_t, 1>;

/// Naive mean negative log-likelihood of softmax, straight from the definition, in long double.
template <class T>
double naive_loss(const xt::xtensor<T, 2>& logits, const labels_t& labels)
{
    const std::size_t n = logits.shape()[0], classes = logits.shape()[1];
    long double total = 0;
    for (std::size_t i = 0; i < n; ++i)
    {
        long double sum = 0;
        for (std::size_t c = 0; c < classes; ++c)
        {
            sum += std::exp(static_cast<long double>(logits(i, c)));
        }
        const long double p = std::exp(static_cast<long double>(logits(i, static_cast<std::size_t>(labels(i))))) / sum;
        total += -std::log(p);
    }
    return static_cast<double>(total / static_cast<long double>(n));
}

/// (softmax - one_hot) / N from the definition.
template <class T>
xt::xtensor<double, 2> naive_gradient(const xt::xtensor<T, 2>& logits, const labels_t& labels)
{
    const std::size_t n = logits.shape()[0], classes = logits.shape()[1];
    xt::xtensor<double, 2> g({n, classes});
    for (std::size_t i = 0; i < n; ++i)
    {
        long double sum = 0;
        for (std::size_t c = 0; c < classes; ++c)
        {
            sum += std::exp(static_cast<long double>(logits(i, c)));
        }
        for (std::size_t c = 0; c < classes; ++c)
        {
            const long double p = std::exp(static_cast<long double>(logits(i, c))) / sum;
            const long double onehot = static_cast<std::size_t>(labels(i)) == c ? 1 : 0;
            g(i, c) = static_cast<double>((p - onehot) / static_cast<long double>(n));
        }
    }
    return g;
}

template <class T>
xt::xtensor<T, 2> random_logits(std::size_t n, std::size_t classes, std::mt19937& rng, double scale = 3.0)
{
    xt::xtensor<T, 2> logits({n, classes});
    xcnn_test::fill_uniform(logits, rng, -scale, scale);
    return logits;
}

labels_t random_labels(std::size_t n, std::size_t classes, std::mt19937& rng)
{
    labels_t labels = xt::zeros<std::int64_t>({n});
    for (auto& l : labels)
    {
        l = static_cast<std::int64_t>(rng() % classes);
    }
    return labels;
}

template <class F>
std::string message_of(F&& f)
{
    try
    {
        f();
    }
    catch (const std::exception& e)
    {
        return e.what();
    }
    return "<no exception>";
}

} // namespace

TEST_CASE("SoftmaxCrossEntropy loss equals the naive log-softmax NLL", "[loss]")
{
    std::mt19937 rng(10);
    const std::size_t n = GENERATE(1, 2, 7, 32);
    const std::size_t classes = GENERATE(1, 2, 10);
    CAPTURE(n, classes);

    SECTION("double")
    {
        const auto logits = random_logits<double>(n, classes, rng);
        const auto labels = random_labels(n, classes, rng);
        xcnn::SoftmaxCrossEntropy<double> loss;
        const double value = loss.forward(logits, labels);
        CHECK_THAT(value, xcnn_test::near(naive_loss(logits, labels), 1e-12));
        if (classes == 1)
        {
            CHECK(value == 0.0); // one class: probability 1
        }
    }
    SECTION("float")
    {
        const auto logits = random_logits<float>(n, classes, rng);
        const auto labels = random_labels(n, classes, rng);
        xcnn::SoftmaxCrossEntropy<float> loss;
        const float value = loss.forward(logits, labels);
        CHECK_THAT(static_cast<double>(value), xcnn_test::near(naive_loss(logits, labels), 1e-5));
    }
}

TEST_CASE("SoftmaxCrossEntropy known values", "[loss]")
{
    xcnn::SoftmaxCrossEntropy<double> loss;
    // Equal logits: -log(1 / C) whatever the label.
    const xt::xtensor<double, 2> equal = xt::zeros<double>({3, 5});
    CHECK_THAT(loss.forward(equal, labels_t{0, 2, 4}), xcnn_test::near(std::log(5.0), 1e-15));
    // Shifting every logit of a row by a constant does not change the loss.
    const xt::xtensor<double, 2> logits = {{1.0, 2.0, 3.0}, {-1.0, 0.5, 0.0}};
    const labels_t labels = {2, 0};
    const double base = loss.forward(logits, labels);
    const xt::xtensor<double, 2> shifted = logits + 100.0;
    CHECK_THAT(loss.forward(shifted, labels), xcnn_test::near(base, 1e-12));
    // By hand: mean of (log(e^1 + e^2 + e^3) - 3) and (log(e^-1 + e^0.5 + e^0) + 1).
    const double by_hand = 0.5 * ((std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0) +
                                  (std::log(std::exp(-1.0) + std::exp(0.5) + std::exp(0.0)) + 1.0));
    CHECK_THAT(base, xcnn_test::near(by_hand, 1e-14));
}

TEST_CASE("SoftmaxCrossEntropy is stable for huge logits", "[loss]")
{
    SECTION("float")
    {
        xcnn::SoftmaxCrossEntropy<float> loss;
        const xt::xtensor<float, 2> logits = {{1e4f, -1e4f}, {1e4f, -1e4f}, {-1e4f, -1e4f}, {3e4f, 1e4f}};
        // Per-sample losses: 0, 2e4, log 2, 2e4 (the naive exp overflows to inf / nan here).
        const labels_t labels = {0, 1, 1, 1};
        const float value = loss.forward(logits, labels);
        REQUIRE(std::isfinite(value));
        CHECK_THAT(static_cast<double>(value), xcnn_test::near((0.0 + 2e4 + std::log(2.0) + 2e4) / 4.0, 1e-2));
        const auto& p = loss.probabilities();
        CHECK(p(0, 0) == 1.0f);
        CHECK(p(0, 1) == 0.0f);
        CHECK_THAT(static_cast<double>(p(2, 0)), xcnn_test::near(0.5, 1e-7));
        const xt::xtensor<float, 2> grad = loss.backward();
        REQUIRE(xt::all(xt::isfinite(grad)));
        const xt::xtensor<double, 2> expected = {{0.0, 0.0}, {0.25, -0.25}, {0.125, -0.125}, {0.25, -0.25}};
        CHECK(xcnn_test::max_abs_diff(grad, expected) < 1e-7);
    }
    SECTION("double")
    {
        xcnn::SoftmaxCrossEntropy<double> loss;
        const xt::xtensor<double, 2> logits = {{1e4, -1e4, 0.0}, {-1e4, -1e4, -1e4}};
        const double value = loss.forward(logits, labels_t{2, 0});
        REQUIRE(std::isfinite(value));
        CHECK_THAT(value, xcnn_test::near((1e4 + std::log(3.0)) / 2.0, 1e-9));
        const xt::xtensor<double, 2> grad = loss.backward();
        REQUIRE(xt::all(xt::isfinite(grad)));
        const xt::xtensor<double, 2> expected = {{0.5, 0.0, -0.5}, {1.0 / 6 - 0.5, 1.0 / 6, 1.0 / 6}};
        CHECK(xcnn_test::max_abs_diff(grad, expected) < 1e-15);
    }
}

TEST_CASE("SoftmaxCrossEntropy backward is (softmax - one_hot) / N", "[loss]")
{
    std::mt19937 rng(11);
    const std::size_t n = GENERATE(1, 3, 16);
    const std::size_t classes = GENERATE(2, 10);
    CAPTURE(n, classes);
    const auto logits = random_logits<double>(n, classes, rng);
    const auto labels = random_labels(n, classes, rng);

    xcnn::SoftmaxCrossEntropy<double> loss;
    (void)loss.forward(logits, labels);
    const xt::xtensor<double, 2> grad = loss.backward();
    REQUIRE(grad.shape() == logits.shape());
    CHECK(xcnn_test::max_abs_diff(grad, naive_gradient(logits, labels)) < 1e-15);
    // Each row of the gradient sums to zero; the probabilities to one.
    for (std::size_t i = 0; i < n; ++i)
    {
        double g = 0, p = 0;
        for (std::size_t c = 0; c < classes; ++c)
        {
            g += grad(i, c);
            p += loss.probabilities()(i, c);
        }
        CHECK_THAT(g, xcnn_test::near(0.0, 1e-15));
        CHECK_THAT(p, xcnn_test::near(1.0, 1e-14));
    }
    // backward twice returns the same gradient.
    CHECK(xcnn_test::max_abs_diff(loss.backward(), grad) == 0.0);

    SECTION("float")
    {
        const xt::xtensor<float, 2> logits_f = logits;
        xcnn::SoftmaxCrossEntropy<float> loss_f;
        (void)loss_f.forward(logits_f, labels);
        CHECK(xcnn_test::max_abs_diff(loss_f.backward(), naive_gradient(logits_f, labels)) < 1e-6);
    }
}

TEST_CASE("SoftmaxCrossEntropy passes a finite-difference gradient check", "[loss][gradcheck]")
{
    std::mt19937 rng(12);
    const std::size_t n = GENERATE(1, 4);
    const std::size_t classes = GENERATE(3, 10);
    CAPTURE(n, classes);
    auto logits = random_logits<double>(n, classes, rng);
    const auto labels = random_labels(n, classes, rng);

    xcnn::SoftmaxCrossEntropy<double> loss;
    (void)loss.forward(logits, labels);
    const xt::xtensor<double, 2> analytic = loss.backward();
    const auto numeric =
        xcnn_test::numeric_gradient([&] { return loss.forward(logits, labels); }, logits.data(), logits.size());
    const double err = xcnn_test::relative_error(analytic.data(), numeric.data(), analytic.size());
    CAPTURE(err);
    CHECK(err < 1e-6);
}

TEST_CASE("SoftmaxCrossEntropy follows the batch size from call to call", "[loss]")
{
    std::mt19937 rng(13);
    xcnn::SoftmaxCrossEntropy<double> loss;
    const auto big = random_logits<double>(6, 4, rng);
    const auto big_labels = random_labels(6, 4, rng);
    (void)loss.forward(big, big_labels);
    (void)loss.backward();
    const auto small = random_logits<double>(2, 4, rng);
    const auto small_labels = random_labels(2, 4, rng);
    CHECK_THAT(loss.forward(small, small_labels), xcnn_test::near(naive_loss(small, small_labels), 1e-12));
    const xt::xtensor<double, 2> grad = loss.backward();
    REQUIRE(grad.shape()[0] == 2);
    CHECK(xcnn_test::max_abs_diff(grad, naive_gradient(small, small_labels)) < 1e-15);
}

TEST_CASE("SoftmaxCrossEntropy rejects bad labels and misuse", "[loss][errors]")
{
    xcnn::SoftmaxCrossEntropy<float> loss;
    const xt::xtensor<float, 2> logits = xt::zeros<float>({4, 3});

    SECTION("backward before forward")
    {
        REQUIRE_THROWS_AS(loss.backward(), xcnn::error);
        REQUIRE_THROWS_WITH(loss.backward(), contains("SoftmaxCrossEntropy"));
    }

    SECTION("label >= classes")
    {
        const labels_t labels = {0, 1, 3, 2};
        REQUIRE_THROWS_AS(loss.forward(logits, labels), xcnn::value_error);
        const std::string what = message_of([&] { (void)loss.forward(logits, labels); });
        INFO(what);
        CHECK_THAT(what, contains("SoftmaxCrossEntropy"));
        CHECK_THAT(what, contains("label 3"));
        CHECK_THAT(what, contains("index 2"));
        CHECK_THAT(what, contains("3 classes"));
        // A rejected call does not enable backward.
        REQUIRE_THROWS_AS(loss.backward(), xcnn::error);
    }

    SECTION("negative label")
    {
        const labels_t labels = {0, -1, 1, 2};
        REQUIRE_THROWS_AS(loss.forward(logits, labels), xcnn::value_error);
        const std::string what = message_of([&] { (void)loss.forward(logits, labels); });
        INFO(what);
        CHECK_THAT(what, contains("label -1"));
        CHECK_THAT(what, contains("index 1"));
    }

    SECTION("huge labels")
    {
        const labels_t labels = {0, 1, 2, std::numeric_limits<std::int64_t>::max()};
        REQUIRE_THROWS_AS(loss.forward(logits, labels), xcnn::value_error);
        const labels_t lowest = {std::numeric_limits<std::int64_t>::min(), 1, 2, 0};
        REQUIRE_THROWS_AS(loss.forward(logits, lowest), xcnn::value_error);
    }

    SECTION("wrong number of labels")
    {
        const labels_t labels = {0, 1, 2};
        REQUIRE_THROWS_AS(loss.forward(logits, labels), xcnn::shape_error);
        const std::string what = message_of([&] { (void)loss.forward(logits, labels); });
        INFO(what);
        CHECK_THAT(what, contains("(4, 3)"));
        CHECK_THAT(what, contains("(3,)"));
    }

    SECTION("no classes")
    {
        const xt::xtensor<float, 2> empty = xt::zeros<float>({2, 0});
        REQUIRE_THROWS_AS(loss.forward(empty, labels_t{0, 0}), xcnn::shape_error);
    }
}

TEST_CASE("argmax and accuracy", "[metrics]")
{
    SECTION("argmax picks the largest logit, the first one on ties")
    {
        const xt::xtensor<float, 2> logits = {{0.1f, 0.7f, 0.2f, 0.0f},
                                              {1.0f, 3.0f, 3.0f, 0.0f}, // tie: first max wins
                                              {2.0f, 2.0f, 2.0f, 2.0f}, // all equal: 0
                                              {-5.0f, -1.0f, -3.0f, -1.0f},
                                              {0.0f, 0.0f, 0.0f, 1e-7f}};
        const auto predicted = xcnn::argmax(logits);
        REQUIRE(predicted.size() == 5);
        CHECK(predicted(0) == 1);
        CHECK(predicted(1) == 1);
        CHECK(predicted(2) == 0);
        CHECK(predicted(3) == 1);
        CHECK(predicted(4) == 3);

        const xt::xtensor<double, 2> one_column = {{-2.0}, {5.0}};
        const bool column_ok = xcnn::argmax(one_column) == labels_t{0, 0};
        CHECK(column_ok);
        REQUIRE_THROWS_AS(xcnn::argmax(xt::xtensor<double, 2>(xt::zeros<double>({2, 0}))), xcnn::shape_error);
    }

    SECTION("accuracy counts rows whose argmax is the label")
    {
        const xt::xtensor<double, 2> logits = {{0.1, 0.7, 0.2}, {1.0, 3.0, 3.0}, {2.0, 2.0, 2.0}, {0.0, -1.0, 5.0}};
        CHECK(xcnn::accuracy(logits, labels_t{1, 1, 0, 2}) == 1.0);
        CHECK(xcnn::accuracy(logits, labels_t{1, 2, 0, 2}) == 0.75); // the tie goes to class 1, not 2
        CHECK(xcnn::accuracy(logits, labels_t{1, 1, 1, 2}) == 0.75); // all-equal row predicts 0
        CHECK(xcnn::accuracy(logits, labels_t{0, 0, 1, 1}) == 0.0);
        CHECK(xcnn::accuracy(logits, labels_t{2, 0, 0, 0}) == 0.25);
        const xt::xtensor<float, 2> single = {{0.0f, 1.0f}};
        CHECK(xcnn::accuracy(single, labels_t{1}) == 1.0);

        REQUIRE_THROWS_AS(xcnn::accuracy(logits, labels_t{1, 1, 0}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(xcnn::accuracy(logits, labels_t{1, 1, 0}), contains("(4, 3)"));
    }

    SECTION("accuracy matches argmax on random data")
    {
        std::mt19937 rng(14);
        const auto logits = random_logits<float>(50, 7, rng);
        const auto labels = random_labels(50, 7, rng);
        const auto predicted = xcnn::argmax(logits);
        std::size_t correct = 0;
        for (std::size_t i = 0; i < 50; ++i)
        {
            std::size_t best = 0;
            for (std::size_t c = 1; c < 7; ++c)
            {
                best = logits(i, c) > logits(i, best) ? c : best;
            }
            CHECK(predicted(i) == static_cast<std::int64_t>(best));
            correct += predicted(i) == labels(i) ? 1 : 0;
        }
        CHECK(xcnn::accuracy(logits, labels) == static_cast<double>(correct) / 50.0);
    }
}
