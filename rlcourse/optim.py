"""One optimiser step, the same in every training loop of the course."""
from __future__ import annotations

import torch


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float | None = 1.0) -> float:
    """zero_grad, backward, clip the global gradient norm to ``max_grad_norm`` (None: no clipping), step.

    Returns the gradient norm before clipping (a Python float; NaN-free input gives a finite norm)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    # an infinite bound scales every gradient by exactly 1: the same call measures the norm without clipping
    norm = torch.nn.utils.clip_grad_norm_(params, float("inf") if max_grad_norm is None else max_grad_norm)
    optimizer.step()
    return float(norm)
