/// @file
/// `xcnn::softmax`: class probabilities from (N, classes) logits at inference, PyTorch's
/// `torch.softmax(logits, dim=1)`. `SoftmaxCrossEntropy` computes its probabilities with the same
/// row kernel, so `softmax(logits)` equals `loss.probabilities()` bit for bit.
#ifndef XCNN_LOSS_SOFTMAX_HPP
#define XCNN_LOSS_SOFTMAX_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "metrics.hpp"

namespace xcnn
{
namespace detail
{

/// p = softmax(row) over `classes` >= 1 values; returns the row's log-sum-exp,
/// log(sum_c exp(row[c])). Shifting by the row's maximum keeps every exponent <= 0, so finite
/// logits of any size neither overflow nor give 0 / 0; a NaN or +inf in the row makes it NaN.
template <class T>
T softmax_row(const T* row, T* p, std::size_t classes)
{
    const T shift = *std::max_element(row, row + classes);
    T sum = 0;
    for (std::size_t c = 0; c < classes; ++c)
    {
        p[c] = std::exp(row[c] - shift);
        sum += p[c];
    }
    for (std::size_t c = 0; c < classes; ++c)
    {
        p[c] /= sum;
    }
    return std::log(sum) + shift;
}

} // namespace detail

/// softmax over each row of (N, classes) logits: probabilities that sum to 1 per row (PyTorch's
/// `torch.softmax(logits, dim=1)`), finite for any finite logits. An empty batch gives an empty
/// result.
/// @throws shape_error if there are no classes.
template <class T>
xt::xtensor<T, 2> softmax(const xt::xtensor<T, 2>& logits)
{
    static_assert(std::is_floating_point<T>::value, "xcnn::softmax: logits must be float or double");
    const std::size_t n = logits.shape()[0], classes = logits.shape()[1];
    if (classes == 0)
    {
        throw shape_error(
            detail::concat("softmax: logits ", detail::shape_to_string(logits.shape()), " have no classes"));
    }
    xt::xtensor<T, 2> p(logits.shape());
    for (std::size_t i = 0; i < n; ++i)
    {
        detail::softmax_row(logits.data() + i * classes, p.data() + i * classes, classes);
    }
    return p;
}

/// @overload
/// For logits of any expression type (an `xt::xarray`, a view), whose rank is checked (a
/// `shape_error`) before it is converted.
template <class L, std::enable_if_t<xt::is_xexpression<L>::value, int> = 0>
auto softmax(const L& logits)
{
    using T = typename L::value_type;
    static_assert(std::is_floating_point<T>::value, "xcnn::softmax: logits must be float or double");
    xt::xtensor<T, 2> logits_2d;
    return softmax(detail::evaluate_checked_rank<2>("softmax", "logits", "(N, classes)", logits, logits_2d));
}

} // namespace xcnn

#endif // XCNN_LOSS_SOFTMAX_HPP
