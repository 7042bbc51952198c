"""Parameters, modules, containers, the seeded generator and the summary table.

A :class:`Module` computes ``forward`` on NumPy arrays and, given the loss's
gradient with respect to its output, ``backward`` returns the gradient with
respect to its input and *accumulates* its parameters' gradients, as
``loss.backward()`` does in PyTorch. Every layer caches what its backward needs
during forward; the last forward is the one differentiated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .losses import Loss
    from .optim import Optimizer

__all__ = [
    "Module",
    "Parallel",
    "Parameter",
    "Residual",
    "Sequential",
    "Summary",
    "SummaryRow",
    "generator",
    "manual_seed",
]

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


def _as_float_array(x: Any, dtype: np.dtype, where: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor handed in by mistake or by design
        x = x.detach().cpu().numpy()
    try:
        array = np.asarray(x)
    except Exception as error:  # pragma: no cover - exotic objects
        raise TypeError(f"{where}: expected an array; received {type(x).__name__}") from error
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"{where}: expected a numeric array; received dtype {array.dtype}")
    return array.astype(dtype, copy=False)


class Module:
    """Base class of layers and models.

    Subclasses implement ``forward(x)`` and ``_backward(grad)`` (and ``build``
    where parameter shapes depend on the input). Parameters and sub-modules
    assigned as attributes are registered in assignment order, which fixes the
    names of :meth:`state_dict` (``"0.weight"``, ``"block.conv.bias"``) and the
    order of :meth:`get_weights`.
    """

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
        self._compiled: tuple[Optimizer, Loss] | None = None

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
        x = _as_float_array(x, self.dtype, type(self).__name__)
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
        grad = _as_float_array(grad, self.dtype, f"{type(self).__name__}.backward")
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
            array = _as_float_array(value, own[name].value.dtype, f"state_dict[{name!r}]")
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
            array = _as_float_array(value, param.value.dtype, f"weights[{index}]")
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
        from . import losses, optim

        self._compiled = (optim.get(optimizer, self), losses.get(loss))

    def fit(self, x: Any, y: Any, **options: Any) -> Any:
        """Train on ``(x, y)``; see :func:`tconv.nn.training.fit` for the options."""
        from .training import fit

        return fit(self, x, y, **options)

    def evaluate(self, x: Any, y: Any, *, batch_size: int = 32) -> float:
        from .training import evaluate

        return evaluate(self, x, y, batch_size=batch_size)

    def predict(self, x: Any, *, batch_size: int = 32) -> np.ndarray:
        from .training import predict

        return predict(self, x, batch_size=batch_size)

    def summary(self, input_shape: Sequence[int | None] | None = None) -> Summary:
        """Table of layer, output shape and parameter count with totals (``str()`` is the table)."""
        if input_shape is not None:
            self.build_from_shape(input_shape)
        self._require_built("summary()")
        return Summary.of(self)

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


class Sequential(Module):
    """Layers applied one after another; children are named ``"0"``, ``"1"``, ... as in PyTorch.

    When the first layer was given an ``input_shape`` (Keras's
    ``Dense(..., input_shape=(100,))``), the model is built at once and
    ``output_shape`` follows every :meth:`add`, so seed 000's assertions run.

    Examples
    --------
    >>> from tconv import nn
    >>> model = nn.Sequential([nn.Dense(8, input_shape=(4,)), nn.ReLU()])
    >>> model.output_shape
    (None, 8)
    >>> model.count_params()
    40
    """

    def __init__(self, layers: Iterable[Module] = ()) -> None:
        super().__init__()
        self._sample_shape: tuple[int, ...] | None = None
        for layer in layers:
            self.add(layer)

    def add(self, layer: Module) -> None:
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
        setattr(self, str(index), layer)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self._modules.values():
            x = layer(x)
        return x

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        for layer in reversed(list(self._modules.values())):
            grad = layer.backward(grad)
        return grad


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

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        pieces = np.split(grad, np.cumsum(self._sizes)[:-1], axis=self.axis)
        total = None
        for branch, piece in zip(self._modules.values(), pieces):
            g = branch.backward(piece)
            total = g if total is None else total + g
        assert total is not None
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

    def _backward(self, grad: np.ndarray) -> np.ndarray:
        if self._has_activation:
            grad = self.activation.backward(grad)
        g_body = self.body.backward(grad)
        g_short = self.shortcut.backward(grad) if self._has_shortcut else grad
        return g_body + g_short


@dataclass(frozen=True)
class SummaryRow:
    name: str
    kind: str
    depth: int
    output_shape: tuple[int | None, ...] | None
    params: int
    trainable: int


@dataclass(frozen=True)
class Summary:
    """A model's table: one row per module (nested ones indented), with totals.

    ``params`` of a row counts the module and everything inside it.
    """

    model: str
    rows: tuple[SummaryRow, ...]
    total: int
    trainable: int

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable

    @classmethod
    def of(cls, model: Module) -> Summary:
        rows = []
        for name, module in model.named_modules():
            if module is model:
                continue
            params = sum(p.size for _, p in module.named_parameters())
            trainable = sum(p.size for _, p in module.named_parameters(trainable_only=True))
            depth = name.count(".")
            rows.append(SummaryRow(name, type(module).__name__, depth, module.output_shape, params, trainable))
        total = model.count_params()
        return cls(type(model).__name__, tuple(rows), total, model.count_params(trainable_only=True))

    def __str__(self) -> str:
        header = ("Layer (type)", "Output Shape", "Param #")
        body = []
        for row in self.rows:
            label = "  " * row.depth + f"{row.name.rsplit('.', 1)[-1]} ({row.kind})"
            shape = "?" if row.output_shape is None else re.sub(r"\s+", "", str(row.output_shape)).replace(",", ", ")
            body.append((label, shape, f"{row.params:,}"))
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(3)]
        rule = "-" * (sum(widths) + 6)
        lines = [f'Model: "{self.model}"', rule.replace("-", "=")]
        lines.append(f"{header[0]:<{widths[0]}}   {header[1]:<{widths[1]}}   {header[2]:>{widths[2]}}")
        lines.append(rule.replace("-", "="))
        for label, shape, params in body:
            lines.append(f"{label:<{widths[0]}}   {shape:<{widths[1]}}   {params:>{widths[2]}}")
        lines.append(rule.replace("-", "="))
        lines.append(f"Total params: {self.total:,}")
        lines.append(f"Trainable params: {self.trainable:,}")
        lines.append(f"Non-trainable params: {self.non_trainable:,}")
        lines.append(rule)
        return "\n".join(lines)
