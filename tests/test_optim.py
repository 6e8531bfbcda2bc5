import math

import pytest
import torch

from rlcourse.config import Report
from rlcourse.optim import GradientVariance, optimizer_step


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


def test_masked_whiten_matches_hand_computed_statistics():
    from rlcourse.core import masked_whiten

    x = torch.tensor([[1.0, 3.0, 100.0], [5.0, 7.0, -50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    # real values 1, 3, 5, 7: mean 4, population variance (9 + 1 + 1 + 9) / 4 = 5
    expected = torch.tensor([[-3.0, -1.0, 0.0], [1.0, 3.0, 0.0]]) / math.sqrt(5.0)
    assert torch.allclose(masked_whiten(x, mask), expected, atol=1e-6)


def test_map_chunks_equals_one_pass_over_the_whole_rollout():
    from rlcourse.model import load_tokenizer
    from rlcourse.rollout import batch_from_texts, map_chunks

    tok = load_tokenizer("tiny")
    completions = [" good", " a very long review of the cafe", " ok", " matcha is lovely", " no"]
    batch = batch_from_texts(tok, ["The cafe:"] * 5, completions)
    calls = []

    def lengths(rollout):
        calls.append(len(rollout))
        return rollout.completion_mask.sum(-1)

    assert map_chunks(lengths, batch, chunk_size=2).tolist() == batch.completion_mask.sum(-1).tolist()
    assert calls == [2, 2, 1]


def test_rank_correlation_against_hand_computed_cases():
    from rlcourse.rewards import average_ranks, rank_correlation

    assert average_ranks(torch.tensor([10.0, 30.0, 20.0, 30.0])).tolist() == [1.0, 3.5, 2.0, 3.5]
    assert math.isclose(rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]), 1.0)
    assert math.isclose(rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]), -1.0)
    assert math.isclose(rank_correlation([1.0, 2.0, 3.0], [torch.e ** 1, torch.e ** 5, torch.e ** 9]), 1.0)  # scale-free
    # ranks (1, 2, 3, 4) against (2, 1, 4, 3): Pearson = 1 - 6 * sum d^2 / (n (n^2 - 1)) = 1 - 6 * 4 / 60 = 0.6
    assert math.isclose(rank_correlation([1, 2, 3, 4], [2, 1, 4, 3]), 0.6)
    assert rank_correlation([1, 1, 1], [1, 2, 3]) == 0.0   # no variation on one side


def test_gradient_variance_equals_the_variance_of_the_stacked_draws():
    gen = torch.Generator().manual_seed(0)
    # parameters with very different scales, and means far larger than their spread
    scale = torch.tensor([1e-3, 1.0, 30.0, 1.0])
    offset = torch.tensor([0.0, 0.0, 0.0, 1e3])
    draws = [torch.randn(4, generator=gen) * scale + offset for _ in range(24)]
    variance = GradientVariance()
    for g in draws:
        variance.add(g)
    expected = torch.stack(draws).double().var(0).sum().item()            # unbiased, over the draws
    assert abs(variance.total() - expected) <= 1e-9 * expected
    assert not any(isinstance(v, list) for v in vars(variance).values()), "the draws must not be kept"
    two = GradientVariance()
    two.add(torch.tensor([1.0, 2.0]))
    two.add(torch.tensor([3.0, 2.0]))
    assert two.total() == 2.0                                             # (1-2)^2 + (3-2)^2 over n - 1 = 1
    one = GradientVariance()
    one.add(torch.ones(3))
    with pytest.raises(ValueError):
        one.total()
