"""Rollouts: sample completions from a policy, and score them with per-token log-probs.

A batch is left-padded prompts followed by sampled completions:

    prompt_ids  [pad pad p1 p2 p3]   completion_ids  [c1 c2 EOS pad]
    prompt_mask [ 0   0  1  1  1 ]   completion_mask [ 1  1  1   0 ]

GPT-2 reads absolute positions, so a left-padded row must be given ``position_ids`` that start at
0 on its first real token; without them its log-probs are silently wrong (and RL stops learning).

Every tensor made here lives on the policy's device: a rollout is sampled on the model's device,
and the helpers that pick rows of it (``subset``), score it (``last_token_scores``) or pair its
rows (``preference_pairs``) put their results on ``rollout.device``. Row indices may come from the
CPU (``torch.randperm``, a list, a ``range``): they are moved to the rollout's device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import cache_of, position_ids_from_mask
from .core import gather_log_probs, through_first


@dataclass
class Rollout:
    prompts: list[str]
    prompt_ids: torch.Tensor  # (B, P) long, left-padded
    prompt_mask: torch.Tensor  # (B, P) long
    completion_ids: torch.Tensor  # (B, T) long, padded after EOS
    completion_mask: torch.Tensor  # (B, T) float: 1 up to and including the first EOS
    texts: list[str]  # decoded completions, without EOS

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask.long()], dim=1)

    @property
    def device(self) -> torch.device:
        return self.completion_ids.device

    def __len__(self) -> int:
        return len(self.texts)


def encode_prompts(tokenizer, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, padding_side="left")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


@torch.no_grad()
def sample_completions(model, tokenizer, prompts: list[str], max_new_tokens: int = 32, temperature: float = 1.0,
                       num_samples: int = 1, return_scores: bool = False):
    """Sample ``num_samples`` completions per prompt (consecutive rows share a prompt).

    Pure ancestral sampling from ``softmax(logits / temperature)``: no top-k, no top-p. With
    ``return_scores`` also returns the sampler's own log-probs of the sampled tokens ``(B, T)``.
    With ``num_samples > 1`` each prompt is read once and its keys and values are shared by its
    samples (``shared_prompt_cache``). On the CPU the samples are token for token the ones ``generate``
    draws on the repeated prompts (tested); on a GPU, kernels may round differently.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    unique_ids, unique_mask = encode_prompts(tokenizer, prompts, device)
    prompt_ids, prompt_mask = unique_ids.repeat_interleave(num_samples, 0), unique_mask.repeat_interleave(num_samples, 0)
    cache = shared_prompt_cache(model, unique_ids, unique_mask, num_samples) if num_samples > 1 else {}
    out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True, temperature=temperature,
                         top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, return_dict_in_generate=True, output_scores=return_scores,
                         **cache)
    model.train(was_training)
    prompts = [p for p in prompts for _ in range(num_samples)]
    completion_ids = out.sequences[:, prompt_ids.shape[1]:]
    mask = through_first(completion_ids, tokenizer.eos_token_id)
    texts = decode_completions(tokenizer, completion_ids, mask)
    rollout = Rollout(prompts, prompt_ids, prompt_mask, completion_ids, mask, texts)
    if not return_scores:
        return rollout
    scores = torch.stack(out.scores, dim=1)  # (B, T, V): logits / temperature, as sampled
    return rollout, gather_log_probs(scores, completion_ids) * mask


def shared_prompt_cache(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, num_samples: int) -> dict:
    """The keys and values of every prompt token but the last, computed once per prompt and repeated
    ``num_samples`` times, as ``generate``'s cache argument (``{}`` for one-token prompts).

    ``generate`` then reads only each row's last prompt token before sampling. The prompt is most of
    a short answer's compute, so this saves about a quarter of the sampling time at 16 samples per prompt.
    """
    if prompt_ids.shape[1] < 2:
        return {}
    head_ids, head_mask = prompt_ids[:, :-1], prompt_mask[:, :-1]
    out = model(input_ids=head_ids, attention_mask=head_mask, position_ids=position_ids_from_mask(head_mask),
                use_cache=True, logits_to_keep=1)
    name, cache = cache_of(out)
    cache.batch_repeat_interleave(num_samples)
    return {name: cache}


