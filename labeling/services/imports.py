"""Importing items from CSV, JSON Lines and JSON files, as a resumable background job.

`import_job_create` stores the file (streamed in chunks to ``MEDIA_ROOT/imports/<uuid>.<fmt>``)
and creates a `Job` of kind ``import``; the Celery task `import_items_task` (or the
``import_items`` management command, inline) calls `import_run`, which works in two passes:

1. Validation ("staging") streams the whole file through `labeling.importing.RowValidator`,
   counts its rows (``progress_total``) and writes the valid rows, parsed and hashed, in batches
   of ``settings.IMPORT_BATCH_SIZE`` input rows to a stage file beside the upload
   (``MEDIA_ROOT/imports/job-<id>.copy``, ``marshal`` records), each row already encoded as its
   line of PostgreSQL COPY text (metadata as JSON, escaped), so writing it sends bytes and does
   no per-row work in Python (other paths decode the lines back). A row whose text an earlier
   valid row of the file has is not staged but counted as duplicate content. If any row is bad
   and ``skip_invalid`` is off, the job fails with ``result = {"errors": [first 1000 {row, line,
   field, reason}], "error_count", "invalid", "total_rows"}`` and nothing is written. A file
   that cannot be read to the end fails either way.
2. Writing commits the staged batches one by one, each in one transaction *together with the
   job's cursor* ``{"rows_done": n, <counts>}``. A run that crashes loses at most its open
   batch; the next run skips the staged batches up to the cursor and carries on. The file is
   parsed once per job, not once per attempt (unless the stage file was lost: then again).

Idempotence does not rest on the cursor alone: items are unique on (project, external_id) and
inserted with ``ON CONFLICT DO NOTHING``. Each batch also locks the job row and checks that the
cursor is where this run left it, so when two runs of one job overlap (a message redelivered
while a slow worker still works) the one that falls behind stops with `ImportSuperseded`.

Dedupe, per row, in file order:
- an item with the same external id already in the project: skipped (``skipped_existing_id``);
- an item with the same text (sha256 content hash) in the project, or an earlier row of this
  file with that text: skipped (``skipped_duplicate_content``). Skips are counts, not errors.
  When the project had no items before the job, PostgreSQL skips both database look-ups: the
  file itself is already free of duplicates (ids by validation, texts by staging).
When the file has no id column the id is derived from the content hash (see
`labeling.importing`), so equal texts are "duplicate content" there too.

Writing: into a project that was empty when the job was validated, PostgreSQL COPYs each batch
straight into the item table (falling back to the next path on a clash). Otherwise PostgreSQL
COPYs each batch into a temporary table and inserts from it with
``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING``; other databases (SQLite) use
``bulk_create(ignore_conflicts=True)`` (SQLite's ``BEGIN IMMEDIATE`` serialises writers, so the
existence checks made earlier in the same transaction still hold).

A label column becomes a `Prediction` per item (``source_kind="import"``,
``source_id="import:<file name>"``, ``source_version=<job id>``); with ``labels_are_final`` the
labels are also the item's final labels (lineage ``{"method": "import", "job": id, ...}``) and
the item is done.

New items get their queue priority here: uniform in [0, 1) from the job's ``priority_seed``
(params, drawn when the job is created, and named in the result's ``queue_order``) and the row
number, so the queue never serves file order by accident before any ranking; a project whose
``queue_order`` is ``file`` gets no seed and every new item priority 0 (served by id).

The result of a successful job: ``{"created", "skipped_existing_id", "skipped_duplicate_content",
"invalid", "error_count", "errors", "total_rows", "queue_order"}`` and, in the words the UI
shows, ``{"rows_read", "items_created", "duplicates_merged", "rows_skipped", "skip_reasons"}``.
"""

from __future__ import annotations

import json
import logging
import marshal
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from labeling import copytext
from labeling.errors import ApplicationError, ConflictError, ServiceUnavailable
from labeling.importing import (
    FORMATS,
    ErrorReport,
    ImportFileError,
    Limits,
    Mapping,
    RecordReader,
    RowValidator,
    ValidRow,
    csv_header_errors,
    guess_format,
)
from labeling.models import Item, Job, Prediction, Project
from labeling.services.db import commit_without_flush_wait
from labeling.services.hooks import after_items_imported
from labeling.services.items import project_overlap_apply
from labeling.services.jobs import job_create, job_fail, job_progress, job_start, job_succeed

logger = logging.getLogger(__name__)

_COPY_CHUNK = 1 << 20
_HEARTBEAT_SECONDS = 2.0
_LOOKUP_CHUNK = 2000
_COUNTS = ("created", "skipped_existing_id", "skipped_duplicate_content")


class ImportSuperseded(ConflictError):
    """Another run of the same import job committed past this one; this run stops."""


# ---- creating the job -------------------------------------------------------------------------


