"""tconv's calls on its thread team and on one thread, timed as ``tconv bench`` times them.

    python benchmarks/team_turns.py [--forward] [--under MS] [--rounds N] SEED

For every layer of ``tconv bench --sweep SEED`` (transposed; ``--forward``: convolutions) whose call takes under
``--under`` milliseconds (default 5), it times a turn of the call after a rest (``tconv bench``'s
:func:`tconv.tools.bench.time_turn` after ``SETTLE_S``) with tconv's team of this process's CPUs and with one thread
(:func:`tconv.implementations.compiled.team.set_threads`), the two in turn for ``--rounds`` rounds, and prints each
layer's best turn both ways, their ratio (team / one thread) and the geometric mean. Both ways run after the call's
measured choices are made (``team._measured``: it is called more than their probes first), so a ratio near 1 means
the team is not used or measured no faster; one above 1 means a call the team slows down. This is the study that
found calls of 0.1-0.5 ms 1.4-2.6 times slower on the team of a 2-vCPU virtual machine (docs/design.md, "The team
measured"). A measuring script, not a test: run it on a quiet machine, with nothing set in the environment.
"""

from __future__ import annotations

import argparse
import math
import time

from tconv import _tuning
from tconv.implementations.compiled import team
from tconv.tools import bench_cases
from tconv.tools.bench import SETTLE_S, _prepare_tconv, time_turn


def _turn(call) -> float:
    """One turn of ``call`` after ``tconv bench``'s rest, in milliseconds."""
    time.sleep(SETTLE_S)
    return time_turn(call, 3) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", type=int)
    parser.add_argument("--forward", action="store_true", help="convolutions instead of transposed ones")
    parser.add_argument("--under", type=float, default=5.0, help="only calls under this many ms (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="turns each way, alternating (default 2)")
    args = parser.parse_args()
    full = team.threads()
    warm = _tuning.KERNEL_TEAM_PROBE_SKIP + 2 * _tuning.KERNEL_TEAM_PROBES + 1  # past every measured choice's probes
    logs = []
    print(f"team of {full} threads against one; best turn of {args.rounds}, ms")
    for case in bench_cases.sweep(args.seed, transposed=not args.forward):
        call = _prepare_tconv(case, "forward")
        times: dict[int, list[float]] = {full: [], 1: []}
        for count in (full, 1):
            team.set_threads(count)
            for _ in range(warm):
                call()
        team.set_threads(full)
        if _turn(call) > args.under:
            continue
        for _ in range(args.rounds):
            for count in (full, 1):
                team.set_threads(count)
                times[count].append(_turn(call))
        team.set_threads(full)
        together, alone = min(times[full]), min(times[1])
        logs.append(math.log(together / alone))
        ratio = together / alone
        print(f"{case.name:10s} team {together:8.3f}  one thread {alone:8.3f}  team/one {ratio:5.2f}", flush=True)
    if logs:
        print(f"{len(logs)} calls: geometric mean team/one {math.exp(sum(logs) / len(logs)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
