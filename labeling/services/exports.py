"""Streaming export of a project's items with their final labels, annotations and lineage.

Formats
- ``jsonl``: one JSON object per line (UTF-8). Loads with
  ``datasets.load_dataset("json", data_files=path)`` as is.
- ``json``: the same objects streamed as one array: ``[`` obj ``,`` obj ``]``.
- ``csv``: one row per item; nested parts are JSON-encoded strings (see `CSV_COLUMNS`).
  Spreadsheet formula injection is neutralised by default (OWASP's rule): a text cell (id,
  text, final labels) that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
  gets a ``'`` in front, so Excel, LibreOffice and Google Sheets show it as text instead of
  running it (``=HYPERLINK(...)``, ``=cmd|...``, ``@SUM(...)``). The JSON columns always begin
  with ``[`` or ``{`` and the numeric columns are numbers, so they are left as they are.
  Machine consumers that want the raw values pass ``csv_formula_escape=False`` (the API's
  ``?csv_formula_escape=0``). JSONL and JSON are never changed by it. Rows end with
  ``\r\n`` (RFC 4180), and cells holding a line break or a carriage return are quoted.

Record (every row has the same keys with the same types; ``null`` when missing)::

    id                  str         the item's external id
    text                str
    status              str         "open" | "done"
    final_labels        list[str] | null
    final_label         str | null  first of final_labels
    final_confidence    float | null
    final_lineage_json  str | null  JSON-encoded final_lineage (how the final label was made)
    annotations         list[{annotator: str, labels: list[str], time_spent_ms: int,
                              created_at: str, updated_at: str, suggestion_source: str | null}]
    predictions         list[{source_kind: str, source_id: str, source_version: str,
                              labels: list[str], confidence: float | null}]
    metadata_json       str         JSON-encoded item metadata
    created_at          str         ISO 8601, UTC, always with microseconds
    updated_at          str

``metadata`` and ``final_lineage`` are exported as JSON-encoded *strings*: they are free-form
dicts whose keys vary from item to item, and a reader that infers one schema for the whole file
(Arrow, HF ``datasets``) fails or invents sparse columns on them. ``json.loads`` gives them back.
``suggestion_source`` is ``"<source_kind>:<source_id>@<source_version>"`` of the prediction the
annotator accepted.

Row order: item id, except that a few *schema seed* rows come first. ``datasets`` infers the
schema from the first 10 MB of a JSONL file and casts the rest to it, so a field that is null in
every early row (say ``suggestion_source`` when suggestions were only switched on later) would be
typed ``null`` and every later value would fail to cast. The seed rows are the first item having
each sparsely filled field; with them at the top, every field that has a value anywhere in the
export has one in the first rows. All formats share this order.

Scaling: keyset pagination over item ids in chunks of ``settings.EXPORT_CHUNK_SIZE``; per chunk
three queries (the items page, then the annotations and predictions of the items on it, by
the ids read), never a join across the whole export and never an OFFSET. Memory is bounded by
three chunks (the one being written and the two read ahead), whatever the number of rows. On
PostgreSQL the read-ahead is sent in pipeline mode, so the server reads while Python writes.
Chunks are separate statements, so an export running while annotators work is not one
snapshot: an item changed mid-export appears in the state its chunk was read in.

Filters
- ``finished_only``: status done.
- ``label``: items whose final_labels contain the value. PostgreSQL uses JSON containment
  (``@>``); SQLite has no containment operator, so it asks ``json_each`` (exact element match,
  not a substring ``LIKE`` that would also match ``"pos"`` inside ``"positive"``).
- ``changed_since``: ``item.updated_at >= changed_since``; the annotation services touch the
  item's ``updated_at`` whenever one of its annotations changes. Not indexed (an index on it
  would make every submit's item update non-HOT, migration ``labeling/0009``): the filter is
  checked on the rows the export reads anyway.
- ``item_ids``: restrict to these items (a list, or a queryset of ids for large selections: it
  becomes a subquery, not a parameter list).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from json.encoder import encode_basestring
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, F, Func, OuterRef, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import slugify

from labeling.errors import ApplicationError
from labeling.models import Annotation, Item, Prediction, Project

EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    # format: (content type, file extension)
    "jsonl": ("application/x-ndjson; charset=utf-8", "jsonl"),
    "json": ("application/json; charset=utf-8", "json"),
    "csv": ("text/csv; charset=utf-8", "csv"),
}

RECORD_KEYS = (
    "id",
    "text",
    "status",
    "final_labels",
    "final_label",
    "final_confidence",
    "final_lineage_json",
    "annotations",
    "predictions",
    "metadata_json",
    "created_at",
    "updated_at",
)

CSV_COLUMNS = (
    "id",
    "text",
    "status",
    "final_labels",  # joined with "|"
    "final_confidence",
    "annotation_count",
    "annotations_json",
    "predictions_json",
    "metadata_json",
)
CSV_LABEL_SEPARATOR = "|"
# A cell beginning with one of these is a formula (or becomes one) in a spreadsheet (OWASP,
# "CSV Injection"); it is exported with CSV_FORMULA_ESCAPE in front.
CSV_FORMULA_PREFIXES = frozenset("=+-@\t\r")
CSV_FORMULA_ESCAPE = "'"


def csv_cell_neutralise(value: str) -> str:
    """`value`, with a leading ``'`` if a spreadsheet would read it as a formula. One look at
    the first character: the export calls it for every text cell."""
    if value and value[0] in CSV_FORMULA_PREFIXES:
        return CSV_FORMULA_ESCAPE + value
    return value


_MAX_CACHED_SOURCES = 10_000

# JSON string escaping in C (json.dumps's own, with ensure_ascii=False): UTF-8 out, not \uXXXX.
_encode_str = encode_basestring


def export_content_type(*, fmt: str) -> str:
    _check_format(fmt)
    return EXPORT_FORMATS[fmt][0]


def export_filename(*, project: Project, fmt: str, now: datetime | None = None) -> str:
    """A download name such as ``sentiment-20240501-120000.jsonl``."""
    _check_format(fmt)
    stamp = (now or timezone.now()).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    name = slugify(project.name) or f"project-{project.pk}"
    return f"{name}-{stamp}.{EXPORT_FORMATS[fmt][1]}"


def parse_changed_since(value: str) -> datetime:
    """Parse an ISO 8601 date or datetime; naive values are in the default time zone (UTC)."""
    text = (value or "").strip()
    parsed: datetime | None = None
    try:
        parsed = parse_datetime(text)
        if parsed is None:
            day = parse_date(text)
            if day is not None:
                parsed = datetime(day.year, day.month, day.day)  # noqa: DTZ001 (made aware below)
    except ValueError:
        parsed = None
    if parsed is None:
        raise ApplicationError(
            f"'{value}' is not an ISO 8601 date or datetime (e.g. 2024-05-01T12:00:00Z).",
            {"field": "changed_since"},
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def export_stream(
    *,
    project: Project,
    fmt: str,
    finished_only: bool = False,
    label: str | None = None,
    changed_since: datetime | None = None,
    item_ids: Iterable[int] | QuerySet | None = None,
    csv_formula_escape: bool = True,
) -> Iterator[bytes]:
    """Stream the project's items as UTF-8 bytes in the given format (see the module docstring).

    `csv_formula_escape` (CSV only) neutralises cells a spreadsheet would run as formulas;
    turn it off only for machine consumers.

    Arguments are checked now (ApplicationError), the database is read lazily as the returned
    iterator is consumed, one chunk of items at a time.
    """
    _check_format(fmt)
    if changed_since is not None and timezone.is_naive(changed_since):
        changed_since = timezone.make_aware(changed_since)
    items = _filtered_items(
        project=project,
        finished_only=finished_only,
        label=label,
        changed_since=changed_since,
        item_ids=item_ids,
    )
    reader = _Reader(items)
    if fmt == "jsonl":
        return _as_jsonl(reader)
    if fmt == "json":
        return _as_json(reader)
    return _as_csv(reader, formula_escape=csv_formula_escape)


def _check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ApplicationError(
            f"Unknown export format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}.",
            {"field": "format"},
        )


def _filtered_items(
    *,
    project: Project,
    finished_only: bool,
    label: str | None,
    changed_since: datetime | None,
    item_ids: Iterable[int] | QuerySet | None,
) -> QuerySet[Item]:
    items = Item.objects.filter(project=project)
    if finished_only:
        items = items.filter(status=Item.Status.DONE)
    if changed_since is not None:
        items = items.filter(updated_at__gte=changed_since)
    if item_ids is not None:
        items = items.filter(
            pk__in=item_ids if isinstance(item_ids, QuerySet) else [int(i) for i in item_ids]
        )
    if label is not None:
        items = items.filter(_final_labels_contain(project=project, label=label))
    return items


def _final_labels_contain(*, project: Project, label: str) -> Q:
    """Items whose final_labels list contains `label` as an element."""
    if connection.features.supports_json_field_contains:
        return Q(final_labels__contains=[label])
    if connection.vendor == "sqlite":
        # Self-contained (no reference to the outer query's table alias), because the
        # export also uses the filtered items as a subquery.
        table = connection.ops.quote_name(Item._meta.db_table)
        return Q(
            pk__in=RawSQL(
                f"SELECT i.id FROM {table} i, json_each(i.final_labels) AS e "
                "WHERE i.project_id = %s AND e.value = %s",
                (project.pk, label),
            )
        )
    raise ApplicationError(f"The label filter is not supported on {connection.vendor}.")


def _seed_item_ids(items: QuerySet[Item]) -> list[int]:
    """The first item having each sparsely filled field (see "Row order" above)."""
    annotations = Annotation.objects.filter(item=OuterRef("pk"))
    predictions = Prediction.objects.filter(item=OuterRef("pk"))
    conditions = [
        Q(final_labels__isnull=False),
        Q(final_confidence__isnull=False),
        Q(final_lineage__isnull=False),
        Exists(annotations),
        Exists(annotations.filter(suggestion__isnull=False)),
        Exists(predictions),
        Exists(predictions.filter(confidence__isnull=False)),
    ]
    seeds: set[int] = set()
    for condition in conditions:
        first = items.filter(condition).order_by("pk").values_list("pk", flat=True).first()
        if first is not None:
            seeds.add(first)
    return sorted(seeds)


class _UtcIsoText(Func):
    """PostgreSQL formats a timestamptz as ISO 8601 text itself: Django's driver-level parsing
    into datetime objects, then formatting back, costs more than the rest of a row together."""

    output_field = TextField()
    template = (
        "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
    )


def _iso(value: datetime) -> str:
    # Fixed precision and offset, so every timestamp in the file has the same shape.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class _Chunk(NamedTuple):
    """One chunk's rows, columns as selected in `_Reader._item_rows` and `_Reader._details`."""

    items: list[tuple]
    annotations: list[tuple]
    predictions: list[tuple]


