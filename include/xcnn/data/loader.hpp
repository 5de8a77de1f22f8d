/// @file
/// `xcnn::DataLoader`: mini-batches of a labelled data set held in memory, optionally shuffled
/// every epoch and augmented, as PyTorch's `DataLoader` over a `TensorDataset` with a list of
/// transforms.
///
///     xcnn::DataLoader loader(train.images, train.labels, 64, xcnn::loader_options{}.shuffled(1));
///     loader.add_transform(xcnn::RandomCrop(2)).add_transform(xcnn::RandomHorizontalFlip());
///     for (int epoch = 0; epoch < epochs; ++epoch)
///     {
///         for (const auto& [images, labels] : loader) // a new permutation each epoch
///         {
///             loss.forward(net.forward(images), labels);
///             ...
///         }
///     }
#ifndef XCNN_DATA_LOADER_HPP
#define XCNN_DATA_LOADER_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <random>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "transforms.hpp"

namespace xcnn
{

namespace detail
{

/// The scalar type and rank of the `images` member of a data set, for deduction guides.
template <class Dataset>
struct images_of
{
    /// The `images` tensor's type.
    using type = std::decay_t<decltype(std::declval<const Dataset&>().images)>;
    /// Its scalar type.
    using value_type = typename type::value_type;
    /// Its rank.
    static constexpr std::size_t rank = std::tuple_size<typename type::shape_type>::value;
};

} // namespace detail

/// How a `DataLoader` orders and cuts its samples. The setters return changed copies, so they
/// chain: `xcnn::loader_options{}.shuffled(seed).dropping_last()`.
struct loader_options
{
    /// Draw a new order of the samples at the start of every epoch (else: the stored order).
    bool shuffle = false;
    /// Leave out the last batch of an epoch when it would be smaller than the batch size.
    bool drop_last = false;
    /// Seed of the shuffling generator, `std::mt19937(seed)`.
    std::mt19937::result_type seed = 0;
    /// Seed of the generator the transforms draw from, `std::mt19937(transform_seed)`; another
    /// generator than the shuffling one, so adding a transform does not change the order.
    std::mt19937::result_type transform_seed = 1;

    /// These options with shuffling on, from `std::mt19937(s)`.
    loader_options shuffled(std::mt19937::result_type s) const noexcept
    {
        loader_options o = *this;
        o.shuffle = true;
        o.seed = s;
        return o;
    }
    /// These options with `drop_last` on.
    loader_options dropping_last() const noexcept
    {
        loader_options o = *this;
        o.drop_last = true;
        return o;
    }
    /// These options with the transforms' generator from `std::mt19937(s)`.
    loader_options transforms_seeded(std::mt19937::result_type s) const noexcept
    {
        loader_options o = *this;
        o.transform_seed = s;
        return o;
    }
};

/// Mini-batches of samples (N, ...) of `T` with int64 labels (N): images (N, C, H, W), feature
/// rows (N, F) or any other rank from 2 up.
///
/// The loader reads the caller's tensors, which must outlive it and keep their shape (checked
/// before every batch: a `shape_error` if they changed); it never copies the data set. Each
/// batch is gathered into one of two buffers the loader owns, one of the batch size and one of
/// the last, smaller batch, so after the first epoch iterating allocates nothing. A batch is
/// valid until the iteration moves on.
///
/// Iterating (`begin()`, as a range-for does) starts an epoch: with `shuffle`, the order of the
/// previous epoch is shuffled by `std::shuffle` with the loader's generator, so the same seed
/// gives the same sequence of permutations (with the same standard library) and every epoch
/// another one. Every sample appears exactly once per epoch; the last batch is smaller unless
/// `drop_last` leaves it out. The transforms run on each gathered batch in the order they were
/// added, drawing from their own generator; the data set itself is never changed.
///
/// To continue an interrupted epoch (a checkpoint), save `order()` and the two generators'
/// states, restore them with `set_order` and `generator()` / `transform_generator()`, and
/// iterate `resume_epoch(first_batch)`, which starts at that batch without a new permutation.
template <class T, std::size_t Rank>
class DataLoader
{
    static_assert(Rank >= 2, "xcnn::DataLoader: samples are the first axis, so the data needs rank 2 or more "
                             "((N, features), (N, C, H, W), ...)");

public:
    /// Scalar type of the samples.
    using value_type = T;
    /// The samples (N, ...) and each batch's.
    using images_type = xt::xtensor<T, Rank>;
    /// The labels (N) and each batch's.
    using labels_type = xt::xtensor<std::int64_t, 1>;
    /// A transform: changes a batch of samples in place, drawing from the generator it is given.
    using transform_type = std::function<void(images_type&, std::mt19937&)>;

