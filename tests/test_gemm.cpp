// Tests of xcnn::gemm (strided BLAS-style and offset-table forms) against a naive triple loop in
// double written here, at sizes placed around every register and cache block of the kernel.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"

#include <xcnn/core/gemm.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <random>
#include <type_traits>
#include <vector>

namespace
{

template <class T>
using blocking = xcnn::detail::gemm_blocking<T>;

/// How a matrix is laid out in its buffer.
enum class layout
{
    row_major,  // (i, j) at i * cols + j
    col_major,  // (i, j) at j * rows + i: a transposed operand
    row_padded, // row-major with 3 unused elements after every row
    col_padded, // column-major with 2 unused elements after every column
    reversed,   // row-major read backwards: both strides negative
};

const char* layout_name(layout l)
{
    switch (l)
    {
    case layout::row_major:
        return "row_major";
    case layout::col_major:
        return "col_major";
    case layout::row_padded:
        return "row_padded";
    case layout::col_padded:
        return "col_padded";
    case layout::reversed:
        return "reversed";
    }
    return "?";
}

/// A matrix inside a buffer: element (i, j) is buf[origin + i * rs + j * cs]. The buffer
/// elements outside the matrix hold `sentinel`.
template <class T>
struct strided
{
    std::vector<T> buf;
    std::size_t rows = 0, cols = 0;
    std::ptrdiff_t rs = 0, cs = 0, origin = 0;

