"""Grade a class: ``python -m autograder.grade SUBMISSIONS [--out DIR] [--db URL] [--workers N] [--course-root DIR]``.

See autograder/README.md. SUBMISSIONS is a folder or a .zip, in nbgrader's layout
(``[submitted/]<student>/<assignment>/<notebook>.ipynb``) or an LMS export (flat, the student id is
the file name up to the first ``_``; the assignment is recognised from the file name, or from the
cells when the file was renamed).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import hashlib
import html
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import notebooks as nbs

REPO = Path(__file__).resolve().parent.parent
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
STATUS_ORDER = ["ok", "missing", "empty", "invalid_json", "too_large", "renamed", "outdated", "duplicate_ids",
                "tests_edited", "timeout", "memory", "kernel_died", "tampering", "error"]


# ----------------------------------------------------------------------------- nbgrader set-up
def _nbgrader_course(course_root: Path, work: Path) -> Path:
    """A throwaway nbgrader course with the source notebooks (never touches the repository)."""
    shutil.copytree(course_root / "solutions", work / "source",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return work


def generate(course_root: Path, work: Path, db_url: str) -> Path:
    """nbgrader generate_assignment for every assignment: fills the gradebook at ``db_url``."""
    from nbgrader.apps import NbGraderAPI

    from .worker import nbgrader_config

    root = work if (work / "source").exists() else _nbgrader_course(course_root, work)
    api = NbGraderAPI(config=nbgrader_config(root, db_url))
    for folder in sorted((root / "source").glob("*/")):
        res = api.generate_assignment(folder.name)
        if not res.get("success"):
            raise RuntimeError(f"nbgrader generate_assignment {folder.name} failed:\n{res.get('error')}")
    return root


def release(course_root: Path, out_dir: Path) -> None:
    """Write the student release of ``course_root/solutions`` to ``out_dir`` (nbgrader's release step)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(course_root, Path(tmp), f"sqlite:///{tmp}/gradebook.db")
        for nb in (root / "release").glob("*/*.ipynb"):
            dest = out_dir / nb.parent.name / nb.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(nb, dest)


# ----------------------------------------------------------------------------- collecting submissions
@dataclass
class Item:
    student: str
    assignment: str
    notebook: str
    data: bytes | None = None
    tags: set = field(default_factory=set)
    notes: list = field(default_factory=list)


def _safe_extract(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.startswith("/") or ".." in Path(name).parts or info.file_size > nbs.MAX_NOTEBOOK_BYTES * 2:
                continue
            if "__MACOSX" in name:
                continue
            zf.extract(info, dest)
    return dest


def _student_from_name(filename: str) -> str:
    stem = Path(filename).stem
    return re.split(r"[_\s]", stem, maxsplit=1)[0] or stem


def _identify(data: bytes, course) -> tuple[str, str] | None:
    """(assignment, notebook) whose grade ids / defs best match a notebook's cells."""
    try:
        student = json.loads(data.decode("utf-8", errors="replace"))
        cells = [c for c in student.get("cells", []) if isinstance(c, dict)]
    except Exception:  # noqa: BLE001
        return None
    ids = {nbs.nbmeta(c).get("grade_id") for c in cells}
    defs = set().union(*[nbs.defined_functions(nbs.source_text(c)) for c in cells]) if cells else set()
    best, score = None, 0
    for a, sources in course.items():
        for src in sources:
            s = len((ids | defs) & set(src.exercises)) + len(ids & set(src.test_owner))
            if s > score:
                best, score = (a, src.name), s
    return best


def collect(path: Path, course, tmp: Path) -> list[Item]:
    if path.is_file() and zipfile.is_zipfile(path):
        path = _safe_extract(path, tmp / "unzipped")
    if (path / "submitted").is_dir():
        path = path / "submitted"
    names = {a: {s.name for s in srcs} for a, srcs in course.items()}
    found: dict[tuple[str, str, str], Item] = {}
    students: set[str] = set()
    seen_assignments: set[str] = set()
    files = sorted(p for p in path.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    nested = [p for p in path.iterdir() if p.is_dir() and p.name not in ("__MACOSX",)]
    nbgrader_layout = any((d / a).is_dir() for d in nested for a in course)

    def add(student, assignment, notebook, data, tags=(), notes=()):
        key = (student, assignment, notebook)
        students.add(student)
        seen_assignments.add(assignment)
        if key in found and found[key].data is not None:
            found[key].notes.append("several files for this notebook: the first (by name) was graded")
            return
        found[key] = Item(student, assignment, notebook, data, set(tags), list(notes))

    if nbgrader_layout:
        for sdir in sorted(nested):
            students.add(sdir.name)
            for adir in sorted(p for p in sdir.iterdir() if p.is_dir()):
                if adir.name not in course:
                    continue
                seen_assignments.add(adir.name)
                ipynbs = sorted(p for p in adir.glob("*.ipynb"))
                for nbpath in ipynbs:
                    if nbpath.stem in names[adir.name]:
                        add(sdir.name, adir.name, nbpath.stem, nbpath.read_bytes())
                unmatched = [p for p in ipynbs if p.stem not in names[adir.name]]
                for nb_name in sorted(names[adir.name]):
                    if (sdir.name, adir.name, nb_name) in found or not unmatched:
                        continue
                    cand = unmatched.pop(0) if len(names[adir.name]) == 1 else None
                    if cand is not None:
                        add(sdir.name, adir.name, nb_name, cand.read_bytes(), {"renamed"},
                            [f"graded {cand.name} (renamed)"])
    else:
        for f in files:
            if f.suffix.lower() not in (".ipynb", ".json", ".txt", "") :
                continue
            student = _student_from_name(f.name)
            students.add(student)
            hit = None
            for a, nb_names in names.items():
                for nb_name in nb_names:
                    if nb_name in f.stem or (len(nb_names) == 1 and a in f.stem):
                        hit = (a, nb_name)
            data = f.read_bytes()
            if hit and f.stem.endswith(hit[1]):
                add(student, hit[0], hit[1], data)
            elif hit:
                add(student, hit[0], hit[1], data, {"renamed"}, [f"graded {f.name}"])
            else:
                guess = _identify(data, course)
                if guess:
                    add(student, guess[0], guess[1], data, {"renamed"}, [f"graded {f.name} (recognised by its cells)"])
                else:
                    found[(student, "?", f.name)] = Item(student, "?", f.name, None, {"invalid_json"},
                                                         [f"{f.name}: not a notebook of this course"])
    items = [it for it in found.values() if it.assignment != "?"]
    unknown = [it for it in found.values() if it.assignment == "?"]
    for student in sorted(students):
        for a in sorted(seen_assignments):
            for nb_name in sorted(names[a]):
                if (student, a, nb_name) not in found:
                    notes = [u.notes[0] for u in unknown if u.student == student]
                    tag = "invalid_json" if notes else "missing"
                    items.append(Item(student, a, nb_name, None, {tag}, notes or ["no notebook submitted"]))
    return sorted(items, key=lambda it: (it.student, it.assignment, it.notebook))


# ----------------------------------------------------------------------------- running one submission
@dataclass
class Outcome:
    item: Item
    points: dict      # exercise -> points
    max_points: dict  # exercise -> max
    feedback: str | None = None
    seconds: float = 0.0


def _limit(memory_bytes: int):
    def apply():
        os.setsid()
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    return apply


def run_item(item: Item, src: nbs.SourceNotebook, template_db: Path, opts) -> Outcome:
    start = time.time()
    max_points = {n: e.points for n, e in src.exercises.items()}
    zero = {n: 0.0 for n in src.exercises}
    if item.data is None:
        return Outcome(item, zero, max_points, seconds=time.time() - start)
    try:
        student = nbs.read_student(item.data)
    except nbs.Unreadable as exc:
        item.tags.add(exc.tag)
        item.notes.append(exc.note)
        return Outcome(item, zero, max_points, seconds=time.time() - start)
    ex = nbs.extract(student, src)
    item.tags |= ex.tags
    item.notes += ex.notes
    answers = dict(ex.answers)
    rejected = nbs.scan_answers(src, answers)
    for name, problems in rejected.items():
        item.tags.add("tampering")
        item.notes.append(f"{name}: " + "; ".join(problems[:3]))
        answers[name] = nbs.STUB
    key = hashlib.sha256(json.dumps([item.assignment, item.notebook, sorted(answers.items())]).encode()).hexdigest()
    with _CACHE_LOCK:
        lock = _CACHE_LOCKS.setdefault(key, threading.Lock())
    with lock:  # identical answers run once: the executed notebook would be byte-identical
        if key not in _CACHE or not opts.cache:
            _CACHE[key] = execute(item, src, answers, template_db, opts)
        points, tags, notes, feedback = _CACHE[key]
    item.tags |= tags
    item.notes += notes
    points = dict(points)
    for name in rejected:
        points[name] = 0.0
    return Outcome(item, points, max_points, feedback, time.time() - start)


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()
_CACHE_LOCKS: dict = {}


def execute(item: Item, src: nbs.SourceNotebook, answers: dict, template_db: Path, opts):
    """Run the sanitized notebook in a worker process: (points, tags, notes, feedback html)."""
    zero = {n: 0.0 for n in src.exercises}
    tags, notes = set(), []
    zeroed = set()
    neutralized: set[int] = set()
    for attempt in range(len(src.exercises) + 3):
        nb, roles = nbs.build(src, answers, neutralized, opts.max_cell_bytes)
        ws = Path(tempfile.mkdtemp(prefix="rlgrade-", dir=opts.tmp))
        try:
            (ws / "source" / item.assignment).mkdir(parents=True)
            sub = ws / "submitted" / item.student / item.assignment
            sub.mkdir(parents=True)
            import nbformat
            nbformat.write(nb, str(sub / f"{item.notebook}.ipynb"))
            shutil.copy(template_db, ws / "gradebook.db")
            (ws / "job.json").write_text(json.dumps({
                "assignment": item.assignment, "student": item.student, "notebook": item.notebook,
                "roles": roles, "cell_timeout": opts.cell_timeout}))
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # each worker's share of the cores
                env.setdefault(var, str(opts.threads))
            proc = subprocess.Popen([sys.executable, "-m", "autograder.worker", str(ws)], cwd=ws, env=env,
                                    stdout=subprocess.DEVNULL, stderr=open(ws / "worker.log", "wb"),
                                    preexec_fn=_limit(int(opts.memory_gb * 2**30)))
            killed = False
            try:
                proc.wait(timeout=opts.timeout)
            except subprocess.TimeoutExpired:
                killed = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            result = json.loads((ws / "result.json").read_text()) if (ws / "result.json").exists() else None
            if result and result.get("retry"):
                notes.append(result["retry"] + ": run again")
                continue
            if result and result["success"]:
                points = dict(zero)
                for gid, (score, _) in result["grades"].items():
                    owner = src.test_owner.get(gid)
                    if owner:
                        points[owner] += score
                for i, what, report in result["guard"]:
                    tags.add("tampering")
                    notes.append(f"guard: {report}")
                    if what:
                        zeroed.add(what)
                if result["timeouts"]:
                    tags.add("timeout")
                    notes.append("cell timed out: " + ", ".join(str(w) for _, _, w in result["timeouts"]))
                oom = sorted(n for n, ename in result["errors"].items() if ename == "MemoryError")
                if oom:
                    tags.add("memory")
                    notes.append("memory limit reached in the tests of " + ", ".join(oom))
                for name in zeroed:
                    points[name] = 0.0
                fb = next((ws / "feedback").rglob("*.html"), None) if (ws / "feedback").exists() else None
                feedback = fb.read_text(errors="replace") if fb else None
                return points, tags, notes, feedback
            # the run did not finish: find the cell it was in, neutralize it, run again
            try:
                cell = json.loads((ws / "progress.json").read_text())["cell"]
            except Exception:  # noqa: BLE001
                cell = None
            tag = "timeout" if killed else "kernel_died"
            if cell is None or cell in neutralized:
                tags.add("error")
                notes.append("the notebook could not be run: " + (result or {}).get("error", "")[-200:].strip())
                return zero, tags, notes, None
            tags.add(tag)
            role, what = roles[cell]
            if role in ("answer", "test"):
                idx = next(i for i, r in enumerate(roles) if r == ("answer", what))
                neutralized.add(idx)
                zeroed.add(what)
                notes.append(f"{tag} in {role} cell of {what}: {what} scores 0")
            else:
                neutralized.add(cell)
                notes.append(f"{tag} in cell {cell}: skipped")
        finally:
            if not opts.keep:
                shutil.rmtree(ws, ignore_errors=True)
    tags.add("error")
    return zero, tags, notes, None


# ----------------------------------------------------------------------------- the batch
def _hash_tree(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def status_of(tags: set) -> str:
    tags = set(tags) - {"ok"}
    return "+".join(t for t in STATUS_ORDER if t in tags) + "".join(
        "+" + t for t in sorted(tags - set(STATUS_ORDER))) if tags else "ok"


def record(db_url: str, course_id: str, outcome: Outcome, src: nbs.SourceNotebook) -> None:
    """Write one outcome into the instructor's gradebook (only the parent process does this)."""
    import warnings

    from nbgrader.api import Gradebook

    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", category=Warning, message=".*not in session.*")
    it = outcome.item
    with Gradebook(db_url, course_id) as gb:
        gb.update_or_create_student(it.student)
        gb.update_or_create_submission(it.assignment, it.student)
        nbsub = gb.find_submission_notebook(it.notebook, it.assignment, it.student)
        remaining = dict(outcome.points)
        for grade in nbsub.grades:
            owner = src.test_owner.get(grade.name)
            if owner is None:
                continue
            give = min(remaining.get(owner, 0.0), float(grade.max_score or 0))
            remaining[owner] = remaining.get(owner, 0.0) - give
            grade.auto_score = give
            grade.needs_manual_grade = False
        gb.db.commit()


def feedback_page(outcome: Outcome, status: str) -> str:
    it = outcome.item
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{outcome.points[n]:g} / {outcome.max_points[n]:g}</td></tr>"
                   for n in outcome.points)
    total, mx = sum(outcome.points.values()), sum(outcome.max_points.values())
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in it.notes)
    banner = (f'<div style="border:2px solid #888;padding:8px;margin:8px;font-family:sans-serif">'
              f"<h2>{html.escape(it.assignment)} / {html.escape(it.notebook)}: {total:g} / {mx:g}</h2>"
              f"<p>Student: {html.escape(it.student)}. Status: <b>{html.escape(status)}</b></p>"
              f"<table>{rows}</table><ul>{notes}</ul></div>")
    if outcome.feedback:
        return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, outcome.feedback, count=1)
    return f"<!DOCTYPE html><html><body>{banner}<p>This notebook was not run.</p></body></html>"


def grade(submissions: Path, out: Path, course_root: Path = REPO, db_url: str | None = None, workers: int = 2,
          timeout: float = 900, cell_timeout: int = 120, memory_gb: float = 6.0, keep: bool = False,
          quiet: bool = False, max_cell_bytes: int = 20_000, cache: bool = True) -> list[dict]:
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    course = nbs.load_course(course_root)
    if not course:
        raise SystemExit(f"no source notebooks under {course_root / 'solutions'}")
    sources = {(a, s.name): s for a, srcs in course.items() for s in srcs}
    db_url = db_url or f"sqlite:///{course_root / 'gradebook.db'}"
    tmp = Path(tempfile.mkdtemp(prefix="rlgrade-batch-"))
    opts = argparse.Namespace(timeout=timeout, cell_timeout=cell_timeout, memory_gb=memory_gb, keep=keep,
                              tmp=tmp, max_cell_bytes=max_cell_bytes, cache=cache,
                              threads=max(1, (os.cpu_count() or 1) // max(1, workers)))
    _CACHE.clear()
    _CACHE_LOCKS.clear()
    try:
        template = tmp / "template"
        template.mkdir()
        generate(course_root, template, f"sqlite:///{template / 'gradebook.db'}")
        generate(course_root, template, db_url)
        items = collect(Path(submissions), course, tmp)
        guarded = {"solutions": (course_root / "solutions", _hash_tree(course_root / "solutions"))}
        if Path(submissions).is_dir():
            guarded["submissions"] = (Path(submissions), _hash_tree(Path(submissions)))
        db_file = Path(db_url[len("sqlite:///"):]) if db_url.startswith("sqlite:///") else None
        t0 = time.time()
        outcomes = []
        bar = tqdm(total=len(items), desc="grading", unit="nb", disable=quiet, file=sys.stderr)
        with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(run_item, it, sources[(it.assignment, it.notebook)], template / "gradebook.db", opts): it
                       for it in items}
            for fut in cf.as_completed(futures):
                it = futures[fut]
                try:
                    outcome = fut.result()
                except Exception as exc:  # noqa: BLE001 - one submission never stops the batch
                    src = sources[(it.assignment, it.notebook)]
                    it.tags.add("error")
                    it.notes.append(f"grader error: {exc!r}"[:300])
                    outcome = Outcome(it, {n: 0.0 for n in src.exercises}, {n: e.points for n, e in src.exercises.items()})
                for what, (path, digest) in guarded.items():
                    if _hash_tree(path) != digest:
                        outcome.item.tags.add("tampering")
                        outcome.item.notes.append(f"{what} changed while this notebook ran")
                outcomes.append(outcome)
                bar.update(1)
        bar.close()
        rows = []
        exercise_cols = [n for (a, _), s in sorted(sources.items()) for n in s.exercises]
        for outcome in sorted(outcomes, key=lambda o: (o.item.student, o.item.assignment, o.item.notebook)):
            it = outcome.item
            src = sources[(it.assignment, it.notebook)]
            record(db_url, "rl-for-llms", outcome, src)
            status = status_of(it.tags)
            row = {"student": it.student, "assignment": it.assignment, "notebook": it.notebook}
            row.update({n: (f"{outcome.points[n]:g}" if n in outcome.points else "") for n in exercise_cols})
            row.update({"total": f"{sum(outcome.points.values()):g}", "max": f"{src.max_points:g}",
                        "status": status, "notes": " | ".join(it.notes), "seconds": f"{outcome.seconds:.1f}"})
            rows.append(row)
            page = out / "feedback" / it.student / it.assignment / f"{it.notebook}.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(feedback_page(outcome, status))
        with open(out / "grades.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["student", "assignment", "notebook", *exercise_cols,
                                                    "total", "max", "status", "notes", "seconds"])
            writer.writeheader()
            writer.writerows(rows)
        if not quiet:
            wall = time.time() - t0
            students = sorted({r["student"] for r in rows})
            print(f"\ngraded {len(rows)} notebooks of {len(students)} students in {wall:.1f} s "
                  f"({workers} workers); grades: {out / 'grades.csv'}; feedback: {out / 'feedback'}; gradebook: {db_url}")
            for r in rows:
                print(f"  {r['student']:<20} {r['assignment']:<22} {r['total']:>6} / {r['max']:<6} {r['status']}")
        if db_file is not None and db_file.exists():
            pass
        return rows
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bash scripts/course.sh grade", description=__doc__.split("\n\n")[0])
    p.add_argument("submissions", type=Path, help="folder or .zip of submissions")
    p.add_argument("--out", type=Path, default=Path("grading-output"), help="where grades.csv and feedback/ go")
    p.add_argument("--db", default=None, help="gradebook URL (default: sqlite:///<course-root>/gradebook.db)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--course-root", type=Path, default=REPO)
    p.add_argument("--timeout", type=float, default=900, help="wall-clock seconds per notebook run")
    p.add_argument("--cell-timeout", type=int, default=120, help="seconds per cell (Execute.timeout)")
    p.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit per submission")
    p.add_argument("--keep", action="store_true", help="keep the per-submission workspaces (debugging)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--no-cache", action="store_true",
                   help="run every submission even when its answers equal another's (benchmarks)")
    a = p.parse_args(argv)
    grade(a.submissions, a.out, a.course_root.resolve(), a.db, a.workers, a.timeout, a.cell_timeout, a.memory_gb,
          a.keep, a.quiet, cache=not a.no_cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
