"""The fully connected layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...implementations.compiled import team
from .base import KernelLayer, KernelOptions, positive_int

if TYPE_CHECKING:  # typing.Unpack is Python 3.11's
    from typing_extensions import Unpack

__all__ = ["DenseLayer"]


class DenseLayer(KernelLayer):
    """``y = x W^T + b`` on the last axis; ``W`` is ``(out, in)`` (PyTorch), Keras's kernel ``(in, out)``."""

    def __init__(
        self,
        out_features: int,
        *,
        in_features: int | None = None,
        **options: Unpack[KernelOptions],
    ) -> None:
        super().__init__()
        style = options.get("style", "torch")
        self.out_features = positive_int(out_features, "units" if style == "keras" else "out_features")
        self._configure(options)
        self.in_features: int | None = None
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if in_features is not None:
            self._create(positive_int(in_features, "in_features"))

    def build(self, input_shape: Sequence[int | None]) -> None:
        if len(input_shape) < 2:
            raise ValueError(f"{type(self).__name__} expects inputs with a batch axis; received shape {input_shape}")
        assert input_shape[-1] is not None
        self._create(int(input_shape[-1]))

    def _create(self, in_features: int) -> None:
        self.in_features = in_features
        self._create_weights(
            (in_features, self.out_features), self.out_features, in_features, np.transpose, np.transpose
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_features} features on the last axis; received shape {x.shape}"
            )
        z = team.matmul(x, self.weight.value.T)  # on tconv's team, never on BLAS's spinning threads
        if self.use_bias:
            z = z + self.bias.value
        y = self._activate(z)
        self._cache = (x, z, y)
        return y

    def _backward(self, grad: np.ndarray) -> np.ndarray | None:
        assert self._cache is not None, "backward called before forward"
        x, z, y = self._cache
        grad = self._activation_grad(grad, z, y)
        flat_g = grad.reshape(-1, self.out_features)
        self.weight.accumulate(team.matmul(flat_g.T, x.reshape(-1, x.shape[-1])))
        if self.use_bias:
            self.bias.accumulate(flat_g.sum(axis=0))
        if not self.needs_input_grad:  # the caller has no use for it (Module.backward's input_grad)
            return None
        return team.matmul(grad, self.weight.value)

    def extra_repr(self) -> str:
        return f"{self.in_features}->{self.out_features}, bias={self.use_bias}"
