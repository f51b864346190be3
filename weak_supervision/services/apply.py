"""The apply job: run labeling functions over every item and store their votes sparsely.

Only functions whose effective version differs from the one last applied run (an edit re-runs
that function alone), unless the caller names functions to re-run. Text functions go through
the items in id order, in batches of WS_APPLY_BATCH_SIZE texts, every batch committed with the
job's cursor (the last item id), so a restarted task continues after the last committed batch.
Classifier functions are one filtered scan of the stored model predictions (no text needed).

Text functions vote in a child process under the WS_LF_* time and memory limits
(`weak_supervision.lf_eval.vote_limited`), all of a batch in one child. A function that keeps
timing out is stopped: its votes are dropped, the job reports it as failed, and it is marked
(``stopped_version``) so that applying the stale functions skips it until it changes; naming it
explicitly runs it again.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.jobtasks import job_failure_text
from labeling.models import Item, Job, Prediction, Project
from labeling.services.jobs import job_create, job_fail, job_progress, job_start, job_succeed
from weak_supervision.lf_eval import VoteStats, classifier_vote, vote_limited
from weak_supervision.models import LabelingFunction, LFVote
from weak_supervision.services.common import project_labels
from weak_supervision.services.lfs import (
    active_model_source,
    lf_compile,
    lf_effective_version,
    lf_limits,
    lf_stats_error,
    lf_stopped,
)

Kind = LabelingFunction.Kind


def lfs_stale(*, project: Project) -> list[LabelingFunction]:
    """Active functions whose votes are missing or out of date, less those stopped for
    timeouts at their current version."""
    return [
        lf
        for lf in LabelingFunction.objects.filter(project=project, active=True).order_by("id")
        if lf.applied_version != lf_effective_version(lf=lf) and not lf_stopped(lf=lf)
    ]


def apply_job_create(
    *,
    project: Project,
    lf_ids: list[int] | None = None,
    user: AbstractBaseUser | None = None,
) -> Job:
    """Queue an apply job for the named functions, or for every stale one. Enqueued on commit."""
    if lf_ids:
        found = set(
            LabelingFunction.objects.filter(project=project, pk__in=lf_ids).values_list(
                "pk", flat=True
            )
        )
        missing = sorted(set(lf_ids) - found)
        if missing:
            raise ApplicationError(
                f"No labeling function {missing[0]} in this project.", {"field": "lf_ids"}
            )
        ids = sorted(found)
    else:
        ids = [lf.pk for lf in lfs_stale(project=project)]
        if not ids:
            stopped = [
                lf.name
                for lf in LabelingFunction.objects.filter(project=project, active=True)
                .exclude(stopped_version="")
                .order_by("id")
                if lf_stopped(lf=lf)
            ]
            message = "Every active labeling function is up to date"
            if stopped:
                message += (
                    f" or stopped for timeouts ({', '.join(stopped)}: edit them, or name them "
                    "to run them again)"
                )
            raise ApplicationError(
                f"{message}; name functions to re-run them.", {"field": "lf_ids"}
            )
    job = job_create(
        kind=Job.Kind.LABELING_FUNCTIONS,
        project=project,
        params={"lf_ids": ids},
        created_by=user if user is not None and user.is_authenticated else None,
    )
    from weak_supervision.tasks import enqueue

    transaction.on_commit(lambda: enqueue(job=job))
    return job


def _start_cursor(*, job: Job) -> dict[str, Any]:
    """First run of the job: pin each function's effective version and clear its old votes."""
    lfs = list(LabelingFunction.objects.filter(pk__in=job.params.get("lf_ids", [])))
    versions = {str(lf.pk): lf_effective_version(lf=lf) for lf in lfs}
    with transaction.atomic():
        LFVote.objects.filter(lf__in=lfs).delete()
        LabelingFunction.objects.filter(pk__in=[lf.pk for lf in lfs]).update(
            applied_version="", applied_stats={}
        )
        cursor = {"versions": versions, "after_id": 0, "classifiers_done": False, "stats": {}}
        total = Item.objects.filter(project=job.project).count()
        job_progress(job=job, done=0, total=total, message="Applying", cursor=cursor)
    return cursor


