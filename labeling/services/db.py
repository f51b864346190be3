"""Small database helpers shared by services."""

from __future__ import annotations

from django.db import connection


def commit_without_flush_wait() -> None:
    """Let the current transaction's commit skip waiting for its WAL flush (PostgreSQL's
    ``synchronous_commit = off`` for this transaction only; other backends: nothing).

    For writes whose loss in a database crash is harmless (a lease, a counter that only decides
    when to retrain): on a disk with a ~4 ms fsync that wait is most of such a transaction's
    latency. Applies only when the caller owns the outermost transaction, so a caller's own
    writes stay durable. Call inside ``transaction.atomic()``."""
    if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
