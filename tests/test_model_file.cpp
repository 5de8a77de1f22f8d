// Model files (io/model.hpp): xcnn::save / xcnn::load round trip bit for bit; any damaged byte,
// a truncated file, a newer version or another architecture is a clear error that leaves the
// network unchanged; a failed save leaves the previous file intact and no temporary file behind.
#include "catch_compat.hpp"

#include "support/buffered_net.hpp"
#include "support/error_of.hpp"
#include "support/temp_dir.hpp"

#include <xcnn/io/model.hpp>
#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace
{

template <class T = float>
auto small_net()
{
    return xcnn::Sequential{xcnn::Conv2D<T>(1, 2, 3), xcnn::ReLU<T>{}, xcnn::MaxPool2D<T>(2), xcnn::Flatten<T>{},
                            xcnn::Dense<T>(2 * 3 * 3, 3)};
}

template <class T = float>
auto wider_net() // same layer types, Dense with 4 outputs
{
    return xcnn::Sequential{xcnn::Conv2D<T>(1, 2, 3), xcnn::ReLU<T>{}, xcnn::MaxPool2D<T>(2), xcnn::Flatten<T>{},
                            xcnn::Dense<T>(2 * 3 * 3, 4)};
}

template <class Net>
std::vector<std::vector<unsigned char>> parameter_bytes(Net& net)
{
    std::vector<std::vector<unsigned char>> out;
    for (const auto& p : net.parameters())
    {
        const auto* b = reinterpret_cast<const unsigned char*>(p.data());
        out.emplace_back(b, b + p.size() * sizeof(*p.data()));
    }
    return out;
}

using xcnn_test::error_of;

bool has_temporary_files(const xcnn_test::temp_dir& dir)
{
    for (const auto& name : dir.entries())
    {
        if (name.find(".tmp-") != std::string::npos)
        {
            return true;
        }
    }
    return false;
}

} // namespace

TEST_CASE("save and load round trip bit for bit")
{
    xcnn_test::temp_dir dir;
    auto a = small_net();
    a.reset_parameters(1u);
    xcnn::save(a, dir / "a.xcnn");

    auto b = small_net();
    b.reset_parameters(2u);
    REQUIRE(parameter_bytes(a) != parameter_bytes(b));
    xcnn::load(b, dir / "a.xcnn");
    CHECK(parameter_bytes(a) == parameter_bytes(b));

    // Deterministic encoding: saving the loaded network gives the same bytes.
    xcnn::save(b, dir / "b.xcnn");
    CHECK(xcnn_test::read_bytes(dir / "a.xcnn") == xcnn_test::read_bytes(dir / "b.xcnn"));
    CHECK_FALSE(has_temporary_files(dir));

    // Overwriting an existing file works.
    a.reset_parameters(3u);
    xcnn::save(a, dir / "b.xcnn");
    xcnn::load(b, dir / "b.xcnn");
    CHECK(parameter_bytes(a) == parameter_bytes(b));

    SECTION("double networks, special values included")
    {
        auto d = small_net<double>();
        auto params = d.parameters();
        params[0].data()[0] = -0.0;
        params[0].data()[1] = std::numeric_limits<double>::denorm_min();
        params[0].data()[2] = std::numeric_limits<double>::infinity();
        params[0].data()[3] = std::numeric_limits<double>::quiet_NaN();
        xcnn::save(d, dir / "d.xcnn");
        auto e = small_net<double>();
        e.reset_parameters(9u);
        xcnn::load(e, dir / "d.xcnn");
        CHECK(parameter_bytes(d) == parameter_bytes(e));
    }
}

