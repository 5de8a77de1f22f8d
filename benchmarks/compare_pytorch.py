#!/usr/bin/env python3
"""Runs xcnn's benchmarks and the same layers and models in PyTorch, interleaved, and prints
markdown tables of the results and their ratios.

    cmake --preset bench && cmake --build --preset bench
    python3 benchmarks/compare_pytorch.py build/bench

What runs, at 1 and at 2 threads (see docs/performance.md):
  GEMM    xcnn::gemm vs OpenBLAS cblas_sgemm with its default kernel and with
          OPENBLAS_CORETYPE=Haswell (bench_gemm), GFLOP/s; no PyTorch here.
  L1      Conv2D 32->64, 3x3, pad 1 on 64x32x32x32: forward, and forward + backward with dX
          (bench_conv2d), GFLOP/s = 2 N C_out C_in 9 H W per forward, three times that for both.
  newlayers  bench_layers: BatchNorm, Dropout, activations, pools, depthwise, dilated and strided
          convolutions, a Residual block, batch 64: forward and forward + backward, images/s.
  sweep   the convolution sweep: every shape of benchmarks/conv_sweep.csv (the list bench_conv2d
          reads too; XCNN_CONV_SWEEP names another file for both), forward and forward + backward with dX, ms per call; the table ends with the
          geometric mean of the xcnn / PyTorch speed ratios and the lowest ratio.
  models  LeNet-5, the seed net and resnet (xcnn-mnist --model resnet), batch 64: training step
          (forward, cross-entropy, backward, SGD with momentum) and inference (bench_models),
          images/s.
  onnxruntime  inference of the same three models against ONNX Runtime (npm onnxruntime-node, CPU,
          graph optimisation "all"), at batch 64 and batch 1: the models are exported from the
          PyTorch twins with torch.onnx.export (opset 13) and timed by benchmarks/ort_worker.js, a
          Node.js worker answering one JSON request per line. A call through Node costs some
          microseconds by itself, which matters at batch 1: the worker also times a model of one
          Relu, and the table shows ORT's time net of that cost too. --ort-dir (default
          $XCNN_ONNXRUNTIME_NODE_DIR, else <build dir>/../onnxruntime) holds node_modules/onnxruntime-node.

Each xcnn case is its own process (`--benchmark_filter=^name$ --benchmark_format=json`); each
PyTorch case runs in this process with torch.set_num_threads(t). The order is xcnn case, torch
case, next xcnn case, ... and the whole list is repeated (--repetitions), so a slow spell of a
shared machine hits both sides. The tables show medians over the repetitions, and the range of
the per-repetition ratios (each computed from a pair measured back to back). The one-thread cases
are also shown per CPU second (work / CPU time used), which a busy machine disturbs less than
wall-clock time, and the last table gives each side's two-thread / one-thread speed-up.

Threads: PyTorch's own thread count defaults to 1 on small machines, so it is always set. PyTorch
calls OpenBLAS for its dense layers; OpenBLAS is kept at one thread (OPENBLAS_NUM_THREADS=1) so it
never competes with PyTorch's OpenMP threads or xcnn's. The OpenBLAS cases of bench_gemm set their
thread count themselves (openblas_set_num_threads). Two-thread numbers only mean something when
the other core is idle: the script prints the load average before and after.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

# Before torch is imported: torch's BLAS (OpenBLAS on Debian) at one thread.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

# glibc's allocator as a tuned production process has it, for both sides: without these, glibc
# hands PyTorch's large buffers back to the kernel after each call and PyTorch page-faults on every
# step (its L1 forward took 44.5 ms that way and 23.8 ms with them). xcnn's workers inherit them
# too, for symmetry. glibc reads them at process start, hence the re-exec.
FAIR_MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"


def ensure_fair_malloc():
    """Re-runs this script with FAIR_MALLOC in GLIBC_TUNABLES unless it is there already."""
    current = os.environ.get("GLIBC_TUNABLES", "")
    if FAIR_MALLOC in current:
        return
    os.environ["GLIBC_TUNABLES"] = f"{current}:{FAIR_MALLOC}" if current else FAIR_MALLOC
    os.execv(sys.executable, [sys.executable] + sys.argv)

BATCH = 64
L1_FORWARD_FLOP = 2.0 * 64 * 64 * 32 * 3 * 3 * 32 * 32  # N C_out C_in KH KW OH OW
# The "newlayers" group: bench_layers' cases, (label, input C, H, W); torch_cases builds each.
NEW_LAYERS = {
    "batchnorm2d_32x28": ("BatchNorm2D(32), 32×28×28", (32, 28, 28)),
    "batchnorm2d_64x8": ("BatchNorm2D(64), 64×8×8", (64, 8, 8)),
    "dropout_32x28": ("Dropout(0.5), 32×28×28", (32, 28, 28)),
    "leaky_relu_32x28": ("LeakyReLU, 32×28×28", (32, 28, 28)),
    "sigmoid_32x28": ("Sigmoid, 32×28×28", (32, 28, 28)),
    "tanh_32x28": ("Tanh, 32×28×28", (32, 28, 28)),
    "gelu_32x28": ("GELU, 32×28×28", (32, 28, 28)),
    "avgpool2_32x28": ("AvgPool2D(2), 32×28×28", (32, 28, 28)),
    "global_avgpool_128x8": ("GlobalAvgPool2D, 128×8×8", (128, 8, 8)),
    "maxpool3s2p1_32x56": ("MaxPool2D(3, 2, 1), 32×56×56", (32, 56, 56)),
    "depthwise3x3_32x28": ("depthwise Conv2D 3×3, 32×28×28", (32, 28, 28)),
    "depthwise3x3_128x8": ("depthwise Conv2D 3×3, 128×8×8", (128, 8, 8)),
    "dilated3x3_32x28": ("Conv2D 32→32 3×3 dilation 2, 28×28", (32, 28, 28)),
    "conv3x3s2_32to64x14": ("Conv2D 32→64 3×3 stride 2, 14×14", (32, 14, 14)),
    "residual_32x14": ("Residual block (2 × Conv-BN), 32×14×14", (32, 14, 14)),
}
SWEEP_FILE = os.environ.get("XCNN_CONV_SWEEP") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             "conv_sweep.csv")


def read_sweep(path=SWEEP_FILE):
    """The sweep's shapes, {name: dict(n, c_in, c_out, hw, k, stride, pad, dilation, groups)}, in
    file order: the same file bench_conv2d parses."""
    keys = ("n", "c_in", "c_out", "hw", "k", "stride", "pad", "dilation", "groups")
    shapes = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            name, *values = [v.strip() for v in line.split(",")]
            shapes[name] = dict(zip(keys, map(int, values), strict=True))
    return shapes


SWEEP = read_sweep()
GEMM_SHAPES = {  # name: (M, K, N), as in bench_gemm.cpp
    "square": (1024, 1024, 1024),
    "L1_forward": (64, 288, 65536),
    "L1_dW": (64, 65536, 288),
    "L1_dX": (32, 576, 65536),
}


def import_torch():
    """torch, re-running the script with Debian's python3 when this interpreter (e.g. a pyenv one)
    does not have python3-torch."""
    try:
        import torch  # noqa: F401

        return torch
    except ImportError:
        system = "/usr/bin/python3"
        if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system):
            print(f"compare_pytorch: no torch in {sys.executable}; re-running with {system}", file=sys.stderr)
            os.execv(system, [system] + sys.argv)
        sys.exit("compare_pytorch: PyTorch is missing (Debian: apt-get install python3-torch)")


# --------------------------------------------------------------------------------------------
# xcnn: one benchmark per process


def run_xcnn(binary, name, counter, min_time, env_extra):
    """Runs one case of a Google Benchmark binary; returns (value of `counter` per wall-clock
    second, the same per CPU second of the main thread, context)."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("XCNN_NUM_THREADS", None)  # the benchmarks set their thread count themselves
    env.update(env_extra)
    command = [
        binary,
        f"--benchmark_filter=^{name}$",
        "--benchmark_format=json",
        f"--benchmark_min_time={min_time}",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"compare_pytorch: {' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    report = json.loads(result.stdout)
    runs = [b for b in report["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    if len(runs) != 1:
        sys.exit(f"compare_pytorch: filter {name!r} matched {len(runs)} benchmarks in {binary}")
    if runs[0].get("error_occurred"):
        sys.exit(f"compare_pytorch: {name}: {runs[0].get('error_message')}")
    run = runs[0]
    per_cpu_second = float(run[counter]) * float(run["real_time"]) / float(run["cpu_time"])
    return float(run[counter]), per_cpu_second, report.get("context", {})


# --------------------------------------------------------------------------------------------
# PyTorch: the same layers and models


def torch_models(torch):
    """The PyTorch twins of bench_models' networks: {name: constructor}, and the Residual module."""
    nn = torch.nn

    def lenet():
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        )  # fmt: skip

    def seed():
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 28 * 28, 10),
        )  # fmt: skip

    from fashion_pytorch import make_resnet, residual_class  # beside this script

    Residual = residual_class(nn)

    def resnet():
        return make_resnet(torch)

    return {"lenet": lenet, "seed": seed, "resnet": resnet, "Residual": Residual}


