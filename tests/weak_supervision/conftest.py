import hashlib

import pytest

from labeling.models import Item
from tests.factories import ProjectFactory


def make_items(project, texts, *, human=None):
    """Bulk-create items; ``human`` maps text index -> a human final label."""
    human = human or {}
    rows = []
    for n, text in enumerate(texts):
        label = human.get(n)
        rows.append(
            Item(
                project=project,
                external_id=f"x{n}",
                text=text,
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                final_labels=[label] if label else None,
                final_confidence=1.0 if label else None,
                final_lineage={"method": "single_annotator", "version": "1"} if label else None,
                status=Item.Status.DONE if label else Item.Status.OPEN,
                annotation_count=1 if label else 0,
            )
        )
    Item.objects.bulk_create(rows)
    return list(Item.objects.filter(project=project).order_by("id"))


@pytest.fixture
def spam_project(db):
    return ProjectFactory(labels=["spam", "ham"], guidelines="Spam is unsolicited advertising.")


@pytest.fixture
def loopback_only(monkeypatch):
    """Fail any connection to an address other than loopback (the tests' own promise)."""
    import socket

    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "::1", "localhost")
            and not (host.startswith("/"))
        ):
            raise AssertionError(f"test tried to connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
