"""The student's process: runs the student's cells and answers calls to their functions by name.

Started by the grader inside the sandbox (autograder/sandbox.py) as ``python student_server.py``,
with the messages of autograder/sandboxed/protocol.py on its stdin and stdout; the student's own prints go to
the log on stderr. It runs, in order:

1. the course's setup cells, statement by statement (a statement that fails, such as an import of
   a module the sandbox does not have, is skipped), so that answers find ``torch``, ``F``, ...;
2. the student's cells (answer cells and the cells they added) in notebook order, in an IPython
   shell, so magics such as ``%timeit`` work as in Jupyter; each has a time limit;

then serves ``call`` (run one function on plain arguments) and ``backward`` (gradients of a
previous call's tensor outputs with respect to its tensor inputs). Nothing here decides a grade:
the grader treats every reply as untrusted data.
"""
from __future__ import annotations

import ast
import os
import signal
import sys
import time
import traceback

import protocol as P

CALLS_KEPT = 64  # graphs of recent calls kept for backward


class CellTimeout(Exception):
    pass


class CappedOutput:
    """The student's prints, kept up to a limit and then dropped (a chatty loop is no crime)."""

    def __init__(self, stream, limit: int = 2 * 2**20):
        self.stream, self.left = stream, limit

    def write(self, text) -> int:
        if self.left > 0:
            piece = text[: self.left]
            self.left -= len(piece)
            try:
                self.stream.write(piece)
            except OSError:  # the log is at its file-size limit (earlier processes filled it): drop the rest
                self.left = 0
        return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError:
            self.left = 0

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _alarm(signum, frame):
    raise CellTimeout("this cell ran past its time limit")


def _same(a, b) -> bool:
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    return torch.equal(a, b)


def _error(exc: BaseException) -> dict:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.endswith("student_server.py")]
    where = "".join(traceback.format_list(frames[-3:]))
    return {"error": [type(exc).__name__, str(exc)[:2000], where[-2000:]]}


class Server:
    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd = rfd, wfd
        self.shell = None
        self.calls: dict[int, tuple] = {}

    # --------------------------------------------------------------------------- loading
    def load(self, msg) -> dict:
        from IPython.core.interactiveshell import InteractiveShell

        self.shell = InteractiveShell.instance()
        ns = self.shell.user_ns
        for source in msg.get("prelude", []):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for stmt in tree.body:
                try:
                    exec(compile(ast.Module([stmt], []), "<course setup>", "exec"), ns)  # noqa: S102
                except BaseException:  # noqa: BLE001 - e.g. the answer key is not in the sandbox
                    pass
        errors = {}
        seconds = float(msg.get("cell_seconds", 60))
        budget = time.time() + float(msg.get("load_seconds", 90))
        skip = set(msg.get("skip", []))
        for cell in msg.get("cells", []):
            if cell["id"] in skip:
                continue
            if cell.get("exercise") is None and time.time() > budget:  # answer cells always run
                errors[str(cell["id"])] = ["Skipped", "the student's cells ran past their time budget"]
                continue
            P.send(self.wfd, {"event": "cell", "id": cell["id"]})
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                result = self.shell.run_cell(cell["source"], store_history=False)
            except CellTimeout as exc:  # raised outside the cell's own code
                result = None
                errors[str(cell["id"])] = ["CellTimeout", str(exc)]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if result is not None and not result.success:
                exc = result.error_in_exec or result.error_before_exec
                errors[str(cell["id"])] = [type(exc).__name__, str(exc)[:500]]
        self.load_errors = errors
        names = {n: callable(ns.get(n)) for n in msg.get("names", [])}
        return {"event": "loaded", "errors": errors, "names": names}

    # --------------------------------------------------------------------------- calls
    def call(self, msg) -> dict:
        import torch

        fn = self.shell.user_ns.get(msg["name"]) if self.shell else None
        if not callable(fn):
            failed = " (a cell of your notebook raised an error while it loaded: see the notes)" \
                if getattr(self, "load_errors", None) else ""
            return {"error": ["NameError", f"`{msg['name']}` is not defined in your notebook{failed}", ""]}
        try:
            objects = P.build(msg["objects"]) if msg.get("objects") else []
        except BaseException as exc:  # noqa: BLE001 - reported as this call's error
            return {"error": ["RuntimeError", f"the models and optimisers sent to `{msg['name']}` could not be "
                              f"rebuilt ({type(exc).__name__}: {str(exc)[:300]})", ""]}
        args, kwargs = P.decode(msg["args"], objects=objects), P.decode(msg["kwargs"], objects=objects)
        inputs = P.leaves([args, kwargs], P.needs_grad)
        generators = P.leaves([args, kwargs], P.is_generator)
        plain = {i: a.clone() for i, a in enumerate(args) if isinstance(a, torch.Tensor) and not a.requires_grad}
        plain.update({k: a.clone() for k, a in kwargs.items() if isinstance(a, torch.Tensor) and not a.requires_grad})
        try:
            with torch.enable_grad():
                result = fn(*args, **kwargs)
            encoded = P.encode(result)
        except P.Unencodable as exc:
            return {"error": ["TypeError", f"`{msg['name']}` returned {exc}, which the grader cannot check: "
                              "return tensors, numbers, strings, lists or tuples", ""]}
        except BaseException as exc:  # noqa: BLE001 - the student's exception is the answer
            return _error(exc)
        outputs = P.leaves(result, P.needs_grad)
        if inputs and outputs:
            self.calls[msg["call_id"]] = (inputs, outputs)
            while len(self.calls) > CALLS_KEPT:
                self.calls.pop(next(iter(self.calls)))
        mutated = {}
        for key, before in plain.items():
            after = args[key] if isinstance(key, int) else kwargs[key]
            if not _same(after, before):
                mutated[str(key)] = P.encode(after)
        return {"ok": encoded, "mutated": mutated, "generators": [P.encode(g) for g in generators],
                "objects": [P.state_of(o) for o in objects]}

    def backward(self, msg) -> dict:
        import torch

        saved = self.calls.get(msg["call_id"])
        if saved is None:
            return {"error": ["RuntimeError", "backward through a call whose graph is gone", ""]}
        inputs, outputs = saved
        grads_out = P.decode(msg["grads"])
        try:
            grads = torch.autograd.grad(outputs, inputs, grads_out, allow_unused=True, retain_graph=True)
            return {"ok": [None if g is None else P.encode(g) for g in grads]}
        except BaseException as exc:  # noqa: BLE001
            return _error(exc)

    def serve(self) -> None:
        while True:
            try:
                msg = P.receive(self.rfd)
            except EOFError:
                return
            op = msg.get("op")
            if op == "load":
                reply = self.load(msg)
            elif op == "call":
                reply = self.call(msg)
            elif op == "backward":
                reply = self.backward(msg)
            elif op == "ping":
                reply = {"ok": None}
            else:
                reply = {"error": ["ValueError", f"unknown op {op!r}", ""]}
            P.send(self.wfd, reply)


