// NumPy interop (io/npy.hpp): .npy round trips, files written by NumPy, malformed files, and a
// network's weights exported/imported as PyTorch state_dict keys. The PyTorch fixture
// (tests/fixtures/torch_lenet, made by tests/fixtures/torch_lenet.py with torch 1.13) checks that
// LeNet with PyTorch's weights gives PyTorch's logits, and the same losses and logits after two
// SGD steps with momentum.
#include "catch_compat.hpp"

#include "support/buffered_net.hpp"
#include "support/error_of.hpp"
#include "support/temp_dir.hpp"

#include "models.hpp" // examples/mnist: the LeNet of xcnn-mnist

#include <xcnn/io/npy.hpp>
#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#ifndef XCNN_TEST_FIXTURES_DIR
#error "XCNN_TEST_FIXTURES_DIR must name tests/fixtures"
#endif

namespace
{

const std::string fixture = std::string(XCNN_TEST_FIXTURES_DIR) + "/torch_lenet";

using xcnn_test::error_of;

/// The concatenation of `parts` (one allocation, no vector::insert: GCC 12's -Warray-bounds
/// misfires on insert into a short vector).
std::vector<unsigned char> join(std::initializer_list<std::vector<unsigned char>> parts)
{
    std::size_t size = 0;
    for (const auto& p : parts)
    {
        size += p.size();
    }
    std::vector<unsigned char> out(size);
    std::size_t at = 0;
    for (const auto& p : parts)
    {
        if (!p.empty())
        {
            std::memcpy(out.data() + at, p.data(), p.size());
        }
        at += p.size();
    }
    return out;
}

/// A .npy file with header dict `dict` (padded as NumPy does) followed by `data`.
std::vector<unsigned char> npy_file(const std::string& dict, const std::vector<unsigned char>& data)
{
    std::string header = dict;
    while ((10 + header.size() + 1) % 64 != 0)
    {
        header += ' ';
    }
    header += '\n';
    return join({{0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(header.size() & 0xFF),
                  static_cast<unsigned char>(header.size() >> 8)},
                 std::vector<unsigned char>(header.begin(), header.end()),
                 data});
}

template <class T>
std::vector<unsigned char> raw_bytes(const std::vector<T>& v, bool big_endian = false)
{
    std::vector<unsigned char> out(v.size() * sizeof(T));
    std::memcpy(out.data(), v.data(), out.size());
    if (big_endian)
    {
        for (std::size_t i = 0; i < v.size(); ++i)
        {
            std::reverse(out.begin() + long(i * sizeof(T)), out.begin() + long((i + 1) * sizeof(T)));
        }
    }
    return out;
}

template <class Net>
std::vector<std::vector<float>> parameter_values(Net& net)
{
    std::vector<std::vector<float>> out;
    for (const auto& p : net.parameters())
    {
        out.emplace_back(p.data(), p.data() + p.size());
    }
    return out;
}

double max_abs_difference(const xt::xtensor<float, 2>& a, const xt::xarray<float>& b)
{
    REQUIRE(a.shape()[0] == b.shape()[0]);
    REQUIRE(a.shape()[1] == b.shape()[1]);
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
    {
        m = std::max(m, std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])));
    }
    return m;
}

} // namespace

TEST_CASE(".npy round trip of several types and shapes")
{
    xcnn_test::temp_dir dir;
    xt::xarray<float> f = {{1.5f, -2.0f, 3.25f}, {0.0f, -0.0f, 1e-30f}};
    xcnn::io::save_npy(dir / "f.npy", f);
    CHECK((xcnn::io::load_npy<float>(dir / "f.npy") == f));

    xt::xtensor<double, 1> d = {1.0 / 3.0, -1e300};
    xcnn::io::save_npy(dir / "d.npy", d);
    CHECK((xcnn::io::load_npy<double>(dir / "d.npy") == d));

    xt::xtensor<std::int64_t, 3> i = xt::zeros<std::int64_t>({2, 1, 3});
    i(1, 0, 2) = -9000000000LL;
    xcnn::io::save_npy(dir / "i.npy", i);
    CHECK((xcnn::io::load_npy<std::int64_t>(dir / "i.npy") == i));
    CHECK(xcnn::io::load_npy<double>(dir / "i.npy")(1, 0, 2) == -9000000000.0);

    xt::xtensor<std::uint8_t, 2> u = {{0, 255}};
    xcnn::io::save_npy(dir / "u.npy", u);
    CHECK((xcnn::io::load_npy<std::uint8_t>(dir / "u.npy") == u));

    xt::xarray<float> scalar = xt::xarray<float>::from_shape({});
    scalar() = 7.5f;
    xcnn::io::save_npy(dir / "s.npy", scalar);
    const auto back = xcnn::io::load_npy<float>(dir / "s.npy");
    CHECK(back.dimension() == 0);
    CHECK(back() == 7.5f);

    // The header is what NumPy writes: version 1.0, dict padded with spaces to a multiple of 64
    // bytes, '\n'.
    const auto bytes = xcnn_test::read_bytes(dir / "f.npy");
    REQUIRE(bytes.size() == 128 + 6 * 4); // 10 + 60-byte dict + '\n' rounded up to 128
    CHECK(bytes[6] == 1);
    CHECK(bytes[7] == 0);
    const std::string header(bytes.begin() + 10, bytes.begin() + 128);
    CHECK(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0) == 0);
    CHECK(header.back() == '\n');
    const auto one_d = xcnn_test::read_bytes(dir / "d.npy");
    CHECK(std::string(one_d.begin() + 10, one_d.begin() + 64).find("'shape': (2,)") != std::string::npos);
    const auto zero_d = xcnn_test::read_bytes(dir / "s.npy");
    CHECK(std::string(zero_d.begin() + 10, zero_d.begin() + 64).find("'shape': ()") != std::string::npos);
}

