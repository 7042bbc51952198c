"""The command in the chosen framework's words, its defaults and refusals, its help, version and errors, the
demo verdict, and the figures' structure (issue 18).

Expected values are worked by hand from each framework's documented rule (written next to each test) or come
from the real framework where it is installed; none is read from tconv's own output.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import numpy as np
import pytest

from tconv.tools.cli import main

# 7 -> 14 with kernel 5, stride 2: the full output is (7-1)*2 + 5 = 17, so a 14 keeps full[start : start + 14]
# with start 0..3. TensorFlow's 'SAME' (and Keras's 'same', which runs it) splits the total crop 17 - 14 = 3
# as 3 // 2 = 1 at the start; PyTorch's symmetric padding p with output_padding op gives 17 - 2p + op = 14 only
# for p = 2, op = 1: start 2. ONNX's output_shape without auto_pad puts the odd element at the start
# (pads begin = 3 - 3 // 2 = 2); with auto_pad='SAME_UPPER' at the end (begin 1).
KERAS_WANT = ["shape", "--input", "7", "--kernel", "5", "--stride", "2", "--want", "14"]


def _run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _command(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "tconv", *argv], capture_output=True, text=True, timeout=180, **kwargs)


def _ways(argv, capsys):
    status, out, _ = _run([*argv, "--json"], capsys)
    assert status == 0
    (answer,) = json.loads(out)["ways"]
    return answer, {name: {w["arguments"]: w["start"] for w in ways} for name, ways in answer["frameworks"].items()}


def test_want_in_keras_words_and_the_shift_against_pytorch(capsys):
    answer, ways = _ways([*KERAS_WANT, "--framework", "keras"], capsys)
    assert answer["full_output"] == 17
    # Keras: 'same' gives n*s = 14; 'same' with output_padding=1 gives (7-1)*2 + 5 - 2*(5//2) + 1 = 14;
    # 'valid' gives at least 17. Both 'same' forms crop TensorFlow's (1, 2).
    assert ways["keras"] == {"padding='same'": 1, "padding='same', output_padding=1": 1}
    assert ways["torch"] == {"padding=2, output_padding=1": 2}
    status, out, _ = _run([*KERAS_WANT, "--framework", "keras"], capsys)
    assert status == 0
    assert "in Keras's words" in out and "padding=2," not in out.split("the other frameworks")[0]
    assert "start 2, SHIFTED 1 element(s) later than Keras's start 1" in out
    assert "y = y[:, 2:-1, :]" in out  # Keras's 'valid' (the full 17) sliced to start 2: 2 off the start, 1 off the end


def test_want_in_every_framework_words(capsys):
    _, ways = _ways([*KERAS_WANT, "--framework", "tensorflow"], capsys)
    assert ways["tensorflow"]["padding='SAME', output_shape with 14 on this axis"] == 1
    assert ways["onnx"]["output_shape=[14] (auto_pad NOTSET)"] == 2
    assert ways["onnx"]["auto_pad='SAME_UPPER', output_shape=[14]"] == 1
    assert ways["onnx"]["pads=[3, 0] (begin, end)"] == 3
    # lax.conv_transpose 'SAME' gives n*s = 14 with the forward 'SAME' split of the 14: start 1.
    assert ways["jax"]["padding='SAME'"] == 1
    # Paddle: symmetric padding as PyTorch, or explicit [lo, hi].
    assert ways["paddle"]["padding=2, output_padding=1"] == 2
    assert ways["paddle"]["padding=[0, 3]"] == 0
    status, out, _ = _run([*KERAS_WANT, "--framework", "onnx"], capsys)
    assert status == 0 and "in ONNX's words" in out and "auto_pad='SAME_LOWER'" in out


def test_want_starts_agree_with_the_real_frameworks():
    """PyTorch's padding=2, output_padding=1 is full[2:16]; Keras's 'same' is full[1:15]: a one-element shift."""
    torch = pytest.importorskip("torch")
    x = torch.arange(1.0, 8.0).reshape(1, 1, 7)
    w = torch.tensor([1.0, 10.0, 100.0, 1000.0, 10000.0]).reshape(1, 1, 5)
    full = torch.nn.functional.conv_transpose1d(x, w, stride=2)[0, 0].numpy()
    pytorch = torch.nn.functional.conv_transpose1d(x, w, stride=2, padding=2, output_padding=1)[0, 0].numpy()
    assert full.shape == (17,) and np.array_equal(pytorch, full[2:16])
    keras = pytest.importorskip("keras")
    layer = keras.layers.Conv1DTranspose(1, 5, strides=2, padding="same", use_bias=False)
    layer.build((1, 7, 1))
    layer.set_weights([w.numpy().reshape(5, 1, 1)])
    same = np.asarray(layer(x.numpy().reshape(1, 7, 1)))[0, :, 0]
    assert np.allclose(same, full[1:15])


def test_tconv_own_words_list_every_start(capsys):
    status, out, _ = _run([*KERAS_WANT, "--framework", "tconv"], capsys)
    assert status == 0
    for lo in range(4):
        assert f"padding=({lo}, {3 - lo})" in out


def test_unreachable_size_says_the_largest(capsys):
    # kernel 3, stride 2 on 3: full (3-1)*2 + 3 = 7, output padding below 2 adds at most 1: 8 is the largest
    status, out, _ = _run(["shape", "--input", "3", "--kernel", "3", "--stride", "2", "--want", "9"], capsys)
    assert status == 0 and "the largest output is 8" in out


@pytest.mark.parametrize(
    "framework, expected",
    [
        ("keras", 17),  # Keras's default 'valid': n*s + max(k - s, 0) = 14 + 3
        ("tensorflow", 14),  # tf.nn.conv1d_transpose's default 'SAME': n*s
        ("torch", 17),  # padding 0: the full output
        ("onnx", 17),  # pads 0
    ],
)
def test_default_padding_is_the_framework_own(framework, expected, capsys):
    status, out, _ = _run(
        ["shape", "--input", "7", "--kernel", "5", "--stride", "2", "--framework", framework, "--json"], capsys
    )
    assert status == 0 and json.loads(out)["output_size"] == [expected]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--framework", "jax"], "JAX's call has no default padding"),
        (["--framework", "keras", "--padding", "same", "--output-size", "15"], "has no output size argument"),
        (["--framework", "jax", "--padding", "same", "--output-size", "15"], "lax.conv_transpose has no output_size"),
        (["--padding", "1:2:3"], "a padding pair is two ints lo:hi"),
        (["--conv", "--output-size", "4"], "belong to transposed convolutions"),
        (["--conv", "--want", "4"], "--want is for transposed convolutions"),
    ],
)
def test_refusals_give_the_reason(argv, message):
    result = _command("shape", "--input", "7", "--kernel", "5", "--stride", "2", *argv)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


def test_output_size_is_honoured_where_the_framework_has_it(capsys):
    # PyTorch padding 1: smallest (7-1)*2 + 5 - 2 = 15; output_size 16 takes output_padding 1.
    status, out, _ = _run(
        ["shape", "--input", "7", "--kernel", "5", "--stride", "2", "--padding", "1", "--output-size", "16", "--json"],
        capsys,
    )
    assert status == 0 and json.loads(out)["output_size"] == [16]
    # TensorFlow's 'SAME' admits an output_shape from (7-1)*2 + 1 = 13 to n*s = 14
    status, out, _ = _run(
        [
            "shape",
            "--input",
            "7",
            "--kernel",
            "5",
            "--stride",
            "2",
            "--framework",
            "tensorflow",
            "--output-size",
            "13",
            "--json",
        ],
        capsys,
    )
    assert status == 0 and json.loads(out)["output_size"] == [13]


def test_translate_groups_with_keras_says_the_real_reason():
    result = _command(
        "translate", "--input", "7", "--kernel", "5", "--stride", "2", "--groups", "2", "--framework", "keras"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no groups argument" in result.stderr and "--framework torch" in result.stderr
    assert "padding" not in result.stderr.split("groups argument")[0]


def test_version():
    result = _command("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tconv {importlib.metadata.version('tconv')}"


def test_help_has_examples_and_the_demo_names():
    result = _command("--help")
    assert result.returncode == 0 and "examples:" in result.stdout
    for demo in ("blocks", "upsampling", "unet", "dcgan"):
        assert demo in result.stdout
    assert "tconv shape --input 7 --kernel 5 --stride 2 --framework keras --want 14" in result.stdout


def test_unwritable_out_is_one_line_and_status_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for command in (["explain", "--input", "3", "--kernel", "3"], ["tour"]):
        result = _command(*command, "--out", str(blocker / "figures"))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "--out" in result.stderr and "figures" in result.stderr


def test_demo_prints_a_verdict_and_exits_1_when_it_fails(monkeypatch, capsys):
    from tconv.tools import demo

    def failing_unet(out, epochs, seed, stream, verbose):
        return False, {"iou": 0.0, "baseline_iou": 0.412, "loss": [], "files": []}

    monkeypatch.setattr(demo, "_unet", failing_unet)
    status, out, _ = _run(["demo", "unet"], capsys)
    assert status == 1
    assert "FAIL  unet: held-out IoU 0.000 against the best global threshold's 0.412" in out
    status, out, _ = _run(["demo", "blocks"], capsys)
    assert status == 0 and "PASS  blocks: the weight counts match seed 002's" in out


def test_explain_prints_the_report_before_drawing_and_shows_progress(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tconv",
            "explain",
            "--input",
            "3x3",
            "--kernel",
            "3",
            "--stride",
            "2",
            "--out",
            tmp_path,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0
    text = result.stdout
    assert text.index("Output size") < text.index("drawing 5 figures") < text.index("[1/5] wrote")
    assert "[5/5] wrote" in text


def test_tour_prints_the_checks_before_drawing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tconv", "tour", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0
    assert result.stdout.index("PASS") < result.stdout.index("[1/7] wrote")


@pytest.fixture
def drawn(monkeypatch):
    """The titles and cell texts of every figure saved (matplotlib's public Figure API)."""
    from matplotlib.figure import Figure

    seen = []
    original = Figure.savefig

    def record(fig, *args, **kwargs):
        seen.append(
            {
                "suptitle": fig.get_suptitle(),
                "titles": [ax.get_title() for ax in fig.axes],
                "texts": [[t.get_text() for t in ax.texts] for ax in fig.axes],
            }
        )
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return seen


def test_3d_explain_draws_slices_of_the_3d_layer(tmp_path, drawn):
    from tconv.spec import ConvSpec
    from tconv.tools import figures

    spec = ConvSpec.build(
        transposed=True, input_size=(4, 4, 4), kernel_size=(3, 3, 3), in_channels=1, out_channels=1, stride=2
    )
    # Per axis, kernel 3 at stride 2 gives 2 taps at the even interior positions: 2 * 2 * 2 = 8 at the centre.
    assert figures.tap_counts(spec).shape == (9, 9, 9) and figures.tap_counts(spec)[4, 4, 4] == 8
    figures.save_all(tmp_path, spec)
    overlap, grids = drawn[0], drawn[1]
    assert "depth slice 4 of 9" in overlap["titles"][0] and "most: 8" in overlap["titles"][0]
    assert "8" in overlap["texts"][0]
    assert "input 4x4x4, depth slice 2 of 4" in grids["titles"][0]
    assert "kernel 3x3x3, depth slice 1 of 3" in grids["titles"][1]
    assert "output 9x9x9, depth slice 4 of 9" in grids["titles"][3]
    assert "stride 2x2x2" in grids["suptitle"]
    from PIL import Image

    with Image.open(tmp_path / "gather.gif") as gif:
        assert gif.n_frames == 64  # the H, W plane: 9 x 9 = 81 outputs, 64 evenly chosen


def test_zero_inserted_input_draws_its_zeros_and_values(tmp_path, drawn):
    """Seed 004's layer: the 2x2 input spread to 3x3 with one zero between, padded by 3 - 1 = 2 on each side:
    7x7 cells, 4 of them the input's values, the other 45 drawn as zeros; the output carries its 25 values."""
    from tconv.spec import ConvSpec
    from tconv.tools import figures

    spec = ConvSpec.build(
        transposed=True, input_size=(2, 2), kernel_size=(3, 3), in_channels=1, out_channels=1, stride=2
    )
    x = np.array([[-67.0, -77.0], [-117.0, -127.0]])
    w = np.array([[-1.0, 2, -3], [4, -5, 6], [-7, 8, -9]])
    figures.save_grids(tmp_path / "g.png", spec, x, w)
    (grids,) = drawn
    spread = grids["texts"][2]
    assert len(spread) == 49 and spread.count("0") == 45
    assert sorted(v for v in spread if v != "0") == ["-117", "-127", "-67", "-77"]
    assert "67" in grids["texts"][3] and "1620" in grids["texts"][3] and len(grids["texts"][3]) == 25
    assert "zero-inserted (1, 1 between), padded (2, 2), (2, 2)" in grids["titles"][2]


def test_matrix_has_values_and_a_colour_bar(tmp_path, drawn):
    """Seed 002's C: 4 x 16, each row the kernel 1..9 laid along the flattened 4x4 input: 36 values."""
    from tconv.spec import ConvSpec
    from tconv.tools import figures

    spec = ConvSpec.build(transposed=False, input_size=(4, 4), kernel_size=(3, 3), in_channels=1, out_channels=1)
    figures.save_matrix(tmp_path / "m.png", spec, np.arange(1.0, 10.0).reshape(3, 3))
    (matrix,) = drawn
    assert len(matrix["texts"][0]) == 36 and sorted(set(matrix["texts"][0])) == [str(v) for v in range(1, 10)]
    assert len(matrix["titles"]) == 2  # the matrix and its colour bar
