/// @file
/// What every xcnn optimizer has in common: its state as `xcnn::optimizer_state<T>` (PyTorch's
/// `optimizer.state_dict()`) and the interface checkpoints use to save and restore it, so that
/// io/checkpoint.hpp works with any optimizer and depends on none.
///
/// ## The optimizer contract
///
/// An optimizer `O` over scalars `T` (`SGD`, `Adam`, `AdamW`) provides:
///
/// - `using value_type = T;`: the scalar type of the parameters;
/// - `std::string name() const`: its kind, e.g. "SGD": the `kind` of its state and the
///   `xcnn.optimizer` record of a checkpoint;
/// - `const std::vector<parameter<T>>& parameters() const`: the parameters it updates, in order;
/// - `optimizer_state<T> state_dict() const`: a copy of everything it carries from one step to
///   the next;
/// - `void check_state_dict(const optimizer_state<T>&) const`: throws what `load_state_dict`
///   would throw, changing nothing;
/// - `void load_state_dict(const optimizer_state<T>&)`: restores a state: all checked first,
///   then all or nothing;
///
/// and its state follows these rules, which let a checkpoint store and read any optimizer's
/// state without knowing the optimizer:
///
/// - `kind` is `name()`; a state of another kind is refused (`value_error`).
/// - `scalars` (type `T`: hyperparameters such as "lr", "momentum", "weight_decay") and
///   `counters` (`std::uint64_t`: "steps", ...) always hold the same names, in the same order,
///   whatever the optimizer's history; names are unique across both and contain no dot (a
///   checkpoint tells them from per-parameter tensors by that). A state lacking one of
///   them or holding an unknown one is refused (`value_error`), as is a value the constructor
///   would refuse (a negative learning rate). The one exception is a switch added after
///   states without it were written (SGD's "nesterov" counter): it is present only when on, so
///   that the states and checkpoints of earlier releases keep their meaning (off) and their
///   records.
/// - `tensors` hold per-parameter state ("momentum_buffer", Adam's "exp_avg"): each is keyed by
///   the parameter's name and a state name, and has exactly the parameter's size (its values are
///   laid out in the parameter's shape). As in PyTorch, a tensor is absent until it exists
///   (before the parameter's first update; never, for SGD without momentum); `load_state_dict`
///   restores the absence. State names are `snake_case` words without dots (messages spell them
///   with spaces, "momentum buffer"); the tensors are listed in parameter order.
/// - A tensor of a size other than its parameter's, for a parameter the optimizer does not have,
///   or listed twice is refused (`shape_error`, `shape_error`, `value_error`); so is an unknown
///   state name (`value_error`).
///
/// A per-parameter scalar (PyTorch Adam's per-parameter `step`) is a counter of the optimizer
/// here: xcnn's optimizers update all their parameters at every step.
///
/// ## The schedule contract
///
/// A learning-rate schedule `S` (optim/schedule.hpp: `StepLR`, `CosineAnnealingLR`,
/// `OneCycleLR`) drives one optimizer and provides:
///
/// - `using optimizer_type = O;` and `const O& optimizer() const`: the optimizer it drives;
/// - `std::string name() const`: its kind, e.g. "StepLR" (a checkpoint's `xcnn.schedule`);
/// - `void step()` (after each optimizer step) and `double last_lr() const`;
/// - `schedule_state state_dict() const`, `void check_state_dict(const schedule_state&) const`
///   and `void load_state_dict(const schedule_state&)`, with the rules of an optimizer's
///   scalars and counters (a fixed set of names without dots, of another kind or unknown or
///   missing: `value_error`, all checked before anything changes).
///
/// Like PyTorch's `scheduler.state_dict()`, a schedule's state holds its hyperparameters and
/// its position; the optimizer's own state holds the learning rate (and momentum) it was given.
#ifndef XCNN_OPTIM_OPTIMIZER_HPP
#define XCNN_OPTIM_OPTIMIZER_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/finite.hpp"
#include "../core/parameter.hpp"

