#!/usr/bin/env bash
# Build xcnn and run its test suite.
#
#   bash scripts/test.sh              # Release build in build/release, -Werror
#   bash scripts/test.sh --sanitize   # Debug -O1 + ASan/UBSan build in build/asan, -Werror
#                                     # (without the tests another sanitized test covers)
#   bash scripts/test.sh --tsan       # ThreadSanitizer build in build/tsan, -Werror: only the tests
#                                     # that run xcnn's thread pool with several threads
#   bash scripts/test.sh --xtensor-next  # Release, C++20, -Werror, against xtensor 0.27.1, xsimd
#                                     # 13.2.0 and xtl 0.8.2 built from ../shared/deps (or
#                                     # $XCNN_DEPS_DIR) into <build>/deps-prefix, in build/xtensor-next:
#                                     # the whole suite but the consumer tests
#   --sanitize --xtensor-next         # both at once, in build/asan-next (what CI runs: one build
#                                     # checks the sanitizers and xtensor 0.27 in C++20)
#   --build-dir=DIR                   # build in DIR instead (e.g. outside a read-only checkout)
#
# The Release and sanitizer builds install ONNX Runtime (npm onnxruntime-node, for the ONNX export
# test) next to the build directory, in <its parent>/onnxruntime, or in $XCNN_ONNXRUNTIME_NODE_DIR.
#
# When run as root on Debian/Ubuntu, missing build dependencies are installed with apt-get
# first. Parallel jobs: $XCNN_JOBS (default 2). Exits non-zero if anything fails (dependency
# install, configure, build, or a test).
set -euo pipefail

usage() {
    # The comment block at the top of this file, whatever its length.
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}

sanitize=0
tsan=0
next=0
build_dir_arg=""
for arg in "$@"; do
    case "$arg" in
        --sanitize) sanitize=1 ;;
        --tsan) tsan=1 ;;
        --xtensor-next) next=1 ;;
        --build-dir=?*) build_dir_arg=${arg#--build-dir=} ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "test.sh: unknown argument: $arg" >&2
            usage >&2
            exit 2
            ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=${XCNN_JOBS:-2}

# --- dependencies ----------------------------------------------------------------------------
packages=(build-essential cmake libxtensor-dev xtl-dev libxsimd-dev catch2 zlib1g-dev
          libbenchmark-dev libopenblas-dev python3-numpy python3-onnx pkg-config clang-format
          libopenmpi-dev openmpi-bin)

if command -v dpkg > /dev/null 2>&1; then
    missing=()
    for pkg in "${packages[@]}"; do
        if ! dpkg -s "$pkg" > /dev/null 2>&1; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} > 0)); then
        if [[ $(id -u) -eq 0 ]]; then
            echo "test.sh: installing missing packages: ${missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update
            apt-get install -y --no-install-recommends "${missing[@]}"
        else
            echo "test.sh: warning: missing packages (not root, not installing): ${missing[*]}" >&2
        fi
    fi
fi

# --- configure / build / test ----------------------------------------------------------------
if ((tsan && sanitize + next > 0)); then
    echo "test.sh: --tsan is a build of its own; give it alone" >&2
    exit 2
fi
if ((tsan)); then
    # ThreadSanitizer cannot be combined with ASan, so it has a build of its own, limited to what
    # runs xcnn's thread pool (core/threading.hpp): test_threading (the pool, layers at 1-4
    # threads), test_concurrency (user threads sharing the pool) and xcnn-mnist training with
    # --threads 2 (xcnn_tests_threads is the group of the first two). test_allocations also sets threads, but its operator new counter cannot see
    # through TSan's allocator, so it would pass vacuously.
    build_dir=${build_dir_arg:-build/tsan}
    tsan_flags="-fsanitize=thread -fno-omit-frame-pointer"
    tsan_targets=(xcnn_tests_threads xcnn-mnist xcnn_io_test_tool)
    tsan_tests='^(test_threading/|test_concurrency/|mnist_example/smoke$)'
    echo "test.sh: configuring $build_dir"
    # XCNN_WITH_MPI=OFF: xcnn's MPI code starts no threads; the tests below never start MPI.
    cmake -S . -B "$build_dir" -DXCNN_WERROR=ON -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1" \
        "-DCMAKE_CXX_FLAGS=$tsan_flags" "-DCMAKE_EXE_LINKER_FLAGS=$tsan_flags" -DXCNN_BUILD_BENCHMARKS=OFF \
        -DXCNN_WITH_MPI=OFF
    echo "test.sh: building ${tsan_targets[*]} in $build_dir"
    cmake --build "$build_dir" -j"$jobs" --target "${tsan_targets[@]}"
    # Any data race or lock-order inversion fails the test that caused it (caller's settings win).
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
    echo "test.sh: testing $build_dir ($tsan_tests)"
    ctest --test-dir "$build_dir" --output-on-failure -j"$jobs" --no-tests=error -R "$tsan_tests"
    echo "test.sh: all ThreadSanitizer tests passed ($build_dir)"
    exit 0
