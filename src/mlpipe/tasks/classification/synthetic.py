"""A generated sentiment set for offline demos and tests.

Deterministic by seed, with varied vocabulary, negation ("not good"), contrast clauses ("dull at
first, but the ending is superb": the clause after "but" decides), neutral filler of varied length,
and a little label noise, so accuracy means something and is never trivially 100%.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

POSITIVE = (
    "good",
    "great",
    "superb",
    "wonderful",
    "moving",
    "delightful",
    "brilliant",
    "charming",
    "gripping",
    "heartfelt",
    "funny",
    "clever",
    "beautiful",
    "memorable",
    "touching",
    "fresh",
    "stunning",
    "witty",
    "engaging",
    "excellent",
    "uplifting",
    "masterful",
    "smart",
    "warm",
)
NEGATIVE = (
    "bad",
    "awful",
    "dull",
    "boring",
    "tedious",
    "clumsy",
    "forgettable",
    "painful",
    "bland",
    "messy",
    "shallow",
    "weak",
    "lifeless",
    "predictable",
    "tiresome",
    "silly",
    "flat",
    "hollow",
    "annoying",
    "dreary",
    "pointless",
    "sloppy",
    "stale",
    "mediocre",
)
SUBJECTS = (
    "the film",
    "this movie",
    "the acting",
    "the plot",
    "the script",
    "the soundtrack",
    "the cast",
    "the ending",
    "the direction",
    "the dialogue",
    "the story",
    "the pacing",
    "the cinematography",
    "the lead performance",
    "the humor",
    "the second half",
)
INTENSIFIERS = ("", "", "", "very ", "really ", "truly ", "quite ", "utterly ", "remarkably ")
NEGATIONS = ("not", "never", "hardly", "not at all")
FILLER = (
    "i saw it on a rainy sunday afternoon",
    "my friends had recommended it for weeks",
    "the theater was half empty",
    "it runs a little over two hours",
    "it is based on a novel from the seventies",
    "the trailer gave away a few scenes",
    "i watched it with my family",
    "it was shot in only thirty days",
    "the director has made several films before",
    "there is a short scene after the credits",
)


def _clause(rng: random.Random, positive: bool) -> str:
    subject = rng.choice(SUBJECTS)
    intensity = rng.choice(INTENSIFIERS)
    if rng.random() < 0.25:  # negation flips the adjective's polarity
        word = rng.choice(NEGATIVE if positive else POSITIVE)
        return f"{subject} is {rng.choice(NEGATIONS)} {intensity}{word}"
    word = rng.choice(POSITIVE if positive else NEGATIVE)
    return f"{subject} is {intensity}{word}"


def generate_review(rng: random.Random) -> tuple[str, int]:
    """One review and its true label (1 positive, 0 negative), before label noise."""
    label = rng.randint(0, 1)
    positive = label == 1
    if rng.random() < 0.3:  # contrast: the clause after "but" carries the sentiment
        text = f"{_clause(rng, not positive)}, but {_clause(rng, positive)}"
    else:
        text = _clause(rng, positive)
    # Varied length: most reviews are short, a few carry several sentences of neutral filler.
    n_filler = min(int(rng.expovariate(0.9)), 12)
    parts = [rng.choice(FILLER) for _ in range(n_filler)]
    parts.insert(rng.randint(0, len(parts)), text)
    return ". ".join(parts) + ".", label


def generate_rows(n: int, seed: int, label_noise: float = 0.0) -> Iterator[tuple[str, int]]:
    """Yield ``n`` (text, label) rows; ``label_noise`` is the fraction of flipped labels."""
    rng = random.Random(seed)
    for _ in range(n):
        text, label = generate_review(rng)
        if rng.random() < label_noise:
            label = 1 - label
        yield text, label
