"""The house shows its features: commands grouped by feature, no import circles, small files."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "moebench"
MAX_LINES = 300  # the issue asks for no file over ~300 lines


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every moebench module ``name`` imports, at module level or inside a function, type-only
    imports included (a circle a reader has to follow is a circle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                found.add(full if full in modules else base)
    return {m for m in found if m in modules and m != name}


def test_no_import_circles():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    # Depth-first search for a back edge; report the circle it closes.
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (circle := visit(n)):
                return circle
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            circle = visit(m)
            assert circle is None, " -> ".join(circle)


def test_the_detector_finds_a_circle(tmp_path, monkeypatch):
    """The check above can fail: two modules importing each other are a circle."""
    pkg = tmp_path / "moebench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from moebench.b import g\n")
    (pkg / "b.py").write_text("from moebench.a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    modules = _modules()
    assert _imports("moebench.a", modules["moebench.a"], modules) == {"moebench.b"}
    assert _imports("moebench.b", modules["moebench.b"], modules) == {"moebench.a"}


def test_commands_are_grouped_by_feature():
    commands = PACKAGE / "commands"
    loose = sorted(p.name for p in commands.glob("*.py") if p.name != "__init__.py")
    assert loose == []
    features = sorted(p.name for p in commands.iterdir() if (p / "__init__.py").is_file())
    assert features == ["compare", "estimate", "inspect", "mix", "shared", "sweep",
                        "validation"]


def test_no_file_is_long():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
