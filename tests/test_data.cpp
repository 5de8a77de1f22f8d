// DataLoader and its transforms: batches in order, every sample exactly once per epoch when
// shuffled, the same sequence of orders from the same seed and another order every epoch,
// drop_last and the last partial batch, resuming an epoch, the transforms against naive
// references (a zero-padded copy cropped at the drawn offsets; reversed rows), their seeded
// reproducibility, and the typed errors. That iterating allocates nothing after the first epoch
// is checked in test_allocations.cpp, whose counting operator new cannot run under the sanitizers.
#include "catch_compat.hpp"

#include "support/require_error.hpp"

#include <xcnn/data/loader.hpp>
#include <xcnn/io/mnist.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <type_traits>
#include <utility>
#include <vector>

namespace
{

using xcnn::DataLoader;
using xcnn::loader_options;
using xcnn_test::require_error;

/// Images (n, c, h, w) whose pixel values name the sample and the position, all nonzero:
/// 1 + sample * 10000 + channel * 1000 + row * 32 + column. Label i % 10.
struct numbered
{
    xt::xtensor<float, 4> images;
    xt::xtensor<std::int64_t, 1> labels;
};

numbered make_numbered(std::size_t n, std::size_t c = 2, std::size_t h = 5, std::size_t w = 7)
{
    numbered d{xt::xtensor<float, 4>(std::array<std::size_t, 4>{n, c, h, w}),
               xt::xtensor<std::int64_t, 1>(std::array<std::size_t, 1>{n})};
    for (std::size_t i = 0; i < n; ++i)
    {
        d.labels(i) = static_cast<std::int64_t>(i % 10);
        for (std::size_t k = 0; k < c; ++k)
        {
            for (std::size_t y = 0; y < h; ++y)
            {
                for (std::size_t x = 0; x < w; ++x)
                {
                    d.images(i, k, y, x) = static_cast<float>(1 + i * 10000 + k * 1000 + y * 32 + x);
                }
            }
        }
    }
    return d;
}

/// The sample a batch row holds, read back from its first pixel (untransformed batches).
std::size_t sample_of(const xt::xtensor<float, 4>& images, std::size_t row)
{
    return static_cast<std::size_t>(images(row, 0, 0, 0) - 1) / 10000;
}

/// The samples of one epoch, batch by batch, checking that each row is a verbatim copy of its
/// sample with its label.
template <class Loader>
std::vector<std::vector<std::size_t>> epoch_samples(Loader& loader, const numbered& d)
{
    std::vector<std::vector<std::size_t>> batches;
    for (const auto& [images, labels] : loader)
    {
        REQUIRE(images.shape()[0] == labels.size());
        std::vector<std::size_t> samples;
        for (std::size_t r = 0; r < labels.size(); ++r)
        {
            const std::size_t s = sample_of(images, r);
            REQUIRE(s < d.labels.size());
            CHECK(labels(r) == d.labels(s));
            CHECK(std::equal(images.data() + r * 70, images.data() + (r + 1) * 70, d.images.data() + s * 70));
            samples.push_back(s);
        }
        batches.push_back(samples);
    }
    return batches;
}

std::vector<std::size_t> flatten(const std::vector<std::vector<std::size_t>>& batches)
{
    std::vector<std::size_t> all;
    for (const auto& b : batches)
    {
        all.insert(all.end(), b.begin(), b.end());
    }
    return all;
}

std::vector<std::size_t> iota(std::size_t n)
{
    std::vector<std::size_t> v(n);
    std::iota(v.begin(), v.end(), std::size_t(0));
    return v;
}

} // namespace

TEST_CASE("DataLoader without shuffling: batches in order, the last one smaller", "[data]")
{
    const numbered d = make_numbered(10);
    DataLoader loader(d.images, d.labels, 3);
    STATIC_REQUIRE(std::is_same<decltype(loader), DataLoader<float, 4>>::value);
    CHECK(loader.size() == 4);
    CHECK(loader.sample_count() == 10);
    CHECK(loader.batch_size() == 3);
    const auto batches = epoch_samples(loader, d);
    CHECK(batches == std::vector<std::vector<std::size_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}});
    CHECK(loader.order() == iota(10));
    // A second epoch is the same.
    CHECK(epoch_samples(loader, d) == batches);
    CHECK(loader.epoch() == 2);
}

