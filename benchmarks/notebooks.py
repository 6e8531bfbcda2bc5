"""Run solution notebooks end to end and collect their outcomes.

    python benchmarks/notebooks.py 04_ppo_rlhf 05_grpo      # full mode (RLCOURSE_REDUCED=0)
    python benchmarks/notebooks.py --reduced                 # every assignment, reduced mode

Training cells print lines ``[result] name = value``; this script gathers them with the wall time
of each notebook and writes ``benchmarks/results/<id>.<mode>.json`` (plus the executed notebook
under ``runs/``, which git ignores). Figures depend on the machine: note its cores when you quote them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = re.compile(r"^\[result\]\s+(\S+)\s*=\s*(\S+)", re.MULTILINE)


def run(assignment: str, reduced: bool, timeout: int = 1800) -> dict:
    import nbclient
    import nbformat

    source = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(source), as_version=4)
    os.environ["RLCOURSE_REDUCED"] = "1" if reduced else "0"  # the kernel inherits it
    workdir = ROOT / "runs" / assignment
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = None
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}}).execute()
    except Exception as exc:  # noqa: BLE001 - report and keep the partial notebook
        error = f"{type(exc).__name__}: {str(exc)[-2000:]}"
    wall = time.perf_counter() - start
    mode = "reduced" if reduced else "full"
    nbformat.write(nb, str(workdir / f"{assignment}.{mode}.ipynb"))
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    results = {}
    for name, value in RESULT.findall(text):
        try:
            results[name] = float(value)
        except ValueError:
            results[name] = value
    return {"assignment": assignment, "mode": mode, "wall_s": round(wall, 1), "error": error, "results": results,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="assignment ids (default: every folder in solutions/)")
    parser.add_argument("--reduced", action="store_true", help="reduced mode (as in tests and grading)")
    args = parser.parse_args(argv)
    ids = args.ids or sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").is_file())
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for assignment in ids:
        record = run(assignment, args.reduced)
        (out_dir / f"{assignment}.{record['mode']}.json").write_text(json.dumps(record, indent=2) + "\n")
        status = "ERROR " + record["error"][:200] if record["error"] else "ok"
        print(f"{assignment} ({record['mode']}): {record['wall_s']} s, {status}")
        for name, value in record["results"].items():
            print(f"  {name} = {value}")
        failed |= record["error"] is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
