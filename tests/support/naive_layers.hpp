// Naive loop references for the layer tests: every layer written as the plainest possible loops
// over tensor indices, independently of the library (no view_as_windows, no GEMM, no padding
// buffers). They accumulate in double so they also serve as the accurate reference for float.
#ifndef XCNN_TESTS_SUPPORT_NAIVE_LAYERS_HPP
#define XCNN_TESTS_SUPPORT_NAIVE_LAYERS_HPP

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <xcnn/core/xtensor_shim.hpp> // xtensor's headers, whatever its version's layout

#include "gradcheck.hpp"

namespace xcnn_test
{
namespace naive
{

using index2 = std::array<std::size_t, 2>;

/// Output extent of a window of `k` sliding `s` apart over `n + 2 p` positions (floor mode).
inline std::size_t out_extent(std::size_t n, std::size_t k, std::size_t s, std::size_t p)
{
    if (n + 2 * p < k || s == 0)
    {
        throw std::invalid_argument("naive::out_extent: window does not fit");
    }
    return (n + 2 * p - k) / s + 1;
}

// ---------------------------------------------------------------------------------------------
// Conv2D (cross-correlation, PyTorch's Conv2d), NCHW, weight (C_out, C_in, KH, KW).
// ---------------------------------------------------------------------------------------------

/// y(n, o, oy, ox) = b(o) + sum_{c, ky, kx} x(n, g Cg + c, oy*sh + ky*dh - ph, ox*sw + kx*dw - pw)
/// w(o, c, ky, kx), with x = 0 outside the input, g = o / (C_out / groups) the group of o and
/// Cg = C_in / groups. The seven loops, literally. If `magnitude` is given it receives
/// |b(o)| + sum |x| |w| over the same terms: the scale of the rounding error of the sum.
template <class T>
xt::xtensor<double, 4> conv2d(const xt::xtensor<T, 4>& x, const xt::xtensor<T, 4>& w, const xt::xtensor<T, 1>& b,
                              index2 stride, index2 padding, xt::xtensor<double, 4>* magnitude = nullptr,
                              index2 dilation = {1, 1}, std::size_t groups = 1)
{
    const std::size_t n_batch = x.shape()[0], c_in = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
    const std::size_t c_out = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3];
    if (c_in % groups != 0 || c_out % groups != 0 || w.shape()[1] != c_in / groups || b.shape()[0] != c_out)
    {
        throw std::invalid_argument("naive::conv2d: inconsistent shapes");
    }
    const std::size_t cg = c_in / groups, og = c_out / groups;
    const std::size_t oh = out_extent(h, (kh - 1) * dilation[0] + 1, stride[0], padding[0]);
    const std::size_t ow = out_extent(wd, (kw - 1) * dilation[1] + 1, stride[1], padding[1]);
    xt::xtensor<double, 4> y({n_batch, c_out, oh, ow});
    if (magnitude != nullptr)
    {
        magnitude->resize({n_batch, c_out, oh, ow});
    }
    for (std::size_t n = 0; n < n_batch; ++n)
    {
        for (std::size_t o = 0; o < c_out; ++o)
        {
            for (std::size_t oy = 0; oy < oh; ++oy)
            {
                for (std::size_t ox = 0; ox < ow; ++ox)
                {
                    double acc = static_cast<double>(b(o));
                    double mag = std::abs(static_cast<double>(b(o)));
                    for (std::size_t c = 0; c < cg; ++c)
                    {
                        for (std::size_t ky = 0; ky < kh; ++ky)
                        {
                            for (std::size_t kx = 0; kx < kw; ++kx)
                            {
                                const long iy = static_cast<long>(oy * stride[0] + ky * dilation[0]) -
                                                static_cast<long>(padding[0]);
                                const long ix = static_cast<long>(ox * stride[1] + kx * dilation[1]) -
                                                static_cast<long>(padding[1]);
                                if (iy < 0 || ix < 0 || iy >= static_cast<long>(h) || ix >= static_cast<long>(wd))
                                {
                                    continue;
                                }
                                const double xv = static_cast<double>(x(
                                    n, (o / og) * cg + c, static_cast<std::size_t>(iy), static_cast<std::size_t>(ix)));
                                const double wv = static_cast<double>(w(o, c, ky, kx));
                                acc += xv * wv;
                                mag += std::abs(xv * wv);
                            }
                        }
                    }
                    y(n, o, oy, ox) = acc;
                    if (magnitude != nullptr)
                    {
                        (*magnitude)(n, o, oy, ox) = mag;
                    }
                }
            }
        }
    }
    return y;
}

struct conv2d_grads
{
    xt::xtensor<double, 4> dx;
    xt::xtensor<double, 4> dw;
    xt::xtensor<double, 1> db;
    // Sums of the absolute values of the terms of each entry: the scale of its rounding error.
    xt::xtensor<double, 4> dx_magnitude;
    xt::xtensor<double, 4> dw_magnitude;
    xt::xtensor<double, 1> db_magnitude;
};

/// Gradients of sum(y * dy) by the same seven loops, scattering each term's contribution:
/// dx(n, g Cg + c, iy, ix) += dy w, dw(o, c, ky, kx) += dy x, db(o) += dy (dilation and groups as
/// in `conv2d`).
template <class T, class G>
conv2d_grads conv2d_backward(const xt::xtensor<T, 4>& x, const xt::xtensor<T, 4>& w, const xt::xtensor<G, 4>& dy,
                             index2 stride, index2 padding, index2 dilation = {1, 1}, std::size_t groups = 1)
{
    const std::size_t n_batch = x.shape()[0], c_in = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
    const std::size_t c_out = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3];
    const std::size_t cg = c_in / groups, og = c_out / groups;
    const std::size_t oh = out_extent(h, (kh - 1) * dilation[0] + 1, stride[0], padding[0]);
    const std::size_t ow = out_extent(wd, (kw - 1) * dilation[1] + 1, stride[1], padding[1]);
    if (dy.shape()[0] != n_batch || dy.shape()[1] != c_out || dy.shape()[2] != oh || dy.shape()[3] != ow)
    {
        throw std::invalid_argument("naive::conv2d_backward: dy has the wrong shape");
    }
    conv2d_grads g;
    g.dx = xt::zeros<double>({n_batch, c_in, h, wd});
    g.dw = xt::zeros<double>({c_out, cg, kh, kw});
    g.db = xt::zeros<double>({c_out});
    g.dx_magnitude = xt::zeros<double>({n_batch, c_in, h, wd});
    g.dw_magnitude = xt::zeros<double>({c_out, cg, kh, kw});
    g.db_magnitude = xt::zeros<double>({c_out});
    for (std::size_t n = 0; n < n_batch; ++n)
    {
        for (std::size_t o = 0; o < c_out; ++o)
        {
            for (std::size_t oy = 0; oy < oh; ++oy)
            {
                for (std::size_t ox = 0; ox < ow; ++ox)
                {
                    const double d = static_cast<double>(dy(n, o, oy, ox));
                    g.db(o) += d;
                    g.db_magnitude(o) += std::abs(d);
                    for (std::size_t c = 0; c < cg; ++c)
                    {
                        const std::size_t ci = (o / og) * cg + c; // the input channel
                        for (std::size_t ky = 0; ky < kh; ++ky)
                        {
                            for (std::size_t kx = 0; kx < kw; ++kx)
                            {
                                const long iy = static_cast<long>(oy * stride[0] + ky * dilation[0]) -
                                                static_cast<long>(padding[0]);
                                const long ix = static_cast<long>(ox * stride[1] + kx * dilation[1]) -
                                                static_cast<long>(padding[1]);
                                if (iy < 0 || ix < 0 || iy >= static_cast<long>(h) || ix >= static_cast<long>(wd))
                                {
                                    continue;
                                }
                                const auto y_ = static_cast<std::size_t>(iy);
                                const auto x_ = static_cast<std::size_t>(ix);
                                const double dx_term = d * static_cast<double>(w(o, c, ky, kx));
                                const double dw_term = d * static_cast<double>(x(n, ci, y_, x_));
                                g.dx(n, ci, y_, x_) += dx_term;
                                g.dw(o, c, ky, kx) += dw_term;
                                g.dx_magnitude(n, ci, y_, x_) += std::abs(dx_term);
                                g.dw_magnitude(o, c, ky, kx) += std::abs(dw_term);
                            }
                        }
                    }
                }
            }
        }
    }
    return g;
}

