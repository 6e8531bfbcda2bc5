"""Grade a class: ``python -m autograder.grade SUBMISSIONS [--out DIR] [--db URL] [--workers N] ...``.

See autograder/README.md. SUBMISSIONS is a folder or a .zip, in nbgrader's layout, as one folder per
student, or as an LMS export; each input is graded or listed in ``not_graded.csv`` (autograder/intake.py).
This module is the batch: ``grade()`` checks the host, sets up the gradebooks (autograder/gradebook.py),
grades what earlier runs left ungraded in a pool of workers of its own (autograder/pool.py) and publishes
each outcome as it comes (autograder/publish.py); ``main`` is its command line.

Trust: this process, the worker processes and their kernels are the grader; the student's code runs
only in a sandboxed process of its own (autograder/sandbox.py, autograder/remote.py). Results are
recorded as each notebook finishes, so a batch that is killed and run again grades only what is
missing.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from coursetools import layout
from rlcourse.paths import REPO_ROOT

from . import limits, sandbox
from . import notebooks as nbs
from .errors import GradingError
from .gradebook import cell_timeout_default, course_id, prepare_gradebooks, record
from .intake import Item, collect
from .pool import (GRADER_ERROR, GRADER_ERROR_NOTE, UID_BLOCK, GradingOptions, Outcome, Pool, RunSettings,
                   hold_uid_block, release_answers, run_item)
from .publish import publish, write_atomic, write_csv, write_not_graded

REPO = REPO_ROOT
GRADER_VERSION = "4"  # part of every result's key: results of another grader version are not reused


def _result_key(item: Item, src_digest: str, options: GradingOptions) -> str:
    """The key of an item's saved result: what would change its grade (grader version, student, notebook,
    source notebook, notes, sandbox, submitted bytes)."""
    h = hashlib.sha256()
    for part in (GRADER_VERSION, item.student, item.assignment, item.notebook, src_digest,
                 json.dumps(sorted(item.tags)), json.dumps(item.notes), str(options.no_sandbox)):
        h.update(part.encode() + b"\0")
    h.update(item.data or b"")
    return h.hexdigest()[:32]


def _hash_tree(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _stat_tree(path: Path) -> str:
    """What a write to the tree would change without reading it: each file's name, size, inode and change
    time (``st_ctime_ns``, which every write or ``utime`` moves and no user can set back)."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        try:
            st = p.lstat()
        except OSError:
            continue
        h.update(f"{p.relative_to(path)}\0{st.st_mode}\0{st.st_size}\0{st.st_ino}\0{st.st_ctime_ns}\0".encode())
    return h.hexdigest()


class TreeGuard:
    """A folder the students' code must never change (the course's solutions, the submissions): hashed once,
    then checked after each notebook by its files' metadata (a stat per file, not a read of every byte: the
    hash of 200 students' submissions after each of their notebooks took most of an hour); the contents are
    hashed again only when the metadata moved."""

    def __init__(self, path: Path):
        self.path, self.digest, self.stat = path, _hash_tree(path), _stat_tree(path)

    def changed(self) -> bool:
        stat = _stat_tree(self.path)
        if stat == self.stat:
            return False
        self.stat = stat
        return _hash_tree(self.path) != self.digest


