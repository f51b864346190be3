"""Text embedders and the "embed each unique text once" routine.

An embedder maps texts to L2-normalised float32 vectors. ``hashing`` is a cheap deterministic
embedder for tests (no model files); every other name is a sentence-transformers model name or
path, loaded once per process.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np

HASHING = "hashing"
HASHING_DIM = 256


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
    def __init__(self, name: str, *, batch_size: int = 64, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        self._model = SentenceTransformer(name, device=device)
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


@lru_cache(maxsize=2)
def embedder_load(name: str, batch_size: int = 64) -> Embedder:
    """The embedder called `name`, loaded once per process (models take seconds to load)."""
    if name == HASHING:
        return HashingEmbedder()
    return SentenceTransformerEmbedder(name, batch_size=batch_size)


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
