"""The idioms of PyTorch and Keras users, and the errors that say what to do (one test each).

Expected values come from the real frameworks where they are installed (skipped cleanly otherwise) or are
worked by hand in the test; never from tconv's own output.
"""

from __future__ import annotations

import numpy as np
import pytest

import tconv
from tconv import nn


# -- PyTorch idioms ------------------------------------------------------------------------------------
def test_sequential_of_unpacked_layers_and_relu_inplace():
    layers = [nn.torch.Linear(2, 2), nn.torch.ReLU(True)]
    model = nn.torch.Sequential(*layers)
    model[0].weight.data[...] = [[1.0, 0.0], [0.0, -1.0]]
    model[0].bias.data[...] = 0.0
    x = np.array([[3.0, 4.0]])
    np.testing.assert_array_equal(model(x), [[3.0, 0.0]])  # relu([3, -4])
    np.testing.assert_array_equal(x, [[3.0, 4.0]])  # inplace is accepted, the input is left alone
    assert [name for name, _ in model.named_children()] == ["0", "1"]


def test_sequential_of_an_ordered_dict_names_the_children():
    from collections import OrderedDict

    model = nn.torch.Sequential(OrderedDict(fc=nn.torch.Linear(2, 3), act=nn.torch.ReLU()))
    assert sorted(model.state_dict()) == ["fc.bias", "fc.weight"]


def test_relu_inplace_must_be_a_bool():
    with pytest.raises(TypeError, match=r"inplace must be True or False.*max_value"):
        nn.torch.ReLU(6.0)


def _torch_generator_block():
    # The PyTorch DCGAN tutorial's first block: 100 -> 512 channels, 1x1 -> 4x4
    return nn.torch.Sequential(
        nn.torch.ConvTranspose2d(100, 512, 4, 1, 0, bias=False), nn.torch.BatchNorm2d(512), nn.torch.ReLU(True)
    )


def test_summary_without_an_input_shape_shows_the_parameters(capsys):
    summary = _torch_generator_block().summary()
    printed = capsys.readouterr().out
    assert printed.strip() == str(summary).strip()  # printed, as Keras and torchinfo print it
    # by hand: 100 * 512 * 4 * 4 = 819,200 weights; 2 * 512 batch-norm parameters
    assert "819,200" in printed and "1,024" in printed and "Total params: 820,224" in printed
    assert "?" in printed and "summary(input_shape=" in printed  # shapes: not known yet, and how to get them


def test_summary_with_one_samples_input_shape():
    summary = _torch_generator_block().summary(input_shape=(100, 1, 1), print_fn=None)
    assert [row.output_shape for row in summary.rows] == [(None, 512, 4, 4)] * 3  # (1 - 1) * 1 + 4 = 4
    assert "?" not in str(summary)


def test_summary_input_shape_error_says_it_is_one_sample():
    with pytest.raises(ValueError, match="one sample's shape without the batch axis"):
        _torch_generator_block().summary(input_shape=(1, 100, 1, 1))


def test_count_params_of_a_pytorch_model_leaves_out_running_statistics():
    # 819,200 + 1,024 affine parameters; the 1,024 running statistics are buffers
    assert _torch_generator_block().count_params() == 820224
    torch = pytest.importorskip("torch")
    reference = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(100, 512, 4, 1, 0, bias=False), torch.nn.BatchNorm2d(512), torch.nn.ReLU(True)
    )
    assert sum(p.numel() for p in reference.parameters()) == 820224


def test_parameter_data_and_init_fill_in_place():
    layer = nn.torch.Conv2d(2, 3, 3, bias=False)
    assert layer.bias is None  # as PyTorch's m.bias
    nn.torch.init.constant_(layer.weight.data, 0.5)
    assert float(layer.weight.value.min()) == float(layer.weight.value.max()) == 0.5
    nn.torch.init.zeros_(layer.weight)
    assert not layer.weight.value.any()


