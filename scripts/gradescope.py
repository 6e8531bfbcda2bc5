"""Build the zip Gradescope's autograder takes for one assignment: ``.venv/bin/python scripts/gradescope.py ASSIGNMENT``.

The zip holds ``setup.sh`` and ``run_autograder`` (autograder/gradescope/) and ``course/``: the grader,
the helper package (rlcourse/), the course's tooling (coursetools/: the grader imports its layout), the
data and the assignment's source and release notebooks. The source notebook has the hidden tests:
upload the zip to Gradescope only (students never see it). On Gradescope, set the autograder's memory
to 2 GB or more (the default 768 MB is too little: benchmarks/grading.py prints each notebook's peak
memory).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from autograder.errors import GradingError  # noqa: E402
from coursetools.layout import assignment_ids  # noqa: E402
SHARED = ("autograder", "rlcourse", "coursetools", "data", "pyproject.toml", "README.md", "nbgrader_config.py",
          "scripts/constraints.txt")


def tracked(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, text=True)
    return out.stdout.splitlines() if out.returncode == 0 else []


def build(assignment: str, dest: Path, course_root: Path = REPO) -> Path:
    if assignment not in assignment_ids(course_root):
        known = ", ".join(assignment_ids(course_root))
        raise GradingError(f"no assignment {assignment!r} in {course_root / 'solutions'} (there are: {known})")
    files = [f for f in tracked(REPO) if f.split("/")[0] in SHARED or f in SHARED]
    files = [f for f in files if not f.startswith(("autograder/gradescope/",)) and (REPO / f).is_file()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("setup.sh", "run_autograder"):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            zf.writestr(info, (REPO / "autograder" / "gradescope" / name).read_bytes())
        for f in files:
            zf.write(REPO / f, f"course/{f}")
        for folder in ("solutions", "notebooks"):
            for p in sorted((course_root / folder / assignment).rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in p.parts:
                    zf.write(p, f"course/{folder}/{assignment}/{p.name}")
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=".venv/bin/python scripts/gradescope.py", description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", help="an assignment id, e.g. 02_policy_gradients")
    p.add_argument("--out", type=Path, default=None, help="the zip (default: gradescope-ASSIGNMENT.zip)")
    p.add_argument("--course-root", type=Path, default=REPO)
    a = p.parse_args(argv)
    try:
        dest = build(a.assignment, (a.out or Path(f"gradescope-{a.assignment}.zip")).resolve(), a.course_root.resolve())
    except GradingError as exc:
        raise SystemExit(str(exc)) from None
    print(f"wrote {dest}: upload it as the assignment's autograder on Gradescope (instructors only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
