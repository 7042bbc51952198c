"""Array-library plumbing: which namespace computes, with which dtype, on which device.

Array type in equals array type out: the namespace comes from the arrays the
caller passed (through array-api-compat), and the result is made by that
library, on the input's device. Nothing is silently converted to NumPy; plain
Python sequences are the only thing converted, into the namespace of the
arrays they accompany (NumPy when there are none).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

Array = Any


class Prepared(NamedTuple):
    """The checked arrays of one call and the namespace that computes with them."""

    xp: Any
    x: Array
    weight: Array
    bias: Array | None
    grad_output: Array | None
    dtype: Any
    compute_dtype: Any


# Array kinds that a package above the operations computes (tconv.dask registers Dask arrays when tconv is
# imported): (is_kind, handler). The operations ask `handled_elsewhere` first and hand such calls over whole;
# a handler has the methods conv, conv_transpose, conv_grad and conv_transpose_grad with the public signatures.
_ELSEWHERE: list[tuple[Callable[[Any], bool], Any]] = []


def register_array_kind(is_kind: Callable[[Any], bool], handler: Any) -> None:
    """Hand every call with an array for which ``is_kind(array)`` is true to ``handler``."""
    _ELSEWHERE.append((is_kind, handler))


def handled_elsewhere(*arrays: Any) -> Any:
    """The handler registered for the kind of one of ``arrays``, or ``None`` (compute here)."""
    for is_kind, handler in _ELSEWHERE:
        if any(a is not None and is_kind(a) for a in arrays):
            return handler
    return None


def _native(name: str, value: Any) -> Any:
    """A NumPy array in a byte order or precision the kernels cannot compute in: a big-endian float16/32/64
    array as the same values in native order; an extended-precision one (float96/float128) refused, naming
    the dtype. Anything else as it is."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        return value
    if value.dtype.itemsize > 8:
        raise TypeError(
            f"{name} must have dtype float16, float32 or float64; received {name} of dtype {value.dtype} "
            f"(extended precision, which tconv does not compute in). Cast it first, e.g. {name}.astype(np.float64)."
        )
    return value if value.dtype.isnative else value.astype(value.dtype.newbyteorder("="))


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


class _NumpyNamespace:
    """array-api-compat's NumPy namespace, imported when a call first asks it for a function.

    Why: importing ``array_api_compat.numpy`` takes about 0.08 s (it walks all of NumPy's names, which imports
    NumPy's lazily loaded submodules), and the compiled path asks the namespace for nothing on most calls, so a
    process's first call on NumPy arrays need not wait for it. The name is the module's, so that
    ``array_api_compat.is_numpy_namespace`` recognises it. A name, once asked for, is kept on the object."""

    __name__ = "array_api_compat.numpy"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and the like probe dunders: not the namespace's to answer
            raise AttributeError(name)
        import array_api_compat.numpy as namespace

        value = getattr(namespace, name)
        setattr(self, name, value)
        return value

    def __repr__(self) -> str:
        return "<array_api_compat.numpy, imported on first use>"


@functools.cache
def _numpy_namespace() -> Any:
    return _NumpyNamespace()


def _plain_numpy(dtype: Any, *arrays: Any) -> bool:
    """Whether every one of ``arrays`` that is given is a NumPy ndarray (not a subclass) of ``dtype``, itself
    a native-order float32 or float64: with x and the weight such ndarrays, the common call, which needs none
    of :func:`prepare`'s conversions and passes all its checks."""
    if dtype.char not in "fd" or not dtype.isnative:
        return False
    return all(a is None or (type(a) is np.ndarray and a.dtype == dtype) for a in arrays)


def plain_numpy_call(x: Any, weight: Any, bias: Any, grad_output: Any = None) -> Prepared | None:
    """:func:`prepare`'s result where x and the weight are NumPy ndarrays (no subclass) and every array given is
    of one native float32 or float64 dtype, the common call, which needs none of its conversions and passes all
    its checks; else None (:func:`prepare` has work to do)."""
    if type(x) is np.ndarray and type(weight) is np.ndarray and _plain_numpy(x.dtype, weight, bias, grad_output):
        return Prepared(_numpy_namespace(), x, weight, bias, grad_output, x.dtype, x.dtype)
    return None


