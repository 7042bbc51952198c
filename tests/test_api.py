"""The public surface: every exported name is documented, with runnable examples."""

from __future__ import annotations

import inspect

import tconv
from tconv import models, nn, shapes


def _public_callables():
    for module, prefix in ((tconv, "tconv"), (nn, "tconv.nn"), (models, "tconv.models")):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{prefix}.{name}", obj
    for name in shapes.__all__:
        yield f"tconv.shapes.{name}", getattr(shapes, name)


def test_all_names_exist():
    for name in tconv.__all__:
        assert hasattr(tconv, name), name
    for name in shapes.__all__:
        assert hasattr(shapes, name), name
    for module in (nn, models):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_every_public_name_is_documented():
    undocumented = [name for name, obj in _public_callables() if not (obj.__doc__ or "").strip()]
    assert not undocumented


def test_public_functions_have_examples():
    missing = [
        name
        for name, obj in _public_callables()
        if inspect.isfunction(obj)
        and (name.count(".") == 1 or name.startswith("tconv.shapes."))
        and "Examples" not in (obj.__doc__ or "")
    ]
    assert not missing


def test_arrays_positional_options_keyword_only():
    for fn in (tconv.conv, tconv.conv_transpose):
        params = inspect.signature(fn).parameters
        assert params["x"].kind is inspect.Parameter.POSITIONAL_ONLY
        assert params["weight"].kind is inspect.Parameter.POSITIONAL_ONLY
        for name in ("stride", "padding", "dilation", "groups", "channels_last"):
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_importing_tconv_does_not_import_optional_frameworks():
    import subprocess
    import sys

    code = "import sys, tconv; print(sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_call_description_hashes_as_its_fields_once():
    """ConvSpec's hash (the engine's caches look each call up several times) is the hash of its fields, worked out
    once: equal descriptions built apart hash alike, a changed field changes it, and a pickled copy keeps it."""
    import dataclasses
    import pickle

    build = {"transposed": True, "input_size": (4, 4), "kernel_size": (3, 3), "in_channels": 2, "out_channels": 3}
    spec, again = tconv.ConvSpec.build(stride=2, **build), tconv.ConvSpec.build(stride=(2, 2), **build)
    assert spec == again and hash(spec) == hash(again)
    fields = tuple(getattr(spec, f.name) for f in dataclasses.fields(spec))
    assert hash(spec) == hash(fields)
    other = dataclasses.replace(spec, kernel_size=(1, 1))
    assert other != spec and hash(other) == hash(tuple(getattr(other, f.name) for f in dataclasses.fields(other)))
    assert hash(pickle.loads(pickle.dumps(spec))) == hash(spec)
