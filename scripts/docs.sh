#!/usr/bin/env bash
# Build xcnn's API reference with Doxygen (the CMake preset `docs`'s settings, target xcnn_docs)
# into <build dir>/docs/html. Doxygen's warnings are errors: an undocumented public entity fails.
#
#   bash scripts/docs.sh [BUILD_DIR]
#
# BUILD_DIR defaults to $XCNN_DOCS_BUILD_DIR, else ${TMPDIR:-/tmp}/xcnn-docs: outside the
# checkout, so the script also works on a read-only one.
#
# When run as root on Debian/Ubuntu, doxygen is installed with apt-get first if it is missing.
set -euo pipefail

build_dir=${1:-${XCNN_DOCS_BUILD_DIR:-${TMPDIR:-/tmp}/xcnn-docs}}
# Relative to where the script was called from, not to the checkout it changes into.
[[ $build_dir == /* ]] || build_dir="$PWD/$build_dir"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v doxygen > /dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get > /dev/null 2>&1; then
        echo "docs.sh: installing doxygen"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y --no-install-recommends doxygen
    else
        echo "docs.sh: doxygen is needed (Debian: apt-get install doxygen)" >&2
        exit 1
    fi
fi

# A scratch folder left by a build of another checkout: CMake refuses its cache.
if [[ -f $build_dir/CMakeCache.txt ]] &&
    ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$PWD" "$build_dir/CMakeCache.txt"; then
    echo "docs.sh: $build_dir was configured for another checkout; starting it afresh"
    rm -rf "$build_dir"
fi
# The preset holds the cache settings; -B moves its build folder.
cmake --preset docs -B "$build_dir"
cmake --build "$build_dir" --target xcnn_docs
echo "docs.sh: API reference in $build_dir/docs/html/index.html"
