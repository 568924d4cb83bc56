"""Other convolution algorithms libtorch offers, against oneDNN's direct ones, on ResNet-18's 3×3
convolutions at 96×96 (d2l's, grey images) and batch 32: why nnc's plan runs oneDNN's.

For each stride-1 3×3 convolution shape of the network it times, in one process, one after
another:
oneDNN's convolution on contiguous and on channels-last tensors (what nnc's plan chooses
between), NNPACK's Winograd convolution (`torch._nnpack_spatial_convolution`, the only Winograd
libtorch has on the CPU), and an im2col of nine shifted channels-last views with one matrix
product (`addmm`, MKL). It prints the medians, each algorithm's ratio to the faster oneDNN
layout, and how far NNPACK's output is from oneDNN's, relative to the largest output (nnc's
plan holds its outputs to 1e-5 of the interpreter's).

    python bench/conv_algorithms.py [--threads 2] [--runs 20]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def median_ms(f, runs):
    for _ in range(3):
        f()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {a.threads} threads, batch 32, median ms of {a.runs}; NNPACK available: {torch._nnpack_available()}")
    print(f"{'conv':>22} {'oneDNN':>8} {'oneDNN CL':>10} {'NNPACK':>15} {'im2col+addmm':>18} {'NNPACK error':>13}")
    with torch.no_grad():
        for c, s in [(64, 24), (128, 12), (256, 6), (512, 3)]:
            x = torch.randn(32, c, s, s)
            w = torch.randn(c, c, 3, 3) * (2 / (9 * c)) ** 0.5
            b = torch.randn(c)
            xc, wc = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
            wk = w.permute(2, 3, 1, 0).reshape(9 * c, c).contiguous()

            def im2col():
                xp = F.pad(xc, (1, 1, 1, 1)).permute(0, 2, 3, 1)
                cols = torch.cat([xp[:, i : i + s, j : j + s, :] for i in range(3) for j in range(3)], dim=3)
                return torch.addmm(b, cols.reshape(-1, 9 * c), wk)

            reference = F.conv2d(x, w, b, padding=1)
            winograd = torch._nnpack_spatial_convolution(x, w, b, [1, 1], [1, 1])
            error = ((winograd - reference).abs().max() / reference.abs().max()).item()
            unfolded = im2col().reshape(32, s, s, c).permute(0, 3, 1, 2)
            assert ((unfolded - reference).abs().max() / reference.abs().max()).item() < 1e-5
            t = {
                "contiguous": median_ms(lambda: F.conv2d(x, w, b, padding=1), a.runs),
                "channels-last": median_ms(lambda: F.conv2d(xc, wc, b, padding=1), a.runs),
                "nnpack": median_ms(lambda: torch._nnpack_spatial_convolution(x, w, b, [1, 1], [1, 1]), a.runs),
                "im2col": median_ms(im2col, a.runs),
            }
            best = min(t["contiguous"], t["channels-last"])
            cell = lambda k: f"{t[k]:.2f} (×{t[k] / best:.2f})"
            name = f"{c}→{c} on {s}×{s}"
            print(f"{name:>22} {t['contiguous']:8.2f} {t['channels-last']:10.2f} {cell('nnpack'):>15} {cell('im2col'):>18} {error:13.1e}")


if __name__ == "__main__":
    main()
