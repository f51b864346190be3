"""Annotators never see each other's labels before submitting: every page and API endpoint an
annotator can reach, checked while another annotator's answer exists on the item they hold."""

import json

import pytest
from django.test import Client

from labeling.models import Job
from quality.services.aggregation import aggregation_job_run, aggregation_request
from tests.quality.factories import ItemFactory, answer, project_with_members

pytestmark = pytest.mark.django_db

SECRET = "neutral"  # the label only the first annotator chose


@pytest.fixture
def scene(queued):
    """k=2: annotator `first` answered SECRET on the only item; `second` is about to label it.
    A second item is complete and aggregated, so final labels exist in the project."""
    project, (first, second, third), _reviewer, _manager = project_with_members(
        k=2, labels=("pos", "neg", SECRET)
    )
    item = ItemFactory(project=project, text="Held item text.")
    answer(project, item, first, SECRET)
    done = ItemFactory(project=project)
    answer(project, done, first, SECRET)
    answer(project, done, third, SECRET)
    job = aggregation_request(project=project, delay=0)
    aggregation_job_run(job_id=job.pk)
    client = Client()
    client.force_login(second)
    return project, item, done, first, second, client


def _no_secret_annotation(payload, *, first):
    """Nothing in the payload names the first annotator or carries their label as an answer."""
    text = json.dumps(payload)
    assert first.username not in text
    return text


def test_the_api_an_annotator_uses_never_carries_another_annotators_label(scene):
    project, item, done, first, _second, client = scene
    base = f"/api/projects/{project.pk}"
    # The queue hands the held item to the second annotator: no suggestion, no final label.
    leased = client.post(f"{base}/next/", {}, content_type="application/json").json()
    assert leased["item"]["id"] == item.pk
    assert leased["suggestions"] == []
    assert SECRET not in _no_secret_annotation(leased, first=first)
    # Item detail: final labels stripped for annotators (also on an aggregated item they hold).
    detail = client.get(f"{base}/items/{item.pk}/").json()
    assert detail["final_labels"] is None
    assert detail["final_lineage"] is None
    assert SECRET not in _no_secret_annotation(detail, first=first)
    # The complete, aggregated item is not theirs: they cannot open it at all.
    assert client.get(f"{base}/items/{done.pk}/").status_code == 403
    # Annotation list: only their own, whatever the filters say.
    for query in ("", "?mine=0", f"?item={item.pk}", f"?item={done.pk}&mine=false"):
        listed = client.get(f"{base}/annotations/{query}").json()
        assert listed["results"] == []
    # Project, progress: counts only.
    for path in (f"{base}/", f"{base}/progress/", "/api/projects/"):
        _no_secret_annotation(client.get(path).json(), first=first)
    # Items list, reports, adjudication, training labels, jobs list: not for annotators.
    for path in (
        f"{base}/items/",
        f"{base}/quality/report/",
        f"{base}/adjudication/",
        f"{base}/adjudication/{done.pk}/",
        f"{base}/quality/training-labels/",
        f"{base}/jobs/",
        f"{base}/export/",
    ):
        assert client.get(path).status_code == 403, path
    # A job any member may poll carries counts, not labels.
    job = Job.objects.filter(project=project, kind=Job.Kind.AGGREGATE).first()
    polled = client.get(f"/api/jobs/{job.pk}/").json()
    assert SECRET not in _no_secret_annotation(polled, first=first)
    # Overruled answers are off by default (and cover only items they answered).
    assert client.get(f"{base}/overruled/").status_code == 403


def test_the_pages_an_annotator_sees_never_show_another_annotators_answer(scene):
    project, _item, _done, first, _second, client = scene
    for path in (
        "/",
        f"/projects/{project.pk}/",
        f"/projects/{project.pk}/label/",
        f"/projects/{project.pk}/annotations/",
        f"/projects/{project.pk}/overruled/",
    ):
        response = client.get(path, follow=True)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert first.username not in html, path
        assert "Held item text." not in html or path.endswith("/label/"), path
    # The labeling page's undo history holds only the viewer's own answers.
    label_page = client.get(f"/projects/{project.pk}/label/")
    assert label_page.context["config"]["history"] == []
    # Quality pages for reviewers only; the "Quality" link takes annotators to their own page.
    assert client.get(f"/projects/{project.pk}/quality/").url.endswith("/overruled/")
    assert client.get(f"/projects/{project.pk}/adjudication/").status_code == 403
