// Several user threads running xcnn at once, each with its own network, while the kernels use the
// shared thread pool (core/threading.hpp). The pool serialises their jobs; the results must be
// the single-threaded ones bit for bit. Run under ThreadSanitizer by `scripts/test.sh --tsan`,
// where any data race between the callers, the pool and the workers fails the test.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"

#include <xcnn/core/threading.hpp>
#include <xcnn/xcnn.hpp>

#include <atomic>
#include <cstddef>
#include <random>
#include <thread>
#include <vector>

namespace
{

struct thread_count_guard
{
    std::size_t saved = xcnn::get_num_threads();
    ~thread_count_guard() { xcnn::set_num_threads(saved); }
};

/// Losses of a few SGD steps of a small CNN whose convolution is large enough (M = 16, K = 36,
/// N = 2592: 1.5 MFLOP) for the GEMM to split it between the pool's threads.
std::vector<float> train(unsigned seed)
{
    std::mt19937 rng(seed);
    xt::xtensor<float, 4> x(std::array<std::size_t, 4>{8, 4, 20, 20});
    xcnn_test::fill_uniform(x, rng);
    xt::xtensor<std::int64_t, 1> labels(std::array<std::size_t, 1>{8});
    for (std::size_t i = 0; i < labels.size(); ++i)
    {
        labels(i) = static_cast<std::int64_t>(rng() % 10);
    }
    xcnn::Sequential net{xcnn::Conv2D<float>(4, 16, 3), xcnn::ReLU<float>{}, xcnn::Flatten<float>{},
                         xcnn::Dense<float>(16 * 18 * 18, 10)};
    net.reset_parameters(seed);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> optimizer(net.parameters(), 0.01f, 0.9f);
    std::vector<float> losses;
    for (int step = 0; step < 3; ++step)
    {
        losses.push_back(loss.forward(net.forward(x), labels));
        net.backward(loss.backward());
        optimizer.step();
    }
    return losses;
}

} // namespace

TEST_CASE("networks trained on several user threads at once give their serial results", "[threading]")
{
    thread_count_guard guard;
    xcnn::set_num_threads(2);
    constexpr unsigned callers = 3;
    std::vector<std::vector<float>> serial;
    for (unsigned i = 0; i < callers; ++i)
    {
        serial.push_back(train(100 + i));
    }
    REQUIRE(serial[0] != serial[1]);

    std::vector<std::vector<float>> concurrent(callers);
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < callers; ++i)
    {
        threads.emplace_back([&concurrent, i] { concurrent[i] = train(100 + i); });
    }
    for (auto& t : threads)
    {
        t.join();
    }
    for (unsigned i = 0; i < callers; ++i)
    {
        CAPTURE(i);
        CHECK(concurrent[i] == serial[i]);
    }
}

TEST_CASE("parallel_for called from several user threads at once covers each range once", "[threading]")
{
    thread_count_guard guard;
    xcnn::set_num_threads(3);
    constexpr std::size_t callers = 4, count = 20000;
    std::vector<std::vector<int>> hits(callers, std::vector<int>(count, 0));
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < callers; ++c)
    {
        threads.emplace_back(
            [&hits, c]
            {
                for (int round = 0; round < 5; ++round)
                {
                    // Plain ints: each index belongs to one chunk, so no two threads write the
                    // same element; ThreadSanitizer checks that claim.
                    xcnn::detail::parallel_for(count, 16,
                                               [&](std::size_t begin, std::size_t end, std::size_t)
                                               {
                                                   for (std::size_t i = begin; i < end; ++i)
                                                   {
                                                       ++hits[c][i];
                                                   }
                                               });
                }
            });
    }
    for (auto& t : threads)
    {
        t.join();
    }
    std::size_t wrong = 0;
    for (const auto& h : hits)
    {
        for (int v : h)
        {
            wrong += v == 5 ? 0 : 1;
        }
    }
    CHECK(wrong == 0);
}
