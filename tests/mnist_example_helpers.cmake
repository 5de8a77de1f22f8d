# Helpers of the cmake -P scripts that drive xcnn-mnist (mnist_example_smoke.cmake,
# mnist_example_resume.cmake), included by them.

# run(<expected exit status> <command...>): runs it, fails unless it exits with that status;
# sets `out` and `err` in the caller.
function(run expected)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
    if(NOT "${rc}" STREQUAL "${expected}")
        message(FATAL_ERROR "expected exit status ${expected}, got ${rc}: ${ARGN}\n--- stdout:\n${stdout}\n--- stderr:\n${stderr}")
    endif()
    set(out "${stdout}" PARENT_SCOPE)
    set(err "${stderr}" PARENT_SCOPE)
endfunction()

function(require_match text regex what)
    if(NOT text MATCHES "${regex}")
        message(FATAL_ERROR "${what}: no match for '${regex}' in:\n${text}")
    endif()
endfunction()
