"""tconv.translate: every translated form computes the same array, through tconv's front ends
and through the real frameworks where they are installed."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tconv
from oracle import naive_conv, naive_conv_transpose
from tconv import translate
from tconv.compat import jax as cjax
from tconv.compat import keras as ckeras
from tconv.compat import onnx as connx
from tconv.compat import paddle as cpaddle
from tconv.compat import tensorflow as ctf
from tconv.compat import torch as ctorch

COMPAT = {"torch": ctorch, "tensorflow": ctf, "keras": ckeras, "onnx": connx, "jax": cjax, "paddle": cpaddle}


def _random_layers(seed, transposed, count=24):
    """Random layers in ONNX's terms (which can say any crop), with their arrays."""
    rng = np.random.default_rng(seed)
    layers = []
    while len(layers) < count:
        d = int(rng.choice([1, 1, 2, 2, 3]))
        g = int(rng.choice([1, 1, 2]))
        n = rng.integers(2, 6 if d < 3 else 4, size=d).tolist()
        k = rng.integers(1, 5 if d < 3 else 3, size=d).tolist()
        s = rng.integers(1, 4, size=d).tolist()
        dil = rng.integers(1, 3, size=d).tolist()
        k_eff = [(a - 1) * b + 1 for a, b in zip(k, dil)]
        pads = [int(rng.integers(0, e + 1)) for e in k_eff] + [int(rng.integers(0, e + 1)) for e in k_eff]
        attrs = dict(strides=s, dilations=dil, group=g, pads=pads)
        if transposed:
            op = [int(rng.integers(0, max(a, b))) for a, b in zip(s, dil)]
            attrs["output_padding"] = op
            out = [(a - 1) * b + e + o - pads[i] - pads[i + d] for i, (a, b, e, o) in enumerate(zip(n, s, k_eff, op))]
        else:
            out = [
                (a + pads[i] + pads[i + d] - e) // b + 1 if a + pads[i] + pads[i + d] >= e else 0
                for i, (a, b, e) in enumerate(zip(n, s, k_eff))
            ]
        if min(out) < 1:
            continue
        c_in, c_out = 2 * g, 3 * g
        x = rng.standard_normal((2, c_in, *n))
        w = rng.standard_normal((c_in, c_out // g, *k)) if transposed else rng.standard_normal((c_out, c_in // g, *k))
        b = rng.standard_normal(c_out)
        t = translate(
            "onnx", input_size=n, kernel_size=k, in_channels=c_in, out_channels=c_out, transposed=transposed, **attrs
        )
        pairs = [(pads[i], pads[i + d]) for i in range(d)]
        if transposed:
            expected = naive_conv_transpose(
                x, w, b, stride=s, pads=pairs, output_padding=attrs["output_padding"], dilation=dil, groups=g
            )
        else:
            expected = naive_conv(x, w, b, stride=s, pads=pairs, dilation=dil, groups=g)
        layers.append((t, x, w, b, expected))
    return layers


@pytest.mark.parametrize("transposed", [True, False], ids=["conv_transpose", "conv"])
def test_every_translated_form_computes_the_same_array_through_tconv(transposed):
    for t, x, w, b, expected in _random_layers(1 + transposed, transposed):
        assert t.spec.output_size == expected.shape[2:]
        for name, layer in t.layers.items():
            got = layer.run(COMPAT[name], x, w, b)
            np.testing.assert_allclose(got, expected, atol=1e-9, err_msg=f"{name}: {layer.code}")


@pytest.mark.parametrize("transposed", [True, False], ids=["conv_transpose", "conv"])
def test_exact_translations_read_back_as_the_same_layer(transposed):
    """Translating a target's own arguments back into tconv gives the same ConvSpec."""
    names = {"torch": ("stride", "padding", "output_padding", "groups", "dilation"), "onnx": None, "paddle": None}
    for t, *_ in _random_layers(3 + transposed, transposed, count=12):
        for name in names:
            layer = t.layers[name]
            if not layer.exact:
                continue
            kwargs = dict(layer.kwargs)
            if name == "paddle":
                kwargs.pop("groups")
                kwargs["groups"] = t.spec.groups
            back = translate(
                name,
                input_size=t.spec.input_size,
                kernel_size=t.spec.kernel_size,
                in_channels=t.spec.in_channels,
                out_channels=t.spec.out_channels,
                transposed=transposed,
                **kwargs,
            )
            assert back.spec == t.spec, name


def test_translation_of_seed000_keras_same_to_torch_needs_a_crop():
    t = translate(
        "keras", input_size=(7, 7), kernel_size=(5, 5), in_channels=128, out_channels=64, strides=2, padding="same"
    )
    assert t.spec.padding == ((1, 2), (1, 2)) and t.spec.output_size == (14, 14)
    torch_layer = t.layers["torch"]
    assert not torch_layer.exact
    assert torch_layer.kwargs["padding"] == (1, 1) and torch_layer.post == ((0, 1), (0, 1))
    assert "y = y[:, :, 0:-1, 0:-1]" in torch_layer.code
    assert t.layers["onnx"].exact and t.layers["onnx"].kwargs["pads"] == [1, 1, 2, 2]
    text = str(t)
    for name in ("torch", "tensorflow", "keras", "onnx", "jax", "paddle"):
        assert f"# {name} (" in text


def test_translate_errors():
    with pytest.raises(ValueError, match="framework must be one of"):
        translate("caffe", input_size=3, kernel_size=3)
    with pytest.raises(TypeError, match="unknown torch argument"):
        translate("torch", input_size=3, kernel_size=3, strides=2)
    with pytest.raises(ValueError, match="needs output_shape"):
        translate("tensorflow", input_size=3, kernel_size=3, strides=2)


# --- the real frameworks ----------------------------------------------------------------------------


def _compare_real(name, module, to_framework, transposed, skip=lambda t: False, atol=1e-3):
    compared = 0
    for t, x, w, b, expected in _random_layers(10 + transposed, transposed):
        if skip(t):
            continue
        layer = t.layers[name]
        got = layer.run(
            module, x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), to_framework=to_framework
        )
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=atol, err_msg=layer.code)
        compared += 1
    assert compared >= 5


