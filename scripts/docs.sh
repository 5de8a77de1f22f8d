#!/usr/bin/env bash
# Build xcnn's API reference with Doxygen (CMake preset `docs`, target xcnn_docs) into
# build/docs/docs/html. Doxygen's warnings are errors: an undocumented public entity fails.
#
#   bash scripts/docs.sh
#
# When run as root on Debian/Ubuntu, doxygen is installed with apt-get first if it is missing.
set -euo pipefail
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

cmake --workflow --preset docs
echo "docs.sh: API reference in build/docs/docs/html/index.html"
