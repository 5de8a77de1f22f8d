// Layer conformance: what every layer must do, checked for each layer type of xcnn and for a
// user's own layer and activation (tests/consumer/user_layer, docs/adding-a-layer.md), all
// described once in tests/support/layer_zoo.hpp. The layer-specific tests (test_conv2d.cpp,
// test_dense.cpp, ...) check the mathematics against naive references; test_errors.cpp checks
// messages with specific values and what a Sequential adds; test_allocations.cpp checks that a
// second training step of each zoo layer allocates nothing.
#include "catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include "support/gradcheck.hpp"
#include "support/layer_zoo.hpp"
#include "support/naive_layers.hpp"
#include "support/require_error.hpp"
#include "support/shapes.hpp"
#include "support/temp_dir.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace zoo = xcnn_test::zoo;
using xcnn_test::require_error;
using xcnn_test::to_shape;

namespace
{

/// Whether `forward` and `predict` of `L` take an `xt::xarray`.
template <class L, class = void>
struct takes_xarray : std::false_type
{
};
template <class L>
struct takes_xarray<
    L, std::void_t<decltype(std::declval<L&>().forward(std::declval<const xt::xarray<typename L::value_type>&>())),
                   decltype(std::declval<L&>().predict(std::declval<const xt::xarray<typename L::value_type>&>()))>>
    : std::true_type
{
};

/// sum(y * r): a scalar loss whose gradient with respect to y is r.
template <class Y, class R>
double weighted_sum(const Y& y, const R& r)
{
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i)
    {
        s += static_cast<double>(y.data()[i]) * static_cast<double>(r.data()[i]);
    }
    return s;
}

/// The values of every gradient of `parameters`, in order.
template <class P>
std::vector<std::vector<double>> gradients_of(const P& parameters)
{
    std::vector<std::vector<double>> out;
    for (const auto& p : parameters)
    {
        out.emplace_back(p.grad_data(), p.grad_data() + p.size());
    }
    return out;
}

/// The values of every buffer of `layer`, in order.
template <class L>
std::vector<std::vector<typename L::value_type>> buffer_values(L& layer)
{
    std::vector<std::vector<typename L::value_type>> out;
    for (const auto& b : zoo::buffers_of(layer))
    {
        out.emplace_back(b.data(), b.data() + b.size());
    }
    return out;
}

using xcnn_test::names_of;

} // namespace

TEMPLATE_LIST_TEST_CASE("Layer conformance: an input or gradient of another rank is a shape_error naming the layer",
                        "[layers][errors]", zoo::all)
{
    using E = TestType;
    using L = zoo::layer_t<E, float>;
    constexpr std::size_t out_rank = zoo::output_rank<E, float>;
    INFO(E::label);
    auto layer = E::template make<float>();
    const std::string named = E::named(layer);
    // Layers that take expressions say so, and those that do not (activations, which take any
    // fixed rank) do not compile with one rather than guess a rank.
    STATIC_REQUIRE(takes_xarray<L>::value == E::takes_expressions);
    if constexpr (L::input_rank == xcnn::any_rank)
    {
        require_error<xcnn::shape_error>([&] { (void)layer.output_shape({}); }, {named, "rank 1 to 8", "shape ()"});
        require_error<xcnn::shape_error>([&] { (void)layer.output_shape(std::vector<std::size_t>(9, 1)); },
                                         {named, "(1, 1, 1, 1, 1, 1, 1, 1, 1)"});
        CHECK(layer.output_shape(E::input_shape()) == E::input_shape());
    }
    else
    {
        const std::vector<std::size_t> wrong =
            E::rank == 4 ? std::vector<std::size_t>{2, 3} : std::vector<std::size_t>{2, 3, 4, 5};
        const std::string expected = "expected a rank-" + std::to_string(E::rank) + " input";
        require_error<xcnn::shape_error>([&] { (void)layer.output_shape(wrong); },
                                         {named, expected, xcnn_test::str(wrong)});
        const xt::xarray<float> x = xt::zeros<float>(wrong);
        require_error<xcnn::shape_error>([&] { (void)layer.forward(x); }, {named, expected, xcnn_test::str(wrong)});
        require_error<xcnn::shape_error>([&] { (void)layer.predict(x); }, {named, expected, xcnn_test::str(wrong)});

        std::mt19937 rng(1);
        (void)layer.forward(zoo::input<E, float>(rng, 2));
        const std::vector<std::size_t> wrong_grad =
            out_rank == 4 ? std::vector<std::size_t>{2, 4} : std::vector<std::size_t>{2, 4, 1, 1};
        const xt::xarray<float> dy = xt::zeros<float>(wrong_grad);
        const std::string expected_grad = "expected a rank-" + std::to_string(out_rank) + " gradient";
        require_error<xcnn::shape_error>([&] { (void)layer.backward(dy); },
                                         {named, expected_grad, xcnn_test::str(wrong_grad)});
        require_error<xcnn::shape_error>([&] { layer.backward_parameters(dy); }, {named, expected_grad});
    }
}

