"""The grading command as an instructor runs it: intake of messy exports, a batch killed and run
again, a real PostgreSQL gradebook, and where nbgrader's own tools find the results.

Fixture course: tests/fixtures/course (``sft_loss`` 1 visible + 2 hidden points, ``sequence_log_prob``
1 + 1). Each graded notebook costs a few seconds, so each test grades one small class.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from autograder.errors import GradingError
from autograder.grade import grade
from autograder.pool import GradingOptions
from rlcourse.paths import REPO_ROOT

ROOT = REPO_ROOT
from demo_course import COURSE, RELEASE, SEQ_OK, SFT_OK, SFT_PARTIAL, gradebook_scores, notebook  # noqa: E402


def table(out: Path) -> dict:
    with open(out / "grades.csv") as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


def without_timing(out: Path) -> list:
    with open(out / "grades.csv") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


# ----------------------------------------------------------------------------- intake, via the README command
def test_messy_lms_zip_through_the_course_command(tmp_path):
    """Names with spaces and accents stay apart; junk files make no students; a corrupt entry or a
    malformed grade id costs only its own student; nbgrader folders and flat files mix; relative
    paths are the caller's."""
    def malformed(nb):  # grade ids of the wrong type (an editor or a script broke the metadata)
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader")
            if meta and meta.get("grade_id") == "sft_loss":
                meta["grade_id"] = ["sft_loss"]
            elif meta and meta.get("grade_id") == "test_sequence_log_prob":
                meta["grade_id"] = 7

    full = notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK})
    marker = "EVE-CORRUPT-MARKER"
    z = tmp_path / "work" / "export.zip"
    z.parent.mkdir()
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("Ana María_1001_demo.ipynb", full)
        zf.writestr("Ana Lopez_1002_demo.ipynb", RELEASE.read_text())
        zf.writestr(".DS_Store", b"\0\0\0\1Bud1")
        zf.writestr("__MACOSX/._Ana María_1001_demo.ipynb", b"\0\5\26\7")
        zf.writestr("ben/demo/demo.ipynb", notebook({"sft_loss": SFT_PARTIAL, "sequence_log_prob": SEQ_OK}))
        zf.writestr("cy_1003_demo.ipynb", notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK}, malformed))
        zf.writestr("eve_1004_demo.ipynb", full.replace('"nbformat"', f'"{marker}": 1, "nbformat"', 1))
    data = z.read_bytes()
    z.write_bytes(data.replace(marker.encode(), marker.lower().encode()))  # the entry's CRC no longer matches
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "course.sh"), "grade", "export.zip", "--out", "graded",
                           "--course-root", str(COURSE), "--nbgrader-dir", "nbgrader", "--quiet", "--call-timeout", "10"],
                          cwd=z.parent, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = table(z.parent / "graded")
    got = {s: (r["total"], r["status"]) for s, r in rows.items()}
    assert got == {
        "Ana_María": ("5", "ok"),
        "Ana_Lopez": ("0", "not_attempted"),
        "ben": ("3", "ok"),
        "cy": ("5", "outdated+tests_edited"),
        "eve": ("0", "corrupt"),
    }, got
    assert "corrupt" in rows["eve"]["notes"]
    assert (z.parent / "nbgrader" / "gradebook.db").exists()
    assert (z.parent / "nbgrader" / "autograded" / "Ana_María" / "demo" / "demo.ipynb").exists()
    assert (z.parent / "graded" / "feedback" / "Ana_María" / "demo" / "demo.html").exists()


# ----------------------------------------------------------------------------- intake: nobody dropped or merged
def _intake(folder: Path, tmp: Path):
    """(rows by student id, not-graded list) of ``collect`` over ``folder`` (no notebook is run)."""
    from autograder import notebooks as nbs
    from autograder.intake import collect

    items, skipped = collect(folder, nbs.load_course(COURSE), tmp)
    rows = {}
    for it in items:
        assert it.student not in rows, f"two rows for {it.student}"
        rows[it.student] = it
    return rows, dict(skipped)


