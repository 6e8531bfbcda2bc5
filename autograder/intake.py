"""Intake: every (student, assignment, notebook) of a batch of submissions, and each input that is no student's.

SUBMISSIONS is a folder or a .zip, in nbgrader's layout (``[submitted/]<student>/<assignment>/<notebook>.ipynb``),
as one folder per student, or as an LMS export (flat, ``<name>_<LMS id>_...``: the student is the LMS id, shown by
the name; the assignment is recognised from the file name, or from the cells when the file was renamed). Layouts
may be mixed. No two students are merged (``assign_ids``); each input becomes a row (``Item``) or a line of
``not_graded.csv`` with why. Nothing here runs a notebook.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import notebooks as nbs
from .errors import GradingError

IGNORED_FILES = {".ds_store", "thumbs.db", "desktop.ini"}


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


class _Batch:
    """What ``collect`` gathers as it walks the submissions: the notebooks found, the students, and per student
    what could not be read and what else was not graded."""

    def __init__(self, course):
        self.course = course
        self.names = {a: {s.name for s in srcs} for a, srcs in course.items()}
        self.found: dict[tuple, Item] = {}
        self.graded_from: dict[tuple, str] = {}
        self.students: dict[tuple, str] = {}  # who -> the name shown
        self.seen_assignments: set[str] = set()
        self.unknown: dict[tuple, list[str]] = {}  # why a student's notebooks are missing
        self.extra: dict[tuple, list[str]] = {}  # what else of theirs was not graded (on their first row)

    def add(self, student, assignment, notebook, data, source, tags=(), notes=()) -> None:
        key = (student, assignment, notebook)
        self.seen_assignments.add(assignment)
        if key in self.found:
            self.found[key].notes.append(f"several files for this notebook: {self.graded_from[key]} was graded, not "
                                         f"{_shown(source)}")
            return
        self.found[key] = Item(student, assignment, notebook, data, set(tags), list(notes))
        self.graded_from[key] = _shown(source)

    def add_file(self, student: tuple, f: Path, shown: str) -> None:
        """A file of a flat export or of a student's folder: the notebook its name (or else its cells) says."""
        self.students.setdefault(student, shown)
        try:
            data = f.read_bytes()
        except OSError as exc:
            self.unknown.setdefault(student, []).append(f"{_shown(f.name)}: unreadable ({exc.strerror})")
            return
        hit = None
        for a, nb_names in sorted(self.names.items()):
            for nb_name in sorted(nb_names):
                if nb_name in f.stem or (len(nb_names) == 1 and a in f.stem):
                    hit = (a, nb_name)
        if hit and f.stem.endswith(hit[1]):
            self.add(student, hit[0], hit[1], data, f.name)
        elif hit:
            self.add(student, hit[0], hit[1], data, f.name, {"renamed"}, [f"graded {_shown(f.name)}"])
        else:
            guess = _identify(data, self.course)
            if guess:
                self.add(student, guess[0], guess[1], data, f.name, {"renamed"},
                         [f"graded {_shown(f.name)} (recognised by its cells)"])
            else:
                self.unknown.setdefault(student, []).append(f"{_shown(f.name)}: not a notebook of this course")

    def add_nbgrader_folder(self, student: tuple, entry: Path, assignment_dirs: list[Path]) -> None:
        """``<student>/<assignment>/<notebook>.ipynb``."""
        for other in sorted(entry.iterdir()):
            if other not in assignment_dirs and not _ignored(Path(other.name)) and (
                    other.suffix == ".ipynb" or other.is_dir() and any(other.rglob("*.ipynb"))):
                self.extra.setdefault(student, []).append(
                    f"{_shown(other.name)}{'/' if other.is_dir() else ''}: not graded (not an assignment of "
                    f"this course: {', '.join(sorted(self.course))})")
        for adir in assignment_dirs:
            names = self.names[adir.name]
            self.seen_assignments.add(adir.name)
            ipynbs = [p for p in sorted(adir.glob("*.ipynb")) if not _ignored(Path(p.name))]
            for nbpath in ipynbs:
                if nbpath.stem in names:
                    self.add(student, adir.name, nbpath.stem, nbpath.read_bytes(), f"{adir.name}/{nbpath.name}")
            unmatched = [p for p in ipynbs if p.stem not in names]
            for nb_name in sorted(names):
                if (student, adir.name, nb_name) in self.found or not unmatched:
                    continue
                if len(names) == 1:
                    cand = unmatched.pop(0)
                    self.add(student, adir.name, nb_name, cand.read_bytes(), f"{adir.name}/{cand.name}", {"renamed"},
                             [f"graded {_shown(cand.name)} (renamed)"])
            for p in unmatched:
                self.extra.setdefault(student, []).append(
                    f"{adir.name}/{_shown(p.name)}: not graded (not a notebook of this assignment, or another "
                    f"file was graded for it)")

    def rows(self) -> list[Item]:
        """One row per student and notebook (a missing one says why), ordered by student id; what else of a
        student's was not graded goes on their first row."""
        items = list(self.found.values())
        explained = set()  # students whose missing rows say what of theirs could not be read
        for student in sorted(self.students):
            for a in sorted(self.seen_assignments or self.names):
                for nb_name in sorted(self.names[a]):
                    if (student, a, nb_name) not in self.found:
                        notes = self.unknown.get(student, [])
                        tag = ("corrupt" if any("corrupt" in n or "too large" in n for n in notes) else "invalid_json") \
                            if notes else "missing"
                        items.append(Item(student, a, nb_name, None, {tag}, list(notes) or ["no notebook submitted"]))
                        explained.add(student)
        ids = assign_ids(self.students)
        items.sort(key=lambda it: (ids[it.student][0], it.assignment, it.notebook))
        first = set()
        for it in items:
            who = it.student
            it.student, note = ids[who]
            if who not in first:
                first.add(who)
                it.notes += self.extra.get(who, []) + ([] if who in explained else self.unknown.get(who, []))
            if note:
                it.notes.insert(0, note)
        return items


