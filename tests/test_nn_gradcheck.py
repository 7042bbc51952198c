"""Every tconv.nn layer's backward against central finite differences in float64.

The loss is ``sum(y * r)`` for a fixed random ``r`` plus the regularizers'
penalties; its gradient with respect to the input and to every trainable
parameter must match what ``backward`` returns and accumulates.
"""

from __future__ import annotations

import numpy as np
import pytest

from tconv import nn
from tconv.nn.layers.activations import ACTIVATIONS

EPS = 1e-6


def _numeric(f, array, rng, samples=12):
    """Central differences of f at up to ``samples`` random entries of ``array`` (perturbed in place)."""
    flat = array.reshape(-1)
    picks = rng.choice(flat.size, size=min(samples, flat.size), replace=False)
    values = []
    for i in picks:
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        values.append((up - down) / (2 * EPS))
    return picks, np.array(values)


def gradcheck(layer, x, *, seed=0, reseed=None, call=None, input_grad=True):
    """``input_grad=False``: ``backward`` returns None and only the parameters' gradients are checked."""
    rng = np.random.default_rng(seed)
    layer.astype(np.float64)
    call = call or (lambda m, a: m(a))
    if reseed is not None:
        nn.manual_seed(reseed)
    y = call(layer, x)
    r = rng.standard_normal(y.shape)

    def loss():
        if reseed is not None:
            nn.manual_seed(reseed)
        return float(np.sum(call(layer, x) * r)) + layer.regularization_loss()

    loss()
    layer.zero_grad()
    grad_x = layer.backward(r, input_grad=input_grad)
    if not input_grad:
        assert grad_x is None
    else:
        assert grad_x.shape == x.shape
        picks, numeric = _numeric(loss, x, rng)
        np.testing.assert_allclose(grad_x.reshape(-1)[picks], numeric, rtol=1e-5, atol=1e-6, err_msg="input gradient")
    for name, param in layer.named_parameters(trainable_only=True):
        analytic = param.grad.reshape(-1).copy()
        picks, numeric = _numeric(loss, param.value, rng)
        np.testing.assert_allclose(analytic[picks], numeric, rtol=1e-5, atol=1e-6, err_msg=name)


