"""The interface every framework module implements once, the record of one framework's call, and the registry.

A framework (PyTorch, TensorFlow, ...) is one module of :mod:`tconv.frameworks` holding its array
functions (with the framework's own names and signatures) and one :class:`Framework` instance,
``FRAMEWORK``, that :mod:`tconv.frameworks` registers. Through it the tools and layers

* **read** the framework's call (its argument names, defaults, layouts and refusals) into tconv's
  core arguments or a :class:`tconv.ConvSpec` (:meth:`Framework.read`, :meth:`Framework.read_spec`);
* **write** a :class:`tconv.ConvSpec` as the framework's call (:meth:`Framework.write`): a
  :class:`FrameworkCall` with the function, its arguments, the weight layout and data format, the
  pre-pad / crop / group split the framework needs, and the code to paste;
* spell ``tconv explain``'s generic options in the framework's argument names
  (:meth:`Framework.options_as_arguments`), and run a call on the real framework for ``tconv bench``
  (:meth:`Framework.benchmark`, importing the framework only when called).

:func:`convert_weight` moves weights between the registered frameworks' layouts, which each
framework declares (:attr:`Framework.kernel_first`, :attr:`Framework.flips_transposed_weight`).
:meth:`Framework.default_padding` and :meth:`Framework.ways_to_size` (from the framework's
:meth:`Framework.size_candidates`, checked by its own :meth:`Framework.read`) let ``tconv shape`` and
``tconv explain`` answer in the framework's own words.

The module is long because it is the whole interface a framework implements (reading, writing, running,
reaching a size) with the records those methods exchange: one file shows a framework's author all of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from .. import shapes
from .._backend import Array, extend
from ..implementations.compiled.algorithms import transposed_weight
from ..spec import ConvSpec
from ._common import as_array, namespace

__all__ = [
    "REGISTRY",
    "Arguments",
    "BenchmarkCase",
    "Framework",
    "FrameworkCall",
    "Options",
    "SizeCandidate",
    "SizeGoal",
    "SizeWay",
    "convert_weight",
    "flipped_forward_weight",
    "get",
    "register",
]

Pairs = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class FrameworkCall:
    """One framework's way of writing a layer, and how to run it.

    ``post`` holds, per spatial axis, ``(before, after)`` elements to remove from the
    framework's output (negative: zeros to add); ``pre_pad`` zeros to add to the input
    first; ``subsample`` a stride to take from the output afterwards; ``split_groups`` how
    many separate calls (one per group) to concatenate. ``weight_layout`` names the
    framework whose layout :meth:`convert_weight` gives (or ``'oihw-flipped'``).
    """

    framework: str
    module: str
    function: str
    kwargs: dict[str, Any]
    channels_last: bool
    transposed: bool
    weight_layout: str
    bias_argument: str | None
    output_size: tuple[int, ...]
    pre_pad: Pairs | None = None
    post: Pairs = ()
    subsample: tuple[int, ...] = ()
    split_groups: int = 1
    notes: tuple[str, ...] = ()
    code: str = field(default="", compare=False)

    @property
    def exact(self) -> bool:
        """Whether the framework says the layer in one call, with no extra step."""
        return (
            self.pre_pad is None
            and not any(b or a for b, a in self.post)
            and not any(s != 1 for s in self.subsample)
            and self.split_groups == 1
        )

    @property
    def bias_in_call(self) -> bool:
        """Whether the bias goes into the call; otherwise it is added at the end (after any zero-extension)."""
        return self.bias_argument is not None and not any(b < 0 or a < 0 for b, a in self.post)

    def convert_weight(self, w: Any) -> Any:
        """tconv's weight (PyTorch layout) in the layout this call wants."""
        if self.weight_layout == "oihw-flipped":  # lax.conv_general_dilated with lhs_dilation
            g = self.split_groups if self.split_groups > 1 else int(self.kwargs.get("feature_group_count", 1))
            return flipped_forward_weight(np.asarray(w), g)
        return np.ascontiguousarray(
            convert_weight(np.asarray(w), "torch", self.weight_layout, transposed=self.transposed)
        )

    def run(
        self,
        module: Any,
        x: Any,
        w: Any,
        b: Any = None,
        *,
        to_framework: Callable[[np.ndarray], Any] = lambda a: a,
    ) -> np.ndarray:
        """Run the call with ``module``'s function on tconv-layout NumPy arrays.

        ``x`` is ``(N, C_in, *spatial)``, ``w`` in tconv's (PyTorch's) layout, ``b``
        ``(C_out,)``; the result is ``(N, C_out, *out)`` as NumPy. ``module`` is the
        framework's namespace (``torch.nn.functional``, ``tf.nn``, ``keras.ops``,
        ``jax.lax``, ``paddle.nn.functional``) or the matching :mod:`tconv.compat` module.
        """
        x, w = np.asarray(x), np.asarray(w)
        b = None if b is None else np.asarray(b)
        d = w.ndim - 2
        if self.pre_pad is not None:
            x = np.pad(x, [(0, 0), (0, 0), *self.pre_pad])
        groups = self.split_groups
        c_in_g = x.shape[1] // groups
        rows = w.shape[0] // groups
        outs = []
        for g in range(groups):
            xg = x[:, g * c_in_g : (g + 1) * c_in_g]
            wg = w[g * rows : (g + 1) * rows]
            c_out_g = wg.shape[1] if self.transposed else wg.shape[0]
            bg = None if b is None else (b if groups == 1 else b[g * c_out_g : (g + 1) * c_out_g])
            if self.channels_last:
                xg = np.moveaxis(xg, 1, -1)
            kwargs = dict(self.kwargs)
            if "output_shape" in kwargs:
                kwargs["output_shape"] = (x.shape[0], *self.output_size, c_out_g)
            if self.bias_in_call and bg is not None:
                kwargs[self.bias_argument] = to_framework(np.ascontiguousarray(bg))  # type: ignore[index]
            fn = getattr(module, self.function)
            out = _to_numpy(fn(to_framework(np.ascontiguousarray(xg)), to_framework(self.convert_weight(wg)), **kwargs))
            if self.channels_last:
                out = np.moveaxis(out, -1, 1)
            outs.append(out)
        out = np.concatenate(outs, axis=1) if groups > 1 else outs[0]
        numpy = array_api_compat.array_namespace(out)
        for axis, (before, after) in enumerate(self.post):
            out = extend(numpy, out, axis + 2, -before, -after)
        if not self.bias_in_call and b is not None:
            out = out + b.reshape(1, -1, *(1,) * d)
        if any(s != 1 for s in self.subsample):
            steps = [slice(None, None, s) for s in self.subsample]
            out = out[tuple([slice(None), slice(None), *steps])]
        return np.ascontiguousarray(out)


