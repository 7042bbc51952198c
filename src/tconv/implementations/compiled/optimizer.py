"""Adam's update in one pass over a parameter (:class:`tconv.nn.Adam`'s step where numba is installed).

NumPy runs Adam's update as thirteen passes over the parameter and a fourteenth for the new value (the moments in
place, two scratch arrays); on the DCGAN generator's 2.3 million weights that was about 5 ms of a training step.
The loop below does the same operations, in the same order and precision, element by element: each is rounded as
NumPy rounds it (no fused multiply-add, no reassociation), so the moments and the new value are NumPy's to the bit.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import kernels

__all__ = ["adam_step", "supports"]


def supports(value: np.ndarray, grad: np.ndarray, m: Any, v: Any) -> bool:
    """Whether :func:`adam_step` takes these arrays: float32 or float64, all four of one dtype and shape, each
    contiguous, with numba available."""
    arrays = (value, grad, m, v)
    return (
        kernels.available()
        and all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in arrays)
        and value.dtype in (np.float32, np.float64)
        and all(a.dtype == value.dtype and a.shape == value.shape for a in arrays)
    )


def adam_step(
    value: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    betas: tuple[float, float],
    lr: float,
    eps: float,
    t: int,
) -> np.ndarray:
    """The new value of a parameter after Adam's step ``t`` (``t >= 2``: the moments hold the earlier steps),
    the moments ``m`` and ``v`` updated in place. Per element, in the parameter's dtype: ``m = m*b1 +
    (1-b1)*g``, ``v = v*b2 + ((1-b2)*g)*g``, ``value - ((m / (1-b1^t)) * lr) / (sqrt(v / (1-b2^t)) + eps)``,
    every constant first rounded to the dtype, as NumPy's scalar arithmetic on these arrays does."""
    b1, b2 = betas
    constants = np.array([1 - b1, 1 - b2, b1, b2, 1 - b1**t, lr, 1 - b2**t, eps], dtype=value.dtype)
    out = np.empty_like(value)
    _kernel()(value.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), out.reshape(-1), constants)
    return out


@functools.cache
def _kernel() -> Any:
    def adam(value, grad, m, v, out, c):  # type: ignore[no-untyped-def]
        one_b1, one_b2, b1, b2, bias1, lr, bias2, eps = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
        for i in range(value.shape[0]):
            g = grad[i]
            mi = m[i] * b1 + one_b1 * g
            vi = v[i] * b2 + (one_b2 * g) * g
            m[i] = mi
            v[i] = vi
            out[i] = value[i] - ((mi / bias1) * lr) / (np.sqrt(vi / bias2) + eps)

    # no contraction, reassociation or approximation; NumPy's error model: a division by zero gives inf or NaN as
    # in NumPy (Python's raises, and its test per element kept the loop scalar, 10x slower)
    return kernels.compile_kernel(adam, fastmath=False, error_model="numpy")