def import_job_create(
    *,
    project: Project,
    user: Any = None,
    uploaded_file: Any = None,
    path: str | Path | None = None,
    file_format: str | None = None,
    mapping: dict[str, Any] | None = None,
    skip_invalid: bool = False,
    labels_are_final: bool = False,
    copy_file: bool = True,
    enqueue: bool = True,
) -> Job:
    """Store the file and create a pending import job; the task is enqueued after commit.

    Give either `uploaded_file` (a Django `UploadedFile` or any binary file object) or `path`.
    Both are copied into ``MEDIA_ROOT/imports/`` in chunks, so the job owns an immutable
    snapshot that a worker on another run can resume from. ``copy_file=False`` (the management
    command) reads `path` in place. ``enqueue=False`` leaves running it to the caller
    (`import_run`); `import_job_resume` can still queue it later.
    """
    if (uploaded_file is None) == (path is None):
        raise ApplicationError("Give either an uploaded file or a path.", {"field": "file"})
    if file_format is not None and file_format not in FORMATS:
        raise ApplicationError(
            f"Unknown format '{file_format}'; use one of {', '.join(FORMATS)}.",
            {"field": "format"},
        )
    try:
        parsed_mapping = Mapping.from_dict(mapping)
    except ValueError as exc:
        raise ApplicationError(str(exc), {"field": "mapping"}) from exc

    if uploaded_file is not None:
        original_name = Path(getattr(uploaded_file, "name", "") or "upload").name
        stored = _store_upload(uploaded_file)
        owned = True
    else:
        source = Path(path)  # type: ignore[arg-type]
        if not source.is_file():
            raise ApplicationError(f"No file at {source}.", {"field": "file"})
        original_name = source.name
        if copy_file:
            stored = _store_copy(source)
            owned = True
        else:
            stored, owned = source.resolve(), False

    try:
        with stored.open("rb") as handle:
            head = handle.read(4096)
        if not head:
            raise ApplicationError("The file is empty.", {"field": "file"})
        fmt = file_format or guess_format(original_name, head)
        if fmt is None:
            raise ApplicationError(
                "Cannot tell the file's format; choose csv, jsonl or json.", {"field": "format"}
            )
        if owned:
            stored = stored.rename(stored.with_suffix(f".{fmt}"))
        params = {
            "path": str(stored),
            "format": fmt,
            "mapping": parsed_mapping.as_dict(),
            "skip_invalid": bool(skip_invalid),
            "labels_are_final": bool(labels_are_final),
            "original_name": original_name,
            "owned_file": owned,
            # New items' queue order before any ranking: seeded random (recorded here, so a
            # resumed run writes the same priorities), or file order (all 0, served by id).
            "priority_seed": (
                secrets.randbits(31) if project.queue_order == Project.QueueOrder.RANDOM else None
            ),
        }
        with transaction.atomic():
            job = job_create(
                kind=Job.Kind.IMPORT,
                project=project,
                params=params,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
            if enqueue:
                _enqueue(job.pk)
    except ServiceUnavailable:
        raise  # the job is failed and keeps its file: a manager restarts it later
    except BaseException:
        if owned:
            stored.unlink(missing_ok=True)
        raise
    return job


def _import_dir() -> Path:
    directory = Path(settings.MEDIA_ROOT) / "imports"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


_MULTIPART_ROOM = 64 * 1024


class UploadTooLarge(ApplicationError):
    status_code = 413


def _upload_too_large(cap: int, setting: str = "IMPORT_MAX_UPLOAD_BYTES") -> UploadTooLarge:
    return UploadTooLarge(
        f"The file is larger than {cap} bytes ({setting}).", {"field": "file", "limit": cap}
    )


def upload_too_large_refuse(
    *, content_length: str | int | None, setting: str = "IMPORT_MAX_UPLOAD_BYTES"
) -> None:
    """Refuse a request whose body is over the upload cap (the setting named) before it is
    read (and spooled to a temporary file); the multipart envelope gets a little room on top."""
    cap = int(getattr(settings, setting))
    try:
        length = int(content_length or 0)
    except ValueError:
        return  # Django's own parsing answers a malformed header
    if length > cap + _MULTIPART_ROOM:
        raise _upload_too_large(cap, setting)


def upload_size_check(*, uploaded_file: Any, setting: str) -> None:
    """Refuse an uploaded file over the cap the setting names (413), before it is read."""
    cap = int(getattr(settings, setting))
    size = getattr(uploaded_file, "size", None)
    if isinstance(size, int) and size > cap:
        raise _upload_too_large(cap, setting)


def _store_upload(uploaded_file: Any) -> Path:
    cap = int(settings.IMPORT_MAX_UPLOAD_BYTES)
    size = getattr(uploaded_file, "size", None)
    if isinstance(size, int) and size > cap:
        raise _upload_too_large(cap)
    target = _import_dir() / f"{uuid.uuid4().hex}.part"
    if hasattr(uploaded_file, "chunks"):
        chunks: Iterable[bytes] = uploaded_file.chunks(chunk_size=_COPY_CHUNK)
    else:
        chunks = iter(lambda: uploaded_file.read(_COPY_CHUNK), b"")
    try:
        written = 0
        with target.open("wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > cap:  # a file object that did not tell its size
                    raise _upload_too_large(cap)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _store_copy(source: Path) -> Path:
    target = _import_dir() / f"{uuid.uuid4().hex}.part"
    try:
        shutil.copyfile(source, target)  # streams (sendfile where the OS has it)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _enqueue(job_id: int) -> None:
    """Queue the import task once the current transaction commits (at once outside one)."""
    # Imported here: the task module imports this one.
    from labeling.tasks import import_items_task_enqueue

    transaction.on_commit(lambda: import_items_task_enqueue(job_id=job_id))


# ---- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    job_id: int
    project_id: int
    path: Path
    fmt: str
    mapping: Mapping
    limits: Limits
    labels: tuple[str, ...]
    multi_label: bool
    skip_invalid: bool
    labels_are_final: bool
    original_name: str
    owned_file: bool
    batch_size: int
    priority_seed: int | None  # None: file order (every new item at priority 0)

    def priorities(self, rows: _StagedBatch) -> list[float]:
        """The initial queue priorities of a batch's rows, uniform in [0, 1) from the job's
        seed and each row's number: the same rows get the same values in every run. Below
        every value a ranking writes (>= 10), so a ranking always takes over."""
        if self.priority_seed is None or not rows.rows:
            return [0.0] * len(rows)
        generator = np.random.default_rng([self.priority_seed, rows.rows[0], len(rows)])
        return np.round(generator.random(len(rows)), 9).tolist()

    @property
    def stage_path(self) -> Path:
        # ".copy": rows staged as COPY text. A ".rows" file is an older release's stage file
        # (marshalled row tuples): ignored, so such a job stages its file again.
        return _import_dir() / f"job-{self.job_id}.copy"

    @contextmanager
    def records(self) -> Iterator[tuple[RecordReader, RowValidator]]:
        """The file's records and a fresh validator; raises ImportFileError for a file that
        cannot be read."""
        with self.path.open("rb", buffering=_COPY_CHUNK) as handle:
            reader = RecordReader(
                handle, self.fmt, limits=self.limits, csv_delimiter=self.mapping.delimiter
            )
            if reader.columns is not None:
                problems = csv_header_errors(reader.columns, self.mapping)
                if problems:
                    raise ImportFileError(problems[0])
            validator = RowValidator(
                mapping=self.mapping,
                limits=self.limits,
                labels=self.labels,
                multi_label=self.multi_label,
                columns=reader.columns,
            )
            yield reader, validator


def import_run(*, job_id: int, deadline: float | None = None) -> Job:
    """Run (or resume) an import job; what the Celery task and the management command call.

    Returns the job. It is finished unless `deadline` (a `time.monotonic()` value) passed
    between two batches, in which case it is still running with its cursor committed and the
    caller queues a continuation. A finished job is returned untouched (a redelivered message is
    a no-op). Raises `ImportSuperseded` when another run of the same job has moved on.
    Unexpected exceptions propagate; the caller records them with `import_job_fail`.
    """
    job = job_start(job_id=job_id)
    if job is None:
        return Job.objects.get(pk=job_id)
    if job.kind != Job.Kind.IMPORT or job.project_id is None:
        job_fail(job_id=job_id, error="Not an import job with a project.")
        return Job.objects.get(pk=job_id)

    plan = _plan(job)
    if not plan.path.is_file():
        # The path names the server's folders: the log has it, the job (every member) not.
        logger.error("Import job %s: its file %s is gone", job_id, plan.path)
        job_fail(job_id=job_id, error="The import file is gone; import it again.")
        _remove_files(plan)
        return Job.objects.get(pk=job_id)

    cursor = dict(job.cursor or {})
    validated = bool(cursor.get("validated"))
    if not validated or not plan.stage_path.is_file():
        total, report, fatal = _stage(plan)
        failed = fatal or total == 0 or (report.error_count and not plan.skip_invalid)
        if failed:
            _fail_validation(plan, total=total, report=report, fatal=fatal)
            return Job.objects.get(pk=job_id)
        if not validated:
            marked = _mark_validated(plan, total=total, report=report)
            if marked is None:  # finished meanwhile (cancelled, or by a concurrent run)
                return Job.objects.get(pk=job_id)
            cursor = marked
    return _write(plan, cursor=cursor, deadline=deadline)


def _plan(job: Job) -> _Plan:
    params = job.params
    project = Project.objects.get(pk=job.project_id)
    return _Plan(
        job_id=job.pk,
        project_id=project.pk,
        path=Path(params["path"]),
        fmt=params["format"],
        mapping=Mapping.from_dict(params.get("mapping")),
        limits=Limits(
            max_text_chars=settings.IMPORT_MAX_TEXT_CHARS,
            max_field_chars=settings.IMPORT_MAX_FIELD_CHARS,
            max_id_chars=Item._meta.get_field("external_id").max_length,
            max_columns=settings.IMPORT_MAX_COLUMNS,
        ),
        labels=tuple(project.labels.values_list("value", flat=True)),
        multi_label=project.multi_label,
        skip_invalid=bool(params.get("skip_invalid")),
        labels_are_final=bool(params.get("labels_are_final")),
        original_name=params.get("original_name") or Path(params["path"]).name,
        owned_file=bool(params.get("owned_file")),
        batch_size=max(1, int(settings.IMPORT_BATCH_SIZE)),
        priority_seed=params.get("priority_seed"),
    )


class _Heartbeat:
    """Touch the job's heartbeat (and message) every few seconds during the validation pass,
    so `import_jobs_resume_stale` does not mistake a busy run for a dead one."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.next_at = time.monotonic() + _HEARTBEAT_SECONDS

    def maybe(self, message: str) -> None:
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + _HEARTBEAT_SECONDS
        Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING).update(
            heartbeat_at=timezone.now(), message=message[:500]
        )


def _stage(plan: _Plan) -> tuple[int, ErrorReport, bool]:
    """Pass 1: read and check every row; write the valid ones in batches to the stage file,
    each row already as its line of COPY text (see `_StagedBatch`), so the write pass sends
    bytes without touching a row. Returns (rows, report, fatal). The stage file appears
    complete or not at all; it is skipped once the import is bound to fail."""
    report = ErrorReport()
    heartbeat = _Heartbeat(plan.job_id)
    partial = plan.stage_path.with_name(f"{plan.stage_path.name}.{uuid.uuid4().hex}.part")
    total = batch_start = 0
    batch = _StagedBatch()
    # Texts seen in this file (64-bit string hashes): a later row with the same text is not
    # staged but counted as duplicate content. The first valid row with a text wins.
    texts_seen: set[int] = set()
    batch_size = plan.batch_size
    all_or_nothing = not plan.skip_invalid
    encode = _CopyLineEncoder(plan)
    try:
        with plan.records() as (records, validator), partial.open("wb") as out:
            check = validator.check
            for record in records:
                valid, errors = check(record)
                total = record.row
                if errors:
                    report.add(errors)
                elif valid is not None:
                    text_key = hash(valid.content_hash)
                    if text_key in texts_seen:
                        report.duplicate_content += 1
                    else:
                        texts_seen.add(text_key)
                        batch.add(valid, encode(valid, strict=record.strict))
                if total - batch_start >= batch_size:
                    if not (all_or_nothing and report.error_count):
                        marshal.dump((total, *batch.as_tuple()), out)
                    batch, batch_start = _StagedBatch(), total
                    heartbeat.maybe(f"Checking the file: {total:,} rows read")
            marshal.dump((total, *batch.as_tuple()), out)
            out.flush()
            os.fsync(out.fileno())
    except ImportFileError as exc:
        report.add_fatal(exc.error)
        partial.unlink(missing_ok=True)
        return total, report, True
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if all_or_nothing and report.error_count:
        partial.unlink(missing_ok=True)
    else:
        partial.replace(plan.stage_path)
    return total, report, False


# The columns of a staged line, in order; `_StagedBatch.copy_payload` adds `_TAIL_COLUMNS`.
_LINE_COLUMNS = "external_id, text, metadata, content_hash, status, final_labels, final_lineage"
_TAIL_COLUMNS = (
    "priority, created_at, updated_at, project_id, annotation_count, import_job_id, is_gold"
)


def _json_bytes(value: Any, *, strict: bool) -> bytes:
    """JSON of values that came from `Record.values`: orjson for strict ones (the common case),
    else the json module, which writes what orjson cannot (big integers, NaN) as it always has."""
    if strict:
        return orjson.dumps(value)
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


class _CopyLineEncoder:
    """A valid row as its staged line: the `_LINE_COLUMNS` in COPY text form, without a
    newline. Everything in it is fixed once the file is validated (the final labels and their
    lineage depend only on the job), so a re-staged file gives the same lines."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.unlabeled_tail = b"\t".join(
            (b"", Item.Status.OPEN.encode(), copytext.NULL, copytext.NULL)
        )

    def __call__(self, row: ValidRow, *, strict: bool) -> bytes:
        escape = copytext.escape
        fields = (
            row.external_id.encode(),
            row.text.encode(),
            _json_bytes(row.metadata, strict=strict),
            row.content_hash.encode(),
        )
        head = b"\t".join(fields)
        # Most rows need no escape at all: one look at the joined line instead of one per field.
        if head.count(b"\t") != 3 or b"\\" in head or b"\n" in head or b"\r" in head:
            head = b"\t".join((*map(escape, fields[:3]), fields[3]))
        if not row.labels:
            return head + self.unlabeled_tail
        status, final_labels, lineage = _final_fields(self.plan, row.labels)
        return b"\t".join(
            (
                head,
                status.encode(),
                copytext.NULL
                if final_labels is None
                else escape(json.dumps(final_labels).encode()),
                copytext.NULL if lineage is None else escape(json.dumps(lineage).encode()),
            )
        )


class _StagedBatch:
    """The valid rows of one batch of input rows, as staged: their row numbers, their COPY
    lines (`_CopyLineEncoder`), whether each id was derived from the text, and the labels of
    the labeled ones by position. Written with ``marshal`` as plain lists."""

    __slots__ = ("derived", "labels", "lines", "rows")

    def __init__(
        self,
        rows: list[int] | None = None,
        lines: list[bytes] | None = None,
        derived: list[bool] | None = None,
        labels: dict[int, list[str]] | None = None,
    ) -> None:
        self.rows = rows if rows is not None else []
        self.lines = lines if lines is not None else []
        self.derived = derived if derived is not None else []
        self.labels = labels if labels is not None else {}

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: ValidRow, line: bytes) -> None:
        if row.labels:
            self.labels[len(self.rows)] = row.labels
        self.rows.append(row.row)
        self.lines.append(line)
        self.derived.append(row.id_derived)

    def as_tuple(self) -> tuple[Any, ...]:
        return self.rows, self.lines, self.derived, self.labels

    def subset(self, positions: Iterable[int]) -> _StagedBatch:
        subset = _StagedBatch()
        for position in positions:
            if position in self.labels:
                subset.labels[len(subset.rows)] = self.labels[position]
            subset.rows.append(self.rows[position])
            subset.lines.append(self.lines[position])
            subset.derived.append(self.derived[position])
        return subset

    def keys(self) -> list[tuple[str, str]]:
        """(external_id, content_hash) per row: the two fields the dedupe looks up."""
        keys = []
        for line in self.lines:
            external_id, _, _, content_hash, _ = line.split(b"\t", 4)
            keys.append((_unescaped(external_id), content_hash.decode()))
        return keys

    def labeled(self) -> list[tuple[str, list[str]]]:
        """(external_id, labels) of the labeled rows."""
        return [
            (_unescaped(self.lines[position].split(b"\t", 1)[0]), labels)
            for position, labels in self.labels.items()
        ]

    def valid_rows(self) -> list[ValidRow]:
        """The rows decoded back (for the ORM path)."""
        rows = []
        for position, line in enumerate(self.lines):
            external_id, text, metadata, content_hash = line.split(b"\t", 4)[:4]
            rows.append(
                ValidRow(
                    row=self.rows[position],
                    external_id=_unescaped(external_id),
                    text=_unescaped(text),
                    content_hash=content_hash.decode(),
                    labels=self.labels.get(position, []),
                    metadata=json.loads(_unescaped(metadata)),
                    id_derived=self.derived[position],
                )
            )
        return rows

    def copy_payload(self, tail: bytes, priorities: list[float] | None = None) -> bytes:
        """The rows as one block of COPY text, each line followed by its priority (when
        `priorities` is given) and `tail` (its last columns and the newline)."""
        if not self.lines:
            return b""
        if priorities is None:
            return tail.join(self.lines) + tail
        return b"".join(
            b"%b\t%r%b" % (line, priority, tail)
            for line, priority in zip(self.lines, priorities, strict=True)
        )


