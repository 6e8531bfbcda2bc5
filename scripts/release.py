"""Generate the student release notebooks/<id>/<id>.ipynb from solutions/<id>/<id>.ipynb.

    python scripts/release.py                 # every assignment in solutions/, into notebooks/
    python scripts/release.py 02_policy_gradients
    python scripts/release.py --out /tmp/rel  # write the release somewhere else (the sync test does)

First it stamps the course's repository URL, ``rlcourse.config.REPO_URL`` (one setting; a fork sets
its own), into every source notebook's Open-in-Colab badge and Colab cell (``COURSE_REPO``), so the
release carries it too. Then it runs nbgrader's GenerateAssignment converter with ``autograder/nbgrader_config.py`` (course
root = this repository, source ``solutions``, release ``notebooks``). nbgrader also insists on a
gradebook database: we give it a throw-away sqlite file in a temporary folder, so no
``gradebook.db`` is left in the repository. The output depends only on the source notebooks.

After nbgrader, two touches for the student (``finish_notebook``):
- each stub names its exercise: nbgrader's ``raise NotImplementedError()`` under ``# YOUR CODE HERE``
  becomes ``raise NotImplementedError("sft_loss: replace this line with your code (...)")``, the name
  being the answer cell's ``grade_id`` (the function's name); the cell's nbgrader checksum is updated;
- the notebook metadata is the one Jupyter writes (``KERNELSPEC``, ``LANGUAGE_INFO``), so that opening
  the notebook does not change it (rlcourse.workspace adds the Python version when it copies it).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "autograder" / "nbgrader_config.py"

# what Jupyter writes for the ipykernel "python3" kernel (the language_info version is the learner's Python)
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3"}
STUB = re.compile(r"^(?P<indent>[ \t]*)# YOUR CODE HERE\n(?P=indent)raise NotImplementedError\(\)[ \t]*$", re.MULTILINE)
STUB_MESSAGE = "{name}: replace this line with your code (between the docstring and the end of the cell)"


def assignment_ids(root: Path = ROOT) -> list[str]:
    """Every folder solutions/<id>/ that holds <id>.ipynb, sorted."""
    source = root / "solutions"
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file()) if source.is_dir() else []


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
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        new, count = pattern.subn(replacement, source)
        if count == 0:
            raise ValueError(f"no {'badge' if pattern is BADGE_LINK else 'COURSE_REPO line'} to stamp in {cell['source']!r:.80}")
        if new != source:
            cell["source"] = new.splitlines(keepends=True)
            changed = True
    return changed


def stamp_sources(ids: list[str], url: str) -> list[Path]:
    """Stamp ``url`` into solutions/<id>/<id>.ipynb in place; returns the notebooks that changed."""
    changed = []
    for assignment in ids:
        path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
        nb = json.loads(path.read_text(encoding="utf-8"))
        if stamp_repo_url(nb, url):
            path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
            changed.append(path)
    return changed


def load_config(release_dir: Path, db_path: Path):
    from traitlets.config import PyFileConfigLoader

    cfg = PyFileConfigLoader(CONFIG.name, path=str(CONFIG.parent)).load_config()
    cfg.CourseDirectory.root = str(ROOT)
    cfg.CourseDirectory.release_directory = str(release_dir)  # absolute: os.path.join keeps it
    cfg.CourseDirectory.db_url = f"sqlite:///{db_path}"
    cfg.GenerateAssignment.force = True
    cfg.GenerateAssignment.create_assignment = True
    return cfg


def release(ids: list[str] | None = None, out: Path | None = None, quiet: bool = True) -> list[Path]:
    """Write the release of ``ids`` (default: all) under ``out`` (default: notebooks/); returns the notebooks."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    ids = assignment_ids() if ids is None else list(ids)
    # nbgrader's gradebook runs the `alembic` command: find it next to this interpreter
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    out = Path(out or ROOT / "notebooks").resolve()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="rlcourse-release-") as tmp:
        cfg = load_config(out, Path(tmp) / "gradebook.db")
        for assignment in ids:
            cfg.CourseDirectory.assignment_id = assignment
            coursedir = CourseDirectory(config=cfg)
            converter = GenerateAssignment(coursedir=coursedir, config=cfg)
            if quiet:
                converter.log.setLevel(logging.WARNING)
            target = out / assignment
            if target.exists():
                shutil.rmtree(target)
            converter.start()
            nb = target / f"{assignment}.ipynb"
            if not nb.is_file():
                raise RuntimeError(f"nbgrader did not write {nb}")
            finish_notebook(nb)
            written.append(nb)
    return written


def name_stubs(source: str, name: str) -> str:
    """nbgrader's bare stub, ``raise NotImplementedError()`` after ``# YOUR CODE HERE``, with a message naming ``name``."""
    message = STUB_MESSAGE.format(name=name)
    return STUB.sub(lambda m: f"{m['indent']}# YOUR CODE HERE\n{m['indent']}raise NotImplementedError({json.dumps(message)})",
                    source)


def finish_notebook(path: Path) -> None:
    """Name the stubs after their exercise and set the metadata Jupyter writes (see the module docstring)."""
    import nbformat
    from nbgrader.utils import compute_checksum

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            named = name_stubs(cell.source, meta["grade_id"])
            if named != cell.source:
                cell.source = named
                if "checksum" in meta:
                    meta["checksum"] = compute_checksum(cell)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    nbformat.write(nb, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="assignment ids (default: every folder in solutions/)")
    parser.add_argument("--out", type=Path, default=None, help="release folder (default: notebooks/)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from rlcourse.config import REPO_URL

    for path in stamp_sources(args.ids or assignment_ids(), REPO_URL):
        print(f"stamped {REPO_URL} into {path.relative_to(ROOT)}")
    for nb in release(args.ids or None, args.out):
        print(f"released {nb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
