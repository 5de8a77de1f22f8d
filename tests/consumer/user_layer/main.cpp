// Consumer test of a layer and an activation written outside xcnn (channel_scale.hpp,
// softsign.hpp; docs/adding-a-layer.md explains them), built against the installed package by
// tests/consumer/run.sh. It trains them inside a Sequential with Conv2D and Dense, and checks
// what xcnn does with the layer's parameter and buffer: SGD updates the parameter, training
// updates the buffer, xcnn::save/xcnn::load restore both, xcnn::load_network rebuilds the
// network from the file with a registry that knows the user's kinds, xcnn::export_npy writes both. It
// also checks the layer's gradients against finite differences, as a user's own tests would.
// Exits non-zero, with a message, on the first failure.
#include "channel_scale.hpp"
#include "softsign.hpp"

#include <xcnn/xcnn.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace
{

int failures = 0;

void check(bool ok, const std::string& what)
{
    if (!ok)
    {
        std::cerr << "FAIL: " << what << '\n';
        ++failures;
    }
}

auto make_net()
{
    return xcnn::Sequential{
        xcnn::Conv2D<float>(1, 4, 3, 1, 1), my::ChannelScale<float>(4), my::Softsign<float>{},
        xcnn::MaxPool2D<float>(2),          xcnn::Flatten<float>{},     xcnn::Dense<float>(4 * 4 * 4, 2)};
}

/// Every value of every parameter and buffer of `net`, in order.
template <class Net>
std::vector<float> state_of(Net& net)
{
    std::vector<float> out;
    for (const auto& p : net.parameters())
    {
        out.insert(out.end(), p.data(), p.data() + p.size());
    }
    for (const auto& b : net.buffers())
    {
        out.insert(out.end(), b.data(), b.data() + b.size());
    }
    return out;
}

/// The largest relative error between the gradients `backward` gives for the input and the
/// weight of a ChannelScale<double> and central differences of the loss sum(y * r).
double gradient_check()
{
    my::ChannelScale<double> layer(3);
    layer.weight() = xt::xtensor<double, 1>{0.5, -1.5, 2.0};
    xt::xtensor<double, 4> x = xt::zeros<double>({std::size_t(2), std::size_t(3), std::size_t(4), std::size_t(5)});
    xt::xtensor<double, 4> r = x;
    for (std::size_t i = 0; i < x.size(); ++i)
    {
        x.data()[i] = std::sin(0.7 * static_cast<double>(i));
        r.data()[i] = std::cos(0.3 * static_cast<double>(i));
    }
    auto loss = [&]
    {
        return xt::sum(layer.predict(x) * r)();
    };
    // The analytic gradients: dX from backward, dweight from the parameter's handle.
    (void)layer.forward(x);
    const xt::xtensor<double, 4> dx = layer.backward(r);
    const xcnn::parameter<double> weight = layer.parameters()[0];
    const xt::xtensor<double, 1> dweight = weight.grad();
    // (loss(v + eps) - loss(v - eps)) / (2 eps) for each value v of `data`, compared with `grad`.
    auto worst = [&](double* data, std::size_t size, const double* grad)
    {
        const double eps = 1e-6;
        double diff = 0, norm = 0;
        for (std::size_t i = 0; i < size; ++i)
        {
            const double saved = data[i];
            data[i] = saved + eps;
            const double plus = loss();
            data[i] = saved - eps;
            const double minus = loss();
            data[i] = saved;
            const double numeric = (plus - minus) / (2 * eps);
            diff += (numeric - grad[i]) * (numeric - grad[i]);
            norm += grad[i] * grad[i];
        }
        return std::sqrt(diff / norm);
    };
    return std::max(worst(x.data(), x.size(), dx.data()), worst(weight.data(), weight.size(), dweight.data()));
}

} // namespace

