#!/usr/bin/env bash
# Fuzz xcnn's file readers with libFuzzer, then merge what was found into the committed corpus.
#
#   bash scripts/fuzz.sh [SECONDS] [HARNESS...]    default: 300 seconds each, harnesses idx model onnx spec
#
# Builds tests/fuzz/fuzz_<harness>.cpp with clang (-fsanitize=fuzzer,address,undefined) in
# build/fuzz and writes the seed files (valid IDX and model files, edge cases) to build/fuzz/seeds.
# Then, one harness at a time on one core, fuzzes for SECONDS on inputs up to 4 KiB with 2 GB memory
# and single-allocation limits, and merges (-merge=1) the findings, the seeds and the committed
# corpus tests/fuzz/corpus/<harness> into a minimal corpus that replaces it. ctest replays that
# corpus in every build (fuzz/replay_<harness>). A crash stops the script; the input is left in
# build/fuzz/artifacts/<harness>. Environment: CXX (default clang++), JOBS (build jobs, default 2).
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

seconds=300
harnesses=()
for arg in "$@"; do
    case "$arg" in
        -h | --help)
            usage
            exit 0
            ;;
        idx | model | onnx | spec) harnesses+=("$arg") ;;
        *)
            if [[ "$arg" =~ ^[0-9]+$ ]]; then
                seconds=$arg
            else
                echo "fuzz.sh: unknown argument: $arg" >&2
                usage >&2
                exit 2
            fi
            ;;
    esac
done
((${#harnesses[@]} > 0)) || harnesses=(idx model onnx spec)

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build=build/fuzz
cxx=${CXX:-clang++}
jobs=${JOBS:-2}

if ! command -v "$cxx" > /dev/null 2>&1; then
    echo "fuzz.sh: $cxx not found (Debian: apt-get install clang libclang-rt-dev)" >&2
    exit 1
fi

echo "fuzz.sh: configuring $build with $cxx"
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXCNN_BUILD_FUZZERS=ON \
    -DXCNN_BUILD_EXAMPLES=OFF -DXCNN_BUILD_BENCHMARKS=OFF -DXCNN_INSTALL=OFF > /dev/null
targets=(xcnn_fuzz_seeds)
for h in "${harnesses[@]}"; do
    targets+=("fuzz_$h")
done
echo "fuzz.sh: building ${targets[*]}"
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

seeds=$build/seeds
rm -rf "$seeds"
"$build/tests/fuzz/xcnn_fuzz_seeds" "$seeds"

# Any sanitizer report is fatal; libFuzzer then saves the input and exits non-zero.
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# Inputs stay small (fast runs, a small committed corpus): the structure of a 247 KB LeNet file is
# that of a 744-byte one, and the replay test still loads the big seeds.
max_len=4096

for h in "${harnesses[@]}"; do
    fuzzer=$build/tests/fuzz/fuzz_$h
    corpus=tests/fuzz/corpus/$h
    work=$build/work/$h
    artifacts=$build/artifacts/$h
    small_seeds=$build/small-seeds/$h
    rm -rf "$small_seeds"
    mkdir -p "$corpus" "$work" "$artifacts" "$small_seeds"
    find "$seeds/$h" -type f -size -$((max_len + 1))c -exec cp {} "$small_seeds"/ \;
    log=$build/fuzz_$h.log
    echo "fuzz.sh: fuzzing $h for $seconds s (log: $log)"
    # New inputs go to the first directory ($work); the corpus, the seeds and the inputs of fixed
    # bugs (tests/fuzz/regressions, never merged away) are read.
    inputs=("$work" "$corpus" "$small_seeds")
    [[ -d tests/fuzz/regressions/$h ]] && inputs+=("tests/fuzz/regressions/$h")
    if ! "$fuzzer" -max_total_time="$seconds" -max_len=$max_len -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "${inputs[@]}" > "$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz.sh: fuzz_$h FAILED; the input is in $artifacts (replay: $fuzzer <file>)" >&2
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" || true
    grep -E '^Done [0-9]+ runs' "$log" || true

    merged=$build/merged/$h
    rm -rf "$merged"
    mkdir -p "$merged"
    "$fuzzer" -merge=1 -max_len=$max_len -rss_limit_mb=2048 -malloc_limit_mb=2048 "$merged" "$small_seeds" \
        "$corpus" "$work" > "$build/merge_$h.log" 2>&1
    find "$corpus" -type f -delete
    cp "$merged"/* "$corpus"/
    echo "fuzz.sh: $corpus: $(find "$corpus" -type f | wc -l) inputs, $(du -sk "$corpus" | cut -f1) KiB"
done
echo "fuzz.sh: done; commit tests/fuzz/corpus if it changed (git -C $root status tests/fuzz/corpus)"
