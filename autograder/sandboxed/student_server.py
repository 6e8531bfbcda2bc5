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


def main() -> None:
    # the protocol keeps stdin/stdout; the student's prints (fd 1 and 2) go to the log
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = CappedOutput(os.fdopen(1, "w", buffering=1, closefd=False))
    sys.stderr = CappedOutput(os.fdopen(2, "w", buffering=1, closefd=False))
    signal.signal(signal.SIGALRM, _alarm)
    cache, mine = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpl"), os.environ.get("MPLCONFIGDIR")
    if mine and os.path.isdir(cache) and not os.path.exists(mine):
        import shutil

        shutil.copytree(cache, mine)
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit():
        torch.set_num_threads(int(threads))
    P.send(wfd, {"event": "ready", "pid": os.getpid()})
    Server(rfd, wfd).serve()


if __name__ == "__main__":
    main()
