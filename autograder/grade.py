"""Grade a class: ``python -m autograder.grade SUBMISSIONS [--out DIR] [--db URL] [--workers N] ...``.

See autograder/README.md. SUBMISSIONS is a folder or a .zip, in nbgrader's layout
(``[submitted/]<student>/<assignment>/<notebook>.ipynb``), as one folder per student, or as an LMS
export (flat, ``<name>_<LMS id>_...``: the student is the LMS id, shown by the name; the assignment is
recognised from the file name, or from the cells when the file was renamed). Layouts may be mixed. No
two students are merged (assign_ids); each input is graded or listed in ``not_graded.csv``.

Trust: this process, the worker processes and their kernels are the grader; the student's code runs
only in a sandboxed process of its own (autograder/sandbox.py, autograder/remote.py). Results are
recorded as each notebook finishes, so a batch that is killed and run again grades only what is
missing.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import functools
import hashlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlcourse import layout

from . import notebooks as nbs
from . import limits, sandbox
from .errors import GradingError

REPO = Path(__file__).resolve().parent.parent
GRADER_VERSION = "4"  # part of every result's key: results of another grader version are not reused
STATUS_ORDER = ["ok", "not_attempted", "missing", "empty", "invalid_json", "too_large", "corrupt", "renamed",
                "outdated", "duplicate_ids", "tests_edited", "timeout", "memory", "crashed", "load_error",
                "tampering", "unsandboxed", "error", "grader_error"]
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
IGNORED_FILES = {".ds_store", "thumbs.db", "desktop.ini"}


# ----------------------------------------------------------------------------- nbgrader set-up
def _nbgrader_course(course_root: Path, work: Path) -> Path:
    """A throwaway nbgrader course with the source notebooks (never touches the repository)."""
    shutil.copytree(course_root / layout.SOURCE_DIR, work / "source",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return work


def generate(course_root: Path, work: Path, db_url: str) -> Path:
    """nbgrader generate_assignment for every assignment: fills the gradebook at ``db_url``."""
    from nbgrader.apps import NbGraderAPI

    from .worker import nbgrader_config

    root = work if (work / "source").exists() else _nbgrader_course(course_root, work)
    api = NbGraderAPI(config=nbgrader_config(root, db_url))
    for assignment in layout.assignment_ids(course_root):
        res = api.generate_assignment(assignment)
        if not res.get("success"):
            raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{res.get('error')}")
    return root


@functools.cache
def course_id() -> str:
    """The gradebook's course id (``CourseDirectory.course_id`` in autograder/nbgrader_config.py)."""
    return layout.load_nbgrader_config().CourseDirectory.course_id


def cell_timeout_default() -> int:
    """Seconds per test cell unless ``--cell-timeout`` says otherwise (``Execute.timeout`` in the config)."""
    return int(layout.load_nbgrader_config().Execute.timeout)


def gradebook_matches(db_url: str, course) -> bool:
    """Whether the gradebook at ``db_url`` already has every notebook and grade cell of the course."""
    from nbgrader.api import Gradebook, MissingEntry

    try:
        with Gradebook(db_url, course_id()) as gb:
            for a, sources in course.items():
                for src in sources:
                    nb = gb.find_notebook(src.name, a)
                    have = {c.name: float(c.max_score) for c in nb.grade_cells}
                    want = {nbs.nbmeta(c)["grade_id"]: float(nbs.nbmeta(c).get("points", 0))
                            for c in src.nb.cells if nbs.nbmeta(c).get("grade")}
                    if have != want:
                        return False
    except MissingEntry:
        return False
    return True


def prepare_gradebooks(course_root: Path, course, db_url: str, state: Path, tmp: Path) -> Path:
    """The template gradebook (cached per course version) and the instructor's, made or checked."""
    fingerprint = hashlib.sha256(b"".join(s.path.read_bytes() for srcs in course.values() for s in srcs)).hexdigest()
    template = state / f"template-{fingerprint[:16]}" / "gradebook.db"
    if not template.exists():
        for old in state.glob("template-*"):
            shutil.rmtree(old, ignore_errors=True)
        work = tmp / "template"
        work.mkdir(parents=True, exist_ok=True)
        generate(course_root, work, f"sqlite:///{work / 'gradebook.db'}")
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "gradebook.db", template)
    db_file = Path(db_url[len("sqlite:///"):]) if db_url.startswith("sqlite:///") else None
    if db_file is not None and not db_file.exists():
        shutil.copy(template, db_file)
    elif not gradebook_matches(db_url, course):
        work = tmp / "instructor"
        work.mkdir(parents=True, exist_ok=True)
        generate(course_root, work, db_url)
    return template


