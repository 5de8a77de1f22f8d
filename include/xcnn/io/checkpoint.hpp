/// @file
/// Training checkpoints: `xcnn::save_checkpoint` / `xcnn::load_checkpoint` keep everything a run
/// needs to continue exactly where it stopped — the network's parameters and buffers, the
/// generators of its stochastic layers (`Dropout`'s masks, core/generator.hpp), the
/// optimizer's state (learning rate, momentum buffers, step counts), optionally the learning-rate
/// schedule's state (optim/schedule.hpp) and the loop's progress
/// (epoch, step, the state of the random generator, the sample order) — in one model file
/// (docs/model-format.md). Any optimizer satisfying the contract of optim/optimizer.hpp works:
/// the file stores its `optimizer_state` generically.
///
/// A checkpoint is a version-1 model file with extra `state` records, so `xcnn::load` reads its
/// network part like any model file. Writing is atomic like `xcnn::save`, refuses non-finite
/// values (a diverged run must not replace the last good checkpoint) and removes the temporary
/// files that writers killed mid-save left next to the target. Loading checks the whole file
/// against the network, the optimizer and the generator before it changes any of them.
#ifndef XCNN_IO_CHECKPOINT_HPP
#define XCNN_IO_CHECKPOINT_HPP

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(_WIN32)
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>
#endif

#include "../core/error.hpp"
#include "../core/finite.hpp"
#include "../core/generator.hpp"
#include "../optim/optimizer.hpp"
#include "binary.hpp"
#include "model.hpp"

namespace xcnn
{

/// Where a training loop stands, as a checkpoint stores it. The fields are the loop's to define;
/// the conventions below are the ones xcnn-mnist follows.
struct training_progress
{
    std::uint64_t epoch = 0;         ///< epochs completed
    std::uint64_t step_in_epoch = 0; ///< steps done in the epoch after those (0 at an epoch boundary)
    std::uint64_t global_step = 0;   ///< steps done since training started
    /// State of the generator that orders the samples, from `rng_state` (empty: none stored).
    std::string rng;
    /// The sample order of the current epoch (empty: none stored).
    std::vector<std::uint64_t> order;
    /// Other numbers of the loop: running sums, best scores, ...
    std::map<std::string, double> scalars;
    /// Free text, e.g. the run's settings, for the loop to compare when it resumes.
    std::string description;
};

/// The state of a standard random engine (`std::mt19937`, `std::mt19937_64`, ...) as the text
/// its `operator<<` writes.
template <class Engine>
std::string rng_state(const Engine& rng)
{
    std::ostringstream out;
    out << rng;
    return out.str();
}

/// Sets `rng` to a state written by `rng_state` for the same engine type.
/// @throws value_error if `text` is not such a state (another engine type, damaged text);
/// `rng` is unchanged then.
template <class Engine>
void set_rng_state(Engine& rng, const std::string& text)
{
    std::istringstream in(text);
    Engine parsed;
    in >> parsed;
    // Reading must use all of the text: an mt19937_64 state holds 312 numbers, and an
    // mt19937_64 would accept the first 312 of an mt19937's 624 without complaint.
    if (in.fail() || !(in >> std::ws).eof())
    {
        throw value_error(detail::concat("set_rng_state: the text (", text.size(),
                                         " characters) is not a state of this random engine type"));
    }
    rng = parsed;
}

/// Checks that every parameter and buffer of `net` is finite; `what` starts the message.
/// @throws numeric_error naming the first parameter or buffer (and its layer) holding a NaN or
/// infinity, how many elements are not finite and the first of them.
template <class Net>
void require_finite(Net& net, const std::string& what)
{
    for (const auto& p : net.parameters())
    {
        if (!detail::all_finite(p.data(), p.size()))
        {
            throw numeric_error(
                detail::concat(what, ": parameter ", detail::describe_parameter(p),
                               " holds non-finite values: ", detail::nonfinite_summary(p.data(), p.size())));
        }
    }
    if constexpr (io::detail::has_buffers<Net>::value)
    {
        for (const auto& b : net.buffers())
        {
            if (!detail::all_finite(b.data(), b.size()))
            {
                throw numeric_error(
                    detail::concat(what, ": buffer ", detail::describe_parameter(b),
                                   " holds non-finite values: ", detail::nonfinite_summary(b.data(), b.size())));
            }
        }
    }
}

namespace io
{

/// Removes the temporary files that writers of `path` (`xcnn::save`, `save_checkpoint`) left
/// behind when they were killed mid-write: files `.NAME.tmp-PID-HEX` next to `path` (NAME its
/// file name, HEX 16 hexadecimal digits) whose process PID no longer exists. Files of running
/// processes, of this process and of processes this one may not signal are kept, so a concurrent
/// writer on this machine is never disturbed; one on another machine sharing the directory looks
/// dead. Returns how many files were removed; errors are ignored (nothing depends on the
/// cleanup). No-op on Windows.
inline std::size_t remove_stale_temporaries(const std::string& path)
{
    std::size_t removed = 0;
#if !defined(_WIN32)
    namespace fs = std::filesystem;
    const fs::path target(path);
    const std::string prefix = "." + target.filename().string() + ".tmp-";
    const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    std::vector<fs::path> stale;
    for (; !ec && it != end; it.increment(ec))
    {
        const std::string name = it->path().filename().string();
        if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0)
        {
            continue;
        }
        // The rest must be exactly "<pid>-<16 hex digits>", as detail::temporary_sibling makes it.
        const std::string rest = name.substr(prefix.size());
        const auto dash = rest.find('-');
        if (dash == 0 || dash == std::string::npos || dash > 9 || rest.size() != dash + 17)
        {
            continue;
        }
        bool well_formed = true;
        for (std::size_t i = 0; i < rest.size(); ++i)
        {
            const auto c = static_cast<unsigned char>(rest[i]);
            well_formed &= i < dash ? std::isdigit(c) != 0 : i == dash || std::isxdigit(c) != 0;
        }
        if (!well_formed)
        {
            continue;
        }
        const long pid = std::stol(rest.substr(0, dash));
        if (pid <= 0 || pid == static_cast<long>(::getpid()))
        {
            continue;
        }
        if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        {
            stale.push_back(it->path());
        }
    }
    for (const auto& file : stale)
    {
        std::error_code ignored;
        removed += fs::remove(file, ignored) ? 1 : 0;
    }
#else
    (void)path;
#endif
    return removed;
}

namespace detail
{

inline constexpr const char* checkpoint_optimizer_key = "xcnn.optimizer";

/// The prefix of the records of the network's generators: "generator.3.rng".
inline constexpr const char* checkpoint_generator_prefix = "generator.";

/// The generators of `net` (`Sequential::generators()`), or none for a network without any.
template <class Net>
std::vector<generator_handle> generators_of(Net& net)
{
    if constexpr (xcnn::detail::has_generators<Net>::value)
    {
        return net.generators();
    }
    else
    {
        (void)net;
        return {};
    }
}

/// The prefix of the records of the optimizer's state: "optimizer.lr", "optimizer.steps", ...
inline constexpr const char* checkpoint_optimizer_prefix = "optimizer.";

inline constexpr const char* checkpoint_schedule_key = "xcnn.schedule";

/// The prefix of the records of the schedule's state: "schedule.last_lr", "schedule.steps", ...
inline constexpr const char* checkpoint_schedule_prefix = "schedule.";

/// "optimizer.3.weight.momentum_buffer": the record of the tensor `name` of `parameter`.
inline std::string optimizer_tensor_key(const std::string& parameter, const std::string& name)
{
    return checkpoint_optimizer_prefix + parameter + "." + name;
}

/// Reads the records of a checkpoint, with errors naming the file.
class checkpoint_reader
{
public:
    checkpoint_reader(const model_file& file, const std::string& source) : m_file(file), m_source(source) {}

