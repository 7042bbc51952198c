"""Which algorithms the planner picks for the calls inside a block (a test helper)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

from tconv.engine import planner


@contextlib.contextmanager
def chosen_algorithms() -> Iterator[list[str]]:
    """The names :func:`tconv.engine.planner.select` returns inside the block, in order (forced ones too)."""
    real, chosen = planner.select, []

    def select(*args, **kwargs):  # type: ignore[no-untyped-def]
        algorithm = real(*args, **kwargs)
        chosen.append(algorithm.name)
        return algorithm

    with mock.patch.object(planner, "select", select):
        yield chosen
