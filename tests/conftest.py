import pytest

from labeling.models import Membership
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

# The browser tests' fixtures (`browser`, `page`): see tests/browser.py.
pytest_plugins = ["tests.browser"]


@pytest.fixture
def project(db):
    return ProjectFactory(labels=["pos", "neg", "neutral"])


@pytest.fixture
def annotator(project):
    user = UserFactory(username="ann")
    MembershipFactory(project=project, user=user, role=Membership.Role.ANNOTATOR)
    return user


@pytest.fixture
def manager(project):
    user = UserFactory(username="boss")
    MembershipFactory(project=project, user=user, role=Membership.Role.MANAGER)
    return user
