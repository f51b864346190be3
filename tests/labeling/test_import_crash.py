"""Jobs survive crashes: a real Celery worker is killed (SIGKILL to its whole process group) in the
middle of a large import; a new worker is started and the job is resumed the way an operator
would (`manage.py resume_jobs`). The job completes with every row once: no duplicate, none
missing.

PostgreSQL (required): the test database of this pytest run, shared with the worker through
DATABASE_URL, and Redis as the broker. SQLite: a database file of the test's own and the
filesystem broker, driven entirely through subprocesses (pytest-django's SQLite test database
lives in memory, out of a worker's reach).

Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/fw_import \\
     .venv/bin/pytest tests/labeling/test_import_crash.py
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count

from labeling.models import Item, Job
from labeling.services.imports import import_job_create
from tests.factories import ProjectFactory

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")
ROWS = 60_000
BATCH_SIZE = 200
REDIS_URL = os.environ.get("FLYWHEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
MID_IMPORT_TIMEOUT = 240
FINISH_TIMEOUT = 600


def write_rows(path: Path) -> set[str]:
    """ROWS JSON lines; every 100th row repeats the text of the row before it under a new id
    (duplicate content, skipped). Returns the ids that must end up as items."""
    expected = set()
    with path.open("w", encoding="utf-8") as out:
        previous = ""
        for n in range(ROWS):
            text = previous if n % 100 == 99 else f"Row {n}: " + "lorem ipsum dolor " * (n % 7 + 2)
            out.write(json.dumps({"id": f"row-{n}", "text": text, "n": n}) + "\n")
            if n % 100 != 99:
                expected.add(f"row-{n}")
            previous = text
    return expected


class Processes:
    """Workers and commands started by a test, all with the same environment."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.workers: list[subprocess.Popen] = []

    def start_worker(self, name: str) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("wb")
        worker = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "config",
                "worker",
                "-Q",
                self.env["QUEUE_IMPORT"],
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{name}-{uuid.uuid4().hex[:8]}@%h",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill it with all its children
        )
        self.workers.append(worker)
        return worker

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    @staticmethod
    def kill(worker: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, sig)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)

    def stop_all(self) -> None:
        for worker in self.workers:
            self.kill(worker, signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name} ---\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        FLYWHEEL_DATA_DIR=str(tmp_path / "data"),
        IMPORT_BATCH_SIZE=str(BATCH_SIZE),
        QUEUE_IMPORT=f"import-crash-{uuid.uuid4().hex[:8]}",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def wait_for(
    read: Callable[[], tuple[str, int, int | None]],
    done: Callable[[str, int, int | None], bool],
    *,
    timeout: float,
    what: str,
    processes: Processes,
) -> tuple[str, int, int | None]:
    deadline = time.monotonic() + timeout
    state = read()
    while not done(*state):
        if state[0] in {"failed", "cancelled"} or time.monotonic() > deadline:
            pytest.fail(f"Waiting for {what}; the job is {state}.\n{processes.logs()}")
        time.sleep(0.02)
        state = read()
    return state


def mid_import(status: str, done: int, total: int | None) -> bool:
    return status == "running" and total is not None and 0 < done < total


def crash_and_resume(
    *, job_id: int, processes: Processes, read: Callable[[], tuple[str, int, int | None]]
) -> int:
    """Start a worker, queue the job, SIGKILL the worker mid-import, start another one and
    resume. Returns the number of rows committed when the first worker died."""
    first = processes.start_worker("first")
    processes.manage("resume_jobs", "--job", str(job_id))
    wait_for(
        read,
        mid_import,
        timeout=MID_IMPORT_TIMEOUT,
        what="the import to be under way",
        processes=processes,
    )

    processes.kill(first)  # the whole process group, no chance to clean up
    status, rows_done, total = read()
    assert status == "running", f"the job finished before the worker was killed: {status}"
    assert 0 < rows_done < total

    processes.start_worker("second")
    out = processes.manage("resume_jobs", "--stale-seconds", "0")
    assert f"Queued import job #{job_id} again." in out
    wait_for(
        read,
        lambda status, done, total: status == "succeeded",
        timeout=FINISH_TIMEOUT,
        what="the resumed import to finish",
        processes=processes,
    )
    return rows_done


