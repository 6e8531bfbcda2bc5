"""rlcourse's modules import each other one way: no import cycle, not even through an import inside a function
(issue 28: build -> pretrain -> build and pretrain -> model -> pretrain worked only through such imports).
rlcourse is the student's package: it holds what the notebooks and the grader's sandbox import, and nothing of
the course's tooling (coursetools/: the layout and release step, the workspace, the contract; issue 28)."""
from __future__ import annotations

import ast
import importlib
import sys

import pytest

from autograder.sandbox import STUDENT_MODULES
from coursetools import layout
from rlcourse.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "rlcourse"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
# modules of rlcourse that no notebook imports, and why they belong to the student's package all the same
ENTRY_POINTS = {"build": "`python -m rlcourse.build` rebuilds data/: the error a notebook shows when data is missing "
                         "names it (rlcourse.paths.REBUILD_HINT)"}
# the course's tooling and the notebook tool chain: the student's package imports none of them
TOOLING = {"coursetools", "autograder", "nbgrader", "nbformat", "nbclient", "nbconvert", "traitlets", "jupyter_client",
           "jupyter_server", "jupyterlab", "notebook"}


def _imported(node: ast.AST) -> set[str]:
    """The rlcourse modules one import statement names (``from .x import``, ``from . import x``,
    ``from rlcourse.x import``, ``from rlcourse import x``, ``import rlcourse.x``)."""
    if isinstance(node, ast.Import):
        return {a.name.split(".")[1] for a in node.names if a.name.startswith("rlcourse.")}
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level > 1 or (node.level == 0 and not (node.module or "").startswith("rlcourse")):
        return set()
    parts = (node.module or "").split(".")[1 if node.level == 0 else 0:]
    if parts and parts[0]:
        return {parts[0]}
    return {a.name for a in node.names if a.name in MODULES}  # from . import x / from rlcourse import x


def imports(module: str, top_level_only: bool = False) -> set[str]:
    """The rlcourse modules ``module`` imports: anywhere in the file, or only where it runs at import time."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found, todo = set(), list(tree.body)
    while todo:
        node = todo.pop()
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        found |= _imported(node)
        todo.extend(ast.iter_child_nodes(node))
    return found - {module}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles_at_any_depth():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]


def test_the_import_reader_sees_every_spelling_and_imports_inside_functions(tmp_path, monkeypatch):
    source = ("from __future__ import annotations\nimport os\nimport rlcourse.paths\nfrom . import cafe, problems\n"
              "from .model import get_device\nfrom rlcourse.config import reduced_mode\nfrom rlcourse import checks\n"
              "def f():\n    from .pretrain import warm_start\n    from . import build\n")
    (tmp_path / "probe.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert imports("probe") == {"paths", "cafe", "problems", "model", "config", "checks", "pretrain", "build"}
    assert imports("probe", top_level_only=True) == {"paths", "cafe", "problems", "model", "config", "checks"}


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module):
    importlib.import_module(f"rlcourse.{module}")


def test_the_package_import_graph_has_no_cycle():
    graph = {m: imports(m) for m in MODULES}
    assert {"pretrain", "model"} <= graph["build"] and "pretrain" in graph["model"], graph  # the reader sees them
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in rlcourse: " + " -> ".join(cycle)


def test_the_sandbox_copy_of_the_package_imports_only_what_it_holds():
    """The grader's sandbox gets a copy of a few modules (autograder/sandbox.py, STUDENT_MODULES): what they
    import when they load must be among them (rlcourse.model imports rlcourse.pretrain only to make a warm copy)."""
    held = set(STUDENT_MODULES) - {"__init__"}
    for module in sorted(held):
        assert imports(module, top_level_only=True) <= held, module


def _top_level_names(tree: ast.AST) -> set[str]:
    """The top-level packages a module imports anywhere (absolute imports only)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_student_package_imports_no_course_tooling():
    """Not even inside a function: the notebooks, Colab and the grader's sandbox get rlcourse without coursetools
    and without nbgrader (the release step and the workspace live in coursetools/)."""
    found = {m: sorted(_top_level_names(ast.parse((PACKAGE / f"{m}.py").read_text())) & TOOLING) for m in MODULES}
    assert not {m: names for m, names in found.items() if names}, found


def notebook_modules() -> set[str]:
    """The rlcourse modules the notebooks import (read from their code mirrors, solutions/_code/<id>.py)."""
    found = set()
    for aid in layout.assignment_ids():
        for node in ast.walk(ast.parse(layout.mirror_file(aid).read_text())):
            found |= _imported(node)
    return found


def test_the_student_package_holds_only_what_a_notebook_or_the_sandbox_imports():
    """Every module of rlcourse is imported by a notebook or by the sandbox's copy, directly or through another
    module (even inside a function), or is one of ENTRY_POINTS: tooling goes to coursetools/."""
    assert {"checks", "model", "rollout"} <= notebook_modules()  # the reader sees the notebooks' imports
    reached, todo = set(), list(notebook_modules() | set(STUDENT_MODULES) - {"__init__"})
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(imports(module))
    unused = sorted(set(MODULES) - reached - set(ENTRY_POINTS))
    assert not unused, f"rlcourse modules no notebook and no sandbox module imports (move them to coursetools/): {unused}"
    assert set(ENTRY_POINTS) <= set(MODULES) - reached, "an entry point a notebook imports needs no entry here"
