/// @file
/// `xcnn::layer_spec`: what a layer is without its weights — its kind, its options and its inner
/// layers. Model files record it so that `load_network` rebuilds a network it did not know when
/// it was compiled, and the ONNX importer builds one from a graph through it.
#ifndef XCNN_CORE_LAYER_SPEC_HPP
#define XCNN_CORE_LAYER_SPEC_HPP

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace xcnn
{

/// One named option of a `layer_spec`: one number or a list of them (sizes, rates, epsilons,
/// flags as 0 or 1). Doubles hold every size and flag exactly and every float or double option
/// without loss.
struct spec_option
{
    /// The option's name, PyTorch's where PyTorch has one ("kernel_size", "negative_slope").
    std::string key;
    /// Its values: one for a scalar option, two for a (height, width) pair.
    std::vector<double> values;
};

/// What a layer is, without its weights: enough to construct it again.
///
/// - `kind` is the layer's class name without its scalar type: "Conv2D", "ReLU", "Sequential".
/// - `options` are its constructor's arguments, named.
/// - `children` are the layers it holds: a network's layers in order; a `Residual`'s main branch,
///   then its shortcut when it has one.
struct layer_spec
{
    /// The layer's kind ("Conv2D").
    std::string kind;
    /// Its options, in the order the layer lists them.
    std::vector<spec_option> options;
    /// The layers it holds, in order.
    std::vector<layer_spec> children;

    /// The values of option `key`, or nullptr when the spec has none of that name.
    const std::vector<double>* find(const std::string& key) const noexcept
    {
        for (const auto& o : options)
        {
            if (o.key == key)
            {
                return &o.values;
            }
        }
        return nullptr;
    }

    /// Adds option `key` with `values`; returns the spec for chaining.
    layer_spec& set(std::string key, std::vector<double> values)
    {
        options.push_back({std::move(key), std::move(values)});
        return *this;
    }
};

} // namespace xcnn

#endif // XCNN_CORE_LAYER_SPEC_HPP
