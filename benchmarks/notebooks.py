"""Run the solution notebooks end to end and report wall time and learning outcomes.

    .venv/bin/python benchmarks/notebooks.py                      # every notebook, full mode (RLCOURSE_REDUCED=0)
    .venv/bin/python benchmarks/notebooks.py --reduced            # reduced mode (what tests and grading run)
    .venv/bin/python benchmarks/notebooks.py 02_policy_gradients 03_actor_critic

Training cells print summary lines ``[result] name = value``; this script collects them from the
executed notebooks' outputs and prints them per notebook, with the wall time against the budget
(00-03: full <= 5 min, reduced <= 60 s; 04-07: full <= 10 min, reduced <= 90 s). In full mode the
summary also gives the course's total, lecture notebooks 00-06 against ``COURSE_BUDGET_S`` (8 minutes
on a quiet 2-core CPU) and with notebook 07 added. ``--save DIR`` keeps the executed notebooks (with
outputs and plots) for inspection.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from coursetools.kernels import kernel_manager_config  # noqa: E402 - CurveZMQ keys: no TCP warning from the kernel
from coursetools.layout import assignment_ids, source_notebook  # noqa: E402
RESULT = re.compile(r"^\[result\]\s+(\S+)\s*=\s*(.+?)\s*$", re.MULTILINE)
BUDGET_S = {"full": 300, "reduced": 60}  # notebooks 00-03 (issue targets)
BUDGET_S_LATE = {"full": 600, "reduced": 90}  # notebooks 04-07: PPO/RLHF, GRPO, DPO, agents
COURSE_BUDGET_S = 480  # notebooks 00-06 in full mode, one after another, on a quiet 2-core CPU (issue 14)
LECTURE = tuple(f"{i:02d}" for i in range(7))  # the lecture's notebooks 00-06; 07 goes beyond it


def budget(notebook_id: str, mode: str) -> int:
    return (BUDGET_S_LATE if notebook_id[:2] >= "04" else BUDGET_S)[mode]


def results_of(nb) -> dict[str, str]:
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            for name, value in RESULT.findall(text):
                found[name] = value
    return found


def run(assignment: str, reduced: bool, save: Path | None) -> tuple[float, dict[str, str], str | None]:
    path = source_notebook(assignment)
    nb = nbformat.read(str(path), as_version=4)
    os.environ["RLCOURSE_REDUCED"] = "1" if reduced else "0"  # the kernel inherits the environment
    error = None
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=1800, kernel_name="python3", config=Config(kernel_manager_config()),
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except Exception as exc:  # noqa: BLE001 - report and go on with the next notebook
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    elapsed = time.perf_counter() - start
    if save:
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(save / f"{assignment}.ipynb"))
    return elapsed, results_of(nb), error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="assignment ids (default: all in solutions/)")
    parser.add_argument("--reduced", action="store_true", help="reduced mode (RLCOURSE_REDUCED=1)")
    parser.add_argument("--save", type=Path, default=None, help="folder for the executed notebooks")
    args = parser.parse_args(argv)
    mode = "reduced" if args.reduced else "full"
    failures = 0
    summary = []
    for assignment in args.ids or assignment_ids():
        print(f"==> {assignment} ({mode} mode)", flush=True)
        elapsed, results, error = run(assignment, args.reduced, args.save)
        limit = budget(assignment, mode)
        verdict = "within" if elapsed <= limit else "OVER"
        print(f"    wall time {elapsed:.1f} s, {verdict} the {mode}-mode budget of {limit} s")
        for name, value in results.items():
            print(f"    {name} = {value}")
        if error:
            failures += 1
            print(f"    ERROR {error}")
        summary.append((assignment, elapsed, error))
        sys.stdout.flush()
    print("\nsummary:")
    for assignment, elapsed, error in summary:
        print(f"  {assignment:24s} {elapsed:7.1f} s  {'ERROR' if error else 'ok'}")
    total = sum(elapsed for _, elapsed, _ in summary)
    lecture = sum(elapsed for assignment, elapsed, _ in summary if assignment[:2] in LECTURE)
    if mode == "full" and {a[:2] for a, _, _ in summary} >= set(LECTURE):
        verdict = "within" if lecture <= COURSE_BUDGET_S else "OVER"
        print(f"  {'total 00-06':24s} {lecture:7.1f} s  {verdict} the course budget of {COURSE_BUDGET_S} s"
              f" (notebooks 00-06 in full mode, one after another)")
    print(f"  {'total':24s} {total:7.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