    std::string where() const { return concat("load_checkpoint ", quoted(m_source), ": "); }

    const tensor_record& get(const std::string& name) const
    {
        const tensor_record* r = m_file.find(name, record_kind::state);
        if (r == nullptr)
        {
            throw format_error(concat(where(), "the checkpoint has no state record '", name, "'"));
        }
        return *r;
    }

    /// A record of `T` elements of rank `rank` (-1: any).
    template <class T>
    std::vector<T> values(const tensor_record& r, int rank) const
    {
        if (r.type != static_cast<std::uint8_t>(dtype_of<T>()) || (rank >= 0 && r.shape.size() != std::size_t(rank)))
        {
            throw format_error(concat(where(), "state record '", r.name, "' holds ", dtype_name(r.type), " of shape ",
                                      xcnn::detail::shape_to_string(r.shape), ", expected ",
                                      dtype_name(static_cast<std::uint8_t>(dtype_of<T>())),
                                      rank == 0 ? " scalar" : " vector"));
        }
        return r.values<T>();
    }

    template <class T>
    T scalar(const std::string& name) const
    {
        return values<T>(get(name), 0).front();
    }

    std::string text(const std::string& name) const
    {
        const auto bytes = values<std::uint8_t>(get(name), 1);
        return std::string(bytes.begin(), bytes.end());
    }

private:
    const model_file& m_file;
    const std::string& m_source;
};

template <class T>
tensor_record scalar_record(const std::string& name, T value)
{
    return tensor_record::from(name, record_kind::state, &value, std::vector<std::size_t>{});
}

inline tensor_record text_state_record(const std::string& name, const std::string& text)
{
    return tensor_record::from(name, record_kind::state, reinterpret_cast<const std::uint8_t*>(text.data()),
                               std::vector<std::size_t>{text.size()});
}

/// Checks that `optimizer` updates exactly the parameters of `net` (the same tensors, in order).
template <class Net, class Optimizer>
void check_optimizer_of(Net& net, const Optimizer& optimizer, const std::string& where)
{
    const auto params = net.parameters();
    const auto& held = optimizer.parameters();
    if (held.size() != params.size())
    {
        throw value_error(concat(where, "the optimizer updates ", held.size(), " tensors, the network has ",
                                 params.size(), " parameters: it was not built from this network's parameters()"));
    }
    for (std::size_t i = 0; i < params.size(); ++i)
    {
        if (held[i].data() != params[i].data())
        {
            throw value_error(concat(where, "the optimizer's tensor ", i, " ('", held[i].name(),
                                     "') is not the network's parameter '", params[i].name(),
                                     "': the optimizer was not built from this network's parameters()"));
        }
    }
}

/// The parameter of `optimizer` named `name`, or nullptr.
template <class Optimizer>
const auto* parameter_named(const Optimizer& optimizer, const std::string& name)
{
    for (const auto& p : optimizer.parameters())
    {
        if (p.name() == name)
        {
            return &p;
        }
    }
    return static_cast<decltype(&optimizer.parameters().front())>(nullptr);
}

/// Stands for "no schedule" in the functions that take one optionally.
struct no_schedule
{
};

/// Checks that `schedule` drives `optimizer`.
template <class Schedule, class Optimizer>
void check_schedule_of(const Schedule& schedule, const Optimizer& optimizer, const std::string& where)
{
    static_assert(is_schedule<Schedule>::value,
                  "xcnn checkpoints: the schedule must satisfy the schedule contract of xcnn/optim/optimizer.hpp");
    static_assert(std::is_same<typename Schedule::optimizer_type, Optimizer>::value,
                  "xcnn checkpoints: the schedule must drive an optimizer of the checkpoint's optimizer type");
    if (&schedule.optimizer() != &optimizer)
    {
        throw value_error(concat(where, "the ", schedule.name(), " schedule drives another ", optimizer.name(),
                                 " optimizer than the one given"));
    }
}

/// The schedule state stored in `file` for `schedule`: every "schedule.NAME" record, float64 a
/// scalar and uint64 a counter, those `schedule.state_dict()` names first in its order.
template <class Schedule>
schedule_state read_schedule_state(const model_file& file, const checkpoint_reader& read, const Schedule& schedule)
{
    const std::string prefix = checkpoint_schedule_prefix;
    const schedule_state current = schedule.state_dict();
    schedule_state state;
    state.kind = current.kind;
    std::set<std::string> named;
    for (const auto& entry : current.scalars)
    {
        if (file.find(prefix + entry.first, record_kind::state) != nullptr)
        {
            state.scalars.emplace_back(entry.first, read.scalar<double>(prefix + entry.first));
            named.insert(prefix + entry.first);
        }
    }
    for (const auto& entry : current.counters)
    {
        if (file.find(prefix + entry.first, record_kind::state) != nullptr)
        {
            state.counters.emplace_back(entry.first, read.scalar<std::uint64_t>(prefix + entry.first));
            named.insert(prefix + entry.first);
        }
    }
    for (const auto* r : file.of_kind(record_kind::state))
    {
        if (r->name.rfind(prefix, 0) != 0 || named.count(r->name) != 0)
        {
            continue;
        }
        const std::string name = r->name.substr(prefix.size());
        if (r->shape.empty() && r->type == static_cast<std::uint8_t>(dtype::f64))
        {
            state.scalars.emplace_back(name, read.scalar<double>(r->name));
        }
        else
        {
            state.counters.emplace_back(name, read.scalar<std::uint64_t>(r->name));
        }
    }
    return state;
}

template <class Net, class Optimizer>
void check_checkpoint_types()
{
    static_assert(is_optimizer<Optimizer>::value,
                  "xcnn checkpoints: the optimizer must satisfy the optimizer contract of xcnn/optim/optimizer.hpp "
                  "(value_type, name(), parameters(), state_dict(), check_state_dict(), load_state_dict())");
    static_assert(std::is_same<typename Net::value_type, typename Optimizer::value_type>::value,
                  "xcnn checkpoints: the network and the optimizer must have the same scalar type");
}

/// `checkpoint_state` for the optimizer state `state` (taken once by `save_checkpoint`, which
/// checks it first).
template <class Net, class Optimizer>
model_file checkpoint_file(Net& net, const Optimizer& optimizer,
                           const optimizer_state<typename Optimizer::value_type>& state,
                           const training_progress& progress, const schedule_state* schedule = nullptr)
{
    const std::string prefix = checkpoint_optimizer_prefix;
    model_file file = model_state(net);
    file.records.push_back(tensor_record::text(checkpoint_optimizer_key, state.kind));
    for (const auto& [name, value] : state.scalars)
    {
        file.records.push_back(scalar_record(prefix + name, value));
    }
    for (const auto& [name, value] : state.counters)
    {
        file.records.push_back(scalar_record(prefix + name, value));
    }
    for (const auto& t : state.tensors)
    {
        const auto* p = parameter_named(optimizer, t.parameter);
        if (p == nullptr || p->size() != t.values.size())
        {
            throw value_error(concat("checkpoint_state: the ", state.kind, " state's tensor '", t.name, "' of '",
                                     t.parameter, "' (", t.values.size(),
                                     " elements) fits no parameter of the optimizer: ", optimizer.name(),
                                     " breaks the optimizer contract"));
        }
        file.records.push_back(tensor_record::from(optimizer_tensor_key(t.parameter, t.name), record_kind::state,
                                                   t.values.data(), p->shape()));
    }
    if (schedule != nullptr)
    {
        file.records.push_back(tensor_record::text(checkpoint_schedule_key, schedule->kind));
        for (const auto& [name, value] : schedule->scalars)
        {
            file.records.push_back(scalar_record(std::string(checkpoint_schedule_prefix) + name, value));
        }
        for (const auto& [name, value] : schedule->counters)
        {
            file.records.push_back(scalar_record(std::string(checkpoint_schedule_prefix) + name, value));
        }
    }
    for (const auto& g : generators_of(net))
    {
        file.records.push_back(text_state_record(checkpoint_generator_prefix + g.name(), g.state()));
    }
    file.records.push_back(scalar_record("train.epoch", progress.epoch));
    file.records.push_back(scalar_record("train.step_in_epoch", progress.step_in_epoch));
    file.records.push_back(scalar_record("train.global_step", progress.global_step));
    file.records.push_back(text_state_record("train.rng", progress.rng));
    file.records.push_back(tensor_record::from("train.order", record_kind::state, progress.order.data(),
                                               std::vector<std::size_t>{progress.order.size()}));
    file.records.push_back(text_state_record("train.description", progress.description));
    for (const auto& [name, value] : progress.scalars)
    {
        file.records.push_back(scalar_record("train.scalar." + name, value));
    }
    return file;
}

/// The optimizer state stored in `file` for `optimizer`: its scalars and counters (every
/// "optimizer.NAME" record: those its own `state_dict()` names are read in its order with the
/// type it gives them; others, such as a switch the optimizer only lists when it is on, by their
/// dtype: `T` a scalar, uint64 a counter) and every "optimizer.PARAMETER.NAME" record as a tensor
/// of the parameter it names (checked against the parameter's shape here, against the rest of
/// the contract by `check_state_dict`). The records of names of `optimizer.state_dict()` that
/// the file lacks are appended to `missing`.
template <class Optimizer>
optimizer_state<typename Optimizer::value_type>
read_optimizer_state(const model_file& file, const checkpoint_reader& read, const Optimizer& optimizer,
                     std::vector<std::string>& missing)
{
    using T = typename Optimizer::value_type;
    const std::string prefix = checkpoint_optimizer_prefix;
    const std::string where = read.where();
    const optimizer_state<T> current = optimizer.state_dict();
    optimizer_state<T> state;
    state.kind = current.kind;
    std::set<std::string> named;
    for (const auto& entry : current.scalars)
    {
        if (file.find(prefix + entry.first, record_kind::state) == nullptr)
        {
            missing.push_back(prefix + entry.first);
            continue;
        }
        state.scalars.emplace_back(entry.first, read.scalar<T>(prefix + entry.first));
        named.insert(prefix + entry.first);
    }
    for (const auto& entry : current.counters)
    {
        if (file.find(prefix + entry.first, record_kind::state) == nullptr)
        {
            missing.push_back(prefix + entry.first);
            continue;
        }
        state.counters.emplace_back(entry.first, read.scalar<std::uint64_t>(prefix + entry.first));
        named.insert(prefix + entry.first);
    }
    for (const auto* r : file.of_kind(record_kind::state))
    {
        if (r->name.rfind(prefix, 0) != 0 || named.count(r->name) != 0 ||
            r->name.find('.', prefix.size()) != std::string::npos)
        {
            continue;
        }
        const std::string name = r->name.substr(prefix.size());
        if (r->shape.empty() && r->type == static_cast<std::uint8_t>(dtype_of<T>()))
        {
            state.scalars.emplace_back(name, read.scalar<T>(r->name));
        }
        else if (r->shape.empty() && r->type == static_cast<std::uint8_t>(dtype::u64))
        {
            state.counters.emplace_back(name, read.scalar<std::uint64_t>(r->name));
        }
        else
        {
            throw format_error(concat(where, "the state record '", r->name, "' holds ", dtype_name(r->type),
                                      " of shape ", xcnn::detail::shape_to_string(r->shape), ", expected a ",
                                      dtype_name(static_cast<std::uint8_t>(dtype_of<T>())),
                                      " or uint64 scalar (an optimizer scalar or counter)"));
        }
        named.insert(r->name);
    }
    const auto& params = optimizer.parameters();
    // Tensors are listed in parameter order (the contract); the records are, too, when xcnn
    // wrote them, but need not be.
    std::vector<std::pair<std::size_t, optimizer_tensor<T>>> tensors;
    std::map<std::string, std::pair<std::size_t, std::size_t>> per_name; // state name: (stored, found)
    std::string unknown, unknown_name;
    for (const auto* r : file.of_kind(record_kind::state))
    {
        if (r->name.rfind(prefix, 0) != 0 || named.count(r->name) != 0)
        {
            continue;
        }
        const auto dot = r->name.rfind('.');
        const std::string parameter = r->name.substr(prefix.size(), dot - prefix.size());
        const std::string name = r->name.substr(dot + 1);
        auto& counts = per_name[name];
        ++counts.first;
        std::size_t i = 0;
        while (i < params.size() && params[i].name() != parameter)
        {
            ++i;
        }
        if (i == params.size())
        {
            unknown = unknown.empty() ? r->name : unknown;
            unknown_name = unknown_name.empty() ? name : unknown_name;
            continue;
        }
        ++counts.second;
        const auto shape = params[i].shape();
        const bool same_shape = std::equal(shape.begin(), shape.end(), r->shape.begin(), r->shape.end(),
                                           [](std::size_t a, std::uint64_t b) { return a == b; });
        if (!same_shape)
        {
            throw shape_error(concat(where, "the optimizer state does not match the network: '", r->name,
                                     "' has shape ", xcnn::detail::shape_to_string(r->shape), ", parameter ",
                                     xcnn::detail::describe_parameter(params[i]), " has shape ",
                                     xcnn::detail::shape_to_string(shape)));
        }
        tensors.emplace_back(i, optimizer_tensor<T>{parameter, name, read.values<T>(*r, -1)});
    }
    if (!unknown.empty())
    {
        const auto& counts = per_name[unknown_name];
        throw shape_error(concat(where, "the optimizer state does not match the network: the checkpoint has ",
                                 counts.first, " ", xcnn::detail::state_description(unknown_name), "s, ", counts.second,
                                 " of them for the network's ", params.size(), " parameters; '", unknown,
                                 "' belongs to no parameter of the network"));
    }
    std::stable_sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& t : tensors)
    {
        state.tensors.push_back(std::move(t.second));
    }
    return state;
}

} // namespace detail
} // namespace io

