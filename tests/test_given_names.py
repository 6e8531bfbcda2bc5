"""Names a notebook's setup gives the student, in the student's sandboxed process too (issue 26).

The sandbox's copy of ``rlcourse`` has no answer key and no training plumbing, so a setup line such as
``from rlcourse.agents import ABSTAIN`` or ``from rlcourse.reference import reinforce_loss`` fails there.
The grader gives those names to the student's process as code (``autograder.notebooks.given_names``):
constants as literals; helpers, classes and earlier notebooks' answer-key functions as source, with the
course definitions they use (never one that is or uses an exercise of the notebook).
Checked here: that code runs in a namespace without ``rlcourse``, defines the names, computes what the
course's own functions compute, never defines the notebook's exercises; and end to end, honest answers
that use such a name get full marks.
"""
from __future__ import annotations

import ast
import json
import shutil

import pytest
import torch

from autograder import notebooks as nbs
from autograder.sandbox import STUDENT_MODULES
from rlcourse import agents, reference
from coursetools.layout import REPO_ROOT, source_notebook

COURSE = nbs.load_course(REPO_ROOT)


def setup_of(src):
    return [nbs.source_text(src.nb.cells[i]) for i in sorted(nbs.setup_indices(src.nb.cells))]


def imported_from_outside_the_sandbox(setup):
    names = set()
    for node in ast.walk(ast.parse("\n".join(setup))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rlcourse.") \
                and node.module.split(".", 1)[1] not in STUDENT_MODULES:
            names |= {(node.module, a.name, a.asname or a.name) for a in node.names}
    return names


@pytest.mark.parametrize("assignment", sorted(COURSE))
def test_given_names_run_without_the_course_package(assignment):
    src = COURSE[assignment][0]
    code = nbs.given_names(setup_of(src), set(src.exercises))
    tree = ast.parse(code)
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                and "rlcourse" in ast.unparse(n)], "the given code must not import the course package"
    namespace = {}
    exec(compile(code, "<given>", "exec"), namespace)  # noqa: S102 - the course's own code
    assert not set(namespace) & set(src.exercises), "never one of this notebook's exercises"
    for module, name, as_name in imported_from_outside_the_sandbox(setup_of(src)):
        value = getattr(__import__(module, fromlist=[name]), name)
        if isinstance(value, (bool, int, float, str)):
            assert as_name in namespace, f"{assignment}: {module}.{name} is not given"
        elif set(nbs._course_definitions(value)) & set(src.exercises):
            assert as_name not in namespace, f"{assignment}: {module}.{name} uses an exercise, yet it is given"
        else:
            assert callable(namespace.get(as_name)), f"{assignment}: {module}.{name} is not given"


def test_given_names_compute_what_the_course_computes():
    given = {a: {} for a in ("03_actor_critic", "07_agents")}
    for assignment, namespace in given.items():
        src = COURSE[assignment][0]
        exec(compile(nbs.given_names(setup_of(src), set(src.exercises)), "<given>", "exec"), namespace)  # noqa: S102
    assert given["07_agents"]["ABSTAIN"] == agents.ABSTAIN
    torch.manual_seed(0)
    logps, returns, mask = torch.randn(3, 5), torch.randn(3, 5), (torch.rand(3, 5) > 0.3).float()
    assert torch.equal(given["03_actor_critic"]["reinforce_loss"](logps, returns, mask),
                       reference.reinforce_loss(logps, returns, mask))
    for text, answer in [(" 2 + 2 = 4. The answer is 4.", 4), (" The answer is -3.", 3), (" many", 1)]:
        assert given["07_agents"]["answer_reward"](text, answer) == reference.answer_reward(text, answer)
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    assert torch.equal(given["07_agents"]["kl_k3"](a, b), reference.kl_k3(a, b))


