"""nnc against every PyTorch route, side by side in one run on the same machine and threads.

Models: LeNet (28×28), ResNet-18 at 96×96 (d2l's, grey images), MobileNetV2 at 96×96
(torchvision's, models/zoo/mobilenet_v2.net). Workloads: a forward pass in evaluation mode at
batch 1 and at batch 32, and a training step (forward, cross-entropy, backward, SGD) at batch 32.
Routes: PyTorch eager, eager with channels-last, TorchScript frozen (`torch.jit.freeze` +
`optimize_for_inference`, inference only), `torch.compile` (skip it with --no-compile: its
first step compiles for a long time), eager under CPU bf16 autocast; and nnc's, through
`nnc bench --serve`: its inference plan and its plain interpreter in fp32, and its plan and
training step under `--precision bf16` (libtorch's autocast, as PyTorch's bf16 route), beside
PyTorch's bf16.
On glibc, PyTorch runs with the allocator set as the `nnc` commands set theirs
(`keep_freed_memory`; the table's header says whether), so that the ratios do not measure page
faults that one side pays and the other does not.

Every figure is examples per second, the median of timed batches after a warm-up: at least
--runs of them, and for a model's fast workloads as many as PyTorch eager's slowest workload at
that batch fills in --min-time seconds (`batch_counts`; at --runs 20 alone, LeNet's training
step, about 3 ms a batch, was measured over 60 ms, which one hiccup of the machine can fill),
the same count for every route and for nnc at that batch. Each figure is measured --repeats
times, and each cell shows the median of the repeats and their spread (min–max).

The figures are taken in turns (`take_turns`). Before the first repeat, the script makes every
PyTorch route's step for each model at each batch, and keeps them to the end (a few GB). In
each repeat, for each model at each batch, it starts two `nnc bench --serve` processes (fp32
and bf16), which set up (their layout measurements included) and then time a workload over
the batches asked for; then each workload's turns run one after another: nnc's plan, its
interpreter and its bf16 route, and each PyTorch route, each over the same count of batches
after its own warm-up, nnc's turns first in odd repeats and last in even ones. So the figures
a ratio divides are seconds apart, the repeats spread over the whole run, and each repeat
samples nnc's set-up anew, as each `nnc` command sets up anew: a busy spell that misleads its
layout measurements spoils one repeat, not the run. After the table, it prints what nnc's
set-up chose in each repeat (`print_choices`). A machine shared with others has busy spells, seconds to
minutes long, in which a figure falls by up to half, and they need not slow nnc and PyTorch
alike: on this project's 2-core VM they slowed nnc more (LeNet's training step, measured
alternately: nnc from 20k examples/s to 10k, PyTorch from 15.5k to 11.5k; perhaps as PyTorch
spends more of its step in Python, between kernels). When each `nnc bench` ran once per repeat
for all its workloads, minutes could pass between nnc's figure and PyTorch's, and a spell that
fell on one side only decided a repeat's ratio.

It prints nnc's ratio to PyTorch eager and to the best fp32 PyTorch route, and nnc's bf16 ratio
to PyTorch's bf16 autocast, each computed within a repeat and shown as the median of the
repeats' ratios and their spread, then as the ratio of the best figures of all repeats. The
best figures are each side's speed on a quiet machine as nearly as the run saw it; one fast
repeat decides them, so they can fall outside the per-repeat spread, and where one side never
ran quiet they favour the other. It also prints the fraction of the machine's fp32 matmul
peak that each nnc figure reaches (the peak is measured here: the fastest of square matmuls of
1024, 2048 and 4096 on the same threads; a training step is counted as three forward passes of
multiply-adds; oneDNN's convolutions can beat MKL's matmul, so a figure above 100 is possible).

    python bench/compare.py [--threads 2] [--repeats 3] [--no-compile]

Needs the release nnc with the runtime (`cargo build --release -p nnc-cli -p nnc-torch`, or
--nnc PATH) and a Python with torch and torchvision.
"""

import argparse
import ctypes
import functools
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch
from torch.nn import functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "parity"))
from d2l import lenet, resnet18  # noqa: E402  (d2l's code, shared with the parity fixtures)


def mobilenet_v2():
    import torchvision

    return torchvision.models.mobilenet_v2(num_classes=1000)


# name: (PyTorch module, input channels, size, .net file, its --set values)
MODELS = {
    "lenet": (lenet, 1, 28, "models/lenet.net", []),
    "resnet18": (resnet18, 1, 96, "models/resnet18.net", ["size=96"]),
    "mobilenet_v2": (mobilenet_v2, 3, 96, "models/zoo/mobilenet_v2.net", ["size=96"]),
}
WORKLOADS = [("forward", 1), ("forward", 32), ("train", 32)]
ROUTES = ["eager", "channels-last", "frozen", "compile", "bf16 autocast"]


