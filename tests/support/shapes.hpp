// Shape helpers for tests that walk multi-indices of arbitrary rank.
#ifndef XCNN_TESTS_SUPPORT_SHAPES_HPP
#define XCNN_TESTS_SUPPORT_SHAPES_HPP

#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

namespace xcnn_test
{

using shape_t = std::vector<std::size_t>;

template <class S>
shape_t to_shape(const S& s)
{
    return shape_t(s.begin(), s.end());
}

inline std::size_t product(const shape_t& shape)
{
    std::size_t n = 1;
    for (auto d : shape)
    {
        n *= d;
    }
    return n;
}

/// Odometer over the multi-indices of `shape` (last axis fastest). False once it wraps around.
inline bool next_index(shape_t& idx, const shape_t& shape)
{
    for (std::size_t i = idx.size(); i-- > 0;)
    {
        if (++idx[i] < shape[i])
        {
            return true;
        }
        idx[i] = 0;
    }
    return false;
}

/// "(2, 3)" for messages.
inline std::string str(const shape_t& s)
{
    std::ostringstream out;
    out << '(';
    for (std::size_t i = 0; i < s.size(); ++i)
    {
        out << (i ? ", " : "") << s[i];
    }
    out << ')';
    return out.str();
}

} // namespace xcnn_test

#endif // XCNN_TESTS_SUPPORT_SHAPES_HPP