# ----------------------------------------------------------------------------- collecting submissions
@dataclass
class Item:
    student: str
    assignment: str
    notebook: str
    data: bytes | None = None
    tags: set = field(default_factory=set)
    notes: list = field(default_factory=list)


def student_id(raw: str) -> str:
    """A student id that is safe as a folder name and keeps the name readable (``Ana María`` -> ``Ana_María``)."""
    return _safe_name(raw) or "unknown"


def _safe_name(raw: str) -> str:
    text = unicodedata.normalize("NFC", raw).strip()
    text = re.sub(r"[^\w.@-]+", "_", text).strip("._")
    return text[:100]


def _shown(name: str) -> str:
    """A file name as notes show it (bytes that are not UTF-8 as U+FFFD, so every report can be written)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _lms_name(filename: str) -> tuple[str, str | None]:
    """(display name, LMS id) of a file of a flat LMS export: ``Ana María_1001_demo.ipynb`` -> ``("Ana María",
    "1001")``. The id is the all-digit field after the name (Canvas may put ``LATE`` between); None without one."""
    parts = Path(filename).stem.split("_")
    after = parts[2:3] if len(parts) > 2 and parts[1].upper() == "LATE" else parts[1:2]
    lms = after[0] if after and re.fullmatch(r"[0-9]+", after[0]) else None
    return parts[0], lms


def _lms_student(filename: str) -> tuple:
    """The identity of a flat file's student: its LMS id where the name has one, else its display name."""
    name, lms = _lms_name(filename)
    return ("lms", lms) if lms else ("file", unicodedata.normalize("NFC", name).strip())


JUNK = IGNORED_FILES | {"__macosx", ".ipynb_checkpoints", ".git", ".svn", ".hg", ".trashes", ".fseventsd",
                        ".spotlight-v100"}


def _junk(name: str) -> bool:
    """A file or folder an operating system, Jupyter or version control made: never a student's."""
    return name.lower() in JUNK or name.startswith("._")


def _ignored(path: Path) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" or part.lower() in IGNORED_FILES for part in path.parts)


def _extract_zip(zip_path: Path, dest: Path) -> tuple[Path, list[tuple[str, str]], list[tuple[str, str]]]:
    """Unpack what can be read; returns the folder, (entry name, problem) for each entry that could not be
    read, and (entry name, why) for each entry that is not unpacked at all."""
    problems, skipped = [], []
    dest.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise GradingError(f"{zip_path}: not a readable zip file ({exc})") from None
    with zf:
        for info in zf.infolist():
            name = info.filename
            parts = Path(name).parts
            if info.is_dir():
                continue
            if name.startswith("/") or ".." in parts or not parts:
                skipped.append((_shown(name), "not graded, because its path leads out of the zip's folder"))
                continue
            if info.file_size > nbs.MAX_NOTEBOOK_BYTES * 2:
                problems.append((name, f"{_shown(name)}: {info.file_size / 1e6:.0f} MB, too large to unpack"))
                continue
            try:
                data = zf.read(info)
            except Exception as exc:  # noqa: BLE001 - a corrupt entry is that student's problem only
                problems.append((name, f"{_shown(name)}: corrupt in the zip ({type(exc).__name__})"))
                continue
            target = dest / Path(*parts)
            try:
                if target.exists():
                    skipped.append((_shown(name), "not graded, because the zip holds it twice (the last copy was graded)"))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            except OSError as exc:  # a file where the zip also has a folder of that name
                skipped.append((_shown(name), f"not graded, because it cannot be unpacked ({exc.strerror})"))
    return dest, problems, skipped


def _identify(data: bytes, course) -> tuple[str, str] | None:
    """(assignment, notebook) whose grade ids / defs best match a notebook's cells."""
    try:
        student = json.loads(data.decode("utf-8", errors="replace"))
        cells = [c for c in student.get("cells", []) if isinstance(c, dict)]
    except Exception:  # noqa: BLE001
        return None
    ids = {g for g in (nbs.nbmeta(c).get("grade_id") for c in cells) if isinstance(g, str)}
    defs = set().union(*[nbs.defined_functions(nbs.source_text(c)) for c in cells]) if cells else set()
    best, score = None, 0
    for a, sources in course.items():
        for src in sources:
            s = len((ids | defs) & set(src.exercises)) + len(ids & set(src.test_owner))
            if s > score:
                best, score = (a, src.name), s
    return best


def _describe(who: tuple, raw: str) -> str:
    kind, value = who
    if kind == "folder":
        return f"the folder `{_shown(value)}`"
    if kind == "lms":
        return f"`{_shown(raw)}` (LMS id {value})" if raw.strip() else f"LMS id {value}"
    return f"the files of `{_shown(raw)}`"


