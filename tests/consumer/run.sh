#!/usr/bin/env bash
# Consumer tests: use xcnn the four ways a project can, from this checkout, and check that each
# builds and runs tests/consumer/common/train_one_step.cpp (one SGD step; the loss must drop).
#
#   bash tests/consumer/run.sh [WORK_DIR]        # default WORK_DIR: build/consumer
#
# 1. install     configure xcnn alone with the options the vcpkg port and the conan recipe use,
#                `cmake --install` it, check the installed files, move the tree elsewhere (the
#                package must be relocatable, as vcpkg and conan copy it around)
# 2. find_package   a CMake project with find_package(xcnn CONFIG REQUIRED) on that tree (and the
#                component mpi, xcnn::mpi, where MPI is installed: a one-rank average); it and
#                the add_subdirectory project, configured without optimisation, must get xcnn's
#                warning about it (and consumers built with -O1 must not)
# 3. add_subdirectory   a CMake project that vendors this checkout
# 4. fetchcontent   a CMake project that gets xcnn with FetchContent from a source archive of the
#                files the conan recipe exports (CMakeLists.txt, cmake/, include/, LICENSE)
# 5. pkgconfig   a Makefile that compiles with `pkg-config --cflags --libs xcnn` only
# 6. test_package   the conan recipe's test_package/ project, built against the installed tree
#                (conan itself needs the internet; this checks the project's CMake and program)
# 7. user_layer  a layer and an activation written outside xcnn (tests/consumer/user_layer, the
#                code of docs/adding-a-layer.md), trained, saved, loaded and exported to .npy
#                through the installed package
#
# Consumers compile with -O1 (CXXFLAGS overrides): this checks packaging, not speed.
# Needs cmake, make, a C++17 compiler, pkg-config and xtensor/xsimd (Debian: libxtensor-dev,
# libxsimd-dev). Exits non-zero on the first failure.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${1:-$src/build/consumer}
mkdir -p "$work"
work=$(cd "$work" && pwd)
consumer_flags=${CXXFLAGS:--O1}
command -v pkg-config > /dev/null || {
    echo "run.sh: pkg-config is needed (Debian: apt-get install pkg-config)" >&2
    exit 1
}
cmake=${CMAKE:-cmake}
jobs=${XCNN_CONSUMER_JOBS:-2}

# Consumers must see only what a user's machine has: not the caller's sanitizer or compiler flags.
unset CXXFLAGS LDFLAGS CPPFLAGS CMAKE_PREFIX_PATH PKG_CONFIG_PATH ASAN_OPTIONS UBSAN_OPTIONS MAKEFLAGS

step() {
    echo
    echo "=== consumer: $*"
}
timed() {
    local start=$SECONDS
    "$@"
    echo "--- $1: $((SECONDS - start)) s"
}

# The CMake options the vcpkg port (ports/xcnn/portfile.cmake) and the conan recipe (conanfile.py)
# pass; scripts/check_packaging.py checks that they still pass exactly these.
package_options=(-DXCNN_BUILD_TESTS=OFF -DXCNN_BUILD_EXAMPLES=OFF -DXCNN_BUILD_BENCHMARKS=OFF -DXCNN_INSTALL=ON
    -DXCNN_WITH_ZLIB=ON)

rm -rf "$work"/{xcnn-build,stage,prefix,find_package,add_subdirectory,fetchcontent,pkgconfig,test_package,user_layer} \
    "$work"/{find_package,add_subdirectory}-O0 \
    "$work"/{xcnn-src,xcnn-src.tar.gz}

