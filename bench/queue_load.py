"""Queue benchmark: annotators doing next-item + submit over HTTP against gunicorn.

1,000,000 items in PostgreSQL, web under gunicorn (production settings), simulated annotators
with token auth on keep-alive connections, open-loop arrivals. Prints p50/p95/p99 of the pair
(next + submit, measured from its scheduled start) at 100 pairs/s, then steps the offered load
up to find the highest rate at which p99 stays under 200 ms.

    .venv/bin/python -m bench.queue_load [--items 1000000] [--workers N] [--threads N]
        [--rates 300,350,400] [--soak 300 --soak-rate 300] [--postgres-settings compose]

The environment passes through to gunicorn: API_FAST_PATH=0 measures the same loop through
Django's middleware and DRF (labeling/api/fastpath.py), WEB_CONCURRENCY another process count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from bench.common import (
    BENCH_DB_URL,
    BENCH_SECRET,
    ROOT,
    copy_items,
    django_setup,
    ensure_database,
    machine_line,
    proc_stat_fields,
)
from bench.httpload import percentile, run_pairs, windows

PROJECT = "bench-queue"
LABELS = ["business", "entertainment", "politics", "sport", "tech"]


def prepare(items: int, users: int) -> tuple[int, list[str]]:
    from django.contrib.auth import get_user_model

    from accounts.models import ApiToken
    from accounts.services import api_token_create
    from labeling.models import Item, Membership, Project
    from labeling.services.projects import membership_set, project_create

    project = Project.objects.filter(name=PROJECT).first()
    if project is None:
        project = project_create(name=PROJECT, labels=LABELS, lease_seconds=600)
    have = Item.objects.filter(project=project, status="open").count()
    if have < items:
        # Top up what earlier runs consumed (deleting a million rows through the ORM is slow).
        start = Item.objects.filter(project=project).count()
        t0 = time.perf_counter()
        copy_items(project_id=project.pk, count=items - have, start=start, seed=start)
        print(f"  set-up: {items - have:,} items copied in {time.perf_counter() - t0:.1f} s")
    User = get_user_model()
    accounts = []
    for n in range(users):
        user, _ = User.objects.get_or_create(username=f"bench-annotator-{n}")
        accounts.append(user)
    membership_set(project=project, users=accounts, role=Membership.Role.ANNOTATOR)
    # Secrets are shown once (only hashes are stored): each run makes its accounts new tokens.
    ApiToken.objects.filter(user__in=accounts, name="bench").delete()
    tokens = [api_token_create(user=u, name="bench")[1] for u in accounts]
    _vacuum()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")  # write out the set-up's items before any measurement
    return project.pk, tokens


def _vacuum() -> None:
    """Earlier runs leave dead rows behind (every submit updates an item and an assignment).
    Where autovacuum is off (as on the machine these numbers were taken on), the planner's
    probes of index ends walk those dead entries and planning alone takes 10+ ms per query,
    so vacuum explicitly between runs, as autovacuum would in production."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "labeling_assignment",
            "labeling_item",
            "labeling_queueentry",
            "labeling_annotation",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
    # No CHECKPOINT here (there was one until 2026-11-29 night): after a checkpoint every page's
    # first change also writes the whole page to the WAL, and a step measured right after one
    # saw only that worst stretch of PostgreSQL's checkpoint cycle (250 pairs/s: p99 434 ms
    # right after a forced checkpoint, 53-56 ms without). --soak measures across real ones.


