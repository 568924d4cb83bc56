"""PyTorch eager reference for `nnc bench`.

The networks of models/lenet.net and models/resnet18.net, written as d2l writes them, timed as
`nnc bench` times them: examples per second, median over timed batches after a warm-up, for a
forward pass in eval mode without gradients and for a training step (forward, cross-entropy,
backward, SGD update). Run by bench/compare.sh where PyTorch is installed.
"""

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))


class Residual(nn.Module):
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


def resnet18():
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(64, 128, 2))
    b4 = nn.Sequential(*resnet_block(128, 256, 2))
    b5 = nn.Sequential(*resnet_block(256, 512, 2))
    return nn.Sequential(b1, b2, b3, b4, b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))


MODELS = {"lenet": lenet, "resnet18": resnet18}


def read_idx(path):
    """An IDX file of unsigned bytes (raw or gzipped) as a uint8 tensor of its dimensions."""
    import gzip
    import struct
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def train_epoch(net, data_dir, batch, lr):
    """One epoch of d2l's train_ch6 loop on real data, batched as nnc train batches it
    (shuffled indices, uint8 images converted to [0, 1] per batch): training examples/s."""
    import os
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
