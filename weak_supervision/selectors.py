"""Reads of the pre-label pipeline: the vote matrix, function analysis, label-model, LLM and
cascade reports, and the dashboard that puts them together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import Count, Q, Sum

from labeling.models import Item, Prediction, Project
from weak_supervision.label_models import ABSTAIN, lf_summary, matrix_summary
from weak_supervision.metrics import per_class_report, wilson_interval
from weak_supervision.models import (
    CascadeDecision,
    CascadeRun,
    LabelingFunction,
    LabelModelRun,
    LFVote,
    LLMPrompt,
    LLMResponse,
)
from weak_supervision.services.common import (
    human_final_q,
    human_labels,
    llm_config,
    project_labels,
    ws_settings_for,
)
from weak_supervision.services.lfs import lf_effective_version, lf_stopped


@dataclass
class VoteMatrix:
    item_ids: np.ndarray  # (n,) sorted
    L: np.ndarray  # (n, m) int8/int16: class index or -1
    sources: list[dict[str, Any]]  # per column: kind, id, version, name
    labels: list[str]


def applied_functions(*, project: Project) -> list[LabelingFunction]:
    """Active functions whose votes are complete (their last apply job finished)."""
    return list(
        LabelingFunction.objects.filter(project=project, active=True)
        .exclude(applied_version="")
        .order_by("id")
    )


def current_llm_source(*, project: Project) -> tuple[str, str] | None:
    """(source_id, source_version) of the newest LLM predictions in the project."""
    row = (
        Prediction.objects.filter(project=project, source_kind=Prediction.SourceKind.LLM)
        .order_by("-created_at", "-id")
        .values("source_id", "source_version")
        .first()
    )
    return (row["source_id"], row["source_version"]) if row else None


def vote_matrix(
    *, project: Project, functions: list[LabelingFunction] | None = None, with_llm: bool = False
) -> VoteMatrix:
    """The dense (items x sources) matrix built from the sparse votes; one column per applied
    function and, if asked, one for the LLM's current answers (its invalid answers abstain)."""
    labels = project_labels(project=project)
    index = {label: n for n, label in enumerate(labels)}
    functions = applied_functions(project=project) if functions is None else functions
    item_ids = np.fromiter(
        Item.objects.filter(project=project).order_by("id").values_list("id", flat=True),
        dtype=np.int64,
    )
    sources = [
        {"kind": "lf", "id": lf.pk, "name": lf.name, "version": lf.applied_version}
        for lf in functions
    ]
    llm = current_llm_source(project=project) if with_llm else None
    if llm is not None:
        sources.append({"kind": "llm", "id": llm[0], "name": f"LLM {llm[0]}", "version": llm[1]})
    L = np.full((item_ids.shape[0], len(sources)), ABSTAIN, dtype=np.int16)
    column = {lf.pk: n for n, lf in enumerate(functions)}
    versions = {lf.pk: lf.applied_version for lf in functions}
    votes = (
        LFVote.objects.filter(project=project, lf_id__in=list(column))
        .values_list("item_id", "lf_id", "label", "lf_version")
        .iterator(chunk_size=20000)
    )
    rows, cols, vals = [], [], []
    for item_id, lf_id, label, version in votes:
        if version == versions[lf_id] and label in index:
            rows.append(item_id)
            cols.append(column[lf_id])
            vals.append(index[label])
    if llm is not None:
        llm_col = len(sources) - 1
        for item_id, llm_labels in (
            Prediction.objects.filter(
                project=project,
                source_kind=Prediction.SourceKind.LLM,
                source_id=llm[0],
                source_version=llm[1],
            )
            .values_list("item_id", "labels")
            .iterator(chunk_size=20000)
        ):
            if llm_labels and llm_labels[0] in index:
                rows.append(item_id)
                cols.append(llm_col)
                vals.append(index[llm_labels[0]])
    if rows:
        positions = np.searchsorted(item_ids, np.asarray(rows, dtype=np.int64))
        L[positions, np.asarray(cols)] = np.asarray(vals, dtype=np.int16)
    return VoteMatrix(item_ids=item_ids, L=L, sources=sources, labels=labels)


def gold_vector(*, project: Project, matrix: VoteMatrix) -> np.ndarray:
    """Class index of each item's human final label, -1 where there is none."""
    index = {label: n for n, label in enumerate(matrix.labels)}
    gold = np.full(matrix.item_ids.shape[0], ABSTAIN, dtype=np.int64)
    truth = human_labels(project=project)
    if truth:
        ids = np.fromiter(truth.keys(), dtype=np.int64)
        classes = np.fromiter((index.get(v, ABSTAIN) for v in truth.values()), dtype=np.int64)
        positions = np.searchsorted(matrix.item_ids, ids)
        ok = (positions < matrix.item_ids.shape[0]) & (
            matrix.item_ids[np.minimum(positions, matrix.item_ids.shape[0] - 1)] == ids
        )
        gold[positions[ok]] = classes[ok]
    return gold


