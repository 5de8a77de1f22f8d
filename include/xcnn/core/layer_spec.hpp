/// @file
/// `xcnn::layer_spec`: what a layer is without its weights — its kind, its options and its inner
/// layers. Model files record it so that `load_network` rebuilds a network it did not know when
/// it was compiled, and the ONNX importer builds one from a graph through it.
#ifndef XCNN_CORE_LAYER_SPEC_HPP
#define XCNN_CORE_LAYER_SPEC_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <locale>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "error.hpp"

namespace xcnn
{

/// One named option of a `layer_spec`: one number or a list of them (sizes, rates, epsilons,
/// flags as 0 or 1). Doubles hold every size and flag exactly and every float or double option
/// without loss.
struct spec_option
{
    /// The option's name, PyTorch's where PyTorch has one ("kernel_size", "negative_slope").
    std::string key;
    /// Its values: one for a scalar option, two for a (height, width) pair.
    std::vector<double> values;
};

/// What a layer is, without its weights: enough to construct it again.
///
/// - `kind` is the layer's class name without its scalar type: "Conv2D", "ReLU", "Sequential".
/// - `options` are its constructor's arguments, named.
/// - `children` are the layers it holds: a network's layers in order; a `Residual`'s main branch,
///   then its shortcut when it has one.
struct layer_spec
{
    /// The layer's kind ("Conv2D").
    std::string kind;
    /// Its options, in the order the layer lists them.
    std::vector<spec_option> options;
    /// The layers it holds, in order.
    std::vector<layer_spec> children;

    /// The values of option `key`, or nullptr when the spec has none of that name.
    const std::vector<double>* find(const std::string& key) const noexcept
    {
        for (const auto& o : options)
        {
            if (o.key == key)
            {
                return &o.values;
            }
        }
        return nullptr;
    }

    /// Adds option `key` with `values`; returns the spec for chaining.
    layer_spec& set(std::string key, std::vector<double> values)
    {
        options.push_back({std::move(key), std::move(values)});
        return *this;
    }

    /// Adds option `key` holding one size (a channel count; a flag as 0 or 1); returns the spec.
    layer_spec& set_size(std::string key, std::size_t value)
    {
        return set(std::move(key), std::vector<double>{static_cast<double>(value)});
    }

