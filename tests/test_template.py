"""One notebook template (CONTRIBUTING.md, "Notebook cells"), checked on every source notebook.

The same Colab cell; a locked setup cell that holds every knob; the policy's device (no device picked by
hand); optimiser steps through ``rlcourse.optim.optimizer_step``; seeds by name; summary figures through
``Report``, so that every ``[result]`` line reads ``<notebook>_<metric>``.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from notebook_harness import load

from coursetools.layout import assignment_ids, is_setup_cell, nbgrader_meta, source_notebook
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT
PATHS = [source_notebook(a) for a in assignment_ids()]
CONFIG_MARKER = "# ---- config: every knob of this notebook ----"
SEED_CALLS = {"seed_everything", "manual_seed", "Random", "seed"}


def ids(paths):
    return [p.stem for p in paths]


def code_cells(nb, include_tests=False):
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if not include_tests and (nbgrader_meta(cell).get("grade_id") or "").startswith("test_"):
            continue
        yield i, cell


def locked_setup(cell, grade_id):
    meta = cell.metadata.get("nbgrader", {})
    return (is_setup_cell(cell) and meta.get("grade_id") == grade_id and meta.get("locked") is True
            and not meta.get("grade") and not meta.get("solution"))


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_opening_cells(path):
    nb, aid = load(path), path.stem
    title = nb.cells[0]
    assert title.cell_type == "markdown" and title.source.startswith(f"# {aid[:2]} · "), \
        f"{aid}: cell 0 is the title, '# {aid[:2]} · ...'"
    assert f"notebooks/{aid}/{aid}.ipynb" in title.source, f"{aid}: the Open-in-Colab badge links the release"
    assert locked_setup(nb.cells[1], "colab"), f"{aid}: cell 1 is the locked Colab cell (tag setup, grade_id colab)"
    assert locked_setup(nb.cells[2], "setup"), f"{aid}: cell 2 is the locked setup cell (tag setup, grade_id setup)"
    setup = nb.cells[2].source
    assert "set_threads()" in setup, f"{aid}: the setup cell calls set_threads()"
    assert CONFIG_MARKER in setup, f"{aid}: the setup cell has the line {CONFIG_MARKER!r}"
    config = setup[setup.index(CONFIG_MARKER):]
    assert re.search(r'^MODEL_NAME = "tiny"', config, re.M) and re.search(r"^SEED = 0$", config, re.M), \
        f"{aid}: MODEL_NAME and SEED open the config"
    for i, cell in code_cells(nb, include_tests=True):
        if i > 2 and is_setup_cell(cell):
            assert cell.metadata.get("nbgrader", {}).get("locked") is True, f"{aid} cell {i}: a setup cell is locked"


def test_every_config_cell_names_the_same_model_choices():
    """One MODEL_NAME line everywhere: the tiny model by default, and the other choices named (README, "On a GPU")."""
    lines = {re.search(r'^MODEL_NAME = .*$', load(p).cells[2].source, re.M).group(0) for p in PATHS}
    assert len(lines) == 1, f"the MODEL_NAME lines differ between notebooks: {sorted(lines)}"
    line = lines.pop()
    assert all(f'"{name}"' in line for name in ("tiny", "course-gpt2", "gpt2", "distilgpt2")), line


def test_the_colab_cell_is_the_same_everywhere():
    cells = {load(p).cells[1].source for p in PATHS}
    assert len(cells) == 1, "the Colab cell differs between notebooks"


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_knobs_live_in_the_config_cell(path):
    nb, aid = load(path), path.stem
    for i, cell in code_cells(nb):
        if i != 2:
            assert "pick(" not in cell.source, f"{aid} cell {i}: pick(full, reduced) belongs in the config cell"


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_device_and_optimiser_steps_come_from_the_package(path):
    nb, aid = load(path), path.stem
    for i, cell in code_cells(nb):
        src = cell.source
        assert "get_device(" not in src, f"{aid} cell {i}: load_policy picks the device; use policy.device"
        assert not re.search(r"load_policy\([^)]*device=", src), f"{aid} cell {i}: load_policy(MODEL_NAME) picks the device"
        assert "clip_grad_norm_" not in src and ".zero_grad(" not in src, \
            f"{aid} cell {i}: take optimiser steps with optimizer_step(opt, loss, MAX_GRAD_NORM)"


def _has_number(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)
               for n in ast.walk(node))


def seed_literals(source: str) -> list[str]:
    """Seed expressions with a number in them, outside the config cell: calls that seed, seed= keywords,
    and defaults of parameters named seed."""
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            if name in SEED_CALLS:
                found += [ast.unparse(a) for a in node.args if _has_number(a)]
            found += [f"seed={ast.unparse(k.value)}" for k in node.keywords if k.arg == "seed" and _has_number(k.value)]
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
            args = node.args.args[len(node.args.args) - len(node.args.defaults):]
            found += [f"{a.arg}={ast.unparse(d)}" for a, d in zip(args, node.args.defaults)
                      if a.arg == "seed" and _has_number(d)]
    return found


def test_seed_literals_are_found():
    assert seed_literals("seed_everything(SEED + 1)") == ["SEED + 1"]
    assert seed_literals("g = torch.Generator().manual_seed(3)\nreview_prompts(4, seed=7)") == ["3", "seed=7"]
    assert seed_literals("def f(n, seed=123): pass") == ["seed=123"]
    assert seed_literals("seed_everything(SEED)\nreview_prompts(4, seed=TRAIN_SEED + step)\ndef f(seed=SEED): pass") == []


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_seeds_are_named_in_the_config(path):
    nb, aid = load(path), path.stem
    for i, cell in code_cells(nb):
        if i > 2:
            assert not seed_literals(cell.source), \
                f"{aid} cell {i}: seeds {seed_literals(cell.source)}: name them in the config cell (e.g. EVAL_SEED = 123)"


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_results_are_reported_with_the_notebook_prefix(path):
    nb, aid = load(path), path.stem
    reports = [c for _, c in code_cells(nb) if re.search(r"\breport\(", c.source)]
    for i, cell in code_cells(nb, include_tests=True):
        assert "[result]" not in cell.source, f"{aid} cell {i}: print figures with report(metric, value)"
    if reports:
        assert f'report = Report("{aid}")' in nb.cells[2].source, f'{aid}: the setup cell makes report = Report("{aid}")'


def test_the_benchmark_prints_each_notebooks_budget():
    """The reduced-mode budget is printed by the benchmark (the time itself is not asserted here)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "notebooks.py"), "--reduced", "01_generation_as_rl"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert re.search(r"wall time [\d.]+ s, (within|OVER) the reduced-mode budget of \d+ s", out.stdout), out.stdout


YOUR_CODE_LINE = "**Your code and course code.**"


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_the_line_between_your_code_and_course_code(path):
    """The opening cell says which cells are the learner's, in the same words in every notebook."""
    nb = load(path)
    openings = {load(p).cells[0].source.split(YOUR_CODE_LINE, 1)[-1] for p in PATHS}
    assert YOUR_CODE_LINE in nb.cells[0].source and len(openings) == 1, \
        f"{path.stem}: the opening cell ends with the same 'Your code and course code' paragraph as the others"
