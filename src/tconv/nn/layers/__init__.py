"""One implementation of each layer; :mod:`tconv.nn.torch` and :mod:`tconv.nn.keras` only translate their
framework's constructor arguments into these.

Parameters are stored in PyTorch's layouts (what ``state_dict`` holds); the Keras-flavoured constructors
present the Keras layouts through ``get_weights``/``set_weights``, their initializers, regularizers and
constraints.

==================  =====================================================================
module              layers
==================  =====================================================================
``conv``            :class:`Convolution` (every rank, both directions, both frameworks)
``dense``           :class:`DenseLayer`
``norm``            :class:`BatchNorm`
``dropout``         :class:`DropoutLayer`
``pooling``         :class:`MaxPool`, :class:`AveragePool`
``resize``          :class:`Resize`
``shape``           :class:`FlattenLayer`, :class:`ReshapeLayer`
``activations``     :class:`ActivationLayer` and the activations by name
``base``            what they share: parameter creation, checks, :class:`~.base.KernelLayer`
==================  =====================================================================
"""

from .activations import ActivationLayer, activation_function
from .conv import Convolution
from .dense import DenseLayer
from .dropout import DropoutLayer
from .norm import BatchNorm
from .pooling import AveragePool, MaxPool
from .resize import Resize, resize_rows
from .shape import FlattenLayer, ReshapeLayer

__all__ = [
    "ActivationLayer",
    "AveragePool",
    "BatchNorm",
    "Convolution",
    "DenseLayer",
    "DropoutLayer",
    "FlattenLayer",
    "MaxPool",
    "ReshapeLayer",
    "Resize",
    "activation_function",
    "resize_rows",
]
