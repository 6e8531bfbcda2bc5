"""The gradebooks of a grading run: nbgrader's record of the course and of every student's scores.

The template gradebook (``prepare_gradebooks``) is made by ``nbgrader generate_assignment`` in a throwaway
copy of the course (never the repository), cached under the output folder per version of the source
notebooks; each notebook's workspace grades against a copy of it. The instructor's gradebook (``--db``) is
made from it or checked against the course, and only the grading process writes to it (``record``), one
outcome at a time, as each notebook finishes.
"""
from __future__ import annotations

import functools
import hashlib
import shutil
from pathlib import Path

from coursetools import layout

from . import notebooks as nbs
from .pool import GRADER_ERROR, Outcome


def _nbgrader_course(course_root: Path, work: Path) -> Path:
    """A throwaway nbgrader course with the source notebooks (never touches the repository)."""
    shutil.copytree(course_root / layout.SOURCE_DIR, work / "source",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return work


def generate(course_root: Path, work: Path, db_url: str) -> Path:
    """nbgrader generate_assignment for every assignment: fills the gradebook at ``db_url``."""
    from nbgrader.apps import NbGraderAPI

    from .worker import nbgrader_config

    root = work if (work / "source").exists() else _nbgrader_course(course_root, work)
    api = NbGraderAPI(config=nbgrader_config(root, db_url))
    for assignment in layout.assignment_ids(course_root):
        res = api.generate_assignment(assignment)
        if not res.get("success"):
            raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{res.get('error')}")
    return root


@functools.cache
def course_id() -> str:
    """The gradebook's course id (``CourseDirectory.course_id`` in autograder/nbgrader_config.py)."""
    return layout.load_nbgrader_config().CourseDirectory.course_id


def cell_timeout_default() -> int:
    """Seconds per test cell unless ``--cell-timeout`` says otherwise (``Execute.timeout`` in the config)."""
    return int(layout.load_nbgrader_config().Execute.timeout)


def gradebook_matches(db_url: str, course) -> bool:
    """Whether the gradebook at ``db_url`` already has every notebook and grade cell of the course."""
    from nbgrader.api import Gradebook, MissingEntry

    try:
        with Gradebook(db_url, course_id()) as gb:
            for a, sources in course.items():
                for src in sources:
                    nb = gb.find_notebook(src.name, a)
                    have = {c.name: float(c.max_score) for c in nb.grade_cells}
                    want = {nbs.nbmeta(c)["grade_id"]: float(nbs.nbmeta(c).get("points", 0))
                            for c in src.nb.cells if nbs.nbmeta(c).get("grade")}
                    if have != want:
                        return False
    except MissingEntry:
        return False
    return True


def prepare_gradebooks(course_root: Path, course, db_url: str, state: Path, tmp: Path) -> Path:
    """The template gradebook (cached per course version) and the instructor's, made or checked."""
    fingerprint = hashlib.sha256(b"".join(s.path.read_bytes() for srcs in course.values() for s in srcs)).hexdigest()
    template = state / f"template-{fingerprint[:16]}" / "gradebook.db"
    if not template.exists():
        for old in state.glob("template-*"):
            shutil.rmtree(old, ignore_errors=True)
        work = tmp / "template"
        work.mkdir(parents=True, exist_ok=True)
        generate(course_root, work, f"sqlite:///{work / 'gradebook.db'}")
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "gradebook.db", template)
    db_file = Path(db_url[len("sqlite:///"):]) if db_url.startswith("sqlite:///") else None
    if db_file is not None and not db_file.exists():
        shutil.copy(template, db_file)
    elif not gradebook_matches(db_url, course):
        work = tmp / "instructor"
        work.mkdir(parents=True, exist_ok=True)
        generate(course_root, work, db_url)
    return template



def record(db_url: str, course_id: str, outcome: Outcome, src: nbs.SourceNotebook) -> None:
    """Write one outcome into the instructor's gradebook (only the grading process does this)."""
    import warnings

    from nbgrader.api import Gradebook

    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", category=Warning, message=".*not in session.*")
    failed = GRADER_ERROR in outcome.tags  # not graded: no score, and formgrader lists it as needing a grade
    with Gradebook(db_url, course_id) as gb:
        gb.update_or_create_student(outcome.student)
        gb.update_or_create_submission(outcome.assignment, outcome.student)
        nbsub = gb.find_submission_notebook(outcome.notebook, outcome.assignment, outcome.student)
        remaining = dict(outcome.points)
        for grade in nbsub.grades:
            owner = src.test_owner.get(grade.name)
            if owner is None:
                continue
            if failed:
                grade.auto_score, grade.needs_manual_grade = None, True
                continue
            give = min(remaining.get(owner, 0.0), float(grade.max_score or 0))
            remaining[owner] = remaining.get(owner, 0.0) - give
            grade.auto_score = give
            grade.needs_manual_grade = False
        gb.db.commit()