    std::size_t pos(std::size_t i, std::size_t j) const
    {
        return static_cast<std::size_t>(origin + static_cast<std::ptrdiff_t>(i) * rs +
                                        static_cast<std::ptrdiff_t>(j) * cs);
    }
    T& at(std::size_t i, std::size_t j) { return buf[pos(i, j)]; }
    T at(std::size_t i, std::size_t j) const { return buf[pos(i, j)]; }
    T* ptr() { return buf.data() + origin; }
    const T* ptr() const { return buf.data() + origin; }
    /// Which buffer elements belong to the matrix.
    std::vector<bool> mask() const
    {
        std::vector<bool> in(buf.size(), false);
        for (std::size_t i = 0; i < rows; ++i)
        {
            for (std::size_t j = 0; j < cols; ++j)
            {
                in[pos(i, j)] = true;
            }
        }
        return in;
    }
};

template <class T>
strided<T> make_matrix(std::size_t rows, std::size_t cols, layout l, std::mt19937& rng, T sentinel)
{
    strided<T> m;
    m.rows = rows;
    m.cols = cols;
    const auto r = static_cast<std::ptrdiff_t>(rows), c = static_cast<std::ptrdiff_t>(cols);
    std::size_t size = rows * cols;
    switch (l)
    {
    case layout::row_major:
        m.rs = c;
        m.cs = 1;
        break;
    case layout::col_major:
        m.rs = 1;
        m.cs = r;
        break;
    case layout::row_padded:
        m.rs = c + 3;
        m.cs = 1;
        size = rows * (cols + 3);
        break;
    case layout::col_padded:
        m.rs = 1;
        m.cs = r + 2;
        size = (rows + 2) * cols;
        break;
    case layout::reversed:
        m.rs = -c;
        m.cs = -1;
        m.origin = size == 0 ? 0 : static_cast<std::ptrdiff_t>(size) - 1;
        break;
    }
    m.buf.assign(std::max<std::size_t>(size, 1), sentinel);
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    for (std::size_t i = 0; i < rows; ++i)
    {
        for (std::size_t j = 0; j < cols; ++j)
        {
            m.at(i, j) = static_cast<T>(dist(rng));
        }
    }
    return m;
}

template <class T>
double base_tolerance()
{
    return std::is_same<T, float>::value ? 1e-5 : 1e-12;
}

/// Entries are U(-1, 1), so a K-long dot product has magnitude ~ sqrt(K).
template <class T>
double tolerance(std::size_t k, double alpha, double beta)
{
    return base_tolerance<T>() * std::max(1.0, std::sqrt(static_cast<double>(k))) *
           (1.0 + std::abs(alpha) + std::abs(beta));
}

const double qnan = std::numeric_limits<double>::quiet_NaN();

/// Runs the strided gemm on freshly made operands and checks every element of C against the
/// naive product, that C's padding is untouched, and that nothing non-finite appears. A and B
/// carry NaN outside the matrices, so a read out of bounds of the tables poisons C.
template <class T>
void check_strided(std::size_t m, std::size_t n, std::size_t k, double alpha, double beta, layout la, layout lb,
                   layout lc, bool nan_c, std::mt19937& rng)
{
    INFO("m " << m << ", n " << n << ", k " << k << ", alpha " << alpha << ", beta " << beta << ", A "
              << layout_name(la) << ", B " << layout_name(lb) << ", C " << layout_name(lc)
              << (nan_c ? ", C = NaN" : ""));
    const auto a = make_matrix<T>(m, k, la, rng, static_cast<T>(qnan));
    const auto b = make_matrix<T>(k, n, lb, rng, static_cast<T>(qnan));
    auto c = make_matrix<T>(m, n, lc, rng, T(777));
    if (nan_c)
    {
        for (std::size_t i = 0; i < m; ++i)
        {
            for (std::size_t j = 0; j < n; ++j)
            {
                c.at(i, j) = static_cast<T>(qnan);
            }
        }
    }
    const strided<T> before = c;

    xcnn::gemm<T>(m, n, k, static_cast<T>(alpha), a.ptr(), a.rs, a.cs, b.ptr(), b.rs, b.cs, static_cast<T>(beta),
                  c.ptr(), c.rs, c.cs);

    std::vector<double> arow(k);
    double worst = 0;
    std::size_t nonfinite = 0;
    for (std::size_t i = 0; i < m; ++i)
    {
        for (std::size_t p = 0; p < k; ++p)
        {
            arow[p] = static_cast<double>(a.at(i, p));
        }
        for (std::size_t j = 0; j < n; ++j)
        {
            double s = 0;
            for (std::size_t p = 0; p < k; ++p)
            {
                s += arow[p] * static_cast<double>(b.at(p, j));
            }
            // beta == 0: C is write-only, its old value (maybe NaN) is not part of the result.
            const double want = alpha * s + (beta != 0 ? beta * static_cast<double>(before.at(i, j)) : 0.0);
            const double got = static_cast<double>(c.at(i, j));
            if (!std::isfinite(got))
            {
                ++nonfinite;
            }
            else
            {
                worst = std::max(worst, std::abs(got - want));
            }
        }
    }
    const auto in_c = c.mask();
    std::size_t padding_changed = 0;
    for (std::size_t q = 0; q < c.buf.size(); ++q)
    {
        padding_changed += !in_c[q] && c.buf[q] != before.buf[q];
    }
    INFO("max |got - want| = " << worst);
    CHECK(nonfinite == 0);
    CHECK(worst <= tolerance<T>(k, alpha, beta));
    CHECK(padding_changed == 0);
}

struct mnk
{
    std::size_t m, n, k;
};

/// Sizes just below, at and above each of the kernel's blocks for scalar type T.
template <class T>
std::vector<mnk> boundary_sizes()
{
    using B = blocking<T>;
    return {
        {1, 1, 1},
        {B::mr, B::nr, B::kc},
        {B::mr - 1, B::nr - 1, B::kc - 1},
        {B::mr + 1, B::nr + 1, B::kc + 1},
        {B::mc, 2 * B::nr, 2 * B::kc},
        {B::mc + 1, 3 * B::nr - 1, 2 * B::kc + 3},
        {2 * B::mc + B::mr + 3, B::nr + 3, 17},
        {B::mr + 2, B::nc + 3, B::kc + 1},
        {3, 2 * B::nc + 1, 2},
        {B::mc - 1, B::nc + B::nr + 1, 5},
    };
}

template <class T>
void layouts_and_sizes()
{
    const auto sizes = boundary_sizes<T>();
    const std::size_t s = GENERATE(range<std::size_t>(0, 10));
    const bool a_t = GENERATE(false, true);
    const bool b_t = GENERATE(false, true);
    REQUIRE(sizes.size() == 10);
    const mnk sz = sizes[s];
    // Odd sizes use padded storage (leading dimension > extent), even ones tight storage.
    const bool padded = s % 2 == 1;
    const layout la =
        a_t ? (padded ? layout::col_padded : layout::col_major) : (padded ? layout::row_padded : layout::row_major);
    const layout lb =
        b_t ? (padded ? layout::col_padded : layout::col_major) : (padded ? layout::row_padded : layout::row_major);
    const layout lc = padded ? layout::col_padded : layout::row_padded;
    std::mt19937 rng(static_cast<unsigned>(1000 + 4 * s + 2 * a_t + b_t));
    check_strided<T>(sz.m, sz.n, sz.k, 1.5, -0.5, la, lb, lc, false, rng);
}

/// Several row, column and K blocks at once, so that the packed A of the first column block is
/// reused by the later ones and the micro-kernel writes C directly (beta 0 and 1, a row bias
/// through the offset-table overload elsewhere). A row-major A whose rows are a power of two
/// apart, and a column-major A (the element-wise packing), both go through it.
template <class T>
void several_blocks_everywhere()
{
    using B = blocking<T>;
    const std::size_t m = 2 * B::mc + 5, n = 2 * B::nc + 7, k = 2 * B::kc + 3;
    const bool a_t = GENERATE(false, true);
    const double beta = GENERATE(0.0, 1.0);
    std::mt19937 rng(static_cast<unsigned>(77 + 2 * a_t + (beta != 0.0)));
    check_strided<T>(m, n, k, 1.0, beta, a_t ? layout::col_major : layout::row_major, layout::row_major,
                     layout::row_major, beta == 0.0, rng);
    check_strided<T>(B::mr + 1, B::nc * 3 + 1, B::kc, 1.0, beta, a_t ? layout::col_padded : layout::row_padded,
                     layout::row_padded, layout::row_major, false, rng);
}

template <class T>
void alpha_beta()
{
    using B = blocking<T>;
    const double alpha = GENERATE(1.0, 0.5, -2.0, 0.0);
    const double beta = GENERATE(0.0, 1.0, 0.25, -1.0);
    const bool a_t = GENERATE(false, true);
    const bool b_t = GENERATE(false, true);
    std::mt19937 rng(7);
    check_strided<T>(B::mr + 1, B::nr + 1, B::kc + 1, alpha, beta, a_t ? layout::col_major : layout::row_major,
                     b_t ? layout::col_major : layout::row_major, layout::row_padded, beta == 0.0, rng);
}

template <class T>
void beta_zero_ignores_nan()
{
    using B = blocking<T>;
    const mnk sz = GENERATE(values<mnk>({
        {1, 1, 1},
        {B::mc + 5, 2 * B::nr + 1, 2 * B::kc + 1}, // several M and K blocks
        {B::mr + 1, B::nc + 5, B::kc + 1},         // two N blocks
    }));
    std::mt19937 rng(8);
    check_strided<T>(sz.m, sz.n, sz.k, 1.0, 0.0, layout::row_major, layout::row_major, layout::row_major, true, rng);
    check_strided<T>(sz.m, sz.n, sz.k, -0.75, 0.0, layout::col_major, layout::row_padded, layout::col_padded, true,
                     rng);
}

template <class T>
void beta_one_accumulates()
{
    using B = blocking<T>;
    const std::size_t m = B::mc + 3, n = B::nr + 5, k = B::kc + 9;
    std::mt19937 rng(9);
    const auto a = make_matrix<T>(m, k, layout::row_major, rng, T(0));
    const auto b = make_matrix<T>(k, n, layout::col_major, rng, T(0));
    auto c = make_matrix<T>(m, n, layout::row_major, rng, T(0));
    const auto c0 = c;
    // C += A B three times: C = 3 A B + C0.
    for (int rep = 0; rep < 3; ++rep)
    {
        xcnn::gemm<T>(m, n, k, T(1), a.ptr(), a.rs, a.cs, b.ptr(), b.rs, b.cs, T(1), c.ptr(), c.rs, c.cs);
    }
    double worst = 0;
    for (std::size_t i = 0; i < m; ++i)
    {
        for (std::size_t j = 0; j < n; ++j)
        {
            double s = 0;
            for (std::size_t p = 0; p < k; ++p)
            {
                s += static_cast<double>(a.at(i, p)) * static_cast<double>(b.at(p, j));
            }
            worst = std::max(worst, std::abs(static_cast<double>(c.at(i, j)) - (3 * s + c0.at(i, j))));
        }
    }
    INFO("max |got - want| = " << worst);
    CHECK(worst <= 4 * tolerance<T>(k, 1, 1));
}

template <class T>
void degenerate_sizes()
{
    std::mt19937 rng(10);
    SECTION("k = 0: C = beta * C")
    {
        const std::size_t m = 13, n = 37;
        const double beta = GENERATE(0.0, 0.5, 1.0, -2.0);
        CAPTURE(beta);
        check_strided<T>(m, n, 0, 3.0, beta, layout::row_major, layout::row_major, layout::row_padded, beta == 0.0,
                         rng);
        check_strided<T>(m, n, 0, 3.0, beta, layout::col_major, layout::col_major, layout::col_padded, false, rng);
    }
    SECTION("m = 0 or n = 0: C is not touched")
    {
        const auto a = make_matrix<T>(5, 4, layout::row_major, rng, T(0));
        const auto b = make_matrix<T>(4, 6, layout::row_major, rng, T(0));
        auto c = make_matrix<T>(5, 6, layout::row_major, rng, T(0));
        c.at(0, 0) = static_cast<T>(qnan); // would turn into 0 if beta = 0 were applied
        const auto before = c.buf;
        xcnn::gemm<T>(0, 6, 4, T(1), a.ptr(), a.rs, a.cs, b.ptr(), b.rs, b.cs, T(0), c.ptr(), c.rs, c.cs);
        xcnn::gemm<T>(5, 0, 4, T(1), a.ptr(), a.rs, a.cs, b.ptr(), b.rs, b.cs, T(0), c.ptr(), c.rs, c.cs);
        xcnn::gemm<T>(0, 0, 0, T(1), a.ptr(), a.rs, a.cs, b.ptr(), b.rs, b.cs, T(0), c.ptr(), c.rs, c.cs);
        xcnn::gemm<T>(5, 0, 0, T(1), a.ptr(), a.rs, a.cs, b.ptr(), b.rs, b.cs, T(0), c.ptr(), c.rs, c.cs);
        REQUIRE(std::isnan(c.at(0, 0)));
        std::size_t changed = 0;
        for (std::size_t q = 1; q < c.buf.size(); ++q)
        {
            changed += c.buf[q] != before[q];
        }
        CHECK(changed == 0);
        // Null pointers are fine when nothing is addressed.
        REQUIRE_NOTHROW(xcnn::gemm<T>(0, 0, 0, T(1), nullptr, 0, 0, nullptr, 0, 0, T(0), nullptr, 0, 0));
    }
}

template <class T>
void negative_strides()
{
    using B = blocking<T>;
    std::mt19937 rng(11);
    const mnk sz = GENERATE(values<mnk>({{5, 3, 4}, {B::mr + 3, B::nr + 3, B::kc + 3}}));
    check_strided<T>(sz.m, sz.n, sz.k, 1.0, 0.5, layout::reversed, layout::row_major, layout::row_major, false, rng);
    check_strided<T>(sz.m, sz.n, sz.k, 1.0, 0.5, layout::row_major, layout::reversed, layout::col_major, false, rng);
    check_strided<T>(sz.m, sz.n, sz.k, -1.0, 0.0, layout::col_padded, layout::reversed, layout::reversed, true, rng);
}

// ---------------------------------------------------------------------------------------------
// Offset-table form.
// ---------------------------------------------------------------------------------------------

/// Operands addressed through scattered offset tables: A's rows in a random order with a
/// leading dimension k + 2, B's first columns contiguous and the rest permuted (so both of
/// pack_b's paths run), C's rows reversed and its leading dimension n + 1.
template <class T>
struct table_problem
{
    std::size_t m, n, k;
    std::vector<T> a, b, c;
    std::vector<std::ptrdiff_t> a_row, a_col, b_row, b_col, c_row, c_col;
    std::vector<T> row_bias, col_bias;

