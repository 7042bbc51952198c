"""Helpers the framework modules share: the array namespace of an argument, integer lists, data formats.

The framework modules translate a framework's arguments into tconv's core arguments and
call :func:`tconv.conv` / :func:`tconv.conv_transpose`; nothing here computes a
convolution or an output size of its own (those come from :mod:`tconv.shapes`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from .._arguments import ints_per_axis
from .._backend import Array


def namespace(a: Any) -> Any:
    """The array namespace of ``a`` (NumPy's for a plain sequence)."""
    if array_api_compat.is_array_api_obj(a):
        return array_api_compat.array_namespace(a)
    return array_api_compat.array_namespace(np.empty(0))


def as_array(xp: Any, a: Any) -> Array:
    return a if array_api_compat.is_array_api_obj(a) else xp.asarray(a)


def ints(value: Any, name: str) -> tuple[int, ...]:
    """A framework's list/tuple of ints (or one int) as a tuple, with a clear error."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a sequence of ints; received {value!r}")
    if not isinstance(value, (Sequence, int)) and hasattr(value, "__array__"):
        # A NumPy array or a framework's tensor (TensorFlow takes output_shape and strides as tensors).
        array = np.asarray(value)
        if array.ndim > 1 or not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name} must be an int or a 1-D array of ints; received {value!r}")
        value = array.tolist()
    seq = list(value) if isinstance(value, Sequence) else [value]
    try:
        return tuple(operator.index(v) for v in seq)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints; received {value!r}") from None


def per_axis(value: Any, ndim: int, name: str, default: int | None = None) -> tuple[int, ...]:
    """An int, or a sequence of 1 or ``ndim`` ints, as ``ndim`` ints (``None`` gives ``default``).

    Examples
    --------
    >>> per_axis(2, 3, "stride"), per_axis([1, 2], 2, "stride"), per_axis(None, 2, "dilation", 1)
    ((2, 2, 2), (1, 2), (1, 1))
    """
    if value is None and default is not None:
        return (default,) * ndim
    return ints_per_axis(value, ndim, name, broadcast_one=True)


def spatial_pairs(pairs: Sequence[tuple[int, ...]], padding: Any, channels_last: bool) -> tuple[tuple[int, int], ...]:
    """The spatial ``(before, after)`` pairs of a padding given for every dimension (``pairs``, read from
    ``padding``); the batch's and the channels' must be ``(0, 0)``."""
    outer = (pairs[0], pairs[-1]) if channels_last else (pairs[0], pairs[1])
    if outer != ((0, 0), (0, 0)):
        raise ValueError(f"padding on the batch and channel dimensions must be 0; received {padding!r}")
    spatial = pairs[1:-1] if channels_last else pairs[2:]
    return tuple((p[0], p[1]) for p in spatial)


def is_channels_last(data_format: str, ndim: int, name: str = "data_format") -> bool:
    """Whether a framework's ``data_format`` string (``'NHWC'``, ``'channels_first'``, ...) is channels-last.

    Examples
    --------
    >>> is_channels_last("NHWC", 2), is_channels_last("channels_first", 3)
    (True, False)
    """
    spatial = {1: ("W", "L"), 2: ("HW",), 3: ("DHW",)}.get(ndim, ())
    if not isinstance(data_format, str):
        raise TypeError(f"{name} must be a string; received {data_format!r}")
    fmt = data_format.upper()
    if fmt == "CHANNELS_LAST":
        return True
    if fmt == "CHANNELS_FIRST":
        return False
    for letters in spatial:
        if fmt == f"N{letters}C":
            return True
        if fmt == f"NC{letters}":
            return False
    expected = " or ".join(f"'N{s}C', 'NC{s}'" for s in spatial) or "'channels_last' or 'channels_first'"
    raise ValueError(f"{name} must be {expected} for {ndim} spatial axes; received {data_format!r}")


def refuse_integers(behaviour: str, *arrays: Any) -> None:
    """Refuse integer arrays with a ``TypeError`` that says what the framework does with them.

    tconv computes in floating point only (its kernels accumulate in the input's float dtype): an integer
    convolution would need an exact accumulator and the framework's overflow rule, which tconv does not
    imitate. ``behaviour`` names the framework's own rule, e.g. ``"tf.nn.conv2d computes int32 on the CPU"``.
    """
    for a in arrays:
        dtype = getattr(a, "dtype", None)
        try:
            integer = dtype is not None and np.issubdtype(np.dtype(getattr(dtype, "name", str(dtype))), np.integer)
        except TypeError:  # torch's dtypes have no name: torch.int64
            integer = str(dtype).startswith(("torch.int", "torch.uint"))
        if integer:
            raise TypeError(
                f"integer inputs are not supported: {behaviour}, but tconv computes in floating point only; "
                f"received dtype {dtype}. Cast to float64 first (exact while every sum stays below 2**53) and "
                "round the result back if you need integers."
            )
