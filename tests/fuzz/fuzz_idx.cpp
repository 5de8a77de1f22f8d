// libFuzzer harness for the IDX reader (io/idx.hpp) and the gzip stream under it (io/gzip.hpp).
//
// Every input is read four ways that must agree: from a seekable stream, from a stream that cannot
// seek (the path a pipe or a gzip file takes), from a file on disk through load_idx_data (which
// decompresses inputs that start with the gzip magic number), and — for inputs that are not gzip
// already — gzip-compressed into a file first, so that mutated IDX content reaches the reader
// through gzip_streambuf too. A malformed input must end in an xcnn::error; an accepted one must
// convert to images/labels as documented and write back byte for byte. Anything else (another
// exception, a crash, a sanitizer report, a disagreement) aborts.
#include "fuzz_check.hpp"

#include <xcnn/io/idx.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include <unistd.h>

#if XCNN_HAS_ZLIB
#include <zlib.h>
#endif

namespace
{

using bytes = std::vector<unsigned char>;

/// A read-only stream buffer without seeking, like a pipe.
class unseekable_buf : public std::streambuf
{
public:
    unseekable_buf(const std::uint8_t* data, std::size_t size) : m_data(data, data + size)
    {
        setg(m_data.data(), m_data.data(), m_data.data() + m_data.size());
    }

private:
    std::vector<char> m_data;
};

/// One scratch file per process (libFuzzer's -jobs and parallel ctest run several), removed at exit.
struct scratch_file
{
    std::string path = (std::filesystem::temp_directory_path() /
                        ("xcnn-fuzz-idx-" + std::to_string(static_cast<long>(::getpid())) + ".bin"))
                           .string();
    ~scratch_file() { std::remove(path.c_str()); }
};

const std::string& scratch()
{
    static const scratch_file file;
    return file.path;
}

// Each write makes a new file: truncating one in place makes ext4 flush it on close
// (auto_da_alloc), which cost ten times the rest of a run.
void write_raw(const std::string& path, const std::uint8_t* data, std::size_t size)
{
    std::remove(path.c_str());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.close();
    XCNN_FUZZ_CHECK(out.good(), "writing the scratch file");
}

#if XCNN_HAS_ZLIB
// zlib directly rather than xcnn::io::write_gzip_file, whose fsync would dominate every run.
void write_gzip(const std::string& path, const std::uint8_t* data, std::size_t size)
{
    std::remove(path.c_str());
    gzFile file = ::gzopen(path.c_str(), "wb1");
    XCNN_FUZZ_CHECK(file != nullptr, "gzopen for writing");
    const int written = size > 0 ? ::gzwrite(file, data, static_cast<unsigned>(size)) : 0;
    XCNN_FUZZ_CHECK(static_cast<std::size_t>(written) == size, "gzwrite");
    XCNN_FUZZ_CHECK(::gzclose(file) == Z_OK, "gzclose");
}
#endif

/// What one way of reading gave: the parsed file, or that an xcnn::error was thrown.
struct outcome
{
    bool ok = false;
    xcnn::io::idx_data idx;
};

template <class Read>
outcome attempt(Read&& read)
{
    outcome o;
    try
    {
        o.idx = read();
        o.ok = true;
    }
    catch (const xcnn::error&)
    {
    }
    return o;
}

bool same(const outcome& a, const outcome& b)
{
    if (a.ok != b.ok)
    {
        return false;
    }
    return !a.ok || (a.idx.header.type == b.idx.header.type && a.idx.header.dims == b.idx.header.dims &&
                     a.idx.header.elements == b.idx.header.elements &&
                     a.idx.header.data_bytes == b.idx.header.data_bytes && a.idx.data == b.idx.data);
}

/// read_idx<T> of the stored type, written back with write_idx: must reproduce `input` exactly.
template <class T>
void check_round_trip(const std::uint8_t* data, std::size_t size)
{
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size), std::ios::binary);
    const xt::xarray<T> values = xcnn::io::read_idx<T>(in, "fuzz");
    std::ostringstream out(std::ios::binary);
    xcnn::io::write_idx(out, values);
    const std::string written = out.str();
    XCNN_FUZZ_CHECK(written.size() == size &&
                        std::equal(written.begin(), written.end(), reinterpret_cast<const char*>(data)),
                    "read_idx then write_idx does not reproduce the file");
}

