"""Zero-shot suggestions from the label set: no labels needed, only the label names (and an
optional one-line description each) embedded with the same model as the texts.

Pure numpy, no Django. The steps:

1. ``label_prompts``: one text per label ("business: companies, markets, the economy").
2. ``zero_shot_fit``: cosine similarity of every item vector to every label vector, then a few
   rounds of refinement on the unlabeled pool itself (transductive, in the spirit of Lbl2Vec and
   of k-means seeded with the label vectors): each label vector moves towards the centroid of
   the items it claims most confidently, which adapts the short label texts to how the data
   actually reads. Human labels, when there are some, pull each label vector to the centroid of
   its labeled items as well.
3. The probabilities are a softmax of the similarities over a temperature. The temperature is
   fitted by maximum likelihood on the human labels when at least ``MIN_CALIBRATION_LABELS``
   exist (so the confidence shown means what it says on this project's data); before that a
   default chosen on development data (``DEFAULT_TEMPERATURE``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Chosen on a development half of BBC News and reported on the other half (docs/benchmarks.md):
# the softmax temperature over cosine similarities of MiniLM vectors with the lowest
# calibration error before any label (ECE 0.021 dev / 0.013 reported).
DEFAULT_TEMPERATURE = 0.03
# Fitting the temperature on fewer labels was worse than the default there (ECE 0.04-0.06 on
# 5-10 labels), so the human labels take over from 20 on.
MIN_CALIBRATION_LABELS = 20
REFINE_ROUNDS = 3
# Share of each label's most confident items whose centroid refines its vector.
REFINE_TOP_SHARE = 1.0
# Weight of the label text's own vector against the pool centroid in each refinement: keeps a
# label anchored to its description where the data's clusters do not follow the labels.
PROMPT_WEIGHT = 0.3


def label_prompts(labels: Sequence[tuple[str, str]]) -> list[str]:
    """The text embedded for each (value, description) label."""
    prompts = []
    for value, description in labels:
        name = value.replace("_", " ").replace("-", " ").strip()
        description = (description or "").strip()
        prompts.append(f"{name}: {description}" if description else name)
    return prompts


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class ZeroShotModel:
    """Refined label vectors and the softmax temperature; `predict_proba` scores vectors."""

    label_vectors: np.ndarray  # (n_labels, dim), L2-normalised
    temperature: float
    calibrated_on: int  # human labels the temperature was fitted on (0: the default)

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors, dtype=np.float64) @ self.label_vectors.T

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        return softmax(self.similarities(vectors) / self.temperature)


def refine_label_vectors(
    *,
    pool: np.ndarray,
    label_vectors: np.ndarray,
    rounds: int = REFINE_ROUNDS,
    top_share: float = REFINE_TOP_SHARE,
    prompt_weight: float = PROMPT_WEIGHT,
    known: np.ndarray | None = None,
    known_labels: np.ndarray | None = None,
) -> np.ndarray:
    """Move each label vector towards the centroid of the pool items that it claims (argmax
    similarity) with the highest margin over the runner-up, `rounds` times. Items with a human
    label (`known` rows, `known_labels` class indices) always count for their class."""
    prompt = _normalise(label_vectors)
    current = prompt.copy()
    pool = np.asarray(pool, dtype=np.float64)
    n_labels = len(prompt)
    if len(pool) == 0:
        return current
    for _ in range(rounds):
        sims = pool @ current.T
        best = sims.argmax(axis=1)
        if n_labels > 1:
            top2 = np.partition(sims, n_labels - 2, axis=1)[:, -2:]
            margin = top2[:, 1] - top2[:, 0]
        else:
            margin = sims[:, 0]
        updated = current.copy()
        for c in range(n_labels):
            members = np.flatnonzero(best == c)
            parts = []
            if len(members):
                keep = max(1, int(np.ceil(top_share * len(members))))
                chosen = members[np.argsort(-margin[members], kind="stable")[:keep]]
                parts.append(pool[chosen])
            if known is not None and known_labels is not None:
                mine = np.asarray(known)[np.asarray(known_labels) == c]
                if len(mine):
                    parts.append(np.asarray(mine, dtype=np.float64))
            if not parts:
                continue
            centroid = _normalise(np.concatenate(parts).mean(axis=0))
            updated[c] = _normalise(prompt_weight * prompt[c] + (1 - prompt_weight) * centroid)
        current = updated
    return current


def fit_temperature(
    *, similarities: np.ndarray, labels: np.ndarray, grid: np.ndarray | None = None
) -> float:
    """The temperature that maximises the likelihood of the human `labels` (class indices)
    under softmax(similarities / T): a one-parameter calibration, as temperature scaling."""
    grid = np.geomspace(0.003, 1.0, 80) if grid is None else grid
    labels = np.asarray(labels, dtype=np.int64)
    best_t, best_nll = float(grid[0]), np.inf
    for t in grid:
        proba = softmax(similarities / t)
        nll = -np.log(np.clip(proba[np.arange(len(labels)), labels], 1e-12, 1.0)).mean()
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def zero_shot_fit(
    *,
    pool: np.ndarray,
    label_vectors: np.ndarray,
    known: np.ndarray | None = None,
    known_labels: np.ndarray | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    rounds: int = REFINE_ROUNDS,
) -> ZeroShotModel:
    """Refine the label vectors on `pool` (the unlabeled item vectors; a sample is enough) and,
    when at least MIN_CALIBRATION_LABELS human labels are given (`known` vectors with class
    indices `known_labels`), fit the temperature on them."""
    has_known = known is not None and known_labels is not None and len(known_labels) > 0
    refined = refine_label_vectors(
        pool=pool,
        label_vectors=label_vectors,
        rounds=rounds,
        known=known if has_known else None,
        known_labels=known_labels if has_known else None,
    )
    calibrated_on = 0
    if has_known and len(known_labels) >= MIN_CALIBRATION_LABELS:
        sims = np.asarray(known, dtype=np.float64) @ refined.T
        temperature = fit_temperature(similarities=sims, labels=np.asarray(known_labels))
        calibrated_on = len(known_labels)
    return ZeroShotModel(
        label_vectors=refined, temperature=float(temperature), calibrated_on=calibrated_on
    )


def expected_calibration_error(*, proba: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of the top label over equal-width confidence bins."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)
