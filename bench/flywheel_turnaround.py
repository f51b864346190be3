"""Flywheel turnaround: from the N-th new final label to a re-ranked queue, vectors stored.

Seeds (once per size) a PostgreSQL project with N items whose texts are synthetic and whose
vectors are synthetic 384-d float32 rows in the embedding store (5 noisy clusters, one per
class), builds the vector snapshot through the product's `vectors_rebuild`, and gives final
labels to a few thousand items. Then, per measured round: label `--retrain-every` more items
through the product's hook path (`final_labels_counted`), which starts the training job; the
training job (fit, held-out evaluation, gate, promotion) and the scoring job (score the pool,
write priorities, then predictions) run in this process, one after the other, as one worker
would. Printed: seconds to a re-ranked queue, and each phase.

    .venv/bin/python -m bench.flywheel_turnaround --items 100000
    .venv/bin/python -m bench.flywheel_turnaround --items 1000000
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.common import django_setup, ensure_database, machine_line, synthetic_text

BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flywheel_al_bench"
)
LABELS = ["business", "entertainment", "politics", "sport", "tech"]
DIM = 384
MODEL = "bench-synthetic-384"


def copy_items(*, project_id: int, count: int, seed: int) -> None:
    """Insert synthetic open items through COPY (a fixture, not the product's import path)."""
    import hashlib
    import random
    from datetime import UTC, datetime

    from django.db import connection

    rng = random.Random(seed)
    now = datetime.now(UTC)
    columns = (
        "project_id, external_id, text, metadata, content_hash, priority, status, "
        "annotation_count, is_gold, created_at, updated_at"
    )
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY labeling_item ({columns}) FROM STDIN") as copy:
            for n in range(count):
                text = synthetic_text(rng, n)
                digest = hashlib.sha256(text.encode()).hexdigest()
                copy.write_row(
                    (project_id, f"syn-{n}", text, "{}", digest, 0.0, "open", 0, False, now, now)
                )
        cursor.execute("ANALYZE labeling_item")
        cursor.execute("ANALYZE labeling_queueentry")  # filled by the item table's triggers


def _vectors(n: int, start: int, rng: np.random.Generator, centres: np.ndarray):
    cls = rng.integers(0, len(LABELS), size=n)
    v = centres[cls] + rng.normal(scale=0.9, size=(n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return cls, v.astype("<f4")


def seed(items: int, initial_labels: int):
    from django.db import connection

    from labeling.models import Item, Project
    from labeling.services.projects import project_create
    from models_app.models import Embedding
    from models_app.services.config import model_settings_get
    from models_app.services.vectors import vectors_rebuild

    name = f"bench-flywheel-{items}"
    project = Project.objects.filter(name=name).first()
    if project is not None and Item.objects.filter(project=project).count() == items:
        return project
    if project is not None:
        project.delete()
    project = project_create(name=name, labels=LABELS)
    t0 = time.perf_counter()
    copy_items(project_id=project.pk, count=items, seed=items)
    print(f"seeded {items} items in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(LABELS), DIM)).astype(np.float32)
    rows = list(
        Item.objects.filter(project=project).order_by("id").values_list("id", "content_hash")
    )
    t0 = time.perf_counter()
    truth = {}
    Embedding.objects.filter(model_name=MODEL).delete()
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY models_app_embedding (model_name, content_hash, dim, vector, created_at) "
            "FROM STDIN"
        ) as copy:
            seen = set()
            for start in range(0, len(rows), 50_000):
                block = rows[start : start + 50_000]
                cls, vecs = _vectors(len(block), start, rng, centres)
                for (item_id, h), c, v in zip(block, cls, vecs, strict=True):
                    truth[item_id] = LABELS[c]
                    if h in seen:
                        continue
                    seen.add(h)
                    copy.write_row((MODEL, h, DIM, v.tobytes(), "2026-01-01T00:00:00Z"))
        cursor.execute("ANALYZE models_app_embedding")
    print(f"stored {len(seen)} vectors in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    vectors_rebuild(project=project, model_name=MODEL)
    print(f"built the vector snapshot in {time.perf_counter() - t0:.1f} s")
    # Texts are random, so the class is whatever cluster the vector came from.
    np.save(_truth_path(project.pk), np.array([truth[i] for i, _ in rows]))
    settings_row = model_settings_get(project=project)
    settings_row.retrain_every = 100
    settings_row.save()
    _label(project, [i for i, _ in rows[:initial_labels]], rows)
    return project


def _truth_path(project_id: int):
    from django.conf import settings

    return settings.MEDIA_ROOT / f"bench-truth-{project_id}.npy"


def _label(project, item_ids, rows=None):
    from labeling.models import Item

    ids = np.array(
        list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    )
    truth = np.load(_truth_path(project.pk))
    pos = np.searchsorted(ids, item_ids)
    items = [
        Item(
            pk=int(i),
            final_labels=[str(truth[p])],
            final_confidence=1.0,
            final_lineage={"method": "single_annotator", "version": 1},
            status="done",
        )
        for i, p in zip(item_ids, pos, strict=True)
    ]
    Item.objects.bulk_update(
        items, ["final_labels", "final_confidence", "final_lineage", "status"], batch_size=5000
    )


def _vacuum() -> None:
    """Each round rewrites every item's priority and prediction; in production autovacuum
    clears those dead rows between rounds (a re-rank dirties far more than its 20% threshold).
    This machine's PostgreSQL runs without autovacuum, so do it here, outside the timing."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("labeling_item", "labeling_queueentry", "labeling_prediction"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("CHECKPOINT")


def measure_round(project, retrain_every: int) -> dict:
    from django.db import transaction

    from active_learning.services.ranking import ranking_run
    from labeling.models import Item, Job
    from models_app.services.training import (
        final_labels_counted,
        training_lock_release,
        training_run,
    )

    next_ids = list(
        Item.objects.filter(project=project, status="open")
        .order_by("-priority", "id")
        .values_list("id", flat=True)[:retrain_every]
    )
    _label(project, next_ids[:-1])
    before = list(
        Item.objects.filter(project=project, status="open")
        .order_by("-priority", "id")
        .values_list("id", flat=True)[1:21]
    )
    sent = []
    import active_learning.tasks as at
    import models_app.tasks as mt

    mt.train_task_enqueue = lambda job_id: sent.append(("train", job_id))
    at.rank_task_enqueue = lambda job_id: sent.append(("rank", job_id))
    # The N-th label: its final label is written, the hook counts it, training starts.
    t0 = time.perf_counter()
    with transaction.atomic():
        _label(project, next_ids[-1:])
    final_labels_counted(project=project, count=retrain_every)
    kind, train_job = sent.pop(0)
    assert kind == "train"
    training_run(job_id=train_job)
    training_lock_release(project_id=project.pk, job_id=train_job)
    t_train = time.perf_counter() - t0
    result = Job.objects.get(pk=train_job).result
    if not sent:
        return {"train_s": t_train, "promoted": False, "result": result}
    kind, rank_job = sent.pop(0)
    ranking_run(job_id=rank_job)
    t_total = time.perf_counter() - t0
    job = Job.objects.get(pk=rank_job)
    timings = job.result
    t_queue = t_train + timings["load"] + timings["score"] + timings["rank"] + timings["write_head"]
    after = list(
        Item.objects.filter(project=project, status="open")
        .order_by("-priority", "id")
        .values_list("id", flat=True)[:20]
    )
    return {
        "promoted": result.get("promoted"),
        "version": result.get("version"),
        "train_size": result.get("train_size"),
        "macro_f1": result.get("macro_f1"),
        "train_s": round(t_train, 2),
        "load_s": timings["load"],
        "score_s": timings["score"],
        "rank_s": timings["rank"],
        "write_head_s": timings["write_head"],
        "to_reranked_head_s": round(t_queue, 2),
        "write_tail_s": timings["write_tail"],
        "to_fully_reranked_s": round(t_queue + timings["write_tail"], 2),
        "write_predictions_s": timings["write_predictions"],
        "total_s": round(t_total, 2),
        "pool": timings["pool"],
        "priorities_updated": timings["updated"],
        "top20_changed": before != after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--initial-labels", type=int, default=2000)
    parser.add_argument("--retrain-every", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--strategy", default="margin")
    parser.add_argument("--diversity", type=int, default=20)
    args = parser.parse_args()
    os.environ["EMBEDDING_MODEL"] = MODEL
    ensure_database(BENCH_URL)
    django_setup(BENCH_URL)
    from active_learning.services.ranking import al_settings_get

    print(machine_line())
    print("load average before:", os.getloadavg())
    project = seed(args.items, args.initial_labels)
    al = al_settings_get(project=project)
    al.strategy = args.strategy
    al.diversity_batch = args.diversity
    al.save()
    for r in range(args.rounds):
        _vacuum()
        out = measure_round(project, args.retrain_every)
        print(f"round {r + 1}: {out} · load average {os.getloadavg()[0]:.2f}")
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
