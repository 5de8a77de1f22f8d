// Must NOT compile: neighbouring layers of a Sequential that disagree on the tensor rank are a
// compile-time error. The compiler's message names the check and its template arguments,
// xcnn::detail::check_neighbour_ranks<LayerIndex, ProducedRank, ExpectedRank>, here <1, 4, 2>:
// layer 1 (the Dense) expects rank 2 but the Conv2D before it produces rank 4.
//
// Not part of any test executable; tests/CMakeLists.txt runs the compiler on it and expects the
// failure. Variants:
//   (default)                        Conv2D -> Dense:          check_neighbour_ranks<1, 4, 2>
//   -DXCNN_RANK_MISMATCH_AFTER_RELU  Conv2D -> ReLU -> Dense:  check_neighbour_ranks<2, 4, 2>
//                                    (ReLU keeps any rank, so the rank it passes on is still 4)
//   -DXCNN_RANK_MISMATCH_CONTROL     Conv2D -> Flatten -> Dense: compiles (guards against the
//                                    check passing because of an unrelated error)
#include <xcnn/xcnn.hpp>

int main()
{
#if defined(XCNN_RANK_MISMATCH_CONTROL)
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::Flatten<float>{},
                         xcnn::Dense<float>(8 * 28 * 28, 10)};
#elif defined(XCNN_RANK_MISMATCH_AFTER_RELU)
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::ReLU<float>{}, xcnn::Dense<float>(8 * 28 * 28, 10)};
#else
    xcnn::Sequential net{xcnn::Conv2D<float>(1, 8, 3, 1, 1), xcnn::Dense<float>(8 * 28 * 28, 10)};
#endif
    return static_cast<int>(net.size()) == 0;
}
