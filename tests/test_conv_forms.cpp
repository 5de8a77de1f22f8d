// The convolution forms of core/conv/ called directly, each against the naive loops on
// geometries the layer would not give it (Conv2D runs one form per pass and geometry, so the
// window view's dW at stride 1, the strided dX at stride 1 or the plane form on panel-wide rows
// are never reached through the layer), and the selection rules of core/conv/select.hpp.
#include "catch_compat.hpp"

#include "support/gradcheck.hpp"
#include "support/naive_layers.hpp"

#include <xcnn/core/conv/select.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace
{

namespace naive = xcnn_test::naive;
using xcnn::detail::conv_form;
using xcnn::detail::conv_geometry;
using xcnn_test::max_scaled_error;
using xcnn_test::random_tensor;

std::string describe(const conv_geometry& g)
{
    std::ostringstream out;
    out << "N=" << g.batch << " C_in=" << g.in_channels << " C_out=" << g.out_channels << " H=" << g.input[0]
        << " W=" << g.input[1] << " kernel=(" << g.kernel[0] << ", " << g.kernel[1] << ") stride=(" << g.stride[0]
        << ", " << g.stride[1] << ") padding=(" << g.padding[0] << ", " << g.padding[1] << ") dilation=("
        << g.dilation[0] << ", " << g.dilation[1] << ")";
    return out.str();
}

conv_geometry geometry(std::size_t n, std::size_t c_in, std::size_t c_out, std::size_t h, std::size_t w,
                       std::array<std::size_t, 2> k, std::array<std::size_t, 2> s, std::array<std::size_t, 2> p)
{
    conv_geometry g;
    g.batch = n;
    g.in_channels = c_in;
    g.out_channels = c_out;
    g.input = {h, w};
    g.kernel = k;
    g.stride = s;
    g.padding = p;
    return g;
}

/// Stride-1 geometries: square and non-square kernels, with and without padding, output rows
/// narrower than, equal to and wider than a GEMM panel (NR is 32 floats or 16 doubles with
/// AVX-512), padding larger than K - 1, rows as wide as the padded input.
std::vector<conv_geometry> unit_stride_cases()
{
    return {
        geometry(2, 3, 5, 7, 9, {3, 3}, {1, 1}, {1, 1}),
        geometry(2, 2, 4, 6, 30, {3, 3}, {1, 1}, {1, 1}),
        geometry(1, 3, 2, 5, 34, {3, 3}, {1, 1}, {0, 0}),
        geometry(3, 1, 6, 12, 12, {5, 5}, {1, 1}, {2, 2}),
        geometry(2, 4, 3, 8, 11, {2, 5}, {1, 1}, {1, 2}),
        geometry(2, 2, 3, 5, 6, {1, 1}, {1, 1}, {2, 2}),
        geometry(1, 2, 2, 9, 40, {3, 1}, {1, 1}, {0, 1}),
        geometry(2, 3, 2, 3, 3, {5, 5}, {1, 1}, {1, 1}),
        // One column per tap and no padding across: the plane form's rows need no crop.
        geometry(2, 3, 4, 6, 5, {1, 1}, {1, 1}, {0, 0}),
        geometry(2, 2, 3, 7, 6, {3, 1}, {1, 1}, {1, 0}),
        // Enough output channels for dW's packed GEMM (`packed_gemm_beats_nt`), with edge tiles.
        geometry(2, 3, 130, 6, 7, {3, 3}, {1, 1}, {1, 1}),
    };
}

/// Geometries of any stride: stride 2 and 3, non-square kernels and strides, rows and columns
/// no window reaches, padding larger than K - 1.
std::vector<conv_geometry> strided_cases()
{
    auto cases = unit_stride_cases();
    const std::vector<conv_geometry> more = {
        geometry(2, 3, 4, 9, 9, {3, 3}, {2, 2}, {1, 1}),  geometry(1, 2, 3, 11, 8, {3, 2}, {2, 3}, {0, 1}),
        geometry(3, 1, 5, 10, 7, {4, 4}, {3, 3}, {0, 0}), geometry(2, 2, 2, 4, 4, {1, 1}, {2, 2}, {2, 2}),
        geometry(1, 4, 2, 7, 13, {2, 5}, {2, 1}, {1, 0}),
    };
    cases.insert(cases.end(), more.begin(), more.end());
    return cases;
}

/// The lowered form's geometries: those of `strided_cases`, dilations with and without a
/// stride, and images whose column matrix exceeds a chunk, so that dW is summed over chunks and
/// dX raised chunk by chunk.
std::vector<conv_geometry> lowered_cases()
{
    auto cases = strided_cases();
    auto dilated = geometry(2, 3, 4, 11, 10, {3, 3}, {1, 1}, {2, 2});
    dilated.dilation = {2, 2};
    auto dilated_strided = geometry(2, 2, 3, 12, 9, {3, 2}, {2, 1}, {1, 0});
    dilated_strided.dilation = {2, 3};
    cases.push_back(dilated);
    cases.push_back(dilated_strided);
    cases.push_back(geometry(3, 16, 2, 64, 64, {3, 3}, {1, 1}, {1, 1}));
    cases.push_back(geometry(3, 16, 3, 95, 90, {3, 3}, {2, 2}, {1, 0}));
    // dW's packed GEMM summed over two chunks.
    cases.push_back(geometry(2, 240, 128, 16, 16, {3, 3}, {1, 1}, {1, 1}));
    // Planes of at most one vector of floats, moved whole (`lowered_planes_in_a_vector`): 4 x 4
    // and 4 x 3 "same" layers, a stride, a dilation, a kernel larger than the plane; the last
    // planes' windows read through masked loads.
    cases.push_back(geometry(3, 5, 4, 4, 4, {3, 3}, {1, 1}, {1, 1}));
    cases.push_back(geometry(2, 3, 2, 4, 3, {3, 3}, {1, 1}, {1, 1}));
    cases.push_back(geometry(2, 3, 2, 4, 4, {3, 3}, {2, 2}, {1, 1}));
    auto small_dilated = geometry(2, 2, 3, 4, 4, {3, 3}, {1, 1}, {2, 2});
    small_dilated.dilation = {2, 2};
    cases.push_back(small_dilated);
    cases.push_back(geometry(2, 2, 3, 3, 2, {5, 4}, {1, 1}, {2, 2}));
    return cases;
}

/// Random operands of a geometry and the naive results.
template <class T>
struct problem
{
    xt::xtensor<T, 4> x, w, dy, padded;
    xt::xtensor<T, 1> b;
    xt::xtensor<double, 4> y, y_magnitude;
    naive::conv2d_grads grads;

    problem(const conv_geometry& g, std::mt19937& rng)
        : x(random_tensor<T, 4>(g.input_shape(), rng)),
          w(random_tensor<T, 4>({g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]}, rng)),
          dy(random_tensor<T, 4>(g.output_shape(), rng)), b(random_tensor<T, 1>({g.out_channels}, rng))
    {
        xcnn::zero_pad2d_into(x, g.padding[0], g.padding[1], padded);
        y = naive::conv2d(x, w, b, g.stride, g.padding, &y_magnitude, g.dilation);
        grads = naive::conv2d_backward(x, w, dy, g.stride, g.padding, g.dilation);
    }
};

template <class T>
double tolerance()
{
    return sizeof(T) == 4 ? 1e-5 : 1e-12;
}

