"""How well the planner chooses among tconv's own algorithms, on layers it was never tuned on.

    python benchmarks/planner_regret.py [--forward] [--json FILE] SEED [SEED ...]
    python benchmarks/planner_regret.py --replay FILE [FILE ...] [--set NAME=VALUE ...]

For every layer of ``tconv bench --sweep SEED`` (transposed convolutions; ``--forward``: convolutions) it times
each compiled algorithm that supports the layer, forced (:func:`tconv.use_algorithm`), and the planner's own
choice, in this process with the thread counts it inherits (nothing set). It prints, per seed and over all:

* ``regret``: the geometric mean of (time of the planner's choice) / (time of the fastest algorithm), 1.00 when
  the planner always picks the fastest;
* the layers where the choice costs most, with every algorithm's time.

This separates the two reasons a layer can trail a peer framework: a wrong choice among tconv's algorithms (regret),
or algorithms that are all slower than the peer's (which no planner can fix). It is a measuring script, not a test;
run it on a quiet machine. ``--json`` keeps the raw times for offline study of the cost model: ``--replay`` asks the
planner of this checkout (with ``--set``'s ``tconv._tuning`` values, set before its first question;
``NAME[KEY]=VALUE`` sets one entry of a table such as ``FORWARD_CALL_COST``) which algorithm it takes on each
recorded layer and prints the regret on the recorded times. An algorithm's recorded time is that of the route it
took when timed (the direct sum in tiles or whole planes, say), so a replay judges the planner's constants, not a
change inside an algorithm. The planner prices products at the machine's measured rate
(:mod:`tconv.implementations.compiled.machine`); ``--json`` records that rate with every layer (``gemm_rate``), and
``--replay`` prices products at the recorded rate where all the rows record the same one (else at this machine's),
unless ``--set`` names ``GEMM_RATE`` (which turns the measured rate off), ``MEASURED_GEMM_RATE`` or
``GEMM_PROBE_SHARE``; it says which it used. Likewise each row records the compiled kernels' vector width
(``vector_bytes``; 32 where a row has none, as before it was recorded), and ``--replay`` prices vectors of that
width (``PRICED_VECTOR_BYTES``) unless ``--set`` names it."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np

import tconv
from tconv.engine import planner
from tconv.implementations.compiled import machine
from tconv.tools.bench import _prepare_tconv
from tconv.tools.bench_cases import sweep

ALGORITHMS = (
    "jit_gemm",
    "jit_pixels",
    "jit_patches",
    "jit_direct",
    "jit_im2col",
    "jit_winograd",
    "jit_winograd4",
    "jit_pointwise",
    "jit_depthwise",
    "jit_phases",
    "jit_blocked",
    "jit_dots",
)


def _median_seconds(call, budget: float = 0.12) -> float:
    """The median of at least 3 timed calls, more while ``budget`` seconds last (at most 60), after one untimed
    call (compilation, buffers)."""
    call()
    times: list[float] = []
    end = time.perf_counter() + budget
    while len(times) < 3 or (time.perf_counter() < end and len(times) < 60):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _spec(case) -> tconv.ConvSpec:
    out_channels = case.weight[1] * case.groups if case.transposed else case.weight[0]
    return tconv.ConvSpec.build(
        transposed=case.transposed,
        input_size=case.x[2:],
        kernel_size=case.kernel,
        in_channels=case.x[1],
        out_channels=out_channels,
        **case.options(),
    )


def measure(seed: int, forward: bool) -> list[dict]:
    rows = []
    for case in sweep(seed, transposed=not forward):
        call = _prepare_tconv(case, "forward")
        times = {}
        for name in ALGORITHMS:
            try:
                with tconv.use_algorithm(name):
                    times[name] = _median_seconds(call)
            except ValueError:  # the algorithm does not support this layer
                continue
        chosen = planner.select(_spec(case), np, case.channels_last, case.x[0], 4).name  # float32, as timed
        rows.append(
            {
                "seed": seed,
                "name": case.name,
                "layer": case.describe(),
                "chosen": chosen,
                "times": times,
                "gemm_rate": machine.gemm_rate(),
                "vector_bytes": machine.vector_bytes(),
            }
        )
    return rows


def _worst(rows: list[dict], count: int) -> None:
    """Print the ``count`` layers whose choice costs most, with every algorithm's time."""
    ranked = sorted(rows, key=lambda r: r["times"].get(r["chosen"], math.inf) / min(r["times"].values()))
    if count <= 0:
        return
    print("costliest choices (ms):")
    for r in reversed(ranked[-count:]):
        times = "  ".join(f"{name} {seconds * 1e3:.3f}" for name, seconds in r["times"].items())
        print(f"  seed {r['seed']} {r['name']}: {r['layer']}; chose {r['chosen']}; {times}")


