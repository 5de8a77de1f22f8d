// The PyTorch reference values of tests/fixtures/torch_optim (written by torch_optim.py): three
// parameters of shapes (3, 4), (5,), (2, 3, 2), their gradients over 20 steps, the trajectories
// of torch.optim's optimizers, the rates of its schedules and clip_grad_norm_'s results.
#ifndef XCNN_TESTS_SUPPORT_TORCH_OPTIM_HPP
#define XCNN_TESTS_SUPPORT_TORCH_OPTIM_HPP

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace xcnn_test
{

/// tests/fixtures/torch_optim/<name>.npy.
inline xt::xarray<double> torch_optim(const std::string& name)
{
    return xcnn::io::load_npy<double>(std::string(XCNN_TEST_FIXTURES_DIR) + "/torch_optim/" + name + ".npy");
}

/// The fixture's three parameters and their gradients, in `T`, starting from initial.npy.
template <class T>
struct torch_parameters
{
    xt::xtensor<T, 2> a{std::array<std::size_t, 2>{3, 4}};
    xt::xtensor<T, 1> b{std::array<std::size_t, 1>{5}};
    xt::xtensor<T, 3> c{std::array<std::size_t, 3>{2, 3, 2}};
    xt::xtensor<T, 2> a_grad{std::array<std::size_t, 2>{3, 4}};
    xt::xtensor<T, 1> b_grad{std::array<std::size_t, 1>{5}};
    xt::xtensor<T, 3> c_grad{std::array<std::size_t, 3>{2, 3, 2}};
    static constexpr std::size_t size = 29;

    torch_parameters()
    {
        const auto initial = torch_optim("initial");
        for (std::size_t j = 0; j < size; ++j)
        {
            *element(j, false) = static_cast<T>(initial(j));
        }
    }
    std::vector<xcnn::parameter<T>> parameters()
    {
        return {xcnn::parameter<T>("a", a, a_grad), xcnn::parameter<T>("b", b, b_grad),
                xcnn::parameter<T>("c", c, c_grad)};
    }
    /// Element j of the flattened, concatenated values (or gradients).
    T* element(std::size_t j, bool grad)
    {
        if (j < 12)
        {
            return (grad ? a_grad.data() : a.data()) + j;
        }
        if (j < 17)
        {
            return (grad ? b_grad.data() : b.data()) + (j - 12);
        }
        return (grad ? c_grad.data() : c.data()) + (j - 17);
    }
    /// Sets the gradients to row `step` of grads.npy.
    void set_gradients(const xt::xarray<double>& grads, std::size_t step)
    {
        for (std::size_t j = 0; j < size; ++j)
        {
            *element(j, true) = static_cast<T>(grads(step, j));
        }
    }
    /// Largest |value - expected(row, j)| / |expected(row, j)| over the values (or gradients).
    double max_rel_diff(const xt::xarray<double>& expected, std::size_t row, bool grad = false)
    {
        double worst = 0;
        for (std::size_t j = 0; j < size; ++j)
        {
            const double e = expected(row, j), v = static_cast<double>(*element(j, grad));
            worst = std::max(worst, v == e ? 0.0 : std::abs(v - e) / std::max(std::abs(e), 1e-300));
        }
        return worst;
    }
};

/// Largest relative difference between the concatenated per-parameter state tensors `values`
/// (one per parameter, in order) and row `row` of `expected`.
template <class T>
double max_rel_state_diff(const std::vector<const std::vector<T>*>& values, const xt::xarray<double>& expected,
                          std::size_t row)
{
    double worst = 0;
    std::size_t j = 0;
    for (const auto* v : values)
    {
        for (const T x : *v)
        {
            const double e = expected(row, j++);
            worst =
                std::max(worst, x == e ? 0.0 : std::abs(static_cast<double>(x) - e) / std::max(std::abs(e), 1e-300));
        }
    }
    return j == 29 ? worst : 1.0;
}

/// Relative difference of two numbers (0 when equal).
inline double rel_diff(double a, double b)
{
    return a == b ? 0.0 : std::abs(a - b) / std::max(std::abs(b), 1e-300);
}

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_TORCH_OPTIM_HPP
