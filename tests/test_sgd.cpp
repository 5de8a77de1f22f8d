// Tests of xcnn::SGD against an independent implementation of torch.optim.SGD's update rule
// (dampening 0; Nesterov momentum against PyTorch's values in tests/fixtures/torch_optim):
//     g = grad + weight_decay * p
//     buf = g (first step), buf = momentum * buf + g (later steps)   [only when momentum != 0]
//     p = p - lr * (momentum != 0 ? buf : g)
#include "catch_compat.hpp"
#include "support/error_of.hpp"
#include "support/gradcheck.hpp"
#include "support/torch_optim.hpp"

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace
{

using xcnn_test::contains;

/// torch.optim.SGD, written from its documentation, on plain vectors in long double.
class reference_sgd
{
public:
    reference_sgd(long double lr, long double momentum, long double weight_decay)
        : m_lr(lr), m_momentum(momentum), m_weight_decay(weight_decay)
    {
    }
    void set_lr(long double lr) { m_lr = lr; }

    void step(std::vector<std::vector<long double>>& params, const std::vector<std::vector<long double>>& grads)
    {
        if (m_buffers.empty())
        {
            m_buffers.resize(params.size());
        }
        for (std::size_t i = 0; i < params.size(); ++i)
        {
            std::vector<long double> d(params[i].size());
            for (std::size_t j = 0; j < d.size(); ++j)
            {
                d[j] = grads[i][j] + m_weight_decay * params[i][j];
            }
            if (m_momentum != 0)
            {
                if (m_buffers[i].empty())
                {
                    m_buffers[i] = d; // torch.clone(d_p) on the first step
                }
                else
                {
                    for (std::size_t j = 0; j < d.size(); ++j)
                    {
                        m_buffers[i][j] = m_momentum * m_buffers[i][j] + d[j];
                    }
                }
                d = m_buffers[i];
            }
            for (std::size_t j = 0; j < d.size(); ++j)
            {
                params[i][j] -= m_lr * d[j];
            }
        }
    }

    const std::vector<long double>& buffer(std::size_t i) const { return m_buffers.at(i); }

private:
    long double m_lr, m_momentum, m_weight_decay;
    std::vector<std::vector<long double>> m_buffers;
};

template <class T>
std::vector<long double> to_long_double(const T* data, std::size_t size)
{
    return std::vector<long double>(data, data + size);
}

/// Largest |a - b| / max(1, |b|).
template <class T>
double max_rel_diff(const T* a, const std::vector<long double>& b)
{
    double worst = 0;
    for (std::size_t j = 0; j < b.size(); ++j)
    {
        const long double d =
            std::abs(static_cast<long double>(a[j]) - b[j]) / std::max<long double>(1, std::abs(b[j]));
        worst = std::max(worst, static_cast<double>(d));
    }
    return worst;
}

/// Two parameters (a matrix and a vector) with their gradients, as a layer would own them.
template <class T>
struct toy_model
{
    xt::xtensor<T, 2> w{std::array<std::size_t, 2>{3, 4}};
    xt::xtensor<T, 1> b{std::array<std::size_t, 1>{4}};
    xt::xtensor<T, 2> w_grad{std::array<std::size_t, 2>{3, 4}};
    xt::xtensor<T, 1> b_grad{std::array<std::size_t, 1>{4}};

    explicit toy_model(std::mt19937& rng)
    {
        xcnn_test::fill_uniform(w, rng);
        xcnn_test::fill_uniform(b, rng);
        w_grad.fill(T(0));
        b_grad.fill(T(0));
    }
    std::vector<xcnn::parameter<T>> parameters()
    {
        return {xcnn::parameter<T>("w", w, w_grad), xcnn::parameter<T>("b", b, b_grad)};
    }
};

/// Runs `steps` SGD steps with gradients that depend on the parameters (as in training) plus
/// noise, and compares every parameter and momentum buffer with the reference after each step.
template <class T>
void compare_with_reference(T lr, T momentum, T weight_decay, double tolerance, bool change_lr)
{
    CAPTURE(lr, momentum, weight_decay, change_lr);
    std::mt19937 rng(31);
    toy_model<T> model(rng);
    const xt::xtensor<T, 2> initial_w = model.w;
    auto params = model.parameters();
    xcnn::SGD<T> sgd(params, lr, momentum, weight_decay);
    CHECK(sgd.lr() == lr);
    CHECK(sgd.momentum() == momentum);
    CHECK(sgd.weight_decay() == weight_decay);
    CHECK(sgd.parameters().size() == 2);
    CHECK(sgd.momentum_buffer(0).empty());

    reference_sgd reference(lr, momentum, weight_decay);
    std::vector<std::vector<long double>> ref_params;
    for (const auto& p : params)
    {
        ref_params.push_back(to_long_double(p.data(), p.size()));
    }

    std::normal_distribution<double> noise(0.0, 0.3);
    for (int step = 0; step < 8; ++step)
    {
        CAPTURE(step);
        if (change_lr && step == 4)
        {
            sgd.set_lr(lr / T(4));
            reference.set_lr(lr / T(4));
            CHECK(sgd.lr() == lr / T(4));
        }
        std::vector<std::vector<long double>> grads;
        for (auto& p : params)
        {
            for (std::size_t j = 0; j < p.size(); ++j)
            {
                p.grad_data()[j] = static_cast<T>(0.5 * (static_cast<double>(p.data()[j]) - 0.25) + noise(rng));
            }
            grads.push_back(to_long_double(p.grad_data(), p.size()));
        }
        sgd.step();
        reference.step(ref_params, grads);
        for (std::size_t i = 0; i < params.size(); ++i)
        {
            INFO("parameter " << params[i].name());
            CHECK(max_rel_diff(params[i].data(), ref_params[i]) < tolerance);
            if (momentum != T(0))
            {
                REQUIRE(sgd.momentum_buffer(i).size() == params[i].size());
                CHECK(max_rel_diff(sgd.momentum_buffer(i).data(), reference.buffer(i)) < tolerance);
            }
            else
            {
                CHECK(sgd.momentum_buffer(i).empty());
            }
            // The gradient itself is left alone by step().
            CHECK(max_rel_diff(params[i].grad_data(), grads[i]) == 0.0);
        }
    }
    // The steps moved the parameters (by lr * 8 steps of O(0.3) gradients).
    CHECK(xcnn_test::max_abs_diff(model.w, initial_w) > 1e-3);
}

} // namespace

