"""``jit_pixels``' block writes (channels-last output of whole stride blocks): against its column path, and the
planner's choices with and without them, on random aligned layers.

    python benchmarks/block_writes.py paths SEED [COUNT]     # forced jit_pixels: block writes vs column path
    python benchmarks/block_writes.py choices SEED [COUNT]   # the planner's choice before and after, timed forced
    python benchmarks/block_writes.py grouped SEED [COUNT]   # the same on grouped layers

The layers (``COUNT``, 24 by default): 1-D to 3-D channels-last transposed calls whose every kernel is equal to
(three in four) or shorter than its stride (2-4), with output padding ``s - k`` so that each output size is
``n * s`` (:func:`tconv.implementations.compiled.transposed.writes_blocks`), batch 1-16, 2-256 input and 1-256
output channels, sides drawn per rank, at most 16 MB of input and 32 MB of output. The column path is the same
call with ``writes_blocks`` answering False (the tree before the block writes, in the same process).

``paths`` times forced ``jit_pixels`` both ways (medians of 9 calls after 2) and, where PyTorch is installed,
PyTorch's own call in channels-last memory; it prints each layer and the geometric means. ``choices`` asks the
planner with and without the block writes (``writes_blocks`` patched, the plan cache cleared), times each choice
forced, with ``jit_gemm`` and ``jit_pixels`` both ways, and prints each choice's regret against the fastest of
those timed and the geometric mean of after over before. ``grouped`` does what ``choices`` does on grouped layers
(2-32 groups of 2-64 input and 1-128 output channels; before the grouped block writes, ``jit_pixels`` took no
groups), timing ``jit_direct`` too. Run it on a quiet machine: single rows
move 1.5-2x between runs on a busy 2-vCPU one.

A measurement script, not a test; nothing in it is asserted.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

import tconv
from tconv.engine import planner
from tconv.implementations.compiled import team, transposed


def _median(call: Callable[[], object], repeats: int = 9) -> float:
    for _ in range(2):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _ColumnPath:
    """Within it, ``jit_pixels`` (and the planner's estimate) as before the block writes."""

    def __enter__(self) -> None:
        self.kept = transposed.writes_blocks
        transposed.writes_blocks = lambda spec: False
        planner.plan.cache_clear()

    def __exit__(self, *exc: object) -> None:
        transposed.writes_blocks = self.kept
        planner.plan.cache_clear()


def _layers(seed: int, count: int, grouped: bool = False) -> Iterator[tuple[int, int, int, int, int, int, int, int]]:
    rng = np.random.default_rng(seed)
    made = 0
    while made < count:
        d = int(rng.choice([1, 2, 2, 2, 3]))
        s = int(rng.choice([2, 2, 2, 3, 4]))
        k = s if rng.random() < 0.75 else int(rng.integers(1, s))
        if grouped:
            groups = int(rng.choice([2, 3, 4, 8, 16, 32]))
            c_in = groups * int(rng.choice([2, 3, 4, 8, 16, 32, 64]))
            c_out = groups * int(rng.choice([1, 2, 4, 8, 16, 32, 64, 128]))
        else:
            groups = 1
            c_in = int(rng.choice([2, 3, 4, 8, 16, 32, 64, 128, 256]))
            c_out = int(rng.choice([1, 3, 4, 8, 16, 32, 64, 128, 256]))
        n = int(rng.choice([1, 1, 2, 4, 8, 16]))
        side = int(rng.integers(4, {1: 300, 2: 64, 3: 16}[d]))
        if n * c_in * side**d * 4 > 16e6 or n * c_out * (side * s) ** d * 4 > 32e6:
            continue
        made += 1
        yield d, n, c_in, c_out, side, k, s, groups


def _geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def main(mode: str, seed: int, count: int) -> None:
    rng = np.random.default_rng(seed + 1000)
    try:
        import torch

        torch.set_num_threads(team.threads())  # as many threads as tconv's team
    except ImportError:
        torch = None
    ratios: list[float] = []
    against_torch: list[float] = []
    before_regret: list[float] = []
    after_regret: list[float] = []
    for d, n, c_in, c_out, side, k, s, groups in _layers(seed, count, grouped=mode == "grouped"):
        x = rng.standard_normal((n, *(side,) * d, c_in), dtype=np.float32)
        w = rng.standard_normal((c_in, c_out // groups, *(k,) * d), dtype=np.float32)
        b = rng.standard_normal(c_out, dtype=np.float32)
        options = {"stride": s, "output_padding": s - k, "groups": groups}
        name = f"{d}-D N{n} C_in {c_in} C_out {c_out} G{groups} side {side} k{k} s{s}"

        def call(x=x, w=w, b=b, options=options) -> object:
            return tconv.conv_transpose(x, w, b, channels_last=True, **options)

        if mode == "paths":
            with tconv.use_algorithm("jit_pixels"):
                blocks = _median(call)
                with _ColumnPath():
                    columns = _median(call)
            ratios.append(blocks / columns)
            line = f"{name}: columns {columns * 1e3:.3f} ms, blocks {blocks * 1e3:.3f} ({blocks / columns:.2f})"
            if torch is not None:
                functional = (torch.nn.functional.conv_transpose1d, torch.nn.functional.conv_transpose2d)
                conv = (*functional, torch.nn.functional.conv_transpose3d)[d - 1]
                xt = torch.from_numpy(np.moveaxis(x, -1, 1))
                if d > 1:
                    xt = xt.contiguous(memory_format=torch.channels_last if d == 2 else torch.channels_last_3d)
                wt, bt = torch.from_numpy(w), torch.from_numpy(b)
                theirs = _median(lambda xt=xt, wt=wt, bt=bt, conv=conv, options=options: conv(xt, wt, bt, **options))
                against_torch.append(blocks / theirs)
                line += f", PyTorch {theirs * 1e3:.3f} (blocks / PyTorch {blocks / theirs:.2f})"
            print(line, flush=True)
            continue
        spec = tconv.ConvSpec.build(
            transposed=True,
            input_size=(side,) * d,
            kernel_size=(k,) * d,
            in_channels=c_in,
            out_channels=c_out,
            **options,
        )
        with _ColumnPath():
            old = planner.plan(spec, True, True, False, n)
        planner.plan.cache_clear()
        new = planner.plan(spec, True, True, False, n)
        times: dict[str, float] = {}
        timed = {old, new, "jit_gemm", "jit_pixels"}
        if groups > 1:  # jit_pixels only where its block writes take the call
            timed = {*timed, "jit_direct"} - ({"jit_pixels"} if not transposed.blocks_fit(spec) else set())
        for algorithm in timed:
            with tconv.use_algorithm(algorithm):
                times["after " + algorithm] = _median(call)
                if algorithm == "jit_pixels" and groups == 1:  # grouped, it had no path before
                    with _ColumnPath():
                        times["before " + algorithm] = _median(call)
                else:
                    times["before " + algorithm] = times["after " + algorithm]
        fastest = min(times.values())
        before, after = times["before " + old], times["after " + new]
        before_regret.append(before / fastest)
        after_regret.append(after / fastest)
        print(
            f"{name}: before {old} {before * 1e3:.3f} ms, after {new} {after * 1e3:.3f} ({after / before:.2f}); "
            + ", ".join(f"{key} {value * 1e3:.3f}" for key, value in sorted(times.items())),
            flush=True,
        )
    if mode == "paths":
        print(f"blocks / columns: geometric mean {_geomean(ratios):.3f} over {len(ratios)} layers")
        if against_torch:
            print(f"blocks / PyTorch: geometric mean {_geomean(against_torch):.3f}")
    else:
        after_over_before = [a / b for a, b in zip(after_regret, before_regret)]
        print(
            f"regret before {_geomean(before_regret):.3f}, after {_geomean(after_regret):.3f}; "
            f"after / before {_geomean(after_over_before):.3f} over {len(after_regret)} layers"
        )


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("paths", "choices", "grouped"):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 24)
