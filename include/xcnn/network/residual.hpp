/// @file
/// `xcnn::Residual`: the skip connection of ResNet, x + main(x) or main(x) + shortcut(x), over
/// any layers (typically `Sequential`s), itself a layer.
#ifndef XCNN_NETWORK_RESIDUAL_HPP
#define XCNN_NETWORK_RESIDUAL_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/parameter.hpp"
#include "../core/threading.hpp"
#include "../core/xtensor_shim.hpp"
#include "../layers/layer.hpp"
#include "sequential.hpp" // detail::has_backward_parameters: a branch skips dX when Sequential's first layer would

namespace xcnn
{
namespace detail
{

/// What a `Residual` without a shortcut stores in its place.
struct no_shortcut
{
};

/// The type a `Residual` stores as its shortcut: `Shortcut`, or `no_shortcut` for void.
template <class Shortcut>
using residual_shortcut_t = std::conditional_t<std::is_void<Shortcut>::value, no_shortcut, Shortcut>;

/// The ranks of `Residual<Main, Shortcut>` (`Shortcut` void for the identity form), from those
/// of its branches: a branch that takes any rank (an activation first) gets it from the other
/// branch or, in the identity form, from its own output, which must have the input's rank.
template <class Main, class Shortcut>
struct residual_ranks
{
    /// Whether the block adds the input itself.
    static constexpr bool identity = std::is_void<Shortcut>::value;
    /// The second branch: the shortcut, or main again in the identity form.
    using other = std::conditional_t<identity, Main, Shortcut>;

    static constexpr int first_fixed(int a, int b) noexcept { return a != any_rank ? a : b; }
    static constexpr bool fits(int rank, int fixed) noexcept { return rank == any_rank || rank == fixed; }