def flipped_forward_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """A transposed weight ``(in, out/groups, *k)`` as the forward weight ``(out, in/groups, *k)``, spatially
    flipped, of the correlation with the zero-inserted input that computes the same layer."""
    return transposed_weight(w, groups)  # the same swap and flip takes either layout to the other


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu()
    if hasattr(a, "numpy"):
        return np.asarray(a.numpy())
    return np.asarray(a)


@dataclass(frozen=True)
class Options:
    """``tconv explain``'s generic options for one layer, per axis, before a framework names them.

    ``mode`` is a string padding, lowercased (``None`` for integers); ``pairs`` integer padding
    as ``(lo, hi)`` pairs (``None`` for a string); ``padding`` what the user gave (for messages).
    """

    transposed: bool
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    padding: Any
    mode: str | None
    pairs: Pairs | None
    output_padding: tuple[int, ...] | None
    output_size: tuple[int, ...] | None

    @property
    def ndim(self) -> int:
        return len(self.input_size)


@dataclass(frozen=True)
class BenchmarkCase:
    """One case of ``tconv bench`` for :meth:`Framework.benchmark`: a transposed convolution ``spec``, its
    arrays as NumPy float32 (``x`` ``(N, C_in, *spatial)``, ``w`` in PyTorch's layout), whether to time its
    gradients instead of its forward, whether to use the framework's channels-last memory layout (where it has
    one), and the threads it may use."""

    spec: ConvSpec
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    grad: bool
    channels_last: bool
    threads: int


