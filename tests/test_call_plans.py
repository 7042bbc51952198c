"""Forward calls planned whole (``tconv.ops._PLANS``, :class:`tconv.engine.run.CallPlan`): from the second call of
a description on NumPy arrays, a call runs the route decided then without the checks, the namespace and the
engine's routing. What must hold: the same results as the oracle, the same algorithm as the routed call, and
every change of what the route depends on (a forced or avoided algorithm, the team's size, the dtype, the shapes,
the options, a weight the dead taps would multiply by zero that is not finite) seen on the next call."""

import importlib

import numpy as np
import pytest

import tconv
from oracle import naive_conv, naive_conv_transpose
from planner_spy import chosen_algorithms
from tconv import ops
from tconv.implementations.compiled import team

engine_run = importlib.import_module("tconv.engine.run")  # the module, not the package's function of that name


class _Subclass(np.ndarray):
    """An ndarray subclass: converted by the checks on every call, never planned."""


def _calls(fn, times=3):
    return [fn() for _ in range(times)]


def test_a_call_is_planned_on_its_second_call_and_runs_its_route_from_then_on():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 4, 7, 7)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(3)
    expected = naive_conv_transpose(x, w, b, stride=[2, 2], pads=[(1, 1)] * 2)
    engine_run._route.cache_clear()
    with chosen_algorithms() as chosen:
        outs = _calls(lambda: tconv.conv_transpose(x, w, b, stride=2, padding=1), 4)
    for out in outs:
        np.testing.assert_allclose(out, expected, atol=1e-10)
        assert out.flags.c_contiguous and out.dtype == np.float64
    assert len(ops._PLANS) == 1  # planned at the second call, run by the plan at the third and fourth
    assert engine_run._route.cache_info().misses == 1 and engine_run._route.cache_info().hits == 1
    assert len(set(chosen)) == 1 and len(chosen) == 4  # every call, planned or not, ran the same algorithm


