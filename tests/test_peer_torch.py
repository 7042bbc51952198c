"""PyTorch's own convolution cases, read from the installed wheel's ``torch.testing._internal``: every OpInfo
sample of ``nn.functional.conv{1,2,3}d`` and ``conv_transpose{1,2,3}d`` (forward, and the gradients autograd
gives), every OpInfo error input (tconv must refuse wherever PyTorch does), and every ``module_db`` case of the
``torch.nn`` convolution layers, run through :mod:`tconv.compat.torch` and the PyTorch-flavoured ``tconv.nn``.

Skipped where PyTorch (or ``expecttest``, which ``torch.testing._internal`` imports) is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import tconv
from tconv import nn as tnn
from tconv.compat import torch as ctorch

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")

NAMES = [f"conv{d}d" for d in (1, 2, 3)] + [f"conv_transpose{d}d" for d in (1, 2, 3)]


def _ops():
    from torch.testing._internal.common_methods_invocations import op_db

    return {op.name.rsplit(".", 1)[-1]: op for op in op_db if op.name.rsplit(".", 1)[-1] in NAMES}


def _numpy(value):
    return value.detach().numpy() if isinstance(value, torch.Tensor) else value


@pytest.mark.parametrize("name", NAMES)
def test_opinfo_samples_forward_and_gradients(name):
    """Each sample's output, and the gradients of ``sum(output * g)`` for a random ``g``, equal PyTorch's."""
    op = _ops()[name]
    rng = np.random.default_rng(0)
    mine = getattr(ctorch, name)
    transposed = "transpose" in name
    samples = list(op.sample_inputs("cpu", torch.float64, requires_grad=True))
    assert samples
    for sample in samples:
        x, weight, *rest = (sample.input, *sample.args)
        bias = rest[0] if rest else sample.kwargs.get("bias")
        kwargs = {k: v for k, v in sample.kwargs.items() if k != "bias"}
        expected = op.op(x, weight, bias, **kwargs)
        got = mine(_numpy(x), _numpy(weight), None if bias is None else _numpy(bias), **kwargs)
        assert got.shape == tuple(expected.shape), (name, sample)
        np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-10, atol=1e-10, err_msg=str(sample))
        # Gradients: through tconv's gradient functions, the options read by the PyTorch front end.
        g = torch.from_numpy(rng.standard_normal(tuple(expected.shape)))
        inputs = [t for t in (x, weight, bias) if t is not None]
        expected_grads = torch.autograd.grad(expected, inputs, g)
        spatial = tuple(int(n) for n in x.shape[-(weight.ndim - 2) :])
        core = ctorch.FRAMEWORK.read(transposed, spatial, tuple(weight.shape[2:]), kwargs)
        gradient = tconv.conv_transpose_grad if transposed else tconv.conv_grad
        grads = gradient(g.numpy(), _numpy(x), _numpy(weight), **core)
        for got_grad, want in zip(grads, expected_grads):
            np.testing.assert_allclose(got_grad, want.numpy(), rtol=1e-9, atol=1e-9, err_msg=str(sample))


def _error_inputs():
    cases = []
    for name, op in _ops().items():
        if op.error_inputs_func is None:
            continue
        for i, error in enumerate(op.error_inputs("cpu")):
            cases.append(pytest.param(name, error, id=f"{name}-{i}"))
    return cases


@pytest.mark.parametrize("name, error", _error_inputs())
def test_opinfo_error_inputs_are_refused(name, error):
    """Wherever PyTorch raises, tconv raises (a ``ValueError`` or ``TypeError``, with its own message)."""
    op = _ops()[name]
    sample = error.sample_input
    with pytest.raises(error.error_type, match=error.error_regex):
        op.op(sample.input, *sample.args, **sample.kwargs)
    args = [_numpy(a) for a in (sample.input, *sample.args)]
    kwargs = {k: _numpy(v) for k, v in sample.kwargs.items()}
    with pytest.raises((ValueError, TypeError)):
        getattr(ctorch, name)(*args, **kwargs)


def _module_cases():
    from torch.testing._internal.common_modules import module_db

    layers = {f"Conv{d}d" for d in (1, 2, 3)} | {f"ConvTranspose{d}d" for d in (1, 2, 3)}
    cases = []
    for info in module_db:
        name = info.module_cls.__name__
        if name not in layers:
            continue
        for i, case in enumerate(info.module_inputs_func(info, "cpu", torch.float64, False, training=False)):
            if case.forward_input is None:
                continue
            cases.append(pytest.param(info.module_cls, case, id=f"{name}-{i}"))
    return cases


@pytest.mark.parametrize("module_cls, case", _module_cases())
def test_module_db_layers(module_cls, case):
    """``module_db``'s constructor arguments and inputs (batched, unbatched, empty batches, every padding mode):
    the tconv.nn layer with the torch layer's state_dict gives torch's output and input gradient."""
    args, kwargs = case.constructor_input.args, case.constructor_input.kwargs
    torch.manual_seed(0)
    layer = module_cls(*args, **kwargs).double()
    mine = getattr(tnn, module_cls.__name__)(*args, **{k: v for k, v in kwargs.items() if k not in ("device", "dtype")})
    mine.astype(np.float64).load_state_dict({k: v.detach().numpy() for k, v in layer.state_dict().items()})
    inputs = case.forward_input.args
    assert len(inputs) == 1 and not case.forward_input.kwargs
    x = inputs[0].detach().clone().requires_grad_(True)
    expected = layer(x)
    got = mine(x.detach().numpy())
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-9, atol=1e-9)
    g = torch.ones_like(expected)
    (expected_grad,) = torch.autograd.grad(expected, x, g)
    np.testing.assert_allclose(mine.backward(g.numpy()), expected_grad.numpy(), rtol=1e-9, atol=1e-9)
