"""Query strategies: turn class probabilities (or, at cold start, just vectors) into queue
priorities. Pure numpy/scikit-learn/modAL, no Django: the live ranking job and the simulation
call these same functions.

Priority scale (higher is served first): a strategy's informativeness score lies in [0, 1];
items picked for the current diverse batch or as cold-start representatives are lifted above
every other item (priority in (2, 3]) so that they are served first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RANDOM = "random"
LEAST_CONFIDENCE = "least_confidence"
MARGIN = "margin"
ENTROPY = "entropy"
STRATEGIES = (RANDOM, LEAST_CONFIDENCE, MARGIN, ENTROPY)

BATCH_TOP = 2.0  # priorities of a selected batch start above this


def informativeness(*, strategy: str, proba: np.ndarray, seed: int = 0) -> np.ndarray:
    """How useful a label on each item would be, in [0, 1]: modAL's uncertainty measures over
    the probabilities (least confidence = 1 - max p; margin = 1 - (p1 - p2); entropy divided by
    log(n classes)), or uniform random numbers for `random`."""
    # Imported here, not at the top: modAL imports torch, which web processes never need.
    from modAL.uncertainty import _proba_entropy, _proba_margin, _proba_uncertainty

    n, n_classes = proba.shape
    if strategy == RANDOM:
        return np.random.default_rng(seed).random(n)
    if strategy == LEAST_CONFIDENCE:
        return np.asarray(_proba_uncertainty(proba), dtype=np.float64)
    if strategy == MARGIN:
        return 1.0 - np.asarray(_proba_margin(proba), dtype=np.float64)
    if strategy == ENTROPY:
        scale = np.log(n_classes) if n_classes > 1 else 1.0
        return np.asarray(_proba_entropy(proba), dtype=np.float64) / scale
    raise ValueError(f"Unknown query strategy '{strategy}'; choose one of {STRATEGIES}.")


def diverse_batch(
    *,
    vectors: np.ndarray,
    scores: np.ndarray,
    batch_size: int,
    pool_factor: int = 10,
    weight: float = 0.5,
) -> np.ndarray:
    """Indices of a batch of `batch_size` items that are informative AND unlike each other.

    Greedy selection among the `batch_size * pool_factor` highest-scoring items: each step takes
    the candidate maximising ``(1 - weight) * score + weight * (1 - max cosine similarity to the
    items already taken)`` (vectors are L2-normalised). Annotators served this batch at the
    same time are not handed near-duplicates."""
    n = len(scores)
    if n == 0 or batch_size <= 0:
        return np.zeros(0, dtype=np.int64)
    pool_size = min(n, batch_size * pool_factor)
    pool = np.argpartition(-scores, pool_size - 1)[:pool_size] if pool_size < n else np.arange(n)
    pool_vectors = np.asarray(vectors[pool], dtype=np.float32)
    pool_scores = scores[pool]
    max_sim = np.full(len(pool), -1.0, dtype=np.float64)
    taken = np.zeros(len(pool), dtype=bool)
    chosen: list[int] = []
    for _ in range(min(batch_size, len(pool))):
        novelty = 1.0 - np.maximum(max_sim, 0.0) if chosen else np.ones(len(pool))
        value = (1.0 - weight) * pool_scores + weight * novelty
        value[taken] = -np.inf
        pick = int(np.argmax(value))
        taken[pick] = True
        chosen.append(pick)
        max_sim = np.maximum(max_sim, pool_vectors @ pool_vectors[pick])
    return pool[np.asarray(chosen, dtype=np.int64)]


def lift_batch(*, priorities: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """Put `batch` (in its order) above every other item."""
    out = priorities.astype(np.float64, copy=True)
    if len(batch):
        out[batch] = BATCH_TOP + (len(batch) - np.arange(len(batch))) / len(batch)
    return out


def uncertainty_priorities(
    *,
    strategy: str,
    proba: np.ndarray,
    vectors: np.ndarray | None = None,
    diversity_batch: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Queue priorities for the unlabeled pool from the model's probabilities; with
    `diversity_batch` > 0 the top of the queue is a diverse batch of that size."""
    scores = informativeness(strategy=strategy, proba=proba, seed=seed)
    if diversity_batch and vectors is not None and len(scores):
        batch = diverse_batch(vectors=vectors, scores=scores, batch_size=diversity_batch)
        return lift_batch(priorities=scores, batch=batch)
    return scores


def needs_cold_start(
    *, labels: Sequence[str], classes: Sequence[str], min_labels: int, min_per_class: int = 2
) -> bool:
    """Too few labels, or a class with fewer than `min_per_class` examples: the model is not
    usable yet, rank by representativeness instead."""
    if len(labels) < min_labels:
        return True
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    per_class = dict(zip(values.tolist(), counts.tolist(), strict=True))
    return any(per_class.get(c, 0) < min_per_class for c in classes)


