// Tests of the default initialisation of Conv2D and Dense (PyTorch's: weights and biases
// U(-1/sqrt(fan_in), 1/sqrt(fan_in))) and of its reproducibility.
#include "catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace
{

template <class Tensor>
std::vector<double> values_of(const Tensor& t)
{
    return std::vector<double>(t.begin(), t.end());
}

/// Checks that `v` looks like n independent draws of U(-bound, bound):
///  - every value within [-bound, bound] (up to the rounding of bound to the scalar type);
///  - both ends reached: max > q * bound and min < -q * bound, where q is chosen so that a true
///    uniform sample misses with probability ((1 + q) / 2)^n = 1e-9 (capped at 0.99);
///  - mean within 5 standard errors of 0: sd(mean) = bound / sqrt(3 n);
///  - mean of squares within 5 standard errors of bound^2 / 3: sd = bound^2 sqrt(4 / (45 n));
///  - each of 10 equal bins holds n / 10 within 5 binomial standard deviations (n >= 1000).
void check_uniform(const std::vector<double>& v, double bound, const std::string& what)
{
    INFO(what << ": " << v.size() << " values, bound " << bound);
    REQUIRE(!v.empty());
    const double n = static_cast<double>(v.size());
    const double slack = bound * 1e-6; // a float bound is 1/sqrt(fan_in) rounded
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    CHECK(*hi <= bound + slack);
    CHECK(*lo >= -bound - slack);

    const double q = std::min(0.99, 2.0 * std::exp(std::log(1e-9) / n) - 1.0);
    CAPTURE(q, *lo, *hi);
    CHECK(*hi > q * bound);
    CHECK(*lo < -q * bound);

    double sum = 0, sum_sq = 0;
    for (double x : v)
    {
        sum += x;
        sum_sq += x * x;
    }
    const double mean = sum / n, mean_sq = sum_sq / n;
    CAPTURE(mean, mean_sq);
    CHECK(std::abs(mean) < 5.0 * bound / std::sqrt(3.0 * n));
    CHECK(std::abs(mean_sq - bound * bound / 3.0) < 5.0 * bound * bound * std::sqrt(4.0 / (45.0 * n)));

    if (v.size() >= 1000)
    {
        std::vector<double> bins(10, 0.0);
        for (double x : v)
        {
            const auto b = static_cast<std::size_t>(std::clamp((x + bound) / (2 * bound) * 10.0, 0.0, 9.0));
            bins[b] += 1;
        }
        const double expected = n / 10.0, sd = std::sqrt(n * 0.1 * 0.9);
        for (std::size_t b = 0; b < 10; ++b)
        {
            CAPTURE(b, bins[b], expected);
            CHECK(std::abs(bins[b] - expected) < 5.0 * sd);
        }
    }
}

template <class Layer>
void check_layer_init(const Layer& layer, std::size_t fan_in)
{
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    check_uniform(values_of(layer.weight()), bound, layer.name() + " weight");
    check_uniform(values_of(layer.bias()), bound, layer.name() + " bias");
}

} // namespace

TEST_CASE("Conv2D default initialisation is U(-1/sqrt(fan_in), 1/sqrt(fan_in))", "[init]")
{
    SECTION("square kernel, float")
    {
        const xcnn::Conv2D<float> conv(4, 256, 3); // fan_in 36: 9216 weights, 256 biases
        check_layer_init(conv, 4 * 3 * 3);
    }
    SECTION("rectangular kernel, double; fan_in counts in_channels * KH * KW, not out_channels")
    {
        const xcnn::Conv2D<double> conv(xcnn::Conv2DOptions(3, 400, {3, 5}).stride(2).padding(1)); // fan_in 45
        check_layer_init(conv, 3 * 3 * 5);
    }
    SECTION("after reset_parameters(rng)")
    {
        xcnn::Conv2D<float> conv(16, 64, 3); // fan_in 144
        std::mt19937 rng(41);
        conv.reset_parameters(rng);
        check_layer_init(conv, 16 * 3 * 3);
    }
}

