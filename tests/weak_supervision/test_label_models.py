"""Label models and function statistics on vote matrices, without a database."""

import csv
from pathlib import Path

import numpy as np
import pytest

from weak_supervision.label_models import (
    ABSTAIN,
    dawid_skene,
    fit,
    lf_summary,
    majority_vote,
    matrix_summary,
)
from weak_supervision.metrics import per_class_report, unit_hash, wilson_interval

RTE = Path(__file__).resolve().parents[3] / "shared" / "data" / "crowd" / "rte.standardized.csv"


def _synthetic(n=4000, seed=0):
    """Two classes (30% positive). Three accurate one-sided 'positive' functions, one
    one-sided 'negative' function, and three weak independent two-sided ones (60% right,
    voting on 90% of items) that outvote the accurate ones under majority vote."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    cols = []
    for fire_pos, fire_neg in [(0.6, 0.02), (0.5, 0.03), (0.4, 0.01)]:  # vote 1 only
        fire = np.where(y == 1, rng.random(n) < fire_pos, rng.random(n) < fire_neg)
        cols.append(np.where(fire, 1, ABSTAIN))
    fire = np.where(y == 0, rng.random(n) < 0.5, rng.random(n) < 0.05)  # vote 0 only
    cols.append(np.where(fire, 0, ABSTAIN))
    for _ in range(3):
        vote = np.where(rng.random(n) < 0.6, y, 1 - y)
        cols.append(np.where(rng.random(n) < 0.9, vote, ABSTAIN))
    return np.stack(cols, axis=1), y


def test_majority_vote_splits_ties_and_leaves_uncovered_rows_empty():
    L = np.array([[0, 1, ABSTAIN], [1, 1, 0], [ABSTAIN, ABSTAIN, ABSTAIN]])
    result = majority_vote(L, 2)
    assert result.probs[0].tolist() == [0.5, 0.5]
    assert result.probs[1].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert result.covered.tolist() == [True, True, False]
    assert result.labels[2] == ABSTAIN
    assert result.confidence[2] == 0.0


def test_dawid_skene_learns_reliabilities_without_gold_and_beats_majority_vote():
    L, y = _synthetic()
    mv = majority_vote(L, 2)
    ds = dawid_skene(L, 2)
    covered = ds.covered
    mv_acc = (mv.labels[covered] == y[covered]).mean()
    ds_acc = (ds.labels[covered] == y[covered]).mean()
    assert ds_acc > mv_acc + 0.05
    assert ds_acc > 0.9
    # The one-sided positive functions are learned to be accurate when they vote.
    assert min(ds.params["source_accuracy"][:3]) > 0.8
    assert ds.params["prior"][1] == pytest.approx(0.3, abs=0.05)


def test_classic_dawid_skene_cannot_use_one_sided_functions():
    """Why abstentions are observed outcomes: with abstentions as missing data, a function
    that only ever votes 1 looks like a coin that always says 1."""
    L, y = _synthetic()
    informative = dawid_skene(L, 2, abstain_informative=True)
    classic = dawid_skene(L, 2, abstain_informative=False)
    acc = lambda r: (r.labels[r.covered] == y[r.covered]).mean()  # noqa: E731
    assert acc(informative) > acc(classic)


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="Unknown label model"):
        fit("nope", np.zeros((2, 1), dtype=int), 2)
    with pytest.raises(ValueError, match="class index"):
        fit("majority_vote", np.array([[2]]), 2)


def test_empty_and_all_abstain_matrices():
    for L in (np.zeros((0, 3), dtype=int), np.full((5, 2), ABSTAIN)):
        result = dawid_skene(L, 3)
        assert result.probs.shape == (L.shape[0], 3)
        assert not result.covered.any()


def test_lf_summary_coverage_overlap_conflict_polarity_accuracy():
    L = np.array(
        [
            [0, 0, ABSTAIN],
            [0, 1, ABSTAIN],
            [ABSTAIN, 1, 1],
            [ABSTAIN, ABSTAIN, ABSTAIN],
        ]
    )
    gold = np.array([0, 1, ABSTAIN, 0])
    rows = lf_summary(L, 2, gold)
    assert rows[0]["coverage"] == 0.5
    assert rows[0]["overlap"] == 0.5
    assert rows[0]["conflict"] == 0.25  # row 1: the other function says 1
    assert rows[0]["polarity"] == [0]
    assert rows[0]["accuracy"] == 0.5  # right on row 0, wrong on row 1
    assert rows[1]["polarity"] == [0, 1]
    assert rows[1]["accuracy"] == 1.0
    assert rows[2]["conflict"] == 0.0
    assert rows[2]["accuracy"] is None
    totals = matrix_summary(L, 2)
    assert totals == {"items": 4, "coverage": 0.75, "overlap": 0.75, "conflict": 0.25}


def test_wilson_interval_and_per_class_report():
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(95, 100)
    assert 0.88 < low < 0.90
    assert 0.97 < high < 0.99
    low, high = wilson_interval(10, 10)
    assert high == 1.0
    assert low < 1.0
    report = per_class_report([("a", "a"), ("a", "b"), ("b", "b"), ("", "b")], ["a", "b"])
    assert report["accuracy"] == 0.5
    assert report["classes"]["a"]["precision"] == 0.5
    assert report["classes"]["b"]["recall"] == pytest.approx(1 / 3)
    assert 0 <= unit_hash("x") < 1
    assert unit_hash("x") == unit_hash("x")


@pytest.mark.skipif(not RTE.exists(), reason=f"RTE crowd data not found at {RTE}")
def test_classic_dawid_skene_on_real_crowd_labels_matches_the_reference():
    """RTE: 800 items x 164 workers; crowd-kit's Dawid-Skene reaches 0.9275 (data README)."""
    with RTE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    items = sorted({r["orig_id"] for r in rows})
    workers = sorted({r["!amt_worker_ids"] for r in rows})
    item_ix = {v: n for n, v in enumerate(items)}
    worker_ix = {v: n for n, v in enumerate(workers)}
    L = np.full((len(items), len(workers)), ABSTAIN)
    gold = np.zeros(len(items), dtype=int)
    for r in rows:
        L[item_ix[r["orig_id"]], worker_ix[r["!amt_worker_ids"]]] = int(r["response"])
        gold[item_ix[r["orig_id"]]] = int(r["gold"])
    ds = dawid_skene(L, 2, abstain_informative=False)
    mv = majority_vote(L, 2)
    assert (ds.labels == gold).mean() >= 0.92
    assert (ds.labels == gold).mean() > (mv.probs.argmax(1) == gold).mean()
