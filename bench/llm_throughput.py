"""LLM pre-label job throughput against the loopback OpenAI-compatible server.

The server runs in a separate process (so its CPU is not counted as ours) with a fixed latency
per request; the job is the real service (`llm_run`: prompt, cache lookups, thread pool,
retries, batched writes to PostgreSQL) on a fresh project of N items. Reported: items/s,
wall-clock overhead per item beyond the ideal N * latency / concurrency, and the CPU time of
this process per item (all our threads: HTTP client, JSON, validation, database writes).
A second run of the same job is served entirely from the response cache.

    python -m bench.llm_throughput [--items 1000] [--latency 0.2] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import time

from bench.common import ROOT, ensure_database, machine_line

BENCH_DB = os.environ.get(
    "WS_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flywheel_ws_bench"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()

    ensure_database(BENCH_DB)
    os.environ["DATABASE_URL"] = BENCH_DB
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from labeling.models import Item, Job
    from labeling.services.jobs import job_create
    from labeling.services.projects import project_create
    from weak_supervision.services.common import ws_settings_for
    from weak_supervision.services.llm import llm_run

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.llm_server",
            "--port",
            str(port),
            "--latency",
            str(args.latency),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        print(server.stdout.readline().strip())
        # A fresh run id: the response cache is shared across projects, so reused texts
        # would be answered from it.
        run_id = int(time.time())
        project = project_create(
            name=f"llm-throughput-{run_id}",
            labels=["business", "entertainment", "politics", "sport", "tech"],
            guidelines="Classify the news article by topic.",
        )
        texts = [
            f"Article {n} of run {run_id}: shares rose as the minister met the league coach "
            f"about a new chip "
            f"and an album release, item {n}."
            for n in range(args.items)
        ]
        Item.objects.bulk_create(
            Item(
                project=project,
                external_id=str(n),
                text=t,
                content_hash=hashlib.sha256(t.encode()).hexdigest(),
            )
            for n, t in enumerate(texts)
        )
        from django.conf import settings

        # The operator allows the loopback server (LLM_ALLOWED_BASE_URLS).
        settings.LLM_ALLOWED_BASE_URLS = [
            *settings.LLM_ALLOWED_BASE_URLS,
            f"http://127.0.0.1:{port}/v1",
        ]
        ws = ws_settings_for(project=project)
        ws.llm_enabled = True
        ws.llm_base_url = f"http://127.0.0.1:{port}/v1"
        ws.llm_model = "simulated"
        ws.llm_concurrency = args.concurrency
        ws.llm_few_shot = 0
        ws.save()
        print(machine_line())
        print(f"load average before: {os.getloadavg()}")
        ideal = args.items * args.latency / args.concurrency
        for label in ("cold (every item asked)", "warm (all from cache)"):
            # The job row the API would create, without sending a task to a broker.
            job = job_create(
                kind=Job.Kind.LLM, project=project, params={"scope": "all", "eval_sample": 0}
            )
            cpu0, wall0 = time.process_time(), time.perf_counter()
            job = llm_run(job_id=job.pk)
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            r = job.result
            print(
                f"{label}: {r['items']} items, {r['requests']} requests, {r['valid']} valid, "
                f"{r['errors']} errors in {wall:.2f} s -> {r['items'] / wall:.1f} items/s; "
                f"CPU {1000 * cpu / r['items']:.2f} ms/item"
                + (
                    f"; wall overhead vs ideal {ideal:.1f} s: "
                    f"{1000 * (wall - ideal) / r['items']:.2f} ms/item"
                    if r["requests"]
                    else ""
                )
            )
        print(f"load average after: {os.getloadavg()}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
