"""Shared set-up for benchmarks: a PostgreSQL database of their own, Django, bulk fixtures.

Benchmarks print numbers; they assert nothing about time. Run them from the repository root,
e.g. `.venv/bin/python -m bench.queue_load`.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flywheel_bench"
)
BENCH_SECRET = "bench-only-secret-key-0123456789abcdefghijklmnop"


def machine_line() -> str:
    cores = os.cpu_count()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{datetime.now(UTC):%Y-%m-%d} · {platform.machine()} · {cores} cores · "
        f"{mem_gib:.0f} GiB · Python {platform.python_version()}"
    )


def proc_stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (index 11 is utime, 12 stime,
    13-14 the reaped children's, in clock ticks); OSError if the process is gone."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def ensure_database(url: str = BENCH_DB_URL) -> None:
    """Create the benchmark database if it does not exist."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(url: str = BENCH_DB_URL) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("DEBUG", "0")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def synthetic_text(rng: random.Random, n: int) -> str:
    words = (
        "market",
        "election",
        "goal",
        "film",
        "chip",
        "shares",
        "vote",
        "match",
        "album",
        "software",
        "minister",
        "league",
        "profit",
        "actor",
        "network",
        "growth",
        "coach",
    )
    return f"Item {n}: " + " ".join(rng.choice(words) for _ in range(rng.randint(20, 60)))


def copy_items(
    *, project_id: int, count: int, seed: int = 0, status: str = "open", start: int = 0
) -> None:
    """Insert `count` synthetic items with random priorities through COPY (fixture, not product
    code: the product's import path is measured by bench/import_bench.py)."""
    from django.db import connection

    rng = random.Random(seed)
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        table = "labeling_item"
        columns = (
            "project_id",
            "external_id",
            "text",
            "metadata",
            "content_hash",
            "priority",
            "status",
            "annotation_count",
            "created_at",
            "updated_at",
        )
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for n in range(start, start + count):
                text = synthetic_text(rng, n)
                copy.write_row(
                    (
                        project_id,
                        f"syn-{n}",
                        text,
                        "{}",
                        hashlib.sha256(text.encode()).hexdigest(),
                        rng.random(),
                        status,
                        0,
                        now,
                        now,
                    )
                )
        cursor.execute("ANALYZE labeling_item")
        cursor.execute("ANALYZE labeling_queueentry")  # filled by the item table's triggers


def git_rev() -> str:
    try:
        return subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True
        ).strip()
    except Exception:
        return "unknown"
