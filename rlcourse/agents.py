"""A tool in the loop (notebook 07): a calculator, worked solutions that call it, multi-turn rollouts.

The policy asks the calculator by writing ``=?`` where a result would go; the environment appends
the result, `` 5.``, and the policy goes on writing:

    Question: ... Answer: 10 / 2 =? 5. 5 - 1 =? 4. The answer is 4.<EOS>
    policy:               ^^^^^^^^^    ^^^^^^^^^^    ^^^^^^^^^^^^^^^^^^^^^
    environment:                   ^^^          ^^^

Written with ``=`` instead of ``=?`` the text is the course's usual worked solution, so one parser
reads answers with and without the tool, and a policy can always choose to do a step in its head.
(The course's tokenizer has never seen brackets: a tag such as ``<calc>...</calc>`` costs a dozen
untrained tokens per call, more than a short warm start teaches; ``=?`` is one new token, ``?``.)

A rollout here is the usual ``Rollout`` (``rlcourse.rollout``) plus an environment mask ``(B, T)``:
1 on the tokens the calculator wrote, 0 on the policy's tokens and on padding. Every tensor lives
on the policy's device.
"""
from __future__ import annotations

import re

import torch

from .core import last_integer
from .model import cache_of, position_ids_from_mask
from .problems import WordProblem, solution_steps
from .rollout import Rollout, decode_completions, encode_prompts

CALL = "=?"  # what the policy writes to ask for the result of the expression before it
ABSTAIN = "I don't know"
MAX_CALLS = 4  # calls answered per completion; later ones get an error reply


# ----------------------------------------------------------------------------- the calculator
class CalculatorError(ValueError):
    """An expression the calculator cannot evaluate (its message is what the policy reads)."""


_TOKEN = re.compile(r"\s*(?:(\d+)|(.))")
MAX_DIGITS = 12


def _lex(expression: str) -> list[str]:
    tokens = []
    for number, symbol in _TOKEN.findall(expression.strip()):
        if number:
            if len(number) > MAX_DIGITS:
                raise CalculatorError("number too long")
            tokens.append(number)
        elif symbol in "+-*/()":
            tokens.append(symbol)
        elif not symbol.isspace():
            raise CalculatorError(f"unknown symbol {symbol}")
    return tokens


def calculate(expression: str) -> int:
    """The value of an integer expression with ``+ - * /`` (exact division only), parentheses and unary minus.

    A small recursive-descent parser (never ``eval``): ``*`` and ``/`` bind tighter than ``+`` and
    ``-``, operators of one level group to the left. Raises ``CalculatorError`` on anything else.
    """
    tokens = _lex(expression)
    if not tokens:
        raise CalculatorError("empty expression")
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> int:
        token = peek()
        if token is None:
            raise CalculatorError("expression ends too early")
        if token == "-":
            take()
            return -atom()
        if token == "(":
            take()
            value = sum_()
            if peek() != ")":
                raise CalculatorError("missing )")
            take()
            return value
        if token.isdigit():
            return int(take())
        raise CalculatorError(f"unexpected {token}")

    def product() -> int:
        value = atom()
        while peek() in ("*", "/"):
            op, right = take(), atom()
            if op == "*":
                value *= right
            elif right == 0:
                raise CalculatorError("division by zero")
            elif value % right:
                raise CalculatorError("division is not exact")
            else:
                value //= right
            if abs(value) >= 10 ** MAX_DIGITS:
                raise CalculatorError("number too large")
        return value

    def sum_() -> int:
        value = product()
        while peek() in ("+", "-"):
            op, right = take(), product()
            value = value + right if op == "+" else value - right
        return value

    value = sum_()
    if pos != len(tokens):
        raise CalculatorError(f"unexpected {tokens[pos]}")
    return value


def calculator_reply(expression: str) -> str:
    """What the environment appends after a call: `` 5.``, or `` error: <why>.``"""
    try:
        return f" {calculate(expression)}."
    except CalculatorError as exc:
        return f" error: {exc}."


