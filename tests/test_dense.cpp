// Dense: forward and backward against naive loops (including sizes beyond the GEMM's cache
// blocks), finite-difference gradient checks, overwrite semantics, parameters and errors.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"

#include <xcnn/layers/dense.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace
{

using xcnn::Dense;
namespace naive = xcnn_test::naive;
using xcnn_test::identical;
using xcnn_test::max_scaled_error;
using xcnn_test::random_tensor;
using xcnn_test::same_extents;

struct dense_case
{
    std::size_t n, in, out;

    std::string describe() const
    {
        std::ostringstream s;
        s << "N=" << n << " in=" << in << " out=" << out;
        return s.str();
    }
};

/// Forward, backward and predict of one case against the naive loops; `tol` bounds
/// |library - naive| / (sum of |terms|) for every entry of y, dX, dW and db.
template <class T>
void check_against_naive(const dense_case& c, std::mt19937& rng, double tol)
{
    INFO(c.describe());
    Dense<T> layer(c.in, c.out);
    layer.weight() = random_tensor<T, 2>({c.out, c.in}, rng);
    layer.bias() = random_tensor<T, 1>({c.out}, rng);
    const auto x = random_tensor<T, 2>({c.n, c.in}, rng);

    xt::xtensor<double, 2> magnitude;
    const auto expected = naive::dense(x, layer.weight(), layer.bias(), &magnitude);
    const xt::xtensor<T, 2> y = layer.forward(x);
    REQUIRE(same_extents(y, expected));
    CHECK(layer.output_shape({c.n, c.in}) == std::vector<std::size_t>{c.n, c.out});
    CHECK(max_scaled_error(y, expected, magnitude) <= tol);

    const auto dy = random_tensor<T, 2>({c.n, c.out}, rng);
    const auto g = naive::dense_backward(x, layer.weight(), dy);
    const xt::xtensor<T, 2> dx = layer.backward(dy);
    REQUIRE(same_extents(dx, x));
    REQUIRE(same_extents(layer.weight_grad(), layer.weight()));
    REQUIRE(same_extents(layer.bias_grad(), layer.bias()));
    CHECK(max_scaled_error(dx, g.dx, g.dx_magnitude) <= tol);
    CHECK(max_scaled_error(layer.weight_grad(), g.dw, g.dw_magnitude) <= tol);
    CHECK(max_scaled_error(layer.bias_grad(), g.db, g.db_magnitude) <= tol);

    CHECK(identical(layer.predict(x), y));
}

// Small and odd sizes, sizes around the micro-tile (6 or 12 rows, 8 to 32 columns), and sizes
// beyond the cache blocks: K > kc = 256, M > mc (60 or 120 rows), N > nc (768 to 3072).
const std::vector<dense_case> small_cases = {
    {1, 1, 1}, {1, 5, 3}, {4, 7, 2}, {3, 16, 17}, {13, 33, 9}, {2, 64, 65}, {7, 12, 33}, {1, 40, 1},
};
const std::vector<dense_case> large_cases = {
    {125, 300, 20}, // forward: M = 125 > mc, K = 300 > kc
    {130, 70, 300}, // forward: M = 130 > mc; dW: M = 300 > mc, N = 70; dX: M = 130, K = 300 > kc
    {3, 3100, 5},   // dX and dW: N = 3100 > nc (float and double); forward: K = 3100 > kc
};

/// loss = sum(y * R): finite differences of `count` entries of `data` (every entry when
/// count >= size, otherwise a seeded sample) against the analytic gradient `grad`.
double sampled_gradient_error(const std::function<double()>& loss, double* data, const double* grad, std::size_t size,
                              std::size_t count, std::mt19937& rng)
{
    std::vector<std::size_t> idx;
    if (count >= size)
    {
        for (std::size_t i = 0; i < size; ++i)
        {
            idx.push_back(i);
        }
    }
    else
    {
        std::uniform_int_distribution<std::size_t> pick(0, size - 1);
        for (std::size_t i = 0; i < count; ++i)
        {
            idx.push_back(pick(rng));
        }
    }
    std::vector<double> numeric, analytic;
    for (const auto i : idx)
    {
        numeric.push_back(xcnn_test::numeric_gradient(loss, data + i, 1)[0]);
        analytic.push_back(grad[i]);
    }
    return xcnn_test::relative_error(numeric.data(), analytic.data(), numeric.size());
}

void gradient_check(const dense_case& c, std::size_t samples, std::uint32_t seed)
{
    INFO(c.describe());
    std::mt19937 rng(seed);
    Dense<double> layer(c.in, c.out);
    layer.weight() = random_tensor<double, 2>({c.out, c.in}, rng);
    layer.bias() = random_tensor<double, 1>({c.out}, rng);
    auto x = random_tensor<double, 2>({c.n, c.in}, rng);
    const auto r = random_tensor<double, 2>({c.n, c.out}, rng);

    layer.forward(x);
    const xt::xtensor<double, 2> dx = layer.backward(r);
    const xt::xtensor<double, 2> dw = layer.weight_grad();
    const xt::xtensor<double, 1> db = layer.bias_grad();

    const std::function<double()> loss = [&]
    {
        return xcnn_test::weighted_sum(layer.predict(x), r);
    };
    CHECK(sampled_gradient_error(loss, x.data(), dx.data(), x.size(), samples, rng) < 1e-6);
    CHECK(sampled_gradient_error(loss, layer.weight().data(), dw.data(), dw.size(), samples, rng) < 1e-6);
    CHECK(sampled_gradient_error(loss, layer.bias().data(), db.data(), db.size(), samples, rng) < 1e-6);
}

} // namespace

