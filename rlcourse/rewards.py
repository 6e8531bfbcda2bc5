"""Rewards and evaluations: the annotator's score of a review, the answer checker of a word problem.

Rewards come from text, so they start as Python floats; ``rollout_rewards`` and
``score_at_last_token`` make them tensors on the rollout's (the policy's) device.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .cafe import annotator_score, review_prompts
from .core import last_integer
from .rollout import Rollout, sample_completions


def review_rewards(texts: list[str], device="cpu") -> torch.Tensor:
    """The hidden annotator's score of each review ``(B,)``."""
    return torch.tensor([annotator_score(t) for t in texts], device=device)


def answer_rewards(texts: list[str], answers: list[int], device="cpu") -> torch.Tensor:
    """1.0 where the completion's last integer is the right answer ``(B,)``."""
    if len(texts) != len(answers):
        raise ValueError(f"{len(texts)} completions but {len(answers)} answers")
    return torch.tensor([answer_reward(t, a) for t, a in zip(texts, answers)], device=device)


def answer_reward(completion: str, answer: int) -> float:
    """1.0 when the completion's last integer is the answer, else 0.0 (the rule notebook 05 teaches)."""
    return 1.0 if last_integer(completion) == int(answer) else 0.0


def rollout_rewards(rollout: Rollout, reward_fn, *targets) -> torch.Tensor:
    """``reward_fn(text_i, *targets_i)`` for every completion of a rollout, ``(B,)`` float on its device.

    ``rollout_rewards(rollout, annotator_score)`` scores reviews;
    ``rollout_rewards(rollout, answer_reward, answers)`` checks answers (one target per row).
    """
    for target in targets:
        if len(target) != len(rollout):
            raise ValueError(f"{len(rollout)} completions but {len(target)} targets")
    values = [float(reward_fn(text, *row)) for text, *row in zip(rollout.texts, *targets)]
    return torch.tensor(values, device=rollout.device)


def score_at_last_token(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token rewards ``(B, T)``: ``scores[i]`` at the last real token of row i, 0 elsewhere (mask's device and dtype)."""
    mask = mask.float() if not mask.is_floating_point() else mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rewards = torch.zeros_like(mask)
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last] = scores.to(device=mask.device, dtype=mask.dtype)
    return rewards * mask


@torch.no_grad()
def problem_accuracy(model, tokenizer, problems, temperature: float = 1.0, batch_size: int = 100,
                     max_new_tokens: int = 32, progress: bool = True) -> float:
    """Exact-match accuracy of sampled answers on ``problems`` (fraction in [0, 1])."""
    correct = 0
    batches = range(0, len(problems), batch_size)
    for i in tqdm(batches, desc="evaluating", disable=not progress or len(batches) < 2, leave=False):
        chunk = problems[i:i + batch_size]
        rollout = sample_completions(model, tokenizer, [p.prompt for p in chunk], max_new_tokens, temperature)
        correct += rollout_rewards(rollout, answer_reward, [p.answer for p in chunk]).sum().item()
    return correct / len(problems)


@torch.no_grad()
def mean_review_score(model, tokenizer, n: int = 256, temperature: float = 1.0, max_new_tokens: int = 32,
                      seed: int = 0) -> float:
    """The annotator's mean score of ``n`` sampled reviews."""
    rollout = sample_completions(model, tokenizer, review_prompts(n, seed), max_new_tokens, temperature)
    return rollout_rewards(rollout, annotator_score).mean().item()


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of a 1-D tensor, ties sharing the mean of their ranks (float64)."""
    x = x.detach().double().cpu()
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(1, len(x) + 1, dtype=x.dtype)
    for value in torch.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation of two equal-length sequences (Pearson on average ranks; ties allowed).
    Scale-free: any increasing transform of either side leaves it unchanged."""
    ra, rb = average_ranks(torch.as_tensor(a)), average_ranks(torch.as_tensor(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = (ra.norm() * rb.norm()).item()
    return float((ra @ rb).item() / denominator) if denominator > 0 else 0.0


def best_of_n(proxy: torch.Tensor, true: torch.Tensor, n: int) -> tuple[float, float]:
    """Best-of-n selection by a proxy reward, in expectation: for each prompt (row) of ``k`` samples,
    draw ``n`` of them without replacement and keep the one the proxy scores highest; returns the
    expected (proxy, true) score of the kept sample, averaged over the rows.

    Exact, not sampled: sorted by proxy, the sample of rank ``i`` (1 = lowest) is the best of a random
    n-subset with probability ``C(i-1, n-1) / C(k, n)``. ``proxy`` and ``true`` are ``(prompts, k)``;
    ties in the proxy are broken by position.
    """
    proxy, true = proxy.detach().double().cpu(), true.detach().double().cpu()
    if proxy.shape != true.shape or proxy.dim() != 2:
        raise ValueError(f"proxy and true must be (prompts, k) of one shape, got {tuple(proxy.shape)}, {tuple(true.shape)}")
    k = proxy.shape[1]
    if not 1 <= n <= k:
        raise ValueError(f"n must be in 1..{k}, got {n}")
    ranks = torch.arange(1, k + 1, dtype=torch.float64)

    def log_choose(a, b):
        return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma(a - b + 1)

    n_, k_ = torch.tensor(float(n), dtype=torch.float64), torch.tensor(float(k), dtype=torch.float64)
    # C(i-1, n-1) / C(k, n), and 0 below rank n (clamped there to keep lgamma's arguments valid)
    weight = torch.exp(log_choose((ranks - 1).clamp(min=n - 1), n_ - 1) - log_choose(k_, n_)) * (ranks >= n)
    order = torch.argsort(proxy, dim=1, stable=True)
    kept_proxy = (proxy.gather(1, order) * weight).sum(1).mean().item()
    kept_true = (true.gather(1, order) * weight).sum(1).mean().item()
    return kept_proxy, kept_true


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || base) = log n - (n - 1) / n, in nats: how far selection moves from the base policy."""
    import math

    return math.log(n) - (n - 1) / n
