// The networks of xcnn-mnist, for 28x28 single-channel images and 10 classes. Layer
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

/// A 3x3 convolution without bias (BatchNorm follows it), padding 1.
template <class T>
xcnn::Conv2D<T> conv3x3(std::size_t in, std::size_t out, std::size_t stride)
{
    return xcnn::Conv2D<T>(xcnn::Conv2DOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

/// ResNet's basic block from `in` to `out` channels: Conv-BN-ReLU-Conv-BN plus the input, or plus
/// a 1x1 projection with BatchNorm when the shape changes. The ReLU after the sum is the caller's.
template <class T>
auto identity_block(std::size_t channels)
{
    return xcnn::Residual(xcnn::Sequential{conv3x3<T>(channels, channels, 1), xcnn::BatchNorm2D<T>(channels),
                                           xcnn::ReLU<T>{}, conv3x3<T>(channels, channels, 1),
                                           xcnn::BatchNorm2D<T>(channels)});
}

/// The downsampling block: stride 2 and `in` -> `out` channels, with the projection shortcut.
template <class T>
auto projection_block(std::size_t in, std::size_t out)
{
    return xcnn::Residual(xcnn::Sequential{conv3x3<T>(in, out, 2), xcnn::BatchNorm2D<T>(out), xcnn::ReLU<T>{},
                                           conv3x3<T>(out, out, 1), xcnn::BatchNorm2D<T>(out)},
                          xcnn::Sequential{xcnn::Conv2D<T>(xcnn::Conv2DOptions(in, out, 1).stride(2).bias(false)),
                                           xcnn::BatchNorm2D<T>(out)});
}

/// "resnet": a small ResNet for 28x28 images. Conv 32@3x3 - BN - ReLU - MaxPool 2 (14x14) -
/// block 32 - ReLU - block 32->64 stride 2 (7x7) - ReLU - block 64 - ReLU - global average pool -
/// Dense 10. 151,274 parameters. benchmarks/fashion_pytorch.py builds the same network (same
/// state_dict names) with its recipe.
template <class T = float>
auto make_resnet()
{
    return xcnn::Sequential{conv3x3<T>(1, 32, 1),
                            xcnn::BatchNorm2D<T>(32),
                            xcnn::ReLU<T>{},
                            xcnn::MaxPool2D<T>(2),
                            identity_block<T>(32),
                            xcnn::ReLU<T>{},
                            projection_block<T>(32, 64),
                            xcnn::ReLU<T>{},
                            identity_block<T>(64),
                            xcnn::ReLU<T>{},
                            xcnn::GlobalAvgPool2D<T>{},
                            xcnn::Dense<T>(64, 10)};
}

} // namespace mnist_models

#endif // XCNN_EXAMPLES_MNIST_MODELS_HPP