def assign_ids(students: dict[tuple, str]) -> dict[tuple, tuple[str, str | None]]:
    """Each student (``("folder", name)``, ``("lms", id)`` or ``("file", name)`` -> the name shown) gets a
    distinct id: the safe form of its name where no other student's name has the same one (the ordinary case,
    so ids stay stable), else that form with the LMS id or a short hash of the original name after it, and a
    note saying why. A folder whose name is already safe keeps it. A name with nothing usable in it gets
    the LMS id or ``unnamed``, with a note."""
    base, empty = {}, set()
    for who, raw in students.items():
        base[who] = _safe_name(raw) or (who[1] if who[0] == "lms" else "") or "unnamed"
        if not _safe_name(raw):
            empty.add(who)
    groups: dict[str, list[tuple]] = {}
    for who in sorted(students):
        groups.setdefault(base[who], []).append(who)
    ids = {}
    for b, whos in groups.items():
        for who in whos:
            if len(whos) == 1 or who[0] == "folder" and who[1] == b:
                ids[who] = b
    taken = set(ids.values())
    out = {}
    for b, whos in sorted(groups.items()):
        for who in whos:
            if who not in ids:
                digest = hashlib.sha256(repr(who).encode("utf-8", "surrogateescape")).hexdigest()
                candidates = [f"{b}_{who[1]}" if who[0] == "lms" else f"{b}_{digest[:8]}", f"{b}_{digest[:16]}",
                              *(f"{b}_{digest[:16]}_{i}" for i in range(2, len(students) + 2))]
                ids[who] = next(c for c in candidates if c not in taken)
                taken.add(ids[who])
            why = []
            if who in empty:
                why.append(f"{_describe(who, students[who])} has no name usable as an id")
            if ids[who] != b:
                named = [_describe(w, students[w]) for w in whos]
                why.append(f"{', '.join(named[:-1])} and {named[-1]} would {'both' if len(named) == 2 else 'all'} "
                           f"be `{b}`")
            out[who] = (ids[who], f"graded as `{ids[who]}`: " + "; ".join(why) if why else None)
    return out


