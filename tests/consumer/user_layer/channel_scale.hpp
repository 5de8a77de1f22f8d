// A layer written in a user's own code, outside include/xcnn: docs/adding-a-layer.md walks
// through this file line by line. tests/consumer/user_layer/main.cpp trains it inside a
// Sequential against the installed package, and tests/test_layers.cpp runs xcnn's layer
// conformance tests over it.
#ifndef MY_CHANNEL_SCALE_HPP
#define MY_CHANNEL_SCALE_HPP

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <random>
#include <sstream>
#include <string>
#include <tuple>

namespace my
{

/// y[n, c, h, w] = weight[c] * x[n, c, h, w] for an (N, C, H, W) input: a learnable gain per
/// channel, initialised to 1 (the affine weight of PyTorch's BatchNorm2d without the rest).
///
/// Buffer `running_mean_abs` (C): an exponential moving average of the mean |x| of each channel
/// over the training batches, updated by every `forward` (not `predict`) as BatchNorm updates
/// `running_mean`: running = (1 - momentum) * running + momentum * mean|x|. It tells which
/// channels carry signal (a dead channel's is 0) and is saved with the weights.
template <class T>
class ChannelScale : public xcnn::layer<ChannelScale<T>, T, 4>
{
    using base = xcnn::layer<ChannelScale<T>, T, 4>;

public:
    using typename base::input_type;
    using typename base::output_type;

    /// A gain per channel for `channels` channels; `momentum` weighs each batch in the average.
    /// @throws xcnn::value_error if `channels` is 0 or `momentum` is outside [0, 1].
    explicit ChannelScale(std::size_t channels, T momentum = T(0.1))
        : m_channels(checked(channels, momentum)), m_momentum(momentum), m_weight("weight", {channels}),
          m_running_mean_abs("running_mean_abs", {channels})
    {
        std::mt19937 rng(5489u);
        reset_parameters(rng);
    }

    /// The learnable tensors: `parameters()`, `num_parameters()`, optimizers and files see them.
    auto parameter_slots() { return std::tie(m_weight); }
    /// The buffers: `buffers()`, files and checkpoints see them; optimizers do not.
    auto buffer_slots() { return std::tie(m_running_mean_abs); }

    /// Gains of 1 and no statistics yet, as PyTorch's BatchNorm resets both; draws nothing.
    void reset_parameters(std::mt19937&)
    {
        m_weight.value().fill(T(1));
        m_running_mean_abs.value().fill(T(0));
    }

    /// (C): the gains.
    xt::xtensor<T, 1>& weight() noexcept { return m_weight.value(); }
    /// (C): the running mean of |x| per channel.
    const xt::xtensor<T, 1>& running_mean_abs() const noexcept { return m_running_mean_abs.value(); }

    /// The layer's kind in an `xcnn::layer_spec`: with `spec()` and `from_spec`, what lets a model
    /// file record the layer and `xcnn::load_network` rebuild it (after
    /// `registry.add<my::ChannelScale<T>>()`).
    static constexpr const char* kind = "ChannelScale";

    /// The constructor's arguments, by name: what the model file records of the layer.
    xcnn::layer_spec spec() const
    {
        return xcnn::layer_spec{kind, {}, {}}
            .set_size("channels", m_channels)
            .set("momentum", {static_cast<double>(m_momentum)});
    }

    /// The layer `spec` describes, freshly initialised; momentum defaults to 0.1, as above.
    /// @throws xcnn::value_error for another kind, an unknown, missing or malformed option, or a
    /// value the constructor refuses.
    static ChannelScale from_spec(const xcnn::layer_spec& spec)
    {
        const xcnn::spec_reader options(spec, kind, {"channels", "momentum"});
        return ChannelScale(options.size("channels"), options.real<T>("momentum", T(0.1)));
    }

    /// "ChannelScale(C, momentum=M)", in summaries and error messages.
    std::string name() const
    {
        std::ostringstream out;
        out << "ChannelScale(" << m_channels << ", momentum=" << m_momentum << ")";
        return out.str();
    }

