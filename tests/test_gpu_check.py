"""benchmarks/run_notebook.py (the runner of benchmarks/gpu_check.sh) runs notebooks without Jupyter."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT
RUNNER = ROOT / "benchmarks" / "run_notebook.py"

# a sitecustomize that makes the notebook tool chain unimportable, as on a bare GPU machine
BLOCKER = '''
import importlib.abc, sys
BLOCKED = ("nbformat", "nbclient", "nbconvert", "nbgrader", "jupyter", "jupyter_client", "ipykernel", "IPython")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on a bare GPU machine")
sys.meta_path.insert(0, Block())
'''


def run(args, tmp_path, timeout=300):
    blocker = tmp_path / "block"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    env.pop("NBGRADER_EXECUTION", None)
    return subprocess.run([sys.executable, str(RUNNER), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout)


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": source.splitlines(keepends=True)} for source in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.slow
def test_runs_a_course_notebook_in_reduced_mode_without_jupyter(tmp_path):
    result = run(["--reduced", "01_generation_as_rl"], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "torch " in out and "transformers " in out
    assert "[device] cpu" in out or "[device] cuda" in out
    assert "[wall time] 01_generation_as_rl = " in out and "ok" in out


def test_results_magics_and_a_failing_notebook(tmp_path):
    good = write_notebook(tmp_path / "good.ipynb", [
        "%matplotlib inline\n!pip install nothing\nimport os\nx = 2",
        "from rlcourse.config import reduced_mode\nprint(f'[result] x_squared = {x * x}')\n"
        "print('[result] reduced =', reduced_mode())\nprint('not a result line')",
    ])
    bad = write_notebook(tmp_path / "bad.ipynb", ["y = 1", "raise RuntimeError('this notebook is broken')"])
    result = run([str(good), str(bad)], tmp_path)
    out = result.stdout
    assert result.returncode == 1, out
    assert "[result] x_squared = 4" in out and "[result] reduced = False" in out  # full mode by default
    assert "    not a result line" not in out.split("##### summary")[1]
    assert "RuntimeError: this notebook is broken" in out and "Traceback" in out
    assert "good = " in out and "bad = " in out and "FAILED" in out
    reduced = run(["--reduced", str(good)], tmp_path)
    assert reduced.returncode == 0 and "[result] reduced = True" in reduced.stdout, reduced.stdout


def test_require_cuda_refuses_a_machine_without_one(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    result = run(["--require-cuda", "01_generation_as_rl"], tmp_path)
    assert result.returncode == 2 and "no CUDA device" in result.stderr


def test_cell_times_name_the_slow_cells_only(tmp_path):
    nb = write_notebook(tmp_path / "timed.ipynb", ["import time\nx = 1", "# sleeps\ntime.sleep(1.2)", "y = 2"])
    result = run(["--cell-times", str(nb)], tmp_path)
    assert result.returncode == 0, result.stdout
    timed = [line for line in result.stdout.splitlines() if "[cell time]" in line]
    assert len(timed) == 1 and "cell 1: 1." in timed[0] and "(time.sleep(1.2))" in timed[0], timed
    assert "[cell time]" not in run([str(nb)], tmp_path).stdout


def test_jobs_run_notebooks_side_by_side_and_keep_each_output_whole(tmp_path):
    cells = ["import time\nprint('[result] first = 1')", "time.sleep(2)\nprint('[result] second = 2')"]
    a = write_notebook(tmp_path / "a.ipynb", cells)
    b = write_notebook(tmp_path / "b.ipynb", cells)
    bad = write_notebook(tmp_path / "bad.ipynb", ["raise RuntimeError('broken')"])
    result = run(["--jobs", "3", str(a), str(b), str(bad)], tmp_path)
    out = result.stdout
    assert result.returncode == 1 and "FAILED" in out and "RuntimeError: broken" in out, out
    for name in ("a", "b"):  # each notebook's lines stay together, between its two headers
        block = out.split(f"=== {name} (full mode, 3 at a time) ===")[1].split(f"=== {name}: ok")[0]
        assert block.count("[result] first = 1") == 1 and block.count("[result] second = 2") == 1, out
        assert "[start-up] " in block
    summed = float(out.split("[wall time] total = ")[1].split(" s")[0])
    elapsed = float(out.split("[wall time] elapsed = ")[1].split(" s")[0])
    assert summed > 4 and elapsed < summed - 1.5, out  # two 2-second sleeps overlapped
