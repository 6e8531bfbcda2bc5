"""Can the grades be trusted? Honest answers, attacks, the sandbox itself, and hidden tests.

1. Correct answers written in many ordinary styles get full marks (status ``ok``).
2. Each class of attack, combined with a wrong answer (or with an attempt to get points without
   one), scores nothing, leaves nothing behind (files, processes) and reaches nothing outside.
3. The sandbox, probed from inside through ``autograder.remote.StudentProcess``.
4. The feedback of a failing hidden test shows no hidden code, inputs or expected values, and the
   student's strings are HTML-escaped.

Parts 1, 2 and 4 are graded in ONE ``grade()`` run (module-scoped fixture ``batch``) of the
fixture course (tests/fixtures/course: ``sft_loss`` 1 visible + 2 hidden points,
``sequence_log_prob`` 1 + 1), the students' code of parts 1, 2 and 4 read from tests/trust_cases/ (one
file a student: its README.md). Needs bubblewrap (``bwrap``), as the grader does.
"""
from __future__ import annotations

import html
import json
import os
import re
import socket
import sqlite3
import sysconfig
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import torch

from autograder import notebooks as nbs
from autograder import remote, sandbox
from autograder.grade import grade
from autograder.pool import GradingOptions
from demo_course import COURSE, REPLAY_SEQ, REPLAY_SFT, SEQ_OK, SFT_OK, SOURCE, gradebook_scores, with_answers
from rlcourse.paths import REPO_ROOT

REPO = REPO_ROOT
SITE = Path(sysconfig.get_paths()["purelib"])
NOBODY = 65534
MARK = f"rltrust{uuid.uuid4().hex[:10]}"  # names every file/process an attack tries to leave behind

pytestmark = pytest.mark.skipif(sandbox.bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")


# ----------------------------------------------------------------------------- notebooks
def student_nb(sft: str = SFT_OK, seq: str = SEQ_OK, added: tuple = ()):
    """The release with both answer cells filled in; ``added``: (grade id of the cell to insert
    before, or None for the end, source) for code cells the student added (no nbgrader metadata)."""
    nb = with_answers({"sft_loss": sft, "sequence_log_prob": seq})
    for before, source in added:
        cell = nbformat.v4.new_code_cell(source)
        if before is None:
            nb.cells.append(cell)
        else:
            at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == before)
            nb.cells.insert(at, cell)
    return nb


# ----------------------------------------------------------------------------- the cases
CASES = Path(__file__).resolve().parent / "trust_cases"
CELL = re.compile(r"^# %% (.*)\n", re.M)
EXPECT = re.compile(r"^# expect: sft_loss=(\w+) sequence_log_prob=(\w+) status=(\S+)$", re.M)


def load_cases(kind: str) -> dict:
    """name -> (cells, expected) of each file of tests/trust_cases/<kind>/ (the format: its README.md).
    cells: [(where, source)], placeholders not filled in; expected: (sft_loss points, sequence_log_prob
    points, status), each None where the file says ``any``; None without an ``# expect:`` line."""
    cases = {}
    for path in sorted((CASES / kind).glob("*.py")):
        head, *parts = CELL.split(path.read_text())
        cells = [(where, source.rstrip("\n") + "\n") for where, source in zip(parts[::2], parts[1::2])]
        assert cells and all(w in ("sft_loss", "sequence_log_prob", "added at end") or w.startswith("added before ")
                             for w, _ in cells), path
        expected, found = None, EXPECT.search(head)
        if found:
            sft, seq, status = (None if v == "any" else v for v in found.groups())
            expected = (None if sft is None else int(sft), None if seq is None else int(seq), status)
        cases[path.stem] = (cells, expected)
    return cases


def case_nb(cells: list, values: dict):
    """The notebook of a case: its cells with each ``{{NAME}}`` replaced by ``values[NAME]``; an answer cell
    the case leaves out holds the right answer."""
    def fill(source: str) -> str:
        return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], source)

    answers = dict(cells)
    added = tuple((None if where == "added at end" else where.removeprefix("added before "), fill(source))
                  for where, source in cells if where.startswith("added "))
    return student_nb(fill(answers.get("sft_loss", SFT_OK)), fill(answers.get("sequence_log_prob", SEQ_OK)), added)


