/// @file
/// `xcnn::GELU`: the exact, erf-based Gaussian error linear unit, for tensors of any rank.
#ifndef XCNN_LAYERS_GELU_HPP
#define XCNN_LAYERS_GELU_HPP

#include <string>
#include <type_traits>

#include "../core/xtensor_shim.hpp"
#include "activation.hpp"

namespace xcnn
{

/// x Φ(x) = x / 2 · (1 + erf(x / √2)) as an activation functor (core/activation.hpp): PyTorch's
/// `nn.GELU()` with its default `approximate='none'`, not the tanh approximation.
struct gelu_op
{
    /// The derivative Φ(x) + x φ(x) is not a function of the output (GELU is not monotonic), so
    /// the layer keeps its input.
    static constexpr bool backward_reads_input = true;
    /// "GELU(approximate='none')", as PyTorch's repr.
    std::string name() const { return "GELU(approximate='none')"; }
    /// The kind in a `layer_spec`; no options (xcnn's GELU is PyTorch's approximate='none').
    static constexpr const char* kind = "GELU";
    /// x · 0.5 · (1 + erf(x / √2)), PyTorch's expression and order: for x far below 0 the result
    /// is -0 (as PyTorch; at -inf, -inf · 0 is NaN there too), a NaN stays NaN.
    template <class V>
    V forward(const V& x) const
    {
        using T = typename V::value_type;
        return x * V(T(0.5)) * (V(T(1)) + erf_of_scaled(x));
    }
    /// dY (Φ(x) + x φ(x)) with φ(x) = exp(-x²/2) / √(2π), as PyTorch's `gelu_backward`: exact,
    /// and 0 + 1 for large |x| (x² overflowing to inf gives φ = 0, not a NaN).
    template <class V>
    V backward(const V& dy, const V& x, const V&) const
    {
        using T = typename V::value_type;
        const V cdf = V(T(0.5)) * (V(T(1)) + erf_of_scaled(x));
        const V pdf = xsimd::exp(V(T(-0.5)) * x * x) * V(T(inv_sqrt_2pi));
        return dy * (cdf + x * pdf);
    }

private:
    /// erf(x / √2). xsimd's erf returns NaN for |z| beyond about 1e150 (its polynomial
    /// overflows), so z is clamped to ±6 first, where erf is ±1 to double precision already;
    /// a NaN passes the comparisons unchanged and stays NaN.
    ///
    /// In float, a rational approximation x P(x²) / Q(x²) on (-4, 4) (Eigen's and XLA's
    /// `erf` for float; erf rounds to ±1 in float beyond) replaces it: within 4.3e-7 of erf, about 3×
    /// faster than xsimd's float erf, which evaluates two branches and an exp for every lane.
    template <class V>
    static V erf_of_scaled(const V& x)
    {
        using T = typename V::value_type;
        const V z = x * V(T(sqrt1_2));
        if constexpr (std::is_same<T, float>::value)
        {
            const V bound(4.0f);
            const V c = xsimd::select(z > bound, bound, xsimd::select(z < -bound, -bound, z));
            const V c2 = c * c;
            V p(-2.72614225801306e-10f);
            p = xsimd::fma(p, c2, V(2.77068142495902e-08f));
            p = xsimd::fma(p, c2, V(-2.10102402082508e-06f));
            p = xsimd::fma(p, c2, V(-5.69250639462346e-05f));
            p = xsimd::fma(p, c2, V(-7.34990630326855e-04f));
            p = xsimd::fma(p, c2, V(-2.95459980854025e-03f));
            p = xsimd::fma(p, c2, V(-1.60960333262415e-02f));
            V q(-1.45660718464996e-05f);
            q = xsimd::fma(q, c2, V(-2.13374055278905e-04f));
            q = xsimd::fma(q, c2, V(-1.68282697438203e-03f));
            q = xsimd::fma(q, c2, V(-7.37332916720468e-03f));
            q = xsimd::fma(q, c2, V(-1.42647390514189e-02f));
            // Exactly ±1 from |z| = 4 on, so that GELU gives x and -0 and gradients 1 and 0 there.
            return xsimd::select(z >= bound, V(1.0f), xsimd::select(z <= -bound, V(-1.0f), c * p / q));
        }
        else
        {
            const V bound(T(6));
            return xsimd::erf(xsimd::select(z > bound, bound, xsimd::select(z < -bound, -bound, z)));
        }
    }

    static constexpr double sqrt1_2 = 0.70710678118654752440;      // 1 / √2
    static constexpr double inv_sqrt_2pi = 0.39894228040143267794; // 1 / √(2π)
};

/// The Gaussian error linear unit x Φ(x), exact (PyTorch's `nn.GELU()`, `approximate='none'`).
/// Takes a tensor of any rank (1 to 8) and returns the same shape.
template <class T>
using GELU = activation<T, gelu_op>;

} // namespace xcnn

#endif // XCNN_LAYERS_GELU_HPP
