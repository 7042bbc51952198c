"""Random convolution configurations for hypothesis, shared by the forward and gradient tests.

A configuration lists, per spatial axis, ``(n, k, s, d, lo, hi, op)``: input length,
kernel length, stride, dilation, the padding pair (up to beyond the kernel) and the
output padding (0 for a convolution). Output sizes are computed here, from the
definitions, never by tconv.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


@st.composite
def configs(draw, transposed):
    d = draw(st.integers(1, 3))
    small = d == 3
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin_g = draw(st.integers(1, 2 if small else 3))
    cout_g = draw(st.integers(1, 2 if small else 3))
    axes = []
    for _ in range(d):
        k = draw(st.integers(1, 3 if small else 4))
        s = draw(st.integers(1, 3))
        dil = draw(st.integers(1, 2))
        n = draw(st.integers(1, 4 if small else 6))
        k_eff = (k - 1) * dil + 1
        lo = draw(st.integers(0, k_eff + 1))  # up to beyond the kernel
        hi = draw(st.integers(0, k_eff + 1))
        op = draw(st.integers(0, max(s, dil) - 1)) if transposed else 0
        axes.append((n, k, s, dil, lo, hi, op))
    batch = draw(st.integers(1, 2))
    return dict(
        d=d,
        groups=groups,
        cin_g=cin_g,
        cout_g=cout_g,
        axes=axes,
        batch=batch,
        batched=draw(st.booleans()),
        channels_last=draw(st.booleans()),
        bias=draw(st.booleans()),
        padding_form=draw(st.sampled_from(["pairs", "int_or_tuple"])),
        seed=draw(st.integers(0, 2**16)),
    )


def expected_size(cfg, transposed):
    sizes = []
    for n, k, s, dil, lo, hi, op in cfg["axes"]:
        k_eff = (k - 1) * dil + 1
        size = (n - 1) * s + k_eff - lo - hi + op if transposed else (n + lo + hi - k_eff) // s + 1
        if (not transposed and n + lo + hi < k_eff) or size < 1:
            return None
        sizes.append(size)
    return sizes


def arrays_for(cfg, transposed):
    rng = np.random.default_rng(cfg["seed"])
    g, cin_g, cout_g = cfg["groups"], cfg["cin_g"], cfg["cout_g"]
    spatial = [a[0] for a in cfg["axes"]]
    kernel = [a[1] for a in cfg["axes"]]
    x = rng.standard_normal((cfg["batch"], g * cin_g, *spatial))
    if transposed:
        w = rng.standard_normal((g * cin_g, cout_g, *kernel))
    else:
        w = rng.standard_normal((g * cout_g, cin_g, *kernel))
    b = rng.standard_normal(g * cout_g) if cfg["bias"] else None
    return x, w, b
