"""Keras-style training: ``fit``, ``evaluate``, ``predict``, and the progress bar they show.

:class:`KerasTrainer` is the :class:`tconv.nn.module.Trainer` that every module's ``compile``/``fit``/
``evaluate``/``predict`` methods call; importing this module installs it as ``Module.trainer``.

The loop is the one a user writes by hand::

    prediction = model(x_batch)
    value = loss(prediction, y_batch) + model.regularization_loss()
    model.zero_grad()
    model.backward(loss.backward(), input_grad=False)  # the data's own gradient is not needed
    optimizer.step()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from . import losses, optim
from .module import Module, generator

__all__ = ["METRICS", "History", "KerasTrainer", "Metric", "evaluate", "fit", "get_metric", "predict", "progress"]


# Keras's metric functions: one value per sample (and position), the last axis reduced; a metric reports the
# mean of these over every sample seen (Keras's MeanMetricWrapper).
def _binary_accuracy(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.mean(y == (p > 0.5), axis=-1)


def _categorical_accuracy(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (np.argmax(y, axis=-1) == np.argmax(p, axis=-1)).astype(np.float64)


def _sparse_categorical_accuracy(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    if y.ndim == p.ndim and y.shape[-1] == 1:
        y = y[..., 0]
    return (y.astype(np.int64) == np.argmax(p, axis=-1)).astype(np.float64)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mae": lambda y, p: np.mean(np.abs(y - p), axis=-1),
    "mse": lambda y, p: np.mean((y - p) ** 2, axis=-1),
    "binary_accuracy": _binary_accuracy,
    "categorical_accuracy": _categorical_accuracy,
    "sparse_categorical_accuracy": _sparse_categorical_accuracy,
}
METRICS["mean_absolute_error"], METRICS["mean_squared_error"] = METRICS["mae"], METRICS["mse"]


@dataclass
class Metric:
    """A named running mean of a metric function's values, as Keras reports it (``name`` is the name given to
    ``compile``, e.g. ``'accuracy'``)."""

    name: str
    function: Callable[[np.ndarray, np.ndarray], np.ndarray] | None  # None: 'accuracy', chosen on first use
    total: float = 0.0
    count: int = 0

    def update(self, y_pred: np.ndarray, y_true: np.ndarray) -> None:
        y_pred, y_true = np.asarray(y_pred, dtype=np.float64), np.asarray(y_true, dtype=np.float64)
        if self.function is None:  # Keras's choice for 'accuracy', from the shapes
            binary = y_pred.shape[-1] == 1
            sparse = y_true.ndim < y_pred.ndim or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1)
            self.function = METRICS[
                "binary_accuracy" if binary else "sparse_categorical_accuracy" if sparse else "categorical_accuracy"
            ]
        if y_true.ndim == y_pred.ndim - 1 and self.function is not _sparse_categorical_accuracy:
            y_true = y_true[..., None]
        values = np.asarray(self.function(y_true, y_pred))
        self.total += float(values.sum())
        self.count += int(values.size)

    def result(self) -> float:
        return self.total / max(1, self.count)

    def reset(self) -> None:
        self.total, self.count = 0.0, 0


def get_metric(identifier: Any) -> Metric:
    """A :class:`Metric` from Keras's names: ``'accuracy'``/``'acc'`` (binary, categorical or sparse
    categorical accuracy, chosen from the shapes as Keras chooses), ``'mae'``, ``'mse'``, their long names,
    ``'binary_accuracy'``, ``'categorical_accuracy'``, ``'sparse_categorical_accuracy'``, or a function
    ``f(y_true, y_pred)`` returning per-sample values."""
    if callable(identifier):
        return Metric(getattr(identifier, "__name__", "metric"), identifier)
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return Metric(identifier, None)
    if isinstance(identifier, str) and identifier.lower() in METRICS:
        return Metric(identifier, METRICS[identifier.lower()])
    raise ValueError(
        f"metrics must hold names among {sorted(['accuracy', *METRICS])} or functions f(y_true, y_pred); "
        f"received {identifier!r}"
    )


def _metrics_of(model: Module) -> list[Metric]:
    assert model._compiled is not None
    for metric in model._compiled[2]:
        metric.reset()
    return list(model._compiled[2])


@dataclass
class History:
    """Per-epoch means: ``history["loss"]`` and each metric's (``"accuracy"``, ``"mae"``, ...), and with
    validation data ``"val_loss"``, ``"val_accuracy"``, ... as Keras's ``History.history`` holds them."""

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
    optimizer, loss, _ = model._compiled
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
        metrics = _metrics_of(model)
        for index in _batches(len(x), batch_size, shuffle):
            prediction = model(x[index])
            value = loss(prediction, y[index]) + model.regularization_loss()
            for metric in metrics:
                metric.update(prediction, y[index])
            model.zero_grad()
            model.backward(loss.backward(), input_grad=False)
            optimizer.step()
            total += value * len(index)
            seen += len(index)
            if bar is not None:
                bar.set_postfix_str(
                    " - ".join([f"loss {total / seen:.4f}"] + [f"{m.name} {m.result():.4f}" for m in metrics])
                )
                bar.update(1)
        logs = {"loss": total / seen, **{m.name: m.result() for m in metrics}}
        if validation_data is not None:
            scores = evaluate(model, *validation_data, batch_size=batch_size, return_dict=True)
            logs.update({f"val_{name}": value for name, value in scores.items()})
            if bar is not None:
                bar.set_postfix_str(" - ".join(f"{name} {value:.4f}" for name, value in logs.items()))
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


def evaluate(model: Module, x: Any, y: Any, *, batch_size: int = 32, return_dict: bool = False) -> Any:
    """The compiled loss of the predictions on ``(x, y)``; with metrics, ``[loss, *metrics]`` in the order
    given to ``compile`` (Keras's return), or ``{"loss": ..., "mae": ...}`` with ``return_dict``."""
    if model._compiled is None:
        raise ValueError("call model.compile(optimizer=..., loss=...) before evaluate")
    x, y = np.asarray(x), np.asarray(y)
    _check_pair(x, y)
    prediction = predict(model, x, batch_size=batch_size)
    scores = {"loss": model._compiled[1](prediction, y)}
    for metric in _metrics_of(model):
        metric.update(prediction, y)
        scores[metric.name] = metric.result()
    if return_dict:
        return scores
    return scores["loss"] if len(scores) == 1 else list(scores.values())


class KerasTrainer:
    """The :class:`tconv.nn.module.Trainer` of this module's functions."""

    def compile(self, model: Module, optimizer: Any, loss: Any, metrics: Sequence[Any] | None = None) -> None:
        """Bind the optimizer (a name or an object) to ``model``'s parameters and keep it with the loss and
        the metrics (:func:`get_metric`)."""
        if isinstance(metrics, (str, bytes)) or (metrics is not None and not isinstance(metrics, Sequence)):
            raise TypeError(f"metrics must be a list, e.g. metrics=['accuracy']; received {metrics!r}")
        chosen = [get_metric(m) for m in metrics or ()]
        model._compiled = (optim.get(optimizer, model), losses.get(loss), chosen)

    def fit(self, model: Module, x: Any, y: Any, **options: Any) -> History:
        return fit(model, x, y, **options)

    def evaluate(self, model: Module, x: Any, y: Any, *, batch_size: int = 32, return_dict: bool = False) -> Any:
        return evaluate(model, x, y, batch_size=batch_size, return_dict=return_dict)

    predict = staticmethod(predict)


Module.trainer = KerasTrainer()
