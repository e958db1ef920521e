"""The package's imports point down the layers docs/layout.md draws, and never in a circle:
every `import` counts, those inside functions too (a lazy import is still an arrow)."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

SRC = ROOT / "src" / "facessl"


def _layers() -> list[set[str]]:
    """docs/layout.md's layer drawing, top line first: each line names the rooms on it."""
    text = (ROOT / "docs" / "layout.md").read_text()
    drawing = re.search(r"## Layers.*?```text\n(.*?)```", text, re.S).group(1)
    return [set(line.split()) for line in drawing.strip().splitlines()]


def _room(module: str) -> str:
    """facessl.space.search -> space; facessl.errors -> errors; facessl -> facessl."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports() -> dict[str, set[str]]:
    """facessl module -> the facessl modules it imports (a name imported from a package is
    the submodule when one exists)."""
    modules = {".".join(("facessl", *p.relative_to(SRC).with_suffix("").parts))
               .removesuffix(".__init__"): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("facessl")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("facessl"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
        graph[name] = found - {name}
    return graph


def test_every_import_points_down_the_layers():
    layers = _layers()
    level = {room: i for i, rooms in enumerate(layers) for room in rooms}
    rooms = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if p.suffix == ".py" or (p / "__init__.py").is_file()}
    rooms -= {"__init__", "__main__"}
    assert rooms <= set(level), f"docs/layout.md's layers lack {sorted(rooms - set(level))}"
    up = []
    for module, imported in _imports().items():
        if _room(module) in ("facessl", "__main__"):
            continue
        for target in imported:
            if _room(target) != "facessl" and level[_room(target)] < level[_room(module)]:
                up.append(f"{module} -> {target}")
    assert up == [], "imports that point up the layers:\n" + "\n".join(sorted(up))


def test_no_module_imports_itself_in_a_circle():
    graph, state, circles = _imports(), {}, []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == [], "import circles:\n" + "\n".join(circles)


def test_the_checks_see_an_arrow_up_and_a_circle(tmp_path, monkeypatch):
    """The walk is not blind: a module of data/ importing recognition is caught as an arrow
    up, and two modules importing each other as a circle."""
    fake = tmp_path / "src" / "facessl"
    for path in SRC.rglob("*.py"):
        (fake / path.relative_to(SRC)).parent.mkdir(parents=True, exist_ok=True)
        (fake / path.relative_to(SRC)).write_text(path.read_text())
    (fake / "data" / "zz_up.py").write_text("from facessl.recognition import classifier\n")
    (fake / "data" / "zz_a.py").write_text("def f():\n    from facessl.data import zz_b\n")
    (fake / "data" / "zz_b.py").write_text("from facessl.data import zz_a\n")
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    graph = _imports()
    assert "facessl.recognition.classifier" in graph["facessl.data.zz_up"]
    assert graph["facessl.data.zz_a"] == {"facessl.data.zz_b"}
    for check in (test_every_import_points_down_the_layers,
                  test_no_module_imports_itself_in_a_circle):
        try:
            check()
        except AssertionError as exc:
            assert "zz_" in str(exc)
        else:
            raise AssertionError(f"{check.__name__} passed a package with a fault in it")
