"""The PyTorch and TensorFlow DCGAN tutorials' model code, run unchanged against tconv.nn apart from the import lines.

Each tutorial's code is one source text, executed twice: with the framework's own import lines and with
tconv's, and the two models, given the same weights, must compute the same outputs. The tconv import lines
are the ones a user writes:

* PyTorch: ``import torch.nn as nn`` -> ``import tconv.nn.torch as nn``
* TensorFlow: ``import tensorflow as tf`` / ``from tensorflow.keras import layers`` ->
  ``import tconv.nn as tf`` / ``from tconv.nn.keras import layers``
"""

from __future__ import annotations

import numpy as np
import pytest

# The PyTorch DCGAN tutorial (pytorch.org/tutorials/beginner/dcgan_faces_tutorial.html), as written there.
PYTORCH_DCGAN = """
nc = 3
nz = 100
ngf = 64
ndf = 64
ngpu = 1

def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)

class Generator(nn.Module):
    def __init__(self, ngpu):
        super(Generator, self).__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d( nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            # state size. ``(ngf*8) x 4 x 4``
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # state size. ``(ngf*4) x 8 x 8``
            nn.ConvTranspose2d( ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. ``(ngf*2) x 16 x 16``
            nn.ConvTranspose2d( ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # state size. ``(ngf) x 32 x 32``
            nn.ConvTranspose2d( ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh()
            # state size. ``(nc) x 64 x 64``
        )

    def forward(self, input):
        return self.main(input)

netG = Generator(ngpu)
netG.apply(weights_init)
print(netG)

class Discriminator(nn.Module):
    def __init__(self, ngpu):
        super(Discriminator, self).__init__()
        self.ngpu = ngpu
        self.main = nn.Sequential(
            # input is ``(nc) x 64 x 64``
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. ``(ndf) x 32 x 32``
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. ``(ndf*2) x 16 x 16``
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. ``(ndf*4) x 8 x 8``
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. ``(ndf*8) x 4 x 4``
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid()
        )

    def forward(self, input):
        return self.main(input)

netD = Discriminator(ngpu)
netD.apply(weights_init)
print(netD)
"""

# The TensorFlow DCGAN tutorial (tensorflow.org/tutorials/generative/dcgan), as written there.
TENSORFLOW_DCGAN = """
def make_generator_model():
    model = tf.keras.Sequential()
    model.add(layers.Dense(7*7*256, use_bias=False, input_shape=(100,)))
    model.add(layers.BatchNormalization())
    model.add(layers.LeakyReLU())

    model.add(layers.Reshape((7, 7, 256)))
    assert model.output_shape == (None, 7, 7, 256)  # Note: None is the batch size

    model.add(layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding='same', use_bias=False))
    assert model.output_shape == (None, 7, 7, 128)
    model.add(layers.BatchNormalization())
    model.add(layers.LeakyReLU())

    model.add(layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding='same', use_bias=False))
    assert model.output_shape == (None, 14, 14, 64)
    model.add(layers.BatchNormalization())
    model.add(layers.LeakyReLU())

    model.add(layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding='same', use_bias=False, activation='tanh'))
    assert model.output_shape == (None, 28, 28, 1)

    return model

generator = make_generator_model()

generated_image = generator(noise, training=False)

def make_discriminator_model():
    model = tf.keras.Sequential()
    model.add(layers.Conv2D(64, (5, 5), strides=(2, 2), padding='same',
                                     input_shape=[28, 28, 1]))
    model.add(layers.LeakyReLU())
    model.add(layers.Dropout(0.3))

    model.add(layers.Conv2D(128, (5, 5), strides=(2, 2), padding='same'))
    model.add(layers.LeakyReLU())
    model.add(layers.Dropout(0.3))

    model.add(layers.Flatten())
    model.add(layers.Dense(1))

    return model

discriminator = make_discriminator_model()
decision = discriminator(generated_image)
"""


def _run(imports: str, code: str, **names) -> dict:
    namespace = dict(names)
    exec(imports + code, namespace)  # the tutorials' own code
    return namespace


def _numpy(a) -> np.ndarray:
    return np.asarray(a.detach().numpy() if hasattr(a, "detach") else a)


