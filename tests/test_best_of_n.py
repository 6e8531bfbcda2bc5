"""best_of_n (notebook 04's over-optimisation curve) against brute force over every subset."""
import itertools
import math

import pytest
import torch

from rlcourse.rewards import best_of_n, best_of_n_kl


def brute_force(proxy, true, n):
    kept_proxy = kept_true = 0.0
    for row in range(proxy.shape[0]):
        subsets = list(itertools.combinations(range(proxy.shape[1]), n))
        for subset in subsets:
            best = max(subset, key=lambda i: (float(proxy[row, i]), i))
            kept_proxy += float(proxy[row, best]) / len(subsets) / proxy.shape[0]
            kept_true += float(true[row, best]) / len(subsets) / proxy.shape[0]
    return kept_proxy, kept_true


def test_best_of_n_is_the_exact_expectation():
    generator = torch.Generator().manual_seed(0)
    proxy, true = torch.randn(3, 7, generator=generator), torch.randn(3, 7, generator=generator)
    for n in range(1, 8):
        assert best_of_n(proxy, true, n) == pytest.approx(brute_force(proxy, true, n), abs=1e-9)
    assert best_of_n(proxy, true, 1) == pytest.approx((proxy.mean().item(), true.mean().item()))
    assert best_of_n(proxy, true, 7)[1] == pytest.approx(true.gather(1, proxy.argmax(1, keepdim=True)).mean().item())


def test_best_of_n_with_large_k_stays_finite():
    generator = torch.Generator().manual_seed(1)
    proxy = torch.randn(2, 512, generator=generator)
    kept, true = best_of_n(proxy, proxy, 256)
    assert math.isfinite(kept) and kept == true and kept > best_of_n(proxy, proxy, 8)[0]


def test_best_of_n_refuses_bad_shapes_and_n():
    with pytest.raises(ValueError):
        best_of_n(torch.zeros(2, 3), torch.zeros(2, 4), 1)
    with pytest.raises(ValueError):
        best_of_n(torch.zeros(2, 3), torch.zeros(2, 3), 4)


def test_best_of_n_kl():
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(64) == pytest.approx(math.log(64) - 63 / 64)
