/// @file
/// The thread count xcnn's kernels use, and the small persistent pool that runs them.
///
/// xcnn parallelises inside its kernels (the GEMM splits its output between threads), never
/// across user calls. The thread count is the one process-wide setting of the library:
/// `xcnn::set_num_threads(n)`, or the environment variable `XCNN_NUM_THREADS` read on first
/// use; the default is 1, like PyTorch on small machines. Keep BLAS libraries at one thread when
/// xcnn uses several: oversubscribed cores cost more than they give.
#ifndef XCNN_CORE_THREADING_HPP
#define XCNN_CORE_THREADING_HPP

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "error.hpp"

namespace xcnn
{
namespace detail
{

/// Workers that wait for jobs, first spinning for `spin_time`, then asleep on a condition
/// variable. A job is a function called once per worker index in [0, workers); the calling
/// thread runs index 0 itself.
///
/// Why spin: a training step runs a few dozen parallel sections of 50-500 us with short serial
/// stretches between them. Waking a sleeping thread costs a system call and a scheduler
/// latency of tens of microseconds per section, which on small networks ate most of what the
/// second core gave. A worker that has just finished polls for the next job for a fraction of a
/// millisecond (as OpenMP runtimes do) and only then sleeps, so an idle process does not keep a
/// core busy; the caller likewise polls for the workers to finish before it sleeps.
class thread_pool
{
public:
    thread_pool() = default;
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    ~thread_pool() { resize(1); }

    std::size_t size() const noexcept { return m_threads.size() + 1; }

    /// Sets the number of workers, the calling thread included (at least 1).
    void resize(std::size_t workers)
    {
        workers = std::max<std::size_t>(workers, 1);
        if (workers == size())
        {
            return;
        }
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_stop = true;
            ++m_generation;
        }
        m_wake.notify_all();
        for (auto& t : m_threads)
        {
            t.join();
        }
        m_threads.clear();
        m_stop = false;
        // Each worker starts from the current generation, so a job published right after
        // this returns is seen by every worker, however late it starts running.
        const std::size_t generation = m_generation;
        for (std::size_t i = 1; i < workers; ++i)
        {
            m_threads.emplace_back([this, i, generation] { work(i, generation); });
        }
    }

    /// Runs `job(i)` for every worker index i and returns when all have finished. The first
    /// exception thrown by any worker is rethrown here. Calls from inside a job run serially.
    /// The job is passed by reference and type-erased into two pointers, not a `std::function`,
    /// so running a job never allocates.
    template <class Job>
    void run(const Job& job)
    {
        if (m_threads.empty() || in_worker())
        {
            for (std::size_t i = 0; i < size(); ++i)
            {
                job(i);
            }
            return;
        }
        std::lock_guard<std::mutex> serial(m_run_mutex);
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_job = &job;
            m_call = [](const void* f, std::size_t worker)
            {
                (*static_cast<const Job*>(f))(worker);
            };
            m_pending.store(m_threads.size(), std::memory_order_relaxed);
            m_error = nullptr;
            // Release: a worker that sees the new generation while spinning sees the job too.
            m_generation.fetch_add(1, std::memory_order_release);
        }
        m_wake.notify_all();
        in_worker() = true;
        try
        {
            job(0);
        }
        catch (...)
        {
            record(std::current_exception());
        }
        in_worker() = false;
        spin_until([this] { return m_pending.load(std::memory_order_acquire) == 0; });
        std::unique_lock<std::mutex> lock(m_mutex);
        m_done.wait(lock, [this] { return m_pending.load(std::memory_order_acquire) == 0; });
        m_job = nullptr;
        if (m_error)
        {
            std::rethrow_exception(m_error);
        }
    }

    /// Whether the calling thread is running a job of this pool (where `run` runs serially).
    static bool in_job() noexcept { return in_worker(); }

private:
    static bool& in_worker()
    {
        thread_local bool flag = false;
        return flag;
    }

