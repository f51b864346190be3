"""The Django admin: every model's pages render, the actions work, history stays read-only."""

import json

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from labeling.models import (
    Annotation,
    AnnotationEvent,
    Item,
    Job,
    Membership,
    Prediction,
    QueueEntry,
)
from tests.factories import (
    AnnotationEventFactory,
    AnnotationFactory,
    AssignmentFactory,
    ItemFactory,
    JobFactory,
    MembershipFactory,
    PredictionFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_of_each(project):
    """One row of every labeling model, linked the way the services link them."""
    item = ItemFactory(project=project, external_id="ext-1", text="A rather good film.")
    prediction = PredictionFactory(item=item, source_id="logreg", labels=["pos"])
    annotation = AnnotationFactory(item=item, labels=["pos"], suggestion=prediction)
    Item.objects.filter(pk=item.pk).update(
        status=Item.Status.DONE,
        annotation_count=1,
        final_labels=["pos"],
        final_confidence=1.0,
        final_lineage={"method": "single_annotator", "annotations": [annotation.pk]},
    )
    return {
        "project": project,
        "label": project.labels.first(),
        "membership": MembershipFactory(project=project),
        "item": item,
        "prediction": prediction,
        "annotation": annotation,
        "annotationevent": AnnotationEventFactory(
            item=item, annotator=annotation.annotator, annotation_id_ref=annotation.pk
        ),
        "assignment": AssignmentFactory(item=item),
        "job": JobFactory(project=project, progress_done=25, progress_total=100),
    }


def _url(obj, view):
    meta = obj._meta
    args = () if view == "changelist" else (obj.pk,)
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def test_every_labeling_model_is_in_the_admin():
    models = set(apps.get_app_config("labeling").get_models())
    assert models <= set(admin.site._registry)


@pytest.mark.parametrize(
    "name",
    [
        "project",
        "label",
        "membership",
        "item",
        "prediction",
        "annotation",
        "annotationevent",
        "assignment",
        "job",
    ],
)
def test_changelist_and_change_page_render(admin_client, one_of_each, name):
    obj = one_of_each[name]

    listing = admin_client.get(_url(obj, "changelist"))
    detail = admin_client.get(_url(obj, "change"))

    assert listing.status_code == 200
    assert obj.pk in [row.pk for row in listing.context["cl"].result_list]
    assert detail.status_code == 200


def test_changelists_search_and_filter(admin_client, one_of_each):
    ItemFactory(project=one_of_each["project"], external_id="other", text="Dull.")
    url = _url(one_of_each["item"], "changelist")

    by_text = admin_client.get(url, {"q": "rather good"})
    by_status = admin_client.get(url, {"status__exact": "open"})

    assert [i.external_id for i in by_text.context["cl"].result_list] == ["ext-1"]
    assert [i.external_id for i in by_status.context["cl"].result_list] == ["other"]


def test_project_list_counts_items_finished_and_members(admin_client, one_of_each):
    project = one_of_each["project"]
    ItemFactory(project=project)
    empty = ProjectFactory()

    response = admin_client.get(_url(project, "changelist"))

    counts = {
        p.pk: (p.item_count, p.done_count, p.member_count)
        for p in response.context["cl"].result_list
    }
    assert counts == {project.pk: (2, 1, 1), empty.pk: (0, 0, 0)}


def test_item_page_shows_annotations_and_predictions_inline(admin_client, one_of_each):
    response = admin_client.get(_url(one_of_each["item"], "change"))

    inlines = {fs.opts.model: fs for fs in response.context["inline_admin_formsets"]}
    assert [f.instance for f in inlines[Annotation].forms] == [one_of_each["annotation"]]
    assert [f.instance.source_id for f in inlines[Prediction].forms] == ["logreg"]
    assert not inlines[Annotation].has_add_permission
    assert not inlines[Annotation].has_change_permission


def test_job_list_shows_progress_percent(admin_client, one_of_each):
    job = one_of_each["job"]
    assert job.status == Job.Status.PENDING
    # a job no worker has picked up waits; it is not at 25% of anything yet
    response = admin_client.get(_url(job, "changelist"))
    assert "waiting for a worker" in response.content.decode()

    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    response = admin_client.get(_url(job, "changelist"))
    assert 'value="25"' in response.content.decode()


def _act(client, obj, action, ids, **extra):
    return client.post(
        _url(obj, "changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [str(i) for i in ids], **extra},
    )


def test_reopen_action_reopens_items_and_clears_their_final_label(admin_client, one_of_each):
    item = one_of_each["item"]
    before = Item.objects.get(pk=item.pk).updated_at

    response = _act(admin_client, item, "reopen_items", [item.pk], index="0")

    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == Item.Status.OPEN
    assert (item.final_labels, item.final_confidence, item.final_lineage) == (None, None, None)
    assert item.updated_at > before
    assert Annotation.objects.filter(item=item).count() == 1  # the history is kept


def test_export_action_streams_only_the_selected_items(admin_client, one_of_each):
    project = one_of_each["project"]
    others = [ItemFactory(project=project) for _ in range(3)]
    chosen = [one_of_each["item"], others[1]]

    response = _act(admin_client, chosen[0], "export_jsonl", [i.pk for i in chosen], index="0")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"].startswith("attachment;")
    rows = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(i.external_id for i in chosen)


def test_export_action_refuses_items_from_several_projects(admin_client, one_of_each):
    elsewhere = ItemFactory(project=ProjectFactory())
    ids = [one_of_each["item"].pk, elsewhere.pk]

    response = _act(admin_client, elsewhere, "export_jsonl", ids, index="0")

    assert response.status_code == 302
    follow = admin_client.get(response.url)
    assert "single project" in follow.content.decode()


def test_add_members_action_asks_for_users_and_role_then_adds_them(admin_client, one_of_each):
    project = one_of_each["project"]
    second = ProjectFactory()
    ann, rev = UserFactory(username="newcomer"), UserFactory(username="reviewer2")
    ids = [project.pk, second.pk]

    form_page = _act(admin_client, project, "add_members", ids, index="0")
    assert form_page.status_code == 200
    assert "newcomer" in form_page.content.decode()
    assert not Membership.objects.filter(user__in=[ann, rev]).exists()

    done = _act(
        admin_client,
        project,
        "add_members",
        ids,
        apply="1",
        users=[ann.pk, rev.pk],
        role=Membership.Role.REVIEWER,
    )

    assert done.status_code == 302
    roles = set(
        Membership.objects.filter(user__in=[ann, rev]).values_list("project_id", "user_id", "role")
    )
    assert roles == {(p, u.pk, "reviewer") for p in (project.pk, second.pk) for u in (ann, rev)}


def test_add_members_without_users_shows_the_form_again(admin_client, one_of_each):
    project = one_of_each["project"]

    response = _act(admin_client, project, "add_members", [project.pk], apply="1", role="manager")

    assert response.status_code == 200
    assert response.context["form"].errors["users"]


def test_annotation_events_cannot_be_added_changed_or_deleted(admin_client, one_of_each):
    event = one_of_each["annotationevent"]
    labels = event.labels

    view = admin_client.get(_url(event, "change"))
    change = admin_client.post(_url(event, "change"), {"labels": '["neg"]', "action": "update"})
    delete = admin_client.post(_url(event, "delete"), {"post": "yes"})
    add = admin_client.get(reverse("admin:labeling_annotationevent_add"))
    bulk = _act(admin_client, event, "delete_selected", [event.pk], index="0", post="yes")

    assert view.status_code == 200
    assert not view.context["has_change_permission"]
    assert change.status_code == 403
    assert delete.status_code == 403
    assert add.status_code == 403
    assert bulk.status_code in {200, 302}
    event.refresh_from_db()
    assert event.labels == labels
    assert AnnotationEvent.objects.count() == 1


def test_the_queue_is_listed_in_serving_order_and_read_only(admin_client, project):
    low = ItemFactory(project=project, priority=0.2)
    high = ItemFactory(project=project, priority=0.9)  # the triggers queue both
    entry = QueueEntry.objects.get(item=low)

    listing = admin_client.get(_url(entry, "changelist"))
    detail = admin_client.get(_url(entry, "change"))
    change = admin_client.post(_url(entry, "change"), {"priority": "99"})
    delete = admin_client.post(_url(entry, "delete"), {"post": "yes"})

    assert listing.status_code == detail.status_code == 200
    assert [e.item_id for e in listing.context["cl"].result_list] == [high.pk, low.pk]
    assert (change.status_code, delete.status_code) == (403, 403)
    assert QueueEntry.objects.get(pk=entry.pk).priority == entry.priority


def test_annotations_are_view_only_so_history_and_counters_stay_right(admin_client, one_of_each):
    annotation = one_of_each["annotation"]

    change = admin_client.post(_url(annotation, "change"), {"labels": '["neg"]'})
    delete = admin_client.post(_url(annotation, "delete"), {"post": "yes"})

    assert (change.status_code, delete.status_code) == (403, 403)
    annotation.refresh_from_db()
    assert annotation.labels == ["pos"]


def test_jobs_are_read_only(admin_client, one_of_each):
    job = one_of_each["job"]

    response = admin_client.post(_url(job, "change"), {"status": "succeeded"})

    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == Job.Status.PENDING


def _change_form_data(admin_client, url: str) -> dict:
    """The admin change form's current values, inlines included, as a browser would post them."""
    response = admin_client.get(url)
    form = response.context["adminform"].form
    data = {}

    def add(bound_form):
        for name in bound_form.fields:
            value = bound_form[name].value()
            if value is None or value is False:
                continue
            key = bound_form.add_prefix(name)
            data[key] = [str(v) for v in value] if isinstance(value, list | tuple) else str(value)

    add(form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for bound in formset.forms:
            add(bound)
    return data


def test_editing_a_label_description_in_the_admin_bumps_the_label_set_version(
    admin_client, django_capture_on_commit_callbacks
):
    from labeling.services.projects import project_create

    project = project_create(name="Admin labels", labels=["sport", "tech"])
    url = f"/admin/labeling/project/{project.pk}/change/"
    data = _change_form_data(admin_client, url)
    sport = project.labels.get(value="sport")
    (key,) = [k for k, v in data.items() if k.endswith("-value") and v == "sport"]
    data[key.replace("-value", "-description")] = "matches and athletes"
    assert data[key.replace("-value", "-id")] == str(sport.pk)

    with django_capture_on_commit_callbacks():
        response = admin_client.post(url, data)

    errors = response.context and list(response.context["errors"])
    assert response.status_code == 302, errors
    project.refresh_from_db()
    assert project.label_set_version == 2
    assert project.labels.get(value="sport").description == "matches and athletes"
    assert Job.objects.filter(project=project, kind=Job.Kind.RANK).exists()

    # saving the form again without a change leaves the version alone
    with django_capture_on_commit_callbacks():
        admin_client.post(url, _change_form_data(admin_client, url))
    project.refresh_from_db()
    assert project.label_set_version == 2
