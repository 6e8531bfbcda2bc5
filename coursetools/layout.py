"""The course's layout, in one place: which assignments there are, where their notebooks live, which
cells are setup, answer and test cells (and which exercise a test cell belongs to), and the release
step that turns ``solutions/`` into the student release ``notebooks/`` and the code mirrors
``solutions/_code/``.

    solutions/<id>/<id>.ipynb   source: solutions, visible and hidden tests (the source of truth)
    notebooks/<id>/<id>.ipynb   the student release, written by ``release_notebooks``
    solutions/_code/<id>.py     the source's code cells as one Python file, written by ``write_mirror``,
                                so that linters and duplicate finders read the notebooks' code

The grader (autograder/), the tests, scripts/release.py (a command line over ``release``) and the
benchmarks import this module. It imports only the standard library when it is imported
(benchmarks/run_notebook.py runs where Jupyter is not installed); the release step imports nbgrader
and nbformat when it runs.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rlcourse.paths import REPO_ROOT

SOURCE_DIR = "solutions"
RELEASE_DIR = "notebooks"
MIRROR_DIR = f"{SOURCE_DIR}/_code"
NBGRADER_CONFIG = REPO_ROOT / "autograder" / "nbgrader_config.py"
# the answer cell's body as nbgrader's ClearSolutions writes it (autograder/nbgrader_config.py uses this)
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
# a line that is an IPython magic or a shell escape (the course's cells have none: CONTRIBUTING.md)
MAGIC = re.compile(r"^[ \t]*[%!]", re.MULTILINE)


# ----------------------------------------------------------------------------- assignments and files
def assignment_ids(root: Path = REPO_ROOT) -> list[str]:
    """Every folder ``solutions/<id>/`` that holds ``<id>.ipynb``, sorted (``solutions/_code`` holds none)."""
    source = Path(root) / SOURCE_DIR
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file())


def source_notebook(aid: str, root: Path = REPO_ROOT) -> Path:
    return Path(root) / SOURCE_DIR / aid / f"{aid}.ipynb"


def release_notebook(aid: str, root: Path = REPO_ROOT) -> Path:
    return Path(root) / RELEASE_DIR / aid / f"{aid}.ipynb"


def mirror_file(aid: str, root: Path = REPO_ROOT) -> Path:
    return Path(root) / MIRROR_DIR / f"{aid}.py"


# ----------------------------------------------------------------------------- cells
def cell_source(cell) -> str:
    """A cell's source as one string (notebook JSON may store it as a list of lines)."""
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def nbgrader_meta(cell) -> dict:
    """A cell's nbgrader metadata (``{}`` if none, or if a student's notebook has something else there)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nb = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nb if isinstance(nb, dict) else {}


def is_answer_cell(cell) -> bool:
    """An exercise's answer cell: code, ``solution: true``, not graded, ``grade_id`` = the function's name."""
    m = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(m.get("solution")) and not m.get("grade") \
        and isinstance(m.get("grade_id"), str)


def is_test_cell(cell) -> bool:
    """A test cell: code, ``grade: true`` (``grade_id`` ``test_<name>``, ``test_<name>_hidden``, ...)."""
    m = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(m.get("grade")) and isinstance(m.get("grade_id"), str)


def is_setup_cell(cell) -> bool:
    return cell.get("cell_type") == "code" and "setup" in ((cell.get("metadata") or {}).get("tags") or [])


def setup_indices(cells: list) -> set[int]:
    """The setup cells: tagged ``setup`` (CONTRIBUTING.md); in a notebook with no tags, the code cells
    before the first answer cell."""
    tagged = {i for i, c in enumerate(cells) if is_setup_cell(c)}
    if tagged:
        return tagged
    first_answer = next((i for i, c in enumerate(cells) if is_answer_cell(c)), len(cells))
    return {i for i, c in enumerate(cells[:first_answer]) if c.get("cell_type") == "code" and not nbgrader_meta(c).get("grade")}


def exercise_of(test_id: str, exercises: Iterable[str], previous: str | None = None) -> str | None:
    """The exercise a test cell belongs to: the longest exercise name ``n`` with ``test_id`` equal to
    ``test_<n>`` or starting with ``test_<n>_`` (``test_value_loss_hidden`` belongs to ``value_loss``,
    not to ``value``); failing that, ``previous``, the answer cell above the test cell."""
    owners = [n for n in exercises if test_id == f"test_{n}" or test_id.startswith(f"test_{n}_")]
    return max(owners, key=len) if owners else previous


def test_owners(cells: list, where: str = "notebook") -> dict[str, str]:
    """Grade id of every test cell -> the exercise it belongs to (``exercise_of``), in notebook order."""
    names = [nbgrader_meta(c)["grade_id"] for c in cells if is_answer_cell(c)]
    owners: dict[str, str] = {}
    previous = None
    for cell in cells:
        if is_answer_cell(cell):
            previous = nbgrader_meta(cell)["grade_id"]
        elif is_test_cell(cell):
            gid = nbgrader_meta(cell)["grade_id"]
            owner = exercise_of(gid, names, previous)
            if owner is None:
                raise ValueError(f"{where}: test cell {gid} belongs to no exercise")
            owners[gid] = owner
    return owners


def code_cells(nb: dict) -> list[tuple[int, str]]:
    """(index, source) of every code cell, with IPython magics and shell escapes turned into comments."""
    return [(i, MAGIC.sub(lambda m: f"{m.group(0)[:-1]}# (IPython) {m.group(0)[-1]}", cell_source(c)))
            for i, c in enumerate(nb["cells"]) if c.get("cell_type") == "code"]


def read_json(path: Path) -> dict:
    """A notebook as plain JSON (no nbformat: the benchmarks run without Jupyter)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the code mirror