    /// The input's shape. The base has checked the rank; only the batch may be empty.
    template <class S>
    std::array<std::size_t, 4> checked_output_shape(const S& s) const
    {
        if (s[1] != m_channels || s[2] == 0 || s[3] == 0)
        {
            throw xcnn::shape_error(name() + ": expected an input (N, " + std::to_string(m_channels) +
                                    ", H, W) with H, W >= 1, got (" + std::to_string(s[0]) + ", " +
                                    std::to_string(s[1]) + ", " + std::to_string(s[2]) + ", " + std::to_string(s[3]) +
                                    ")");
        }
        return {s[0], s[1], s[2], s[3]};
    }

    /// y = weight[c] * x; in training, keeps x for `run_backward` and updates the statistics.
    const output_type& run_forward(const input_type& x, bool training)
    {
        m_output.resize(checked_output_shape(x.shape())); // reallocates only for a new shape
        const std::size_t n = x.shape()[0], plane = x.shape()[2] * x.shape()[3];
        for (std::size_t b = 0; b < n; ++b)
        {
            for (std::size_t c = 0; c < m_channels; ++c)
            {
                const T w = m_weight.value()(c);
                const T* in = x.data() + (b * m_channels + c) * plane;
                T* out = m_output.data() + (b * m_channels + c) * plane;
                for (std::size_t i = 0; i < plane; ++i)
                {
                    out[i] = w * in[i];
                }
            }
        }
        if (training)
        {
            m_input.resize(x.shape());
            std::copy(x.begin(), x.end(), m_input.begin());
            if (n > 0) // an empty batch has no statistics
            {
                update_running_mean_abs(x);
            }
        }
        return m_output;
    }

    /// dX = weight[c] * dY; overwrites dweight[c] = sum of dY * x over n, h, w.
    const input_type& run_backward(const output_type& dy)
    {
        m_input_grad.resize(dy.shape());
        auto& weight_grad = m_weight.grad();
        weight_grad.fill(T(0));
        const std::size_t n = dy.shape()[0], plane = dy.shape()[2] * dy.shape()[3];
        for (std::size_t b = 0; b < n; ++b)
        {
            for (std::size_t c = 0; c < m_channels; ++c)
            {
                const T w = m_weight.value()(c);
                const std::size_t offset = (b * m_channels + c) * plane;
                const T* g = dy.data() + offset;
                const T* in = m_input.data() + offset;
                T* dx = m_input_grad.data() + offset;
                for (std::size_t i = 0; i < plane; ++i)
                {
                    weight_grad(c) += g[i] * in[i];
                    dx[i] = w * g[i];
                }
            }
        }
        return m_input_grad;
    }

private:
    /// `channels`, checked before anything is allocated (a negative int converted to std::size_t
    /// must not become a request for 2^64 elements).
    static std::size_t checked(std::size_t channels, T momentum)
    {
        if (channels == 0 || channels > xcnn::max_extent || !(momentum >= T(0) && momentum <= T(1)))
        {
            std::ostringstream out;
            out << "ChannelScale(" << channels << ", momentum=" << momentum
                << "): channels must be at least 1 and momentum in [0, 1]";
            throw xcnn::value_error(out.str());
        }
        return channels;
    }

    void update_running_mean_abs(const input_type& x)
    {
        const std::size_t n = x.shape()[0], plane = x.shape()[2] * x.shape()[3];
        for (std::size_t c = 0; c < m_channels; ++c)
        {
            T sum = 0;
            for (std::size_t b = 0; b < n; ++b)
            {
                const T* in = x.data() + (b * m_channels + c) * plane;
                for (std::size_t i = 0; i < plane; ++i)
                {
                    sum += std::abs(in[i]);
                }
            }
            T& running = m_running_mean_abs.value()(c);
            running = (T(1) - m_momentum) * running + m_momentum * sum / static_cast<T>(n * plane);
        }
    }

    std::size_t m_channels;
    T m_momentum;
    xcnn::learnable<T, 1> m_weight;
    xcnn::persistent<T, 1> m_running_mean_abs;
    input_type m_input;      // x of the last training forward
    output_type m_output;    // y
    input_type m_input_grad; // dX
};

} // namespace my

#endif // MY_CHANNEL_SCALE_HPP
