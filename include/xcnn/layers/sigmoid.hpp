/// @file
/// `xcnn::Sigmoid`: 1 / (1 + exp(-x)) element-wise, for tensors of any rank.
#ifndef XCNN_LAYERS_SIGMOID_HPP
#define XCNN_LAYERS_SIGMOID_HPP

#include <string>

#include "../core/xtensor_shim.hpp"
#include "activation.hpp"

namespace xcnn
{

/// The logistic function as an activation functor (core/activation.hpp).
struct sigmoid_op
{
    /// The derivative y (1 - y) needs the output only.
    static constexpr bool backward_reads_input = false;
    /// "Sigmoid()".
    std::string name() const { return "Sigmoid()"; }
    /// The kind in a `layer_spec`; the layer has no options.
    static constexpr const char* kind = "Sigmoid";
    /// 1 / (1 + exp(-x)), PyTorch's expression. It cannot overflow into a NaN: for x far below 0,
    /// exp(-x) is +inf and the result 0; far above, exp(-x) is 0 and the result 1. A NaN stays NaN.
    template <class V>
    V forward(const V& x) const
    {
        using T = typename V::value_type;
        return V(T(1)) / (V(T(1)) + xsimd::exp(-x));
    }
    /// dY (1 - y) y, as PyTorch's `sigmoid_backward`.
    template <class V>
    V backward(const V& dy, const V&, const V& y) const
    {
        using T = typename V::value_type;
        return dy * (V(T(1)) - y) * y;
    }
};

/// The logistic sigmoid, 1 / (1 + exp(-x)) (PyTorch's `nn.Sigmoid`). Takes a tensor of any rank
/// (1 to 8) and returns the same shape.
template <class T>
using Sigmoid = activation<T, sigmoid_op>;

} // namespace xcnn

#endif // XCNN_LAYERS_SIGMOID_HPP
