// A training step on a steady batch shape allocates nothing once the first steps have sized the
// layers' buffers: every global operator new is counted while a step runs.
#include "catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include "models.hpp"
#include "support/layer_zoo.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

namespace
{

std::atomic<bool> counting{false};
std::atomic<std::size_t> allocations{0};

void* counted_allocation(std::size_t size)
{
    if (counting.load(std::memory_order_relaxed))
    {
        allocations.fetch_add(1, std::memory_order_relaxed);
    }
    if (void* p = std::malloc(size == 0 ? 1 : size))
    {
        return p;
    }
    throw std::bad_alloc();
}

void* counted_aligned_allocation(std::size_t size, std::size_t alignment)
{
    if (counting.load(std::memory_order_relaxed))
    {
        allocations.fetch_add(1, std::memory_order_relaxed);
    }
    void* p = nullptr;
    if (posix_memalign(&p, std::max(alignment, sizeof(void*)), size == 0 ? 1 : size) == 0)
    {
        return p;
    }
    throw std::bad_alloc();
}

/// Counts the allocations made by `f`.
template <class F>
std::size_t allocations_during(F&& f)
{
    allocations = 0;
    counting = true;
    f();
    counting = false;
    return allocations.load();
}

} // namespace

void* operator new(std::size_t size)
{
    return counted_allocation(size);
}
void* operator new[](std::size_t size)
{
    return counted_allocation(size);
}
void* operator new(std::size_t size, std::align_val_t alignment)
{
    return counted_aligned_allocation(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment)
{
    return counted_aligned_allocation(size, static_cast<std::size_t>(alignment));
}
void operator delete(void* p) noexcept
{
    std::free(p);
}
void operator delete[](void* p) noexcept
{
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept
{
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept
{
    std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept
{
    std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept
{
    std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept
{
    std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept
{
    std::free(p);
}

TEST_CASE("the counter sees allocations", "[allocations]")
{
    CHECK(allocations_during([] { delete new int(3); }) == 1);
}

TEST_CASE("a steady-state LeNet training step allocates nothing, at 1 and 2 threads", "[allocations]")
{
    const std::size_t threads = GENERATE(1, 2);
    const std::size_t saved_threads = xcnn::get_num_threads();
    xcnn::set_num_threads(threads);
    CAPTURE(threads);

    auto net = mnist_models::make_lenet<float>();
    net.reset_parameters(3u);
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> pixel(0.f, 1.f);
    xt::xtensor<float, 4> x = xt::zeros<float>({32, 1, 28, 28});
    for (auto& v : x)
    {
        v = pixel(rng);
    }
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({32});
    for (std::size_t i = 0; i < labels.size(); ++i)
    {
        labels(i) = static_cast<std::int64_t>(i % 10);
    }
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> optimizer(net.parameters(), 0.01f, 0.9f, 1e-4f);

    float last_loss = 0;
    auto training_step = [&]
    {
        const auto& logits = net.forward(x);
        last_loss = loss.forward(logits, labels);
        net.backward(loss.backward());
        optimizer.step();
    };
    auto training_step_parameters_only = [&]
    {
        last_loss = loss.forward(net.forward(x), labels);
        net.backward_parameters(loss.backward());
        optimizer.step();
    };
    auto inference = [&]
    {
        last_loss = net.predict(x)(0, 0);
    };

    training_step();
    training_step_parameters_only();
    inference();
    CHECK(allocations_during(training_step) == 0);
    CHECK(allocations_during(training_step_parameters_only) == 0);
    CHECK(allocations_during(inference) == 0);
    CHECK(std::isfinite(last_loss));
    xcnn::set_num_threads(saved_threads);
}

TEMPLATE_LIST_TEST_CASE("a second training step of any layer allocates nothing", "[allocations][layers]",
                        xcnn_test::zoo::all)
{
    // Every layer type, a user's own layer and a nested Sequential (tests/support/layer_zoo.hpp):
    // once the first step has sized the buffers, forward, backward, backward_parameters, the SGD
    // step and predict reuse them.
    using E = TestType;
    namespace zoo = xcnn_test::zoo;
    constexpr std::size_t out_rank = zoo::output_rank<E, float>;
    INFO(E::label);
    auto layer = E::template make<float>();
    std::mt19937 rng(8);
    const auto x = zoo::input<E, float>(rng, 3);
    const auto out_shape = layer.output_shape(std::vector<std::size_t>(x.shape().begin(), x.shape().end()));
    const auto dy = zoo::random_of_shape<float, out_rank>(out_shape, rng);
    xcnn::SGD<float> optimizer(layer.parameters(), 0.01f, 0.9f);

    auto training_step = [&]
    {
        (void)layer.forward(x);
        (void)layer.backward(dy);
        optimizer.step();
    };
    auto training_step_parameters_only = [&]
    {
        (void)layer.forward(x);
        layer.backward_parameters(dy);
        optimizer.step();
    };
    auto inference = [&]
    {
        (void)layer.predict(x);
    };

    training_step();
    training_step_parameters_only();
    inference();
    CHECK(allocations_during(training_step) == 0);
    CHECK(allocations_during(training_step_parameters_only) == 0);
    CHECK(allocations_during(inference) == 0);
}

TEST_CASE("steady Adam, AdamW and Nesterov SGD steps, schedule steps and clip_grad_norm allocate nothing",
          "[allocations][optim]")
{
    const std::size_t threads = GENERATE(1, 2);
    const std::size_t saved_threads = xcnn::get_num_threads();
    xcnn::set_num_threads(threads);
    CAPTURE(threads);
    auto net = mnist_models::make_lenet<float>();
    net.reset_parameters(5u);
    // A parameter large enough for the threads to share its update.
    xt::xtensor<float, 1> big = xt::zeros<float>({std::size_t(1) << 18}),
                          big_grad = xt::ones<float>({std::size_t(1) << 18});
    auto params = net.parameters();
    params.emplace_back("big", big, big_grad);
    for (const auto& p : params)
    {
        std::fill(p.grad_data(), p.grad_data() + p.size(), 0.01f);
    }
    xcnn::Adam<float> adam(params, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f);
    xcnn::AdamW<float> adamw(params);
    xcnn::SGD<float> sgd(params, 0.01f, 0.9f, 1e-4f, true);
    xcnn::OneCycleLR one_cycle(adam, 0.01, 100);
    xcnn::CosineAnnealingLR cosine(adamw, 10);
    xcnn::StepLR step_lr(sgd, 3);
    auto optimizer_steps = [&]
    {
        (void)xcnn::clip_grad_norm(params, 10.0);
        adam.step();
        one_cycle.step();
        adamw.step();
        cosine.step();
        sgd.step();
        step_lr.step();
    };
    optimizer_steps();
    CHECK(allocations_during(optimizer_steps) == 0);
    xcnn::set_num_threads(saved_threads);
}
