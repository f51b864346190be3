"""Label model job -> pre-labels with lineage; cascade -> auto-accepted final labels, the
verification sample, precision with a Wilson interval, and what each stage settled."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Assignment, Item, Job, Prediction
from labeling.services.annotations import annotation_submit
from labeling.services.exports import export_stream
from tests.factories import MembershipFactory, UserFactory
from tests.weak_supervision.conftest import make_items
from weak_supervision.models import CascadeDecision, LabelModelRun
from weak_supervision.selectors import cascade_report, label_model_report
from weak_supervision.services.apply import apply_job_create, apply_run
from weak_supervision.services.cascade import cascade_job_create, cascade_run
from weak_supervision.services.common import ws_settings_for
from weak_supervision.services.label_model import label_model_job_create, label_model_run
from weak_supervision.services.lfs import lf_create

SPAM = [f"win cash prize {n}" for n in range(30)]
HAM = [f"see you at home {n}" for n in range(30)]
OTHER = [f"nothing here {n}" for n in range(10)]


@pytest.fixture
def voted(spam_project):
    items = make_items(spam_project, SPAM + HAM + OTHER, human={0: "spam", 30: "ham"})
    lf_create(
        project=spam_project,
        name="cash",
        kind="keyword",
        config={"label": "spam", "keywords": ["cash"]},
    )
    lf_create(
        project=spam_project,
        name="prize",
        kind="keyword",
        config={"label": "spam", "keywords": ["prize"]},
    )
    lf_create(
        project=spam_project,
        name="home",
        kind="keyword",
        config={"label": "ham", "keywords": ["home"]},
    )
    apply_run(job_id=apply_job_create(project=spam_project).pk)
    return items


@pytest.mark.parametrize("method", ["majority_vote", "dawid_skene"])
def test_label_model_writes_pre_labels_with_lineage(spam_project, voted, method):
    job = label_model_run(job_id=label_model_job_create(project=spam_project, method=method).pk)
    assert job.status == Job.Status.SUCCEEDED
    run = LabelModelRun.objects.get()
    assert run.method == method
    assert [s["name"] for s in run.sources] == ["cash", "prize", "home"]
    assert all(s["version"] == "1" for s in run.sources)
    assert (run.items, run.covered) == (70, 60)
    predictions = Prediction.objects.filter(source_kind="label_model")
    assert predictions.count() == 60
    first = predictions.get(item=voted[1])
    assert first.labels == ["spam"]
    assert first.source_id == method
    assert first.source_version == run.version
    assert first.details["run"] == run.pk
    assert set(first.scores) == {"spam", "ham"}
    assert predictions.get(item=voted[40]).labels == ["ham"]
    report = label_model_report(project=spam_project)
    assert report["coverage"] == pytest.approx(60 / 70)
    assert report["accuracy"] == 1.0


def test_a_new_run_replaces_the_previous_pre_labels(spam_project, voted):
    label_model_run(job_id=label_model_job_create(project=spam_project, method="majority_vote").pk)
    label_model_run(job_id=label_model_job_create(project=spam_project, method="dawid_skene").pk)
    assert set(Prediction.objects.values_list("source_id", flat=True)) == {"dawid_skene"}


def test_cascade_is_off_until_enabled(spam_project):
    with pytest.raises(ApplicationError, match="switched off"):
        cascade_job_create(project=spam_project)


def _accept(project, voted, *, verify_fraction):
    ws = ws_settings_for(project=project)
    ws.cascade_enabled = True
    ws.cascade_threshold = 0.9
    ws.cascade_verify_fraction = verify_fraction
    ws.cascade_source = "label_model"
    # The fixture's two human labels are the gate's checks (tests/weak_supervision/
    # test_cascade_gate.py covers the gate itself).
    ws.cascade_min_checks = 2
    ws.save()
    label_model_run(job_id=label_model_job_create(project=project, method="majority_vote").pk)
    # the label model job queued the cascade on commit; run it here
    job = Job.objects.filter(kind=Job.Kind.OTHER).order_by("-id").first()
    return cascade_run(job_id=job.pk)


def test_cascade_auto_accepts_confident_pre_labels_and_leaves_the_rest(spam_project, voted):
    job = _accept(spam_project, voted, verify_fraction=0.0)
    assert job.status == Job.Status.SUCCEEDED
    # 58 covered items without a human label; the 10 uncovered stay with humans
    assert job.result["accepted"] == 58
    item = Item.objects.get(pk=voted[1].pk)
    assert item.final_labels == ["spam"]
    assert item.status == Item.Status.DONE
    assert item.final_lineage["method"] == "auto_accept"
    assert item.final_lineage["machine"] is True
    assert item.final_lineage["source"]["kind"] == "label_model"
    # human labels are never overwritten; uncovered items stay open and unlabeled
    assert Item.objects.get(pk=voted[0].pk).final_lineage["method"] == "single_annotator"
    assert Item.objects.get(pk=voted[65].pk).final_labels is None
    assert Item.objects.get(pk=voted[65].pk).status == Item.Status.OPEN
    # the export carries the lineage
    records = [
        json.loads(line)
        for line in b"".join(export_stream(project=spam_project, fmt="jsonl")).decode().splitlines()
    ]
    exported = next(r for r in records if r["id"] == voted[1].external_id)
    assert json.loads(exported["final_lineage_json"])["method"] == "auto_accept"
    assert json.loads(exported["final_lineage_json"])["machine"] is True
    report = cascade_report(project=spam_project)
    stages = {s["stage"]: s["items"] for s in report["stages"]}
    assert stages == {
        "auto_label_model": 58,
        "auto_llm": 0,
        "human": 2,
        "other_machine": 0,
        "unsettled": 10,
    }
    # running again accepts nothing new
    again = cascade_run(job_id=cascade_job_create(project=spam_project).pk)
    assert again.result["accepted"] == 0


def test_verification_sample_goes_to_humans_and_measures_precision(spam_project, voted):
    job = _accept(spam_project, voted, verify_fraction=0.5)
    verify = list(CascadeDecision.objects.filter(verify=True).select_related("item"))
    assert 15 <= len(verify) <= 43  # a fair coin per item
    assert job.result["verification"] == len(verify)
    for decision in verify:
        assert decision.item.status == Item.Status.OPEN  # still in the human queue
        assert decision.item.final_lineage["verification"] is True
    report = cascade_report(project=spam_project)["verification"]
    assert report["checked"] == 0
    assert report["precision"] is None
    # when a human labels the verification items, disagreeing on two of them
    user = UserFactory(username="checker")
    MembershipFactory(project=spam_project, user=user, role="annotator")
    now = timezone.now()
    Assignment.objects.bulk_create(
        [
            Assignment(
                item=d.item,
                project=spam_project,
                user=user,
                leased_at=now,
                expires_at=now + timedelta(minutes=10),
            )
            for d in verify
        ]
    )
    for n, decision in enumerate(verify):
        answer = (
            decision.labels[0] if n >= 2 else ("ham" if decision.labels[0] == "spam" else "spam")
        )
        annotation_submit(
            project=spam_project, user=user, item_id=decision.item_id, labels=[answer]
        )
    report = cascade_report(project=spam_project)["verification"]
    assert report["checked"] == len(verify)
    assert report["agreed"] == len(verify) - 2
    assert report["precision"] == pytest.approx((len(verify) - 2) / len(verify))
    assert report["ci_low"] < report["precision"] < report["ci_high"]
    # the human answer replaced the machine's on those items
    item = Item.objects.get(pk=verify[0].item_id)
    assert item.final_lineage["method"] == "single_annotator"
