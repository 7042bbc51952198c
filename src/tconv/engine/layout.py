"""The caller's side of a call: the compute dtype, the batch axis, and the result handed back."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .._backend import Array, Prepared


def cast(xp: Any, a: Array, dtype: Any) -> Array:
    """``a`` in ``dtype``: ``a`` itself when it already is (the array API's astype copies by default, and a
    copy of a large weight on every call costs a noticeable share of the call)."""
    return a if a.dtype == dtype else xp.astype(a, dtype)


def finish(xp: Any, a: Array, dtype: Any) -> Array:
    """Cast back to the caller's dtype; hand NumPy callers a contiguous array."""
    if a.dtype != dtype:
        a = xp.astype(a, dtype)
    if type(a) is np.ndarray or array_api_compat.is_numpy_array(a):
        a = np.ascontiguousarray(a)
    return a


def computed(prepared: Prepared, a: Array, batched: bool) -> Array:
    """``a`` (x or the output gradient) in the compute dtype, with a batch axis."""
    xp = prepared.xp
    a = cast(xp, a, prepared.compute_dtype)
    return a if batched else xp.expand_dims(a, axis=0)


def compute_itemsize(prepared: Prepared) -> int:
    """Bytes per element in the compute dtype (float16 computes in float32), without casting anything."""
    if prepared.x.dtype != prepared.compute_dtype:
        return 4
    return int(getattr(prepared.x.dtype, "itemsize", 4))