TEST_CASE(".npy files as NumPy writes them: byte orders, Fortran order, other versions")
{
    xcnn_test::temp_dir dir;
    const std::vector<float> values{1, 2, 3, 4, 5, 6};
    SECTION("big-endian float32")
    {
        xcnn_test::write_bytes(dir / "be.npy", npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }",
                                                        raw_bytes(values, true)));
        const auto a = xcnn::io::load_npy<float>(dir / "be.npy");
        CHECK(a(1, 2) == 6.0f);
        CHECK(a(0, 1) == 2.0f);
    }
    SECTION("Fortran order is transposed to row-major")
    {
        // Column-major (2, 3): memory 1 2 3 4 5 6 holds [[1, 3, 5], [2, 4, 6]].
        xcnn_test::write_bytes(
            dir / "f.npy", npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", raw_bytes(values)));
        const auto a = xcnn::io::load_npy<float>(dir / "f.npy");
        const xt::xarray<float> expected = {{1, 3, 5}, {2, 4, 6}};
        CHECK((a == expected));
    }
    SECTION("Fortran order, rank 3")
    {
        std::vector<std::int16_t> v(24);
        for (std::size_t k = 0; k < 24; ++k)
        {
            v[k] = static_cast<std::int16_t>(k);
        }
        xcnn_test::write_bytes(dir / "f3.npy",
                               npy_file("{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3, 4), }", raw_bytes(v)));
        const auto a = xcnn::io::load_npy<int>(dir / "f3.npy");
        for (std::size_t i = 0; i < 2; ++i)
        {
            for (std::size_t j = 0; j < 3; ++j)
            {
                for (std::size_t k = 0; k < 4; ++k)
                {
                    CHECK(a(i, j, k) == static_cast<int>(i + 2 * j + 6 * k));
                }
            }
        }
    }
    SECTION("version 2.0 header, key order and quotes as another writer might use")
    {
        std::string header = "{\"shape\": (6L,), \"fortran_order\": False, \"descr\": \"<f8\"}";
        while ((12 + header.size() + 1) % 64 != 0)
        {
            header += ' ';
        }
        header += '\n';
        const std::vector<double> d(values.begin(), values.end());
        const auto file =
            join({{0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, static_cast<unsigned char>(header.size()), 0, 0, 0},
                  std::vector<unsigned char>(header.begin(), header.end()),
                  raw_bytes(d)});
        xcnn_test::write_bytes(dir / "v2.npy", file);
        const auto a = xcnn::io::load_npy<float>(dir / "v2.npy");
        REQUIRE(a.size() == 6);
        CHECK(a(5) == 6.0f);
    }
    SECTION("bool")
    {
        xcnn_test::write_bytes(dir / "b.npy",
                               npy_file("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", {1, 0, 1}));
        const auto a = xcnn::io::load_npy<int>(dir / "b.npy");
        CHECK(a(0) == 1);
        CHECK(a(1) == 0);
    }
}

