"""What TensorFlow's, Keras's, JAX's and Paddle's own convolution tests cover, as parameter grids of tconv's own
(sampled with fixed seeds), run against the real frameworks: the numbers must agree, and tconv must refuse
exactly where the framework refuses. The grids follow the axes of TensorFlow's ``conv2d_transpose_test`` /
``conv_ops_test`` (output_shape forms, SAME/VALID/explicit padding, strides with dilations, empty inputs),
Keras's conv layer tests (groups, strides with dilation_rate), JAX's ``lax_test`` ``testConvGeneralDilated``
(feature and batch groups, zero-width inputs, lhs/rhs dilation, layouts, 0-D) and ``testConvTranspose``, and
Paddle's ``test_conv2d_transpose_op.py`` (output_size, SAME/VALID, groups, NHWC). Paddle runs in a process of its
own (``paddle_reference.py``). Each framework's test skips where it is not installed.
"""

# ruff: noqa: B023  (each lambda is called by _compare within its own loop iteration)
from __future__ import annotations

import itertools
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tconv.compat import jax as cjax
from tconv.compat import paddle as cpaddle
from tconv.compat import tensorflow as ctf
from tconv.nn import keras as knn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _compare(label, run_framework, run_tconv, counts, rtol=1e-4, atol=1e-4):
    """Run both; count an agreement, a shared refusal, or fail on a disagreement."""
    try:
        expected = np.asarray(run_framework())
    except Exception:  # the framework refuses: so must tconv
        with pytest.raises((ValueError, TypeError)):
            run_tconv()
        counts["refused"] += 1
        return
    got = np.asarray(run_tconv())
    assert got.shape == expected.shape, label
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=label)
    counts["agreed"] += 1


def _counts():
    return {"agreed": 0, "refused": 0}


# -- TensorFlow -------------------------------------------------------------------------------------------


