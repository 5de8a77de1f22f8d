/// @file
/// A layer's state, declared once: `learnable<T, N>` (a trainable tensor and its gradient) and
/// `persistent<T, N>` (a named non-trainable tensor such as a running mean), and the handles
/// that containers, optimizers and files use to reach them, `parameter<T>` and `buffer<T>`.
///
/// PyTorch's modules call `register_parameter` and `register_buffer`; an xcnn layer holds
/// `learnable` and `persistent` members and lists them in `parameter_slots()` and
/// `buffer_slots()` (see layers/layer.hpp). The tensors live on the heap, owned by the member:
/// moving a layer or a network moves the ownership, not the tensors, so the handles an optimizer
/// holds stay valid after `auto net2 = std::move(net)`. Copying a layer copies its tensors; the
/// handles keep referring to the original.
#ifndef XCNN_CORE_PARAMETER_HPP
#define XCNN_CORE_PARAMETER_HPP

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"
#include "xtensor_shim.hpp"

namespace xcnn
{
namespace detail
{

/// Reads a tensor of any rank behind a `void*`: what lets one handle type refer to tensors of
/// every rank.
template <class T>
struct tensor_accessors
{
    T* (*data)(void*);
    std::size_t (*size)(void*);
    std::vector<std::size_t> (*shape)(void*);
};

template <class T, std::size_t N>
const tensor_accessors<T>& accessors_of_rank()
{
    using tensor = xt::xtensor<T, N>;
    static const tensor_accessors<T> table{[](void* t) { return static_cast<tensor*>(t)->data(); },
                                           [](void* t) { return static_cast<tensor*>(t)->size(); },
                                           [](void* t)
                                           {
                                               const auto& s = static_cast<tensor*>(t)->shape();
                                               return std::vector<std::size_t>(s.begin(), s.end());
                                           }};
    return table;
}

/// What a `parameter` and a `buffer` share: a name, the layer it belongs to, a tensor.
template <class T>
class tensor_handle
{
public:
    /// Scalar type of the tensor.
    using value_type = T;

    /// The name: "weight", "running_mean", or "3.weight" inside a `Sequential`.
    const std::string& name() const noexcept { return m_name; }
    /// Prefixes the name, as a container does for the tensors of its children ("0." + "weight").
    void add_prefix(const std::string& prefix) { m_name = prefix + m_name; }
    /// The layer the tensor belongs to, e.g. "Dense(84, 10)", for messages; set by `Sequential`
    /// (empty for a layer's own handles).
    const std::string& layer() const noexcept { return m_layer; }
    /// Sets the description returned by `layer()`.
    void set_layer(std::string layer) { m_layer = std::move(layer); }

    /// The `size()` values, contiguous in row-major order.
    T* data() const { return m_access->data(m_value); }
    /// Number of elements of the tensor.
    std::size_t size() const { return m_access->size(m_value); }
    /// Shape of the tensor.
    std::vector<std::size_t> shape() const { return m_access->shape(m_value); }
    /// The values as an xtensor expression one may read or assign to.
    auto value() const { return xt::adapt(data(), size(), xt::no_ownership(), shape()); }

protected:
    template <std::size_t N>
    tensor_handle(std::string name, xt::xtensor<T, N>& value)
        : m_name(std::move(name)), m_value(&value), m_access(&accessors_of_rank<T, N>())
    {
    }

    const tensor_accessors<T>& access() const noexcept { return *m_access; }

private:
    std::string m_name;
    std::string m_layer;
    void* m_value;
    const tensor_accessors<T>* m_access;
};

} // namespace detail

/// A handle on a trainable tensor of a layer and the gradient `backward` writes for it, named
/// like the keys of PyTorch's `state_dict` ("weight", "bias"; "3.weight" inside a `Sequential`).
///
/// The handle refers to the containers themselves, not to their buffers: assigning a new tensor
/// of the same shape to `layer.weight()` keeps every handle (and the optimizer holding it) valid.
template <class T>
class parameter : public detail::tensor_handle<T>
{
public:
    /// A handle named `name` on the tensor `value` and its gradient `grad`, of the same shape.
    /// Both containers must outlive the handle.
    template <std::size_t N>
    parameter(std::string name, xt::xtensor<T, N>& value, xt::xtensor<T, N>& grad)
        : detail::tensor_handle<T>(std::move(name), value), m_grad(&grad)
    {
    }