/// ReLU of the naive output, as `copy_short_relu` computes it.
xt::xtensor<double, 4> relu_of(const xt::xtensor<double, 4>& y)
{
    xt::xtensor<double, 4> out = y;
    for (auto& v : out)
    {
        v = v < 0 ? 0 : v;
    }
    return out;
}

template <class T>
void check_forward_forms()
{
    std::mt19937 rng(11);
    xcnn::detail::conv_workspace<T> ws;
    for (const auto& g : strided_cases())
    {
        INFO(describe(g));
        const problem<T> p(g, rng);
        for (const bool relu : {false, true})
        {
            const auto expected = relu ? relu_of(p.y) : p.y;
            xt::xtensor<T, 4> y(g.output_shape());
            xcnn::detail::window_forward(g, p.padded.data(), p.w.data(), p.b.data(), y.data(), relu, ws.window,
                                         ws.gemm);
            CHECK(max_scaled_error(y, expected, p.y_magnitude) <= tolerance<T>());
            if (g.unit_stride())
            {
                xt::xtensor<T, 4> z(g.output_shape());
                xcnn::detail::plane_forward(g, p.w.data(), p.b.data(), p.padded.data(), z.data(), relu, ws.plane,
                                            ws.gemm);
                CHECK(max_scaled_error(z, expected, p.y_magnitude) <= tolerance<T>());
            }
        }
    }
}

template <class T>
void check_weight_grad_forms()
{
    std::mt19937 rng(12);
    xcnn::detail::conv_workspace<T> ws;
    for (const auto& g : strided_cases())
    {
        INFO(describe(g));
        const problem<T> p(g, rng);
        xt::xtensor<T, 4> dw(p.w.shape());
        xt::xtensor<T, 1> db(p.b.shape());
        xcnn::detail::window_weight_grad(g, p.padded, p.dy, dw, db.data(), ws.window, ws.gemm);
        CHECK(max_scaled_error(dw, p.grads.dw, p.grads.dw_magnitude) <= tolerance<T>());
        CHECK(max_scaled_error(db, p.grads.db, p.grads.db_magnitude) <= tolerance<T>());
        if (g.unit_stride())
        {
            xt::xtensor<T, 4> dw2(p.w.shape());
            xt::xtensor<T, 1> db2(p.b.shape());
            const auto spread =
                xcnn::detail::spread_output_grad(g, p.dy.data(), static_cast<const T*>(nullptr), ws.plane);
            xcnn::detail::plane_weight_grad(g, spread, p.padded.data(), dw2.data(), db2.data(), ws.plane, ws.gemm);
            CHECK(max_scaled_error(dw2, p.grads.dw, p.grads.dw_magnitude) <= tolerance<T>());
            CHECK(max_scaled_error(db2, p.grads.db, p.grads.db_magnitude) <= tolerance<T>());
        }
    }
}

template <class T>
void check_input_grad_forms()
{
    std::mt19937 rng(13);
    xcnn::detail::conv_workspace<T> ws;
    for (const auto& g : strided_cases())
    {
        INFO(describe(g));
        const problem<T> p(g, rng);
        xt::xtensor<T, 4> dx(g.input_shape());
        // Start from garbage: every form must overwrite all of dX.
        dx.fill(T(7));
        xcnn::detail::strided_input_grad(g, p.w.data(), p.dy.data(), dx.data(), ws.strided, ws.gemm);
        CHECK(max_scaled_error(dx, p.grads.dx, p.grads.dx_magnitude) <= tolerance<T>());
        if (!g.unit_stride())
        {
            continue;
        }
        dx.fill(T(7));
        xcnn::detail::window_input_grad(g, p.w, p.dy, static_cast<const T*>(nullptr), dx, ws.window, ws.gemm);
        CHECK(max_scaled_error(dx, p.grads.dx, p.grads.dx_magnitude) <= tolerance<T>());
        dx.fill(T(7));
        const auto spread = xcnn::detail::spread_output_grad(g, p.dy.data(), static_cast<const T*>(nullptr), ws.plane);
        xcnn::detail::plane_input_grad(g, p.w.data(), spread, dx.data(), ws.plane, ws.gemm);
        CHECK(max_scaled_error(dx, p.grads.dx, p.grads.dx_magnitude) <= tolerance<T>());
    }
}

/// With a mask, the stride-1 backward forms equal the unmasked forms fed dY zeroed where the
/// mask is not positive, bit for bit.
template <class T>
void check_masks()
{
    std::mt19937 rng(14);
    xcnn::detail::conv_workspace<T> ws;
    for (const auto& g : unit_stride_cases())
    {
        INFO(describe(g));
        const problem<T> p(g, rng);
        const auto mask = random_tensor<T, 4>(g.output_shape(), rng);
        xt::xtensor<T, 4> masked = p.dy;
        for (std::size_t i = 0; i < masked.size(); ++i)
        {
            masked.data()[i] = mask.data()[i] > 0 ? masked.data()[i] : T(0);
        }
        xt::xtensor<T, 4> dx(g.input_shape()), dx_ref(g.input_shape());
        xcnn::detail::window_input_grad(g, p.w, p.dy, mask.data(), dx, ws.window, ws.gemm);
        xcnn::detail::window_input_grad(g, p.w, masked, static_cast<const T*>(nullptr), dx_ref, ws.window, ws.gemm);
        CHECK(xcnn_test::identical(dx, dx_ref));

        xt::xtensor<T, 4> dw(p.w.shape()), dw_ref(p.w.shape());
        xt::xtensor<T, 1> db(p.b.shape()), db_ref(p.b.shape());
        const auto masked_spread =
            xcnn::detail::spread_output_grad(g, masked.data(), static_cast<const T*>(nullptr), ws.plane);
        xcnn::detail::plane_weight_grad(g, masked_spread, p.padded.data(), dw_ref.data(), db_ref.data(), ws.plane,
                                        ws.gemm);
        xcnn::detail::plane_input_grad(g, p.w.data(), masked_spread, dx_ref.data(), ws.plane, ws.gemm);
        const auto spread = xcnn::detail::spread_output_grad(g, p.dy.data(), mask.data(), ws.plane);
        xcnn::detail::plane_weight_grad(g, spread, p.padded.data(), dw.data(), db.data(), ws.plane, ws.gemm);
        xcnn::detail::plane_input_grad(g, p.w.data(), spread, dx.data(), ws.plane, ws.gemm);
        CHECK(xcnn_test::identical(dw, dw_ref));
        CHECK(xcnn_test::identical(db, db_ref));
        CHECK(xcnn_test::identical(dx, dx_ref));
    }
}

