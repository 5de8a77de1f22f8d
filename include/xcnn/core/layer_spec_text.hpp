/// @file
/// The text form of a `layer_spec`, what model files record and what a person can read and write:
///
///     Sequential(Conv2D(in_channels=1, out_channels=8, kernel_size=[3, 3], stride=[1, 1],
///                       padding=[1, 1], dilation=[1, 1], groups=1, bias=1),
///                ReLU(), Flatten(), Dense(in_features=6272, out_features=10))
///
/// Grammar (blanks allowed between any two tokens):
///
///     spec   = kind "(" [ item { "," item } ] ")"
///     item   = key "=" value | spec            (options, then inner layers, in order)
///     value  = number | "[" [ number { "," number } "]"
///     number = JSON's number | "inf" | "-inf" | "nan"
///     kind, key = a letter or "_", then letters, digits, "_", "." or ":"
///
/// `to_string` writes each number in the fewest digits that read back as exactly the same double,
/// so `parse_layer_spec(to_string(s)) == s` for every spec `to_string` accepts. The parser reads
/// untrusted text (a model file from anywhere): it takes at most `max_spec_text` characters and
/// `max_spec_depth` nested layers, and any other input is a `format_error` that says at which
/// character what was expected.
#ifndef XCNN_CORE_LAYER_SPEC_TEXT_HPP
#define XCNN_CORE_LAYER_SPEC_TEXT_HPP

#include <cstddef>
#include <limits>
#include <locale>
#include <sstream>
#include <string>
#include <vector>

#include "error.hpp"
#include "layer_spec.hpp"

namespace xcnn
{

/// Longest text `parse_layer_spec` reads (1 MiB: a ResNet-50 takes about 20 KB).
inline constexpr std::size_t max_spec_text = std::size_t(1) << 20;
/// Deepest nesting of layers `parse_layer_spec` reads (a layer inside a network is at depth 2).
inline constexpr std::size_t max_spec_depth = 64;

namespace detail
{

/// Whether `c` may start a kind or an option name.
constexpr bool spec_name_start(char c) noexcept
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

/// Whether `c` may continue a kind or an option name.
constexpr bool spec_name_char(char c) noexcept
{
    return spec_name_start(c) || (c >= '0' && c <= '9') || c == '.' || c == ':';
}

/// Whether `name` can be written as a kind or an option name.
inline bool is_spec_name(const std::string& name) noexcept
{
    if (name.empty() || !spec_name_start(name[0]))
    {
        return false;
    }
    for (char c : name)
    {
        if (!spec_name_char(c))
        {
            return false;
        }
    }
    return true;
}

/// Appends the text of `spec` at nesting `depth` to `out`.
inline void append_spec_text(const layer_spec& spec, std::size_t depth, std::string& out)
{
    if (depth > max_spec_depth)
    {
        throw value_error(concat("to_string(layer_spec): layers nest deeper than ", max_spec_depth,
                                 ", which parse_layer_spec would refuse"));
    }
    if (!is_spec_name(spec.kind))
    {
        throw value_error(concat("to_string(layer_spec): '", spec.kind,
                                 "' is not a valid layer kind (a letter or '_', then letters, digits, '_', '.', ':')"));
    }
    out += spec.kind;
    out += '(';
    bool first = true;
    for (const auto& o : spec.options)
    {
        if (!is_spec_name(o.key))
        {
            throw value_error(concat("to_string(layer_spec): ", spec.kind, ": '", o.key,
                                     "' is not a valid option name (a letter or '_', then letters, digits, '_', "
                                     "'.', ':')"));
        }
        out += first ? "" : ", ";
        out += o.key;
        out += '=';
        out += spec_values_to_string(o.values);
        first = false;
    }
    for (const auto& child : spec.children)
    {
        out += first ? "" : ", ";
        append_spec_text(child, depth + 1, out);
        first = false;
    }
    out += ')';
}

/// The recursive-descent reader behind `parse_layer_spec`.
class spec_parser
{
public:
    explicit spec_parser(const std::string& text) : m_text(text) {}

    /// The one spec the text holds, with nothing but blanks after it.
    layer_spec parse()
    {
        if (m_text.size() > max_spec_text)
        {
            throw format_error(concat("layer spec: the text has ", m_text.size(), " characters, more than the ",
                                      max_spec_text, " a layer spec may have"));
        }
        skip_blanks();
        layer_spec spec = read_spec(1);
        skip_blanks();
        if (m_pos != m_text.size())
        {
            fail("the end of the text after the outermost layer's ')'");
        }
        return spec;
    }

private:
    [[noreturn]] void fail(const std::string& expected) const
    {
        std::string found = "the end of the text";
        if (m_pos < m_text.size())
        {
            found = "'";
            for (std::size_t i = m_pos; i < m_text.size() && i < m_pos + 24; ++i)
            {
                const unsigned char c = static_cast<unsigned char>(m_text[i]);
                found += (c >= 32 && c < 127) ? static_cast<char>(c) : '?';
            }
            found += m_pos + 24 < m_text.size() ? "...'" : "'";
        }
        throw format_error(concat("layer spec: at character ", m_pos, ": expected ", expected, ", got ", found));
    }

