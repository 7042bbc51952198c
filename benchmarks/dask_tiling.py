"""Dask tiling against the single in-memory call, on one machine, for arrays that fit in memory.

Prints the overhead of tiling as a ratio (tiled time / in-memory time) at chunk sizes of tens of MB, with
Dask's threaded scheduler (one thread per core), twice: as tconv.dask runs blocks by default (one engine thread
per block: tconv's team and BLAS limited to one thread while blocks run, ``tconv.dask.set_block_threads(1)``),
and with the engine's own threads in every block (``set_block_threads(None)``: the first implementation). The
in-memory call uses every core. The three are timed in turn, ``--repeat`` rounds (default
6), each taking each place in the order (whatever runs right after the in-memory call of another size is
slower, up to 2x here), and the median is reported, with the load average: on a shared machine other
processes move the figures.
Run: ``python benchmarks/dask_tiling.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import dask
import dask.array as da
import numpy as np

import tconv

CASES = [
    # name, transposed, x shape, weight shape, options, input chunks
    ("ConvTranspose3d k4 s2 8->8, 64^3", True, (1, 8, 64, 64, 64), (8, 8, 4, 4, 4), {"stride": 2, "padding": 1},
     (1, 8, 32, 32, 64)),
    ("ConvTranspose3d k4 s2 8->8, 96^3", True, (1, 8, 96, 96, 96), (8, 8, 4, 4, 4), {"stride": 2, "padding": 1},
     (1, 8, 48, 48, 96)),
    ("Conv3d k3 16->16, 96^3", False, (1, 16, 96, 96, 96), (16, 16, 3, 3, 3), {"padding": 1}, (1, 16, 48, 48, 96)),
    ("ConvTranspose2d k4 s2 32->16, 1024^2", True, (1, 32, 1024, 1024), (32, 16, 4, 4), {"stride": 2, "padding": 1},
     (1, 32, 256, 1024)),
    ("Conv2d k3 32->32, 1024^2", False, (1, 32, 1024, 1024), (32, 32, 3, 3), {"padding": 1}, (1, 32, 256, 1024)),
]  # fmt: skip


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=6, help="rounds of the three timings (default 6)")
    repeat = parser.parse_args().repeat
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} CPUs; dask {dask.__version__}; float32; median of {repeat}, timed in rotating order")
    print("ratio: tiled / in memory; 'engine threads': with tconv.dask.set_block_threads(None) (before)")
    header = (
        f"{'case':<38} {'chunk MB':>8} {'blocks':>6} {'memory s':>8} {'dask s':>7} {'ratio':>6} "
        f"{'engine threads s':>16} {'ratio':>6} {'equal':>6} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for name, transposed, x_shape, w_shape, options, chunks in CASES:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32)
        op = tconv.conv_transpose if transposed else tconv.conv
        expected = op(x, w, **options)
        lazy = op(da.from_array(x, chunks=chunks), w, **options)
        got = lazy.compute(scheduler="threads")

        def engine_threads(lazy=lazy) -> None:
            tconv.dask.set_block_threads(None)
            try:
                lazy.compute(scheduler="threads")
            finally:
                tconv.dask.set_block_threads(1)

        runs = {
            "memory": lambda op=op, x=x, w=w, options=options: op(x, w, **options),
            "dask": lambda lazy=lazy: lazy.compute(scheduler="threads"),
            "engine": engine_threads,
        }
        engine_threads()
        times: dict[str, list[float]] = {key: [] for key in runs}
        order = list(runs)
        for round_ in range(repeat):  # each takes each place in turn: the call after another shape's runs slower
            for key in order[round_ % 3 :] + order[: round_ % 3]:
                times[key].append(timed(runs[key]))
        memory, tiled, engine = (statistics.median(times[key]) for key in runs)
        chunk_mb = max(np.prod([max(c) for c in lazy.chunks]) * 4 / 1e6, 0)
        blocks = int(np.prod([len(c) for c in lazy.chunks]))
        equal = "yes" if np.array_equal(got, expected) else f"{np.abs(got - expected).max():.0e}"
        print(
            f"{name:<38} {chunk_mb:>8.1f} {blocks:>6} {memory:>8.3f} {tiled:>7.3f} {tiled / memory:>6.2f} "
            f"{engine:>16.3f} {engine / memory:>6.2f} {equal:>6} {os.getloadavg()[0]:>5.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