TEST_CASE("DataLoader drop_last leaves out the partial batch, and only that", "[data]")
{
    const numbered d = make_numbered(10);
    DataLoader dropping(d.images, d.labels, 3, loader_options{}.dropping_last());
    CHECK(dropping.size() == 3);
    CHECK(epoch_samples(dropping, d) == std::vector<std::vector<std::size_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}});

    SECTION("a batch size that divides N: nothing to drop")
    {
        DataLoader even(d.images, d.labels, 5, loader_options{}.dropping_last());
        CHECK(even.size() == 2);
        CHECK(flatten(epoch_samples(even, d)) == iota(10));
    }
    SECTION("a batch larger than the data set: one batch of N, or none with drop_last")
    {
        DataLoader big(d.images, d.labels, 64);
        CHECK(big.size() == 1);
        CHECK(epoch_samples(big, d) == std::vector<std::vector<std::size_t>>{iota(10)});
        DataLoader none(d.images, d.labels, 64, loader_options{}.dropping_last());
        CHECK(none.size() == 0);
        CHECK(none.begin() == none.end());
    }
    SECTION("drop_last with shuffling drops the last batch of each permutation")
    {
        DataLoader shuffled(d.images, d.labels, 4, loader_options{}.shuffled(3).dropping_last());
        for (int epoch = 0; epoch < 3; ++epoch)
        {
            auto batches = epoch_samples(shuffled, d);
            REQUIRE(batches.size() == 2);
            const auto now = shuffled.order();
            CHECK(flatten(batches) == std::vector<std::size_t>(now.begin(), now.begin() + 8));
        }
    }
}

TEST_CASE("DataLoader shuffling: each sample once per epoch, a new order each epoch, the same orders from "
          "the same seed",
          "[data]")
{
    const numbered d = make_numbered(23);
    const std::size_t batch = GENERATE(1, 4, 5, 23);
    CAPTURE(batch);
    DataLoader a(d.images, d.labels, batch, loader_options{}.shuffled(42));
    DataLoader b(d.images, d.labels, batch, loader_options{}.shuffled(42));
    DataLoader other(d.images, d.labels, batch, loader_options{}.shuffled(43));
    // The documented sequence: the previous order shuffled by std::shuffle with mt19937(seed).
    std::mt19937 rng(42);
    auto expected = iota(23);
    std::vector<std::size_t> previous;
    std::size_t differs_from_other = 0;
    for (int epoch = 0; epoch < 6; ++epoch)
    {
        std::shuffle(expected.begin(), expected.end(), rng);
        const auto batches = epoch_samples(a, d);
        const auto samples = flatten(batches);
        CHECK(samples == expected);
        CHECK(a.order() == expected);
        // Every sample exactly once; every batch full but the last.
        std::vector<std::size_t> sorted = samples;
        std::sort(sorted.begin(), sorted.end());
        CHECK(sorted == iota(23));
        for (std::size_t i = 0; i + 1 < batches.size(); ++i)
        {
            CHECK(batches[i].size() == batch);
        }
        CHECK(batches.size() == (23 + batch - 1) / batch);
        CHECK(samples != previous);
        previous = samples;
        CHECK(flatten(epoch_samples(b, d)) == samples);
        differs_from_other += flatten(epoch_samples(other, d)) != samples ? 1 : 0;
    }
    CHECK(differs_from_other == 6);
}