/// The lowered form's forward pass (with and without ReLU), dW, db and dX against the naive
/// loops; dW without dX and dX without dW equal them computed together; a mask equals a masked
/// dY, bit for bit.
template <class T>
void check_lowered()
{
    std::mt19937 rng(16);
    xcnn::detail::conv_workspace<T> ws;
    bool chunked = false;
    for (const auto& g : lowered_cases())
    {
        INFO(describe(g));
        chunked = chunked || xcnn::detail::lowered_chunk(g) < g.batch;
        const problem<T> p(g, rng);
        for (const bool relu : {false, true})
        {
            xt::xtensor<T, 4> y(g.output_shape());
            y.fill(T(7));
            xcnn::detail::lowered_forward(g, p.w.data(), p.b.data(), p.padded.data(), y.data(), relu, ws.lowered,
                                          ws.gemm);
            CHECK(max_scaled_error(y, relu ? relu_of(p.y) : p.y, p.y_magnitude) <= tolerance<T>());
        }
        xt::xtensor<T, 4> dw(p.w.shape()), dx(g.input_shape());
        xt::xtensor<T, 1> db(p.b.shape());
        dx.fill(T(7)); // garbage: the form must overwrite all of dX
        xcnn::detail::lowered_backward(g, p.w.data(), p.padded.data(), p.dy.data(), static_cast<const T*>(nullptr),
                                       dw.data(), db.data(), dx.data(), ws.lowered, ws.gemm);
        CHECK(max_scaled_error(dw, p.grads.dw, p.grads.dw_magnitude) <= tolerance<T>());
        CHECK(max_scaled_error(db, p.grads.db, p.grads.db_magnitude) <= tolerance<T>());
        CHECK(max_scaled_error(dx, p.grads.dx, p.grads.dx_magnitude) <= tolerance<T>());

        xt::xtensor<T, 4> dw_only(p.w.shape());
        xcnn::detail::lowered_backward(g, p.w.data(), p.padded.data(), p.dy.data(), static_cast<const T*>(nullptr),
                                       dw_only.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr), ws.lowered,
                                       ws.gemm);
        CHECK(xcnn_test::identical(dw_only, dw));
        xt::xtensor<T, 4> dx_only(g.input_shape());
        dx_only.fill(T(7));
        xcnn::detail::lowered_backward(g, p.w.data(), p.padded.data(), p.dy.data(), static_cast<const T*>(nullptr),
                                       static_cast<T*>(nullptr), static_cast<T*>(nullptr), dx_only.data(), ws.lowered,
                                       ws.gemm);
        CHECK(xcnn_test::identical(dx_only, dx));

        const auto mask = random_tensor<T, 4>(g.output_shape(), rng);
        xt::xtensor<T, 4> masked = p.dy;
        for (std::size_t i = 0; i < masked.size(); ++i)
        {
            masked.data()[i] = mask.data()[i] > 0 ? masked.data()[i] : T(0);
        }
        xt::xtensor<T, 4> dw_mask(p.w.shape()), dx_mask(g.input_shape());
        xt::xtensor<T, 1> db_mask(p.b.shape());
        xcnn::detail::lowered_backward(g, p.w.data(), p.padded.data(), masked.data(), static_cast<const T*>(nullptr),
                                       dw.data(), db.data(), dx.data(), ws.lowered, ws.gemm);
        xcnn::detail::lowered_backward(g, p.w.data(), p.padded.data(), p.dy.data(), mask.data(), dw_mask.data(),
                                       db_mask.data(), dx_mask.data(), ws.lowered, ws.gemm);
        CHECK(xcnn_test::identical(dw_mask, dw));
        CHECK(xcnn_test::identical(db_mask, db));
        CHECK(xcnn_test::identical(dx_mask, dx));
    }
    CHECK(chunked); // the cases reach the sum over chunks
}

} // namespace

TEST_CASE("conv forms: the lowered form matches the naive loops, with and without a mask", "[conv_forms]")
{
#if XSIMD_WITH_AVX512F
    // Not vacuous: some of the cases move whole planes in a vector (and others do not).
    const auto cases = lowered_cases();
    CHECK(std::any_of(cases.begin(), cases.end(),
                      [](const conv_geometry& g) { return xcnn::detail::lowered_planes_in_a_vector<float>(g); }));
    CHECK_FALSE(std::all_of(cases.begin(), cases.end(),
                            [](const conv_geometry& g) { return xcnn::detail::lowered_planes_in_a_vector<float>(g); }));
#endif
    check_lowered<float>();
    check_lowered<double>();
}

TEST_CASE("conv forms: the lowered form's dW, db and dX pass finite-difference checks", "[conv_forms][gradcheck]")
{
    std::mt19937 rng(17);
    auto dilated = geometry(2, 2, 3, 7, 8, {3, 2}, {2, 1}, {1, 2});
    dilated.dilation = {2, 1};
    for (const auto& g :
         {geometry(2, 3, 4, 7, 8, {3, 3}, {2, 2}, {1, 1}), geometry(2, 2, 3, 5, 6, {3, 3}, {1, 1}, {1, 1}),
          geometry(1, 2, 2, 9, 10, {3, 3}, {3, 3}, {1, 2}), dilated})
    {
        INFO(describe(g));
        xcnn::detail::conv_workspace<double> ws;
        auto x = random_tensor<double, 4>(g.input_shape(), rng);
        auto w = random_tensor<double, 4>({g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]}, rng);
        auto b = random_tensor<double, 1>({g.out_channels}, rng);
        const auto r = random_tensor<double, 4>(g.output_shape(), rng);
        xt::xtensor<double, 4> padded, y(g.output_shape());
        auto loss = [&]
        {
            xcnn::zero_pad2d_into(x, g.padding[0], g.padding[1], padded);
            xcnn::detail::lowered_forward(g, w.data(), b.data(), padded.data(), y.data(), false, ws.lowered, ws.gemm);
            double sum = 0;
            for (std::size_t i = 0; i < y.size(); ++i)
            {
                sum += y.data()[i] * r.data()[i];
            }
            return sum;
        };
        loss();
        xt::xtensor<double, 4> dw(w.shape()), dx(x.shape());
        xt::xtensor<double, 1> db(b.shape());
        xcnn::detail::lowered_backward(g, w.data(), padded.data(), r.data(), static_cast<const double*>(nullptr),
                                       dw.data(), db.data(), dx.data(), ws.lowered, ws.gemm);
        CHECK(xcnn_test::relative_error(dw.data(), xcnn_test::numeric_gradient(loss, w.data(), w.size()), w.size()) <
              1e-8);
        CHECK(xcnn_test::relative_error(db.data(), xcnn_test::numeric_gradient(loss, b.data(), b.size()), b.size()) <
              1e-8);
        CHECK(xcnn_test::relative_error(dx.data(), xcnn_test::numeric_gradient(loss, x.data(), x.size()), x.size()) <
              1e-8);
    }
}

