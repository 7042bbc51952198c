"""The compiled element-wise passes of tconv.nn's layers (:mod:`tconv.implementations.compiled.elementwise`).

The activations, their slopes, dropout's product and batch normalization's per-element passes are checked to the
bit against the NumPy expressions written out here (special values included: signed zeros, NaN, infinities),
the batch-normalization sums against float64 sums, every kernel at lengths around its jobs' boundaries and with
its ranges on a team of three as well as in the calling thread; then the layers themselves, float32, against a
float64 reference of batch normalization's forward and backward.
"""

from __future__ import annotations

import numpy as np
import pytest

from tconv import _tuning, nn
from tconv.implementations.compiled import elementwise, kernels, team
from tconv.implementations.compiled import pooling as compiled_pooling
from tconv.nn.layers.pooling import MaxPool

needs_jit = pytest.mark.skipif(not kernels.available(), reason="numba is not installed or TCONV_NO_JIT is set")

JOB = elementwise.ELEMENT_JOB
LENGTHS = (1, 7, 40, JOB - 1, JOB + 5, 3 * JOB + 17)


@pytest.fixture(params=[1, 3], ids=["calling thread", "team of three"])
def team_size(request, monkeypatch):
    """Every kernel call in the calling thread, or cut into ranges on a team of three whatever its size."""
    monkeypatch.setattr(team, "_threads", request.param)
    if request.param > 1:
        monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
        monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
    return request.param


def _special(rng, n, dtype):
    x = rng.standard_normal(n).astype(dtype)
    for start, value in ((0, 0.0), (1, -0.0), (2, np.nan), (3, np.inf), (4, -np.inf)):
        x[start :: 7 + start] = value
    return x


def _same(a, b):
    """Equal to the bit in value and sign (NaN where the other is NaN)."""
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


@needs_jit
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_and_slopes_are_numpys_to_the_bit(team_size, dtype):
    rng = np.random.default_rng(3)
    with np.errstate(invalid="ignore"):
        for n in LENGTHS:
            x, grad = _special(rng, n, dtype), _special(rng, n, dtype)[::-1].copy()
            assert _same(elementwise.activation("relu", x, 0.0), np.maximum(x, 0))
            assert _same(elementwise.activation_grad("relu", grad, x, 0.0), grad * (x > 0).astype(dtype))
            for a in (0.01, 0.2, 1.0, 0.0, 1.5, -0.3):
                expected = np.maximum(x, a * x) if 0 < a <= 1 else np.where(x > 0, x, a * x)
                assert _same(elementwise.activation("leaky_relu", x, a), expected), (n, a)
                slope = np.where(x > 0, 1.0, a).astype(dtype)
                assert _same(elementwise.activation_grad("leaky_relu", grad, x, a), grad * slope), (n, a)


@needs_jit
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_pass_is_numpys_to_the_bit(team_size, dtype):
    rng = np.random.default_rng(4)
    with np.errstate(invalid="ignore"):
        for n in LENGTHS:
            a = _special(rng, n, dtype).reshape(1, n)
            draws = rng.integers(0, 2**32, size=a.shape, dtype=np.uint32)
            for rate in (0.1, 0.5, 0.97):
                threshold = int(np.ceil(rate * 2**32))
                scale = dtype(1 / (1 - rate))
                mask = draws >= np.uint32(threshold)
                expected = np.multiply(a, mask) * scale
                out, got_mask = elementwise.dropout(a, draws, threshold, scale)
                assert np.array_equal(got_mask, mask) and _same(out, expected)
                backward = a[:, ::-1].copy()
                assert _same(elementwise.masked_scale(backward, mask, scale), np.multiply(backward, mask) * scale)


BN_CASES = [  # shape, channel axis
    ((64, 2500), 1),  # a Dense layer's BatchNorm1d: three blocks of channels, four pieces of rows
    ((40, 5, 5, 40), 3),  # channels last: three pieces of rows
    ((12000, 3), 1),  # few channels, many rows: three pieces of rows
    ((4, 6, 9, 11), 1),  # channels first: a job a run of one channel
    ((6, 5, 5, 40), 3),  # channels last, one job
    ((2, 3, 2, 3, 4), 1),  # 3-D
    ((3, 4, 2), 2),
    ((5, 3), 1),
    ((40, 5, 5, 1), 3),  # one channel, channels last: one run
]


