// Dropout, by its properties: the fraction of zeros within statistical bounds, the scale of the
// kept elements, the identity in predict, the same mask in backward, a new mask per forward, the
// same masks for the same seed, masks independent of the thread count, a gradient check with the
// mask held fixed, p = 0 and p = 1, no state in parameters/buffers/model files/.npy exports, and
// a checkpoint that restores the generator so a resumed run continues bit for bit.
#include "catch_compat.hpp"

#include <xcnn/layers/dropout.hpp>
#include <xcnn/xcnn.hpp>

#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"
#include "support/require_error.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace
{

using xcnn::Dropout;
using xcnn_test::identical;
using xcnn_test::random_tensor;

/// How many elements of `y` are exactly 0.
template <class Y>
std::size_t zeros_of(const Y& y)
{
    return static_cast<std::size_t>(std::count(y.begin(), y.end(), typename Y::value_type(0)));
}

template <class T>
void check_fraction_and_scale(double p)
{
    INFO("p = " << p << ", " << sizeof(T) * 8 << "-bit");
    Dropout<T> layer(p);
    const std::size_t n = 64 * 3 * 17 * 19; // odd per-sample size: the last draw is used by half
    std::mt19937 rng(5);
    const xt::xtensor<T, 4> x = random_tensor<T, 4>({64, 3, 17, 19}, rng, 0.5, 1.5);
    const xt::xtensor<T, 4> y = layer.forward(x);
    const std::size_t dropped = zeros_of(y);
    // Binomial(n, p): within 6 standard deviations (a false alarm about once in 10^9 runs).
    const double sd = std::sqrt(static_cast<double>(n) * p * (1 - p));
    CHECK(std::abs(static_cast<double>(dropped) - static_cast<double>(n) * p) < 6 * sd + 1);
    const T scale = T(1) / static_cast<T>(1.0 - p);
    for (std::size_t i = 0; i < n; ++i)
    {
        const T v = y.data()[i];
        if (v != T(0))
        {
            REQUIRE(v == x.data()[i] * scale); // kept: scaled, bit for bit as PyTorch's x * (1 / (1 - p))
        }
    }
    // The mean is kept in expectation.
    const double mean_x = static_cast<double>(xt::mean(x)()), mean_y = static_cast<double>(xt::mean(y)());
    CHECK(std::abs(mean_y - mean_x) < 6 * std::sqrt(p / (1 - p) / static_cast<double>(n)) * 1.5);
}

} // namespace

TEST_CASE("Dropout zeroes a fraction p within statistical bounds and scales the rest by 1 / (1 - p)", "[dropout]")
{
    for (const double p : {0.1, 0.5, 0.9, 0.01})
    {
        check_fraction_and_scale<float>(p);
        check_fraction_and_scale<double>(p);
    }
}

TEST_CASE("Dropout masks show no pattern between neighbours, halves of a draw or samples", "[dropout]")
{
    // Each element drops independently: the pairs (i, i + 1) that share a 64-bit draw and those
    // that do not must both be dropped together a fraction p^2 of the time.
    Dropout<float> layer(0.5);
    const xt::xtensor<float, 2> x = xt::ones<float>({std::size_t(400), std::size_t(1001)});
    const auto& y = layer.forward(x);
    std::size_t both_even = 0, both_odd = 0, pairs_even = 0, pairs_odd = 0;
    for (std::size_t i = 0; i + 1 < y.size(); ++i)
    {
        const bool both = y.data()[i] == 0.0f && y.data()[i + 1] == 0.0f;
        (i % 2 == 0 ? both_even : both_odd) += both ? 1 : 0;
        (i % 2 == 0 ? pairs_even : pairs_odd) += 1;
    }
    for (const auto& [both, pairs] : {std::pair(both_even, pairs_even), std::pair(both_odd, pairs_odd)})
    {
        const double sd = std::sqrt(static_cast<double>(pairs) * 0.25 * 0.75);
        CHECK(std::abs(static_cast<double>(both) - 0.25 * static_cast<double>(pairs)) < 6 * sd);
    }
    // Two samples never share a mask.
    CHECK_FALSE(identical(xt::xtensor<float, 1>(xt::view(y, 0)), xt::xtensor<float, 1>(xt::view(y, 1))));
}

