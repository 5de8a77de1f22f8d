#!/usr/bin/env python3
"""The `--model resnet` network of xcnn-mnist and its default recipe, written in PyTorch, trained on
Fashion-MNIST: the reference for the accuracy and the time per epoch that docs/performance.md quotes
next to xcnn's.

    python3 benchmarks/fashion_pytorch.py --threads 2 --seed 1
    python3 benchmarks/fashion_pytorch.py --data /usr/share/datasets/fashion-mnist --epochs 10

The network and the recipe mirror examples/mnist/models.hpp (`make_resnet`) and the recipe of
examples/mnist/main.cpp for `--model resnet`; the module names make the state_dict names equal to
xcnn's (`3.main.0.weight`, `4.shortcut.1.running_mean`, ...), so `--save-npy DIR` writes files that
xcnn's import_npy reads. Runs with Debian's python3-torch; GLIBC_TUNABLES as in compare_pytorch.py.
"""

import argparse
import gzip
import os
import sys
import time

# xcnn's Residual as a torch.nn module, shared with the test fixture scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from xcnn_torch_modules import residual_class  # noqa: E402

FAIR_MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"


def reexec_if_needed():
    """Debian's python3 (with torch) and the fair allocator settings, as compare_pytorch.py."""
    env_ok = FAIR_MALLOC in os.environ.get("GLIBC_TUNABLES", "")
    try:
        import torch  # noqa: F401

        torch_ok = True
    except ImportError:
        torch_ok = False
    if env_ok and torch_ok:
        return
    if not env_ok:
        current = os.environ.get("GLIBC_TUNABLES", "")
        os.environ["GLIBC_TUNABLES"] = f"{current}:{FAIR_MALLOC}" if current else FAIR_MALLOC
    python = sys.executable if torch_ok else "/usr/bin/python3"
    os.execv(python, [python] + sys.argv)


def read_idx(path, offset, shape_tail):
    import numpy as np

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, np.uint8, offset=offset).reshape((-1,) + shape_tail)


def find(data_dir, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    sys.exit(f"fashion_pytorch: {stem}(.gz) not found in {data_dir}")


def make_resnet(torch):
    """examples/mnist/models.hpp's make_resnet in torch.nn: the layer indices are equal, so the
    state_dict names are equal. compare_pytorch.py benchmarks the same network."""
    nn = torch.nn

    Residual = residual_class(nn)

    class GlobalAvgPool2D(nn.Module):
        """xcnn::GlobalAvgPool2D: nn.AdaptiveAvgPool2d(1) and nn.Flatten() as one module, so the
        layer indices (and the state_dict names) are xcnn's."""

        def forward(self, x):
            return x.mean(dim=(2, 3))

    def block(c_in, c_out, stride):
        main = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )  # fmt: skip
        if c_in == c_out and stride == 1:
            return Residual(main)
        return Residual(main, nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False), nn.BatchNorm2d(c_out)))

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),  # 0-2
        nn.MaxPool2d(2),                                                       # 3: 14x14
        block(32, 32, 1), nn.ReLU(),                                           # 4-5
        block(32, 64, 2), nn.ReLU(),                                           # 6-7: 7x7
        block(64, 64, 1), nn.ReLU(),                                           # 8-9
        GlobalAvgPool2D(),                                                     # 10
        nn.Linear(64, 10),                                                     # 11
    )  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-lr", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--augment", action="store_true",
                        help="random flips and crops (padding 2); the default recipe has none: over 10 epochs "
                             "they cost accuracy")
    parser.add_argument("--save-npy", help="write the trained state_dict as DIR/<name>.npy")
    args = parser.parse_args()
    reexec_if_needed()

    import numpy as np
    import torch
    import torch.nn as nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    def images(stem):
        return torch.from_numpy(read_idx(find(args.data, stem), 16, (1, 28, 28)).astype(np.float32) / 255)

    def labels(stem):
        return torch.from_numpy(read_idx(find(args.data, stem), 8, ()).astype(np.int64))

    x_train, y_train = images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte")
    x_test, y_test = images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte")

    net = make_resnet(torch)

    steps_per_epoch = -(-len(x_train) // args.batch_size)  # the last batch is smaller, as xcnn's DataLoader
    optimizer = torch.optim.SGD(net.parameters(), lr=args.max_lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.max_lr,
                                                   total_steps=args.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()

    def augment(x):
        # Horizontal flip with p = 0.5 per image, then a random crop of the image zero-padded by 2.
        flip = torch.from_numpy(rng.random(len(x)) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        padded = nn.functional.pad(x, (2, 2, 2, 2))
        out = torch.empty_like(x)
        offsets = rng.integers(0, 5, size=(len(x), 2))
        for i, (dy, dx) in enumerate(offsets):
            out[i] = padded[i, :, dy:dy + 28, dx:dx + 28]
        return out

    def evaluate():
        net.eval()
        correct, loss = 0, 0.0
        with torch.no_grad():
            for k in range(0, len(x_test), 1000):
                logits = net(x_test[k:k + 1000])
                loss += float(loss_fn(logits, y_test[k:k + 1000])) * len(logits)
                correct += int((logits.argmax(1) == y_test[k:k + 1000]).sum())
        return loss / len(x_test), correct / len(x_test)

    print(f"torch {torch.__version__}, {args.threads} thread(s), seed {args.seed}, batch {args.batch_size}, "
          f"{args.epochs} epochs, augment {args.augment}")
    total = 0.0
    for epoch in range(1, args.epochs + 1):
        net.train()
        start = time.perf_counter()
        order = torch.from_numpy(rng.permutation(len(x_train)))
        for k in range(steps_per_epoch):
            idx = order[k * args.batch_size:(k + 1) * args.batch_size]
            x = x_train[idx]
            if args.augment:
                x = augment(x)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(x), y_train[idx]).backward()
            optimizer.step()
            schedule.step()
        seconds = time.perf_counter() - start
        total += seconds
        test_loss, accuracy = evaluate()
        print(f"epoch {epoch}: train {seconds:.1f} s, test loss {test_loss:.4f}, test accuracy {100 * accuracy:.2f} %",
              flush=True)
    print(f"final test accuracy {100 * accuracy:.2f} %, {total / args.epochs:.1f} s per epoch")
    if args.save_npy:
        os.makedirs(args.save_npy, exist_ok=True)
        for name, value in net.state_dict().items():
            np.save(os.path.join(args.save_npy, name + ".npy"), value.numpy())


if __name__ == "__main__":
    main()
