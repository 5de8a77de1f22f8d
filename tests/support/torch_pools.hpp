// The PyTorch reference of the pooling layers (tests/fixtures/torch_pools.py): for a configuration
// name, torch's input, output gradient, output and input gradient in double, and the check that a
// layer reproduces them. XCNN_TEST_FIXTURES_DIR is defined for the tests that include this.
#ifndef XCNN_TESTS_SUPPORT_TORCH_POOLS_HPP
#define XCNN_TESTS_SUPPORT_TORCH_POOLS_HPP

#include "../catch_compat.hpp"
#include "naive_layers.hpp"

#include <xcnn/io/npy.hpp>

#include <cstddef>
#include <string>

namespace xcnn_test
{

/// How far a layer's forward and backward are from PyTorch's: ||a - b|| / max(||a||, ||b||).
struct torch_parity
{
    double y = 0;
    double dx = 0;
};

/// Runs `layer` (over double) on the input of fixture `name` and its backward on the fixture's
/// dY, and compares y and dX with PyTorch's.
template <class Layer>
torch_parity check_torch_pools(Layer& layer, const std::string& name)
{
    constexpr std::size_t out_rank = static_cast<std::size_t>(Layer::output_rank);
    const std::string base = std::string(XCNN_TEST_FIXTURES_DIR) + "/torch_pools/" + name;
    const xt::xtensor<double, 4> x = xcnn::io::load_npy<double>(base + "_x.npy");
    const xt::xtensor<double, out_rank> dy = xcnn::io::load_npy<double>(base + "_dy.npy");
    const xt::xtensor<double, out_rank> y = xcnn::io::load_npy<double>(base + "_y.npy");
    const xt::xtensor<double, 4> dx = xcnn::io::load_npy<double>(base + "_dx.npy");
    torch_parity parity;
    const auto& ours = layer.forward(x);
    REQUIRE(same_extents(ours, y));
    parity.y = flat_relative_error(ours, y);
    const auto& ours_dx = layer.backward(dy);
    REQUIRE(same_extents(ours_dx, dx));
    parity.dx = flat_relative_error(ours_dx, dx);
    INFO(layer.name() << " vs torch fixture " << name << ": y relative error " << parity.y << ", dX " << parity.dx);
    CHECK(parity.y <= 1e-9);
    CHECK(parity.dx <= 1e-9);
    return parity;
}

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_TORCH_POOLS_HPP
