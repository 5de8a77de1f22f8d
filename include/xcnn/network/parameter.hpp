/// @file
/// `xcnn::parameter`: a named handle on a trainable tensor and its gradient.
#ifndef XCNN_NETWORK_PARAMETER_HPP
#define XCNN_NETWORK_PARAMETER_HPP

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "../core/xtensor_shim.hpp"

namespace xcnn
{

/// A trainable tensor of a layer and the gradient `backward` writes for it, named like the
/// keys of PyTorch's `state_dict` ("weight", "bias"; "3.weight" inside a `Sequential`).
///
/// The handle refers to the layer's containers themselves, not to their buffers: assigning a
/// new tensor of the same shape to `layer.weight()` keeps every handle (and the optimizer
/// holding it) valid.
template <class T>
class parameter
{
public:
    /// Scalar type of the tensor.
    using value_type = T;

    /// A handle named `name` on a layer's tensor `value` and its gradient `grad`, of the same
    /// shape. Both containers must outlive the handle.
    template <std::size_t N>
    parameter(std::string name, xt::xtensor<T, N>& value, xt::xtensor<T, N>& grad)
        : m_name(std::move(name)), m_value(&value), m_grad(&grad), m_access(&access<N>())
    {
    }

    /// The name: "weight", "bias", or "3.weight" inside a `Sequential`.
    const std::string& name() const noexcept { return m_name; }
    /// Prefixes the name, as a container does for the parameters of its children ("0." + "weight").
    void add_prefix(const std::string& prefix) { m_name = prefix + m_name; }
    /// The layer the tensor belongs to, e.g. "Dense(84, 10)", for messages; set by `Sequential`
    /// (empty for a layer's own `parameters()`).
    const std::string& layer() const noexcept { return m_layer; }
    /// Sets the description returned by `layer()`.
    void set_layer(std::string layer) { m_layer = std::move(layer); }

    /// The `size()` values, contiguous in row-major order.
    T* data() const { return m_access->data(m_value); }
    /// The `size()` gradient values, laid out like `data()`.
    T* grad_data() const { return m_access->data(m_grad); }
    /// Number of elements of the tensor.
    std::size_t size() const { return m_access->size(m_value); }
    /// Shape of the tensor and of its gradient.
    std::vector<std::size_t> shape() const { return m_access->shape(m_value); }

    /// The parameter's values as an xtensor expression one may read or assign to.
    auto value() const { return xt::adapt(data(), size(), xt::no_ownership(), shape()); }
    /// The gradient written by the last `backward`.
    auto grad() const { return xt::adapt(grad_data(), size(), xt::no_ownership(), shape()); }

private:
    struct accessors
    {
        T* (*data)(void*);
        std::size_t (*size)(void*);
        std::vector<std::size_t> (*shape)(void*);
    };

    template <std::size_t N>
    static const accessors& access()
    {
        using tensor = xt::xtensor<T, N>;
        static const accessors table{[](void* t) { return static_cast<tensor*>(t)->data(); },
                                     [](void* t) { return static_cast<tensor*>(t)->size(); },
                                     [](void* t)
                                     {
                                         const auto& s = static_cast<tensor*>(t)->shape();
                                         return std::vector<std::size_t>(s.begin(), s.end());
                                     }};
        return table;
    }

    std::string m_name;
    std::string m_layer;
    void* m_value;
    void* m_grad;
    const accessors* m_access;
};

} // namespace xcnn

#endif // XCNN_NETWORK_PARAMETER_HPP
