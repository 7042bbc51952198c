"""The engine's entry points: one call, a weight gradient, a transposed convolution's two gradients.

Each selects its algorithm the same way (:func:`_routed`, from the call's batch and compute dtype), casts
to the compute dtype with a batch axis, asks the algorithm object (a weight gradient, unforced, may run in
register blocks instead where the algorithm says so: :func:`run_weight_grad`), and hands the result back in the
caller's dtype (:mod:`tconv.engine.layout`). A forward call on NumPy arrays is planned once (:func:`plan_call`:
its route kept in a :class:`CallPlan`, which :mod:`tconv.ops` runs on the later calls of the same description).

Each first drops the kernel's dead taps (:func:`live_taps`): the leading and trailing taps of an axis that meet
no input for any output (a kernel much longer than its input, or dilated past it: DeepLab's atrous branches
on small feature maps, a 9x9 kernel over a 2x2 input) only ever multiply padding. The call runs with the
kernel cut to its live taps and the padding reduced to match, the same output; their weight gradient is zero.
Only where the cost model puts the cut call below the whole (:func:`_cut_if_cheaper`) and the arrays the dead
taps would multiply by zeros are finite (an infinity times zero is NaN in every framework); a forced algorithm
(:func:`tconv.use_algorithm`) gets the call as it is.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from .. import _tuning
from .._backend import Array, Prepared, extend
from .._geometry import overlap
from ..implementations.compiled import blocked, elementwise, kernels, team
from ..implementations.compiled.algorithms import weight_grad_in_blocks
from ..spec import ConvSpec
from . import layout, planner, registry

#: The largest index (and byte count) a NumPy array and the compiled kernels' int64 arithmetic can hold.
INDEX_LIMIT = 2**63 - 1


@functools.lru_cache(maxsize=1024)
def check_index_range(spec: ConvSpec, batch: int, itemsize: int) -> None:
    """``ValueError`` naming the arguments when a call's numbers or its output overflow the 64-bit index range
    (where NumPy would say "array is too big" or "Maximum allowed dimension exceeded" and the kernels would
    wrap around). A huge stride or dilation on a small input is fine: only the sizes that exist count. Calls
    that pass are remembered (a refused one raises, and is checked again next time)."""
    pads = tuple(v for pair in spec.padding for v in pair)
    for name, values in (
        ("stride", spec.stride),
        ("dilation", spec.dilation),
        ("padding", pads),
        ("output_padding", spec.output_padding),
    ):
        if any(v > INDEX_LIMIT for v in values):
            raise ValueError(f"{name} must be below 2**63 on every axis (the 64-bit index range); received {values}")
    out = spec.output_size
    elements = batch * spec.out_channels * math.prod(out)
    if any(n > INDEX_LIMIT for n in out) or elements * itemsize > INDEX_LIMIT:
        options = f"stride={spec.stride}, dilation={spec.dilation}, padding={spec.padding}"
        if spec.transposed:
            options += f", output_padding={spec.output_padding}"
        raise ValueError(
            f"the output would have spatial size {out} ({elements} elements of {batch} samples, "
            f"{spec.out_channels} channels), beyond the 64-bit index range; from an input of spatial size "
            f"{spec.input_size} with kernel_size={spec.kernel_size}, {options}"
        )


def _batch(prepared: Prepared, batched: bool) -> int:
    return int(prepared.x.shape[0]) if batched else 1


def _routed(
    prepared: Prepared, spec: ConvSpec, batched: bool, channels_last: bool, *multiplied: Array
) -> tuple[tuple[ConvSpec, tuple[tuple[int, int], ...]] | None, registry.Algorithm]:
    """The call's :func:`live_taps` cut where it pays, and the algorithm that runs it (the cut call's or the
    whole's): decided once per call description, layout, dtype, forced and avoided algorithms and team
    (:func:`_route`; a call of 0.1 ms spent 8 us deciding again what it had decided last time). Only the
    finiteness of ``multiplied`` is looked at on every call: where one of them (the arrays the dead taps would
    multiply by the padding's zeros: the weight, or the data of a weight gradient) holds an infinity or a NaN,
    whose product with zero every framework carries into the result as NaN, the call runs whole."""
    return _pick(_route_in(prepared, spec, batched, channels_last, route_state()), prepared.xp, *multiplied)


def _route_in(prepared: Prepared, spec: ConvSpec, batched: bool, channels_last: bool, state: tuple[Any, ...]) -> Any:
    """:func:`_route` of a prepared call in ``state`` (:func:`route_state`): its batch and compute itemsize read
    from the arrays."""
    return _route(
        spec, prepared.xp, _batch(prepared, batched), channels_last, layout.compute_itemsize(prepared), *state
    )


def route_state() -> tuple[str | None, frozenset[str], int, bool]:
    """What a call's route depends on beside the call itself (the last four of :func:`_route`'s arguments): the
    forced algorithm's name (:func:`tconv.use_algorithm`), the avoided ones, the team's size and whether the
    compiled kernels can run."""
    forced = registry.forced()
    return None if forced is None else forced.name, registry.avoided(), team.size(), kernels.available()


def _pick(
    route: tuple[
        registry.Algorithm | ValueError, tuple[ConvSpec, tuple[tuple[int, int], ...]] | None, registry.Algorithm | None
    ],
    xp: Any,
    *multiplied: Array,
) -> tuple[tuple[ConvSpec, tuple[tuple[int, int], ...]] | None, registry.Algorithm]:
    """The way one call runs, of its remembered :func:`_route`: the cut and its algorithm where there is one and
    every array in ``multiplied`` is finite, else the whole call's algorithm (its refusal raised afresh)."""
    whole, cut, part = route
    if cut is not None and part is not None and all(bool(xp.all(xp.isfinite(a))) for a in multiplied):
        return cut, part
    if isinstance(whole, ValueError):  # the whole call has no algorithm (only the cut one had)
        raise ValueError(*whole.args)  # a new one each time: the remembered one would gather tracebacks
    return None, whole


