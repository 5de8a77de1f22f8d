// Must NOT compile: neighbouring layers of a Sequential that disagree on the tensor rank are a
// compile-time error with two messages, one naming the layer's index ("layer 1 cannot take the
// tensor the layer before it produces") and one both ranks with the hint for that case ("the
// layer expects a rank-2 input but the layer before it produces rank 4: a Dense after a
// convolution or pooling layer needs a Flatten between them").
//
// Not part of any test executable; tests/CMakeLists.txt runs the compiler on it and expects the
// failure. Variants:
//   (default)                              Conv2D -> Dense: layer 1, ranks 4 -> 2
//   -DXCNN_RANK_MISMATCH_AFTER_RELU        Conv2D -> ReLU -> Dense: layer 2, ranks 4 -> 2 (ReLU
//                                          keeps any rank, so the rank it passes on is still 4)
//   -DXCNN_RANK_MISMATCH_CONV_AFTER_FLATTEN  Conv2D -> Flatten -> Conv2D: layer 2, ranks 2 -> 4
//   -DXCNN_RANK_MISMATCH_CONTROL           Conv2D -> Flatten -> Dense: compiles (guards against the
//                                          check passing because of an unrelated error)
#include <xcnn/xcnn.hpp>

int main()
{
#if defined(XCNN_RANK_MISMATCH_CONTROL)
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::Flatten<float>{},
                         xcnn::Dense<float>(8 * 28 * 28, 10)};
#elif defined(XCNN_RANK_MISMATCH_CONV_AFTER_FLATTEN)
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::Flatten<float>{}, xcnn::Conv2D<float>(8, 8, 3)};
#elif defined(XCNN_RANK_MISMATCH_AFTER_RELU)
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::Dense<float>(8 * 28 * 28, 10)};
#else
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::Dense<float>(8 * 28 * 28, 10)};
#endif
    return static_cast<int>(net.size()) == 0;
}
