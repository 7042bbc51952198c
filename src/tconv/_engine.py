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
they support; :func:`select` asks the planner (:func:`_plan`, cached per call
description, with the cost model :func:`plan_costs`) unless :func:`use_algorithm`
forces one. The compiled NumPy algorithms (``jit_*``, :mod:`tconv._fast`) skip the
internal layout and work on the caller's (their ``native`` entry point).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from . import _fast
from ._backend import Array, Prepared, add_into
from .spec import ConvSpec, overlap

AlgorithmFn = Callable[[Any, Array, Array, ConvSpec, int], Array]


class Algorithm(NamedTuple):
    """One way to compute both directions on the internal layout."""

    name: str
    description: str
    supports: Callable[[ConvSpec, Any], bool]
    compute: AlgorithmFn
    weight_grad: AlgorithmFn
    #: Set for algorithms that work on the caller's layout directly (the compiled NumPy path):
    #: ``native(x, weight, bias, spec, channels_last)`` with a batched x in the compute dtype.
    native: Callable[..., Any] | None = None


_ALGORITHMS: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> None:
    """Add an algorithm (the planner, :func:`_plan`, decides which one runs)."""
    _ALGORITHMS[algorithm.name] = algorithm


_FORCED: contextvars.ContextVar[str | None] = contextvars.ContextVar("tconv_algorithm", default=None)

#: Temporary memory an algorithm may use (besides the output) before it works in chunks.
MEMORY_BUDGET = 256 * 2**20


def algorithms() -> list[str]:
    """The names of the registered algorithms; the planner chooses among them per call.

    ``jit_gemm``, ``jit_pixels``, ``jit_patches`` and ``jit_direct`` are the compiled NumPy paths
    (numba, rank <= 3); the others are the array-API paths that run on any library (PyTorch, CuPy,
    JAX, NumPy without numba).
    :func:`use_algorithm` forces one.

    Examples
    --------
    >>> import tconv
    >>> tconv.algorithms()
    ['jit_direct', 'jit_patches', 'jit_pixels', 'jit_gemm', 'gemm', 'taps', 'depth_to_space', 'direct']
    """
    return list(reversed(list(_ALGORITHMS)))


@contextlib.contextmanager
def use_algorithm(name: str | None) -> Iterator[None]:
    """Force one algorithm for the calls inside the block (``None``: let the planner choose).

    A forced algorithm that does not support a call raises ``ValueError`` rather than
    silently falling back, so tests can cover every path.

    Examples
    --------
    >>> import numpy as np, tconv
    >>> with tconv.use_algorithm("taps"):
    ...     tconv.conv_transpose(np.ones((1, 1, 2)), np.ones((1, 1, 2)), stride=2)
    array([[[1., 1., 1., 1.]]])
    """
    if name is not None and name not in _ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(map(repr, _ALGORITHMS))} or None; received {name!r}")
    token = _FORCED.set(name)
    try:
        yield
    finally:
        _FORCED.reset(token)


def select(spec: ConvSpec, xp: Any, channels_last: bool = False, batch: int = 1, itemsize: int = 4) -> Algorithm:
    """Pick the algorithm for one call of ``batch`` samples of ``itemsize``-byte elements: the forced one,
    or the planner's."""
    forced = _FORCED.get()
    if forced is not None:
        algorithm = _ALGORITHMS[forced]
        if not algorithm.supports(spec, xp):
            raise ValueError(f"the forced algorithm {forced!r} does not support this call ({spec})")
        return algorithm
    # Would the compiled path run this call's chunks on a thread team? (The question its schedule asks of
    # the pixel path's columns: C_out channels of prod(input) * prod(k) elements per sample.)
    # The pixel rule below was measured on batched teams; a batch smaller than the team (split over channels)
    # keeps the cost model's choice.
    pair = itemsize * math.prod(spec.input_size) * math.prod(spec.kernel_size)
    threads = _fast.team_threads(batch, spec.out_channels, pair)
    team = threads > 1 and batch >= threads
    return _ALGORITHMS[_plan(spec, _fast.supported(spec, xp), channels_last, team)]


