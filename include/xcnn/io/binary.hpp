/// @file
/// Byte-level helpers shared by xcnn's file formats: fixed-endian integers, overflow-checked
/// sizes, CRC-32, reading a whole file and replacing a file atomically.
#ifndef XCNN_IO_BINARY_HPP
#define XCNN_IO_BINARY_HPP

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#if defined(_WIN32)
#include <process.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "../core/error.hpp"

namespace xcnn
{
namespace io
{
namespace detail
{

using xcnn::detail::concat;

/// `'path'`, for error messages.
inline std::string quoted(const std::string& path)
{
    return "'" + path + "'";
}

/// The message of `errno` value `code`.
inline std::string errno_message(int code)
{
    return std::error_code(code, std::generic_category()).message();
}

/// Reads an unsigned integer of `Bytes` bytes stored big-endian at `p`.
template <class U, std::size_t Bytes = sizeof(U)>
U load_be(const unsigned char* p) noexcept
{
    U v = 0;
    for (std::size_t i = 0; i < Bytes; ++i)
    {
        v = static_cast<U>((v << 8) | p[i]);
    }
    return v;
}

/// Reads an unsigned integer of `Bytes` bytes stored little-endian at `p`.
template <class U, std::size_t Bytes = sizeof(U)>
U load_le(const unsigned char* p) noexcept
{
    U v = 0;
    for (std::size_t i = Bytes; i-- > 0;)
    {
        v = static_cast<U>((v << 8) | p[i]);
    }
    return v;
}

/// Writes the low `Bytes` bytes of `v` big-endian to `p`.
template <class U, std::size_t Bytes = sizeof(U)>
void store_be(unsigned char* p, U v) noexcept
{
    for (std::size_t i = Bytes; i-- > 0;)
    {
        p[i] = static_cast<unsigned char>(v & 0xFFu);
        v = static_cast<U>(v >> 8);
    }
}

/// Writes the low `Bytes` bytes of `v` little-endian to `p`.
template <class U, std::size_t Bytes = sizeof(U)>
void store_le(unsigned char* p, U v) noexcept
{
    for (std::size_t i = 0; i < Bytes; ++i)
    {
        p[i] = static_cast<unsigned char>(v & 0xFFu);
        v = static_cast<U>(v >> 8);
    }
}

/// Appends `v` little-endian to `out`.
template <class U>
void append_le(std::vector<unsigned char>& out, U v)
{
    unsigned char bytes[sizeof(U)];
    store_le(bytes, v);
    out.insert(out.end(), bytes, bytes + sizeof(U));
}

/// Unsigned integer type of the same size as the arithmetic type `T`, to move its bytes.
template <std::size_t Size>
struct uint_of_size;
template <>
struct uint_of_size<1>
{
    using type = std::uint8_t;
};
template <>
struct uint_of_size<2>
{
    using type = std::uint16_t;
};
template <>
struct uint_of_size<4>
{
    using type = std::uint32_t;
};
template <>
struct uint_of_size<8>
{
    using type = std::uint64_t;
};

/// The value of type `T` whose bytes are stored at `p`, little-endian (`big` = false) or
/// big-endian; `T` is an integer or an IEEE-754 floating-point type.
template <class T>
T load_scalar(const unsigned char* p, bool big) noexcept
{
    using U = typename uint_of_size<sizeof(T)>::type;
    const U bits = big ? load_be<U>(p) : load_le<U>(p);
    T v;
    std::memcpy(&v, &bits, sizeof(T));
    return v;
}

/// Stores `v` little-endian (`big` = false) or big-endian at `p`.
template <class T>
void store_scalar(unsigned char* p, T v, bool big) noexcept
{
    using U = typename uint_of_size<sizeof(T)>::type;
    U bits;
    std::memcpy(&bits, &v, sizeof(T));
    if (big)
    {
        store_be(p, bits);
    }
    else
    {
        store_le(p, bits);
    }
}

/// `a * b` into `out`; false, leaving `out` unspecified, if the product overflows `size_t`.
inline bool checked_mul(std::size_t a, std::size_t b, std::size_t& out) noexcept
{
    if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a)
    {
        return false;
    }
    out = a * b;
    return true;
}

/// Product of `dims` times `element_size` into `bytes`, the product of the dimensions into
/// `elements`; false if the product of the non-zero dimensions times `element_size` exceeds
/// PTRDIFF_MAX. Not only the total counts: xtensor computes strides as signed products of
/// trailing dimensions, so a shape with a zero next to huge dimensions holds no element but
/// would still overflow them.
template <class Dims>
bool checked_extent(const Dims& dims, std::size_t element_size, std::size_t& elements, std::size_t& bytes) noexcept
{
    constexpr auto limit = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
    std::size_t nonzero = 1;
    bool empty = false;
    for (auto d : dims)
    {
        if (static_cast<std::uint64_t>(d) > limit)
        {
            return false;
        }
        const auto size = static_cast<std::size_t>(d);
        if (size == 0)
        {
            empty = true;
        }
        else if (!checked_mul(nonzero, size, nonzero) || nonzero > limit)
        {
            return false;
        }
    }
    std::size_t span = 0;
    if (!checked_mul(nonzero, element_size, span) || span > limit)
    {
        return false;
    }
    elements = empty ? 0 : nonzero;
    bytes = empty ? 0 : span;
    return true;
}

/// The CRC-32 lookup table (IEEE 802.3, reflected polynomial 0xEDB88320).
inline const std::array<std::uint32_t, 256>& crc32_table() noexcept
{
    static const std::array<std::uint32_t, 256> table = []
    {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i)
        {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k)
            {
                c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            t[i] = c;
        }
        return t;
    }();
    return table;
}

/// CRC-32 of `size` bytes, continuing from `crc` (0 to start): the checksum of zlib's `crc32`,
/// Python's `zlib.crc32`, gzip and PNG.
inline std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept
{
    const auto& table = crc32_table();
    const auto* p = static_cast<const unsigned char*>(data);
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i)
    {
        crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    }
    return ~crc;
}

