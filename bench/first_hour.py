"""The first hour of a project, measured through the live services.

An empty project in the embedded defaults (SQLite and the filesystem broker in a scratch
folder, as `make run`), a real Celery worker process, then: the file is imported as a job, and
an oracle annotator (it knows every answer) labels through the queue (`queue_next_item`,
`annotation_submit`) from the moment items exist, accepting the suggestion shown whenever it is
right. Prints one JSON object at the end:

- ``seconds_to_first_ranked_item``: import started to the first queue head written by a
  ranking (priority >= 10: a ranking job's epoch), i.e. not the import's random order;
- ``seconds_to_all_embedded``: import started to every item embedded;
- ``zero_shot_accuracy``: the zero-shot suggestions (the live service, no labels) against the
  truth over every item, once all are embedded;
- ``suggestion_correct_at`` / ``suggestion_accepted_at`` for the first 25, 50, 100, 200 labels
  (cumulative; ``*_window`` for labels 26-50, 51-100, 101-200): the share of served items with a
  suggestion whose suggestion was right, and the share of all served items whose suggestion the
  annotator accepted; ``pool_suggestion_accuracy_at``: the suggestion every unlabeled item would
  show at that moment, against the truth.

    .venv/bin/python -m bench.first_hour [--data bbc | file.csv|.jsonl --text-field --label-field]
        [--labels 200] [--seconds-per-label 1.0] [--descriptions labels.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = (25, 50, 100, 200)


def _load(args) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """(external id, text, truth) rows in file order, and label descriptions."""
    descriptions: dict[str, str] = {}
    if args.descriptions:
        descriptions = json.loads(Path(args.descriptions).read_text(encoding="utf-8"))
    if args.data == "bbc":
        from labeling.management.commands.demo_setup import (
            LABEL_DESCRIPTIONS,
            bbc_articles,
            bbc_corpus_dir,
        )

        rows = bbc_articles(bbc_corpus_dir())
        return rows, descriptions or dict(LABEL_DESCRIPTIONS)
    from active_learning.simulation import load_labelled

    texts, labels = load_labelled(
        Path(args.data), text_field=args.text_field, label_field=args.label_field
    )
    return [(f"row-{n:06d}", t, y) for n, (t, y) in enumerate(zip(texts, labels, strict=True))], (
        descriptions
    )


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=threads",
        "--concurrency=4",
        "-Q",
        "default,train,llm,embed",
        "-n",
        f"first-hour-{os.getpid()}@%h",
        "-l",
        "info",
    ]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="bbc")
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--label-field", default="label")
    parser.add_argument("--descriptions", default="")
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--seconds-per-label", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="flywheel-first-hour-"))
    os.environ.update(
        {
            "FLYWHEEL_DATA_DIR": str(scratch),
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DEBUG": "0",
        }
    )
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "EMBEDDING_MODEL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction

    from bench.common import machine_line
    from labeling.api.selectors import item_suggestions
    from labeling.models import Item, Job, Membership, Prediction, QueueEntry
    from labeling.selectors import SUGGESTION_ORDER_SQL  # noqa: F401 (documents the order)
    from labeling.services.annotations import annotation_submit
    from labeling.services.imports import import_job_create
    from labeling.services.projects import membership_set, project_create
    from labeling.services.queue import queue_next_item
    from models_app.services.config import embedding_model_name
    from models_app.services.embeddings import embeddings_missing_count

    call_command("migrate", verbosity=0)
    rows, descriptions = _load(args)
    truth = {external_id: label for external_id, _, label in rows}
    classes = sorted(set(truth.values()))
    user = get_user_model().objects.create_user(username="oracle", password="x")
    project = project_create(
        name="First hour",
        labels=[{"value": c, "description": descriptions.get(c, "")} for c in classes],
    )
    membership_set(project=project, users=[user], role=Membership.Role.ANNOTATOR)
    data_path = scratch / "data.jsonl"
    with data_path.open("w", encoding="utf-8") as out:
        for external_id, text, _ in rows:
            out.write(json.dumps({"id": external_id, "text": text}, ensure_ascii=False) + "\n")

    log_path = scratch / "worker.log"
    worker = _start_worker(dict(os.environ), log_path)
    deadline = time.monotonic() + 120
    while b"ready." not in log_path.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the worker did not start:\n" + log_path.read_text())
        time.sleep(0.2)

    print(machine_line(), file=sys.stderr)
    print(f"{len(rows)} rows, {len(classes)} classes; scratch {scratch}", file=sys.stderr)
    started = time.monotonic()
    with transaction.atomic():
        import_job_create(project=project, user=user, path=data_path, file_format="jsonl")

    first_ranked = all_embedded = None
    served: list[dict] = []
    pool_accuracy: dict[int, float | None] = {}
    next_label_at = 0.0
    model_name = embedding_model_name()

    def pool_suggestion_accuracy() -> float | None:
        best: dict[int, list[str]] = {}
        rank = {"zero_shot": 1}
        predictions = (
            Prediction.objects.filter(project=project, item__final_labels__isnull=True)
            .exclude(labels=[])
            .values_list("item_id", "item__external_id", "labels", "confidence", "source_kind")
        )
        key: dict[int, tuple] = {}
        names: dict[int, str] = {}
        for item_id, external_id, labels, confidence, kind in predictions:
            candidate = (rank.get(kind, 0), -(confidence or 0))
            if item_id not in key or candidate < key[item_id]:
                key[item_id], best[item_id], names[item_id] = candidate, labels, external_id
        if not best:
            return None
        return sum(best[i] == [truth[names[i]]] for i in best) / len(best)

    try:
        while time.monotonic() - started < args.timeout:
            now = time.monotonic() - started
            if (
                first_ranked is None
                and QueueEntry.objects.filter(project=project, priority__gte=10).exists()
            ):
                first_ranked = now
            if (
                all_embedded is None
                and Item.objects.filter(project=project).exists()
                and not Job.objects.filter(
                    project=project, kind=Job.Kind.IMPORT, status__in=["pending", "running"]
                ).exists()
                and embeddings_missing_count(project=project, model_name=model_name) == 0
            ):
                all_embedded = now
            failed = Job.objects.filter(project=project, status=Job.Status.FAILED).first()
            if failed is not None:
                raise SystemExit(f"job {failed.pk} ({failed.kind}) failed: {failed.error}")
            if len(served) < args.labels and now >= next_label_at:
                assignment = queue_next_item(project=project, user=user)
                if assignment is not None:
                    item = assignment.item
                    answer = truth[item.external_id]
                    shown = item_suggestions(item=item)
                    top = shown[0] if shown else None
                    correct = top is not None and top.labels == [answer]
                    annotation_submit(
                        project=project,
                        user=user,
                        item_id=item.pk,
                        labels=[answer],
                        suggestion_id=top.pk if correct else None,
                    )
                    served.append(
                        {
                            "n": len(served) + 1,
                            "t": round(now, 1),
                            "ranked": item.priority >= 10,
                            "suggested": top is not None,
                            "source": top.source_kind if top else None,
                            "correct": correct,
                        }
                    )
                    if len(served) in CHECKPOINTS:
                        pool_accuracy[len(served)] = pool_suggestion_accuracy()
                    next_label_at = now + args.seconds_per_label
            if len(served) >= args.labels and all_embedded is not None and first_ranked:
                break
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()

    # Zero-shot accuracy over every item: the live service, as a fresh project would see it.
    import numpy as np

    from models_app.services.embeddings import vectors_ready
    from models_app.services.zero_shot import zero_shot_model

    vectors = vectors_ready(project=project, model_name=model_name)
    fresh = project_create(
        name="First hour (zero-shot check)",
        labels=[{"value": c, "description": descriptions.get(c, "")} for c in classes],
    )
    fitted = zero_shot_model(
        project=fresh,
        vectors=vectors,
        pool_rows=np.arange(len(vectors.item_ids)),
        model_name=model_name,
        seed=0,
    )
    zero_shot_accuracy = None
    if fitted is not None:
        zs_model, zs_classes = fitted
        predicted = zs_model.predict_proba(np.asarray(vectors.matrix)).argmax(axis=1)
        ids = dict(Item.objects.filter(project=project).values_list("id", "external_id"))
        answers = [truth[ids[int(i)]] for i in vectors.item_ids]
        zero_shot_accuracy = float(
            np.mean([zs_classes[k] == a for k, a in zip(predicted, answers, strict=True)])
        )

    def share(rows, key, among=None) -> float | None:
        rows = [r for r in rows if among is None or r[among]]
        return round(sum(r[key] for r in rows) / len(rows), 4) if rows else None

    def at(n: int, key: str, among=None) -> float | None:
        return share(served[:n], key, among) if len(served) >= n else None

    windows = list(zip((0, *CHECKPOINTS[:-1]), CHECKPOINTS, strict=True))
    jobs = list(
        Job.objects.filter(project=project)
        .order_by("id")
        .values_list("kind", "status", "created_at", "started_at", "finished_at")
    )
    result = {
        "data": args.data,
        "items": Item.objects.filter(project=project).count(),
        "classes": len(classes),
        "embedding_model": model_name,
        "seconds_per_label": args.seconds_per_label,
        "seconds_to_first_ranked_item": None if first_ranked is None else round(first_ranked, 1),
        "seconds_to_all_embedded": None if all_embedded is None else round(all_embedded, 1),
        "zero_shot_accuracy": zero_shot_accuracy,
        "labels_given": len(served),
        "served_from_ranking_share": share(served, "ranked"),
        "suggestion_correct_at": {n: at(n, "correct", "suggested") for n in CHECKPOINTS},
        "suggestion_accepted_at": {n: at(n, "correct") for n in CHECKPOINTS},
        "suggestion_correct_window": {
            f"{lo + 1}-{hi}": share(served[lo:hi], "correct", "suggested")
            for lo, hi in windows
            if len(served) >= hi
        },
        "suggestion_sources": {
            kind: sum((r["source"] or "none") == kind for r in served)
            for kind in sorted({r["source"] or "none" for r in served})
        },
        "pool_suggestion_accuracy_at": pool_accuracy,
        "model_versions": list(
            project.model_versions.order_by("number").values_list("number", "status", "label_count")
        ),
        "jobs": len(jobs),
        "scratch": str(scratch),
    }
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
