"""Release: notebooks/<id>/<id>.ipynb and solutions/_code/<id>.py from solutions/<id>/<id>.ipynb.

    .venv/bin/python scripts/release.py                 # every assignment in solutions/
    .venv/bin/python scripts/release.py 02_policy_gradients
    .venv/bin/python scripts/release.py --out /tmp/rel  # write the student release somewhere else

The step itself is ``coursetools.layout.release``: it stamps the course's repository URL
(``rlcourse.config.REPO_URL``) into the source notebooks' badge and Colab cell, writes the student
release with nbgrader (``autograder/nbgrader_config.py``; stubs named after their exercise, the
metadata Jupyter writes) and the code mirrors that the linters and duplicate finders read.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from coursetools import layout  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="assignment ids (default: every folder in solutions/)")
    parser.add_argument("--out", type=Path, default=None, help="release folder (default: notebooks/)")
    args = parser.parse_args(argv)
    layout.release(args.ids or None, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
