"""``tconv demo volume``: a synthetic 3-D volume, larger than the workers' memory, upsampled from Zarr to Zarr.

A small 3-D decoder (two stride-2 ``ConvTranspose3d`` layers with batch norm and activations) runs tile by
tile on a ``dask.distributed`` ``LocalCluster`` of worker processes with a memory limit each
(:func:`tconv.dask.run_model`); the output is several times the workers' total memory limit. The report:
output throughput, peak memory per worker against its limit, the largest difference from the in-memory
run on sampled regions, and the same for overlap-and-blend tiling (:func:`tconv.dask.blend_tiles`), at tile
borders and away from them.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

__all__ = ["decoder", "run_volume"]


def decoder(channels: int = 4, seed: int = 0) -> Any:
    """The demo's decoder: x4 upsampling through two stride-2 transposed convolutions (kernel 4, padding 1)."""
    from .. import nn

    nn.manual_seed(seed)
    model: Any = nn.Sequential(
        [
            nn.ConvTranspose3d(channels, 8, 4, stride=2, padding=1),
            nn.BatchNorm3d(8),
            nn.torch.LeakyReLU(0.1),
            nn.ConvTranspose3d(8, 2, 4, stride=2, padding=1),
            nn.Tanh(),
        ]
    )
    model.build_from_shape((1, channels, 4, 4, 4))
    rng = np.random.default_rng(seed)
    model[1].running_mean.value = rng.standard_normal(8).astype(np.float32) * 0.1
    model[1].running_var.value = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    return model.eval()


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _regions(size: int, scale: int, region: int) -> list[tuple[int, int, int]]:
    """Output-region corners to check: a corner, the middle, the far corner (in output elements)."""
    out = size * scale
    middle = (out // 2 // scale) * scale - region // 2
    return [(0, 0, 0), (middle, middle - scale * 3, middle + scale), (out - region,) * 3]


def run_volume(
    *,
    size: int = 160,
    channels: int = 4,
    chunk: int = 32,
    workers: int = 2,
    memory_limit: str = "700MiB",
    out: str | Path | None = None,
    seed: int = 0,
    stream: TextIO,
    verbose: bool = True,
) -> tuple[bool, dict[str, Any]]:
    """Run the demo; ``size`` is the input's side (the output's is ``4 * size``)."""
    import dask
    import dask.array as da
    import distributed

    from .. import dask as tconv_dask

    model = decoder(channels, seed)
    scale = 4
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="tconv-volume-", dir=None if out is None else str(out)))
    source, target = root / "input.zarr", root / "output.zarr"
    out_side = size * scale
    out_bytes = 2 * out_side**3 * 4
    x = da.random.RandomState(seed).standard_normal(
        (1, channels, size, size, size), chunks=(1, channels, chunk, chunk, chunk)
    )
    x = x.astype(np.float32)
    limit_bytes = int(dask.utils.parse_bytes(memory_limit))
    with dask.config.set({"distributed.worker.memory.target": 0.6, "distributed.worker.memory.spill": 0.7}):
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            memory_limit=memory_limit,
        )  # fmt: skip
    with cluster, distributed.Client(cluster) as client:
        x.to_zarr(str(source), overwrite=True)
        lazy = tconv_dask.run_model(model, da.from_zarr(str(source)), output_chunks=chunk * scale)
        peaks: dict[str, int] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    for address, rss in client.run(_rss).items():
                        peaks[address] = max(peaks.get(address, 0), rss)
                except Exception:  # a worker restarting: sample again
                    pass
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        stored = lazy.to_zarr(str(target), overwrite=True, compute=False)
        future = client.compute(stored)
        if verbose:
            distributed.progress(future)
            print(file=stream)
        future.result()
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()

    import zarr

    source_array: Any
    target_array: Any
    source_array, target_array = zarr.open(str(source), mode="r"), zarr.open(str(target), mode="r")
    region, margin, tile, overlap = 64, 8, chunk // 2, chunk // 8
    exact_error = 0.0
    blend_border = blend_inner = 0.0
    for corner in _regions(size, scale, region):
        lo = [max(c // scale - margin, 0) for c in corner]
        hi = [min((c + region) // scale + margin, size) for c in corner]
        whole = (slice(None), slice(None))
        block = np.asarray(source_array[whole + tuple(slice(a, b) for a, b in zip(lo, hi))])
        reference = model(block)
        crop = tuple(slice(c - a * scale, c - a * scale + region) for c, a in zip(corner, lo))
        want = reference[whole + crop]
        got = np.asarray(target_array[whole + tuple(slice(c, c + region) for c in corner)])
        exact_error = max(exact_error, float(np.abs(got - want).max()))
        blended, borders = tconv_dask.blend_tiles(model, block, (tile,) * 3, (overlap,) * 3, (scale,) * 3, channels=2)
        error = np.abs(blended[whole + crop] - want)
        near = np.zeros(error.shape[2:], dtype=bool)
        for axis, (cut, axis_borders) in enumerate(zip(crop, borders)):
            positions = np.arange(cut.start, cut.stop)
            close = np.zeros(positions.shape, dtype=bool)
            for border in axis_borders:
                close |= np.abs(positions - border) < 2 * scale
            view = [None, None, None]
            view[axis] = slice(None)  # type: ignore[call-overload]
            near |= close[tuple(view)]
        blend_border = max(blend_border, float(error.max(axis=(0, 1))[near].max(initial=0.0)))
        blend_inner = max(blend_inner, float(error.max(axis=(0, 1))[~near].max(initial=0.0)))
    peak = {address: rss for address, rss in peaks.items()}
    report = {
        "input": [1, channels, size, size, size],
        "output": [1, 2, out_side, out_side, out_side],
        "output_mb": out_bytes / 1e6,
        "workers": workers,
        "memory_limit_mb": limit_bytes / 1e6,
        "total_limit_mb": workers * limit_bytes / 1e6,
        "seconds": seconds,
        "mb_per_s": out_bytes / 1e6 / seconds,
        "peak_mb": {address: rss / 1e6 for address, rss in peak.items()},
        "tiles": int(np.prod([len(c) for c in lazy.chunks])),
        "tconv_max_difference": exact_error,
        "blend_max_difference_at_tile_borders": blend_border,
        "blend_max_difference_elsewhere": blend_inner,
        "zarr": str(root),
    }
    ok = exact_error == 0.0 or exact_error < 1e-5
    ok = ok and out_bytes > workers * limit_bytes and all(r < limit_bytes for r in peak.values())
    if verbose:
        print(
            f"input  {channels}x{size}^3 float32 ({channels * size**3 * 4 / 1e6:.0f} MB, Zarr)  ->  "
            f"output 2x{out_side}^3 ({out_bytes / 1e6:,.0f} MB, Zarr), {report['tiles']} tiles",
            file=stream,
        )
        print(
            f"LocalCluster: {workers} worker processes x 1 thread, memory limit {limit_bytes / 1e6:.0f} MB each "
            f"({workers * limit_bytes / 1e6:.0f} MB in all; the output is "
            f"{out_bytes / (workers * limit_bytes):.1f}x that)",
            file=stream,
        )
        print(f"time {seconds:.1f} s, output throughput {report['mb_per_s']:.1f} MB/s", file=stream)
        for address, rss in sorted(peak.items()):
            print(f"  peak memory {address}: {rss / 1e6:.0f} MB of {limit_bytes / 1e6:.0f} MB", file=stream)
        print(f"max |tconv tiled - in memory| on {len(_regions(size, scale, region))} sampled {region}^3 regions: "
              f"{exact_error:.3g}", file=stream)  # fmt: skip
        print(
            f"max |overlap-and-blend - in memory| (tiles {tile}^3, overlap {overlap}): {blend_border:.3g} within "
            f"{2 * scale} outputs of a tile border, {blend_inner:.3g} elsewhere",
            file=stream,
        )
        print(f"Zarr stores under {root}", file=stream)
    if out is None:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return ok, report
