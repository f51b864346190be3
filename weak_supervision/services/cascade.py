"""The cascade: auto-accept confident pre-labels as final labels; the rest stay with humans.

Before anything is written, each source (the label model's current run, the LLM's current
answers) goes through the gate of `weak_supervision.cascade_gate`: a source whose predictions
collapse onto one class, or whose accuracy on gold and human-labelled items is below the
project's minimum, is refused with the reason, and so is one that cannot be checked (too few
such items) unless the manager asked to accept without checks. A run whose every source is
refused writes nothing.

For every item that has no final label, no annotation yet and is not a gold item, take the
accepted sources' pre-label (the more confident one for ``best``). At or above the threshold:

- ``Item.final_labels`` = the pre-label, ``final_confidence`` = its confidence,
  ``final_lineage`` = ``{"method": "auto_accept", "version": "2", "machine": true,
  "source": {"kind", "id", "version"}, "confidence", "threshold", "verification", "job",
  "run", "unverified"}``; machine labels never count as human or held-out gold anywhere (see
  `labeling.services.hooks`);
- the item is marked done, so it leaves the human queue, except for a random share
  (``cascade_verify_fraction``, a fixed coin per item) that stays open at the head of the
  queue: a human labels it and their answer replaces the machine's, which measures the
  precision of auto-acceptance;
- a `CascadeDecision` row keeps what was accepted, a `CascadeChange` row the item's state
  before and after (so `cascade_run_undo` can restore it), and `after_final_labels_changed` is
  called.

Rows are re-checked under a row lock when written, so an item an annotator answered meanwhile
keeps the human's answer.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Item, Job, Prediction, Project
from labeling.services.hooks import after_final_labels_changed
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed
from weak_supervision.cascade_gate import GateConfig, gate
from weak_supervision.metrics import unit_hash
from weak_supervision.models import (
    CascadeChange,
    CascadeDecision,
    CascadeRun,
    LabelModelRun,
    WeakSupervisionSettings,
)
from weak_supervision.selectors import cascade_run_undoable, current_llm_source
from weak_supervision.services.common import human_labels, project_labels, ws_settings_for

Source = WeakSupervisionSettings.CascadeSource
LINEAGE_VERSION = "2"
# What a run changes on an item, and what its undo puts back.
SNAPSHOT_FIELDS = ("final_labels", "final_confidence", "final_lineage", "status", "priority")
_DECISION_FIELDS = (
    "id",
    "labels",
    "confidence",
    "source_kind",
    "source_id",
    "source_version",
    "threshold",
    "verify",
    "job_id",
    "created_at",
)


def cascade_job_create(
    *, project: Project, user: AbstractBaseUser | None = None, accept_unverified: bool = False
) -> Job:
    """Queue a cascade run. ``accept_unverified``: a manager's explicit choice to auto-accept
    from a source that passes the gate's other checks but has too few gold or human-labelled
    items to be checked on; the automatic runs after label-model and LLM jobs never set it."""
    ws = ws_settings_for(project=project)
    if not ws.cascade_enabled:
        raise ApplicationError(
            "The cascade is switched off for this project.", {"field": "cascade_enabled"}
        )
    job = job_create(
        kind=Job.Kind.OTHER,
        project=project,
        params={"action": "cascade", "accept_unverified": bool(accept_unverified)},
        created_by=user if user is not None and user.is_authenticated else None,
    )
    from weak_supervision.tasks import enqueue

    transaction.on_commit(lambda: enqueue(job=job))
    return job


def _sources(*, project: Project, ws: WeakSupervisionSettings) -> list[tuple[str, str, str]]:
    out = []
    if ws.cascade_source in (Source.LABEL_MODEL, Source.BEST):
        run = LabelModelRun.objects.filter(project=project).first()
        if run is not None:
            out.append((Prediction.SourceKind.LABEL_MODEL, run.method, run.version))
    if ws.cascade_source in (Source.LLM, Source.BEST):
        llm = current_llm_source(project=project)
        if llm is not None:
            out.append((Prediction.SourceKind.LLM, llm[0], llm[1]))
    return out


def _source_name(kind: str, source_id: str) -> str:
    return f"The label model ({source_id})" if kind == "label_model" else f"The LLM ({source_id})"


def known_answers(*, project: Project) -> dict[int, tuple[str, str]]:
    """item id -> (kind, answer) for every item whose answer is known: a gold item's answer,
    a human's final label on an item of the verification sample, any other human final
    label. Machine labels are never answers."""
    gold = dict(
        (item_id, labels[0])
        for item_id, labels in Item.objects.filter(project=project, is_gold=True)
        .values_list("id", "gold_labels")
        .iterator(chunk_size=5000)
        if isinstance(labels, list) and labels
    )
    verified = set(
        CascadeDecision.objects.filter(project=project, verify=True).values_list(
            "item_id", flat=True
        )
    )
    out = {item_id: ("gold", label) for item_id, label in gold.items()}
    for item_id, label in human_labels(project=project).items():
        if item_id not in out:
            out[item_id] = ("verification" if item_id in verified else "human", label)
    return out


def cascade_gate_verdicts(
    *,
    project: Project,
    ws: WeakSupervisionSettings,
    sources: list[tuple[str, str, str]],
    accept_unverified: bool = False,
) -> list[dict[str, Any]]:
    """The gate's verdict on each source, from its current predictions and the known answers
    (see `weak_supervision.cascade_gate`)."""
    labels = project_labels(project=project)
    answers = known_answers(project=project)
    truth_counts = Counter(label for _, label in answers.values())
    config = GateConfig(
        min_accuracy=ws.cascade_min_accuracy,
        min_checks=ws.cascade_min_checks,
        max_odds_ratio=ws.cascade_max_odds_ratio,
    )
    out = []
    for kind, source_id, version in sources:
        predicted: Counter[str] = Counter()
        checks: dict[str, list[int]] = {}
        for item_id, pred_labels, confidence in (
            Prediction.objects.filter(
                project=project, source_kind=kind, source_id=source_id, source_version=version
            )
            .values_list("item_id", "labels", "confidence")
            .iterator(chunk_size=5000)
        ):
            if not pred_labels:
                continue
            predicted[pred_labels[0]] += 1
            answer = answers.get(item_id)
            if answer is not None and confidence >= ws.cascade_threshold:
                row = checks.setdefault(answer[0], [0, 0])
                row[0] += 1
                row[1] += int(pred_labels[0] == answer[1])
        verdict = gate(
            source=_source_name(kind, source_id),
            labels=labels,
            predicted_counts=predicted,
            truth_counts=truth_counts,
            checks={k: (n, c) for k, (n, c) in checks.items()},
            config=config,
            accept_unverified=accept_unverified,
        )
        out.append({"kind": kind, "id": source_id, "version": version, **verdict.as_dict()})
    return out


def cascade_candidates(
    *,
    project: Project,
    ws: WeakSupervisionSettings,
    sources: list[tuple[str, str, str]] | None = None,
) -> dict[int, dict]:
    """item id -> the most confident pre-label at or above the threshold, for items still
    waiting for a label, from ``sources`` (default: every source of the project's setting)."""
    best: dict[int, dict[str, Any]] = {}
    for kind, source_id, version in (
        _sources(project=project, ws=ws) if sources is None else sources
    ):
        rows = (
            Prediction.objects.filter(
                project=project,
                source_kind=kind,
                source_id=source_id,
                source_version=version,
                confidence__gte=ws.cascade_threshold,
                item__final_labels__isnull=True,
                item__annotation_count=0,
                item__is_gold=False,
                item__status=Item.Status.OPEN,
            )
            .values_list("item_id", "labels", "confidence")
            .iterator(chunk_size=5000)
        )
        for item_id, labels, confidence in rows:
            if not labels:
                continue
            if item_id not in best or confidence > best[item_id]["confidence"]:
                best[item_id] = {
                    "labels": labels,
                    "confidence": confidence,
                    "source": {"kind": kind, "id": source_id, "version": version},
                }
    return best


def _snapshot(item: Item) -> dict[str, Any]:
    return {name: getattr(item, name) for name in SNAPSHOT_FIELDS}


def _decision_snapshot(decision: CascadeDecision) -> dict[str, Any]:
    out = {name: getattr(decision, name) for name in _DECISION_FIELDS}
    out["created_at"] = decision.created_at.isoformat()
    return out


def _run_message(*, accepted: int, verified: int, verdicts: list[dict], unverified: bool) -> str:
    refused = [v for v in verdicts if not v["ok"]]
    if verdicts and len(refused) == len(verdicts):
        return "Refused to auto-accept, nothing written: " + " ".join(
            reason for v in refused for reason in v["reasons"]
        )
    text = f"Auto-accepted {accepted} items ({verified} also sent to humans to verify)"
    if unverified:
        text += "; accepted without checks, as asked"
    if refused:
        text += ". Refused: " + " ".join(reason for v in refused for reason in v["reasons"])
    return text


def cascade_run(*, job_id: int) -> Job:
    job = job_start(job_id=job_id)
    if job is None:
        return Job.objects.get(pk=job_id)
    project = job.project
    ws = ws_settings_for(project=project)
    if not ws.cascade_enabled:
        raise ApplicationError("The cascade is switched off for this project.")
    accept_unverified = bool(job.params.get("accept_unverified"))
    run, _ = CascadeRun.objects.get_or_create(
        job=job, defaults={"project": project, "accept_unverified": accept_unverified}
    )
    sources = _sources(project=project, ws=ws)
    if "sources" not in run.gate:
        # Judged once per run: a restarted job keeps the verdict it started with.
        run.gate = {
            "threshold": ws.cascade_threshold,
            "sources": cascade_gate_verdicts(
                project=project, ws=ws, sources=sources, accept_unverified=accept_unverified
            ),
        }
        run.save(update_fields=["gate"])
    verdicts = run.gate["sources"]
    allowed = [(v["kind"], v["id"], v["version"]) for v in verdicts if v["ok"]]
    candidates = cascade_candidates(project=project, ws=ws, sources=allowed) if allowed else {}
    ids = sorted(candidates)
    job_progress(job=job, done=0, total=len(ids), message="Auto-accepting")
    unverified = any(v["ok"] and v.get("accept_unverified") for v in verdicts)
    accepted, verified = run.accepted, run.verification
    batch_size = settings.WS_WRITE_BATCH_SIZE
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        with transaction.atomic():
            items = list(
                Item.objects.select_for_update()
                .filter(
                    pk__in=chunk,
                    final_labels__isnull=True,
                    annotation_count=0,
                    is_gold=False,
                    status=Item.Status.OPEN,
                )
                .only("id", *SNAPSHOT_FIELDS)
                .order_by("id")
            )
            previous = {
                d.item_id: _decision_snapshot(d)
                for d in CascadeDecision.objects.filter(item_id__in=[i.pk for i in items])
            }
            head = Item.objects.filter(project=project).aggregate(top=Max("priority"))["top"]
            now = timezone.now()
            decisions, changes = [], []
            for item in items:
                before = _snapshot(item)
                pick = candidates[item.pk]
                verify = unit_hash(f"cascade:{project.pk}:{item.pk}") < ws.cascade_verify_fraction
                item.final_labels = pick["labels"]
                item.final_confidence = float(pick["confidence"])
                item.final_lineage = {
                    "method": "auto_accept",
                    "version": LINEAGE_VERSION,
                    "machine": True,
                    "source": pick["source"],
                    "confidence": float(pick["confidence"]),
                    "threshold": ws.cascade_threshold,
                    "verification": verify,
                    "job": job.pk,
                    "run": run.pk,
                    "unverified": unverified,
                }
                if verify:
                    # The verification sample goes to the head of the human queue now (and
                    # stays there at every re-rank: `verification_items_first`).
                    item.status = Item.Status.OPEN
                    item.priority = (head or 0.0) + 1.0
                else:
                    item.status = Item.Status.DONE
                item.updated_at = now
                decisions.append(
                    CascadeDecision(
                        project=project,
                        item_id=item.pk,
                        labels=pick["labels"],
                        confidence=float(pick["confidence"]),
                        source_kind=pick["source"]["kind"],
                        source_id=pick["source"]["id"],
                        source_version=pick["source"]["version"],
                        threshold=ws.cascade_threshold,
                        verify=verify,
                        job=job,
                    )
                )
                changes.append(
                    CascadeChange(
                        run=run,
                        item_id=item.pk,
                        before=before,
                        after=_snapshot(item),
                        decision_before=previous.get(item.pk),
                    )
                )
                verified += int(verify)
            Item.objects.bulk_update(items, [*SNAPSHOT_FIELDS, "updated_at"])
            CascadeDecision.objects.bulk_create(
                decisions,
                update_conflicts=True,
                unique_fields=["item"],
                update_fields=[
                    "labels",
                    "confidence",
                    "source_kind",
                    "source_id",
                    "source_version",
                    "threshold",
                    "verify",
                    "job",
                ],
            )
            CascadeChange.objects.bulk_create(changes)
            accepted += len(items)
            CascadeRun.objects.filter(pk=run.pk).update(accepted=accepted, verification=verified)
            if items:
                after_final_labels_changed(project=project, item_ids=[i.pk for i in items])
            job_progress(job=job, done=min(len(ids), start + len(chunk)))
    refused_all = bool(verdicts) and not allowed
    message = _run_message(
        accepted=accepted, verified=verified, verdicts=verdicts, unverified=unverified
    )
    with transaction.atomic():
        CascadeRun.objects.filter(pk=run.pk).update(
            status=CascadeRun.Status.REFUSED if refused_all else CascadeRun.Status.APPLIED,
            accepted=accepted,
            verification=verified,
            message=message[:500],
        )
        job_succeed(
            job=job,
            result={
                "run": run.pk,
                "accepted": accepted,
                "verification": verified,
                "candidates": len(ids),
                "refused": [
                    {"kind": v["kind"], "id": v["id"], "codes": v["codes"], "reasons": v["reasons"]}
                    for v in verdicts
                    if not v["ok"]
                ],
                "unverified": unverified,
            },
            message=message,
        )
    return job


def _restore_decisions(*, project: Project, rows: list[tuple[int, dict[str, Any]]]) -> None:
    """Put back the decision rows (item id, snapshot) that a run's accepted items replaced."""
    for item_id, row in rows:
        fields = {k: v for k, v in row.items() if k not in ("id", "created_at")}
        CascadeDecision.objects.create(pk=row["id"], project=project, item_id=item_id, **fields)
        # auto_now_add overrode it on create.
        CascadeDecision.objects.filter(pk=row["id"]).update(
            created_at=datetime.fromisoformat(row["created_at"])
        )


@transaction.atomic
def cascade_run_undo(
    *, project: Project, run_id: int, user: AbstractBaseUser | None = None
) -> CascadeRun:
    """Undo one cascade run in one transaction: every item it auto-accepted gets back its final
    label, confidence, lineage, status and priority from before the run (so the queue is what
    it was: its entries follow the item's status and priority), and the decision rows go (or
    the ones they replaced come back). ``updated_at`` is set to now, not restored, so
    incremental exports see the change.

    An item that changed after the run (a human answered it, an adjudication or an admin
    changed its label or status) is kept as it is, never clobbered, and counted as kept; a
    priority changed by a later re-rank is still restored, and a re-rank is queued.
    Idempotent: undoing an undone run returns it unchanged."""
    run = CascadeRun.objects.select_for_update().filter(project=project, pk=run_id).first()
    if run is None:
        raise CascadeRun.DoesNotExist(run_id)
    if run.status == CascadeRun.Status.UNDONE:
        return run
    if run.status == CascadeRun.Status.RUNNING and not cascade_run_undoable(run=run):
        raise ApplicationError(
            "This cascade run is still running: undo it once its job has finished.",
            {"field": "run"},
        )
    if run.status == CascadeRun.Status.REFUSED:
        raise ApplicationError(
            "This cascade run was refused and changed nothing: there is nothing to undo.",
            {"field": "run"},
        )
    now = timezone.now()
    restored: list[int] = []
    kept: list[int] = []
    reranked = False
    change_ids = list(run.changes.order_by("item_id").values_list("pk", flat=True))
    batch_size = settings.WS_WRITE_BATCH_SIZE
    for start in range(0, len(change_ids), batch_size):
        changes = list(CascadeChange.objects.filter(pk__in=change_ids[start : start + batch_size]))
        items = {
            item.pk: item
            for item in Item.objects.select_for_update()
            .filter(pk__in=[c.item_id for c in changes])
            .only("id", "annotation_count", *SNAPSHOT_FIELDS)
        }
        back, previous = [], []
        for change in changes:
            item = items[change.item_id]
            current = _snapshot(item)
            untouched = item.annotation_count == 0 and all(
                current[name] == change.after[name]
                for name in SNAPSHOT_FIELDS
                if name != "priority"
            )
            if not untouched:
                change.outcome = CascadeChange.Outcome.KEPT
                kept.append(item.pk)
                continue
            reranked = reranked or current["priority"] != change.after["priority"]
            for name in SNAPSHOT_FIELDS:
                setattr(item, name, change.before[name])
            item.updated_at = now
            back.append(item)
            change.outcome = CascadeChange.Outcome.RESTORED
            restored.append(item.pk)
            if change.decision_before:
                previous.append((item.pk, change.decision_before))
        Item.objects.bulk_update(back, [*SNAPSHOT_FIELDS, "updated_at"])
        CascadeDecision.objects.filter(item_id__in=[i.pk for i in back]).delete()
        _restore_decisions(project=project, rows=previous)
        CascadeChange.objects.bulk_update(changes, ["outcome"])
    run.status = CascadeRun.Status.UNDONE
    run.undone_at = now
    run.undone_by = user if user is not None and user.is_authenticated else None
    run.undo_result = {"restored": len(restored), "kept": len(kept), "kept_items": kept[:50]}
    run.save(update_fields=["status", "undone_at", "undone_by", "undo_result"])
    if restored:
        after_final_labels_changed(project=project, item_ids=restored)
    if reranked:
        from active_learning.services.ranking import ranking_schedule

        ranking_schedule(project=project, reason="cascade run undone", user=run.undone_by)
    return run
