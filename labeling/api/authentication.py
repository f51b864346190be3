"""Token authentication for the API, with the lookup as one plain statement.

Tokens are `accounts.ApiToken` rows, which keep only the SHA-256 of the secret: the header's
secret is hashed and looked up by that hash. DRF's `TokenAuthentication` reads its token with
``select_related("user")``; building that query costs more than running it, and every request
of the annotation loop pays it. This reads the user through the token in one SQL statement and
applies DRF's checks (unknown token, inactive user) with DRF's errors, and the token's expiry.

On URLs of one project (a ``pid`` URL argument), the same statement also reads that project and
the user's membership role in it, which every such view needs next (`project_with_role` then
uses it instead of asking again): one round trip per request instead of two.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from accounts.models import ApiToken
from accounts.token_secrets import secret_hash
from labeling.models import Membership, Project
from labeling.selectors import PrefetchedProject, project_row_model
from labeling.services.db import RowModel

_users: RowModel | None = None


def _user_rows() -> RowModel:
    global _users
    User = get_user_model()
    if _users is None or _users.model is not User:
        _users = RowModel(User)
    return _users


class FastTokenAuthentication(TokenAuthentication):
    project_id: int | None = None
    # PostgreSQL, with a project: also read digests of the user's and the project's rows
    # (`digests`), which let the fast path check later that nothing it read has changed.
    with_digests: bool = False
    digests: tuple[str, str] | None = None

    def authenticate(self, request):
        # DRF makes one authenticator per request, so this attribute is the request's own.
        kwargs = (getattr(request, "parser_context", None) or {}).get("kwargs") or {}
        pid = kwargs.get("pid")
        self.project_id = int(pid) if pid is not None else None
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        return self.authenticate_key_hash(secret_hash(key))

    def authenticate_key_hash(self, key_hash: str):
        """The user (and token) whose token's secret hashes to `key_hash`."""
        User = get_user_model()
        users = _user_rows()
        user_pk = User._meta.pk.column
        # After the user's columns: the token's id, and whether it has expired.
        token_columns = "t.id, (t.expires_at IS NOT NULL AND t.expires_at <= %s)"
        sql = (
            f"SELECT {users.columns('u')}, {token_columns} FROM {User._meta.db_table} u "
            f"JOIN {ApiToken._meta.db_table} t ON t.user_id = u.{user_pk} "
            "WHERE t.key_hash = %s"
        )
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        params = [now, key_hash]
        projects = project_row_model()
        if self.project_id is not None:
            sql = (
                f"SELECT {users.columns('u')}, {token_columns}, {projects.columns('p')},"
                f" (SELECT m.role FROM {Membership._meta.db_table} m"
                f"   WHERE m.project_id = p.id AND m.user_id = u.{user_pk})"
                f"{self._digest_columns()}"
                f" FROM {User._meta.db_table} u"
                f" JOIN {ApiToken._meta.db_table} t ON t.user_id = u.{user_pk}"
                f" LEFT JOIN {Project._meta.db_table} p ON p.id = %s"
                " WHERE t.key_hash = %s"
            )
            params = [now, self.project_id, key_hash]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user, (token_id, expired, *rest) = users.instance(row)
        if expired:
            raise exceptions.AuthenticationFailed(_("Token has expired."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if self.project_id is not None:
            project = None
            if rest[0] is not None:  # the project's id column: the project exists
                project, (role, *digests) = projects.instance(rest)
                project.member_role = role
                if digests:
                    self.digests = (digests[0], digests[1])
            user.prefetched_project = PrefetchedProject(self.project_id, project)
        # DRF returns the token as request.auth: its id and user, nothing of the secret.
        return user, ApiToken(pk=token_id, user=user)

    def _digest_columns(self) -> str:
        """The digest columns (`DIGEST_SQL`) when asked for and the database can compute them."""
        if not self.with_digests or connection.vendor != "postgresql":
            return ""
        return ", " + DIGEST_SQL.format(user="u", project="p")


# What a cached credential is checked against: the whole user row and the whole project row
# (any change to either, a deactivation or a new k, say, gives a new digest).
DIGEST_SQL = "md5({user}::text), md5({project}::text)"