TEST_CASE("malformed .npy files give a format_error naming the file")
{
    xcnn_test::temp_dir dir;
    const std::vector<float> values{1, 2, 3, 4, 5, 6};
    auto fails_with = [&](const std::vector<unsigned char>& file, const std::string& part)
    {
        xcnn_test::write_bytes(dir / "x.npy", file);
        const std::string message = error_of([&] { xcnn::io::load_npy<float>(dir / "x.npy"); });
        INFO(message);
        CHECK_THAT(message, xcnn_test::contains(part));
        CHECK_THAT(message, xcnn_test::contains("x.npy'"));
        CHECK_THROWS_AS(xcnn::io::load_npy<float>(dir / "x.npy"), xcnn::format_error);
    };
    const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    SECTION("not npy")
    {
        fails_with({'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0, 0, 0}, "not a .npy file");
    }
    SECTION("empty")
    {
        fails_with({}, "not a .npy file");
    }
    SECTION("truncated data")
    {
        auto f = npy_file(good, raw_bytes(values));
        f.resize(f.size() - 1);
        fails_with(f, "= 24 bytes of data but 23 bytes follow (truncated file)");
    }
    SECTION("extra data")
    {
        auto f = npy_file(good, raw_bytes(values));
        f.push_back(0);
        fails_with(f, "but 25 bytes follow (extra data)");
    }
    SECTION("header longer than the file")
    {
        auto f = npy_file(good, {});
        f.resize(30);
        fails_with(f, "truncated .npy file");
    }
    SECTION("huge shape")
    {
        fails_with(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }", {}),
                   "overflows size_t");
        fails_with(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", {}),
                   "dimension overflows size_t");
        fails_with(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000,), }", {}),
                   "400000000000 bytes of data but 0 bytes follow");
    }
    SECTION("unsupported types")
    {
        fails_with(npy_file("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", {0, 0, 0, 0, 0, 0, 0, 0}),
                   "unsupported .npy element type '<c8'");
        fails_with(npy_file("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", {0, 0, 0, 0, 0, 0, 0, 0}),
                   "unsupported .npy element type '|O'");
    }
    SECTION("broken dicts")
    {
        fails_with(npy_file("{'descr': '<f4', 'shape': (2, 3), }", raw_bytes(values)), "lacks a valid 'fortran_order'");
        fails_with(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", raw_bytes(values)),
                   "expected a non-negative integer");
        fails_with(npy_file("{'descr': '<f4' 'fortran_order': False}", raw_bytes(values)), "malformed .npy header");
        fails_with(npy_file("{'descr: '<f4'}", raw_bytes(values)), "malformed .npy header");
    }
    SECTION("unsupported version")
    {
        auto f = npy_file(good, raw_bytes(values));
        f[6] = 9;
        fails_with(f, "unsupported .npy format version 9.0");
    }
}

TEST_CASE("export_npy / import_npy: one file per state_dict key")
{
    xcnn_test::temp_dir dir;
    auto a = mnist_models::make_lenet<float>();
    a.reset_parameters(3u);
    xcnn::export_npy(a, dir / "w");
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir / "w"))
    {
        names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"0.bias.npy", "0.weight.npy", "11.bias.npy", "11.weight.npy", "3.bias.npy",
                                            "3.weight.npy", "7.bias.npy", "7.weight.npy", "9.bias.npy",
                                            "9.weight.npy"});
    CHECK(xcnn::io::load_npy_header(dir / "w/7.weight.npy").shape == std::vector<std::size_t>{120, 400});

    auto b = mnist_models::make_lenet<float>();
    b.reset_parameters(4u);
    xcnn::import_npy(b, dir / "w");
    CHECK(parameter_values(a) == parameter_values(b));

    // Double networks read float32 files (and write float64 ones).
    auto d = mnist_models::make_lenet<double>();
    xcnn::import_npy(d, dir / "w");
    CHECK(static_cast<float>(d.get<0>().weight()(5, 0, 4, 4)) == a.get<0>().weight()(5, 0, 4, 4));

    SECTION("a missing file")
    {
        std::filesystem::remove(dir / "w/9.bias.npy");
        auto c = mnist_models::make_lenet<float>();
        const auto before = parameter_values(c);
        CHECK_THROWS_AS(xcnn::import_npy(c, dir / "w"), xcnn::io_error);
        CHECK_THAT(error_of([&] { xcnn::import_npy(c, dir / "w"); }),
                   xcnn_test::contains("9.bias.npy' for parameter '9.bias' of shape (84,)"));
        CHECK(parameter_values(c) == before);
    }
    SECTION("another architecture")
    {
        auto seed = mnist_models::make_seed_net<float>();
        const auto before = parameter_values(seed);
        const std::string message = error_of([&] { xcnn::import_npy(seed, dir / "w"); });
        CHECK_THAT(message, xcnn_test::contains("parameter '0.weight' has shape (8, 1, 3, 3) in the network but "
                                                "(6, 1, 5, 5) in"));
        CHECK_THROWS_AS(xcnn::import_npy(seed, dir / "w"), xcnn::shape_error);
        CHECK(parameter_values(seed) == before);
    }
    SECTION("unexpected files: an error when strict, ignored otherwise")
    {
        xcnn::io::save_npy(dir / "w/12.weight.npy", xt::xtensor<float, 1>{1.0f});
        auto c = mnist_models::make_lenet<float>();
        CHECK_THAT(error_of([&] { xcnn::import_npy(c, dir / "w"); }),
                   xcnn_test::contains("holds 1 .npy file(s) that are no parameter of the network (12.weight.npy)"));
        xcnn::import_npy(c, dir / "w", /*strict=*/false);
        CHECK(parameter_values(c) == parameter_values(a));
    }
}

