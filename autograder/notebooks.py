"""The course's source notebooks, the students' notebooks, and the notebook the grader executes.

Grading never runs a student's notebook as it was submitted, and never runs student code in the
grader's kernel. From the student's notebook it takes only the student's code: the answer cells,
matched by ``grade_id`` or, for a notebook whose metadata was lost (an older release, a copy into a
fresh notebook), by the top-level ``def <name>`` a cell defines; and the code cells the student
added (any code cell that is not one of the course's own). That code runs in the sandboxed student
process (autograder/remote.py), every cell in notebook order, copies of an answer cell included (a
repeated grade id is flagged): the student's functions are those a Restart-and-Run-All in Jupyter
would leave, the last definition winning, and the code shown for an exercise is its last cell. The notebook the
kernel executes is built from the SOURCE notebook (``build``): setup and test cells exactly as the
course wrote them, hidden tests moved out of sight.
"""
from __future__ import annotations

import ast
import copy
import functools
import json
import re
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from coursetools import layout
from coursetools.layout import STUB, is_answer_cell as is_answer, setup_indices
from coursetools.layout import cell_source as source_text, nbgrader_meta as nbmeta

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.S)
HIDDEN_BLOCK = re.compile(r"^([ \t]*)### BEGIN HIDDEN TESTS[^\n]*\n(.*?)^[ \t]*### END HIDDEN TESTS[^\n]*(?:\n|$)", re.S | re.M)
MAX_NOTEBOOK_BYTES = 50_000_000
MAX_ANSWER_CHARS = 100_000
MAX_STUDENT_CELLS = 300


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

    @property
    def max_points(self) -> float:
        return sum(e.points for e in self.exercises.values())


def load_source(assignment: str, path: Path) -> SourceNotebook:
    nb = nbformat.read(str(path), as_version=4)
    exercises = {nbmeta(c)["grade_id"]: Exercise(nbmeta(c)["grade_id"]) for c in nb.cells if is_answer(c)}
    test_owner = layout.test_owners(nb.cells, str(path))
    for cell in nb.cells:
        if layout.is_test_cell(cell):
            gid = nbmeta(cell)["grade_id"]
            exercises[test_owner[gid]].tests.append(gid)
            exercises[test_owner[gid]].points += float(nbmeta(cell).get("points", 0))
    return SourceNotebook(assignment, path.stem, path, nb, exercises, test_owner)


def parse(source: str) -> ast.Module:
    """``ast.parse`` under a lock: parsing in two threads at once can fail in CPython 3.11
    (``SystemError: AST constructor recursion depth mismatch``)."""
    with _AST_LOCK:
        return ast.parse(source)


_AST_LOCK = threading.Lock()


def load_course(course_root: Path) -> dict[str, list[SourceNotebook]]:
    """assignment id -> its source notebooks (solutions/<assignment>/*.ipynb; ``layout.assignment_ids``)."""
    folders = [layout.source_notebook(a, course_root).parent for a in layout.assignment_ids(course_root)]
    return {folder.name: [load_source(folder.name, p) for p in sorted(folder.glob("*.ipynb"))] for folder in folders}


# ----------------------------------------------------------------------------- student side
@dataclass
class Extracted:
    answers: dict[str, str]            # exercise -> answer cell source
    tags: set[str]                     # status tags (duplicate_ids, tests_edited, outdated, ...)
    notes: list[str]
    grade_ids: set[str] = field(default_factory=set)
    cells: list[dict] = field(default_factory=list)  # the student's code, in order: {"id", "source", "exercise"}


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
        tree = parse(source)
    except (SyntaxError, ValueError):
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
        notes.append("repeated grade ids (every copy run in notebook order, as Restart-and-Run-All does: "
                     "the last cell used): " + ", ".join(repeated))
    answers, chosen = {}, {}
    for name in src.exercises:
        found = [c for c in by_id.get(name, []) if not nbmeta(c).get("grade")]
        if found:  # every copy runs, in notebook order: the last definition wins, as in Jupyter
            answers[name] = source_text(found[-1])
            for cell in found:
                chosen.setdefault(id(cell), name)
            continue
        defs = [c for c in cells if name in defined_functions(source_text(c))
                and not str(nbmeta(c).get("grade_id", "")).startswith("test_")]
        if defs:
            answers[name] = source_text(defs[-1])
            for cell in defs:
                chosen.setdefault(id(cell), name)
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
    return Extracted(answers, tags, notes, set(by_id), student_cells(cells, chosen, src))


