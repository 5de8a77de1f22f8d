/// @file
/// `xcnn::Tanh`: the hyperbolic tangent element-wise, for tensors of any rank.
#ifndef XCNN_LAYERS_TANH_HPP
#define XCNN_LAYERS_TANH_HPP

#include <string>

#include "../core/xtensor_shim.hpp"
#include "activation.hpp"

namespace xcnn
{

/// tanh as an activation functor (core/activation.hpp).
struct tanh_op
{
    /// The derivative 1 - y² needs the output only.
    static constexpr bool backward_reads_input = false;
    /// "Tanh()".
    std::string name() const { return "Tanh()"; }
    /// The kind in a `layer_spec`; the layer has no options.
    static constexpr const char* kind = "Tanh";
    /// xsimd's tanh, which saturates to ±1 for large |x| (no exp(2x) overflow into inf / inf).
    template <class V>
    V forward(const V& x) const
    {
        return xsimd::tanh(x);
    }
    /// dY (1 - y²), as PyTorch's `tanh_backward`.
    template <class V>
    V backward(const V& dy, const V&, const V& y) const
    {
        using T = typename V::value_type;
        return dy * (V(T(1)) - y * y);
    }
};

/// The hyperbolic tangent (PyTorch's `nn.Tanh`). Takes a tensor of any rank (1 to 8) and returns
/// the same shape.
template <class T>
using Tanh = activation<T, tanh_op>;

} // namespace xcnn

#endif // XCNN_LAYERS_TANH_HPP
