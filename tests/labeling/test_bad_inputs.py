"""Every bad input gets a 4xx, never a 500 or a hang (issue 16, requirement 8): ids beyond 64
bits, JSON nested too deeply, oversized CSV cells, too many columns, an unclosed quote, an upload
over the cap. Runs on SQLite and on PostgreSQL (DATABASE_URL=postgres://...)."""

import csv
import io
import json

import pytest
from django.core import signals
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from rest_framework.test import APIClient

from labeling.api.fastpath import AnnotationLoopFastPath
from labeling.errors import ApplicationError
from labeling.importing import ImportFileError, Mapping, RecordReader, csv_header_errors
from labeling.models import Annotation, Item, Job
from labeling.services.imports import (
    UploadTooLarge,
    import_job_create,
    import_run,
    upload_too_large_refuse,
)
from quality.services.gold import gold_file_parse
from tests.factories import ItemFactory, api_token

pytestmark = pytest.mark.django_db

HUGE = 99999999999999999999  # 20 digits: beyond a 64-bit integer
DEEP = 100_000


@pytest.fixture
def api(annotator):
    client = APIClient()
    client.force_authenticate(annotator)
    return client


# ---- ids beyond 64 bits -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/api/projects/{HUGE}/",
        f"/api/projects/{HUGE}/items/",
        f"/api/projects/{HUGE}/progress/",
        f"/api/jobs/{HUGE}/",
        f"/api/annotations/{HUGE}/",
        "/api/projects/9223372036854775808/",  # 2**63: 19 digits, one too many
    ],
)
def test_ids_beyond_64_bits_in_api_urls_are_not_found(api, path):
    response = api.get(path)

    assert response.status_code == 404


def test_ids_beyond_64_bits_in_page_urls_are_not_found(client, annotator):
    client.force_login(annotator)

    for path in (f"/projects/{HUGE}/", f"/projects/{HUGE}/quality/", f"/projects/{HUGE}/model/"):
        assert client.get(path).status_code == 404, path


def test_submit_with_ids_beyond_64_bits_is_refused(api, project):
    item = ItemFactory(project=project)

    huge_item = api.post(
        f"/api/projects/{project.pk}/items/{HUGE}/submit/", {"labels": ["pos"]}, format="json"
    )
    huge_suggestion = api.post(
        f"/api/projects/{project.pk}/items/{item.pk}/submit/",
        {"labels": ["pos"], "suggestion_id": HUGE},
        format="json",
    )
    huge_exclude = api.post(
        f"/api/projects/{project.pk}/next/", {"exclude": [item.pk, HUGE]}, format="json"
    )
    huge_filter = api.get(f"/api/projects/{project.pk}/annotations/?item={HUGE}")

    assert huge_item.status_code == 404
    assert huge_suggestion.status_code == 400
    assert "suggestion_id" in huge_suggestion.json()
    assert huge_exclude.status_code == 400
    assert "exclude" in huge_exclude.json()
    assert huge_filter.status_code == 400
    assert "item" in huge_filter.json()
    assert not Annotation.objects.exists()