// ---------------------------------------------------------------------------------------------
// MaxPool2D (PyTorch's MaxPool2d, floor mode; padded positions are -inf and never chosen).
// ---------------------------------------------------------------------------------------------

template <class T>
struct maxpool2d_result
{
    xt::xtensor<T, 4> y;
    xt::xtensor<std::size_t, 4> arg_row; // input row of each output's maximum
    xt::xtensor<std::size_t, 4> arg_col; // input column of each output's maximum
};

/// Max of each window. The first maximum in row-major window order wins ties; a NaN beats any
/// number and the first NaN wins, so NaNs propagate. With `padding`, the windows move over the
/// input padded by -inf, which no input element loses to: the positions outside are skipped.
template <class T>
maxpool2d_result<T> maxpool2d(const xt::xtensor<T, 4>& x, index2 kernel, index2 stride, index2 padding = {0, 0})
{
    const std::size_t n_batch = x.shape()[0], channels = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
    const std::size_t oh = out_extent(h, kernel[0], stride[0], padding[0]);
    const std::size_t ow = out_extent(wd, kernel[1], stride[1], padding[1]);
    maxpool2d_result<T> r;
    r.y.resize({n_batch, channels, oh, ow});
    r.arg_row.resize({n_batch, channels, oh, ow});
    r.arg_col.resize({n_batch, channels, oh, ow});
    for (std::size_t n = 0; n < n_batch; ++n)
    {
        for (std::size_t c = 0; c < channels; ++c)
        {
            for (std::size_t oy = 0; oy < oh; ++oy)
            {
                for (std::size_t ox = 0; ox < ow; ++ox)
                {
                    bool found = false;
                    std::size_t best_r = 0, best_c = 0;
                    for (std::size_t ky = 0; ky < kernel[0]; ++ky)
                    {
                        for (std::size_t kx = 0; kx < kernel[1]; ++kx)
                        {
                            const long py = static_cast<long>(oy * stride[0] + ky) - static_cast<long>(padding[0]);
                            const long px = static_cast<long>(ox * stride[1] + kx) - static_cast<long>(padding[1]);
                            if (py < 0 || px < 0 || py >= static_cast<long>(h) || px >= static_cast<long>(wd))
                            {
                                continue;
                            }
                            const auto iy = static_cast<std::size_t>(py), ix = static_cast<std::size_t>(px);
                            const T v = x(n, c, iy, ix);
                            const T best = x(n, c, best_r, best_c);
                            const bool take =
                                !found || (std::isnan(v) ? !std::isnan(best) : (!std::isnan(best) && v > best));
                            if (take)
                            {
                                best_r = iy;
                                best_c = ix;
                                found = true;
                            }
                        }
                    }
                    if (!found)
                    {
                        throw std::invalid_argument("naive::maxpool2d: a window covers only padding");
                    }
                    r.y(n, c, oy, ox) = x(n, c, best_r, best_c);
                    r.arg_row(n, c, oy, ox) = best_r;
                    r.arg_col(n, c, oy, ox) = best_c;
                }
            }
        }
    }
    return r;
}