@pytest.fixture
def processes(tmp_path):
    made: list[Processes] = []

    def make(env: dict[str, str]) -> Processes:
        (tmp_path / "logs").mkdir(exist_ok=True)
        made.append(Processes(env, tmp_path / "logs"))
        return made[-1]

    yield make
    for each in made:
        each.stop_all()


def redis_or_skip():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"the crash test needs Redis as its broker at {REDIS_URL}")
    return client


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_killed_worker_import_resumes_without_duplicates_postgres(tmp_path, processes):
    if connection.vendor != "postgresql":
        pytest.skip("the crash test needs PostgreSQL: set DATABASE_URL=postgres://...")
    broker = redis_or_skip()
    broker.flushdb()

    # given a project and an import job for 60,000 rows (600 of them repeated texts)
    expected = write_rows(tmp_path / "rows.jsonl")
    project = ProjectFactory(name="Crash test")
    job = import_job_create(project=project, path=tmp_path / "rows.jsonl", enqueue=False)
    db = settings.DATABASES["default"]  # the test database, which the workers share
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    database_url = (
        f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = base_env(tmp_path, DATABASE_URL=database_url, CELERY_BROKER_URL=REDIS_URL)

    def read():
        state = Job.objects.filter(pk=job.pk).values_list(
            "status", "progress_done", "progress_total"
        )
        return state.get()

    # when its worker is killed mid-import and the job is resumed on a new worker
    try:
        rows_at_crash = crash_and_resume(job_id=job.pk, processes=processes(env), read=read)
    finally:
        broker.flushdb()

    # then the job completed with every expected row exactly once
    job.refresh_from_db()
    ids = list(Item.objects.filter(project=project).values_list("external_id", flat=True))
    assert len(ids) == len(expected) == 59_400
    assert set(ids) == expected
    assert not Item.objects.values("project", "external_id").annotate(n=Count("id")).filter(n__gt=1)
    assert job.result["created"] == len(expected)
    assert job.result["skipped_duplicate_content"] == ROWS - len(expected)
    assert job.result["skipped_existing_id"] == 0
    assert job.attempts >= 2
    assert 0 < rows_at_crash < ROWS


def test_killed_worker_import_resumes_without_duplicates_sqlite(tmp_path, processes):
    # given a SQLite database file of its own, the filesystem broker and an import job
    database = tmp_path / "crash.sqlite3"
    env = base_env(
        tmp_path, DATABASE_URL=f"sqlite:///{database}", CELERY_BROKER_URL="filesystem://"
    )
    run = processes(env)
    run.manage("migrate", "--verbosity", "0")
    expected = write_rows(tmp_path / "rows.jsonl")
    job_id = int(
        run.manage(
            "shell",
            "-c",
            "from labeling.services.projects import project_create\n"
            "from labeling.services.imports import import_job_create\n"
            "project = project_create(name='Crash test', labels=['pos', 'neg'])\n"
            f"job = import_job_create(project=project, path={str(tmp_path / 'rows.jsonl')!r},"
            " enqueue=False)\n"
            "print(job.pk)",
        ).splitlines()[-1]
    )

    def query(sql: str, *params):
        with sqlite3.connect(database, timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def read():
        return query(
            "SELECT status, progress_done, progress_total FROM labeling_job WHERE id = ?", job_id
        )[0]

    # when its worker is killed mid-import and the job is resumed on a new worker
    rows_at_crash = crash_and_resume(job_id=job_id, processes=run, read=read)

    # then the job completed with every expected row exactly once
    ids = [row[0] for row in query("SELECT external_id FROM labeling_item")]
    assert len(ids) == len(expected)
    assert set(ids) == expected
    ((result, attempts),) = query("SELECT result, attempts FROM labeling_job WHERE id = ?", job_id)
    result = json.loads(result)
    assert result["created"] == len(expected)
    assert result["skipped_duplicate_content"] == ROWS - len(expected)
    assert attempts >= 2
    assert 0 < rows_at_crash < ROWS