def _unescaped(field: bytes) -> str:
    value = copytext.unescape(field)
    assert value is not None
    return value.decode()


def _staged_batches(plan: _Plan, *, after_row: int) -> Iterator[tuple[int, _StagedBatch]]:
    """(last_row, rows) per staged batch, leaving out rows up to `after_row` (committed)."""
    with plan.stage_path.open("rb", buffering=_COPY_CHUNK) as staged:
        while True:
            try:
                last_row, *columns = marshal.load(staged)
            except EOFError:
                return
            if last_row <= after_row:
                continue
            batch = _StagedBatch(*columns)
            if batch.rows and batch.rows[0] <= after_row:
                # Only when the file was staged again with another batch size.
                batch = batch.subset(i for i, row in enumerate(batch.rows) if row > after_row)
            yield last_row, batch


def _fail_validation(plan: _Plan, *, total: int, report: ErrorReport, fatal: bool) -> None:
    if fatal:
        first = report.errors[-1] if report.errors else None
        error = f"The file cannot be read: {first.reason if first else 'unknown problem'}"
    elif total == 0:
        error = "The file has no data rows."
    else:
        first = report.errors[0]
        where = f"row {first.row}" + (f" (line {first.line})" if first.line else "")
        error = (
            f"{report.error_count} problem(s) in {report.invalid_rows} of {total} rows; nothing "
            f"was imported. First: {where}, {first.field or 'row'}: {first.reason}. Fix the file, "
            "or import again skipping invalid rows."
        )
    job_fail(job_id=plan.job_id, error=error, result={"created": 0, **_report_dict(report, total)})
    _remove_files(plan)


