"""Run one exercise of a course notebook outside Jupyter: setup cells, its answer cell, its test cells.

A notebook follows CONTRIBUTING.md: cells tagged ``setup`` (the Colab cell, imports and config);
per exercise an answer cell whose nbgrader ``grade_id`` is the function's name (``solution: true``)
and test cells whose ``grade_id`` starts with ``test_<name>``. Those cells hold plain Python (no
``%``/``!`` magics), so we run them with ``exec`` in a fresh namespace: no kernel, no IPython.
The Colab cell only installs when ``google.colab`` imports, so here it is a no-op.
"""
from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
RELEASE = ROOT / "notebooks"
_MAGIC = re.compile(r"^\s*[%!]", re.MULTILINE)


def notebook_path(assignment: str, release: bool = False) -> Path:
    return (RELEASE if release else SOLUTIONS) / assignment / f"{assignment}.ipynb"


def assignment_ids() -> list[str]:
    return sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file()) if SOLUTIONS.is_dir() else []


def load(path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def nbgrader_meta(cell) -> dict:
    return dict(cell.get("metadata", {}).get("nbgrader", {}) or {})


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def is_setup(cell) -> bool:
    return cell.cell_type == "code" and "setup" in tags(cell)


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
    """Answer cells (solution, grade_id = function name) with the test cells named after them."""
    found: dict[str, Exercise] = {}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            found[meta["grade_id"]] = Exercise(meta["grade_id"], cell)
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id", "")
        if cell.cell_type == "code" and meta.get("grade") and gid.startswith("test_"):
            owners = [n for n in found if gid == f"test_{n}" or gid.startswith(f"test_{n}_")]
            if owners:  # the longest name wins (test_value_loss_hidden belongs to value_loss)
                found[max(owners, key=len)].tests.append(cell)
    return found


def check_no_magics(source: str, where: str) -> None:
    if _MAGIC.search(source):
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

