#ifndef XCNN_TESTS_CATCH_COMPAT_HPP
#define XCNN_TESTS_CATCH_COMPAT_HPP

/// @file catch_compat.hpp
/// @brief The one Catch2 include for xcnn's tests; works with Catch2 v2.13 and v3.
///
/// Test sources include only this header (`#include "catch_compat.hpp"`) and restrict themselves
/// to the API that exists in both major versions:
///
///   - `TEST_CASE`, `SECTION`, `GENERATE` (with `values`, `range`, ...), `INFO`, `CAPTURE`
///   - `REQUIRE` / `CHECK`, `REQUIRE_FALSE` / `CHECK_FALSE`, `REQUIRE_NOTHROW`
///   - `REQUIRE_THROWS_AS(expr, Type)`
///   - `REQUIRE_THROWS_WITH(expr, xcnn_test::contains("part of message"))`
///   - `REQUIRE_THAT(value, xcnn_test::near(expected, abs_tol))` / `CHECK_THAT(...)`
///   - `Catch::Approx` (v3 spelling; this header adds the alias for v2)
///   - `Catch::Matchers::ContainsSubstring` (v3 spelling; this header adds a shim for v2), though
///     `xcnn_test::contains` is the preferred spelling.
///
/// Do not use the v2-only global `Approx` or v2's `Catch::Matchers::Contains(std::string)`
/// (in v3 `Contains` is a *range* matcher), and do not include `<catch2/...>` directly.
///
/// Example:
/// @code
///   #include "catch_compat.hpp"
///   #include <xcnn/version.hpp>
///
///   TEST_CASE("example")
///   {
///       const int n = GENERATE(1, 2, 3);
///       CHECK_THAT(0.1 * n, xcnn_test::near(n / 10.0, 1e-12));
///       REQUIRE_THROWS_WITH(throw std::invalid_argument("bad shape (2, 3)"),
///                           xcnn_test::contains("bad shape"));
///   }
/// @endcode
///
/// tests/main.cpp defines `XCNN_TEST_MAIN` before including this header to obtain `main()`
/// (v2: `CATCH_CONFIG_MAIN`; v3: a `Catch::Session` based main). No other file may define it.

#include <string>

#if defined(__has_include)
#if __has_include(<catch2/catch_all.hpp>)
#define XCNN_TEST_CATCH2_MAJOR 3
#else
#define XCNN_TEST_CATCH2_MAJOR 2
#endif
#else
#define XCNN_TEST_CATCH2_MAJOR 2
#endif

#if XCNN_TEST_CATCH2_MAJOR == 3

#include <catch2/catch_all.hpp>

#ifdef XCNN_TEST_MAIN
int main(int argc, char* argv[])
{
    return Catch::Session().run(argc, argv);
}
#endif

#else // Catch2 v2

#ifdef XCNN_TEST_MAIN
#define CATCH_CONFIG_MAIN
#endif
#include <catch2/catch.hpp>

namespace Catch
{
// v3 spells it Catch::Approx; v2 only has Catch::Detail::Approx (and a global ::Approx).
using Detail::Approx;

namespace Matchers
{
/// v3's substring matcher under its v3 name.
inline StdString::ContainsMatcher ContainsSubstring(const std::string& str,
                                                    CaseSensitive::Choice caseSensitivity = CaseSensitive::Yes)
{
    return Contains(str, caseSensitivity);
}
} // namespace Matchers
} // namespace Catch

#endif // XCNN_TEST_CATCH2_MAJOR

namespace xcnn_test
{

/// Matcher: the (exception message) string contains @p substring (case-sensitive).
/// Use with `REQUIRE_THROWS_WITH(expr, xcnn_test::contains("..."))` or `REQUIRE_THAT`.
inline auto contains(const std::string& substring)
{
#if XCNN_TEST_CATCH2_MAJOR == 3
    return Catch::Matchers::ContainsSubstring(substring);
#else
    return Catch::Matchers::Contains(substring);
#endif
}

/// Matcher: |value - target| <= abs_tol. Use with `REQUIRE_THAT` / `CHECK_THAT`.
inline auto near(double target, double abs_tol)
{
    return Catch::Matchers::WithinAbs(target, abs_tol);
}

} // namespace xcnn_test

#endif // XCNN_TESTS_CATCH_COMPAT_HPP