class AutovacuumStandIn:
    """What autovacuum would do during a long run, on a server where it is off (as on the
    machine these numbers were taken on): every 5 s, vacuum the queue's tables that hold more
    dead rows than migration labeling/0005 lets them (20,000), throttled as autovacuum is
    (`vacuum_cost_delay` 2 ms, `vacuum_cost_limit` 200: PostgreSQL's autovacuum defaults) and,
    as autovacuum does, in one process (until 2026-11-30 it ran a plain VACUUM, which scans
    the indexes with two parallel workers: on 2 cores, both of them).
    Does nothing where autovacuum is on."""

    TABLES = ("labeling_item", "labeling_assignment", "labeling_queueentry")
    THRESHOLD = 20_000

    def __init__(self, url: str) -> None:
        self.url = url
        self.vacuums: list[tuple[float, str, float]] = []  # (wall-clock start, table, seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            if conn.execute("SHOW autovacuum").fetchone()[0] == "on":
                return
            conn.execute("SET vacuum_cost_delay = '2ms'")
            conn.execute("SET vacuum_cost_limit = 200")
            while not self._stop.wait(5):
                for (table,) in conn.execute(
                    "SELECT relname FROM pg_stat_user_tables "
                    "WHERE relname = ANY(%s) AND n_dead_tup > %s",
                    [list(self.TABLES), self.THRESHOLD],
                ).fetchall():
                    started = time.time()
                    # Autovacuum never uses parallel workers; a manual VACUUM does by
                    # default (one per index, up to max_parallel_maintenance_workers).
                    conn.execute(f"VACUUM (PARALLEL 0) {table}")
                    self.vacuums.append((started, table, time.time() - started))


def compose_postgres_settings() -> dict[str, str]:
    """The ``-c name=value`` settings docker/compose.yml starts its PostgreSQL service with."""
    text = (ROOT / "docker" / "compose.yml").read_text()
    service = text[text.index("\n  postgres:\n", text.index("\nservices:")) :]
    service = re.split(r"\n  [a-z]", service[1:], maxsplit=1)[0]  # up to the next service
    return dict(re.findall(r"-c ([a-z_]+)=(\S+)", service))


class ServerSettings:
    """Run with the production stack's PostgreSQL settings (`compose_postgres_settings`) on
    this machine's server: ALTER SYSTEM and a reload, reset on the way out. Settings that need
    a restart are left alone and named."""

    def __init__(self, url: str, settings: dict[str, str]) -> None:
        self.url, self.settings = url, settings
        self.applied: list[str] = []
        self.skipped: list[str] = []

    def __enter__(self):
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for name, value in self.settings.items():
                (context,) = conn.execute(
                    "SELECT context FROM pg_settings WHERE name = %s", [name]
                ).fetchone()
                if context == "postmaster":
                    self.skipped.append(f"{name}={value}")
                    continue
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                self.applied.append(f"{name}={value}")
            conn.execute("SELECT pg_reload_conf()")
        return self

    def __exit__(self, *exc) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in self.settings:
                conn.execute(f"ALTER SYSTEM RESET {name}")
            conn.execute("SELECT pg_reload_conf()")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int, workers: int | None, threads: int | None) -> subprocess.Popen:
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=BENCH_SECRET,
        DATABASE_URL=BENCH_DB_URL,
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
    )
    # The production settings file (config/gunicorn.conf.py); --workers/--threads override it.
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi",
        "-c",
        "config/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except Exception:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("gunicorn did not come up")


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time (user + system) used so far by the web server's processes, PostgreSQL's and this
    one (the load generator), from /proc. A process's reaped children count with it, so a
    database connection that closes (DB_CONN_MAX_AGE) moves its time to the postmaster instead
    of losing it."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"web": 0.0, "postgres": 0.0, "loadgen": 0.0}
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            fields = proc_stat_fields(pid)
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue  # exited meanwhile
        if pid == os.getpid():
            group = "loadgen"
        elif int(fields[2]) == server_pid:  # gunicorn runs in a session (and group) of its own
            group = "web"
        elif comm.startswith("postgres"):
            group = "postgres"
        else:
            continue
        used[group] += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    return used


