"""The import service: job creation, validation report, all-or-nothing, skipping, dedupe, labels,
resuming from the cursor, the Celery task and the management commands. Runs on SQLite and on
PostgreSQL (the COPY path)."""

import hashlib
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db.models import Count

import labeling.services.imports as imports
from labeling.errors import ApplicationError
from labeling.models import Item, Job, Prediction
from labeling.services.imports import (
    ImportSuperseded,
    import_job_create,
    import_run,
)
from labeling.tasks import import_items_task
from tests.factories import ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.IMPORT_BATCH_SIZE = 3
    return settings.MEDIA_ROOT


@pytest.fixture
def queued(monkeypatch, settings):
    """Record task messages instead of sending them to a broker."""
    sent = []

    def apply_async(args, **options):
        assert options["queue"] == settings.QUEUE_IMPORT
        sent.append(args[0])

    monkeypatch.setattr(import_items_task, "apply_async", apply_async)
    return sent


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(*rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def run_import(project, path, **kwargs) -> Job:
    job = import_job_create(project=project, path=path, enqueue=False, **kwargs)
    return import_run(job_id=job.pk)


def items(project):
    return dict(Item.objects.filter(project=project).values_list("external_id", "text"))


# ---- creating the job --------------------------------------------------------------------


def test_upload_is_stored_in_media_and_the_task_is_queued_after_commit(
    project, manager, media, queued, django_capture_on_commit_callbacks
):
    # given an uploaded CSV
    upload = SimpleUploadedFile("reviews.csv", b"id,text\n1,Good\n2,Bad\n")

    # when a manager starts an import
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = import_job_create(
            project=project, user=manager, uploaded_file=upload, mapping={"text": "text"}
        )

    # then the file was copied under MEDIA_ROOT/imports with the format as extension, the job
    # carries its parameters, and exactly one task message went out once committed
    stored = Path(job.params["path"])
    assert stored.parent == media / "imports"
    assert stored.suffix == ".csv"
    assert stored.read_bytes() == b"id,text\n1,Good\n2,Bad\n"
    assert job.kind == Job.Kind.IMPORT
    assert job.status == Job.Status.PENDING
    assert job.created_by == manager
    assert job.params["format"] == "csv"
    assert job.params["original_name"] == "reviews.csv"
    assert job.params["skip_invalid"] is False
    assert len(callbacks) == 1
    assert queued == [job.pk]


def test_format_is_sniffed_when_the_name_does_not_tell(project, queued):
    upload = SimpleUploadedFile("upload.bin", b'[{"text": "a"}]')

    job = import_job_create(project=project, uploaded_file=upload)

    assert job.params["format"] == "json"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"uploaded_file": SimpleUploadedFile("a.csv", b"")}, "The file is empty."),
        ({"uploaded_file": SimpleUploadedFile("a.csv", b"x"), "file_format": "xml"}, "Unknown"),
        ({"uploaded_file": SimpleUploadedFile("a.csv", b"x"), "mapping": {"txt": "a"}}, "Unknown"),
        ({"path": "/nonexistent/file.csv"}, "No file at"),
        ({}, "Give either an uploaded file or a path."),
    ],
)
def test_bad_requests_are_refused_and_leave_no_file(project, media, queued, kwargs, message):
    with pytest.raises(ApplicationError, match=message):
        import_job_create(project=project, **kwargs)

    assert not Job.objects.exists()
    assert not list((media / "imports").glob("*")) if (media / "imports").exists() else True
    assert queued == []


# ---- formats, mapping, metadata ----------------------------------------------------------


def test_csv_import_maps_columns_and_keeps_the_rest_as_metadata(project, tmp_path, media):
    path = write(
        tmp_path,
        "news.csv",
        "doc_id;body;section;year\nn1;Markets rise;business;2004\nn2;Team wins;sport;2005\n",
    )

    job = run_import(project, path, mapping={"text": "body", "id": "doc_id"})

    assert job.status == Job.Status.SUCCEEDED, job.error
    item = Item.objects.get(project=project, external_id="n1")
    assert item.text == "Markets rise"
    assert item.metadata == {"section": "business", "year": "2004"}
    assert item.content_hash == hashlib.sha256(b"Markets rise").hexdigest()
    assert item.import_job_id == job.pk
    assert item.status == Item.Status.OPEN
    assert job.result == {
        "created": 2,
        "skipped_existing_id": 0,
        "skipped_duplicate_content": 0,
        "invalid": 0,
        "error_count": 0,
        "errors": [],
        "total_rows": 2,
        "queue_order": f"random (seed {job.params['priority_seed']})",
        "rows_read": 2,
        "items_created": 2,
        "duplicates_merged": 0,
        "rows_skipped": 0,
        "skip_reasons": {},
    }
    assert (job.progress_done, job.progress_total, job.percent) == (2, 2, 100)
    # the job's copy and its stage file are removed once it is done
    assert list((media / "imports").iterdir()) == []