def representative_priorities(
    *, vectors: np.ndarray, n_clusters: int, seed: int = 0, sample: int = 20_000
) -> np.ndarray:
    """Cold-start ranking: k-means on the vectors; the item closest to each centroid comes first,
    then the second closest of each cluster, and so on (round robin over clusters), so the first
    labels cover every region of the data. K-means is fit on at most `sample` vectors."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n = len(vectors)
    if n == 0:
        return np.zeros(0)
    k = max(1, min(n_clusters, n))
    rng = np.random.default_rng(seed)
    fit_on = vectors if n <= sample else vectors[rng.choice(n, sample, replace=False)]
    if len(fit_on) <= 5000:
        km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(fit_on)
    else:
        km = MiniBatchKMeans(n_clusters=k, n_init=3, random_state=seed, batch_size=2048)
        km.fit(fit_on)
    centres = km.cluster_centers_.astype(np.float32)
    cluster = np.empty(n, dtype=np.int64)
    closeness = np.empty(n, dtype=np.float64)
    for start in range(0, n, 65_536):
        block = np.asarray(vectors[start : start + 65_536], dtype=np.float32)
        distances = (
            (block**2).sum(axis=1, keepdims=True) - 2 * block @ centres.T + (centres**2).sum(axis=1)
        )
        cluster[start : start + len(block)] = distances.argmin(axis=1)
        closeness[start : start + len(block)] = -distances.min(axis=1)
    # Rank within the cluster by closeness to its centre (0 = closest).
    order = np.lexsort((-closeness, cluster))
    rank = np.empty(n, dtype=np.int64)
    sorted_clusters = cluster[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_clusters)) + 1]
    sizes = np.diff(np.r_[starts, n])
    rank[order] = np.arange(n) - np.repeat(starts, sizes)
    # Round robin: rank r of every cluster before rank r + 1 of any; bigger clusters first.
    size_of = np.bincount(cluster, minlength=k)[cluster]
    key = rank * (n + 1) + (n - size_of)
    position = np.empty(n, dtype=np.int64)
    position[np.argsort(key, kind="stable")] = np.arange(n)
    return 1.0 - position / max(n, 1)


def nearest_neighbours(
    *, matrix: np.ndarray, query: np.ndarray, k: int, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine similarities) of the `k` rows of `matrix` (L2-normalised) closest to
    `query`, best first; only rows in `candidates` (a boolean mask) if given."""
    sims = np.empty(len(matrix), dtype=np.float32)
    for start in range(0, len(matrix), 131_072):
        sims[start : start + 131_072] = np.asarray(matrix[start : start + 131_072]) @ query
    if candidates is not None:
        sims = np.where(candidates, sims, -np.inf)
    k = min(k, int(np.isfinite(sims).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return top, sims[top]


def neighbour_boost(
    *,
    matrix: np.ndarray,
    queries: np.ndarray,
    k: int,
    candidates: np.ndarray,
    boost: float,
) -> np.ndarray:
    """Priority boost per row: `boost` x similarity for the `k` nearest candidates of each query
    (error-driven mining: the neighbours of a confidently-wrong prediction)."""
    out = np.zeros(len(matrix), dtype=np.float64)
    for query in queries:
        idx, sims = nearest_neighbours(matrix=matrix, query=query, k=k, candidates=candidates)
        np.maximum.at(out, idx, boost * np.clip(sims, 0.0, 1.0))
    return out


# Weight of the zero-shot entropy against representativeness in the cold-start value. Chosen on
# development seeds (100-102) of the BBC simulation at batch 10: area under the learning curve
# 0.949 at 0, 0.917 at 0.25, 0.865 at 0.5, against 0.930 for plain k-means representatives
# (docs/benchmarks.md): the first model learns best from typical items of every class, not
# from the ones the label descriptions leave ambiguous.
ZERO_SHOT_UNCERTAINTY_WEIGHT = 0.0


def zero_shot_cold_start(
    *,
    representative: np.ndarray,
    proba: np.ndarray,
    uncertainty_weight: float = ZERO_SHOT_UNCERTAINTY_WEIGHT,
) -> np.ndarray:
    """Cold-start ranking driven by the zero-shot scores: each item's value is a mix of its
    representativeness (`representative_priorities`, in (0, 1]) and the entropy of its zero-shot
    probabilities; items are then served round robin over the zero-shot predicted classes
    (best of each class, then the second best of each...), so the first labels cover every class
    and the first model can be trained sooner. Returns priorities in (0, 1]."""
    n = len(representative)
    if n == 0:
        return np.zeros(0)
    uncertainty = informativeness(strategy=ENTROPY, proba=proba)
    value = (1.0 - uncertainty_weight) * np.asarray(representative) + uncertainty_weight * (
        uncertainty
    )
    predicted = proba.argmax(axis=1)
    order = np.lexsort((-value, predicted))
    sorted_classes = predicted[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_classes)) + 1]
    sizes = np.diff(np.r_[starts, n])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, sizes)
    key = rank.astype(np.float64) * 2.0 + (1.0 - value)  # rank first, then value in the round
    position = np.empty(n, dtype=np.int64)
    position[np.argsort(key, kind="stable")] = np.arange(n)
    return 1.0 - position / max(n, 1)