TEST_CASE("Dense: the naive reference and the layer reproduce a hand-computed result", "[dense][naive]")
{
    // y = x W^T + b with x (2, 3), W (2, 3).
    const xt::xtensor<double, 2> x = {{1, 2, 3}, {-1, 0, 2}};
    const xt::xtensor<double, 2> w = {{1, 0, -1}, {0.5, 2, 1}};
    const xt::xtensor<double, 1> b = {0.25, -1};
    const xt::xtensor<double, 2> expected = {{1 - 3 + 0.25, 0.5 + 4 + 3 - 1}, {-1 - 2 + 0.25, -0.5 + 2 - 1}};
    CHECK(identical(naive::dense(x, w, b), expected));

    Dense<double> layer(3, 2);
    layer.weight() = w;
    layer.bias() = b;
    CHECK(identical(layer.forward(x), expected));

    // dX = dY W, dW = dY^T X, db = column sums of dY.
    const xt::xtensor<double, 2> dy = {{1, 0}, {2, -1}};
    layer.backward(dy);
    const xt::xtensor<double, 2> dw = {{1 * 1 + 2 * -1, 1 * 2 + 2 * 0, 1 * 3 + 2 * 2}, {1, 0, -2}};
    const xt::xtensor<double, 1> db = {3, -1};
    const xt::xtensor<double, 2> dx = {{1, 0, -1}, {2 - 0.5, -2, -2 - 1}};
    CHECK(identical(layer.weight_grad(), dw));
    CHECK(identical(layer.bias_grad(), db));
    CHECK(identical(layer.backward(dy), dx));
}

TEST_CASE("Dense<float> matches the naive loops", "[dense]")
{
    std::mt19937 rng(1);
    for (const auto& c : small_cases)
    {
        check_against_naive<float>(c, rng, 1e-5);
    }
    for (const auto& c : large_cases)
    {
        check_against_naive<float>(c, rng, 1e-5);
    }
}

TEST_CASE("Dense<double> matches the naive loops", "[dense]")
{
    std::mt19937 rng(2);
    for (const auto& c : small_cases)
    {
        check_against_naive<double>(c, rng, 1e-12);
    }
    for (const auto& c : large_cases)
    {
        check_against_naive<double>(c, rng, 1e-12);
    }
}

TEST_CASE("Dense backward passes finite-difference gradient checks", "[dense][gradcheck]")
{
    SECTION("every entry, batch 1 and larger")
    {
        gradient_check({1, 4, 3}, 1000000, 10);
        gradient_check({5, 7, 6}, 1000000, 11);
        gradient_check({3, 20, 9}, 1000000, 12);
    }
    SECTION("sampled entries, sizes beyond the GEMM blocks (in = 300, out = 70)")
    {
        gradient_check({2, 300, 70}, 25, 13);
    }
}

