/// @file
/// What every xcnn optimizer has in common: its state as `xcnn::optimizer_state<T>` (PyTorch's
/// `optimizer.state_dict()`) and the interface checkpoints use to save and restore it, so that
/// io/checkpoint.hpp works with any optimizer and depends on none.
///
/// ## The optimizer contract
///
/// An optimizer `O` over scalars `T` (SGD today; Adam, AdamW and the schedulers next) provides:
///
/// | member | what |
/// |---|---|
/// | `using value_type = T;` | the scalar type of the parameters |
/// | `std::string name() const` | its kind, e.g. "SGD": the `kind` of its state and the `xcnn.optimizer` record of a
/// checkpoint | | `const std::vector<parameter<T>>& parameters() const` | the parameters it updates, in order | |
/// `optimizer_state<T> state_dict() const` | a copy of everything it carries from one step to the next | | `void
/// check_state_dict(const optimizer_state<T>&) const` | throws what `load_state_dict` would throw, changing nothing |
/// | `void load_state_dict(const optimizer_state<T>&)` | restores a state: all checked first, then all or nothing |
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
///   would refuse (a negative learning rate).
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
#ifndef XCNN_OPTIM_OPTIMIZER_HPP
#define XCNN_OPTIM_OPTIMIZER_HPP

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/parameter.hpp"

namespace xcnn
{

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
    const T* scalar(const std::string& name) const { return find(scalars, name); }
    /// The scalar `name`, or nullptr; to change it.
    T* scalar(const std::string& name) { return find(scalars, name); }
    /// The counter `name`, or nullptr.
    const std::uint64_t* counter(const std::string& name) const { return find(counters, name); }
    /// The counter `name`, or nullptr; to change it.
    std::uint64_t* counter(const std::string& name) { return find(counters, name); }

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

private:
    template <class V>
    static V* find(std::vector<std::pair<std::string, V>>& list, const std::string& name)
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
    template <class V>
    static const V* find(const std::vector<std::pair<std::string, V>>& list, const std::string& name)
    {
        return find(const_cast<std::vector<std::pair<std::string, V>>&>(list), name);
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

} // namespace detail

} // namespace xcnn

#endif // XCNN_OPTIM_OPTIMIZER_HPP
