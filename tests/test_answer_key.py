"""The answer key (rlcourse.reference) passes every notebook's own tests, visible and hidden.

For each exercise of each solution notebook (whose test cells include the hidden blocks), the answer
cell is replaced by ``from rlcourse.reference import <name>`` and the test cells run as in
tests/test_notebooks.py. So any drift between rlcourse/reference.py and the notebooks' tests fails here.
tests/test_reference.py checks the reference against independent math instead (autograd, hand cases).
"""
from __future__ import annotations


import pytest

import notebook_harness as H

from rlcourse import reference
from rlcourse.checks import check

CASES = [(a, name) for a in H.assignment_ids() for name in H.exercises(H.load(H.notebook_path(a)))]


def reference_is_under_test(fn, name: str) -> None:
    """Stand-in for ``check_own_function``, which each test cell calls first.

    The real check rejects a function imported from the helper package, by design (students must write
    their own), so it would fail every cell here. The stand-in asks instead that the cell tests the
    reference function of that name, i.e. that the answer cell was really replaced.
    """
    check(fn is getattr(reference, name, None), f"`{name}` under test is not rlcourse.reference.{name}")


@pytest.mark.parametrize("assignment,name", CASES, ids=[f"{a}:{n}" for a, n in CASES])
def test_reference_passes_the_notebook_tests(assignment, name):
    assert hasattr(reference, name), f"rlcourse.reference has no {name} ({assignment})"
    results = H.run_exercise(H.notebook_path(assignment), name, answer_source=f"from rlcourse.reference import {name}",
                             overrides={"check_own_function": reference_is_under_test})
    assert results, f"{assignment}: {name} has no test cells"
    failed = [f"  {r.grade_id}: {r.error[:400]}" for r in results if not r.passed]
    assert not failed, f"rlcourse.reference.{name} fails the tests of {assignment}:\n" + "\n".join(failed)