    void skip_blanks() noexcept
    {
        while (m_pos < m_text.size() &&
               (m_text[m_pos] == ' ' || m_text[m_pos] == '\t' || m_text[m_pos] == '\n' || m_text[m_pos] == '\r'))
        {
            ++m_pos;
        }
    }

    bool at(char c) const noexcept { return m_pos < m_text.size() && m_text[m_pos] == c; }

    void expect(char c, const char* expected)
    {
        if (!at(c))
        {
            fail(expected);
        }
        ++m_pos;
        skip_blanks();
    }

    std::string read_name(const char* expected)
    {
        if (m_pos >= m_text.size() || !spec_name_start(m_text[m_pos]))
        {
            fail(expected);
        }
        const std::size_t start = m_pos;
        while (m_pos < m_text.size() && spec_name_char(m_text[m_pos]))
        {
            ++m_pos;
        }
        return m_text.substr(start, m_pos - start);
    }

    layer_spec read_spec(std::size_t depth)
    {
        if (depth > max_spec_depth)
        {
            fail(concat("at most ", max_spec_depth, " nested layers"));
        }
        layer_spec spec;
        spec.kind = read_name("a layer kind (a name such as Conv2D)");
        skip_blanks();
        expect('(', "'(' after the layer kind");
        if (at(')'))
        {
            ++m_pos;
            return spec;
        }
        while (true)
        {
            const std::size_t start = m_pos;
            std::string name = read_name("an option (name=value) or an inner layer (Kind(...))");
            skip_blanks();
            if (at('='))
            {
                ++m_pos;
                skip_blanks();
                spec.options.push_back({std::move(name), read_values()});
            }
            else if (at('('))
            {
                m_pos = start;
                spec.children.push_back(read_spec(depth + 1));
            }
            else
            {
                fail(concat("'=' after the option name or '(' after the layer kind '", name, "'"));
            }
            skip_blanks();
            if (at(')'))
            {
                ++m_pos;
                return spec;
            }
            expect(',', "',' or ')' after an option or an inner layer");
        }
    }

    std::vector<double> read_values()
    {
        std::vector<double> values;
        if (!at('['))
        {
            values.push_back(read_number());
            return values;
        }
        ++m_pos;
        skip_blanks();
        if (at(']'))
        {
            ++m_pos;
            return values;
        }
        while (true)
        {
            values.push_back(read_number());
            skip_blanks();
            if (at(']'))
            {
                ++m_pos;
                return values;
            }
            expect(',', "',' or ']' in a list of numbers");
        }
    }

    bool digits()
    {
        const std::size_t start = m_pos;
        while (m_pos < m_text.size() && m_text[m_pos] >= '0' && m_text[m_pos] <= '9')
        {
            ++m_pos;
        }
        return m_pos > start;
    }

    double read_number()
    {
        const std::size_t start = m_pos;
        const bool negative = at('-');
        m_pos += negative ? 1 : 0;
        if (m_pos < m_text.size() && spec_name_start(m_text[m_pos]))
        {
            const std::string word = read_name("a number");
            if (word == "inf")
            {
                return negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
            }
            if (word == "nan" && !negative)
            {
                return std::numeric_limits<double>::quiet_NaN();
            }
            m_pos = start;
            fail("a number");
        }
        if (!digits())
        {
            m_pos = start;
            fail("a number (digits, '[', 'inf' or 'nan')");
        }
        if (at('.'))
        {
            ++m_pos;
            if (!digits())
            {
                fail("a digit after the decimal point");
            }
        }
        if (at('e') || at('E'))
        {
            ++m_pos;
            m_pos += (at('+') || at('-')) ? 1 : 0;
            if (!digits())
            {
                fail("a digit in the exponent");
            }
        }
        constexpr std::size_t longest = 64;
        if (m_pos - start > longest)
        {
            m_pos = start;
            fail(concat("a number of at most ", longest, " characters"));
        }
        std::istringstream in(m_text.substr(start, m_pos - start));
        in.imbue(std::locale::classic());
        double value = 0;
        in >> value;
        if (in.fail())
        {
            m_pos = start;
            fail("a number within the range of a double");
        }
        return value;
    }

    const std::string& m_text;
    std::size_t m_pos = 0;
};

} // namespace detail

/// The text form of `spec` (see the top of this file), which `parse_layer_spec` reads back as
/// exactly `spec`.
/// @throws value_error if a kind or an option name is not a valid name, the layers nest deeper
/// than `max_spec_depth` or the text would be longer than `max_spec_text`: it would not read back.
inline std::string to_string(const layer_spec& spec)
{
    std::string out;
    detail::append_spec_text(spec, 1, out);
    if (out.size() > max_spec_text)
    {
        throw value_error(detail::concat("to_string(layer_spec): the text would have ", out.size(),
                                         " characters, more than the ", max_spec_text, " parse_layer_spec reads"));
    }
    return out;
}

/// Reads the text form of a layer spec (see the top of this file). Whether the kinds and options
/// make layers is for `from_spec` and the layer registry to say; this reads the structure.
/// @throws format_error for anything but one spec in that grammar, of at most `max_spec_text`
/// characters and `max_spec_depth` nested layers, naming the character at which it found what
/// instead of what it expected.
inline layer_spec parse_layer_spec(const std::string& text)
{
    return detail::spec_parser(text).parse();
}

} // namespace xcnn

#endif // XCNN_CORE_LAYER_SPEC_TEXT_HPP