    /// Row stride of C: its columns, the gaps between their runs, and one element of padding.
    std::ptrdiff_t ldc;

    /// `run` > 0 puts C's columns in runs of `run` with 3 elements between runs (the output pixels
    /// of several small images in NCHW); 0 keeps them contiguous.
    table_problem(std::size_t m_, std::size_t n_, std::size_t k_, std::mt19937& rng, std::size_t run = 0)
        : m(m_), n(n_), k(k_), ldc(static_cast<std::ptrdiff_t>(n + (run == 0 || n == 0 ? 0 : (n - 1) / run * 3) + 1))
    {
        const auto lda = static_cast<std::ptrdiff_t>(k + 2), ldb = static_cast<std::ptrdiff_t>(n);
        std::vector<std::size_t> perm_m(m), perm_n(n - n / 2);
        std::iota(perm_m.begin(), perm_m.end(), 0);
        std::iota(perm_n.begin(), perm_n.end(), n / 2);
        std::shuffle(perm_m.begin(), perm_m.end(), rng);
        std::shuffle(perm_n.begin(), perm_n.end(), rng);
        for (std::size_t i = 0; i < m; ++i)
        {
            a_row.push_back(static_cast<std::ptrdiff_t>(perm_m[i]) * lda);
            c_row.push_back(static_cast<std::ptrdiff_t>(m - 1 - i) * ldc);
        }
        for (std::size_t p = 0; p < k; ++p)
        {
            a_col.push_back(static_cast<std::ptrdiff_t>(p));
            b_row.push_back(static_cast<std::ptrdiff_t>(p) * ldb);
        }
        for (std::size_t j = 0; j < n; ++j)
        {
            b_col.push_back(static_cast<std::ptrdiff_t>(j < n / 2 ? j : perm_n[j - n / 2]));
            c_col.push_back(static_cast<std::ptrdiff_t>(run == 0 ? j : j + j / run * 3));
        }
        std::uniform_real_distribution<double> dist(-1.0, 1.0);
        auto draw = [&](std::vector<T>& v, std::size_t size)
        {
            v.resize(size);
            for (auto& e : v)
            {
                e = static_cast<T>(dist(rng));
            }
        };
        draw(a, std::max<std::size_t>(m * (k + 2), 1));
        draw(b, std::max<std::size_t>(k * n, 1));
        draw(c, std::max<std::size_t>(m * static_cast<std::size_t>(ldc), 1));
        draw(row_bias, m);
        draw(col_bias, n);
    }

