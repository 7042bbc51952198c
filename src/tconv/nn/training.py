"""Keras-style training: ``fit``, ``evaluate``, ``predict``, and the progress bar they show.

:class:`KerasTrainer` is the :class:`tconv.nn.module.Trainer` that every module's ``compile``/``fit``/
``evaluate``/``predict`` methods call; importing this module installs it as ``Module.trainer``.

The loop is the one a user writes by hand::

    prediction = model(x_batch)
    value = loss(prediction, y_batch) + model.regularization_loss()
    model.zero_grad()
    model.backward(loss.backward())
    optimizer.step()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from . import losses, optim
from .module import Module, generator

__all__ = ["History", "KerasTrainer", "evaluate", "fit", "predict", "progress"]


@dataclass
class History:
    """Per-epoch means: ``history["loss"]`` (and ``"val_loss"`` with validation data)."""

    history: dict[str, list[float]] = field(default_factory=dict)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]


class _TextBar:
    """A dependency-free progress bar (used when tqdm is not installed)."""

    def __init__(self, total: int, desc: str, stream: TextIO) -> None:
        self.total, self.desc, self.stream, self.count, self.postfix = total, desc, stream, 0, ""
        self.start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.count += n
        done = int(30 * self.count / max(1, self.total))
        elapsed = time.perf_counter() - self.start
        self.stream.write(
            f"\r{self.desc} [{'=' * done}{'.' * (30 - done)}] {self.count}/{self.total} {elapsed:.1f}s {self.postfix}"
        )
        self.stream.flush()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def progress(total: int, desc: str, *, enabled: bool = True, stream: TextIO | None = None) -> Any:
    """A tqdm bar when tqdm is installed (the ``models`` extra), else a plain text bar; ``None`` when disabled."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextBar(total, desc, stream or sys.stderr)
    return tqdm(total=total, desc=desc, leave=True, file=stream or sys.stderr, dynamic_ncols=True)


def _batches(n: int, batch_size: int, shuffle: bool) -> Iterator[np.ndarray]:
    order = generator().permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size!r}")
    return int(batch_size)


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if len(x) != len(y):
        raise ValueError(f"x and y must hold the same number of samples; received {len(x)} and {len(y)}")
    if len(x) == 0:
        raise ValueError("x must hold at least one sample; received none")


def fit(
    model: Module,
    x: Any,
    y: Any,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    shuffle: bool = True,
    verbose: int = 1,
    validation_data: tuple[Any, Any] | None = None,
    callbacks: Iterable[Any] = (),
) -> History:
    """Train a compiled model; returns the per-epoch mean losses.

    ``verbose=1`` shows a progress bar per epoch with the running loss;
    ``callbacks`` are called as ``callback(epoch, logs)`` after each epoch.
    """
    if model._compiled is None:
        raise ValueError("call model.compile(optimizer=..., loss=...) before fit")
    optimizer, loss = model._compiled
    x, y = np.asarray(x), np.asarray(y)
    _check_pair(x, y)
    batch_size = _check_batch_size(batch_size)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int; received {epochs!r}")
    if not optimizer.parameters:
        model.build_from_shape((None, *x.shape[1:]))
        optimizer.bind(model.parameters())
    history = History({"loss": []})
    steps = -(-len(x) // batch_size)
    for epoch in range(epochs):
        model.train()
        bar = progress(steps, f"epoch {epoch + 1}/{epochs}", enabled=verbose > 0)
        total, seen = 0.0, 0
        for index in _batches(len(x), batch_size, shuffle):
            prediction = model(x[index])
            value = loss(prediction, y[index]) + model.regularization_loss()
            model.zero_grad()
            model.backward(loss.backward())
            optimizer.step()
            total += value * len(index)
            seen += len(index)
            if bar is not None:
                bar.set_postfix_str(f"loss {total / seen:.4f}")
                bar.update(1)
        logs = {"loss": total / seen}
        if validation_data is not None:
            logs["val_loss"] = evaluate(model, *validation_data, batch_size=batch_size)
            if bar is not None:
                bar.set_postfix_str(f"loss {logs['loss']:.4f} val_loss {logs['val_loss']:.4f}")
        if bar is not None:
            bar.close()
        for key, value in logs.items():
            history.history.setdefault(key, []).append(value)
        for callback in callbacks:
            callback(epoch, logs)
    return history


def predict(model: Module, x: Any, *, batch_size: int = 32) -> np.ndarray:
    """The model's outputs in evaluation mode, batch by batch (the mode is restored after)."""
    x = np.asarray(x)
    batch_size = _check_batch_size(batch_size)
    modes = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    try:
        return np.concatenate([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        for module, mode in modes:
            module.training = mode


def evaluate(model: Module, x: Any, y: Any, *, batch_size: int = 32) -> float:
    """The compiled loss of the predictions on ``(x, y)``."""
    if model._compiled is None:
        raise ValueError("call model.compile(optimizer=..., loss=...) before evaluate")
    x, y = np.asarray(x), np.asarray(y)
    _check_pair(x, y)
    return model._compiled[1](predict(model, x, batch_size=batch_size), y)


class KerasTrainer:
    """The :class:`tconv.nn.module.Trainer` of this module's functions."""

    def compile(self, model: Module, optimizer: Any, loss: Any) -> None:
        """Bind the optimizer (a name or an object) to ``model``'s parameters and keep it with the loss."""
        model._compiled = (optim.get(optimizer, model), losses.get(loss))

    def fit(self, model: Module, x: Any, y: Any, **options: Any) -> History:
        return fit(model, x, y, **options)

    evaluate = staticmethod(evaluate)
    predict = staticmethod(predict)


Module.trainer = KerasTrainer()