    /// Rank of the input, `any_rank` if no branch fixes it.
    static constexpr int input =
        identity ? first_fixed(Main::input_rank, Main::output_rank) : first_fixed(Main::input_rank, other::input_rank);
    /// Rank of the output: the input's when both branches keep the rank.
    static constexpr int output =
        identity ? input : first_fixed(first_fixed(Main::output_rank, other::output_rank), input);
    /// Whether every fixed rank of the branches agrees with `input` and `output`.
    static constexpr bool consistent = input != any_rank && fits(Main::input_rank, input) &&
                                       fits(other::input_rank, input) && fits(Main::output_rank, output) &&
                                       fits(other::output_rank, output);
    /// The ranks given to the layer base (1 when inconsistent, so that only the block's own
    /// static_assert reports it).
    static constexpr std::size_t base_input = consistent ? static_cast<std::size_t>(input) : 1;
    /// See `base_input`.
    static constexpr std::size_t base_output = consistent ? static_cast<std::size_t>(output) : 1;
};

/// out[i] = a[i] + b[i] for i < n in one vectorised pass, split between threads above ~64K
/// elements as the other element-wise passes are; `out` may be `a` or `b`.
template <class T>
void add_arrays(const T* a, const T* b, T* out, std::size_t n)
{
    using batch = xsimd::batch<T>;
    constexpr std::size_t S = batch::size;
    // Chunks start at multiples of the grain, itself a multiple of S: only the last one has a tail.
    parallel_for(n, std::size_t(1) << 16,
                 [&](std::size_t begin, std::size_t end, std::size_t)
                 {
                     std::size_t i = begin;
                     for (; i + S <= end; i += S)
                     {
                         (batch::load_unaligned(a + i) + batch::load_unaligned(b + i)).store_unaligned(out + i);
                     }
                     for (; i < end; ++i)
                     {
                         out[i] = a[i] + b[i];
                     }
                 });
}

} // namespace detail

/// A residual block: `Residual(main)` computes x + main(x), `Residual(main, shortcut)` computes
/// main(x) + shortcut(x), where `main` and `shortcut` are any layers, typically `Sequential`s.
/// The building block of ResNet:
///
///     xcnn::Sequential net{
///         xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<float>(16, 16, 3, 1, 1), xcnn::ReLU<float>{},
///                                         xcnn::Conv2D<float>(16, 16, 3, 1, 1)}),
///         xcnn::ReLU<float>{},
///         xcnn::Residual(xcnn::Sequential{xcnn::Conv2D<float>(16, 32, 3, 2, 1), xcnn::ReLU<float>{},
///                                         xcnn::Conv2D<float>(32, 32, 3, 1, 1)},
///                        xcnn::Conv2D<float>(16, 32, 1, 2)), // projection: 1x1, stride 2
///         xcnn::ReLU<float>{}};
///
/// The block is a layer: it nests in a `Sequential`, and its parameters and buffers are its
/// branches', named like the attributes of a PyTorch module with members `main` and `shortcut`
/// ("main.0.weight", "shortcut.weight"; "<i>.main.0.weight" at index i of a `Sequential`), so
/// model files, `.npy` export, checkpoints and optimizers see them as any others.
///
/// Ranks are checked at compile time (main's output must have the input's rank, or the
/// shortcut's output rank), shapes at run time: main's output must have the shape of the input
/// (identity form) or of the shortcut's output, else `shape_error` naming the block and both
/// shapes. An error inside a branch reaches the caller with its type and its message prefixed by
/// "Residual main: " or "Residual shortcut: ".
///
/// `Shortcut` is `void` for the identity form. Written with class template argument deduction;
/// to nest a `Residual` directly in another, spell the type (`Residual<Residual<M>>{inner}`),
/// as CTAD would copy the argument instead.
template <class Main, class Shortcut = void>
class Residual : public layer<Residual<Main, Shortcut>, typename Main::value_type,
                              detail::residual_ranks<Main, Shortcut>::base_input,
                              detail::residual_ranks<Main, Shortcut>::base_output>
{
    using ranks = detail::residual_ranks<Main, Shortcut>;
    using base = layer<Residual<Main, Shortcut>, typename Main::value_type, ranks::base_input, ranks::base_output>;

    static_assert(detail::check_layer<Main>::value && detail::check_layer<typename ranks::other>::value,
                  "xcnn::Residual: see the error above");
    static_assert(std::is_same<typename Main::value_type, typename ranks::other::value_type>::value,
                  "xcnn::Residual: main and shortcut must have the same scalar type (both float or both double)");
    static_assert(ranks::input != any_rank, "xcnn::Residual: cannot tell the rank of the input: both branches take "
                                            "any rank and keep it; start one with a layer of fixed rank");
    static_assert(ranks::consistent, "xcnn::Residual: the branches disagree on rank: main's output must have the "
                                     "rank of the input (Residual(main)) or of the shortcut's output, and both "
                                     "branches must take the same rank");

public:
    using typename base::input_type;
    using typename base::output_type;
    using typename base::value_type;
    /// Whether the block has a shortcut branch (false: it adds the input itself).
    static constexpr bool has_shortcut = !ranks::identity;
    /// The type of the main branch.
    using main_type = Main;
    /// The type of the shortcut branch (`detail::no_shortcut` in the identity form).
    using shortcut_type = detail::residual_shortcut_t<Shortcut>;

    // The constructors name no member of the class in their signatures: class template argument
    // deduction substitutes them for every form, and naming a member would instantiate the block
    // of the other form (and its static_asserts).

    /// x + main(x): main's output must have the shape of its input.
    template <class S = Shortcut, std::enable_if_t<std::is_void<S>::value, int> = 0>
    explicit Residual(Main main) : m_main(std::move(main))
    {
    }

    /// main(x) + shortcut(x): both outputs must have the same shape.
    template <class S = Shortcut, std::enable_if_t<!std::is_void<S>::value, int> = 0>
    Residual(Main main, detail::residual_shortcut_t<S> shortcut)
        : m_main(std::move(main)), m_shortcut(std::move(shortcut))
    {
    }

    /// The main branch.
    Main& main() noexcept { return m_main; }
    /// The main branch, read-only.
    const Main& main() const noexcept { return m_main; }
    /// The shortcut branch (a compile error in the identity form).
    template <bool S = has_shortcut>
    shortcut_type& shortcut() noexcept
    {
        static_assert(S, "xcnn::Residual(main) adds its input: it has no shortcut");
        return m_shortcut;
    }
    /// The shortcut branch, read-only.
    template <bool S = has_shortcut>
    const shortcut_type& shortcut() const noexcept
    {
        static_assert(S, "xcnn::Residual(main) adds its input: it has no shortcut");
        return m_shortcut;
    }

    /// "Residual(main=<main's name>)" or "Residual(main=<main's name>, shortcut=<shortcut's name>)",
    /// as `Sequential::summary` and error messages show it.
    std::string name() const
    {
        std::string out = "Residual(main=" + m_main.name();
        if constexpr (has_shortcut)
        {
            out += ", shortcut=" + m_shortcut.name();
        }
        return out + ")";
    }

    /// The kind in a `layer_spec`.
    static constexpr const char* kind = "Residual";

    /// "Residual" with main's spec as its first inner layer and the shortcut's, if any, as its
    /// second. Only when the branches have a `spec()`.
    template <bool Describable = detail::has_spec<Main>::value &&
                                 (!has_shortcut || detail::has_spec<shortcut_type>::value)>
    std::enable_if_t<Describable, layer_spec> spec() const
    {
        layer_spec out{kind, {}, {m_main.spec()}};
        if constexpr (has_shortcut)
        {
            out.children.push_back(m_shortcut.spec());
        }
        return out;
    }

    /// The block `spec` describes, its branches freshly initialised through their types'
    /// `from_spec`. Only when the branches have a `from_spec`.
    /// @throws value_error for another kind, any option, one inner layer for a block with a
    /// shortcut or two for one without, or a branch its type refuses (prefixed by
    /// "Residual main: " or "Residual shortcut: ").
    template <bool Rebuildable = detail::has_from_spec<Main>::value &&
                                 (!has_shortcut || detail::has_from_spec<shortcut_type>::value)>
    static std::enable_if_t<Rebuildable, Residual> from_spec(const layer_spec& spec)
    {
        const std::size_t branches = has_shortcut ? 2 : 1;
        spec_reader(spec, kind, {}, branches, branches);
        auto main = in_branch("main", [&] { return Main::from_spec(spec.children[0]); });
        if constexpr (has_shortcut)
        {
            return Residual(std::move(main),
                            in_branch("shortcut", [&] { return shortcut_type::from_spec(spec.children[1]); }));
        }
        else
        {
            return Residual(std::move(main));
        }
    }

    /// Main's parameters named "main.<name>", then the shortcut's, "shortcut.<name>", as the
    /// `state_dict` of a PyTorch module with attributes `main` and `shortcut` names them.
    std::vector<parameter<value_type>> parameters()
    {
        std::vector<parameter<value_type>> all;
        add_named(all, m_main.parameters(), "main.", m_main);
        if constexpr (has_shortcut)
        {
            add_named(all, m_shortcut.parameters(), "shortcut.", m_shortcut);
        }
        return all;
    }

    /// The branches' buffers, named as `parameters()` names the parameters.
    std::vector<buffer<value_type>> buffers()
    {
        std::vector<buffer<value_type>> all;
        if constexpr (detail::has_buffers<Main, value_type>::value)
        {
            add_named(all, m_main.buffers(), "main.", m_main);
        }
        if constexpr (has_shortcut && detail::has_buffers<shortcut_type, value_type>::value)
        {
            add_named(all, m_shortcut.buffers(), "shortcut.", m_shortcut);
        }
        return all;
    }

    /// Number of trainable scalars of both branches.
    std::size_t num_parameters() const
    {
        std::size_t count = m_main.num_parameters();
        if constexpr (has_shortcut)
        {
            count += m_shortcut.num_parameters();
        }
        return count;
    }

    /// Re-draws main's parameters, then the shortcut's, from `rng`.
    void reset_parameters(std::mt19937& rng)
    {
        m_main.reset_parameters(rng);
        if constexpr (has_shortcut)
        {
            m_shortcut.reset_parameters(rng);
        }
    }

    /// The output shape for an input of shape `s` (whose rank the base has checked).
    /// @throws shape_error if a branch cannot take the input (prefixed by "Residual main: " or
    /// "Residual shortcut: "), or if main's output does not have the shape of the input
    /// (identity form) or of the shortcut's output.
    template <class S>
    std::array<std::size_t, ranks::base_output> checked_output_shape(const S& s) const
    {
        const std::vector<std::size_t> input(s.begin(), s.end());
        const auto main_shape = in_branch("main", [&] { return m_main.output_shape(input); });
        if constexpr (has_shortcut)
        {
            const auto shortcut_shape = in_branch("shortcut", [&] { return m_shortcut.output_shape(input); });
            if (main_shape != shortcut_shape)
            {
                throw shape_error(detail::concat(name(), ": for an input ", detail::shape_to_string(input),
                                                 " main gives ", detail::shape_to_string(main_shape),
                                                 " but shortcut gives ", detail::shape_to_string(shortcut_shape),
                                                 "; the two must have the same shape to be added"));
            }
        }
        else if (main_shape != input)
        {
            throw shape_error(detail::concat(name(), ": main gives ", detail::shape_to_string(main_shape),
                                             " for an input ", detail::shape_to_string(input),
                                             "; it must keep the shape for the input to be added to it (give "
                                             "Residual a shortcut, e.g. a 1x1 Conv2D, to change it)"));
        }
        std::array<std::size_t, ranks::base_output> out{};
        std::copy(main_shape.begin(), main_shape.end(), out.begin());
        return out;
    }

    /// Runs the branches (`forward` when `training`, else `predict`) and adds their outputs.
    /// The shapes are checked before any branch runs (again only when the input shape changes:
    /// the check builds shape vectors, and a steady step allocates nothing).
    const output_type& run_forward(const input_type& x, bool training)
    {
        if (!m_checked || !std::equal(x.shape().begin(), x.shape().end(), m_checked_input.begin()))
        {
            (void)checked_output_shape(x.shape());
            std::copy(x.shape().begin(), x.shape().end(), m_checked_input.begin());
            m_checked = true;
        }
        // A branch that throws despite the check (a parameter assigned another shape) may have
        // run the other one: backward must not mix the two passes.
        m_branches_agree = false;
        const output_type& a = *in_branch("main", [&] { return &run_branch(m_main, x, training); });
        const output_type* b = nullptr;
        if constexpr (has_shortcut)
        {
            b = in_branch("shortcut", [&] { return &run_branch(m_shortcut, x, training); });
        }
        else
        {
            b = &x;
        }
        detail::ensure_shape(m_output, a.shape());
        detail::add_arrays(a.data(), b->data(), m_output.data(), m_output.size());
        m_branches_agree = true;
        return m_output;
    }

    /// dX = main.backward(dY) + dY, or main.backward(dY) + shortcut.backward(dY); overwrites the
    /// parameter gradients of both branches.
    /// @throws error if the last forward threw inside a branch.
    const input_type& run_backward(const output_type& dy)
    {
        require_branches_agree();
        const input_type& a = *in_branch("main", [&] { return &m_main.backward(dy); });
        const input_type* b = nullptr;
        if constexpr (has_shortcut)
        {
            b = in_branch("shortcut", [&] { return &m_shortcut.backward(dy); });
        }
        else
        {
            b = &dy;
        }
        detail::ensure_shape(m_input_grad, a.shape());
        detail::add_arrays(a.data(), b->data(), m_input_grad.data(), m_input_grad.size());
        return m_input_grad;
    }

    /// The parameter gradients of both branches without dX, which is not needed, so neither is
    /// the sum: each branch runs its own `backward_parameters` (for a `Sequential`, dX of every
    /// layer but its first) or, without one, its `backward`.
    /// @throws error if the last forward threw inside a branch.
    void run_backward_parameters(const output_type& dy)
    {
        require_branches_agree();
        in_branch("main", [&] { return (branch_parameter_grads(m_main, dy), 0); });
        if constexpr (has_shortcut)
        {
            in_branch("shortcut", [&] { return (branch_parameter_grads(m_shortcut, dy), 0); });
        }
    }

private:
    /// Runs `call` and prefixes any xcnn error with the branch, keeping its type.
    template <class F>
    static decltype(auto) in_branch(const char* branch, F&& call)
    {
        try
        {
            return call();
        }
        catch (const error&)
        {
            detail::rethrow_with_prefix(detail::concat("Residual ", branch, ": "));
        }
    }

    template <class Branch>
    static const output_type& run_branch(Branch& branch, const input_type& x, bool training)
    {
        return training ? branch.forward(x) : branch.predict(x);
    }

    template <class Branch>
    static void branch_parameter_grads(Branch& branch, const output_type& dy)
    {
        if constexpr (detail::has_backward_parameters<Branch, output_type>::value)
        {
            branch.backward_parameters(dy);
        }
        else
        {
            (void)branch.backward(dy);
        }
    }

    void require_branches_agree() const
    {
        if (!m_branches_agree)
        {
            throw error(detail::concat(name(), ": backward needs a forward that succeeded (the last one threw in "
                                               "a branch)"));
        }
    }

    /// Appends a branch's handles to `all`, named "<prefix><name>", with the branch as their
    /// layer unless a nested container named one.
    template <class Handle, class Branch>
    static void add_named(std::vector<Handle>& all, std::vector<Handle> handles, const char* prefix,
                          const Branch& branch)
    {
        for (auto& h : handles)
        {
            h.add_prefix(prefix);
            if (h.layer().empty())
            {
                h.set_layer(branch.name());
            }
            all.push_back(std::move(h));
        }
    }

    Main m_main;
    shortcut_type m_shortcut;
    output_type m_output;                                         // main(x) + x or main(x) + shortcut(x)
    input_type m_input_grad;                                      // dX
    std::array<std::size_t, ranks::base_input> m_checked_input{}; // the last input shape checked
    bool m_checked = false;
    bool m_branches_agree = false; // both branches' caches come from the last forward
};

/// Deduction guide: `Residual(xcnn::Sequential{...})` is the identity form
/// `Residual<Sequential<...>>`.
template <class Main>
Residual(Main) -> Residual<Main>;

/// Deduction guide: `Residual(main, shortcut)` is `Residual<Main, Shortcut>`.
template <class Main, class Shortcut>
Residual(Main, Shortcut) -> Residual<Main, Shortcut>;

} // namespace xcnn

#endif // XCNN_NETWORK_RESIDUAL_HPP
