// xcnn's GEMM kernel against OpenBLAS's cblas_sgemm, in the same binary, on float matrices:
//
//   square     M = K = N = 1024
//   L1_forward M = 64, K = 288,   N = 65536  (Conv2D 32 -> 64, 3x3, pad 1 on 64x32x32x32: Y = W . windows)
//   L1_dW      M = 64, K = 65536, N = 288    (dW = dY . windows over N, OH, OW)
//   L1_dX      M = 32, K = 576,   N = 65536  (dX = rotated W . windows of the placed dY)
//
// All operands are plain row-major matrices here, so this measures the kernels (packing, micro-kernel,
// blocking, threading) on the shapes the convolution lowers to, not the window-view gathers of the
// layer itself (bench_conv2d measures those). xcnn runs the offset-table overload with one
// gemm_workspace reused across iterations, as a layer does; OpenBLAS runs cblas_sgemm (RowMajor,
// NoTrans, NoTrans, alpha 1, beta 0). Each reports GFLOP/s = 2 M N K / wall-clock time.
//
// Names: gemm/<xcnn|openblas>/<shape>/threads:<1|2>/real_time. The context records which OpenBLAS
// kernel ran (openblas_core): Debian's OpenBLAS 0.3.21 picks "Cooperlake" on AMD Zen 4, and
// OPENBLAS_CORETYPE=Haswell selects another one (benchmarks/compare_pytorch.py runs both).
// Without OpenBLAS at build time (XCNN_BENCH_OPENBLAS undefined) only the xcnn cases exist.
#include <xcnn/core/gemm.hpp>
#include <xcnn/core/threading.hpp>

#include <benchmark/benchmark.h>

#if defined(XCNN_BENCH_OPENBLAS)
#include <cblas.h>
#endif

#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace
{

struct gemm_shape
{
    const char* name;
    std::size_t m, k, n;
    double flop() const { return 2.0 * double(m) * double(k) * double(n); }
};

const gemm_shape shapes[] = {
    {"square", 1024, 1024, 1024},
    {"L1_forward", 64, 288, 65536},
    {"L1_dW", 64, 65536, 288},
    {"L1_dX", 32, 576, 65536},
};

/// Row-major A (m x k), B (k x n), C (m x n); A and B uniform in [-1, 1] from a fixed seed.
struct matrices
{
    std::vector<float> a, b, c;

    explicit matrices(const gemm_shape& s) : a(s.m * s.k), b(s.k * s.n), c(s.m * s.n, 0.f)
    {
        std::mt19937 rng(42);
        std::uniform_real_distribution<float> dist(-1.f, 1.f);
        for (auto& v : a)
        {
            v = dist(rng);
        }
        for (auto& v : b)
        {
            v = dist(rng);
        }
    }

    /// Compares a few entries of C with a double-precision dot product: a fast wrong kernel must
    /// not report a number.
    bool spot_check(const gemm_shape& s) const
    {
        std::mt19937 rng(7);
        for (int t = 0; t < 16; ++t)
        {
            const std::size_t i = rng() % s.m, j = rng() % s.n;
            double expected = 0, magnitude = 0;
            for (std::size_t p = 0; p < s.k; ++p)
            {
                const double term = double(a[i * s.k + p]) * double(b[p * s.n + j]);
                expected += term;
                magnitude += std::abs(term);
            }
            if (std::abs(double(c[i * s.n + j]) - expected) > 1e-5 * magnitude + 1e-6)
            {
                return false;
            }
        }
        return true;
    }
};

std::vector<std::ptrdiff_t> offsets(std::size_t count, std::size_t stride)
{
    std::vector<std::ptrdiff_t> out(count);
    for (std::size_t i = 0; i < count; ++i)
    {
        out[i] = static_cast<std::ptrdiff_t>(i * stride);
    }
    return out;
}

void report(benchmark::State& state, const gemm_shape& s, std::size_t threads)
{
    state.counters["threads"] = double(threads);
    state.counters["GFLOP/s"] =
        benchmark::Counter(s.flop() * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void gemm_xcnn(benchmark::State& state, const gemm_shape& s)
{
    const auto threads = static_cast<std::size_t>(state.range(0));
    xcnn::set_num_threads(threads);
#if defined(XCNN_BENCH_OPENBLAS)
    openblas_set_num_threads(1); // OpenBLAS is idle here; keep its pool from competing for cores
#endif
    matrices x(s);
    const auto a_rows = offsets(s.m, s.k), a_cols = offsets(s.k, 1);
    const auto b_rows = offsets(s.k, s.n), b_cols = offsets(s.n, 1);
    const auto c_rows = offsets(s.m, s.n), c_cols = offsets(s.n, 1);
    const xcnn::offset_matrix<const float> a{x.a.data(), a_rows.data(), a_cols.data()};
    const xcnn::offset_matrix<const float> b{x.b.data(), b_rows.data(), b_cols.data()};
    const xcnn::offset_matrix<float> c{x.c.data(), c_rows.data(), c_cols.data()};
    const xcnn::gemm_epilogue<float> epilogue; // C = A B
    xcnn::gemm_workspace<float> workspace;     // reused: packing buffers are allocated once

    xcnn::gemm<float>(s.m, s.n, s.k, a, b, c, epilogue, workspace); // warm-up
    if (!x.spot_check(s))
    {
        state.SkipWithError("xcnn::gemm gave a wrong result");
        return;
    }
    for (auto _ : state)
    {
        xcnn::gemm<float>(s.m, s.n, s.k, a, b, c, epilogue, workspace);
        benchmark::DoNotOptimize(x.c.data());
        benchmark::ClobberMemory();
    }
    report(state, s, threads);
}

#if defined(XCNN_BENCH_OPENBLAS)
void gemm_openblas(benchmark::State& state, const gemm_shape& s)
{
    const auto threads = static_cast<std::size_t>(state.range(0));
    xcnn::set_num_threads(1);
    openblas_set_num_threads(static_cast<int>(threads));
    matrices x(s);
    const int m = int(s.m), n = int(s.n), k = int(s.k);
    auto run = [&]
    {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.f, x.a.data(), k, x.b.data(), n, 0.f,
                    x.c.data(), n);
    };
    run(); // warm-up
    if (!x.spot_check(s))
    {
        state.SkipWithError("cblas_sgemm gave a wrong result");
        return;
    }
    for (auto _ : state)
    {
        run();
        benchmark::DoNotOptimize(x.c.data());
        benchmark::ClobberMemory();
    }
    state.SetLabel(openblas_get_corename());
    report(state, s, threads);
}
#endif

void add_cases(const std::string& implementation, void (*function)(benchmark::State&, const gemm_shape&))
{
    for (const auto& s : shapes)
    {
        benchmark::RegisterBenchmark(("gemm/" + implementation + "/" + s.name).c_str(), function, s)
            ->ArgName("threads")
            ->Arg(1)
            ->Arg(2)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime(); // wall clock: with two threads the main thread's CPU time would flatter
    }
}

} // namespace

int main(int argc, char** argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
    {
        return 1;
    }
    add_cases("xcnn", gemm_xcnn);
    benchmark::AddCustomContext("xcnn_simd", xsimd::default_arch::name());
#if defined(XCNN_BENCH_OPENBLAS)
    add_cases("openblas", gemm_openblas);
    benchmark::AddCustomContext("openblas_core", openblas_get_corename());
    benchmark::AddCustomContext("openblas_config", openblas_get_config());
#else
    benchmark::AddCustomContext("openblas_core", "none (built without OpenBLAS)");
#endif
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
