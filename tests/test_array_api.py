"""Array type in equals array type out: the same body over several array libraries."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest

import tconv
from oracle import naive_conv, naive_conv_transpose


def _backends():
    params = [pytest.param("numpy", id="numpy")]
    for name in ("array_api_strict", "torch", "jax.numpy", "cupy"):
        params.append(pytest.param(name, id=name.split(".")[0]))
    return params


@pytest.fixture(params=_backends())
def xp(request):
    if request.param == "jax.numpy":
        request.getfixturevalue("jax_x64")
    module = pytest.importorskip(request.param)
    return array_api_compat.array_namespace(module.asarray([1.0]))


def _to_numpy(a):
    if array_api_compat.is_torch_array(a):
        return a.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def _library(a):
    return type(a).__module__.split(".")[0]


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_same_library_dtype_and_values(xp, transposed, dtype_name):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((2, 4, 5, 6))
    w_np = rng.standard_normal((4, 3, 3, 2))
    b_np = rng.standard_normal(3 if transposed else 4)
    if not transposed:
        w_np = rng.standard_normal((4, 2, 3, 2))  # groups=2: (C_out, C_in/2, *k)
    dtype = getattr(xp, dtype_name)
    x, w, b = (xp.asarray(a, dtype=dtype) for a in (x_np, w_np, b_np))
    if transposed:
        out = tconv.conv_transpose(x, w, b, stride=2, padding=[(0, 1), (1, 0)], output_padding=1)
        expected = naive_conv_transpose(x_np, w_np, b_np, stride=[2, 2], pads=[(0, 1), (1, 0)], output_padding=[1, 1])
    else:
        out = tconv.conv(x, w, b, stride=(1, 2), padding="same", groups=2)
        expected = naive_conv(x_np, w_np, b_np, stride=[1, 2], pads=[(1, 1), (0, 1)], groups=2)
    assert _library(out) == _library(x)
    assert array_api_compat.array_namespace(out) is xp
    assert out.dtype == dtype
    assert array_api_compat.device(out) == array_api_compat.device(x)
    tol = 1e-4 if dtype_name == "float32" else 1e-10
    np.testing.assert_allclose(_to_numpy(out), expected, rtol=tol, atol=tol)
    # Inputs are never modified.
    np.testing.assert_allclose(_to_numpy(x), x_np, rtol=tol)


def test_channels_last_unbatched_3d(xp):
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((3, 4, 3, 2))  # (*spatial, C), unbatched
    w_np = rng.standard_normal((2, 2, 2, 2, 2))
    x = xp.asarray(x_np, dtype=xp.float64)
    w = xp.asarray(w_np, dtype=xp.float64)
    out = tconv.conv_transpose(x, w, stride=2, channels_last=True)
    assert tuple(out.shape) == (6, 8, 6, 2)
    expected = naive_conv_transpose(np.moveaxis(x_np, -1, 0)[None], w_np, stride=[2, 2, 2])[0]
    np.testing.assert_allclose(_to_numpy(out), np.moveaxis(expected, 0, -1), atol=1e-10)


def test_float16_keeps_dtype(xp):
    if not hasattr(xp, "float16"):
        pytest.skip("float16 is not part of the array API standard and this library lacks it")
    x = xp.asarray(np.ones((1, 2, 4)), dtype=xp.float16)
    w = xp.asarray(np.ones((2, 1, 3)), dtype=xp.float16)
    out = tconv.conv_transpose(x, w, stride=2)
    assert out.dtype == xp.float16
    np.testing.assert_array_equal(_to_numpy(out).astype(np.float64), [[[2, 2, 4, 2, 4, 2, 4, 2, 2]]])


def test_python_sequences_become_numpy():
    out = tconv.conv_transpose([[[1.0, 2.0, 3.0]]], [[[1.0, 10.0, 100.0]]], stride=2, padding="same")
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [[[1, 10, 102, 20, 203, 30]]])


def test_torch_tensors_keep_autograd():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    out = tconv.conv_transpose(x, w, stride=2, padding=1)
    assert isinstance(out, torch.Tensor) and out.requires_grad
    out.sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    w2 = w.detach().clone().requires_grad_(True)
    torch.nn.functional.conv_transpose2d(x2, w2, stride=2, padding=1).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv_grad", "conv_transpose_grad"])
def test_grads_in_every_library(xp, transposed):
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((2, 5, 6, 4))  # channels last
    if transposed:
        w_np = rng.standard_normal((4, 3, 3, 2))
        options = dict(stride=2, padding=[(1, 0), (0, 1)], output_padding=(1, 0), channels_last=True)
        forward, grad = tconv.conv_transpose, tconv.conv_transpose_grad
    else:
        w_np = rng.standard_normal((6, 2, 3, 2))
        options = dict(stride=(2, 1), padding="same", groups=2, channels_last=True)
        forward, grad = tconv.conv, tconv.conv_grad
    gy_np = rng.standard_normal(forward(x_np, w_np, **options).shape)
    expected = grad(gy_np, x_np, w_np, **options)
    x, w, gy = (xp.asarray(a, dtype=xp.float64) for a in (x_np, w_np, gy_np))
    got = grad(gy, x, w, **options)
    for mine, reference in zip(got, expected):
        assert _library(mine) == _library(x)
        assert mine.dtype == xp.float64
        np.testing.assert_allclose(_to_numpy(mine), reference, atol=1e-10)


def test_a_numpy_call_does_not_wait_for_the_array_api_wrapper_of_numpy():
    """Importing ``array_api_compat.numpy`` walks all of NumPy's names (about 0.08 s in a new process); the
    compiled path asks the namespace for nothing, so a NumPy call leaves it unimported. The namespace a NumPy
    call gets still counts as NumPy's, and hands out the wrapper's functions when asked."""
    import subprocess
    import sys

    from tconv.implementations.compiled import kernels

    if not kernels.available():
        pytest.skip("the array-API path (numba missing or TCONV_NO_JIT=1) computes with the wrapper")
    probe = (
        "import sys, numpy as np, tconv\n"
        "x = np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5); w = np.ones((3, 4, 3, 3), np.float32)\n"
        "y = tconv.conv_transpose(x, w, stride=2, padding=1)\n"
        "print(y.shape, 'array_api_compat.numpy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["(2,", "4,", "9,", "9)", "False"]

    from tconv._backend import prepare

    x = np.ones((1, 2, 3, 3), np.float32)
    xp = prepare(x, np.ones((2, 2, 3, 3), np.float32), None).xp
    assert array_api_compat.is_numpy_namespace(xp)
    import array_api_compat.numpy as wrapper

    assert xp.sum is wrapper.sum and xp.astype is wrapper.astype
    with pytest.raises(AttributeError):
        xp.no_such_function  # noqa: B018
