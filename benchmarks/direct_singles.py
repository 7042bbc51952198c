"""The direct sum's tiles against its whole planes on layers of fewer than four output channels a group, and the replay.

    python benchmarks/direct_singles.py --json FILE SEED COUNT   # time COUNT random layers of SEED, both routes
    python benchmarks/direct_singles.py --replay FILE [FILE ...] [--rates R ...]

The timing run draws random forward convolutions whose groups have one to three output channels (three in five
depthwise, the rest one group of 1-64 input channels), batch 1-32, 1-D to 3-D, kernels 1-9 (1-5 in 3-D), strides
1-3, some dilated (none whose kernel outgrows the padded input), and times ``jit_direct`` forced twice: in tiles
and in whole planes (its ``tiles_cheaper`` replaced for the call), alternated three rounds, the best of five calls
each, in this process with the thread counts it inherits; a layer whose tiles did not run (phases beyond the cache
or memory bounds) is left out, and the records are written after each layer. The replay asks the cost model of
this checkout, with ``DIRECT_TILE_SINGLE_RATE`` set to each of ``--rates``, which route it takes on each recorded
layer, and prints the geometric mean of the taken route's time over the faster one's (the regret; 1.00 always picks
the faster), next to always taking one route.
A measuring script, not a test; run it on a quiet machine (docs/design.md, "One channel's sums in registers").
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time

import numpy as np

import tconv
from tconv import _tuning
from tconv.implementations.compiled import direct_conv

ROUTES = ("planes", "tiles")


def _layers(seed: int, count: int) -> list[dict]:
    """``count`` random layers of fewer than four output channels a group (their arguments, JSON-ready)."""
    rng = np.random.default_rng(seed)
    layers: list[dict] = []
    while len(layers) < count:
        d = int(rng.integers(1, 4))
        size = int(rng.integers(4, {1: 512, 2: 128, 3: 32}[d]))
        k = int(rng.integers(1, 10 if d < 3 else 6))
        s, dil = int(rng.integers(1, 4)), 1 if rng.random() < 0.8 else 2
        p = int(rng.integers(0, (k - 1) * dil // 2 + 1))
        if (k - 1) * dil + 1 > size + 2 * p:  # a kernel longer than the padded input: no output
            continue
        if rng.random() < 0.6:  # depthwise
            c_in = c_out = groups = int(rng.integers(1, 129))
        else:
            c_in, c_out, groups = int(rng.integers(1, 65)), int(rng.integers(1, 4)), 1
        batch = int(rng.integers(1, 33))
        if batch * c_in * size**d * 4 > 64e6:
            continue
        layers.append(dict(batch=batch, size=size, ndim=d, kernel=k, stride=s, padding=p, dilation=dil,
                           groups=groups, c_in=c_in, c_out=c_out))  # fmt: skip
    return layers


def _spec(layer: dict) -> tconv.ConvSpec:
    d = layer["ndim"]
    return tconv.ConvSpec.build(
        transposed=False, input_size=(layer["size"],) * d, kernel_size=(layer["kernel"],) * d,
        in_channels=layer["c_in"], out_channels=layer["c_out"], stride=layer["stride"], padding=layer["padding"],
        dilation=layer["dilation"], groups=layer["groups"],
    )  # fmt: skip


def _best(fn, calls: int = 5) -> float:
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_layers(seed: int, count: int, path: str | None) -> list[dict]:
    """Both routes' best times on each layer, written to ``path`` (if given) after each; a layer whose tiles did not
    run when forced (the phases beyond the cache or memory bounds, :func:`.direct_conv._tiles_fit`) is left out."""
    rng = np.random.default_rng(seed + 1)
    chosen, tiled = direct_conv.tiles_cheaper, direct_conv._run_tiles
    ran: list[bool] = []

    def spy(*args: object) -> None:
        ran.append(True)
        tiled(*args)

    direct_conv._run_tiles = spy
    records = []
    try:
        for layer in _layers(seed, count):
            d = layer["ndim"]
            x = rng.standard_normal((layer["batch"], layer["c_in"], *(layer["size"],) * d)).astype(np.float32)
            w = rng.standard_normal((layer["c_out"], layer["c_in"] // layer["groups"], *(layer["kernel"],) * d))
            w = w.astype(np.float32)
            options = {name: layer[name] for name in ("stride", "padding", "dilation", "groups")}
            best = {route: math.inf for route in ROUTES}
            ran.clear()
            with tconv.use_algorithm("jit_direct"):
                for _ in range(3):
                    for route in ROUTES:
                        direct_conv.tiles_cheaper = lambda spec, route=route: route == "tiles"
                        call = functools.partial(tconv.conv, x, w, **options)
                        best[route] = min(best[route], _best(call))
            if not ran:
                print(f"{layer}: the tiles did not run (phases beyond the bounds); left out", flush=True)
                continue
            records.append({**layer, **best})
            print(f"{layer}: tiles {best['tiles'] * 1e3:.3f} ms, planes {best['planes'] * 1e3:.3f} ms", flush=True)
            if path:
                with open(path, "w") as file:
                    json.dump(records, file)
    finally:
        direct_conv.tiles_cheaper, direct_conv._run_tiles = chosen, tiled
    return records


def replay(records: list[dict], rates: list[float]) -> None:
    def geomean(values: list[float]) -> float:
        return math.exp(sum(math.log(v) for v in values) / len(values))

    fastest = [min(r["tiles"], r["planes"]) for r in records]
    planes = geomean([r["planes"] / f for r, f in zip(records, fastest)])
    tiles = geomean([r["tiles"] / f for r, f in zip(records, fastest)])
    print(f"{len(records)} layers; always whole planes {planes:.4f}, always tiles {tiles:.4f}")
    kept = _tuning.DIRECT_TILE_SINGLE_RATE
    try:
        for rate in rates:
            _tuning.DIRECT_TILE_SINGLE_RATE = rate
            direct_conv._planes_cost.cache_clear()  # its estimates are kept per call description
            taken = []
            for record in records:
                cost, spec = direct_conv._planes_cost, _spec(record)
                in_tiles = cost(spec, tiles=True, registers=True) <= cost(spec, tiles=False)
                taken.append(record["tiles"] if in_tiles else record["planes"])
            share = sum(t == r["tiles"] for t, r in zip(taken, records))
            print(
                f"DIRECT_TILE_SINGLE_RATE {rate:.3g}: regret {geomean([t / f for t, f in zip(taken, fastest)]):.4f},"
                f" tiles on {share} layers"
            )
    finally:
        _tuning.DIRECT_TILE_SINGLE_RATE = kept
        direct_conv._planes_cost.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="where the timing run writes its records")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="recorded timings to replay")
    parser.add_argument("--rates", nargs="+", type=float, default=[10e9, 12e9, 13.5e9, 16e9, 20e9])
    parser.add_argument("seed", nargs="?", type=int)
    parser.add_argument("count", nargs="?", type=int, default=60)
    args = parser.parse_args()
    if args.replay:
        records = []
        for name in args.replay:
            with open(name) as file:
                records.extend(json.load(file))
        replay(records, args.rates)
        return
    if args.seed is None:
        parser.error("give a SEED to time, or --replay FILE")
    replay(time_layers(args.seed, args.count, args.json), args.rates)


if __name__ == "__main__":
    main()
