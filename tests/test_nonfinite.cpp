// Non-finite values in training: SGD refuses a step whose gradients or parameters hold a NaN or
// an infinity, with numeric_error naming the step, the parameter and its layer, and changes
// nothing; under nonfinite_policy::skip_step it skips and counts the step instead, and the run
// continues exactly as if the bad batch had never been seen. The loss propagates non-finite
// logits (PyTorch's behaviour) so that the optimizer's policy decides.
#include "catch_compat.hpp"

#include "support/error_of.hpp"
#include "support/training_state.hpp"

#include <xcnn/xcnn.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>

namespace
{

using xcnn_test::contains;
using xcnn_test::error_of;

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_f = std::numeric_limits<float>::infinity();

} // namespace

TEST_CASE("Sequential names the layer of each parameter")
{
    auto net = xcnn_test::small_net();
    const auto params = net.parameters();
    REQUIRE(params.size() == 4);
    CHECK(params[0].name() == "0.weight");
    CHECK(params[0].layer() == net.get<0>().name());
    CHECK(params[3].name() == "4.bias");
    CHECK(params[3].layer() == "Dense(18, 3)");
    CHECK(net.get<4>().parameters()[0].layer().empty()); // a lone layer's handles carry no description

    xcnn::Sequential nested{xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3), xcnn::ReLU<float>{}}, xcnn::Flatten<float>{},
                            xcnn::Dense<float>(2 * 6 * 6, 3)};
    const auto inner = nested.parameters();
    REQUIRE(inner.size() == 4);
    CHECK(inner[0].name() == "0.0.weight");
    CHECK(inner[0].layer() == nested.get<0>().get<0>().name()); // the innermost layer, not the Sequential
    CHECK(inner[2].layer() == "Dense(72, 3)");
}

TEST_CASE("a NaN in the input: SGD raises naming the step and the parameter, nothing changes")
{
    auto net = xcnn_test::small_net();
    net.reset_parameters(1u);
    std::mt19937 rng(2);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.1f, 0.9f, 1e-3f);
    CHECK(sgd.nonfinite_policy() == xcnn::nonfinite_policy::raise);
    for (int i = 0; i < 2; ++i)
    {
        xcnn_test::compute_gradients(net, loss, xcnn_test::random_batch(4, rng));
        REQUIRE(sgd.step());
    }
    REQUIRE(sgd.steps() == 2);

    auto bad = xcnn_test::random_batch(4, rng);
    bad.images(1, 0, 3, 4) = nan_f;
    CHECK(std::isnan(xcnn_test::compute_gradients(net, loss, bad)));
    const auto params_before = xcnn_test::parameter_bytes(net);
    const auto momentum_before = xcnn_test::momentum_bytes(sgd);

    CHECK_THROWS_AS(sgd.step(), xcnn::numeric_error);
    const std::string message = error_of([&] { sgd.step(); });
    INFO(message);
    CHECK_THAT(message,
               contains("SGD step 3: non-finite gradient in parameter '0.weight' (" + net.get<0>().name() + "): "));
    CHECK_THAT(message, contains(" of 18 elements "));
    CHECK_THAT(message, contains("of 4 gradients are affected"));
    CHECK_THAT(message, contains("no parameter was changed"));
    CHECK(xcnn_test::parameter_bytes(net) == params_before);
    CHECK(xcnn_test::momentum_bytes(sgd) == momentum_before);
    CHECK(sgd.steps() == 2);
    CHECK(sgd.skipped_steps() == 0);

    // The run can go on with good data: the failed step left no trace.
    xcnn_test::compute_gradients(net, loss, xcnn_test::random_batch(4, rng));
    CHECK(sgd.step());
    CHECK(sgd.steps() == 3);
    CHECK(xcnn_test::parameter_bytes(net) != params_before);
}

