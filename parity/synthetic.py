"""Synthetic tensors that nnc's Rust tests compute bit for bit without storing them.

A zoo fixture (`parity/fixtures/zoo/`) holds a network's output, not its weights: weights of
millions of parameters would not belong in the repository. Each weight and the input are a
function of their name and position instead, computed here in numpy's float32 and in Rust by
`nnc_runtime::parity::synthetic` (runtime/src/parity.rs), with the same integer hash and the
same float32 operations, so both sides hold identical bits.

    value(name, i) = u · scale, or 1 + c · u, where u = splitmix64(fnv1a64(name) + i·φ) >> 40,
    as a float32 in [-1, 1): u / 2²³ − 1 (exact: 24-bit integers and powers of two).

The kind of each tensor sets the scale, so that activations stay well-conditioned through a
deep network (and its batch norms, in eval mode, divide by variances near 1).
"""

import math

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) % (1 << 64)
    return np.uint64(h)


def uniform(name, n):
    """n float32 values in [-1, 1), a function of `name` and their position."""
    with np.errstate(over="ignore"):
        z = fnv1a64(name) + np.arange(n, dtype=np.uint64) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 23) - np.float32(1.0)


def tensor(name, shape):
    """The synthetic value of a state_dict entry (or of `input`), as a numpy array."""
    n = int(np.prod(shape, dtype=np.int64))
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    u = uniform(name, n)
    if name == "input":
        v = u
    elif name.endswith("running_var"):
        v = np.float32(1.0) + np.float32(0.5) * u
    elif name.endswith("running_mean") or (len(shape) == 1 and name.endswith("bias")):
        v = np.float32(0.1) * u
    elif len(shape) == 1:
        v = np.float32(1.0) + np.float32(0.1) * u
    else:
        fan_in = n // shape[0] if len(shape) > 0 and shape[0] > 0 else 1
        v = u * np.float32(math.sqrt(3.0 / max(fan_in, 1)))
    return v.reshape(shape)