def _apply_classifiers(
    *, project: Project, lfs: list[LabelingFunction], versions: dict[str, str]
) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for lf in lfs:
        version = versions[str(lf.pk)]
        source = active_model_source(project=project, source_id=lf.config.get("source_id", ""))
        if source is None:
            stats[str(lf.pk)] = {"votes": 0, "error": "No model predictions yet."}
            continue
        predictions = (
            Prediction.objects.filter(
                project=project,
                source_kind=Prediction.SourceKind.MODEL,
                source_id=source[0],
                source_version=source[1],
                confidence__gte=lf.config["threshold"],
            )
            .values_list("item_id", "labels", "confidence")
            .iterator(chunk_size=settings.WS_WRITE_BATCH_SIZE)
        )
        batch: list[LFVote] = []
        votes = 0
        for item_id, labels, confidence in predictions:
            vote = classifier_vote(
                labels=labels or [],
                confidence=confidence,
                threshold=lf.config["threshold"],
                label=lf.config.get("label"),
            )
            if vote is None:
                continue
            batch.append(
                LFVote(lf=lf, item_id=item_id, project=project, label=vote, lf_version=version)
            )
            if len(batch) >= settings.WS_WRITE_BATCH_SIZE:
                votes += _write_votes(batch)
                batch = []
        votes += _write_votes(batch)
        stats[str(lf.pk)] = {"votes": votes, "model": f"{source[0]}@{source[1]}"}
    return stats


def _write_votes(batch: list[LFVote]) -> int:
    if batch:
        LFVote.objects.bulk_create(
            batch,
            update_conflicts=True,
            unique_fields=["lf", "item"],
            update_fields=["label", "lf_version"],
            batch_size=settings.WS_WRITE_BATCH_SIZE,
        )
    return len(batch)


def apply_run(*, job_id: int, deadline: float | None = None) -> Job:
    """Run (or resume) an apply job until done or past ``deadline`` (time.monotonic())."""
    job = job_start(job_id=job_id)
    if job is None:
        return Job.objects.get(pk=job_id)
    project = job.project
    cursor = job.cursor if job.cursor.get("versions") else _start_cursor(job=job)
    versions: dict[str, str] = cursor["versions"]
    lfs = list(LabelingFunction.objects.filter(pk__in=[int(k) for k in versions]).order_by("id"))
    labels = project_labels(project=project)
    stats: dict[str, dict[str, Any]] = cursor.get("stats", {})
    if not cursor.get("classifiers_done"):
        classifier_lfs = [lf for lf in lfs if lf.kind == Kind.CLASSIFIER]
        with transaction.atomic():
            stats.update(_apply_classifiers(project=project, lfs=classifier_lfs, versions=versions))
            cursor = {**cursor, "classifiers_done": True, "stats": stats}
            job_progress(job=job, done=job.progress_done, cursor=cursor)
    compiled = {
        lf.pk: lf_compile(lf_id=lf.pk, kind=lf.kind, config=lf.config, labels=labels)
        for lf in lfs
        if lf.kind != Kind.CLASSIFIER and not stats.get(str(lf.pk), {}).get("error")
    }
    for lf_id, function in compiled.items():
        # A resumed job counts on from where its last slice stopped (timeouts included).
        seen = stats.get(str(lf_id), {})
        function.stats = VoteStats(
            **{k: seen[k] for k in VoteStats.__dataclass_fields__ if k in seen}
        )
    limits = lf_limits()
    after_id = cursor["after_id"]
    done = job.progress_done
    while compiled:
        rows = list(
            Item.objects.filter(project=project, pk__gt=after_id)
            .order_by("id")
            .values_list("id", "text")[: settings.WS_APPLY_BATCH_SIZE]
        )
        if not rows:
            break
        batch: list[LFVote] = []
        running = list(compiled.items())
        outcome = vote_limited(
            [function for _, function in running],
            [text for _, text in rows],
            limits=limits,
            error_text=job_failure_text,
        )
        for n, (lf_id, function) in enumerate(running):
            if n in outcome.stopped:
                # Drop this function's votes: a function that stopped halfway would look like
                # one that abstains on the rest.
                LFVote.objects.filter(lf_id=lf_id).delete()
                stats[str(lf_id)] = {
                    **function.stats.as_dict(),
                    "error": outcome.stopped[n],
                    "stopped": True,
                }
                del compiled[lf_id]
                continue
            version = versions[str(lf_id)]
            batch.extend(
                LFVote(
                    lf_id=lf_id, item_id=item_id, project=project, label=vote, lf_version=version
                )
                for (item_id, _), vote in zip(rows, outcome.votes[n], strict=True)
                if vote is not None
            )
        after_id = rows[-1][0]
        done += len(rows)
        for lf_id, function in compiled.items():
            stats[str(lf_id)] = function.stats.as_dict()
        with transaction.atomic():
            _write_votes(batch)
            cursor = {**cursor, "after_id": after_id, "stats": stats}
            job_progress(job=job, done=done, cursor=cursor)
        if deadline is not None and time.monotonic() > deadline:
            return job
    # Finished: record what ran, at which version, with what outcome.
    now = timezone.now()
    for lf in lfs:
        stats[str(lf.pk)] = _outcome(stats.get(str(lf.pk), {}))
    with transaction.atomic():
        for lf in lfs:
            lf_stats = stats[str(lf.pk)]
            lf.applied_stats = lf_stats
            lf.applied_version = "" if lf_stats.get("error") else versions[str(lf.pk)]
            lf.applied_at = now
            stopped = bool(lf_stats.get("stopped"))
            lf.stopped_version = versions[str(lf.pk)] if stopped else ""
            lf.stopped_reason = lf_stats["error"][:500] if stopped else ""
        LabelingFunction.objects.bulk_update(
            lfs,
            ["applied_stats", "applied_version", "applied_at", "stopped_version", "stopped_reason"],
        )
        message, error = _summary(lfs=lfs, stats=stats, items=job.progress_total or done)
        if error:
            job_fail(job_id=job.pk, error=error, result={"functions": stats})
            job.refresh_from_db()
        else:
            job_succeed(job=job, result={"functions": stats}, message=message)
    return job