def _answer(item) -> str:
    """The student's ``sft_loss`` cell in a collected notebook."""
    cells = json.loads(item.data)["cells"]
    return next("".join(c["source"]) for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") == "sft_loss")


def test_intake_two_students_with_one_display_name_keep_two_rows(tmp_path):
    """Two "Ana María" with different LMS ids were one row, the second's work silently dropped."""
    export = tmp_path / "export"
    export.mkdir()
    first, second = notebook({"sft_loss": SFT_OK}), notebook({"sft_loss": SFT_PARTIAL})
    (export / "Ana María_1001_demo.ipynb").write_text(first)
    (export / "Ana María_1002_demo.ipynb").write_text(second)
    (export / "Ana María_1002_LATE_demo.ipynb").write_text(second)  # the same student's second upload
    (export / "ben_1003_demo.ipynb").write_text(first)
    rows, skipped = _intake(export, tmp_path / "tmp")
    assert sorted(rows) == ["Ana_María_1001", "Ana_María_1002", "ben"], sorted(rows)  # the ordinary id unchanged
    assert _answer(rows["Ana_María_1001"]) == SFT_OK and _answer(rows["Ana_María_1002"]) == SFT_PARTIAL
    for sid in ("Ana_María_1001", "Ana_María_1002"):
        assert any("1001" in n and "1002" in n for n in rows[sid].notes), rows[sid].notes
    assert any("Ana María_1002_demo.ipynb" in n and "Ana María_1002_LATE_demo.ipynb" in n and "graded" in n
               for n in rows["Ana_María_1002"].notes), rows["Ana_María_1002"].notes
    assert rows["ben"].notes == [] and skipped == {}


def test_intake_folders_that_sanitise_alike_keep_their_own_rows(tmp_path):
    """``=1+1`` and ``+1+1`` both became ``1_1`` (one dropped); a plain folder keeps its name as its id."""
    for name, answer in (("=1+1", SFT_OK), ("+1+1", SFT_PARTIAL), ("1_1", SFT_OK + "# plain\n")):
        d = tmp_path / "class" / name / "demo"
        d.mkdir(parents=True)
        (d / "demo.ipynb").write_text(notebook({"sft_loss": answer}))
    rows, skipped = _intake(tmp_path / "class", tmp_path / "tmp")
    assert len(rows) == 3 and "1_1" in rows and rows["1_1"].notes == [], rows
    assert _answer(rows["1_1"]).endswith("# plain\n")
    others = {sid: it for sid, it in rows.items() if sid != "1_1"}
    assert all(sid.startswith("1_1_") for sid in others), sorted(rows)
    assert sorted(_answer(it) for it in others.values()) == sorted([SFT_OK, SFT_PARTIAL])  # each its own work
    for sid, it in others.items():
        assert any(sid in n and "=1+1" in n and "+1+1" in n for n in it.notes), it.notes
    assert skipped == {}


def test_intake_dot_folders_and_junk_are_graded_or_listed(tmp_path):
    """A folder named ``...`` and folders starting with ``.`` vanished without a row; so did a flat file that
    was not a notebook. Now every input is a row or is listed as not graded, with the reason."""
    cls = tmp_path / "class"
    for name in ("...", ".ana", "ana"):
        d = cls / name / "demo"
        d.mkdir(parents=True)
        (d / "demo.ipynb").write_text(notebook({"sft_loss": SFT_OK + f"# {name}\n"}))
    (cls / ".ipynb_checkpoints").mkdir()
    (cls / ".ipynb_checkpoints" / "demo-checkpoint.ipynb").write_text(notebook({"sft_loss": SFT_OK}))
    (cls / "__MACOSX").mkdir()
    (cls / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cls / "zed_1005_essay.txt").write_text("I could not do the homework")
    (cls / "cy_1006_report.pdf").write_bytes(b"%PDF-1.4")
    rows, skipped = _intake(cls, tmp_path / "tmp")
    assert len(rows) == 4, sorted(rows)  # "...", ".ana", "ana" and zed
    assert "ana" in rows and _answer(rows["ana"]).endswith("# ana\n")
    by_folder = {_answer(it).splitlines()[-1]: sid for sid, it in rows.items() if it.data}
    assert set(by_folder) == {"# ...", "# .ana", "# ana"}, by_folder
    for sid in rows:
        assert sid and not sid.startswith(".") and "/" not in sid, sid
    zed = next(it for sid, it in rows.items() if sid.startswith("zed"))
    assert zed.data is None and any("zed_1005_essay.txt" in n for n in zed.notes), zed.notes
    assert set(skipped) == {".ipynb_checkpoints", "__MACOSX", ".DS_Store", "cy_1006_report.pdf"}, skipped
    assert all(reason.startswith("not graded, because ") for reason in skipped.values()), skipped


def test_intake_zip_entries_are_a_row_or_listed(tmp_path):
    """A corrupt entry in a student's folder costs that student a row (not a new student named after the file);
    an entry whose path leaves the zip's folder is listed as not graded."""
    marker = "BEN-CORRUPT-MARKER"
    z = tmp_path / "class.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("ana/demo/demo.ipynb", notebook({"sft_loss": SFT_OK}))
        zf.writestr("ben/demo/demo.ipynb", notebook({"sft_loss": SFT_OK}).replace('"nbformat"', f'"{marker}": 1, "nbformat"', 1))
        zf.writestr("../outside_1007_demo.ipynb", notebook({"sft_loss": SFT_OK}))
        zf.writestr(".DS_Store", b"\0\0\0\1Bud1")
    z.write_bytes(z.read_bytes().replace(marker.encode(), marker.lower().encode()))  # ben's CRC no longer matches
    rows, skipped = _intake(z, tmp_path / "tmp")
    assert sorted(rows) == ["ana", "ben"], sorted(rows)
    assert rows["ben"].data is None and "corrupt" in rows["ben"].tags
    assert set(skipped) == {"../outside_1007_demo.ipynb", ".DS_Store"}, skipped


def test_intake_students_alike_by_name_each_graded_and_recorded(tmp_path):
    """Through the whole command: the "Ana María" pair, ``=1+1`` / ``+1+1``, ``...`` and ``-1`` each get their
    own graded row, gradebook entry and feedback page; what is no student's is listed in not_graded.csv."""
    cls = tmp_path / "class"
    cls.mkdir()
    full = notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK})  # one code: the notebook runs once
    (cls / "Ana María_1001_demo.ipynb").write_text(full)
    (cls / "Ana María_1002_demo.ipynb").write_text(full)
    for name in ("=1+1", "+1+1", "...", "-1"):
        d = cls / name / "demo"
        d.mkdir(parents=True)
        (d / "demo.ipynb").write_text(full)
    (cls / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    rows = grade(cls, tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}", quiet=True,
                 nbgrader_dir=tmp_path / "nb", options=GradingOptions(workers=1, call_seconds=10))
    ids = {r["student"] for r in rows}
    assert len(rows) == len(ids) == 6 and {"Ana_María_1001", "Ana_María_1002", "-1", "unnamed"} <= ids, ids
    assert all((r["total"], r["status"]) == ("5", "ok") for r in rows), rows
    assert gradebook_scores(sqlite3.connect(tmp_path / "gb.db")) == {s: 5.0 for s in ids}
    assert "'-1" in table(tmp_path / "out")  # the CSV has it as text, not as a formula
    assert all((tmp_path / "out" / "feedback" / s / "demo" / "demo.html").exists() for s in ids)
    with open(tmp_path / "out" / "not_graded.csv", newline="") as fh:
        assert [r["input"] for r in csv.DictReader(fh)] == [".DS_Store"]

