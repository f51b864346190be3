"""CPU per pair of the annotation loop without HTTP: the WSGI app called in-process.

The queue benchmark (bench/queue_load.py) measures the whole machine: gunicorn, PostgreSQL and
its own load generator share two cores, and this machine's speed drifts by up to 2x within a
session. This takes the server out: one process calls the production WSGI application (the
fast path in front of Django) for next + submit, `--pairs` times over the queue benchmark's
database and tokens, and prints the Python CPU, the PostgreSQL backend's CPU and the WAL
written, per pair. Compare two commits by alternating runs on the same database.

    .venv/bin/python -m bench.queue_load --rates 100 --duration 5  # set up the database once
    .venv/bin/python -m bench.loop_cpu [--pairs 3000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

from bench.common import BENCH_DB_URL, BENCH_SECRET, machine_line, proc_stat_fields

LABEL = "sport"


def _environ(path: str, body: dict, token: str) -> dict:
    raw = json.dumps(body).encode()
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(raw)),
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Token {token}",
    }


def _backend_cpu_seconds(pid: int) -> float:
    fields = proc_stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3000)
    args = parser.parse_args()

    # The production settings, as gunicorn runs them in the queue benchmark.
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=BENCH_SECRET,
        DATABASE_URL=BENCH_DB_URL,
        DEBUG="0",
        ALLOWED_HOSTS="localhost",
        DB_CONN_MAX_AGE="86400",  # one backend for the whole run: its CPU is read from /proc
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.wsgi import get_wsgi_application
    from django.db import connection

    from accounts.models import ApiToken
    from accounts.services import api_token_create
    from labeling.api.fastpath import with_annotation_fast_path
    from labeling.models import Project

    project = Project.objects.filter(name="bench-queue").first()
    if project is None:
        raise SystemExit("no benchmark project: run bench.queue_load once first")
    # Secrets are shown once (only hashes are stored): new tokens for the benchmark's accounts.
    accounts = list(get_user_model().objects.filter(username__startswith="bench-annotator-"))
    ApiToken.objects.filter(user__in=accounts, name="bench").delete()
    tokens = [api_token_create(user=u, name="bench")[1] for u in accounts]
    app = with_annotation_fast_path(get_wsgi_application())
    status: dict[str, str] = {}

    def start_response(line, headers, exc_info=None):
        status["line"] = line

    def call(path: str, body: dict, token: str) -> tuple[int, bytes]:
        result = app(_environ(path, body, token), start_response)
        content = b"".join(result)
        if hasattr(result, "close"):
            result.close()
        return int(status["line"][:3]), content

    next_path = f"/api/projects/{project.pk}/next/"

    def pair(n: int) -> None:
        token = tokens[n % len(tokens)]
        code, content = call(next_path, {"exclude": []}, token)
        if code != 200:
            raise SystemExit(f"next answered {code}: {content[:200]!r}")
        item_id = json.loads(content)["item"]["id"]
        submit = f"/api/projects/{project.pk}/items/{item_id}/submit/"
        code, content = call(submit, {"labels": [LABEL], "time_spent_ms": 1000}, token)
        if code != 201:
            raise SystemExit(f"submit answered {code}: {content[:200]!r}")

    for n in range(200):  # warm up: prepared statements, cached credentials
        pair(n)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_current_wal_lsn()")
        pid, lsn = cursor.fetchone()
    backend, python, wall = _backend_cpu_seconds(pid), time.process_time(), time.perf_counter()
    for n in range(args.pairs):
        pair(n)
    backend = _backend_cpu_seconds(pid) - backend
    python, wall = time.process_time() - python, time.perf_counter() - wall
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [lsn])
        wal = float(cursor.fetchone()[0])
    per = 1000 / args.pairs
    print(f"annotation loop CPU · {machine_line()} · {args.pairs:,} pairs in one process")
    print(
        f"  per pair: Python {python * per:.3f} ms, PostgreSQL {backend * per:.3f} ms, "
        f"wall {wall * per:.3f} ms, WAL {wal / args.pairs / 1000:.1f} KB"
    )


if __name__ == "__main__":
    main()