/// The Winograd form's geometries: 3x3 at stride 1 with padding 0, 1 and 2, even and odd
/// output sizes (a half tile at the edge), planes of one tile and less than a vector of tiles,
/// rows of more than a vector of tiles, channels that are not multiples of the GEMM's blocks,
/// and a batch over several chunks; the same for 5x5 kernels with padding 0 to 4; dilations 2, 3
/// and (2, 1), on planes whose sizes and padding are and are not multiples of the dilation
/// (phases of unequal sizes), over several chunks of whole images' phases.
std::vector<conv_geometry> winograd_cases()
{
    const auto dilated = [](conv_geometry g, std::size_t dh, std::size_t dw)
    {
        g.dilation = {dh, dw};
        return g;
    };
    return {
        dilated(geometry(2, 3, 5, 8, 8, {3, 3}, {1, 1}, {2, 2}), 2, 2),
        dilated(geometry(3, 4, 6, 7, 9, {3, 3}, {1, 1}, {1, 1}), 2, 2),
        dilated(geometry(2, 5, 3, 10, 11, {3, 3}, {1, 1}, {3, 2}), 3, 3),
        dilated(geometry(2, 3, 4, 9, 8, {3, 3}, {1, 1}, {2, 1}), 2, 1),
        dilated(geometry(1, 3, 4, 6, 5, {3, 3}, {1, 1}, {0, 4}), 2, 2),
        dilated(geometry(2, 3, 5, 12, 13, {5, 5}, {1, 1}, {4, 3}), 2, 2),
        dilated(geometry(9, 4, 4, 33, 33, {3, 3}, {1, 1}, {2, 2}), 2, 2),
        dilated(geometry(2, 5, 130, 14, 14, {3, 3}, {1, 1}, {2, 2}), 2, 2),
        dilated(geometry(3, 6, 5, 16, 16, {3, 3}, {1, 1}, {2, 2}), 2, 2),
        geometry(2, 3, 5, 8, 8, {3, 3}, {1, 1}, {1, 1}),
        geometry(3, 4, 6, 7, 9, {3, 3}, {1, 1}, {1, 1}),
        geometry(2, 5, 3, 6, 5, {3, 3}, {1, 1}, {0, 0}),
        geometry(1, 2, 4, 4, 4, {3, 3}, {1, 1}, {2, 2}),
        geometry(2, 3, 2, 3, 3, {3, 3}, {1, 1}, {0, 0}),
        geometry(2, 17, 19, 4, 4, {3, 3}, {1, 1}, {1, 1}),
        geometry(1, 3, 4, 11, 70, {3, 3}, {1, 1}, {1, 1}),
        geometry(3, 2, 3, 1, 1, {3, 3}, {1, 1}, {1, 1}),
        geometry(9, 16, 40, 24, 24, {3, 3}, {1, 1}, {1, 1}),
        // Odd planes over chunks of 7 images and a last one of 2: a channel's phases, side by
        // side for the chunk's images, change their layout between the chunks.
        geometry(9, 4, 4, 33, 33, {3, 3}, {1, 1}, {1, 1}),
        // dW's packed GEMM (`packed_gemm_beats_nt`), within one chunk and summed over two.
        geometry(2, 5, 130, 6, 6, {3, 3}, {1, 1}, {1, 1}),
        geometry(4, 8, 130, 20, 20, {3, 3}, {1, 1}, {1, 1}),
        // F(2x2, 5x5).
        geometry(2, 3, 5, 8, 8, {5, 5}, {1, 1}, {2, 2}),
        geometry(3, 4, 6, 7, 9, {5, 5}, {1, 1}, {1, 3}),
        geometry(2, 5, 3, 6, 5, {5, 5}, {1, 1}, {0, 0}),
        geometry(1, 2, 4, 4, 4, {5, 5}, {1, 1}, {4, 4}),
        geometry(2, 3, 2, 5, 5, {5, 5}, {1, 1}, {0, 0}),
        geometry(2, 17, 19, 4, 4, {5, 5}, {1, 1}, {2, 2}),
        geometry(1, 3, 4, 11, 70, {5, 5}, {1, 1}, {2, 2}),
        geometry(9, 4, 4, 33, 33, {5, 5}, {1, 1}, {2, 2}),
        geometry(2, 5, 130, 6, 6, {5, 5}, {1, 1}, {2, 2}),
        geometry(4, 8, 130, 20, 20, {5, 5}, {1, 1}, {2, 2}),
    };
}

/// The bound on the Winograd form's dW: F(2x2, 5x5) sums products of tiles whose transforms
/// scale values by up to 25 and G^T then cancels most of them, so a float dW of a few tiles
/// (small planes, two images) keeps about 130 ulps of its largest value (1.6e-5 measured);
/// the 3x3 forms and every double stay within `tolerance`.
template <class T>
double winograd_weight_grad_tolerance(const conv_geometry& g)
{
    return sizeof(T) == 4 && g.kernel[0] == 5 ? 3e-5 : tolerance<T>();
}

/// The Winograd form's tiles, 2 x 2 and 4 x 4, each run on every case whatever
/// `winograd_tile_size` would choose; 5x5 kernels have 2 x 2 tiles only.
std::vector<std::size_t> winograd_tile_sizes(const conv_geometry& g)
{
    return g.kernel[0] == 3 ? std::vector<std::size_t>{2, 4} : std::vector<std::size_t>{2};
}

template <class T>
void check_winograd()
{
    std::mt19937 rng(19);
    xcnn::detail::conv_workspace<T> ws;
    bool chunked = false;
    for (const auto& g : winograd_cases())
    {
        const problem<T> p(g, rng);
        for (const std::size_t tile : winograd_tile_sizes(g))
        {
            INFO(describe(g) << ", tiles of " << tile);
            REQUIRE(xcnn::detail::winograd_applies(g));
            chunked = chunked || xcnn::detail::winograd_chunk(g, xcnn::detail::winograd_tiles(g, tile)) < g.batch;
            for (const bool relu : {false, true})
            {
                for (const bool bias : {false, true})
                {
                    INFO("relu " << relu << " bias " << bias);
                    xt::xtensor<T, 4> y(g.output_shape());
                    y.fill(T(7));
                    xcnn::detail::winograd_forward(g, p.w.data(), bias ? p.b.data() : static_cast<const T*>(nullptr),
                                                   p.padded.data(), y.data(), relu, ws.winograd, ws.gemm, tile);
                    xt::xtensor<double, 4> expected = p.y;
                    if (!bias)
                    {
                        for (std::size_t n = 0; n < g.batch; ++n)
                        {
                            for (std::size_t o = 0; o < g.out_channels; ++o)
                            {
                                xt::view(expected, n, o) -= static_cast<double>(p.b(o));
                            }
                        }
                    }
                    if (relu)
                    {
                        expected = relu_of(expected);
                    }
                    CHECK(max_scaled_error(y, expected, p.y_magnitude) <= tolerance<T>());
                }
            }
        }
    }
    CHECK(chunked); // the cases reach a batch split into chunks
}

TEST_CASE("conv forms: the Winograd form's forward pass matches the naive loops", "[conv_forms]")
{
    check_winograd<float>();
    check_winograd<double>();
}

template <class T>
void check_winograd_input_grad()
{
    std::mt19937 rng(23);
    xcnn::detail::conv_workspace<T> ws;
    for (const auto& g : winograd_cases())
    {
        const problem<T> p(g, rng);
        for (const std::size_t tile : winograd_tile_sizes(g))
        {
            INFO(describe(g) << ", tiles of " << tile);
            xt::xtensor<T, 4> dx(g.input_shape());
            dx.fill(T(7));
            xcnn::detail::winograd_input_grad(g, p.w.data(), p.dy.data(), static_cast<const T*>(nullptr), dx.data(),
                                              ws.winograd, ws.gemm, tile);
            CHECK(max_scaled_error(dx, p.grads.dx, p.grads.dx_magnitude) <= tolerance<T>());

            // A mask (a ReLU'd output) applied in the padding copy equals a masked dY, bit for bit.
            const auto mask = random_tensor<T, 4>(g.output_shape(), rng);
            xt::xtensor<T, 4> masked = p.dy;
            for (std::size_t i = 0; i < masked.size(); ++i)
            {
                masked.data()[i] = mask.data()[i] > T(0) ? masked.data()[i] : T(0);
            }
            xt::xtensor<T, 4> dx_masked(g.input_shape()), dx_fused(g.input_shape());
            xcnn::detail::winograd_input_grad(g, p.w.data(), masked.data(), static_cast<const T*>(nullptr),
                                              dx_masked.data(), ws.winograd, ws.gemm, tile);
            xcnn::detail::winograd_input_grad(g, p.w.data(), p.dy.data(), mask.data(), dx_fused.data(), ws.winograd,
                                              ws.gemm, tile);
            CHECK(xcnn_test::identical(dx_fused, dx_masked));
        }
    }
}