    /// Adds option `key` holding a (height, width) pair; returns the spec.
    layer_spec& set_pair(std::string key, const std::array<std::size_t, 2>& value)
    {
        return set(std::move(key), std::vector<double>{static_cast<double>(value[0]), static_cast<double>(value[1])});
    }
};

/// Two options are equal when their keys are and their values are, exactly.
inline bool operator==(const spec_option& a, const spec_option& b) noexcept
{
    return a.key == b.key && a.values == b.values;
}
/// Negation of `==`.
inline bool operator!=(const spec_option& a, const spec_option& b) noexcept
{
    return !(a == b);
}

/// Two specs are equal when their kinds, their options (in order) and their children are.
inline bool operator==(const layer_spec& a, const layer_spec& b) noexcept
{
    return a.kind == b.kind && a.options == b.options && a.children == b.children;
}
/// Negation of `==`.
inline bool operator!=(const layer_spec& a, const layer_spec& b) noexcept
{
    return !(a == b);
}

namespace detail
{

/// Whether `L` describes itself: `spec()` const returning a `layer_spec` (false for a container
/// holding a layer that does not).
template <class L, class = void>
struct has_spec : std::false_type
{
};
template <class L>
struct has_spec<L, std::enable_if_t<std::is_same<decltype(std::declval<const L&>().spec()), layer_spec>::value>>
    : std::true_type
{
};

/// Whether `L` is rebuilt from its description: `static L from_spec(const layer_spec&)`.
template <class L, class = void>
struct has_from_spec : std::false_type
{
};
template <class L>
struct has_from_spec<
    L, std::enable_if_t<std::is_same<decltype(L::from_spec(std::declval<const layer_spec&>())), L>::value>>
    : std::true_type
{
};

/// `x` in the fewest significant digits that read back as exactly `x` ("0.1", "1e-05",
/// "9.999999747378752e-06"), a whole number below 10^17 in full ("6272"), whatever the C
/// locale; "inf", "-inf", "nan" when not finite.
inline std::string spec_number_to_string(double x)
{
    if (std::isnan(x))
    {
        return "nan";
    }
    if (std::isinf(x))
    {
        return x > 0 ? "inf" : "-inf";
    }
    std::string text;
    // Whole numbers below 10^17 in full ("10", not "1e+01"); others in the fewest digits.
    const bool whole = x == std::floor(x) && std::fabs(x) < 1e17;
    for (int digits = whole ? 17 : 1; digits <= 17; ++digits)
    {
        std::ostringstream out;
        out.imbue(std::locale::classic());
        out.precision(digits);
        out << x;
        text = out.str();
        std::istringstream in(text);
        in.imbue(std::locale::classic());
        double back = 0;
        in >> back;
        // A reader that overflows fails (and stores the largest double, which may be x).
        if (!in.fail() && back == x && std::signbit(back) == std::signbit(x))
        {
            break;
        }
    }
    return text;
}

/// `values` as a layer spec writes them: "3" for one value, "[3, 3]" or "[]" otherwise.
inline std::string spec_values_to_string(const std::vector<double>& values)
{
    if (values.size() == 1)
    {
        return spec_number_to_string(values[0]);
    }
    std::string out = "[";
    for (std::size_t i = 0; i < values.size(); ++i)
    {
        out += (i ? ", " : "") + spec_number_to_string(values[i]);
    }
    return out + "]";
}

} // namespace detail

/// Reads the options of a `layer_spec` for a layer's `from_spec`, with the checks every layer
/// needs: the spec is of the layer's kind, names only options the layer knows, each once, and
/// has as many inner layers as the layer holds; a size is a whole number, a flag 0 or 1. An
/// option PyTorch's constructor gives a default may be left out (`size(key, fallback)`); one it
/// requires may not (`size(key)`). Ranges (a zero channel count, a negative epsilon) are the
/// layer's constructor's to check, with its own messages.
///
/// Every error is a `value_error` naming the kind and the option: "layer spec Conv2D: option
/// 'kernel_size' must be one or two whole numbers >= 0, got [3.5]".
class spec_reader
{
public:
    /// Checks that `spec` is of `kind`, that each of its options is one of `known` and given once,
    /// and that it has between `min_children` and `max_children` inner layers.
    /// @throws value_error otherwise, naming the kind and listing the known options.
    spec_reader(const layer_spec& spec, std::string kind, std::vector<std::string> known, std::size_t min_children = 0,
                std::size_t max_children = 0)
        : m_spec(spec), m_kind(std::move(kind)), m_known(std::move(known))
    {
        if (spec.kind != m_kind)
        {
            throw value_error(detail::concat("layer spec: expected a ", m_kind, ", got a '", spec.kind, "'"));
        }
        for (std::size_t i = 0; i < spec.options.size(); ++i)
        {
            const std::string& key = spec.options[i].key;
            bool is_known = false;
            for (const auto& k : m_known)
            {
                is_known = is_known || k == key;
            }
            if (!is_known)
            {
                throw value_error(detail::concat(prefix(), "unknown option '", key, "' (", takes(), ")"));
            }
            for (std::size_t j = 0; j < i; ++j)
            {
                if (spec.options[j].key == key)
                {
                    throw value_error(detail::concat(prefix(), "option '", key, "' is given twice"));
                }
            }
        }
        const std::size_t n = spec.children.size();
        if (n < min_children || n > max_children)
        {
            throw value_error(detail::concat(prefix(), "expected ",
                                             min_children == max_children ? detail::concat(min_children)
                                             : max_children == std::numeric_limits<std::size_t>::max()
                                                 ? detail::concat("at least ", min_children)
                                                 : detail::concat(min_children, " to ", max_children),
                                             " inner layers, got ", n));
        }
    }

    /// The spec being read.
    const layer_spec& spec() const noexcept { return m_spec; }

    /// Whether the spec gives option `key`.
    bool has(const std::string& key) const noexcept { return m_spec.find(key) != nullptr; }

    /// Required option `key`: one whole number >= 0.
    /// @throws value_error if it is missing or not one whole number >= 0.
    std::size_t size(const std::string& key) const { return whole(key, required(key)); }
    /// Option `key`, `fallback` when it is missing.
    /// @throws value_error if it is not one whole number >= 0.
    std::size_t size(const std::string& key, std::size_t fallback) const
    {
        const auto* v = m_spec.find(key);
        return v ? whole(key, *v) : fallback;
    }

