"""Word problems with verifiable integer answers, in the lecture's style.

    Question: Ten students come to lecture. Half of them leave out of boredom. Then another one
    falls asleep. How many students are still paying attention?
    Answer: 10 / 2 = 5. 5 - 1 = 4. The answer is 4.

A *template* is a scene (students, cups, birds, ...) with a sequence of operations. The held-out
split holds templates never seen in training (a scene with an operation order it never had) and
start numbers never seen as a start. Every phrase still occurs in training, so the held-out set
asks the model to compose what it knows.

The pre-training corpus is noisy on purpose, in two ways. In ``NOISE`` of its solutions one step's
result is off (a slip, different every time); in ``LAZY`` of them the answer line repeats the result
before the last step (a habit, the same every time). The pre-trained model copies both, so it is
right only some of the time, and RL has room to improve it: the habit is one behaviour that a reward
can remove everywhere at once; the slips are scattered, a different step in every answer.
"""
from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

OPS = ("add", "sub", "half", "double", "one_less")
NOISE = 0.1   # share of corpus solutions with an arithmetic slip in one step
LAZY = 0.5    # share of corpus answers that stop one step short
MAX_VALUE = 60
HELDOUT_STARTS = frozenset({7, 13, 18, 23})
NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                "fifteen sixteen seventeen eighteen nineteen twenty").split()

# scene: setup, one phrase per operation, question. {n}/{k} are numbers.
SCENES = {
    "lecture": ("{n} students come to lecture.", {
        "add": "{k} more students arrive late.", "sub": "{k} of them leave early.",
        "half": "Half of them leave out of boredom.", "double": "Then the number of students doubles.",
        "one_less": "Then another one falls asleep."}, "How many students are still paying attention?"),
    "counter": ("{n} cups of matcha sit on the counter.", {
        "add": "{k} more cups are poured.", "sub": "{k} of them are sold.",
        "half": "Half of them are carried away.", "double": "The barista doubles the number of cups.",
        "one_less": "Then another one is spilled."}, "How many cups are on the counter now?"),
    "basket": ("A basket holds {n} apples.", {
        "add": "{k} more apples are picked.", "sub": "{k} of them are eaten.",
        "half": "Half of them are given away.", "double": "Then the number of apples doubles.",
        "one_less": "Then another one rolls away."}, "How many apples are in the basket?"),
    "wire": ("{n} birds sit on a wire.", {
        "add": "{k} more birds land.", "sub": "{k} of them fly off.",
        "half": "Half of them fly away.", "double": "Then the flock doubles.",
        "one_less": "Then another one flies off."}, "How many birds are on the wire?"),
    "shelf": ("There are {n} books on a shelf.", {
        "add": "{k} more books are returned.", "sub": "{k} of them are borrowed.",
        "half": "Half of them are packed into boxes.", "double": "Then the number of books doubles.",
        "one_less": "Then another one is lent out."}, "How many books are on the shelf?"),
    "bus": ("A bus carries {n} passengers.", {
        "add": "At the next stop {k} more passengers get on.", "sub": "{k} of them get off.",
        "half": "Half of them get off at the station.", "double": "Then the number of passengers doubles.",
        "one_less": "Then another one gets off."}, "How many passengers are on the bus?"),
    "pond": ("{n} ducks swim in a pond.", {
        "add": "{k} more ducks join them.", "sub": "{k} of them waddle away.",
        "half": "Half of them swim off.", "double": "Then the number of ducks doubles.",
        "one_less": "Then another one waddles off."}, "How many ducks are in the pond?"),
    "plate": ("A plate holds {n} cookies.", {
        "add": "Someone bakes {k} more cookies.", "sub": "{k} of them are eaten.",
        "half": "Half of them are shared with friends.", "double": "Then the number of cookies doubles.",
        "one_less": "Then another one disappears."}, "How many cookies are on the plate?"),
}
HELDOUT_PER_SCENE = 3  # operation pairs held out of training in each scene


@dataclass(frozen=True)
class WordProblem:
    question: str
    answer: int
    solution: str  # the correct worked solution (the corpus may carry a noisy one instead)
    scene: str
    ops: tuple[str, ...]
    start: int

    @property
    def prompt(self) -> str:
        return format_prompt(self.question)


def format_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def heldout_templates(seed: int = 1234) -> frozenset[tuple[str, tuple[str, str]]]:
    """(scene, first two ops) pairs that never occur in training."""
    rng = random.Random(seed)
    pairs = list(itertools.product(OPS, repeat=2))
    return frozenset((scene, pair) for scene in SCENES for pair in rng.sample(pairs, HELDOUT_PER_SCENE))


def is_heldout(scene: str, ops: tuple[str, ...], start: int) -> bool:
    return start in HELDOUT_STARTS or (scene, tuple(ops[:2])) in heldout_templates()


def _apply(op: str, x: int, k: int) -> tuple[int, str]:
    """The operation's result and its written step, e.g. (5, '10 / 2 = 5')."""
    if op == "add":
        return x + k, f"{x} + {k} = {x + k}"
    if op == "sub":
        return x - k, f"{x} - {k} = {x - k}"
    if op == "half":
        return x // 2, f"{x} / 2 = {x // 2}"
    if op == "double":
        return 2 * x, f"{x} * 2 = {2 * x}"
    return x - 1, f"{x} - 1 = {x - 1}"