def collect(path: Path, course, tmp: Path) -> tuple[list[Item], list[tuple[str, str]]]:
    """Every (student, assignment, notebook) of the batch, with the submitted bytes or why there are none;
    and each input that is no student's, with why it is not graded (``(path, "not graded, because ...")``).

    A student is a folder (by its name) or the files of a flat LMS export (by the LMS id in their names,
    else by the name): two students are never merged, whatever their names have in common (assign_ids)."""
    problems: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    prefix = ""
    if path.is_file():
        path, problems, skipped = _extract_zip(path, tmp / "unzipped")
    if (path / "submitted").is_dir():
        path, prefix = path / "submitted", "submitted/"
    names = {a: {s.name for s in srcs} for a, srcs in course.items()}
    found: dict[tuple, Item] = {}
    graded_from: dict[tuple, str] = {}
    students: dict[tuple, str] = {}  # who -> the name shown
    seen_assignments: set[str] = set()
    unknown: dict[tuple, list[str]] = {}  # why a student's notebooks are missing
    extra: dict[tuple, list[str]] = {}  # what else of theirs was not graded (on their first row)

    def add(student, assignment, notebook, data, source, tags=(), notes=()):
        key = (student, assignment, notebook)
        seen_assignments.add(assignment)
        if key in found:
            found[key].notes.append(f"several files for this notebook: {graded_from[key]} was graded, not "
                                    f"{_shown(source)}")
            return
        found[key] = Item(student, assignment, notebook, data, set(tags), list(notes))
        graded_from[key] = _shown(source)

    def add_file(student: tuple, f: Path, shown: str) -> None:
        students.setdefault(student, shown)
        try:
            data = f.read_bytes()
        except OSError as exc:
            unknown.setdefault(student, []).append(f"{_shown(f.name)}: unreadable ({exc.strerror})")
            return
        hit = None
        for a, nb_names in sorted(names.items()):
            for nb_name in sorted(nb_names):
                if nb_name in f.stem or (len(nb_names) == 1 and a in f.stem):
                    hit = (a, nb_name)
        if hit and f.stem.endswith(hit[1]):
            add(student, hit[0], hit[1], data, f.name)
        elif hit:
            add(student, hit[0], hit[1], data, f.name, {"renamed"}, [f"graded {_shown(f.name)}"])
        else:
            guess = _identify(data, course)
            if guess:
                add(student, guess[0], guess[1], data, f.name, {"renamed"},
                    [f"graded {_shown(f.name)} (recognised by its cells)"])
            else:
                unknown.setdefault(student, []).append(f"{_shown(f.name)}: not a notebook of this course")

    def notebook_files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file() and not _ignored(p.relative_to(folder))
                      and p.suffix.lower() in (".ipynb", ".json", ".txt", ""))

    for entry in sorted(path.iterdir()):
        if _junk(entry.name):
            skipped.append((prefix + _shown(entry.name), "not graded, because it is a system file, no student's"))
            continue
        if entry.is_file():  # a flat LMS export (possibly next to nbgrader folders)
            if entry.suffix.lower() in (".ipynb", ".json", ".txt", ""):
                add_file(_lms_student(entry.name), entry, _lms_name(entry.name)[0])
            else:
                skipped.append((prefix + _shown(entry.name),
                                f"not graded, because it is not a notebook ({_shown(entry.suffix)})"))
            continue
        if not entry.is_dir():
            skipped.append((prefix + _shown(entry.name), "not graded, because it is neither a file nor a folder"))
            continue
        student = ("folder", entry.name)
        students[student] = entry.name
        assignment_dirs = [d for d in sorted(entry.iterdir()) if d.is_dir() and d.name in course]
        if assignment_dirs:  # nbgrader: <student>/<assignment>/<notebook>.ipynb
            for other in sorted(entry.iterdir()):
                if other not in assignment_dirs and not _ignored(Path(other.name)) and (
                        other.suffix == ".ipynb" or other.is_dir() and any(other.rglob("*.ipynb"))):
                    extra.setdefault(student, []).append(
                        f"{_shown(other.name)}{'/' if other.is_dir() else ''}: not graded (not an assignment of "
                        f"this course: {', '.join(sorted(course))})")
            for adir in assignment_dirs:
                seen_assignments.add(adir.name)
                ipynbs = [p for p in sorted(adir.glob("*.ipynb")) if not _ignored(Path(p.name))]
                for nbpath in ipynbs:
                    if nbpath.stem in names[adir.name]:
                        add(student, adir.name, nbpath.stem, nbpath.read_bytes(), f"{adir.name}/{nbpath.name}")
                unmatched = [p for p in ipynbs if p.stem not in names[adir.name]]
                for nb_name in sorted(names[adir.name]):
                    if (student, adir.name, nb_name) in found or not unmatched:
                        continue
                    if len(names[adir.name]) == 1:
                        cand = unmatched.pop(0)
                        add(student, adir.name, nb_name, cand.read_bytes(), f"{adir.name}/{cand.name}", {"renamed"},
                            [f"graded {_shown(cand.name)} (renamed)"])
                for p in unmatched:
                    extra.setdefault(student, []).append(
                        f"{adir.name}/{_shown(p.name)}: not graded (not a notebook of this assignment, or another "
                        f"file was graded for it)")
        else:  # one folder per student, notebooks inside
            for f in notebook_files(entry):
                add_file(student, f, entry.name)
    for name, note in problems:
        parts = Path(name[len(prefix):] if prefix and name.startswith(prefix) else name).parts
        if _junk(parts[0]):
            skipped.append((_shown(name), "not graded, because it is a system file, no student's"))
            continue
        student = ("folder", parts[0]) if len(parts) > 1 else _lms_student(parts[0])
        students.setdefault(student, parts[0] if len(parts) > 1 else _lms_name(parts[0])[0])
        unknown.setdefault(student, []).append(note)
    items = list(found.values())
    explained = set()  # students whose missing rows say what of theirs could not be read
    for student in sorted(students):
        for a in sorted(seen_assignments or names):
            for nb_name in sorted(names[a]):
                if (student, a, nb_name) not in found:
                    notes = unknown.get(student, [])
                    tag = ("corrupt" if any("corrupt" in n or "too large" in n for n in notes) else "invalid_json") \
                        if notes else "missing"
                    items.append(Item(student, a, nb_name, None, {tag}, list(notes) or ["no notebook submitted"]))
                    explained.add(student)
    ids = assign_ids(students)
    items.sort(key=lambda it: (ids[it.student][0], it.assignment, it.notebook))
    first = set()
    for it in items:
        who = it.student
        it.student, note = ids[who]
        if who not in first:  # what else of theirs was not graded: on their first row
            first.add(who)
            it.notes += extra.get(who, []) + ([] if who in explained else unknown.get(who, []))
        if note:
            it.notes.insert(0, note)
    return items, skipped


# ----------------------------------------------------------------------------- one submission
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