@dataclass(frozen=True)
class SizeGoal:
    """One axis of a transposed convolution and the output length wanted on it (``tconv shape --want``), for
    :meth:`Framework.ways_to_size`.

    ``solutions`` are the symmetric ``(padding, output_padding)`` pairs that give ``want``
    (:func:`tconv.shapes.solve_conv_transpose_padding`); ``crops`` one ``(lo, hi, output_padding)`` per
    place the output can start in the full output (``lo``, the alignment), asymmetric ones included.
    ``ndim`` is the layer's number of spatial axes (some spellings exist only for some).
    """

    ndim: int
    input_size: int
    kernel_size: int
    stride: int
    dilation: int
    want: int
    solutions: tuple[tuple[int, int], ...]
    crops: tuple[tuple[int, int, int], ...]

    @property
    def full_size(self) -> int:
        """The uncropped output length, ``(n-1)*s + d*(k-1) + 1``."""
        return shapes.transposed_full_size(self.input_size, self.kernel_size, self.stride, self.dilation)


class SizeCandidate(NamedTuple):
    """A way a framework might reach a wanted size: ``text`` in the framework's words, ``arguments`` its
    call's arguments for one axis (for :meth:`Framework.read`), ``explicit`` when the crop is spelled out
    (pairs, pads: the framework reaches any alignment that way)."""

    text: str
    arguments: dict[str, Any]
    explicit: bool = False


@dataclass(frozen=True)
class SizeWay:
    """A checked way of one framework to reach a wanted size on one axis: its words, and the crop
    ``(lo, hi)`` and output padding its own rules give (read back through :meth:`Framework.read`)."""

    framework: str
    text: str
    crop: tuple[int, int]
    output_padding: int
    explicit: bool = False

    @property
    def start(self) -> int:
        """Where the output starts in the full output (``crop[0]``): two ways with different starts give
        the same size, shifted against each other."""
        return self.crop[0]


class CallShape(NamedTuple):
    """What a framework's arguments are read against: the direction, the sizes and the data layout (``None``:
    the framework's default)."""

    transposed: bool
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    channels_last: bool | None


class Arguments:
    """A framework's arguments being read: :meth:`take` each known name, then :meth:`finish`."""

    def __init__(self, framework: str, arguments: Mapping[str, Any]) -> None:
        self.framework = framework
        self.left = dict(arguments)

    def take(self, *names: str, default: Any = None) -> Any:
        """The value of the first of ``names`` given (removing it), else ``default``."""
        for name in names:
            if name in self.left:
                return self.left.pop(name)
        return default

    def finish(self) -> None:
        """Refuse any argument not taken (``TypeError``)."""
        if self.left:
            raise TypeError(f"unknown {self.framework} argument(s) for translate: {', '.join(sorted(self.left))}")


