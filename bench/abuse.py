"""Replay the attacks of the hardening review (issue 16) against a running server on loopback.

    .venv/bin/python -m bench.abuse [--database-url postgres://...]

Starts two gunicorn servers on the production settings over a throw-away database (SQLite in a
temporary folder unless --database-url names a PostgreSQL database, which is dropped and made
again): A, a normal deployment whose broker nobody consumes (jobs are run inline by this
script), and B, one whose broker is down and whose trusted proxy is some other host. It then
plays each attack with the account the review used (annotator, reviewer, manager, a staff user
who is in no project, anonymous) and prints one line per attack: the status it got, what was
expected, whether anything was written and whether anything leaked. The last line counts
those that were not refused or that wrote or leaked something: 0 is the goal.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, machine_line

SECRET_BODY = "sk-abuse-secret-0f9e"
LLM_ALLOWED = "http://127.0.0.1:9/v1"


# ---- HTTP -------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    seconds: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Client:
    """urllib with a cookie jar, a token, and Django's CSRF dance for form posts."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Answer:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        csrf = self.cookie("csrftoken")
        if csrf and method not in ("GET", "HEAD"):
            request.add_header("X-CSRFToken", csrf)
            request.add_header("Referer", self.base + "/")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        started = time.perf_counter()
        try:
            with self.opener.open(request, timeout=timeout) as response:
                data, status, head = response.read(), response.status, dict(response.headers)
        except urllib.error.HTTPError as exc:
            data, status, head = exc.read(), exc.code, dict(exc.headers)
        except urllib.error.URLError as exc:  # the server answered and closed before the body
            data, status, head = str(exc.reason).encode(), 0, {}
        return Answer(status, data, head, time.perf_counter() - started)

    def get(self, path: str, **kw) -> Answer:
        return self.request("GET", path, **kw)

    def send_json(self, method: str, path: str, payload, **kw) -> Answer:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request(method, path, body=raw, content_type="application/json", **kw)

    def post_form(self, path: str, fields: dict[str, str], *, csrf_from: str | None = None):
        if csrf_from:
            page = self.get(csrf_from)
            match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            if match:
                fields = {**fields, "csrfmiddlewaretoken": match.group(1)}
        body = urllib.parse.urlencode(fields).encode()
        return self.request(
            "POST", path, body=body, content_type="application/x-www-form-urlencoded"
        )

    def upload(self, path: str, name: str, content: bytes, fields: dict[str, str] | None = None):
        boundary = secrets.token_hex(12)
        parts = []
        for key, value in (fields or {}).items():
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
            parts.append(f"{head}{value}\r\n".encode())
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/csv\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        return self.request(
            "POST",
            path,
            body=b"".join(parts),
            content_type=f"multipart/form-data; boundary={boundary}",
        )

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def login(self, username: str, password: str) -> Answer:
        return self.post_form(
            "/accounts/login/",
            {"username": username, "password": password},
            csrf_from="/accounts/login/",
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# ---- servers ----------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "abuse-bench-" + "k" * 40,
        "DEBUG": "0",
        "DATABASE_URL": database_url,
        "FLYWHEEL_DATA_DIR": str(data_dir),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "CELERY_BROKER_URL": "filesystem://localhost/",
        "IMPORT_MAX_UPLOAD_BYTES": str(16 << 20),
        "WS_PYTHON_LF_MODULES": "bench.abuse_lfs",
        "WS_LF_CALL_TIME_LIMIT": "2",
        "LLM_ALLOWED_BASE_URLS": LLM_ALLOWED,
        "LOG_LEVEL": "ERROR",
        "API_FAST_PATH": "1",
        **extra,
    }


