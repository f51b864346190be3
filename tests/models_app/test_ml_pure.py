"""Pure training, evaluation, held-out and promotion-gate maths: no database."""

import numpy as np
import pytest

from models_app.ml.embedding import HashingEmbedder, content_hash, unique_texts
from models_app.ml.evaluation import (
    cross_validation_metrics,
    cv_fold_count,
    fold_predictions,
    holdout_ready,
    stratified_folds,
)
from models_app.ml.gate import paired_bootstrap, promotion_decision
from models_app.ml.training import (
    TrainingError,
    classifier_fit,
    classifier_make,
    evaluate,
    expected_calibration_error,
    holdout_assign,
)


def _blobs(n_per_class=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 8) * 4
    X = np.vstack([rng.normal(c, 1.0, size=(n_per_class, 8)) for c in centres]).astype(np.float32)
    y = np.repeat(["a", "b", "c"], n_per_class)
    return X, y


def test_ece_is_zero_when_confidence_matches_accuracy():
    # given 10 predictions at confidence 0.8 of which 8 are right
    proba = np.tile([0.8, 0.2], (10, 1))
    y = np.array([0] * 8 + [1] * 2)
    # then the calibration error is 0
    assert expected_calibration_error(proba, y) == pytest.approx(0.0)


def test_ece_measures_overconfidence():
    # given confidence 0.9 but only half right
    proba = np.tile([0.9, 0.1], (10, 1))
    y = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(proba, y) == pytest.approx(0.4)


def test_evaluate_reports_every_metric_on_held_out_data():
    X, y = _blobs()
    model = classifier_fit(X=X[::2], y=y[::2], seed=0)
    metrics = evaluate(model=model, X=X[1::2], y=y[1::2], classes=["a", "b", "c"])
    assert metrics["n"] == 45
    assert metrics["accuracy"] > 0.9
    assert 0.9 < metrics["macro_f1"] <= 1.0
    assert set(metrics["per_class"]) == {"a", "b", "c"}
    assert set(metrics["per_class"]["a"]) == {"precision", "recall", "f1", "support"}
    assert np.array(metrics["confusion"]).sum() == 45
    assert np.trace(np.array(metrics["confusion"])) == round(metrics["accuracy"] * 45)
    assert metrics["log_loss"] > 0
    assert 0 <= metrics["ece"] <= 1


def test_fit_with_a_fixed_seed_is_reproducible_and_balanced():
    X, y = _blobs()
    first = classifier_fit(X=X, y=y, seed=3)
    second = classifier_fit(X=X, y=y, seed=3)
    assert first.get_params()["class_weight"] == "balanced"
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_fit_refuses_a_single_class():
    X, _ = _blobs()
    with pytest.raises(TrainingError, match="two classes"):
        classifier_fit(X=X[:5], y=["a"] * 5)


def test_holdout_is_stratified_fixed_and_never_machine_labelled():
    labels = ["a"] * 50 + ["b"] * 10
    machine = [i % 5 == 0 for i in range(60)]
    add = holdout_assign(
        labels=labels,
        already_held_out=[False] * 60,
        eligible=[not m for m in machine],
        fraction=0.2,
        seed=1,
    )
    # stratified: 20% of each class
    assert add[:50].sum() == 10
    assert add[50:].sum() == 2
    # never a machine label
    assert not any(a and m for a, m in zip(add, machine, strict=True))
    # fixed: asking again with the same state adds nothing new
    again = holdout_assign(
        labels=labels, already_held_out=add, eligible=[not m for m in machine], fraction=0.2, seed=1
    )
    assert not again.any()
    # grows with new labels, keeping the old ones
    grown = holdout_assign(
        labels=[*labels, *["b"] * 10],
        already_held_out=[*add, *[False] * 10],
        eligible=[True] * 70,
        fraction=0.2,
        seed=1,
    )
    assert grown[:60].sum() == 0  # existing held-out items are not re-added, none removed
    assert grown[60:].sum() == 2


def test_holdout_keeps_a_training_example_per_class():
    add = holdout_assign(
        labels=["a", "b"],
        already_held_out=[False, False],
        eligible=[True, True],
        fraction=0.9,
        seed=0,
    )
    assert not add.any()


