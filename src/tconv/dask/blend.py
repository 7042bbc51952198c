"""Overlap-and-blend tiling, the usual sliding-window method (MONAI's ``sliding_window_inference``), for
comparison with exact tiling: each tile is run alone (its borders see the model's zero padding instead of
the neighbouring data) and overlapping outputs are averaged, which is approximate wherever a tile ends."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["blend_tiles", "tile_starts"]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile starts covering ``[0, size)`` with tiles of ``tile`` elements overlapping by ``overlap``.

    Examples
    --------
    >>> tile_starts(20, 8, 2)
    [0, 6, 12]
    >>> tile_starts(5, 8, 2)
    [0]
    """
    if tile >= size:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, size - tile, step))
    return [*starts, size - tile]


def blend_tiles(
    function: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    tile: Sequence[int],
    overlap: Sequence[int],
    scale: Sequence[int],
    *,
    channels: int,
) -> tuple[np.ndarray, list[list[int]]]:
    """Run ``function`` on overlapping tiles of ``x`` (batch, channels, *spatial) and average the overlaps.

    ``scale`` is output elements per input element on each spatial axis (the model's upsampling factor).
    Returns the blended output and, per axis, the output positions where a tile starts or ends inside the
    array (the tile borders).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(10.0).reshape(1, 1, 10)
    >>> y, borders = blend_tiles(lambda t: np.repeat(t, 2, axis=-1), x, (4,), (2,), (2,), channels=1)
    >>> bool((y == np.repeat(x, 2, axis=-1)).all()), borders
    (True, [[4, 8, 12, 16]])
    """
    spatial = x.shape[2:]
    out_shape = (x.shape[0], channels, *(n * s for n, s in zip(spatial, scale)))
    total = np.zeros(out_shape, dtype=np.float64)
    weight = np.zeros(out_shape[2:], dtype=np.float64)
    starts = [tile_starts(n, t, o) for n, t, o in zip(spatial, tile, overlap)]
    borders = [
        sorted(({(s0 + min(t, n)) * f for s0 in st} | {s0 * f for s0 in st}) - {0, n * f})
        for st, t, n, f in zip(starts, tile, spatial, scale)
    ]
    for corner in itertools.product(*starts):
        region = tuple(slice(c, c + min(t, n)) for c, t, n in zip(corner, tile, spatial))
        index = (slice(None), slice(None), *region)
        y = function(x[index])
        out_region = tuple(slice(r.start * f, r.stop * f) for r, f in zip(region, scale))
        out_index = (slice(None), slice(None), *out_region)
        total[out_index] += y
        weight[out_region] += 1.0
    return (total / weight).astype(x.dtype), borders