namespace xcnn
{

/// What `step` does when a gradient or a parameter is not finite (NaN or infinite); every
/// optimizer of xcnn offers `set_nonfinite_policy`.
enum class nonfinite_policy
{
    raise,    ///< throw `numeric_error` naming the step and the parameter (the default)
    skip_step ///< leave every parameter and optimizer state as it is, count the step as skipped
};

namespace detail
{

/// The value named `name` in a list of (name, value) pairs, or nullptr.
template <class V>
V* find_named(std::vector<std::pair<std::string, V>>& list, const std::string& name)
{
    for (auto& entry : list)
    {
        if (entry.first == name)
        {
            return &entry.second;
        }
    }
    return nullptr;
}

/// `find_named` on a constant list.
template <class V>
const V* find_named(const std::vector<std::pair<std::string, V>>& list, const std::string& name)
{
    return find_named(const_cast<std::vector<std::pair<std::string, V>>&>(list), name);
}

} // namespace detail

/// A per-parameter tensor of an optimizer's state, e.g. the momentum buffer of '3.weight'.
template <class T>
struct optimizer_tensor
{
    std::string parameter; ///< the parameter's name, e.g. "3.weight"
    std::string name;      ///< the state's name, e.g. "momentum_buffer"
    std::vector<T> values; ///< the parameter's size, row-major in the parameter's shape
};

/// Everything an optimizer carries from one step to the next, like PyTorch's
/// `optimizer.state_dict()`: what a checkpoint must hold to continue training exactly. The rules
/// its contents follow are the optimizer contract of optim/optimizer.hpp.
template <class T>
struct optimizer_state
{
    /// The optimizer's kind, its `name()`: "SGD".
    std::string kind;
    /// Hyperparameters in the parameters' type, in the optimizer's order: ("lr", 0.1), ...
    std::vector<std::pair<std::string, T>> scalars;
    /// Counters, in the optimizer's order: ("steps", 1200), ("skipped_steps", 0).
    std::vector<std::pair<std::string, std::uint64_t>> counters;
    /// Per-parameter tensors, in parameter order; absent until they exist.
    std::vector<optimizer_tensor<T>> tensors;

    /// The scalar `name`, or nullptr.
    const T* scalar(const std::string& name) const { return detail::find_named(scalars, name); }
    /// The scalar `name`, or nullptr; to change it.
    T* scalar(const std::string& name) { return detail::find_named(scalars, name); }
    /// The counter `name`, or nullptr.
    const std::uint64_t* counter(const std::string& name) const { return detail::find_named(counters, name); }
    /// The counter `name`, or nullptr; to change it.
    std::uint64_t* counter(const std::string& name) { return detail::find_named(counters, name); }

