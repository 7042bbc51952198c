"""How each framework reaches a wanted output size of a transposed convolution (``tconv shape --want``).

A wanted length ``want`` fixes how much of the full output ``(n-1)*s + d*(k-1) + 1`` a layer keeps, but not
*where*: the output is ``full[start : start + want]``, and two layers whose starts differ give the same size
shifted against each other (PyTorch's symmetric ``padding=2, output_padding=1`` starts at 2 where Keras's
``'same'`` starts at 1 for 7 -> 14 with kernel 5, stride 2). :func:`answers` asks every registered framework
for its own spellings (:meth:`tconv.frameworks.Framework.ways_to_size`, each checked by the framework's own
rules) and :func:`report_lines` writes them in the chosen framework's words, saying which other frameworks'
rules start elsewhere and, where the chosen framework has no one call for that start, the call and slice
that match it (the framework's :meth:`~tconv.frameworks.Framework.write`).

Examples
--------
>>> from tconv import ConvSpec
>>> spec = ConvSpec.build(transposed=True, input_size=(7,), kernel_size=(5,), in_channels=1, out_channels=1,
...                       stride=2, padding="valid")
>>> answer, = answers(spec, (14,))
>>> [(way.text, way.start) for way in answer.ways["keras"]]
[("padding='same'", 1), ("padding='same', output_padding=1", 1)]
>>> [(way.text, way.start) for way in answer.ways["torch"]]
[('padding=2, output_padding=1', 2)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import shapes
from ..frameworks import REGISTRY
from ..frameworks.base import SizeGoal, SizeWay
from ..spec import ConvSpec

__all__ = ["AxisAnswer", "answers", "report_lines", "size_goal"]


def size_goal(ndim: int, input_size: int, kernel_size: int, stride: int, dilation: int, want: int) -> SizeGoal:
    """One axis and its wanted length, with the symmetric solutions and one crop per possible start.

    Examples
    --------
    >>> goal = size_goal(1, 7, 5, 2, 1, 14)
    >>> goal.full_size, goal.solutions, goal.crops
    (17, ((2, 1),), ((0, 3, 0), (1, 2, 0), (2, 1, 0), (3, 0, 0)))
    """
    full = shapes.transposed_full_size(input_size, kernel_size, stride, dilation)
    solutions = tuple(
        shapes.solve_conv_transpose_padding(input_size, want, kernel_size, stride=stride, dilation=dilation)
    )
    if want <= full:
        crops = tuple((lo, full - want - lo, 0) for lo in range(full - want + 1))
    elif want - full < max(stride, dilation):
        crops = ((0, 0, want - full),)  # past the full output: output padding appends it
    else:
        crops = ()
    return SizeGoal(ndim, input_size, kernel_size, stride, dilation, want, solutions, crops)


@dataclass(frozen=True)
class AxisAnswer:
    """The axes sharing one goal, every framework's ways of reaching it, and the start of the layer as given
    (``None`` when the layer as given has another size)."""

    axes: tuple[int, ...]
    goal: SizeGoal
    ways: dict[str, list[SizeWay]]
    given_start: int | None

    def own_ways(self, framework: str) -> list[SizeWay]:
        """``framework``'s ways; for ``'tconv'``, tconv's own ``(lo, hi)`` padding, one per start."""
        if framework != "tconv":
            return self.ways[framework]
        return [
            SizeWay("tconv", f"padding=({lo}, {hi})" + (f", output_padding={op}" if op else ""), (lo, hi), op, True)
            for lo, hi, op in self.goal.crops
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "axes": list(self.axes),
            "want": self.goal.want,
            "full_output": self.goal.full_size,
            "given_start": self.given_start,
            "frameworks": {
                name: [
                    {
                        "arguments": way.text,
                        "crop": list(way.crop),
                        "output_padding": way.output_padding,
                        "start": way.start,
                        "explicit": way.explicit,
                    }
                    for way in ways
                ]
                for name, ways in self.ways.items()
            },
        }


def answers(spec: ConvSpec, want: Sequence[int]) -> list[AxisAnswer]:
    """Every framework's ways of giving ``spec``'s input the output size ``want``, per group of equal axes."""
    if not spec.transposed:
        raise ValueError(
            "--want is for transposed convolutions; for a convolution the table lists every input size "
            "giving its output"
        )
    if len(want) not in (1, spec.ndim):
        raise ValueError(f"--want must have 1 or {spec.ndim} sizes; received {'x'.join(map(str, want))}")
    wanted = tuple(want) * spec.ndim if len(want) == 1 else tuple(want)
    groups: dict[tuple[int, ...], list[int]] = {}
    for axis in range(spec.ndim):
        given = spec.padding[axis][0] if spec.output_size[axis] == wanted[axis] else -1
        key = (
            spec.input_size[axis],
            spec.kernel_size[axis],
            spec.stride[axis],
            spec.dilation[axis],
            wanted[axis],
            given,
        )
        groups.setdefault(key, []).append(axis)
    result = []
    for (n, k, s, d, w, given), axes in groups.items():
        if w < 1:
            raise ValueError(f"--want must be positive; received {w}")
        goal = size_goal(spec.ndim, n, k, s, d, w)
        ways = {name: framework.ways_to_size(goal) for name, framework in REGISTRY.items()}
        result.append(AxisAnswer(tuple(axes), goal, ways, None if given < 0 else given))
    return result


def _display(name: str) -> str:
    return REGISTRY[name].display_name if name in REGISTRY else name


def _matching_code(framework: str, answer: AxisAnswer, start: int, ndim: int) -> list[str]:
    """The call and slice with which ``framework`` gives the output starting at ``start``."""
    goal = answer.goal
    lo, hi, op = next(c for c in goal.crops if c[0] == start)
    count = ndim if len(answer.axes) == ndim else 1
    spec = ConvSpec.build(
        transposed=True,
        input_size=(goal.input_size,) * count,
        kernel_size=(goal.kernel_size,) * count,
        in_channels=1,
        out_channels=1,
        stride=goal.stride,
        padding=((lo, hi),) * count,
        output_padding=op,
        dilation=goal.dilation,
    )
    code = REGISTRY[framework].write(spec).code.splitlines()
    return [line for line in code if not line.startswith(("import ", "from ", "w = ", "#"))]


def report_lines(answer: AxisAnswer, framework: str, ndim: int) -> list[str]:
    """``answer`` in ``framework``'s words (``'tconv'`` for tconv's own), and where the others start."""
    goal, name = answer.goal, _display(framework)
    where = "every axis" if len(answer.axes) == ndim else "axis " + ", ".join(map(str, answer.axes))
    lines = [
        f"Reaching {goal.want} on {where} (full output {goal.full_size}; a layer's output is "
        f"full[start : start + {goal.want}], so ways with different starts are shifted against each other):"
    ]
    if not goal.crops:
        largest = goal.full_size + max(goal.stride, goal.dilation) - 1
        return [*lines, f"  no framework reaches {goal.want}: the largest output is {largest}"]
    own = answer.own_ways(framework)
    per_axis = " (values for one axis: give each axis its own)" if ndim > 1 else ""
    if own:
        lines.append(f"  in {name}'s words{per_axis}:")
        width = max(len(way.text) for way in own)
        for way in own:
            mark = "  <- the layer as given" if way.start == answer.given_start else ""
            extra = f" + output padding {way.output_padding}" if way.output_padding else ""
            lines.append(f"    {way.text:<{width}}  crop {way.crop}{extra}, start {way.start}{mark}")
    else:
        lines.append(f"  {name} has no one call giving {goal.want} here")
    starts = sorted({way.start for way in own})
    others: dict[int, list[str]] = {}
    for other, ways in answer.ways.items():
        if other == framework:
            continue
        for way in ways:
            if not way.explicit:
                others.setdefault(way.start, []).append(f"{_display(other)} {way.text}")
    if answer.given_start is not None and answer.given_start not in others and answer.given_start not in starts:
        others[answer.given_start] = ["the layer as given"]
    if not others and not own:
        middle = (goal.full_size - goal.want) // 2 if goal.want <= goal.full_size else 0
        others[middle] = ["the centred crop"]
    if others:
        lines.append("  the other frameworks' rules:")
    for start in sorted(others):
        names = "; ".join(others[start])
        if start in starts:
            lines.append(f"    start {start}, the same output: {names}")
            continue
        if starts:
            nearest = min(starts, key=lambda s: (abs(s - start), s))
            shift = start - nearest
            later = "later" if shift > 0 else "earlier"
            lines.append(
                f"    start {start}, SHIFTED {abs(shift)} element(s) {later} than {name}'s start {nearest}: {names}"
            )
        else:
            lines.append(f"    start {start}: {names}")
        if framework != "tconv":
            lines.append(f"      {name} has no one call starting at {start}; to match it:")
            lines.extend(f"        {line}" for line in _matching_code(framework, answer, start, ndim))
    return lines
