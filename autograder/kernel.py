"""What the graded notebook's first cell installs in the grader's kernel.

The notebook that nbgrader executes (autograder/notebooks.py ``build``) holds the course's setup
and test cells; each answer cell is ``%%student <name>`` followed by the student's code, which the
kernel never runs: the cell magic binds ``<name>`` to the student's function in the sandboxed
process. Each hidden block of a test cell is one line, ``__rlcourse__.hidden("<grade id>", <k>)``,
that runs the hidden code (read from the job file, never shown in the notebook) with
``rlcourse.checks`` in hidden mode, so a failing hidden test reports which check failed and its
teaching message, never the hidden code, inputs or expected values.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import limits, remote, sandbox


class HiddenTestFailed(AssertionError):
    """A hidden test failed (the message says what to look at, not the test's data)."""


class Grading:
    def __init__(self, shell, job_file: Path):
        self.shell = shell
        self.job = json.loads(job_file.read_text())
        # the kernel's own bound: a group of its own (where the machine allows one), before its student starts
        bound = int(float(self.job.get("kernel_memory_gb", limits.KERNEL_MEMORY_GB)) * 2**30)
        self.cgroup = sandbox.Cgroup.confine_self(f"{sandbox.Cgroup.PREFIX}{os.getpid()}-kernel", bound)
        self.student = remote.StudentProcess(self.job, job_file.with_name("events.jsonl"))
        self.student.start()  # the sandbox starts while the setup cells run

    def bind(self, line: str, cell: str) -> None:
        """``%%student name``: the cell's body is the student's code (shown, run only in the sandbox)."""
        name = line.strip()
        if name:
            self.shell.user_ns[name] = self.student.function(name)

    def hidden(self, grade_id: str, index: int) -> None:
        from rlcourse import checks

        code = self.job["hidden"][grade_id][index]
        quiet = getattr(checks, "hidden_checks", None)
        self.student.hidden = True
        try:
            self._run_hidden(code, quiet)
        finally:
            self.student.end_hidden()

    def _run_hidden(self, code: str, quiet) -> None:
        try:
            if quiet is not None:
                with quiet():
                    exec(compile(code, "<hidden test>", "exec"), self.shell.user_ns)  # noqa: S102 - course code
            else:
                exec(compile(code, "<hidden test>", "exec"), self.shell.user_ns)  # noqa: S102
        except AssertionError as exc:
            if getattr(exc, "student_type", None) is not None:  # the student's own assert, on hidden inputs
                raise HiddenTestFailed("A hidden test failed: your code raised AssertionError "
                                       "on one of the hidden inputs.") from None
            message = str(exc) if quiet is not None else "a check failed"
            raise HiddenTestFailed(f"A hidden test failed: {message}") from None
        except remote.StudentTimeout as exc:
            raise HiddenTestFailed(f"A hidden test failed: {exc}") from None
        except remote.StudentCrashed:  # its exit status is the student's choice: not shown
            raise HiddenTestFailed("A hidden test failed: your code stopped the Python process that runs it "
                                   "on one of the hidden inputs.") from None
        except Exception as exc:  # noqa: BLE001 - the message may carry hidden values: name the type only
            kind = getattr(exc, "student_type", None)
            if kind is not None and kind not in remote.PLAIN_EXCEPTIONS:  # a class name can carry the inputs
                kind = "an exception of a class of its own"
            where = f"your code raised {kind}" if kind else f"the test stopped with {type(exc).__name__}"
            raise HiddenTestFailed(f"A hidden test failed: {where} on one of the hidden inputs.") from None

    def close(self) -> None:
        """Stop the student's process; record the peak memory of this kernel and of the student's process."""
        import resource

        self.student.stop()
        peak = {"kernel": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "kernel_bounded": self.cgroup.peak_mb(),  # what it allocated under its bound
                "student": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
        self.cgroup.leave()
        Path(self.job["log"]).with_name("peak.json").write_text(json.dumps(peak))


def start(shell) -> Grading:
    grading = Grading(shell, Path(os.environ["RLCOURSE_GRADING_JOB"]))
    shell.register_magic_function(grading.bind, magic_kind="cell", magic_name="student")
    import atexit

    atexit.register(grading.close)
    return grading
