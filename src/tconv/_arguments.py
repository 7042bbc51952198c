"""The one reader of integer arguments given per spatial axis (``stride``, ``dilation``,
``output_padding``, ``output_size``, a framework's ``strides`` list, a layer's ``kernel_size``).

Every parser in tconv (:meth:`tconv.ConvSpec.build`, the per-axis helpers of :mod:`tconv.shapes`, the
framework front ends, the layers) reads such arguments here, so an argument means the same and is refused
with the same message wherever it is given.

Examples
--------
>>> ints_per_axis(2, 3, "stride", minimum=1)
(2, 2, 2)
>>> ints_per_axis([1, 2], 2, "dilation", minimum=1)
(1, 2)
>>> ints_per_axis([3], 2, "strides", minimum=1, broadcast_one=True)
(3, 3)
>>> import numpy as np
>>> ints_per_axis(np.array([2, 3]), 2, "stride", minimum=1)
(2, 3)
>>> ints_per_axis(np.int64(2), 2, "stride", minimum=1)
(2, 2)
>>> ints_per_axis(0, 2, "stride", minimum=1)
Traceback (most recent call last):
...
ValueError: stride must be a positive int or a sequence of 2 positive ints; received 0
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

__all__ = ["array_as_python", "as_int", "ints_per_axis", "plain_key", "plain_options_key", "remember"]


def as_int(value: Any, name: str, expected: str) -> int:
    """``value`` as an int (anything ``operator.index`` accepts, never a bool), else ``TypeError``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {expected}; received {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be {expected}; received {value!r}") from None


def array_as_python(value: Any) -> Any:
    """A NumPy (or other array-API) array as what it stands for in an argument: a 0-d array as its scalar, a
    1-d one as a tuple (``stride=np.array([2, 2])``), a 2-d one as a tuple of tuples (``padding=np.array([[1, 2],
    [0, 1]])``, one ``(lo, hi)`` pair per axis); anything else as it is. The entries stay what they are (NumPy
    integers are read by :func:`as_int`; floats are refused there)."""
    shape = getattr(value, "shape", None)
    if not isinstance(shape, tuple) or isinstance(value, (str, bytes, Sequence)) or len(shape) > 2:
        return value
    if not hasattr(value, "__index__") and len(shape) == 0:
        return value
    if len(shape) == 2:
        return tuple(tuple(value[i][j] for j in range(shape[1])) for i in range(shape[0]))
    return tuple(value[i] for i in range(shape[0])) if shape else value


def ints_per_axis(
    value: Any, ndim: int, name: str, *, minimum: int | None = None, broadcast_one: bool = False
) -> tuple[int, ...]:
    """An int, or a sequence of ``ndim`` ints (of 1 as well with ``broadcast_one``), as ``ndim`` ints.

    ``minimum`` (when given) is the smallest value accepted: 1 for strides, 0 for paddings.
    """
    kind = {None: "", 0: "non-negative ", 1: "positive "}.get(minimum, f">= {minimum} ")
    expected = f"a {kind}int or a sequence of {ndim} {kind}ints"
    value = array_as_python(value)
    if isinstance(value, tuple) and any(isinstance(v, tuple) for v in value):
        raise TypeError(f"{name} must be {expected}; received a 2-d array")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {expected}; received {value!r}")
    if isinstance(value, Sequence):
        if broadcast_one and len(value) == 1:
            value = value[0]
        elif len(value) != ndim:
            raise ValueError(
                f"{name} must be {expected} (one per spatial axis); received {tuple(value)!r} of length {len(value)}"
            )
    if isinstance(value, Sequence):
        values = tuple(as_int(v, name, expected) for v in value)
    else:
        values = (as_int(value, name, expected),) * ndim
    if minimum is not None and any(v < minimum for v in values):
        raise ValueError(f"{name} must be {expected}; received {value!r}")
    return values


_PLAIN_SCALARS = (int, bool, float, str, type(None))


def plain_key(value: Any) -> Any:
    """A hashable key that tells apart every argument value a parser could read differently, or None.

    Built from Python's own ints, bools, floats, strings, None, and tuples and lists of them (nested), with
    each value's exact type in the key (``True`` and ``1``, ``[1]`` and ``(1,)`` give different keys); None
    for anything else (NumPy scalars and arrays, other sequences), which is then parsed every time. A parser
    whose result depends only on its arguments' types and values may memoise its successful results under
    this key: the same key always parses to the same result, and a refused value is never stored.

    >>> plain_key((2, [1, 1], "same")) == plain_key((2, [1, 1], "same"))
    True
    >>> plain_key((True,)) == plain_key((1,))
    False
    >>> import numpy as np
    >>> plain_key((np.int64(2),)) is None
    True
    """
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return (kind, value)
    if kind is tuple or kind is list:
        items = []
        for item in value:
            item_kind = type(item)
            if item_kind in _PLAIN_SCALARS:  # the common case, without a call
                items.append((item_kind, item))
                continue
            key = plain_key(item)
            if key is None:
                return None
            items.append(key)
        return (kind, tuple(items))
    return None


def remember(table: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """Store ``value`` under ``key`` in a memo of parses, emptied first when it holds ``limit`` entries (so it never
    grows past them)."""
    if len(table) >= limit:
        table.clear()
    table[key] = value


def plain_options_key(options: dict[str, Any]) -> Any:
    """:func:`plain_key` of keyword arguments: one ``(name, key)`` per argument, or None when a value has none.

    >>> plain_options_key({"stride": 2, "padding": (1, 1)}) == plain_options_key({"stride": 2, "padding": (1, 1)})
    True
    >>> plain_options_key({"stride": True}) == plain_options_key({"stride": 1})
    False
    """
    items = []
    for name, value in options.items():
        key = plain_key(value)
        if key is None:
            return None
        items.append((name, key))
    return tuple(items)
