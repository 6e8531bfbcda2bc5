"""The notebooks' Colab cell, simulated: a fresh Python environment that has the course's runtime
packages but not the course, a fake ``google.colab`` module, and the repository URL pointed at a local
copy of this working tree (``file://``). Then the first cells of a notebook (Colab cell + setup), its
model load and one exercise with its test cell run from another directory.

Colab's preinstalled packages are played by this repository's ``.venv``: the fresh environment sees
its site-packages through a ``.pth`` line (``venv --system-site-packages`` would show the base
interpreter's packages, not the ``.venv``'s). A ``.pth`` line does not run the ``.venv``'s own
``.pth`` files, so the ``.venv``'s editable install of the course stays invisible, as on Colab.
Offline here: pip gets ``PIP_NO_INDEX=1`` and no build isolation (Colab has the network for both).
"""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from coursetools.layout import source_notebook
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT
NOTEBOOK = source_notebook("00_why_rl")

DRIVER = r'''
import json, os, sys
from importlib.metadata import version

nb = json.load(open(sys.argv[1]))
code = [c for c in nb["cells"] if c["cell_type"] == "code"]
src = lambda c: "".join(c["source"])
meta = lambda c: c.get("metadata", {}).get("nbgrader", {})
setup = [c for c in code if "setup" in c.get("metadata", {}).get("tags", [])]
model_load = next(c for c in code if c not in setup and "load_policy(" in src(c) and not meta(c).get("grade"))
answer = next(c for c in code if meta(c).get("solution"))
test = next(c for c in code if meta(c).get("grade_id") == "test_" + meta(answer)["grade_id"])

torch_before = version("torch")
ns = {"__name__": "__main__"}
for name, cell in [("colab", setup[0]), ("setup", setup[1]), ("model load", model_load),
                   ("answer", answer), ("test", test)]:
    print(f"--- running the {name} cell", flush=True)
    exec(compile(src(cell), f"<{name} cell>", "exec"), ns)

import rlcourse, torch
print("IN_COLAB", ns["IN_COLAB"])
print("RLCOURSE", rlcourse.__path__[0])
print("TORCH", torch.__file__, torch_before, version("torch"))
print("MODEL", type(ns["model"]).__name__, next(ns["model"].parameters()).device)
print("CWD", os.getcwd())
'''


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args], cwd=cwd,
                   check=True, capture_output=True)


@pytest.mark.slow
def test_colab_cell_installs_the_course_from_the_repository(tmp_path):
    # the "published" repository: this working tree (committed or not) as a fresh git repository
    published = tmp_path / "published"
    for rel in tracked_files(ROOT):
        (published / rel).parent.mkdir(parents=True, exist_ok=True)
        (published / rel).write_bytes((ROOT / rel).read_bytes())
    git("init", "-q", cwd=published)
    git("add", "-A", cwd=published)
    git("commit", "-q", "-m", "course", cwd=published)

    # "Colab": a fresh environment with the runtime packages but no course, and google.colab importable
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "colab_preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    fake = tmp_path / "fake-colab" / "google" / "colab"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('"""Stands in for Colab\'s google.colab module."""\n')
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NBGRADER_EXECUTION", "VIRTUAL_ENV")}
    not_yet = subprocess.run([str(python), "-c", "import rlcourse"], cwd=elsewhere, env=env, capture_output=True)
    assert not_yet.returncode != 0, "the fresh environment already sees the course: the simulation proves nothing"

    course_dir = tmp_path / "content" / "parrots-to-agents"
    (tmp_path / "driver.py").write_text(DRIVER)
    env.update(PYTHONPATH=str(tmp_path / "fake-colab"), RLCOURSE_REPO_URL=published.as_uri(),
               RLCOURSE_DIR=str(course_dir), RLCOURSE_REDUCED="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg",
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run([str(python), str(tmp_path / "driver.py"), str(NOTEBOOK)], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    lines = dict(line.split(" ", 1) for line in out.splitlines() if line.split(" ", 1)[0].isupper() and " " in line)
    assert lines["IN_COLAB"] == "True"
    assert (course_dir / ".git").is_dir(), "the Colab cell did not clone the repository"
    assert lines["RLCOURSE"] == str(course_dir / "rlcourse"), "rlcourse was not imported from the clone"
    torch_file, before, after = lines["TORCH"].split()
    assert torch_file.startswith(sysconfig.get_paths()["purelib"]) and before == after, "Colab's torch was replaced"
    assert lines["MODEL"].startswith("GPT2LMHeadModel")
    assert lines["CWD"] == str(elsewhere)

    # the install is editable and lasts: a new process imports the course from the clone, from any folder
    again = subprocess.run([str(python), "-c", "import rlcourse; print(rlcourse.__path__[0])"], cwd=tmp_path,
                           env={k: v for k, v in env.items() if k != "PYTHONPATH"}, capture_output=True, text=True)
    assert again.stdout.strip() == str(course_dir / "rlcourse"), again.stderr


def test_colab_cell_is_plain_python_that_does_nothing_off_colab():
    nb = json.loads(NOTEBOOK.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    ns: dict = {}
    exec("".join(cell["source"]), ns)  # noqa: S102 - our own notebook; google.colab is not importable here
    assert ns["IN_COLAB"] is False
    assert "RLCOURSE_REPO_URL" in "".join(cell["source"])