/// The checkpoint of `net`, `optimizer` (any optimizer of optim/optimizer.hpp's contract, which
/// must update `net.parameters()`) and `progress` as a model file: `model_state(net)` (parameters
/// and buffers) plus the records of docs/model-format.md: the state of each generator of
/// `net.generators()` as "generator.3.rng", `xcnn.optimizer` = the optimizer's
/// kind, its scalars and counters as "optimizer.lr", its per-parameter tensors as
/// "optimizer.3.weight.momentum_buffer", the progress as "train.epoch", .... Append records before writing it
/// with `io::write_model_file` to keep more.
/// @throws value_error if `optimizer` does not update `net`'s parameters.
template <class Net, class Optimizer>
io::model_file checkpoint_state(Net& net, const Optimizer& optimizer, const training_progress& progress)
{
    io::detail::check_checkpoint_types<Net, Optimizer>();
    io::detail::check_optimizer_of(net, optimizer, "checkpoint_state: ");
    return io::detail::checkpoint_file(net, optimizer, optimizer.state_dict(), progress);
}

/// `checkpoint_state(net, optimizer, progress)` with the state of `schedule` (a schedule of
/// optim/schedule.hpp driving `optimizer`) too: `xcnn.schedule` = its kind, its scalars and
/// counters as "schedule.last_lr", "schedule.steps", ....
/// @throws value_error if `optimizer` does not update `net`'s parameters or `schedule` drives
/// another optimizer.
template <class Net, class Optimizer, class Schedule, std::enable_if_t<is_schedule<Schedule>::value, int> = 0>
io::model_file checkpoint_state(Net& net, const Optimizer& optimizer, const Schedule& schedule,
                                const training_progress& progress)
{
    io::detail::check_checkpoint_types<Net, Optimizer>();
    io::detail::check_optimizer_of(net, optimizer, "checkpoint_state: ");
    io::detail::check_schedule_of(schedule, optimizer, "checkpoint_state: ");
    const schedule_state state = schedule.state_dict();
    return io::detail::checkpoint_file(net, optimizer, optimizer.state_dict(), progress, &state);
}

