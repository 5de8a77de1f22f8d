// Data-parallel training over MPI (distributed/mpi.hpp) and the distributed sampler
// (distributed/sampler.hpp). Run by mpirun on 2 and on 3 ranks (tests/CMakeLists.txt); every test
// case works for any number of ranks. Collective calls come before the checks, so a failed check
// on one rank cannot leave the others waiting (the ctest timeout is the last resort).
#define CATCH_CONFIG_RUNNER
#include "catch_compat.hpp"

#include <xcnn/distributed/mpi.hpp>
#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace
{

namespace dist = xcnn::distributed;

template <class T>
auto make_net()
{
    return xcnn::Sequential{xcnn::Conv2D<T>(1, 3, 3, 1, 1), xcnn::ReLU<T>{}, xcnn::MaxPool2D<T>(2), xcnn::Flatten<T>{},
                            xcnn::Dense<T>(3 * 4 * 4, 5)};
}

/// Every value of every parameter of `net`, in order.
template <class Net>
std::vector<double> flat_parameters(Net& net)
{
    std::vector<double> all;
    for (const auto& p : net.parameters())
    {
        all.insert(all.end(), p.data(), p.data() + p.size());
    }
    return all;
}

/// Rank 0's `values` on every rank (same length on all).
std::vector<double> from_root(const dist::communicator& comm, std::vector<double> values)
{
    MPI_Bcast(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, 0, comm.get());
    return values;
}

/// Every rank's `values`, rank after rank, on every rank.
std::vector<std::size_t> gather_all(const dist::communicator& comm, const std::vector<std::size_t>& values)
{
    std::vector<unsigned long long> mine(values.begin(), values.end());
    int count = static_cast<int>(mine.size());
    std::vector<int> counts(static_cast<std::size_t>(comm.size())), offsets(counts.size());
    MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm.get());
    std::partial_sum(counts.begin(), counts.end() - 1, offsets.begin() + 1);
    std::vector<unsigned long long> all(static_cast<std::size_t>(offsets.back() + counts.back()));
    MPI_Allgatherv(mine.data(), count, MPI_UNSIGNED_LONG_LONG, all.data(), counts.data(), offsets.data(),
                   MPI_UNSIGNED_LONG_LONG, comm.get());
    return std::vector<std::size_t>(all.begin(), all.end());
}

bool is_permutation_of_range(std::vector<std::size_t> v, std::size_t n)
{
    std::sort(v.begin(), v.end());
    std::vector<std::size_t> expected(n);
    std::iota(expected.begin(), expected.end(), std::size_t(0));
    return v == expected;
}

} // namespace

TEST_CASE("distributed::split: contiguous parts in rank order, sizes differing by at most one")
{
    for (std::size_t count : {0u, 1u, 5u, 10u, 11u, 64u})
    {
        for (std::size_t ranks = 1; ranks <= 5; ++ranks)
        {
            std::size_t next = 0, smallest = count, largest = 0;
            for (std::size_t r = 0; r < ranks; ++r)
            {
                const dist::share s = dist::split(count, r, ranks);
                CHECK(s.offset == next);
                next += s.count;
                smallest = std::min(smallest, s.count);
                largest = std::max(largest, s.count);
            }
            CHECK(next == count);
            CHECK(largest - smallest <= 1);
        }
    }
    REQUIRE_THROWS_AS(dist::split(10, 2, 2), xcnn::value_error);
    REQUIRE_THROWS_WITH(dist::split(10, 0, 0), xcnn_test::contains("rank 0 of 0 ranks"));
}

