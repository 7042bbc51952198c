"""The ``tconv`` command (also ``python -m tconv``).

For now it has one job, ``tconv dcgan`` (the default): walk seed 000's DCGAN
generator through tconv on random weights and print the shape of every layer.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import numpy as np

from .ops import conv_transpose

# Seed 000's generator after its Dense + Reshape: (filters, kernel, stride, activation).
_DCGAN_LAYERS = ((128, 5, 1, "leaky_relu"), (64, 5, 2, "leaky_relu"), (1, 5, 2, "tanh"))
_DCGAN_EXPECTED = ((7, 7, 256), (7, 7, 128), (14, 14, 64), (28, 28, 1))


def _leaky_relu(x: np.ndarray, slope: float = 0.3) -> np.ndarray:
    return np.where(x > 0, x, slope * x)


def _glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def run_dcgan(batch: int = 16, seed: int = 0, out: TextIO | None = None) -> bool:
    """Run seed 000's DCGAN generator on random weights; print and check every shape.

    Returns whether every shape matches the seed's assertions.
    """
    stream = out if out is not None else sys.stdout
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, 100)).astype(np.float32)
    dense = _glorot_uniform(rng, (100, 7 * 7 * 256), 100, 7 * 7 * 256)
    h = _leaky_relu(z @ dense).reshape(batch, 7, 7, 256)
    rows = [("Dense + Reshape", h.shape[1:], dense.size, 0.0)]
    for filters, k, s, activation in _DCGAN_LAYERS:
        c_in = h.shape[-1]
        # tconv's transposed-convolution layout: (C_in, C_out, *kernel).
        w = _glorot_uniform(rng, (c_in, filters, k, k), c_in * k * k, filters * k * k)
        start = time.perf_counter()
        h = conv_transpose(h, w, stride=s, padding="same", channels_last=True)
        elapsed = time.perf_counter() - start
        h = np.tanh(h) if activation == "tanh" else _leaky_relu(h)
        rows.append((f"conv_transpose k{k} s{s} same", h.shape[1:], w.size, elapsed))

    ok = True
    print(f"Seed 000's DCGAN generator through tconv (batch {batch}, float32, channels last)", file=stream)
    print(f"{'layer':<30} {'output (H, W, C)':<18} {'weights':>10} {'time':>9}  check", file=stream)
    for (name, shape, params, seconds), expected in zip(rows, _DCGAN_EXPECTED):
        good = tuple(shape) == expected
        ok &= good
        verdict = "ok" if good else f"WRONG, expected {expected}"
        timing = f"{seconds * 1000:7.1f}ms" if seconds else ""
        print(f"{name:<30} {shape!s:<18} {params:>10,} {timing:>9}  {verdict}", file=stream)
    value_range = (float(h.min()), float(h.max()))
    print(f"output range after tanh: [{value_range[0]:.3f}, {value_range[1]:.3f}]", file=stream)
    print("all shapes match seed 000" if ok else "SHAPE MISMATCH", file=stream)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tconv`` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="tconv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    dcgan = sub.add_parser("dcgan", help="walk seed 000's DCGAN generator through tconv (the default)")
    dcgan.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    dcgan.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.command in (None, "dcgan"):
        batch = getattr(args, "batch", 16)
        if batch < 1:
            parser.error(f"--batch must be a positive int; received {batch}")
        return 0 if run_dcgan(batch=batch, seed=getattr(args, "seed", 0)) else 1
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2  # pragma: no cover
