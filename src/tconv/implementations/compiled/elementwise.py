"""The element-wise passes of :mod:`tconv.nn`'s layers in one compiled pass each, run on the team.

NumPy runs a layer such as ``LeakyReLU``'s backward as three single-threaded passes over the array (the
comparison, the slope, the product), each into a new temporary, and batch normalization's forward as about
twelve. On the seed DCGAN generator (batch 64) the activations and the batch normalizations took about 19 ms of a
127 ms training step (docs/design.md, "The layers' share of a training step"). Here each is one
loop over the array, cut into jobs of ``ELEMENT_JOB`` elements that the team runs in ranges
(:func:`.team.ranges`), with these numbers:

* the activations, their slopes and the dropout are NumPy's to the bit: the same operations on each element in
  the same order (no fused multiply-add, no fast-math flags), and NumPy's rules where two values tie
  (``np.maximum(-0.0, 0)`` is ``+0.0`` in NumPy's x86 and ARM vector loops, which return the second of two equal
  values; a NaN propagates);
* batch normalization's per-channel sums are taken in float64 (NumPy's own sums of a float32 array are float32)
  over pieces that depend only on the array's shape, added in order: the same result on every call, whatever
  the number of threads. The per-element passes then run in the array's dtype in NumPy's order.

:func:`supports` says which arrays these take (float32 or float64, C-contiguous, numba available); the layers
keep their NumPy expressions for the rest.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ... import _tuning
from . import kernels, team

__all__ = [
    "activation",
    "activation_grad",
    "batch_norm_grad",
    "batch_norm_sums",
    "batch_statistics",
    "channel_sums",
    "dropout",
    "masked_scale",
    "normalize",
    "run_pass",
    "supports",
]

#: elements a job of the element-wise kernels (the team hands out ranges of jobs): 64 KiB of float32
ELEMENT_JOB = 2**14

#: the activations with a compiled pass, by the number the kernels take
ACTIVATION_CODES = {"relu": 0, "leaky_relu": 1}


def supports(*arrays: Any) -> bool:
    """Whether the compiled passes take these arrays: NumPy arrays of one dtype (float32 or float64) and one
    shape, each C-contiguous, with numba available."""
    first = arrays[0]
    return (
        kernels.available()
        and all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays)
        and first.dtype in (np.float32, np.float64)
        and all(a.dtype == first.dtype and a.shape == first.shape for a in arrays)
    )


def run_pass(kernel: Any, jobs: int, touched: int, *arrays: Any) -> None:
    """``kernel(*arrays, start, stop)`` over ``range(jobs)``, on the team where the ``touched`` elements (read
    and written), at ``ELEMENTWISE_ELEMENT_SECONDS`` each, pay for the hand-off (:func:`.team.ranges`). The range
    function is named after ``kernel``: the team keys a call it measures by that name, its jobs and its work, and
    the passes' kernels, each behind this one wrapper, had shared their measurements (a normalization's pass
    decided by the sums' runs, which take the same jobs and work)."""

    def run(start: int, stop: int) -> None:
        kernel(*arrays, start, stop)

    run.__qualname__ = f"run_pass:{getattr(kernel, '__qualname__', '')}@{id(kernel)}"
    team.ranges(run, jobs, touched * _tuning.ELEMENTWISE_ELEMENT_SECONDS / _tuning.KERNEL_ELEMENT_SECONDS)


