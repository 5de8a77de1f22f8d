/// @file
/// `xcnn::view_as_windows`: zero-copy sliding windows over the trailing axes of a tensor.
#ifndef XCNN_CORE_WINDOWS_HPP
#define XCNN_CORE_WINDOWS_HPP

#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "error.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// The flat storage offset and element strides through which a view reaches the elements of
/// `e`. Expressions with a data interface (containers, adaptors, strided views) are addressed
/// through their own strides, so windows of a transposed or sliced tensor stay zero-copy;
/// anything else is addressed as xtensor's row-major flat adaptor of it.
template <class E>
std::pair<xt::svector<std::ptrdiff_t, 8>, std::size_t> flat_strides_of(const E& e)
{
    const auto& shape = e.shape();
    xt::svector<std::ptrdiff_t, 8> strides(shape.size());
    if constexpr (xt::has_data_interface<std::decay_t<E>>::value)
    {
        std::copy(e.strides().begin(), e.strides().end(), strides.begin());
        return {std::move(strides), static_cast<std::size_t>(e.data_offset())};
    }
    else
    {
        std::ptrdiff_t stride = 1;
        for (std::size_t i = shape.size(); i-- > 0;)
        {
            strides[i] = shape[i] == 1 ? 0 : stride;
            stride *= static_cast<std::ptrdiff_t>(shape[i]);
        }
        return {std::move(strides), std::size_t(0)};
    }
}

/// Rank of the window view: static when the input's rank is static and the window is an
/// array, dynamic otherwise.
template <class E, class Window>
constexpr std::ptrdiff_t windows_rank()
{
    constexpr std::ptrdiff_t input = xt::static_dimension<typename std::decay_t<E>::shape_type>::value;
    constexpr std::ptrdiff_t window = xt::static_dimension<Window>::value;
    return (input < 0 || window < 0) ? -1 : input + window;
}

template <class E, class Window, class Step>
auto view_as_windows_impl(E&& x, const Window& window, const Step& step)
{
    constexpr std::ptrdiff_t rank = windows_rank<E, Window>();
    using shape_type = std::conditional_t<(rank >= 0), std::array<std::size_t, std::size_t(rank < 0 ? 0 : rank)>,
                                          xt::svector<std::size_t, 8>>;
    using strides_type = std::conditional_t<(rank >= 0), std::array<std::ptrdiff_t, std::size_t(rank < 0 ? 0 : rank)>,
                                            xt::svector<std::ptrdiff_t, 8>>;

    const auto& in_shape = x.shape();
    const std::size_t in_rank = in_shape.size();
    const std::size_t w_rank = window.size();
    if (w_rank == 0 || w_rank > in_rank)
    {
        throw shape_error(concat("view_as_windows: window ", shape_to_string(window), " has ", w_rank,
                                 " axes but the input ", shape_to_string(in_shape), " has ", in_rank));
    }
    if (step.size() != w_rank)
    {
        throw shape_error(concat("view_as_windows: step ", shape_to_string(step), " needs one entry per window axis ",
                                 shape_to_string(window)));
    }
    const std::size_t lead = in_rank - w_rank;
    for (std::size_t i = 0; i < w_rank; ++i)
    {
        if (step[i] == 0)
        {
            throw value_error(concat("view_as_windows: step ", shape_to_string(step),
                                     " must be >= 1 on every axis (window ", shape_to_string(window), ", input ",
                                     shape_to_string(in_shape), ")"));
        }
    }
    for (std::size_t i = 0; i < w_rank; ++i)
    {
        if (window[i] == 0 || window[i] > in_shape[lead + i])
        {
            throw shape_error(concat("view_as_windows: window ", shape_to_string(window),
                                     " does not fit in the trailing axes of the input ", shape_to_string(in_shape)));
        }
    }

    auto [in_strides, offset] = flat_strides_of(x);
    shape_type shape{};
    strides_type strides{};
    if constexpr (rank < 0)
    {
        shape.resize(in_rank + w_rank);
        strides.resize(in_rank + w_rank);
    }
    for (std::size_t i = 0; i < lead; ++i)
    {
        shape[i] = in_shape[i];
        strides[i] = in_strides[i];
    }
    for (std::size_t i = 0; i < w_rank; ++i)
    {
        const std::size_t axis = lead + i;
        shape[axis] = (in_shape[axis] - window[i]) / step[i] + 1;
        strides[axis] = in_strides[axis] * static_cast<std::ptrdiff_t>(step[i]);
        shape[in_rank + i] = window[i];
        strides[in_rank + i] = in_strides[axis];
    }
    return xt::strided_view(std::forward<E>(x), std::move(shape), std::move(strides), offset, xt::layout_type::dynamic);
}