def _x(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


CASES = {
    "ConvTranspose2d s2 p1 op1": (
        lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
        (2, 4, 5, 4),
    ),
    "ConvTranspose2d groups dilation": (
        lambda: nn.ConvTranspose2d(4, 6, (2, 3), stride=(1, 2), padding=(0, 2), groups=2, dilation=2),
        (2, 4, 5, 5),
    ),
    "ConvTranspose2d same": (lambda: nn.ConvTranspose2d(3, 2, 4, stride=2, padding="same"), (1, 3, 4, 5)),
    "ConvTranspose1d": (lambda: nn.ConvTranspose1d(3, 2, 5, stride=3, padding=1), (2, 3, 6)),
    "ConvTranspose3d": (lambda: nn.ConvTranspose3d(2, 3, 2, stride=2), (1, 2, 3, 2, 3)),
    "Conv2d s2": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 7, 6)),
    "Conv2d reflect": (lambda: nn.Conv2d(3, 2, 3, padding=2, padding_mode="reflect"), (1, 3, 5, 6)),
    "Conv2d replicate": (lambda: nn.Conv2d(3, 2, (3, 2), padding=(1, 2), padding_mode="replicate"), (1, 3, 4, 4)),
    "Conv2d circular same": (lambda: nn.Conv2d(2, 2, 4, padding="same", padding_mode="circular"), (1, 2, 5, 5)),
    "Conv1d depthwise": (lambda: nn.Conv1d(4, 8, 3, groups=4, dilation=2), (2, 4, 9)),
    "Conv3d": (lambda: nn.Conv3d(2, 2, 2, stride=(1, 2, 1)), (1, 2, 3, 4, 3)),
    "Conv2DTranspose same op": (
        lambda: nn.Conv2DTranspose(3, 5, strides=2, padding="same", output_padding=1, activation="tanh"),
        (2, 4, 4, 2),
    ),
    "Conv2DTranspose valid channels_first": (
        lambda: nn.Conv2DTranspose(3, 3, strides=(2, 1), data_format="channels_first", activation="leaky_relu"),
        (2, 2, 3, 4),
    ),
    "Conv1DTranspose": (lambda: nn.Conv1DTranspose(2, 4, strides=2, padding="same"), (2, 5, 3)),
    "Conv3DTranspose": (lambda: nn.Conv3DTranspose(2, 3, strides=2, padding="same"), (1, 2, 3, 2, 2)),
    "Conv2D same relu": (lambda: nn.Conv2D(3, 3, strides=2, padding="same", activation="sigmoid"), (2, 5, 6, 2)),
    "Conv1D causal": (lambda: nn.Conv1D(2, 3, padding="causal", dilation_rate=2), (2, 7, 3)),
    "Conv3D": (lambda: nn.Conv3D(2, 2, padding="same"), (1, 3, 3, 3, 2)),
    "Linear": (lambda: nn.Linear(5, 3), (4, 5)),
    "Dense softplus 3-d input": (lambda: nn.Dense(3, activation="softplus"), (2, 3, 4)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), (4, 3, 2, 3)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3), (5, 3)),
    "BatchNorm3d": (lambda: nn.BatchNorm3d(2), (2, 2, 2, 2, 2)),
    "BatchNormalization": (lambda: nn.BatchNormalization(), (3, 4, 2)),
    "BatchNormalization axis 1 no scale": (lambda: nn.BatchNormalization(axis=1, scale=False), (3, 2, 4)),
    "ReLU": (lambda: nn.ReLU(), (3, 4)),
    "LeakyReLU": (lambda: nn.torch.LeakyReLU(0.1), (3, 4)),
    "keras LeakyReLU": (lambda: nn.keras.LeakyReLU(), (3, 4)),
    "Tanh": (lambda: nn.Tanh(), (3, 4)),
    "Sigmoid": (lambda: nn.Sigmoid(), (3, 4)),
    "Activation tanh": (lambda: nn.Activation("tanh"), (3, 4)),
    "Flatten": (lambda: nn.torch.Flatten(), (2, 3, 2, 2)),
    "keras Flatten channels_first": (lambda: nn.keras.Flatten("channels_first"), (2, 3, 2, 2)),
    "Reshape": (lambda: nn.Reshape((2, -1)), (2, 6)),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 2, 5, 6)),
    "MaxPooling2D same": (lambda: nn.MaxPooling2D((2, 3), padding="same"), (2, 5, 5, 2)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((3, 2)), (2, 2, 7, 5)),
    "GlobalAveragePooling2D": (lambda: nn.GlobalAveragePooling2D(), (2, 3, 4, 5)),
    "Upsample nearest": (lambda: nn.Upsample(scale_factor=2), (1, 2, 3, 3)),
    "Upsample bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3, 4)),
    "Upsample bilinear aligned size": (
        lambda: nn.Upsample(size=(5, 7), mode="bilinear", align_corners=True),
        (1, 2, 3, 4),
    ),
    "UpSampling2D bilinear": (lambda: nn.UpSampling2D((2, 3), interpolation="bilinear"), (1, 3, 3, 2)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layer_gradients(name):
    nn.manual_seed(3)
    make, shape = CASES[name]
    layer = make()
    x = _x(*shape)
    if "MaxPool" in name:  # distinct values, so that the winner does not change under the perturbation
        x = np.random.default_rng(2).permutation(x.size).reshape(shape) * 0.1
    gradcheck(layer, x)


def test_batch_norm_eval_gradients():
    layer = nn.BatchNorm2d(3)
    layer.astype(np.float64)
    layer.running_mean.value = np.array([0.1, -0.2, 0.3])
    layer.running_var.value = np.array([1.5, 0.5, 2.0])
    layer.eval()
    gradcheck(layer, _x(2, 3, 2, 2))


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients_with_a_scale_and_shift(training):
    """Scale and shift away from their initial ones and zeros, so that every term of the backward counts."""
    layer = nn.BatchNorm2d(3)
    layer.astype(np.float64)
    layer.weight.value = np.array([1.7, -0.4, 0.9])
    layer.bias.value = np.array([0.3, -1.1, 0.2])
    layer.running_mean.value = np.array([0.1, -0.2, 0.3])
    layer.running_var.value = np.array([1.5, 0.5, 2.0])
    layer.train(training)
    if training:  # the running statistics move with every call: compare the call's own gradients only
        gradcheck(layer, _x(4, 3, 3, 2), call=lambda m, a: (m.running_mean.value.fill(0), m(a))[1])
    else:
        gradcheck(layer, _x(4, 3, 3, 2))


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3, 1.0, 1.5, -0.2])
def test_leaky_relu_gradients_for_every_slope(slope):
    """Slopes inside (0, 1] take max(x, a*x); the others the masked form."""
    gradcheck(nn.torch.LeakyReLU(slope), _x(3, 5) - 0.5)


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2, 1.0, 1.5, -0.2])
def test_leaky_relu_is_its_definition_on_every_value(slope):
    """The activation's function and derivative (what the layers and the fused ``activation=`` use): ``x`` where
    ``x > 0``, else ``slope * x``, and the slope 1 or ``slope``, bitwise, on zeros of both signs, infinities,
    NaN and the smallest subnormals, in float16, float32 and float64."""
    for dtype in (np.float16, np.float32, np.float64):
        x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.5, -3.25], dtype=dtype)
        x = np.concatenate([x, [np.finfo(dtype).smallest_subnormal, -np.finfo(dtype).smallest_subnormal]])
        x = np.concatenate([x, np.random.default_rng(0).standard_normal(64).astype(dtype)])
        function, slope_of = ACTIVATIONS["leaky_relu"]
        with np.errstate(invalid="ignore"):
            y = function(x, slope)
            grad = slope_of(x, y, slope)
            expected = np.array([v if v > 0 else dtype(slope) * v for v in x], dtype=dtype)
        expected_grad = np.array([1 if v > 0 else slope for v in x], dtype=dtype)
        assert y.dtype == dtype and grad.dtype == dtype
        np.testing.assert_array_equal(y, expected)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(expected))
        np.testing.assert_array_equal(grad, expected_grad)