@functools.lru_cache(maxsize=4096)
def _route(
    spec: ConvSpec,
    xp: Any,
    batch: int,
    channels_last: bool,
    itemsize: int,
    forced: str | None,
    avoided: frozenset[str],
    team_size: int,
    compiled: bool,
) -> tuple[
    registry.Algorithm | ValueError, tuple[ConvSpec, tuple[tuple[int, int], ...]] | None, registry.Algorithm | None
]:
    """:func:`_routed`'s decisions: the whole call's algorithm, the cut (None under a forced algorithm, which runs
    the call as it is given, or where the cut does not pay) and the cut call's algorithm. ``forced``, ``avoided``,
    ``team_size`` and ``compiled`` (whether the compiled kernels can run) are the process's state that
    :func:`tconv.engine.planner.select` reads, in the key so that a change of any of them is a new decision (the
    tuning constants it reads are not: they are fixed in a user's process, and the tests that change them clear
    this cache). A call that overflows the index range, or that the forced algorithm cannot run, raises and is
    not remembered. Where the cut runs, the whole call's refusal (``avoid_algorithms`` leaving it no algorithm) is
    kept in place of its algorithm, raised only where the whole call must run."""
    del forced, team_size, compiled  # read again by planner.select; here they only key the cache
    check_index_range(spec, batch, itemsize)
    cut = None if registry.forced() is not None else _cut_if_cheaper(spec, batch, channels_last, avoided)
    if cut is None:
        return planner.select(spec, xp, channels_last, batch, itemsize), None, None
    part = planner.select(cut[0], xp, channels_last, batch, itemsize)
    try:
        whole: registry.Algorithm | ValueError = planner.select(spec, xp, channels_last, batch, itemsize)
    except ValueError as refusal:
        whole = ValueError(*refusal.args)  # without the traceback, whose frames hold the first call's arrays
    return whole, cut, part


