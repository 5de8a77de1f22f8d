/// @file
/// Classification helpers: `xcnn::argmax` and `xcnn::accuracy`.
#ifndef XCNN_LOSS_METRICS_HPP
#define XCNN_LOSS_METRICS_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// `expression` evaluated into `buffer` after checking its rank: converting an expression of
/// another rank to an `xt::xtensor<V, N>` writes past xtensor's fixed-size shape array, so a
/// wrong rank must be caught first. `owner` and `what` name the function and the argument.
template <std::size_t N, class V, class E>
const xt::xtensor<V, N>& evaluate_checked_rank(const char* owner, const char* what, const char* layout,
                                               const xt::xexpression<E>& expression, xt::xtensor<V, N>& buffer)
{
    const auto& e = expression.derived_cast();
    if (e.dimension() != N)
    {
        throw shape_error(detail::concat(owner, ": expected ", what, " of rank ", N, " ", layout, ", got shape ",
                                         detail::shape_to_string(e.shape())));
    }
    // For a fixed rank other than N the check above has thrown; the conversion is not even
    // instantiated (GCC's -Warray-bounds sees the overflow it would be).
    if constexpr (xt::get_rank<E>::value == SIZE_MAX || xt::get_rank<E>::value == N)
    {
        if (!std::equal(e.shape().begin(), e.shape().end(), buffer.shape().begin(), buffer.shape().end()))
        {
            std::array<std::size_t, N> shape{};
            std::copy(e.shape().begin(), e.shape().end(), shape.begin());
            buffer.resize(shape);
        }
        xt::noalias(buffer) = e;
    }
    return buffer;
}

} // namespace detail

/// Index of the largest logit of each row of (N, classes); the first one on ties.
template <class T>
xt::xtensor<std::int64_t, 1> argmax(const xt::xtensor<T, 2>& logits)
{
    const std::size_t n = logits.shape()[0], classes = logits.shape()[1];
    if (classes == 0)
    {
        throw shape_error(
            detail::concat("argmax: logits ", detail::shape_to_string(logits.shape()), " have no classes"));
    }
    xt::xtensor<std::int64_t, 1> out = xt::zeros<std::int64_t>({n});
    for (std::size_t i = 0; i < n; ++i)
    {
        std::size_t best = 0;
        for (std::size_t c = 1; c < classes; ++c)
        {
            if (logits(i, c) > logits(i, best))
            {
                best = c;
            }
        }
        out(i) = static_cast<std::int64_t>(best);
    }
    return out;
}

/// Fraction in [0, 1] of rows whose largest logit is at the label; 0 for an empty batch.
/// @throws shape_error if logits (N, classes) and labels (N) disagree on N or there are no
/// classes; value_error if a label lies outside [0, classes).
template <class T>
double accuracy(const xt::xtensor<T, 2>& logits, const xt::xtensor<std::int64_t, 1>& labels)
{
    const std::size_t n = logits.shape()[0], classes = logits.shape()[1];
    if (labels.size() != n)
    {
        throw shape_error(detail::concat("accuracy: logits ", detail::shape_to_string(logits.shape()), " and labels ",
                                         detail::shape_to_string(labels.shape()), " disagree on the batch size"));
    }
    if (n == 0)
    {
        return 0.0;
    }
    if (classes == 0)
    {
        throw shape_error(
            detail::concat("accuracy: logits ", detail::shape_to_string(logits.shape()), " have no classes"));
    }
    for (std::size_t i = 0; i < n; ++i)
    {
        // A label no logit can match is a bug in the data, not a wrong prediction.
        if (labels(i) < 0 || static_cast<std::uint64_t>(labels(i)) >= classes)
        {
            throw value_error(detail::concat("accuracy: label ", labels(i), " at index ", i, " is out of range for ",
                                             classes, " classes (logits ", detail::shape_to_string(logits.shape()),
                                             ")"));
        }
    }
    const auto predicted = argmax(logits);
    std::size_t correct = 0;
    for (std::size_t i = 0; i < labels.size(); ++i)
    {
        correct += predicted(i) == labels(i) ? 1 : 0;
    }
    return static_cast<double>(correct) / static_cast<double>(labels.size());
}

/// @overload
/// For logits and labels of any expression type (an `xt::xarray`, a view, labels of another
/// integer type), whose ranks are checked (a `shape_error`) before they are converted.
template <class L, class Y, std::enable_if_t<xt::is_xexpression<L>::value && xt::is_xexpression<Y>::value, int> = 0>
double accuracy(const L& logits, const Y& labels)
{
    using T = typename L::value_type;
    static_assert(std::is_floating_point<T>::value, "xcnn::accuracy: logits must be float or double");
    static_assert(std::is_integral<typename Y::value_type>::value, "xcnn::accuracy: labels must be integers");
    xt::xtensor<T, 2> logits_2d;
    xt::xtensor<std::int64_t, 1> labels_1d;
    return accuracy(detail::evaluate_checked_rank<2>("accuracy", "logits", "(N, classes)", logits, logits_2d),
                    detail::evaluate_checked_rank<1>("accuracy", "labels", "(N,)", labels, labels_1d));
}

} // namespace xcnn

#endif // XCNN_LOSS_METRICS_HPP
