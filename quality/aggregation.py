"""Label aggregation: from several annotators' answers to one label per item. Pure numpy.

Input is a set of *triples* (parallel integer arrays ``item``, ``worker``, ``label``; codes start
at 0) with the sizes ``n_items``, ``n_workers``, ``n_labels``. Every method returns an
:class:`AggregationResult`: per-item posterior over labels, the chosen label, a confidence (the
chosen label's posterior) and a tie flag, plus what the method learned about each worker.

Methods
- ``majority_vote``: posterior = share of votes. **Tie rule**: when two or more labels share
  the highest vote count the item is flagged ``tie`` and the label chosen is the one that comes
  first in the label order (lowest code) -- deterministic, independent of annotation order.
  Projects send ties to adjudication instead (configurable).
- ``dawid_skene``: Dawid & Skene (1979), EM over a full confusion matrix per worker, no gold;
  initialised with majority vote, stopped when the evidence lower bound per annotation improves
  by less than ``tol`` (crowd-kit's criterion), at most ``max_iter`` iterations.
- ``one_coin``: each worker has a single reliability ``s_w`` (probability of answering
  correctly; errors spread evenly over the other labels). EM like Dawid-Skene, with a Beta prior
  on ``s_w`` so that a worker seen on few items is not judged perfect or useless. Items with a
  known answer (gold) are clamped to it, so reliability is anchored on gold where there is some.

Ties of the probabilistic methods (two labels within ``TIE_TOLERANCE`` of the top posterior)
follow the same rule as majority vote.

Multi-label data are aggregated per label as independent binary votes (see
:func:`aggregate_multilabel`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "METHODS",
    "VERSION",
    "AggregationResult",
    "Triples",
    "aggregate",
    "aggregate_multilabel",
    "dawid_skene",
    "encode",
    "majority_vote",
    "one_coin",
]

VERSION = "1"
TIE_TOLERANCE = 1e-9
_EPS = 1e-10


@dataclass(frozen=True)
class Triples:
    item: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    n_items: int
    n_workers: int
    n_labels: int

    @classmethod
    def of(cls, *, item, worker, label, n_items=None, n_workers=None, n_labels=None) -> Triples:
        item = np.asarray(item, dtype=np.int64)
        worker = np.asarray(worker, dtype=np.int64)
        label = np.asarray(label, dtype=np.int64)
        if not (item.shape == worker.shape == label.shape) or item.ndim != 1:
            raise ValueError("item, worker and label must be 1-d arrays of the same length.")

        def size(values, given, name):
            needed = int(values.max()) + 1 if values.size else 0
            if given is None:
                return needed
            if needed > given or (values.size and values.min() < 0):
                raise ValueError(f"{name} codes must lie in [0, {given}).")
            return int(given)

        return cls(
            item=item,
            worker=worker,
            label=label,
            n_items=size(item, n_items, "item"),
            n_workers=size(worker, n_workers, "worker"),
            n_labels=size(label, n_labels, "label"),
        )


@dataclass
class AggregationResult:
    method: str
    probas: np.ndarray  # (n_items, n_labels); rows of items without annotations are 0
    labels: np.ndarray  # (n_items,) chosen label code; -1 where the item has no annotation
    confidence: np.ndarray  # (n_items,) posterior of the chosen label; 0 without annotations
    tie: np.ndarray  # (n_items,) bool
    n_annotations: np.ndarray  # (n_items,)
    worker_skill: np.ndarray  # (n_workers,) estimated probability of a correct answer
    worker_confusion: np.ndarray | None = None  # (n_workers, true, observed), rows sum to 1
    priors: np.ndarray | None = None
    n_iter: int = 0
    version: str = VERSION
    extra: dict = field(default_factory=dict)


def encode(values) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..n-1 for arbitrary hashable values (sorted unique values, inverse index)."""
    uniques, codes = np.unique(np.asarray(values), return_inverse=True)
    return uniques, codes.astype(np.int64)


