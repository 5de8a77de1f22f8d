// A training step on a steady batch shape allocates nothing once the first steps have sized the
// layers' buffers: every global operator new is counted while a step runs.
#include "catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include "models.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>

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
