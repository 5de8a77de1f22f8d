// The message of the xcnn::error a callable throws, for tests that check what an error says.
#ifndef XCNN_TESTS_SUPPORT_ERROR_OF_HPP
#define XCNN_TESTS_SUPPORT_ERROR_OF_HPP

#include <xcnn/core/error.hpp>

#include <string>

namespace xcnn_test
{

/// `f()`'s xcnn::error message, or "(no exception)" when it throws none.
template <class F>
std::string error_of(F&& f)
{
    try
    {
        f();
    }
    catch (const xcnn::error& e)
    {
        return e.what();
    }
    return "(no exception)";
}

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_ERROR_OF_HPP