fi

config_args=()
if ((sanitize)); then
    default_dir=build/asan
    config_args+=(
        -DCMAKE_BUILD_TYPE=Debug
        # -g1: line tables for the sanitizers' stack traces, without the full debug info that
        # makes every test translation unit slower to compile.
        "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1"
        -DXCNN_SANITIZE=ON
        -DXCNN_BUILD_BENCHMARKS=OFF
        # The example programs (xcnn-mnist, xcnn-onnx-classify, quickstart) are left out too: a
        # few of the suite's largest translation units, whose library paths (files, checkpoints,
        # ONNX, training) the unit tests run here anyway; the Release build runs the programs'
        # own tests, and the ThreadSanitizer build xcnn-mnist's two-thread smoke.
        -DXCNN_BUILD_EXAMPLES=OFF
        # Left out under the sanitizers: what another sanitized test runs already (test_layers
        # runs every layer, the element-wise activations included, through the conformance tests
        # at several shapes; test_sequential and test_training the networks), scalar-only code
        # (schedules, initialisation, version macros), and the thread tests, which the TSan build
        # runs. Every kernel that reads or writes raw memory keeps its own test here.
        "-DXCNN_SKIP_TESTS=test_smoke;test_relu;test_leaky_relu;test_sigmoid;test_tanh;test_gelu;test_flatten;test_schedule;test_init;test_idx_nozlib;test_threading;test_concurrency;test_resnet_interop"
    )
    # Make any sanitizer report fatal (caller's settings win).
    export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:detect_leaks=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
else
    default_dir=build/release
    config_args+=(-DCMAKE_BUILD_TYPE=Release)
    # Every header alone is the --xtensor-next job's check (as C++20, which CI runs): here it
    # would add three CPU minutes to the build (tests/CMakeLists.txt).
    ((next)) || config_args+=(-DXCNN_TEST_HEADERS=OFF)
fi
ctest_args=()
if ((next)); then
    # xtensor >= 0.26 (C++20, headers in sub-folders) is what vcpkg and conan users get, while
    # the other builds use Debian's 0.24. The release sources in ../shared/deps are installed into
    # a scratch prefix that CMAKE_PREFIX_PATH puts ahead of /usr; Debian's 0.24 headers stay in
    # /usr/include, so anything that reaches xtensor around xcnn's shim would mix the two versions.
    # After the build, the compiler's dependency files prove that no translation unit did.
    if ((sanitize)); then default_dir=build/asan-next; else default_dir=build/xtensor-next; fi
    build_dir=${build_dir_arg:-$default_dir}
    deps_dir=${XCNN_DEPS_DIR:-$(dirname "$PWD")/shared/deps}
    deps_work="$build_dir/deps"
    mkdir -p "$deps_work"
    # Absolute: it ends up in CMAKE_PREFIX_PATH and in the dependency files checked below.
    prefix=$(cd "$build_dir" && pwd)/deps-prefix
    # sha256 of the upstream release archives (shared/deps/README.md): a changed file is not
    # silently tested.
    deps=(
        "xtl-0.8.2 44d5c16ea5fd0cf75794ca11dfb25ca159d5e546930a9fa31bd8252bc80bcd75"
        "xsimd-13.2.0 b9fc85d5444ebc4490fc05a4955e882119ef57fe245ccd9e8edb93562014e903"
        "xtensor-0.27.1 2c150d6a59e4c17ff8a6eb4f20a6ea264b195b2425bfd76072abb091669b3dce"
    )
    rm -rf "$prefix"
    for dep in "${deps[@]}"; do
        name=${dep% *}
        archive="$deps_dir/$name.tar.gz"
        echo "${dep#* }  $archive" | sha256sum --check --quiet - || {
            echo "test.sh: $archive is missing or not the upstream release" >&2
            exit 1
        }
        rm -rf "${deps_work:?}/$name" "$deps_work/$name-build"
        tar -xzf "$archive" -C "$deps_work"
        echo "test.sh: installing $name into $prefix"
        dep_args=()
        [[ $name == xtensor-* ]] && dep_args=(-DXTENSOR_USE_XSIMD=ON)
        # Header-only: configuring and installing takes seconds, nothing is compiled.
        cmake -S "$deps_work/$name" -B "$deps_work/$name-build" -DCMAKE_INSTALL_PREFIX="$prefix" \
            -DCMAKE_PREFIX_PATH="$prefix" "${dep_args[@]}" > /dev/null
        cmake --install "$deps_work/$name-build" > /dev/null
    done
    # XCNN_WITH_MPI=OFF: the Release build compiles and runs the MPI parts (test_distributed,
    # xcnn-mnist --distributed, distributed/mpi.hpp as C++20); here they would only add build time.
    # Makefiles keep the compiler's dependency files next to the objects (Ninja folds them into
    # its own database and deletes them), which is what the header check below reads.
    config_args+=(-G "Unix Makefiles" -DCMAKE_CXX_STANDARD=20 "-DCMAKE_PREFIX_PATH=$prefix"
                  -DXCNN_BUILD_BENCHMARKS=OFF -DXCNN_WITH_MPI=OFF)
    # The consumer tests configure fresh projects that see only the system's packages (run.sh
    # clears CMAKE_PREFIX_PATH on purpose), so here they would test xtensor 0.24 again.
    ctest_args+=(-E '^consumers$')
