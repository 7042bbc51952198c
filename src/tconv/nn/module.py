"""Parameters, the base class of layers and models, and the seeded generator.

A :class:`Module` computes ``forward`` on NumPy arrays and, given the loss's
gradient with respect to its output, ``backward`` returns the gradient with
respect to its input and *accumulates* its parameters' gradients, as
``loss.backward()`` does in PyTorch. Every layer caches what its backward needs
during forward; the last forward is the one differentiated.

Keras's ``compile``/``fit``/``evaluate``/``predict`` are methods of every module, but the loop lives in
:mod:`tconv.nn.training`, which imports this module: the methods delegate to ``Module.trainer``, a
:class:`Trainer` that :mod:`tconv.nn.training` installs when :mod:`tconv.nn` is imported. So the imports
run one way (training, optim and the layers import the module, never the reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from .summary import Summary, SummaryRow

__all__ = ["Module", "Parameter", "Trainer", "as_float_array", "generator", "manual_seed"]

_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator that initializers and dropout draw from, for reproducible runs.

    Examples
    --------
    >>> from tconv import nn
    >>> _ = nn.manual_seed(0); a = nn.Linear(3, 2).weight.value
    >>> _ = nn.manual_seed(0); b = nn.Linear(3, 2).weight.value
    >>> bool((a == b).all())
    True
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; received {type(seed).__name__} {seed!r}")
    _rng = np.random.default_rng(int(seed))
    return _rng


def generator() -> np.random.Generator:
    """The generator that initializers and dropout draw from (see :func:`manual_seed`)."""
    return _rng


class Parameter:
    """An array with its gradient, and the regularizer and constraint that apply to it.

    Parameters
    ----------
    value : numpy.ndarray
        The values, stored in PyTorch's layout (the state_dict's).
    trainable : bool
        False for running statistics (batch norm's ``running_mean``), which the
        optimizers leave alone and Keras counts as non-trainable parameters.
    regularizer, constraint : callable, optional
        See :mod:`tconv.nn.regularizers` and :mod:`tconv.nn.constraints`; they
        see the value in the layer's user-facing layout (Keras's for the
        Keras-flavoured layers).
    """

    def __init__(
        self,
        value: np.ndarray,
        *,
        trainable: bool = True,
        regularizer: Callable[..., Any] | None = None,
        constraint: Callable[[np.ndarray], np.ndarray] | None = None,
        to_user: Callable[[np.ndarray], np.ndarray] | None = None,
        from_user: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.value = np.asarray(value)
        self.grad: np.ndarray | None = None
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint
        self._to_user = to_user or (lambda a: a)
        self._from_user = from_user or (lambda a: a)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def size(self) -> int:
        return int(self.value.size)

    def user_value(self) -> np.ndarray:
        """The value in the layer's user-facing layout (Keras's for Keras-flavoured layers)."""
        return self._to_user(self.value)

    def set_user_value(self, value: np.ndarray) -> None:
        self.value = np.array(self._from_user(np.asarray(value)), dtype=self.value.dtype, order="C", copy=True)

    def accumulate(self, grad: np.ndarray) -> None:
        grad = np.asarray(grad, dtype=self.value.dtype)
        self.grad = grad.copy() if self.grad is None else self.grad + grad

    def penalty(self) -> float:
        """The regularizer's penalty on the current value (0 without one)."""
        return 0.0 if self.regularizer is None else float(self.regularizer(self.user_value()))

    def apply_constraint(self) -> None:
        if self.constraint is not None:
            self.set_user_value(self.constraint(self.user_value()))

    def __repr__(self) -> str:
        kind = "Parameter" if self.trainable else "Buffer"
        return f"{kind}(shape={self.shape}, dtype={self.value.dtype})"


