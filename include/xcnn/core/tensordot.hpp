/// @file
/// `xcnn::tensordot`: NumPy's tensordot for xtensor expressions, lowered to xcnn's GEMM.
#ifndef XCNN_CORE_TENSORDOT_HPP
#define XCNN_CORE_TENSORDOT_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "gemm.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Where the elements of a tensor live: element (i0, i1, ...) is `data[sum(ik * strides[k])]`.
/// Strides are in elements and may be zero or negative.
/// Shapes, strides and axis lists of up to 8 axes live inline (no heap allocation), so a layer's
/// contraction on a steady shape allocates nothing.
using small_shape = xt::svector<std::size_t, 8>;
using small_strides = xt::svector<std::ptrdiff_t, 8>;
/// A list of axes, e.g. `{1, 4, 5}`.
using axes_list = xt::svector<std::size_t, 8>;

template <class T>
struct tensor_ref
{
    T* data = nullptr;
    small_shape shape;
    small_strides strides;
};

/// A `tensor_ref` over a raw buffer with the given shape and strides.
template <class T, class S, class X>
tensor_ref<T> make_tensor_ref(T* data, const S& shape, const X& strides)
{
    tensor_ref<T> ref;
    ref.data = data;
    ref.shape.assign(shape.begin(), shape.end());
    ref.strides.assign(strides.begin(), strides.end());
    return ref;
}

/// The elements of `e` as a strided buffer: zero-copy when `e` has a data interface
/// (containers, adaptors, strided views such as `view_as_windows`), otherwise `e` is evaluated
/// into `storage` first.
template <class T, class E>
tensor_ref<const T> ref_of(const E& e, xt::xarray<T>& storage)
{
    if constexpr (xt::has_data_interface<E>::value)
    {
        return make_tensor_ref<const T>(e.data() + e.data_offset(), e.shape(), e.strides());
    }
    else
    {
        storage = e;
        return make_tensor_ref<const T>(storage.data(), storage.shape(), storage.strides());
    }
}

/// Offsets of every element of the sub-tensor spanned by `axes`, in row-major order over
/// those axes (the last listed axis varies fastest). These are the offset tables of the GEMM.
inline void axis_offsets(const small_shape& shape, const small_strides& strides, const axes_list& axes,
                         std::vector<std::ptrdiff_t>& out)
{
    std::size_t count = 1;
    for (auto axis : axes)
    {
        count *= shape[axis];
    }
    out.resize(count);
    if (count == 0)
    {
        return;
    }
    out[0] = 0;
    std::size_t filled = 1;
    for (auto axis : axes)
    {
        const std::size_t extent = shape[axis];
        const std::ptrdiff_t stride = strides[axis];
        // Expand in place from the back so each entry is read before it is overwritten.
        for (std::size_t i = filled; i-- > 0;)
        {
            const std::ptrdiff_t base = out[i];
            for (std::size_t t = extent; t-- > 0;)
            {
                out[i * extent + t] = base + static_cast<std::ptrdiff_t>(t) * stride;
            }
        }
        filled *= extent;
    }
}

/// Offset tables of one contraction, kept so that repeated contractions of the same geometry
/// (a layer's forward pass on every batch) reuse their memory.
struct contraction_tables
{
    std::vector<std::ptrdiff_t> a_rows, a_cols, b_rows, b_cols, c_rows, c_cols;
    axes_list free_a, free_b, out_rows, out_cols;
};

