# Argument errors of xcnn-mnist (ctest: mnist_example/arguments): each case must exit with
# status 2 and print its message, which names the option and the value, and the usage to stderr;
# --help exits 0 with the usage. Every option has cases: a missing value, a non-number, trailing
# junk, a sign, a value out of range, and for paths one that does not exist or has the wrong kind.
#   cmake -DMNIST=<xcnn-mnist> -P mnist_example_arguments.cmake
cmake_minimum_required(VERSION 3.21)
if(NOT DEFINED MNIST)
    message(FATAL_ERROR "mnist_example_arguments.cmake: -DMNIST=... is required")
endif()

execute_process(COMMAND "${MNIST}" --help RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "usage: xcnn-mnist" OR NOT out MATCHES "--eval-only")
    message(FATAL_ERROR "--help: exit status ${rc}, output:\n${out}${err}")
endif()

set(here "${CMAKE_CURRENT_LIST_DIR}")
# Each case: arguments (separated by spaces) | part of the expected message.
set(cases
    "--bogus|unknown option '--bogus'"
    "stray|unexpected argument 'stray'"
    "--epochs|--epochs needs a value"
    "--epochs 0|--epochs must be at least 1, got 0"
    "--epochs abc|--epochs expects a non-negative integer, got 'abc'"
    "--epochs -3|--epochs expects a non-negative integer, got '-3'"
    "--epochs 2.5|--epochs expects a non-negative integer, got '2.5'"
    "--batch-size 0|--batch-size must be at least 1, got 0"
    "--lr 0|--lr must be positive, got 0"
    "--lr -0.1|--lr must be positive, got -0.1"
    "--lr nan|--lr expects a finite number, got 'nan'"
    "--lr 0.1x|--lr expects a finite number, got '0.1x'"
    "--momentum 1|--momentum must be at least 0 and less than 1, got 1"
    "--model vgg|--model must be lenet, seed or resnet, got 'vgg'"
    "--seed 4294967296|--seed must be at most 4294967295"
    "--threads 5000|--threads must be at most 1024"
    "--threads=two|--threads expects a non-negative integer, got 'two'"
    "--eval-only|--eval-only needs --load FILE"
    "--eval-only=yes --load m|--eval-only takes no value"
    "--eval-only --load m --save n|--save has no effect with --eval-only"
    "--data=|--data needs a directory"
    # Numbers: trailing junk, signs, blanks, bases, overflow, ranges.
    "--epochs 10x|--epochs expects a non-negative integer, got '10x'"
    "--epochs +3|--epochs expects a non-negative integer, got '+3'"
    "--epochs ' 3'|--epochs expects a non-negative integer, got ' 3'"
    "--epochs 1000001|--epochs must be at most 1000000, got 1000001"
    "--epochs 99999999999999999999999|--epochs expects a non-negative integer, got '99999999999999999999999'"
    "--batch-size|--batch-size needs a value"
    "--batch-size -1|--batch-size expects a non-negative integer, got '-1'"
    "--batch-size 64k|--batch-size expects a non-negative integer, got '64k'"
    "--batch-size 1048577|--batch-size must be at most 1048576, got 1048577"
    "--batch-size=0|--batch-size must be at least 1, got 0"
    "--lr|--lr needs a value"
    "--lr abc|--lr expects a number, got 'abc'"
    "--lr inf|--lr expects a finite number, got 'inf'"
    "--lr ' 0.1'|--lr expects a number, got ' 0.1'"
    "--lr 1e39|--lr must lie within float's range (1e-45 to 3.4e38), got 1e39"
    "--lr 1e-50|--lr must lie within float's range (1e-45 to 3.4e38), got 1e-50"
    "--momentum|--momentum needs a value"
    "--momentum -0.5|--momentum must be at least 0 and less than 1, got -0.5"
    "--momentum 1.5|--momentum must be at least 0 and less than 1, got 1.5"
    "--momentum 0.9x|--momentum expects a finite number, got '0.9x'"
    "--momentum nan|--momentum expects a finite number, got 'nan'"
    "--seed|--seed needs a value"
    "--seed -1|--seed expects a non-negative integer, got '-1'"
    "--seed 0x10|--seed expects a non-negative integer, got '0x10'"
    "--threads|--threads needs a value"
    "--threads -2|--threads expects a non-negative integer, got '-2'"
    "--threads 2.0|--threads expects a non-negative integer, got '2.0'"
    # Names and flags.
    "--model|--model needs a value"
    "--model LeNet|--model must be lenet, seed or resnet, got 'LeNet'"
    "--help=1|--help takes no value"
    "-x|unknown option '-x'"
    "--|unknown option '--'"
    "--EPOCHS 3|unknown option '--EPOCHS'"
    "--eval-only --load m --epochs 3|--epochs has no effect with --eval-only"
    "--eval-only --load m --lr 0.1|--lr has no effect with --eval-only"
    "--eval-only --load m --batch-size 8|--batch-size has no effect with --eval-only"
    "--eval-only --load m --momentum 0.5|--momentum has no effect with --eval-only"
    "--eval-only --load m --seed 2|--seed has no effect with --eval-only"
    # Paths, checked before anything runs (this script's directory stands in for a data directory).
    "--data|--data needs a value"
    "--data ${here}/no-such-dir|--data '${here}/no-such-dir': no such directory"
    "--data ${MNIST}|--data '${MNIST}' is not a directory"
    "--load|--load needs a value"
    "--load=|--load needs a file name"
    "--data ${here} --load ${here}/no-such-model.xcnn|--load '${here}/no-such-model.xcnn': no such file"
    "--data ${here} --load ${here}|--load '${here}' is a directory, not a model file"
    "--save|--save needs a value"
    "--export-onnx=|--export-onnx needs a file name"
    "--data ${here} --export-onnx ${here}|--export-onnx '${here}' is a directory, not a file"
    "--save=|--save needs a file name"
    "--data ${here} --save ${here}|--save '${here}' is a directory, not a file"
    "--data ${here} --save ${here}/no-such-dir/m.xcnn|--save '${here}/no-such-dir/m.xcnn': the directory '${here}/no-such-dir' does not exist"
    "--log|--log needs a value"
    "--log=|--log needs a file name"
    "--data ${here} --log ${here}|--log '${here}' is a directory, not a file"
    "--data ${here} --log ${here}/no-such-dir/log.csv|--log '${here}/no-such-dir/log.csv': the directory '${here}/no-such-dir' does not exist"
    # Checkpoints.
    "--checkpoint|--checkpoint needs a value"
    "--checkpoint=|--checkpoint needs a file name"
    "--data ${here} --checkpoint ${here}|--checkpoint '${here}' is a directory, not a file"
    "--data ${here} --checkpoint ${here}/no-such-dir/c.ckpt|--checkpoint '${here}/no-such-dir/c.ckpt': the directory '${here}/no-such-dir' does not exist"
    "--resume|--resume needs a value"
    "--resume=|--resume needs a file name"
    "--data ${here} --resume ${here}/no-such.ckpt|--resume '${here}/no-such.ckpt': no such file"
    "--data ${here} --resume ${here}|--resume '${here}' is not a checkpoint file"
    "--checkpoint-every|--checkpoint-every needs a value"
    "--checkpoint-every 0 --checkpoint c|--checkpoint-every must be at least 1, got 0"
    "--checkpoint-every 5x|--checkpoint-every expects a non-negative integer, got '5x'"
    "--checkpoint-every 3|--checkpoint-every needs --checkpoint FILE"
    "--stop-after|--stop-after needs a value"
    "--stop-after -1|--stop-after expects a non-negative integer, got '-1'"
    "--stop-after 1099511627777|--stop-after must be at most 1099511627776, got 1099511627777"
    "--eval-only --load m --checkpoint c|--checkpoint has no effect with --eval-only"
    # Optimizers and schedules.
    "--optimizer|--optimizer needs a value"
    "--optimizer rmsprop|--optimizer must be sgd, adam or adamw, got 'rmsprop'"
    "--optimizer=Adam|--optimizer must be sgd, adam or adamw, got 'Adam'"
    "--schedule|--schedule needs a value"
    "--schedule linear|--schedule must be none, step, cosine or onecycle, got 'linear'"
    "--optimizer adam --momentum 0.5|--momentum applies to --optimizer sgd, not adam"
    "--momentum 0.5 --optimizer adamw|--momentum applies to --optimizer sgd, not adamw"
    "--eval-only --load m --optimizer adam|--optimizer has no effect with --eval-only"
    "--eval-only --load m --schedule step|--schedule has no effect with --eval-only"
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
