"""The grader's side of the student's process: start it in the sandbox, load the student's cells,
call their functions with plain values, and carry gradients back through ``torch.autograd``.

A test cell calls ``sft_loss(lp, m)`` as before; ``sft_loss`` is a ``RemoteFunction``. Its
arguments travel as data (autograder/sandboxed/protocol.py), the student's process runs the function and
returns data, and the grader rebuilds fresh tensors from it. When an argument requires grad, the
outputs are joined to the grader's autograd graph by ``_Bridge``: its backward sends the output
gradients to the student's process, which differentiates its own graph and returns the input
gradients. So ``loss.backward()`` and ``check_no_grad(advantages, ...)`` work in the test cell as
they would in the student's notebook, and every gradient is one the student's code computed.

A call that runs past its time limit, a student process that dies, or one that breaks the
protocol, raises in the test cell (the test fails, the exercise loses those points), is written to
the job's event log for the grader's report, and the process is started again for the next call.

A process that has been given a hidden test's inputs never runs a visible test: it is replaced right after
the hidden block (``end_hidden``), so nothing it kept can reach a message the student sees. In the sandbox the
replacement is forked by the sandbox's zygote (``restart``), which ends everything the old one left first.
"""
from __future__ import annotations

import builtins
import itertools
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import torch

from . import limits
from .sandboxed import protocol as P
from . import sandbox

# exception types rebuilt as themselves; any other type arrives as StudentError("Type: message")
PLAIN_EXCEPTIONS = {name: getattr(builtins, name) for name in (
    "ValueError", "TypeError", "IndexError", "KeyError", "LookupError", "RuntimeError", "NotImplementedError",
    "ZeroDivisionError", "ArithmeticError", "OverflowError", "FloatingPointError", "AssertionError",
    "AttributeError", "NameError", "UnboundLocalError", "MemoryError", "RecursionError", "TimeoutError",
    "StopIteration", "SyntaxError", "ImportError", "ModuleNotFoundError", "OSError", "PermissionError",
    "FileNotFoundError", "Exception")}


def out_of_memory(name: str, message: str) -> bool:
    """An error that says the student's process ran out of memory: Python's MemoryError, or torch's allocator
    failing (a RuntimeError "... can't allocate memory ..." on the CPU, OutOfMemoryError on a GPU)."""
    return name in ("MemoryError", "OutOfMemoryError") or (name == "RuntimeError" and "can't allocate memory" in message)


class StudentError(Exception):
    """An exception of a type of the student's own (its name and message are in the text)."""


class StudentTimeout(Exception):
    """The student's function did not return in time."""


class StudentCrashed(Exception):
    """The student's process ended while running their code."""


class StudentProtocolError(Exception):
    """The student's process sent something that is not a well-formed reply: evidence of tampering."""


def _replace(obj, new: dict):
    """``obj`` with the tensors whose id is in ``new`` replaced (structure rebuilt, not mutated)."""
    if isinstance(obj, torch.Tensor):
        return new.get(id(obj), obj)
    if isinstance(obj, list):
        return [_replace(v, new) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_replace(v, new) for v in obj)
    if isinstance(obj, dict):
        return {k: _replace(v, new) for k, v in obj.items()}
    return obj


class _Bridge(torch.autograd.Function):
    """Outputs computed in the student's process, joined to the grader's graph."""

    @staticmethod
    def forward(ctx, client, call_id, n_inputs, *tensors):
        ctx.client, ctx.call_id, ctx.n_inputs = client, call_id, n_inputs
        ctx.n_outputs = len(tensors) - n_inputs
        ctx.input_meta = [(t.shape, t.dtype) for t in tensors[:n_inputs]]
        return tuple(t.clone() for t in tensors[n_inputs:])

    @staticmethod
    def backward(ctx, *grad_outputs):
        grads = ctx.client.backward(ctx.call_id, list(grad_outputs), ctx.input_meta)
        return (None, None, None, *grads, *([None] * ctx.n_outputs))


class RemoteFunction:
    """A student's function, living in the student's process; called like the function itself."""

    __rlcourse_remote__ = True

    def __init__(self, client: "StudentProcess", name: str, defined: bool):
        self._client, self.__name__, self.__qualname__ = client, name, name
        self.__module__ = "__main__"
        self.defined = defined

    def __call__(self, *args, **kwargs):
        return self._client.call(self.__name__, args, kwargs)

    def __repr__(self):
        return f"<the student's function {self.__name__}>"


