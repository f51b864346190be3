"""Honeypots and blind labeling stay secret: an annotator sees nothing of other people's
answers or of gold status, on any endpoint or page they can reach.

One project holds everything an annotator must not learn: a gold item (with its known answer
and an `annotation_count` above k) leased to the annotator, another annotator's answers, items
with final labels, and items re-opened by a change of k that still carry their earlier final
label. Then, logged in as the annotator, the test walks every URL of the site: each GET the
annotator may use (and the two loop POSTs that return an item) is checked for secrets, every
other route must refuse them. A new route fails `test_every_route_is_classified` until it is
added to one of the two lists below.
"""

from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from labeling.models import Annotation, Assignment, Item, Job, Membership
from labeling.services.projects import project_settings_update
from quality.services.settings import quality_settings_update
from tests.factories import MembershipFactory, UserFactory, submit_served
from tests.models_app.factories import label_items, topic_project
from tests.models_app.flywheel import no_broker, train_once  # noqa: F401

pytestmark = pytest.mark.django_db

Role = Membership.Role
OTHER = "zed_other_annotator"
ME = "ann_the_annotator"
# Keys whose value tells an annotator about others' answers or gold status.
SECRET_KEYS = {
    "final_labels",
    "final_confidence",
    "final_lineage",
    "is_gold",
    "gold_labels",
    "annotation_count",
    "annotations_wanted",
}
# The same, as they would appear in a page (template context dumped into HTML or JSON config).
SECRET_MARKERS = [OTHER, *SECRET_KEYS]


@pytest.fixture(autouse=True)
def _hashing_embedder(settings):
    settings.EMBEDDING_MODEL = "hashing"


@pytest.fixture
def world(no_broker, django_capture_on_commit_callbacks):  # noqa: F811
    project = topic_project(per_topic=20, annotations_per_item=2)
    items = list(Item.objects.filter(project=project).order_by("id"))
    label_items(items[:30])  # final labels (k was 1 when they were given, say)
    train_once(project, no_broker, django_capture_on_commit_callbacks)  # embeds the texts
    me = UserFactory(username=ME)
    other = UserFactory(username=OTHER)
    MembershipFactory(project=project, user=me, role=Role.ANNOTATOR)
    MembershipFactory(project=project, user=other, role=Role.ANNOTATOR)
    quality_settings_update(project=project, show_overruled=True)

    # k goes up: the 30 finished items re-open, keeping their earlier final label for now.
    project_settings_update(project=project, annotations_per_item=3, confirm=True)
    reopened = items[0]
    reopened.refresh_from_db()
    assert reopened.status == Item.Status.OPEN
    assert reopened.final_labels

    gold = items[45]
    Item.objects.filter(pk=gold.pk).update(
        is_gold=True,
        gold_labels=[gold.metadata["topic"]],
        final_labels=[gold.metadata["topic"]],
        annotation_count=7,
    )
    # Both answer the same items; the other annotator answers more.
    shared = items[40]
    for item in items[40:44]:
        submit_served(project=project, user=other, item_id=item.pk, labels=["sport"])
    mine = submit_served(project=project, user=me, item_id=shared.pk, labels=["tech"])
    # Settled against the annotator: their "where I was overruled" page may show this one.
    Item.objects.filter(pk=shared.pk).update(
        status=Item.Status.DONE,
        final_labels=["sport"],
        final_confidence=0.67,
        final_lineage={"method": "majority_vote"},
    )
    now = timezone.now()
    for item in (reopened, gold):
        Assignment.objects.create(
            item=item,
            project=project,
            user=me,
            leased_at=now,
            expires_at=now + timedelta(hours=1),
        )
    job = Job.objects.filter(project=project).order_by("-id").first()
    # A job report quoting people and answers (as an import's or a crowd import's can).
    Job.objects.filter(pk=job.pk).update(
        result={"errors": [{"row": 3, "message": f"{OTHER} answered 'sport'"}]},
        error=f"annotator {OTHER}",
    )
    return {
        "project": project,
        "me": me,
        "ids": {
            "pid": project.pk,
            "project_id": project.pk,
            "reopened": reopened.pk,
            "gold": gold.pk,
            "shared": shared.pk,
            "aid": mine.pk,
            "jid": job.pk,
        },
    }


