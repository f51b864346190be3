"""The annotator queue: hand out the highest-priority item that still needs annotations.

Correctness rules
- An item holds at most k slots: submitted annotations plus unexpired leases. k is the item's
  own ``annotations_wanted`` when set (overlap: a share of items gets k, the rest 1), else the
  project's ``annotations_per_item``.
- Gold (honeypot) items are not part of the ranked queue and have no k: with probability
  ``project.gold_rate`` a request is served a gold item the user has not answered yet.
- A user never gets an item they already annotated or skipped.
- An expired lease frees its slot; nothing has to clean it up.

Ranking
- The queue is the `QueueEntry` table: exactly the open, non-gold items, with their priority,
  kept by database triggers on the item table (migration ``labeling/0009``). Ranking is an
  index scan on it; the item row holds the counts and status the slot rules read.

Concurrency
- PostgreSQL: one call of the database function ``labeling_queue_next`` (migrations
  ``labeling/0006``, ``0008``, ``0009``), one round trip in its own transaction. It reads candidates
  with ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent annotators never wait on each other;
  after the row locks are held, the slot count is checked again by a *new* statement (READ COMMITTED
  gives it a fresh snapshot that sees every lease committed by whoever held a lock before us), and
  only then is the lease written. The item row lock serialises claims on one item; the re-check
  makes them correct.
- SQLite: transactions are IMMEDIATE (settings), so writers are serialised at BEGIN, and the
  same rules run through the ORM without row locks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.errors import ApplicationError
from labeling.models import Assignment, Item, Prediction, Project, QueueEntry
from labeling.selectors import SUGGESTION_ORDER_SQL
from labeling.services.db import (
    RowModel,
    commit_without_flush_wait,
    fetch_one_guarded,
    guard_check,
    guarded_project_sql,
    no_flush_wait_sql,
)

# How many candidates one read may return; a claim tries them in order. (PostgreSQL's
# `labeling_queue_next` locks one per read and reads up to 60 times, migration 0008: there a
# candidate is a row lock, which writes the row's page.)
_CANDIDATE_BATCH = 3
# How many reads before giving up (every candidate was filled by others meanwhile).
_MAX_ROUNDS = 20

Status = Assignment.Status
_items = RowModel(Item)


def _active_lease(*, project: Project, user: AbstractBaseUser, exclude: Sequence[int], now):
    return (
        Assignment.objects.filter(
            project=project, user=user, status=Status.LEASED, expires_at__gt=now
        )
        .exclude(item_id__in=exclude)
        .select_related("item")
        .order_by("leased_at", "id")
        .first()
    )


def _candidates_sql(*, k: int) -> str:
    """The queue read on SQLite (PostgreSQL's is in `labeling_queue_next`): an index scan on
    the queue table's (project, priority DESC, item) that stops at the first items with a free
    slot."""
    item = Item._meta.db_table
    queue = QueueEntry._meta.db_table
    asg = Assignment._meta.db_table
    wanted = f"COALESCE(i.annotations_wanted, {int(k)})"
    # An item that wants one annotation (the common case) is free when nobody else holds a live
    # lease on it; items that want more count the live leases.
    others_live = f"""FROM {asg} o WHERE o.item_id = i.id AND o.status = 'leased'
                 AND o.expires_at > %(now)s AND o.user_id <> %(user)s"""
    slot_clause = f"""(CASE WHEN {wanted} = 1 THEN NOT EXISTS (SELECT 1 {others_live})
          ELSE i.annotation_count + (SELECT COUNT(*) {others_live}) < {wanted} END)"""
    return f"""
        SELECT i.id, q.priority FROM {queue} q JOIN {item} i ON i.id = q.item_id
         WHERE q.project_id = %(project)s AND i.status = 'open'
           AND i.annotation_count < {wanted} AND NOT i.is_gold
           AND NOT EXISTS (
              SELECT 1 FROM {asg} mine WHERE mine.item_id = i.id AND mine.user_id = %(user)s
                 AND mine.status IN ('submitted', 'skipped'))
           AND {slot_clause}
           {{exclude}}
         ORDER BY q.priority DESC, q.item_id
         LIMIT {_CANDIDATE_BATCH}"""


def item_k(*, item: Item, project: Project) -> int:
    """How many annotations this item wants."""
    return item.annotations_wanted or project.annotations_per_item


def _item_with_free_slots(*, item_id: int, k: int, user_id: int, now) -> tuple[Item, int]:
    """The item and the slots left on it for `user_id`, in one statement: its k (the item's own,
    else `k`) minus submitted minus live leases of others; gold items always have one.
    Call while holding the item's row lock (PostgreSQL) or inside an IMMEDIATE transaction."""
    live_others = (
        Assignment.objects.filter(item_id=OuterRef("pk"), status=Status.LEASED, expires_at__gt=now)
        .exclude(user_id=user_id)
        .order_by()
        .values("item_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    item = (
        Item.objects.filter(pk=item_id)
        .annotate(others_live=Coalesce(Subquery(live_others), Value(0)))
        .get()
    )
    if item.is_gold:
        return item, 1
    if item.status != Item.Status.OPEN:
        return item, 0
    return item, (item.annotations_wanted or k) - item.annotation_count - item.others_live


def assignment_upsert(
    *, project: Project, user_id: int, item_id: int, status: str, leased_at, expires_at
) -> Assignment:
    """Set the (item, user) assignment in one statement (INSERT ... ON CONFLICT DO UPDATE)."""
    (assignment,) = Assignment.objects.bulk_create(
        [
            Assignment(
                project=project,
                item_id=item_id,
                user_id=user_id,
                status=status,
                leased_at=leased_at,
                expires_at=expires_at,
                updated_at=leased_at,
            )
        ],
        update_conflicts=True,
        unique_fields=["item", "user"],
        update_fields=["status", "leased_at", "expires_at", "updated_at"],
    )
    return assignment


def _lease(
    *, project: Project, user: AbstractBaseUser, item_id: int, now, item: Item | None = None
) -> Assignment:
    assignment = assignment_upsert(
        project=project,
        user_id=user.pk,
        item_id=item_id,
        status=Status.LEASED,
        leased_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )
    if assignment.pk is None:  # backends that cannot return ids from an upsert
        assignment = Assignment.objects.get(item_id=item_id, user=user)
    assignment.item = item if item is not None else Item.objects.get(pk=item_id)
    return assignment


def queue_next_item(
    *, project: Project, user: AbstractBaseUser, exclude_item_ids: Sequence[int] = ()
) -> Assignment | None:
    """Lease the next item for `user` and return the assignment, or None if the queue is empty.

    An unexpired lease the user already holds (not in `exclude_item_ids`) is returned first
    with a renewed expiry, so reloading the page does not grab a second item; the labeling page
    passes the item it is showing in `exclude_item_ids` to prefetch the one after it.

    The hot path of the annotation loop: on PostgreSQL one statement (the `labeling_queue_next`
    function, joined to the item and its suggestions); other backends run the same rules through
    the ORM in a few.
    """
    exclude = [int(pk) for pk in exclude_item_ids]
    k = project.annotations_per_item
    if project.gold_rate > 0 and random.random() < project.gold_rate:
        guard_check()  # the gold branch writes through several statements
        with transaction.atomic():
            commit_without_flush_wait()  # a lease is a reservation, not data
            now = timezone.now()
            held = _active_lease(project=project, user=user, exclude=exclude, now=now)
            if held is not None:
                return _renew(project=project, assignment=held, now=now)
            gold_id = _gold_candidate(project=project, user=user, exclude=exclude)
            if gold_id is not None:
                return _lease(project=project, user=user, item_id=gold_id, now=now)
    if connection.vendor == "postgresql":
        return _next_postgresql(project=project, user=user, exclude=exclude)
    for _ in range(_MAX_ROUNDS):
        with transaction.atomic():
            now = timezone.now()
            held_id, candidates = _held_or_candidates(
                project=project, user_id=user.pk, exclude=exclude, k=k, now=now
            )
            if held_id is not None:
                commit_without_flush_wait()  # a lease is a reservation, not data
                held = Assignment.objects.select_related("item").get(item_id=held_id, user=user)
                return _renew(project=project, assignment=held, now=now)
            if not candidates:
                return None
            assignment = _lease_first_free(
                project=project, user=user, candidates=candidates, k=k, now=now
            )
            if assignment is not None:
                return assignment
        # Every candidate filled up while we waited; read again.
    return None


def _held_or_candidates(
    *, project: Project, user_id: int, exclude: Sequence[int], k: int, now
) -> tuple[int | None, list[int]]:
    """(the item of the user's live lease, []) if they hold one, else (None, up to
    `_CANDIDATE_BATCH` candidate ids in queue order). One statement: the candidate scan only
    runs when no lease is held."""
    params = {"project": project.pk, "user": user_id, "now": now}
    exclude_items = exclude_leases = ""
    if exclude:
        placeholders = ", ".join(f"%(x{i})s" for i in range(len(exclude)))
        exclude_items = f"AND i.id NOT IN ({placeholders})"
        exclude_leases = f"AND a.item_id NOT IN ({placeholders})"
        params.update({f"x{i}": pk for i, pk in enumerate(exclude)})
    candidates = _candidates_sql(k=k).format(exclude=exclude_items)
    sql = f"""
        WITH held AS (
            SELECT a.item_id FROM {Assignment._meta.db_table} a
             WHERE a.project_id = %(project)s AND a.user_id = %(user)s AND a.status = 'leased'
               AND a.expires_at > %(now)s {exclude_leases}
             ORDER BY a.leased_at, a.id LIMIT 1),
        cand AS ({candidates})
        SELECT item_id, 1, 0 FROM held
        UNION ALL
        SELECT id, 0, priority FROM cand WHERE NOT EXISTS (SELECT 1 FROM held)
        ORDER BY 2 DESC, 3 DESC, 1"""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if rows and rows[0][1]:
        return rows[0][0], []
    return None, [row[0] for row in rows]


def _renew(*, project: Project, assignment: Assignment, now) -> Assignment:
    """Extend the user's live lease."""
    assignment.expires_at = now + timedelta(seconds=project.lease_seconds)
    assignment.save(update_fields=["expires_at", "updated_at"])
    return assignment


def _lease_first_free(
    *, project: Project, user: AbstractBaseUser, candidates: Sequence[int], k: int, now
) -> Assignment | None:
    """Lease the first candidate that still has a free slot, or None. Call inside an
    IMMEDIATE transaction (SQLite; PostgreSQL runs `labeling_queue_next` instead)."""
    commit_without_flush_wait()
    for item_id in candidates:
        item, free = _item_with_free_slots(item_id=item_id, k=k, user_id=user.pk, now=now)
        if free > 0:
            return _lease(project=project, user=user, item_id=item_id, now=now, item=item)
    return None


def _next_postgresql(
    *, project: Project, user: AbstractBaseUser, exclude: Sequence[int]
) -> Assignment | None:
    """`queue_next_item` on PostgreSQL: the database function renews the user's live lease or
    leases the first free candidate (see the module's docstring); the same statement returns
    the item and the suggestions shown beside it. The function writes in its own snapshots,
    which this statement's cannot see, so the lease's fields come back from the function."""
    now = timezone.now()
    # A lease is a reservation, not data: its commit need not wait for the disk.
    expression = no_flush_wait_sql()
    no_flush_wait = f", {expression}" if expression else ""
    sql = f"""
        SELECT {_items.columns("i")}, q.r_assignment_id, q.r_leased_at,
               (SELECT json_agg(json_build_object(
                         'id', p.id, 'source_kind', p.source_kind, 'source_id', p.source_id,
                         'source_version', p.source_version, 'labels', p.labels,
                         'confidence', p.confidence, 'details', p.details)
                       ORDER BY {SUGGESTION_ORDER_SQL})
                  FROM {Prediction._meta.db_table} p
                 WHERE p.item_id = i.id AND p.labels <> '[]'::jsonb)::text
               {no_flush_wait}
          FROM labeling_queue_next({guarded_project_sql()}, %(user)s::integer, %(k)s::integer,
                                   %(now)s, %(expires)s, %(exclude)s::bigint[]) q
          JOIN {Item._meta.db_table} i ON i.id = q.r_item_id"""
    expires = now + timedelta(seconds=project.lease_seconds)
    params = {
        "project": project.pk,
        "user": user.pk,
        "k": project.annotations_per_item,
        "now": now,
        "expires": expires,
        "exclude": list(exclude),
    }
    # Under a statement guard (the API's fast path), GuardFailed if it did not hold.
    row = fetch_one_guarded(sql, params)
    if row is None:
        return None
    item, (lease_id, leased_at, suggestions, *_) = _items.instance(row)
    # The suggestions shown beside the item (see `labeling.api.selectors.item_suggestions`),
    # with the details their source is described from (`annotate.suggestion_source`).
    item.prefetched_suggestions = [
        Prediction(item=item, project_id=item.project_id, **fields)
        for fields in json.loads(suggestions or "[]")
    ]
    assignment = Assignment(
        pk=lease_id,
        item=item,
        project=project,
        user=user,
        status=Status.LEASED,
        leased_at=leased_at,
        expires_at=expires,
        updated_at=now,
    )
    assignment._state.adding = False
    assignment._state.db = connection.alias
    return assignment


def _gold_candidate(*, project: Project, user: AbstractBaseUser, exclude: Sequence[int]):
    """A gold item this user has not answered or skipped, picked at random: gold items have no
    k (every annotator should meet them), so no row lock is needed."""
    answered = Assignment.objects.filter(
        project=project,
        user=user,
        item__is_gold=True,
        status__in=[Status.SUBMITTED, Status.SKIPPED],
    ).values("item_id")
    return (
        Item.objects.filter(project=project, is_gold=True)
        .exclude(pk__in=answered)
        .exclude(pk__in=exclude)
        .order_by("?")
        .values_list("pk", flat=True)
        .first()
    )


@transaction.atomic
def assignment_skip(*, project: Project, user: AbstractBaseUser, item_id: int) -> None:
    """The user passes on an item: it will not be offered to them again, and the slot frees."""
    if not Item.objects.filter(pk=item_id, project=project).exists():
        raise ApplicationError("No such item in this project.", {"item": item_id})
    now = timezone.now()
    assignment_upsert(
        project=project,
        user_id=user.pk,
        item_id=item_id,
        status=Status.SKIPPED,
        leased_at=now,
        expires_at=now,
    )


@transaction.atomic
def assignment_release(*, project: Project, user: AbstractBaseUser, item_id: int) -> int:
    """Give back a lease without skipping (e.g. the annotator closes the page)."""
    now = timezone.now()
    return Assignment.objects.filter(
        project=project, user=user, item_id=item_id, status=Status.LEASED
    ).update(status=Status.RELEASED, expires_at=now)


def leases_expire(*, grace_seconds: int = 60) -> int:
    """Mark leases that expired more than `grace_seconds` ago as released; returns how many.

    Changes no behaviour (an expired lease already frees its slot, and a late submit is judged
    by the item's free slots whatever the lease's status); it keeps the partial index of live
    leases, which every "next item" probes, as small as the number of annotators at work
    instead of growing with every abandoned page. Run periodically (Celery beat)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    with transaction.atomic():
        commit_without_flush_wait()
        return Assignment.objects.filter(status=Status.LEASED, expires_at__lt=cutoff).update(
            status=Status.RELEASED
        )