    /// The tensor `name` of `parameter` ("3.weight", "momentum_buffer"), or nullptr.
    const optimizer_tensor<T>* tensor(const std::string& parameter, const std::string& name) const
    {
        for (const auto& t : tensors)
        {
            if (t.parameter == parameter && t.name == name)
            {
                return &t;
            }
        }
        return nullptr;
    }
    /// The tensor `name` of `parameter`, or nullptr; to change it.
    optimizer_tensor<T>* tensor(const std::string& parameter, const std::string& name)
    {
        return const_cast<optimizer_tensor<T>*>(static_cast<const optimizer_state&>(*this).tensor(parameter, name));
    }
};

/// Whether `O` satisfies the optimizer contract of optim/optimizer.hpp (its members, not the
/// rules its state follows). Checkpoints `static_assert` it.
template <class O, class = void>
struct is_optimizer : std::false_type
{
};

/// `is_optimizer` of a type with every member of the contract.
template <class O>
struct is_optimizer<
    O, std::void_t<typename O::value_type,
                   std::enable_if_t<std::is_convertible<decltype(std::declval<const O&>().name()), std::string>::value>,
                   std::enable_if_t<std::is_same<decltype(std::declval<const O&>().parameters()),
                                                 const std::vector<parameter<typename O::value_type>>&>::value>,
                   std::enable_if_t<std::is_same<decltype(std::declval<const O&>().state_dict()),
                                                 optimizer_state<typename O::value_type>>::value>,
                   decltype(std::declval<const O&>().check_state_dict(
                       std::declval<const optimizer_state<typename O::value_type>&>())),
                   decltype(std::declval<O&>().load_state_dict(
                       std::declval<const optimizer_state<typename O::value_type>&>()))>> : std::true_type
{
};

/// Everything a learning-rate schedule carries from one step to the next, like PyTorch's
/// `scheduler.state_dict()`: its hyperparameters and its position. The rules its contents follow
/// are the schedule contract of optim/optimizer.hpp.
struct schedule_state
{
    /// The schedule's kind, its `name()`: "StepLR".
    std::string kind;
    /// Real-valued hyperparameters and values: ("gamma", 0.1), ("last_lr", 0.025), ...
    std::vector<std::pair<std::string, double>> scalars;
    /// Counters and integer settings: ("steps", 1200), ("step_size", 30), ...
    std::vector<std::pair<std::string, std::uint64_t>> counters;

