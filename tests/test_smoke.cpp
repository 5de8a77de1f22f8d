// Smoke test: checks the toolchain (Catch2 compat layer, xtensor + xsimd, warning flags).
// xtensor comes through xcnn's shim, as in every test: its header paths differ between 0.24 and
// 0.26+, and only the shim knows both.
#include "catch_compat.hpp"

#include <xcnn/core/xtensor_shim.hpp>
#include <xcnn/version.hpp>

#include <stdexcept>

TEST_CASE("version macros", "[smoke]")
{
    STATIC_REQUIRE(XCNN_VERSION_MAJOR == 0);
    REQUIRE(XCNN_VERSION_MAJOR == 0);
    REQUIRE(XCNN_VERSION == XCNN_VERSION_MAJOR * 10000 + XCNN_VERSION_MINOR * 100 + XCNN_VERSION_PATCH);
}

TEST_CASE("catch compat helpers", "[smoke]")
{
    SECTION("contains")
    {
        REQUIRE_THROWS_AS(throw std::invalid_argument("bad shape"), std::invalid_argument);
        REQUIRE_THROWS_WITH(throw std::invalid_argument("xcnn: bad shape (2, 3)"), xcnn_test::contains("bad shape"));
        REQUIRE_THROWS_WITH(throw std::invalid_argument("xcnn: bad shape (2, 3)"),
                            Catch::Matchers::ContainsSubstring("(2, 3)"));
    }
    SECTION("near and Approx")
    {
        const int n = GENERATE(1, 2, 3);
        CHECK_THAT(0.1 * n, xcnn_test::near(n / 10.0, 1e-12));
        CHECK(0.1 * 3 == Catch::Approx(0.3));
    }
}

TEST_CASE("xtensor with xsimd compiles and computes", "[smoke]")
{
    xt::xtensor<float, 2> a = xt::ones<float>({8, 17});
    xt::xtensor<float, 2> b = 2.0f * a + 1.0f;
    REQUIRE(b.shape(0) == 8);
    REQUIRE(b.shape(1) == 17);
    CHECK_THAT(static_cast<double>(xt::sum(b)()), xcnn_test::near(3.0 * 8 * 17, 1e-3));
#ifdef XTENSOR_USE_XSIMD
    SUCCEED("XTENSOR_USE_XSIMD is defined");
#endif
}
