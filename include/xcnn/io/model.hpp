/// @file
/// Model files: `xcnn::save(net, path)` and `xcnn::load(net, path)`, and the container format
/// underneath (`xcnn::io::model_file`). The format is specified in docs/model-format.md.
///
/// A model file is a versioned list of named tensor records with a CRC-32 over the whole file.
/// Each record has a kind: the network's parameters, its buffers (non-trainable state such as
/// running means), other state (optimizer state, counters, generator states — anything later
/// versions of xcnn keep next to the weights) or text metadata. Readers skip kinds they do not
/// know, so new kinds of records need no new version.
///
/// Writing is atomic (temporary file, fsync, rename): a crash or an error during `save` leaves
/// the previous file as it was. `load` checks the whole file — magic, version, length,
/// checksum, structure — and that its parameters and buffers match the network's names and
/// shapes before it changes anything, so a failed `load` leaves the network as it was.
#ifndef XCNN_IO_MODEL_HPP
#define XCNN_IO_MODEL_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/layer_spec.hpp"
#include "../core/layer_spec_text.hpp"
#include "../core/parameter.hpp"
#include "../version.hpp"
#include "binary.hpp"

namespace xcnn
{
namespace io
{

/// Version of the model file format this xcnn writes and the newest it reads.
inline constexpr std::uint32_t model_format_version = 1;

/// Name of the metadata record holding the text of the network's `layer_spec`
/// (core/layer_spec_text.hpp), from which `load_network` rebuilds it.
inline constexpr const char* layers_record = "xcnn.layers";

/// Element types of model file records (the `dtype` byte).
enum class dtype : std::uint8_t
{
    f32 = 1, ///< IEEE-754 binary32
    f64 = 2, ///< IEEE-754 binary64
    i64 = 3, ///< two's complement int64
    u64 = 4, ///< uint64
    i32 = 5, ///< two's complement int32
    u32 = 6, ///< uint32
    u8 = 7   ///< uint8 (also UTF-8 text)
};

/// Kinds of model file records (the `kind` byte). Readers ignore kinds they do not know.
enum class record_kind : std::uint8_t
{
    parameter = 1, ///< a trainable tensor of the network, named like a state_dict key ("0.weight")
    state = 2,     ///< other tensors: optimizer state, step counters, generator states
    metadata = 3,  ///< UTF-8 text (dtype u8, rank 1), e.g. "xcnn.architecture"
    /// a non-trainable tensor of the network (`net.buffers()`), named like a state_dict key
    /// ("1.running_mean"); new in xcnn 0.2, skipped by older readers like any unknown kind
    buffer = 4
};

/// Size in bytes of an element of `t`, 0 if `t` is no known type code.
inline std::size_t dtype_size(std::uint8_t t) noexcept
{
    switch (t)
    {
    case 1:
    case 5:
    case 6:
        return 4;
    case 2:
    case 3:
    case 4:
        return 8;
    case 7:
        return 1;
    default:
        return 0;
    }
}

/// Name of a type code for messages ("float32", ...).
inline std::string dtype_name(std::uint8_t t)
{
    switch (t)
    {
    case 1:
        return "float32";
    case 2:
        return "float64";
    case 3:
        return "int64";
    case 4:
        return "uint64";
    case 5:
        return "int32";
    case 6:
        return "uint32";
    case 7:
        return "uint8";
    default:
        return "unknown type " + std::to_string(t);
    }
}

/// The type code of the C++ type `T`.
template <class T>
constexpr dtype dtype_of()
{
    if constexpr (std::is_same<T, float>::value)
    {
        return dtype::f32;
    }
    else if constexpr (std::is_same<T, double>::value)
    {
        return dtype::f64;
    }
    else if constexpr (std::is_same<T, std::int64_t>::value)
    {
        return dtype::i64;
    }
    else if constexpr (std::is_same<T, std::uint64_t>::value)
    {
        return dtype::u64;
    }
    else if constexpr (std::is_same<T, std::int32_t>::value)
    {
        return dtype::i32;
    }
    else if constexpr (std::is_same<T, std::uint32_t>::value)
    {
        return dtype::u32;
    }
    else
    {
        static_assert(std::is_same<T, std::uint8_t>::value || std::is_same<T, char>::value,
                      "model files store float, double, (u)int64, (u)int32 or uint8 tensors");
        return dtype::u8;
    }
}

/// One named tensor of a model file. `data` holds the elements little-endian, row-major.
struct tensor_record
{
    std::string name;                                          ///< unique within its kind, e.g. "0.weight"
    record_kind kind = record_kind::parameter;                 ///< what the tensor is
    std::uint8_t type = static_cast<std::uint8_t>(dtype::f32); ///< a `dtype` code
    std::vector<std::uint64_t> shape;                          ///< dimensions (empty: a scalar)
    std::vector<unsigned char> data;                           ///< elements, little-endian, row-major

