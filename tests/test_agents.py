"""Notebook 07's plumbing: the calculator, worked solutions with calls, and multi-turn rollouts.

The calculator is checked against an independent evaluator written here (Python's ``ast`` parser
and exact fractions: parsing, never ``eval``) and on hand-computed cases; multi-turn rollouts are
checked for the tokens the environment wrote (marked exactly) and for log-probs: on a left-padded
batch whose rows received calculator replies, the training forward (``completion_logps``, with
position ids) gives the sampler's own log-probs on every policy token.
"""
from __future__ import annotations

import ast
import math
import random
from fractions import Fraction
from types import SimpleNamespace

import pytest
import torch

from rlcourse.agents import (CALL, CalculatorError, abstain_sft_targets, abstain_stats, abstain_tokens, abstains,
                             abstention_value, answer_samples, answer_stats, calculate, calculator_reply, closed_call,
                             env_gradient_share, invented_replies, plain_text, tool_batch, tool_rollout,
                             tool_segments, tool_solution, written_steps)
from rlcourse.model import load_policy, seed_everything
from rlcourse.problems import load_problems, solution_steps
from rlcourse.rollout import completion_logps


# ----------------------------------------------------------------------------- an independent evaluator
class NotExact(Exception):
    pass


def by_ast(expression: str) -> int:
    """Integer value of + - * / (exact division only), parentheses and unary minus, via ast and Fraction."""
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if right == 0 or (left / right).denominator != 1:
                raise NotExact
            return left / right
        raise NotExact
    value = walk(ast.parse(expression, mode="eval"))
    assert value.denominator == 1
    return int(value)