TEST_CASE("DataLoader reads data sets with images and labels members, and (N, F) rows", "[data]")
{
    SECTION("labelled_images")
    {
        const numbered d = make_numbered(7);
        xcnn::labelled_images<float> set{d.images, d.labels};
        DataLoader loader(set, 3, loader_options{}.shuffled(1));
        STATIC_REQUIRE(std::is_same<decltype(loader), DataLoader<float, 4>>::value);
        DataLoader plain(set, 3);
        STATIC_REQUIRE(std::is_same<decltype(plain), DataLoader<float, 4>>::value);
        CHECK(flatten(epoch_samples(plain, d)) == iota(7));
        auto samples = flatten(epoch_samples(loader, d));
        std::sort(samples.begin(), samples.end());
        CHECK(samples == iota(7));
    }
    SECTION("rows (N, F) of doubles")
    {
        xt::xtensor<double, 2> rows(std::array<std::size_t, 2>{9, 3});
        xt::xtensor<std::int64_t, 1> labels(std::array<std::size_t, 1>{9});
        for (std::size_t i = 0; i < 9; ++i)
        {
            labels(i) = static_cast<std::int64_t>(100 + i);
            for (std::size_t f = 0; f < 3; ++f)
            {
                rows(i, f) = static_cast<double>(i * 3 + f);
            }
        }
        DataLoader loader(rows, labels, 4, loader_options{}.shuffled(9));
        STATIC_REQUIRE(std::is_same<decltype(loader), DataLoader<double, 2>>::value);
        std::vector<std::size_t> seen;
        for (const auto& batch : loader)
        {
            CHECK(batch.images.shape()[1] == 3);
            for (std::size_t r = 0; r < batch.labels.size(); ++r)
            {
                const auto s = static_cast<std::size_t>(batch.labels(r) - 100);
                seen.push_back(s);
                for (std::size_t f = 0; f < 3; ++f)
                {
                    CHECK(batch.images(r, f) == rows(s, f));
                }
            }
        }
        CHECK(seen == loader.order());
        std::sort(seen.begin(), seen.end());
        CHECK(seen == iota(9));
    }
    SECTION("an empty data set has no batches")
    {
        const numbered d = make_numbered(0);
        DataLoader loader(d.images, d.labels, 4, loader_options{}.shuffled(1));
        CHECK(loader.size() == 0);
        CHECK(loader.begin() == loader.end());
    }
}

TEST_CASE("DataLoader resume_epoch continues an epoch from a saved order and generator", "[data]")
{
    const numbered d = make_numbered(20);
    DataLoader straight(d.images, d.labels, 6, loader_options{}.shuffled(5));
    (void)epoch_samples(straight, d);
    // Interrupted after two batches of the second epoch: save the order and the generator.
    auto it = straight.begin();
    CHECK(sample_of(it->images, 0) == straight.order()[0]);
    ++it;
    ++it;
    const auto saved_order = straight.order();
    const std::mt19937 saved_rng = straight.generator();
    std::vector<std::vector<std::size_t>> rest_straight;
    for (; it != straight.end(); ++it)
    {
        std::vector<std::size_t> samples;
        for (std::size_t r = 0; r < it->labels.size(); ++r)
        {
            samples.push_back(sample_of(it->images, r));
        }
        rest_straight.push_back(samples);
    }
    const auto third_straight = epoch_samples(straight, d);

    DataLoader resumed(d.images, d.labels, 6, loader_options{}.shuffled(999));
    resumed.set_order(saved_order);
    resumed.generator() = saved_rng;
    std::vector<std::vector<std::size_t>> rest_resumed;
    for (const auto& batch : resumed.resume_epoch(2))
    {
        std::vector<std::size_t> samples;
        for (std::size_t r = 0; r < batch.labels.size(); ++r)
        {
            samples.push_back(sample_of(batch.images, r));
        }
        rest_resumed.push_back(samples);
    }
    CHECK(rest_resumed == rest_straight);
    CHECK(rest_resumed.size() == 2);
    CHECK(epoch_samples(resumed, d) == third_straight);
    // Resuming at the end gives nothing; past it is an error.
    auto empty = resumed.resume_epoch(resumed.size());
    CHECK(empty.begin() == empty.end());
}

