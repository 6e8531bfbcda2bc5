"""The notebooks: release in sync, tests that pass on solutions and fail on stubs and wrong answers.

Generic over every assignment folder in solutions/ (see tests/notebook_harness.py for the cell
conventions). Wrong implementations live in tests/wrong_implementations/<id>.py as
``WRONG = {function_name: [(description, source), ...]}``.
"""
from __future__ import annotations

import importlib.util
import os
import re
import time
from pathlib import Path

import pytest

import notebook_harness as H
from test_contract import implemented

from coursetools import contract

IDS = H.assignment_ids()
WRONG_DIR = Path(__file__).resolve().parent / "wrong_implementations"

# The exercise contract (COURSE_CONTRACT.md, read by coursetools.contract): the functions each notebook must
# grade, less the rows a later issue adds (PENDING in tests/test_contract.py).
CONTRACT = {a: implemented(contract.section_id(a)) for a in IDS}


def _wrong_catalogue(assignment: str) -> dict:
    path = WRONG_DIR / f"{assignment}.py"
    if not path.is_file():
        return {}
    spec = importlib.util.spec_from_file_location(f"wrong_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WRONG


WRONG_CASES = [(a, name, desc, src) for a in IDS for name, cases in _wrong_catalogue(a).items()
               for desc, src in cases]


def _fmt(results) -> str:
    return "\n".join(f"  {r.grade_id}: {'pass' if r.passed else 'FAIL ' + r.error[:400]}" for r in results)


def test_there_are_assignments():
    assert IDS, "no assignment folders in solutions/"


# ----------------------------------------------------------------------------- (1) release in sync
def _comparable(nb) -> list:
    return [(c.cell_type, c.source, c.get("metadata", {}).get("nbgrader")) for c in nb.cells]


def test_release_is_in_sync(tmp_path):
    from coursetools.layout import release_notebooks

    release_notebooks(IDS, tmp_path)
    for assignment in IDS:
        committed = H.notebook_path(assignment, release=True)
        assert committed.is_file(), f"{committed} is missing: run python scripts/release.py"
        fresh = H.load(tmp_path / assignment / f"{assignment}.ipynb")
        assert _comparable(H.load(committed)) == _comparable(fresh), \
            f"notebooks/{assignment} is stale: run python scripts/release.py"
        for cell in H.load(committed).cells:
            assert not cell.get("outputs"), f"notebooks/{assignment} has outputs: release with outputs cleared"
    assert not (H.ROOT / "gradebook.db").exists(), "release left a gradebook.db in the repository"


def test_solutions_committed_without_outputs():
    for assignment in IDS:
        for cell in H.load(H.notebook_path(assignment)).cells:
            if cell.cell_type == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, \
                    f"solutions/{assignment} has outputs: clear them before committing"


# ----------------------------------------------------------------------------- (2) solutions pass, stubs fail
@pytest.mark.parametrize("assignment", IDS)
def test_solution_tests_pass(assignment):
    path = H.notebook_path(assignment)
    for name, results in H.run_all(path).items():
        assert results, f"{assignment}: {name} has no test cells"
        assert all(r.passed for r in results), f"{assignment}: solution of {name} fails its tests:\n{_fmt(results)}"


@pytest.mark.parametrize("assignment", IDS)
def test_release_tests_fail_on_stubs(assignment):
    path = H.notebook_path(assignment, release=True)
    nb = H.load(path)
    for name, ex in H.exercises(nb).items():
        assert "NotImplementedError" in ex.answer.source, f"{assignment}: the release answer of {name} is not a stub"
        assert "BEGIN SOLUTION" not in ex.answer.source
        for cell in ex.tests:
            assert "BEGIN HIDDEN TESTS" not in cell.source, f"{assignment}: hidden tests leak into the release"
        results = H.run_exercise(path, name)
        passing = [r.grade_id for r in results if r.passed]
        assert not passing, f"{assignment}: test cells {passing} pass on the unanswered stub of {name}"


# ----------------------------------------------------------------------------- (3) wrong answers fail
@pytest.mark.parametrize("assignment", IDS)
def test_wrong_catalogue_covers_every_exercise(assignment):
    catalogue = _wrong_catalogue(assignment)
    for name in H.exercises(H.load(H.notebook_path(assignment))):
        assert len(catalogue.get(name, [])) >= 3, \
            f"tests/wrong_implementations/{assignment}.py needs >= 3 wrong versions of {name}"


@pytest.mark.parametrize("assignment,name,description,source", WRONG_CASES,
                         ids=[f"{a}:{n}:{d[:40]}" for a, n, d, _ in WRONG_CASES])
def test_wrong_implementation_is_caught(assignment, name, description, source):
    results = H.run_all(H.notebook_path(assignment), replace={name: source})
    own = results[name]
    assert any(not r.passed for r in own), \
        f"{assignment}: the wrong {name} ({description}) passes every test cell:\n{_fmt(own)}"
    for other, rs in results.items():
        if other != name:
            assert all(r.passed for r in rs), f"{assignment}: {other} fails when {name} is wrong:\n{_fmt(rs)}"


# ----------------------------------------------------------------------------- (5) structure
@pytest.mark.parametrize("assignment", IDS)
def test_colab_badge_and_cell(assignment):
    from rlcourse.config import REPO_URL

    for path in (H.notebook_path(assignment), H.notebook_path(assignment, release=True)):
        nb = H.load(path)
        first = nb.cells[0]
        assert first.cell_type == "markdown" and "colab.research.google.com/assets/colab-badge.svg" in first.source
        slug = REPO_URL.split("github.com/")[1]
        assert f"colab.research.google.com/github/{slug}/blob/main/notebooks/{assignment}/{assignment}.ipynb" \
            in first.source, f"{path}: the Colab badge points elsewhere"
        setup = H.setup_cells(nb)
        assert setup and "google.colab" in setup[0].source, f"{path}: the first setup cell should be the Colab cell"
        m = re.search(r'^COURSE_REPO\s*=.*["\']([a-z+]+://[^"\']+)["\']', setup[0].source, re.MULTILINE)
        assert m and m.group(1) == REPO_URL, f"{path}: COURSE_REPO should be {REPO_URL}: run python scripts/release.py"
        for cell in setup:
            H.check_no_magics(cell.source, f"{path} setup cell")


def test_one_colab_cell_for_every_notebook():
    """The Colab cell is the same in every notebook (source and release)."""
    cells = {str(path): H.setup_cells(H.load(path))[0].source
             for a in IDS for path in (H.notebook_path(a), H.notebook_path(a, release=True))}
    assert len(set(cells.values())) == 1, "the Colab cells differ between notebooks: " + ", ".join(sorted(cells))


def test_release_stamps_the_repository_url():
    """scripts/release.py puts rlcourse.config.REPO_URL into every badge and Colab cell (a fork sets its own)."""
    import copy

    from coursetools import layout
    from rlcourse.config import REPO_URL

    nb = H.load(H.notebook_path(IDS[0]))
    as_json = {"cells": [{"cell_type": c.cell_type, "source": c.source} for c in nb.cells]}
    assert not layout.stamp_repo_url(copy.deepcopy(as_json), REPO_URL), "the committed notebook is not stamped"
    fork = copy.deepcopy(as_json)
    assert layout.stamp_repo_url(fork, "https://github.com/someone/fork")
    assert "colab.research.google.com/github/someone/fork/blob/main/notebooks/" in "".join(fork["cells"][0]["source"])
    colab = "".join(next(c for c in fork["cells"] if c["cell_type"] == "code")["source"])
    assert '"https://github.com/someone/fork")' in colab and REPO_URL not in colab
    assert not layout.stamp_repo_url(fork, "https://github.com/someone/fork"), "stamping twice changes nothing"
    with pytest.raises(ValueError):
        layout.stamp_repo_url(fork, "https://example.org/not-github")


@pytest.mark.parametrize("assignment", IDS)
def test_every_contract_function_has_an_answer_cell(assignment):
    nb = H.load(H.notebook_path(assignment))
    found = H.exercises(nb)
    for name in CONTRACT.get(assignment, []):
        assert name in found, f"{assignment}: no answer cell with grade_id {name!r}"
        meta = H.nbgrader_meta(found[name].answer)
        assert meta.get("solution") and not meta.get("grade")
        assert re.search(rf"^def {name}\(", found[name].answer.source, re.MULTILINE)
        for cell in found[name].tests:
            meta = H.nbgrader_meta(cell)
            assert meta.get("grade") and meta.get("locked") and meta.get("points", 0) > 0, \
                f"{assignment}: {meta.get('grade_id')} should be graded, locked and worth points"
            assert f'check_own_function({name}, "{name}")' in cell.source, \
                f"{assignment}: {meta.get('grade_id')} should start with check_own_function"


# ----------------------------------------------------------------------------- (4) runs end to end
@pytest.mark.slow
@pytest.mark.parametrize("assignment", IDS)
def test_solution_runs_end_to_end_reduced(assignment, tmp_path):
    import nbclient
    from traitlets.config import Config

    from coursetools.kernels import kernel_manager_config

    nb = H.load(H.notebook_path(assignment))
    env_before = os.environ.get("RLCOURSE_REDUCED")
    os.environ["RLCOURSE_REDUCED"] = "1"  # the kernel inherits it
    try:
        start = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", config=Config(kernel_manager_config()),
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
        elapsed = time.perf_counter() - start
    finally:
        if env_before is None:
            os.environ.pop("RLCOURSE_REDUCED", None)
        else:
            os.environ["RLCOURSE_REDUCED"] = env_before
    print(f"\n[wall time] {assignment} (reduced) = {elapsed:.1f} s")