def run_item(item: Item, src: nbs.SourceNotebook, opts) -> Outcome:
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
    stubs = opts.stubs.get((src.assignment, src.name), {})
    untouched = stubs and all(nbs.norm(ex.answers.get(n, "")) == stubs.get(n) for n in src.exercises) \
        and not any(c["exercise"] is None for c in ex.cells)
    if untouched:
        tags.add("not_attempted")
        notes.append("no exercise was changed from the release")
        outcome.tags, outcome.notes, outcome.seconds = sorted(tags), notes, time.time() - start
        return outcome
    key = hashlib.sha256(json.dumps([item.assignment, item.notebook, ex.cells]).encode()).hexdigest()
    with _CACHE_LOCK:
        lock = _CACHE_LOCKS.setdefault(key, threading.Lock())
    with lock:  # identical code runs once per batch: the executed notebook would be the same
        if key in _CACHE and opts.cache:
            result = _CACHE[key]
        else:
            result = execute(item, src, ex, opts)
            if GRADER_ERROR not in result[1]:  # a grader fault is tried again for the next copy
                _CACHE[key] = result
        points, run_tags, run_notes, feedback, autograded, peak, grader_notes = result
    outcome.points, outcome.tags = dict(points), sorted(tags | run_tags)
    outcome.notes, outcome.grader_notes = notes + run_notes, list(grader_notes)
    outcome.feedback, outcome.autograded, outcome.peak_mb = feedback, autograded, peak
    outcome.seconds = time.time() - start
    return outcome


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()
_CACHE_LOCKS: dict = {}


def _limit_worker():
    os.setsid()  # its own group, so a time-out kills the worker with its kernel
    sandbox.die_with_parent()


class Worker:
    """One ``python -m autograder.worker --serve`` process, reused for notebook after notebook. Its stderr goes
    to ``tmp/worker-<slot>.log``; a job that leaves no result is reported with what the worker wrote there
    during that job and how it ended (``failure``)."""

    command = ("-m", "autograder.worker", "--serve")  # after the interpreter

    def __init__(self, opts, slot: int):
        self.opts, self.proc = opts, None
        self.uid = opts.uid_base + slot  # the user its students' code runs as: one per parallel worker
        self.log_path = Path(opts.tmp) / f"worker-{slot}.log"
        self.job_start = 0  # where the current job's part of the log begins
        self.returncode = None  # how the process ended, once it has in the current job

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # each worker's share of the cores
            env.setdefault(var, str(self.opts.threads))
        with open(self.log_path, "ab") as log:  # the worker has its own copy: nothing stays open here
            self.proc = subprocess.Popen([sys.executable, *self.command], cwd="/", env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         preexec_fn=_limit_worker)

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.returncode = self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
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


_WORKERS = threading.local()
_ALL_WORKERS: list = []


def _worker(opts) -> Worker:
    w = getattr(_WORKERS, "worker", None)
    if w is None or w.opts is not opts:
        with _CACHE_LOCK:
            w = _WORKERS.worker = Worker(opts, len(_ALL_WORKERS))
            _ALL_WORKERS.append(w)
    return w


class GraderFault(Exception):
    """The grader, not the student, kept this notebook from being graded (the message is for the instructor)."""


def execute(item: Item, src: nbs.SourceNotebook, ex: nbs.Extracted, opts):
    """Run the built notebook in a worker process: (points, tags, notes, feedback html, autograded json, peak
    memory, grader notes). A grader fault is tried again with a fresh worker and kernel (GRADER_ATTEMPTS in all);
    if it persists the notebook is tagged GRADER_ERROR with zero points that are not the student's (the gradebook
    and grades.csv leave them open) and a plain note; what went wrong is in the grader notes only."""
    zero = {n: 0.0 for n in src.exercises}
    nb, hidden, roles = nbs.build(src, ex.answers)
    grader_notes = []
    for attempt in range(1, GRADER_ATTEMPTS + 1):
        try:
            points, tags, notes, feedback, autograded, peak = _run_once(item, src, ex, opts, nb, hidden, roles)
            break
        except (GraderFault, OSError) as exc:
            detail = str(exc) if isinstance(exc, GraderFault) else f"{type(exc).__name__}: {exc}"
            grader_notes.append(f"attempt {attempt} of {GRADER_ATTEMPTS}: {detail.strip()}")
            _worker(opts).stop()  # the next attempt gets a fresh worker, and with it a fresh kernel and ports
            sandbox.Cgroup.remove_stale()  # a kernel killed at its memory bound left its group
    else:
        points, tags, notes, feedback, autograded, peak = dict(zero), {GRADER_ERROR}, [GRADER_ERROR_NOTE], None, None, None
    if opts.no_sandbox:
        tags.add("unsandboxed")
        notes.insert(0, "graded with --no-sandbox: the student's code ran without isolation")
    return points, tags, notes, feedback, autograded, peak, grader_notes


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


