"""Every snippet of the README and the documentation site runs as written, with the output it shows.

Each page's fenced blocks are collected in order:

* a ```python block with ``>>>`` prompts runs as a doctest (ELLIPSIS and NORMALIZE_WHITESPACE), any other
  ```python block is executed; all the Python blocks of one page share one namespace, in page order, so a later
  block may use what an earlier one defined;
* a ```console block runs each ``$ command`` line in a shell and compares what it prints with the lines under it
  (the same doctest comparison, so ``...`` elides);
* a block preceded by ``<!-- requires: torch keras -->`` runs only where those modules are installed (the test
  extra installs them all, so CI runs it);
* a block preceded by ``<!-- not-tested: reason -->`` is skipped, and must give a reason.

``bash`` and ``text`` blocks (install commands, which CI runs itself, and printed code or tables) are not run.
The page runs in a temporary directory, so a snippet that writes a file leaves nothing behind.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NOT_TESTED = re.compile(r"<!--\s*not-tested:\s*(?P<reason>.*?)\s*-->\s*$", re.S)
REQUIRES = re.compile(r"<!--\s*requires:\s*(?P<modules>[\w. ,]+?)\s*-->\s*$")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
RUN = {"python", "py", "pycon", "console"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    source: str
    skip_reason: str | None
    requires: tuple[str, ...] = ()

    @property
    def missing(self) -> list[str]:
        """The modules this block requires that are not installed here."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """README.md and every Markdown page of the documentation site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` in a language this test runs, with their opt-out markers."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        language = (match["info"].strip().split() or [""])[0].lower()
        if language not in RUN:
            continue
        before = text[: match.start()].rstrip()
        previous = before[before.rfind("\n") + 1 :] if before else ""
        marker = NOT_TESTED.search(previous)
        requires = REQUIRES.search(previous)
        indent = len(match["indent"])
        body = "\n".join(line[indent:] for line in match["body"].splitlines())
        line = text.count("\n", 0, match.start()) + 2  # the first line inside the fence
        modules = tuple(requires["modules"].replace(",", " ").split()) if requires else ()
        found.append(Block(page, line, language, body + "\n", marker["reason"] if marker else None, modules))
    return found


def run_python(block: Block, namespace: dict) -> None:
    if ">>>" in block.source:
        test = doctest.DocTestParser().get_doctest(
            block.source, namespace, block.where, str(block.page), block.line - 1
        )
        out: list[str] = []
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        result = runner.run(test, out=out.append, clear_globs=False)
        namespace.update(test.globs)  # the DocTest ran on a copy of the namespace: keep what it defined
        if result.failed:
            pytest.fail(f"doctest block at {block.where} failed:\n" + "".join(out), pytrace=False)
    else:
        exec(compile(block.source, block.where, "exec"), namespace)


def run_console(block: Block, cwd: Path) -> None:
    """Run each ``$ command`` of the block and compare its output with the lines shown under it."""
    commands: list[tuple[str, list[str]]] = []
    for line in block.source.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
    assert commands, f"console block at {block.where} has no '$ ' command"
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "COLUMNS": "120"}
    checker = doctest.OutputChecker()
    for command, shown in commands:
        done = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        got = done.stdout + done.stderr
        want = "\n".join(shown).strip() + "\n" if any(line.strip() for line in shown) else ""
        if not checker.check_output(want, got, FLAGS):
            pytest.fail(f"console block at {block.where}: `{command}` printed\n{got}\nwhere the page shows\n{want}")


PAGES = [page for page in pages() if blocks(page)]


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_page_snippets_run_as_written(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks(page):
        if block.skip_reason is not None or block.missing:
            continue
        if block.language == "console":
            run_console(block, tmp_path)
        else:
            run_python(block, namespace)


def test_snippets_are_found_and_opt_outs_give_a_reason() -> None:
    every = [block for page in pages() for block in blocks(page)]
    assert len(every) >= 40, f"only {len(every)} runnable blocks found: is the fence pattern still right?"
    assert any(block.page.name == "README.md" for block in every)
    skipped = [block for block in every if block.skip_reason is not None]
    assert all(block.skip_reason.strip() for block in skipped), [block.where for block in skipped]
    assert len(skipped) <= max(3, len(every) // 10), "opt-outs are for the rare snippet that cannot run here"


def test_results_in_comments_are_doctests() -> None:
    """A Python snippet shows its results as doctest output, not as ``# value`` comments after a call."""
    result_comment = re.compile(r"^[^#>\n]*\)\s+#\s*(array\(|range\(|\[\s*[-(\d]|\(\s*-?\d|-?\d+(\.\d+)?\b)", re.M)
    offenders = [
        block.where
        for page in pages()
        for block in blocks(page)
        if block.language in {"python", "py"} and ">>>" not in block.source and result_comment.search(block.source)
    ]
    assert not offenders, f"show these results as doctest output (>>> and the printed value): {offenders}"
