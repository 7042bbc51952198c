"""Layers that train on NumPy with tconv's operations and gradients, in two namespaces a user picks on purpose.

* :mod:`tconv.nn.torch` is ``torch.nn``: PyTorch's constructors, defaults and layouts (channels first:
  ``ConvTranspose2d``, ``Conv2d``, ``Linear``, ``BatchNorm2d``, ``LeakyReLU(negative_slope=0.01)``,
  ``Dropout(p=0.5)``, ...), with ``Module``, ``Sequential`` and ``init``.
* :mod:`tconv.nn.keras` is ``keras``/``keras.layers``: Keras 3's (channels last: ``Conv2DTranspose``,
  ``Conv2D``, ``Dense``, ``BatchNormalization``, ``LeakyReLU(negative_slope=0.3)``, ``Dropout(rate)``, ...),
  with ``Sequential`` and the ``layers`` namespace.

Both are thin translations over one implementation of each layer (:mod:`tconv.nn.layers`). This top level
keeps every name that means one thing in both frameworks (``Conv2DTranspose``, ``ConvTranspose2d``, ``Dense``,
``ReLU``, ``Sequential``, ...). A name whose default or arguments differ between them (``LeakyReLU``: slope
0.01 or 0.3; ``Dropout``: ``p=0.5`` or ``rate``; ``Flatten``: ``start_dim`` or ``data_format``) is not here:
``tconv.nn.LeakyReLU`` raises an ``AttributeError`` that names ``tconv.nn.torch.LeakyReLU`` and
``tconv.nn.keras.LeakyReLU``, rather than give one framework's users the other's default.

Examples
--------
Seed 000's first transposed layer, trained one step by hand:

>>> import numpy as np
>>> from tconv import nn
>>> _ = nn.manual_seed(0)
>>> layer = nn.Conv2DTranspose(4, 5, strides=2, padding="same", use_bias=False)
>>> x = np.ones((2, 7, 7, 8), dtype=np.float32)
>>> loss, opt = nn.MSELoss(), None
>>> y = layer(x); y.shape
(2, 14, 14, 4)
>>> opt = nn.SGD(layer.parameters(), lr=0.1)
>>> before = loss(y, np.zeros_like(y))
>>> layer.zero_grad(); _ = layer.backward(loss.backward()); opt.step()
>>> bool(loss(layer(x), np.zeros_like(y)) < before)
True
"""

from typing import Any

from . import constraints, init, initializers, keras, losses, optim, regularizers, torch
from .containers import Parallel, Residual, Sequential
from .keras import (
    Activation,
    BatchNormalization,
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    Dense,
    GlobalAveragePooling2D,
    MaxPooling2D,
    Reshape,
    UpSampling2D,
)
from .losses import BCELoss, BCEWithLogitsLoss, MSELoss
from .module import Module, Parameter, generator, manual_seed
from .optim import SGD, Adam
from .summary import Summary
from .torch import (
    AdaptiveAvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
    Upsample,
)
from .training import History  # also installs the training loop behind Module.compile/fit/evaluate/predict

__all__ = [
    "SGD",
    "Activation",
    "Adam",
    "AdaptiveAvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "BatchNormalization",
    "Conv1D",
    "Conv1DTranspose",
    "Conv1d",
    "Conv2D",
    "Conv2DTranspose",
    "Conv2d",
    "Conv3D",
    "Conv3DTranspose",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Dense",
    "GlobalAveragePooling2D",
    "History",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "MaxPooling2D",
    "Module",
    "Parallel",
    "Parameter",
    "ReLU",
    "Reshape",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Summary",
    "Tanh",
    "UpSampling2D",
    "Upsample",
    "constraints",
    "generator",
    "init",
    "initializers",
    "keras",
    "losses",
    "manual_seed",
    "optim",
    "regularizers",
    "torch",
]

# Names in both frameworks with different defaults or arguments: each framework's namespace has its own.
_AMBIGUOUS = {
    "LeakyReLU": "PyTorch's negative_slope defaults to 0.01, Keras's to 0.3",
    "Dropout": "PyTorch's is Dropout(p=0.5), Keras's Dropout(rate) with no default",
    "Flatten": "PyTorch's takes (start_dim, end_dim), Keras's (data_format)",
}


def __getattr__(name: str) -> Any:
    if name in _AMBIGUOUS:
        raise AttributeError(
            f"tconv.nn.{name} would mean two things ({_AMBIGUOUS[name]}): write tconv.nn.torch.{name} "
            f"(torch.nn.{name}) or tconv.nn.keras.{name} (keras.layers.{name})"
        )
    raise AttributeError(f"module 'tconv.nn' has no attribute {name!r}")
