/// @file
/// `xcnn::Dropout`: in training, zeroes each element with probability p and scales the others by
/// 1 / (1 - p); at inference, the identity. For tensors of any rank.
#ifndef XCNN_LAYERS_DROPOUT_HPP
#define XCNN_LAYERS_DROPOUT_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/generator.hpp"
#include "../core/threading.hpp"
#include "../core/xtensor_shim.hpp"
#include "any_rank.hpp"
#include "layer.hpp"

namespace xcnn
{
namespace detail
{

/// out[i] = in[i] · (keep ? scale : 0) for i < n, where element i keeps when the 32 bits of
/// draw `first + i / 2` of `g` (the low half for even i, the high half for odd i) are at least
/// `threshold` (so with probability 1 - threshold / 2^32; 2^32 drops everything). One 64-bit
/// draw serves two elements; draws are computed by position, so the passes split between
/// threads, and `backward` recomputes the mask of a `forward` from its first position instead of
/// storing it. `out` may be `in`.
template <class T>
void apply_dropout_mask(const counter_generator& g, std::uint64_t first, std::uint64_t threshold, T scale, const T* in,
                        T* out, std::size_t n)
{
    const std::size_t draws = (n + 1) / 2;
    constexpr std::size_t block = 256; // draws per pass over a stack buffer of 2 KB
    parallel_for(draws, std::size_t(1) << 15,
                 [&](std::size_t begin, std::size_t end, std::size_t)
                 {
                     alignas(64) std::uint32_t bits[2 * block];
                     for (std::size_t d0 = begin; d0 < end; d0 += block)
                     {
                         const std::size_t d1 = std::min(end, d0 + block);
                         for (std::size_t d = d0; d < d1; ++d)
                         {
                             const std::uint64_t r = g.at(first + d);
                             bits[2 * (d - d0)] = static_cast<std::uint32_t>(r);
                             bits[2 * (d - d0) + 1] = static_cast<std::uint32_t>(r >> 32);
                         }
                         const std::size_t e0 = 2 * d0, e1 = std::min(n, 2 * d1);
                         const T* x = in + e0;
                         T* y = out + e0;
                         if (threshold > 0xFFFFFFFFull) // p = 1: everything dropped (NaN · 0 stays NaN)
                         {
                             for (std::size_t i = 0; i < e1 - e0; ++i)
                             {
                                 y[i] = x[i] * T(0);
                             }
                             continue;
                         }
                         const auto t = static_cast<std::uint32_t>(threshold);
                         // Branch-free (the comparison is a coin flip a branch would mispredict
                         // half the time), so the compiler vectorises it.
                         for (std::size_t i = 0; i < e1 - e0; ++i)
                         {
                             y[i] = x[i] * (static_cast<T>(bits[i] >= t) * scale);
                         }
                     }
                 });
}

} // namespace detail

/// Dropout (PyTorch's `nn.Dropout(p)`, default p = 0.5) for tensors of any rank (1 to 8).
///
/// `forward` (training) zeroes each element independently with probability p and multiplies the
/// others by 1 / (1 - p), so the expected output is the input; every `forward` draws a new mask.
/// `predict` is the identity. `backward` multiplies dY by the mask of the last `forward`. As in
/// PyTorch the mask multiplies: a dropped NaN or infinity stays NaN, and p = 1 gives x · 0.
///
/// The mask comes from the layer's own `counter_generator` (draws by position: fast, split
/// between threads with the same result at any thread count). `reset_parameters(rng)` seeds it
/// with two draws of `rng`, so `Sequential::reset_parameters(seed)` fixes the masks too (and the
/// layers after a Dropout draw their initial weights from the generator two draws later). The
/// generator is listed in `generators()` ("rng"): checkpoints save and restore it, so a resumed
/// run draws the masks the uninterrupted run would have. It has no parameters and no buffers:
/// like PyTorch's Dropout it adds nothing to a model file, a `.npy` export or a `state_dict`.
template <class T>
class Dropout : public any_rank_layer<Dropout<T>, T>
{
public:
    /// Zeroes elements with probability `p` in training. The generator starts from a fixed seed
    /// (as every layer initialises itself); `reset_parameters` re-seeds it.
    /// @throws value_error unless 0 <= p <= 1.
    explicit Dropout(double p = 0.5) : m_p(checked(p))
    {
        // p · 2^32 rounded: the probability of a 32-bit draw below it is p within 2^-33.
        m_threshold = static_cast<std::uint64_t>(std::llround(p * 4294967296.0));
        // PyTorch divides the mask by 1 - p computed in double and rounded to T.
        m_scale = p < 1 ? T(1) / static_cast<T>(1.0 - p) : T(0);
        std::mt19937 rng(detail::default_init_seed);
        m_generator.seed(rng);
    }

