"""The cascade never accepts machine labels blindly, and every run can be undone exactly.

Generated spam-like data (20% spam, four one-sided spam keywords and two ham keywords) on which
classic Dawid-Skene (abstentions missing) collapses: it labels every covered item ham, with
confidence >= 0.9, 76% of them right. Before the gate, the cascade auto-accepted all of them.
"""

import random
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Assignment, Item, Job, QueueEntry
from labeling.services.annotations import annotation_submit
from tests.factories import MembershipFactory, UserFactory
from tests.weak_supervision.conftest import make_items
from weak_supervision.models import CascadeChange, CascadeDecision, CascadeRun
from weak_supervision.selectors import cascade_runs
from weak_supervision.services.apply import apply_job_create, apply_run
from weak_supervision.services.cascade import cascade_job_create, cascade_run, cascade_run_undo
from weak_supervision.services.common import ws_settings_for
from weak_supervision.services.label_model import label_model_job_create, label_model_run
from weak_supervision.services.lfs import lf_create

SPAM_WORDS = {"cash": (0.6, 0.02), "prize": (0.5, 0.01), "claim": (0.4, 0.01), "txt": (0.5, 0.03)}
HAM_WORDS = {"home": (0.03, 0.5), "lol": (0.01, 0.4)}
N_ITEMS = 600
N_HUMAN = 60  # the first 60 items carry a (true) human label


