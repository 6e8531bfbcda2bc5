"""Assertions for the notebooks' test cells that teach: what was expected, what came back, the likely mistake.

Every check raises ``AssertionError`` with a message a learner can act on; the test cells use
nothing else. Values are compared in float64 with plain arithmetic, so a check does not rest on
``torch.allclose`` or ``torch.testing``.

Hidden mode: the grader runs a test cell's hidden block inside ``with hidden_checks(): ...`` (or
between ``set_hidden(True)`` and ``set_hidden(False)`` when the block spans cells). There a failing
check says only what the test's author wrote: the ``message`` of ``check``/``fail``, the ``what`` and
``hint`` of the others, around fixed wording. Nothing computed from the arguments is shown: no
expected or actual values, no shapes, no dtypes or types, no module names, no text of an exception
the learner's code raised. Outside hidden mode the messages are as before, values included.
"""
from __future__ import annotations

import contextlib
import inspect
import math

import torch

_REFERENCE_MODULES = ("rlcourse.reference", "rlcourse")

# The mode lives in a dict that is changed in place, never rebound: whoever imported ``_MODE`` sees
# the current mode.
_MODE = {"hidden": False}


def is_hidden() -> bool:
    """True while failing checks hide every value computed from their arguments."""
    return bool(_MODE["hidden"])


def set_hidden(on: bool) -> bool:
    """Switch hidden mode on or off; returns the previous setting (to restore it later)."""
    previous = bool(_MODE["hidden"])
    _MODE["hidden"] = bool(on)
    return previous


@contextlib.contextmanager
def hidden_checks():
    """``with hidden_checks(): ...``: failing checks inside show only the author-written text.

    Nests, and restores the previous mode on exit, also when the block raises.
    """
    previous = set_hidden(True)
    try:
        yield
    finally:
        set_hidden(previous)


def _join(text: str, hint: str) -> str:
    return f"{text} {hint}".strip() if hint else text


def _fmt(x, limit: int = 8) -> str:
    if isinstance(x, torch.Tensor):
        flat = x.detach().double().flatten().tolist()
        shown = ", ".join(f"{v:.6g}" for v in flat[:limit]) + (", ..." if len(flat) > limit else "")
        return f"tensor of shape {tuple(x.shape)} [{shown}]"
    return repr(x)


def fail(message: str) -> None:
    raise AssertionError(message)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def check_tensor(x, what: str) -> None:
    if is_hidden():
        check(isinstance(x, torch.Tensor), f"{what} should be a torch.Tensor, but it is not.")
        return
    check(isinstance(x, torch.Tensor), f"{what} should be a torch.Tensor, but it is a {type(x).__name__}.")


def check_shape(x, shape, what: str) -> None:
    check_tensor(x, what)
    if is_hidden():
        check(tuple(x.shape) == tuple(shape), f"{what} has the wrong shape.")
        return
    check(tuple(x.shape) == tuple(shape),
          f"{what} should have shape {tuple(shape)}, but it has shape {tuple(x.shape)}.")


def check_scalar(x, what: str) -> None:
    check_tensor(x, what)
    if is_hidden():
        check(x.dim() == 0, f"{what} should be a scalar (0-dim tensor), but it is not: "
                            "did you forget to sum or average over every dimension?")
        return
    check(x.dim() == 0, f"{what} should be a scalar (0-dim tensor), but it has shape {tuple(x.shape)}: "
                        "did you forget to sum or average over every dimension?")


def max_abs_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    diff = (actual.detach().double().cpu() - torch.as_tensor(expected).detach().double().cpu()).abs()
    return float(diff.max()) if diff.numel() else 0.0


