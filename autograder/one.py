"""Grade one submission: ``python -m autograder.one SUBMISSION --results results.json [--gradescope]``.

The container-ready worker: SUBMISSION is one notebook or a folder of one student's notebooks; the
result is one JSON file. It is the class command (autograder/grade.py) run on a class of one, with
the same sandbox and the same checks, so any engine that runs one command per submission
(Gradescope, PrairieLearn's external grader, Kubernetes Jobs, a Slurm array) can fan it out.

``results.json``::

    {"student": ..., "total": 12.0, "max": 15.0, "status": "ok",
     "notebooks": [{"assignment", "notebook", "points": {exercise: points}, "max_points": {...},
                    "total", "max", "status", "notes": [...], "feedback": "path/to/feedback.html",
                    "messages": {exercise: "what the failing tests said"}}]}

With ``--gradescope`` it writes Gradescope's schema instead: one test per exercise with its score,
``max_score`` and the failing tests' teaching messages (never a hidden test's code or data).

Only student-safe text goes into either file: the notes, never the grader's own diagnostics (they are in
``grades.csv``'s ``grader_notes`` under ``--out``). Where the grader failed on a notebook (status
``grader_error``), its ``total`` is null, the command exits with status 2, and with ``--gradescope`` it writes no
results.json at all, so that Gradescope shows the run as failed, with no score, for the course staff to rerun.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from . import limits
from . import notebooks as nbs
from .errors import GradingError
from .grade import REPO, grade
from .pool import GRADER_ERROR, GRADER_ERROR_NOTE, GradingOptions
from .publish import status_of


def failing_messages(autograded: str | None, src: nbs.SourceNotebook) -> dict[str, str]:
    """exercise -> the error lines of its failing test cells (hidden ones carry only their teaching message)."""
    if not autograded:
        return {}
    messages: dict[str, list[str]] = {}
    for cell in json.loads(autograded).get("cells", []):
        gid = nbs.nbmeta(cell).get("grade_id")
        owner = src.test_owner.get(gid) if isinstance(gid, str) else None
        if owner is None:
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                messages.setdefault(owner, []).append(f"{gid}: {out.get('ename')}: {out.get('evalue')}"[:1500])
    return {k: "\n".join(v) for k, v in messages.items()}


def grade_one(submission: Path, out: Path, course_root: Path = REPO, student: str = "student",
              no_sandbox: bool = False, workers: int = limits.WORKERS, call_seconds: float = limits.CALL_SECONDS) -> dict:
    submission, out = Path(submission).resolve(), Path(out).resolve()
    if not submission.exists():
        raise GradingError(f"{submission}: no such file or folder")
    with tempfile.TemporaryDirectory(prefix="rlgrade-one-") as tmp:
        folder = Path(tmp) / "class" / student
        folder.mkdir(parents=True)
        files = [submission] if submission.is_file() else sorted(p for p in submission.rglob("*.ipynb")
                                                                  if ".ipynb_checkpoints" not in p.parts)
        for i, f in enumerate(files):
            shutil.copy(f, folder / (f.name if len(files) == len({g.name for g in files}) else f"{i}_{f.name}"))
        rows = grade(folder.parent, out, course_root, db_url=f"sqlite:///{out / 'gradebook.db'}",
                     nbgrader_dir=out / "nbgrader", fresh=True, quiet=True,
                     options=GradingOptions(workers=workers, call_seconds=call_seconds, no_sandbox=no_sandbox))
    sources = {(a, s.name): s for a, srcs in nbs.load_course(course_root).items() for s in srcs}
    saved = {}
    for f in (out / ".grading" / "results").glob("*.json"):
        r = json.loads(f.read_text())
        saved[(r["student"], r["assignment"], r["notebook"])] = r
    notebooks = []
    for row in rows:
        key = (row["student"], row["assignment"], row["notebook"])
        r = saved.get(key, {})
        src = sources[(row["assignment"], row["notebook"])]
        notebooks.append({
            "assignment": row["assignment"], "notebook": row["notebook"],
            "points": r.get("points", {}), "max_points": r.get("max_points", {}),
            "total": float(row["total"]) if row["total"] else None, "max": float(row["max"]),
            "status": row["status"], "notes": r.get("notes", []),  # never grader_notes: the student may see these
            "feedback": str(out / "feedback" / row["student"] / row["assignment"] / f"{row['notebook']}.html"),
            "messages": failing_messages(r.get("autograded"), src)})
    tags = set()
    for nb in notebooks:
        tags |= set(nb["status"].split("+"))
    graded = all(n["total"] is not None for n in notebooks)
    return {"student": student, "total": sum(n["total"] for n in notebooks) if graded else None,
            "max": sum(n["max"] for n in notebooks), "status": status_of(tags), "notebooks": notebooks}


def grader_failed(result: dict) -> bool:
    """Whether the grader failed on a notebook of this result (no score: it is to be regraded)."""
    return any(GRADER_ERROR in nb["status"].split("+") for nb in result["notebooks"])


def gradescope(result: dict) -> dict:
    """Gradescope's results.json: one test per exercise (not for a result the grader failed on: grader_failed)."""
    if grader_failed(result):
        raise ValueError("the grader failed on this submission: it has no score to report")
    tests = []
    for nb in result["notebooks"]:
        for name, mx in nb["max_points"].items():
            score = nb["points"].get(name, 0.0)
            message = nb["messages"].get(name, "")
            if not message and score < mx:
                message = "; ".join(nb["notes"]) or "not graded: see the notebook's status"
            tests.append({"name": f"{nb['assignment']}: {name}", "score": score, "max_score": mx,
                          "output": message or "all tests passed", "visibility": "visible"})
    lines = [f"{nb['assignment']}: {nb['total']:g} / {nb['max']:g} ({nb['status']})"
             + ("\n  " + "\n  ".join(nb["notes"]) if nb["notes"] else "") for nb in result["notebooks"]]
    return {"score": result["total"], "output": "\n".join(lines) or "no notebook of this course was found",
            "tests": tests}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m autograder.one", description=__doc__.split("\n\n")[0])
    p.add_argument("submission", type=Path, help="one notebook, or a folder of one student's notebooks")
    p.add_argument("--results", type=Path, default=Path("results.json"), help="where the JSON goes")
    p.add_argument("--out", type=Path, default=None, help="work folder: feedback, gradebook (default: beside --results)")
    p.add_argument("--course-root", type=Path, default=REPO)
    p.add_argument("--student", default="student")
    p.add_argument("--gradescope", action="store_true", help="write Gradescope's results.json schema")
    p.add_argument("--no-sandbox", action="store_true", help="run the student's code without the OS sandbox")
    p.add_argument("--workers", type=int, default=limits.WORKERS)
    p.add_argument("--call-timeout", type=float, default=limits.CALL_SECONDS)
    a = p.parse_args(argv)
    if a.no_sandbox:  # nothing this command writes is readable by the student's user
        os.umask(0o077)
    out = a.out or a.results.resolve().parent / "grading"
    try:
        result = grade_one(a.submission, out, a.course_root.resolve(), a.student, a.no_sandbox, a.workers,
                           a.call_timeout)
    except GradingError as exc:
        raise SystemExit(str(exc)) from None   # the message on stderr, exit status 1
    a.results.parent.mkdir(parents=True, exist_ok=True)
    failed = grader_failed(result)
    if failed and a.gradescope:  # no results.json: Gradescope shows the run as failed, with no score
        a.results.unlink(missing_ok=True)
    else:
        a.results.write_text(json.dumps(gradescope(result) if a.gradescope else result, indent=1))
    if failed:
        print(f"{result['student']}: {GRADER_ERROR_NOTE} (why: grader_notes in {out / 'grades.csv'})")
        return 2
    print(f"{result['student']}: {result['total']:g} / {result['max']:g} ({result['status']}); {a.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
