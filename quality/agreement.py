"""Inter-annotator agreement, in pure numpy (no Django).

Data come as *triples*: parallel integer arrays ``item``, ``rater`` and ``label`` (one entry per
annotation; codes start at 0). Every function returns the figure together with the number of
items (or pairs) behind it, because an agreement figure without its support is misleading.

Definitions (nominal data throughout):

- **Percent agreement**: for each item with at least two ratings, the share of agreeing ordered
  rating pairs, ``sum_c n_ic (n_ic - 1) / (m_i (m_i - 1))``; averaged over those items.
- **Cohen's kappa** for a pair of raters over the items both rated:
  ``(p_o - p_e) / (1 - p_e)`` with the chance agreement ``p_e`` from each rater's own marginals
  (the same as scikit-learn's ``cohen_kappa_score``). Undefined (NaN) when ``p_e == 1``.
- **Fleiss' kappa** over the items that have exactly ``m`` ratings (``m`` = the most common
  number of ratings unless given): as statsmodels' ``fleiss_kappa(method="fleiss")``.
- **Krippendorff's alpha** (nominal) from the coincidence matrix, missing ratings allowed (items
  with a single rating are not pairable and do not count): as the ``krippendorff`` package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Figure",
    "PairKappas",
    "cohen_kappa",
    "cohen_kappa_pairs",
    "confusion_matrix",
    "fleiss_kappa",
    "item_label_counts",
    "krippendorff_alpha_nominal",
    "per_label_agreement",
    "percent_agreement",
]


@dataclass(frozen=True)
class Figure:
    """An agreement figure and the number of items (or pairs) it rests on."""

    value: float  # NaN when undefined (too little data or no variation)
    n: int

    def as_dict(self) -> dict:
        return {"value": None if np.isnan(self.value) else float(self.value), "n": int(self.n)}


def item_label_counts(*, item: np.ndarray, label: np.ndarray, n_items: int, n_labels: int):
    """Counts matrix ``C[i, c]`` = how many ratings of item ``i`` are label ``c``."""
    item = np.asarray(item, dtype=np.int64)
    label = np.asarray(label, dtype=np.int64)
    flat = np.bincount(item * n_labels + label, minlength=n_items * n_labels)
    return flat.reshape(n_items, n_labels)


def percent_agreement(counts: np.ndarray) -> Figure:
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    pairable = m >= 2
    if not pairable.any():
        return Figure(float("nan"), 0)
    c = counts[pairable]
    m = m[pairable]
    per_item = (c * (c - 1)).sum(axis=1) / (m * (m - 1))
    return Figure(float(per_item.mean()), int(pairable.sum()))


def cohen_kappa(a: np.ndarray, b: np.ndarray, *, n_labels: int | None = None) -> Figure:
    """Cohen's kappa of two aligned rating vectors (same items, no missing values)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError("The two raters' vectors must have the same length.")
    n = a.size
    if n == 0:
        return Figure(float("nan"), 0)
    k = int(n_labels if n_labels is not None else max(a.max(), b.max()) + 1)
    table = np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(np.float64)
    return Figure(float(_kappa_from_tables(table[None])[0]), n)


def _kappa_from_tables(tables: np.ndarray) -> np.ndarray:
    """Cohen's kappa of many K x K contingency tables at once (shape (P, K, K))."""
    n = tables.sum(axis=(1, 2))
    po = np.trace(tables, axis1=1, axis2=2) / n
    pe = (tables.sum(axis=2) * tables.sum(axis=1)).sum(axis=1) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (po - pe) / (1.0 - pe)
    kappa[np.isclose(pe, 1.0, rtol=0, atol=1e-15)] = np.nan
    return kappa


