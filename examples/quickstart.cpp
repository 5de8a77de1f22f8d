// The README's example: a small CNN learns to tell horizontal from vertical bars.
#include <xcnn/xcnn.hpp>

#include <iostream>
#include <random>

int main()
{
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::MaxPool2D<float>(2),
                         xcnn::Flatten<float>{}, xcnn::Dense<float>(8 * 8 * 8, 2)};
    net.reset_parameters(42u);
    std::cout << net.summary({32, 1, 16, 16});

    // A batch of 16x16 images holding one bright horizontal (label 0) or vertical (1) bar.
    std::mt19937 rng(7);
    xt::xtensor<float, 4> images = xt::zeros<float>({32, 1, 16, 16});
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({32});
    for (std::size_t i = 0; i < 32; ++i)
    {
        labels(i) = static_cast<std::int64_t>(i % 2);
        const std::size_t at = rng() % 16;
        for (std::size_t k = 0; k < 16; ++k)
        {
            (labels(i) == 0 ? images(i, 0, at, k) : images(i, 0, k, at)) = 1.0f;
        }
    }

    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> optimizer(net.parameters(), /*lr=*/0.05f, /*momentum=*/0.9f);
    for (int step = 0; step <= 50; ++step)
    {
        const auto& logits = net.forward(images);
        const float value = loss.forward(logits, labels);
        net.backward(loss.backward());
        optimizer.step();
        if (step % 10 == 0)
        {
            std::cout << "step " << step << "  loss " << value << "  accuracy " << xcnn::accuracy(logits, labels)
                      << '\n';
        }
    }
}