# (route name, URL kwargs as keys of world["ids"], query string, method, expected status)
REACHABLE = [
    ("api:project-list", {}, "", "get", 200),
    ("api:project-detail", {"pid": "pid"}, "", "get", 200),
    ("api:project-progress", {"pid": "pid"}, "", "get", 200),
    ("api:item-detail", {"pid": "pid", "iid": "gold"}, "", "get", 200),
    ("api:item-detail", {"pid": "pid", "iid": "reopened"}, "", "get", 200),
    ("api:item-detail", {"pid": "pid", "iid": "shared"}, "", "get", 200),
    ("api:annotation-list", {"pid": "pid"}, "", "get", 200),
    ("api:annotation-list", {"pid": "pid"}, "item=shared", "get", 200),
    ("api:job-detail", {"jid": "jid"}, "", "get", 200),
    ("active_learning_api:item-similar", {"pid": "pid", "iid": "reopened"}, "k=50", "get", 200),
    ("active_learning_api:item-similar", {"pid": "pid", "iid": "gold"}, "k=50", "get", 200),
    ("active_learning_api:item-similar", {"pid": "pid", "iid": "shared"}, "k=50", "get", 200),
    ("quality_api:overruled", {"pid": "pid"}, "", "get", 200),
    ("labeling:project_list", {}, "", "get", 200),
    ("labeling:project_detail", {"project_id": "project_id"}, "", "get", 200),
    ("labeling:label", {"project_id": "project_id"}, "", "get", 200),
    ("labeling:my_annotations", {"project_id": "project_id"}, "", "get", 200),
    ("quality:dashboard", {"project_id": "project_id"}, "", "get", 302),
    ("quality:overruled", {"project_id": "project_id"}, "", "get", 200),
    ("accounts:api_tokens", {}, "", "get", 200),  # their own tokens only
    # The loop's two reads that are POSTs: the next item (a held lease: the re-opened or the
    # gold item) and the undo payload; last, as undo changes what the annotator holds.
    ("api:item-next", {"pid": "pid"}, "", "post", 200),
    ("api:annotation-retract", {"aid": "aid"}, "", "post", 200),
]
# Routes an annotator cannot read (403, or 405 for a GET on a write-only route).
REFUSED = {
    "api:token",  # POST only: GET is 405
    "accounts:api_token_revoke",  # POST only (their own tokens): GET is 405
    "api:item-list",
    "api:item-next",  # GET: 405 (covered above as a POST)
    "api:item-submit",
    "api:item-skip",
    "api:annotation-update",
    "api:annotation-retract",  # GET: 405 (covered above as a POST)
    "api:import-create",
    "api:job-list",
    "api:job-restart",  # POST, managers only: GET is 405
    "api:export",
    "models_app_api:model-version-list",
    "models_app_api:model-version-promote",
    "models_app_api:model-version-rollback",
    "models_app_api:model-train",
    "models_app_api:model-embed",
    "active_learning_api:mined-error-list",
    "weak_supervision_api:lf-list",
    "weak_supervision_api:lf-detail",
    "weak_supervision_api:lf-try",
    "weak_supervision_api:lf-apply",
    "weak_supervision_api:lf-analysis",
    "weak_supervision_api:label-model",
    "weak_supervision_api:llm",
    "weak_supervision_api:cascade",
    "weak_supervision_api:cascade-runs",
    "weak_supervision_api:cascade-run-undo",
    "weak_supervision_api:settings",
    "weak_supervision_api:dashboard",
    "quality_api:report",
    "quality_api:settings",
    "quality_api:aggregate",
    "quality_api:training-labels",
    "quality_api:adjudication-queue",
    "quality_api:adjudication-item",
    "quality_api:adjudication-revoke",
    "quality_api:gold-set",
    "quality_api:gold-clear",
    "quality_api:gold-import",
    "quality_api:crowd-import",
    "labeling:import",
    "active_learning:dashboard",
    "active_learning:similar",
    "weak_supervision:dashboard",
    "quality:settings_update",
    "quality:aggregate",
    "quality:gold_import",
    "quality:adjudication_list",
    "quality:adjudication_item",
}
# Not project data: login, schema, admin (staff only), health.
IGNORED_NAMESPACES = {"admin"}
IGNORED = {"login", "logout", "api-schema", "api-docs", None}


