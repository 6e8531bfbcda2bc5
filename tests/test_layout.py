"""coursetools/layout.py, the one place for the course's layout: assignment ids, which test cell belongs to
which exercise, the code mirrors of the notebooks (in sync), and the linter over all the code."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from autograder import notebooks as nbs
from coursetools import layout
from coursetools.layout import REPO_ROOT as ROOT

IDS = layout.assignment_ids()
LINTED = ["rlcourse", "coursetools", "autograder", "scripts", "benchmarks", "tests", layout.MIRROR_DIR, "nbgrader_config.py"]
RUN_RELEASE = "run .venv/bin/python scripts/release.py"


def write_notebook(path, cells: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def code(source: str, **nbgrader) -> dict:
    return {"cell_type": "code", "source": source, "metadata": {"nbgrader": nbgrader} if nbgrader else {},
            "outputs": [], "execution_count": None}


# ----------------------------------------------------------------------------- assignments and cells
def test_assignments_are_the_folders_that_hold_their_notebook(tmp_path):
    write_notebook(layout.source_notebook("01_b", tmp_path), [])
    write_notebook(layout.source_notebook("00_a", tmp_path), [])
    write_notebook(tmp_path / "solutions" / "02_c" / "other_name.ipynb", [])
    (tmp_path / layout.MIRROR_DIR).mkdir(parents=True)
    assert layout.assignment_ids(tmp_path) == ["00_a", "01_b"]
    assert layout.assignment_ids(tmp_path / "nowhere") == []
    assert IDS and "_code" not in IDS
    assert all(layout.release_notebook(a).is_file() for a in IDS), "every assignment has its release"


def test_a_test_cell_belongs_to_the_longest_exercise_it_is_named_after():
    names = ["value", "value_loss"]
    assert layout.exercise_of("test_value_loss_hidden", names) == "value_loss"
    assert layout.exercise_of("test_value_loss", names) == "value_loss"
    assert layout.exercise_of("test_value_2", names) == "value"
    assert layout.exercise_of("test_valueless", names) is None
    assert layout.exercise_of("test_something_else", names, previous="value") == "value"


def test_test_owners_follow_names_then_the_answer_cell_above():
    cells = [code("def value(): ...", solution=True, grade=False, grade_id="value"),
             code("", grade=True, grade_id="test_value_loss_hidden", points=1),
             code("def value_loss(): ...", solution=True, grade=False, grade_id="value_loss"),
             code("", grade=True, grade_id="test_misnamed", points=1)]
    assert layout.test_owners(cells) == {"test_value_loss_hidden": "value_loss", "test_misnamed": "value_loss"}
    with pytest.raises(ValueError, match="test_orphan belongs to no exercise"):
        layout.test_owners([code("", grade=True, grade_id="test_orphan")])


@pytest.mark.parametrize("assignment", IDS)
def test_grader_and_harness_see_the_same_exercises(assignment):
    import notebook_harness as H

    src = nbs.load_source(assignment, layout.source_notebook(assignment))
    harness = H.exercises(H.load(layout.source_notebook(assignment)))
    assert {n: e.tests for n, e in src.exercises.items()} == {n: e.test_ids for n, e in harness.items()}


def test_layout_imports_no_notebook_tool_chain():
    """benchmarks/run_notebook.py uses it where Jupyter is not installed: nbgrader and nbformat load only in the release step."""
    out = subprocess.run([sys.executable, "-c", "import sys, coursetools.layout; print(sorted(m for m in sys.modules "
                          "if m.split('.')[0] in ('nbgrader', 'nbformat', 'traitlets', 'torch')))"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def _top_level_modules(folder):
    """The names `import NAME` finds in folder: its .py files and its packages (a folder with __init__.py)."""
    return {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}


def test_the_test_import_path_has_no_clashing_names():
    """pyproject.toml's pytest pythonpath puts several folders on sys.path (the tests import their helpers by
    bare name, no sys.path.insert): a name in two of them, or one that hides the standard library or an
    installed package, would make an import depend on the folders' order."""
    import importlib.machinery
    import re

    line = re.search(r"^pythonpath = (\[.*\])$", (ROOT / "pyproject.toml").read_text(), re.M)
    folders = [ROOT / f for f in json.loads(line.group(1))]
    assert folders and all(f.is_dir() for f in folders), folders
    assert all(str(f) in sys.path for f in folders), "pytest put the pythonpath folders on sys.path"
    owners = {}
    for folder in dict.fromkeys([ROOT, *folders]):  # ROOT: on the path itself, and `python -m pytest` puts it first
        for name in _top_level_modules(folder):
            owners.setdefault(name, []).append(folder.relative_to(ROOT).as_posix() or ".")
    clashes = {name: where for name, where in owners.items() if len(where) > 1 and name != "conftest"}
    assert not clashes, f"one module name in two folders on the test path: {clashes}"
    ours = {str(ROOT), *map(str, folders), "", "."}
    elsewhere = [p for p in sys.path if p not in ours]
    shadowing = sorted(name for name in owners if name in sys.stdlib_module_names
                       or importlib.machinery.PathFinder.find_spec(name, elsewhere) is not None)
    assert not shadowing, f"these hide a standard or installed module: {shadowing}"