def student_cells(cells: list[dict], chosen: dict[int, str], src: SourceNotebook) -> list[dict]:
    """The code the student wrote, in notebook order: the chosen answer cells and the cells they added.

    A code cell is the course's own (and is not run) when it is a test or another answer cell, or
    when its code equals one of the source notebook's cells (setup, demo, training, a test's visible
    part). Every other non-empty code cell is the student's.
    """
    course = {norm(source_text(c)) for c in src.nb.cells if c.cell_type == "code"}
    course |= {norm(HIDDEN.sub("", source_text(c))) for c in src.nb.cells if nbmeta(c).get("grade")}
    out = []
    for i, cell in enumerate(cells):
        text = source_text(cell)[:MAX_ANSWER_CHARS]
        meta = nbmeta(cell)
        if id(cell) in chosen:
            out.append({"id": i, "source": text, "exercise": chosen[id(cell)]})
        elif meta.get("grade") or meta.get("solution") or not text.strip() or norm(text) in course:
            continue
        else:
            out.append({"id": i, "source": text, "exercise": None})
    return out[:MAX_STUDENT_CELLS]


def split_hidden(grade_id: str, source: str) -> tuple[str, list[str]]:
    """A test cell's source with each hidden block replaced by a call that runs it out of sight."""
    blocks: list[str] = []

    def keep(match):
        indent = match.group(1)
        blocks.append(textwrap.dedent(match.group(2)))
        return f"{indent}__rlcourse__.hidden({grade_id!r}, {len(blocks) - 1})\n"

    return HIDDEN_BLOCK.sub(keep, source), blocks


_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$", re.S)


def render_math(markdown: str) -> str:
    """Markdown with its ``$...$`` and ``$$...$$`` turned into MathML, which browsers show offline
    (feedback pages are read without a network; nbconvert's MathJax comes from a CDN)."""
    try:
        from latex2mathml.converter import convert
    except ImportError:
        return markdown

    def one(match):
        block, inline = match.group(1), match.group(2)
        try:
            return convert((block or inline).strip(), display="block" if block else "inline")
        except Exception:  # noqa: BLE001 - leave what the converter cannot read as it was
            return match.group(0)

    parts = _CODE.split(markdown)
    return "".join(part if i % 2 else _MATH.sub(one, part) for i, part in enumerate(parts))


def build(src: SourceNotebook, answers: dict[str, str]):
    """The notebook the grader's kernel executes, the hidden test code, and what each cell is.

    Cells: an init cell (autograder/kernel.py), the markdown and the setup cells as the course wrote
    them, each answer cell as ``%%student <name>`` over the student's code (bound to the sandboxed
    function, never run in the kernel), and the test cells with their hidden blocks moved out.
    Training and demo cells are left out: test cells never depend on them (a course rule).
    Roles: ``(kind, exercise)`` per cell, kind in init, markdown, setup, answer, test.
    """
    nb = copy.deepcopy(src.nb)
    init = nbformat.v4.new_code_cell("from autograder.kernel import start as _start\n"
                                     "__rlcourse__ = _start(get_ipython())\ndel _start")
    cells, roles, hidden = [init], [("init", None)], {}
    setup = setup_indices(nb.cells)
    for i, cell in enumerate(nb.cells):
        meta = nbmeta(cell)
        if cell.cell_type == "markdown":
            cell.source = render_math(source_text(cell))
            cells.append(cell)
            roles.append(("markdown", None))
        elif cell.cell_type != "code":
            continue
        elif is_answer(cell):
            name = meta["grade_id"]
            cell.source = f"%%student {name}\n" + answers.get(name, STUB)[:MAX_ANSWER_CHARS]
            cells.append(cell)
            roles.append(("answer", name))
        elif meta.get("grade"):
            gid = meta["grade_id"]
            cell.source, hidden[gid] = split_hidden(gid, source_text(cell))
            cells.append(cell)
            roles.append(("test", src.test_owner[gid]))
        elif i in setup:
            cells.append(cell)
            roles.append(("setup", None))
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        else:
            cell.pop("outputs", None)
        cell.pop("id", None)
    nb.cells = cells
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb, hidden, roles


def prelude(src: SourceNotebook) -> list[str]:
    """The setup cells' code, then the course names they import that the sandbox's package lacks
    (``given_names``): the student's process runs it first, so answers find ``torch``, ``F``, ``ABSTAIN``, ..."""
    setup = [source_text(src.nb.cells[i]) for i in sorted(setup_indices(src.nb.cells))]
    given = given_names(setup, set(src.exercises))
    return setup + ([given] if given else [])