def test_batch_norm_cases_cover_several_pieces_and_blocks():
    """The layouts the cases exercise: channels-last pieces of rows and blocks of channels, channels-first runs."""
    jobs = {shape: elementwise._layout(shape, axis)[1:] for shape, axis in BN_CASES}
    assert jobs[(64, 2500)] == (12, 4)  # (jobs, rows of partial sums): 4 pieces of 16 rows x 3 blocks
    assert jobs[(40, 5, 5, 40)] == (3, 3)
    assert jobs[(12000, 3)] == (3, 3)
    assert jobs[(4, 6, 9, 11)] == (24, 4)
    assert jobs[(40, 5, 5, 1)] == (1, 1)


@needs_jit
@pytest.mark.parametrize("shape, axis", BN_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_passes(team_size, shape, axis, dtype):
    """The sums against float64 sums (and the same bits in the calling thread and on a team), the per-element
    passes against their NumPy expressions to the bit."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    reduce = tuple(a for a in range(len(shape)) if a != axis)
    view = [-1 if a == axis else 1 for a in range(len(shape))]
    x64 = x.astype(np.float64)
    sums = elementwise.channel_sums(x, axis)
    np.testing.assert_allclose(sums, x64.sum(axis=reduce), rtol=1e-12, atol=1e-9)
    mean = sums / (x.size // shape[axis])
    squares = elementwise.channel_sums(x, axis, centre=mean)
    np.testing.assert_allclose(squares, ((x64 - mean.reshape(view)) ** 2).sum(axis=reduce), rtol=1e-12)
    channels = shape[axis]
    m, s, g, b, u, v = (rng.standard_normal(channels).astype(dtype) for _ in range(6))
    x_hat = (x - m.reshape(view)) * s.reshape(view)  # NumPy's numbers, which the passes make again from x
    sum_g, sum_gx = elementwise.batch_norm_sums(grad, x, axis, m, s)
    np.testing.assert_allclose(sum_g, grad.astype(np.float64).sum(axis=reduce), rtol=1e-10, atol=1e-9)
    products = grad.astype(np.float64) * x_hat.astype(np.float64)
    np.testing.assert_allclose(sum_gx, products.sum(axis=reduce), rtol=1e-10, atol=1e-8)

    y = elementwise.normalize(x, axis, m, s, g, b)
    assert _same(y, x_hat * g.reshape(view) + b.reshape(view))
    assert _same(elementwise.normalize(x, axis, m, s, g, None), x_hat * g.reshape(view))
    dx = elementwise.batch_norm_grad(grad, x, axis, m, s, u, v, g)
    assert _same(dx, ((grad - x_hat * u.reshape(view)) - v.reshape(view)) * g.reshape(view))

    # with an activation in the same pass: NumPy's ReLU / LeakyReLU of y, as the activation kernel computes it
    for name, slope in (("relu", 0.0), ("leaky_relu", 0.3)):
        for beta in (b, None):
            z = x_hat * g.reshape(view) + (0 if beta is None else beta.reshape(view))
            activated = np.maximum(z, 0) if name == "relu" else np.where(z > 0, z, dtype(slope) * z)
            assert _same(elementwise.normalize(x, axis, m, s, g, beta, name, slope), activated)


@needs_jit
@pytest.mark.parametrize("shape, axis", BN_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_statistics_in_one_pass_match_the_two_pass_float64_ones(team_size, shape, axis, dtype):
    """The one-pass mean and variance against NumPy's float64 mean and (two-pass) variance, on channels of
    deviation 1 around means from 0 to 10^4 (unshifted, the sums of squares would lose the variance's digits
    there), with one channel constant (variance exactly 0, never negative)."""
    rng = np.random.default_rng(9)
    channels = shape[axis]
    view = [-1 if a == axis else 1 for a in range(len(shape))]
    centres = np.geomspace(1.0, 1e4, channels) * np.sign(rng.standard_normal(channels))
    x = (rng.standard_normal(shape) + centres.reshape(view)).astype(dtype)
    np.moveaxis(x, axis, 0)[0] = 3.25  # a constant channel
    reduce = tuple(a for a in range(len(shape)) if a != axis)
    mean, var = elementwise.batch_statistics(x, axis)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=reduce), rtol=1e-13, atol=0)
    np.testing.assert_allclose(var, x64.var(axis=reduce), rtol=1e-9, atol=0)
    assert mean[0] == 3.25 and var[0] == 0.0


@needs_jit
def test_batch_statistics_sum_an_outlier_firsts_channel_again_centred(monkeypatch):
    """A channel whose first element lies far out (more than about 30 deviations from its mean) has its squares
    summed again about its mean (channel_sums' centred pass), and its variance matches NumPy's two passes; the
    other channels keep the one pass."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((20000, 3)).astype(np.float64)
    x[0, 1] = 1e5  # channel 1's shift: about 700 of its deviations from its mean
    centred: list[np.ndarray] = []
    real = elementwise.channel_sums
    monkeypatch.setattr(
        elementwise, "channel_sums", lambda a, axis, centre=None: centred.append(centre) or real(a, axis, centre)
    )
    mean, var = elementwise.batch_statistics(x, 1)
    assert len(centred) == 1
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-10)  # shift + sum(x - shift) / n: 1e5's rounding
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-12)


