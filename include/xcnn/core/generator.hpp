/// @file
/// Random state that layers own: `xcnn::counter_generator`, a fast generator whose draws are
/// addressed by position, and `xcnn::generator_handle`, a named handle on any layer's generator
/// through which `Sequential` lists them ("3.rng") and checkpoints save and restore them.
///
/// A stochastic layer (`Dropout`) owns its generator, seeds it in `reset_parameters(rng)` and
/// lists it in `std::vector<generator_handle> generators()`. Generators are neither parameters
/// nor buffers: model files and `.npy` exports (PyTorch's `state_dict`) do not hold them, but a
/// checkpoint does, so a resumed run draws what the uninterrupted one would have drawn.
#ifndef XCNN_CORE_GENERATOR_HPP
#define XCNN_CORE_GENERATOR_HPP

#include <cstdint>
#include <istream>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "error.hpp"

namespace xcnn
{

/// SplitMix64 (Steele, Lea and Flood, 2014) addressed by position: draw j of the stream of
/// `key` is mix(key + (j + 1) · 0x9E3779B97F4A7C15), mix being the MurmurHash3-style finaliser
/// of SplitMix64. A sequential run gives SplitMix64's sequence (which passes BigCrush); any draw
/// can be computed without the ones before it, so a kernel splits a stream between threads,
/// reproduces a past stretch (a mask in `backward`) from its position, and a state is just two
/// numbers. A standard uniform random bit generator (`std::uniform_int_distribution` takes it).
class counter_generator
{
public:
    /// 64-bit draws.
    using result_type = std::uint64_t;
    /// Smallest draw.
    static constexpr result_type min() noexcept { return 0; }
    /// Largest draw.
    static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

    /// The stream of key 0 at its start.
    counter_generator() = default;
    /// The stream of `key` at draw `position`.
    explicit counter_generator(std::uint64_t key, std::uint64_t position = 0) noexcept
        : m_key(key), m_position(position)
    {
    }

    /// A new stream: 64 bits of key from two draws of `rng`, position 0.
    void seed(std::mt19937& rng)
    {
        const std::uint64_t high = rng();
        m_key = (high << 32) | rng();
        m_position = 0;
    }

    /// The stream's key.
    std::uint64_t key() const noexcept { return m_key; }
    /// How many draws were taken: the next is draw `position()`.
    std::uint64_t position() const noexcept { return m_position; }

    /// Draw `position` of this stream, whatever the current position.
    std::uint64_t at(std::uint64_t position) const noexcept { return mix(m_key + (position + 1) * golden_gamma); }

    /// The next draw.
    result_type operator()() noexcept { return at(m_position++); }

    /// Skips `count` draws (a kernel that used draws position() to position() + count - 1).
    void discard(std::uint64_t count) noexcept { m_position += count; }

    /// Same key and position.
    friend bool operator==(const counter_generator& a, const counter_generator& b) noexcept
    {
        return a.m_key == b.m_key && a.m_position == b.m_position;
    }
    /// Not the same key and position.
    friend bool operator!=(const counter_generator& a, const counter_generator& b) noexcept { return !(a == b); }

    /// Writes "KEY POSITION" in decimal, as the standard engines write their state.
    friend std::ostream& operator<<(std::ostream& out, const counter_generator& g)
    {
        return out << g.m_key << ' ' << g.m_position;
    }
    /// Reads what `operator<<` wrote; sets the stream's failbit (and leaves `g`) otherwise.
    friend std::istream& operator>>(std::istream& in, counter_generator& g)
    {
        std::uint64_t key = 0, position = 0;
        if (in >> key >> position)
        {
            g = counter_generator(key, position);
        }
        return in;
    }

    /// SplitMix64's increment, 2^64 / φ.
    static constexpr std::uint64_t golden_gamma = 0x9E3779B97F4A7C15ull;

    /// SplitMix64's output function: a bijection of 64-bit values with full avalanche.
    static constexpr std::uint64_t mix(std::uint64_t z) noexcept
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

private:
    std::uint64_t m_key = 0;
    std::uint64_t m_position = 0;
};

/// A named handle on a generator a layer owns (any engine whose state `operator<<` writes and
/// `operator>>` reads: `counter_generator`, `std::mt19937`, ...): what `generators()` lists,
/// `Sequential` prefixes with the layer's index ("3.rng") and checkpoints save and restore.
/// The generator must outlive the handle.
class generator_handle
{
public:
    /// A handle named `name` (e.g. "rng") on `engine`.
    template <class Engine>
    generator_handle(std::string name, Engine& engine)
        : m_name(std::move(name)), m_engine(&engine), m_write(&write<Engine>), m_read(&read<Engine>)
    {
    }

    /// "rng" in the layer, "3.rng" once a `Sequential` has prefixed the layer's index.
    const std::string& name() const noexcept { return m_name; }
    /// Prepends `prefix` to the name (what `Sequential` does with "<index>.").
    void add_prefix(const std::string& prefix) { m_name = prefix + m_name; }

    /// The generator's state as text.
    std::string state() const { return m_write(m_engine); }

    /// Throws what `set_state(text)` would throw, changing nothing: for loaders that check
    /// everything before they commit anything.
    /// @throws value_error if `text` is not a state of this generator's engine type.
    void check_state(const std::string& text) const { m_read(m_engine, text, false); }

    /// Sets the generator to the state `text` that `state()` wrote.
    /// @throws value_error if `text` is not a state of this generator's engine type (another
    /// engine, damaged text); the generator is unchanged then.
    void set_state(const std::string& text) const { m_read(m_engine, text, true); }

private:
    template <class Engine>
    static std::string write(void* engine)
    {
        std::ostringstream out;
        out << *static_cast<const Engine*>(engine);
        return out.str();
    }

    template <class Engine>
    static void read(void* engine, const std::string& text, bool commit)
    {
        std::istringstream in(text);
        Engine parsed;
        in >> parsed;
        // All of the text must be used: a prefix of another engine's state must not pass.
        if (in.fail() || !(in >> std::ws).eof())
        {
            throw value_error(detail::concat("generator state (", text.size(),
                                             " characters) is not a state of this generator's engine type"));
        }
        if (commit)
        {
            *static_cast<Engine*>(engine) = parsed;
        }
    }

    std::string m_name;
    void* m_engine;
    std::string (*m_write)(void*);
    void (*m_read)(void*, const std::string&, bool);
};

namespace detail
{

/// Whether `L` lists generators (`std::vector<generator_handle> generators()`).
template <class L, class = void>
struct has_generators : std::false_type
{
};
template <class L>
struct has_generators<L, std::void_t<decltype(std::declval<L&>().generators())>> : std::true_type
{
};

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_GENERATOR_HPP
