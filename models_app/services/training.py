"""Training: the per-project lock, the training job, and evaluate-before-promote.

The lock is a compare-and-set on ``ModelSettings.training_job`` (``UPDATE ... WHERE
training_job_id IS NULL``): on PostgreSQL the second of two concurrent updates waits for the
first's row lock and then finds the column set; on SQLite writers are serialised. A request that
finds the lock taken sets ``retrain_pending``, and the holder trains again when it finishes, so
no request is lost and two trainings never overlap.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Item, Job, Project
from labeling.services.db import no_flush_wait_sql
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed
from models_app.ml.evaluation import (
    cross_validation_metrics,
    cv_fold_count,
    fold_predictions,
    holdout_ready,
    stratified_folds,
)
from models_app.ml.gate import paired_bootstrap, promotion_decision
from models_app.ml.training import (
    classifier_fit,
    classifier_make,
    evaluate_proba,
    holdout_assign,
    predicted_labels,
    probabilities_for,
)
from models_app.models import Embedding, HeldOutItem, ModelSettings, ModelVersion
from models_app.services.config import embedding_model_name, model_settings_get
from models_app.services.embeddings import vectors_ready

logger = logging.getLogger(__name__)


class _LockTaken(Exception):
    pass


def _release_stale_lock(model_settings: ModelSettings) -> None:
    """Free the lock if its job finished without releasing it or went silent (dead worker)."""
    holder_id = model_settings.training_job_id
    if holder_id is None:
        return
    holder = Job.objects.filter(pk=holder_id).first()
    stale_before = timezone.now() - timedelta(seconds=settings.TRAINING_LOCK_STALE_SECONDS)
    if (
        holder is None
        or holder.is_finished
        or (holder.heartbeat_at or holder.created_at) < stale_before
    ):
        ModelSettings.objects.filter(pk=model_settings.pk, training_job_id=holder_id).update(
            training_job=None
        )


def _try_acquire(*, project: Project, model_settings: ModelSettings, reason: str, user) -> Job:
    from models_app.tasks import train_task_enqueue

    with transaction.atomic():
        job = job_create(
            kind=Job.Kind.TRAIN, project=project, params={"reason": reason}, created_by=user
        )
        acquired = ModelSettings.objects.filter(
            pk=model_settings.pk, training_job__isnull=True
        ).update(training_job=job, labels_since_training=0, retrain_pending=False)
        if not acquired:
            raise _LockTaken  # rolls the job row back
        transaction.on_commit(lambda: train_task_enqueue(job_id=job.pk))
    return job


def training_request(*, project: Project, reason: str, user=None) -> Job | None:
    """Start a training job for the project, or, if one holds the project's training lock,
    mark a retrain as pending (the running one retrains when it ends). Returns the new job, or
    None when the request was folded into the running one."""
    if project.multi_label:
        raise ApplicationError(
            "Training supports single-label projects only.", {"project": project.pk}
        )
    model_settings = model_settings_get(project=project)
    _release_stale_lock(model_settings)
    try:
        return _try_acquire(
            project=project, model_settings=model_settings, reason=reason, user=user
        )
    except _LockTaken:
        pass
    ModelSettings.objects.filter(pk=model_settings.pk).update(retrain_pending=True)
    # The holder may have released between our attempt and the flag: try once more.
    try:
        return _try_acquire(
            project=project, model_settings=model_settings, reason=reason, user=user
        )
    except _LockTaken:
        return None


def training_lock_holder(*, project_id: int) -> int | None:
    """The training job holding the project's lock, unless it finished or went silent."""
    model_settings = ModelSettings.objects.filter(project_id=project_id).first()
    if model_settings is None:
        return None
    _release_stale_lock(model_settings)
    return (
        ModelSettings.objects.filter(pk=model_settings.pk)
        .values_list("training_job_id", flat=True)
        .first()
    )


def training_lock_claim(*, job: Job) -> int | None:
    """Take the project's training lock for `job` (recovering or restarting it) if it is free
    or already `job`'s; returns the holder afterwards (`job.pk` when it got it)."""
    model_settings = model_settings_get(project=job.project)
    _release_stale_lock(model_settings)
    ModelSettings.objects.filter(pk=model_settings.pk, training_job__isnull=True).update(
        training_job=job
    )
    return training_lock_holder(project_id=job.project_id)