    T a_at(std::size_t i, std::size_t p) const { return a[static_cast<std::size_t>(a_row[i] + a_col[p])]; }
    T b_at(std::size_t p, std::size_t j) const { return b[static_cast<std::size_t>(b_row[p] + b_col[j])]; }
    std::size_t c_pos(std::size_t i, std::size_t j) const { return static_cast<std::size_t>(c_row[i] + c_col[j]); }

    /// Runs the GEMM and returns max |C - reference|; counts non-finite results and written
    /// padding elements in `bad`.
    double run(const xcnn::gemm_epilogue<T>& ep, xcnn::gemm_workspace<T>& ws, std::size_t& bad)
    {
        const std::vector<T> before = c;
        xcnn::gemm<T>(m, n, k, {a.data(), a_row.data(), a_col.data()}, {b.data(), b_row.data(), b_col.data()},
                      {c.data(), c_row.data(), c_col.data()}, ep, ws);
        double worst = 0;
        bad = 0;
        for (std::size_t i = 0; i < m; ++i)
        {
            for (std::size_t j = 0; j < n; ++j)
            {
                double s = 0;
                for (std::size_t p = 0; p < k; ++p)
                {
                    s += static_cast<double>(a_at(i, p)) * static_cast<double>(b_at(p, j));
                }
                double want = static_cast<double>(ep.alpha) * s;
                if (ep.beta != T(0))
                {
                    want += static_cast<double>(ep.beta) * static_cast<double>(before[c_pos(i, j)]);
                }
                if (ep.row_bias)
                {
                    want += static_cast<double>(ep.row_bias[i]);
                }
                if (ep.col_bias)
                {
                    want += static_cast<double>(ep.col_bias[j]);
                }
                const double got = static_cast<double>(c[c_pos(i, j)]);
                if (!std::isfinite(got))
                {
                    ++bad;
                }
                else
                {
                    worst = std::max(worst, std::abs(got - want));
                }
            }
        }
        // Elements outside C (the gaps between column runs, the padding column) are untouched.
        std::vector<bool> in_c(c.size(), false);
        for (std::size_t i = 0; i < m; ++i)
        {
            for (std::size_t j = 0; j < n; ++j)
            {
                in_c[c_pos(i, j)] = true;
            }
        }
        for (std::size_t e = 0; e < c.size(); ++e)
        {
            bad += !in_c[e] && !(c[e] == before[e]);
        }
        return worst;
    }

