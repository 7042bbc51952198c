"""The tconv command: the DCGAN walk through main(argv) and as a subprocess."""

from __future__ import annotations

import subprocess
import sys

from tconv.cli import main


def test_main_default_walks_dcgan(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for shape in ("(7, 7, 256)", "(7, 7, 128)", "(14, 14, 64)", "(28, 28, 1)"):
        assert shape in out
    assert "all shapes match seed 000" in out
    assert "WRONG" not in out


def test_dcgan_subcommand_with_batch(capsys):
    assert main(["dcgan", "--batch", "2", "--seed", "3"]) == 0
    assert "(batch 2," in capsys.readouterr().out


def test_python_dash_m(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tconv", "dcgan", "--batch", "1"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "(28, 28, 1)" in result.stdout


def test_bad_argument_exits_2_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "tconv", "dcgan", "--batch", "0"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--batch must be a positive int" in result.stderr