def test_jsonl_and_json_imports(project, tmp_path):
    rows = [
        {"id": "a", "text": "First", "metadata": {"source": "bbc"}, "score": 0.5},
        {"id": "b", "text": "Second", "tags": ["x", "y"]},
    ]
    lines = write(tmp_path, "rows.jsonl", jsonl(*rows))
    array = write(tmp_path, "rows.json", json.dumps({"items": rows}, indent=2))
    other = ProjectFactory()

    first = run_import(project, lines)
    second = run_import(other, array)

    for job, target in ((first, project), (second, other)):
        assert job.status == Job.Status.SUCCEEDED, job.error
        metadata = dict(Item.objects.filter(project=target).values_list("external_id", "metadata"))
        assert metadata == {"a": {"source": "bbc", "score": 0.5}, "b": {"tags": ["x", "y"]}}


def test_file_without_id_column_gets_ids_from_the_text(project, tmp_path):
    path = write(tmp_path, "texts.csv", "text\nalpha\nbeta\nalpha\n")

    job = run_import(project, path)

    sha = hashlib.sha256(b"alpha").hexdigest()
    assert items(project) == {
        f"sha256:{sha[:20]}": "alpha",
        "sha256:" + hashlib.sha256(b"beta").hexdigest()[:20]: "beta",
    }
    assert job.result["created"] == 2
    assert job.result["skipped_duplicate_content"] == 1

    # and importing the same file again creates nothing
    again = run_import(project, path)
    assert again.result["created"] == 0
    assert Item.objects.filter(project=project).count() == 2


# ---- validation ----------------------------------------------------------------------------

BAD_FILE = (
    "id,text,label\n"
    "1,Fine,pos\n"  # row 1, line 2
    "2,,neg\n"  # row 2: missing text
    "1,Again,neg\n"  # row 3: duplicate id
    "4,Fine too,maybe\n"  # row 4: unknown label
    "5,Last one,\n"  # row 5
)


def test_any_bad_row_fails_the_job_and_imports_nothing(project, tmp_path, media):
    path = write(tmp_path, "bad.csv", BAD_FILE)

    job = run_import(project, path, mapping={"label": "label"})

    assert job.status == Job.Status.FAILED
    assert not Item.objects.filter(project=project).exists()
    assert not Prediction.objects.exists()
    assert job.result["errors"] == [
        {"row": 2, "line": 3, "field": "text", "reason": "missing text (empty)"},
        {"row": 3, "line": 4, "field": "id", "reason": "duplicate id '1': an earlier row has it"},
        {
            "row": 4,
            "line": 5,
            "field": "label",
            "reason": "unknown label 'maybe'; the project's labels are: neg, neutral, pos",
        },
    ]
    assert (job.result["error_count"], job.result["invalid"], job.result["created"]) == (3, 3, 0)
    assert job.error.startswith("3 problem(s) in 3 of 5 rows; nothing was imported.")
    assert "row 2 (line 3), text: missing text (empty)" in job.error
    assert job.finished_at is not None
    assert list((media / "imports").iterdir()) == []


def test_skip_invalid_imports_the_good_rows_and_reports_the_rest(project, tmp_path):
    path = write(tmp_path, "bad.csv", BAD_FILE)

    job = run_import(project, path, mapping={"label": "label"}, skip_invalid=True)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert items(project) == {"1": "Fine", "5": "Last one"}
    assert job.result["created"] == 2
    assert job.result["invalid"] == 3
    assert [(e["row"], e["field"]) for e in job.result["errors"]] == [
        (2, "text"),
        (3, "id"),
        (4, "label"),
    ]
    assert "3 invalid rows skipped" in job.message
    assert job.message.startswith("5 rows read: 2 items created")
    assert job.result["rows_read"] == 5
    assert job.result["items_created"] == 2
    assert job.result["rows_skipped"] == 3
    assert job.result["skip_reasons"] == {"invalid (see the report)": 3}


