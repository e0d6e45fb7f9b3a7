"""The package's layers depend downward: no import cycle anywhere, the model stays free of the
NumPy pipeline, OpenCV and every runtime, the pipeline free of the runtime and torch, and the
foundations (``hoi_edge.core``) free of everything else.

Every module of hoi_edge, compress, targets, train and benchmarks is parsed with ``ast``; imports
inside functions count as much as those at the top (a cycle hidden in a function still ties two
layers together). Only ``if TYPE_CHECKING:`` blocks are skipped: they never run, and naming a type
of a higher layer in an annotation ties nothing together. Relative imports are resolved;
``from package import name`` points at the submodule when ``name`` is one; a benchmark script's
``import common`` is its sibling ``benchmarks/common.py``.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hoi_edge", "compress", "targets", "train", "benchmarks")
SCRIPTS = "benchmarks"      # scripts that import their siblings by bare name (sys.path holds their folder)


def module_files(root: Path = REPO) -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (its ``else`` branch still counts)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def imported_names(module: str, path: Path) -> set[str]:
    """Every module name ``module`` imports, anywhere in its body (absolute, relative resolved)."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    siblings = {p.stem for p in path.parent.glob("*.py")} if module.startswith(SCRIPTS + ".") else set()
    for node in _nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "") in siblings:
            node = ast.ImportFrom(module=f"{SCRIPTS}.{node.module}", names=node.names, level=0)
        elif isinstance(node, ast.Import) and siblings:
            names.update(f"{SCRIPTS}.{a.name}" for a in node.names if a.name in siblings)
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """Project module -> the project modules it imports."""
    files = module_files(root)
    return {m: {n for n in imported_names(m, p) if n in files and n != m} for m, p in files.items()}


@functools.lru_cache(maxsize=1)
def project_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(project import graph, every name each module imports, third-party included), parsed once."""
    files = module_files()
    return import_graph(), {m: imported_names(m, p) for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_package_has_no_import_cycle() -> None:
    graph, _ = project_graph()
    assert len(graph) > 50, "the parser found too few modules to mean anything"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    """The check can fail: a relative import inside a function closes a loop."""
    pkg = tmp_path / "hoi_edge"
    (pkg / "runtime").mkdir(parents=True)
    (pkg / "pipeline").mkdir()
    for init in (pkg, pkg / "runtime", pkg / "pipeline"):
        (init / "__init__.py").write_text("")
    (pkg / "pipeline" / "detector.py").write_text("def load():\n    from ..runtime import artifact\n")
    (pkg / "runtime" / "artifact.py").write_text("from hoi_edge.pipeline.detector import load\n")
    for other in PACKAGES[1:]:
        (tmp_path / other).mkdir()
    assert cycles(import_graph(tmp_path)) == [["hoi_edge.pipeline.detector", "hoi_edge.runtime.artifact"]]


def test_a_type_checking_import_ties_nothing_but_a_sibling_script_import_does(tmp_path: Path) -> None:
    """The two parsing rules, each shown to change the graph."""
    pkg = tmp_path / "hoi_edge"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hoi_edge.high import X\n"
                                "else:\n    import hoi_edge.other\n")
    (pkg / "high.py").write_text("import hoi_edge.low\n")
    (pkg / "other.py").write_text("")
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "a.py").write_text("from b import f\n")
    (bench / "b.py").write_text("def f():\n    import a\n")
    for other in PACKAGES[1:-1]:
        (tmp_path / other).mkdir()
    graph = import_graph(tmp_path)
    assert graph["hoi_edge.low"] == {"hoi_edge.other"} and graph["hoi_edge.high"] == {"hoi_edge.low"}
    assert cycles(graph) == [["benchmarks.a", "benchmarks.b"]]


def _wing(graph: dict[str, set[str]], prefix: str) -> set[str]:
    return {m for m in graph if m == prefix or m.startswith(prefix + ".")}


def test_the_pipeline_reaches_neither_the_runtime_nor_the_loader_nor_torch() -> None:
    """The NumPy pipeline runs an artifact on a device without PyTorch; the loader above it opens files."""
    graph, names = project_graph()
    pipeline = _wing(graph, "hoi_edge.pipeline")
    assert len(pipeline) >= 8
    below = set().union(*(reachable(graph, m) for m in pipeline)) | pipeline
    assert not below & (_wing(graph, "hoi_edge.runtime") | {"hoi_edge.loader"})
    assert not {m for m in below if any(n == "torch" or n.startswith("torch.") for n in names[m])}


def test_the_model_reaches_neither_the_runtime_nor_the_pipeline_nor_opencv() -> None:
    """Not even inside a function: nothing any module of hoi_edge.model reaches imports the runtime, the
    NumPy pipeline, the input sources or OpenCV."""
    graph, names = project_graph()
    model = _wing(graph, "hoi_edge.model")
    assert len(model) >= 10
    below = set().union(*(reachable(graph, m) for m in model)) | model
    forbidden = _wing(graph, "hoi_edge.runtime") | _wing(graph, "hoi_edge.pipeline") | {"hoi_edge.data.sources",
                                                                                          "hoi_edge.loader"}
    assert not below & forbidden
    assert not {m for m in below if any(n == "cv2" or n.startswith("cv2.") for n in names[m])}


def test_the_foundations_import_nothing_else_of_the_project() -> None:
    graph, _ = project_graph()
    core = _wing(graph, "hoi_edge.core")
    assert len(core) >= 10
    assert set().union(*(graph[m] for m in core)) <= core


@pytest.mark.parametrize("module", ["hoi_edge.targets_registry", "hoi_edge.runtime.manifest", "hoi_edge.loader",
                                    "hoi_edge.pipeline.detector"])
def test_importing_stays_light(module: str) -> None:
    """The registry, the manifest and the pipeline, which the NumPy runtime reads, and the loader, which the CLI
    imports, pull in no torch and no runtime."""
    heavy = ("torch", "openvino", "onnxruntime", "executorch")
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_benchmarks_do_not_import_from_tests() -> None:
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        names = imported_names(path.stem, path)
        assert not any(n == "conftest" or n.startswith("tests") for n in names), path.name
        assert '"tests"' not in text, f"{path.name} reaches into tests/"


def test_no_benchmark_script_imports_another():
    """A benchmark script (``bench_*.py``) imports the shared modules beside it (``common``, ``stage_facts``),
    never another script: running or changing one benchmark must not run or break another's top level."""
    assert script_imports(project_graph()[0]) == {}


def script_imports(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Benchmark script -> the other benchmark scripts it imports (only those that do)."""
    scripts = {m for m in graph if m.startswith(SCRIPTS + ".bench_")}
    return {m: sorted(graph[m] & scripts) for m in scripts if graph[m] & scripts}


def test_a_benchmark_importing_another_is_found():
    graph = {"benchmarks.bench_a": {"benchmarks.common", "benchmarks.bench_b"}, "benchmarks.bench_b": set(),
             "benchmarks.common": set()}
    assert script_imports(graph) == {"benchmarks.bench_a": ["benchmarks.bench_b"]}