/// dx: each output gradient added to its window's maximum (summed where windows share one).
template <class T, class G>
xt::xtensor<double, 4> maxpool2d_backward(const maxpool2d_result<T>& forward, const std::array<std::size_t, 4>& x_shape,
                                          const xt::xtensor<G, 4>& dy)
{
    xt::xtensor<double, 4> dx = xt::zeros<double>(x_shape);
    const auto& s = forward.y.shape();
    for (std::size_t n = 0; n < s[0]; ++n)
    {
        for (std::size_t c = 0; c < s[1]; ++c)
        {
            for (std::size_t oy = 0; oy < s[2]; ++oy)
            {
                for (std::size_t ox = 0; ox < s[3]; ++ox)
                {
                    dx(n, c, forward.arg_row(n, c, oy, ox), forward.arg_col(n, c, oy, ox)) +=
                        static_cast<double>(dy(n, c, oy, ox));
                }
            }
        }
    }
    return dx;
}

// ---------------------------------------------------------------------------------------------
// AvgPool2D (PyTorch's AvgPool2d, count_include_pad=True, floor mode): zero padding, and every
// window divides by KH * KW.
// ---------------------------------------------------------------------------------------------

/// Calls f(iy, ix) for every input position window (oy, ox) covers, padding skipped.
template <class F>
void for_window(std::size_t oy, std::size_t ox, index2 kernel, index2 stride, index2 padding, std::size_t h,
                std::size_t wd, F&& f)
{
    for (std::size_t ky = 0; ky < kernel[0]; ++ky)
    {
        for (std::size_t kx = 0; kx < kernel[1]; ++kx)
        {
            const long py = static_cast<long>(oy * stride[0] + ky) - static_cast<long>(padding[0]);
            const long px = static_cast<long>(ox * stride[1] + kx) - static_cast<long>(padding[1]);
            if (py >= 0 && px >= 0 && py < static_cast<long>(h) && px < static_cast<long>(wd))
            {
                f(static_cast<std::size_t>(py), static_cast<std::size_t>(px));
            }
        }
    }
}