namespace io::detail
{

/// `restore_checkpoint` with an optional schedule (`schedule` null, `Schedule` = `no_schedule`:
/// none) and generator.
template <class Net, class Optimizer, class Schedule, class Engine>
training_progress restore(const model_file& file, Net& net, Optimizer& optimizer, Schedule* schedule,
                          const std::string& source, Engine* rng)
{
    using xcnn::detail::concat;
    check_checkpoint_types<Net, Optimizer>();
    const checkpoint_reader read(file, source);
    const std::string where = read.where();
    const auto* marker = file.find(checkpoint_optimizer_key, record_kind::metadata);
    if (marker == nullptr)
    {
        throw format_error(concat(where, "this is a model file without training state (written by xcnn::save, not "
                                         "xcnn::save_checkpoint); load its parameters with xcnn::load"));
    }
    const std::string kind = optimizer.name();
    if (marker->as_text() != kind)
    {
        throw format_error(
            concat(where, "the checkpoint holds the state of a '", marker->as_text(), "' optimizer, not of ", kind));
    }
    const auto* schedule_marker = file.find(checkpoint_schedule_key, record_kind::metadata);
    constexpr bool with_schedule = !std::is_same<Schedule, no_schedule>::value;
    if constexpr (with_schedule)
    {
        if (schedule_marker == nullptr)
        {
            throw format_error(concat(where,
                                      "the checkpoint holds no schedule state (it was saved without a "
                                      "schedule), but a ",
                                      schedule->name(), " schedule was given to restore"));
        }
        if (schedule_marker->as_text() != schedule->name())
        {
            throw format_error(concat(where, "the checkpoint holds the state of a '", schedule_marker->as_text(),
                                      "' schedule, not of ", schedule->name()));
        }
    }
    else if (schedule_marker != nullptr)
    {
        throw format_error(concat(where, "the checkpoint holds the state of a '", schedule_marker->as_text(),
                                  "' schedule: pass the schedule to load_checkpoint to restore it (or read the "
                                  "network alone with xcnn::load)"));
    }
    check_state(net, file, source);
    check_optimizer_of(net, optimizer, where);

    std::vector<std::string> missing;
    const auto state = read_optimizer_state(file, read, optimizer, missing);
    try
    {
        optimizer.check_state_dict(state);
    }
    catch (const shape_error& e)
    {
        throw shape_error(where + e.what());
    }
    catch (const value_error& e)
    {
        // A record the optimizer needs is missing: say so rather than how the state lacks it.
        throw format_error(missing.empty()
                               ? where + e.what()
                               : concat(where, "the checkpoint has no state record '", missing.front(), "'"));
    }
    schedule_state restored_schedule;
    if constexpr (with_schedule)
    {
        check_schedule_of(*schedule, optimizer, where);
        restored_schedule = read_schedule_state(file, read, *schedule);
        try
        {
            schedule->check_state_dict(restored_schedule);
        }
        catch (const value_error& e)
        {
            throw format_error(where + e.what());
        }
    }

    training_progress progress;
    progress.epoch = read.scalar<std::uint64_t>("train.epoch");
    progress.step_in_epoch = read.scalar<std::uint64_t>("train.step_in_epoch");
    progress.global_step = read.scalar<std::uint64_t>("train.global_step");
    progress.rng = read.text("train.rng");
    progress.order = read.values<std::uint64_t>(read.get("train.order"), 1);
    progress.description = read.text("train.description");
    const std::string scalar_prefix = "train.scalar.";
    for (const auto* r : file.of_kind(record_kind::state))
    {
        if (r->name.rfind(scalar_prefix, 0) == 0)
        {
            progress.scalars[r->name.substr(scalar_prefix.size())] = read.values<double>(*r, 0).front();
        }
    }
    Engine restored_rng;
    if (rng != nullptr)
    {
        try
        {
            set_rng_state(restored_rng, progress.rng);
        }
        catch (const value_error&)
        {
            throw value_error(concat(where, "the generator state 'train.rng' (", progress.rng.size(),
                                     " characters) is not a state of the given random engine type"));
        }
    }

    // The generators of stochastic layers ("generator.3.rng"). A checkpoint without the record
    // of one (written before the layer had a generator) leaves it as it is; a record that fits no
    // generator of the network is a mismatch like a parameter that fits none.
    const std::string generator_prefix = checkpoint_generator_prefix;
    auto generators = generators_of(net);
    std::vector<std::pair<generator_handle, std::string>> generator_states;
    std::set<std::string> generator_records;
    for (const auto& g : generators)
    {
        const std::string key = generator_prefix + g.name();
        generator_records.insert(key);
        if (file.find(key, record_kind::state) == nullptr)
        {
            continue;
        }
        std::string text = read.text(key);
        try
        {
            g.check_state(text);
        }
        catch (const value_error&)
        {
            throw format_error(concat(where, "the generator state '", key, "' (", text.size(),
                                      " characters) is not a state of the network's generator '", g.name(), "'"));
        }
        generator_states.emplace_back(g, std::move(text));
    }
    for (const auto* r : file.of_kind(record_kind::state))
    {
        if (r->name.rfind(generator_prefix, 0) == 0 && generator_records.count(r->name) == 0)
        {
            throw shape_error(concat(where, "the checkpoint's generator state '", r->name,
                                     "' belongs to no generator of the network (", generators.size(),
                                     " generators: another architecture?)"));
        }
    }

    // Everything fits: commit. Nothing below throws but std::bad_alloc (before the network or
    // the optimizer changes: load_state_dict copies before it commits).
    load_state(net, file, source);
    optimizer.load_state_dict(state);
    if constexpr (with_schedule)
    {
        schedule->load_state_dict(restored_schedule);
    }
    for (const auto& [g, text] : generator_states)
    {
        g.set_state(text);
    }
    if (rng != nullptr)
    {
        *rng = restored_rng;
    }
    return progress;
}

/// `save_checkpoint` with an optional schedule (`schedule` null: none).
template <class Net, class Optimizer, class Schedule>
void save(const std::string& path, Net& net, const Optimizer& optimizer, const Schedule* schedule,
          const training_progress& progress)
{
    using xcnn::detail::concat;
    check_checkpoint_types<Net, Optimizer>();
    const std::string where = concat("save_checkpoint ", quoted(path));
    const std::string kept = concat("; ", quoted(path), " was left unchanged");
    try
    {
        require_finite(net, where);
    }
    catch (const numeric_error& e)
    {
        throw numeric_error(e.what() + kept);
    }
    check_optimizer_of(net, optimizer, where + ": ");
    schedule_state schedule_values;
    if constexpr (!std::is_same<Schedule, no_schedule>::value)
    {
        check_schedule_of(*schedule, optimizer, where + ": ");
        schedule_values = schedule->state_dict();
    }
    const auto state = optimizer.state_dict();
    for (const auto& t : state.tensors)
    {
        if (!xcnn::detail::all_finite(t.values.data(), t.values.size()))
        {
            const auto* p = parameter_named(optimizer, t.parameter);
            const std::string parameter = p != nullptr ? xcnn::detail::describe_parameter(*p) : "'" + t.parameter + "'";
            throw numeric_error(concat(
                where, ": the ", xcnn::detail::state_description(t.name), " of parameter ", parameter,
                " holds non-finite values: ", xcnn::detail::nonfinite_summary(t.values.data(), t.values.size()), kept));
        }
    }
    const auto file =
        checkpoint_file(net, optimizer, state, progress, schedule != nullptr ? &schedule_values : nullptr);
    remove_stale_temporaries(path);
    write_model_file(path, file);
}

} // namespace io::detail

