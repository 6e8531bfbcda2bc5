"""Run-wide switches: the reduced mode that tests and grading use, the repository URL.

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


class Report:
    """Prints a notebook's summary figures as ``[result] <notebook>_<metric> = <value>`` lines.

    The benchmarks collect these lines (``benchmarks/notebooks.py``, ``benchmarks/gpu_check.sh``).
    ``report = Report("05_grpo")`` in the setup cell, then ``report("heldout_accuracy_after", acc)``;
    ``report.lessons(policy)`` at the end prints how the run did on the notebook's lessons.
    """

    def __init__(self, notebook: str):
        self.notebook = notebook
        self.metrics: dict[str, float] = {}

    def __call__(self, metric: str, value, fmt: str = ".3f") -> None:
        shown = format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        print(f"[result] {self.notebook}_{metric} = {shown}")
        try:
            self.metrics[metric] = float(shown)   # as printed: what the ledger's runs recorded
        except (TypeError, ValueError):
            pass

    def lessons(self, policy=None) -> None:
        """Print how this run did on the notebook's lessons beside the results ledger of the policy's device
        (``rlcourse.lessons``): ``report.lessons(policy)`` after the last result."""
        from .lessons import print_lessons

        device = next(policy.parameters()).device.type if policy is not None else "cpu"
        print_lessons(self.notebook, self.metrics, "cuda" if device == "cuda" else "cpu", reduced_mode())