TEST_CASE("the file layout is the documented one")
{
    xcnn_test::temp_dir dir;
    auto net = small_net();
    xcnn::save(net, dir / "m.xcnn");
    const auto bytes = xcnn_test::read_bytes(dir / "m.xcnn");
    const unsigned char magic[8] = {0x89, 'X', 'C', 'N', 'N', 0x0D, 0x0A, 0x1A};
    REQUIRE(bytes.size() > 44);
    CHECK(std::memcmp(bytes.data(), magic, 8) == 0);
    CHECK(xcnn::io::detail::load_le<std::uint32_t>(bytes.data() + 8) == 1);   // version
    CHECK(xcnn::io::detail::load_le<std::uint32_t>(bytes.data() + 12) == 40); // header size
    CHECK(xcnn::io::detail::load_le<std::uint64_t>(bytes.data() + 16) == bytes.size());
    CHECK(xcnn::io::detail::load_le<std::uint64_t>(bytes.data() + 24) == 7); // 4 parameters + 3 metadata
    CHECK(bytes[32] == 1);                                                   // float32
    CHECK(xcnn::io::detail::load_le<std::uint32_t>(bytes.data() + bytes.size() - 4) ==
          xcnn::io::detail::crc32(bytes.data(), bytes.size() - 4));
    // First record: "0.weight", parameter, float32, rank 4, (2, 1, 3, 3).
    const unsigned char* r = bytes.data() + 40;
    CHECK(xcnn::io::detail::load_le<std::uint64_t>(r) == 8 + 8 + 4 * 8 + 18 * 4);
    CHECK(r[8] == 1);
    CHECK(r[9] == 1);
    CHECK(xcnn::io::detail::load_le<std::uint16_t>(r + 10) == 4);
    CHECK(xcnn::io::detail::load_le<std::uint32_t>(r + 12) == 8);
    CHECK(std::string(reinterpret_cast<const char*>(r + 16), 8) == "0.weight");
    CHECK(xcnn::io::detail::load_le<std::uint64_t>(r + 24) == 2);
    float first = 0;
    std::memcpy(&first, r + 24 + 32, 4); // little-endian host
    CHECK(first == net.get<0>().weight()(0, 0, 0, 0));

    const auto file = xcnn::io::read_model_file(dir / "m.xcnn");
    REQUIRE(file.find("xcnn.architecture", xcnn::io::record_kind::metadata) != nullptr);
    CHECK(file.find("xcnn.architecture", xcnn::io::record_kind::metadata)->as_text() == net.name());
    REQUIRE(file.find("xcnn.layers", xcnn::io::record_kind::metadata) != nullptr);
    CHECK(file.find("xcnn.layers", xcnn::io::record_kind::metadata)->as_text() == xcnn::to_string(net.spec()));
    CHECK(xcnn::io::detail::crc32("123456789", 9) == 0xCBF43926u); // the CRC-32 check value
}

TEST_CASE("every damaged byte is detected and leaves the network unchanged")
{
    xcnn_test::temp_dir dir;
    auto saved = small_net();
    saved.reset_parameters(4u);
    xcnn::save(saved, dir / "m.xcnn");
    const auto good = xcnn_test::read_bytes(dir / "m.xcnn");

    auto net = small_net();
    net.reset_parameters(5u);
    const auto before = parameter_bytes(net);
    std::size_t checksum_errors = 0;
    for (std::size_t i = 0; i < good.size(); ++i)
    {
        auto bad = good;
        bad[i] ^= 0xFF;
        xcnn_test::write_bytes(dir / "bad.xcnn", bad);
        INFO("byte " << i);
        CHECK_THROWS_AS(xcnn::load(net, dir / "bad.xcnn"), xcnn::format_error);
        const std::string message = error_of([&] { xcnn::load(net, dir / "bad.xcnn"); });
        checksum_errors += message.find("checksum mismatch") != std::string::npos ? 1 : 0;
        REQUIRE(parameter_bytes(net) == before);
    }
    // All but the magic (8), version (4) and length (8) bytes are caught by the CRC-32.
    CHECK(checksum_errors == good.size() - 20);

    auto data_byte = good;
    data_byte[200] ^= 0x01;
    xcnn_test::write_bytes(dir / "bad.xcnn", data_byte);
    const std::string message = error_of([&] { xcnn::load(net, dir / "bad.xcnn"); });
    CHECK_THAT(message, xcnn_test::contains("bad.xcnn': checksum mismatch (stored CRC-32 0x"));
    CHECK_THAT(message, xcnn_test::contains("the file is corrupted"));
}