def test_given_helpers_compute_what_the_course_computes():
    """Helpers and classes of the plumbing, not only answer-key functions: 04's ``masked_whiten``, 05's
    ``trust_region_stats``, ``Rollout`` (a dataclass) and ``subset``, 07's ``abstains``."""
    from rlcourse import core, rollout

    given = {a: {} for a in ("04_ppo_rlhf", "05_grpo", "07_agents")}
    for assignment, namespace in given.items():
        src = COURSE[assignment][0]
        exec(compile(nbs.given_names(setup_of(src), set(src.exercises)), "<given>", "exec"), namespace)  # noqa: S102
    torch.manual_seed(0)
    x, mask = torch.randn(3, 5), (torch.rand(3, 5) > 0.3).float()
    assert torch.equal(given["04_ppo_rlhf"]["masked_whiten"](x, mask), core.masked_whiten(x, mask))
    old, new = torch.randn(3, 5), torch.randn(3, 5)
    assert given["05_grpo"]["trust_region_stats"](old, new, mask, 0.2) == core.trust_region_stats(old, new, mask, 0.2)
    fields = (["a", "b"], torch.tensor([[0, 5], [6, 7]]), torch.tensor([[0, 1], [1, 1]]), torch.tensor([[1, 2], [3, 0]]),
              torch.tensor([[1.0, 1.0], [1.0, 0.0]]), ["x", "y"])
    ours, course = given["05_grpo"]["subset"](given["05_grpo"]["Rollout"](*fields), [1]), rollout.subset(rollout.Rollout(*fields), [1])
    assert torch.equal(ours.input_ids, course.input_ids) and ours.texts == course.texts == ["y"]
    assert "answer_rewards" not in given["05_grpo"], "answer_rewards calls 05's exercise answer_reward: never given"
    for text in ["1 + 1 = 2. I don't know", "I don't know\nThe answer is 2.", ""]:
        assert given["07_agents"]["abstains"](text) == agents.abstains(text)


ABSTAIN_ANSWER = '''def abstain_reward(completion, answer, wrong_penalty=1.0):
    import re
    if abstains(completion, ABSTAIN):   # a helper and a constant the setup imports
        return 0.0
    numbers = re.findall(r"-?\\d+", completion)
    return 1.0 if numbers and int(numbers[-1]) == int(answer) else -float(wrong_penalty)
'''
ACTOR_CRITIC_ANSWER = '''def actor_critic_loss(token_logps, advantages, mask):
    return reinforce_loss(token_logps, advantages, mask)   # the same estimator, with advantages for returns
'''


@pytest.mark.slow
def test_answers_that_use_given_names_get_full_marks(tmp_path):
    from autograder.one import grade_one

    folder = tmp_path / "student"
    folder.mkdir()
    for assignment, exercise, answer in [("07_agents", "abstain_reward", ABSTAIN_ANSWER),
                                         ("03_actor_critic", "actor_critic_loss", ACTOR_CRITIC_ANSWER)]:
        nb = json.loads(source_notebook(assignment).read_text())
        cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == exercise)
        cell["source"] = answer
        (folder / f"{assignment}.ipynb").write_text(json.dumps(nb))
    result = grade_one(folder, tmp_path / "out", workers=2)
    rows = {n["assignment"]: n for n in result["notebooks"]}
    for assignment, exercise in [("07_agents", "abstain_reward"), ("03_actor_critic", "actor_critic_loss")]:
        row = rows[assignment]
        assert row["points"][exercise] == row["max_points"][exercise], (assignment, row["points"], row["notes"],
                                                                         (tmp_path / "out" / "grades.csv").read_text())
        assert row["total"] == row["max"], (assignment, row["points"], row["notes"])
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_the_grader_parses_python_only_under_its_lock():
    """CPython 3.11's ``ast.parse`` is not safe in two threads at once (``SystemError: AST constructor
    recursion depth mismatch``, seen once in CI grading 07 beside 03): the grader's threads parse through
    ``notebooks.parse``, which holds a lock. The student's own process (student_server) is single-threaded."""
    import re

    threaded = list((REPO_ROOT / "autograder").glob("*.py"))  # the sandboxed/ folder holds the student's side
    calls = {p.name: len(re.findall(r"\bast\.parse\(", p.read_text())) for p in threaded}
    assert calls.pop("notebooks.py") == 1, "notebooks.parse is the one place that calls ast.parse"
    assert not any(calls.values()), calls
