// xcnn built without zlib: reading or writing a .gz file throws io_error saying so, and raw IDX
// files still work. This translation unit turns zlib off before including xcnn (it is its own
// executable, so no other code sees a different XCNN_HAS_ZLIB).
#undef XCNN_HAS_ZLIB
#define XCNN_HAS_ZLIB 0

#include "catch_compat.hpp"
#include "support/temp_dir.hpp"

#include <xcnn/io/idx.hpp>
#include <xcnn/io/mnist.hpp>

#include <string>
#include <vector>

TEST_CASE("without zlib, .gz files give an io_error saying xcnn was built without zlib")
{
    static_assert(!xcnn::io::has_zlib, "this test builds xcnn without zlib");
    xcnn_test::temp_dir dir;
    // A real gzip member (of an empty input), as `gzip < /dev/null` writes it.
    xcnn_test::write_bytes(dir / "t10k-labels-idx1-ubyte.gz",
                           {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
                            0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
    CHECK_THROWS_AS(xcnn::io::load_idx_labels(dir / "t10k-labels-idx1-ubyte.gz"), xcnn::io_error);
    CHECK_THROWS_WITH(xcnn::io::load_idx_labels(dir / "t10k-labels-idx1-ubyte.gz"),
                      xcnn_test::contains("xcnn was built without zlib"));
    CHECK_THROWS_WITH(xcnn::io::load_idx_labels(dir / "t10k-labels-idx1-ubyte.gz"),
                      xcnn_test::contains("t10k-labels-idx1-ubyte.gz'"));

    // Gzip content under another name is recognised by its magic number.
    std::filesystem::copy_file(dir / "t10k-labels-idx1-ubyte.gz", dir / "labels");
    CHECK_THROWS_WITH(xcnn::io::load_idx_labels(dir / "labels"), xcnn_test::contains("xcnn was built without zlib"));

    xt::xtensor<std::uint8_t, 1> labels = {1, 2, 3};
    CHECK_THROWS_WITH(xcnn::io::save_idx(dir / "out.gz", labels), xcnn_test::contains("xcnn was built without zlib"));
    CHECK_THROWS_AS(xcnn::io::read_gzip_file(dir / "labels"), xcnn::io_error);

    // Raw files still work.
    xcnn::io::save_idx(dir / "raw", labels);
    const auto back = xcnn::io::load_idx_labels(dir / "raw");
    REQUIRE(back.size() == 3);
    CHECK(back(2) == 3);
}