def _jobs(size: int) -> int:
    """The jobs of ``ELEMENT_JOB`` elements of a ``size``-element array."""
    return -(-size // ELEMENT_JOB)


def activation(name: str, x: np.ndarray, slope: float) -> np.ndarray:
    """``relu`` (``np.maximum(x, 0)``) or ``leaky_relu`` (``x`` where ``x > 0``, else ``slope * x``) of an array
    :func:`supports` takes, as a new array."""
    out = np.empty_like(x)
    constant = np.array([slope], dtype=x.dtype)
    arrays = (x.reshape(-1), out.reshape(-1), constant, ACTIVATION_CODES[name])
    run_pass(_activation_kernel(), _jobs(x.size), 2 * x.size, *arrays)
    return out


def activation_grad(name: str, grad: np.ndarray, x: np.ndarray, slope: float) -> np.ndarray:
    """``grad`` times the activation's slope at ``x``: ``grad * 1`` where ``x > 0``, else ``grad * slope``
    (``grad * 0`` for ``relu``), as a new array."""
    out = np.empty_like(grad)
    constant = np.array([0.0 if name == "relu" else slope], dtype=x.dtype)
    run_pass(_slope_kernel(), _jobs(x.size), 3 * x.size, grad.reshape(-1), x.reshape(-1), out.reshape(-1), constant)
    return out


def dropout(a: np.ndarray, draws: np.ndarray, threshold: int, scale: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inverted dropout's forward: the mask ``draws >= threshold`` (``draws`` uint32, of ``a``'s shape) and
    ``(a * mask) * scale``, the mask read as 1 or 0 in ``a``'s dtype (NumPy's ``np.multiply(a, mask)``)."""
    out = np.empty_like(a)
    mask = np.empty(a.shape, dtype=bool)
    arrays = (a.reshape(-1), draws.reshape(-1), np.uint32(threshold), np.array([scale], dtype=a.dtype))
    run_pass(_dropout_kernel(), _jobs(a.size), 3 * a.size, *arrays, out.reshape(-1), mask.reshape(-1))
    return out, mask


def masked_scale(a: np.ndarray, mask: np.ndarray, scale: Any) -> np.ndarray:
    """``(a * mask) * scale`` (dropout's backward, and its forward from a mask already drawn)."""
    out = np.empty_like(a)
    arrays = (a.reshape(-1), mask.reshape(-1), np.array([scale], dtype=a.dtype), out.reshape(-1))
    run_pass(_masked_kernel(), _jobs(a.size), 3 * a.size, *arrays)
    return out


# --- batch normalization: an array seen as (outer, channels, inner), the channels on the middle axis ---------


#: channels a job of a channels-last array covers (its rows are cut into pieces of about ``ELEMENT_JOB`` elements)
CHANNEL_BLOCK = 1024


@functools.lru_cache(maxsize=256)
def _layout(shape: tuple[int, ...], axis: int) -> tuple[np.ndarray, int, int]:
    """``(dims, jobs, partial_rows)`` for an array seen as ``(outer, channels, inner)``: channels last
    (``inner == 1``) a job is a piece of ``rows`` rows times a block of ``CHANNEL_BLOCK`` channels, whose sums go
    to the piece's own row of partial sums; else a job is one ``(outer, channel)`` run of ``inner`` contiguous
    elements, summed into row ``outer``. ``dims`` is ``(outer, channels, inner, rows, block)`` (read-only: made
    once per shape, for the batch normalization's passes forward and backward). The pieces depend on
    the shape only, so the sums do too."""
    outer, channels, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])
    if channels == 1:  # one channel: one run of every element (channels-last rows of one element would not vectorise)
        outer, inner = 1, outer * inner
    if inner == 1:
        block = min(channels, CHANNEL_BLOCK)
        rows = max(1, ELEMENT_JOB // max(1, block))
        pieces = -(-outer // rows)
        jobs, partial_rows = pieces * -(-channels // block), pieces
    else:
        rows = block = 0
        jobs, partial_rows = outer * channels, outer
    dims = np.array([outer, channels, inner, rows, block], dtype=np.int64)
    dims.flags.writeable = False
    return dims, jobs, partial_rows


def _sums(
    a: np.ndarray,
    b: np.ndarray,
    centre: np.ndarray,
    axis: int,
    mode: int,
    passes: int,
    constants: np.ndarray | None = None,
) -> np.ndarray:
    """The sums kernel's ``(2, channels)`` float64 totals over every axis but ``axis`` (``mode`` as the kernel
    reads it; ``constants``, in ``b``'s dtype, the ``(2, channels)`` mean and inverse deviation that make
    mode 2's x_hat from ``b``), its pieces' partial sums added in order."""
    dims, jobs, partial_rows = _layout(a.shape, axis)
    partial = np.zeros((partial_rows, 2, a.shape[axis]))
    if constants is None:
        constants = np.zeros((2, a.shape[axis]), dtype=b.dtype)
    arrays = (a.reshape(-1), b.reshape(-1), centre, constants, partial, dims, mode)
    run_pass(_sums_kernel(), jobs, passes * a.size, *arrays)
    return partial.sum(axis=0)


def channel_sums(x: np.ndarray, axis: int, centre: np.ndarray | None = None) -> np.ndarray:
    """The float64 sum over every axis but ``axis`` of ``x`` (``centre`` given: of ``(x - centre)**2``, the
    centre float64 per channel), in pieces added in order (:func:`_layout`)."""
    if centre is None:
        return _sums(x, x, np.zeros(x.shape[axis]), axis, 0, 1)[0]
    return _sums(x, x, np.asarray(centre, dtype=np.float64), axis, 1, 1)[0]


def batch_statistics(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The float64 mean and (biased) variance per channel over every axis but ``axis``, in one pass over x:
    the sums of ``d`` and ``d**2`` for ``d = x - shift``, the shift a value of each channel's own (its first
    element), then ``mean = shift + sum(d) / n`` and ``var = sum(d**2) / n - (sum(d) / n)**2``. Shifted so, the
    float64 difference loses about ``1 + (mean - shift)**2 / var`` times float64's rounding; unshifted, a channel of
    mean 1000 and deviation 1 would lose six of float64's sixteen digits. A channel whose shift lies more than about
    30 deviations from its mean (an outlier as its first element) has its centred squares summed in a second pass
    (:func:`channel_sums`), as before the one-pass sums."""
    outer, channels = math.prod(x.shape[:axis]), x.shape[axis]
    shift = np.array(x.reshape(outer, channels, -1)[0, :, 0], dtype=np.float64)
    count = x.size // channels
    total = _sums(x, x, shift, axis, 3, 1)
    moved, squares = total[0] / count, total[1] / count
    mean, var = shift + moved, np.maximum(squares - moved * moved, 0.0)
    # a shift more than about 30 deviations from its channel's mean (an outlier first): the difference would lose
    # a thousand times float64's rounding or more, so those channels' centred squares in a second pass, as before
    far = moved * moved > 0.999 * squares
    if far.any():
        var = np.where(far, channel_sums(x, axis, centre=np.where(far, mean, shift)) / count, var)
    return mean, var


def batch_norm_sums(
    grad: np.ndarray, x: np.ndarray, axis: int, mean: np.ndarray, inv_std: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(sum(grad), sum(grad * x_hat))`` per channel, float64, over every axis but ``axis``, where ``x_hat = (x -
    mean) * inv_std`` per channel is made again from x in x's dtype (the channel constants given in it), each
    operation rounded as NumPy's: the numbers :func:`normalize` normalised with."""
    constants = np.stack([mean, inv_std]).astype(x.dtype)
    total = _sums(grad, x, np.zeros(grad.shape[axis]), axis, 2, 2, constants)
    return total[0], total[1]


def normalize(
    x: np.ndarray,
    axis: int,
    mean: np.ndarray,
    inv_std: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray | None,
    activation: str | None = None,
    slope: float = 0.0,
) -> np.ndarray:
    """``y = x_hat * gamma (+ beta)`` per channel, ``x_hat = (x - mean) * inv_std``, in ``x``'s dtype (the channel
    constants given in it), each operation rounded as NumPy's; with ``activation`` (``relu`` or ``leaky_relu`` of
    negative ``slope``), that activation of y, as :func:`activation` computes it, in the same pass. ``x_hat`` itself
    is not kept: the backward makes it again from x (:func:`batch_norm_sums`, :func:`batch_norm_grad`), which saves
    writing a second array of x's size and reading it back (PyTorch's batch normalization keeps x too)."""
    dims, jobs, _ = _layout(x.shape, axis)
    y = np.empty_like(x)
    rows = [mean, inv_std, gamma, np.zeros_like(gamma) if beta is None else beta, np.full(gamma.shape, slope)]
    constants = np.stack(rows).astype(x.dtype)
    code = -1 if activation is None else ACTIVATION_CODES[activation]
    arrays = (x.reshape(-1), constants, y.reshape(-1), dims, beta is not None, code)
    run_pass(_normalize_kernel(), jobs, 2 * x.size, *arrays)
    return y


def batch_norm_grad(
    grad: np.ndarray,
    x: np.ndarray,
    axis: int,
    mean: np.ndarray,
    inv_std: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    scale: np.ndarray,
) -> np.ndarray:
    """``((grad - x_hat * a) - b) * scale`` per channel, ``x_hat = (x - mean) * inv_std`` made again from x as
    :func:`normalize` made it (the channel constants given in the arrays' dtype)."""
    dims, jobs, _ = _layout(grad.shape, axis)
    dx = np.empty_like(grad)
    constants = np.stack([a, b, scale, mean, inv_std]).astype(grad.dtype)
    run_pass(_bn_grad_kernel(), jobs, 3 * grad.size, grad.reshape(-1), x.reshape(-1), constants, dx.reshape(-1), dims)
    return dx


# --- the kernels -------------------------------------------------------------------------------------------------
# Each takes its arrays flat and a range [start, stop) of jobs. The per-element kernels are compiled with no
# fast-math flag (NumPy's roundings, NaN and signed zeros); the sums with reassociation only, so that a run's
# float64 sum is vectorised (its order then fixed by the machine's vector width, not by the threads).


@functools.cache
def _activation_kernel() -> Any:
    job_size = ELEMENT_JOB

    def activation(x, out, constant, code, start, stop):  # type: ignore[no-untyped-def]
        a = constant[0]
        zero = x.dtype.type(0)
        n = x.shape[0]
        for job in range(start, stop):
            lo = job * job_size
            hi = min(lo + job_size, n)
            xs, outs = x[lo:hi], out[lo:hi]  # slices: LLVM vectorises their loops (1.5x faster than indexing)
            if code == 0:  # np.maximum(x, 0): a NaN stays, -0.0 gives +0.0 (the second of two equal values)
                for i in range(hi - lo):
                    v = xs[i]
                    outs[i] = v if (v > zero or v != v) else zero
            else:  # x where x > 0, else a * x (np.maximum(x, a*x)'s numbers for 0 < a <= 1)
                for i in range(hi - lo):
                    v = xs[i]
                    outs[i] = v if v > zero else a * v

    return kernels.compile_kernel(activation, fastmath=False, error_model="numpy")


@functools.cache
def _slope_kernel() -> Any:
    job_size = ELEMENT_JOB

    def slope(grad, x, out, constant, start, stop):  # type: ignore[no-untyped-def]
        a = constant[0]
        one, zero = x.dtype.type(1), x.dtype.type(0)
        n = x.shape[0]
        for job in range(start, stop):
            lo = job * job_size
            hi = min(lo + job_size, n)
            gs, xs, outs = grad[lo:hi], x[lo:hi], out[lo:hi]
            for i in range(hi - lo):
                outs[i] = gs[i] * (one if xs[i] > zero else a)

    return kernels.compile_kernel(slope, fastmath=False, error_model="numpy")


@functools.cache
def _dropout_kernel() -> Any:
    job_size = ELEMENT_JOB

    def dropout(a, draws, threshold, scale, out, mask, start, stop):  # type: ignore[no-untyped-def]
        s = scale[0]
        one, zero = a.dtype.type(1), a.dtype.type(0)
        n = a.shape[0]
        for job in range(start, stop):
            lo = job * job_size
            hi = min(lo + job_size, n)
            xs, ds, outs, ms = a[lo:hi], draws[lo:hi], out[lo:hi], mask[lo:hi]
            for i in range(hi - lo):
                keep = ds[i] >= threshold
                ms[i] = keep
                outs[i] = (xs[i] * (one if keep else zero)) * s

    return kernels.compile_kernel(dropout, fastmath=False, error_model="numpy")


@functools.cache
def _masked_kernel() -> Any:
    job_size = ELEMENT_JOB

    def masked(a, mask, scale, out, start, stop):  # type: ignore[no-untyped-def]
        s = scale[0]
        one, zero = a.dtype.type(1), a.dtype.type(0)
        n = a.shape[0]
        for job in range(start, stop):
            lo = job * job_size
            hi = min(lo + job_size, n)
            xs, ms, outs = a[lo:hi], mask[lo:hi], out[lo:hi]
            for i in range(hi - lo):
                outs[i] = (xs[i] * (one if ms[i] else zero)) * s

    return kernels.compile_kernel(masked, fastmath=False, error_model="numpy")


@functools.cache
def _sums_kernel() -> Any:
    def sums(a, b, centre, constants, partial, dims, mode, start, stop):  # type: ignore[no-untyped-def]
        # mode 0: partial[row, 0, c] += a; 1: += (a - centre[c])**2; 2: partial[row, 0] += a, [row, 1] += a * h,
        # h = (b - constants[0, c]) * constants[1, c] in b's dtype (batch normalization's x_hat made again);
        # 3: partial[row, 0] += d, [row, 1] += d * d, d = a - centre[c] in float64 (shifted sums)
        outer, channels, inner, rows, block = dims[0], dims[1], dims[2], dims[3], dims[4]
        blocks = (channels + block - 1) // block if inner == 1 else 1
        for job in range(start, stop):
            if inner == 1:  # a piece of rows times a block of channels: the channels vectorise
                piece = job // blocks
                c0 = (job % blocks) * block
                c1 = min(c0 + block, channels)
                first = partial[piece, 0, c0:c1]
                second = partial[piece, 1, c0:c1]
                mid = centre[c0:c1]
                shift, inv = constants[0, c0:c1], constants[1, c0:c1]
                for r in range(piece * rows, min(piece * rows + rows, outer)):
                    xs = a[r * channels + c0 : r * channels + c1]
                    if mode == 0:
                        for c in range(c1 - c0):
                            first[c] += np.float64(xs[c])
                    elif mode == 1:
                        for c in range(c1 - c0):
                            d = np.float64(xs[c]) - mid[c]
                            first[c] += d * d
                    elif mode == 3:
                        for c in range(c1 - c0):
                            d = np.float64(xs[c]) - mid[c]
                            first[c] += d
                            second[c] += d * d
                    else:
                        ys = b[r * channels + c0 : r * channels + c1]
                        for c in range(c1 - c0):
                            u = np.float64(xs[c])
                            first[c] += u
                            second[c] += u * np.float64((ys[c] - shift[c]) * inv[c])
            else:  # one channel's run of inner elements
                c = job % channels
                xs = a[job * inner : job * inner + inner]
                s0 = 0.0
                s1 = 0.0
                if mode == 0:
                    for i in range(inner):
                        s0 += np.float64(xs[i])
                elif mode == 1:
                    m = centre[c]
                    for i in range(inner):
                        d = np.float64(xs[i]) - m
                        s0 += d * d
                elif mode == 3:
                    m = centre[c]
                    for i in range(inner):
                        d = np.float64(xs[i]) - m
                        s0 += d
                        s1 += d * d
                else:
                    ys = b[job * inner : job * inner + inner]
                    mu, iv = constants[0, c], constants[1, c]  # in b's dtype (x_hat's numbers)
                    for i in range(inner):
                        u = np.float64(xs[i])
                        s0 += u
                        s1 += u * np.float64((ys[i] - mu) * iv)
                partial[job // channels, 0, c] = s0
                partial[job // channels, 1, c] = s1

    return kernels.compile_kernel(sums, fastmath=frozenset({"reassoc"}), error_model="numpy")


@functools.cache
def _normalize_kernel() -> Any:
    def normalize(x, constants, y, dims, center, code, start, stop):  # type: ignore[no-untyped-def]
        # code: -1 none, else the activation of y in place, each row or run just written (in the cache)
        outer, channels, inner, rows, block = dims[0], dims[1], dims[2], dims[3], dims[4]
        blocks = (channels + block - 1) // block if inner == 1 else 1
        zero = x.dtype.type(0)
        for job in range(start, stop):
            if inner == 1:
                piece = job // blocks
                c0 = (job % blocks) * block
                c1 = min(c0 + block, channels)
                mean, inv = constants[0, c0:c1], constants[1, c0:c1]
                gamma, beta, low = constants[2, c0:c1], constants[3, c0:c1], constants[4, c0:c1]
                for r in range(piece * rows, min(piece * rows + rows, outer)):
                    lo, hi = r * channels + c0, r * channels + c1
                    xs, ys = x[lo:hi], y[lo:hi]
                    if center:  # (the branch outside the loops: inside, it kept them scalar)
                        for c in range(c1 - c0):
                            ys[c] = ((xs[c] - mean[c]) * inv[c]) * gamma[c] + beta[c]
                    else:
                        for c in range(c1 - c0):
                            ys[c] = ((xs[c] - mean[c]) * inv[c]) * gamma[c]
                    if code == 0:  # np.maximum(y, 0), as the activation kernel
                        for c in range(c1 - c0):
                            v = ys[c]
                            ys[c] = v if (v > zero or v != v) else zero
                    elif code == 1:
                        for c in range(c1 - c0):
                            v = ys[c]
                            ys[c] = v if v > zero else low[c] * v
            else:
                c = job % channels
                m, s, g, b = constants[0, c], constants[1, c], constants[2, c], constants[3, c]
                a = constants[4, c]
                lo = job * inner
                xs, ys = x[lo : lo + inner], y[lo : lo + inner]
                if center:
                    for i in range(inner):
                        ys[i] = ((xs[i] - m) * s) * g + b
                else:
                    for i in range(inner):
                        ys[i] = ((xs[i] - m) * s) * g
                if code == 0:
                    for i in range(inner):
                        v = ys[i]
                        ys[i] = v if (v > zero or v != v) else zero
                elif code == 1:
                    for i in range(inner):
                        v = ys[i]
                        ys[i] = v if v > zero else a * v

    return kernels.compile_kernel(normalize, fastmath=False, error_model="numpy")


@functools.cache
def _bn_grad_kernel() -> Any:
    def bn_grad(grad, x, constants, dx, dims, start, stop):  # type: ignore[no-untyped-def]
        # constants: a, b, scale, then the mean and inverse deviation that make x_hat from x
        outer, channels, inner, rows, block = dims[0], dims[1], dims[2], dims[3], dims[4]
        blocks = (channels + block - 1) // block if inner == 1 else 1
        for job in range(start, stop):
            if inner == 1:
                piece = job // blocks
                c0 = (job % blocks) * block
                c1 = min(c0 + block, channels)
                a, b, s = constants[0, c0:c1], constants[1, c0:c1], constants[2, c0:c1]
                mean, inv = constants[3, c0:c1], constants[4, c0:c1]
                for r in range(piece * rows, min(piece * rows + rows, outer)):
                    lo, hi = r * channels + c0, r * channels + c1
                    gs, xs, ds = grad[lo:hi], x[lo:hi], dx[lo:hi]
                    for c in range(c1 - c0):
                        ds[c] = ((gs[c] - ((xs[c] - mean[c]) * inv[c]) * a[c]) - b[c]) * s[c]
            else:
                c = job % channels
                ac, bc, sc = constants[0, c], constants[1, c], constants[2, c]
                mc, vc = constants[3, c], constants[4, c]
                lo = job * inner
                gs, xs, ds = grad[lo : lo + inner], x[lo : lo + inner], dx[lo : lo + inner]
                for i in range(inner):
                    ds[i] = ((gs[i] - ((xs[i] - mc) * vc) * ac) - bc) * sc

    return kernels.compile_kernel(bn_grad, fastmath=False, error_model="numpy")
