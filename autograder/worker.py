"""Grade submissions one at a time: ``python -m autograder.worker JOB_DIR`` for one, or
``python -m autograder.worker --serve`` to read job folders from stdin, one per line, answering
``done`` on stdout after each (the grader keeps one such process per parallel worker, so nbgrader
is imported once, not once per notebook).

JOB_DIR is a private workspace laid out as an nbgrader course: ``submitted/<student>/<assignment>/``
holds the notebook to execute (built by autograder/notebooks.py from the source notebook), and
``gradebook.db`` a copy of the template gradebook (never the instructor's). ``student.json`` is the
kernel's job: the student's code, the hidden tests, the sandbox's limits. nbgrader autogrades the
notebook (its kernel starts the student's sandboxed process, autograder/kernel.py) and generates the
feedback; this process writes ``result.json``: the score of every test cell, the errors of the test
cells, and the events of the student's process (time-outs, crashes, protocol breaks).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from coursetools import layout


def nbgrader_config(root: Path, db_url: str, cell_timeout: int | None = None):
    """The course's nbgrader configuration for a grading workspace ``root`` (and this interpreter's
    ``alembic`` and ``jupyter`` first on PATH, for nbgrader to run)."""
    layout.interpreter_on_path()
    cfg = layout.load_nbgrader_config()
    cfg.CourseDirectory.root = str(root)
    cfg.CourseDirectory.source_directory = "source"
    cfg.CourseDirectory.release_directory = "release"
    cfg.CourseDirectory.db_url = db_url
    # in autograde ClearMetadataPreprocessor runs before SaveAutoGrades and would strip the nbgrader
    # metadata, leaving every test cell unscored: keep it off even if a local config turns it on
    cfg.ClearMetadataPreprocessor.enabled = False
    if cell_timeout:
        cfg.Execute.timeout = int(cell_timeout)
    # kernels forked by the worker's zygote where it runs (autograder/kernel_zygote.py), otherwise started
    cfg.Execute.kernel_manager_class = "autograder.kernel_zygote.ForkedKernelManager"
    return cfg


def main(job_dir: str) -> int:
    ws = Path(job_dir)
    job = json.loads((ws / "job.json").read_text())
    os.chdir(ws)

    os.environ.update(NBGRADER_EXECUTION="autograde", RLCOURSE_GRADING_JOB=str(ws / "student.json"))
    for key, value in (("PYTHONWARNINGS", "ignore"), ("TRANSFORMERS_VERBOSITY", "error"), ("TQDM_DISABLE", "1"),
                       ("HF_HUB_OFFLINE", "1"), ("MPLBACKEND", "Agg")):
        os.environ.setdefault(key, value)

    import logging

    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import OverwriteCells

    logging.getLogger().setLevel(logging.ERROR)
    db_url = f"sqlite:///{ws / 'gradebook.db'}"
    cfg = nbgrader_config(ws, db_url, job.get("cell_timeout"))
    # the notebook is built from the source by the grader: nothing of the student's to overwrite
    cfg.Autograde.sanitize_preprocessors = [p for p in Autograde.class_traits()["sanitize_preprocessors"].default()
                                            if p is not OverwriteCells]
    api = NbGraderAPI(config=cfg)
    a, s, nb_name = job["assignment"], job["student"], job["notebook"]
    out = api.autograde(a, s)
    # error: nbgrader's traceback; log: what it logged (why a notebook failed, e.g. a kernel that died at start)
    result = {"success": bool(out.get("success")), "error": (out.get("error") or "")[-3000:],
              "log": (out.get("log") or "")[-3000:], "grades": {}, "errors": {}, "events": []}
    graded = ws / "autograded" / s / a / f"{nb_name}.ipynb"
    if not graded.exists():
        result["success"] = False
    events = ws / "events.jsonl"
    if events.exists():
        for line in events.read_text().splitlines()[:1000]:
            try:
                result["events"].append(json.loads(line))
            except ValueError:
                pass
    if result["success"]:
        with Gradebook(db_url, cfg.CourseDirectory.course_id) as gb:
            sub = gb.find_submission_notebook(nb_name, a, s)
            for grade in sub.grades:
                result["grades"][grade.name] = [float(grade.score or 0), float(grade.max_score or 0)]
        nb = nbformat.read(str(graded), as_version=4)
        for cell, (role, what) in zip(nb.cells, job["roles"]):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    result["errors"].setdefault(f"{role}:{what}", output.get("ename"))
        fb = api.generate_feedback(a, s)
        result["feedback_ok"] = bool(fb.get("success"))
    import resource

    peak = ws / "peak.json"  # written by the kernel as it shuts down (autograder/kernel.py)
    result["peak_mb"] = {"worker": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                         **(json.loads(peak.read_text()) if peak.exists() else {})}
    (ws / "result.json").write_text(json.dumps(result))
    return 0


def serve() -> int:
    from .kernel_zygote import ZYGOTE

    ZYGOTE.start(sys.stderr)
    for line in sys.stdin:
        job_dir = line.strip()
        if not job_dir:
            continue
        try:
            main(job_dir)
        except Exception as exc:  # noqa: BLE001 - reported in result.json's absence; the grader says why
            print(f"worker error: {exc!r}", file=sys.stderr, flush=True)
        os.chdir("/")
        print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main(sys.argv[1]))