/// Restores `net` (parameters and buffers), `optimizer` and, when given, `rng` from a
/// checkpoint's records and returns the progress. Everything is checked first — the network's
/// parameters and buffers (names, shapes, type), its generators' states (a generator without a
/// record, as in a checkpoint of an older version, is left as it is), that the checkpoint holds
/// the state of an optimizer of `optimizer`'s kind, that `optimizer` updates `net`, the
/// optimizer's state against its parameters (`check_state_dict`), the progress records and the
/// generator state — so on an exception nothing has changed. `source` names the file.
/// @throws format_error if `file` is no checkpoint, holds the state of another kind of optimizer
/// or of a schedule (restore it with the overload that takes one), or a record is missing, of
/// the wrong type or not a state of the generator it names; shape_error if the parameters,
/// buffers, generator states or the optimizer's tensors do not fit the network; value_error if
/// the optimizer does not update `net` or the generator state is not one of `Engine`.
template <class Net, class Optimizer, class Engine = std::mt19937>
training_progress restore_checkpoint(const io::model_file& file, Net& net, Optimizer& optimizer,
                                     const std::string& source = "<checkpoint>", Engine* rng = nullptr)
{
    return io::detail::restore(file, net, optimizer, static_cast<io::detail::no_schedule*>(nullptr), source, rng);
}