    /// One batch: `images` (B, ...) and `labels` (B), buffers of the loader.
    struct batch
    {
        images_type images; ///< (B, ...): the samples of the batch, transformed
        labels_type labels; ///< (B): their labels
    };

    /// Input iterator over the batches of an epoch; dereferencing gathers the batch (once).
    class iterator
    {
    public:
        using iterator_category = std::input_iterator_tag; ///< single pass
        using value_type = batch;                          ///< a batch
        using difference_type = std::ptrdiff_t;            ///< batch distance
        using pointer = const batch*;                      ///< pointer to the loader's buffer
        using reference = const batch&;                    ///< the loader's buffer

        /// The batch at this position, gathered and transformed on first access.
        reference operator*() const { return m_loader->load(m_index); }
        /// Member access to the batch.
        pointer operator->() const { return &**this; }
        /// The next batch.
        iterator& operator++() noexcept
        {
            ++m_index;
            return *this;
        }
        /// The next batch (post-increment).
        iterator operator++(int) noexcept
        {
            iterator old = *this;
            ++m_index;
            return old;
        }
        /// Index of the batch in the epoch.
        std::size_t index() const noexcept { return m_index; }
        /// Same loader and position.
        friend bool operator==(const iterator& a, const iterator& b) noexcept
        {
            return a.m_loader == b.m_loader && a.m_index == b.m_index;
        }
        /// Not the same position.
        friend bool operator!=(const iterator& a, const iterator& b) noexcept { return !(a == b); }

    private:
        friend class DataLoader;
        iterator(DataLoader* loader, std::size_t index) noexcept : m_loader(loader), m_index(index) {}
        DataLoader* m_loader;
        std::size_t m_index;
    };

    /// The batches from one position to the end of the epoch (`resume_epoch`).
    class batch_range
    {
    public:
        /// The first batch of the range.
        iterator begin() const noexcept { return m_begin; }
        /// Past the last batch of the epoch.
        iterator end() const noexcept { return m_end; }

    private:
        friend class DataLoader;
        batch_range(iterator b, iterator e) noexcept : m_begin(b), m_end(e) {}
        iterator m_begin, m_end;
    };

    /// Batches of `batch_size` samples of `images` (N, ...) with `labels` (N), which the loader
    /// reads in place: they must outlive it.
    /// @throws value_error if `batch_size` is 0; shape_error if images and labels disagree on N.
    DataLoader(const images_type& images, const labels_type& labels, std::size_t batch_size,
               const loader_options& options = {})
        : m_images(&images), m_labels(&labels), m_shape(images.shape()), m_batch_size(batch_size), m_options(options),
          m_rng(options.seed), m_transform_rng(options.transform_seed)
    {
        if (batch_size == 0)
        {
            throw value_error("DataLoader: the batch size must be at least 1, got 0");
        }
        if (labels.size() != m_shape[0])
        {
            throw shape_error(detail::concat("DataLoader: images ", detail::shape_to_string(images.shape()),
                                             " and labels ", detail::shape_to_string(labels.shape()),
                                             " disagree on the number of samples"));
        }
        m_sample_size = 1;
        for (std::size_t d = 1; d < Rank; ++d)
        {
            m_sample_size *= m_shape[d];
        }
        if (m_options.shuffle)
        {
            identity_order();
        }
        // Both buffers now, so not even the first epoch allocates while it runs.
        const std::size_t n = m_shape[0];
        if (n >= batch_size)
        {
            allocate(m_full, batch_size);
        }
        if (n % batch_size != 0 && !m_options.drop_last)
        {
            allocate(m_tail, n % batch_size);
        }
    }

    /// The `images` and `labels` members of `dataset` (such as `xcnn::labelled_images`), read in
    /// place: `dataset` must outlive the loader.
    /// @throws value_error, shape_error as the constructor from tensors does.
    template <class Dataset, class = std::void_t<decltype(std::declval<const Dataset&>().images),
                                                 decltype(std::declval<const Dataset&>().labels)>>
    DataLoader(const Dataset& dataset, std::size_t batch_size, const loader_options& options = {})
        : DataLoader(dataset.images, dataset.labels, batch_size, options)
    {
    }