# ----------------------------------------------------------------------------- 1. honest styles
# tests/trust_cases/honest/, and one whose IPython magic is no Python for a file
HONEST = {**load_cases("honest"), "timeit_magic": (
    [("sft_loss", SFT_OK + "\n%timeit -n 1 -r 1 sft_loss(torch.zeros(2, 3), torch.ones(2, 3))\n")], None)}

# ----------------------------------------------------------------------------- 2. attacks
ATTACKS = load_cases("attacks")  # tests/trust_cases/attacks/: each would raise a score if it worked

# ----------------------------------------------------------------------------- 4. hidden tests, escaping
LEAKERS = load_cases("leakers")  # tests/trust_cases/leakers/


def hidden_blocks() -> list[str]:
    src = nbs.load_source("demo", SOURCE)
    out = []
    for cell in src.nb.cells:
        if nbs.nbmeta(cell).get("grade"):
            out += nbs.split_hidden(nbs.nbmeta(cell)["grade_id"], nbs.source_text(cell))[1]
    return out


# literal inputs and expected values of the fixture's hidden tests (and what they print as)
HIDDEN_VALUES = ["7.0 / 3", "2.33333", "[-6.0, -0.5]", "-6, -0.5", "[[-1.0, -1.0], [-4.0, -2.0]]",
                 "[[1, 0], [1, 1]]", "[[-1.0, -2.0, -3.0], [-0.5, 0.0, -1.0]]", "[[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]",
                 "[[True, False], [True, True]]"]


def page_text(page: str) -> str:
    """What a reader of the feedback page sees (tags dropped, entities decoded)."""
    text = re.sub(r"<script\b.*?</script>|<style\b.*?</style>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


# ----------------------------------------------------------------------------- the batch
def _processes():
    """pid -> (uid, cmdline, mountinfo) of every live process (read as root: also those in sandboxes).
    Zombies are left out: they run nothing, and reaping them is the job of this machine's init."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue
            uid = os.stat(f"/proc/{pid}").st_uid
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            try:
                mounts = Path(f"/proc/{pid}/mountinfo").read_text(errors="replace")
            except OSError:
                mounts = ""
            out[int(pid)] = (uid, cmd, mounts)
        except OSError:
            continue
    return out


def _leftovers(marker: str):
    """Processes of this test: any whose mounts show ``marker``'s folder (a sandbox of this test's batch:
    its /grader is bound from there), or that carry the attacks' MARK on their command line."""
    return {pid: cmd for pid, (uid, cmd, mounts) in _processes().items() if MARK in cmd or marker in mounts}


def _host_ip() -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


class Listener:
    """TCP (all addresses) and abstract unix listeners that record every connection."""

    def __init__(self):
        self.hits = []
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("0.0.0.0", 0))
        self.tcp.listen(16)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.abstract = f"\0{MARK}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.abstract)
        self.unix.listen(16)
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import select

        while not self.stop:
            ready, _, _ = select.select([self.tcp, self.udp, self.unix], [], [], 0.2)
            for s in ready:
                if s is self.udp:
                    self.hits.append(("udp", s.recvfrom(100)))
                else:
                    conn, addr = s.accept()
                    self.hits.append(("stream", addr))
                    try:
                        conn.sendall(b"2.3333333333333335")
                    finally:
                        conn.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        for s in (self.tcp, self.udp, self.unix):
            s.close()


