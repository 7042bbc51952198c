"""Fixed upsampling by nearest or (bi/tri)linear interpolation: the alternatives to a learned upsampler."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._arguments import ints_per_axis
from ..module import Module
from .base import apply_per_axis, check_spatial_rank, from_channels_first, to_channels_first

__all__ = ["Resize", "resize_rows"]


def resize_rows(
    dst: np.ndarray, size: int, out: int, mode: str, *, align_corners: bool = False, scale: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where output rows ``dst`` of an axis resized from ``size`` to ``out`` read: ``(low, high, frac)``, each
    row being ``(1 - frac) * in[low] + frac * in[high]`` (``mode`` ``'nearest'``: ``low == high``, ``frac`` 0).

    The rule of :class:`Resize` (PyTorch's ``Upsample``): ``scale`` is PyTorch's ``1/scale_factor`` when one was
    given, else ``size / out``; the linear modes use half-pixel centres clamped at the border, or the corners
    with ``align_corners``. Shared with :func:`tconv.dask.run_model`, which resizes one tile's rows at a time.

    Examples
    --------
    >>> import numpy as np
    >>> low, high, frac = resize_rows(np.arange(4), 2, 4, "linear", scale=0.5)
    >>> low.tolist(), high.tolist(), frac.tolist()
    ([0, 0, 0, 1], [1, 1, 1, 1], [0.0, 0.25, 0.75, 0.25])
    """
    ratio = scale if scale is not None else size / out
    if mode == "nearest":
        low = np.minimum(np.floor(dst * ratio).astype(int), size - 1)
        return low, low, np.zeros(dst.shape)
    if align_corners:
        position = dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        position = np.maximum((dst + 0.5) * ratio - 0.5, 0.0)
    low = np.minimum(np.floor(position).astype(int), size - 1)
    return low, np.minimum(low + 1, size - 1), position - low


def _resize_matrix(size: int, out: int, mode: str, align_corners: bool, scale: float | None) -> np.ndarray:
    """Interpolation weights ``(out, size)``; ``scale`` is PyTorch's 1/scale_factor when one was given."""
    matrix = np.zeros((out, size))
    dst = np.arange(out)
    low, high, frac = resize_rows(dst, size, out, mode, align_corners=align_corners, scale=scale)
    if mode == "nearest":
        matrix[dst, low] = 1.0
        return matrix
    np.add.at(matrix, (dst, low), 1.0 - frac)
    np.add.at(matrix, (dst, high), frac)
    return matrix


class Resize(Module):
    """Fixed upsampling by nearest or (bi/tri)linear interpolation: the alternatives to a learned upsampler.

    ``bilinear`` with ``align_corners=False`` uses half-pixel centres and clamps
    at the border (PyTorch's ``Upsample``, Keras's ``UpSampling2D``).
    """

    def __init__(
        self,
        *,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        rank: int = 2,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError("give exactly one of size and scale_factor")
        if mode not in ("nearest", "bilinear", "linear", "trilinear"):
            raise ValueError(f"mode must be 'nearest', 'linear', 'bilinear' or 'trilinear'; received {mode!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError("align_corners only applies to the linear modes; received align_corners with 'nearest'")
        self.rank, self.mode, self.align_corners, self.channels_last = rank, mode, bool(align_corners), channels_last
        self.size = None if size is None else ints_per_axis(size, rank, "size", broadcast_one=True)
        if scale_factor is None:
            self.scale_factor = None
        else:
            factors = scale_factor if isinstance(scale_factor, Sequence) else (scale_factor,) * rank
            if len(factors) != rank or any(not isinstance(f, (int, float)) or f <= 0 for f in factors):
                raise ValueError(f"scale_factor must be {rank} positive numbers; received {scale_factor!r}")
            self.scale_factor = tuple(float(f) for f in factors)
        self._matrices: list[np.ndarray] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_spatial_rank(self, x, self.rank)
        x = to_channels_first(x, self.channels_last)
        spatial = x.shape[2:]
        scales: list[float | None]
        if self.size is not None:
            outs, scales = self.size, [None] * self.rank
        else:
            assert self.scale_factor is not None
            outs = tuple(math.floor(n * f) for n, f in zip(spatial, self.scale_factor))
            scales = [1.0 / f for f in self.scale_factor]
        mode = "nearest" if self.mode == "nearest" else "linear"
        self._matrices = [_resize_matrix(n, o, mode, self.align_corners, s) for n, o, s in zip(spatial, outs, scales)]
        return from_channels_first(apply_per_axis(x, self._matrices, 2), self.channels_last)

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        grad = to_channels_first(grad, self.channels_last)
        grad = apply_per_axis(grad, [m.T for m in self._matrices], 2)
        return from_channels_first(grad, self.channels_last)

    def extra_repr(self) -> str:
        return f"size={self.size}, scale_factor={self.scale_factor}, mode={self.mode!r}"
