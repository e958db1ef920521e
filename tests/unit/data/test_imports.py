"""`facessl.data` imports in one direction: no circle among its modules, counting imports
inside functions too (they run later, but a circle is a circle), and nothing imported from
the packages built on it."""

from __future__ import annotations

import ast
from pathlib import Path

import facessl.data

DATA = Path(facessl.data.__file__).parent
ABOVE = ("recognition", "album", "library", "serve", "space", "embed", "eval", "ssl", "cli")


def _imported(file: Path) -> set[str]:
    """Every module `file` imports anywhere in it (top level, functions, classes), as full
    dotted names; `from package import module` counts as that module."""
    package = "facessl.data"
    names = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    """data module -> the data modules it imports."""
    modules = {f"facessl.data.{f.stem}": f for f in DATA.glob("*.py") if f.stem != "__init__"}
    return {name: _imported(file) & modules.keys() - {name} for name, file in modules.items()}


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of `graph` (a -> b -> ... -> a), or None."""
    state: dict[str, str] = {}  # "open" while its imports are walked, then "done"

    def walk(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                return path[path.index(child):] + [child]
            if child not in state and (found := walk(child, path + [child])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := walk(start, [start])):
            return found
    return None


def test_the_circle_finder_finds_circles():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_among_the_data_modules():
    graph = _graph()
    # what it reads: imports at the top and inside functions (cache's detector imports)
    assert "facessl.data.images" in graph["facessl.data.photos"]
    assert "facessl.data.images" in graph["facessl.data.faces"]
    assert {"facessl.data.faces", "facessl.data.photos"} <= graph["facessl.data.cache"]
    assert "facessl.data.mtcnn" in graph["facessl.data.faces"]  # `from facessl.data import`
    assert _circle(graph) is None, " -> ".join(_circle(graph))
    assert graph["facessl.data.images"] == set()  # the decoder is the bottom


def test_data_imports_nothing_built_on_it():
    for file in DATA.glob("*.py"):
        upward = {m for m in _imported(file)
                  if m.startswith(tuple(f"facessl.{package}" for package in ABOVE))}
        assert not upward, (file.name, upward)
