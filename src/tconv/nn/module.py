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

This module is long because :class:`Module` carries both frameworks' model idioms (PyTorch's ``apply``,
``to``, ``state_dict``, parameters with ``.data``; Keras's ``name``, ``training=``, ``get_weights``,
``save_weights``, ``summary``), each a few lines that the users of either framework expect on every model.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Literal, Protocol, overload

import numpy as np

from .summary import Summary, SummaryRow

__all__ = [
    "Module",
    "Parameter",
    "Trainer",
    "as_float_array",
    "auto_name",
    "check_weights_path",
    "clear_names",
    "generator",
    "manual_seed",
]

_rng = np.random.default_rng()

# How many modules each Keras-style name prefix has named ("dense", "dense_1", ...), as Keras counts them.
_name_counts: defaultdict[str, int] = defaultdict(int)


def auto_name(class_name: str) -> str:
    """The next Keras-style name for a module of class ``class_name``: the class in snake case
    (``Conv2DTranspose`` -> ``conv2d_transpose``, ``LeakyReLU`` -> ``leaky_re_lu``), then ``_1``, ``_2``, ...

    Examples
    --------
    >>> clear_names(); auto_name("Conv2DTranspose"), auto_name("Conv2DTranspose"), auto_name("LeakyReLU")
    ('conv2d_transpose', 'conv2d_transpose_1', 'leaky_re_lu')
    """
    prefix = re.sub(r"\W+", "", class_name)
    prefix = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", prefix)
    prefix = re.sub(r"([a-z])([A-Z])", r"\1_\2", prefix).lower()
    count = _name_counts[prefix]
    _name_counts[prefix] += 1
    return f"{prefix}_{count}" if count else prefix


def clear_names() -> None:
    """Start the Keras-style names over (``dense``, ``dense_1``, ...), as ``keras.backend.clear_session()`` does."""
    _name_counts.clear()


# The calls of sub-modules made during each running forward (innermost last): (module, its input, its output).
_calls: list[list[tuple[Any, Any, Any]]] = []


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
    buffer : bool
        True for PyTorch's buffers (the PyTorch-flavoured batch norms' running
        statistics): in the ``state_dict`` but not counted by :meth:`Module.count_params`
        or the summary, as PyTorch counts ``model.parameters()``.
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
        buffer: bool = False,
    ) -> None:
        self.value = np.asarray(value)
        self.grad: np.ndarray | None = None
        self.trainable = trainable
        self.buffer = buffer
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

    @property
    def data(self) -> np.ndarray:
        """The value itself (PyTorch's ``param.data``): in-place changes, as ``nn.init.normal_(m.weight.data,
        0.0, 0.02)`` makes them, change the parameter."""
        return self.value

    @data.setter
    def data(self, value: Any) -> None:
        array = np.asarray(value, dtype=self.value.dtype)
        if array.shape != self.value.shape:
            raise ValueError(f"data must have shape {self.shape}; received shape {array.shape}")
        self.value = np.array(array, copy=True, order="C")

    @property
    def requires_grad(self) -> bool:
        """Whether optimizers update it (PyTorch's name for ``trainable``)."""
        return self.trainable

    def numel(self) -> int:
        """The number of values (PyTorch's ``numel()``)."""
        return self.size

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


def check_weights_path(path: Any, method: str, *, writing: bool = True) -> None:
    """``ValueError`` for a weights file name tconv would not honour: Keras's ``.keras``/``.h5`` names, and
    (writing) a name that does not end in ``.npz``, which NumPy would silently extend. An open file passes."""
    if not isinstance(path, (str, os.PathLike)):
        return
    name = os.fspath(path)
    text = name if isinstance(name, str) else name.decode(errors="replace")
    lower = text.lower()
    stem = re.sub(r"(\.weights)?\.(keras|h5|hdf5)$", "", text, flags=re.IGNORECASE)
    if lower.endswith((".keras", ".h5", ".hdf5")):
        kind = "Keras's .keras format (architecture and weights)" if lower.endswith(".keras") else "HDF5"
        raise ValueError(
            f"{method} reads and writes the weights as a NumPy .npz archive, not {kind}; received {text!r}. "
            f"Use {stem + '.weights.npz'!r}, and build the model in code before load_weights"
            + (
                "; to bring a Keras model's weights, build it with tconv.nn.keras and call "
                "model.set_weights(keras_model.get_weights())"
                if not writing
                else ""
            )
        )
    if writing and not lower.endswith(".npz"):
        raise ValueError(
            f"{method} writes a NumPy .npz archive at exactly the path given, which must end in .npz; received "
            f"{text!r} (NumPy would write {text + '.npz'!r}); use {text + '.npz'!r}"
        )


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
    if np.issubdtype(array.dtype, np.complexfloating):  # casting would drop the imaginary parts
        raise TypeError(f"{where}: expected a real array; received dtype {array.dtype}")
    return array.astype(dtype, copy=False)