    /// A record of `count` values of `T` at `values` with `shape`.
    template <class T, class Shape>
    static tensor_record from(std::string name, record_kind kind, const T* values, const Shape& shape)
    {
        tensor_record r;
        r.name = std::move(name);
        r.kind = kind;
        r.type = static_cast<std::uint8_t>(dtype_of<T>());
        std::size_t count = 1;
        for (auto d : shape)
        {
            r.shape.push_back(static_cast<std::uint64_t>(d));
            count *= static_cast<std::size_t>(d);
        }
        r.data.resize(count * sizeof(T));
        for (std::size_t i = 0; i < count; ++i)
        {
            detail::store_scalar(r.data.data() + i * sizeof(T), values[i], false);
        }
        return r;
    }

    /// A metadata record holding `text`.
    static tensor_record text(std::string name, const std::string& text)
    {
        const std::vector<std::size_t> shape{text.size()};
        return from(std::move(name), record_kind::metadata, reinterpret_cast<const std::uint8_t*>(text.data()), shape);
    }

    /// Number of elements.
    std::size_t size() const noexcept { return data.size() / std::max<std::size_t>(dtype_size(type), 1); }

    /// The elements as `T`, which must be the stored type.
    /// @throws value_error if the record stores another type.
    template <class T>
    std::vector<T> values() const
    {
        if (type != static_cast<std::uint8_t>(dtype_of<T>()))
        {
            throw value_error(xcnn::detail::concat("model record '", name, "' stores ", dtype_name(type), ", not ",
                                                   dtype_name(static_cast<std::uint8_t>(dtype_of<T>()))));
        }
        std::vector<T> out(size());
        for (std::size_t i = 0; i < out.size(); ++i)
        {
            out[i] = detail::load_scalar<T>(data.data() + i * sizeof(T), false);
        }
        return out;
    }

    /// The text of a metadata record.
    std::string as_text() const { return std::string(data.begin(), data.end()); }
};

/// The content of a model file: the scalar type of the network and its records, in order.
struct model_file
{
    std::uint8_t scalar_type = static_cast<std::uint8_t>(dtype::f32); ///< the network's `dtype`
    std::vector<tensor_record> records;                               ///< in file order

    /// The records of `kind`, in file order.
    std::vector<const tensor_record*> of_kind(record_kind kind) const
    {
        std::vector<const tensor_record*> out;
        for (const auto& r : records)
        {
            if (r.kind == kind)
            {
                out.push_back(&r);
            }
        }
        return out;
    }