def test_planned_calls_of_other_strides_unbatched_and_channels_last_give_the_oracles_results():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 5, 9, 9)).astype(np.float32), rng.standard_normal((6, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    expected = naive_conv(x, w, b, stride=[1, 1], pads=[(1, 1)] * 2)
    wide = np.zeros((3, 5, 9, 18), dtype=np.float32)
    wide[..., ::2] = x
    strided = wide[..., ::2]  # the same shape, other strides: the plan holds no stride
    for out in _calls(lambda: tconv.conv(x, w, b, padding=1)) + _calls(lambda: tconv.conv(strided, w, b, padding=1)):
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    for out in _calls(lambda: tconv.conv(x[1], w, b, padding=1)):  # unbatched: its own plan
        assert out.shape == expected.shape[1:] and out.flags.c_contiguous
        np.testing.assert_allclose(out, expected[1], rtol=1e-4, atol=1e-4)
    last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for out in _calls(lambda: tconv.conv(last, w, b, padding=1, channels_last=True)):
        np.testing.assert_allclose(out, np.moveaxis(expected, 1, -1), rtol=1e-4, atol=1e-4)
    assert len(ops._PLANS) == 3  # batched (both strides), unbatched, channels-last


def test_a_planned_call_sees_a_forced_or_avoided_algorithm_and_the_teams_size(monkeypatch):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    expected = naive_conv(x, w, stride=[1, 1], pads=[(0, 0)] * 2)
    with chosen_algorithms() as chosen:
        planned = _calls(lambda: tconv.conv(x, w))
    own = chosen[-1]
    other = "gemm" if own != "gemm" else "taps"  # array-API algorithms: they run with or without the kernels
    with chosen_algorithms() as chosen, tconv.use_algorithm(other):
        forced = _calls(lambda: tconv.conv(x, w))
    assert chosen == [other] * 3
    with chosen_algorithms() as chosen, tconv.avoid_algorithms(own):
        avoided = _calls(lambda: tconv.conv(x, w))
    assert own not in chosen
    size = team.size()
    with monkeypatch.context() as patched:
        patched.setattr(team, "size", lambda: 1 if size > 1 else 2)  # another team size: another plan
        with chosen_algorithms() as chosen:
            resized = _calls(lambda: tconv.conv(x, w))
        assert len(ops._PLANS) == 4  # the call's own, forced, avoided and resized plans
    with chosen_algorithms() as chosen:
        again = _calls(lambda: tconv.conv(x, w))
    assert chosen == [own] * 3  # back outside the blocks: the first plan again
    for out in planned + forced + avoided + resized + again:
        np.testing.assert_allclose(out, expected, atol=1e-10)
    with tconv.use_algorithm("jit_pointwise"), pytest.raises(ValueError, match="does not support this call"):
        tconv.conv(x, w)  # a forced algorithm that cannot run the call is refused, planned or not
    with tconv.use_algorithm("jit_pointwise"), pytest.raises(ValueError, match="does not support this call"):
        tconv.conv(x, w)


def test_a_planned_cut_runs_whole_when_the_weight_holds_a_nan_or_an_infinity():
    """A 9x9 kernel over a 2x2 map with padding 4: the dead taps are cut where the weight is finite. Once the call is
    planned, a weight with a NaN or an infinity in a dead tap runs whole, NaN wherever that tap meets the padding
    (every framework carries 0 * inf into the result), and a finite one is cut again."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((1, 8, 2, 2)), rng.standard_normal((4, 8, 9, 9))
    with chosen_algorithms():
        for out in _calls(lambda: tconv.conv(x, w, padding=4)):
            np.testing.assert_allclose(out, naive_conv(x, w, stride=[1, 1], pads=[(4, 4)] * 2), atol=1e-9)
    assert len(ops._PLANS) == 1
    plan = next(iter(ops._PLANS.values()))
    assert plan.route[1] is not None  # its route cuts the dead taps
    for bad in (np.nan, np.inf):
        poisoned = w.copy()
        poisoned[0, 0, 0, 0] = bad  # a dead tap
        out = tconv.conv(x, poisoned, padding=4)
        assert np.isnan(out[0, 0]).all() and np.isfinite(out[0, 1:]).all()
    expected = naive_conv(x, w, stride=[1, 1], pads=[(4, 4)] * 2)
    np.testing.assert_allclose(tconv.conv(x, w, padding=4), expected, atol=1e-9)  # finite again: cut again


def test_only_plain_numpy_calls_of_one_dtype_are_planned_and_anything_else_is_checked_afresh():
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(2)
    expected = naive_conv_transpose(x, w, b, stride=[2, 2], pads=[(0, 0)] * 2)
    _calls(lambda: tconv.conv_transpose(x, w, b, stride=2))
    assert len(ops._PLANS) == 1
    x32, w32, b32 = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    for out in _calls(lambda: tconv.conv_transpose(x32, w32, b32, stride=2)):
        assert out.dtype == np.float32  # another dtype, another plan (its route decided for 4-byte elements)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert len(ops._PLANS) == 2
    with pytest.raises(TypeError, match="dtype"):
        tconv.conv_transpose(x, w, b.astype(np.float32), stride=2)  # mixed dtypes: refused, never planned
    with pytest.raises(TypeError, match="channels_last"):
        tconv.conv_transpose(x, w, b, stride=2, channels_last=1)  # 1 is not True: its key differs
    _calls(lambda: tconv.conv_transpose(x, w, b, stride=np.int64(2)))  # a NumPy scalar option: parsed every time
    for out in _calls(lambda: tconv.conv_transpose(x.view(_Subclass), w, b, stride=2)):  # a subclass: checked
        np.testing.assert_allclose(out, expected, atol=1e-10)
    assert len(ops._PLANS) == 2
    with pytest.raises(ValueError, match="channels"):
        tconv.conv_transpose(x[:, :2], w, b, stride=2)  # another shape: checked, refused


def test_the_plans_are_forgotten_when_full(monkeypatch):
    monkeypatch.setattr(ops, "_PLANS_LIMIT", 2)
    w = np.ones((1, 1, 3))
    for size in (5, 6, 7, 8):
        for _ in range(2):
            out = tconv.conv(np.ones((1, 1, size)), w)
            np.testing.assert_array_equal(out, np.full((1, 1, size - 2), 3.0))
        assert len(ops._PLANS) <= 2