def test_invalid_utf8_and_over_long_fields_are_reported(project, tmp_path, settings):
    settings.IMPORT_MAX_TEXT_CHARS = 10
    settings.IMPORT_MAX_FIELD_CHARS = 5
    path = write(
        tmp_path,
        "enc.jsonl",
        b'{"id": "1", "text": "caf\xe9"}\n{"id": "2", "text": "01234567890"}\n'
        b'{"id": "3", "text": "ok", "note": "123456"}\n{"id": "4", "text": broken\n',
    )

    job = run_import(project, path)

    assert job.status == Job.Status.FAILED
    assert [(e["row"], e["field"], e["reason"]) for e in job.result["errors"]] == [
        (1, "text", "text has invalid UTF-8"),
        (2, "text", "text is 11 characters long; the limit is 10"),
        (3, "note", "field is 6 characters long; the limit is 5"),
        (4, None, "Malformed JSON: Expecting value at column 21."),
    ]


def test_unreadable_file_fails_even_with_skip_invalid(project, tmp_path):
    path = write(tmp_path, "broken.json", '[{"text": "a"}, {"text": ')

    job = run_import(project, path, skip_invalid=True)

    assert job.status == Job.Status.FAILED
    assert job.error.startswith("The file cannot be read: Malformed JSON element")
    assert not Item.objects.filter(project=project).exists()


def test_csv_header_without_the_text_column_fails_clearly(project, tmp_path):
    path = write(tmp_path, "x.csv", "id,body\n1,hello\n")

    job = run_import(project, path)

    assert job.status == Job.Status.FAILED
    assert job.result["errors"] == [
        {
            "row": None,
            "line": 1,
            "field": "text",
            "reason": "The text column 'text' is not in the header (columns: 'id', 'body').",
        }
    ]


def test_file_with_no_rows_fails(project, tmp_path):
    job = run_import(project, write(tmp_path, "empty.csv", "id,text\n"))

    assert job.status == Job.Status.FAILED
    assert job.error == "The file has no data rows."


# ---- dedupe --------------------------------------------------------------------------------


def test_dedupe_by_external_id_and_by_content(project, tmp_path):
    # given items already in the project
    ItemFactory(project=project, external_id="old-1", text="Original text")
    ItemFactory(project=project, external_id="old-2", text="Known text")
    path = write(
        tmp_path,
        "more.jsonl",
        jsonl(
            {"id": "old-1", "text": "A new text for an old id"},  # existing id
            {"id": "new-1", "text": "Known text"},  # existing content
            {"id": "new-2", "text": "Fresh"},
            {"id": "new-3", "text": "Fresh"},  # same text as row 3
            {"id": "new-4", "text": "Fresher"},
        ),
    )

    job = run_import(project, path)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert items(project) == {
        "old-1": "Original text",
        "old-2": "Known text",
        "new-2": "Fresh",
        "new-4": "Fresher",
    }
    assert job.result["created"] == 2
    assert job.result["skipped_existing_id"] == 1
    assert job.result["skipped_duplicate_content"] == 2
    assert job.result["errors"] == []  # skips are not errors


def test_dedupe_does_not_cross_projects(project, tmp_path):
    ItemFactory(project=ProjectFactory(), external_id="1", text="Shared")

    job = run_import(project, write(tmp_path, "a.csv", "id,text\n1,Shared\n"))

    assert job.result["created"] == 1


# ---- labels ----------------------------------------------------------------------------------


def test_label_column_becomes_an_import_prediction(project, tmp_path):
    path = write(tmp_path, "gold.csv", "id,text,gold\n1,Nice,pos\n2,Awful,neg\n3,Unsure,\n")

    job = run_import(project, path, mapping={"label": "gold"})

    predictions = Prediction.objects.filter(project=project).order_by("item__external_id")
    assert [(p.item.external_id, p.labels) for p in predictions] == [("1", ["pos"]), ("2", ["neg"])]
    first = predictions[0]
    assert first.source_kind == Prediction.SourceKind.IMPORT
    assert first.source_id == "import:gold.csv"
    assert first.source_version == str(job.pk)
    assert first.confidence is None
    # suggestions only: the items stay open and carry no final label
    assert set(Item.objects.values_list("status", flat=True)) == {Item.Status.OPEN}
    assert not Item.objects.filter(final_labels__isnull=False).exists()
    # the label column is not copied into metadata
    assert Item.objects.get(external_id="1").metadata == {}


