"""Factories and helpers of the quality tests."""

from __future__ import annotations

from labeling.models import Membership, Project
from tests.factories import (
    ItemFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
    submit_served,
)


def project_with_members(*, k=3, labels=("pos", "neg", "neutral"), annotators=3, **kwargs):
    """A project with k annotations per item, `annotators` annotators, a reviewer and a manager."""
    project = ProjectFactory(annotations_per_item=k, labels=list(labels), **kwargs)
    people = [UserFactory(username=f"a{n}-{project.pk}") for n in range(annotators)]
    for user in people:
        MembershipFactory(project=project, user=user, role=Membership.Role.ANNOTATOR)
    reviewer = UserFactory(username=f"rev-{project.pk}")
    MembershipFactory(project=project, user=reviewer, role=Membership.Role.REVIEWER)
    manager = UserFactory(username=f"man-{project.pk}")
    MembershipFactory(project=project, user=manager, role=Membership.Role.MANAGER)
    return project, people, reviewer, manager


def answer(project: Project, item, user, *labels: str):
    return submit_served(project=project, user=user, item_id=item.pk, labels=list(labels))


__all__ = ["ItemFactory", "answer", "project_with_members"]
