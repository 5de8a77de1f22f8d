// One SGD step of a tiny CNN must lower the loss: the packaged headers, xtensor and xsimd work
// together. (tests/consumer/common/train_one_step.cpp is the same check for the CMake and
// pkg-config consumers.)
#include <xcnn/xcnn.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iostream>

int main()
{
    xt::xtensor<float, 4> images = xt::zeros<float>({std::size_t(4), std::size_t(1), std::size_t(8), std::size_t(8)});
    xt::xtensor<std::int64_t, 1> labels = {0, 1, 0, 1};
    for (std::size_t i = 0; i < 4; ++i)
    {
        for (std::size_t r = 0; r < 8; ++r)
        {
            for (std::size_t c = 0; c < 8; ++c)
            {
                images(i, 0, r, c) = ((c < 4) == (labels(i) == 0)) ? 1.0f : 0.0f;
            }
        }
    }

    xcnn::Sequential net{xcnn::Conv2D<float>(1, 4, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::MaxPool2D<float>(2),
                         xcnn::Flatten<float>{}, xcnn::Dense<float>(4 * 4 * 4, 2)};
    net.reset_parameters(7u);
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), 0.1f);

    const float before = loss.forward(net.forward(images), labels);
    net.backward(loss.backward());
    sgd.step();
    const float after = loss.forward(net.forward(images), labels);

    std::cout << "xcnn " << XCNN_VERSION_MAJOR << '.' << XCNN_VERSION_MINOR << '.' << XCNN_VERSION_PATCH << ": loss "
              << before << " -> " << after << '\n';
    return std::isfinite(before) && std::isfinite(after) && after < before ? 0 : 1;
}