def as_float_array(x: Any, dtype: np.dtype, where: str) -> np.ndarray:
    """``x`` as a NumPy array of ``dtype`` (a torch tensor is copied to NumPy); ``TypeError`` if not numeric."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor handed in by mistake or by design
        x = x.detach().cpu().numpy()
    try:
        array = np.asarray(x)
    except Exception as error:  # pragma: no cover - exotic objects
        raise TypeError(f"{where}: expected an array; received {type(x).__name__}") from error
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"{where}: expected a numeric array; received dtype {array.dtype}")
    return array.astype(dtype, copy=False)


class Trainer(Protocol):
    """The Keras-style training loop that :class:`Module`'s ``compile``, ``fit``, ``evaluate`` and ``predict``
    delegate to (:mod:`tconv.nn.training` provides it)."""

    def compile(self, model: Module, optimizer: Any, loss: Any) -> None: ...

    def fit(self, model: Module, x: Any, y: Any, **options: Any) -> Any: ...

    def evaluate(self, model: Module, x: Any, y: Any, *, batch_size: int) -> float: ...

    def predict(self, model: Module, x: Any, *, batch_size: int) -> np.ndarray: ...


class Module:
    """Base class of layers and models.

    Subclasses implement ``forward(x)`` and ``_backward(grad)`` (and ``build``
    where parameter shapes depend on the input). Parameters and sub-modules
    assigned as attributes are registered in assignment order, which fixes the
    names of :meth:`state_dict` (``"0.weight"``, ``"block.conv.bias"``) and the
    order of :meth:`get_weights`.
    """

    trainer: ClassVar[Trainer]  # installed by tconv.nn.training
    activity_regularizer: Callable[..., Any] | None = None
    dtype: np.dtype = np.dtype(np.float32)
    _parameters: dict[str, Parameter]
    _modules: dict[str, Module]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        self.training = True
        self.built = True  # layers whose parameters wait for the first input set it to False
        self.output_shape: tuple[int | None, ...] | None = None
        self.input_shape: tuple[int | None, ...] | None = None
        self._last_output: np.ndarray | None = None
        self._compiled: tuple[Any, Any] | None = None  # (optimizer, loss): set by the trainer's compile

    # -- registration ---------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        modules = self.__dict__.get("_modules")
        if params is not None and modules is not None:
            params.pop(name, None)
            modules.pop(name, None)
            if isinstance(value, Parameter):
                params[name] = value
            elif isinstance(value, Module):
                modules[name] = value
        object.__setattr__(self, name, value)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "", *, trainable_only: bool = False) -> Iterator[tuple[str, Parameter]]:
        """Every parameter (and buffer, unless ``trainable_only``) with its state_dict name."""
        for name, param in self._parameters.items():
            if param.trainable or not trainable_only:
                yield (f"{prefix}.{name}" if prefix else name), param
        for name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}.{name}" if prefix else name, trainable_only=trainable_only)

    def parameters(self) -> list[Parameter]:
        """The trainable parameters, what an optimizer updates."""
        return [p for _, p in self.named_parameters(trainable_only=True)]

    # -- modes ----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for _, module in self.named_modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def astype(self, dtype: Any) -> Module:
        """Convert every parameter, and the dtype inputs are cast to, e.g. to float64 for finite differences."""
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"dtype must be a floating dtype; received {dtype}")
        for _, module in self.named_modules():
            module.dtype = dtype
        for _, param in self.named_parameters():
            param.value = param.value.astype(dtype)
            param.grad = None if param.grad is None else param.grad.astype(dtype)
        return self

    # -- computing --------------------------------------------------------------
    def build(self, input_shape: Sequence[int | None]) -> None:
        """Create the parameters for inputs of ``input_shape``; layers with fixed shapes need nothing."""
        self.built = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x: Any, **kwargs: Any) -> np.ndarray:
        x = as_float_array(x, self.dtype, type(self).__name__)
        if not self.built:
            self.build(tuple(x.shape))
            self.built = True
        self.input_shape = (None, *x.shape[1:])
        y = self.forward(x, **kwargs)
        self.output_shape = (None, *y.shape[1:])
        self._last_output = y if self.activity_regularizer is not None else None
        return y

    def backward(self, grad: Any) -> np.ndarray:
        """The loss's gradient with respect to the last input, given the one with respect to the last output.

        Accumulates into each parameter's ``grad`` (call :meth:`zero_grad` between
        steps), including the regularizers' gradients.
        """
        grad = as_float_array(grad, self.dtype, f"{type(self).__name__}.backward")
        if self.activity_regularizer is not None and self._last_output is not None:
            batch = max(1, self._last_output.shape[0])
            grad = grad + self.activity_regularizer.gradient(self._last_output) / batch  # type: ignore[attr-defined]
        grad_input = self._backward(grad)
        for param in self._parameters.values():
            if param.trainable and param.regularizer is not None:
                user = param.user_value()
                param.accumulate(param._from_user(param.regularizer.gradient(user)))  # type: ignore[attr-defined]
        return grad_input

    def zero_grad(self) -> None:
        for _, param in self.named_parameters():
            param.grad = None

    def regularization_loss(self) -> float:
        """The regularizers' penalties: on every weight, and on the last outputs (Keras divides those by the batch)."""
        total = 0.0
        for _, module in self.named_modules():
            for param in module._parameters.values():
                total += param.penalty()
            if module.activity_regularizer is not None and module._last_output is not None:
                batch = max(1, module._last_output.shape[0])
                total += float(module.activity_regularizer(module._last_output)) / batch
        return total

    # -- weights ----------------------------------------------------------------
    def _require_built(self, what: str) -> None:
        if not all(m.built for _, m in self.named_modules()):
            raise ValueError(
                f"{what} needs the parameters, which are created on the first call; call the model on an input "
                "or call model.build_from_shape(input_shape) first"
            )

    def count_params(self, *, trainable_only: bool = False) -> int:
        """Number of weights, running statistics included unless ``trainable_only`` (as Keras counts them)."""
        self._require_built("count_params()")
        return sum(p.size for _, p in self.named_parameters(trainable_only=trainable_only))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Name to array, in PyTorch's names and layouts (``"0.weight"``, ``"1.running_mean"``)."""
        self._require_built("state_dict()")
        return {name: p.value.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state_dict: dict[str, Any], *, strict: bool = True) -> None:
        """Load arrays by name: a tconv state_dict, or a PyTorch module's ``state_dict()`` (tensors accepted).

        PyTorch's ``num_batches_tracked`` counters are ignored. With ``strict``,
        missing and unexpected names raise ``ValueError``; shapes must always match.
        """
        self._require_built("load_state_dict()")
        own = dict(self.named_parameters())
        given = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
        missing = sorted(set(own) - set(given))
        unexpected = sorted(set(given) - set(own))
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match the model: missing {missing}, unexpected {unexpected}")
        for name, value in given.items():
            if name not in own:
                continue
            array = as_float_array(value, own[name].value.dtype, f"state_dict[{name!r}]")
            if array.shape != own[name].shape:
                raise ValueError(
                    f"state_dict[{name!r}] must have shape {own[name].shape}; received shape {array.shape}"
                )
            own[name].value = np.array(array, copy=True, order="C")  # never share memory with the source

    def get_weights(self) -> list[np.ndarray]:
        """The weights in Keras's order and layouts (``layer.get_weights()`` of every layer, concatenated)."""
        self._require_built("get_weights()")
        return [p.user_value().copy() for _, p in self.named_parameters()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Load Keras's ``model.get_weights()`` (or a layer's), converting the layouts."""
        self._require_built("set_weights()")
        params = [p for _, p in self.named_parameters()]
        if len(weights) != len(params):
            raise ValueError(f"weights must hold {len(params)} arrays for this model; received {len(weights)}")
        for index, (param, value) in enumerate(zip(params, weights)):
            array = as_float_array(value, param.value.dtype, f"weights[{index}]")
            expected = param.user_value().shape
            if array.shape != expected:
                raise ValueError(f"weights[{index}] must have shape {expected}; received shape {array.shape}")
            param.set_user_value(array)

    def save(self, path: Any) -> None:
        """Write the state_dict as a ``.npz`` file (arrays only, never pickle)."""
        np.savez(path, **self.state_dict())  # type: ignore[arg-type]

    def load(self, path: Any) -> None:
        """Read a ``.npz`` file written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as data:
            self.load_state_dict({name: data[name] for name in data.files})

    # -- Keras-style training ---------------------------------------------------
    def compile(self, optimizer: Any = "adam", loss: Any = "mse") -> None:
        """Choose the optimizer and loss that :meth:`fit` uses (names or objects)."""
        self.trainer.compile(self, optimizer, loss)

    def fit(self, x: Any, y: Any, **options: Any) -> Any:
        """Train on ``(x, y)``; see :func:`tconv.nn.training.fit` for the options."""
        return self.trainer.fit(self, x, y, **options)

    def evaluate(self, x: Any, y: Any, *, batch_size: int = 32) -> float:
        """The compiled loss on ``(x, y)``; see :func:`tconv.nn.training.evaluate`."""
        return self.trainer.evaluate(self, x, y, batch_size=batch_size)

    def predict(self, x: Any, *, batch_size: int = 32) -> np.ndarray:
        """The outputs in evaluation mode; see :func:`tconv.nn.training.predict`."""
        return self.trainer.predict(self, x, batch_size=batch_size)

    def summary(self, input_shape: Sequence[int | None] | None = None) -> Summary:
        """Table of layer, output shape and parameter count with totals (``str()`` is the table).

        ``params`` of a row counts the module and everything inside it.
        """
        if input_shape is not None:
            self.build_from_shape(input_shape)
        self._require_built("summary()")
        rows = []
        for name, module in self.named_modules():
            if module is self:
                continue
            params = sum(p.size for _, p in module.named_parameters())
            trainable = sum(p.size for _, p in module.named_parameters(trainable_only=True))
            depth = name.count(".")
            rows.append(SummaryRow(name, type(module).__name__, depth, module.output_shape, params, trainable))
        return Summary(type(self).__name__, tuple(rows), self.count_params(), self.count_params(trainable_only=True))

    def build_from_shape(self, input_shape: Sequence[int | None]) -> Module:
        """Create every parameter and record every output shape by running one sample of ``input_shape``.

        ``input_shape`` includes the batch axis, as in Keras's ``model.build``
        (``None`` or any size there; one sample is run).
        """
        shape = tuple(1 if i == 0 else s for i, s in enumerate(input_shape))
        if len(shape) < 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
            raise ValueError(
                f"input_shape must be (batch, ...) with positive ints (None for the batch); received {input_shape!r}"
            )
        modes = [(m, m.training) for _, m in self.named_modules()]
        self.eval()
        try:
            self(np.zeros(shape, dtype=self.dtype))
        finally:
            for module, mode in modes:
                module.training = mode
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + ")" if len(lines) > 1 else lines[0] + ")"