def _report_dict(report: ErrorReport, total: int) -> dict[str, Any]:
    return {
        "invalid": report.invalid_rows,
        "error_count": report.error_count,
        "errors": report.as_dicts(),
        "total_rows": total,
    }


def _locked_job(plan: _Plan, *, rows_done: int | None) -> Job | None:
    """The job row, locked for this transaction; None if it finished meanwhile. Raises
    ImportSuperseded if `rows_done` is given and the cursor is elsewhere."""
    job = Job.objects.select_for_update().get(pk=plan.job_id)
    if job.is_finished:
        return None
    if rows_done is not None and int(job.cursor.get("rows_done", 0)) != rows_done:
        raise ImportSuperseded(
            f"Import job #{job.pk} was continued by another run (at row "
            f"{job.cursor.get('rows_done')}, this run expected {rows_done}).",
            {"job": job.pk},
        )
    return job


def _mark_validated(plan: _Plan, *, total: int, report: ErrorReport) -> dict[str, Any] | None:
    """Record the row count and the validation report (kept in `result` until the end)."""
    with transaction.atomic():
        job = _locked_job(plan, rows_done=None)
        if job is None:
            return None
        if job.cursor.get("validated"):  # a concurrent run got here first
            return dict(job.cursor)
        cursor = {
            "validated": True,
            "rows_done": 0,
            "created": 0,
            "skipped_existing_id": 0,
            "skipped_duplicate_content": report.duplicate_content,
            "project_was_empty": not Item.objects.filter(project_id=plan.project_id).exists(),
        }
        job.result = _report_dict(report, total)
        job.save(update_fields=["result"])
        job_progress(
            job=job, done=0, total=total, cursor=cursor, message=f"Importing {total:,} rows"
        )
    return cursor