@needs_jit
@pytest.mark.parametrize("shape, axis", BN_CASES[:4])  # each of several jobs
def test_batch_norm_sums_do_not_depend_on_the_threads(monkeypatch, shape, axis):
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    alone = elementwise.channel_sums(x, axis)
    statistics = elementwise.batch_statistics(x, axis)
    monkeypatch.setattr(team, "_threads", 3)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 0.0)
    assert np.array_equal(elementwise.channel_sums(x, axis), alone)
    for a, b in zip(elementwise.batch_statistics(x, axis), statistics):
        assert np.array_equal(a, b)


def test_supports_only_contiguous_float_arrays_of_one_dtype_and_shape():
    a = np.zeros((3, 4), np.float32)
    assert elementwise.supports(a, a.copy()) == kernels.available()
    assert not elementwise.supports(a.T)  # not C-contiguous
    assert not elementwise.supports(a.astype(np.float16))
    assert not elementwise.supports(a, a.astype(np.float64))
    assert not elementwise.supports(a, np.zeros((4, 3), np.float32))
    assert not elementwise.supports(a.tolist())


@pytest.mark.parametrize(
    "make, shape, axis",
    [
        (lambda: nn.BatchNorm2d(5), (4, 5, 6, 7), 1),
        (lambda: nn.BatchNormalization(), (4, 6, 7, 5), 3),  # Keras's: channels last
        (lambda: nn.BatchNorm1d(300), (8, 300), 1),
    ],
)
@pytest.mark.parametrize("grad_order", ["C", "F"])
def test_batch_norm_layer_in_float32_against_a_float64_reference(make, shape, axis, grad_order):
    """The layer's training forward, running statistics and backward in float32 (the compiled passes where numba
    is installed) against the formulas in float64. A gradient the compiled passes do not take (not C-contiguous)
    goes through NumPy's, after a compiled forward that kept x rather than x_hat."""
    rng = np.random.default_rng(7)
    layer = make()
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    grad = rng.standard_normal(shape).astype(np.float32)
    y = layer(x)
    reduce = tuple(a for a in range(len(shape)) if a != axis)
    count = x.size // shape[axis]
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=reduce, keepdims=True), x64.var(axis=reduce, keepdims=True)
    x_hat = (x64 - mean) / np.sqrt(var + layer.eps)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x_hat, rtol=1e-5, atol=1e-5)  # gamma 1, beta 0
    np.testing.assert_allclose(layer.running_mean.value, layer.momentum * mean.reshape(-1), rtol=1e-5, atol=1e-7)
    unbiased = var.reshape(-1) * count / (count - 1) if layer.unbiased_running_var else var.reshape(-1)
    expected_var = 1 - layer.momentum + layer.momentum * unbiased
    np.testing.assert_allclose(layer.running_var.value, expected_var, rtol=1e-5)
    dx = layer.backward(np.asarray(grad, order=grad_order))
    g64 = grad.astype(np.float64)
    expected_dx = g64 - g64.mean(axis=reduce, keepdims=True) - x_hat * (g64 * x_hat).mean(axis=reduce, keepdims=True)
    expected_dx /= np.sqrt(var + layer.eps)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad, (g64 * x_hat).sum(axis=reduce), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad, g64.sum(axis=reduce), rtol=1e-4, atol=1e-4)


