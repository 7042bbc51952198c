"""The tconv command: every subcommand through main(argv) and as a subprocess, figures, the tour."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

from tconv.tools.cli import main

GOLDEN = pathlib.Path(__file__).with_name("golden")
SEED004 = ["--input", "2x2", "--kernel", "3", "--stride", "2", "--padding", "valid", "--framework", "tensorflow"]


def _run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_no_command_prints_help(capsys):
    status, out, _ = _run([], capsys)
    assert status == 0 and "tour" in out and "explain" in out


def test_tour_passes_every_check_and_writes_figures(tmp_path, capsys):
    status, out, _ = _run(["tour", "--out", str(tmp_path)], capsys)
    assert status == 0, out
    lines = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == 16 and all(line.startswith("PASS") for line in lines)
    for source in (
        "Keras Conv2DTranspose tutorial",
        "PyTorch ConvTranspose2d tutorial",
        "Paddle course, 1x1 and transposed conv",
        "transposed-conv layer intro",
        "tf.nn.conv2d_transpose Q&A",
    ):  # one check at least from each of the five tutorials
        assert source in out
    assert "16 passed, 0 failed" in out
    assert "67 = -67 * -1" in out and "387,072 vs 163,328" in out and "1,179,648 vs 69,632" in out
    from PIL import Image

    with Image.open(tmp_path / "seed004_scatter.gif") as gif:
        assert gif.n_frames == 4 + 1  # one frame per input element, then the crop
    with Image.open(tmp_path / "seed004_gather.gif") as gif:
        assert gif.n_frames == 25  # one frame per output element
        assert gif.size[0] > 300 and gif.size[1] > 100
    for name in (
        "seed004_grids.png",
        "seed004_overlap.png",
        "seed004_matrix.png",
        "dcgan_checkerboard.png",
        "seed002_matrix.png",
    ):
        path = tmp_path / name
        assert path.stat().st_size > 1000, name
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_tour_json(capsys):
    status, out, _ = _run(["tour", "--json"], capsys)
    data = json.loads(out)
    assert status == 0 and data["failed"] == 0 and data["passed"] == 16


def test_explain_golden_text_for_seed004(capsys):
    """The report on seed 004's layer. The golden file was read against the seed by hand: full output
    (2-1)*2 + 3 = 5 with no crop, one zero between inputs (2 -> 3) padded (2, 2), and C of the 5x5 -> 2x2
    convolution 4 x 25 with 4 * 9 = 36 nonzeros."""
    status, out, _ = _run(["explain", *SEED004], capsys)
    assert status == 0
    assert out == (GOLDEN / "explain_seed004.txt").read_text()
    assert "(2-1)*2 + 1*(3-1) + 1 - 0 - 0 + 0 = 5" in out
    assert f"4 x 25 (its transpose C^T is this layer); {4 * 9} nonzeros" in out
    assert "insert 1 zero(s) between inputs (2 -> 3), pad (2, 2)" in out


def test_explain_writes_figures_and_json(tmp_path, capsys):
    status, out, _ = _run(
        [
            "explain",
            "--input",
            "3x3",
            "--kernel",
            "3",
            "--stride",
            "2",
            "--padding",
            "same",
            "--framework",
            "keras",
            "--out",
            str(tmp_path),
            "--json",
        ],
        capsys,
    )
    data = json.loads(out)
    assert status == 0
    assert data["output_size"] == [6, 6] and data["padding"] == [[0, 1], [0, 1]]
    assert any("checkerboard" in w for w in data["warnings"])
    assert not data["frameworks"]["torch"]["exact"] and data["frameworks"]["onnx"]["exact"]
    names = sorted(pathlib.Path(p).name for p in data["figures"])
    assert names == ["gather.gif", "grids.png", "matrix.png", "overlap.png", "scatter.gif"]
    from PIL import Image

    with Image.open(tmp_path / "scatter.gif") as gif:
        assert gif.n_frames == 9 + 1
    with Image.open(tmp_path / "gather.gif") as gif:
        assert gif.n_frames == 36


def test_animations_are_capped_at_64_frames(tmp_path):
    from PIL import Image

    from tconv.spec import ConvSpec
    from tconv.tools import figures

    spec = ConvSpec.build(
        transposed=True, input_size=(1, 20), kernel_size=(1, 3), in_channels=1, out_channels=1, stride=(1, 4)
    )
    with Image.open(figures.save_gather_gif(tmp_path / "g.gif", spec)) as gif:
        assert gif.n_frames == 64  # 79 outputs, 64 evenly chosen frames


def test_shape_want_and_conv_inputs(capsys):
    status, out, _ = _run(["shape", "--input", "7", "--kernel", "5", "--stride", "2", "--want", "14"], capsys)
    assert status == 0 and "padding=2, output_padding=1" in out
    status, out, _ = _run(["shape", "--conv", "--input", "7", "--kernel", "3", "--stride", "2", "--json"], capsys)
    data = json.loads(out)
    assert data["output_size"] == [3] and data["input_sizes_with_same_output"] == [[7, 8]]
    status, out, _ = _run(
        [
            "shape",
            "--input",
            "3",
            "--kernel",
            "3",
            "--stride",
            "2",
            "--padding",
            "same",
            "--framework",
            "paddle",
            "--json",
        ],
        capsys,
    )
    assert json.loads(out)["output_size"] == [5]


def test_translate_command(capsys):
    status, out, _ = _run(
        ["translate", "--input", "7x7", "--kernel", "5", "--stride", "2", "--padding", "same", "--framework", "keras"],
        capsys,
    )
    assert status == 0 and "y = y[:, :, 0:-1, 0:-1]" in out and "# onnx (exact)" in out
    status, out, _ = _run(["translate", *SEED004, "--json"], capsys)
    assert json.loads(out)["layers"]["torch"]["exact"]


def test_dcgan_command(capsys):
    status, out, _ = _run(["dcgan", "--batch", "2"], capsys)
    assert status == 0 and "(28, 28, 1)" in out and "all shapes match seed 000" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["dcgan", "--batch", "0"], "--batch must be a positive int"),
        (["shape", "--input", "7", "--kernel", "x"], "argument --kernel"),
        (
            ["shape", "--input", "3", "--kernel", "3", "--stride", "2", "--output-padding", "2"],
            "output_padding must be smaller than stride",
        ),
        (["explain", "--input", "3", "--kernel", "3", "--padding", "same"], "PyTorch takes integer padding"),
        (["translate", "--input", "3", "--kernel", "3", "--framework", "caffe"], "invalid choice"),
        (["bogus"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message):
    result = subprocess.run([sys.executable, "-m", "tconv", *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_python_dash_m_tour():
    result = subprocess.run([sys.executable, "-m", "tconv", "tour"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "16 passed, 0 failed" in result.stdout


def test_bench_runs_and_writes_json(tmp_path):
    """The benchmark script itself (tiny cases, two rounds); its numbers are not asserted: speed is read
    off the full table, never tested."""
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tconv",
            "bench",
            "--frameworks",
            "tconv,torch",
            "--cases",
            "keras-dcgan-3,unet-up",
            "--rounds",
            "2",
            "--repeats",
            "2",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "ratios.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "geometric mean tconv/torch" in result.stdout and "measured float32 GEMM rate" in result.stdout
    # the cost model's product rate, pinned for the tests' subprocesses (the root conftest's TCONV_GEMM_RATE)
    assert "tconv's cost model prices products at 120.0 GFLOP/s (GEMM_RATE, pinned" in result.stdout
    assert re.search(r"tconv's register-blocked kernels write (256|512)-bit vectors", result.stdout)
    data = json.loads(out.read_text())
    assert [row["case"] for row in data["rows"]] == ["keras-dcgan-3", "unet-up"]
    assert all(row["times"]["tconv"] > 0 for row in data["rows"])
    assert all(row["peak_mib"] <= row["bound_mib"] for row in data["rows"])
    # each row's %GEMM is against the GEMM rate sampled in its own rounds
    assert all(row["gemm_gflops"] > 0 for row in data["rows"])
    assert all(row["gemm_percent"] == pytest.approx(100 * row["gflops"] / row["gemm_gflops"]) for row in data["rows"])


def test_bench_rejects_unknown_cases():
    result = subprocess.run(
        [sys.executable, "-m", "tconv", "bench", "--cases", "nope"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
