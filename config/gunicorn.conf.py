"""gunicorn settings for the web app (production image and the queue benchmark).

Measured on 2 cores (docs/benchmarks.md, queue benchmark): the annotation loop is Python-bound,
and one request per process at a time (gthread, 1 thread) beat fewer processes with more threads
(GIL contention and the thread pool's hand-offs cost more than the database waits they hide).
gthread rather than sync keeps HTTP connections alive. The number of processes is gunicorn's
own rule, 2 x cores + 1: at 225 pairs/s on 2 cores, 4 or 5 processes kept p99 at 28-125 ms
while 8 and 12 processes (more context switches, colder CPU caches) fell behind. One long
request (a large export streamed to a slow client) holds its process: raise WEB_CONCURRENCY
where many run at once.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
# Each process keeps one PostgreSQL connection open (DB_CONN_MAX_AGE): capped at 24 so a large
# host stays well inside PostgreSQL's default max_connections (100) next to the workers.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 24)))
threads = int(os.environ.get("WEB_THREADS", 1))
keepalive = int(os.environ.get("WEB_KEEPALIVE", 30))
timeout = int(os.environ.get("WEB_TIMEOUT", 120))
# gunicorn would otherwise set the request's scheme to https from X-Forwarded-Proto itself
# (from 127.0.0.1 by default), behind Django's back: Django alone decides, believing the header
# only from TRUSTED_PROXIES (config/proxies.py).
secure_scheme_headers: dict[str, str] = {}
forwarded_allow_ips = ""


def post_worker_init(worker):
    """Move everything the app allocated at start-up (Django, DRF, models, URL patterns) out of
    the garbage collector's view: the collector then stops re-scanning those objects in the
    full collections that otherwise add pauses to the slowest requests."""
    import gc

    gc.collect()
    gc.freeze()
