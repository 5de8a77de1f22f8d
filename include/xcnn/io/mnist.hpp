/// @file
/// Loading MNIST-format data sets (MNIST, Fashion-MNIST, ...) from a directory of IDX files.
#ifndef XCNN_IO_MNIST_HPP
#define XCNN_IO_MNIST_HPP

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"
#include "idx.hpp"

namespace xcnn
{
namespace io
{

/// Images (N, 1, H, W) in [0, 1] and their labels (N).
template <class T = float>
struct labelled_images
{
    xt::xtensor<T, 4> images;            ///< (N, 1, H, W), pixels in [0, 1]
    xt::xtensor<std::int64_t, 1> labels; ///< (N)
};

/// Which half of an MNIST-format data set.
enum class mnist_split
{
    train, ///< `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`
    test   ///< `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`
};

/// Standard file name (without `.gz`) of the images or labels of `split`.
inline std::string mnist_file_name(mnist_split split, bool labels)
{
    const std::string prefix = split == mnist_split::train ? "train" : "t10k";
    return labels ? prefix + "-labels-idx1-ubyte" : prefix + "-images-idx3-ubyte";
}

/// Path of the file `name` in `dir`, raw or with `.gz` (the raw file wins if both exist).
/// @throws io_error naming both candidates if neither exists.
inline std::string find_idx_file(const std::string& dir, const std::string& name)
{
    namespace fs = std::filesystem;
    const fs::path raw = fs::path(dir) / name;
    const fs::path gz = fs::path(dir) / (name + ".gz");
    std::error_code ec;
    if (fs::is_regular_file(raw, ec))
    {
        return raw.string();
    }
    if (fs::is_regular_file(gz, ec))
    {
        return gz.string();
    }
    throw io_error(detail::concat("no ", name, " in ", detail::quoted(dir), ": neither ", detail::quoted(raw.string()),
                                  " nor ", detail::quoted(gz.string()), " exists"));
}

/// Images and labels from two IDX files (raw or `.gz`).
/// @throws format_error if either file is invalid or they hold different numbers of samples.
template <class T = float>
labelled_images<T> load_idx_dataset(const std::string& images_path, const std::string& labels_path)
{
    labelled_images<T> out{load_idx_images<T>(images_path), load_idx_labels(labels_path)};
    if (out.images.shape()[0] != out.labels.size())
    {
        throw format_error(detail::concat("image and label files disagree: ", detail::quoted(images_path), " holds ",
                                          out.images.shape()[0], " images but ", detail::quoted(labels_path), " holds ",
                                          out.labels.size(), " labels"));
    }
    return out;
}

/// The `split` of the MNIST-format data set in `dir`, whose files have the standard names
/// (`train-images-idx3-ubyte`, ...), each raw or with `.gz`.
template <class T = float>
labelled_images<T> load_mnist(const std::string& dir, mnist_split split)
{
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
    {
        throw io_error(detail::concat("the data directory ", detail::quoted(dir), " does not exist (it should hold ",
                                      mnist_file_name(split, false), " and ", mnist_file_name(split, true),
                                      ", raw or .gz)"));
    }
    const std::string images = find_idx_file(dir, mnist_file_name(split, false));
    const std::string labels = find_idx_file(dir, mnist_file_name(split, true));
    return load_idx_dataset<T>(images, labels);
}

} // namespace io

// User-facing names are spelled xcnn::<name>, like xcnn::save and xcnn::load; the io:: spelling
// stays valid for code written against it.
using io::labelled_images;
using io::load_idx_dataset;
using io::load_mnist;
using io::mnist_split;

} // namespace xcnn

#endif // XCNN_IO_MNIST_HPP