class StudentProcess:
    """One sandboxed student process serving one notebook's functions (restarted when it must be)."""

    def __init__(self, job: dict, events: Path | None = None):
        self.job = job
        self.events = events
        self.proc = None
        self.skip: list = []
        self.loaded = None
        self.reported: set = set()  # load errors already in the event log (a restart loads the cells again)
        self.ids = itertools.count()
        self.current = None  # exercise being called (for the event log)
        self.starts = 0
        self.hidden = False  # a hidden test is running: what it causes is reported without detail
        self.tainted = False  # this process has seen a hidden input: it never runs a visible test
        self.control = None  # the pipes to the sandbox's zygote (grader -> zygote, zygote -> grader)
        self.control_lines = b""
        self.respawns = 0  # fresh processes forked by the zygote (the rest were new sandboxes)

    # --------------------------------------------------------------------------- events
    def event(self, kind: str, detail: str, exercise: str | None = None) -> None:
        if self.hidden:  # the student's process chooses the details (an exit status, a forged reply): not shown
            detail = f"{(exercise or self.current or 'the student')}: {kind.replace('_', ' ')} during a hidden test"
        if self.events is not None:
            with open(self.events, "a") as fh:
                fh.write(json.dumps({"kind": kind, "exercise": exercise or self.current, "detail": detail[:300]}) + "\n")

    # --------------------------------------------------------------------------- process
    def start(self) -> None:
        """Start a new sandbox, and in it the student's process, and send it the cells (does not wait for them to
        run). In the sandbox the first process is a zygote (student_server.py ``Zygote``) that forks the
        student's process, and forks a fresh one when ``restart`` asks."""
        self.stop()
        self.starts += 1
        no_sandbox = self.job.get("no_sandbox", False)
        argv, env = sandbox.command(Path(self.job["sandbox_root"]), self.job.get("scratch_mb", limits.SCRATCH_MB),
                                    self.job.get("threads", 1), no_sandbox, self.job.get("uid", sandbox.NOBODY))
        theirs = ()
        if not no_sandbox:  # without a PID namespace of its own a zygote could not tell its processes from others
            (to_zygote, commands), (replies, from_zygote) = os.pipe(), os.pipe()
            argv, theirs = argv + ["--zygote", str(to_zygote), str(from_zygote)], (to_zygote, from_zygote)
            self.control = (commands, replies)
            os.set_blocking(replies, False)
        log = os.fdopen(os.open(self.job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        # without the sandbox the student's process works in its own empty HOME, never in the grader's workspace
        cwd = env["HOME"] if no_sandbox else self.job.get("cwd") or "/"
        memory_gb = self.job.get("memory_gb", limits.MEMORY_GB)
        self.cgroup = sandbox.Cgroup(f"{sandbox.Cgroup.PREFIX}{os.getpid()}-{self.starts}", int(memory_gb * 2**30),
                                     limits.PROCESSES)
        limit = sandbox.limiter(memory_gb, self.job.get("cpu_seconds", limits.CPU_SECONDS), cgroup=self.cgroup)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                         cwd=cwd, preexec_fn=limit, pass_fds=theirs)
        finally:
            log.close()
            for fd in theirs:
                os.close(fd)
        for f in (self.proc.stdin, self.proc.stdout):
            os.set_blocking(f.fileno(), False)
        self._load()

    def _load(self) -> None:
        """Send a new student's process its cells."""
        self.tainted = False
        self.loaded = None
        self._send({"op": "load", "prelude": self.job["prelude"], "cells": self.job["cells"],
                    "names": self.job["names"], "cell_seconds": self.job.get("cell_seconds", limits.CALL_SECONDS),
                    "load_seconds": self.job.get("load_seconds", limits.LOAD_SECONDS), "skip": self.skip},
                   time.time() + 30)

    def restart(self) -> None:
        """A fresh student's process, which shares nothing with the one before: forked anew by the sandbox's
        zygote, with every other process in the sandbox ended and its scratch emptied; where that cannot be
        done or checked, a new sandbox."""
        if self.proc is None or self.control is None or not self._respawn():
            self.start()

    def _respawn(self) -> bool:
        deadline = time.time() + 10
        try:
            os.write(self.control[0], b"respawn\n")
            if self._control_reply(deadline) != "clean" or not self._only_zygote_left():
                return False
            self._drain_replies()  # what the ended process wrote and nobody read
            os.write(self.control[0], b"fork\n")
            reply = self._control_reply(deadline)
            if not (reply and reply.startswith("child ") and reply[6:].isdigit()):
                return False
        except OSError:
            return False
        self.respawns += 1
        self._load()
        return True

    def _control_reply(self, deadline: float) -> str | None:
        """The zygote's next answer (``exited`` reports of the process it just ended are skipped); None if it
        gives none in time or something else."""
        while True:
            line = self._control_line(deadline)
            if line is None or not line.startswith("exited "):
                return line

    def _control_line(self, deadline: float) -> str | None:
        fd = self.control[1]
        while b"\n" not in self.control_lines:
            wait = deadline - time.time()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                return None
            try:
                chunk = os.read(fd, 256)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            self.control_lines += chunk
            if len(self.control_lines) > 4096:  # no answer is that long
                return None
        line, self.control_lines = self.control_lines.split(b"\n", 1)
        return line.decode(errors="replace")

    def _only_zygote_left(self) -> bool:
        """Checked by the grader itself, where the sandbox has a control group: nothing is left in it but bwrap,
        the namespace's init and the zygote."""
        pids = self.cgroup.processes()
        return pids is None or len(pids) <= 3

    def _drain_replies(self) -> None:
        fd = self.proc.stdout.fileno()
        try:
            while os.read(fd, 1 << 16):
                pass
        except BlockingIOError:
            pass

    def stop(self) -> None:
        if self.proc is not None:
            sandbox.end_group(self.proc)
            self.proc = None
            self.cgroup.remove()
            if self.job.get("no_sandbox"):  # the sandbox's scratch vanishes with it; without it, this stands in
                sandbox.clear_user_files(int(self.job.get("uid", sandbox.NOBODY)))
        if self.control is not None:
            for fd in self.control:
                os.close(fd)
            self.control, self.control_lines = None, b""

    def wait_loaded(self) -> dict:
        """Wait until the student's cells have run; a cell that hangs is skipped (the process restarts)."""
        if self.loaded is not None:
            return self.loaded
        limit = self.job.get("cell_seconds", limits.CALL_SECONDS) + 10  # the server's own alarm stops a cell first
        ready = False
        current_cell = None
        while True:
            try:
                msg = self._receive(time.time() + (limit if ready else 120))
            except (StudentTimeout, StudentCrashed, StudentProtocolError) as exc:
                hung = isinstance(exc, StudentTimeout)
                if current_cell is None or current_cell in self.skip:  # not even the set-up ran
                    self.event("error", f"the student's process did not start or stopped before their cells: {exc}")
                    self.loaded = {"names": {}, "errors": {}}
                    return self.loaded
                self.skip.append(current_cell)  # run the rest without the cell that hung or crashed
                self.event("cell_timeout" if hung else "crashed", f"{self.cell_label(current_cell)} "
                           f"{'did not finish while your notebook loaded' if hung else 'stopped the process'}"
                           f" ({type(exc).__name__}): skipped, the other cells ran", exercise="")
                self.restart()
                ready, current_cell = False, None
                continue
            event = msg.get("event") if isinstance(msg, dict) else None
            if event == "ready":
                ready = True
            elif event == "cell":
                current_cell = msg.get("id")
            elif event == "loaded" and isinstance(msg.get("names"), dict):
                self.loaded = {"names": {str(k): v is True for k, v in msg["names"].items()},
                               "errors": msg.get("errors") if isinstance(msg.get("errors"), dict) else {}}
                self.report_load_errors(self.loaded["errors"])
                return self.loaded
            else:
                self._protocol(f"unexpected message while loading: {str(msg)[:100]}")

    def cell_label(self, cell_id) -> str:
        """The student's cell as the notes name it: its exercise (grade id) and its place among the code cells."""
        cell = next((c for c in self.job.get("cells", []) if str(c.get("id")) == str(cell_id)), None)
        place = f"code cell {int(cell_id) + 1}" if str(cell_id).isdigit() else f"cell {str(cell_id)[:20]}"
        if cell is not None and cell.get("exercise"):
            return f"answer cell `{cell['exercise']}` ({place} of your notebook)"
        return f"{place} of your notebook (a cell you added)"

    def report_load_errors(self, errors: dict) -> None:
        """Each cell that failed while the student's process ran the notebook: an event naming the cell and the
        error type. An answer cell's is the student's (its time limit a ``cell_timeout``, running out of memory ``memory``,
        the rest ``load_error``); a cell the student added is a note only (``added_cell_error``: a scratch cell
        left broken is honest work, and Jupyter runs the cells after it too)."""
        answers = {str(c.get("id")) for c in self.job.get("cells", []) if c.get("exercise")}
        for cell_id, error in list(errors.items())[:50]:
            kind_name = str(error[0])[:80] if isinstance(error, list) and error else "Error"
            message = str(error[1])[:200] if isinstance(error, list) and len(error) > 1 else ""
            if (cell_id, kind_name) in self.reported:
                continue
            self.reported.add((cell_id, kind_name))
            if str(cell_id) not in answers:
                kind = "added_cell_error"
            else:
                kind = "memory" if out_of_memory(kind_name, message) else \
                    {"CellTimeout": "cell_timeout"}.get(kind_name, "load_error")
            what = "was not run: the cells before it used up the load time" if kind_name == "Skipped" else \
                f"raised {kind_name} while your notebook loaded{f' ({message})' if message else ''}"
            self.event(kind, f"{self.cell_label(cell_id)} {what}; the cells after it still ran", exercise="")

    # --------------------------------------------------------------------------- wire
    def _send(self, message, deadline: float) -> None:
        data = memoryview(P.frame(message))
        fd = self.proc.stdin.fileno()
        while data:
            left = deadline - time.time()
            if left <= 0:
                raise StudentTimeout("the student's process stopped reading")
            _, writable, _ = select.select([], [fd], [], left)
            if writable:
                try:
                    n = os.write(fd, data)
                except BrokenPipeError:
                    raise StudentCrashed(self._exit_status()) from None
                data = data[n:]

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        watch = [fd] + ([self.control[1]] if self.control else [])
        chunks, left = [], n
        while left:
            wait = deadline - time.time()
            if wait <= 0:
                raise StudentTimeout("no reply in time")
            readable, _, _ = select.select(watch, [], [], wait)
            if self.control and self.control[1] in readable and fd not in readable:
                line = self._control_line(time.time() + 1)
                if line is None:  # the zygote is gone, and with it the sandbox
                    raise StudentCrashed(self._exit_status())
                if line.startswith("exited ") and line[7:].lstrip("-").isdigit():
                    raise StudentCrashed(self._status_text(int(line[7:])))
                continue
            if fd not in readable:
                continue
            try:
                chunk = os.read(fd, min(left, 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                raise StudentCrashed(self._exit_status())
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _receive(self, deadline: float):
        """The next message of the student's process, within the limits of a reply (protocol.py)."""
        try:
            return P.read_message(lambda n: self._read(n, deadline), P.MAX_REPLY, P.MAX_ELEMENTS, P.MAX_DEPTH)
        except P.ProtocolError as exc:
            raise StudentProtocolError(str(exc)) from None

    def _exit_status(self) -> str:
        try:
            code = self.proc.wait(timeout=5) if self.proc else None
        except subprocess.TimeoutExpired:
            return "the student's process closed its side of the connection"
        return self._status_text(code)

    @staticmethod
    def _status_text(code: int | None) -> str:
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return f"the student's process was killed by {name}" + (
                " (CPU time limit)" if name == "SIGXCPU" else " (memory or resource limit?)" if name == "SIGKILL" else "")
        return f"the student's process exited (status {code})"

    def _protocol(self, detail: str):
        self.event("protocol", detail)
        self.restart()
        raise StudentProtocolError(f"the student's process broke the grading protocol: {detail}")

    def _request(self, message, seconds: float):
        """Send one request and return its reply, restarting the process after any failure."""
        if self.proc is None:
            self.start()
        self.wait_loaded()
        deadline = time.time() + seconds
        try:
            self._send(message, deadline)
            reply = self._receive(deadline)
        except StudentTimeout:
            self.event("timeout", f"{message.get('name') or self.current} did not return within {seconds:g} s")
            self.restart()
            raise StudentTimeout(f"`{self.current}` did not return within {seconds:g} s: is there an endless loop?") from None
        except StudentCrashed as exc:
            self.event("crashed", str(exc))
            self.restart()
            raise StudentCrashed(f"`{self.current}` stopped the Python process that runs it ({exc})") from None
        except StudentProtocolError as exc:
            self._protocol(str(exc))
        if not isinstance(reply, dict) or not ({"ok", "error"} & set(reply)):
            self._protocol(f"a reply without a result: {str(reply)[:100]}")
        return reply

    def _raise(self, error) -> None:
        try:
            name, message, where = (str(x) for x in error)
        except (TypeError, ValueError):
            self._protocol(f"a malformed error {str(error)[:100]}")
        if out_of_memory(name, message):
            self.event("memory", f"{self.current}: {name} (out of memory)")
        cls = PLAIN_EXCEPTIONS.get(name)
        exc = cls(message) if cls is not None else StudentError(f"{name}: {message}")
        exc.student_type = name
        if where.strip():
            exc.add_note("where, in your code:\n" + where.rstrip())
        raise exc

    # --------------------------------------------------------------------------- calls
    def function(self, name: str) -> RemoteFunction:
        if self.proc is None:
            self.start()
        return RemoteFunction(self, name, bool(self.wait_loaded()["names"].get(name)))

    def end_hidden(self) -> None:
        """After a hidden block: a process that saw its inputs is replaced now (it loads while the notebook goes
        on), so that nothing it kept (globals, files in its scratch) can reach a visible test's message."""
        self.hidden = False
        if self.tainted:
            self.restart()

    def _taint(self) -> None:
        if self.hidden:
            self.tainted = True
        elif self.tainted:
            self.restart()

    def call(self, name: str, args: tuple, kwargs: dict):
        self.current = name
        self._taint()
        args = list(args)
        inputs = P.leaves([args, kwargs], P.needs_grad)
        objects = []  # models and optimisers, sent as data by reference (protocol.describe)
        try:
            message = {"op": "call", "name": name, "call_id": next(self.ids), "args": P.encode(args, objects=objects),
                       "kwargs": P.encode(dict(kwargs), objects=objects)}
            if objects:
                message["objects"] = P.describe(objects)
        except P.Unencodable as exc:
            raise TypeError(f"the grader cannot send {exc} to `{name}`") from None
        reply = self._request(message, self.job.get("call_seconds", limits.CALL_SECONDS))
        if "error" in reply:
            self._raise(reply["error"])
        try:
            result = P.decode(reply["ok"])
            mutated = {k: P.decode(v) for k, v in (reply.get("mutated") or {}).items()}
            states = [P.decode(s) for s in (reply.get("generators") or [])]
            updated = reply.get("objects") or []
            if not isinstance(updated, list) or len(updated) != len(objects):
                raise P.ProtocolError("a reply without the state of every model and optimiser it was sent")
            for obj, state in zip(objects, updated):  # the update step's effect, as in Jupyter: in place
                P.load_state(obj, state)
        except P.ProtocolError as exc:
            self._protocol(str(exc))
        except ValueError as exc:  # the student's code changed a model's or optimiser's structure
            raise ValueError(f"after `{name}`, {exc}") from None
        # arguments the function changed in place (the contract forbids it; the tests may look)
        for key, value in mutated.items():
            target = args[int(key)] if key.isdigit() and int(key) < len(args) else kwargs.get(key)
            if isinstance(target, torch.Tensor) and isinstance(value, torch.Tensor) and \
                    value.shape == target.shape and value.dtype == target.dtype:
                with torch.no_grad():
                    target.copy_(value.to(target.device))
        for gen, state in zip(P.leaves([args, kwargs], P.is_generator), states):
            if isinstance(state, torch.Generator) and gen.device.type == "cpu":
                gen.set_state(state.get_state())
        outputs = P.leaves(result, P.needs_grad)
        if not (inputs and outputs):
            return result
        for t in outputs:
            t.requires_grad_(False)
        joined = _Bridge.apply(self, message["call_id"], len(inputs), *inputs, *outputs)
        return _replace(result, {id(t): j for t, j in zip(outputs, joined)})

    def backward(self, call_id: int, grad_outputs: list, input_meta: list) -> list:
        self._taint()
        grads = [g if g is not None else None for g in grad_outputs]
        reply = self._request({"op": "backward", "call_id": call_id, "grads": P.encode(grads)},
                              self.job.get("call_seconds", limits.CALL_SECONDS))
        if "error" in reply:
            self._raise(reply["error"])
        try:
            decoded = P.decode(reply["ok"])
        except P.ProtocolError as exc:
            self._protocol(str(exc))
        if not isinstance(decoded, list) or len(decoded) != len(input_meta):
            self._protocol("a backward reply of the wrong length")
        out = []
        for g, (shape, dtype) in zip(decoded, input_meta):
            if g is None:
                out.append(None)
            elif isinstance(g, torch.Tensor) and g.shape == shape:
                out.append(g.to(dtype))
            else:
                self._protocol("a gradient of the wrong shape")
        return out
