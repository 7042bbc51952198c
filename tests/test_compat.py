"""Each front end against the real framework on random configurations, and the named disagreements.

Every real framework is imported lazily and its tests skip cleanly where it is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from tconv.compat import convert_weight
from tconv.compat import jax as cjax
from tconv.compat import keras as ckeras
from tconv.compat import onnx as connx
from tconv.compat import paddle as cpaddle
from tconv.compat import tensorflow as ctf
from tconv.compat import torch as ctorch

X1 = np.array([[[1.0, 2.0, 3.0]]])  # (N, C, L)
W1 = np.array([[[1.0, 10.0, 100.0]]])  # (in, out, k)
TF_SAME = [1, 10, 102, 20, 203, 30]
LOWER = [10, 102, 20, 203, 30, 300]
JAX_PLAIN = [100, 10, 201, 20, 302, 30]


def _nlc(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


# --- the named disagreements: 1-D x=[1,2,3], w=[1,10,100], stride 2, "same" -------------------------


def test_disagreement_tensorflow_same():
    out = ctf.conv1d_transpose(_nlc(X1), convert_weight(W1, "torch", "tensorflow"), (1, 6, 1), 2, "SAME")
    np.testing.assert_array_equal(out[0, :, 0], TF_SAME)


def test_disagreement_keras_same_and_output_padding_0():
    k = convert_weight(W1, "torch", "keras")
    np.testing.assert_array_equal(ckeras.conv_transpose(_nlc(X1), k, 2, "same")[0, :, 0], TF_SAME)
    five = ckeras.conv_transpose(_nlc(X1), k, 2, "same", output_padding=0)
    assert five.shape == (1, 5, 1)
    np.testing.assert_array_equal(five[0, :, 0], [10, 102, 20, 203, 30])


def test_disagreement_onnx_same_upper_and_lower():
    np.testing.assert_array_equal(connx.conv_transpose(X1, W1, auto_pad="SAME_UPPER", strides=[2])[0, 0], TF_SAME)
    np.testing.assert_array_equal(connx.conv_transpose(X1, W1, auto_pad="SAME_LOWER", strides=[2])[0, 0], LOWER)


def test_disagreement_torch_padding1_output_padding1():
    np.testing.assert_array_equal(ctorch.conv_transpose1d(X1, W1, None, 2, 1, 1)[0, 0], LOWER)


def test_disagreement_jax_with_and_without_transpose_kernel():
    x = _nlc(X1)
    keras_kernel = convert_weight(W1, "torch", "keras")  # (k, out, in)
    np.testing.assert_array_equal(
        cjax.conv_transpose(x, keras_kernel, (2,), "SAME", transpose_kernel=True)[0, :, 0], TF_SAME
    )
    # Without transpose_kernel the same (k, 1, 1) array is correlated, not flipped.
    np.testing.assert_array_equal(cjax.conv_transpose(x, keras_kernel, (2,), "SAME")[0, :, 0], JAX_PLAIN)


def test_disagreement_paddle_same():
    np.testing.assert_array_equal(
        cpaddle.conv1d_transpose(X1, W1, stride=2, padding="SAME")[0, 0], [10, 102, 20, 203, 30]
    )


# --- real frameworks --------------------------------------------------------------------------------


def _real_disagreements(fn_name, expected, run):
    got = np.asarray(run()).ravel()
    np.testing.assert_allclose(got, expected, err_msg=fn_name)


def test_real_frameworks_agree_on_the_disagreement_table(jax_x64_if_installed):
    """Where installed, the real frameworks print the numbers the table above asserts."""
    ran = 0
    try:
        import tensorflow as tf

        _real_disagreements(
            "tf",
            TF_SAME,
            lambda: tf.nn.conv1d_transpose(_nlc(X1), convert_weight(W1, "torch", "tensorflow"), (1, 6, 1), 2, "SAME"),
        )
        import keras

        layer = keras.layers.Conv1DTranspose(1, 3, strides=2, padding="same", use_bias=False)
        layer.build((1, 3, 1))
        layer.set_weights([convert_weight(W1, "torch", "keras")])
        _real_disagreements("keras", TF_SAME, lambda: layer(_nlc(X1)))
        ran += 1
    except ImportError:
        pass
    try:
        import torch

        _real_disagreements(
            "torch",
            LOWER,
            lambda: torch.nn.functional.conv_transpose1d(torch.tensor(X1), torch.tensor(W1), None, 2, 1, 1),
        )
        ran += 1
    except ImportError:
        pass
    jax = jax_x64_if_installed
    if jax is not None:
        k = convert_weight(W1, "torch", "keras")
        _real_disagreements("jax", JAX_PLAIN, lambda: jax.lax.conv_transpose(_nlc(X1), k, (2,), "SAME"))
        _real_disagreements(
            "jax-tk",
            TF_SAME,
            lambda: jax.lax.conv_transpose(_nlc(X1), k, (2,), "SAME", transpose_kernel=True),
        )
        ran += 1
    if not ran:
        pytest.skip("no real framework installed")


@pytest.mark.parametrize("d", [1, 2, 3])
def test_torch_front_end_against_torch(d):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(d)
    for _ in range(10):
        g = int(rng.choice([1, 2]))
        n = rng.integers(2, 6, size=d).tolist()
        k = rng.integers(1, 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        dil = rng.integers(1, 3, size=d).tolist()
        p = [int(rng.integers(0, (kk - 1) * dd + 1)) for kk, dd in zip(k, dil)]
        x = rng.standard_normal((2, 2 * g, *n))
        w = rng.standard_normal((2 * g, 3, *k))
        b = rng.standard_normal(3 * g)
        base = [(a - 1) * b_ + (kk - 1) * dd + 1 - 2 * pp for a, b_, kk, dd, pp in zip(n, s, k, dil, p)]
        if min(base) < 1:
            continue
        size = [bb + int(rng.integers(0, ss)) for bb, ss in zip(base, s)]
        fn = getattr(ctorch, f"conv_transpose{d}d")
        got = fn(x, w, b, s, p, 0, g, dil, output_size=size)
        layer = getattr(torch.nn, f"ConvTranspose{d}d")(2 * g, 3 * g, k, s, p, groups=g, dilation=dil).double()
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(w))
            layer.bias.copy_(torch.tensor(b))
        expected = layer(torch.tensor(x), output_size=size).detach().numpy()
        np.testing.assert_allclose(got, expected, atol=1e-10)
        if any(a + 2 * pp < (kk - 1) * dd + 1 for a, pp, kk, dd in zip(n, p, k, dil)):
            continue  # the forward convolution would be empty
        w_c = rng.standard_normal((3 * g, 2, *k))
        got_c = getattr(ctorch, f"conv{d}d")(x, w_c, None, s, p, dil, g)
        expected_c = getattr(F, f"conv{d}d")(torch.tensor(x), torch.tensor(w_c), None, s, p, dil, g).numpy()
        np.testing.assert_allclose(got_c, expected_c, atol=1e-10)


def test_torch_front_end_rejects_as_torch_does():
    with pytest.raises(ValueError, match=r"requested an output size of .*valid sizes range from 7 to 8"):
        ctorch.conv_transpose2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), stride=2, output_size=(9, 9))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        ctorch.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=2, padding="same")
    with pytest.raises(ValueError, match="no string padding for transposed"):
        ctorch.conv_transpose2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), padding="same")
    with pytest.raises(ValueError, match="conv_transpose2d expects a weight with 4 dimensions"):
        ctorch.conv_transpose2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3)))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_tensorflow_front_end_against_tensorflow(d, tf):
    rng = np.random.default_rng(10 + d)
    fn_t = {1: tf.nn.conv1d_transpose, 2: tf.nn.conv2d_transpose, 3: tf.nn.conv3d_transpose}[d]
    mine_t = {1: ctf.conv1d_transpose, 2: ctf.conv2d_transpose, 3: ctf.conv3d_transpose}[d]
    for trial in range(8):
        n = rng.integers(2, 6 if d < 3 else 4, size=d).tolist()
        k = rng.integers(1, 5 if d < 3 else 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        x = rng.standard_normal((2, *n, 3)).astype(np.float32)
        f = rng.standard_normal((*k, 2, 3)).astype(np.float32)
        mode = ["SAME", "VALID", "EXPLICIT"][trial % 3]
        if mode == "SAME":
            out = [int(rng.integers((a - 1) * b + 1, a * b + 1)) for a, b in zip(n, s)]  # any admissible size
            padding = "SAME"
        elif mode == "VALID":
            out = [(a - 1) * b + kk + int(rng.integers(0, b)) for a, b, kk in zip(n, s, k)]
            padding = "VALID"
        else:
            if d != 2:
                continue  # TensorFlow takes explicit padding in conv2d_transpose only
            pads = [[int(v) for v in rng.integers(0, kk, size=2)] for kk in k]
            out = [(a - 1) * b + kk - lo - hi + int(rng.integers(0, b)) for a, b, kk, (lo, hi) in zip(n, s, k, pads)]
            if min(out) < 1:
                continue
            padding = [[0, 0], *pads, [0, 0]]
        shape = (2, *out, 2)
        expected = fn_t(x, f, shape, s, padding).numpy()
        np.testing.assert_allclose(mine_t(x, f, shape, s, padding), expected, rtol=1e-4, atol=1e-4)
        # The forward direction, channels first, with dilation (TensorFlow wants stride 1 then).
        dil = rng.integers(1, 3, size=d).tolist()
        fc = rng.standard_normal((*k, 3, 4)).astype(np.float32)
        big = rng.standard_normal((2, *(a + 6 for a in n), 3)).astype(np.float32)
        np.testing.assert_allclose(
            ctf.convolution(big, fc, None, padding if isinstance(padding, str) else "SAME", dilations=dil),
            tf.nn.convolution(big, fc, None, padding if isinstance(padding, str) else "SAME", dilations=dil).numpy(),
            rtol=1e-4,
            atol=1e-4,
        )


def test_tensorflow_front_end_rejects_inadmissible_output_shape():
    with pytest.raises(ValueError, match=r"output_shape is not admissible .*admissible sizes are 5 to 6"):
        ctf.conv1d_transpose(np.ones((1, 3, 1)), np.ones((3, 1, 1)), (1, 7, 1), 2, "SAME")


@pytest.mark.usefixtures("tf")
@pytest.mark.parametrize("d", [1, 2, 3])
def test_keras_front_end_against_keras_layers(d):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(20 + d)
    layer_t = {
        1: keras.layers.Conv1DTranspose,
        2: keras.layers.Conv2DTranspose,
        3: keras.layers.Conv3DTranspose,
    }[d]
    for trial in range(6):
        n = rng.integers(2, 6 if d < 3 else 4, size=d).tolist()
        k = rng.integers(1, 5 if d < 3 else 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        padding = ["same", "valid"][trial % 2]
        output_padding = None if trial < 2 else [int(rng.integers(0, b)) for b in s]
        x = rng.standard_normal((2, *n, 3)).astype(np.float32)
        layer = layer_t(2, k, strides=s, padding=padding, output_padding=output_padding)
        try:
            expected = layer(x).numpy()
        except Exception:  # Keras refuses some output paddings with 'same'; nothing to compare
            continue
        kernel, bias = layer.get_weights()
        got = ckeras.conv_transpose(x, kernel, s, padding, output_padding) + bias
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        assert got.shape[1:-1] == tuple(
            ckeras.conv_transpose_output_length(a, kk, padding, None if output_padding is None else op, b)
            for a, kk, b, op in zip(n, k, s, output_padding or [None] * d)
        )


@pytest.mark.usefixtures("tf")
def test_keras_forward_against_keras():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(30)
    for padding in ("valid", "same", "causal"):
        x = rng.standard_normal((2, 11, 4)).astype(np.float32)
        layer = keras.layers.Conv1D(3, 3, padding=padding, dilation_rate=2)
        expected = layer(x).numpy()
        kernel, bias = layer.get_weights()
        np.testing.assert_allclose(ckeras.conv(x, kernel, 1, padding, None, 2) + bias, expected, rtol=1e-4, atol=1e-4)
    x = rng.standard_normal((2, 9, 9, 4)).astype(np.float32)
    layer = keras.layers.Conv2D(6, 3, strides=2, padding="same", groups=2)
    expected = layer(x).numpy()
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(ckeras.conv(x, kernel, 2, "same") + bias, expected, rtol=1e-4, atol=1e-4)


def _onnx_run(op_type, x, w, b, **attrs):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    inputs = ["X", "W"] + (["B"] if b is not None else [])
    node = helper.make_node(op_type, inputs, ["Y"], **{k: v for k, v in attrs.items() if v is not None})
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(a.shape)) for name, a in zip(inputs, (x, w, b))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {name: a for name, a in zip(inputs, (x, w, b))}
    return session.run(None, feeds)[0]


@pytest.mark.parametrize("d", [1, 2, 3])
def test_onnx_front_end_against_onnxruntime(d):
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(40 + d)
    for trial in range(10):
        g = int(rng.choice([1, 2]))
        n = rng.integers(2, 6 if d < 3 else 4, size=d).tolist()
        k = rng.integers(1, 5 if d < 3 else 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        dil = rng.integers(1, 3, size=d).tolist()
        x = rng.standard_normal((2, 2 * g, *n)).astype(np.float32)
        w = rng.standard_normal((2 * g, 3, *k)).astype(np.float32)
        b = rng.standard_normal(3 * g).astype(np.float32)
        k_eff = [(kk - 1) * dd + 1 for kk, dd in zip(k, dil)]
        op = [int(rng.integers(0, bb)) for bb in s]
        attrs = dict(strides=s, dilations=dil, group=g, output_padding=op)
        kind = trial % 3
        if kind == 0:
            pads = [int(rng.integers(0, e)) for e in k_eff] + [int(rng.integers(0, e)) for e in k_eff]
            full = [(a - 1) * bb + e + o for a, bb, e, o in zip(n, s, k_eff, op)]
            if min(f - pads[i] - pads[i + d] for i, f in enumerate(full)) < 1:
                continue
            attrs["pads"] = pads
        elif kind == 1:
            attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER"]))
            if any(e + o < bb for e, o, bb in zip(k_eff, op, s)):
                continue  # ONNX leaves a negative total padding unspecified
        else:
            full = [(a - 1) * bb + e + o for a, bb, e, o in zip(n, s, k_eff, op)]
            attrs["output_shape"] = [int(rng.integers(max(f - 3, 1), f + 1)) for f in full]
        expected = _onnx_run("ConvTranspose", x, w, b, **attrs)
        got = connx.conv_transpose(x, w, b, **attrs)
        assert got.shape == expected.shape, attrs
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=str(attrs))
        wc = rng.standard_normal((3 * g, 2, *k)).astype(np.float32)
        big = rng.standard_normal((2, 2 * g, *(a + 5 for a in n))).astype(np.float32)
        auto_pad = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
        # ONNX Runtime refuses dilation with SAME_* auto padding.
        cattrs = dict(strides=s, dilations=dil if auto_pad == "VALID" else [1] * d, group=g, auto_pad=auto_pad)
        np.testing.assert_allclose(
            connx.conv(big, wc, None, **cattrs),
            _onnx_run("Conv", big, wc, None, **cattrs),
            rtol=1e-4,
            atol=1e-4,
        )


@pytest.mark.parametrize("d", [1, 2, 3])
def test_jax_front_end_against_jax(d, jax_x64):
    jax = jax_x64
    lax = jax.lax
    rng = np.random.default_rng(50 + d)
    for trial in range(10):
        n = rng.integers(2, 6 if d < 3 else 4, size=d).tolist()
        k = rng.integers(1, 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        dil = rng.integers(1, 3, size=d).tolist()
        x = rng.standard_normal((2, *n, 3))
        rhs = rng.standard_normal((*k, 3, 2))
        padding = ["SAME", "VALID", "PAIRS", "CONSISTENT"][trial % 4]
        kwargs = dict(rhs_dilation=dil, transpose_kernel=bool(trial % 2))
        if padding == "PAIRS":
            pad = [tuple(int(v) for v in rng.integers(-1, 4, size=2)) for _ in range(d)]
        elif padding == "CONSISTENT":
            pad = [tuple(int(v) for v in rng.integers(0, (kk - 1) * dd + 1, size=2)) for kk, dd in zip(k, dil)]
            kwargs["use_consistent_padding"] = True
        else:
            pad = padding
        if kwargs["transpose_kernel"]:
            rhs = rng.standard_normal((*k, 2, 3))
        try:
            expected = np.asarray(lax.conv_transpose(x, rhs, s, pad, **kwargs))
        except Exception:  # jax refuses (e.g. an empty output); nothing to compare
            continue
        if min(expected.shape) == 0:
            continue
        np.testing.assert_allclose(
            cjax.conv_transpose(x, rhs, s, pad, **kwargs), expected, atol=1e-10, err_msg=str((pad, kwargs))
        )
        # conv_general_dilated, channels first, with groups and a strided, dilated window.
        g = int(rng.choice([1, 3]))
        lhs = rng.standard_normal((2, 3, *(a + 4 for a in n)))
        w = rng.standard_normal((2 * g, 3 // g, *k))
        lhs_dil = rng.integers(1, 3, size=d).tolist()
        pads = [tuple(int(v) for v in rng.integers(-1, 3, size=2)) for _ in range(d)]
        try:
            expected = np.asarray(lax.conv_general_dilated(lhs, w, s, pads, lhs_dil, dil, feature_group_count=g))
        except Exception:
            continue
        if min(expected.shape) == 0:
            continue
        np.testing.assert_allclose(
            cjax.conv_general_dilated(lhs, w, s, pads, lhs_dil, dil, feature_group_count=g),
            expected,
            atol=1e-10,
        )


def test_jax_front_end_with_string_dimension_numbers(jax_x64):
    jax = jax_x64
    rng = np.random.default_rng(60)
    lhs = rng.standard_normal((4, 7, 2, 5))  # 'HWNC'... a deliberately odd layout
    rhs = rng.standard_normal((3, 3, 2, 5))  # 'OHIW'? use 'HOWI' below
    dn = ("HNCW", "HOWI", "NHCW")
    lhs = rng.standard_normal((7, 2, 5, 6))
    rhs = rng.standard_normal((3, 4, 2, 5))
    expected = np.asarray(jax.lax.conv_general_dilated(lhs, rhs, (2, 1), "SAME", dimension_numbers=dn))
    np.testing.assert_allclose(
        cjax.conv_general_dilated(lhs, rhs, (2, 1), "SAME", dimension_numbers=dn), expected, atol=1e-10
    )


def test_paddle_front_end_against_paddle(tmp_path):
    """Random calls in 1, 2 and 3-D, computed by Paddle in its own process (paddle_reference.py)."""
    import importlib.util
    import json
    import pathlib
    import subprocess
    import sys

    if importlib.util.find_spec("paddle") is None:
        pytest.skip("paddlepaddle is not installed")
    rng = np.random.default_rng(70)
    mine = {1: cpaddle.conv1d_transpose, 2: cpaddle.conv2d_transpose, 3: cpaddle.conv3d_transpose}
    cases = []
    for trial in range(36):
        d = 1 + trial % 3
        g = int(rng.choice([1, 2]))
        n = rng.integers(2, 6 if d < 3 else 4, size=d).tolist()
        k = rng.integers(1, 5 if d < 3 else 4, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        dil = rng.integers(1, 3, size=d).tolist()
        kind = (trial // 3) % 5
        kwargs = dict(stride=s, groups=g, dilation=dil)
        if kind == 0:
            kwargs["padding"] = "SAME"
        elif kind == 1:
            kwargs["padding"] = "VALID"
        elif kind == 2:
            kwargs["padding"] = [int(v) for v in rng.integers(0, 2, size=2 * d)]
        elif kind == 3:
            kwargs["padding"] = [
                [0, 0],
                [0, 0],
                *([int(v) for v in rng.integers(0, 2, size=2)] for _ in range(d)),
            ]
        else:
            kwargs["padding"] = [int(v) for v in rng.integers(0, 2, size=d)]
            kwargs["output_padding"] = [int(rng.integers(0, max(a, b))) for a, b in zip(s, dil)]
        x = rng.standard_normal((2, 2 * g, *n)).astype(np.float32)
        w = rng.standard_normal((2 * g, 3, *k)).astype(np.float32)
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
    compared = 0
    for i, (x, w, kwargs) in enumerate(cases):
        if f"y{i}" not in results:
            continue
        expected = results[f"y{i}"]
        if min(expected.shape) == 0:  # Paddle returns an empty array where the crop takes everything: so does tconv
            assert mine[w.ndim - 2](x, w, **kwargs).shape == expected.shape, kwargs
            continue
        got = mine[w.ndim - 2](x, w, **kwargs)
        assert got.shape == expected.shape, kwargs
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=str(kwargs))
        compared += 1
    assert compared >= 20


def test_convert_weight_round_trips_and_refuses_groups():
    rng = np.random.default_rng(80)
    w = rng.standard_normal((4, 3, 2, 5))
    for target in ("tensorflow", "keras", "jax", "onnx", "paddle", "torch"):
        back = convert_weight(convert_weight(w, "torch", target), target, "torch")
        np.testing.assert_array_equal(back, w)
        back_f = convert_weight(convert_weight(w, "torch", target, transposed=False), target, "torch", transposed=False)
        np.testing.assert_array_equal(back_f, w)
    with pytest.raises(ValueError, match="have no groups"):
        convert_weight(w, "torch", "keras", groups=2)
    with pytest.raises(ValueError, match="target must be one of"):
        convert_weight(w, "torch", "caffe")


def test_tensorflow_channels_first_formats_equal_channels_last():
    """TensorFlow's CPU kernels refuse NCHW transposed convolutions; tconv's front end takes the format and
    must agree with the NHWC computation of the same layer."""
    rng = np.random.default_rng(90)
    x = rng.standard_normal((2, 5, 6, 3))
    f = rng.standard_normal((3, 2, 4, 3))
    nhwc = ctf.conv2d_transpose(x, f, (2, 10, 12, 4), [1, 2, 2, 1], "SAME")
    nchw = ctf.conv2d_transpose(np.moveaxis(x, -1, 1), f, (2, 4, 10, 12), [1, 1, 2, 2], "SAME", data_format="NCHW")
    np.testing.assert_allclose(np.moveaxis(nchw, 1, -1), nhwc, atol=1e-12)
    fc = rng.standard_normal((3, 2, 3, 4))
    a = ctf.conv2d(x, fc, 1, [[0, 0], [1, 0], [0, 2], [0, 0]])
    b = ctf.conv2d(np.moveaxis(x, -1, 1), fc, 1, [[0, 0], [0, 0], [1, 0], [0, 2]], data_format="NCHW")
    np.testing.assert_allclose(np.moveaxis(b, 1, -1), a, atol=1e-12)
    with pytest.raises(ValueError, match="strides must be 1 on the batch and channel dimensions"):
        ctf.conv2d_transpose(x, f, (2, 10, 12, 4), [2, 2, 2, 1], "SAME")
