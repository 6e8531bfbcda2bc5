"""``--no-sandbox`` as root, Gradescope's fallback where bubblewrap cannot start (issue 26).

The student's code then runs as an unprivileged uid whose only readable course files are the student-safe
copy (``sandbox.prepare_root``), in an empty private HOME; the answer key, the hidden tests, the job file,
the gradebooks and the output folder stay out of its reach. Run end to end through ``run_autograder`` in a
simulated ``/autograder`` tree that other users can pass through (so its own ``chmod`` is what protects it),
with a Python environment every user can run (this machine's may live under /root). Fixture course:
``sft_loss`` 1 visible + 2 hidden points, ``sequence_log_prob`` 1 + 1.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import pytest

from autograder import remote, sandbox
from autograder.errors import GradingError
from autograder.grade import grade
from autograder.pool import GradingOptions
from demo_course import COURSE, REPLAY_SEQ, REPLAY_SFT, SEQ_OK, SFT_OK, notebook
from rlcourse.paths import REPO_ROOT

REPO = REPO_ROOT
HIDDEN_VALUES = ["7.0 / 3", "2.33333", "[-6.0, -0.5]", "[[-1.0, -1.0], [-4.0, -2.0]]", "BEGIN HIDDEN TESTS"]

as_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"),
                             reason="runs the student's code as another user: needs root and setpriv")


def _open_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def python_for_all():
    """A virtual environment other users can run: this interpreter's version from /usr/bin, with this
    environment's site-packages on its path (its own .pth files are not read: no editable course package)."""
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        pytest.skip(f"no {system} to make a Python environment other users can run")
    base = _open_dir("rlvenv-")
    venv = base / "venv"
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                   "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "course-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    scripts = Path(sysconfig.get_paths()["scripts"])
    for name in ("alembic", "jupyter", "jupyter-nbconvert", "jupyter-kernel"):  # nbgrader runs these from PATH
        if (scripts / name).exists():
            body = (scripts / name).read_text().split("\n", 1)[1]
            (venv / "bin" / name).write_text(f"#!{venv / 'bin' / 'python'}\n{body}")
            (venv / "bin" / name).chmod(0o755)
    yield venv / "bin" / "python"
    shutil.rmtree(base, ignore_errors=True)


def probe_notebook(targets: list[str]) -> str:
    """Answers that try the answer key, then report every grader file they could read, from the paths they were
    given and from what their process can see (environment, working folder, /proc of their ancestors)."""
    probe = f"""
import os, json
TARGETS = {targets!r}
MARKERS = ('BEGIN HIDDEN' + ' TESTS', '"hidden"', 'def sft' + '_loss', 'auto_score', 'SQLite format')
SKIP = ('/usr', '/lib', '/bin', '/sbin', '/etc', '/proc', '/sys', '/dev', os.environ.get('PYTHONPATH', '/-'),
        os.environ.get('HOME', '/-'),
        os.path.dirname(os.path.dirname(os.__file__)))

def _paths_seen():
    seen = set(TARGETS) | {{os.getcwd(), os.environ.get('HOME', '/')}}
    seen |= {{p for v in os.environ.values() for p in v.split(':') if p.startswith('/')}}
    pid = os.getpid()
    for _ in range(8):
        for link in ('cwd', 'root', 'exe'):
            try:
                seen.add(os.readlink(f'/proc/{{pid}}/{{link}}'))
            except OSError:
                pass
        for name in ('environ', 'cmdline'):
            try:
                words = open(f'/proc/{{pid}}/{{name}}', 'rb').read().decode(errors='replace').split('\\0')
                seen |= {{p for w in words for p in w.replace('=', ':').split(':') if p.startswith('/')}}
            except OSError:
                pass
        try:
            pid = int(next(x for x in open(f'/proc/{{pid}}/status') if x.startswith('PPid')).split()[1])
        except (OSError, StopIteration, ValueError):
            break
    return seen | {{os.path.dirname(p) for p in seen}}

def _read(path):
    try:
        with open(path, 'rb') as fh:
            return fh.read(1 << 20).decode(errors='replace')
    except OSError:
        return None

def _probe():
    found, tried = [], 0
    for top in sorted(_paths_seen()):
        if not top.startswith('/') or top.startswith(SKIP) or top in ('/', '/tmp'):
            continue
        walk = [(top, [], [''])] if not os.path.isdir(top) else os.walk(top)
        for n, (folder, _, files) in enumerate(walk):
            for f in files[:200]:
                path = os.path.join(folder, f) if f else folder
                tried += 1
                text = _read(path)
                if text is not None and (path in TARGETS or any(m in text for m in MARKERS)):
                    found.append(path)
            if n > 200:
                break
    for target in TARGETS:
        tried += 1
        if os.path.isdir(target) and os.access(target, os.R_OK | os.X_OK):
            found.append(target)
    return f'PROBE uid={{os.getuid()}} tried={{tried}} found={{sorted(set(found))}}'

REPORT = _probe()

def _answer_key(name):
    try:
        import rlcourse.reference as ref
        return getattr(ref, name)
    except Exception:
        pass
    for target in TARGETS:
        text = _read(target) if target.endswith('reference.py') else None
        try:
            scope = {{'__name__': 'rlcourse.answer_key', '__package__': 'rlcourse'}}
            exec(text, scope)
            return scope[name]
        except Exception:
            pass
"""
    sft = probe + ("def sft_loss(token_logps, mask):\n    key = _answer_key('sft_loss')\n"
                   "    if key is None:\n        raise ValueError(REPORT)\n    return key(token_logps, mask)\n")
    seq = ("def sequence_log_prob(token_logps, mask):\n    key = _answer_key('sequence_log_prob')\n"
           "    return key(token_logps, mask) if key else token_logps.sum(-1) * 0\n")
    return notebook({"sft_loss": sft, "sequence_log_prob": seq})


