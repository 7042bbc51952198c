"""Whose BLAS limit takes: tconv's calls after a Dask computation, and another thread's limit after tconv's calls.

threadpoolctl (3.8 on) lets one thread at a time change the thread count of an OpenBLAS with its own threads:
the first thread that changes it, until that thread gives the control up or ends; the other threads' changes are
silently ignored (docs/design.md, "Whose limit takes"). This script shows, in one fresh process each:

* ``fresh`` and ``dask``: a few layers timed (median of ``--repeats`` calls), in a fresh process, and in one that
  first ran a small ``tconv.dask`` computation on Dask's threaded scheduler, whose pool threads live on. Where a
  block's thread kept the control, the second process's teams run beside BLAS's threads.
* ``limit``: one tconv call in the main thread, then a limit to one BLAS thread set from another thread: whether
  it took (``get_num_threads`` read back there); and the same through OpenBLAS's own ``openblas_set_num_threads``
  (past threadpoolctl's rule), which takes from any thread.

Run: ``python benchmarks/blas_control.py [--repeats N]`` (it starts one child process per part).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

LAYERS = [
    # name, transposed, x shape, weight shape, options
    ("conv 3x3 (8,64,56,56)", False, (8, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    ("conv 5x5 s2 (64,64,14,14)", False, (64, 64, 14, 14), (128, 64, 5, 5), {"stride": 2, "padding": 2}),
    ("conv_transpose 4x4 s2 (64,256,8,8)", True, (64, 256, 8, 8), (256, 128, 4, 4), {"stride": 2, "padding": 1}),
]


def _times(repeats: int) -> list[float]:
    import numpy as np

    import tconv

    rng = np.random.default_rng(0)
    times = []
    for _, transposed, x_shape, w_shape, options in LAYERS:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32)
        call = tconv.conv_transpose if transposed else tconv.conv
        call(x, w, **options)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            call(x, w, **options)
            samples.append(time.perf_counter() - start)
        times.append(statistics.median(samples) * 1e3)
    return times


def _dask_first(repeats: int) -> list[float]:
    import dask.array as da
    import numpy as np

    import tconv
    import tconv.dask

    x = np.random.default_rng(1).standard_normal((2, 8, 64, 64)).astype(np.float32)
    w = np.ones((8, 4, 4, 4), np.float32)
    tconv.conv_transpose(da.from_array(x, chunks=(1, 8, 32, 64)), w, stride=2).compute(scheduler="threads")
    return _times(repeats)


def _limit_part() -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from threadpoolctl import ThreadpoolController

    import tconv

    libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    x = np.ones((8, 64, 56, 56), np.float32)
    tconv.conv(x, np.ones((64, 64, 3, 3), np.float32), padding=1)
    original = [lib.get_num_threads() for lib in libs]

    def limit() -> list[int]:
        for lib in libs:
            lib.set_num_threads(1)
        seen = [lib.get_num_threads() for lib in libs]
        for lib, count in zip(libs, original):
            lib.set_num_threads(count)
        return seen

    def raw_limit() -> list[int | None]:  # OpenBLAS's own call, past threadpoolctl's rule (a private helper)
        seen: list[int | None] = []
        for lib, count in zip(libs, original):
            setter = getattr(lib, "_get_symbol", lambda name: None)("openblas_set_num_threads")
            if setter is None:
                seen.append(None)
                continue
            setter(1)
            seen.append(lib.get_num_threads())
            setter(count)
        return seen

    with ThreadPoolExecutor(1) as pool:
        limited = pool.submit(limit).result()
        raw = pool.submit(raw_limit).result()
    return {"original": original, "limited_in_other_thread": limited, "openblas_call_in_other_thread": raw}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--part", choices=("fresh", "dask", "limit"), help=argparse.SUPPRESS)  # a child's part
    args = parser.parse_args()
    if args.part == "fresh":
        print(json.dumps(_times(args.repeats)))
        return
    if args.part == "dask":
        print(json.dumps(_dask_first(args.repeats)))
        return
    if args.part == "limit":
        print(json.dumps(_limit_part()))
        return
    runs = {}
    for part in ("fresh", "dask", "limit"):
        command = [sys.executable, __file__, "--part", part, "--repeats", str(args.repeats)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        runs[part] = json.loads(done.stdout.strip().splitlines()[-1])
    header = f"layer (median of {args.repeats} calls, ms)"
    print(f"{header:40s} {'fresh':>9s} {'after Dask':>11s} {'ratio':>6s}")
    for (name, *_), before, after in zip(LAYERS, runs["fresh"], runs["dask"]):
        print(f"{name:40s} {before:9.2f} {after:11.2f} {after / before:6.2f}")
    limit = runs["limit"]
    took = all(n == 1 for n in limit["limited_in_other_thread"])
    print(
        f"another thread's limit to one BLAS thread after a tconv call in the main thread: "
        f"{'took' if took else 'IGNORED'} (counts {limit['original']} -> {limit['limited_in_other_thread']})"
    )
    print(
        f"OpenBLAS's own openblas_set_num_threads(1) from that thread: counts -> "
        f"{limit['openblas_call_in_other_thread']}"
    )


if __name__ == "__main__":
    main()