/// Checks the axes of a contraction and returns the free axes of a and b.
template <class A, class B>
void check_contraction(const tensor_ref<A>& a, const axes_list& axes_a, const tensor_ref<B>& b, const axes_list& axes_b,
                       axes_list& free_a, axes_list& free_b)
{
    auto fail = [&](const std::string& why)
    {
        throw shape_error(concat("tensordot: ", why, " (a ", shape_to_string(a.shape), ", axes ",
                                 shape_to_string(axes_a), "; b ", shape_to_string(b.shape), ", axes ",
                                 shape_to_string(axes_b), ")"));
    };
    if (axes_a.size() != axes_b.size())
    {
        fail("a and b must contract the same number of axes");
    }
    auto free_axes = [&](const small_shape& shape, const axes_list& axes, axes_list& out, const char* name)
    {
        if (shape.size() > 64)
        {
            fail(concat(name, " has more than 64 axes"));
        }
        std::uint64_t used = 0;
        for (auto axis : axes)
        {
            if (axis >= shape.size())
            {
                fail(concat("axis ", axis, " is out of range for ", name));
            }
            if (used & (std::uint64_t(1) << axis))
            {
                fail(concat("axis ", axis, " of ", name, " is listed twice"));
            }
            used |= std::uint64_t(1) << axis;
        }
        out.clear();
        for (std::size_t i = 0; i < shape.size(); ++i)
        {
            if (!(used & (std::uint64_t(1) << i)))
            {
                out.push_back(i);
            }
        }
    };
    free_axes(a.shape, axes_a, free_a, "a");
    free_axes(b.shape, axes_b, free_b, "b");
    for (std::size_t i = 0; i < axes_a.size(); ++i)
    {
        if (a.shape[axes_a[i]] != b.shape[axes_b[i]])
        {
            fail(concat("axis ", axes_a[i], " of a has length ", a.shape[axes_a[i]], " but axis ", axes_b[i],
                        " of b has length ", b.shape[axes_b[i]]));
        }
    }
}

/// The shape NumPy's tensordot gives: the free axes of a, then the free axes of b.
template <class A, class B>
small_shape contraction_shape(const tensor_ref<A>& a, const axes_list& free_a, const tensor_ref<B>& b,
                              const axes_list& free_b)
{
    small_shape shape;
    for (auto axis : free_a)
    {
        shape.push_back(a.shape[axis]);
    }
    for (auto axis : free_b)
    {
        shape.push_back(b.shape[axis]);
    }
    return shape;
}

/// out = epilogue(tensordot(a, b, axes_a, axes_b)), where `out` describes the result's
/// elements (free axes of a, then of b) with arbitrary strides. Writing the result through
/// permuted strides is how a layer gets NCHW output from a contraction whose natural axis order
/// is (C, N, H, W), with no transpose pass.
template <class T>
void contract(const tensor_ref<const T>& a, const axes_list& axes_a, const tensor_ref<const T>& b,
              const axes_list& axes_b, const tensor_ref<T>& out, const gemm_epilogue<T>& epilogue,
              contraction_tables& tables, gemm_workspace<T>& workspace)
{
    check_contraction(a, axes_a, b, axes_b, tables.free_a, tables.free_b);
    const auto expected = contraction_shape(a, tables.free_a, b, tables.free_b);
    if (expected != out.shape)
    {
        throw shape_error(concat("tensordot: the result has shape ", shape_to_string(expected),
                                 " but the output has shape ", shape_to_string(out.shape)));
    }
    axis_offsets(a.shape, a.strides, tables.free_a, tables.a_rows);
    axis_offsets(a.shape, a.strides, axes_a, tables.a_cols);
    axis_offsets(b.shape, b.strides, axes_b, tables.b_rows);
    axis_offsets(b.shape, b.strides, tables.free_b, tables.b_cols);
    const std::size_t rank_rows = tables.free_a.size();
    tables.out_rows.clear();
    tables.out_cols.clear();
    for (std::size_t i = 0; i < out.shape.size(); ++i)
    {
        (i < rank_rows ? tables.out_rows : tables.out_cols).push_back(i);
    }
    axis_offsets(out.shape, out.strides, tables.out_rows, tables.c_rows);
    axis_offsets(out.shape, out.strides, tables.out_cols, tables.c_cols);
    gemm<T>(tables.a_rows.size(), tables.b_cols.size(), tables.a_cols.size(),
            {a.data, tables.a_rows.data(), tables.a_cols.data()}, {b.data, tables.b_rows.data(), tables.b_cols.data()},
            {out.data, tables.c_rows.data(), tables.c_cols.data()}, epilogue, workspace);
}

/// Static rank of tensordot's result, or -1 when either rank is only known at run time.
template <class E1, class E2, std::ptrdiff_t N>
constexpr std::ptrdiff_t tensordot_rank()
{
    constexpr std::ptrdiff_t ra = xt::static_dimension<typename E1::shape_type>::value;
    constexpr std::ptrdiff_t rb = xt::static_dimension<typename E2::shape_type>::value;
    return (ra < 0 || rb < 0 || N < 0) ? -1 : ra + rb - 2 * N;
}