template <class T>
void check_winograd_weight_grad()
{
    std::mt19937 rng(29);
    xcnn::detail::conv_workspace<T> ws;
    for (const auto& g : winograd_cases())
    {
        const problem<T> p(g, rng);
        for (const std::size_t tile : winograd_tile_sizes(g))
        {
            INFO(describe(g) << ", tiles of " << tile);
            xt::xtensor<T, 4> dw(p.w.shape());
            xt::xtensor<T, 1> db(p.b.shape());
            dw.fill(T(7));
            xcnn::detail::winograd_weight_grad(g, p.padded.data(), p.dy.data(), static_cast<const T*>(nullptr),
                                               dw.data(), db.data(), ws.winograd, ws.gemm, tile);
            CHECK(max_scaled_error(dw, p.grads.dw, p.grads.dw_magnitude) <= winograd_weight_grad_tolerance<T>(g));
            CHECK(max_scaled_error(db, p.grads.db, p.grads.db_magnitude) <= tolerance<T>());

            const auto mask = random_tensor<T, 4>(g.output_shape(), rng);
            xt::xtensor<T, 4> masked = p.dy;
            for (std::size_t i = 0; i < masked.size(); ++i)
            {
                masked.data()[i] = mask.data()[i] > T(0) ? masked.data()[i] : T(0);
            }
            xt::xtensor<T, 4> dw_masked(p.w.shape()), dw_fused(p.w.shape());
            xt::xtensor<T, 1> db_masked(p.b.shape()), db_fused(p.b.shape());
            xcnn::detail::winograd_weight_grad(g, p.padded.data(), masked.data(), static_cast<const T*>(nullptr),
                                               dw_masked.data(), db_masked.data(), ws.winograd, ws.gemm, tile);
            xcnn::detail::winograd_weight_grad(g, p.padded.data(), p.dy.data(), mask.data(), dw_fused.data(),
                                               db_fused.data(), ws.winograd, ws.gemm, tile);
            CHECK(xcnn_test::identical(dw_fused, dw_masked));
            CHECK(xcnn_test::identical(db_fused, db_masked));
        }
    }
}

TEST_CASE("conv forms: the Winograd form's dW and db match the naive loops, with and without a mask", "[conv_forms]")
{
    check_winograd_weight_grad<float>();
    check_winograd_weight_grad<double>();
}

TEST_CASE("conv forms: the Winograd form's dX matches the naive loops, with and without a mask", "[conv_forms]")
{
    check_winograd_input_grad<float>();
    check_winograd_input_grad<double>();
}

TEST_CASE("conv forms: the Winograd form gives the same bits at 1, 2 and 3 threads", "[conv_forms]")
{
    // Threads run whole images and whole parts of dW's sum when there are enough of them
    // (`winograd_whole_units`), and share each chunk's transforms and products otherwise; dW's
    // parts are fixed by the geometry, so every split gives the same bits.
    std::mt19937 rng(31);
    bool whole_parts = false;
    for (const auto& g : winograd_cases())
    {
        const problem<float> p(g, rng);
        for (const std::size_t tile : winograd_tile_sizes(g))
        {
            INFO(describe(g) << ", tiles of " << tile);
            whole_parts =
                whole_parts || xcnn::detail::winograd_weight_grad_parts(g, xcnn::detail::winograd_tiles(g, tile)) > 1;
            std::vector<xt::xtensor<float, 4>> results;
            for (const std::size_t threads : {1, 2, 3})
            {
                xcnn::set_num_threads(threads);
                xcnn::detail::conv_workspace<float> ws;
                xt::xtensor<float, 4> y(g.output_shape()), dx(g.input_shape()), dw(p.w.shape());
                xt::xtensor<float, 1> db(p.b.shape());
                xcnn::detail::winograd_forward(g, p.w.data(), p.b.data(), p.padded.data(), y.data(), false, ws.winograd,
                                               ws.gemm, tile);
                xcnn::detail::winograd_input_grad(g, p.w.data(), p.dy.data(), static_cast<const float*>(nullptr),
                                                  dx.data(), ws.winograd, ws.gemm, tile);
                xcnn::detail::winograd_weight_grad(g, p.padded.data(), p.dy.data(), static_cast<const float*>(nullptr),
                                                   dw.data(), db.data(), ws.winograd, ws.gemm, tile);
                CHECK(max_scaled_error(dw, p.grads.dw, p.grads.dw_magnitude) <=
                      winograd_weight_grad_tolerance<float>(g));
                results.push_back(y);
                results.push_back(dx);
                results.push_back(dw);
            }
            xcnn::set_num_threads(1);
            for (std::size_t i = 3; i < results.size(); ++i)
            {
                INFO("threads " << i / 3 + 1 << ", result " << i % 3 << " (forward, dX, dW)");
                CHECK(xcnn_test::identical(results[i], results[i % 3]));
            }
        }
    }
    CHECK(whole_parts); // the cases reach a dW summed in several parts
}

TEST_CASE("conv forms: the Winograd form takes 4 x 4 tiles where they save 3/8 of the products over a chunk's tiles",
          "[conv_forms]")
{
    using xcnn::detail::winograd_tile_size;
    using xcnn::detail::winograd_weight_grad_tile_size;
    // Output planes of 3 to 28 (4 x 4 tiles: 36 products per 16 outputs against 16 per 4) in a
    // batch of 256; 14 rounds up to 16 (0.73 of the products), 6 and 10 to as many or nearly as
    // many products; 2 is one tile either way.
    for (const std::size_t side : {3, 4, 7, 8, 12, 16, 28})
    {
        INFO("output " << side);
        CHECK(winograd_tile_size(geometry(256, 32, 32, side, side, {3, 3}, {1, 1}, {1, 1})) == 4);
    }
    for (const std::size_t side : {1, 2, 5, 6, 10, 14})
    {
        INFO("output " << side);
        CHECK(winograd_tile_size(geometry(256, 32, 32, side, side, {3, 3}, {1, 1}, {1, 1})) == 2);
    }
    // A wide plane of 2 rows: 1 x 18 tiles of 2 x 2 (288 products) against 1 x 9 of 4 x 4 (324).
    CHECK(winograd_tile_size(geometry(256, 32, 32, 2, 36, {3, 3}, {1, 1}, {1, 1})) == 2);
    // Fewer 4 x 4 tiles in the batch than a chunk's 256: 15 images of 16 x 16 are 240, 16 are 256.
    CHECK(winograd_tile_size(geometry(1, 64, 64, 16, 16, {3, 3}, {1, 1}, {1, 1})) == 2);
    CHECK(winograd_tile_size(geometry(15, 64, 64, 16, 16, {3, 3}, {1, 1}, {1, 1})) == 2);
    CHECK(winograd_tile_size(geometry(16, 64, 64, 16, 16, {3, 3}, {1, 1}, {1, 1})) == 4);
    // dW takes them only where its sum splits into parts: 64 images of 8 x 8 make one chunk (2 x 2
    // tiles then), 64 of 28 x 28 eleven chunks in 8 parts.
    CHECK(winograd_tile_size(geometry(64, 128, 128, 8, 8, {3, 3}, {1, 1}, {1, 1})) == 4);
    CHECK(winograd_weight_grad_tile_size(geometry(64, 128, 128, 8, 8, {3, 3}, {1, 1}, {1, 1})) == 2);
    CHECK(winograd_weight_grad_tile_size(geometry(64, 32, 32, 28, 28, {3, 3}, {1, 1}, {1, 1})) == 4);
    CHECK(winograd_weight_grad_tile_size(geometry(64, 32, 32, 14, 14, {3, 3}, {1, 1}, {1, 1})) == 2);
}

