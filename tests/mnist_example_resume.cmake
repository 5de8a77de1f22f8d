# Checkpoints and divergence in the xcnn-mnist program (ctest: mnist_example/resume). Run as
#   cmake -DMNIST=<xcnn-mnist> -DTOOL=<xcnn_io_test_tool> -DWORK=<scratch dir> -P mnist_example_resume.cmake
# On a tiny MNIST-format set (320 training images, 10 batches of 32 per epoch; LeNet, the cheaper
# model, as the sanitizer build runs this too), a run that is
# stopped and resumed must end with exactly the same model file, byte for byte, as the same run
# done in one go: at an epoch boundary, inside an epoch (twice, at another thread count), and
# with a constant learning rate extended by an epoch, and with AdamW and a 1cycle schedule. A checkpoint of another run, or a plain
# model file, is refused. A diverging run (--lr 1e30) exits with status 1 naming the step and the
# parameter, and leaves the --save and --checkpoint files of an earlier run untouched.
cmake_minimum_required(VERSION 3.21)
foreach(_var MNIST TOOL WORK)
    if(NOT DEFINED ${_var})
        message(FATAL_ERROR "mnist_example_resume.cmake: -D${_var}=... is required")
    endif()
endforeach()

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
# The default recipe: learning-rate warm-up and cosine decay over both epochs, momentum 0.9,
# weight decay; the shuffle order changes every epoch.
set(common --data "${WORK}/data" --model lenet --batch-size 32 --seed 3 --threads 1 --epochs 2)
run(0 "${MNIST}" ${common} --save "${WORK}/straight.xcnn")

# 1. Stopped at the end of epoch 1, resumed for epoch 2.
run(0 "${MNIST}" ${common} --checkpoint "${WORK}/boundary.ckpt" --stop-after 10)
require_match("${out}" "stopped after 10 steps \\(--stop-after\\) at the end of epoch 1" "stop at an epoch boundary")
run(0 "${MNIST}" ${common} --resume "${WORK}/boundary.ckpt" --save "${WORK}/boundary.xcnn")
require_match("${out}" "resumed .*boundary.ckpt after 10 steps: epoch 2, batch 0/10 done" "resume message")
require_match("${out}" "epoch 2/2  train loss" "the resumed run trains epoch 2")
if(out MATCHES "epoch 1/2")
    message(FATAL_ERROR "the resumed run trained epoch 1 again:\n${out}")
endif()
require_same_file("${WORK}/straight.xcnn" "${WORK}/boundary.xcnn" "resumed at an epoch boundary")

# 2. Checkpoints every 4 steps; stopped inside epoch 2 at step 13, resumed for 3 steps with 2
#    threads, then to the end.
run(0 "${MNIST}" ${common} --checkpoint "${WORK}/inside.ckpt" --checkpoint-every 4 --stop-after 13)
require_match("${out}" "stopped after 13 steps \\(--stop-after\\) in epoch 2" "stop inside an epoch")
run(0 "${MNIST}" ${common} --threads 2 --checkpoint "${WORK}/inside.ckpt" --resume "${WORK}/inside.ckpt"
    --stop-after 3)
require_match("${out}" "after 13 steps: epoch 2, batch 3/10 done" "resume inside an epoch")
run(0 "${MNIST}" ${common} --checkpoint "${WORK}/inside.ckpt" --resume "${WORK}/inside.ckpt"
    --save "${WORK}/inside.xcnn")
require_match("${out}" "after 16 steps: epoch 2, batch 6/10 done" "second resume inside an epoch")
require_same_file("${WORK}/straight.xcnn" "${WORK}/inside.xcnn" "resumed inside an epoch, twice")
if(NOT out MATCHES "final test accuracy ([0-9.]+) %")
    message(FATAL_ERROR "no final test accuracy in:\n${out}")
endif()
string(REPLACE "." "\\." final_accuracy "${CMAKE_MATCH_1}")

# A checkpoint is a model file: --load reads its network part.
run(0 "${MNIST}" --data "${WORK}/data" --model lenet --load "${WORK}/inside.ckpt" --eval-only)
require_match("${out}" "test accuracy ${final_accuracy} %" "--load of a checkpoint")

