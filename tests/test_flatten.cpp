// Flatten: row-major (C, H, W) order against naive loops, backward restoring the shape, a
// finite-difference check and the error cases.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"

#include <xcnn/layers/flatten.hpp>

#include <array>
#include <cstddef>
#include <functional>
#include <random>
#include <vector>

namespace
{

using xcnn::Flatten;
namespace naive = xcnn_test::naive;
using xcnn_test::identical;
using xcnn_test::random_tensor;

template <class T>
void check_shapes()
{
    std::mt19937 rng(sizeof(T) + 30);
    Flatten<T> layer; // reused across shapes, growing and shrinking
    const std::vector<std::array<std::size_t, 4>> shapes = {{2, 3, 4, 5}, {1, 1, 1, 1}, {3, 1, 7, 2}, {4, 6, 1, 1},
                                                            {1, 2, 3, 1}, {5, 2, 3, 4}, {2, 3, 4, 5}};
    for (const auto& s : shapes)
    {
        INFO("input (" << s[0] << ", " << s[1] << ", " << s[2] << ", " << s[3] << ")");
        const auto x = random_tensor<T, 4>(s, rng);
        const xt::xtensor<T, 2> y = layer.forward(x);
        CHECK(y.shape() == (std::array<std::size_t, 2>{s[0], s[1] * s[2] * s[3]}));
        CHECK(identical(y, naive::flatten(x)));
        CHECK(layer.output_shape({s[0], s[1], s[2], s[3]}) == std::vector<std::size_t>{s[0], s[1] * s[2] * s[3]});

        // Backward is the inverse reshape: dx(n, c, h, w) = dy(n, (c * H + h) * W + w).
        const auto dy = random_tensor<T, 2>({s[0], s[1] * s[2] * s[3]}, rng);
        const auto& dx = layer.backward(dy);
        REQUIRE(dx.shape() == s);
        bool all_equal = true;
        for (std::size_t n = 0; n < s[0]; ++n)
            for (std::size_t c = 0; c < s[1]; ++c)
                for (std::size_t h = 0; h < s[2]; ++h)
                    for (std::size_t w = 0; w < s[3]; ++w)
                        all_equal = all_equal && dx(n, c, h, w) == dy(n, (c * s[2] + h) * s[3] + w);
        CHECK(all_equal);
        CHECK(identical(naive::flatten(dx), dy));
        CHECK(identical(layer.predict(x), y));
    }
}

} // namespace

TEST_CASE("Flatten<float> flattens in row-major (C, H, W) order and backward restores the shape", "[flatten]")
{
    check_shapes<float>();
}

TEST_CASE("Flatten<double> flattens in row-major (C, H, W) order and backward restores the shape", "[flatten]")
{
    check_shapes<double>();
}

TEST_CASE("Flatten: known order", "[flatten]")
{
    // x(0, c, h, w) = 100 c + 10 h + w: the output lists channel 0 row by row, then channel 1.
    xt::xtensor<double, 4> x({1, 2, 2, 3});
    for (std::size_t c = 0; c < 2; ++c)
        for (std::size_t h = 0; h < 2; ++h)
            for (std::size_t w = 0; w < 3; ++w)
                x(0, c, h, w) = static_cast<double>(100 * c + 10 * h + w);
    const xt::xtensor<double, 2> expected = {{0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112}};
    Flatten<double> layer;
    CHECK(identical(layer.forward(x), expected));
    CHECK(identical(layer.backward(expected), x));
    // Through the xt::xarray overloads too.
    const xt::xarray<double> xa = x;
    CHECK(identical(layer.forward(xa), expected));
    CHECK(identical(layer.predict(xa), expected));
}

TEST_CASE("Flatten passes a finite-difference gradient check", "[flatten][gradcheck]")
{
    std::mt19937 rng(31);
    Flatten<double> layer;
    auto x = random_tensor<double, 4>({2, 3, 4, 2}, rng);
    const auto r = random_tensor<double, 2>({2, 24}, rng);
    CHECK(xcnn_test::check_input_gradient(layer, x, r).relative_error < 1e-6);
}

TEST_CASE("Flatten backward overwrites and follows the latest forward", "[flatten]")
{
    std::mt19937 rng(32);
    Flatten<float> layer;
    const auto x1 = random_tensor<float, 4>({2, 3, 2, 2}, rng);
    const auto x2 = random_tensor<float, 4>({3, 1, 2, 5}, rng);
    layer.forward(x1);
    const auto dy1 = random_tensor<float, 2>({2, 12}, rng);
    const xt::xtensor<float, 4> a = layer.backward(dy1);
    CHECK(identical(layer.backward(dy1), a));
    layer.forward(x2);
    const auto dy2 = random_tensor<float, 2>({3, 10}, rng);
    CHECK(layer.backward(dy2).shape() == (std::array<std::size_t, 4>{3, 1, 2, 5}));
    REQUIRE_THROWS_AS(layer.backward(dy1), xcnn::shape_error);
}

TEST_CASE("Flatten reports invalid shapes", "[flatten][errors]")
{
    SECTION("wrong rank through the xt::xarray overload: shape_error")
    {
        Flatten<double> layer;
        const xt::xarray<double> x3 = xt::zeros<double>({2, 3, 4});
        REQUIRE_THROWS_AS(layer.forward(x3), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x3), xcnn_test::contains("Flatten()"));
        REQUIRE_THROWS_WITH(layer.forward(x3), xcnn_test::contains("(2, 3, 4)"));
        REQUIRE_THROWS_AS(layer.predict(x3), xcnn::shape_error);
        const xt::xarray<double> x2 = xt::zeros<double>({2, 12});
        REQUIRE_THROWS_AS(layer.forward(x2), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.forward(x2), xcnn_test::contains("(2, 12)"));
        REQUIRE_THROWS_AS(layer.output_shape({2, 3, 4}), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.output_shape({2, 3, 4}), xcnn_test::contains("Flatten()"));
    }
    SECTION("backward before forward: xcnn::error")
    {
        Flatten<double> layer;
        const xt::xtensor<double, 2> dy = xt::zeros<double>({2, 12});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("Flatten()"));
    }
    SECTION("dY of the wrong shape: shape_error naming both shapes")
    {
        Flatten<double> layer;
        const xt::xtensor<double, 4> x = xt::zeros<double>({2, 3, 2, 2});
        layer.forward(x);
        const xt::xtensor<double, 2> dy = xt::zeros<double>({2, 13});
        REQUIRE_THROWS_AS(layer.backward(dy), xcnn::shape_error);
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("Flatten()"));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 13)"));
        REQUIRE_THROWS_WITH(layer.backward(dy), xcnn_test::contains("(2, 12)"));
        const xt::xtensor<double, 2> dy_batch = xt::zeros<double>({3, 12});
        REQUIRE_THROWS_AS(layer.backward(dy_batch), xcnn::shape_error);
    }
}
