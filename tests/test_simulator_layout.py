"""The simulator's modules are composed, not circular: no import cycle, no module reaching into another's privates.

Read from the source with ``ast``: an import under ``TYPE_CHECKING`` counts like any other, since a module
that types another back is bound to it just the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import workspace_images.simulator

PACKAGE = "workspace_images.simulator"
ROOT = Path(workspace_images.simulator.__file__).parent
MODULES = {path.stem: ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in sorted(ROOT.glob("*.py"))}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imported(module: str, node: ast.ImportFrom) -> list[str]:
    """The simulator modules one ``from ... import ...`` names (a relative or an absolute import)."""
    if node.level == 1:
        base = node.module
    elif node.level == 0 and node.module is not None and (node.module + ".").startswith(PACKAGE + "."):
        base = node.module[len(PACKAGE) + 1:] or None
    else:
        return []
    if base is not None:
        return [base.split(".")[0]]
    return [alias.name for alias in node.names if alias.name in MODULES]


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES if name not in ("__init__", "__main__")}
    for module, imported in graph.items():
        for node in ast.walk(MODULES[module]):
            if isinstance(node, ast.ImportFrom):
                imported.update(name for name in _imported(module, node) if name in graph)
            elif isinstance(node, ast.Import):
                imported.update(alias.name[len(PACKAGE) + 1:].split(".")[0] for alias in node.names
                                     if alias.name.startswith(PACKAGE + ".") and alias.name != PACKAGE)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle as the modules on it, from the first in name order back to it (one per starting edge found)."""
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def walk(path: list[str]) -> None:
        for following in sorted(graph[path[-1]]):
            if following == path[0]:
                key = tuple(sorted(path))
                if key not in seen:
                    seen.add(key)
                    found.append([*path, following])
            elif following not in path and following > path[0]:
                walk([*path, following])

    for start in sorted(graph):
        walk([start])
    return found


def test_the_simulator_modules_import_each_other_without_a_cycle() -> None:
    assert [" -> ".join(cycle) for cycle in _cycles(_imports())] == []


def test_no_simulator_module_touches_a_private_name_of_another_object_or_module() -> None:
    reaches = []
    for module, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr) and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                reaches.append(f"{module}.py:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom) and _imported(module, node):
                reaches.extend(f"{module}.py:{node.lineno}: imports {alias.name} from {node.module}"
                               for alias in node.names if _private(alias.name))
    assert sorted(reaches) == []


def _inherited(tree: ast.Module) -> list[str]:
    """The ``self._name`` a module reads but never sets or defines: private state another module's class keeps."""
    read, kept = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls") \
                and _private(node.attr):
            (kept if isinstance(node.ctx, ast.Store) else read).add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            kept.add(node.name)
    return sorted(read - kept)


def test_no_simulator_module_reads_private_state_it_does_not_keep() -> None:
    """No class shares private state through inheritance: the identity side is composed like the Workspace side."""
    found = {module: names for module, tree in MODULES.items() if (names := _inherited(tree))}
    assert found == {}


def test_the_layout_checks_see_a_cycle_and_a_reach() -> None:
    """The checks themselves: a made-up cycle and a made-up reach are found, so an empty answer means none."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    tree = ast.parse("from .server import Simulator\nsim._lock\nself._lock\nsim.__class__\n")
    relative = tree.body[0]
    assert isinstance(relative, ast.ImportFrom)
    assert _imported("api", relative) == ["server"]
    assert [ast.unparse(node) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and _private(node.attr)
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")] == ["sim._lock"]
