/// @file
/// The forward pass of a convolution on the form `choose_forward_form` picks, and with several
/// threads, the batch shared out whole images at a time where that keeps each thread's data in
/// its own core's cache.
///
/// The GEMM forms split one GEMM's columns (or rows) between threads. Where the GEMM is fed by
/// a copy that the threads also share (the lowered form's column matrix, the plane form's output
/// planes cropped afterwards), every stage hands its output to the other core's cache for the
/// next, and on small layers two threads ran no faster than one (docs/performance.md). A thread
/// that runs the whole form on its own images, with its own workspace, hands nothing over. Each
/// output depends on its own image only, in the same order of sums whatever the batch, so the
/// split does not change a bit of it.
#ifndef XCNN_CORE_CONV_FORWARD_HPP
#define XCNN_CORE_CONV_FORWARD_HPP

#include <cstddef>
#include <vector>

#include "../threading.hpp"
#include "select.hpp"

namespace xcnn
{
namespace detail
{

/// y (N, C_out, OH, OW) from `padded` (N, C_in, Hp, Wp) on `form`, one of the forms that read
/// the padded input (not `depthwise_phases`, which reads the input in place).
template <class T>
void forward_on_form(conv_form form, const conv_geometry& g, const T* weight, const T* bias, const T* padded, T* y,
                     bool relu, conv_workspace<T>& ws)
{
    switch (form)
    {
    case conv_form::plane:
        plane_forward(g, weight, bias, padded, y, relu, ws.plane, ws.gemm);
        break;
    case conv_form::lowered:
        lowered_forward(g, weight, bias, padded, y, relu, ws.lowered, ws.gemm);
        break;
    case conv_form::depthwise:
        depthwise_forward(g, weight, bias, padded, y, relu, ws.depthwise);
        break;
    case conv_form::winograd:
        winograd_forward(g, weight, bias, padded, y, relu, ws.winograd, ws.gemm);
        break;
    case conv_form::direct:
        direct_forward(g, weight, bias, padded, y, relu, ws.direct);
        break;
    default:
        window_forward(g, padded, weight, bias, y, relu, ws.window, ws.gemm);
        break;
    }
}

/// Whether the forward pass of `g` on `form` shares the batch out whole images at a time: with
/// several threads, two images per thread or more, on the GEMM forms (the Winograd form splits
/// its chunks that way itself; the depthwise kernels already give each thread its own planes).
inline bool forward_by_images(const conv_geometry& g, conv_form form) noexcept
{
    const std::size_t threads = get_num_threads();
    return threads > 1 && g.batch >= 2 * threads &&
           (form == conv_form::plane || form == conv_form::lowered || form == conv_form::window_view);
}

/// The forward pass of `g` on `form` (`forward_on_form`), each thread running its own share of
/// the images with its own workspace from `per_thread` when `forward_by_images`, all the
/// threads sharing each step with `shared` otherwise.
template <class T>
void conv_forward(conv_form form, const conv_geometry& g, const T* weight, const T* bias, const T* padded, T* y,
                  bool relu, conv_workspace<T>& shared, std::vector<conv_workspace<T>>& per_thread)
{
    if (!forward_by_images(g, form))
    {
        forward_on_form(form, g, weight, bias, padded, y, relu, shared);
        return;
    }
    const std::size_t threads = get_num_threads();
    if (per_thread.size() < threads)
    {
        per_thread.resize(threads);
    }
    const std::size_t in_image = g.in_channels * g.padded_h() * g.padded_w();
    const std::size_t out_image = g.out_channels * g.out_h() * g.out_w();
    parallel_for(g.batch, 1,
                 [&](std::size_t begin, std::size_t end, std::size_t worker)
                 {
                     // Inside a parallel section the form's own parallel loops run serially, on
                     // this thread's workspace.
                     conv_geometry part = g;
                     part.batch = end - begin;
                     forward_on_form(form, part, weight, bias, padded + begin * in_image, y + begin * out_image, relu,
                                     per_thread[worker]);
                 });
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_CONV_FORWARD_HPP