TEST_CASE("Dense default initialisation is U(-1/sqrt(fan_in), 1/sqrt(fan_in))", "[init]")
{
    SECTION("float")
    {
        const xcnn::Dense<float> dense(64, 512); // fan_in 64
        check_layer_init(dense, 64);
    }
    SECTION("double, fan_in much smaller than fan_out")
    {
        // A bound taken from fan_out (2000) would be 22x too small and fail the spread check.
        const xcnn::Dense<double> dense(4, 2000);
        check_layer_init(dense, 4);
    }
    SECTION("after Sequential::reset_parameters(seed)")
    {
        xcnn::Sequential net{xcnn::Flatten<float>{}, xcnn::Dense<float>(300, 1000)};
        net.reset_parameters(42u);
        check_layer_init(net.get<1>(), 300);
    }
}

TEST_CASE("Initialisation is reproducible", "[init]")
{
    SECTION("layers constructed alike are bit-identical")
    {
        const xcnn::Conv2D<float> a(3, 8, 3), b(3, 8, 3);
        CHECK(values_of(a.weight()) == values_of(b.weight()));
        CHECK(values_of(a.bias()) == values_of(b.bias()));
        const xcnn::Dense<double> c(10, 7), d(10, 7);
        CHECK(values_of(c.weight()) == values_of(d.weight()));
        CHECK(values_of(c.bias()) == values_of(d.bias()));
    }
    SECTION("the same seed gives bit-identical parameters, another seed different ones")
    {
        xcnn::Conv2D<float> a(3, 8, 3), b(3, 8, 3), c(3, 8, 3);
        std::mt19937 ra(5), rb(5), rc(6);
        a.reset_parameters(ra);
        b.reset_parameters(rb);
        c.reset_parameters(rc);
        CHECK(values_of(a.weight()) == values_of(b.weight()));
        CHECK(values_of(a.bias()) == values_of(b.bias()));
        CHECK(values_of(a.weight()) != values_of(c.weight()));
        CHECK(values_of(a.bias()) != values_of(c.bias()));

        xcnn::Dense<double> d(10, 7), e(10, 7), f(10, 7);
        std::mt19937 rd(5), re(5), rf(6);
        d.reset_parameters(rd);
        e.reset_parameters(re);
        f.reset_parameters(rf);
        CHECK(values_of(d.weight()) == values_of(e.weight()));
        CHECK(values_of(d.bias()) == values_of(e.bias()));
        CHECK(values_of(d.weight()) != values_of(f.weight()));
    }
    SECTION("layers of one network drawn from one generator differ")
    {
        xcnn::Sequential net{xcnn::Dense<float>(16, 16), xcnn::ReLU<float>{}, xcnn::Dense<float>(16, 16),
                             xcnn::ReLU<float>{}, xcnn::Dense<float>(16, 16)};
        net.reset_parameters(17u);
        const auto w0 = values_of(net.get<0>().weight()), w2 = values_of(net.get<2>().weight()),
                   w4 = values_of(net.get<4>().weight());
        CHECK(w0 != w2);
        CHECK(w2 != w4);
        CHECK(w0 != w4);
        CHECK(values_of(net.get<0>().bias()) != values_of(net.get<2>().bias()));
        CHECK(values_of(net.get<2>().bias()) != values_of(net.get<4>().bias()));
        // No element is shared, not just the tensors as a whole (continuous draws never repeat
        // in practice; a layer re-seeded from the same state would repeat all of them).
        std::size_t equal = 0;
        for (std::size_t i = 0; i < w0.size(); ++i)
        {
            equal += (w0[i] == w2[i]) + (w2[i] == w4[i]);
        }
        CHECK(equal == 0);
        for (const auto* w : {&w0, &w2, &w4})
        {
            check_uniform(*w, 0.25, "a 16 x 16 Dense of the network");
        }

        SECTION("and the whole network is reproducible from the seed")
        {
            xcnn::Sequential again{xcnn::Dense<float>(16, 16), xcnn::ReLU<float>{}, xcnn::Dense<float>(16, 16),
                                   xcnn::ReLU<float>{}, xcnn::Dense<float>(16, 16)};
            again.reset_parameters(17u);
            CHECK(values_of(again.get<0>().weight()) == w0);
            CHECK(values_of(again.get<2>().weight()) == w2);
            CHECK(values_of(again.get<4>().weight()) == w4);
            CHECK(values_of(again.get<4>().bias()) == values_of(net.get<4>().bias()));
        }
    }
}