@needs_jit
def test_layers_take_the_compiled_passes(monkeypatch):
    """float32 contiguous arrays go through the compiled passes (each counted), a float16 one through NumPy."""
    calls: list[str] = []
    # every pass but channel_sums, which the engine's bias gradients take (the layer's statistics are
    # batch_statistics')
    names = [name for name in elementwise.__all__ if name not in ("supports", "channel_sums", "run_pass")]
    for name in names:
        real = getattr(elementwise, name)
        counted = lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k)  # noqa: E731
        monkeypatch.setattr(elementwise, name, counted)
    x = np.random.default_rng(8).standard_normal((4, 3, 5, 5)).astype(np.float32)
    layers = [nn.BatchNorm2d(3), nn.torch.LeakyReLU(0.2), nn.torch.Dropout(0.3), nn.torch.ReLU(), nn.MaxPool2d(2)]
    model = nn.Sequential(layers)
    model.backward(np.ones_like(model(x)))
    assert sorted(set(calls)) == names
    calls.clear()
    model.astype(np.float16)
    model(x.astype(np.float16))
    assert calls == []


def _unfused(layers, x, grad):  # type: ignore[no-untyped-def]
    """The layers called one after the other by hand (no Sequential: nothing fused), then their backward."""
    y = x
    for layer in layers:
        y = layer(y)
    g = grad
    for layer in reversed(layers):
        g = layer.backward(g)
    return y, g


@needs_jit
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: [nn.BatchNorm2d(5), nn.torch.ReLU()], (4, 5, 6, 7)),
        (lambda: [nn.BatchNorm2d(5, affine=False), nn.torch.LeakyReLU(0.2)], (4, 5, 6, 7)),
        (lambda: [nn.BatchNormalization(), nn.keras.LeakyReLU()], (4, 6, 7, 5)),  # channels last
        (lambda: [nn.BatchNormalization(center=False), nn.keras.ReLU()], (4, 6, 7, 5)),
        (lambda: [nn.BatchNorm1d(300), nn.torch.LeakyReLU(0.3)], (8, 300)),
        (lambda: [nn.BatchNorm1d(300), nn.torch.LeakyReLU(0.0)], (8, 300)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("grad_order", ["C", "F"])
def test_batch_norm_and_its_activation_in_one_pass_give_the_same_numbers(
    monkeypatch, team_size, make, shape, dtype, grad_order
):
    """In a Sequential, a batch normalization and the ReLU or LeakyReLU after it run forward as one pass (no pass
    of the activation's own), with the same bits as the two layers one after the other: the output, the input's
    gradient and the parameters' gradients (a gradient the compiled passes do not take, not C-contiguous, through
    NumPy's expressions). Edges of the slope's sign: a channel of scale 0 (outputs of +-0), one of a subnormal
    scale (a LeakyReLU's products underflow), one holding a NaN."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    channels_last = shape[-1] in (5,) and len(shape) == 4  # the Keras layers' cases
    np.moveaxis(x, -1 if channels_last else 1, 0)[2].reshape(-1)[3] = np.nan
    grad = np.asarray(rng.standard_normal(shape).astype(dtype), order=grad_order)
    nn.manual_seed(3)
    alone = make()
    nn.manual_seed(3)
    chained = make()
    model = nn.Sequential(*chained)
    model.astype(dtype)
    for layer in alone:
        layer.astype(dtype)
    for layer, twin in zip(alone, chained):
        for (_, p), (_, q) in zip(layer.named_parameters(), twin.named_parameters()):
            q.value = p.value.copy()
        if hasattr(layer, "weight") and layer.weight is not None:  # distinct scales and shifts
            scales = (rng.standard_normal(layer.weight.shape) + 1).astype(dtype)
            scales[:2] = 0, np.finfo(dtype).tiny / 8
            layer.weight.value, twin.weight.value = scales, scales.copy()
        if hasattr(layer, "bias") and layer.bias is not None:
            layer.bias.value = twin.bias.value = rng.standard_normal(layer.bias.shape).astype(dtype)
    expected_y, expected_dx = _unfused(alone, x, grad)
    activations: list[str] = []
    real = elementwise.activation
    monkeypatch.setattr(elementwise, "activation", lambda *a, **k: activations.append("forward") or real(*a, **k))
    y = model(x)
    assert activations == []  # the batch normalization's pass applied it
    assert _same(y, expected_y)
    dx = model.backward(grad)
    assert _same(dx, expected_dx)
    for (_, p), (_, q) in zip(alone[0].named_parameters(), chained[0].named_parameters()):
        assert (p.grad is None and q.grad is None) or _same(p.grad, q.grad)
    np.testing.assert_array_equal(alone[0].running_mean.value, chained[0].running_mean.value)
    np.testing.assert_array_equal(alone[0].running_var.value, chained[0].running_var.value)


@needs_jit
def test_batch_norm_and_its_activation_as_one_in_a_step_nested_and_with_a_mode(monkeypatch):
    """The pair as one inside a nested Sequential, as the first trainable layers of a step's backward
    (``input_grad=False``), and on a model in evaluation mode called with ``training=True``: the same numbers as
    the layers one after the other; the activation's own pass never runs."""
    rng = np.random.default_rng(15)
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    grad = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)

    def make():  # type: ignore[no-untyped-def]
        nn.manual_seed(5)
        return [nn.BatchNorm2d(3), nn.torch.LeakyReLU(0.1), nn.Conv2d(3, 3, 3, padding=1)]

    alone = make()
    y_alone, _ = _unfused(alone, x, grad)
    layers = make()
    model = nn.Sequential(nn.Sequential(layers[0], layers[1]), layers[2])
    model.eval()
    calls: list[str] = []
    real = elementwise.activation
    monkeypatch.setattr(elementwise, "activation", lambda *a, **k: calls.append("forward") or real(*a, **k))
    y = model(x, training=True)
    assert calls == [] and not model.training
    assert _same(y, y_alone)
    assert model.backward(grad, input_grad=False) is None
    for first, second in zip(alone, layers):
        pairs = zip(first.named_parameters(trainable_only=True), second.named_parameters(trainable_only=True))
        for (_, p), (_, q) in pairs:
            assert _same(p.grad, q.grad)