def _write(plan: _Plan, *, cursor: dict[str, Any], deadline: float | None) -> Job:
    """Pass 2: commit the staged batches, each with the cursor; then finish the job."""
    rows_done = int(cursor.get("rows_done", 0))
    counts = {key: int(cursor.get(key, 0)) for key in _COUNTS}
    for last_row, batch in _staged_batches(plan, after_row=rows_done):
        job = _commit(plan, batch, before=rows_done, after=last_row, counts=counts)
        if job is None:
            return Job.objects.get(pk=plan.job_id)
        rows_done = last_row
        if deadline is not None and time.monotonic() > deadline:
            Job.objects.filter(pk=plan.job_id).update(
                message=f"Paused after row {rows_done:,}; a new task continues"
            )
            job.refresh_from_db()
            return job
    job = _commit(
        plan, _StagedBatch(), before=rows_done, after=rows_done, counts=counts, finish=True
    )
    if job is None:
        return Job.objects.get(pk=plan.job_id)
    _remove_files(plan)
    return job


def _commit(
    plan: _Plan,
    rows: _StagedBatch,
    *,
    before: int,
    after: int,
    counts: dict[str, int],
    finish: bool = False,
) -> Job | None:
    """Write one batch and move the cursor from `before` to `after`, in one transaction; with
    `finish`, also mark the job succeeded. Updates `counts` once committed. None if someone
    else finished the job (e.g. cancelled it)."""
    with transaction.atomic():
        if not finish:
            # A batch and the cursor that records it commit together, so a commit lost in a
            # database crash loses both and the job redoes that batch: consistent without
            # waiting for each batch's WAL flush. The final commit waits, and with it every
            # earlier one (the WAL is flushed in order).
            commit_without_flush_wait()
        job = _locked_job(plan, rows_done=before)
        if job is None:
            return None
        created, skipped_id, skipped_content = _write_batch(
            plan, rows, project_was_empty=bool(job.cursor.get("project_was_empty"))
        )
        new_counts = {
            "created": counts["created"] + created,
            "skipped_existing_id": counts["skipped_existing_id"] + skipped_id,
            "skipped_duplicate_content": counts["skipped_duplicate_content"] + skipped_content,
        }
        job_progress(
            job=job,
            done=after,
            cursor={**job.cursor, "rows_done": after, **new_counts},
            message=f"{after:,} of {job.progress_total or after:,} rows: "
            f"{new_counts['created']:,} items created",
        )
        if finish:
            result = {**(job.result or {}), **new_counts}  # the validation report, then counts
            result.setdefault("total_rows", after)
            result["queue_order"] = (
                "file" if plan.priority_seed is None else f"random (seed {plan.priority_seed})"
            )
            result.update(_outcome(result))
            job_succeed(job=job, result=result, message=_summary(result))
            project = Project.objects.get(pk=plan.project_id)
            if project.overlap_fraction < 1 and project.annotations_per_item > 1:
                project_overlap_apply(project=project)
            after_items_imported(project=project, job_id=job.pk)
    counts.update(new_counts)
    return job


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    """What became of the file's rows, in the words the UI shows: every row read is an item
    created, a duplicate merged into an item with the same text, or skipped with its reason
    (its id is already in the project, or it is invalid)."""
    reasons = {
        "id already in the project": int(result.get("skipped_existing_id", 0)),
        "invalid (see the report)": int(result.get("invalid", 0)),
    }
    return {
        "rows_read": int(result["total_rows"]),
        "items_created": int(result["created"]),
        "duplicates_merged": int(result.get("skipped_duplicate_content", 0)),
        "rows_skipped": sum(reasons.values()),
        "skip_reasons": {reason: n for reason, n in reasons.items() if n},
    }


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _summary(result: dict[str, Any]) -> str:
    outcome = _outcome(result)
    parts = [_plural(outcome["items_created"], "item") + " created"]
    if outcome["duplicates_merged"]:
        parts.append(
            _plural(outcome["duplicates_merged"], "duplicate")
            + " merged (same text as an item or an earlier row)"
        )
    if result.get("skipped_existing_id"):
        parts.append(
            _plural(result["skipped_existing_id"], "row") + " skipped (id already in the project)"
        )
    if result.get("invalid"):
        parts.append(f"{_plural(result['invalid'], 'invalid row')} skipped")
    return f"{_plural(outcome['rows_read'], 'row')} read: " + "; ".join(parts) + "."


