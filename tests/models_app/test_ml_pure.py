"""Pure training, evaluation, held-out and promotion-gate maths: no database."""

import numpy as np
import pytest

from models_app.ml.embedding import HashingEmbedder, content_hash, unique_texts
from models_app.ml.gate import promotion_decision
from models_app.ml.training import (
    TrainingError,
    classifier_fit,
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


def test_gate_promotes_the_first_model():
    decision = promotion_decision(candidate={"n": 10, "macro_f1": 0.5}, active=None, tolerance=0.01)
    assert decision.promote
    assert "first model" in decision.reason


def test_gate_rejects_a_worse_model_with_the_reason():
    decision = promotion_decision(
        candidate={"n": 10, "macro_f1": 0.70}, active={"n": 10, "macro_f1": 0.80}, tolerance=0.05
    )
    assert not decision.promote
    assert "0.7000" in decision.reason
    assert "0.8000" in decision.reason


def test_gate_accepts_a_slightly_worse_model_within_tolerance():
    decision = promotion_decision(
        candidate={"n": 10, "macro_f1": 0.78}, active={"n": 10, "macro_f1": 0.80}, tolerance=0.05
    )
    assert decision.promote


def test_gate_promotes_the_first_model_unevaluated_without_a_held_out_set():
    # no model is active yet: nothing to be worse than, and cold start would go on otherwise
    decision = promotion_decision(candidate={"n": 0}, active=None, tolerance=0.0)
    assert decision.promote
    assert "not evaluated" in decision.reason


def test_gate_refuses_a_later_model_without_a_held_out_set():
    decision = promotion_decision(
        candidate={"n": 0}, active=None, tolerance=0.0, active_exists=True
    )
    assert not decision.promote
    assert "too small" in decision.reason


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
