/// @file
/// Reading and writing gzip files through zlib, for the `.gz` data sets (MNIST's IDX files).
///
/// zlib is optional. xcnn's CMake target defines `XCNN_HAS_ZLIB=1` and links `ZLIB::ZLIB` when
/// CMake finds zlib; without it (or when a program using xcnn without CMake does not define
/// `XCNN_HAS_ZLIB=1` and link `-lz`), every function here throws `io_error` saying that xcnn
/// was built without zlib.
#ifndef XCNN_IO_GZIP_HPP
#define XCNN_IO_GZIP_HPP

#include <cstddef>
#include <istream>
#include <memory>
#include <streambuf>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "binary.hpp"

#ifndef XCNN_HAS_ZLIB
/// 1 when xcnn may call zlib (set by xcnn's CMake target or by hand with `-lz`), else 0.
#define XCNN_HAS_ZLIB 0
#endif

#if XCNN_HAS_ZLIB
#include <zlib.h>
#endif

namespace xcnn
{
namespace io
{

/// True when xcnn was compiled with zlib, i.e. can read and write `.gz` files.
inline constexpr bool has_zlib = XCNN_HAS_ZLIB != 0;

/// True if `path` ends in `.gz`.
inline bool has_gz_suffix(const std::string& path)
{
    return path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
}

/// True if `bytes` (at least two) start with the gzip magic number 1f 8b.
inline bool is_gzip_magic(const unsigned char* bytes, std::size_t size) noexcept
{
    return size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

namespace detail
{

/// The error for a gzip file when zlib is missing.
inline io_error no_zlib_error(const std::string& path)
{
    return io_error(concat(quoted(path),
                           " is gzip-compressed, but xcnn was built without zlib (XCNN_HAS_ZLIB is not set); "
                           "decompress it first (gunzip) or rebuild with zlib (Debian: zlib1g-dev)"));
}

#if XCNN_HAS_ZLIB

/// A read-only stream buffer that decompresses a gzip file. It cannot seek, so readers see an
/// input of unknown length. Decompression errors (corrupt or truncated data) throw
/// `format_error`, which `gzip_istream` lets through to the caller.
class gzip_streambuf : public std::streambuf
{
public:
    explicit gzip_streambuf(const std::string& path) : m_path(path), m_buffer(std::size_t(1) << 16)
    {
        m_file = ::gzopen(path.c_str(), "rb");
        if (m_file == nullptr)
        {
            const int code = errno;
            throw io_error(concat("cannot open ", quoted(path), ": ",
                                  code != 0 ? errno_message(code) : std::string("out of memory")));
        }
        ::gzbuffer(m_file, 1u << 17);
        setg(m_buffer.data(), m_buffer.data(), m_buffer.data());
    }
    gzip_streambuf(const gzip_streambuf&) = delete;
    gzip_streambuf& operator=(const gzip_streambuf&) = delete;
    ~gzip_streambuf() override
    {
        if (m_file != nullptr)
        {
            ::gzclose_r(m_file);
        }
    }

    /// Decompressed bytes delivered so far.
    std::size_t position() const noexcept { return m_total - static_cast<std::size_t>(egptr() - gptr()); }

protected:
    int_type underflow() override
    {
        if (gptr() < egptr())
        {
            return traits_type::to_int_type(*gptr());
        }
        const int n = ::gzread(m_file, m_buffer.data(), static_cast<unsigned>(m_buffer.size()));
        if (n < 0)
        {
            int code = 0;
            const char* message = ::gzerror(m_file, &code);
            const std::string what = message != nullptr ? message : "unknown zlib error";
            if (code == Z_ERRNO)
            {
                throw io_error(concat("reading ", quoted(m_path), " failed: ", errno_message(errno)));
            }
            throw format_error(concat(quoted(m_path), ": corrupt gzip data after ", m_total,
                                      " decompressed bytes (zlib: ", what, ")"));
        }
        if (n == 0)
        {
            // zlib reports a gzip stream cut short as an error only after the data it could
            // decompress; check that the end is a real end.
            int code = 0;
            const char* message = ::gzerror(m_file, &code);
            if (code != Z_OK && code != Z_STREAM_END)
            {
                throw format_error(concat(quoted(m_path), ": corrupt or truncated gzip data after ", m_total,
                                          " decompressed bytes (zlib: ", message != nullptr ? message : "", ")"));
            }
            return traits_type::eof();
        }
        m_total += static_cast<std::size_t>(n);
        setg(m_buffer.data(), m_buffer.data(), m_buffer.data() + n);
        return traits_type::to_int_type(*gptr());
    }

private:
    std::string m_path;
    gzFile m_file = nullptr;
    std::vector<char> m_buffer;
    std::size_t m_total = 0;
};

#endif // XCNN_HAS_ZLIB

} // namespace detail

/// An input stream of the decompressed content of a gzip file. It cannot seek. Errors in the
/// compressed data propagate as `format_error` (the stream's badbit exception is enabled).
/// @throws io_error if the file cannot be opened, or xcnn was built without zlib.
class gzip_istream : public std::istream
{
public:
    /// Opens the gzip file at `path` for reading.
    /// @throws io_error if it cannot be opened, or xcnn was built without zlib.
    explicit gzip_istream(const std::string& path) : std::istream(nullptr)
    {
#if XCNN_HAS_ZLIB
        m_buf = std::make_unique<detail::gzip_streambuf>(path);
        rdbuf(m_buf.get());
        exceptions(std::ios::badbit);
#else
        throw detail::no_zlib_error(path);
#endif
    }

private:
#if XCNN_HAS_ZLIB
    std::unique_ptr<detail::gzip_streambuf> m_buf;
#endif
};

/// The decompressed content of the gzip file at `path`.
/// @throws io_error if it cannot be read or xcnn was built without zlib; format_error if the
/// compressed data is corrupt or truncated.
inline std::vector<unsigned char> read_gzip_file(const std::string& path)
{
    gzip_istream in(path);
    std::vector<unsigned char> out;
    char chunk[1 << 16];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0)
    {
        out.insert(out.end(), chunk, chunk + in.gcount());
    }
    return out;
}

/// Writes `size` bytes from `data` gzip-compressed to `path` (atomically, like
/// `detail::write_file_atomically`: compressed in memory first, then written and renamed).
/// @throws io_error if the file cannot be written or xcnn was built without zlib.
inline void write_gzip_file(const std::string& path, const void* data, std::size_t size, int level = 6)
{
#if XCNN_HAS_ZLIB
    // A gzip member: 10-byte header, raw deflate data, CRC-32 and length (RFC 1952).
    z_stream stream{};
    if (::deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    {
        throw io_error(detail::concat("writing ", detail::quoted(path), ": zlib deflateInit2 failed"));
    }
    std::vector<unsigned char> out(::deflateBound(&stream, static_cast<uLong>(size)) + 64);
    const auto* in = static_cast<const unsigned char*>(data);
    std::size_t in_left = size;
    stream.next_out = out.data();
    stream.avail_out = static_cast<uInt>(out.size() < 0x40000000u ? out.size() : 0x40000000u);
    int ret = Z_OK;
    while (ret != Z_STREAM_END)
    {
        if (stream.avail_in == 0 && in_left > 0)
        {
            const std::size_t chunk = in_left < 0x40000000u ? in_left : 0x40000000u;
            stream.next_in = const_cast<unsigned char*>(in);
            stream.avail_in = static_cast<uInt>(chunk);
            in += chunk;
            in_left -= chunk;
        }
        if (stream.avail_out == 0)
        {
            const std::size_t used = static_cast<std::size_t>(stream.next_out - out.data());
            out.resize(out.size() * 2);
            stream.next_out = out.data() + used;
            const std::size_t free = out.size() - used;
            stream.avail_out = static_cast<uInt>(free < 0x40000000u ? free : 0x40000000u);
        }
        ret = ::deflate(&stream, in_left == 0 ? Z_FINISH : Z_NO_FLUSH);
        if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR)
        {
            ::deflateEnd(&stream);
            throw io_error(detail::concat("writing ", detail::quoted(path), ": zlib deflate failed (", ret, ")"));
        }
    }
    const std::size_t written = static_cast<std::size_t>(stream.next_out - out.data());
    ::deflateEnd(&stream);
    detail::write_file_atomically(path, out.data(), written);
#else
    (void)data;
    (void)size;
    (void)level;
    throw detail::no_zlib_error(path);
#endif
}

} // namespace io

// User-facing names are spelled xcnn::<name>, like xcnn::save and xcnn::load; the io:: spelling
// stays valid for code written against it.
using io::has_zlib;
using io::read_gzip_file;
using io::write_gzip_file;

} // namespace xcnn

#endif // XCNN_IO_GZIP_HPP
