"""The engine: lay the arrays out once, run an algorithm, lay the result out once.

Layouts
-------
Every algorithm works on the same internal layout, whatever the caller's:

* input ``xg``: ``(G, C_in/G, N, *spatial_in)``: group-major, channel before batch,
  so that one matrix product per kernel tap covers the whole batch;
* weight ``wt``: ``(K, G, C_out/G, C_in/G)`` with ``K = prod(kernel_size)`` taps in
  C order, so that tap ``t`` of either direction is the matrix ``wt[t]``;
* output: ``(G, C_out/G, N, *spatial_out)``.

A convolution's weight ``(C_out, C_in/G, *k)`` and a transposed convolution's
``(C_in, C_out/G, *k)`` both become ``wt``; after that the two directions differ
only in which side is strided (see :func:`_taps`).

Algorithms are registered in ``_ALGORITHMS`` with a predicate saying which calls
they support; :func:`select` picks one. The planner with a cost model and the
fast paths come later and plug in here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from ._backend import Array, Prepared, add_into
from .spec import ConvSpec

AlgorithmFn = Callable[[Any, Array, Array, ConvSpec, int], Array]


class Algorithm(NamedTuple):
    """One way to compute both directions on the internal layout."""

    name: str
    description: str
    supports: Callable[[ConvSpec, Any], bool]
    compute: AlgorithmFn


_ALGORITHMS: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> None:
    """Add an algorithm; later registrations are preferred by :func:`select`."""
    _ALGORITHMS[algorithm.name] = algorithm


def select(spec: ConvSpec, xp: Any) -> Algorithm:
    """Pick the algorithm for one call (the most recently registered that supports it)."""
    for algorithm in reversed(list(_ALGORITHMS.values())):
        if algorithm.supports(spec, xp):
            return algorithm
    raise RuntimeError(f"no registered algorithm supports {spec}")  # pragma: no cover


def _overlap(offset: int, stride: int, n_strided: int, n_dense: int) -> tuple[int, int, int]:
    """Indices ``a`` in ``[0, n_strided)`` whose ``b = a*stride + offset`` lies in ``[0, n_dense)``.

    Returns ``(a0, a1, b0)``: the range ``a0 <= a < a1`` and the first ``b``.
    """
    a0 = max(0, -(offset // stride))  # ceil(-offset / stride)
    a1 = min(n_strided, (n_dense - 1 - offset) // stride + 1)
    return a0, a1, a0 * stride + offset


def _taps(xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
    """Per-tap gather (convolution) or scatter (transposed convolution).

    Along one axis, kernel tap ``i`` links input index ``j`` and output index
    ``o`` by ``o*s + i*d - lo = j`` (convolution) or ``j*s + i*d - lo = o``
    (transposed convolution). So for each tap:

    * convolution:  ``out[o0:o1]        += W_t   @ x[b0::s]``  (gather a strided input window)
    * transposed:   ``out[b0::s]        += W_t^T @ x[a0:a1]``  (scatter into a strided output window)

    with the ranges from :func:`_overlap`, so padding is never materialised, no
    zeros are ever inserted or multiplied, and a padding larger than the kernel
    simply shortens the ranges (a crop). Temporaries are one tap's product, at
    most the output's size.
    """
    groups, c_out_g, c_in_g = wt.shape[1], wt.shape[2], wt.shape[3]
    in_size, out_size = spec.input_size, spec.output_size
    out = xp.zeros((groups, c_out_g, batch, *out_size), dtype=xg.dtype, device=array_api_compat.device(xg))
    lead = (slice(None),) * 3
    for t, tap in enumerate(itertools.product(*(range(k) for k in spec.kernel_size))):
        x_index, out_index, box = [], [], []
        for axis, i in enumerate(tap):
            s = spec.stride[axis]
            offset = i * spec.dilation[axis] - spec.padding[axis][0]
            if spec.transposed:
                a0, a1, b0 = _overlap(offset, s, in_size[axis], out_size[axis])
                x_index.append(slice(a0, a1))
                out_index.append(slice(b0, b0 + (a1 - a0 - 1) * s + 1, s))
            else:
                a0, a1, b0 = _overlap(offset, s, out_size[axis], in_size[axis])
                out_index.append(slice(a0, a1))
                x_index.append(slice(b0, b0 + (a1 - a0 - 1) * s + 1, s))
            box.append(a1 - a0)
            if a1 <= a0:
                break
        else:
            window = xp.reshape(xg[lead + tuple(x_index)], (groups, c_in_g, -1))
            w_tap = wt[t, ...]
            if c_in_g == 1:  # depthwise-like: a broadcast product, not a degenerate matmul
                y = w_tap * window
            else:
                y = xp.matmul(w_tap, window)
            y = xp.reshape(y, (groups, c_out_g, batch, *box))
            out = add_into(xp, out, lead + tuple(out_index), y)
    return out


register(
    Algorithm(
        name="taps",
        description="one matrix product per kernel tap, gathered from or scattered into strided windows",
        supports=lambda spec, xp: True,
        compute=_taps,
    )
)


def run(
    prepared: Prepared,
    spec: ConvSpec,
    *,
    batched: bool,
    channels_last: bool,
) -> Array:
    """Compute one call: lay out, run the selected algorithm, add bias, lay the result out."""
    xp, x, weight, bias = prepared.xp, prepared.x, prepared.weight, prepared.bias
    compute = prepared.compute_dtype
    if x.dtype != compute:
        x = xp.astype(x, compute)
        weight = xp.astype(weight, compute)
        bias = None if bias is None else xp.astype(bias, compute)
    if not batched:
        x = xp.expand_dims(x, axis=0)

    d, groups = spec.ndim, spec.groups
    batch = x.shape[0]
    c_in_g, c_out_g = spec.in_channels // groups, spec.out_channels // groups
    spatial = tuple(range(d))
    if channels_last:  # (N, *sp, C) -> (N, *sp, G, Cg) -> (G, Cg, N, *sp)
        xg = xp.reshape(x, (batch, *spec.input_size, groups, c_in_g))
        xg = xp.permute_dims(xg, (d + 1, d + 2, 0, *(a + 1 for a in spatial)))
    else:  # (N, C, *sp) -> (N, G, Cg, *sp) -> (G, Cg, N, *sp)
        xg = xp.reshape(x, (batch, groups, c_in_g, *spec.input_size))
        xg = xp.permute_dims(xg, (1, 2, 0, *(a + 3 for a in spatial)))

    taps = 1
    for k in spec.kernel_size:
        taps *= k
    if spec.transposed:  # (C_in, C_out/G, *k) -> (G, C_in/G, C_out/G, K) -> (K, G, C_out/G, C_in/G)
        wt = xp.reshape(weight, (groups, c_in_g, c_out_g, taps))
        wt = xp.permute_dims(wt, (3, 0, 2, 1))
    else:  # (C_out, C_in/G, *k) -> (G, C_out/G, C_in/G, K) -> (K, G, C_out/G, C_in/G)
        wt = xp.reshape(weight, (groups, c_out_g, c_in_g, taps))
        wt = xp.permute_dims(wt, (3, 0, 1, 2))

    algorithm = select(spec, xp)
    out = algorithm.compute(xp, xg, wt, spec, batch)

    if bias is not None:
        out = out + xp.reshape(bias, (groups, c_out_g, 1, *(1,) * d))
    out = xp.reshape(out, (spec.out_channels, batch, *spec.output_size))
    if channels_last:
        out = xp.permute_dims(out, (1, *(a + 2 for a in spatial), 0))
    else:
        out = xp.permute_dims(out, (1, 0, *(a + 2 for a in spatial)))
    if not batched:
        out = out[0, ...]
    if out.dtype != prepared.dtype:
        out = xp.astype(out, prepared.dtype)
    if array_api_compat.is_numpy_array(out):
        out = np.ascontiguousarray(out)
    return out