TEST_CASE("Dropout predict is the identity and draws nothing, backward after it is an error", "[dropout]")
{
    std::mt19937 rng(6);
    Dropout<double> layer(0.4);
    const auto x = random_tensor<double, 3>({4, 5, 6}, rng);
    const auto before = layer.generator();
    CHECK(identical(layer.predict(x), x));
    CHECK(layer.generator() == before);
    const xt::xtensor<double, 3> dy = xt::ones<double>(x.shape());
    xcnn_test::require_error<xcnn::error>([&] { (void)layer.backward(dy); }, {"Dropout(p=0.4)", "forward"});
}

TEST_CASE("Dropout backward applies the mask of the last forward, every forward draws a new one", "[dropout]")
{
    std::mt19937 rng(7);
    Dropout<float> layer(0.5);
    const auto x = random_tensor<float, 2>({8, 33}, rng, 0.5, 1.5); // nonzero: a zero output is a dropped one
    const auto dy = random_tensor<float, 2>({8, 33}, rng, 0.5, 1.5);
    const xt::xtensor<float, 2> y1 = layer.forward(x);
    const xt::xtensor<float, 2> dx1 = layer.backward(dy);
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        const float expected = y1.data()[i] == 0.0f ? 0.0f : dy.data()[i] * 2.0f;
        REQUIRE(dx1.data()[i] == expected);
    }
    CHECK(identical(layer.backward(dy), dx1)); // backward again: the same mask, nothing drawn
    const xt::xtensor<float, 2> y2 = layer.forward(x);
    CHECK_FALSE(identical(y1, y2));
    const xt::xtensor<float, 2> dx2 = layer.backward(dy);
    CHECK_FALSE(identical(dx1, dx2));
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        REQUIRE((dx2.data()[i] == 0.0f) == (y2.data()[i] == 0.0f));
    }
    // A predict in between changes neither the mask nor the generator's stream.
    Dropout<float> twin(0.5);
    (void)twin.forward(x);
    (void)twin.predict(x);
    CHECK(identical(twin.forward(x), y2));
}

TEST_CASE("Dropout: the same seed gives the same masks, another seed others", "[dropout]")
{
    auto make = []
    {
        return xcnn::Sequential{xcnn::Dense<float>(6, 40), Dropout<float>(0.5), xcnn::Dense<float>(40, 3)};
    };
    auto a = make();
    auto b = make();
    auto c = make();
    a.reset_parameters(42u);
    b.reset_parameters(42u);
    c.reset_parameters(43u);
    c.get<0>() = a.get<0>(); // the same weights, only the generator differs
    c.get<2>() = a.get<2>();
    std::mt19937 rng(8);
    const auto x = random_tensor<float, 2>({5, 6}, rng);
    for (int step = 0; step < 3; ++step)
    {
        const xt::xtensor<float, 2> ya = a.forward(x);
        CHECK(identical(b.forward(x), ya));
        CHECK_FALSE(identical(c.forward(x), ya));
    }
    CHECK(a.get<1>().generator() == b.get<1>().generator());
    CHECK(a.get<1>().generator().position() == 3 * (5 * 40 / 2)); // a draw per two elements
}

