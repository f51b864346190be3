"""Streaming export: formats, filters, bounded queries, and loading the JSONL with `datasets`."""

import csv
import io
import json
import math
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Item
from labeling.services import exports
from labeling.services.exports import (
    CSV_COLUMNS,
    RECORD_KEYS,
    export_filename,
    export_stream,
    parse_changed_since,
)
from tests.factories import (
    AnnotationFactory,
    ItemFactory,
    PredictionFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _finish(item, labels, confidence=1.0, lineage=None):
    Item.objects.filter(pk=item.pk).update(
        status=Item.Status.DONE,
        final_labels=labels,
        final_confidence=confidence,
        final_lineage=lineage or {"method": "single_annotator", "annotations": []},
    )


def _jsonl(**kwargs):
    body = b"".join(export_stream(fmt="jsonl", **kwargs))
    return [json.loads(line) for line in body.decode().splitlines()]


@pytest.fixture
def labeled(project):
    """A finished item with an annotation that accepted a suggestion, and an open item."""
    alice = UserFactory(username="alice")
    done = ItemFactory(project=project, external_id="a-1", metadata={"source": "web", "n": 1})
    suggestion = PredictionFactory(
        item=done,
        source_kind="model",
        source_id="logreg",
        source_version="3",
        labels=["pos"],
        confidence=0.9,
    )
    AnnotationFactory(
        item=done, annotator=alice, labels=["pos"], time_spent_ms=1500, suggestion=suggestion
    )
    _finish(done, ["pos"], 1.0, {"method": "single_annotator", "annotations": [1]})
    open_item = ItemFactory(project=project, external_id="b-2", text="Ünïcode ✓ text")
    return done, open_item


def test_jsonl_rows_have_the_same_keys_and_carry_labels_annotations_and_lineage(project, labeled):
    rows = _jsonl(project=project)

    assert [r["id"] for r in rows] == ["a-1", "b-2"]
    assert all(tuple(r) == RECORD_KEYS for r in rows)
    done, open_row = rows
    assert done["status"] == "done"
    assert done["final_labels"] == ["pos"]
    assert done["final_label"] == "pos"
    assert done["final_confidence"] == 1.0
    assert json.loads(done["final_lineage_json"])["method"] == "single_annotator"
    assert json.loads(done["metadata_json"]) == {"source": "web", "n": 1}
    assert done["annotations"] == [
        {
            "annotator": "alice",
            "labels": ["pos"],
            "time_spent_ms": 1500,
            "created_at": done["annotations"][0]["created_at"],
            "updated_at": done["annotations"][0]["updated_at"],
            "suggestion_source": "model:logreg@3",
        }
    ]
    assert done["predictions"] == [
        {
            "source_kind": "model",
            "source_id": "logreg",
            "source_version": "3",
            "labels": ["pos"],
            "confidence": 0.9,
        }
    ]
    assert open_row["status"] == "open"
    assert open_row["text"] == "Ünïcode ✓ text"
    assert open_row["final_labels"] is None
    assert open_row["final_label"] is None
    assert open_row["final_confidence"] is None
    assert open_row["final_lineage_json"] is None
    assert open_row["annotations"] == []
    assert open_row["predictions"] == []
    assert open_row["metadata_json"] == "{}"
    # Every timestamp has the same shape: ISO 8601 with microseconds and an offset.
    parsed = datetime.fromisoformat(done["updated_at"])
    assert parsed.tzinfo is not None
    assert (
        len(done["created_at"])
        == len(open_row["created_at"])
        == len(done["annotations"][0]["created_at"])
    )


def test_json_is_one_array_of_the_same_records(project, labeled):
    body = b"".join(export_stream(project=project, fmt="json"))

    assert json.loads(body) == _jsonl(project=project)


def test_csv_has_one_row_per_item_with_json_encoded_parts(project, labeled):
    body = b"".join(export_stream(project=project, fmt="csv")).decode()

    rows = list(csv.DictReader(io.StringIO(body)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["id"] for r in rows] == ["a-1", "b-2"]
    done, open_row = rows
    assert done["final_labels"] == "pos"
    assert float(done["final_confidence"]) == 1.0
    assert done["annotation_count"] == "1"
    assert json.loads(done["annotations_json"])[0]["annotator"] == "alice"
    assert json.loads(done["predictions_json"])[0]["source_id"] == "logreg"
    assert json.loads(done["metadata_json"]) == {"source": "web", "n": 1}
    assert (open_row["final_labels"], open_row["final_confidence"]) == ("", "")
    assert open_row["text"] == "Ünïcode ✓ text"


def test_csv_joins_multiple_final_labels_with_a_bar():
    project = ProjectFactory(multi_label=True, labels=["a", "b", "c"])
    item = ItemFactory(project=project, text='Text with "quotes", commas\nand a newline')
    _finish(item, ["a", "c"], 0.5)

    rows = list(
        csv.DictReader(io.StringIO(b"".join(export_stream(project=project, fmt="csv")).decode()))
    )

    assert rows[0]["final_labels"] == "a|c"
    assert rows[0]["text"] == 'Text with "quotes", commas\nand a newline'


@pytest.mark.parametrize(("fmt", "expected"), [("jsonl", b""), ("json", b"[\n]\n")])
def test_an_empty_export_is_still_valid(project, fmt, expected):
    body = b"".join(export_stream(project=project, fmt=fmt))
    assert body == expected
    if fmt == "json":
        assert json.loads(body) == []


def test_an_empty_csv_export_has_the_header(project):
    body = b"".join(export_stream(project=project, fmt="csv")).decode()
    assert body.splitlines() == [",".join(CSV_COLUMNS)]


def test_other_projects_items_are_not_exported(project, labeled):
    ItemFactory(project=ProjectFactory(), external_id="elsewhere")
    assert "elsewhere" not in [r["id"] for r in _jsonl(project=project)]


def test_finished_only(project, labeled):
    assert [r["id"] for r in _jsonl(project=project, finished_only=True)] == ["a-1"]


def test_label_filter_matches_whole_labels_only():
    project = ProjectFactory(multi_label=True, labels=["pos", "positive", "neg"])
    items = {name: ItemFactory(project=project, external_id=name) for name in "abcd"}
    _finish(items["a"], ["pos"])
    _finish(items["b"], ["neg", "pos"])
    _finish(items["c"], ["positive"])  # contains "pos" as a substring only

    assert [r["id"] for r in _jsonl(project=project, label="pos")] == ["a", "b"]
    assert [r["id"] for r in _jsonl(project=project, label="positive")] == ["c"]
    assert _jsonl(project=project, label="nope") == []


def test_changed_since_uses_the_items_updated_at(project, labeled):
    done, open_item = labeled
    cutoff = timezone.now()
    Item.objects.filter(pk=done.pk).update(updated_at=cutoff - timedelta(days=2))
    Item.objects.filter(pk=open_item.pk).update(updated_at=cutoff + timedelta(seconds=1))

    rows = _jsonl(project=project, changed_since=cutoff - timedelta(days=1))

    assert [r["id"] for r in rows] == ["b-2"]


def test_item_ids_restrict_the_export_and_accept_a_queryset(project, labeled):
    _, open_item = labeled
    assert [r["id"] for r in _jsonl(project=project, item_ids=[open_item.pk])] == ["b-2"]
    subquery = Item.objects.filter(external_id="a-1").values_list("pk", flat=True)
    assert [r["id"] for r in _jsonl(project=project, item_ids=subquery)] == ["a-1"]


def test_filters_combine(project, labeled):
    done, _ = labeled
    assert _jsonl(project=project, finished_only=True, label="neg") == []
    assert [
        r["id"]
        for r in _jsonl(project=project, finished_only=True, label="pos", item_ids=[done.pk])
    ] == ["a-1"]


def test_unknown_format_is_refused_before_anything_streams(project):
    with pytest.raises(ApplicationError, match="xml"):
        export_stream(project=project, fmt="xml")


def test_rows_come_in_id_order_across_chunks(project, settings):
    settings.EXPORT_CHUNK_SIZE = 3
    items = [ItemFactory(project=project) for _ in range(10)]

    rows = _jsonl(project=project)

    assert [r["id"] for r in rows] == [i.external_id for i in items]


@pytest.mark.parametrize("chunk_size", [1, 2, 1000])
def test_schema_seed_rows_come_first_then_id_order(project, settings, chunk_size):
    # Given early items with nothing sparse, and a later one with every sparse field filled
    settings.EXPORT_CHUNK_SIZE = chunk_size
    plain = [ItemFactory(project=project) for _ in range(5)]
    rich = ItemFactory(project=project)
    prediction = PredictionFactory(item=rich, confidence=0.7)
    AnnotationFactory(item=rich, suggestion=prediction)
    _finish(rich, ["pos"])
    later = ItemFactory(project=project)

    rows = _jsonl(project=project)

    # Then the rich item leads (so a reader inferring types from the top sees every field
    # typed), and the rest follow in id order, each exported once
    assert [r["id"] for r in rows] == [rich.external_id] + [i.external_id for i in [*plain, later]]


def test_queries_per_chunk_are_bounded_whatever_the_annotations_per_item(
    project, settings, django_assert_max_num_queries
):
    # Given 12 items, each with three annotations and two predictions, in chunks of 4
    settings.EXPORT_CHUNK_SIZE = 4
    users = [UserFactory() for _ in range(3)]
    for _ in range(12):
        item = ItemFactory(project=project)
        for user in users:
            AnnotationFactory(item=item, annotator=user)
        PredictionFactory(item=item)
        PredictionFactory(item=item, confidence=None)
    chunks = math.ceil(12 / 4)
    seeds = 7 + 3  # one query per sparse field, then one chunk's worth for the seed rows
    names = 1  # the three annotators' names, read once and remembered
    # When exporting, then: three queries per chunk (items, annotations, predictions), and for
    # the empty page that ends the keyset walk, never one per item or per annotation
    with django_assert_max_num_queries(seeds + names + 3 * (chunks + 1)):
        rows = _jsonl(project=project)
    assert len(rows) == 12
    assert all(len(r["annotations"]) == 3 and len(r["predictions"]) == 2 for r in rows)


def test_export_reads_the_database_lazily_one_chunk_at_a_time(project, settings):
    settings.EXPORT_CHUNK_SIZE = 5
    for _ in range(50):
        ItemFactory(project=project)
    stream = export_stream(project=project, fmt="jsonl")

    with CaptureQueriesContext(connection) as first_chunk:
        first = next(stream)
    with CaptureQueriesContext(connection) as the_rest:
        rest = b"".join(stream)

    # The first chunk costs the seed look-ups, the first item page, and two rounds of three
    # queries: the database reads ahead (annotations and predictions of the next page, items
    # of the one after) while Python writes. Every later chunk is one such round.
    assert len(first.splitlines()) == 5
    assert len(first_chunk) == 7 + 1 + 2 * 3
    assert len(rest.splitlines()) == 45
    assert len(the_rest) == 3 * 8  # details of pages 3 to 10, items of pages 4 to 11 (empty)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="pipeline mode is a PostgreSQL read path"
)
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_pipelined_reads_give_the_same_bytes_as_plain_reads(
    project, labeled, settings, monkeypatch, fmt
):
    # Given more items than one chunk, some with annotations and predictions
    settings.EXPORT_CHUNK_SIZE = 3
    for n in range(8):
        item = ItemFactory(project=project, metadata={"n": n})
        if n % 2:
            AnnotationFactory(item=item, suggestion=PredictionFactory(item=item))
    # When exporting with pipeline mode, and then with pipeline mode unavailable
    assert exports._pipeline_supported(connection.connection)
    pipelined = b"".join(export_stream(project=project, fmt=fmt))
    monkeypatch.setattr(exports, "_pipeline_supported", lambda _connection: False)
    plain = b"".join(export_stream(project=project, fmt=fmt))

    # Then the files are identical
    assert pipelined == plain
    assert len(pipelined.splitlines()) == 10 + (fmt == "csv")


def _write_jsonl(path, **kwargs):
    with open(path, "wb") as handle:
        for chunk in export_stream(fmt="jsonl", **kwargs):
            handle.write(chunk)


def test_jsonl_loads_with_hugging_face_datasets(project, labeled, tmp_path):
    import datasets

    # Given an export mixing finished and open items
    path = tmp_path / "export.jsonl"
    _write_jsonl(path, project=project)

    # When loading it with the stock JSON loader
    dataset = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )

    # Then every row and column is there with the exported values
    assert dataset.num_rows == 2
    assert set(dataset.column_names) == set(RECORD_KEYS)
    assert dataset[0]["final_label"] == "pos"
    assert dataset[0]["annotations"][0]["suggestion_source"] == "model:logreg@3"
    assert dataset[1]["final_labels"] is None
    assert json.loads(dataset[0]["metadata_json"]) == {"source": "web", "n": 1}


