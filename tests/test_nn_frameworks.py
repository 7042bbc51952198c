"""tconv.nn layers against torch.nn and Keras 3 with the same weights: outputs, gradients, running statistics.

Each PyTorch-flavoured layer loads the torch layer's ``state_dict``; each
Keras-flavoured one takes the Keras layer's ``get_weights()``. Skipped where
the framework is not installed (CI installs both).
"""

from __future__ import annotations

import numpy as np
import pytest

from tconv import nn

RTOL, ATOL = 2e-4, 2e-5


def _close(a, b, what):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL, err_msg=what)


# -- PyTorch -----------------------------------------------------------------------------
def _torch_pairs(torch):
    tnn = torch.nn
    return {
        "ConvTranspose2d": (
            lambda: tnn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1),
            lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
            (2, 4, 5, 6),
        ),
        "ConvTranspose2d dilated": (
            lambda: tnn.ConvTranspose2d(3, 2, (3, 2), stride=(2, 3), padding=(2, 0), output_padding=(1, 2), dilation=2),
            lambda: nn.ConvTranspose2d(3, 2, (3, 2), stride=(2, 3), padding=(2, 0), output_padding=(1, 2), dilation=2),
            (2, 3, 4, 3),
        ),
        "ConvTranspose1d": (
            lambda: tnn.ConvTranspose1d(8, 4, 16, stride=8, padding=4),
            lambda: nn.ConvTranspose1d(8, 4, 16, stride=8, padding=4),
            (1, 8, 10),
        ),
        "ConvTranspose3d": (
            lambda: tnn.ConvTranspose3d(4, 2, 2, stride=2, bias=False),
            lambda: nn.ConvTranspose3d(4, 2, 2, stride=2, bias=False),
            (1, 4, 3, 3, 2),
        ),
        "Conv2d": (
            lambda: tnn.Conv2d(3, 4, 3, stride=2, padding=1),
            lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1),
            (2, 3, 9, 8),
        ),
        "Conv2d same": (
            lambda: tnn.Conv2d(3, 4, 4, padding="same"),
            lambda: nn.Conv2d(3, 4, 4, padding="same"),
            (2, 3, 5, 6),
        ),
        "Conv2d reflect": (
            lambda: tnn.Conv2d(3, 2, 3, padding=2, padding_mode="reflect"),
            lambda: nn.Conv2d(3, 2, 3, padding=2, padding_mode="reflect"),
            (1, 3, 5, 6),
        ),
        "Conv2d replicate": (
            lambda: tnn.Conv2d(3, 2, 3, padding=(1, 2), padding_mode="replicate"),
            lambda: nn.Conv2d(3, 2, 3, padding=(1, 2), padding_mode="replicate"),
            (1, 3, 5, 6),
        ),
        "Conv2d circular": (
            lambda: tnn.Conv2d(2, 2, 3, padding=2, padding_mode="circular", dilation=2),
            lambda: nn.Conv2d(2, 2, 3, padding=2, padding_mode="circular", dilation=2),
            (1, 2, 5, 6),
        ),
        "Conv1d": (lambda: tnn.Conv1d(4, 8, 3, groups=4), lambda: nn.Conv1d(4, 8, 3, groups=4), (2, 4, 9)),
        "Conv3d": (lambda: tnn.Conv3d(2, 3, 2, padding=1), lambda: nn.Conv3d(2, 3, 2, padding=1), (1, 2, 3, 3, 3)),
        "Linear": (lambda: tnn.Linear(5, 3), lambda: nn.Linear(5, 3), (4, 5)),
        "BatchNorm1d": (lambda: tnn.BatchNorm1d(3), lambda: nn.BatchNorm1d(3), (6, 3, 4)),
        "BatchNorm2d": (
            lambda: tnn.BatchNorm2d(3, momentum=0.3),
            lambda: nn.BatchNorm2d(3, momentum=0.3),
            (4, 3, 2, 3),
        ),
        "BatchNorm3d": (lambda: tnn.BatchNorm3d(2), lambda: nn.BatchNorm3d(2), (2, 2, 2, 3, 2)),
        "ReLU": (tnn.ReLU, nn.ReLU, (3, 5)),
        "LeakyReLU": (lambda: tnn.LeakyReLU(0.2), lambda: nn.torch.LeakyReLU(0.2), (3, 5)),
        "Tanh": (tnn.Tanh, nn.Tanh, (3, 5)),
        "Sigmoid": (tnn.Sigmoid, nn.Sigmoid, (3, 5)),
        "Flatten": (tnn.Flatten, nn.torch.Flatten, (2, 3, 2, 2)),
        "MaxPool2d": (lambda: tnn.MaxPool2d(3, 2, 1), lambda: nn.MaxPool2d(3, 2, 1), (2, 2, 7, 6)),
        "AdaptiveAvgPool2d": (
            lambda: tnn.AdaptiveAvgPool2d((3, 2)),
            lambda: nn.AdaptiveAvgPool2d((3, 2)),
            (2, 2, 7, 5),
        ),
        "Upsample nearest": (lambda: tnn.Upsample(scale_factor=2), lambda: nn.Upsample(scale_factor=2), (1, 2, 3, 4)),
        "Upsample nearest size": (lambda: tnn.Upsample(size=(5, 7)), lambda: nn.Upsample(size=(5, 7)), (1, 2, 3, 4)),
        "Upsample bilinear": (
            lambda: tnn.Upsample(scale_factor=2, mode="bilinear"),
            lambda: nn.Upsample(scale_factor=2, mode="bilinear"),
            (1, 2, 3, 4),
        ),
        "Upsample bilinear aligned": (
            lambda: tnn.Upsample(size=(5, 9), mode="bilinear", align_corners=True),
            lambda: nn.Upsample(size=(5, 9), mode="bilinear", align_corners=True),
            (1, 2, 3, 4),
        ),
    }


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _torch_pair_names():
    try:
        import torch as t
    except ImportError:
        return ["skipped"]
    return list(_torch_pairs(t))