@dataclass(frozen=True)
class PairKappas:
    """Cohen's kappa for every pair of raters that share at least ``min_items`` items."""

    rater_a: np.ndarray  # rater codes, rater_a < rater_b
    rater_b: np.ndarray
    kappa: np.ndarray  # NaN where undefined
    n_items: np.ndarray  # items the two raters share

    def mean(self) -> Figure:
        """Mean kappa over the pairs where it is defined; n = number of such pairs."""
        ok = ~np.isnan(self.kappa)
        if not ok.any():
            return Figure(float("nan"), 0)
        return Figure(float(self.kappa[ok].mean()), int(ok.sum()))

    def mean_for_rater(self, n_raters: int) -> tuple[np.ndarray, np.ndarray]:
        """Per rater: mean kappa over their defined pairs, and the number of those pairs."""
        ok = ~np.isnan(self.kappa)
        sums = np.bincount(self.rater_a[ok], self.kappa[ok], minlength=n_raters) + np.bincount(
            self.rater_b[ok], self.kappa[ok], minlength=n_raters
        )
        counts = np.bincount(self.rater_a[ok], minlength=n_raters) + np.bincount(
            self.rater_b[ok], minlength=n_raters
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return means, counts


def _co_rated_pairs(item, rater, label):
    """Every pair of ratings of the same item by two different raters, as arrays
    (rater_a, rater_b, label_a, label_b) with rater_a < rater_b. Vectorised over slot pairs:
    ratings are sorted by item and numbered within their item; the loop runs over the
    (slot, slot) combinations, which is (max ratings per item)^2 / 2, not over items."""
    order = np.lexsort((rater, item))
    item, rater, label = item[order], rater[order], label[order]
    n = item.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    starts = np.r_[0, np.flatnonzero(np.diff(item)) + 1]
    sizes = np.diff(np.r_[starts, n])
    slot = np.arange(n) - np.repeat(starts, sizes)
    size_of = np.repeat(sizes, sizes)  # ratings of each rating's item
    max_k = int(sizes.max())
    parts_a, parts_b = [], []
    for s in range(max_k):
        for t in range(s + 1, max_k):
            src = np.flatnonzero((slot == s) & (size_of > t))
            parts_a.append(src)
            parts_b.append(src + (t - s))
    if not parts_a:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    ia = np.concatenate(parts_a)
    ib = np.concatenate(parts_b)
    ra, rb, la, lb = rater[ia], rater[ib], label[ia], label[ib]
    swap = ra > rb
    ra, rb = np.where(swap, rb, ra), np.where(swap, ra, rb)
    la, lb = np.where(swap, lb, la), np.where(swap, la, lb)
    keep = ra != rb  # a rater rating an item twice is not a pair
    return ra[keep], rb[keep], la[keep], lb[keep]


def cohen_kappa_pairs(
    *,
    item: np.ndarray,
    rater: np.ndarray,
    label: np.ndarray,
    n_raters: int,
    n_labels: int,
    min_items: int = 2,
) -> PairKappas:
    """Cohen's kappa of every rater pair with at least ``min_items`` shared items."""
    item = np.asarray(item, dtype=np.int64)
    rater = np.asarray(rater, dtype=np.int64)
    label = np.asarray(label, dtype=np.int64)
    ra, rb, la, lb = _co_rated_pairs(item, rater, label)
    pair_code = ra * n_raters + rb
    pairs, pair_index = np.unique(pair_code, return_inverse=True)
    k = n_labels
    tables = np.bincount(pair_index * k * k + la * k + lb, minlength=pairs.size * k * k).reshape(
        pairs.size, k, k
    )
    n_shared = tables.sum(axis=(1, 2))
    keep = n_shared >= max(1, min_items)
    tables = tables[keep].astype(np.float64)
    pairs = pairs[keep]
    kappa = _kappa_from_tables(tables) if pairs.size else np.zeros(0)
    return PairKappas(
        rater_a=pairs // n_raters,
        rater_b=pairs % n_raters,
        kappa=kappa,
        n_items=n_shared[keep],
    )


def fleiss_kappa(counts: np.ndarray, *, n_ratings: int | None = None) -> tuple[Figure, int]:
    """Fleiss' kappa over the items with exactly ``n_ratings`` ratings (default: the most
    common number of ratings among items with at least two). Returns the figure and the
    number of ratings per item it used."""
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1).astype(np.int64)
    if n_ratings is None:
        pairable = m[m >= 2]
        if pairable.size == 0:
            return Figure(float("nan"), 0), 0
        values, freq = np.unique(pairable, return_counts=True)
        n_ratings = int(values[np.argmax(freq)])  # ties: the smaller m (np.unique is sorted)
    rows = counts[m == n_ratings]
    n_items = rows.shape[0]
    if n_items == 0 or n_ratings < 2:
        return Figure(float("nan"), n_items), n_ratings
    p_j = rows.sum(axis=0) / (n_items * n_ratings)
    p_i = ((rows * rows).sum(axis=1) - n_ratings) / (n_ratings * (n_ratings - 1))
    p_bar = p_i.mean()
    p_e = (p_j * p_j).sum()
    if np.isclose(p_e, 1.0, rtol=0, atol=1e-15):
        return Figure(float("nan"), n_items), n_ratings
    return Figure(float((p_bar - p_e) / (1 - p_e)), n_items), n_ratings