TEST_CASE("DataLoader errors are typed and name the values", "[data][errors]")
{
    const numbered d = make_numbered(10);
    const xt::xtensor<std::int64_t, 1> nine = xt::zeros<std::int64_t>({9});
    require_error<xcnn::value_error>([&] { DataLoader<float, 4> loader(d.images, d.labels, 0); },
                                     {"DataLoader", "batch size must be at least 1, got 0"});
    require_error<xcnn::shape_error>([&] { DataLoader<float, 4> loader(d.images, nine, 4); },
                                     {"DataLoader", "(10, 2, 5, 7)", "(9,)", "disagree on the number of samples"});
    DataLoader loader(d.images, d.labels, 4, loader_options{}.shuffled(1));
    require_error<xcnn::value_error>([&] { loader.set_order({0, 1, 2}); }, {"order of 3 samples", "10 samples"});
    require_error<xcnn::value_error>(
        [&] {
            loader.set_order({0, 1, 2, 3, 4, 5, 6, 7, 8, 8});
        },
        {"not a permutation", "entry 9 is 8", "repeated"});
    require_error<xcnn::value_error>(
        [&] {
            loader.set_order({0, 1, 2, 3, 4, 5, 6, 7, 8, 10});
        },
        {"entry 9 is 10", "out of range"});
    CHECK(loader.order() == iota(10)); // unchanged by the refused orders
    require_error<xcnn::value_error>([&] { (void)loader.resume_epoch(4); },
                                     {"cannot resume at batch 4 of an epoch of 3 batches"});
    require_error<xcnn::value_error>([] { xcnn::RandomCrop crop(std::size_t(-1)); },
                                     {"RandomCrop", "padding must be at most"});
    require_error<xcnn::value_error>([] { xcnn::RandomHorizontalFlip flip(1.5); },
                                     {"RandomHorizontalFlip", "p must be in [0, 1], got 1.5"});
    require_error<xcnn::value_error>([] { xcnn::RandomHorizontalFlip flip(-0.1); }, {"got -0.1"});

    SECTION("a data set resized after the loader was made")
    {
        numbered changing = make_numbered(10);
        DataLoader reader(changing.images, changing.labels, 4);
        changing.images.resize(std::array<std::size_t, 4>{5, 2, 5, 7});
        require_error<xcnn::shape_error>([&] { (void)*reader.begin(); },
                                         {"DataLoader", "data set changed", "(10, 2, 5, 7)", "(5, 2, 5, 7)"});
    }
}

TEST_CASE("DataLoader transforms run in order on each batch, never on the data set", "[data][transforms]")
{
    const numbered d = make_numbered(6);
    const xt::xtensor<float, 4> before = d.images;
    DataLoader loader(d.images, d.labels, 4);
    loader.add_transform([](xt::xtensor<float, 4>& x, std::mt19937&) { x += 1.0f; })
        .add_transform([](xt::xtensor<float, 4>& x, std::mt19937&) { x *= 2.0f; });
    std::size_t rows = 0;
    for (const auto& batch : loader)
    {
        for (std::size_t r = 0; r < batch.labels.size(); ++r, ++rows)
        {
            CHECK(batch.images(r, 1, 2, 3) == 2.0f * (d.images(rows, 1, 2, 3) + 1.0f));
        }
    }
    CHECK(rows == 6);
    CHECK(d.images == before);
    // A batch read twice is transformed once.
    auto it = loader.begin();
    const float first = it->images(0, 0, 0, 0);
    CHECK((*it).images(0, 0, 0, 0) == first);
    CHECK(first == 2.0f * (d.images(0, 0, 0, 0) + 1.0f));

    SECTION("a transform that throws leaves no half-transformed batch behind")
    {
        DataLoader failing(d.images, d.labels, 4);
        int calls = 0;
        failing.add_transform(
            [&](xt::xtensor<float, 4>& x, std::mt19937&)
            {
                x += 1.0f;
                if (++calls == 1)
                {
                    throw xcnn::value_error("transform failed");
                }
            });
        auto it = failing.begin();
        CHECK_THROWS_AS(*it, xcnn::value_error);
        CHECK(it->images(0, 0, 0, 0) == d.images(0, 0, 0, 0) + 1.0f); // gathered again, added to once
        CHECK(calls == 2);
    }
}

