// The thread pool and the thread count setting, and that results do not depend on it.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"

#include <xcnn/core/threading.hpp>
#include <xcnn/xcnn.hpp>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <random>
#include <stdexcept>
#include <vector>

namespace
{

/// Restores the thread count when a test ends, whatever it set.
struct thread_count_guard
{
    std::size_t saved = xcnn::get_num_threads();
    ~thread_count_guard() { xcnn::set_num_threads(saved); }
};

template <class T, std::size_t N>
xt::xtensor<T, N> random_tensor(const std::array<std::size_t, N>& shape, std::mt19937& rng)
{
    xt::xtensor<T, N> t(shape);
    xcnn_test::fill_uniform(t, rng);
    return t;
}

/// `run(threads)` (a vector of tensors) at 2 and 3 threads gives what it gives at 1, bit for bit.
template <class Run>
void check_same_bits_at_thread_counts(const Run& run)
{
    const auto one = run(std::size_t(1));
    for (std::size_t threads : {2u, 3u})
    {
        CAPTURE(threads);
        const auto many = run(threads);
        REQUIRE(many.size() == one.size());
        for (std::size_t i = 0; i < one.size(); ++i)
        {
            CAPTURE(i);
            CHECK(many[i] == one[i]);
        }
    }
}

} // namespace

TEST_CASE("set_num_threads sets the pool size, 0 means one per hardware thread", "[threading]")
{
    thread_count_guard guard;
    xcnn::set_num_threads(3);
    CHECK(xcnn::get_num_threads() == 3);
    xcnn::set_num_threads(1);
    CHECK(xcnn::get_num_threads() == 1);
    xcnn::set_num_threads(0);
    CHECK(xcnn::get_num_threads() >= 1);
    REQUIRE_THROWS_AS(xcnn::set_num_threads(100000), xcnn::value_error);
}

TEST_CASE("parallel_for covers every index exactly once, in grain-aligned chunks", "[threading]")
{
    thread_count_guard guard;
    const std::size_t threads = GENERATE(1, 2, 3, 4);
    xcnn::set_num_threads(threads);
    for (std::size_t count : {0u, 1u, 5u, 32u, 33u, 1000u})
    {
        for (std::size_t grain : {1u, 4u, 32u})
        {
            CAPTURE(threads, count, grain);
            std::vector<std::atomic<int>> hits(count);
            std::atomic<bool> aligned{true};
            xcnn::detail::parallel_for(count, grain,
                                       [&](std::size_t begin, std::size_t end, std::size_t worker)
                                       {
                                           if (begin % grain != 0 || worker >= threads)
                                           {
                                               aligned = false;
                                           }
                                           for (std::size_t i = begin; i < end; ++i)
                                           {
                                               ++hits[i];
                                           }
                                       });
            bool once = true;
            for (auto& h : hits)
            {
                once = once && h == 1;
            }
            CHECK(once);
            CHECK(aligned);
        }
    }
}

TEST_CASE("an exception in a worker reaches the caller and the pool stays usable", "[threading]")
{
    thread_count_guard guard;
    xcnn::set_num_threads(2);
    REQUIRE_THROWS_AS(xcnn::detail::parallel_for(100, 1,
                                                 [](std::size_t begin, std::size_t, std::size_t)
                                                 {
                                                     if (begin > 0)
                                                     {
                                                         throw std::runtime_error("worker failed");
                                                     }
                                                 }),
                      std::runtime_error);
    std::atomic<std::size_t> sum{0};
    xcnn::detail::parallel_for(100, 1,
                               [&](std::size_t begin, std::size_t end, std::size_t)
                               {
                                   for (std::size_t i = begin; i < end; ++i)
                                   {
                                       sum += i;
                                   }
                               });
    CHECK(sum == 4950);
}

TEST_CASE("Conv2D and Dense give bit-identical results at 1, 2 and 3 threads", "[threading]")
{
    thread_count_guard guard;
    std::mt19937 rng(11);
    // Shapes large enough that the GEMM does split (columns for the conv, rows for dW of Dense).
    const auto x = random_tensor<float, 4>({6, 5, 19, 23}, rng);
    const auto xd = random_tensor<float, 2>({300, 70}, rng);
    struct result
    {
        xt::xtensor<float, 4> y, dx, dw;
        xt::xtensor<float, 2> yd, dxd, dwd;
    };
    auto run = [&](std::size_t threads)
    {
        xcnn::set_num_threads(threads);
        xcnn::Conv2D<float> conv(xcnn::Conv2DOptions(5, 40, {3, 2}).stride({2, 1}).padding(1));
        xcnn::Dense<float> dense(70, 90);
        result r;
        r.y = conv.forward(x);
        r.dx = conv.backward(r.y);
        r.dw = conv.weight_grad();
        r.yd = dense.forward(xd);
        r.dxd = dense.backward(r.yd);
        r.dwd = dense.weight_grad();
        return r;
    };
    const result one = run(1);
    for (std::size_t threads : {2u, 3u})
    {
        CAPTURE(threads);
        const result many = run(threads);
        CHECK(many.y == one.y);
        CHECK(many.dx == one.dx);
        CHECK(many.dw == one.dw);
        CHECK(many.yd == one.yd);
        CHECK(many.dxd == one.dxd);
        CHECK(many.dwd == one.dwd);
    }
}

