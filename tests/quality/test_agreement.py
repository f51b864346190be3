"""Agreement metrics against the reference implementations, to 1e-9 on random data."""

import warnings

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from quality import agreement

SEEDS = range(12)


def _random_triples(rng, *, n_items, n_raters, n_labels, density):
    """A random sparse rating matrix (raters x items, -1 = missing) with skewed labels, as
    triples; every item gets at least one rating."""
    mask = rng.random((n_items, n_raters)) < density
    mask[np.arange(n_items), rng.integers(0, n_raters, n_items)] = True
    p = rng.dirichlet(np.ones(n_labels))
    values = rng.choice(n_labels, size=(n_items, n_raters), p=p)
    items, raters = np.nonzero(mask)
    return items, raters, values[items, raters], mask, values


@pytest.mark.parametrize("seed", SEEDS)
def test_cohen_kappa_matches_scikit_learn(seed):
    # Given two raters' labels on the same items
    rng = np.random.default_rng(seed)
    n, k = rng.integers(5, 300), rng.integers(2, 6)
    truth = rng.integers(0, k, n)
    a = np.where(rng.random(n) < 0.7, truth, rng.integers(0, k, n))
    b = np.where(rng.random(n) < 0.6, truth, rng.integers(0, k, n))
    # Then our kappa equals scikit-learn's
    ours = agreement.cohen_kappa(a, b)
    assert ours.n == n
    assert ours.value == pytest.approx(cohen_kappa_score(a, b), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_pairwise_cohen_kappa_matches_scikit_learn_for_every_pair(seed):
    rng = np.random.default_rng(100 + seed)
    n_raters, n_labels = 6, int(rng.integers(2, 5))
    items, raters, labels, mask, values = _random_triples(
        rng, n_items=int(rng.integers(20, 120)), n_raters=n_raters, n_labels=n_labels, density=0.5
    )
    pairs = agreement.cohen_kappa_pairs(
        item=items, rater=raters, label=labels, n_raters=n_raters, n_labels=n_labels, min_items=2
    )
    seen = 0
    for a, b, kappa, n in zip(
        pairs.rater_a, pairs.rater_b, pairs.kappa, pairs.n_items, strict=True
    ):
        common = mask[:, a] & mask[:, b]
        assert n == common.sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = cohen_kappa_score(values[common, a], values[common, b])
        if np.isnan(expected):
            assert np.isnan(kappa)
        else:
            assert kappa == pytest.approx(expected, abs=1e-9)
        seen += 1
    # Every pair with at least two shared items is present.
    expected_pairs = sum(
        (mask[:, a] & mask[:, b]).sum() >= 2
        for a in range(n_raters)
        for b in range(a + 1, n_raters)
    )
    assert seen == expected_pairs > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_kappa_matches_statsmodels(seed):
    rng = np.random.default_rng(200 + seed)
    n_items, m, k = int(rng.integers(10, 200)), int(rng.integers(2, 8)), int(rng.integers(2, 6))
    p = rng.dirichlet(np.ones(k))
    ratings = rng.choice(k, size=(n_items, m), p=p)
    counts = np.stack([(ratings == c).sum(axis=1) for c in range(k)], axis=1)
    figure, used_m = agreement.fleiss_kappa(counts)
    assert used_m == m
    assert figure.n == n_items
    assert figure.value == pytest.approx(sm_fleiss_kappa(counts, method="fleiss"), abs=1e-9)


def test_fleiss_kappa_uses_only_items_with_the_common_number_of_ratings():
    rng = np.random.default_rng(7)
    full = rng.multinomial(3, [0.5, 0.3, 0.2], size=40)
    partial = rng.multinomial(2, [0.5, 0.3, 0.2], size=5)
    figure, m = agreement.fleiss_kappa(np.vstack([full, partial]))
    assert m == 3
    assert figure.n == 40
    assert figure.value == pytest.approx(sm_fleiss_kappa(full), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_krippendorff_alpha_matches_the_krippendorff_package_with_missing_ratings(seed):
    rng = np.random.default_rng(300 + seed)
    n_raters, n_labels = int(rng.integers(2, 9)), int(rng.integers(2, 6))
    items, _raters, labels, mask, values = _random_triples(
        rng,
        n_items=int(rng.integers(10, 200)),
        n_raters=n_raters,
        n_labels=n_labels,
        density=float(rng.uniform(0.2, 0.9)),
    )
    counts = agreement.item_label_counts(
        item=items, label=labels, n_items=mask.shape[0], n_labels=n_labels
    )
    reliability = np.where(mask, values, np.nan).T  # raters x units
    expected = krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal")
    ours = agreement.krippendorff_alpha_nominal(counts)
    assert ours.n == int((mask.sum(axis=1) >= 2).sum())
    assert ours.value == pytest.approx(expected, abs=1e-9)


def test_percent_agreement_by_hand():
    # Item 1: 3 ratings, two agree -> 2 agreeing ordered pairs of 6; item 2: 2 agree -> 1.
    counts = np.array([[2, 1], [0, 2], [1, 0]])
    figure = agreement.percent_agreement(counts)
    assert figure.n == 2  # the single-rating item is not pairable
    assert figure.value == pytest.approx((2 / 6 + 1) / 2)


def test_per_label_alpha_is_the_binarised_alpha():
    rng = np.random.default_rng(11)
    items, _raters, labels, mask, values = _random_triples(
        rng, n_items=80, n_raters=4, n_labels=3, density=0.6
    )
    counts = agreement.item_label_counts(item=items, label=labels, n_items=80, n_labels=3)
    rows = agreement.per_label_agreement(counts)
    for c, row in enumerate(rows):
        binary = np.where(mask, (values == c).astype(float), np.nan).T
        expected = krippendorff.alpha(reliability_data=binary, level_of_measurement="nominal")
        assert row["alpha"].value == pytest.approx(expected, abs=1e-9)


def test_undefined_figures_are_nan_with_their_support():
    # Everybody always says the same label: chance agreement is 1, kappa is undefined.
    assert np.isnan(agreement.cohen_kappa(np.zeros(5, int), np.zeros(5, int)).value)
    assert agreement.percent_agreement(np.array([[1, 0]])).n == 0
    assert agreement.krippendorff_alpha_nominal(np.array([[3, 0], [2, 0]])).as_dict() == {
        "value": None,
        "n": 2,
    }


def test_confusion_matrix_counts_reference_rows():
    m = agreement.confusion_matrix(reference=[0, 0, 1, 2], observed=[0, 1, 1, 1], n_labels=3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