# -- PyTorch -------------------------------------------------------------------------------------------
def test_pytorch_dcgan_tutorial_runs_against_tconv_and_matches_torch(capsys):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ours = _run("import tconv.nn.torch as nn\n", PYTORCH_DCGAN)
    theirs = _run("import torch.nn as nn\n", PYTORCH_DCGAN)
    printed = capsys.readouterr().out
    assert "ConvTranspose2d" in printed and "Sigmoid" in printed
    netG, netD, refG, refD = ours["netG"], ours["netD"], theirs["netG"], theirs["netD"]
    # weights_init ran: N(0, 0.02) kernels, N(1, 0.02) scales, zero shifts
    assert abs(float(netG.main[0].weight.data.std()) - 0.02) < 0.002
    assert float(np.abs(netG.main[1].bias.data).max()) == 0.0
    # parameters counted as PyTorch counts them (running statistics are buffers)
    assert netG.count_params() == sum(p.numel() for p in refG.parameters()) == 3576704
    assert netD.count_params() == sum(p.numel() for p in refD.parameters())
    netG.load_state_dict(refG.state_dict())
    netD.load_state_dict(refD.state_dict())
    noise = torch.randn(4, 100, 1, 1)
    for train in (True, False):
        refG.train(train), refD.train(train), netG.train(train), netD.train(train)
        with torch.no_grad():
            fake_ref = refG(noise)
            decision_ref = refD(fake_ref)
        fake = netG(noise.numpy())
        assert fake.shape == (4, 3, 64, 64)
        np.testing.assert_allclose(fake, _numpy(fake_ref), rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(netD(fake_ref.numpy()), _numpy(decision_ref), rtol=1e-4, atol=2e-5)
    # the running statistics were updated as PyTorch updates them
    np.testing.assert_allclose(netG.main[1].running_var.value, refG.main[1].running_var.numpy(), rtol=1e-4)


def test_pytorch_dcgan_backward_through_a_user_module():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    ours = _run("import tconv.nn.torch as nn\n", PYTORCH_DCGAN.replace("print(net", "(net"))
    theirs = _run("import torch.nn as nn\n", PYTORCH_DCGAN.replace("print(net", "(net"))
    netD, refD = ours["netD"], theirs["netD"]
    netD.load_state_dict(refD.state_dict())
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    refD(x).sum().backward()
    netD(x.detach().numpy())
    grad = netD.backward(np.ones((2, 1, 1, 1), dtype=np.float32))
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-3, atol=1e-6)


# -- TensorFlow ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tf():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the Keras comparison runs on the TensorFlow backend")
    return tf


def test_tensorflow_dcgan_tutorial_runs_against_tconv_and_matches_keras(tf):
    from tconv import nn

    tf.keras.utils.set_random_seed(0)
    tf.keras.backend.clear_session()  # Keras's names start over: dense, conv2d_transpose, ...
    noise = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32)
    theirs = _run("import tensorflow as tf\nfrom tensorflow.keras import layers\n", TENSORFLOW_DCGAN, noise=noise)
    nn.keras.clear_session()
    ours = _run("import tconv.nn as tf\nfrom tconv.nn.keras import layers\n", TENSORFLOW_DCGAN, noise=noise)
    generator, discriminator = ours["generator"], ours["discriminator"]
    reference_g, reference_d = theirs["generator"], theirs["discriminator"]
    assert generator.count_params() == reference_g.count_params() == 2330944
    assert discriminator.count_params() == reference_d.count_params()
    generator.set_weights(reference_g.get_weights())
    discriminator.set_weights(reference_d.get_weights())
    image = generator(noise, training=False)
    expected = reference_g(noise, training=False).numpy()
    assert image.shape == (3, 28, 28, 1)
    np.testing.assert_allclose(image, expected, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(generator(noise, training=True), reference_g(noise, training=True).numpy(), atol=1e-4)
    np.testing.assert_allclose(
        discriminator(expected, training=False), reference_d(expected, training=False).numpy(), rtol=1e-4, atol=2e-5
    )
    # Keras's layer names in the summary
    text = str(generator.summary(print_fn=None))
    names = [layer.name for layer in reference_g.layers]
    assert names[0] == "dense" and "conv2d_transpose_1" in names
    for name, layer in zip(names, reference_g.layers):
        assert f"{name} ({type(layer).__name__})" in text