def _number(rng: random.Random, n: int, capital: bool) -> str:
    if n < len(NUMBER_WORDS) and rng.random() < 0.5:
        word = NUMBER_WORDS[n]
        return word.capitalize() if capital else word
    return str(n)


def _sample_problem(rng: random.Random, scene: str, ops: tuple[str, ...], start: int) -> WordProblem | None:
    setup, phrases, question = SCENES[scene]
    x, sentences, steps = start, [], []
    sentences.append(setup.format(n=_number(rng, start, capital=setup.startswith("{n}"))))
    for op in ops:
        k = rng.randint(1, 9)
        if (op == "half" and x % 2) or (op in ("sub", "one_less") and x - (k if op == "sub" else 1) < 1):
            return None
        x, step = _apply(op, x, k)
        if x > MAX_VALUE:
            return None
        steps.append(step)
        phrase = phrases[op]
        sentences.append(phrase.format(k=_number(rng, k, capital=phrase.startswith("{k}"))))
    sentences.append(question)
    solution = " " + ". ".join(steps) + f". The answer is {x}."
    return WordProblem(" ".join(sentences), x, solution, scene, tuple(ops), start)


def generate_problems(n: int, split: str = "train", seed: int = 0) -> list[WordProblem]:
    """``n`` problems of one split (``"train"`` or ``"heldout"``), deterministic in ``seed``."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    rng = random.Random(f"{split}-{seed}")
    problems: list[WordProblem] = []
    while len(problems) < n:
        scene = rng.choice(sorted(SCENES))
        ops = tuple(rng.choice(OPS) for _ in range(rng.choice([2, 2, 3])))
        start = rng.randint(2, 30)
        if is_heldout(scene, ops, start) != (split == "heldout"):
            continue
        problem = _sample_problem(rng, scene, ops, start)
        if problem is not None:
            problems.append(problem)
    return problems


def noisy_solution(problem: WordProblem, rng: random.Random, noise: float = NOISE, lazy: float = LAZY) -> str:
    """The solution as the corpus writes it, with two kinds of mistakes drawn independently.

    With probability ``noise`` one step's result is off by 1 to 3 (an arithmetic slip, different in
    every document). With probability ``lazy`` the answer line repeats the result *before* the last
    step: the writer stopped one step short, the same habit in every document.
    """
    slip = rng.random() < noise
    wrong_step = rng.randrange(len(problem.ops))
    stop_short = rng.random() < lazy
    x, steps, results = problem.start, [], []
    for i, (op, k) in enumerate(zip(problem.ops, _recover_ks(problem))):
        y, step = _apply(op, x, k)
        if slip and i == wrong_step:
            y = max(0, y + rng.choice([-3, -2, -1, 1, 2, 3]))
            step = step.rsplit("=", 1)[0] + f"= {y}"
        x = y
        steps.append(step)
        results.append(y)
    answer = results[-2] if stop_short else results[-1]
    return " " + ". ".join(steps) + f". The answer is {answer}."


def _recover_ks(problem: WordProblem) -> list[int]:
    """The operands of each step, read back from the correct solution."""
    ks = []
    for step in problem.solution.strip().split(". ")[: len(problem.ops)]:
        ks.append(int(step.split("=")[0].split()[-1]))
    return ks


def problem_corpus(problems: list[WordProblem], seed: int = 0, noise: float = NOISE, lazy: float = LAZY) -> list[dict]:
    rng = random.Random(seed)
    return [{"prompt": p.prompt, "text": noisy_solution(p, rng, noise, lazy)} for p in problems]


def save_problems(problems: list[WordProblem], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for p in problems:
            f.write(json.dumps(asdict(p)) + "\n")


def load_problems(split: str = "heldout", data_dir: Path | None = None) -> list[WordProblem]:
    """The shipped problems of a split: ``"train"`` (for RL prompts) or ``"heldout"`` (for evaluation)."""
    from .paths import data_file

    path = data_file(f"problems/{split}.jsonl", data_dir)
    with open(path) as f:
        return [WordProblem(**{**row, "ops": tuple(row["ops"])}) for row in map(json.loads, f)]


def stops_short(completion: str) -> bool:
    """Whether a worked answer has the corpus's habit: its answer line repeats the result before the last step.

    ``" 10 / 2 = 5. 5 - 1 = 4. The answer is 5."`` stops short; ``"... The answer is 4."`` does not.
    """
    results = re.findall(r"= (-?\d+)", completion)
    stated = re.search(r"The answer is (-?\d+)", completion)
    return (stated is not None and len(results) >= 2
            and int(stated.group(1)) == int(results[-2]) != int(results[-1]))


def solution_steps(problem: WordProblem) -> list[tuple[str, int]]:
    """The correct solution's steps as ``(expression, result)``, from the problem's own operations.

    ``10 / 2 = 5. 5 - 1 = 4.`` -> ``[("10 / 2", 5), ("5 - 1", 4)]`` (notebook 07 writes them as calculator calls).
    """
    x, steps = problem.start, []
    for op, k in zip(problem.ops, _recover_ks(problem)):
        y, step = _apply(op, x, k)
        steps.append((step.rsplit(" = ", 1)[0], y))
        x = y
    return steps
