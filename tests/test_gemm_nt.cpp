// Tests of xcnn::detail::gemm_nt (C = A * B^T over segmented runs, both operands read in place)
// against a naive loop in double written here: edge tiles, partial vectors, overlapping strips
// of B, column biases, several groups of segments, and bit-identical results at 1 and 2 threads.
#include "catch_compat.hpp"

#include <xcnn/core/gemm_nt.hpp>
#include <xcnn/core/threading.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <vector>

namespace
{

struct nt_case
{
    std::size_t m, n, length, segments;
    bool bias;
};

/// The operands of one problem, laid out with gaps: rows of A `pad_a` apart beyond the run,
/// strips of B at arbitrary (overlapping) offsets inside a segment, C rows padded.
template <class T>
struct nt_problem
{
    nt_case shape;
    std::vector<T> a, b, bias;
    std::vector<std::ptrdiff_t> b_rows;
    std::size_t a_row, a_segment, b_segment, c_row;

    nt_problem(const nt_case& s, std::mt19937& rng) : shape(s)
    {
        std::uniform_real_distribution<double> dist(-1.0, 1.0);
        a_row = s.length + 3;
        a_segment = s.m * a_row + 5;
        b_segment = s.length + 2 * s.n + 7;
        c_row = s.n + 2;
        a.resize(s.segments * a_segment);
        b.resize(s.segments * b_segment);
        for (auto& v : a)
        {
            v = T(dist(rng));
        }
        for (auto& v : b)
        {
            v = T(dist(rng));
        }
        b_rows.resize(s.n);
        std::uniform_int_distribution<std::ptrdiff_t> offset(0, static_cast<std::ptrdiff_t>(2 * s.n + 7));
        for (auto& r : b_rows)
        {
            r = offset(rng); // strips of B overlap, like the shifted taps of a convolution
        }
        bias.resize(s.n);
        for (auto& v : bias)
        {
            v = T(dist(rng));
        }
    }

    /// C; with `group_sums`, room for the groups' sums is given (filled with NaN: every element
    /// used must be written first), so threads may run whole groups.
    std::vector<T> run(bool group_sums = false) const
    {
        std::vector<T> c(shape.m * c_row, T(-7)); // stale values must be overwritten
        xcnn::detail::gemm_nt_operands<T> op;
        op.a = a.data();
        op.a_row = a_row;
        op.a_segment = a_segment;
        op.b = b.data();
        op.b_rows = b_rows.data();
        op.b_segment = b_segment;
        op.length = shape.length;
        op.segments = shape.segments;
        op.c = c.data();
        op.c_row = c_row;
        op.col_bias = shape.bias ? bias.data() : nullptr;
        std::vector<T> sums;
        if (group_sums)
        {
            sums.assign(xcnn::detail::gemm_nt_group_sums(shape.m, shape.n, op), std::numeric_limits<T>::quiet_NaN());
            op.group_sums = sums.data();
        }
        xcnn::detail::gemm_nt(shape.m, shape.n, op);
        return c;
    }

    void check(const std::vector<T>& c) const
    {
        const double eps = std::is_same<T, float>::value ? 1e-5 : 1e-13;
        std::size_t bad = 0;
        for (std::size_t i = 0; i < shape.m; ++i)
        {
            for (std::size_t j = 0; j < shape.n; ++j)
            {
                double expected = shape.bias ? double(bias[j]) : 0.0, magnitude = std::abs(expected);
                for (std::size_t s = 0; s < shape.segments; ++s)
                {
                    const T* ar = a.data() + s * a_segment + i * a_row;
                    const T* br = b.data() + s * b_segment + b_rows[j];
                    for (std::size_t k = 0; k < shape.length; ++k)
                    {
                        expected += double(ar[k]) * double(br[k]);
                        magnitude += std::abs(double(ar[k]) * double(br[k]));
                    }
                }
                if (!(std::abs(double(c[i * c_row + j]) - expected) <= eps * magnitude + 1e-30))
                {
                    ++bad;
                }
            }
            for (std::size_t j = shape.n; j < c_row; ++j)
            {
                CHECK(c[i * c_row + j] == T(-7)); // the row padding of C is not touched
            }
        }
        CHECK(bad == 0);
    }
};

template <class T>
void gemm_nt_matches_naive()
{
    using blocking = xcnn::detail::gemm_nt_blocking<T>;
    constexpr std::size_t RI = blocking::ri, RJ = blocking::rj, S = xsimd::batch<T>::size;
    const std::vector<nt_case> cases = {
        {1, 1, 1, 1, false},
        {RI, RJ, S, 1, true},
        {RI + 1, RJ + 1, S - 1, 2, false},
        {2 * RI + 3, 3 * RJ - 1, 3 * S + 5, 3, true},
        {RI - 1, 2 * RJ + 1, S + 1, 1, true},
        {9, 13, 2 * S, 4, false},
        {5, 3, 0, 2, true}, // empty runs: C = the bias (or zero)
        {4, 6, 7, 0, true}, // no segments: likewise
    };
    std::mt19937 rng(91);
    for (const auto& s : cases)
    {
        CAPTURE(s.m, s.n, s.length, s.segments, s.bias);
        const nt_problem<T> p(s, rng);
        p.check(p.run());
    }
}

} // namespace

TEST_CASE("gemm_nt matches a naive loop at edge tiles and partial vectors", "[gemm_nt]")
{
    SECTION("float")
    {
        gemm_nt_matches_naive<float>();
    }
    SECTION("double")
    {
        gemm_nt_matches_naive<double>();
    }
}

TEST_CASE("gemm_nt: several groups of segments, bit-identical at 1 and 2 threads", "[gemm_nt]")
{
    // Runs long enough that a group holds only a few segments (blocking::chunk_bytes), so later
    // groups accumulate into C, and enough work for the threads to split the tiles.
    using blocking = xcnn::detail::gemm_nt_blocking<float>;
    const std::size_t m = 7, n = 9;
    const std::size_t length = blocking::chunk_bytes / ((m + n) * sizeof(float)) / 3 + 11;
    const nt_case shape{m, n, length, 7, true};
    std::mt19937 rng(92);
    const nt_problem<float> p(shape, rng);
    const std::size_t saved = xcnn::get_num_threads();
    xcnn::set_num_threads(1);
    const auto one = p.run();
    xcnn::set_num_threads(2);
    const auto two = p.run();
    xcnn::set_num_threads(saved);
    p.check(one);
    CHECK(two == one);
}

TEST_CASE("gemm_nt: threads running whole groups of segments give the bits of one thread", "[gemm_nt]")
{
    // With room for the groups' sums, threads take whole groups (a convolution's dW over a batch:
    // 64 images of a 28 x 28 plane, 5 x 5 taps), the later groups' sums added in order; uneven
    // groups, more threads than cores.
    const std::vector<nt_case> cases{
        {6, 25, 896, 64, false},
        {7, 9, 3001, 7, true},
        {16, 150, 136, 5, true},
    };
    std::mt19937 rng(93);
    const std::size_t saved = xcnn::get_num_threads();
    for (const auto& s : cases)
    {
        CAPTURE(s.m, s.n, s.length, s.segments, s.bias);
        const nt_problem<float> p(s, rng);
        xcnn::set_num_threads(1);
        const auto one = p.run(true);
        p.check(one);
        CHECK(p.run(false) == one);
        for (const std::size_t threads : {2, 3})
        {
            CAPTURE(threads);
            xcnn::set_num_threads(threads);
            CHECK(p.run(true) == one);
            CHECK(p.run(false) == one);
        }
    }
    xcnn::set_num_threads(saved);
}
