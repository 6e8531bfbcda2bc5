"""One optimiser step, the same in every training loop of the course."""
from __future__ import annotations

import torch


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float | None = 1.0) -> float:
    """zero_grad, backward, clip the global gradient norm to ``max_grad_norm`` (None: no clipping), step.

    Returns the gradient norm before clipping (a Python float; NaN-free input gives a finite norm)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if max_grad_norm is None:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params])) if params else torch.zeros(())
    else:
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    return float(norm)
