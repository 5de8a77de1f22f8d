/// @file
/// NumPy `.npy` files: single arrays (`xcnn::load_npy`, `xcnn::save_npy`, also spelled `io::`)
/// and a network's state as one file per parameter and buffer named like PyTorch's `state_dict`
/// keys (`xcnn::export_npy`, `xcnn::import_npy`): `0.weight.npy`, `0.bias.npy`,
/// `1.running_mean.npy`, ...
///
/// In Python, `{k: torch.from_numpy(np.load(f"{d}/{k}.npy")) for k in model.state_dict()}`
/// loads an exported network into the equivalent `torch.nn.Sequential`, and
/// `for k, v in model.state_dict().items(): np.save(f"{d}/{k}.npy", v.numpy())` writes a
/// directory `import_npy` reads. tests/fixtures/torch_lenet.py does both.
///
/// The reader takes format versions 1.0, 2.0 and 3.0, little- and big-endian integers, floats
/// and booleans, C or Fortran order, and converts them to the requested type. It checks that
/// the data length matches the header before allocating. The writer writes version 1.0 (2.0
/// for headers over 64 KiB), little-endian, C order, header padded to 64 bytes as NumPy does.
#ifndef XCNN_IO_NPY_HPP
#define XCNN_IO_NPY_HPP

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "binary.hpp"
#include "model.hpp"

namespace xcnn
{
namespace io
{

/// What the header of a `.npy` file says.
struct npy_header
{
    std::string descr;              ///< NumPy type string, e.g. "<f4"
    char byte_order = '<';          ///< '<', '>' or '|' (single byte)
    char kind = 'f';                ///< 'f' float, 'i' signed, 'u' unsigned, 'b' bool
    std::size_t item_size = 4;      ///< bytes per element
    bool fortran_order = false;     ///< column-major data
    std::vector<std::size_t> shape; ///< dimensions (empty: a scalar)
    std::size_t data_offset = 0;    ///< where the data starts in the file
};

namespace detail
{

inline bool host_is_little_endian() noexcept
{
    const std::uint16_t one = 1;
    unsigned char first;
    std::memcpy(&first, &one, 1);
    return first == 1;
}

/// A Python literal from a `.npy` header: a string, a boolean, or a tuple of integers.
struct py_value
{
    enum kind_t
    {
        string,
        boolean,
        tuple
    } kind = string;
    std::string text;
    bool flag = false;
    std::vector<std::size_t> items;
};

/// Parses the header dict `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
class npy_dict_parser
{
public:
    npy_dict_parser(const std::string& text, const std::string& source) : m_text(text), m_source(source) {}

    std::map<std::string, py_value> parse()
    {
        std::map<std::string, py_value> out;
        expect('{');
        skip_space();
        while (peek() != '}')
        {
            const std::string key = parse_string();
            expect(':');
            out[key] = parse_value();
            skip_space();
            if (peek() == ',')
            {
                ++m_pos;
                skip_space();
            }
            else if (peek() != '}')
            {
                fail("expected ',' or '}'");
            }
        }
        return out;
    }

private:
    [[noreturn]] void fail(const std::string& what) const
    {
        throw format_error(
            concat(quoted(m_source), ": malformed .npy header (", what, " at offset ", m_pos, "): ", m_text));
    }
    char peek() const { return m_pos < m_text.size() ? m_text[m_pos] : '\0'; }
    void skip_space()
    {
        while (m_pos < m_text.size() && std::isspace(static_cast<unsigned char>(m_text[m_pos])))
        {
            ++m_pos;
        }
    }
    void expect(char c)
    {
        skip_space();
        if (peek() != c)
        {
            fail(std::string("expected '") + c + "'");
        }
        ++m_pos;
    }
    std::string parse_string()
    {
        skip_space();
        const char quote = peek();
        if (quote != '\'' && quote != '"')
        {
            fail("expected a string");
        }
        const std::size_t end = m_text.find(quote, m_pos + 1);
        if (end == std::string::npos)
        {
            fail("unterminated string");
        }
        std::string s = m_text.substr(m_pos + 1, end - m_pos - 1);
        m_pos = end + 1;
        return s;
    }
    std::size_t parse_integer()
    {
        skip_space();
        const std::size_t start = m_pos;
        std::size_t v = 0;
        while (std::isdigit(static_cast<unsigned char>(peek())))
        {
            const auto digit = static_cast<std::size_t>(peek() - '0');
            if (!checked_mul(v, 10, v) || v + digit < v)
            {
                fail("dimension overflows size_t");
            }
            v += digit;
            ++m_pos;
        }
        if (m_pos == start)
        {
            fail("expected a non-negative integer");
        }
        if (peek() == 'L') // Python 2's long suffix
        {
            ++m_pos;
        }
        return v;
    }
    py_value parse_value()
    {
        skip_space();
        py_value v;
        const char c = peek();
        if (c == '\'' || c == '"')
        {
            v.kind = py_value::string;
            v.text = parse_string();
        }
        else if (m_text.compare(m_pos, 4, "True") == 0 || m_text.compare(m_pos, 5, "False") == 0)
        {
            v.kind = py_value::boolean;
            v.flag = m_text[m_pos] == 'T';
            m_pos += v.flag ? 4 : 5;
        }
        else if (c == '(')
        {
            v.kind = py_value::tuple;
            ++m_pos;
            skip_space();
            while (peek() != ')')
            {
                v.items.push_back(parse_integer());
                skip_space();
                if (peek() == ',')
                {
                    ++m_pos;
                    skip_space();
                }
                else if (peek() != ')')
                {
                    fail("expected ',' or ')' in the shape");
                }
            }
            ++m_pos;
        }
        else
        {
            fail("unsupported value");
        }
        return v;
    }