def _vote_counts(t: Triples, weights: np.ndarray | None = None) -> np.ndarray:
    flat = np.bincount(
        t.item * t.n_labels + t.label,
        weights=weights,
        minlength=t.n_items * t.n_labels,
    )
    return flat.reshape(t.n_items, t.n_labels).astype(np.float64)


def _decide(probas: np.ndarray, n_annotations: np.ndarray, *, tie_tolerance: float):
    """argmax with the tie rule (lowest code wins, item flagged)."""
    labels = np.argmax(probas, axis=1)  # first maximum = lowest code
    top = probas[np.arange(probas.shape[0]), labels]
    close = probas >= (top - tie_tolerance)[:, None]
    tie = close.sum(axis=1) > 1
    empty = n_annotations == 0
    labels = np.where(empty, -1, labels)
    tie &= ~empty
    confidence = np.where(empty, 0.0, top)
    return labels, confidence, tie


def _worker_skill_vs(t: Triples, probas: np.ndarray) -> np.ndarray:
    """Expected accuracy of each worker against a posterior: mean of P(true = given label)."""
    hits = probas[t.item, t.label]
    sums = np.bincount(t.worker, weights=hits, minlength=t.n_workers)
    counts = np.bincount(t.worker, minlength=t.n_workers)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _confusions(t: Triples, probas: np.ndarray, *, smoothing: float = 0.0) -> np.ndarray:
    """Soft confusion matrices: C[w, true, observed] = sum over w's annotations of
    P(true | item) at the observed label; rows normalised (rows with no mass -> uniform)."""
    k = t.n_labels
    counts = np.zeros((t.n_workers, k, k))
    # One scatter per true label keeps memory at O(annotations) instead of O(annotations * K).
    for true in range(k):
        counts[:, true, :] = np.bincount(
            t.worker * k + t.label, weights=probas[t.item, true], minlength=t.n_workers * k
        ).reshape(t.n_workers, k)
    counts += smoothing
    totals = counts.sum(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), 1.0 / k)


def majority_vote(t: Triples, *, tie_tolerance: float = TIE_TOLERANCE) -> AggregationResult:
    votes = _vote_counts(t)
    n = votes.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        probas = np.where(n[:, None] > 0, votes / np.maximum(n, 1)[:, None], 0.0)
    labels, confidence, tie = _decide(probas, n, tie_tolerance=tie_tolerance)
    return AggregationResult(
        method="majority_vote",
        probas=probas,
        labels=labels,
        confidence=confidence,
        tie=tie,
        n_annotations=n.astype(np.int64),
        worker_skill=_worker_skill_vs(t, probas),
        worker_confusion=_confusions(t, probas),
    )


def _clamp_gold(probas: np.ndarray, gold: np.ndarray | None) -> np.ndarray:
    if gold is None:
        return probas
    known = gold >= 0
    if known.any():
        probas = probas.copy()
        probas[known] = 0.0
        probas[np.flatnonzero(known), gold[known]] = 1.0
    return probas


