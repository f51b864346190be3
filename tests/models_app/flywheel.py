"""Run the flywheel's jobs in-process: record the tasks instead of sending them to a broker,
then run the queued jobs in order as a worker would."""

import pytest

from active_learning.services.ranking import ranking_run
from labeling.models import Job
from models_app.services.embeddings import embeddings_run
from models_app.services.training import training_lock_release, training_request, training_run

sent_capture = []


@pytest.fixture
def no_broker(monkeypatch, django_capture_on_commit_callbacks):
    """Record tasks instead of sending them; the test runs the jobs itself."""
    sent = []
    for module, name in [
        ("models_app.tasks", "embed_task_enqueue"),
        ("models_app.tasks", "train_task_enqueue"),
        ("active_learning.tasks", "rank_task_enqueue"),
    ]:
        monkeypatch.setattr(f"{module}.{name}", lambda job_id, _n=name: sent.append((_n, job_id)))
    monkeypatch.setattr(
        "active_learning.tasks.mine_task_enqueue",
        lambda project_id, item_ids: sent.append(("mine", item_ids)),
    )
    sent_capture.append(django_capture_on_commit_callbacks)
    return sent


def run_pending(sent):
    """Run queued jobs in order, as a worker would, until none are left."""
    runners = {
        "embed_task_enqueue": embeddings_run,
        "train_task_enqueue": training_run,
        "rank_task_enqueue": ranking_run,
    }
    while sent:
        name, job_id = sent.pop(0)
        if name in runners:
            with sent_capture[-1](execute=True):
                runners[name](job_id=job_id)
                if name == "train_task_enqueue":
                    job = Job.objects.get(pk=job_id)
                    training_lock_release(project_id=job.project_id, job_id=job_id)


def train_once(project, no_broker, capture):
    with capture(execute=True):
        job = training_request(project=project, reason="test")
    run_pending(no_broker)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job