TEST_CASE("SGD matches torch.optim.SGD's rule step by step", "[sgd]")
{
    struct setting
    {
        double lr, momentum, weight_decay;
    };
    const auto s = GENERATE(setting{0.1, 0.0, 0.0}, setting{0.05, 0.9, 0.0}, setting{0.1, 0.0, 0.01},
                            setting{0.05, 0.9, 0.05}, setting{0.2, 0.5, 0.1});
    const bool change_lr = GENERATE(false, true);
    SECTION("double")
    {
        compare_with_reference<double>(s.lr, s.momentum, s.weight_decay, 1e-13, change_lr);
    }
    SECTION("float")
    {
        compare_with_reference<float>(static_cast<float>(s.lr), static_cast<float>(s.momentum),
                                      static_cast<float>(s.weight_decay), 2e-6, change_lr);
    }
}

TEST_CASE("SGD known values", "[sgd]")
{
    // One scalar parameter p = 1 with a constant gradient 1.
    xt::xtensor<double, 1> p = {1.0};
    xt::xtensor<double, 1> g = {1.0};
    std::vector<xcnn::parameter<double>> params{xcnn::parameter<double>("p", p, g)};

    SECTION("plain: p -= lr * g")
    {
        xcnn::SGD<double> sgd(params, 0.1);
        sgd.step();
        CHECK_THAT(p(0), xcnn_test::near(0.9, 1e-15));
        sgd.step();
        CHECK_THAT(p(0), xcnn_test::near(0.8, 1e-15));
    }
    SECTION("momentum 0.9: buffers 1, 1.9, 2.71")
    {
        xcnn::SGD<double> sgd(params, 0.1, 0.9);
        sgd.step();
        CHECK_THAT(p(0), xcnn_test::near(0.9, 1e-15));
        CHECK_THAT(sgd.momentum_buffer(0)[0], xcnn_test::near(1.0, 1e-15));
        sgd.step();
        CHECK_THAT(p(0), xcnn_test::near(0.71, 1e-15));
        CHECK_THAT(sgd.momentum_buffer(0)[0], xcnn_test::near(1.9, 1e-15));
        sgd.step();
        CHECK_THAT(p(0), xcnn_test::near(0.439, 1e-15));
        CHECK_THAT(sgd.momentum_buffer(0)[0], xcnn_test::near(2.71, 1e-15));
    }
    SECTION("weight decay 0.5 adds 0.5 * p to the gradient")
    {
        xcnn::SGD<double> sgd(params, 0.1, 0.0, 0.5);
        sgd.step(); // g = 1 + 0.5 = 1.5
        CHECK_THAT(p(0), xcnn_test::near(0.85, 1e-15));
        sgd.step(); // g = 1 + 0.425
        CHECK_THAT(p(0), xcnn_test::near(0.85 - 0.1425, 1e-15));
    }
    SECTION("momentum and weight decay")
    {
        xcnn::SGD<double> sgd(params, 0.1, 0.9, 0.5);
        sgd.step(); // d = 1.5, buf = 1.5, p = 0.85
        CHECK_THAT(p(0), xcnn_test::near(0.85, 1e-15));
        sgd.step(); // d = 1.425, buf = 0.9 * 1.5 + 1.425 = 2.775, p = 0.85 - 0.2775
        CHECK_THAT(p(0), xcnn_test::near(0.5725, 1e-15));
        CHECK_THAT(sgd.momentum_buffer(0)[0], xcnn_test::near(2.775, 1e-15));
    }
    SECTION("lr 0 leaves the parameters alone")
    {
        xcnn::SGD<double> sgd(params, 0.0, 0.9, 0.5);
        sgd.step();
        sgd.step();
        CHECK(p(0) == 1.0);
    }
}

