// A main() for the fuzz harnesses when they are built without libFuzzer (g++, the normal and the
// sanitizer test builds): feeds every file of the corpus directories (or files) named on the
// command line to LLVMFuzzerTestOneInput, in sorted order. The harness aborts on a broken
// invariant and lets any exception other than xcnn::error escape, so a regression fails the test.
//
//   fuzz_replay_<harness> DIR_OR_FILE...    exit status 0 when every input passed
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define XCNN_REPLAY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XCNN_REPLAY_ASAN 1
#endif
#endif

#if defined(XCNN_REPLAY_ASAN)
// The fuzzers run with -malloc_limit_mb=2048; under ASan the replay holds the harness to the same
// bound (an allocation over it is reported as an error instead of attempted).
extern "C" const char* __asan_default_options()
{
    return "max_allocation_size_mb=2048:allocator_may_return_null=0";
}
#else
#include <sys/resource.h>
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv)
{
    namespace fs = std::filesystem;
#if !defined(XCNN_REPLAY_ASAN)
    // Without ASan, a cap on the address space turns a huge allocation into std::bad_alloc, which
    // the harness does not catch: the replay fails instead of the machine swapping.
    rlimit limit{};
    if (getrlimit(RLIMIT_AS, &limit) == 0)
    {
        const rlim_t cap = rlim_t(4) << 30;
        if (limit.rlim_max == RLIM_INFINITY || limit.rlim_max > cap)
        {
            limit.rlim_cur = cap;
            setrlimit(RLIMIT_AS, &limit);
        }
    }
#endif
    if (argc < 2)
    {
        std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    std::vector<fs::path> inputs;
    for (int i = 1; i < argc; ++i)
    {
        const fs::path arg(argv[i]);
        if (fs::is_directory(arg))
        {
            for (const auto& entry : fs::directory_iterator(arg))
            {
                if (entry.is_regular_file())
                {
                    inputs.push_back(entry.path());
                }
            }
        }
        else if (fs::is_regular_file(arg))
        {
            inputs.push_back(arg);
        }
        else
        {
            std::fprintf(stderr, "%s: no such file or directory: %s\n", argv[0], argv[i]);
            return 2;
        }
    }
    if (inputs.empty())
    {
        std::fprintf(stderr, "%s: the corpus is empty\n", argv[0]);
        return 2;
    }
    std::sort(inputs.begin(), inputs.end());
    std::size_t total_bytes = 0;
    for (const auto& path : inputs)
    {
        std::ifstream in(path, std::ios::binary);
        std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in.eof() && in.fail())
        {
            std::fprintf(stderr, "%s: cannot read %s\n", argv[0], path.string().c_str());
            return 2;
        }
        total_bytes += bytes.size();
        // libFuzzer never passes a null pointer, not even for an empty input.
        const std::uint8_t none = 0;
        LLVMFuzzerTestOneInput(bytes.empty() ? &none : bytes.data(), bytes.size());
    }
    std::printf("replayed %zu inputs (%zu bytes) without a failure\n", inputs.size(), total_bytes);
    return 0;
}
