// libFuzzer harness for the model file reader (io/model.hpp): decode_model, then load_state into
// real networks — the LeNet of examples/mnist/models.hpp and a small float and double network.
//
// Each input is decoded twice: as it is, and "repaired" — its length field and CRC-32 rewritten to
// match — because a mutation almost never keeps the checksum right, and without the repair the
// structure parser behind it would never be reached. A malformed input must end in an xcnn::error
// that leaves every network as it was; an accepted one must load exactly the stored bytes,
// re-encode to a file that decodes to the same records, and agree with the documented layout.
// Anything else (another exception, a crash, a sanitizer report, a broken invariant) aborts.
#include "fuzz_check.hpp"

#include "models.hpp"

#include <xcnn/io/model.hpp>
#include <xcnn/xcnn.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace
{

using bytes = std::vector<unsigned char>;

template <class T>
auto small_net()
{
    return xcnn::Sequential{xcnn::Conv2D<T>(1, 2, 3), xcnn::ReLU<T>{}, xcnn::MaxPool2D<T>(2), xcnn::Flatten<T>{},
                            xcnn::Dense<T>(2 * 3 * 3, 3)};
}

template <class Net>
bytes parameter_bytes(Net& net)
{
    bytes out;
    for (const auto& p : net.parameters())
    {
        const auto* b = reinterpret_cast<const unsigned char*>(p.data());
        out.insert(out.end(), b, b + p.size() * sizeof(*p.data()));
    }
    return out;
}

/// load_state either loads exactly the file's parameter bytes or throws and changes nothing.
template <class Net>
void check_load(Net& net, const xcnn::io::model_file& file)
{
    const bytes before = parameter_bytes(net);
    try
    {
        xcnn::load_state(net, file, "fuzz");
    }
    catch (const xcnn::error&)
    {
        XCNN_FUZZ_CHECK(parameter_bytes(net) == before, "a failed load_state changed the network");
        return;
    }
    const auto stored = file.of_kind(xcnn::io::record_kind::parameter);
    const auto params = net.parameters();
    XCNN_FUZZ_CHECK(stored.size() == params.size(), "loaded a file with another parameter count");
    bytes expected;
    for (std::size_t i = 0; i < stored.size(); ++i)
    {
        XCNN_FUZZ_CHECK(stored[i]->name == params[i].name(), "loaded a tensor of another name");
        expected.insert(expected.end(), stored[i]->data.begin(), stored[i]->data.end());
    }
    // The file stores little-endian and the hosts xcnn is fuzzed on are little-endian.
    XCNN_FUZZ_CHECK(parameter_bytes(net) == expected, "loaded values differ from the file's bytes");
}

bool same_records(const xcnn::io::model_file& a, const xcnn::io::model_file& b)
{
    if (a.scalar_type != b.scalar_type || a.records.size() != b.records.size())
    {
        return false;
    }
    for (std::size_t i = 0; i < a.records.size(); ++i)
    {
        const auto& x = a.records[i];
        const auto& y = b.records[i];
        if (x.name != y.name || x.kind != y.kind || x.type != y.type || x.shape != y.shape || x.data != y.data)
        {
            return false;
        }
    }
    return true;
}

/// Invariants of a file decode_model accepted.
void check_decoded(const xcnn::io::model_file& file, const bytes& input)
{
    using xcnn::io::record_kind;
    std::set<std::pair<int, std::string>> names;
    std::size_t record_bytes = 0;
    for (const auto& r : file.records)
    {
        record_bytes += 8 + 8 + r.name.size() + 8 * r.shape.size() + r.data.size();
        const bool known = r.kind == record_kind::parameter || r.kind == record_kind::state ||
                           r.kind == record_kind::metadata || r.kind == record_kind::buffer;
        if (!known)
        {
            continue;
        }
        const std::size_t element = xcnn::io::dtype_size(r.type);
        XCNN_FUZZ_CHECK(element != 0, "a record of a known kind with an unknown dtype");
        XCNN_FUZZ_CHECK(r.shape.size() <= 32, "rank over 32");
        std::size_t elements = 1;
        for (auto d : r.shape)
        {
            elements *= static_cast<std::size_t>(d); // no overflow: the data is in memory
        }
        XCNN_FUZZ_CHECK(elements * element == r.data.size(), "data length does not match dtype and shape");
        XCNN_FUZZ_CHECK(names.insert({static_cast<int>(r.kind), r.name}).second, "duplicate name within a kind");
        XCNN_FUZZ_CHECK(r.size() == elements, "tensor_record::size");
        if (r.type == static_cast<std::uint8_t>(xcnn::io::dtype::f32))
        {
            XCNN_FUZZ_CHECK(r.values<float>().size() == elements, "values<float>");
        }
        else if (r.type == static_cast<std::uint8_t>(xcnn::io::dtype::i64))
        {
            XCNN_FUZZ_CHECK(r.values<std::int64_t>().size() == elements, "values<int64>");
        }
        else if (r.type == static_cast<std::uint8_t>(xcnn::io::dtype::u8))
        {
            XCNN_FUZZ_CHECK(r.as_text().size() == elements, "as_text");
        }
    }
    const std::uint32_t header_size = xcnn::io::detail::load_le<std::uint32_t>(input.data() + 12);
    XCNN_FUZZ_CHECK(header_size + record_bytes + 4 == input.size(), "records do not fill the file");

    // Re-encoding refuses what it cannot write consistently (value_error); what it writes must
    // decode to the same records.
    bytes again;
    try
    {
        again = xcnn::io::encode_model(file);
    }
    catch (const xcnn::value_error&)
    {
        return;
    }
    XCNN_FUZZ_CHECK(same_records(xcnn::io::decode_model(again, "re-encoded"), file), "re-encoded file differs");
}

void run(const bytes& input)
{
    static auto lenet = mnist_models::make_lenet<float>();
    static auto small = small_net<float>();
    static auto small_double = small_net<double>();

    xcnn::io::model_file file;
    try
    {
        file = xcnn::io::decode_model(input, "fuzz");
    }
    catch (const xcnn::error&)
    {
        return;
    }
    check_decoded(file, input);
    check_load(lenet, file);
    check_load(small, file);
    check_load(small_double, file);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const bytes input(data, data + size);
    run(input);
    if (size >= 44)
    {
        bytes repaired = input;
        xcnn::io::detail::store_le(repaired.data() + 16, static_cast<std::uint64_t>(size));
        xcnn::io::detail::store_le(repaired.data() + size - 4, xcnn::io::detail::crc32(repaired.data(), size - 4));
        run(repaired);
    }
    return 0;
}