/// `restore_checkpoint(file, net, optimizer, source, rng)` that also restores `schedule` (a
/// schedule of optim/schedule.hpp driving `optimizer`), all or nothing.
/// @throws format_error if the checkpoint holds no schedule state, that of another kind of
/// schedule, or one `schedule` refuses; value_error if `schedule` drives another optimizer.
template <class Net, class Optimizer, class Schedule, class Engine = std::mt19937,
          std::enable_if_t<is_schedule<Schedule>::value, int> = 0>
training_progress restore_checkpoint(const io::model_file& file, Net& net, Optimizer& optimizer, Schedule& schedule,
                                     const std::string& source = "<checkpoint>", Engine* rng = nullptr)
{
    return io::detail::restore(file, net, optimizer, &schedule, source, rng);
}

/// Writes a checkpoint of `net`, `optimizer` (any optimizer of optim/optimizer.hpp's contract,
/// built from `net.parameters()`) and `progress` to `path`, atomically like `xcnn::save`: if
/// anything fails, `path` keeps its previous content. Temporary files of earlier writers of
/// `path` that were killed mid-save are removed first (`io::remove_stale_temporaries`).
/// @throws numeric_error, before writing anything, if a parameter, a buffer or a tensor of the
/// optimizer's state (a momentum buffer) is not finite (a diverged run must not replace the last
/// good checkpoint); io_error if the file cannot be written, naming the path and the reason;
/// value_error if `optimizer` does not update `net`.
template <class Net, class Optimizer>
void save_checkpoint(const std::string& path, Net& net, const Optimizer& optimizer, const training_progress& progress)
{
    io::detail::save(path, net, optimizer, static_cast<const io::detail::no_schedule*>(nullptr), progress);
}

