"""Reads of the quality app: the agreement report, the adjudication queue, what an annotator
may see about their overruled answers, and the training-label contract."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Count, Max, QuerySet

from labeling.models import Annotation, Item, Project
from quality import agreement
from quality.models import Adjudication, AnnotatorReliability
from quality.services.aggregation import project_annotations_load
from quality.services.settings import quality_settings_get

# --- training -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingLabels:
    """Parallel lists: item ids, their final label lists, and a weight per item."""

    item_ids: list[int]
    labels: list[list[str]]
    weights: list[float]

    def __len__(self) -> int:
        return len(self.item_ids)


def training_labels(
    *,
    project: Project,
    weighted: bool = False,
    include_machine: bool = True,
    include_gold: bool = True,
) -> TrainingLabels:
    """The labels a model should train on: every item with a settled final label.

    - Items awaiting adjudication (or annotations) have ``final_labels = null`` and are left
      out, as are items whose final label is an empty list.
    - ``weighted``: weight = ``final_confidence`` (1.0 when unknown); otherwise 1.0. Adjudicated
      and gold items have confidence 1.0.
    - ``include_machine=False`` leaves out labels no human produced (lineage ``machine: true``).
    - ``include_gold=False`` leaves out gold items (e.g. to keep them as an evaluation set).
    Ordered by item id, so the result is reproducible.
    """
    items = Item.objects.filter(project=project, final_labels__isnull=False)
    if not include_gold:
        items = items.filter(is_gold=False)
    item_ids, labels, weights = [], [], []
    for pk, final, confidence, lineage in (
        items.order_by("pk")
        .values_list("pk", "final_labels", "final_confidence", "final_lineage")
        .iterator(chunk_size=5000)
    ):
        if not final:
            continue
        if not include_machine and (lineage or {}).get("machine"):
            continue
        item_ids.append(pk)
        labels.append(list(final))
        weights.append(float(confidence) if weighted and confidence is not None else 1.0)
    return TrainingLabels(item_ids=item_ids, labels=labels, weights=weights)


# --- adjudication -------------------------------------------------------------------------------


def adjudication_queue(*, project: Project) -> QuerySet[Item]:
    """Items waiting for a reviewer: ties and low-confidence results, lowest confidence
    first."""
    return Item.objects.filter(
        project=project, final_labels__isnull=True, final_lineage__needs_adjudication=True
    ).order_by("final_confidence", "id")


def adjudication_history(*, project: Project) -> QuerySet[Adjudication]:
    return Adjudication.objects.filter(project=project).select_related("reviewer", "item")


def adjudication_item_detail(*, project: Project, item: Item) -> dict:
    """Everything a reviewer needs: each annotation with its annotator's reliability, what
    aggregation proposed, and the decisions taken on the item so far."""
    reliability = {
        row.annotator_id: row for row in AnnotatorReliability.objects.filter(project=project)
    }
    annotations = []
    for annotation in (
        Annotation.objects.filter(item=item)
        .select_related("annotator")
        .order_by("created_at", "id")
    ):
        rel = reliability.get(annotation.annotator_id)
        annotations.append(
            {
                "id": annotation.pk,
                "annotator": annotation.annotator.get_username(),
                "annotator_id": annotation.annotator_id,
                "labels": annotation.labels,
                "created_at": annotation.created_at,
                "reliability": None if rel is None else rel.reliability,
                "reliability_method": None if rel is None else rel.method,
                "reliability_n": None if rel is None else rel.n_annotations,
            }
        )
    lineage = item.final_lineage or {}
    return {
        "item": item,
        "annotations": annotations,
        "proposed": lineage.get("proposed", item.final_labels),
        "confidence": item.final_confidence,
        "reason": lineage.get("reason"),
        "method": lineage.get("method"),
        "needs_adjudication": bool(lineage.get("needs_adjudication")),
        "decisions": list(
            Adjudication.objects.filter(item=item)
            .select_related("reviewer")
            .order_by("-created_at", "-id")
        ),
    }


# --- what annotators may see afterwards ---------------------------------------------------------


def overruled_for_user(*, project: Project, user: AbstractBaseUser) -> list[dict]:
    """The user's answers that differ from the item's settled final label, newest first.
    Empty unless the project opted in (``show_overruled``). Only items with a final label
    (never items still open to others' answers) and never gold items (that would reveal
    which items are honeypots)."""
    if not quality_settings_get(project=project).show_overruled:
        return []
    rows = (
        Annotation.objects.filter(
            project=project,
            annotator=user,
            item__final_labels__isnull=False,
            item__is_gold=False,
            item__status=Item.Status.DONE,
        )
        .select_related("item")
        .order_by("-created_at", "-id")
    )
    out = []
    for annotation in rows.iterator(chunk_size=2000):
        final = annotation.item.final_labels or []
        if sorted(final) == sorted(annotation.labels):
            continue
        method = (annotation.item.final_lineage or {}).get("method")
        out.append(
            {
                "annotation_id": annotation.pk,
                "item_id": annotation.item_id,
                "external_id": annotation.item.external_id,
                "text": annotation.item.text,
                "your_labels": annotation.labels,
                "final_labels": final,
                "method": method,
                "decided_by_reviewer": method == "adjudication",
                "annotated_at": annotation.created_at,
            }
        )
    return out


# --- the agreement report -----------------------------------------------------------------------


def _fig(figure: agreement.Figure) -> dict:
    return figure.as_dict()


def agreement_report(*, project: Project, use_cache: bool = True) -> dict:
    """Agreement per project, per label and per annotator, with the support of each figure.
    Cached for QUALITY_REPORT_CACHE_SECONDS while the annotations and the aggregation are
    unchanged (adjudication and gold changes show after that time). JSON-ready."""
    # The key changes with the data it summarises (annotations added, edited or retracted,
    # a new aggregation), so the cache only spares recomputing an unchanged report.
    state = Annotation.objects.filter(project=project).aggregate(
        n=Count("pk"), last=Max("updated_at")
    )
    aggregated = quality_settings_get(project=project).aggregated_at
    key = "flywheel:quality:report:{}:{}:{}:{}:{}".format(
        project.pk,
        project.created_at.timestamp(),
        state["n"],
        state["last"].timestamp() if state["last"] else 0,
        aggregated.timestamp() if aggregated else 0,
    )
    if use_cache and settings.QUALITY_REPORT_CACHE_SECONDS > 0:
        cached = cache.get(key)
        if cached is not None:
            return cached
    report = _agreement_report(project=project)
    if settings.QUALITY_REPORT_CACHE_SECONDS > 0:
        cache.set(key, report, settings.QUALITY_REPORT_CACHE_SECONDS)
    return report


def _agreement_report(*, project: Project) -> dict:
    data = project_annotations_load(project=project, with_times=True)
    labels = data.labels
    n_labels = len(labels)
    quality = quality_settings_get(project=project)
    report: dict = {
        "labels": labels,
        "multi_label": project.multi_label,
        "n_annotations": int(data.annotation_ids.size),
        "settings": {
            "aggregation_method": quality.aggregation_method,
            "adjudication_threshold": quality.adjudication_threshold,
            "adjudicate_ties": quality.adjudicate_ties,
            "show_overruled": quality.show_overruled,
            "aggregated_at": quality.aggregated_at.isoformat() if quality.aggregated_at else None,
        },
        "adjudication": {
            "pending": adjudication_queue(project=project).count(),
            "decided": Adjudication.objects.filter(
                project=project, superseded_at__isnull=True
            ).count(),
        },
    }
    if data.annotation_ids.size == 0 or n_labels == 0:
        report.update(
            n_items=0,
            n_annotators=0,
            overall=None,
            per_label=[],
            annotators=[],
            pairs=[],
            gold_over_time=[],
        )
        return report
    item_db, item_codes = np.unique(data.item_ids, return_inverse=True)
    worker_db, worker_codes = np.unique(data.annotator_ids, return_inverse=True)
    n_items, n_workers = item_db.size, worker_db.size
    # Nominal category of an annotation: its label (single-label) or its exact label set.
    if project.multi_label:
        weights = 1 << np.arange(n_labels, dtype=np.int64)
        set_codes = data.chosen.astype(np.int64) @ weights
        _, category = np.unique(set_codes, return_inverse=True)
        n_categories = int(category.max()) + 1
    else:
        category = data.chosen.argmax(axis=1)
        n_categories = n_labels
    counts = agreement.item_label_counts(
        item=item_codes, label=category, n_items=n_items, n_labels=n_categories
    )
    pairs = agreement.cohen_kappa_pairs(
        item=item_codes,
        rater=worker_codes,
        label=category,
        n_raters=n_workers,
        n_labels=n_categories,
    )
    fleiss, m = agreement.fleiss_kappa(counts)
    report["n_items"] = int(n_items)
    report["n_annotators"] = int(n_workers)
    report["overall"] = {
        "percent_agreement": _fig(agreement.percent_agreement(counts)),
        "cohen_kappa_mean": _fig(pairs.mean()),
        "fleiss_kappa": {**_fig(fleiss), "ratings_per_item": m},
        "krippendorff_alpha": _fig(agreement.krippendorff_alpha_nominal(counts)),
    }
    # Per label: binary (chosen / not chosen) per annotation, whatever the project type.
    label_counts = np.stack(
        [
            np.bincount(item_codes, weights=data.chosen[:, c], minlength=n_items)
            for c in range(n_labels)
        ],
        axis=1,
    )
    ratings = np.bincount(item_codes, minlength=n_items)
    per_label = agreement.per_label_agreement(label_counts, ratings=ratings)
    report["per_label"] = [
        {
            "label": labels[c],
            "alpha": _fig(row["alpha"]),
            "specific_agreement": _fig(row["specific_agreement"]),
            "n_items": row["n_items"],
            "n_annotations": int(data.chosen[:, c].sum()),
        }
        for c, row in enumerate(per_label)
    ]
    report["annotators"] = _annotator_rows(
        project=project,
        data=data,
        item_db=item_db,
        item_codes=item_codes,
        worker_db=worker_db,
        worker_codes=worker_codes,
        pairs=pairs,
        ratings=ratings,
    )
    User = get_user_model()
    names = dict(User.objects.filter(pk__in=worker_db.tolist()).values_list("pk", "username"))
    report["pairs"] = [
        {
            "a": names.get(int(worker_db[a])),
            "b": names.get(int(worker_db[b])),
            "kappa": None if np.isnan(k) else float(k),
            "n": int(n),
        }
        for a, b, k, n in sorted(
            zip(pairs.rater_a, pairs.rater_b, pairs.kappa, pairs.n_items, strict=True),
            key=lambda row: -row[3],
        )[:200]
    ]
    return report


def _label_sets_equal_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b).all(axis=1)


def _annotator_rows(*, project, data, item_db, item_codes, worker_db, worker_codes, pairs, ratings):
    labels = data.labels
    n_labels = len(labels)
    index = {v: i for i, v in enumerate(labels)}
    items = {
        pk: (final, is_gold, gold)
        for pk, final, is_gold, gold in Item.objects.filter(pk__in=item_db.tolist()).values_list(
            "pk", "final_labels", "is_gold", "gold_labels"
        )
    }

    def vector(values):
        if not isinstance(values, list) or not values or any(v not in index for v in values):
            return None
        out = np.zeros(n_labels, dtype=bool)
        out[[index[v] for v in values]] = True
        return out

    final = np.zeros((item_db.size, n_labels), dtype=bool)
    has_final = np.zeros(item_db.size, dtype=bool)
    gold = np.zeros((item_db.size, n_labels), dtype=bool)
    has_gold = np.zeros(item_db.size, dtype=bool)
    for n, pk in enumerate(item_db.tolist()):
        final_labels, is_gold, gold_labels = items.get(pk, (None, False, None))
        v = vector(final_labels)
        if v is not None:
            final[n], has_final[n] = v, True
        g = vector(gold_labels) if is_gold else None
        if g is not None:
            gold[n], has_gold[n] = g, True
    # Consensus only where others also answered: an item's single answer agrees with itself.
    with_consensus = has_final[item_codes] & (ratings[item_codes] >= 2) & ~has_gold[item_codes]
    agrees = _label_sets_equal_matrix(data.chosen, final[item_codes])
    on_gold = has_gold[item_codes]
    correct = _label_sets_equal_matrix(data.chosen, gold[item_codes])
    kappa_means, kappa_pairs = pairs.mean_for_rater(worker_db.size)
    reliability = {
        row.annotator_id: row for row in AnnotatorReliability.objects.filter(project=project)
    }
    User = get_user_model()
    names = dict(User.objects.filter(pk__in=worker_db.tolist()).values_list("pk", "username"))
    single = not project.multi_label
    observed = data.chosen.argmax(axis=1)
    rows = []
    for w, user_id in enumerate(worker_db.tolist()):
        mine = worker_codes == w
        cons = mine & with_consensus
        gold_mine = mine & on_gold
        row = {
            "annotator_id": user_id,
            "annotator": names.get(user_id),
            "n_annotations": int(mine.sum()),
            "consensus_agreement": {
                "value": float(agrees[cons].mean()) if cons.any() else None,
                "n": int(cons.sum()),
            },
            "gold_accuracy": {
                "value": float(correct[gold_mine].mean()) if gold_mine.any() else None,
                "n": int(gold_mine.sum()),
            },
            "cohen_kappa_mean": {
                "value": None if np.isnan(kappa_means[w]) else float(kappa_means[w]),
                "n": int(kappa_pairs[w]),
            },
            "reliability": None,
        }
        rel = reliability.get(user_id)
        if rel is not None:
            row["reliability"] = {
                "value": rel.reliability,
                "method": rel.method,
                "n": rel.n_annotations,
            }
        if single:
            reference = final[item_codes].argmax(axis=1)
            row["confusion_consensus"] = agreement.confusion_matrix(
                reference=reference[cons], observed=observed[cons], n_labels=n_labels
            ).tolist()
            gold_ref = gold[item_codes].argmax(axis=1)
            row["confusion_gold"] = agreement.confusion_matrix(
                reference=gold_ref[gold_mine], observed=observed[gold_mine], n_labels=n_labels
            ).tolist()
        rows.append(row)
    _attach_gold_over_time(
        rows=rows, data=data, worker_codes=worker_codes, on_gold=on_gold, correct=correct
    )
    return rows


def _attach_gold_over_time(*, rows, data, worker_codes, on_gold, correct) -> None:
    """Per annotator: accuracy on gold items per day (UTC) they answered any."""
    per = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for n in np.flatnonzero(on_gold).tolist():
        day = data.created_at[n].date().isoformat()
        cell = per[int(worker_codes[n])][day]
        cell[0] += int(correct[n])
        cell[1] += 1
    for w, row in enumerate(rows):
        days = per.get(w, {})
        row["gold_over_time"] = [
            {"date": day, "correct": c, "total": t, "accuracy": c / t}
            for day, (c, t) in sorted(days.items())
        ]
