"""Import benchmark: 1,000,000 rows through the product's import pipeline into PostgreSQL.

Writes a synthetic JSONL (or CSV) file once (id, text, a metadata column), then runs the same
code a Celery worker runs for an import job (`import_job_create` + `import_run`: validation
pass, staging, batched COPY + INSERT ... ON CONFLICT with the cursor committed per batch) into
a fresh project, and prints rows/s for the whole job and for each pass. No embeddings.

    .venv/bin/python -m bench.import_bench [--rows 1000000] [--format jsonl|csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import time
from pathlib import Path

from bench.common import django_setup, ensure_database, git_rev, machine_line, synthetic_text

LABELS = ["business", "entertainment", "politics", "sport", "tech"]


def write_file(path: Path, rows: int, fmt: str) -> None:
    if path.exists():
        return
    rng = random.Random(7)
    tmp = path.with_suffix(".part")
    with tmp.open("w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            writer = csv.writer(out)
            writer.writerow(["id", "text", "source"])
            for n in range(rows):
                writer.writerow([f"r{n}", synthetic_text(rng, n), f"feed-{n % 17}"])
        else:
            for n in range(rows):
                out.write(
                    json.dumps({"id": f"r{n}", "text": synthetic_text(rng, n), "source": n % 17})
                )
                out.write("\n")
    tmp.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", default="jsonl", choices=["jsonl", "csv"])
    parser.add_argument("--dir", default="/tmp/flywheel-bench")
    args = parser.parse_args()

    ensure_database()
    django_setup()
    print(f"import benchmark · {machine_line()} · commit {git_rev()}")
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"import-{args.rows}.{args.format}"
    t0 = time.perf_counter()
    write_file(path, args.rows, args.format)
    size_mib = path.stat().st_size / 2**20
    print(f"  input: {path} ({size_mib:,.0f} MiB, {time.perf_counter() - t0:.1f} s)")

    from django.db import connection

    from labeling.models import Item, Job, Project
    from labeling.services.imports import import_job_create, import_run
    from labeling.services.projects import project_create

    name = f"bench-import-{args.format}"
    old = list(Project.objects.filter(name=name).values_list("pk", flat=True))
    if old:  # set-based: the ORM's cascade would load a million items to delete them
        with connection.cursor() as cursor:
            for table in ("labeling_prediction", "labeling_assignment", "labeling_item"):
                cursor.execute(f"DELETE FROM {table} WHERE project_id = ANY(%s)", [old])
        Project.objects.filter(pk__in=old).delete()
    # Earlier runs' deleted rows stay in the table and its indexes until vacuumed (this
    # machine's PostgreSQL runs without autovacuum): vacuum so every run starts alike.
    with connection.cursor() as cursor:
        for table in ("labeling_item", "labeling_queueentry", "labeling_prediction"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    project = project_create(name=name, labels=LABELS)
    job = import_job_create(
        project=project,
        path=path,
        file_format=args.format,
        mapping={"text": "text", "id": "id"},
        copy_file=False,
        enqueue=False,
    )
    t0 = time.perf_counter()
    job = import_run(job_id=job.pk)
    elapsed = time.perf_counter() - t0
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error)
    created = Item.objects.filter(project=project).count()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  {args.format}: {args.rows:,} rows -> {created:,} items in {elapsed:.1f} s = "
        f"{args.rows / elapsed:,.0f} rows/s; peak RSS {peak:.0f} MB; job {job.pk}: {job.message}"
    )


if __name__ == "__main__":
    main()