/// y(n, c, oy, ox) = sum of x over the window (zeros in the padding) / (KH * KW).
template <class T>
xt::xtensor<double, 4> avgpool2d(const xt::xtensor<T, 4>& x, index2 kernel, index2 stride, index2 padding)
{
    const std::size_t n_batch = x.shape()[0], channels = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
    const std::size_t oh = out_extent(h, kernel[0], stride[0], padding[0]);
    const std::size_t ow = out_extent(wd, kernel[1], stride[1], padding[1]);
    const double count = static_cast<double>(kernel[0] * kernel[1]);
    xt::xtensor<double, 4> y = xt::zeros<double>({n_batch, channels, oh, ow});
    for (std::size_t n = 0; n < n_batch; ++n)
        for (std::size_t c = 0; c < channels; ++c)
            for (std::size_t oy = 0; oy < oh; ++oy)
                for (std::size_t ox = 0; ox < ow; ++ox)
                {
                    double sum = 0;
                    for_window(oy, ox, kernel, stride, padding, h, wd,
                               [&](std::size_t iy, std::size_t ix) { sum += static_cast<double>(x(n, c, iy, ix)); });
                    y(n, c, oy, ox) = sum / count;
                }
    return y;
}

/// dx: each output gradient / (KH * KW) added to every input its window covers.
template <class G>
xt::xtensor<double, 4> avgpool2d_backward(const std::array<std::size_t, 4>& x_shape, const xt::xtensor<G, 4>& dy,
                                          index2 kernel, index2 stride, index2 padding)
{
    xt::xtensor<double, 4> dx = xt::zeros<double>(x_shape);
    const double count = static_cast<double>(kernel[0] * kernel[1]);
    const auto& s = dy.shape();
    for (std::size_t n = 0; n < s[0]; ++n)
        for (std::size_t c = 0; c < s[1]; ++c)
            for (std::size_t oy = 0; oy < s[2]; ++oy)
                for (std::size_t ox = 0; ox < s[3]; ++ox)
                {
                    const double d = static_cast<double>(dy(n, c, oy, ox)) / count;
                    for_window(oy, ox, kernel, stride, padding, x_shape[2], x_shape[3],
                               [&](std::size_t iy, std::size_t ix) { dx(n, c, iy, ix) += d; });
                }
    return dx;
}

// ---------------------------------------------------------------------------------------------
// Dense (PyTorch's Linear): y = x W^T + b, weight (out, in).
// ---------------------------------------------------------------------------------------------

template <class T>
xt::xtensor<double, 2> dense(const xt::xtensor<T, 2>& x, const xt::xtensor<T, 2>& w, const xt::xtensor<T, 1>& b,
                             xt::xtensor<double, 2>* magnitude = nullptr)
{
    const std::size_t n_batch = x.shape()[0], in = x.shape()[1], out = w.shape()[0];
    if (w.shape()[1] != in || b.shape()[0] != out)
    {
        throw std::invalid_argument("naive::dense: inconsistent shapes");
    }
    xt::xtensor<double, 2> y({n_batch, out});
    if (magnitude != nullptr)
    {
        magnitude->resize({n_batch, out});
    }
    for (std::size_t n = 0; n < n_batch; ++n)
    {
        for (std::size_t o = 0; o < out; ++o)
        {
            double acc = static_cast<double>(b(o));
            double mag = std::abs(acc);
            for (std::size_t i = 0; i < in; ++i)
            {
                const double term = static_cast<double>(x(n, i)) * static_cast<double>(w(o, i));
                acc += term;
                mag += std::abs(term);
            }
            y(n, o) = acc;
            if (magnitude != nullptr)
            {
                (*magnitude)(n, o) = mag;
            }
        }
    }
    return y;
}

