"""The annotator's café: short drink reviews and the hidden annotator who scores them.

The lecture's running example: "the annotator really likes matcha, and they're lukewarm
about coffee". The annotator's taste has several parts, so that a reward model learned from
its rankings is imperfect and a policy can exploit it:

    score = drink + sentiment - length - repetition

* drink: how much the annotator likes the drinks the text mentions (mean over distinct drinks);
* sentiment: +0.25 per positive word, -0.25 per negative word, capped to [-0.5, 0.5];
* length: 0.05 per word beyond 12 (the annotator likes brevity);
* repetition: 0.3 per repeated word (the annotator hates rambling).

The best achievable score is ``BEST_SCORE`` = 1.0 + 0.5 = 1.5: a short review of a matcha drink
with two positive words and nothing repeated.
"""
from __future__ import annotations

import random
import re
import string

# How the annotator feels about each drink (the lecture: matcha yes, coffee meh).
DRINK_PREFERENCE = {
    "matcha": 1.0,
    "chai": 0.5,
    "green tea": 0.5,
    "hot chocolate": 0.3,
    "coffee": 0.1,
    "espresso": 0.1,
    "cappuccino": 0.1,
    "flat white": 0.1,
    "decaf": -0.3,
}
POSITIVE_WORDS = {"lovely", "smooth", "creamy", "fresh", "delicious", "perfect", "great", "rich", "friendly", "cozy"}
NEGATIVE_WORDS = {"bitter", "bland", "burnt", "watery", "cold", "stale", "rude", "awful", "slow", "sour"}
STOP_WORDS = {"a", "an", "the", "i", "it", "was", "and", "my", "with", "of", "is", "to", "we", "they", "but", "so", "very"}
FREE_WORDS = 12
LENGTH_PENALTY = 0.05
REPEAT_PENALTY = 0.3
SENTIMENT_STEP = 0.25
SENTIMENT_CAP = 0.5
BEST_SCORE = max(DRINK_PREFERENCE.values()) + SENTIMENT_CAP

REVIEW_PROMPTS = ["Review:", "Café review:", "A customer writes:", "Tasting note:"]

