/// @file
/// The exception hierarchy of xcnn.
///
/// Every error xcnn reports is an `xcnn::error`; the derived types tell what went wrong so a
/// caller can catch exactly what it can handle. Messages name the layer, file or tensor and
/// the values involved.
#ifndef XCNN_CORE_ERROR_HPP
#define XCNN_CORE_ERROR_HPP

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace xcnn
{

/// Base of every exception thrown by xcnn.
class error : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

/// A tensor has the wrong rank or a dimension that does not fit (e.g. 3 channels fed to a
/// `Conv2D(1, ...)`, an input smaller than the kernel, mismatched contraction axes).
class shape_error : public error
{
public:
    using error::error;
};

/// An argument has an invalid value: a zero stride, a label outside `[0, classes)`,
/// a negative learning rate.
class value_error : public error
{
public:
    using error::error;
};

/// A file or stream does not hold what its format promises (bad magic, truncated data).
class format_error : public error
{
public:
    using error::error;
};

/// The operating system refused a read or a write.
class io_error : public error
{
public:
    using error::error;
};

/// A loss or gradient is not finite.
class numeric_error : public error
{
public:
    using error::error;
};

namespace detail
{

/// Formats a shape as "(2, 3, 28, 28)" for error messages.
template <class S>
std::string shape_to_string(const S& shape)
{
    std::ostringstream out;
    out << '(';
    bool first = true;
    for (auto d : shape)
    {
        out << (first ? "" : ", ") << d;
        first = false;
    }
    if (shape.size() == 1)
    {
        out << ',';
    }
    out << ')';
    return out.str();
}

/// Concatenates the streamed arguments into a message.
template <class... Args>
std::string concat(const Args&... args)
{
    std::ostringstream out;
    (out << ... << args);
    return out.str();
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_ERROR_HPP
