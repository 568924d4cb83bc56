"""The seed networks as d2l writes them in PyTorch, with width and size parameters for small
copies, and the stages of GoogLeNet and ResNet-18 named as nnc names them (b1..b5, fc, head),
so that state_dict keys equal nnc's parameter names. Shared by parity/make_fixtures.py and
bench/compare.py.
"""

import gzip
import struct
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F


def read_idx(path):
    """An IDX file of unsigned bytes (raw or gzipped) as a uint8 tensor of its dimensions."""
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))


def lenet_bn():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(), nn.Linear(84, 10))


def alexnet(r=1, hidden=4096, size=224):
    side = (size + 2 - 11) // 4 + 1  # the first convolution
    for _ in range(3):  # three 3×3, stride-2 max-pools
        side = (side - 3) // 2 + 1
    return nn.Sequential(
        nn.Conv2d(1, 96 // r, kernel_size=11, stride=4, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96 // r, 256 // r, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256 // r, 384 // r, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384 // r, 384 // r, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384 // r, 256 // r, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(256 // r * side * side, hidden), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(hidden, 10))


def vgg_block(num_convs, in_channels, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(r=1, hidden=4096, size=224):
    conv_arch = [(n, c // r) for n, c in ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))]
    blocks, in_channels = [], 1
    for num_convs, out_channels in conv_arch:
        blocks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    side = size // 32
    return nn.Sequential(*blocks, nn.Flatten(),
                         nn.Linear(out_channels * side * side, hidden), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(hidden, 10))


def nin_block(in_channels, out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())


def nin(r=1):
    return nn.Sequential(
        nin_block(1, 96 // r, kernel_size=11, strides=4, padding=0), nn.MaxPool2d(3, stride=2),
        nin_block(96 // r, 256 // r, kernel_size=5, strides=1, padding=2), nn.MaxPool2d(3, stride=2),
        nin_block(256 // r, 384 // r, kernel_size=3, strides=1, padding=1), nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        nin_block(384 // r, 10, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())


class Inception(nn.Module):
    def __init__(self, in_channels, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def googlenet(r=1):
    def inc(i, c1, c2, c3, c4):
        return Inception(i // r, c1 // r, (c2[0] // r, c2[1] // r), (c3[0] // r, c3[1] // r), c4 // r)
    b1 = nn.Sequential(nn.Conv2d(1, 64 // r, kernel_size=7, stride=2, padding=3), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(nn.Conv2d(64 // r, 64 // r, kernel_size=1), nn.ReLU(),
                       nn.Conv2d(64 // r, 192 // r, kernel_size=3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b3 = nn.Sequential(inc(192, 64, (96, 128), (16, 32), 32), inc(256, 128, (128, 192), (32, 96), 64),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b4 = nn.Sequential(inc(480, 192, (96, 208), (16, 48), 64), inc(512, 160, (112, 224), (24, 64), 64),
                       inc(512, 128, (128, 256), (24, 64), 64), inc(512, 112, (144, 288), (32, 64), 64),
                       inc(528, 256, (160, 320), (32, 128), 128), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b5 = nn.Sequential(inc(832, 256, (160, 320), (32, 128), 128), inc(832, 384, (192, 384), (48, 128), 128),
                       nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    # d2l nests these in one nn.Sequential; nnc names the stages, and so does this copy.
    return nn.Sequential(OrderedDict([("b1", b1), ("b2", b2), ("b3", b3), ("b4", b4), ("b5", b5),
                                      ("fc", nn.Linear(1024 // r, 10))]))


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


def resnet18(r=1):
    b1 = nn.Sequential(nn.Conv2d(1, 64 // r, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64 // r), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    stages = OrderedDict([("b1", b1),
                          ("b2", nn.Sequential(*resnet_block(64 // r, 64 // r, 2, first_block=True))),
                          ("b3", nn.Sequential(*resnet_block(64 // r, 128 // r, 2))),
                          ("b4", nn.Sequential(*resnet_block(128 // r, 256 // r, 2))),
                          ("b5", nn.Sequential(*resnet_block(256 // r, 512 // r, 2))),
                          ("head", nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512 // r, 10)))])
    return nn.Sequential(stages)