def decode_completions(tokenizer, completion_ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    texts = []
    for ids, m in zip(completion_ids.tolist(), mask.tolist()):
        kept = [i for i, keep in zip(ids, m) if keep and i != tokenizer.eos_token_id]
        texts.append(tokenizer.decode(kept, skip_special_tokens=True))
    return texts


def completion_logits(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Logits ``(B, T, V)`` aligned with the completion: ``logits[:, t]`` produced ``completion_ids[:, t]``.

    The transformer reads every position, but only the ``T`` positions that predict a completion
    token (``P - 1 ... P + T - 2``) go through the LM head (``logits_to_keep``): the same numbers as
    slicing a full forward's logits, without computing (and back-propagating through) the prompt's.
    """
    input_ids, attention_mask = rollout.input_ids, rollout.attention_mask
    P, T = rollout.prompt_ids.shape[1], rollout.completion_ids.shape[1]
    predicting = torch.arange(P - 1, P - 1 + T, device=input_ids.device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids_from_mask(attention_mask),
                   use_cache=False, logits_to_keep=predicting).logits
    return logits if temperature == 1.0 else logits / temperature


def completion_logps(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs ``(B, T)`` of the completion under ``model`` (0 where masked out)."""
    logps = gather_log_probs(completion_logits(model, rollout, temperature), rollout.completion_ids)
    return logps * rollout.completion_mask


def completion_values(value_model, rollout: Rollout) -> torch.Tensor:
    """A value head's ``V(s_t)`` ``(B, T)`` for each completion token's state (the prefix before it)."""
    values = value_model(rollout.input_ids, rollout.attention_mask)
    P = rollout.prompt_ids.shape[1]
    return values[:, P - 1:-1] * rollout.completion_mask


def batch_from_texts(tokenizer, prompts: list[str], completions: list[str], device="cpu") -> Rollout:
    """A rollout built from given text (e.g. SFT targets) on ``device``; each completion gets an EOS."""
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device)
    rows = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in completions]
    width = max(map(len, rows))
    padded = [row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows]
    real = [[1.0] * len(row) + [0.0] * (width - len(row)) for row in rows]
    completion_ids = torch.tensor(padded, dtype=torch.long, device=prompt_ids.device)
    mask = torch.tensor(real, device=prompt_ids.device)
    return Rollout(list(prompts), prompt_ids, prompt_mask, completion_ids, mask, list(completions))


def row_index(rows, device) -> torch.Tensor:
    """Row numbers (a list, a ``range`` or a tensor, e.g. from ``torch.randperm``) as a long tensor on ``device``."""
    if isinstance(rows, torch.Tensor):
        return rows.to(device=device, dtype=torch.long)
    return torch.tensor(list(rows), dtype=torch.long, device=device)


def subset(rollout: Rollout, rows) -> Rollout:
    """The given rows of a rollout, in that order (a minibatch, the kept samples, the two sides of pairs).

    ``rows``: row numbers (a list, a ``range``, a long tensor on any device) or a bool tensor ``(B,)``.
    """
    if isinstance(rows, torch.Tensor) and rows.dtype == torch.bool:
        rows = torch.nonzero(rows).squeeze(1)
    picked = rows.tolist() if isinstance(rows, torch.Tensor) else list(rows)
    index = row_index(picked, rollout.device)
    return Rollout([rollout.prompts[i] for i in picked], rollout.prompt_ids[index], rollout.prompt_mask[index],
                   rollout.completion_ids[index], rollout.completion_mask[index], [rollout.texts[i] for i in picked])


def last_token_scores(value_model, rollout: Rollout) -> torch.Tensor:
    """A value head's output at each row's last real token ``(B,)``: a reward model's score of the whole text."""
    values = value_model(rollout.input_ids, rollout.attention_mask)  # (B, P + T)
    last = rollout.prompt_ids.shape[1] + rollout.completion_mask.sum(-1).long() - 1
    return values.gather(1, last.unsqueeze(1)).squeeze(1)


def preference_pairs(rankings: list[str], group_size: int, to_pairs, device,
                     labels: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ") -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``(chosen, rejected)``, each ``(N,)`` long on ``device``, of every comparison in the rankings.

    ``rankings[g]`` ranks the ``group_size`` texts of rows ``g*group_size ...`` labelled A, B, C, ...
    (``"D > G > A = B"``); ``to_pairs`` turns one ranking into ``(winner, loser)`` labels (notebook 04's
    ``ranking_to_pairs``). The group of pair ``n`` is ``chosen[n] // group_size``.
    """
    chosen, rejected = [], []
    for g, ranking in enumerate(rankings):
        for winner, loser in to_pairs(ranking):
            chosen.append(g * group_size + labels.index(winner))
            rejected.append(g * group_size + labels.index(loser))
    return row_index(chosen, device), row_index(rejected, device)


def map_chunks(fn, rollout: Rollout, chunk_size: int = 256) -> torch.Tensor:
    """``torch.cat`` of ``fn(subset(rollout, rows))`` over consecutive chunks of ``chunk_size`` rows:
    scores or log-probs of a large rollout, a chunk at a time (memory stays bounded)."""
    return torch.cat([fn(subset(rollout, range(start, min(start + chunk_size, len(rollout)))))
                      for start in range(0, len(rollout), chunk_size)])