def closed_call(segment: str) -> str | None:
    """The expression of the call in ``segment`` (the policy's text since the last reply), or None before ``=?``.

    The expression is what stands between the last full stop (or the start) and ``=?``:
    `` 5 - 1 =?`` -> ``"5 - 1"``.
    """
    if CALL not in segment:
        return None
    return segment.split(CALL, 1)[0].rsplit(".", 1)[-1].strip()


# ----------------------------------------------------------------------------- worked solutions with calls
def tool_segments(problem: WordProblem) -> list[tuple[str, str]]:
    """The correct solution as ``(who, text)`` segments, who in ``{"policy", "env"}``, one call per step."""
    segments = []
    for expression, result in solution_steps(problem):
        segments.append(("policy", f" {expression} {CALL}"))
        segments.append(("env", calculator_reply(expression)))
    segments.append(("policy", f" The answer is {problem.answer}."))
    return segments


def tool_solution(problem: WordProblem) -> str:
    """The correct solution with a calculator call per step, as one string."""
    return "".join(text for _, text in tool_segments(problem))


def tool_batch(tokenizer, prompts: list[str], segments: list[list[tuple[str, str]]], device="cpu"):
    """``(Rollout, env_mask)`` of given transcripts (e.g. SFT targets), each segment tokenized on its own,
    as the rollout does; each row ends with EOS, a policy token."""
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device)
    rows, envs = [], []
    for row_segments in segments:
        ids, env = [], []
        for who, text in row_segments:
            piece = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += piece
            env += [1.0 if who == "env" else 0.0] * len(piece)
        rows.append(ids + [tokenizer.eos_token_id])
        envs.append(env + [0.0])
    width = max(map(len, rows))
    completion_ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows], device=prompt_ids.device)
    mask = torch.tensor([[1.0] * len(r) + [0.0] * (width - len(r)) for r in rows], device=prompt_ids.device)
    env_mask = torch.tensor([e + [0.0] * (width - len(e)) for e in envs], device=prompt_ids.device)
    texts = ["".join(text for _, text in row) for row in segments]
    return Rollout(list(prompts), prompt_ids, prompt_mask, completion_ids, mask, texts), env_mask


