"""The annotator's café: hand-computed scores, rankings that agree with scores, determinism."""
import random

import pytest

from rlcourse import cafe
from rlcourse.reference import ranking_to_pairs


@pytest.mark.parametrize("text, expected", [
    ("I had a matcha latte. It was lovely and smooth.", 1.0 + 0.5),  # best drink, two positive words
    ("I had a coffee. It was bitter.", 0.1 - 0.25),  # lukewarm about coffee
    ("A matcha and a coffee.", (1.0 + 0.1) / 2),  # mean over the drinks mentioned
    ("Lovely lovely lovely matcha.", 1.0 + 0.5 - 2 * 0.3),  # sentiment capped, two repeats
    ("Nothing to say.", 0.0),
    # 16 words, none repeated: 4 over the free 12
    ("I had a matcha latte today near the station after work with three good old friends.", 1.0 - 0.05 * 4),
])
def test_scores_by_hand(text, expected):
    assert cafe.annotator_score(text) == pytest.approx(expected)


def test_rankings_agree_with_scores():
    rng = random.Random(0)
    reviews = [r["text"] for r in cafe.generate_reviews(300, seed=5)]
    for _ in range(200):
        texts = rng.sample(reviews, rng.randint(2, 6))
        ranking = cafe.annotator_ranking(texts)
        labels = "ABCDEF"[: len(texts)]
        score = dict(zip(labels, cafe.annotator_scores(texts)))
        assert sorted(l.strip() for level in ranking.split(">") for l in level.split("=")) == list(labels)
        for winner, loser in ranking_to_pairs(ranking):
            assert score[winner] > score[loser]
        for level in ranking.split(">"):
            tied = [l.strip() for l in level.split("=")]
            assert all(abs(score[a] - score[b]) < 0.1 + 1e-9 for a in tied for b in tied)


def test_ties_are_written_with_equals():
    assert cafe.annotator_ranking(["I had a matcha.", "I had a matcha!", "Nothing."]) == "A = B > C"
    with pytest.raises(ValueError):
        cafe.annotator_ranking([])


def test_reviews_are_deterministic_and_varied():
    assert cafe.generate_reviews(20, seed=1) == cafe.generate_reviews(20, seed=1)
    assert cafe.generate_reviews(20, seed=1) != cafe.generate_reviews(20, seed=2)
    scores = cafe.annotator_scores([r["text"] for r in cafe.generate_reviews(500, seed=0)])
    assert max(scores) <= cafe.BEST_SCORE and min(scores) < 0 < max(scores)