TEST_CASE("conv forms: forward of the window view and of the plane form match the naive loops", "[conv_forms]")
{
    check_forward_forms<float>();
    check_forward_forms<double>();
}

TEST_CASE("conv forms: dW and db of the window view and of the plane form match the naive loops", "[conv_forms]")
{
    check_weight_grad_forms<float>();
    check_weight_grad_forms<double>();
}

TEST_CASE("conv forms: dX of the strided col2im, the window view and the plane form match the naive loops",
          "[conv_forms]")
{
    check_input_grad_forms<float>();
    check_input_grad_forms<double>();
}

TEST_CASE("conv forms: a ReLU mask fused into the copies equals a masked dY, bit for bit", "[conv_forms]")
{
    check_masks<float>();
    check_masks<double>();
}

TEST_CASE("conv forms: the plane form's dX refuses a dY spread for another geometry", "[conv_forms]")
{
    std::mt19937 rng(15);
    xcnn::detail::conv_workspace<float> ws;
    const auto g = geometry(2, 3, 4, 6, 7, {3, 3}, {1, 1}, {1, 1});
    auto other = g;
    other.batch = 1;
    const auto dy = random_tensor<float, 4>(other.output_shape(), rng);
    const auto w = random_tensor<float, 4>({4, 3, 3, 3}, rng);
    xt::xtensor<float, 4> dx(g.input_shape());
    const auto spread =
        xcnn::detail::spread_output_grad(other, dy.data(), static_cast<const float*>(nullptr), ws.plane);
    CHECK_THROWS_AS(xcnn::detail::plane_input_grad(g, w.data(), spread, dx.data(), ws.plane, ws.gemm), xcnn::error);
}

namespace
{

/// The direct form's geometries: those of `lowered_cases` (strides, dilations, small planes, a
/// kernel larger than the plane) and tiles' edges: output channels filling one vector, two,
/// and a partial last block of two vectors; pixel and tap counts that are not whole tiles;
/// 1x1 and 1 x K kernels; dW summed over several blocks of pixels.
std::vector<conv_geometry> direct_cases()
{
    auto cases = lowered_cases();
    const std::vector<conv_geometry> more = {
        geometry(3, 5, 1, 9, 8, {3, 3}, {2, 2}, {1, 1}),    geometry(2, 4, 16, 7, 7, {3, 3}, {1, 1}, {1, 1}),
        geometry(2, 6, 17, 9, 11, {5, 5}, {1, 1}, {2, 2}),  geometry(2, 7, 40, 14, 14, {3, 3}, {2, 2}, {1, 1}),
        geometry(1, 3, 33, 13, 13, {7, 7}, {2, 2}, {3, 3}), geometry(2, 9, 24, 6, 5, {1, 1}, {2, 2}, {0, 0}),
        geometry(2, 4, 20, 8, 9, {1, 3}, {1, 2}, {0, 1}),   geometry(3, 8, 64, 24, 22, {3, 3}, {2, 2}, {1, 0}),
    };
    cases.insert(cases.end(), more.begin(), more.end());
    return cases;
}

/// The direct form's forward pass (with and without bias and ReLU), dW, db and dX against the
/// naive loops; a mask equals a masked dY, bit for bit; 1, 2 and 3 threads give the same bits.
template <class T>
void check_direct()
{
    std::mt19937 rng(41);
    bool blocks_of_pixels = false;
    // Kept across the geometries: its tables must follow each new one.
    xcnn::detail::direct_workspace<T> shared;
    for (const auto& g : direct_cases())
    {
        INFO(describe(g));
        blocks_of_pixels = blocks_of_pixels || g.batch * g.out_h() * g.out_w() > xcnn::detail::direct_pixel_block;
        const problem<T> p(g, rng);
        std::vector<xt::xtensor<T, 4>> results;
        for (const std::size_t threads : {1, 2, 3})
        {
            xcnn::set_num_threads(threads);
            xcnn::detail::conv_workspace<T> ws;
            for (const bool relu : {false, true})
            {
                xt::xtensor<T, 4> y(g.output_shape());
                y.fill(T(7)); // garbage: the form must overwrite all of y
                xcnn::detail::direct_forward(g, p.w.data(), p.b.data(), p.padded.data(), y.data(), relu, ws.direct);
                CHECK(max_scaled_error(y, relu ? relu_of(p.y) : p.y, p.y_magnitude) <= tolerance<T>());
                results.push_back(y);
            }
            // Without a bias: the naive output less the bias.
            xt::xtensor<T, 4> unbiased(g.output_shape());
            xcnn::detail::direct_forward(g, p.w.data(), static_cast<const T*>(nullptr), p.padded.data(),
                                         unbiased.data(), false, ws.direct);
            xt::xtensor<double, 4> expected = p.y;
            for (std::size_t i = 0; i < expected.size(); ++i)
            {
                expected.data()[i] -= double(p.b(i / (g.out_h() * g.out_w()) % g.out_channels));
            }
            CHECK(max_scaled_error(unbiased, expected, p.y_magnitude) <= tolerance<T>());

            xt::xtensor<T, 4> dw(p.w.shape());
            xt::xtensor<T, 1> db(p.b.shape());
            xcnn::detail::direct_weight_grad(g, p.padded.data(), p.dy.data(), static_cast<const T*>(nullptr), dw.data(),
                                             db.data(), ws.direct);
            CHECK(max_scaled_error(dw, p.grads.dw, p.grads.dw_magnitude) <= tolerance<T>());
            CHECK(max_scaled_error(db, p.grads.db, p.grads.db_magnitude) <= tolerance<T>());
            results.push_back(dw);

            const auto mask = random_tensor<T, 4>(g.output_shape(), rng);
            xt::xtensor<T, 4> masked = p.dy;
            for (std::size_t i = 0; i < masked.size(); ++i)
            {
                masked.data()[i] = mask.data()[i] > 0 ? masked.data()[i] : T(0);
            }
            xt::xtensor<T, 4> dw_mask(p.w.shape()), dw_masked(p.w.shape());
            xt::xtensor<T, 1> db_mask(p.b.shape()), db_masked(p.b.shape());
            xcnn::detail::direct_weight_grad(g, p.padded.data(), p.dy.data(), mask.data(), dw_mask.data(),
                                             db_mask.data(), ws.direct);
            xcnn::detail::direct_weight_grad(g, p.padded.data(), masked.data(), static_cast<const T*>(nullptr),
                                             dw_masked.data(), db_masked.data(), ws.direct);
            CHECK(xcnn_test::identical(dw_mask, dw_masked));
            CHECK(xcnn_test::identical(db_mask, db_masked));

            xt::xtensor<T, 4> dx(g.input_shape()), dx_mask(g.input_shape()), dx_masked(g.input_shape());
            dx.fill(T(7)); // garbage: the form must overwrite all of dX
            xcnn::detail::direct_input_grad(g, p.w.data(), p.dy.data(), static_cast<const T*>(nullptr), dx.data(),
                                            ws.direct);
            CHECK(max_scaled_error(dx, p.grads.dx, p.grads.dx_magnitude) <= tolerance<T>());
            results.push_back(dx);
            xcnn::detail::direct_input_grad(g, p.w.data(), p.dy.data(), mask.data(), dx_mask.data(), ws.direct);
            xcnn::detail::direct_input_grad(g, p.w.data(), masked.data(), static_cast<const T*>(nullptr),
                                            dx_masked.data(), ws.direct);
            CHECK(xcnn_test::identical(dx_mask, dx_masked));
        }
        xcnn::set_num_threads(1);
        {
            xt::xtensor<T, 4> y(g.output_shape()), dx(g.input_shape()), dw(p.w.shape());
            xt::xtensor<T, 1> db(p.b.shape());
            xcnn::detail::direct_forward(g, p.w.data(), p.b.data(), p.padded.data(), y.data(), false, shared);
            xcnn::detail::direct_weight_grad(g, p.padded.data(), p.dy.data(), static_cast<const T*>(nullptr), dw.data(),
                                             db.data(), shared);
            xcnn::detail::direct_input_grad(g, p.w.data(), p.dy.data(), static_cast<const T*>(nullptr), dx.data(),
                                            shared);
            CHECK(xcnn_test::identical(y, results[0]));
            CHECK(xcnn_test::identical(dw, results[2]));
            CHECK(xcnn_test::identical(dx, results[3]));
        }
        const std::size_t per_run = results.size() / 3;
        for (std::size_t i = per_run; i < results.size(); ++i)
        {
            INFO("threads " << i / per_run + 1 << ", result " << i % per_run << " (forward, ReLU'd, dW, dX)");
            CHECK(xcnn_test::identical(results[i], results[i % per_run]));
        }
    }
    CHECK(blocks_of_pixels); // the cases reach dW summed over several blocks of pixels
}

} // namespace

