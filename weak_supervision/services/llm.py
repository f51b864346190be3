"""The LLM pre-label job.

1. Build the prompt from the guidelines, the label set and few-shot examples drawn from final
   human labels (the first ``llm_few_shot`` items by id, round-robin over classes, so the set is
   stable as more labels arrive); store it content-addressed as an `LLMPrompt` (its version).
2. Stream the items (those without a human final label, plus ``eval_sample`` human-labeled items
   that are not examples, to measure accuracy): an item whose (prompt, model, content hash) is
   in the `LLMResponse` cache is answered from it for free; identical texts are asked once.
3. Requests run in a thread pool with at most ``concurrency`` in flight; each is retried with
   backoff on 429, 5xx, timeouts and connection errors (`weak_supervision.llm`).
4. Results are written in batches: the cache row (tokens, cost), and a `labeling.Prediction`
   per item (source_kind ``llm``, source_id = model, source_version ``p<prompt version>``).
   An invalid or malformed answer is a prediction with no label and its status in ``details``.
5. Before each new request the project's total cost is compared with its budget; once reached,
   no new request starts and the job ends as *cancelled* with the reason.

Re-running the job is the resume path: everything already answered is in the cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max, Q, Sum

from labeling.errors import ApplicationError
from labeling.models import Item, Job, Prediction, Project
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed
from weak_supervision.llm import (
    CallResult,
    LLMClient,
    Prompt,
    build_messages,
    build_prompt,
    cost_usd,
    run_bounded,
)
from weak_supervision.models import LLMPrompt, LLMResponse
from weak_supervision.services.common import (
    human_final_q,
    job_stop,
    llm_config,
    project_labels,
    ws_settings_for,
)
from weak_supervision.services.label_model import stale_predictions_delete

SCOPES = ("unlabeled", "all")


def llm_job_create(
    *,
    project: Project,
    scope: str = "unlabeled",
    limit: int | None = None,
    eval_sample: int = 100,
    user: AbstractBaseUser | None = None,
) -> Job:
    config = llm_config(project=project)
    if not config.enabled:
        raise ApplicationError(config.reason, {"field": "llm"})
    if scope not in SCOPES:
        raise ApplicationError(f"Scope must be one of {', '.join(SCOPES)}.", {"field": "scope"})
    if limit is not None and limit < 1:
        raise ApplicationError("The limit must be a positive number.", {"field": "limit"})
    if eval_sample < 0:
        raise ApplicationError(
            "The evaluation sample cannot be negative.", {"field": "eval_sample"}
        )
    job = job_create(
        kind=Job.Kind.LLM,
        project=project,
        params={"scope": scope, "limit": limit, "eval_sample": eval_sample},
        created_by=user if user is not None and user.is_authenticated else None,
    )
    from weak_supervision.tasks import enqueue

    transaction.on_commit(lambda: enqueue(job=job))
    return job


def few_shot_examples(*, project: Project, count: int) -> list[tuple[int, str, str]]:
    """(item id, text, label) of up to ``count`` human-labeled items, round-robin per class."""
    if count <= 0:
        return []
    per_class: dict[str, list[tuple[int, str]]] = {}
    rows = (
        Item.objects.filter(project=project, is_gold=False)
        .filter(human_final_q())
        .order_by("id")
        .values_list("id", "text", "final_labels")[: count * 50]
    )
    for item_id, text, labels in rows:
        if isinstance(labels, list) and labels:
            per_class.setdefault(labels[0], []).append((item_id, text))
    out: list[tuple[int, str, str]] = []
    depth = 0
    while len(out) < count and any(len(v) > depth for v in per_class.values()):
        for label in sorted(per_class):
            if depth < len(per_class[label]) and len(out) < count:
                item_id, text = per_class[label][depth]
                out.append((item_id, text, label))
        depth += 1
    return out


def llm_prompt_for(*, project: Project) -> tuple[LLMPrompt, Prompt, set[int]]:
    """The current prompt (stored, versioned by content) and the ids of its example items."""
    ws = ws_settings_for(project=project)
    labels = project_labels(project=project)
    examples = few_shot_examples(project=project, count=ws.llm_few_shot)
    prompt = build_prompt(
        guidelines=project.guidelines,
        labels=labels,
        examples=[(text, label) for _, text, label in examples],
    )
    fingerprint = prompt.fingerprint
    row = LLMPrompt.objects.filter(project=project, fingerprint=fingerprint).first()
    if row is None:
        try:
            with transaction.atomic():
                version = (
                    LLMPrompt.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
                ) + 1
                row = LLMPrompt.objects.create(
                    project=project,
                    version=version,
                    fingerprint=fingerprint,
                    system=prompt.system,
                    examples=[{"text": t, "label": lb} for t, lb in prompt.examples],
                    labels=labels,
                )
        except IntegrityError:  # created concurrently
            row = LLMPrompt.objects.get(project=project, fingerprint=fingerprint)
    return row, prompt, {item_id for item_id, _, _ in examples}


def project_llm_cost(*, project: Project) -> float:
    total = LLMResponse.objects.filter(project=project).aggregate(c=Sum("cost_usd"))["c"]
    return float(total or 0)


class _Run:
    """State of one job run: counters, the pending writes, the budget."""

    def __init__(self, *, job: Job, prompt_row: LLMPrompt, model: str, config: Any) -> None:
        self.job = job
        self.project = job.project
        self.prompt_row = prompt_row
        self.model = model
        self.config = config
        self.source_version = f"p{prompt_row.version}"
        self.spent = project_llm_cost(project=self.project)
        self.counts = {
            "items": 0,
            "cached": 0,
            "requests": 0,
            "valid": 0,
            "invalid": 0,
            "malformed": 0,
            "errors": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "attempts": 0,
        }
        self.first_error = ""
        self.budget_hit = False
        self.waiting: dict[str, list[int]] = {}  # content hash -> item ids awaiting its answer
        self.predictions: list[Prediction] = []
        self.responses: list[LLMResponse] = []

    # -- budget -----------------------------------------------------------------------------
    def over_budget(self) -> bool:
        if self.config.budget is not None and self.spent >= self.config.budget:
            self.budget_hit = True
            return True
        return False

    # -- results ----------------------------------------------------------------------------
    def prediction(self, item_id: int, response: LLMResponse) -> Prediction:
        valid = response.status == LLMResponse.Status.VALID
        return Prediction(
            item_id=item_id,
            project=self.project,
            source_kind=Prediction.SourceKind.LLM,
            source_id=self.model[:255],
            source_version=self.source_version,
            labels=[response.label] if valid else [],
            confidence=response.confidence if valid else None,
            scores=None,
            details={
                "status": response.status,
                "confidence_kind": response.confidence_kind or None,
                "prompt_version": self.prompt_row.version,
                "model": self.model,
                "error": response.error,
            },
        )

    def from_cache(self, item_id: int, response: LLMResponse) -> None:
        self.counts["items"] += 1
        self.counts["cached"] += 1
        self.predictions.append(self.prediction(item_id, response))

    def from_call(self, result: CallResult) -> None:
        content_hash = result.key
        item_ids = self.waiting.pop(content_hash, [])
        self.counts["requests"] += 1
        self.counts["attempts"] += result.attempts
        self.counts["prompt_tokens"] += result.prompt_tokens
        self.counts["completion_tokens"] += result.completion_tokens
        cost = cost_usd(
            result.prompt_tokens,
            result.completion_tokens,
            self.config.price_input,
            self.config.price_output,
        )
        self.spent += cost
        self.counts["cost_usd"] += cost
        self.counts["items"] += len(item_ids)
        if result.answer is None:
            self.counts["errors"] += len(item_ids)
            self.first_error = self.first_error or result.error
            return
        answer = result.answer
        self.counts[answer.status] += len(item_ids)
        response = LLMResponse(
            project=self.project,
            prompt_fingerprint=self.prompt_row.fingerprint,
            model=self.model[:200],
            content_hash=content_hash,
            status=answer.status,
            label=answer.label[:100],
            confidence=answer.confidence,
            confidence_kind=answer.confidence_kind,
            raw=answer.raw,
            error=answer.error[:500],
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=Decimal(str(round(cost, 8))),
            attempts=result.attempts,
            latency_ms=result.latency_ms,
        )
        self.responses.append(response)
        self.predictions.extend(self.prediction(item_id, response) for item_id in item_ids)

    def flush(self, *, force: bool = False) -> None:
        if not force and len(self.predictions) < settings.LLM_WRITE_BATCH_SIZE:
            return
        with transaction.atomic():
            if self.responses:
                LLMResponse.objects.bulk_create(self.responses, ignore_conflicts=True)
            if self.predictions:
                Prediction.objects.bulk_create(
                    self.predictions,
                    update_conflicts=True,
                    unique_fields=["item", "source_kind", "source_id", "source_version"],
                    update_fields=["labels", "confidence", "details"],
                )
            job_progress(
                job=self.job,
                done=self.counts["items"],
                message=(
                    f"{self.counts['items']} items, {self.counts['requests']} requests, "
                    f"${self.spent:.4f} spent"
                ),
            )
        self.responses, self.predictions = [], []


def _item_query(*, project: Project, scope: str, eval_ids: list[int], exclude: set[int]):
    items = Item.objects.filter(project=project)
    if scope == "unlabeled":
        items = items.filter(
            Q(final_labels__isnull=True) | Q(final_lineage__machine=True) | Q(pk__in=eval_ids)
        )
    return items.exclude(pk__in=exclude).order_by("id")


def llm_run(*, job_id: int, client_factory=None) -> Job:
    """Run (or resume) an LLM job. ``client_factory(config) -> LLMClient`` is for tests that
    need a client with, say, no backoff sleeps; by default one is built from the settings."""
    job = job_start(job_id=job_id)
    if job is None:
        return Job.objects.get(pk=job_id)
    project = job.project
    config = llm_config(project=project)
    if not config.enabled:
        raise ApplicationError(config.reason)
    labels = project_labels(project=project)
    prompt_row, prompt, example_ids = llm_prompt_for(project=project)
    scope = job.params.get("scope", "unlabeled")
    limit = job.params.get("limit")
    eval_sample = int(job.params.get("eval_sample", 0) or 0)
    eval_ids = list(
        Item.objects.filter(project=project, is_gold=False)
        .filter(human_final_q())
        .exclude(pk__in=example_ids)
        .order_by("id")
        .values_list("id", flat=True)[:eval_sample]
    )
    items = _item_query(project=project, scope=scope, eval_ids=eval_ids, exclude=example_ids)
    total = items.count() if limit is None else min(limit, items.count())
    job_progress(job=job, done=0, total=total, message=f"Prompt v{prompt_row.version}")
    run = _Run(job=job, prompt_row=prompt_row, model=config.model, config=config)
    client = (
        client_factory(config)
        if client_factory
        else LLMClient(
            base_url=config.base_url,
            api_key=config.api_key,
            model=config.model,
            timeout=settings.LLM_TIMEOUT_SECONDS,
            max_attempts=settings.LLM_MAX_ATTEMPTS,
            backoff_base=settings.LLM_BACKOFF_SECONDS,
            logprobs=settings.LLM_LOGPROBS,
            response_format=settings.LLM_RESPONSE_FORMAT,
        )
    )

    def to_ask() -> Iterator[tuple[str, str]]:
        """Items in id order; cached ones are answered here, identical texts asked once."""
        seen = 0
        after = 0
        chunk = settings.LLM_WRITE_BATCH_SIZE
        while limit is None or seen < limit:
            rows = list(
                items.filter(pk__gt=after).values_list("id", "text", "content_hash")[:chunk]
            )
            if not rows:
                return
            if limit is not None:
                rows = rows[: limit - seen]
            seen += len(rows)
            after = rows[-1][0]
            cached = {
                r.content_hash: r
                for r in LLMResponse.objects.filter(
                    prompt_fingerprint=prompt_row.fingerprint,
                    model=config.model[:200],
                    content_hash__in={h for _, _, h in rows},
                )
            }
            for item_id, text, content_hash in rows:
                if content_hash in cached:
                    run.from_cache(item_id, cached[content_hash])
                elif content_hash in run.waiting:
                    run.waiting[content_hash].append(item_id)
                else:
                    run.waiting[content_hash] = [item_id]
                    yield content_hash, text
            run.flush()

    def ask(job_item: tuple[str, str]) -> CallResult:
        content_hash, text = job_item
        messages = build_messages(prompt, text, text_chars=settings.LLM_MAX_TEXT_CHARS)
        return client.label(content_hash, messages, labels)

    started = time.perf_counter()
    try:
        for result in run_bounded(
            to_ask(), ask, concurrency=config.concurrency, should_stop=run.over_budget
        ):
            run.from_call(result)
            run.flush()
    finally:
        run.flush(force=True)
        client.close()
    elapsed = time.perf_counter() - started
    with transaction.atomic():
        stale_predictions_delete(
            project=project,
            source_kind=Prediction.SourceKind.LLM,
            keep_version=run.source_version,
        )
    result = {
        **run.counts,
        "prompt_version": prompt_row.version,
        "model": config.model,
        "seconds": round(elapsed, 3),
        "spent_total_usd": round(run.spent, 6),
        "first_error": run.first_error,
    }
    if run.budget_hit:
        job_stop(
            job=job,
            status=Job.Status.CANCELLED,
            message=(
                f"Stopped: the budget of ${config.budget:.2f} is reached "
                f"(${run.spent:.4f} spent) after {run.counts['items']} items."
            ),
            result={**result, "stopped": "budget"},
        )
        return Job.objects.get(pk=job.pk)
    message = (
        f"{run.counts['valid']} labels, {run.counts['invalid']} invalid, "
        f"{run.counts['malformed']} malformed, {run.counts['errors']} errors; "
        f"{run.counts['cached']} from cache; ${run.counts['cost_usd']:.4f}"
    )
    job_succeed(job=job, result=result, message=message)
    ws = ws_settings_for(project=project)
    if ws.cascade_enabled:
        from weak_supervision.services.cascade import cascade_job_create

        with transaction.atomic():
            cascade_job_create(project=project, user=None)
    return job
