// Whole-network steps on batches of 64 random 1x28x28 float images (MNIST-sized), reporting images/s:
//
//   train_step/<model>  forward + SoftmaxCrossEntropy + backward_parameters + SGD step (lr 0.01,
//                       momentum 0.9): what one batch of training costs. backward_parameters skips
//                       the gradient of the network's input, which PyTorch does not compute either.
//   predict/<model>     inference (Sequential::predict): no training caches, no backward.
//
// Models: "lenet" = LeNet-5 with ReLU, Conv(1->6, 5, pad 2) - ReLU - MaxPool 2 - Conv(6->16, 5) - ReLU -
// MaxPool 2 - Flatten - Dense(400->120) - ReLU - Dense(120->84) - ReLU - Dense(84->10); "seed" = the seed
// project's net, Conv(1->8, 3, pad 1) - ReLU - Conv(8->16, 3, pad 1) - ReLU - Flatten - Dense(12544->10);
// "resnet" = xcnn-mnist --model resnet (examples/mnist/models.hpp: BatchNorm, residual blocks, a
// stride-2 block with a 1x1 projection, global average pooling).
// benchmarks/compare_pytorch.py builds the same three networks with torch.nn.
//
// Names: <step>/<model>/threads:<1|2>/real_time. Every case runs one step before timing, so buffers
// and workspaces are sized before the clock starts.
#include <xcnn/layers/conv2d.hpp>
#include <xcnn/layers/dense.hpp>
#include <xcnn/layers/flatten.hpp>
#include <xcnn/layers/maxpool2d.hpp>
#include <xcnn/layers/relu.hpp>
#include <xcnn/loss/softmax_cross_entropy.hpp>
#include <xcnn/network/sequential.hpp>
#include <xcnn/optim/sgd.hpp>

#include "models.hpp"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <random>

namespace
{

constexpr std::size_t batch = 64;

// The networks of the MNIST example, so the benchmark measures exactly what it trains.
auto make_lenet()
{
    return mnist_models::make_lenet<float>();
}
auto make_seed()
{
    return mnist_models::make_seed_net<float>();
}

auto make_resnet()
{
    return mnist_models::make_resnet<float>();
}
// The same networks behind xcnn::Network's run-time chain: its cost over Sequential's.
auto make_lenet_network()
{
    return xcnn::Network<float>(mnist_models::make_lenet<float>());
}
auto make_seed_network()
{
    return xcnn::Network<float>(mnist_models::make_seed_net<float>());
}
auto make_resnet_network()
{
    return xcnn::Network<float>(mnist_models::make_resnet<float>());
}

/// A batch of images uniform in [-1, 1) and labels in [0, 10), from a fixed seed.
struct random_batch
{
    xt::xtensor<float, 4> images;
    xt::xtensor<std::int64_t, 1> labels;

    random_batch()
        : images(xt::xtensor<float, 4>::shape_type{batch, 1, 28, 28}),
          labels(xt::xtensor<std::int64_t, 1>::shape_type{batch})
    {
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> pixel(-1.f, 1.f);
        std::uniform_int_distribution<std::int64_t> label(0, 9);
        for (auto& v : images)
        {
            v = pixel(rng);
        }
        for (auto& v : labels)
        {
            v = label(rng);
        }
    }
};

std::size_t use_threads(benchmark::State& state)
{
    const auto threads = static_cast<std::size_t>(state.range(0));
    xcnn::set_num_threads(threads);
    state.counters["threads"] = double(threads);
    return threads;
}

void report(benchmark::State& state)
{
    state.counters["images/s"] =
        benchmark::Counter(double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
}

template <class MakeNet>
void train_step(benchmark::State& state, MakeNet make_net)
{
    use_threads(state);
    auto net = make_net();
    const random_batch data;
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.01f, 0.9f);
    auto step = [&]
    {
        const float value = loss.forward(net.forward(data.images), data.labels);
        net.backward_parameters(loss.backward());
        sgd.step();
        return value;
    };
    step(); // warm-up: every buffer, workspace and momentum buffer sized once
    for (auto _ : state)
    {
        benchmark::DoNotOptimize(step());
    }
    report(state);
}

template <class MakeNet>
void predict(benchmark::State& state, MakeNet make_net)
{
    use_threads(state);
    auto net = make_net();
    const random_batch data;
    net.predict(data.images); // warm-up
    for (auto _ : state)
    {
        benchmark::DoNotOptimize(net.predict(data.images).data());
    }
    report(state);
}

void thread_cases(benchmark::internal::Benchmark* b)
{
    // Wall-clock time: with several threads the CPU time of the main thread alone would flatter.
    b->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
}

} // namespace

BENCHMARK_CAPTURE(train_step, lenet, make_lenet)->Apply(thread_cases);
BENCHMARK_CAPTURE(predict, lenet, make_lenet)->Apply(thread_cases);
BENCHMARK_CAPTURE(train_step, seed, make_seed)->Apply(thread_cases);
BENCHMARK_CAPTURE(predict, seed, make_seed)->Apply(thread_cases);
BENCHMARK_CAPTURE(train_step, resnet, make_resnet)->Apply(thread_cases);
BENCHMARK_CAPTURE(predict, resnet, make_resnet)->Apply(thread_cases);
BENCHMARK_CAPTURE(train_step, lenet_network, make_lenet_network)->Apply(thread_cases);
BENCHMARK_CAPTURE(predict, lenet_network, make_lenet_network)->Apply(thread_cases);
BENCHMARK_CAPTURE(train_step, seed_network, make_seed_network)->Apply(thread_cases);
BENCHMARK_CAPTURE(predict, seed_network, make_seed_network)->Apply(thread_cases);
BENCHMARK_CAPTURE(train_step, resnet_network, make_resnet_network)->Apply(thread_cases);
BENCHMARK_CAPTURE(predict, resnet_network, make_resnet_network)->Apply(thread_cases);

BENCHMARK_MAIN();
