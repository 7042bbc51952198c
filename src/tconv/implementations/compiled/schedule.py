"""How the compiled path cuts a call into chunks, and whether it runs them on a thread team.

:func:`team_threads` is the one decision "does this call run on a team?": the schedules below ask it, and
so does the planner (:func:`tconv.engine.planner.select`), so that a plan made for a team is never run
without one. The work of a call is ``batch x channels`` pairs of ``bytes_per_pair`` column bytes; how a
batch smaller than the team may be cut is the :class:`Cut`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import TypeVar

from ... import _tuning
from . import team

T = TypeVar("T")


class Cut(enum.Enum):
    """How a call's work may be divided among a team's threads below whole samples."""

    #: into blocks of (output) channels, independent of each other: any batch (transposed products)
    CHANNELS = "channels"
    #: whole samples only (an im2col's channel blocks are summed in order, on one thread): a batch of at least
    #: the team, each sample's columns within one team chunk
    SAMPLES = "samples"
    #: a batch smaller than the team into blocks of pixels, each thread keeping every channel (the gradients
    #: of a transposed convolution, channels-first); a larger batch as SAMPLES
    PIXELS = "pixels"


def team_threads(batch: int, channels: int, bytes_per_pair: int, cut: Cut = Cut.CHANNELS) -> int:
    """The threads a call runs on: :func:`tconv.implementations.compiled.team.size` when its columns are
    ``_tuning.TEAM_MIN_BYTES`` or more and each thread's products keep ``_tuning.TEAM_MIN_CHANNELS`` rows or
    more (a batch smaller than the team cut over channels shares them out), as ``cut`` allows; else 1."""
    threads = team.size()
    if threads <= 1 or batch * channels * bytes_per_pair < _tuning.TEAM_MIN_BYTES:
        return 1
    if cut is Cut.CHANNELS:
        share = max(1, -(-threads // max(batch, 1)))  # the blocks of channels each sample is cut into
        return threads if channels >= _tuning.TEAM_MIN_CHANNELS * share else 1
    if channels < _tuning.TEAM_MIN_CHANNELS:
        return 1
    if batch < threads:
        return threads if cut is Cut.PIXELS else 1
    return threads if channels * bytes_per_pair <= _tuning.TEAM_CHUNK_BYTES else 1


def even_step(batch: int, most: int, multiple: int = 1) -> int:
    """The batch step that splits ``batch`` into as few chunks of at most ``most`` samples as possible (their
    count rounded up to a multiple of ``multiple``, the team's threads), of nearly equal sizes (64 samples in
    chunks of 49 would leave one of 15)."""
    chunks = max(1, -(-batch // most))
    chunks = max(1, min(batch, -(-chunks // multiple) * multiple))
    return max(1, -(-batch // chunks))


def chunks(
    batch: int, channels: int, bytes_per_pair: int, budget: int | None = None, threads: int = 1
) -> list[tuple[int, int, int, int]]:
    """(n0, n1, c0, c1) blocks whose buffer (``bytes_per_pair`` per sample and channel) fits ``budget``
    (``_tuning.CHUNK_BYTES`` by default), in a multiple of ``threads`` blocks where the batch allows."""
    budget = _tuning.CHUNK_BYTES if budget is None else budget
    per_sample = bytes_per_pair * channels
    if per_sample <= budget and batch >= threads:
        step = even_step(batch, max(1, budget // max(per_sample, 1)), threads)
        return [(n0, min(n0 + step, batch), 0, channels) for n0 in range(0, batch, step)]
    # One sample at a time, in blocks of channels: as many as the budget needs, and (a batch smaller than the
    # team) enough for every thread to have one.
    blocks = max(-(-per_sample // budget), -(-threads // batch))
    blocks = -(-blocks // threads) * threads if batch < threads else blocks
    cstep = min(even_step(channels, max(1, -(-channels // blocks))), max(1, budget // max(bytes_per_pair, 1)))
    return [(n, n + 1, c0, min(c0 + cstep, channels)) for n in range(batch) for c0 in range(0, channels, cstep)]


def schedule(batch: int, channels: int, bytes_per_pair: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """A transposed product's chunks and the threads to run them on: a team of ``_tuning.TEAM_CHUNK_BYTES``
    chunks when :func:`team_threads` says so (a batch smaller than the team in blocks of channels, one a thread
    or more), else ``_tuning.CHUNK_BYTES`` chunks one after the other (threads 1)."""
    threads = team_threads(batch, channels, bytes_per_pair, Cut.CHANNELS)
    if threads > 1:
        return chunks(batch, channels, bytes_per_pair, _tuning.TEAM_CHUNK_BYTES, threads), threads
    return chunks(batch, channels, bytes_per_pair), 1


def im2col_blocks(
    batch: int, groups: int, cg: int, bytes_per: int, budget: int | None = None, threads: int = 1
) -> list[tuple[int, int, int, int, int, int]]:
    """``(n0, n1, g0, g1, c0, c1)`` blocks of an im2col whose buffer (``bytes_per`` per sample and input
    channel) fits ``budget`` (``_tuning.CHUNK_BYTES`` by default): whole samples when one fits (in a multiple
    of ``threads`` blocks where the batch allows), else one sample, one group and a block of its channels
    at a time (the products over channel blocks are then summed)."""
    budget = _tuning.CHUNK_BYTES if budget is None else budget
    per_sample = groups * cg * bytes_per
    if per_sample <= budget:
        step = even_step(batch, max(1, budget // max(per_sample, 1)), threads)
        return [(n0, min(n0 + step, batch), 0, groups, 0, cg) for n0 in range(0, batch, step)]
    cstep = max(1, budget // max(bytes_per, 1))
    return [
        (n, n + 1, g, g + 1, c0, min(c0 + cstep, cg))
        for n in range(batch)
        for g in range(groups)
        for c0 in range(0, cg, cstep)
    ]


def im2col_schedule(
    batch: int, groups: int, cg: int, bytes_per: int, threads: int | None = None
) -> tuple[list[tuple[int, int, int, int, int, int]], int]:
    """An im2col's blocks and threads, as :func:`schedule`, for ``threads`` decided by :func:`team_threads`
    (whole samples only, unless the caller decided otherwise)."""
    if threads is None:
        threads = team_threads(batch, groups * cg, bytes_per, Cut.SAMPLES)
    if threads > 1:
        return im2col_blocks(batch, groups, cg, bytes_per, _tuning.TEAM_CHUNK_BYTES, threads), threads
    return im2col_blocks(batch, groups, cg, bytes_per), 1


def deal(sizes: Sequence[float], bins: int) -> list[list[int]]:
    """The indices of pieces of work of the given ``sizes`` dealt out to at most ``bins`` bins, the largest first
    to the least loaded bin (the first such), so that bins run by different threads finish together. The same
    sizes are dealt the same way on every call, which is what makes a sum a bin at a time reproducible (a
    thread's own partial would hold whichever pieces it happened to take from the team's queue). Bins left
    empty are dropped."""
    dealt: list[list[int]] = [[] for _ in range(max(1, bins))]
    loads = [0.0] * len(dealt)
    for index in sorted(range(len(sizes)), key=lambda i: sizes[i], reverse=True):
        least = loads.index(min(loads))
        dealt[least].append(index)
        loads[least] += sizes[index]
    return [b for b in dealt if b]


def each(work: Callable[[T], None], pieces: Sequence[T], threads: int) -> None:
    """``work(piece)`` for every piece: on a team of ``threads`` threads, or in order in this thread."""
    if threads > 1:
        team.run(work, pieces, threads)
    else:
        for piece in pieces:
            work(piece)


def each_dealt(
    work: Callable[[T, int], None], pieces: Sequence[T], threads: int, sizes: Sequence[float] | None = None
) -> None:
    """``work(piece, bin)`` for every piece, the pieces dealt to ``threads`` bins (:func:`deal`; ``sizes``, or
    all alike) and each bin's run on one thread in the order the pieces were given (a caller may rely on it: an
    im2col's channel blocks of one sample are summed in order): for sums kept a bin at a time
    (:class:`.workspace.Partials`), which then come out the same on every call."""
    bins = [sorted(dealt) for dealt in deal([1.0] * len(pieces) if sizes is None else sizes, threads)]

    def run(which: int) -> None:
        for index in bins[which]:
            work(pieces[index], which)

    each(run, range(len(bins)), threads)


__all__ = [
    "Cut",
    "chunks",
    "deal",
    "each",
    "each_dealt",
    "even_step",
    "im2col_blocks",
    "im2col_schedule",
    "schedule",
    "team_threads",
]
