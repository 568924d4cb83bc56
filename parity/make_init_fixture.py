"""Writes parity/fixtures/init/seeded.safetensors: the initial state_dict, after
torch.manual_seed(0), of the torch.nn modules of parity/fixtures/init/seeded.net, which a model
nnc builds after the same seed must equal bit for bit (runtime/tests/init.rs). Run by hand where
PyTorch is installed:

    python parity/make_init_fixture.py

Each module draws its values from the one random stream when it is built, in the order the
network builds them; nn.MultiheadAttention draws its output projection (an nn.Linear, bias
included, which it then zeroes) before its packed input projection.
"""

import os

import torch
from safetensors.torch import save_file
from torch import nn


class Seeded(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
        self.fc = nn.Linear(32, 3)


def main():
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in Seeded().state_dict().items()}
    out = os.path.join(os.path.dirname(__file__), "fixtures", "init", "seeded.safetensors")
    save_file(state, out)
    print(f"wrote {out}: {len(state)} tensors")


if __name__ == "__main__":
    main()