    /// The probability of zeroing an element.
    double p() const noexcept { return m_p; }

    /// The kind in a `layer_spec`.
    static constexpr const char* kind = "Dropout";

    /// p, the name of PyTorch's `Dropout` argument.
    layer_spec spec() const { return layer_spec{kind, {}, {}}.set("p", {m_p}); }

    /// The layer `spec` describes (p defaults to PyTorch's 0.5), its generator freshly seeded.
    /// @throws value_error for another kind, an unknown or malformed option, or p outside [0, 1].
    static Dropout from_spec(const layer_spec& spec)
    {
        const spec_reader r(spec, kind, {"p"});
        return Dropout(r.real<double>("p", 0.5));
    }

    /// The mask generator (its state: `generator().key()`, `position()`).
    const counter_generator& generator() const noexcept { return m_generator; }

    /// "Dropout(p=0.5)", in summaries and error messages.
    std::string name() const { return name_of(m_p); }

    /// Seeds the mask generator from two draws of `rng`.
    void reset_parameters(std::mt19937& rng) { m_generator.seed(rng); }

    /// The mask generator, named "rng": what checkpoints save besides the parameters and buffers.
    std::vector<generator_handle> generators() { return {generator_handle("rng", m_generator)}; }

    /// x with a new mask applied: each element zeroed with probability p, the others scaled by
    /// 1 / (1 - p). Advances the generator by one draw per two elements.
    template <std::size_t N>
    const xt::xtensor<T, N>& forward(const xt::xtensor<T, N>& x)
    {
        auto& y = this->template output_for<N>(x.shape(), true);
        m_mask_position = m_generator.position();
        detail::apply_dropout_mask(m_generator, m_mask_position, m_threshold, m_scale, x.data(), y.data(), x.size());
        m_generator.discard((x.size() + 1) / 2);
        return y;
    }

    /// x itself (a copy in the layer's buffer): inference uses every element, unscaled. Draws
    /// nothing; `backward` after it is an error.
    template <std::size_t N>
    const xt::xtensor<T, N>& predict(const xt::xtensor<T, N>& x)
    {
        auto& y = this->template output_for<N>(x.shape(), false);
        std::copy(x.begin(), x.end(), y.begin());
        return y;
    }

    /// dX = dY · mask of the last `forward` (0 or 1 / (1 - p) per element).
    /// @throws error unless the last call was a `forward` of rank N; shape_error if `grad_output`
    /// does not have the shape of the last output.
    template <std::size_t N>
    const xt::xtensor<T, N>& backward(const xt::xtensor<T, N>& grad_output)
    {
        const auto& y = this->checked_output(grad_output);
        auto& dx = this->input_grad_for(y);
        detail::apply_dropout_mask(m_generator, m_mask_position, m_threshold, m_scale, grad_output.data(), dx.data(),
                                   y.size());
        return dx;
    }

private:
    static std::string name_of(double p)
    {
        std::ostringstream out;
        out << "Dropout(p=" << p << ")";
        return out.str();
    }

    static double checked(double p)
    {
        if (!(p >= 0 && p <= 1))
        {
            throw value_error(name_of(p) + ": p, the probability of zeroing an element, must be in [0, 1]");
        }
        return p;
    }

    double m_p;
    std::uint64_t m_threshold = 0;
    T m_scale = 1;
    counter_generator m_generator;
    std::uint64_t m_mask_position = 0; // the generator's position at the last forward
};

} // namespace xcnn

#endif // XCNN_LAYERS_DROPOUT_HPP
