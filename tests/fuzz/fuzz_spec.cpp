// libFuzzer harness for the text form of layer specs (core/layer_spec_text.hpp) and the layers'
// from_spec, what load_network runs on the "xcnn.layers" record of a model file from anywhere.
//
// A malformed text must end in an xcnn::format_error; an accepted one must write back with
// to_string (or be refused by it with a value_error: a text that grows past the length limit) to a
// text that reads as the same spec, bit for bit, and reads again to the same text. Specs whose
// sizes are small are then built through the built-in layers' from_spec and the from_spec of
// xcnn-mnist's networks, which must give a layer describing the same spec or a value_error, and
// through build_network (network/registry.hpp), which must give a network whose own spec builds
// the same network again, or a value_error or shape_error.
// Anything else (another exception, a crash, a sanitizer report, a broken invariant) aborts.
#include "fuzz_check.hpp"

#include "models.hpp"

#include <xcnn/core/layer_spec.hpp>
#include <xcnn/core/layer_spec_text.hpp>
#include <xcnn/network/registry.hpp>
#include <xcnn/xcnn.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace
{

/// Equality that holds NaN equal to itself and tells -0 from 0: what reading back must keep.
bool same(const xcnn::layer_spec& a, const xcnn::layer_spec& b)
{
    if (a.kind != b.kind || a.options.size() != b.options.size() || a.children.size() != b.children.size())
    {
        return false;
    }
    for (std::size_t i = 0; i < a.options.size(); ++i)
    {
        const auto& x = a.options[i].values;
        const auto& y = b.options[i].values;
        if (a.options[i].key != b.options[i].key || x.size() != y.size())
        {
            return false;
        }
        for (std::size_t k = 0; k < x.size(); ++k)
        {
            // A NaN's payload need not survive: any NaN reads back as the quiet NaN.
            if (!(std::isnan(x[k]) && std::isnan(y[k])) && std::memcmp(&x[k], &y[k], sizeof(double)) != 0)
            {
                return false;
            }
        }
    }
    for (std::size_t i = 0; i < a.children.size(); ++i)
    {
        if (!same(a.children[i], b.children[i]))
        {
            return false;
        }
    }
    return true;
}

/// Whether every number of the spec is at most `limit` in magnitude, or not a number: layers
/// built from it stay small (a fuzzed Conv2D of 2^40 channels would only test the allocator).
bool small(const xcnn::layer_spec& s, double limit)
{
    for (const auto& o : s.options)
    {
        for (double v : o.values)
        {
            if (std::fabs(v) > limit)
            {
                return false;
            }
        }
    }
    for (const auto& c : s.children)
    {
        if (!small(c, limit))
        {
            return false;
        }
    }
    return true;
}

/// build_network gives a network whose spec builds a network of the same spec, or refuses.
template <int In, int Out>
void check_build(const xcnn::layer_spec& spec)
{
    try
    {
        const auto net = xcnn::build_network<float, In, Out>(spec);
        const xcnn::layer_spec own = net.spec();
        XCNN_FUZZ_CHECK((xcnn::build_network<float, In, Out>(own).spec() == own),
                        "a built network's spec does not build it again");
    }
    catch (const xcnn::value_error&)
    {
    }
    catch (const xcnn::shape_error&)
    {
    }
}

/// `L::from_spec(spec)` gives a layer describing the same spec (as it reads it back) or a
/// value_error.
template <class L>
void check_from_spec(const xcnn::layer_spec& spec)
{
    try
    {
        const L layer = L::from_spec(spec);
        const xcnn::layer_spec again = layer.spec();
        XCNN_FUZZ_CHECK(again.kind == spec.kind, "from_spec built a layer of another kind");
        XCNN_FUZZ_CHECK(L::from_spec(again).spec() == again, "a layer's own spec does not rebuild it");
    }
    catch (const xcnn::value_error&)
    {
    }
}

void check_layers(const xcnn::layer_spec& spec)
{
    check_from_spec<xcnn::Conv2D<float>>(spec);
    check_from_spec<xcnn::Dense<float>>(spec);
    check_from_spec<xcnn::BatchNorm2D<float>>(spec);
    check_from_spec<xcnn::BatchNorm1D<double>>(spec);
    check_from_spec<xcnn::MaxPool2D<float>>(spec);
    check_from_spec<xcnn::AvgPool2D<double>>(spec);
    check_from_spec<xcnn::GlobalAvgPool2D<float>>(spec);
    check_from_spec<xcnn::Flatten<float>>(spec);
    check_from_spec<xcnn::ReLU<float>>(spec);
    check_from_spec<xcnn::LeakyReLU<float>>(spec);
    check_from_spec<xcnn::GELU<double>>(spec);
    check_from_spec<xcnn::Dropout<float>>(spec);
    check_from_spec<decltype(mnist_models::make_lenet<float>())>(spec);
    check_from_spec<decltype(mnist_models::make_resnet<float>())>(spec);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string text(reinterpret_cast<const char*>(data), size);
    xcnn::layer_spec spec;
    try
    {
        spec = xcnn::parse_layer_spec(text);
    }
    catch (const xcnn::format_error&)
    {
        return 0;
    }
    std::string written;
    try
    {
        written = xcnn::to_string(spec);
    }
    catch (const xcnn::value_error&)
    {
        XCNN_FUZZ_CHECK(text.size() > xcnn::max_spec_text / 2, "to_string refused a short spec it had read");
        return 0;
    }
    const xcnn::layer_spec back = xcnn::parse_layer_spec(written);
    XCNN_FUZZ_CHECK(same(back, spec), "the written text reads as another spec");
    XCNN_FUZZ_CHECK(xcnn::to_string(back) == written, "writing is not stable");
    if (small(spec, 64))
    {
        check_layers(spec);
    }
    if (small(spec, 16))
    {
        check_build<4, 2>(spec);
        check_build<4, 4>(spec);
        check_build<2, 2>(spec);
    }
    return 0;
}