struct dense_grads
{
    xt::xtensor<double, 2> dx;
    xt::xtensor<double, 2> dw;
    xt::xtensor<double, 1> db;
    // Sums of the absolute values of the terms of each entry: the scale of its rounding error.
    xt::xtensor<double, 2> dx_magnitude;
    xt::xtensor<double, 2> dw_magnitude;
    xt::xtensor<double, 1> db_magnitude;
};

/// dx(n, i) = sum_o dy(n, o) w(o, i); dw(o, i) = sum_n dy(n, o) x(n, i); db(o) = sum_n dy(n, o).
template <class T, class G>
dense_grads dense_backward(const xt::xtensor<T, 2>& x, const xt::xtensor<T, 2>& w, const xt::xtensor<G, 2>& dy)
{
    const std::size_t n_batch = x.shape()[0], in = x.shape()[1], out = w.shape()[0];
    dense_grads g;
    g.dx = xt::zeros<double>({n_batch, in});
    g.dw = xt::zeros<double>({out, in});
    g.db = xt::zeros<double>({out});
    g.dx_magnitude = xt::zeros<double>({n_batch, in});
    g.dw_magnitude = xt::zeros<double>({out, in});
    g.db_magnitude = xt::zeros<double>({out});
    for (std::size_t n = 0; n < n_batch; ++n)
    {
        for (std::size_t o = 0; o < out; ++o)
        {
            const double d = static_cast<double>(dy(n, o));
            g.db(o) += d;
            g.db_magnitude(o) += std::abs(d);
            for (std::size_t i = 0; i < in; ++i)
            {
                const double dx_term = d * static_cast<double>(w(o, i));
                const double dw_term = d * static_cast<double>(x(n, i));
                g.dx(n, i) += dx_term;
                g.dw(o, i) += dw_term;
                g.dx_magnitude(n, i) += std::abs(dx_term);
                g.dw_magnitude(o, i) += std::abs(dw_term);
            }
        }
    }
    return g;
}

// ---------------------------------------------------------------------------------------------
// ReLU (element-wise, any rank) and Flatten.
// ---------------------------------------------------------------------------------------------

/// max(x, 0) element by element over the flat storage.
template <class T, std::size_t N>
xt::xtensor<T, N> relu(const xt::xtensor<T, N>& x)
{
    xt::xtensor<T, N> y(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        const T v = x.data()[i];
        y.data()[i] = v > T(0) ? v : T(0);
    }
    return y;
}

/// dy where x > 0, else 0 (PyTorch's subgradient 0 at x = 0).
template <class T, std::size_t N>
xt::xtensor<T, N> relu_backward(const xt::xtensor<T, N>& x, const xt::xtensor<T, N>& dy)
{
    xt::xtensor<T, N> dx(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        dx.data()[i] = x.data()[i] > T(0) ? dy.data()[i] : T(0);
    }
    return dx;
}

/// (N, C, H, W) -> (N, C*H*W) with feature index (c * H + h) * W + w.
template <class T>
xt::xtensor<T, 2> flatten(const xt::xtensor<T, 4>& x)
{
    const auto& s = x.shape();
    xt::xtensor<T, 2> y({s[0], s[1] * s[2] * s[3]});
    for (std::size_t n = 0; n < s[0]; ++n)
    {
        for (std::size_t c = 0; c < s[1]; ++c)
        {
            for (std::size_t h = 0; h < s[2]; ++h)
            {
                for (std::size_t w = 0; w < s[3]; ++w)
                {
                    y(n, (c * s[2] + h) * s[3] + w) = x(n, c, h, w);
                }
            }
        }
    }
    return y;
}

} // namespace naive

// ---------------------------------------------------------------------------------------------
// Small helpers shared by the layer tests.
// ---------------------------------------------------------------------------------------------

/// The names of parameter, buffer or generator handles, in order.
template <class Handles>
std::vector<std::string> names_of(const Handles& handles)
{
    std::vector<std::string> out;
    for (const auto& h : handles)
    {
        out.push_back(h.name());
    }
    return out;
}

/// A tensor of the given shape filled with U(lo, hi) draws from `rng`.
template <class T, std::size_t N>
xt::xtensor<T, N> random_tensor(const std::array<std::size_t, N>& shape, std::mt19937& rng, double lo = -1.0,
                                double hi = 1.0)
{
    xt::xtensor<T, N> t(shape);
    std::uniform_real_distribution<double> dist(lo, hi);
    for (auto& v : t)
    {
        v = static_cast<T>(dist(rng));
    }
    return t;
}

