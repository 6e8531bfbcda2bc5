"""Word problems: answers checked by an independent reading of the question, splits, determinism."""
import random
import re

import pytest

from rlcourse import problems
from rlcourse.reference import answer_reward

WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}


def as_number(token: str) -> int:
    token = token.lower()
    return int(token) if token.isdigit() else WORDS[token]


def solve_by_reading(question: str) -> int:
    """Evaluate a question from its words alone (no use of the generator's arithmetic)."""
    sentences = [s.strip() for s in question.split(".") if s.strip()]
    *story, ask = sentences
    assert ask.startswith("How many")
    x = next(as_number(t) for t in re.findall(r"[A-Za-z]+|\d+", story[0]) if t.isdigit() or t.lower() in WORDS)
    for sentence in story[1:]:
        if sentence.startswith("Half"):
            assert x % 2 == 0, question
            x //= 2
        elif "doubles" in sentence:
            x *= 2
        elif "another one" in sentence:
            x -= 1
        elif m := re.search(r"(\w+) more", sentence):
            x += as_number(m.group(1))
        elif m := re.search(r"(\w+) of them", sentence):
            x -= as_number(m.group(1))
        else:
            raise AssertionError(f"unreadable sentence {sentence!r}")
    return x


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_answers_match_an_independent_reading(split):
    for p in problems.generate_problems(400, split, seed=3):
        assert solve_by_reading(p.question) == p.answer, p.question
        assert answer_reward(p.solution, p.answer) == 1.0


def test_shipped_files_are_correct_and_split():
    train, heldout = problems.load_problems("train"), problems.load_problems("heldout")
    assert len(train) >= 1000 and len(heldout) >= 200
    for p in train[:500] + heldout:
        assert solve_by_reading(p.question) == p.answer
    held = problems.heldout_templates()
    assert all(p.start not in problems.HELDOUT_STARTS and (p.scene, p.ops[:2]) not in held for p in train)
    assert all(p.start in problems.HELDOUT_STARTS or (p.scene, p.ops[:2]) in held for p in heldout)
    assert not {p.question for p in train} & {p.question for p in heldout}
    # held-out templates are unseen, but each of their phrases occurs in training
    assert any((p.scene, p.ops[:2]) in held for p in heldout)
    seen_phrases = {(p.scene, op) for p in train for op in p.ops}
    assert all((p.scene, op) in seen_phrases for p in heldout for op in p.ops)


def test_generators_are_deterministic():
    a = problems.generate_problems(50, "train", seed=7)
    b = problems.generate_problems(50, "train", seed=7)
    c = problems.generate_problems(50, "train", seed=8)
    assert a == b and a != c
    assert problems.problem_corpus(a, seed=1) == problems.problem_corpus(b, seed=1)


def _step_results(text: str) -> list[tuple[bool, int]]:
    """Each written step of a solution: (is its arithmetic right, its stated result)."""
    out = []
    for a, op, b, c in re.findall(r"(\d+) ([-+*/]) (\d+) = (-?\d+)", text):
        a, b, c = int(a), int(b), int(c)
        right = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
        out.append((right == c, c))
    return out


def test_noisy_corpus_is_wrong_at_the_stated_rate():
    ps = problems.generate_problems(2000, "train", seed=1)
    rng = random.Random(0)
    wrong = sum(answer_reward(problems.noisy_solution(p, rng), p.answer) == 0.0 for p in ps) / len(ps)
    expected = 1 - (1 - problems.NOISE) * (1 - problems.LAZY)  # the two mistakes are independent
    assert abs(wrong - expected) < 0.04
    # a noisy solution still reads as a worked solution ending in "The answer is N."
    assert re.fullmatch(r"( \d+ [-+*/] \d+ = \d+\.)+ The answer is \d+\.", problems.noisy_solution(ps[0], rng))


def test_a_slip_breaks_exactly_one_step():
    rng = random.Random(0)
    for p in problems.generate_problems(200, "train", seed=2):
        text = problems.noisy_solution(p, rng, noise=1.0, lazy=0.0)
        steps = _step_results(text)
        assert len(steps) == len(p.ops) and sum(not ok for ok, _ in steps) == 1, text
        assert text.endswith(f"The answer is {steps[-1][1]}.")  # the answer line follows the (wrong) work


def test_a_lazy_answer_repeats_the_result_before_the_last_step():
    rng = random.Random(0)
    for p in problems.generate_problems(200, "train", seed=3):
        text = problems.noisy_solution(p, rng, noise=0.0, lazy=1.0)
        steps = _step_results(text)
        assert all(ok for ok, _ in steps), text  # the work itself is right
        assert text.endswith(f"The answer is {steps[-2][1]}."), text
    clean = problems.noisy_solution(p, rng, noise=0.0, lazy=0.0)
    assert clean == p.solution


def test_bad_split_and_missing_file_are_explained(tmp_path):
    with pytest.raises(ValueError, match="split"):
        problems.generate_problems(1, "test")
    with pytest.raises(FileNotFoundError, match="rlcourse.build"):
        problems.load_problems("train", data_dir=tmp_path)


def test_stops_short_spots_the_habit_only():
    assert problems.stops_short(" 10 / 2 = 5. 5 - 1 = 4. The answer is 5.")
    assert not problems.stops_short(" 10 / 2 = 5. 5 - 1 = 4. The answer is 4.")
    assert not problems.stops_short(" 10 / 2 = 5. 5 - 1 = 4. The answer is 10.")  # wrong, but not this habit
    assert not problems.stops_short(" 10 / 2 = 5. The answer is 5.")  # one step: nothing to stop short of
    assert not problems.stops_short(" 4 * 2 = 8. 8 / 2 = 4. 4 - 1 = 3")  # no answer line
    rng = random.Random(0)
    ps = problems.generate_problems(300, "train", seed=4)
    lazy = [problems.noisy_solution(p, rng, noise=0.0, lazy=1.0) for p in ps]
    assert all(map(problems.stops_short, lazy))  # every last step changes the number, so the habit always shows
    assert not any(problems.stops_short(p.solution) for p in ps)