TEST_CASE("conv forms: the direct form matches the naive loops, at 1, 2 and 3 threads", "[conv_forms]")
{
    check_direct<float>();
    check_direct<double>();
}

TEST_CASE("conv forms: the direct form's dW, db and dX pass finite-difference checks", "[conv_forms][gradcheck]")
{
    std::mt19937 rng(43);
    auto g = geometry(2, 5, 19, 7, 8, {3, 3}, {2, 2}, {1, 1});
    g.dilation = {1, 2};
    const auto x = random_tensor<double, 4>(g.input_shape(), rng);
    const auto w = random_tensor<double, 4>({g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]}, rng);
    const auto b = random_tensor<double, 1>({g.out_channels}, rng);
    const auto dy = random_tensor<double, 4>(g.output_shape(), rng);
    xcnn::detail::direct_workspace<double> ws;
    xt::xtensor<double, 4> padded;
    xcnn::zero_pad2d_into(x, g.padding[0], g.padding[1], padded);
    // L = sum(dY * y(W, b)): dL/dW and dL/db are the form's dW and db.
    const auto loss = [&](const xt::xtensor<double, 4>& weight, const xt::xtensor<double, 1>& bias)
    {
        xt::xtensor<double, 4> y(g.output_shape());
        xcnn::detail::direct_forward(g, weight.data(), bias.data(), padded.data(), y.data(), false, ws);
        double sum = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
        {
            sum += y.data()[i] * dy.data()[i];
        }
        return sum;
    };
    xt::xtensor<double, 4> dw(w.shape());
    xt::xtensor<double, 1> db(b.shape());
    xcnn::detail::direct_weight_grad(g, padded.data(), dy.data(), static_cast<const double*>(nullptr), dw.data(),
                                     db.data(), ws);
    const double h = 1e-6;
    for (std::size_t i = 0; i < w.size(); ++i)
    {
        auto plus = w, minus = w;
        plus.data()[i] += h;
        minus.data()[i] -= h;
        CHECK(std::abs((loss(plus, b) - loss(minus, b)) / (2 * h) - dw.data()[i]) <= 1e-6);
    }
    for (std::size_t o = 0; o < b.size(); ++o)
    {
        auto plus = b, minus = b;
        plus(o) += h;
        minus(o) -= h;
        CHECK(std::abs((loss(w, plus) - loss(w, minus)) / (2 * h) - db(o)) <= 1e-6);
    }
    // dL/dX through the padding: the padded input moved at (y + PH, x + PW).
    xt::xtensor<double, 4> dx(g.input_shape());
    xcnn::detail::direct_input_grad(g, w.data(), dy.data(), static_cast<const double*>(nullptr), dx.data(), ws);
    const std::size_t hp = g.padded_h(), wp = g.padded_w();
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        const std::size_t plane = i / (g.input[0] * g.input[1]), y = i / g.input[1] % g.input[0], col = i % g.input[1];
        const std::size_t at = plane * hp * wp + (y + g.padding[0]) * wp + col + g.padding[1];
        const double saved = padded.data()[at];
        padded.data()[at] = saved + h;
        const double up = loss(w, b);
        padded.data()[at] = saved - h;
        const double down = loss(w, b);
        padded.data()[at] = saved;
        CHECK(std::abs((up - down) / (2 * h) - dx.data()[i]) <= 1e-6);
    }
}