void check_accepted(const xcnn::io::idx_data& idx, const std::uint8_t* data, std::size_t size)
{
    const auto& h = idx.header;
    XCNN_FUZZ_CHECK(idx.data.size() == h.data_bytes, "data size differs from the header's");
    XCNN_FUZZ_CHECK(!h.dims.empty() && h.dims.size() <= 16, "rank outside 1..16");
    std::size_t elements = 1;
    for (auto d : h.dims)
    {
        elements *= d; // cannot overflow: the reader checked the product
    }
    XCNN_FUZZ_CHECK(elements == h.elements, "element count is not the product of the dimensions");
    XCNN_FUZZ_CHECK(4 + 4 * h.dims.size() + h.data_bytes == size, "header and data do not make up the file");

    try
    {
        const auto images = xcnn::io::detail::idx_to_images<float>(idx, "fuzz");
        XCNN_FUZZ_CHECK(images.size() == h.elements, "image tensor size");
        for (std::size_t i = 0; i < images.size(); ++i)
        {
            XCNN_FUZZ_CHECK(images.data()[i] == static_cast<float>(idx.data[i]) / 255.0f, "pixel value");
        }
    }
    catch (const xcnn::error&)
    {
        XCNN_FUZZ_CHECK(h.type != xcnn::io::idx_type::u8 || h.dims.size() != 3, "valid images refused");
    }
    try
    {
        const auto labels = xcnn::io::detail::idx_to_labels(idx, "fuzz");
        XCNN_FUZZ_CHECK(labels.size() == h.elements, "label tensor size");
    }
    catch (const xcnn::error&)
    {
        XCNN_FUZZ_CHECK(h.dims.size() != 1 || h.type == xcnn::io::idx_type::f32 || h.type == xcnn::io::idx_type::f64,
                        "valid labels refused");
    }

    switch (h.type)
    {
    case xcnn::io::idx_type::u8:
        check_round_trip<std::uint8_t>(data, size);
        break;
    case xcnn::io::idx_type::i8:
        check_round_trip<std::int8_t>(data, size);
        break;
    case xcnn::io::idx_type::i16:
        check_round_trip<std::int16_t>(data, size);
        break;
    case xcnn::io::idx_type::i32:
        check_round_trip<std::int32_t>(data, size);
        break;
    case xcnn::io::idx_type::f32:
        check_round_trip<float>(data, size);
        break;
    case xcnn::io::idx_type::f64:
        check_round_trip<double>(data, size);
        break;
    }

    // Conversions a caller may ask for whatever the stored type: they must not be undefined
    // (an out-of-range float converted to an integer is).
    for (int as = 0; as < 3; ++as)
    {
        std::istringstream in(std::string(reinterpret_cast<const char*>(data), size), std::ios::binary);
        try
        {
            if (as == 0)
            {
                (void)xcnn::io::read_idx<double>(in, "fuzz");
            }
            else if (as == 1)
            {
                (void)xcnn::io::read_idx<std::int64_t>(in, "fuzz");
            }
            else
            {
                (void)xcnn::io::read_idx<std::uint8_t>(in, "fuzz");
            }
        }
        catch (const xcnn::error&)
        {
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string input(reinterpret_cast<const char*>(data), size);
    const outcome seekable = attempt(
        [&]
        {
            std::istringstream in(input, std::ios::binary);
            return xcnn::io::read_idx_data(in, "fuzz");
        });
    const outcome piped = attempt(
        [&]
        {
            unseekable_buf buf(data, size);
            std::istream in(&buf);
            return xcnn::io::read_idx_data(in, "fuzz");
        });
    XCNN_FUZZ_CHECK(same(seekable, piped), "seekable and unseekable streams disagree");

    const std::string& path = scratch();
    write_raw(path, data, size);
    const outcome from_file = attempt([&] { return xcnn::io::load_idx_data(path); });
    const bool gzip = xcnn::io::is_gzip_magic(data, size);
    if (!gzip)
    {
        XCNN_FUZZ_CHECK(same(seekable, from_file), "load_idx_data and the stream reader disagree");
    }
    else if (xcnn::io::has_zlib)
    {
        // A gzip input: load_idx_data must be the stream reader applied to the decompressed bytes.
        bool decompressed = false;
        std::string plain;
        try
        {
            const auto out = xcnn::io::read_gzip_file(path);
            plain.assign(out.begin(), out.end());
            decompressed = true;
        }
        catch (const xcnn::error&)
        {
        }
        if (decompressed)
        {
            const outcome direct = attempt(
                [&]
                {
                    std::istringstream in(plain, std::ios::binary);
                    return xcnn::io::read_idx_data(in, "fuzz");
                });
            XCNN_FUZZ_CHECK(same(direct, from_file), "gzip file and its decompressed bytes disagree");
        }
        else
        {
            XCNN_FUZZ_CHECK(!from_file.ok, "undecompressable gzip accepted");
        }
    }

#if XCNN_HAS_ZLIB
    if (!gzip)
    {
        write_gzip(path, data, size);
        const outcome compressed = attempt([&] { return xcnn::io::load_idx_data(path); });
        XCNN_FUZZ_CHECK(same(seekable, compressed), "the gzip-compressed input reads differently");
    }
#endif

    if (seekable.ok)
    {
        check_accepted(seekable.idx, data, size);
    }
    return 0;
}
