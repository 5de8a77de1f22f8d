/// @file
/// `xcnn::evaluate`: mean softmax cross-entropy, accuracy and confusion matrix of a classifier
/// over a whole data set, batch by batch, so memory is that of one batch, whatever the size of
/// the set (`net.predict(all_images)` keeps every layer's activations for all of them at once).
#ifndef XCNN_LOSS_EVALUATE_HPP
#define XCNN_LOSS_EVALUATE_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "../data/loader.hpp"

namespace xcnn
{

/// What `evaluate` measured over a data set.
struct evaluation
{
    /// Mean softmax cross-entropy over the samples, `SoftmaxCrossEntropy`'s (PyTorch's
    /// `CrossEntropyLoss`), summed in double.
    double loss = 0;
    /// Samples whose largest logit (the first one on ties, as `argmax`) is at their label.
    std::size_t correct = 0;
    /// Samples evaluated.
    std::size_t count = 0;
    /// `correct / count`, in [0, 1].
    double accuracy = 0;
    /// Number of classes, the logits' second axis.
    std::size_t classes = 0;
    /// `classes * classes` counts, row-major: row = true label, column = prediction.
    std::vector<std::size_t> confusion;

    /// Samples of label `truth` predicted as `predicted`.
    std::size_t confusion_at(std::size_t truth, std::size_t predicted) const
    {
        return confusion.at(truth * classes + predicted);
    }
};

namespace detail
{

/// Adds the logits (B, classes) of batch `batch_index` and their labels (B) to `result`.
template <class L>
void accumulate_evaluation(evaluation& result, const L& logits, const xt::xtensor<std::int64_t, 1>& labels,
                           std::size_t batch_index)
{
    if (logits.dimension() != 2 || logits.shape()[0] != labels.size())
    {
        throw shape_error(detail::concat("evaluate: batch ", batch_index, ": the network's output ",
                                         detail::shape_to_string(logits.shape()), " is not logits (N, classes) for ",
                                         labels.size(), " labels"));
    }
    const std::size_t n = logits.shape()[0], classes = logits.shape()[1];
    if (classes == 0)
    {
        throw shape_error(detail::concat("evaluate: batch ", batch_index, ": logits ",
                                         detail::shape_to_string(logits.shape()), " have no classes"));
    }
    if (result.classes == 0)
    {
        result.classes = classes;
        result.confusion.assign(classes * classes, 0);
    }
    else if (classes != result.classes)
    {
        throw shape_error(detail::concat("evaluate: batch ", batch_index, ": logits ",
                                         detail::shape_to_string(logits.shape()), " have ", classes,
                                         " classes, the batches before had ", result.classes));
    }
    const auto* data = logits.data();
    for (std::size_t i = 0; i < n; ++i)
    {
        const std::int64_t label = labels(i);
        if (label < 0 || static_cast<std::uint64_t>(label) >= classes)
        {
            throw value_error(detail::concat("evaluate: label ", label, " of sample ", i, " of batch ", batch_index,
                                             " is out of range for ", classes, " classes"));
        }
        const auto* row = data + i * classes;
        std::size_t best = 0;
        for (std::size_t c = 1; c < classes; ++c)
        {
            best = row[c] > row[best] ? c : best;
        }
        // log-sum-exp shifted by the row's maximum; a NaN or +inf logit makes the loss NaN, as in
        // SoftmaxCrossEntropy.
        const double shift = static_cast<double>(row[best]);
        double sum = 0;
        for (std::size_t c = 0; c < classes; ++c)
        {
            sum += std::exp(static_cast<double>(row[c]) - shift);
        }
        const auto truth = static_cast<std::size_t>(label);
        result.loss += std::log(sum) + shift - static_cast<double>(row[truth]);
        result.correct += best == truth ? 1 : 0;
        ++result.confusion[truth * classes + best];
    }
    result.count += n;
}

} // namespace detail

/// Evaluates the classifier `net` (anything with `predict(images)` returning logits
/// (B, classes): a `Sequential`, a single layer) on one epoch of `loader`: its order, its
/// `drop_last` and its transforms apply, so a loader for evaluation usually has none of them.
/// Only one batch's logits exist at a time.
/// @throws value_error if the epoch has no samples or a label is outside [0, classes);
/// shape_error if the network does not return (B, classes) logits or the class count changes
/// between batches; any error `net.predict` throws.
template <class Net, class T, std::size_t Rank>
evaluation evaluate(Net& net, DataLoader<T, Rank>& loader)
{
    using logits_type = std::decay_t<decltype(net.predict(std::declval<const xt::xtensor<T, Rank>&>()))>;
    static_assert(xt::get_rank<logits_type>::value == 2 || xt::get_rank<logits_type>::value == SIZE_MAX,
                  "xcnn::evaluate: the network's predict must return logits (N, classes)");
    evaluation result;
    std::size_t index = 0;
    for (const auto& batch : loader)
    {
        detail::accumulate_evaluation(result, net.predict(batch.images), batch.labels, index++);
    }
    if (result.count == 0)
    {
        throw value_error(detail::concat("evaluate: no samples to evaluate (a data set of ", loader.sample_count(),
                                         " samples in batches of ", loader.batch_size(),
                                         loader.options().drop_last ? " with drop_last)" : ")"));
    }
    result.loss /= static_cast<double>(result.count);
    result.accuracy = static_cast<double>(result.correct) / static_cast<double>(result.count);
    return result;
}

/// Evaluates `net` on `images` (N, ...) and `labels` (N) in order, `batch_size` samples at a
/// time; the evaluation's memory is one batch's.
/// @throws value_error for a batch size of 0, an empty data set or a label out of range;
/// shape_error if images and labels disagree on N or the network's output is not logits.
template <class Net, class T, std::size_t Rank>
evaluation evaluate(Net& net, const xt::xtensor<T, Rank>& images, const xt::xtensor<std::int64_t, 1>& labels,
                    std::size_t batch_size = 256)
{
    DataLoader<T, Rank> loader(images, labels, batch_size);
    return evaluate(net, loader);
}

/// Evaluates `net` on a data set with `images` and `labels` members (such as
/// `xcnn::labelled_images`), `batch_size` samples at a time.
/// @throws as `evaluate(net, images, labels, batch_size)`.
template <class Net, class Dataset,
          class = std::void_t<decltype(std::declval<const Dataset&>().images),
                              decltype(std::declval<const Dataset&>().labels)>>
evaluation evaluate(Net& net, const Dataset& dataset, std::size_t batch_size = 256)
{
    return evaluate(net, dataset.images, dataset.labels, batch_size);
}

} // namespace xcnn

#endif // XCNN_LOSS_EVALUATE_HPP
