"""Writes parity/fixtures/optim/steps.safetensors: torch.optim's SGD and Adam steps on a few
small tensors, which nnc's optimiser (runtime/src/train.rs) must reproduce. Run by hand where
PyTorch is installed:

    python parity/make_optim_fixture.py

It records the initial tensors (`initial.NAME`), a gradient for each of three steps
(`grad.STEP.NAME`), and for each optimiser setting the tensors after the three steps
(`SETTING.NAME`), computed by torch.optim's default (for-loop) implementation; in the `_late`
settings a tensor has no gradient at the first step. The settings must match OPTIMISERS in train.rs's
test.
"""

import os

import torch
from safetensors.torch import save_file

SHAPES = {"linear.weight": (4, 3), "linear.bias": (4,), "conv.weight": (2, 3, 2, 2)}
STEPS = 3
# name: (torch.optim class, its arguments, the tensors without a gradient at the first step)
SETTINGS = {
    "sgd": (torch.optim.SGD, {"lr": 0.1}, []),
    "sgd_momentum": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}, []),
    # A tensor whose momentum buffer starts a step after the others'.
    "sgd_momentum_late": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}, ["linear.bias"]),
    "adam": (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.01}, []),
    # A tensor whose moments and step count start a step after the others': torch.optim counts
    # Adam's steps per tensor, so its first step is bias-corrected as a first step.
    "adam_late": (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.01}, ["linear.bias"]),
}


def main():
    torch.manual_seed(0)
    initial = {name: torch.randn(shape) for name, shape in SHAPES.items()}
    grads = [{name: torch.randn(shape) for name, shape in SHAPES.items()} for _ in range(STEPS)]
    tensors = {f"initial.{n}": t for n, t in initial.items()}
    for step, g in enumerate(grads):
        tensors.update({f"grad.{step}.{n}": t for n, t in g.items()})
    for setting, (optimiser, args, late) in SETTINGS.items():
        params = {n: t.clone().requires_grad_() for n, t in initial.items()}
        opt = optimiser(params.values(), foreach=False, **args)
        for step, g in enumerate(grads):
            opt.zero_grad()
            for n, p in params.items():
                p.grad = None if step == 0 and n in late else g[n].clone()
            opt.step()
        tensors.update({f"{setting}.{n}": p.detach().clone() for n, p in params.items()})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "optim", "steps.safetensors")
    save_file(tensors, path, metadata={"torch": torch.__version__})
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
