/// @file
/// The exception hierarchy of xcnn.
///
/// Every error xcnn reports is an `xcnn::error` (a `std::runtime_error`); the derived types tell
/// what went wrong so a caller can catch exactly what it can handle. Messages name the layer,
/// file or tensor and the values involved, e.g. "Sequential layer 3: Dense(100, 10): expected
/// 100 input features, got input (2, 120)". An operation that throws leaves its object as it was
/// before the call (a layer keeps the caches of its last successful `forward`), except that a
/// `Sequential` whose `forward` threw refuses `backward` until the next successful `forward`.
///
/// What xcnn does not turn into an `xcnn::error`: `std::bad_alloc` when a valid request does not
/// fit in memory, and misuse the compiler rejects (neighbouring layers of different ranks, a
/// tensor of the wrong scalar type). docs/reliability.md lists every case with its test.
#ifndef XCNN_CORE_ERROR_HPP
#define XCNN_CORE_ERROR_HPP

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace xcnn
{

/// Base of every exception thrown by xcnn. Thrown as itself (not a derived type) for a call out of
/// order: `backward` before `forward`, or after `predict`, which keeps no training caches.
class error : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

/// A tensor has the wrong rank or a dimension that does not fit: 3 channels fed to a
/// `Conv2D(1, ...)`, an input smaller than the kernel, a zero channel, height or width (a batch
/// of 0 samples is valid for the layers and gives an empty output), a gradient whose shape is not
/// that of the last output, logits and labels of different batch sizes, a parameter assigned a
/// tensor of another shape, mismatched contraction axes, a shape whose element count would not
/// fit `std::ptrdiff_t`, or a model file, checkpoint or set of .npy files whose tensors do not fit
/// the network (the message names the first tensor that differs). Inside a `Sequential` the
/// message starts with "Sequential layer <i>: ".
class shape_error : public error
{
public:
    using error::error;
};

/// An argument has an invalid value: a zero or negative (converted to a huge `std::size_t`)
/// channel count, feature count, kernel size, stride or padding at construction; a label outside
/// `[0, classes)`; a negative or non-finite learning rate, a negative momentum or weight decay; a
/// value read from a file that the requested element type cannot hold; an optimizer or generator
/// state in a checkpoint that does not fit the optimizer or generator it is loaded into; a network
/// with a layer that `save_onnx` cannot express in ONNX.
class value_error : public error
{
public:
    using error::error;
};

/// A file or stream does not hold what its format promises: bad magic number, unsupported
/// version, truncated data, trailing bytes, sizes that disagree with the header, a checksum
/// mismatch, a damaged gzip stream.
class format_error : public error
{
public:
    using error::error;
};

/// The operating system refused a read or a write: a file that does not exist or cannot be
/// opened, created, written or renamed (e.g. a full disk or a read-only directory), or a .gz file
/// in a build without zlib.
class io_error : public error
{
public:
    using error::error;
};

/// A value that must be finite is not: `SGD::step` found a NaN or infinite gradient or parameter
/// (the message names the step, the parameter and its layer, and no parameter was changed), or
/// `save_checkpoint` was asked to save one (the previous checkpoint is kept).
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

/// Rethrows the exception being handled with `prefix` added to its message, as the same xcnn
/// type, so that a container (`Sequential`) can say where an error happened without changing
/// what a caller catches. Call only from a handler of `xcnn::error`.
[[noreturn]] inline void rethrow_with_prefix(const std::string& prefix)
{
    try
    {
        throw;
    }
    catch (const shape_error& e)
    {
        throw shape_error(prefix + e.what());
    }
    catch (const value_error& e)
    {
        throw value_error(prefix + e.what());
    }
    catch (const format_error& e)
    {
        throw format_error(prefix + e.what());
    }
    catch (const io_error& e)
    {
        throw io_error(prefix + e.what());
    }
    catch (const numeric_error& e)
    {
        throw numeric_error(prefix + e.what());
    }
    catch (const error& e)
    {
        throw error(prefix + e.what());
    }
}

} // namespace detail
} // namespace xcnn

#endif // XCNN_CORE_ERROR_HPP