TEST_CASE("LeNet with PyTorch's weights computes PyTorch's logits, loss and SGD steps")
{
    auto net = mnist_models::make_lenet<float>();
    xcnn::import_npy(net, fixture + "/state_dict");
    const xt::xtensor<float, 4> input = xcnn::io::load_npy<float>(fixture + "/input.npy");
    const xt::xtensor<std::int64_t, 1> labels = xcnn::io::load_npy<std::int64_t>(fixture + "/labels.npy");
    const auto torch_logits = xcnn::io::load_npy<float>(fixture + "/logits.npy");
    const auto torch_losses = xcnn::io::load_npy<float>(fixture + "/losses.npy");
    const auto torch_after = xcnn::io::load_npy<float>(fixture + "/logits_after_steps.npy");
    REQUIRE(input.shape()[0] == 8);

    const double diff = max_abs_difference(net.predict(input), torch_logits);
    INFO("max |xcnn - torch| logits: " << diff);
    CHECK(diff < 2e-5);

    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.01f, 0.9f);
    for (std::size_t step = 0; step < 2; ++step)
    {
        const float value = loss.forward(net.forward(input), labels);
        CHECK_THAT(value, xcnn_test::near(torch_losses(step), 2e-5));
        net.backward(loss.backward());
        sgd.step();
    }
    const double after = max_abs_difference(net.predict(input), torch_after);
    INFO("max |xcnn - torch| logits after two SGD steps: " << after);
    CHECK(after < 5e-5);
}

TEST_CASE("export_npy / import_npy: buffers are files like parameters, as in a PyTorch state_dict")
{
    xcnn_test::temp_dir dir;
    xcnn_test::buffered_net<float> a;
    a.fill(1);
    xcnn::export_npy(a, dir / "b");
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir / "b"))
    {
        names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"0.bias.npy", "0.weight.npy", "1.running_mean.npy", "1.running_var.npy"});
    // The single-array functions in namespace xcnn, as in io.
    CHECK(xcnn::load_npy_header(dir / "b/1.running_var.npy").shape == std::vector<std::size_t>{3});
    const auto mean = xcnn::load_npy<double>(dir / "b/1.running_mean.npy");
    CHECK(mean(2) == a.running_mean.value()(2));

    xcnn_test::buffered_net<float> b;
    b.fill(2);
    xcnn::import_npy(b, dir / "b");
    CHECK(b.values() == a.values());

    SECTION("a buffer of another shape: shape_error, nothing changed")
    {
        xcnn::save_npy(dir / "b/1.running_var.npy", xt::xtensor<float, 1>{1.f, 2.f});
        xcnn_test::buffered_net<float> c;
        c.fill(3);
        const auto before = c.values();
        CHECK_THROWS_AS(xcnn::import_npy(c, dir / "b"), xcnn::shape_error);
        CHECK_THAT(error_of([&] { xcnn::import_npy(c, dir / "b"); }),
                   xcnn_test::contains("import_npy: buffer '1.running_var' has shape (3,) in the network but (2,) in"));
        CHECK(c.values() == before);
    }
    SECTION("a missing buffer file: io_error naming the buffer")
    {
        std::filesystem::remove(dir / "b/1.running_mean.npy");
        CHECK_THROWS_AS(xcnn::import_npy(b, dir / "b"), xcnn::io_error);
        CHECK_THAT(error_of([&] { xcnn::import_npy(b, dir / "b"); }),
                   xcnn_test::contains("1.running_mean.npy' for buffer '1.running_mean' of shape (3,)"));
    }
    SECTION("strict: buffer files are expected files; a network without buffers() finds them unexpected")
    {
        xcnn_test::unbuffered_net<float> plain;
        CHECK_THAT(error_of([&] { xcnn::import_npy(plain, dir / "b"); }),
                   xcnn_test::contains("holds 2 .npy file(s) that are no parameter of the network "
                                       "(1.running_mean.npy, 1.running_var.npy)"));
        xcnn::import_npy(plain, dir / "b", /*strict=*/false);
        CHECK(std::vector<float>(plain.weight.value().begin(), plain.weight.value().end()) == a.values()[0]);
        xcnn::save_npy(dir / "b/2.running_mean.npy", xt::xtensor<float, 1>{1.f});
        CHECK_THAT(error_of([&] { xcnn::import_npy(b, dir / "b"); }),
                   xcnn_test::contains("holds 1 .npy file(s) that are no parameter or buffer of the network "
                                       "(2.running_mean.npy)"));
    }
}
