/// @file
/// Classification helpers: `xcnn::argmax` and `xcnn::accuracy`.
#ifndef XCNN_LOSS_METRICS_HPP
#define XCNN_LOSS_METRICS_HPP

#include <cstddef>
#include <cstdint>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"

namespace xcnn
{

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

/// Fraction in [0, 1] of rows whose largest logit is at the label.
template <class T>
double accuracy(const xt::xtensor<T, 2>& logits, const xt::xtensor<std::int64_t, 1>& labels)
{
    if (labels.size() != logits.shape()[0])
    {
        throw shape_error(detail::concat("accuracy: logits ", detail::shape_to_string(logits.shape()), " and labels ",
                                         detail::shape_to_string(labels.shape()), " disagree on the batch size"));
    }
    if (labels.size() == 0)
    {
        return 0.0;
    }
    const auto predicted = argmax(logits);
    std::size_t correct = 0;
    for (std::size_t i = 0; i < labels.size(); ++i)
    {
        correct += predicted(i) == labels(i) ? 1 : 0;
    }
    return static_cast<double>(correct) / static_cast<double>(labels.size());
}

} // namespace xcnn

#endif // XCNN_LOSS_METRICS_HPP
