import math

import torch

from rlcourse.config import Report
from rlcourse.optim import optimizer_step


def test_optimizer_step_clips_the_global_norm_then_steps():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = torch.optim.SGD([w], lr=1.0)
    norm = optimizer_step(opt, (w * torch.tensor([3.0, 4.0])).sum(), max_grad_norm=1.0)
    assert math.isclose(norm, 5.0, rel_tol=1e-6)               # gradient (3, 4) before clipping
    assert torch.allclose(w.detach(), torch.tensor([3.0 - 0.6, 4.0 - 0.8]))   # clipped to norm 1, lr 1


def test_optimizer_step_without_clipping_and_fresh_gradients():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=0.5)
    w.grad = torch.tensor([100.0])                               # a stale gradient must not leak in
    norm = optimizer_step(opt, 2 * w.sum(), max_grad_norm=None)
    assert math.isclose(norm, 2.0, rel_tol=1e-6)
    assert torch.allclose(w.detach(), torch.tensor([0.0]))


def test_report_prints_prefixed_result_lines(capsys):
    report = Report("05_grpo")
    report("heldout_accuracy_after", 0.65)
    report("gain_points", 12.34, ".1f")
    report("label", "text")
    assert capsys.readouterr().out.splitlines() == [
        "[result] 05_grpo_heldout_accuracy_after = 0.650",
        "[result] 05_grpo_gain_points = 12.3",
        "[result] 05_grpo_label = text",
    ]
