"""The results ledger: run the notebooks over seeds, evaluate every lesson, write what held.

    python benchmarks/lessons.py run                        # every notebook with lessons, seeds 0-4, full mode
    python benchmarks/lessons.py run 04_ppo_rlhf --seeds 0 1 2 3 4 5 6
    python benchmarks/lessons.py run --threads 1 --seeds 0  # the run at another thread count
    python benchmarks/lessons.py run --jobs 5               # seeds side by side (on a GPU)
    python benchmarks/lessons.py ingest LOG ...             # runs from saved run_notebook.py --seed output
    python benchmarks/lessons.py render                     # benchmarks/ledger/<device>.json and .md
    python benchmarks/lessons.py check                      # exit 1 unless every lesson holds in 4 of 5 seeds

A *run* is one notebook in full mode with one seed (``run_notebook.py --seed``) at one thread count;
each is kept as ``benchmarks/ledger/runs/<device>/<notebook>/seed<S>-threads<T>.json`` (its
``[result]`` metrics, the machine, the versions, the time; its whole output goes to ``logs/``
beside ``runs/``, which git ignores), and ``run`` skips runs already there
unless ``--force``. ``render`` builds the ledger from the kept runs: for every metric and every lesson
(``rlcourse/lessons.py``) the per-seed values, median and range at the default thread count, how many
seeds each lesson holds in, and its value in the runs at other thread counts. The device is ``cuda``
when torch sees a GPU, else ``cpu``. ``--reduced`` runs go to ``--out`` and never into the committed
ledger (they test the sweep, not the course).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from rlcourse.lessons import LESSONS, OPS, REQUIRED_HELD, LessonError, lessons_for, parse_results  # noqa: E402

LEDGER = ROOT / "benchmarks" / "ledger"
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
DEFAULT_THREADS = 2          # the notebooks' default on the course's 2-core machines
SCHEMA = 1


# ----------------------------------------------------------------------------- runs
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"device": "cuda" if gpu else "cpu", "device_name": gpu or cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__}


def run_path(out: Path, device: str, notebook: str, seed: int, threads: int) -> Path:
    return out / "runs" / device / notebook / f"seed{seed}-threads{threads}.json"


def record(notebook: str, seed: int, threads: int, lines: list[str], seconds: float, code: int, env: dict,
           mode: str = "full") -> dict:
    return {"schema": SCHEMA, "notebook": notebook, "seed": seed, "threads": threads, "mode": mode,
            "exit_code": code, "seconds": round(seconds, 1), "date": dt.date.today().isoformat(), **env,
            "metrics": parse_results(lines, notebook)}


def run(notebooks: list[str], seeds: list[int], threads: int, jobs: int, force: bool, reduced: bool,
        out: Path) -> int:
    """Run every (notebook, seed) not yet kept; keep each successful run as JSON. Returns the failures."""
    from concurrent.futures import ThreadPoolExecutor

    import run_notebook

    env = environment()
    if env["device"] == "cpu":
        os.environ["OMP_NUM_THREADS"] = str(threads)   # the notebooks' set_threads() reads it
    else:
        threads = 0   # thread counts do not apply on a GPU: recorded as 0
    todo = [(nb, s) for nb in notebooks for s in seeds
            if force or not run_path(out, env["device"], nb, s, threads).exists()]
    print(f"{len(todo)} runs to do on {env['device_name']} ({threads or 'GPU'} threads, "
          f"{'reduced' if reduced else 'full'} mode)", flush=True)

    def one(task):
        notebook, seed = task
        lines: list[str] = []
        code, seconds, _ = run_notebook.run_child(run_notebook.notebook_file(notebook), reduced, False,
                                                  echo=lines.append, seed=seed)
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"[run] {notebook} seed {seed}: {status}, {seconds:.1f} s", flush=True)
        log = out / "logs" / env["device"] / notebook / f"seed{seed}-threads{threads}.log"   # ignored by git
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("\n".join(lines) + "\n")
        if code != 0:
            print("\n".join(lines[-30:]), flush=True)
            return 1
        result = record(notebook, seed, threads, lines, seconds, code, env, "reduced" if reduced else "full")
        path = run_path(out, env["device"], notebook, seed, threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        return 0

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        return sum(pool.map(one, todo))


LOG_HEADER = re.compile(r"^=== (\S+) \((full|reduced) mode")
LOG_END = re.compile(r"^=== (\S+): (ok|FAILED.*), ([\d.]+) s")


def ingest(logs: list[Path], out: Path) -> int:
    """Keep the runs found in saved ``run_notebook.py --seed`` output (one or more notebooks per log)."""
    env = environment()
    kept = 0
    for log in logs:
        notebook, lines, mode = None, [], "full"
        for line in log.read_text().splitlines():
            if (header := LOG_HEADER.match(line)):
                notebook, lines, mode = header.group(1), [], header.group(2)
            elif (end := LOG_END.match(line)) and notebook == end.group(1):
                seed = next((int(x.split()[-1]) for x in lines if x.strip().startswith("| [seed]")), 0)
                threads = next((int(x.split()[-1]) for x in lines if x.strip().startswith("| [threads]")), None)
                device_line = next((x for x in lines if x.strip().startswith("| [device]")), "")
                if end.group(2) != "ok" or mode != "full" or threads is None:
                    print(f"[ingest] {log.name}: {notebook} skipped ({end.group(2)}, {mode} mode)")
                    notebook = None
                    continue
                run_env = dict(env)
                if "cuda" in device_line:
                    run_env.update(device="cuda", device_name=device_line.split("cuda:", 1)[1].strip())
                    threads = 0
                result = record(notebook, seed, threads, lines, float(end.group(3)), 0, run_env)
                path = run_path(out, run_env["device"], notebook, seed, threads)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
                print(f"[ingest] {notebook} seed {seed}, {threads} threads -> {path.relative_to(out)}")
                kept += 1
                notebook = None
            elif notebook:
                lines.append(line)
    return kept


# ----------------------------------------------------------------------------- the ledger
def load_runs(out: Path, device: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs" / device).glob("*/*.json"))]


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def build_ledger(runs: list[dict], device: str) -> dict:
    """The ledger of one device from its runs (see the module docstring)."""
    default_threads = 0 if device == "cuda" else DEFAULT_THREADS
    ledger = {"schema": SCHEMA, "device": device, "default_threads": default_threads,
              "required": {"held": REQUIRED_HELD[0], "of": REQUIRED_HELD[1]}, "notebooks": {}, "lessons": {}}
    for notebook in sorted({r["notebook"] for r in runs}):
        mine = sorted((r for r in runs if r["notebook"] == notebook), key=lambda r: (r["threads"] != default_threads,
                                                                                       r["threads"], r["seed"]))
        main = [r for r in mine if r["threads"] == default_threads]
        other = [r for r in mine if r["threads"] != default_threads]
        metrics = {}
        for name in sorted({m for r in main for m in r["metrics"]}):
            values = {str(r["seed"]): r["metrics"][name] for r in main if name in r["metrics"]}
            metrics[name] = {"seeds": values, **summary(list(values.values())),
                             "other_threads": [{"threads": r["threads"], "seed": r["seed"], "value": r["metrics"][name]}
                                               for r in other if name in r["metrics"]]}
        ledger["notebooks"][notebook] = {
            "runs": [{k: r[k] for k in ("seed", "threads", "seconds", "date", "device_name", "cores", "python",
                                        "torch", "transformers")} for r in mine],
            "metrics": metrics}
        for item in lessons_for(notebook):
            values, errors = {}, []
            for r in main:
                try:
                    values[str(r["seed"])] = item.measure(r["metrics"])
                except LessonError as error:
                    errors.append(str(error))
            entry = {"notebook": notebook, "claim": item.claim, "criterion": item.criterion, "seeds": values,
                     "errors": errors, "held": sum(OPS[item.op](v, item.bound) for v in values.values()),
                     "other_threads": []}
            if values:
                entry.update(summary(list(values.values())))
            for r in other:
                try:
                    value = item.measure(r["metrics"])
                    entry["other_threads"].append({"threads": r["threads"], "seed": r["seed"], "value": value,
                                                   "holds": OPS[item.op](value, item.bound)})
                except LessonError as error:
                    entry["errors"].append(str(error))
            ledger["lessons"][item.name] = entry
    return ledger


def verdict(entry: dict) -> tuple[bool, str]:
    """Whether a ledger entry meets the target: held in 4 of 5 seeds (scaled to the seeds run), and in
    every run at another thread count."""
    n = len(entry["seeds"])
    need = -(-REQUIRED_HELD[0] * n // REQUIRED_HELD[1]) if n else 1
    problems = []
    if entry["errors"]:
        problems.append("; ".join(entry["errors"]))
    if n < REQUIRED_HELD[1]:
        problems.append(f"only {n} seeds run (needs {REQUIRED_HELD[1]})")
    if entry["held"] < need:
        problems.append(f"held in {entry['held']} of {n} seeds (needs {need})")
    if any(not o["holds"] for o in entry["other_threads"]):
        problems.append("failed at another thread count")
    return not problems, "; ".join(problems) or f"held in {entry['held']} of {n}"


def fmt(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def render_markdown(ledger: dict) -> str:
    device = ledger["device"]
    lines = [f"# Results ledger: {device}", "",
             "Generated by `python benchmarks/lessons.py render` from the runs in "
             f"`benchmarks/ledger/runs/{device}/`; do not edit by hand. Every notebook ran in full mode, once "
             "per seed" + (f", at {ledger['default_threads']} threads" if ledger["default_threads"] else "")
             + "; a lesson's target is to hold in at least "
             f"{ledger['required']['held']} of {ledger['required']['of']} seeds"
             + (" and in the run at another thread count." if device == "cpu" else "."), ""]
    machines = sorted({(r["device_name"], r["cores"], r["torch"], r["transformers"], r["python"])
                       for nb in ledger["notebooks"].values() for r in nb["runs"]})
    for name, cores, torch, transformers, python in machines:
        lines.append(f"- Machine: {name}, {cores} cores; Python {python}, torch {torch}, transformers {transformers}")
    lines += ["", "## Lessons", "", "| lesson | criterion | held | median | range | other threads | claim |",
              "|---|---|---|---|---|---|---|"]
    order = {item.name: i for i, item in enumerate(LESSONS)}   # the package's order, not the JSON's
    for name, entry in sorted(ledger["lessons"].items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        ok, why = verdict(entry)
        held = f"{entry['held']} of {len(entry['seeds'])}" + ("" if ok else f" ✗ ({why})")
        others = ", ".join(f"{fmt(o['value'])} ({o['threads']} thr, seed {o['seed']}, "
                           f"{'holds' if o['holds'] else 'fails'})" for o in entry["other_threads"]) or "-"
        median = fmt(entry["median"]) if "median" in entry else "-"
        spread = f"{fmt(entry['min'])} to {fmt(entry['max'])}" if "min" in entry else "-"
        lines.append(f"| {name} | `{entry['criterion']}` | {held} | {median} | {spread} | {others} | {entry['claim']} |")
    for notebook, data in ledger["notebooks"].items():
        seeds = sorted({s for m in data["metrics"].values() for s in m["seeds"]}, key=int)
        lines += ["", f"## {notebook}", "",
                  "| metric | median | range | " + " | ".join(f"seed {s}" for s in seeds) + " | other threads |",
                  "|---|---|---|" + "---|" * len(seeds) + "---|"]
        for metric, m in data["metrics"].items():
            per_seed = " | ".join(fmt(m["seeds"][s]) if s in m["seeds"] else "-" for s in seeds)
            others = ", ".join(f"{fmt(o['value'])} ({o['threads']} thr, seed {o['seed']})" for o in m["other_threads"])
            lines.append(f"| {metric} | {fmt(m['median'])} | {fmt(m['min'])} to {fmt(m['max'])} | {per_seed} | "
                         f"{others or '-'} |")
        times = [r["seconds"] for r in data["runs"]]
        lines += ["", f"Wall time per run: median {statistics.median(times):.0f} s "
                      f"({min(times):.0f} to {max(times):.0f} s), {len(times)} runs."]
    return "\n".join(lines) + "\n"


def render(out: Path, device: str) -> dict:
    ledger = build_ledger(load_runs(out, device), device)
    (out / f"{device}.json").write_text(json.dumps(ledger, indent=1, sort_keys=True) + "\n")
    (out / f"{device}.md").write_text(render_markdown(ledger))
    return ledger


def check(ledger: dict) -> int:
    failures = 0
    for name, entry in ledger["lessons"].items():
        ok, why = verdict(entry)
        print(f"[lesson] {name}: {'ok' if ok else 'MISSED'}, {why}; median "
              f"{fmt(entry['median']) if 'median' in entry else '-'} ({entry['criterion']})")
        failures += not ok
    missing = [item.name for item in LESSONS if item.notebook in ledger["notebooks"] and item.name not in ledger["lessons"]]
    for name in missing:
        print(f"[lesson] {name}: MISSED, not in the ledger")
    return 1 if failures or missing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "ingest", "render", "check"])
    parser.add_argument("items", nargs="*", help="run: notebooks (default: every notebook with lessons); ingest: logs")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch threads on a CPU (default 2)")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side (on a GPU; default 1)")
    parser.add_argument("--force", action="store_true", help="run again runs already kept")
    parser.add_argument("--reduced", action="store_true", help="reduced mode (tests the sweep; needs --out)")
    parser.add_argument("--device", help="the ledger to render or check: cpu or cuda (default: this machine's)")
    parser.add_argument("--out", type=Path, default=LEDGER, help="the ledger folder (default benchmarks/ledger)")
    args = parser.parse_args(argv)
    if args.reduced and args.out.resolve() == LEDGER.resolve():
        parser.error("--reduced runs never go into the committed ledger: give --out")
    if args.command == "run":
        notebooks = args.items or sorted({item.notebook for item in LESSONS})
        failed = run(notebooks, args.seeds, args.threads, args.jobs, args.force, args.reduced, args.out)
        return 1 if failed else 0
    if args.command == "ingest":
        return 0 if ingest([Path(p) for p in args.items], args.out) else 1
    device = args.device or environment()["device"]
    if args.command == "render":
        ledger = render(args.out, device)
        print(f"wrote {args.out / (device + '.json')} and {device}.md: {len(ledger['lessons'])} lessons")
        return check(ledger)
    return check(json.loads((args.out / f"{device}.json").read_text()))


if __name__ == "__main__":
    sys.exit(main())