# The planner's cost model: rates measured on the 2-core reference machine (docs/bench-*.txt).
# Every cost is per sample (all of them grow linearly with the batch, so the batch never changes a plan).
#: float32 rate of NumPy's BLAS on the column products, in flop/s, when the inner dimension is >= 64;
#: a product whose inner dimension (C_in per group) is smaller runs proportionally slower.
GEMM_RATE = 120e9
#: bytes/s at which the compiled kernels write or read the column buffer (one pass each way).
COLUMN_STREAM = 5e9
#: multiply-adds/s of the direct kernel (jit_direct).
DIRECT_RATE = 3e9
#: seconds per row of an overlap-add (loop set-up; a row is vectorised along its length).
ROW_COST = 5e-9


def plan_costs(spec: ConvSpec) -> dict[str, float]:
    """The cost model's estimates, in seconds per sample, for the compiled transposed-convolution paths.

    ``jit_gemm``: the column product (slower when its inner dimension ``C_in/G`` is small), then the
    column buffer written and read once, in rows as long as the input's last axis. ``jit_patches``: the
    same, in rows as long as the kernel's last axis (where it applies). ``jit_direct``: every output sums
    ``C_in/G`` channels times the ``prod(k/s)`` taps that reach it on average.

    Examples
    --------
    >>> import tconv
    >>> depthwise = tconv.ConvSpec.build(transposed=True, input_size=(56, 56), kernel_size=(4, 4),
    ...     in_channels=64, out_channels=64, groups=64, stride=2, padding=1)
    >>> costs = tconv._engine.plan_costs(depthwise)
    >>> costs["jit_direct"] < costs["jit_gemm"]
    True
    """
    groups = spec.groups
    cg_in, cg_out = spec.in_channels // groups, spec.out_channels // groups
    taps, p_in, p_out = math.prod(spec.kernel_size), math.prod(spec.input_size), math.prod(spec.output_size)
    flops = 2.0 * groups * cg_in * cg_out * taps * p_in
    column_bytes = 4.0 * groups * cg_out * taps * p_in
    product = flops / (GEMM_RATE * min(1.0, cg_in / 64)) + 2 * column_bytes / COLUMN_STREAM
    elements = column_bytes / 4
    costs = {"jit_gemm": product + elements / spec.input_size[-1] * ROW_COST}
    if _fast.patches_geometry_ok(spec):
        costs["jit_patches"] = product + elements / spec.kernel_size[-1] * ROW_COST
    reach = taps / math.prod(spec.stride)
    costs["jit_direct"] = spec.out_channels * p_out * cg_in * reach / DIRECT_RATE
    return costs


@functools.lru_cache(maxsize=4096)
def _plan(spec: ConvSpec, compiled: bool, channels_last: bool, team: bool = False) -> str:
    """The planner, cached per call description (shapes and options), path, layout and team.

    Without the compiled kernels (numba missing, rank > 3, arrays other than NumPy's): ``gemm``, the
    array-API product + col2im, measured faster than ``taps`` everywhere once its buffer is cache-sized.
    Compiled: convolutions take ``jit_gemm``; a channels-last transposed convolution with one group and
    at least 8 output channels takes ``jit_pixels`` (measured 1.3x faster there: its overlap-add runs
    along the contiguous channels, and x needs no copy). Channels-first, ``jit_pixels`` also wins for the
    2-D layers of batched generators (DCGAN): on a thread team (:mod:`tconv._team`), one group, at least
    32 output channels, rows of at most 8 inputs and kernels that overlap (measured 1.05-1.25x faster than
    ``jit_gemm`` on keras-dcgan-1/2 and dcgan64-2/3; slower on 1-D, 3-D, batch-1, rows of 32 and few output
    channels, and on dcgan64-4's rows of 16 since ``jit_gemm`` reads x in place there: 32.0 against 29.1 ms).
    The rest take the cheaper of ``jit_gemm`` and ``jit_direct`` by :func:`plan_costs`.
    """
    if not compiled:
        return "gemm"
    if not spec.transposed:
        return "jit_gemm"
    if channels_last and spec.groups == 1 and spec.out_channels >= 8:
        return "jit_pixels"
    overlapping = any(k * d > s for k, s, d in zip(spec.kernel_size, spec.stride, spec.dilation))
    if team and spec.ndim == 2 and spec.groups == 1 and spec.out_channels >= 32:
        if spec.input_size[-1] <= 8 and overlapping:
            return "jit_pixels"
    costs = plan_costs(spec)
    return min(costs, key=lambda name: costs[name])