class Framework(ABC):
    """One framework's rules: how to read its call, how to write a layer as its call, and its layouts."""

    #: the registry key, ``tconv.compat``'s module name and ``--framework``'s value
    name: str
    #: how the framework is named in messages and code comments
    display_name: str
    #: the weight layouts, as :data:`tconv.compat.TRANSPOSED_LAYOUTS` / ``FORWARD_LAYOUTS`` describe them
    #: (by default PyTorch's, which PyTorch, ONNX and Paddle share)
    transposed_layout: str = "(in, out/groups, *k)"
    forward_layout: str = "(out, in/groups, *k)"
    #: weights are ``(*k, P, Q)`` (the kernel axes first); otherwise PyTorch's ``(Q, P, *k)``
    kernel_first: bool = False
    #: transposed weights are ``(*k, in, out)`` spatially flipped (``lax.conv_transpose``'s default)
    flips_transposed_weight: bool = False
    #: whether its transposed convolutions take groups
    transposed_groups: bool = True
    #: the package ``tconv bench`` imports to run it (``None``: not benchmarked)
    runtime: str | None = None

    def read(
        self,
        transposed: bool,
        input_size: Sequence[int],
        kernel_size: Sequence[int],
        arguments: Mapping[str, Any],
        *,
        channels_last: bool | None = None,
    ) -> dict[str, Any]:
        """The framework's arguments (its own names) as tconv's core arguments.

        Returns ``stride``, ``padding``, ``dilation``, ``groups`` and, when ``transposed``,
        ``output_padding``, for :func:`tconv.conv` / :func:`tconv.conv_transpose`, applying the
        framework's defaults and refusing what it refuses. ``channels_last`` is the data layout
        where full-rank lists (batch and channel entries included) depend on it; ``None`` is the
        framework's default. Unknown names raise ``TypeError``. Each framework writes :meth:`parse`.
        """
        given = Arguments(self.name, arguments)
        core = self.parse(given, CallShape(transposed, tuple(input_size), tuple(kernel_size), channels_last))
        given.finish()
        return core

    @abstractmethod
    def parse(self, given: Arguments, call: CallShape) -> dict[str, Any]:
        """:meth:`read`'s work: :meth:`Arguments.take` each of the framework's names from ``given`` (what is
        left is refused afterwards) and return the core arguments for the call ``call`` describes."""

    def read_spec(
        self,
        transposed: bool,
        input_size: Sequence[int],
        kernel_size: Sequence[int],
        in_channels: int,
        out_channels: int,
        arguments: Mapping[str, Any],
    ) -> ConvSpec:
        """The framework's call as a :class:`tconv.ConvSpec` (:meth:`read`, then :meth:`tconv.ConvSpec.build`)."""
        core = self.read(transposed, input_size, kernel_size, arguments)
        return ConvSpec.build(
            transposed=transposed,
            input_size=input_size,
            kernel_size=kernel_size,
            in_channels=in_channels,
            out_channels=out_channels,
            **core,
        )

    @abstractmethod
    def write(self, spec: ConvSpec) -> FrameworkCall:
        """``spec`` as the framework's call: function, arguments, layouts, extra steps and the code to paste."""

    @abstractmethod
    def options_as_arguments(self, options: Options) -> dict[str, Any]:
        """``tconv explain``'s generic options in the framework's argument names (for :meth:`read`)."""

    def default_padding(self, transposed: bool) -> Any:
        """The padding the framework's call uses when none is given, as one of ``tconv explain``'s generic
        values (``0``, ``'same'``, ``'valid'``); ``None`` where the call requires it."""
        return 0

    def size_candidates(self, goal: SizeGoal) -> list[SizeCandidate]:
        """The framework's spellings that may reach ``goal.want`` on one axis (its strings, its
        ``output_shape``/``output_size``, its symmetric or explicit paddings). :meth:`ways_to_size` keeps
        those the framework's own rules (:meth:`read`) confirm; the default is none."""
        return []

    def ways_to_size(self, goal: SizeGoal) -> list[SizeWay]:
        """Every way, in the framework's own words, of reaching ``goal.want`` on one axis of a transposed
        convolution, each with the crop its rules give (read back through :meth:`read`, so a spelling the
        framework refuses or that gives another size is left out).

        Examples
        --------
        >>> goal = SizeGoal(2, 7, 5, 2, 1, 14, ((2, 1),), ((0, 3, 0), (1, 2, 0), (2, 1, 0), (3, 0, 0)))
        >>> [(w.text, w.crop) for w in get("torch").ways_to_size(goal)]
        [('padding=2, output_padding=1', (2, 2))]
        """
        ways = []
        for candidate in self.size_candidates(goal):
            try:
                core = self.read(True, (goal.input_size,), (goal.kernel_size,), candidate.arguments)
                entry, op = core["padding"][0], core["output_padding"][0]
                lo, hi = (entry, entry) if isinstance(entry, int) else entry  # PyTorch's core padding is ints
                if tuple(core["stride"]) != (goal.stride,) or tuple(core["dilation"]) != (goal.dilation,):
                    continue  # a spelling that changes the layer (Paddle's 'SAME' resets the dilation)
                size = shapes.conv_transpose_output_size(
                    goal.input_size,
                    goal.kernel_size,
                    stride=goal.stride,
                    padding=(lo, hi),
                    output_padding=op,
                    dilation=goal.dilation,
                )
            except (ValueError, TypeError):
                continue
            if size == goal.want:
                ways.append(SizeWay(self.name, candidate.text, (lo, hi), op, candidate.explicit))
        return ways

    def benchmark(self, case: BenchmarkCase) -> Callable[[], Any] | None:
        """A function running ``case`` on the real framework, for ``tconv bench``; ``None`` where the
        framework cannot run it."""
        return None

    def set_threads(self, threads: int) -> None:  # noqa: B027 (optional: most frameworks have nothing to set)
        """Tell the real framework to use ``threads`` threads (``tconv bench``, before its first call)."""


