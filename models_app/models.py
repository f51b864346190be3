"""Embeddings, per-project training settings, held-out sets and model versions.

Invariants held by the database: one vector per (embedding model, text hash); one held-out row
per item; version numbers unique per project; at most one active version per project.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from labeling.models import Item, Job, Project
from models_app.ml.training import CLASSIFIERS, DEFAULT_CLASSIFIER


class Embedding(models.Model):
    """One text's vector under one embedding model, keyed by the text's sha256: a text that
    appears in several items or projects is embedded once."""

    model_name = models.CharField(max_length=300)
    content_hash = models.CharField(max_length=64)
    dim = models.PositiveSmallIntegerField()
    vector = models.BinaryField(help_text="float32 little-endian, L2-normalised.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_name", "content_hash"], name="embedding_unique_text"
            )
        ]

    def __str__(self) -> str:
        return f"{self.content_hash[:12]} @ {self.model_name}"


class ModelSettings(models.Model):
    """A project's training settings and the training lock (created lazily)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="model_settings")
    classifier = models.CharField(
        max_length=40,
        choices=[(name, name.replace("_", " ")) for name in CLASSIFIERS],
        default=DEFAULT_CLASSIFIER,
    )
    classifier_params = models.JSONField(
        default=dict, blank=True, help_text='scikit-learn parameters, e.g. {"C": 0.5}.'
    )
    seed = models.IntegerField(default=0, help_text="Seed of the held-out split and the fit.")
    retrain_every = models.PositiveIntegerField(
        default=20, help_text="Retrain after this many new final labels. 0 = only by hand."
    )
    min_labels = models.PositiveIntegerField(
        default=10,
        help_text="Below this many training labels (or with a class missing) the queue stays in "
        "cold start: representative sampling instead of a model.",
    )
    holdout_fraction = models.FloatField(
        default=0.2, help_text="Share of human labels kept out of training for evaluation."
    )
    promote_tolerance = models.FloatField(
        default=0.01,
        help_text="A new version is promoted unless its held-out macro-F1 is lower than the "
        "active one's by more than this.",
    )
    weight_by_confidence = models.BooleanField(
        default=False,
        help_text="Weight each training label by its final confidence (e.g. from Dawid-Skene).",
    )
    machine_label_weight = models.FloatField(
        default=1.0,
        help_text="Weight of auto-accepted pre-labels (final labels no human gave) in training; "
        "0 leaves them out. They are never in the held-out set.",
    )
    # State written by the training services, not by people.
    labels_since_training = models.IntegerField(default=0, editable=False)
    training_job = models.ForeignKey(
        Job,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        help_text="The training job holding the project's training lock.",
    )
    retrain_pending = models.BooleanField(default=False, editable=False)

    class Meta:
        verbose_name = "model settings"
        verbose_name_plural = "model settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(holdout_fraction__gte=0) & Q(holdout_fraction__lt=1),
                name="model_settings_holdout_range",
            ),
            models.CheckConstraint(
                condition=Q(promote_tolerance__gte=0), name="model_settings_tolerance_positive"
            ),
            models.CheckConstraint(
                condition=Q(machine_label_weight__gte=0), name="model_settings_machine_weight"
            ),
        ]

    def __str__(self) -> str:
        return f"Model settings of {self.project}"


class HeldOutItem(models.Model):
    """An item in the project's fixed evaluation set: it is never trained on."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="held_out")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "item"], name="held_out_project_idx")]

    def __str__(self) -> str:
        return f"held out: {self.item_id}"


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        REJECTED = "rejected", "Rejected"
        RETIRED = "retired", "Retired"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CANDIDATE)
    classifier = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    seed = models.IntegerField()
    embedding_model = models.CharField(max_length=300)
    classes = models.JSONField(default=list)
    train_size = models.PositiveIntegerField()
    holdout_size = models.PositiveIntegerField()
    holdout_source = models.CharField(max_length=10, help_text="split or gold")
    label_count = models.PositiveIntegerField(
        help_text="Final labels in the project when trained (x axis of the learning curve)."
    )
    metrics = models.JSONField(default=dict, blank=True)
    artifact = models.CharField(max_length=500, help_text="Path under MEDIA_ROOT.")
    reason = models.TextField(blank=True, help_text="Why it was promoted or rejected.")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="model_version_number"),
            models.UniqueConstraint(
                fields=["project"], condition=Q(status="active"), name="model_version_one_active"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["candidate", "active", "rejected", "retired"]),
                name="model_version_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} v{self.number} ({self.status})"

    @property
    def macro_f1(self) -> float | None:
        return self.metrics.get("macro_f1")

    @property
    def source_id(self) -> str:
        """`Prediction.source_id` of this project's classifier (version in source_version)."""
        return f"classifier:{self.project_id}"


class EmbeddingChunk(models.Model):
    """One slice of an embedding job: the item ids it covers, and who is working on it.

    Any worker on any host claims the next pending chunk of a job (or one whose worker went
    silent) with a compare-and-set on `status` and `token`, embeds its texts in small committed
    batches, and marks it done; the job finishes when every chunk is done. Items are planned in
    a seeded random order, so the vectors stored first are a uniform sample of the project (the
    cold-start ranking runs on them while the rest is embedded)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    item_ids = models.JSONField(help_text="The items this chunk embeds (their missing texts).")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    token = models.CharField(
        max_length=32, blank=True, help_text="Claim of the worker run holding the chunk."
    )
    attempts = models.PositiveIntegerField(default=0)
    embedded = models.PositiveIntegerField(default=0, help_text="Texts embedded by this chunk.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="embedding_chunk_number"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "done"]),
                name="embedding_chunk_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["job", "status", "number"], name="embedding_chunk_idx")]

    def __str__(self) -> str:
        return f"chunk {self.number} of job {self.job_id} ({self.status})"
