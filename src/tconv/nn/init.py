"""``torch.nn.init``: fill a parameter in place, drawing from tconv's generator (:func:`tconv.nn.manual_seed`).

Each function takes a parameter's array (``m.weight.data``, a NumPy array changed in place) or the
:class:`~tconv.nn.Parameter` itself (``m.weight``), fills it, and returns it, as PyTorch's do. Fans are
PyTorch's: ``fan_in = shape[1] * prod(kernel)``, ``fan_out = shape[0] * prod(kernel)`` of the stored
(PyTorch-layout) weight.

Examples
--------
The PyTorch DCGAN tutorial's ``weights_init``:

>>> from tconv.nn import torch as nn
>>> def weights_init(m):
...     classname = m.__class__.__name__
...     if classname.find('Conv') != -1:
...         nn.init.normal_(m.weight.data, 0.0, 0.02)
...     elif classname.find('BatchNorm') != -1:
...         nn.init.normal_(m.weight.data, 1.0, 0.02)
...         nn.init.constant_(m.bias.data, 0)
>>> _ = nn.manual_seed(0)
>>> net = nn.Sequential(nn.ConvTranspose2d(100, 64, 4, 1, 0, bias=False), nn.BatchNorm2d(64)).apply(weights_init)
>>> round(float(net[0].weight.data.std()), 2), float(net[1].bias.data.max())
(0.02, 0.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .module import Parameter, generator

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]


def _fill(tensor: Any, values: np.ndarray | float) -> Any:
    array = tensor.value if isinstance(tensor, Parameter) else tensor
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"tensor must be a NumPy array (m.weight.data) or a tconv.nn.Parameter; received {type(tensor).__name__}"
        )
    array[...] = values
    return tensor


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple((tensor.value if isinstance(tensor, Parameter) else np.asarray(tensor)).shape)


def _fans(tensor: Any) -> tuple[int, int]:
    shape = _shape(tensor)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions; received shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gain: 1 (linear, conv, sigmoid), 5/3 (tanh), sqrt(2) (relu),
    ``sqrt(2 / (1 + a**2))`` (leaky_relu, ``a = param`` or 0.01), 3/4 (selu)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in (*linear, "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"nonlinearity must be a name PyTorch knows (e.g. 'relu', 'tanh'); received {nonlinearity!r}")


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0) -> Any:
    """Fill with draws from ``U(a, b)``."""
    return _fill(tensor, generator().uniform(a, b, _shape(tensor)))


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0) -> Any:
    """Fill with draws from ``N(mean, std**2)``."""
    return _fill(tensor, generator().normal(mean, std, _shape(tensor)))


def constant_(tensor: Any, val: float) -> Any:
    """Fill with ``val``."""
    return _fill(tensor, val)


def zeros_(tensor: Any) -> Any:
    """Fill with 0."""
    return _fill(tensor, 0.0)


def ones_(tensor: Any) -> Any:
    """Fill with 1."""
    return _fill(tensor, 1.0)


def xavier_uniform_(tensor: Any, gain: float = 1.0) -> Any:
    """Glorot uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Any, gain: float = 1.0) -> Any:
    """Glorot normal: ``N(0, std**2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(tensor: Any, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out'; received {mode!r}")
    fan_in, fan_out = _fans(tensor)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Any:
    """He uniform: ``U(-b, b)`` with ``b = sqrt(3) * gain / sqrt(fan)``."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Any:
    """He normal: ``N(0, std**2)`` with ``std = gain / sqrt(fan)``."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))
