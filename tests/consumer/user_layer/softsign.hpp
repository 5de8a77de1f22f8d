// An activation written in a user's own code: a functor and an alias (docs/adding-a-layer.md).
#ifndef MY_SOFTSIGN_HPP
#define MY_SOFTSIGN_HPP

#include <xcnn/xcnn.hpp>

#include <string>

namespace my
{

/// softsign(x) = x / (1 + |x|), on xsimd vectors (core/activation.hpp says what a functor needs).
struct softsign_op
{
    /// The derivative 1 / (1 + |x|)^2 is (1 - |y|)^2: the output suffices, no input is kept.
    static constexpr bool backward_reads_input = false;
    std::string name() const { return "Softsign()"; }
    /// Its kind in model files, which record each layer's kind and options (it has none).
    static constexpr const char* kind = "Softsign";
    template <class V>
    V forward(const V& x) const
    {
        return x / (V(1) + xsimd::abs(x));
    }
    template <class V>
    V backward(const V& dy, const V& /*x*/, const V& y) const
    {
        const V d = V(1) - xsimd::abs(y);
        return dy * d * d;
    }
};

/// x / (1 + |x|) element-wise, for tensors of any rank.
template <class T>
using Softsign = xcnn::activation<T, softsign_op>;

} // namespace my

#endif // MY_SOFTSIGN_HPP