TEMPLATE_LIST_TEST_CASE("Layer conformance: backward without a forward, or after predict, is an xcnn::error",
                        "[layers][errors]", zoo::all)
{
    using E = TestType;
    constexpr std::size_t out_rank = zoo::output_rank<E, float>;
    INFO(E::label);
    auto layer = E::template make<float>();
    const std::string named = E::named(layer);
    std::mt19937 rng(2);
    const auto x = zoo::input<E, float>(rng, 2);
    const auto dy = zoo::random_of_shape<float, out_rank>(layer.output_shape(to_shape(x.shape())), rng);

    // Exactly xcnn::error (not a shape_error): the gradient is fine, the order of calls is not.
    require_error<xcnn::error>([&] { (void)layer.backward(dy); }, {named, "forward"});
    require_error<xcnn::error>([&] { layer.backward_parameters(dy); }, {named, "forward"});
    (void)layer.forward(x);
    (void)layer.predict(x);
    require_error<xcnn::error>([&] { (void)layer.backward(dy); }, {named, "forward"});
    require_error<xcnn::error>([&] { layer.backward_parameters(dy); }, {named, "forward"});
    (void)layer.forward(x);
    CHECK(to_shape(layer.backward(dy).shape()) == to_shape(x.shape()));
}

TEMPLATE_LIST_TEST_CASE("Layer conformance: an empty batch gives an empty output, backward works and the parameter "
                        "gradients are zero",
                        "[layers]", zoo::all)
{
    using E = TestType;
    constexpr std::size_t out_rank = zoo::output_rank<E, float>;
    INFO(E::label);
    auto layer = E::template make<float>();
    std::mt19937 rng(3);

    // A real step first, so that the gradients are non-zero and must be overwritten.
    const auto x = zoo::input<E, float>(rng, 2);
    const auto dy = zoo::random_of_shape<float, out_rank>(layer.output_shape(to_shape(x.shape())), rng);
    (void)layer.forward(x);
    (void)layer.backward(dy);
    const auto parameters = layer.parameters();
    for (const auto& g : gradients_of(parameters))
    {
        REQUIRE(std::any_of(g.begin(), g.end(), [](double v) { return v != 0.0; }));
    }
    const auto buffers_before = buffer_values(layer);

    const auto empty = zoo::input<E, float>(rng, 0);
    const auto expected = layer.output_shape(to_shape(empty.shape()));
    REQUIRE(expected.size() == out_rank);
    CHECK(expected[0] == 0);
    CHECK(to_shape(layer.predict(empty).shape()) == expected);
    const auto& y = layer.forward(empty);
    CHECK(to_shape(y.shape()) == expected);
    CHECK(y.size() == 0);
    CHECK(buffer_values(layer) == buffers_before); // an empty batch carries no statistics

    const auto no_grad = zoo::random_of_shape<float, out_rank>(expected, rng);
    CHECK(to_shape(layer.backward(no_grad).shape()) == to_shape(empty.shape()));
    for (const auto& g : gradients_of(parameters))
    {
        CHECK(std::all_of(g.begin(), g.end(), [](double v) { return v == 0.0; }));
    }
    CHECK_NOTHROW(layer.backward_parameters(no_grad));
}