def test_labels_are_final_finishes_the_items(project, tmp_path):
    path = write(tmp_path, "gold.csv", "id,text,label\n1,Nice,pos\n2,Unsure,\n")

    job = run_import(project, path, mapping={"label": "label"}, labels_are_final=True)

    labeled = Item.objects.get(external_id="1")
    assert labeled.status == Item.Status.DONE
    assert labeled.final_labels == ["pos"]
    assert labeled.final_lineage == {"method": "import", "job": job.pk, "file": "gold.csv"}
    assert Prediction.objects.filter(item=labeled, source_kind="import").exists()
    unlabeled = Item.objects.get(external_id="2")
    assert (unlabeled.status, unlabeled.final_labels) == (Item.Status.OPEN, None)


def test_multi_label_project_accepts_lists_and_delimited_labels(tmp_path):
    project = ProjectFactory(multi_label=True, labels=["sport", "politics", "tech"])
    path = write(
        tmp_path,
        "multi.jsonl",
        jsonl(
            {"id": "1", "text": "a", "tags": ["sport", "politics"]},
            {"id": "2", "text": "b", "tags": "tech|sport"},
            {"id": "3", "text": "c", "tags": '["politics"]'},
        ),
    )

    job = run_import(project, path, mapping={"label": "tags"})

    assert job.status == Job.Status.SUCCEEDED, job.error
    labels = dict(Prediction.objects.values_list("item__external_id", "labels"))
    assert labels == {"1": ["sport", "politics"], "2": ["tech", "sport"], "3": ["politics"]}


# ---- idempotence and resuming ---------------------------------------------------------------


def test_running_a_finished_job_again_changes_nothing(project, tmp_path):
    job = run_import(project, write(tmp_path, "a.csv", "id,text\n1,a\n2,b\n"))
    before = (job.status, job.attempts, job.result, job.finished_at)

    again = import_run(job_id=job.pk)

    assert (again.status, again.attempts, again.result, again.finished_at) == before
    assert Item.objects.filter(project=project).count() == 2


ROWS = 14  # with batches of 3: five batches, the last one short


@pytest.fixture
def numbered(tmp_path):
    """14 rows with ids r0..r13; r6 and r12 repeat the text of r1 (duplicate content)."""
    rows = [{"id": f"r{n}", "text": f"text {n}"} for n in range(ROWS)]
    rows[6]["text"] = rows[12]["text"] = "text 1"
    return write(tmp_path, "numbered.jsonl", jsonl(*rows))


def crash_on_batch(monkeypatch, number):
    """Make the `number`-th batch write die mid-transaction, like a killed worker."""
    real = imports._write_batch
    calls = {"n": 0}

    def flaky(plan, rows, **kwargs):
        calls["n"] += 1
        if calls["n"] == number:
            real(plan, rows, **kwargs)  # the rows are written, then the process "dies"
            raise KeyboardInterrupt("worker killed")
        return real(plan, rows, **kwargs)

    monkeypatch.setattr(imports, "_write_batch", flaky)


def assert_complete(project, job):
    ids = list(Item.objects.filter(project=project).values_list("external_id", flat=True))
    expected = {f"r{n}" for n in range(ROWS)} - {"r6", "r12"}
    assert sorted(ids) == sorted(expected)  # every row once, none twice
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["created"] == 12
    assert job.result["skipped_duplicate_content"] == 2
    assert job.result["skipped_existing_id"] == 0


def test_resume_after_a_crash_continues_from_the_cursor(project, numbered, monkeypatch):
    # given an import that dies while writing its third batch
    job = import_job_create(project=project, path=numbered, enqueue=False)
    crash_on_batch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        import_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert job.cursor["rows_done"] == 6
    assert (job.progress_done, job.progress_total) == (6, ROWS)
    assert Item.objects.filter(project=project).count() == 6  # batches 1-2; batch 3 rolled back

    # when the job is run again (a new worker)
    monkeypatch.undo()
    job = import_run(job_id=job.pk)

    # then it completes with every row once
    assert_complete(project, job)
    assert job.attempts == 2


