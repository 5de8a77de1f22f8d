// A small network, random batches and byte snapshots of parameters and momentum buffers, for the
// tests of the training state (non-finite values, checkpoints): "unchanged" and "bit-identical"
// there mean equal bytes, which is exact and NaN-safe.
#ifndef XCNN_TESTS_SUPPORT_TRAINING_STATE_HPP
#define XCNN_TESTS_SUPPORT_TRAINING_STATE_HPP

#include <xcnn/xcnn.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace xcnn_test
{

/// Conv2D(1, 2, 3) - ReLU - MaxPool2D(2) - Flatten - Dense(18, 3) on (N, 1, 8, 8) images.
template <class T = float>
auto small_net()
{
    return xcnn::Sequential{xcnn::Conv2D<T>(1, 2, 3), xcnn::ReLU<T>{}, xcnn::MaxPool2D<T>(2), xcnn::Flatten<T>{},
                            xcnn::Dense<T>(2 * 3 * 3, 3)};
}

/// A batch of `n` images for `small_net` with labels in [0, 3).
template <class T = float>
struct batch
{
    xt::xtensor<T, 4> images;
    xt::xtensor<std::int64_t, 1> labels;
};

template <class T = float>
batch<T> random_batch(std::size_t n, std::mt19937& rng)
{
    std::uniform_real_distribution<T> pixel(T(0), T(1));
    batch<T> b{xt::zeros<T>({n, std::size_t(1), std::size_t(8), std::size_t(8)}), xt::zeros<std::int64_t>({n})};
    for (auto& v : b.images)
    {
        v = pixel(rng);
    }
    for (std::size_t i = 0; i < n; ++i)
    {
        b.labels(i) = static_cast<std::int64_t>(rng() % 3);
    }
    return b;
}

/// Forward, loss, backward: leaves the gradients of `net` set for `b`; returns the loss.
template <class Net, class T>
T compute_gradients(Net& net, xcnn::SoftmaxCrossEntropy<T>& loss, const batch<T>& b)
{
    const T value = loss.forward(net.forward(b.images), b.labels);
    net.backward(loss.backward());
    return value;
}

template <class T>
std::vector<unsigned char> bytes_of(const T* data, std::size_t size)
{
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    return std::vector<unsigned char>(p, p + size * sizeof(T));
}

/// The bytes of every parameter of `net`, in order.
template <class Net>
std::vector<std::vector<unsigned char>> parameter_bytes(Net& net)
{
    std::vector<std::vector<unsigned char>> out;
    for (const auto& p : net.parameters())
    {
        out.push_back(bytes_of(p.data(), p.size()));
    }
    return out;
}

/// The bytes of every momentum buffer of `optimizer`, in order (empty before the first step).
template <class T>
std::vector<std::vector<unsigned char>> momentum_bytes(const xcnn::SGD<T>& optimizer)
{
    std::vector<std::vector<unsigned char>> out;
    for (std::size_t i = 0; i < optimizer.parameters().size(); ++i)
    {
        const auto& b = optimizer.momentum_buffer(i);
        out.push_back(bytes_of(b.data(), b.size()));
    }
    return out;
}

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_TRAINING_STATE_HPP