# Evaluates the installed xcnnConfigVersion.cmake as find_package would: SameMajorVersion (any
# older version of the same major is accepted, another major is not) and ARCH_INDEPENDENT (a
# 32-bit consumer accepts the package that a 64-bit machine installed).
check_version_file() {
    local version_file="$work/stage/share/cmake/xcnn/xcnnConfigVersion.cmake"
    local version major
    version=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$version_file")
    major=${version%%.*}
    cat > "$work/check_version.cmake" <<'CMAKE'
cmake_policy(VERSION 3.16)
string(REPLACE "." ";" _parts "${PACKAGE_FIND_VERSION}")
list(GET _parts 0 PACKAGE_FIND_VERSION_MAJOR)
include("${VERSION_FILE}")
if(PACKAGE_VERSION_COMPATIBLE AND NOT PACKAGE_VERSION_UNSUITABLE)
    message("compatible")
else()
    message("incompatible")
endif()
CMAKE
    local request pointer expected got
    while read -r request pointer expected; do
        got=$("$cmake" -DVERSION_FILE="$version_file" -DPACKAGE_FIND_VERSION="$request" \
            -DCMAKE_SIZEOF_VOID_P="$pointer" -P "$work/check_version.cmake" 2>&1)
        if [[ "$got" != "$expected" ]]; then
            echo "xcnnConfigVersion.cmake $version: a request for $request from a ${pointer}-byte-pointer" \
                "consumer is $got, expected $expected" >&2
            exit 1
        fi
    done <<EOF_REQUESTS
$major.0 8 compatible
$major.0 4 compatible
$version 4 compatible
$((major + 1)).0 8 incompatible
$major.999 8 incompatible
EOF_REQUESTS
    echo "xcnnConfigVersion.cmake $version: SameMajorVersion, architecture-independent"
}

install_xcnn() {
    step "install (cmake --install)"
    "$cmake" -S "$src" -B "$work/xcnn-build" -DCMAKE_BUILD_TYPE=Release "${package_options[@]}" > "$work/xcnn-build.log"
    "$cmake" --build "$work/xcnn-build" >> "$work/xcnn-build.log"
    "$cmake" --install "$work/xcnn-build" --prefix "$work/stage" > "$work/install.log"

    local expected=(
        include/xcnn/xcnn.hpp
        include/xcnn/version.hpp
        include/xcnn/core/xtensor_shim.hpp
        share/cmake/xcnn/xcnnConfig.cmake
        share/cmake/xcnn/xcnnConfigVersion.cmake
        share/cmake/xcnn/xcnnOptimizationCheck.cmake
        share/cmake/xcnn/xcnnTargets.cmake
        share/pkgconfig/xcnn.pc
    )
    for f in "${expected[@]}"; do
        [[ -f "$work/stage/$f" ]] || { echo "missing after install: $f" >&2; exit 1; }
    done
    # Every public header is installed, and nothing but headers goes to include/.
    local ours theirs
    ours=$(cd "$src/include" && find . -type f | sort)
    theirs=$(cd "$work/stage/include" && find . -type f | sort)
    if [[ "$ours" != "$theirs" ]]; then
        echo "installed headers differ from include/:" >&2
        diff <(echo "$ours") <(echo "$theirs") >&2 || true
        exit 1
    fi
    # Header-only and architecture-independent: no lib/, no arch check in the version file.
    if [[ -e "$work/stage/lib" || -e "$work/stage/lib64" || -e "$work/stage/bin" ]]; then
        echo "a header-only install must not create lib/ or bin/" >&2
        exit 1
    fi
    check_version_file
    # Built with XCNN_WITH_ZLIB=ON where zlib is installed: the package must say it has zlib.
    if pkg-config --exists zlib; then
        grep -q 'set(xcnn_HAS_ZLIB 1)' "$work/stage/share/cmake/xcnn/xcnnConfig.cmake" || {
            echo "zlib is installed but the package was built without it" >&2
            exit 1
        }
        grep -q 'XCNN_HAS_ZLIB=1' "$work/stage/share/pkgconfig/xcnn.pc" || {
            echo "xcnn.pc does not pass XCNN_HAS_ZLIB=1" >&2
            exit 1
        }
    fi
    # No absolute path of the build machine may leak into the package.
    if grep -rl -e "$src" -e "$work" "$work/stage/share"; then
        echo "the installed package files above contain absolute build paths" >&2
        exit 1
    fi
    mv "$work/stage" "$work/prefix"
    echo "installed and moved to $work/prefix"
}

