/// @file
/// Reading and writing IDX files, the format of MNIST and Fashion-MNIST, raw or gzip-compressed.
///
/// An IDX file is a 4-byte magic number `00 00 <type> <rank>`, `rank` big-endian 32-bit
/// dimensions, then the product of the dimensions in elements of `<type>` (0x08 unsigned byte,
/// 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), big-endian, row-major.
///
/// The readers check the magic number, the element type, the rank and that the data the header
/// announces is exactly what follows — before allocating anything of that size — and throw
/// `format_error` naming the file and the values otherwise. On a stream that cannot seek (a
/// gzip file, a pipe) the length is not known up front; the data is then read in chunks and
/// memory grows only with the bytes that actually arrive, so a lying header cannot trigger a
/// huge allocation either.
#ifndef XCNN_IO_IDX_HPP
#define XCNN_IO_IDX_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <istream>
#include <limits>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "binary.hpp"
#include "gzip.hpp"

namespace xcnn
{
namespace io
{

/// Element type codes of the IDX format.
enum class idx_type : std::uint8_t
{
    u8 = 0x08,  ///< unsigned byte (MNIST's pixels and labels)
    i8 = 0x09,  ///< signed byte
    i16 = 0x0B, ///< big-endian int16
    i32 = 0x0C, ///< big-endian int32
    f32 = 0x0D, ///< big-endian IEEE float32
    f64 = 0x0E  ///< big-endian IEEE float64
};

/// Size in bytes of one element of `type`, 0 if `type` is not a valid IDX type code.
inline std::size_t idx_element_size(std::uint8_t type) noexcept
{
    switch (type)
    {
    case 0x08:
    case 0x09:
        return 1;
    case 0x0B:
        return 2;
    case 0x0C:
    case 0x0D:
        return 4;
    case 0x0E:
        return 8;
    default:
        return 0;
    }
}

/// Name of an IDX type code for messages ("ubyte", "float32", ...).
inline std::string idx_type_name(std::uint8_t type)
{
    switch (type)
    {
    case 0x08:
        return "ubyte (0x08)";
    case 0x09:
        return "byte (0x09)";
    case 0x0B:
        return "int16 (0x0B)";
    case 0x0C:
        return "int32 (0x0C)";
    case 0x0D:
        return "float32 (0x0D)";
    case 0x0E:
        return "float64 (0x0E)";
    default:
    {
        std::ostringstream out;
        out << "unknown (0x" << std::hex << int(type) << ")";
        return out.str();
    }
    }
}

/// What the header of an IDX file says.
struct idx_header
{
    idx_type type = idx_type::u8;  ///< element type
    std::vector<std::size_t> dims; ///< dimensions, outermost first
    std::size_t elements = 0;      ///< product of `dims`
    std::size_t data_bytes = 0;    ///< `elements` times the element size
};

/// An IDX file's header and its data bytes as stored (big-endian).
struct idx_data
{
    idx_header header;               ///< the header
    std::vector<unsigned char> data; ///< `header.data_bytes` bytes
};

namespace detail
{

/// Upper bound on the rank of an IDX file this reader accepts (the format allows 255).
inline constexpr std::size_t idx_max_rank = 16;

/// Bytes left in `in` from its current position, or -1 if the stream cannot tell (cannot seek).
inline std::streamoff remaining_bytes(std::istream& in)
{
    std::streambuf* buf = in.rdbuf();
    if (buf == nullptr)
    {
        return -1;
    }
    const std::streamoff here = buf->pubseekoff(0, std::ios::cur, std::ios::in);
    if (here < 0)
    {
        return -1;
    }
    const std::streamoff end = buf->pubseekoff(0, std::ios::end, std::ios::in);
    buf->pubseekoff(here, std::ios::beg, std::ios::in);
    return end < here ? -1 : end - here;
}

/// Reads exactly `n` bytes into `out` (resized as data arrives, never ahead of it by more
/// than one chunk), or stops early at the end of the stream. Returns the count read.
inline std::size_t read_growing(std::istream& in, std::vector<unsigned char>& out, std::size_t n)
{
    constexpr std::size_t chunk = std::size_t(1) << 22; // 4 MiB
    out.clear();
    std::size_t got = 0;
    while (got < n)
    {
        const std::size_t want = std::min(chunk, n - got);
        out.resize(got + want);
        in.read(reinterpret_cast<char*>(out.data() + got), static_cast<std::streamsize>(want));
        const auto read = static_cast<std::size_t>(in.gcount());
        got += read;
        if (read < want)
        {
            break;
        }
    }
    out.resize(got);
    return got;
}

} // namespace detail

/// Reads and validates the header of an IDX file from `in`; `source` names the file in errors.
/// @throws format_error for a bad magic number, an unknown type, a zero rank, or dimensions
/// whose byte count overflows `size_t`.
inline idx_header read_idx_header(std::istream& in, const std::string& source = "<stream>")
{
    using detail::concat;
    unsigned char magic[4] = {0, 0, 0, 0};
    in.read(reinterpret_cast<char*>(magic), 4);
    if (in.gcount() != 4)
    {
        throw format_error(concat(detail::quoted(source), ": not an IDX file: only ", in.gcount(),
                                  " bytes, shorter than the 4-byte magic number"));
    }
    if (is_gzip_magic(magic, 4))
    {
        throw format_error(concat(detail::quoted(source),
                                  ": is gzip-compressed; open it with load_idx_images/load_idx_labels (which "
                                  "decompress .gz files) or gunzip it first"));
    }
    if (magic[0] != 0 || magic[1] != 0)
    {
        std::ostringstream bytes;
        bytes << std::hex;
        for (auto b : magic)
        {
            bytes << (b < 16 ? " 0" : " ") << int(b);
        }
        throw format_error(concat(detail::quoted(source), ": not an IDX file: magic number", bytes.str(),
                                  " does not start with 00 00"));
    }
    const std::size_t element_size = idx_element_size(magic[2]);
    if (element_size == 0)
    {
        throw format_error(concat(detail::quoted(source), ": unknown IDX element type ", idx_type_name(magic[2])));
    }
    const std::size_t rank = magic[3];
    if (rank == 0 || rank > detail::idx_max_rank)
    {
        throw format_error(
            concat(detail::quoted(source), ": IDX rank ", rank, " is not supported (1 to ", detail::idx_max_rank, ")"));
    }
    idx_header header;
    header.type = static_cast<idx_type>(magic[2]);
    unsigned char dims[4 * detail::idx_max_rank];
    in.read(reinterpret_cast<char*>(dims), static_cast<std::streamsize>(4 * rank));
    if (static_cast<std::size_t>(in.gcount()) != 4 * rank)
    {
        throw format_error(concat(detail::quoted(source), ": truncated IDX header: rank ", rank, " needs ", 4 * rank,
                                  " bytes of dimensions, the file has ", in.gcount()));
    }
    for (std::size_t i = 0; i < rank; ++i)
    {
        header.dims.push_back(detail::load_be<std::uint32_t>(dims + 4 * i));
    }
    if (!detail::checked_extent(header.dims, element_size, header.elements, header.data_bytes))
    {
        throw format_error(concat(detail::quoted(source), ": IDX dimensions ",
                                  xcnn::detail::shape_to_string(header.dims), " of ", idx_type_name(magic[2]),
                                  " overflow the addressable size"));
    }
    return header;
}

/// Reads a whole IDX file from `in`: header and data, checking that exactly the announced data
/// follows (no more, no less). `source` names the file in errors.
/// @throws format_error if the header is invalid or the data is shorter or longer than announced.
inline idx_data read_idx_data(std::istream& in, const std::string& source = "<stream>")
{
    using detail::concat;
    idx_data result;
    result.header = read_idx_header(in, source);
    const auto& h = result.header;
    const std::string declared =
        concat("the header declares ", xcnn::detail::shape_to_string(h.dims), " ",
               idx_type_name(static_cast<std::uint8_t>(h.type)), " = ", h.data_bytes, " bytes of data");
    const std::streamoff remaining = detail::remaining_bytes(in);
    if (remaining >= 0)
    {
        // Seekable: check the length before allocating.
        if (static_cast<std::uint64_t>(remaining) != static_cast<std::uint64_t>(h.data_bytes))
        {
            throw format_error(concat(detail::quoted(source), ": ", declared, " but ", remaining, " bytes follow (",
                                      static_cast<std::uint64_t>(remaining) < h.data_bytes
                                          ? "truncated file"
                                          : "extra data after the last element",
                                      ")"));
        }
        result.data.resize(h.data_bytes);
        in.read(reinterpret_cast<char*>(result.data.data()), static_cast<std::streamsize>(h.data_bytes));
        if (static_cast<std::size_t>(in.gcount()) != h.data_bytes)
        {
            throw io_error(concat(detail::quoted(source), ": reading failed after ", in.gcount(), " of ", h.data_bytes,
                                  " data bytes"));
        }
        return result;
    }
    // Not seekable: memory grows with the data that actually arrives.
    const std::size_t got = detail::read_growing(in, result.data, h.data_bytes);
    if (got < h.data_bytes)
    {
        throw format_error(
            concat(detail::quoted(source), ": ", declared, " but the file ends after ", got, " (truncated file)"));
    }
    char extra = 0;
    if (in.read(&extra, 1) && in.gcount() == 1)
    {
        throw format_error(concat(detail::quoted(source), ": ", declared,
                                  " but more data follows (extra data after the last element)"));
    }
    return result;
}

/// Opens the IDX file at `path`, decompressing it if it is gzip (a `.gz` name or the gzip magic
/// number), and reads it whole.
/// @throws io_error if it cannot be read (or is gzip and xcnn was built without zlib);
/// format_error if it is not a valid IDX file.
inline idx_data load_idx_data(const std::string& path)
{
    using detail::concat;
    std::ifstream raw(path, std::ios::binary);
    if (!raw)
    {
        const int code = errno;
        throw io_error(concat("cannot open IDX file ", detail::quoted(path), ": ", detail::errno_message(code)));
    }
    unsigned char magic[2] = {0, 0};
    raw.read(reinterpret_cast<char*>(magic), 2);
    const bool gzip = is_gzip_magic(magic, static_cast<std::size_t>(raw.gcount())) || has_gz_suffix(path);
    if (gzip)
    {
        raw.close();
        gzip_istream in(path);
        return read_idx_data(in, path);
    }
    raw.clear();
    raw.seekg(0);
    return read_idx_data(raw, path);
}

namespace detail
{

template <class T>
T idx_element(const unsigned char* p, idx_type type)
{
    switch (type)
    {
    case idx_type::u8:
        return static_cast<T>(p[0]);
    case idx_type::i8:
        return static_cast<T>(static_cast<std::int8_t>(p[0]));
    case idx_type::i16:
        return static_cast<T>(load_scalar<std::int16_t>(p, true));
    case idx_type::i32:
        return static_cast<T>(load_scalar<std::int32_t>(p, true));
    case idx_type::f32:
        return static_cast<T>(load_scalar<float>(p, true));
    case idx_type::f64:
        return static_cast<T>(load_scalar<double>(p, true));
    }
    return T(0);
}

/// True if the stored value `v` converts to `T` exactly up to truncation: a floating-point
/// value outside an integer type's range (or NaN) would be undefined behaviour, an integer outside
/// it would silently wrap. Floating-point `T` takes anything (IEEE: out of range is infinite).
template <class T, class S>
bool idx_value_fits(S v) noexcept
{
    if constexpr (std::is_floating_point<T>::value)
    {
        (void)v;
        return true;
    }
    else if constexpr (std::is_floating_point<S>::value)
    {
        // T's minimum is 0 or a power of two and max + 1 a power of two: both exact in S.
        const S t = std::trunc(v);
        return t >= static_cast<S>(std::numeric_limits<T>::min()) &&
               t < std::ldexp(S(1), std::numeric_limits<T>::digits);
    }
    else
    {
        // S is at most 32 bits wide, so long long holds every stored value.
        const auto w = static_cast<long long>(v);
        if (w < 0)
        {
            return std::is_signed<T>::value && w >= static_cast<long long>(std::numeric_limits<T>::min());
        }
        return static_cast<unsigned long long>(w) <= static_cast<unsigned long long>(std::numeric_limits<T>::max());
    }
}

template <class T, class S>
T idx_convert(S v, idx_type type, const std::string& source, std::size_t index)
{
    if (!idx_value_fits<T>(v))
    {
        throw value_error(concat(quoted(source), ": element ", index, " of the ",
                                 idx_type_name(static_cast<std::uint8_t>(type)), " data, ", +v,
                                 ", is outside the range of the requested type [", +std::numeric_limits<T>::min(), ", ",
                                 +std::numeric_limits<T>::max(), "]"));
    }
    return static_cast<T>(v);
}

/// `idx_element` for a caller-chosen `T`, which must hold the stored value.
/// @throws value_error naming the element and the value if `T` cannot represent it.
template <class T>
T idx_element_checked(const unsigned char* p, idx_type type, const std::string& source, std::size_t index)
{
    switch (type)
    {
    case idx_type::u8:
        return idx_convert<T>(p[0], type, source, index);
    case idx_type::i8:
        return idx_convert<T>(static_cast<std::int8_t>(p[0]), type, source, index);
    case idx_type::i16:
        return idx_convert<T>(load_scalar<std::int16_t>(p, true), type, source, index);
    case idx_type::i32:
        return idx_convert<T>(load_scalar<std::int32_t>(p, true), type, source, index);
    case idx_type::f32:
        return idx_convert<T>(load_scalar<float>(p, true), type, source, index);
    case idx_type::f64:
        return idx_convert<T>(load_scalar<double>(p, true), type, source, index);
    }
    return T(0);
}

/// Images (N, 1, H, W) with pixels in [0, 1] from rank-3 ubyte IDX data.
template <class T>
xt::xtensor<T, 4> idx_to_images(const idx_data& idx, const std::string& source)
{
    const auto& h = idx.header;
    if (h.type != idx_type::u8 || h.dims.size() != 3)
    {
        throw format_error(concat(quoted(source), ": expected an IDX image file (rank 3, ubyte: images, rows, ",
                                  "columns), got rank ", h.dims.size(), " ",
                                  idx_type_name(static_cast<std::uint8_t>(h.type)), " with dimensions ",
                                  xcnn::detail::shape_to_string(h.dims)));
    }
    xt::xtensor<T, 4> images(std::array<std::size_t, 4>{h.dims[0], std::size_t(1), h.dims[1], h.dims[2]});
    T* out = images.data();
    const unsigned char* in = idx.data.data();
    for (std::size_t i = 0; i < h.elements; ++i)
    {
        out[i] = static_cast<T>(in[i]) / T(255);
    }
    return images;
}

/// Labels (N) from rank-1 integer IDX data.
inline xt::xtensor<std::int64_t, 1> idx_to_labels(const idx_data& idx, const std::string& source)
{
    const auto& h = idx.header;
    if (h.dims.size() != 1 || h.type == idx_type::f32 || h.type == idx_type::f64)
    {
        throw format_error(concat(quoted(source), ": expected an IDX label file (rank 1, integer), got rank ",
                                  h.dims.size(), " ", idx_type_name(static_cast<std::uint8_t>(h.type)),
                                  " with dimensions ", xcnn::detail::shape_to_string(h.dims)));
    }
    xt::xtensor<std::int64_t, 1> labels(std::array<std::size_t, 1>{h.dims[0]});
    const std::size_t size = idx_element_size(static_cast<std::uint8_t>(h.type));
    for (std::size_t i = 0; i < h.elements; ++i)
    {
        labels(i) = idx_element<std::int64_t>(idx.data.data() + i * size, h.type);
    }
    return labels;
}

template <class T>
constexpr idx_type idx_type_of()
{
    if constexpr (std::is_same<T, std::uint8_t>::value)
    {
        return idx_type::u8;
    }
    else if constexpr (std::is_same<T, std::int8_t>::value)
    {
        return idx_type::i8;
    }
    else if constexpr (std::is_same<T, std::int16_t>::value)
    {
        return idx_type::i16;
    }
    else if constexpr (std::is_same<T, std::int32_t>::value)
    {
        return idx_type::i32;
    }
    else if constexpr (std::is_same<T, float>::value)
    {
        return idx_type::f32;
    }
    else
    {
        static_assert(std::is_same<T, double>::value, "IDX stores uint8, int8, int16, int32, float or double elements");
        return idx_type::f64;
    }
}

/// Writes `bytes` to `path`: gzip-compressed if the name ends in `.gz`, else raw; atomically.
inline void write_maybe_gzip(const std::string& path, const std::string& bytes)
{
    if (has_gz_suffix(path))
    {
        write_gzip_file(path, bytes.data(), bytes.size());
    }
    else
    {
        write_file_atomically(path, bytes.data(), bytes.size());
    }
}

} // namespace detail

/// Reads MNIST-style images from an IDX stream (rank 3, ubyte) as (N, 1, H, W) tensors with
/// pixels scaled to [0, 1] (byte / 255).
/// @throws format_error if the data is not a valid rank-3 ubyte IDX file.
template <class T = float>
xt::xtensor<T, 4> read_idx_images(std::istream& in, const std::string& source = "<stream>")
{
    return detail::idx_to_images<T>(read_idx_data(in, source), source);
}

/// Reads labels from an IDX stream (rank 1, any integer type) as int64.
/// @throws format_error if the data is not a valid rank-1 integer IDX file.
inline xt::xtensor<std::int64_t, 1> read_idx_labels(std::istream& in, const std::string& source = "<stream>")
{
    return detail::idx_to_labels(read_idx_data(in, source), source);
}

/// `read_idx_images` on the file at `path`, raw or gzip-compressed.
template <class T = float>
xt::xtensor<T, 4> load_idx_images(const std::string& path)
{
    return detail::idx_to_images<T>(load_idx_data(path), path);
}

/// `read_idx_labels` on the file at `path`, raw or gzip-compressed.
inline xt::xtensor<std::int64_t, 1> load_idx_labels(const std::string& path)
{
    return detail::idx_to_labels(load_idx_data(path), path);
}

/// Any IDX stream as an `xt::xarray<T>` of its values as stored (no scaling).
/// @throws format_error if the data is not a valid IDX file; value_error if a value is outside
/// the range of `T` (a float file read as integers, an int32 file read as uint8).
template <class T>
xt::xarray<T> read_idx(std::istream& in, const std::string& source = "<stream>")
{
    const idx_data idx = read_idx_data(in, source);
    xt::xarray<T> out(idx.header.dims);
    const std::size_t size = idx_element_size(static_cast<std::uint8_t>(idx.header.type));
    for (std::size_t i = 0; i < idx.header.elements; ++i)
    {
        out.data()[i] = detail::idx_element_checked<T>(idx.data.data() + i * size, idx.header.type, source, i);
    }
    return out;
}

/// Writes `e` as an IDX file to `out`; the element type follows the value type of `e`
/// (uint8, int8, int16, int32, float, double), dimensions must fit in 32 bits.
template <class E>
void write_idx(std::ostream& out, const xt::xexpression<E>& e)
{
    using value_type = std::decay_t<typename E::value_type>;
    const auto& x = e.derived_cast();
    const auto& shape = x.shape();
    if (shape.size() == 0 || shape.size() > 255)
    {
        throw shape_error(detail::concat("write_idx: rank ", shape.size(), " cannot be stored in IDX (1 to 255)"));
    }
    std::vector<unsigned char> header(4 + 4 * shape.size());
    header[2] = static_cast<unsigned char>(detail::idx_type_of<value_type>());
    header[3] = static_cast<unsigned char>(shape.size());
    for (std::size_t i = 0; i < shape.size(); ++i)
    {
        if (static_cast<std::uint64_t>(shape[i]) > 0xFFFFFFFFu)
        {
            throw shape_error(detail::concat("write_idx: dimension ", shape[i], " does not fit in 32 bits"));
        }
        detail::store_be(header.data() + 4 + 4 * i, static_cast<std::uint32_t>(shape[i]));
    }
    out.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
    const xt::xarray<value_type> values = x; // row-major copy
    std::vector<unsigned char> data(values.size() * sizeof(value_type));
    for (std::size_t i = 0; i < values.size(); ++i)
    {
        detail::store_scalar(data.data() + i * sizeof(value_type), values.data()[i], true);
    }
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!out)
    {
        throw io_error("write_idx: writing to the stream failed");
    }
}

/// Writes `e` as an IDX file at `path` (gzip-compressed if `path` ends in `.gz`), atomically.
template <class E>
void save_idx(const std::string& path, const xt::xexpression<E>& e)
{
    std::ostringstream out(std::ios::binary);
    write_idx(out, e);
    detail::write_maybe_gzip(path, out.str());
}

/// Writes images (N, 1, H, W) with pixels in [0, 1] as a rank-3 ubyte IDX file, each pixel
/// `round(255 * clamp(x, 0, 1))`, so `load_idx_images` gives back a byte-exact copy.
template <class T>
void save_idx_images(const std::string& path, const xt::xtensor<T, 4>& images)
{
    const auto& s = images.shape();
    if (s[1] != 1)
    {
        throw shape_error(
            detail::concat("save_idx_images: images must be (N, 1, H, W), got ", xcnn::detail::shape_to_string(s)));
    }
    xt::xtensor<std::uint8_t, 3> bytes(std::array<std::size_t, 3>{s[0], s[2], s[3]});
    for (std::size_t i = 0; i < images.size(); ++i)
    {
        const T v = std::min(T(1), std::max(T(0), images.data()[i]));
        bytes.data()[i] = static_cast<std::uint8_t>(std::lround(v * T(255)));
    }
    save_idx(path, bytes);
}

/// Writes labels as a rank-1 ubyte IDX file.
/// @throws value_error if a label is outside [0, 255].
inline void save_idx_labels(const std::string& path, const xt::xtensor<std::int64_t, 1>& labels)
{
    xt::xtensor<std::uint8_t, 1> bytes(std::array<std::size_t, 1>{labels.size()});
    for (std::size_t i = 0; i < labels.size(); ++i)
    {
        if (labels(i) < 0 || labels(i) > 255)
        {
            throw value_error(
                detail::concat("save_idx_labels: label ", labels(i), " at index ", i, " does not fit in a ubyte"));
        }
        bytes(i) = static_cast<std::uint8_t>(labels(i));
    }
    save_idx(path, bytes);
}

} // namespace io

// User-facing names are spelled xcnn::<name>, like xcnn::save and xcnn::load; the io:: spelling
// stays valid for code written against it.
using io::idx_data;
using io::idx_header;
using io::idx_type;
using io::load_idx_data;
using io::load_idx_images;
using io::load_idx_labels;
using io::read_idx;
using io::read_idx_data;
using io::read_idx_header;
using io::read_idx_images;
using io::read_idx_labels;
using io::save_idx;
using io::save_idx_images;
using io::save_idx_labels;
using io::write_idx;

} // namespace xcnn

#endif // XCNN_IO_IDX_HPP
