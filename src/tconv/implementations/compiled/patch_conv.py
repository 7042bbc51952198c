"""Convolutions whose windows are patches: a channels-last x, no groups, no dilation, and no kernel longer than
its stride, so that every input is read by at most one window (ViT's and ConvNeXt's stems, Swin's patch merging,
2x2 stride-2 downsampling). :func:`conv` runs one gather of the windows, pixel-major, and one product whose
result is the channels-last output; ``jit_gemm``'s forward (:func:`.im2col.conv`) takes such calls here
(docs/design.md, "Patch convolutions and the dead-tap cut's weight").
"""

from __future__ import annotations

import math

import numpy as np

from ...spec import ConvSpec
from . import team


def fits(spec: ConvSpec, channels_last: bool) -> bool:
    """Whether a convolution's windows are patches of a channels-last x (:func:`conv`): no groups, no
    dilation, and no kernel longer than its stride (the windows do not overlap: a ViT or ConvNeXt stem, Swin's
    patch merging, a stride-2 2x2 downsampling)."""
    return (
        channels_last
        and not spec.transposed
        and spec.groups == 1
        and all(d == 1 for d in spec.dilation)
        and all(k <= s for k, s in zip(spec.kernel_size, spec.stride))
    )


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, spec: ConvSpec) -> np.ndarray:
    """A convolution whose windows are patches (:func:`fits`) of a channels-last x ``(N, *S, C)``: the
    padded span the windows cover, ``O * s`` per axis, seen as ``(N, O1, s1, O2, s2, ..., C)``, each window's
    first ``k`` rows taken and the windows copied pixel-major into ``(N * P, K * C)`` in one gather, times the
    weight as ``(K * C, C_out)``: the product is the channels-last output itself. The generic im2col would
    copy x channels-first, gather column by column and multiply back pixel-major."""
    batch, channels, d = x.shape[0], x.shape[-1], spec.ndim
    out_size, kernel, stride = spec.output_size, spec.kernel_size, spec.stride
    span = tuple(o * st for o, st in zip(out_size, stride))
    low = tuple(lo for lo, _ in spec.padding)
    # x's rows at span row r: r - lo, where 0 <= r - lo < n
    # (none where the low padding reaches past the span: its windows are all padding)
    src = tuple(slice(0, max(0, min(n, sp - lo))) for lo, n, sp in zip(low, spec.input_size, span))
    dst = tuple(slice(sl.start + lo, sl.stop + lo) for sl, lo in zip(src, low))
    whole = slice(None)
    inside = (whole, *src, whole)
    if all(lo == 0 for lo in low) and all(sp <= n for sp, n in zip(span, spec.input_size)):
        padded = x[inside]  # the span within x: a view
    else:
        padded = np.zeros((batch, *span, channels), dtype=x.dtype)
        placed = (whole, *dst, whole)
        padded[placed] = x[inside]
    windows = padded.reshape(batch, *(v for o, st in zip(out_size, stride) for v in (o, st)), channels)
    firsts = (whole, *(v for k in kernel for v in (whole, slice(0, k))), whole)  # each window's first k rows
    windows = windows[firsts]
    order = (0, *range(1, 2 * d, 2), *range(2, 2 * d + 1, 2), 2 * d + 1)  # (N, O..., k..., C)
    pixels = math.prod(out_size)
    cols = np.ascontiguousarray(windows.transpose(order)).reshape(batch * pixels, -1)
    w_matrix = np.ascontiguousarray(np.moveaxis(weight, 1, -1).reshape(spec.out_channels, -1).T)  # (K * C, C_out)
    out = np.empty((batch, *out_size, spec.out_channels), dtype=x.dtype)
    rows = out.reshape(batch * pixels, spec.out_channels)
    team.matmul(cols, w_matrix, out=rows)
    if bias is not None:
        rows += np.asarray(bias, dtype=x.dtype)
    return out


__all__ = ["conv", "fits"]
