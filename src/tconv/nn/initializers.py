"""Weight initializers, by Keras's names and rules.

An initializer is called with the weight's shape *in Keras's layout* (a
convolution kernel ``(*k, in/groups, out)``, a transposed one ``(*k, out, in)``,
a dense kernel ``(in, out)``) and the generator to draw from; fans follow
Keras: ``receptive = prod(shape[:-2])``, ``fan_in = shape[-2] * receptive``,
``fan_out = shape[-1] * receptive``.

Examples
--------
>>> import numpy as np
>>> from tconv.nn import initializers
>>> w = initializers.get("bilinear")((4, 4, 1, 1), np.random.default_rng(0))
>>> w[:, :, 0, 0]
array([[0.0625, 0.1875, 0.1875, 0.0625],
       [0.1875, 0.5625, 0.5625, 0.1875],
       [0.1875, 0.5625, 0.5625, 0.1875],
       [0.0625, 0.1875, 0.1875, 0.0625]])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "Bilinear",
    "Constant",
    "Initializer",
    "TorchDefault",
    "VarianceScaling",
    "bilinear_kernel",
    "constant",
    "fans",
    "get",
]

# Keras's truncated normal keeps draws within two standard deviations; this is the
# standard deviation of a unit normal truncated there, by which Keras divides.
_TRUNCATED_STD = 0.87962566103423978


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras's ``(fan_in, fan_out)`` of a weight of ``shape`` in Keras's layout.

    >>> fans((5, 5, 64, 128))
    (1600, 3200)
    """
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``initializer(shape, rng) -> numpy.ndarray`` (float64; layers cast)."""

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class Constant(Initializer):
    """Every entry ``value`` (``zeros``, ``ones`` and ``constant``)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return np.full(shape, self.value)

    def __repr__(self) -> str:
        return f"Constant({self.value})"


class VarianceScaling(Initializer):
    """Keras's VarianceScaling: variance ``scale / n`` with ``n`` from ``mode``.

    ``distribution`` is ``'uniform'`` (limit ``sqrt(3 * scale / n)``) or
    ``'truncated_normal'`` (within two standard deviations, rescaled so that
    the standard deviation after truncation is ``sqrt(scale / n)``).
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal") -> None:
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg'; received {mode!r}")
        if distribution not in ("uniform", "truncated_normal"):
            raise ValueError(f"distribution must be 'uniform' or 'truncated_normal'; received {distribution!r}")
        if scale <= 0:
            raise ValueError(f"scale must be positive; received {scale}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, size=shape)
        std = math.sqrt(variance) / _TRUNCATED_STD
        draws = rng.standard_normal(size=shape)
        bad = np.abs(draws) > 2
        while bad.any():  # redraw outside two standard deviations, as a truncated normal does
            draws[bad] = rng.standard_normal(size=int(bad.sum()))
            bad = np.abs(draws) > 2
        return draws * std

    def __repr__(self) -> str:
        return f"VarianceScaling(scale={self.scale}, mode={self.mode!r}, distribution={self.distribution!r})"


class TorchDefault(Initializer):
    """PyTorch's default for convolutions and ``Linear``: uniform within ``1/sqrt(fan_in)``.

    (``kaiming_uniform_(a=sqrt(5))`` reduces to that bound.) PyTorch's fan_in is
    ``weight.shape[1] * prod(k)`` of its own layout, which is ``in/groups`` for a
    convolution and ``out/groups`` for a transposed one; it is given explicitly.
    """

    def __init__(self, fan_in: int) -> None:
        self.fan_in = int(fan_in)

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        bound = 1.0 / math.sqrt(self.fan_in) if self.fan_in > 0 else 0.0
        return rng.uniform(-bound, bound, size=shape)


def bilinear_kernel(size: int) -> np.ndarray:
    """The 1-D bilinear-interpolation taps of a ``size`` kernel, as FCN initialises its upsampling layers.

    >>> bilinear_kernel(4)
    array([0.25, 0.75, 0.75, 0.25])
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1 - np.abs(np.arange(size) - center) / factor


class Bilinear(Initializer):
    """Bilinear upsampling for a transposed convolution with kernel ``2s`` (or ``2s - s % 2``), stride ``s``.

    Channel ``i`` maps to channel ``i`` through the separable bilinear kernel;
    other pairs get zeros. With kernel 4, stride 2 and padding 1 the layer
    reproduces bilinear interpolation (half-pixel centres) away from the border.
    """

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        if len(shape) < 3:
            raise ValueError(f"the bilinear initializer is for convolution kernels; received shape {shape}")
        spatial = shape[:-2]
        taps = np.ones(())
        for size in spatial:
            taps = np.multiply.outer(taps, bilinear_kernel(size))
        out = np.zeros(shape)
        for i in range(min(shape[-2], shape[-1])):
            out[..., i, i] = taps
        return out

    def __repr__(self) -> str:
        return "Bilinear()"


_NAMED: dict[str, Callable[[], Initializer]] = {
    "zeros": lambda: Constant(0.0),
    "ones": lambda: Constant(1.0),
    "glorot_uniform": lambda: VarianceScaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": lambda: VarianceScaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": lambda: VarianceScaling(2.0, "fan_in", "uniform"),
    "he_normal": lambda: VarianceScaling(2.0, "fan_in", "truncated_normal"),
    "bilinear": Bilinear,
}


def constant(value: float) -> Initializer:
    """Keras's ``Constant(value)``: every entry ``value``.

    >>> constant(0.5)((2,), np.random.default_rng(0))
    array([0.5, 0.5])
    """
    return Constant(value)


def get(identifier: Any) -> Initializer:
    """An initializer from a name (``'glorot_uniform'``, ``'he_normal'``, ``'bilinear'``, ...), an
    :class:`Initializer`, or a callable ``f(shape, rng)``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _NAMED:
            raise ValueError(f"initializer must be one of {sorted(_NAMED)}; received {identifier!r}")
        return _NAMED[key]()
    if callable(identifier):
        function = identifier

        class _Wrapped(Initializer):
            def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
                return np.asarray(function(shape, rng))

        return _Wrapped()
    raise TypeError(f"initializer must be a name, an Initializer or a callable; received {type(identifier).__name__}")
