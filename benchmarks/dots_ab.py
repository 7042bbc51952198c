"""``jit_dots`` forced against the planner's choice without it, on the forward sweep's layers, and the replay.

    python benchmarks/dots_ab.py --json FILE SEED          # both timed on `tconv bench --forward --sweep SEED`
    python benchmarks/dots_ab.py --replay FILE [FILE ...]  # the planner's choice now, on those timings

The timing run alternates, three rounds a layer, the call with ``jit_dots`` avoided (the planner's former choice,
whose name it records) and with ``jit_dots`` forced, in this process with the thread counts it inherits, and keeps
the best of each. Forced, a call runs whole: the planner's choice may cut the kernel to its live taps (the engine's
dead-tap cut, where it pays: ``engine.run._cut_if_cheaper``), so on such layers the forced time overstates what
``jit_dots`` takes when chosen. Each layer's record also keeps the largest difference between the two results,
relative to the former's largest value. The replay asks the
planner (with the ``tconv._tuning`` values of the checkout) which it would take on each layer and prints the
geometric mean of the chosen strategy's time over the former choice's, and the layers where it takes ``jit_dots``.
A measuring script, not a test; run it on a quiet machine (docs/design.md, "Windows and weight rows").
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import time

import numpy as np

import tconv
from tconv.engine import planner
from tconv.tools.bench import _prepare_tconv
from tconv.tools.bench_cases import sweep

engine_run = importlib.import_module("tconv.engine.run")


def _best(fn, budget: float = 0.08, least: int = 5) -> float:
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < least or (time.perf_counter() - start < budget and len(times) < 300):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _spec(case):
    options = case.options()
    return tconv.ConvSpec.build(
        transposed=False, input_size=case.x[2:], kernel_size=case.kernel, in_channels=case.x[1],
        out_channels=case.c_out, stride=options["stride"], padding=options["padding"],
        dilation=options["dilation"], groups=options["groups"],
    )  # fmt: skip


def _time(seed: int, path: str) -> None:
    rows = []
    for case in sweep(seed, transposed=False):
        fn = _prepare_tconv(case, "forward")
        spec = _spec(case)
        cut = engine_run._cut_if_cheaper(spec, case.x[0], case.channels_last)
        with tconv.avoid_algorithms("jit_dots"):
            former = planner.select(cut[0] if cut else spec, np, case.channels_last, case.x[0]).name
        other, dots = [], []
        for _ in range(3):
            with tconv.avoid_algorithms("jit_dots"):
                other.append(_best(fn))
            with tconv.use_algorithm("jit_dots"):
                dots.append(_best(fn))
        with tconv.use_algorithm("jit_dots"):
            got = fn()
        with tconv.avoid_algorithms("jit_dots"):
            want = fn()
        error = float(np.abs(got - want).max() / (1 + np.abs(want).max()))
        rows.append(dict(seed=seed, name=case.name, former=former, other=min(other), dots=min(dots), error=error))
        print(f"{case.name:10s} {former:14s} {min(other) * 1e6:10.1f} us  jit_dots {min(dots) * 1e6:10.1f} us  "
              f"{min(dots) / min(other):6.2f}", flush=True)  # fmt: skip
    with open(path, "w") as file:
        json.dump(rows, file)


def _replay(paths: list[str]) -> None:
    for path in paths:
        with open(path) as file:
            rows = json.load(file)
        cases = {case.name: case for case in sweep(rows[0]["seed"], transposed=False)}
        ratios, taken = [], []
        for row in rows:
            case = cases[row["name"]]
            spec = _spec(case)
            cut = engine_run._cut_if_cheaper(spec, case.x[0], case.channels_last)
            chosen = planner.plan(cut[0] if cut else spec, True, case.channels_last, False, case.x[0], frozenset())
            ratio = row["dots"] / row["other"] if chosen == "jit_dots" else 1.0
            ratios.append(ratio)
            if chosen == "jit_dots":
                taken.append(f"{row['name']} {ratio:.2f}")
        mean = math.exp(sum(map(math.log, ratios)) / len(ratios))
        print(
            f"{path}: seed {rows[0]['seed']}, chosen / former {mean:.3f}; jit_dots on {len(taken)}: {', '.join(taken)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="time the sweep of SEED and keep the times here")
    parser.add_argument("--replay", action="store_true", help="replay the planner on the files given")
    parser.add_argument("args", nargs="+")
    options = parser.parse_args()
    if options.replay:
        _replay(options.args)
    else:
        _time(int(options.args[0]), options.json or f"dots_ab_{options.args[0]}.json")


if __name__ == "__main__":
    main()
