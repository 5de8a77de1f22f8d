/// @file
/// Everything xcnn offers, in one include: `#include <xcnn/xcnn.hpp>`. Not distributed/mpi.hpp,
/// which needs MPI: include it yourself and link `xcnn::mpi` (docs/distributed.md).
#ifndef XCNN_XCNN_HPP
#define XCNN_XCNN_HPP

#include "version.hpp"

#include "core/activation.hpp"
#include "core/error.hpp"
#include "core/gemm.hpp"
#include "core/generator.hpp"
#include "core/layer_spec.hpp"
#include "core/layer_spec_text.hpp"
#include "core/padding.hpp"
#include "core/parameter.hpp"
#include "core/pooling.hpp"
#include "core/tensordot.hpp"
#include "core/windows.hpp"

#include "distributed/sampler.hpp"

#include "layers/activation.hpp"
#include "layers/any_rank.hpp"
#include "layers/avgpool2d.hpp"
#include "layers/batchnorm.hpp"
#include "layers/conv2d.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/flatten.hpp"
#include "layers/gelu.hpp"
#include "layers/global_avgpool2d.hpp"
#include "layers/init.hpp"
#include "layers/layer.hpp"
#include "layers/leaky_relu.hpp"
#include "layers/maxpool2d.hpp"
#include "layers/pool2d.hpp"
#include "layers/relu.hpp"
#include "layers/sigmoid.hpp"
#include "layers/tanh.hpp"

#include "data/loader.hpp"
#include "data/transforms.hpp"

#include "loss/evaluate.hpp"
#include "loss/metrics.hpp"
#include "loss/softmax.hpp"
#include "loss/softmax_cross_entropy.hpp"
#include "network/chain.hpp"
#include "network/network.hpp"
#include "network/parameter.hpp"
#include "network/registry.hpp"
#include "network/residual.hpp"
#include "network/sequential.hpp"
#include "optim/adam.hpp"
#include "optim/clip.hpp"
#include "optim/optimizer.hpp"
#include "optim/schedule.hpp"
#include "optim/sgd.hpp"

#include "io/checkpoint.hpp"
#include "io/gzip.hpp"
#include "io/idx.hpp"
#include "io/load_network.hpp"
#include "io/mnist.hpp"
#include "io/model.hpp"
#include "io/npy.hpp"
#include "io/onnx.hpp"
#include "io/onnx_import.hpp"
#include "io/protobuf.hpp"

#endif // XCNN_XCNN_HPP
