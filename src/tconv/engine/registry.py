"""The algorithm interface, the registry of algorithm objects, forcing one (:func:`use_algorithm`) and keeping the
planner from some (:func:`avoid_algorithms`).

Every algorithm is registered here, once, in the order below; the planner (:mod:`tconv.engine.planner`)
chooses among the registered objects only, and every entry point (:mod:`tconv.engine.run`) reaches an
algorithm through it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, Protocol

from .._backend import Array
from ..implementations import array_api
from ..implementations.compiled import algorithms as compiled
from ..spec import ConvSpec


class Algorithm(Protocol):
    """One way to compute a call, with its gradients, its support predicate and its cost.

    The arrays it receives are batched, in the compute dtype and in the caller's layout (``channels_last``
    says which); what it returns is too (the engine casts back and drops the batch axis).
    """

    #: The name :func:`algorithms` lists and :func:`use_algorithm` takes.
    name: str
    #: One line: what it does and what it needs.
    description: str
    #: Whether :meth:`transpose_grads` shares work between a transposed convolution's two gradients; if not,
    #: the input gradient is a call of the convolution and the weight's comes from :meth:`weight_grad`.
    shares_transpose_grads: bool

    def supports(self, spec: ConvSpec, xp: Any) -> bool:
        """Whether it can run this call in the array namespace ``xp``."""
        ...

    def cost(self, spec: ConvSpec, channels_last: bool = False) -> float | None:
        """Seconds per sample by the planner's cost model, in the caller's layout; None where the model does not
        rank it."""
        ...

    def batch_cost(self, spec: ConvSpec, batch: int, channels_last: bool = False) -> float | None:
        """Seconds for the samples of a call of ``batch`` of them by the planner's cost model (:meth:`cost` times the
        batch, unless the algorithm's way of running depends on the batch); None where the model does not rank it."""
        ...

    def setup_cost(self, spec: ConvSpec) -> float:
        """Seconds per call that do not grow with the batch (a weight rearranged on every call); 0 for none."""
        ...

    def forward(
        self, xp: Any, x: Array, weight: Array, bias: Array | None, spec: ConvSpec, channels_last: bool
    ) -> Array:
        """The call's result (a convolution or a transposed convolution, as ``spec`` says)."""
        ...

    def weight_grad(self, xp: Any, x: Array, grad_output: Array, spec: ConvSpec, channels_last: bool) -> Array:
        """The loss's gradient with respect to the weight, in the weight's own layout."""
        ...

    def transpose_grads(
        self, xp: Any, x: Array, weight: Array, grad_output: Array, spec: ConvSpec, channels_last: bool
    ) -> tuple[Array, Array]:
        """A transposed convolution's ``(grad_x, grad_weight)`` in one pass (where it shares work)."""
        ...

    def runs_weight_grad_in_blocks(self, spec: ConvSpec, batch: int, channels_last: bool) -> bool:
        """Whether the engine runs a call's weight gradient (``batch`` samples) in register blocks
        (:func:`~tconv.implementations.compiled.algorithms.weight_grad_in_blocks`) instead of :meth:`weight_grad`,
        where no algorithm is forced: the compiled algorithms where the cost model prices the blocks lower; the
        array-API ones never."""
        ...


_ALGORITHMS: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> None:
    """Add an algorithm object (the planner decides which one runs a call)."""
    if algorithm.name in _ALGORITHMS:
        raise ValueError(f"an algorithm named {algorithm.name!r} is registered already")
    _ALGORITHMS[algorithm.name] = algorithm


for _algorithm in (*array_api.ALGORITHMS, *compiled.ALGORITHMS):
    register(_algorithm)


def registered() -> tuple[Algorithm, ...]:
    """The registered algorithm objects, in the order of registration."""
    return tuple(_ALGORITHMS.values())


def get(name: str) -> Algorithm:
    """The registered algorithm called ``name``."""
    return _ALGORITHMS[name]


_FORCED: contextvars.ContextVar[str | None] = contextvars.ContextVar("tconv_algorithm", default=None)


_AVOIDED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("tconv_avoided", default=frozenset())


