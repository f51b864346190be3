"""Aggregation against known answers: synthetic annotators with known confusion matrices."""

import numpy as np
import pandas as pd
import pytest

from quality.aggregation import (
    Triples,
    aggregate,
    aggregate_multilabel,
    dawid_skene,
    majority_vote,
    one_coin,
)


def _simulate(seed, *, n_items=1500, n_labels=4, per_item=3):
    """Workers with known confusion matrices: 4 good, 3 mediocre, 2 biased (always answer
    label 0 when unsure), 1 spammer. Each item gets `per_item` distinct workers."""
    rng = np.random.default_rng(seed)
    k = n_labels
    truths = rng.choice(k, size=n_items, p=np.linspace(1, 2, k) / np.linspace(1, 2, k).sum())
    confusions = []
    for accuracy in (0.92, 0.9, 0.88, 0.85):
        confusions.append(
            np.full((k, k), (1 - accuracy) / (k - 1))
            + np.eye(k) * (accuracy - (1 - accuracy) / (k - 1))
        )
    for accuracy in (0.7, 0.65, 0.6):
        confusions.append(
            np.full((k, k), (1 - accuracy) / (k - 1))
            + np.eye(k) * (accuracy - (1 - accuracy) / (k - 1))
        )
    for _ in range(2):
        biased = np.eye(k) * 0.55
        biased[:, 0] += 0.45
        confusions.append(biased)
    confusions.append(np.full((k, k), 1 / k))
    confusions = np.array(confusions)
    n_workers = len(confusions)
    workers = np.array(
        [rng.choice(n_workers, size=per_item, replace=False) for _ in range(n_items)]
    )
    item = np.repeat(np.arange(n_items), per_item)
    worker = workers.ravel()
    cum = confusions[worker, truths[item]].cumsum(axis=1)
    label = (rng.random(item.size)[:, None] > cum).sum(axis=1)
    t = Triples.of(
        item=item, worker=worker, label=label, n_items=n_items, n_workers=n_workers, n_labels=k
    )
    return t, truths, confusions


def _oracle_accuracy(t, truths, confusions):
    log_post = np.zeros((t.n_items, t.n_labels))
    with np.errstate(divide="ignore"):
        np.add.at(log_post, t.item, np.log(confusions[t.worker, :, t.label]))
    return (log_post.argmax(axis=1) == truths).mean()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dawid_skene_recovers_known_confusion_matrices_and_beats_majority_vote(seed):
    t, truths, confusions = _simulate(seed)
    mv = majority_vote(t)
    ds = dawid_skene(t)
    mv_acc = (mv.labels == truths).mean()
    ds_acc = (ds.labels == truths).mean()
    # Biased workers and a spammer fool majority vote; a confusion model sees through them,
    # and gets close to the Bayes-optimal decision that knows the true confusion matrices.
    assert ds_acc > mv_acc + 0.01
    assert ds_acc > _oracle_accuracy(t, truths, confusions) - 0.015
    # The learned confusion matrices are close to the true ones.
    assert np.abs(ds.worker_confusion - confusions).mean() < 0.04
    # Confidence is calibrated enough to rank: confident items are more often right.
    confident = ds.confidence > 0.9
    assert (ds.labels[confident] == truths[confident]).mean() > (ds.labels == truths).mean()


def test_one_coin_ranks_workers_by_reliability_and_uses_gold():
    t, truths, confusions = _simulate(4, n_labels=3)
    true_skill = np.einsum("wkk->wk", confusions).mean(axis=1)
    gold = np.full(t.n_items, -1)
    gold[:150] = truths[:150]
    result = one_coin(t, gold=gold)
    # Gold items are always right; reliability ordering follows the truth.
    assert (result.labels[:150] == truths[:150]).all()
    good, mediocre = result.worker_skill[:4], result.worker_skill[4:7]
    assert good.min() > mediocre.max()
    assert result.worker_skill[-1] < good.min()
    assert np.corrcoef(result.worker_skill, true_skill)[0, 1] > 0.8
    assert (result.labels == truths).mean() >= (majority_vote(t).labels == truths).mean()


@pytest.mark.filterwarnings("ignore::Warning")
def test_dawid_skene_agrees_with_crowd_kit_on_random_data():
    from crowdkit.aggregation import DawidSkene

    t, _, _ = _simulate(5, n_items=600, n_labels=3)
    ours = dawid_skene(t)
    frame = pd.DataFrame({"task": t.item, "worker": t.worker, "label": t.label})
    theirs = DawidSkene(n_iter=100).fit(frame)
    probas = theirs.probas_.reindex(index=range(t.n_items), columns=range(3)).to_numpy()
    assert (ours.labels == probas.argmax(axis=1)).mean() > 0.99
    # crowd-kit floors probabilities at 1e-10 and normalises over observed labels only, so
    # posteriors differ slightly on a few items; on average they are the same.
    assert np.abs(ours.probas - probas).mean() < 0.01


def test_majority_vote_tie_rule_is_first_label_and_flagged():
    # Item 0: 1 vs 2 tie; item 1: clear 2; item 2: three-way tie; item 3: no annotations.
    t = Triples.of(
        item=[0, 0, 1, 1, 1, 2, 2, 2],
        worker=[0, 1, 0, 1, 2, 0, 1, 2],
        label=[2, 1, 2, 2, 0, 2, 0, 1],
        n_items=4,
        n_labels=3,
    )
    result = majority_vote(t)
    assert result.labels.tolist() == [1, 2, 0, -1]
    assert result.tie.tolist() == [True, False, True, False]
    assert result.confidence.tolist() == pytest.approx([0.5, 2 / 3, 1 / 3, 0.0])
    # The order in which annotations arrive does not change anything.
    perm = np.random.default_rng(0).permutation(8)
    shuffled = Triples.of(
        item=t.item[perm], worker=t.worker[perm], label=t.label[perm], n_items=4, n_labels=3
    )
    assert majority_vote(shuffled).labels.tolist() == [1, 2, 0, -1]


def test_unknown_method_is_a_clear_error():
    t = Triples.of(item=[0], worker=[0], label=[0])
    with pytest.raises(ValueError, match="Unknown aggregation method 'glad'"):
        aggregate(t, method="glad")


@pytest.mark.parametrize("method", ["majority_vote", "dawid_skene", "one_coin"])
def test_multilabel_is_aggregated_per_label(method):
    # Three annotators; labels a, b, c. Item 0: everyone says {a}; two add b. Item 1: {c} x3.
    item = np.array([0, 0, 0, 1, 1, 1])
    worker = np.array([0, 1, 2, 0, 1, 2])
    chosen = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]])
    result = aggregate_multilabel(
        item=item, worker=worker, chosen=chosen, n_items=2, n_workers=3, method=method
    )
    assert result.chosen.tolist() == [[True, True, False], [False, False, True]]
    assert result.confidence[1] >= result.confidence[0]
    assert not result.tie.any()
