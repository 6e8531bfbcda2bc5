"""The course's source notebooks, the students' notebooks, and the sanitized notebook that is run.

Grading never runs a student's notebook as it was submitted. It runs the SOURCE notebook (setup,
demo and test cells exactly as the course wrote them, hidden tests included) in which only the
answer cells are replaced by the student's answer cells, matched by ``grade_id`` (first occurrence
wins; a repeat is flagged) or, for a notebook whose metadata was lost (an older release, a copy
into a fresh notebook), by the top-level ``def <name>`` the cell defines. Injected guard cells
(autograder/guard.py) surround every test cell.
"""
from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import guard, scan

STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.S)
MAX_NOTEBOOK_BYTES = 50_000_000
MAX_ANSWER_CHARS = 100_000


def source_text(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def nbmeta(cell) -> dict:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nb = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nb if isinstance(nb, dict) else {}


@dataclass
class Exercise:
    name: str
    tests: list[str] = field(default_factory=list)  # grade ids of its test cells
    points: float = 0.0


@dataclass
class SourceNotebook:
    assignment: str
    name: str          # notebook name without .ipynb
    path: Path
    nb: nbformat.NotebookNode
    exercises: dict[str, Exercise]
    test_owner: dict[str, str]  # test grade id -> exercise name
    reference_aliases: set[str]

    @property
    def max_points(self) -> float:
        return sum(e.points for e in self.exercises.values())


def load_source(assignment: str, path: Path) -> SourceNotebook:
    nb = nbformat.read(str(path), as_version=4)
    exercises: dict[str, Exercise] = {}
    test_owner: dict[str, str] = {}
    last = None
    for cell in nb.cells:
        meta = nbmeta(cell)
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            last = meta["grade_id"]
            exercises[last] = Exercise(last)
    for cell in nb.cells:
        meta = nbmeta(cell)
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            last = meta["grade_id"]
        elif meta.get("grade") and cell.cell_type == "code":
            gid = meta["grade_id"]
            owners = [n for n in exercises if gid == f"test_{n}" or gid.startswith(f"test_{n}_")]
            owner = max(owners, key=len) if owners else last
            if owner is None:
                raise ValueError(f"{path}: test cell {gid} belongs to no exercise")
            test_owner[gid] = owner
            exercises[owner].tests.append(gid)
            exercises[owner].points += float(meta.get("points", 0))
    aliases = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or meta_is_graded(cell):
            continue
        try:
            tree = ast.parse(source_text(cell))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "rlcourse.reference" and a.asname:
                        aliases.add(a.asname)
            elif isinstance(node, ast.ImportFrom) and node.module == "rlcourse":
                for a in node.names:
                    if a.name in ("reference", "checks"):
                        aliases.add(a.asname or a.name)
    return SourceNotebook(assignment, path.stem, path, nb, exercises, test_owner, aliases)


def meta_is_graded(cell) -> bool:
    m = nbmeta(cell)
    return bool(m.get("solution") or m.get("grade"))


def load_course(course_root: Path) -> dict[str, list[SourceNotebook]]:
    """assignment id -> its source notebooks (solutions/<assignment>/*.ipynb)."""
    course = {}
    for folder in sorted((course_root / "solutions").glob("*/")):
        notebooks = [load_source(folder.name, p) for p in sorted(folder.glob("*.ipynb"))]
        if notebooks:
            course[folder.name] = notebooks
    return course


# ----------------------------------------------------------------------------- student side
@dataclass
class Extracted:
    answers: dict[str, str]            # exercise -> answer cell source
    tags: set[str]                     # status tags (duplicate_ids, tests_edited, outdated, ...)
    notes: list[str]
    grade_ids: set[str] = field(default_factory=set)


class Unreadable(Exception):
    def __init__(self, tag: str, note: str):
        super().__init__(note)
        self.tag, self.note = tag, note


def read_student(data: bytes) -> dict:
    if len(data.strip()) == 0:
        raise Unreadable("empty", "the file is empty")
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise Unreadable("too_large", f"the file is {len(data) / 1e6:.0f} MB")
    try:
        nb = json.loads(data.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        raise Unreadable("invalid_json", f"not a valid notebook (JSON): {str(exc)[:120]}")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise Unreadable("invalid_json", "not a Jupyter notebook (no list of cells)")
    cells = [c for c in nb["cells"] if isinstance(c, dict)]
    if not any(source_text(c).strip() for c in cells):
        raise Unreadable("empty", "the notebook has no content")
    return nb


def defined_functions(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(re.findall(r"^def\s+(\w+)\s*\(", source, re.M))
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def extract(student: dict, src: SourceNotebook) -> Extracted:
    cells = [c for c in student["cells"] if isinstance(c, dict) and c.get("cell_type") == "code"]
    tags, notes = set(), []
    by_id: dict[str, list[dict]] = {}
    for cell in cells:
        gid = nbmeta(cell).get("grade_id")
        if isinstance(gid, str):
            by_id.setdefault(gid, []).append(cell)
    repeated = sorted(g for g, cs in by_id.items() if len(cs) > 1)
    if repeated:
        tags.add("duplicate_ids")
        notes.append("repeated grade ids (first cell used): " + ", ".join(repeated))
    answers = {}
    for name in src.exercises:
        found = [c for c in by_id.get(name, []) if not nbmeta(c).get("grade")]
        if found:
            answers[name] = source_text(found[0])
            continue
        defs = [c for c in cells if name in defined_functions(source_text(c))
                and not str(nbmeta(c).get("grade_id", "")).startswith("test_")]
        if defs:
            answers[name] = source_text(defs[0])
            tags.add("outdated")
            notes.append(f"answer cell `{name}` found by its def (grade id missing)")
        else:
            notes.append(f"answer cell `{name}` not found")
            tags.add("outdated")
    # test cells: deleted or edited ones are graded with the original tests anyway
    originals = {nbmeta(c).get("grade_id"): norm(HIDDEN.sub("", source_text(c)))
                 for c in src.nb.cells if nbmeta(c).get("grade")}
    for gid, original in originals.items():
        mine = by_id.get(gid)
        if not mine:
            tags.add("tests_edited")
            notes.append(f"test cell {gid} missing (original used)")
        elif norm(HIDDEN.sub("", source_text(mine[0]))) != original:
            tags.add("tests_edited")
            notes.append(f"test cell {gid} edited (original used)")
    known = set(src.exercises) | set(originals)
    extra = {g for g, cs in by_id.items() if any(nbmeta(c).get("solution") or nbmeta(c).get("grade") for c in cs)} - known
    if extra and "outdated" not in tags:
        tags.add("outdated")
        notes.append("cells of another release: " + ", ".join(sorted(extra)))
    return Extracted(answers, tags, notes, set(by_id))


def build(src: SourceNotebook, answers: dict[str, str], neutralized: set[int] = frozenset(),
          max_cell_bytes: int = guard.MAX_CELL_BYTES):
    """The notebook to execute, and for each of its cells what it is: ('answer'|'test', exercise),
    ('guard', None) or ('other', source cell index).

    ``neutralized`` holds indices (in the returned notebook) of cells to replace: an answer cell by
    the stub (its exercise scores 0), any other non-test cell by ``pass``.
    """
    nb = copy.deepcopy(src.nb)
    guard_src = Path(guard.__file__).read_text()
    install = nbformat.v4.new_code_cell(
        guard_src + f"\n__rlcourse_guard__ = install(get_ipython(), {int(max_cell_bytes)})\n"
        "del install, MARKER, MAX_CELL_BYTES\n")
    cells, roles = [install], [("guard", None)]

    def verify_cell(where):
        return nbformat.v4.new_code_cell(f"__rlcourse_guard__({where!r});")

    for i, cell in enumerate(nb.cells):
        meta = nbmeta(cell)
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            name = meta["grade_id"]
            cell.source = answers.get(name, STUB)[:MAX_ANSWER_CHARS]
            if len(cells) in neutralized:
                cell.source = STUB
            cells.append(cell)
            roles.append(("answer", name))
            cells.append(verify_cell(f"after {name}"))
            roles.append(("guard", name))
        elif cell.cell_type == "code" and meta.get("grade"):
            gid = meta["grade_id"]
            cells.append(verify_cell(f"before {gid}"))
            roles.append(("guard", src.test_owner[gid]))
            cells.append(cell)
            roles.append(("test", src.test_owner[gid]))
            cells.append(verify_cell(f"after {gid}"))
            roles.append(("guard", src.test_owner[gid]))
        else:
            if cell.cell_type == "code" and len(cells) in neutralized:
                cell.source = "pass  # this cell was skipped by the grader (it stopped the kernel)"
            cells.append(cell)
            roles.append(("other", i))
            bound = sorted(top_level_names(source_text(cell), True) - set(src.exercises)) if cell.cell_type == "code" else []
            if cell.cell_type == "code":
                cells.append(nbformat.v4.new_code_cell(f"__rlcourse_guard__('protect', {bound!r});"))
                roles.append(("guard", None))
    for cell in cells:
        cell.outputs = [] if cell.cell_type == "code" else cell.get("outputs", None) or []
        if cell.cell_type != "code":
            cell.pop("outputs", None)
        cell.pop("id", None)
    nb.cells = cells
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb, roles


def top_level_names(source: str, definitions_only: bool = False) -> set[str]:
    """Names a cell binds at the top level (imports, defs, and unless ``definitions_only`` assignments)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif not definitions_only:
            names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names


def course_names(src: SourceNotebook) -> set[str]:
    """Names the course's own cells (setup, demo, tests) bind: an answer cell may not rebind them."""
    names = set()
    for cell in src.nb.cells:
        if cell.cell_type == "code" and not (nbmeta(cell).get("solution") and not nbmeta(cell).get("grade")):
            names |= top_level_names(source_text(cell), definitions_only=True)
    return names - set(src.exercises)


def scan_answers(src: SourceNotebook, answers: dict[str, str]) -> dict[str, list[str]]:
    found = {}
    protected = course_names(src)
    for name, text in answers.items():
        problems = scan.scan(text, src.reference_aliases)
        rebound = sorted((top_level_names(text) & protected) - {"torch", "np", "numpy", "math", "F", "nn"})
        problems += [f"rebinds `{n}`, which the course's cells define" for n in rebound]
        if problems:
            found[name] = problems
    return found
