"""Final labels from aggregation: which items, ties and low confidence, coalesced jobs."""

import pytest

from labeling.models import Item, Job
from quality.models import AnnotatorReliability, QualitySettings
from quality.selectors import adjudication_queue, training_labels
from quality.services.aggregation import aggregation_job_run, project_aggregate
from quality.services.settings import quality_settings_update
from tests.factories import AnnotationFactory
from tests.quality.factories import ItemFactory, answer, project_with_members

pytestmark = pytest.mark.django_db


def test_complete_items_get_a_final_label_ties_wait_for_a_reviewer_incomplete_items_none():
    # Given a k=3 project: one unanimous item, one three-way tie, one with two answers so far
    project, (a, b, c), _, _ = project_with_members(k=3)
    clear, tie, partial = (ItemFactory(project=project) for _ in range(3))
    for user in (a, b, c):
        answer(project, clear, user, "pos")
    answer(project, tie, a, "pos")
    answer(project, tie, b, "neg")
    answer(project, tie, c, "neutral")
    answer(project, partial, a, "neg")
    answer(project, partial, b, "neg")
    # When the project is aggregated (majority vote)
    summary = project_aggregate(project=project)
    # Then
    clear.refresh_from_db()
    tie.refresh_from_db()
    partial.refresh_from_db()
    assert clear.final_labels == ["pos"]
    assert clear.final_confidence == pytest.approx(1.0)
    assert clear.final_lineage["method"] == "majority_vote"
    assert sorted(clear.final_lineage["annotations"]) == sorted(
        clear.annotations.values_list("id", flat=True)
    )
    assert tie.final_labels is None
    assert tie.final_lineage["needs_adjudication"] is True
    assert tie.final_lineage["reason"] == "tie"
    assert tie.final_lineage["proposed"] == ["pos"]  # tie rule: first label in order
    assert partial.final_labels is None
    assert partial.final_lineage is None
    assert list(adjudication_queue(project=project)) == [tie]
    assert summary["final"] == 1
    assert summary["awaiting_adjudication"] == 1
    # Training ignores the item awaiting adjudication
    assert training_labels(project=project).item_ids == [clear.pk]
    # Re-running changes nothing (idempotent)
    assert project_aggregate(project=project)["items_changed"] == 0


def test_threshold_sends_low_confidence_items_to_adjudication_and_ties_can_be_decided_by_rule(
    queued, django_capture_on_commit_callbacks
):
    project, (a, b, c), _, _ = project_with_members(k=3)
    split = ItemFactory(project=project)
    answer(project, split, a, "pos")
    answer(project, split, b, "pos")
    answer(project, split, c, "neg")
    with django_capture_on_commit_callbacks(execute=True):
        quality_settings_update(project=project, adjudication_threshold=0.8)
    assert len(queued) == 1  # a settings change re-aggregates
    project_aggregate(project=project)
    split.refresh_from_db()
    assert split.final_labels is None
    assert split.final_lineage["reason"] == "low_confidence"
    assert split.final_confidence == pytest.approx(2 / 3, abs=1e-6)
    quality_settings_update(project=project, adjudication_threshold=0.5)
    project_aggregate(project=project)
    split.refresh_from_db()
    assert split.final_labels == ["pos"]


def test_dawid_skene_writes_reliability_and_labels(queued):
    project, people, _, _ = project_with_members(k=3, annotators=4)
    QualitySettings.objects.create(project=project, aggregation_method="dawid_skene")
    items = [ItemFactory(project=project) for _ in range(12)]
    for n, item in enumerate(items):
        truth = ["pos", "neg"][n % 2]
        for user in people[:3]:
            answer(project, item, user, truth)
    project_aggregate(project=project)
    finals = list(
        Item.objects.filter(project=project).order_by("id").values_list("final_labels", flat=True)
    )
    assert finals == [[["pos", "neg"][n % 2]] for n in range(12)]
    rows = AnnotatorReliability.objects.filter(project=project)
    assert {r.annotator_id for r in rows} == {u.pk for u in people[:3]}
    assert all(r.method == "dawid_skene" and r.n_annotations == 12 for r in rows)
    assert all(r.reliability > 0.95 for r in rows)


