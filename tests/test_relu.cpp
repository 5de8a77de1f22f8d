// ReLU: ranks 1, 2 and 4 through one object, forward/backward against naive loops, the
// gradient at 0, finite-difference checks away from 0, and the error cases.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"

#include <xcnn/layers/relu.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <random>
#include <vector>

namespace
{

using xcnn::ReLU;
namespace naive = xcnn_test::naive;
using xcnn_test::identical;
using xcnn_test::random_tensor;

/// Random values in (-1, 1) with about one in eight set to exactly 0 or -0.
template <class T, std::size_t N>
xt::xtensor<T, N> input_with_zeros(const std::array<std::size_t, N>& shape, std::mt19937& rng)
{
    auto x = random_tensor<T, N>(shape, rng);
    std::uniform_int_distribution<int> pick(0, 15);
    for (auto& v : x)
    {
        const int p = pick(rng);
        v = p == 0 ? T(0) : p == 1 ? -T(0) : v;
    }
    return x;
}

/// forward/predict/backward of `layer` on one rank against the naive loops (exact).
template <class T, std::size_t N>
void check_rank(ReLU<T>& layer, const std::array<std::size_t, N>& shape, std::mt19937& rng)
{
    INFO("rank " << N);
    const auto x = input_with_zeros<T, N>(shape, rng);
    const auto expected = naive::relu(x);
    const xt::xtensor<T, N> y = layer.forward(x);
    CHECK(identical(y, expected));
    CHECK(layer.output_shape(std::vector<std::size_t>(shape.begin(), shape.end())) ==
          std::vector<std::size_t>(shape.begin(), shape.end()));

    const auto dy = random_tensor<T, N>(shape, rng, 0.5, 1.5); // nonzero everywhere
    const xt::xtensor<T, N> dx = layer.backward(dy);
    CHECK(identical(dx, naive::relu_backward(x, dy)));

    // The subgradient at exactly 0 (either sign) is 0, as in PyTorch; elsewhere dy or 0.
    std::size_t zeros = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        const T v = x.data()[i];
        if (v == T(0))
        {
            ++zeros;
            CHECK(dx.data()[i] == T(0));
            CHECK(y.data()[i] == T(0));
        }
        else
        {
            CHECK(dx.data()[i] == (v > T(0) ? dy.data()[i] : T(0)));
        }
    }
    CHECK(zeros > 0);
    CHECK(identical(layer.predict(x), y));
}

template <class T>
void check_ranks()
{
    std::mt19937 rng(sizeof(T));
    ReLU<T> layer; // one object for every rank
    check_rank<T, 1>(layer, {37}, rng);
    check_rank<T, 2>(layer, {5, 13}, rng);
    check_rank<T, 4>(layer, {2, 3, 5, 7}, rng);
    check_rank<T, 1>(layer, {64}, rng); // back to rank 1, another length
    check_rank<T, 4>(layer, {1, 2, 3, 3}, rng);
    check_rank<T, 2>(layer, {5, 13}, rng);
}

} // namespace

TEST_CASE("ReLU<float> on ranks 1, 2 and 4 with one object matches the naive loops", "[relu]")
{
    check_ranks<float>();
}

TEST_CASE("ReLU<double> on ranks 1, 2 and 4 with one object matches the naive loops", "[relu]")
{
    check_ranks<double>();
}

TEST_CASE("ReLU: known values", "[relu]")
{
    ReLU<double> layer;
    const xt::xtensor<double, 1> x = {-2.0,
                                      -1e-300,
                                      -0.0,
                                      0.0,
                                      1e-300,
                                      3.5,
                                      -std::numeric_limits<double>::infinity(),
                                      std::numeric_limits<double>::infinity()};
    const xt::xtensor<double, 1> y = {0, 0, 0, 0, 1e-300, 3.5, 0, std::numeric_limits<double>::infinity()};
    CHECK(identical(layer.forward(x), y));
    const xt::xtensor<double, 1> dy = {1, 2, 3, 4, 5, 6, 7, 8};
    const xt::xtensor<double, 1> dx = {0, 0, 0, 0, 5, 6, 0, 8};
    CHECK(identical(layer.backward(dy), dx));
}

