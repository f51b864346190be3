"""Submitting, editing and undoing annotations, with their history."""

import pytest

from labeling.errors import ApplicationError
from labeling.models import Annotation, AnnotationEvent, Assignment, Item
from labeling.selectors import project_progress
from labeling.services.annotations import (
    annotation_retract,
    annotation_update,
)
from labeling.services.queue import queue_next_item
from tests.factories import ItemFactory, PredictionFactory, ProjectFactory, submit_served

pytestmark = pytest.mark.django_db


def test_submit_records_annotation_history_final_label_and_progress(project, annotator):
    item = ItemFactory(project=project)
    queue_next_item(project=project, user=annotator)

    annotation = submit_served(
        project=project, user=annotator, item_id=item.pk, labels=["pos"], time_spent_ms=1200
    )

    item.refresh_from_db()
    assert item.status == Item.Status.DONE
    assert item.final_labels == ["pos"]
    assert item.final_lineage["annotations"] == [annotation.pk]
    assert AnnotationEvent.objects.get().action == AnnotationEvent.Action.CREATE
    assert Assignment.objects.get(item=item, user=annotator).status == Assignment.Status.SUBMITTED
    assert project_progress(project=project, user=annotator) == {
        "total": 1,
        "done": 1,
        "open": 0,
        "mine": 1,
    }


@pytest.mark.parametrize(
    ("labels", "message"),
    [([], "at least one"), (["nope"], "nope"), (["pos", "neg"], "exactly one")],
)
def test_bad_labels_are_refused_with_a_clear_message(project, annotator, labels, message):
    item = ItemFactory(project=project)
    with pytest.raises(ApplicationError, match=message):
        submit_served(project=project, user=annotator, item_id=item.pk, labels=labels)
    assert not Annotation.objects.exists()


def test_a_suggestion_of_another_item_is_refused_and_nothing_is_written(project, annotator):
    # Given an item leased to the annotator and a machine suggestion made for another item
    item, other = ItemFactory(project=project), ItemFactory(project=project)
    foreign = PredictionFactory(item=other)
    queue_next_item(project=project, user=annotator)

    # When they submit claiming to have accepted that suggestion
    with pytest.raises(ApplicationError, match="suggestion") as refused:
        submit_served(
            project=project,
            user=annotator,
            item_id=item.pk,
            labels=["pos"],
            suggestion_id=foreign.pk,
        )

    # Then the error names the field, and neither the annotation nor its traces were written
    assert refused.value.extra == {"field": "suggestion_id"}
    assert not Annotation.objects.exists()
    assert not AnnotationEvent.objects.exists()
    item.refresh_from_db()
    assert (item.annotation_count, item.status, item.final_labels) == (0, Item.Status.OPEN, None)
    assert Assignment.objects.get(item=item, user=annotator).status == Assignment.Status.LEASED


def test_multi_label_project_takes_several_labels(annotator):
    project = ProjectFactory(multi_label=True, labels=["a", "b", "c"])
    item = ItemFactory(project=project)
    annotation = submit_served(
        project=project, user=annotator, item_id=item.pk, labels=["a", "c", "a"]
    )
    assert annotation.labels == ["a", "c"]


def test_second_submit_edits_instead_of_duplicating(project, annotator):
    item = ItemFactory(project=project)
    submit_served(project=project, user=annotator, item_id=item.pk, labels=["pos"])
    submit_served(project=project, user=annotator, item_id=item.pk, labels=["neg"])

    assert Annotation.objects.get().labels == ["neg"]
    item.refresh_from_db()
    assert item.annotation_count == 1
    assert item.final_labels == ["neg"]


def test_edit_keeps_history(project, annotator):
    item = ItemFactory(project=project)
    annotation = submit_served(project=project, user=annotator, item_id=item.pk, labels=["pos"])

    annotation_update(annotation=annotation, user=annotator, labels=["neutral"])

    events = list(
        AnnotationEvent.objects.order_by("id").values_list("action", "labels", "previous_labels")
    )
    assert events == [("create", ["pos"], None), ("update", ["neutral"], ["pos"])]


def test_undo_reopens_the_item_and_hands_it_back(project, annotator):
    item = ItemFactory(project=project)
    ItemFactory(project=project, priority=-1)
    annotation = submit_served(project=project, user=annotator, item_id=item.pk, labels=["pos"])

    assignment = annotation_retract(annotation=annotation, user=annotator)

    item.refresh_from_db()
    assert assignment.item_id == item.pk
    assert item.status == Item.Status.OPEN
    assert item.annotation_count == 0
    assert item.final_labels is None
    assert queue_next_item(project=project, user=annotator).item_id == item.pk
    assert AnnotationEvent.objects.filter(action="retract").count() == 1


def test_only_the_author_may_edit_or_undo(project, annotator, manager):
    item = ItemFactory(project=project)
    annotation = submit_served(project=project, user=annotator, item_id=item.pk, labels=["pos"])
    with pytest.raises(ApplicationError):
        annotation_update(annotation=annotation, user=manager, labels=["neg"])
    with pytest.raises(ApplicationError):
        annotation_retract(annotation=annotation, user=manager)
