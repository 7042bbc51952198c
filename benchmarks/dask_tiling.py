"""Dask tiling against the single in-memory call, on one machine, for arrays that fit in memory.

Prints the overhead of tiling as a ratio (tiled time / in-memory time) at chunk sizes of tens of MB, with
Dask's threaded scheduler (one thread per core: each block's call uses one core, the in-memory call uses
tconv's own thread team on all cores). Run: ``python benchmarks/dask_tiling.py``.
"""

from __future__ import annotations

import os
import time

import dask
import dask.array as da
import numpy as np

import tconv


def best(function, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


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


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} CPUs; dask {dask.__version__}; float32; best of 3")
    header = (
        f"{'case':<40} {'out chunk MB':>12} {'blocks':>6} {'in memory s':>11} {'dask s':>8} {'ratio':>6} {'equal':>6}"
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
        memory = best(lambda op=op, x=x, w=w, options=options: op(x, w, **options))
        tiled = best(lambda lazy=lazy: lazy.compute(scheduler="threads"))
        chunk_mb = max(np.prod([max(c) for c in lazy.chunks]) * 4 / 1e6, 0)
        blocks = int(np.prod([len(c) for c in lazy.chunks]))
        equal = "yes" if np.array_equal(got, expected) else f"{np.abs(got - expected).max():.0e}"
        print(
            f"{name:<40} {chunk_mb:>12.1f} {blocks:>6} {memory:>11.3f} {tiled:>8.3f} {tiled / memory:>6.2f} {equal:>6}"
        )


if __name__ == "__main__":
    main()
