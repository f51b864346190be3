"""Production settings, loaded as gunicorn loads them (their own process): HTTPS responses carry
HSTS and the Content-Security-Policy, and X-Forwarded-Proto makes a request HTTPS only when it
comes from a trusted proxy (a client reaching gunicorn directly is redirected, not believed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
django.setup()
from django.test import Client

def probe(remote_addr, **headers):
    response = Client().get("/healthz", REMOTE_ADDR=remote_addr, **headers)
    return {"status": response.status_code, "headers": dict(response.headers)}

print(json.dumps({
    "direct": probe("198.51.100.7", HTTP_X_FORWARDED_PROTO="https"),
    "proxied": probe("10.0.0.9", HTTP_X_FORWARDED_PROTO="https"),
}))
"""


def _run_production(tmp_path, **env):
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "production-test-key-0123456789abcdefghijklmnop",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "FLYWHEEL_DATA_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "testserver",
        "CELERY_BROKER_URL": "memory://localhost/",
        **env,
    }
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_https_answers_carry_hsts_and_the_policy_and_only_a_proxy_makes_https(tmp_path):
    seen = _run_production(tmp_path, SECURE_SSL_REDIRECT="1", TRUSTED_PROXIES="10.0.0.9")

    # A client that says "https" itself is not believed: sent to https://, no HSTS
    direct = seen["direct"]
    assert direct["status"] == 301
    assert direct["headers"]["Location"].startswith("https://")
    assert "Strict-Transport-Security" not in direct["headers"]
    # The trusted proxy's word is: HSTS for a year, and the policy
    proxied = seen["proxied"]
    assert proxied["status"] == 200
    assert proxied["headers"]["Strict-Transport-Security"] == "max-age=31536000"
    policy = proxied["headers"]["Content-Security-Policy"].split("; ")
    assert {"default-src 'self'", "script-src 'self'", "style-src 'self'"} <= set(policy)
    assert "frame-ancestors 'none'" in policy
    assert not any("unsafe" in directive for directive in policy)
