// Helper program for the ONNX export tests (never installed):
//
//   xcnn_onnx_test_tool DIR
//       exports LeNet, the BatchNorm ResNet and the layer zoo of tests/support/onnx_models.hpp
//       (float; the zoo also in double) with xcnn::save_onnx to DIR/<name>.onnx, with an input
//       batch DIR/<name>.input.npy and xcnn's predict for it, DIR/<name>.output.npy, for
//       tests/fixtures/onnx_check.py (ONNX's checker) and onnx_ort_parity.js (ONNX Runtime).
#include "support/onnx_models.hpp"

#include <xcnn/io/npy.hpp>
#include <xcnn/io/onnx.hpp>
#include <xcnn/xcnn.hpp>

#include <exception>
#include <iostream>
#include <string>
#include <vector>

namespace
{

template <class Net>
void export_case(Net net, const std::string& dir, const std::string& name, const std::vector<std::size_t>& shape,
                 unsigned seed)
{
    using T = typename Net::value_type;
    onnx_models::randomize(net, seed);
    const auto x = onnx_models::random_input<T>(shape, seed + 1);
    const auto y = xt::xtensor<T, 2>(net.predict(x));
    xcnn::save_onnx(net, dir + "/" + name + ".onnx", shape);
    xcnn::save_npy(dir + "/" + name + ".input.npy", x);
    xcnn::save_npy(dir + "/" + name + ".output.npy", y);
    std::cout << "wrote " << dir << "/" << name << ".onnx\n";
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::cerr << "usage: xcnn_onnx_test_tool DIR\n";
        return 2;
    }
    try
    {
        const std::string dir = argv[1];
        std::filesystem::create_directories(dir);
        export_case(mnist_models::make_lenet<float>(), dir, "lenet", {4, 1, 28, 28}, 11);
        export_case(mnist_models::make_resnet<float>(), dir, "resnet", {3, 1, 28, 28}, 12);
        export_case(onnx_models::make_zoo<float>(), dir, "zoo", onnx_models::zoo_input_shape(5), 13);
        export_case(onnx_models::make_zoo<double>(), dir, "zoo_double", onnx_models::zoo_input_shape(2), 14);
        return 0;
    }
    catch (const std::exception& e)
    {
        std::cerr << "xcnn_onnx_test_tool: " << e.what() << '\n';
        return 1;
    }
}
