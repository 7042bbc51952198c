"""The planner: which registered algorithm runs a call, by rules and by the cost model.

:func:`select` is asked the same way by every entry point (:mod:`tconv.engine.run`): the algorithm
:func:`tconv.use_algorithm` forces (which must support the call), else the planner's choice, cached per
call description, layout and team (:func:`plan`), among the algorithms :func:`tconv.avoid_algorithms` leaves it
(a rule whose algorithm is avoided does not apply; the next one decides):

1. without the compiled kernels (numba missing, rank > 3, arrays other than NumPy's): ``gemm``, the
   array-API product + col2im, faster than ``taps`` everywhere once its buffer is cache-sized (``taps`` where
   ``gemm`` is avoided; where both are, or where every compiled algorithm the cost model ranks is avoided too, the
   first algorithm of :func:`tconv.algorithms`' list that is not avoided and runs the call, else ``ValueError``);
2. a 1x1 kernel that pads nothing: ``jit_pointwise``, one product per block of pixels written straight into the
   output (every other algorithm adds a column buffer or a copy to the same product); a strided transposed one
   (its products scattered among the bias) channels-last, or channels-first where its output is at most
   ``POINTWISE_SCATTER_MAX_BYTES`` (:func:`~tconv.implementations.compiled.pointwise.preferred`); a depthwise one
   where the cost model puts ``jit_depthwise`` below it: ``jit_depthwise`` (one multiply a channel and pixel);
3. a convolution: ``jit_dots`` (dot products of windows and weight rows, in one compiled call) where its estimate
   plus its call's own cost (``FORWARD_CALL_COST``: the Python around each path's kernels, which the per-sample
   estimates leave out) is under ``DOTS_MAX_SECONDS`` and at most ``DOTS_MARGIN`` of every other estimate plus
   theirs (small calls); else
   ``jit_blocked`` (the register-blocked direct sum; ranked channels-last with ``BLOCKED_MIN_OUT``
   output channels a group or more, channels-first with ``BLOCKED_FIRST_MIN_OUT`` and more than one tap, and taken
   there only where its estimate is under ``BLOCKED_FIRST_MAX_SECONDS`` or it runs in blocks across the samples,
   :func:`~tconv.implementations.compiled.blocked.runs_across`) where the cost model puts it at most
   ``BLOCKED_MARGIN`` (channels-first ``BLOCKED_FIRST_MARGIN``) of every other estimate (the Winograd ones that
   qualify below); else ``jit_direct`` (the direct sum, any stride: few channels per group, depthwise) where the cost
   model puts it at most ``FORWARD_DIRECT_MARGIN`` of the others' (``jit_gemm``: im2col and one product per group;
   ``jit_winograd`` and ``jit_winograd4`` (F(2x2, 3x3) and F(4x4, 3x3)) for a 2-D 3x3 stride-1 kernel,
   ``jit_winograd`` on dilated ones only where each phase has ``WINOGRAD_MIN_PHASE`` outputs a side and
   ``jit_winograd4`` on any only where each phase has ``WINOGRAD4_MIN_SIDE``, each counted only where its cost is at
   most ``WINOGRAD_MARGIN`` of ``jit_gemm``'s; ``jit_depthwise`` for a depthwise layer), else the cheapest of those;
4. a stride-1 transposed convolution: first ``jit_blocked``, the register blocks over its forward twin
   (:func:`~tconv.implementations.compiled.algorithms.stride_one_conv`), by rule 3's margins against every other
   estimate (a Winograd one that fails its margin dropped first), unless rule 7 holds, where it must also run
   the twin in blocks across the samples (:func:`~tconv.implementations.compiled.blocked.runs_across`) at most
   ``PIXELS_ACROSS_MARGIN`` of ``jit_pixels``' estimate; it raises no bar below
   (and is taken where every other algorithm is avoided). Then, one that
   ``jit_direct`` runs as the direct sum of its forward twin
   (:func:`~tconv.implementations.compiled.algorithms.direct_twin`): ``jit_direct`` where the cost model puts
   it at most ``TWIN_DIRECT_MARGIN`` (1: the cheaper estimate) of every other algorithm's cost (``jit_im2col``
   included), unless rule 7 holds;
5. a stride-1 transposed convolution whose forward twin (``jit_im2col``: im2col of x and a product over
   ``C_in/G * K``; ``jit_winograd`` or ``jit_winograd4`` for a 2-D 3x3 kernel) the cost model puts at most
   ``TWIN_MARGIN`` (for Winograd's, ``WINOGRAD_MARGIN``) of every other algorithm's cost: the cheaper such twin
   (few input channels, large kernels, or a 3x3 kernel over many channels; whatever the layout), unless rule 7
   holds. A Winograd estimate that fails its margin is dropped before rule 4, so that it raises no bar there
   (nor does ``jit_phases``' estimate unless it is at most ``PHASES_MARGIN`` of every other's: it is ranked for
   channels-last strided calls only, one stride-1 convolution per output phase, so it meets rules 6-8);
6. a channels-last transposed convolution with one group and ``PIXELS_MIN_CHANNELS`` output channels or
   more: ``jit_pixels`` (its overlap-add runs along the contiguous channels, and x needs no copy), unless the
   cost model puts it above ``PIXELS_MARGIN`` times the cheapest of the estimates still ranked (rules 2-5 have
   taken ``jit_pointwise``, ``jit_blocked``, ``jit_direct``'s twin and the twins out);
7. channels-first, the batched 2-D generator layers on a thread team (one group, ``PIXELS_TEAM_MIN_CHANNELS``
   output channels or more, input rows of at most ``PIXELS_TEAM_MAX_ROW``, kernels that overlap):
   ``jit_pixels``, unless the cost model puts it above ``PIXELS_TEAM_MARGIN`` times the cheapest estimate
   (few input channels beyond ``PIXELS_DIRECT_MAX_IN``, whose products have a short inner dimension);
8. else the cheapest by the cost model (:func:`plan_costs`: the algorithms' own ``batch_cost``, mostly their cost
   per sample times the batch,
   plus their ``setup_cost`` once, in the call's layout, plus a transposed call's fixed ``TRANSPOSED_CALL_COST``).

Whether a call runs on a thread team is decided by one function,
:func:`tconv.implementations.compiled.schedule.team_threads`, asked here and by the compiled schedules,
so that a plan made for a team is never run without one. Every number is in :mod:`tconv._tuning`; the
measurements behind them are in ``docs/design.md``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from .. import _tuning
from ..implementations.compiled import blocked as blocked_sums
from ..implementations.compiled import pointwise, schedule
from ..implementations.compiled.algorithms import convolution_computed, direct_twin
from ..implementations.compiled.geometry import taps_overlap
from ..spec import ConvSpec
from . import registry


def plan_costs(
    spec: ConvSpec, batch: int = 1, channels_last: bool = False, avoided: frozenset[str] = frozenset()
) -> dict[str, float]:
    """The cost model's estimates, in seconds per call of ``batch`` samples in the given layout, of the algorithms
    it ranks for ``spec`` (none of those in ``avoided``): each algorithm's ``batch_cost`` (its ``cost`` per sample
    times the batch, unless the way it runs depends on the batch), plus its ``setup_cost`` once, plus (a
    transposed call) its ``TRANSPOSED_CALL_COST``.

    Examples
    --------
    >>> import tconv
    >>> from tconv.engine.planner import plan_costs
    >>> depthwise = tconv.ConvSpec.build(transposed=True, input_size=(56, 56), kernel_size=(4, 4),
    ...     in_channels=64, out_channels=64, groups=64, stride=2, padding=1)
    >>> costs = plan_costs(depthwise)
    >>> sorted(costs)
    ['jit_depthwise', 'jit_direct', 'jit_gemm']
    >>> costs["jit_depthwise"] < min(costs["jit_gemm"], costs["jit_direct"])  # through its channels-last tile
    True
    """
    costs = {}
    calls = _tuning.TRANSPOSED_CALL_COST if spec.transposed else {}
    for algorithm in registry.registered():
        if algorithm.name in avoided:
            continue
        cost = algorithm.batch_cost(spec, batch, channels_last)
        if cost is not None:
            costs[algorithm.name] = cost + algorithm.setup_cost(spec) + calls.get(algorithm.name, 0.0)
    return costs


#: Winograd's algorithms: F(2x2, 3x3) and F(4x4, 3x3).
_WINOGRADS = ("jit_winograd", "jit_winograd4")

#: The algorithms that run a stride-1 transposed convolution as its forward twin (rule 5).
_TWINS = ("jit_im2col", *_WINOGRADS)


def _drop_unqualified_winograd(costs: dict[str, float], apart: tuple[str, ...]) -> None:
    """Drop each Winograd estimate from ``costs`` unless it is at most ``WINOGRAD_MARGIN`` of the cheapest
    non-Winograd algorithm's, the algorithms in ``apart`` (judged by rules of their own) left out of that
    comparison; the two tile sizes are then weighed against each other by their costs alone."""
    others = [cost for name, cost in costs.items() if name not in _WINOGRADS and name not in apart]
    for name in _WINOGRADS:
        winograd = costs.get(name)
        if winograd is not None and others and winograd > _tuning.WINOGRAD_MARGIN * min(others):
            del costs[name]


#: The array-API algorithms the planner falls back on, in its order of preference: without the compiled kernels
#: (rule 1), or with every compiled algorithm that ranks a call avoided. Both run any call.
_FALLBACKS = ("gemm", "taps")


def _fallback(avoided: frozenset[str]) -> str | None:
    """The first of :data:`_FALLBACKS` not avoided; None where both are (:func:`select` then looks further)."""
    return next((name for name in _FALLBACKS if name not in avoided), None)


@functools.lru_cache(maxsize=4096)
def plan(
    spec: ConvSpec,
    compiled: bool,
    channels_last: bool,
    team: bool = False,
    batch: int = 1,
    avoided: frozenset[str] = frozenset(),
) -> str | None:
    """The planner's choice (the rules in the module docstring), cached per call description (shapes and
    options), path (``compiled``: the compiled kernels can run it), layout, thread team, batch and the
    algorithms it must not choose (``avoided``); None where it avoids ``gemm`` and ``taps`` and every compiled
    algorithm the cost model ranks (:func:`select` then takes any other that runs the call)."""
    if not compiled:
        return _fallback(avoided)
    costs = plan_costs(spec, batch, channels_last, avoided)
    if not costs:  # every compiled algorithm that ranks the call is avoided
        return _fallback(avoided)
    pointwise_cost = costs.pop("jit_pointwise", None)
    if pointwise_cost is not None and (not costs or pointwise.preferred(spec, batch, channels_last)):
        depthwise_cost = costs.get("jit_depthwise")  # a depthwise 1x1 layer: one multiply a channel and pixel
        return "jit_depthwise" if depthwise_cost is not None and depthwise_cost < pointwise_cost else "jit_pointwise"
    phases = costs.get("jit_phases")
    if phases is not None and len(costs) > 1:  # ranked only at its margin (below): its estimate runs optimistic
        if phases > _tuning.PHASES_MARGIN * min(cost for name, cost in costs.items() if name != "jit_phases"):
            del costs["jit_phases"]
    if not spec.transposed:  # im2col and one product per group, Winograd (3x3), or the direct sums
        dots = costs.pop("jit_dots", None)  # judged with the calls' own costs, against every other estimate
        blocked = costs.pop("jit_blocked", None)  # judged by its own margin, against every other estimate left
        _drop_unqualified_winograd(costs, ("jit_direct",))
        across = blocked is not None and _across(spec, channels_last, batch)
        if dots is not None and _dots_first(dots, blocked, costs, channels_last, across):
            return "jit_dots"
        if blocked is not None and _blocked_first(blocked, costs, channels_last, across):
            return "jit_blocked"
        direct = costs.pop("jit_direct", None)
        if direct is not None and (not costs or direct <= _tuning.FORWARD_DIRECT_MARGIN * min(costs.values())):
            return "jit_direct"
        return min(costs, key=lambda name: costs[name])  # never empty: jit_direct alone returned above
    # against what rule 5 weighs the twins against (rule 4 judges a direct twin on its own): an estimate that
    # would never be chosen must not raise the bar for rule 4 either
    direct_route = "jit_direct" in costs and direct_twin(spec) is not None
    blocked = costs.pop("jit_blocked", None)  # a stride-1 call's forward twin, judged by rule 3's margins
    if blocked is not None and not costs:  # every other algorithm avoided
        return "jit_blocked"
    _drop_unqualified_winograd(costs, (*_TWINS, "jit_direct") if direct_route else _TWINS)
    team_pixels = (
        team
        and "jit_pixels" not in avoided
        and spec.ndim == 2
        and spec.groups == 1
        and spec.out_channels >= _tuning.PIXELS_TEAM_MIN_CHANNELS
        and spec.input_size[-1] <= _tuning.PIXELS_TEAM_MAX_ROW
        and taps_overlap(spec)
        and costs.get("jit_pixels", math.inf) <= _tuning.PIXELS_TEAM_MARGIN * min(costs.values())
    )
    if blocked is not None:
        across = _across(spec, channels_last, batch)
        # rule 7 yields to jit_blocked across the samples only at a margin of its own against jit_pixels' estimate
        yields = across and blocked <= _tuning.PIXELS_ACROSS_MARGIN * costs.get("jit_pixels", math.inf)
        if (not team_pixels or yields) and _blocked_first(blocked, costs, channels_last, across):
            return "jit_blocked"
    if not team_pixels and "jit_direct" in costs and direct_twin(spec) is not None:  # rule 4
        direct = costs.pop("jit_direct")
        if not costs or direct <= _tuning.TWIN_DIRECT_MARGIN * min(costs.values()):
            return "jit_direct"
    twins = {name: costs.pop(name) for name in _TWINS if name in costs}  # the twins by rule 5 only, never by 8
    rest = min(costs.values(), default=None)
    # a Winograd twin, if still here, has met its margin against the same rest
    qualified = [
        name for name in twins if name in _WINOGRADS or rest is None or twins[name] <= _tuning.TWIN_MARGIN * rest
    ]
    if qualified and not team_pixels:
        return min(qualified, key=lambda name: twins[name])
    pixels = costs.get("jit_pixels")
    if (
        channels_last
        and "jit_pixels" not in avoided
        and spec.groups == 1
        and spec.out_channels >= _tuning.PIXELS_MIN_CHANNELS
        and (pixels is None or pixels <= _tuning.PIXELS_MARGIN * min(costs.values()))
    ):
        return "jit_pixels"
    if team_pixels:
        return "jit_pixels"
    return min(costs, key=lambda name: costs[name])  # never empty: with no rest, every twin qualified above


def _across(spec: ConvSpec, channels_last: bool, batch: int) -> bool:
    """Whether ``jit_blocked`` runs the call (a stride-1 transposed one: its forward twin) in blocks across the
    samples (:func:`~tconv.implementations.compiled.blocked.runs_across`)."""
    twin = convolution_computed(spec)
    return twin is not None and blocked_sums.runs_across(twin, channels_last, batch)


def _blocked_first(blocked: float, costs: dict[str, float], channels_last: bool, across: bool = False) -> bool:
    """Rules 3 and 4's question for ``jit_blocked``: whether its estimate is at most ``BLOCKED_MARGIN``
    (channels-first ``BLOCKED_FIRST_MARGIN``, and only under ``BLOCKED_FIRST_MAX_SECONDS`` unless it runs
    ``across`` the samples: on larger calls along the rows x's copy and the output's writes decide; across the
    samples both are copies by tiles, which its estimate counts) of every other estimate still ranked; always where
    none is."""
    if not costs:
        return True
    if not channels_last and not across and blocked > _tuning.BLOCKED_FIRST_MAX_SECONDS:
        return False
    margin = _tuning.BLOCKED_MARGIN if channels_last else _tuning.BLOCKED_FIRST_MARGIN
    return blocked <= margin * min(costs.values())


def _dots_first(
    dots: float, blocked: float | None, costs: dict[str, float], channels_last: bool, across: bool = False
) -> bool:
    """Rule 3's first question: whether ``jit_dots``' estimate plus its call's own cost (``FORWARD_CALL_COST``) is
    under ``DOTS_MAX_SECONDS`` and at most ``DOTS_MARGIN`` of every other estimate still ranked plus theirs
    (``jit_blocked``'s where rule 3 would weigh it: channels-first only under ``BLOCKED_FIRST_MAX_SECONDS`` or
    ``across`` the samples)."""
    calls = _tuning.FORWARD_CALL_COST
    others = {name: cost + calls.get(name, _tuning.FORWARD_CALL_COST_OTHERS) for name, cost in costs.items()}
    if blocked is not None and (channels_last or across or blocked <= _tuning.BLOCKED_FIRST_MAX_SECONDS):
        others["jit_blocked"] = blocked + calls.get("jit_blocked", _tuning.FORWARD_CALL_COST_OTHERS)
    own = dots + calls.get("jit_dots", 0.0)
    if own > _tuning.DOTS_MAX_SECONDS:
        return False
    return not others or own <= _tuning.DOTS_MARGIN * min(others.values())


def select(
    spec: ConvSpec, xp: Any, channels_last: bool = False, batch: int = 1, itemsize: int = 4
) -> registry.Algorithm:
    """The algorithm for one call of ``batch`` samples of ``itemsize``-byte elements: the forced one, or the
    planner's among those not avoided."""
    algorithm, avoided = registry.forced(), registry.avoided()
    if algorithm is not None:
        if algorithm.name in avoided:
            raise ValueError(
                f"the forced algorithm {algorithm.name!r} is also avoided "
                f"(avoid_algorithms: {', '.join(sorted(avoided))})"
            )
        if not algorithm.supports(spec, xp):
            raise ValueError(f"the forced algorithm {algorithm.name!r} does not support this call ({spec})")
        return algorithm
    # Would the compiled path run this call on a thread team? The question its schedule asks of the pixel
    # path's columns: C_out channels of prod(input) * prod(k) elements per sample. The pixel rule holds for
    # batched teams; a batch smaller than the team (cut over channels) keeps the cost model's choice.
    pair = itemsize * math.prod(spec.input_size) * math.prod(spec.kernel_size)
    threads = schedule.team_threads(batch, spec.out_channels, pair, schedule.Cut.CHANNELS)
    team = threads > 1 and batch >= threads
    compiled = registry.get("jit_gemm").supports(spec, xp)  # jit_gemm runs every call the kernels can
    name = plan(spec, compiled, channels_last, team, batch, avoided)
    if name is not None:
        return registry.get(name)
    # gemm and taps avoided, and every compiled algorithm the cost model ranks: any other that runs the call
    for name in registry.algorithms():
        if name not in avoided and registry.get(name).supports(spec, xp):
            return registry.get(name)
    raise ValueError(
        f"avoid_algorithms leaves no algorithm that runs this call ({spec}); avoided: {', '.join(sorted(avoided))}"
    )