def _snapshot_files():
    """Files an escaped sandbox could leave: in /tmp and /dev/shm (top level and owned by nobody or
    named after MARK), and in site-packages / the repository / the course (named after MARK or .pth)."""
    found = set()
    for top in (Path("/tmp"), Path("/dev/shm")):
        for p in top.iterdir():
            try:
                if MARK in p.name or p.lstat().st_uid != 0:  # sandboxed code never runs as root
                    found.add(str(p))
            except OSError:
                pass
    for top in (SITE, REPO, REPO / "rlcourse", REPO / "autograder", COURSE):
        found |= {str(p) for p in top.glob(f"*{MARK}*")}
    found |= {str(p) for p in SITE.glob("*.pth")}
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    out, nbgrader_dir, gradebook = root / "out", root / "course", root / "gradebook.db"
    listener = Listener()
    values = {"REPO": str(REPO), "SITE": str(SITE), "COURSE": str(COURSE), "MARK": MARK, "ROOT": str(root),
              "OUT": str(out), "GRADEBOOK": str(gradebook), "NBGRADER": str(nbgrader_dir),
              "PORT": str(listener.port), "HOST_IP": _host_ip()}  # the placeholders of tests/trust_cases
    expected = {}
    notebooks = {}
    for name, (cells, _) in HONEST.items():
        notebooks[f"honest_{name}"] = case_nb(cells, values)
        expected[f"honest_{name}"] = (3, 2, "ok")
    for name, (cells, want) in {**ATTACKS, **LEAKERS}.items():
        notebooks[name] = case_nb(cells, values)
        expected[name] = want
    for name, nb in notebooks.items():
        d = root / "submitted" / name / "demo"
        d.mkdir(parents=True)
        (d / "demo.ipynb").write_text(nbformat.writes(nb))
    files_before = _snapshot_files()
    solutions_before = {p: p.read_bytes() for p in (COURSE / "solutions").rglob("*") if p.is_file()}
    t0 = time.time()
    try:
        rows = grade(root / "submitted", out, COURSE, db_url=f"sqlite:///{gradebook}", quiet=True,
                     nbgrader_dir=nbgrader_dir, fresh=True,
                     options=GradingOptions(workers=2, timeout=120, cell_timeout=20, call_seconds=5))
    finally:
        listener.close()
    seconds = time.time() - t0
    time.sleep(1.5)  # a daemon that survived would have rewritten grades.csv by now
    result = {
        "root": root, "out": out, "rows": {r["student"]: r for r in rows}, "expected": expected,
        "seconds": seconds, "hits": list(listener.hits), "leftovers": _leftovers(str(root)),
        "new_files": _snapshot_files() - files_before, "gradebook": gradebook,
        "solutions_changed": solutions_before != {p: p.read_bytes() for p in (COURSE / "solutions").rglob("*")
                                                  if p.is_file()},
        "grades_csv": (out / "grades.csv").read_text(),
    }
    yield result
    for path in result["new_files"]:  # never leave an escaped attack's file behind
        try:
            Path(path).unlink()
        except OSError:
            pass


def _points(row, name):
    return float(row[name])


def test_honest_styles_get_full_marks(batch):
    rows = batch["rows"]
    assert len(HONEST) >= 20
    bad = {}
    for name in HONEST:
        row = rows.get(f"honest_{name}")
        got = None if row is None else (row["sft_loss"], row["sequence_log_prob"], row["total"], row["status"])
        if got != ("3", "2", "5", "ok"):
            bad[name] = (got, row and row["notes"])
    assert not bad, bad


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_scores_nothing(batch, name):
    row = batch["rows"][name]
    sft, seq, status = batch["expected"][name]
    got = (_points(row, "sft_loss"), _points(row, "sequence_log_prob"))
    want = (float(sft), float(seq) if seq is not None else got[1])
    assert got == want, (got, want, row["status"], row["notes"])
    if name != "patch_builtins":
        assert row["status"] != "error", row["notes"]
    if status is not None:
        assert set(status.split("+")) <= set(row["status"].split("+")), (row["status"], row["notes"])


def test_forged_protocol_is_the_evidence(batch):
    row = batch["rows"]["forge_protocol"]
    assert "tampering" in row["status"] and "sft_loss" in row["notes"], row["notes"]
    assert row["sft_loss"] == "0" and row["sequence_log_prob"] == "2"


