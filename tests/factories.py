"""factory_boy factories shared by every test module."""

import hashlib
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling.models import (
    Annotation,
    AnnotationEvent,
    Assignment,
    Item,
    Job,
    Label,
    Membership,
    Prediction,
    Project,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("pw-secret-123")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Project {n}")
    guidelines = "Pick the **best** label."
    annotations_per_item = 1
    lease_seconds = 600

    @factory.post_generation
    def labels(self, create, extracted, **kwargs):
        if not create:
            return
        values = extracted if extracted is not None else ["pos", "neg", "neutral"]
        Label.objects.bulk_create(
            Label(project=self, value=v, shortcut=str(i + 1), order=i) for i, v in enumerate(values)
        )


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.ANNOTATOR


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"item-{n}")
    text = factory.Sequence(lambda n: f"Text of item number {n}.")
    content_hash = factory.LazyAttribute(lambda o: hashlib.sha256(o.text.encode()).hexdigest())
    priority = 0.0


class AnnotationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Annotation

    item = factory.SubFactory(ItemFactory)
    project = factory.LazyAttribute(lambda o: o.item.project)
    annotator = factory.SubFactory(UserFactory)
    labels = factory.LazyAttribute(lambda o: [o.item.project.labels.first().value])


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    item = factory.SubFactory(ItemFactory)
    project = factory.LazyAttribute(lambda o: o.item.project)
    source_kind = Prediction.SourceKind.MODEL
    source_id = factory.Sequence(lambda n: f"model-{n}")
    source_version = "1"
    labels = factory.LazyAttribute(lambda o: [o.item.project.labels.first().value])
    confidence = 0.8


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Assignment

    item = factory.SubFactory(ItemFactory)
    project = factory.LazyAttribute(lambda o: o.item.project)
    user = factory.SubFactory(UserFactory)
    status = Assignment.Status.LEASED
    leased_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(
        lambda o: o.leased_at + timedelta(seconds=o.item.project.lease_seconds)
    )


class AnnotationEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AnnotationEvent

    item = factory.SubFactory(ItemFactory)
    annotator = factory.SubFactory(UserFactory)
    annotation_id_ref = factory.Sequence(lambda n: n + 1)
    action = AnnotationEvent.Action.CREATE
    labels = factory.LazyAttribute(lambda o: [o.item.project.labels.first().value])


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    project = factory.SubFactory(ProjectFactory)
    kind = Job.Kind.IMPORT
    status = Job.Status.PENDING


def served(*, item_id: int, user) -> None:
    """Record that the item was handed to `user` (as `next/` does), holding no slot: a submit
    needs it (`annotation_submit` refuses an item never served). Tests that answer items
    directly, without leasing them, call this first."""
    project_id = Item.objects.filter(pk=item_id).values_list("project_id", flat=True).first()
    if project_id is None:
        return
    now = timezone.now()
    Assignment.objects.get_or_create(
        item_id=item_id,
        user=user,
        defaults={
            "project_id": project_id,
            "status": Assignment.Status.RELEASED,
            "leased_at": now,
            "expires_at": now,
        },
    )


def submit_served(*, project, user, item_id: int, labels, **kwargs):
    """`annotation_submit` for an item marked as served to the user first (see `served`)."""
    from labeling.services.annotations import annotation_submit

    served(item_id=item_id, user=user)
    return annotation_submit(project=project, user=user, item_id=item_id, labels=labels, **kwargs)


def api_token(user, **kwargs) -> str:
    """A new API token of `user`: its secret (only the hash is stored), for a Token header."""
    from accounts.services import api_token_create

    return api_token_create(user=user, **kwargs)[1]
