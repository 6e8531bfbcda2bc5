"""Run one exercise of a course notebook outside Jupyter: setup cells, its answer cell, its test cells.

A notebook follows CONTRIBUTING.md: cells tagged ``setup`` (the Colab cell, imports and config);
per exercise an answer cell whose nbgrader ``grade_id`` is the function's name (``solution: true``)
and test cells whose ``grade_id`` starts with ``test_<name>`` (the rules are coursetools/layout.py's, as the
grader's are). Those cells hold plain Python (no ``%``/``!`` magics), so we run them with ``exec`` in a
fresh namespace: no kernel, no IPython.
The Colab cell only installs when ``google.colab`` imports, so here it is a no-op.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from coursetools.layout import REPO_ROOT as ROOT, assignment_ids, is_answer_cell, is_setup_cell as is_setup  # noqa: F401 - H.ROOT, H.assignment_ids
from coursetools.layout import MAGIC, nbgrader_meta, release_notebook, source_notebook, test_owners


def notebook_path(assignment: str, release: bool = False) -> Path:
    return (release_notebook if release else source_notebook)(assignment)


def load(path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


@dataclass
class Exercise:
    name: str
    answer: object  # the answer cell
    tests: list = field(default_factory=list)  # its test cells, in notebook order

    @property
    def test_ids(self) -> list[str]:
        return [nbgrader_meta(c)["grade_id"] for c in self.tests]


def setup_cells(nb) -> list:
    return [c for c in nb.cells if is_setup(c)]


def exercises(nb) -> dict[str, Exercise]:
    """Answer cells (solution, grade_id = function name) with their test cells (``layout.test_owners``)."""
    found = {nbgrader_meta(c)["grade_id"]: Exercise(nbgrader_meta(c)["grade_id"], c) for c in nb.cells if is_answer_cell(c)}
    owners = test_owners(nb.cells)
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in owners and nbgrader_meta(cell).get("grade"):
            found[owners[gid]].tests.append(cell)
    return found


def check_no_magics(source: str, where: str) -> None:
    if MAGIC.search(source):
        raise ValueError(f"{where} uses an IPython magic or shell escape; harness cells must be plain Python")


def run_source(source: str, namespace: dict, where: str) -> None:
    check_no_magics(source, where)
    exec(compile(source, f"<{where}>", "exec"), namespace)  # noqa: S102 - running our own notebooks


@dataclass
class CellResult:
    grade_id: str
    passed: bool
    error: str = ""


_SETUP_CACHE: dict[tuple[str, float], dict] = {}


def setup_namespace(path, nb=None) -> dict:
    """A namespace after the setup cells; computed once per notebook file, then copied (shallow)."""
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _SETUP_CACHE:
        nb = nb or load(path)
        ns: dict = {"__name__": "__main__"}
        for i, cell in enumerate(setup_cells(nb)):
            run_source(cell.source, ns, f"setup cell {i}")
        _SETUP_CACHE[key] = ns
    return dict(_SETUP_CACHE[key])


def run_exercise(path, name: str, answer_source: str | None = None, overrides: dict | None = None) -> list[CellResult]:
    """Setup cells + the answer cell of ``name`` (or ``answer_source``) + its test cells.

    ``overrides``: names set in the namespace after the setup cells (tests/test_answer_key.py replaces
    ``check_own_function`` there). Returns one result per test cell. A failing answer cell fails every test cell.
    """
    nb = load(path)
    ex = exercises(nb).get(name)
    if ex is None:
        raise KeyError(f"{path} has no answer cell for {name!r}")
    ns = setup_namespace(path, nb)
    ns.update(overrides or {})
    try:
        run_source(ex.answer.source if answer_source is None else answer_source, ns, f"answer {name}")
    except Exception:  # noqa: BLE001 - a broken answer fails its tests
        err = traceback.format_exc(limit=3)
        return [CellResult(gid, False, "answer cell failed: " + err) for gid in ex.test_ids]
    results = []
    for cell in ex.tests:
        gid = nbgrader_meta(cell)["grade_id"]
        cell_ns = dict(ns)  # each test cell sees the setup + answer, not the previous test's leftovers
        try:
            run_source(cell.source, cell_ns, gid)
            results.append(CellResult(gid, True))
        except Exception as exc:  # noqa: BLE001 - AssertionError or a crash both fail the cell
            results.append(CellResult(gid, False, f"{type(exc).__name__}: {exc}"))
    return results


def run_all(path, replace: dict[str, str] | None = None) -> dict[str, list[CellResult]]:
    """Every exercise of a notebook, each with its answer optionally replaced."""
    replace = replace or {}
    return {name: run_exercise(path, name, replace.get(name)) for name in exercises(load(path))}

