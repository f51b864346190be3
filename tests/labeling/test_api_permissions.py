"""The API's permission matrix: every endpoint x every kind of caller x two projects.

Callers hold their role in project A only; a staff user holds none anywhere and is a non-member
like any other (is_staff opens the admin, not the projects); a superuser holds none but manages
every project. Rules: anonymous gets 401; a non-member gets 404, the same answer as for a
project that does not exist, so project B's existence never leaks to A's members; a member whose
role is too low gets 403; and a refused request changes nothing.
"""

from dataclasses import dataclass, field

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import (
    Annotation,
    AnnotationEvent,
    Assignment,
    Item,
    Job,
    Membership,
    Project,
)
from labeling.services.jobs import job_create
from tests.factories import (
    ItemFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
    served,
    submit_served,
)
from weak_supervision.models import CascadeRun, WeakSupervisionSettings

pytestmark = pytest.mark.django_db

Role = Membership.Role
RANK = {Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.MANAGER: 3}
CALLERS = ["anonymous", "non-member", "annotator", "reviewer", "manager", "staff", "superuser"]
AUTHOR_ONLY = "author"  # only the annotation's author; every other member gets 403


@dataclass
class Endpoint:
    name: str
    method: str
    route: str
    kwargs: tuple[str, ...]  # which objects of the project fill the route
    rule: str  # the lowest role allowed, or AUTHOR_ONLY
    success: int
    body: object = None
    body_format: str = "json"
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


def _csv_upload():
    return SimpleUploadedFile("items.csv", b"id,text\nn1,hello there\n", content_type="text/csv")


ENDPOINTS = [
    Endpoint("project-detail", "get", "project-detail", ("pid",), Role.ANNOTATOR, 200),
    Endpoint("progress", "get", "project-progress", ("pid",), Role.ANNOTATOR, 200),
    Endpoint("items", "get", "item-list", ("pid",), Role.REVIEWER, 200),
    Endpoint("item-detail", "get", "item-detail", ("pid", "iid"), Role.REVIEWER, 200),
    Endpoint("next", "post", "item-next", ("pid",), Role.ANNOTATOR, 200, body={}),
    Endpoint(
        "submit", "post", "item-submit", ("pid", "iid"), Role.ANNOTATOR, 201,
        body={"labels": ["pos"]},
    ),
    Endpoint("skip", "post", "item-skip", ("pid", "iid"), Role.ANNOTATOR, 204),
    Endpoint("annotations", "get", "annotation-list", ("pid",), Role.ANNOTATOR, 200),
    Endpoint(
        "annotation-edit", "patch", "annotation-update", ("aid",), AUTHOR_ONLY, 200,
        body={"labels": ["neg"]},
    ),
    Endpoint("annotation-retract", "post", "annotation-retract", ("aid",), AUTHOR_ONLY, 200),
    Endpoint(
        "import", "post", "import-create", ("pid",), Role.MANAGER, 202,
        body=lambda: {"file": _csv_upload(), "format": "csv"}, body_format="multipart",
    ),
    Endpoint("jobs", "get", "job-list", ("pid",), Role.MANAGER, 200),
    Endpoint("job-detail", "get", "job-detail", ("jid",), Role.ANNOTATOR, 200),
    Endpoint("job-restart", "post", "job-restart", ("jid",), Role.MANAGER, 202),
    Endpoint(
        "export", "get", "export", ("pid",), Role.MANAGER, 200, extra={"format": "jsonl"},
    ),
    Endpoint(
        "prelabel-settings", "get", "weak_supervision_api:settings", ("pid",), Role.MANAGER, 200,
    ),
    Endpoint(
        "prelabel-settings-edit", "patch", "weak_supervision_api:settings", ("pid",),
        Role.MANAGER, 200, body={"cascade_threshold": 0.9},
    ),
    # LLM endpoints are the operator's: a URL outside LLM_ALLOWED_BASE_URLS (here the
    # database's port) is refused even to managers, and nothing is written.
    Endpoint(
        "prelabel-settings-foreign-endpoint", "patch", "weak_supervision_api:settings", ("pid",),
        Role.MANAGER, 400, body={"llm_base_url": "http://127.0.0.1:5432/", "llm_api_key": "k"},
    ),
    # Cascade runs name job details and undo machine labels: managers only.
    Endpoint(
        "cascade-runs", "get", "weak_supervision_api:cascade-runs", ("pid",), Role.MANAGER, 200,
    ),
    Endpoint(
        "cascade-run-undo", "post", "weak_supervision_api:cascade-run-undo", ("pid", "rid"),
        Role.MANAGER, 200,
    ),
]  # fmt: skip


