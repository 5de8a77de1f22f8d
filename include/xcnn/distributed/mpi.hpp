/// @file
/// Data-parallel training over MPI, Horovod's design: the CMake component `xcnn::mpi`
/// (`find_package(xcnn COMPONENTS mpi)`), the one xcnn header that needs an MPI library.
///
/// Every rank holds the whole network and trains on its part of each global batch
/// (distributed/sampler.hpp):
/// - at the start, `broadcast_parameters` copies rank 0's parameters and buffers to every rank;
/// - after each backward pass, `gradient_averager::average` replaces every rank's gradients by
///   those of the global batch, with one `MPI_Allreduce` over a fused buffer (not one call per
///   tensor), so every optimizer then takes the same step;
/// - buffers (BatchNorm's running statistics) travel in the same call and are averaged, weighted
///   by each rank's number of samples: a running mean then equals the one a single process
///   computes from the whole batch, and the ranks keep identical models, so any rank's file is
///   the model;
/// - `abort` ends every rank of the job with a message when one of them fails, instead of
///   leaving the others waiting in a collective call.
///
/// docs/distributed.md shows how to run it on one or several machines.
#ifndef XCNN_DISTRIBUTED_MPI_HPP
#define XCNN_DISTRIBUTED_MPI_HPP

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/parameter.hpp"
#include "sampler.hpp"

namespace xcnn
{
namespace distributed
{

/// An MPI call failed (with the communicator's error handler set to `MPI_ERRORS_RETURN`; the
/// default handler ends the job itself), or MPI was used before it was initialised. The message
/// names the call and MPI's own description of the error.
class mpi_error : public error
{
public:
    using error::error;
};

namespace detail
{

/// Throws `mpi_error` naming `call` unless `rc` is `MPI_SUCCESS`.
inline void check_mpi(int rc, const char* call)
{
    if (rc != MPI_SUCCESS)
    {
        char text[MPI_MAX_ERROR_STRING];
        int length = 0;
        MPI_Error_string(rc, text, &length);
        throw mpi_error(xcnn::detail::concat(call, " failed: ", std::string(text, static_cast<std::size_t>(length))));
    }
}

/// The MPI datatype of a scalar type.
template <class T>
MPI_Datatype datatype()
{
    static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                  "xcnn::distributed: the scalar type must be float or double");
    return std::is_same<T, float>::value ? MPI_FLOAT : MPI_DOUBLE;
}

/// `inout[i] = in[i] + inout[i]`, registered as a non-commutative operation: MPI then combines
/// the ranks' values in rank order, so every rank gets the same bits in every run, whatever
/// algorithm the library picks for the message size (a built-in `MPI_SUM` over three or more
/// ranks may be reordered).
template <class T>
void ordered_sum(void* in, void* inout, int* length, MPI_Datatype*)
{
    const T* a = static_cast<const T*>(in);
    T* b = static_cast<T*>(inout);
    const int n = *length;
    for (int i = 0; i < n; ++i)
    {
        b[i] = a[i] + b[i];
    }
}

/// Whether `Net` has `buffers()` returning handles of scalar `T` (a `Sequential` does).
template <class Net, class T, class = void>
struct has_buffers : std::false_type
{
};
template <class Net, class T>
struct has_buffers<
    Net, T, std::enable_if_t<std::is_same<decltype(std::declval<Net&>().buffers()), std::vector<buffer<T>>>::value>>
    : std::true_type
{
};

/// `net.buffers()`, or none for a network without buffers.
template <class T, class Net>
std::vector<buffer<T>> buffers_of(Net& net)
{
    if constexpr (has_buffers<Net, T>::value)
    {
        return net.buffers();
    }
    else
    {
        (void)net;
        return {};
    }
}

/// Total number of elements of `handles`.
template <class Handle>
std::size_t total_size(const std::vector<Handle>& handles)
{
    std::size_t n = 0;
    for (const auto& h : handles)
    {
        n += h.size();
    }
    return n;
}

} // namespace detail

/// Initialises MPI for the lifetime of the object and finalises it afterwards, unless the
/// program initialised MPI itself (then it does neither). Asks for `MPI_THREAD_FUNNELED`: only
/// the thread that created it calls MPI, while xcnn's kernel threads (core/threading.hpp) never
/// do. Create one, in `main`, before any other object of this header.
class environment
{
public:
    /// Initialises MPI with the program's arguments (MPI implementations may read and remove
    /// their own).
    /// @throws mpi_error if MPI cannot be initialised.
    environment(int& argc, char**& argv) { init(&argc, &argv); }
    /// Initialises MPI without the program's arguments.
    /// @throws mpi_error if MPI cannot be initialised.
    environment() { init(nullptr, nullptr); }
    environment(const environment&) = delete;
    environment& operator=(const environment&) = delete;
    /// Finalises MPI if this object initialised it and nobody has finalised it since.
    ~environment()
    {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (m_owner && !finalized)
        {
            MPI_Finalize();
        }
    }

private:
    void init(int* argc, char*** argv)
    {
        int initialized = 0;
        detail::check_mpi(MPI_Initialized(&initialized), "MPI_Initialized");
        if (!initialized)
        {
            int provided = 0;
            detail::check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
            m_owner = true;
        }
    }