    /// The scalar `name`, or nullptr.
    const double* scalar(const std::string& name) const { return detail::find_named(scalars, name); }
    /// The scalar `name`, or nullptr; to change it.
    double* scalar(const std::string& name) { return detail::find_named(scalars, name); }
    /// The counter `name`, or nullptr.
    const std::uint64_t* counter(const std::string& name) const { return detail::find_named(counters, name); }
    /// The counter `name`, or nullptr; to change it.
    std::uint64_t* counter(const std::string& name) { return detail::find_named(counters, name); }
};

/// Whether `S` satisfies the schedule contract of optim/optimizer.hpp (its members). Checkpoints
/// `static_assert` it and tell a schedule argument from a random engine by it.
template <class S, class = void>
struct is_schedule : std::false_type
{
};

/// `is_schedule` of a type with every member of the contract.
template <class S>
struct is_schedule<
    S,
    std::void_t<typename S::optimizer_type,
                std::enable_if_t<std::is_same<decltype(std::declval<const S&>().optimizer()),
                                              const typename S::optimizer_type&>::value>,
                std::enable_if_t<std::is_convertible<decltype(std::declval<const S&>().name()), std::string>::value>,
                std::enable_if_t<std::is_same<decltype(std::declval<const S&>().state_dict()), schedule_state>::value>,
                std::enable_if_t<std::is_convertible<decltype(std::declval<const S&>().last_lr()), double>::value>,
                decltype(std::declval<S&>().step()),
                decltype(std::declval<const S&>().check_state_dict(std::declval<const schedule_state&>())),
                decltype(std::declval<S&>().load_state_dict(std::declval<const schedule_state&>()))>> : std::true_type
{
};

namespace detail
{

/// "momentum buffer": a state name as messages spell it.
inline std::string state_description(const std::string& name)
{
    std::string out = name;
    for (auto& c : out)
    {
        c = c == '_' ? ' ' : c;
    }
    return out;
}

/// "a momentum buffer", "an exp avg": a state name with its article.
inline std::string state_with_article(const std::string& name)
{
    const std::string words = state_description(name);
    const bool vowel = !words.empty() && std::string("aeiou").find(words.front()) != std::string::npos;
    return (vowel ? "an " : "a ") + words;
}

/// The index of the parameter named `name` in `parameters`, `parameters.size()` if there is none.
template <class T>
std::size_t parameter_index(const std::vector<parameter<T>>& parameters, const std::string& name) noexcept
{
    std::size_t i = 0;
    while (i < parameters.size() && parameters[i].name() != name)
    {
        ++i;
    }
    return i;
}

/// Checks that `list` (the scalars or counters of the state of `owner`, an optimizer or a
/// schedule) names exactly `expected`, each once, in any order.
/// @throws value_error naming `owner`, the name and `what` ("scalar", "counter").
template <class V>
void check_state_names(const std::string& owner, const std::vector<std::pair<std::string, V>>& list,
                       const std::vector<std::string>& expected, const char* what)
{
    for (const auto& name : expected)
    {
        const auto count =
            std::count_if(list.begin(), list.end(), [&](const auto& entry) { return entry.first == name; });
        if (count != 1)
        {
            throw value_error(concat(owner, ": the state holds ", count, " ", what, "s '", name, "', not one"));
        }
    }
    if (list.size() != expected.size())
    {
        for (const auto& entry : list)
        {
            if (std::find(expected.begin(), expected.end(), entry.first) == expected.end())
            {
                throw value_error(concat(owner, ": the state holds an unknown ", what, " '", entry.first, "'"));
            }
        }
    }
}

/// Checks the per-parameter tensors of the state of `optimizer` (its name) over `parameters`:
/// each named one of `allowed`, for one of the parameters, listed once and of its parameter's
/// size (the optimizer contract). Returns, for each allowed name, which parameters have it.
/// @throws value_error for an unknown state name or a tensor listed twice; shape_error for a
/// tensor of no parameter or of the wrong size.
template <class T>
std::vector<std::vector<bool>>
check_state_tensors(const std::string& optimizer, const std::vector<parameter<T>>& parameters,
                    const std::vector<optimizer_tensor<T>>& tensors, const std::vector<std::string>& allowed)
{
    std::vector<std::vector<bool>> seen(allowed.size(), std::vector<bool>(parameters.size(), false));
    for (const auto& t : tensors)
    {
        const auto kind = static_cast<std::size_t>(std::find(allowed.begin(), allowed.end(), t.name) - allowed.begin());
        if (kind == allowed.size())
        {
            std::string keeps;
            for (std::size_t k = 0; k < allowed.size(); ++k)
            {
                keeps += concat(k == 0 ? "" : k + 1 == allowed.size() ? " and " : ", ", "'", allowed[k], "'");
            }
            throw value_error(concat(optimizer, ": the state holds a tensor '", t.name, "' of parameter '", t.parameter,
                                     "'; ", optimizer, " keeps only ", keeps));
        }
        const std::size_t i = parameter_index(parameters, t.parameter);
        if (i == parameters.size())
        {
            throw shape_error(concat(optimizer, ": the state holds ", state_with_article(t.name), " of '", t.parameter,
                                     "', which is none of the optimizer's ", parameters.size(), " parameters"));
        }
        if (seen[kind][i])
        {
            throw value_error(concat(optimizer, ": the state holds two ", state_description(t.name), "s of parameter ",
                                     describe_parameter(parameters[i])));
        }
        seen[kind][i] = true;
        if (t.values.size() != parameters[i].size())
        {
            throw shape_error(concat(optimizer, ": the ", state_description(t.name), " of parameter ",
                                     describe_parameter(parameters[i]), " has ", t.values.size(),
                                     " elements, the parameter ", parameters[i].size(), " (shape ",
                                     shape_to_string(parameters[i].shape()), ")"));
        }
    }
    return seen;
}

/// Whether every parameter and every gradient of `parameters` is finite.
template <class T>
bool parameters_finite(const std::vector<parameter<T>>& parameters) noexcept
{
    bool finite = true;
    for (const auto& p : parameters)
    {
        finite &= all_finite(p.data(), p.size()) && all_finite(p.grad_data(), p.size());
    }
    return finite;
}

/// The error of step `step` (1-based) of `optimizer` (its name) that found non-finite values in
/// `parameters` under `policy`. A non-finite parameter is named before any gradient: it is the
/// cause, and it makes the gradients of every layer before it non-finite too.
template <class T>
std::string nonfinite_step_message(const std::string& optimizer, std::uint64_t step,
                                   const std::vector<parameter<T>>& parameters, nonfinite_policy policy)
{
    const std::string where = concat(optimizer, " step ", step, ": ");
    const char* const outcome =
        policy == nonfinite_policy::raise ? "; no parameter was changed" : "; the step was skipped";
    for (const auto& p : parameters)
    {
        if (!all_finite(p.data(), p.size()))
        {
            return concat(where, "non-finite value in parameter ", describe_parameter(p), ": ",
                          nonfinite_summary(p.data(), p.size()), outcome);
        }
    }
    std::size_t affected = 0;
    const parameter<T>* first = nullptr;
    for (const auto& p : parameters)
    {
        if (!all_finite(p.grad_data(), p.size()))
        {
            first = first != nullptr ? first : &p;
            ++affected;
        }
    }
    if (first == nullptr) // unreachable when called after parameters_finite() failed
    {
        return where + "non-finite values" + outcome;
    }
    return concat(where, "non-finite gradient in parameter ", describe_parameter(*first), ": ",
                  nonfinite_summary(first->grad_data(), first->size()), " (", affected, " of ", parameters.size(),
                  " gradients are affected; the loss or the input may be non-finite)", outcome);
}

/// What every optimizer keeps beside its hyperparameters and per-parameter state: the
/// parameters, the counts of applied and skipped steps, and what a non-finite value does to a
/// step. `SGD`, `Adam` and `AdamW` derive from it; their `step()` starts with `admit_step`.
template <class T>
class optimizer_base
{
public:
    /// The parameters this optimizer updates.
    const std::vector<parameter<T>>& parameters() const noexcept { return m_parameters; }

