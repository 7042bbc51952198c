"""The layout's rules that import-linter does not check (its contracts in pyproject.toml check the layers,
the private modules and the absence of cycles; CI runs ``lint-imports``).

* No module of ``src/tconv`` uses a private name (a leading underscore) of another module: neither
  ``from tconv.x import _name`` nor ``x._name`` on an imported tconv module. Private *modules* are a
  package's own business (import-linter's ``private_modules`` contract).
* A module over about 500 lines says why in its docstring ("long because ...").
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "tconv"
MODULES = sorted(PACKAGE.rglob("*.py"))
LONG = 500


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: pathlib.Path) -> bool:
    return path.name == "__init__.py"


def _absolute(path: pathlib.Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from."""
    if node.level == 0:
        return node.module or ""
    base = _module_name(path).split(".")
    if not _is_package(path):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


KNOWN = {_module_name(p) for p in MODULES}


def _private_uses(path: pathlib.Path, source: str | None = None) -> list[str]:
    """Every use of another module's private name in the module at ``path`` (or in ``source`` read as it)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    found: list[str] = []
    module_aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(path, node)
            if not source.startswith("tconv"):
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in KNOWN:  # a module: its privacy is import-linter's business
                    module_aliases[alias.asname or alias.name] = full
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"line {node.lineno}: from {source} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tconv"):
                    module_aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    own = _module_name(path)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and module_aliases[node.value.id] != own
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return sorted(found, key=lambda entry: int(entry.split(":")[0].split()[1]))


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_no_private_name_of_another_module(path: pathlib.Path) -> None:
    assert _private_uses(path) == []


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_a_long_module_says_why(path: pathlib.Path) -> None:
    text = path.read_text(encoding="utf-8")
    if text.count("\n") <= LONG:
        return
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert "long because" in docstring, f"{path.name} has {text.count(chr(10))} lines and no reason in its docstring"


def test_the_checker_sees_private_names() -> None:
    """The rule above is not vacuous: a module using another's private name is caught."""
    source = "from .. import shapes\nfrom ..spec import _helper\nshapes._pair(1)\nfrom . import figures\nfigures._x\n"
    found = _private_uses(PACKAGE / "tools" / "probe.py", source)
    assert found == [
        "line 2: from tconv.spec import _helper",
        "line 3: shapes._pair",
        "line 5: figures._x",
    ]
