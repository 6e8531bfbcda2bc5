"""One submission, in its own process: ``python -m autograder.worker JOB_DIR``.

JOB_DIR is a private workspace laid out as an nbgrader course (``source/``, ``submitted/<student>/
<assignment>/``, ``gradebook.db``: a copy of the template, never the instructor's gradebook). The
parent sets the memory limit (RLIMIT_AS, inherited by the kernel) and the wall-clock limit. Writes
``result.json`` (scores per test cell, guard reports, timeouts) and the feedback HTML.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

CONFIG_FILE = Path(__file__).with_name("nbgrader_config.py")
# nbgrader shells out to `alembic` and `jupyter`: use the ones of this interpreter
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def nbgrader_config(root: Path, db_url: str, cell_timeout: int | None = None):
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    cfg.CourseDirectory.root = str(root)
    cfg.CourseDirectory.source_directory = "source"
    cfg.CourseDirectory.release_directory = "release"
    cfg.CourseDirectory.db_url = db_url
    # in autograde ClearMetadataPreprocessor runs before SaveAutoGrades and would strip the nbgrader
    # metadata, leaving every test cell unscored: keep it off even if a local config turns it on
    cfg.ClearMetadataPreprocessor.enabled = False
    if cell_timeout:
        cfg.Execute.timeout = int(cell_timeout)
    return cfg


def _progress_execute(progress_file: Path):
    from nbgrader.preprocessors import Execute

    class ProgressExecute(Execute):
        """nbgrader's Execute, writing the index of the cell it starts (to find what killed a kernel)."""

        def preprocess_cell(self, cell, resources, index):
            progress_file.write_text(json.dumps({"cell": index}))
            return super().preprocess_cell(cell, resources, index)

    return ProgressExecute


def main(job_dir: str) -> int:
    ws = Path(job_dir)
    job = json.loads((ws / "job.json").read_text())
    os.chdir(ws)
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")

    import logging

    from nbgrader.apps import NbGraderAPI
    from nbgrader.api import Gradebook
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute
    import nbformat

    logging.getLogger().setLevel(logging.ERROR)
    db_url = f"sqlite:///{ws / 'gradebook.db'}"
    cfg = nbgrader_config(ws, db_url, job.get("cell_timeout"))
    progress = ws / "progress.json"
    steps = [p if p is not Execute else _progress_execute(progress) for p in Autograde.class_traits()["autograde_preprocessors"].default()]
    cfg.Autograde.autograde_preprocessors = steps
    api = NbGraderAPI(config=cfg)
    a, s, nb_name = job["assignment"], job["student"], job["notebook"]
    out = api.autograde(a, s)
    result = {"success": bool(out.get("success")), "error": (out.get("error") or "")[-3000:],
              "log": (out.get("log") or "")[-3000:], "grades": {}, "guard": [], "timeouts": [], "errors": {}}
    graded = ws / "autograded" / s / a / f"{nb_name}.ipynb"
    if not graded.exists():
        result["success"] = False
    if result["success"]:
        with Gradebook(db_url, cfg.CourseDirectory.course_id) as gb:
            sub = gb.find_submission_notebook(nb_name, a, s)
            for grade in sub.grades:
                result["grades"][grade.name] = [float(grade.score or 0), float(grade.max_score or 0)]
        nb = nbformat.read(str(graded), as_version=4)
        roles = job["roles"]
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or i >= len(roles):
                continue
            role, what = roles[i]
            for output in cell.get("outputs", []):
                text = output.get("text", "") if output.get("output_type") == "stream" else ""
                if role == "guard" and "RLCOURSE-GUARD:" in text:
                    result["guard"].append([i, what, text.split("RLCOURSE-GUARD:", 1)[1].strip()[:300]])
                if i == 0 and output.get("output_type") == "error":
                    result["retry"] = f"the grader's guard did not start ({output.get('ename')})"
                elif role == "guard" and output.get("output_type") == "error":
                    result["guard"].append([i, what, f"the guard itself failed ({output.get('ename')})"])
                if output.get("output_type") == "error":
                    if output.get("ename") == "CellTimeoutError":
                        result["timeouts"].append([i, role, what])
                    if role == "test":
                        result["errors"].setdefault(what, output.get("ename"))
        # feedback: never show the hidden tests' code
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
                cell.source = __import__("re").sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS",
                                                   "# (hidden tests)", cell.source, flags=__import__("re").S)
        nb.cells = [c for i, c in enumerate(nb.cells) if i >= len(roles) or roles[i][0] != "guard"]
        nbformat.write(nb, str(graded))
        fb = api.generate_feedback(a, s)
        result["feedback_ok"] = bool(fb.get("success"))
    (ws / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
