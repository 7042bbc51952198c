"""The layers ``tconv bench`` times: the transposed-convolution suite, the forward-convolution suite, and the
random sweeps of either (``--sweep SEED``), drawn under a cap on the work and the memory of one call.

A :class:`Case` is one layer: ``transposed`` (the default) or a forward convolution, its input shape
``(N, C_in, *spatial)``, output channels, kernel and the options, whether its gradients are timed too, and
whether the arrays are channels-last. :func:`sweep` draws ``count`` realistic layers from a seed: the same
seed gives the same layers on every machine (NumPy's ``default_rng``), and a draw over :data:`MAX_FLOPS` or
:data:`MAX_BYTES` is thrown away and drawn again, so that every call stays within a fraction of a second
to a few seconds on a 2-core machine, for the slowest framework too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import shapes

__all__ = ["CASES", "FORWARD_CASES", "MAX_BYTES", "MAX_FLOPS", "Case", "arrays", "sweep"]


@dataclass(frozen=True)
class Case:
    name: str
    x: tuple[int, ...]  # (N, C_in, *spatial)
    c_out: int
    kernel: tuple[int, ...]
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    grad: bool = False
    channels_last: bool = False
    transposed: bool = True

    @property
    def weight(self) -> tuple[int, ...]:
        """The weight's shape in tconv's (PyTorch's) layout: ``(in, out/groups, *k)`` transposed,
        ``(out, in/groups, *k)`` forward."""
        if self.transposed:
            return (self.x[1], self.c_out // self.groups, *self.kernel)
        return (self.c_out, self.x[1] // self.groups, *self.kernel)

    @property
    def output_spatial(self) -> tuple[int, ...]:
        if self.transposed:
            return tuple(
                shapes.conv_transpose_output_size(
                    n,
                    k,
                    stride=self.stride,
                    padding=self.padding,
                    output_padding=self.output_padding,
                    dilation=self.dilation,
                )
                for n, k in zip(self.x[2:], self.kernel)
            )
        return tuple(
            shapes.conv_output_size(n, k, stride=self.stride, padding=self.padding, dilation=self.dilation)
            for n, k in zip(self.x[2:], self.kernel)
        )

    @property
    def flops(self) -> float:
        """Multiply-adds x 2 of the layer: per input pixel (transposed) or per output pixel (forward)."""
        pixels = math.prod(self.x[2:]) if self.transposed else math.prod(self.output_spatial)
        per_pixel = self.c_out * self.x[1] if self.transposed else self.x[1] * self.c_out
        return 2.0 * self.x[0] * per_pixel / self.groups * math.prod(self.kernel) * pixels

    @property
    def output_bytes(self) -> int:
        return 4 * self.x[0] * self.c_out * math.prod(self.output_spatial)

    @property
    def bytes(self) -> int:
        """float32 bytes of x, the weight and the output."""
        return 4 * (math.prod(self.x) + math.prod(self.weight)) + self.output_bytes

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = dict(
            stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups
        )
        if self.transposed:
            options["output_padding"] = self.output_padding
        return options

    def describe(self) -> str:
        """The layer in one line (for the sweep's listing)."""
        kind = "convT" if self.transposed else "conv"
        extra = f" op{self.output_padding}" if self.output_padding else ""
        extra += f" d{self.dilation}" if self.dilation > 1 else ""
        extra += f" g{self.groups}" if self.groups > 1 else ""
        extra += " nhwc" if self.channels_last else ""
        k = "x".join(map(str, self.kernel))
        return f"{kind} x{self.x} -> {self.c_out} k{k} s{self.stride} p{self.padding}{extra}"


CASES = [
    Case("keras-dcgan-1", (64, 256, 7, 7), 128, (5, 5), 1, 2),
    Case("keras-dcgan-2", (64, 128, 7, 7), 64, (5, 5), 2, 2, 1, grad=True),
    Case("keras-dcgan-3", (64, 64, 14, 14), 1, (5, 5), 2, 2, 1),
    Case("dcgan64-1", (64, 100, 1, 1), 512, (4, 4), 1, 0),
    Case("dcgan64-2", (64, 512, 4, 4), 256, (4, 4), 2, 1),
    Case("dcgan64-3", (64, 256, 8, 8), 128, (4, 4), 2, 1, grad=True),
    Case("dcgan64-4", (64, 128, 16, 16), 64, (4, 4), 2, 1),
    Case("dcgan64-5", (64, 64, 32, 32), 3, (4, 4), 2, 1),
    Case("dcgan64-3-nhwc", (64, 256, 8, 8), 128, (4, 4), 2, 1, channels_last=True),
    Case("unet-up", (1, 512, 32, 32), 256, (2, 2), 2),
    Case("unet-up-large", (1, 128, 128, 128), 64, (2, 2), 2, grad=True),
    Case("fcn32s", (1, 21, 7, 7), 21, (64, 64), 32, bias=False),
    Case("depthwise", (8, 64, 56, 56), 64, (4, 4), 2, 1, groups=64),
    Case("grouped-1d", (16, 512, 32), 512, (6,), 3, groups=512),
    Case("dilated", (8, 64, 32, 32), 64, (3, 3), 1, 2, dilation=2),
    Case("unet3d-up", (1, 64, 16, 16, 16), 32, (2, 2, 2), 2),
    Case("conv3d-k3s2", (1, 64, 32, 32, 32), 32, (3, 3, 3), 2, 1, 1),
    Case("hifigan-1d", (1, 512, 256), 256, (16,), 8, 4),
    Case("istft-1d", (1, 1026, 224), 1, (1024,), 256),
    Case("fsrcnn-x3", (1, 56, 64, 64), 1, (9, 9), 3, 4, 2),
]

#: forward convolutions (``tconv bench --forward``): the layers of issue 19's list. The U-Net layer is at
#: (1, 64, 128, 128) instead of (1, 64, 256, 256) (4.8 GFLOP, over a second a call for the slower peers on
#: two cores), the 3-D one at (1, 32, 32, 32, 32) instead of 48^3.
FORWARD_CASES = [
    Case("resnet-3x3", (8, 64, 56, 56), 64, (3, 3), 1, 1, transposed=False),
    Case("resnet-3x3-s2", (8, 64, 56, 56), 128, (3, 3), 2, 1, transposed=False),
    Case("resnet-1x1", (8, 256, 28, 28), 256, (1, 1), transposed=False),
    Case("resnet-3x3-nhwc", (8, 64, 56, 56), 64, (3, 3), 1, 1, channels_last=True, transposed=False),
    Case("depthwise-3x3", (8, 128, 56, 56), 128, (3, 3), 1, 1, groups=128, transposed=False),
    Case("depthwise-3x3-s2", (8, 256, 28, 28), 256, (3, 3), 2, 1, groups=256, transposed=False),
    Case("unet-3x3-b1", (1, 64, 128, 128), 64, (3, 3), 1, 1, transposed=False),
    Case("conv3d-3x3x3-b1", (1, 32, 32, 32, 32), 32, (3, 3, 3), 1, 1, transposed=False),
    Case("wavenet-dilated-1d", (4, 64, 4096), 64, (2,), 1, 0, dilation=8, transposed=False),
    Case("wavenet-dilated-k3", (1, 128, 8192), 128, (3,), 1, 16, dilation=16, transposed=False),
    Case("dcgan-disc-1", (64, 3, 64, 64), 64, (4, 4), 2, 1, transposed=False),
    Case("dcgan-disc-2", (64, 64, 32, 32), 128, (4, 4), 2, 1, transposed=False),
    Case("dcgan-disc-3", (64, 128, 16, 16), 256, (4, 4), 2, 1, transposed=False),
    Case("keras-disc-1", (64, 1, 28, 28), 64, (5, 5), 2, 2, transposed=False),
    Case("keras-disc-2", (64, 64, 14, 14), 128, (5, 5), 2, 2, transposed=False),
]


def arrays(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """float32 ``x`` ``(N, C_in, *spatial)``, weight (tconv's layout) and bias for ``case``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x, dtype=np.float32)
    w = rng.standard_normal(case.weight, dtype=np.float32) * 0.05
    b = rng.standard_normal(case.c_out, dtype=np.float32) if case.bias else None
    return x, w, b


#: the most work one sweep layer may have (2 x multiply-adds): about 10 ms at the GEMM rate of 2 cores
#: here, a second for a framework at 2% of it
MAX_FLOPS = 2.0e9
#: the most float32 bytes of x, weight and output of one sweep layer
MAX_BYTES = 96 * 2**20
#: the least work: below it every framework times its call overhead
MIN_FLOPS = 2.0e5


def _log_uniform(rng: np.random.Generator, low: int, high: int) -> int:
    return min(high, max(low, round(math.exp(rng.uniform(math.log(low), math.log(high + 0.5))))))


def _draw(rng: np.random.Generator, transposed: bool, index: int) -> Case | None:
    """One random layer, or ``None`` when the drawn options do not make a valid layer."""
    d = int(rng.choice([1, 2, 3], p=[0.25, 0.55, 0.2]))
    n = _log_uniform(rng, 1, 64)
    c_in, c_out = _log_uniform(rng, 1, 512), _log_uniform(rng, 1, 512)
    kind = rng.uniform()
    groups = 1
    if kind < 0.15:  # depthwise
        c_out = c_in
        groups = c_in
    elif kind < 0.25:  # grouped
        g = int(rng.choice([2, 4, 8, 16, 32]))
        c_in, c_out = max(g, c_in // g * g), max(g, c_out // g * g)
        groups = g
    top = {1: 128, 2: 128, 3: 32}[d]  # 3-D: a 128^3 volume is over the byte cap with any channels
    size = _log_uniform(rng, 1, top)
    k = int(rng.integers(1, 10))
    stride = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.4, 0.1, 0.15]))
    dilation = int(rng.choice([1, 2, 3])) if k > 1 and rng.uniform() < 0.15 else 1
    reach = dilation * (k - 1)
    padding = int(rng.integers(0, reach // 2 + 1)) if reach else 0
    output_padding = 0
    if transposed and max(stride, dilation) > 1 and rng.uniform() < 0.4:
        output_padding = int(rng.integers(0, max(stride, dilation)))
    case = Case(
        f"{'sweep' if transposed else 'fsweep'}-{index:02d}",
        (n, c_in, *(size,) * d),
        c_out,
        (k,) * d,
        stride,
        padding,
        output_padding,
        dilation,
        groups,
        bias=bool(rng.uniform() < 0.7),
        channels_last=bool(rng.uniform() < 0.3),
        transposed=transposed,
    )
    try:
        if any(o < 1 for o in case.output_spatial):
            return None
    except ValueError:  # the padded input is shorter than the dilated kernel
        return None
    return case


def sweep(seed: int, count: int = 60, *, transposed: bool = True) -> list[Case]:
    """``count`` random realistic layers drawn from ``seed`` (batch 1-64, channels 1-512, sizes 1-128 (1-32
    in 3-D), kernels 1-9, also shorter than the stride, strides 1-4, dilation, groups and depthwise, 1-D/2-D/3-D,
    channels first and last), each under :data:`MAX_FLOPS` and :data:`MAX_BYTES` (drawn again when over).
    Named ``sweep-NN`` (``fsweep-NN`` forward)."""
    rng = np.random.default_rng([seed, 0 if transposed else 1])
    cases: list[Case] = []
    while len(cases) < count:
        case = _draw(rng, transposed, len(cases))
        if case is None or not MIN_FLOPS <= case.flops <= MAX_FLOPS or case.bytes > MAX_BYTES:
            continue
        cases.append(case)
    return cases


def with_batch(case: Case, batch: int) -> Case:
    """``case`` with another batch size (tests shrink layers with it)."""
    return replace(case, x=(batch, *case.x[1:]))