@needs_jit
def test_batch_norm_sums_make_the_forwards_x_hat_again_to_the_bit():
    """The sums from x (x_hat made again in the pass) equal, bit for bit, the same pass over the x_hat the forward
    would have kept (made with mean 0 and scale 1 there: the same values), channels last and first."""
    rng = np.random.default_rng(16)
    for shape, axis in ((64, 2500), 1), ((4, 6, 9, 11), 1):
        x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
        grad = rng.standard_normal(shape).astype(np.float32)
        channels = shape[axis]
        view = [-1 if a == axis else 1 for a in range(len(shape))]
        m, s = rng.standard_normal(channels).astype(np.float32), rng.random(channels).astype(np.float32) + 0.5
        x_hat = (x - m.reshape(view)) * s.reshape(view)
        zeros, ones = np.zeros(channels, np.float32), np.ones(channels, np.float32)
        made = elementwise.batch_norm_sums(grad, x, axis, m, s)
        kept = elementwise.batch_norm_sums(grad, x_hat, axis, zeros, ones)
        assert np.array_equal(made[0], kept[0]) and np.array_equal(made[1], kept[1])


@needs_jit
def test_batch_norm_and_activation_run_apart_where_they_cannot_be_one(monkeypatch):
    """In evaluation mode, after a layer between them, for an activation with no compiled pass (tanh) and for a
    LeakyReLU of negative slope below 0 (whose output's sign does not give its input's), the activation runs as its
    own layer."""
    x = np.random.default_rng(12).standard_normal((4, 5, 6, 6)).astype(np.float32)
    calls: list[str] = []
    real = elementwise.activation
    monkeypatch.setattr(elementwise, "activation", lambda *a, **k: calls.append("forward") or real(*a, **k))
    model = nn.Sequential(nn.BatchNorm2d(5), nn.torch.ReLU())
    model.eval()
    model(x)
    assert calls == ["forward"]
    calls.clear()
    model.train()
    nn.Sequential(nn.BatchNorm2d(5), nn.torch.Dropout(0.0), nn.torch.ReLU())(x)
    assert calls == ["forward"]
    for follower in (nn.torch.Tanh(), nn.torch.LeakyReLU(-0.5)):  # no pass; a slope whose sign hides the input's
        assert nn.BatchNorm2d(5).fused_activation(follower, x) is None

    class Clipped(nn.torch.ReLU):  # a subclass's own forward runs as written
        def forward(self, x):  # type: ignore[no-untyped-def]
            return np.minimum(super().forward(x), 1.0)

    assert nn.BatchNorm2d(5).fused_activation(Clipped(), x) is None
    assert nn.Sequential(nn.BatchNorm2d(5), Clipped())(x).max() <= 1.0