    bool m_owner = false;
};

/// A group of ranks that train together: an MPI communicator (not owned) with its rank and
/// size, read once.
class communicator
{
public:
    /// `MPI_COMM_WORLD`: every process the job started.
    /// @throws mpi_error if MPI is not initialised (create an `environment` first).
    communicator() : communicator(MPI_COMM_WORLD) {}
    /// The communicator `comm`, which must outlive this object.
    /// @throws mpi_error if MPI is not initialised.
    explicit communicator(MPI_Comm comm) : m_comm(comm)
    {
        int initialized = 0;
        detail::check_mpi(MPI_Initialized(&initialized), "MPI_Initialized");
        if (!initialized)
        {
            throw mpi_error("xcnn::distributed::communicator: MPI is not initialised; create an "
                            "xcnn::distributed::environment at the start of main()");
        }
        detail::check_mpi(MPI_Comm_rank(comm, &m_rank), "MPI_Comm_rank");
        detail::check_mpi(MPI_Comm_size(comm, &m_size), "MPI_Comm_size");
    }

    /// This process's rank, from 0 to `size() - 1`.
    int rank() const noexcept { return m_rank; }
    /// Number of ranks.
    int size() const noexcept { return m_size; }
    /// Whether this is rank 0, the one that writes files and logs.
    bool is_root() const noexcept { return m_rank == 0; }
    /// The MPI communicator.
    MPI_Comm get() const noexcept { return m_comm; }

