// Small test networks for the I/O of buffers (named non-trainable tensors such as BatchNorm's
// running statistics): no library layer has buffers yet, and the file formats must work for any
// network with parameters() and, when present, buffers().
#ifndef XCNN_TESTS_SUPPORT_BUFFERED_NET_HPP
#define XCNN_TESTS_SUPPORT_BUFFERED_NET_HPP

#include <xcnn/core/parameter.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace xcnn_test
{

/// Parameters "0.weight" (3, 2) and "0.bias" (3,), buffers "1.running_mean" and "1.running_var"
/// of shape (`features`,): what a Dense followed by a BatchNorm1d lists in PyTorch's state_dict.
template <class T = float>
struct buffered_net
{
    using value_type = T;

    explicit buffered_net(std::size_t features = 3)
        : weight("0.weight", {3, 2}), bias("0.bias", {3}), running_mean("1.running_mean", {features}),
          running_var("1.running_var", {features})
    {
    }

    std::vector<xcnn::parameter<T>> parameters() { return {weight.handle(), bias.handle()}; }
    std::vector<xcnn::buffer<T>> buffers() { return {running_mean.handle(), running_var.handle()}; }
    std::string name() const { return "BufferedNet(2, 3)"; }

    /// Sets every parameter and buffer element to a value depending on `seed`, the tensor and
    /// the index (exact in float).
    void fill(int seed)
    {
        int t = 0;
        for (auto& p : parameters())
        {
            fill(p, seed, t++);
        }
        for (auto& b : buffers())
        {
            fill(b, seed, t++);
        }
    }

    /// The values of every parameter and then every buffer.
    std::vector<std::vector<T>> values()
    {
        std::vector<std::vector<T>> out;
        for (const auto& p : parameters())
        {
            out.emplace_back(p.data(), p.data() + p.size());
        }
        for (const auto& b : buffers())
        {
            out.emplace_back(b.data(), b.data() + b.size());
        }
        return out;
    }

    xcnn::learnable<T, 2> weight;
    xcnn::learnable<T, 1> bias;
    xcnn::persistent<T, 1> running_mean;
    xcnn::persistent<T, 1> running_var;

private:
    template <class Handle>
    static void fill(const Handle& h, int seed, int tensor)
    {
        for (std::size_t j = 0; j < h.size(); ++j)
        {
            h.data()[j] = T(seed) + T(tensor) / 4 + T(j) / 64;
        }
    }
};

/// The same parameters as `buffered_net` and no `buffers()` member at all.
template <class T = float>
struct unbuffered_net
{
    using value_type = T;

    unbuffered_net() : weight("0.weight", {3, 2}), bias("0.bias", {3}) {}

    std::vector<xcnn::parameter<T>> parameters() { return {weight.handle(), bias.handle()}; }

    xcnn::learnable<T, 2> weight;
    xcnn::learnable<T, 1> bias;
};

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_BUFFERED_NET_HPP
