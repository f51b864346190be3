"""Pre-labels: labeling functions and their sparse votes, label-model runs, LLM prompts and
response cache, and the cascade's auto-accept decisions.

Machine output per item goes in `labeling.Prediction` (the label model's and the LLM's); this
app keeps what produced it. Business logic lives in `weak_supervision.services`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.models import Item, Job, Project


class WeakSupervisionSettings(models.Model):
    """Per-project settings of the pre-label pipeline (created lazily, see
    `services.settings.ws_settings_for`)."""

    class LabelModelMethod(models.TextChoices):
        MAJORITY = "majority_vote", "Majority vote"
        DAWID_SKENE = "dawid_skene", "Dawid-Skene (abstentions observed)"
        DAWID_SKENE_CLASSIC = "dawid_skene_classic", "Dawid-Skene (abstentions missing)"

    class CascadeSource(models.TextChoices):
        LABEL_MODEL = "label_model", "Label model"
        LLM = "llm", "LLM"
        BEST = "best", "Most confident of the two"

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="weak_supervision"
    )
    label_model_method = models.CharField(
        max_length=24, choices=LabelModelMethod.choices, default=LabelModelMethod.DAWID_SKENE
    )
    label_model_uses_llm = models.BooleanField(
        default=True, help_text="Count the LLM's current answers as one more source."
    )
    llm_enabled = models.BooleanField(
        default=False, help_text="LLM pre-labels for this project (also needs an endpoint)."
    )
    llm_base_url = models.CharField(
        max_length=500, blank=True, help_text="Empty: the LLM_BASE_URL setting."
    )
    llm_api_key_sealed = models.TextField(
        blank=True,
        editable=False,
        help_text="The project's own API key, encrypted and bound to the endpoint it was saved "
        "for (weak_supervision.crypto); set and cleared only through the settings service. "
        "Never shown back.",
    )
    llm_model = models.CharField(max_length=200, blank=True, help_text="Empty: LLM_MODEL.")
    llm_concurrency = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Requests in flight; empty: LLM_CONCURRENCY."
    )
    llm_budget_usd = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Stop LLM jobs once the project's total cost reaches this. Empty: no limit.",
    )
    llm_price_input_per_mtok = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True,
        help_text="USD per million prompt tokens; empty: LLM_PRICE_INPUT_PER_MTOK.",
    )  # fmt: skip
    llm_price_output_per_mtok = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True,
        help_text="USD per million completion tokens; empty: LLM_PRICE_OUTPUT_PER_MTOK.",
    )  # fmt: skip
    llm_few_shot = models.PositiveSmallIntegerField(
        default=6, help_text="Examples with final human labels put in the prompt."
    )
    cascade_enabled = models.BooleanField(
        default=False, help_text="Auto-accept confident pre-labels as final labels."
    )
    cascade_source = models.CharField(
        max_length=16, choices=CascadeSource.choices, default=CascadeSource.BEST
    )
    cascade_threshold = models.FloatField(
        default=0.95, help_text="Pre-labels with at least this confidence are auto-accepted."
    )
    cascade_verify_fraction = models.FloatField(
        default=0.05,
        help_text="Share of auto-accepted items (random) also sent to humans to measure "
        "the precision of auto-acceptance.",
    )
    # The gate in front of auto-acceptance (weak_supervision.cascade_gate).
    cascade_min_accuracy = models.FloatField(
        default=0.9,
        help_text="Refuse to auto-accept from a source whose accuracy on gold and human-labelled "
        "items (those it is confident about) is below this.",
    )
    cascade_min_checks = models.PositiveIntegerField(
        default=30,
        help_text="Gold or human-labelled items needed to measure that accuracy; with fewer, "
        "nothing is auto-accepted unless a manager runs the cascade 'without checks'.",
    )
    cascade_max_odds_ratio = models.FloatField(
        default=10.0,
        help_text="Refuse a source that predicts one class this many times above its prior odds "
        "(a collapsed model); 10 with a 50/50 prior refuses one class above 91%.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "pre-label settings"
        verbose_name_plural = "pre-label settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(cascade_threshold__gte=0) & Q(cascade_threshold__lte=1),
                name="ws_cascade_threshold_range",
            ),
            models.CheckConstraint(
                condition=Q(cascade_verify_fraction__gte=0) & Q(cascade_verify_fraction__lte=1),
                name="ws_verify_fraction_range",
            ),
            models.CheckConstraint(
                condition=Q(cascade_min_accuracy__gte=0) & Q(cascade_min_accuracy__lte=1),
                name="ws_cascade_min_accuracy_range",
            ),
            models.CheckConstraint(
                condition=Q(cascade_min_checks__gte=1), name="ws_cascade_min_checks_positive"
            ),
            models.CheckConstraint(
                condition=Q(cascade_max_odds_ratio__gte=1), name="ws_cascade_odds_ratio_min"
            ),
        ]

    def __str__(self) -> str:
        return f"pre-label settings of {self.project_id}"


class LabelingFunction(models.Model):
    class Kind(models.TextChoices):
        KEYWORD = "keyword", "Keywords"
        REGEX = "regex", "Regular expression"
        CLASSIFIER = "classifier", "Classifier above a threshold"
        PYTHON = "python", "Python (registered in code)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    config = models.JSONField(
        default=dict, help_text="Canonical specification (validated by the service)."
    )
    config_hash = models.CharField(max_length=16, editable=False)
    version = models.PositiveIntegerField(
        default=1, help_text="Goes up whenever the specification changes."
    )
    active = models.BooleanField(default=True)
    # What the last apply job ran: the effective version (incl. model / code version) and when.
    applied_version = models.CharField(max_length=100, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_stats = models.JSONField(default=dict, blank=True)
    # A function stopped for timeouts is not run again by an apply of the stale functions until
    # its effective version differs from this one (an edit, new code, another model).
    stopped_version = models.CharField(
        max_length=100,
        blank=True,
        help_text="Effective version stopped for timeouts; skipped by apply until it changes.",
    )
    stopped_reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="lf_unique_name"),
            models.CheckConstraint(
                condition=Q(kind__in=["keyword", "regex", "classifier", "python"]),
                name="lf_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class LFVote(models.Model):
    """One non-abstaining vote: the vote matrix stored sparsely (abstentions are absent)."""

    lf = models.ForeignKey(LabelingFunction, on_delete=models.CASCADE, related_name="votes")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=100)
    lf_version = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lf", "item"], name="lfvote_unique"),
        ]
        indexes = [models.Index(fields=["project", "item"], name="lfvote_project_item_idx")]

    def __str__(self) -> str:
        return f"{self.lf_id}@{self.lf_version} on {self.item_id}: {self.label}"


class LabelModelRun(models.Model):
    """One fit of the label model: what went in and summary numbers (the per-item output is in
    `labeling.Prediction` with source_kind ``label_model`` and this run's version)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    method = models.CharField(max_length=24)
    version = models.CharField(max_length=64)
    sources = models.JSONField(default=list, help_text="[{kind, id, version}] in column order.")
    items = models.PositiveIntegerField(default=0)
    covered = models.PositiveIntegerField(default=0)
    params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.method}@{self.version}"


