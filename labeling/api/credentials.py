"""Credentials the API's fast path read once, re-checked inside each later request's statement.

A request of the annotation loop needs the user behind its token, the project, and the user's
role in it. Reading them costs a statement of its own on every request: a fifth of the web
process's CPU and two of a pair's five statements (docs/benchmarks.md). Each process keeps what
one successful read returned, with digests of the user's and the project's rows, and later
requests with the same token for the same project run their one statement (queue next or
submit) under a `StatementGuard`: the database checks, in that statement and before it writes,
that the token still exists, belongs to the user and has not expired, that the user's row and
the project's row are unchanged (an `is_active`, a `k`, a lease length) and that the role is
the same. Tokens are known by the hash of their secret (`accounts.ApiToken.key_hash`), here as
in the database: the cache holds no secret. If anything
changed, nothing is written and the request is answered the ordinary way, which reads afresh.

So a revoked or expired token, a deactivated user, a removed member or a changed project takes
effect on the very next request, as without the cache. PostgreSQL only (the digests are ``md5``
of the row's text); other databases always read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

from accounts.models import ApiToken
from labeling.api.authentication import DIGEST_SQL
from labeling.models import Membership, Project
from labeling.services.db import StatementGuard


@dataclass(frozen=True)
class Credentials:
    user: Any  # the user model instance, with `prefetched_project` for `project_id`
    guard: StatementGuard


def _guard_sql() -> str:
    User = get_user_model()
    user_pk = User._meta.pk.column
    return (
        f"EXISTS (SELECT 1 FROM {ApiToken._meta.db_table} gt"
        f" JOIN {User._meta.db_table} gu ON gu.{user_pk} = gt.user_id"
        f" JOIN {Membership._meta.db_table} gm ON gm.user_id = gu.{user_pk}"
        f" JOIN {Project._meta.db_table} gp ON gp.id = gm.project_id"
        " WHERE gt.key_hash = %(guard_key_hash)s AND gu.{pk} = %(guard_user)s"
        " AND (gt.expires_at IS NULL OR gt.expires_at > statement_timestamp())"
        " AND gm.project_id = %(guard_project)s AND gm.role = %(guard_role)s"
        " AND ({digests}) = (%(guard_user_digest)s, %(guard_project_digest)s))"
    ).format(pk=user_pk, digests=DIGEST_SQL.format(user="gu", project="gp"))


class CredentialCache:
    """Per process; bounded: `size` (token, project) pairs, the oldest stored going first. Read-
    only once stored: with more than one thread per process, requests share the cached user and
    project instances."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: dict[tuple[str, int], Credentials] = {}  # by (key hash, project)
        self._sql: str | None = None

    def get(self, key_hash: str, project_id: int) -> Credentials | None:
        return self._entries.get((key_hash, project_id))

    def put(self, key_hash: str, project_id: int, user, digests: tuple[str, str]) -> None:
        project = user.prefetched_project.project
        if project is None or project.member_role is None:
            return  # refused requests are Django's to answer, every time
        if self._sql is None:
            self._sql = _guard_sql()
        guard = StatementGuard(
            sql=self._sql,
            params={
                "guard_key_hash": key_hash,
                "guard_user": user.pk,
                "guard_project": project_id,
                "guard_role": project.member_role,
                "guard_user_digest": digests[0],
                "guard_project_digest": digests[1],
            },
        )
        if len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)), None)
        self._entries[(key_hash, project_id)] = Credentials(user=user, guard=guard)

    def drop(self, key_hash: str, project_id: int) -> None:
        self._entries.pop((key_hash, project_id), None)