TEST_CASE("an infinite weight is named before the gradients it poisons")
{
    auto net = xcnn_test::small_net();
    net.reset_parameters(3u);
    std::mt19937 rng(4);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.1f);
    net.get<4>().weight()(1, 2) = inf_f; // flat index 1 * 18 + 2 of the (3, 18) weight
    xcnn_test::compute_gradients(net, loss, xcnn_test::random_batch(4, rng));
    const auto before = xcnn_test::parameter_bytes(net);
    const std::string message = error_of([&] { sgd.step(); });
    CHECK(message == "SGD step 1: non-finite value in parameter '4.weight' (Dense(18, 3)): 1 of 54 elements is not "
                     "finite, the first at index 20 (inf); no parameter was changed");
    CHECK(xcnn_test::parameter_bytes(net) == before);
    CHECK(sgd.steps() == 0);
}

TEST_CASE("a non-finite gradient of one parameter is found wherever it is")
{
    const std::size_t which = GENERATE(0, 1, 2, 3);
    // An index, not the values: Catch2 v2's GENERATE would keep a reference to the temporary -inf.
    const float bad_value = std::array<float, 3>{nan_f, inf_f, -inf_f}[GENERATE(0u, 1u, 2u)];
    CAPTURE(which, bad_value);
    auto net = xcnn_test::small_net();
    net.reset_parameters(5u);
    std::mt19937 rng(6);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.1f, 0.5f);
    xcnn_test::compute_gradients(net, loss, xcnn_test::random_batch(4, rng));
    auto params = net.parameters();
    const std::size_t index = params[which].size() - 1;
    params[which].grad_data()[index] = bad_value;
    const auto before = xcnn_test::parameter_bytes(net);
    const std::string message = error_of([&] { sgd.step(); });
    INFO(message);
    CHECK_THAT(message, contains("SGD step 1: non-finite gradient in parameter '" + params[which].name() + "' (" +
                                 params[which].layer() + "): 1 of " + std::to_string(params[which].size()) +
                                 " elements is not finite, the first at index " + std::to_string(index)));
    CHECK_THAT(message, contains("(1 of 4 gradients are affected"));
    CHECK(xcnn_test::parameter_bytes(net) == before);
    CHECK(sgd.momentum_buffer(0).empty()); // not even the first momentum buffer was created
}

namespace
{

/// A non-finite value at every position of a gradient and of a parameter of 200 elements (three
/// blocks of the vectorised check and a tail) is found, and its index reported.
template <class T>
void check_every_position()
{
    const T specials[] = {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                          -std::numeric_limits<T>::infinity()};
    xt::xtensor<T, 1> value = xt::ones<T>({std::size_t(200)});
    xt::xtensor<T, 1> grad = xt::ones<T>({std::size_t(200)});
    xcnn::SGD<T> sgd({xcnn::parameter<T>("w", value, grad)}, T(0.5));
    std::size_t found = 0;
    for (std::size_t i = 0; i < value.size(); ++i)
    {
        for (const T special : specials)
        {
            for (auto* target : {&grad, &value})
            {
                (*target)(i) = special;
                const std::string message = error_of([&] { sgd.step(); });
                found += message.find("the first at index " + std::to_string(i) + " (") != std::string::npos ? 1 : 0;
                (*target)(i) = T(1);
            }
        }
        // The largest finite values are finite.
        grad(i) = std::numeric_limits<T>::max();
        value(i) = -std::numeric_limits<T>::max();
    }
    CHECK(found == 200 * 3 * 2);
    CHECK(sgd.steps() == 0);
    CHECK(xt::all(xt::equal(value, -std::numeric_limits<T>::max())));
    value.fill(T(1));
    grad.fill(std::numeric_limits<T>::denorm_min());
    CHECK(sgd.step());
}

} // namespace

TEST_CASE("a non-finite value is found at any position, in float and double")
{
    check_every_position<float>();
    check_every_position<double>();
}