# -- Keras idioms --------------------------------------------------------------------------------------
def test_call_with_training_false_uses_the_moving_statistics():
    bn = nn.keras.BatchNormalization()
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    bn.build(x.shape)
    bn.set_weights([np.ones(2), np.zeros(2), np.array([1.0, 2.0]), np.array([4.0, 16.0])])
    # by hand: (x - moving_mean) / sqrt(moving_var + 1e-3)
    expected = (x - [1.0, 2.0]) / np.sqrt(np.array([4.0, 16.0]) + 1e-3)
    np.testing.assert_allclose(bn(x, training=False), expected, rtol=1e-6)
    # training=True: the batch's statistics, mean 0 per feature; the layer's mode is left as it was
    assert np.allclose(bn(x, training=True).mean(axis=0), 0.0, atol=1e-6)
    assert bn.training


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the Keras comparison runs on the TensorFlow backend")
    return keras


@pytest.mark.parametrize(
    "units, activation, loss, labels",
    [
        (1, "sigmoid", "binary_crossentropy", "binary"),  # 'accuracy' is binary accuracy here
        (3, "sigmoid", "mse", "one_hot"),  # categorical accuracy
    ],
)
def test_compile_metrics_match_keras(keras, units, activation, loss, labels):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    if labels == "binary":
        y = rng.integers(0, 2, (16, 1)).astype(np.float32)
    else:
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    reference = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)])
    reference.compile(optimizer="sgd", loss=loss, metrics=["accuracy", "mae", "mse"])
    model = nn.keras.Sequential([nn.keras.layers.Dense(units, activation=activation, input_shape=(4,))])
    model.set_weights(reference.get_weights())
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy", "mae", "mse"])
    expected = reference.evaluate(x, y, batch_size=16, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=16), expected, rtol=1e-4, atol=1e-6)
    history = reference.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    ours = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    assert set(ours) == set(history) == {"loss", "accuracy", "mae", "mse"}
    for key in history:
        np.testing.assert_allclose(ours[key], history[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_evaluate_with_metrics_by_hand():
    model = nn.keras.Sequential([nn.keras.layers.Dense(1, use_bias=False, input_shape=(1,))])
    model.set_weights([np.array([[2.0]])])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    # predictions 2 * [1, 2] = [2, 4] against [1, 1]: errors 1 and 3; mse (1 + 9) / 2 = 5, mae 2
    assert model.evaluate(np.array([[1.0], [2.0]]), np.array([[1.0], [1.0]])) == pytest.approx([5.0, 2.0])
    assert model.evaluate(np.array([[1.0]]), np.array([[1.0]]), return_dict=True) == {"loss": 1.0, "mae": 1.0}


def test_save_weights_and_load_weights(tmp_path):
    model = nn.keras.Sequential([nn.keras.layers.Dense(2, input_shape=(3,))])
    weights = model.get_weights()
    path = tmp_path / "model.weights.npz"
    model.save_weights(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.weights.npz"]
    model.set_weights([np.zeros_like(w) for w in weights])
    model.load_weights(path)
    for mine, saved in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(mine, saved)


@pytest.mark.parametrize("name", ["m.keras", "m.weights.h5", "m.h5"])
def test_save_refuses_keras_formats_clearly(tmp_path, name):
    model = nn.keras.Sequential([nn.keras.layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"NumPy \.npz archive.*m\.weights\.npz'"):
        model.save(tmp_path / name)
    with pytest.raises(ValueError, match=r"NumPy \.npz archive"):
        model.save_weights(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_save_writes_exactly_the_path_or_refuses(tmp_path):
    model = nn.keras.Sequential([nn.keras.layers.Dense(2, input_shape=(3,))])
    model.save(tmp_path / "m.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    with pytest.raises(ValueError, match=r"must end in \.npz.*'.*m\.bin\.npz'"):
        model.save(str(tmp_path / "m.bin"))


def test_summary_prints_keras_names(capsys):
    nn.keras.clear_session()
    layers = nn.keras.layers
    model = nn.keras.Sequential(
        [
            layers.Dense(8, input_shape=(4,)),
            layers.Reshape((2, 2, 2)),
            layers.Conv2DTranspose(2, 3, padding="same"),
            layers.Conv2DTranspose(2, 3, padding="same"),
            layers.LeakyReLU(),
        ]
    )
    model.summary()
    printed = capsys.readouterr().out
    for label in ("dense (Dense)", "conv2d_transpose (Conv2DTranspose)", "conv2d_transpose_1 (Conv2DTranspose)"):
        assert label in printed
    assert "leaky_re_lu (LeakyReLU)" in printed and 'Model: "sequential"' in printed


def test_keras_names_match_keras(keras):
    keras.backend.clear_session()
    nn.keras.clear_session()
    ours = [nn.keras.layers.Conv2DTranspose(1, 1), nn.keras.layers.Conv2DTranspose(1, 1), nn.keras.layers.Dense(1)]
    theirs = [keras.layers.Conv2DTranspose(1, 1), keras.layers.Conv2DTranspose(1, 1), keras.layers.Dense(1)]
    assert [layer.name for layer in ours] == [layer.name for layer in theirs]


# -- one name, one meaning -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["LeakyReLU", "Dropout", "Flatten"])
def test_an_ambiguous_top_level_name_names_both_spellings(name):
    with pytest.raises(AttributeError, match=rf"tconv\.nn\.torch\.{name}.*tconv\.nn\.keras\.{name}"):
        getattr(nn, name)


def test_each_namespace_has_its_frameworks_defaults():
    x = np.array([-10.0])
    assert nn.torch.LeakyReLU()(x)[0] == pytest.approx(-0.1)  # torch.nn.LeakyReLU: 0.01
    assert nn.keras.LeakyReLU()(x)[0] == pytest.approx(-3.0)  # keras.layers.LeakyReLU: 0.3
    assert nn.torch.Dropout().rate == 0.5
    assert nn.keras.Dropout(rate=0.3).rate == 0.3
    with pytest.raises(TypeError):
        nn.keras.Dropout()  # Keras's rate has no default


def test_namespace_defaults_match_the_frameworks(keras):
    torch = pytest.importorskip("torch")
    assert nn.torch.LeakyReLU().negative_slope == torch.nn.LeakyReLU().negative_slope
    assert nn.keras.LeakyReLU().negative_slope == pytest.approx(float(keras.layers.LeakyReLU().negative_slope))
    assert nn.torch.Dropout().rate == torch.nn.Dropout().p


# -- transformations -----------------------------------------------------------------------------------
def test_jax_vmap_over_conv_transpose():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 1, 2, 4, 4)).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((2, 3, 3, 3)).astype(np.float32))
    mapped = jax.vmap(lambda xi: tconv.conv_transpose(xi, w, stride=2))(x)
    # the reference: lax.conv_transpose with transpose_kernel=True on the PyTorch layout read as OIHW
    for i in range(3):
        expected = jax.lax.conv_transpose(
            x[i], w, (2, 2), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"), transpose_kernel=True
        )
        np.testing.assert_allclose(np.asarray(mapped[i]), np.asarray(expected), rtol=1e-4, atol=1e-5)


def test_jax_grad_of_grad():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((1, 2, 4, 4)).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((2, 3, 3, 3)).astype(np.float32))

    def with_tconv(xx):
        return (tconv.conv_transpose(xx, w, stride=2) ** 2).sum()

    def with_lax(xx):
        y = jax.lax.conv_transpose(
            xx, w, (2, 2), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"), transpose_kernel=True
        )
        return (y**2).sum()

    def second(f):
        return jax.grad(lambda xx: (jax.grad(f)(xx) ** 3).sum())(x)

    np.testing.assert_allclose(np.asarray(second(with_tconv)), np.asarray(second(with_lax)), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("transposed", [True, False])
def test_torch_double_backward_with_a_constant_weight(transposed):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    if not transposed:
        w = w.transpose(0, 1).contiguous()
    ours, theirs = (
        (tconv.conv_transpose, functional.conv_transpose2d) if transposed else (tconv.conv, functional.conv2d)
    )
    results = []
    for op in (theirs, ours):
        (g,) = torch.autograd.grad(op(x, w).sum(), x, create_graph=True)
        g.sum().backward()  # PyTorch: no error, and no gradient (x.grad None, or zeros)
        results.append((g.detach().clone(), None if x.grad is None else x.grad.clone()))
        x.grad = None
    np.testing.assert_allclose(results[1][0].numpy(), results[0][0].numpy(), rtol=1e-10)
    for _, grad in results:
        assert grad is None or not grad.any()


# -- errors that say what to do ------------------------------------------------------------------------
def test_keras_kernel_to_conv_transpose():
    x = np.zeros((1, 8, 7, 7))  # channels first, 8 channels
    k = np.zeros((5, 5, 4, 8))  # Keras's Conv2DTranspose kernel (kh, kw, out, in)
    with pytest.raises(ValueError, match=r"Keras/TensorFlow kernel.*convert_weight\(w, 'keras', 'torch'\)"):
        tconv.conv_transpose(x, k)
    assert tconv.conv_transpose(x, tconv.compat.convert_weight(k, "keras", "torch")).shape == (1, 4, 11, 11)


def test_keras_kernel_to_conv():
    x = np.zeros((1, 5, 9, 9))
    k = np.zeros((3, 3, 5, 16))  # Keras's Conv2D kernel (kh, kw, in, out)
    with pytest.raises(ValueError, match=r"\(\*kernel, C_in, C_out\).*tconv\.conv\(x, tconv\.compat\.convert_weight"):
        tconv.conv(x, k)


def test_nhwc_input_without_channels_last():
    x = np.zeros((1, 7, 7, 8))  # NHWC
    w = np.zeros((8, 4, 5, 5))  # PyTorch layout, 8 input channels
    with pytest.raises(ValueError, match=r"looks channels-last.*C = 8; pass channels_last=True"):
        tconv.conv_transpose(x, w)
    assert tconv.conv_transpose(x, w, channels_last=True).shape == (1, 11, 11, 4)


def test_nhwc_input_and_keras_kernel_together():
    x = np.zeros((1, 7, 7, 128))
    k = np.zeros((5, 5, 64, 128))  # the DCGAN tutorial's second layer
    message = "convert_weight(w, 'keras', 'torch'), channels_last=True), or call tconv.compat.keras.conv_transpose"
    with pytest.raises(ValueError, match="looks channels-last") as info:
        tconv.conv_transpose(x, k)
    assert message in str(info.value)


def test_wrong_directions_weight_layout():
    x = np.zeros((1, 4, 7, 7))
    w = np.zeros((8, 4, 3, 3))  # a convolution's (C_out=8, C_in=4, k, k), given to conv_transpose
    with pytest.raises(ValueError, match=r"looks like a convolution's weight.*swap its first two axes"):
        tconv.conv_transpose(x, w)
    with pytest.raises(ValueError, match=r"looks like a transposed convolution's weight"):
        tconv.conv(np.zeros((1, 8, 7, 7)), np.zeros((8, 4, 3, 3)))  # a transposed one's (C_in=8, C_out=4, k, k)


def test_no_hint_when_nothing_fits():
    with pytest.raises(ValueError) as info:
        tconv.conv_transpose(np.zeros((1, 3, 7, 7)), np.zeros((5, 4, 2, 2)))
    assert "looks" not in str(info.value)


def test_jax_flavoured_errors_use_the_callers_shapes():
    from tconv.compat import jax as lax

    x = np.zeros((1, 7, 7, 8))  # NHWC, as jax.lax.conv_transpose's default
    k = np.zeros((5, 5, 4, 6))  # HWIO with I = 4, not 8
    with pytest.raises(ValueError) as info:
        lax.conv_transpose(x, k, (2, 2), "SAME")
    message = str(info.value)
    assert "(8)" in message and "(4)" in message  # the caller's feature sizes
    assert "(1, 8, 7, 7)" not in message and "x has" not in message  # no internal NCHW shapes


def test_adam_steps_a_0d_parameter_and_keeps_its_moments_across_a_cast():
    """Adam against its textbook form (PyTorch's: moments, bias corrections, eps added to the corrected root):
    on a 0-d parameter, and on a parameter cast from float64 to float32 mid-training, whose moments (and step
    count) carry on."""

    def reference(start, grads, cast_at, lr=0.1, b1=0.9, b2=0.999, eps=1e-8):
        value, m, v, seen = float(start), 0.0, 0.0, []
        for t, g in enumerate(grads, 1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            value -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            if t == cast_at:
                value = float(np.float32(value))
            seen.append(value)
        return seen

    grads = [1.0, 2.0, 3.0, -1.5, 0.5, 4.0]
    p = nn.Parameter(np.array(0.7))
    opt = nn.Adam([p], lr=0.1)
    for g, expected in zip(grads, reference(0.7, grads, cast_at=None)):
        p.grad = np.array(g)
        opt.step()
        assert p.value.shape == () and abs(float(p.value) - expected) < 1e-12
    q = nn.Parameter(np.full(3, 0.7))
    opt = nn.Adam([q], lr=0.1)
    for t, (g, expected) in enumerate(zip(grads, reference(0.7, grads, cast_at=3)), 1):
        q.grad = np.full(3, g, dtype=q.value.dtype)
        opt.step()
        if t == 3:
            q.value = q.value.astype(np.float32)  # as Module.astype does
        np.testing.assert_allclose(q.value, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_one_pass_step_is_the_numpy_steps_to_the_bit(dtype, monkeypatch):
    """The compiled one-pass Adam step (from the second step on, numba installed) gives the NumPy path's new
    values and moments bit for bit, over several steps of a large random parameter; both are checked against
    the textbook update in float64, and a spy confirms which path ran."""
    from tconv.implementations.compiled import kernels
    from tconv.implementations.compiled import optimizer as compiled_optimizer

    if not kernels.available():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(7)
    start = rng.standard_normal(10_007).astype(dtype)
    grads = [
        (rng.standard_normal(start.size) * 10.0 ** rng.integers(-6, 3, start.size)).astype(dtype) for _ in range(5)
    ]
    grads[2][:5] = 0.0  # zero gradients, whose second moment decays towards zero
    calls = []
    step = compiled_optimizer.adam_step
    monkeypatch.setattr(compiled_optimizer, "adam_step", lambda *a: calls.append(1) or step(*a))
    fused, plain = nn.Parameter(start.copy()), nn.Parameter(start.copy())
    opt_fused, opt_plain = nn.Adam([fused], lr=0.01), nn.Adam([plain], lr=0.01)
    value, m, v = start.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(grads, 1):
        fused.grad, plain.grad = g.copy(), g.copy()
        opt_fused.step()
        with monkeypatch.context() as patch:
            patch.setattr(compiled_optimizer, "supports", lambda *a: False)
            opt_plain.step()
        np.testing.assert_array_equal(fused.value, plain.value)
        for key in ("m", "v"):
            np.testing.assert_array_equal(opt_fused.state[id(fused)][key], opt_plain.state[id(plain)][key])
        m = 0.9 * m + 0.1 * g.astype(np.float64)
        v = 0.999 * v + 0.001 * g.astype(np.float64) ** 2
        value = value - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        assert fused.value.dtype == dtype
        np.testing.assert_allclose(fused.value, value, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    assert len(calls) == len(grads) - 1  # every step after the first ran the one-pass form


def test_adam_with_a_numpy_learning_rate_runs_the_numpy_steps(monkeypatch):
    """A learning rate set to a NumPy float64 after construction makes NumPy compute the step in float64 on float32
    weights; the one-pass form (which rounds lr to float32) is then not used, and the values are the NumPy path's."""
    from tconv.implementations.compiled import optimizer as compiled_optimizer

    calls = []
    step = compiled_optimizer.adam_step
    monkeypatch.setattr(compiled_optimizer, "adam_step", lambda *a: calls.append(1) or step(*a))
    rng = np.random.default_rng(3)
    start = rng.standard_normal(4096).astype(np.float32)
    grads = [rng.standard_normal(start.size).astype(np.float32) for _ in range(3)]
    p = nn.Parameter(start.copy())
    opt = nn.Adam([p], lr=0.01)
    opt.lr = np.float64(1e-3) * 0.3
    m = v = np.zeros(start.size, dtype=np.float32)
    value = start.copy()
    for t, g in enumerate(grads, 1):
        p.grad = g.copy()
        opt.step()
        m = m * np.float32(0.9) + np.float32(0.1) * g
        v = v * np.float32(0.999) + np.float32(0.001) * g * g
        update = (m / np.float32(1 - 0.9**t)) * opt.lr  # float64, as NumPy computes it with a float64 lr
        value = value - (update / (np.sqrt(v / np.float32(1 - 0.999**t)) + np.float32(1e-8))).astype(np.float32)
        np.testing.assert_allclose(p.value, value, rtol=1e-6, atol=1e-9)
    assert not calls
