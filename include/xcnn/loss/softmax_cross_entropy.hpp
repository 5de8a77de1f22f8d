/// @file
/// `xcnn::SoftmaxCrossEntropy`: softmax and negative log-likelihood fused, PyTorch's
/// `CrossEntropyLoss` with mean reduction.
#ifndef XCNN_LOSS_SOFTMAX_CROSS_ENTROPY_HPP
#define XCNN_LOSS_SOFTMAX_CROSS_ENTROPY_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "metrics.hpp"
#include "softmax.hpp"

namespace xcnn
{

/// Mean cross-entropy of softmax(logits) against integer class labels.
///
/// Fusing the two keeps the gradient simple and exact, (softmax - one_hot) / N, and the
/// log-sum-exp shift by each row's maximum keeps it finite for any finite logits.
///
/// Non-finite logits are not an error here: as in PyTorch, a NaN or +inf in a row makes that
/// row's loss and gradient NaN (a -inf logit is a probability of 0: an infinite loss if it is the
/// label's, a finite gradient either way). The optimizer decides what a non-finite gradient means
/// (`SGD` raises `numeric_error` naming the step and the parameter, or skips the step under
/// `nonfinite_policy::skip_step`), so one policy covers a bad input, a bad weight and an overflow
/// anywhere in the network. A loop that wants to stop on the loss itself tests `std::isfinite` on
/// the value `forward` returns.
template <class T>
class SoftmaxCrossEntropy
{
public:
    /// Scalar type of the logits and of the loss (`float` or `double`).
    using value_type = T;

    /// Loss for logits (N, classes) and labels (N) in [0, classes); caches the softmax.
    /// @throws shape_error if the shapes disagree or N or classes is 0 (a mean over no samples is
    /// undefined), value_error if a label is out of range; the loss is then unchanged.
    T forward(const xt::xtensor<T, 2>& logits, const xt::xtensor<std::int64_t, 1>& labels)
    {
        const std::size_t n = logits.shape()[0], classes = logits.shape()[1];
        if (labels.size() != n)
        {
            throw shape_error(detail::concat("SoftmaxCrossEntropy: logits ", detail::shape_to_string(logits.shape()),
                                             " need ", n, " labels, got labels ",
                                             detail::shape_to_string(labels.shape())));
        }
        if (n == 0 || classes == 0)
        {
            throw shape_error(detail::concat("SoftmaxCrossEntropy: logits ", detail::shape_to_string(logits.shape()),
                                             " must have at least one sample and one class"));
        }
        for (std::size_t i = 0; i < n; ++i)
        {
            if (labels(i) < 0 || static_cast<std::uint64_t>(labels(i)) >= classes)
            {
                throw value_error(detail::concat("SoftmaxCrossEntropy: label ", labels(i), " at index ", i,
                                                 " is out of range for ", classes, " classes (logits ",
                                                 detail::shape_to_string(logits.shape()), ")"));
            }
        }
        if (m_probabilities.shape() != logits.shape())
        {
            m_probabilities.resize(logits.shape());
        }
        if (m_labels.shape() != labels.shape())
        {
            m_labels.resize(labels.shape());
        }
        std::copy(labels.begin(), labels.end(), m_labels.begin());
        T total = 0;
        for (std::size_t i = 0; i < n; ++i)
        {
            const T* row = logits.data() + i * classes;
            const T log_sum_exp = detail::softmax_row(row, m_probabilities.data() + i * classes, classes);
            total += log_sum_exp - row[static_cast<std::size_t>(labels(i))];
        }
        return total / static_cast<T>(n);
    }

    /// @overload
    /// For logits and labels of any expression type (an `xt::xarray`, a view, labels of another
    /// integer type), whose ranks are checked (a `shape_error`) before they are converted.
    template <class L, class Y, std::enable_if_t<xt::is_xexpression<L>::value && xt::is_xexpression<Y>::value, int> = 0>
    T forward(const L& logits, const Y& labels)
    {
        static_assert(std::is_integral<typename Y::value_type>::value,
                      "xcnn::SoftmaxCrossEntropy: labels must be integers");
        return forward(
            detail::evaluate_checked_rank<2>("SoftmaxCrossEntropy", "logits", "(N, classes)", logits,
                                             m_converted_logits),
            detail::evaluate_checked_rank<1>("SoftmaxCrossEntropy", "labels", "(N,)", labels, m_converted_labels));
    }

    /// dLoss/dlogits = (softmax(logits) - one_hot(labels)) / N for the last `forward`.
    /// @throws error without a successful `forward` first.
    const xt::xtensor<T, 2>& backward()
    {
        if (m_labels.size() == 0)
        {
            throw error("SoftmaxCrossEntropy: backward needs a forward first");
        }
        const std::size_t n = m_probabilities.shape()[0], classes = m_probabilities.shape()[1];
        if (m_grad.shape() != m_probabilities.shape())
        {
            m_grad.resize(m_probabilities.shape());
        }
        const T scale = T(1) / static_cast<T>(n);
        for (std::size_t i = 0; i < n; ++i)
        {
            for (std::size_t c = 0; c < classes; ++c)
            {
                m_grad(i, c) = m_probabilities(i, c) * scale;
            }
            m_grad(i, static_cast<std::size_t>(m_labels(i))) -= scale;
        }
        return m_grad;
    }

    /// softmax(logits) of the last `forward` (what `xcnn::softmax(logits)` gives).
    const xt::xtensor<T, 2>& probabilities() const noexcept { return m_probabilities; }

private:
    xt::xtensor<T, 2> m_probabilities;
    xt::xtensor<T, 2> m_grad;
    xt::xtensor<std::int64_t, 1> m_labels;
    xt::xtensor<T, 2> m_converted_logits;
    xt::xtensor<std::int64_t, 1> m_converted_labels;
};

} // namespace xcnn

#endif // XCNN_LOSS_SOFTMAX_CROSS_ENTROPY_HPP
