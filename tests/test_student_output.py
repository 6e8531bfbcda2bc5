"""What a student sees: named stubs, the kernelspec Jupyter writes, quiet model loading and kernels,
and a one-line message (no empty plot) when a cell needs an exercise that is not written yet."""
from __future__ import annotations

import json

import nbformat
import pytest

import notebook_harness as H

from coursetools import layout
from rlcourse.checks import ExerciseMissing, needs_your_code


# ----------------------------------------------------------------------------- the release
def test_stub_names_its_exercise_and_keeps_your_code_here():
    stub = 'def f(x):\n    """doc"""\n    # YOUR CODE HERE\n    raise NotImplementedError()'
    named = layout.name_stubs(stub, "sft_loss")
    assert "    # YOUR CODE HERE\n" in named
    assert named.endswith('    raise NotImplementedError("sft_loss: replace this line with your code '
                          '(between the docstring and the end of the cell)")')
    namespace: dict = {}
    exec(named, namespace)  # noqa: S102 - our own stub
    with pytest.raises(NotImplementedError, match="^sft_loss: replace this line"):
        namespace["f"](1)


@pytest.mark.parametrize("assignment", H.assignment_ids())
def test_release_stubs_are_named_and_metadata_is_what_jupyter_writes(assignment):
    from nbgrader.utils import compute_checksum

    for path in (H.notebook_path(assignment), H.notebook_path(assignment, release=True)):
        meta = json.loads(path.read_text())["metadata"]
        assert meta["kernelspec"] == layout.KERNELSPEC, f"{path}: kernelspec should be {layout.KERNELSPEC}"
        assert meta["language_info"] == layout.LANGUAGE_INFO, path
    nb = H.load(H.notebook_path(assignment, release=True))
    for name, ex in H.exercises(nb).items():
        assert "# YOUR CODE HERE" in ex.answer.source
        assert f'raise NotImplementedError("{name}: replace this line with your code' in ex.answer.source, name
        assert H.nbgrader_meta(ex.answer)["checksum"] == compute_checksum(ex.answer), f"{name}: stale checksum"


def test_release_writes_the_kernelspec_whatever_the_source_says(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, str(path))
    layout.finish_notebook(path)
    meta = json.loads(path.read_text())["metadata"]
    assert meta["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    assert meta["language_info"] == layout.LANGUAGE_INFO


# ----------------------------------------------------------------------------- needs_your_code
NOTEBOOK_CODE = '''
def grpo_loss(x):
    """The learner's stub."""
    # YOUR CODE HERE
    raise NotImplementedError("grpo_loss: replace this line with your code")


def train():
    return [grpo_loss(step) for step in range(3)]


import matplotlib.pyplot as plt
curve = []
with needs_your_code() as grpo_run:
    fig, ax = plt.subplots()
    curve = train()
PLOTTED = True
'''


def _run_cell(code: str, namespace: dict) -> None:
    exec(compile(code, "<cell>", "exec"), namespace)  # noqa: S102 - our own test cells


def test_needs_your_code_names_the_missing_exercise_and_skips_the_plot():
    import matplotlib.pyplot as plt

    plt.close("all")
    ns = {"needs_your_code": needs_your_code, "__name__": "__main__"}
    with pytest.raises(ExerciseMissing, match=r"needs your `grpo_loss`") as info:
        _run_cell(NOTEBOOK_CODE, ns)
    assert "PLOTTED" not in ns, "the rest of the cell (the plot) ran"
    assert plt.get_fignums() == [], "an empty figure was left to be drawn"
    assert info.value._render_traceback_() == [f"ExerciseMissing: {info.value}"]  # Jupyter shows one line
    with pytest.raises(ExerciseMissing, match=r"results of the run above, which needs your `grpo_loss`"):
        _run_cell("grpo_run.require()\nPLOTTED_LATER = True", ns)
    assert "PLOTTED_LATER" not in ns


def test_needs_your_code_passes_other_errors_and_success_through():
    ns = {"needs_your_code": needs_your_code, "__name__": "__main__"}
    _run_cell("with needs_your_code() as run:\n    x = 1\nrun.require()", ns)
    assert ns["run"] and ns["x"] == 1
    with pytest.raises(ValueError):
        _run_cell("def f():\n    raise ValueError('bad shapes')\nwith needs_your_code():\n    f()", ns)
    with pytest.raises(NotImplementedError):  # not raised by a notebook function: not a stub
        _run_cell("import fractions\nwith needs_your_code():\n    raise NotImplementedError('library')", ns)


@pytest.mark.parametrize("assignment", H.assignment_ids())
def test_training_cells_guard_the_learners_functions(assignment):
    """Every cell outside setup and tests that calls an exercise does so inside needs_your_code (or after require)."""
    nb = H.load(H.notebook_path(assignment))
    names = set(H.exercises(nb))
    test_cells = {id(c) for ex in H.exercises(nb).values() for c in ex.tests}
    for cell in nb.cells:
        if cell.cell_type != "code" or H.is_setup(cell) or id(cell) in test_cells or H.nbgrader_meta(cell).get("solution"):
            continue
        called = {n for n in names if f"{n}(" in cell.source}
        if called:
            assert "needs_your_code()" in cell.source or ".require()" in cell.source, \
                f"{assignment}: a cell calls {sorted(called)} without needs_your_code"


# ----------------------------------------------------------------------------- quiet loading and kernels
def test_load_policy_prints_no_progress_bar(capfd):
    from transformers.utils import logging as hf_logging

    from rlcourse.model import load_policy

    load_policy("tiny")
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err, err[-500:]
    assert hf_logging.is_progress_bar_enabled(), "load_policy should switch the bars back on afterwards"


def test_course_kernels_start_without_the_tcp_warning(capfd):
    import nbclient
    from traitlets.config import Config

    from coursetools.kernels import kernel_manager_config

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print('hello', file=sys.stderr)")])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, config=Config(kernel_manager_config())).execute()
    err = capfd.readouterr().err
    outputs = json.dumps(nb.cells[0].outputs)
    assert "without encryption" not in err + outputs, err[-500:]
    assert "hello" in outputs
