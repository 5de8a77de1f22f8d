// The layers of a modern small CNN one at a time, float, batch 64: forward (training mode) and
// forward + backward, reporting images/s. benchmarks/compare_pytorch.py runs the same layers in
// PyTorch (its "newlayers" group) on the same shapes.
//
// Names: layer_forward/<case>/threads:<t>/real_time and layer_forward_backward/<case>/...; every
// case runs one step before timing, so buffers and workspaces are sized before the clock starts.
#include <xcnn/xcnn.hpp>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <random>
#include <string>

namespace
{

constexpr std::size_t batch = 64;

/// A (N, C, H, W) tensor uniform in [-1, 1) from a fixed seed.
xt::xtensor<float, 4> random_input(std::size_t c, std::size_t h, std::size_t w)
{
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    xt::xtensor<float, 4> x(xt::xtensor<float, 4>::shape_type{batch, c, h, w});
    for (auto& v : x)
    {
        v = dist(rng);
    }
    return x;
}

template <class Make>
void layer_forward(benchmark::State& state, Make make, std::size_t c, std::size_t h, std::size_t w)
{
    xcnn::set_num_threads(std::size_t(state.range(0)));
    auto layer = make();
    const auto x = random_input(c, h, w);
    layer.forward(x);
    for (auto _ : state)
    {
        benchmark::DoNotOptimize(layer.forward(x).data());
    }
    state.counters["images/s"] = benchmark::Counter(double(batch * state.iterations()), benchmark::Counter::kIsRate);
}

template <class Make>
void layer_forward_backward(benchmark::State& state, Make make, std::size_t c, std::size_t h, std::size_t w)
{
    xcnn::set_num_threads(std::size_t(state.range(0)));
    auto layer = make();
    const auto x = random_input(c, h, w);
    const auto dy = xt::eval(layer.forward(x) * 0.5f);
    layer.backward(dy);
    for (auto _ : state)
    {
        layer.forward(x);
        benchmark::DoNotOptimize(layer.backward(dy).data());
    }
    state.counters["images/s"] = benchmark::Counter(double(batch * state.iterations()), benchmark::Counter::kIsRate);
}

void thread_cases(benchmark::internal::Benchmark* b)
{
    b->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime();
}

// Each case: a name, how to make the layer, and its input's C, H, W (batch 64). The names are
// compare_pytorch.py's keys.
#define XCNN_LAYER_CASE(name, make, c, h, w)                                                                           \
    BENCHMARK_CAPTURE(layer_forward, name, make, c, h, w)->Apply(thread_cases);                                        \
    BENCHMARK_CAPTURE(layer_forward_backward, name, make, c, h, w)->Apply(thread_cases)

XCNN_LAYER_CASE(
    batchnorm2d_32x28, [] { return xcnn::BatchNorm2D<float>(32); }, 32, 28, 28);
XCNN_LAYER_CASE(
    batchnorm2d_64x8, [] { return xcnn::BatchNorm2D<float>(64); }, 64, 8, 8);
XCNN_LAYER_CASE(
    dropout_32x28, [] { return xcnn::Dropout<float>(0.5f); }, 32, 28, 28);
XCNN_LAYER_CASE(
    leaky_relu_32x28, [] { return xcnn::LeakyReLU<float>(0.01f); }, 32, 28, 28);
XCNN_LAYER_CASE(
    sigmoid_32x28, [] { return xcnn::Sigmoid<float>{}; }, 32, 28, 28);
XCNN_LAYER_CASE(
    tanh_32x28, [] { return xcnn::Tanh<float>{}; }, 32, 28, 28);
XCNN_LAYER_CASE(
    gelu_32x28, [] { return xcnn::GELU<float>{}; }, 32, 28, 28);
XCNN_LAYER_CASE(
    avgpool2_32x28, [] { return xcnn::AvgPool2D<float>(2); }, 32, 28, 28);
XCNN_LAYER_CASE(
    global_avgpool_128x8, [] { return xcnn::GlobalAvgPool2D<float>{}; }, 128, 8, 8);
XCNN_LAYER_CASE(
    maxpool3s2p1_32x56, [] { return xcnn::MaxPool2D<float>(3, 2, 1); }, 32, 56, 56);
XCNN_LAYER_CASE(
    depthwise3x3_32x28, [] { return xcnn::Conv2D<float>(xcnn::Conv2DOptions(32, 32, 3).padding(1).groups(32)); }, 32,
    28, 28);
XCNN_LAYER_CASE(
    depthwise3x3_128x8, [] { return xcnn::Conv2D<float>(xcnn::Conv2DOptions(128, 128, 3).padding(1).groups(128)); },
    128, 8, 8);
XCNN_LAYER_CASE(
    dilated3x3_32x28, [] { return xcnn::Conv2D<float>(xcnn::Conv2DOptions(32, 32, 3).padding(2).dilation(2)); }, 32, 28,
    28);
XCNN_LAYER_CASE(
    conv3x3s2_32to64x14,
    [] { return xcnn::Conv2D<float>(xcnn::Conv2DOptions(32, 64, 3).stride(2).padding(1).bias(false)); }, 32, 14, 14);
XCNN_LAYER_CASE(
    residual_32x14,
    []
    {
        return xcnn::Residual(xcnn::Sequential{
            xcnn::Conv2D<float>(xcnn::Conv2DOptions(32, 32, 3).padding(1).bias(false)), xcnn::BatchNorm2D<float>(32),
            xcnn::ReLU<float>{}, xcnn::Conv2D<float>(xcnn::Conv2DOptions(32, 32, 3).padding(1).bias(false)),
            xcnn::BatchNorm2D<float>(32)});
    },
    32, 14, 14);

} // namespace

BENCHMARK_MAIN();