TEST_CASE("distributed_sampler: every sample exactly once per epoch, disjointly, for uneven splits too")
{
    for (std::size_t samples : {0u, 1u, 7u, 41u, 100u})
    {
        for (std::size_t batch : {1u, 3u, 10u, 64u})
        {
            for (std::size_t ranks = 1; ranks <= 4; ++ranks)
            {
                for (std::uint64_t epoch : {0u, 1u, 5u})
                {
                    INFO(samples << " samples, batch " << batch << ", " << ranks << " ranks, epoch " << epoch);
                    std::vector<std::size_t> all;
                    std::vector<std::size_t> part;
                    for (std::size_t r = 0; r < ranks; ++r)
                    {
                        dist::distributed_sampler sampler(samples, batch, r, ranks, 42);
                        sampler.set_epoch(epoch);
                        REQUIRE(is_permutation_of_range(sampler.order(), samples));
                        REQUIRE(sampler.batches() == (samples + batch - 1) / batch);
                        const auto mine = sampler.indices();
                        all.insert(all.end(), mine.begin(), mine.end());
                        // Batch by batch: this rank's part is split()'s part of the global batch.
                        std::size_t total = 0;
                        for (std::size_t b = 0; b < sampler.batches(); ++b)
                        {
                            const std::size_t global = sampler.global_batch_size(b);
                            sampler.batch(b, part);
                            CHECK(part.size() == dist::split(global, r, ranks).count);
                            total += part.size();
                        }
                        CHECK(total == mine.size());
                    }
                    CHECK(all.size() == samples); // nothing repeated to even the parts out
                    CHECK(is_permutation_of_range(all, samples));
                }
            }
        }
    }
}

TEST_CASE("distributed_sampler: the order depends on the seed and the epoch only, the same on every library")
{
    dist::distributed_sampler a(10, 4, 0, 2, 7), b(10, 4, 1, 2, 7), c(10, 4, 0, 2, 8);
    CHECK(a.order() == b.order()); // all ranks agree without communicating
    CHECK(a.order() != c.order());
    // Pinned: a Fisher-Yates shuffle over std::mt19937_64 with its own bounded draws, so any
    // standard library gives this permutation (std::shuffle would not).
    const std::vector<std::size_t> epoch0 = a.order();
    a.set_epoch(1);
    CHECK(a.order() != epoch0);
    a.set_epoch(0);
    CHECK(a.order() == epoch0);
    CHECK(epoch0 == std::vector<std::size_t>{9, 2, 7, 4, 8, 3, 6, 5, 0, 1});
    CHECK(a.batch_share(2).offset == 8);
    CHECK(a.batch_share(2).count == 1); // the last batch, 2 samples over 2 ranks
    CHECK(b.batch_share(0).offset == 2);
    REQUIRE_THROWS_WITH(a.batch_share(3), xcnn_test::contains("batch 3 of an epoch of 3 batches"));
    REQUIRE_THROWS_AS(dist::distributed_sampler(10, 0, 0, 1, 1), xcnn::value_error);
    REQUIRE_THROWS_AS(dist::distributed_sampler(10, 4, 2, 2, 1), xcnn::value_error);
}

TEST_CASE("distributed_sampler on the real ranks: the parts of all ranks cover each epoch once")
{
    const dist::communicator comm;
    const std::size_t ranks = static_cast<std::size_t>(comm.size());
    for (std::size_t samples : {7u, 41u})
    {
        dist::distributed_sampler sampler(samples, 10, static_cast<std::size_t>(comm.rank()), ranks, 3);
        sampler.set_epoch(2);
        const auto all = gather_all(comm, sampler.indices());
        CHECK(all.size() == samples);
        CHECK(is_permutation_of_range(all, samples));
    }
}

TEST_CASE("broadcast_parameters: every rank starts from rank 0's weights")
{
    const dist::communicator comm;
    auto net = make_net<float>();
    net.reset_parameters(100 + static_cast<unsigned>(comm.rank())); // different on every rank
    dist::broadcast_parameters(net, comm);
    auto expected = make_net<float>();
    expected.reset_parameters(100);
    CHECK(flat_parameters(net) == flat_parameters(expected));

    // Another network on one rank: every rank refuses, none waits.
    auto small = xcnn::Sequential{xcnn::Flatten<float>{}, xcnn::Dense<float>(16, 2)};
    if (comm.rank() == comm.size() - 1 && comm.size() > 1)
    {
        REQUIRE_THROWS_WITH(dist::broadcast_parameters(small, comm), xcnn_test::contains("different networks"));
    }
    else if (comm.size() > 1)
    {
        REQUIRE_THROWS_AS(dist::broadcast_parameters(net, comm), xcnn::shape_error);
    }
}