TEST_CASE("stride-1 Conv2D + ReLU and MaxPool2D give bit-identical results at 1, 2 and 3 threads", "[threading]")
{
    // The padded-width forms (output widths 28 and 10, not multiples of the GEMM panel): the
    // forward GEMM, the crop, the dY spread, dW, and dX's per-image GEMM and col2im, and the
    // pooling, all split between threads at these sizes.
    thread_count_guard guard;
    std::mt19937 rng(12);
    const auto x = random_tensor<float, 4>({32, 3, 28, 28}, rng);
    auto run = [&](std::size_t threads)
    {
        xcnn::set_num_threads(threads);
        xcnn::Sequential net{xcnn::Conv2D<float>(3, 8, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::MaxPool2D<float>(2),
                             xcnn::Conv2D<float>(8, 12, 5), xcnn::ReLU<float>{}};
        std::vector<xt::xtensor<float, 4>> out;
        const auto& y = net.forward(x);
        out.push_back(y);
        out.push_back(net.backward(y));
        for (auto& p : net.parameters())
        {
            xt::xtensor<float, 4> g = xt::zeros<float>({std::size_t(1), std::size_t(1), std::size_t(1), p.size()});
            std::copy(p.grad_data(), p.grad_data() + p.size(), g.begin());
            out.push_back(g);
        }
        return out;
    };
    check_same_bits_at_thread_counts(run);
}

TEST_CASE("Winograd Conv2D layers give bit-identical results at 1, 2 and 3 threads", "[threading]")
{
    // 3x3 stride-1 layers of 32 channels and more on 8 x 8 planes: the Winograd form in every pass,
    // threads running whole images (forward, dX) and whole parts of dW's sum (3 chunks of the
    // batch for 32 -> 32, 7 for 32 -> 128, whose dW runs the packed GEMM).
    thread_count_guard guard;
    std::mt19937 rng(13);
    const auto x = random_tensor<float, 4>({40, 32, 8, 8}, rng);
    auto run = [&](std::size_t threads)
    {
        xcnn::set_num_threads(threads);
        std::vector<xt::xtensor<float, 4>> out;
        for (const std::size_t channels : {32u, 128u})
        {
            xcnn::Conv2D<float> conv(32, channels, 3, 1, 1);
            out.push_back(conv.forward(x));
            out.push_back(conv.backward(out.back()));
            out.push_back(conv.weight_grad());
        }
        return out;
    };
    check_same_bits_at_thread_counts(run);
}

TEST_CASE("activation layers split between threads give the one-thread result, tail included", "[threading]")
{
    thread_count_guard guard;
    std::mt19937 rng(12);
    // 3 * 7 * 61 * 83 = 106,323 elements: two chunks of the 64K grain and a partial last vector.
    const auto x = random_tensor<float, 4>({3, 7, 61, 83}, rng);
    const auto dy = random_tensor<float, 4>({3, 7, 61, 83}, rng);
    auto run = [&](std::size_t threads)
    {
        xcnn::set_num_threads(threads);
        xcnn::GELU<float> gelu;
        xcnn::Sigmoid<float> sigmoid;
        std::vector<xt::xtensor<float, 4>> out;
        out.push_back(gelu.forward(x));
        out.push_back(gelu.backward(dy));
        out.push_back(sigmoid.forward(x));
        out.push_back(sigmoid.backward(dy));
        return out;
    };
    const auto one = run(1);
    for (std::size_t threads : {2u, 3u})
    {
        CAPTURE(threads);
        const auto many = run(threads);
        for (std::size_t i = 0; i < one.size(); ++i)
        {
            CAPTURE(i);
            CHECK(many[i] == one[i]);
        }
    }
    // And the values are the functor's, element by element, to the last one.
    const auto& y = one[0];
    const std::size_t last = x.size() - 1;
    const double v = x.data()[last];
    CHECK(std::abs(y.data()[last] - 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))) < 1e-6);
}
