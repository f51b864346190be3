"""Per-project query-strategy settings and the items flagged by error-driven mining."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from active_learning.strategies import STRATEGIES
from labeling.models import Item, Project


class ActiveLearningSettings(models.Model):
    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="active_learning_settings"
    )
    strategy = models.CharField(
        max_length=20,
        choices=[(s, s.replace("_", " ")) for s in STRATEGIES],
        default="margin",
        help_text="How the queue is ordered once a model is active.",
    )
    diversity_batch = models.PositiveIntegerField(
        default=20,
        help_text="Size of the diverse batch put on top of the queue (annotators working at the "
        "same time get dissimilar items). 0 = plain ranking.",
    )
    cold_start_clusters = models.PositiveIntegerField(
        default=20, help_text="k of the k-means used for representative sampling at cold start."
    )
    mining_confidence = models.FloatField(
        default=0.8,
        help_text="A human label that contradicts a model prediction at least this confident "
        "flags the item.",
    )
    mining_neighbours = models.PositiveIntegerField(
        default=10, help_text="Unlabeled nearest neighbours boosted per flagged item."
    )
    mining_boost = models.FloatField(
        default=1.0, help_text="Priority added to those neighbours (times their similarity)."
    )

    class Meta:
        verbose_name = "active learning settings"
        verbose_name_plural = "active learning settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(strategy__in=list(STRATEGIES)), name="al_settings_strategy_valid"
            ),
            models.CheckConstraint(
                condition=Q(mining_confidence__gte=0) & Q(mining_confidence__lte=1),
                name="al_settings_mining_confidence_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Active learning settings of {self.project}"


class MinedError(models.Model):
    """A final human label that contradicted a confident model prediction."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="mined_error")
    model_version = models.PositiveIntegerField()
    predicted = models.JSONField()
    human = models.JSONField()
    confidence = models.FloatField()
    neighbours = models.JSONField(default=list, help_text="Item ids whose priority was boosted.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "-created_at"], name="mined_error_project_idx")]

    def __str__(self) -> str:
        return f"item {self.item_id}: model said {self.predicted}, human {self.human}"