    /// The record named `name` of `kind`, or nullptr.
    const tensor_record* find(const std::string& name, record_kind kind) const
    {
        for (const auto& r : records)
        {
            if (r.kind == kind && r.name == name)
            {
                return &r;
            }
        }
        return nullptr;
    }
};

namespace detail
{

/// "\x89XCNN\r\n\x1a": a high byte (catches 7-bit transfers), the name, CR LF (catches newline
/// conversion) and ^Z (stops `type` on Windows), like PNG's signature.
inline constexpr unsigned char model_magic[8] = {0x89, 'X', 'C', 'N', 'N', 0x0D, 0x0A, 0x1A};
inline constexpr std::size_t model_header_size = 40;
inline constexpr std::size_t model_checksum_size = 4;
inline constexpr std::size_t model_max_rank = 32;

} // namespace detail

/// The bytes of a model file holding `file` (format version `model_format_version`).
/// @throws value_error if a record is inconsistent (data length not matching its shape, a
/// duplicate name within a kind, a rank over 32).
inline std::vector<unsigned char> encode_model(const model_file& file)
{
    using xcnn::detail::concat;
    std::set<std::pair<int, std::string>> names;
    for (const auto& r : file.records)
    {
        std::size_t elements = 0, bytes = 0;
        if (dtype_size(r.type) == 0 || r.shape.size() > detail::model_max_rank ||
            !detail::checked_extent(r.shape, dtype_size(r.type), elements, bytes) || bytes != r.data.size())
        {
            throw value_error(concat("encode_model: record '", r.name, "' (", dtype_name(r.type), ", shape ",
                                     xcnn::detail::shape_to_string(r.shape), ") has ", r.data.size(),
                                     " data bytes, which does not match its type and shape"));
        }
        if (!names.insert({static_cast<int>(r.kind), r.name}).second)
        {
            throw value_error(concat("encode_model: two records of the same kind are named '", r.name, "'"));
        }
    }
    std::vector<unsigned char> out(detail::model_header_size, 0);
    std::memcpy(out.data(), detail::model_magic, 8);
    detail::store_le(out.data() + 8, model_format_version);
    detail::store_le(out.data() + 12, static_cast<std::uint32_t>(detail::model_header_size));
    detail::store_le(out.data() + 24, static_cast<std::uint64_t>(file.records.size()));
    out[32] = file.scalar_type;
    for (const auto& r : file.records)
    {
        const std::uint64_t body = 8 + r.name.size() + 8 * r.shape.size() + r.data.size();
        detail::append_le(out, body);
        out.push_back(static_cast<unsigned char>(r.kind));
        out.push_back(r.type);
        detail::append_le(out, static_cast<std::uint16_t>(r.shape.size()));
        detail::append_le(out, static_cast<std::uint32_t>(r.name.size()));
        out.insert(out.end(), r.name.begin(), r.name.end());
        for (auto d : r.shape)
        {
            detail::append_le(out, d);
        }
        out.insert(out.end(), r.data.begin(), r.data.end());
    }
    const std::uint64_t total = out.size() + detail::model_checksum_size;
    detail::store_le(out.data() + 16, total);
    detail::append_le(out, detail::crc32(out.data(), out.size()));
    return out;
}

/// Parses and validates the bytes of a model file; `source` names it in errors. Checks, in
/// order: the magic number, the version, the length recorded in the header against the real
/// length (a truncated file), the CRC-32, then the structure of every record. Records of
/// unknown kinds are kept (with their bytes) so tools can pass them on.
/// @throws format_error describing the first problem.
inline model_file decode_model(const std::vector<unsigned char>& bytes, const std::string& source)
{
    using xcnn::detail::concat;
    const std::string where = detail::quoted(source);
    const std::size_t size = bytes.size();
    if (size < detail::model_header_size + detail::model_checksum_size)
    {
        throw format_error(concat(where, ": not an xcnn model file: ", size, " bytes is shorter than the ",
                                  detail::model_header_size + detail::model_checksum_size,
                                  "-byte header and checksum (empty or truncated file?)"));
    }
    if (std::memcmp(bytes.data(), detail::model_magic, 8) != 0)
    {
        const bool npy = bytes[0] == 0x93 && bytes[1] == 'N';
        throw format_error(concat(where, ": not an xcnn model file (wrong magic number)",
                                  npy ? "; it looks like a NumPy .npy file, see xcnn::import_npy" : ""));
    }
    const std::uint32_t version = detail::load_le<std::uint32_t>(bytes.data() + 8);
    if (version == 0 || version > model_format_version)
    {
        throw format_error(concat(where, ": model file format version ", version,
                                  version > model_format_version ? " is newer than" : " is not one of",
                                  " the versions this xcnn reads (1 to ", model_format_version, ")"));
    }
    const std::uint64_t declared = detail::load_le<std::uint64_t>(bytes.data() + 16);
    if (declared != size)
    {
        throw format_error(concat(where, ": the header records a file of ", declared, " bytes but the file has ", size,
                                  declared > size ? " (truncated file)" : " (extra bytes at the end)"));
    }
    const std::uint32_t stored = detail::load_le<std::uint32_t>(bytes.data() + size - 4);
    const std::uint32_t computed = detail::crc32(bytes.data(), size - 4);
    if (stored != computed)
    {
        std::ostringstream msg;
        msg << where << ": checksum mismatch (stored CRC-32 0x" << std::hex << stored << ", computed 0x" << computed
            << "): the file is corrupted";
        throw format_error(msg.str());
    }
    const std::uint32_t header_size = detail::load_le<std::uint32_t>(bytes.data() + 12);
    const std::size_t end = size - detail::model_checksum_size;
    if (header_size < detail::model_header_size || header_size > end)
    {
        throw format_error(concat(where, ": invalid header size ", header_size));
    }
    const std::uint64_t count = detail::load_le<std::uint64_t>(bytes.data() + 24);
    model_file file;
    file.scalar_type = bytes[32];
    std::size_t pos = header_size;
    std::set<std::pair<int, std::string>> names;
    for (std::uint64_t i = 0; i < count; ++i)
    {
        auto bad = [&](const std::string& what)
        {
            return format_error(concat(where, ": record ", i, " at byte ", pos, ": ", what));
        };
        if (end - pos < 8)
        {
            throw bad(concat("the header announces ", count, " records but the data ends"));
        }
        const std::uint64_t body = detail::load_le<std::uint64_t>(bytes.data() + pos);
        const std::size_t start = pos + 8;
        if (body > end - start || body < 8)
        {
            throw bad(concat("record size ", body, " does not fit in the file"));
        }
        const std::size_t stop = start + static_cast<std::size_t>(body);
        tensor_record r;
        r.kind = static_cast<record_kind>(bytes[start]);
        r.type = bytes[start + 1];
        const std::size_t rank = detail::load_le<std::uint16_t>(bytes.data() + start + 2);
        const std::size_t name_size = detail::load_le<std::uint32_t>(bytes.data() + start + 4);
        std::size_t at = start + 8;
        if (name_size > stop - at || rank > detail::model_max_rank || 8 * rank > stop - at - name_size)
        {
            throw bad(
                concat("name length ", name_size, " and rank ", rank, " do not fit in the record's ", body, " bytes"));
        }
        r.name.assign(reinterpret_cast<const char*>(bytes.data() + at), name_size);
        at += name_size;
        for (std::size_t k = 0; k < rank; ++k, at += 8)
        {
            r.shape.push_back(detail::load_le<std::uint64_t>(bytes.data() + at));
        }
        const std::size_t element_size = dtype_size(r.type);
        const bool known_kind = r.kind == record_kind::parameter || r.kind == record_kind::state ||
                                r.kind == record_kind::metadata || r.kind == record_kind::buffer;
        if (known_kind)
        {
            std::size_t elements = 0, data_bytes = 0;
            if (element_size == 0)
            {
                throw bad(concat("tensor '", r.name, "' has ", dtype_name(r.type)));
            }
            if (!detail::checked_extent(r.shape, element_size, elements, data_bytes) || data_bytes != stop - at)
            {
                throw bad(concat("tensor '", r.name, "' of shape ", xcnn::detail::shape_to_string(r.shape), " ",
                                 dtype_name(r.type), " needs ", elements, " elements but the record holds ", stop - at,
                                 " data bytes"));
            }
            if (!names.insert({static_cast<int>(r.kind), r.name}).second)
            {
                throw bad(concat("a second tensor named '", r.name, "'"));
            }
        }
        r.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                      bytes.begin() + static_cast<std::ptrdiff_t>(stop));
        file.records.push_back(std::move(r));
        pos = stop;
    }
    if (pos != end)
    {
        throw format_error(
            concat(where, ": ", end - pos, " bytes after the last of the ", count, " records the header announces"));
    }
    return file;
}

/// Writes `file` to `path` atomically (see `detail::write_file_atomically`).
inline void write_model_file(const std::string& path, const model_file& file)
{
    const auto bytes = encode_model(file);
    detail::write_file_atomically(path, bytes.data(), bytes.size(), "save");
}

/// Reads and validates the model file at `path` (see `decode_model`).
/// @throws io_error if it cannot be read; format_error if it is not a valid model file.
inline model_file read_model_file(const std::string& path)
{
    return decode_model(detail::read_file_bytes(path, "load"), path);
}

namespace detail
{

template <class Net, class = void>
struct has_name : std::false_type
{
};
template <class Net>
struct has_name<Net, std::void_t<decltype(std::declval<const Net&>().name())>> : std::true_type
{
};

/// Whether `Net` has `buffers()` (named non-trainable tensors, e.g. BatchNorm's running
/// statistics). Networks without it are treated as having none, so any network with
/// `parameters()` and `value_type` can be saved and loaded.
template <class Net, class = void>
struct has_buffers : std::false_type
{
};
template <class Net>
struct has_buffers<Net, std::void_t<decltype(std::declval<Net&>().buffers())>> : std::true_type
{
};

/// The buffers of `net`: `net.buffers()`, or none for a network without `buffers()`.
template <class Net>
auto buffers_of(Net& net)
{
    if constexpr (has_buffers<Net>::value)
    {
        return net.buffers();
    }
    else
    {
        (void)net;
        return std::vector<buffer<typename Net::value_type>>();
    }
}

/// Checks that the records `stored` (of one kind, in file order) are, in order, exactly the
/// tensors `tensors` (`net.parameters()` or `net.buffers()`): same count, names, shapes and
/// type `want`. `what` names them in messages ("tensor", "buffer"), `where`, `saved_from` and
/// `net_is` start and end them.
template <class Handles>
void check_tensors(const Handles& tensors, const std::vector<const tensor_record*>& stored, std::uint8_t want,
                   const char* what, const std::string& where, const std::string& saved_from, const std::string& net_is)
{
    using xcnn::detail::concat;
    using xcnn::detail::shape_to_string;
    const std::string plural = std::string(what) + "s";
    const std::string tensor = std::string(what) == "tensor" ? "parameter tensors" : plural;
    const std::size_t common = std::min(tensors.size(), stored.size());
    for (std::size_t i = 0; i < common; ++i)
    {
        const auto& p = tensors[i];
        const auto& r = *stored[i];
        const auto shape = p.shape();
        const bool same_shape = std::equal(shape.begin(), shape.end(), r.shape.begin(), r.shape.end(),
                                           [](std::size_t a, std::uint64_t b) { return a == b; });
        if (r.name != p.name() || !same_shape || r.type != want)
        {
            throw shape_error(concat(where, "architecture mismatch at ", what, " ", i, ": the file has '", r.name,
                                     "' of shape ", shape_to_string(r.shape), " (", dtype_name(r.type),
                                     "), the network has '", p.name(), "' of shape ", shape_to_string(shape), " (",
                                     dtype_name(want), ")", saved_from, net_is));
        }
    }
    if (stored.size() < tensors.size())
    {
        const auto& p = tensors[stored.size()];
        throw shape_error(concat(where, "architecture mismatch at ", what, " ", stored.size(), ": the network has '",
                                 p.name(), "' of shape ", shape_to_string(p.shape()), ", the file has no such ", what,
                                 " (it holds ", stored.size(), " ", tensor, ", the network ", tensors.size(), ")",
                                 saved_from, net_is));
    }
    if (stored.size() > tensors.size())
    {
        const auto& r = *stored[tensors.size()];
        throw shape_error(concat(where, "architecture mismatch at ", what, " ", tensors.size(), ": the file has '",
                                 r.name, "' of shape ", shape_to_string(r.shape), ", the network has no such ", what,
                                 " (it has ", tensors.size(), " ", tensor, ", the file ", stored.size(), ")",
                                 saved_from, net_is));
    }
}

/// Sets each tensor of `tensors` from the record of `stored` at the same index (checked before).
template <class T, class Handles>
void assign_tensors(const Handles& tensors, const std::vector<const tensor_record*>& stored)
{
    for (std::size_t i = 0; i < tensors.size(); ++i)
    {
        const auto& r = *stored[i];
        T* out = tensors[i].data();
        for (std::size_t j = 0, n = tensors[i].size(); j < n; ++j)
        {
            out[j] = load_scalar<T>(r.data.data() + j * sizeof(T), false);
        }
    }
}

template <class Net>
std::string architecture_of(const Net& net)
{
    if constexpr (has_name<Net>::value)
    {
        return net.name();
    }
    else
    {
        (void)net;
        return std::string();
    }
}

} // namespace detail
} // namespace io