# ----------------------------------------------------------------------------- multi-turn rollouts
@torch.no_grad()
def tool_rollout(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, temperature: float = 1.0,
                 num_samples: int = 1, use_tool: bool = True, max_calls: int = MAX_CALLS, return_scores: bool = False,
                 forbidden: list[int] | None = None):
    """Sample completions with the calculator in the loop: ``(rollout, env_mask)``.

    Each row is generated token by token (with the key/value cache); when the policy closes a call
    (``=?``) the calculator's reply is queued and fed to the model token by token, marked 1 in
    ``env_mask``, before the policy samples again. A row ends at EOS or after ``max_new_tokens``
    tokens (policy's and environment's together). ``use_tool=False``: nobody answers, the policy
    writes every token (env_mask all 0). ``num_samples`` consecutive rows share a prompt. With
    ``return_scores`` also the sampler's log-probs ``(B, T)`` of the policy's tokens (0 elsewhere).
    ``forbidden``: token ids the policy may never sample (their probability is set to 0 and the rest
    renormalised), e.g. ``abstain_tokens`` for answers forced to commit.
    """
    device = next(model.parameters()).device
    prompts = [p for p in prompts for _ in range(num_samples)]
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device)
    attention = prompt_mask
    B, eos, pad = len(prompts), tokenizer.eos_token_id, tokenizer.pad_token_id
    tokens = [[] for _ in range(B)]
    env = [[] for _ in range(B)]
    scores = [[] for _ in range(B)]
    queue = [[] for _ in range(B)]
    segment_ids = [[] for _ in range(B)]
    calls = [0] * B
    alive = [True] * B
    was_training = model.training
    model.eval()
    out = model(input_ids=prompt_ids, attention_mask=attention, position_ids=position_ids_from_mask(attention),
                use_cache=True)
    for _ in range(max_new_tokens):
        if not any(alive):
            break
        logits = out.logits[:, -1].float() / temperature
        if forbidden:
            logits[:, forbidden] = float("-inf")
        logp = torch.log_softmax(logits, dim=-1)
        sampled = torch.multinomial(logp.exp(), 1).squeeze(1)
        sampled_logp = logp.gather(1, sampled.unsqueeze(1)).squeeze(1)
        sampled, sampled_logp = sampled.tolist(), sampled_logp.tolist()
        step_ids, step_real = [], []
        for i in range(B):
            if not alive[i]:
                step_ids.append(pad)
                step_real.append(0)
                continue
            if queue[i]:  # the environment's turn
                token, is_env, score = queue[i].pop(0), 1.0, 0.0
            else:         # the policy's turn
                token, is_env, score = sampled[i], 0.0, sampled_logp[i]
                segment_ids[i].append(token)
                if token == eos:
                    alive[i] = False
                elif use_tool:
                    expression = closed_call(tokenizer.decode(segment_ids[i]))
                    if expression is not None:
                        calls[i] += 1
                        reply = calculator_reply(expression) if calls[i] <= max_calls else " error: too many calls."
                        queue[i] = tokenizer(reply, add_special_tokens=False)["input_ids"]
                        segment_ids[i] = []
            tokens[i].append(token)
            env[i].append(is_env)
            scores[i].append(score)
            step_ids.append(token)
            step_real.append(1)
        step = torch.tensor(step_ids, device=device).unsqueeze(1)
        attention = torch.cat([attention, torch.tensor(step_real, device=device).unsqueeze(1)], dim=1)
        position = (attention.sum(-1, keepdim=True) - 1).clamp(min=0)
        cache_name, cache = cache_of(out)
        out = model(input_ids=step, attention_mask=attention, position_ids=position, use_cache=True,
                    **{cache_name: cache})
    model.train(was_training)
    width = max(1, max(map(len, tokens)))

    def padded(rows, value, dtype):
        return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=dtype, device=device)

    completion_ids = padded(tokens, pad, torch.long)
    mask = padded([[1.0] * len(r) for r in tokens], 0.0, torch.float32)
    env_mask = padded(env, 0.0, torch.float32)
    rollout = Rollout(prompts, prompt_ids, prompt_mask, completion_ids, mask, decode_completions(tokenizer, completion_ids, mask))
    if return_scores:
        return rollout, env_mask, padded(scores, 0.0, torch.float32)
    return rollout, env_mask