def test_csv_cells_are_escaped_for_spreadsheets(tmp_path):
    """A cell that a spreadsheet would read as a formula starts with a quote, in every CSV the grader writes."""
    from autograder import notebooks as nbs
    from autograder.pool import Outcome
    from autograder.publish import write_csv, write_not_graded

    sources = {(a, s.name): s for a, srcs in nbs.load_course(COURSE).items() for s in srcs}
    points = {"sft_loss": 0.0, "sequence_log_prob": 0.0}
    nasty = ["-2_3", "@SUM_A1", "=HYPERLINK(1)", "+1", "\tx", "\rx"]
    outcomes = [Outcome(s, "demo", "demo", points, points, ["missing"], [s]) for s in nasty]
    write_csv(tmp_path, outcomes, sources)
    write_not_graded(tmp_path, [(s, "=not graded, because") for s in nasty])
    with open(tmp_path / "grades.csv", newline="") as fh:
        cells = [(r["student"], r["notes"]) for r in csv.DictReader(fh)]
    assert cells == [("'" + s, "'" + s) for s in nasty], cells
    with open(tmp_path / "not_graded.csv", newline="") as fh:
        cells = [tuple(r.values()) for r in csv.DictReader(fh)]
    assert cells == [("'" + s, "'=not graded, because") for s in nasty], cells


# ----------------------------------------------------------------------------- a worker that dies
DYING_WORKER = """
import os, signal, sys
job = sys.stdin.readline().strip()
print("Traceback (most recent call last):", file=sys.stderr)
print(f"RuntimeError: WORKER-DIED-MARKER while grading {os.path.basename(job)}", file=sys.stderr, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_worker_that_dies_leaves_its_real_error_in_the_grader_notes(tmp_path, monkeypatch):
    """The grader read ``ws/worker.log``, which nothing writes: the row said "grader error: FileNotFoundError".
    Now the grader notes carry what the worker wrote to its log in each attempt and the signal that killed it;
    the worker is started again for each attempt and the next notebook, and no log stays open in the grader.
    The student's notes say only that the grader failed."""
    from autograder import notebooks as nbs
    from autograder import pool as grading
    from autograder.intake import Item

    monkeypatch.setattr(grading.Worker, "command", ("-c", DYING_WORKER))
    src = nbs.load_course(COURSE)["demo"][0]
    (tmp_path / "template.db").write_bytes(b"")
    options = grading.GradingOptions(timeout=60, cell_timeout=10, memory_gb=1.0, kernel_memory_gb=1.0, keep=False,
                                     cache=False, no_sandbox=False, call_seconds=5, cpu_seconds=60)
    pool = grading.Pool(grading.RunSettings(options, tmp=tmp_path, uid_base=grading.SANDBOX_UID_BASE,
                                            template_db=tmp_path / "template.db", sandbox_root=tmp_path / "sandbox",
                                            threads=1, stubs={}))
    try:
        outcomes = [grading.run_item(Item(f"s{i}", "demo", "demo", notebook({"sft_loss": SFT_OK}).encode()),
                                     src, pool) for i in range(2)]
    finally:
        pool.close()
    for outcome in outcomes:
        assert outcome.tags == ["grader_error"] and outcome.notes == [grading.GRADER_ERROR_NOTE], outcome
        assert len(outcome.grader_notes) == grading.GRADER_ATTEMPTS, outcome.grader_notes
        for note in outcome.grader_notes:
            assert "RuntimeError: WORKER-DIED-MARKER while grading ws-" in note and "killed by SIGKILL" in note, note
            assert "FileNotFoundError" not in note
    logs = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")]
    assert not [f for f in logs if "worker-" in f and f.endswith(".log")], logs


