"""Run-wide switches: the reduced mode that tests and grading use, and the repository URL.

Reduced mode makes every training loop take only a few steps. It is on when nbgrader executes a
notebook (nbgrader sets ``NBGRADER_EXECUTION``) or when ``RLCOURSE_REDUCED=1``; ``RLCOURSE_REDUCED=0``
forces the full mode.
"""
from __future__ import annotations

import os

REPO_URL = "https://github.com/rl-for-llms/parrots-to-agents"


def reduced_mode() -> bool:
    flag = os.environ.get("RLCOURSE_REDUCED")
    if flag is not None and flag.strip() != "":
        return flag.strip().lower() not in ("0", "false", "no", "off")
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def pick(full, reduced):
    """``full`` normally, ``reduced`` in reduced mode: ``steps = pick(200, 3)``."""
    return reduced if reduced_mode() else full
