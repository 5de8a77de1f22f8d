# xcnn-mnist --distributed under mpirun (ctest: mnist_example/distributed). Run as
#   cmake -DMNIST=<xcnn-mnist> -DTOOL=<xcnn_io_test_tool> -DMPIEXEC=<mpirun> -DMPIEXEC_NUMPROC_FLAG=-n
#         "-DMPIEXEC_OPTIONS=--oversubscribe" "-DMPIEXEC_PREFLAGS=" -DWORK=<scratch dir> -P mnist_example_distributed.cmake
# (FindMPI's variables; OPTIONS go before everything, e.g. Open MPI's --oversubscribe.) On a tiny MNIST-format
# set (320 training images, 10 batches of 32 per epoch; the seed net):
# 1. --distributed with one rank writes the same model file, byte for byte, as the plain run;
# 2. two ranks: only rank 0 prints and writes the log; a run stopped inside epoch 2 and resumed
#    (every rank reads the checkpoint) ends with the same model file as the run done in one go;
# 3. a rank whose data is bad ends the whole job within seconds, with its message, instead of
#    leaving the other rank waiting.
cmake_minimum_required(VERSION 3.21)
foreach(_var MNIST TOOL MPIEXEC MPIEXEC_NUMPROC_FLAG WORK)
    if(NOT DEFINED ${_var})
        message(FATAL_ERROR "mnist_example_distributed.cmake: -D${_var}=... is required")
    endif()
endforeach()
separate_arguments(mpiexec_options UNIX_COMMAND "${MPIEXEC_OPTIONS}")
separate_arguments(mpiexec_preflags UNIX_COMMAND "${MPIEXEC_PREFLAGS}")
# mpirun [options] -n <ranks> [preflags] <program> <arguments>
function(mpi_command var ranks)
    set(${var} ${MPIEXEC_NUMPROC_FLAG} ${ranks} ${mpiexec_preflags} "${MNIST}" PARENT_SCOPE)
endfunction()
mpi_command(one_rank 1)
mpi_command(two_ranks 2)

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

include("${CMAKE_CURRENT_LIST_DIR}/mnist_example_helpers.cmake")

function(require_same_file a b what)
    execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${a}" "${b}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "${what}: ${a} and ${b} differ")
    endif()
endfunction()

run(0 "${TOOL}" tiny-mnist "${WORK}/data" 320 50)
set(common --data "${WORK}/data" --model seed --batch-size 32 --seed 3 --threads 1 --epochs 2)

# 1. One rank = the plain run, bit for bit.
run(0 "${MNIST}" ${common} --save "${WORK}/plain.xcnn")
run(0 "${MPIEXEC}" ${mpiexec_options} ${one_rank} ${common} --distributed --save "${WORK}/one_rank.xcnn")
require_same_file("${WORK}/plain.xcnn" "${WORK}/one_rank.xcnn" "--distributed on one rank")

# 2. Two ranks, in one go and stopped inside epoch 2 then resumed.
run(0 "${MPIEXEC}" ${mpiexec_options} ${two_ranks} ${common} --distributed --save "${WORK}/two.xcnn"
    --log "${WORK}/two.csv")
string(REGEX MATCHALL "training and [0-9]+ test images" data_lines "${out}")
list(LENGTH data_lines data_line_count)
if(NOT data_line_count EQUAL 1)
    message(FATAL_ERROR "expected the output of rank 0 alone, got ${data_line_count} data summaries:\n${out}")
endif()
require_match("${out}" "communication: [0-9.]+ ms/step in MPI_Allreduce \\([0-9]+ values, 2 ranks\\)"
              "communication time per step")
require_match("${out}" "epoch 2/2  train loss [0-9.]+  test loss [0-9.]+  test accuracy [0-9.]+ %" "epoch line")
file(STRINGS "${WORK}/two.csv" log_lines)
list(LENGTH log_lines log_line_count)
if(NOT log_line_count EQUAL 3)
    message(FATAL_ERROR "two.csv has ${log_line_count} lines, expected a header and 2 epochs (rank 0 alone writes)")
endif()
run(0 "${MPIEXEC}" ${mpiexec_options} ${two_ranks} ${common} --distributed --checkpoint "${WORK}/two.ckpt"
    --stop-after 13)
require_match("${out}" "stopped after 13 steps \\(--stop-after\\) in epoch 2" "stop inside an epoch")
run(0 "${MPIEXEC}" ${mpiexec_options} ${two_ranks} ${common} --distributed --resume "${WORK}/two.ckpt"
    --save "${WORK}/two_resumed.xcnn")
require_match("${out}" "after 13 steps: epoch 2, batch 3/10 done" "resume on two ranks")
require_same_file("${WORK}/two.xcnn" "${WORK}/two_resumed.xcnn" "two ranks, resumed inside an epoch")

# 3. Bad data on rank 1 (a test label file that is not IDX): the job ends with its message.
file(COPY "${WORK}/data/" DESTINATION "${WORK}/bad")
file(WRITE "${WORK}/bad/t10k-labels-idx1-ubyte" "not an IDX file")
string(TIMESTAMP start "%s")
execute_process(
    COMMAND "${MPIEXEC}" ${mpiexec_options} ${one_rank} ${common} --distributed :
            ${one_rank} ${common} --data "${WORK}/bad" --distributed
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
string(TIMESTAMP end "%s")
math(EXPR seconds "${end} - ${start}")
message(STATUS "the job with bad data on rank 1 ended after ${seconds} s with status ${rc}")
if(rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$")
    message(FATAL_ERROR "the job with bad data on rank 1 did not fail (status ${rc}):\n${out}\n${err}")
endif()
require_match("${err}" "xcnn-mnist: error on rank 1 of 2: .*t10k-labels-idx1-ubyte" "the failing rank's message")
# Seconds: MPI start-up and loading 370 images; a rank left waiting would run into the timeout.
if(seconds GREATER 60)
    message(FATAL_ERROR "the job with bad data on rank 1 took ${seconds} s to end")
endif()