# 3. A constant learning rate does not depend on --epochs: one epoch, then extended to two.
set(constant --data "${WORK}/data" --model lenet --batch-size 32 --seed 5 --lr 0.02)
run(0 "${MNIST}" ${constant} --epochs 2 --save "${WORK}/constant.xcnn")
run(0 "${MNIST}" ${constant} --epochs 1 --checkpoint "${WORK}/constant.ckpt")
run(0 "${MNIST}" ${constant} --epochs 2 --resume "${WORK}/constant.ckpt" --save "${WORK}/extended.xcnn")
require_same_file("${WORK}/constant.xcnn" "${WORK}/extended.xcnn" "a constant-rate run extended by an epoch")

# 4. A checkpoint of another run, or a plain model file, is refused.
run(1 "${MNIST}" --data "${WORK}/data" --model lenet --batch-size 32 --seed 4 --epochs 2
    --resume "${WORK}/boundary.ckpt")
require_match("${err}" "--resume '.*boundary.ckpt': the checkpoint continues a run with .*--seed 3 .*; this run has .*--seed 4"
              "checkpoint of another run")
run(1 "${MNIST}" ${common} --resume "${WORK}/straight.xcnn")
require_match("${err}" "model file without training state" "plain model file as a checkpoint")
run(2 "${MNIST}" ${common} --stop-after 3)
require_match("${err}" "--stop-after needs --checkpoint FILE" "--stop-after without --checkpoint")
run(2 "${MNIST}" ${common} --resume "${WORK}/boundary.ckpt" --load "${WORK}/straight.xcnn")
require_match("${err}" "--load has no effect with --resume" "--load with --resume")

# 5. AdamW with a 1cycle schedule over both epochs, stopped inside epoch 1 and resumed: the
#    schedule's state travels in the checkpoint; a run without the schedule refuses it.
set(adamw --data "${WORK}/data" --model lenet --batch-size 32 --seed 6 --epochs 2 --optimizer adamw
    --schedule onecycle --lr 0.003)
run(0 "${MNIST}" ${adamw} --save "${WORK}/adamw.xcnn")
run(0 "${MNIST}" ${adamw} --checkpoint "${WORK}/adamw.ckpt" --stop-after 7)
run(0 "${MNIST}" ${adamw} --checkpoint "${WORK}/adamw.ckpt" --resume "${WORK}/adamw.ckpt"
    --save "${WORK}/adamw_resumed.xcnn")
require_match("${out}" "after 7 steps: epoch 1, batch 7/10 done" "resume of a scheduled AdamW run")
require_same_file("${WORK}/adamw.xcnn" "${WORK}/adamw_resumed.xcnn" "an AdamW + OneCycleLR run resumed")
run(1 "${MNIST}" --data "${WORK}/data" --model lenet --batch-size 32 --seed 6 --epochs 2 --optimizer adamw
    --lr 0.003 --resume "${WORK}/adamw.ckpt")
require_match("${err}" "adamw.ckpt': the checkpoint holds the state of a 'OneCycleLR' schedule"
              "a scheduled run's checkpoint without the schedule")

# 6. Divergence: exit status 1, the step and the parameter named, earlier files untouched.
file(SHA256 "${WORK}/straight.xcnn" model_before)
file(SHA256 "${WORK}/boundary.ckpt" checkpoint_before)
run(1 "${MNIST}" --data "${WORK}/data" --model lenet --batch-size 32 --seed 3 --epochs 2 --lr 1e30 --momentum 0
    --save "${WORK}/straight.xcnn" --checkpoint "${WORK}/boundary.ckpt")
require_match("${err}"
              "training diverged in epoch 1, batch [0-9]+/10 \\(training step [0-9]+\\): SGD step [0-9]+: non-finite (gradient|value) in parameter '[0-9]+\\.(weight|bias)' \\((Conv2D|Dense)\\("
              "divergence names the step and the parameter")
require_match("${err}" "no parameter was changed" "divergence leaves the parameters")
file(SHA256 "${WORK}/straight.xcnn" model_after)
file(SHA256 "${WORK}/boundary.ckpt" checkpoint_after)
if(NOT model_before STREQUAL model_after OR NOT checkpoint_before STREQUAL checkpoint_after)
    message(FATAL_ERROR "a diverged run changed the --save or --checkpoint file of an earlier run")
endif()
file(GLOB leftovers "${WORK}/.*.tmp-*")
if(leftovers)
    message(FATAL_ERROR "temporary files left behind: ${leftovers}")
endif()