def test_rerun_with_a_lost_cursor_still_creates_no_duplicates(project, numbered):
    # given a finished import whose job is put back to running at row 0 (cursor lost)
    job = run_import(project, numbered, copy_file=False)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        cursor={**job.cursor, "rows_done": 0, "created": 0, "skipped_duplicate_content": 2},
    )

    # when it runs again
    job = import_run(job_id=job.pk)

    # then ON CONFLICT keeps every item once; the rows count as already there
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert Item.objects.filter(project=project).count() == 12
    assert not Item.objects.values("external_id").annotate(n=Count("id")).filter(n__gt=1)
    assert job.result["created"] == 0
    assert job.result["skipped_existing_id"] == 12


def test_a_run_that_falls_behind_another_stops_without_writing(project, numbered, monkeypatch):
    # given a run whose cursor is moved on by another run between two of its batches
    job = import_job_create(project=project, path=numbered, enqueue=False)
    real = imports._staged_batches

    def overtaken(plan, *, after_row):
        for number, batch in enumerate(real(plan, after_row=after_row)):
            if number == 1:
                Job.objects.filter(pk=plan.job_id).update(
                    cursor={"validated": True, "rows_done": 9}
                )
            yield batch

    monkeypatch.setattr(imports, "_staged_batches", overtaken)

    # when it tries to commit its second batch, it stops
    with pytest.raises(ImportSuperseded, match="continued by another run"):
        import_run(job_id=job.pk)

    # and only its first batch was written
    assert sorted(items(project)) == ["r0", "r1", "r2"]


def test_a_cancelled_job_stops_at_the_next_batch(project, numbered, monkeypatch):
    job = import_job_create(project=project, path=numbered, enqueue=False)
    real = imports._staged_batches

    def cancelled(plan, *, after_row):
        for number, batch in enumerate(real(plan, after_row=after_row)):
            if number == 1:
                Job.objects.filter(pk=plan.job_id).update(status=Job.Status.CANCELLED)
            yield batch

    monkeypatch.setattr(imports, "_staged_batches", cancelled)

    job = import_run(job_id=job.pk)

    assert job.status == Job.Status.CANCELLED
    assert Item.objects.filter(project=project).count() == 3


# ---- the task and the commands ----------------------------------------------------------------


