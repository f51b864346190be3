"""The labeling core's data model.

Invariants that matter for correctness are database constraints, not Python checks:
unique external ids per project, one annotation and one assignment per (item, user),
one membership per (project, user), k >= 1, lease length > 0, confidence within [0, 1].
Business logic lives in `labeling.services`, never in `save()` or signals.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Project(TimeStamped):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown, shown to annotators.")
    multi_label = models.BooleanField(
        default=False, help_text="Annotators may choose several labels per item."
    )
    annotations_per_item = models.PositiveSmallIntegerField(
        default=1, help_text="k: how many annotators should label each item."
    )
    lease_seconds = models.PositiveIntegerField(
        default=600, help_text="How long an item stays reserved for the annotator it was given to."
    )
    overlap_fraction = models.FloatField(
        default=1.0,
        help_text="Share of items (chosen at random, fixed per item) that get k annotators; "
        "the others get one. 1 = every item gets k.",
    )
    gold_rate = models.FloatField(
        default=0.0,
        help_text="Share of the items served to an annotator that are gold (honeypot) items "
        "they have not answered yet. 0 = never.",
    )

    class QueueOrder(models.TextChoices):
        RANDOM = "random", "Random (seeded)"
        FILE = "file", "File order"

    queue_order = models.CharField(
        max_length=8,
        choices=QueueOrder.choices,
        default=QueueOrder.RANDOM,
        db_default=QueueOrder.RANDOM,
        help_text="Order of new items before any ranking: a seeded random order (recorded on "
        "the import job), or the order of the file. With file order the queue stays in file "
        "order until the first model is promoted (no cold-start ranking).",
    )
    show_external_id = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Show each item's external id to annotators on the labeling page. Off by "
        "default: ids often carry the answer (a folder name, a class prefix).",
    )
    label_set_version = models.PositiveIntegerField(
        default=1,
        db_default=1,
        help_text="Bumped whenever a label's value or description changes: the lineage of "
        "zero-shot suggestions, which are computed from them.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(annotations_per_item__gte=1), name="project_k_at_least_one"
            ),
            models.CheckConstraint(
                condition=Q(lease_seconds__gte=1), name="project_lease_positive"
            ),
            models.CheckConstraint(
                condition=Q(overlap_fraction__gte=0) & Q(overlap_fraction__lte=1),
                name="project_overlap_fraction_range",
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1),
                name="project_gold_rate_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Label(models.Model):
    """One entry of a project's ordered label set."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    value = models.CharField(max_length=100, help_text="The value stored and exported.")
    color = models.CharField(max_length=7, default="#4c78a8", help_text="#rrggbb")
    shortcut = models.CharField(max_length=1, blank=True, help_text="Keyboard key, e.g. 1 or a.")
    description = models.CharField(
        max_length=300,
        blank=True,
        default="",
        db_default="",
        help_text="One line saying what the label means; shown to annotators and used by the "
        "zero-shot suggestions.",
    )
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["project", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "value"], name="label_unique_value"),
            models.UniqueConstraint(
                fields=["project", "shortcut"],
                condition=~Q(shortcut=""),
                name="label_unique_shortcut",
            ),
            models.CheckConstraint(condition=~Q(value=""), name="label_value_not_empty"),
            models.CheckConstraint(
                condition=Q(color__regex=r"^#[0-9a-fA-F]{6}$"), name="label_color_hex"
            ),
        ]

    def __str__(self) -> str:
        return self.value