TEST_CASE("skip_step: a bad batch is skipped and counted, and the run goes on as without it")
{
    std::mt19937 data_rng(7);
    const auto good1 = xcnn_test::random_batch(4, data_rng);
    const auto good2 = xcnn_test::random_batch(4, data_rng);
    auto bad = xcnn_test::random_batch(4, data_rng);
    bad.images(0, 0, 0, 0) = inf_f;

    auto skipping = xcnn_test::small_net();
    auto clean = xcnn_test::small_net();
    skipping.reset_parameters(8u);
    clean.reset_parameters(8u);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> a(skipping.parameters(), 0.05f, 0.9f, 1e-3f);
    xcnn::SGD<float> b(clean.parameters(), 0.05f, 0.9f, 1e-3f);
    a.set_nonfinite_policy(xcnn::nonfinite_policy::skip_step);
    CHECK(a.nonfinite_policy() == xcnn::nonfinite_policy::skip_step);
    CHECK(a.last_skip_reason().empty());

    xcnn_test::compute_gradients(skipping, loss, good1);
    CHECK(a.step());
    const auto after_first = xcnn_test::parameter_bytes(skipping);
    const auto momentum_after_first = xcnn_test::momentum_bytes(a);
    xcnn_test::compute_gradients(skipping, loss, bad);
    CHECK_FALSE(a.step());
    CHECK(xcnn_test::parameter_bytes(skipping) == after_first);
    CHECK(xcnn_test::momentum_bytes(a) == momentum_after_first);
    CHECK(a.skipped_steps() == 1);
    CHECK(a.steps() == 1);
    CHECK_THAT(a.last_skip_reason(), contains("SGD step 2: non-finite gradient in parameter '0.weight'"));
    CHECK_THAT(a.last_skip_reason(), contains("the step was skipped"));
    xcnn_test::compute_gradients(skipping, loss, good2);
    CHECK(a.step());
    CHECK(a.steps() == 2);

    xcnn_test::compute_gradients(clean, loss, good1);
    b.step();
    xcnn_test::compute_gradients(clean, loss, good2);
    b.step();
    CHECK(b.skipped_steps() == 0);
    CHECK(xcnn_test::parameter_bytes(skipping) == xcnn_test::parameter_bytes(clean));
    CHECK(xcnn_test::momentum_bytes(a) == xcnn_test::momentum_bytes(b));
}

TEST_CASE("SoftmaxCrossEntropy propagates non-finite logits to the loss and the gradient")
{
    xcnn::SoftmaxCrossEntropy<float> loss;
    xt::xtensor<std::int64_t, 1> labels = {0, 1, 2, 3};
    xt::xtensor<float, 2> logits = {{1.f, 2.f, 3.f, 4.f}, //
                                    {1.f, nan_f, 3.f, 4.f},
                                    {1.f, 2.f, inf_f, 4.f},
                                    {1.f, 2.f, 3.f, 4.f}};
    float value = 0;
    REQUIRE_NOTHROW(value = loss.forward(logits, labels));
    CHECK(std::isnan(value));
    const auto grad = loss.backward();
    for (std::size_t c = 0; c < 4; ++c)
    {
        CHECK(std::isfinite(grad(0, c)));
        CHECK(std::isnan(grad(1, c))); // a NaN anywhere in a row spoils the whole row's softmax
        CHECK(std::isnan(grad(2, c))); // +inf - inf is NaN
        CHECK(std::isfinite(grad(3, c)));
    }

    SECTION("-inf is a probability of 0: an infinite loss only for the label's logit, a finite gradient")
    {
        logits = {{-inf_f, 2.f, 3.f, 4.f}, {1.f, 2.f, 3.f, 4.f}};
        labels = {1, 1};
        CHECK(std::isfinite(loss.forward(logits, labels)));
        CHECK(xt::all(xt::isfinite(loss.backward())));
        labels = {0, 1};
        CHECK(std::isinf(loss.forward(logits, labels)));
        CHECK(xt::all(xt::isfinite(loss.backward())));
        CHECK(loss.backward()(0, 0) == Catch::Approx(-0.5f)); // (0 - 1) / N
    }
}

TEST_CASE("require_finite names the parameter and the layer holding a NaN")
{
    auto net = xcnn_test::small_net();
    net.reset_parameters(9u);
    REQUIRE_NOTHROW(xcnn::require_finite(net, "check"));
    net.get<0>().bias()(1) = nan_f;
    CHECK_THROWS_AS(xcnn::require_finite(net, "check"), xcnn::numeric_error);
    CHECK(error_of([&] { xcnn::require_finite(net, "check"); }) ==
          "check: parameter '0.bias' (" + net.get<0>().name() +
              ") holds non-finite values: 1 of 2 elements is not finite, the first at index 1 (nan)");
}