@pytest.mark.parametrize("name", _torch_pair_names())
def test_torch_flavoured_layers_match_torch_nn(torch, name):
    make_torch, make_tconv, shape = _torch_pairs(torch)[name]
    torch.manual_seed(0)
    reference, layer = make_torch().double(), make_tconv()
    layer.astype(np.float64)
    if layer._parameters:
        layer.load_state_dict(reference.state_dict())
    rng = np.random.default_rng(0)
    x = rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape) + rng.standard_normal(shape)
    for training in (True, False):
        reference.train(training)
        layer.train(training)
        xt = torch.tensor(x, requires_grad=True)
        yt = reference(xt)
        y = layer(x)
        _close(y, yt.detach().numpy(), f"{name} forward (training={training})")
        r = rng.standard_normal(y.shape)
        reference.zero_grad()
        layer.zero_grad()
        (yt * torch.tensor(r)).sum().backward()
        _close(layer.backward(r), xt.grad.numpy(), f"{name} input gradient")
        reference_state = reference.state_dict()
        for param_name, param in layer.named_parameters():
            torch_param = dict(reference.named_parameters()).get(param_name)
            if torch_param is not None:
                _close(param.grad, torch_param.grad.numpy(), f"{name} {param_name} gradient")
            else:  # running statistics
                _close(param.value, reference_state[param_name].numpy(), f"{name} {param_name}")


def test_conv_transpose_output_size_matches_torch(torch):
    reference = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1).double()
    layer = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1).astype(np.float64)
    layer.load_state_dict(reference.state_dict())
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4))
    expected = reference(torch.tensor(x), output_size=[8, 7]).detach().numpy()
    _close(layer(x, output_size=(8, 7)), expected, "output_size")
    assert layer(x, output_size=(1, 2, 8, 7)).shape == (1, 2, 8, 7)


def test_torch_default_initialisation_bounds(torch):
    # PyTorch draws within 1/sqrt(fan_in) with fan_in = weight.shape[1] * prod(k)
    nn.manual_seed(0)
    layer = nn.ConvTranspose2d(64, 8, 4, groups=2)
    bound = 1 / np.sqrt(4 * 16)
    assert np.abs(layer.weight.value).max() <= bound
    assert np.abs(layer.weight.value).max() > 0.9 * bound
    reference = torch.nn.ConvTranspose2d(64, 8, 4, groups=2)
    assert np.abs(reference.weight.detach().numpy()).max() <= bound