def _start(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi",
        "-c",
        "config/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "4",
        "--log-level",
        "error",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return process, base
        except Exception:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("gunicorn did not come up")


def _worker_rss_mb(server: subprocess.Popen) -> float:
    """Resident memory of the server's (one) worker process."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    total = 0
    for pid in children or [str(server.pid)]:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


# ---- the attacks ------------------------------------------------------------------------------


@dataclass
class Line:
    attack: str
    expected: str
    got: str
    refused: bool
    written: bool
    leaked: bool

    def show(self) -> str:
        verdict = "ok" if self.refused and not self.written and not self.leaked else "FAIL"
        written, leaked = ("yes" if flag else "no" for flag in (self.written, self.leaked))
        return (
            f"{verdict:4} | {self.attack:<62} | want {self.expected:<10} | got {self.got:<22} | "
            f"written {written:3} | leaked {leaked}"
        )


class Abuse:
    def __init__(self, a: str, b: str, server_a: subprocess.Popen) -> None:
        self.a, self.b, self.server_a = a, b, server_a
        self.lines: list[Line] = []

    def record(self, attack, expected, got, *, refused, written=False, leaked=False) -> None:
        line = Line(attack, expected, str(got), bool(refused), bool(written), bool(leaked))
        self.lines.append(line)
        print(line.show(), flush=True)


def _fixtures() -> dict:
    """Users, tokens and two projects, through the services (the bench process shares the DB)."""
    from django.contrib.auth import get_user_model

    from accounts.services import api_token_create
    from labeling.models import Item, Membership, Project
    from labeling.services.annotations import annotation_submit
    from labeling.services.queue import queue_next_item

    User = get_user_model()
    Role = Membership.Role
    password = "abuse-Password-1"
    users = {}
    for name in ("manager", "reviewer", "annotator", "other", "staff", "outsider"):
        users[name] = User.objects.create_user(
            username=name, password=password, is_staff=name == "staff"
        )
    project = Project.objects.create(name="Attacked", annotations_per_item=1)
    other_project = Project.objects.create(name="Other team")
    for value in ("spam", "ham"):
        project.labels.create(value=value)
        other_project.labels.create(value=value)
    for name, role in (
        ("manager", Role.MANAGER),
        ("reviewer", Role.REVIEWER),
        ("annotator", Role.ANNOTATOR),
        ("other", Role.ANNOTATOR),
    ):
        Membership.objects.create(project=project, user=users[name], role=role)
    Membership.objects.create(project=other_project, user=users["outsider"], role=Role.MANAGER)
    import hashlib

    def item(text, **kw):
        return Item.objects.create(
            project=project,
            text=text,
            external_id=f"e{Item.objects.count()}",
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
            **kw,
        )

    gold = item("claim your prize now", is_gold=True, gold_labels=["spam"])
    formula = item('=HYPERLINK("http://evil.example","click")')
    for i in range(20):
        item(f"ordinary message number {i}")
    # The other annotator answers one item: its label must never reach the first.
    answered = queue_next_item(project=project, user=users["other"]).item
    annotation_submit(project=project, item_id=answered.pk, user=users["other"], labels=["ham"])
    tokens = {name: api_token_create(user=users[name])[1] for name in users}
    expired_row, expired = api_token_create(user=users["annotator"])
    type(expired_row).objects.filter(pk=expired_row.pk).update(expires_at="2000-01-01T00:00:00Z")
    revoked_row, revoked = api_token_create(user=users["annotator"])
    from accounts.services import api_token_revoke

    api_token_revoke(token=revoked_row)
    return {
        "project": project,
        "other_project": other_project,
        "gold": gold,
        "formula": formula,
        "answered": answered,
        "tokens": tokens,
        "expired": expired,
        "revoked": revoked,
        "password": password,
    }


def _counts() -> dict[str, int]:
    from labeling.models import Annotation, Item, Job
    from weak_supervision.models import LabelingFunction

    return {
        "annotations": Annotation.objects.count(),
        "items": Item.objects.count(),
        "jobs": Job.objects.count(),
        "lfs": LabelingFunction.objects.count(),
    }


def run(abuse: Abuse, f: dict, data_dir: Path) -> None:
    from labeling.models import Job
    from weak_supervision.models import WeakSupervisionSettings

    project, gold = f["project"], f["gold"]
    pid = project.pk
    tokens = f["tokens"]
    annotator = Client(abuse.a, tokens["annotator"])
    reviewer = Client(abuse.a, tokens["reviewer"])
    manager = Client(abuse.a, tokens["manager"])
    staff = Client(abuse.a, tokens["staff"])
    outsider = Client(abuse.a, tokens["outsider"])
    anonymous = Client(abuse.a)
    other_label = "ham"

    def leaks(answer: Answer, *needles: str) -> bool:
        return any(n and n in answer.text for n in needles)

    # 1. LLM endpoints are operator configuration
    before = _counts()
    r = manager.send_json(
        "PATCH",
        f"/api/projects/{pid}/prelabel-settings/",
        {"llm_base_url": "http://127.0.0.1:5432/v1"},
    )
    row = WeakSupervisionSettings.objects.filter(project=project).first()
    abuse.record(
        "R1 manager aims the LLM at the PostgreSQL port",
        "400 field",
        f"{r.status} {'llm_base_url' in r.text}",
        refused=r.status == 400 and "llm_base_url" in r.text,
        written=row is not None and row.llm_base_url.startswith("http://127.0.0.1:5432"),
    )
    r = manager.send_json(
        "PATCH",
        f"/api/projects/{pid}/prelabel-settings/",
        {"llm_base_url": LLM_ALLOWED, "llm_api_key": SECRET_BODY},
    )
    reads = [
        manager.get(f"/api/projects/{pid}/prelabel-settings/"),
        manager.get(f"/api/projects/{pid}/prelabels/"),
        manager.get(f"/projects/{pid}/prelabels/"),
    ]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM weak_supervision_weaksupervisionsettings "
            "WHERE llm_api_key_sealed LIKE %s",
            [f"%{SECRET_BODY}%"],
        )
        plaintext = cursor.fetchone()[0]
    abuse.record(
        "R1 a stored LLM key read back by API, page or database",
        "never",
        f"{r.status}; {[x.status for x in reads]}",
        refused=r.status == 200,
        leaked=any(leaks(x, SECRET_BODY) for x in reads) or plaintext > 0,
    )

    # 2. Honeypots and blind labeling
    gold_id, answered_id = gold.pk, f["answered"].pk
    r = annotator.get(f"/api/projects/{pid}/items/{answered_id}/similar/")
    abuse.record(
        "R2 annotator reads neighbours' labels via similar/",
        "403/404",
        r.status,
        refused=r.status in (403, 404),
        leaked=leaks(r, f'"{other_label}"', "final_labels"),
    )
    r = annotator.get(f"/api/projects/{pid}/items/{gold_id}/")
    abuse.record(
        "R2 annotator reads a gold item by id",
        "403/404",
        r.status,
        refused=r.status in (403, 404),
        leaked=leaks(r, "gold", '"spam"'),
    )
    r = annotator.get(f"/api/projects/{pid}/items/?page_size=100")
    abuse.record(
        "R2 annotator lists items (annotation_count, final labels)",
        "403",
        r.status,
        refused=r.status == 403,
        leaked=leaks(r, 'annotation_count": 1', "is_gold"),
    )
    seen = []
    for _ in range(3):
        r = annotator.send_json("POST", f"/api/projects/{pid}/next/", {})
        seen.append(r)
    abuse.record(
        "R2 annotator's next/ payloads: others' answers or gold status",
        "none",
        [x.status for x in seen],
        refused=all(x.status in (200, 204) for x in seen),
        leaked=any(leaks(x, "is_gold", "gold_labels", 'final_labels": [') for x in seen),
    )
    before = _counts()
    r = annotator.send_json(
        "POST", f"/api/projects/{pid}/items/{gold_id}/submit/", {"labels": ["spam"]}
    )
    abuse.record(
        "R2 annotator submits to a gold item never served",
        "4xx",
        r.status,
        refused=400 <= r.status < 500,
        written=_counts()["annotations"] != before["annotations"],
    )
    job = Job.objects.create(
        project=project,
        kind=Job.Kind.IMPORT,
        status=Job.Status.FAILED,
        params={"path": "/srv/secret/import.csv"},
        error="validation report quoting an item",
        result={"errors": [{"row": 2, "message": "quoted item text"}]},
    )
    r = annotator.get(f"/api/jobs/{job.pk}/")
    abuse.record(
        "R2 annotator reads a manager's job",
        "no details",
        r.status,
        refused=r.status in (200, 403, 404),
        leaked=leaks(r, "quoted item text", "/srv/secret"),
    )
    r = reviewer.get(f"/api/jobs/{job.pk}/")
    abuse.record(
        "R9 reviewer reads a manager's job details",
        "no details",
        r.status,
        refused=r.status in (200, 403, 404),
        leaked=leaks(r, "quoted item text", "/srv/secret", "validation report"),
    )

    # 3. Accounts and tokens (lockouts last: they lock the address)
    r = staff.get(f"/api/projects/{pid}/")
    abuse.record(
        "R3 is_staff without membership opens a project",
        "404",
        r.status,
        refused=r.status == 404,
        leaked=leaks(r, "Attacked"),
    )
    r = outsider.get(f"/api/projects/{pid}/items/")
    abuse.record(
        "R3 another project's manager reads this one",
        "404",
        r.status,
        refused=r.status == 404,
        leaked=leaks(r, "ordinary message"),
    )
    r = Client(abuse.a, f["expired"]).get(f"/api/projects/{pid}/")
    abuse.record("R3 an expired token", "401", r.status, refused=r.status == 401)
    r = Client(abuse.a, f["revoked"]).get(f"/api/projects/{pid}/")
    abuse.record("R3 a revoked token", "401", r.status, refused=r.status == 401)
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        found = 0
        for table in tables:
            if "token" not in table:
                continue
            columns = [
                c.name for c in connection.introspection.get_table_description(cursor, table)
            ]
            for column in columns:
                cursor.execute(
                    f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) = %s',
                    [tokens["annotator"]],
                )
                found += cursor.fetchone()[0]
    abuse.record(
        "R3 a token secret stored in the database",
        "hash only",
        f"{found} rows",
        refused=True,
        leaked=found > 0,
    )
    session = Client(abuse.a)
    session.login("manager", f["password"])
    r = session.request(
        "PATCH",
        f"/api/projects/{pid}/",
        body=b'{"k": 3}',
        content_type="application/json",
        headers={"X-CSRFToken": ""},
    )
    project.refresh_from_db()
    abuse.record(
        "R9 a session PATCH without the CSRF token",
        "403",
        r.status,
        refused=r.status == 403,
        written=project.annotations_per_item != 1,
    )

    # 4. Exports cannot attack spreadsheets
    r = manager.get(f"/api/projects/{pid}/export/?format=csv")
    cell = next((line for line in r.text.splitlines() if "HYPERLINK" in line), "")
    abuse.record(
        "R4 a formula cell in the CSV export",
        "escaped",
        "'= first" if "'=HYPERLINK" in cell else cell[:20],
        refused="'=HYPERLINK" in cell,
        leaked=bool(re.search(r'(^|,)"?=HYPERLINK', cell)),
    )

    # 5. Labeling functions cannot exhaust a host
    before = _counts()
    for name, pattern in (
        ("nested quantifier (a+)+$", "(a+)+$"),
        ("expansion (x{1000}){1000} (15 chars)", "(x{1000}){1000}"),
        ("expansion ((x{1000}){1000}){3}", "((x{1000}){1000}){3}"),
    ):
        rss = _worker_rss_mb(abuse.server_a)
        r = manager.send_json(
            "POST",
            f"/api/projects/{pid}/labeling-functions/",
            {"name": name, "kind": "regex", "config": {"pattern": pattern, "label": "spam"}},
        )
        grown = _worker_rss_mb(abuse.server_a) - rss
        abuse.record(
            f"R5 regex {name}",
            "400 pattern",
            f"{r.status} +{grown:.0f} MB RSS",
            refused=r.status == 400 and "pattern" in r.text and grown < 50,
            written=_counts()["lfs"] != before["lfs"],
        )
    r = manager.send_json(
        "POST",
        f"/api/projects/{pid}/labeling-functions/try/",
        {"kind": "python", "config": {"function": "abuse_loops_forever"}},
        timeout=120,
    )
    abuse.record(
        "R5 'try' a Python function that loops forever",
        "bounded",
        f"{r.status} in {r.seconds:.1f} s",
        refused=r.seconds < 30 and r.status < 500,
    )
    r = manager.send_json(
        "POST",
        f"/api/projects/{pid}/labeling-functions/try/",
        {"kind": "python", "config": {"function": "abuse_raises"}},
    )
    abuse.record(
        "R5 'try' a Python function that raises",
        "4xx/report",
        r.status,
        refused=r.status < 500,
        leaked=leaks(r, "/srv/app/settings.py", "Traceback"),
    )

    # 8. Every bad input gets a 4xx
    huge = 2**64 + 7
    r = annotator.get(f"/api/projects/{huge}/")
    abuse.record("R8 a 65-bit id in a URL", "404", r.status, refused=r.status == 404)
    r = annotator.send_json(
        "POST", f"/api/projects/{pid}/items/{gold_id}/submit/", {"labels": ["spam"],
                                                                  "suggestion_id": huge}
    )  # fmt: skip
    abuse.record("R8 a 65-bit id in a body", "400", r.status, refused=r.status == 400)
    deep = b'{"labels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = annotator.send_json("POST", f"/api/projects/{pid}/next/", deep)
    abuse.record(
        "R8 JSON nested 10^5 deep",
        "400",
        f"{r.status} in {r.seconds:.1f} s",
        refused=r.status == 400,
    )
    before = _counts()
    imports = data_dir / "media" / "imports"
    kept_before = len(list(imports.glob("*"))) if imports.exists() else 0
    r = manager.upload(f"/api/projects/{pid}/imports/", "big.csv", b"text\n" + b"x" * (17 << 20))
    kept_after = len(list(imports.glob("*"))) if imports.exists() else 0
    abuse.record(
        "R8 an upload over IMPORT_MAX_UPLOAD_BYTES",
        "413",
        r.status or "closed before the body",
        refused=r.status in (413, 0),
        written=_counts()["jobs"] != before["jobs"] or kept_after != kept_before,
    )
    from labeling.services.imports import import_run

    for name, content, expect in (
        ("10^6 columns", b",".join(b"c%d" % i for i in range(1_000_000)) + b"\n", "header"),
        ("an unclosed quote", b'text\n"opened here\nnext\nrow\n', "quote"),
        ("a NUL character", b"text\nbad\x00text\n", "NUL"),
    ):
        items = _counts()["items"]
        r = manager.upload(f"/api/projects/{pid}/imports/", "f.csv", content)
        job_id = (r.json() or {}).get("id")
        started = time.perf_counter()
        job = import_run(job_id=job_id) if job_id else None
        seconds = time.perf_counter() - started
        error = (job.error + json.dumps(job.result)) if job else r.text
        abuse.record(
            f"R8 an import with {name}",
            "job fails",
            f"{r.status}, {job.status if job else '-'} in {seconds:.1f} s",
            refused=job is not None and job.status == "failed" and expect in error,
            written=_counts()["items"] != items,
        )
    r = manager.send_json(
        "PATCH", f"/api/projects/{pid}/prelabel-settings/", {"llm_concurrency": 1_000_000}
    )
    abuse.record(
        "R8 llm_concurrency 10^6",
        "400 field",
        r.status,
        refused=r.status == 400 and "llm_concurrency" in r.text,
    )

    # 9. Transport and disclosure
    r = session.get(f"/projects/{pid}/", headers={"X-Forwarded-Proto": "https"})
    csp = r.headers.get("Content-Security-Policy", "")
    abuse.record(
        "R9 a page without CSP (or with inline script allowed)",
        "CSP",
        "CSP " + ("self" if "script-src 'self'" in csp else "missing"),
        refused="script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0],
    )
    hsts = r.headers.get("Strict-Transport-Security", "")
    abuse.record(
        "R9 HTTPS (from a trusted proxy) without HSTS",
        "HSTS",
        hsts[:22] or "none",
        refused="max-age=" in hsts,
    )
    untrusted = Client(abuse.b, tokens["manager"])
    r = untrusted.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    abuse.record(
        "R9 X-Forwarded-Proto from a peer that is no trusted proxy",
        "ignored",
        "ignored" if "Strict-Transport-Security" not in r.headers else "believed",
        refused="Strict-Transport-Security" not in r.headers,
    )

    # 6. A broker outage (server B)
    before = _counts()
    r = untrusted.upload(f"/api/projects/{pid}/imports/", "items.csv", b"text\nhello\n")
    job = Job.objects.order_by("-pk").first()
    kept = bool(job and job.params.get("path") and Path(job.params["path"]).is_file())
    abuse.record(
        "R6 an import while the broker is down",
        "503",
        f"{r.status}, job {job.status if job else '-'}, file {'kept' if kept else 'gone'}",
        refused=r.status == 503 and job is not None and job.status == "failed" and kept,
    )

    # 3. Login throttling, last: it locks this address out
    attempts = []
    wrong = Client(abuse.a)
    for _ in range(12):
        attempts.append(wrong.login("annotator", "wrong-password").status)
    right = Client(abuse.a).login("annotator", f["password"])
    abuse.record(
        "R3 12 wrong passwords on the login page, then the right one",
        "429",
        f"{attempts[-1]}, then {right.status}",
        refused=attempts[-1] == 429 and right.status == 429,
    )
    admin = Client(abuse.a)
    admin_statuses = [
        admin.post_form(
            "/admin/login/",
            {"username": "staff", "password": "nope", "next": "/admin/"},
            csrf_from="/admin/login/",
        ).status
        for _ in range(3)
    ]
    abuse.record(
        "R3 the admin login from a locked-out address",
        "429",
        admin_statuses[-1],
        refused=admin_statuses[-1] == 429,
    )
    token_statuses = [
        anonymous.send_json("POST", "/api/auth/token/", {"username": "manager",
                                                         "password": "guess"}).status
        for _ in range(3)
    ]  # fmt: skip
    abuse.record(
        "R3 password guessing on the token endpoint",
        "429",
        token_statuses[-1],
        refused=token_statuses[-1] == 429,
    )
    subprocess.run(
        [sys.executable, "manage.py", "axes_reset"],
        cwd=ROOT,
        env=_environment(data_dir, os.environ["DATABASE_URL"]),
        check=True,
        capture_output=True,
    )
    lifted = Client(abuse.a).login("annotator", f["password"])
    abuse.record(
        "R3 the operator lifts the lockout (manage.py axes_reset)",
        "login",
        lifted.status,
        refused=lifted.status == 302,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL database to (re)create and use")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="flywheel-abuse-"))
    if args.database_url:
        import psycopg

        from bench.common import ensure_database

        name = args.database_url.rsplit("/", 1)[1]
        with psycopg.connect(args.database_url.rsplit("/", 1)[0] + "/postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        ensure_database(args.database_url)
        database_url = args.database_url
    else:
        database_url = f"sqlite:///{data_dir / 'abuse.sqlite3'}"
    env = _environment(data_dir, database_url)
    os.environ.update({k: v for k, v in env.items() if k not in os.environ or k in env})
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True,
            capture_output=True,
        )  # fmt: skip
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    fixtures = _fixtures()

    server_a, a = _start(env)
    server_b, b = _start(
        _environment(
            data_dir,
            database_url,
            CELERY_BROKER_URL="redis://127.0.0.1:1/0",
            TRUSTED_PROXIES="10.9.9.9",
        )
    )
    print(f"# {machine_line()} · {database_url.split(':')[0]} · server A {a}, B {b}")
    abuse = Abuse(a, b, server_a)
    try:
        run(abuse, fixtures, data_dir)
    finally:
        for server in (server_a, server_b):
            server.terminate()
            server.wait(timeout=30)
    failed = [line for line in abuse.lines if not (line.refused and not line.written
                                                   and not line.leaked)]  # fmt: skip
    print(f"# {len(abuse.lines)} attacks: {len(abuse.lines) - len(failed)} refused with nothing "
          f"written or leaked, {len(failed)} not")  # fmt: skip
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