def _comparison(new, old, *, version=4, groups=None, seed=0):
    y = np.array(["a", "b", "c"] * 20)
    comparison = paired_bootstrap(
        y_true=y, new_predicted=new(y), old_predicted=old(y), groups=groups, seed=seed
    ).as_dict()
    comparison.update(version=version, evaluation="held_out", refit=False)
    return comparison


def _perfect(y):
    return y.copy()


def _misses(every):
    def predict(y):
        out = y.copy()
        out[::every] = np.where(out[::every] == "a", "b", "a")
        return out

    return predict


def test_gate_promotes_the_first_model():
    decision = promotion_decision(
        candidate={"n": 10, "macro_f1": 0.5}, comparison=None, tolerance=0.01, active_exists=False
    )
    assert decision.promote
    assert "first model" in decision.reason
    assert "0.500 on 10 held-out items" in decision.reason


def test_gate_rejects_a_clearly_worse_model_with_both_figures():
    # the candidate misses every second item, the active model none, on the same 60 items
    comparison = _comparison(_misses(2), _perfect)
    decision = promotion_decision(
        candidate={"n": 60, "macro_f1": comparison["new"]},
        comparison=comparison,
        tolerance=0.05,
        active_exists=True,
        candidate_number=5,
    )
    assert not decision.promote
    assert comparison["high"] < -0.05
    assert f"v5 {comparison['new']:.3f} vs v4 1.000 on the same 60 held-out items" in (
        decision.reason
    )
    assert "beyond the noise" in decision.reason


def test_gate_promotes_a_slightly_worse_model_within_the_noise():
    # one miss in 60 items: lower, but a resample without that item is as likely as not
    comparison = _comparison(_misses(60), _perfect)
    assert comparison["difference"] < 0 <= comparison["high"]
    decision = promotion_decision(
        candidate={"n": 60, "macro_f1": comparison["new"]},
        comparison=comparison,
        tolerance=0.0,
        active_exists=True,
    )
    assert decision.promote
    assert f"interval {comparison['low']:+.3f}..{comparison['high']:+.3f}" in decision.reason


def test_gate_promotes_the_first_model_unevaluated_without_any_evaluation():
    # no model is active yet: nothing to be worse than, and cold start would go on otherwise
    decision = promotion_decision(
        candidate={"n": 0}, comparison=None, tolerance=0.0, active_exists=False
    )
    assert decision.promote
    assert "not evaluated" in decision.reason


def test_gate_refuses_a_later_model_that_cannot_be_evaluated():
    decision = promotion_decision(
        candidate={"n": 0}, comparison=None, tolerance=0.0, active_exists=True
    )
    assert not decision.promote
    assert "too few human labels" in decision.reason


def test_paired_bootstrap_of_identical_predictions_is_zero_and_seeded():
    y = np.array(["a", "b", "c", "a", "b"] * 8)
    noisy = y.copy()
    noisy[::3] = "c"
    first = paired_bootstrap(y_true=y, new_predicted=noisy, old_predicted=noisy, seed=3)
    assert (first.difference, first.low, first.high) == (0.0, 0.0, 0.0)
    # seeded: the same inputs and seed give the same interval, another seed another one
    other = _misses(3)(y)
    a = paired_bootstrap(y_true=y, new_predicted=noisy, old_predicted=other, seed=3)
    b = paired_bootstrap(y_true=y, new_predicted=noisy, old_predicted=other, seed=3)
    c = paired_bootstrap(y_true=y, new_predicted=noisy, old_predicted=other, seed=4)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low <= a.difference <= a.high


def test_paired_bootstrap_point_figures_are_the_evaluation_macro_f1():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c", "d"], size=50)
    new = np.where(rng.random(50) < 0.8, y, rng.choice(["a", "b", "c", "d"], size=50))
    old = np.where(rng.random(50) < 0.6, y, "a")
    groups = np.arange(50) % 5
    pooled = paired_bootstrap(y_true=y, new_predicted=new, old_predicted=old)
    present = sorted(set(y))
    assert pooled.new == pytest.approx(f1_score(y, new, labels=present, average="macro"))
    assert pooled.old == pytest.approx(f1_score(y, old, labels=present, average="macro"))
    # with groups (folds): the mean over groups of each group's macro-F1
    by_fold = paired_bootstrap(y_true=y, new_predicted=new, old_predicted=old, groups=groups)
    per_fold = [
        f1_score(
            y[groups == g], new[groups == g], labels=sorted(set(y[groups == g])), average="macro"
        )
        for g in range(5)
    ]
    assert by_fold.new == pytest.approx(np.mean(per_fold))