class Trainer(Protocol):
    """The Keras-style training loop that :class:`Module`'s ``compile``, ``fit``, ``evaluate`` and ``predict``
    delegate to (:mod:`tconv.nn.training` provides it)."""

    def compile(self, model: Module, optimizer: Any, loss: Any, metrics: Sequence[Any] | None = None) -> None: ...

    def fit(self, model: Module, x: Any, y: Any, **options: Any) -> Any: ...

    def evaluate(self, model: Module, x: Any, y: Any, *, batch_size: int, return_dict: bool = False) -> Any: ...

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
    #: Whether the summary labels the module by its Keras-style ``name`` (the Keras-flavoured layers) rather than
    #: by its attribute name (``"0"``, ``"main.3"``; PyTorch's naming).
    keras_flavoured: ClassVar[bool] = False
    activity_regularizer: Callable[..., Any] | None = None
    dtype: np.dtype = np.dtype(np.float32)
    #: False while :meth:`backward` runs with ``input_grad=False``: the caller has no use for the gradient with
    #: respect to the input, so ``_backward`` may skip computing it (and returns None)
    needs_input_grad: bool = True
    _parameters: dict[str, Parameter]
    _modules: dict[str, Module]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        self.name = auto_name(type(self).__name__)
        self.training = True
        self.built = True  # layers whose parameters wait for the first input set it to False
        self.output_shape: tuple[int | None, ...] | None = None
        self.input_shape: tuple[int | None, ...] | None = None
        self._last_output: np.ndarray | None = None
        self._tape: tuple[list[tuple[Module, Any, Any]], Any, Any] = ([], None, None)
        self._compiled: tuple[Any, Any, list[Any]] | None = None  # (optimizer, loss, metrics): the trainer's compile

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

    def modules(self) -> Iterator[Module]:
        """This module and every module inside it, depth first (PyTorch's ``modules()``)."""
        for _, module in self.named_modules():
            yield module

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module, then on this module (PyTorch's ``apply``, e.g. ``weights_init``).

        Examples
        --------
        >>> from tconv import nn
        >>> model = nn.torch.Sequential(nn.torch.Linear(2, 3), nn.torch.ReLU())
        >>> names = []
        >>> _ = model.apply(lambda m: names.append(m.__class__.__name__))
        >>> names
        ['Linear', 'ReLU', 'Sequential']
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """PyTorch's ``to(device)``/``to(dtype)``: the CPU (``"cpu"`` or ``torch.device("cpu")``) is where tconv.nn
        computes already; a floating dtype converts like :meth:`astype`. Other devices raise ``ValueError``."""
        for value in (*args, *kwargs.values()):
            device = value.type if isinstance(getattr(value, "type", None), str) else value  # torch.device
            if isinstance(device, str) and device.split(":")[0] == "cpu":
                continue
            torch_dtype = type(value).__module__.startswith("torch")
            try:
                dtype = np.dtype(str(value).removeprefix("torch.") if torch_dtype else value)
            except TypeError:
                raise ValueError(
                    f"tconv.nn computes with NumPy on the CPU; received {value!r} (give 'cpu' or a floating dtype)"
                ) from None
            self.astype(dtype)
        return self

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

    def _backward(self, grad: np.ndarray) -> np.ndarray | None:
        """By default, a forward that chains its sub-modules (``return self.main(input)``, or ``x = self.a(x);
        return self.b(x)``) is differentiated by their backward in reverse; anything else must write its own."""
        tape, x, y = self._tape
        chained = bool(tape) and tape[0][1] is x and tape[-1][2] is y
        chained = chained and all(tape[i][1] is tape[i - 1][2] for i in range(1, len(tape)))
        if not chained:
            raise NotImplementedError(
                f"{type(self).__name__} does not implement _backward, and its forward is not a chain of its "
                "sub-modules (each called on the previous one's output) that tconv could differentiate"
            )
        return backward_chain([module for module, _, _ in tape], grad, self.needs_input_grad)

    def __call__(self, x: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> np.ndarray:
        """``forward(x)`` on ``x`` as a NumPy array of the module's dtype, building the parameters first if
        needed. ``training=True``/``False`` (Keras's ``model(x, training=False)``) runs this call in that mode
        and restores the modes after; ``None`` keeps the current mode (:meth:`train`/:meth:`eval`)."""
        if training is None:
            return self._call(x, *args, **kwargs)
        modes = [(m, m.training) for _, m in self.named_modules()]
        self.train(bool(training))
        try:
            return self._call(x, *args, **kwargs)
        finally:
            for module, mode in modes:
                module.training = mode

    def _call(self, x: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        given = x
        x = as_float_array(x, self.dtype, type(self).__name__)
        if not self.built:
            self.build(tuple(x.shape))
            self.built = True
        self.input_shape = (None, *x.shape[1:])
        tape: list[tuple[Module, Any, Any]] = []
        _calls.append(tape)
        try:
            y = self.forward(x, *args, **kwargs)
        finally:
            _calls.pop()
        if len(_calls) > 0:  # the caller's record of its sub-modules' calls, for the default _backward
            _calls[-1].append((self, given, y))
        self._tape = (tape, x, y)
        self.output_shape = (None, *y.shape[1:])
        self._last_output = y if self.activity_regularizer is not None else None
        return y

    @overload
    def backward(self, grad: Any) -> np.ndarray: ...

    @overload
    def backward(self, grad: Any, *, input_grad: Literal[True]) -> np.ndarray: ...

    @overload
    def backward(self, grad: Any, *, input_grad: bool) -> np.ndarray | None: ...

    def backward(self, grad: Any, *, input_grad: bool = True) -> np.ndarray | None:
        """The loss's gradient with respect to the last input, given the one with respect to the last output.

        Accumulates into each parameter's ``grad`` (call :meth:`zero_grad` between
        steps), including the regularizers' gradients. ``input_grad=False`` says the
        caller has no use for the input's gradient (a training step's model, whose
        input is data: PyTorch skips it for an input that does not require grad):
        :attr:`needs_input_grad` is then False while ``_backward`` runs, the layers
        that can skip computing it (the convolutions, the dense layer) do, containers
        pass it on to the sub-module that reads their input (a chain's modules before
        its first with a trainable parameter are not run: :func:`backward_chain`),
        and None is returned.
        """
        if not isinstance(input_grad, (bool, np.bool_)):
            raise TypeError(f"input_grad must be True or False; received {input_grad!r}")
        input_grad = bool(input_grad)
        grad = as_float_array(grad, self.dtype, f"{type(self).__name__}.backward")
        if self.activity_regularizer is not None and self._last_output is not None:
            batch = max(1, self._last_output.shape[0])
            grad = grad + self.activity_regularizer.gradient(self._last_output) / batch  # type: ignore[attr-defined]
        self.needs_input_grad = input_grad
        try:
            grad_input = self._backward(grad)
        finally:
            self.needs_input_grad = True
        for param in self._parameters.values():
            if param.trainable and param.regularizer is not None:
                user = param.user_value()
                param.accumulate(param._from_user(param.regularizer.gradient(user)))  # type: ignore[attr-defined]
        return grad_input if input_grad else None

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
        """Number of weights, as the layers' framework counts them (``trainable_only``: the trainable ones).

        The Keras-flavoured batch normalization's moving mean and variance are non-trainable weights, counted
        as Keras's ``count_params()`` counts them; the PyTorch-flavoured batch norms' running statistics are
        buffers, not counted, as ``sum(p.numel() for p in model.parameters())`` counts in PyTorch.

        Examples
        --------
        >>> from tconv import nn
        >>> keras_bn = nn.keras.BatchNormalization()
        >>> keras_bn.build((None, 4, 4, 8))
        >>> nn.torch.BatchNorm2d(8).count_params(), keras_bn.count_params()
        (16, 32)
        """
        self._require_built("count_params()")
        return sum(p.size for _, p in self.named_parameters(trainable_only=trainable_only) if not p.buffer)

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
        checked = {}  # every array is checked before any is assigned: a bad one leaves the model as it was
        for name, value in given.items():
            if name not in own:
                continue
            array = as_float_array(value, own[name].value.dtype, f"state_dict[{name!r}]")
            if array.shape != own[name].shape:
                raise ValueError(
                    f"state_dict[{name!r}] must have shape {own[name].shape}; received shape {array.shape}"
                )
            checked[name] = np.array(array, copy=True, order="C")  # never share memory with the source
        for name, array in checked.items():
            own[name].value = array

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
        checked = []  # every array is checked before any is assigned: a bad one leaves the model as it was
        for index, (param, value) in enumerate(zip(params, weights)):
            array = as_float_array(value, param.value.dtype, f"weights[{index}]")
            expected = param.user_value().shape
            if array.shape != expected:
                raise ValueError(f"weights[{index}] must have shape {expected}; received shape {array.shape}")
            checked.append(np.array(array, copy=True))
        for param, array in zip(params, checked):
            param.set_user_value(array)

    def save(self, path: Any) -> None:
        """Write the state_dict as a ``.npz`` file (arrays only, never pickle) at exactly ``path``.

        ``path`` must end in ``.npz`` (or be an open binary file); Keras's ``.keras`` and HDF5 names are
        refused with what to write instead, since the file holds the weights only, as a NumPy archive.
        """
        check_weights_path(path, "save")
        np.savez(path, **self.state_dict())  # type: ignore[arg-type]

    def load(self, path: Any) -> None:
        """Read a ``.npz`` file written by :meth:`save` (``allow_pickle=False``).

        Every array is read and checked before any weight changes: a file that is not such an archive (a
        ``.npy`` file, a truncated or corrupt one) raises ``ValueError`` saying what it is, and the model keeps
        its weights.
        """
        check_weights_path(path, "load", writing=False)
        expected = "expected a .npz archive written by Module.save (one array per parameter name)"
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(
                f"cannot read {path!r} as a weights file: not a .npz archive, or a truncated or corrupt one "
                f"({err}); {expected}"
            ) from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path!r} holds a single array of shape {data.shape} (a .npy file); {expected}")
        with data:
            try:
                arrays = {name: data[name] for name in data.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise ValueError(f"{path!r} is a truncated or corrupt archive ({err}); {expected}") from None
        self.load_state_dict(arrays)

    def save_weights(self, filepath: Any, overwrite: bool = True) -> None:
        """Keras's ``save_weights``: :meth:`save` at exactly ``filepath``, which must end in ``.npz``
        (``"model.weights.npz"``: a NumPy archive, where Keras 3 writes HDF5 to ``.weights.h5``).

        Examples
        --------
        >>> import os, tempfile
        >>> from tconv import nn
        >>> model = nn.keras.Sequential([nn.keras.layers.Dense(2, input_shape=(3,))])
        >>> path = os.path.join(tempfile.mkdtemp(), "m.weights.npz")
        >>> model.save_weights(path); sorted(os.listdir(os.path.dirname(path)))
        ['m.weights.npz']
        >>> model.load_weights(path)
        """
        check_weights_path(filepath, "save_weights")
        if not overwrite and isinstance(filepath, (str, os.PathLike)) and os.path.exists(filepath):
            raise FileExistsError(f"{os.fspath(filepath)!r} exists; pass overwrite=True to replace it")
        self.save(filepath)

    def load_weights(self, filepath: Any) -> None:
        """Keras's ``load_weights``: :meth:`load` of a file written by :meth:`save_weights` or :meth:`save`."""
        check_weights_path(filepath, "load_weights", writing=False)
        self.load(filepath)

    # -- Keras-style training ---------------------------------------------------
    def compile(self, optimizer: Any = "adam", loss: Any = "mse", metrics: Sequence[Any] | None = None) -> None:
        """Choose the optimizer and loss that :meth:`fit` uses (names or objects), and the ``metrics`` that
        :meth:`fit` and :meth:`evaluate` report with the loss (``'accuracy'``, ``'mae'``, ``'mse'``, ... as
        Keras names them; see :mod:`tconv.nn.training`)."""
        self.trainer.compile(self, optimizer, loss, metrics)

    def fit(self, x: Any, y: Any, **options: Any) -> Any:
        """Train on ``(x, y)``; see :func:`tconv.nn.training.fit` for the options."""
        return self.trainer.fit(self, x, y, **options)

    def evaluate(self, x: Any, y: Any, *, batch_size: int = 32, return_dict: bool = False) -> Any:
        """The compiled loss on ``(x, y)``, or ``[loss, *metrics]`` when compiled with metrics (Keras's return);
        see :func:`tconv.nn.training.evaluate`."""
        return self.trainer.evaluate(self, x, y, batch_size=batch_size, return_dict=return_dict)

    def predict(self, x: Any, *, batch_size: int = 32) -> np.ndarray:
        """The outputs in evaluation mode; see :func:`tconv.nn.training.predict`."""
        return self.trainer.predict(self, x, batch_size=batch_size)

    def summary(
        self, input_shape: Sequence[int | None] | None = None, *, print_fn: Callable[[str], Any] | None = print
    ) -> Summary:
        """Print the table of layer, output shape and parameter count with totals, and return it.

        Printed as Keras's ``model.summary()`` prints (``print_fn=None``: only returned; ``str()`` of the
        returned :class:`~tconv.nn.summary.Summary` is the table). ``input_shape`` is one sample's shape
        without the batch axis (torchsummary's ``summary(model, (100, 1, 1))``; a leading ``None`` includes
        the batch axis, as Keras's ``build``): one sample is run first, so every output shape is known.
        Without it, the shapes recorded by the last call are shown, ``?`` before any, and a layer whose
        parameters wait for its first input counts ``0 (unbuilt)``, as Keras shows it.

        Keras-flavoured layers are labelled by their Keras names (``dense (Dense)``), the others by their
        attribute names (``0 (ConvTranspose2d)``). ``params`` of a row counts the module and everything
        inside it, as :meth:`count_params` counts.
        """
        if input_shape is not None:
            shape = tuple(input_shape)
            full = shape if shape and shape[0] is None else (None, *shape)
            try:
                self.build_from_shape(full)
            except ValueError as err:
                raise ValueError(
                    f"{err}; summary's input_shape is one sample's shape without the batch axis, e.g. (100, 1, 1) "
                    f"(a leading None includes the batch axis: (None, 100, 1, 1)); received {input_shape!r}"
                ) from None
        rows = []
        for name, module in self.named_modules():
            if module is self:
                continue
            counted = [p for _, p in module.named_parameters() if not p.buffer]
            params = sum(p.size for p in counted)
            trainable = sum(p.size for p in counted if p.trainable)
            label = module.name if module.keras_flavoured else name.rsplit(".", 1)[-1]
            built = all(m.built for _, m in module.named_modules())
            rows.append(
                SummaryRow(label, type(module).__name__, name.count("."), module.output_shape, params, trainable, built)
            )
        counted = [p for _, p in self.named_parameters() if not p.buffer]
        summary = Summary(
            self.name,
            tuple(rows),
            sum(p.size for p in counted),
            sum(p.size for p in counted if p.trainable),
        )
        if print_fn is not None:
            print_fn(str(summary))
        return summary

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


def backward_chain(modules: Sequence[Module], grad: np.ndarray, input_grad: bool) -> np.ndarray | None:
    """The backward of modules called one on the previous one's output, the first on the chain's input. Without
    ``input_grad``, the modules before the first with a trainable parameter have nothing to accumulate and are
    not run, and that one is told its input's gradient is not wanted (``backward(..., input_grad=False)``; the
    keyword is passed only then, so a module that overrides ``backward(grad)`` itself still works)."""
    if input_grad or not modules:
        for module in reversed(modules):
            grad = module.backward(grad)
        return grad
    trainable = [i for i, module in enumerate(modules) if next(module.named_parameters(trainable_only=True), None)]
    if not trainable:
        return None
    first = trainable[0]
    for module in reversed(modules[first + 1 :]):
        grad = module.backward(grad)
    modules[first].backward(grad, input_grad=False)
    return None
