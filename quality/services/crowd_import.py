"""Bring your own crowd data: import (item external id, annotator id, label) rows as
annotations of existing items.

Annotators from the file become **inactive user accounts** named ``crowd.<their id>`` (ids
that are not valid user names, or too long, become ``crowd.<sha1 prefix>``) with no usable
password. Why users and not a separate table: an annotation must reference a user
(`Annotation.annotator`), and with real rows every feature -- agreement, reliability,
adjudication, exports, per-annotator pages -- works on imported data exactly as on data
labelled in Flywheel. Inactive accounts cannot log in and `membership_role` gives them no
access to anything. The same crowd id maps to the same account across imports and projects.

All or nothing: every row is checked first (unknown item, unknown label, several labels in a
single-label project, one annotator labelling one item twice); the first problem raises an
ApplicationError naming its line. Re-importing a file is idempotent (unchanged rows are
skipped, changed labels update the annotation with an `update` event).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Annotation, AnnotationEvent, Item, Job, Project
from labeling.services.hooks import after_annotations_changed
from labeling.services.jobs import job_create, job_fail, job_start, job_succeed
from quality.crowdfile import CrowdFileError, CrowdRows, crowd_rows_read

_USERNAME_OK = re.compile(r"^[\w.@+-]{1,140}$")
CROWD_PREFIX = "crowd."


def crowd_username(worker_id: str) -> str:
    if _USERNAME_OK.match(worker_id):
        return CROWD_PREFIX + worker_id
    return CROWD_PREFIX + hashlib.sha1(worker_id.encode()).hexdigest()[:16]


def _crowd_users(worker_ids: list[str]) -> dict[str, int]:
    """Get or create the inactive accounts; refuse to reuse an active account's name."""
    User = get_user_model()
    names = {w: crowd_username(w) for w in worker_ids}
    existing = dict(
        User.objects.filter(username__in=list(names.values())).values_list("username", "pk")
    )
    active = list(
        User.objects.filter(username__in=list(existing), is_active=True).values_list(
            "username", flat=True
        )[:5]
    )
    if active:
        raise ApplicationError(
            f"These crowd ids map to active user accounts, which an import never writes as: "
            f"{', '.join(active)}.",
            {"usernames": active},
        )
    new = [
        User(username=name, is_active=False, password="!crowd-import")  # unusable password
        for name in sorted(set(names.values()) - set(existing))
    ]
    User.objects.bulk_create(new, batch_size=1000)
    ids = dict(User.objects.filter(username__in=list(names.values())).values_list("username", "pk"))
    return {w: ids[name] for w, name in names.items()}