/// The parameters and buffers of `net` as a model file, plus metadata records: "xcnn.version",
/// for networks with a `name()` "xcnn.architecture", and for networks that describe themselves
/// (`spec()`, as `Sequential`s and `Network`s of xcnn's layers do; not one holding a layer
/// without `spec()`) "xcnn.layers", the text of that spec, from which `load_network` rebuilds
/// the network. Append more records before writing it with
/// `io::write_model_file` to keep other state in the same file. A network without `buffers()`,
/// or with none, and without `spec()` gives the file xcnn 0.1.0 wrote.
template <class Net>
io::model_file model_state(Net& net)
{
    using T = typename Net::value_type;
    io::model_file file;
    file.scalar_type = static_cast<std::uint8_t>(io::dtype_of<T>());
    for (const auto& p : net.parameters())
    {
        file.records.push_back(io::tensor_record::from(p.name(), io::record_kind::parameter, p.data(), p.shape()));
    }
    for (const auto& b : io::detail::buffers_of(net))
    {
        file.records.push_back(io::tensor_record::from(b.name(), io::record_kind::buffer, b.data(), b.shape()));
    }
    file.records.push_back(io::tensor_record::text(
        "xcnn.version", detail::concat(XCNN_VERSION_MAJOR, ".", XCNN_VERSION_MINOR, ".", XCNN_VERSION_PATCH)));
    const std::string architecture = io::detail::architecture_of(net);
    if (!architecture.empty())
    {
        file.records.push_back(io::tensor_record::text("xcnn.architecture", architecture));
    }
    if constexpr (detail::has_spec<Net>::value)
    {
        // A `Network` knows only when asked whether each of its layers describes itself.
        std::string layers;
        try
        {
            layers = to_string(net.spec());
        }
        catch (const value_error&)
        {
        }
        if (!layers.empty())
        {
            file.records.push_back(io::tensor_record::text(io::layers_record, layers));
        }
    }
    return file;
}

