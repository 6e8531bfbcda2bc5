"""Benchmark of the grading command: prints figures, asserts nothing.

    python benchmarks/grading.py [--course-root DIR] [--students 3] [--workers N]

Builds a synthetic class in which every student submits the course's solution notebooks (all of
solutions/, whatever exists), grades it with caching off (every student really runs), and prints
the wall time per student (the whole course), each notebook's peak resident memory, and the
extrapolation to classes of 30 and 300.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autograder.grade import REPO, grade  # noqa: E402
from autograder.pool import GradingOptions  # noqa: E402
from autograder.limits import WORKERS as DEFAULT_WORKERS  # noqa: E402
from coursetools.layout import assignment_ids, source_notebook  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--course-root", type=Path, default=REPO)
    p.add_argument("--students", type=int, default=3)
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    a = p.parse_args()
    root = a.course_root.resolve()
    sources = [source_notebook(aid, root) for aid in assignment_ids(root)]
    if not sources:
        raise SystemExit(f"no notebooks under {root / 'solutions'}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(a.students):
            for nb in sources:
                dest = tmp / "submitted" / f"student{i:02d}" / nb.parent.name / nb.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(nb, dest)
        # one-time set-up (the template gradebook, cached per course version, and the sandbox's files):
        # a first run over one notebook, timed apart
        warm = tmp / "warmup" / "w" / sources[0].parent.name
        warm.mkdir(parents=True)
        shutil.copy(sources[0], warm / sources[0].name)
        t0 = time.time()
        grade(tmp / "warmup", tmp / "out", root, db_url=f"sqlite:///{tmp / 'gb.db'}", nbgrader_dir=tmp / "nbgrader",
              options=GradingOptions(workers=a.workers), quiet=True)
        setup = time.time() - t0
        t0 = time.time()
        rows = grade(tmp / "submitted", tmp / "out", root, db_url=f"sqlite:///{tmp / 'gb.db'}",
                     nbgrader_dir=tmp / "nbgrader", options=GradingOptions(workers=a.workers, cache=False),
                     fresh=True, quiet=True)
        wall = time.time() - t0
        peaks = {}
        for f in (tmp / "out" / ".grading" / "results").glob("*.json"):
            r = json.loads(f.read_text())
            peaks[(r["student"], r["assignment"])] = r.get("peak_mb") or {}
    full = sum(r["total"] == r["max"] for r in rows)
    per_student = wall / a.students
    print(f"course root: {root}")
    print(f"notebooks per student: {len(sources)} ({', '.join(n.parent.name for n in sources)})")
    print(f"students: {a.students}, workers: {a.workers}, rows at full marks: {full}/{len(rows)}")
    print(f"one-time set-up (first run on this course version, one notebook): {setup:.1f} s")
    print(f"wall time: {wall:.1f} s for the class, {per_student:.1f} s per student "
          f"(sum of per-notebook times: {sum(float(r['seconds']) for r in rows) / a.students:.1f} s per student)")
    print("  notebook                  points         status        seconds   peak RSS MB (worker / kernel / student's process)")
    for r in rows[: len(sources)]:
        peak = peaks.get((r["student"], r["assignment"]), {})
        print(f"  {r['assignment']:<24} {r['total']:>5} / {r['max']:<5} {r['status']:<12} {r['seconds']:>6} s   "
              f"{peak.get('worker') or 0:6.0f} / {peak.get('kernel') or 0:6.0f} / {peak.get('student') or 0:6.0f}")
    print(f"class of 30 (extrapolated at {a.workers} workers): {per_student * 30 / 60:.1f} min; "
          f"class of 300: {per_student * 300 / 3600:.1f} h")


if __name__ == "__main__":
    main()
