"""Is tree B faster than tree A? Every call of a sweep, timed in paired processes with the cases interleaved.

    python benchmarks/paired_ab.py A_SRC B_SRC [--seed SEED | --suite | --models | --pick SEED:NAME,...]
        [--procs N] [--cases NAME,NAME] [--rest SECONDS]

``A_SRC`` and ``B_SRC`` are two ``src`` folders of tconv (a ``git worktree add /tmp/A REV`` of the tree before
a change, and this checkout's ``src``). For each of the 120 layers of ``tconv bench --sweep SEED`` (60
transposed, 60 forward), every one of ``N`` worker processes a side times a turn of calls (the median of at
least five calls filling 0.05 s, after four untimed ones), the ``2N`` turns in a shuffled order, one case after
the other; each side's time for a case is the geometric mean over its processes. It prints each case's times and
ratio, and the geometric mean of the ratios with its standard error. With ``--suite`` the calls are those of
``tconv bench``'s two suites instead: the transposed layers, their gradients (``NAME (grad)``: both gradients,
where the suite times them) and the forward layers; with ``--models``, the training steps of ``tconv bench
--models``; with ``--pick``, the named layers of several sweeps (``7:fsweep-31,56:sweep-13``: a change that
touches one kind of layer, measured on every such layer of many seeds). Each worker runs with nothing set in
its environment but ``PATH``, ``HOME`` and ``PYTHONPATH`` (the user's environment).

Why this design (measured on the 2-vCPU virtual machine of 2026-12-01). A call's time differs between
processes of the same tree by up to 2x (a trivial call took 32 to 65 us), and the machine's speed drifts over
minutes. Alternating whole processes (A, then B, then A...) and taking each side's best of three read a 10%
gain twice for a change that paired processes put at 3%; the same tree on both sides read 0.978 with one
process a side and 1.008 +- 0.010 with three. So: several processes a side (the spread between processes
averages out), and the sides' turns at the same moment (the drift cancels). Run the tree against itself first;
a difference smaller than two standard errors is not one.

Between two turns the script rests ``--rest`` seconds (default 0.2), as ``tconv bench`` rests between its
frameworks' turns: a worker's BLAS threads spin for a while after its turn's last product, and the next worker's
threads then share the CPUs with them. Without the rest (until the forty-fifth session), sweep 57's sweep-46
((1, 112, 23, 23, 23) -> 4 1x1x1 stride 2, its product on BLAS's own threads) took 8 ms instead of 0.4 in 2-3 of
8 workers a run, in either tree; with 0.2 s, in none of 24.

A measurement script, not a test; nothing in it is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time

WORKER = r"""
import json, statistics, sys, time
import numpy as np
import tconv
from tconv.tools.bench_cases import CASES, FORWARD_CASES, arrays, sweep

calls = []
if sys.argv[1] == "models":
    from tconv.tools.bench_models import MODELS, _tconv_step

    calls = [(case.name, _tconv_step(case)) for case in MODELS]
picked = [tuple(pick.split(":")) for pick in sys.argv[1][5:].split(",")] if sys.argv[1].startswith("pick:") else []
for transposed in (True, False) if sys.argv[1] != "models" else ():
    if sys.argv[1] == "suite":
        cases = [(case.name, case) for case in (CASES if transposed else FORWARD_CASES)]
    elif picked:
        drawn = {(seed, c.name): c for seed in {s for s, _ in picked} for c in sweep(int(seed), transposed=transposed)}
        cases = [(f"{seed}:{name}", drawn[(seed, name)]) for seed, name in picked if (seed, name) in drawn]
    else:
        cases = [(case.name, case) for case in sweep(int(sys.argv[1]), transposed=transposed)]
    for label, case in cases:
        x, w, b = arrays(case)
        options = case.options()
        if case.channels_last:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        fn = tconv.conv_transpose if transposed else tconv.conv
        calls.append((label, lambda fn=fn, x=x, w=w, b=b, case=case, options=options: fn(
            x, w, b, channels_last=case.channels_last, **options)))
        if transposed and getattr(case, "grad", False):
            gy = np.ones_like(calls[-1][1]())
            calls.append((label + " (grad)", lambda x=x, w=w, gy=gy, case=case, options=options:
                tconv.conv_transpose_grad(gy, x, w, channels_last=case.channels_last, **options)))
for line in sys.stdin:
    name, call = calls[int(line)]
    for _ in range(4):
        call()
    times = []
    while len(times) < 200:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        if sum(times) > 1 or (len(times) >= 5 and sum(times) >= 0.05):
            break
    print(json.dumps([name, statistics.median(times)]), flush=True)
