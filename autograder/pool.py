"""The worker pool of a grading run, and one notebook's run in it.

A ``Pool`` belongs to one ``grade()`` run: it holds the run's settings (``RunSettings``), its grading workers (one
``python -m autograder.worker --serve`` process per thread that grades, ``Worker``) and the results of the code
it has run, so that identical code runs once per batch. ``run_item`` grades one submitted notebook: the
student's code is taken out of it (autograder/notebooks.py), the notebook the grader executes is built from the
source notebook, and a worker runs it with nbgrader (``execute``); the student's code runs only in the sandboxed
process the worker's kernel starts. The pool is closed by the run that made it; nothing of it outlives the run.

Each run holds a block of uids of its own (``hold_uid_block``): one per worker, the user its students' code
runs as.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rlcourse.paths import REPO_ROOT

from . import limits, sandbox
from . import notebooks as nbs
from .errors import GradingError
from .intake import Item

# A grader fault (the grading worker or its kernel failed to start or died, nbgrader failed, the student's process
# did not start before any of the student's code ran) is never the student's: it is tried again with a fresh worker
# and kernel, GRADER_ATTEMPTS times in all; if it persists, the notebook is marked GRADER_ERROR (no points taken,
# regraded by the next plain run). What went wrong goes to the instructor only (Outcome.grader_notes).
GRADER_ATTEMPTS = 3
GRADER_ERROR = "grader_error"
GRADER_ERROR_NOTE = "the grader failed on this notebook; it will be regraded: no points were taken"
STUDENT_EVENTS = {"timeout", "cell_timeout", "crashed", "memory", "protocol", "load_error"}  # what the student's process did
SANDBOX_UID_BASE = 61000  # unprivileged uids, not in /etc/passwd: one per parallel worker
UID_BLOCK = 100           # uids a run holds, from SANDBOX_UID_BASE + k * UID_BLOCK (at most this many workers)
UID_LOCKS = Path("/tmp")  # where runs say which block they hold (not TMPDIR: every run must see the same folder)


@dataclass(frozen=True)
class GradingOptions:
    """How a run grades each notebook: its limits (defaults from autograder/limits.py) and switches."""

    workers: int = limits.WORKERS                     # notebooks graded at once
    timeout: float = limits.NOTEBOOK_SECONDS          # wall-clock seconds per notebook run
    cell_timeout: int | None = None                   # seconds per test cell (None: Execute.timeout of the config)
    call_seconds: float = limits.CALL_SECONDS         # one call of a student's function
    memory_gb: float = limits.MEMORY_GB               # address space of the student's process
    kernel_memory_gb: float = limits.KERNEL_MEMORY_GB  # the grader's own kernel (its control group)
    cpu_seconds: int = limits.CPU_SECONDS             # CPU time of the student's process
    keep: bool = False                                # keep the per-notebook workspaces (debugging)
    cache: bool = True                                # run identical code once per batch
    no_sandbox: bool = False                          # run the student's code without the OS sandbox


@dataclass(frozen=True)
class RunSettings:
    """What one grading run settled before its first notebook: its options (``cell_timeout`` filled in), its
    scratch folder, its block of uids, the template gradebook, the sandbox's root, each worker's share of the
    cores, and the answer cells of the student release (``release_answers``, by (assignment, notebook))."""

    options: GradingOptions
    tmp: Path
    uid_base: int
    template_db: Path
    sandbox_root: Path
    threads: int
    stubs: dict


@dataclass
class Outcome:
    student: str
    assignment: str
    notebook: str
    points: dict       # exercise -> points
    max_points: dict   # exercise -> max
    tags: list
    notes: list
    seconds: float = 0.0
    feedback: str | None = None  # nbgrader's feedback HTML
    autograded: str | None = None  # the executed notebook (for formgrader)
    peak_mb: dict | None = None  # peak resident memory of the worker and of its largest child
    # the grader's own diagnostics (logs of the worker and nbgrader, grader tracebacks): they may hold hidden test
    # code or inputs, so they go to the instructor only (grades.csv's grader_notes), never into notes
    grader_notes: list = field(default_factory=list)


def release_answers(course_root: Path, src: nbs.SourceNotebook) -> dict[str, str]:
    """The answer cells as the student release has them (to tell an untouched notebook)."""
    path = course_root / "notebooks" / src.assignment / f"{src.name}.ipynb"
    stubs = {}
    if path.exists():
        try:
            release = json.loads(path.read_text())
            for cell in release.get("cells", []):
                if nbs.is_answer(cell):
                    stubs[nbs.nbmeta(cell)["grade_id"]] = nbs.norm(nbs.source_text(cell))
        except (OSError, ValueError):
            pass
    return stubs


def run_item(item: Item, src: nbs.SourceNotebook, pool: Pool) -> Outcome:
    """Grade one submitted notebook in ``pool``: its outcome (what could not be read or run says why)."""
    start = time.time()
    max_points = {n: e.points for n, e in src.exercises.items()}
    outcome = Outcome(item.student, item.assignment, item.notebook, {n: 0.0 for n in src.exercises}, max_points,
                      sorted(item.tags), list(item.notes))
    if item.data is None:
        return outcome
    try:
        student = nbs.read_student(item.data)
    except nbs.Unreadable as exc:
        outcome.tags = sorted(set(outcome.tags) | {exc.tag})
        outcome.notes.append(exc.note)
        return outcome
    ex = nbs.extract(student, src)
    tags, notes = set(item.tags) | ex.tags, list(item.notes) + ex.notes
    stubs = pool.settings.stubs.get((src.assignment, src.name), {})
    untouched = stubs and all(nbs.norm(ex.answers.get(n, "")) == stubs.get(n) for n in src.exercises) \
        and not any(c["exercise"] is None for c in ex.cells)
    if untouched:
        tags.add("not_attempted")
        notes.append("no exercise was changed from the release")
        outcome.tags, outcome.notes, outcome.seconds = sorted(tags), notes, time.time() - start
        return outcome
    key = hashlib.sha256(json.dumps([item.assignment, item.notebook, ex.cells]).encode()).hexdigest()
    result = pool.once(key, lambda: execute(item, src, ex, pool))
    outcome.points, outcome.tags = dict(result.points), sorted(tags | result.tags)
    outcome.notes, outcome.grader_notes = notes + result.notes, list(result.grader_notes)
    outcome.feedback, outcome.autograded, outcome.peak_mb = result.feedback, result.autograded, result.peak_mb
    outcome.seconds = time.time() - start
    return outcome


class Pool:
    """The grading workers of one run, and the results of the code they ran (by the code: identical code runs
    once per batch). Made by ``grade()`` for its run and closed by it: ``close`` stops every worker."""

    def __init__(self, settings: RunSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._results: dict = {}      # code's key -> Executed
        self._key_locks: dict = {}    # code's key -> the lock its first copy holds while it runs
        self._local = threading.local()  # each grading thread's worker
        self._workers: list[Worker] = []

    def worker(self) -> Worker:
        """This thread's worker (made on first use; it starts when it gets its first job)."""
        w = getattr(self._local, "worker", None)
        if w is None:
            with self._lock:
                w = self._local.worker = Worker(self.settings, len(self._workers))
                self._workers.append(w)
        return w

    def once(self, key: str, compute) -> Executed:
        """``compute()``, unless code with this key ran before in this run (and the options allow the cache): then
        its result. A grader fault is not kept: the next copy is tried again."""
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:  # identical code runs once per batch: the executed notebook would be the same
            if key in self._results and self.settings.options.cache:
                return self._results[key]
            result = compute()
            if GRADER_ERROR not in result.tags:
                self._results[key] = result
            return result

    def close(self) -> None:
        """Stop every worker of the run (and with it its kernel and the student's process)."""
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:
            w.stop()


