/// @file
/// `xcnn::distributed::distributed_sampler`: each rank's disjoint share of every epoch's shuffled
/// order, from one seed, and `split`, the rule that divides a global batch among the ranks.
///
/// Needs no MPI: a rank is told its index and the number of ranks. Data-parallel training
/// (distributed/mpi.hpp) runs one global batch per step; rank r trains on its contiguous part of
/// that batch, so the ranks together see each sample of an epoch exactly once, and a batch that
/// does not divide evenly (the last one of an epoch, or a batch size that is not a multiple of
/// the number of ranks) gives the first ranks one sample more.
#ifndef XCNN_DISTRIBUTED_SAMPLER_HPP
#define XCNN_DISTRIBUTED_SAMPLER_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace xcnn
{
namespace distributed
{

/// Where one rank's part of a batch lies: `count` samples from position `offset` of the batch.
struct share
{
    std::size_t offset = 0; ///< first position of the rank's part, counted from the batch's start
    std::size_t count = 0;  ///< number of samples of the part (0 when the batch is smaller than the ranks)
};

/// The part of a batch of `count` samples that rank `rank` of `ranks` trains on: contiguous parts
/// in rank order, the first `count % ranks` ranks one sample larger than the others.
/// @throws value_error if `ranks` is 0 or `rank` is not below it.
inline share split(std::size_t count, std::size_t rank, std::size_t ranks)
{
    if (ranks == 0 || rank >= ranks)
    {
        throw value_error(detail::concat("distributed::split: rank ", rank, " of ", ranks,
                                         " ranks; the rank must be below the number of ranks"));
    }
    const std::size_t base = count / ranks, extra = count % ranks;
    return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

/// Gives one rank of a data-parallel run its share of each epoch.
///
/// Every rank builds the sampler with the same data set size, global batch size and seed, and
/// its own rank. `set_epoch(e)` draws the epoch's permutation of `[0, samples)` from the seed and
/// the epoch alone (like PyTorch's `DistributedSampler`), so all ranks hold the same order without
/// communicating and a resumed run finds it again from the epoch number. The permutation is a
/// Fisher-Yates shuffle driven by `std::mt19937_64` with its own unbiased bounded draws: unlike
/// `std::shuffle` and `std::uniform_int_distribution`, whose algorithms the standard leaves to
/// the library, it is the same on every machine, which ranks on different machines need.
///
/// Global batch `b` is positions `[b * global_batch, ...)` of the order; `batch` lists this
/// rank's part of it (`split`). Over an epoch the ranks' parts are disjoint and cover every sample
/// once; no sample is repeated or dropped to even them out.
class distributed_sampler
{
public:
    /// A sampler over `samples` samples in global batches of `global_batch`, for rank `rank` of
    /// `ranks`, shuffled from `seed`; it starts at epoch 0.
    /// @throws value_error if `global_batch` or `ranks` is 0 or `rank` is not below `ranks`.
    distributed_sampler(std::size_t samples, std::size_t global_batch, std::size_t rank, std::size_t ranks,
                        std::uint64_t seed)
        : m_global_batch(global_batch), m_rank(rank), m_ranks(ranks), m_seed(seed), m_order(samples)
    {
        if (global_batch == 0 || ranks == 0 || rank >= ranks)
        {
            throw value_error(detail::concat("distributed_sampler: global batch ", global_batch, ", rank ", rank,
                                             " of ", ranks,
                                             " ranks; the batch and the number of ranks must be at least 1 and the "
                                             "rank below the number of ranks"));
        }
        set_epoch(0);
    }

    /// Draws the order of epoch `epoch` (a function of the seed and `epoch` only).
    void set_epoch(std::uint64_t epoch)
    {
        m_epoch = epoch;
        std::seed_seq seq{static_cast<std::uint32_t>(m_seed), static_cast<std::uint32_t>(m_seed >> 32),
                          static_cast<std::uint32_t>(epoch), static_cast<std::uint32_t>(epoch >> 32)};
        std::mt19937_64 rng(seq);
        std::iota(m_order.begin(), m_order.end(), std::size_t(0));
        for (std::size_t i = m_order.size(); i > 1; --i)
        {
            std::swap(m_order[i - 1], m_order[below(rng, i)]);
        }
    }

    /// The epoch whose order `order()` holds.
    std::uint64_t epoch() const noexcept { return m_epoch; }
    /// The epoch's permutation of all sample indices, the same on every rank.
    const std::vector<std::size_t>& order() const noexcept { return m_order; }
    /// Number of samples of the data set.
    std::size_t samples() const noexcept { return m_order.size(); }
    /// This rank's index.
    std::size_t rank() const noexcept { return m_rank; }
    /// Number of ranks.
    std::size_t ranks() const noexcept { return m_ranks; }
    /// Number of global batches per epoch (the last one may be smaller).
    std::size_t batches() const noexcept { return (m_order.size() + m_global_batch - 1) / m_global_batch; }

    /// Number of samples of global batch `b` over all ranks.
    /// @throws value_error if `b` is not below `batches()`.
    std::size_t global_batch_size(std::size_t b) const
    {
        check_batch(b);
        return std::min(m_global_batch, m_order.size() - b * m_global_batch);
    }

    /// Where this rank's part of global batch `b` lies within `order()`: `offset` counts from the
    /// start of the order.
    /// @throws value_error if `b` is not below `batches()`.
    share batch_share(std::size_t b) const
    {
        share s = split(global_batch_size(b), m_rank, m_ranks);
        s.offset += b * m_global_batch;
        return s;
    }

    /// Writes this rank's sample indices of global batch `b` into `out` (resized; no allocation
    /// once its capacity suffices).
    /// @throws value_error if `b` is not below `batches()`.
    void batch(std::size_t b, std::vector<std::size_t>& out) const
    {
        const share s = batch_share(b);
        out.assign(m_order.begin() + static_cast<std::ptrdiff_t>(s.offset),
                   m_order.begin() + static_cast<std::ptrdiff_t>(s.offset + s.count));
    }

    /// This rank's sample indices of the whole epoch, batch after batch.
    std::vector<std::size_t> indices() const
    {
        std::vector<std::size_t> all, part;
        for (std::size_t b = 0; b < batches(); ++b)
        {
            batch(b, part);
            all.insert(all.end(), part.begin(), part.end());
        }
        return all;
    }

private:
    void check_batch(std::size_t b) const
    {
        if (b >= batches())
        {
            throw value_error(detail::concat("distributed_sampler: batch ", b, " of an epoch of ", batches(),
                                             " batches (", m_order.size(), " samples in batches of ", m_global_batch,
                                             ")"));
        }
    }

    /// A uniform draw from [0, bound): rejection of the 2^64 mod bound lowest values keeps it
    /// unbiased.
    static std::size_t below(std::mt19937_64& rng, std::size_t bound)
    {
        const std::uint64_t n = bound;
        const std::uint64_t threshold = (std::uint64_t(0) - n) % n;
        for (;;)
        {
            const std::uint64_t r = rng();
            if (r >= threshold)
            {
                return static_cast<std::size_t>(r % n);
            }
        }
    }

    std::size_t m_global_batch;
    std::size_t m_rank;
    std::size_t m_ranks;
    std::uint64_t m_seed;
    std::uint64_t m_epoch = 0;
    std::vector<std::size_t> m_order;
};

} // namespace distributed
} // namespace xcnn

#endif // XCNN_DISTRIBUTED_SAMPLER_HPP