def _remove_files(plan: _Plan) -> None:
    """The stage file always (an older release's too); the uploaded copy if the job owns it."""
    plan.stage_path.unlink(missing_ok=True)
    plan.stage_path.with_suffix(".rows").unlink(missing_ok=True)
    if plan.owned_file:
        plan.path.unlink(missing_ok=True)


# ---- writing one batch ------------------------------------------------------------------------


def _write_batch(
    plan: _Plan, rows: _StagedBatch, *, project_was_empty: bool
) -> tuple[int, int, int]:
    """Insert the rows that are new; returns (created, skipped_existing_id,
    skipped_duplicate_content). Call inside the batch's transaction.

    The staged rows are unique by id and by text within the file already, so when the project
    had no items before this job, PostgreSQL skips the two look-ups: the only possible clash is
    with this job's own rows (a re-run), which ON CONFLICT absorbs and RETURNING counts."""
    if not len(rows):
        return 0, 0, 0
    postgres = connection.vendor == "postgresql"
    if project_was_empty and postgres:
        fresh, skipped_id, skipped_content = rows, 0, 0
    else:
        fresh, skipped_id, skipped_content = _classify(plan, rows)
    if not len(fresh):
        return 0, skipped_id, skipped_content
    created, item_ids = None, {}
    if project_was_empty and postgres:
        created, item_ids = _copy_items_postgres(plan, fresh)
    if created is None:
        insert = _insert_items_postgres if postgres else _insert_items_orm
        item_ids = insert(plan, fresh)
        created = len(item_ids)
    # Rows that lost a race with a concurrent writer of the same id were not created.
    skipped_id += len(fresh) - created
    labeled = [
        (item_ids[external_id], labels)
        for external_id, labels in fresh.labeled()
        if external_id in item_ids
    ]
    if labeled:
        _insert_predictions(plan, labeled)
    return created, skipped_id, skipped_content


