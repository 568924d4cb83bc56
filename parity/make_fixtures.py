"""Writes the PyTorch parity fixtures of nnc: run by hand where PyTorch is installed.

    python parity/make_fixtures.py            # writes parity/fixtures/*.safetensors

For each seed network, builds it in PyTorch as d2l writes it (small copies: fewer channels,
smaller inputs), with module names equal to nnc's layer names, and records in one
safetensors file: the initial weights under their state_dict names, an input batch and
labels, the output in eval mode, the output in train mode (dropout seeded), and every
state_dict entry after one SGD step (lr 0.1) on the cross-entropy of that train-mode output.
The Rust parity tests load each file into the model built from the matching .net file
(interpreter and model!) and compare. The table NETWORKS must match theirs.
"""

import os
import sys

import torch
from safetensors.torch import save_file
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from d2l import alexnet, googlenet, lenet, lenet_bn, nin, resnet18, vgg  # noqa: E402

# name: (the .net file, its --set parameters, input size)
NETWORKS = {
    "lenet": ("lenet.net", {}, 28),
    "lenet_bn": ("lenet-bn.net", {}, 28),
    "alexnet": ("alexnet.net", {"size": 96, "ratio": 8, "hidden": 64}, 96),
    "vgg": ("vgg11.net", {"size": 32, "ratio": 16, "hidden": 64}, 32),
    "nin": ("nin.net", {"size": 96, "ratio": 8}, 96),
    "googlenet": ("googlenet.net", {"ratio": 8}, 96),
    "resnet18": ("resnet18.net", {"size": 32, "ratio": 8}, 32),
}
BATCH, LR, DROPOUT_SEED = 4, 0.1, 123


# The small copies: the same arguments as the .net files' --set parameters in NETWORKS.
BUILDERS = {
    "lenet": lenet,
    "lenet_bn": lenet_bn,
    "alexnet": lambda: alexnet(r=8, hidden=64, size=96),
    "vgg": lambda: vgg(r=16, hidden=64, size=32),
    "nin": lambda: nin(r=8),
    "googlenet": lambda: googlenet(r=8),
    "resnet18": lambda: resnet18(r=8),
}


def fixture(name):
    _, _, size = NETWORKS[name]
    torch.manual_seed(0)
    net = BUILDERS[name]()
    initial = {k: v.detach().clone() for k, v in net.state_dict().items()}
    x = torch.randn(BATCH, 1, size, size)
    labels = torch.randint(10, (BATCH,))
    net.eval()
    with torch.no_grad():
        y_eval = net(x)
    net.train()
    torch.manual_seed(DROPOUT_SEED)
    y_train = net(x)
    loss = F.cross_entropy(y_train, labels)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    opt.zero_grad()
    loss.backward()
    opt.step()
    tensors = dict(initial)
    tensors.update({"fixture.input": x, "fixture.labels": labels, "fixture.output_eval": y_eval,
                    "fixture.output_train": y_train.detach()})
    tensors.update({f"fixture.after.{k}": v.detach().clone() for k, v in net.state_dict().items()})
    return {k: v.contiguous() for k, v in tensors.items()}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    os.makedirs(out, exist_ok=True)
    for name, (net_file, overrides, _) in NETWORKS.items():
        path = os.path.join(out, f"{name}.safetensors")
        metadata = {"net": net_file, "set": ",".join(f"{k}={v}" for k, v in overrides.items()), "torch": torch.__version__}
        save_file(fixture(name), path, metadata=metadata)
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
