// The single translation unit that provides main() for every xcnn test executable.
// It is compiled once into the xcnn_test_main static library.
#define XCNN_TEST_MAIN
#include "catch_compat.hpp"