def test_nothing_called_tampering_without_evidence(batch):
    flagged = {s for s, r in batch["rows"].items() if "tampering" in r["status"]}
    assert flagged == {"forge_protocol"}, {s: batch["rows"][s]["notes"] for s in flagged}


def test_no_network_reached(batch):
    assert batch["hits"] == []


def test_nothing_left_behind(batch):
    assert batch["leftovers"] == {}, batch["leftovers"]
    assert batch["new_files"] == set(), batch["new_files"]
    assert not batch["solutions_changed"]
    assert "hacked" not in batch["grades_csv"] and "hacked" not in (batch["out"] / "grades.csv").read_text()
    assert not list(batch["out"].glob(f"*{MARK}*")) and not list(batch["root"].rglob(f"*{MARK}*"))


def test_gradebook_untouched_by_students(batch):
    con = sqlite3.connect(batch["gradebook"])
    try:
        scores = gradebook_scores(con)
        top = con.execute("select max(auto_score) from grade").fetchone()[0]
    finally:
        con.close()
    assert top <= 2
    assert scores == {s: float(r["total"]) for s, r in batch["rows"].items()}


def test_every_honest_student_was_graded_next_to_the_attackers(batch):
    """Every honest student was graded next to the attackers (2 workers) and still got 5/5."""
    assert sum(1 for s in batch["rows"] if s.startswith("honest_")) == len(HONEST)


# ----------------------------------------------------------------------------- 4. feedback
@pytest.mark.parametrize("name", sorted(LEAKERS))
def test_hidden_tests_never_leak(batch, name):
    row = batch["rows"][name]
    sft, seq, _ = batch["expected"][name]
    assert (_points(row, "sft_loss"), _points(row, "sequence_log_prob")) == (sft, seq), row["notes"]
    page = (batch["out"] / "feedback" / name / "demo" / "demo.html").read_text()
    text = page_text(page)
    assert "BEGIN HIDDEN TESTS" not in text and "END HIDDEN TESTS" not in text
    leaked_lines = [line.strip() for block in hidden_blocks() for line in block.splitlines()
                    if line.strip() and line.strip() in text]
    assert not leaked_lines, leaked_lines
    leaked_values = [v for v in HIDDEN_VALUES if v in text]
    assert not leaked_values, (leaked_values, [text[max(0, text.find(v) - 200):text.find(v) + 100] for v in leaked_values])
    assert "hidden test failed" in text.lower() or name == "xss"


def test_visible_failures_do_show_the_students_message(batch):
    """The other side of the coin: on a visible test the student's own message is shown."""
    text = page_text((batch["out"] / "feedback" / "leak_raise" / "demo" / "demo.html").read_text())
    assert "[[-1.0, -2.0, -3.0]]" in text  # the visible sft_loss input, in the student's ValueError


def test_student_strings_are_escaped(batch):
    page = (batch["out"] / "feedback" / "xss" / "demo" / "demo.html").read_text()
    for raw in ("<script>alert(1)</script>", "<script>alert(2)</script>", "<img src=x onerror=alert(3)>",
                "<script>alert(4)</script>"):
        assert raw not in page, raw
    text = page_text(page)
    assert "<script>alert(1)</script>" in text  # the comment is shown, escaped


def test_hidden_inputs_recorded_then_raised_never_reach_the_feedback(tmp_path):
    """Issue 26: the student's process kept its state across tests, so a function could record its hidden test's
    inputs and another raise them in its visible test, printed in full in the feedback and results.json. The
    process that runs a visible test has never seen a hidden input (it is started afresh after a hidden block)."""
    import csv

    from autograder import one

    sub = tmp_path / "demo.ipynb"
    sub.write_text(nbformat.writes(student_nb(sft=REPLAY_SFT, seq=REPLAY_SEQ)))
    result = one.grade_one(sub, tmp_path / "out", COURSE, call_seconds=10)
    (nb,) = result["notebooks"]
    assert nb["points"] == {"sft_loss": 3.0, "sequence_log_prob": 0.0}, nb
    shown = {"results.json": json.dumps(result), "gradescope results.json": json.dumps(one.gradescope(result)),
             "feedback": page_text(Path(nb["feedback"]).read_text()),
             "grades.csv": json.dumps(list(csv.reader(open(tmp_path / "out" / "grades.csv"))))}
    for where, text in shown.items():
        leaked = [v for v in HIDDEN_VALUES if v in text]
        assert not leaked, (where, leaked, text[text.find("REPLAY"):][:600])
    assert "REPLAY [] FILE" in shown["feedback"]  # the visible test ran in a process that saw no test before it