@pytest.fixture
def world(db):
    """Projects A and B, each with an open item, an annotation by its own author, and a job;
    one user per role in A, a non-member, a staff user and a superuser."""
    objects = {}
    for key in ("A", "B"):
        project = ProjectFactory(name=f"Project {key}")
        author = UserFactory(username=f"author-{key}")
        MembershipFactory(project=project, user=author)
        annotated = ItemFactory(project=project, priority=-1)
        objects[key] = {
            "pid": project.pk,
            "iid": ItemFactory(project=project, priority=1).pk,
            "aid": submit_served(
                project=project, user=author, item_id=annotated.pk, labels=["pos"]
            ).pk,
            "jid": _job_with_a_report(project).pk,
            "rid": CascadeRun.objects.create(project=project, status="applied").pk,
        }
    project_a = Project.objects.get(pk=objects["A"]["pid"])
    users = {
        "anonymous": None,
        "non-member": UserFactory(username="stranger"),
        "staff": UserFactory(username="staff", is_staff=True),
        "superuser": UserFactory(username="root", is_staff=True, is_superuser=True),
    }
    for role in (Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER):
        users[role] = UserFactory(username=role)
        MembershipFactory(project=project_a, user=users[role], role=role)
    # Everyone was handed each project's open item (a submit needs that; no slot is held).
    for key in ("A", "B"):
        for user in users.values():
            if user is not None:
                served(item_id=objects[key]["iid"], user=user)
    return objects, users


# A job's details quote people and answers (an import's row report, say): managers read them,
# a reviewer only for a job they started, anyone else who may poll the job gets progress only.
JOB_DETAILS = {
    "message": "3 of 4 rows imported",
    "error": "row 4: author-A answered 'pos'",
    "result": {"errors": [{"row": 4, "reason": "author-A answered 'pos'"}]},
}
JOB_DETAIL_READERS = {Role.MANAGER, "superuser"}


def _job_with_a_report(project, created_by=None):
    job = job_create(kind=Job.Kind.IMPORT, project=project, created_by=created_by)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, progress_done=3, **JOB_DETAILS)
    return job


def _job_details(body: dict) -> dict:
    return {key: body[key] for key in JOB_DETAILS}


def _client(user):
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def _expected(endpoint: Endpoint, caller: str, where: str) -> int:
    if caller == "anonymous":
        return 401
    if caller == "superuser":
        role = Role.MANAGER
    elif caller in RANK and where == "A":
        role = caller
    else:
        return 404
    if endpoint.rule == AUTHOR_ONLY:
        return 403
    return endpoint.success if RANK[role] >= RANK[endpoint.rule] else 403


def _call(client, endpoint: Endpoint, objects: dict):
    route = endpoint.route if ":" in endpoint.route else f"api:{endpoint.route}"
    path = reverse(route, kwargs={k: objects[k] for k in endpoint.kwargs})
    if endpoint.method == "get":
        return client.get(path, endpoint.extra)
    body = endpoint.body() if callable(endpoint.body) else endpoint.body
    return getattr(client, endpoint.method)(path, body, format=endpoint.body_format)


def _state():
    return (
        list(Annotation.objects.order_by("pk").values_list("pk", "labels")),
        Assignment.objects.count(),
        AnnotationEvent.objects.count(),
        list(Job.objects.order_by("pk").values_list("pk", "status")),
        list(Item.objects.order_by("pk").values_list("pk", "status")),
        list(
            WeakSupervisionSettings.objects.order_by("pk").values_list(
                "project_id", "llm_base_url", "llm_api_key_sealed", "cascade_threshold"
            )
        ),
        list(CascadeRun.objects.order_by("pk").values_list("pk", "status", "undone_at")),
    )


