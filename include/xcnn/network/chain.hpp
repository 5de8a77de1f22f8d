/// @file
/// What a chain of layers does the same way whether its layers are fixed at compile time
/// (`Sequential`) or at run time (`Network`): the fusion plan, the naming of the layers' handles,
/// output shapes, the summary table, and `predict` of a single sample.
#ifndef XCNN_NETWORK_CHAIN_HPP
#define XCNN_NETWORK_CHAIN_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <iomanip>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/generator.hpp"
#include "../core/xtensor_shim.hpp"
#include "../layers/layer.hpp"

namespace xcnn
{
namespace detail
{

/// How a step of a chain runs the layer it starts at.
enum class step_kind
{
    single,          ///< the layer alone
    with_activation, ///< the layer applies the next one, an activation, in its own output pass
    rows_into_next,  ///< the layer reshapes to rows, the next reads its input in place
    absorbed         ///< run by the step of the layer before it
};

/// The steps of a chain from what each pair of neighbours can do as one step (`pairs[i]` for
/// layers i and i + 1; the last entry is ignored): left to right, a layer and its neighbour form
/// one step when they can. `Kinds` is a `std::array` (at compile time) or a `std::vector`.
template <class Kinds>
constexpr Kinds plan_steps(Kinds pairs)
{
    Kinds plan = pairs;
    const std::size_t n = pairs.size();
    for (std::size_t i = 0; i < n; ++i)
    {
        const bool fused = i + 1 < n && pairs[i] != step_kind::single;
        plan[i] = fused ? pairs[i] : step_kind::single;
        if (fused)
        {
            plan[++i] = step_kind::absorbed;
        }
    }
    return plan;
}

/// Appends `handles` (a layer's parameters, buffers or generators) to `all`, named
/// "<index>.<name>", with `layer` as their layer unless a nested chain named one already.
template <class Handle>
void add_indexed(std::vector<Handle>& all, std::vector<Handle> handles, std::size_t index, const std::string& layer)
{
    for (auto& h : handles)
    {
        h.add_prefix(std::to_string(index) + ".");
        if constexpr (!std::is_same<Handle, generator_handle>::value)
        {
            if (h.layer().empty())
            {
                h.set_layer(layer);
            }
        }
        (void)layer;
        all.push_back(std::move(h));
    }
}

/// The output shape of `layer` for `shape`, a `shape_error` prefixed by "<kind> layer <index>: ".
template <class Layer>
std::vector<std::size_t> layer_output_shape(const Layer& layer, const std::vector<std::size_t>& shape, const char* kind,
                                            std::size_t index)
{
    try
    {
        return layer.output_shape(shape);
    }
    catch (const shape_error& e)
    {
        throw shape_error(concat(kind, " layer ", index, ": ", e.what()));
    }
}

/// The output shape of a chain (`net.for_each_layer`) for an input of `input_shape`.
template <class Net>
std::vector<std::size_t> chain_output_shape(const Net& net, const char* kind,
                                            const std::vector<std::size_t>& input_shape)
{
    std::vector<std::size_t> shape = input_shape;
    net.for_each_layer([&](std::size_t index, const auto& layer)
                       { shape = layer_output_shape(layer, shape, kind, index); });
    return shape;
}

/// "<kind>(<name of layer 0>, <name of layer 1>, ...)".
template <class Net>
std::string chain_name(const Net& net, const char* kind)
{
    std::string out = std::string(kind) + "(";
    net.for_each_layer([&](std::size_t index, const auto& layer) { out += (index ? ", " : "") + layer.name(); });
    return out + ")";
}

/// The table `summary` prints: each layer with its output shape and parameter count.
template <class Net>
std::string chain_summary(const Net& net, const char* kind, const std::vector<std::size_t>& input_shape)
{
    struct row
    {
        std::string index, layer, shape, params;
    };
    std::vector<row> rows{{"", "Input", shape_to_string(input_shape), ""}};
    std::vector<std::size_t> shape = input_shape;
    net.for_each_layer(
        [&](std::size_t index, const auto& layer)
        {
            shape = layer_output_shape(layer, shape, kind, index);
            rows.push_back(
                {std::to_string(index), layer.name(), shape_to_string(shape), std::to_string(layer.num_parameters())});
        });
    const row header{"#", "Layer", "Output shape", "Params"};
    std::size_t w_index = header.index.size(), w_layer = header.layer.size(), w_shape = header.shape.size(),
                w_params = header.params.size();
    for (const auto& r : rows)
    {
        w_index = std::max(w_index, r.index.size());
        w_layer = std::max(w_layer, r.layer.size());
        w_shape = std::max(w_shape, r.shape.size());
        w_params = std::max(w_params, r.params.size());
    }
    std::ostringstream out;
    auto print = [&](const row& r)
    {
        out << std::left << std::setw(int(w_index)) << r.index << "  " << std::setw(int(w_layer)) << r.layer << "  "
            << std::setw(int(w_shape)) << r.shape << "  " << std::right << std::setw(int(w_params)) << r.params << '\n';
    };
    const std::string rule(w_index + w_layer + w_shape + w_params + 6, '-');
    out << rule << '\n';
    print(header);
    out << rule << '\n';
    for (const auto& r : rows)
    {
        print(r);
    }
    out << rule << '\n' << "Total parameters: " << net.num_parameters() << '\n';
    return out.str();
}

/// Whether `X` is one sample of a network taking rank `InputRank`: an xtensor expression of
/// fixed rank `InputRank - 1`.
template <class X, int InputRank, class = void>
struct is_unbatched : std::false_type
{
};
template <class X, int InputRank>
struct is_unbatched<X, InputRank, std::enable_if_t<xt::is_xexpression<X>::value>>
    : std::bool_constant<(InputRank >= 2 && xt::get_rank<X>::value == static_cast<std::size_t>(InputRank - 1))>
{
};

/// The batch of one and the output without its batch axis of `predict` on a single sample;
/// nothing for networks that take or return fewer than two axes.
template <class T, int InputRank, int OutputRank, class = void>
struct unbatched_buffers
{
};
template <class T, int InputRank, int OutputRank>
struct unbatched_buffers<T, InputRank, OutputRank, std::enable_if_t<(InputRank >= 2 && OutputRank >= 2)>>
{
    /// A sample without its batch axis, as the caller passes it.
    using sample_type = xt::xtensor<T, static_cast<std::size_t>(InputRank - 1)>;
    /// The sample as a batch of one.
    xt::xtensor<T, static_cast<std::size_t>(InputRank)> input;
    /// The output without its batch axis.
    xt::xtensor<T, static_cast<std::size_t>(OutputRank - 1)> output;

    /// `predict(batch)` of the sample `x` as a batch of one, its output without the batch axis
    /// (kept here, valid until the next call).
    template <class X, class Predict>
    const auto& run(const X& x, Predict&& predict)
    {
        std::array<std::size_t, static_cast<std::size_t>(InputRank)> shape{};
        shape[0] = 1;
        std::copy(x.shape().begin(), x.shape().end(), shape.begin() + 1);
        ensure_shape(input, shape);
        if constexpr (std::is_same<X, sample_type>::value)
        {
            std::copy(x.data(), x.data() + x.size(), input.data());
        }
        else
        {
            std::copy(x.begin(), x.end(), input.begin());
        }
        const auto& y = predict(input);
        std::array<std::size_t, static_cast<std::size_t>(OutputRank - 1)> out_shape{};
        std::copy(y.shape().begin() + 1, y.shape().end(), out_shape.begin());
        ensure_shape(output, out_shape);
        std::copy(y.data(), y.data() + y.size(), output.data());
        return output;
    }
};

} // namespace detail
} // namespace xcnn

#endif // XCNN_NETWORK_CHAIN_HPP