def test_batch_runtime_is_recorded(batch):
    print(f"\ngraded {len(batch['rows'])} notebooks in {batch['seconds']:.0f} s")
    assert len(batch["rows"]) == len(batch["expected"])


# ----------------------------------------------------------------------------- 3. the sandbox itself
PROBES = r"""
import os, socket, sys

def uid():
    return [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]

def can_read(path):
    try:
        with open(path, 'rb') as fh:
            return fh.read(100).decode(errors='replace')
    except OSError as exc:
        return type(exc).__name__

def exists(path):
    return os.path.exists(path)

def can_write(path):
    try:
        with open(path, 'w') as fh:
            fh.write('x')
        return True
    except OSError:
        return False

def pids():
    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())

def connect(family, address):
    s = socket.socket(getattr(socket, family), socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(address if isinstance(address, str) else tuple(address))
        return 'connected'
    except OSError as exc:
        return type(exc).__name__
    finally:
        s.close()

def fill(where, chunk_mb, max_mb):
    written = 0
    buf = b'\0' * (chunk_mb << 20)
    try:
        while written < max_mb:
            with open(f'{where}/fill{written}', 'wb') as fh:
                fh.write(buf)
            written += chunk_mb
        return ['no limit', written]
    except OSError as exc:
        return [type(exc).__name__, written]

def daemon(marker):
    if os.fork() == 0:
        try:
            os.setsid()
            os.execv('/bin/sh', ['sh', '-c', 'sleep 600; :', marker])
        finally:
            os._exit(0)
    return True

def forever():
    while True:
        pass

def die():
    os._exit(3)

def ping(x):
    return x + 1

def grad_fn(x, y, z):
    return (x ** 2 * y).sum() + x.sin().sum() + (z.detach() * y).sum(), (x * y).sum(-1)

def sample(n, generator):
    return torch.randn(n, generator=generator)

def bump(t):
    t.add_(1)
    return None

class Sub(torch.Tensor):
    def __eq__(self, other):
        return True

def subclass():
    return torch.arange(3.0).as_subclass(Sub)

def forge():
    for fd in os.listdir('/proc/self/fd'):
        try:
            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):
                os.write(int(fd), b'xxxx')
        except OSError:
            pass
    return 1.0

def forge_reply(kind):
    # a reply frame of its own: 200,000 levels deep, or a million empty lists in 3 MB
    body = b'{"ok":' + b'[' * 200_000 + b']' * 200_000 + b'}' if kind == 'deep' else b'{"ok":[' + b'[],' * 999_999 + b'[]]}'
    for fd in os.listdir('/proc/self/fd'):
        try:
            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):
                os.write(int(fd), len(body).to_bytes(4, 'big') + body)
        except OSError:
            pass
    return 1.0

def alloc(gb):
    import torch
    return torch.zeros(int(gb * 2**28)).sum().item()   # float32: gb GB
"""
PROBE_NAMES = ["uid", "can_read", "exists", "can_write", "pids", "connect", "fill", "daemon", "forever", "die",
               "ping", "grad_fn", "sample", "bump", "subclass", "forge", "forge_reply", "alloc"]


@pytest.fixture(scope="module")
def sandbox_root(tmp_path_factory):
    return sandbox.prepare_root(tmp_path_factory.mktemp("sbroot") / "root")