/// `save_checkpoint(path, net, optimizer, progress)` that also saves the state of `schedule`
/// (a schedule of optim/schedule.hpp driving `optimizer`): its kind as `xcnn.schedule`, its
/// values as "schedule.NAME" records.
/// @throws value_error if `schedule` drives another optimizer (and what the overload without a
/// schedule throws).
template <class Net, class Optimizer, class Schedule, std::enable_if_t<is_schedule<Schedule>::value, int> = 0>
void save_checkpoint(const std::string& path, Net& net, const Optimizer& optimizer, const Schedule& schedule,
                     const training_progress& progress)
{
    io::detail::save(path, net, optimizer, &schedule, progress);
}

/// `save_checkpoint(path, net, optimizer, progress)` with `progress.rng` set to the state of `rng`.
template <class Net, class Optimizer, class Engine, std::enable_if_t<!is_schedule<Engine>::value, int> = 0>
void save_checkpoint(const std::string& path, Net& net, const Optimizer& optimizer, training_progress progress,
                     const Engine& rng)
{
    progress.rng = rng_state(rng);
    save_checkpoint(path, net, optimizer, progress);
}

/// `save_checkpoint(path, net, optimizer, schedule, progress)` with `progress.rng` set to the
/// state of `rng`.
template <class Net, class Optimizer, class Schedule, class Engine,
          std::enable_if_t<is_schedule<Schedule>::value, int> = 0>
