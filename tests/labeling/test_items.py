"""Re-opening items."""

import pytest

from labeling.models import Annotation, Item
from labeling.services.items import item_reopen
from tests.factories import AnnotationFactory, ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def _finished(project, **extra):
    item = ItemFactory(project=project)
    Item.objects.filter(pk=item.pk).update(
        status=Item.Status.DONE,
        final_labels=["pos"],
        final_confidence=0.9,
        final_lineage={"method": "import"},
        **extra,
    )
    return item


def test_reopen_clears_final_labels_and_keeps_annotations(project):
    # Given finished items in two projects, one of them annotated, and one item not selected
    other = ProjectFactory()
    imported = _finished(project)
    annotated = _finished(other, annotation_count=1)
    AnnotationFactory(item=annotated)
    untouched = _finished(project)
    before = Item.objects.get(pk=imported.pk).updated_at

    # When re-opening the first two
    result = item_reopen(item_ids=[imported.pk, annotated.pk])

    # Then both are open with no final label, the third is unchanged, annotations stay
    rows = {
        pk: (status, labels, confidence, lineage)
        for pk, status, labels, confidence, lineage in Item.objects.values_list(
            "pk", "status", "final_labels", "final_confidence", "final_lineage"
        )
    }
    assert rows[imported.pk] == ("open", None, None, None)
    assert rows[annotated.pk] == ("open", None, None, None)
    assert rows[untouched.pk] == ("done", ["pos"], 0.9, {"method": "import"})
    assert Item.objects.get(pk=imported.pk).updated_at > before
    assert Annotation.objects.filter(item=annotated).exists()
    # and the annotated item (k = 1, one annotation) is reported as already full
    assert result == (2, 1)


def test_reopen_accepts_a_queryset(project):
    items = [_finished(project) for _ in range(3)]

    chosen = Item.objects.filter(pk__in=[i.pk for i in items[:2]]).values("pk")

    result = item_reopen(item_ids=chosen)

    assert result.reopened == 2
    assert Item.objects.filter(status="open").count() == 2