# ----------------------------------------------------------------------------- the code mirrors
def test_mirrors_are_in_sync_with_the_notebooks():
    problems = layout.stale_mirrors()
    assert not problems, "; ".join(problems) + f": {RUN_RELEASE}"


def test_a_changed_notebook_makes_its_mirror_stale(tmp_path):
    aid = IDS[0]
    for path in (layout.source_notebook(aid), layout.mirror_file(aid)):
        (tmp_path / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / path.relative_to(ROOT))
    assert layout.stale_mirrors(tmp_path) == []
    nb = json.loads(layout.source_notebook(aid, tmp_path).read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["source"] = "".join(cell["source"]) + "\nextra = 1\n"
    layout.source_notebook(aid, tmp_path).write_text(json.dumps(nb))
    assert layout.stale_mirrors(tmp_path) == [f"{layout.MIRROR_DIR}/{aid}.py is out of date with solutions/{aid}/{aid}.ipynb"]
    layout.write_mirror(aid, tmp_path)
    assert layout.stale_mirrors(tmp_path) == []
    (tmp_path / layout.MIRROR_DIR / "99_gone.py").write_text("")
    assert layout.stale_mirrors(tmp_path) == [f"{layout.MIRROR_DIR}/99_gone.py belongs to no assignment (delete it)"]


def test_mirror_marks_cells_and_comments_magics(tmp_path):
    write_notebook(layout.source_notebook("00_a", tmp_path), [
        {"cell_type": "markdown", "source": "# Title", "metadata": {}},
        code(["%matplotlib inline\n", "import math\n"]),
        code("def f(x):\n    !echo hi\n    return math.sqrt(x)\n", solution=True, grade=False, grade_id="f"),
    ])
    text = layout.mirror_text("00_a", tmp_path)
    assert "solutions/00_a/00_a.ipynb" in text.splitlines()[0]
    assert "# %% cell 1\n# (IPython) %matplotlib inline\nimport math\n" in text
    assert "# %% cell 2 f\ndef f(x):\n    # (IPython) !echo hi\n    return math.sqrt(x)\n" in text
    namespace: dict = {}
    exec(compile(text, "mirror", "exec"), namespace)  # noqa: S102 - our own test notebook
    assert namespace["f"](4.0) == 2.0


# ----------------------------------------------------------------------------- lint
def test_ruff_finds_nothing_in_the_package_the_grader_the_tests_and_the_notebooks():
    """`ruff check` with the rules of pyproject.toml ([tool.ruff]); the notebooks are read through their mirrors."""
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *LINTED], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, (f"ruff check {' '.join(LINTED)}:\n{out.stdout}{out.stderr}\n(a finding in "
                                 f"{layout.MIRROR_DIR}/<id>.py is in the notebook's cell named by the `# %% cell N` above it)")