    /// The `size()` gradient values, laid out like `data()`.
    T* grad_data() const { return this->access().data(m_grad); }
    /// The gradient written by the last `backward`.
    auto grad() const { return xt::adapt(grad_data(), this->size(), xt::no_ownership(), this->shape()); }

private:
    void* m_grad;
};

/// A handle on a non-trainable tensor of a layer that is part of its state (BatchNorm's
/// `running_mean`, ...): saved and loaded with the parameters, named like PyTorch's `state_dict`
/// keys ("1.running_mean"), never updated by an optimizer.
template <class T>
class buffer : public detail::tensor_handle<T>
{
public:
    /// A handle named `name` on `value`, which must outlive the handle.
    template <std::size_t N>
    buffer(std::string name, xt::xtensor<T, N>& value) : detail::tensor_handle<T>(std::move(name), value)
    {
    }
};

namespace detail
{

/// A named tensor (and, for a learnable one, its gradient) of a fixed expected shape, on the
/// heap so that handles survive moves of the owner.
template <class T, std::size_t N, bool Gradient>
class owned_tensor
{
public:
    /// The tensor type.
    using tensor_type = xt::xtensor<T, N>;
    /// Its shape.
    using shape_type = std::array<std::size_t, N>;

    /// Not declared: no tensor, listed by no `parameters()`/`buffers()` (an optional bias).
    owned_tensor() = default;
    /// A tensor named `name` of `shape`, zero-filled.
    owned_tensor(std::string name, const shape_type& shape)
        : m_name(std::move(name)), m_shape(shape), m_storage(std::make_unique<storage>())
    {
        m_storage->value = xt::zeros<T>(shape);
        if constexpr (Gradient)
        {
            m_storage->grad = xt::zeros<T>(shape);
        }
    }
    owned_tensor(const owned_tensor& other)
        : m_name(other.m_name), m_shape(other.m_shape),
          m_storage(other.m_storage ? std::make_unique<storage>(*other.m_storage) : nullptr)
    {
    }
    owned_tensor(owned_tensor&&) noexcept = default;
    owned_tensor& operator=(const owned_tensor& other)
    {
        if (this != &other)
        {
            owned_tensor copy(other);
            *this = std::move(copy);
        }
        return *this;
    }
    owned_tensor& operator=(owned_tensor&&) noexcept = default;
    ~owned_tensor() = default;

    /// Whether the tensor exists (false for an absent optional parameter).
    bool declared() const noexcept { return m_storage != nullptr; }
    /// The name it has in `state_dict` ("weight").
    const std::string& name() const noexcept { return m_name; }
    /// The shape it must have.
    const shape_type& expected_shape() const noexcept { return m_shape; }
    /// Number of elements (0 when not declared).
    std::size_t size() const noexcept { return declared() ? m_storage->value.size() : 0; }

    /// The tensor. Assign a tensor of `expected_shape()` to load values.
    tensor_type& value() noexcept { return m_storage->value; }
    /// The tensor, read-only.
    const tensor_type& value() const noexcept { return m_storage->value; }

    /// Throws `shape_error` naming `layer` (anything with a `name()`) if the tensor was assigned
    /// another shape. The name is only built then: layers check on every forward and backward,
    /// and a name longer than the small-string buffer would allocate.
    template <class Layer>
    void check_shape(const Layer& layer) const
    {
        if (declared() && m_storage->value.shape() != m_shape)
        {
            throw shape_error(concat(layer.name(), ": ", m_name, " has shape ",
                                     shape_to_string(m_storage->value.shape()), " but must have shape ",
                                     shape_to_string(m_shape), " (a tensor of another shape was assigned to it)"));
        }
    }

protected:
    struct storage
    {
        tensor_type value;
        tensor_type grad; // empty unless Gradient
    };
    storage& stored() noexcept { return *m_storage; }
    const storage& stored() const noexcept { return *m_storage; }

private:
    std::string m_name;
    shape_type m_shape{};
    std::unique_ptr<storage> m_storage;
};

} // namespace detail

/// A trainable tensor of a layer and its gradient, declared once as a member:
/// `learnable<T, 4> m_weight{"weight", {c_out, c_in, kh, kw}}`. The layer lists it in
/// `parameter_slots()`; `parameters()`, `num_parameters()` and the shape checks follow.
template <class T, std::size_t N>
class learnable : public detail::owned_tensor<T, N, true>
{
    using base = detail::owned_tensor<T, N, true>;

public:
    using base::base;
    /// dLoss/dvalue of the last `backward` (overwritten, not accumulated).
    typename base::tensor_type& grad() noexcept { return this->stored().grad; }
    /// The gradient, read-only.
    const typename base::tensor_type& grad() const noexcept { return this->stored().grad; }
    /// A handle for `parameters()`.
    parameter<T> handle() { return parameter<T>(this->name(), this->value(), grad()); }
};

/// A non-trainable tensor of a layer that belongs to its state (a running mean), declared once
/// as a member: `persistent<T, 1> m_running_mean{"running_mean", {channels}}`. The layer lists
/// it in `buffer_slots()`; `buffers()`, model files, `.npy` export and checkpoints follow.
template <class T, std::size_t N>
class persistent : public detail::owned_tensor<T, N, false>
{
    using base = detail::owned_tensor<T, N, false>;

public:
    using base::base;
    /// A handle for `buffers()`.
    buffer<T> handle() { return buffer<T>(this->name(), this->value()); }
};

} // namespace xcnn

#endif // XCNN_CORE_PARAMETER_HPP