TEST_CASE("SGD trains the parameters of a Sequential through parameters()", "[sgd]")
{
    xcnn::Sequential net{xcnn::Dense<double>(5, 4), xcnn::ReLU<double>{}, xcnn::Dense<double>(4, 3)};
    net.reset_parameters(3u);
    xcnn::SoftmaxCrossEntropy<double> loss;
    std::mt19937 rng(32);
    xt::xtensor<double, 2> x({6, 5});
    xcnn_test::fill_uniform(x, rng);
    const xt::xtensor<std::int64_t, 1> labels = {0, 1, 2, 0, 1, 2};

    auto params = net.parameters();
    xcnn::SGD<double> sgd(params, 0.1, 0.9, 1e-3);
    reference_sgd reference(0.1L, 0.9L, 1e-3L);
    std::vector<std::vector<long double>> ref_params;
    for (const auto& p : params)
    {
        ref_params.push_back(to_long_double(p.data(), p.size()));
    }
    double first_loss = 0, last_loss = 0;
    for (int step = 0; step < 20; ++step)
    {
        CAPTURE(step);
        last_loss = loss.forward(net.forward(x), labels);
        first_loss = step == 0 ? last_loss : first_loss;
        (void)net.backward(loss.backward());
        std::vector<std::vector<long double>> grads;
        for (const auto& p : params)
        {
            grads.push_back(to_long_double(p.grad_data(), p.size()));
        }
        sgd.step();
        reference.step(ref_params, grads);
        for (std::size_t i = 0; i < params.size(); ++i)
        {
            INFO("parameter " << params[i].name());
            CHECK(max_rel_diff(params[i].data(), ref_params[i]) < 1e-13);
        }
    }
    CHECK(last_loss < first_loss);
}

TEST_CASE("SGD::set_lr and invalid hyper-parameters", "[sgd][errors]")
{
    std::mt19937 rng(33);
    toy_model<float> model(rng);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();

    SECTION("invalid learning rates")
    {
        for (const float lr : {-0.1f, -inf, inf, nan})
        {
            CAPTURE(lr);
            REQUIRE_THROWS_AS(xcnn::SGD<float>(model.parameters(), lr), xcnn::value_error);
            REQUIRE_THROWS_WITH(xcnn::SGD<float>(model.parameters(), lr), contains("learning rate"));
        }
        CHECK_NOTHROW(xcnn::SGD<float>(model.parameters(), 0.0f));
    }
    SECTION("invalid momentum and weight decay")
    {
        for (const float bad : {-0.5f, -inf, nan})
        {
            CAPTURE(bad);
            REQUIRE_THROWS_AS(xcnn::SGD<float>(model.parameters(), 0.1f, bad), xcnn::value_error);
            REQUIRE_THROWS_WITH(xcnn::SGD<float>(model.parameters(), 0.1f, bad), contains("momentum"));
            REQUIRE_THROWS_AS(xcnn::SGD<float>(model.parameters(), 0.1f, 0.9f, bad), xcnn::value_error);
            REQUIRE_THROWS_WITH(xcnn::SGD<float>(model.parameters(), 0.1f, 0.9f, bad), contains("weight_decay"));
        }
    }
    SECTION("set_lr")
    {
        xcnn::SGD<float> sgd(model.parameters(), 0.1f, 0.9f);
        sgd.set_lr(0.25f);
        CHECK(sgd.lr() == 0.25f);
        for (const float lr : {-1.0f, inf, nan})
        {
            CAPTURE(lr);
            REQUIRE_THROWS_AS(sgd.set_lr(lr), xcnn::value_error);
            CHECK(sgd.lr() == 0.25f); // unchanged
        }
        sgd.set_lr(0.0f);
        CHECK(sgd.lr() == 0.0f);
    }
}