# ----------------------------------------------------------------------------- the batch
def grade(submissions: Path, out: Path, course_root: Path = REPO, *, db_url: str | None = None,
          nbgrader_dir: Path | None = None, options: GradingOptions = GradingOptions(), fresh: bool = False,
          quiet: bool = False) -> list[dict]:
    """Grade every notebook of ``submissions`` into ``out`` (grades.csv, not_graded.csv, feedback/), the
    gradebook at ``db_url`` (default: ``<nbgrader_dir>/gradebook.db``) and ``nbgrader_dir`` (default: the
    course root); returns the rows of grades.csv. Results of an earlier run are kept unless ``fresh``."""
    submissions, out, course_root = Path(submissions).resolve(), Path(out).resolve(), Path(course_root).resolve()
    layout.interpreter_on_path()  # nbgrader's Gradebook runs `alembic` when it creates a database
    _check_host(submissions, options)
    course = nbs.load_course(course_root)
    if not course:
        raise GradingError(f"no source notebooks under {course_root / 'solutions'}")
    sources = {(a, s.name): s for a, srcs in course.items() for s in srcs}
    digests = {k: hashlib.sha256(s.path.read_bytes()).hexdigest() for k, s in sources.items()}
    nbgrader_dir = Path(nbgrader_dir).resolve() if nbgrader_dir else course_root
    db_url = db_url or f"sqlite:///{nbgrader_dir / 'gradebook.db'}"
    _make_folders(course_root, submissions, out, nbgrader_dir, db_url, options.no_sandbox)
    sandbox.Cgroup.remove_stale()  # what a killed run left: its groups, and any process still in them
    state = out / ".grading"
    results_dir = state / "results"
    if fresh:
        shutil.rmtree(results_dir, ignore_errors=True)
    tmp = state / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed run left behind
    tmp.mkdir(parents=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    options = dataclasses.replace(options, cell_timeout=options.cell_timeout or cell_timeout_default())
    stubs = {k: release_answers(course_root, s) for k, s in sources.items()}
    uid_base, uid_lock = hold_uid_block()
    area = tmp  # what the student's user may reach
    try:
        template_db = prepare_gradebooks(course_root, course, db_url, state, tmp)
        try:
            area = sandbox.student_area() if options.no_sandbox else tmp
        except RuntimeError as exc:
            raise GradingError(f"cannot grade with --no-sandbox: {exc}") from None
        settings = RunSettings(options, tmp, uid_base, template_db,
                               sandbox.prepare_root(area / ("grader" if options.no_sandbox else "sandbox")),
                               threads=max(1, (os.cpu_count() or 1) // max(1, options.workers)), stubs=stubs)
        items, skipped = collect(submissions, course, tmp)
        write_not_graded(out, skipped)
        guarded = {"solutions": TreeGuard(course_root / layout.SOURCE_DIR)}
        if submissions.is_dir():
            guarded["submissions"] = TreeGuard(submissions)
        t0 = time.time()
        keyed = [(_result_key(it, digests[(it.assignment, it.notebook)], options), it) for it in items]
        items_by_key = dict(keyed)
        outcomes, todo = _earlier_results(keyed, results_dir)

        def finish(key: str, outcome: Outcome) -> None:
            src = sources[(outcome.assignment, outcome.notebook)]
            for what, guard in guarded.items():
                if guard.changed():
                    outcome.tags = sorted(set(outcome.tags) | {"error"})
                    outcome.notes.append(f"{what} changed while this notebook ran: check the grading machine")
            record(db_url, course_id(), outcome, src)
            publish(outcome, out, nbgrader_dir, items_by_key[key].data)
            write_atomic(results_dir / f"{key}.json", json.dumps(asdict(outcome)))
            outcomes[key] = outcome

        pool = Pool(settings)
        try:
            _grade_all(pool, todo, sources, finish, quiet)
        finally:
            pool.close()
        for key, outcome in outcomes.items():  # results of an earlier, interrupted run: same records
            if not (results_dir / f"{key}.json").exists():
                continue
            record(db_url, course_id(), outcome, sources[(outcome.assignment, outcome.notebook)])
            publish(outcome, out, nbgrader_dir, items_by_key[key].data)
        rows = write_csv(out, sorted(outcomes.values(), key=lambda o: (o.student, o.assignment, o.notebook)), sources)
        if not quiet:
            _summary(rows, skipped, out, db_url, time.time() - t0, options)
        return rows
    finally:
        uid_lock.unlink(missing_ok=True)
        if not options.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        if area != tmp:
            shutil.rmtree(area, ignore_errors=True)


def _check_host(submissions: Path, options: GradingOptions) -> None:
    """Refuse a run that cannot start (GradingError): no submissions, too many workers, no sandbox (or, with
    ``no_sandbox``, a host where the student's code could not run as an unprivileged user)."""
    if not submissions.exists():
        raise GradingError(f"{submissions}: no such file or folder")
    if options.workers > UID_BLOCK:
        raise GradingError(f"at most {UID_BLOCK} workers (each runs its students as a uid of its own), "
                           f"not {options.workers}")
    if not options.no_sandbox:
        try:
            sandbox.check_available()
        except RuntimeError as exc:
            raise GradingError(f"cannot grade: {exc}") from None
    elif sandbox.unprivileged_problem():  # as root the student's code never runs as root
        raise GradingError(f"cannot grade with --no-sandbox: {sandbox.unprivileged_problem()}")


def _make_folders(course_root: Path, submissions: Path, out: Path, nbgrader_dir: Path, db_url: str,
                  no_sandbox: bool) -> None:
    """The output, nbgrader and gradebook folders; without the sandbox, each the grader's own, and every folder
    the grader reads or writes checked to be out of the student's reach (check_private)."""
    mode = 0o700 if no_sandbox else 0o777  # without the sandbox, a folder the grader makes is its own
    db_dir = Path(db_url[len("sqlite:///"):]).parent if db_url.startswith("sqlite:///") else None
    for folder in (db_dir, out, nbgrader_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True, mode=mode)
    if no_sandbox:
        check_private([("the course", course_root), ("the submissions", submissions), ("the output folder", out),
                       ("the nbgrader folder", nbgrader_dir), ("the gradebook's folder", db_dir),
                       *(("the grader's copy of the course package", p) for p in sandbox.must_not_see())])


def _earlier_results(keyed: list[tuple[str, Item]], results_dir: Path) -> tuple[dict[str, Outcome], list]:
    """(the outcomes an earlier run saved, by key; each (key, item) still to grade). A saved outcome is kept
    unless the grader failed on it then."""
    outcomes: dict[str, Outcome] = {}
    todo = []
    for key, it in keyed:
        saved = results_dir / f"{key}.json"
        if saved.exists():  # graded in an earlier run: kept, unless the grader failed on it then
            try:
                earlier = Outcome(**json.loads(saved.read_text()))
                if GRADER_ERROR not in earlier.tags:
                    outcomes[key] = earlier
                    continue
            except (ValueError, TypeError):
                pass
        todo.append((key, it))
    return outcomes, todo


def _grade_all(pool: Pool, todo: list, sources: dict, finish, quiet: bool) -> None:
    """Grade each (key, item) of ``todo`` on the pool's workers, ``finish(key, outcome)`` as each notebook ends. One
    submission never stops the batch: a grader fault is not the student's (GRADER_ERROR, regraded by the next run)."""
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="grading", unit="nb", disable=quiet, file=sys.stderr)
    with cf.ThreadPoolExecutor(max_workers=max(1, pool.settings.options.workers)) as threads:
        futures = {threads.submit(run_item, it, sources[(it.assignment, it.notebook)], pool): (key, it)
                   for key, it in todo}
        for fut in cf.as_completed(futures):
            key, it = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # noqa: BLE001 - one submission never stops the batch; a grader fault
                src = sources[(it.assignment, it.notebook)]  # is not the student's: regraded by the next run
                outcome = Outcome(it.student, it.assignment, it.notebook, {n: 0.0 for n in src.exercises},
                                  {n: e.points for n, e in src.exercises.items()}, sorted(it.tags | {GRADER_ERROR}),
                                  it.notes + [GRADER_ERROR_NOTE],
                                  grader_notes=["grader error: " + "".join(traceback.format_exception(exc))[-1500:]])
            finish(key, outcome)
            bar.update(1)
    bar.close()


def _summary(rows: list[dict], skipped: list, out: Path, db_url: str, wall: float, options: GradingOptions) -> None:
    """What the run did, on stdout: a line per notebook, the inputs not graded, the notebooks to grade again."""
    students = sorted({r["student"] for r in rows})
    print(f"\ngraded {len(rows)} notebooks of {len(students)} students in {wall:.1f} s "
          f"({options.workers} workers{', WITHOUT the sandbox' if options.no_sandbox else ''}); grades: "
          f"{out / 'grades.csv'}; feedback: {out / 'feedback'}; gradebook: {db_url}")
    for r in rows:
        print(f"  {r['student']:<20} {r['assignment']:<22} {r['total']:>6} / {r['max']:<6} {r['status']}")
    for name, why in skipped:
        print(f"  {name}: {why}")
    if skipped:
        print(f"{len(skipped)} inputs not graded: {out / 'not_graded.csv'}")
    faults = [r for r in rows if GRADER_ERROR in r["status"].split("+")]
    if faults:
        print(f"{len(faults)} notebooks not graded because the grader failed ({GRADER_ERROR}; why: the "
              f"grader_notes column of grades.csv): run the same command again to grade them")


def check_private(paths: list) -> None:
    """``--no-sandbox`` as root runs the student's code as another user: whatever else the grader reads or writes
    (the course with its answer key and solutions, the submissions, the workspaces under the output folder, the
    gradebooks) must be out of that user's reach. Exit saying which and how to fix it where one is not."""
    if os.geteuid() != 0:
        return
    for what, path in paths:
        if path is not None and sandbox.open_to_others(Path(path)):
            raise GradingError(f"cannot grade with --no-sandbox: {what}, {path}, can be read by other users, so the "
                             f"student's code could read it; make it private (chmod -R go-rwx {path}) or grade "
                             "in the sandbox")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/course.sh grade", description=__doc__.split("\n\n")[0])
    p.add_argument("submissions", type=Path, help="folder or .zip of submissions")
    p.add_argument("--out", type=Path, default=Path("grading-output"), help="where grades.csv and feedback/ go")
    p.add_argument("--db", default=None, help="gradebook URL (default: sqlite:///<nbgrader-dir>/gradebook.db)")
    p.add_argument("--workers", type=int, default=limits.WORKERS,
                   help="notebooks graded at once (default: twice the cores, at most 8: much of a notebook's "
                        "time is spent waiting for processes to start)")
    p.add_argument("--course-root", type=Path, default=REPO, help="the course (its solutions/ and notebooks/)")
    p.add_argument("--nbgrader-dir", type=Path, default=None,
                   help="nbgrader course folder for autograded/ and the default gradebook (default: the course root)")
    p.add_argument("--timeout", type=float, default=limits.NOTEBOOK_SECONDS, help="wall-clock seconds per notebook run")
    p.add_argument("--cell-timeout", type=int, default=None,
                   help="seconds per test cell (default: Execute.timeout in autograder/nbgrader_config.py)")
    p.add_argument("--call-timeout", type=float, default=limits.CALL_SECONDS,
                   help="seconds per call of a student's function")
    p.add_argument("--memory-gb", type=float, default=limits.MEMORY_GB, help="address-space limit of the student's process")
    p.add_argument("--cpu-seconds", type=int, default=limits.CPU_SECONDS, help="CPU-time limit of the student's process")
    p.add_argument("--kernel-memory-gb", type=float, default=limits.KERNEL_MEMORY_GB,
                   help="memory limit of the grader's own kernel, where the machine allows a control group "
                        "(past it the notebook is regraded, never scored against the student)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run student code without the OS sandbox (every report says so)")
    p.add_argument("--fresh", action="store_true", help="grade everything again (ignore results of earlier runs)")
    p.add_argument("--keep", action="store_true", help="keep the per-submission workspaces (debugging)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-cache", action="store_true",
                   help="run every submission even when its code equals another's (benchmarks)")
    a = p.parse_args(argv)
    if a.no_sandbox:  # nothing this command writes is readable by the student's user
        os.umask(0o077)
    try:
        options = GradingOptions(workers=a.workers, timeout=a.timeout, cell_timeout=a.cell_timeout,
                                 call_seconds=a.call_timeout, memory_gb=a.memory_gb,
                                 kernel_memory_gb=a.kernel_memory_gb, cpu_seconds=a.cpu_seconds, keep=a.keep,
                                 cache=not a.no_cache, no_sandbox=a.no_sandbox)
        grade(submissions=a.submissions, out=a.out, course_root=a.course_root, db_url=a.db,
              nbgrader_dir=a.nbgrader_dir, options=options, fresh=a.fresh, quiet=a.quiet)
    except GradingError as exc:
        raise SystemExit(str(exc)) from None   # the message on stderr, exit status 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
