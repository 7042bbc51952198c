"""What every test module shares: the oracle and the strategies on the import path, and the fixtures that set
a library's global switches for one test and restore them afterwards."""

import contextlib
import os
import pathlib
import sys

import pytest

# The oracle and helpers live beside the tests.
sys.path.insert(0, str(pathlib.Path(__file__).parent))

# TensorFlow's CPU kernels depend on the machine: it turns its oneDNN kernels on by itself only on some CPUs
# (newer x86 ones: AVX-512 VNNI or BF16, AMX; not this project's AMD EPYC, nor older AVX-512 CPUs). Without them,
# its Eigen kernels refuse calls that tconv and oneDNN compute: a Conv1DTranspose or conv_transpose with dilation
# > 1 ("Current CPU implementations do not yet support dilation rates larger than 1") and some empty inputs with an
# output shape of 1 ("Size of out_backprop doesn't match computed"). The peer tests compare tconv with one
# TensorFlow on every machine: its oneDNN kernels, unless the person running the tests chose otherwise (a
# TensorFlow built without oneDNN keeps its Eigen kernels: there those peer comparisons fail). Set here, before
# any test imports TensorFlow.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@pytest.fixture(autouse=True)
def _fresh_routes():
    """Every test starts with the engine's remembered routing forgotten (``tconv.engine.run._route``,
    ``direct_conv.dots_preferred``, the direct sum's channels-last route, its choice of tiles, estimates and tile plans,
    ``jit_blocked``'s estimates and plans (along the rows and across the samples), ``jit_dots``' (both ways), the
    planner's cached choices, the direct sum's twin and weight-gradient choices, the weight gradient's register blocks
    (their estimates, plans and choice), the dead-tap cut's and whether a
    transposed input gradient runs apart (all but the first two cleared again after the test), the team's
    measured choices, and the forward calls planned whole with their routes, ``tconv.ops._PLANS``): a test that
    changes the tuning constants or the compiled path's availability (monkeypatched) sees the planner decide again,
    whichever tests ran before it."""
    import importlib

    importlib.import_module("tconv.engine.run")._route.cache_clear()
    direct = importlib.import_module("tconv.implementations.compiled.direct_conv")
    direct.dots_preferred.cache_clear()
    blocked = importlib.import_module("tconv.implementations.compiled.blocked")
    dots = importlib.import_module("tconv.implementations.compiled.window_dots")
    planner = importlib.import_module("tconv.engine.planner")
    algorithms = importlib.import_module("tconv.implementations.compiled.algorithms")
    run = importlib.import_module("tconv.engine.run")
    weights = importlib.import_module("tconv.implementations.compiled.weight_blocks")
    caches = (
        blocked._costs, blocked._plan, blocked._across_cost, blocked._across_plan, dots.cost, dots.channels_cost,
        dots._plan, direct.tiles_cheaper, direct._planes_cost, direct._tiles_plan, planner.plan, algorithms.direct_twin,
        algorithms.direct_weight_grad, algorithms._blocks_weight_grad, weights._cost, weights._plan, weights.tile_rows,
        run._cut_if_cheaper, run._input_grad_apart,
    )  # fmt: skip  # their estimates, plans and choices read the constants
    for cache in caches:
        cache.cache_clear()
    team = importlib.import_module("tconv.implementations.compiled.team")
    team._probes.clear()  # the kernel calls and products measured alone and on the team (team._measured)
    team._watched.clear()  # and their decisions' watches (team._watch)
    importlib.import_module("tconv.ops")._PLANS.clear()  # the calls planned whole, with their routes
    yield
    for cache in caches:  # a test that replaced _costs leaves no plan made from its numbers
        cache.cache_clear()


@contextlib.contextmanager
def _x64(jax):
    """``jax_enable_x64`` on inside the block, its previous setting restored after."""
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        yield jax
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def jax_x64():
    """JAX with float64 arrays enabled (``jax_enable_x64``) for one test, the previous setting restored after;
    skips the test where JAX is not installed."""
    jax = pytest.importorskip("jax")
    with _x64(jax):
        yield jax


@pytest.fixture
def jax_x64_if_installed():
    """``jax_x64`` for a test that compares whichever frameworks are installed: None, not a skip, without JAX."""
    try:
        import jax
    except ImportError:
        yield None
        return
    with _x64(jax):
        yield jax


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, imported with its C++ log messages silenced (``TF_CPP_MIN_LOG_LEVEL=3`` unless set, which
    TensorFlow reads when it loads), the environment restored after the import; skips where it is missing."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
        return pytest.importorskip("tensorflow")


@pytest.fixture
def controlled_blas() -> list:
    """The BLAS libraries whose thread count threadpoolctl lets one thread at a time change (3.8 on: OpenBLAS with
    its own threads, one pool for the process; the first thread to change the count is its only "controlling
    thread" until it gives the control up or ends, other threads' changes silently ignored); the test is skipped
    where there are none."""
    from tconv.implementations.compiled import team

    libs = [
        lib
        for lib in team._blas_libraries()
        if hasattr(type(lib), "clear_controlling_thread") and lib.threading_layer != "openmp"
    ]
    if not libs:
        pytest.skip("no BLAS under threadpoolctl's controlling thread (threadpoolctl < 3.8, or OpenMP BLAS)")
    return libs