def _classify(plan: _Plan, rows: _StagedBatch) -> tuple[_StagedBatch, int, int]:
    """(rows to insert, skipped for an existing id, skipped for existing text), in file order."""
    keys = rows.keys()
    existing_ids = _existing(plan.project_id, "external_id", [k[0] for k in keys])
    existing_hashes = _existing(plan.project_id, "content_hash", [k[1] for k in keys])
    fresh: list[int] = []
    skipped_id = skipped_content = 0
    for position, (external_id, text_hash) in enumerate(keys):
        # A derived id *is* the content, so for those rows "same text" is the better reason.
        if not rows.derived[position] and external_id in existing_ids:
            skipped_id += 1
        elif text_hash in existing_hashes:
            skipped_content += 1
        elif external_id in existing_ids:
            skipped_id += 1
        else:
            existing_ids.add(external_id)
            existing_hashes.add(text_hash)
            fresh.append(position)
    return rows.subset(fresh), skipped_id, skipped_content


def _existing(project_id: int, column: str, values: list[str]) -> set[str]:
    unique = list(dict.fromkeys(values))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT "{column}" FROM "{Item._meta.db_table}" '
                f'WHERE "project_id" = %s AND "{column}" = ANY(%s)',
                [project_id, unique],
            )
            return {value for (value,) in cursor.fetchall()}
    found: set[str] = set()
    for start in range(0, len(unique), _LOOKUP_CHUNK):
        chunk = unique[start : start + _LOOKUP_CHUNK]
        found.update(
            Item.objects.filter(project_id=project_id, **{f"{column}__in": chunk}).values_list(
                column, flat=True
            )
        )
    return found


def _final_fields(plan: _Plan, labels: list[str]) -> tuple[str, list[str] | None, dict | None]:
    if plan.labels_are_final and labels:
        lineage = {"method": "import", "job": plan.job_id, "file": plan.original_name}
        return Item.Status.DONE, labels, lineage
    return Item.Status.OPEN, None, None


_PG_TEMP_TABLE = "flywheel_import_rows"


def _copy_tail(plan: _Plan, now: Any) -> bytes:
    """The `_TAIL_COLUMNS` of every row of a batch, in COPY text, with the newline."""
    stamp = now.isoformat()
    return f"\t{stamp}\t{stamp}\t{plan.project_id}\t0\t{plan.job_id}\tf\n".encode()


def _copy_items_postgres(plan: _Plan, rows: _StagedBatch) -> tuple[int | None, dict[str, int]]:
    """The fast path into a project that was empty when the job started: COPY the staged lines
    straight into the item table inside a savepoint. Returns (created, {external_id: id} of the
    labeled rows), or (None, {}) if any row clashed with an existing item (a concurrent writer
    of the same ids), after which the caller takes the ON CONFLICT path for this batch."""
    table = Item._meta.db_table
    payload = rows.copy_payload(_copy_tail(plan, timezone.now()), plan.priorities(rows))
    # COPY is psycopg's own call, outside Django's error wrapping: catch both forms.
    clash = (IntegrityError, connection.Database.IntegrityError)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.copy(
                f'COPY "{table}" ({_LINE_COLUMNS}, {_TAIL_COLUMNS}) FROM STDIN'
            ) as copy:
                copy.write(payload)
            labeled = [external_id for external_id, _ in rows.labeled()]
            ids: dict[str, int] = {}
            if labeled:
                cursor.execute(
                    f'SELECT external_id, id FROM "{table}" WHERE project_id = %s '
                    "AND external_id = ANY(%s)",
                    [plan.project_id, labeled],
                )
                ids = dict(cursor.fetchall())
    except clash:
        return None, {}
    return len(rows), ids