# ----------------------------------------------------------------------------- grader faults
HIDDEN_MARKER = "HIDDEN-TEST-MARKER"
LEAKING_WORKER = f"""
import os, signal, sys
sys.stdin.readline()
print("Traceback (most recent call last):", file=sys.stderr)
print('  File "<hidden test>", line 3, in <module>', file=sys.stderr)
print("    assert torch.allclose(sft_loss(torch.tensor([[-7.0, -3.5]]), mask), 7.0 / 3)  # {HIDDEN_MARKER}",
      file=sys.stderr)
print("AssertionError", file=sys.stderr, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_grader_fault_shows_the_student_a_sentence_and_the_instructor_the_log(tmp_path, monkeypatch):
    """The worker's log went into the row's notes, and the notes reach the student (feedback page, the JSON of
    ``autograder.one``, Gradescope's results.json). A grader-side log can hold hidden test code or inputs: it is
    now in grades.csv's ``grader_notes`` only; the student reads that the grader failed and no points were taken."""
    from autograder import pool as grading
    from autograder import one

    monkeypatch.setattr(grading.Worker, "command", ("-c", LEAKING_WORKER))
    cls = tmp_path / "class" / "ana" / "demo"
    cls.mkdir(parents=True)
    (cls / "demo.ipynb").write_text(notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK}))
    out, db = tmp_path / "out", tmp_path / "gb.db"
    rows = grade(cls.parent.parent, out, COURSE, db_url=f"sqlite:///{db}", quiet=True, nbgrader_dir=tmp_path / "nb",
                 options=GradingOptions(workers=1))
    assert [(r["student"], r["total"], r["status"]) for r in rows] == [("ana", "", "grader_error")], rows
    row = table(out)["ana"]
    assert HIDDEN_MARKER in row["grader_notes"] and "killed by SIGKILL" in row["grader_notes"], row
    assert HIDDEN_MARKER not in row["notes"] and grading.GRADER_ERROR_NOTE in row["notes"], row
    assert row["sft_loss"] == row["sequence_log_prob"] == row["total"] == "", row  # not a zero of the student's
    page = (out / "feedback" / "ana" / "demo" / "demo.html").read_text()
    assert HIDDEN_MARKER not in page and grading.GRADER_ERROR_NOTE in page and "not graded yet" in page
    gradebook = sqlite3.connect(db)
    assert HIDDEN_MARKER.encode() not in db.read_bytes()
    assert set(gradebook.execute("select auto_score, needs_manual_grade from grade")) == {(None, 1)}

    submission = cls / "demo.ipynb"
    for mode in ([], ["--gradescope"]):
        results = tmp_path / f"results{'-'.join(mode)}.json"
        code = one.main([str(submission), "--results", str(results), "--out", str(tmp_path / f"one{'-'.join(mode)}"),
                         "--course-root", str(COURSE), "--workers", "1", *mode])
        assert code == 2  # the grader failed: the engine may retry
        if mode:  # no results.json: Gradescope shows a failed run, no score
            assert not results.exists()
        else:
            text = results.read_text()
            assert HIDDEN_MARKER not in text and json.loads(text)["total"] is None, text
            assert json.loads(text)["notebooks"][0]["notes"] == [grading.GRADER_ERROR_NOTE], text
        assert HIDDEN_MARKER in (tmp_path / f"one{'-'.join(mode)}" / "grades.csv").read_text()