def training_lock_release(*, project_id: int, job_id: int) -> None:
    """Release the lock held by `job_id`; if a retrain was requested meanwhile, start it."""
    released = ModelSettings.objects.filter(project_id=project_id, training_job_id=job_id).update(
        training_job=None
    )
    if not released:
        return
    model_settings = ModelSettings.objects.select_related("project").get(project_id=project_id)
    if model_settings.retrain_pending:
        training_request(project=model_settings.project, reason="requested while training")


@dataclass(frozen=True)
class LabelCounter:
    """The retrain counter after an increment, with the training lock's state."""

    added: int
    since_training: int
    retrain_every: int
    holder_id: int | None  # the training job holding the project's lock
    retrain_pending: bool
    holder_live: bool  # the holder is neither finished nor silent (see `_release_stale_lock`)
    has_active_model: bool


def final_labels_counted(*, project: Project, count: int) -> Job | None:
    """`count` new final labels arrived: retrain once `retrain_every` have accumulated, or, while
    no model is active, as soon as the labels can leave cold start."""
    return retrain_if_due(project=project, counter=label_counter_add(project=project, count=count))


def label_counter_add(
    *, project: Project, count: int | None = None, item_ids: Sequence[int] = ()
) -> LabelCounter:
    """Add `count`, or the number of `item_ids` that have final labels, to the project's
    labels-since-training counter, in one statement that also reads back the lock's state.

    Runs after every submit. Outside a transaction its commit does not wait for the WAL flush
    (PostgreSQL): the counter only decides when to retrain, so losing an increment in a
    database crash is harmless, while waiting for the disk would hold the project's settings
    row, which every submit updates, for a whole fsync."""
    state = _counter_update(project=project, count=count, item_ids=item_ids)
    if state is None:  # first label of the project: create the row
        model_settings_get(project=project)
        state = _counter_update(project=project, count=count, item_ids=item_ids)
    return LabelCounter(*state[:3], state[3], bool(state[4]), bool(state[5]), bool(state[6]))


def retrain_if_due(*, project: Project, counter: LabelCounter) -> Job | None:
    """Request a training job if the counter or the end of cold start calls for one. When a
    live training job holds the lock and a retrain is already pending, nothing can change, so
    nothing more is read."""
    if not counter.added or not counter.retrain_every:
        return None
    if counter.holder_id is not None and counter.retrain_pending and counter.holder_live:
        return None
    if counter.since_training >= counter.retrain_every:
        return training_request(project=project, reason=f"{counter.since_training} new labels")
    if counter.has_active_model:
        return None
    model_settings = ModelSettings.objects.get(project=project)
    if _cold_start_can_end(project=project, model_settings=model_settings):
        return training_request(project=project, reason="enough labels to leave cold start")
    return None