    void fill_c_with_nan()
    {
        for (std::size_t i = 0; i < m; ++i)
        {
            for (std::size_t j = 0; j < n; ++j)
            {
                c[c_pos(i, j)] = static_cast<T>(qnan);
            }
        }
    }
};

/// Runs `p` with alpha 0.75, `beta` (0: C starts as NaN, which must not leak) and the biases of
/// `bias` (bit 0: row bias, bit 1: column bias) against the double-precision reference.
template <class T>
void check_epilogue(table_problem<T>& p, int bias, double beta)
{
    if (beta == 0.0)
    {
        p.fill_c_with_nan();
    }
    xcnn::gemm_epilogue<T> ep;
    ep.alpha = T(0.75);
    ep.beta = static_cast<T>(beta);
    ep.row_bias = (bias & 1) ? p.row_bias.data() : nullptr;
    ep.col_bias = (bias & 2) ? p.col_bias.data() : nullptr;
    xcnn::gemm_workspace<T> ws;
    std::size_t bad = 0;
    const double worst = p.run(ep, ws, bad);
    INFO("max |got - want| = " << worst);
    CHECK(bad == 0);
    CHECK(worst <= tolerance<T>(p.k, 0.75, beta) + 2 * base_tolerance<T>());
}

template <class T>
void offset_tables_with_biases()
{
    using B = blocking<T>;
    const mnk sz = GENERATE(values<mnk>({
        {B::mr + 1, B::nr + 1, B::kc + 1},
        {B::mc + 1, 2 * B::nr + 3, 2 * B::kc + 1}, // biases must be added once, not per K block
        {B::mr - 1, B::nc + 1, B::kc + 3},
        {B::mr + 2, B::nr + 5, 2 * B::kc_in_place + 3}, // B's rows close together: longer K blocks
        {7, 9, 0},                                      // K = 0: only beta * C and the biases
    }));
    const int bias = GENERATE(0, 1, 2, 3); // bit 0: row bias, bit 1: column bias
    const double beta = GENERATE(0.0, 0.5);
    if (sz.m * sz.n * sz.k > 1000000 && (bias == 1 || bias == 2))
    {
        return; // the large sizes run without and with both biases; one-bias cases on small sizes
    }
    CAPTURE(sz.m, sz.n, sz.k, bias, beta);
    std::mt19937 rng(static_cast<unsigned>(20 + bias));
    table_problem<T> p(sz.m, sz.n, sz.k, rng);
    check_epilogue(p, bias, beta);
}

/// C's columns in runs (a GEMM writing NCHW outputs of several small images): runs shorter than,
/// equal to and longer than a vector, and runs of 2, more per vector than the vector path takes.
template <class T>
void column_runs()
{
    using B = blocking<T>;
    const std::size_t run = GENERATE(2, 5, 16, 49);
    const int bias = GENERATE(0, 3);
    const double beta = GENERATE(0.0, 0.5);
    const std::size_t k = GENERATE(std::size_t(7), 2 * B::kc + 1); // one K block and several (accumulating)
    CAPTURE(run, bias, beta, k);
    std::mt19937 rng(static_cast<unsigned>(40 + run));
    table_problem<T> p(B::mr + 3, 3 * B::nr + 7, k, rng, run);
    check_epilogue(p, bias, beta);
}

/// B's columns in the patterns a strided window view gives pack_b: runs at a stride of 2 or 3
/// with a jump between image rows (a few 32-element windows per vector of columns, permuted from
/// two loads each), offsets falling within a vector (a window per column: gathered), and a last
/// column at B's very last element, which a full-vector load from its window would overrun.
template <class T>
void strided_columns()
{
    using B = blocking<T>;
    const int pattern = GENERATE(0, 1, 2, 3, 4);
    const std::size_t k = GENERATE(std::size_t(5), B::kc + 3);
    CAPTURE(pattern, k);
    std::mt19937 rng(static_cast<unsigned>(50 + pattern));
    // Whole panels, so that B's last element is read by a permuted or gathered panel.
    table_problem<T> p(B::mr + 1, 3 * B::nr, k, rng);
    std::ptrdiff_t length = 0;
    for (std::size_t j = 0; j < p.n; ++j)
    {
        const auto jj = static_cast<std::ptrdiff_t>(j), n = static_cast<std::ptrdiff_t>(p.n);
        const std::ptrdiff_t offsets[] = {jj / 8 * 36 + jj % 8 * 2, jj / 7 * 32 + jj % 7 * 2, 3 * jj, 2 * (n - 1 - jj),
                                          jj / 3 * 70 + jj % 3 * 2};
        p.b_col[j] = offsets[pattern];
        length = std::max(length, p.b_col[j] + 1);
    }
    for (std::size_t r = 0; r < k; ++r)
    {
        p.b_row[r] = static_cast<std::ptrdiff_t>(r) * length;
    }
    p.b.resize(k * static_cast<std::size_t>(length));
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    for (auto& e : p.b)
    {
        e = static_cast<T>(dist(rng));
    }
    check_epilogue(p, 0, 0.0);
}

template <class T>
void epilogue_defaults()
{
    // A default epilogue is C = A B: alpha 1, beta 0 (write-only C), no biases.
    const xcnn::gemm_epilogue<T> ep;
    CHECK(ep.alpha == T(1));
    CHECK(ep.beta == T(0));
    CHECK(ep.row_bias == nullptr);
    CHECK(ep.col_bias == nullptr);
    std::mt19937 rng(30);
    table_problem<T> p(9, 11, 5, rng);
    p.fill_c_with_nan();
    xcnn::gemm_workspace<T> ws;
    std::size_t bad = 0;
    const double worst = p.run(ep, ws, bad);
    CHECK(bad == 0);
    CHECK(worst <= tolerance<T>(5, 1, 0));
}

template <class T>
void workspace_reuse()
{
    using B = blocking<T>;
    xcnn::gemm_workspace<T> ws;
    std::mt19937 rng(40);
    const std::vector<mnk> sizes = {
        {3, 5, 2},                             // small first: the buffers must grow later
        {B::mc + 7, 3 * B::nr + 1, B::kc + 5}, // large
        {B::mr + 1, B::nr - 1, 9},             // smaller again: stale panel data must not leak in
        {2 * B::mc + 1, B::nr + 2, 2 * B::kc + 7},
        {1, 1, 1},
        {4, 6, 0},
        {B::mr, B::nc + 2, 3},
        {17, 19, 23},
    };
    const T* a_after_large = nullptr;
    const T* b_after_large = nullptr;
    std::size_t a_capacity = 0, b_capacity = 0;
    for (std::size_t t = 0; t < sizes.size(); ++t)
    {
        const mnk sz = sizes[t];
        CAPTURE(t, sz.m, sz.n, sz.k);
        table_problem<T> p(sz.m, sz.n, sz.k, rng);
        xcnn::gemm_epilogue<T> ep;
        ep.alpha = T(-1.25);
        ep.beta = t % 2 ? T(0.5) : T(0);
        ep.row_bias = t % 3 == 0 ? p.row_bias.data() : nullptr;
        ep.col_bias = t % 3 == 1 ? p.col_bias.data() : nullptr;
        std::size_t bad = 0;
        const double worst = p.run(ep, ws, bad);
        CHECK(bad == 0);
        CHECK(worst <= tolerance<T>(sz.k, 1.25, 0.5) + 2 * base_tolerance<T>());
        if (t == 3)
        {
            a_after_large = ws.threads.at(0).packed_a.data();
            b_after_large = ws.threads.at(0).packed_b.data();
            a_capacity = ws.threads.at(0).packed_a.capacity();
            b_capacity = ws.threads.at(0).packed_b.capacity();
        }
        if (t == 4 || t == 5)
        {
            // Smaller calls keep the grown buffers instead of releasing or reallocating them.
            CHECK(ws.threads.at(0).packed_a.data() == a_after_large);
            CHECK(ws.threads.at(0).packed_b.data() == b_after_large);
            CHECK(ws.threads.at(0).packed_a.capacity() >= a_capacity);
            CHECK(ws.threads.at(0).packed_b.capacity() >= b_capacity);
        }
    }
}

} // namespace