def test_jsonl_loads_even_when_sparse_fields_first_appear_late(project, tmp_path, settings):
    """`datasets` infers the schema from the first block of the file and casts the rest to it;
    a block size far below the file size reproduces what a 10 MB block does to a big export."""
    import datasets

    # Given many early items without final labels, suggestions or predictions, and varying
    # metadata, then late ones with all of them
    settings.EXPORT_CHUNK_SIZE = 7
    for n in range(60):
        ItemFactory(project=project, metadata={f"key{n % 4}": n} if n % 3 else {})
    for _ in range(3):
        item = ItemFactory(project=project, metadata={"nested": {"deep": [1, 2]}})
        prediction = PredictionFactory(item=item, confidence=0.6)
        AnnotationFactory(item=item, suggestion=prediction, time_spent_ms=10)
        _finish(item, ["neg"], 0.75)
    path = tmp_path / "export.jsonl"
    _write_jsonl(path, project=project)

    dataset = datasets.load_dataset(
        "json",
        data_files=str(path),
        split="train",
        cache_dir=str(tmp_path / "cache"),
        chunksize=512,
    )

    assert dataset.num_rows == 63
    assert dataset.features["final_confidence"].dtype == "float64"
    finished = [row for row in dataset if row["final_label"] == "neg"]
    assert len(finished) == 3
    assert finished[0]["predictions"][0]["confidence"] == 0.6
    assert finished[0]["annotations"][0]["suggestion_source"].startswith("model:")


