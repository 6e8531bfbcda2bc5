"""Benchmark of the grading command: prints figures, asserts nothing.

    .venv/bin/python benchmarks/grading.py [--course-root DIR] [--students 3] [--workers 2]

Builds a synthetic class in which every student submits the course's solution notebooks (all of
solutions/, whatever exists), grades it with caching off (every student really runs), and prints
the wall time per student (the whole course) and the extrapolation to a class of 30.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository's autograder
from autograder.grade import REPO, grade  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--course-root", type=Path, default=REPO)
    p.add_argument("--students", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    root = a.course_root.resolve()
    sources = sorted((root / "solutions").glob("*/*.ipynb"))
    if not sources:
        raise SystemExit(f"no notebooks under {root / 'solutions'}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(a.students):
            for nb in sources:
                dest = tmp / "submitted" / f"student{i:02d}" / nb.parent.name / nb.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(nb, dest)
        t0 = time.time()
        rows = grade(tmp / "submitted", tmp / "out", root, f"sqlite:///{tmp / 'gb.db'}", workers=a.workers,
                     quiet=True, cache=False)
        wall = time.time() - t0
    full = sum(r["total"] == r["max"] for r in rows)
    per_student = wall / a.students
    print(f"course root: {root}")
    print(f"notebooks per student: {len(sources)} ({', '.join(n.parent.name for n in sources)})")
    print(f"students: {a.students}, workers: {a.workers}, rows at full marks: {full}/{len(rows)}")
    print(f"wall time: {wall:.1f} s for the class, {per_student:.1f} s per student "
          f"(sum of per-notebook times: {sum(float(r['seconds']) for r in rows) / a.students:.1f} s per student)")
    for r in rows[: len(sources)]:
        print(f"  {r['assignment']:<24} {r['total']:>5} / {r['max']:<5} {r['status']:<12} {r['seconds']:>6} s")
    print(f"class of 30 (extrapolated at {a.workers} workers): {per_student * 30 / 60:.1f} min")


if __name__ == "__main__":
    main()
