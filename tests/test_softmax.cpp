// xcnn::softmax: PyTorch parity in double (tests/fixtures/torch_activations.py, rows with huge,
// equal and underflowing logits), a naive long-double reference, rows summing to 1, the same
// values as SoftmaxCrossEntropy::probabilities(), expressions, an empty batch and the errors.
#include "catch_compat.hpp"

#include "support/activation_checks.hpp"
#include "support/naive_layers.hpp"
#include "support/require_error.hpp"

#include <xcnn/loss/softmax.hpp>
#include <xcnn/xcnn.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace
{

using xcnn_test::identical;
using xcnn_test::random_tensor;

/// softmax of each row from the definition, exp(x) / sum exp(x), in long double (no shift: the
/// inputs of this reference stay below exp's overflow).
template <class T>
xt::xtensor<double, 2> naive_softmax(const xt::xtensor<T, 2>& logits)
{
    xt::xtensor<double, 2> p(logits.shape());
    for (std::size_t i = 0; i < logits.shape()[0]; ++i)
    {
        long double sum = 0;
        for (std::size_t c = 0; c < logits.shape()[1]; ++c)
        {
            sum += std::exp(static_cast<long double>(logits(i, c)));
        }
        for (std::size_t c = 0; c < logits.shape()[1]; ++c)
        {
            p(i, c) = static_cast<double>(std::exp(static_cast<long double>(logits(i, c))) / sum);
        }
    }
    return p;
}

} // namespace

TEST_CASE("softmax matches torch.softmax in double, huge and equal logits included", "[softmax][torch]")
{
    const auto logits = xcnn_test::activation_checks::fixture<2>("logits");
    const auto expected = xcnn_test::activation_checks::fixture<2>("softmax");
    const xt::xtensor<double, 2> p = xcnn::softmax(logits);
    const double error = xcnn_test::activation_checks::parity_error(p, expected);
    UNSCOPED_INFO("softmax: largest relative difference to PyTorch " << error);
    CHECK(error < 1e-9);
    // The row of ±1000, ±1e300: exactly one 1, the rest 0 (or as good as), nothing NaN.
    CHECK(p(1, 4) == 1.0);
    // exp(-745 - (-745)) = 1 for every class: 1/7 each, not 0 / 0.
    for (std::size_t c = 0; c < 7; ++c)
    {
        CHECK(std::abs(p(2, c) - 1.0 / 7.0) < 1e-16);
    }
}

TEST_CASE("softmax rows sum to 1 and match a long-double reference, in float and double", "[softmax]")
{
    std::mt19937 rng(12);
    const auto x32 = random_tensor<float, 2>({9, 10}, rng, -20.0, 20.0);
    const auto x64 = random_tensor<double, 2>({9, 10}, rng, -20.0, 20.0);
    const xt::xtensor<float, 2> p32 = xcnn::softmax(x32);
    const xt::xtensor<double, 2> p64 = xcnn::softmax(x64);
    CHECK(xcnn_test::max_abs_diff(p32, naive_softmax(x32)) < 1e-6);
    CHECK(xcnn_test::max_abs_diff(p64, naive_softmax(x64)) < 1e-15);
    for (std::size_t i = 0; i < 9; ++i)
    {
        double s32 = 0, s64 = 0;
        for (std::size_t c = 0; c < 10; ++c)
        {
            CHECK(p32(i, c) >= 0.0f);
            s32 += static_cast<double>(p32(i, c));
            s64 += p64(i, c);
        }
        CHECK(std::abs(s32 - 1.0) < 1e-6);
        CHECK(std::abs(s64 - 1.0) < 1e-14);
    }
}

TEST_CASE("softmax is stable for logits far beyond exp's range, and shift-invariant", "[softmax]")
{
    const xt::xtensor<float, 2> logits = {{1000.0f, 999.0f, -1000.0f}, {-1e30f, -1e30f, -1e30f}, {88.0f, 89.0f, 0.0f}};
    const xt::xtensor<float, 2> p = xcnn::softmax(logits);
    for (const float v : p)
    {
        CHECK(std::isfinite(v));
    }
    CHECK(std::abs(p(0, 0) - 0.7310586f) < 1e-6f);
    CHECK(std::abs(p(0, 1) - 0.2689414f) < 1e-6f);
    CHECK(p(0, 2) == 0.0f);
    CHECK(p(1, 0) == p(1, 2));
    CHECK(std::abs(p(1, 0) - 1.0f / 3.0f) < 1e-7f);
    const xt::xtensor<float, 2> shifted = logits - 1000.0f;
    CHECK(xcnn_test::max_abs_diff(xcnn::softmax(xt::xtensor<float, 2>(xt::view(shifted, xt::range(0, 1)))),
                                  xt::xtensor<float, 2>(xt::view(p, xt::range(0, 1)))) < 1e-7);
}

TEST_CASE("softmax propagates a NaN to its row only, as torch.softmax does", "[softmax]")
{
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const xt::xtensor<double, 2> logits = {{nan, 1.0, 2.0}, {0.0, 1.0, 2.0}};
    const auto p = xcnn::softmax(logits);
    for (std::size_t c = 0; c < 3; ++c)
    {
        CHECK(std::isnan(p(0, c)));
        CHECK(std::isfinite(p(1, c)));
    }
}

TEST_CASE("softmax equals SoftmaxCrossEntropy::probabilities() bit for bit (one row kernel)", "[softmax][loss]")
{
    std::mt19937 rng(13);
    const auto logits = random_tensor<float, 2>({6, 10}, rng, -5.0, 5.0);
    const xt::xtensor<std::int64_t, 1> labels = {0, 3, 9, 2, 2, 7};
    xcnn::SoftmaxCrossEntropy<float> loss;
    (void)loss.forward(logits, labels);
    CHECK(identical(xcnn::softmax(logits), loss.probabilities()));
}

TEST_CASE("softmax takes expressions, an empty batch, and rejects other ranks and no classes", "[softmax][errors]")
{
    std::mt19937 rng(14);
    const auto logits = random_tensor<double, 2>({4, 5}, rng);
    const xt::xtensor<double, 2> p = xcnn::softmax(logits);
    const xt::xarray<double> xa = logits;
    CHECK(identical(xcnn::softmax(xa), p));
    CHECK(identical(xcnn::softmax(xt::view(logits, xt::all(), xt::all())), p));
    const xt::xtensor<double, 2> empty = xt::zeros<double>({std::size_t(0), std::size_t(5)});
    CHECK(xcnn::softmax(empty).shape()[0] == 0);

    using xcnn_test::require_error;
    const xt::xtensor<double, 2> no_classes = xt::zeros<double>({std::size_t(3), std::size_t(0)});
    require_error<xcnn::shape_error>([&] { (void)xcnn::softmax(no_classes); }, {"softmax", "(3, 0)", "no classes"});
    const xt::xarray<double> rank3 = xt::zeros<double>({2, 3, 4});
    require_error<xcnn::shape_error>([&] { (void)xcnn::softmax(rank3); },
                                     {"softmax", "rank 2", "(N, classes)", "(2, 3, 4)"});
}