def test_stratified_folds_cover_every_class_in_every_fold():
    labels = ["a"] * 7 + ["b"] * 5 + ["c"] * 12
    assert cv_fold_count(labels) == 5
    assert cv_fold_count(["a", "a", "b"]) == 0  # a class with one label: no cross-validation
    assert cv_fold_count(["a", "a", "b", "b"]) == 2
    folds = stratified_folds(labels, k=5, seed=0)
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    for f in range(5):
        assert set(np.asarray(labels)[folds == f]) == {"a", "b", "c"}
    np.testing.assert_array_equal(folds, stratified_folds(labels, k=5, seed=0))


def test_cross_validation_reports_the_mean_and_spread_over_folds():
    X, y = _blobs(n_per_class=10)
    folds = stratified_folds(y, k=5, seed=0)
    folds[:3] = -1  # e.g. machine labels: trained on in every fold, never tested
    predictions = fold_predictions(
        estimator=classifier_make(name="logistic_regression", params={}, seed=0),
        X=X,
        y=y,
        folds=folds,
        classes=["a", "b", "c"],
    )
    assert sorted(predictions.index.tolist()) == list(range(3, 30))
    metrics = cross_validation_metrics(predictions=predictions, y=y, classes=["a", "b", "c"])
    assert metrics["evaluation"] == "cross_validation"
    assert (metrics["folds"], metrics["n"]) == (5, 27)
    assert metrics["macro_f1"] == pytest.approx(np.mean(metrics["fold_macro_f1"]))
    assert metrics["macro_f1_min"] <= metrics["macro_f1"] <= metrics["macro_f1_max"]
    assert metrics["macro_f1_std"] == pytest.approx(np.std(metrics["fold_macro_f1"]))


def test_a_recipe_left_with_one_class_predicts_it():
    X, y = _blobs(n_per_class=6)
    folds = stratified_folds(y, k=3, seed=0)
    only_a = np.asarray(y) == "a"
    predictions = fold_predictions(
        estimator=classifier_make(name="logistic_regression", params={}, seed=0),
        X=X,
        y=y,
        folds=folds,
        classes=["a", "b", "c"],
        trainable=only_a,
    )
    assert set(predictions.predicted) == {"a"}


def test_the_held_out_set_is_used_once_it_holds_ten_of_every_class():
    human = ["a"] * 60 + ["b"] * 50
    assert not holdout_ready(held_out_labels=["a"] * 12 + ["b"] * 9, human_labels=human)
    assert holdout_ready(held_out_labels=["a"] * 12 + ["b"] * 10, human_labels=human)


def test_hashing_embedder_is_deterministic_and_normalised():
    embedder = HashingEmbedder()
    first = embedder.encode(["the cat sat", "stock markets fell"])
    second = HashingEmbedder().encode(["the cat sat", "stock markets fell"])
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    assert first.dtype == np.float32


def test_unique_texts_keeps_each_text_once():
    hashes, texts = unique_texts(["x", "y", "x"])
    assert texts == ["x", "y"]
    assert hashes == [content_hash("x"), content_hash("y")]


def test_sample_weights_change_the_fit_and_zero_weights_mute_rows():
    from models_app.ml.training import classifier_fit

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-1, 1, (40, 4)), rng.normal(1, 1, (40, 4))]).astype(np.float32)
    y = ["a"] * 40 + ["b"] * 40
    # Mislabel ten "a" rows as "b": with weight 0 they must not move the model at all
    y_noisy = ["b"] * 10 + y[10:]
    clean = classifier_fit(X=X[10:], y=y[10:])
    muted = classifier_fit(X=X, y=y_noisy, sample_weight=[0.0] * 10 + [1.0] * 70)
    noisy = classifier_fit(X=X, y=y_noisy)
    assert np.allclose(clean.predict_proba(X), muted.predict_proba(X), atol=1e-3)
    assert not np.allclose(clean.predict_proba(X), noisy.predict_proba(X), atol=1e-3)