template <std::size_t W>
std::array<std::size_t, W> to_array(const std::size_t (&values)[W])
{
    std::array<std::size_t, W> out{};
    for (std::size_t i = 0; i < W; ++i)
    {
        out[i] = values[i];
    }
    return out;
}

template <std::size_t W>
std::array<std::size_t, W> filled(std::size_t value)
{
    std::array<std::size_t, W> out{};
    out.fill(value);
    return out;
}

} // namespace detail

/// A zero-copy view of all the windows of shape `window_shape` that slide over the trailing
/// `window_shape.size()` axes of `x`, `step` elements apart.
///
/// Semantics of `numpy.lib.stride_tricks.sliding_window_view(x, window_shape, axis=trailing)`
/// with a step, and of `skimage.util.view_as_windows` when the window has as many axes as `x`:
/// the leading axes are kept, each windowed axis of length `n` becomes `(n - w) / step + 1`
/// window positions, and the window axes are appended. For an NCHW tensor and a `{KH, KW}`
/// window with step `{SH, SW}` the view has shape `(N, C, OH, OW, KH, KW)`.
///
/// The view refers to `x` (it owns `x` when `x` is an rvalue); writing through it writes `x`.
/// @throws shape_error if the window has more axes than `x` or does not fit in it.
/// @throws value_error if a step is zero.
template <class E, std::size_t W>
auto view_as_windows(E&& x, const std::size_t (&window_shape)[W], std::size_t step = 1)
{
    return detail::view_as_windows_impl(std::forward<E>(x), detail::to_array(window_shape), detail::filled<W>(step));
}

/// @overload
/// With one step per window axis.
template <class E, std::size_t W>
auto view_as_windows(E&& x, const std::size_t (&window_shape)[W], const std::size_t (&step)[W])
{
    return detail::view_as_windows_impl(std::forward<E>(x), detail::to_array(window_shape), detail::to_array(step));
}

/// @overload
/// For window shapes held in a `std::array`.
template <class E, std::size_t W>
auto view_as_windows(E&& x, const std::array<std::size_t, W>& window_shape, std::size_t step = 1)
{
    return detail::view_as_windows_impl(std::forward<E>(x), window_shape, detail::filled<W>(step));
}

/// @overload
/// For window shapes and steps held in `std::array`s.
template <class E, std::size_t W>
auto view_as_windows(E&& x, const std::array<std::size_t, W>& window_shape, const std::array<std::size_t, W>& step)
{
    return detail::view_as_windows_impl(std::forward<E>(x), window_shape, step);
}

/// @overload
/// For window shapes known only at run time; the view has a dynamic rank.
template <class E>
auto view_as_windows(E&& x, const std::vector<std::size_t>& window_shape, const std::vector<std::size_t>& step)
{
    return detail::view_as_windows_impl(std::forward<E>(x), window_shape, step);
}

/// @overload
/// For window shapes known only at run time, with one step for every axis.
template <class E>
auto view_as_windows(E&& x, const std::vector<std::size_t>& window_shape, std::size_t step = 1)
{
    return detail::view_as_windows_impl(std::forward<E>(x), window_shape,
                                        std::vector<std::size_t>(window_shape.size(), step));
}

} // namespace xcnn

#endif // XCNN_CORE_WINDOWS_HPP
