"""Helpers shared by the framework front ends: layouts, weight conversion, output extension.

The front ends translate a framework's arguments into tconv's core arguments and
call :func:`tconv.conv` / :func:`tconv.conv_transpose`; nothing here computes a
convolution or an output size of its own (those come from :mod:`tconv.shapes`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from .._backend import Array

TRANSPOSED_LAYOUTS = {
    "torch": "(in, out/groups, *k)",
    "onnx": "(in, out/groups, *k)",
    "paddle": "(in, out/groups, *k)",
    "tensorflow": "(*k, out, in)",
    "keras": "(*k, out, in)",
    "jax": "(*k, in, out), spatially flipped (lax.conv_transpose with transpose_kernel=False)",
}
FORWARD_LAYOUTS = {
    "torch": "(out, in/groups, *k)",
    "onnx": "(out, in/groups, *k)",
    "paddle": "(out, in/groups, *k)",
    "tensorflow": "(*k, in/groups, out)",
    "keras": "(*k, in/groups, out)",
    "jax": "(*k, in/groups, out) (HWIO)",
}
FRAMEWORKS = tuple(TRANSPOSED_LAYOUTS)


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
    values = ints(value, name)
    if len(values) == 1:
        return values * ndim
    if len(values) != ndim:
        raise ValueError(f"{name} must be an int or a sequence of {ndim} ints; received {value!r}")
    return values


def flip_spatial(xp: Any, w: Array, spatial_axes: Sequence[int]) -> Array:
    return xp.flip(w, axis=tuple(spatial_axes))


def convert_weight(w: Array, source: str, target: str, *, transposed: bool = True, groups: int = 1) -> Array:
    """Convert a weight between the frameworks' layouts.

    Transposed convolutions: PyTorch, ONNX and Paddle store ``(in, out/groups, *k)``;
    TensorFlow and Keras ``(*k, out, in)``; JAX's ``lax.conv_transpose`` with its
    default ``transpose_kernel=False`` wants ``(*k, in, out)`` *spatially flipped*
    (it correlates instead of scattering; with ``transpose_kernel=True`` it takes
    the Keras layout). Forward convolutions: PyTorch, ONNX, Paddle
    ``(out, in/groups, *k)``; TensorFlow, Keras and JAX (HWIO) ``(*k, in/groups, out)``.

    Parameters
    ----------
    w : array
        The weight, in ``source``'s layout; any array library.
    source, target : str
        One of ``'torch'``, ``'onnx'``, ``'paddle'``, ``'tensorflow'``, ``'keras'``, ``'jax'``.
    transposed : bool
        Whether ``w`` belongs to a transposed convolution.
    groups : int
        The layer's groups. TensorFlow, Keras and JAX transposed convolutions have
        none, so a grouped transposed weight cannot be converted to them.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.zeros((8, 4, 5, 5))              # PyTorch ConvTranspose2d(8, 4, 5)
    >>> convert_weight(w, "torch", "keras").shape
    (5, 5, 4, 8)
    >>> convert_weight(np.zeros((4, 8, 3)), "torch", "tensorflow", transposed=False).shape
    (3, 8, 4)
    """
    for name, value in (("source", source), ("target", target)):
        if value not in FRAMEWORKS:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, FRAMEWORKS))}; received {value!r}")
    xp = namespace(w)
    w = as_array(xp, w)
    if w.ndim < 3:
        raise ValueError(f"w must have at least one spatial axis (ndim >= 3); received shape {tuple(w.shape)}")
    d = w.ndim - 2
    channels_last_src = source in ("tensorflow", "keras", "jax")
    if transposed and groups != 1 and (channels_last_src or target in ("tensorflow", "keras", "jax")):
        raise ValueError(
            f"TensorFlow, Keras and JAX transposed convolutions have no groups; received groups={groups}. "
            "Run one transposed convolution per group and concatenate the results instead."
        )
    # To the canonical PyTorch layout: (A, B, *k).
    if channels_last_src:
        canon = xp.permute_dims(w, (d + 1, d, *range(d)))  # (*k, P, Q) -> (Q, P, *k)
        if transposed and source == "jax":
            # (*k, in, out) flipped -> (out, in, *k) flipped -> (in, out, *k)
            canon = flip_spatial(xp, xp.permute_dims(canon, (1, 0, *range(2, d + 2))), range(2, d + 2))
    else:
        canon = w
    if target in ("tensorflow", "keras", "jax"):
        if transposed and target == "jax":
            flipped = flip_spatial(xp, canon, range(2, d + 2))  # (in, out, *k) flipped
            return xp.permute_dims(flipped, (*range(2, d + 2), 0, 1))  # -> (*k, in, out)
        return xp.permute_dims(canon, (*range(2, d + 2), 1, 0))  # (Q, P, *k) -> (*k, P, Q)
    return canon


def layout_axes(data_format: str, ndim: int, name: str = "data_format") -> bool:
    """Whether a framework's data_format string is channels-last."""
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
