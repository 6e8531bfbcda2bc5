"""A student's first minutes, in a real browser: `bash scripts/course.sh lab` on a fresh workspace,
a notebook opened and its first cells run in headless Chromium, driven by Playwright for Python.

Checks: the workspace is created and JupyterLab serves it; nbgrader's instructor tools are absent
(no Create Assignment, Formgrader or Course List) while Validate and the Assignment List are there;
no prompt about Jupyter news (the announcements plugin is off);
opening the notebook does not modify it; the first cells run with no error and nothing on stderr
(no "Loading weights" bar); the stub's error names the exercise, a training cell that needs it says
so in one line; no error dialog; the server log has no warning.

Chromium comes from Debian (`bash scripts/install_browser.sh`, which `bash scripts/course.sh test`
runs); the test installs it itself when it is missing and skips only when that install fails. Playwright
drives that Chromium (`executable_path`): it downloads no browser of its own.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from playwright.sync_api import Page, sync_playwright
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT
NOTEBOOK = "00_why_rl/00_why_rl.ipynb"
TOKEN = "rlcourse-browser-test"
INSTRUCTOR_COMMANDS = ("nbgrader:open-formgrader", "nbgrader:open-formgrader-local", "nbgrader:open-create-assignment",
                       "nbgrader:open-course-list")


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None:
        result = subprocess.run(["bash", "scripts/install_browser.sh"], cwd=ROOT, capture_output=True, text=True)
        path = find_chromium()
        if path is None:
            pytest.skip(f"Chromium could not be installed: {(result.stderr or result.stdout).strip()[-300:]}")
    return path


@pytest.fixture
def student_lab(tmp_path):
    """`bash scripts/course.sh lab` on a fresh workspace, on a free port with a token; yields (url, log, workspace)."""
    port = free_port()
    home = tmp_path / "jupyter-home"
    env = dict(os.environ, RLCOURSE_WORKSPACE=str(tmp_path / "workspace"), RLCOURSE_REDUCED="1",
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"))  # the student's own ~/.jupyter is not touched
    env.pop("JUPYTER_CONFIG_PATH", None)
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        lab = subprocess.Popen(["bash", "scripts/course.sh", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                                f"--IdentityProvider.token={TOKEN}", "--LabApp.expose_app_in_browser=True"],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if lab.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield url, log, tmp_path / "workspace"
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)


PANEL = "jupyterapp.shell.currentWidget"
KERNEL_IDLE = (f"(() => {{ const p = {PANEL}; const k = p && p.sessionContext && p.sessionContext.session"
               " && p.sessionContext.session.kernel; return !!k && k.status === 'idle'; })()")


def wait_for(page: Page, expression: str, timeout: float = 30):
    """The first truthy value of a JavaScript expression, polled until ``timeout`` seconds."""
    return page.wait_for_function(expression, timeout=timeout * 1000, polling=250).json_value()


def run_cell(page: Page, index: int, timeout: float = 90) -> list:
    """Run cell ``index`` of the open notebook as a student would (select it, Run); returns its outputs."""
    page.evaluate(f"{PANEL}.content.activeCellIndex = {index}")
    page.evaluate("jupyterapp.commands.execute('notebook:run-cell').then(() => true)")
    wait_for(page, f"{PANEL}.content.widgets[{index}].model.executionCount !== null && {KERNEL_IDLE}", timeout)
    return page.evaluate(f"{PANEL}.content.widgets[{index}].model.outputs.toJSON()")


def nbgrader_menu_items(page: Page) -> list[str]:
    """Click the Nbgrader menu and read its visible entries."""
    page.locator(".lm-MenuBar-item", has_text="Nbgrader").click()
    page.locator(".lm-Menu .lm-Menu-item").first.wait_for(timeout=10_000)
    items = [t.strip() for t in page.locator(".lm-Menu .lm-Menu-item:visible").all_inner_texts() if t.strip()]
    page.keyboard.press("Escape")
    return items


def test_student_opens_a_notebook_and_runs_its_first_cells(chromium, student_lab):
    url, log, workspace = student_lab
    start = time.monotonic()
    assert (workspace / NOTEBOOK).is_file() and (workspace / ".release.json").is_file()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page()
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={TOKEN}")
        wait_for(page, f"window.jupyterapp && {PANEL} && {PANEL}.content && {PANEL}.content.widgets.length > 5", 60)
        wait_for(page, KERNEL_IDLE, 60)

        # student mode: the instructor's nbgrader tools are not there, Validate and the Assignment List are
        commands = page.evaluate("jupyterapp.commands.listCommands().filter(c => c.startsWith('nbgrader'))")
        assert not set(INSTRUCTOR_COMMANDS) & set(commands), commands
        assert "nbgrader:open-assignment-list" in commands
        assert page.evaluate("jupyterapp.isPluginActivated('@jupyter/nbgrader:validate-assignment')")
        assert wait_for(page, "[...document.querySelectorAll('.jp-Toolbar-item')].some(e => e.innerText.trim() === 'Validate')", 10)
        assert not page.evaluate("document.body.innerText.includes('Create Assignment')")
        assert nbgrader_menu_items(page) == ["Assignment List"]
        # no "Would you like to get notified about official Jupyter news?": the announcements plugin is off
        assert not page.evaluate("jupyterapp.isPluginActivated('@jupyterlab/apputils-extension:announcements')")
        assert not page.evaluate("document.body.innerText.includes('official Jupyter news')")

        # opening the notebook (kernel started, kernelspec and language_info set) did not modify it
        assert page.evaluate(f"{PANEL}.context.model.dirty") is False

        # the first cells: the Colab cell, the imports and config, then loading the model
        code = page.evaluate(f"{PANEL}.content.widgets.map((w, i) => w.model.type === 'code' ? i : -1).filter(i => i >= 0)")
        for index in code[:3]:
            outputs = run_cell(page, index)
            assert not [o for o in outputs if o["output_type"] == "error"], outputs
            stderr = [o["text"] for o in outputs if o.get("name") == "stderr"]
            assert not stderr, f"cell {index} wrote to stderr: {stderr}"

        # the first exercise's test cell on the unanswered stub: the error names the exercise
        answer = page.evaluate(f"{PANEL}.content.widgets.findIndex(w => (w.model.getMetadata('nbgrader') || {{}}).grade_id === 'sft_loss')")
        run_cell(page, answer)
        errors = [o for o in run_cell(page, answer + 1) if o["output_type"] == "error"]
        assert errors and errors[0]["ename"] == "NotImplementedError", errors
        assert errors[0]["evalue"].startswith("sft_loss: replace this line with your code")
        # the training cell that needs it says so in one line, and draws no plot
        training = page.evaluate(f"{PANEL}.content.widgets.findIndex(w => w.model.sharedModel.getSource().includes('needs_your_code() as sft_run'))")
        outputs = run_cell(page, training)
        errors = [o for o in outputs if o["output_type"] == "error"]
        assert len(errors) == 1 and len(errors[0]["traceback"]) == 1 and "needs your `sft_loss`" in errors[0]["traceback"][0]
        assert not [o for o in outputs if "image/png" in o.get("data", {})], "an empty plot was drawn"

        assert page.evaluate("document.querySelectorAll('.jp-Dialog').length") == 0, \
            page.evaluate("[...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText)")
        browser.close()
    server_log = log.read_text()
    warnings = [line for line in server_log.splitlines() if re.match(r"\[[WEC] ", line) or "WARNING" in line]
    assert not warnings, "\n".join(warnings)
    assert "No nbgrader_config.py" not in server_log
    assert time.monotonic() - start < 60