def _run_once(item: Item, src: nbs.SourceNotebook, ex: nbs.Extracted, opts, nb, hidden, roles):
    """One attempt: (points, tags, notes, feedback html, autograded json, peak memory); GraderFault where the
    grader failed. Only what the student's process did (time-outs, crashes, memory, protocol breaks) lowers
    the score."""
    import nbformat

    zero = {n: 0.0 for n in src.exercises}
    tags, notes = set(), []
    load_seconds = max(10.0, opts.cell_timeout * 0.75)
    worker = _worker(opts)
    ws = Path(opts.tmp) / f"ws-{hashlib.sha256(f'{item.student}/{item.assignment}/{item.notebook}'.encode()).hexdigest()[:16]}"
    shutil.rmtree(ws, ignore_errors=True)
    try:
        sub = ws / "submitted" / "student" / item.assignment
        sub.mkdir(parents=True)
        (ws / "source" / item.assignment).mkdir(parents=True)
        nbformat.write(nb, str(sub / f"{item.notebook}.ipynb"))
        shutil.copy(opts.template_db, ws / "gradebook.db")
        (ws / "job.json").write_text(json.dumps({"assignment": item.assignment, "student": "student",
                                                 "notebook": item.notebook, "roles": roles,
                                                 "cell_timeout": opts.cell_timeout}))
        (ws / "student.json").write_text(json.dumps({
            "sandbox_root": str(opts.sandbox_root), "no_sandbox": opts.no_sandbox, "log": str(ws / "student.log"),
            "cwd": str(ws), "prelude": nbs.prelude(src), "cells": ex.cells, "names": sorted(src.exercises),
            "hidden": hidden, "threads": opts.threads, "memory_gb": opts.memory_gb,
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
            return zero, tags, notes, None, None, None
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
        return (points, tags, _dedupe(notes), fb.read_text(errors="replace") if fb else None,
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


# ----------------------------------------------------------------------------- recording
def status_of(tags) -> str:
    tags = set(tags) - {"ok"}
    if not tags:
        return "ok"
    return "+".join([t for t in STATUS_ORDER if t in tags] + sorted(tags - set(STATUS_ORDER)))


def record(db_url: str, course_id: str, outcome: Outcome, src: nbs.SourceNotebook) -> None:
    """Write one outcome into the instructor's gradebook (only the grading process does this)."""
    import warnings

    from nbgrader.api import Gradebook

    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", category=Warning, message=".*not in session.*")
    failed = GRADER_ERROR in outcome.tags  # not graded: no score, and formgrader lists it as needing a grade
    with Gradebook(db_url, course_id) as gb:
        gb.update_or_create_student(outcome.student)
        gb.update_or_create_submission(outcome.assignment, outcome.student)
        nbsub = gb.find_submission_notebook(outcome.notebook, outcome.assignment, outcome.student)
        remaining = dict(outcome.points)
        for grade in nbsub.grades:
            owner = src.test_owner.get(grade.name)
            if owner is None:
                continue
            if failed:
                grade.auto_score, grade.needs_manual_grade = None, True
                continue
            give = min(remaining.get(owner, 0.0), float(grade.max_score or 0))
            remaining[owner] = remaining.get(owner, 0.0) - give
            grade.auto_score = give
            grade.needs_manual_grade = False
        gb.db.commit()


def feedback_page(outcome: Outcome, status: str) -> str:
    """The student's page: points, status and notes (never grader_notes), above nbgrader's feedback."""
    failed = GRADER_ERROR in outcome.tags
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{'-' if failed else f'{outcome.points[n]:g}'} / "
                   f"{outcome.max_points[n]:g}</td></tr>" for n in outcome.points)
    total, mx = sum(outcome.points.values()), sum(outcome.max_points.values())
    score = f"not graded yet (of {mx:g})" if failed else f"{total:g} / {mx:g}"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in outcome.notes)
    banner = (f'<div style="border:2px solid #888;padding:8px;margin:8px;font-family:sans-serif">'
              f"<h2>{html.escape(outcome.assignment)} / {html.escape(outcome.notebook)}: {score}</h2>"
              f"<p>Student: {html.escape(outcome.student)}. Status: <b>{html.escape(status)}</b></p>"
              f"<table>{rows}</table><ul>{notes}</ul></div>")
    if outcome.feedback:
        return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, outcome.feedback, count=1)
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{banner}<p>This notebook was not run.</p></body></html>"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def _result_key(item: Item, src_digest: str, opts) -> str:
    h = hashlib.sha256()
    for part in (GRADER_VERSION, item.student, item.assignment, item.notebook, src_digest,
                 json.dumps(sorted(item.tags)), json.dumps(item.notes), str(opts.no_sandbox)):
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
def grade(submissions: Path, out: Path, course_root: Path = REPO, db_url: str | None = None,
          workers: int = limits.WORKERS, timeout: float = limits.NOTEBOOK_SECONDS, cell_timeout: int | None = None,
          memory_gb: float = limits.MEMORY_GB, keep: bool = False,
          quiet: bool = False, cache: bool = True, no_sandbox: bool = False, nbgrader_dir: Path | None = None,
          call_seconds: float = limits.CALL_SECONDS, cpu_seconds: int = limits.CPU_SECONDS,
          fresh: bool = False, kernel_memory_gb: float = limits.KERNEL_MEMORY_GB) -> list[dict]:
    from tqdm import tqdm

    submissions, out, course_root = Path(submissions).resolve(), Path(out).resolve(), Path(course_root).resolve()
    layout.interpreter_on_path()  # nbgrader's Gradebook runs `alembic` when it creates a database
    if not submissions.exists():
        raise GradingError(f"{submissions}: no such file or folder")
    if workers > UID_BLOCK:
        raise GradingError(f"at most {UID_BLOCK} workers (each runs its students as a uid of its own), not {workers}")
    if not no_sandbox:
        try:
            sandbox.check_available()
        except RuntimeError as exc:
            raise GradingError(f"cannot grade: {exc}") from None
    elif sandbox.unprivileged_problem():  # as root the student's code never runs as root
        raise GradingError(f"cannot grade with --no-sandbox: {sandbox.unprivileged_problem()}")
    course = nbs.load_course(course_root)
    if not course:
        raise GradingError(f"no source notebooks under {course_root / 'solutions'}")
    sources = {(a, s.name): s for a, srcs in course.items() for s in srcs}
    digests = {k: hashlib.sha256(s.path.read_bytes()).hexdigest() for k, s in sources.items()}
    nbgrader_dir = Path(nbgrader_dir).resolve() if nbgrader_dir else course_root
    db_url = db_url or f"sqlite:///{nbgrader_dir / 'gradebook.db'}"
    mode = 0o700 if no_sandbox else 0o777  # without the sandbox, a folder the grader makes is its own
    db_dir = Path(db_url[len("sqlite:///"):]).parent if db_url.startswith("sqlite:///") else None
    for folder in (db_dir, out, nbgrader_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True, mode=mode)
    if no_sandbox:
        check_private([("the course", course_root), ("the submissions", submissions), ("the output folder", out),
                       ("the nbgrader folder", nbgrader_dir), ("the gradebook's folder", db_dir),
                       *(("the grader's copy of the course package", p) for p in sandbox.must_not_see())])
    sandbox.Cgroup.remove_stale()  # what a killed run left: its groups, and any process still in them
    state = out / ".grading"
    results_dir = state / "results"
    if fresh:
        shutil.rmtree(results_dir, ignore_errors=True)
    tmp = state / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed run left behind
    tmp.mkdir(parents=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    opts = argparse.Namespace(timeout=timeout, cell_timeout=cell_timeout or cell_timeout_default(),
                              memory_gb=memory_gb, kernel_memory_gb=kernel_memory_gb, keep=keep, tmp=tmp, cache=cache, no_sandbox=no_sandbox,
                              call_seconds=call_seconds, cpu_seconds=cpu_seconds,
                              threads=max(1, (os.cpu_count() or 1) // max(1, workers)),
                              stubs={k: release_answers(course_root, s) for k, s in sources.items()})
    _CACHE.clear()
    _CACHE_LOCKS.clear()
    opts.uid_base, uid_lock = hold_uid_block()
    try:
        opts.template_db = prepare_gradebooks(course_root, course, db_url, state, tmp)
        try:
            area = opts.area = sandbox.student_area() if no_sandbox else tmp  # what the student's user may reach
        except RuntimeError as exc:
            raise GradingError(f"cannot grade with --no-sandbox: {exc}") from None
        opts.sandbox_root = sandbox.prepare_root(area / ("grader" if no_sandbox else "sandbox"))
        items, skipped = collect(submissions, course, tmp)
        _write_not_graded(out, skipped)
        guarded = {"solutions": TreeGuard(course_root / layout.SOURCE_DIR)}
        if submissions.is_dir():
            guarded["submissions"] = TreeGuard(submissions)
        t0 = time.time()
        outcomes: dict[str, Outcome] = {}
        todo = []
        for it in items:
            key = _result_key(it, digests[(it.assignment, it.notebook)], opts)
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
        bar = tqdm(total=len(todo), desc="grading", unit="nb", disable=quiet, file=sys.stderr)

        items_by_key = {_result_key(it, digests[(it.assignment, it.notebook)], opts): it for it in items}

        def finish(key: str, outcome: Outcome) -> None:
            src = sources[(outcome.assignment, outcome.notebook)]
            for what, guard in guarded.items():
                if guard.changed():
                    outcome.tags = sorted(set(outcome.tags) | {"error"})
                    outcome.notes.append(f"{what} changed while this notebook ran: check the grading machine")
            record(db_url, course_id(), outcome, src)
            _publish(outcome, out, nbgrader_dir, items_by_key[key].data)
            _write_atomic(results_dir / f"{key}.json", json.dumps(asdict(outcome)))
            outcomes[key] = outcome

        with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(run_item, it, sources[(it.assignment, it.notebook)], opts): (key, it)
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
        for w in _ALL_WORKERS:
            w.stop()
        _ALL_WORKERS.clear()
        for key, outcome in outcomes.items():  # results of an earlier, interrupted run: same records
            if not (results_dir / f"{key}.json").exists():
                continue
            record(db_url, course_id(), outcome, sources[(outcome.assignment, outcome.notebook)])
            _publish(outcome, out, nbgrader_dir, items_by_key[key].data)
        rows = _write_csv(out, sorted(outcomes.values(), key=lambda o: (o.student, o.assignment, o.notebook)), sources)
        if not quiet:
            wall = time.time() - t0
            students = sorted({r["student"] for r in rows})
            print(f"\ngraded {len(rows)} notebooks of {len(students)} students in {wall:.1f} s "
                  f"({workers} workers{', WITHOUT the sandbox' if no_sandbox else ''}); grades: {out / 'grades.csv'}; "
                  f"feedback: {out / 'feedback'}; gradebook: {db_url}")
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
        return rows
    finally:
        uid_lock.unlink(missing_ok=True)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        if getattr(opts, "area", tmp) != tmp:
            shutil.rmtree(opts.area, ignore_errors=True)


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


def _publish(outcome: Outcome, out: Path, nbgrader_dir: Path, submitted: bytes | None) -> None:
    """The student's feedback page, and the submitted and autograded notebooks where nbgrader's formgrader
    looks for them."""
    status = status_of(outcome.tags)
    if submitted is not None:
        path = nbgrader_dir / "submitted" / outcome.student / outcome.assignment / f"{outcome.notebook}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(submitted)
    _write_atomic(out / "feedback" / outcome.student / outcome.assignment / f"{outcome.notebook}.html",
                  feedback_page(outcome, status))
    if outcome.autograded:
        _write_atomic(nbgrader_dir / "autograded" / outcome.student / outcome.assignment / f"{outcome.notebook}.ipynb",
                      outcome.autograded)


def _write_csv(out: Path, outcomes: list[Outcome], sources) -> list[dict]:
    exercise_cols = [n for (a, _), s in sorted(sources.items()) for n in s.exercises]
    rows = []
    for o in outcomes:
        src = sources[(o.assignment, o.notebook)]
        graded = GRADER_ERROR not in o.tags  # a grader fault leaves the points blank: not the student's zero
        row = {"student": o.student, "assignment": o.assignment, "notebook": o.notebook}
        row.update({n: (f"{o.points[n]:g}" if n in o.points and graded else "") for n in exercise_cols})
        row.update({"total": f"{sum(o.points.values()):g}" if graded else "", "max": f"{src.max_points:g}",
                    "status": status_of(o.tags), "notes": " | ".join(o.notes),
                    "grader_notes": " | ".join(o.grader_notes), "seconds": f"{o.seconds:.1f}"})
        rows.append(row)
    fields = ["student", "assignment", "notebook", *exercise_cols, "total", "max", "status", "notes", "grader_notes",
              "seconds"]
    _write_table(out / "grades.csv", [fields] + [[row[f] for f in fields] for row in rows])
    return rows


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula (``=``, ``+``, ``-``, ``@``,
    tab, carriage return: the usual CSV-injection defence) gets a ``'`` in front."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _write_table(path: Path, rows: list[list]) -> None:
    """Every CSV the grader writes: cells escaped for spreadsheets, written whole or not at all."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="", errors="replace") as fh:
        csv.writer(fh).writerows([[spreadsheet_cell(v) for v in row] for row in rows])
    os.replace(tmp, path)


def _write_not_graded(out: Path, skipped: list[tuple[str, str]]) -> None:
    """``not_graded.csv``: each input that is no student's (``input, reason``), so nothing is lost silently."""
    _write_table(out / "not_graded.csv", [["input", "reason"], *skipped])


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
        grade(a.submissions, a.out, a.course_root, a.db, a.workers, a.timeout, a.cell_timeout, a.memory_gb, a.keep,
              a.quiet, cache=not a.no_cache, no_sandbox=a.no_sandbox, nbgrader_dir=a.nbgrader_dir,
              call_seconds=a.call_timeout, cpu_seconds=a.cpu_seconds, fresh=a.fresh,
              kernel_memory_gb=a.kernel_memory_gb)
    except GradingError as exc:
        raise SystemExit(str(exc)) from None   # the message on stderr, exit status 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