void save_checkpoint(const std::string& path, Net& net, const Optimizer& optimizer, const Schedule& schedule,
                     training_progress progress, const Engine& rng)
{
    progress.rng = rng_state(rng);
    save_checkpoint(path, net, optimizer, schedule, progress);
}

/// Restores `net` and `optimizer` from the checkpoint at `path` (written by `save_checkpoint`)
/// and returns the progress. The whole file is checked first; after an exception nothing has
/// changed. A checkpoint is also a model file: `xcnn::load` reads its parameters and buffers alone.
/// @throws io_error if it cannot be read; format_error if it is damaged, no checkpoint (e.g. a
/// plain model file), one of another kind of optimizer or one holding a schedule's state (load
/// it with the overload that takes the schedule); shape_error if the parameters, the buffers or
/// the optimizer state do not fit the network.
template <class Net, class Optimizer>
training_progress load_checkpoint(const std::string& path, Net& net, Optimizer& optimizer)
{
    return restore_checkpoint(io::read_model_file(path), net, optimizer, path);
}

/// `load_checkpoint(path, net, optimizer)` that also restores the generator `rng` from the
/// checkpoint's `train.rng`, all or nothing.
/// @throws value_error (changing nothing) if the stored state is not one of an `Engine`.
template <class Net, class Optimizer, class Engine, std::enable_if_t<!is_schedule<Engine>::value, int> = 0>
training_progress load_checkpoint(const std::string& path, Net& net, Optimizer& optimizer, Engine& rng)
{
    return restore_checkpoint(io::read_model_file(path), net, optimizer, path, &rng);
}

/// `load_checkpoint(path, net, optimizer)` that also restores `schedule` (a schedule of
/// optim/schedule.hpp driving `optimizer`), all or nothing.
/// @throws format_error if the checkpoint holds no schedule state (a checkpoint saved without a
/// schedule, e.g. by an earlier release), that of another kind of schedule, or one `schedule`
/// refuses; value_error if `schedule` drives another optimizer.
template <class Net, class Optimizer, class Schedule, std::enable_if_t<is_schedule<Schedule>::value, int> = 0>
training_progress load_checkpoint(const std::string& path, Net& net, Optimizer& optimizer, Schedule& schedule)
{
    return restore_checkpoint(io::read_model_file(path), net, optimizer, schedule, path);
}

/// `load_checkpoint(path, net, optimizer, schedule)` that also restores the generator `rng`.
template <class Net, class Optimizer, class Schedule, class Engine,
          std::enable_if_t<is_schedule<Schedule>::value, int> = 0>
training_progress load_checkpoint(const std::string& path, Net& net, Optimizer& optimizer, Schedule& schedule,
                                  Engine& rng)
{
    return restore_checkpoint(io::read_model_file(path), net, optimizer, schedule, path, &rng);
}

} // namespace xcnn

#endif // XCNN_IO_CHECKPOINT_HPP
