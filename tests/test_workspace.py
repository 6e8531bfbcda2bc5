"""The student's workspace (coursetools/workspace.py): created from the release, updated without overwriting work."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from coursetools import workspace as W
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT


def _notebook(text: str):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A course notebook"),
                                         nbformat.v4.new_code_cell(text)])
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def _write(path: Path, nb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.fixture
def release(tmp_path):
    rel = tmp_path / "release"
    _write(rel / "00_intro" / "00_intro.ipynb", _notebook("x = 1"))
    _write(rel / "01_next" / "01_next.ipynb", _notebook("y = 2"))
    return rel


def _edit_cell(path: Path, text: str) -> None:
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[1].source = text
    nbformat.write(nb, str(path))


def test_first_run_copies_the_release_and_writes_a_manifest(tmp_path, release):
    ws = tmp_path / "ws"
    report = W.update(ws, release)
    assert sorted(report.added) == ["00_intro/00_intro.ipynb", "01_next/01_next.ipynb"]
    manifest = json.loads((ws / ".release.json").read_text())
    for rel in report.added:
        assert (ws / rel).is_file()
        entry = manifest["files"][rel]
        assert entry["release_sha256"] == W.sha256_file(release / rel)
        assert entry["digest"] == W.content_digest(ws / rel)  # the copy is what the release says
    copy = json.loads((ws / "00_intro/00_intro.ipynb").read_text())
    # the copy carries this Python's version, as the kernel will report it: opening it changes nothing
    assert copy["metadata"]["language_info"]["version"] == sys.version.split()[0]
    assert copy["metadata"]["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    assert W.update(ws, release).changes == 0


def test_update_brings_a_changed_release_in_and_leaves_an_edited_notebook_alone(tmp_path, release, capsys):
    ws = tmp_path / "ws"
    W.update(ws, release)
    _edit_cell(ws / "01_next/01_next.ipynb", "y = 2  # my own work")
    mine = (ws / "01_next/01_next.ipynb").read_bytes()
    # the course changes both notebooks and adds one
    _edit_cell(release / "00_intro/00_intro.ipynb", "x = 10")
    _edit_cell(release / "01_next/01_next.ipynb", "y = 20")
    _write(release / "02_new" / "02_new.ipynb", _notebook("z = 3"))

    assert W.main(["status", "--workspace", str(ws), "--release", str(release)]) == 0
    assert (ws / "01_next/01_next.ipynb").read_bytes() == mine and not (ws / "02_new").exists()  # status writes nothing
    capsys.readouterr()

    assert W.main(["update", "--workspace", str(ws), "--release", str(release)]) == 0
    out = capsys.readouterr().out
    assert (ws / "01_next/01_next.ipynb").read_bytes() == mine, "the student's notebook was overwritten"
    new = ws / "01_next/01_next.new.ipynb"
    assert nbformat.read(str(new), as_version=4).cells[1].source == "y = 20"
    assert nbformat.read(str(ws / "00_intro/00_intro.ipynb"), as_version=4).cells[1].source == "x = 10"
    assert (ws / "02_new/02_new.ipynb").is_file()
    assert "keep      01_next/01_next.ipynb" in out and "01_next/01_next.new.ipynb" in out
    assert "update    00_intro/00_intro.ipynb" in out and "add       02_new/02_new.ipynb" in out

    # again: nothing new is written, the waiting version is named
    report = W.update(ws, release)
    assert report.changes == 0 and report.waiting == [("01_next/01_next.ipynb", "01_next/01_next.new.ipynb")]

    # a further release: the untouched .new file is refreshed, the student's file still untouched
    _edit_cell(release / "01_next/01_next.ipynb", "y = 200")
    W.update(ws, release)
    assert nbformat.read(str(new), as_version=4).cells[1].source == "y = 200"
    assert (ws / "01_next/01_next.ipynb").read_bytes() == mine

    # the student edits the .new file too: a later release goes to .new-2, both edits stay
    _edit_cell(new, "y = 200  # looked at it")
    _edit_cell(release / "01_next/01_next.ipynb", "y = 2000")
    report = W.update(ws, release)
    assert report.kept == [("01_next/01_next.ipynb", "01_next/01_next.new-2.ipynb")]
    assert nbformat.read(str(new), as_version=4).cells[1].source == "y = 200  # looked at it"
    assert (ws / "01_next/01_next.ipynb").read_bytes() == mine


def test_running_a_notebook_counts_as_a_change_opening_it_does_not(tmp_path, release):
    ws = tmp_path / "ws"
    W.update(ws, release)
    opened = ws / "00_intro/00_intro.ipynb"
    nb = nbformat.read(str(opened), as_version=4)
    nb.metadata["language_info"] = {"name": "python", "version": "3.99.0", "mimetype": "text/x-python"}
    nb.metadata["kernelspec"]["display_name"] = "Python 3"
    nbformat.write(nb, str(opened))
    ran = ws / "01_next/01_next.ipynb"
    nb = nbformat.read(str(ran), as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    nbformat.write(nb, str(ran))
    _edit_cell(release / "00_intro/00_intro.ipynb", "x = 10")
    _edit_cell(release / "01_next/01_next.ipynb", "y = 20")
    report = W.update(ws, release)
    assert report.updated == ["00_intro/00_intro.ipynb"]
    assert report.kept == [("01_next/01_next.ipynb", "01_next/01_next.new.ipynb")]
    assert nbformat.read(str(ran), as_version=4).cells[1].outputs, "the student's outputs were lost"


def test_deleted_notebook_is_restored_and_an_adopted_new_version_is_recognised(tmp_path, release):
    ws = tmp_path / "ws"
    W.update(ws, release)
    (ws / "00_intro/00_intro.ipynb").unlink()
    assert W.update(ws, release).restored == ["00_intro/00_intro.ipynb"]

    mine = ws / "01_next/01_next.ipynb"
    _edit_cell(mine, "y = 2  # mine")
    _edit_cell(release / "01_next/01_next.ipynb", "y = 20")
    W.update(ws, release)
    shutil.move(str(ws / "01_next/01_next.new.ipynb"), str(mine))  # the student takes the new version
    report = W.update(ws, release)
    assert report.changes == 0 and not report.waiting


def test_a_same_named_file_the_course_did_not_write_is_never_overwritten(tmp_path, release):
    ws = tmp_path / "ws"
    _write(ws / "00_intro" / "00_intro.ipynb", _notebook("my own notebook"))  # e.g. a lost manifest
    before = (ws / "00_intro/00_intro.ipynb").read_bytes()
    report = W.update(ws, release)
    assert (ws / "00_intro/00_intro.ipynb").read_bytes() == before
    assert report.kept == [("00_intro/00_intro.ipynb", "00_intro/00_intro.new.ipynb")]
    assert W.update(ws, release).changes == 0


def test_lab_config_switches_off_the_instructor_tools_only(tmp_path, release):
    ws = W.prepare_lab(tmp_path / "ws", release)
    config = ws / ".jupyter"
    page = json.loads((config / "labconfig" / "page_config.json").read_text())
    for plugin in W.INSTRUCTOR_PLUGINS:
        assert page["disabledExtensions"].get(plugin) and page["lockedExtensions"].get(plugin), plugin
    for plugin in W.STUDENT_PLUGINS:
        assert not page["disabledExtensions"].get(plugin), plugin
    server = json.loads((config / "jupyter_server_config.json").read_text())
    extensions = server["ServerApp"]["jpserver_extensions"]
    assert extensions == {name: False for name in W.INSTRUCTOR_SERVER_EXTENSIONS}
    assert (config / "nbgrader_config.py").is_file()
    # what JupyterLab itself reads with the workspace config first on the path (as course.sh lab sets it)
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(config))
    code = ("from jupyterlab_server.config import get_page_config\n"
            "import json; print(json.dumps(get_page_config([])['disabledExtensions']))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert set(json.loads(out)) >= set(W.INSTRUCTOR_PLUGINS)


def test_lab_config_turns_off_the_jupyter_news_prompt(tmp_path, release):
    """Student mode greets nobody with "Would you like to get notified about official Jupyter news?": the
    announcements plugin (news and update check) is disabled in the workspace's page_config.json, also in a
    workspace whose configuration an earlier version wrote (instructor tools already off, news still on)."""
    plugin = "@jupyterlab/apputils-extension:announcements"
    assert plugin in W.QUIET_PLUGINS
    ws = W.prepare_lab(tmp_path / "ws", release)
    page_file = ws / ".jupyter" / "labconfig" / "page_config.json"
    page = json.loads(page_file.read_text())
    assert page["disabledExtensions"].get(plugin) and not page.get("lockedExtensions", {}).get(plugin)

    del page["disabledExtensions"][plugin]  # as an earlier version left it
    page_file.write_text(json.dumps(page))
    W.prepare_lab(ws, release)
    assert json.loads(page_file.read_text())["disabledExtensions"].get(plugin)
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(ws / ".jupyter"))  # what JupyterLab reads, as course.sh lab sets it
    code = ("from jupyterlab_server.config import get_page_config\n"
            "import json; print(json.dumps(get_page_config([])['disabledExtensions']))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert plugin in json.loads(out)


def test_course_sh_update_creates_and_updates_a_workspace(tmp_path):
    ws = tmp_path / "ws"
    env = dict(os.environ, RLCOURSE_WORKSPACE=str(ws))
    first = subprocess.run(["bash", "scripts/course.sh", "update"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert (ws / "00_why_rl/00_why_rl.ipynb").is_file() and (ws / ".release.json").is_file()
    second = subprocess.run(["bash", "scripts/course.sh", "update"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert second.returncode == 0 and "up to date" in second.stdout, second.stdout + second.stderr


def test_workspace_is_ignored_by_git():
    out = subprocess.run(["git", "check-ignore", "workspace/00_why_rl/00_why_rl.ipynb"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, "workspace/ should be in .gitignore"
