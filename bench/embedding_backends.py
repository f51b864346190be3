"""CPU embedding backends for the bundled all-MiniLM-L6-v2 against the torch reference, in one
run: speed, agreement with torch, and the downstream macro-F1 that matters.

Every backend embeds the same BBC News texts (the 2,127 unique articles, or `--texts` of them
evenly spaced) with the same batch size and thread count. Speed is measured interleaved: the texts
are cut into chunks of `--chunk`, and each chunk is embedded by every backend in turn (the
order rotates from chunk to chunk), so a shared machine whose speed drifts slows every backend
alike; texts/s is all texts over the summed time of that backend. Models are loaded and warmed
up first (the first OpenVINO load also exports the model into the cache).

Downstream: the project's default classifier (`classifier_fit`, balanced logistic regression) by
stratified 5-fold cross-validation repeated over `--seeds` shuffles; the same folds for every
backend, so the difference to torch is paired (per fold, then averaged).

    .venv/bin/python -m bench.embedding_backends [--texts 2127] [--seeds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, machine_line

CANDIDATES = ("openvino", "openvino-bf16", "openvino-int8", "onnx-int8")


def _onnx_int8_embedder(model_path: str, *, batch_size: int, threads: int, workdir: Path):
    """Bench-only candidate: ONNX Runtime with its BERT graph fusions and dynamic int8
    (per-channel, MatMul only) weights, behind the same tokenise / pool / normalise code."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    from models_app.ml import embedding

    base = workdir / "model.onnx"
    fused = workdir / "fused.onnx"
    quantized = workdir / "fused-int8.onnx"
    embedding.onnx_export(Path(model_path), base)
    optimizer.optimize_model(
        str(base), model_type="bert", num_heads=12, hidden_size=384, opt_level=1
    ).save_model_to_file(str(fused))
    quantize_dynamic(
        str(fused),
        str(quantized),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )

    class OnnxRuntimeEmbedder(embedding.OpenVINOEmbedder):
        def __init__(self) -> None:  # the parent's encode, an ORT session instead of OpenVINO
            import threading

            from transformers import AutoTokenizer

            config = embedding._st_pipeline_config(Path(model_path))
            self.name, self.backend, self.batch_size = "onnx-int8", "onnx-int8", batch_size
            self.dim, self.max_seq_length = config["dim"], config["max_seq_length"]
            self._do_lower_case = config["do_lower_case"]
            self._tokenizer = AutoTokenizer.from_pretrained(model_path)
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            self._session = ort.InferenceSession(
                str(quantized), options, providers=["CPUExecutionProvider"]
            )
            self._input_names = [i.name for i in self._session.get_inputs()]
            self._lock = threading.Lock()

        def _last_hidden_state(self, encoded) -> np.ndarray:
            feed = {n: np.asarray(encoded[n], dtype=np.int64) for n in self._input_names}
            return self._session.run(None, feed)[0]

    return OnnxRuntimeEmbedder()