namespace
{

/// torchvision's RandomCrop((h, w), padding=p) by its definition: a zero-padded copy, cropped at
/// offsets drawn top first, then left.
xt::xtensor<float, 4> naive_random_crop(const xt::xtensor<float, 4>& x, std::size_t p, std::mt19937& rng)
{
    const auto& s = x.shape();
    xt::xtensor<float, 4> out(s);
    for (std::size_t n = 0; n < s[0]; ++n)
    {
        const std::size_t top = static_cast<std::size_t>(xcnn::uniform_below(rng, 2 * p + 1));
        const std::size_t left = static_cast<std::size_t>(xcnn::uniform_below(rng, 2 * p + 1));
        xt::xtensor<float, 3> padded = xt::zeros<float>({s[1], s[2] + 2 * p, s[3] + 2 * p});
        for (std::size_t c = 0; c < s[1]; ++c)
        {
            for (std::size_t y = 0; y < s[2]; ++y)
            {
                for (std::size_t x_ = 0; x_ < s[3]; ++x_)
                {
                    padded(c, y + p, x_ + p) = x(n, c, y, x_);
                }
            }
        }
        for (std::size_t c = 0; c < s[1]; ++c)
        {
            for (std::size_t y = 0; y < s[2]; ++y)
            {
                for (std::size_t x_ = 0; x_ < s[3]; ++x_)
                {
                    out(n, c, y, x_) = padded(c, y + top, x_ + left);
                }
            }
        }
    }
    return out;
}

/// The shift (dy, dx) with |dy|, |dx| <= p for which out(y, x) = in(y + dy, x + dx) (0 outside)
/// holds for every channel, or none.
bool shifted_by_at_most(const xt::xtensor<float, 4>& in, std::size_t n_in, const xt::xtensor<float, 4>& out,
                        std::size_t n_out, std::ptrdiff_t p,
                        std::set<std::pair<std::ptrdiff_t, std::ptrdiff_t>>& shifts)
{
    const auto& s = in.shape();
    const auto h = static_cast<std::ptrdiff_t>(s[2]), w = static_cast<std::ptrdiff_t>(s[3]);
    for (std::ptrdiff_t dy = -p; dy <= p; ++dy)
    {
        for (std::ptrdiff_t dx = -p; dx <= p; ++dx)
        {
            bool match = true;
            for (std::size_t c = 0; c < s[1] && match; ++c)
            {
                for (std::ptrdiff_t y = 0; y < h && match; ++y)
                {
                    for (std::ptrdiff_t x = 0; x < w && match; ++x)
                    {
                        const std::ptrdiff_t sy = y + dy, sx = x + dx;
                        const float expected =
                            sy >= 0 && sy < h && sx >= 0 && sx < w
                                ? in(n_in, c, static_cast<std::size_t>(sy), static_cast<std::size_t>(sx))
                                : 0.0f;
                        match = out(n_out, c, static_cast<std::size_t>(y), static_cast<std::size_t>(x)) == expected;
                    }
                }
            }
            if (match)
            {
                shifts.insert({dy, dx});
                return true;
            }
        }
    }
    return false;
}

} // namespace

TEST_CASE("RandomCrop equals torchvision's pad-then-crop and shifts each image by at most the padding",
          "[data][transforms]")
{
    const std::size_t padding = GENERATE(0, 1, 2, 3, 6);
    CAPTURE(padding);
    // Odd sizes, a non-square image and (with padding 6) a shift past the whole 5-row image.
    const numbered d = make_numbered(60, 2, 5, 7);
    DataLoader loader(d.images, d.labels, 16, loader_options{}.shuffled(2).transforms_seeded(11));
    loader.add_transform(xcnn::RandomCrop(padding));
    std::mt19937 reference_rng(11);
    std::set<std::pair<std::ptrdiff_t, std::ptrdiff_t>> shifts;
    for (int epoch = 0; epoch < 3; ++epoch)
    {
        auto it = loader.begin();
        const auto order = loader.order();
        for (std::size_t b = 0; it != loader.end(); ++it, ++b)
        {
            const auto& batch = *it;
            // The untransformed batch, from the order.
            xt::xtensor<float, 4> plain(batch.images.shape());
            for (std::size_t r = 0; r < batch.labels.size(); ++r)
            {
                xt::view(plain, r) = xt::view(d.images, order[b * 16 + r]);
            }
            CHECK(batch.images.shape() == plain.shape());
            CHECK(batch.images == naive_random_crop(plain, padding, reference_rng));
            for (std::size_t r = 0; r < batch.labels.size(); ++r)
            {
                CHECK(shifted_by_at_most(plain, r, batch.images, r, static_cast<std::ptrdiff_t>(padding), shifts));
            }
        }
    }
    if (padding == 0)
    {
        CHECK(shifts.size() == 1);
    }
    else if (padding <= 2)
    {
        // 180 images: every one of the (2p + 1)^2 shifts was drawn.
        CHECK(shifts.size() == (2 * padding + 1) * (2 * padding + 1));
    }
}