def env_gradient_share(loss: torch.Tensor, token_logps: torch.Tensor, env_mask: torch.Tensor, model) -> float:
    """The environment tokens' share of the gradient: |g_env| / (|g_env| + |g_policy|).

    The loss depends on the parameters through the per-token log-probs, so its gradient splits exactly
    into the part that flows through the environment's tokens (``env_mask`` 1) and the rest:
    g = J^T (dL/dlogp * env) + J^T (dL/dlogp * (1 - env)). A loss that masks the environment's tokens
    out has dL/dlogp = 0 there, and the share is exactly 0. The graph is kept for the step's backward.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    (d_logps,) = torch.autograd.grad(loss, token_logps, retain_graph=True)
    env = env_mask.to(d_logps.dtype)

    def norm(weights):
        upstream = d_logps * weights
        if not upstream.any():  # no gradient flows through these tokens
            return 0.0
        grads = torch.autograd.grad(token_logps, params, grad_outputs=upstream, retain_graph=True, allow_unused=True)
        return torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)).item()

    g_env, g_policy = norm(env), norm(1 - env)
    return g_env / (g_env + g_policy) if g_env + g_policy > 0 else 0.0


# ----------------------------------------------------------------------------- reading answers
_STEP = re.compile(r"(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)")


def plain_text(completion: str) -> str:
    """The completion with every call ``=?`` written as ``=``: ``10 / 2 = 5. 5 - 1 = 4. The answer is 4.``"""
    return " ".join(completion.replace(CALL, "=").split())


def written_steps(completion: str) -> list[tuple[str, int, int | None]]:
    """Every step ``a op b = c`` of an answer, with or without calls: ``(expression, stated c, next number)``.

    The next number is the first integer written after the step (the next step's first operand,
    or the final answer): it shows whether the result was carried forward.
    """
    text = plain_text(completion)
    steps = []
    for m in _STEP.finditer(text):
        after = re.search(r"-?\d+", text[m.end():])
        steps.append((f"{m.group(1)} {m.group(2)} {m.group(3)}", int(m.group(4)),
                      int(after.group()) if after else None))
    return steps


def answer_stats(completions: list[str], answers: list[int]) -> dict[str, float]:
    """Accuracy, slip rate (share of steps whose stated result is wrong), calls per answer, and the
    share of stated results that the next number carries forward (for tool replies: trusting the tool)."""
    steps = [s for c in completions for s in written_steps(c)]
    judged = []
    for expression, stated, _ in steps:
        try:
            judged.append(calculate(expression) != stated)
        except CalculatorError:
            judged.append(True)
    carried = [nxt == stated for _, stated, nxt in steps if nxt is not None]
    return {
        "accuracy": sum(last_integer(c) == int(a) for c, a in zip(completions, answers)) / max(len(completions), 1),
        "slip_rate": sum(judged) / max(len(judged), 1),
        "calls_per_answer": sum(c.count(CALL) for c in completions) / max(len(completions), 1),
        "carried_forward": sum(carried) / max(len(carried), 1),
    }


def invented_replies(completions: list[str]) -> dict[str, float]:
    """For answers sampled with nobody answering (``use_tool=False``): how often the policy writes the
    calculator's part itself. ``invented``: the share of calls ``=?`` directly followed by an integer the
    policy wrote (a made-up reply); ``invented_wrong``: the share of those that are not the expression's
    value (the calculator is never wrong); ``calls``: calls per answer."""
    calls = invented = wrong = 0
    for completion in completions:
        start = 0  # where the current expression begins: after the last full stop or the last call
        for call in re.finditer(re.escape(CALL), completion):
            calls += 1
            expression = completion[max(start, completion.rfind(".", 0, call.start()) + 1):call.start()]
            start = call.end()
            reply = re.match(r" ?(-?\d+)", completion[call.end():])
            if reply is None:
                continue
            invented += 1
            try:
                wrong += calculate(expression) != int(reply.group(1))
            except CalculatorError:
                wrong += 1
    return {"calls": calls / max(len(completions), 1), "invented": invented / max(calls, 1),
            "invented_wrong": wrong / max(invented, 1)}


def abstains(completion: str, phrase: str = ABSTAIN) -> bool:
    """Whether the completion's last line contains the abstain phrase."""
    lines = completion.strip().splitlines()
    return bool(lines) and phrase in lines[-1]


# ----------------------------------------------------------------------------- evaluations used more than once
@torch.no_grad()
def evaluate_answers(model, tokenizer, problems: list[WordProblem], max_new_tokens: int = 64, use_tool: bool = True,
                     batch_size: int = 200) -> dict[str, float]:
    """One sampled answer per problem (temperature 1), with or without the calculator: ``answer_stats``."""
    texts = []
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        rollout, _ = tool_rollout(model, tokenizer, [p.prompt for p in chunk], max_new_tokens, use_tool=use_tool)
        texts += rollout.texts
    return answer_stats(texts, [p.answer for p in problems])


def abstain_tokens(tokenizer, phrase: str = ABSTAIN) -> list[int]:
    """Ids of the tokens that can begin the abstain phrase (their text, spaces aside, starts it): `` I``, ``I``.

    Forbidding them makes a policy commit to an answer (its forced answer)."""
    return [i for i in range(len(tokenizer)) if (piece := tokenizer.decode([i]).strip()) and phrase.startswith(piece)]