MIRROR_HEADER = ("# The code cells of {source}, written by scripts/release.py: do not edit.\n"
                 "# Each `# %% cell N` line starts cell N of the notebook (counting from 0, markdown included).\n")


def mirror_text(aid: str, root: Path = REPO_ROOT) -> str:
    """The mirror of ``solutions/<aid>/<aid>.ipynb``: its code cells in the percent format (``# %%``)."""
    path = source_notebook(aid, root)
    nb = read_json(path)
    parts = [MIRROR_HEADER.format(source=path.relative_to(root).as_posix())]
    for i, source in code_cells(nb):
        meta = nbgrader_meta(nb["cells"][i])
        title = f"# %% cell {i}" + (f" {meta['grade_id']}" if meta.get("grade_id") else "")
        parts.append(f"{title}\n{source.rstrip()}\n" if source.strip() else f"{title}\n")
    return "\n\n".join(parts)


def write_mirror(aid: str, root: Path = REPO_ROOT) -> Path:
    path = mirror_file(aid, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(mirror_text(aid, root), encoding="utf-8")
    return path


def stale_mirrors(root: Path = REPO_ROOT) -> list[str]:
    """What is wrong with the committed mirrors (missing, out of date, left over), one line each; [] if nothing."""
    ids = assignment_ids(root)
    problems = []
    for aid in ids:
        path = mirror_file(aid, root).relative_to(root).as_posix()
        if not mirror_file(aid, root).is_file():
            problems.append(f"{path} is missing")
        elif mirror_file(aid, root).read_text(encoding="utf-8") != mirror_text(aid, root):
            problems.append(f"{path} is out of date with {source_notebook(aid, root).relative_to(root).as_posix()}")
    folder = Path(root) / MIRROR_DIR
    extra = sorted(p.name for p in folder.glob("*.py") if p.stem not in ids) if folder.is_dir() else []
    problems += [f"{MIRROR_DIR}/{name} belongs to no assignment (delete it)" for name in extra]
    return problems


# ----------------------------------------------------------------------------- the repository URL
# the badge's link: https://colab.research.google.com/github/<owner>/<repo>/blob/main/notebooks/<id>/<id>.ipynb
BADGE_LINK = re.compile(r"(https://colab\.research\.google\.com/github/)[^/\s)]+/[^/\s)]+(/blob/)")
# the Colab cell's line COURSE_REPO = os.environ.get("RLCOURSE_REPO_URL", "<url>")
COURSE_REPO_LINE = re.compile(r'^(COURSE_REPO = .*?")([a-z+]+://[^"]+)(".*)$', re.MULTILINE)


def github_slug(url: str) -> str:
    """``owner/name`` of a GitHub URL (the Colab badge opens notebooks from GitHub)."""
    m = re.match(r"https://github\.com/([^/\s]+/[^/\s]+?)(?:\.git)?/?$", url)
    if not m:
        raise ValueError(f"REPO_URL {url!r} is not a https://github.com/<owner>/<name> URL: Colab badges need one")
    return m.group(1)


def stamp_repo_url(nb: dict, url: str) -> bool:
    """Put ``url`` into a notebook's badge (first cell) and Colab cell (first code cell); True if anything changed."""
    slug = github_slug(url)
    changed = False
    for cell, pattern, replacement in [
        (nb["cells"][0], BADGE_LINK, rf"\g<1>{slug}\g<2>"),
        (next(c for c in nb["cells"] if c["cell_type"] == "code"), COURSE_REPO_LINE, rf"\g<1>{url}\g<3>"),
    ]:
        source = cell_source(cell)
        new, count = pattern.subn(replacement, source)
        if count == 0:
            raise ValueError(f"no {'badge' if pattern is BADGE_LINK else 'COURSE_REPO line'} to stamp in {cell['source']!r:.80}")
        if new != source:
            cell["source"] = new.splitlines(keepends=True)
            changed = True
    return changed


def stamp_sources(ids: list[str], url: str, root: Path = REPO_ROOT) -> list[Path]:
    """Stamp ``url`` into solutions/<id>/<id>.ipynb in place; returns the notebooks that changed."""
    changed = []
    for aid in ids:
        path = source_notebook(aid, root)
        nb = read_json(path)
        if stamp_repo_url(nb, url):
            path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
            changed.append(path)
    return changed


# ----------------------------------------------------------------------------- the student release
# what Jupyter writes for the ipykernel "python3" kernel (the language_info version is the learner's Python)
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3"}
# the two lines of STUB at any indentation, as nbgrader leaves them in an answer cell
STUB_LINES = re.compile(r"^(?P<indent>[ \t]*)" + r"\n(?P=indent)".join(map(re.escape, STUB.split("\n"))) + r"[ \t]*$",
                        re.MULTILINE)
STUB_MESSAGE = "{name}: replace this line with your code (between the docstring and the end of the cell)"


def interpreter_on_path() -> None:
    """Put this interpreter's folder (``.venv/bin``) first on PATH: nbgrader runs ``alembic`` and ``jupyter``
    from the PATH, and they must be this environment's."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir, path]) if path else bindir


def load_nbgrader_config():
    """The course's nbgrader configuration (autograder/nbgrader_config.py), as traitlets reads it."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader(NBGRADER_CONFIG.name, path=str(NBGRADER_CONFIG.parent)).load_config()


def release_notebooks(ids: list[str] | None = None, out: Path | None = None, root: Path = REPO_ROOT,
                      quiet: bool = True) -> list[Path]:
    """Write the student release of ``ids`` (default: all) of the course at ``root`` under ``out``
    (default: ``root/notebooks``) with nbgrader's GenerateAssignment, then ``finish_notebook``; returns the
    notebooks. nbgrader insists on a gradebook: it gets a throw-away one in a temporary folder."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    root = Path(root).resolve()
    ids = assignment_ids(root) if ids is None else list(ids)
    interpreter_on_path()
    out = Path(out or root / RELEASE_DIR).resolve()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="rlcourse-release-") as tmp:
        cfg = load_nbgrader_config()
        cfg.CourseDirectory.root = str(root)
        cfg.CourseDirectory.release_directory = str(out)  # absolute: os.path.join keeps it
        cfg.CourseDirectory.db_url = f"sqlite:///{Path(tmp) / 'gradebook.db'}"
        cfg.GenerateAssignment.force = True
        cfg.GenerateAssignment.create_assignment = True
        for aid in ids:
            cfg.CourseDirectory.assignment_id = aid
            converter = GenerateAssignment(coursedir=CourseDirectory(config=cfg), config=cfg)
            if quiet:
                converter.log.setLevel(logging.WARNING)
            target = out / aid
            if target.exists():
                shutil.rmtree(target)
            converter.start()
            nb = target / f"{aid}.ipynb"
            if not nb.is_file():
                raise RuntimeError(f"nbgrader did not write {nb}")
            finish_notebook(nb)
            written.append(nb)
    return written


def name_stubs(source: str, name: str) -> str:
    """nbgrader's bare stub, ``raise NotImplementedError()`` after ``# YOUR CODE HERE``, with a message naming ``name``."""
    message = STUB_MESSAGE.format(name=name)
    code_here = STUB.split("\n")[0]
    return STUB_LINES.sub(lambda m: f"{m['indent']}{code_here}\n{m['indent']}raise NotImplementedError({json.dumps(message)})",
                          source)


def finish_notebook(path: Path) -> None:
    """Two touches for the student: each stub names its exercise (the answer cell's ``grade_id``; the cell's
    nbgrader checksum is updated), and the notebook metadata is the one Jupyter writes (``KERNELSPEC``,
    ``LANGUAGE_INFO``), so that opening the notebook does not change it."""
    import nbformat
    from nbgrader.utils import compute_checksum

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if is_answer_cell(cell):
            meta = nbgrader_meta(cell)
            named = name_stubs(cell.source, meta["grade_id"])
            if named != cell.source:
                cell.source = named
                if "checksum" in meta:
                    meta["checksum"] = compute_checksum(cell)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    nbformat.write(nb, str(path))


def release(ids: list[str] | None = None, out: Path | None = None, repo_url: str | None = None,
            root: Path = REPO_ROOT, log=print) -> list[Path]:
    """The release step (``scripts/release.py``): stamp ``repo_url`` (default ``rlcourse.config.REPO_URL``)
    into the source notebooks, write the student release (``release_notebooks``) and the code mirrors
    (``write_mirror``). Returns the released notebooks."""
    from rlcourse.config import REPO_URL

    repo_url = repo_url or REPO_URL
    ids = assignment_ids(root) if not ids else list(ids)
    for path in stamp_sources(ids, repo_url, root):
        log(f"stamped {repo_url} into {path.relative_to(root)}")
    written = release_notebooks(ids, out, root)
    for nb in written:
        log(f"released {nb}")
    for aid in ids:
        log(f"mirrored {write_mirror(aid, root).relative_to(root)}")
    return written
