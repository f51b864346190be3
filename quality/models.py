"""Quality: per-project aggregation settings, adjudication decisions, annotator reliability.

Business logic lives in `quality.services`; these are plain rows with database constraints.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models import Item, Project


class AggregationMethod(models.TextChoices):
    MAJORITY_VOTE = "majority_vote", "Majority vote (ties: first label in order, flagged)"
    DAWID_SKENE = "dawid_skene", "Dawid-Skene (confusion matrix per annotator, no gold)"
    ONE_COIN = "one_coin", "One-coin reliability (anchored on gold items when there are some)"


class QualitySettings(models.Model):
    """Per-project settings of agreement, aggregation and adjudication. Created lazily by
    `quality.services.settings.quality_settings_get`."""

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="quality_settings"
    )
    aggregation_method = models.CharField(
        max_length=32, choices=AggregationMethod.choices, default=AggregationMethod.MAJORITY_VOTE
    )
    adjudication_threshold = models.FloatField(
        default=0.0,
        help_text="Items whose aggregated confidence is below this go to reviewers "
        "(0 = never for low confidence).",
    )
    adjudicate_ties = models.BooleanField(
        default=True,
        help_text="Send ties to reviewers. Off: the tie rule decides (first label in order).",
    )
    show_overruled = models.BooleanField(
        default=False,
        help_text="Let annotators see, once an item is settled, where the final label differs "
        "from their answer.",
    )
    # Coalescing of re-aggregation requests: set when a job is queued, cleared when it starts.
    aggregation_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    aggregation_job = models.ForeignKey(
        "labeling.Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    aggregated_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "quality settings"
        verbose_name_plural = "quality settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(adjudication_threshold__gte=0) & Q(adjudication_threshold__lte=1),
                name="quality_threshold_range",
            ),
            models.CheckConstraint(
                condition=Q(aggregation_method__in=[m.value for m in AggregationMethod]),
                name="quality_method_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"quality settings of {self.project}"


class Adjudication(models.Model):
    """A reviewer's decision on an item's final label. The latest non-superseded decision of an
    item wins over aggregation; older ones stay as the record."""

    class Reason(models.TextChoices):
        TIE = "tie", "Tie"
        LOW_CONFIDENCE = "low_confidence", "Low confidence"
        REVIEW = "review", "Reviewed without being queued"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="adjudications")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="adjudications"
    )
    labels = models.JSONField(help_text="The final labels the reviewer chose.")
    note = models.TextField(blank=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    # What aggregation proposed and what it rested on, at the time of the decision.
    proposed_labels = models.JSONField(null=True, blank=True)
    proposed_confidence = models.FloatField(null=True, blank=True)
    annotation_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"],
                condition=Q(superseded_at__isnull=True),
                name="adjudication_one_active_per_item",
            ),
        ]
        indexes = [models.Index(fields=["project", "created_at"], name="adjudication_proj_idx")]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.labels} by {self.reviewer_id}"


class AnnotatorReliability(models.Model):
    """What the latest aggregation learned about an annotator (upserted by the aggregation
    job): their estimated accuracy and confusion matrix under the project's method."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    method = models.CharField(max_length=32)
    reliability = models.FloatField(
        null=True, help_text="Estimated probability that this annotator's answer is right."
    )
    n_annotations = models.PositiveIntegerField(default=0)
    confusion = models.JSONField(
        null=True, blank=True, help_text="Rows: true label; columns: the annotator's answer."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "annotator reliability"
        verbose_name_plural = "annotator reliabilities"
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="reliability_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} in {self.project_id}: {self.reliability}"