    /// What `step` does with a non-finite gradient or parameter.
    xcnn::nonfinite_policy nonfinite_policy() const noexcept { return m_policy; }
    /// Raise (the default) or skip the step on a non-finite gradient or parameter.
    void set_nonfinite_policy(xcnn::nonfinite_policy policy) noexcept { m_policy = policy; }
    /// Number of updates applied so far (skipped and failed steps not included).
    std::uint64_t steps() const noexcept { return m_steps; }
    /// Number of steps skipped under `nonfinite_policy::skip_step`.
    std::uint64_t skipped_steps() const noexcept { return m_skipped; }
    /// Why the last skipped step was skipped (the message `raise` would have thrown); empty if
    /// no step was skipped.
    const std::string& last_skip_reason() const noexcept { return m_skip_reason; }

    /// Sets every gradient to zero. Layers overwrite their gradients in `backward`, so a
    /// training loop does not need this; it exists for code written in PyTorch's idiom.
    void zero_grad()
    {
        for (auto& p : m_parameters)
        {
            std::fill(p.grad_data(), p.grad_data() + p.size(), T(0));
        }
    }

protected:
    explicit optimizer_base(std::vector<parameter<T>> parameters) : m_parameters(std::move(parameters)) {}

    /// The check before an update: true when every parameter and gradient is finite. Otherwise
    /// the step of `optimizer` (its name) is refused before anything changed: under
    /// `nonfinite_policy::raise` a numeric_error names the step and the parameter; under
    /// `skip_step` the step is counted as skipped, its reason kept, and the result is false.
    bool admit_step(const std::string& optimizer)
    {
        if (parameters_finite(m_parameters))
        {
            return true;
        }
        std::string reason = nonfinite_step_message(optimizer, m_steps + m_skipped + 1, m_parameters, m_policy);
        if (m_policy == xcnn::nonfinite_policy::raise)
        {
            throw numeric_error(reason);
        }
        ++m_skipped;
        m_skip_reason = std::move(reason);
        return false;
    }

    std::vector<parameter<T>> m_parameters;
    std::uint64_t m_steps = 0;
    std::uint64_t m_skipped = 0;

private:
    xcnn::nonfinite_policy m_policy = xcnn::nonfinite_policy::raise;
    std::string m_skip_reason;
};

} // namespace detail

} // namespace xcnn

#endif // XCNN_OPTIM_OPTIMIZER_HPP