TEST_CASE("truncated and foreign files are clear errors")
{
    xcnn_test::temp_dir dir;
    auto net = small_net();
    xcnn::save(net, dir / "m.xcnn");
    const auto good = xcnn_test::read_bytes(dir / "m.xcnn");
    const auto before = parameter_bytes(net);

    for (std::size_t size : {std::size_t(0), std::size_t(7), std::size_t(43), std::size_t(44), std::size_t(100),
                             good.size() / 2, good.size() - 4, good.size() - 1})
    {
        xcnn_test::write_bytes(dir / "cut.xcnn", std::vector<unsigned char>(good.begin(), good.begin() + long(size)));
        INFO("size " << size);
        const std::string message = error_of([&] { xcnn::load(net, dir / "cut.xcnn"); });
        CHECK_THROWS_AS(xcnn::load(net, dir / "cut.xcnn"), xcnn::format_error);
        CHECK((message.find("(truncated file)") != std::string::npos ||
               message.find("shorter than the 44-byte header") != std::string::npos));
        CHECK(parameter_bytes(net) == before);
    }
    auto longer = good;
    longer.push_back(0);
    xcnn_test::write_bytes(dir / "long.xcnn", longer);
    CHECK_THAT(error_of([&] { xcnn::load(net, dir / "long.xcnn"); }), xcnn_test::contains("extra bytes at the end"));

    auto newer = good;
    newer[8] = 2;
    xcnn_test::write_bytes(dir / "new.xcnn", newer);
    CHECK_THAT(error_of([&] { xcnn::load(net, dir / "new.xcnn"); }),
               xcnn_test::contains("format version 2 is newer than the versions this xcnn reads (1 to 1)"));

    xcnn_test::write_bytes(dir / "w.npy",
                           {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            0,    0,   0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    CHECK_THAT(error_of([&] { xcnn::load(net, dir / "w.npy"); }), xcnn_test::contains("looks like a NumPy .npy file"));

    CHECK_THROWS_AS(xcnn::load(net, dir / "missing.xcnn"), xcnn::io_error);
    CHECK_THAT(error_of([&] { xcnn::load(net, dir / "missing.xcnn"); }), xcnn_test::contains("missing.xcnn'"));
    CHECK_THROWS_AS(xcnn::load(net, dir.path().string()), xcnn::io_error);
    CHECK(parameter_bytes(net) == before);
}

TEST_CASE("loading another architecture names the first tensor that differs")
{
    xcnn_test::temp_dir dir;
    auto small = small_net();
    xcnn::save(small, dir / "small.xcnn");

    SECTION("a tensor of another shape")
    {
        auto wide = wider_net();
        const auto before = parameter_bytes(wide);
        const std::string message = error_of([&] { xcnn::load(wide, dir / "small.xcnn"); });
        CHECK_THAT(message, xcnn_test::contains("architecture mismatch at tensor 2: the file has '4.weight' of shape "
                                                "(3, 18) (float32), the network has '4.weight' of shape (4, 18)"));
        CHECK_THAT(message, xcnn_test::contains("the file was saved from Sequential(Conv2D(1, 2"));
        CHECK_THROWS_AS(xcnn::load(wide, dir / "small.xcnn"), xcnn::shape_error);
        CHECK(parameter_bytes(wide) == before);
    }
    SECTION("a network with fewer layers")
    {
        auto shorter = xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3)};
        const std::string message = error_of([&] { xcnn::load(shorter, dir / "small.xcnn"); });
        CHECK_THAT(message, xcnn_test::contains("at tensor 2: the file has '4.weight' of shape (3, 18), the network "
                                                "has no such tensor"));
    }
    SECTION("a network with more layers")
    {
        auto longer = xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3),     xcnn::ReLU<float>{},
                                       xcnn::MaxPool2D<float>(2),        xcnn::Flatten<float>{},
                                       xcnn::Dense<float>(2 * 3 * 3, 3), xcnn::Dense<float>(3, 3)};
        const std::string message = error_of([&] { xcnn::load(longer, dir / "small.xcnn"); });
        CHECK_THAT(message, xcnn_test::contains("at tensor 4: the network has '5.weight' of shape (3, 3), the file "
                                                "has no such tensor"));
    }
    SECTION("layers at other indices")
    {
        auto moved = xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3), xcnn::MaxPool2D<float>(2), xcnn::ReLU<float>{},
                                      xcnn::Flatten<float>{}, xcnn::Dense<float>(2 * 3 * 3, 3)};
        xcnn::load(moved, dir / "small.xcnn"); // same names and shapes: fine
        auto shifted = xcnn::Sequential{xcnn::Conv2D<float>(1, 2, 3), xcnn::ReLU<float>{}, xcnn::Flatten<float>{},
                                        xcnn::Dense<float>(2 * 6 * 6, 3)};
        const std::string message = error_of([&] { xcnn::load(shifted, dir / "small.xcnn"); });
        CHECK_THAT(message, xcnn_test::contains("the file has '4.weight' of shape (3, 18) (float32), the network "
                                                "has '3.weight' of shape (3, 72)"));
    }
    SECTION("float file into a double network")
    {
        auto d = small_net<double>();
        CHECK_THAT(error_of([&] { xcnn::load(d, dir / "small.xcnn"); }),
                   xcnn_test::contains("the file holds a float32 network, this one is float64"));
        CHECK_THROWS_AS(xcnn::load(d, dir / "small.xcnn"), xcnn::shape_error);
    }
}