def krippendorff_alpha_nominal(counts: np.ndarray) -> Figure:
    """Krippendorff's alpha for nominal data from the item x label counts matrix. Items with
    fewer than two ratings are not pairable and are left out; n = pairable items."""
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    pairable = m >= 2
    c = counts[pairable]
    m = m[pairable]
    if c.shape[0] == 0:
        return Figure(float("nan"), 0)
    # Coincidence matrix o[c, k] = sum_i (n_ic n_ik - [c == k] n_ic) / (m_i - 1).
    weighted = c / (m - 1)[:, None]
    coincidence = weighted.T @ c - np.diag(weighted.sum(axis=0))
    n_c = coincidence.sum(axis=0)
    total = n_c.sum()
    observed_disagreement = total - np.trace(coincidence)
    expected_disagreement = (total * total - (n_c * n_c).sum()) / (total - 1)
    if expected_disagreement <= 0:
        return Figure(float("nan"), int(c.shape[0]))
    alpha = 1.0 - observed_disagreement / expected_disagreement
    return Figure(float(alpha), int(c.shape[0]))


def per_label_agreement(counts: np.ndarray, *, ratings: np.ndarray | None = None) -> list[dict]:
    """For each label, its ratings binarised (this label vs any other): Krippendorff's alpha,
    positive specific agreement (how often a second rater also chose the label when one
    did) and the number of pairable items where anyone chose it.

    ``counts[i, c]``: ratings of item i that include label c. ``ratings[i]``: ratings of item
    i (default: the row sums, right for single-label data; pass it for multi-label data, where
    one rating may include several labels)."""
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1) if ratings is None else np.asarray(ratings, dtype=np.float64)
    pairable = m >= 2
    out = []
    for c in range(counts.shape[1]):
        yes = counts[:, c]
        binary = np.stack([m - yes, yes], axis=1)
        alpha = krippendorff_alpha_nominal(binary)
        used = pairable & (yes > 0)
        # Ordered pairs in which the first rating is this label: the share whose second is too.
        both = (yes * (yes - 1))[pairable].sum()
        first = (yes * (m - 1))[pairable].sum()
        specific = Figure(float(both / first) if first > 0 else float("nan"), int(used.sum()))
        out.append({"alpha": alpha, "specific_agreement": specific, "n_items": int(used.sum())})
    return out


def confusion_matrix(*, reference: np.ndarray, observed: np.ndarray, n_labels: int) -> np.ndarray:
    """Counts ``M[true, observed]`` (reference rows, observed columns)."""
    reference = np.asarray(reference, dtype=np.int64)
    observed = np.asarray(observed, dtype=np.int64)
    return np.bincount(reference * n_labels + observed, minlength=n_labels * n_labels).reshape(
        n_labels, n_labels
    )