def _routes(resolver=None, namespace: str = "", prefix: str = ""):
    """(name, pattern string) of every named route, namespaced."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            if ns in IGNORED_NAMESPACES:
                continue
            yield from _routes(
                entry, f"{namespace}{ns}:" if ns else namespace, prefix + str(entry.pattern)
            )
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else None
            yield name, prefix + str(entry.pattern)


def test_every_route_is_classified():
    reachable = {name for name, *_ in REACHABLE}
    names = {name for name, _ in _routes()} - IGNORED
    assert names - reachable - REFUSED == set()


def _walk(value, path=""):
    """Every (key path, key, value) pair of a JSON document."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield f"{path}.{key}", key, inner
            yield from _walk(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            yield from _walk(inner, f"{path}[{n}]")


def _own_item_ids(me) -> set[int]:
    return set(Annotation.objects.filter(annotator=me).values_list("item_id", flat=True))


@pytest.mark.parametrize(
    ("name", "kwargs", "query", "method", "expected"),
    REACHABLE,
    ids=[f"{r[0]}({','.join(r[1].values())}){'?' + r[2] if r[2] else ''}" for r in REACHABLE],
)
def test_the_annotator_sees_no_answers_but_their_own(
    client, world, name, kwargs, query, method, expected
):
    ids = world["ids"]
    client.force_login(world["me"])
    own = _own_item_ids(world["me"])
    url = reverse(name, kwargs={key: ids[value] for key, value in kwargs.items()})
    if query:
        key, value = query.split("=")
        query = f"{key}={ids.get(value, value)}"
    response = getattr(client, method)(f"{url}?{query}" if query else url)

    assert response.status_code == expected, response.content[:500]
    body = response.content.decode()
    assert OTHER not in body
    if not response.get("Content-Type", "").startswith("application/json"):
        for marker in SECRET_MARKERS:
            assert marker not in body, f"{marker!r} in {name}"
        return
    for path, key, value in _walk(response.json()):
        if key == "annotator":
            assert value == ME, path
        if key in SECRET_KEYS and not (name == "quality_api:overruled" and key == "final_labels"):
            assert value is None, f"{path} = {value!r}"
        if key in ("priority", "status", "updated_at") and "item" in name:
            assert value is None, f"{path} = {value!r}"
    if name == "quality_api:overruled":
        # Only the final label of the annotator's own (overruled) answers.
        assert {row["item_id"] for row in response.json()} == own == {ids["shared"]}


@pytest.mark.parametrize("name", sorted(REFUSED), ids=sorted(REFUSED))
def test_every_other_route_refuses_the_annotator(client, world, name):
    ids = world["ids"]
    fill = {
        "pid": ids["pid"],
        "project_id": ids["pid"],
        "iid": ids["gold"],
        "item_id": ids["gold"],
        "aid": ids["aid"],
        "jid": ids["jid"],
        "lfid": 1,
        "rid": 1,
        "number": 1,
        "token_id": 1,
    }
    route = dict(_routes())
    kwargs = {k: v for k, v in fill.items() if f":{k}>" in route[name]}
    client.force_login(world["me"])
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code in (403, 405), (name, response.status_code)
    assert OTHER not in response.content.decode()


def test_a_reopened_item_shows_no_earlier_final_label(client, world):
    """The re-opened item the annotator holds: neither the next-item payload nor the item nor
    its neighbours show a final label, although the item still has one."""
    ids = world["ids"]
    client.force_login(world["me"])
    payload = client.post(reverse("api:item-next", kwargs={"pid": ids["pid"]})).json()
    assert payload["item"]["id"] in (ids["reopened"], ids["gold"])
    assert Item.objects.get(pk=ids["reopened"]).final_labels
    detail = client.get(
        reverse("api:item-detail", kwargs={"pid": ids["pid"], "iid": ids["reopened"]})
    ).json()
    assert detail["final_labels"] is None
    similar = client.get(
        reverse("active_learning_api:item-similar", kwargs={"pid": ids["pid"], "iid": ids["gold"]}),
        {"k": 50},
    ).json()
    assert ids["reopened"] in [row["id"] for row in similar]
    assert all(row["final_labels"] is None for row in similar)