def lf_analysis(*, project: Project) -> dict[str, Any]:
    """Per function: coverage, overlap, conflict, polarity, empirical accuracy against final
    human labels, plus each function's state (version applied, errors)."""
    functions = list(LabelingFunction.objects.filter(project=project).order_by("id"))
    applied = [lf for lf in functions if lf.active and lf.applied_version]
    matrix = vote_matrix(project=project, functions=applied)
    gold = gold_vector(project=project, matrix=matrix)
    k = max(2, len(matrix.labels))
    summary = lf_summary(matrix.L, k, gold) if applied else []
    by_pk = {lf.pk: row for lf, row in zip(applied, summary, strict=True)}
    rows = []
    for lf in functions:
        stats = by_pk.get(lf.pk)
        stopped = lf_stopped(lf=lf)
        error = (lf.applied_stats or {}).get("error", "")
        rows.append(
            {
                "id": lf.pk,
                "name": lf.name,
                "kind": lf.kind,
                "label": lf.config.get("label"),
                "active": lf.active,
                "version": lf.version,
                "applied_version": lf.applied_version,
                "stale": lf.active and lf.applied_version != lf_effective_version(lf=lf),
                # failed: its last apply recorded no votes (raised everywhere, or stopped).
                "failed": bool(error) and not lf.applied_version,
                "error": error,
                "stopped": stopped,
                "stopped_reason": lf.stopped_reason if stopped else "",
                "warning": (lf.applied_stats or {}).get("warning", ""),
                "timeouts": (lf.applied_stats or {}).get("timeouts", 0),
                "votes": stats["votes"] if stats else 0,
                "coverage": stats["coverage"] if stats else None,
                "overlap": stats["overlap"] if stats else None,
                "conflict": stats["conflict"] if stats else None,
                "polarity": [matrix.labels[c] for c in stats["polarity"]] if stats else [],
                "gold_votes": stats["gold_votes"] if stats else 0,
                "accuracy": stats["accuracy"] if stats else None,
            }
        )
    totals = (
        matrix_summary(matrix.L, k)
        if applied
        else matrix_summary(np.zeros((matrix.item_ids.shape[0], 0), dtype=np.int16), k)
    )
    totals["human_labels"] = int((gold != ABSTAIN).sum())
    return {"functions": rows, "totals": totals}


def label_model_report(*, project: Project) -> dict[str, Any] | None:
    run = LabelModelRun.objects.filter(project=project).first()
    if run is None:
        return None
    truth = human_labels(project=project)
    pairs = []
    for item_id, labels in Prediction.objects.filter(
        project=project,
        source_kind=Prediction.SourceKind.LABEL_MODEL,
        source_id=run.method,
        source_version=run.version,
        item_id__in=list(truth),
    ).values_list("item_id", "labels"):
        if labels:
            pairs.append((labels[0], truth[item_id]))
    report = per_class_report(pairs, project_labels(project=project))
    return {
        "id": run.pk,
        "method": run.method,
        "version": run.version,
        "sources": run.sources,
        "items": run.items,
        "covered": run.covered,
        "coverage": run.covered / run.items if run.items else 0.0,
        "created_at": run.created_at,
        "params": run.params,
        "accuracy": report["accuracy"],
        "judged": report["n"],
    }


def llm_report(*, project: Project) -> dict[str, Any]:
    """Usage and cost of the project's LLM calls, and the current prompt's accuracy against
    final human labels per class."""
    config = llm_config(project=project)
    totals = LLMResponse.objects.filter(project=project).aggregate(
        responses=Count("id"),
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        cost=Sum("cost_usd"),
        invalid=Count("id", filter=Q(status=LLMResponse.Status.INVALID)),
        malformed=Count("id", filter=Q(status=LLMResponse.Status.MALFORMED)),
    )
    source = current_llm_source(project=project)
    accuracy = None
    confidence_kinds: dict[str, int] = {}
    predicted = 0
    if source is not None:
        truth = human_labels(project=project)
        pairs = []
        for item_id, labels, details in Prediction.objects.filter(
            project=project,
            source_kind=Prediction.SourceKind.LLM,
            source_id=source[0],
            source_version=source[1],
        ).values_list("item_id", "labels", "details"):
            predicted += 1
            kind = (details or {}).get("confidence_kind") or "none"
            confidence_kinds[kind] = confidence_kinds.get(kind, 0) + 1
            if item_id in truth:
                # An invalid answer counts as wrong: it is not a usable label.
                pairs.append((labels[0] if labels else "", truth[item_id]))
        accuracy = per_class_report(pairs, project_labels(project=project))
    prompt = LLMPrompt.objects.filter(project=project).order_by("-version").first()
    cost = float(totals["cost"] or 0)
    return {
        "enabled": config.enabled,
        "reason": config.reason,
        "model": config.model,
        "base_url": config.base_url,
        "prompt_version": prompt.version if prompt else None,
        "source": {"id": source[0], "version": source[1]} if source else None,
        "responses": totals["responses"],
        "invalid": totals["invalid"],
        "malformed": totals["malformed"],
        "prompt_tokens": totals["prompt_tokens"] or 0,
        "completion_tokens": totals["completion_tokens"] or 0,
        "cost_usd": cost,
        "budget_usd": config.budget,
        "predicted_items": predicted,
        "confidence_kinds": confidence_kinds,
        "accuracy": accuracy,
    }


