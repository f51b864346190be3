"""The cascade: auto-accept confident pre-labels as final labels; the rest stay with humans.

For every item that has no final label, no annotation yet and is not a gold item, take the
project's pre-label (the label model's current run, the LLM's current answers, or the more
confident of the two). At or above the threshold it is accepted:

- ``Item.final_labels`` = the pre-label, ``final_confidence`` = its confidence,
  ``final_lineage`` = ``{"method": "auto_accept", "version": "1", "machine": true,
  "source": {"kind", "id", "version"}, "confidence", "threshold", "verification"}``; machine
  labels never count as human or held-out gold anywhere (see `labeling.services.hooks`);
- the item is marked done, so it leaves the human queue, except for a random share
  (``cascade_verify_fraction``, a fixed coin per item) that stays open: a human labels it and
  their answer replaces the machine's, which measures the precision of auto-acceptance;
- a `CascadeDecision` row keeps what was accepted, and `after_final_labels_changed` is called.

Rows are re-checked under a row lock when written, so an item an annotator answered meanwhile
keeps the human's answer.
"""

from __future__ import annotations

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
from weak_supervision.metrics import unit_hash
from weak_supervision.models import CascadeDecision, LabelModelRun, WeakSupervisionSettings
from weak_supervision.selectors import current_llm_source
from weak_supervision.services.common import ws_settings_for

Source = WeakSupervisionSettings.CascadeSource
LINEAGE_VERSION = "1"


def cascade_job_create(*, project: Project, user: AbstractBaseUser | None = None) -> Job:
    ws = ws_settings_for(project=project)
    if not ws.cascade_enabled:
        raise ApplicationError(
            "The cascade is switched off for this project.", {"field": "cascade_enabled"}
        )
    job = job_create(
        kind=Job.Kind.OTHER,
        project=project,
        params={"action": "cascade"},
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


def cascade_candidates(*, project: Project, ws: WeakSupervisionSettings) -> dict[int, dict]:
    """item id -> the most confident pre-label at or above the threshold, for items still
    waiting for a label."""
    best: dict[int, dict[str, Any]] = {}
    for kind, source_id, version in _sources(project=project, ws=ws):
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


def cascade_run(*, job_id: int) -> Job:
    job = job_start(job_id=job_id)
    if job is None:
        return Job.objects.get(pk=job_id)
    project = job.project
    ws = ws_settings_for(project=project)
    if not ws.cascade_enabled:
        raise ApplicationError("The cascade is switched off for this project.")
    candidates = cascade_candidates(project=project, ws=ws)
    ids = sorted(candidates)
    job_progress(job=job, done=0, total=len(ids), message="Auto-accepting")
    accepted = verified = 0
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
                .only("id", "status")
            )
            now = timezone.now()
            decisions = []
            for item in items:
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
                }
                item.status = Item.Status.OPEN if verify else Item.Status.DONE
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
                verified += int(verify)
            Item.objects.bulk_update(
                items,
                ["final_labels", "final_confidence", "final_lineage", "status", "updated_at"],
            )
            # The verification sample goes to the head of the human queue now (and stays there
            # at every re-rank: `verification_items_first`).
            verify_ids = [d.item_id for d in decisions if d.verify]
            if verify_ids:
                head = Item.objects.filter(project=project).aggregate(top=Max("priority"))["top"]
                Item.objects.filter(pk__in=verify_ids).update(priority=(head or 0.0) + 1.0)
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
            if items:
                after_final_labels_changed(project=project, item_ids=[i.pk for i in items])
            accepted += len(items)
            job_progress(job=job, done=min(len(ids), start + len(chunk)))
    job_succeed(
        job=job,
        result={"accepted": accepted, "verification": verified, "candidates": len(ids)},
        message=f"Auto-accepted {accepted} items ({verified} also sent to humans to verify)",
    )
    return job