    const std::string& m_text;
    const std::string& m_source;
    std::size_t m_pos = 0;
};

/// Parses and validates the header of the `.npy` content `bytes` (the whole file): magic,
/// version, the dict, the type, the shape, and that exactly the announced data follows.
inline npy_header parse_npy_header(const std::vector<unsigned char>& bytes, const std::string& source)
{
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (bytes.size() < 10 || std::memcmp(bytes.data(), magic, 6) != 0)
    {
        throw format_error(concat(quoted(source), ": not a .npy file (no \\x93NUMPY magic string)"));
    }
    const unsigned major = bytes[6], minor = bytes[7];
    std::size_t header_len = 0, prefix = 0;
    if (major == 1)
    {
        header_len = load_le<std::uint16_t>(bytes.data() + 8);
        prefix = 10;
    }
    else if (major == 2 || major == 3)
    {
        if (bytes.size() < 12)
        {
            throw format_error(concat(quoted(source), ": truncated .npy header"));
        }
        header_len = load_le<std::uint32_t>(bytes.data() + 8);
        prefix = 12;
    }
    else
    {
        throw format_error(concat(quoted(source), ": unsupported .npy format version ", major, ".", minor));
    }
    if (header_len > bytes.size() - prefix)
    {
        throw format_error(concat(quoted(source), ": truncated .npy file: the header is ", header_len,
                                  " bytes, the file has ", bytes.size() - prefix, " after the preamble"));
    }
    const std::string text(reinterpret_cast<const char*>(bytes.data() + prefix), header_len);
    const auto dict = npy_dict_parser(text, source).parse();
    auto get = [&](const char* key, py_value::kind_t kind) -> const py_value&
    {
        const auto it = dict.find(key);
        if (it == dict.end() || it->second.kind != kind)
        {
            throw format_error(concat(quoted(source), ": .npy header lacks a valid '", key, "': ", text));
        }
        return it->second;
    };
    npy_header h;
    h.descr = get("descr", py_value::string).text;
    h.fortran_order = get("fortran_order", py_value::boolean).flag;
    h.shape = get("shape", py_value::tuple).items;
    h.data_offset = prefix + header_len;

    const std::string& d = h.descr;
    bool ok = d.size() >= 3 && (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=') &&
              (d[1] == 'f' || d[1] == 'i' || d[1] == 'u' || d[1] == 'b');
    if (ok)
    {
        h.byte_order = d[0] == '=' ? (host_is_little_endian() ? '<' : '>') : d[0];
        h.kind = d[1];
        const std::string size = d.substr(2);
        h.item_size = size == "1" ? 1 : size == "2" ? 2 : size == "4" ? 4 : size == "8" ? 8 : 0;
        ok = h.item_size != 0 && (h.kind != 'f' || h.item_size >= 4) && (h.kind != 'b' || h.item_size == 1);
    }
    if (!ok)
    {
        throw format_error(concat(quoted(source), ": unsupported .npy element type '", d,
                                  "' (supported: float32/64, signed and unsigned integers, bool)"));
    }
    std::size_t elements = 0, data_bytes = 0;
    if (!checked_extent(h.shape, h.item_size, elements, data_bytes))
    {
        throw format_error(
            concat(quoted(source), ": .npy shape ", xcnn::detail::shape_to_string(h.shape), " overflows size_t"));
    }
    const std::size_t available = bytes.size() - h.data_offset;
    if (available != data_bytes)
    {
        throw format_error(concat(quoted(source), ": the .npy header declares ", xcnn::detail::shape_to_string(h.shape),
                                  " '", d, "' = ", data_bytes, " bytes of data but ", available, " bytes follow (",
                                  available < data_bytes ? "truncated file" : "extra data", ")"));
    }
    return h;
}

template <class T>
T npy_element(const unsigned char* p, const npy_header& h)
{
    const bool big = h.byte_order == '>';
    switch (h.kind)
    {
    case 'f':
        return h.item_size == 4 ? static_cast<T>(load_scalar<float>(p, big))
                                : static_cast<T>(load_scalar<double>(p, big));
    case 'i':
        switch (h.item_size)
        {
        case 1:
            return static_cast<T>(static_cast<std::int8_t>(p[0]));
        case 2:
            return static_cast<T>(load_scalar<std::int16_t>(p, big));
        case 4:
            return static_cast<T>(load_scalar<std::int32_t>(p, big));
        default:
            return static_cast<T>(load_scalar<std::int64_t>(p, big));
        }
    case 'u':
        switch (h.item_size)
        {
        case 1:
            return static_cast<T>(p[0]);
        case 2:
            return static_cast<T>(load_scalar<std::uint16_t>(p, big));
        case 4:
            return static_cast<T>(load_scalar<std::uint32_t>(p, big));
        default:
            return static_cast<T>(load_scalar<std::uint64_t>(p, big));
        }
    default: // 'b'
        return static_cast<T>(p[0] != 0 ? 1 : 0);
    }
}

/// Converts the data of a parsed `.npy` file to row-major values of type `T` in `out`
/// (`elements` values).
template <class T>
void npy_values(const std::vector<unsigned char>& bytes, const npy_header& h, T* out, std::size_t elements)
{
    const unsigned char* data = bytes.data() + h.data_offset;
    if (!h.fortran_order || h.shape.size() < 2)
    {
        for (std::size_t i = 0; i < elements; ++i)
        {
            out[i] = npy_element<T>(data + i * h.item_size, h);
        }
        return;
    }
    // Column-major data: walk the row-major index with an odometer, reading at the
    // column-major offset.
    const std::size_t rank = h.shape.size();
    std::vector<std::size_t> stride(rank), index(rank, 0);
    stride[0] = 1;
    for (std::size_t k = 1; k < rank; ++k)
    {
        stride[k] = stride[k - 1] * h.shape[k - 1];
    }
    std::size_t offset = 0;
    for (std::size_t i = 0; i < elements; ++i)
    {
        out[i] = npy_element<T>(data + offset * h.item_size, h);
        for (std::size_t k = rank; k-- > 0;)
        {
            if (++index[k] < h.shape[k])
            {
                offset += stride[k];
                break;
            }
            offset -= (h.shape[k] - 1) * stride[k];
            index[k] = 0;
        }
    }
}

template <class T>
std::string npy_descr()
{
    // Multi-byte values are always written little-endian (see encode_npy).
    if constexpr (std::is_same<T, bool>::value)
    {
        return "|b1";
    }
    else if constexpr (std::is_floating_point<T>::value)
    {
        static_assert(sizeof(T) == 4 || sizeof(T) == 8, ".npy files store float32 or float64");
        return sizeof(T) == 4 ? "<f4" : "<f8";
    }
    else
    {
        static_assert(std::is_integral<T>::value, ".npy files store numbers");
        const char kind = std::is_signed<T>::value ? 'i' : 'u';
        return sizeof(T) == 1 ? std::string("|") + kind + "1" : std::string("<") + kind + std::to_string(sizeof(T));
    }
}

/// The bytes of a `.npy` file holding `size` row-major values of `T` with `shape`.
template <class T>
std::vector<unsigned char> encode_npy(const T* data, const std::vector<std::size_t>& shape)
{
    std::string dict = "{'descr': '" + npy_descr<T>() + "', 'fortran_order': False, 'shape': (";
    for (std::size_t i = 0; i < shape.size(); ++i)
    {
        dict += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
        if (i + 1 < shape.size())
        {
            dict += ' ';
        }
    }
    dict += "), }";
    // Version 1.0 keeps the header length in 16 bits; pad (preamble + header + '\n') to 64.
    std::size_t prefix = 10;
    std::size_t total = prefix + dict.size() + 1;
    if ((total + 63) / 64 * 64 - prefix > 0xFFFF)
    {
        prefix = 12;
        total = prefix + dict.size() + 1;
    }
    const std::size_t padded = (total + 63) / 64 * 64;
    dict.append(padded - total, ' ');
    dict += '\n';
    std::size_t elements = 1;
    for (auto d : shape)
    {
        elements *= d;
    }
    std::vector<unsigned char> out(prefix + dict.size() + elements * sizeof(T));
    const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    std::memcpy(out.data(), magic, 6);
    out[6] = prefix == 10 ? 1 : 2;
    out[7] = 0;
    if (prefix == 10)
    {
        store_le(out.data() + 8, static_cast<std::uint16_t>(dict.size()));
    }
    else
    {
        store_le(out.data() + 8, static_cast<std::uint32_t>(dict.size()));
    }
    std::memcpy(out.data() + prefix, dict.data(), dict.size());
    unsigned char* p = out.data() + prefix + dict.size();
    for (std::size_t i = 0; i < elements; ++i)
    {
        if constexpr (std::is_same<T, bool>::value)
        {
            p[i] = data[i] ? 1 : 0;
        }
        else
        {
            store_scalar(p + i * sizeof(T), data[i], false);
        }
    }
    return out;
}

} // namespace detail

/// Reads the header of the `.npy` file at `path` (the whole file is read and validated).
inline npy_header load_npy_header(const std::string& path)
{
    return detail::parse_npy_header(detail::read_file_bytes(path, "load_npy"), path);
}

/// The array in the `.npy` file at `path`, converted to `T`.
/// @throws io_error if the file cannot be read; format_error if it is not a valid `.npy` file
/// or holds a type other than numbers (e.g. Python objects).
template <class T>
xt::xarray<T> load_npy(const std::string& path)
{
    const auto bytes = detail::read_file_bytes(path, "load_npy");
    const npy_header h = detail::parse_npy_header(bytes, path);
    xt::xarray<T> out(h.shape);
    detail::npy_values(bytes, h, out.data(), out.size());
    return out;
}

/// Writes `e` to `path` as a `.npy` file (atomically: temporary file, then rename).
template <class E>
void save_npy(const std::string& path, const xt::xexpression<E>& e)
{
    using value_type = std::decay_t<typename E::value_type>;
    const xt::xarray<value_type> values = e.derived_cast(); // row-major copy
    const std::vector<std::size_t> shape(values.shape().begin(), values.shape().end());
    const auto bytes = detail::encode_npy(values.data(), shape);
    detail::write_file_atomically(path, bytes.data(), bytes.size(), "save_npy");
}

} // namespace io

// One spelling for the functions users call, like the rest of the API (`xcnn::load`, ...); the
// `io::` names keep working.
using io::load_npy;
using io::load_npy_header;
using io::npy_header;
using io::save_npy;

/// Writes each parameter and buffer of `net` (its `buffers()`, if it has that member) to
/// `dir/<name>.npy` (e.g. `0.weight.npy`, `1.running_mean.npy`), in the layouts PyTorch uses,
/// creating `dir` if needed: one file per key of PyTorch's `state_dict`, which lists buffers too.
/// @throws io_error if a file cannot be written.
template <class Net>
void export_npy(Net& net, const std::string& dir)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
    {
        throw io_error(detail::concat("export_npy: cannot create directory '", dir, "': ", ec.message()));
    }
    auto write = [&](const auto& tensors)
    {
        for (const auto& p : tensors)
        {
            const auto bytes = io::detail::encode_npy(p.data(), p.shape());
            io::detail::write_file_atomically((fs::path(dir) / (p.name() + ".npy")).string(), bytes.data(),
                                              bytes.size(), "export_npy");
        }
    };
    write(net.parameters());
    write(io::detail::buffers_of(net));
}

namespace io
{
namespace detail
{

/// Reads and checks `dir/<name>.npy` for each of `tensors` (parameters or buffers, `what`
/// naming them in messages) into `staged`, and records the file names in `expected`.
template <class T, class Handles>
void stage_npy(const Handles& tensors, const std::string& dir, const char* what, std::vector<std::vector<T>>& staged,
               std::set<std::string>& expected)
{
    namespace fs = std::filesystem;
    using xcnn::detail::concat;
    using xcnn::detail::shape_to_string;
    for (const auto& p : tensors)
    {
        const std::string path = (fs::path(dir) / (p.name() + ".npy")).string();
        expected.insert(p.name() + ".npy");
        std::error_code ec;
        if (!fs::exists(path, ec))
        {
            throw io_error(concat("import_npy: missing ", quoted(path), " for ", what, " '", p.name(), "' of shape ",
                                  shape_to_string(p.shape())));
        }
        const auto bytes = read_file_bytes(path, "import_npy");
        const npy_header h = parse_npy_header(bytes, path);
        if (h.shape != p.shape())
        {
            throw shape_error(concat("import_npy: ", what, " '", p.name(), "' has shape ", shape_to_string(p.shape()),
                                     " in the network but ", shape_to_string(h.shape), " in ", quoted(path)));
        }
        staged.emplace_back(p.size());
        npy_values(bytes, h, staged.back().data(), p.size());
    }
}

} // namespace detail
} // namespace io

/// Loads every parameter and buffer of `net` (its `buffers()`, if it has that member) from
/// `dir/<name>.npy`, as written by `export_npy` or by `np.save` of each entry of a PyTorch
/// `state_dict` (which lists buffers too). Float64 or integer files are converted to the
/// network's type. All files are read and checked before any tensor changes, so on an error the
/// network is left as it was.
///
/// With `strict` (the default), a `.npy` file in `dir` whose name is no parameter or buffer of
/// `net` is an error too, as PyTorch's `load_state_dict(strict=True)` rejects unexpected keys.
/// @throws io_error if a parameter's or buffer's file is missing or unreadable; format_error if
/// one is not a valid `.npy` file; shape_error naming the tensor, the file and both shapes if a
/// shape differs, or naming the unexpected files.
template <class Net>
void import_npy(Net& net, const std::string& dir, bool strict = true)
{
    namespace fs = std::filesystem;
    using T = typename Net::value_type;
    using detail::concat;
    const auto params = net.parameters();
    const auto buffers = io::detail::buffers_of(net);
    std::vector<std::vector<T>> staged;
    std::set<std::string> expected;
    io::detail::stage_npy(params, dir, "parameter", staged, expected);
    io::detail::stage_npy(buffers, dir, "buffer", staged, expected);
    if (strict)
    {
        std::vector<std::string> unexpected;
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        {
            const std::string name = it->path().filename().string();
            if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0 && expected.count(name) == 0)
            {
                unexpected.push_back(name);
            }
        }
        if (!unexpected.empty())
        {
            std::sort(unexpected.begin(), unexpected.end()); // directory order is the file system's
            std::string list;
            for (const auto& n : unexpected)
            {
                list += (list.empty() ? "" : ", ") + n;
            }
            throw shape_error(concat("import_npy: ", io::detail::quoted(dir), " holds ", unexpected.size(),
                                     " .npy file(s) that are no ",
                                     buffers.empty() ? "parameter" : "parameter or buffer", " of the network (", list,
                                     "); pass strict = false to ignore them"));
        }
    }
    // Everything is read and fits: commit.
    std::size_t k = 0;
    for (const auto& p : params)
    {
        std::copy(staged[k].begin(), staged[k].end(), p.data());
        ++k;
    }
    for (const auto& b : buffers)
    {
        std::copy(staged[k].begin(), staged[k].end(), b.data());
        ++k;
    }
}

} // namespace xcnn

#endif // XCNN_IO_NPY_HPP