def _job(root: Path, work: Path, **extra) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    job = {"sandbox_root": str(root), "log": str(work / "student.log"), "cwd": str(work), "prelude": ["import torch"],
           "cells": [{"id": 0, "source": PROBES, "exercise": None}], "names": PROBE_NAMES, "call_seconds": 3,
           "cell_seconds": 10, "memory_gb": 4.0, "cpu_seconds": 120, "scratch_mb": 32, "threads": 1}
    job.update(extra)
    return job


@pytest.fixture(scope="module")
def student(sandbox_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("sbwork")
    proc = remote.StudentProcess(_job(sandbox_root, work), work / "events.jsonl")
    proc.start()
    fns = {n: proc.function(n) for n in PROBE_NAMES}
    yield proc, fns, work
    proc.stop()


def test_sandbox_runs_unprivileged(student):
    proc, f, _ = student
    uid = proc.job.get("uid", getattr(sandbox, "NOBODY", NOBODY))  # nobody unless the job names another
    assert uid != 0 and f["uid"]() == [uid] * 4


def test_sandbox_cannot_read_outside(student, tmp_path):
    _, f, work = student
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    secret.chmod(0o644)
    solution = REPO / "solutions"
    some_solution = next(iter(sorted(solution.rglob("*.ipynb"))), SOURCE)
    for path in (secret, some_solution, SOURCE, COURSE / "solutions", REPO / "autograder" / "grade.py",
                 REPO / "rlcourse" / "reference.py", work / "events.jsonl", Path("/etc/shadow"), Path("/root")):
        assert f["can_read"](str(path)) in ("FileNotFoundError", "PermissionError", "IsADirectoryError"), path
    assert not f["exists"](str(secret)) and not f["exists"](str(solution))
    assert not f["exists"]("/grader/rlcourse/reference.py") and not f["exists"]("/grader/rlcourse/rollout.py")
    assert not f["exists"]("/grader/rlcourse/rewards.py")


def test_sandbox_cannot_write_outside_tmp(student, tmp_path):
    _, f, work = student
    tmp_path.chmod(0o777)  # even a folder anyone may write to is out of sight
    outside = [tmp_path / f"{MARK}-w", work / f"{MARK}-w", REPO / f"{MARK}-w", SITE / f"{MARK}.pth",
               Path("/grader") / f"{MARK}-w", Path("/") / f"{MARK}-w", Path(sysconfig.get_paths()["stdlib"]) / f"{MARK}-w"]
    wrote = [str(p) for p in outside if f["can_write"](str(p))]
    assert wrote == []
    assert f["can_write"](f"/tmp/{MARK}-w") and f["can_write"](f"/dev/shm/{MARK}-w")
    assert not [p for p in outside if p.exists()]
    assert not Path(f"/tmp/{MARK}-w").exists() and not Path(f"/dev/shm/{MARK}-w").exists()


def test_sandbox_sees_no_other_process(student):
    _, f, _ = student
    assert len(f["pids"]()) <= 3  # bubblewrap's init and the student's process


def test_sandbox_has_no_network(student):
    _, f, _ = student
    listener = Listener()
    try:
        assert f["connect"]("AF_INET", ["127.0.0.1", listener.port]) != "connected"
        assert f["connect"]("AF_INET", [_host_ip(), listener.port]) != "connected"
        assert f["connect"]("AF_UNIX", listener.abstract) != "connected"
        time.sleep(0.3)
    finally:
        listener.close()
    assert listener.hits == []


def test_sandbox_scratch_is_capped(student):
    _, f, _ = student
    error, written = f["fill"]("/tmp", 4, 200)  # scratch_mb=32
    assert error == "OSError" and written <= 32, (error, written)
    error, written = f["fill"]("/dev/shm", 8, 200)
    assert error == "OSError" and written <= 64, (error, written)


def test_call_timeout_then_next_call_works(student):
    proc, f, work = student
    t0 = time.time()
    with pytest.raises(remote.StudentTimeout):
        f["forever"]()
    assert time.time() - t0 < 3 + 2
    assert f["ping"](41) == 42
    assert any(json.loads(line)["kind"] == "timeout" for line in (work / "events.jsonl").read_text().splitlines())


def test_exit_in_a_call_then_next_call_works(student):
    proc, f, work = student
    with pytest.raises(remote.StudentCrashed):
        f["die"]()
    assert f["ping"](1) == 2


def test_gradients_through_the_bridge(student):
    _, f, _ = student
    x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1.0, 2.0, -3.0], [0.5, -0.5, 4.0]], dtype=torch.float64, requires_grad=True)
    z = torch.tensor([[3.0, 1.0, 2.0], [1.0, 1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    loss, rows = f["grad_fn"](x, y, z)
    (loss + 0.5 * rows.sum()).backward()
    remote_grads = (x.grad.clone(), y.grad.clone(), z.grad)
    x2, y2, z2 = (t.detach().clone().requires_grad_(True) for t in (x, y, z))
    l2, r2 = (x2 ** 2 * y2).sum() + x2.sin().sum() + (z2.detach() * y2).sum(), (x2 * y2).sum(-1)
    (l2 + 0.5 * r2.sum()).backward()
    assert torch.allclose(remote_grads[0], x2.grad) and torch.allclose(remote_grads[1], y2.grad)
    assert torch.allclose(loss.detach(), l2.detach()) and torch.allclose(rows.detach(), r2.detach())
    assert remote_grads[2] is None and z2.grad is None  # no gradient flows into a detached input


def test_generator_state_advances_as_a_local_call(student):
    _, f, _ = student
    g_remote, g_local = torch.Generator().manual_seed(123), torch.Generator().manual_seed(123)
    a = f["sample"](4, g_remote)
    b = torch.randn(4, generator=g_local)
    assert torch.equal(a, b)
    assert torch.equal(g_remote.get_state(), g_local.get_state())
    assert torch.equal(torch.randn(3, generator=g_remote), torch.randn(3, generator=g_local))


def test_in_place_change_of_an_argument_is_visible(student):
    _, f, _ = student
    t = torch.zeros(3)
    assert f["bump"](t) is None
    assert torch.equal(t, torch.ones(3))


def test_returned_subclass_arrives_as_a_plain_tensor(student):
    _, f, _ = student
    out = f["subclass"]()
    assert type(out) is torch.Tensor and torch.equal(out, torch.arange(3.0))
    assert not bool((out == torch.tensor([9.0, 9.0, 9.0])).any())


def test_protocol_forgery_is_caught(student):
    proc, f, work = student
    with pytest.raises(remote.StudentProtocolError):
        f["forge"]()
    kinds = [json.loads(line)["kind"] for line in (work / "events.jsonl").read_text().splitlines()]
    assert "protocol" in kinds
    assert f["ping"](2) == 3


def test_a_reply_past_the_limits_is_a_protocol_break(student):
    """Issue 26: a reply nested 200,000 deep raised RecursionError in the grader, untagged; a small reply of
    empty lists took the grader's kernel to gigabytes. Both are refused before decoding (tests/test_protocol.py)."""
    proc, f, work = student
    events = work / "events.jsonl"

    def breaks():
        return events.read_text().count('"kind": "protocol"') if events.exists() else 0

    for kind in ("deep", "wide"):
        before = breaks()
        with pytest.raises(remote.StudentProtocolError, match="elements"):
            f["forge_reply"](kind)
        assert breaks() == before + 1  # the grader tags it and scores that test 0
        assert f["ping"](2) == 3


def test_a_tensor_past_the_memory_limit_is_tagged_memory(student):
    """Issue 26: torch's allocator fails with a RuntimeError, not a MemoryError; a 20 GB tensor was tagged
    ``timeout``. It is the student's ``memory`` event, and the process goes on serving."""
    proc, f, work = student
    with pytest.raises(RuntimeError, match="allocate"):
        f["alloc"](20)
    events = [json.loads(line) for line in (work / "events.jsonl").read_text().splitlines()]
    assert ("memory", "alloc") in [(e["kind"], e["exercise"]) for e in events], events
    assert f["alloc"](0.001) == 0.0 and f["ping"](2) == 3


def test_prints_into_a_full_log_never_fail_the_students_code(monkeypatch):
    """Issue 26: once the student's log reached its file-size limit, every later ``print`` raised OSError and
    a correct answer scored 0. The student's output is dropped instead."""
    monkeypatch.syspath_prepend(str(REPO / "autograder" / "sandboxed"))  # as in the sandbox: student_server beside protocol
    from student_server import CappedOutput

    class Full:
        def write(self, text):
            raise OSError(27, "File too large")

        def flush(self):
            raise OSError(27, "File too large")

    out = CappedOutput(Full())
    assert out.write("hello\n") == 6 and out.write("again\n") == 6
    out.flush()


def test_stop_leaves_no_process(tmp_path):
    root = sandbox.prepare_root(tmp_path / "root")  # its own, so only this test's processes mount it
    work = tmp_path / "work"
    marker = f"{MARK}-stop"
    proc = remote.StudentProcess(_job(root, work), work / "events.jsonl")
    proc.start()
    daemon = proc.function("daemon")
    assert daemon(marker) is True
    time.sleep(0.3)
    running = {pid for pid, (uid, cmd, mounts) in _processes().items()
               if marker in cmd or str(root) in mounts}
    assert len(running) >= 2  # the server and the daemon, at least
    outer = proc.proc.pid
    proc.stop()
    time.sleep(0.5)
    left = {pid: cmd for pid, (uid, cmd, mounts) in _processes().items()
            if pid in running or marker in cmd or pid == outer}
    assert left == {}


def _tasks_of(uids) -> int:
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                n += sum(1 for t in os.listdir(f"/proc/{pid}/task") if os.stat(f"/proc/{pid}/task/{t}").st_uid in uids)
            except OSError:
                pass
    return n


FORKER = r"""
import os, time
def fork_all(n):
    made = 0
    if os.getuid() != 0 and len([p for p in os.listdir('/proc') if p.isdigit()]) < 50:
        for _ in range(n):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                try:
                    time.sleep(120)
                finally:
                    os._exit(0)
            made += 1
    return made

def ping(x):
    import threading  # an honest student's code may start a thread (tqdm, a DataLoader) or a process
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    return x + 1
"""


def test_process_budget_is_not_shared_between_students(tmp_path, monkeypatch):
    """A student who forks up to the process limit must not stop the student graded next to them.

    The students get the uids the grader gives two parallel workers; the process limit is lowered to
    (their tasks now + 40) so that this test exhausts nothing other sandboxes on the machine need.
    """
    root = sandbox.prepare_root(tmp_path / "root")
    from autograder import pool as grading

    base = getattr(grading, "SANDBOX_UID_BASE", None)
    # two parallel workers get two uids (offset here so as not to meet a grading run on this machine)
    uids = [base + 50, base + 51] if base is not None else [NOBODY, NOBODY]
    limit = _tasks_of(uids) + 40
    real = sandbox.limiter

    def lowered(memory_gb, cpu_seconds, *args, **kwargs):
        kwargs["processes"] = limit
        return real(memory_gb, cpu_seconds, **kwargs)

    monkeypatch.setattr(sandbox, "limiter", lowered)
    jobs = [_job(root, tmp_path / w, cells=[{"id": 0, "source": FORKER, "exercise": None}],
                 names=["fork_all", "ping"], call_seconds=20, uid=uid) for w, uid in zip("ab", uids)]
    a = remote.StudentProcess(jobs[0], tmp_path / "a" / "events.jsonl")
    b = remote.StudentProcess(jobs[1], tmp_path / "b" / "events.jsonl")
    try:
        a.start()
        made = a.function("fork_all")(80)
        assert 0 < made < 80  # the limit stopped the forks
        b.start()
        assert b.function("ping")(1) == 2
    finally:
        a.stop()
        b.stop()
