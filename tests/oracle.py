"""A deliberately naive reference for convolution and transposed convolution.

Written from the definitions, in float64 with explicit Python loops over every
output (or input) position and kernel tap. It computes its own output shapes and
its own 'same' paddings and imports nothing from tconv, so the tests never
compare tconv with itself.

* ``naive_conv``: gather. Pad the input with zeros, then for each output position
  sum ``weight * x_pad`` over the window ``o*s + i*d``.
* ``naive_conv_transpose``: scatter, as seed 004 explains it. Each input element
  stamps a scaled copy of the kernel onto a full-size output at ``j*s + i*d``;
  then crop ``lo`` from the start and ``hi`` from the end and append
  ``output_padding`` zeros.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def same_pads_tf(n, k, s, d, lower=False):
    """TensorFlow's 'SAME' padding of a forward convolution: output ceil(n/s)."""
    k_eff = (k - 1) * d + 1
    out = math.ceil(n / s)
    total = max((out - 1) * s + k_eff - n, 0)
    lo, hi = total // 2, total - total // 2
    return (hi, lo) if lower else (lo, hi)


def naive_conv(x, w, b=None, stride=None, pads=None, dilation=None, groups=1):
    """x (N, C_in, *sp), w (C_out, C_in/groups, *k), pads a list of (lo, hi)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    d = w.ndim - 2
    stride = stride or [1] * d
    dilation = dilation or [1] * d
    pads = pads or [(0, 0)] * d
    n_batch, c_in = x.shape[:2]
    c_out = w.shape[0]
    cin_g, cout_g = c_in // groups, c_out // groups
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    out_sp = [(xp.shape[2 + a] - ((w.shape[2 + a] - 1) * dilation[a] + 1)) // stride[a] + 1 for a in range(d)]
    out = np.zeros((n_batch, c_out, *out_sp))
    for n in range(n_batch):
        for co in range(c_out):
            g = co // cout_g
            for pos in itertools.product(*(range(o) for o in out_sp)):
                total = 0.0
                for ci in range(cin_g):
                    for tap in itertools.product(*(range(k) for k in w.shape[2:])):
                        idx = tuple(pos[a] * stride[a] + tap[a] * dilation[a] for a in range(d))
                        total += w[(co, ci, *tap)] * xp[(n, g * cin_g + ci, *idx)]
                out[(n, co, *pos)] = total
            if b is not None:
                out[n, co] += b[co]
    return out


def naive_conv_transpose(x, w, b=None, stride=None, pads=None, output_padding=None, dilation=None, groups=1):
    """x (N, C_in, *sp), w (C_in, C_out/groups, *k): scatter, crop, extend."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    d = w.ndim - 2
    stride = stride or [1] * d
    dilation = dilation or [1] * d
    pads = pads or [(0, 0)] * d
    output_padding = output_padding or [0] * d
    n_batch, c_in = x.shape[:2]
    cin_g, cout_g = c_in // groups, w.shape[1]
    c_out = cout_g * groups
    in_sp = x.shape[2:]
    full_sp = [(in_sp[a] - 1) * stride[a] + (w.shape[2 + a] - 1) * dilation[a] + 1 for a in range(d)]
    # Room for output padding beyond the full output.
    full = np.zeros((n_batch, c_out, *(f + op for f, op in zip(full_sp, output_padding))))
    for n in range(n_batch):
        for ci in range(c_in):
            g = ci // cin_g
            for pos in itertools.product(*(range(m) for m in in_sp)):
                value = x[(n, ci, *pos)]
                for co in range(cout_g):
                    for tap in itertools.product(*(range(k) for k in w.shape[2:])):
                        idx = tuple(pos[a] * stride[a] + tap[a] * dilation[a] for a in range(d))
                        full[(n, g * cout_g + co, *idx)] += value * w[(ci, co, *tap)]
    crop = tuple(slice(lo, full.shape[2 + a] - hi) for a, (lo, hi) in enumerate(pads))
    out = full[(slice(None), slice(None), *crop)]
    assert all(s > 0 for s in out.shape[2:]), "empty output"
    if b is not None:
        out = out + np.asarray(b, dtype=np.float64).reshape(1, -1, *([1] * d))
    return out


def insert_zeros_and_pad(y, stride, pads):
    """Spread y (N, C, *sp) with stride-1 zeros between elements, then pad (negative crops)."""
    d = y.ndim - 2
    spread_shape = [(y.shape[2 + a] - 1) * stride[a] + 1 for a in range(d)]
    spread = np.zeros((*y.shape[:2], *spread_shape))
    spread[(slice(None), slice(None), *(slice(None, None, s) for s in stride))] = y
    for a, (lo, hi) in enumerate(pads):
        # Window [-lo, L + hi) of the zero-extended array: a negative lo or hi crops,
        # and a crop longer than the array eats into the other side's padding.
        axis = 2 + a
        length = spread.shape[axis]
        window = np.zeros((*spread.shape[:axis], length + lo + hi, *spread.shape[axis + 1 :]))
        for p in range(length + lo + hi):
            src = p - lo
            if 0 <= src < length:
                index = [slice(None)] * spread.ndim
                index[axis] = p
                src_index = [slice(None)] * spread.ndim
                src_index[axis] = src
                window[tuple(index)] = spread[tuple(src_index)]
        spread = window
    return spread
