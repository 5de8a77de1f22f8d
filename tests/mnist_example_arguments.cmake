# Argument errors of xcnn-mnist (ctest: mnist_example/arguments): each case must exit with
# status 2 and print its message and the usage to stderr; --help exits 0 with the usage.
#   cmake -DMNIST=<xcnn-mnist> -P mnist_example_arguments.cmake
cmake_minimum_required(VERSION 3.21)
if(NOT DEFINED MNIST)
    message(FATAL_ERROR "mnist_example_arguments.cmake: -DMNIST=... is required")
endif()

execute_process(COMMAND "${MNIST}" --help RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "usage: xcnn-mnist" OR NOT out MATCHES "--eval-only")
    message(FATAL_ERROR "--help: exit status ${rc}, output:\n${out}${err}")
endif()

# Each case: arguments (separated by spaces) | part of the expected message.
set(cases
    "--bogus|unknown option '--bogus'"
    "stray|unexpected argument 'stray'"
    "--epochs|--epochs needs a value"
    "--epochs 0|--epochs must be at least 1"
    "--epochs abc|--epochs expects a non-negative integer, got 'abc'"
    "--epochs -3|--epochs expects a non-negative integer, got '-3'"
    "--epochs 2.5|--epochs expects a non-negative integer, got '2.5'"
    "--batch-size 0|--batch-size must be at least 1"
    "--lr 0|--lr must be positive"
    "--lr -0.1|--lr must be positive"
    "--lr nan|--lr expects a finite number"
    "--lr 0.1x|--lr expects a finite number, got '0.1x'"
    "--momentum 1|--momentum must be in "
    "--model resnet|--model must be lenet or seed, got 'resnet'"
    "--seed 4294967296|--seed must be at most 4294967295"
    "--threads 5000|--threads must be at most 1024"
    "--threads=two|--threads expects a non-negative integer, got 'two'"
    "--eval-only|--eval-only needs --load FILE"
    "--eval-only=yes --load m|--eval-only takes no value"
    "--eval-only --load m --save n|--save has no effect with --eval-only"
    "--data=|--data needs a directory"
)
set(failures "")
foreach(case IN LISTS cases)
    string(FIND "${case}" "|" bar)
    string(SUBSTRING "${case}" 0 ${bar} args)
    math(EXPR start "${bar} + 1")
    string(SUBSTRING "${case}" ${start} -1 expected)
    separate_arguments(args UNIX_COMMAND "${args}")
    execute_process(COMMAND "${MNIST}" ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    string(FIND "${err}" "${expected}" found)
    string(FIND "${err}" "usage: xcnn-mnist" usage)
    if(NOT rc EQUAL 2 OR found EQUAL -1 OR usage EQUAL -1)
        string(APPEND failures "\n  xcnn-mnist ${args}: exit status ${rc} (expected 2), stderr:\n${err}")
    endif()
endforeach()
if(failures)
    message(FATAL_ERROR "argument errors not reported as expected:${failures}")
endif()
list(LENGTH cases n)
message(STATUS "${n} invalid command lines rejected with exit status 2")