# (item rows, annotation JSON arrays by item id, annotation counts, prediction JSON arrays)
Renderer = Callable[[list[tuple], dict[int, str], dict[int, int], dict[int, str]], str]


class _Reader:
    """Reads the filtered items chunk by chunk and hands each chunk to a renderer.

    Per chunk three queries: the items (keyset page ``pk > last ORDER BY pk LIMIT n``), then the
    annotations and predictions of exactly the items read (an id range when the page is dense,
    else the ids). The database's own JSON text (labels, metadata, lineage) is written out
    verbatim, never decoded and re-encoded.

    Item pages are read one step ahead: while chunk n is rendered, the annotations and
    predictions of page n+1 and the items of page n+2 are being read. On PostgreSQL they are
    sent in pipeline mode first, so the server works while Python writes; the connection is in
    pipeline mode only inside this class's own code, never across a ``yield``.
    """

    def __init__(self, items: QuerySet[Item]) -> None:
        self.items = items
        self.chunk_size = max(1, int(settings.EXPORT_CHUNK_SIZE))
        self.on_postgresql = connection.vendor == "postgresql"
        self.pipelined = False  # decided once connected, in `stream`
        self.usernames: dict[int, str] = {}  # JSON-encoded; bounded by the number of annotators
        self.sources: dict[int, str] = {}  # suggestions outside their chunk (should not occur)
        self.prediction_heads: dict[tuple[str, str, str], str] = {}  # JSON up to "labels":

    # --- queries ------------------------------------------------------------------------------
    # Django (5.2+) selects columns in the order asked for, so rows read straight off the cursor
    # in pipeline mode line up with values_list rows (a test checks that both paths agree).

    def _timestamp(self, name: str):
        return _UtcIsoText(name) if self.on_postgresql else F(name)

    def _item_rows(self, page: QuerySet[Item]) -> QuerySet:
        return page.values_list(
            "pk",
            "external_id",
            "text",
            "status",
            "final_confidence",
            Cast("final_labels", TextField()),
            KT("final_labels__0"),
            Cast("final_lineage", TextField()),
            Cast("metadata", TextField()),
            self._timestamp("created_at"),
            self._timestamp("updated_at"),
        )

    def _keyset_page(self, last_id: int) -> QuerySet:
        return self._item_rows(self.items.filter(pk__gt=last_id).order_by("pk")[: self.chunk_size])

    def _details(self, items: list[tuple]) -> list[QuerySet]:
        """Annotations and predictions of these item rows (sorted by id)."""
        ids = [row[0] for row in items]
        if ids[-1] - ids[0] < 2 * len(ids):
            # Dense page, the usual case: an id range is cheaper to build, send and plan than
            # thousands of literal ids. Rows of other items in the range are read and dropped.
            of_items = Q(item_id__gte=ids[0], item_id__lte=ids[-1])
        else:
            of_items = Q(item_id__in=ids)
        annotations = (
            Annotation.objects.filter(of_items)
            .order_by("item_id", "created_at", "pk")
            .values_list(
                "item_id",
                "annotator_id",
                "time_spent_ms",
                "suggestion_id",
                Cast("labels", TextField()),
                self._timestamp("created_at"),
                self._timestamp("updated_at"),
            )
        )
        predictions = (
            Prediction.objects.filter(of_items)
            .order_by("item_id", "pk")
            .values_list(
                "item_id",
                "pk",
                "source_kind",
                "source_id",
                "source_version",
                "confidence",
                Cast("labels", TextField()),
            )
        )
        return [annotations, predictions]

    def _run(self, queries: list[QuerySet], meanwhile: Callable[[], str]) -> tuple[list, str]:
        """Rows of each query, and the result of `meanwhile()`, computed while the database
        works on the queries when the driver can pipeline them."""
        if not self.pipelined or not queries:
            done = meanwhile()
            return [list(query) for query in queries], done
        cursors = []
        try:
            with connection.connection.pipeline():
                for query in queries:
                    sql, params = query.query.sql_with_params()
                    cursor = connection.cursor()
                    cursor.execute(sql, params)
                    cursors.append(cursor)
                done = meanwhile()
                rows = [cursor.fetchall() for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()
        return rows, done

    # --- the loop -----------------------------------------------------------------------------

    def stream(self, render: Renderer) -> Iterator[str]:
        """Rendered text, one string per chunk: the seed rows first, then keyset pages."""
        seeds = _seed_item_ids(self.items)
        connection.ensure_connection()
        self.pipelined = self.on_postgresql and _pipeline_supported(connection.connection)
        first = self.items.filter(pk__in=seeds).order_by("pk") if seeds else None
        if first is not None:
            (upcoming,), _ = self._run([self._item_rows(first)], _nothing)
            last_id, more = 0, True
        else:
            (page,), _ = self._run([self._keyset_page(0)], _nothing)
            upcoming = page
            last_id, more = self._advance(page, 0)
        skip = set(seeds)  # written first, so left out of the keyset pages
        chunk: _Chunk | None = None
        while chunk is not None or upcoming or more:
            if chunk is not None:
                self._prepare(chunk)
            queries = self._details(upcoming) if upcoming else []
            if more:
                queries.append(self._keyset_page(last_id))
            write = partial(self._render, render, chunk) if chunk is not None else _nothing
            rows, out = self._run(queries, write)
            chunk = _Chunk(upcoming, rows[0], rows[1]) if upcoming else None
            upcoming = []
            if more:
                page = rows[-1]
                last_id, more = self._advance(page, last_id)
                upcoming = [row for row in page if row[0] not in skip] if skip else page
            if out:
                yield out

    def _advance(self, page: list[tuple], last_id: int) -> tuple[int, bool]:
        """The keyset position after a page, and whether a further page may exist."""
        if not page:
            return last_id, False
        return page[-1][0], len(page) == self.chunk_size

    # --- rendering ----------------------------------------------------------------------------

    def _prepare(self, chunk: _Chunk) -> None:
        """Look up what the chunk needs beyond its own rows (new annotators' names, a
        suggestion that is not one of its item's predictions) before the next chunk's queries
        occupy the connection."""
        missing = {row[1] for row in chunk.annotations} - self.usernames.keys()
        if missing:
            self.usernames.update(
                (pk, _encode_str(name))
                for pk, name in get_user_model()
                .objects.filter(pk__in=missing)
                .values_list("pk", "username")
            )
        own = {row[1] for row in chunk.predictions}
        stray = {
            row[3]
            for row in chunk.annotations
            if row[3] is not None and row[3] not in own and row[3] not in self.sources
        }
        if stray:
            for pk, kind, source_id, version in Prediction.objects.filter(pk__in=stray).values_list(
                "pk", "source_kind", "source_id", "source_version"
            ):
                self.sources[pk] = f"{kind}:{source_id}@{version}"

    def _render(self, render: Renderer, chunk: _Chunk) -> str:
        # The hot loop of the export: plain f-strings over row tuples, no per-value calls
        # beyond the C string escaper.
        items, annotation_rows = chunk.items, chunk.annotations
        if not self.on_postgresql:  # timestamps arrive as datetimes; PostgreSQL sends text
            items = [(*row[:9], _iso(row[9]), _iso(row[10])) for row in items]
            annotation_rows = [(*row[:5], _iso(row[5]), _iso(row[6])) for row in annotation_rows]
        # Rows of other items come with an id-range read (see `_details`); they are dropped.
        wanted = {row[0] for row in items}
        suggested = {row[3] for row in annotation_rows if row[3] is not None}
        sources = dict(self.sources) if suggested else {}
        predictions: dict[int, list[str]] = {}
        heads = self.prediction_heads
        for item_id, pk, kind, source_id, version, confidence, labels in chunk.predictions:
            if item_id not in wanted:
                continue
            if pk in suggested:
                sources[pk] = f"{kind}:{source_id}@{version}"
            source = (kind, source_id, version)
            head = heads.get(source)
            if head is None:  # a handful of sources per project: encode each once
                if len(heads) >= _MAX_CACHED_SOURCES:  # keep memory bounded whatever the data
                    heads.clear()
                head = heads[source] = (
                    f'{{"source_kind":{_encode_str(kind)},"source_id":{_encode_str(source_id)},'
                    f'"source_version":{_encode_str(version)},"labels":'
                )
            predictions.setdefault(item_id, []).append(
                f"{head}{labels or 'null'},"
                f'"confidence":{"null" if confidence is None else repr(confidence)}}}'
            )
        annotations: dict[int, list[str]] = {}
        names = self.usernames
        for item_id, user_id, spent, suggestion, labels, created, updated in annotation_rows:
            if item_id not in wanted:
                continue
            source = None if suggestion is None else sources.get(suggestion)
            annotations.setdefault(item_id, []).append(
                f'{{"annotator":{names[user_id]},"labels":{labels or "null"},'
                f'"time_spent_ms":{spent},"created_at":"{created}","updated_at":"{updated}",'
                f'"suggestion_source":{"null" if source is None else _encode_str(source)}}}'
            )
        return render(
            items,
            {pk: "[" + ",".join(parts) + "]" for pk, parts in annotations.items()},
            {pk: len(parts) for pk, parts in annotations.items()},
            {pk: "[" + ",".join(parts) + "]" for pk, parts in predictions.items()},
        )


def _nothing() -> str:
    return ""


def _pipeline_supported(driver_connection) -> bool:
    """psycopg 3 with a libpq that has pipeline mode (psycopg2 has none)."""
    if not callable(getattr(driver_connection, "pipeline", None)):
        return False
    from psycopg import Pipeline

    return Pipeline.is_supported()


# --- formats ----------------------------------------------------------------------------------


def _jsonl_lines(items, annotations, _counts, predictions) -> list[str]:
    return [
        f'{{"id":{_encode_str(external_id)},"text":{_encode_str(text)},'
        f'"status":{_encode_str(status)},"final_labels":{final_labels or "null"},'
        f'"final_label":{"null" if final_label is None else _encode_str(str(final_label))},'
        f'"final_confidence":{"null" if confidence is None else repr(confidence)},'
        f'"final_lineage_json":{"null" if lineage is None else _encode_str(lineage)},'
        f'"annotations":{annotations.get(pk, "[]")},"predictions":{predictions.get(pk, "[]")},'
        f'"metadata_json":{_encode_str(metadata or "{}")},'
        f'"created_at":"{created}","updated_at":"{updated}"}}'
        for (
            pk,
            external_id,
            text,
            status,
            confidence,
            final_labels,
            final_label,
            lineage,
            metadata,
            created,
            updated,
        ) in items
    ]


def _render_jsonl(*chunk) -> str:
    return "".join([line + "\n" for line in _jsonl_lines(*chunk)])


class _JsonArray:
    """Renders chunks as the inside of one JSON array, remembering whether one came before."""

    def __init__(self) -> None:
        self.separator = "\n"

    def __call__(self, *chunk) -> str:
        out = self.separator + ",\n".join(_jsonl_lines(*chunk))
        self.separator = ",\n"
        return out


def _csv_labels(final_labels_json: str | None) -> str:
    if final_labels_json is None:
        return ""
    labels = json.loads(final_labels_json)
    if not isinstance(labels, list):
        labels = [labels]
    return CSV_LABEL_SEPARATOR.join(str(label) for label in labels)


def _same(value: str) -> str:
    return value


class _CsvRows:
    def __init__(self, *, formula_escape: bool = True) -> None:
        self.buffer = io.StringIO()
        # RFC 4180's CRLF: the writer quotes a cell holding any character of the line
        # terminator, so with "\n" alone a carriage return inside a text went out unquoted
        # and broke every reader.
        self.writer = csv.writer(self.buffer, lineterminator="\r\n")
        self.cell = csv_cell_neutralise if formula_escape else _same

    def header(self) -> str:
        return self.render_rows([CSV_COLUMNS])

    def render_rows(self, rows) -> str:
        self.buffer.seek(0)
        self.buffer.truncate()
        self.writer.writerows(rows)
        return self.buffer.getvalue()

    def __call__(self, items, annotations, counts, predictions) -> str:
        cell = self.cell
        return self.render_rows(
            (
                cell(external_id),
                cell(text),
                status,
                cell(_csv_labels(final_labels)),
                "" if confidence is None else confidence,
                counts.get(pk, 0),
                annotations.get(pk, "[]"),
                predictions.get(pk, "[]"),
                metadata or "{}",
            )
            for (
                pk,
                external_id,
                text,
                status,
                confidence,
                final_labels,
                _final_label,
                _lineage,
                metadata,
                _created,
                _updated,
            ) in items
        )


def _encoded(parts: Iterator[str]) -> Iterator[bytes]:
    for part in parts:
        yield part.encode()


def _as_jsonl(reader: _Reader) -> Iterator[bytes]:
    return _encoded(reader.stream(_render_jsonl))


def _as_json(reader: _Reader) -> Iterator[bytes]:
    yield b"["
    yield from _encoded(reader.stream(_JsonArray()))
    yield b"\n]\n"


def _as_csv(reader: _Reader, *, formula_escape: bool = True) -> Iterator[bytes]:
    rows = _CsvRows(formula_escape=formula_escape)
    yield rows.header().encode()
    yield from _encoded(reader.stream(rows))
