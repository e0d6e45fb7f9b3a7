"""The package's layers depend downward: no import cycle anywhere, and the model stays free of the
runtime glue.

Every module of hoi_edge, compress, targets and train is parsed with ``ast``; imports inside
functions count as much as those at the top (a cycle hidden in a function still ties two layers
together). Relative imports are resolved; ``from package import name`` points at the submodule
when ``name`` is one.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hoi_edge", "compress", "targets", "train")


def module_files(root: Path = REPO) -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imported_names(module: str, path: Path) -> set[str]:
    """Every module name ``module`` imports, anywhere in its body (absolute, relative resolved)."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
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
    (pkg / "__init__.py").write_text("")
    (pkg / "pipeline.py").write_text("def load():\n    from .runtime import artifact\n")
    (pkg / "runtime" / "__init__.py").write_text("")
    (pkg / "runtime" / "artifact.py").write_text("from hoi_edge.pipeline import load\n")
    for other in PACKAGES[1:]:
        (tmp_path / other).mkdir()
    assert cycles(import_graph(tmp_path)) == [["hoi_edge.pipeline", "hoi_edge.runtime.artifact"]]


def test_pipeline_and_runtime_do_not_import_each_other() -> None:
    graph, _ = project_graph()
    runtime = {m for m in graph if m.startswith("hoi_edge.runtime")}
    assert not graph["hoi_edge.pipeline"] & runtime
    assert not reachable(graph, "hoi_edge.pipeline") & runtime


def test_the_model_imports_neither_the_runtime_nor_the_numpy_glue() -> None:
    """Not even inside a function: nothing the model reaches imports the runtime, the NumPy glue or OpenCV."""
    graph, names = project_graph()
    below = reachable(graph, "hoi_edge.model.clip4hoi") | {"hoi_edge.model.clip4hoi"}
    glue = {"hoi_edge.pipeline", "hoi_edge.postprocess", "hoi_edge.preprocess", "hoi_edge.sources"}
    assert not {m for m in below if m.startswith("hoi_edge.runtime")}
    assert not below & glue
    assert not {m for m in below if any(n == "cv2" or n.startswith("cv2.") for n in names[m])}


@pytest.mark.parametrize("module", ["hoi_edge.targets_registry", "hoi_edge.runtime.manifest"])
def test_importing_stays_light(module: str) -> None:
    """The registry and the manifest, which the NumPy runtime reads, pull in no torch and no runtime."""
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