def report(label: str, stats, achieved: float, cpu: dict[str, float] | None = None) -> float:
    """Print one step; `cpu` is the step's CPU seconds by process group (`cpu_seconds`)."""
    p50, p95, p99 = (percentile(stats.pair_ms, q) for q in (50, 95, 99))
    pairs = len(stats.pair_ms)
    per_pair = ""
    if cpu and pairs:
        per_pair = " | cpu/pair " + " ".join(
            f"{name} {1000 * seconds / pairs:.2f}" for name, seconds in cpu.items()
        )
    print(
        f"  {label:>14}: achieved {achieved:6.1f} pairs/s | pair p50 {p50:6.1f} ms "
        f"p95 {p95:6.1f} ms p99 {p99:6.1f} ms | next p99 {percentile(stats.next_ms, 99):6.1f} "
        f"submit p99 {percentile(stats.submit_ms, 99):6.1f} | errors {stats.errors or 0} "
        f"empty {stats.empty}{per_pair}"
    )
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="default: gunicorn.conf.py")
    parser.add_argument("--threads", type=int, default=None, help="default: gunicorn.conf.py")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--step-duration", type=float, default=20.0)
    parser.add_argument("--rates", default="100,200,300,400,500,600,800")
    parser.add_argument(
        "--soak",
        type=float,
        default=0.0,
        help="then one long run of this many seconds at --soak-rate (> checkpoint_timeout, "
        "so that PostgreSQL's own checkpoints fall inside it)",
    )
    parser.add_argument("--soak-rate", type=float, default=300.0)
    parser.add_argument(
        "--postgres-settings",
        choices=["server", "compose"],
        default="server",
        help="server: the server's own settings; compose: also those docker/compose.yml starts "
        "PostgreSQL with (applied with ALTER SYSTEM for the run and reset afterwards)",
    )
    args = parser.parse_args()
    ensure_database()
    if args.postgres_settings == "compose":
        with ServerSettings(BENCH_DB_URL, compose_postgres_settings()) as applied:
            print(f"  PostgreSQL settings from docker/compose.yml: {', '.join(applied.applied)}")
            if applied.skipped:
                print(f"  not applied (need a restart): {', '.join(applied.skipped)}")
            run(args)
    else:
        run(args)


def run(args: argparse.Namespace) -> None:

    ensure_database()
    django_setup()
    print(f"queue benchmark · {machine_line()}")
    project_id, tokens = prepare(args.items, args.users)
    port = free_port()
    server = start_gunicorn(port, args.workers, args.threads)

    def load(rate: float, duration: float):
        """Run one step: (stats, achieved rate, CPU seconds used by process group)."""
        before = cpu_seconds(server.pid)
        stats, achieved = asyncio.run(
            run_pairs(
                host="127.0.0.1",
                port=port,
                project_id=project_id,
                tokens=tokens,
                labels=LABELS,
                rate=rate,
                duration=duration,
            )
        )
        after = cpu_seconds(server.pid)
        return stats, achieved, {group: after[group] - before[group] for group in after}

    try:
        workers = (
            args.workers
            or os.environ.get("WEB_CONCURRENCY")
            or min(2 * (os.cpu_count() or 1) + 1, 24)
        )  # config/gunicorn.conf.py's default
        print(
            f"  gunicorn (config/gunicorn.conf.py) {workers} workers x "
            f"{args.threads or os.environ.get('WEB_THREADS', 1)} threads; "
            f"fast path {os.environ.get('API_FAST_PATH', '1')}; {args.users} annotators; "
            f"{args.items:,} items; load average {os.getloadavg()[0]:.2f}"
        )
        load(50, 10)  # warm-up
        stats, achieved, cpu = load(100, args.duration)
        report("100 pairs/s", stats, achieved, cpu)
        best = None
        for rate in (float(r) for r in args.rates.split(",")):
            _vacuum()  # what autovacuum does between bursts in production (off on this machine)
            stats, achieved, cpu = load(rate, args.step_duration)
            p99 = report(f"{rate:.0f} offered", stats, achieved, cpu)
            if p99 < 200 and not stats.errors and achieved >= 0.95 * rate:
                best = achieved
            else:
                break
        print(f"  highest throughput with p99 < 200 ms: {best or 0:.0f} pairs/s")
        if args.soak:
            _vacuum()
            began = time.time()
            with AutovacuumStandIn(BENCH_DB_URL) as autovacuum:
                stats, achieved, cpu = load(args.soak_rate, args.soak)
            report(f"{args.soak_rate:.0f} for {args.soak:.0f} s", stats, achieved, cpu)
            # Wall-clock times (UTC), to line up with PostgreSQL's log of checkpoints.
            for start, pairs, p99, worst in windows(stats, 10):
                at = time.strftime("%H:%M:%S", time.gmtime(began + start))
                print(
                    f"    {at} +{start:3.0f} s: {pairs:5d} pairs, p99 {p99:.1f}, max {worst:.1f} ms"
                )
            for started, table, seconds in autovacuum.vacuums:
                at = time.strftime("%H:%M:%S", time.gmtime(started))
                print(f"    autovacuum stand-in: {at} VACUUM {table} took {seconds:.1f} s")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
