"""The one page that lists jobs to reviewers (the model dashboard; every other job list is the
managers') shows a job's message, error and report to managers and to the reviewer who started
it; other reviewers see its kind, status and progress only (labeling/job_visibility.py; the
API: test_api_permissions)."""

import pytest
from django.urls import reverse

from labeling.models import Job, Membership
from labeling.services.jobs import job_create
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

Role = Membership.Role
SECRET_MESSAGE = "trained on answers of annotator-zed"
SECRET_ERROR = "row 7: annotator-zed said sport"
PAGES = {Job.Kind.TRAIN: "active_learning:dashboard", Job.Kind.EMBED: "active_learning:dashboard"}


@pytest.fixture
def team():
    project = ProjectFactory()
    people = {}
    for name, role in (("boss", Role.MANAGER), ("rev", Role.REVIEWER), ("rev2", Role.REVIEWER)):
        people[name] = UserFactory(username=name)
        MembershipFactory(project=project, user=people[name], role=role)
    return project, people


def _job(project, kind, created_by):
    job = job_create(kind=kind, project=project, created_by=created_by, params={"reason": "x"})
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, message=SECRET_MESSAGE, error=SECRET_ERROR
    )
    return job


@pytest.mark.parametrize("kind", list(PAGES))
@pytest.mark.parametrize(
    ("viewer", "sees_details"), [("boss", True), ("rev", True), ("rev2", False)]
)
def test_a_job_s_details_are_for_managers_and_its_starter(client, team, kind, viewer, sees_details):
    # Given a failed job that reviewer "rev" started
    project, people = team
    job = _job(project, kind, created_by=people["rev"])

    # When a member opens the dashboard that lists it
    client.force_login(people[viewer])
    html = client.get(reverse(PAGES[kind], kwargs={"project_id": project.pk})).content.decode()

    # Then the job is listed to all, its message and error only to the manager and its starter
    assert f"#{job.pk}" in html
    assert (SECRET_MESSAGE in html) is sees_details
    assert (SECRET_ERROR in html) is sees_details