def test_export_filename_names_project_time_and_extension(project):
    project.name = "Movie reviews: v2"
    when = datetime(2024, 5, 1, 14, 30, tzinfo=dt_timezone(timedelta(hours=2)))
    assert export_filename(project=project, fmt="csv", now=when) == (
        "movie-reviews-v2-20240501-123000.csv"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01", "2024-05-01T00:00:00+00:00"),
    ],
)
def test_parse_changed_since(text, expected):
    assert parse_changed_since(text) == datetime.fromisoformat(expected)


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", ""])
def test_parse_changed_since_refuses_nonsense(text):
    with pytest.raises(ApplicationError, match="ISO 8601"):
        parse_changed_since(text)


# --- the management command -------------------------------------------------------------------


def test_command_writes_a_file(project, labeled, tmp_path):
    target = tmp_path / "out.jsonl"
    err = io.StringIO()

    call_command(
        "export_items",
        project.name,
        "--format",
        "jsonl",
        "-o",
        str(target),
        "--finished-only",
        stderr=err,
    )

    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a-1"]
    assert "Wrote" in err.getvalue()
    assert not (tmp_path / "out.jsonl.part").exists()


def test_command_writes_to_stdout_and_takes_a_project_id(project, labeled):
    out = io.StringIO()

    call_command(
        "export_items", str(project.pk), "--format", "csv", "-o", "-", "--label", "pos", stdout=out
    )

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["id"] for r in rows] == ["a-1"]


def test_command_filters_by_changed_since(project, labeled):
    done, _ = labeled
    Item.objects.filter(pk=done.pk).update(updated_at=timezone.now() - timedelta(days=30))
    out = io.StringIO()

    call_command("export_items", project.name, "--changed-since", "2000-01-01", stdout=out)
    call_command(
        "export_items",
        project.name,
        "--changed-since",
        (timezone.now() - timedelta(days=1)).isoformat(),
        stdout=(recent := io.StringIO()),
    )

    assert len(out.getvalue().splitlines()) == 2
    assert [json.loads(line)["id"] for line in recent.getvalue().splitlines()] == ["b-2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["No such project"], "No project"), (["{name}", "--changed-since", "soon"], "ISO 8601")],
)
def test_command_errors_are_clear(project, args, message):
    args = [a.format(name=project.name) for a in args]
    with pytest.raises(CommandError, match=message):
        call_command("export_items", *args, stdout=io.StringIO())