def _cv_f1(X: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]):
    from sklearn.metrics import f1_score

    from models_app.ml.training import classifier_fit

    scores = []
    for train, test in folds:
        model = classifier_fit(X=X[train], y=list(y[train]), seed=0)
        predicted = model.predict(X[test])
        scores.append(float(f1_score(y[test], predicted, average="macro")))
    return np.asarray(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=0, help="N evenly spaced texts (0 = all)")
    parser.add_argument("--seeds", type=int, default=5, help="shuffles of the 5-fold CV")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenVINO / ORT threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=64, help="texts per interleaved turn")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--cache-dir", default="var/embedding-cache")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    import torch
    from sklearn.model_selection import StratifiedKFold

    from active_learning.simulation import bbc_news
    from models_app.ml.embedding import (
        OpenVINOEmbedder,
        SentenceTransformerEmbedder,
        bundled_model_path,
    )

    torch.set_num_threads(args.threads)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(machine_line(), "· commit", commit, "· load average", os.getloadavg())
    texts, labels = bbc_news()
    if args.texts:  # a fixed subset spread over the corpus (its files are grouped by class)
        step = max(1, len(texts) // args.texts)
        texts, labels = texts[::step][: args.texts], labels[::step][: args.texts]
    y = np.asarray(labels)
    print(
        f"{len(texts)} BBC News texts ({np.mean([len(t) for t in texts]):.0f} characters on "
        f"average), batch {args.batch_size}, {args.threads} threads, chunks of {args.chunk}"
    )
    model_path = bundled_model_path()
    backends = {"torch": SentenceTransformerEmbedder(model_path, batch_size=args.batch_size)}
    workdir = Path(tempfile.mkdtemp(prefix="bench-embedding-backends-"))
    for name in [c.strip() for c in args.candidates.split(",") if c.strip()]:
        t0 = time.perf_counter()
        if name == "onnx-int8":
            if importlib.util.find_spec("onnxruntime") is None:
                print("skipped onnx-int8: onnxruntime is not installed (pip install -e '.[bench]')")
                continue
            backends[name] = _onnx_int8_embedder(
                model_path, batch_size=args.batch_size, threads=args.threads, workdir=workdir
            )
        else:
            backends[name] = OpenVINOEmbedder(
                model_path,
                backend=name,
                batch_size=args.batch_size,
                threads=args.threads,
                cache_dir=Path(args.cache_dir),
            )
        print(f"loaded {name} in {time.perf_counter() - t0:.1f} s (export included if new)")
    for embedder in backends.values():  # warm-up: first calls compile / allocate
        embedder.encode(texts[: args.batch_size])

    names = list(backends)
    seconds = dict.fromkeys(names, 0.0)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for turn, start in enumerate(range(0, len(texts), args.chunk)):
        chunk = texts[start : start + args.chunk]
        rotation = names[turn % len(names) :] + names[: turn % len(names)]
        for name in rotation:
            t0 = time.perf_counter()
            parts[name].append(backends[name].encode(chunk))
            seconds[name] += time.perf_counter() - t0
        if turn % 8 == 7:
            done = start + len(chunk)
            print(f"  {done}/{len(texts)} texts, load average {os.getloadavg()[0]:.2f}", flush=True)
    vectors = {n: np.concatenate(parts[n]) for n in names}

    folds = []
    for seed in range(args.seeds):
        splitter = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=seed)
        folds.extend(splitter.split(np.zeros(len(y)), y))
    f1 = {n: _cv_f1(vectors[n], y, folds) for n in names}

    def per_seed(scores: np.ndarray) -> np.ndarray:
        return scores.reshape(args.seeds, args.folds).mean(axis=1)

    rows = []
    reference = vectors["torch"]
    for name in names:
        cosine = (vectors[name] * reference).sum(axis=1)
        diff = (f1[name] - f1["torch"]) * 100
        seeds_f1 = per_seed(f1[name])
        rows.append(
            {
                "backend": name,
                "texts_per_s": round(len(texts) / seconds[name], 2),
                "speed_vs_torch": round(seconds["torch"] / seconds[name], 3),
                "cosine_mean": round(float(cosine.mean()), 5),
                "cosine_min": round(float(cosine.min()), 5),
                "macro_f1": round(float(f1[name].mean()), 5),
                "macro_f1_seed_sd": round(float(seeds_f1.std(ddof=1)) if args.seeds > 1 else 0, 5),
                "f1_diff_points": round(float(diff.mean()), 3),
                "f1_diff_points_seed_min": round(float(per_seed(diff).min()), 3),
                "f1_diff_points_seed_max": round(float(per_seed(diff).max()), 3),
                "meets_rule": bool(diff.mean() >= -0.5),
            }
        )
    print()
    print(
        "| backend | texts/s | x torch | cosine mean / min | macro-F1 (sd over seeds) "
        "| ΔF1 vs torch, points (seed range) |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['texts_per_s']:.1f} | {r['speed_vs_torch']:.2f} | "
            f"{r['cosine_mean']:.5f} / {r['cosine_min']:.5f} | "
            f"{r['macro_f1']:.4f} ({r['macro_f1_seed_sd']:.4f}) | "
            f"{r['f1_diff_points']:+.2f} ({r['f1_diff_points_seed_min']:+.2f} .. "
            f"{r['f1_diff_points_seed_max']:+.2f}) |"
        )
    eligible = [r for r in rows[1:] if r["meets_rule"] and r["speed_vs_torch"] > 1]
    fastest = max(eligible, key=lambda r: r["speed_vs_torch"])["backend"] if eligible else "torch"
    summary = {
        "commit": commit,
        "texts": len(texts),
        "seeds": args.seeds,
        "folds": args.folds,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "load_average_after": os.getloadavg(),
        "fastest_within_half_a_point": fastest,
        "backends": rows,
    }
    print()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
