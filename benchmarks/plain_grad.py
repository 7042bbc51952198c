"""Both gradients of tconv against PyTorch's in one plain process, on eight layers of no suite or sweep, and a forked
child.

    env -i PATH="$PATH" HOME="$HOME" python benchmarks/plain_grad.py

Run it from a shell with nothing set, as ``plain_shell.py`` (which times forward calls). Eight float32 layers chosen
by hand outside ``tconv bench``'s suites and sweeps (1-D to 3-D, groups, channels-last, 1x1, strided transposed), so
that nothing was tuned on them. For each: the median of eleven calls of ``tconv.conv_grad`` or
``tconv.conv_transpose_grad`` (the input's and the weight's gradients, and the bias's) and of
``torch.autograd.grad`` for the input and the weight on a graph built once (``torch.set_num_threads(2)``), their
ratio, and tconv's weight gradient's largest difference from PyTorch's relative to its largest element. Then the
process forks; the child recomputes every gradient and exits 0 only if each is bitwise equal to the parent's.
Prints one line a layer and the geometric mean of the ratios; exits 1 if the child did not exit 0 or a gradient
differs from PyTorch's by more than 1e-4. A measurement script, not a test: nothing in it asserts a speed.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

import numpy as np

import tconv

#: name, transposed, x's shape channels-first, output channels, kernel, stride, padding, groups, channels-last
LAYERS = [
    ("1-D k7", False, (6, 20, 40), 72, (7,), 1, 3, 1, False),
    ("5x5 stride 2 nhwc", False, (4, 24, 33, 31), 40, (5, 5), 2, 2, 1, True),
    ("3x3 2 groups", False, (12, 96, 9, 9), 160, (3, 3), 1, 1, 2, False),
    ("1x1 nchw", False, (6, 96, 30, 30), 48, (1, 1), 1, 0, 1, False),
    ("1x1 nhwc", False, (6, 48, 30, 30), 192, (1, 1), 1, 0, 1, True),
    ("3-D transposed", True, (8, 64, 5, 5, 5), 32, (3, 3, 3), 2, 1, 1, False),
    ("4x4 stride 2 transposed nhwc", True, (16, 96, 12, 12), 48, (4, 4), 2, 1, 1, True),
    ("5x5 transposed 256 nhwc", True, (16, 256, 6, 6), 128, (5, 5), 1, 2, 1, True),
]


def _median(call: Any, count: int = 11) -> float:
    call()
    call()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> int:
    import torch

    torch.set_num_threads(2)
    functional = torch.nn.functional
    forward = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}
    transposed = {1: functional.conv_transpose1d, 2: functional.conv_transpose2d, 3: functional.conv_transpose3d}
    rng = np.random.default_rng(7)
    ratios, kept, failed = [], [], False
    for name, is_transposed, shape, c_out, kernel, stride, padding, groups, channels_last in LAYERS:
        x = rng.standard_normal(shape).astype(np.float32)
        c_in, d = shape[1], len(kernel)
        w_shape = (c_in, c_out // groups, *kernel) if is_transposed else (c_out, c_in // groups, *kernel)
        w = rng.standard_normal(w_shape).astype(np.float32)
        tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
        op = (transposed if is_transposed else forward)[d]
        y = op(tx, tw, stride=stride, padding=padding, groups=groups)
        gy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
        tgy = torch.from_numpy(gy)
        xin, gin = (np.ascontiguousarray(np.moveaxis(a, 1, -1)) for a in (x, gy)) if channels_last else (x, gy)
        gradient = tconv.conv_transpose_grad if is_transposed else tconv.conv_grad
        options = {"stride": stride, "padding": padding, "groups": groups, "channels_last": channels_last}

        def call(gradient: Any = gradient, gin: Any = gin, xin: Any = xin, w: Any = w, options: Any = options) -> Any:
            return gradient(gin, xin, w, **options)

        ours = _median(call)
        theirs = _median(lambda y=y, tx=tx, tw=tw, tgy=tgy: torch.autograd.grad(y, (tx, tw), tgy, retain_graph=True))
        gx, gw, _ = call()
        reference = torch.autograd.grad(y, (tx, tw), tgy, retain_graph=True)[1].numpy()
        error = float(np.abs(gw - reference).max() / np.abs(reference).max())
        failed |= error > 1e-4
        kept.append((gx, gw, call))
        ratios.append(ours / theirs)
        print(f"{name:30s} tconv {ours * 1e3:7.2f} ms  torch {theirs * 1e3:7.2f} ms  {ours / theirs:5.2f}  {error:.1e}")
    print(f"geometric mean tconv/torch: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}")
    sys.stdout.flush()
    child = os.fork()
    if child == 0:
        same = all(
            np.array_equal(gx, again[0]) and np.array_equal(gw, again[1]) for gx, gw, call in kept for again in [call()]
        )
        os._exit(0 if same else 3)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    print(f"forked child: exit {code} ({'every gradient bitwise equal' if code == 0 else 'NOT equal or failed'})")
    return 1 if code != 0 or failed else 0


if __name__ == "__main__":
    sys.exit(main())