def serve_student() -> None:
    """The student's process proper: the protocol on stdin and stdout, the student's prints to the log."""
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = CappedOutput(os.fdopen(1, "w", buffering=1, closefd=False))
    sys.stderr = CappedOutput(os.fdopen(2, "w", buffering=1, closefd=False))
    signal.signal(signal.SIGALRM, _alarm)
    _font_cache()
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit():
        torch.set_num_threads(int(threads))
    P.send(wfd, {"event": "ready", "pid": os.getpid()})
    Server(rfd, wfd).serve()


def _font_cache() -> None:
    """matplotlib's font list, built by the grader (sandbox.prepare_root), where matplotlib looks for it."""
    cache, mine = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpl"), os.environ.get("MPLCONFIGDIR")
    if mine and os.path.isdir(cache) and not os.path.exists(mine):
        import shutil

        shutil.copytree(cache, mine)


def _prctl(option: int, value: int) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36


class Zygote:
    """``student_server.py --zygote IN OUT``: the sandbox's first process. It imports torch, never runs a line of
    the student's code, and forks the student's process (``serve_student``). When the grader needs a fresh one
    (after a hidden test, a time-out, a crash or a protocol break) it ends every other process in the sandbox,
    empties the scratch (``/tmp``, ``/dev/shm``) and the unread input, and forks again: the new process starts
    from this one's memory, which no student's code has touched, so it shares nothing with the one before, as a
    new sandbox would not, at a fraction of the cost (no interpreter to start, no torch to import).

    The grader's commands arrive one per line on the pipe IN: ``respawn`` (end and clean up; answered ``clean``
    or ``unclean``) and ``fork`` (answered ``child PID``, or ``no child``); ``exited CODE`` says the student's
    process ended of itself. The student's processes cannot reach it: it is not dumpable (no ptrace, no
    /proc/PID/mem, no look at its file descriptors), ignores every signal it can ignore, closes the command pipes
    in each child before the child runs anything, and imports nothing once a child exists (a module planted in
    the scratch is never loaded into it). Whatever it answers, the grader checks what it can for itself (the processes left in the
    sandbox's control group)."""

    SCRATCH = ("/tmp", "/dev/shm")

    def __init__(self, ctl_in: int, ctl_out: int):
        self.ctl_in, self.ctl_out = ctl_in, ctl_out
        self.child: int | None = None
        self.pending = b""

    def run(self) -> None:
        import select
        import shutil  # noqa: F401 - imported now: nothing is imported once a student's process exists

        _prctl(PR_SET_DUMPABLE, 0)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the student's processes come here, to be reaped and counted
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        self.handlers = {}
        for sig in signal.valid_signals():
            if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
                continue
            try:
                self.handlers[sig] = signal.signal(sig, signal.SIG_IGN)
            except (OSError, ValueError, RuntimeError):
                pass
        signal.set_wakeup_fd(self.wake_w)
        self.handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        self.fork()
        while True:
            ready = select.select([self.ctl_in, self.wake_r], [], [])[0]
            if self.wake_r in ready:
                self._drain(self.wake_r)
                code = self.reap()
                if code is not None:
                    self.say(f"exited {code}")
            if self.ctl_in in ready:
                data = os.read(self.ctl_in, 4096)
                if not data:  # the grader is gone
                    os._exit(0)
                self.pending += data
                while b"\n" in self.pending:
                    line, self.pending = self.pending.split(b"\n", 1)
                    if line == b"respawn":
                        self.say("clean" if self.clean() else "unclean")
                    elif line == b"fork":
                        self.fork()

    def say(self, line: str) -> None:
        os.write(self.ctl_out, line.encode() + b"\n")

    def fork(self) -> None:
        try:
            pid = os.fork()
        except OSError:  # out of processes or memory: the grader starts a new sandbox
            self.say("no child")
            return
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                for fd in (self.ctl_in, self.ctl_out, self.wake_r, self.wake_w):
                    os.close(fd)
                for sig, handler in self.handlers.items():
                    signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
                _prctl(PR_SET_DUMPABLE, 1)  # the student's process is as it would be without a zygote
                serve_student()
            finally:
                os._exit(0)
        self.child = pid
        self.say(f"child {pid}")

    def reap(self) -> int | None:
        """Collect every ended child; the exit code of the student's process if it was among them."""
        found = None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return found
            if pid == 0:
                return found
            if pid == self.child:
                self.child, found = None, os.waitstatus_to_exitcode(status)

    def clean(self) -> bool:
        """End every process in the sandbox but this one (and the sandbox's init), empty the scratch and the
        unread input; False when something could not be removed (the grader then starts a new sandbox)."""
        import shutil

        if os.getppid() != 1:  # not the first process of a PID namespace of its own: no sandbox to clean
            return False
        me = os.getpid()
        for _ in range(400):
            try:
                os.kill(-1, signal.SIGKILL)  # every process this user has here, except this one
            except ProcessLookupError:
                pass
            self.child = None
            self.reap()
            if not [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]:
                break
            time.sleep(0.005)
        else:
            return False
        self._drain(0)
        for top in self.SCRATCH:
            for path in self._own_entries(top):
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        os.chmod(path, 0o700)
                        for folder, dirs, _ in os.walk(path):  # folders the student made unreadable
                            for d in dirs:
                                if not os.path.islink(os.path.join(folder, d)):
                                    os.chmod(os.path.join(folder, d), 0o700)
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                except OSError:
                    pass
            if self._own_entries(top):
                return False
        return True

    @staticmethod
    def _own_entries(top: str) -> list[str]:
        """What this user has in a scratch folder. The rest is the sandbox's own (bwrap made it as root: the
        folders above a Python environment that lives under /tmp, bound read-only), where nobody here can write."""
        me, found = os.getuid(), []
        for entry in os.listdir(top) if os.path.isdir(top) else []:
            path = os.path.join(top, entry)
            try:
                if os.lstat(path).st_uid == me:
                    found.append(path)
            except OSError:
                pass
        return found

    @staticmethod
    def _drain(fd: int) -> None:
        blocking = os.get_blocking(fd)
        os.set_blocking(fd, False)
        try:
            while os.read(fd, 1 << 16):
                pass
        except BlockingIOError:
            pass
        finally:
            os.set_blocking(fd, blocking)


def main(argv: list[str]) -> None:
    import torch  # noqa: F401 - before anything else: the zygote's children find it imported

    if argv[:1] == ["--zygote"] and len(argv) == 3:
        # imported once, for every child: the shell that runs the cells, and what the course's setup imports
        from IPython.core.interactiveshell import InteractiveShell  # noqa: F401

        _font_cache()
        try:
            import matplotlib.pyplot  # noqa: F401
        except ImportError:
            pass
        Zygote(int(argv[1]), int(argv[2])).run()
    else:
        serve_student()


if __name__ == "__main__":
    main(sys.argv[1:])
