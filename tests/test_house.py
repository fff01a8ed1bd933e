"""House rules read from the source. No module reaches into another's private names: not the project's own,
not the standard library's or a library's; test modules import helpers, never each other; the SQL linter
knows every column macro.

A name that starts with `_` is its module's to change without notice; what another module needs is given a
public name (or a public home) instead. ruff's SLF001 (pyproject.toml) sees `other._name`; this test sees
what SLF001 does not: `from X import _name`, `import X._name` (or `from X._name import ...`), and a private
name given as text to getattr/setattr/hasattr/delattr or monkeypatch.setattr/delattr. Read from the source
with `ast`, every .py of the code, the benchmarks, the tools and the tests; dunder names and `__future__` are
public.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path
from typing import List

from workspace_images.pipelines.modelsql import MACROS

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("pipelines", "sources", "simulator", "bench", "tools", "tests")
REFLECTION = {"getattr", "setattr", "hasattr", "delattr"}
"""Built-ins, and monkeypatch's methods of the same names, that take an attribute's name as text."""


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(node: ast.ImportFrom) -> str:
    return "." * node.level + (node.module or "")


def private_imports(tree: ast.Module, path: str) -> List[str]:
    """Each import of a private name or a private module in `tree`, as `path:line: what it imports`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            module = _module_name(node)
            if any(_private(part) for part in (node.module or "").split(".")):
                found.append(f"{path}:{node.lineno}: from {module} import ...")
            found.extend(f"{path}:{node.lineno}: from {module} import {alias.name}"
                         for alias in node.names if _private(alias.name))
        elif isinstance(node, ast.Import):
            found.extend(f"{path}:{node.lineno}: import {alias.name}"
                         for alias in node.names if any(_private(part) for part in alias.name.split(".")))
    return found


def _text(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def private_names_as_text(tree: ast.Module, path: str) -> List[str]:
    """Each `getattr(other, "_name")` (and setattr, hasattr, delattr, monkeypatch.setattr/delattr, also with a
    `"package.module._name"` path) in `tree`, the object not `self` or `cls`, as `path:line: the call`."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        function = node.func
        called = function.id if isinstance(function, ast.Name) else \
            function.attr if isinstance(function, ast.Attribute) else ""
        first = node.args[0]
        if called not in REFLECTION or (isinstance(first, ast.Name) and first.id in ("self", "cls")):
            continue
        dotted = _text(first)
        second = _text(node.args[1]) if len(node.args) > 1 else None
        names = dotted.split(".") if dotted is not None else [second] if second is not None else []
        if any(_private(name) for name in names):
            found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


TREES = {str(path.relative_to(ROOT)): ast.parse(path.read_text(encoding="utf-8"), str(path))
         for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))}
"""Every module of the code, the benchmarks, the tools and the tests, by its path in the repository."""


def test_no_module_imports_a_private_name_of_another() -> None:
    found = [hit for path, tree in TREES.items() for hit in private_imports(tree, path)]
    assert found == [], "private names imported from another module:\n" + "\n".join(found)


def test_no_module_names_a_private_attribute_of_another_as_text() -> None:
    found = [hit for path, tree in TREES.items() for hit in private_names_as_text(tree, path)]
    assert found == [], "private names of another object given as text:\n" + "\n".join(found)


def test_the_house_checks_see_every_kind_of_reach() -> None:
    """The checks themselves, on made-up source: an empty answer above means none, not a blind check."""
    tree = ast.parse(
        "from __future__ import annotations\n"
        "from .queries import ANALYTICS, _connect\n"
        "from argparse import _SubParsersAction\n"
        "import os._private, json\n"
        "from dlt._impl import thing\n"
        "from . import _helpers, __version__\n"
        "from workspace_images import __version__\n"
        "getattr(rows, '_plain_ints')\n"
        "monkeypatch.setattr(rows, '_plain_ints', None)\n"
        "setattr(self, '_cache', None)\n"
        "getattr(rows, 'plain_ints')\n"
        "hasattr(type(self), '__slots__')\n"
        "monkeypatch.setattr('workspace_images.rows._plain_ints', None)\n"
        "monkeypatch.setattr('workspace_images.rows.images_table', None)\n"
    )
    assert private_imports(tree, "x.py") == [
        "x.py:2: from .queries import _connect",
        "x.py:3: from argparse import _SubParsersAction",
        "x.py:4: import os._private",
        "x.py:5: from dlt._impl import ...",
        "x.py:6: from . import _helpers",
    ]
    assert private_names_as_text(tree, "x.py") == [
        "x.py:8: getattr(rows, '_plain_ints')",
        "x.py:9: monkeypatch.setattr(rows, '_plain_ints', None)",
        "x.py:13: monkeypatch.setattr('workspace_images.rows._plain_ints', None)",
    ]


def test_test_modules_import_helpers_never_each_other() -> None:
    """A test module's names are its own: what two test modules share lives in a helper module of tests/."""
    found = []
    for path, tree in TREES.items():
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            found.extend(f"{path}:{node.lineno}: {name}" for name in names
                         if name.split(".")[0] == "tests" and name.split(".")[-1].startswith("test_"))
    assert found == [], "test modules imported by another module:\n" + "\n".join(found)


def test_sqlfluff_stands_in_for_every_column_macro_of_the_runner() -> None:
    """.sqlfluff reads each column macro of pipelines/modelsql.py through a stand-in: the two lists agree."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / ".sqlfluff")
    placeholders = config["sqlfluff:templater:placeholder"]
    named = re.fullmatch(r"\\b\(\?P<param_name>([\w|]+)\)\\\(.*", placeholders["param_regex"])
    assert named is not None, placeholders["param_regex"]
    assert sorted(named[1].split("|")) == sorted(MACROS)
    assert all(macro in placeholders for macro in MACROS)
