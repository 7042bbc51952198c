"""OpenBLAS's first products in a process: single-threaded products before and after one wide product.

On the 2-vCPU AMD EPYC (AVX2) virtual machine of 2026-12-04, a fresh process ran some float32 products on one BLAS
thread 1.6-3.8 times slower than the same process did once a product such as (384, 16) x (16, 384) (0.4 ms) had
run on that thread ((384, 1) x (1, 384), (384, 384) x (384, 200) and (16, 384) x (384, 384) did not change it).
The cause was not found (docs/design.md, ``BLAS_WARM_UP_SHAPE``). tconv now runs that product once in each thread
(``team._warm_blas``); "cold" here switches it off, so the two columns compare no warm-up with one. Each row runs
in a fresh process (the environment as it is):

* ``products``: the rate of a few product shapes on one BLAS thread and through ``team.matmul`` (cut into row
  blocks on the team), cold and after the product on every thread that runs products;
* ``layers``: ``tconv bench``'s transposed and forward suites' layers, each timed cold and after the same warm-up
  (median of ``--repeats`` calls after two untimed ones).

Run: ``python benchmarks/blas_cold_products.py [products | layers] [--repeats N]``. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

SHAPES = [(456, 230, 196), (512, 512, 196), (1024, 230, 49), (64, 576, 1024), (256, 256, 784), (128, 576, 1024)]

CHILD = r"""
import json, statistics, sys, threading, time
import numpy as np
from threadpoolctl import threadpool_limits
import tconv
from tconv.implementations.compiled import team

part, repeats = sys.argv[1], int(sys.argv[2])
wide = (np.ones((384, 16), np.float32), np.ones((16, 384), np.float32))
tconv_warm_up = team._warm_blas
team._warm_blas = lambda: None  # cold: tconv's own warm-up off until warm_up()


def warm_up():
    # the product on every thread that runs products: this one (one BLAS thread) and each of the team's (a
    # barrier holds each thread to one piece until all have one)
    team._warm_blas = tconv_warm_up
    with threadpool_limits(1):
        wide[0] @ wide[1]
    every = threading.Barrier(team.size(), timeout=30)

    def piece(_):
        every.wait()
        wide[0] @ wide[1]

    team.run(piece, range(team.size()), team.size())


def median(call):
    call()
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if part == "products":
    m, k, n = (int(v) for v in sys.argv[3].split(","))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    rates = []
    for stage in ("cold", "warm"):
        if stage == "warm":
            warm_up()
        with threadpool_limits(1):
            one = median(lambda: a @ b)
        rates += [2e-9 * m * k * n / one, 2e-9 * m * k * n / median(lambda: team.matmul(a, b))]
    print(json.dumps(rates))
else:
    from tconv.tools.bench_cases import CASES, FORWARD_CASES, arrays

    case = {c.name: c for c in (*CASES, *FORWARD_CASES)}[sys.argv[3]]
    x, w, b = arrays(case)
    if case.channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    fn = tconv.conv_transpose if case.transposed else tconv.conv
    call = lambda: fn(x, w, b, channels_last=case.channels_last, **case.options())
    cold = median(call)
    warm_up()
    print(json.dumps([cold, median(call)]))
"""


def _child(part: str, repeats: int, what: str) -> list[float]:
    done = subprocess.run([sys.executable, "-c", CHILD, part, str(repeats), what], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    result: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=["products", "layers"], default="products")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per measurement (default 15)")
    args = parser.parse_args()
    if args.part == "products":
        print("GFLOP/s of float32 products, each shape in a fresh process: cold, then after the warm-up")
        print(f"{'m, k, n':>18} {'one thread':>21} {'team.matmul':>21}")
        for shape in SHAPES:
            one_cold, team_cold, one_warm, team_warm = _child("products", args.repeats, ",".join(map(str, shape)))
            print(f"{shape!s:>18} {one_cold:7.1f} -> {one_warm:5.1f} ({one_warm / one_cold:4.2f}x) "
                  f"{team_cold:7.1f} -> {team_warm:5.1f} ({team_warm / team_cold:4.2f}x)")  # fmt: skip
        return
    from tconv.tools.bench_cases import CASES, FORWARD_CASES

    print("ms per call, each layer in a fresh process: cold, then after the warm-up")
    ratios = []
    for case in (*CASES, *FORWARD_CASES):
        cold, warm = _child("layers", args.repeats, case.name)
        ratios.append(warm / cold)
        print(f"{case.name:<24} {1e3 * cold:9.3f} {1e3 * warm:9.3f}  {warm / cold:5.2f}")
    product = 1.0
    for ratio in ratios:
        product *= ratio
    print(f"geometric mean warm/cold: {product ** (1 / len(ratios)):.3f} over {len(ratios)} layers")


if __name__ == "__main__":
    main()