def _regret(rows: list[dict]) -> float:
    """The geometric mean of the chosen algorithm's time over the fastest one's, over the rows where the chosen one
    was timed (:func:`_untimed` counts the others)."""
    logs = [math.log(r["times"][r["chosen"]] / min(r["times"].values())) for r in rows if r["chosen"] in r["times"]]
    return math.exp(sum(logs) / len(logs)) if logs else float("nan")


def _untimed(rows: list[dict]) -> int:
    """The rows whose chosen algorithm has no recorded time (left out of :func:`_regret`)."""
    return sum(r["chosen"] not in r["times"] for r in rows)


def _replayed(rows: list[dict]) -> list[dict]:
    """The recorded rows with ``chosen`` asked again of this checkout's planner (float32, as timed)."""
    cases = {}
    for seed in sorted({r["seed"] for r in rows}):
        for forward in (True, False):
            cases.update({(seed, forward, c.name): c for c in sweep(seed, transposed=not forward)})
    again = []
    for r in rows:
        case = cases[(r["seed"], not r["name"].startswith("sweep"), r["name"])]
        chosen = planner.select(_spec(case), np, case.channels_last, case.x[0], 4).name
        again.append({**r, "chosen": chosen})
    return again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", type=int, nargs="*")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="recorded times (--json) to ask the planner on")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", help="tconv._tuning values to replay")
    parser.add_argument("--forward", action="store_true", help="the convolution sweep instead of the transposed one")
    parser.add_argument("--json", help="also write every layer's times here")
    parser.add_argument("--worst", type=int, default=5, help="how many of the costliest choices to list")
    args = parser.parse_args()
    if args.replay:
        from tconv import _tuning

        for setting in args.set:
            name, _, value = setting.partition("=")
            name, bracket, key = name.partition("[")  # NAME[KEY]: an entry of a table (FORWARD_CALL_COST[jit_blocked])
            if bracket and not key.endswith("]"):
                parser.error(f"--set: expected NAME[KEY]=VALUE, with the closing bracket; received {setting!r}")
            key = key.removesuffix("]")
            table = getattr(_tuning, name, None)
            if key and isinstance(table, dict) and isinstance(table.get(key), (int, float)):
                setattr(_tuning, name, {**table, key: type(table[key])(float(value))})
                continue
            if key or not isinstance(table, (int, float)):
                parser.error(
                    f"--set: expected NAME=VALUE for a number in tconv._tuning, or NAME[KEY]=VALUE for one in a "
                    f"table of numbers; received {setting!r}"
                )
            setattr(_tuning, name, type(table)(float(value)))
        recorded = []
        for path in args.replay:
            with open(path, encoding="utf-8") as file:
                recorded += json.load(file)
        rates = {r.get("gemm_rate") for r in recorded}
        named = {setting.partition("=")[0].partition("[")[0] for setting in args.set}
        if "GEMM_RATE" in named:
            _tuning.MEASURED_GEMM_RATE = 0
        elif named & {"MEASURED_GEMM_RATE", "GEMM_PROBE_SHARE"}:
            print("products priced by --set's values and this machine's probe, not at the recorded rate")
        elif len(rates) == 1 and None not in rates:
            _tuning.MEASURED_GEMM_RATE, _tuning.GEMM_RATE = 0, float(rates.pop())
            print(f"products priced at the recorded rate, {_tuning.GEMM_RATE / 1e9:.1f} GFLOP/s")
        else:
            print("products priced at this machine's rate (the rows record none, or several)")
        widths = {r.get("vector_bytes", _tuning.VECTOR_BYTES) for r in recorded}  # rows before it: 32 everywhere
        if "PRICED_VECTOR_BYTES" in named:
            pass
        elif len(widths) == 1:
            _tuning.PRICED_VECTOR_BYTES = int(widths.pop())
            print(f"vectors priced at the recorded width, {_tuning.PRICED_VECTOR_BYTES * 8} bits")
        else:
            parser.error(f"the rows record several vector widths ({sorted(widths)}): replay them apart")
        before = _regret(recorded)
        every = _replayed(recorded)
        changed = sum(a["chosen"] != b["chosen"] for a, b in zip(recorded, every))
        untimed = f", {_untimed(every)} left out (their choice not timed)" if _untimed(every) else ""
        regret = f"regret {_regret(every):.3f} (recorded {before:.3f})"
        print(f"replayed {len(every)} layers: {regret}, {changed} changed{untimed}")
        _worst(every, args.worst)
        return
    if not args.seeds:
        parser.error("expected SEED ... to time, or --replay FILE ...")
    every = []
    for seed in args.seeds:
        rows = measure(seed, args.forward)
        every += rows
        best = sum(min(r["times"], key=r["times"].get) == r["chosen"] for r in rows)
        print(f"seed {seed}: {len(rows)} layers, regret {_regret(rows):.3f}, the fastest chosen on {best}", flush=True)
    print(f"all: {len(every)} layers, regret {_regret(every):.3f}")
    _worst(every, args.worst)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(every, file)


if __name__ == "__main__":
    main()
