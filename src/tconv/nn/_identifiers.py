"""Keras's rule for an argument that names an object or is one (``kernel_regularizer='l2'``,
``kernel_constraint=MaxNorm(3)``): what :func:`tconv.nn.regularizers.get` and :func:`tconv.nn.constraints.get`
share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["resolve"]


def resolve(
    identifier: Any, named: Mapping[str, Callable[[], Any]], kind: str, accepts: Callable[[Any], bool], accepted: str
) -> Any:
    """``None`` for ``None``, a new ``named[identifier]()`` for a name, ``identifier`` itself where ``accepts`` it;
    a ``ValueError`` for an unknown name, a ``TypeError`` naming the ``accepted`` kinds for anything else."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier not in named:
            raise ValueError(f"{kind} must be one of {sorted(named)} or None; received {identifier!r}")
        return named[identifier]()
    if accepts(identifier):
        return identifier
    raise TypeError(f"{kind} must be None, a name or {accepted}; received {type(identifier).__name__}")
