// Shared by the fuzz harnesses: a check that aborts, so a broken invariant is a crash that libFuzzer
// (and the corpus replay test) report with the input that caused it. xcnn::error is the expected
// outcome of a malformed input and is caught by each harness; nothing here catches anything else.
#ifndef XCNN_TESTS_FUZZ_FUZZ_CHECK_HPP
#define XCNN_TESTS_FUZZ_FUZZ_CHECK_HPP

#include <cstdio>
#include <cstdlib>

#define XCNN_FUZZ_CHECK(condition, what)                                                                               \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(condition))                                                                                              \
        {                                                                                                              \
            std::fprintf(stderr, "%s:%d: fuzz invariant violated: %s (%s)\n", __FILE__, __LINE__, what, #condition);   \
            std::abort();                                                                                              \
        }                                                                                                              \
    } while (false)

#endif // XCNN_TESTS_FUZZ_FUZZ_CHECK_HPP
