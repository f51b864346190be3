"""Issue 16's case on the real SMS Spam Collection, through the services: classic Dawid-Skene
collapses onto one class and the cascade refuses it, writing nothing; the default Dawid-Skene
passes the gate, and undoing its run restores every item and the queue.

All 5,574 messages are items; the 200-message development sample the labeling functions were
written from (`bench.weak_supervision_spam`) carries its true labels as human labels, the
only known answers. Run with ``-s`` to see the numbers.
"""

import hashlib
import random
from collections import Counter

import pytest

from bench.weak_supervision_spam import DATA, DEV_SIZE, LFS, SEED, load
from labeling.models import Item, Job, Prediction, QueueEntry
from tests.factories import ProjectFactory
from weak_supervision.models import CascadeDecision, CascadeRun
from weak_supervision.services.apply import apply_job_create, apply_run
from weak_supervision.services.cascade import cascade_job_create, cascade_run, cascade_run_undo
from weak_supervision.services.common import ws_settings_for
from weak_supervision.services.label_model import label_model_job_create, label_model_run
from weak_supervision.services.lfs import lf_create

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not DATA.exists(), reason=f"SMS spam data not found at {DATA}"),
]
THRESHOLD = 0.95


@pytest.fixture
def spam():
    texts, y = load()
    labels = ["ham", "spam"]
    truth = [labels[c] for c in y]
    order = list(range(len(texts)))
    random.Random(SEED).shuffle(order)
    dev = set(order[:DEV_SIZE])
    project = ProjectFactory(labels=["spam", "ham"])
    Item.objects.bulk_create(
        Item(
            project=project, external_id=f"sms-{n}", text=text,
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
            final_labels=[truth[n]] if n in dev else None,
            final_confidence=1.0 if n in dev else None,
            final_lineage={"method": "single_annotator", "version": "1"} if n in dev else None,
            status=Item.Status.DONE if n in dev else Item.Status.OPEN,
            annotation_count=1 if n in dev else 0,
        )
        for n, text in enumerate(texts)
    )  # fmt: skip
    for name, kind, config in LFS:
        lf_create(project=project, name=name, kind=kind, config=config)
    apply_run(job_id=apply_job_create(project=project).pk)
    ws = ws_settings_for(project=project)
    ws.cascade_enabled = True
    ws.cascade_source = "label_model"
    ws.cascade_threshold = THRESHOLD
    ws.save()
    by_id = dict(
        zip(
            Item.objects.filter(project=project).order_by("id").values_list("id", flat=True),
            truth,
            strict=True,
        )
    )
    return project, by_id


def _fit_and_cascade(project, method):
    job = label_model_run(job_id=label_model_job_create(project=project, method=method).pk)
    assert job.status == Job.Status.SUCCEEDED, job.error
    job = cascade_run(job_id=cascade_job_create(project=project).pk)
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job


def _would_accept(project, truth):
    """What the cascade would have accepted without the gate, and how much of it is right."""
    rows = Prediction.objects.filter(
        project=project,
        source_kind="label_model",
        confidence__gte=THRESHOLD,
        item__annotation_count=0,
        item__final_labels__isnull=True,
    ).values_list("item_id", "labels")
    right = sum(labels[0] == truth[item_id] for item_id, labels in rows)
    return len(rows), right


def _state(project):
    items = list(Item.objects.filter(project=project).order_by("id").values())
    for row in items:
        row.pop("updated_at")
    return items, list(QueueEntry.objects.filter(project=project).order_by("item_id").values())


def test_classic_dawid_skene_collapses_on_sms_spam_and_is_refused(spam):
    project, truth = spam
    before = _state(project)

    job = _fit_and_cascade(project, "dawid_skene_classic")

    n, right = _would_accept(project, truth)
    predicted = Counter(
        labels[0]
        for labels in Prediction.objects.filter(project=project).values_list("labels", flat=True)
    )
    print(
        f"\nclassic Dawid-Skene: predictions {dict(predicted)}; without the gate the cascade "
        f"would accept {n} items, {right / n:.1%} right"
    )
    print(f"cascade: {job.message}")
    assert predicted["spam"] == 0  # the collapse
    assert n > 3000
    assert right / n < 0.85
    assert job.result["accepted"] == 0
    assert job.result["refused"][0]["codes"] == ["collapsed", "low_accuracy"]
    assert _state(project) == before
    assert not CascadeDecision.objects.filter(project=project).exists()


def test_default_dawid_skene_passes_and_its_run_undoes_exactly(spam):
    project, truth = spam
    before = _state(project)

    job = _fit_and_cascade(project, "dawid_skene")

    run = CascadeRun.objects.get(job=job)
    gate = run.gate["sources"][0]
    decisions = CascadeDecision.objects.filter(project=project)
    right = sum(d.labels[0] == truth[d.item_id] for d in decisions)
    predicted = Counter(
        labels[0]
        for labels in Prediction.objects.filter(project=project).values_list("labels", flat=True)
    )
    print(
        f"\nDawid-Skene: predictions {dict(predicted)}; gate {gate['codes'] or 'passed'}; "
        "accuracy on the 200 human labels "
        f"{gate['accuracy'][-1]['accuracy']:.3f} ({gate['accuracy'][-1]['n']} checks); "
        f"accepted {run.accepted}, {right / run.accepted:.1%} right"
    )
    assert job.result["refused"] == []
    assert run.accepted > 3000
    assert right / run.accepted > 0.98

    cascade_run_undo(project=project, run_id=run.pk)
    assert _state(project) == before