    void record(std::exception_ptr e)
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        if (!m_error)
        {
            m_error = e;
        }
    }

    /// How long a waiting thread polls before it sleeps.
    static constexpr std::chrono::microseconds spin_time{200};

    /// Polls `ready` for up to `spin_time`; returns whether it became true.
    template <class Ready>
    static bool spin_until(const Ready& ready)
    {
        const auto deadline = std::chrono::steady_clock::now() + spin_time;
        for (;;)
        {
            for (int i = 0; i < 64; ++i)
            {
                if (ready())
                {
                    return true;
                }
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            }
            if (std::chrono::steady_clock::now() >= deadline)
            {
                return ready();
            }
        }
    }

    void work(std::size_t index, std::size_t seen)
    {
        in_worker() = true;
        for (;;)
        {
            const void* job = nullptr;
            void (*call)(const void*, std::size_t) = nullptr;
            spin_until([&] { return m_generation.load(std::memory_order_acquire) != seen; });
            {
                std::unique_lock<std::mutex> lock(m_mutex);
                m_wake.wait(lock, [&] { return m_generation.load(std::memory_order_relaxed) != seen; });
                seen = m_generation.load(std::memory_order_relaxed);
                if (m_stop)
                {
                    return;
                }
                job = m_job;
                call = m_call;
            }
            try
            {
                call(job, index);
            }
            catch (...)
            {
                record(std::current_exception());
            }
            if (m_pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
            {
                // Taking the mutex orders this with a caller that checked m_pending just before
                // it went to sleep, so the notification cannot fall between the two.
                {
                    std::lock_guard<std::mutex> lock(m_mutex);
                }
                m_done.notify_one();
            }
        }
    }

    std::vector<std::thread> m_threads;
    std::mutex m_mutex;
    std::mutex m_run_mutex;
    std::condition_variable m_wake;
    std::condition_variable m_done;
    const void* m_job = nullptr;
    void (*m_call)(const void*, std::size_t) = nullptr;
    std::atomic<std::size_t> m_generation{0};
    std::atomic<std::size_t> m_pending{0};
    std::exception_ptr m_error;
    bool m_stop = false;
};

/// Parses `XCNN_NUM_THREADS`; 1 when unset, 0 or not a positive number.
inline std::size_t threads_from_environment()
{
    const char* value = std::getenv("XCNN_NUM_THREADS");
    if (value == nullptr)
    {
        return 1;
    }
    char* end = nullptr;
    const long n = std::strtol(value, &end, 10);
    return (end != value && *end == '\0' && n > 0) ? static_cast<std::size_t>(n) : 1;
}

/// The process-wide pool, created on first use with `XCNN_NUM_THREADS` workers.
inline thread_pool& global_pool()
{
    static thread_pool pool;
    static const bool initialised = []
    {
        pool.resize(threads_from_environment());
        return true;
    }();
    (void)initialised;
    return pool;
}

} // namespace detail

/// Sets how many threads xcnn's kernels use (the calling thread included); 0 means one per
/// hardware thread. Not to be called while another thread is inside an xcnn kernel.
inline void set_num_threads(std::size_t threads)
{
    if (threads == 0)
    {
        threads = std::max<std::size_t>(std::thread::hardware_concurrency(), 1);
    }
    if (threads > 1024)
    {
        throw value_error(detail::concat("set_num_threads: ", threads, " threads is not a sensible count"));
    }
    detail::global_pool().resize(threads);
}

/// How many threads xcnn's kernels use.
inline std::size_t get_num_threads()
{
    return detail::global_pool().size();
}

namespace detail
{

/// Calls `body(begin, end, worker)` on contiguous chunks of [0, count) in parallel, chunk
/// boundaries rounded to multiples of `grain`; at most one chunk per thread, so every thread's
/// share is decided up front and the result does not depend on timing. Inside a parallel section
/// (a job of the pool), `body(0, count, 0)` runs once on the calling thread: one call, as on one
/// thread, rather than a worker's share after another, each paying its own setup (a GEMM packs
/// A once per call); `worker` 0 then names the caller's own buffers.
template <class F>
void parallel_for(std::size_t count, std::size_t grain, F&& body)
{
    auto& pool = global_pool();
    grain = std::max<std::size_t>(grain, 1);
    const std::size_t units = (count + grain - 1) / grain;
    const std::size_t workers = thread_pool::in_job() ? 1 : std::min(pool.size(), units);
    if (workers <= 1)
    {
        if (count > 0)
        {
            body(std::size_t(0), count, std::size_t(0));
        }
        return;
    }
    pool.run(
        [&](std::size_t worker)
        {
            if (worker >= workers)
            {
                return;
            }
            const std::size_t begin = std::min(count, units * worker / workers * grain);
            const std::size_t end = std::min(count, units * (worker + 1) / workers * grain);
            if (begin < end)
            {
                body(begin, end, worker);
            }
        });
}

/// `parallel_for` over `count` items of about `item_size` elements each (planes of an image,
/// rows of a matrix), kept on one thread below ~64K elements, where a wake-up costs more than
/// it saves.
template <class F>
void parallel_for_items(std::size_t count, std::size_t item_size, F&& body)
{
    const std::size_t grain = std::max<std::size_t>(1, (std::size_t(1) << 16) / std::max<std::size_t>(item_size, 1));
    parallel_for(count, grain, std::forward<F>(body));
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_THREADING_HPP