def dawid_skene(
    t: Triples,
    *,
    max_iter: int = 100,
    tol: float = 1e-5,
    gold: np.ndarray | None = None,
    tie_tolerance: float = TIE_TOLERANCE,
) -> AggregationResult:
    """Dawid-Skene EM. ``gold`` (optional, per item, -1 = unknown) clamps known items; the
    project aggregation calls it without gold."""
    k = t.n_labels
    n = np.bincount(t.item, minlength=t.n_items)
    has = n > 0
    probas = _clamp_gold(majority_vote(t).probas, gold)
    n_iter = 0
    loss = -np.inf
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        # M-step: priors and confusion matrices from the current posteriors.
        priors = np.clip(probas[has].mean(axis=0), _EPS, None)
        confusion = np.clip(_confusions(t, probas), _EPS, None)
        confusion /= confusion.sum(axis=2, keepdims=True)
        log_conf = np.log(confusion)  # (W, true, observed)
        # E-step: log P(true = c | answers) = log prior_c + sum log conf[w, c, observed].
        log_like = np.zeros((t.n_items, k))
        per_annotation = log_conf[t.worker, :, t.label]  # (A, K)
        for c in range(k):
            log_like[:, c] = np.bincount(t.item, weights=per_annotation[:, c], minlength=t.n_items)
        log_post = log_like + np.log(priors)
        log_post -= log_post.max(axis=1, keepdims=True)
        probas = np.exp(log_post)
        probas /= probas.sum(axis=1, keepdims=True)
        probas[~has] = 0.0
        probas = _clamp_gold(probas, gold)
        # Evidence lower bound per annotation (expected joint log-likelihood + entropy).
        joint = (probas[t.item] * per_annotation).sum() + (probas[has] * np.log(priors)).sum()
        p = np.clip(probas[has], _EPS, None)
        elbo = (joint - (p * np.log(p)).sum()) / max(1, t.item.size)
        if elbo - loss < tol:
            break
        loss = elbo
    priors = probas[has].mean(axis=0) if has.any() else np.full(k, 1.0 / k)
    confusion = _confusions(t, probas)
    labels, confidence, tie = _decide(probas, n, tie_tolerance=tie_tolerance)
    return AggregationResult(
        method="dawid_skene",
        probas=probas,
        labels=labels,
        confidence=confidence,
        tie=tie,
        n_annotations=n.astype(np.int64),
        worker_skill=_worker_skill_vs(t, probas),
        worker_confusion=confusion,
        priors=priors,
        n_iter=n_iter,
    )


def one_coin(
    t: Triples,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    gold: np.ndarray | None = None,
    prior_correct: float = 2.0,
    prior_wrong: float = 1.0,
    tie_tolerance: float = TIE_TOLERANCE,
) -> AggregationResult:
    """One-coin model: worker w answers correctly with probability s_w, otherwise uniformly
    among the other labels. Beta(prior_correct, prior_wrong) prior on s_w (MAP estimate).
    Items with ``gold >= 0`` are clamped to their known label throughout."""
    k = t.n_labels
    n = np.bincount(t.item, minlength=t.n_items)
    has = n > 0
    probas = _clamp_gold(majority_vote(t).probas, gold)
    counts = np.bincount(t.worker, minlength=t.n_workers).astype(np.float64)
    skill = np.full(t.n_workers, 0.7)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        hits = np.bincount(t.worker, weights=probas[t.item, t.label], minlength=t.n_workers)
        new_skill = (hits + prior_correct - 1) / (counts + prior_correct + prior_wrong - 2)
        new_skill = np.clip(new_skill, 1e-6, 1 - 1e-6)
        priors = np.clip(probas[has].mean(axis=0), _EPS, None)
        right = np.log(new_skill)
        wrong = np.log((1 - new_skill) / max(1, k - 1))
        base = np.bincount(t.item, weights=wrong[t.worker], minlength=t.n_items)
        bonus = _vote_counts(t, weights=(right - wrong)[t.worker])
        log_post = base[:, None] + bonus + np.log(priors)
        log_post -= log_post.max(axis=1, keepdims=True)
        probas = np.exp(log_post)
        probas /= probas.sum(axis=1, keepdims=True)
        probas[~has] = 0.0
        probas = _clamp_gold(probas, gold)
        change = np.abs(new_skill - skill).max() if skill.size else 0.0
        skill = new_skill
        if change < tol:
            break
    labels, confidence, tie = _decide(probas, n, tie_tolerance=tie_tolerance)
    # The implied confusion matrix: s_w on the diagonal, (1 - s_w)/(K-1) elsewhere.
    off = (1 - skill) / max(1, k - 1)
    confusion = np.repeat(off[:, None, None], k, axis=1).repeat(k, axis=2)
    idx = np.arange(k)
    confusion[:, idx, idx] = skill[:, None]
    return AggregationResult(
        method="one_coin",
        probas=probas,
        labels=labels,
        confidence=confidence,
        tie=tie,
        n_annotations=n.astype(np.int64),
        worker_skill=skill,
        worker_confusion=confusion,
        priors=probas[has].mean(axis=0) if has.any() else None,
        n_iter=n_iter,
        extra={"gold_items": int((gold >= 0).sum()) if gold is not None else 0},
    )


