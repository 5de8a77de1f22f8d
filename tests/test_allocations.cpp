// A training step on a steady batch shape allocates nothing once the first steps have sized the
// layers' buffers: every global operator new is counted while a step runs. So does an epoch of
// a DataLoader and an unbatched predict; evaluate's allocations are bounded by a batch.
#include "catch_compat.hpp"

#include <xcnn/xcnn.hpp>

#include "models.hpp"
#include "support/layer_zoo.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace
{

std::atomic<bool> counting{false};
std::atomic<std::size_t> allocations{0};
// Bytes requested and the largest single request while counting: the total bounds the peak of
// what was allocated during the call from above.
std::atomic<std::size_t> allocated_bytes{0};
std::atomic<std::size_t> largest_allocation{0};

void count(std::size_t size)
{
    if (counting.load(std::memory_order_relaxed))
    {
        allocations.fetch_add(1, std::memory_order_relaxed);
        allocated_bytes.fetch_add(size, std::memory_order_relaxed);
        std::size_t largest = largest_allocation.load(std::memory_order_relaxed);
        while (size > largest && !largest_allocation.compare_exchange_weak(largest, size))
        {
        }
    }
}

void* counted_allocation(std::size_t size)
{
    count(size);
    if (void* p = std::malloc(size == 0 ? 1 : size))
    {
        return p;
    }
    throw std::bad_alloc();
}

void* counted_aligned_allocation(std::size_t size, std::size_t alignment)
{
    count(size);
#if defined(__GLIBC__)
    // posix_memalign is counted itself below.
    if (void* p = memalign(std::max(alignment, sizeof(void*)), size == 0 ? 1 : size))
    {
        return p;
    }
#else
    void* p = nullptr;
    if (posix_memalign(&p, std::max(alignment, sizeof(void*)), size == 0 ? 1 : size) == 0)
    {
        return p;
    }
#endif
    throw std::bad_alloc();
}

/// Counts the allocations made by `f`.
template <class F>
std::size_t allocations_during(F&& f)
{
    allocations = 0;
    allocated_bytes = 0;
    largest_allocation = 0;
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
#if defined(__GLIBC__)
// xtensor's storage comes from xsimd's aligned allocator, which calls posix_memalign, not
// operator new: counted too (glibc's memalign returns memory that free releases).
extern "C" int posix_memalign(void** out, std::size_t alignment, std::size_t size)
{
    count(size);
    if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0)
    {
        return EINVAL;
    }
    void* p = memalign(alignment, size == 0 ? 1 : size);
    if (p == nullptr)
    {
        return ENOMEM;
    }
    *out = p;
    return 0;
}
#endif

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

/// Forward, backward, backward_parameters and predict of a Conv2D of `options`, alone and with a
/// fused ReLU, on (n, C_in, hw, hw): nothing allocated once the shapes are steady.
void check_steady_conv_steps(const xcnn::Conv2DOptions& options, std::size_t n, std::size_t hw)
{
    xcnn::Sequential net{xcnn::Conv2D<float>(options), xcnn::ReLU<float>{}};
    xcnn::Conv2D<float> conv(options);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> value(-1.f, 1.f);
    xt::xtensor<float, 4> x = xt::zeros<float>({n, options.in_channels(), hw, hw});
    for (auto& v : x)
    {
        v = value(rng);
    }
    xt::xtensor<float, 4> dy = conv.forward(x);
    for (auto& v : dy)
    {
        v = value(rng);
    }
    auto steps = [&]
    {
        (void)conv.forward(x);
        (void)conv.backward(dy);
        (void)conv.forward(x);
        conv.backward_parameters(dy);
        (void)conv.predict(x);
        (void)net.forward(x);
        (void)net.backward(dy);
        (void)net.forward(x);
        net.backward_parameters(dy);
        (void)net.predict(x);
    };
    steps();
    CHECK(allocations_during(steps) == 0);
}

TEST_CASE("steady Conv2D steps on the lowered form allocate nothing, at 1 and 2 threads", "[allocations][conv2d]")
{
    // Geometries core/conv/select.hpp gives the lowered form (a stride-2 layer of 32 filters,
    // 4 x 4 planes, a 7 x 7 stride-2 stem), alone and followed by a fused ReLU.
    const std::size_t threads = GENERATE(1, 2);
    const auto shape = GENERATE(std::array<std::size_t, 5>{16, 3, 16, 3, 2}, std::array<std::size_t, 5>{64, 4, 4, 3, 1},
                                std::array<std::size_t, 5>{16, 3, 22, 7, 2});
    const std::size_t saved_threads = xcnn::get_num_threads();
    xcnn::set_num_threads(threads);
    CAPTURE(threads, shape);
    const std::size_t n = shape[0], c_in = shape[1], hw = shape[2], k = shape[3], stride = shape[4];
    check_steady_conv_steps(xcnn::Conv2DOptions(c_in, 32, k).stride(stride).padding(k / 2), n, hw);
    xcnn::set_num_threads(saved_threads);
}

TEST_CASE("steady Conv2D steps on the depthwise phase and Winograd forms allocate nothing, at 1 and 2 threads",
          "[allocations][conv2d]")
{
    // A depthwise layer at stride 1 and 2 ("same" padding: the phase form), and 3x3 layers of 32
    // channels the Winograd form runs (8 x 8 planes: every pass; 4 x 4: the forward pass).
    const std::size_t threads = GENERATE(1, 2);
    const auto shape =
        GENERATE(std::array<std::size_t, 5>{8, 16, 16, 16, 1}, std::array<std::size_t, 5>{8, 16, 16, 16, 2},
                 std::array<std::size_t, 5>{8, 32, 32, 8, 1}, std::array<std::size_t, 5>{16, 32, 32, 4, 1});
    const std::size_t saved_threads = xcnn::get_num_threads();
    xcnn::set_num_threads(threads);
    CAPTURE(threads, shape);
    const std::size_t n = shape[0], c_in = shape[1], c_out = shape[2], hw = shape[3], stride = shape[4];
    check_steady_conv_steps(xcnn::Conv2DOptions(c_in, c_out, 3).stride(stride).padding(1).groups(c_in == 16 ? c_in : 1),
                            n, hw);
    xcnn::set_num_threads(saved_threads);
}

TEST_CASE("a DataLoader epoch allocates nothing, shuffled and augmented, with a partial last batch",
          "[allocations][data]")
{
    // The loader sizes both batch buffers when it is made and shuffles its order in place.
    const std::size_t n = 70;
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> pixel(0.f, 1.f);
    xt::xtensor<float, 4> images = xt::zeros<float>({n, std::size_t(1), std::size_t(12), std::size_t(12)});
    for (auto& v : images)
    {
        v = pixel(rng);
    }
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({n});
    xcnn::DataLoader loader(images, labels, 16, xcnn::loader_options{}.shuffled(1));
    loader.add_transform(xcnn::RandomCrop(2)).add_transform(xcnn::RandomHorizontalFlip());
    xt::xtensor<float, 2> rows = xt::zeros<float>({n, std::size_t(5)});
    xcnn::DataLoader dropping(rows, labels, 16, xcnn::loader_options{}.shuffled(2).dropping_last());

    double checksum = 0;
    std::size_t batches = 0;
    auto epoch = [&]
    {
        for (const auto& batch : loader)
        {
            checksum += batch.images(0, 0, 5, 5);
            ++batches;
        }
        for (const auto& [x, y] : dropping)
        {
            checksum += x(0, 0) + static_cast<double>(y(0));
            ++batches;
        }
    };
    CHECK(allocations_during(epoch) == 0);
    CHECK(allocations_during(epoch) == 0);
    CHECK(allocations_during(epoch) == 0);
    CHECK(batches == 3 * (5 + 4));
    CHECK(std::isfinite(checksum));
}

TEST_CASE("evaluate holds one batch, never the data set's logits", "[allocations][evaluate]")
{
    // 20050 images of 8 x 8: predict on all of them at once allocates every layer's activations
    // for all of them; evaluate, batch by batch, a bounded amount whatever the set's size.
    const std::size_t n = 20050, classes = 10;
    std::mt19937 rng(6);
    std::uniform_real_distribution<float> pixel(0.f, 1.f);
    xt::xtensor<float, 4> images = xt::zeros<float>({n, std::size_t(1), std::size_t(8), std::size_t(8)});
    for (auto& v : images)
    {
        v = pixel(rng);
    }
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({n});
    for (std::size_t i = 0; i < n; ++i)
    {
        labels(i) = static_cast<std::int64_t>(i % classes);
    }
    auto make = []
    {
        return xcnn::Sequential{xcnn::Conv2D<float>(1, 4, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::MaxPool2D<float>(2),
                                xcnn::Flatten<float>{}, xcnn::Dense<float>(64, 10)};
    };
    auto all_at_once = make();
    const std::size_t predict_all = allocations_during([&] { (void)all_at_once.predict(images); });
    const std::size_t predict_all_bytes = allocated_bytes.load();

    auto net = make();
    xcnn::evaluation e;
    const std::size_t cold = allocations_during([&] { e = xcnn::evaluate(net, images, labels, 100); });
    const std::size_t cold_bytes = allocated_bytes.load(), cold_largest = largest_allocation.load();
    const std::size_t logits_bytes = n * classes * sizeof(float);
    INFO("predict(all): " << predict_all << " allocations, " << predict_all_bytes << " bytes; evaluate: " << cold
                          << " allocations, " << cold_bytes << " bytes, largest " << cold_largest);
    CHECK(e.count == n);
    CHECK(cold_largest < logits_bytes / 4);
    CHECK(cold_bytes < logits_bytes);
    CHECK(cold_bytes * 50 < predict_all_bytes);

    // Warm, with the same batch size: the loader's two batch buffers, the layers' resizes
    // between the full and the partial batch, and the confusion matrix; nothing per batch.
    const std::size_t warm = allocations_during([&] { e = xcnn::evaluate(net, images, labels, 100); });
    const std::size_t warm_bytes = allocated_bytes.load();
    INFO("warm evaluate: " << warm << " allocations, " << warm_bytes << " bytes");
    CHECK(warm < 40); // 201 batches
    CHECK(warm_bytes <= cold_bytes);
}

TEST_CASE("Sequential::predict of one unbatched image allocates nothing once sized", "[allocations][predict]")
{
    auto net = mnist_models::make_lenet<float>();
    net.reset_parameters(3u);
    xt::xtensor<float, 3> image = xt::zeros<float>({std::size_t(1), std::size_t(28), std::size_t(28)});
    image(0, 14, 14) = 1.0f;
    float logit = 0;
    auto one = [&]
    {
        logit = net.predict(image)(3);
    };
    one();
    CHECK(allocations_during(one) == 0);
    CHECK(std::isfinite(logit));
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