def cascade_report(*, project: Project) -> dict[str, Any]:
    """What settled each item, and the measured precision of auto-acceptance on the random
    verification sample (Wilson 95% interval)."""
    items = Item.objects.filter(project=project)
    counts = items.aggregate(
        total=Count("id"),
        human=Count("id", filter=human_final_q()),
        auto=Count("id", filter=Q(final_lineage__method="auto_accept")),
        unsettled=Count("id", filter=Q(final_labels__isnull=True)),
    )
    by_source = dict(
        CascadeDecision.objects.filter(project=project, item__final_lineage__method="auto_accept")
        .values_list("source_kind")
        .annotate(n=Count("id"))
        .values_list("source_kind", "n")
    )
    verify = CascadeDecision.objects.filter(project=project, verify=True)
    checked = agreed = 0
    pending = 0
    truth = human_labels(project=project, item_ids=verify.values("item_id"))
    for item_id, labels in verify.values_list("item_id", "labels"):
        if item_id in truth:
            checked += 1
            agreed += int(bool(labels) and labels[0] == truth[item_id])
        else:
            pending += 1
    interval = wilson_interval(agreed, checked)
    total = counts["total"] or 0
    other = total - counts["human"] - counts["auto"] - counts["unsettled"]
    stages = [
        {"stage": "auto_label_model", "items": by_source.get("label_model", 0)},
        {"stage": "auto_llm", "items": by_source.get("llm", 0)},
        {"stage": "human", "items": counts["human"]},
        {"stage": "other_machine", "items": max(0, other)},
        {"stage": "unsettled", "items": counts["unsettled"]},
    ]
    for stage in stages:
        stage["share"] = stage["items"] / total if total else 0.0
    return {
        "total": total,
        "stages": stages,
        "verification": {
            "sampled": checked + pending,
            "checked": checked,
            "agreed": agreed,
            "pending": pending,
            "precision": agreed / checked if checked else None,
            "ci_low": interval[0] if interval else None,
            "ci_high": interval[1] if interval else None,
        },
    }


def cascade_run_undoable(*, run: CascadeRun) -> bool:
    """Applied, or stopped part-way by a job that has finished (failed or cancelled)."""
    if run.status == CascadeRun.Status.APPLIED:
        return True
    return run.status == CascadeRun.Status.RUNNING and (run.job is None or run.job.is_finished)


def cascade_run_detail(*, run: CascadeRun) -> dict[str, Any]:
    """One cascade run: what the gate said about each source, what was accepted, and whether
    (and how) it was undone. Managers only: it names job details."""
    sources = run.gate.get("sources", [])
    return {
        "id": run.pk,
        "job": run.job_id,
        "status": run.status,
        "created_at": run.created_at,
        "accepted": run.accepted,
        "verification": run.verification,
        "accept_unverified": run.accept_unverified,
        "message": run.message,
        "threshold": run.gate.get("threshold"),
        "sources": sources,
        "undone_at": run.undone_at,
        "undone_by": run.undone_by.get_username() if run.undone_by else None,
        "undo_result": run.undo_result,
        "can_undo": cascade_run_undoable(run=run),
        # Some source was refused only for lack of checks: a manager may run the cascade again
        # without checks.
        "overridable": run.status != CascadeRun.Status.UNDONE
        and any(not v["ok"] and v.get("overridable") for v in sources),
    }


def cascade_runs(*, project: Project, limit: int = 20) -> list[dict[str, Any]]:
    """The latest cascade runs, newest first (see `cascade_run_detail`)."""
    runs = CascadeRun.objects.filter(project=project).select_related("job", "undone_by")
    return [cascade_run_detail(run=run) for run in runs[:limit]]


def dashboard(*, project: Project) -> dict[str, Any]:
    row = ws_settings_for(project=project)
    return {
        "settings": {
            "label_model_method": row.label_model_method,
            "label_model_uses_llm": row.label_model_uses_llm,
            "cascade_enabled": row.cascade_enabled,
            "cascade_source": row.cascade_source,
            "cascade_threshold": row.cascade_threshold,
            "cascade_verify_fraction": row.cascade_verify_fraction,
            "cascade_min_accuracy": row.cascade_min_accuracy,
            "cascade_min_checks": row.cascade_min_checks,
            "cascade_max_odds_ratio": row.cascade_max_odds_ratio,
        },
        "functions": lf_analysis(project=project),
        "label_model": label_model_report(project=project),
        "llm": llm_report(project=project),
        "cascade": cascade_report(project=project),
    }
