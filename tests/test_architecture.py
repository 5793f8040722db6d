"""The import picture of mlframework/ and aot/, read from the source with `ast` (nothing is
imported): no import cycles, no forbidden edges, and aot's stages import only downward.

Every import counts, also those inside functions: a lazy import that closes a circle is
still a circle. An import names its module (`from a.b import c` is an edge to `a.b.c`
when that is a module, else to `a.b`); the packages above it are not edges.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("mlframework", "aot")

# aot's stages, bottom-up: each may import only the stages before it.
STAGES = ("aot.resources", "aot.program", "aot.passes", "aot.codegen", "aot.build",
          "aot.export", "aot.tools")

# (importer, imported, why the edge is forbidden); a name covers its submodules.
RULES = (
    ("mlframework.core", "mlframework.graph", "values and types come before the graphs over them"),
    ("mlframework.core", "mlframework.ml", "values and types know nothing of training"),
    ("mlframework.graph", "mlframework.ml", "the IR knows nothing of training"),
    ("mlframework.graph", "mlframework.backends", "a graph does not know who will run it"),
    ("aot.program", "mlframework.ml", "the compiler knows the IR and nothing above it"),
    ("aot.passes", "mlframework.ml", "the compiler knows the IR and nothing above it"),
    ("aot.codegen", "mlframework.ml", "the compiler knows the IR and nothing above it"),
    ("aot.build", "mlframework.ml", "the compiler knows the IR and nothing above it"),
    ("aot", "mlframework.backends", "the c backend is built on the compiler, not the reverse"),
    ("mlframework", "generators", "generated files are committed; nothing runs the generators"),
    ("aot", "generators", "generated files are committed; nothing runs the generators"),
)


def modules(root: Path = ROOT, packages=SCANNED) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under `packages`."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _targets(name: str, is_package: bool, node, known) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parts = name.split(".")[:len(name.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join(parts + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def import_graph(mods: dict[str, Path], external=("generators",)) -> dict[str, set[str]]:
    """Module -> the modules it imports (within `mods`, plus the `external` packages)."""
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(name, path.name == "__init__.py", node, known):
                if target.split(".")[0] in external:
                    deps.add(target)
                    continue
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in known and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _stage(name: str) -> int | None:
    return next((i for i, s in enumerate(STAGES) if _under(name, s)), None)


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every edge that breaks a rule or goes up aot's stages, as readable lines."""
    out = []
    for src, deps in sorted(graph.items()):
        for dst in sorted(deps):
            for importer, imported, why in RULES:
                if _under(src, importer) and _under(dst, imported):
                    out.append(f"{src} imports {dst}: {why}")
            a, b = _stage(src), _stage(dst)
            if a is not None and b is not None and b > a:
                out.append(f"{src} imports {dst}: stage {STAGES[a]} may import only "
                           f"{', '.join(STAGES[:a]) or 'nothing in aot'}")
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph(modules())


def test_every_package_is_scanned(graph):
    for stage in STAGES:
        assert any(_under(m, stage) for m in graph), f"no module found for stage {stage}"
    for package in ("mlframework.core", "mlframework.graph", "mlframework.ml",
                    "mlframework.backends"):
        assert sum(_under(m, package) for m in graph) >= 3, package
    assert sum(len(d) for d in graph.values()) > 200  # the scan sees the imports


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_no_forbidden_edges(graph):
    assert violations(graph) == []


def test_every_aot_module_belongs_to_a_stage(graph):
    loose = [m for m in graph if _under(m, "aot") and m != "aot" and _stage(m) is None]
    assert loose == [], f"aot modules outside the stages {STAGES}: {loose}"


def test_the_checks_can_fail(tmp_path):
    """A made-up tree with a circle, an edge up the stages and a forbidden edge."""
    files = {
        "aot/__init__.py": "",
        "aot/passes/__init__.py": "",
        "aot/passes/fusion.py": "from aot.codegen import emit\nimport mlframework.ml.train\n",
        "aot/codegen/__init__.py": "",
        "aot/codegen/emit.py": "def f():\n    from ..passes import fusion\n",
        "mlframework/__init__.py": "",
        "mlframework/ml/__init__.py": "",
        "mlframework/ml/train.py": "import generators.ops_table\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    g = import_graph(modules(tmp_path))
    assert cycles(g) == [["aot.codegen.emit", "aot.passes.fusion"]]
    found = violations(g)
    assert any("aot.passes.fusion imports aot.codegen.emit: stage" in v for v in found)
    assert any("aot.passes.fusion imports mlframework.ml.train" in v for v in found)
    assert any("mlframework.ml.train imports generators.ops_table" in v for v in found)