fi
build_dir=${build_dir_arg:-$default_dir}

# ONNX Runtime (below) is ~300 MB: one copy beside the build directories serves them all.
mkdir -p "$build_dir"
ort_dir=${XCNN_ONNXRUNTIME_NODE_DIR:-$(cd "$(dirname "$build_dir")" && pwd)/onnxruntime}
config_args+=("-DXCNN_ONNXRUNTIME_NODE_DIR=$ort_dir")

echo "test.sh: configuring $build_dir"
cmake -S . -B "$build_dir" -DXCNN_WERROR=ON "${config_args[@]}"

echo "test.sh: building $build_dir"
# One goal, so make builds it on every core (several goals given to `cmake --build` are built one
# after another: the top-level Makefile is .NOTPARALLEL).
cmake --build "$build_dir" -j"$jobs"

if ((next)); then
    # Every header a translation unit read is in its compiler-written dependency file (*.d).
    leaked=$(find "$build_dir" -path "$deps_work" -prune -o -name '*.d' -print0 |
        xargs -0 grep -lE '/usr/(local/)?include/(xtensor|xsimd|xtl)/' || true)
    if [[ -n $leaked ]]; then
        echo "test.sh: these objects were compiled with the system's xtensor/xsimd/xtl headers:" >&2
        echo "$leaked" >&2
        exit 1
    fi
    if ! find "$build_dir" -path "$deps_work" -prune -o -name '*.d' -print0 |
        xargs -0 grep -qF "$prefix/include/xtensor/containers/xtensor.hpp"; then
        echo "test.sh: no object was compiled with $prefix's xtensor; is the check still valid?" >&2
        exit 1
    fi
fi

# ONNX Runtime for onnx/onnxruntime_parity (tests/CMakeLists.txt), from npm: the CPU library ships
# in the package, and --ignore-scripts skips the install script, which only downloads GPU parts.
# Best effort: offline or without npm, ctest reports the test as skipped; nothing fails here.
if [[ ! -f $ort_dir/node_modules/onnxruntime-node/package.json ]]; then
    if command -v npm > /dev/null 2>&1; then
        echo "test.sh: installing onnxruntime-node into $ort_dir"
        mkdir -p "$ort_dir"
        npm install --prefix "$ort_dir" --ignore-scripts --no-audit --no-fund onnxruntime-node@1.30.0 ||
            echo "test.sh: warning: npm could not install onnxruntime-node; onnx/onnxruntime_parity is skipped" >&2
    else
        echo "test.sh: warning: no npm; onnx/onnxruntime_parity is skipped" >&2
    fi
fi

echo "test.sh: testing $build_dir"
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs" --no-tests=error "${ctest_args[@]}"

echo "test.sh: all tests passed ($build_dir$( ((next)) && echo ", xtensor 0.27.1, C++20"))"
