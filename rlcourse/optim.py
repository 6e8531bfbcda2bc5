"""One optimiser step, the same in every training loop of the course; and the variance of a gradient estimator."""
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


class GradientVariance:
    """The total variance of a gradient estimator, sum_k Var[g_k] over every parameter k, from its draws.

    ``add`` one flattened gradient per independent batch; ``total()`` is the sum over parameters of the
    unbiased sample variance, ``torch.stack(draws).var(0).sum()``, without keeping the draws: running
    sums in float64, two vectors the size of the model (24 draws of an 86M-parameter model would be 8 GB).
    """

    def __init__(self):
        self.n = 0
        self.sum = self.sum_sq = None

    def add(self, grad: torch.Tensor) -> None:
        g = grad.detach().reshape(-1).double()
        if self.sum is None:
            self.sum, self.sum_sq = torch.zeros_like(g), torch.zeros_like(g)
        self.sum += g
        self.sum_sq += g * g
        self.n += 1

    def total(self) -> float:
        if self.n < 2:
            raise ValueError(f"the variance needs at least two draws, got {self.n}")
        mean = self.sum / self.n
        return ((self.sum_sq - self.n * mean * mean).sum() / (self.n - 1)).item()