def tap_windows(
    spec: ConvSpec,
) -> Iterator[tuple[int, tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]]:
    """For each kernel tap that touches the output: ``(t, box, x_index, out_index)``.

    Along one axis, kernel tap ``i`` links input index ``j`` and output index
    ``o`` by ``o*s + i*d - lo = j`` (convolution) or ``j*s + i*d - lo = o``
    (transposed convolution). ``x_index`` and ``out_index`` are the matching
    windows (one strided, one dense, both of shape ``box``) of the spatial
    axes; ``t`` is the tap's position in C order. Taps whose window is empty
    (all their products would fall into the padding) are skipped.
    """
    in_size, out_size = spec.input_size, spec.output_size
    for t, tap in enumerate(itertools.product(*(range(k) for k in spec.kernel_size))):
        x_index, out_index, box = [], [], []
        for axis, i in enumerate(tap):
            s = spec.stride[axis]
            offset = i * spec.dilation[axis] - spec.padding[axis][0]
            if spec.transposed:
                a0, a1, b0 = overlap(offset, s, in_size[axis], out_size[axis])
                x_index.append(slice(a0, a1))
                out_index.append(slice(b0, b0 + (a1 - a0 - 1) * s + 1, s))
            else:
                a0, a1, b0 = overlap(offset, s, out_size[axis], in_size[axis])
                out_index.append(slice(a0, a1))
                x_index.append(slice(b0, b0 + (a1 - a0 - 1) * s + 1, s))
            box.append(a1 - a0)
            if a1 <= a0:
                break
        else:
            yield t, tuple(box), tuple(x_index), tuple(out_index)


_LEAD = (slice(None),) * 3