def torch_cases(torch):
    nn = torch.nn
    models = torch_models(torch)
    lenet, seed, resnet = models["lenet"], models["seed"], models["resnet"]
    Residual = models["Residual"]

    def l1_forward():
        torch.manual_seed(0)
        conv = nn.Conv2d(32, 64, 3, padding=1)
        x = torch.rand(64, 32, 32, 32) * 2 - 1

        def step():
            with torch.no_grad():
                conv(x)

        return step

    def l1_forward_backward():
        # dX too (x requires grad), like xcnn's Conv2D::backward.
        torch.manual_seed(0)
        conv = nn.Conv2d(32, 64, 3, padding=1)
        x = (torch.rand(64, 32, 32, 32) * 2 - 1).requires_grad_(True)
        dy = torch.rand(64, 64, 32, 32) * 2 - 1

        def step():
            conv.zero_grad(set_to_none=True)
            x.grad = None
            conv(x).backward(dy)

        return step

    def train(make):
        def build():
            torch.manual_seed(0)
            model = make()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            loss_fn = nn.CrossEntropyLoss()
            images = torch.rand(BATCH, 1, 28, 28) * 2 - 1
            labels = torch.randint(0, 10, (BATCH,))

            def step():
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(images), labels).backward()
                optimizer.step()

            return step

        return build

    def infer(make):
        def build():
            torch.manual_seed(0)
            model = make().eval()
            images = torch.rand(BATCH, 1, 28, 28) * 2 - 1

            def step():
                with torch.no_grad():
                    model(images)

            return step

        return build

    def new_layer(case):
        return {
            "batchnorm2d_32x28": lambda: nn.BatchNorm2d(32),
            "batchnorm2d_64x8": lambda: nn.BatchNorm2d(64),
            "dropout_32x28": lambda: nn.Dropout(0.5),
            "leaky_relu_32x28": lambda: nn.LeakyReLU(0.01),
            "sigmoid_32x28": nn.Sigmoid,
            "tanh_32x28": nn.Tanh,
            "gelu_32x28": nn.GELU,
            "avgpool2_32x28": lambda: nn.AvgPool2d(2),
            "global_avgpool_128x8": lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
            "maxpool3s2p1_32x56": lambda: nn.MaxPool2d(3, 2, 1),
            "depthwise3x3_32x28": lambda: nn.Conv2d(32, 32, 3, padding=1, groups=32),
            "depthwise3x3_128x8": lambda: nn.Conv2d(128, 128, 3, padding=1, groups=128),
            "dilated3x3_32x28": lambda: nn.Conv2d(32, 32, 3, padding=2, dilation=2),
            "conv3x3s2_32to64x14": lambda: nn.Conv2d(32, 64, 3, 2, 1, bias=False),
            "residual_32x14": lambda: Residual(nn.Sequential(
                nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32))),
        }[case]()

    def layer_forward(case):
        def build():
            torch.manual_seed(0)
            module = new_layer(case).train()  # xcnn's forward is training mode
            x = torch.rand(BATCH, *NEW_LAYERS[case][1]) * 2 - 1

            def step():
                with torch.no_grad():
                    module(x)

            return step

        return build

    def layer_forward_backward(case):
        def build():
            torch.manual_seed(0)
            module = new_layer(case).train()
            x = (torch.rand(BATCH, *NEW_LAYERS[case][1]) * 2 - 1).requires_grad_(True)
            with torch.no_grad():
                dy = module(x) * 0.5

            def step():
                module.zero_grad(set_to_none=True)
                x.grad = None
                module(x).backward(dy)

            return step

        return build

    def sweep_conv(shape, backward):
        def build():
            torch.manual_seed(0)
            conv = nn.Conv2d(shape["c_in"], shape["c_out"], shape["k"], shape["stride"], shape["pad"],
                             dilation=shape["dilation"], groups=shape["groups"])
            x = torch.rand(shape["n"], shape["c_in"], shape["hw"], shape["hw"]) * 2 - 1
            if not backward:
                def step():
                    with torch.no_grad():
                        conv(x)

                return step
            x.requires_grad_(True)  # dX too, like xcnn's Conv2D::backward
            with torch.no_grad():
                dy = conv(x) * 0.5

            def step():
                conv.zero_grad(set_to_none=True)
                x.grad = None
                conv(x).backward(dy)

            return step

        return build

    table = {f"{case}_forward": (layer_forward(case), BATCH) for case in NEW_LAYERS}
    table.update({f"sweep_{name}_{kind}": (sweep_conv(shape, kind == "fwdbwd"), 1)
                  for name, shape in SWEEP.items() for kind in ("fwd", "fwdbwd")})
    table.update({f"{case}_forward_backward": (layer_forward_backward(case), BATCH) for case in NEW_LAYERS})
    return table | {
        "l1_forward": (l1_forward, L1_FORWARD_FLOP / 1e9),
        "l1_forward_backward": (l1_forward_backward, 3 * L1_FORWARD_FLOP / 1e9),
        "lenet_train": (train(lenet), BATCH),
        "lenet_predict": (infer(lenet), BATCH),
        "seed_train": (train(seed), BATCH),
        "seed_predict": (infer(seed), BATCH),
        "resnet_train": (train(resnet), BATCH),
        "resnet_predict": (infer(resnet), BATCH),
    }


