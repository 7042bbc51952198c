"""What every test module shares: the oracle and the strategies on the import path, and the fixtures that set
a library's global switches for one test and restore them afterwards."""

import pathlib
import sys

import pytest

# The oracle and helpers live beside the tests.
sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture
def jax_x64():
    """JAX with float64 arrays enabled (``jax_enable_x64``) for one test, the previous setting restored after;
    skips the test where JAX is not installed."""
    jax = pytest.importorskip("jax")
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", previous)