def test_dropout_gradients_with_a_fixed_mask():
    gradcheck(nn.torch.Dropout(0.4), _x(4, 6), reseed=11)


def test_regularizers_enter_the_gradients():
    nn.manual_seed(0)
    layer = nn.Conv2DTranspose(
        2,
        3,
        strides=2,
        kernel_regularizer=nn.regularizers.l1_l2(0.01, 0.02),
        bias_regularizer="l2",
        activity_regularizer=nn.regularizers.l2(0.05),
        bias_initializer="ones",
    )
    gradcheck(layer, _x(3, 3, 3, 2))
    assert layer.regularization_loss() > 0


def test_containers_gradients():
    nn.manual_seed(1)
    inception = nn.Parallel(
        [
            nn.Sequential([nn.Conv2d(3, 2, 1), nn.ReLU()]),
            nn.Sequential([nn.Conv2d(3, 2, 1), nn.Tanh(), nn.Conv2d(2, 3, 3, padding=1)]),
            nn.Sequential([nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(3, 1, 1)]),
        ]
    )
    x = np.random.default_rng(5).permutation(2 * 3 * 4 * 4).reshape(2, 3, 4, 4) * 0.01
    gradcheck(inception, x)
    residual = nn.Residual(
        nn.Sequential([nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Sigmoid()]),
        shortcut=nn.Conv2d(3, 4, 1),
        activation=nn.Tanh(),
    )
    gradcheck(residual, _x(2, 3, 3, 3))
    identity = nn.Residual(nn.Sequential([nn.Linear(4, 4), nn.Tanh()]))
    gradcheck(identity, _x(3, 4))