METHODS: dict[str, Callable[..., AggregationResult]] = {
    "majority_vote": majority_vote,
    "dawid_skene": dawid_skene,
    "one_coin": one_coin,
}


def aggregate(t: Triples, *, method: str, gold: np.ndarray | None = None) -> AggregationResult:
    """Run one method by name. Gold is used by ``one_coin`` only (Dawid-Skene here learns
    without gold; majority vote ignores it)."""
    if method not in METHODS:
        raise ValueError(f"Unknown aggregation method {method!r}; choose one of {sorted(METHODS)}.")
    if method == "one_coin":
        return one_coin(t, gold=gold)
    return METHODS[method](t)


@dataclass
class MultiLabelResult:
    method: str
    chosen: np.ndarray  # (n_items, n_labels) bool: the final label set
    probas: np.ndarray  # (n_items, n_labels): P(label applies)
    confidence: np.ndarray  # (n_items,): the least certain per-label decision
    tie: np.ndarray  # (n_items,) bool: some label is exactly undecided
    n_annotations: np.ndarray
    worker_skill: np.ndarray  # (n_workers,) mean over labels
    version: str = VERSION


def aggregate_multilabel(
    *,
    item: np.ndarray,
    worker: np.ndarray,
    chosen: np.ndarray,
    n_items: int,
    n_workers: int,
    method: str,
    gold: np.ndarray | None = None,
) -> MultiLabelResult:
    """Multi-label aggregation as one binary problem per label.

    ``item``/``worker`` give one row per *annotation*, ``chosen`` its (n_annotations,
    n_labels) 0/1 matrix. For each label, every annotation is a yes/no vote, aggregated by
    ``method`` with two classes. A label is in the final set when P(yes) > 0.5; if no label
    passes, the single most probable one is kept (an annotation always has at least one).
    The item's confidence is the least certain of its per-label decisions (min over labels of
    max(P, 1 - P)); ``tie`` flags an item where some label's decision is a tie.
    ``gold`` (optional) is an (n_items, n_labels) matrix with -1 for unknown items.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    n_labels = chosen.shape[1]
    probas = np.zeros((n_items, n_labels))
    decided = np.ones((n_items, n_labels))
    tie = np.zeros(n_items, dtype=bool)
    skills = np.zeros((n_labels, n_workers))
    n_annotations = np.bincount(np.asarray(item, dtype=np.int64), minlength=n_items)
    for c in range(n_labels):
        t = Triples.of(
            item=item,
            worker=worker,
            label=chosen[:, c],
            n_items=n_items,
            n_workers=n_workers,
            n_labels=2,
        )
        result = aggregate(t, method=method, gold=None if gold is None else gold[:, c])
        probas[:, c] = result.probas[:, 1]
        decided[:, c] = np.maximum(result.probas[:, 0], result.probas[:, 1])
        tie |= result.tie
        skills[c] = result.worker_skill
    final = probas > 0.5
    none = ~final.any(axis=1) & (n_annotations > 0)
    final[np.flatnonzero(none), np.argmax(probas[none], axis=1)] = True
    confidence = np.where(n_annotations > 0, decided.min(axis=1), 0.0)
    return MultiLabelResult(
        method=method,
        chosen=final,
        probas=probas,
        confidence=confidence,
        tie=tie,
        n_annotations=n_annotations,
        worker_skill=np.nanmean(skills, axis=0) if n_labels else np.zeros(n_workers),
    )
