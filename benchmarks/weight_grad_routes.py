"""A convolution's weight gradient by each of the compiled path's routes, forced, against the route tconv takes.

    python benchmarks/weight_grad_routes.py [--json FILE] [--count N] SEED [SEED ...]

For the forward layers of ``tconv bench --sweep SEED --forward`` (the first ``--count`` of each seed), and for the
weight gradients of the seed models' layers (the U-Net's 3x3 layers and the transposed layers' adjoint
convolutions of the DCGAN generator and the U-Net), it times the three routes a convolution's weight gradient can
take on the compiled path, each called directly: the im2col and a product (``im2col.conv_weight_grad``), the
direct sums (``direct_conv.weight_grad``) and the register blocks (``weight_blocks.weight_grad``); and prints each
one's time, the cost model's estimate of each, and the route tconv takes (``algorithms.direct_weight_grad`` where
the planner runs the forward call on ``jit_direct`` or ``jit_dots``, else ``algorithms.blocks_weight_grad``). At
the end: the geometric mean of (the route taken) / (the route before the register blocks existed: the direct sums
where their rule holds, else the im2col), and of (the route taken) / (the faster of the route before and the
register blocks).

Medians of nine calls after one untimed, in this process with the thread counts it inherits (nothing set: the
user's environment). A measuring script, not a test; run it on a quiet machine. ``--json`` keeps the raw times.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np

import tconv
from tconv.engine import planner
from tconv.implementations.compiled import algorithms, direct_conv, im2col, weight_blocks
from tconv.tools.bench_cases import sweep

#: (x shape, output channels, kernel, stride, padding, channels-last): the seed models' weight gradients as
#: convolutions' (a transposed layer's as its adjoint's: x is the layer's output gradient)
MODEL_LAYERS = (
    ((8, 1, 64, 64), 16, (3, 3), 1, 1, False),
    ((8, 16, 64, 64), 16, (3, 3), 1, 1, False),
    ((8, 16, 32, 32), 32, (3, 3), 1, 1, False),
    ((8, 32, 32, 32), 32, (3, 3), 1, 1, False),
    ((8, 32, 16, 16), 64, (3, 3), 1, 1, False),
    ((8, 64, 16, 16), 64, (3, 3), 1, 1, False),
    ((8, 64, 32, 32), 32, (3, 3), 1, 1, False),
    ((8, 32, 64, 64), 16, (3, 3), 1, 1, False),
    ((8, 32, 32, 32), 64, (2, 2), 2, 0, False),
    ((8, 16, 64, 64), 32, (2, 2), 2, 0, False),
    ((64, 128, 7, 7), 256, (5, 5), 1, 2, True),
    ((64, 64, 14, 14), 128, (5, 5), 2, 2, True),
    ((64, 1, 28, 28), 64, (5, 5), 2, 2, True),
)


def _median(call) -> float:  # type: ignore[no-untyped-def]
    call()
    times = []
    for _ in range(9):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _route_times(x: np.ndarray, gy: np.ndarray, spec: tconv.ConvSpec, last: bool) -> dict[str, float]:
    """Each route's median time on one layer."""
    return {
        "im2col": _median(lambda: im2col.conv_weight_grad(x, gy, spec, last)),
        "direct": _median(lambda: direct_conv.weight_grad(x, gy, spec, last)),
        "blocks": _median(lambda: weight_blocks.weight_grad(x, gy, spec, last)),
    }


def _layers(seeds: list[int], count: int) -> list[tuple]:
    layers: list[tuple] = [(shape, c, k, s, p, 1, 1, last) for shape, c, k, s, p, last in MODEL_LAYERS]
    for seed in seeds:
        for case in sweep(seed, transposed=False)[:count]:
            layers.append(
                (case.x, case.c_out, case.kernel, case.stride, case.padding, case.dilation, case.groups,
                 case.channels_last)
            )  # fmt: skip
    return layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", type=int, nargs="*", default=[56])
    parser.add_argument("--count", type=int, default=20, help="layers of each seed's forward sweep")
    parser.add_argument("--json", help="keep the raw times in this file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, against_before, against_best = [], [], []
    print(f"{'layer':58s} {'im2col':>8s} {'direct':>8s} {'blocks':>8s}  taken    estimates (im2col/direct/blocks)")
    for shape, c_out, kernel, stride, padding, dilation, groups, last in _layers(args.seeds, args.count):
        spec = tconv.ConvSpec.build(
            transposed=False, input_size=shape[2:], kernel_size=kernel, in_channels=shape[1], out_channels=c_out,
            stride=stride, padding=padding, dilation=dilation, groups=groups,
        )  # fmt: skip
        batch = shape[0]
        if 2.0 * batch * c_out * shape[1] // groups * math.prod(kernel) * math.prod(spec.output_size) > 3e9:
            continue  # over a second on the slower routes
        x = rng.standard_normal(shape, dtype=np.float32)
        gy = rng.standard_normal((batch, c_out, *spec.output_size), dtype=np.float32)
        if last:
            x, gy = np.ascontiguousarray(np.moveaxis(x, 1, -1)), np.ascontiguousarray(np.moveaxis(gy, 1, -1))
        times = _route_times(x, gy, spec, last)
        estimates = {
            "im2col": algorithms._twin_product(spec) * batch,
            "direct": direct_conv.weight_grad_cost(spec) * batch,
            "blocks": weight_blocks.cost(spec, batch, last),
        }
        forward = planner.select(spec, np, last, batch, x.itemsize).name  # whose weight gradient runs
        direct = forward in ("jit_direct", "jit_dots") and algorithms.direct_weight_grad(spec)
        before = "direct" if direct else "im2col"
        taken = before if before == "direct" or not algorithms.blocks_weight_grad(spec, batch, last) else "blocks"
        against_before.append(times[taken] / times[before])
        against_best.append(
            times[taken] / min(times["im2col"] if before == "im2col" else times["direct"], times["blocks"])
        )
        layer = (
            f"{shape} -> {c_out} k{'x'.join(map(str, kernel))} s{stride} d{dilation} g{groups}{' nhwc' if last else ''}"
        )
        shown = "/".join(f"{estimates[name] * 1e3:.3f}" for name in ("im2col", "direct", "blocks"))
        measured = " ".join(f"{times[name] * 1e3:8.3f}" for name in ("im2col", "direct", "blocks"))
        print(f"{layer:58s} {measured}  {taken:7s}  {shown}", flush=True)
        rows.append(dict(layer=layer, times=times, estimates=estimates, before=before, taken=taken))
    geomean = lambda values: math.exp(sum(math.log(v) for v in values) / len(values))  # noqa: E731
    print(f"{len(rows)} layers: the route taken / the route before: {geomean(against_before):.3f}; "
          f"/ the faster of the two: {geomean(against_best):.3f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file)


if __name__ == "__main__":
    main()
