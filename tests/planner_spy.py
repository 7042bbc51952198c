"""Which algorithms the engine runs for the calls inside a block (a test helper)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from unittest import mock

#: the engine's entry points (the package re-exports a function of the same name as the module)
engine_run = importlib.import_module("tconv.engine.run")


@contextlib.contextmanager
def chosen_algorithms() -> Iterator[list[str]]:
    """The names of the algorithms the engine's entry points run inside the block, in order (forced ones too):
    the planner's choice for each call (remembered from an earlier call of the same description, or made now),
    as :func:`tconv.engine.run._pick` takes it from the call's route, every call."""
    real, chosen = engine_run._pick, []

    def pick(*args, **kwargs):  # type: ignore[no-untyped-def]
        cut, algorithm = real(*args, **kwargs)
        chosen.append(algorithm.name)
        return cut, algorithm

    with mock.patch.object(engine_run, "_pick", pick):
        yield chosen
