// Consumer test of the component xcnn::mpi (find_package(xcnn COMPONENTS mpi)): builds against
// the installed <xcnn/distributed/mpi.hpp> and averages a gradient over the ranks of whatever
// job runs it (run.sh starts it alone, a one-rank job: the gradient must stay as it is).
#include <xcnn/distributed/mpi.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv)
{
    namespace dist = xcnn::distributed;
    dist::environment mpi(argc, argv);
    const dist::communicator comm;
    xt::xtensor<float, 1> weight = {1.0f, 2.0f}, grad = {0.5f, -0.25f};
    std::vector<xcnn::parameter<float>> parameters{xcnn::parameter<float>("weight", weight, grad)};
    dist::broadcast<float>(parameters, {}, comm);
    dist::gradient_averager<float> averager(parameters, {}, comm);
    averager.average();
    if (grad(0) != 0.5f || grad(1) != -0.25f || weight(1) != 2.0f)
    {
        std::fprintf(stderr, "average_over_ranks: the mean over identical ranks changed the gradient\n");
        return 1;
    }
    std::printf("xcnn::mpi: averaged a gradient over %d rank(s)\n", comm.size());
    return 0;
}
