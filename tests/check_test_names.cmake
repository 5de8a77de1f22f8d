# cmake -DTEST_EXECUTABLE=<path> -P check_test_names.cmake: fails if a Catch2 test case name of the
# executable contains ';'. catch_discover_tests splits names at ';' (a CMake list separator), so
# such a case would become a ctest test whose filter matches nothing — and Catch passes an empty
# run: the case would never run while CI stays green.
execute_process(COMMAND "${TEST_EXECUTABLE}" --list-test-names-only
                RESULT_VARIABLE rc OUTPUT_VARIABLE names ERROR_VARIABLE err)
if(NOT rc EQUAL 0 AND NOT rc GREATER 0)
    message(FATAL_ERROR "${TEST_EXECUTABLE} --list-test-names-only failed: ${rc}\n${err}")
endif()
# Each ';' becomes a list separator once the text is split into lines.
string(REPLACE ";" "<semicolon>" names "${names}")
string(REPLACE "\n" ";" lines "${names}")
set(bad "")
foreach(line IN LISTS lines)
    if(line MATCHES "<semicolon>")
        string(REPLACE "<semicolon>" ";" line "${line}")
        string(APPEND bad "  ${line}\n")
    endif()
endforeach()
if(bad)
    message(FATAL_ERROR "test case names with ';' in ${TEST_EXECUTABLE} (ctest would skip them silently; "
                        "use ',' instead):\n${bad}")
endif()
