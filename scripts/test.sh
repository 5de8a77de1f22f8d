#!/usr/bin/env bash
# Build xcnn and run its test suite.
#
#   bash scripts/test.sh              # Release build in build/release, -Werror
#   bash scripts/test.sh --sanitize   # Debug -O1 + ASan/UBSan build in build/asan, -Werror
#   bash scripts/test.sh --tsan       # ThreadSanitizer build in build/tsan, -Werror: only the tests
#                                     # that run xcnn's thread pool with several threads
#
# When run as root on Debian/Ubuntu, missing build dependencies are installed with apt-get
# first. Exits non-zero if anything fails (dependency install, configure, build, or a test).
set -euo pipefail

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

sanitize=0
tsan=0
for arg in "$@"; do
    case "$arg" in
        --sanitize) sanitize=1 ;;
        --tsan) tsan=1 ;;
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

jobs=2

# --- dependencies ----------------------------------------------------------------------------
packages=(build-essential cmake libxtensor-dev xtl-dev libxsimd-dev catch2 zlib1g-dev
          libbenchmark-dev libopenblas-dev python3-numpy pkg-config)

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
if ((sanitize && tsan)); then
    echo "test.sh: --sanitize and --tsan are separate builds; give one" >&2
    exit 2
fi
if ((tsan)); then
    # ThreadSanitizer cannot be combined with ASan, so it has a build of its own, limited to what
    # runs xcnn's thread pool (core/threading.hpp): test_threading (the pool, layers at 1-4
    # threads), test_concurrency (user threads sharing the pool) and xcnn-mnist training with
    # --threads 2. test_allocations also sets threads, but its operator new counter cannot see
    # through TSan's allocator, so it would pass vacuously.
    build_dir=build/tsan
    tsan_flags="-fsanitize=thread -fno-omit-frame-pointer"
    tsan_targets=(test_threading test_concurrency xcnn-mnist xcnn_io_test_tool)
    tsan_tests='^(test_threading/|test_concurrency/|mnist_example/smoke$)'
    echo "test.sh: configuring $build_dir"
    cmake -S . -B "$build_dir" -DXCNN_WERROR=ON -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1" \
        "-DCMAKE_CXX_FLAGS=$tsan_flags" "-DCMAKE_EXE_LINKER_FLAGS=$tsan_flags" -DXCNN_BUILD_BENCHMARKS=OFF
    echo "test.sh: building ${tsan_targets[*]} in $build_dir"
    cmake --build "$build_dir" -j"$jobs" --target "${tsan_targets[@]}"
    # Any data race or lock-order inversion fails the test that caused it (caller's settings win).
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
    echo "test.sh: testing $build_dir ($tsan_tests)"
    ctest --test-dir "$build_dir" --output-on-failure -j"$jobs" --no-tests=error -R "$tsan_tests"
    echo "test.sh: all ThreadSanitizer tests passed ($build_dir)"
    exit 0
fi
if ((sanitize)); then
    build_dir=build/asan
    config_args=(
        -DCMAKE_BUILD_TYPE=Debug
        # -g1: line tables for the sanitizers' stack traces, without the full debug info that
        # makes every test translation unit slower to compile.
        "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1"
        -DXCNN_SANITIZE=ON
        -DXCNN_BUILD_BENCHMARKS=OFF
    )
    # Make any sanitizer report fatal (caller's settings win).
    export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:detect_leaks=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
else
    build_dir=build/release
    config_args=(-DCMAKE_BUILD_TYPE=Release)
fi

echo "test.sh: configuring $build_dir"
cmake -S . -B "$build_dir" -DXCNN_WERROR=ON "${config_args[@]}"

echo "test.sh: building $build_dir"
cmake --build "$build_dir" -j"$jobs"

echo "test.sh: testing $build_dir"
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs" --no-tests=error

echo "test.sh: all tests passed ($build_dir)"