#: the registered frameworks by name, in the order :func:`tconv.translate` writes them
REGISTRY: dict[str, Framework] = {}


def register(framework: Framework) -> Framework:
    """Add ``framework`` to :data:`REGISTRY` (under ``framework.name``) and return it."""
    REGISTRY[framework.name] = framework
    return framework


def get(name: str, argument: str = "framework") -> Framework:
    """The registered framework called ``name``; ``ValueError`` naming ``argument`` otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"{argument} must be one of {', '.join(map(repr, REGISTRY))}; received {name!r}")
    return REGISTRY[name]


def convert_weight(w: Array, source: str, target: str, *, transposed: bool = True, groups: int = 1) -> Array:
    """Convert a weight between the frameworks' layouts.

    Transposed convolutions: PyTorch, ONNX and Paddle store ``(in, out/groups, *k)``;
    TensorFlow and Keras ``(*k, out, in)``; JAX's ``lax.conv_transpose`` with its
    default ``transpose_kernel=False`` wants ``(*k, in, out)`` *spatially flipped*
    (it correlates instead of scattering; with ``transpose_kernel=True`` it takes
    the Keras layout). Forward convolutions: PyTorch, ONNX, Paddle
    ``(out, in/groups, *k)``; TensorFlow, Keras and JAX (HWIO) ``(*k, in/groups, out)``.

    Parameters
    ----------
    w : array
        The weight, in ``source``'s layout; any array library.
    source, target : str
        One of ``'torch'``, ``'onnx'``, ``'paddle'``, ``'tensorflow'``, ``'keras'``, ``'jax'``.
    transposed : bool
        Whether ``w`` belongs to a transposed convolution.
    groups : int
        The layer's groups. TensorFlow, Keras and JAX transposed convolutions have
        none, so a grouped transposed weight cannot be converted to them.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.zeros((8, 4, 5, 5))              # PyTorch ConvTranspose2d(8, 4, 5)
    >>> convert_weight(w, "torch", "keras").shape
    (5, 5, 4, 8)
    >>> convert_weight(np.zeros((4, 8, 3)), "torch", "tensorflow", transposed=False).shape
    (3, 8, 4)
    """
    src, dst = get(source, "source"), get(target, "target")
    xp = namespace(w)
    w = as_array(xp, w)
    if w.ndim < 3:
        raise ValueError(f"w must have at least one spatial axis (ndim >= 3); received shape {tuple(w.shape)}")
    d = w.ndim - 2
    spatial = tuple(range(2, d + 2))
    if transposed and groups != 1 and not (src.transposed_groups and dst.transposed_groups):
        without = [f.display_name for f in REGISTRY.values() if not f.transposed_groups]
        names = ", ".join(without[:-1]) + " and " + without[-1] if len(without) > 1 else "".join(without)
        raise ValueError(
            f"{names} transposed convolutions have no groups; received groups={groups}. "
            "Run one transposed convolution per group and concatenate the results instead."
        )
    # To the canonical PyTorch layout: (A, B, *k).
    canon = w
    if src.kernel_first:
        canon = xp.permute_dims(w, (d + 1, d, *range(d)))  # (*k, P, Q) -> (Q, P, *k)
        if transposed and src.flips_transposed_weight:
            # (*k, in, out) flipped -> (out, in, *k) flipped -> (in, out, *k)
            canon = xp.flip(xp.permute_dims(canon, (1, 0, *spatial)), axis=spatial)
    if not dst.kernel_first:
        return canon
    if transposed and dst.flips_transposed_weight:
        return xp.permute_dims(xp.flip(canon, axis=spatial), (*spatial, 0, 1))  # (in, out, *k) flipped -> (*k, in, out)
    return xp.permute_dims(canon, (*spatial, 1, 0))  # (Q, P, *k) -> (*k, P, Q)
