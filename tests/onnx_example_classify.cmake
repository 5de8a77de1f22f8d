# Test of the xcnn-onnx-classify example (ctest: onnx_example/classify). Run as
#   cmake -DCLASSIFY=<xcnn-onnx-classify> -DMNIST=<xcnn-mnist> -DTOOL=<xcnn_io_test_tool>
#         -DFIXTURES=<tests/fixtures> -DWORK=<scratch dir> -P onnx_example_classify.cmake
# Writes a tiny MNIST-format set, trains the seed net for one epoch with xcnn-mnist and exports it
# with --export-onnx; xcnn-onnx-classify must then give the accuracy xcnn-mnist printed for the
# same test images. It also classifies them with the LeNet PyTorch exported
# (tests/fixtures/onnx_import/lenet, the Shape/Gather/Concat/Reshape flatten, untrained: only the
# output format is checked), and checks the exit status of bad arguments and of a file that is
# not an ONNX model.
cmake_minimum_required(VERSION 3.21)
foreach(_var CLASSIFY MNIST TOOL FIXTURES WORK)
    if(NOT DEFINED ${_var})
        message(FATAL_ERROR "onnx_example_classify.cmake: -D${_var}=... is required")
    endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

include("${CMAKE_CURRENT_LIST_DIR}/mnist_example_helpers.cmake")

run(0 "${TOOL}" tiny-mnist "${WORK}/data" 640 200)
run(0 "${MNIST}" --data "${WORK}/data" --model seed --epochs 1 --batch-size 32 --seed 3 --threads 2
    --export-onnx "${WORK}/seed.onnx")
if(NOT out MATCHES "final test accuracy ([0-9]+\\.[0-9]+) %")
    message(FATAL_ERROR "no final test accuracy in:\n${out}")
endif()
set(trained "${CMAKE_MATCH_1}")

set(images "${WORK}/data/t10k-images-idx3-ubyte")
set(labels "${WORK}/data/t10k-labels-idx1-ubyte")
run(0 "${CLASSIFY}" "${WORK}/seed.onnx" "${images}" "${labels}" --batch-size 64)
message(STATUS "xcnn-onnx-classify on xcnn's export:\n${out}")
require_match("${out}" "200 images of 28x28" "image summary")
if(NOT out MATCHES "accuracy ([0-9]+\\.[0-9]+) % \\(([0-9]+) of 200\\)")
    message(FATAL_ERROR "no accuracy line in:\n${out}")
endif()
# xcnn-mnist prints two decimals too: the same images and weights give the same predictions.
if(NOT CMAKE_MATCH_1 STREQUAL trained)
    message(FATAL_ERROR "xcnn-onnx-classify: accuracy ${CMAKE_MATCH_1} %, xcnn-mnist: ${trained} %")
endif()

run(0 "${CLASSIFY}" "${FIXTURES}/onnx_import/lenet/model.onnx" "${images}" "${labels}")
message(STATUS "xcnn-onnx-classify on PyTorch's LeNet:\n${out}")
require_match("${out}" "accuracy [0-9]+\\.[0-9]+ % \\([0-9]+ of 200\\)" "accuracy of PyTorch's LeNet")

run(2 "${CLASSIFY}" "${WORK}/seed.onnx" "${images}")
require_match("${err}" "expected MODEL.onnx IMAGES LABELS" "missing argument")
run(2 "${CLASSIFY}" "${WORK}/seed.onnx" "${images}" "${labels}" --batch-size 0)
require_match("${err}" "invalid --batch-size '0'" "zero batch size")
run(1 "${CLASSIFY}" "${labels}" "${images}" "${labels}")
require_match("${err}" "xcnn-onnx-classify: .*t10k-labels-idx1-ubyte" "a file that is not an ONNX model")