int main()
{
    // The layer's gradients first: everything else relies on them.
    const double gradient_error = gradient_check();
    std::cout << "ChannelScale gradients: relative error " << gradient_error << " against finite differences\n";
    check(gradient_error < 1e-6, "ChannelScale's gradients match finite differences");

    // Eight 8x8 images: a bright left half (class 0) or a bright right half (class 1).
    const std::size_t n = 8;
    xt::xtensor<float, 4> images = xt::zeros<float>({n, std::size_t(1), std::size_t(8), std::size_t(8)});
    xt::xtensor<std::int64_t, 1> labels = xt::zeros<std::int64_t>({n});
    for (std::size_t i = 0; i < n; ++i)
    {
        labels(i) = static_cast<std::int64_t>(i % 2);
        for (std::size_t r = 0; r < 8; ++r)
        {
            for (std::size_t c = 0; c < 8; ++c)
            {
                images(i, 0, r, c) = ((c < 4) == (labels(i) == 0)) ? 1.0f : 0.1f * static_cast<float>(r % 3);
            }
        }
    }

    auto net = make_net();
    net.reset_parameters(7u);
    const auto parameters = net.parameters();
    const auto buffers = net.buffers();
    check(parameters.size() == 5 && parameters[2].name() == "1.weight", "the user layer's parameter is \"1.weight\"");
    check(buffers.size() == 1 && buffers[0].name() == "1.running_mean_abs",
          "the network's one buffer is \"1.running_mean_abs\"");
    check(net.num_parameters() == (4 * 9 + 4) + 4 + (64 * 2 + 2), "num_parameters counts the user layer's gains");
    std::cout << net.summary({n, 1, 8, 8});
    if (failures > 0)
    {
        return 1;
    }

    const xt::xtensor<float, 1> weight_before = net.get<1>().weight();
    const xt::xtensor<float, 1> buffer_before = net.get<1>().running_mean_abs();
    xcnn::SoftmaxCrossEntropy<float> loss;
    xcnn::SGD<float> sgd(net.parameters(), /*lr=*/0.1f);
    float first = 0, last = 0;
    for (int step = 0; step < 10; ++step)
    {
        last = loss.forward(net.forward(images), labels);
        first = step == 0 ? last : first;
        net.backward(loss.backward());
        sgd.step();
    }
    const float after = loss.forward(net.predict(images), labels);
    std::cout << "loss: first step " << first << ", last step " << last << ", after training " << after << '\n';
    check(std::isfinite(first) && std::isfinite(after), "the loss is finite");
    check(after < first, "ten SGD steps lowered the loss");
    check(net.get<1>().weight() != weight_before, "SGD changed the user layer's weight");
    const auto& running = net.get<1>().running_mean_abs();
    check(running != buffer_before, "training forwards changed the buffer");
    bool positive = true;
    for (float v : running)
    {
        positive = positive && v > 0.0f && std::isfinite(v);
    }
    check(positive, "every channel's running mean |x| is positive and finite");

    // predict leaves the statistics alone.
    const xt::xtensor<float, 1> buffer_trained = running;
    (void)net.predict(images);
    check(net.get<1>().running_mean_abs() == buffer_trained, "predict left the buffer unchanged");

    // Model file: a fresh network gets the parameters and the buffer back.
    const std::string model = "user_layer.xcnn";
    xcnn::save(net, model);
    auto loaded = make_net();
    check(state_of(loaded) != state_of(net), "a fresh network differs from the trained one before load");
    xcnn::load(loaded, model);
    check(state_of(loaded) == state_of(net), "xcnn::load restored every parameter and the buffer");
    check(loaded.get<1>().running_mean_abs() == buffer_trained, "xcnn::load restored running_mean_abs");
    check(loaded.predict(images) == net.predict(images), "the loaded network predicts what the trained one does");

    // NumPy export: one file per state_dict key, the buffer's included; import gives them back.
    const std::string dir = "user_layer_npy";
    std::filesystem::remove_all(dir);
    xcnn::export_npy(net, dir);
    for (const char* key : {"0.weight", "0.bias", "1.weight", "1.running_mean_abs", "5.weight", "5.bias"})
    {
        check(std::filesystem::is_regular_file(dir + "/" + key + ".npy"), std::string("export_npy wrote ") + key);
    }
    auto imported = make_net();
    xcnn::import_npy(imported, dir);
    check(state_of(imported) == state_of(net), "import_npy restored every parameter and the buffer");

    // The architecture: the file also records each layer's kind and options, so load_network
    // rebuilds the network without make_net(), from a registry that knows the user's kinds.
    xcnn::layer_registry<float> registry;
    registry.add<my::ChannelScale<float>>().add<my::Softsign<float>>();
    auto rebuilt = xcnn::load_network<float>(model, registry);
    check(rebuilt.spec() == net.spec(), "xcnn::load_network rebuilt the layers the file describes");
    check(rebuilt.predict(images) == net.predict(images), "the rebuilt network predicts what the trained one does");

    if (failures > 0)
    {
        std::cerr << failures << " check(s) failed\n";
        return 1;
    }
    std::cout << "OK\n";
    return 0;
}