"""


def _picks(text: str) -> list[tuple[str, str]]:
    """``--pick``'s layers as (seed, name), each once, in order; the seed as an integer reads it (``07`` is 7)."""
    picked: list[tuple[str, str]] = []
    for pick in filter(None, (part.strip() for part in text.split(","))):
        seed, sep, name = pick.partition(":")
        if not sep or not seed.strip().isdigit() or not name.strip():
            raise SystemExit(f"--pick: expected SEED:NAME (such as 56:fsweep-31); received {pick!r}")
        key = (str(int(seed)), name.strip())
        if key not in picked:
            picked.append(key)
    return picked


def _start(src: str, seed: str) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"), "PYTHONPATH": src}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, seed], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", help="tree A's src folder (before)")
    parser.add_argument("b", help="tree B's src folder (after)")
    parser.add_argument("--seed", type=int, default=23, help="the sweep's seed (default 23)")
    parser.add_argument("--suite", action="store_true", help="the suites' layers and gradients, not a sweep")
    parser.add_argument("--models", action="store_true", help="the training steps of tconv bench --models")
    parser.add_argument("--procs", type=int, default=3, help="worker processes a side (default 3)")
    parser.add_argument("--cases", default="", help="only these cases (comma-separated names; SEED:NAME under --pick)")
    parser.add_argument("--pick", default="", help="sweep layers of several seeds (comma-separated SEED:NAME)")
    parser.add_argument("--rest", type=float, default=0.2, help="seconds between two turns (default 0.2)")
    args = parser.parse_args()
    picked = _picks(args.pick)
    if picked:
        args.pick = ",".join(f"{seed}:{name}" for seed, name in picked)  # as the workers read it
    which = "models" if args.models else "suite" if args.suite else f"pick:{args.pick}" if args.pick else str(args.seed)
    sides = {"A": [_start(args.a, which) for _ in range(args.procs)]}
    sides["B"] = [_start(args.b, which) for _ in range(args.procs)]
    sys.path.insert(0, args.b)
    from tconv.tools.bench_cases import CASES, FORWARD_CASES, sweep

    if args.models:
        from tconv.tools.bench_models import MODELS

        names = [case.name for case in MODELS]
    elif args.suite:
        names = [n for c in CASES for n in ([c.name, c.name + " (grad)"] if c.grad else [c.name])]
        names += [c.name for c in FORWARD_CASES]
    elif picked:
        names = []
        for transposed in (True, False):
            drawn = {
                (seed, c.name): c for seed in {s for s, _ in picked} for c in sweep(int(seed), transposed=transposed)
            }
            for seed, name in picked:
                if (seed, name) in drawn:
                    grad = transposed and drawn[(seed, name)].grad  # the workers time its gradients too
                    names += [f"{seed}:{name}", f"{seed}:{name} (grad)"] if grad else [f"{seed}:{name}"]
        unmatched = [f"{seed}:{name}" for seed, name in picked if f"{seed}:{name}" not in names]
        if unmatched:
            raise SystemExit(f"--pick: no such sweep layer: {', '.join(unmatched)}")
    else:
        names = []
        for transposed in (True, False):
            for case in sweep(args.seed, transposed=transposed):
                grad = transposed and case.grad  # the workers time its gradients too
                names += [case.name, case.name + " (grad)"] if grad else [case.name]
    wanted = set(filter(None, args.cases.split(","))) or set(names)
    logs: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    try:
        for index, name in enumerate(names):
            if name not in wanted:
                continue
            turns = [(side, worker) for side, workers in sides.items() for worker in workers]
            random.Random(index).shuffle(turns)
            for side, worker in turns:
                assert worker.stdin is not None and worker.stdout is not None
                worker.stdin.write(f"{index}\n")
                worker.stdin.flush()
                got, seconds = json.loads(worker.stdout.readline())
                logs[side].setdefault(got, []).append(math.log(seconds))
                time.sleep(max(0.0, args.rest))
    finally:
        for workers in sides.values():
            for worker in workers:
                if worker.stdin is not None:
                    worker.stdin.close()
                worker.wait()
    ratios = []
    width = max([12, *(len(name) for name in logs["A"])])
    print(f"{'case':{width}s} {'A us':>10s} {'B us':>10s}   B/A")
    for name in logs["A"]:
        a, b = (1e6 * math.exp(statistics.mean(logs[side][name])) for side in ("A", "B"))
        ratios.append(math.log(b / a))
        print(f"{name:{width}s} {a:10.1f} {b:10.1f} {b / a:6.3f}")
    if not ratios:
        raise SystemExit(f"no case matched --cases {args.cases!r}")
    mean = math.exp(statistics.mean(ratios))
    error = mean * statistics.stdev(ratios) / math.sqrt(len(ratios)) if len(ratios) > 1 else float("nan")
    measured = "the models" if args.models else "the suites" if args.suite else f"seed {args.seed}"
    measured = "the picked layers" if args.pick else measured
    print(
        f"geometric mean B/A: {mean:.3f} +- {error:.3f} (one standard error) over {len(ratios)} calls, "
        f"{measured}, {args.procs} processes a side"
    )


if __name__ == "__main__":
    main()