TEST_CASE("gemm: blocking invariants the packing relies on", "[gemm]")
{
    // The packing buffers hold min(mc, M rounded up to mr) x kc elements and pack_a writes whole
    // mr-row panels, so mc must be a multiple of mr (likewise nc of nr), or the last panel of a
    // full block would overflow the buffer. The boundary sizes of the other tests use mr - 1.
    using Bf = blocking<float>;
    using Bd = blocking<double>;
    CHECK(Bf::mc % Bf::mr == 0);
    CHECK(Bd::mc % Bd::mr == 0);
    CHECK(Bf::nc % Bf::nr == 0);
    CHECK(Bd::nc % Bd::nr == 0);
    CHECK(Bf::mr > 1);
    CHECK(Bd::mr > 1);
    CHECK(Bf::nr > 1);
    CHECK(Bd::nr > 1);
}

TEST_CASE("gemm: row-major and transposed operands at every block boundary", "[gemm]")
{
    SECTION("float")
    {
        layouts_and_sizes<float>();
    }
    SECTION("double")
    {
        layouts_and_sizes<double>();
    }
}

TEST_CASE("gemm: several row, column and K blocks reuse the packed A", "[gemm]")
{
    SECTION("float")
    {
        several_blocks_everywhere<float>();
    }
    SECTION("double")
    {
        several_blocks_everywhere<double>();
    }
}