@functools.lru_cache(maxsize=1024)
def live_taps(spec: ConvSpec) -> tuple[ConvSpec, tuple[tuple[int, int], ...]] | None:
    """The call with its kernel cut to the taps that meet an input for some output, and each axis's ``(first,
    stop)`` taps kept; None where every tap is live (or none is on some axis: the output is the padding's).

    Per axis, tap ``t`` meets input ``i`` at output ``o`` where ``i * s + t * d - lo == o`` (transposed) or
    ``o * s + t * d - lo == i`` (a convolution); leading taps that meet none are dropped with ``d`` of the low
    padding each, trailing ones with ``d`` of the high padding each, so the output's size and values stay
    (as far as the padding goes: a dropped tap never reaches past it).

    Examples
    --------
    >>> spec = ConvSpec.build(transposed=False, input_size=(4, 4), kernel_size=(3, 3), in_channels=8,
    ...                       out_channels=8, dilation=6, padding=6)
    >>> cut, kept = live_taps(spec)
    >>> cut.kernel_size, cut.padding, kept, cut.output_size == spec.output_size
    ((1, 1), ((0, 0), (0, 0)), ((1, 2), (1, 2)), True)
    """
    if 0 in spec.input_size or 0 in spec.output_size:
        return None
    kept, kernel, padding = [], [], []
    for n, k, s, d, (lo, hi), out in zip(
        spec.input_size, spec.kernel_size, spec.stride, spec.dilation, spec.padding, spec.output_size
    ):
        # the strided side (inputs of a transposed call, outputs of a convolution) against the dense one
        strided, dense = (n, out) if spec.transposed else (out, n)
        live = [t for t in range(k) if _live(overlap(t * d - lo, s, strided, dense))]
        if not live:
            return None
        first, stop = min(live[0], lo // d), max(live[-1] + 1, k - hi // d)  # never more than the padding
        kept.append((first, stop))
        kernel.append(stop - first)
        padding.append((lo - first * d, hi - (k - stop) * d))
    if tuple(kernel) == spec.kernel_size:
        return None
    cut = dataclasses.replace(spec, kernel_size=tuple(kernel), padding=tuple(padding))
    if cut.output_size != spec.output_size:  # pragma: no cover - the arithmetic above keeps it
        return None
    return cut, tuple(kept)


def _live(window: tuple[int, int, int]) -> bool:
    """Whether an :func:`~tconv._geometry.overlap` window holds an index."""
    return window[0] < window[1]


@functools.lru_cache(maxsize=1024)
def _cut_if_cheaper(
    spec: ConvSpec, batch: int, channels_last: bool, avoided: frozenset[str] = frozenset()
) -> tuple[ConvSpec, tuple[tuple[int, int], ...]] | None:
    """:func:`live_taps` where the cost model puts the cut call, with a copy of the cut weight (a strided view of
    it, which the algorithms read contiguous), below the call as it is: on a small call with a large weight (500
    input channels over a 1x1 input) the copy costs more than the dead taps. Both costs among the algorithms not
    ``avoided`` (:func:`tconv.avoid_algorithms`), nor ``jit_dots``, which the planner weighs with the calls' own
    costs (its rule 3), not by its estimate alone."""
    cut = live_taps(spec)
    if cut is None:
        return None
    avoided = avoided | {"jit_dots"}  # taken by its own rule (planner rule 3), on estimates without the calls' costs
    whole = planner.plan_costs(spec, batch, channels_last, avoided)
    part = planner.plan_costs(cut[0], batch, channels_last, avoided)
    if not whole or not part:  # no compiled path ranks it: the array-API algorithms loop over the taps
        return cut
    kept = spec.in_channels * (spec.out_channels // spec.groups) * math.prod(cut[0].kernel_size)
    copy = 2.0 * _tuning.COST_ITEMSIZE * kept / _tuning.COLUMN_STREAM
    return cut if min(part.values()) + copy < min(whole.values()) else None


def _cut_weight(weight: Array, kept: tuple[tuple[int, int], ...]) -> Array:
    """The weight's live taps: a view, except for a NumPy weight, whose kept taps are gathered at once into a
    contiguous array (a view's runs of a few taps would be copied run by run by each reshape the algorithm
    makes of it: 1.1 ms a reshape on a (82, 320, 9, 9) weight cut to 3x3, against 0.5 ms for the gather)."""
    if not isinstance(weight, np.ndarray):
        index = (slice(None), slice(None), *(slice(first, stop) for first, stop in kept))
        return weight[index]
    rows = weight.reshape(weight.shape[0] * weight.shape[1], -1)
    taps = _kept_taps(weight.shape[2:], kept)
    return rows.take(taps, axis=1).reshape(*weight.shape[:2], *(stop - first for first, stop in kept))


@functools.lru_cache(maxsize=1024)
def _kept_taps(kernel: tuple[int, ...], kept: tuple[tuple[int, int], ...]) -> np.ndarray:
    """The flat indices of ``kept``'s taps in a kernel of shape ``kernel`` (row-major), made once per shape and
    cut (a third of :func:`_cut_weight`'s time on a small weight); read-only, as every caller shares it."""
    taps = np.ravel_multi_index(np.ix_(*(np.arange(first, stop) for first, stop in kept)), kernel).ravel()
    taps.flags.writeable = False
    return taps


def _uncut_gradient(
    prepared: Prepared, grad: Array, kernel: tuple[int, ...], kept: tuple[tuple[int, int], ...]
) -> Array:
    """A weight gradient of the cut kernel as the whole kernel's: zeros at the dead taps."""
    for axis, ((first, stop), k) in enumerate(zip(kept, kernel)):
        grad = extend(prepared.xp, grad, 2 + axis, first, k - stop)
    return grad


def run(prepared: Prepared, spec: ConvSpec, *, batched: bool, channels_last: bool) -> Array:
    """Compute one call: the selected algorithm's forward, in the caller's layout and dtype."""
    cut, algorithm = _routed(prepared, spec, batched, channels_last, prepared.weight)
    weight = prepared.weight
    if cut is not None:
        spec, weight = cut[0], _cut_weight(weight, cut[1])
    xp, dtype = prepared.xp, prepared.compute_dtype
    x = layout.computed(prepared, prepared.x, batched)
    weight = layout.cast(xp, weight, dtype)
    bias = None if prepared.bias is None else layout.cast(xp, prepared.bias, dtype)
    out = algorithm.forward(xp, x, weight, bias, spec, channels_last)
    return layout.finish(xp, out if batched else out[0, ...], prepared.dtype)


class CallPlan:
    """A forward call on NumPy arrays decided once (:func:`plan_call`) and run again on new arrays of the same
    description by :meth:`run`, which does only what :func:`run` does on every call: the way the remembered route
    runs them (:func:`_pick`: the dead taps' cut where the weight is finite), the algorithm's forward, and the
    result as the caller's contiguous array. :mod:`tconv.ops` keeps one per call description, dtype and
    :func:`route_state` (``ops._PLANS``); the arrays it hands :meth:`run` are NumPy arrays of one float32 or
    float64 dtype, of the shapes the plan was made for (the checks :func:`tconv.ops.parse_call` made once hold
    for them), any strides."""

    __slots__ = ("batched", "channels_last", "route", "spec", "xp")

    def __init__(self, xp: Any, route: Any, spec: ConvSpec, batched: bool, channels_last: bool) -> None:
        self.xp, self.route, self.spec, self.batched, self.channels_last = xp, route, spec, batched, channels_last

    def run(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """The call on these arrays, as :func:`run` computes it."""
        xp, spec = self.xp, self.spec
        cut, algorithm = _pick(self.route, xp, weight)
        if cut is not None:
            spec, weight = cut[0], _cut_weight(weight, cut[1])
        if self.batched:
            return np.ascontiguousarray(algorithm.forward(xp, x, weight, bias, spec, self.channels_last))
        out = algorithm.forward(xp, xp.expand_dims(x, axis=0), weight, bias, spec, self.channels_last)
        return np.ascontiguousarray(out[0, ...])


def plan_call(
    prepared: Prepared, spec: ConvSpec, state: tuple[Any, ...], *, batched: bool, channels_last: bool
) -> CallPlan:
    """The :class:`CallPlan` of a forward call whose arrays :func:`tconv._backend.plain_numpy_call` took (NumPy
    arrays of one native float32 or float64 dtype: no cast either way), with the route :func:`run` would take in
    ``state`` (:func:`route_state`, as read for the plan's key: another thread changing the team's size meanwhile
    must not leave a route of the new state under the old key); raises what :func:`run` would (an index overflow, a
    forced algorithm that cannot run the call)."""
    return CallPlan(prepared.xp, _route_in(prepared, spec, batched, channels_last, state), spec, batched, channels_last)


def run_weight_grad(
    prepared: Prepared, spec: ConvSpec, grad_output: Array, *, batched: bool, channels_last: bool
) -> Array:
    """The gradient of the loss with respect to the weight, in the weight's own layout: the algorithm's own route,
    or in register blocks where no algorithm is forced and the algorithm says so (``runs_weight_grad_in_blocks``:
    the compiled ones, where the cost model prices the blocks lower)."""
    cut, algorithm = _routed(prepared, spec, batched, channels_last, prepared.x, grad_output)
    kernel = spec.kernel_size
    if cut is not None:
        spec = cut[0]
    x = layout.computed(prepared, prepared.x, batched)
    gy = layout.computed(prepared, grad_output, batched)
    if registry.forced() is None and _blocks(algorithm, spec, _batch(prepared, batched), channels_last):
        grad = weight_grad_in_blocks(x, gy, spec, channels_last)
    else:
        grad = algorithm.weight_grad(prepared.xp, x, gy, spec, channels_last)
    grad = layout.finish(prepared.xp, grad, prepared.dtype)
    return grad if cut is None else _uncut_gradient(prepared, grad, kernel, cut[1])


def _blocks(algorithm: registry.Algorithm, spec: ConvSpec, batch: int, channels_last: bool) -> bool:
    """Whether ``algorithm`` has a call's weight gradient run in register blocks
    (``runs_weight_grad_in_blocks``; an algorithm registered without that method: never)."""
    asks = getattr(algorithm, "runs_weight_grad_in_blocks", None)
    return asks is not None and bool(asks(spec, batch, channels_last))


def run_transpose_grads(
    prepared: Prepared, spec: ConvSpec, *, batched: bool, channels_last: bool
) -> tuple[Array, Array] | None:
    """``(grad_x, grad_weight)`` of a transposed convolution in one pass, where the selected algorithm shares
    their work (the compiled path: one im2col of the output gradient); else None."""
    cut, algorithm = _routed(prepared, spec, batched, channels_last, prepared.weight, prepared.x, prepared.grad_output)
    if not algorithm.shares_transpose_grads:
        return None
    batch = _batch(prepared, batched)
    if registry.forced() is None and _blocks(algorithm, spec if cut is None else cut[0], batch, channels_last):
        return None  # the weight gradient in register blocks (run_weight_grad asks the same), the input's apart
    if registry.forced() is None and _input_grad_apart(
        spec, prepared.xp, batch, channels_last, layout.compute_itemsize(prepared),
        registry.avoided(), team.size(), kernels.available(),
    ):  # fmt: skip  # the whole call's spec: the input gradient's convolution decides its own cut
        return None
    kernel, weight = spec.kernel_size, prepared.weight
    if cut is not None:
        spec, weight = cut[0], _cut_weight(weight, cut[1])
    xp = prepared.xp
    x = layout.computed(prepared, prepared.x, batched)
    gy = layout.computed(prepared, prepared.grad_output, batched)
    weight = layout.cast(xp, weight, prepared.compute_dtype)
    dx, dw = algorithm.transpose_grads(xp, x, weight, gy, spec, channels_last)
    dw = layout.finish(xp, dw, prepared.dtype)
    if cut is not None:
        dw = _uncut_gradient(prepared, dw, kernel, cut[1])
    return layout.finish(xp, dx if batched else dx[0, ...], prepared.dtype), dw


@functools.lru_cache(maxsize=1024)
def _input_grad_apart(
    spec: ConvSpec, xp: Any, batch: int, channels_last: bool, itemsize: int, avoided: frozenset[str], team_size: int,
    compiled: bool,
) -> bool:  # fmt: skip
    """Whether a transposed convolution's input gradient runs apart from its weight gradient, as the convolution of
    the output gradient it is, rather than as the product sharing the weight gradient's im2col: channels-last,
    where the planner takes ``jit_blocked`` for that convolution and runs it in blocks across the samples (no
    im2col to share). Both gradients of the seed generator's first two layers, channels-last, batch 64: (64, 7, 7,
    256) -> 128 5x5 47.7 ms apart against 56.9 shared, (64, 7, 7, 128) -> 64 5x5 stride 2 16.6 against 19.1;
    channels-first, where the convolution across the samples copies x and its output channels-last, that layer and
    dcgan64-3 ran 1.04-1.05 times the shared pass apart. (Where the weight gradient runs in register blocks, the
    input gradient is apart too, in either layout: :func:`run_transpose_grads` asks that first.) ``avoided``,
    ``team_size`` and ``compiled`` (the state
    :func:`tconv.engine.planner.select` reads beyond a forced algorithm, under which the caller never asks) only key
    the cache, as :func:`_route`'s."""
    del avoided, team_size, compiled
    if not spec.transposed or not channels_last:
        return False
    twin = spec.as_convolution()
    try:
        chosen = planner.select(twin, xp, channels_last, batch, itemsize).name
    except ValueError:  # no algorithm left for the convolution: the shared product runs it
        return False
    return chosen == "jit_blocked" and blocked.runs_across(twin, channels_last, batch, itemsize)


def run_bias_grad(prepared: Prepared, grad_output: Array, channel_axis: int) -> Array:
    """The gradient of the loss with respect to the bias: the output gradient summed over every axis but the
    channels', in the compute dtype and back in the caller's. A NumPy array the compiled element-wise passes
    take (:func:`.elementwise.supports`) is summed there, in float64 per channel: channels-last with 16 channels,
    NumPy's sum over the other axes took 0.59 ms on 2 MiB of float32 and the compiled one 0.11 (channels-first 0.10
    and 0.06)."""
    xp = prepared.xp
    gy = layout.cast(xp, grad_output, prepared.compute_dtype)
    if elementwise.supports(gy) and gy.size > 0:
        total = elementwise.channel_sums(gy, channel_axis)
        return layout.finish(xp, total.astype(gy.dtype), prepared.dtype)
    axes = tuple(a for a in range(gy.ndim) if a != channel_axis)
    return layout.finish(xp, xp.sum(gy, axis=axes), prepared.dtype)