TEST_CASE("SGD::zero_grad zeroes every gradient and nothing else", "[sgd]")
{
    std::mt19937 rng(34);
    toy_model<double> model(rng);
    xcnn_test::fill_uniform(model.w_grad, rng);
    xcnn_test::fill_uniform(model.b_grad, rng);
    const auto w = model.w;
    const auto b = model.b;
    xcnn::SGD<double> sgd(model.parameters(), 0.1);
    REQUIRE(xt::amax(xt::abs(model.w_grad))() > 0.0);
    sgd.zero_grad();
    CHECK(xt::all(xt::equal(model.w_grad, 0.0)));
    CHECK(xt::all(xt::equal(model.b_grad, 0.0)));
    CHECK(xcnn_test::max_abs_diff(model.w, w) == 0.0);
    CHECK(xcnn_test::max_abs_diff(model.b, b) == 0.0);
    // A step on zero gradients without weight decay changes nothing.
    sgd.step();
    CHECK(xcnn_test::max_abs_diff(model.w, w) == 0.0);
    CHECK(xcnn_test::max_abs_diff(model.b, b) == 0.0);

    SECTION("on a Sequential's gradients")
    {
        xcnn::Sequential net{xcnn::Conv2D<float>(1, 2, 3), xcnn::Flatten<float>{}, xcnn::Dense<float>(2 * 4 * 4, 3)};
        xt::xtensor<float, 4> x({2, 1, 6, 6});
        xcnn_test::fill_uniform(x, rng);
        (void)net.forward(x);
        (void)net.backward(xt::xtensor<float, 2>(xt::ones<float>({2, 3})));
        REQUIRE(xt::amax(xt::abs(net.get<0>().weight_grad()))() > 0.0f);
        xcnn::SGD<float> net_sgd(net.parameters(), 0.1f);
        net_sgd.zero_grad();
        for (const auto& p : net.parameters())
        {
            INFO(p.name());
            CHECK(xt::all(xt::equal(p.grad(), 0.0f)));
        }
        CHECK(xt::all(xt::equal(net.get<2>().bias_grad(), 0.0f)));
    }
}

TEST_CASE("SGD with no parameters does nothing", "[sgd]")
{
    xcnn::SGD<double> sgd({}, 0.1, 0.9);
    CHECK_NOTHROW(sgd.step());
    CHECK_NOTHROW(sgd.zero_grad());
}

TEST_CASE("SGD with Nesterov momentum matches torch.optim.SGD in double over 20 steps", "[sgd][torch]")
{
    const auto grads = xcnn_test::torch_optim("grads");
    struct setting
    {
        const char* fixture;
        double lr, momentum, weight_decay;
    };
    const auto s = GENERATE(setting{"sgd_nesterov", 0.05, 0.9, 0.0}, setting{"sgd_nesterov_l2", 0.05, 0.5, 0.1});
    CAPTURE(s.fixture);
    const auto expected = xcnn_test::torch_optim(s.fixture);
    xcnn_test::torch_parameters<double> model;
    xcnn::SGD<double> sgd(model.parameters(), s.lr, s.momentum, s.weight_decay, true);
    CHECK(sgd.nesterov());
    double worst = 0;
    for (std::size_t step = 0; step < 20; ++step)
    {
        model.set_gradients(grads, step);
        REQUIRE(sgd.step());
        worst = std::max(worst, model.max_rel_diff(expected, step));
    }
    worst = std::max(worst, xcnn_test::max_rel_state_diff<double>(
                                {&sgd.momentum_buffer(0), &sgd.momentum_buffer(1), &sgd.momentum_buffer(2)},
                                xcnn_test::torch_optim(std::string(s.fixture) + "_state"), 0));
    CHECK(worst < 1e-9);
}