TEST_CASE("gradient_averager: 2+ ranks x parts of the batch = 1 process x the full batch after 20 SGD "
          "momentum steps (double)")
{
    const dist::communicator comm;
    const std::size_t rank = static_cast<std::size_t>(comm.rank()), ranks = static_cast<std::size_t>(comm.size());
    // 41 samples in batches of 10: 5 batches an epoch, the last of 1 sample, so some ranks have an
    // empty part; with 3 ranks the full batches split 4, 3, 3.
    constexpr std::size_t samples = 41, batch = 10, steps = 20;
    std::mt19937 data_rng(11);
    std::normal_distribution<double> pixel(0.0, 1.0);
    xt::xtensor<double, 4> images = xt::zeros<double>({samples, std::size_t(1), std::size_t(8), std::size_t(8)});
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({samples});
    for (std::size_t i = 0; i < samples; ++i)
    {
        labels(i) = static_cast<std::int64_t>(i % 5);
        for (std::size_t k = 0; k < 64; ++k)
        {
            images.data()[i * 64 + k] = pixel(data_rng) + (k % 5 == i % 5 ? 1.0 : 0.0);
        }
    }

    struct trainer
    {
        decltype(make_net<double>()) net = make_net<double>();
        xcnn::SoftmaxCrossEntropy<double> loss;
        xcnn::SGD<double> sgd{net.parameters(), 0.05, 0.9, 1e-3};
        xt::xtensor<double, 4> x;
        xt::xtensor<std::int64_t, 1> y;

        // Trains on `indices`; returns the mean loss (0 for no sample).
        double step_on(const std::vector<std::size_t>& indices, const xt::xtensor<double, 4>& images,
                       const xt::xtensor<std::int64_t, 1>& labels)
        {
            if (indices.empty())
            {
                return 0.0;
            }
            x.resize({indices.size(), std::size_t(1), std::size_t(8), std::size_t(8)});
            y.resize({indices.size()});
            for (std::size_t i = 0; i < indices.size(); ++i)
            {
                std::copy(images.data() + indices[i] * 64, images.data() + (indices[i] + 1) * 64, x.data() + i * 64);
                y(i) = labels(indices[i]);
            }
            const double value = loss.forward(net.forward(x), y);
            net.backward(loss.backward());
            return value;
        }
    };

    trainer distributed, reference;
    distributed.net.reset_parameters(1000 + static_cast<unsigned>(rank)); // rank 0's weights win
    reference.net.reset_parameters(1000);
    dist::broadcast_parameters(distributed.net, comm);
    dist::gradient_averager<double> averager(distributed.net, comm, 1);
    CHECK(averager.fused_size() == distributed.net.num_parameters() + 2);

    dist::distributed_sampler mine(samples, batch, rank, ranks, 5), whole(samples, batch, 0, 1, 5);
    std::vector<std::size_t> part, full;
    double worst_loss = 0;
    for (std::size_t step = 0; step < steps; ++step)
    {
        const std::size_t epoch = step / mine.batches(), b = step % mine.batches();
        if (b == 0)
        {
            mine.set_epoch(epoch);
            whole.set_epoch(epoch);
        }
        mine.batch(b, part);
        whole.batch(b, full);
        averager.scalar(0) = distributed.step_on(part, images, labels);
        averager.average(part.size(), mine.global_batch_size(b));
        distributed.sgd.step();
        const double expected_loss = reference.step_on(full, images, labels);
        reference.sgd.step();
        worst_loss = std::max(worst_loss, std::abs(averager.scalar(0) - expected_loss) / std::abs(expected_loss));
    }
    CHECK(averager.communication_calls() == (ranks > 1 ? steps : 0));
    CHECK(worst_loss < 1e-12);

    const auto got = flat_parameters(distributed.net), expected = flat_parameters(reference.net);
    REQUIRE(got.size() == expected.size());
    double worst = 0, largest = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
    {
        worst = std::max(worst, std::abs(got[i] - expected[i]));
        largest = std::max(largest, std::abs(expected[i]));
    }
    INFO("largest difference " << worst << " for weights up to " << largest);
    CHECK(worst <= 1e-6 * largest);
    CHECK(worst <= 1e-12 * largest); // what it is in practice: rounding only
    // Every rank holds the same weights, bit for bit.
    CHECK(from_root(comm, got) == got);
}