/// The whole content of the file at `path`.
/// @throws io_error if it cannot be opened or read.
inline std::vector<unsigned char> read_file_bytes(const std::string& path, const char* what = "read")
{
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
    {
        throw io_error(concat(what, ": ", quoted(path), " is a directory, not a file"));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in)
    {
        const int code = errno;
        throw io_error(concat(what, ": cannot open ", quoted(path), ": ", errno_message(code)));
    }
    in.seekg(0, std::ios::end);
    const std::streamoff end = in.tellg();
    in.seekg(0, std::ios::beg);
    if (end < 0 || !in)
    {
        throw io_error(concat(what, ": cannot determine the size of ", quoted(path)));
    }
    std::vector<unsigned char> bytes(static_cast<std::size_t>(end));
    if (!bytes.empty() && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(end)))
    {
        throw io_error(concat(what, ": reading ", quoted(path), " failed after ", in.gcount(), " of ", end, " bytes"));
    }
    return bytes;
}

/// A temporary file name next to `target` (same directory, hence same file system, so a
/// rename onto `target` is atomic): `.<name>.tmp-<pid>-<random>`.
inline std::filesystem::path temporary_sibling(const std::filesystem::path& target)
{
    std::random_device device;
    std::uint64_t tag = (std::uint64_t(device()) << 32) ^ device();
#if defined(_WIN32)
    const long pid = static_cast<long>(_getpid());
#else
    const long pid = static_cast<long>(::getpid());
#endif
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(tag));
    // Appended piece by piece: `"." + std::string` makes GCC 12 in C++20 report a false -Wrestrict
    // overlap (GCC bug 105651) in every program that saves a file, fatal under -Werror.
    std::string name = ".";
    name += target.filename().string();
    name += ".tmp-";
    name += std::to_string(pid);
    name += '-';
    name += hex;
    return target.parent_path() / name;
}

/// Replaces the file at `path` with `size` bytes from `data`, atomically: the bytes go to a new
/// temporary file in the same directory, which is flushed to the disk (fsync) and then renamed
/// over `path`. A reader sees either the old file or the complete new one; if anything fails,
/// the old file is untouched, the temporary file is removed and `io_error` names the step
/// and the operating system's reason.
inline void write_file_atomically(const std::string& path, const void* data, std::size_t size,
                                  const char* what = "write")
{
    namespace fs = std::filesystem;
    const fs::path target(path);
    if (target.filename().empty())
    {
        throw io_error(concat(what, ": ", quoted(path), " does not name a file"));
    }
    const fs::path tmp = temporary_sibling(target);
    const std::string tmp_name = tmp.string();
#if defined(_WIN32)
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out)
        {
            throw io_error(
                concat(what, ": cannot create the temporary file ", quoted(tmp_name), " for ", quoted(path)));
        }
        out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
        out.flush();
        if (!out)
        {
            out.close();
            std::error_code ignored;
            fs::remove(tmp, ignored);
            throw io_error(concat(what, ": writing ", quoted(tmp_name), " failed"));
        }
    }
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec)
    {
        std::error_code ignored;
        fs::remove(tmp, ignored);
        throw io_error(concat(what, ": cannot rename ", quoted(tmp_name), " to ", quoted(path), ": ", ec.message()));
    }
#else
    int fd = ::open(tmp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
    {
        const int code = errno;
        throw io_error(concat(what, ": cannot create a temporary file next to ", quoted(path), " (", quoted(tmp_name),
                              "): ", errno_message(code)));
    }
    // On failure: close, remove the temporary file, report. The target was never touched.
    auto fail = [&](const std::string& step, int code)
    {
        if (fd >= 0)
        {
            ::close(fd);
        }
        ::unlink(tmp_name.c_str());
        throw io_error(concat(what, ": ", step, " ", quoted(tmp_name), " (for ", quoted(path),
                              ") failed: ", errno_message(code), "; ", quoted(path), " was left unchanged"));
    };
    const auto* p = static_cast<const unsigned char*>(data);
    std::size_t left = size;
    while (left > 0)
    {
        const std::size_t chunk = left < (std::size_t(1) << 30) ? left : (std::size_t(1) << 30);
        const ::ssize_t n = ::write(fd, p, chunk);
        if (n < 0)
        {
            if (errno == EINTR)
            {
                continue;
            }
            fail("writing", errno);
        }
        if (n == 0)
        {
            fail("writing", EIO);
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0)
    {
        fail("flushing (fsync)", errno);
    }
    const int closed = ::close(fd);
    fd = -1;
    if (closed != 0)
    {
        fail("closing", errno);
    }
    if (::rename(tmp_name.c_str(), path.c_str()) != 0)
    {
        const int code = errno;
        ::unlink(tmp_name.c_str());
        throw io_error(concat(what, ": cannot rename ", quoted(tmp_name), " to ", quoted(path), ": ",
                              errno_message(code), "; ", quoted(path), " was left unchanged"));
    }
    // Make the rename itself durable. Best effort: some file systems refuse fsync on a
    // directory, and the new file is complete and in place either way.
    const std::string dir = target.parent_path().empty() ? std::string(".") : target.parent_path().string();
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0)
    {
        (void)::fsync(dir_fd);
        ::close(dir_fd);
    }
#endif
}

} // namespace detail
} // namespace io
} // namespace xcnn

#endif // XCNN_IO_BINARY_HPP