def test_tensorflow_transposed_grid():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(170)
    counts = _counts()
    functions = {1: (tf.nn.conv1d_transpose, ctf.conv1d_transpose), 2: (tf.nn.conv2d_transpose, ctf.conv2d_transpose)}
    functions[3] = (tf.nn.conv3d_transpose, ctf.conv3d_transpose)
    for trial in range(60):
        d = 1 + trial % 3
        # Empty inputs and inadmissible output shapes in 1-D and 2-D only: TensorFlow's CPU conv3d_transpose
        # aborts the process on some of them (a failed CHECK, not an exception).
        n = rng.integers(0 if trial % 10 == 0 and d < 3 else 1, 5, size=d).tolist()
        k = rng.integers(1, 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        batch = 0 if trial % 15 == 7 and d < 3 else 2
        x = rng.standard_normal((batch, *n, 3)).astype(np.float32)
        f = rng.standard_normal((*k, 2, 3)).astype(np.float32)
        padding = str(rng.choice(["SAME", "VALID"]))
        base = [a * b if padding == "SAME" else (a - 1) * b + kk for a, b, kk in zip(n, s, k)]
        out = [max(v - int(rng.integers(0, 2 if d < 3 else 1)), 1) for v in base]
        form = trial % 4  # a list, a NumPy array, a tensor, the spatial sizes alone
        shape = [batch, *out, 2]
        given = [shape, np.array(shape), tf.constant(shape), out if d == 2 else shape][form]
        strides = s if trial % 2 else np.array(s)
        fn, mine = functions[d]
        _compare(
            f"{d}-D {n} {k} {s} {padding} {out} form {form}",
            lambda: fn(x, f, given, strides, padding).numpy(),
            lambda: mine(x, f, given, strides, padding),
            counts,
        )
    assert counts["agreed"] >= 30, counts


def test_tensorflow_forward_grid_strides_with_dilations():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(171)
    counts = _counts()
    for trial in range(60):
        d = 1 + trial % 3
        fn = {1: tf.nn.conv1d, 2: tf.nn.conv2d, 3: tf.nn.conv3d}[d]
        mine = {1: ctf.conv1d, 2: ctf.conv2d, 3: ctf.conv3d}[d]
        k = rng.integers(1, 4, size=d).tolist()
        s = int(rng.integers(1, 3))
        dil = int(rng.integers(1, 3))
        # Inputs at least as long as the dilated kernel: where TensorFlow's rule gives an empty output, its CPU
        # (oneDNN) kernels return an array of the input's shape instead (the empty cases are tested below).
        n = [max(int(v), (kk - 1) * dil + 1) for v, kk in zip(rng.integers(3, 9 if d < 3 else 6, size=d), k)]
        # No empty batch: TensorFlow's CPU (oneDNN) Conv2D returns the input's shape for it, not the output's.
        x = rng.standard_normal((2, *n, 4)).astype(np.float32)
        f = rng.standard_normal((*k, 4 // (1 + trial % 2), 3 * (1 + trial % 2))).astype(np.float32)
        kind = trial % 3
        if d == 3 and f.shape[-2] != 4:
            f = rng.standard_normal((*k, 4, 3)).astype(np.float32)  # TensorFlow's CPU Conv3D has no groups
        padding = ["SAME", "VALID", [[0, 0], *([1, 2] for _ in range(d)), [0, 0]]][kind]
        if d == 1 and kind == 2:
            padding = "SAME"  # tf.nn.conv1d takes no explicit padding
        _compare(
            f"{d}-D {n} {k} s={s} d={dil} {padding}",
            lambda: fn(x, f, s, padding, dilations=dil).numpy(),
            lambda: mine(x, f, s, padding, dilations=dil),
            counts,
        )
        # tf.nn.convolution refuses strides > 1 with dilations > 1 where conv*d accepts them
        _compare(
            f"convolution {d}-D s={s} d={dil}",
            lambda: tf.nn.convolution(x, f, s, padding if isinstance(padding, str) else "SAME", dilations=dil).numpy(),
            lambda: ctf.convolution(x, f, s, padding if isinstance(padding, str) else "SAME", dilations=dil),
            counts,
        )
    assert counts["agreed"] >= 60 and counts["refused"] >= 10, counts


def test_tensorflow_zero_sized_cases_from_the_issue():
    tf = pytest.importorskip("tensorflow")
    x, f = np.zeros((3, 1, 0, 3), np.float32), np.ones((1, 1, 2, 3), np.float32)
    expected = tf.nn.conv2d_transpose(x, f, [3, 1, 1, 2], 1, "VALID").numpy()
    np.testing.assert_array_equal(ctf.conv2d_transpose(x, f, [3, 1, 1, 2], 1, "VALID"), expected)
    x, f = np.zeros((1, 0, 2, 1), np.float32), np.ones((1, 1, 1, 2), np.float32)
    pads = [[0, 0], [1, 1], [1, 1], [0, 0]]
    np.testing.assert_array_equal(ctf.conv2d(x, f, 1, pads), tf.nn.conv2d(x, f, 1, pads).numpy())


def test_tensorflow_integer_inputs_are_refused_on_purpose():
    """tf.nn.conv2d computes int32 on the CPU; tconv refuses with a message that says so (kept on purpose)."""
    tf = pytest.importorskip("tensorflow")
    x, f = np.ones((1, 4, 4, 1), np.int32), np.ones((3, 3, 1, 2), np.int32)
    assert tf.nn.conv2d(x, f, 1, "VALID").numpy().sum() == 72
    with pytest.raises(TypeError, match=r"tf\.nn\.conv1d, conv2d and convolution compute int32 on the CPU"):
        ctf.conv2d(x, f, 1, "VALID")


# -- Keras -------------------------------------------------------------------------------------------------


def test_keras_layer_grid_with_groups_and_strides_with_dilation():
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    rng = np.random.default_rng(172)
    counts = _counts()
    for trial in range(36):
        d = 1 + trial % 3
        transposed = trial % 4 == 3
        kind = f"Conv{d}DTranspose" if transposed else f"Conv{d}D"
        groups = 1 if transposed else int(rng.choice([1, 2, 3]))
        filters = int(rng.choice([2, 3, 6]))
        strides = int(rng.integers(1, 3))
        dilation = int(rng.integers(1, 3))
        padding = str(rng.choice(["valid", "same"]))
        kernel = int(rng.integers(1, 4))
        options = dict(strides=strides, padding=padding, dilation_rate=dilation)
        if groups > 1:
            options["groups"] = groups
        x = rng.standard_normal((2, *rng.integers(5, 9 if d < 3 else 7, size=d).tolist(), 6)).astype(np.float32)

        def real():
            layer = getattr(keras.layers, kind)(filters, kernel, **options)
            y = layer(x)
            real.weights = layer.get_weights()
            return y.numpy()

        def mine():
            layer = getattr(knn, kind)(filters, kernel, **options)
            layer.build(x.shape)
            layer.set_weights(real.weights)
            return layer(x)

        real.weights = None
        try:
            expected = real()
        except Exception:
            with pytest.raises((ValueError, TypeError)):
                layer = getattr(knn, kind)(filters, kernel, **options)
                layer(x)
            counts["refused"] += 1
            continue
        np.testing.assert_allclose(mine(), expected, rtol=1e-4, atol=1e-4, err_msg=f"{kind} {options}")
        counts["agreed"] += 1
    assert counts["agreed"] >= 15 and counts["refused"] >= 3, counts


# -- JAX ---------------------------------------------------------------------------------------------------


def test_jax_conv_general_dilated_grid(jax_x64):
    """testConvGeneralDilated's grid: feature and batch groups, widths 0 and 10, two paddings, lhs and rhs
    dilations, three layouts; a fixed-seed sample of it."""
    lax = jax_x64.lax
    rng = np.random.default_rng(173)
    counts = _counts()
    layouts = [
        (("NCHW", "OIHW", "NCHW"), ([0, 1, 2, 3], [0, 1, 2, 3])),
        (("NHWC", "HWIO", "NHWC"), ([0, 2, 3, 1], [2, 3, 1, 0])),
        (("NCHW", "HWIO", "NHWC"), ([0, 1, 2, 3], [2, 3, 1, 0])),
    ]
    grid = list(
        itertools.product(
            [(1, 1), (2, 1), (1, 2)],
            [0, 10],
            itertools.product([2, 3], repeat=3),
            [(1, 1), (2, 1)],
            [((1, 2), (2, 0)), ((10, 8), (7, 13))],
            itertools.product([(1, 1), (1, 2), (1, 4)], repeat=2),
            layouts,
        )
    )
    for i in rng.choice(len(grid), size=150, replace=False):
        (bgc, fgc), w, (b, c, j), strides, padding, (lhs_d, rhs_d), (dims, (lhs_perm, rhs_perm)) = grid[i]
        lhs = np.transpose(rng.standard_normal((b * bgc, c * fgc, 9, w)), lhs_perm)
        rhs = np.transpose(rng.standard_normal((j * fgc * bgc, c, 4, 5)), rhs_perm)
        options = dict(dimension_numbers=dims, feature_group_count=fgc, batch_group_count=bgc)
        _compare(
            str(grid[i]),
            lambda: lax.conv_general_dilated(lhs, rhs, strides, padding, lhs_d, rhs_d, **options),
            lambda: cjax.conv_general_dilated(lhs, rhs, strides, padding, lhs_d, rhs_d, **options),
            counts,
            atol=1e-10,
        )
    # 0-D (no spatial axis): a matrix product, with feature groups
    for groups in (1, 5):
        x, y = rng.standard_normal((10, 5)), rng.standard_normal((10, 5 // groups))
        _compare(
            f"0-D groups={groups}",
            lambda: lax.conv_general_dilated(x, y, (), "VALID", feature_group_count=groups),
            lambda: cjax.conv_general_dilated(x, y, (), "VALID", feature_group_count=groups),
            counts,
            atol=1e-10,
        )
    assert counts["agreed"] >= 150, counts


def test_jax_conv_transpose_grid(jax_x64):
    """testConvTranspose's grid: 1-3 spatial axes, strides, SAME/VALID, rhs dilation, transpose_kernel."""
    lax = jax_x64.lax
    rng = np.random.default_rng(174)
    counts = _counts()
    for trial in range(60):
        d = 1 + trial % 3
        n = rng.integers(1, 7 if d < 3 else 4, size=d).tolist()
        k = rng.integers(1, 4, size=d).tolist()
        strides = rng.integers(1, 3, size=d).tolist()
        dilation = rng.integers(1, 3, size=d).tolist()
        x = rng.standard_normal((2, *n, 3))
        transpose_kernel = bool(trial % 2)
        rhs = rng.standard_normal((*k, 4, 3) if transpose_kernel else (*k, 3, 4))
        padding = str(rng.choice(["SAME", "VALID"]))
        options = dict(rhs_dilation=dilation, transpose_kernel=transpose_kernel)
        _compare(
            f"{d}-D {n} {k} {strides} {padding} {options}",
            lambda: lax.conv_transpose(x, rhs, strides, padding, **options),
            lambda: cjax.conv_transpose(x, rhs, strides, padding, **options),
            counts,
            atol=1e-10,
        )
    assert counts["agreed"] >= 55, counts


# -- Paddle ------------------------------------------------------------------------------------------------


def test_paddle_conv2d_transpose_grid(tmp_path):
    """test_conv2d_transpose_op.py's axes: output_size (ints, lists, wrong lengths), SAME/VALID, groups,
    dilation, asymmetric padding, NHWC; computed by Paddle in a process of its own."""
    import importlib.util

    if importlib.util.find_spec("paddle") is None:
        pytest.skip("paddlepaddle is not installed")
    rng = np.random.default_rng(175)
    cases = []
    for trial in range(48):
        groups = int(rng.choice([1, 2]))
        n = rng.integers(2, 6, size=2).tolist()
        k = rng.integers(1, 4, size=2).tolist()
        s = rng.integers(1, 3, size=2).tolist()
        dilation = rng.integers(1, 3, size=2).tolist()
        kwargs: dict = dict(stride=s, groups=groups, dilation=dilation)
        kind = trial % 6
        if kind == 0:
            kwargs["padding"] = "SAME"
        elif kind == 1:
            kwargs["padding"] = "VALID"
        elif kind == 2:
            kwargs["padding"] = [int(v) for v in rng.integers(0, 2, size=4)]
        else:
            kwargs["padding"] = [int(v) for v in rng.integers(0, 2, size=2)]
            smallest = [
                (a - 1) * b + (kk - 1) * dd + 1 - 2 * p for a, b, kk, dd, p in zip(n, s, k, dilation, kwargs["padding"])
            ]
            size = [v + int(rng.integers(0, b + 1)) for v, b in zip(smallest, s)]  # one past Paddle's range too
            kwargs["output_size"] = [size, size[:1], int(size[0]) if size[0] == size[1] else size][kind - 3]
        x = rng.standard_normal((2, 2 * groups, *n)).astype(np.float32)
        w = rng.standard_normal((2 * groups, 3, *k)).astype(np.float32)
        if trial % 8 == 5:
            kwargs["data_format"] = "NHWC"
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        cases.append((x, w, kwargs))
    payload = {"count": np.array(len(cases))}
    for i, (x, w, kwargs) in enumerate(cases):
        payload[f"x{i}"], payload[f"w{i}"], payload[f"kwargs{i}"] = x, w, np.array(json.dumps(kwargs))
    np.savez(tmp_path / "cases.npz", **payload)
    script = pathlib.Path(__file__).with_name("paddle_reference.py")
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cases.npz"), str(tmp_path / "results.npz")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    results = np.load(tmp_path / "results.npz")
    counts = _counts()
    for i, (x, w, kwargs) in enumerate(cases):
        if f"error{i}" in results:
            with pytest.raises((ValueError, TypeError)):
                cpaddle.conv2d_transpose(x, w, **kwargs)
            counts["refused"] += 1
            continue
        expected = results[f"y{i}"]
        got = cpaddle.conv2d_transpose(x, w, **kwargs)
        assert got.shape == expected.shape, kwargs
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=str(kwargs))
        counts["agreed"] += 1
    assert counts["agreed"] >= 25 and counts["refused"] >= 5, counts
