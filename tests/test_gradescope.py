"""The container-ready worker (autograder/one.py) and the Gradescope export, run end to end.

The zip is built for the fixture course (tests/fixtures/course: ``sft_loss`` 1 visible + 2 hidden
points, ``sequence_log_prob`` 1 + 1), unpacked into a simulated ``/autograder`` tree (its root given
by GRADESCOPE_ROOT), and ``run_autograder`` grades a correct, a partial and a broken submission.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT
import gradescope

from demo_course import COURSE, SEQ_OK, SFT_OK, SFT_PARTIAL, notebook


@pytest.fixture(scope="module")
def autograder_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("gs")
    z = gradescope.build("demo", base / "autograder.zip", COURSE)
    with zipfile.ZipFile(z) as zf:
        names = zf.namelist()
        assert {"setup.sh", "run_autograder", "course/solutions/demo/demo.ipynb", "course/notebooks/demo/demo.ipynb",
                "course/autograder/one.py", "course/rlcourse/checks.py"} <= set(names)
        assert not any(n.startswith("course/tests/") for n in names)
        zf.extractall(base / "autograder" / "source")
    root = base / "autograder"
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    assert subprocess.run(["bash", "-n", str(root / "source" / "setup.sh")]).returncode == 0
    return root


def run_autograder(root: Path, text: str, name: str = "demo.ipynb") -> dict:
    sub = root / "submission"
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir()
    (sub / name).write_text(text)
    (root / "results" / "results.json").unlink(missing_ok=True)
    env = {"GRADESCOPE_ROOT": str(root), "RLCOURSE_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((root / "results" / "results.json").read_text())


def test_correct_submission(autograder_tree):
    res = run_autograder(autograder_tree, notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK}))
    assert res["score"] == 5.0
    assert {t["name"]: (t["score"], t["max_score"]) for t in res["tests"]} == \
        {"demo: sft_loss": (3.0, 3.0), "demo: sequence_log_prob": (2.0, 2.0)}


def test_partial_submission_gets_teaching_messages_not_hidden_tests(autograder_tree):
    res = run_autograder(autograder_tree, notebook({"sft_loss": SFT_PARTIAL, "sequence_log_prob": SEQ_OK}),
                         name="my homework.ipynb")
    tests = {t["name"]: t for t in res["tests"]}
    assert res["score"] == 3.0 and tests["demo: sft_loss"]["score"] == 1.0
    message = tests["demo: sft_loss"]["output"]
    assert "test_sft_loss_hidden" in message and "hidden test" in message.lower()
    hidden = (COURSE / "solutions" / "demo" / "demo.ipynb").read_text()
    assert "7.0 / 3" in hidden and "7.0 / 3" not in json.dumps(res)  # the hidden expectation stays hidden


def test_broken_submission(autograder_tree):
    res = run_autograder(autograder_tree, "{ this is not a notebook")
    assert res["score"] == 0
    assert all(t["score"] == 0 for t in res["tests"])
    assert "not a valid notebook" in res["output"] or "not a notebook" in res["output"]


def test_a_grader_that_fails_gives_no_score_not_a_zero(tmp_path):
    """Where the grading command failed, run_autograder wrote a score of 0: a grader fault counted as the
    student's. Now it writes no results.json (Gradescope shows a failed run, with no score, for the staff to
    rerun) and prints only a plain sentence; the reason stays in grading.log."""
    root, course = tmp_path / "autograder", tmp_path / "course"
    (root / "submission").mkdir(parents=True)
    (course / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "autograder" / "gradescope" / "run_autograder", root / "run_autograder")
    python = tmp_path / "python"  # Python, but the grading command fails, its log holding what only the staff may read
    python.write_text(f'#!/bin/sh\nif [ "$1" = -m ]; then echo "Traceback: HIDDEN-TEST-MARKER" >&2; exit 1; fi\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = {"GRADESCOPE_ROOT": str(root), "RLCOURSE_PYTHON": str(python), "RLCOURSE_COURSE": str(course),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not (root / "results" / "results.json").exists()
    assert "no points were taken" in proc.stdout and "HIDDEN-TEST-MARKER" not in proc.stdout + proc.stderr
    assert "HIDDEN-TEST-MARKER" in (root / "grading.log").read_text()