TEMPLATE_LIST_TEST_CASE("Layer conformance: an xt::xarray and a strided view give what the xt::xtensor gives",
                        "[layers]", zoo::all)
{
    using E = TestType;
    constexpr std::size_t out_rank = zoo::output_rank<E, float>;
    INFO(E::label);
    if constexpr (E::takes_expressions)
    {
        auto layer = E::template make<float>();
        std::mt19937 rng(4);
        const auto x = zoo::input<E, float>(rng, 3);
        const xt::xtensor<float, out_rank> y = layer.forward(x);
        const auto dy = zoo::random_of_shape<float, out_rank>(to_shape(y.shape()), rng);
        const xt::xtensor<float, E::rank> dx = layer.backward(dy);
        const auto grads = gradients_of(layer.parameters());

        // Every other sample of a batch twice as large: a view that is not contiguous.
        auto big_shape = x.shape();
        big_shape[0] *= 2;
        xt::xtensor<float, E::rank> big = xt::zeros<float>(big_shape);
        for (std::size_t i = 0; i < x.shape()[0]; ++i)
        {
            xt::view(big, 2 * i) = xt::view(x, i);
        }
        const auto view = xt::view(big, xt::range(std::size_t(0), big_shape[0], std::size_t(2)));
        // predict is compared with predict: for BatchNorm it differs from forward, and each
        // forward moves the running statistics it reads.
        xt::xtensor<float, out_rank> eval = layer.predict(x);
        CHECK(layer.predict(view) == eval);
        CHECK(layer.forward(view) == y);
        CHECK(layer.backward(dy) == dx);

        const xt::xarray<float> xa = x;
        const xt::xarray<float> dya = dy;
        eval = layer.predict(x);
        CHECK(layer.predict(xa) == eval);
        CHECK(layer.forward(xa) == y);
        CHECK(layer.backward(dya) == dx);
        CHECK(gradients_of(layer.parameters()) == grads);
        (void)layer.forward(x);
        layer.backward_parameters(dya);
        CHECK(gradients_of(layer.parameters()) == grads);
    }
    else
    {
        SUCCEED("takes xt::xtensor<T, N> of any rank N only (checked by the rank test)");
    }
}

TEMPLATE_LIST_TEST_CASE("Layer conformance: the gradients of the input and of every parameter match finite "
                        "differences",
                        "[layers][gradients]", zoo::all)
{
    using E = TestType;
    constexpr std::size_t out_rank = zoo::output_rank<E, double>;
    INFO(E::label);
    auto layer = E::template make<double>();
    std::mt19937 rng(5);
    auto x = zoo::input<E, double>(rng, 2);
    const auto r = zoo::random_of_shape<double, out_rank>(layer.output_shape(to_shape(x.shape())), rng);
    // A stochastic layer (Dropout) is differentiated with its randomness fixed: each evaluation is
    // a training forward from the generator states of the analytic one.
    const auto generators = zoo::generators_of(layer);
    std::vector<std::string> states;
    for (const auto& g : generators)
    {
        states.push_back(g.state());
    }
    (void)layer.forward(x);
    const xt::xtensor<double, E::rank> dx = layer.backward(r);
    auto parameters = layer.parameters();
    const auto analytic = gradients_of(parameters);

    // The function backward differentiates is forward's: for BatchNorm, predict is another one
    // (the running statistics in place of the batch's).
    const std::function<double()> loss = [&]
    {
        for (std::size_t i = 0; i < generators.size(); ++i)
        {
            generators[i].set_state(states[i]);
        }
        return weighted_sum(layer.forward(x), r);
    };
    REQUIRE(xt::amax(xt::abs(dx))() > 0.0);
    const auto numeric_dx = xcnn_test::numeric_gradient(loss, x.data(), x.size());
    CHECK(xcnn_test::relative_error(numeric_dx, dx.data(), dx.size()) < 1e-6);
    for (std::size_t i = 0; i < parameters.size(); ++i)
    {
        CAPTURE(parameters[i].name());
        const auto numeric = xcnn_test::numeric_gradient(loss, parameters[i].data(), parameters[i].size());
        CHECK(xcnn_test::relative_error(numeric, analytic[i], analytic[i].size()) < 1e-6);
    }
}

