import pytest


@pytest.fixture
def queued(monkeypatch):
    """Tasks sent by the quality app, recorded instead of going to the broker."""
    from quality import tasks

    sent = []

    def record(task_name):
        def apply_async(args, **options):
            sent.append((task_name, args, options))

        return apply_async

    monkeypatch.setattr(tasks.aggregate_task, "apply_async", record("aggregate"))
    monkeypatch.setattr(tasks.crowd_import_task, "apply_async", record("crowd_import"))
    return sent
