/// @file
/// `xcnn::load_network`: a model file loaded into the `Network` its "xcnn.layers" record
/// describes, for a program that does not know the architecture in advance.
#ifndef XCNN_IO_LOAD_NETWORK_HPP
#define XCNN_IO_LOAD_NETWORK_HPP

#include <cstdint>
#include <string>

#include "../core/error.hpp"
#include "../core/layer_spec.hpp"
#include "../core/layer_spec_text.hpp"
#include "../network/network.hpp"
#include "../network/registry.hpp"
#include "model.hpp"

namespace xcnn
{

/// The layer spec recorded in `file` (its "xcnn.layers" record); `source` names the file in errors.
/// @throws format_error if the file has no such record (it was saved before xcnn recorded
/// architectures, or from a network with a layer that cannot describe itself) or its text is not
/// a layer spec.
inline layer_spec read_layer_spec(const io::model_file& file, const std::string& source = "<model>")
{
    const std::string where = detail::concat("load_network ", io::detail::quoted(source), ": ");
    const auto* record = file.find(io::layers_record, io::record_kind::metadata);
    if (record == nullptr)
    {
        const auto* architecture = file.find("xcnn.architecture", io::record_kind::metadata);
        throw format_error(detail::concat(
            where, "the file has no \"", io::layers_record,
            "\" record describing its layers: it was saved before xcnn recorded architectures (or from a network "
            "with a layer without spec()). Load it with xcnn::load(net, path) into a network of the same "
            "architecture, e.g. the Sequential that saved it",
            architecture != nullptr ? "; the file was saved from " + architecture->as_text() : std::string(),
            ". Saving it again with this xcnn records the layers."));
    }
    try
    {
        return parse_layer_spec(record->as_text());
    }
    catch (const format_error&)
    {
        detail::rethrow_with_prefix(detail::concat(where, "record \"", io::layers_record, "\": "));
    }
}

/// The network the model file at `path` describes (its "xcnn.layers" record, written by
/// `xcnn::save` for any network that describes itself), built from `registry`'s kinds with
/// `build_network` and holding the file's parameters and buffers: what `xcnn::save` saved, whatever
/// its type was (a `Sequential`, a `Network`). `T` must be the file's scalar type, `InputRank` and
/// `OutputRank` the ranks the network takes and returns ((N, C, H, W) to (N, classes) by default).
///
///     auto net = xcnn::load_network<float>("lenet.xcnn");   // an xcnn::Network<float, 4, 2>
///     auto logits = net.predict(images);
///
/// @throws io_error if the file cannot be read; format_error if it is not an intact model file,
/// has no "xcnn.layers" record (the message says how to load it into a matching `Sequential`
/// instead) or a malformed one; value_error if the spec names a kind `registry` does not know
/// (add it with `registry.add<L>()`) or options a layer refuses, or the layers end in another rank
/// than `OutputRank`; shape_error if the file holds another scalar type than `T` or tensors that do
/// not fit the network the spec describes. Each message starts with "load_network '<path>': ".
template <class T, int InputRank = 4, int OutputRank = 2>
Network<T, InputRank, OutputRank> load_network(const std::string& path,
                                               const layer_registry<T>& registry = layer_registry<T>())
{
    const io::model_file file = io::read_model_file(path);
    const std::string where = detail::concat("load_network ", io::detail::quoted(path), ": ");
    const auto want = static_cast<std::uint8_t>(io::dtype_of<T>());
    if (file.scalar_type != want)
    {
        throw shape_error(detail::concat(
            where, "the file holds a ", io::dtype_name(file.scalar_type), " network; load it as load_network<",
            file.scalar_type == static_cast<std::uint8_t>(io::dtype::f64) ? "double" : "float", ">, not as ",
            io::dtype_name(want)));
    }
    const layer_spec spec = read_layer_spec(file, path);
    Network<T, InputRank, OutputRank> net;
    try
    {
        net = build_network<T, InputRank, OutputRank>(spec, registry);
    }
    catch (const error&)
    {
        detail::rethrow_with_prefix(where);
    }
    load_state(net, file, path);
    return net;
}

} // namespace xcnn

#endif // XCNN_IO_LOAD_NETWORK_HPP
