"""``jit_blocked`` across samples against along the rows, on the layers where it runs across the samples.

    python benchmarks/across_samples.py [--suites] SEED [SEED ...]

For every layer of ``tconv bench --sweep SEED`` (transposed and forward; ``--suites``: the suites' layers too) that
``jit_blocked`` runs (a convolution, or a stride-1 transposed one through its forward twin) and would run in
blocks across the samples (:func:`tconv.implementations.compiled.blocked.runs_across`), it times ``jit_blocked``
forced both ways in this process, alternating, three rounds of the best of five calls: across the samples, and
along the rows (the cheaper of x as it is and x zero-padded, as the cost model would take without blocks across
the samples). It prints each layer's ratio (across / rows), the cost model's ratio for the same pair, and the
geometric mean. A measuring script, not a test (docs/design.md, "Blocks across samples"): run it on a quiet
machine, with nothing set in the environment.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import tconv
from tconv import _tuning
from tconv.implementations.compiled import algorithms, blocked
from tconv.tools import bench_cases


def _best(call, calls: int = 5) -> float:
    call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def _rows(spec, channels_last, batch, itemsize=None):
    """The mode along the rows the cost model would take (x as it is, or zero-padded)."""
    plain, padded = (seconds * batch for seconds in blocked._costs(spec, channels_last))
    return "padded" if padded + _tuning.BLOCKED_PADDED_CALL_COST < plain else "plain"


def _spec(case):
    options = {"output_padding": case.output_padding} if case.transposed else {}
    return tconv.ConvSpec.build(
        transposed=case.transposed, input_size=case.x[2:], kernel_size=case.kernel, in_channels=case.x[1],
        out_channels=case.c_out, stride=case.stride, padding=case.padding, dilation=case.dilation,
        groups=case.groups, **options,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="+", type=int)
    parser.add_argument("--suites", action="store_true", help="the suites' layers too")
    args = parser.parse_args()
    cases = list(bench_cases.CASES) + list(bench_cases.FORWARD_CASES) if args.suites else []
    for seed in args.seeds:
        cases += bench_cases.sweep(seed) + bench_cases.sweep(seed, transposed=False)
    rng = np.random.default_rng(0)
    real = blocked._mode
    ratios = []
    print(f"{'layer':<64} {'across':>8} {'rows':>8} {'ratio':>6} {'model':>6}  (ms)")
    try:
        for case in cases:
            spec = algorithms.convolution_computed(_spec(case))
            batch = case.x[0]
            if spec is None or not blocked.runs_across(spec, case.channels_last, batch):
                continue
            x = rng.standard_normal(case.x).astype(np.float32)
            if case.channels_last:
                x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
            w = rng.standard_normal(case.weight).astype(np.float32)
            function = tconv.conv_transpose if case.transposed else tconv.conv

            def call(x=x, w=w, case=case, function=function):
                return function(x, w, channels_last=case.channels_last, **case.options())

            across, rows = [], []
            with tconv.use_algorithm("jit_blocked"):
                for _ in range(3):
                    blocked._mode = real
                    across.append(_best(call))
                    blocked._mode = _rows
                    rows.append(_best(call))
            blocked._mode = real
            ratio = min(across) / min(rows)
            model = blocked._across_cost(spec, case.channels_last, batch) / (
                blocked.cost(spec, case.channels_last) * batch
            )
            ratios.append(ratio)
            name = f"{case.name} {case.describe()}"[:64]
            print(f"{name:<64} {min(across) * 1e3:8.3f} {min(rows) * 1e3:8.3f} {ratio:6.2f} {model:6.2f}", flush=True)
    finally:
        blocked._mode = real
    if ratios:
        mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"{len(ratios)} layers across the samples: geometric mean across/rows {mean:.3f}, "
              f"range {min(ratios):.2f}-{max(ratios):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
