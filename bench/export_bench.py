"""Export benchmark: 1,000,000 annotated items streamed as JSONL from PostgreSQL.

Seeds (once) a project whose items each carry one human annotation and one prediction, then
runs the product's `export_stream` into /dev/null (or --out), printing rows/s and the process's
peak RSS.

    .venv/bin/python -m bench.export_bench [--items 1000000] [--format jsonl]
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime

from bench.common import copy_items, django_setup, ensure_database, machine_line

PROJECT = "bench-export"
LABELS = ["business", "entertainment", "politics", "sport", "tech"]


def seed(items: int):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from labeling.models import Item, Project
    from labeling.services.projects import project_create

    project = Project.objects.filter(name=PROJECT).first()
    if project is None:
        project = project_create(name=PROJECT, labels=LABELS)
    if Item.objects.filter(project=project).count() == items:
        return project
    Item.objects.filter(project=project).delete()
    t0 = time.perf_counter()
    copy_items(project_id=project.pk, count=items, status="done")
    user, _ = get_user_model().objects.get_or_create(username="bench-exporter")
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        # Fixture only: one annotation, one prediction and a final label per item, set-based.
        cursor.execute(
            """INSERT INTO labeling_annotation (item_id, project_id, annotator_id, labels,
                   time_spent_ms, created_at, updated_at)
               SELECT id, project_id, %s, jsonb_build_array((%s::text[])[1 + id %% 5]), 1500, %s, %s
                 FROM labeling_item WHERE project_id = %s""",
            [user.pk, LABELS, now, now, project.pk],
        )
        cursor.execute(
            """INSERT INTO labeling_prediction (item_id, project_id, source_kind, source_id,
                   source_version, labels, confidence, details, created_at)
               SELECT id, project_id, 'model', 'logreg', '1',
                      jsonb_build_array((%s::text[])[1 + id %% 5]), 0.8, '{}', %s
                 FROM labeling_item WHERE project_id = %s""",
            [LABELS, now, project.pk],
        )
        cursor.execute(
            """UPDATE labeling_item SET annotation_count = 1,
                   final_labels = jsonb_build_array((%s::text[])[1 + id %% 5]),
                   final_confidence = 1.0,
                   final_lineage = '{"method": "single_annotator", "version": "1"}'
                WHERE project_id = %s""",
            [LABELS, project.pk],
        )
        cursor.execute("ANALYZE")
    print(f"  set-up: {items:,} annotated items in {time.perf_counter() - t0:.1f} s")
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "json"])
    parser.add_argument("--out", default="/dev/null")
    args = parser.parse_args()

    ensure_database()
    django_setup()
    print(f"export benchmark · {machine_line()}")
    project = seed(args.items)

    from labeling.services.exports import export_stream

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    size = 0
    lines = 0
    with open(args.out, "wb") as out:
        for chunk in export_stream(project=project, fmt=args.format):
            out.write(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  {args.format}: {args.items:,} rows in {elapsed:.1f} s = "
        f"{args.items / elapsed:,.0f} rows/s; {size / 2**20:,.0f} MiB; {lines:,} lines; "
        f"peak RSS {peak:.0f} MB (before export {rss_before:.0f} MB)"
    )


if __name__ == "__main__":
    main()