def _flaky_kernel(tmp_path: Path, fail: str) -> Path:
    """A folder for JUPYTER_PATH whose ``python3`` kernel fails to start as the issue saw it (``ZMQError: Address
    already in use``) when ``fail`` (a shell condition) holds, and is the real kernel otherwise."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    script = tmp_path / "jupyter" / "kernel.sh"
    script.write_text(f"#!/bin/sh\nif {fail}; then\n"
                      "  echo \"zmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:5555')\" >&2\n"
                      f"  exit 1\nfi\nexec {sys.executable} -m ipykernel_launcher \"$@\"\n")
    script.chmod(0o755)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(script), "-f", "{connection_file}"],
                                                  "display_name": "Python 3", "language": "python"}))
    return tmp_path / "jupyter"


def test_a_kernel_that_fails_to_start_once_is_started_again(tmp_path, monkeypatch):
    """The grader's kernel failed to start (``ZMQError: Address already in use``) and an honest student got 0.
    Now the notebook is run again with a fresh worker and kernel and is graded as if nothing happened."""
    flag = tmp_path / "failed-once"
    monkeypatch.setenv("JUPYTER_PATH", str(_flaky_kernel(tmp_path, f"[ ! -e {flag} ] && touch {flag}")))
    d = tmp_path / "class" / "ana" / "demo"
    d.mkdir(parents=True)
    d.joinpath("demo.ipynb").write_text(notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK}))
    rows = grade(d.parent.parent, tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}", quiet=True,
                 nbgrader_dir=tmp_path / "nb", options=GradingOptions(workers=1, call_seconds=10))
    assert flag.exists()  # the failure did happen
    assert [(r["total"], r["status"]) for r in rows] == [("5", "ok")], rows
    assert "attempt 1 of" in rows[0]["grader_notes"] and "Kernel died" in rows[0]["grader_notes"], rows
    assert "ZMQError" not in rows[0]["notes"]


def test_a_kernel_past_its_memory_bound_is_a_grader_fault_never_a_zero(tmp_path, monkeypatch):
    """Issue 26: the grader's kernel gets its own memory bound (a control group, ``--kernel-memory-gb``). A kernel
    that passes it is killed, and the notebook is regraded, never scored against the student; nothing is left
    behind. Once it starts grading the kernel allocates about 30 MB (the test course, about 4 MB: past a 2 MB bound)."""
    from autograder import pool as grading
    from autograder import sandbox

    if not sandbox.Cgroup._parents() or not any(c in ("memory", "") for _, c in sandbox.Cgroup._parents()):
        pytest.skip("no memory control group can be made here: the kernel's bound is the machine's")
    d = tmp_path / "class" / "ana" / "demo"
    d.mkdir(parents=True)
    d.joinpath("demo.ipynb").write_text(notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK}))
    run = lambda bound: grade(d.parent.parent, tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}",  # noqa: E731
                              quiet=True, nbgrader_dir=tmp_path / "nb",
                              options=GradingOptions(workers=1, call_seconds=10, kernel_memory_gb=bound))
    rows = run(0.002)
    assert [(r["total"], r["status"], r["notes"]) for r in rows] == [("", "grader_error", grading.GRADER_ERROR_NOTE)], rows
    assert rows[0]["grader_notes"].count("attempt") == grading.GRADER_ATTEMPTS, rows
    left = [g for parent, _ in sandbox.Cgroup._parents() for g in parent.glob(f"{sandbox.Cgroup.PREFIX}*")]
    assert left == [], left
    assert [(r["total"], r["status"]) for r in run(2.0)] == [("5", "ok")]  # the default bound: graded


def test_a_student_process_the_sandbox_refuses_is_a_grader_fault_never_a_zero(tmp_path, monkeypatch):
    """Issue 26: the sandbox refusing to start the student's process is the grader's fault: the notebook is tried
    again, left open (``grader_error``, no points taken) while the refusal lasts, and graded by the next run."""
    from autograder import pool as grading
    from autograder import sandbox

    real = sandbox.bwrap_path()
    if real is None:
        pytest.skip("no bubblewrap here")
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "bwrap").write_text(f'#!/bin/sh\ncase "$*" in *student_server*) echo "bwrap: Creating new namespace '
                                f'failed: Operation not permitted" >&2; exit 1;; esac\nexec {real} "$@"\n')
    (fake / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    d = tmp_path / "class" / "ana" / "demo"
    d.mkdir(parents=True)
    d.joinpath("demo.ipynb").write_text(notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK}))
    run = lambda: grade(d.parent.parent, tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}",  # noqa: E731
                        quiet=True, nbgrader_dir=tmp_path / "nb",
                        options=GradingOptions(workers=1, call_seconds=10))
    rows = run()
    assert [(r["total"], r["status"], r["notes"]) for r in rows] == [("", "grader_error", grading.GRADER_ERROR_NOTE)], rows
    notes = rows[0]["grader_notes"]  # the refusal shows at the start (first cell) or while loading the cells
    assert notes.count("attempt") == grading.GRADER_ATTEMPTS and "exited (status 1)" in notes, notes
    assert gradebook_scores(sqlite3.connect(tmp_path / "gb.db")) == {"ana": None}
    monkeypatch.setenv("PATH", ":".join(p for p in os.environ["PATH"].split(":") if p != str(fake)))  # works again
    assert [(r["total"], r["status"]) for r in run()] == [("5", "ok")]


RESTARTING_WORKER = """
import os, runpy, sys
if not os.path.exists({flag!r}):
    open({flag!r}, "w").close()
    print("zmq.error.ZMQError: Address already in use", file=sys.stderr, flush=True)
    sys.exit(1)