def generated(seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, truth = [], []
    for n in range(N_ITEMS):
        spam = rng.random() < 0.2
        words = [f"w{n}"]
        for word, (p_spam, p_ham) in {**SPAM_WORDS, **HAM_WORDS}.items():
            if rng.random() < (p_spam if spam else p_ham):
                words.append(word)
        texts.append(" ".join(words))
        truth.append("spam" if spam else "ham")
    return texts, truth


@pytest.fixture
def world(spam_project):
    texts, truth = generated()
    items = make_items(spam_project, texts, human={n: truth[n] for n in range(N_HUMAN)})
    for word in SPAM_WORDS:
        lf_create(
            project=spam_project, name=word, kind="keyword",
            config={"label": "spam", "keywords": [word]},
        )  # fmt: skip
    for word in HAM_WORDS:
        lf_create(
            project=spam_project, name=word, kind="keyword",
            config={"label": "ham", "keywords": [word]},
        )  # fmt: skip
    apply_run(job_id=apply_job_create(project=spam_project).pk)
    ws = ws_settings_for(project=spam_project)
    ws.cascade_enabled = True
    ws.cascade_source = "label_model"
    ws.cascade_threshold = 0.9
    ws.cascade_verify_fraction = 0.2
    ws.save()
    return {"project": spam_project, "items": items, "truth": dict(zip(texts, truth, strict=True))}


def fit(project, method):
    job = label_model_run(job_id=label_model_job_create(project=project, method=method).pk)
    assert job.status == Job.Status.SUCCEEDED, job.error


def cascade(project, **kwargs):
    job = cascade_run(job_id=cascade_job_create(project=project, **kwargs).pk)
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job


def state(project):
    """Every column of every item (but updated_at), the queue, and the decision rows."""
    items = list(Item.objects.filter(project=project).order_by("id").values())
    for row in items:
        row.pop("updated_at")
    queue = list(QueueEntry.objects.filter(project=project).order_by("item_id").values())
    decisions = list(CascadeDecision.objects.filter(project=project).order_by("id").values())
    return items, queue, decisions


def test_a_collapsed_label_model_is_refused_and_nothing_is_written(world):
    # Given classic Dawid-Skene, which labels every covered item ham
    project = world["project"]
    fit(project, "dawid_skene_classic")
    before = state(project)

    # When the cascade runs
    job = cascade(project)

    # Then it refuses, says why, and writes nothing
    assert job.result["accepted"] == 0
    [refused] = job.result["refused"]
    assert refused["kind"] == "label_model"
    assert refused["codes"] == ["collapsed", "low_accuracy"]
    assert job.message.startswith("Refused to auto-accept, nothing written")
    assert "predicts 'ham' for 100.0% of" in job.message
    assert "not accurate enough" in job.message
    assert state(project) == before
    run = CascadeRun.objects.get(job=job)
    assert run.status == CascadeRun.Status.REFUSED
    assert not CascadeChange.objects.filter(run=run).exists()
    # and the manager sees the reasons in the run list
    [row] = cascade_runs(project=project)
    assert row["status"] == "refused"
    assert row["can_undo"] is False
    assert row["overridable"] is False
    assert row["sources"][0]["reasons"] == refused["reasons"]


def test_accepting_without_checks_does_not_lift_the_collapse(world):
    project = world["project"]
    Item.objects.filter(project=project).update(final_labels=None, final_lineage=None)
    fit(project, "dawid_skene_classic")
    job = cascade(project, accept_unverified=True)
    assert job.result["accepted"] == 0
    assert job.result["refused"][0]["codes"] == ["collapsed", "too_few_checks"]


def test_a_healthy_label_model_passes_the_gate(world):
    project = world["project"]
    fit(project, "dawid_skene")
    job = cascade(project)
    assert job.result["refused"] == []
    assert job.result["accepted"] > 300
    accepted = CascadeDecision.objects.filter(project=project).select_related("item")
    right = sum(d.labels[0] == world["truth"][d.item.text] for d in accepted)
    assert right / len(accepted) > 0.95


def test_too_few_checks_refuses_until_the_manager_accepts_without_checks(world):
    # Given a healthy model but only 10 known answers (30 needed)
    project = world["project"]
    Item.objects.filter(project=project, pk__in=[i.pk for i in world["items"][10:N_HUMAN]]).update(
        final_labels=None, final_lineage=None, annotation_count=0, status=Item.Status.OPEN
    )
    fit(project, "dawid_skene")

    refused = cascade(project)
    assert refused.result["accepted"] == 0
    assert refused.result["refused"][0]["codes"] == ["too_few_checks"]
    assert cascade_runs(project=project)[0]["overridable"] is True

    accepted = cascade(project, accept_unverified=True)
    assert accepted.result["accepted"] > 300
    assert accepted.result["unverified"] is True
    item = Item.objects.filter(final_lineage__run=accepted.result["run"]).first()
    assert item.final_lineage["unverified"] is True


def test_undo_restores_items_queue_and_decisions_exactly(world):
    # Given a healthy model and the state of the project before the cascade
    project = world["project"]
    fit(project, "dawid_skene")
    before = state(project)
    started = timezone.now()

    # When a run auto-accepts (some items done, a verification share moved to the queue head)
    job = cascade(project)
    run = CascadeRun.objects.get(job=job)
    assert run.accepted > 300
    assert run.verification > 0
    assert state(project) != before
    assert QueueEntry.objects.filter(project=project).count() < len(before[1])

    # and is undone
    undone = cascade_run_undo(project=project, run_id=run.pk)

    # Then every item, the queue and the decisions are exactly as before
    assert state(project) == before
    assert undone.status == CascadeRun.Status.UNDONE
    assert undone.undo_result == {"restored": run.accepted, "kept": 0, "kept_items": []}
    # the restored items are marked changed, so incremental exports see the undo
    restored = CascadeChange.objects.filter(run=run).values_list("item_id", flat=True)
    assert all(
        updated >= started
        for updated in Item.objects.filter(pk__in=restored).values_list("updated_at", flat=True)
    )

    # and undoing again changes nothing
    again = cascade_run_undo(project=project, run_id=run.pk)
    assert again.undone_at == undone.undone_at
    assert state(project) == before


def test_undo_keeps_what_a_human_did_after_the_run(world):
    # Given an undone-able run whose verification item a human then answered
    project = world["project"]
    fit(project, "dawid_skene")
    before = state(project)
    run = CascadeRun.objects.get(job=cascade(project))
    decision = CascadeDecision.objects.filter(project=project, verify=True).first()
    user = UserFactory()
    MembershipFactory(project=project, user=user, role="annotator")
    now = timezone.now()
    Assignment.objects.create(
        item_id=decision.item_id, project=project, user=user,
        leased_at=now, expires_at=now + timedelta(minutes=5),
    )  # fmt: skip
    other = "ham" if decision.labels[0] == "spam" else "spam"
    annotation_submit(project=project, user=user, item_id=decision.item_id, labels=[other])
    answered = Item.objects.values().get(pk=decision.item_id)

    # When the run is undone
    undone = cascade_run_undo(project=project, run_id=run.pk)

    # Then the human's item is kept as it is (with the decision that measured the machine),
    # and every other item is back to its state before the run
    assert undone.undo_result["kept"] == 1
    assert undone.undo_result["kept_items"] == [decision.item_id]
    kept = Item.objects.values().get(pk=decision.item_id)
    assert kept == answered
    assert kept["final_labels"] == [other]
    assert CascadeDecision.objects.filter(item_id=decision.item_id).exists()
    items, queue, decisions = state(project)
    items_before = [r for r in before[0] if r["id"] != decision.item_id]
    assert [r for r in items if r["id"] != decision.item_id] == items_before
    assert [r for r in queue if r["item_id"] != decision.item_id] == [
        r for r in before[1] if r["item_id"] != decision.item_id
    ]
    assert [d["item_id"] for d in decisions] == [decision.item_id]


def test_undo_brings_back_the_decision_a_later_run_replaced(world):
    # Given an item accepted by run 1, re-opened by hand, then accepted again by run 2
    project = world["project"]
    fit(project, "dawid_skene")
    first = CascadeRun.objects.get(job=cascade(project))
    decision = CascadeDecision.objects.filter(project=project, verify=False).first()
    first_row = CascadeDecision.objects.filter(pk=decision.pk).values().get()
    Item.objects.filter(pk=decision.item_id).update(
        final_labels=None, final_confidence=None, final_lineage=None, status=Item.Status.OPEN
    )
    between = state(project)
    second = CascadeRun.objects.get(job=cascade(project))
    assert second.accepted == 1

    # When run 2 is undone, then run 1
    cascade_run_undo(project=project, run_id=second.pk)
    assert state(project) == between
    assert CascadeDecision.objects.filter(pk=decision.pk).values().get() == first_row
    undone = cascade_run_undo(project=project, run_id=first.pk)

    # Then run 1 leaves the re-opened item alone (it changed after run 1)
    assert undone.undo_result["kept"] == 1
    assert Item.objects.get(pk=decision.item_id).final_labels is None


def test_a_refused_or_running_run_cannot_be_undone(world):
    project = world["project"]
    fit(project, "dawid_skene_classic")
    refused = CascadeRun.objects.get(job=cascade(project))
    with pytest.raises(ApplicationError, match="refused and changed nothing"):
        cascade_run_undo(project=project, run_id=refused.pk)
    job = cascade_job_create(project=project)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    running = CascadeRun.objects.create(project=project, job=job)
    with pytest.raises(ApplicationError, match="still running"):
        cascade_run_undo(project=project, run_id=running.pk)
    with pytest.raises(CascadeRun.DoesNotExist):
        cascade_run_undo(project=project, run_id=running.pk + 1000)


@pytest.fixture
def members(world):
    out = {}
    for role in ("annotator", "reviewer", "manager"):
        out[role] = UserFactory(username=f"c-{role}")
        MembershipFactory(project=world["project"], user=out[role], role=role)
    return out


def _runs_url(project):
    return f"/api/projects/{project.pk}/cascade/runs/"


def test_the_undo_button_and_api_are_for_managers_only(client, world, members):
    # Given an applied run
    project = world["project"]
    fit(project, "dawid_skene")
    before = state(project)
    run = CascadeRun.objects.get(job=cascade(project))
    after = state(project)
    undo = f"{_runs_url(project)}{run.pk}/undo/"
    page = reverse("weak_supervision:dashboard", kwargs={"project_id": project.pk})

    # the reviewer reads the dashboard but not the runs, and cannot undo
    client.force_login(members["reviewer"])
    body = client.get(page).content.decode()
    assert "cascade-runs" not in body
    assert "Undo cascade run" not in body
    assert client.get(_runs_url(project)).status_code == 403
    assert client.post(undo).status_code == 403
    client.force_login(members["annotator"])
    assert client.get(_runs_url(project)).status_code == 403
    assert client.post(undo).status_code == 403
    assert state(project) == after

    # the manager sees the run with its button, and one POST undoes it
    client.force_login(members["manager"])
    body = client.get(page).content.decode()
    assert f'data-action="cascade-undo" data-run-id="{run.pk}"' in body
    [row] = client.get(_runs_url(project)).json()
    assert (row["id"], row["status"], row["can_undo"]) == (run.pk, "applied", True)
    response = client.post(undo)
    assert response.status_code == 200
    assert response.json()["status"] == "undone"
    assert response.json()["undo_result"]["restored"] == run.accepted
    assert state(project) == before
    assert client.post(undo).status_code == 200  # idempotent
    assert state(project) == before
    assert "Undo cascade run" not in client.get(page).content.decode()


def test_undo_api_refusals_name_the_run_and_write_nothing(client, world, members):
    project = world["project"]
    fit(project, "dawid_skene_classic")
    refused = CascadeRun.objects.get(job=cascade(project))
    client.force_login(members["manager"])
    body = client.get(
        reverse("weak_supervision:dashboard", kwargs={"project_id": project.pk})
    ).content.decode()
    assert "refused, nothing written" in body
    assert "looks degenerate" in body
    before = state(project)
    response = client.post(f"{_runs_url(project)}{refused.pk}/undo/")
    assert response.status_code == 400
    assert response.json()["field"] == "run"
    assert client.post(f"{_runs_url(project)}{refused.pk + 99}/undo/").status_code == 404
    assert client.post(f"{_runs_url(project)}{2**70}/undo/").status_code == 404
    response = client.post(
        f"/api/projects/{project.pk}/cascade/",
        {"accept_unverified": "perhaps"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "accept_unverified" in response.content.decode()
    assert state(project) == before
    assert CascadeRun.objects.get(pk=refused.pk).status == CascadeRun.Status.REFUSED


def test_gate_settings_are_validated(client, world, members):
    client.force_login(members["manager"])
    path = f"/api/projects/{world['project'].pk}/prelabel-settings/"
    for body in (
        {"cascade_min_accuracy": 1.5},
        {"cascade_min_checks": 0},
        {"cascade_max_odds_ratio": 0.5},
    ):
        response = client.patch(path, body, content_type="application/json")
        assert response.status_code == 400, body
        assert next(iter(body)) in response.content.decode()
    response = client.patch(
        path,
        {"cascade_min_accuracy": 0.95, "cascade_min_checks": 50, "cascade_max_odds_ratio": 20},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["cascade_min_checks"] == 50


def test_a_run_stopped_part_way_resumes_and_undoes_what_it_committed(world, settings, monkeypatch):
    # Given a run that dies after its first committed batch of 100 items
    project = world["project"]
    fit(project, "dawid_skene")
    before = state(project)
    settings.WS_WRITE_BATCH_SIZE = 100
    from weak_supervision.services import cascade as cascade_module

    real_hook = cascade_module.after_final_labels_changed
    calls = []

    def dies_on_the_second_batch(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        real_hook(**kwargs)

    monkeypatch.setattr(cascade_module, "after_final_labels_changed", dies_on_the_second_batch)
    job = cascade_job_create(project=project)
    with pytest.raises(RuntimeError):
        cascade_run(job_id=job.pk)
    run = CascadeRun.objects.get(job=job)
    assert run.status == CascadeRun.Status.RUNNING
    assert CascadeChange.objects.filter(run=run).count() == 100
    # while its job is unfinished it cannot be undone
    with pytest.raises(ApplicationError, match="still running"):
        cascade_run_undo(project=project, run_id=run.pk)

    # When the job is resumed, it finishes with the verdict it started with
    monkeypatch.setattr(cascade_module, "after_final_labels_changed", real_hook)
    gate_before = run.gate
    finished = cascade_run(job_id=job.pk)
    run.refresh_from_db()
    assert finished.status == Job.Status.SUCCEEDED
    assert run.gate == gate_before
    assert run.accepted == CascadeChange.objects.filter(run=run).count() > 300
    assert finished.result["accepted"] == run.accepted

    # Then undoing it restores everything
    cascade_run_undo(project=project, run_id=run.pk)
    assert state(project) == before


def test_a_failed_run_can_be_undone_for_what_it_committed(world, settings, monkeypatch):
    project = world["project"]
    fit(project, "dawid_skene")
    before = state(project)
    settings.WS_WRITE_BATCH_SIZE = 100
    from weak_supervision.services import cascade as cascade_module

    def dies(**kwargs):
        if CascadeChange.objects.count() > 100:
            raise RuntimeError("worker killed")

    monkeypatch.setattr(cascade_module, "after_final_labels_changed", dies)
    job = cascade_job_create(project=project)
    with pytest.raises(RuntimeError):
        cascade_run(job_id=job.pk)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED)
    run = CascadeRun.objects.get(job=job)
    assert cascade_runs(project=project)[0]["can_undo"] is True
    undone = cascade_run_undo(project=project, run_id=run.pk)
    assert undone.undo_result["restored"] == 100
    assert state(project) == before