def test_task_runs_in_slices_and_queues_its_continuation(project, numbered, settings, queued):
    # given a time slice so short that the task stops after its first batch
    settings.IMPORT_TASK_SLICE_SECONDS = 0
    job = import_job_create(project=project, path=numbered, enqueue=False)

    # when the task runs, it commits one batch and queues itself again
    import_items_task(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert job.cursor["rows_done"] == 3
    assert job.message.startswith("Paused after row 3")
    assert queued == [job.pk]

    # and the continuations finish the job
    while queued:
        import_items_task(queued.pop())
    job.refresh_from_db()
    assert_complete(project, job)


def test_task_records_an_unexpected_error_on_the_job(project, numbered, monkeypatch):
    job = import_job_create(project=project, path=numbered, enqueue=False)
    monkeypatch.setattr(imports, "_write_batch", lambda *a, **k: 1 / 0)

    result = import_items_task.apply(args=(job.pk,))

    assert result.failed()
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("ZeroDivisionError: division by zero")


def test_task_for_a_deleted_job_is_a_no_op():
    import_items_task(987654)  # does not raise


def test_import_items_command_runs_inline_and_prints_the_report(project, tmp_path, capsys):
    path = write(tmp_path, "cli.csv", "key,body,gold\nk1,One,pos\nk2,,neg\nk3,Three,neg\n")

    call_command(
        "import_items",
        project.name,
        str(path),
        "--text-field",
        "body",
        "--id-field",
        "key",
        "--label-field",
        "gold",
        "--skip-invalid",
    )

    out = capsys.readouterr().out
    assert "succeeded" in out
    assert "created: 2" in out
    assert "row 2 (line 3), body: missing text (empty)" in out
    assert items(project) == {"k1": "One", "k3": "Three"}
    assert path.exists()  # the user's file is read in place, never removed


def test_import_items_command_fails_with_a_non_zero_exit(project, tmp_path, capsys):
    path = write(tmp_path, "cli.csv", "id,text\n1,\n")

    with pytest.raises(CommandError, match=r"Import job #\d+ failed"):
        call_command("import_items", str(project.pk), str(path))

    assert "row 1 (line 2), text: missing text (empty)" in capsys.readouterr().out
    assert not Item.objects.filter(project=project).exists()


def test_import_items_command_unknown_project():
    with pytest.raises(CommandError, match="No project named"):
        call_command("import_items", "nope", "/tmp/x.csv")


def run_with_a_rival(project, job, *, external_id, text):
    """Run the job, letting another writer create an item with `external_id` just before its
    second batch. Returns the job and, per batch, whether it ran as into an empty project."""
    original = imports._write_batch
    calls = []

    def write_batch_with_a_rival(plan, rows, *, project_was_empty):
        if len(calls) == 1:
            ItemFactory(project=project, external_id=external_id, text=text)
        calls.append(project_was_empty)
        return original(plan, rows, project_was_empty=project_was_empty)

    imports._write_batch = write_batch_with_a_rival
    try:
        return import_run(job_id=job.pk), calls
    finally:
        imports._write_batch = original


def test_fast_path_falls_back_when_another_writer_took_an_id_meanwhile(project, tmp_path):
    # Given a job validated while the project was empty (so it may COPY straight in)
    path = write(tmp_path, "a.jsonl", jsonl(*({"id": f"r{n}", "text": f"T {n}"} for n in range(7))))
    job = import_job_create(project=project, path=path, enqueue=False)

    # When, before the second batch, another writer creates one of its ids
    job, calls = run_with_a_rival(project, job, external_id="r4", text="rival")

    # Then the batch took the ON CONFLICT path: every other row is in, the rival is untouched
    assert job.status == Job.Status.SUCCEEDED
    assert all(calls)
    assert items(project)["r4"] == "rival"
    assert sorted(items(project)) == sorted(f"r{n}" for n in range(7))
    assert job.result["created"] == 6
    assert job.result["skipped_existing_id"] == 1


# ---- rows staged as COPY text ---------------------------------------------------------------

AWKWARD = [
    # Every character that COPY's text format escapes, in ids, texts and metadata.
    {"id": "tab\there", "text": "line one\nline two\r\nend", "path": "C:\\temp\\new"},
    {"id": "back\\slash", "text": "a\\tb is not a tab; \\N is not null", "note": "\t"},
    {"id": "plain", "text": "Ünïcødé ✓ and \\.", "nested": {"k\tey": ["x\ny", "\\"]}},
]


def expected_awkward():
    return {row["id"]: row["text"] for row in AWKWARD}


@pytest.mark.parametrize("project_was_empty", [True, False])
def test_tabs_newlines_and_backslashes_arrive_unchanged(project, tmp_path, project_was_empty):
    # given rows whose ids, texts and metadata hold every character COPY escapes, imported into
    # an empty project (PostgreSQL: COPY straight in) or one with items (ON CONFLICT / ORM)
    if not project_was_empty:
        ItemFactory(project=project, external_id="other", text="Other")
    path = write(tmp_path, "awkward.jsonl", jsonl(*AWKWARD))

    job = run_import(project, path)

    # then every value is stored exactly as the file has it
    assert job.status == Job.Status.SUCCEEDED, job.error
    stored = items(project)
    stored.pop("other", None)
    assert stored == expected_awkward()
    metadata = dict(Item.objects.filter(project=project).values_list("external_id", "metadata"))
    assert metadata["tab\there"] == {"path": "C:\\temp\\new"}
    assert metadata["back\\slash"] == {"note": "\t"}
    assert metadata["plain"] == {"nested": {"k\tey": ["x\ny", "\\"]}}


def test_awkward_rows_survive_the_fallback_from_the_fast_path(project, tmp_path):
    # given a job validated while the project was empty, whose second batch then clashes with a
    # rival writer (the fast path gives way to the ON CONFLICT path, which reads the lines back)
    path = write(tmp_path, "awkward.jsonl", jsonl(*AWKWARD, {"id": "rival", "text": "mine"}))
    job = import_job_create(project=project, path=path, enqueue=False)
    job, _ = run_with_a_rival(project, job, external_id="rival", text="theirs")

    # then the awkward rows are intact and the rival's item untouched
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert items(project) == {**expected_awkward(), "rival": "theirs"}
    assert job.result["skipped_existing_id"] == 1


def test_integers_beyond_64_bits_and_labels_keep_their_exact_values(project, tmp_path):
    # given JSON lines with a huge integer, a float and a label (final)
    big = 123456789012345678901234567890
    path = write(
        tmp_path,
        "numbers.jsonl",
        jsonl(
            {"id": "a", "text": "Alpha", "big": big, "score": 0.25, "label": "pos"},
            {"id": "b", "text": "Beta", "small": -(2**63), "label": ""},
        ),
    )

    job = run_import(project, path, mapping={"label": "label"}, labels_are_final=True)

    # then the metadata holds the same numbers, and the label made the item done
    assert job.status == Job.Status.SUCCEEDED, job.error
    a = Item.objects.get(project=project, external_id="a")
    assert a.metadata == {"big": big, "score": 0.25}
    assert a.final_labels == ["pos"]
    assert a.status == Item.Status.DONE
    assert a.final_lineage == {"method": "import", "job": job.pk, "file": "numbers.jsonl"}
    b = Item.objects.get(project=project, external_id="b")
    assert b.metadata == {"small": -(2**63)}
    assert b.status == Item.Status.OPEN
    assert Prediction.objects.get(item=a).labels == ["pos"]


# ---- initial queue order ----------------------------------------------------------------------


def _rows(n: int) -> str:
    return "id,text\n" + "".join(f"r{i:04d},text number {i}\n" for i in range(n))


def test_new_items_get_a_seeded_random_priority_so_the_queue_never_serves_file_order(tmp_path):
    # Given a project with the default queue order and a file whose order carries a pattern
    project = ProjectFactory()
    path = write(tmp_path, "ordered.csv", _rows(60))

    # When it is imported (in batches of 3 rows)
    job = run_import(project, path)

    # Then every item has a priority in [0, 1), below any ranking, and the queue order is not
    # the file order: the seed is recorded on the job
    assert job.status == Job.Status.SUCCEEDED, job.error
    seed = job.params["priority_seed"]
    assert isinstance(seed, int)
    assert job.result["queue_order"] == f"random (seed {seed})"
    by_queue = list(
        Item.objects.filter(project=project)
        .order_by("-priority", "id")
        .values_list("id", "priority")
    )
    priorities = [p for _, p in by_queue]
    assert all(0 <= p < 1 for p in priorities)
    assert len(set(priorities)) == 60
    ids_in_queue_order = [i for i, _ in by_queue]
    assert ids_in_queue_order != sorted(ids_in_queue_order)
    # the first ten served items come from all over the file, not its head
    head_rows = sorted(ids_in_queue_order).index
    first_ten = [head_rows(i) for i in ids_in_queue_order[:10]]
    assert max(first_ten) >= 20


def test_the_same_seed_gives_the_same_priorities_so_a_resumed_import_writes_the_same_order(
    tmp_path,
):
    first, second = ProjectFactory(), ProjectFactory()
    path = write(tmp_path, "rows.csv", _rows(12))
    job = run_import(first, path)
    again = import_job_create(project=second, path=path, enqueue=False)
    again.params["priority_seed"] = job.params["priority_seed"]
    again.save(update_fields=["params"])
    import_run(job_id=again.pk)

    def order(project):
        return list(
            Item.objects.filter(project=project)
            .order_by("external_id")
            .values_list("priority", flat=True)
        )

    assert order(first) == order(second)


def test_a_project_in_file_order_serves_its_items_in_file_order(tmp_path):
    project = ProjectFactory(queue_order="file")
    path = write(tmp_path, "rows.csv", _rows(9))

    job = run_import(project, path)

    assert job.params["priority_seed"] is None
    assert job.result["queue_order"] == "file"
    served = list(
        Item.objects.filter(project=project)
        .order_by("-priority", "id")
        .values_list("external_id", flat=True)
    )
    assert served == [f"r{i:04d}" for i in range(9)]


def test_an_unexpected_import_failure_shows_a_short_reason_not_a_traceback(tmp_path, caplog):
    # Given an import job and an exception from deep inside (with a server path in it)
    from labeling.services.imports import import_job_fail

    project = ProjectFactory()
    job = import_job_create(project=project, path=write(tmp_path, "a.csv", _rows(3)), enqueue=False)
    try:
        raise OSError("disk failed at /srv/flywheel/media/imports/x.copy: {'secret': 1}")
    except OSError as exc:
        import_job_fail(job_id=job.pk, exc=exc)

    # Then every member reads a short reason; the traceback is in the log only
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "Traceback" not in job.error
    assert "/srv/flywheel" not in job.error
    assert "secret" not in job.error
    assert job.error.startswith("OSError: disk failed at")
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)