def _limit_worker():
    os.setsid()  # its own group, so a time-out kills the worker with its kernel
    sandbox.die_with_parent()


class Worker:
    """One ``python -m autograder.worker --serve`` process, reused for notebook after notebook. Its stderr goes
    to ``tmp/worker-<slot>.log``; a job that leaves no result is reported with what the worker wrote there
    during that job and how it ended (``failure``)."""

    command = ("-m", "autograder.worker", "--serve")  # after the interpreter

    def __init__(self, settings: RunSettings, slot: int):
        self.settings, self.proc = settings, None
        self.uid = settings.uid_base + slot  # the user its students' code runs as: one per parallel worker
        self.log_path = Path(settings.tmp) / f"worker-{slot}.log"
        self.job_start = 0  # where the current job's part of the log begins
        self.returncode = None  # how the process ended, once it has in the current job

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # each worker's share of the cores
            env.setdefault(var, str(self.settings.threads))
        with open(self.log_path, "ab") as log:  # the worker has its own copy: nothing stays open here
            self.proc = subprocess.Popen([sys.executable, *self.command], cwd="/", env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         preexec_fn=_limit_worker)

    def stop(self) -> None:
        if self.proc is not None:
            self.returncode = sandbox.end_group(self.proc)
            self.proc = None

    def run(self, ws: Path, timeout: float) -> bool:
        """Grade the job in ``ws``; False if it did not finish in time (the worker is then replaced)."""
        import select

        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self.start()
        self.returncode = None
        self.job_start = self.log_path.stat().st_size
        try:
            self.proc.stdin.write(f"{ws}\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return True  # no result.json: reported as an error
        deadline = time.time() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            left = deadline - time.time()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.stop()
                return False
            line = self.proc.stdout.readline()
            if not line:  # the worker died: its result (if any) tells
                self.stop()
                return True
            if line.strip() == b"done":
                return True

    def failure(self, limit: int = 1500) -> str:
        """Why the current job left no result: the end of what the worker wrote to its log during the job,
        and how the worker ended if it did."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(self.job_start, self.log_path.stat().st_size - 4 * limit))
                text = fh.read().decode(errors="replace").strip()
        except OSError as exc:
            text = f"(its log cannot be read: {exc.strerror})"
        ended, code = "", self.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in set(signal.Signals) else f"signal {-code}"
            ended = f"the grading worker was killed by {name}"
        elif code is not None:
            ended = f"the grading worker exited with status {code}"
        text = text[-(limit - len(ended) - 2):] if text else ""
        return "; ".join(t for t in (text, ended) if t) or "the grading worker wrote no result and no error"


class GraderFault(Exception):
    """The grader, not the student, kept this notebook from being graded (the message is for the instructor)."""


class Executed(NamedTuple):
    """What running one built notebook gave (``execute``)."""

    points: dict                 # exercise -> points
    tags: set
    notes: list                  # for the student
    feedback: str | None = None  # nbgrader's feedback HTML
    autograded: str | None = None  # the executed notebook
    peak_mb: dict | None = None  # peak resident memory of the worker and of its largest child
    grader_notes: tuple | list = ()  # for the instructor only


def execute(item: Item, src: nbs.SourceNotebook, ex: nbs.Extracted, pool: Pool) -> Executed:
    """Run the built notebook in this thread's worker of ``pool``: its points, tags, notes, feedback html,
    autograded json, peak memory and grader notes (``Executed``). A grader fault is tried again with a fresh worker and kernel (GRADER_ATTEMPTS in all);
    if it persists the notebook is tagged GRADER_ERROR with zero points that are not the student's (the gradebook
    and grades.csv leave them open) and a plain note; what went wrong is in the grader notes only."""
    zero = {n: 0.0 for n in src.exercises}
    nb, hidden, roles = nbs.build(src, ex.answers)
    grader_notes = []
    for attempt in range(1, GRADER_ATTEMPTS + 1):
        try:
            result = _run_once(item, src, ex, pool, nb, hidden, roles)
            break
        except (GraderFault, OSError) as exc:
            detail = str(exc) if isinstance(exc, GraderFault) else f"{type(exc).__name__}: {exc}"
            grader_notes.append(f"attempt {attempt} of {GRADER_ATTEMPTS}: {detail.strip()}")
            pool.worker().stop()  # the next attempt gets a fresh worker, and with it a fresh kernel and ports
            sandbox.Cgroup.remove_stale()  # a kernel killed at its memory bound left its group
    else:
        result = Executed(dict(zero), {GRADER_ERROR}, [GRADER_ERROR_NOTE])
    if pool.settings.options.no_sandbox:
        result.tags.add("unsandboxed")
        result.notes.insert(0, "graded with --no-sandbox: the student's code ran without isolation")
    return result._replace(grader_notes=grader_notes)


def _events(ws: Path) -> list[dict]:
    """The events the grader's kernel recorded about the student's process (autograder/remote.py)."""
    events = []
    try:
        lines = (ws / "events.jsonl").read_text(errors="replace").splitlines()[:1000]
    except OSError:
        return events
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            events.append(ev)
    return events


def _last_exception(log: str) -> str:
    """The last ``SomeError: message`` line of a log with tracebacks (nbgrader's log of a failed notebook)."""
    found = re.findall(r"^\s*((?:[\w.]+\.)?\w*(?:Error|Exception|Exit|Interrupt|Died)\b:.*)$", log or "", re.M)
    return found[-1].strip()[:300] if found else ""


def _run_once(item: Item, src: nbs.SourceNotebook, ex: nbs.Extracted, pool: Pool, nb, hidden, roles) -> Executed:
    """One attempt: its points, tags, notes, feedback html, autograded json and peak memory (``Executed``, no
    grader notes); GraderFault where the grader failed. Only what the student's process did (time-outs, crashes, memory, protocol breaks) lowers
    the score."""
    import nbformat

    zero = {n: 0.0 for n in src.exercises}
    tags, notes = set(), []
    run, opts = pool.settings, pool.settings.options
    load_seconds = max(10.0, opts.cell_timeout * 0.75)
    worker = pool.worker()
    ws = Path(run.tmp) / f"ws-{hashlib.sha256(f'{item.student}/{item.assignment}/{item.notebook}'.encode()).hexdigest()[:16]}"
    shutil.rmtree(ws, ignore_errors=True)
    try:
        sub = ws / "submitted" / "student" / item.assignment
        sub.mkdir(parents=True)
        (ws / "source" / item.assignment).mkdir(parents=True)
        nbformat.write(nb, str(sub / f"{item.notebook}.ipynb"))
        shutil.copy(run.template_db, ws / "gradebook.db")
        (ws / "job.json").write_text(json.dumps({"assignment": item.assignment, "student": "student",
                                                 "notebook": item.notebook, "roles": roles,
                                                 "cell_timeout": opts.cell_timeout}))
        (ws / "student.json").write_text(json.dumps({
            "sandbox_root": str(run.sandbox_root), "no_sandbox": opts.no_sandbox, "log": str(ws / "student.log"),
            "cwd": str(ws), "prelude": nbs.prelude(src), "cells": ex.cells, "names": sorted(src.exercises),
            "hidden": hidden, "threads": run.threads, "memory_gb": opts.memory_gb,
            "kernel_memory_gb": opts.kernel_memory_gb,
            "cpu_seconds": opts.cpu_seconds, "call_seconds": opts.call_seconds,
            # the student's cells must have run before the first test cell's time limit: answer cells always
            # run, the cells they added only within the load budget
            "cell_seconds": min(opts.call_seconds, load_seconds / 3), "load_seconds": load_seconds,
            "scratch_mb": limits.SCRATCH_MB, "uid": worker.uid}))
        if not worker.run(ws, opts.timeout):
            if not any(ev.get("kind") in STUDENT_EVENTS for ev in _events(ws)):  # nothing the student did
                raise GraderFault(f"the notebook did not finish within {opts.timeout:g} s and the student's process "
                                  f"had no time-out, crash or memory event: {worker.failure()}")
            tags |= {"timeout", "error"}
            notes.append(f"the notebook did not finish within {opts.timeout:g} s")
            return Executed(zero, tags, notes)
        try:
            result = json.loads((ws / "result.json").read_text())
        except FileNotFoundError:
            raise GraderFault(f"the grading worker wrote no result: {worker.failure()}") from None
        except ValueError as exc:
            raise GraderFault(f"the grading worker's result is unreadable ({exc}): {worker.failure()}") from None
        if not result["success"]:
            why = _last_exception(result.get("log", "")) or _last_exception(result.get("error", ""))
            raise GraderFault(f"nbgrader could not run the notebook{f' ({why})' if why else ''}; the end of the "
                              f"worker's log: {worker.failure()}")
        if result["errors"].get("init:None"):
            raise GraderFault(f"the grader's first cell (autograder/kernel.py) raised {result['errors']['init:None']}")
        failed_start = [str(ev.get("detail", "")) for ev in result["events"] if ev.get("kind") == "error"]
        if failed_start:
            raise GraderFault("; ".join(failed_start))
        points = dict(zero)
        for gid, (score, _) in result["grades"].items():
            owner = src.test_owner.get(gid)
            if owner:
                points[owner] += score
        zeroed = set()
        for ev in result["events"]:
            kind, what, detail = ev.get("kind"), ev.get("exercise") or "", str(ev.get("detail", ""))
            if kind in ("timeout", "cell_timeout"):
                tags.add("timeout")
            elif kind == "crashed":
                tags.add("crashed")
            elif kind == "memory":
                tags.add("memory")
            elif kind == "load_error":
                tags.add("load_error")
            elif kind == "protocol":
                tags.add("tampering")
                if what in points:
                    zeroed.add(what)
            notes.append(f"{what + ': ' if what else ''}{detail}")
        for name in zeroed:
            points[name] = 0.0
        if any(v == "CellTimeoutError" for v in result["errors"].values()):
            tags.add("timeout")
            notes.append("a test cell ran past the cell time limit")
        fb = next((ws / "feedback").rglob("*.html"), None) if (ws / "feedback").exists() else None
        graded = ws / "autograded" / "student" / item.assignment / f"{item.notebook}.ipynb"
        return Executed(points, tags, _dedupe(notes), fb.read_text(errors="replace") if fb else None,
                        graded.read_text() if graded.exists() else None, result.get("peak_mb"))
    finally:
        if not opts.keep:
            shutil.rmtree(ws, ignore_errors=True)


def _dedupe(notes: list) -> list:
    seen, out = set(), []
    for n in notes:
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out[:20]



def hold_uid_block(locks: Path = UID_LOCKS) -> tuple[int, Path]:
    """The first block of UID_BLOCK uids that no other grading run on this machine holds, and its lock file.

    Two runs at once must not share uids: a student's process-count limit and, without the sandbox, the
    clean-up of what a uid left in /tmp are per uid. A run holds its block by a lock file naming its pid
    (made with O_EXCL); a lock whose pid is gone is taken over. The caller removes the lock when it ends.
    """
    for base in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + 400 * UID_BLOCK, UID_BLOCK):
        lock = locks / f"rlcourse-grading-uids-{base}.lock"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    pid = lock.read_text().strip()
                except OSError:
                    break
                if pid.isdigit() and not Path(f"/proc/{pid}").exists():  # its run was killed
                    lock.unlink(missing_ok=True)
                    continue
                break
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            return base, lock
    raise GradingError(f"no free block of grading uids: too many runs hold one (lock files in {locks})")