TEST_CASE("Dense backward overwrites the gradients instead of accumulating", "[dense]")
{
    std::mt19937 rng(3);
    Dense<double> layer(6, 4);
    const auto x = random_tensor<double, 2>({3, 6}, rng);
    const auto dy1 = random_tensor<double, 2>({3, 4}, rng);
    const auto dy2 = random_tensor<double, 2>({3, 4}, rng);
    layer.forward(x);
    const xt::xtensor<double, 2> dx_a = layer.backward(dy1);
    const xt::xtensor<double, 2> dw_a = layer.weight_grad();
    const xt::xtensor<double, 1> db_a = layer.bias_grad();

    SECTION("the same dy twice gives identical gradients")
    {
        CHECK(identical(layer.backward(dy1), dx_a));
        CHECK(identical(layer.weight_grad(), dw_a));
        CHECK(identical(layer.bias_grad(), db_a));
    }
    SECTION("another dy in between leaves no trace")
    {
        layer.backward(dy2);
        CHECK_FALSE(identical(layer.weight_grad(), dw_a));
        CHECK(identical(layer.backward(dy1), dx_a));
        CHECK(identical(layer.weight_grad(), dw_a));
        CHECK(identical(layer.bias_grad(), db_a));
    }
}

TEST_CASE("Dense reuses its buffers correctly when the batch changes", "[dense]")
{
    std::mt19937 rng(4);
    Dense<double> layer(9, 5);
    for (const std::size_t n : {4, 1, 7, 4})
    {
        INFO("N=" << n);
        const auto x = random_tensor<double, 2>({n, 9}, rng);
        xt::xtensor<double, 2> magnitude;
        const auto expected = naive::dense(x, layer.weight(), layer.bias(), &magnitude);
        CHECK(max_scaled_error(layer.forward(x), expected, magnitude) <= 1e-12);
        const auto dy = random_tensor<double, 2>({n, 5}, rng);
        const auto g = naive::dense_backward(x, layer.weight(), dy);
        const auto& dx = layer.backward(dy);
        REQUIRE(same_extents(dx, x));
        CHECK(max_scaled_error(dx, g.dx, g.dx_magnitude) <= 1e-12);
        CHECK(max_scaled_error(layer.weight_grad(), g.dw, g.dw_magnitude) <= 1e-12);
        CHECK(max_scaled_error(layer.bias_grad(), g.db, g.db_magnitude) <= 1e-12);
    }
}

TEST_CASE("Dense: an empty batch gives an empty output and exactly zero parameter gradients", "[dense]")
{
    std::mt19937 rng(7);
    Dense<double> layer(5, 3);
    layer.forward(random_tensor<double, 2>({2, 5}, rng));
    layer.backward(random_tensor<double, 2>({2, 3}, rng));
    REQUIRE(xt::amax(xt::abs(layer.weight_grad()))() > 0);

    const xt::xtensor<double, 2> x = xt::zeros<double>({0, 5});
    CHECK(layer.forward(x).shape() == (std::array<std::size_t, 2>{0, 3}));
    const xt::xtensor<double, 2> dy = xt::zeros<double>({0, 3});
    CHECK(layer.backward(dy).shape() == x.shape());
    CHECK(identical(layer.weight_grad(), xt::xtensor<double, 2>(xt::zeros<double>({3, 5}))));
    CHECK(identical(layer.bias_grad(), xt::xtensor<double, 1>(xt::zeros<double>({3}))));
}

TEST_CASE("Dense: predict equals forward, also through xt::xarray", "[dense]")
{
    std::mt19937 rng(5);
    Dense<float> layer(11, 3);
    const auto x = random_tensor<float, 2>({4, 11}, rng);
    const xt::xtensor<float, 2> y = layer.forward(x);
    CHECK(identical(layer.predict(x), y));
    const xt::xarray<float> xa = x;
    CHECK(identical(layer.forward(xa), y));
    CHECK(identical(layer.predict(xa), y));
    CHECK(layer.output_shape({4, 11}) == std::vector<std::size_t>{4, 3});
}

TEST_CASE("Dense: assigning weight() and bias() changes the output", "[dense]")
{
    std::mt19937 rng(6);
    Dense<double> layer(4, 3);
    const auto x = random_tensor<double, 2>({2, 4}, rng);
    const xt::xtensor<double, 2> before = layer.forward(x);
    const xt::xtensor<double, 2> w = {{1, 2, 3, 4}, {-1, 0.5, 0, 2}, {0, 0, 0, 0}};
    const xt::xtensor<double, 1> b = {0, 1, -3};
    layer.weight() = w;
    layer.bias() = b;
    const xt::xtensor<double, 2> after = layer.forward(x);
    CHECK_FALSE(identical(after, before));
    xt::xtensor<double, 2> magnitude;
    CHECK(max_scaled_error(after, naive::dense(x, w, b, &magnitude), magnitude) <= 1e-12);
    // The all-zero weight row gives exactly its bias.
    CHECK(after(0, 2) == -3.0);
    CHECK(after(1, 2) == -3.0);
}

