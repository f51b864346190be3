"""Bring your own crowd data: the aggregate command on RTE and importing crowd labels."""

import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from labeling.models import Annotation, AnnotationEvent, Item, Job
from labeling.selectors import membership_role
from quality.crowdfile import crowd_rows_read
from quality.services.aggregation import project_aggregate
from quality.services.crowd_import import crowd_annotations_import, crowd_import_job_run
from tests.quality.factories import ItemFactory, project_with_members

RTE = Path(__file__).resolve().parents[3] / "shared" / "data" / "crowd" / "rte.standardized.csv"
needs_rte = pytest.mark.skipif(not RTE.exists(), reason=f"RTE crowd data not found at {RTE}")


@needs_rte
@pytest.mark.parametrize(
    ("method", "expected"), [("majority_vote", "0.9187"), ("dawid_skene", "0.9275")]
)
def test_aggregate_command_on_rte_prints_accuracy_against_gold(method, expected):
    out = io.StringIO()
    call_command(
        "aggregate",
        str(RTE),
        method=method,
        item_column="orig_id",
        worker_column="!amt_worker_ids",
        label_column="response",
        gold_column="gold",
        stdout=out,
    )
    text = out.getvalue()
    assert "800 items, 164 annotators, 8000 labels" in text
    assert f"accuracy vs gold: {expected}" in text


def test_aggregate_command_names_the_bad_line(tmp_path):
    path = tmp_path / "crowd.csv"
    path.write_text("item,worker,label\n1,w1,a\n1,w1,b\n")
    with pytest.raises(CommandError, match="line 3: annotator 'w1' labels item '1' twice"):
        call_command("aggregate", str(path), stdout=io.StringIO())
    path.write_text("item,who,label\n1,w1,a\n")
    with pytest.raises(CommandError, match="column 'worker'"):
        call_command("aggregate", str(path), stdout=io.StringIO())


@pytest.mark.django_db
def test_crowd_import_creates_inactive_annotators_and_annotations_then_aggregates(
    queued, django_capture_on_commit_callbacks
):
    project, _, _, _ = project_with_members(k=1, labels=("yes", "no"))
    items = [ItemFactory(project=project, external_id=f"q{n}") for n in range(3)]
    rows = "item,worker,label\n" + "".join(
        f"q{n},{w},{'yes' if (n + (w == 'w3')) % 2 == 0 else 'no'}\n"
        for n in range(3)
        for w in ("w1", "w2", "w3")
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = crowd_annotations_import(project=project, rows=crowd_rows_read(io.StringIO(rows)))
    assert result["created"] == 9
    assert result["annotators"] == 3
    users = get_user_model().objects.filter(username__startswith="crowd.")
    assert sorted(u.username for u in users) == ["crowd.w1", "crowd.w2", "crowd.w3"]
    assert not any(u.is_active or u.has_usable_password() for u in users)
    assert all(membership_role(project=project, user=u) is None for u in users)
    assert AnnotationEvent.objects.filter(item__project=project).count() == 9
    assert set(Item.objects.filter(project=project).values_list("annotation_count", "status")) == {
        (3, "done")
    }
    assert [name for name, *_ in queued] == ["aggregate"]
    # Re-import is idempotent
    again = crowd_annotations_import(project=project, rows=crowd_rows_read(io.StringIO(rows)))
    assert again["created"] == 0
    assert again["unchanged"] == 9
    project_aggregate(project=project)
    finals = dict(Item.objects.filter(project=project).values_list("external_id", "final_labels"))
    assert finals == {"q0": ["yes"], "q1": ["no"], "q2": ["yes"]}
    assert items[0].pk in Item.objects.filter(final_lineage__method="majority_vote").values_list(
        "pk", flat=True
    )


@pytest.mark.django_db
def test_crowd_import_is_all_or_nothing_and_names_the_line(queued):
    project, _, _, _ = project_with_members(k=1, labels=("yes", "no"))
    ItemFactory(project=project, external_id="q1")
    bad = "item,worker,label\nq1,w1,yes\nq1,w2,perhaps\n"
    from labeling.errors import ApplicationError

    with pytest.raises(ApplicationError, match="Line 3: unknown label"):
        crowd_annotations_import(project=project, rows=crowd_rows_read(io.StringIO(bad)))
    missing = "item,worker,label\nq1,w1,yes\nq9,w2,yes\n"
    with pytest.raises(ApplicationError, match="Line 3: item 'q9' is not in this project"):
        crowd_annotations_import(project=project, rows=crowd_rows_read(io.StringIO(missing)))
    assert not Annotation.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_crowd_import_api_runs_as_a_job(queued, django_capture_on_commit_callbacks):
    project, _, _, manager = project_with_members(k=1, labels=("yes", "no"))
    ItemFactory(project=project, external_id="q1")
    client = Client()
    client.force_login(manager)
    upload = SimpleUploadedFile("c.csv", b"id,who,answer\nq1,w1,yes\nq1,w2,no\n")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/projects/{project.pk}/crowd-import/",
            {"file": upload, "item_column": "id", "worker_column": "who", "label_column": "answer"},
        )
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert ("crowd_import", (job_id,)) in [(name, args) for name, args, _ in queued]
    job = crowd_import_job_run(job_id=job_id)
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["created"] == 2
