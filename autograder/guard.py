"""Kernel-side guard, injected (as source text) into every notebook the grader executes.

The first injected cell calls ``install()``: it keeps references to everything the test cells rely
on (builtins, ``AssertionError``, the comparison functions of torch and numpy, the helper package's
``rlcourse.checks``, ``sys.excepthook``, IPython's exception handling), silences torch/transformers
warnings and caps how many bytes a cell may print. An injected cell before and after every test
cell calls ``verify()``: anything changed since ``install()`` is put back before the test runs and
reported on the cell's output as a ``RLCOURSE-GUARD:`` line, which the grader turns into a flag and a
zero for the exercise concerned. Student code never runs outside answer cells, and answer cells that
touch these objects are already rejected by the static scan (autograder/scan.py): this is the second
line of defence.
"""

MARKER = "RLCOURSE-GUARD:"
MAX_CELL_BYTES = 20_000


def install(ip, max_cell_bytes=MAX_CELL_BYTES):
    import builtins
    import importlib
    import sys
    import warnings

    warnings.filterwarnings("ignore")  # transformers: TRANSFORMERS_VERBOSITY=error is set by the worker

    marker = "RLCOURSE-GUARD:"  # == MARKER (the module's globals are deleted after install)
    watched = {}  # label -> (owner, attribute, original)
    missing = object()

    def _get(owner, name):
        # on a class, look at its own __dict__ (an inherited method is "missing", not a copy)
        return owner.__dict__.get(name, missing) if isinstance(owner, type) else getattr(owner, name, missing)

    def watch(owner, label, names):
        for name in names:
            if hasattr(owner, name):
                watched[f"{label}.{name}"] = (owner, name, _get(owner, name))

    import torch
    import torch.testing
    watch(torch, "torch", ["allclose", "isclose", "equal", "all", "any", "isfinite", "as_tensor", "tensor"])
    watch(torch.Tensor, "torch.Tensor", ["__eq__", "__lt__", "__gt__", "__le__", "__ge__", "__bool__",
                                         "abs", "max", "double", "detach", "cpu", "tolist", "all", "any"])
    watch(torch.testing, "torch.testing", ["assert_close"])
    try:
        import numpy
        import numpy.testing
        watch(numpy, "numpy", ["allclose", "isclose", "array_equal"])
        watch(numpy.testing, "numpy.testing", [n for n in dir(numpy.testing) if n.startswith("assert")])
    except ImportError:
        pass
    import math
    watch(math, "math", ["isclose", "isfinite", "isnan"])
    # ipykernel swaps builtins.input and sys.excepthook around every cell: not watched (an error in a
    # cell reaches nbgrader through the execute reply, whatever sys.excepthook does)
    watch(builtins, "builtins", [n for n in dir(builtins) if not n.startswith("_") and n not in ("input", "raw_input")])
    checks = importlib.import_module("rlcourse.checks")
    watch(checks, "rlcourse.checks", [n for n in vars(checks) if not n.startswith("__")])
    modules = {name: sys.modules[name] for name in ("rlcourse.checks", "torch", "torch.testing", "builtins")}
    events = {name: list(cbs) for name, cbs in ip.events.callbacks.items()}
    shell_attrs = {"showtraceback", "showsyntaxerror", "run_cell", "run_cell_async"}

    # cap what one cell may print: megabytes of output never reach the grader
    class _Cap:
        def __init__(self, stream):
            self._stream, self.used, self.cut = stream, 0, False

        def write(self, text):
            if self.used >= max_cell_bytes:
                if not self.cut:
                    self.cut = True
                    self._stream.write(f"\n... output truncated by the grader ({max_cell_bytes} bytes per cell) ...\n")
                return len(text)
            room = max_cell_bytes - self.used
            self.used += len(text)
            return self._stream.write(text[:room])

        def __getattr__(self, name):
            return getattr(self._stream, name)

    cap_out, cap_err = _Cap(sys.stdout), _Cap(sys.stderr)
    sys.stdout, sys.stderr = cap_out, cap_err
    watched["sys.stdout"] = (sys, "stdout", cap_out)
    watched["sys.stderr"] = (sys, "stderr", cap_err)

    def _reset_caps(*args, **kwargs):
        cap_out.used = cap_err.used = 0
        cap_out.cut = cap_err.cut = False
    ip.events.register("pre_run_cell", _reset_caps)
    events = {name: list(cbs) for name, cbs in ip.events.callbacks.items()}
    custom_exc = (ip.custom_exceptions, ip.CustomTB)

    protected = {}  # notebook globals bound by the course's own cells (setup imports, helpers)

    def protect(names):
        # after each of the course's own cells: what it registered (e.g. matplotlib's inline
        # backend adds a post_execute callback on the first plot) is the course's, not tampering
        events.clear()
        events.update({name: list(cbs) for name, cbs in ip.events.callbacks.items()})
        for name in names:
            if name in ip.user_ns:
                protected[name] = ip.user_ns[name]

    def verify(where="", protect_names=()):
        if where == "protect":
            protect(protect_names)
            return []
        found = []
        for name, value in protected.items():
            if ip.user_ns.get(name, missing) is not value:
                found.append(f"notebook name {name}")
                ip.user_ns[name] = value
        for label, (owner, name, original) in watched.items():
            try:
                current = _get(owner, name)
            except Exception:  # noqa: BLE001
                current = None
            if current is not original:
                found.append(label)
                try:
                    if original is missing:
                        delattr(owner, name)
                    else:
                        setattr(owner, name, original)
                except Exception:  # noqa: BLE001
                    pass
        for name, module in modules.items():
            if sys.modules.get(name) is not module:
                found.append(f"sys.modules[{name!r}]")
                sys.modules[name] = module
        for attr in shell_attrs:
            if attr in ip.__dict__:
                found.append(f"IPython shell.{attr}")
                del ip.__dict__[attr]
        if (ip.custom_exceptions, ip.CustomTB) != custom_exc:
            found.append("IPython set_custom_exc")
            ip.custom_exceptions, ip.CustomTB = custom_exc
        for name, cbs in ip.events.callbacks.items():
            extra = [cb for cb in cbs if cb not in events.get(name, [])]
            for cb in extra:
                found.append(f"IPython event {name}")
                cbs.remove(cb)
        if found:
            sys.__stdout__.flush()
            cap_out._stream.write(f"{marker} {where} {', '.join(sorted(set(found)))}\n")
        return found

    return verify
