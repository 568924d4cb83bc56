"""PyTorch eager reference for `nnc bench`.

The networks of models/lenet.net and models/resnet18.net, written as d2l writes them, timed as
`nnc bench` times them: examples per second, median over timed batches after a warm-up, for a
forward pass in eval mode without gradients and for a training step (forward, cross-entropy,
backward, SGD update). Run by bench/compare.sh where PyTorch is installed.
"""

import argparse
import os
import statistics
import sys
import time

import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from d2l import lenet, read_idx, resnet18  # noqa: E402  (d2l's code, shared with the parity fixtures)


MODELS = {"lenet": lenet, "resnet18": resnet18}


def train_epoch(net, data_dir, batch, lr):
    """One epoch of d2l's train_ch6 loop on real data, batched as nnc train batches it
    (shuffled indices, uint8 images converted to [0, 1] per batch): training examples/s."""
    images = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz")).unsqueeze(1)
    labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")).long()
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    net.train()
    start = time.perf_counter()
    order = torch.randperm(len(labels))
    for i in range(0, len(labels), batch):
        index = order[i:i + batch]
        x = images.index_select(0, index).float() / 255
        y = labels.index_select(0, index)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return len(labels) / (time.perf_counter() - start)


def measure(warmup, runs, batch, step):
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", choices=MODELS, required=True)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--data", help="time one training epoch on this IDX folder instead")
    p.add_argument("--lr", type=float, default=0.9)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = MODELS[a.model]()
    if a.data:
        print(f"epoch {train_epoch(net, a.data, a.batch, a.lr):.1f}")
        return
    x = torch.randn(a.batch, 1, a.size, a.size)
    y = torch.randint(10, (a.batch,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def forward():
        net.eval()
        with torch.no_grad():
            net(x)

    def train():
        net.train()
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    print(f"forward {measure(a.warmup, a.runs, a.batch, forward):.1f}")
    print(f"train {measure(a.warmup, a.runs, a.batch, train):.1f}")


if __name__ == "__main__":
    main()
