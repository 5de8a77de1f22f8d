// xcnn-mnist --distributed: data-parallel training over MPI (xcnn/distributed/mpi.hpp), kept
// apart from main.cpp, which calls the few members of `session` below. The build defines
// XCNN_MNIST_WITH_MPI when it found MPI; without it, --distributed is an error at run time.
//
//   mpirun -np 2 xcnn-mnist --distributed --threads 1 ...
//
// Every rank loads the data and draws the same shuffled order from --seed; global batch b
// (--batch-size samples) is split among the ranks (xcnn::distributed::split), each trains on its
// part, and one MPI_Allreduce per step averages the gradients and the loss, so every rank takes
// the same SGD step. Rank 0 alone prints and writes --save, --log and --checkpoint files; every
// rank reads --resume and --load. An error on any rank ends the whole job with its message.
#ifndef XCNN_EXAMPLES_MNIST_DISTRIBUTED_HPP
#define XCNN_EXAMPLES_MNIST_DISTRIBUTED_HPP

#include <xcnn/distributed/sampler.hpp>

#include <cstddef>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#if defined(XCNN_MNIST_WITH_MPI)
#include <xcnn/distributed/mpi.hpp>
#endif

namespace mnist_distributed
{

/// One process's part of a data-parallel run; a plain run when `start` was not called.
class session
{
public:
    /// Initialises MPI and joins the job. Ranks other than 0 print nothing from here on.
    void start(int& argc, char**& argv)
    {
#if defined(XCNN_MNIST_WITH_MPI)
        m_env = std::make_unique<xcnn::distributed::environment>(argc, argv);
        m_comm = std::make_unique<xcnn::distributed::communicator>();
        if (!m_comm->is_root())
        {
            std::cout.setstate(std::ios::badbit);
        }
#else
        (void)argc;
        (void)argv;
        throw std::runtime_error("--distributed: this xcnn-mnist was built without MPI (Debian: libopenmpi-dev "
                                 "openmpi-bin, then configure xcnn again)");
#endif
    }

    /// Whether this is a data-parallel run.
    bool enabled() const
    {
        return started();
    }
    /// This process's rank (0 in a plain run).
    int rank() const
    {
#if defined(XCNN_MNIST_WITH_MPI)
        return m_comm ? m_comm->rank() : 0;
#else
        return 0;
#endif
    }
    /// Number of ranks (1 in a plain run).
    int ranks() const
    {
#if defined(XCNN_MNIST_WITH_MPI)
        return m_comm ? m_comm->size() : 1;
#else
        return 1;
#endif
    }

    /// The options this rank runs with: only rank 0 writes the model, the log and checkpoints.
    template <class Options>
    Options outputs_on_rank_0(Options o) const
    {
        if (rank() != 0)
        {
            o.save.clear();
            o.log.clear();
            o.checkpoint.clear();
            o.export_onnx.clear();
        }
        return o;
    }

    /// This rank's part of a global batch of `count` samples.
    xcnn::distributed::share part(std::size_t count) const
    {
        return xcnn::distributed::split(count, static_cast<std::size_t>(rank()), static_cast<std::size_t>(ranks()));
    }

    /// Before the first step: rank 0's weights to every rank, and the gradient averager.
    template <class Net>
    void begin_training(Net& net)
    {
#if defined(XCNN_MNIST_WITH_MPI)
        if (m_comm)
        {
            xcnn::distributed::broadcast_parameters(net, *m_comm);
            m_averager = std::make_unique<xcnn::distributed::gradient_averager<float>>(net, *m_comm, 1);
        }
#else
        (void)net;
#endif
    }

    /// After the backward pass of a step in which this rank trained on `local` of the global
    /// batch's `global` samples with mean loss `loss`: averages the gradients over the ranks and
    /// returns the global batch's mean loss.
    float average(float loss, std::size_t local, std::size_t global)
    {
#if defined(XCNN_MNIST_WITH_MPI)
        if (m_averager)
        {
            m_averager->scalar(0) = loss;
            m_averager->average(local, global);
            return m_averager->scalar(0);
        }
#else
        (void)local;
        (void)global;
#endif
        return loss;
    }

    /// "communication: ..." for the epoch just finished (time in MPI_Allreduce per step), empty
    /// in a plain run; restarts the count.
    std::string epoch_statistics()
    {
        std::ostringstream out;
#if defined(XCNN_MNIST_WITH_MPI)
        if (m_averager && m_averager->communication_calls() > 0)
        {
            out << "  communication: " << std::fixed << std::setprecision(3)
                << 1e3 * m_averager->communication_seconds() / static_cast<double>(m_averager->communication_calls())
                << " ms/step in MPI_Allreduce (" << m_averager->fused_size() << " values, " << ranks() << " ranks)\n";
            m_averager->reset_statistics();
        }
#endif
        return out.str();
    }

    /// Ends the job after an error: in a data-parallel run every rank, with the message naming
    /// this one, since the others may be waiting for it. Returns in a plain run.
    void fail(const std::string& program, const std::string& message, int exit_code)
    {
#if defined(XCNN_MNIST_WITH_MPI)
        if (m_comm && m_comm->size() > 1)
        {
            xcnn::distributed::abort(*m_comm,
                                     program + ": error on rank " + std::to_string(rank()) + " of " +
                                         std::to_string(ranks()) + ": " + message,
                                     exit_code);
        }
#endif
        (void)exit_code;
        std::cerr << program << ": error: " << message << '\n';
    }

private:
    bool started() const
    {
#if defined(XCNN_MNIST_WITH_MPI)
        return m_comm != nullptr;
#else
        return false;
#endif
    }

#if defined(XCNN_MNIST_WITH_MPI)
    std::unique_ptr<xcnn::distributed::environment> m_env;
    std::unique_ptr<xcnn::distributed::communicator> m_comm;
    std::unique_ptr<xcnn::distributed::gradient_averager<float>> m_averager;
#endif
};

} // namespace mnist_distributed

#endif // XCNN_EXAMPLES_MNIST_DISTRIBUTED_HPP
