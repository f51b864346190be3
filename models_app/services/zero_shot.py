"""Zero-shot suggestions: before any model is promoted, each item gets a suggestion from the
similarity of its vector to the project's label vectors (`models_app.ml.zero_shot`).

Run by the cold-start ranking (`active_learning.services.ranking`), on whatever is embedded so
far. Predictions are stored with ``source_kind = zero_shot``, ``source_id = zero_shot:<project>``
and ``source_version = <label_set_version>`` (bumped when a label's value or description
changes), with the temperature and how many human labels calibrated it in ``details``.
"""

from __future__ import annotations

import numpy as np
from django.db import connection

from labeling.models import Annotation, Assignment, Item, Prediction, Project
from models_app.ml.embedding import content_hash
from models_app.ml.zero_shot import ZeroShotModel, label_prompts, zero_shot_fit
from models_app.models import Embedding
from models_app.services.vectors import VectorSet

# The pool sample the label vectors are refined on: enough for stable centroids.
REFINE_SAMPLE = 20_000


def zero_shot_source_id(project: Project) -> str:
    return f"zero_shot:{project.pk}"


def project_labels(project: Project) -> list[tuple[str, str]]:
    return list(project.labels.order_by("order", "id").values_list("value", "description"))


def zero_shot_label_pairs(*, project: Project) -> list[tuple[str, str]]:
    """(content hash, text) of the project's label prompts, as stored in the Embedding table."""
    return [(content_hash(p), p) for p in label_prompts(project_labels(project))]


def zero_shot_label_vectors(*, project: Project, model_name: str) -> np.ndarray:
    """The label prompts embedded with the project's embedding model: read from the store
    (the embedding job's first chunk stores them), embedded and stored if missing."""
    from models_app.services.embeddings import embed_texts_missing

    pairs = zero_shot_label_pairs(project=project)
    hashes = [h for h, _ in pairs]

    def stored() -> dict[str, bytes]:
        return dict(
            Embedding.objects.filter(model_name=model_name, content_hash__in=hashes).values_list(
                "content_hash", "vector"
            )
        )

    vectors = stored()
    if len(vectors) < len(set(hashes)):
        embed_texts_missing(model_name=model_name, pairs=pairs)
        vectors = stored()
    return np.stack([np.frombuffer(bytes(vectors[h]), dtype="<f4") for h in hashes]).astype(
        np.float32
    )


def _human_labels(project: Project, vectors: VectorSet, classes: list[str]):
    """Vectors and class indices of items with a human single-label final label."""
    rows = Item.objects.filter(
        project=project, final_labels__isnull=False, is_gold=False
    ).values_list("id", "final_labels", "final_lineage")
    index = {c: k for k, c in enumerate(classes)}
    ids, ys = [], []
    for item_id, labels, lineage in rows:
        if (lineage or {}).get("machine") or not isinstance(labels, list) or len(labels) != 1:
            continue
        if labels[0] in index:
            ids.append(item_id)
            ys.append(index[labels[0]])
    if not ids:
        return None, None
    present = np.isin(np.asarray(ids, dtype=np.int64), vectors.item_ids)
    ids = np.asarray(ids, dtype=np.int64)[present]
    ys = np.asarray(ys, dtype=np.int64)[present]
    if not len(ids):
        return None, None
    return vectors.vectors(ids), ys


def zero_shot_model(
    *, project: Project, vectors: VectorSet, pool_rows: np.ndarray, model_name: str, seed: int
) -> tuple[ZeroShotModel, list[str]] | None:
    """Fit the zero-shot model on the pool (a sample of it), calibrated on the human labels
    given so far. None when the project has fewer than two labels."""
    specs = project_labels(project)
    if len(specs) < 2 or not len(pool_rows):
        return None
    classes = [value for value, _ in specs]
    rng = np.random.default_rng(seed)
    sample = (
        pool_rows
        if len(pool_rows) <= REFINE_SAMPLE
        else np.sort(rng.choice(pool_rows, REFINE_SAMPLE, replace=False))
    )
    known, known_labels = _human_labels(project, vectors, classes)
    model = zero_shot_fit(
        pool=np.asarray(vectors.matrix[sample], dtype=np.float32),
        label_vectors=zero_shot_label_vectors(project=project, model_name=model_name),
        known=known,
        known_labels=known_labels,
    )
    return model, classes


def zero_shot_scores(
    *, project: Project, vectors: VectorSet, rows: np.ndarray, model_name: str, seed: int
) -> tuple[ZeroShotModel, list[str], np.ndarray] | None:
    """Fit the zero-shot model on `rows` of the vectors and score them: (model, classes,
    probabilities of each row), or None when the project has fewer than two labels."""
    fitted = zero_shot_model(
        project=project, vectors=vectors, pool_rows=rows, model_name=model_name, seed=seed
    )
    if fitted is None:
        return None
    model, classes = fitted
    order = np.argsort(rows, kind="stable")  # read the (memory-mapped) matrix in row order
    matrix = np.empty((len(rows), vectors.matrix.shape[1]), dtype=np.float32)
    matrix[order] = vectors.matrix[rows[order]]
    return model, classes, model.predict_proba(matrix)


def zero_shot_predictions_write(
    *,
    project: Project,
    item_ids: np.ndarray,
    proba: np.ndarray,
    classes: list[str],
    model: ZeroShotModel,
    batch: int = 50_000,
) -> int:
    """Store one zero-shot prediction per item under the current label-set version, and drop
    those of earlier versions that no annotation accepted."""
    from active_learning.services.bulk import predictions_write

    version = str(project.label_set_version)
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(len(best)), best]
    labels = [classes[k] for k in best]
    rounded = np.round(proba, 4).tolist()
    details = {
        "label_set_version": project.label_set_version,
        "temperature": round(model.temperature, 5),
        "calibrated_on": model.calibrated_on,
    }
    written = 0
    for start in range(0, len(item_ids), batch):
        written += predictions_write(
            project_id=project.pk,
            source_id=zero_shot_source_id(project),
            source_version=version,
            item_ids=item_ids[start : start + batch].tolist(),
            labels=labels[start : start + batch],
            confidences=confidence[start : start + batch],
            scores=(dict(zip(classes, row, strict=True)) for row in rounded[start : start + batch]),
            details=details,
            source_kind=Prediction.SourceKind.ZERO_SHOT,
        )
    # Kept: what an annotation accepted (its lineage), and what may be on a screen (a leased
    # item), so accepting a suggestion shown before the descriptions changed still records it.
    pred, ann = Prediction._meta.db_table, Annotation._meta.db_table
    asg = Assignment._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""DELETE FROM {pred} WHERE project_id = %s AND source_kind = %s AND source_id = %s
                  AND source_version <> %s
                  AND NOT EXISTS (SELECT 1 FROM {ann} a WHERE a.suggestion_id = {pred}.id)
                  AND NOT EXISTS (SELECT 1 FROM {asg} s
                                   WHERE s.item_id = {pred}.item_id AND s.status = %s)""",
            [
                project.pk,
                Prediction.SourceKind.ZERO_SHOT,
                zero_shot_source_id(project),
                version,
                Assignment.Status.LEASED,
            ],
        )
    return written
