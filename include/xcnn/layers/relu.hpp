/// @file
/// `xcnn::ReLU`: max(x, 0) element-wise, for tensors of any rank.
#ifndef XCNN_LAYERS_RELU_HPP
#define XCNN_LAYERS_RELU_HPP

#include <string>

#include "../core/xtensor_shim.hpp"
#include "activation.hpp"

namespace xcnn
{

/// The rectified linear unit as an activation functor (core/activation.hpp).
struct relu_op
{
    /// The gradient reads the output only: it passes where the output is positive.
    static constexpr bool backward_reads_input = false;
    /// max(x, 0) with dX = dY where y > 0: kernels may fuse it into their copies.
    static constexpr bool rectifies = true;
    /// "ReLU()".
    std::string name() const { return "ReLU()"; }
    /// The kind in a `layer_spec`; the layer has no options.
    static constexpr const char* kind = "ReLU";
    /// `x < 0 ? 0 : x`, not `x > 0 ? x : 0`: a NaN passes through, as in PyTorch, so a
    /// diverging network is not hidden.
    template <class V>
    V forward(const V& x) const
    {
        return xsimd::select(x < V(0), V(0), x);
    }
    /// dY where the output is positive, 0 elsewhere (PyTorch's choice at 0; a NaN output passes
    /// no gradient).
    template <class V>
    V backward(const V& dy, const V&, const V& y) const
    {
        return xsimd::select(y > V(0), dy, V(0));
    }
};

/// Rectified linear unit, max(x, 0). Takes a tensor of any rank (1 to 8) and returns the same
/// shape.
template <class T>
using ReLU = activation<T, relu_op>;

} // namespace xcnn

#endif // XCNN_LAYERS_RELU_HPP
