"""F(2x2, 3x3) against F(4x4, 3x3): forced timings on random 3x3 stride-1 convolutions, and the planner's regret.

    python benchmarks/winograd_tiles.py SEED [SEED ...] [--layers 40] [--json FILE]

For each seed, ``--layers`` random layers (batch 1-16, 8-512 channels each side, 7-128 pixels a side, padding 0
or 1, dilation 1 or 2, channels first or last; float32) are timed with ``jit_winograd``, ``jit_winograd4``,
``jit_gemm`` and ``jit_direct`` forced (the median of five calls after one), in this process, with nothing set
in the environment. It prints each layer's times and the planner's choice, then per seed the planner's regret
(the geometric mean of the chosen algorithm's time over the fastest measured one) as it stands and with
F(4x4, 3x3) never ranked (``WINOGRAD4_MIN_SIDE`` set out of reach), and the geometric mean of F(4x4, 3x3)'s time
over F(2x2, 3x3)'s by the side of the map. This is a measurement script, not a test: on a busy machine the
rows move by 10% or more, so judge the planner on two seeds or more.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np

import tconv
from tconv import _tuning
from tconv.engine import planner

ALGORITHMS = ("jit_winograd", "jit_winograd4", "jit_gemm", "jit_direct")


def _median_seconds(call, runs: int = 5) -> float:
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _layers(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        batch = int(rng.choice([1, 1, 2, 4, 8, 16]))
        c_in, c_out = (int(rng.choice([8, 16, 32, 64, 128, 256, 512])) for _ in range(2))
        size = int(rng.choice([7, 8, 12, 14, 16, 24, 28, 32, 48, 56, 64, 96, 128]))
        while batch * max(c_in, c_out) * size * size > 8 * 64 * 128 * 128:  # at most a U-Net layer's work
            size //= 2
        channels_last = bool(rng.random() < 0.4)
        padding = int(rng.choice([0, 1, 1, 1]))
        dilation = int(rng.choice([1, 1, 1, 1, 2]))
        if size + 2 * padding * dilation - 2 * dilation < 1:
            continue
        yield batch, c_in, c_out, size, channels_last, padding * dilation, dilation


def _choice(spec, channels_last: bool, batch: int) -> str:
    planner.plan.cache_clear()
    return planner.select(spec, np, channels_last, batch, 4).name  # float32, as timed


def measure(seed: int, count: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(seed + 1000)
    for batch, c_in, c_out, size, channels_last, padding, dilation in _layers(seed, count):
        shape = (batch, size, size, c_in) if channels_last else (batch, c_in, size, size)
        x = rng.standard_normal(shape, dtype=np.float32)
        w = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32)
        options = dict(padding=padding, dilation=dilation, channels_last=channels_last)
        times = {}
        for name in ALGORITHMS:
            try:
                with tconv.use_algorithm(name):
                    times[name] = _median_seconds(lambda x=x, w=w, options=options: tconv.conv(x, w, **options))
            except ValueError:  # not supported (a map too large for Winograd's buffers)
                continue
        spec = tconv.ConvSpec.build(
            transposed=False,
            input_size=(size, size),
            kernel_size=(3, 3),
            in_channels=c_in,
            out_channels=c_out,
            padding=padding,
            dilation=dilation,
        )
        chosen = _choice(spec, channels_last, batch)
        saved = _tuning.WINOGRAD4_MIN_SIDE
        _tuning.WINOGRAD4_MIN_SIDE = 1 << 30
        try:
            without = _choice(spec, channels_last, batch)
        finally:
            _tuning.WINOGRAD4_MIN_SIDE = saved
            planner.plan.cache_clear()
        row = dict(seed=seed, batch=batch, c_in=c_in, c_out=c_out, size=size, channels_last=channels_last,
                   padding=padding, dilation=dilation, times=times, chosen=chosen, without=without)  # fmt: skip
        rows.append(row)
        ms = "  ".join(f"{name} {seconds * 1e3:.2f}" for name, seconds in times.items())
        layout = "nhwc" if channels_last else "nchw"
        print(f"  x({batch}, {c_in}, {size}, {size}) -> {c_out} p{padding} d{dilation} {layout}: {ms}; chose {chosen}",
              flush=True)  # fmt: skip
    return rows


def _regret(rows: list[dict], key: str) -> float:
    logs = [math.log(r["times"][r[key]] / min(r["times"].values())) for r in rows if r[key] in r["times"]]
    return math.exp(sum(logs) / len(logs)) if logs else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", type=int, nargs="+")
    parser.add_argument("--layers", type=int, default=40)
    parser.add_argument("--json", help="also write every layer's times here")
    args = parser.parse_args()
    every = []
    for seed in args.seeds:
        rows = measure(seed, args.layers)
        every += rows
        print(f"seed {seed}: {len(rows)} layers; planner's regret {_regret(rows, 'chosen'):.3f}, "
              f"with F(4x4, 3x3) never ranked {_regret(rows, 'without'):.3f}", flush=True)  # fmt: skip
    both = [r for r in every if "jit_winograd" in r["times"] and "jit_winograd4" in r["times"]]

    def phase_side(r: dict) -> int:  # outputs along each axis of the call's smallest phase
        return (r["size"] + 2 * r["padding"] - 2 * r["dilation"]) // r["dilation"]

    for low, high in ((1, 16), (16, 32), (32, 1 << 30)):
        ratios = [r["times"]["jit_winograd4"] / r["times"]["jit_winograd"] for r in both
                  if low <= phase_side(r) < high]  # fmt: skip
        if ratios:
            mean = math.exp(sum(map(math.log, ratios)) / len(ratios))
            print(f"phase side {low}-{min(high, 9999) - 1}: F(4x4, 3x3) / F(2x2, 3x3) geometric mean {mean:.2f} "
                  f"over {len(ratios)} layers (range {min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(every, file)


if __name__ == "__main__":
    main()