def _insert_items_postgres(plan: _Plan, rows: _StagedBatch) -> dict[str, int]:
    """COPY the staged lines into a temporary table, then one INSERT ... SELECT ... ON CONFLICT
    DO NOTHING. Returns {external_id: item id} of the rows actually inserted."""
    table = Item._meta.db_table
    now = timezone.now()
    with connection.cursor() as cursor:
        # `ord` numbers the rows in COPY order, which is file order.
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_PG_TEMP_TABLE} (ord bigserial, external_id text, "
            "text text, metadata jsonb, content_hash text, status text, final_labels jsonb, "
            "final_lineage jsonb, priority double precision) ON COMMIT DROP"
        )
        with cursor.copy(f"COPY {_PG_TEMP_TABLE} ({_LINE_COLUMNS}, priority) FROM STDIN") as copy:
            copy.write(rows.copy_payload(b"\n", plan.priorities(rows)))
        cursor.execute(
            f'INSERT INTO "{table}" (created_at, updated_at, project_id, external_id, text, '
            "metadata, content_hash, priority, status, annotation_count, final_labels, "
            "final_confidence, final_lineage, import_job_id, is_gold) "
            "SELECT %s, %s, %s, t.external_id, t.text, t.metadata, t.content_hash, t.priority, "
            "t.status, "
            f"0, t.final_labels, NULL, t.final_lineage, %s, false FROM {_PG_TEMP_TABLE} t "
            "ORDER BY t.ord "
            "ON CONFLICT (project_id, external_id) DO NOTHING RETURNING external_id, id",
            [now, now, plan.project_id, plan.job_id],
        )
        inserted = dict(cursor.fetchall())
        # Dropped here too: inside an outer transaction the batch is only a savepoint.
        cursor.execute(f"DROP TABLE {_PG_TEMP_TABLE}")
        return inserted


def _insert_items_orm(plan: _Plan, rows: _StagedBatch) -> dict[str, int]:
    items = []
    valid_rows = rows.valid_rows()
    for row, priority in zip(valid_rows, plan.priorities(rows), strict=True):
        status, final_labels, lineage = _final_fields(plan, row.labels)
        items.append(
            Item(
                project_id=plan.project_id,
                external_id=row.external_id,
                text=row.text,
                metadata=row.metadata,
                content_hash=row.content_hash,
                status=status,
                final_labels=final_labels,
                final_lineage=lineage,
                import_job_id=plan.job_id,
                priority=priority,
            )
        )
    Item.objects.bulk_create(items, ignore_conflicts=True)
    ids: dict[str, int] = {}
    external_ids = [row.external_id for row in valid_rows]
    for start in range(0, len(external_ids), _LOOKUP_CHUNK):
        ids.update(
            Item.objects.filter(
                project_id=plan.project_id,
                import_job_id=plan.job_id,
                external_id__in=external_ids[start : start + _LOOKUP_CHUNK],
            ).values_list("external_id", "id")
        )
    return ids


def _insert_predictions(plan: _Plan, labeled: list[tuple[int, list[str]]]) -> None:
    """One import prediction per new item (new items cannot have one yet: no conflicts)."""
    source_id = f"import:{plan.original_name}"[:255]
    version = str(plan.job_id)
    if connection.vendor == "postgresql":
        now = timezone.now()
        with (
            connection.cursor() as cursor,
            cursor.copy(
                f'COPY "{Prediction._meta.db_table}" (item_id, project_id, source_kind, source_id, '
                "source_version, labels, confidence, scores, details, created_at) FROM STDIN"
            ) as copy,
        ):
            for item_id, labels in labeled:
                copy.write_row(
                    (
                        item_id,
                        plan.project_id,
                        Prediction.SourceKind.IMPORT.value,
                        source_id,
                        version,
                        json.dumps(labels),
                        None,
                        None,
                        "{}",
                        now,
                    )
                )
        return
    Prediction.objects.bulk_create(
        [
            Prediction(
                item_id=item_id,
                project_id=plan.project_id,
                source_kind=Prediction.SourceKind.IMPORT,
                source_id=source_id,
                source_version=version,
                labels=labels,
                confidence=None,
            )
            for item_id, labels in labeled
        ],
        ignore_conflicts=True,
    )


def import_job_fail(*, job_id: int, exc: BaseException) -> None:
    """Record an unexpected exception on the job (for the task and the management command,
    which see exceptions that `import_run` lets through): a short reason that every member may
    read, never a traceback or a server path; the traceback goes to the log."""
    from labeling.jobtasks import job_failure_text

    logger.error("Import job %s failed", job_id, exc_info=exc)
    job_fail(job_id=job_id, error=job_failure_text(exc))