def test_sequential_state_dict_from_torch(torch):
    tnn = torch.nn
    torch.manual_seed(1)
    reference = tnn.Sequential(
        tnn.ConvTranspose2d(6, 4, 4, 2, 1, bias=False),
        tnn.BatchNorm2d(4),
        tnn.ReLU(),
        tnn.ConvTranspose2d(4, 1, 4, 2, 1),
        tnn.Tanh(),
    ).eval()
    with torch.no_grad():  # non-trivial running statistics
        reference[1].running_mean.uniform_(-1, 1)
        reference[1].running_var.uniform_(0.5, 2)
    model = nn.Sequential(
        [
            nn.ConvTranspose2d(6, 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.ConvTranspose2d(4, 1, 4, 2, 1),
            nn.Tanh(),
        ]
    ).eval()
    model.load_state_dict(reference.state_dict())
    x = np.random.default_rng(1).standard_normal((2, 6, 4, 4)).astype(np.float32)
    _close(model(x), reference(torch.tensor(x)).detach().numpy(), "Sequential")
    with pytest.raises(ValueError, match="missing"):
        model.load_state_dict({k: v for k, v in reference.state_dict().items() if k != "0.weight"})


def test_optimizers_match_torch_optim(torch):
    rng = np.random.default_rng(0)
    start = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(6)]
    for ours, theirs in (
        (lambda p: nn.SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        (
            lambda p: nn.SGD(p, lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.01),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.01),
        ),
        (lambda p: nn.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
        (
            lambda p: nn.Adam(p, lr=0.05, betas=(0.5, 0.9), weight_decay=0.1),
            lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.5, 0.9), weight_decay=0.1),
        ),
    ):
        param = nn.Parameter(start.copy())
        tensor = torch.tensor(start.copy(), requires_grad=True)
        optimizer, reference = ours([param]), theirs([tensor])
        for g in grads:
            param.grad = g.copy()
            tensor.grad = torch.tensor(g.copy())
            optimizer.step()
            reference.step()
        np.testing.assert_allclose(param.value, tensor.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_losses_match_torch(torch):
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((4, 3)), rng.random((4, 3))
    for ours, theirs, pred in (
        (nn.MSELoss(), torch.nn.MSELoss(), z),
        (nn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss(), z * 10),
        (nn.BCELoss(), torch.nn.BCELoss(), 1 / (1 + np.exp(-z))),
    ):
        pt = torch.tensor(pred, requires_grad=True)
        expected = theirs(pt, torch.tensor(t))
        expected.backward()
        assert ours(pred, t) == pytest.approx(expected.item(), rel=1e-10)
        np.testing.assert_allclose(ours.backward(), pt.grad.numpy(), rtol=1e-8, atol=1e-12)


# -- Keras -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the Keras comparison runs on the TensorFlow backend")
    return keras


def _keras_pairs(k):
    layers = k.layers
    return {
        "Conv2DTranspose same s2": (
            lambda: layers.Conv2DTranspose(3, 5, strides=2, padding="same", use_bias=True, activation="tanh"),
            lambda: nn.Conv2DTranspose(3, 5, strides=2, padding="same", activation="tanh"),
            (2, 7, 7, 4),
        ),
        "Conv2DTranspose valid op": (
            lambda: layers.Conv2DTranspose(2, (3, 2), strides=(2, 3), output_padding=(1, 2)),
            lambda: nn.Conv2DTranspose(2, (3, 2), strides=(2, 3), output_padding=(1, 2)),
            (2, 4, 3, 3),
        ),
        "Conv2DTranspose same op": (
            lambda: layers.Conv2DTranspose(2, 4, strides=3, padding="same", output_padding=2),
            lambda: nn.Conv2DTranspose(2, 4, strides=3, padding="same", output_padding=2),
            (1, 3, 4, 2),
        ),
        "Conv1DTranspose": (
            lambda: layers.Conv1DTranspose(3, 4, strides=2, padding="same", activation="relu"),
            lambda: nn.Conv1DTranspose(3, 4, strides=2, padding="same", activation="relu"),
            (2, 6, 2),
        ),
        "Conv3DTranspose": (
            lambda: layers.Conv3DTranspose(2, 2, strides=2),
            lambda: nn.Conv3DTranspose(2, 2, strides=2),
            (1, 2, 3, 2, 3),
        ),
        "Conv2D same s2": (
            lambda: layers.Conv2D(4, 3, strides=2, padding="same", activation="sigmoid"),
            lambda: nn.Conv2D(4, 3, strides=2, padding="same", activation="sigmoid"),
            (2, 7, 6, 3),
        ),
        "Conv1D causal": (
            lambda: layers.Conv1D(2, 3, padding="causal", dilation_rate=2),
            lambda: nn.Conv1D(2, 3, padding="causal", dilation_rate=2),
            (2, 8, 3),
        ),
        "Conv3D": (
            lambda: layers.Conv3D(2, 2, padding="same"),
            lambda: nn.Conv3D(2, 2, padding="same"),
            (1, 3, 3, 3, 2),
        ),
        "Dense": (lambda: layers.Dense(3, activation="tanh"), lambda: nn.Dense(3, activation="tanh"), (4, 5)),
        "BatchNormalization": (
            lambda: layers.BatchNormalization(momentum=0.8),
            lambda: nn.BatchNormalization(momentum=0.8),
            (4, 3, 2, 3),
        ),
        "LeakyReLU": (layers.LeakyReLU, nn.keras.LeakyReLU, (3, 5)),
        "ReLU": (layers.ReLU, nn.keras.ReLU, (3, 5)),
        "Activation leaky_relu": (
            lambda: layers.Activation("leaky_relu"),
            lambda: nn.Activation("leaky_relu"),
            (3, 5),
        ),
        "Reshape": (lambda: layers.Reshape((2, -1)), lambda: nn.Reshape((2, -1)), (2, 6)),
        "Flatten": (layers.Flatten, nn.keras.Flatten, (2, 3, 2, 2)),
        "MaxPooling2D same": (
            lambda: layers.MaxPooling2D((2, 3), padding="same"),
            lambda: nn.MaxPooling2D((2, 3), padding="same"),
            (2, 5, 5, 2),
        ),
        "GlobalAveragePooling2D": (layers.GlobalAveragePooling2D, nn.GlobalAveragePooling2D, (2, 3, 4, 5)),
        "UpSampling2D nearest": (lambda: layers.UpSampling2D((2, 3)), lambda: nn.UpSampling2D((2, 3)), (1, 3, 3, 2)),
        "UpSampling2D bilinear": (
            lambda: layers.UpSampling2D(2, interpolation="bilinear"),
            lambda: nn.UpSampling2D(2, interpolation="bilinear"),
            (1, 3, 4, 2),
        ),
    }


def _keras_pair_names():
    try:
        import keras as k
    except ImportError:
        return ["skipped"]
    return list(_keras_pairs(k))


@pytest.mark.parametrize("name", _keras_pair_names())
def test_keras_flavoured_layers_match_keras(keras, name):
    import tensorflow as tf

    make_keras, make_tconv, shape = _keras_pairs(keras)[name]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape) + rng.standard_normal(shape)).astype(
        np.float32
    )
    reference, layer = make_keras(), make_tconv()
    reference.build(x.shape)
    layer.build_from_shape(x.shape)
    weights = reference.get_weights()
    if weights:  # non-trivial batch-norm statistics and biases
        weights = [w + rng.uniform(0.1, 0.5, w.shape).astype(np.float32) for w in weights]
        reference.set_weights(weights)
    layer.set_weights(reference.get_weights())
    for training in (True, False):
        layer.train(training)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            yt = reference(xt, training=training)
            r = rng.standard_normal(yt.shape).astype(np.float32)
            total = tf.reduce_sum(yt * r)
        grads = tape.gradient(total, [xt, *reference.trainable_weights])
        y = layer(x)
        _close(y, yt.numpy(), f"{name} forward (training={training})")
        layer.zero_grad()
        _close(layer.backward(r), grads[0].numpy(), f"{name} input gradient")
        ours = [p for _, p in layer.named_parameters(trainable_only=True)]
        for param, grad in zip(ours, grads[1:]):
            _close(param._to_user(param.grad), grad.numpy(), f"{name} weight gradient")
        for mine, theirs in zip(layer.get_weights(), reference.get_weights()):
            _close(mine, theirs, f"{name} weights after the call (moving statistics)")


