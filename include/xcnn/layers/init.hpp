/// @file
/// Parameter initialisation with PyTorch's defaults, from a caller-seeded generator.
#ifndef XCNN_LAYERS_INIT_HPP
#define XCNN_LAYERS_INIT_HPP

#include <cmath>
#include <cstddef>
#include <random>

#include "../core/xtensor_shim.hpp"

namespace xcnn
{
namespace init
{

/// Fills `tensor` with draws from U(-bound, bound), in storage order, from `rng`.
template <class T, std::size_t N>
void uniform(xt::xtensor<T, N>& tensor, T bound, std::mt19937& rng)
{
    std::uniform_real_distribution<T> dist(-bound, bound);
    for (auto& v : tensor)
    {
        v = dist(rng);
    }
}

/// PyTorch's default for Conv2d and Linear weights: `kaiming_uniform_(w, a = sqrt(5))`, whose
/// bound gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)) simplifies to 1 / sqrt(fan_in).
template <class T, std::size_t N>
void kaiming_uniform(xt::xtensor<T, N>& weight, std::size_t fan_in, std::mt19937& rng)
{
    uniform(weight, fan_in == 0 ? T(0) : T(1) / std::sqrt(static_cast<T>(fan_in)), rng);
}

/// PyTorch's default for biases: U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)).
template <class T>
void bias_uniform(xt::xtensor<T, 1>& bias, std::size_t fan_in, std::mt19937& rng)
{
    uniform(bias, fan_in == 0 ? T(0) : T(1) / std::sqrt(static_cast<T>(fan_in)), rng);
}

} // namespace init
} // namespace xcnn

#endif // XCNN_LAYERS_INIT_HPP