/// Checks that the parameter records of `file` are, in order, exactly the parameters of `net`,
/// and its buffer records exactly the buffers of `net` (none for a network without `buffers()`):
/// same names, shapes and scalar type (what `load_state` checks before it changes anything).
/// `source` names the file in errors.
/// @throws shape_error naming the first tensor that differs, with both shapes.
template <class Net>
void check_state(Net& net, const io::model_file& file, const std::string& source = "<model>")
{
    using T = typename Net::value_type;
    using detail::concat;
    const auto* arch_record = file.find("xcnn.architecture", io::record_kind::metadata);
    const std::string saved_from = arch_record != nullptr ? "; the file was saved from " + arch_record->as_text() : "";
    const std::string architecture = io::detail::architecture_of(net);
    const std::string net_is = architecture.empty() ? "" : "; the network is " + architecture;
    const std::string where = concat("load ", io::detail::quoted(source), ": ");
    const auto want = static_cast<std::uint8_t>(io::dtype_of<T>());
    if (file.scalar_type != want)
    {
        throw shape_error(concat(where, "the file holds a ", io::dtype_name(file.scalar_type), " network, this one is ",
                                 io::dtype_name(want)));
    }
    io::detail::check_tensors(net.parameters(), file.of_kind(io::record_kind::parameter), want, "tensor", where,
                              saved_from, net_is);
    io::detail::check_tensors(io::detail::buffers_of(net), file.of_kind(io::record_kind::buffer), want, "buffer", where,
                              saved_from, net_is);
}