@transaction.atomic
def crowd_annotations_import(
    *, project: Project, rows: CrowdRows, label_delimiter: str = "|"
) -> dict:
    """Import the rows (see the module docstring). Returns counts."""
    from quality.services._labels import labels_clean, project_label_values

    if len(rows.items) > settings.QUALITY_IMPORT_MAX_ROWS:
        raise ApplicationError(f"More than {settings.QUALITY_IMPORT_MAX_ROWS} rows.")
    allowed = project_label_values(project=project)
    external_ids = sorted(set(rows.items))
    item_ids: dict[str, int] = {}
    for start in range(0, len(external_ids), 5000):
        chunk = external_ids[start : start + 5000]
        item_ids.update(
            Item.objects.filter(project=project, external_id__in=chunk).values_list(
                "external_id", "pk"
            )
        )
    cleaned: list[list[str]] = []
    for n, (item, label) in enumerate(zip(rows.items, rows.labels, strict=True)):
        line = rows.lines[n]
        if item not in item_ids:
            raise ApplicationError(
                f"Line {line}: item {item!r} is not in this project (import the items first).",
                {"line": line, "item": item},
            )
        parts = label.split(label_delimiter) if project.multi_label else [label]
        try:
            cleaned.append(
                labels_clean(project=project, labels=parts, allowed=allowed, where=f"Line {line}")
            )
        except ApplicationError as exc:
            raise ApplicationError(exc.message, {**exc.extra, "line": line}) from None
    users = _crowd_users(sorted(set(rows.workers)))
    pairs = {
        (item_ids[i], users[w]): n
        for n, (i, w) in enumerate(zip(rows.items, rows.workers, strict=True))
    }
    touched_items = sorted({item_ids[i] for i in rows.items})
    existing = {}
    for start in range(0, len(touched_items), 5000):
        chunk = touched_items[start : start + 5000]
        for pk, item_id, user_id, labels in Annotation.objects.filter(
            item_id__in=chunk, annotator_id__in=list(users.values())
        ).values_list("pk", "item_id", "annotator_id", "labels"):
            existing[(item_id, user_id)] = (pk, labels)
    now = timezone.now()
    created, updated, events = [], [], []
    for (item_id, user_id), n in pairs.items():
        labels = cleaned[n]
        if (item_id, user_id) in existing:
            pk, old = existing[(item_id, user_id)]
            if old != labels:
                updated.append(Annotation(pk=pk, labels=labels, updated_at=now))
                events.append(
                    AnnotationEvent(
                        annotation_id_ref=pk,
                        item_id=item_id,
                        annotator_id=user_id,
                        action=AnnotationEvent.Action.UPDATE,
                        labels=labels,
                        previous_labels=old,
                    )
                )
            continue
        created.append(
            Annotation(item_id=item_id, project=project, annotator_id=user_id, labels=labels)
        )
    size = settings.QUALITY_WRITE_BATCH_SIZE
    Annotation.objects.bulk_create(created, batch_size=size)
    if created and created[0].pk is None:  # backends that cannot return ids
        lookup = dict(
            (((a, u), pk))
            for pk, a, u in Annotation.objects.filter(
                item_id__in=[c.item_id for c in created], annotator_id__in=list(users.values())
            ).values_list("pk", "item_id", "annotator_id")
        )
        for annotation in created:
            annotation.pk = lookup[(annotation.item_id, annotation.annotator_id)]
    events.extend(
        AnnotationEvent(
            annotation_id_ref=a.pk,
            item_id=a.item_id,
            annotator_id=a.annotator_id,
            action=AnnotationEvent.Action.CREATE,
            labels=a.labels,
        )
        for a in created
    )
    Annotation.objects.bulk_update(updated, ["labels", "updated_at"], batch_size=size)
    AnnotationEvent.objects.bulk_create(events, batch_size=size)
    changed_items = sorted({a.item_id for a in created} | {a.item_id for a in events})
    for start in range(0, len(changed_items), 5000):
        chunk = changed_items[start : start + 5000]
        count = (
            Annotation.objects.filter(item_id=OuterRef("pk"))
            .order_by()
            .values("item_id")
            .annotate(n=Count("pk"))
            .values("n")
        )
        Item.objects.filter(pk__in=chunk).update(
            annotation_count=Coalesce(Subquery(count), 0), updated_at=now
        )
        Item.objects.filter(
            pk__in=chunk,
            annotation_count__gte=Coalesce(
                F("annotations_wanted"), F("project__annotations_per_item")
            ),
        ).update(status=Item.Status.DONE)
    if changed_items:
        after_annotations_changed(project=project, item_ids=changed_items)
    return {
        "rows": len(rows.items),
        "annotators": len(users),
        "created": len(created),
        "updated": len(updated),
        "unchanged": len(pairs) - len(created) - len(updated),
        "items": len(touched_items),
    }


# --- as a job (the API's upload) -----------------------------------------------------------------


def crowd_import_job_create(*, project: Project, user, uploaded_file, options: dict) -> Job:
    """Store the upload and queue the import job after commit."""
    from quality.tasks import crowd_import_task_enqueue

    with transaction.atomic():
        job = job_create(
            kind=Job.Kind.IMPORT, project=project, created_by=user, params={"crowd": True}
        )
        name = Path(uploaded_file.name or "crowd.csv").name
        path = default_storage.save(
            f"quality/crowd/{project.pk}/{job.pk}-{name}", ContentFile(uploaded_file.read())
        )
        job.params = {"crowd": True, "path": path, "file": name, **options}
        job.save(update_fields=["params"])
        transaction.on_commit(lambda: crowd_import_task_enqueue(job_id=job.pk))
    return job


def crowd_import_job_run(*, job_id: int) -> Job | None:
    job = job_start(job_id=job_id)
    if job is None:
        return None
    params = job.params
    try:
        with default_storage.open(params["path"], "rb") as handle:
            text = handle.read().decode("utf-8-sig")
        import io

        rows = crowd_rows_read(
            io.StringIO(text, newline=""),
            item_column=params.get("item_column") or "item",
            worker_column=params.get("worker_column") or "worker",
            label_column=params.get("label_column") or "label",
            fmt=params.get("format") or ("jsonl" if params["file"].endswith(".jsonl") else "csv"),
        )
        result = crowd_annotations_import(project=job.project, rows=rows)
    except (CrowdFileError, ApplicationError, UnicodeDecodeError) as exc:
        message = exc.message if isinstance(exc, ApplicationError) else str(exc)
        job_fail(job_id=job.pk, error=message)
        job.refresh_from_db()
        return job
    job_succeed(
        job=job,
        result=result,
        message=f"{result['created']} annotations imported, {result['updated']} updated",
    )
    return job
