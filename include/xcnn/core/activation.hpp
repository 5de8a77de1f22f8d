/// @file
/// Element-wise activation kernels over raw arrays, for any activation functor: the activation
/// layers and the layers that apply a following activation in their own output pass
/// (`Conv2D`, `Dense`, BatchNorm) share them.
///
/// An activation functor `Op` (layers/relu.hpp is the model) provides, on `xsimd::batch<T>`:
/// - `forward(x)`: f(x);
/// - `backward(dy, x, y)`: dLoss/dx from dy = dLoss/dy, the input x and the output y = f(x);
/// - `static constexpr bool backward_reads_input`: whether `backward` needs x (GELU) or only y
///   (ReLU, sigmoid, tanh); when false the kernels pass y as x, so no input is kept;
/// - `std::string name() const`: how the layer shows, e.g. "ReLU()";
/// - optionally `static constexpr bool rectifies = true` when f(x) = max(x, 0) and the gradient
///   is dY where y > 0: layers whose kernels apply a ReLU and its mask inside their own copies
///   (`Conv2D`) then skip the separate passes (`rectifies<Op>`).
#ifndef XCNN_CORE_ACTIVATION_HPP
#define XCNN_CORE_ACTIVATION_HPP

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "threading.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Whether the functor `Op` declares that it is a rectifier (see the top of this file).
template <class Op, class = void>
struct rectifies : std::false_type
{
};
template <class Op>
struct rectifies<Op, std::enable_if_t<Op::rectifies>> : std::true_type
{
};

/// Calls `f(i, count)` for whole vectors and once for the partial last vector with `count` < S
/// elements, which `f` handles through an aligned copy (so no load leaves the arrays).
template <class T, class F>
void for_each_vector(std::size_t n, F&& f)
{
    constexpr std::size_t S = xsimd::batch<T>::size;
    std::size_t i = 0;
    for (; i + S <= n; i += S)
    {
        f(i, S);
    }
    if (i < n)
    {
        f(i, n - i);
    }
}

/// `count` (at most one vector) values from `p` as a vector, zero past `count`.
template <class T>
xsimd::batch<T> load_vector(const T* p, std::size_t count)
{
    using batch = xsimd::batch<T>;
    if (count == batch::size)
    {
        return batch::load_unaligned(p);
    }
    alignas(64) T tmp[batch::size] = {};
    std::copy(p, p + count, tmp);
    return batch::load_aligned(tmp);
}

/// Stores the first `count` lanes of `v` at `p`.
template <class T>
void store_vector(const xsimd::batch<T>& v, T* p, std::size_t count)
{
    using batch = xsimd::batch<T>;
    if (count == batch::size)
    {
        v.store_unaligned(p);
        return;
    }
    alignas(64) T tmp[batch::size];
    v.store_aligned(tmp);
    std::copy(tmp, tmp + count, p);
}

/// Runs `f(begin, end)` over [0, n), split between threads above ~64K elements as the other
/// element-wise passes are: chunks start at multiples of the grain, itself a multiple of any
/// vector width, so only the last chunk has a partial vector and the result does not depend on
/// the thread count.
template <class F>
void for_each_chunk(std::size_t n, F&& f)
{
    parallel_for(n, std::size_t(1) << 16, [&](std::size_t begin, std::size_t end, std::size_t) { f(begin, end); });
}

/// y[i] = op.forward(x[i]) for i < n; `y` may be `x`.
template <class T, class Op>
void apply_activation(const Op& op, const T* x, T* y, std::size_t n)
{
    for_each_chunk(n,
                   [&](std::size_t begin, std::size_t end)
                   {
                       for_each_vector<T>(
                           end - begin, [&](std::size_t i, std::size_t count)
                           { store_vector(op.forward(load_vector(x + begin + i, count)), y + begin + i, count); });
                   });
}

/// dx[i] = op.backward(dy[i], x[i], y[i]) for i < n; `x` may be null when the functor's
/// backward does not read the input; `dx` may be `dy`.
template <class T, class Op>
void activation_gradient(const Op& op, const T* dy, const T* x, const T* y, T* dx, std::size_t n)
{
    const T* input = x != nullptr ? x : y;
    for_each_chunk(n,
                   [&](std::size_t begin, std::size_t end)
                   {
                       for_each_vector<T>(end - begin,
                                          [&](std::size_t k, std::size_t count)
                                          {
                                              const std::size_t i = begin + k;
                                              store_vector(op.backward(load_vector(dy + i, count),
                                                                       load_vector(input + i, count),
                                                                       load_vector(y + i, count)),
                                                           dx + i, count);
                                          });
                   });
}

/// What a layer that applies a following activation in its own output pass does with its output
/// `y`: keeps it in `preactivation` when the functor's gradient reads the input, then applies
/// the functor in place.
template <class Op, class Tensor>
void activate_in_place(const Op& op, Tensor& y, Tensor& preactivation)
{
    if constexpr (Op::backward_reads_input)
    {
        if (preactivation.shape() != y.shape())
        {
            preactivation.resize(y.shape());
        }
        std::copy(y.begin(), y.end(), preactivation.begin());
    }
    apply_activation(op, y.data(), y.data(), y.size());
}

/// The gradient of the activation's input, from `dy` (of its output `y`, as
/// `activate_in_place` left it, and `preactivation`), into `out`.
template <class Op, class Tensor>
const Tensor& activation_gradient_into(const Op& op, const Tensor& dy, const Tensor& preactivation, const Tensor& y,
                                       Tensor& out)
{
    if (out.shape() != y.shape())
    {
        out.resize(y.shape());
    }
    activation_gradient(op, dy.data(), Op::backward_reads_input ? preactivation.data() : nullptr, y.data(), out.data(),
                        y.size());
    return out;
}

/// What a layer keeps to apply a following activation to its output in place
/// (`forward_activated`) and to take the gradient through it: the output before the activation,
/// when the functor's gradient reads it, and dL/dy.
template <class Tensor>
class activated_output
{
public:
    /// `op` applied to the layer's output `y` in place; returns `y`.
    template <class Op>
    const Tensor& apply(const Op& op, Tensor& y)
    {
        activate_in_place(op, y, m_preactivation);
        return y;
    }

    /// dL/dy from `dy`, the gradient of the activation's output `y` (as `apply` left it).
    template <class Op>
    const Tensor& gradient(const Op& op, const Tensor& dy, const Tensor& y)
    {
        return activation_gradient_into(op, dy, m_preactivation, y, m_gradient);
    }

private:
    Tensor m_preactivation;
    Tensor m_gradient;
};

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_ACTIVATION_HPP
