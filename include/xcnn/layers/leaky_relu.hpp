/// @file
/// `xcnn::LeakyReLU`: x where x > 0, negative_slope · x elsewhere, for tensors of any rank.
#ifndef XCNN_LAYERS_LEAKY_RELU_HPP
#define XCNN_LAYERS_LEAKY_RELU_HPP

#include <cmath>
#include <sstream>
#include <string>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "activation.hpp"

namespace xcnn
{

/// The leaky rectifier as an activation functor (core/activation.hpp) that carries its slope.
///
/// PyTorch also accepts a negative slope; xcnn does not: with a slope >= 0 the output is positive
/// exactly where the input is, so the gradient is a function of the output and neither the layer
/// nor a fused Conv2D/Dense keeps a copy of the input. A negative slope is a `value_error`.
template <class T>
struct leaky_relu_op
{
    /// The gradient reads the output only (see above).
    static constexpr bool backward_reads_input = false;

    /// PyTorch's default slope, 0.01. Not `explicit`: `LeakyReLU<float>(0.2f)` builds the
    /// activation from its functor.
    /// @throws value_error if `negative_slope` is negative, infinite or NaN.
    leaky_relu_op(T negative_slope = T(0.01)) : m_slope(checked(negative_slope)) {}

    /// The slope for x <= 0.
    T negative_slope() const noexcept { return m_slope; }

    /// "LeakyReLU(negative_slope=0.01)", as PyTorch's repr.
    std::string name() const { return name_of(m_slope); }

    /// The kind in a `layer_spec`.
    static constexpr const char* kind = "LeakyReLU";

    /// Adds negative_slope, the name of PyTorch's `LeakyReLU` argument, to the layer's spec.
    void describe(layer_spec& spec) const { spec.set("negative_slope", {static_cast<double>(m_slope)}); }

    /// The functor `spec` describes; negative_slope defaults to PyTorch's 0.01.
    /// @throws value_error for another kind, an unknown or malformed option, or a negative slope.
    static leaky_relu_op from_spec(const layer_spec& spec)
    {
        const spec_reader r(spec, kind, {"negative_slope"});
        return leaky_relu_op(r.real<T>("negative_slope", T(0.01)));
    }

    /// x > 0 ? x : x · slope, PyTorch's expression: a NaN stays NaN, -0 stays -0.
    template <class V>
    V forward(const V& x) const
    {
        return xsimd::select(x > V(T(0)), x, x * V(m_slope));
    }

    /// dY where the output (so the input) is positive, dY · slope elsewhere, including at 0 and
    /// for a NaN, as PyTorch's `leaky_relu_backward`.
    template <class V>
    V backward(const V& dy, const V&, const V& y) const
    {
        return xsimd::select(y > V(T(0)), dy, dy * V(m_slope));
    }

private:
    static std::string name_of(T slope)
    {
        std::ostringstream out;
        out << "LeakyReLU(negative_slope=" << slope << ")";
        return out.str();
    }

    static T checked(T slope)
    {
        if (!(slope >= T(0)) || !std::isfinite(slope))
        {
            throw value_error(name_of(slope) +
                              ": negative_slope must be finite and >= 0 (a negative slope would make the gradient "
                              "depend on the input, which the layer does not keep)");
        }
        return slope;
    }

    T m_slope;
};

/// x where x > 0, negative_slope · x elsewhere (PyTorch's `nn.LeakyReLU`, default slope 0.01).
/// `LeakyReLU<float>{}` or `LeakyReLU<float>(0.2f)`; takes a tensor of any rank (1 to 8) and
/// returns the same shape.
template <class T>
using LeakyReLU = activation<T, leaky_relu_op<T>>;

} // namespace xcnn

#endif // XCNN_LAYERS_LEAKY_RELU_HPP