class LLMPrompt(models.Model):
    """A prompt template as sent (guidelines, label set, few-shot examples), content-addressed:
    the same content is the same version."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=64)
    system = models.TextField()
    examples = models.JSONField(default=list)
    labels = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="llmprompt_unique_ver"),
            models.UniqueConstraint(fields=["project", "fingerprint"], name="llmprompt_unique_fp"),
        ]

    def __str__(self) -> str:
        return f"prompt v{self.version} of {self.project_id}"


class LLMResponse(models.Model):
    """Cache of answers by (prompt fingerprint, model, content hash): nothing is paid twice.
    Only final outcomes are cached (a valid or invalid answer); transport errors are not."""

    class Status(models.TextChoices):
        VALID = "valid", "Valid"
        INVALID = "invalid", "Label outside the set"
        MALFORMED = "malformed", "Not the requested JSON"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", help_text="Who paid for it."
    )
    prompt_fingerprint = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    content_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices)
    label = models.CharField(max_length=100, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    confidence_kind = models.CharField(max_length=16, blank=True)
    raw = models.TextField(blank=True, help_text="The answer text (truncated).")
    error = models.CharField(max_length=500, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    attempts = models.PositiveSmallIntegerField(default=1)
    latency_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["prompt_fingerprint", "model", "content_hash"], name="llmresponse_key"
            ),
        ]
        indexes = [models.Index(fields=["project", "created_at"], name="llmresponse_project_idx")]

    def __str__(self) -> str:
        return f"{self.model} {self.status} {self.label}"


class CascadeDecision(models.Model):
    """An item whose pre-label was auto-accepted, and whether it was also sent for
    verification (the sample that measures the precision of auto-acceptance)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="+")
    labels = models.JSONField()
    confidence = models.FloatField()
    source_kind = models.CharField(max_length=16)
    source_id = models.CharField(max_length=255)
    source_version = models.CharField(max_length=64)
    threshold = models.FloatField()
    verify = models.BooleanField(default=False)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "verify"], name="cascade_project_verify_idx")]

    def __str__(self) -> str:
        return f"auto-accept {self.labels} on {self.item_id}"


class CascadeRun(models.Model):
    """One cascade job: what the gate decided about each source, and what the run changed
    (its `CascadeChange` rows), so that the run can be undone exactly."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        APPLIED = "applied", "Applied"
        REFUSED = "refused", "Refused (nothing written)"
        UNDONE = "undone", "Undone"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    accept_unverified = models.BooleanField(
        default=False,
        help_text="A manager asked to auto-accept although too few checks were available.",
    )
    gate = models.JSONField(default=dict, blank=True, help_text="Verdict per source.")
    message = models.CharField(max_length=500, blank=True)
    accepted = models.PositiveIntegerField(default=0)
    verification = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    undo_result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["running", "applied", "refused", "undone"]),
                name="cascade_run_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"cascade run {self.pk} ({self.status})"


class CascadeChange(models.Model):
    """One item a cascade run auto-accepted: its state before and after (final label,
    confidence, lineage, status, priority) and the decision row it replaced, if any."""

    class Outcome(models.TextChoices):
        PENDING = "", "Not undone"
        RESTORED = "restored", "Restored"
        KEPT = "kept", "Kept (changed after the run)"

    run = models.ForeignKey(CascadeRun, on_delete=models.CASCADE, related_name="changes")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    before = models.JSONField()
    after = models.JSONField()
    decision_before = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "item"], name="cascade_change_unique"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} item {self.item_id}"