def test_dcgan_generator_matches_keras(keras):
    from tconv.models import dcgan_generator

    layers = keras.layers
    reference = keras.Sequential(
        [
            keras.Input((100,)),
            layers.Dense(7 * 7 * 256, use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Reshape((7, 7, 256)),
            layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding="same", use_bias=False, activation="tanh"),
        ]
    )
    assert reference.count_params() == 2330944
    model = dcgan_generator()
    assert model.count_params() == reference.count_params()
    model.set_weights(reference.get_weights())
    z = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32)
    model.eval()
    _close(model(z), reference(z, training=False).numpy(), "generator, inference")
    model.train()
    _close(model(z), reference(z, training=True).numpy(), "generator, training")


def test_constraints_match_keras(keras):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 4, 5)).astype(np.float32) * 2
    pairs = [
        (nn.constraints.max_norm(1.5, axis=[0, 1, 2]), keras.constraints.MaxNorm(1.5, axis=[0, 1, 2])),
        (nn.constraints.unit_norm(axis=0), keras.constraints.UnitNorm(axis=0)),
        (nn.constraints.non_neg(), keras.constraints.NonNeg()),
    ]
    for ours, theirs in pairs:
        _close(ours(w), np.asarray(theirs(w)), type(ours).__name__)
    for ours, theirs in ((nn.regularizers.l1_l2(0.01, 0.02), keras.regularizers.L1L2(0.01, 0.02)),):
        assert ours(w) == pytest.approx(float(theirs(w)), rel=1e-5)


def test_keras_initializer_statistics(keras):
    rng = np.random.default_rng(0)
    shape = (5, 5, 64, 128)
    for name in ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal"):
        ours = nn.initializers.get(name)(shape, rng)
        theirs = np.asarray(keras.initializers.get(name)(shape))
        assert ours.std() == pytest.approx(theirs.std(), rel=0.03), name
        assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=0.05), name
