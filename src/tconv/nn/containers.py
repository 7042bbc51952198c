"""The containers: :class:`Sequential` (one layer after another), :class:`Parallel` (branches on one input,
concatenated) and :class:`Residual` (a body plus a shortcut)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .module import Module, backward_chain

__all__ = ["Parallel", "Residual", "Sequential"]


class Sequential(Module):
    """Layers applied one after another, written either framework's way.

    ``Sequential(layer, layer, ...)`` (PyTorch's ``nn.Sequential(*layers)``), ``Sequential(OrderedDict(name=
    layer, ...))`` (PyTorch's named form), or ``Sequential([layer, ...], name=None)`` / ``Sequential()`` then
    :meth:`add` (Keras's). Children are named ``"0"``, ``"1"``, ... (or by the dict's keys), which fixes the
    ``state_dict`` names as in PyTorch.

    When the first layer was given an ``input_shape`` (Keras's ``Dense(..., input_shape=(100,))``), the model
    is built at once and ``output_shape`` follows every :meth:`add`, so the TensorFlow DCGAN tutorial's
    ``assert model.output_shape == (None, 7, 7, 256)`` runs.

    Examples
    --------
    >>> from tconv import nn
    >>> model = nn.Sequential([nn.Dense(8, input_shape=(4,)), nn.ReLU()])
    >>> model.output_shape
    (None, 8)
    >>> model.count_params()
    40
    >>> nn.Sequential(nn.Linear(4, 8), nn.ReLU())(np.zeros((2, 4))).shape
    (2, 8)
    """

    def __init__(self, *layers: Any, name: str | None = None) -> None:
        super().__init__()
        if name is not None:
            self.name = name
        self._sample_shape: tuple[int, ...] | None = None
        items: Iterable[tuple[str | None, Any]]
        if len(layers) == 1 and isinstance(layers[0], Mapping):
            items = layers[0].items()
        elif len(layers) == 1 and not isinstance(layers[0], Module) and isinstance(layers[0], Iterable):
            items = ((None, layer) for layer in layers[0])
        else:
            items = ((None, layer) for layer in layers)
        for key, layer in items:
            self.add(layer, key)

    def add(self, layer: Module, name: str | None = None) -> None:
        """Append ``layer`` (named ``name``, by default its index); with a known input shape, build it."""
        if not isinstance(layer, Module):
            raise TypeError(f"layer must be a tconv.nn.Module; received {type(layer).__name__}")
        index = len(self._modules)
        declared = getattr(layer, "declared_input_shape", None)
        if index == 0 and declared is not None:
            self._sample_shape = (1, *declared)
        if self._sample_shape is not None:  # build the new layer only, on the previous layer's output
            previous = self.output_shape if index else (None, *self._sample_shape[1:])
            assert previous is not None
            layer.build_from_shape(previous)
            self.input_shape, self.output_shape = (None, *self._sample_shape[1:]), layer.output_shape
        setattr(self, str(index) if name is None else str(name), layer)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def forward(self, x: np.ndarray) -> np.ndarray:
        layers = list(self._modules.values())
        index = 0
        while index < len(layers):
            layer = layers[index]
            follower = layers[index + 1] if index + 1 < len(layers) else None
            fuse = getattr(layer, "fused_activation", None)
            activation = None if fuse is None or follower is None else fuse(follower, x)
            if activation is None:
                x = layer(x)
                index += 1
                continue
            # a batch normalization and the ReLU or LeakyReLU after it, in one pass forward (the same numbers as one
            # after the other; the backward as it was: docs/design.md, "Batch normalization and its activation")
            x = layer(x, activation)
            follower.applied_before(x)  # type: ignore[union-attr]
            index += 2
        return x

    def _backward(self, grad: np.ndarray) -> np.ndarray | None:
        return backward_chain(list(self._modules.values()), grad, self.needs_input_grad)


class Parallel(Module):
    """Branches applied to the same input, their outputs concatenated on ``axis`` (Inception).

    ``axis=1`` for channels-first models, ``-1`` for channels-last.
    """

    def __init__(self, branches: Sequence[Module] | dict[str, Module], *, axis: int = 1) -> None:
        super().__init__()
        items = branches.items() if isinstance(branches, dict) else ((str(i), b) for i, b in enumerate(branches))
        for name, branch in items:
            if not isinstance(branch, Module):
                raise TypeError(f"branch {name!r} must be a tconv.nn.Module; received {type(branch).__name__}")
            setattr(self, name, branch)
        if not self._modules:
            raise ValueError("branches must hold at least one module; received none")
        self.axis = axis
        self._sizes: list[int] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        outputs = [branch(x) for branch in self._modules.values()]
        others = {o.shape[: self.axis % o.ndim] + o.shape[self.axis % o.ndim + 1 :] for o in outputs}
        if len(others) != 1:
            shapes = {name: o.shape for name, o in zip(self._modules, outputs)}
            raise ValueError(f"branches must agree on every axis but {self.axis}; their outputs have shapes {shapes}")
        self._sizes = [o.shape[self.axis] for o in outputs]
        return np.concatenate(outputs, axis=self.axis)

    def _backward(self, grad: np.ndarray) -> np.ndarray | None:
        pieces = np.split(grad, np.cumsum(self._sizes)[:-1], axis=self.axis)
        total = None
        for branch, piece in zip(self._modules.values(), pieces):
            # (the keyword only where it says something: a branch overriding backward(grad) itself still works)
            g = branch.backward(piece) if self.needs_input_grad else branch.backward(piece, input_grad=False)
            if g is not None:
                total = g if total is None else total + g
        assert total is not None or not self.needs_input_grad
        return total


class Residual(Module):
    """``activation(body(x) + shortcut(x))``: the ResNet block; ``shortcut=None`` is the identity."""

    def __init__(self, body: Module, shortcut: Module | None = None, activation: Module | None = None) -> None:
        super().__init__()
        self.body = body
        if shortcut is not None:
            self.shortcut = shortcut
        if activation is not None:
            self.activation = activation
        self._has_shortcut = shortcut is not None
        self._has_activation = activation is not None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self.body(x)
        short = self.shortcut(x) if self._has_shortcut else x
        if y.shape != short.shape:
            raise ValueError(
                f"the residual body's output shape {y.shape} differs from the shortcut's {short.shape}; "
                "give a shortcut (e.g. a 1x1 convolution) that matches them"
            )
        total = y + short
        return self.activation(total) if self._has_activation else total

    def _backward(self, grad: np.ndarray) -> np.ndarray | None:
        if self._has_activation:
            grad = self.activation.backward(grad)
        if not self.needs_input_grad:  # the parameters' gradients only
            self.body.backward(grad, input_grad=False)
            if self._has_shortcut:
                self.shortcut.backward(grad, input_grad=False)
            return None
        g_body = self.body.backward(grad)
        g_short = self.shortcut.backward(grad) if self._has_shortcut else grad
        return g_body + g_short
