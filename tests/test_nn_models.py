"""tconv.nn containers, training, summaries and weights, and the seeds' models.

Expected numbers come from the seeds (2,330,944 parameters for seed 000's
generator as Keras counts them; seed 002's block counts), not from tconv.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tconv import models, nn
from tconv.nn.layers.pooling import MaxPool
from tconv.tools.cli import main


def test_generator_shapes_and_count():
    model = models.dcgan_generator()
    assert model.count_params() == 2330944  # Keras's count (seed 000's model)
    # trainable: everything but the batch norms' moving mean and variance, 2 * (12544 + 128 + 64)
    assert model.count_params(trainable_only=True) == 2330944 - 2 * (12544 + 128 + 64)
    shapes = [layer.output_shape for layer in model]
    assert shapes[3] == (None, 7, 7, 256)
    assert shapes[4] == (None, 7, 7, 128)
    assert shapes[7] == (None, 14, 14, 64)
    assert shapes[10] == (None, 28, 28, 1)
    out = model.predict(np.random.default_rng(0).standard_normal((5, 100)))
    assert out.shape == (5, 28, 28, 1) and np.abs(out).max() <= 1


def test_generator_summary_table():
    text = str(models.dcgan_generator().summary())
    assert "Total params: 2,330,944" in text
    assert "Conv2DTranspose" in text and "(None, 14, 14, 64)" in text
    assert "Non-trainable params: 25,472" in text


@pytest.mark.parametrize(
    "build, shape, expected",
    [
        (lambda: models.naive_inception_block(192, 64, 128, 32, bias=False), (None, 192, 8, 8), 387072),
        (lambda: models.inception_block(192, 64, (96, 128), (16, 32), 32, bias=False), (None, 192, 8, 8), 163328),
        (lambda: models.plain_residual_block(256, batch_norm=False), (None, 256, 4, 4), 1179648),
        (lambda: models.bottleneck_block(256, 64, batch_norm=False), (None, 256, 4, 4), 69632),
    ],
)
def test_seed_002_block_counts(build, shape, expected):
    block = build()
    summary = block.summary(shape)
    assert summary.total == expected
    assert f"Total params: {expected:,}" in str(summary)


def test_inception_output_channels_and_bottleneck_projection():
    block = models.inception_block(16, 4, (4, 8), (2, 3), 5)
    assert block(np.zeros((2, 16, 6, 6))).shape == (2, 4 + 8 + 3 + 5, 6, 6)
    projected = models.bottleneck_block(8, 4, stride=2, shortcut=False)
    assert projected(np.zeros((1, 8, 6, 6))).shape == (1, 16, 3, 3)
    with pytest.raises(ValueError, match="shortcut"):
        models.bottleneck_block(8, 4, stride=2)(np.zeros((1, 8, 6, 6)))


def test_bottleneck_matches_torch_with_the_same_weights():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class ConvBN(tnn.Module):
        def __init__(self, c_in, c_out, k, stride=1, relu=True):
            super().__init__()
            self.layers = tnn.Sequential(
                tnn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, bias=False), tnn.BatchNorm2d(c_out)
            )
            self.relu = relu

        def forward(self, x):
            y = self.layers(x)
            return torch.relu(y) if self.relu else y

    torch.manual_seed(0)
    body = tnn.Sequential(ConvBN(8, 4, 1), ConvBN(4, 4, 3, 2), ConvBN(4, 16, 1, relu=False))
    short = ConvBN(8, 16, 1, 2, relu=False)
    block = models.bottleneck_block(8, 4, stride=2, shortcut=False)
    state = {f"body.{k.replace('layers.', '')}": v for k, v in body.state_dict().items()}
    state.update({f"shortcut.{k.replace('layers.', '')}": v for k, v in short.state_dict().items()})
    block.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((2, 8, 6, 6)).astype(np.float32)
    expected = torch.relu(body(torch.tensor(x)) + short(torch.tensor(x))).detach().numpy()
    np.testing.assert_allclose(block(x), expected, rtol=1e-4, atol=1e-5)


def test_fit_decreases_the_loss_and_history():
    nn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 4, 4)).astype(np.float32)
    teacher = nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1)
    y = teacher(x)
    model = nn.Sequential([nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1)])
    model.compile(optimizer=nn.Adam(lr=0.01), loss="mse")
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0, validation_data=(x[:8], y[:8]))
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert len(history["val_loss"]) == 8
    assert model.evaluate(x, y) < history["loss"][0]


def test_manual_training_loop_with_regularizers_and_constraints():
    nn.manual_seed(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((32, 12, 12, 3)).astype(np.float32)
    layer = nn.Conv2DTranspose(
        3,
        3,
        strides=2,
        padding="same",
        kernel_regularizer="l2",
        kernel_constraint=nn.constraints.max_norm(0.5, axis=[0, 1, 3]),
    )
    loss = nn.MSELoss()
    first = None
    optimizer = None
    for _ in range(20):
        value = loss(layer(x), y) + layer.regularization_loss()
        first = value if first is None else first
        optimizer = optimizer or nn.SGD(layer.parameters(), lr=0.5, momentum=0.5)
        layer.zero_grad()
        layer.backward(loss.backward())
        optimizer.step()
    assert value < first
    kernel = layer.get_weights()[0]  # Keras layout (k, k, filters, in): one norm per output filter
    norms = np.sqrt((kernel**2).sum(axis=(0, 1, 3)))
    assert norms.max() <= 0.5 + 1e-6


def test_weights_round_trip(tmp_path):
    nn.manual_seed(2)
    model = models.dcgan_generator(width=4)
    z = np.random.default_rng(0).standard_normal((2, 100)).astype(np.float32)
    model.train()
    model(z)  # moves the batch-norm statistics
    model.eval()
    expected = model(z)
    model.save(tmp_path / "generator.npz")
    copy = models.dcgan_generator(width=4)
    copy.load(tmp_path / "generator.npz")
    np.testing.assert_array_equal(copy.eval()(z), expected)
    keras_copy = models.dcgan_generator(width=4)
    keras_copy.set_weights(model.get_weights())
    np.testing.assert_array_equal(keras_copy.eval()(z), expected)
    with pytest.raises(ValueError, match="shape"):
        models.dcgan_generator(width=2).load(tmp_path / "generator.npz")


def test_lazy_layers_need_an_input_before_their_weights():
    layer = nn.Conv2DTranspose(4, 3)
    with pytest.raises(ValueError, match="first call"):
        layer.count_params()
    layer(np.zeros((1, 5, 5, 7)))
    assert layer.get_weights()[0].shape == (3, 3, 4, 7)


def test_bilinear_initializer_reproduces_bilinear_upsampling():
    layer = nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1, bias=False)
    layer.initialize("bilinear")
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float32)
    learned, fixed = layer(x), nn.Upsample(scale_factor=2, mode="bilinear")(x)
    np.testing.assert_allclose(learned[..., 1:-1, 1:-1], fixed[..., 1:-1, 1:-1], rtol=1e-5, atol=1e-6)


def test_upsampling_demo_learned_beats_bilinear():
    pytest.importorskip("sklearn")
    result = models.compare_upsampling(epochs=6, verbose=False)
    assert result.psnr["learned"] > result.psnr["bilinear"]
    assert result.history[-1] < result.history[0]


def test_unet_learns_the_shapes():
    # a short run (about 8 s; `tconv demo unet` trains longer for the README's IoU)
    result = models.train_unet(epochs=4, count=300, size=32, width=8, batch_size=8, verbose=False)
    assert result.history[-1] < 0.5 * result.history[0]
    foreground = result.masks > 0.5
    assert result.logits[foreground].mean() > result.logits[~foreground].mean() + 2
    assert result.iou > result.baseline_iou + 0.2


def test_dcgan_training_steps(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    result = models.train_dcgan(epochs=1, batch_size=32, width=8, limit=128, verbose=False, out=tmp_path)
    assert len(result.generator_loss) == 1 and np.isfinite(result.generator_loss[0])
    assert {p.rsplit("/", 1)[-1] for p in result.files} == {"dcgan_digits.png", "dcgan_losses.png"}


def test_demo_command_blocks(capsys):
    assert main(["demo", "blocks", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["blocks"]["ok"] and report["blocks"]["counts"]["bottleneck 256 -> 64 -> 64 -> 256"] == 69632
    assert main(["demo", "bogus"]) == 2


def test_layer_argument_errors():
    cases = [
        (lambda: nn.ConvTranspose2d(4, 6, 3, groups=4), "divisible by groups"),
        (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=2), "output_padding"),
        (lambda: nn.ConvTranspose2d(4, 6, 3, padding_mode="reflect"), "padding_mode"),
        (lambda: nn.Conv2d(4, 6, 3, padding="full"), "padding"),
        (lambda: nn.Conv2DTranspose(0, 3), "filters"),
        (lambda: nn.Conv2DTranspose(2, 3, padding="causal"), "padding"),
        (lambda: nn.Conv2DTranspose(2, 3, strides=2, output_padding=2)(np.zeros((1, 3, 3, 1))), "output padding"),
        (lambda: nn.Dense(3, activation="swishy"), "activation"),
        (lambda: nn.torch.Dropout(1.5), "dropout"),
        (lambda: nn.BatchNorm2d(3)(np.zeros((2, 3, 4))), "axes"),
        (lambda: nn.Linear(3, 2)(np.zeros((2, 4))), "features"),
        (lambda: nn.Reshape((5,))(np.zeros((2, 6))), "target_shape"),
        (lambda: nn.MaxPool2d(2, padding=2), "half the kernel"),
        (lambda: nn.SGD([], lr=-1), "lr"),
        (lambda: nn.initializers.get("uniformish"), "initializer"),
        (lambda: nn.regularizers.get("l3"), "regularizer"),
        (lambda: nn.MSELoss()(np.zeros(3), np.zeros(4)), "same shape"),
        (lambda: nn.Sequential([nn.ReLU()]).fit(np.zeros((2, 2)), np.zeros((2, 2))), "compile"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential([lambda x: x])
    with pytest.raises(TypeError, match="numeric"):
        nn.ReLU()(np.array(["a"]))


def _naive_max_pool(x, kernel, stride, pads):
    """Max pooling of channels-first x by loops: each window's maximum and the index of its first maximum in
    row-major window order (NaN counts as the maximum, padding as -inf), the reference for nn.MaxPool."""
    padded = np.pad(x, [(0, 0), (0, 0), *pads], constant_values=-np.inf)
    out_shape = [(n - k) // s + 1 for n, k, s in zip(padded.shape[2:], kernel, stride)]
    y = np.empty((*x.shape[:2], *out_shape))
    winner = {}
    for n, c, *o in np.ndindex(*y.shape):
        best, where = None, None
        for t in np.ndindex(*kernel):
            at = tuple(oi * s + ti for oi, s, ti in zip(o, stride, t))
            v = padded[(n, c, *at)]
            if best is None or (not np.isnan(best) and (np.isnan(v) or v > best)):
                best, where = v, at
        y[(n, c, *o)] = best
        winner[(n, c, *o)] = where
    return y, winner, padded.shape


@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_against_loops(channels_last):
    """nn.MaxPool against loops over every window, forward and backward: 1-D to 3-D, windows apart, touching
    and overlapping, windows of more than 256 entries, padding, ties (values drawn from a few integers), NaN and
    -inf; the gradient of each window goes to its first maximum and overlapping windows add theirs."""
    rng = np.random.default_rng(51)
    for rank, kernel, stride, padding, shape in (
        (2, (2, 2), (2, 2), 0, (2, 3, 8, 6)),
        (2, (3, 3), (2, 2), 1, (2, 2, 7, 6)),
        (2, (3, 2), (1, 1), 0, (1, 2, 5, 5)),
        (1, (4,), (3,), 2, (2, 3, 11)),
        (3, (2, 2, 2), (2, 1, 2), 1, (1, 2, 4, 3, 5)),
        (2, (17, 16), (1, 1), 0, (1, 2, 18, 17)),  # 272 offsets: the index needs more than a byte
    ):
        x = rng.integers(-2, 3, size=shape).astype(np.float64)  # many ties
        x.flat[3] = np.nan
        x.flat[10] = -np.inf
        layer = MaxPool(kernel, stride, padding, rank=rank, channels_last=channels_last)
        xin = np.moveaxis(x, 1, -1) if channels_last else x
        y = layer(xin)
        gy = rng.standard_normal(y.shape)
        gx = layer.backward(gy)
        if channels_last:
            y, gy, gx = np.moveaxis(y, -1, 1), np.moveaxis(gy, -1, 1), np.moveaxis(gx, -1, 1)
        pads = [(padding, padding)] * rank
        expected, winner, padded_shape = _naive_max_pool(x, kernel, stride, pads)
        np.testing.assert_array_equal(y, expected)
        full = np.zeros(padded_shape)
        for index, at in winner.items():
            full[(*index[:2], *at)] += gy[index]
        crop = (slice(None), slice(None), *(slice(padding, padding + n) for n in x.shape[2:]))
        np.testing.assert_allclose(gx, full[crop], rtol=1e-6, atol=1e-6)  # the layers compute in float32


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (2, 3, 0)])
def test_max_pool_gradient_reaches_only_the_winners(kernel, stride, padding):
    """The backward pass gives each window's gradient to its first maximum only, to the bit: an inf or NaN in
    the incoming gradient stays in its winner (the others keep exact zeros), and positions no window won get
    +0.0, not the -0.0 of a negative gradient times zero; windows apart, overlapping and with gaps between them."""
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, size=(2, 2, 7, 8)).astype(np.float32)
    layer = MaxPool(kernel, stride, padding)
    y = layer(x)
    expected_shape = _naive_max_pool(x, (kernel, kernel), (stride, stride), [(padding, padding)] * 2)
    _, winner, padded_shape = expected_shape
    for special in (None, np.inf, np.nan):
        gy = -rng.random(y.shape).astype(np.float32) - 0.5  # all negative
        if special is not None:
            gy[0, 1, 1, 1] = special
        gx = layer.backward(gy)
        full = np.zeros(padded_shape, dtype=np.float32)
        for index, at in winner.items():
            full[(*index[:2], *at)] += gy[index]
        crop = (slice(None), slice(None), *(slice(padding, padding + n) for n in x.shape[2:]))
        np.testing.assert_allclose(gx, full[crop], rtol=1e-6)  # NaN where the loops have NaN, and only there
        lost = full[crop] == 0
        assert not np.signbit(gx[lost]).any()


def test_max_pool_keeps_the_winner_itself_and_pools_integers():
    """The maximum is the first winner's own value (the sign of a zero maximum included: -0.0 first stays -0.0),
    and integer inputs pool with their padding never winning, as their float copies do."""
    x = np.array([[[[-0.0, 0.0], [0.0, -0.0]]], [[[0.0, -0.0], [-0.0, -0.0]]]])
    y = MaxPool(2)(x)
    assert np.signbit(y[0, 0, 0, 0]) and not np.signbit(y[1, 0, 0, 0])
    xi = np.arange(-40, -15, dtype=np.int32).reshape(1, 1, 5, 5)  # all below zero: a zero padding would win
    layer = MaxPool(3, 2, 1)
    np.testing.assert_array_equal(layer(xi), MaxPool(3, 2, 1)(xi.astype(np.float64)))
    assert layer(xi).max() < 0


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_dropout_keeps_each_entry_with_probability_one_minus_rate(rate):
    """Inverted dropout in training: each entry kept with probability 1 - rate (within five standard deviations of
    the binomial count over a million entries) and scaled by 1 / (1 - rate), the rest zero; the gradient through
    the same mask; the same draws after the same seed; the identity in evaluation, zeros at rate 1."""
    from tconv.nn.module import manual_seed

    layer = nn.torch.Dropout(rate)
    layer.train()
    x = np.ones((1000, 1000), dtype=np.float32)
    y = layer(x)
    kept = np.count_nonzero(y)
    assert abs(kept - x.size * (1 - rate)) < 5 * np.sqrt(x.size * rate * (1 - rate))
    np.testing.assert_allclose(y[y != 0], np.float32(1 / (1 - rate)))
    gy = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(gy), np.where(y != 0, gy / (1 - rate), 0), rtol=1e-6)
    manual_seed(5)
    first = layer(x)
    manual_seed(5)
    assert np.array_equal(layer(x), first)
    layer.eval()
    assert layer(x) is x
    almost = nn.torch.Dropout(1 - 1e-6)  # a scale past float16's range: dropped entries stay zero, never NaN
    almost.train()
    assert not np.isnan(almost.forward(x.astype(np.float16))).any()
    everything = nn.torch.Dropout(1.0)
    everything.train()
    assert not everything(x).any() and not everything.backward(gy).any()
