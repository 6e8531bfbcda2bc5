"""Rewards and evaluations: the annotator's score of a review, the answer checker of a word problem."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .cafe import annotator_score, review_prompts
from .reference import answer_reward
from .rollout import sample_completions


def review_rewards(texts: list[str]) -> torch.Tensor:
    """The hidden annotator's score of each review ``(B,)``."""
    return torch.tensor([annotator_score(t) for t in texts])


def answer_rewards(texts: list[str], answers: list[int]) -> torch.Tensor:
    """1.0 where the completion's last integer is the right answer ``(B,)``."""
    if len(texts) != len(answers):
        raise ValueError(f"{len(texts)} completions but {len(answers)} answers")
    return torch.tensor([answer_reward(t, a) for t, a in zip(texts, answers)])


@torch.no_grad()
def problem_accuracy(model, tokenizer, problems, temperature: float = 1.0, batch_size: int = 100,
                     max_new_tokens: int = 32, progress: bool = True) -> float:
    """Exact-match accuracy of sampled answers on ``problems`` (fraction in [0, 1])."""
    correct = 0
    batches = range(0, len(problems), batch_size)
    for i in tqdm(batches, desc="evaluating", disable=not progress or len(batches) < 2, leave=False):
        chunk = problems[i:i + batch_size]
        rollout = sample_completions(model, tokenizer, [p.prompt for p in chunk], max_new_tokens, temperature)
        correct += answer_rewards(rollout.texts, [p.answer for p in chunk]).sum().item()
    return correct / len(problems)


@torch.no_grad()
def mean_review_score(model, tokenizer, n: int = 256, temperature: float = 1.0, max_new_tokens: int = 32,
                      seed: int = 0) -> float:
    """The annotator's mean score of ``n`` sampled reviews."""
    rollout = sample_completions(model, tokenizer, review_prompts(n, seed), max_new_tokens, temperature)
    return review_rewards(rollout.texts).mean().item()
