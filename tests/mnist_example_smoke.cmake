# Smoke test of the xcnn-mnist program (ctest: mnist_example/smoke). Run as
#   cmake -DMNIST=<xcnn-mnist> -DTOOL=<xcnn_io_test_tool> -DWORK=<scratch dir> -P mnist_example_smoke.cmake
# Writes a tiny MNIST-format set (640 training images, gzip; 200 test images, raw), trains LeNet
# for one epoch with a CSV log, --save and --export-onnx, evaluates the saved model with --load
# --eval-only (exporting it again), and checks the output, the log, the accuracy, that a model file
# of another architecture than --model runs the network it describes, and the errors for a
# directory without data. It trains the seed net, which learns this easy
# set in one epoch (LeNet needs a few epochs to leave its initial plateau).
cmake_minimum_required(VERSION 3.21)
foreach(_var MNIST TOOL WORK)
    if(NOT DEFINED ${_var})
        message(FATAL_ERROR "mnist_example_smoke.cmake: -D${_var}=... is required")
    endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

include("${CMAKE_CURRENT_LIST_DIR}/mnist_example_helpers.cmake")

run(0 "${TOOL}" tiny-mnist "${WORK}/data" 640 200)

# Train one epoch.
run(0 "${MNIST}" --data "${WORK}/data" --model seed --epochs 1 --batch-size 32 --seed 3 --threads 2
    --log "${WORK}/log.csv" --save "${WORK}/model.xcnn" --export-onnx "${WORK}/trained.onnx")
message(STATUS "training output:\n${out}")
require_match("${out}" "exported .*trained.onnx \\(ONNX, opset 13\\)" "--export-onnx after training")
require_match("${out}" "640 training and 200 test images" "data summary")
require_match("${out}" "epoch 1/1  batch +5/20  loss" "plain progress lines when not on a terminal")
require_match("${out}" "epoch 1/1  train loss [0-9.]+  test loss [0-9.]+  test accuracy [0-9.]+ %" "epoch line")
require_match("${out}" "confusion matrix \\(rows: true label, columns: predicted label\\)" "confusion matrix")
if(NOT out MATCHES "final test accuracy ([0-9]+)\\.([0-9]+) %")
    message(FATAL_ERROR "no final test accuracy in:\n${out}")
endif()
set(trained_accuracy "${CMAKE_MATCH_1}\\.${CMAKE_MATCH_2}") # a regex for the same number
if(NOT EXISTS "${WORK}/model.xcnn")
    message(FATAL_ERROR "--save did not write ${WORK}/model.xcnn")
endif()

# The CSV log: the header and one row per epoch, accuracy as a fraction.
file(STRINGS "${WORK}/log.csv" lines)
list(LENGTH lines count)
if(NOT count EQUAL 2)
    message(FATAL_ERROR "log.csv has ${count} lines, expected 2: ${lines}")
endif()
list(GET lines 0 header)
list(GET lines 1 row)
if(NOT header STREQUAL "epoch,train_loss,test_loss,test_accuracy,seconds")
    message(FATAL_ERROR "log.csv header is '${header}'")
endif()
require_match("${row}" "^1,[0-9.e+-]+,[0-9.e+-]+,(0|1|0\\.[0-9]+),[0-9.e+-]+$" "log.csv row")
string(REPLACE "," ";" fields "${row}")
list(GET fields 3 accuracy)
if(accuracy LESS 0.5)
    message(FATAL_ERROR "test accuracy ${accuracy} after one epoch on the tiny set; expected at least 0.5")
endif()

# Evaluate the saved model: the same accuracy.
run(0 "${MNIST}" --data "${WORK}/data" --model seed --load "${WORK}/model.xcnn" --eval-only --log "${WORK}/eval.csv"
    --export-onnx "${WORK}/model.onnx")
require_match("${out}" "test accuracy ${trained_accuracy} %" "--eval-only accuracy equal to the trained one")
# --export-onnx: an ONNX model (tests/test_onnx.cpp and the onnx/* tests check the format itself),
# starting with ir_version 7 (field 1, varint: 08 07).
require_match("${out}" "exported .*model.onnx \\(ONNX, opset 13\\)" "--export-onnx message")
file(READ "${WORK}/model.onnx" onnx_head LIMIT 2 HEX)
if(NOT onnx_head STREQUAL "0807")
    message(FATAL_ERROR "--export-onnx wrote ${WORK}/model.onnx starting with ${onnx_head}, not an ONNX model")
endif()
require_match("${out}" "confusion matrix" "--eval-only confusion matrix")
file(STRINGS "${WORK}/eval.csv" eval_lines)
list(GET eval_lines 1 eval_row)
require_match("${eval_row}" "^0,,[0-9.e+-]+,(0|1|0\\.[0-9]+),[0-9.e+-]+$" "eval.csv row")

# A model file of another architecture than --model: the file describes its network, which runs
# (mnist_example_load.cmake checks more, and the error for an older file that does not).
run(0 "${MNIST}" --data "${WORK}/data" --model lenet --load "${WORK}/model.xcnn" --eval-only)
require_match("${out}" "holds another network than --model lenet; running the one it describes"
              "model of another architecture")
require_match("${out}" "test accuracy ${trained_accuracy} %" "the described network's accuracy")

# No data: a directory that does not exist is an argument error (exit status 2), one without the
# files a runtime error (exit status 1) naming the files.
run(2 "${MNIST}" --data "${WORK}/nowhere" --epochs 1)
require_match("${err}" "--data '.*nowhere': no such directory" "missing data directory")
file(MAKE_DIRECTORY "${WORK}/empty")
run(1 "${MNIST}" --data "${WORK}/empty" --epochs 1)
require_match("${err}" "no t10k-images-idx3-ubyte in '.*empty': neither '.*t10k-images-idx3-ubyte' nor" "missing data")
