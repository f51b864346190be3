"""Gold (honeypot) items: known answers, served by the core's queue at `Project.gold_rate`.

A gold item's final label is its gold label (lineage ``gold``). Marking or unmarking items
re-aggregates the project (the one-coin method anchors reliability on gold)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Item, Project
from labeling.services.hooks import after_final_labels_changed
from quality.services._labels import labels_clean, project_label_values

GOLD_LINEAGE = {"method": "gold", "version": "1"}


@transaction.atomic
def gold_set(*, project: Project, entries: Sequence[tuple[str, Sequence[str] | str]]) -> int:
    """Mark items (by external id) as gold with their known labels. All or nothing: the first
    bad entry raises ApplicationError naming it (entry numbers start at 1)."""
    from quality.services.aggregation import aggregation_request_on_commit

    allowed = project_label_values(project=project)
    cleaned: dict[str, list[str]] = {}
    for number, (external_id, labels) in enumerate(entries, start=1):
        external_id = str(external_id).strip()
        if not external_id:
            raise ApplicationError(f"Entry {number}: empty external id.", {"entry": number})
        try:
            cleaned[external_id] = labels_clean(
                project=project, labels=labels, allowed=allowed, where=f"Entry {number}"
            )
        except ApplicationError as exc:
            raise ApplicationError(exc.message, {**exc.extra, "entry": number}) from None
    if not cleaned:
        raise ApplicationError("No gold entries given.")
    found = dict(
        Item.objects.filter(project=project, external_id__in=list(cleaned)).values_list(
            "external_id", "pk"
        )
    )
    missing = [e for e in cleaned if e not in found]
    if missing:
        raise ApplicationError(
            f"{len(missing)} external id(s) are not items of this project, e.g. "
            f"{', '.join(map(repr, missing[:5]))}.",
            {"missing": missing[:100]},
        )
    now = timezone.now()
    items = [
        Item(
            pk=found[external_id],
            is_gold=True,
            gold_labels=labels,
            final_labels=labels,
            final_confidence=1.0,
            final_lineage=GOLD_LINEAGE,
            updated_at=now,
        )
        for external_id, labels in cleaned.items()
    ]
    Item.objects.bulk_update(
        items,
        [
            "is_gold",
            "gold_labels",
            "final_labels",
            "final_confidence",
            "final_lineage",
            "updated_at",
        ],
        batch_size=settings.QUALITY_WRITE_BATCH_SIZE,
    )
    after_final_labels_changed(project=project, item_ids=[item.pk for item in items])
    aggregation_request_on_commit(project=project, delay=0)
    return len(items)


@transaction.atomic
def gold_clear(*, project: Project, item_ids: Iterable[int]) -> int:
    """Unmark gold items; their gold final label is cleared and aggregation takes over."""
    from quality.services.aggregation import aggregation_request_on_commit

    ids = [int(pk) for pk in item_ids]
    items = Item.objects.filter(project=project, pk__in=ids, is_gold=True)
    cleared = list(items.values_list("pk", flat=True))
    items.update(is_gold=False, gold_labels=None, updated_at=timezone.now())
    Item.objects.filter(pk__in=cleared).filter(Q(final_lineage__method="gold")).update(
        final_labels=None, final_confidence=None, final_lineage=None
    )
    if cleared:
        after_final_labels_changed(project=project, item_ids=cleared)
        aggregation_request_on_commit(project=project, delay=0)
    return len(cleared)


def gold_file_parse(
    *,
    content: str,
    id_column: str = "external_id",
    label_column: str = "label",
    label_delimiter: str = "|",
) -> list[tuple[str, list[str]]]:
    """Rows of a gold CSV (``external_id,label``; several labels joined by ``|``). Errors name
    the line."""
    reader = csv.DictReader(io.StringIO(content.lstrip("\ufeff")))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise _unreadable(exc, line=reader.reader.line_num or 1) from None
    if not fieldnames or id_column not in fieldnames:
        raise ApplicationError(
            f"The gold file needs a header with {id_column!r} and {label_column!r} columns.",
            {"columns": reader.fieldnames or []},
        )
    if label_column not in reader.fieldnames:
        raise ApplicationError(
            f"The gold file has no {label_column!r} column.", {"columns": reader.fieldnames}
        )
    entries = []
    seen: dict[str, int] = {}
    for row in _rows(reader):
        line = reader.line_num
        if len(entries) >= settings.QUALITY_IMPORT_MAX_ROWS:
            raise ApplicationError(f"More than {settings.QUALITY_IMPORT_MAX_ROWS} rows.")
        external_id = (row.get(id_column) or "").strip()
        raw = (row.get(label_column) or "").strip()
        if not external_id or not raw:
            raise ApplicationError(
                f"Line {line}: empty {id_column if not external_id else label_column}.",
                {"line": line},
            )
        if external_id in seen:
            raise ApplicationError(
                f"Line {line}: {external_id!r} already given on line {seen[external_id]}.",
                {"line": line},
            )
        seen[external_id] = line
        entries.append((external_id, [v.strip() for v in raw.split(label_delimiter)]))
    if not entries:
        raise ApplicationError("The gold file has no rows.")
    return entries


def _rows(reader: csv.DictReader) -> Iterator[dict]:
    """The reader's rows; a row the csv module refuses (a cell over its field size limit, which
    is left as it is for the whole process) is an ApplicationError naming its line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The underlying reader's count: DictReader updates its own only after a row.
            raise _unreadable(exc, line=reader.reader.line_num) from None


def _unreadable(exc: csv.Error, *, line: int) -> ApplicationError:
    return ApplicationError(f"Line {line}: the CSV cannot be read ({exc}).", {"line": line})


def gold_file_import(*, project: Project, content: str, **columns) -> int:
    """Parse a gold CSV and mark its items (all or nothing)."""
    entries = gold_file_parse(content=content, **columns)
    try:
        return gold_set(project=project, entries=entries)
    except ApplicationError as exc:
        # Entry numbers are data lines; the header is line 1.
        if "entry" in exc.extra:
            line = exc.extra["entry"] + 1
            message = exc.message.replace(f"Entry {exc.extra['entry']}", f"Line {line}")
            raise ApplicationError(message, {"line": line}) from None
        raise
