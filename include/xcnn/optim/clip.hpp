/// @file
/// `xcnn::clip_grad_norm`: rescales the gradients of a set of parameters so that their total L2
/// norm is at most a bound, as `torch.nn.utils.clip_grad_norm_` of torch 1.13 does.
#ifndef XCNN_OPTIM_CLIP_HPP
#define XCNN_OPTIM_CLIP_HPP

#include <cmath>
#include <cstddef>
#include <vector>

#include "../core/error.hpp"
#include "../core/parameter.hpp"
#include "kernels.hpp"

namespace xcnn
{
namespace detail
{

/// The sum of the squares of `size` values, accumulated in double. Eight partial sums in
/// fixed-size blocks (GCC vectorises the block's loop), added in a fixed order: the result does
/// not depend on the thread count or the alignment of `values`.
template <class T>
double sum_of_squares(const T* values, std::size_t size) noexcept
{
    constexpr std::size_t lanes = 8;
    double partial[lanes] = {};
    std::size_t j = 0;
    for (; j + lanes <= size; j += lanes)
    {
        for (std::size_t k = 0; k < lanes; ++k)
        {
            const double x = static_cast<double>(values[j + k]);
            partial[k] += x * x;
        }
    }
    for (std::size_t k = 0; j < size; ++j, ++k)
    {
        const double x = static_cast<double>(values[j]);
        partial[k] += x * x;
    }
    double sum = 0;
    for (const double p : partial)
    {
        sum += p;
    }
    return sum;
}

} // namespace detail

/// Rescales the gradients of `parameters` (usually `net.parameters()`) in place so that their
/// total L2 norm (over all gradients together, as if concatenated into one vector) is at most
/// `max_norm`, and returns that norm as it was before, computed in double. As in PyTorch
/// (`torch.nn.utils.clip_grad_norm_`, norm_type 2, error_if_nonfinite False), every gradient is
/// multiplied by min(1, max_norm / (norm + 1e-6)); a non-finite norm is no error: an infinite one
/// makes the factor 0 (finite gradients become 0, infinite ones NaN), a NaN one makes every
/// gradient NaN, and the optimizer's step then reports or skips them (`nonfinite_policy`).
/// Returns 0 for no parameters. Allocates nothing.
/// @throws value_error if `max_norm` is negative or NaN (PyTorch would flip or poison the
/// gradients); nothing changes then.
template <class T>
double clip_grad_norm(const std::vector<parameter<T>>& parameters, double max_norm)
{
    if (!(max_norm >= 0))
    {
        throw value_error(detail::concat("clip_grad_norm: max_norm ", max_norm, " must be >= 0"));
    }
    double sum = 0;
    for (const auto& p : parameters)
    {
        sum += detail::sum_of_squares(p.grad_data(), p.size());
    }
    const double norm = std::sqrt(sum);
    const double coefficient = max_norm / (norm + 1e-6);
    // torch.clamp(coefficient, max=1.0) keeps a NaN; so does this comparison.
    if (coefficient < 1.0 || std::isnan(coefficient))
    {
        using batch = xsimd::batch<T>;
        const batch factor(static_cast<T>(coefficient));
        for (const auto& p : parameters)
        {
            T* grad = p.grad_data();
            detail::update_elementwise<T>(p.size(), [&](std::size_t j, std::size_t n)
                                          { detail::store_n(grad + j, n, detail::load_n(grad + j, n) * factor); });
        }
    }
    return norm;
}

} // namespace xcnn

#endif // XCNN_OPTIM_CLIP_HPP
