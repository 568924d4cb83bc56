"""Trains a module written by `nnc emit --target pytorch` on several GPUs or machines, with
PyTorch's DistributedDataParallel: the path for models that outgrow one machine.

    nnc emit --target pytorch models/resnet18.net --set size=96 > resnet18.py
    torchrun --nproc_per_node=4 examples/pytorch/train_ddp.py resnet18.py --epochs 10 --lr 0.05
    # two machines, eight GPUs each (run on both, with --node_rank=1 on the second):
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --master_port=29500 --nproc_per_node=8 \
        examples/pytorch/train_ddp.py resnet18.py --epochs 10 --lr 0.05

It reads Fashion-MNIST's IDX files (default: /usr/share/datasets/fashion-mnist, where
scripts/setup-data.sh installs them), resizes them to the module's input on the fly,
initialises like d2l's train_ch6 (Xavier-uniform), and trains with SGD, each process on its
share of every epoch. Rank 0 prints the metrics of each epoch and writes the weights as
safetensors, under nnc's names, so that `nnc eval --weights` and `nnc run --weights` read them.
"""

import argparse
import gzip
import importlib.util
import os
import struct

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def read_idx(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def load(data, split, limit):
    images = read_idx(os.path.join(data, f"{split}-images-idx3-ubyte.gz")).unsqueeze(1)
    labels = read_idx(os.path.join(data, f"{split}-labels-idx1-ubyte.gz")).long()
    return TensorDataset(images[:limit], labels[:limit])


def emitted_module(path):
    spec = importlib.util.spec_from_file_location("emitted", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__]
    return module, classes[-1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("module", help="a .py file written by `nnc emit --target pytorch`")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=256, help="per process")
    p.add_argument("--lr", type=float, default=0.9)
    p.add_argument("--limit", type=int, default=None, help="use only the first N examples (for a quick try)")
    p.add_argument("--out", default="ddp.safetensors")
    p.add_argument("--sync-bn", action="store_true", help="batch statistics over all processes (SyncBatchNorm; GPUs only)")
    a = p.parse_args()

    cuda = torch.cuda.is_available()
    if a.sync_bn and not cuda:
        p.error("--sync-bn needs GPUs: PyTorch's SyncBatchNorm runs only on CUDA")
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, local_rank = dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)

    module, cls = emitted_module(a.module)
    size = module.INPUT_SHAPE[2:]
    torch.manual_seed(0)  # the same initial weights on every process
    net = cls()
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    if a.sync_bn:
        # The emitted module calls its layers through their attributes, so the swapped-in
        # SyncBatchNorm modules are the ones forward runs.
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    net = DistributedDataParallel(net.to(device), device_ids=[local_rank] if cuda else None)

    train = load(a.data, "train", a.limit)
    test = load(a.data, "t10k", a.limit)
    sampler = DistributedSampler(train, shuffle=True)
    loader = DataLoader(train, batch_size=a.batch, sampler=sampler)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr)

    def prepare(x):
        x = x.to(device).float() / 255
        return x if tuple(x.shape[2:]) == tuple(size) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    for epoch in range(1, a.epochs + 1):
        sampler.set_epoch(epoch)
        net.train()
        totals = torch.zeros(3, device=device)  # loss sum, correct, examples
        for x, y in loader:
            x, y = prepare(x), y.to(device)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            totals += torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)], device=device)
        dist.all_reduce(totals)
        if rank == 0:
            net.eval()
            correct = 0
            with torch.no_grad():
                for x, y in DataLoader(test, batch_size=512):
                    correct += (net.module(prepare(x)).argmax(1).cpu() == y).sum().item()
            print(f"epoch {epoch}/{a.epochs}: loss {totals[0] / totals[2]:.3f}, train acc {totals[1] / totals[2]:.3f}, "
                  f"test acc {correct / len(test):.3f}, {dist.get_world_size()} processes")

    if rank == 0:
        from safetensors.torch import save_file
        save_file({k: v.detach().cpu().contiguous() for k, v in net.module.state_dict().items()}, a.out)
        print(f"weights: {a.out}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