TEST_CASE("Dropout masks do not depend on the thread count", "[dropout][threads]")
{
    const std::size_t saved = xcnn::get_num_threads();
    std::mt19937 rng(9);
    const auto x = random_tensor<float, 4>({16, 8, 33, 33}, rng); // 139392 elements: split between threads
    const auto dy = random_tensor<float, 4>({16, 8, 33, 33}, rng);
    Dropout<float> one(0.3), two(0.3);
    xcnn::set_num_threads(1);
    const xt::xtensor<float, 4> y1 = one.forward(x);
    const xt::xtensor<float, 4> dx1 = one.backward(dy);
    xcnn::set_num_threads(2);
    const xt::xtensor<float, 4> y2 = two.forward(x);
    const xt::xtensor<float, 4> dx2 = two.backward(dy);
    xcnn::set_num_threads(saved);
    CHECK(identical(y1, y2));
    CHECK(identical(dx1, dx2));
}

TEST_CASE("Dropout backward passes a finite-difference gradient check with the mask held fixed", "[dropout][gradcheck]")
{
    std::mt19937 rng(10);
    Dropout<double> layer(0.3);
    auto x = random_tensor<double, 4>({2, 3, 4, 5}, rng);
    const auto r = random_tensor<double, 4>({2, 3, 4, 5}, rng);
    const auto handles = layer.generators();
    REQUIRE(handles.size() == 1);
    const std::string state = handles[0].state();
    (void)layer.forward(x);
    const xt::xtensor<double, 4> dx = layer.backward(r);
    CHECK(zeros_of(dx) > 0);
    CHECK(zeros_of(dx) < dx.size());
    // Each evaluation is a training forward with the generator set back: the same mask.
    const std::function<double()> loss = [&]
    {
        handles[0].set_state(state);
        return xcnn_test::weighted_sum(layer.forward(x), r);
    };
    const auto numeric = xcnn_test::numeric_gradient(loss, x.data(), x.size());
    CHECK(xcnn_test::relative_error(numeric, dx.data(), dx.size()) < 1e-8);
}

TEST_CASE("Dropout p = 0 is the identity, p = 1 zeroes everything (x * 0, as PyTorch)", "[dropout]")
{
    std::mt19937 rng(11);
    const auto x = random_tensor<double, 2>({7, 9}, rng);
    Dropout<double> none(0.0);
    CHECK(identical(none.forward(x), x));
    CHECK(identical(none.backward(x), x));
    Dropout<double> all(1.0);
    const xt::xtensor<double, 2> y = all.forward(x);
    CHECK(zeros_of(y) == y.size());
    CHECK(zeros_of(all.backward(x)) == x.size());
    // Multiplying by the mask keeps a NaN, kept or dropped, as PyTorch's input * mask does.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const xt::xtensor<double, 1> with_nan = {nan, nan, nan, nan};
    const auto& z = all.forward(with_nan);
    CHECK(std::all_of(z.begin(), z.end(), [](double v) { return std::isnan(v); }));
    Dropout<double> half(0.5);
    const auto& h = half.forward(with_nan);
    CHECK(std::all_of(h.begin(), h.end(), [](double v) { return std::isnan(v); }));
}

TEST_CASE("Dropout rejects p outside [0, 1] and misuse with typed errors naming it", "[dropout][errors]")
{
    using xcnn_test::require_error;
    require_error<xcnn::value_error>([] { Dropout<float> layer(1.5); }, {"Dropout(p=1.5)", "[0, 1]"});
    require_error<xcnn::value_error>([] { Dropout<float> layer(-0.1); }, {"Dropout(p=-0.1)", "[0, 1]"});
    require_error<xcnn::value_error>([] { Dropout<double> layer(std::nan("")); }, {"Dropout(p=nan)"});
    Dropout<double> layer;
    CHECK(layer.name() == "Dropout(p=0.5)");
    CHECK(layer.p() == 0.5);
    const xt::xtensor<double, 2> x = xt::ones<double>({2, 3});
    (void)layer.forward(x);
    const xt::xtensor<double, 2> wrong = xt::ones<double>({3, 2});
    require_error<xcnn::shape_error>([&] { (void)layer.backward(wrong); }, {"Dropout(p=0.5)", "(3, 2)", "(2, 3)"});
    const xt::xtensor<double, 1> other_rank = xt::ones<double>({6});
    require_error<xcnn::error>([&] { (void)layer.backward(other_rank); }, {"Dropout(p=0.5)", "rank-1"});
}