@pytest.mark.parametrize("transposed", [True, False], ids=["conv_transpose", "conv"])
def test_translations_on_real_torch(transposed):
    torch = pytest.importorskip("torch")
    _compare_real("torch", torch.nn.functional, torch.from_numpy, transposed)


@pytest.mark.parametrize("transposed", [True, False], ids=["conv_transpose", "conv"])
def test_translations_on_real_tensorflow(transposed):
    tf = pytest.importorskip("tensorflow")
    # TensorFlow's CPU kernels refuse dilated transposed convolutions (the translation notes it).
    _compare_real(
        "tensorflow", tf.nn, tf.constant, transposed, skip=lambda t: transposed and any(d > 1 for d in t.spec.dilation)
    )


@pytest.mark.parametrize("transposed", [True, False], ids=["conv_transpose", "conv"])
def test_translations_on_real_keras(transposed):
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    _compare_real(
        "keras",
        keras.ops,
        lambda a: a,
        transposed,
        skip=lambda t: (
            (transposed and any(d > 1 for d in t.spec.dilation))
            or (not transposed and any(s > 1 for s in t.spec.stride) and any(d > 1 for d in t.spec.dilation))
        ),
    )


@pytest.mark.parametrize("transposed", [True, False], ids=["conv_transpose", "conv"])
def test_translations_on_real_jax(transposed, jax_x64):
    jax = jax_x64
    _compare_real("jax", jax.lax, lambda a: jax.numpy.asarray(a), transposed)


@pytest.mark.parametrize("transposed", [True, False], ids=["conv_transpose", "conv"])
def test_translations_on_real_onnxruntime(transposed):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from test_compat import _onnx_run

    compared = 0
    for t, x, w, b, expected in _random_layers(20 + transposed, transposed):
        layer = t.layers["onnx"]
        op_type = "ConvTranspose" if transposed else "Conv"
        got = _onnx_run(op_type, x.astype(np.float32), w.astype(np.float32), None, **layer.kwargs)
        for axis, (before, after) in enumerate(layer.post):  # the zeros ONNX Runtime cannot append itself
            got = np.pad(got, [(0, 0)] * (axis + 2) + [(-before, -after)] + [(0, 0)] * (got.ndim - axis - 3))
        got = got + b.reshape(1, -1, *(1,) * t.spec.ndim)
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3, err_msg=layer.code)
        compared += 1
    assert compared >= 5


def test_translations_on_real_paddle(tmp_path):
    if importlib.util.find_spec("paddle") is None:
        pytest.skip("paddlepaddle is not installed")
    cases = [c for c in _random_layers(30, True)]
    payload = {"count": np.array(len(cases))}
    for i, (t, x, w, _, _) in enumerate(cases):
        payload[f"x{i}"], payload[f"w{i}"] = x.astype(np.float32), w.astype(np.float32)
        payload[f"kwargs{i}"] = np.array(json.dumps(t.layers["paddle"].kwargs))
    np.savez(tmp_path / "cases.npz", **payload)
    script = pathlib.Path(__file__).with_name("paddle_reference.py")
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cases.npz"), str(tmp_path / "out.npz")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    results = np.load(tmp_path / "out.npz")
    compared = 0
    for i, (t, _x, _w, b, expected) in enumerate(cases):
        assert f"y{i}" in results, str(results.get(f"error{i}"))
        got = results[f"y{i}"]
        for axis, (before, after) in enumerate(t.layers["paddle"].post):  # zeros Paddle cannot append itself
            got = np.pad(got, [(0, 0)] * (axis + 2) + [(-before, -after)] + [(0, 0)] * (got.ndim - axis - 3))
        without_bias = expected - b.reshape(1, -1, *(1,) * t.spec.ndim)
        np.testing.assert_allclose(got, without_bias, rtol=1e-3, atol=1e-3)
        compared += 1
    assert compared == len(cases)


def test_translated_forms_match_tconv_core_on_dcgan_layer():
    """The translated layers agree with tconv.conv_transpose itself for seed 000's layer."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 7, 7))
    w = rng.standard_normal((8, 4, 5, 5))
    b = rng.standard_normal(4)
    t = translate(
        "keras", input_size=(7, 7), kernel_size=(5, 5), in_channels=8, out_channels=4, strides=2, padding="same"
    )
    expected = tconv.conv_transpose(x, w, b, stride=2, padding="same")
    for name, layer in t.layers.items():
        np.testing.assert_allclose(layer.run(COMPAT[name], x, w, b), expected, atol=1e-10, err_msg=name)