def test_parameter_gradients_without_the_input_gradient(monkeypatch):
    """``backward(grad, input_grad=False)`` returns None, the parameters' gradients still match finite
    differences, and only the layers that read the model's input skip their input gradient: the first layer of
    a Sequential, every branch of a Parallel, a Residual's body and shortcut, a module whose forward chains its
    sub-modules, and the U-Net's first convolution."""
    from tconv.models import UNet
    from tconv.nn.layers import conv as conv_layer
    from tconv.nn.layers import dense as dense_layer

    asked: list[bool] = []
    for name in ("conv_grad", "conv_transpose_grad"):
        real = getattr(conv_layer, name)
        monkeypatch.setattr(
            conv_layer, name, lambda *a, _real=real, **k: asked.append(k["input_grad"]) or _real(*a, **k)
        )
    products: list[tuple[int, ...]] = []
    real_matmul = dense_layer.team.matmul
    monkeypatch.setattr(dense_layer.team, "matmul", lambda a, b: products.append(a.shape) or real_matmul(a, b))

    class Chained(nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.act, self.last = nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)

        def forward(self, x):
            return self.last(self.act(self.first(x)))

    nn.manual_seed(2)
    sequential = nn.Sequential([nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(3, 2, 2, stride=2)])
    gradcheck(sequential, _x(2, 2, 4, 4), input_grad=False)
    assert asked == [True, False]  # backward runs the last layer first
    asked.clear()
    parallel = nn.Parallel([nn.Conv2d(2, 1, 1), nn.Sequential([nn.Conv2d(2, 2, 3, padding=1), nn.Tanh()])])
    gradcheck(parallel, _x(2, 2, 3, 3), input_grad=False)
    assert asked == [False, False]
    asked.clear()
    residual = nn.Residual(nn.Sequential([nn.Conv2d(2, 2, 3, padding=1), nn.Tanh()]), shortcut=nn.Conv2d(2, 2, 1))
    gradcheck(residual, _x(2, 2, 3, 3), input_grad=False)
    assert asked == [False, False]
    chained = Chained()
    gradcheck(chained, _x(3, 4), input_grad=False)
    chained(_x(3, 4))
    products.clear()
    chained.backward(np.ones((3, 2)), input_grad=False)
    # last: its weight's (2, 3) @ (3, 5) and its input's (3, 2) @ (2, 5); first: its weight's (5, 3) @ (3, 4) only
    assert products == [(2, 3), (3, 2), (5, 3)]
    asked.clear()
    gradcheck(UNet(2), _x(1, 1, 8, 8) * 0.1, input_grad=False)
    assert asked[-1] is False and asked.count(False) == 1
    # the layers before the first with a trainable parameter are not run: the Linear after a Flatten skips its
    # input's gradient, the Flatten's backward never runs
    flattened = nn.Sequential([nn.torch.Flatten(), nn.Linear(12, 2)])
    flattened(_x(3, 2, 6))
    products.clear()
    real_flatten = flattened[0].backward
    monkeypatch.setattr(flattened[0], "backward", lambda *a, **k: pytest.fail("ran the Flatten's backward"))
    assert flattened.backward(np.ones((3, 2)), input_grad=False) is None
    assert products == [(2, 3)]  # the Linear's weight gradient only
    monkeypatch.setattr(flattened[0], "backward", real_flatten)


def test_a_module_overriding_backward_itself_still_chains():
    """A module that overrides ``backward(grad)`` (no ``input_grad``) as a Sequential's first layer: the keyword
    is passed only where the input's gradient is not wanted."""

    class Doubling(nn.Module):
        def forward(self, x):
            return 2 * x

        def backward(self, grad):
            return 2 * grad

    model = nn.Sequential([Doubling(), nn.Linear(3, 2)])
    model(_x(4, 3))
    assert model.backward(np.ones((4, 2))).shape == (4, 3)
