"""Where a compiled tconv call spends its time: matrix products against compiled kernels, per thread.

    python benchmarks/profile_split.py [--sweep SEED] [--forward] [case ...]
        (default: the benchmark's GEMM-heavy cases; with --sweep the named layers of that sweep,
        with --forward those of the forward suite or sweep)

For each case of ``tconv bench``'s suites (tconv's planner choice; a transposed layer's forward) it prints:

* ``call``: the median wall time of the whole call, and its rate as a percentage of the float32 GEMM
  rate (a 2048^3 product on all threads, measured in this process: ``tconv bench``'s %GEMM; nothing set
  in the environment, as there);
* ``product`` and ``kernels``: per thread, the time inside NumPy's matrix products and inside the
  compiled kernels (col2im, gather, im2col, the direct sum, the depthwise and Winograd kernels, ...), averaged
  over the calls and the threads;
* ``other/thread``: the call's time less the two (copies, padding, layout moves, the planner, Python);
* ``product alone``: the same products (the shapes recorded from one call), replayed on the same thread
  team with nothing else, and the percentage of the GEMM rate that alone would reach: the ceiling of the
  algorithm with free kernels.

The gap between ``call`` and ``product alone`` is the kernels' and the bookkeeping's share; the gap between
``product alone`` and 100% is BLAS's rate on these shapes (inner dimension C_in, often 128) against a square
2048 product. This is an instrumentation script (it wraps ``numpy.matmul`` and tconv's private kernels for
the duration of the run), not part of the library, and nothing in it is a test.
"""

from __future__ import annotations

import collections
import os
import statistics
import sys
import threading
import time
from typing import Any

import numpy as np

import tconv
from tconv.implementations.compiled import depthwise, direct_conv, winograd, winograd4, winograd_last
from tconv.implementations.compiled import kernels as compiled_kernels
from tconv.implementations.compiled import team as thread_team
from tconv.tools.bench_cases import CASES, FORWARD_CASES, arrays, sweep

GEMM_HEAVY = ["keras-dcgan-1", "keras-dcgan-2", "dcgan64-2", "dcgan64-3", "dcgan64-4", "hifigan-1d"]
KERNELS = ["col2im", "col2im_last", "col2im_patches", "gather", "direct", "im2col"]
#: the kernels that live beside their own geometry: (module, name of the function that returns them)
OTHER_KERNELS = [
    (direct_conv, "_kernel"),
    (depthwise, "_kernel"),
    (winograd, "_kernels"),
    (winograd4, "kernels"),
    (winograd_last, "kernels"),
]
CALLS = 10


def _median_ms(fn: Any, repeats: int = CALLS) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _gemm_rate() -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    return 2 * 2048**3 / _median_ms(lambda: a @ a, 5) / 1e6


def _replay(recorded: list[tuple[tuple[int, ...], tuple[int, ...], Any]], matmul: Any) -> float:
    """Median ms of the recorded products alone, on the thread team a call would use (one output per thread,
    reused, as the call reuses its workspace)."""
    operands = [(np.ones(a, dtype), np.ones(b, dtype)) for a, b, dtype in recorded]
    team = thread_team.size() if len(operands) >= thread_team.size() else 1
    local = threading.local()

    def product(i: int) -> None:
        a, b = operands[i]
        shape = (*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])  # stacked products too
        size = int(np.prod(shape))
        out = getattr(local, "out", None)
        if out is None or out.size < size:
            out = local.out = np.empty(size, a.dtype)
        matmul(a, b, out=out[:size].reshape(shape))

    def replay() -> None:
        if team > 1:
            thread_team.run(product, list(range(len(operands))), team)
        else:
            for i in range(len(operands)):
                product(i)

    return _median_ms(replay)


def main(argv: list[str]) -> int:
    forward = "--forward" in argv
    argv = [a for a in argv if a != "--forward"]
    seed = None
    if "--sweep" in argv:
        at = argv.index("--sweep")
        seed = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    if seed is not None:
        suite = sweep(seed, max(60, *(int(n.split("-")[-1]) + 1 for n in argv)), transposed=not forward)
    else:
        suite = FORWARD_CASES if forward else CASES
    names = argv or GEMM_HEAVY
    threads = os.cpu_count() or 1
    compiled_kernels.set_threads(threads)
    rate = _gemm_rate()
    print(f"threads: {threads}; float32 GEMM rate (2048^3, all threads): {rate:.1f} GFLOP/s; times in ms")
    print(
        f"{'case':<18} {'call':>7} {'%GEMM':>6} {'product/thread':>15} {'kernels/thread':>15} "
        f"{'other/thread':>13} {'product alone':>14} {'%GEMM':>6}"
    )
    spent: dict[tuple[str, int], float] = collections.defaultdict(float)
    shapes: list[tuple[tuple[int, ...], tuple[int, ...], Any]] = []
    record = [False]
    real_matmul = np.matmul

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            spent[name, threading.get_ident()] += time.perf_counter() - start
            if record[0] and name == "product":
                shapes.append((args[0].shape, args[1].shape, args[0].dtype))
            return result

        return wrapper

    np.matmul = timed("product", real_matmul)
    originals = {name: getattr(compiled_kernels, name) for name in KERNELS}
    for name, fn in originals.items():
        setattr(compiled_kernels, name, timed("kernels", fn))
    getters = {(module, name): getattr(module, name) for module, name in OTHER_KERNELS}

    def timed_getter(getter: Any) -> Any:
        def get(*args: Any) -> Any:
            found = getter(*args)
            if isinstance(found, tuple):
                return tuple(timed("kernels", k) for k in found)
            return timed("kernels", found)

        return get

    for (module, name), getter in getters.items():
        setattr(module, name, timed_getter(getter))
    try:
        for case in [c for c in suite if c.name in names]:
            x, w, b = arrays(case)
            if case.channels_last:
                x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
            options = dict(case.options(), channels_last=case.channels_last)
            op = tconv.conv_transpose if case.transposed else tconv.conv

            def call(
                x: np.ndarray = x, w: np.ndarray = w, b: Any = b, options: dict[str, Any] = options, op: Any = op
            ) -> Any:
                return op(x, w, b, **options)

            call()
            spent.clear()
            shapes.clear()
            record[0] = True
            call()
            record[0] = False
            spent.clear()
            wall = _median_ms(call)
            per_thread = collections.defaultdict(list)
            for (name, _), seconds in spent.items():
                per_thread[name].append(1e3 * seconds / (CALLS + 1))
            flops = case.flops / 1e6
            product = statistics.mean(per_thread["product"]) if per_thread["product"] else 0.0
            kernels = statistics.mean(per_thread["kernels"]) if per_thread["kernels"] else 0.0
            if shapes:
                alone = _replay(list(shapes), real_matmul)
                replayed = f"{alone:14.2f} {100 * flops / alone / rate:5.1f}%"
            else:  # no product (the direct sum, the depthwise kernel): nothing to replay
                replayed = f"{'-':>14} {'-':>6}"
            print(
                f"{case.name:<18} {wall:7.2f} {100 * flops / wall / rate:5.1f}% {product:15.2f} {kernels:15.2f} "
                f"{max(0.0, wall - product - kernels):13.2f} {replayed}",
                flush=True,
            )
    finally:
        np.matmul = real_matmul
        for name, fn in originals.items():
            setattr(compiled_kernels, name, fn)
        for (module, name), getter in getters.items():
            setattr(module, name, getter)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