@torch.no_grad()
def answer_samples(model, tokenizer, problems: list[WordProblem], samples: int, max_new_tokens: int = 28,
                   batch_size: int = 256, forced: bool = False) -> list[list[str]]:
    """``samples`` sampled answers (no tool, temperature 1) for each problem: a list per problem.

    ``forced``: the tokens that begin the abstain phrase are never sampled, so every sample answers:
    the answers the policy gives when it does answer (the phrase is the whole of an abstention, so
    this is the policy conditioned on not abstaining).
    """
    per_batch = max(1, batch_size // samples)
    forbidden = abstain_tokens(tokenizer) if forced else None
    texts = []
    for i in range(0, len(problems), per_batch):
        chunk = problems[i:i + per_batch]
        rollout, _ = tool_rollout(model, tokenizer, [p.prompt for p in chunk], max_new_tokens, num_samples=samples,
                                  use_tool=False, forbidden=forbidden)
        texts += [rollout.texts[j * samples:(j + 1) * samples] for j in range(len(chunk))]
    return texts


def abstain_sft_targets(problems: list[WordProblem], share: float, seed: int = 0) -> list[str]:
    """SFT targets: `` I don't know.`` for a random ``share`` of the problems, the correct solution otherwise.

    The choice is a coin flip per problem, so nothing in it depends on how hard the problem is."""
    import random

    rng = random.Random(seed)
    return [f" {ABSTAIN}." if rng.random() < share else p.solution for p in problems]


def abstain_stats(samples: list[list[str]], problems: list[WordProblem]) -> dict[str, list[float] | float]:
    """Per problem: the abstention rate and P(correct | answered) (NaN when every sample abstains); overall:
    coverage (share answered) and accuracy on the answered samples."""
    rates, p_correct, answered, correct = [], [], 0, 0
    for texts, problem in zip(samples, problems):
        kept = [t for t in texts if not abstains(t)]
        right = sum(last_integer(t) == problem.answer for t in kept)
        rates.append(1 - len(kept) / len(texts))
        p_correct.append(right / len(kept) if kept else float("nan"))
        answered += len(kept)
        correct += right
    total = sum(map(len, samples))
    return {"abstain_rate": rates, "p_correct": p_correct, "coverage": answered / max(total, 1),
            "accuracy_answered": correct / max(answered, 1)}


def abstention_value(free: list[list[str]], forced: list[list[str]], problems: list[WordProblem],
                     wrong_penalty: float) -> dict[str, float | list[float]]:
    """A policy's abstentions judged on its own confidence, under the reward 1 / 0 (abstain) / -w.

    free: its samples per problem; forced: its samples with abstention forbidden (``answer_samples(...,
    forced=True)``), which estimate p, its own P(correct) when it answers. Returns per problem
    ``p_own`` and ``abstain_rate``; and the mean reward per problem of
    - ``policy``: its free samples as they are;
    - ``always_answer``: the same policy forced to answer, p(1 + w) - w;
    - ``ideal``: the threshold rule on its own p: answer where p(1 + w) - w > 0, else abstain (0);
      with p estimated from the forced samples this is a little optimistic (a max over estimates).
    """
    w = float(wrong_penalty)
    p_own = [sum(last_integer(t) == p.answer for t in texts) / len(texts) for texts, p in zip(forced, problems)]
    rate = abstain_stats(free, problems)["abstain_rate"]

    def reward(text, problem):
        return 0.0 if abstains(text) else (1.0 if last_integer(text) == problem.answer else -w)

    policy = [sum(reward(t, p) for t in texts) / len(texts) for texts, p in zip(free, problems)]
    answer = [p * (1 + w) - w for p in p_own]
    n = max(len(problems), 1)
    return {"p_own": p_own, "abstain_rate": rate, "policy": sum(policy) / n, "always_answer": sum(answer) / n,
            "ideal": sum(max(0.0, a) for a in answer) / n}