TEST_CASE("Dense reports invalid arguments and shapes", "[dense][errors]")
{
    SECTION("zero features at construction: value_error")
    {
        REQUIRE_THROWS_AS(Dense<double>(0, 3), xcnn::value_error);
        REQUIRE_THROWS_WITH(Dense<double>(0, 3), xcnn_test::contains("Dense(0, 3)"));
        REQUIRE_THROWS_AS(Dense<float>(3, 0), xcnn::value_error);
        REQUIRE_THROWS_WITH(Dense<float>(3, 0), xcnn_test::contains("Dense(3, 0)"));
    }
    SECTION("wrong feature count: shape_error naming the layer and the input")
    {
        Dense<double> layer(4, 3);
        const xt::xtensor<double, 2> x = xt::zeros<double>({2, 5});
        REQUIRE_THROWS_AS(layer.forward(x), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("Dense(4, 3)"));
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("(2, 5)"));
        REQUIRE_THROWS_AS(layer.predict(x), xcnn::shape_error);
        REQUIRE_THROWS_AS(layer.output_shape({2, 5}), xcnn::shape_error);
    }
    SECTION("wrong rank through the xt::xarray overload: shape_error")
    {
        Dense<double> layer(4, 3);
        const xt::xarray<double> x3 = xt::zeros<double>({2, 4, 1});
        REQUIRE_THROWS_AS(layer.forward(x3), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x3), xcnn_test::contains("Dense(4, 3)"));
        REQUIRE_THROWS_WITH(layer.forward(x3), xcnn_test::contains("(2, 4, 1)"));
        // A single sample without its batch axis.
        const xt::xarray<double> x1 = xt::zeros<double>({4});
        REQUIRE_THROWS_AS(layer.forward(x1), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x1), xcnn_test::contains("(4,)"));
        REQUIRE_THROWS_AS(layer.predict(x1), xcnn::shape_error);
        REQUIRE_THROWS_AS(layer.output_shape({4}), xcnn::shape_error);
    }
    SECTION("backward before forward, or after predict: xcnn::error")
    {
        Dense<double> layer(4, 3);
        const xt::xtensor<double, 2> dy = xt::zeros<double>({2, 3});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("Dense(4, 3)"));
        const xt::xtensor<double, 2> x = xt::zeros<double>({2, 4});
        layer.forward(x);
        REQUIRE_NOTHROW(layer.backward(dy));
        layer.predict(x);
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("Dense(4, 3)"));
    }
    SECTION("dY of the wrong shape: shape_error naming both shapes")
    {
        Dense<double> layer(4, 3);
        const xt::xtensor<double, 2> x = xt::zeros<double>({2, 4});
        layer.forward(x);
        const xt::xtensor<double, 2> dy = xt::zeros<double>({2, 4});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("Dense(4, 3)"));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 4)"));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 3)"));
        const xt::xtensor<double, 2> dy_batch = xt::zeros<double>({3, 3});
        REQUIRE_THROWS_AS(layer.backward(dy_batch), xcnn::shape_error);
    }
    SECTION("weight or bias assigned with the wrong shape: shape_error at the next forward")
    {
        Dense<double> layer(4, 3);
        const xt::xtensor<double, 2> x = xt::zeros<double>({2, 4});
        layer.weight() = xt::zeros<double>({4, 3}); // transposed
        REQUIRE_THROWS_AS(layer.forward(x), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("Dense(4, 3)"));
        REQUIRE_THROWS_WITH(layer.forward(x),
                            xcnn_test::contains("weight has shape (4, 3) but must have shape (3, 4)"));
        layer.weight() = xt::zeros<double>({3, 4});
        layer.bias() = xt::zeros<double>({4});
        REQUIRE_THROWS_AS(layer.forward(x), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x), xcnn_test::contains("bias has shape (4,) but must have shape (3,)"));
    }
}
