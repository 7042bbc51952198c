"""Where ``jit_phases`` changes the planner's choice: on the channels-last transposed layers of one group of
``tconv bench --sweep SEED``, the choice with ``jit_phases`` avoided and without, both timed forced.

    python benchmarks/phases_choices.py SEED [SEED ...]

For each layer whose choice changes, both algorithms are timed forced (the median of 7 calls after 2), each
twice in alternation, and the better of each one's two times kept; it prints each changed layer, the cost
model's ratio of the ``jit_phases`` estimate to the cheapest other, and the geometric mean of new over old time.
The planner's rule for ``jit_phases`` (``PHASES_MARGIN``) applies; set ``tconv._tuning.PHASES_MARGIN`` (for
example to 1.0, in a copy of this script) to see the choices it removes. Run it on a quiet machine; nothing in it
is asserted.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable

import array_api_compat
import numpy as np

import tconv
from tconv.engine import planner
from tconv.tools.bench import _prepare_tconv
from tconv.tools.bench_cases import sweep


def _median(call: Callable[[], object], repeats: int = 7) -> float:
    for _ in range(2):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(seeds: list[int]) -> None:
    numpy = array_api_compat.array_namespace(np.empty(0))
    ratios = []
    for seed in seeds:
        for case in sweep(seed):
            if not case.channels_last or case.groups != 1:
                continue
            spec = tconv.ConvSpec.build(
                transposed=True,
                input_size=case.x[2:],
                kernel_size=case.kernel,
                in_channels=case.x[1],
                out_channels=case.c_out,
                **case.options(),
            )
            batch = case.x[0]
            with tconv.avoid_algorithms("jit_phases"):  # the planner's choice before, on this machine's team
                old = planner.select(spec, numpy, True, batch).name
            new = planner.select(spec, numpy, True, batch).name
            if old == new:
                continue
            costs = planner.plan_costs(spec, batch, True)
            estimate = costs["jit_phases"] / min(cost for name, cost in costs.items() if name != "jit_phases")
            call = _prepare_tconv(case, "forward")
            times: dict[str, list[float]] = {}
            for algorithm in (old, new, old, new):
                with tconv.use_algorithm(algorithm):
                    times.setdefault(algorithm, []).append(_median(call))
            before, after = min(times[old]), min(times[new])
            ratios.append(after / before)
            print(
                f"seed {seed} {case.name} {case.describe()}: {old} {before * 1e3:.3f} ms -> {new} {after * 1e3:.3f} "
                f"({after / before:.2f}; estimate {estimate:.2f} of the others')",
                flush=True,
            )
    if ratios:
        mean = math.exp(sum(map(math.log, ratios)) / len(ratios))
        print(f"{len(ratios)} choices changed: after / before {mean:.3f} (geometric mean)")
    else:
        print("no choice changed")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main([int(seed) for seed in sys.argv[1:]])