@pytest.mark.parametrize("where", ["A", "B"])
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_permission_matrix(world, endpoint, caller, where):
    # Given a caller whose role (if any) is in project A
    objects, users = world
    before = _state()

    # When they call the endpoint on an object of project A or B
    response = _call(_client(users[caller]), endpoint, objects[where])

    # Then
    expected = _expected(endpoint, caller, where)
    assert response.status_code == expected, getattr(response, "data", response)
    if expected == 404:
        assert response.json() == {"detail": "Not found."}
    if expected == 400:
        assert response.json()["field"] == "llm_base_url"
    if expected in (400, 401, 403, 404):
        assert _state() == before, "a refused request must change nothing"
    if endpoint.name == "job-detail" and expected == 200:
        body = response.json()
        assert (body["status"], body["progress_done"]) == ("failed", 3)
        redacted = {"message": "", "error": "", "result": {}}
        assert _job_details(body) == (JOB_DETAILS if caller in JOB_DETAIL_READERS else redacted)


@pytest.mark.parametrize(
    ("caller", "visible"),
    [
        ("non-member", []),
        ("annotator", ["A"]),
        ("reviewer", ["A"]),
        ("manager", ["A"]),
        ("staff", []),
        ("superuser", ["A", "B"]),
    ],
)
def test_project_list_shows_only_my_projects(world, caller, visible):
    objects, users = world

    response = _client(users[caller]).get(reverse("api:project-list"))

    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [objects[key]["pid"] for key in visible]


def test_project_list_needs_a_login(world):
    assert _client(None).get(reverse("api:project-list")).status_code == 401


def test_another_project_looks_exactly_like_a_missing_one(world):
    # Given an annotator of A
    objects, users = world
    client = _client(users[Role.ANNOTATOR])
    missing = max(objects["A"]["pid"], objects["B"]["pid"]) + 1000

    # When they probe B and a project id that does not exist
    other = client.get(reverse("api:project-detail", kwargs={"pid": objects["B"]["pid"]}))
    absent = client.get(reverse("api:project-detail", kwargs={"pid": missing}))

    # Then the answers cannot be told apart
    assert (other.status_code, other.content) == (absent.status_code, absent.content)


def test_the_author_may_edit_and_undo_their_annotation(world):
    # Given the author of A's annotation
    objects, _ = world
    author = Annotation.objects.get(pk=objects["A"]["aid"]).annotator
    client = _client(author)

    edit = client.patch(
        reverse("api:annotation-update", kwargs={"aid": objects["A"]["aid"]}),
        {"labels": ["neg"]},
        format="json",
    )
    undo = client.post(reverse("api:annotation-retract", kwargs={"aid": objects["A"]["aid"]}))

    assert (edit.status_code, undo.status_code) == (200, 200)


def test_an_author_removed_from_the_project_cannot_touch_their_annotation(world):
    objects, _ = world
    annotation = Annotation.objects.get(pk=objects["A"]["aid"])
    Membership.objects.filter(user=annotation.annotator).delete()

    response = _client(annotation.annotator).patch(
        reverse("api:annotation-update", kwargs={"aid": annotation.pk}),
        {"labels": ["neg"]},
        format="json",
    )

    assert response.status_code == 404


def test_a_job_without_a_project_is_visible_to_superusers_only(world):
    _, users = world
    job = job_create(kind=Job.Kind.OTHER)
    path = reverse("api:job-detail", kwargs={"jid": job.pk})

    assert _client(users["superuser"]).get(path).status_code == 200
    assert _client(users["staff"]).get(path).status_code == 404
    assert _client(users[Role.MANAGER]).get(path).status_code == 404


@pytest.mark.parametrize(
    ("starter", "sees_details"),
    [(Role.ANNOTATOR, False), (Role.REVIEWER, True), (Role.MANAGER, True)],
)
def test_the_member_who_started_a_job_reads_its_details_unless_an_annotator(
    world, starter, sees_details
):
    # Given a job of A started by a member (an annotator's: recorded before a demotion, say)
    objects, users = world
    job = _job_with_a_report(Project.objects.get(pk=objects["A"]["pid"]), users[starter])
    path = reverse("api:job-detail", kwargs={"jid": job.pk})

    # When they, and another reviewer of A, poll it
    other = UserFactory(username="other-reviewer")
    MembershipFactory(project=job.project, user=other, role=Role.REVIEWER)
    own, others = (_client(u).get(path).json() for u in (users[starter], other))

    # Then the starter reads the details if above annotator; the other reviewer never does
    assert (_job_details(own) == JOB_DETAILS) is sees_details
    assert _job_details(others) == {"message": "", "error": "", "result": {}}
