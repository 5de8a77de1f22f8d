/// @file
/// Random augmentations of a batch of images in place, for `DataLoader::add_transform`:
/// `xcnn::RandomCrop` (zero padding, then a crop back to the original size) and
/// `xcnn::RandomHorizontalFlip`, torchvision's transforms of the same names.
///
/// A transform is any callable `void(xt::xtensor<T, R>& images, std::mt19937& rng)` that changes
/// the batch in place and draws its randomness from `rng`, the loader's transform generator;
/// these two draw with `uniform_below` and `uniform_unit`, which are defined here rather than by
/// the standard library's distributions, so a seed gives the same augmentations with every
/// standard library.
#ifndef XCNN_DATA_TRANSFORMS_HPP
#define XCNN_DATA_TRANSFORMS_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>

#include "../core/error.hpp"
#include "../core/xtensor_shim.hpp"

namespace xcnn
{

/// A uniformly distributed integer in [0, `bound`) from the 32-bit generator `rng`, by rejection
/// (no modulo bias); `bound` must be in [1, 2^32].
inline std::uint64_t uniform_below(std::mt19937& rng, std::uint64_t bound)
{
    const std::uint64_t range = std::uint64_t(1) << 32;
    // The largest multiple of `bound` that fits in the generator's range: draws at or above it
    // would favour the small values.
    const std::uint64_t limit = range - range % bound;
    std::uint64_t draw = rng();
    while (draw >= limit)
    {
        draw = rng();
    }
    return draw % bound;
}

/// A uniformly distributed double in [0, 1) from one draw of `rng` (a multiple of 2^-32).
inline double uniform_unit(std::mt19937& rng)
{
    return static_cast<double>(rng()) * (1.0 / 4294967296.0);
}

/// Pads each image with `padding` zeros on every side and crops a random H x W window out of
/// it: the image shifted by up to `padding` pixels in each direction, zeros filling in. This is
/// torchvision's `RandomCrop((H, W), padding=padding)` (constant fill 0): per image, the
/// window's top row is drawn uniformly from [0, 2 * padding], then its left column, and every
/// channel of the image is shifted alike. Works in place, without a padded copy.
class RandomCrop
{
public:
    /// A crop of an image padded by `padding` zeros on each side; `padding` 0 changes nothing.
    /// @throws value_error if `padding` is above 2^31 - 1 (a negative number converted to
    /// `std::size_t`?): the 2 * padding + 1 offsets must be drawable from 32 random bits.
    explicit RandomCrop(std::size_t padding) : m_padding(padding)
    {
        if (padding > (std::size_t(1) << 31) - 1)
        {
            throw value_error(detail::concat("RandomCrop: padding must be at most 2147483647, got ", padding,
                                             " (a negative number converted to std::size_t?)"));
        }
    }

    /// The padding on each side.
    std::size_t padding() const noexcept { return m_padding; }

    /// `RandomCrop(padding=<padding>)`, for messages.
    std::string name() const { return detail::concat("RandomCrop(padding=", m_padding, ")"); }

    /// Crops every image of `images` (N, C, H, W) in place, drawing two offsets per image.
    template <class T, std::size_t Rank>
    void operator()(xt::xtensor<T, Rank>& images, std::mt19937& rng) const
    {
        static_assert(Rank == 4, "xcnn::RandomCrop takes a batch of images (N, C, H, W)");
        const auto& s = images.shape();
        const std::size_t planes = s[1], height = s[2], width = s[3];
        const auto pad = static_cast<std::ptrdiff_t>(m_padding);
        for (std::size_t n = 0; n < s[0]; ++n)
        {
            // torchvision draws the top row first, then the left column.
            const std::ptrdiff_t dy = static_cast<std::ptrdiff_t>(uniform_below(rng, 2 * m_padding + 1)) - pad;
            const std::ptrdiff_t dx = static_cast<std::ptrdiff_t>(uniform_below(rng, 2 * m_padding + 1)) - pad;
            for (std::size_t c = 0; c < planes; ++c)
            {
                shift_plane(images.data() + (n * planes + c) * height * width, height, width, dy, dx);
            }
        }
    }

private:
    /// out(y, x) = in(y + dy, x + dx), 0 outside the plane, in place: rows are visited in the
    /// order that reads every source row before it is overwritten.
    template <class T>
    static void shift_plane(T* plane, std::size_t height, std::size_t width, std::ptrdiff_t dy, std::ptrdiff_t dx)
    {
        const auto h = static_cast<std::ptrdiff_t>(height), w = static_cast<std::ptrdiff_t>(width);
        // Destination columns [x0, x1) read source columns [x0 + dx, x1 + dx).
        const std::ptrdiff_t x0 = std::min(w, std::max<std::ptrdiff_t>(0, -dx));
        const std::ptrdiff_t x1 = std::max(x0, std::min(w, w - dx));
        for (std::ptrdiff_t k = 0; k < h; ++k)
        {
            const std::ptrdiff_t y = dy > 0 ? k : h - 1 - k;
            T* row = plane + y * w;
            const std::ptrdiff_t sy = y + dy;
            if (sy < 0 || sy >= h || x1 == x0)
            {
                std::fill(row, row + w, T(0));
                continue;
            }
            // Same row when dy == 0: memmove handles the overlap.
            std::memmove(row + x0, plane + sy * w + x0 + dx, static_cast<std::size_t>(x1 - x0) * sizeof(T));
            std::fill(row, row + x0, T(0));
            std::fill(row + x1, row + w, T(0));
        }
    }

    std::size_t m_padding;
};

/// Mirrors each image left to right with probability `p`, torchvision's
/// `RandomHorizontalFlip(p)`: one draw per image, flipped when it is below `p`, every channel
/// alike.
class RandomHorizontalFlip
{
public:
    /// Flips with probability `p` (0.5 by default; 0 never, 1 always).
    /// @throws value_error unless `p` is in [0, 1].
    explicit RandomHorizontalFlip(double p = 0.5) : m_p(p)
    {
        if (!(p >= 0.0 && p <= 1.0))
        {
            throw value_error(detail::concat("RandomHorizontalFlip: p must be in [0, 1], got ", p));
        }
    }

    /// The probability of a flip.
    double p() const noexcept { return m_p; }

    /// `RandomHorizontalFlip(p=<p>)`, for messages.
    std::string name() const { return detail::concat("RandomHorizontalFlip(p=", m_p, ")"); }

    /// Flips the images of `images` (N, C, H, W) in place, drawing once per image.
    template <class T, std::size_t Rank>
    void operator()(xt::xtensor<T, Rank>& images, std::mt19937& rng) const
    {
        static_assert(Rank == 4, "xcnn::RandomHorizontalFlip takes a batch of images (N, C, H, W)");
        const auto& s = images.shape();
        const std::size_t rows = s[1] * s[2], width = s[3];
        for (std::size_t n = 0; n < s[0]; ++n)
        {
            if (!(uniform_unit(rng) < m_p))
            {
                continue;
            }
            T* image = images.data() + n * rows * width;
            for (std::size_t r = 0; r < rows; ++r)
            {
                std::reverse(image + r * width, image + (r + 1) * width);
            }
        }
    }

private:
    double m_p;
};

} // namespace xcnn

#endif // XCNN_DATA_TRANSFORMS_HPP
