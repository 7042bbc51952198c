"""Optimizers over :class:`tconv.nn.Parameter` lists, with PyTorch's update rules.

``step()`` updates every trainable parameter that has a gradient, then applies
its constraint (Keras applies constraints after each update); ``zero_grad()``
clears the gradients.

Examples
--------
>>> import numpy as np
>>> from tconv import nn
>>> p = nn.Parameter(np.array([1.0]))
>>> opt = nn.SGD([p], lr=0.1, momentum=0.9)
>>> p.grad = np.array([1.0]); opt.step(); p.value
array([0.9])
>>> p.grad = np.array([1.0]); opt.step(); p.value   # velocity 0.9 * 1 + 1
array([0.71])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..implementations.compiled import optimizer as compiled_optimizer
from .module import Module, Parameter

__all__ = ["SGD", "Adam", "Optimizer", "get"]


class Optimizer:
    def __init__(self, parameters: Iterable[Parameter] | None = None, *, lr: float) -> None:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
            raise ValueError(f"lr must be a positive number; received {lr!r}")
        self.lr = float(lr)
        self.parameters: list[Parameter] = []
        self.state: dict[int, dict[str, Any]] = {}
        if parameters is not None:
            self.bind(parameters)

    def bind(self, parameters: Iterable[Parameter]) -> None:
        """Set the parameters to update (``compile`` does it for a model)."""
        params = list(parameters)
        for index, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"parameters[{index}] must be a tconv.nn.Parameter; received {type(p).__name__}")
        self.parameters = [p for p in params if p.trainable]
        self.state = {}

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None

    def step(self) -> None:
        for p in self.parameters:
            if p.grad is None:
                continue
            state = self.state.setdefault(id(p), {})
            value = self._new_value(p.value, p.grad, state)
            if value is None:
                value = (p.value - self._update(p.value, p.grad, state)).astype(p.value.dtype, copy=False)
            p.value = value
            p.apply_constraint()

    def _update(self, value: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def _new_value(self, value: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> np.ndarray | None:
        """The parameter's new value computed whole, where the optimizer has a one-pass form for these arrays
        (its state updated as :meth:`_update` would); None where ``step`` subtracts :meth:`_update`'s step."""
        return None


class SGD(Optimizer):
    """``v = momentum * v + g (+ weight_decay * w)``; ``w -= lr * v`` (or ``lr * (g + momentum * v)``, Nesterov)."""

    def __init__(
        self,
        parameters: Iterable[Parameter] | None = None,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(parameters, lr=lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1); received {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov needs a positive momentum")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def _update(self, value: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        g = grad + self.weight_decay * value if self.weight_decay else grad
        if not self.momentum:
            return self.lr * g
        velocity = state["velocity"] = self.momentum * state.get("velocity", 0.0) + g
        return self.lr * (g + self.momentum * velocity if self.nesterov else velocity)


class Adam(Optimizer):
    """Adam with bias correction, PyTorch's form (``eps`` added to the corrected root). The moments in
    ``state`` are updated in place (copy them to keep a snapshot). With numba installed, steps after the first
    on float32/float64 parameters without weight decay (``lr``, ``betas`` and ``eps`` Python floats) run in one
    compiled pass (:mod:`tconv.implementations.compiled.optimizer`), to the bit the NumPy steps' results; that
    pass does not report floating-point errors to ``np.errstate`` (an inf gradient gives NaN silently)."""

    def __init__(
        self,
        parameters: Iterable[Parameter] | None = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(parameters, lr=lr)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1); received {betas!r}")
        self.betas, self.eps, self.weight_decay = (float(betas[0]), float(betas[1])), float(eps), float(weight_decay)

    def _new_value(self, value: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> np.ndarray | None:
        # From the second step on, without weight decay, on float32/float64 arrays, with lr, betas and eps Python
        # floats (a NumPy float64 lr would make _update compute in float64 on float32 weights): the compiled pass
        # (compiled.optimizer), _update's operations and roundings in one pass for thirteen and the subtraction
        hyper = (self.lr, *self.betas, self.eps)
        if (
            self.weight_decay
            or "m" not in state
            or not all(type(h) is float for h in hyper)
            or not compiled_optimizer.supports(value, grad, state["m"], state["v"])
        ):
            return None
        t = state["t"] + 1
        new = compiled_optimizer.adam_step(value, grad, state["m"], state["v"], self.betas, self.lr, self.eps, t)
        state["t"] = t
        return new

    def _update(self, value: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        g = grad + self.weight_decay * value if self.weight_decay else grad
        b1, b2 = self.betas
        t = state["t"] = state.get("t", 0) + 1
        # m = b1 * m + (1 - b1) * g, v = b2 * v + (1 - b2) * g * g, lr * m_hat / (sqrt(v_hat) + eps): the same
        # operations in the same order, into the moments and two scratch arrays (an update runs over every
        # weight; a temporary per operation would double its time)
        step = np.asarray((1 - b1) * g)  # (a 0-d parameter's product is a NumPy scalar: made an array)
        term = np.asarray((1 - b2) * g)
        term *= g
        if "m" not in state:  # the first step, from zero moments (0 * b + x is x)
            m, v = state["m"], state["v"] = step.copy(), term.copy()
        elif state["m"].dtype != step.dtype or state["m"].shape != step.shape:  # the parameter was cast or reshaped
            m = state["m"] = b1 * state["m"] + step  # the moments kept, promoted as NumPy promotes
            v = state["v"] = b2 * state["v"] + term
            return self.lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + self.eps)
        else:
            m, v = state["m"], state["v"]
            m *= b1
            m += step
            v *= b2
            v += term
        np.divide(m, 1 - b1**t, out=step)
        step *= self.lr
        np.divide(v, 1 - b2**t, out=term)
        np.sqrt(term, out=term)
        term += self.eps
        step /= term
        return step


def get(identifier: Any, model: Module) -> Optimizer:
    """``'sgd'``, ``'adam'`` (defaults) or an optimizer, bound to ``model``'s parameters."""
    if isinstance(identifier, str):
        named = {"sgd": SGD, "adam": Adam}
        if identifier.lower() not in named:
            raise ValueError(f"optimizer must be an Optimizer or one of {sorted(named)}; received {identifier!r}")
        optimizer: Optimizer = named[identifier.lower()]()
    elif isinstance(identifier, Optimizer):
        optimizer = identifier
    else:
        raise TypeError(f"optimizer must be a name or a tconv.nn optimizer; received {type(identifier).__name__}")
    optimizer.bind(model.parameters())
    return optimizer