TEST_CASE("Dropout has no parameters or buffers: model files and .npy exports hold nothing of it", "[dropout][io]")
{
    xcnn_test::temp_dir dir;
    xcnn::Sequential net{xcnn::Dense<float>(4, 6), xcnn::ReLU<float>{}, Dropout<float>(0.25), xcnn::Dense<float>(6, 2)};
    CHECK(net.get<2>().parameters().empty());
    CHECK(net.get<2>().buffers().empty());
    CHECK(net.get<2>().num_parameters() == 0);
    CHECK(net.buffers().empty());
    CHECK(net.parameters().size() == 4);
    const auto generators = net.generators();
    REQUIRE(generators.size() == 1);
    CHECK(generators[0].name() == "2.rng");
    CHECK_THAT(net.summary({1, 4}), xcnn_test::contains("Dropout(p=0.25)"));

    xcnn::save(net, dir / "net.xcnn");
    const auto file = xcnn::io::read_model_file(dir / "net.xcnn");
    for (const auto& r : file.records)
    {
        CHECK(r.name.find("rng") == std::string::npos);
        CHECK(r.name.rfind("2.", 0) != 0);
    }
    xcnn::export_npy(net, dir / "npy");
    for (const auto& entry : std::filesystem::directory_iterator(dir / "npy"))
    {
        const std::string name = entry.path().filename().string();
        CHECK((name.rfind("0.", 0) == 0 || name.rfind("3.", 0) == 0));
    }
    auto loaded = net;
    xcnn::load(loaded, dir / "net.xcnn");
}