def _bits(a: np.ndarray) -> np.ndarray:
    """The array's bytes (NaN payloads and signed zeros included)."""
    return np.ascontiguousarray(a).view(np.uint8)


@needs_jit
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: nn.MaxPool2d(2), (3, 4, 8, 6)),
        (lambda: nn.MaxPool2d((2, 3), stride=(3, 3)), (2, 3, 9, 7)),  # windows apart, with gaps
        (lambda: nn.MaxPooling2D((2, 3), padding="same"), (2, 5, 5, 2)),  # Keras's: channels last, padded
        (lambda: MaxPool(3, rank=1), (2, 3, 10)),
        (lambda: MaxPool(3, rank=1, channels_last=True), (2, 10, 3)),
        (lambda: MaxPool(2, rank=3), (2, 3, 4, 6, 4)),
        (lambda: MaxPool(2, rank=3, channels_last=True), (2, 4, 6, 4, 3)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pooling_in_one_compiled_pass_gives_numpys_bits(monkeypatch, team_size, make, shape, dtype):
    """The compiled max pooling (windows apart) against the layer's NumPy expressions, byte for byte: the maxima
    with NaNs (the last NaN of a window, its first's index), ties of signed zeros (the first kept), and the
    gradient, holding -0.0, inf and NaN (a lost position stays +0.0)."""
    rng = np.random.default_rng(13)
    x = rng.integers(-3, 4, size=shape).astype(dtype)  # many ties
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, flat.size // 7, replace=False)] = -0.0
    flat[rng.choice(flat.size, 5, replace=False)] = np.nan
    # two NaNs of distinct payloads in the first window (its maximum: the last one; its index: the first's)
    payloads = np.array([0x7FC00001, 0xFFC00002], np.uint32).view(np.float32).astype(dtype)
    flat[:2] = payloads
    layer, reference = make(), make()
    monkeypatch.setattr(reference, "_one_pass", lambda a: False)  # this layer only: NumPy's expressions
    y = layer(x)
    expected = reference(x)
    assert np.array_equal(_bits(y), _bits(expected))
    assert np.array_equal(layer._cache[0], reference._cache[0])  # the winners' indices
    grad = rng.standard_normal(y.shape).astype(dtype)
    grad.reshape(-1)[:4] = [-0.0, np.inf, -np.inf, np.nan]
    assert np.array_equal(_bits(layer.backward(grad)), _bits(reference.backward(grad)))


@needs_jit
def test_overlapping_max_pooling_keeps_numpys_expressions(monkeypatch):
    """Windows that share inputs (3x3 every 2) go through NumPy's expressions, tap by tap, not the one pass."""
    calls: list[str] = []
    real = compiled_pooling.max_pool
    monkeypatch.setattr(compiled_pooling, "max_pool", lambda *a: calls.append("pass") or real(*a))
    x = np.random.default_rng(14).standard_normal((2, 3, 7, 7)).astype(np.float32)
    nn.MaxPool2d(3, stride=2, padding=1)(x)
    assert calls == []
    nn.MaxPool2d(2)(x)
    assert calls == ["pass"]


@needs_jit
def test_each_pass_kernel_gets_its_own_team_measurement(monkeypatch):
    """Two passes of the same jobs and work (a batch normalization's sums and its normalize, 2 elements touched an
    element each) are measured by the team under keys of their own, not one decision for both."""
    keys: list[tuple] = []
    monkeypatch.setattr(team, "_measured", lambda key, alone, on_team, estimated: (keys.append(key), alone()))
    monkeypatch.setattr(team, "threads", lambda: 2)
    monkeypatch.setattr(team, "member", lambda: False)
    monkeypatch.setattr(team, "kernel_team_min_work", lambda: 1.0)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_MIN_WORK", 0)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_PROBE_FROM", 0.0)
    monkeypatch.setattr(_tuning, "KERNEL_TEAM_TRUST", 1e30)
    x = np.random.default_rng(18).standard_normal((16, 8, 20, 20)).astype(np.float32)
    c = np.ones(8, np.float32)
    elementwise.batch_norm_sums(x, x, 1, c, c)
    elementwise.normalize(x, 1, c, c, c, c)
    assert len(keys) == 2 and keys[0][2:] == keys[1][2:]  # the same jobs, work and team
    assert keys[0] != keys[1]
