"""The label model job: combine the votes of the applied functions (and the LLM's current
answers) into one probabilistic label per covered item, stored as `labeling.Prediction` rows
(source_kind ``label_model``, source_id = method, source_version = a hash of the method and
every source's version) with the lineage in a `LabelModelRun`."""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from labeling.errors import ApplicationError
from labeling.models import Annotation, Job, Prediction, Project
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed
from weak_supervision import label_models
from weak_supervision.models import LabelModelRun
from weak_supervision.selectors import applied_functions, vote_matrix
from weak_supervision.services.common import ws_settings_for

MODEL_CODE_VERSION = "1"


def label_model_job_create(
    *, project: Project, method: str | None = None, user: AbstractBaseUser | None = None
) -> Job:
    if method and method not in label_models.METHODS:
        raise ApplicationError(
            f"Unknown label model '{method}'; use one of {', '.join(label_models.METHODS)}.",
            {"field": "method"},
        )
    if (
        not applied_functions(project=project)
        and not ws_settings_for(project=project).label_model_uses_llm
    ):
        raise ApplicationError(
            "No applied labeling functions yet: apply them first.", {"field": "method"}
        )
    job = job_create(
        kind=Job.Kind.LABEL_MODEL,
        project=project,
        params={"method": method or ""},
        created_by=user if user is not None and user.is_authenticated else None,
    )
    from weak_supervision.tasks import enqueue

    transaction.on_commit(lambda: enqueue(job=job))
    return job


def stale_predictions_delete(*, project: Project, source_kind: str, keep_version: str) -> int:
    """Remove a source's superseded predictions, except those an annotator accepted (their
    lineage stays referenced by the annotation)."""
    accepted = Annotation.objects.filter(project=project, suggestion__isnull=False).values(
        "suggestion_id"
    )
    deleted, _ = (
        Prediction.objects.filter(project=project, source_kind=source_kind)
        .exclude(source_version=keep_version)
        .exclude(pk__in=accepted)
        .delete()
    )
    return deleted


def label_model_run(*, job_id: int) -> Job:
    job = job_start(job_id=job_id)
    if job is None:
        return Job.objects.get(pk=job_id)
    project = job.project
    ws = ws_settings_for(project=project)
    method = job.params.get("method") or ws.label_model_method
    matrix = vote_matrix(project=project, with_llm=ws.label_model_uses_llm)
    if not matrix.sources:
        raise ApplicationError("Nothing to combine: no applied labeling function and no LLM.")
    if len(matrix.labels) < 2:
        raise ApplicationError("The project needs at least two labels.")
    job_progress(job=job, done=0, total=int(matrix.item_ids.shape[0]), message=f"Fitting {method}")
    result = label_models.fit(method, matrix.L, len(matrix.labels))
    lineage_sources = [
        {"kind": s["kind"], "id": s["id"], "name": s["name"], "version": s["version"]}
        for s in matrix.sources
    ]
    version = hashlib.sha256(
        json.dumps(
            {"code": MODEL_CODE_VERSION, "method": method, "sources": lineage_sources},
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:16]
    labels_out = result.labels
    confidence = result.confidence
    covered_rows = result.covered.nonzero()[0]
    batch_size = settings.WS_WRITE_BATCH_SIZE
    with transaction.atomic():
        run = LabelModelRun.objects.create(
            project=project,
            job=job,
            method=method,
            version=version,
            sources=lineage_sources,
            items=int(matrix.item_ids.shape[0]),
            covered=int(covered_rows.shape[0]),
            params={key: value for key, value in result.params.items() if key != "confusion"},
        )
        for start in range(0, covered_rows.shape[0], batch_size):
            rows = covered_rows[start : start + batch_size]
            Prediction.objects.bulk_create(
                [
                    Prediction(
                        item_id=int(matrix.item_ids[r]),
                        project=project,
                        source_kind=Prediction.SourceKind.LABEL_MODEL,
                        source_id=method,
                        source_version=version,
                        labels=[matrix.labels[int(labels_out[r])]],
                        confidence=float(min(1.0, max(0.0, confidence[r]))),
                        scores={
                            label: round(float(p), 6)
                            for label, p in zip(matrix.labels, result.probs[r], strict=True)
                        },
                        details={
                            "run": run.pk,
                            "method": method,
                            "votes": int((matrix.L[r] != label_models.ABSTAIN).sum()),
                        },
                    )
                    for r in rows
                ],
                update_conflicts=True,
                unique_fields=["item", "source_kind", "source_id", "source_version"],
                update_fields=["labels", "confidence", "scores", "details"],
            )
        stale_predictions_delete(
            project=project,
            source_kind=Prediction.SourceKind.LABEL_MODEL,
            keep_version=version,
        )
        job_succeed(
            job=job,
            result={
                "run": run.pk,
                "method": method,
                "version": version,
                "items": run.items,
                "covered": run.covered,
                "sources": len(lineage_sources),
            },
            message=f"{method}: labels for {run.covered} of {run.items} items",
        )
    if ws.cascade_enabled:
        from weak_supervision.services.cascade import cascade_job_create

        with transaction.atomic():
            cascade_job_create(project=project, user=None)
    return job