def _taps(xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
    """Per-tap gather (convolution) or scatter (transposed convolution).

    With the windows of :func:`tap_windows`, for each tap ``t``:

    * convolution:  ``out[o0:o1] += W_t   @ x[b0::s]``  (gather a strided input window)
    * transposed:   ``out[b0::s] += W_t^T @ x[a0:a1]``  (scatter into a strided output window)

    so padding is never materialised, no zeros are ever inserted or multiplied,
    and a padding larger than the kernel simply shortens the windows (a crop).
    Temporaries are one tap's product, at most the output's size.
    """
    groups, c_out_g, c_in_g = wt.shape[1], wt.shape[2], wt.shape[3]
    out = xp.zeros((groups, c_out_g, batch, *spec.output_size), dtype=xg.dtype, device=array_api_compat.device(xg))

    touched = False
    for t, box, x_index, out_index in tap_windows(spec):
        touched = True
        y = _product(xp, wt[t, ...], xp.reshape(xg[_LEAD + x_index], (groups, c_in_g, -1)))
        y = xp.reshape(y, (groups, c_out_g, batch, *box))
        out = add_into(xp, out, _LEAD + out_index, y)
    if not touched:
        out = _keep_dependence(xp, out, xg, wt)
    return out


def _keep_dependence(xp: Any, out: Array, xg: Array, wt: Array) -> Array:
    """For an output wholly in the padding: 0 (plus bias) whatever x and the weight.

    One empty product keeps the dependence visible to autograd (PyTorch, JAX), which then
    gives x and the weight zero gradients, as the frameworks' own operators do; unlike
    ``0 * sum(x)`` it cannot turn an inf in x into a NaN.
    """
    empty = xp.reshape(xg[..., 0:0], (xg.shape[0], xg.shape[1], 0))
    return out + xp.sum(_product(xp, wt[0, ...], empty))


# The weight gradient, as a correlation
# -------------------------------------
# Forward, per tap t and per group:  out[:, :, window_out] += W_t @ x[:, :, window_x]
# (W_t^T for the transposed direction, which is the same statement with the roles of
# the windows exchanged). The output is linear in W_t, so
#
#     dL/dW_t = sum over batch and window of  grad_out[:, window_out] (x) x[:, window_x]
#             = gy_window @ x_window^T          (C_out/G, M) @ (M, C_in/G), M = N * |window|
#
# Read as a function of the tap position i, dL/dW[i] = sum_o gy[o] * x[o*s + i*d - lo]:
# a correlation of the input with the output gradient in which the output gradient is
# the kernel, applied with the roles of stride and dilation swapped (the tap advances
# by d, the "kernel" gy is spread by s). JAX's lax writes it as exactly that convolution
# with batch and feature axes exchanged; tconv evaluates the same sum tap by tap on the
# windows the forward pass uses, which keeps groups, padding pairs and crops for free.
def _taps_weight_grad(xp: Any, xg: Array, gyg: Array, spec: ConvSpec, batch: int) -> Array:
    """The weight gradient in tap layout ``(K, G, C_out/G, C_in/G)``; see the comment above."""
    groups, c_in_g, c_out_g = xg.shape[0], xg.shape[1], gyg.shape[1]
    taps = 1
    for k in spec.kernel_size:
        taps *= k
    grad = xp.zeros((taps, groups, c_out_g, c_in_g), dtype=xg.dtype, device=array_api_compat.device(xg))
    for t, _, x_index, out_index in tap_windows(spec):
        x_window = xp.reshape(xg[_LEAD + x_index], (groups, c_in_g, -1))
        gy_window = xp.reshape(gyg[_LEAD + out_index], (groups, c_out_g, -1))
        product = xp.matmul(gy_window, xp.permute_dims(x_window, (0, 2, 1)))
        grad = add_into(xp, grad, (t, slice(None), slice(None), slice(None)), product)
    return grad


#: Size of the gemm path's column buffer per chunk that keeps it near the cache (measured on this
#: 2-core machine: 8 MiB chunks beat both one big buffer and per-tap products).
CHUNK_TARGET = 8 * 2**20


def _batch_chunks(batch: int, bytes_per_sample: int, output_bytes: int) -> list[tuple[int, int]]:
    """Batch ranges whose temporaries stay within CHUNK_TARGET, and always within max(MEMORY_BUDGET, 2 x output)."""
    budget = min(CHUNK_TARGET, max(MEMORY_BUDGET, 2 * output_bytes))
    step = max(1, budget // max(bytes_per_sample, 1))
    return [(n0, min(n0 + step, batch)) for n0 in range(0, batch, step)] or [(0, 0)]


def _itemsize(a: Array) -> int:
    return int(getattr(a.dtype, "itemsize", 4))


def _product(xp: Any, w: Array, x: Array) -> Array:
    """``w @ x`` batched over groups; a broadcast product when the inner dimension is 1 (depthwise)."""
    if w.shape[-1] == 1:
        return w * x
    return xp.matmul(w, x)


def _gemm(xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
    """All taps in one matrix product per batch chunk, then overlap-add (transposed) or im2col (forward).

    Transposed: ``cols = W (K*C_out/G, C_in/G) @ x (C_in/G, N*P)`` and each tap's block of
    ``cols`` is added into its strided output window (col2im). Forward: each tap's strided
    input window is gathered into ``cols (C_in/G*K, N*P_out)`` (im2col) and multiplied once.
    Same arithmetic as :func:`_taps`, fewer and larger matrix products.
    """
    taps, groups, c_out_g, c_in_g = wt.shape
    device = array_api_compat.device(xg)
    out = xp.zeros((groups, c_out_g, batch, *spec.output_size), dtype=xg.dtype, device=device)
    p_in, p_out = math.prod(spec.input_size), math.prod(spec.output_size)
    item = _itemsize(xg)
    if spec.transposed:
        wk = xp.reshape(xp.permute_dims(wt, (1, 0, 2, 3)), (groups, taps * c_out_g, c_in_g))
        per_sample = groups * taps * c_out_g * p_in * item
    else:
        wk = xp.reshape(xp.permute_dims(wt, (1, 2, 3, 0)), (groups, c_out_g, c_in_g * taps))
        per_sample = groups * c_in_g * taps * p_out * item
    windows = list(tap_windows(spec))
    if not windows:
        return _keep_dependence(xp, out, xg, wt)
    for n0, n1 in _batch_chunks(batch, per_sample, groups * c_out_g * batch * p_out * item):
        nb = n1 - n0
        chunk = (slice(None), slice(None), slice(n0, n1))
        if spec.transposed:
            rest = (*chunk, ...)
            x2 = xp.reshape(xg[rest], (groups, c_in_g, nb * p_in))
            cols = xp.reshape(_product(xp, wk, x2), (groups, taps, c_out_g, nb, *spec.input_size))
            if _use_blocked_col2im(spec):
                out = add_into(xp, out, rest, _col2im_blocked(xp, cols, spec))
            else:
                for t, _, x_index, out_index in windows:
                    block = (slice(None), t, slice(None), slice(None), *x_index)
                    out = add_into(xp, out, chunk + out_index, cols[block])
        else:
            cols = xp.zeros((groups, c_in_g, taps, nb, *spec.output_size), dtype=xg.dtype, device=device)
            for t, _, x_index, out_index in windows:
                index = (slice(None), slice(None), t, slice(None), *out_index)
                cols = add_into(xp, cols, index, xg[chunk + x_index])
            y = _product(xp, wk, xp.reshape(cols, (groups, c_in_g * taps, nb * p_out)))
            out = add_into(xp, out, (*chunk, ...), xp.reshape(y, (groups, c_out_g, nb, *spec.output_size)))
    return out


def _use_blocked_col2im(spec: ConvSpec) -> bool:
    """Blocked col2im pays when a block gathers many taps (measured: istft-1d 2x, fsrcnn-x3 2x faster), and
    costs when it gathers few (its permuted reads are cache-unfriendly: depthwise k4 s2 became 4x slower)."""
    blocks = math.prod(-(-k // s) for k, s in zip(spec.kernel_size, spec.stride))
    return all(d == 1 for d in spec.dilation) and math.prod(spec.kernel_size) >= 8 * blocks


def _col2im_blocked(xp: Any, cols: Array, spec: ConvSpec) -> Array:
    """Overlap-add of a transposed convolution's columns, ``ceil(k/s)`` blocks per axis instead of ``k`` taps.

    ``cols`` is ``(G, K, C_out/G, N, *n)``. Writing the tap index as ``i = a*s + r`` (``0 <= r < s``),
    input ``j`` lands at ``o = (j + a)*s + r``: in the full output viewed as ``(rows, s)`` per axis,
    the ``s`` taps sharing ``a`` fill one contiguous block ``[a : a + n, 0 : r_count]``. So the
    additions are ``prod(ceil(k/s))`` large array operations, not ``prod(k)`` small ones (fcn32s: 4,
    not 4096). Dilation 1 only. Returns the cropped ``(G, C_out/G, N, *out)``.
    """
    groups, _, c_out_g, batch = cols.shape[:4]
    d = spec.ndim
    n, k, s = spec.input_size, spec.kernel_size, spec.stride
    cols = xp.reshape(cols, (groups, *k, c_out_g, batch, *n))
    blocks = [-(-kk // ss) for kk, ss in zip(k, s)]
    # Rows of s elements per axis: enough for the full output and for the crop window.
    rows = [
        max(nn + m - 1, -(-(lo + out) // ss))
        for nn, m, ss, (lo, _), out in zip(n, blocks, s, spec.padding, spec.output_size)
    ]
    shape = [groups, c_out_g, batch]
    for r, ss in zip(rows, s):
        shape += [r, ss]
    full = xp.zeros(tuple(shape), dtype=cols.dtype, device=array_api_compat.device(cols))
    # cols axes: 0 G, 1..d kernel, d+1 C_out/G, d+2 N, d+3.. input -> (G, C_out/G, N, n_1, r_1, ..., n_d, r_d)
    order = [0, d + 1, d + 2]
    for axis in range(d):
        order += [d + 3 + axis, 1 + axis]
    for a in itertools.product(*(range(m) for m in blocks)):
        taps = tuple(slice(ai * ss, min(ai * ss + ss, kk)) for ai, ss, kk in zip(a, s, k))
        selection = (slice(None), *taps, Ellipsis)
        block = xp.permute_dims(cols[selection], tuple(order))
        target: list[slice] = [slice(None)] * 3
        for ai, nn, tap in zip(a, n, taps):
            target += [slice(ai, ai + nn), slice(0, tap.stop - tap.start)]
        full = add_into(xp, full, tuple(target), block)
    full = xp.reshape(full, (groups, c_out_g, batch, *(r * ss for r, ss in zip(rows, s))))
    crop = tuple(slice(lo, lo + out) for (lo, _), out in zip(spec.padding, spec.output_size))
    window = (slice(None), slice(None), slice(None), *crop)
    return full[window]


def _is_depth_to_space(spec: ConvSpec, xp: Any) -> bool:
    return (
        spec.transposed
        and spec.kernel_size == spec.stride
        and all(p == (0, 0) for p in spec.padding)
        and not any(spec.output_padding)
        and all(d == 1 for d in spec.dilation)
    )


def _depth_to_space(xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
    """Kernel equal to stride, no padding (U-Net's 2x2/2): one matrix product, then a rearrangement.

    The kernel copies tile the output without overlapping, so ``cols`` rows ``(k_1..k_d, C_out/G)``
    are moved next to their input positions: ``(.., n_i, k_i, ..) -> n_i*k_i``. No additions.
    """
    taps, groups, c_out_g, c_in_g = wt.shape
    d = spec.ndim
    wk = xp.reshape(xp.permute_dims(wt, (1, 0, 2, 3)), (groups, taps * c_out_g, c_in_g))
    x2 = xp.reshape(xg, (groups, c_in_g, batch * math.prod(spec.input_size)))
    cols = xp.reshape(_product(xp, wk, x2), (groups, *spec.kernel_size, c_out_g, batch, *spec.input_size))
    # axes: 0 G, 1..d kernel, d+1 C_out/G, d+2 N, d+3.. input -> (G, C_out/G, N, n_1, k_1, ..., n_d, k_d)
    order = [0, d + 1, d + 2]
    for axis in range(d):
        order += [d + 3 + axis, 1 + axis]
    out = xp.permute_dims(cols, tuple(order))
    return xp.reshape(out, (groups, c_out_g, batch, *spec.output_size))


def _is_direct(spec: ConvSpec, xp: Any) -> bool:
    return (
        spec.transposed
        and all(st == 1 for st in spec.stride)
        and all(
            (k - 1) * d - lo >= 0 and (k - 1) * d - hi + op >= 0
            for k, d, (lo, hi), op in zip(spec.kernel_size, spec.dilation, spec.padding, spec.output_padding)
        )
    )


def _direct(xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:
    """A stride-1 transposed convolution as the direct convolution it equals (seed 001).

    Padding ``d*(k-1) - lo`` and ``d*(k-1) - hi + op``, the kernel flipped (reversing all
    spatial axes reverses the taps' C order, so ``wt[::-1]``), channels already swapped in
    ``wt``; computed by the forward im2col path, so the output is written once, not added
    into tap by tap.
    """
    forward = ConvSpec.build(
        transposed=False,
        input_size=spec.input_size,
        kernel_size=spec.kernel_size,
        in_channels=spec.in_channels,
        out_channels=spec.out_channels,
        stride=1,
        padding=[
            ((k - 1) * d - lo, (k - 1) * d - hi + op)
            for k, d, (lo, hi), op in zip(spec.kernel_size, spec.dilation, spec.padding, spec.output_padding)
        ],
        dilation=spec.dilation,
        groups=spec.groups,
    )
    return _gemm(xp, xg, xp.flip(wt, axis=0), forward, batch)


register(
    Algorithm(
        name="direct",
        description="stride-1 transposed convolution as the direct convolution with the flipped kernel (im2col)",
        supports=_is_direct,
        compute=_direct,
        weight_grad=_taps_weight_grad,
    )
)
register(
    Algorithm(
        name="depth_to_space",
        description="kernel equal to stride, no padding: one matrix product and a rearrangement",
        supports=_is_depth_to_space,
        compute=_depth_to_space,
        weight_grad=_taps_weight_grad,
    )
)
register(
    Algorithm(
        name="taps",
        description="one matrix product per kernel tap, gathered from or scattered into strided windows",
        supports=lambda spec, xp: True,
        compute=_taps,
        weight_grad=_taps_weight_grad,
    )
)
register(
    Algorithm(
        name="gemm",
        description="one matrix product per batch chunk over all taps, then col2im (or im2col first)",
        supports=lambda spec, xp: True,
        compute=_gemm,
        weight_grad=_taps_weight_grad,
    )
)


def _native_gemm(x: Array, weight: Array, bias: Array | None, spec: ConvSpec, channels_last: bool) -> Array:
    if spec.transposed:
        return _fast.conv_transpose(x, weight, bias, spec, channels_last)
    return _fast.conv(x, weight, bias, spec, channels_last)


def _native_pixels(x: Array, weight: Array, bias: Array | None, spec: ConvSpec, channels_last: bool) -> Array:
    return _fast.conv_transpose_pixels(x, weight, bias, spec, channels_last)


def _native_patches(x: Array, weight: Array, bias: Array | None, spec: ConvSpec, channels_last: bool) -> Array:
    return _fast.conv_transpose_patches(x, weight, bias, spec, channels_last)


def _native_direct(x: Array, weight: Array, bias: Array | None, spec: ConvSpec, channels_last: bool) -> Array:
    return _fast.conv_transpose(x, weight, bias, spec, channels_last, direct=True)


def _native_only(xp: Any, xg: Array, wt: Array, spec: ConvSpec, batch: int) -> Array:  # pragma: no cover
    raise RuntimeError("this algorithm runs on the caller's layout only (through run())")


register(
    Algorithm(
        name="jit_gemm",
        description="compiled im2col / output-stationary col2im around one BLAS product per group "
        "(NumPy, rank <= 3, needs numba)",
        supports=_fast.supported,
        compute=_native_only,
        weight_grad=_native_only,
        native=_native_gemm,
    )
)
register(
    Algorithm(
        name="jit_pixels",
        description="BLAS product into pixel-major columns, then a compiled overlap-add vectorised along the "
        "output channels (NumPy, rank <= 3, transposed, one group, needs numba)",
        supports=_fast.pixels_supported,
        compute=_native_only,
        weight_grad=_native_only,
        native=_native_pixels,
    )
)
register(
    Algorithm(
        name="jit_patches",
        description="BLAS product into each input pixel's kernel patch, then a compiled overlap-add in rows "
        "of the kernel's length (kernels longer than their input; NumPy, rank <= 3, transposed, one group, "
        "last-axis dilation 1, needs numba)",
        supports=_fast.patches_supported,
        compute=_native_only,
        weight_grad=_native_only,
        native=_native_patches,
    )
)
register(
    Algorithm(
        name="jit_direct",
        description="compiled direct sum per output, for few channels per group (depthwise; NumPy, "
        "rank <= 3, transposed, needs numba)",
        supports=lambda spec, xp: spec.transposed and _fast.supported(spec, xp),
        compute=_native_only,
        weight_grad=_native_only,
        native=_native_direct,
    )
)


def _to_internal(xp: Any, a: Array, spec: ConvSpec, channels: int, size: tuple[int, ...], channels_last: bool) -> Array:
    """``(N, C, *sp)`` or ``(N, *sp, C)`` -> ``(G, C/G, N, *sp)``."""
    d, groups, batch = spec.ndim, spec.groups, a.shape[0]
    if channels_last:  # (N, *sp, C) -> (N, *sp, G, Cg) -> (G, Cg, N, *sp)
        a = xp.reshape(a, (batch, *size, groups, channels // groups))
        return xp.permute_dims(a, (d + 1, d + 2, 0, *range(1, d + 1)))
    a = xp.reshape(a, (batch, groups, channels // groups, *size))
    return xp.permute_dims(a, (1, 2, 0, *range(3, d + 3)))


def _weight_shape_split(spec: ConvSpec) -> tuple[int, int, int, int]:
    taps = 1
    for k in spec.kernel_size:
        taps *= k
    return spec.groups, spec.in_channels // spec.groups, spec.out_channels // spec.groups, taps


def _weight_to_taps(xp: Any, weight: Array, spec: ConvSpec) -> Array:
    """Either direction's weight -> ``(K, G, C_out/G, C_in/G)``."""
    groups, c_in_g, c_out_g, taps = _weight_shape_split(spec)
    if spec.transposed:  # (C_in, C_out/G, *k) -> (G, C_in/G, C_out/G, K) -> (K, G, C_out/G, C_in/G)
        wt = xp.reshape(weight, (groups, c_in_g, c_out_g, taps))
        return xp.permute_dims(wt, (3, 0, 2, 1))
    # (C_out, C_in/G, *k) -> (G, C_out/G, C_in/G, K) -> (K, G, C_out/G, C_in/G)
    wt = xp.reshape(weight, (groups, c_out_g, c_in_g, taps))
    return xp.permute_dims(wt, (3, 0, 1, 2))


def _taps_to_weight(xp: Any, wt: Array, spec: ConvSpec) -> Array:
    """The inverse of :func:`_weight_to_taps`."""
    c_in_g, c_out_g = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    if spec.transposed:
        w = xp.permute_dims(wt, (1, 3, 2, 0))  # (G, C_in/G, C_out/G, K)
        return xp.reshape(w, (spec.in_channels, c_out_g, *spec.kernel_size))
    w = xp.permute_dims(wt, (1, 2, 3, 0))  # (G, C_out/G, C_in/G, K)
    return xp.reshape(w, (spec.out_channels, c_in_g, *spec.kernel_size))


def _cast(xp: Any, a: Array, dtype: Any) -> Array:
    """``a`` in ``dtype``: ``a`` itself when it already is (the array API's astype copies by default: a
    copy of hifigan-1d's 8 MiB weight on every call took 1.9 of its 9 ms)."""
    return a if a.dtype == dtype else xp.astype(a, dtype)


def _finish(xp: Any, a: Array, dtype: Any) -> Array:
    """Cast back to the caller's dtype; hand NumPy callers a contiguous array."""
    if a.dtype != dtype:
        a = xp.astype(a, dtype)
    if array_api_compat.is_numpy_array(a):
        a = np.ascontiguousarray(a)
    return a


def _batched_compute(prepared: Prepared, a: Array, batched: bool) -> Array:
    xp = prepared.xp
    a = _cast(xp, a, prepared.compute_dtype)
    return a if batched else xp.expand_dims(a, axis=0)


def run(
    prepared: Prepared,
    spec: ConvSpec,
    *,
    batched: bool,
    channels_last: bool,
) -> Array:
    """Compute one call: lay out, run the selected algorithm, add bias, lay the result out."""
    xp = prepared.xp
    x = _batched_compute(prepared, prepared.x, batched)
    weight = _cast(xp, prepared.weight, prepared.compute_dtype)
    algorithm = select(spec, xp, channels_last, x.shape[0], _itemsize(x))
    if algorithm.native is not None:
        bias = None if prepared.bias is None else _cast(xp, prepared.bias, prepared.compute_dtype)
        out = algorithm.native(x, weight, bias, spec, channels_last)
        return _finish(xp, out if batched else out[0, ...], prepared.dtype)
    batch, d = x.shape[0], spec.ndim
    xg = _to_internal(xp, x, spec, spec.in_channels, spec.input_size, channels_last)
    wt = _weight_to_taps(xp, weight, spec)

    out = algorithm.compute(xp, xg, wt, spec, batch)

    if prepared.bias is not None:
        bias = _cast(xp, prepared.bias, prepared.compute_dtype)
        out = out + xp.reshape(bias, (spec.groups, spec.out_channels // spec.groups, 1, *(1,) * d))
    out = xp.reshape(out, (spec.out_channels, batch, *spec.output_size))
    if channels_last:
        out = xp.permute_dims(out, (1, *range(2, d + 2), 0))
    else:
        out = xp.permute_dims(out, (1, 0, *range(2, d + 2)))
    if not batched:
        out = out[0, ...]
    return _finish(xp, out, prepared.dtype)


def run_weight_grad(
    prepared: Prepared,
    spec: ConvSpec,
    grad_output: Array,
    *,
    batched: bool,
    channels_last: bool,
) -> Array:
    """The gradient of the loss with respect to the weight, in the weight's own layout."""
    xp = prepared.xp
    x = _batched_compute(prepared, prepared.x, batched)
    gy = _batched_compute(prepared, grad_output, batched)
    algorithm = select(spec, xp, channels_last, x.shape[0], _itemsize(x))
    if algorithm.native is not None:
        weight = _cast(xp, prepared.weight, prepared.compute_dtype)
        if spec.transposed:
            _, grad = _fast.conv_transpose_grads(x, weight, gy, spec, channels_last, want_dx=False)
        else:
            grad = _fast.conv_weight_grad(x, gy, tuple(weight.shape), spec, channels_last)
        return _finish(xp, grad, prepared.dtype)
    xg = _to_internal(xp, x, spec, spec.in_channels, spec.input_size, channels_last)
    gyg = _to_internal(xp, gy, spec, spec.out_channels, spec.output_size, channels_last)
    grad_taps = algorithm.weight_grad(xp, xg, gyg, spec, x.shape[0])
    return _finish(xp, _taps_to_weight(xp, grad_taps, spec), prepared.dtype)


def run_transpose_grads(
    prepared: Prepared,
    spec: ConvSpec,
    *,
    batched: bool,
    channels_last: bool,
) -> tuple[Array, Array] | None:
    """``(grad_x, grad_weight)`` of a transposed convolution in one pass, where the planned algorithm
    can share their work (the compiled path: one im2col of the output gradient); else None."""
    xp = prepared.xp
    if select(spec, xp, channels_last).native is None:
        return None
    x = _batched_compute(prepared, prepared.x, batched)
    gy = _batched_compute(prepared, prepared.grad_output, batched)
    weight = _cast(xp, prepared.weight, prepared.compute_dtype)
    dx, dw = _fast.conv_transpose_grads(x, weight, gy, spec, channels_last)
    assert dx is not None
    return _finish(xp, dx if batched else dx[0, ...], prepared.dtype), _finish(xp, dw, prepared.dtype)
