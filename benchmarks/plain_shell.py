"""tconv against PyTorch in one plain process, on ten layers of no suite or sweep, and a forked child.

    env -i PATH="$PATH" HOME="$HOME" python benchmarks/plain_shell.py

Run it from a shell with nothing set (no ``OMP_*``, ``KMP_*``, ``GOMP_*`` or BLAS variables): the way a user meets
tconv. Ten float32 layers (transposed and forward, 1-D to 3-D, strided, depthwise, channels-last), chosen by hand
outside ``tconv bench``'s suites and sweeps, so that nothing was tuned on them. For each: the median time of a turn
of tconv's calls as ``tconv bench`` times it (15 calls, more where they are short, fewer where they take over 2 s)
for tconv (its own two threads) and for PyTorch (``torch.set_num_threads(2)``), their ratio and tconv's largest
difference from PyTorch's result relative to the largest output. After tconv's calls and before PyTorch is imported,
the process forks; the child repeats tconv's calls and exits 0 only if every result is bitwise equal to the parent's
(tconv's team of threads must survive ``fork``, and its results must not depend on which thread summed what). Prints
one line a layer and the geometric mean of the ratios; exits 1 if the child did not exit 0. A measurement script,
not a test: nothing in it asserts a speed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

import tconv
from tconv.tools.bench import time_turn

#: (transposed "T" or forward "F", x's shape channels-first, the weight's shape, options, channels-last)
LAYERS = [
    ("T", (3, 40, 17, 19), (40, 24, 5, 5), {"padding": 2}, False),
    ("T", (6, 20, 33, 33), (20, 48, 3, 3), {"padding": 1}, True),
    ("T", (3, 96, 11, 13), (96, 48, 3, 3), {"stride": 2}, False),
    ("T", (5, 24, 30, 30), (24, 12, 4, 4), {"stride": 2, "padding": 1}, False),
    ("F", (4, 72, 25, 25), (72, 1, 1, 1), {"stride": 2, "groups": 72}, False),
    ("F", (6, 48, 27, 27), (64, 48, 3, 3), {"padding": 1}, False),
    ("F", (4, 80, 500), (96, 80, 5), {"padding": 2}, False),
    ("T", (2, 64, 9, 9, 9), (64, 32, 2, 2, 2), {"stride": 2}, False),
    ("F", (8, 96, 30, 30), (160, 96, 3, 3), {"stride": 2, "padding": 1}, True),
    ("F", (2, 128, 20, 20, 20), (64, 128, 3, 3, 3), {"padding": 1}, False),
]


def _call(kind: str, x: np.ndarray, w: np.ndarray, options: dict[str, Any], last: bool) -> np.ndarray:
    return (tconv.conv_transpose if kind == "T" else tconv.conv)(x, w, channels_last=last, **options)


def _median_ms(fn: Any, calls: int = 15) -> float:
    """The median time of a turn of ``calls`` calls (``tconv bench``'s: :func:`tconv.tools.bench.time_turn`),
    after one not timed, in milliseconds."""
    fn()
    return time_turn(fn, calls) * 1e3


def main() -> int:
    rng = np.random.default_rng(36)
    data = []
    for kind, x_shape, w_shape, options, last in LAYERS:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32)
        if last:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        data.append((kind, x, w, options, last))
    results = [_call(*layer) for layer in data]
    mine_ms = [_median_ms(lambda layer=layer: _call(*layer)) for layer in data]
    pid = os.fork()
    if pid == 0:  # the child: tconv's calls again, on the team forked from the parent's
        same = all(np.array_equal(_call(*layer), result) for layer, result in zip(data, results))
        os._exit(0 if same else 3)
    _, status = os.waitpid(pid, 0)
    child = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    print(f"forked child exit {child} (0: every result bitwise equal)")

    import torch
    import torch.nn.functional as functional

    torch.set_num_threads(2)
    logs = []
    for (kind, x, w, options, last), ms, result in zip(data, mine_ms, results):
        xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)) if last else x)
        wt = torch.from_numpy(w)
        name = ("conv_transpose" if kind == "T" else "conv") + f"{x.ndim - 2}d"
        fn = getattr(functional, name)
        reference = fn(xt, wt, **options).numpy()
        mine = np.moveaxis(result, -1, 1) if last else result
        error = float(np.abs(mine - reference).max() / np.abs(reference).max())
        theirs = _median_ms(lambda fn=fn, xt=xt, wt=wt, options=options: fn(xt, wt, **options))
        logs.append(np.log(ms / theirs))
        layout = " channels-last" if last else ""
        print(
            f"{name} x{tuple(x.shape)}{layout}: tconv {ms:.3f} ms, torch {theirs:.3f} ms, "
            f"ratio {ms / theirs:.2f}, relative difference {error:.1e}"
        )
    print(f"geometric mean tconv/torch: {float(np.exp(np.mean(logs))):.2f} over {len(logs)} layers")
    return 0 if child == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
