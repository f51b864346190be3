"""Labeling functions: create, edit (new version), delete, try on a sample, and what the apply
job needs (the effective version and the compiled function)."""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min

from labeling.errors import ApplicationError
from labeling.jobtasks import job_failure_text
from labeling.models import Item, Prediction, Project
from weak_supervision import registry
from weak_supervision.lf_eval import (
    CompiledLF,
    LFConfigError,
    classifier_vote,
    compile_lf,
    config_hash,
    normalize_config,
    vote_limited,
)
from weak_supervision.metrics import wilson_interval
from weak_supervision.models import LabelingFunction
from weak_supervision.sandbox import Limits
from weak_supervision.services.common import human_labels, load_python_lf_modules, project_labels

Kind = LabelingFunction.Kind


def lf_limits() -> Limits:
    """Time and memory limits of one call of a labeling function (settings WS_LF_*)."""
    return Limits(
        call_seconds=settings.WS_LF_CALL_TIME_LIMIT,
        memory_bytes=max(0, settings.WS_LF_MEMORY_LIMIT_MB) * 2**20,
    )


def lf_config_validate(*, project: Project, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    labels = project_labels(project=project)
    try:
        clean = normalize_config(kind=kind, config=config, labels=labels, limits=lf_limits())
    except LFConfigError as exc:
        raise ApplicationError(exc.message, {"field": exc.field}) from None
    if kind == Kind.PYTHON:
        load_python_lf_modules()
        if registry.registered(clean["function"]) is None:
            names = ", ".join(registry.registered_names()) or "none"
            raise ApplicationError(
                f"No Python labeling function is registered as '{clean['function']}' "
                f"(registered: {names}).",
                {"field": "function"},
            )
    return clean


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the function a name.", {"field": "name"})
    if len(name) > 100:
        raise ApplicationError("The name is longer than 100 characters.", {"field": "name"})
    return name


@transaction.atomic
def lf_create(
    *,
    project: Project,
    name: str,
    kind: str,
    config: dict[str, Any],
    description: str = "",
    active: bool = True,
    created_by: AbstractBaseUser | None = None,
) -> LabelingFunction:
    clean = lf_config_validate(project=project, kind=kind, config=config)
    lf = LabelingFunction(
        project=project,
        name=_clean_name(name),
        kind=kind,
        config=clean,
        config_hash=config_hash(kind=kind, config=clean),
        description=(description or "")[:500],
        active=active,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    try:
        with transaction.atomic():
            lf.save()
    except IntegrityError:
        raise ApplicationError(
            f"A labeling function named '{lf.name}' already exists in this project.",
            {"field": "name"},
        ) from None
    return lf


@transaction.atomic
def lf_update(
    *,
    lf: LabelingFunction,
    name: str | None = None,
    kind: str | None = None,
    config: dict[str, Any] | None = None,
    description: str | None = None,
    active: bool | None = None,
) -> LabelingFunction:
    """Edit a function. A change of kind or specification bumps its version, so the next apply
    job re-runs this function (and only it), and lifts a stop for timeouts."""
    lf = LabelingFunction.objects.select_for_update().get(pk=lf.pk)
    new_kind = kind or lf.kind
    if config is not None or new_kind != lf.kind:
        clean = lf_config_validate(project=lf.project, kind=new_kind, config=config or lf.config)
        digest = config_hash(kind=new_kind, config=clean)
        if digest != lf.config_hash:
            lf.version += 1
            lf.config, lf.config_hash, lf.kind = clean, digest, new_kind
            lf.stopped_version, lf.stopped_reason = "", ""
    if name is not None:
        lf.name = _clean_name(name)
    if description is not None:
        lf.description = description[:500]
    if active is not None:
        lf.active = bool(active)
    try:
        with transaction.atomic():
            lf.save()
    except IntegrityError:
        raise ApplicationError(
            f"A labeling function named '{lf.name}' already exists in this project.",
            {"field": "name"},
        ) from None
    return lf


def lf_delete(*, lf: LabelingFunction) -> None:
    """Delete a function and its votes (cascade)."""
    lf.delete()


def active_model_source(*, project: Project, source_id: str = "") -> tuple[str, str] | None:
    """(source_id, source_version) of the classifier whose predictions a classifier function
    reads: the named model's newest version, or the newest model predictions of the project."""
    predictions = Prediction.objects.filter(
        project=project, source_kind=Prediction.SourceKind.MODEL
    )
    if source_id:
        predictions = predictions.filter(source_id=source_id)
    newest = predictions.order_by("-created_at", "-id").values("source_id", "source_version")[:1]
    row = next(iter(newest), None)
    return (row["source_id"], row["source_version"]) if row else None


def lf_effective_version(*, lf: LabelingFunction) -> str:
    """The version recorded with each vote: the function's own, plus what else decides its
    votes (the code of a Python function, the model version a classifier function reads)."""
    if lf.kind == Kind.PYTHON:
        load_python_lf_modules()
        found = registry.registered(lf.config.get("function", ""))
        return f"{lf.version}.py{found.version if found else '-missing'}"
    if lf.kind == Kind.CLASSIFIER:
        source = active_model_source(project=lf.project, source_id=lf.config.get("source_id", ""))
        return f"{lf.version}.m{source[0]}@{source[1]}" if source else f"{lf.version}.m-none"
    return str(lf.version)


def lf_stopped(*, lf: LabelingFunction) -> bool:
    """Stopped for timeouts at the version it has now (an edit or new code lifts it)."""
    return bool(lf.stopped_version) and lf.stopped_version == lf_effective_version(lf=lf)


def lf_stats_error(stats: dict[str, Any]) -> str:
    """What went wrong while a text function voted, in one line ("" if nothing): how often a
    Python function raised (exception type and message, never a traceback), returned
    something that is not a label, or ran out of time."""
    evaluated = int(stats.get("evaluated", 0))
    errors = int(stats.get("errors", 0))
    invalid = int(stats.get("invalid", 0))
    timeouts = int(stats.get("timeouts", 0))
    first = stats.get("first_error", "")
    problems = []
    if errors:
        problems.append(
            f"The function raised on {errors:,} of {evaluated:,} items; first problem: {first}."
        )
    elif invalid:
        problems.append(f"The function {first} on {invalid:,} of {evaluated:,} items.")
    if timeouts:
        problems.append(
            f"It ran out of time on {timeouts:,} of {evaluated:,} items (they count as "
            "abstentions)."
        )
    return " ".join(problems)


def lf_compile(*, lf_id: Any, kind: str, config: dict[str, Any], labels: list[str]) -> CompiledLF:
    function = None
    if kind == Kind.PYTHON:
        load_python_lf_modules()
        found = registry.registered(config.get("function", ""))
        function = found.function if found else None
    try:
        return compile_lf(
            key=lf_id,
            kind=kind,
            config=config,
            labels=labels,
            function=function,
            timeout=min(settings.WS_REGEX_TIMEOUT_SECONDS, settings.WS_LF_CALL_TIME_LIMIT),
        )
    except LFConfigError as exc:
        raise ApplicationError(exc.message, {"field": exc.field}) from None


def _sample_ids(*, project: Project, size: int, seed: int) -> list[int]:
    """A uniform random sample of `size` of the project's items (gold, done and open alike),
    the same for the same seed and items. Rejection sampling over the id range when ids are
    dense (no full scan): distinct ids drawn in random order, the first `size` that exist are a
    uniform sample of the existing items. Sparse ids fall back to sampling the list of ids."""
    items = Item.objects.filter(project=project)
    bounds = items.aggregate(lo=Min("id"), hi=Max("id"), n=Count("id"))
    n = bounds["n"] or 0
    if n == 0:
        return []
    if n <= size:
        return list(items.order_by("id").values_list("id", flat=True))
    rng = random.Random(seed)
    span = bounds["hi"] - bounds["lo"] + 1
    if n / span >= 0.25:
        drawn = rng.sample(range(bounds["lo"], bounds["hi"] + 1), min(span, 2 * size * span // n))
        existing = set(items.filter(pk__in=drawn).values_list("id", flat=True))
        hits = [item_id for item_id in drawn if item_id in existing]
        if len(hits) >= size:
            return hits[:size]
    return rng.sample(list(items.order_by("id").values_list("id", flat=True)), size)


def _sample_items(*, project: Project, size: int, seed: int) -> list[dict[str, Any]]:
    ids = _sample_ids(project=project, size=size, seed=seed)
    # order_by("id"): the model's default ordering is the queue's (priority first).
    return list(Item.objects.filter(pk__in=ids).order_by("id").values("id", "text"))


DEFAULT_SAMPLE_SEED = 0


def lf_try_sample(
    *,
    project: Project,
    kind: str,
    config: dict[str, Any],
    size: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Votes of a (possibly unsaved) function on a uniform random sample of the project's
    items, with the human label where there is one, before running it on everything.

    The sample is drawn over every item (as *Apply* runs on every item), so its coverage is an
    estimate of the applied coverage, given with a 95% Wilson interval. The same seed gives
    the same sample: editing a function and trying again compares like with like."""
    size = size or settings.WS_SAMPLE_SIZE
    seed = DEFAULT_SAMPLE_SEED if seed is None else seed
    clean = lf_config_validate(project=project, kind=kind, config=config)
    labels = project_labels(project=project)
    items = _sample_items(project=project, size=size, seed=seed)
    population = Item.objects.filter(project=project).count()
    ids = [row["id"] for row in items]
    stats: dict[str, Any] = {}
    error = ""
    if kind == Kind.CLASSIFIER:
        source = active_model_source(project=project, source_id=clean.get("source_id", ""))
        votes: list[str | None] = [None] * len(items)
        if source is None:
            error = "No model predictions in this project yet: the function abstains everywhere."
        else:
            predictions = dict(
                (p[0], (p[1], p[2]))
                for p in Prediction.objects.filter(
                    project=project,
                    source_kind=Prediction.SourceKind.MODEL,
                    source_id=source[0],
                    source_version=source[1],
                    item_id__in=ids,
                ).values_list("item_id", "labels", "confidence")
            )
            for n, item_id in enumerate(ids):
                labels_conf = predictions.get(item_id)
                if labels_conf:
                    votes[n] = classifier_vote(
                        labels=labels_conf[0] or [],
                        confidence=labels_conf[1],
                        threshold=clean["threshold"],
                        label=clean.get("label"),
                    )
    else:
        compiled = lf_compile(lf_id=None, kind=kind, config=clean, labels=labels)
        # A try answers a web request: a function that keeps timing out is stopped sooner.
        compiled.max_timeouts = max(1, settings.WS_LF_TRY_MAX_TIMEOUTS)
        outcome = vote_limited(
            [compiled],
            [row["text"] for row in items],
            limits=lf_limits(),
            error_text=job_failure_text,
        )
        votes = outcome.votes[0]
        error = outcome.stopped.get(0, "")
        stats = compiled.stats.as_dict()
        error = error or lf_stats_error(stats)
    truth = human_labels(project=project, item_ids=ids)
    judged = [(v, truth[i]) for v, i in zip(votes, ids, strict=True) if v and i in truth]
    voted = sum(1 for v in votes if v)
    interval = wilson_interval(voted, len(items))
    return {
        "config": clean,
        "sample_size": len(items),
        "population": population,
        "seed": seed,
        "votes": voted,
        "coverage": voted / len(items) if items else 0.0,
        "coverage_low": interval[0] if interval else None,
        "coverage_high": interval[1] if interval else None,
        "errors": int(stats.get("errors", 0)),
        "accuracy": (sum(v == t for v, t in judged) / len(judged)) if judged else None,
        "judged": len(judged),
        "error": error,
        "stats": stats,
        "rows": [
            {
                "item_id": row["id"],
                "text": row["text"][:300],
                "vote": vote,
                "human_label": truth.get(row["id"]),
            }
            for row, vote in zip(items, votes, strict=True)
        ],
    }