/// Sets the parameters and buffers of `net` from `file`, after checking that the file's
/// parameter and buffer records are, in order, exactly the network's: same names, shapes and
/// scalar type. Nothing changes unless all match. `source` names the file in errors.
/// @throws shape_error naming the first tensor that differs, with both shapes.
template <class Net>
void load_state(Net& net, const io::model_file& file, const std::string& source = "<model>")
{
    using T = typename Net::value_type;
    check_state(net, file, source);
    io::detail::assign_tensors<T>(net.parameters(), file.of_kind(io::record_kind::parameter));
    io::detail::assign_tensors<T>(io::detail::buffers_of(net), file.of_kind(io::record_kind::buffer));
}

/// Saves the parameters and buffers of `net` to `path` in xcnn's model file format
/// (docs/model-format.md), atomically: if anything fails, `path` keeps its previous content and
/// `io_error` says why.
template <class Net>
void save(Net& net, const std::string& path)
{
    io::write_model_file(path, model_state(net));
}

/// Loads the parameters and buffers of `net` from the model file at `path`, written by `save`.
/// The file is checked completely before the network changes, so after an exception `net` is
/// unchanged.
/// @throws io_error if the file cannot be read; format_error if it is not an intact model file
/// (wrong magic, newer version, truncated, checksum mismatch); shape_error if it holds another
/// architecture (or buffers of other names or shapes), naming the first tensor that differs and
/// both shapes.
template <class Net>
void load(Net& net, const std::string& path)
{
    load_state(net, io::read_model_file(path), path);
}

} // namespace xcnn

#endif // XCNN_IO_MODEL_HPP
