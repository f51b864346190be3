"""gunicorn must not decide the request's scheme from X-Forwarded-Proto on its own: by default
it believes the header from 127.0.0.1 and sets wsgi.url_scheme to https, which Django's
request.is_secure() then falls back to after TrustedProxyMiddleware removed the header."""

import runpy
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "config" / "gunicorn.conf.py"


def test_gunicorn_believes_no_forwarded_scheme_header():
    conf = runpy.run_path(str(CONF))
    assert conf["secure_scheme_headers"] == {}
    assert conf["forwarded_allow_ips"] == ""
