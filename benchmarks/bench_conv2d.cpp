// Conv2D forward and forward+backward on the layer the performance targets use ("L1"):
// N = 64, 32 -> 64 channels, 32x32, 3x3, padding 1. Reports GFLOP/s with
// 2 * N * C_out * C_in * 9 * 32 * 32 FLOP for the forward pass and three times that for both.
//
// And the convolution sweep: every shape of benchmarks/conv_sweep.csv (the list
// compare_pytorch.py --only sweep reads too), as sweep/<name>/fwd/threads:<t>/real_time and
// sweep/<name>/fwdbwd/threads:<t>/real_time, reporting steps/s. XCNN_CONV_SWEEP names another
// file of the same format.
#include <xcnn/xcnn.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#ifndef XCNN_CONV_SWEEP_FILE
#define XCNN_CONV_SWEEP_FILE "conv_sweep.csv"
#endif

namespace
{

struct conv_case
{
    std::size_t n, c_in, c_out, hw, k, stride, pad;
    double forward_flop() const
    {
        const std::size_t out = (hw + 2 * pad - k) / stride + 1;
        return 2.0 * double(n * c_out * c_in * k * k * out * out);
    }
};

conv_case from(benchmark::State& state)
{
    xcnn::set_num_threads(std::size_t(state.range(7)));
    state.counters["threads"] = double(state.range(7));
    return {std::size_t(state.range(0)), std::size_t(state.range(1)), std::size_t(state.range(2)),
            std::size_t(state.range(3)), std::size_t(state.range(4)), std::size_t(state.range(5)),
            std::size_t(state.range(6))};
}

xt::xtensor<float, 4> random_input(const conv_case& c)
{
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    xt::xtensor<float, 4> x({c.n, c.c_in, c.hw, c.hw});
    for (auto& v : x)
    {
        v = dist(rng);
    }
    return x;
}

void conv_forward(benchmark::State& state)
{
    const auto c = from(state);
    xcnn::Conv2D<float> conv(c.c_in, c.c_out, c.k, c.stride, c.pad);
    const auto x = random_input(c);
    conv.forward(x); // warm-up: buffers sized once
    for (auto _ : state)
    {
        benchmark::DoNotOptimize(conv.forward(x).data());
    }
    state.counters["GFLOP/s"] =
        benchmark::Counter(c.forward_flop() * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void conv_forward_backward(benchmark::State& state)
{
    const auto c = from(state);
    xcnn::Conv2D<float> conv(c.c_in, c.c_out, c.k, c.stride, c.pad);
    const auto x = random_input(c);
    xt::xtensor<float, 4> dy = conv.forward(x);
    conv.backward(dy);
    for (auto _ : state)
    {
        conv.forward(x);
        benchmark::DoNotOptimize(conv.backward(dy).data());
    }
    state.counters["GFLOP/s"] =
        benchmark::Counter(3 * c.forward_flop() * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

/// One line of conv_sweep.csv.
struct sweep_shape
{
    std::string name;
    std::size_t n = 0, c_in = 0, c_out = 0, hw = 0, k = 0, stride = 1, pad = 0, dilation = 1, groups = 1;
};

std::vector<sweep_shape> read_sweep(const std::string& path)
{
    std::ifstream file(path);
    if (!file)
    {
        std::fprintf(stderr, "bench_conv2d: cannot read the sweep's shapes from %s\n", path.c_str());
        std::exit(1);
    }
    std::vector<sweep_shape> shapes;
    std::string line;
    while (std::getline(file, line))
    {
        if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#')
        {
            continue;
        }
        for (auto& ch : line)
        {
            ch = ch == ',' ? ' ' : ch;
        }
        std::istringstream fields(line);
        sweep_shape s;
        if (!(fields >> s.name >> s.n >> s.c_in >> s.c_out >> s.hw >> s.k >> s.stride >> s.pad >> s.dilation >>
              s.groups))
        {
            std::fprintf(stderr, "bench_conv2d: %s: bad line \"%s\"\n", path.c_str(), line.c_str());
            std::exit(1);
        }
        shapes.push_back(s);
    }
    return shapes;
}

xcnn::Conv2D<float> sweep_layer(const sweep_shape& s)
{
    return xcnn::Conv2D<float>(xcnn::Conv2DOptions(s.c_in, s.c_out, s.k)
                                   .stride(s.stride)
                                   .padding(s.pad)
                                   .dilation(s.dilation)
                                   .groups(s.groups));
}

void sweep_forward(benchmark::State& state, const sweep_shape& s)
{
    xcnn::set_num_threads(std::size_t(state.range(0)));
    auto conv = sweep_layer(s);
    const auto x = random_input({s.n, s.c_in, s.c_out, s.hw, s.k, s.stride, s.pad});
    conv.forward(x); // warm-up: buffers sized once
    for (auto _ : state)
    {
        benchmark::DoNotOptimize(conv.forward(x).data());
    }
    state.counters["steps/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}

void sweep_forward_backward(benchmark::State& state, const sweep_shape& s)
{
    xcnn::set_num_threads(std::size_t(state.range(0)));
    auto conv = sweep_layer(s);
    const auto x = random_input({s.n, s.c_in, s.c_out, s.hw, s.k, s.stride, s.pad});
    xt::xtensor<float, 4> dy = conv.forward(x);
    dy *= 0.5f;
    conv.backward(dy);
    for (auto _ : state)
    {
        conv.forward(x);
        benchmark::DoNotOptimize(conv.backward(dy).data());
    }
    state.counters["steps/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}

void register_sweep()
{
    const char* override_path = std::getenv("XCNN_CONV_SWEEP");
    for (const auto& s : read_sweep(override_path != nullptr ? override_path : XCNN_CONV_SWEEP_FILE))
    {
        for (auto* b :
             {benchmark::RegisterBenchmark(("sweep/" + s.name + "/fwd").c_str(), sweep_forward, s),
              benchmark::RegisterBenchmark(("sweep/" + s.name + "/fwdbwd").c_str(), sweep_forward_backward, s)})
        {
            b->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
        }
    }
}

} // namespace

// Arguments: N, C_in, C_out, H = W, K, stride, padding, threads. Wall-clock time: with several
// threads the CPU time of the main thread alone would flatter the result.
void conv_cases(benchmark::internal::Benchmark* b)
{
    for (long threads : {1, 2})
    {
        b->Args({64, 32, 64, 32, 3, 1, 1, threads}); // "L1" of the performance targets
        b->Args({64, 1, 6, 28, 5, 1, 2, threads});   // LeNet's first convolution
        b->Args({64, 6, 16, 14, 5, 1, 0, threads});  // LeNet's second convolution
        b->Args({64, 1, 8, 28, 3, 1, 1, threads});   // the seed net's first convolution
        b->Args({64, 8, 16, 28, 3, 1, 1, threads});  // the seed net's second convolution
    }
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(conv_forward)->Apply(conv_cases);
BENCHMARK(conv_forward_backward)->Apply(conv_cases);

int main(int argc, char** argv)
{
    register_sweep();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
    {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
