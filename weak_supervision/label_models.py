"""Label models and labeling-function statistics on a vote matrix, in numpy only.

The vote matrix ``L`` has one row per item and one column per source (labeling function, LLM),
with values ``0..k-1`` (a class index) or ``ABSTAIN`` (-1).

Label models
- `majority_vote`: each item's distribution is the share of the non-abstaining votes per class
  (ties split evenly). Items nobody voted on get no label.
- `dawid_skene`: Dawid & Skene (1979) EM with every source as a "worker", extended so that an
  abstention is an *observed outcome* of the source rather than missing data: each source has a
  k x (k+1) matrix P(vote = v | true class = c), v in {0..k-1, abstain}. This matters for
  labeling functions, most of which vote for one class only: treating abstentions as missing
  would make a "spam-only" function look equally likely to vote spam on ham and on spam
  (it never votes anything else), i.e. useless; with abstentions observed, the model learns
  that it fires often on spam and rarely on ham, which is exactly its value. Crowd workers whose
  gaps say nothing about the class can use ``abstain_informative=False`` (classic DS).
  The model is fitted on, and predicts for, the items at least one source voted on.
  The EM starts from the majority vote and uses a symmetric Dirichlet smoothing (``alpha``) on
  every row, so sources seen on few items do not get certainties of 0 or 1. No gold is used.

Statistics (`lf_summary`): coverage, overlap, conflict, polarity per column and, when gold is
given, the empirical accuracy on the rows that have it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ABSTAIN = -1


def _check(L: np.ndarray, k: int) -> np.ndarray:
    L = np.asarray(L)
    if L.ndim != 2:
        raise ValueError("The vote matrix must be 2-dimensional (items x sources).")
    if k < 2:
        raise ValueError("A label model needs at least two classes.")
    if L.size and (L.min() < ABSTAIN or L.max() >= k):
        raise ValueError(f"Votes must be -1 (abstain) or a class index below {k}.")
    return L.astype(np.int64, copy=False)


def vote_counts(L: np.ndarray, k: int) -> np.ndarray:
    """(n, k) number of votes per class."""
    L = _check(L, k)
    counts = np.zeros((L.shape[0], k), dtype=np.float64)
    for j in range(L.shape[1]):
        col = L[:, j]
        voted = col != ABSTAIN
        np.add.at(counts, (np.nonzero(voted)[0], col[voted]), 1.0)
    return counts


@dataclass
class LabelModelResult:
    probs: np.ndarray  # (n, k); rows of uncovered items are all zero
    covered: np.ndarray  # (n,) bool: at least one source voted
    method: str
    params: dict = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        """Most likely class per item, -1 where uncovered."""
        out = self.probs.argmax(axis=1)
        out[~self.covered] = ABSTAIN
        return out

    @property
    def confidence(self) -> np.ndarray:
        return np.where(self.covered, self.probs.max(axis=1), 0.0)


def majority_vote(L: np.ndarray, k: int) -> LabelModelResult:
    counts = vote_counts(L, k)
    total = counts.sum(axis=1)
    covered = total > 0
    probs = np.zeros_like(counts)
    probs[covered] = counts[covered] / total[covered, None]
    return LabelModelResult(probs=probs, covered=covered, method="majority_vote")


def dawid_skene(
    L: np.ndarray,
    k: int,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    alpha: float = 1.0,
    abstain_informative: bool = True,
) -> LabelModelResult:
    """Dawid-Skene EM; see the module docstring. Returns posteriors for covered items and, in
    ``params``, the class prior, each source's confusion matrix and its estimated accuracy
    (P(correct | voted), weighted by the prior)."""
    L = _check(L, k)
    n, m = L.shape
    mv = majority_vote(L, k)
    covered = mv.covered
    if n == 0 or m == 0 or not covered.any():
        return LabelModelResult(
            probs=np.zeros((n, k)), covered=covered, method="dawid_skene", params={"n_iter": 0}
        )
    # Outcome index per cell: class 0..k-1, or k for an abstention.
    outcomes = np.where(L == ABSTAIN, k, L)
    n_out = k + 1 if abstain_informative else k
    # Initial posteriors: the majority vote where anyone voted, the class balance it implies
    # elsewhere (only used when abstentions are informative).
    prior0 = mv.probs[covered].mean(axis=0)
    prior0 = (prior0 + 1e-3) / (prior0 + 1e-3).sum()
    T = mv.probs.copy()
    T[~covered] = prior0
    # The model is fitted on the covered rows only, i.e. conditional on "some source voted".
    # Rows where every source abstained are a different population (on SMS spam: mostly ham
    # that no function recognised); fitting on them too would drag the estimated abstention
    # rates towards that population (measured in docs/benchmarks.d/weak_supervision.md).
    fit_rows = covered

    log_lik_prev = -np.inf
    n_iter = 0
    confusion = np.zeros((m, k, n_out))
    prior = prior0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        Tf = T[fit_rows]
        # M-step: class prior and one confusion matrix per source.
        prior = (Tf.sum(axis=0) + alpha) / (Tf.shape[0] + alpha * k)
        for j in range(m):
            out_j = outcomes[fit_rows, j]
            if not abstain_informative:
                keep = out_j != k
                one_hot = np.zeros((keep.sum(), n_out))
                one_hot[np.arange(keep.sum()), out_j[keep]] = 1.0
                counts = Tf[keep].T @ one_hot
            else:
                one_hot = np.zeros((out_j.shape[0], n_out))
                one_hot[np.arange(out_j.shape[0]), out_j] = 1.0
                counts = Tf.T @ one_hot
            counts += alpha
            confusion[j] = counts / counts.sum(axis=1, keepdims=True)
        # E-step.
        log_post = np.tile(np.log(prior), (n, 1))
        log_conf = np.log(confusion)
        for j in range(m):
            out_j = outcomes[:, j]
            if abstain_informative:
                log_post += log_conf[j][:, out_j].T
            else:
                voted = out_j != k
                log_post[voted] += log_conf[j][:, out_j[voted]].T
        log_norm = np.logaddexp.reduce(log_post, axis=1)
        T = np.exp(log_post - log_norm[:, None])
        log_lik = float(log_norm[fit_rows].sum())
        if abs(log_lik - log_lik_prev) <= tol * max(1.0, abs(log_lik)):
            break
        log_lik_prev = log_lik
    probs = np.where(covered[:, None], T, 0.0)
    # P(vote correct | voted) per source, from its confusion matrix and the prior.
    vote_part = confusion[:, :, :k]
    voted_mass = (vote_part.sum(axis=2) * prior).sum(axis=1)
    correct_mass = (np.einsum("jcc->jc", vote_part) * prior).sum(axis=1)
    accuracy = np.divide(correct_mass, voted_mass, out=np.full(m, np.nan), where=voted_mass > 0)
    return LabelModelResult(
        probs=probs,
        covered=covered,
        method="dawid_skene",
        params={
            "n_iter": n_iter,
            "prior": prior.tolist(),
            "source_accuracy": [None if np.isnan(a) else float(a) for a in accuracy],
            "abstain_informative": abstain_informative,
        },
    )


METHODS = {
    "majority_vote": lambda L, k: majority_vote(L, k),
    "dawid_skene": lambda L, k: dawid_skene(L, k, abstain_informative=True),
    "dawid_skene_classic": lambda L, k: dawid_skene(L, k, abstain_informative=False),
}


def fit(method: str, L: np.ndarray, k: int) -> LabelModelResult:
    try:
        model = METHODS[method]
    except KeyError:
        raise ValueError(f"Unknown label model '{method}'.") from None
    result = model(L, k)
    result.method = method
    return result


def lf_summary(L: np.ndarray, k: int, gold: np.ndarray | None = None) -> list[dict]:
    """Per column: coverage (share of items it votes on), overlap (share of items where it and
    at least one other source vote), conflict (share where another source votes a different
    class), polarity (classes it ever voted) and, where ``gold`` (class index or -1 per item)
    is known, accuracy = correct / votes on gold rows (``None`` without any such vote)."""
    L = _check(L, k)
    n, m = L.shape
    voted = L != ABSTAIN
    n_voting = voted.sum(axis=1)
    counts = vote_counts(L, k) if m else np.zeros((n, k))
    out = []
    for j in range(m):
        col = L[:, j]
        mine = voted[:, j]
        others = n_voting - mine
        # Another source voted a class different from this one's vote.
        same = np.zeros(n)
        same[mine] = counts[mine, col[mine]] - 1
        conflicting = mine & (others - same > 0)
        row: dict = {
            "votes": int(mine.sum()),
            "coverage": float(mine.mean()) if n else 0.0,
            "overlap": float((mine & (others > 0)).mean()) if n else 0.0,
            "conflict": float(conflicting.mean()) if n else 0.0,
            "polarity": sorted(int(c) for c in np.unique(col[mine])),
            "gold_votes": 0,
            "correct": 0,
            "accuracy": None,
        }
        if gold is not None:
            gold = np.asarray(gold)
            judged = mine & (gold != ABSTAIN)
            row["gold_votes"] = int(judged.sum())
            row["correct"] = int((col[judged] == gold[judged]).sum())
            if row["gold_votes"]:
                row["accuracy"] = row["correct"] / row["gold_votes"]
        out.append(row)
    return out


def matrix_summary(L: np.ndarray, k: int) -> dict:
    """Coverage, overlap and conflict of the whole matrix."""
    L = _check(L, k)
    n = L.shape[0]
    if n == 0:
        return {"items": 0, "coverage": 0.0, "overlap": 0.0, "conflict": 0.0}
    counts = vote_counts(L, k)
    n_votes = counts.sum(axis=1)
    n_classes = (counts > 0).sum(axis=1)
    return {
        "items": n,
        "coverage": float((n_votes > 0).mean()),
        "overlap": float((n_votes > 1).mean()),
        "conflict": float((n_classes > 1).mean()),
    }
