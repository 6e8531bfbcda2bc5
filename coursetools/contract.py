"""The exercise contract, ``COURSE_CONTRACT.md`` at the repository root, read as data.

The page has one section per notebook (``## 05 GRPO``) with a table ``| function | returns |
definition |``; each row is one graded exercise. ``load()`` gives, per section id ("00".."07"), the
exercises in the page's order:

    >>> [e.signature for e in load()["00"]]
    ['sft_loss(token_logps, mask)']

The page is the source of truth: the tests derive their lists of exercises from it, check every
answer cell's ``def`` line against it and keep the README's exercise table equal to it.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from rlcourse.paths import REPO_ROOT

CONTRACT_FILE = REPO_ROOT / "COURSE_CONTRACT.md"
_SECTION = re.compile(r"^## (\d\d) ", re.MULTILINE)
_HEADER = "| function | returns | definition |"


@dataclass(frozen=True)
class Exercise:
    """One row of the contract: ``sft_loss(token_logps, mask)`` | scalar | ``-(sum mask*logps) / ...``."""

    section: str            # "00"
    name: str               # "sft_loss"
    signature: str          # "sft_loss(token_logps, mask)"
    args: tuple[str, ...]   # ("token_logps", "mask"), in order
    defaults: dict = field(default_factory=dict)  # {"gamma": 1.0}: the arguments that have one
    returns: str = ""       # as the page writes it, markdown included: "`(B, T)` float"
    definition: str = ""    # idem


def parse_signature(signature: str) -> tuple[str, tuple[str, ...], dict]:
    """``"rewards_to_go(rewards, mask, gamma=1.0)"`` -> ``("rewards_to_go", ("rewards", "mask", "gamma"), {"gamma": 1.0})``."""
    fn = ast.parse(f"def {signature}: pass").body[0]
    args = fn.args
    if args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg:
        raise ValueError(f"contract signature {signature!r}: only plain arguments are expected")
    names = tuple(a.arg for a in args.args)
    defaults = {name: ast.literal_eval(d) for name, d in zip(names[len(names) - len(args.defaults):], args.defaults)}
    return fn.name, names, defaults


def _row(section: str, line: str) -> Exercise:
    # "| `name(args)` | returns | definition |": the first two cells hold no "|", the definition may
    function, returns, definition = line.strip().strip("|").split("|", 2)
    signature = function.strip().strip("`")
    name, args, defaults = parse_signature(signature)
    return Exercise(section, name, signature, args, defaults, returns.strip(), definition.strip())


def parse(text: str) -> dict[str, list[Exercise]]:
    """Section id -> its exercises, from the contract page's markdown."""
    sections: dict[str, list[Exercise]] = {}
    starts = list(_SECTION.finditer(text))
    for match, following in zip(starts, starts[1:] + [None]):
        body = text[match.end(): following.start() if following else len(text)]
        lines = [line.strip() for line in body.splitlines()]
        if _HEADER not in lines:
            raise ValueError(f"contract section {match.group(1)} has no table {_HEADER}")
        rows = []
        for line in lines[lines.index(_HEADER) + 2:]:  # after the header and its |---| line
            if not line.startswith("|"):
                break  # the table ends at its first line that is not a row
            rows.append(_row(match.group(1), line))
        sections[match.group(1)] = rows
    return sections


def load(path: Path | str = CONTRACT_FILE) -> dict[str, list[Exercise]]:
    """The repository's contract (``COURSE_CONTRACT.md``), section id -> exercises."""
    return parse(Path(path).read_text(encoding="utf-8"))


def section_id(assignment: str) -> str:
    """``"05_grpo"`` -> ``"05"``: a notebook's assignment id starts with its section's number."""
    return assignment[:2]


# Points per exercise, by difficulty (issue 11: "points follow difficulty"). The shared contract page has
# no points column, so they live here; tests/test_contract.py keeps every notebook's test cells equal to
# them. Each exercise's points are split over its test cells, the hidden cell getting the larger half
# (``split_points``).
POINTS = {
    # 00, 01: one line of torch each, the first-EOS mask needs a thought
    "sft_loss": 2, "token_log_probs": 2, "completion_mask": 3, "sequence_log_prob": 2,
    # 02, 03
    "exact_policy_gradient": 3, "score_function_gradient": 3, "rewards_to_go": 3, "reinforce_loss": 2,
    "value_loss": 2, "compute_advantages": 2, "actor_critic_loss": 2, "gae_advantages": 4,
    # 04
    "ranking_to_pairs": 2, "reward_model_loss": 2, "ppo_clip_loss": 4, "kl_penalized_rewards": 3,
    # 05
    "training_memory_gb": 2, "answer_reward": 2, "group_normalized_advantages": 3, "rloo_advantages": 2,
    "kl_k3": 3, "grpo_loss": 5, "pass_at_k": 3,
    # 06
    "dpo_loss": 3, "simpo_loss": 3,
    # 07
    "action_mask": 2, "abstain_reward": 2, "abstain_threshold": 2,
}


def split_points(total: int, n_cells: int) -> list[int]:
    """``total`` points over ``n_cells`` test cells in notebook order (visible first): as even as integers
    allow, the later (hidden) cells getting the remainder: 5 over 2 cells -> [2, 3]."""
    base, extra = divmod(total, n_cells)
    return [base + (1 if i >= n_cells - extra else 0) for i in range(n_cells)]