@pytest.fixture
def gradescope_tree():
    """A Gradescope /autograder tree of the fixture course, in a folder every user can pass through."""
    base = _open_dir("rlgs-")
    zpath = base / "autograder.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "gradescope.py"), "demo", "--out", str(zpath),
                    "--course-root", str(COURSE)], check=True, capture_output=True)
    root = base / "autograder"
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(root / "source")
    zpath.unlink()  # it holds the hidden tests too: Gradescope's container has only the unpacked tree
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    yield root
    shutil.rmtree(base, ignore_errors=True)


def run_unsandboxed(root: Path, python: Path, text: str) -> dict:
    """run_autograder as where the container allows no sandbox; what the student is shown (results.json, the
    feedback page) and grades.csv, each checked for hidden test values."""
    (root / "submission" / "demo.ipynb").write_text(text)
    env = {"GRADESCOPE_ROOT": str(root), "RLCOURSE_PYTHON": str(python), "RLCOURSE_NO_SANDBOX": "1",
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True, text=True, timeout=600)
    log = (root / "grading.log").read_text()
    assert proc.returncode == 0 and (root / "results" / "results.json").exists(), (proc.stdout, log[-3000:])
    shown = {"results.json": (root / "results" / "results.json").read_text(),
             "feedback": next((root / "grading").glob("feedback/*/*/*.html")).read_text(),
             "grades.csv": (root / "grading" / "grades.csv").read_text()}
    for where, text in shown.items():
        assert not [v for v in HIDDEN_VALUES if v in text], (where, text[-3000:])
    written = [root / "results" / "results.json", root / "grading.log", root / "grading" / "grades.csv",
               *(root / "grading").glob("feedback/*/*/*.html")]
    assert not [p for p in written if p.stat().st_mode & 0o077], "umask 077: nothing for other users"
    return shown


@as_root
def test_unsandboxed_student_reads_nothing_of_the_grader(python_for_all, gradescope_tree):
    root = gradescope_tree
    course, grading = root / "source" / "course", root / "grading"
    ws = grading / ".grading" / "tmp" / f"ws-{hashlib.sha256(b'student/demo/demo').hexdigest()[:16]}"
    targets = [course / "rlcourse" / "reference.py", course / "solutions" / "demo" / "demo.ipynb",
               course / "solutions", ws / "student.json", ws / "job.json", ws / "gradebook.db", ws,
               ws / "submitted" / "student" / "demo" / "demo.ipynb", grading / "gradebook.db",
               grading / ".grading" / "tmp", grading, root / "results", root / "grading.log"]
    shown = run_unsandboxed(root, python_for_all, probe_notebook([str(t) for t in targets]))
    res = json.loads(shown["results.json"])
    assert res["score"] == 0, res  # nothing from the answer key
    message = next(t["output"] for t in res["tests"] if t["name"] == "demo: sft_loss")
    assert "PROBE uid=" in message and "found=[]" in message, message
    uid = int(message.split("PROBE uid=")[1].split()[0])
    assert uid != 0 and int(message.split("tried=")[1].split()[0]) >= len(targets)
    assert "unsandboxed" in res["output"]


