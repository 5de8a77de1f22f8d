// Finite-difference gradient checking and comparison helpers shared by the tests.
#ifndef XCNN_TESTS_SUPPORT_GRADCHECK_HPP
#define XCNN_TESTS_SUPPORT_GRADCHECK_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <random>
#include <vector>

namespace xcnn_test
{

/// Central-difference gradient of the scalar `loss()` with respect to the `size` values at
/// `data`, which are perturbed in place and restored. Double precision only: in float the
/// truncation and rounding errors swamp a 1e-6 tolerance.
inline std::vector<double> numeric_gradient(const std::function<double()>& loss, double* data, std::size_t size,
                                            double eps = 1e-6)
{
    std::vector<double> grad(size);
    for (std::size_t i = 0; i < size; ++i)
    {
        const double saved = data[i];
        data[i] = saved + eps;
        const double plus = loss();
        data[i] = saved - eps;
        const double minus = loss();
        data[i] = saved;
        grad[i] = (plus - minus) / (2 * eps);
    }
    return grad;
}

/// ||a - b|| / max(||a||, ||b||, tiny): the relative error of a whole gradient, which stays
/// meaningful when single entries are near zero.
template <class A, class B>
double relative_error(const A& a, const B& b, std::size_t size)
{
    double diff = 0, na = 0, nb = 0;
    for (std::size_t i = 0; i < size; ++i)
    {
        diff += (a[i] - b[i]) * (a[i] - b[i]);
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    return std::sqrt(diff) / std::max({std::sqrt(na), std::sqrt(nb), 1e-300});
}

/// Largest absolute difference between two equally sized ranges; infinity when any difference
/// is NaN, so a NaN can never pass a tolerance check.
template <class A, class B>
double max_abs_diff(const A& a, const B& b)
{
    double worst = 0;
    auto ib = b.begin();
    for (auto ia = a.begin(); ia != a.end(); ++ia, ++ib)
    {
        const double diff = std::abs(static_cast<double>(*ia) - static_cast<double>(*ib));
        if (std::isnan(diff))
        {
            return std::numeric_limits<double>::infinity();
        }
        worst = std::max(worst, diff);
    }
    return worst;
}

/// Fills a container with U(lo, hi) draws from a seeded generator.
template <class C>
void fill_uniform(C& c, std::mt19937& rng, double lo = -1.0, double hi = 1.0)
{
    std::uniform_real_distribution<double> dist(lo, hi);
    for (auto& v : c)
    {
        v = static_cast<typename C::value_type>(dist(rng));
    }
}

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_GRADCHECK_HPP
