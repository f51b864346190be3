"""Pure query-strategy tests: no database."""

import numpy as np
import pytest

from active_learning.strategies import (
    BATCH_TOP,
    diverse_batch,
    informativeness,
    nearest_neighbours,
    needs_cold_start,
    neighbour_boost,
    representative_priorities,
    uncertainty_priorities,
)

PROBA = np.array(
    [
        [0.98, 0.01, 0.01],  # sure
        [0.50, 0.49, 0.01],  # torn between two: smallest margin
        [0.40, 0.30, 0.30],  # least confident, highest entropy
    ]
)


def test_least_confidence_prefers_the_lowest_top_probability():
    scores = informativeness(strategy="least_confidence", proba=PROBA)
    assert np.argmax(scores) == 2
    np.testing.assert_allclose(scores, 1 - PROBA.max(axis=1))


def test_margin_prefers_the_closest_top_two():
    scores = informativeness(strategy="margin", proba=PROBA)
    assert np.argmax(scores) == 1
    assert np.argmin(scores) == 0


def test_entropy_is_normalised_and_prefers_the_flattest():
    scores = informativeness(strategy="entropy", proba=PROBA)
    assert np.argmax(scores) == 2
    assert scores.max() <= 1.0
    uniform = informativeness(strategy="entropy", proba=np.full((1, 3), 1 / 3))
    assert uniform[0] == pytest.approx(1.0)


def test_random_is_seeded():
    a = informativeness(strategy="random", proba=PROBA, seed=4)
    b = informativeness(strategy="random", proba=PROBA, seed=4)
    c = informativeness(strategy="random", proba=PROBA, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="Unknown query strategy"):
        informativeness(strategy="oracle", proba=PROBA)


def _near_duplicate_clusters(n_clusters=5, per_cluster=10, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    vectors = np.repeat(centres, per_cluster, axis=0) + rng.normal(
        scale=0.01, size=(n_clusters * per_cluster, dim)
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), np.repeat(np.arange(n_clusters), per_cluster)


def test_diverse_batch_avoids_near_duplicates():
    # given 5 groups of near-duplicates where group 0 is the most uncertain
    vectors, group = _near_duplicate_clusters()
    scores = np.where(group == 0, 0.9, 0.5) + np.linspace(0, 0.01, len(group))
    # plain top-5 takes five near-duplicates from one group
    assert len(set(group[np.argsort(-scores)[:5]])) == 1
    # the diverse batch takes one item from each group, starting with the most uncertain group
    batch = diverse_batch(vectors=vectors, scores=scores, batch_size=5)
    assert len(set(group[batch])) == 5
    assert group[batch[0]] == 0


def test_uncertainty_priorities_lift_the_diverse_batch_to_the_top():
    vectors, group = _near_duplicate_clusters()
    proba = np.tile([0.6, 0.4], (len(group), 1))
    proba[group == 0] = [0.51, 0.49]
    priorities = uncertainty_priorities(
        strategy="margin", proba=proba, vectors=vectors, diversity_batch=5
    )
    top = np.argsort(-priorities)[:5]
    assert (priorities[top] > BATCH_TOP).all()
    assert len(set(group[top])) == 5
    plain = uncertainty_priorities(strategy="margin", proba=proba)
    assert (plain <= 1.0).all()


def test_representative_sampling_covers_every_cluster_first():
    vectors, group = _near_duplicate_clusters(n_clusters=6, per_cluster=20)
    priorities = representative_priorities(vectors=vectors, n_clusters=6, seed=0)
    top = np.argsort(-priorities)[:6]
    assert len(set(group[top])) == 6
    assert len(np.unique(priorities)) == len(priorities)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["a", "b"] * 3, True),  # too few
        (["a"] * 20, True),  # class b missing
        (["a"] * 10 + ["b"] * 1, True),  # b has one example
        (["a"] * 10 + ["b"] * 5, False),
    ],
)
def test_cold_start_detection(labels, expected):
    assert needs_cold_start(labels=labels, classes=["a", "b"], min_labels=10) is expected


def test_nearest_neighbours_respects_candidates():
    vectors, group = _near_duplicate_clusters()
    candidates = np.ones(len(group), dtype=bool)
    candidates[1] = False
    idx, sims = nearest_neighbours(matrix=vectors, query=vectors[0], k=4, candidates=candidates)
    assert idx[0] == 0
    assert 1 not in idx
    assert (group[idx] == 0).all()
    assert (np.diff(sims) <= 1e-6).all()


def test_neighbour_boost_only_touches_neighbours():
    vectors, group = _near_duplicate_clusters()
    boost = neighbour_boost(
        matrix=vectors,
        queries=vectors[[0]],
        k=3,
        candidates=np.ones(len(group), dtype=bool),
        boost=1.0,
    )
    assert (boost > 0).sum() == 3
    assert (group[boost > 0] == 0).all()