    /// Required option `key`: a (height, width) pair of whole numbers >= 0, or one for both.
    /// @throws value_error if it is missing or not one or two whole numbers >= 0.
    std::array<std::size_t, 2> pair(const std::string& key) const { return pair_of(key, required(key)); }
    /// Option `key` as a pair, `fallback` when it is missing.
    /// @throws value_error if it is not one or two whole numbers >= 0.
    std::array<std::size_t, 2> pair(const std::string& key, const std::array<std::size_t, 2>& fallback) const
    {
        const auto* v = m_spec.find(key);
        return v ? pair_of(key, *v) : fallback;
    }

    /// Option `key` as a flag (0 or 1), `fallback` when it is missing.
    /// @throws value_error if it is not 0 or 1.
    bool flag(const std::string& key, bool fallback) const
    {
        const auto* v = m_spec.find(key);
        if (!v)
        {
            return fallback;
        }
        if (v->size() != 1 || ((*v)[0] != 0 && (*v)[0] != 1))
        {
            fail(key, "must be 0 or 1", *v);
        }
        return (*v)[0] == 1;
    }

    /// Option `key` as one number of type `T` (float or double), `fallback` when it is missing.
    /// @throws value_error if it is not one number or a finite one beyond the range of `T`.
    template <class T>
    T real(const std::string& key, T fallback) const
    {
        const auto* v = m_spec.find(key);
        if (!v)
        {
            return fallback;
        }
        if (v->size() != 1)
        {
            fail(key, "must be one number", *v);
        }
        const double x = (*v)[0];
        if (std::isfinite(x) && std::fabs(x) > static_cast<double>(std::numeric_limits<T>::max()))
        {
            fail(key, "is beyond the range of the layer's scalar type", *v);
        }
        return static_cast<T>(x);
    }

    /// Throws the `value_error` "layer spec <kind>: option '<key>' <what>, got <values>".
    [[noreturn]] void fail(const std::string& key, const std::string& what, const std::vector<double>& values) const
    {
        throw value_error(
            detail::concat(prefix(), "option '", key, "' ", what, ", got ", detail::spec_values_to_string(values)));
    }

private:
    std::string prefix() const { return detail::concat("layer spec ", m_kind, ": "); }

    std::string takes() const
    {
        if (m_known.empty())
        {
            return m_kind + " takes no options";
        }
        std::string out = m_kind + " takes ";
        for (std::size_t i = 0; i < m_known.size(); ++i)
        {
            out += (i ? ", " : "") + m_known[i];
        }
        return out;
    }

    const std::vector<double>& required(const std::string& key) const
    {
        const auto* v = m_spec.find(key);
        if (!v)
        {
            throw value_error(detail::concat(prefix(), "missing option '", key, "' (", takes(), ")"));
        }
        return *v;
    }

    /// The one value of option `key` as a size.
    std::size_t whole(const std::string& key, const std::vector<double>& values) const
    {
        if (values.size() != 1)
        {
            fail(key, "must be one whole number >= 0", values);
        }
        return to_size(key, values[0], values);
    }

    /// One or two values of option `key` as a (height, width) pair.
    std::array<std::size_t, 2> pair_of(const std::string& key, const std::vector<double>& values) const
    {
        if (values.size() != 1 && values.size() != 2)
        {
            fail(key, "must be one or two whole numbers >= 0", values);
        }
        return {to_size(key, values.front(), values), to_size(key, values.back(), values)};
    }

    /// `x` as a size: a whole number in [0, 2^53], where doubles still count one by one (and the
    /// conversion is defined).
    std::size_t to_size(const std::string& key, double x, const std::vector<double>& values) const
    {
        if (!(x >= 0 && x <= 9007199254740992.0) || x != std::floor(x))
        {
            fail(key, values.size() == 1 ? "must be a whole number >= 0" : "must hold whole numbers >= 0", values);
        }
        return static_cast<std::size_t>(x);
    }

    const layer_spec& m_spec;
    std::string m_kind;
    std::vector<std::string> m_known;
};

} // namespace xcnn

#endif // XCNN_CORE_LAYER_SPEC_HPP