TEST_CASE("SGD Nesterov known values, settings and state", "[sgd]")
{
    // p = 1, g = 1, lr 0.1, momentum 0.9: buf 1, d = 1 + 0.9 * 1 = 1.9, p = 0.81; then buf 1.9,
    // d = 1 + 0.9 * 1.9 = 2.71, p = 0.539.
    xt::xtensor<double, 1> p = {1.0};
    xt::xtensor<double, 1> g = {1.0};
    std::vector<xcnn::parameter<double>> params{xcnn::parameter<double>("p", p, g)};
    xcnn::SGD<double> sgd(params, 0.1, 0.9, 0.0, true);
    sgd.step();
    CHECK_THAT(p(0), xcnn_test::near(0.81, 1e-15));
    CHECK_THAT(sgd.momentum_buffer(0)[0], xcnn_test::near(1.0, 1e-15));
    sgd.step();
    CHECK_THAT(p(0), xcnn_test::near(0.539, 1e-15));
    CHECK_THAT(sgd.momentum_buffer(0)[0], xcnn_test::near(1.9, 1e-15));

    // The state holds "nesterov" only when it is on, so that states without it mean "off".
    auto state = sgd.state_dict();
    REQUIRE(state.counter("nesterov") != nullptr);
    CHECK(*state.counter("nesterov") == 1);
    xcnn::SGD<double> plain(params, 0.5, 0.5);
    CHECK(plain.state_dict().counter("nesterov") == nullptr);
    plain.load_state_dict(state);
    CHECK(plain.nesterov());
    CHECK(plain.momentum() == 0.9);
    auto off = state;
    off.counters.pop_back();
    plain.load_state_dict(off);
    CHECK_FALSE(plain.nesterov());
    *state.counter("nesterov") = 2;
    CHECK(xcnn_test::error_of([&] { plain.load_state_dict(state); }) ==
          "SGD: invalid state: the counter 'nesterov' is 2 (1: on; absent: off)");
    *state.counter("nesterov") = 1;
    *state.scalar("momentum") = 0;
    CHECK(xcnn_test::error_of([&] { plain.load_state_dict(state); }) ==
          "SGD: invalid state: Nesterov momentum requires a momentum > 0, got momentum 0");
    CHECK_FALSE(plain.nesterov());

    // PyTorch: "Nesterov momentum requires a momentum and zero dampening".
    CHECK(xcnn_test::error_of([&] { xcnn::SGD<double>(params, 0.1, 0.0, 0.0, true); }) ==
          "SGD: Nesterov momentum requires a momentum > 0, got momentum 0");
    CHECK_THROWS_AS(sgd.set_momentum(0.0), xcnn::value_error);
    CHECK(xcnn_test::error_of([&] { sgd.set_momentum(-0.5); }) == "SGD: momentum -0.5 must be finite and >= 0");
    CHECK(sgd.momentum() == 0.9);
    sgd.set_momentum(0.5);
    CHECK(sgd.momentum() == 0.5);
}

TEST_CASE("SGD's vector loop and threads: a large tensor matches the reference, at any thread count", "[sgd][threads]")
{
    const std::size_t n = (std::size_t(1) << 17) + 11;
    auto run = [&](std::size_t threads, bool nesterov, double* worst)
    {
        const std::size_t saved = xcnn::get_num_threads();
        xcnn::set_num_threads(threads);
        xt::xtensor<float, 1> value(std::array<std::size_t, 1>{n}), grad(std::array<std::size_t, 1>{n});
        std::mt19937 rng(9);
        xcnn_test::fill_uniform(value, rng);
        std::vector<std::vector<long double>> ref{to_long_double(value.data(), n)};
        reference_sgd reference(0.05L, 0.9L, static_cast<long double>(0.01f));
        std::vector<long double> buffer(n, 0);
        xcnn::SGD<float> sgd({xcnn::parameter<float>("w", value, grad)}, 0.05f, 0.9f, 0.01f, nesterov);
        for (int step = 0; step < 4; ++step)
        {
            xcnn_test::fill_uniform(grad, rng);
            const auto g = to_long_double(grad.data(), n);
            sgd.step();
            if (!nesterov)
            {
                reference.step(ref, {g});
                continue;
            }
            for (std::size_t j = 0; j < n; ++j)
            {
                const long double d = g[j] + static_cast<long double>(0.01f) * ref[0][j];
                buffer[j] = step == 0 ? d : 0.9L * buffer[j] + d;
                ref[0][j] -= 0.05L * (d + 0.9L * buffer[j]);
            }
        }
        *worst = max_rel_diff(value.data(), ref[0]);
        xcnn::set_num_threads(saved);
        return std::vector<float>(value.begin(), value.end());
    };
    const bool nesterov = GENERATE(false, true);
    CAPTURE(nesterov);
    double worst1 = 1, worst2 = 1;
    const auto one = run(1, nesterov, &worst1);
    const auto two = run(2, nesterov, &worst2);
    CHECK(one == two);
    CHECK(worst1 < 1e-5);
}