def run_torch(torch, step, work, threads, min_time):
    """Work units (GFLOP or images) per wall-clock second of `step` at `threads` threads, and per
    CPU second of the process."""
    torch.set_num_threads(threads)
    for _ in range(3):  # warm-up: allocator caches, oneDNN primitives, OpenMP pool
        step()
    count = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return work * count / elapsed, work * count / (time.process_time() - cpu_start)


# --------------------------------------------------------------------------------------------
# ONNX Runtime: the same models, exported from PyTorch, timed by a Node.js worker

ORT_MODELS = ("lenet", "seed", "resnet")
ORT_BATCHES = (64, 1)


def export_onnx_models(torch, directory):
    """Writes <name>.onnx for each of ORT_MODELS and call.onnx (one Relu: the cost of a call
    through Node) into `directory`, with a symbolic batch axis; returns {name: path}."""
    models = torch_models(torch)
    paths = {}
    for name in ORT_MODELS + ("call",):
        torch.manual_seed(0)
        model = (models[name]() if name != "call" else torch.nn.ReLU()).eval()
        path = os.path.join(directory, f"{name}.onnx")
        torch.onnx.export(model, torch.rand(1, 1, 28, 28), path, opset_version=13, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        paths[name] = path
    return paths


class OrtWorker:
    """benchmarks/ort_worker.js as a subprocess: one JSON request per line, one reply."""

    def __init__(self, ort_dir):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_worker.js")
        self.process = subprocess.Popen(["node", script, ort_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

    def time(self, model, batch, threads, min_time):
        """Images per wall-clock second and per CPU second of ORT inference of `model`."""
        request = {"model": model, "batch": batch, "threads": threads, "min_time": min_time}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            sys.exit(f"compare_pytorch: ort_worker.js stopped (exit status {self.process.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            sys.exit(f"compare_pytorch: ONNX Runtime on {model}: {reply['error']}")
        return reply["per_s"] * batch, reply["cpu_per_s"] * batch

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def find_ort_dir(arg, build_dir):
    """The folder holding node_modules/onnxruntime-node, or None."""
    candidates = [arg, os.environ.get("XCNN_ONNXRUNTIME_NODE_DIR"),
                  os.path.join(os.path.dirname(os.path.abspath(build_dir)), "onnxruntime")]
    for c in candidates:
        if c and os.path.exists(os.path.join(c, "node_modules", "onnxruntime-node", "package.json")):
            return c
    return None


def net_of_call(rate, call_rate, batch):
    """Images/s of `rate` with the per-call cost measured by `call_rate` (the one-Relu model)
    taken out of each call's time."""
    per_call = batch / rate - batch / call_rate
    return batch / per_call if per_call > 0 else float("inf")


# --------------------------------------------------------------------------------------------
# The plan, the runs and the tables


def plan(build_dir, threads, groups, have_openblas):
    """The measurements of one repetition, in run order: list of dicts."""
    bench = lambda name: os.path.join(build_dir, "benchmarks", name)  # noqa: E731
    items = []
    for t in threads:
        if "gemm" in groups:
            for shape in GEMM_SHAPES:
                row = ("gemm", shape, t)
                items.append(dict(row=row, column="xcnn", binary=bench("bench_gemm"),
                                  name=f"gemm/xcnn/{shape}/threads:{t}/real_time", counter="GFLOP/s", env={}))
                if have_openblas:
                    name = f"gemm/openblas/{shape}/threads:{t}/real_time"
                    items.append(dict(row=row, column="openblas", binary=bench("bench_gemm"), name=name,
                                      counter="GFLOP/s", env={"OPENBLAS_NUM_THREADS": str(t)}))
                    items.append(dict(row=row, column="openblas_haswell", binary=bench("bench_gemm"), name=name,
                                      counter="GFLOP/s",
                                      env={"OPENBLAS_NUM_THREADS": str(t), "OPENBLAS_CORETYPE": "Haswell"}))
        if "layers" in groups:
            for case, bench_name in (("l1_forward", "conv_forward"), ("l1_forward_backward", "conv_forward_backward")):
                row = ("layers", case, t)
                items.append(dict(row=row, column="xcnn", binary=bench("bench_conv2d"),
                                  name=f"{bench_name}/64/32/64/32/3/1/1/{t}/real_time", counter="GFLOP/s", env={}))
                items.append(dict(row=row, column="torch", case=case))
        if "newlayers" in groups:
            for case in NEW_LAYERS:
                for kind in ("forward", "forward_backward"):
                    row = ("newlayers", f"{case}_{kind}", t)
                    items.append(dict(row=row, column="xcnn", binary=bench("bench_layers"),
                                      name=f"layer_{kind}/{case}/threads:{t}/real_time", counter="images/s", env={}))
                    items.append(dict(row=row, column="torch", case=f"{case}_{kind}"))
        if "sweep" in groups:
            for name in SWEEP:
                for kind in ("fwd", "fwdbwd"):
                    row = ("sweep", f"{name}_{kind}", t)
                    items.append(dict(row=row, column="xcnn", binary=bench("bench_conv2d"),
                                      name=f"sweep/{name}/{kind}/threads:{t}/real_time", counter="steps/s", env={}))
                    items.append(dict(row=row, column="torch", case=f"sweep_{name}_{kind}"))
        if "models" in groups:
            for model in ("lenet", "seed", "resnet"):
                for step, bench_name in (("train", "train_step"), ("predict", "predict")):
                    case = f"{model}_{step}"
                    row = ("models", case, t)
                    items.append(dict(row=row, column="xcnn", binary=bench("bench_models"),
                                      name=f"{bench_name}/{model}/threads:{t}/real_time", counter="images/s", env={}))
                    items.append(dict(row=row, column="torch", case=case))
        if "onnxruntime" in groups:
            for model in ORT_MODELS:
                for b in ORT_BATCHES:
                    row = ("onnxruntime", f"{model}_b{b}", t)
                    step = "predict" if b == BATCH else "predict_one"
                    items.append(dict(row=row, column="xcnn", binary=bench("bench_models"),
                                      name=f"{step}/{model}/threads:{t}/real_time", counter="images/s", env={}))
                    items.append(dict(row=row, column="ort", model=model, batch=b))
                    items.append(dict(row=row, column="ort_call", model="call", batch=b))
    return items


def has_openblas_cases(build_dir):
    binary = os.path.join(build_dir, "benchmarks", "bench_gemm")
    listing = subprocess.run([binary, "--benchmark_list_tests"], capture_output=True, text=True, check=True)
    return "gemm/openblas/" in listing.stdout


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def fmt(value, unit):
    return f"{value:,.0f}" if unit == "images/s" else f"{value:.1f}"


def ratio_range(pairs):
    ratios = [a / b for a, b in pairs if b > 0]
    return f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "-"


def print_sweep(results, cpu_results):
    """The sweep's tables: ms per call on each side (medians), their ratio, per thread count, and
    the geometric mean and minimum of the ratios, forward and forward + backward apart; at one
    thread also in CPU ms per call (xcnn's thread, PyTorch's process), which a shared machine
    disturbs less."""
    tables = [(t, results, "wall-clock ms") for t in sorted({k[2] for k in results if k[0] == "sweep"})]
    if ("sweep", f"{next(iter(SWEEP), '')}_fwd", 1) in cpu_results:
        tables.append((1, cpu_results, "CPU ms"))
    for t, results, unit in tables:
        print(f"\n### Convolution sweep, {t} thread{'s' if t > 1 else ''} ({unit} per call, float32; "
              f"xcnn / PyTorch = PyTorch ms / xcnn ms, higher is better)\n")
        print("| shape | N | C_in→C_out | H=W | K | stride | pad | dil | groups | fwd xcnn | fwd torch | fwd ratio "
              "| fwd+bwd xcnn | fwd+bwd torch | fwd+bwd ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        ratios = {"fwd": [], "fwdbwd": []}
        for name, s in SWEEP.items():
            cells = []
            for kind in ("fwd", "fwdbwd"):
                r = results.get(("sweep", f"{name}_{kind}", t))
                if r is None:
                    cells += ["-", "-", "-"]
                    continue
                x, p = statistics.median(r["xcnn"]), statistics.median(r["torch"])  # calls per second
                ratios[kind].append(x / p)
                cells += [f"{1e3 / x:.3f}", f"{1e3 / p:.3f}", f"{x / p:.2f}" + (" **↓**" if x / p < 0.9 else "")]
            print(f"| {name} | {s['n']} | {s['c_in']}→{s['c_out']} | {s['hw']} | {s['k']} | {s['stride']} | "
                  f"{s['pad']} | {s['dilation']} | {s['groups']} | " + " | ".join(cells) + " |")
        summary = []
        for kind, label in (("fwd", "forward"), ("fwdbwd", "forward + backward")):
            if ratios[kind]:
                geo = math.exp(statistics.fmean(math.log(v) for v in ratios[kind]))
                summary.append(f"{label}: geometric mean {geo:.2f}×, lowest {min(ratios[kind]):.2f}×, "
                               f"{sum(v < 0.9 for v in ratios[kind])} of {len(ratios[kind])} below 0.9×")
        print("\n" + "; ".join(summary))


def print_tables(results, cpu_results, context):
    """results, cpu_results: {(group, case, threads): {column: [value per repetition]}}, per
    wall-clock second and per CPU second."""
    gemm = sorted((k for k in results if k[0] == "gemm"), key=lambda k: (list(GEMM_SHAPES).index(k[1]), k[2]))
    if gemm:
        core = context.get("openblas_core", "?")
        print("\n### GEMM (float, GFLOP/s; xcnn::gemm vs OpenBLAS cblas_sgemm)\n")
        print(f"| shape (M×K×N) | threads | xcnn | OpenBLAS {core} | OpenBLAS Haswell | xcnn / best OpenBLAS "
              "| range |")
        print("|---|---|---|---|---|---|---|")
        for key in gemm:
            r = results[key]
            m, k, n = GEMM_SHAPES[key[1]]
            x = statistics.median(r["xcnn"])
            if "openblas" in r:
                o = statistics.median(r["openblas"])
                h = statistics.median(r["openblas_haswell"])
                best = [max(a, b) for a, b in zip(r["openblas"], r["openblas_haswell"])]
                cells = [f"{o:.1f}", f"{h:.1f}", f"{x / max(o, h):.2f}", ratio_range(zip(r["xcnn"], best))]
            else:
                cells = ["-", "-", "-", "-"]
            print(f"| {key[1]} {m}×{k}×{n} | {key[2]} | {x:.1f} | " + " | ".join(cells) + " |")
    labels = {
        "l1_forward": ("L1 conv forward", "GFLOP/s"),
        "l1_forward_backward": ("L1 conv forward + backward (with dX)", "GFLOP/s"),
        "lenet_train": ("LeNet-5 training step", "images/s"),
        "lenet_predict": ("LeNet-5 inference", "images/s"),
        "seed_train": ("seed net training step", "images/s"),
        "seed_predict": ("seed net inference", "images/s"),
        "resnet_train": ("resnet (xcnn-mnist --model resnet) training step", "images/s"),
        "resnet_predict": ("resnet inference", "images/s"),
    }
    for case, (label, _) in NEW_LAYERS.items():
        labels[f"{case}_forward"] = (f"{label}: forward", "images/s")
        labels[f"{case}_forward_backward"] = (f"{label}: forward + backward", "images/s")
    ort = sorted((k for k in results if k[0] == "onnxruntime"),
                 key=lambda k: (k[2], ORT_MODELS.index(k[1].rsplit("_b", 1)[0]), -int(k[1].rsplit("_b", 1)[1])))
    if ort:
        print("\n### Inference vs ONNX Runtime (float32, images/s; higher is better)\n")
        print("ORT net = ONNX Runtime's time per call less the time of a call of a one-Relu model through "
              "Node.js (ort_worker.js), which a C++ caller of ORT would not pay.\n")
        print("| model | batch | threads | xcnn | ORT | ORT net | xcnn / ORT | xcnn / ORT net | range (xcnn / ORT) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for key in ort:
            r = results[key]
            model, b = key[1].rsplit("_b", 1)
            x, o, c = (statistics.median(r[col]) for col in ("xcnn", "ort", "ort_call"))
            net = net_of_call(o, c, int(b))
            print(f"| {model} | {b} | {key[2]} | {x:,.0f} | {o:,.0f} | {net:,.0f} | {x / o:.2f} | {x / net:.2f} | "
                  f"{ratio_range(zip(r['xcnn'], r['ort']))} |")
    print_sweep(results, cpu_results)
    rest = [k for k in results if k[0] not in ("gemm", "sweep", "onnxruntime")]
    if rest:
        rest.sort(key=lambda k: (list(labels).index(k[1]), k[2]))
        print("\n### Layers and models vs PyTorch (batch 64, float32; higher is better)\n")
        print("| case | threads | unit | xcnn | PyTorch | xcnn / PyTorch | range |")
        print("|---|---|---|---|---|---|---|")
        for key in rest:
            r = results[key]
            label, unit = labels[key[1]]
            x, p = statistics.median(r["xcnn"]), statistics.median(r["torch"])
            print(f"| {label} | {key[2]} | {unit} | {fmt(x, unit)} | {fmt(p, unit)} | {x / p:.2f} | "
                  f"{ratio_range(zip(r['xcnn'], r['torch']))} |")
    one_thread = [k for k in gemm if k[2] == 1] + [k for k in rest if k[2] == 1]  # ORT: in its own table
    if one_thread:
        print("\n### One thread, per CPU second (steadier than wall-clock time on a busy machine)\n")
        print("Work divided by the CPU time the case used (xcnn: its thread; PyTorch: the process), "
              "so time slices lost to other processes do not count; their cache pollution still does.\n")
        print("| case | unit | xcnn | reference | xcnn / reference |")
        print("|---|---|---|---|---|")
        for key in one_thread:
            r = cpu_results[key]
            x = statistics.median(r["xcnn"])
            if key[0] == "gemm":
                m, k, n = GEMM_SHAPES[key[1]]
                name, unit = f"GEMM {key[1]} {m}×{k}×{n}", "GFLOP/s"
                refs = {c: statistics.median(r[c]) for c in ("openblas", "openblas_haswell") if c in r}
                if not refs:
                    print(f"| {name} | {unit} | {x:.1f} | - | - |")
                    continue
                best = max(refs, key=refs.get)
                label = "Haswell" if best == "openblas_haswell" else context.get("openblas_core", "default")
                label = f"OpenBLAS {label}"
                ref, ref_text = refs[best], f"{refs[best]:.1f} ({label})"
            else:
                (name, unit), ref = labels[key[1]], statistics.median(r["torch"])
                ref_text = f"{fmt(ref, unit)} (PyTorch)"
            print(f"| {name} | {unit} | {fmt(x, unit)} | {ref_text} | {x / ref:.2f} |")
    scaling = sorted({(k[0], k[1]) for k in results
                      if k[0] not in ("sweep", "onnxruntime") and (k[0], k[1], 1) in results and (k[0], k[1], 2) in results},
                     key=lambda k: (k[0] != "gemm", list(GEMM_SHAPES).index(k[1]) if k[0] == "gemm" else
                                    list(labels).index(k[1])))
    if scaling:
        print("\n### Two threads / one thread (ratio of the medians)\n")
        print("| case | xcnn | reference |")
        print("|---|---|---|")
        for group, case in scaling:
            one, two = results[(group, case, 1)], results[(group, case, 2)]
            speedup = lambda column: statistics.median(two[column]) / statistics.median(one[column])  # noqa: E731
            if group == "gemm":
                name, refs = f"GEMM {case}", [c for c in ("openblas", "openblas_haswell") if c in one]
                names = {"openblas": "OpenBLAS", "openblas_haswell": "OpenBLAS Haswell"}
                reference = ", ".join(f"{names[c]} {speedup(c):.2f}" for c in refs) or "-"
            else:
                name, reference = labels[case][0], f"PyTorch {speedup('torch'):.2f}"
            print(f"| {name} | {speedup('xcnn'):.2f} | {reference} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_dir", nargs="?", default="build/bench",
                        help="CMake build directory with benchmarks/bench_* (default: build/bench)")
    parser.add_argument("--repetitions", type=int, default=3, help="passes over all cases (default 3)")
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds each case is timed for, per repetition (default 0.5)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--only", default="gemm,layers,newlayers,sweep,models,onnxruntime",
                        help="comma-separated groups among gemm, layers, newlayers, sweep, models, onnxruntime "
                             "(default: all)")
    parser.add_argument("--filter", help="sweep group: only the shapes whose name contains one of these "
                        "comma-separated strings")
    parser.add_argument("--ort-dir", help="folder holding node_modules/onnxruntime-node (default: "
                                          "$XCNN_ONNXRUNTIME_NODE_DIR, else <build dir>/../onnxruntime)")
    parser.add_argument("--json", help="also write every measurement to this JSON file")
    args = parser.parse_args()

    ensure_fair_malloc()
    torch = import_torch()
    threads = [int(t) for t in args.threads.split(",")]
    groups = set(args.only.split(","))
    unknown = groups - {"gemm", "layers", "newlayers", "sweep", "models", "onnxruntime"}
    if unknown:
        parser.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    needed = {"gemm": "bench_gemm", "layers": "bench_conv2d", "sweep": "bench_conv2d", "newlayers": "bench_layers",
              "models": "bench_models", "onnxruntime": "bench_models"}
    for name in sorted({needed[g] for g in groups}):
        path = os.path.join(args.build_dir, "benchmarks", name)
        if not os.access(path, os.X_OK):
            sys.exit(f"compare_pytorch: {path} not found; build with: cmake --preset bench && "
                     f"cmake --build --preset bench")

    have_openblas = "gemm" in groups and has_openblas_cases(args.build_dir)
    ort_worker, ort_models = None, {}
    if "onnxruntime" in groups:
        ort_dir = find_ort_dir(args.ort_dir, args.build_dir)
        if ort_dir is None:
            print("compare_pytorch: onnxruntime-node not found (--ort-dir); skipping the onnxruntime group",
                  file=sys.stderr)
            groups.discard("onnxruntime")
        else:
            ort_models = export_onnx_models(torch, tempfile.mkdtemp(prefix="xcnn-ort-"))
            ort_worker = OrtWorker(ort_dir)
    if args.filter:
        keep = args.filter.split(",")
        for name in list(SWEEP):
            if not any(k in name for k in keep):
                del SWEEP[name]
    items = plan(args.build_dir, threads, groups, have_openblas)
    torch_table = torch_cases(torch)
    torch_steps = {}  # built once, reused by every repetition
    load_before = os.getloadavg()
    started = time.time()
    results, cpu_results, context, cores = {}, {}, {}, {}
    for rep in range(args.repetitions):
        for item in items:
            label = f"[{rep + 1}/{args.repetitions}] {'/'.join(map(str, item['row']))} {item['column']}"
            if item["column"] in ("ort", "ort_call"):
                value, per_cpu = ort_worker.time(ort_models[item["model"]], item["batch"], item["row"][2],
                                                 args.min_time)
            elif item["column"] == "torch":
                build, work = torch_table[item["case"]]
                if item["case"] not in torch_steps:
                    torch_steps[item["case"]] = build()
                value, per_cpu = run_torch(torch, torch_steps[item["case"]], work, item["row"][2], args.min_time)
            else:
                value, per_cpu, ctx = run_xcnn(item["binary"], item["name"], item["counter"], args.min_time,
                                               item["env"])
                if "openblas_core" in ctx:
                    cores[item["column"]] = ctx["openblas_core"]
                    if item["column"] == "openblas":
                        context["openblas_core"] = ctx["openblas_core"]
                if "xcnn_simd" in ctx:
                    context["xcnn_simd"] = ctx["xcnn_simd"]
            print(f"{label}: {value:.1f}", file=sys.stderr, flush=True)
            results.setdefault(item["row"], {}).setdefault(item["column"], []).append(value)
            cpu_results.setdefault(item["row"], {}).setdefault(item["column"], []).append(per_cpu)
    load_after = os.getloadavg()
    if ort_worker is not None:
        ort_worker.close()

    print(f"## xcnn vs PyTorch {torch.__version__} — {cpu_model()}, {os.cpu_count()} logical CPUs\n")
    print(f"- build dir `{args.build_dir}`; {args.repetitions} repetitions of ≥ {args.min_time} s per case, "
          f"interleaved; medians shown, `range` = min–max of the per-repetition ratios")
    print(f"- load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; after: "
          f"{', '.join(f'{v:.2f}' for v in load_after)}; wall time {time.time() - started:.0f} s")
    print(f"- both sides ran with `GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}` (the fair allocator "
          "baseline: PyTorch keeps its large buffers instead of page-faulting on them every call)")
    if max(load_before[0], load_after[0]) > 1.0:
        print("- **the load average exceeded 1: other processes were using the CPUs, so the numbers "
              "(the two-thread ones above all) are lower and noisier than on an idle machine**")
    if cores:
        print(f"- OpenBLAS kernels: default = {cores.get('openblas', '?')}, with OPENBLAS_CORETYPE=Haswell = "
              f"{cores.get('openblas_haswell', '?')}; xcnn's SIMD target: {context.get('xcnn_simd', '?')}")
    print(f"- PyTorch: torch.set_num_threads(t), OPENBLAS_NUM_THREADS=1, "
          f"oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}")
    print_tables(results, cpu_results, context)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_before": load_before, "load_after": load_after, "context": context, "cores": cores,
                       "results": [{"group": k[0], "case": k[1], "threads": k[2], "values": v,
                                    "per_cpu_second": cpu_results[k]}
                                   for k, v in results.items()]}, f, indent=1)


if __name__ == "__main__":
    main()
