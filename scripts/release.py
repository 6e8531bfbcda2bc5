"""Generate the student release notebooks/<id>/<id>.ipynb from solutions/<id>/<id>.ipynb.

    python scripts/release.py                 # every assignment in solutions/, into notebooks/
    python scripts/release.py 02_policy_gradients
    python scripts/release.py --out /tmp/rel  # write the release somewhere else (the sync test does)

It runs nbgrader's GenerateAssignment converter with ``autograder/nbgrader_config.py`` (course
root = this repository, source ``solutions``, release ``notebooks``). nbgrader also insists on a
gradebook database: we give it a throw-away sqlite file in a temporary folder, so no
``gradebook.db`` is left in the repository. The output depends only on the source notebooks.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "autograder" / "nbgrader_config.py"


def assignment_ids(root: Path = ROOT) -> list[str]:
    """Every folder solutions/<id>/ that holds <id>.ipynb, sorted."""
    source = root / "solutions"
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file()) if source.is_dir() else []


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
            written.append(nb)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="assignment ids (default: every folder in solutions/)")
    parser.add_argument("--out", type=Path, default=None, help="release folder (default: notebooks/)")
    args = parser.parse_args(argv)
    for nb in release(args.ids or None, args.out):
        print(f"released {nb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
