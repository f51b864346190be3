"""Raising k (or the overlap share) re-opens finished items and clears final labels that rest
on fewer answers than the new k: the API, the service and the admin say how many first and
apply it only when confirmed."""

import pytest
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from labeling.admin import ProjectAdminForm
from labeling.errors import ConflictError
from labeling.models import Item, Membership
from labeling.services.annotations import annotation_submit
from labeling.services.items import project_overlap_apply, project_overlap_preview
from labeling.services.projects import project_settings_update
from labeling.services.queue import queue_next_item
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def _labelled_project(n_labelled=6, n_open=2):
    """A k = 1 project: `n_labelled` items answered once (final labels), `n_open` unanswered."""
    project = ProjectFactory(labels=["pos", "neg"], annotations_per_item=1)
    ItemFactory.create_batch(n_labelled + n_open, project=project)
    user = UserFactory(username=f"a{project.pk}")
    MembershipFactory(project=project, user=user)
    for _ in range(n_labelled):
        assignment = queue_next_item(project=project, user=user)
        annotation_submit(project=project, user=user, item_id=assignment.item_id, labels=["pos"])
    return project


def _state(project):
    return sorted(
        Item.objects.filter(project=project).values_list(
            "pk", "status", "final_labels", "annotations_wanted"
        )
    )


def test_the_preview_counts_what_raising_k_would_do_and_writes_nothing():
    project = _labelled_project()
    before = _state(project)

    preview = project_overlap_preview(project=project, annotations_per_item=2)

    assert preview.reopened == 6
    assert preview.final_labels_cleared == 6
    assert preview.closed == 0
    assert _state(project) == before
    assert "6 finished items would re-open and 6 final labels would be cleared" in (
        preview.describe()
    )
    # the current settings change nothing
    assert project_overlap_preview(project=project) == (0, 0, 0)


def test_the_preview_of_an_overlap_share_matches_what_apply_then_does():
    project = _labelled_project(n_labelled=40, n_open=0)
    project.annotations_per_item = 2
    project.overlap_fraction = 0.3

    preview = project_overlap_preview(project=project)
    project.save()
    result = project_overlap_apply(project=project)

    assert 0 < preview.reopened < 40
    assert preview.reopened == result.reopened
    assert preview.final_labels_cleared == preview.reopened


def test_the_service_refuses_a_change_that_clears_labels_unless_confirmed():
    project = _labelled_project()
    before = _state(project)

    with pytest.raises(ConflictError) as refused:
        project_settings_update(project=project, annotations_per_item=3)

    assert refused.value.extra["field"] == "annotations_per_item"
    assert refused.value.extra["final_labels_cleared"] == 6
    project.refresh_from_db()
    assert project.annotations_per_item == 1
    assert _state(project) == before

    project_settings_update(project=project, annotations_per_item=3, confirm=True)
    project.refresh_from_db()
    assert project.annotations_per_item == 3
    assert Item.objects.filter(project=project, status="open").count() == 8


def test_changes_that_clear_nothing_need_no_confirmation():
    # an unlabelled project, and lowering k, clear no final label
    project = ProjectFactory(labels=["pos", "neg"], annotations_per_item=1)
    ItemFactory.create_batch(3, project=project)
    project_settings_update(project=project, annotations_per_item=3)
    project_settings_update(project=project, annotations_per_item=2, overlap_fraction=0.5)
    project.refresh_from_db()
    assert (project.annotations_per_item, project.overlap_fraction) == (2, 0.5)


def test_the_api_answers_409_with_the_counts_and_writes_nothing_without_confirm():
    project = _labelled_project()
    boss = UserFactory(username="boss-confirm")
    MembershipFactory(project=project, user=boss, role=Membership.Role.MANAGER)
    api = APIClient()
    api.force_authenticate(boss)
    before = _state(project)

    refused = api.patch(f"/api/projects/{project.pk}/", {"k": 2}, format="json")

    assert refused.status_code == 409
    body = refused.json()
    assert body["field"] == "annotations_per_item"
    assert body["items_reopened"] == 6
    assert body["final_labels_cleared"] == 6
    assert "confirm" in body["detail"]
    assert _state(project) == before
    project.refresh_from_db()
    assert project.annotations_per_item == 1

    applied = api.patch(f"/api/projects/{project.pk}/", {"k": 2, "confirm": True}, format="json")
    assert applied.status_code == 200, applied.content
    assert applied.json()["k"] == 2
    assert Item.objects.filter(project=project, status="open").count() == 8


def _admin_form(project, **changes):
    data = {**model_to_dict(project), **changes}
    data = {key: value for key, value in data.items() if value is not None}
    return ProjectAdminForm(data=data, instance=project)


def test_the_admin_form_asks_for_confirmation_with_the_counts():
    project = _labelled_project()

    form = _admin_form(project, annotations_per_item=2)
    assert not form.is_valid()
    assert "6 final labels would be cleared" in str(form.non_field_errors())

    confirmed = _admin_form(project, annotations_per_item=2, confirm_overlap_change="on")
    assert confirmed.is_valid(), confirmed.errors
    # a change of anything else needs no confirmation
    project.refresh_from_db()
    assert _admin_form(project, guidelines="Be careful.").is_valid()