def given_names(setup: list[str], exercises: set[str]) -> str:
    """Code that defines the names the setup cells import from course modules the sandbox does not carry.

    The notebook gives the student these names, so an honest answer may use them, as it could in Jupyter.
    Constants come as literals (``ABSTAIN = "I don't know"``); functions and classes (helpers such as
    ``masked_whiten`` or ``optimizer_step``, earlier notebooks' answer-key functions such as
    ``reinforce_loss``) come as their source, with the course definitions they use (transitively) and
    their modules' imports. Nothing else of those modules, and nothing that is, or uses, one of this
    notebook's exercises: ``answer_rewards`` (which calls ``answer_reward``) is not given in 05.
    """
    return _given_names(tuple(setup), frozenset(exercises))


@functools.lru_cache(maxsize=64)
def _given_names(setup: tuple[str, ...], exercises: frozenset[str]) -> str:
    import importlib

    from . import sandbox

    constants, definitions = [], {}
    for source in setup:
        try:
            tree = parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("rlcourse.")):
                continue
            if node.module.split(".", 1)[1] in sandbox.STUDENT_MODULES:
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                name, value = alias.asname or alias.name, getattr(module, alias.name, None)
                if isinstance(value, (bool, int, float, str)):
                    constants.append(f"{name} = {value!r}")
                elif _is_course_definition(value) and value.__name__ not in exercises:
                    closure = _course_definitions(value)
                    if not set(closure) & exercises:
                        definitions.update(closure)
                        if name != value.__name__:
                            constants.append(f"{name} = {value.__name__}")
    if not definitions:
        return "\n".join(constants)
    imports = sorted({line for d in definitions.values() for line in d.imports})
    values = list(dict.fromkeys(v for d in definitions.values() for v in d.values))
    early = [v for v in values if not _names_read(v) & set(definitions)]  # e.g. a compiled pattern
    late = [v for v in values if v not in early]  # e.g. an alias `_float = upcast`, after the def it names
    codes = [d.code + "\n" for d in reversed(definitions.values())]  # what a class builds on, before it
    return "\n".join([*imports, "", *early, *codes, *late, *constants])


def _names_read(source: str) -> set[str]:
    return {n.id for n in ast.walk(parse(source)) if isinstance(n, ast.Name)}


def _is_course_definition(value) -> bool:
    import inspect

    return (inspect.isfunction(value) or inspect.isclass(value)) and (value.__module__ or "").startswith("rlcourse.")


@dataclass
class _Definition:
    imports: list[str]  # its module's absolute imports
    code: str           # its source, annotations of functions dropped (they may name classes not given)
    values: list[str]   # the module-level assignments it reads


@functools.lru_cache(maxsize=None)
def _module_tree(module_name: str) -> ast.Module:
    import importlib
    import inspect

    return parse(inspect.getsource(importlib.import_module(module_name)))


def _course_definitions(obj) -> dict[str, _Definition]:
    """``obj`` (a function or class) and every ``rlcourse`` function or class it uses, transitively."""
    import inspect

    found, todo = {}, [obj]
    while todo:
        current = todo.pop(0)
        if current.__name__ in found:
            continue
        module = inspect.getmodule(current)
        tree = _module_tree(module.__name__)
        imports = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                   and not (isinstance(n, ast.ImportFrom) and (n.level or n.module == "__future__"))]
        node = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == current.__name__)
        node = _without_annotations(node)
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        # module-level values it reads (a compiled pattern, an alias such as `_float = upcast`)
        values = [n for n in tree.body if isinstance(n, ast.Assign)
                  and {t.id for t in n.targets if isinstance(t, ast.Name)} & used]
        used |= {n.id for v in values for n in ast.walk(v.value) if isinstance(n, ast.Name)}
        found[current.__name__] = _Definition(imports, ast.unparse(node), [ast.unparse(v) for v in values])
        todo += [v for v in map(module.__dict__.get, sorted(used)) if _is_course_definition(v)]
    return found


def _without_annotations(node):
    """A copy of a def or class whose function annotations are gone and whose field annotations are strings:
    the course modules postpone annotations (``from __future__ import annotations``), the given code does not."""
    node = copy.deepcopy(node)
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n.returns = None
            for a in [*n.args.posonlyargs, *n.args.args, *n.args.kwonlyargs, n.args.vararg, n.args.kwarg]:
                if a is not None:
                    a.annotation = None
        elif isinstance(n, ast.AnnAssign):
            n.annotation = ast.Constant(ast.unparse(n.annotation))
    return node
