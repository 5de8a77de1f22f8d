/// @file
/// A small protobuf wire-format writer and reader, enough for ONNX files (io/onnx.hpp): varints,
/// 32- and 64-bit fixed fields, length-delimited fields (strings, bytes, nested messages) and
/// packed repeated scalars. No schema and no code generation: the caller knows the field numbers.
///
/// The reader works in place on a byte span and trusts nothing in it: every length is checked
/// against the bytes that remain in the enclosing message, varints are at most ten bytes, nesting
/// is limited, and it never allocates from a length it read (strings and packed arrays are views
/// or are sized by the bytes actually present), so a lying length cannot cause a huge allocation.
/// Every error is an `xcnn::format_error` naming the source, the message path, the field and the
/// byte offset. docs/design.md says why xcnn has its own instead of depending on libprotobuf.
#ifndef XCNN_IO_PROTOBUF_HPP
#define XCNN_IO_PROTOBUF_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace xcnn
{
namespace protobuf
{

/// How a field's value is encoded on the wire (the low three bits of its tag). The deprecated
/// group types 3 and 4 are not supported: ONNX does not use them, and the reader rejects them.
enum class wire_type : std::uint8_t
{
    varint = 0,           ///< int32, int64, uint32, uint64, bool, enum: base-128 varint
    fixed64 = 1,          ///< double, fixed64, sfixed64: 8 bytes little-endian
    length_delimited = 2, ///< string, bytes, nested messages, packed repeated scalars
    fixed32 = 5           ///< float, fixed32, sfixed32: 4 bytes little-endian
};

/// The largest field number protobuf allows (2^29 - 1).
inline constexpr std::uint32_t max_field_number = (std::uint32_t(1) << 29) - 1;

/// How deep messages may nest inside the message a `reader` starts with, by default. ONNX
/// nests model, graph, node, attribute, tensor, type, shape and dimension: eight levels, a few
/// more for subgraphs in attributes.
inline constexpr std::size_t default_max_depth = 32;

/// Builds one protobuf message in memory. Fields are appended in the order they are written;
/// a nested message is built in its own `writer` and appended with `message`.
class writer
{
public:
    /// A varint field (int32, int64, uint64, bool, enum). Negative int32/int64 values are
    /// written as ten-byte two's complement varints, as protobuf does.
    void varint(std::uint32_t field, std::uint64_t value)
    {
        tag(field, wire_type::varint);
        raw_varint(value);
    }
    /// A signed int64 (or int32, or enum) field.
    void int64(std::uint32_t field, std::int64_t value) { varint(field, static_cast<std::uint64_t>(value)); }
    /// A 4-byte little-endian field.
    void fixed32(std::uint32_t field, std::uint32_t value)
    {
        tag(field, wire_type::fixed32);
        raw_le(value, 4);
    }
    /// A 8-byte little-endian field.
    void fixed64(std::uint32_t field, std::uint64_t value)
    {
        tag(field, wire_type::fixed64);
        raw_le(value, 8);
    }
    /// A float field (IEEE-754 binary32).
    void float32(std::uint32_t field, float value)
    {
        std::uint32_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        fixed32(field, bits);
    }
    /// A double field (IEEE-754 binary64).
    void float64(std::uint32_t field, double value)
    {
        std::uint64_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        fixed64(field, bits);
    }
    /// A bytes or string field of `size` bytes.
    void bytes(std::uint32_t field, const void* data, std::size_t size)
    {
        tag(field, wire_type::length_delimited);
        raw_varint(size);
        const auto* p = static_cast<const unsigned char*>(data);
        m_bytes.insert(m_bytes.end(), p, p + size);
    }
    /// A string field.
    void string(std::uint32_t field, const std::string& value) { bytes(field, value.data(), value.size()); }
    /// A nested message field.
    void message(std::uint32_t field, const writer& nested) { bytes(field, nested.m_bytes.data(), nested.size()); }
    /// A repeated int64 (or int32) field not declared packed (proto2's default): one varint
    /// field per value, as protobuf itself writes it.
    void repeated_int64(std::uint32_t field, const std::vector<std::int64_t>& values)
    {
        for (const auto v : values)
        {
            int64(field, v);
        }
    }
    /// A packed repeated int64 (or int32) field (`[packed = true]`): one length-delimited field
    /// of varints.
    void packed_int64(std::uint32_t field, const std::vector<std::int64_t>& values)
    {
        writer body;
        for (const auto v : values)
        {
            body.raw_varint(static_cast<std::uint64_t>(v));
        }
        message(field, body);
    }
    /// A packed repeated float field.
    void packed_float(std::uint32_t field, const std::vector<float>& values)
    {
        writer body;
        for (const float v : values)
        {
            std::uint32_t bits;
            std::memcpy(&bits, &v, sizeof bits);
            body.raw_le(bits, 4);
        }
        message(field, body);
    }

    /// The encoded message so far.
    const std::vector<unsigned char>& data() const noexcept { return m_bytes; }
    /// Its size in bytes.
    std::size_t size() const noexcept { return m_bytes.size(); }
    /// Moves the encoded message out, leaving the writer empty.
    std::vector<unsigned char> release() noexcept { return std::move(m_bytes); }

private:
    void tag(std::uint32_t field, wire_type type)
    {
        if (field == 0 || field > max_field_number)
        {
            throw value_error(
                detail::concat("protobuf writer: field number ", field, " is outside [1, ", max_field_number, "]"));
        }
        raw_varint((std::uint64_t(field) << 3) | static_cast<std::uint64_t>(type));
    }
    void raw_varint(std::uint64_t value)
    {
        while (value >= 0x80)
        {
            m_bytes.push_back(static_cast<unsigned char>((value & 0x7F) | 0x80));
            value >>= 7;
        }
        m_bytes.push_back(static_cast<unsigned char>(value));
    }
    void raw_le(std::uint64_t value, int bytes)
    {
        for (int i = 0; i < bytes; ++i)
        {
            m_bytes.push_back(static_cast<unsigned char>(value & 0xFF));
            value >>= 8;
        }
    }

    std::vector<unsigned char> m_bytes;
};

/// A view of `size` bytes at `data` inside the buffer a `reader` reads; valid as long as that
/// buffer is.
struct byte_view
{
    /// The first byte.
    const unsigned char* data = nullptr;
    /// How many bytes.
    std::size_t size = 0;
    /// The bytes as a string.
    std::string str() const { return std::string(reinterpret_cast<const char*>(data), size); }
};

/// Reads one protobuf message from a byte span, field by field, checking every bound:
///
///     xcnn::protobuf::reader r(bytes.data(), bytes.size(), "model.onnx", "ModelProto");
///     while (r.next())
///     {
///         if (r.field() == 7) { auto graph = r.message("graph"); ... }
///         else r.skip();
///     }
///
/// `next` reads a tag; the caller then reads the value with the accessor of the field's type
/// (which checks the wire type) or skips it. Unknown fields are skipped, as protobuf does. The
/// reader never owns the bytes: they must outlive it and every `byte_view` it returns.
class reader
{
public:
    /// A reader of the message in `size` bytes at `data`; `source` (a file name) and `path` (the
    /// message's name, e.g. "ModelProto") start every error message; nested messages may go
    /// `max_depth` levels deep.
    reader(const unsigned char* data, std::size_t size, std::string source, std::string path,
           std::size_t max_depth = default_max_depth)
        : reader(data, data, size, std::make_shared<const std::string>(std::move(source)), std::move(path), 0,
                 max_depth)
    {
    }

    /// Reads the next field's tag; false at the end of the message.
    /// @throws format_error for a truncated or overlong tag, field number 0, or a wire type
    /// other than 0, 1, 2 and 5.
    bool next()
    {
        if (m_pos == m_end)
        {
            return false;
        }
        m_field_offset = offset();
        m_field = 0; // errors in the tag name no field
        const std::uint64_t key = raw_varint("a field tag");
        const std::uint64_t type = key & 7;
        const std::uint64_t field = key >> 3;
        if (field == 0 || field > max_field_number)
        {
            fail(detail::concat("field number ", field, " is outside [1, ", max_field_number, "]"));
        }
        m_field = static_cast<std::uint32_t>(field);
        if (type != 0 && type != 1 && type != 2 && type != 5)
        {
            fail(detail::concat("wire type ", type,
                                type == 3 || type == 4 ? " (a group, which this reader does not support)"
                                                       : " does not exist"));
        }
        m_type = static_cast<wire_type>(type);
        return true;
    }

    /// The number of the field `next` read.
    std::uint32_t field() const noexcept { return m_field; }
    /// Its wire type.
    wire_type type() const noexcept { return m_type; }
    /// Offset of the field's tag from the start of the outermost buffer.
    std::size_t field_offset() const noexcept { return m_field_offset; }
    /// The message path, e.g. "ModelProto.graph.node".
    const std::string& path() const noexcept { return m_path; }
    /// How many bytes of this message are left to read.
    std::size_t remaining() const noexcept { return static_cast<std::size_t>(m_end - m_pos); }

    /// The value of a varint field.
    /// @throws format_error if the field is not a varint or the varint is truncated or too long.
    std::uint64_t uint64()
    {
        expect(wire_type::varint, "a varint");
        return raw_varint("a varint");
    }
    /// The value of an int64 field (two's complement).
    std::int64_t int64() { return static_cast<std::int64_t>(uint64()); }
    /// The value of an int32 or enum field.
    /// @throws format_error if it does not fit an int32.
    std::int32_t int32()
    {
        const std::int64_t v = int64();
        if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
        {
            fail(detail::concat("value ", v, " does not fit an int32"));
        }
        return static_cast<std::int32_t>(v);
    }
    /// The value of a 32-bit fixed field.
    std::uint32_t fixed32()
    {
        expect(wire_type::fixed32, "a 32-bit value");
        return static_cast<std::uint32_t>(raw_le(4));
    }
    /// The value of a 64-bit fixed field.
    std::uint64_t fixed64()
    {
        expect(wire_type::fixed64, "a 64-bit value");
        return raw_le(8);
    }
    /// The value of a float field.
    float float32()
    {
        const std::uint32_t bits = fixed32();
        float v;
        std::memcpy(&v, &bits, sizeof v);
        return v;
    }
    /// The value of a double field.
    double float64()
    {
        const std::uint64_t bits = fixed64();
        double v;
        std::memcpy(&v, &bits, sizeof v);
        return v;
    }
    /// The bytes of a length-delimited field, in place.
    /// @throws format_error if the field is not length-delimited or its length exceeds what
    /// remains of the message.
    byte_view bytes()
    {
        expect(wire_type::length_delimited, "length-delimited bytes");
        return raw_bytes();
    }
    /// The value of a string field (its length checked first, so the copy is at most the bytes
    /// that remain).
    std::string string() { return bytes().str(); }
    /// A reader of the nested message in this length-delimited field, named `name` in the path.
    /// @throws format_error as `bytes`, or if nesting would exceed the reader's depth limit.
    reader message(const std::string& name)
    {
        const byte_view body = bytes();
        if (m_depth + 1 > m_max_depth)
        {
            fail(detail::concat("messages nest deeper than ", m_max_depth, " levels"));
        }
        return reader(m_begin, body.data, body.size, m_source, m_path + "." + name, m_depth + 1, m_max_depth);
    }
    /// Appends the values of a repeated int64/int32 field to `out`, packed (one length-delimited
    /// field) or not (one varint): parsers must accept both. At most one value per byte present.
    void append_int64(std::vector<std::int64_t>& out)
    {
        if (m_type == wire_type::varint)
        {
            out.push_back(int64());
            return;
        }
        const byte_view body = bytes();
        reader packed(m_begin, body.data, body.size, m_source, m_path, m_depth, m_max_depth);
        packed.m_field = m_field;
        packed.m_field_offset = m_field_offset;
        packed.m_type = wire_type::varint;
        while (packed.m_pos != packed.m_end)
        {
            out.push_back(static_cast<std::int64_t>(packed.raw_varint("a packed varint")));
        }
    }
    /// Appends the values of a repeated float (`Bits` = 32) or double (`Bits` = 64) field
    /// stored as fixed-size values, packed or not, to `out`, bit patterns as unsigned integers.
    /// @throws format_error if a packed field's length is not a multiple of the value size.
    template <int Bits, class U>
    void append_fixed(std::vector<U>& out)
    {
        static_assert(Bits == 32 || Bits == 64, "protobuf::reader::append_fixed: 32 or 64 bits");
        constexpr wire_type scalar = Bits == 32 ? wire_type::fixed32 : wire_type::fixed64;
        constexpr std::size_t width = Bits / 8;
        if (m_type == scalar)
        {
            out.push_back(static_cast<U>(raw_le(width)));
            return;
        }
        const byte_view body = bytes();
        if (body.size % width != 0)
        {
            fail(detail::concat("packed ", Bits, "-bit values take ", body.size, " bytes, not a multiple of ", width));
        }
        out.reserve(out.size() + body.size / width);
        for (std::size_t i = 0; i < body.size; i += width)
        {
            std::uint64_t v = 0;
            for (std::size_t b = width; b-- > 0;)
            {
                v = (v << 8) | body.data[i + b];
            }
            out.push_back(static_cast<U>(v));
        }
    }
    /// Skips the value of the current field.
    /// @throws format_error if it runs past the end of the message.
    void skip()
    {
        switch (m_type)
        {
        case wire_type::varint:
            (void)raw_varint("a varint");
            break;
        case wire_type::fixed64:
            (void)raw_le(8);
            break;
        case wire_type::fixed32:
            (void)raw_le(4);
            break;
        case wire_type::length_delimited:
            (void)raw_bytes();
            break;
        }
    }

    /// Throws `format_error` "<source>: <path> field <n> at byte <offset>: <message>".
    [[noreturn]] void fail(const std::string& message) const
    {
        throw format_error(detail::concat(*m_source, ": ", m_path, m_field ? " field " : "",
                                          m_field ? std::to_string(m_field) : std::string(), " at byte ",
                                          m_field_offset, ": ", message));
    }

    /// Throws `format_error` "<source>: <path> at byte <offset>: <message>", the offset that of
    /// the message's first byte: for what is wrong with the message as a whole, once read.
    [[noreturn]] void fail_message(const std::string& message) const
    {
        throw format_error(detail::concat(*m_source, ": ", m_path, " at byte ", m_start, ": ", message));
    }

private:
    reader(const unsigned char* begin, const unsigned char* data, std::size_t size,
           std::shared_ptr<const std::string> source, std::string path, std::size_t depth, std::size_t max_depth)
        : m_begin(begin), m_pos(data), m_end(data + size), m_source(std::move(source)), m_path(std::move(path)),
          m_depth(depth), m_max_depth(max_depth), m_start(offset()), m_field_offset(m_start)
    {
    }

    std::size_t offset() const noexcept { return static_cast<std::size_t>(m_pos - m_begin); }

    void expect(wire_type want, const char* what) const
    {
        if (m_type != want)
        {
            fail(detail::concat("has wire type ", static_cast<int>(m_type), " but must be ", what, " (wire type ",
                                static_cast<int>(want), ")"));
        }
    }

    std::uint64_t raw_varint(const char* what)
    {
        std::uint64_t value = 0;
        for (int i = 0; i < 10; ++i)
        {
            if (m_pos == m_end)
            {
                fail(detail::concat(what, " is cut off by the end of the message (", i, " bytes read)"));
            }
            const unsigned char byte = *m_pos++;
            if (i == 9 && byte > 1)
            {
                fail(detail::concat(what, " does not fit 64 bits"));
            }
            value |= std::uint64_t(byte & 0x7F) << (7 * i);
            if ((byte & 0x80) == 0)
            {
                return value;
            }
        }
        fail(detail::concat(what, " is longer than 10 bytes"));
    }

    std::uint64_t raw_le(std::size_t width)
    {
        if (remaining() < width)
        {
            fail(detail::concat("a ", width * 8, "-bit value needs ", width, " bytes but ", remaining(),
                                " remain in the message"));
        }
        std::uint64_t v = 0;
        for (std::size_t b = width; b-- > 0;)
        {
            v = (v << 8) | m_pos[b];
        }
        m_pos += width;
        return v;
    }

    byte_view raw_bytes()
    {
        const std::uint64_t length = raw_varint("a length");
        if (length > remaining())
        {
            fail(detail::concat("length ", length, " exceeds the ", remaining(), " bytes left in the message"));
        }
        byte_view view{m_pos, static_cast<std::size_t>(length)};
        m_pos += view.size;
        return view;
    }

    const unsigned char* m_begin; // the outermost buffer, for offsets
    const unsigned char* m_pos;
    const unsigned char* m_end;
    std::shared_ptr<const std::string> m_source; // shared by nested readers: no copy per message
    std::string m_path;
    std::size_t m_depth;
    std::size_t m_max_depth;
    std::size_t m_start; // offset of the message's first byte
    std::size_t m_field_offset;
    std::uint32_t m_field = 0;
    wire_type m_type = wire_type::varint;
};

} // namespace protobuf
} // namespace xcnn

#endif // XCNN_IO_PROTOBUF_HPP
