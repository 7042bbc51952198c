"""Layers that train on NumPy with tconv's operations and gradients.

PyTorch-flavoured constructors (channels-first: ``ConvTranspose2d``,
``Conv2d``, ``Linear``, ``BatchNorm2d``, ...) and Keras-flavoured ones
(channels-last: ``Conv2DTranspose``, ``Conv2D``, ``Dense``,
``BatchNormalization``, ...) are thin translations over one implementation of
each layer (:mod:`tconv.nn.layers`). Names in both frameworks (``LeakyReLU``,
``ReLU``, ``Dropout``, ``Flatten``) are PyTorch's here and Keras's in
:mod:`tconv.nn.keras`.

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

from . import constraints, initializers, keras, losses, optim, regularizers, torch
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
    Dropout,
    Flatten,
    LeakyReLU,
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
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "History",
    "LeakyReLU",
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
    "initializers",
    "keras",
    "losses",
    "manual_seed",
    "optim",
    "regularizers",
    "torch",
]