def forced() -> Algorithm | None:
    """The algorithm :func:`use_algorithm` forces here, if any."""
    name = _FORCED.get()
    return None if name is None else _ALGORITHMS[name]


def avoided() -> frozenset[str]:
    """The names :func:`avoid_algorithms` keeps the planner from here (empty outside any such block)."""
    return _AVOIDED.get()


def algorithms() -> list[str]:
    """The names of the registered algorithms; the planner chooses among them per call.

    ``jit_gemm``, ``jit_pixels``, ``jit_patches``, ``jit_direct``, ``jit_im2col``, ``jit_winograd``,
    ``jit_winograd4``, ``jit_pointwise``, ``jit_depthwise``, ``jit_blocked``, ``jit_dots`` and ``jit_phases`` are the
    compiled NumPy paths (numba, rank <= 3); the others are the array-API paths that run on any library
    (PyTorch, CuPy, JAX, NumPy without numba).
    :func:`use_algorithm` forces one; :func:`avoid_algorithms` keeps the planner from some.

    Examples
    --------
    >>> import tconv
    >>> tconv.algorithms()  # doctest: +NORMALIZE_WHITESPACE
    ['jit_dots', 'jit_blocked', 'jit_depthwise', 'jit_pointwise', 'jit_winograd4', 'jit_winograd', 'jit_im2col',
     'jit_direct', 'jit_phases', 'jit_patches', 'jit_pixels', 'jit_gemm', 'gemm', 'taps', 'depth_to_space', 'direct']
    """
    return list(reversed(list(_ALGORITHMS)))


@contextlib.contextmanager
def use_algorithm(name: str | None) -> Iterator[None]:
    """Force one algorithm for the calls inside the block (``None``: let the planner choose).

    A forced algorithm that does not support a call raises ``ValueError`` rather than
    silently falling back, so tests can cover every path.

    Examples
    --------
    >>> import numpy as np, tconv
    >>> with tconv.use_algorithm("taps"):
    ...     tconv.conv_transpose(np.ones((1, 1, 2)), np.ones((1, 1, 2)), stride=2)
    array([[[1., 1., 1., 1.]]])
    """
    if name is not None and name not in _ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(map(repr, _ALGORITHMS))} or None; received {name!r}")
    token = _FORCED.set(name)
    try:
        yield
    finally:
        _FORCED.reset(token)


@contextlib.contextmanager
def avoid_algorithms(*names: str) -> Iterator[None]:
    """Keep the planner from choosing the named algorithms for the calls inside the block; it chooses among the
    others as it would (forward calls and gradients alike).

    Where :func:`use_algorithm` forces one algorithm (which raises on a call it cannot run), this keeps every
    call running: e.g. ``avoid_algorithms("jit_winograd4")`` keeps F(4x4, 3x3)'s looser float32 rounding out
    wherever the planner would pick it, and the planner picks the next by its rules (F(2x2, 3x3), or the direct
    sum or the im2col where those rank next); its other choices stay as they were. Blocks nest: an inner block
    avoids its names and the outer block's. Like :func:`use_algorithm`, the setting holds in the thread (and
    ``contextvars`` context) that enters the block. With every algorithm that could run a call avoided, the call
    raises ``ValueError``; so does forcing an avoided algorithm.

    Examples
    --------
    >>> import numpy as np, tconv
    >>> x, w = np.ones((1, 1, 3)), np.ones((1, 1, 2))
    >>> with tconv.avoid_algorithms("jit_gemm", "jit_direct"):
    ...     tconv.conv_transpose(x, w, stride=2)
    array([[[1., 1., 1., 1., 1., 1.]]])
    """
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"avoid_algorithms takes algorithm names (str); received {name!r} ({type(name).__name__})")
        if name not in _ALGORITHMS:
            raise ValueError(
                f"avoid_algorithms: each name must be one of {', '.join(map(repr, _ALGORITHMS))}; received {name!r}"
            )
    token = _AVOIDED.set(_AVOIDED.get() | frozenset(names))
    try:
        yield
    finally:
        _AVOIDED.reset(token)
