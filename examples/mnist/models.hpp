// The two networks of xcnn-mnist, for 28x28 single-channel images and 10 classes. Layer
// indices (and so the parameter names "0.weight", ...) match the equivalent torch.nn.Sequential;
// tests/fixtures/torch_lenet.py builds the same LeNet in PyTorch.
#ifndef XCNN_EXAMPLES_MNIST_MODELS_HPP
#define XCNN_EXAMPLES_MNIST_MODELS_HPP

#include <xcnn/xcnn.hpp>

namespace mnist_models
{

/// LeNet-5 with ReLU: Conv(1->6, 5, pad 2) - ReLU - MaxPool 2 - Conv(6->16, 5) - ReLU - MaxPool 2 -
/// Flatten - Dense(400->120) - ReLU - Dense(120->84) - ReLU - Dense(84->10). 61,706 parameters.
template <class T = float>
auto make_lenet()
{
    return xcnn::Sequential{xcnn::Conv2D<T>(1, 6, 5, 1, 2),
                            xcnn::ReLU<T>{},
                            xcnn::MaxPool2D<T>(2),
                            xcnn::Conv2D<T>(6, 16, 5),
                            xcnn::ReLU<T>{},
                            xcnn::MaxPool2D<T>(2),
                            xcnn::Flatten<T>{},
                            xcnn::Dense<T>(400, 120),
                            xcnn::ReLU<T>{},
                            xcnn::Dense<T>(120, 84),
                            xcnn::ReLU<T>{},
                            xcnn::Dense<T>(84, 10)};
}

/// The "seed" net: Conv(1->8, 3, pad 1) - ReLU - Conv(8->16, 3, pad 1) - ReLU - Flatten -
/// Dense(12544->10). 126,706 parameters.
template <class T = float>
auto make_seed_net()
{
    return xcnn::Sequential{xcnn::Conv2D<T>(1, 8, 3, 1, 1),
                            xcnn::ReLU<T>{},
                            xcnn::Conv2D<T>(8, 16, 3, 1, 1),
                            xcnn::ReLU<T>{},
                            xcnn::Flatten<T>{},
                            xcnn::Dense<T>(16 * 28 * 28, 10)};
}

} // namespace mnist_models

#endif // XCNN_EXAMPLES_MNIST_MODELS_HPP