@pytest.fixture
def fast(annotator):
    """The annotation loop's fast path in front of Django, keeping the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield AnnotationLoopFastPath(WSGIHandler()), api_token(annotator)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def wsgi_post(app, path, body: bytes, token: str) -> tuple[int, bytes]:
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Token {token}",
    }
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status

    result = app(env, start_response)
    content = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return int(seen["status"].split()[0]), content


def test_the_fast_path_refuses_ids_beyond_64_bits(fast, project):
    app, token = fast
    item = ItemFactory(project=project)
    submit = json.dumps({"labels": ["pos"]}).encode()

    cases = [
        (f"/api/projects/{HUGE}/next/", b"{}", 404),
        ("/api/projects/9223372036854775808/next/", b"{}", 404),
        (f"/api/projects/{project.pk}/items/{HUGE}/submit/", submit, 404),
        (f"/api/projects/{project.pk}/items/9223372036854775808/submit/", submit, 404),
        (f"/api/projects/{project.pk}/next/", json.dumps({"exclude": [HUGE]}).encode(), 400),
        (
            f"/api/projects/{project.pk}/items/{item.pk}/submit/",
            json.dumps({"labels": ["pos"], "suggestion_id": -HUGE}).encode(),
            400,
        ),
    ]
    for path, body, expected in cases:
        status, content = wsgi_post(app, path, body, token)
        assert status == expected, (path, body, content[:200])
    assert not Annotation.objects.exists()


# ---- JSON nested too deeply ---------------------------------------------------------------


def test_request_bodies_nested_too_deeply_are_refused(fast, project):
    app, token = fast
    ItemFactory(project=project)
    deep = b'{"exclude": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    small_deep = b"[" * 30_000 + b"]" * 30_000  # under the fast path's 64 KiB: parsed there

    for path in (f"/api/projects/{project.pk}/next/", f"/api/projects/{project.pk}/"):
        for body in (deep, small_deep):
            status, content = wsgi_post(app, path, body, token)
            assert 400 <= status < 500, (path, len(body), content[:200])


def test_gold_clear_with_ids_beyond_64_bits_is_refused(client, project, manager):
    client.force_login(manager)

    response = client.post(
        f"/api/projects/{project.pk}/gold/clear/",
        {"item_ids": [1, HUGE]},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "item_ids" in response.json()


# ---- imports: rows nested too deeply, too many columns, an unclosed quote, a large upload ---


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def run_import(project, tmp_path, name: str, content: bytes, **kwargs) -> Job:
    path = tmp_path / name
    path.write_bytes(content)
    job = import_job_create(project=project, path=path, enqueue=False, **kwargs)
    return import_run(job_id=job.pk)


def texts(project) -> dict[str, str]:
    return dict(Item.objects.filter(project=project).values_list("external_id", "text"))


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.usefixtures("media")
def test_a_jsonl_row_nested_too_deeply_is_a_row_error_and_the_others_import(project, tmp_path):
    content = (
        b'{"id": "1", "text": "first"}\n'
        + b'{"id": "2", "text": "deep", "meta": '
        + nested(DEEP)
        + b"}\n"
        + b'{"id": "3", "text": "deep enough for orjson", "meta": '
        + nested(900)
        + b"}\n"
        + b'{"id": "4", "text": "last"}\n'
    )

    failed = run_import(project, tmp_path, "deep.jsonl", content)
    skipped = run_import(project, tmp_path, "deep.jsonl", content, skip_invalid=True)

    assert failed.status == Job.Status.FAILED
    assert [e["row"] for e in failed.result["errors"]] == [2, 3]
    assert skipped.status == Job.Status.SUCCEEDED, skipped.error
    assert texts(project) == {"1": "first", "4": "last"}
    assert [(e["row"], e["field"]) for e in skipped.result["errors"]] == [(2, None), (3, "meta")]
    assert "nested too deeply" in skipped.result["errors"][0]["reason"]
    assert "nested more than 100 levels" in skipped.result["errors"][1]["reason"]


@pytest.mark.usefixtures("media")
def test_a_json_array_element_nested_too_deeply_is_a_row_error(project, tmp_path):
    # The deep element holds brackets and escaped quotes in a string, across read chunks.
    tricky = b'"]]]\\"[[{' + b"x" * 70_000 + b'"'
    deep = b"[" * 5000 + tricky + b"]" * 5000
    content = (
        b'[{"id": "1", "text": "first"}, {"id": "2", "text": "deep", "meta": '
        + deep
        + b'}, {"id": "3", "text": "last"}]'
    )

    job = run_import(project, tmp_path, "deep.json", content, skip_invalid=True)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert texts(project) == {"1": "first", "3": "last"}
    assert [e["row"] for e in job.result["errors"]] == [2]


@pytest.mark.usefixtures("media")
def test_a_csv_label_cell_nested_too_deeply_is_a_row_error(project, tmp_path):
    content = b'id,text,label\n1,a,"' + nested(DEEP) + b'"\n2,b,pos\n'

    job = run_import(project, tmp_path, "deep.csv", content, mapping={"label": "label"})

    assert job.status == Job.Status.FAILED
    assert [(e["row"], e["field"]) for e in job.result["errors"]] == [(1, "label")]


def test_a_request_body_nested_too_deeply_is_refused_by_the_api(client, project, manager):
    client.force_login(manager)

    response = client.patch(
        f"/api/projects/{project.pk}/", nested(DEEP), content_type="application/json"
    )

    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.usefixtures("media")
def test_a_csv_with_more_columns_than_the_cap_is_refused_naming_the_limit(
    project, tmp_path, settings
):
    settings.IMPORT_MAX_COLUMNS = 1000
    header = b"text," + b",".join(b"c%d" % i for i in range(5000))

    job = run_import(project, tmp_path, "wide.csv", header + b"\nhello\n", skip_invalid=True)

    assert job.status == Job.Status.FAILED
    assert "5001 columns; the limit is 1000 (IMPORT_MAX_COLUMNS)" in job.error
    assert not Item.objects.filter(project=project).exists()


def test_a_million_columns_are_refused_at_the_header():
    # given a header of 10^6 columns (the duplicate-column check was quadratic: hours)
    header = b",".join([b"c"] * 1_000_000) + b"\n"

    # then the reader refuses it before any row, naming the default limit
    with pytest.raises(ImportFileError, match="1000000 columns; the limit is 1000"):
        RecordReader(io.BytesIO(header + b"x\n"), "csv")

    # and the duplicate check itself is one pass over a header at the limit
    columns = [f"c{i}" for i in range(1000)] + ["c7"]
    errors = csv_header_errors(columns, Mapping(text="c1"))
    assert [e.reason for e in errors] == ["The header names column 'c7' twice."]


@pytest.mark.usefixtures("media")
def test_an_unclosed_quote_is_reported_at_the_row_where_it_opened(project, tmp_path):
    content = b'id,text\n1,fine\n2,"opens here\n3,swallowed\n4,swallowed too\n'

    job = run_import(project, tmp_path, "quote.csv", content, skip_invalid=True)

    assert job.status == Job.Status.FAILED
    error = job.result["errors"][-1]
    assert (error["row"], error["line"]) == (2, 3)
    assert "never closed" in error["reason"]
    assert not Item.objects.filter(project=project).exists()


def test_a_quoted_field_spanning_lines_at_the_end_of_the_file_is_still_read():
    for content in (b'id,text\n1,"a\nb"', b'id,text\n1,"a\nb"\n', b"id,text\r1,a\r2,b"):
        reader = RecordReader(io.BytesIO(content), "csv")
        assert [r.error for r in reader] == [None] * (1 + content.count(b"\r") // 2)


def test_an_upload_over_the_cap_gets_a_413_and_is_not_kept(client, project, manager, media):
    # given a cap of 100 bytes
    client.force_login(manager)
    from django.conf import settings as django_settings

    django_settings.IMPORT_MAX_UPLOAD_BYTES = 100
    try:
        big = SimpleUploadedFile("big.csv", b"text\n" + b"x" * 200 + b"\n")
        small = SimpleUploadedFile("small.csv", b"text\nhello\n")

        # when a manager uploads a file over it, and one under it
        refused = client.post(f"/api/projects/{project.pk}/imports/", {"file": big})
        accepted = client.post(
            f"/api/projects/{project.pk}/imports/", {"file": small, "skip_invalid": "false"}
        )
    finally:
        del django_settings.IMPORT_MAX_UPLOAD_BYTES

    # then the first is a 413 naming the field and the limit, and nothing of it is kept
    assert refused.status_code == 413
    assert refused.json()["field"] == "file"
    assert "IMPORT_MAX_UPLOAD_BYTES" in refused.json()["detail"]
    assert accepted.status_code == 202
    assert Job.objects.count() == 1
    assert len(list((media / "imports").iterdir())) == 1


def test_a_file_object_over_the_cap_is_refused_while_copying(project, media, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100

    with pytest.raises(UploadTooLarge, match="larger than 100 bytes"):
        import_job_create(project=project, uploaded_file=io.BytesIO(b"x" * 1000), enqueue=False)

    assert not Job.objects.exists()
    assert list((media / "imports").iterdir()) == []


def test_a_request_over_the_cap_is_refused_before_its_body_is_read(settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 1000

    upload_too_large_refuse(content_length="2000")  # within the multipart envelope's room
    with pytest.raises(UploadTooLarge):
        upload_too_large_refuse(content_length=str(1000 + 65 * 1024))


# ---- gold import: a cell over the CSV field limit -------------------------------------------


def test_a_gold_cell_over_the_csv_field_limit_names_its_line(client, project, manager):
    limit = csv.field_size_limit()
    content = f"external_id,label\na,pos\n{'x' * (limit + 1)},pos\n"
    client.force_login(manager)

    with pytest.raises(ApplicationError, match=r"^Line 3: the CSV cannot be read"):
        gold_file_parse(content=content)
    response = client.post(
        f"/api/projects/{project.pk}/gold/import/",
        {"file": SimpleUploadedFile("gold.csv", content.encode())},
    )
    page = client.post(
        f"/projects/{project.pk}/quality/gold/",
        {"file": SimpleUploadedFile("gold.csv", content.encode())},
    )

    assert response.status_code == 400
    assert response.json()["line"] == 3
    assert page.status_code == 302
    assert csv.field_size_limit() == limit  # not raised for the whole process


# ---- LLM settings outside sane bounds -------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("llm_concurrency", 0),
        ("llm_concurrency", 30_000),
        ("llm_price_input_per_mtok", "-1.5"),
        ("llm_price_output_per_mtok", "50000"),
        ("llm_budget_usd", "-10"),
    ],
)
def test_llm_settings_outside_sane_bounds_are_refused(client, project, manager, field, value):
    client.force_login(manager)
    path = f"/api/projects/{project.pk}/prelabel-settings/"

    refused = client.patch(path, {field: value}, content_type="application/json")
    sane = client.patch(path, {field: 4}, content_type="application/json")

    assert refused.status_code == 400
    assert refused.json()["field"] == field
    assert sane.status_code == 200
    assert float(sane.json()[field]) == 4


# ---- gold and crowd uploads are capped -----------------------------------------------------


def test_gold_and_crowd_uploads_over_the_cap_get_a_413_and_write_nothing(
    client, project, manager, settings
):
    settings.QUALITY_MAX_UPLOAD_BYTES = 100
    ItemFactory(project=project, external_id="a")
    big = "external_id,label\n" + "a,pos\n" * 40  # 258 bytes
    client.force_login(manager)

    gold = client.post(
        f"/api/projects/{project.pk}/gold/import/",
        {"file": SimpleUploadedFile("gold.csv", big.encode())},
    )
    crowd = client.post(
        f"/api/projects/{project.pk}/crowd-import/",
        {"file": SimpleUploadedFile("c.csv", b"item,worker,label\n" + b"a,w1,pos\n" * 40)},
    )
    page = client.post(
        f"/projects/{project.pk}/quality/gold/",
        {"file": SimpleUploadedFile("gold.csv", big.encode())},
        follow=True,
    )

    assert gold.status_code == 413
    assert "QUALITY_MAX_UPLOAD_BYTES" in gold.json()["detail"]
    assert crowd.status_code == 413
    assert "larger than 100 bytes" in page.content.decode()
    assert not Item.objects.filter(project=project, is_gold=True).exists()
    assert not Job.objects.filter(project=project).exists()


def test_labeling_function_ids_beyond_64_bits_are_a_400(client, project, manager):
    client.force_login(manager)
    response = client.post(
        f"/api/projects/{project.pk}/labeling-functions/apply/",
        {"lf_ids": [HUGE]},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "lf_ids" in response.json()