class Membership(TimeStamped):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        REVIEWER = "reviewer", "Reviewer"
        MANAGER = "manager", "Manager"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)

    class Meta:
        ordering = ["project", "user"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
            models.CheckConstraint(
                condition=Q(role__in=["annotator", "reviewer", "manager"]),
                name="membership_role_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Item(TimeStamped):
    class Status(models.TextChoices):
        OPEN = "open", "Needs annotations"
        DONE = "done", "Finished"

    # No single-column indexes on project or created_at: every composite index below starts with
    # the project, and nothing reads items by creation time. Each index costs every import row
    # and every re-rank (a priority update rewrites all of the row's index entries).
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    external_id = models.CharField(max_length=255)
    text = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, help_text="sha256 of the text (hex).")
    priority = models.FloatField(
        default=0.0, help_text="Queue rank: higher is served first. Written by ranking jobs."
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    # Counter kept by services with F() updates in the same transaction as the annotation.
    annotation_count = models.PositiveIntegerField(default=0)
    annotations_wanted = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="This item's k; empty = the project's k. Set by the overlap service.",
    )
    is_gold = models.BooleanField(
        default=False, db_default=False, help_text="A gold (honeypot) item: its answer is known."
    )
    gold_labels = models.JSONField(
        null=True, blank=True, help_text="The known answer of a gold item (list of labels)."
    )
    final_labels = models.JSONField(null=True, blank=True)
    final_confidence = models.FloatField(null=True, blank=True)
    final_lineage = models.JSONField(null=True, blank=True)
    import_job = models.ForeignKey(
        "labeling.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["project", "-priority", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="item_unique_external_id"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "done"]), name="item_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(annotations_wanted__isnull=True) | Q(annotations_wanted__gte=1),
                name="item_k_at_least_one",
            ),
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(gold_labels__isnull=False),
                name="item_gold_has_labels",
            ),
        ]
        # Nothing a submit writes (status, annotation_count, updated_at, final_*) is indexed, so
        # its update of the row is HOT: it stays on its page (fillfactor 90, migration 0009)
        # and adds no index entries. The queue's ranking index lives on QueueEntry.
        indexes = [
            models.Index(fields=["project", "content_hash"], name="item_content_hash_idx"),
            models.Index(fields=["project", "id"], condition=Q(is_gold=True), name="item_gold_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.external_id}"


class QueueEntry(models.Model):
    """The annotator queue: one narrow row per item that still needs annotations (status
    ``open``, not gold), ranked by the item's priority.

    Derived data, written only by database triggers on the item table (migration 0009): an item
    enters on insert or re-open, its priority follows the item's, and it leaves when it is
    finished, made gold or deleted. No code writes this table, so no code path can forget to.
    Keeping the queue out of the item table lets a submit update the (wide) item row without
    touching any index, and lets vacuum clean the queue without reading every item.

    On SQLite, a migration that makes Django rebuild the item table drops its triggers: such a
    migration must create them again (migration 0009's ``SQLITE_TRIGGERS``); the queue's
    invariant tests fail otherwise.
    """

    # No foreign-key constraints: the triggers are what keeps an entry tied to its item (they
    # delete it with the item), and a constraint's check would lock the item row (writing it)
    # for every entry inserted, a million times in a large import.
    item = models.OneToOneField(
        Item,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="queue_entry",
        db_constraint=False,
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    priority = models.FloatField()

    class Meta:
        verbose_name_plural = "queue entries"
        indexes = [
            # The queue: WHERE project=? ORDER BY priority DESC, item_id.
            models.Index(
                "project", models.F("priority").desc(), "item", name="queue_entry_rank_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} ({self.priority:g})"


class Assignment(models.Model):
    """Who is working on which item until when: the queue's lease row.

    One row per (item, user). `leased` with `expires_at` in the future holds a slot of the
    item's k; `submitted` and `skipped` record that this user is done with it.
    """

    class Status(models.TextChoices):
        LEASED = "leased", "Leased"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        RELEASED = "released", "Released"

    # No single-column indexes where a composite one leads with the column (assignment_unique,
    # assignment_user_idx): every lease and submit writes this row, and each index costs a write.
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_index=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "user"], name="assignment_unique"),
            models.CheckConstraint(
                condition=Q(status__in=["leased", "submitted", "skipped", "released"]),
                name="assignment_status_valid",
            ),
        ]
        indexes = [
            # Live leases only: the queue's "who else holds this item" probes read this small
            # index instead of every assignment ever made.
            models.Index(
                fields=["item", "expires_at"],
                condition=Q(status="leased"),
                name="assignment_live_idx",
            ),
            models.Index(fields=["user", "project", "status"], name="assignment_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.item_id} {self.status}"


class Annotation(TimeStamped):
    """A human's answer. Changes are recorded in AnnotationEvent (append-only)."""

    # Indexed by annotation_unique (item, ...) and annotation_user_idx (project, ...).
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="annotations", db_index=False
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    labels = models.JSONField(help_text="List of label values (one for single-label projects).")
    time_spent_ms = models.PositiveIntegerField(default=0)
    # Set when the annotator accepted a machine suggestion: lineage of what they agreed with.
    suggestion = models.ForeignKey(
        "labeling.Prediction", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="annotation_unique"),
        ]
        indexes = [
            models.Index(
                fields=["project", "annotator", "-created_at"], name="annotation_user_idx"
            ),
            models.Index(fields=["project", "updated_at"], name="annotation_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} on {self.item_id}: {self.labels}"


class AnnotationEvent(models.Model):
    """Append-only history of every annotation change (create, update, retract)."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        RETRACT = "retract", "Retracted"

    annotation_id_ref = models.BigIntegerField(help_text="Id of the annotation (kept if deleted).")
    # Indexed by annotation_event_item_idx (item, created_at).
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="annotation_events", db_index=False
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=8, choices=Action.choices)
    labels = models.JSONField(null=True)
    previous_labels = models.JSONField(null=True, blank=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["item", "created_at"], name="annotation_event_item_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.annotation_id_ref} by {self.annotator_id}"


class Prediction(models.Model):
    """A pre-label or prediction from a non-human source, with its lineage."""

    class SourceKind(models.TextChoices):
        IMPORT = "import", "Imported label"
        MODEL = "model", "Trained model"
        LABELING_FUNCTION = "lf", "Labeling function"
        LABEL_MODEL = "label_model", "Label model"
        LLM = "llm", "LLM"
        ZERO_SHOT = "zero_shot", "Zero-shot (label descriptions)"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    source_kind = models.CharField(max_length=16, choices=SourceKind.choices)
    source_id = models.CharField(max_length=255, help_text="Which model / function / prompt.")
    source_version = models.CharField(max_length=64, default="1")
    labels = models.JSONField(help_text="Predicted label values; [] when the source abstained.")
    confidence = models.FloatField(null=True, blank=True)
    scores = models.JSONField(null=True, blank=True, help_text="Per-label scores, if any.")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "source_kind", "source_id", "source_version"],
                name="prediction_unique_source",
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True)
                | (Q(confidence__gte=0) & Q(confidence__lte=1)),
                name="prediction_confidence_range",
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "source_kind", "source_id"], name="prediction_source_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source_kind}:{self.source_id}@{self.source_version} on {self.item_id}"


class Job(models.Model):
    """A background job's visible state: what the UI's progress bar and the admin read."""

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        EXPORT = "export", "Export"
        EMBED = "embed", "Embed"
        TRAIN = "train", "Train"
        SCORE = "score", "Score"
        RANK = "rank", "Re-rank"
        LABELING_FUNCTIONS = "lf", "Labeling functions"
        LABEL_MODEL = "label_model", "Label model"
        LLM = "llm", "LLM pre-labels"
        AGGREGATE = "aggregate", "Aggregate"
        SIMULATE = "simulate", "Simulate"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    params = models.JSONField(default=dict, blank=True)
    # Resumption point (e.g. rows already committed); written in the same transaction as the
    # batch it describes, so a restarted job continues exactly where the last commit left off.
    cursor = models.JSONField(default=dict, blank=True)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The Celery task id of the run that holds the job (empty: none, or a run outside Celery).
    # A second run starts only when the holder's heartbeat is stale (`job_start`).
    run_token = models.CharField(max_length=64, blank=True, default="")
    # Times the recovery sweep restarted the job after its worker went silent; capped by
    # JOB_MAX_RESTARTS so a job that kills its worker every time ends as failed, not in a loop.
    restarts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "succeeded", "failed", "cancelled"]),
                name="job_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["project", "kind", "status"], name="job_lookup_idx")]

    FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def percent(self) -> int | None:
        if not self.progress_total:
            return None
        return min(100, int(100 * self.progress_done / self.progress_total))

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES
