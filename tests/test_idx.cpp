// IDX reader/writer (io/idx.hpp, io/mnist.hpp, io/gzip.hpp): round trips raw and gzip, and every
// malformed file gives a clear exception — never a crash or a huge allocation.
#include "catch_compat.hpp"

#include "support/error_of.hpp"
#include "support/temp_dir.hpp"

#include <xcnn/io/idx.hpp>
#include <xcnn/io/mnist.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <streambuf>
#include <string>
#include <type_traits>
#include <vector>

namespace
{

using bytes = std::vector<unsigned char>;

/// An IDX file: magic 00 00 type rank, big-endian dims, then `data`.
bytes idx_file(unsigned char type, const std::vector<std::uint32_t>& dims, const bytes& data)
{
    bytes out{0, 0, type, static_cast<unsigned char>(dims.size())};
    for (auto d : dims)
    {
        out.push_back(static_cast<unsigned char>(d >> 24));
        out.push_back(static_cast<unsigned char>(d >> 16));
        out.push_back(static_cast<unsigned char>(d >> 8));
        out.push_back(static_cast<unsigned char>(d));
    }
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

bytes random_bytes(std::size_t n, unsigned seed)
{
    std::mt19937 rng(seed);
    bytes out(n);
    for (auto& b : out)
    {
        b = static_cast<unsigned char>(rng() & 0xFF);
    }
    return out;
}

std::istringstream stream_of(const bytes& b)
{
    return std::istringstream(std::string(b.begin(), b.end()), std::ios::binary);
}

/// An input stream that cannot seek, like a pipe or a gzip stream.
class unseekable_buf : public std::streambuf
{
public:
    explicit unseekable_buf(const bytes& b) : m_data(b.begin(), b.end())
    {
        setg(m_data.data(), m_data.data(), m_data.data() + m_data.size());
    }

private:
    std::vector<char> m_data;
};

struct sample_set
{
    bytes pixels; // N * H * W
    bytes labels; // N
};

sample_set make_samples(std::size_t n, std::size_t h, std::size_t w, unsigned seed)
{
    sample_set s{random_bytes(n * h * w, seed), random_bytes(n, seed + 1)};
    for (auto& l : s.labels)
    {
        l = static_cast<unsigned char>(l % 10);
    }
    return s;
}

void check_images(const xt::xtensor<float, 4>& images, const bytes& pixels, std::size_t n, std::size_t h, std::size_t w)
{
    REQUIRE(images.shape()[0] == n);
    REQUIRE(images.shape()[1] == 1);
    REQUIRE(images.shape()[2] == h);
    REQUIRE(images.shape()[3] == w);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < pixels.size(); ++i)
    {
        const float v = images.data()[i];
        wrong += (v == static_cast<float>(pixels[i]) / 255.0f && v >= 0.0f && v <= 1.0f) ? 0 : 1;
    }
    CHECK(wrong == 0);
}

using xcnn_test::error_of;

} // namespace

TEST_CASE("IDX images and labels read from a stream, pixels scaled to 0..1")
{
    const auto s = make_samples(7, 5, 4, 1);
    auto in = stream_of(idx_file(0x08, {7, 5, 4}, s.pixels));
    check_images(xcnn::io::read_idx_images<float>(in, "mem"), s.pixels, 7, 5, 4);
    auto lin = stream_of(idx_file(0x08, {7}, s.labels));
    const auto labels = xcnn::io::read_idx_labels(lin, "mem");
    REQUIRE(labels.size() == 7);
    for (std::size_t i = 0; i < 7; ++i)
    {
        CHECK(labels(i) == s.labels[i]);
    }
    auto din = stream_of(idx_file(0x08, {7, 5, 4}, s.pixels));
    const auto doubles = xcnn::io::read_idx_images<double>(din);
    CHECK(doubles(6, 0, 4, 3) == static_cast<double>(s.pixels.back()) / 255.0);
}

TEST_CASE("IDX round trip through files, raw and gzip")
{
    xcnn_test::temp_dir dir;
    const auto s = make_samples(9, 6, 3, 2);
    xt::xtensor<float, 4> images(std::array<std::size_t, 4>{9, 1, 6, 3});
    for (std::size_t i = 0; i < s.pixels.size(); ++i)
    {
        images.data()[i] = static_cast<float>(s.pixels[i]) / 255.0f;
    }
    xt::xtensor<std::int64_t, 1> labels(std::array<std::size_t, 1>{9});
    for (std::size_t i = 0; i < 9; ++i)
    {
        labels(i) = s.labels[i];
    }

    SECTION("raw")
    {
        xcnn::io::save_idx_images(dir / "img", images);
        xcnn::io::save_idx_labels(dir / "lab", labels);
        CHECK(xcnn_test::read_bytes(dir / "img") == idx_file(0x08, {9, 6, 3}, s.pixels));
        check_images(xcnn::io::load_idx_images<float>(dir / "img"), s.pixels, 9, 6, 3);
        const auto back = xcnn::io::load_idx_labels(dir / "lab");
        CHECK((back == labels));
    }
    if (xcnn::io::has_zlib)
    {
        SECTION("gzip")
        {
            xcnn::io::save_idx_images(dir / "img.gz", images);
            xcnn::io::save_idx_labels(dir / "lab.gz", labels);
            const auto gz = xcnn_test::read_bytes(dir / "img.gz");
            REQUIRE(gz.size() > 2);
            CHECK(gz[0] == 0x1f);
            CHECK(gz[1] == 0x8b);
            check_images(xcnn::io::load_idx_images<float>(dir / "img.gz"), s.pixels, 9, 6, 3);
            CHECK((xcnn::io::load_idx_labels(dir / "lab.gz") == labels));
        }
        SECTION("gzip content is recognised by its magic number, whatever the name")
        {
            xcnn::io::save_idx_images(dir / "img.gz", images);
            std::filesystem::rename(dir / "img.gz", dir / "img-compressed");
            check_images(xcnn::io::load_idx_images<float>(dir / "img-compressed"), s.pixels, 9, 6, 3);
        }
        SECTION("a large gzip file in several chunks")
        {
            const auto big = make_samples(3000, 28, 28, 3); // 2.35 MB of pixels
            xt::xtensor<std::uint8_t, 3> raw(std::array<std::size_t, 3>{3000, 28, 28});
            std::copy(big.pixels.begin(), big.pixels.end(), raw.data());
            xcnn::io::save_idx(dir / "big.gz", raw);
            check_images(xcnn::io::load_idx_images<float>(dir / "big.gz"), big.pixels, 3000, 28, 28);
        }
    }
}

TEST_CASE("the loaders and savers are spelled xcnn::<name> as well as xcnn::io::<name>")
{
    STATIC_REQUIRE(std::is_same_v<xcnn::labelled_images<float>, xcnn::io::labelled_images<float>>);
    STATIC_REQUIRE(std::is_same_v<xcnn::mnist_split, xcnn::io::mnist_split>);
    STATIC_REQUIRE(std::is_same_v<xcnn::idx_data, xcnn::io::idx_data>);
    STATIC_REQUIRE(xcnn::has_zlib == xcnn::io::has_zlib);
    CHECK(&xcnn::read_gzip_file == &xcnn::io::read_gzip_file);
    CHECK(&xcnn::load_idx_labels == &xcnn::io::load_idx_labels);

    xcnn_test::temp_dir dir;
    const auto s = make_samples(4, 5, 3, 6);
    xt::xtensor<std::uint8_t, 3> pixels(std::array<std::size_t, 3>{4, 5, 3});
    std::copy(s.pixels.begin(), s.pixels.end(), pixels.data());
    xt::xtensor<std::int64_t, 1> labels(std::array<std::size_t, 1>{4});
    std::copy(s.labels.begin(), s.labels.end(), labels.begin());
    xcnn::save_idx(dir / "t10k-images-idx3-ubyte", pixels);
    xcnn::save_idx_labels(dir / "t10k-labels-idx1-ubyte", labels);
    const xcnn::labelled_images<float> test = xcnn::load_mnist<float>(dir.path().string(), xcnn::mnist_split::test);
    check_images(test.images, s.pixels, 4, 5, 3);
    CHECK((test.labels == labels));
}

TEST_CASE("IDX of other element types round trip with read_idx")
{
    std::ostringstream out(std::ios::binary);
    xt::xtensor<std::int16_t, 2> i16 = {{-3, 300}, {32767, -32768}};
    xcnn::io::write_idx(out, i16);
    auto in = std::istringstream(out.str(), std::ios::binary);
    CHECK((xcnn::io::read_idx<std::int16_t>(in) == i16));

    std::ostringstream out2(std::ios::binary);
    xt::xtensor<double, 3> f64 = {{{1.5, -2.25}}, {{1e300, -0.0}}};
    xcnn::io::write_idx(out2, f64);
    auto in2 = std::istringstream(out2.str(), std::ios::binary);
    CHECK((xcnn::io::read_idx<double>(in2) == f64));

    std::ostringstream out3(std::ios::binary);
    xt::xtensor<float, 1> f32 = {0.5f, -7.0f, 3.25f};
    xt::xtensor<std::int32_t, 1> i32 = {-1, 70000, 5};
    xcnn::io::write_idx(out3, f32);
    const std::string s3 = out3.str();
    CHECK(static_cast<unsigned char>(s3[2]) == 0x0D);
    auto in3 = std::istringstream(s3, std::ios::binary);
    CHECK((xcnn::io::read_idx<float>(in3) == f32));
    std::ostringstream out4(std::ios::binary);
    xcnn::io::write_idx(out4, i32);
    auto in4 = std::istringstream(out4.str(), std::ios::binary);
    CHECK((xcnn::io::read_idx<std::int32_t>(in4) == i32));
    // Labels may be any integer type.
    auto in5 = std::istringstream(out4.str(), std::ios::binary);
    const auto labels = xcnn::io::read_idx_labels(in5);
    CHECK(labels(1) == 70000);
}

TEST_CASE("malformed IDX data gives a format_error naming the file and the values")
{
    const auto s = make_samples(3, 2, 2, 4);
    auto fails_with = [](const bytes& file, const std::string& part, bool labels = false)
    {
        auto in = stream_of(file);
        const std::string message = error_of(
            [&]
            {
                if (labels)
                {
                    xcnn::io::read_idx_labels(in, "f.idx");
                }
                else
                {
                    xcnn::io::read_idx_images<float>(in, "f.idx");
                }
            });
        INFO(message);
        CHECK_THAT(message, xcnn_test::contains(part));
        CHECK_THAT(message, xcnn_test::contains("'f.idx'"));
        auto again = stream_of(file);
        if (labels)
        {
            CHECK_THROWS_AS(xcnn::io::read_idx_labels(again, "f.idx"), xcnn::format_error);
        }
        else
        {
            CHECK_THROWS_AS(xcnn::io::read_idx_images<float>(again, "f.idx"), xcnn::format_error);
        }
    };

    SECTION("empty file")
    {
        fails_with({}, "not an IDX file: only 0 bytes");
    }
    SECTION("bad magic")
    {
        auto file = idx_file(0x08, {3, 2, 2}, s.pixels);
        file[0] = 'P';
        file[1] = 'K';
        fails_with(file, "magic number 50 4b 08 03 does not start with 00 00");
    }
    SECTION("unknown element type")
    {
        fails_with(idx_file(0x07, {3, 2, 2}, s.pixels), "unknown IDX element type");
    }
    SECTION("rank 0")
    {
        fails_with(idx_file(0x08, {}, {}), "IDX rank 0 is not supported");
    }
    SECTION("wrong rank: labels read as images")
    {
        fails_with(idx_file(0x08, {3}, s.labels), "expected an IDX image file (rank 3");
    }
    SECTION("wrong rank: images read as labels")
    {
        fails_with(idx_file(0x08, {3, 2, 2}, s.pixels), "expected an IDX label file (rank 1", true);
    }
    SECTION("images of float type")
    {
        fails_with(idx_file(0x0D, {1, 1, 1}, {0, 0, 0, 0}), "got rank 3 float32 (0x0D)");
    }
    SECTION("truncated header")
    {
        auto file = idx_file(0x08, {3, 2, 2}, {});
        file.resize(9);
        fails_with(file, "truncated IDX header: rank 3 needs 12 bytes of dimensions, the file has 5");
    }
    SECTION("truncated data")
    {
        auto data = s.pixels;
        data.resize(data.size() - 1);
        fails_with(idx_file(0x08, {3, 2, 2}, data), "= 12 bytes of data but 11 bytes follow (truncated file)");
    }
    SECTION("extra data")
    {
        auto data = s.pixels;
        data.push_back(0);
        fails_with(idx_file(0x08, {3, 2, 2}, data), "but 13 bytes follow (extra data");
    }
    SECTION("sizes that disagree with the file length: 60000 images announced, 3 present")
    {
        fails_with(idx_file(0x08, {60000, 2, 2}, s.pixels), "(60000, 2, 2) ubyte (0x08) = 240000 bytes of data but 12");
    }
    SECTION("dimensions whose product overflows")
    {
        fails_with(idx_file(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, s.pixels), "overflow the addressable size");
        fails_with(idx_file(0x0E, {0xFFFFFFFFu, 0xFFFFFFFFu}, s.pixels), "overflow the addressable size");
    }
    SECTION("no element, but dimensions whose strides overflow")
    {
        // Found by fuzz_idx (UBSan: signed overflow in xtensor's compute_strides): zero elements
        // passed the size check, but a tensor of this shape cannot be created.
        fails_with(idx_file(0x08, {0, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, {}), "overflow the addressable size");
        auto in = stream_of(idx_file(0x08, {0, 28, 28}, {}));
        const auto none = xcnn::io::read_idx<std::uint8_t>(in);
        CHECK(none.size() == 0);
        CHECK(none.shape(2) == 28);
    }
    SECTION("gzip content given to the stream reader")
    {
        fails_with({0x1f, 0x8b, 8, 0, 0, 0}, "is gzip-compressed");
    }
}

TEST_CASE("a lying IDX header on a stream that cannot seek does not allocate what it announces")
{
    // (2^32 - 1)(2^31 - 1) bytes is 8 EiB, just under the largest size a tensor can have: allocating
    // it would throw bad_alloc (or abort under ASan); the reader must report the truncation after
    // reading the 12 bytes that are there.
    const auto s = make_samples(3, 2, 2, 5);
    unseekable_buf buf(idx_file(0x08, {0xFFFFFFFFu, 0x7FFFFFFFu, 1}, s.pixels));
    std::istream in(&buf);
    const std::string message = error_of([&] { xcnn::io::read_idx_images<float>(in, "pipe"); });
    CHECK_THAT(message, xcnn_test::contains("the file ends after 12 (truncated file)"));

    unseekable_buf ok_buf(idx_file(0x08, {3, 2, 2}, s.pixels));
    std::istream ok(&ok_buf);
    check_images(xcnn::io::read_idx_images<float>(ok, "pipe"), s.pixels, 3, 2, 2);

    auto extra = s.pixels;
    extra.push_back(1);
    unseekable_buf extra_buf(idx_file(0x08, {3, 2, 2}, extra));
    std::istream extra_in(&extra_buf);
    CHECK_THAT(error_of([&] { xcnn::io::read_idx_images<float>(extra_in, "pipe"); }),
               xcnn_test::contains("more data follows"));
}

TEST_CASE("damaged and lying gzip IDX files give clear errors")
{
    if (!xcnn::io::has_zlib)
    {
        return; // covered by test_idx_nozlib
    }
    xcnn_test::temp_dir dir;
    const auto s = make_samples(200, 28, 28, 6);
    const auto file = idx_file(0x08, {200, 28, 28}, s.pixels);
    xcnn::io::write_gzip_file(dir / "good.gz", file.data(), file.size());
    const auto gz = xcnn_test::read_bytes(dir / "good.gz");

    SECTION("truncated gzip")
    {
        xcnn_test::write_bytes(dir / "cut.gz", bytes(gz.begin(), gz.begin() + static_cast<long>(gz.size() / 2)));
        const std::string message = error_of([&] { xcnn::io::load_idx_images<float>(dir / "cut.gz"); });
        INFO(message);
        CHECK_THAT(message, xcnn_test::contains("cut.gz"));
        CHECK_THROWS_AS(xcnn::io::load_idx_images<float>(dir / "cut.gz"), xcnn::format_error);
    }
    SECTION("corrupted gzip")
    {
        auto bad = gz;
        for (std::size_t i = 20; i < bad.size() - 8; i += 97)
        {
            bad[i] ^= 0x5A;
        }
        xcnn_test::write_bytes(dir / "bad.gz", bad);
        const std::string message = error_of([&] { xcnn::io::load_idx_images<float>(dir / "bad.gz"); });
        INFO(message);
        CHECK_THAT(message, xcnn_test::contains("corrupt"));
        CHECK_THROWS_AS(xcnn::io::load_idx_images<float>(dir / "bad.gz"), xcnn::format_error);
    }
    SECTION("gzip whose IDX header announces 8 EiB")
    {
        const auto lying = idx_file(0x08, {0xFFFFFFFFu, 0x7FFFFFFFu, 1}, s.pixels);
        xcnn::io::write_gzip_file(dir / "lying.gz", lying.data(), lying.size());
        CHECK_THAT(error_of([&] { xcnn::io::load_idx_images<float>(dir / "lying.gz"); }),
                   xcnn_test::contains("(truncated file)"));
    }
    SECTION("gzip of a truncated IDX file")
    {
        const bytes cut(file.begin(), file.end() - 1);
        xcnn::io::write_gzip_file(dir / "short.gz", cut.data(), cut.size());
        CHECK_THAT(error_of([&] { xcnn::io::load_idx_images<float>(dir / "short.gz"); }),
                   xcnn_test::contains("the file ends after 156799 (truncated file)"));
    }
}

TEST_CASE("MNIST directories: standard names, raw or .gz, and matching counts")
{
    xcnn_test::temp_dir dir;
    const auto train = make_samples(12, 28, 28, 7);
    const auto test = make_samples(5, 28, 28, 8);
    xcnn_test::write_bytes(dir / "train-images-idx3-ubyte", idx_file(0x08, {12, 28, 28}, train.pixels));
    xcnn_test::write_bytes(dir / "train-labels-idx1-ubyte", idx_file(0x08, {12}, train.labels));
    const auto test_images = idx_file(0x08, {5, 28, 28}, test.pixels);
    const auto test_labels = idx_file(0x08, {5}, test.labels);
    if (xcnn::io::has_zlib)
    {
        xcnn::io::write_gzip_file(dir / "t10k-images-idx3-ubyte.gz", test_images.data(), test_images.size());
        xcnn::io::write_gzip_file(dir / "t10k-labels-idx1-ubyte.gz", test_labels.data(), test_labels.size());
    }
    else
    {
        xcnn_test::write_bytes(dir / "t10k-images-idx3-ubyte", test_images);
        xcnn_test::write_bytes(dir / "t10k-labels-idx1-ubyte", test_labels);
    }

    const auto tr = xcnn::io::load_mnist<float>(dir.path().string(), xcnn::io::mnist_split::train);
    check_images(tr.images, train.pixels, 12, 28, 28);
    REQUIRE(tr.labels.size() == 12);
    CHECK(tr.labels(11) == train.labels[11]);
    const auto te = xcnn::io::load_mnist<float>(dir.path().string(), xcnn::io::mnist_split::test);
    check_images(te.images, test.pixels, 5, 28, 28);

    SECTION("label and image files that disagree on the count")
    {
        xcnn_test::write_bytes(dir / "train-labels-idx1-ubyte",
                               idx_file(0x08, {11}, bytes(train.labels.begin(), train.labels.end() - 1)));
        const std::string message =
            error_of([&] { xcnn::io::load_mnist<float>(dir.path().string(), xcnn::io::mnist_split::train); });
        CHECK_THAT(message, xcnn_test::contains("train-images-idx3-ubyte' holds 12 images but"));
        CHECK_THAT(message, xcnn_test::contains("train-labels-idx1-ubyte' holds 11 labels"));
        CHECK_THROWS_AS(xcnn::io::load_mnist<float>(dir.path().string(), xcnn::io::mnist_split::train),
                        xcnn::format_error);
    }
    SECTION("missing files name both candidates")
    {
        std::filesystem::remove(dir / "train-images-idx3-ubyte");
        const std::string message =
            error_of([&] { xcnn::io::load_mnist<float>(dir.path().string(), xcnn::io::mnist_split::train); });
        CHECK_THAT(message, xcnn_test::contains("train-images-idx3-ubyte.gz' exists"));
        CHECK_THROWS_AS(xcnn::io::load_mnist<float>(dir.path().string(), xcnn::io::mnist_split::train), xcnn::io_error);
    }
    SECTION("a file that cannot be opened is an io_error naming it")
    {
        CHECK_THROWS_AS(xcnn::io::load_idx_labels(dir / "nope"), xcnn::io_error);
        CHECK_THAT(error_of([&] { xcnn::io::load_idx_labels(dir / "nope"); }), xcnn_test::contains("nope'"));
    }
}

namespace
{

/// What reading a damaged file gave: a clean xcnn::error, exactly the original content, or a
/// different content (a damage nothing detected).
enum class outcome
{
    error,
    identical,
    different
};

template <class Read, class Expected>
outcome outcome_of(Read&& read, const Expected& expected)
{
    try
    {
        return read() == expected ? outcome::identical : outcome::different;
    }
    catch (const xcnn::error&)
    {
        return outcome::error;
    }
}

/// A small image file (3 images of 5 x 4) and the images it holds.
struct small_images
{
    sample_set samples = make_samples(3, 5, 4, 9);
    bytes file = idx_file(0x08, {3, 5, 4}, samples.pixels);
    xt::xtensor<float, 4> images = read_seekable(file);

    static xt::xtensor<float, 4> read_seekable(const bytes& b)
    {
        auto in = stream_of(b);
        return xcnn::io::read_idx_images<float>(in, "mem");
    }
    static xt::xtensor<float, 4> read_unseekable(const bytes& b)
    {
        unseekable_buf buf(b);
        std::istream in(&buf);
        return xcnn::io::read_idx_images<float>(in, "pipe");
    }
};

} // namespace

TEST_CASE("IDX files cut at every byte, raw and gzip, are clean errors")
{
    xcnn_test::temp_dir dir;
    const small_images s;
    std::size_t tried = 0;
    for (std::size_t n = 0; n < s.file.size(); ++n)
    {
        const bytes cut(s.file.begin(), s.file.begin() + static_cast<long>(n));
        INFO("raw file cut to " << n << " of " << s.file.size() << " bytes");
        CHECK(outcome_of([&] { return small_images::read_seekable(cut); }, s.images) == outcome::error);
        CHECK(outcome_of([&] { return small_images::read_unseekable(cut); }, s.images) == outcome::error);
        xcnn_test::write_bytes(dir / "cut", cut);
        CHECK(outcome_of([&] { return xcnn::io::load_idx_images<float>(dir / "cut"); }, s.images) == outcome::error);
        tried += 3;
    }
    if (xcnn::io::has_zlib)
    {
        xcnn::io::write_gzip_file(dir / "good.gz", s.file.data(), s.file.size());
        const auto gz = xcnn_test::read_bytes(dir / "good.gz");
        REQUIRE(outcome_of([&] { return xcnn::io::load_idx_images<float>(dir / "good.gz"); }, s.images) ==
                outcome::identical);
        // Every prefix, down to the last byte of the gzip trailer (CRC-32 and length): zlib
        // must report the end as premature, not deliver the data as if complete.
        for (std::size_t n = 0; n < gz.size(); ++n)
        {
            xcnn_test::write_bytes(dir / "cut.gz", bytes(gz.begin(), gz.begin() + static_cast<long>(n)));
            INFO("gzip file cut to " << n << " of " << gz.size() << " bytes");
            CHECK(outcome_of([&] { return xcnn::io::load_idx_images<float>(dir / "cut.gz"); }, s.images) ==
                  outcome::error);
            ++tried;
        }
    }
    WARN("IDX truncation: " << tried << " truncated inputs, each a clean xcnn::error");
}

TEST_CASE("IDX files with trailing garbage are clean errors, raw and gzip")
{
    xcnn_test::temp_dir dir;
    const small_images s;
    std::size_t tried = 0;
    std::vector<bytes> garbage;
    for (std::size_t k : {1u, 2u, 3u, 4u, 7u, 16u, 100u, 1000u})
    {
        garbage.push_back(bytes(k, 0));
        garbage.push_back(random_bytes(k, static_cast<unsigned>(k)));
    }
    garbage.push_back(s.file); // two files back to back
    for (const auto& tail : garbage)
    {
        bytes longer = s.file;
        longer.insert(longer.end(), tail.begin(), tail.end());
        INFO(tail.size() << " bytes of garbage after the data");
        CHECK(outcome_of([&] { return small_images::read_seekable(longer); }, s.images) == outcome::error);
        CHECK(outcome_of([&] { return small_images::read_unseekable(longer); }, s.images) == outcome::error);
        xcnn_test::write_bytes(dir / "long", longer);
        CHECK(outcome_of([&] { return xcnn::io::load_idx_images<float>(dir / "long"); }, s.images) == outcome::error);
        tried += 3;
        if (xcnn::io::has_zlib)
        {
            // The garbage inside the compressed data: the IDX reader sees it.
            xcnn::io::write_gzip_file(dir / "long.gz", longer.data(), longer.size());
            CHECK(outcome_of([&] { return xcnn::io::load_idx_images<float>(dir / "long.gz"); }, s.images) ==
                  outcome::error);
            // The garbage after the gzip member: zlib, like gunzip, ignores bytes after a complete
            // member that do not start another one. The content is then intact, never different.
            xcnn::io::write_gzip_file(dir / "good.gz", s.file.data(), s.file.size());
            auto gz = xcnn_test::read_bytes(dir / "good.gz");
            gz.insert(gz.end(), tail.begin(), tail.end());
            xcnn_test::write_bytes(dir / "trailing.gz", gz);
            CHECK(outcome_of([&] { return xcnn::io::load_idx_images<float>(dir / "trailing.gz"); }, s.images) !=
                  outcome::different);
            tried += 2;
        }
    }
    if (xcnn::io::has_zlib)
    {
        // A second gzip member is more content (RFC 1952 multi-member files): extra data.
        xcnn::io::write_gzip_file(dir / "a.gz", s.file.data(), s.file.size());
        xcnn::io::write_gzip_file(dir / "b.gz", s.file.data(), 1);
        auto two = xcnn_test::read_bytes(dir / "a.gz");
        const auto second = xcnn_test::read_bytes(dir / "b.gz");
        two.insert(two.end(), second.begin(), second.end());
        xcnn_test::write_bytes(dir / "two.gz", two);
        CHECK_THAT(error_of([&] { xcnn::io::load_idx_images<float>(dir / "two.gz"); }),
                   xcnn_test::contains("more data follows (extra data after the last element)"));
        ++tried;
    }
    WARN("IDX trailing garbage: " << tried << " inputs, each a clean xcnn::error or the intact content");
}

TEST_CASE("every damaged header byte of an IDX file is a clean error or reads the same")
{
    xcnn_test::temp_dir dir;
    const small_images s;
    std::size_t tried = 0, accepted = 0;
    const std::size_t header = 4 + 4 * 3;
    for (std::size_t i = 0; i < header; ++i)
    {
        for (unsigned mask = 1; mask < 256; ++mask)
        {
            bytes bad = s.file;
            bad[i] = static_cast<unsigned char>(bad[i] ^ mask);
            INFO("header byte " << i << " xor " << mask);
            const outcome seekable = outcome_of([&] { return small_images::read_seekable(bad); }, s.images);
            const outcome piped = outcome_of([&] { return small_images::read_unseekable(bad); }, s.images);
            // No single changed header byte can describe the same 60 pixels as rank-3 ubyte images.
            CHECK(seekable == outcome::error);
            CHECK(piped == seekable);
            accepted += seekable != outcome::error ? 1 : 0;
            tried += 2;
        }
        if (xcnn::io::has_zlib)
        {
            bytes bad = s.file;
            bad[i] ^= 0xFF;
            xcnn::io::write_gzip_file(dir / "bad.gz", bad.data(), bad.size());
            CHECK(outcome_of([&] { return xcnn::io::load_idx_images<float>(dir / "bad.gz"); }, s.images) ==
                  outcome::error);
            ++tried;
        }
    }
    CHECK(accepted == 0);

    // Labels: a type byte changed from ubyte to byte still reads labels 0..9 identically; nothing
    // else may read as different labels.
    const bytes labels_file = idx_file(0x08, {3}, {3, 1, 4});
    auto lin = stream_of(labels_file);
    const auto labels = xcnn::io::read_idx_labels(lin);
    std::size_t labels_identical = 0;
    for (std::size_t i = 0; i < 8; ++i)
    {
        for (unsigned mask = 1; mask < 256; ++mask)
        {
            bytes bad = labels_file;
            bad[i] = static_cast<unsigned char>(bad[i] ^ mask);
            INFO("label header byte " << i << " xor " << mask);
            const outcome o = outcome_of(
                [&]
                {
                    auto in = stream_of(bad);
                    return xcnn::io::read_idx_labels(in);
                },
                labels);
            CHECK(o != outcome::different);
            labels_identical += o == outcome::identical ? 1 : 0;
            ++tried;
        }
    }
    CHECK(labels_identical == 1); // 0x08 ^ 0x01 = 0x09, signed bytes

    if (xcnn::io::has_zlib)
    {
        // Every byte of the gzip file itself: zlib's CRC-32 and length check catch the data,
        // the header flags and the trailer; only bytes gunzip ignores too (time stamp, extra
        // flags, OS) may leave the content as it was.
        xcnn::io::write_gzip_file(dir / "good.gz", s.file.data(), s.file.size());
        const auto gz = xcnn_test::read_bytes(dir / "good.gz");
        for (std::size_t i = 0; i < gz.size(); ++i)
        {
            auto bad = gz;
            bad[i] ^= 0xFF;
            xcnn_test::write_bytes(dir / "bad.gz", bad);
            INFO("gzip byte " << i << " of " << gz.size());
            CHECK(outcome_of([&] { return xcnn::io::load_idx_images<float>(dir / "bad.gz"); }, s.images) !=
                  outcome::different);
            ++tried;
        }
    }
    WARN("IDX damaged bytes: " << tried << " inputs, none read as different data");
}

TEST_CASE("read_idx into a type that cannot hold a value is a value_error, not undefined behaviour")
{
    // Found by fuzz_idx (UBSan: "1e+30 is outside the range of representable values of type
    // 'long'"): a float converted to an integer type it does not fit in is undefined behaviour.
    auto read_as = [](const auto& values, auto as)
    {
        std::ostringstream out(std::ios::binary);
        xcnn::io::write_idx(out, values);
        std::istringstream in(out.str(), std::ios::binary);
        return xcnn::io::read_idx<decltype(as)>(in, "v.idx");
    };
    const xt::xtensor<float, 1> floats = {0.5f, -7.75f, 3.25f, 1e30f};
    CHECK_THROWS_AS(read_as(floats, std::int64_t{}), xcnn::value_error);
    CHECK_THAT(error_of([&] { read_as(floats, std::int64_t{}); }),
               xcnn_test::contains("'v.idx': element 3 of the float32 (0x0D) data, 1e+30, is outside the range of "
                                   "the requested type [-9223372036854775808, 9223372036854775807]"));
    const xt::xtensor<float, 1> in_range = {0.5f, -7.75f, 3.25f};
    CHECK((read_as(in_range, std::int64_t{}) == xt::xtensor<std::int64_t, 1>{0, -7, 3})); // truncated, like a cast
    CHECK_THROWS_AS(read_as(xt::xtensor<double, 1>{std::nan("")}, std::int32_t{}), xcnn::value_error);
    CHECK_THROWS_AS(read_as(xt::xtensor<double, 1>{-1.0}, std::uint8_t{}), xcnn::value_error);
    CHECK(read_as(xt::xtensor<double, 1>{-0.99}, std::uint8_t{})(0) == 0);
    // The bounds of int64 as doubles: -2^63 fits, 2^63 does not.
    CHECK(read_as(xt::xtensor<double, 1>{-9223372036854775808.0}, std::int64_t{})(0) ==
          std::numeric_limits<std::int64_t>::min());
    CHECK_THROWS_AS(read_as(xt::xtensor<double, 1>{9223372036854775808.0}, std::int64_t{}), xcnn::value_error);
    // Integers that would wrap.
    CHECK_THROWS_AS(read_as(xt::xtensor<std::int32_t, 1>{70000}, std::int16_t{}), xcnn::value_error);
    CHECK_THROWS_AS(read_as(xt::xtensor<std::int8_t, 1>{-1}, std::uint8_t{}), xcnn::value_error);
    CHECK_THROWS_AS(read_as(xt::xtensor<std::uint8_t, 1>{200}, std::int8_t{}), xcnn::value_error);
    CHECK(read_as(xt::xtensor<std::uint8_t, 1>{127}, std::int8_t{})(0) == 127);
    CHECK(read_as(xt::xtensor<std::int16_t, 1>{-32768}, std::int32_t{})(0) == -32768);
}
