"""What the helper package's own plumbing computes on the way (log-probs of sampled tokens, the
mask of a sampled response, the integer an answer ends with).

The answer key (``rlcourse.reference``) is a separate module: the plumbing never imports it, and
neither do student code or the grader's sandbox (whose copy of the package has neither module).
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F

_INTEGER = re.compile(r"-?\d+")


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Half precision up-cast before a log/exp; float32/float64 kept as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def gather_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log_softmax(logits)[b, t, tokens[b, t]]: (B, T, V), (B, T) -> (B, T)."""
    return F.log_softmax(upcast(logits), dim=-1).gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)


def through_first(ids: torch.Tensor, token_id: int) -> torch.Tensor:
    """1 up to and including the first ``token_id`` of each row, 0 after it (float)."""
    hit = (ids == token_id).long()
    return ((hit.cumsum(-1) - hit) == 0).float()


def last_integer(text: str) -> int | None:
    """The last integer (``-?\\d+``) in a text, or None."""
    numbers = _INTEGER.findall(text)
    return int(numbers[-1]) if numbers else None


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the positions where ``mask`` is 1 (population std); 0 where it is 0."""
    mask = mask.to(x.dtype)
    mean = (x * mask).sum() / mask.sum()
    var = (((x - mean) * mask) ** 2).sum() / mask.sum()
    return (x - mean) / (var.sqrt() + eps) * mask


def trust_region_stats(old_logps: torch.Tensor, new_logps: torch.Tensor, mask: torch.Tensor,
                       clip_eps: float) -> dict[str, float]:
    """How far one update moved the policy, on the tokens it was trained on (sampled by the old policy).

    ``kl``: KL(old || new) per token, the k3 estimate E_old[r - 1 - log r] with r = pi_new / pi_old
    (unbiased, never negative); ``clip_fraction``: the share of tokens whose r ended outside
    [1 - clip_eps, 1 + clip_eps], where the clipped objective stops pulling.
    """
    m = mask.double()
    log_ratio = (new_logps.double() - old_logps.double()) * m
    kl = torch.expm1(log_ratio) - log_ratio
    outside = (torch.expm1(log_ratio).abs() > clip_eps).double()
    tokens = m.sum().clamp(min=1)
    return {"kl": ((kl * m).sum() / tokens).item(), "clip_fraction": ((outside * m).sum() / tokens).item()}
