// A scratch directory for tests that write files, removed with everything in it at scope exit.
// Unique per process and instance, so tests running in parallel (ctest -j) never collide.
#ifndef XCNN_TESTS_SUPPORT_TEMP_DIR_HPP
#define XCNN_TESTS_SUPPORT_TEMP_DIR_HPP

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace xcnn_test
{

class temp_dir
{
public:
    temp_dir()
    {
        static std::atomic<unsigned> counter{0};
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        m_path = std::filesystem::temp_directory_path() / ("xcnn-test-" + std::to_string(::getpid()) + "-" +
                                                           std::to_string(counter++) + "-" + std::to_string(now));
        std::filesystem::create_directories(m_path);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir()
    {
        std::error_code ec;
        std::filesystem::permissions(m_path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
        std::filesystem::remove_all(m_path, ec);
    }

    const std::filesystem::path& path() const noexcept { return m_path; }
    /// Path of `name` inside the directory, as a string.
    std::string operator/(const std::string& name) const { return (m_path / name).string(); }

    /// Names of the entries of the directory.
    std::vector<std::string> entries() const
    {
        std::vector<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(m_path))
        {
            out.push_back(e.path().filename().string());
        }
        return out;
    }

private:
    std::filesystem::path m_path;
};

inline std::vector<unsigned char> read_bytes(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_TEMP_DIR_HPP