TEST_CASE("a failed save leaves the previous file and no temporary file")
{
    xcnn_test::temp_dir dir;
    auto a = small_net();
    a.reset_parameters(11u);
    const std::string path = dir / "m.xcnn";
    xcnn::save(a, path);
    const auto original = xcnn_test::read_bytes(path);
    auto b = xcnn::Sequential{xcnn::Conv2D<float>(1, 64, 5), xcnn::Flatten<float>{}, xcnn::Dense<float>(64, 512)};

    SECTION("the disk fills up mid-write (file size limit)")
    {
        // RLIMIT_FSIZE makes write() fail with EFBIG part way through the 130 KB file: the
        // same failure as a full disk, and effective for root too.
        struct rlimit old_limit;
        REQUIRE(getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
        auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = old_limit;
        limit.rlim_cur = 4096;
        REQUIRE(setrlimit(RLIMIT_FSIZE, &limit) == 0);
        std::string message;
        try
        {
            xcnn::save(b, path);
        }
        catch (const xcnn::io_error& e)
        {
            message = e.what();
        }
        setrlimit(RLIMIT_FSIZE, &old_limit);
        std::signal(SIGXFSZ, old_handler);
        INFO(message);
        CHECK_THAT(message, xcnn_test::contains("writing"));
        CHECK_THAT(message, xcnn_test::contains("m.xcnn' was left unchanged"));
    }
    SECTION("the target is a directory: the rename fails")
    {
        std::filesystem::create_directory(dir / "m2.xcnn");
        std::filesystem::create_directory(dir / "m2.xcnn/inside"); // not empty: rename cannot replace it
        CHECK_THROWS_AS(xcnn::save(b, dir / "m2.xcnn"), xcnn::io_error);
        CHECK_THAT(error_of([&] { xcnn::save(b, dir / "m2.xcnn"); }), xcnn_test::contains("cannot rename"));
    }
    SECTION("the directory does not exist")
    {
        CHECK_THROWS_AS(xcnn::save(b, dir / "no/such/dir/m.xcnn"), xcnn::io_error);
        CHECK_THAT(error_of([&] { xcnn::save(b, dir / "no/such/dir/m.xcnn"); }),
                   xcnn_test::contains("cannot create a temporary file next to"));
    }
    SECTION("the directory is read-only (not testable as root, who may write anyway)")
    {
        if (::geteuid() != 0)
        {
            std::filesystem::permissions(dir.path(),
                                         std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
            CHECK_THROWS_AS(xcnn::save(b, path), xcnn::io_error);
            std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all);
        }
    }
    CHECK(xcnn_test::read_bytes(path) == original);
    CHECK_FALSE(has_temporary_files(dir));
    auto c = small_net();
    xcnn::load(c, path);
    CHECK(parameter_bytes(c) == parameter_bytes(a));
}

TEST_CASE("records of other kinds ride along and are skipped by load")
{
    xcnn_test::temp_dir dir;
    auto net = small_net();
    net.reset_parameters(21u);
    auto file = xcnn::model_state(net);
    const std::vector<std::int64_t> step{1234};
    const std::vector<std::size_t> scalar{};
    file.records.push_back(
        xcnn::io::tensor_record::from("train.step", xcnn::io::record_kind::state, step.data(), scalar));
    const std::vector<float> momentum(18 * 3, 0.5f);
    const std::vector<std::size_t> shape{3, 18};
    file.records.push_back(xcnn::io::tensor_record::from("optimizer.4.weight.momentum_buffer",
                                                         xcnn::io::record_kind::state, momentum.data(), shape));
    // A kind this version does not know, with a type it does not know: a future record.
    xcnn::io::tensor_record future;
    future.name = "future.thing";
    future.kind = static_cast<xcnn::io::record_kind>(42);
    future.type = 1;
    future.shape = {2};
    future.data = {1, 2, 3, 4, 5, 6, 7, 8};
    file.records.push_back(future);
    xcnn::io::write_model_file(dir / "full.xcnn", file);

    auto other = small_net();
    xcnn::load(other, dir / "full.xcnn");
    CHECK(parameter_bytes(other) == parameter_bytes(net));

    const auto back = xcnn::io::read_model_file(dir / "full.xcnn");
    REQUIRE(back.records.size() == file.records.size());
    const auto* s = back.find("train.step", xcnn::io::record_kind::state);
    REQUIRE(s != nullptr);
    CHECK(s->shape.empty());
    CHECK(s->values<std::int64_t>() == step);
    CHECK(back.find("optimizer.4.weight.momentum_buffer", xcnn::io::record_kind::state)->values<float>() == momentum);
    CHECK(back.records.back().data == future.data);
    CHECK_THROWS_AS(s->values<float>(), xcnn::value_error);

    // Inconsistent records are refused when writing.
    auto broken = file;
    broken.records[0].data.resize(broken.records[0].data.size() - 1);
    CHECK_THROWS_AS(xcnn::io::write_model_file(dir / "broken.xcnn", broken), xcnn::value_error);
    auto twice = file;
    twice.records.push_back(twice.records[0]);
    CHECK_THROWS_AS(xcnn::io::write_model_file(dir / "twice.xcnn", twice), xcnn::value_error);
}

namespace
{

/// Offsets in a model file of the data bytes of its parameter records, in order: the bytes
/// `load` copies into the network. Walks the documented layout independently of decode_model.
std::vector<std::pair<std::size_t, std::size_t>> parameter_data_ranges(const std::vector<unsigned char>& file)
{
    using xcnn::io::detail::load_le;
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    std::size_t pos = load_le<std::uint32_t>(file.data() + 12);
    const std::uint64_t count = load_le<std::uint64_t>(file.data() + 24);
    for (std::uint64_t i = 0; i < count; ++i)
    {
        const std::size_t body = load_le<std::uint64_t>(file.data() + pos);
        const std::size_t rank = load_le<std::uint16_t>(file.data() + pos + 10);
        const std::size_t name = load_le<std::uint32_t>(file.data() + pos + 12);
        const std::size_t data = pos + 16 + name + 8 * rank;
        if (file[pos + 8] == static_cast<unsigned char>(xcnn::io::record_kind::parameter))
        {
            ranges.emplace_back(data, pos + 8 + body);
        }
        pos += 8 + body;
    }
    return ranges;
}

/// Rewrites the length field and the CRC-32 so that a damaged file passes both checks and the
/// structure parser behind them is what must catch the damage.
void repair_length_and_checksum(std::vector<unsigned char>& file)
{
    xcnn::io::detail::store_le(file.data() + 16, static_cast<std::uint64_t>(file.size()));
    xcnn::io::detail::store_le(file.data() + file.size() - 4, xcnn::io::detail::crc32(file.data(), file.size() - 4));
}

/// `load_state` of `bytes` into `net`: true if it loaded, false after a clean xcnn::error (which
/// must leave the network unchanged). Any other exception fails the test.
template <class Net>
bool load_or_refuse(Net& net, const std::vector<unsigned char>& bytes)
{
    const auto before = parameter_bytes(net);
    try
    {
        xcnn::load_state(net, xcnn::io::decode_model(bytes, "mutated.xcnn"), "mutated.xcnn");
        return true;
    }
    catch (const xcnn::error&)
    {
        REQUIRE(parameter_bytes(net) == before);
        return false;
    }
}

} // namespace

TEST_CASE("a model file cut at every byte or followed by garbage is refused and changes nothing")
{
    xcnn_test::temp_dir dir;
    auto saved = small_net();
    saved.reset_parameters(31u);
    xcnn::save(saved, dir / "m.xcnn");
    const auto good = xcnn_test::read_bytes(dir / "m.xcnn");
    auto net = small_net();
    net.reset_parameters(32u);
    std::size_t tried = 0;

    for (std::size_t n = 0; n < good.size(); ++n)
    {
        INFO("cut to " << n << " of " << good.size() << " bytes");
        const std::vector<unsigned char> cut(good.begin(), good.begin() + static_cast<long>(n));
        CHECK_FALSE(load_or_refuse(net, cut));
        CHECK_THROWS_AS(xcnn::io::decode_model(cut, "cut.xcnn"), xcnn::format_error);
        ++tried;
        // With the length and checksum made to match, the records themselves must not fit.
        if (n >= 44)
        {
            auto repaired = cut;
            repair_length_and_checksum(repaired);
            CHECK_FALSE(load_or_refuse(net, repaired));
            ++tried;
        }
    }
    // Through the file API as well, at a few offsets (the same decode runs behind it).
    for (std::size_t n : {std::size_t(0), std::size_t(43), good.size() / 3, good.size() - 1})
    {
        xcnn_test::write_bytes(dir / "cut.xcnn", std::vector<unsigned char>(good.begin(), good.begin() + long(n)));
        CHECK_THROWS_AS(xcnn::load(net, dir / "cut.xcnn"), xcnn::format_error);
        ++tried;
    }

    std::vector<std::vector<unsigned char>> garbage;
    std::mt19937 rng(5);
    for (std::size_t k : {1u, 3u, 4u, 8u, 40u, 1000u})
    {
        garbage.emplace_back(k, 0);
        std::vector<unsigned char> random(k);
        for (auto& b : random)
        {
            b = static_cast<unsigned char>(rng());
        }
        garbage.push_back(random);
    }
    garbage.push_back(good); // two model files back to back
    for (const auto& tail : garbage)
    {
        INFO(tail.size() << " bytes of garbage after the file");
        auto longer = good;
        longer.insert(longer.end(), tail.begin(), tail.end());
        CHECK_FALSE(load_or_refuse(net, longer));
        CHECK_THAT(error_of([&] { xcnn::io::decode_model(longer, "long.xcnn"); }),
                   xcnn_test::contains("(extra bytes at the end)"));
        // Garbage between the last record and a matching length and checksum.
        auto inside = std::vector<unsigned char>(good.begin(), good.end() - 4);
        inside.insert(inside.end(), tail.begin(), tail.end());
        inside.resize(inside.size() + 4);
        repair_length_and_checksum(inside);
        CHECK_FALSE(load_or_refuse(net, inside));
        CHECK_THAT(error_of([&] { xcnn::io::decode_model(inside, "long.xcnn"); }),
                   xcnn_test::contains("bytes after the last of the 7 records the header announces"));
        tried += 2;
    }
    WARN("model file truncation and trailing garbage: " << tried << " inputs, each refused cleanly");
}

TEST_CASE("every byte of a model file damaged behind a valid checksum: refused, or exactly what it says")
{
    // The CRC-32 catches any damaged byte (see above). Here the length and checksum are rewritten
    // after the damage, so each byte is checked by the structure parser and the network match:
    // the result must be a clean error that leaves the network as it was, or a network holding
    // exactly the file's values — the original ones, with the damaged byte if it is a weight's.
    xcnn_test::temp_dir dir;
    auto saved = small_net();
    saved.reset_parameters(33u);
    xcnn::save(saved, dir / "m.xcnn");
    const auto good = xcnn_test::read_bytes(dir / "m.xcnn");
    const auto original = parameter_bytes(saved);
    const auto ranges = parameter_data_ranges(good);
    REQUIRE(ranges.size() == 4);

    auto net = small_net();
    std::size_t tried = 0, refused = 0, same_model = 0, one_weight_byte = 0;
    for (std::size_t i = 0; i < good.size() - 4; ++i)
    {
        if (i >= 16 && i < 24)
        {
            continue; // the length field, which the repair rewrites
        }
        for (unsigned mask : {0x01u, 0x80u, 0xFFu})
        {
            auto bad = good;
            bad[i] = static_cast<unsigned char>(bad[i] ^ mask);
            repair_length_and_checksum(bad);
            INFO("byte " << i << " xor " << mask);
            net.reset_parameters(34u);
            ++tried;
            if (!load_or_refuse(net, bad))
            {
                ++refused;
                continue;
            }
            // Which parameter's data holds the damaged byte, if any.
            auto expected = original;
            bool in_weights = false;
            for (std::size_t k = 0; k < ranges.size(); ++k)
            {
                if (i >= ranges[k].first && i < ranges[k].second)
                {
                    expected[k][i - ranges[k].first] ^= static_cast<unsigned char>(mask);
                    in_weights = true;
                }
            }
            CHECK(parameter_bytes(net) == expected);
            (in_weights ? one_weight_byte : same_model) += 1;
        }
    }
    // Damaged weights load as damaged weights (only the checksum could tell), header reserved
    // bytes and metadata load as the same model; everything structural is refused.
    std::size_t weight_bytes = 0;
    for (const auto& p : original)
    {
        weight_bytes += p.size();
    }
    CHECK(one_weight_byte == 3 * weight_bytes);
    CHECK(refused > 0);
    CHECK(same_model > 0);
    WARN("model file bytes damaged behind a valid checksum: " << tried << " inputs: " << refused << " refused, "
                                                              << same_model << " the same model, " << one_weight_byte
                                                              << " the damaged weight byte");
}

TEST_CASE("a record without elements whose shape could not be a tensor is refused")
{
    // Found by fuzz_idx for IDX files (UBSan: signed overflow in xtensor's compute_strides); the
    // model reader shares the size check. Shape (0, 2^40, 2^40) holds nothing, but its strides
    // overflow ptrdiff_t.
    auto net = small_net();
    auto file = xcnn::model_state(net);
    const std::vector<float> none;
    file.records.push_back(xcnn::io::tensor_record::from("empty", xcnn::io::record_kind::state, none.data(),
                                                         std::vector<std::size_t>{0, 2, 2}));
    auto bytes = xcnn::io::encode_model(file);
    REQUIRE(xcnn::io::decode_model(bytes, "ok.xcnn").find("empty", xcnn::io::record_kind::state) != nullptr);
    const std::string name = "empty";
    const auto at = std::search(bytes.begin(), bytes.end(), name.begin(), name.end()) - bytes.begin();
    REQUIRE(static_cast<std::size_t>(at) + name.size() + 24 <= bytes.size());
    xcnn::io::detail::store_le(bytes.data() + at + name.size() + 8, std::uint64_t(1) << 40);
    xcnn::io::detail::store_le(bytes.data() + at + name.size() + 16, std::uint64_t(1) << 40);
    repair_length_and_checksum(bytes);
    CHECK_THROWS_AS(xcnn::io::decode_model(bytes, "huge.xcnn"), xcnn::format_error);
    CHECK_THAT(error_of([&] { xcnn::io::decode_model(bytes, "huge.xcnn"); }),
               xcnn_test::contains("tensor 'empty' of shape (0, 1099511627776, 1099511627776)"));
}

TEST_CASE("a version-1 model file written by xcnn 0.1.0 (before buffers) still loads")
{
    // tests/fixtures/v1/small_net.xcnn was written by tests/fixtures/v1/make_v1_fixtures.cpp with
    // the release before buffers existed; element j of parameter i is (i + 1) / 8 - j / 64.
    const std::string path = std::string(XCNN_TEST_FIXTURES_DIR) + "/v1/small_net.xcnn";
    const auto file = xcnn::io::read_model_file(path);
    CHECK(file.of_kind(xcnn::io::record_kind::parameter).size() == 4);
    auto net = small_net();
    xcnn::load(net, path);
    const auto params = net.parameters();
    for (std::size_t i = 0; i < params.size(); ++i)
    {
        for (std::size_t j = 0; j < params[i].size(); ++j)
        {
            CHECK(params[i].data()[j] == float(i + 1) / 8 - float(j) / 64);
        }
    }
}

TEST_CASE("buffers are saved as records of kind 4 and restored with the parameters")
{
    xcnn_test::temp_dir dir;
    xcnn_test::buffered_net<float> net;
    net.fill(1);
    xcnn::save(net, dir / "b.xcnn");

    const auto file = xcnn::io::read_model_file(dir / "b.xcnn");
    const auto buffers = file.of_kind(xcnn::io::record_kind::buffer);
    REQUIRE(buffers.size() == 2);
    CHECK(static_cast<int>(xcnn::io::record_kind::buffer) == 4);
    CHECK(buffers[0]->name == "1.running_mean");
    CHECK(buffers[0]->shape == std::vector<std::uint64_t>{3});
    CHECK(buffers[1]->values<float>() == net.values()[3]);
    CHECK(file.of_kind(xcnn::io::record_kind::parameter).size() == 2);
    CHECK(file.find("1.running_mean", xcnn::io::record_kind::parameter) == nullptr);

    xcnn_test::buffered_net<float> back;
    back.fill(2);
    xcnn::load(back, dir / "b.xcnn");
    CHECK(back.values() == net.values());

    SECTION("a buffer of another shape: shape_error naming it, the network unchanged")
    {
        xcnn_test::buffered_net<float> wide(4);
        wide.fill(3);
        const auto before = wide.values();
        CHECK_THROWS_AS(xcnn::load(wide, dir / "b.xcnn"), xcnn::shape_error);
        CHECK_THAT(error_of([&] { xcnn::load(wide, dir / "b.xcnn"); }),
                   xcnn_test::contains("architecture mismatch at buffer 0: the file has '1.running_mean' of shape (3,) "
                                       "(float32), the network has '1.running_mean' of shape (4,) (float32)"));
        CHECK(wide.values() == before); // parameters, which matched, unchanged too
    }
    SECTION("a file without the buffers: shape_error, the network unchanged")
    {
        xcnn_test::unbuffered_net<float> plain;
        xcnn::save(plain, dir / "plain.xcnn");
        const auto before = back.values();
        CHECK_THROWS_AS(xcnn::load(back, dir / "plain.xcnn"), xcnn::shape_error);
        CHECK_THAT(error_of([&] { xcnn::load(back, dir / "plain.xcnn"); }),
                   xcnn_test::contains("architecture mismatch at buffer 0: the network has '1.running_mean' of shape "
                                       "(3,), the file has no such buffer (it holds 0 buffers, the network 2)"));
        CHECK(back.values() == before);
    }
    SECTION("a network without buffers() has none: it refuses a file with buffers")
    {
        xcnn_test::unbuffered_net<float> plain;
        CHECK_THROWS_AS(xcnn::load(plain, dir / "b.xcnn"), xcnn::shape_error);
        CHECK_THAT(error_of([&] { xcnn::load(plain, dir / "b.xcnn"); }),
                   xcnn_test::contains("the file has '1.running_mean' of shape (3,), the network has no such buffer "
                                       "(it has 0 buffers, the file 2)"));
    }
}

TEST_CASE("a network without buffers() writes the file it wrote before buffers existed")
{
    // The fixture holds exactly the parameter and metadata records (no buffer records), so
    // re-encoding what the current model_state makes of the loaded network gives the same
    // records: older xcnn versions read what this one writes for such networks.
    const std::string path = std::string(XCNN_TEST_FIXTURES_DIR) + "/v1/small_net.xcnn";
    auto net = small_net();
    xcnn::load(net, path);
    auto tensors = [](const xcnn::io::model_file& f)
    {
        std::vector<std::tuple<int, std::string, std::vector<std::uint64_t>, std::vector<unsigned char>>> out;
        for (const auto& r : f.records)
        {
            if (r.kind != xcnn::io::record_kind::metadata) // the version and the architecture's text may change
            {
                out.emplace_back(static_cast<int>(r.kind), r.name, r.shape, r.data);
            }
        }
        return out;
    };
    CHECK(tensors(xcnn::model_state(net)) == tensors(xcnn::io::read_model_file(path)));
}