TEST_CASE("gemm: alpha and beta combinations", "[gemm]")
{
    SECTION("float")
    {
        alpha_beta<float>();
    }
    SECTION("double")
    {
        alpha_beta<double>();
    }
}

TEST_CASE("gemm: beta = 0 makes C write-only (NaN does not propagate)", "[gemm]")
{
    SECTION("float")
    {
        beta_zero_ignores_nan<float>();
    }
    SECTION("double")
    {
        beta_zero_ignores_nan<double>();
    }
}

TEST_CASE("gemm: beta = 1 accumulates into C", "[gemm]")
{
    SECTION("float")
    {
        beta_one_accumulates<float>();
    }
    SECTION("double")
    {
        beta_one_accumulates<double>();
    }
}

TEST_CASE("gemm: k = 0, m = 0 and n = 0", "[gemm]")
{
    SECTION("float")
    {
        degenerate_sizes<float>();
    }
    SECTION("double")
    {
        degenerate_sizes<double>();
    }
}

TEST_CASE("gemm: negative strides", "[gemm]")
{
    SECTION("float")
    {
        negative_strides<float>();
    }
    SECTION("double")
    {
        negative_strides<double>();
    }
}

TEST_CASE("gemm: offset tables with row and column biases", "[gemm]")
{
    SECTION("float")
    {
        offset_tables_with_biases<float>();
    }
    SECTION("double")
    {
        offset_tables_with_biases<double>();
    }
}

TEST_CASE("gemm: C's columns in runs, written a run at a time", "[gemm]")
{
    SECTION("float")
    {
        column_runs<float>();
    }
    SECTION("double")
    {
        column_runs<double>();
    }
}

TEST_CASE("gemm: B's columns at a stride, in runs far apart and out of order", "[gemm]")
{
    SECTION("float")
    {
        strided_columns<float>();
    }
    SECTION("double")
    {
        strided_columns<double>();
    }
}

TEST_CASE("gemm: default epilogue", "[gemm]")
{
    SECTION("float")
    {
        epilogue_defaults<float>();
    }
    SECTION("double")
    {
        epilogue_defaults<double>();
    }
}

TEST_CASE("gemm: one workspace reused across calls of different sizes", "[gemm]")
{
    SECTION("float")
    {
        workspace_reuse<float>();
    }
    SECTION("double")
    {
        workspace_reuse<double>();
    }
}