def _outcome(lf_stats: dict[str, Any]) -> dict[str, Any]:
    """A text function that raised (or answered a non-label) on every item it saw is a failed
    function: its error is recorded and it stays stale. One that did so on some items keeps its
    votes, with a warning that says how often."""
    if lf_stats.get("error"):
        return lf_stats
    problem = lf_stats_error(lf_stats)
    if not problem:
        return lf_stats
    evaluated = int(lf_stats.get("evaluated", 0))
    bad = int(lf_stats.get("errors", 0)) + int(lf_stats.get("invalid", 0))
    key = "error" if evaluated and bad >= evaluated else "warning"
    return {**lf_stats, key: problem}


def _summary(
    *, lfs: list[LabelingFunction], stats: dict[str, dict[str, Any]], items: int
) -> tuple[str, str]:
    """(message, error): the job's message, and an error when no function could be applied."""
    failed = [lf for lf in lfs if stats[str(lf.pk)].get("error")]
    applied = [lf for lf in lfs if lf not in failed]
    votes = sum(int(stats[str(lf.pk)].get("votes", 0)) for lf in applied)
    message = (
        f"Applied {len(applied)} of {len(lfs)} function(s) to {items:,} items: "
        f"{votes:,} vote{'' if votes == 1 else 's'}"
    )
    warned = [lf for lf in applied if stats[str(lf.pk)].get("warning")]
    if warned:
        message += "; " + "; ".join(f"{lf.name}: {stats[str(lf.pk)]['warning']}" for lf in warned)
    if failed:
        message += f"; stopped: {', '.join(lf.name for lf in failed)} (see the function's error)"
    if failed and not applied:
        names = ", ".join(lf.name for lf in failed)
        error = f"No labeling function could be applied ({names}).\n" + "\n".join(
            f"{lf.name}: {stats[str(lf.pk)]['error']}" for lf in failed
        )
        return message, error
    return message, ""