_WORD = re.compile(r"[a-zé']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def mentioned_drinks(text: str) -> list[str]:
    lowered = text.lower()
    return [d for d in DRINK_PREFERENCE if re.search(rf"\b{d}\b", lowered)]


def annotator_score(text: str) -> float:
    """The hidden annotator's scalar score of one review (higher is better)."""
    tokens = words(text)
    drinks = mentioned_drinks(text)
    drink = sum(DRINK_PREFERENCE[d] for d in drinks) / len(drinks) if drinks else 0.0
    sentiment = SENTIMENT_STEP * (sum(w in POSITIVE_WORDS for w in tokens) - sum(w in NEGATIVE_WORDS for w in tokens))
    sentiment = max(-SENTIMENT_CAP, min(SENTIMENT_CAP, sentiment))
    length = LENGTH_PENALTY * max(0, len(tokens) - FREE_WORDS)
    content = [w for w in tokens if w not in STOP_WORDS]
    repetition = REPEAT_PENALTY * (len(content) - len(set(content)))
    return round(drink + sentiment - length - repetition, 4)


def annotator_scores(texts: list[str]) -> list[float]:
    return [annotator_score(t) for t in texts]


def annotator_ranking(texts: list[str], labels: list[str] | None = None, resolution: float = 0.1) -> str:
    """Rank texts in the lecture's notation, best first: ``"D > G > A = B"``.

    Texts whose scores agree to ``resolution`` are tied (``=``). Labels default to A, B, C, ...
    """
    if not texts:
        raise ValueError("annotator_ranking needs at least one text")
    labels = list(labels) if labels is not None else list(string.ascii_uppercase[: len(texts)])
    if len(labels) != len(texts):
        raise ValueError(f"got {len(labels)} labels for {len(texts)} texts")
    levels = [round(annotator_score(t) / resolution) for t in texts]
    groups: dict[int, list[str]] = {}
    for label, level in sorted(zip(labels, levels), key=lambda p: -p[1]):
        groups.setdefault(level, []).append(label)
    return " > ".join(" = ".join(group) for _, group in sorted(groups.items(), key=lambda g: -g[0]))


# ----------------------------------------------------------------------------- the corpus
_DRINK_NAMES = {
    "matcha": ["matcha latte", "iced matcha", "matcha"],
    "chai": ["chai latte", "chai"],
    "green tea": ["green tea"],
    "hot chocolate": ["hot chocolate"],
    "coffee": ["coffee", "black coffee", "iced coffee"],
    "espresso": ["espresso", "double espresso"],
    "cappuccino": ["cappuccino"],
    "flat white": ["flat white"],
    "decaf": ["decaf latte", "decaf"],
}
_OPENERS = ["I had a {d}.", "I ordered a {d}.", "We tried the {d}.", "My friend got a {d}.", "The {d} here", "Got a {d} today."]
_BODIES_POS = ["It was {p}.", "It was {p} and {p2}.", "So {p}.", "The staff were {p}.", "Really {p}."]
_BODIES_NEG = ["It was {n}.", "It was {n} and {n2}.", "Kind of {n}.", "The service was {n}.", "A bit {n}."]
_BODIES_NEU = ["It was fine.", "It was okay.", "Nothing special.", "Just a normal cup."]
_CLOSERS_POS = ["I would come back.", "Great spot!", "Will order again.", "Worth it."]
_CLOSERS_NEG = ["Never again.", "Not worth it.", "I left early."]
_CLOSERS_NEU = ["Not bad.", "", "", "Maybe next time."]


def _fill_opener(rng: random.Random, drink: str) -> str:
    opener = rng.choice(_OPENERS).format(d=drink)
    if opener.startswith("The ") and not opener.endswith("."):
        opener += rng.choice([" is good.", " is popular.", " is new."])
    return re.sub(r"\ba ([aeiou])", r"an \1", opener)


def generate_review(rng: random.Random) -> str:
    """One synthetic review; the corpus is deliberately indifferent to the annotator's taste."""
    kind = rng.choice(list(_DRINK_NAMES))
    drink = rng.choice(_DRINK_NAMES[kind])
    mood = rng.choices(["pos", "neg", "neu"], weights=[0.4, 0.35, 0.25])[0]
    pos, neg = sorted(POSITIVE_WORDS), sorted(NEGATIVE_WORDS)
    parts = [_fill_opener(rng, drink)]
    for _ in range(rng.choice([1, 1, 2])):
        if mood == "pos":
            p, p2 = rng.sample(pos, 2)
            parts.append(rng.choice(_BODIES_POS).format(p=p, p2=p2))
        elif mood == "neg":
            n, n2 = rng.sample(neg, 2)
            parts.append(rng.choice(_BODIES_NEG).format(n=n, n2=n2))
        else:
            parts.append(rng.choice(_BODIES_NEU))
    if rng.random() < 0.15:  # some rambling, so brevity and repetition vary in the corpus
        parts.append(rng.choice(["The music was loud and the room was full of people working.",
                                 "I sat by the window for an hour and read a book.",
                                 f"The {drink} was a {drink} like any other {drink}."]))
    closer = rng.choice({"pos": _CLOSERS_POS, "neg": _CLOSERS_NEG, "neu": _CLOSERS_NEU}[mood])
    if closer:
        parts.append(closer)
    return " ".join(parts)


def generate_reviews(n: int, seed: int = 0) -> list[dict]:
    """``n`` (prompt, review) records, deterministic in ``seed``."""
    rng = random.Random(seed)
    return [{"prompt": rng.choice(REVIEW_PROMPTS), "text": " " + generate_review(rng)} for _ in range(n)]


def review_prompts(n: int, seed: int = 0) -> list[str]:
    """Prompts for sampling reviews from a policy."""
    rng = random.Random(seed)
    return [rng.choice(REVIEW_PROMPTS) for _ in range(n)]
