"""Where the course's files live."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("RLCOURSE_DATA", REPO_ROOT / "data"))
TINY_MODEL_DIR = DATA_DIR / "tiny-gpt2"
REBUILD_HINT = "rebuild it with `python -m rlcourse.build` (data sets and tokenizer; add --pretrain for the model)"


def data_file(relative: str, data_dir: Path | None = None) -> Path:
    """A file under ``data/``, or a clear error naming it and how to rebuild it."""
    path = Path(data_dir or DATA_DIR) / relative
    if not path.exists():
        raise FileNotFoundError(f"missing course data file {path}: {REBUILD_HINT}")
    return path