def random_expression(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.3:
        number = str(rng.randint(0, 30))
        return f"-{number}" if rng.random() < 0.1 else number
    left, right = random_expression(rng, depth - 1), random_expression(rng, depth - 1)
    op = rng.choice(["+", "-", "*", "/", "/"])
    space = rng.choice(["", " "])
    text = f"{left}{space}{op}{space}{right}"
    return f"({text})" if rng.random() < 0.4 else text


def test_calculator_agrees_with_an_independent_evaluator():
    rng = random.Random(0)
    checked = errors = 0
    for _ in range(3000):
        expression = random_expression(rng, 3)
        try:
            expected = by_ast(expression)
        except NotExact:
            with pytest.raises(CalculatorError):
                calculate(expression)
            errors += 1
            continue
        assert calculate(expression) == expected, expression
        checked += 1
    assert checked > 1000 and errors > 100  # both kinds of case really occur


@pytest.mark.parametrize("expression,value", [
    ("10 / 2", 5), ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("8 - 3 - 2", 3), ("12 / 2 / 3", 2),
    ("-(3 - 5)", 2), ("2 * -3", -6), ("4 - -1", 5), ("  7  ", 7), ("((((1))))", 1), ("0 / 5", 0),
])
def test_calculator_by_hand(expression, value):
    assert calculate(expression) == value
    assert calculator_reply(expression) == f" {value}."


@pytest.mark.parametrize("expression", [
    "", "   ", "4 +", "* 4", "(3 + 4", "3 + 4)", "()", "twelve", "3 ** 2", "2.5 * 2", "7 / 2", "4 / 0",
    "4 / (2 - 2)", "__import__('os').getcwd()", "1e3", "3 4", "9" * 40, "2 = 3",
])
def test_malformed_calls_get_an_error_reply(expression):
    with pytest.raises(CalculatorError):
        calculate(expression)
    reply = calculator_reply(expression)
    assert reply.startswith(" error: ") and reply.endswith(".")


def test_a_call_closes_at_its_marker():
    assert closed_call(" 10 / 2 =") is None
    assert closed_call(" 10 / 2") is None
    assert closed_call(" 10 / 2 =?") == "10 / 2"
    assert closed_call(" 16. 5 - 1 =?") == "5 - 1"   # only the text after the last full stop
    assert closed_call(" =?") == ""                   # an empty call: the calculator says so
    assert calculator_reply(closed_call(" =?")).startswith(" error:")


# ----------------------------------------------------------------------------- worked solutions with calls
@pytest.fixture(scope="module")
def problems():
    return load_problems("train")[:200] + load_problems("heldout")[:200]


def test_tool_solutions_are_the_worked_solutions_with_calls(problems):
    for p in problems:
        text = tool_solution(p)
        assert text.count(CALL) == len(p.ops)
        assert plain_text(text) == p.solution.strip()
        assert [e for e, _ in solution_steps(p)] == [e for e, _, _ in written_steps(text)]
    stats = answer_stats([tool_solution(p) for p in problems], [p.answer for p in problems])
    assert stats["accuracy"] == 1.0 and stats["slip_rate"] == 0.0 and stats["carried_forward"] == 1.0


def test_answer_stats_by_hand():
    texts = [" 10 / 2 =? 5. 5 - 1 =? 4. The answer is 4.",   # right, 2 calls, results carried
             " 10 / 2 = 6. 6 - 1 = 5. The answer is 5.",     # a slip in step 1 (6), carried
             " 10 / 2 =? 5. 6 - 1 = 5. The answer is 4."]    # 5 not carried (6), 5 not carried (4)
    stats = answer_stats(texts, [4, 4, 4])
    assert stats["accuracy"] == pytest.approx(2 / 3)
    assert stats["slip_rate"] == pytest.approx(1 / 6)
    assert stats["calls_per_answer"] == pytest.approx(1.0)
    assert stats["carried_forward"] == pytest.approx(4 / 6)


def test_tool_batch_marks_the_replies(problems):
    model, tok = load_policy("tiny")
    batch, env = tool_batch(tok, [p.prompt for p in problems[:6]], [tool_segments(p) for p in problems[:6]])
    for row, p in enumerate(problems[:6]):
        ids = batch.completion_ids[row].tolist()
        written = tok.decode([i for i, e in zip(ids, env[row].tolist()) if e])
        assert written == "".join(calculator_reply(e) for e, _ in solution_steps(p))
        assert env[row][batch.completion_mask[row] == 0].sum() == 0
    assert ((env == 1) <= (batch.completion_mask == 1)).all()


def test_abstention_helpers():
    assert abstains(" I don't know.") and abstains(" 3 + 1 = 4.\n I don't know")
    assert not abstains(" I don't know.\n The answer is 4.") and not abstains("")
    targets = abstain_sft_targets(load_problems("train")[:1000], 0.3, seed=0)
    share = sum(t == " I don't know." for t in targets) / len(targets)
    assert 0.25 < share < 0.35
    p = load_problems("heldout")[:2]
    stats = abstain_stats([[" I don't know.", f" The answer is {p[0].answer}.", " The answer is -1."],
                           [" I don't know.", " I don't know."]], p)
    assert stats["abstain_rate"] == pytest.approx([1 / 3, 1.0])
    assert stats["p_correct"][0] == pytest.approx(0.5) and stats["p_correct"][1] != stats["p_correct"][1]
    assert stats["coverage"] == pytest.approx(2 / 5) and stats["accuracy_answered"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- multi-turn rollouts
class ScriptedLM(torch.nn.Module):
    """Writes given completions token by token (all probability on the script's next token).

    Its "cache" is the sequence so far, so it knows the position of the next token; tokens the
    environment inserts advance the script too, so they must be exactly the script's own.
    """

    def __init__(self, prompt_width: int, script: torch.Tensor, vocab: int, pad: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.prompt_width, self.script, self.vocab, self.pad = prompt_width, script, vocab, pad

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False):
        history = input_ids if past_key_values is None else torch.cat([past_key_values, input_ids], dim=1)
        t = history.shape[1] - self.prompt_width
        nxt = self.script[:, t] if t < self.script.shape[1] else torch.full((input_ids.shape[0],), self.pad)
        logits = torch.full((input_ids.shape[0], input_ids.shape[1], self.vocab), -1e4)
        logits[torch.arange(input_ids.shape[0]), -1, nxt] = 0.0
        return SimpleNamespace(logits=logits, past_key_values=history)


def test_rollout_marks_exactly_the_tokens_the_environment_wrote(problems):
    _, tok = load_policy("tiny")
    chosen = problems[:5]
    prompts = [p.prompt for p in chosen]
    gold, gold_env = tool_batch(tok, prompts, [tool_segments(p) for p in chosen])
    script = gold.completion_ids.clone()
    lm = ScriptedLM(gold.prompt_ids.shape[1], script, len(tok), tok.pad_token_id)
    rollout, env = tool_rollout(lm, tok, prompts, max_new_tokens=gold.completion_ids.shape[1] + 3)
    width = gold.completion_ids.shape[1]
    assert rollout.completion_ids.shape[1] == width       # every row ended at its EOS
    assert torch.equal(rollout.completion_mask, gold.completion_mask)
    assert torch.equal(rollout.completion_ids * gold.completion_mask.long(), gold.completion_ids * gold.completion_mask.long())
    assert torch.equal(env, gold_env)
    assert rollout.texts == [tool_solution(p) for p in chosen]


def test_rollout_without_the_tool_has_no_environment_tokens(problems):
    _, tok = load_policy("tiny")
    prompts = [p.prompt for p in problems[:3]]
    gold, _ = tool_batch(tok, prompts, [tool_segments(p) for p in problems[:3]])
    lm = ScriptedLM(gold.prompt_ids.shape[1], gold.completion_ids, len(tok), tok.pad_token_id)
    rollout, env = tool_rollout(lm, tok, prompts, max_new_tokens=12, use_tool=False)
    assert env.sum() == 0 and rollout.completion_ids.shape[1] == 12


class CallingGPT2(torch.nn.Module):
    """The tiny GPT-2 with its logit for "?" raised after " =": a real transformer that makes calls."""

    def __init__(self, lm, equals_id: int, question_id: int, bonus: float = 12.0):
        super().__init__()
        self.lm, self.equals_id, self.question_id, self.bonus = lm, equals_id, question_id, bonus

    def forward(self, input_ids, logits_to_keep=0, **kwargs):
        out = self.lm(input_ids=input_ids, logits_to_keep=logits_to_keep, **kwargs)
        after_equals = (input_ids == self.equals_id).float()
        # the positions whose logits came back: all (0), the last k (an int), or the given indices (a tensor)
        if isinstance(logits_to_keep, torch.Tensor):
            after_equals = after_equals[:, logits_to_keep]
        elif logits_to_keep:
            after_equals = after_equals[:, -logits_to_keep:]
        logits = out.logits.clone()
        logits[..., self.question_id] += self.bonus * after_equals
        out.logits = logits
        return out


@pytest.fixture(scope="module")
def calling_policy():
    lm, tok = load_policy("tiny")
    (equals_id,) = tok(" =", add_special_tokens=False)["input_ids"]
    (question_id,) = tok("?", add_special_tokens=False)["input_ids"]
    return CallingGPT2(lm, equals_id, question_id), tok


def test_multi_turn_logps_equal_the_samplers_own(calling_policy, problems):
    model, tok = calling_policy
    seed_everything(0)
    prompts = [p.prompt for p in problems[:4]] + ["Question: Two birds sit on a wire.\nAnswer:"]
    rollout, env, sampler_logps = tool_rollout(model, tok, prompts, max_new_tokens=48, num_samples=2,
                                               return_scores=True)
    assert (rollout.prompt_mask == 0).any(), "the batch must really be left-padded"
    assert env.sum() >= 6 and (env.sum(-1) > 0).sum() >= 4, "most rows should have received replies"
    assert sum(text.count(CALL) for text in rollout.texts) >= 4
    with torch.no_grad():
        train_logps = completion_logps(model, rollout)
    policy_tokens = rollout.completion_mask * (1 - env)
    assert (sampler_logps * (1 - policy_tokens)).abs().max() == 0   # the sampler scores only its own tokens
    assert ((train_logps - sampler_logps) * policy_tokens).abs().max().item() < 1e-4
    # every reply the environment wrote is one the calculator gives
    for row in range(len(rollout)):
        ids, marks = rollout.completion_ids[row].tolist(), env[row].tolist()
        replies, current = [], []
        for i, mark in zip(ids, marks):
            if mark:
                current.append(i)
            elif current:  # a reply the policy went on from (the last one may be cut at max_new_tokens)
                replies.append(tok.decode(current)); current = []
        for reply in replies:
            assert reply.startswith(" error:") or (reply.endswith(".") and reply[1:-1].lstrip("-").isdigit()), reply


def test_calls_beyond_the_limit_get_an_error(calling_policy, problems):
    model, tok = calling_policy
    seed_everything(1)
    rollout, env = tool_rollout(model, tok, [p.prompt for p in problems[:4]], max_new_tokens=48, max_calls=0)
    called = [t for t in rollout.texts if CALL in t]
    assert called and all("error: too many calls." in t for t in called)


# ----------------------------------------------------------------------------- forced answers, invented replies, gradient shares
class AbstainingGPT2(torch.nn.Module):
    """The tiny GPT-2 with a large bonus on the tokens that begin "I don't know": a policy that abstains."""

    def __init__(self, lm, token_ids: list[int], bonus: float = 20.0):
        super().__init__()
        self.lm, self.token_ids, self.bonus = lm, token_ids, bonus

    def forward(self, input_ids, **kwargs):
        out = self.lm(input_ids=input_ids, **kwargs)
        logits = out.logits.clone()
        logits[..., self.token_ids] += self.bonus
        out.logits = logits
        return out


def test_forced_answers_never_begin_the_abstain_phrase(problems):
    lm, tok = load_policy("tiny")
    starts = abstain_tokens(tok)
    assert sorted(tok.decode([i]) for i in starts) == [" I", "I"]
    model = AbstainingGPT2(lm, starts)
    seed_everything(0)
    free = answer_samples(model, tok, problems[:6], samples=4, max_new_tokens=6)
    assert sum(t.startswith(" I") for texts in free for t in texts) >= 20   # nearly every free sample starts it
    seed_everything(0)
    forced = answer_samples(model, tok, problems[:6], samples=4, max_new_tokens=6, forced=True)
    assert [len(texts) for texts in forced] == [4] * 6
    assert not any("I" in t for texts in forced for t in texts)


def test_abstention_value_on_a_stand_in_policy():
    """Per-problem probabilities known exactly (the forced samples are right in k of 4), hand-computed values."""
    problems = load_problems("heldout")[:3]

    def right(p):
        return f" The answer is {p.answer}."

    wrong = " The answer is -7."
    forced = [[right(problems[0])] * 4, [right(problems[1])] * 3 + [wrong], [wrong] * 4]   # p = 1, 3/4, 0
    free = [[right(problems[0])] * 2, [" I don't know.", wrong], [" I don't know."] * 2]
    v = abstention_value(free, forced, problems, wrong_penalty=3.0)
    assert v["p_own"] == [1.0, 0.75, 0.0] and v["abstain_rate"] == [0.0, 0.5, 1.0]
    assert v["always_answer"] == pytest.approx((1 + 0 + -3) / 3)          # p(1 + w) - w: 1, 0, -3
    assert v["ideal"] == pytest.approx((1 + 0 + 0) / 3)                   # max(0, .): abstain where it loses
    assert v["policy"] == pytest.approx((1 + (0 - 3) / 2 + 0) / 3)        # the free samples' own rewards
    v1 = abstention_value(free, forced, problems, wrong_penalty=1.0)
    assert v1["always_answer"] == pytest.approx((1 + 0.5 - 1) / 3) and v1["ideal"] == pytest.approx((1 + 0.5) / 3)


def test_invented_replies_by_hand():
    texts = [" 10 / 2 =? 5. 5 - 1 =? 3. The answer is 3.",   # two invented replies, the second wrong
             " 2 + 2 =?\nAnswer: 4",                          # a call nobody answered, and nothing invented
             " 3 * 4 =? 12 * 2 =? -24."]                      # invented 12 (right), then -24 for "12 * 2" (wrong)
    stats = invented_replies(texts)
    assert stats["calls"] == pytest.approx(5 / 3)
    assert stats["invented"] == pytest.approx(4 / 5) and stats["invented_wrong"] == pytest.approx(2 / 4)
    assert invented_replies([" 3 + 4 = 7. The answer is 7."]) == {"calls": 0.0, "invented": 0.0, "invented_wrong": 0.0}


def test_env_gradient_share_is_exactly_zero_when_masked(problems):
    """The split g = g_env + g_policy against autograd of the whole loss; 0 exactly with the action mask."""
    from rlcourse.core import gather_log_probs
    from rlcourse.rollout import completion_logits

    lm, tok = load_policy("tiny")
    for p in lm.parameters():
        p.requires_grad_(True)
    batch, env = tool_batch(tok, [p.prompt for p in problems[:3]], [tool_segments(p) for p in problems[:3]])

    def loss_with(mask):
        logps = gather_log_probs(completion_logits(lm, batch), batch.completion_ids)
        return -(logps * mask).sum() / mask.sum(), logps

    loss, logps = loss_with(batch.completion_mask * (1 - env))
    assert env_gradient_share(loss, logps, env, lm) == 0.0
    loss, logps = loss_with(batch.completion_mask)
    share = env_gradient_share(loss, logps, env, lm)
    assert 0.0 < share < 1.0
    # the same share from gradients of the two halves of the loss, taken separately
    params = list(lm.parameters())
    norms = []
    for part in (env, 1 - env):
        logps = gather_log_probs(completion_logits(lm, batch), batch.completion_ids)
        half = -(logps * batch.completion_mask * part).sum() / batch.completion_mask.sum()
        grads = torch.autograd.grad(half, params, allow_unused=True)
        norms.append(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)).item())
    assert share == pytest.approx(norms[0] / (norms[0] + norms[1]), rel=1e-5)


def test_trust_region_stats_by_hand():
    from rlcourse.core import trust_region_stats

    old = torch.log(torch.tensor([[0.5, 0.2, 0.1, 0.3]]))
    assert trust_region_stats(old, old.clone(), torch.ones(1, 4), 0.2) == {"kl": 0.0, "clip_fraction": 0.0}
    ratio = torch.tensor([[1.5, 0.9, 0.5, 7.0]])          # the last token is padding
    stats = trust_region_stats(old, old + ratio.log(), torch.tensor([[1.0, 1.0, 1.0, 0.0]]), 0.2)
    by_hand = sum(r - 1 - math.log(r) for r in (1.5, 0.9, 0.5)) / 3
    assert stats["kl"] == pytest.approx(by_hand, rel=1e-6)
    assert stats["clip_fraction"] == pytest.approx(2 / 3)   # 1.5 and 0.5 leave [0.8, 1.2]; 0.9 stays
