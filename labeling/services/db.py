"""Small database helpers shared by services."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.db import connection
from django.db.models import Model


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


def no_flush_wait_sql() -> str | None:
    """The same as `commit_without_flush_wait` as an SQL expression, to put into a statement the
    transaction runs anyway (saving the round trip of a ``SET LOCAL``): it must be evaluated,
    e.g. in a select list whose row is fetched. None where it would not apply: other backends,
    or inside a caller's transaction. In autocommit mode the statement is its own transaction."""
    if connection.vendor != "postgresql" or len(connection.atomic_blocks) > 1:
        return None
    return "set_config('synchronous_commit', 'off', true)"


class RowModel:
    """Model instances from a plain cursor row, for hot paths written in SQL.

    `Model.objects.raw()` works out its column mapping and converters on every query, which
    costs more than a small query itself; this does it once per model. Select `columns(alias)`
    first in the statement, then any extra columns: `instance(row)` builds the model from the
    leading values (with the backend's converters, e.g. JSON decoding) and returns the rest.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.names = [f.attname for f in self.fields]
        self._converters: dict[str, list] = {}
        self._columns: dict[str, str] = {}

    def columns(self, alias: str) -> str:
        if alias not in self._columns:
            self._columns[alias] = ", ".join(f'{alias}."{f.column}"' for f in self.fields)
        return self._columns[alias]

    def _converters_for_backend(self) -> list:
        key = connection.vendor
        if key not in self._converters:
            from django.db.models.sql import Query

            compiler = connection.ops.compiler("SQLCompiler")(
                Query(self.model), connection, connection.alias
            )
            cols = [f.get_col(self.model._meta.db_table) for f in self.fields]
            self._converters[key] = sorted(compiler.get_converters(cols).items())
        return self._converters[key]

    def instance(self, row: Sequence) -> tuple[Model, tuple]:
        n = len(self.fields)
        values = list(row[:n])
        for pos, (converters, expression) in self._converters_for_backend():
            for converter in converters:
                values[pos] = converter(values[pos], expression, connection)
        return self.model.from_db(connection.alias, self.names, values), tuple(row[n:])


# ---- statement guards ---------------------------------------------------------------------


@dataclass(frozen=True)
class StatementGuard:
    """A condition the database checks in the same statement as a write, so that the write
    happens only if the condition holds at that moment: `sql` is a boolean SQL expression with
    ``%(name)s`` placeholders for `params`.

    The API's fast path (labeling/api/fastpath.py) sets one when it answers from credentials it
    read on an earlier request: the token, the user's row, the membership role and the project's
    row must still be what they were. The PostgreSQL statements of the annotation loop (queue
    next, submit) evaluate it before they call their function, pass the function a NULL project
    when it fails (which matches no row, so nothing is written), and raise `GuardFailed`. Any
    other statement on the way checks it first with `guard_check`."""

    sql: str
    params: dict


class GuardFailed(Exception):
    """The active statement guard did not hold: nothing was written."""


_guard: ContextVar[StatementGuard | None] = ContextVar("statement_guard", default=None)


@contextmanager
def statement_guard(guard: StatementGuard | None) -> Iterator[None]:
    """Run the block's annotation-loop statements under `guard` (None: no guard)."""
    token = _guard.set(guard)
    try:
        yield
    finally:
        _guard.reset(token)


def guard_check() -> None:
    """Check the active guard in a statement of its own (for code paths that write through
    several statements); GuardFailed if it does not hold. No guard: nothing to do."""
    guard = _guard.get()
    if guard is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {guard.sql}", guard.params)
        if not cursor.fetchone()[0]:
            raise GuardFailed


def guarded_project_sql() -> str:
    """The project argument of an annotation-loop function call in `fetch_one_guarded`'s
    statement: under a guard, NULL unless the guard holds (a NULL project matches no row, so the
    function writes nothing)."""
    if _guard.get() is None:
        return "%(project)s::bigint"
    return "CASE WHEN g.ok THEN %(project)s::bigint END"


def fetch_one_guarded(sql: str, params: dict) -> tuple | None:
    """The one row of `sql` (a query whose first column is never NULL in a row it returns),
    or None. Under a statement guard the guard is evaluated first in the same statement, as
    ``g.ok`` for `guarded_project_sql`, and GuardFailed is raised if it did not hold."""
    guard = _guard.get()
    if guard is not None:
        sql = (
            f"SELECT g.ok, x.* FROM (SELECT {guard.sql} AS ok) g"
            f" LEFT JOIN LATERAL ({sql}) x ON true"
        )
        params = {**params, **guard.params}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if guard is None:
        return row
    ok, *rest = row
    if not ok:
        raise GuardFailed
    return None if rest[0] is None else tuple(rest)