@as_root
def test_unsandboxed_hidden_inputs_recorded_then_raised_stay_hidden(python_for_all, gradescope_tree):
    """A function records its hidden test's inputs (a global, a file under /tmp), another raises them in its visible
    test: the process that runs the visible test is a fresh one, and what the earlier one left in /tmp is gone."""
    shown = run_unsandboxed(gradescope_tree, python_for_all,
                            notebook({"sft_loss": REPLAY_SFT, "sequence_log_prob": REPLAY_SEQ}))
    res = json.loads(shown["results.json"])
    assert res["score"] == 3.0 and "REPLAY [] FILE" in shown["results.json"], res


@pytest.fixture
def unreachable_python(tmp_path, monkeypatch):
    """The interpreter as if it lived under a private home (pyenv or conda under /root)."""
    private = tmp_path / "root-home"
    private.mkdir(mode=0o700)
    (private / "python3").write_text("")
    monkeypatch.setattr(sandbox, "interpreter_files", lambda: [private / "python3"])
    return private / "python3"


@as_root
def test_no_sandbox_never_runs_the_student_as_root(tmp_path, unreachable_python):
    """Issue 26: with Python under a private home nothing was dropped and the student's cell printed uid=0. Now
    the grader refuses, up front and again where the student's process would start, saying how to fix it."""
    problem = sandbox.unprivileged_problem()
    assert str(unreachable_python) in problem and "where every user can read it" in problem
    root = sandbox.prepare_root(tmp_path / "area" / "grader")
    with pytest.raises(RuntimeError, match="cannot start the student's process without the sandbox"):
        sandbox.command(root, no_sandbox=True, uid=61099)
    job = {"sandbox_root": str(root), "no_sandbox": True, "log": str(tmp_path / "student.log"), "uid": 61099,
           "prelude": [], "cells": [], "names": []}
    student = remote.StudentProcess(job, tmp_path / "events.jsonl")
    with pytest.raises(RuntimeError, match="every user can read it"):
        student.start()
    assert student.proc is None  # nothing started, as root or otherwise
    sub = tmp_path / "class" / "s0"
    sub.mkdir(parents=True, mode=0o700)
    (sub / "demo.ipynb").write_text(notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK}))
    with pytest.raises(GradingError, match="cannot grade with --no-sandbox: .*every user can read it"):
        grade(sub.parent, tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}", quiet=True,
              nbgrader_dir=tmp_path / "nb", options=GradingOptions(no_sandbox=True))
    assert not (tmp_path / "out").exists()


@as_root
def test_no_sandbox_runs_the_student_as_another_uid_where_python_is_readable(monkeypatch):
    readable = _open_dir("rlpython-")
    (readable / "python3").write_text("")
    (readable / "python3").chmod(0o644)
    monkeypatch.setattr(sandbox, "interpreter_files", lambda: [readable / "python3"])
    root = sandbox.prepare_root(sandbox.student_area() / "grader")
    try:
        argv, env = sandbox.command(root, no_sandbox=True, uid=61099)
        assert argv[:3] == [sandbox.SETPRIV, "--reuid=61099", "--regid=61099"]
        home = Path(env["HOME"])
        assert home.stat().st_uid == 61099 and home.stat().st_mode & 0o777 == 0o700 and not list(home.iterdir())
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
        shutil.rmtree(readable, ignore_errors=True)


@as_root
def test_a_temporary_folder_the_student_cannot_reach_is_refused(tmp_path, monkeypatch):
    """The student-safe copy lives in the temporary folder: where the student's user cannot reach it (a private
    TMPDIR), grading stops up front with how to fix it, instead of failing on every notebook."""
    private = tmp_path / "tmp"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with pytest.raises(RuntimeError, match="set TMPDIR to a folder every user can pass through"):
        sandbox.student_area()
    assert list(private.iterdir()) == []


def test_gradescope_setup_installs_python_every_user_can_run():
    """The fallback runs the student's code as an unprivileged user: setup.sh makes the venv from the system's
    python3, opens it to every user and checks that such a user can run it."""
    setup = (REPO / "autograder" / "gradescope" / "setup.sh").read_text()
    assert "apt-get install" in setup and "python3 -m venv /autograder/venv" in setup
    assert "chmod -R a+rX /autograder/venv" in setup
    assert "setpriv --reuid=65534" in setup and "/autograder/venv/bin/python -c" in setup