TEST_CASE("conv forms: the selection rules", "[conv_forms]")
{
    constexpr std::size_t nr = xcnn::detail::gemm_blocking<float>::nr;
    // Stride 1: the plane form unless the output rows are whole GEMM panels.
    const auto narrow = geometry(1, 1, 1, 8, nr + 1, {3, 3}, {1, 1}, {0, 0});
    const auto panel_wide = geometry(1, 1, 1, 8, 2 * nr + 2, {3, 3}, {1, 1}, {0, 0});
    const auto strided = geometry(1, 1, 1, 8, 2 * nr + 2, {3, 3}, {2, 2}, {0, 0});
    const auto strided_rows = geometry(1, 1, 1, 8, nr, {1, 1}, {2, 1}, {0, 0});
    REQUIRE(narrow.out_w() == nr - 1);
    REQUIRE(panel_wide.out_w() == 2 * nr);
    CHECK(xcnn::detail::choose_forward_form<float>(narrow) == conv_form::plane);
    CHECK(xcnn::detail::choose_forward_form<float>(panel_wide) == conv_form::window_view);
    CHECK(xcnn::detail::choose_forward_form<float>(strided) == conv_form::window_view);
    CHECK(xcnn::detail::choose_forward_form<float>(strided_rows) == conv_form::window_view);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(narrow) == conv_form::plane);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(panel_wide) == conv_form::plane);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(strided) == conv_form::window_view);
    CHECK(xcnn::detail::choose_input_grad_form<float>(narrow) == conv_form::plane);
    CHECK(xcnn::detail::choose_input_grad_form<float>(panel_wide) == conv_form::window_view);
    CHECK(xcnn::detail::choose_input_grad_form<float>(strided) == conv_form::strided_col2im);
    CHECK(xcnn::detail::choose_input_grad_form<float>(strided_rows) == conv_form::strided_col2im);

    // The lowered form: planes so small that the plane form computes twice the useful outputs
    // (dW and dX; the forward pass where the direct form's sums are too short); a stride above
    // 1 with 32 output channels and 1024 output pixels or more (dX, and dW where the direct form
    // does not run it); a strided stem of one channel (forward only). Not for a 1x1 kernel at
    // stride 1, nor for few output pixels.
    const auto tiny = geometry(256, 8, 32, 2, 2, {3, 3}, {1, 1}, {1, 1});
    const auto tiny_short = geometry(256, 4, 32, 2, 2, {3, 3}, {1, 1}, {1, 1});
    const auto strided_wide = geometry(16, 8, 32, 16, 16, {3, 3}, {2, 2}, {1, 1});
    const auto strided_short = geometry(16, 4, 32, 16, 16, {3, 3}, {2, 2}, {1, 1});
    const auto few_pixels = geometry(1, 8, 32, 16, 16, {3, 3}, {2, 2}, {1, 1});
    const auto one_by_one = geometry(256, 8, 32, 2, 2, {1, 1}, {1, 1}, {0, 0});
    const auto stem = geometry(2, 3, 8, 20, 20, {7, 7}, {2, 2}, {3, 3});
    const auto gray_stem = geometry(2, 1, 8, 20, 20, {7, 7}, {2, 2}, {3, 3});
    CHECK(xcnn::detail::choose_forward_form<float>(tiny_short) == conv_form::lowered);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(tiny) == conv_form::lowered);
    CHECK(xcnn::detail::choose_input_grad_form<float>(tiny) == conv_form::lowered);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(strided_short) == conv_form::lowered);
    CHECK(xcnn::detail::choose_input_grad_form<float>(strided_wide) == conv_form::lowered);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(few_pixels) == conv_form::window_view);
    CHECK(xcnn::detail::choose_input_grad_form<float>(few_pixels) == conv_form::strided_col2im);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(one_by_one) == conv_form::plane);
    CHECK(xcnn::detail::choose_forward_form<float>(gray_stem) == conv_form::lowered);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(stem) == conv_form::window_view);

    // The direct form: sums of 64 terms or more over a kernel of more than one tap, at a stride
    // above 1 (forward from 128 output pixels, dW from 256) or, forward only, on planes where the
    // plane form computes 1.3 times the useful outputs or more. Not at stride 1 on larger planes,
    // for 1x1 kernels, short sums or few pixels, nor where the Winograd form runs.
    CHECK(xcnn::detail::choose_forward_form<float>(strided_wide) == conv_form::direct);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(strided_wide) == conv_form::direct);
    CHECK(xcnn::detail::choose_forward_form<float>(stem) == conv_form::direct);
    CHECK(xcnn::detail::choose_forward_form<float>(tiny) == conv_form::direct);
    const auto lenet_second = geometry(64, 6, 16, 14, 14, {5, 5}, {1, 1}, {0, 0});
    const auto resnet_down = geometry(64, 32, 64, 14, 14, {3, 3}, {2, 2}, {1, 1});
    CHECK(xcnn::detail::choose_forward_form<float>(lenet_second) == conv_form::direct);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(lenet_second) == conv_form::plane);
    CHECK(xcnn::detail::choose_forward_form<float>(resnet_down) == conv_form::direct);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(resnet_down) == conv_form::direct);
    CHECK(xcnn::detail::choose_input_grad_form<float>(resnet_down) == conv_form::direct);
    CHECK(xcnn::detail::choose_input_grad_form<float>(tiny) == conv_form::lowered); // 8 input channels
    CHECK(xcnn::detail::choose_input_grad_form<float>(geometry(64, 16, 16, 4, 4, {3, 3}, {1, 1}, {1, 1})) ==
          conv_form::direct);
    CHECK(xcnn::detail::choose_input_grad_form<float>(geometry(64, 16, 16, 28, 28, {3, 3}, {1, 1}, {1, 1})) ==
          conv_form::plane);
    CHECK(xcnn::detail::choose_input_grad_form<float>(geometry(64, 3, 64, 56, 56, {7, 7}, {2, 2}, {3, 3})) !=
          conv_form::direct);
    for (const auto& g : {geometry(64, 16, 16, 28, 28, {3, 3}, {1, 1}, {1, 1}), few_pixels, strided_short,
                          geometry(64, 64, 128, 16, 16, {1, 1}, {2, 2}, {0, 0}),
                          geometry(64, 64, 64, 8, 8, {3, 3}, {1, 1}, {1, 1}), tiny_short})
    {
        INFO(describe(g));
        CHECK(xcnn::detail::choose_forward_form<float>(g) != conv_form::direct);
        CHECK(xcnn::detail::choose_weight_grad_form<float>(g) != conv_form::direct);
    }

    // The Winograd form: 3x3 or 5x5 at stride 1 with 32 channels or more on both sides and 64
    // tiles or more in the batch, whatever the plane size or padding, dilated where C_in C_out
    // is 2048 or more; not for 16 channels, a single small image, a stem's few input channels, a
    // stride, a dilated 32 -> 32 layer or another kernel size.
    auto dilated = geometry(64, 64, 64, 14, 14, {3, 3}, {1, 1}, {2, 2});
    dilated.dilation = {2, 2};
    auto dilated_narrow = geometry(64, 32, 32, 28, 28, {3, 3}, {1, 1}, {2, 2});
    dilated_narrow.dilation = {2, 2};
    auto dilated_wide = geometry(64, 32, 64, 28, 28, {3, 3}, {1, 1}, {3, 3});
    dilated_wide.dilation = {3, 3};
    for (const auto& g :
         {geometry(64, 64, 64, 8, 8, {3, 3}, {1, 1}, {1, 1}), geometry(1, 32, 32, 40, 40, {3, 3}, {1, 1}, {0, 0}),
          geometry(64, 256, 256, 4, 4, {3, 3}, {1, 1}, {1, 1}), geometry(64, 32, 32, 16, 16, {5, 5}, {1, 1}, {2, 2}),
          dilated, dilated_wide})
    {
        CHECK(xcnn::detail::choose_forward_form<float>(g) == conv_form::winograd);
    }
    // dX too, except on planes of a few tiles (4 x 4: one vector of transforms for 4 tiles).
    CHECK(xcnn::detail::choose_input_grad_form<float>(geometry(64, 64, 64, 8, 8, {3, 3}, {1, 1}, {1, 1})) ==
          conv_form::winograd);
    CHECK(xcnn::detail::choose_input_grad_form<float>(geometry(1, 32, 32, 40, 40, {3, 3}, {1, 1}, {0, 0})) ==
          conv_form::winograd);
    CHECK(xcnn::detail::choose_input_grad_form<float>(geometry(64, 256, 256, 4, 4, {3, 3}, {1, 1}, {1, 1})) ==
          conv_form::direct);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(geometry(64, 64, 64, 8, 8, {3, 3}, {1, 1}, {1, 1})) ==
          conv_form::winograd);
    CHECK(xcnn::detail::choose_weight_grad_form<float>(geometry(64, 256, 256, 4, 4, {3, 3}, {1, 1}, {1, 1})) ==
          conv_form::lowered);
    for (const auto& g :
         {geometry(64, 3, 64, 32, 32, {3, 3}, {1, 1}, {1, 1}), geometry(64, 64, 8, 16, 16, {3, 3}, {1, 1}, {1, 1}),
          geometry(64, 16, 16, 28, 28, {3, 3}, {1, 1}, {1, 1}), geometry(1, 64, 64, 7, 7, {3, 3}, {1, 1}, {1, 1}),
          geometry(64, 64, 64, 16, 16, {3, 3}, {2, 2}, {1, 1}), geometry(64, 6, 16, 14, 14, {5, 5}, {1, 1}, {0, 0}),
          geometry(64, 64, 64, 16, 16, {7, 7}, {1, 1}, {3, 3}), geometry(64, 64, 64, 16, 16, {3, 5}, {1, 1}, {1, 2}),
          dilated_narrow})
    {
        CHECK(xcnn::detail::choose_forward_form<float>(g) != conv_form::winograd);
    }
}