TEMPLATE_LIST_TEST_CASE("Layer conformance: predict changes no parameter and no buffer, forward no parameter",
                        "[layers]", zoo::all)
{
    using E = TestType;
    INFO(E::label);
    auto layer = E::template make<float>();
    std::mt19937 rng(6);
    const auto x = zoo::input<E, float>(rng, 2);
    const auto before = zoo::state_of(layer);
    (void)layer.predict(x);
    CHECK(zoo::state_of(layer) == before);
    const auto parameters = layer.parameters();
    std::vector<float> values;
    for (const auto& p : parameters)
    {
        values.insert(values.end(), p.data(), p.data() + p.size());
    }
    (void)layer.forward(x);
    std::vector<float> after;
    for (const auto& p : parameters)
    {
        after.insert(after.end(), p.data(), p.data() + p.size());
    }
    CHECK(after == values);
}

TEMPLATE_LIST_TEST_CASE("Layer conformance: xcnn::save/xcnn::load and export_npy/import_npy through a Sequential "
                        "restore the parameters and the buffers",
                        "[layers][io]", zoo::all)
{
    using E = TestType;
    using L = zoo::layer_t<E, double>;
    INFO(E::label);
    xcnn_test::temp_dir dir;
    // Sequential<L>{...} spelled out: CTAD would copy a Sequential argument instead of nesting it.
    xcnn::Sequential<L> saved{E::template make<double>()};
    std::mt19937 rng(7);
    for (const auto& p : saved.parameters())
    {
        auto values = p.value();
        xcnn_test::fill_uniform(values, rng);
    }
    for (const auto& b : saved.buffers())
    {
        auto values = b.value();
        xcnn_test::fill_uniform(values, rng, 0.5, 2.0);
    }
    CHECK(saved.buffers().size() == E::buffer_count);
    const auto state = zoo::state_of(saved);

    SECTION("model file")
    {
        xcnn::save(saved, dir / "layer.xcnn");
        xcnn::Sequential<L> loaded{E::template make<double>()};
        if (!state.empty())
        {
            CHECK(zoo::state_of(loaded) != state);
        }
        xcnn::load(loaded, dir / "layer.xcnn");
        CHECK(names_of(loaded.parameters()) == names_of(saved.parameters()));
        CHECK(names_of(loaded.buffers()) == names_of(saved.buffers()));
        CHECK(buffer_values(loaded) == buffer_values(saved));
        CHECK(zoo::state_of(loaded) == state);
        const auto x = zoo::input<E, double>(rng, 2);
        const auto expected = saved.predict(x);
        CHECK(loaded.predict(x) == expected);
    }
    SECTION(".npy files, one per state_dict key")
    {
        const std::string npy = dir / "npy";
        xcnn::export_npy(saved, npy);
        for (const auto& name : names_of(saved.buffers()))
        {
            CHECK(std::filesystem::is_regular_file(npy + "/" + name + ".npy"));
        }
        xcnn::Sequential<L> imported{E::template make<double>()};
        xcnn::import_npy(imported, npy);
        CHECK(buffer_values(imported) == buffer_values(saved));
        CHECK(zoo::state_of(imported) == state);
    }
}
