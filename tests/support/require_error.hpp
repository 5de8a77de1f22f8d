// `require_error<E>(f, parts)`: f throws exactly the xcnn error E with every string of `parts` in
// its message; what the error tests of every header check.
#ifndef XCNN_TESTS_SUPPORT_REQUIRE_ERROR_HPP
#define XCNN_TESTS_SUPPORT_REQUIRE_ERROR_HPP

#include "../catch_compat.hpp"

#include <xcnn/core/error.hpp>

#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace xcnn_test
{

/// `f()` throws exactly `Expected` (not a subclass), which is also an `xcnn::error`, with a
/// message containing every string of `parts`.
template <class Expected, class F>
void require_error(F&& f, const std::vector<std::string>& parts)
{
    static_assert(std::is_base_of<xcnn::error, Expected>::value, "xcnn exceptions derive from xcnn::error");
    CHECK_THROWS_AS(f(), Expected);
    CHECK_THROWS_AS(f(), xcnn::error);
    CHECK_THROWS_AS(f(), std::runtime_error);
    std::string what = "<no exception>";
    bool exact_type = false;
    try
    {
        f();
    }
    catch (const xcnn::error& e)
    {
        what = e.what();
        exact_type = typeid(e) == typeid(Expected);
    }
    INFO("message: " << what);
    CHECK(exact_type);
    for (const auto& part : parts)
    {
        CHECK_THAT(what, xcnn_test::contains(part));
    }
}

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_REQUIRE_ERROR_HPP