    /// Waits until every rank has called it.
    /// @throws mpi_error if the call fails.
    void barrier() const { detail::check_mpi(MPI_Barrier(m_comm), "MPI_Barrier"); }

private:
    MPI_Comm m_comm;
    int m_rank = 0;
    int m_size = 1;
};

/// Writes `message` and a newline to stderr and ends every rank of `comm`'s job with exit
/// status `exit_code` (`MPI_Abort`). For an error on one rank: the others may be waiting in a
/// collective call for it and would otherwise wait forever.
[[noreturn]] inline void abort(const communicator& comm, const std::string& message, int exit_code = 1)
{
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    MPI_Abort(comm.get(), exit_code);
    std::abort(); // MPI_Abort does not return; this keeps [[noreturn]] honest if it did
}

namespace detail
{

/// Checks that every rank of `comm` passes the same `tensors` and `elements`: one
/// `MPI_Allreduce` of their values and negated values under `MPI_MAX` gives the largest and the
/// smallest.
/// @throws shape_error naming both if they differ (on every rank, as all get the same result).
inline void check_same_layout(const communicator& comm, std::size_t tensors, std::size_t elements, const char* what)
{
    long long local[4] = {static_cast<long long>(tensors), -static_cast<long long>(tensors),
                          static_cast<long long>(elements), -static_cast<long long>(elements)};
    long long global[4] = {};
    check_mpi(MPI_Allreduce(local, global, 4, MPI_LONG_LONG, MPI_MAX, comm.get()), "MPI_Allreduce");
    if (global[0] != -global[1] || global[2] != -global[3])
    {
        throw shape_error(xcnn::detail::concat(what, ": the ranks hold different networks: between ", -global[1],
                                               " and ", global[0], " tensors, between ", -global[3], " and ", global[2],
                                               " values (this rank: ", tensors, " tensors, ", elements,
                                               " values); every rank must build the same network"));
    }
}

} // namespace detail

/// Copies the values of `parameters` and `buffers` on rank `root` to every other rank of `comm`,
/// with one `MPI_Bcast` of a fused buffer. Call it on every rank, with the same tensors in the
/// same order (`net.parameters()`, `net.buffers()` of the same network).
/// @throws shape_error (on every rank) if the ranks' tensors differ in number or size;
/// value_error if `root` is not a rank of `comm`; mpi_error if a call fails.
template <class T>
void broadcast(const std::vector<parameter<T>>& parameters, const std::vector<buffer<T>>& buffers,
               const communicator& comm, int root = 0)
{
    if (root < 0 || root >= comm.size())
    {
        throw value_error(
            xcnn::detail::concat("distributed::broadcast: root ", root, " is not a rank of ", comm.size()));
    }
    const std::size_t n = detail::total_size(parameters) + detail::total_size(buffers);
    detail::check_same_layout(comm, parameters.size() + buffers.size(), n, "distributed::broadcast");
    if (comm.size() == 1 || n == 0)
    {
        return;
    }
    if (n > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    {
        throw value_error(xcnn::detail::concat("distributed::broadcast: ", n, " values exceed MPI's int count"));
    }
    std::vector<T> fused(n);
    auto visit = [&](bool pack)
    {
        T* p = fused.data();
        auto one = [&](T* data, std::size_t size)
        {
            if (pack)
            {
                std::copy(data, data + size, p);
            }
            else
            {
                std::copy(p, p + size, data);
            }
            p += size;
        };
        for (const auto& h : parameters)
        {
            one(h.data(), h.size());
        }
        for (const auto& h : buffers)
        {
            one(h.data(), h.size());
        }
    };
    if (comm.rank() == root)
    {
        visit(true);
    }
    detail::check_mpi(MPI_Bcast(fused.data(), static_cast<int>(n), detail::datatype<T>(), root, comm.get()),
                      "MPI_Bcast");
    if (comm.rank() != root)
    {
        visit(false);
    }
}

/// Copies the parameters and buffers of `net` on rank `root` to every rank of `comm` (one
/// `MPI_Bcast`): the start of data-parallel training, after every rank has built (or loaded) its
/// network, so that all start from the same weights.
/// @throws as `broadcast`.
template <class Net>
void broadcast_parameters(Net& net, const communicator& comm, int root = 0)
{
    using T = typename Net::value_type;
    broadcast<T>(net.parameters(), detail::buffers_of<T>(net), comm, root);
}

/// Turns each rank's gradients into those of the global batch after every backward pass.
///
/// Rank r trained on n_r of the global batch's n samples, so its gradients are means over n_r
/// samples. `average(n_r, n)` sends n_r times each gradient, buffer and extra scalar, one
/// `MPI_Allreduce` sums them over the ranks in rank order, and dividing by n gives the mean over
/// the whole batch: the gradient one process computes from all n samples, also when the ranks'
/// parts differ in size. Integer-valued buffers that agree on all ranks (a batch counter) stay
/// exact. A rank with no sample in the batch contributes zeros.
///
/// The buffers (`net.buffers()`, e.g. BatchNorm's running statistics) are averaged the same way,
/// rather than kept from rank 0: each rank updates them from its own samples in `forward`, and
/// the weighted average of running means is the running mean of the whole batch. After
/// `average`, every rank holds the same buffers, so the ranks' models stay identical.
///
/// `scalars()` extra values travel in the same call (e.g. the loss, for logging): set `scalar(i)`
/// to the rank's mean before `average`, read the global mean after it.
///
/// One rank (`comm.size() == 1`) leaves everything as it is, with no MPI call: a data-parallel
/// run of one process equals a plain run bit for bit. The fused buffer is allocated once; an
/// `average` allocates nothing.
template <class T>
class gradient_averager
{
public:
    /// Scalar type of the gradients.
    using value_type = T;

    /// Averages the gradients of `parameters` and the values of `buffers` over `comm`, with
    /// `scalars` extra values. Collective: every rank constructs it with the same tensors.
    /// @throws shape_error (on every rank) if the ranks' tensors differ in number or size;
    /// value_error if the fused buffer would exceed MPI's int count; mpi_error if a call fails.
    gradient_averager(std::vector<parameter<T>> parameters, std::vector<buffer<T>> buffers, const communicator& comm,
                      std::size_t scalars = 0)
        : m_parameters(std::move(parameters)), m_buffers(std::move(buffers)), m_comm(comm), m_scalars(scalars)
    {
        const std::size_t n = detail::total_size(m_parameters) + detail::total_size(m_buffers) + scalars + 1;
        detail::check_same_layout(m_comm, m_parameters.size() + m_buffers.size() + scalars, n,
                                  "distributed::gradient_averager");
        if (n > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        {
            throw value_error(
                xcnn::detail::concat("distributed::gradient_averager: ", n, " values exceed MPI's int count"));
        }
        m_fused.assign(n, T(0));
        m_scalar_values.assign(scalars, T(0));
        if (m_comm.size() == 2)
        {
            // Two ranks: each element is one addition, a_0 + a_1, the same bits whichever rank
            // computes it (floating-point addition is commutative), so the built-in sum, which
            // MPI implements faster, keeps the order fixed too.
            m_sum = MPI_SUM;
        }
        else if (m_comm.size() > 2)
        {
            detail::check_mpi(MPI_Op_create(&detail::ordered_sum<T>, 0, &m_sum), "MPI_Op_create");
            m_owns_sum = true;
        }
    }

    /// Averages the gradients of `net.parameters()` and the values of `net.buffers()`.
    /// @throws as the constructor above.
    template <class Net, class = std::enable_if_t<std::is_same<typename Net::value_type, T>::value>>
    gradient_averager(Net& net, const communicator& comm, std::size_t scalars = 0)
        : gradient_averager(net.parameters(), detail::buffers_of<T>(net), comm, scalars)
    {
    }

    gradient_averager(const gradient_averager&) = delete;
    gradient_averager& operator=(const gradient_averager&) = delete;

    /// Frees the reduction operation (unless MPI has been finalised already).
    ~gradient_averager()
    {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (m_owns_sum && !finalized)
        {
            MPI_Op_free(&m_sum);
        }
    }

    /// Number of extra scalars averaged with the gradients.
    std::size_t scalars() const noexcept { return m_scalars; }
    /// Extra scalar `i`: set it before `average`, read the average after it.
    T& scalar(std::size_t i) { return m_scalar_values.at(i); }
    /// Extra scalar `i`, read-only.
    const T& scalar(std::size_t i) const { return m_scalar_values.at(i); }
    /// Number of values each `average` reduces: gradients, buffers, scalars and the sample count.
    std::size_t fused_size() const noexcept { return m_fused.size(); }

    /// Replaces this rank's gradients, buffers and scalars by their means over the global batch:
    /// this rank trained on `local_samples` of its `global_samples`. Collective: every rank calls
    /// it once per step, with the same `global_samples`.
    /// @throws value_error (on every rank) if the ranks' `local_samples` do not add up to
    /// `global_samples`, or (on this rank) if `global_samples` is 0 or smaller than
    /// `local_samples`; mpi_error if the call fails. Nothing has changed then.
    void average(std::size_t local_samples, std::size_t global_samples)
    {
        if (global_samples == 0 || local_samples > global_samples)
        {
            throw value_error(xcnn::detail::concat("distributed::gradient_averager: ", local_samples,
                                                   " samples on this rank of a global batch of ", global_samples));
        }
        if (m_comm.size() == 1)
        {
            if (local_samples != global_samples)
            {
                throw value_error(xcnn::detail::concat("distributed::gradient_averager: the only rank trained on ",
                                                       local_samples, " samples of a global batch of ",
                                                       global_samples));
            }
            return; // the mean over one rank: nothing to do, nothing rounded
        }
        const T weight = static_cast<T>(local_samples);
        T* p = m_fused.data();
        if (local_samples == 0)
        {
            // Gradients of an earlier batch, possibly not finite: 0 * inf would be NaN.
            std::fill(m_fused.begin(), m_fused.end(), T(0));
        }
        else
        {
            for (const auto& h : m_parameters)
            {
                p = scaled_copy(h.grad_data(), h.size(), weight, p);
            }
            for (const auto& h : m_buffers)
            {
                p = scaled_copy(h.data(), h.size(), weight, p);
            }
            p = scaled_copy(m_scalar_values.data(), m_scalars, weight, p);
            *p = weight;
        }
        const auto start = std::chrono::steady_clock::now();
        detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, m_fused.data(), static_cast<int>(m_fused.size()),
                                        detail::datatype<T>(), m_sum, m_comm.get()),
                          "MPI_Allreduce");
        m_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ++m_calls;
        const T total = m_fused.back();
        if (total != static_cast<T>(global_samples))
        {
            throw value_error(xcnn::detail::concat(
                "distributed::gradient_averager: the ranks' batches add up to ", total,
                " samples but this rank was told the global batch has ", global_samples,
                "; every rank must pass the same global batch size, and the parts must add up to it"));
        }
        const T n = static_cast<T>(global_samples);
        const T* q = m_fused.data();
        for (const auto& h : m_parameters)
        {
            q = divided_copy(q, h.size(), n, h.grad_data());
        }
        for (const auto& h : m_buffers)
        {
            q = divided_copy(q, h.size(), n, h.data());
        }
        divided_copy(q, m_scalars, n, m_scalar_values.data());
    }

    /// `average(1, comm.size())`: every rank trained on a part of the same size.
    /// @throws as `average(local_samples, global_samples)`.
    void average() { average(1, static_cast<std::size_t>(m_comm.size())); }

    /// Seconds spent in `MPI_Allreduce` since construction or `reset_statistics`, including the
    /// wait for the slowest rank to arrive.
    double communication_seconds() const noexcept { return m_seconds; }
    /// Number of `MPI_Allreduce` calls since construction or `reset_statistics`.
    std::size_t communication_calls() const noexcept { return m_calls; }
    /// Restarts `communication_seconds` and `communication_calls` from 0.
    void reset_statistics() noexcept
    {
        m_seconds = 0;
        m_calls = 0;
    }

private:
    static T* scaled_copy(const T* from, std::size_t size, T weight, T* to)
    {
        for (std::size_t i = 0; i < size; ++i)
        {
            to[i] = from[i] * weight;
        }
        return to + size;
    }

    // A division, not a multiplication by 1/n: n * x / n is x again, which keeps integer-valued
    // buffers and the sample count exact.
    static const T* divided_copy(const T* from, std::size_t size, T n, T* to)
    {
        for (std::size_t i = 0; i < size; ++i)
        {
            to[i] = from[i] / n;
        }
        return from + size;
    }

    std::vector<parameter<T>> m_parameters;
    std::vector<buffer<T>> m_buffers;
    communicator m_comm;
    std::size_t m_scalars;
    std::vector<T> m_scalar_values;
    std::vector<T> m_fused;
    MPI_Op m_sum = MPI_OP_NULL;
    bool m_owns_sum = false;
    double m_seconds = 0;
    std::size_t m_calls = 0;
};

} // namespace distributed
} // namespace xcnn

#endif // XCNN_DISTRIBUTED_MPI_HPP
