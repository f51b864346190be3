"""What a failed job shows its members (every member can read a job, annotators included): a
short reason, never a traceback, a server path or a remote server's response body."""

import logging

import pytest

from labeling.errors import ApplicationError
from labeling.jobtasks import MAX_REASON_CHARS, JobTask, job_failure_text
from labeling.models import Job
from labeling.services.jobs import job_create


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_an_arbitrary_exception_is_its_type_and_a_sanitised_line():
    exc = _raised(
        FileNotFoundError(
            "[Errno 2] No such file or directory: '/srv/flywheel/var/models/7/model.joblib'\n"
            "second line with more detail"
        )
    )
    text = job_failure_text(exc)
    assert text.startswith("FileNotFoundError: [Errno 2] No such file or directory")
    assert "/srv" not in text
    assert "model.joblib" not in text
    assert "\n" not in text
    for trace_marker in ("Traceback", 'File "', "line "):
        assert trace_marker not in text


def test_a_remote_body_in_a_message_is_cut_and_an_http_error_is_its_status():
    body = RuntimeError("Error code: 502 - {'error': {'message': 'secret upstream detail'}}")
    assert job_failure_text(_raised(body)) == "RuntimeError: Error code: 502"

    class StatusError(Exception):
        status_code = 503

    text = job_failure_text(_raised(StatusError("<html>secret page</html>")))
    assert text == "StatusError: HTTP 503"
    url = ValueError("could not reach http://10.0.0.5:5432/internal?token=abc")
    assert "10.0.0.5" not in job_failure_text(_raised(url))


def test_long_messages_are_cut_and_domain_errors_keep_their_message():
    text = job_failure_text(_raised(ValueError("x" * 5000)))
    assert len(text) <= len("ValueError: ") + MAX_REASON_CHARS
    assert job_failure_text(ApplicationError("The file is empty.")) == "The file is empty."
    assert job_failure_text(_raised(KeyError())) == "KeyError"


@pytest.mark.django_db
def test_the_task_records_the_short_reason_and_logs_the_full_detail(caplog):
    job = job_create(kind=Job.Kind.IMPORT, project=None)
    task = JobTask()
    task.name = "test.task"
    exc = _raised(OSError("disk full at /var/lib/flywheel/data"))
    with caplog.at_level(logging.ERROR, logger="labeling.jobtasks"):
        task.record_failure(job_id=job.pk, exc=exc)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "OSError: disk full at <path>"
    assert "/var/lib/flywheel/data" in caplog.text
    assert "Traceback" in caplog.text
