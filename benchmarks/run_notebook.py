"""Run solution notebooks without Jupyter: wall time, device and ``[result]`` lines per notebook.

    python benchmarks/run_notebook.py                    # every solutions/*/*.ipynb, full mode
    python benchmarks/run_notebook.py 04_ppo_rlhf 05_grpo --reduced
    python benchmarks/run_notebook.py --require-cuda     # refuse to run anywhere but on a CUDA GPU
    python benchmarks/run_notebook.py --model course-gpt2  # another policy (the config cells' MODEL_NAME)
    python benchmarks/run_notebook.py --cell-times 05_grpo # and the wall time of every cell over a second
    python benchmarks/run_notebook.py --jobs 8           # every notebook at once, side by side (one GPU)
    python benchmarks/run_notebook.py --seed 3 04_ppo_rlhf  # another seed (the config cells' SEED)

Needs only what the course package needs (torch, transformers, tokenizers, safetensors, numpy,
matplotlib, tqdm): no Jupyter, nbformat, nbclient or nbgrader. A notebook is read as JSON and its
code cells are executed in order in one namespace, like a kernel would (lines starting with ``%``
or ``!`` become comments, ``coursetools.layout.code_cells``; the course's cells have none). Each
notebook runs in a fresh Python process, with the notebook's folder as working directory,
``MPLBACKEND=Agg`` and ``RLCOURSE_REDUCED=0`` (``--reduced``: 1). The repository root goes on
``PYTHONPATH`` (and ``sys.path``) so that ``rlcourse`` imports without installing it. On CUDA each
notebook ends with its peak GPU memory (``[gpu memory]``). ``[start-up]`` is the time from the
process's launch to its first cell (the interpreter, ``import torch``, CUDA's start); the cell that
loads the policy shows under ``--cell-times``. ``--jobs N`` runs N notebooks at a time, each in its
own process, and prints a notebook's output when it ends; the summary then gives the wall time of
the whole run beside the sum of the notebooks' times. ``--model NAME`` replaces
``MODEL_NAME = "tiny"`` in the config cells (the config cells take smaller learning rates for any
model but the tiny one). ``--seed N`` replaces ``SEED = 0`` in the config cells (every seed the notebook
derives from it follows; ``benchmarks/lessons.py`` sweeps seeds this way). The exit status is 1 when any notebook fails (its traceback is printed).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from coursetools.layout import assignment_ids, code_cells as notebook_code, read_json, source_notebook  # noqa: E402

RESULT = re.compile(r"^\[result\]\s+\S+\s*=")
MODEL_LINE = re.compile(r'^MODEL_NAME = "tiny"', re.MULTILINE)
SEED_LINE = re.compile(r"^SEED = 0$", re.MULTILINE)


def notebook_file(name: str) -> Path:
    """An assignment id (``05_grpo``) or a path to an .ipynb."""
    path = Path(name)
    if path.suffix == ".ipynb":
        return path.resolve()
    return source_notebook(name)


def code_cells(path: Path) -> list[str]:
    """The source of every code cell, in order, with IPython magics and shell escapes made comments."""
    return [source for _, source in notebook_code(read_json(path))]


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return "cpu"


def with_seed(cells: list[str], seed: int, name: str = "the notebook") -> list[str]:
    """The cells with the config line ``SEED = 0`` made ``SEED = seed``; an error unless exactly one cell has it."""
    found = sum(len(SEED_LINE.findall(source)) for source in cells)
    if found != 1:
        raise ValueError(f"{name} has {found} lines SEED = 0, not one, to replace")
    return [SEED_LINE.sub(f"SEED = {int(seed)}", source) for source in cells]


def execute(path: Path, model: str | None = None, cell_times: bool = False, launched: float | None = None,
            seed: int | None = None) -> None:
    """Run one notebook in this process (the child side of ``main``), with ``model`` as MODEL_NAME and
    ``seed`` as SEED if given; ``cell_times`` prints ``[cell time]`` for every code cell that takes a
    second or more."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    print(f"[device] {device_name()}", flush=True)
    if launched is not None:
        print(f"[start-up] {time.time() - launched:.1f} s from launch to the first cell", flush=True)
    cells = code_cells(path)
    if model:
        cells = [MODEL_LINE.sub(f"MODEL_NAME = {model!r}", source) for source in cells]
        if cells == code_cells(path):
            raise ValueError(f"{path.name} has no line MODEL_NAME = \"tiny\" to replace")
        print(f"[model] {model}", flush=True)
    if seed is not None:
        cells = with_seed(cells, seed, path.name)
        print(f"[seed] {seed}", flush=True)
    from rlcourse.model import cpu_threads   # what the notebook's set_threads() will give torch

    print(f"[threads] {cpu_threads()}", flush=True)
    namespace: dict = {"__name__": "__main__"}
    for i, source in enumerate(cells):
        code = compile(source, f"<{path.stem} cell {i}>", "exec")
        start = time.perf_counter()
        try:
            exec(code, namespace)  # noqa: S102 - the course's own notebooks
        finally:
            plt.close("all")
        seconds = time.perf_counter() - start
        if cell_times and seconds >= 1.0:
            first = next((line for line in source.splitlines() if line.strip() and not line.startswith("#")), "")
            print(f"[cell time] cell {i}: {seconds:.1f} s  ({first[:60]})", flush=True)
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():  # what a smaller GPU (Colab's T4: 15 GB) must hold
        print(f"[gpu memory] peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated, "
              f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved", flush=True)


def run_child(path: Path, reduced: bool, progress: bool, model: str | None = None, cell_times: bool = False,
              echo=None, seed: int | None = None) -> tuple[int, float, list[str]]:
    """Run one notebook in a fresh interpreter; pass each output line to ``echo``; return (exit code,
    seconds, [result], [device], [model], [seed], [threads], [start-up] and [gpu memory] lines)."""
    echo = echo or (lambda text: print(text, flush=True))
    env = dict(os.environ)
    env["RLCOURSE_REDUCED"] = "1" if reduced else "0"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if not progress:
        env["TQDM_DISABLE"] = "1"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)] + (["--model", model] if model else [])
    command += ["--cell-times"] if cell_times else []
    command += ["--seed", str(seed)] if seed is not None else []
    command += ["--launched", repr(time.time())]
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=path.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    results = []
    for line in proc.stdout:
        echo(f"  | {line.rstrip()}")
        if RESULT.match(line) or line.startswith(("[device] ", "[model] ", "[seed] ", "[threads] ", "[start-up] ",
                                                          "[gpu memory] ")):
            results.append(line.rstrip())
    code = proc.wait()
    return code, time.perf_counter() - start, results