    /// Not from temporaries: the loader reads the data in place and would outlive them.
    DataLoader(const images_type&&, const labels_type&, std::size_t, const loader_options& = {}) = delete;
    /// Not from temporaries: the loader reads the data in place and would outlive them.
    DataLoader(const images_type&, const labels_type&&, std::size_t, const loader_options& = {}) = delete;
    /// Not from temporaries: the loader reads the data in place and would outlive them.
    DataLoader(const images_type&&, const labels_type&&, std::size_t, const loader_options& = {}) = delete;
    /// Not from a temporary data set: the loader reads it in place and would outlive it.
    template <class Dataset, class = std::enable_if_t<!std::is_lvalue_reference<Dataset>::value>,
              class = std::void_t<decltype(std::declval<const Dataset&>().images)>>
    DataLoader(Dataset&& dataset, std::size_t batch_size, const loader_options& options = {}) = delete;

    /// Appends a transform (`RandomCrop`, `RandomHorizontalFlip` or any callable
    /// `void(images_type&, std::mt19937&)`), run on every batch after the ones added before it.
    DataLoader& add_transform(transform_type transform)
    {
        m_transforms.push_back(std::move(transform));
        return *this;
    }

    /// Starts an epoch (a new permutation when shuffling) and returns its first batch.
    iterator begin()
    {
        if (m_options.shuffle)
        {
            std::shuffle(m_order.begin(), m_order.end(), m_rng);
        }
        ++m_epoch;
        ++m_generation;
        return iterator(this, 0);
    }

    /// Past the last batch of an epoch.
    iterator end() noexcept { return iterator(this, size()); }

    /// Starts an epoch, as `begin()` does, and returns all of its batches: the same range as
    /// `resume_epoch`, for loops that either start or continue an epoch.
    batch_range epoch_batches()
    {
        const iterator first = begin();
        return batch_range(first, end());
    }

    /// The rest of the current epoch from batch `first_batch`, in the current `order()`, without
    /// a new permutation: how an interrupted epoch continues.
    /// @throws value_error if `first_batch` is larger than `size()`.
    batch_range resume_epoch(std::size_t first_batch)
    {
        if (first_batch > size())
        {
            throw value_error(detail::concat("DataLoader: cannot resume at batch ", first_batch, " of an epoch of ",
                                             size(), " batches"));
        }
        ++m_generation;
        return batch_range(iterator(this, first_batch), end());
    }

    /// Number of batches per epoch, PyTorch's `len(loader)`.
    std::size_t size() const noexcept
    {
        const std::size_t n = m_shape[0];
        return n / m_batch_size + (n % m_batch_size != 0 && !m_options.drop_last ? 1 : 0);
    }

    /// Number of samples of the data set.
    std::size_t sample_count() const noexcept { return m_shape[0]; }

    /// Samples per batch (the last one may have fewer).
    std::size_t batch_size() const noexcept { return m_batch_size; }

    /// The options the loader was made with.
    const loader_options& options() const noexcept { return m_options; }

    /// Epochs started so far (calls of `begin()`).
    std::size_t epoch() const noexcept { return m_epoch; }

    /// The order of the samples in the current epoch: batch b holds samples
    /// `order()[b * batch_size()]` onwards.
    std::vector<std::size_t> order() const
    {
        if (!m_order.empty() || m_shape[0] == 0)
        {
            return m_order;
        }
        std::vector<std::size_t> identity(m_shape[0]);
        for (std::size_t i = 0; i < identity.size(); ++i)
        {
            identity[i] = i;
        }
        return identity;
    }

    /// Replaces the current order (a saved `order()`): the next `resume_epoch` reads it, the next
    /// epoch shuffles it.
    /// @throws value_error unless `order` is a permutation of [0, sample_count()); the order is
    /// then unchanged.
    void set_order(const std::vector<std::size_t>& order)
    {
        const std::size_t n = m_shape[0];
        if (order.size() != n)
        {
            throw value_error(
                detail::concat("DataLoader: an order of ", order.size(), " samples for a data set of ", n, " samples"));
        }
        std::vector<bool> seen(n, false);
        for (std::size_t i = 0; i < n; ++i)
        {
            if (order[i] >= n || seen[order[i]])
            {
                throw value_error(detail::concat("DataLoader: the order is not a permutation of the ", n,
                                                 " samples: entry ", i, " is ", order[i],
                                                 order[i] >= n ? " (out of range)" : " (repeated)"));
            }
            seen[order[i]] = true;
        }
        m_order = order;
        ++m_generation;
    }