# Configures, builds and runs one CMake consumer project: $1 its build folder (under $work),
# $2 its source folder, $3 the program it builds; further arguments go to its configure step.
cmake_consumer() {
    local name=$1 source=$2 program=$3
    shift 3
    "$cmake" -S "$source" -B "$work/$name" -DCMAKE_CXX_FLAGS="$consumer_flags" "$@" 2>&1 |
        tee "$work/$name.configure.log"
    # Optimised (-O1): xcnn's warning about unoptimised builds must stay quiet.
    if grep -q "xcnn: this build is not optimised" "$work/$name.configure.log"; then
        echo "xcnn warned about an unoptimised build although the consumer compiles with $consumer_flags" >&2
        exit 1
    fi
    "$cmake" --build "$work/$name" -j"$jobs"
    (cd "$work/$name" && "./$program")
}

# A consumer configured with no build type and no -O flags (a single-config generator's default:
# -O0) must be told, through find_package and through add_subdirectory; XCNN_WARN_UNOPTIMIZED=OFF
# silences it. Configure only: nothing needs to be built for that.
consumer_unoptimized_warning() {
    step "configure without optimisation: xcnn warns (find_package, add_subdirectory)"
    local name log
    for name in find_package add_subdirectory; do
        log="$work/$name-O0.configure.log"
        "$cmake" -S "$src/tests/consumer/$name" -B "$work/$name-O0" -DCMAKE_PREFIX_PATH="$work/prefix" \
            -DXCNN_SOURCE_DIR="$src" -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS= > "$log" 2>&1
        grep -q "xcnn: this build is not optimised" "$log" || {
            cat "$log" >&2
            echo "$name: no warning about the unoptimised build" >&2
            exit 1
        }
        "$cmake" -S "$src/tests/consumer/$name" -B "$work/$name-O0" -DXCNN_WARN_UNOPTIMIZED=OFF > "$log" 2>&1
        if grep -q "xcnn: this build is not optimised" "$log"; then
            echo "$name: XCNN_WARN_UNOPTIMIZED=OFF did not silence the warning" >&2
            exit 1
        fi
    done
}

consumer_find_package() {
    step "find_package(xcnn CONFIG REQUIRED), and COMPONENTS mpi where MPI is installed"
    cmake_consumer find_package "$src/tests/consumer/find_package" train_one_step -DCMAKE_PREFIX_PATH="$work/prefix"
    if [[ -x "$work/find_package/average_over_ranks" ]]; then
        (cd "$work/find_package" && ./average_over_ranks)
    fi
}

consumer_add_subdirectory() {
    step "add_subdirectory(xcnn)"
    cmake_consumer add_subdirectory "$src/tests/consumer/add_subdirectory" train_one_step -DXCNN_SOURCE_DIR="$src"
}

consumer_fetchcontent() {
    step "FetchContent"
    mkdir -p "$work/xcnn-src"
    (cd "$src" && cp -R CMakeLists.txt cmake include LICENSE "$work/xcnn-src/")
    tar -C "$work" -czf "$work/xcnn-src.tar.gz" xcnn-src
    cmake_consumer fetchcontent "$src/tests/consumer/fetchcontent" train_one_step \
        -DXCNN_URL="file://$work/xcnn-src.tar.gz"
}

consumer_pkgconfig() {
    step "pkg-config --cflags --libs xcnn"
    mkdir -p "$work/pkgconfig"
    PKG_CONFIG_PATH="$work/prefix/share/pkgconfig" make -C "$work/pkgconfig" \
        -f "$src/tests/consumer/pkgconfig/Makefile" SOURCE="$src/tests/consumer/common/train_one_step.cpp" \
        CXXFLAGS="$consumer_flags"
    (cd "$work/pkgconfig" && ./train_one_step)
}

consumer_conan_test_package() {
    step "test_package/ (conan's test project) against the installed tree"
    cmake_consumer test_package "$src/test_package" test_package -DCMAKE_PREFIX_PATH="$work/prefix"
}

consumer_user_layer() {
    step "a user's own layer (docs/adding-a-layer.md) against the installed tree"
    cmake_consumer user_layer "$src/tests/consumer/user_layer" user_layer -DCMAKE_PREFIX_PATH="$work/prefix"
}

start=$SECONDS
timed install_xcnn
timed consumer_find_package
timed consumer_unoptimized_warning
timed consumer_add_subdirectory
timed consumer_fetchcontent
timed consumer_pkgconfig
timed consumer_conan_test_package
timed consumer_user_layer
echo
echo "consumer tests took $((SECONDS - start)) s"
echo "consumers: 6 passed, 0 failed"