def check_close(actual, expected, what: str, hint: str = "", atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """``actual`` equals ``expected`` elementwise within ``atol + rtol*|expected|``, and is finite."""
    expected = torch.as_tensor(expected)
    check_tensor(actual, what)
    if is_hidden():
        _check_close_hidden(actual, expected, what, hint, atol, rtol)
        return
    check(tuple(actual.shape) == tuple(expected.shape),
          f"{what} should have shape {tuple(expected.shape)}, but it has shape {tuple(actual.shape)}.")
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    finite = bool(torch.isfinite(a).all()) if a.numel() else True
    check(finite, f"{what} contains NaN or inf: {_fmt(a)}. {hint}".strip())
    bad = (a - e).abs() > atol + rtol * e.abs()
    if bool(bad.any()):
        fail(f"{what} is wrong.\n  expected: {_fmt(e)}\n  got:      {_fmt(a)}\n"
             f"  largest error {max_abs_error(a, e):.3g}. {hint}".rstrip())


def _check_close_hidden(actual, expected, what: str, hint: str, atol: float, rtol: float) -> None:
    """``check_close`` with the same conditions, saying only ``what`` and ``hint``."""
    check(tuple(actual.shape) == tuple(expected.shape), f"{what} has the wrong shape.")
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    finite = bool(torch.isfinite(a).all()) if a.numel() else True
    check(finite, _join(f"{what} contains NaN or inf.", hint))
    bad = (a - e).abs() > atol + rtol * e.abs()
    check(not bool(bad.any()), _join(f"{what} is wrong.", hint))


def check_float(actual, expected: float, what: str, hint: str = "", tol: float = 1e-9) -> None:
    if is_hidden():
        check(isinstance(actual, (int, float)) and not isinstance(actual, bool),
              f"{what} should be a Python float, but it is not.")
        check(math.isclose(float(actual), expected, rel_tol=tol, abs_tol=tol), _join(f"{what} is wrong.", hint))
        return
    check(isinstance(actual, (int, float)) and not isinstance(actual, bool),
          f"{what} should be a Python float, but it is a {type(actual).__name__}.")
    check(math.isclose(float(actual), expected, rel_tol=tol, abs_tol=tol),
          f"{what}: expected {expected!r}, got {actual!r}. {hint}".rstrip())


def check_raises(fn, exception: type[BaseException], what: str) -> None:
    """``fn()`` raises ``exception`` (the contract: wrong input raises ValueError)."""
    if is_hidden():
        _check_raises_hidden(fn, exception, what)
        return
    try:
        fn()
    except exception:
        return
    except Exception as exc:  # noqa: BLE001 - we report what came instead
        fail(f"{what} should raise {exception.__name__}, but raised {type(exc).__name__}: {exc}")
    fail(f"{what} should raise {exception.__name__}, but returned normally.")


def _check_raises_hidden(fn, exception: type[BaseException], what: str) -> None:
    """``check_raises`` with the same condition; the other exception's type and text stay unshown."""
    raised_other = False
    try:
        fn()
    except exception:
        return
    except Exception:  # noqa: BLE001 - reported without its type or text
        raised_other = True
    if raised_other:  # raised after the except clause: no chained exception shows the learner's text
        fail(f"{what} should raise {exception.__name__}, but raised a different exception.")
    fail(f"{what} should raise {exception.__name__}, but returned normally.")


def check_no_grad(tensor: torch.Tensor, what: str) -> None:
    """A gradient that should not exist (e.g. into advantages or reference log-probs) is absent or zero."""
    grad = tensor.grad
    check(grad is None or float(grad.abs().max()) == 0.0,
          f"gradient flows into {what}: it should be a constant for the loss. Did you forget .detach()?")


def check_own_function(fn, name: str) -> None:
    """The function under test is defined in the notebook, not imported from the helper package."""
    check(callable(fn), f"`{name}` is not defined: run the cell that defines it first.")
    if getattr(type(fn), "__rlcourse_remote__", False):  # under grading: the function lives in the student's process
        check(fn.defined, f"`{name}` is not defined in your notebook: its answer cell should define it.")
        return
    module = getattr(fn, "__module__", "") or ""
    where = "the course's helper package" if is_hidden() else module
    check(not module.startswith(_REFERENCE_MODULES),
          f"`{name}` is imported from {where}: write your own implementation in the notebook.")
    code = getattr(fn, "__code__", None)
    check(code is not None, f"`{name}` should be a plain Python function defined in the notebook.")
    names = set(code.co_names)
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    check("reference" not in names and "rlcourse" not in names and "rlcourse.reference" not in source,
          f"`{name}` calls the course's reference implementation: write your own.")


# ----------------------------------------------------------------------------- cells that run the learner's code
class ExerciseMissing(Exception):
    """A cell needs an exercise that is not written yet. Jupyter shows only the message, no traceback."""

    def _render_traceback_(self):  # IPython's hook for exceptions that format themselves
        return [f"{type(self).__name__}: {self}"]


class needs_your_code:
    """Run a training or demo cell only as far as the learner's functions allow.

        with needs_your_code() as reinforce_run:
            ...the training loop, calling the learner's functions...
        ...the plot...

    When a function defined in the notebook raises ``NotImplementedError`` itself (an unanswered stub),
    the cell stops with one line, "This cell needs your `grpo_loss` ...", instead of a traceback,
    so the plot after the block is not drawn (figures opened inside the block are closed). A later cell that uses the results starts with
    ``reinforce_run.require()``: it stops with the same kind of message when that run did not finish.
    Any other error passes through untouched.
    """

    def __init__(self):
        self.missing: str | None = None
        self.finished = False
        self._namespace = None

    def __enter__(self):
        import sys

        self._namespace = sys._getframe(1).f_globals  # the notebook's namespace: where its functions live
        self.missing, self.finished = None, False
        self._figures = _open_figures()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.finished = True
            return False
        name = _stub_name(exc, tb, self._namespace) if issubclass(exc_type, NotImplementedError) else None
        if name is None:
            return False
        self.missing = name
        _close_figures(_open_figures() - self._figures)  # an empty figure would still be drawn
        raise ExerciseMissing(f"This cell needs your `{name}` (an exercise above): "
                              "run this cell again after you have implemented it.") from None

    def __bool__(self):
        return self.finished

    def require(self) -> None:
        """Stop the calling cell with a message unless the guarded block finished."""
        if self.finished:
            return
        why = f"which needs your `{self.missing}`" if self.missing else "which has not finished"
        raise ExerciseMissing(f"This cell needs the results of the run above, {why}: "
                              "run that cell again once it works, then this one.")


def _stub_name(exc, tb, namespace) -> str | None:
    """The notebook function that raised ``exc`` itself, or None when it came from anywhere else."""
    last = None
    while tb is not None:
        last = tb.tb_frame
        tb = tb.tb_next
    if last is None or last.f_globals is not namespace or last.f_code.co_name.startswith("<"):
        return None
    return last.f_code.co_name


def _open_figures() -> set:
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    return set(plt.get_fignums()) if plt else set()


def _close_figures(numbers) -> None:
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    for number in numbers:
        plt.close(number)