sys.argv = ["autograder.worker", "--serve"]
runpy.run_module("autograder.worker", run_name="__main__", alter_sys=True)
"""


def test_a_worker_that_fails_to_start_once_is_started_again(tmp_path, monkeypatch):
    from autograder import pool as grading

    flag = tmp_path / "failed-once"
    monkeypatch.setattr(grading.Worker, "command", ("-c", RESTARTING_WORKER.format(flag=str(flag))))
    d = tmp_path / "class" / "ana" / "demo"
    d.mkdir(parents=True)
    d.joinpath("demo.ipynb").write_text(notebook({"sft_loss": SFT_OK, "sequence_log_prob": SEQ_OK}))
    rows = grade(d.parent.parent, tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}", quiet=True,
                 nbgrader_dir=tmp_path / "nb", options=GradingOptions(workers=1, call_seconds=10))
    assert flag.exists()
    assert [(r["total"], r["status"]) for r in rows] == [("5", "ok")], rows
    assert "attempt 1 of" in rows[0]["grader_notes"] and "exited with status 1" in rows[0]["grader_notes"], rows


def test_a_persistent_grader_fault_is_no_zero_and_a_plain_rerun_regrades_it(tmp_path, monkeypatch):
    """A saved ``error`` was reused by every later run (only ``--fresh``, which regrades everyone, cleared it).
    Now a notebook whose kernel never starts is ``grader_error`` with no points (not 0) in grades.csv and the
    gradebook, and the same command run again grades it, and only it."""
    from autograder import pool as grading

    # the kernel fails for one student's notebook only (its job file holds that student's code)
    monkeypatch.setenv("JUPYTER_PATH", str(_flaky_kernel(tmp_path, 'grep -q unlucky "$RLCOURSE_GRADING_JOB"')))
    cls = tmp_path / "class"
    for name in ("lucky", "unlucky"):
        d = cls / name / "demo"
        d.mkdir(parents=True)
        d.joinpath("demo.ipynb").write_text(notebook({"sft_loss": SFT_OK + f"# {name}\n", "sequence_log_prob": SEQ_OK}))
    out, db = tmp_path / "out", tmp_path / "gb.db"
    run = lambda: grade(cls, out, COURSE, db_url=f"sqlite:///{db}", quiet=True, nbgrader_dir=tmp_path / "nb",  # noqa: E731
                        options=GradingOptions(workers=1, call_seconds=10))
    rows = {r["student"]: r for r in run()}
    assert (rows["lucky"]["total"], rows["lucky"]["status"]) == ("5", "ok"), rows
    assert (rows["unlucky"]["total"], rows["unlucky"]["status"]) == ("", "grader_error"), rows
    assert rows["unlucky"]["grader_notes"].count("Kernel died") == grading.GRADER_ATTEMPTS, rows["unlucky"]
    assert rows["unlucky"]["notes"] == grading.GRADER_ERROR_NOTE
    assert gradebook_scores(sqlite3.connect(db)) == {"lucky": 5.0, "unlucky": None}
    kept = {p: p.stat().st_mtime_ns for p in (out / ".grading" / "results").glob("*.json")}

    monkeypatch.delenv("JUPYTER_PATH")  # the fault is gone: the same command again
    rows = {r["student"]: r for r in run()}
    assert {s: (r["total"], r["status"], r["notes"]) for s, r in rows.items()} == \
        {"lucky": ("5", "ok", ""), "unlucky": ("5", "ok", "")}, rows
    assert gradebook_scores(sqlite3.connect(db)) == {"lucky": 5.0, "unlucky": 5.0}
    lucky = [p for p in kept if json.loads(p.read_text())["student"] == "lucky"]
    assert len(lucky) == 1 and lucky[0].stat().st_mtime_ns == kept[lucky[0]]  # graded once, not again


# ----------------------------------------------------------------------------- resumable and deterministic
def _class(root: Path, n: int) -> Path:
    for i in range(n):  # different code per student, so nothing is shared between them
        answers = {"sft_loss": SFT_OK + f"# student {i}\n", "sequence_log_prob": SEQ_OK if i % 2 else SFT_OK}
        d = root / "submitted" / f"s{i}" / "demo"
        d.mkdir(parents=True)
        (d / "demo.ipynb").write_text(notebook(answers))
    return root / "submitted"


def _processes_under(folder: Path) -> list[str]:
    """Processes whose working directory is inside ``folder`` (workers, kernels and sandboxes of one batch)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                found.append(f"{pid}: {cmd[:120]}")
    return found


def test_killed_batch_resumes_to_the_same_results(tmp_path):
    subs = _class(tmp_path / "class", 4)
    ref_out, ref_db = tmp_path / "ref", tmp_path / "ref.db"
    grade(subs, ref_out, COURSE, db_url=f"sqlite:///{ref_db}", quiet=True, nbgrader_dir=tmp_path / "refnb",
          options=GradingOptions(workers=2, call_seconds=10))
    again = tmp_path / "again"
    grade(subs, again, COURSE, db_url=f"sqlite:///{tmp_path / 'again.db'}", quiet=True,
          nbgrader_dir=tmp_path / "againnb", options=GradingOptions(workers=2, call_seconds=10))
    assert without_timing(again) == without_timing(ref_out)  # deterministic apart from timings

    out, db = tmp_path / "killed", tmp_path / "killed.db"
    results = out / ".grading" / "results"
    cmd = [sys.executable, "-m", "autograder.grade", str(subs), "--out", str(out), "--db", f"sqlite:///{db}",
           "--course-root", str(COURSE), "--nbgrader-dir", str(tmp_path / "killednb"), "--workers", "1", "--quiet",
           "--call-timeout", "10"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(results.glob("*.json"))) < 1:
        time.sleep(0.2)
    finished = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as an instructor's Ctrl-\ or a crash would
    proc.wait()
    assert 1 <= len(finished) < 4, finished
    time.sleep(3)
    assert _processes_under(out) == []  # workers, kernels and sandboxes went with the batch
    grade(subs, out, COURSE, db_url=f"sqlite:///{db}", quiet=True, nbgrader_dir=tmp_path / "killednb",
          options=GradingOptions(workers=2, call_seconds=10))
    assert not (out / ".grading" / "tmp").exists()
    for name, mtime in finished.items():  # finished work was not graded again
        assert (results / name).stat().st_mtime_ns == mtime, (name, sorted(p.name for p in results.glob("*")))
    assert without_timing(out) == without_timing(ref_out)
    assert _scores(db) == _scores(ref_db)