TEST_CASE("A checkpoint keeps Dropout's generator: a resumed run continues bit for bit", "[dropout][checkpoint]")
{
    xcnn_test::temp_dir dir;
    auto make = []
    {
        return xcnn::Sequential{xcnn::Dense<float>(8, 32), xcnn::ReLU<float>{}, Dropout<float>(0.3),
                                xcnn::Dense<float>(32, 4)};
    };
    std::mt19937 rng(12);
    const auto x = random_tensor<float, 2>({16, 8}, rng);
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({std::size_t(16)});
    for (std::size_t i = 0; i < 16; ++i)
    {
        labels(i) = static_cast<std::int64_t>(i % 4);
    }
    xcnn::SoftmaxCrossEntropy<float> criterion;
    auto step = [&](auto& net, auto& sgd)
    {
        const float loss = criterion.forward(net.forward(x), labels);
        net.backward(criterion.backward());
        sgd.step();
        return loss;
    };

    auto net = make();
    net.reset_parameters(5u);
    xcnn::SGD<float> sgd(net.parameters(), 0.1f, 0.9f);
    for (int i = 0; i < 3; ++i)
    {
        step(net, sgd);
    }
    xcnn::save_checkpoint(dir / "run.ckpt", net, sgd, xcnn::training_progress{});
    std::vector<float> losses;
    for (int i = 0; i < 4; ++i)
    {
        losses.push_back(step(net, sgd));
    }

    SECTION("resumed from the checkpoint: the same masks, losses and weights")
    {
        auto resumed = make();
        resumed.reset_parameters(99u); // another generator and other weights until the load
        xcnn::SGD<float> resumed_sgd(resumed.parameters(), 0.1f, 0.9f);
        xcnn::load_checkpoint(dir / "run.ckpt", resumed, resumed_sgd);
        std::vector<float> resumed_losses;
        for (int i = 0; i < 4; ++i)
        {
            resumed_losses.push_back(step(resumed, resumed_sgd));
        }
        CHECK(resumed_losses == losses);
        CHECK(identical(resumed.get<0>().weight(), net.get<0>().weight()));
        CHECK(identical(resumed.get<3>().weight(), net.get<3>().weight()));
        CHECK(resumed.get<2>().generator() == net.get<2>().generator());
        const auto file = xcnn::io::read_model_file(dir / "run.ckpt");
        CHECK(file.find("generator.2.rng", xcnn::io::record_kind::state) != nullptr);
    }
    SECTION("a checkpoint without generator records (an older one) loads and keeps the generator")
    {
        auto file = xcnn::io::read_model_file(dir / "run.ckpt");
        file.records.erase(std::remove_if(file.records.begin(), file.records.end(),
                                          [](const auto& r) { return r.name == "generator.2.rng"; }),
                           file.records.end());
        xcnn::io::write_model_file(dir / "old.ckpt", file);
        auto resumed = make();
        resumed.reset_parameters(99u);
        const auto generator = resumed.get<2>().generator();
        xcnn::SGD<float> resumed_sgd(resumed.parameters(), 0.1f, 0.9f);
        xcnn::load_checkpoint(dir / "old.ckpt", resumed, resumed_sgd);
        CHECK(resumed.get<2>().generator() == generator);
    }
    SECTION("a damaged generator state or one of no generator: errors, nothing changed")
    {
        auto file = xcnn::io::read_model_file(dir / "run.ckpt");
        for (auto& r : file.records)
        {
            if (r.name == "generator.2.rng")
            {
                r = xcnn::io::tensor_record::from(r.name, xcnn::io::record_kind::state,
                                                  reinterpret_cast<const std::uint8_t*>("12 x"),
                                                  std::vector<std::size_t>{4});
            }
        }
        xcnn::io::write_model_file(dir / "bad.ckpt", file);
        auto resumed = make();
        const auto weight = resumed.get<0>().weight();
        const auto generator = resumed.get<2>().generator();
        xcnn::SGD<float> resumed_sgd(resumed.parameters(), 0.1f, 0.9f);
        xcnn_test::require_error<xcnn::format_error>(
            [&] { xcnn::load_checkpoint(dir / "bad.ckpt", resumed, resumed_sgd); }, {"generator.2.rng", "2.rng"});
        CHECK(resumed.get<2>().generator() == generator);
        CHECK(identical(resumed.get<0>().weight(), weight));

        // The same weights in a network whose Dropout sits elsewhere have no "2.rng".
        auto file2 = xcnn::io::read_model_file(dir / "run.ckpt");
        for (auto& r : file2.records)
        {
            if (r.name == "generator.2.rng")
            {
                r.name = "generator.7.rng";
            }
        }
        xcnn::io::write_model_file(dir / "moved.ckpt", file2);
        xcnn_test::require_error<xcnn::shape_error>(
            [&] { xcnn::load_checkpoint(dir / "moved.ckpt", resumed, resumed_sgd); }, {"generator.7.rng"});
        CHECK(identical(resumed.get<0>().weight(), weight));
    }
}

TEST_CASE("counter_generator: SplitMix64 by position, a standard generator, its state as text", "[dropout][generator]")
{
    xcnn::counter_generator g(1234567u);
    // SplitMix64 seeded with 1234567 (the reference implementation's first outputs).
    CHECK(g() == 6457827717110365317ull);
    CHECK(g() == 3203168211198807973ull);
    CHECK(g.position() == 2);
    CHECK(g.at(0) == 6457827717110365317ull);
    std::uniform_int_distribution<int> die(1, 6);
    const int roll = die(g);
    CHECK((roll >= 1 && roll <= 6));
    const xcnn::generator_handle handle("rng", g);
    const std::string state = handle.state();
    const auto copy = g;
    (void)g();
    handle.set_state(state);
    CHECK(g == copy);
    CHECK_THROWS_AS(handle.set_state("1 2 3"), xcnn::value_error);
    CHECK_THROWS_AS(handle.check_state("nonsense"), xcnn::value_error);
    CHECK(g == copy);
}
