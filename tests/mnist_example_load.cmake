# xcnn-mnist --load with any model file (ctest: mnist_example/load). Run as
#   cmake -DMNIST=<xcnn-mnist> -DTOOL=<xcnn_io_test_tool> -DFIXTURES=<tests/fixtures> -DWORK=<scratch dir>
#         -P mnist_example_load.cmake
# Model files record the network they hold, so --load runs it whatever --model saved it: LeNet and
# the seed net, trained one epoch on a tiny MNIST-format set and saved, evaluate with --load and
# --eval-only to the trained accuracy without --model, with the other --model (a note says the
# file's network runs) and with their own; a network none of --model's evaluates and trains on.
# A file of xcnn 0.1
# (tests/fixtures/v1), which does not describe its network, still needs the matching --model and
# otherwise fails naming the first tensor that differs.
cmake_minimum_required(VERSION 3.21)
foreach(_var MNIST TOOL FIXTURES WORK)
    if(NOT DEFINED ${_var})
        message(FATAL_ERROR "mnist_example_load.cmake: -D${_var}=... is required")
    endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

include("${CMAKE_CURRENT_LIST_DIR}/mnist_example_helpers.cmake")

run(0 "${TOOL}" tiny-mnist "${WORK}/data" 640 200)

foreach(model lenet seed)
    if(model STREQUAL "lenet")
        set(other seed)
    else()
        set(other lenet)
    endif()
    run(0 "${MNIST}" --data "${WORK}/data" --model ${model} --epochs 1 --batch-size 32 --seed 5
        --save "${WORK}/${model}.xcnn")
    # The test loss and accuracy after the epoch, as regexes for the same numbers.
    if(NOT out MATCHES "test loss ([0-9]+)\\.([0-9]+)  test accuracy ([0-9]+)\\.([0-9]+) %")
        message(FATAL_ERROR "no test loss and accuracy in:\n${out}")
    endif()
    set(accuracy "loss ${CMAKE_MATCH_1}\\.${CMAKE_MATCH_2}  test accuracy ${CMAKE_MATCH_3}\\.${CMAKE_MATCH_4}")

    # No --model: the network the file describes.
    run(0 "${MNIST}" --data "${WORK}/data" --load "${WORK}/${model}.xcnn" --eval-only)
    require_match("${out}" "model: the network .*${model}.xcnn describes" "${model} without --model: the file's network")
    require_match("${out}" "test ${accuracy} %" "${model} without --model: the trained loss and accuracy")

    # Another --model: the file's network, with a note.
    run(0 "${MNIST}" --data "${WORK}/data" --model ${other} --load "${WORK}/${model}.xcnn" --eval-only)
    require_match("${out}" "holds another network than --model ${other}; running the one it describes"
                  "${model} with --model ${other}: the note")
    require_match("${out}" "test ${accuracy} %" "${model} with --model ${other}: the trained loss and accuracy")

    # Its own --model: the Sequential, as before.
    run(0 "${MNIST}" --data "${WORK}/data" --model ${model} --load "${WORK}/${model}.xcnn" --eval-only)
    require_match("${out}" "model: ${model}, " "${model} with its own --model: the compiled network")
    require_match("${out}" "test ${accuracy} %" "${model} with its own --model: the trained loss and accuracy")
endforeach()

# A network none of --model's (written by another program) evaluates, trains on and saves a file
# that loads again.
run(0 "${TOOL}" other-model "${WORK}/other.xcnn")
run(0 "${MNIST}" --data "${WORK}/data" --load "${WORK}/other.xcnn" --eval-only)
require_match("${out}" "model: the network .*other.xcnn describes, 2034 parameters" "another network")
run(0 "${MNIST}" --data "${WORK}/data" --load "${WORK}/other.xcnn" --epochs 1 --batch-size 32 --lr 0.05
    --save "${WORK}/other2.xcnn")
if(NOT out MATCHES "final test accuracy ([0-9]+)\\.([0-9]+) %")
    message(FATAL_ERROR "no final test accuracy after training the loaded network:\n${out}")
endif()
set(accuracy "${CMAKE_MATCH_1}\\.${CMAKE_MATCH_2}")
run(0 "${MNIST}" --data "${WORK}/data" --load "${WORK}/other2.xcnn" --eval-only)
require_match("${out}" "test accuracy ${accuracy} %" "the network trained after --load, saved and loaded again")

# --export-onnx of a described network, of --model's architecture or of none of them: save_onnx
# writes a Network from its layers' specs.
run(0 "${MNIST}" --data "${WORK}/data" --load "${WORK}/seed.xcnn" --eval-only --export-onnx "${WORK}/seed.onnx")
require_match("${out}" "exported .*seed.onnx \\(ONNX, opset 13\\)" "--export-onnx of a described seed net")
run(0 "${MNIST}" --data "${WORK}/data" --load "${WORK}/other.xcnn" --eval-only --export-onnx "${WORK}/other.onnx")
require_match("${out}" "exported .*other.onnx \\(ONNX, opset 13\\)" "--export-onnx of another network")

# A file of xcnn 0.1 does not describe its network: --model's (lenet by default) must match it.
run(1 "${MNIST}" --data "${WORK}/data" --load "${FIXTURES}/v1/small_net.xcnn" --eval-only)
require_match("${err}" "architecture mismatch at tensor 0: the file has '0.weight' of shape \\(2, 1, 3, 3\\)"
              "a file without the description, of another architecture")