def _scores(db: Path) -> dict:
    import sqlite3

    con = sqlite3.connect(db)
    rows = con.execute(
        "select student.id, base_cell.name, grade.auto_score from grade join submitted_notebook on "
        "grade.notebook_id = submitted_notebook.id join submitted_assignment on submitted_notebook.assignment_id = "
        "submitted_assignment.id join student on submitted_assignment.student_id = student.id "
        "join base_cell on grade.cell_id = base_cell.id").fetchall()
    return {(s, c): v for s, c, v in rows}


# ----------------------------------------------------------------------------- a real PostgreSQL gradebook
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A PostgreSQL server on 127.0.0.1 and a free port, in a temporary folder (initdb refuses root:
    as root it runs as `nobody`)."""
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    assert initdb, "PostgreSQL's initdb is not installed (Debian: postgresql)"
    bindir = Path(initdb).resolve().parent
    base = Path(tempfile.mkdtemp(prefix="rlcourse-pg-", dir="/tmp"))
    base.chmod(0o755)
    data, port = base / "data", _free_port()
    user = "nobody" if os.geteuid() == 0 else None
    prefix = ["runuser", "-u", user, "--"] if user else []
    if user:
        shutil.chown(base, user)
    run = lambda *args: subprocess.run(prefix + [str(a) for a in args], check=True, capture_output=True, text=True,  # noqa: E731
                                       timeout=120)
    run(bindir / "initdb", "-D", data, "-U", "grader", "--auth=trust")
    run(bindir / "pg_ctl", "-D", data, "-l", base / "log", "-w", "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start")
    try:
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "grader", "course")
        yield f"postgresql://grader@127.0.0.1:{port}/course"
    finally:
        subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_postgresql_gradebook_with_parallel_workers(tmp_path, postgres):
    from nbgrader.api import Gradebook

    subs = _class(tmp_path / "class", 3)
    rows = grade(subs, tmp_path / "out", COURSE, db_url=postgres, quiet=True, nbgrader_dir=tmp_path / "nb",
                 options=GradingOptions(workers=2, call_seconds=10))
    assert {r["student"]: r["total"] for r in rows} == {"s0": "3", "s1": "5", "s2": "3"}
    with Gradebook(postgres, "rl-for-llms") as gb:
        scores = {s.id: gb.find_submission("demo", s.id).score for s in gb.students}
    assert scores == {"s0": 3.0, "s1": 5.0, "s2": 3.0}
    # what formgrader lists for review: every submission, autograded, with its score
    from nbgrader.apps import NbGraderAPI

    from autograder.worker import nbgrader_config

    cfg = nbgrader_config(tmp_path / "nb", postgres)
    cfg.CourseDirectory.source_directory = "solutions"
    api = NbGraderAPI(config=cfg)
    subs = {s["student"]: s for s in api.get_submissions("demo")}
    assert {k: (v["autograded"], v["score"]) for k, v in subs.items()} == \
        {"s0": (True, 3.0), "s1": (True, 5.0), "s2": (True, 3.0)}


# ----------------------------------------------------------------------------- nbgrader's own tools
def test_stock_nbgrader_reads_the_course_config_from_the_repository_root():
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert cfg.CourseDirectory.root == str(ROOT)
    assert cfg.CourseDirectory.source_directory == "solutions"
    assert cfg.CourseDirectory.release_directory == "notebooks"


def test_without_the_sandbox_tool_the_grader_refuses_and_says_how_to_install_it(tmp_path, monkeypatch):
    from autograder import sandbox

    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    with pytest.raises(GradingError) as exc:
        grade(_class(tmp_path / "class", 1), tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}",
              quiet=True)
    message = str(exc.value)
    assert "bubblewrap" in message and "apt-get install bubblewrap" in message and "--no-sandbox" in message
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_no_sandbox_as_root_refuses_a_course_other_users_can_read(tmp_path, monkeypatch):
    """Issue 26: as root, --no-sandbox runs the student's code as another user, who must not reach the course (its
    answer key and solutions): a readable course is refused, with how to fix it."""
    from autograder import sandbox

    if os.geteuid() != 0 or not sandbox.open_to_others(COURSE):
        pytest.skip("only as root, with this checkout readable by other users")
    monkeypatch.setattr(sandbox, "unprivileged_problem", lambda: None)  # as if this Python were readable by all
    with pytest.raises(GradingError, match="can be read by other users.*chmod -R go-rwx"):
        grade(_class(tmp_path / "class", 1), tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}",
              quiet=True, nbgrader_dir=tmp_path / "nb", options=GradingOptions(no_sandbox=True))
    assert not (tmp_path / "out" / "grades.csv").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="as root this checkout is refused (above); tests/test_no_sandbox.py "
                                              "grades without the sandbox as root, in a private tree")
def test_no_sandbox_grades_the_same_and_every_row_says_so(tmp_path):
    rows = grade(_class(tmp_path / "class", 2), tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}",
                 quiet=True, nbgrader_dir=tmp_path / "nb",
                 options=GradingOptions(workers=2, call_seconds=10, no_sandbox=True))
    assert {r["student"]: (r["total"], r["status"]) for r in rows} == {"s0": ("3", "unsandboxed"),
                                                                       "s1": ("5", "unsandboxed")}
    assert all("without isolation" in r["notes"] for r in rows)


def test_a_run_the_grader_refuses_is_an_exception_and_the_command_line_exits_with_its_message(tmp_path, capsys):
    """Library code raises GradingError (catchable by autograder.one and the benchmarks); only the command lines turn
    it into a message on stderr and exit status 1."""
    from autograder import grade as grade_module
    from autograder import intake, one

    missing = tmp_path / "no-such-class"
    with pytest.raises(GradingError, match="no such file or folder"):
        grade(missing, tmp_path / "out", COURSE, db_url=f"sqlite:///{tmp_path / 'gb.db'}", quiet=True)
    with pytest.raises(GradingError, match="no such file or folder"):
        one.grade_one(missing, tmp_path / "one")
    for main, argv in [(grade_module.main, [str(missing), "--out", str(tmp_path / "out")]),
                       (one.main, [str(missing), "--results", str(tmp_path / "r.json")])]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert str(exc.value) == f"{missing}: no such file or folder"
    import gradescope

    with pytest.raises(GradingError, match="no assignment '99_none'"):
        gradescope.build("99_none", tmp_path / "g.zip", COURSE)
    corrupt = tmp_path / "class.zip"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(GradingError, match="not a readable zip file"):
        intake._extract_zip(corrupt, tmp_path / "unzipped")


def test_groups_a_killed_run_left_are_removed():
    """Issue 26: a grader that is killed leaves its control groups (rlcourse-<kernel pid>-<n>) and whatever is
    still in them; the next run removes the groups whose kernel is gone, and only those."""
    from autograder import sandbox

    gone = 4_000_000  # above any pid this machine hands out (pid_max is at most 2**22)
    stale = sandbox.Cgroup(f"{sandbox.Cgroup.PREFIX}{gone}-1", 2**30, 16)
    live = sandbox.Cgroup(f"{sandbox.Cgroup.PREFIX}{os.getpid()}-99", 2**30, 16)
    if not stale.dirs:
        live.remove()
        pytest.skip("this machine does not let the grader make control groups")
    try:
        assert sandbox.Cgroup.remove_stale() >= len(stale.dirs)
        assert not any(d.exists() for d in stale.dirs)
        assert all(d.exists() for d in live.dirs)   # a running grader's groups stay
    finally:
        stale.remove()
        live.remove()


def test_two_runs_at_once_never_share_uids(tmp_path):
    """Issue 26: every run took uids 61000 + slot, so two runs at once on one machine shared them (one run's
    clean-up of a uid's files could hit the other's students). A run holds a block of uids by a lock file;
    a second run takes the next block; a block whose run is gone (killed) is taken over."""
    from autograder.pool import SANDBOX_UID_BASE, UID_BLOCK, hold_uid_block

    first, lock1 = hold_uid_block(tmp_path)
    second, lock2 = hold_uid_block(tmp_path)
    assert (first, second) == (SANDBOX_UID_BASE, SANDBOX_UID_BASE + UID_BLOCK)
    assert lock1.read_text() == str(os.getpid())
    lock1.unlink()
    assert hold_uid_block(tmp_path)[0] == first        # free again once its run ended
    lock2.write_text("4000000")                          # a run that was killed (no such pid)
    assert hold_uid_block(tmp_path)[0] == second


def test_the_guarded_trees_are_checked_by_metadata_and_a_write_is_still_seen(tmp_path, monkeypatch):
    """Issue 26: hashing the submissions after every notebook row read every byte again (0.24 s per 100 MB,
    most of an hour for a class). The check after a row stats the files and reads none; a write is still
    seen, also one that restores the file's size and modification time."""
    from autograder.grade import TreeGuard

    tree = tmp_path / "subs"
    (tree / "ana").mkdir(parents=True)
    nb = tree / "ana" / "demo.ipynb"
    nb.write_text('{"cells": [1]}')
    guard = TreeGuard(tree)
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or real(self))
    assert not guard.changed() and not guard.changed() and reads == []
    st = nb.stat()
    time.sleep(0.01)
    nb.write_text('{"cells": [2]}')                         # same size ...
    os.utime(nb, ns=(st.st_atime_ns, st.st_mtime_ns))        # ... and the old modification time
    assert guard.changed()
    nb.write_text('{"cells": [1]}')                         # the original bytes again: nothing changed
    assert not guard.changed()