def _notebook_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not _ignored(p.relative_to(folder))
                  and p.suffix.lower() in (".ipynb", ".json", ".txt", ""))


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
    batch = _Batch(course)
    for entry in sorted(path.iterdir()):
        if _junk(entry.name):
            skipped.append((prefix + _shown(entry.name), "not graded, because it is a system file, no student's"))
        elif entry.is_file():  # a flat LMS export (possibly next to nbgrader folders)
            if entry.suffix.lower() in (".ipynb", ".json", ".txt", ""):
                batch.add_file(_lms_student(entry.name), entry, _lms_name(entry.name)[0])
            else:
                skipped.append((prefix + _shown(entry.name),
                                f"not graded, because it is not a notebook ({_shown(entry.suffix)})"))
        elif not entry.is_dir():
            skipped.append((prefix + _shown(entry.name), "not graded, because it is neither a file nor a folder"))
        else:
            student = ("folder", entry.name)
            batch.students[student] = entry.name
            assignment_dirs = [d for d in sorted(entry.iterdir()) if d.is_dir() and d.name in course]
            if assignment_dirs:
                batch.add_nbgrader_folder(student, entry, assignment_dirs)
            else:  # one folder per student, notebooks inside
                for f in _notebook_files(entry):
                    batch.add_file(student, f, entry.name)
    for name, note in problems:  # what of the zip could not be read
        parts = Path(name[len(prefix):] if prefix and name.startswith(prefix) else name).parts
        if _junk(parts[0]):
            skipped.append((_shown(name), "not graded, because it is a system file, no student's"))
            continue
        student = ("folder", parts[0]) if len(parts) > 1 else _lms_student(parts[0])
        batch.students.setdefault(student, parts[0] if len(parts) > 1 else _lms_name(parts[0])[0])
        batch.unknown.setdefault(student, []).append(note)
    return batch.rows(), skipped

