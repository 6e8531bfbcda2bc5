"""The author-written text of hidden tests gives away neither their inputs nor their expected values.

The grader runs a hidden block (between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` in a
test cell of solutions/) with ``rlcourse.checks.hidden_checks()`` on: a failing check then shows only
the text its author wrote, the ``message`` of ``check``/``fail`` and the ``what``/``hint`` of the
others. That text must not be computed from the test's data, so inside a hidden block:

* each such argument of a check is a plain string literal (no f-string placeholders, no variables,
  no ``+``/``%``/``.format``);
* no f-string interpolates anything, wherever it stands (a message built beforehand in a variable);
* an ``assert``'s message is a plain string literal too, and nothing is printed.

Whether the words themselves describe the case without quoting its numbers is a matter for review.
"""
from __future__ import annotations

import ast
import inspect

import pytest

import notebook_harness as H

from rlcourse import checks as C

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
AUTHOR_TEXT = {"message", "what", "hint", "name"}


def _author_params() -> dict[str, dict[str, int]]:
    """check function name -> {author-text parameter: its position}."""
    out = {}
    for fname, fn in vars(C).items():
        if fname.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != C.__name__:
            continue
        params = list(inspect.signature(fn).parameters)
        found = {p: i for i, p in enumerate(params) if p in AUTHOR_TEXT}
        if found:
            out[fname] = found
    return out


AUTHOR_PARAMS = _author_params()


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):  # an f-string without placeholders is a literal
        return all(isinstance(v, ast.Constant) for v in node.values)
    return False


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


def hidden_problems(source: str, where: str = "cell") -> list[str]:
    """What in the hidden block of ``source`` could show the test's data; [] when nothing."""
    lines = source.splitlines()
    starts = [i + 1 for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i + 1 for i, line in enumerate(lines) if line.strip() == END]
    if not starts:
        return []
    assert len(starts) == len(ends) == 1 and starts[0] < ends[0], f"{where}: unbalanced hidden markers"
    lo, hi = starts[0], ends[0]
    problems, reported = [], set()
    for node in ast.walk(ast.parse(source)):  # breadth first: a call comes before its arguments
        line = getattr(node, "lineno", 0)
        if not lo < line < hi:
            continue
        here = f"{where} line {line}"
        if id(node) in reported:
            continue
        if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.FormattedValue) for v in node.values):
            problems.append(f"{here}: an f-string interpolates {ast.unparse(node)[:80]}")
        elif isinstance(node, ast.Assert) and node.msg is not None and not _is_literal(node.msg):
            problems.append(f"{here}: an assert message that is not a plain string literal")
        elif isinstance(node, ast.Call):
            name = _call_name(node)
            if name == "print":
                problems.append(f"{here}: a hidden test prints")
            for param, pos in AUTHOR_PARAMS.get(name, {}).items():
                args = [kw.value for kw in node.keywords if kw.arg == param]
                if pos < len(node.args) and not any(isinstance(a, ast.Starred) for a in node.args[:pos + 1]):
                    args.append(node.args[pos])
                for arg in args:
                    if not _is_literal(arg):
                        reported.add(id(arg))
                        problems.append(f"{here}: {name}'s `{param}` is not a plain string literal: "
                                        f"{ast.unparse(arg)[:80]}")
    return problems


def _hidden_cells():
    for assignment in H.assignment_ids():
        for cell in H.load(H.notebook_path(assignment)).cells:
            if cell.cell_type == "code" and BEGIN in cell.source:
                yield assignment, H.nbgrader_meta(cell).get("grade_id", "?"), cell.source


HIDDEN = list(_hidden_cells())


def test_there_are_hidden_tests():
    assert HIDDEN, "no test cell in solutions/ has a hidden block"
    for assignment, gid, _ in HIDDEN:
        assert gid.startswith("test_"), f"{assignment}: a hidden block outside a test cell ({gid})"


def test_the_rule_knows_every_check():
    for name in ("check", "fail", "check_close", "check_float", "check_raises", "check_shape", "check_scalar",
                 "check_tensor", "check_no_grad", "check_own_function"):
        assert name in AUTHOR_PARAMS, name
    assert AUTHOR_PARAMS["check"] == {"message": 1}
    assert AUTHOR_PARAMS["check_close"] == {"what": 2, "hint": 3}


@pytest.mark.parametrize("snippet", [
    'check(x == 1, f"expected 1, got {x}")',
    'check_close(a, e, f"out for {inputs}")',
    'check_close(a, e, "out", hint=f"expected {e}")',
    'check_close(a, e, "out", "hint " + str(e))',
    'check_float(a, 1.5, "r", "expected %s" % e)',
    'check_raises(lambda: f(x), ValueError, "f({})".format(x))',
    'fail(msg)',
    'msg = f"got {x}"',
    'assert x == 1, f"got {x}"',
    'print(expected)',
    'checks.check(False, what)',
])
def test_the_rule_catches_leaky_messages(snippet):
    source = f"x = 1\n{BEGIN}\n{snippet}\n{END}\n"
    assert hidden_problems(source), f"not caught: {snippet}"


def test_the_rule_accepts_plain_messages_and_ignores_the_visible_part():
    source = ('check(y == 2, f"visible: got {y}")\n'
              f"{BEGIN}\n"
              'check(x == 1, "with tied labels, each should beat every label below it.")\n'
              'check_close(a, e, "the loss", hint="multiply by the mask " "before summing.")\n'
              'check_raises(lambda: f(x), ValueError, f"f with mismatched shapes")\n'
              'label = f"{x}"  # not a message, but still an interpolating f-string\n'
              f"{END}\n")
    problems = hidden_problems(source)
    assert len(problems) == 1 and "line 6" in problems[0], problems


@pytest.mark.parametrize("assignment,grade_id,source", HIDDEN, ids=[g for _, g, _ in HIDDEN])
def test_hidden_messages_do_not_interpolate(assignment, grade_id, source):
    problems = hidden_problems(source, f"{assignment}:{grade_id}")
    assert not problems, "hidden-test text that can show the test's data:\n  " + "\n  ".join(problems)