TEST_CASE("ReLU backward passes a finite-difference gradient check away from 0", "[relu][gradcheck]")
{
    std::mt19937 rng(21);
    ReLU<double> layer;
    auto x = random_tensor<double, 4>({2, 3, 4, 5}, rng);
    for (auto& v : x)
    {
        // Keep |x| > 1e-3, far beyond the finite-difference step, so no value crosses the kink.
        if (std::abs(v) < 1e-2)
        {
            v = v < 0 ? v - 1e-2 : v + 1e-2;
        }
    }
    const auto r = random_tensor<double, 4>({2, 3, 4, 5}, rng);
    CHECK(xcnn_test::check_input_gradient(layer, x, r).relative_error < 1e-6);

    SECTION("rank 2")
    {
        auto x2 = random_tensor<double, 2>({6, 7}, rng, 0.01, 1.0);
        for (std::size_t i = 0; i < x2.size(); i += 2)
        {
            x2.data()[i] = -x2.data()[i];
        }
        const auto r2 = random_tensor<double, 2>({6, 7}, rng);
        CHECK(xcnn_test::check_input_gradient(layer, x2, r2).relative_error < 1e-6);
    }
}

TEST_CASE("ReLU backward overwrites, and follows the latest forward of each rank", "[relu]")
{
    std::mt19937 rng(22);
    ReLU<float> layer;
    const auto x1 = random_tensor<float, 2>({4, 6}, rng);
    const auto x2 = random_tensor<float, 2>({4, 6}, rng);
    const auto dy = random_tensor<float, 2>({4, 6}, rng);
    layer.forward(x1);
    const xt::xtensor<float, 2> a = layer.backward(dy);
    CHECK(identical(layer.backward(dy), a));
    layer.forward(x2);
    CHECK(identical(layer.backward(dy), naive::relu_backward(x2, dy)));
}

TEST_CASE("ReLU reports misuse", "[relu][errors]")
{
    SECTION("backward before any forward: xcnn::error")
    {
        ReLU<double> layer;
        const xt::xtensor<double, 2> dy = xt::zeros<double>({2, 3});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("ReLU()"));
    }
    SECTION("backward of another rank than the last forward: xcnn::error")
    {
        ReLU<double> layer;
        const xt::xtensor<double, 2> x2 = xt::ones<double>({2, 3});
        const xt::xtensor<double, 4> x4 = xt::ones<double>({1, 2, 2, 2});
        layer.forward(x2);
        layer.forward(x4);
        const xt::xtensor<double, 2> dy2 = xt::ones<double>({2, 3});
        REQUIRE_THROWS_AS(layer.backward(dy2), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy2), xcnn_test::contains("ReLU()"));
        REQUIRE_THROWS_WITH(layer.backward(dy2), xcnn_test::contains("rank-2"));
        const xt::xtensor<double, 4> dy4 = xt::ones<double>({1, 2, 2, 2});
        REQUIRE_NOTHROW(layer.backward(dy4));
    }
    SECTION("backward after predict: xcnn::error, as for the other layers")
    {
        // forward(x1) then predict(x2): a gradient masked by x2 would be silently wrong for x1.
        ReLU<double> layer;
        const xt::xtensor<double, 1> x1 = {1, -1, 1};
        const xt::xtensor<double, 1> x2 = {-1, 1, -1};
        const xt::xtensor<double, 1> dy = {1, 1, 1};
        layer.forward(x1);
        REQUIRE_NOTHROW(layer.backward(dy));
        layer.predict(x2);
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("ReLU()"));
    }
    SECTION("dY of the wrong shape: shape_error naming both shapes")
    {
        ReLU<double> layer;
        const xt::xtensor<double, 4> x = xt::ones<double>({2, 3, 4, 5});
        layer.forward(x);
        const xt::xtensor<double, 4> dy = xt::ones<double>({2, 3, 5, 4});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("ReLU()"));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 3, 5, 4)"));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 3, 4, 5)"));
    }
}

TEST_CASE("ReLU propagates NaN forward and gives it a zero gradient, as PyTorch does", "[relu]")
{
    const double nan = std::numeric_limits<double>::quiet_NaN();
    xcnn::ReLU<double> relu;
    xt::xtensor<double, 1> x = {nan, -1.0, 2.0};
    const auto& y = relu.forward(x);
    CHECK(std::isnan(y(0)));
    CHECK(y(1) == 0.0);
    CHECK(y(2) == 2.0);
    const xt::xtensor<double, 1> dy = {5.0, 6.0, 7.0};
    const auto& dx = relu.backward(dy);
    CHECK(dx(0) == 0.0);
    CHECK(dx(1) == 0.0);
    CHECK(dx(2) == 7.0);
}