def run_all(paths: list[Path], args, mode: str) -> list[tuple[str, str, float, list[str]]]:
    """``args.jobs`` notebooks at a time; each one's output is printed in one piece when it ends."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Lock

    lock = Lock()

    def one(path: Path):
        lines = []
        code, seconds, results = run_child(path, args.reduced, args.progress, args.model, args.cell_times,
                                           lines.append, args.seed)
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        with lock:
            print(f"\n=== {path.stem} ({mode} mode, {args.jobs} at a time) ===", *lines,
                  f"=== {path.stem}: {status}, {seconds:.1f} s", sep="\n", flush=True)
        return path.stem, status, seconds, results

    with ThreadPoolExecutor(args.jobs) as pool:
        return list(pool.map(one, paths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="assignment ids or .ipynb paths (default: every solution notebook)")
    parser.add_argument("--reduced", action="store_true", help="reduced mode (RLCOURSE_REDUCED=1): a few steps per loop")
    parser.add_argument("--require-cuda", action="store_true", help="fail unless torch sees a CUDA device")
    parser.add_argument("--progress", action="store_true", help="show tqdm progress bars (off: TQDM_DISABLE=1)")
    parser.add_argument("--stop-on-error", action="store_true", help="stop at the first failing notebook")
    parser.add_argument("--model", help='policy name for the config cells instead of "tiny" (e.g. course-gpt2)')
    parser.add_argument("--cell-times", action="store_true", help="print the wall time of every code cell over 1 s")
    parser.add_argument("--seed", type=int, help="SEED for the config cells instead of 0")
    parser.add_argument("--jobs", type=int, default=1,
                        help="run this many notebooks at a time (default 1; --stop-on-error then does not apply)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        try:
            execute(args.child, args.model, args.cell_times, args.launched, args.seed)
        except BaseException:  # noqa: BLE001 - report any failure, with its traceback, through the exit code
            traceback.print_exc(file=sys.stdout)
            return 1
        return 0

    import torch
    import transformers

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"device: {device_name()} (torch.version.cuda = {torch.version.cuda})")
    if args.require_cuda and not torch.cuda.is_available():
        print("ERROR: --require-cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    mode = "reduced" if args.reduced else "full"
    paths = [notebook_file(n) for n in (args.notebooks or assignment_ids())]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"ERROR: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2

    start = time.perf_counter()
    if args.jobs > 1:
        summary = run_all(paths, args, mode)
    else:
        summary = []
        for path in paths:
            print(f"\n=== {path.stem} ({mode} mode) ===", flush=True)
            code, seconds, results = run_child(path, args.reduced, args.progress, args.model, args.cell_times,
                                               seed=args.seed)
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"=== {path.stem}: {status}, {seconds:.1f} s", flush=True)
            summary.append((path.stem, status, seconds, results))
            if code != 0 and args.stop_on_error:
                break
    elapsed = time.perf_counter() - start

    print(f"\n##### summary ({mode} mode, {device_name()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__})")
    for name, status, seconds, results in summary:
        print(f"[wall time] {name} = {seconds:.1f} s  {status}")
        for line in results:
            print(f"    {line}")
    print(f"[wall time] total = {sum(s for _, _, s, _ in summary):.1f} s")
    if args.jobs > 1:
        print(f"[wall time] elapsed = {elapsed:.1f} s, {args.jobs} notebooks at a time")
    failed = [name for name, status, _, _ in summary if status != "ok"]
    if failed or len(summary) < len(paths):
        print(f"FAILED: {', '.join(failed) or 'stopped early'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