TEST_CASE("RandomHorizontalFlip mirrors each image with probability p", "[data][transforms]")
{
    const numbered d = make_numbered(200, 3, 4, 5);
    auto mirrored = [&](const xt::xtensor<float, 4>& out, std::size_t r, std::size_t s)
    {
        bool same = true, flipped = true;
        for (std::size_t c = 0; c < 3; ++c)
        {
            for (std::size_t y = 0; y < 4; ++y)
            {
                for (std::size_t x = 0; x < 5; ++x)
                {
                    same = same && out(r, c, y, x) == d.images(s, c, y, x);
                    flipped = flipped && out(r, c, y, x) == d.images(s, c, y, 4 - x);
                }
            }
        }
        return std::pair<bool, bool>{same, flipped};
    };
    for (const double p : {0.0, 1.0, 0.5})
    {
        CAPTURE(p);
        DataLoader loader(d.images, d.labels, 32);
        loader.add_transform(xcnn::RandomHorizontalFlip(p));
        std::size_t flips = 0, rows = 0;
        // The reference: one uniform_unit draw per image, flipped when below p.
        std::mt19937 reference_rng(loader.options().transform_seed);
        for (const auto& batch : loader)
        {
            for (std::size_t r = 0; r < batch.labels.size(); ++r, ++rows)
            {
                const auto [same, flipped] = mirrored(batch.images, r, rows);
                const bool expect_flip = xcnn::uniform_unit(reference_rng) < p;
                CHECK(flipped == expect_flip);
                CHECK(same == !expect_flip);
                flips += flipped ? 1 : 0;
            }
        }
        CHECK(rows == 200);
        if (p == 0.0)
        {
            CHECK(flips == 0);
        }
        else if (p == 1.0)
        {
            CHECK(flips == 200);
        }
        else
        {
            // Binomial(200, 0.5): 100 +- 7; outside [60, 140] has probability below 1e-8.
            CHECK(flips >= 60);
            CHECK(flips <= 140);
        }
    }
}

TEST_CASE("Transforms are reproducible from their seed and leave the shuffling order alone", "[data][transforms]")
{
    const numbered d = make_numbered(50, 1, 6, 6);
    auto make = [&](std::mt19937::result_type transform_seed, bool with_transforms)
    {
        DataLoader<float, 4> loader(d.images, d.labels, 8,
                                    loader_options{}.shuffled(4).transforms_seeded(transform_seed));
        if (with_transforms)
        {
            loader.add_transform(xcnn::RandomCrop(2)).add_transform(xcnn::RandomHorizontalFlip());
        }
        return loader;
    };
    auto run = [](DataLoader<float, 4>& loader)
    {
        std::vector<float> values;
        std::vector<std::size_t> orders;
        for (int epoch = 0; epoch < 2; ++epoch)
        {
            for (const auto& batch : loader)
            {
                values.insert(values.end(), batch.images.begin(), batch.images.end());
            }
            const auto order = loader.order();
            orders.insert(orders.end(), order.begin(), order.end());
        }
        return std::make_pair(values, orders);
    };
    auto a = make(7, true), b = make(7, true), c = make(8, true), plain = make(7, false);
    const auto ra = run(a), rb = run(b), rc = run(c), rplain = run(plain);
    CHECK(ra.first == rb.first);
    CHECK(ra.second == rb.second);
    CHECK(ra.first != rc.first);
    CHECK(ra.second == rc.second);     // the transform seed does not change the order
    CHECK(ra.second == rplain.second); // nor do the transforms
    CHECK(ra.first != rplain.first);
}

TEST_CASE("uniform_below covers its range without bias", "[data][transforms]")
{
    std::mt19937 rng(1);
    std::array<std::size_t, 5> counts{};
    for (int i = 0; i < 50000; ++i)
    {
        const auto v = xcnn::uniform_below(rng, 5);
        REQUIRE(v < 5);
        ++counts[v];
    }
    for (const auto c : counts)
    {
        // 10000 +- 89 each.
        CHECK(c > 9500);
        CHECK(c < 10500);
    }
    CHECK(xcnn::uniform_below(rng, 1) == 0);
    CHECK(xcnn::uniform_below(rng, std::uint64_t(1) << 32) < (std::uint64_t(1) << 32));
    const double u = xcnn::uniform_unit(rng);
    CHECK(u >= 0.0);
    CHECK(u < 1.0);
}