template <std::ptrdiff_t Rank, class E1, class E2>
auto tensordot_impl(const E1& a, const E2& b, const axes_list& axes_a, const axes_list& axes_b)
{
    using T = typename E1::value_type;
    static_assert(std::is_same<T, typename E2::value_type>::value,
                  "xcnn::tensordot: both operands must have the same value type");
    static_assert(std::is_floating_point<T>::value, "xcnn::tensordot: the value type must be float or double");
    xt::xarray<T> storage_a, storage_b;
    const auto ref_a = ref_of<T>(a, storage_a);
    const auto ref_b = ref_of<T>(b, storage_b);
    contraction_tables tables;
    check_contraction(ref_a, axes_a, ref_b, axes_b, tables.free_a, tables.free_b);
    const auto shape = contraction_shape(ref_a, tables.free_a, ref_b, tables.free_b);
    using result_type =
        std::conditional_t<(Rank >= 0), xt::xtensor<T, std::size_t(Rank < 0 ? 0 : Rank)>, xt::xarray<T>>;
    typename result_type::shape_type result_shape{};
    if constexpr (Rank < 0)
    {
        result_shape.resize(shape.size());
    }
    else if (shape.size() != std::size_t(Rank))
    {
        throw shape_error(concat("tensordot: operands of rank ", ref_a.shape.size(), " and ", ref_b.shape.size(),
                                 " contracted over ", axes_a.size(), " axes cannot give rank ", Rank));
    }
    std::copy(shape.begin(), shape.end(), result_shape.begin());
    result_type result(result_shape);
    gemm_workspace<T> workspace;
    contract<T>(ref_a, axes_a, ref_b, axes_b, make_tensor_ref<T>(result.data(), result.shape(), result.strides()), {},
                tables, workspace);
    return result;
}

} // namespace detail

/// Sum of products of `a` and `b` over the axes `axes_a` of a and `axes_b` of b, with NumPy's
/// semantics: the result has the free axes of a (in order), then the free axes of b.
///
/// Works on any xtensor expressions. Containers and strided views — `view_as_windows` included —
/// are read in place through their strides; other expressions are evaluated first. The
/// contraction runs on xcnn's own GEMM kernel (no BLAS).
///
/// The result is an `xt::xtensor` when both ranks are static, an `xt::xarray` otherwise.
/// Axes are given as braced lists, as in xtensor-blas: `xcnn::tensordot(w, x, {1, 2, 3}, {1, 4, 5})`.
/// @throws shape_error when the axes are out of range, repeated, of different counts, or
/// their lengths differ.
template <class E1, class E2, std::size_t N>
auto tensordot(const xt::xexpression<E1>& a, const xt::xexpression<E2>& b, const std::size_t (&axes_a)[N],
               const std::size_t (&axes_b)[N])
{
    return detail::tensordot_impl<detail::tensordot_rank<E1, E2, std::ptrdiff_t(N)>()>(
        a.derived_cast(), b.derived_cast(), detail::axes_list(axes_a, axes_a + N),
        detail::axes_list(axes_b, axes_b + N));
}

/// @overload
/// With axes in `std::array`s.
template <class E1, class E2, std::size_t N>
auto tensordot(const xt::xexpression<E1>& a, const xt::xexpression<E2>& b, const std::array<std::size_t, N>& axes_a,
               const std::array<std::size_t, N>& axes_b)
{
    return detail::tensordot_impl<detail::tensordot_rank<E1, E2, std::ptrdiff_t(N)>()>(
        a.derived_cast(), b.derived_cast(), detail::axes_list(axes_a.begin(), axes_a.end()),
        detail::axes_list(axes_b.begin(), axes_b.end()));
}

/// @overload
/// With axes known only at run time; the result is an `xt::xarray`.
template <class E1, class E2>
xt::xarray<typename E1::value_type> tensordot(const xt::xexpression<E1>& a, const xt::xexpression<E2>& b,
                                              const std::vector<std::size_t>& axes_a,
                                              const std::vector<std::size_t>& axes_b)
{
    return detail::tensordot_impl<-1>(a.derived_cast(), b.derived_cast(),
                                      detail::axes_list(axes_a.begin(), axes_a.end()),
                                      detail::axes_list(axes_b.begin(), axes_b.end()));
}

} // namespace xcnn

#endif // XCNN_CORE_TENSORDOT_HPP