def test_per_item_k_in_a_k1_project_is_aggregated_and_the_core_keeps_single_items(queued):
    # Given a k=1 project where one item wants 3 annotations (overlap)
    project, (a, b, c), _, _ = project_with_members(k=1)
    single = ItemFactory(project=project)
    overlap = ItemFactory(project=project, annotations_wanted=3)
    answer(project, single, a, "neg")
    answer(project, overlap, a, "neg")  # the core labels it from the first answer
    project_aggregate(project=project)
    single.refresh_from_db()
    overlap.refresh_from_db()
    assert single.final_lineage["method"] == "single_annotator"
    assert overlap.final_labels is None  # one of three answers is not a final label
    # (the core's queue honouring per-item k is the lead's; here the answers are written as is)
    for user in (b, c):
        AnnotationFactory(item=overlap, annotator=user, labels=["pos"])
    Item.objects.filter(pk=overlap.pk).update(annotation_count=3, status="done")
    project_aggregate(project=project)
    overlap.refresh_from_db()
    assert overlap.final_labels == ["pos"]
    assert overlap.final_lineage["method"] == "majority_vote"


def test_many_annotations_queue_one_coalesced_job(queued, django_capture_on_commit_callbacks):
    project, (a, b, c), _, _ = project_with_members(k=3)
    items = [ItemFactory(project=project) for _ in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        for item in items:
            for user in (a, b, c):
                answer(project, item, user, "pos")
    # 15 submissions, one job, queued with the debounce delay
    assert [name for name, *_ in queued] == ["aggregate"]
    (_, (job_id,), options) = queued[0]
    assert options["countdown"] >= 0
    job = Job.objects.get(pk=job_id)
    assert job.kind == Job.Kind.AGGREGATE
    assert job.status == Job.Status.PENDING
    # When the job runs, the flag clears, and the next change queues exactly one more job.
    aggregation_job_run(job_id=job_id)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["final"] == 5
    more = ItemFactory(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        answer(project, more, a, "neg")
        answer(project, more, b, "neg")
    assert len(queued) == 2


def test_k1_projects_do_not_queue_aggregation(queued, django_capture_on_commit_callbacks):
    project, (a, _, _), _, _ = project_with_members(k=1)
    with django_capture_on_commit_callbacks(execute=True):
        answer(project, ItemFactory(project=project), a, "pos")
    assert queued == []


def test_training_labels_contract_weights_machine_and_gold():
    project, _, _, _ = project_with_members(k=1)
    human = ItemFactory(
        project=project,
        final_labels=["pos"],
        final_confidence=0.7,
        final_lineage={"method": "dawid_skene", "version": "1"},
    )
    machine = ItemFactory(
        project=project,
        final_labels=["neg"],
        final_confidence=0.9,
        final_lineage={"method": "auto_accept", "version": "1", "machine": True},
    )
    gold = ItemFactory(
        project=project,
        is_gold=True,
        gold_labels=["neutral"],
        final_labels=["neutral"],
        final_confidence=1.0,
        final_lineage={"method": "gold", "version": "1"},
    )
    ItemFactory(
        project=project,
        final_labels=None,
        final_lineage={"method": "majority_vote", "needs_adjudication": True},
    )
    plain = training_labels(project=project)
    assert plain.item_ids == [human.pk, machine.pk, gold.pk]
    assert plain.labels == [["pos"], ["neg"], ["neutral"]]
    assert plain.weights == [1.0, 1.0, 1.0]
    assert training_labels(project=project, weighted=True).weights == [0.7, 0.9, 1.0]
    assert training_labels(project=project, include_machine=False).item_ids == [human.pk, gold.pk]
    assert training_labels(project=project, include_gold=False).item_ids == [human.pk, machine.pk]