def measure(step, batch, warmup, runs):
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


def batch_counts(a, models):
    """The timed batches of each model's figures at each batch size: at least --runs, and as
    many as PyTorch eager's slowest workload at that batch (its training step where it has
    one) fills in --min-time seconds, timed over a few batches after a warm-up. Counted once,
    before the repeats, from one route, so that every route and nnc measure the same number of
    batches of a workload."""
    counts = {}
    for name in models:
        make, channels, size, _, _ = MODELS[name]
        for batch in sorted({b for _, b in WORKLOADS}):
            seconds = max(b / measure(pytorch_step(make, channels, size, "eager", workload, b), b, a.warmup, 5)
                          for workload, b in WORKLOADS if b == batch)
            counts[(name, batch)] = max(a.runs, round(a.min_time / seconds))
    return counts


def keep_freed_memory():
    """Sets glibc's allocator in this process as the `nnc` commands set their own
    (`cli/src/allocator.rs`): freed blocks under 32 MB kept for the next allocation instead of
    unmapped, and the heap trimmed only past 64 MB free. glibc's defaults move both thresholds
    with what the process has freed so far and give memory back that the next batch asks for
    again, so PyTorch would pay page faults that nnc's settings spare, and the ratios would
    measure the allocator as well as the compiled graph: measured with `getrusage` over three runs, a
    channels-last forward of ResNet-18 at batch 32 in this script took 9,347-11,801 minor page
    faults a batch without this and 556-712 with it. A PyTorch user gets the same with
    `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_`, or from another allocator, as
    PyTorch's launcher for Xeon CPUs (`python -m torch.backends.xeon.run_cpu`) preloads tcmalloc
    or jemalloc. Where the C library is not glibc, nothing changes, as with nnc's own setting."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # no glibc, or a C library without `mallopt`
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    # Both set, as nnc sets both, whatever the first returns; glibc's `mallopt` returns 1 on success.
    results = [mallopt(m_mmap_threshold, 32 << 20), mallopt(m_trim_threshold, 64 << 20)]
    return all(r == 1 for r in results)


def matmul_peak(threads, sizes=(1024, 2048, 4096), runs=5):
    """The fp32 FLOP/s of the fastest of square matmuls of several sizes on these threads (each
    the best of `runs`): the machine's practical peak. oneDNN's convolutions can run faster
    than this (on this project's AMD EPYC, a 3x3 convolution of 64 channels reaches about 1.1x
    MKL's best matmul), so a fraction above 100 % is possible."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        for _ in range(runs):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def pytorch_step(make, channels, size, route, workload, batch):
    """A step function for the route and workload, or None where the route has no such step."""
    torch.manual_seed(0)
    net = make()
    x = torch.randn(batch, channels, size, size)
    y = torch.randint(10, (batch,))
    if route == "channels-last":
        net = net.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    if workload == "forward":
        net.eval()
        if route == "frozen":
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
        elif route == "compile":
            net = torch.compile(net)
        autocast = route == "bf16 autocast"

        def forward():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                net(x)

        return forward
    if route == "frozen":
        return None
    net.train()
    # The fused step, one kernel over every tensor, as nnc's optimiser steps: on CPU tensors
    # PyTorch's default is a loop over the parameters.
    opt = torch.optim.SGD(net.parameters(), lr=0.01, fused=True)
    model = torch.compile(net) if route == "compile" else net
    autocast = route == "bf16 autocast"

    def train():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return train


class NncServer:
    """`nnc bench --serve` of a model at a batch, in fp32 or bf16: one process, set up once, that
    times a workload over a number of batches when asked, so that its turns can alternate with
    PyTorch's (`measure_in_turns`)."""

    def __init__(self, a, name, batch, precision):
        _, _, _, file, sets = MODELS[name]
        # On the CPU, as every PyTorch route here: `nnc bench` would take a GPU that libtorch sees.
        args = [a.nnc, "bench", file, "--serve", "--device", "cpu", "--batch", str(batch),
                "--threads", str(a.threads), "--warmup", str(a.warmup), "--precision", precision]
        for s in sets:
            args += ["--set", s]
        self.process = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, encoding="utf-8")
        # The setting comes once nnc has set up, its layout measurements included: waiting for
        # it keeps anything else from running beside them.
        self.setting = self.read()

    def read(self):
        line = self.process.stdout.readline()
        if not line:
            self.ended()
        answer = json.loads(line)
        if "error" in answer:
            sys.exit(f"nnc bench --serve: {answer['error']}")
        return answer

    def ended(self):
        """Stops the script: the process ended before it was told to (its error is on stderr)."""
        sys.exit(f"nnc bench --serve ended with exit code {self.process.wait()}: {' '.join(self.process.args)}")

    def measure(self, workload, runs):
        """The median examples/s of `runs` batches of `workload` after nnc's warm-up."""
        try:
            self.process.stdin.write(f"{workload} {runs}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self.ended()
        return self.read()["median"]

    def close(self):
        self.process.stdin.close()
        if self.process.wait() != 0:
            sys.exit(f"nnc bench --serve ended with exit code {self.process.returncode}")


def macs(nnc, file, sets):
    args = [nnc, "check", file, "--format", "json"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["files"][0]["networks"][0]["totals"]["macs"]


def ratio_cell(nnc, references):
    """nnc's ratio to the best of `references` (each a list of figures, one per repeat), repeat
    by repeat: the median and, over several repeats, the spread; then the ratio of the best
    figures of all repeats ("best"), each side's speed on a quiet machine as nearly as the run
    saw it (a busy spell only ever slows a figure down, and does not slow nnc and PyTorch alike:
    see the module's notes)."""
    # Every route measures in every repeat or in none: a failed measurement stops the script.
    assert all(len(r) == len(nnc) for r in references), "figures missing from a repeat"
    ratios = sorted(n / max(r[i] for r in references) for i, n in enumerate(nnc))
    med = statistics.median(ratios)
    if len(ratios) == 1:
        return f"×{med:.2f}"
    best = max(nnc) / max(max(r) for r in references)
    return f"×{med:.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f}), best ×{best:.2f}"


def cell(values):
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.1f}"
    return f"{med:.1f} ({min(values):.0f}–{max(values):.0f})"


def pytorch_turns(a, name, batch, runs, routes):
    """Each PyTorch route's turns of a model at `batch`, by workload: (route, measure) pairs that
    time `runs` batches after a warm-up and give the median examples/s, each step made and
    warmed up now."""
    make, channels, size, _, _ = MODELS[name]
    by_workload = {}
    for workload, b in WORKLOADS:
        if b != batch:
            continue
        by_workload[workload] = []
        for route in routes:
            step = pytorch_step(make, channels, size, route, workload, b)
            if step is None:
                continue
            # Warmed up once now (each turn warms up again): torch.compile compiles at its
            # first call.
            for _ in range(a.warmup + (2 if route == "compile" else 0)):
                step()
            by_workload[workload].append((route, functools.partial(measure, step, b, a.warmup, runs)))
    return by_workload


def nnc_turns(a, name, batch, runs, servers):
    """nnc's turns of a model at `batch`, by workload, as `pytorch_turns`: its plan, its
    interpreter and its bf16 route, from two `nnc bench --serve` processes set up now and
    added to `servers`."""
    nnc, bf16 = NncServer(a, name, batch, "fp32"), NncServer(a, name, batch, "bf16")
    servers += [nnc, bf16]
    by_workload = {}
    for workload, b in WORKLOADS:
        if b != batch:
            continue
        key = "forward" if workload == "forward" else "train"
        turns = [("nnc", functools.partial(nnc.measure, key, runs))]
        if workload == "forward":
            turns.append(("nnc plain", functools.partial(nnc.measure, "plain", runs)))
        turns.append(("nnc bf16", functools.partial(bf16.measure, key, runs)))
        by_workload[workload] = turns
    return by_workload


def take_turns(repeat, name, batch, nnc, pytorch, results):
    """One repeat of a model's figures at `batch`, into `results`: a workload's turns one after
    another, so that the figures a ratio divides are seconds apart; nnc's turns first in odd
    repeats and last in even ones, so that a drift of the machine favours neither."""
    for workload, pytorch_turns in pytorch.items():
        order = nnc[workload] + pytorch_turns if repeat % 2 == 0 else pytorch_turns + nnc[workload]
        for route, turn in order:
            # The threads of the turn before, in this process or nnc's, spin for a while after
            # their last batch (libgomp's wait policy) before they sleep: not beside this one.
            time.sleep(0.05)
            results.setdefault((name, workload, batch, route), []).append(turn())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--runs", type=int, default=10, help="timed batches per figure, at least")
    p.add_argument("--min-time", type=float, default=1.0,
                   help="seconds of batches per figure, at least, as PyTorch eager runs them (see batch_counts)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    p.add_argument("--nnc", default=os.path.join(ROOT, "target", "release", "nnc"))
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    a = p.parse_args()
    # No more threads than CPUs, for PyTorch as `nnc bench` caps its own.
    a.threads = min(a.threads, len(os.sched_getaffinity(0)))
    torch.set_num_threads(a.threads)
    allocator = "glibc keeping freed memory, as nnc does" if keep_freed_memory() else "the C library's defaults"
    routes = [r for r in ROUTES if not (a.no_compile and r == "compile")]
    models = a.models.split(",")

    # Before any measuring, so that a failure here costs nothing.
    flops = {name: 2 * macs(a.nnc, MODELS[name][3], MODELS[name][4]) for name in models}
    counts = batch_counts(a, models)
    # PyTorch's routes set up before the first repeat and kept to the last, so that the repeats
    # spread over the whole run as the figures of a ratio stay seconds apart.
    pytorch = {(name, batch): pytorch_turns(a, name, batch, counts[(name, batch)], routes)
               for name in models for batch in sorted({b for _, b in WORKLOADS})}
    results = {}  # (model, workload, batch, route) -> [examples/s per repeat]
    choices = {}  # (model, batch, precision) -> [nnc's setting per repeat]
    peaks = []
    for repeat in range(a.repeats):
        peaks.append(matmul_peak(a.threads))
        for (name, batch), by_workload in pytorch.items():
            # nnc's processes anew in each repeat, as each `nnc` command sets up anew: its
            # layout measurements, which a busy spell can mislead, are sampled once a repeat,
            # not once a run.
            servers = []
            nnc = nnc_turns(a, name, batch, counts[(name, batch)], servers)
            take_turns(repeat, name, batch, nnc, by_workload, results)
            for server in servers:
                server.close()
                choices.setdefault((name, batch, server.setting["precision"]), []).append(server.setting)
        print(f"repeat {repeat + 1}/{a.repeats} done", file=sys.stderr, flush=True)

    peak = max(peaks)
    print(f"fp32 matmul peak on {a.threads} threads: {peak / 1e9:.1f} GFLOP/s "
          f"(the best of {a.repeats} measures; {', '.join(f'{p / 1e9:.1f}' for p in peaks)})")
    batches = "; ".join(f"{name} b{batch} {n}" for (name, batch), n in counts.items())
    print(f"examples/s, median of {a.repeats} repeats in turns (min–max), each the median of a number of batches "
          f"({batches}); torch {torch.__version__}, {a.threads} threads; PyTorch's allocator: {allocator}\n")
    columns = ["nnc", "nnc plain", "nnc bf16"] + routes
    header = ["model", "workload"] + columns + ["nnc/eager", "nnc/best fp32", "nnc bf16/autocast", "% peak"]
    rows = []
    for name in models:
        flops_per_example = flops[name]
        for workload, batch in WORKLOADS:
            get = lambda route: results.get((name, workload, batch, route), [])  # noqa: E731
            nnc = get("nnc")
            fp32 = [get(r) for r in ["eager", "channels-last", "frozen", "compile"] if get(r)]
            ratios = [ratio_cell(nnc, [get("eager")]), ratio_cell(nnc, fp32),
                      ratio_cell(get("nnc bf16"), [get("bf16 autocast")])]
            work = flops_per_example * (3 if workload == "train" else 1)
            fraction = statistics.median(nnc) * work / peak
            rows.append([name, f"{workload} b{batch}"] + [cell(get(c)) for c in columns]
                        + ratios + [f"{100 * fraction:.1f}"])
    if a.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        for r in [header] + rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print_choices(choices)


def print_choices(choices):
    """What nnc's set-up chose in each repeat: its inference plan and, at a batch the script
    trains at, the convolutions its training step runs contiguous, each distinct choice with
    the repeats that made it, so that a repeat whose figure stands out can be told from one
    whose choice differs."""
    print("\nnnc's choices, by repeat (1-based):")
    for (name, batch, precision), settings in choices.items():
        shown = [("inference plan", lambda s: s["inference_plan"])]
        if ("train", batch) in WORKLOADS:
            shown.insert(0, ("training, contiguous", lambda s: ", ".join(s["contiguous_convolutions"]) or "none"))
        for what, of in shown:
            seen = {}
            for repeat, setting in enumerate(settings, 1):
                seen.setdefault(of(setting), []).append(str(repeat))
            shown = "; ".join(f"{choice} (repeats {', '.join(r)})" for choice, r in seen.items())
            print(f"- {name} b{batch} {precision}, {what}: {shown}")


if __name__ == "__main__":
    main()