def _counter_update(*, project: Project, count: int | None, item_ids: Sequence[int]):
    ms, job, mv = ModelSettings._meta.db_table, Job._meta.db_table, ModelVersion._meta.db_table
    stale_before = timezone.now() - timedelta(seconds=settings.TRAINING_LOCK_STALE_SECONDS)
    finished = [s.value for s in Job.FINISHED_STATUSES]
    if count is not None:
        added, added_params = "%s", [count]
    else:
        marks = ", ".join(["%s"] * len(item_ids)) or "NULL"
        added = f"""(SELECT COUNT(*) FROM {Item._meta.db_table}
                      WHERE id IN ({marks}) AND final_labels IS NOT NULL)"""
        added_params = [int(i) for i in item_ids]
    # Only as its own (autocommit) transaction: never make a caller's commit skip the wait.
    expression = None if connection.in_atomic_block else no_flush_wait_sql()
    no_flush_wait = f"AND {expression} IS NOT NULL" if expression else ""
    marks = ", ".join(["%s"] * len(finished))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {ms} SET labels_since_training = labels_since_training + {added}
                 WHERE project_id = %s {no_flush_wait}
             RETURNING {added}, labels_since_training, retrain_every, training_job_id,
                       retrain_pending,
                       EXISTS (SELECT 1 FROM {job} j WHERE j.id = {ms}.training_job_id
                                  AND j.status NOT IN ({marks})
                                  AND COALESCE(j.heartbeat_at, j.created_at) >= %s),
                       EXISTS (SELECT 1 FROM {mv} v
                                WHERE v.project_id = {ms}.project_id AND v.status = %s)""",
            [
                *added_params,
                project.pk,
                *added_params,
                *finished,
                stale_before,
                ModelVersion.Status.ACTIVE.value,
            ],
        )
        return cursor.fetchone()


def _cold_start_can_end(*, project: Project, model_settings: ModelSettings) -> bool:
    """No model is active yet, and the labels (but items already held out) would train one:
    train now rather than after `retrain_every` labels, so the queue leaves representative
    sampling as soon as a model can rank it (as the simulation does). Runs a
    query only while the project has no active model."""
    from active_learning.strategies import needs_cold_start

    if ModelVersion.objects.filter(project=project, status="active").exists():
        return False
    # Counted in the database, grouped by label and by machine origin: a handful of rows back
    # however many labels the project has. Items already held out are never trained on; a
    # small project holds nothing more out (it is cross-validated, see `_split`).
    groups = (
        Item.objects.filter(
            project=project, final_labels__isnull=False, is_gold=False, held_out__isnull=True
        )
        .values_list("final_labels", "final_lineage__machine")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[str, int] = {}
    for labels, machine, n in groups:
        label = _single(labels)
        if label is None or (machine is True and model_settings.machine_label_weight <= 0):
            continue
        counts[label] = counts.get(label, 0) + n
    classes = list(project.labels.values_list("value", flat=True))
    if len(classes) < 2:  # nothing a classifier could learn: don't request a failing job
        return False
    train_labels = [c for c, n in counts.items() for _ in range(n)]
    return not needs_cold_start(
        labels=train_labels, classes=classes, min_labels=model_settings.min_labels
    )


# --- the training job ---------------------------------------------------------------------------


def _single(labels) -> str | None:
    return labels[0] if isinstance(labels, list) and len(labels) == 1 else None


def _split(*, project: Project, model_settings: ModelSettings) -> dict[str, Any]:
    """Training and evaluation items with their labels, and how the version is evaluated.

    - ``gold``: the project's gold items are the held-out set; every final label trains.
    - ``split``: the fixed held-out set, a stratified share of human labels chosen with the
      project's seed the first time an item is seen and never trained on afterwards. It forms
      (its ``HeldOutItem`` rows are written) only once it would hold out at least
      ``HOLDOUT_MIN_PER_CLASS`` human labels of every class; from then on it only grows.
    - ``cv``: until then nothing more is held out; the model trains on every label (but items
      held out earlier) and is evaluated by stratified cross-validation on its human labels.

    Machine labels (``final_lineage.machine``) are trained on, never held out or tested on."""
    rows = Item.objects.filter(
        project=project, final_labels__isnull=False, is_gold=False
    ).values_list("id", "final_labels", "final_lineage", "final_confidence")
    labelled, weight, machine_ids = [], {}, set()
    for item_id, labels, lineage, confidence in rows:
        machine = bool((lineage or {}).get("machine"))
        w = model_settings.machine_label_weight if machine else 1.0
        if model_settings.weight_by_confidence and confidence is not None:
            w *= confidence
        label = _single(labels)
        if label is None or w <= 0:
            continue
        labelled.append((item_id, label, machine))
        weight[item_id] = w
        if machine:
            machine_ids.add(item_id)
    gold = [
        (item_id, _single(labels))
        for item_id, labels in Item.objects.filter(project=project, is_gold=True).values_list(
            "id", "gold_labels"
        )
    ]
    gold = [row for row in gold if row[1] is not None]
    common = {"weight": weight, "machine": machine_ids}
    if gold:
        return {
            **common,
            "source": "gold",
            "train": [(i, y) for i, y, _ in labelled],
            "holdout": gold,
            "label_count": len(labelled) + len(gold),
        }
    held = set(HeldOutItem.objects.filter(project=project).values_list("item_id", flat=True))
    formed = holdout_ready(
        held_out_labels=[y for i, y, machine in labelled if i in held and not machine],
        human_labels=[y for _, y, machine in labelled if not machine],
    )
    # Once the set has formed it grows from labels the active model was not trained on, so an
    # item is held out the first time a training sees it and the active model can be compared
    # as it is. The set forms from all labels (a cross-validated model was trained on them all);
    # the gate then re-fits the active version's recipe without them.
    trained = _active_trained_ids(project=project) if formed else set()
    add = (
        holdout_assign(
            labels=[y for _, y, _ in labelled],
            already_held_out=[i in held for i, _, _ in labelled],
            eligible=[not machine and i not in trained for i, _, machine in labelled],
            fraction=model_settings.holdout_fraction,
            seed=model_settings.seed,
        )
        if labelled
        else np.zeros(0, dtype=bool)
    )
    new = [labelled[k][0] for k in np.flatnonzero(add)]
    would_hold = held | set(new)
    ready = holdout_ready(
        held_out_labels=[y for i, y, machine in labelled if i in would_hold and not machine],
        human_labels=[y for _, y, machine in labelled if not machine],
    )
    if ready:
        HeldOutItem.objects.bulk_create(
            [HeldOutItem(project=project, item_id=i) for i in new], ignore_conflicts=True
        )
        held = would_hold
    return {
        **common,
        "source": "split" if ready else "cv",
        "train": [(i, y) for i, y, _ in labelled if i not in held],
        "holdout": [(i, y) for i, y, machine in labelled if i in held and not machine]
        if ready
        else [],
        "label_count": len(labelled),
    }


def _active_trained_ids(*, project: Project) -> set[int]:
    active = ModelVersion.objects.filter(project=project, status="active").first()
    if active is None:
        return set()
    return set(_artifact_bundle(version=active).get("train_item_ids") or ())


def _artifact_path(project_id: int, number: int) -> str:
    return f"models/project-{project_id}/v{number}-{uuid.uuid4().hex[:8]}.joblib"


def _artifact_bundle(*, version: ModelVersion) -> dict[str, Any]:
    """The joblib artifact: the fitted model, its classes, embedding model and (since the gate
    compares on the same items) the ids of the items it was trained on."""
    return joblib.load(Path(settings.MEDIA_ROOT) / version.artifact)


def model_artifact_load(*, version: ModelVersion):
    return _artifact_bundle(version=version)["model"]


def _vectors_by_hash(*, item_ids: list[int], model_name: str) -> np.ndarray | None:
    """Vectors of items under another embedding model (the active version's), by text; None
    when some are not stored under that model."""
    hashes = dict(Item.objects.filter(pk__in=item_ids).values_list("id", "content_hash"))
    stored = dict(
        Embedding.objects.filter(
            model_name=model_name, content_hash__in=set(hashes.values())
        ).values_list("content_hash", "vector")
    )
    if len(stored) < len(set(hashes.values())):
        return None
    return np.stack([np.frombuffer(bytes(stored[hashes[i]]), dtype="<f4") for i in item_ids])


def _active_vectors(*, active: ModelVersion, item_ids, vectors, model_name) -> np.ndarray | None:
    if active.embedding_model == model_name:
        return vectors.vectors(item_ids)
    return _vectors_by_hash(item_ids=item_ids, model_name=active.embedding_model)


@dataclass(frozen=True)
class _Evaluation:
    """The candidate's metrics and what the gate needs to redo its evaluation for the active
    version's recipe on the same items."""

    metrics: dict[str, Any]
    ids: list[int]  # pool: training items (cv) or training + held-out items (split, gold)
    y: np.ndarray
    folds: np.ndarray  # per pool row: its fold (cv), 0 for held-out rows, -1 = train only
    weights: np.ndarray
    predictions: Any  # the candidate's FoldPredictions on the tested rows


def _evaluate_candidate(
    *, model, split, classes, vectors, model_settings: ModelSettings
) -> _Evaluation:
    from models_app.ml.evaluation import FoldPredictions

    train_ids = [i for i, _ in split["train"]]
    if split["source"] == "cv":
        y = np.asarray([y for _, y in split["train"]])
        human = np.array([i not in split["machine"] for i in train_ids], dtype=bool)
        folds = np.full(len(train_ids), -1)
        k = cv_fold_count(y[human].tolist())
        if not k:
            return _Evaluation({"n": 0}, train_ids, y, folds, np.ones(len(y)), None)
        folds[human] = stratified_folds(y[human], k=k, seed=model_settings.seed)
        weights = np.asarray([split["weight"][i] for i in train_ids])
        predictions = fold_predictions(
            estimator=classifier_make(
                name=model_settings.classifier,
                params=model_settings.classifier_params,
                seed=model_settings.seed,
            ),
            X=vectors.vectors(train_ids),
            y=y,
            folds=folds,
            classes=classes,
            sample_weight=weights,
        )
        metrics = cross_validation_metrics(predictions=predictions, y=y, classes=classes)
        return _Evaluation(metrics, train_ids, y, folds, weights, predictions)
    holdout = split["holdout"]
    hold_ids = [i for i, _ in holdout]
    ids = train_ids + hold_ids
    y = np.asarray([y for _, y in split["train"]] + [y for _, y in holdout])
    folds = np.concatenate([np.full(len(train_ids), -1), np.zeros(len(hold_ids), dtype=int)])
    weights = np.asarray([split["weight"][i] for i in train_ids] + [1.0] * len(hold_ids))
    if not holdout:
        return _Evaluation({"n": 0}, ids, y, folds, weights, None)
    proba = probabilities_for(model, vectors.vectors(hold_ids), classes)
    metrics = evaluate_proba(proba=proba, y=y[len(train_ids) :], classes=classes)
    metrics["evaluation"] = "gold" if split["source"] == "gold" else "held_out"
    predictions = FoldPredictions(
        index=np.arange(len(train_ids), len(ids)),
        fold=np.zeros(len(hold_ids), dtype=int),
        proba=proba,
        predicted=predicted_labels(proba, classes),
    )
    return _Evaluation(metrics, ids, y, folds, weights, predictions)


def _compare_with_active(
    *, active: ModelVersion, evaluation: _Evaluation, classes, vectors, model_name, seed: int
) -> dict[str, Any] | None:
    """Both models' macro-F1 on the same items, paired.

    Held out (split, gold): the active model's own predictions, unless it was trained on some of
    the held-out items (a version fitted while the project was cross-validated): then its
    recipe is re-fit on the training items it was trained on and scored on the held-out set.
    Cross-validation: per fold, the active version's recipe is re-fit on the fold's training
    labels that it was trained on, the candidate's on all of them; both predict the fold's
    labels, which neither saw. The active version keeps its embedding model when its vectors
    are stored, else it is re-fit on the current one."""
    if evaluation.predictions is None:
        return None
    bundle = _artifact_bundle(version=active)
    trained = bundle.get("train_item_ids")  # None: a version from before the ids were stored
    tested = evaluation.predictions.index
    tested_ids = [evaluation.ids[r] for r in tested]
    is_cv = evaluation.metrics.get("evaluation") == "cross_validation"
    refit = is_cv or (trained is not None and bool(set(trained) & set(tested_ids)))
    own_embedding = True
    if not refit:
        X_old = _active_vectors(
            active=active, item_ids=tested_ids, vectors=vectors, model_name=model_name
        )
        if X_old is None:
            refit, own_embedding = True, False
        else:
            old_predicted = predicted_labels(
                probabilities_for(bundle["model"], X_old, classes), classes
            )
    if refit:
        X_pool = _active_vectors(
            active=active, item_ids=evaluation.ids, vectors=vectors, model_name=model_name
        )
        if X_pool is None:
            X_pool, own_embedding = vectors.vectors(evaluation.ids), False
        trained_set = set(trained) if trained is not None else None
        trainable = np.array(
            [trained_set is None or i in trained_set for i in evaluation.ids], dtype=bool
        )
        old = fold_predictions(
            estimator=bundle["model"],
            X=X_pool,
            y=evaluation.y,
            folds=evaluation.folds,
            classes=classes,
            sample_weight=evaluation.weights,
            trainable=trainable,
        )
        if not np.array_equal(old.index, tested):
            raise ApplicationError("The two models were not tested on the same items.")
        old_predicted = old.predicted
    comparison = paired_bootstrap(
        y_true=evaluation.y[tested],
        new_predicted=evaluation.predictions.predicted,
        old_predicted=old_predicted,
        groups=evaluation.predictions.fold,
        seed=seed,
    ).as_dict()
    comparison.update(
        version=active.number,
        evaluation=evaluation.metrics.get("evaluation"),
        refit=refit,
        own_embedding=own_embedding,
    )
    if is_cv:
        comparison["folds"] = evaluation.metrics["folds"]
    return comparison


def training_run(*, job_id: int) -> ModelVersion | None:
    """Embed what is missing, fit, evaluate (cross-validation or the held-out set), compare with
    the active model on the same items, promote or reject. Call only from the job holding the
    project's training lock (`training_request` queues it)."""
    job = job_start(job_id=job_id)
    if job is None:
        return None
    project = job.project
    model_settings = model_settings_get(project=project)
    model_name = embedding_model_name()
    job_progress(job=job, done=0, total=4, message="Choosing the training and evaluation sets")
    split = _split(project=project, model_settings=model_settings)
    # After the split: labels keep arriving while an embedding job runs, and every item the
    # split chose must be in the vectors read (its missing texts are embedded first).
    job_progress(job=job, done=1, message="Reading the vectors of the labelled items")
    vectors = vectors_ready(
        project=project,
        model_name=model_name,
        need=[i for i, _ in split["train"]] + [i for i, _ in split["holdout"]],
    )
    classes = list(project.labels.order_by("order", "id").values_list("value", flat=True))

    from active_learning.services.ranking import ranking_schedule
    from active_learning.strategies import needs_cold_start

    train_labels = [y for _, y in split["train"]]
    if needs_cold_start(labels=train_labels, classes=classes, min_labels=model_settings.min_labels):
        with transaction.atomic():
            job_succeed(
                job=job,
                result={"cold_start": True, "train_size": len(train_labels)},
                message=f"Cold start: {len(train_labels)} training labels (need "
                f"{model_settings.min_labels} and at least 2 of every class); the queue is "
                "ranked by representative sampling",
            )
            if not ModelVersion.objects.filter(project=project, status="active").exists():
                ranking_schedule(project=project, reason="cold start")
        return None

    job_progress(job=job, done=2, message=f"Training on {len(train_labels)} labels")
    train_ids = [i for i, _ in split["train"]]
    model = classifier_fit(
        X=vectors.vectors(train_ids),
        y=train_labels,
        name=model_settings.classifier,
        params=model_settings.classifier_params,
        seed=model_settings.seed,
        sample_weight=[split["weight"][i] for i in train_ids],
    )
    evaluation = _evaluate_candidate(
        model=model, split=split, classes=classes, vectors=vectors, model_settings=model_settings
    )
    metrics = evaluation.metrics
    holdout = split["holdout"]
    job_progress(job=job, done=3, message="Comparing with the active model on the same items")
    number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
    artifact = _artifact_path(project.pk, number)
    path = Path(settings.MEDIA_ROOT) / artifact
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(
        {
            "model": model,
            "classes": classes,
            "embedding_model": model_name,
            "train_item_ids": train_ids,
        },
        path,
    )

    active = ModelVersion.objects.filter(project=project, status="active").first()
    comparison = (
        _compare_with_active(
            active=active,
            evaluation=evaluation,
            classes=classes,
            vectors=vectors,
            model_name=model_name,
            seed=model_settings.seed,
        )
        if active
        else None
    )
    decision = promotion_decision(
        candidate=metrics,
        comparison=comparison,
        tolerance=model_settings.promote_tolerance,
        active_exists=active is not None,
        candidate_number=number,
    )
    if comparison is not None:
        metrics["comparison"] = comparison
        metrics["active_on_same_holdout"] = {
            "version": active.number,
            "macro_f1": comparison["old"],
        }
    with transaction.atomic():
        version = ModelVersion.objects.create(
            project=project,
            number=number,
            status=ModelVersion.Status.CANDIDATE,
            classifier=model_settings.classifier,
            params=_params_json(model.get_params(deep=False)),
            seed=model_settings.seed,
            embedding_model=model_name,
            classes=classes,
            train_size=len(train_labels),
            holdout_size=len(holdout),
            holdout_source=split["source"],
            label_count=split["label_count"],
            metrics=metrics,
            artifact=artifact,
            reason=decision.reason,
            job=job,
        )
        if decision.promote:
            from models_app.services.versions import model_version_promote

            model_version_promote(version=version, reason=decision.reason)
        else:
            version.status = ModelVersion.Status.REJECTED
            version.save(update_fields=["status"])
        job_succeed(
            job=job,
            result={
                "version": number,
                "promoted": decision.promote,
                "reason": decision.reason,
                "train_size": len(train_labels),
                "holdout_size": len(holdout),
                "evaluation": metrics.get("evaluation"),
                "macro_f1": metrics.get("macro_f1"),
            },
            message=f"v{number} {'promoted' if decision.promote else 'rejected'}: "
            f"{decision.reason}",
        )
    return version


def _params_json(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | type(None)) else repr(v)
        for k, v in params.items()
    }