/// A tensor of the given shape filled with U(-1, 1) draws from `std::mt19937(seed)`.
template <class T, std::size_t N>
xt::xtensor<T, N> random_tensor(const std::array<std::size_t, N>& shape, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    return random_tensor<T, N>(shape, rng);
}

/// True when both have the same shape and the same bytes: "bit-identical" (unlike `identical`,
/// -0 differs from +0 and a NaN equals the same NaN).
template <class A, class B>
bool same_bits(const A& a, const B& b)
{
    return std::equal(a.shape().begin(), a.shape().end(), b.shape().begin(), b.shape().end()) &&
           std::memcmp(a.data(), b.data(), a.size() * sizeof(typename A::value_type)) == 0;
}

/// sum(y * r) over the flat storage, in double: the scalar loss of the gradient checks.
template <class A, class B>
double weighted_sum(const A& y, const B& r)
{
    if (y.size() != r.size())
    {
        throw std::invalid_argument("weighted_sum: sizes differ");
    }
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i)
    {
        s += static_cast<double>(y.data()[i]) * static_cast<double>(r.data()[i]);
    }
    return s;
}

/// The input gradient a parameter-free layer's `backward(r)` gives after `forward(x)`, and its
/// relative error against the central difference of weighted_sum(layer.predict(x), r).
struct input_gradient_check
{
    double relative_error = 0;
    std::vector<double> analytic;
};

template <class Layer, class X, class R>
input_gradient_check check_input_gradient(Layer& layer, X& x, const R& r)
{
    layer.forward(x);
    const auto& dx = layer.backward(r);
    input_gradient_check result;
    result.analytic.assign(dx.data(), dx.data() + dx.size());
    const std::function<double()> loss = [&]
    {
        return weighted_sum(layer.predict(x), r);
    };
    const auto numeric = numeric_gradient(loss, x.data(), x.size());
    result.relative_error = relative_error(numeric.data(), result.analytic.data(), result.analytic.size());
    return result;
}

/// True when the two tensors have the same rank and extents.
template <class A, class B>
bool same_extents(const A& a, const B& b)
{
    return a.shape().size() == b.shape().size() && std::equal(a.shape().begin(), a.shape().end(), b.shape().begin());
}

/// max_i |a_i - b_i| / (scale_i + floor) over the flat storage; +infinity if the sizes differ or
/// any difference is NaN (so NaNs never hide behind a max).
template <class A, class B, class S>
double max_scaled_error(const A& a, const B& b, const S& scale, double floor = 1e-300)
{
    if (a.size() != b.size() || a.size() != scale.size())
    {
        return std::numeric_limits<double>::infinity();
    }
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        const double e = std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])) /
                         (static_cast<double>(scale.data()[i]) + floor);
        if (std::isnan(e))
        {
            return std::numeric_limits<double>::infinity();
        }
        worst = e > worst ? e : worst;
    }
    return worst;
}

/// ||a - b|| / max(||a||, ||b||) over the flat storage; +infinity on a size mismatch or a NaN.
template <class A, class B>
double flat_relative_error(const A& a, const B& b)
{
    if (a.size() != b.size())
    {
        return std::numeric_limits<double>::infinity();
    }
    double diff = 0, na = 0, nb = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        const double x = static_cast<double>(a.data()[i]), y = static_cast<double>(b.data()[i]);
        diff += (x - y) * (x - y);
        na += x * x;
        nb += y * y;
    }
    const double denom = std::sqrt(na > nb ? na : nb);
    if (std::isnan(diff) || std::isnan(denom))
    {
        return std::numeric_limits<double>::infinity();
    }
    if (denom == 0)
    {
        return diff == 0 ? 0.0 : std::numeric_limits<double>::infinity();
    }
    return std::sqrt(diff) / denom;
}

/// True when every element is bit-for-bit equal (NaNs compare unequal).
template <class A, class B>
bool identical(const A& a, const B& b)
{
    if (!xcnn_test::same_extents(a, b))
    {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        if (!(a.data()[i] == b.data()[i]))
        {
            return false;
        }
    }
    return true;
}

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_NAIVE_LAYERS_HPP