def prepare(x: Any, weight: Any, bias: Any, grad_output: Any = None) -> Prepared:
    """Find the common namespace, convert sequences, and check dtypes and devices."""
    if (plain := plain_numpy_call(x, weight, bias, grad_output)) is not None:
        return plain
    for name, value in (("x", x), ("weight", weight)):
        if value is None:
            raise TypeError(f"{name} must be an array; received None")
    named = {"x": x, "weight": weight, "bias": bias, "grad_output": grad_output}
    named = {name: _native(name, value) for name, value in named.items()}
    arrays = {k: v for k, v in named.items() if v is not None and array_api_compat.is_array_api_obj(v)}
    if arrays:
        try:
            xp = array_api_compat.array_namespace(*arrays.values())
        except TypeError:
            kinds = ", ".join(f"{k}: {_type_name(v)}" for k, v in arrays.items())
            raise TypeError(
                f"{', '.join(arrays)} must come from the same array library; received {kinds}. "
                "Convert them to one library first (tconv never converts between libraries silently)."
            ) from None
    else:
        xp = array_api_compat.array_namespace(np.empty(0))

    template = next(iter(arrays.values()), None)
    converted = {}
    for name, value in named.items():
        if value is None or name in arrays:
            converted[name] = value
            continue
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be an array; received the string {value!r}")
        try:
            kwargs: dict[str, Any] = {}
            if template is not None:
                kwargs["device"] = array_api_compat.device(template)
                if xp.isdtype(template.dtype, "real floating"):
                    kwargs["dtype"] = template.dtype
            converted[name] = xp.asarray(value, **kwargs)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name} must be an array or a nested sequence of numbers; received {_type_name(value)} ({err})"
            ) from None

    x = converted["x"]
    for name in named:
        value = converted[name]
        if value is None:
            continue
        if not xp.isdtype(value.dtype, "real floating"):
            raise TypeError(
                f"{name} must have a real floating dtype (float16, float32 or float64); received "
                f"dtype {value.dtype}. Cast it first, e.g. {name}.astype(float32) or "
                f"torch's {name}.float()."
            )
    others = [name for name in named if name != "x"]
    for name in others:
        value = converted[name]
        if value is not None and value.dtype != x.dtype:
            raise TypeError(
                f"{name} must have the dtype of x; received {name} of dtype {value.dtype} with x of dtype "
                f"{x.dtype}. Cast one of them so that both match."
            )
    # A traced JAX array (under vmap, jit or a grad of a grad) has no device yet: nothing to compare then.
    device = array_api_compat.device(x)
    for name in others:
        value = converted[name]
        if value is None or device is None or array_api_compat.device(value) is None:
            continue
        if array_api_compat.device(value) != device:
            raise ValueError(
                f"{name} must be on the device of x; received {name} on {array_api_compat.device(value)} "
                f"with x on {device}"
            )
    compute_dtype = xp.float32 if xp.finfo(x.dtype).bits < 32 else x.dtype
    return Prepared(xp, x, converted["weight"], converted["bias"], converted["grad_output"], x.dtype, compute_dtype)


def add_into(xp: Any, out: Array, index: tuple[Any, ...], values: Array) -> Array:
    """``out[index] += values``, in place where the library allows it, functionally otherwise (JAX)."""
    if array_api_compat.is_jax_array(out):
        return out.at[index].add(values)
    out[index] += values
    return out


def extend(xp: Any, out: Array, axis: int, before: int, after: int) -> Array:
    """``out`` with ``before``/``after`` zeros added along ``axis``; negative amounts crop instead.

    The one crop-or-extend helper: a framework front end extends an output its framework pads with
    zeros, and a translated layer crops (negative) what its target computes beyond the wanted output.

    Examples
    --------
    >>> import numpy as np
    >>> xp = array_api_compat.array_namespace(np.empty(0))
    >>> extend(xp, np.array([1.0, 2.0, 3.0]), 0, 1, -1)
    array([0., 1., 2.])
    """
    if before < 0:
        out = out[(slice(None),) * axis + (slice(-before, None),)]
        before = 0
    if after < 0:
        out = out[(slice(None),) * axis + (slice(0, out.shape[axis] + after),)]
        after = 0
    parts = []
    for amount in (before, None, after):
        if amount is None:
            parts.append(out)
        elif amount > 0:
            shape = list(out.shape)
            shape[axis] = amount
            parts.append(xp.zeros(tuple(shape), dtype=out.dtype, device=array_api_compat.device(out)))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=axis)
