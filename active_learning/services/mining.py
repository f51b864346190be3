"""Error-driven mining and "find similar".

When a human's final label contradicts a confident prediction of the active model, the item is
flagged (MinedError) and its nearest unlabeled neighbours in embedding space get a priority
boost right away; every later re-rank boosts the neighbours of recent flagged items again.
"""

from __future__ import annotations

import numpy as np
from django.db import connection, transaction
from django.db.models import F

from active_learning.models import MinedError
from active_learning.strategies import nearest_neighbours
from labeling.errors import ApplicationError
from labeling.models import Item, Prediction, Project
from models_app.ml.embedding import vectors_from_bytes
from models_app.models import Embedding, ModelVersion
from models_app.services.config import embedding_model_name
from models_app.services.vectors import VectorSet, vectors_load


def _unlabelled_mask(project: Project, vectors: VectorSet) -> np.ndarray:
    labelled = np.fromiter(
        Item.objects.filter(project=project, final_labels__isnull=False).values_list(
            "id", flat=True
        ),
        dtype=np.int64,
    )
    return ~np.isin(vectors.item_ids, labelled)


def mining_worth_checking(*, project_id: int, item_ids: list[int]) -> bool:
    """Whether any of these items has a final label and a prediction of the project's model at
    or above the mining confidence: the only items `mining_check` can flag. One statement, run
    after every submit once a model is active, so that a mining task is queued only for them
    (an uncertainty-ranked queue mostly serves items the model is unsure of)."""
    from active_learning.models import ActiveLearningSettings

    if not item_ids:
        return False
    default = ActiveLearningSettings._meta.get_field("mining_confidence").default
    marks = ", ".join(["%s"] * len(item_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT 1 FROM {Item._meta.db_table} i
                  JOIN {Prediction._meta.db_table} p ON p.item_id = i.id
                 WHERE i.id IN ({marks}) AND i.final_labels IS NOT NULL
                   AND p.source_kind = %s AND p.source_id = %s
                   AND p.confidence >= COALESCE(
                       (SELECT s.mining_confidence FROM {ActiveLearningSettings._meta.db_table} s
                         WHERE s.project_id = %s), %s)
                 LIMIT 1""",
            [
                *item_ids,
                Prediction.SourceKind.MODEL.value,
                ModelVersion(project_id=project_id).source_id,
                project_id,
                default,
            ],
        )
        return cursor.fetchone() is not None


def mining_check(*, project: Project, item_ids: list[int]) -> list[MinedError]:
    """Flag the items whose final human label contradicts a confident model prediction and
    boost their unlabeled neighbours. Returns the new flags."""
    from active_learning.services.ranking import al_settings_get

    active = ModelVersion.objects.filter(project=project, status="active").first()
    if active is None or not item_ids:
        return []
    al = al_settings_get(project=project)
    items = {
        row["id"]: row
        for row in Item.objects.filter(project=project, pk__in=item_ids, final_labels__isnull=False)
        .exclude(mined_error__isnull=False)
        .values("id", "final_labels", "final_lineage")
        if not (row["final_lineage"] or {}).get("machine")
    }
    if not items:
        return []
    predictions = (
        Prediction.objects.filter(
            item_id__in=list(items),
            source_kind=Prediction.SourceKind.MODEL,
            source_id=active.source_id,
            confidence__gte=al.mining_confidence,
        )
        .order_by("item_id", "-created_at")
        .values("item_id", "labels", "confidence", "source_version")
    )
    contradicted = {}
    for p in predictions:
        item = items[p["item_id"]]
        if p["item_id"] not in contradicted and sorted(p["labels"]) != sorted(item["final_labels"]):
            contradicted[p["item_id"]] = (p, item)
    if not contradicted:
        return []
    vectors = vectors_load(project=project, model_name=embedding_model_name())
    candidates = _unlabelled_mask(project, vectors)
    flags, boosts = [], {}
    for item_id, (p, item) in contradicted.items():
        neighbours: list[int] = []
        if np.isin(item_id, vectors.item_ids):
            idx, sims = nearest_neighbours(
                matrix=vectors.matrix,
                query=vectors.vectors([item_id])[0],
                k=al.mining_neighbours,
                candidates=candidates,
            )
            neighbours = vectors.item_ids[idx].tolist()
            for n, s in zip(neighbours, sims.tolist(), strict=True):
                boosts[n] = max(boosts.get(n, 0.0), al.mining_boost * max(s, 0.0))
        flags.append(
            MinedError(
                project=project,
                item_id=item_id,
                model_version=int(p["source_version"]),
                predicted=p["labels"],
                human=item["final_labels"],
                confidence=p["confidence"],
                neighbours=neighbours,
            )
        )
    with transaction.atomic():
        created = MinedError.objects.bulk_create(flags, ignore_conflicts=True)
        # A handful of rows (k neighbours per flag): one UPDATE per distinct boost value.
        by_value: dict[float, list[int]] = {}
        for n, b in boosts.items():
            by_value.setdefault(round(b, 3), []).append(n)
        for value, ids in by_value.items():
            Item.objects.filter(pk__in=ids, final_labels__isnull=True).update(
                priority=F("priority") + value
            )
    return created


def item_similar(*, project: Project, item: Item, k: int = 10) -> list[tuple[Item, float]]:
    """The `k` items of the project closest to `item` in embedding space, with cosine
    similarity, best first. Reads the stored snapshot (never embeds in a request)."""
    model_name = embedding_model_name()
    try:
        vectors = vectors_load(project=project, model_name=model_name, rebuild_if_stale=False)
    except ApplicationError:
        raise ApplicationError(
            "This project's texts are not embedded yet; try again when the embedding job is done."
        ) from None
    row = Embedding.objects.filter(model_name=model_name, content_hash=item.content_hash).first()
    if row is None:
        raise ApplicationError("This item is not embedded yet.", {"item": item.pk})
    query = vectors_from_bytes([bytes(row.vector)], row.dim)[0]
    idx, sims = nearest_neighbours(matrix=vectors.matrix, query=query, k=k + 1)
    pairs = [
        (int(i), float(s)) for i, s in zip(vectors.item_ids[idx], sims, strict=True) if i != item.pk
    ][:k]
    found = Item.objects.in_bulk([i for i, _ in pairs])
    return [(found[i], s) for i, s in pairs if i in found]