    /// The shuffling generator: its state decides the next epoch's order (save and restore it to
    /// continue a run).
    std::mt19937& generator() noexcept { return m_rng; }

    /// The generator the transforms draw from.
    std::mt19937& transform_generator() noexcept { return m_transform_rng; }

private:
    void identity_order()
    {
        m_order.resize(m_shape[0]);
        for (std::size_t i = 0; i < m_order.size(); ++i)
        {
            m_order[i] = i;
        }
    }

    void allocate(batch& b, std::size_t count)
    {
        typename images_type::shape_type shape = m_shape;
        shape[0] = count;
        b.images.resize(shape);
        b.labels.resize(std::array<std::size_t, 1>{count});
    }

    /// Throws `shape_error` if the data set's tensors no longer have the shape they had when
    /// the loader was made (resized or reassigned): the loader would read past them.
    void check_source() const
    {
        const auto& s = m_images->shape();
        if (!std::equal(s.begin(), s.end(), m_shape.begin()) || m_labels->size() != m_shape[0])
        {
            throw shape_error(detail::concat("DataLoader: the data set changed since the loader was made: images ",
                                             detail::shape_to_string(m_shape), " are now ", detail::shape_to_string(s),
                                             ", labels (", m_shape[0], ",) are now ",
                                             detail::shape_to_string(m_labels->shape())));
        }
    }

    /// Gathers and transforms batch `index` of the current epoch, unless it already has.
    const batch& load(std::size_t index)
    {
        const std::size_t n = m_shape[0];
        const std::size_t first = index * m_batch_size;
        const std::size_t count = std::min(m_batch_size, n - first);
        batch& b = count == m_batch_size ? m_full : m_tail;
        if (m_loaded_generation == m_generation && m_loaded_index == index)
        {
            return b;
        }
        check_source();
        if (b.images.shape()[0] != count ||
            !std::equal(b.images.shape().begin() + 1, b.images.shape().end(), m_shape.begin() + 1))
        {
            allocate(b, count); // a transform resized it
        }
        const T* images = m_images->data();
        const std::int64_t* labels = m_labels->data();
        T* out = b.images.data();
        if (m_order.empty())
        {
            std::copy(images + first * m_sample_size, images + (first + count) * m_sample_size, out);
            std::copy(labels + first, labels + first + count, b.labels.data());
        }
        else
        {
            for (std::size_t i = 0; i < count; ++i)
            {
                const std::size_t sample = m_order[first + i];
                std::copy(images + sample * m_sample_size, images + (sample + 1) * m_sample_size,
                          out + i * m_sample_size);
                b.labels(i) = labels[sample];
            }
        }
        // Not marked as loaded until every transform has run: after one that threw, the next
        // access gathers the batch again rather than return it half transformed.
        m_loaded_generation = std::size_t(-1);
        for (auto& transform : m_transforms)
        {
            transform(b.images, m_transform_rng);
        }
        m_loaded_generation = m_generation;
        m_loaded_index = index;
        return b;
    }

    const images_type* m_images;
    const labels_type* m_labels;
    typename images_type::shape_type m_shape;
    std::size_t m_sample_size = 1;
    std::size_t m_batch_size;
    loader_options m_options;
    std::mt19937 m_rng;
    std::mt19937 m_transform_rng;
    std::vector<std::size_t> m_order; // empty: the identity
    std::vector<transform_type> m_transforms;
    batch m_full, m_tail;
    std::size_t m_epoch = 0;
    std::size_t m_generation = 0; // which epoch (or resumed stretch) the loaded batch belongs to
    std::size_t m_loaded_generation = std::size_t(-1);
    std::size_t m_loaded_index = 0;
};

/// Deduction guide: a loader over a data set with `images` and `labels` members.
template <class Dataset, class = std::void_t<decltype(std::declval<const Dataset&>().images)>>
DataLoader(const Dataset&, std::size_t)
    -> DataLoader<typename detail::images_of<Dataset>::value_type, detail::images_of<Dataset>::rank>;

/// Deduction guide: a loader over a data set with `images` and `labels` members, with options.
template <class Dataset, class = std::void_t<decltype(std::declval<const Dataset&>().images)>>
DataLoader(const Dataset&, std::size_t, const loader_options&)
    -> DataLoader<typename detail::images_of<Dataset>::value_type, detail::images_of<Dataset>::rank>;

} // namespace xcnn

#endif // XCNN_DATA_LOADER_HPP