TEST_CASE("gradient_averager: buffers and scalars averaged by samples, counters exact, ranks told "
          "different batches refuse together")
{
    const dist::communicator comm;
    const int rank = comm.rank(), ranks = comm.size();
    xt::xtensor<float, 1> weight = xt::zeros<float>({std::size_t(3)}), grad = xt::zeros<float>({std::size_t(3)});
    xt::xtensor<float, 1> running_mean = xt::zeros<float>({std::size_t(2)});
    xt::xtensor<float, 1> counter = xt::zeros<float>({std::size_t(1)});
    std::vector<xcnn::parameter<float>> parameters{xcnn::parameter<float>("weight", weight, grad)};
    std::vector<xcnn::buffer<float>> buffers{xcnn::buffer<float>("running_mean", running_mean),
                                             xcnn::buffer<float>("num_batches_tracked", counter)};
    dist::gradient_averager<float> averager(parameters, buffers, comm, 1);

    // A global batch of 10 split as split() does; rank r's values are r + 1 (+ a NaN on a rank
    // with no sample, which must not matter).
    const std::size_t global = 10;
    const dist::share s = dist::split(global, static_cast<std::size_t>(rank), static_cast<std::size_t>(ranks));
    const float mine = static_cast<float>(rank + 1);
    grad = {mine, 2 * mine, s.count == 0 ? std::nanf("") : -mine};
    running_mean = {mine, 0.5f};
    counter = {937.0f};
    averager.scalar(0) = 10 * mine;
    averager.average(s.count, global);
    double expected = 0;
    for (int r = 0; r < ranks; ++r)
    {
        expected += static_cast<double>(r + 1) *
                    static_cast<double>(
                        dist::split(global, static_cast<std::size_t>(r), static_cast<std::size_t>(ranks)).count);
    }
    expected /= static_cast<double>(global);
    CHECK_THAT(grad(0), xcnn_test::near(expected, 1e-6));
    CHECK_THAT(grad(1), xcnn_test::near(2 * expected, 1e-6));
    CHECK_THAT(grad(2), xcnn_test::near(-expected, 1e-6));
    CHECK_THAT(running_mean(0), xcnn_test::near(expected, 1e-6));
    CHECK(running_mean(1) == 0.5f);
    CHECK(counter(0) == 937.0f); // n * x / n: exact
    CHECK_THAT(averager.scalar(0), xcnn_test::near(10 * expected, 1e-5));

    REQUIRE_THROWS_AS(averager.average(3, 2), xcnn::value_error); // local > global: this rank only
    if (ranks > 1)
    {
        // Parts that do not add up to the global batch: every rank throws, nothing changes.
        const std::size_t part = rank == 0 ? 2 : 1;
        grad = {1.0f, 2.0f, 3.0f};
        REQUIRE_THROWS_WITH(averager.average(part, static_cast<std::size_t>(ranks)),
                            xcnn_test::contains("the ranks' batches add up to " + std::to_string(ranks + 1)));
        CHECK(grad(0) == 1.0f);

        // Different networks: every rank refuses to build the averager.
        std::vector<xcnn::buffer<float>> fewer(buffers.begin(), buffers.begin() + (rank == 1 ? 1 : 2));
        REQUIRE_THROWS_WITH(dist::gradient_averager<float>(parameters, fewer, comm),
                            xcnn_test::contains("every rank must build the same network"));
    }
}

TEST_CASE("gradient_averager over one rank changes nothing, bit for bit, and calls no MPI")
{
    const dist::communicator self(MPI_COMM_SELF);
    auto net = make_net<float>();
    xt::xtensor<float, 4> x = xt::ones<float>({std::size_t(3), std::size_t(1), std::size_t(8), std::size_t(8)});
    xt::xtensor<std::int64_t, 1> y = {0, 1, 2};
    xcnn::SoftmaxCrossEntropy<float> loss;
    loss.forward(net.forward(x), y);
    net.backward(loss.backward());
    std::vector<float> before;
    for (const auto& p : net.parameters())
    {
        before.insert(before.end(), p.grad_data(), p.grad_data() + p.size());
    }
    dist::gradient_averager<float> averager(net, self, 1);
    averager.scalar(0) = 0.1f;
    averager.average(3, 3);
    std::vector<float> after;
    for (const auto& p : net.parameters())
    {
        after.insert(after.end(), p.grad_data(), p.grad_data() + p.size());
    }
    CHECK(after == before);
    CHECK(averager.scalar(0) == 0.1f);
    CHECK(averager.communication_calls() == 0);
    REQUIRE_THROWS_WITH(averager.average(2, 3), xcnn_test::contains("the only rank trained on 2 samples"));
}

int main(int argc, char** argv)
{
    xcnn::distributed::environment mpi(argc, argv);
    return Catch::Session().run(argc, argv);
}
