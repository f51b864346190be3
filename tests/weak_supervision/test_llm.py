"""LLM pre-labels over real HTTP against the OpenAI-compatible loopback server: success,
malformed JSON, a label outside the set, 429, 500, a timeout; cache, budget, accuracy."""

import json
from decimal import Decimal

import pytest

from bench.llm_server import LLMServer
from labeling.errors import ApplicationError
from labeling.models import Job, Prediction
from tests.weak_supervision.conftest import make_items
from weak_supervision.llm import LLMClient, build_prompt, parse_answer
from weak_supervision.models import LLMPrompt, LLMResponse
from weak_supervision.selectors import llm_report
from weak_supervision.services.common import ws_settings_for
from weak_supervision.services.llm import llm_job_create, llm_run
from weak_supervision.services.settings import ws_settings_update

pytestmark = pytest.mark.usefixtures("loopback_only")

TEXTS = {
    "win a free cruise, call now": "spam",
    "see you at lunch": "ham",
    "cash prize waiting [429]": "spam",
    "server trouble [500]": "ham",
    "garbled reply [mal]": "ham",
    "odd reply [out]": "spam",
    "slow reply [hang]": "ham",
}
PLAN = {
    "[429]": ["429", "429", "ok"],
    "[500]": ["500"] * 10,
    "[mal]": ["malformed", "malformed"],
    "[out]": ["outside"],
    "[hang]": ["timeout", "ok"],
}


def _client_factory(config):
    return LLMClient(
        base_url=config.base_url,
        api_key=config.api_key,
        model=config.model,
        timeout=0.5,
        max_attempts=3,
        backoff_base=0.01,
    )


def _configure(project, server, settings, **extra):
    """Point the project at the loopback server, an endpoint the operator allows."""
    settings.LLM_ALLOWED_BASE_URLS = [*settings.LLM_ALLOWED_BASE_URLS, server.base_url]
    values = {
        "llm_enabled": True,
        "llm_base_url": server.base_url,
        "llm_model": "sim-1",
        "llm_api_key": "sk-test-secret",
        "llm_concurrency": 4,
        "llm_price_input_per_mtok": Decimal("1000"),
        "llm_price_output_per_mtok": Decimal("2000"),
    }
    ws_settings_update(project=project, **{**values, **extra})


def _run(project, **params):
    job = llm_job_create(project=project, **params)
    return llm_run(job_id=job.pk, client_factory=_client_factory)


def test_llm_is_off_until_configured(spam_project):
    with pytest.raises(ApplicationError, match="switched off"):
        llm_job_create(project=spam_project)
    ws = ws_settings_for(project=spam_project)
    ws.llm_enabled = True
    ws.save()
    with pytest.raises(ApplicationError, match="No LLM endpoint"):
        llm_job_create(project=spam_project)


@pytest.mark.django_db(transaction=True)
def test_every_outcome_over_real_http(spam_project, settings):
    items = make_items(spam_project, list(TEXTS))
    with LLMServer(
        truth=TEXTS, plan={k: list(v) for k, v in PLAN.items()}, hang_seconds=2.0
    ) as server:
        _configure(spam_project, server, settings)
        job = _run(spam_project)
        requests_first = server.stats["requests"]
    assert job.status == Job.Status.SUCCEEDED, job.error
    by_text = {
        p.item.text: p for p in Prediction.objects.filter(source_kind="llm").select_related("item")
    }
    # success: the true label, confidence from log-probabilities
    ok = by_text["win a free cruise, call now"]
    assert ok.labels == ["spam"]
    assert ok.source_id == "sim-1"
    assert ok.source_version == "p1"
    assert ok.details["confidence_kind"] == "logprobs"
    assert 0.8 <= ok.confidence <= 1
    # 429 twice then success: retried
    assert by_text["cash prize waiting [429]"].labels == ["spam"]
    # timeout then success: retried after the client gave up
    assert by_text["slow reply [hang]"].labels == ["ham"]
    # malformed twice: recorded, no label
    mal = by_text["garbled reply [mal]"]
    assert mal.labels == []
    assert mal.details["status"] == "malformed"
    # a label outside the set: recorded as invalid, never stored as a label
    out = by_text["odd reply [out]"]
    assert out.labels == []
    assert out.details["status"] == "invalid"
    assert "definitely-not-a-label" in LLMResponse.objects.get(status="invalid").raw
    # 500 on every attempt: no prediction, counted as an error, retried next run (not cached)
    assert "server trouble [500]" not in by_text
    assert job.result["errors"] == 1
    assert job.result["valid"] == 4
    assert job.result["invalid"] == 1
    assert job.result["malformed"] == 1
    assert job.result["cost_usd"] > 0
    assert LLMPrompt.objects.get(project=spam_project).version == 1

    # when the job runs again, cached answers cost nothing; only the failed item is asked again
    with LLMServer(truth=TEXTS, plan={"[500]": ["ok"]}) as server:
        _configure(spam_project, server, settings)
        job = _run(spam_project)
        assert server.stats["requests"] == 1
        assert server.requests[0]["text"] == "server trouble [500]"
    assert job.result["cached"] == len(TEXTS) - 1
    assert requests_first >= len(TEXTS)
    assert Prediction.objects.filter(source_kind="llm").count() == len(items)


@pytest.mark.django_db(transaction=True)
def test_budget_stops_the_job(spam_project, settings):
    make_items(spam_project, [f"message number {n}" for n in range(40)])
    with LLMServer() as server:
        # one request costs about 0.1-0.2 USD at these prices
        _configure(spam_project, server, settings, llm_budget_usd=Decimal("0.5"), llm_concurrency=1)
        job = _run(spam_project)
        asked = server.stats["requests"]
    assert job.status == Job.Status.CANCELLED
    assert "budget" in job.message
    assert job.result["stopped"] == "budget"
    assert 1 <= asked < 40
    spent = sum(r.cost_usd for r in LLMResponse.objects.all())
    assert spent >= Decimal("0.5")
    # a further run stops before asking anything
    with LLMServer() as server:
        _configure(spam_project, server, settings, llm_budget_usd=Decimal("0.5"))
        job = _run(spam_project)
        assert server.stats["requests"] == 0
    assert job.status == Job.Status.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_prompt_uses_guidelines_and_human_examples_and_accuracy_is_reported_per_class(
    spam_project, settings
):
    texts = (
        ["human spam one", "human ham one"]
        + [f"spam text {n}" for n in range(10)]
        + [f"ham text {n}" for n in range(10)]
    )
    truth = {t: ("spam" if "spam" in t else "ham") for t in texts}
    human = {n: truth[t] for n, t in enumerate(texts) if n < 2 or n in (5, 6, 15, 16)}
    make_items(spam_project, texts, human=human)
    with LLMServer(truth=truth, accuracy={"spam": 1.0, "ham": 0.0}, logprobs=False) as server:
        _configure(spam_project, server, settings, llm_few_shot=2)
        job = _run(spam_project, eval_sample=10)
        first = server.requests[0]
    assert job.status == Job.Status.SUCCEEDED
    prompt = LLMPrompt.objects.get()
    assert "Spam is unsolicited advertising." in prompt.system
    assert [e["text"] for e in prompt.examples] == ["human ham one", "human spam one"]
    assert '"spam", "ham"' in prompt.system
    # few-shot examples are not asked about; the evaluation sample is
    asked = {r["text"] for r in server.requests}
    assert "human spam one" not in asked
    assert "spam text 5" in asked
    assert first["model"] == "sim-1"
    report = llm_report(project=spam_project)
    accuracy = report["accuracy"]
    assert accuracy["classes"]["spam"]["recall"] == 1.0
    assert accuracy["classes"]["ham"]["recall"] == 0.0
    assert report["confidence_kinds"] == {"self_reported": len(texts) - 2}
    assert report["cost_usd"] > 0
    assert report["responses"] == len(texts) - 2


def test_parse_answer_validates_against_the_label_set():
    labels = ["spam", "ham"]
    assert parse_answer('{"label": "ham", "confidence": 0.7}', labels).confidence == 0.7
    assert parse_answer('{"label": "ham", "confidence": 7}', labels).confidence is None
    assert parse_answer('```json\n{"label": "spam"}\n```', labels).label == "spam"
    assert parse_answer('{"label": "eggs"}', labels).status == "invalid"
    assert parse_answer("[1, 2]", labels).status == "malformed"
    assert parse_answer(None, labels).status == "malformed"
    content = json.dumps({"label": "spam", "confidence": 0.2})
    tokens = [
        ('{"', 0.0),
        ("label", 0.0),
        ('": "', 0.0),
        ("sp", -0.1),
        ("am", -0.1),
        ('", "confidence": 0.2}', 0.0),
    ]
    answer = parse_answer(content, labels, tokens)
    assert answer.confidence_kind == "logprobs"
    assert answer.confidence == pytest.approx(0.8187, abs=1e-3)
    prompt = build_prompt(guidelines="g", labels=labels)
    assert prompt.fingerprint == build_prompt(guidelines="g", labels=labels).fingerprint
    assert prompt.fingerprint != build_prompt(guidelines="h", labels=labels).fingerprint


class RecordingServer(LLMServer):
    """The loopback server, recording each request's Authorization header; with ``fail``
    set, every request gets that status and a body that contains a secret."""

    SECRET_BODY = "internal-detail-do-not-show-7f3a /srv/app/secret.py"

    def __init__(self, *, fail: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.fail = fail
        self.authorization: list[str | None] = []

    def _handle(self, handler):
        with self._lock:
            self.authorization.append(handler.headers.get("Authorization"))
        if self.fail is None:
            super()._handle(handler)
            return
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self._send(handler, self.fail, {"error": {"message": self.SECRET_BODY}})


@pytest.mark.django_db(transaction=True)
def test_the_global_key_goes_only_to_the_global_endpoint(spam_project, settings):
    make_items(spam_project, ["win a free cruise, call now", "see you at lunch"])
    with RecordingServer(truth=TEXTS) as main, RecordingServer(truth=TEXTS) as second:
        settings.LLM_BASE_URL = main.base_url
        settings.LLM_API_KEY = "sk-operator-global"
        settings.LLM_MODEL = "sim-1"
        settings.LLM_ALLOWED_BASE_URLS = [second.base_url]
        ws_settings_update(project=spam_project, llm_enabled=True, llm_base_url=second.base_url)
        job = _run(spam_project)
        assert job.status == Job.Status.SUCCEEDED, job.error
        assert second.authorization, "the second endpoint was asked"
        assert not any("sk-operator-global" in (a or "") for a in second.authorization)
        # the project's own key goes to its endpoint ...
        LLMResponse.objects.all().delete()
        ws_settings_update(project=spam_project, llm_api_key="sk-project-own")
        _run(spam_project)
        assert second.authorization[-1] == "Bearer sk-project-own"
        # ... and back on the operator's endpoint the project key is gone: the global one
        LLMResponse.objects.all().delete()
        ws_settings_update(project=spam_project, llm_base_url="")
        _run(spam_project)
        assert set(main.authorization) == {"Bearer sk-operator-global"}
    assert not any("sk-project-own" in (a or "") for a in main.authorization)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [500, 400])
def test_a_remote_error_body_never_reaches_the_job(spam_project, settings, status):
    make_items(spam_project, ["see you at lunch"])
    with RecordingServer(fail=status) as server:
        _configure(spam_project, server, settings)
        job = _run(spam_project)
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["errors"] == 1
    reason = {500: "HTTP 500 Internal Server Error", 400: "HTTP 400 Bad Request"}[status]
    assert job.result["first_error"] == reason
    stored = repr((job.error, job.message, job.result)) + repr(
        list(Prediction.objects.values_list("details", flat=True))
        + list(LLMResponse.objects.values_list("error", "raw"))
    )
    assert "internal-detail" not in stored
    assert "/srv/app" not in stored


@pytest.mark.django_db(transaction=True)
def test_a_refused_key_fails_the_job_with_a_short_reason(spam_project, settings, caplog):
    from weak_supervision.tasks import llm_task

    make_items(spam_project, ["see you at lunch"])
    with RecordingServer(fail=401) as server:
        _configure(spam_project, server, settings)
        job = llm_job_create(project=spam_project)
        llm_task.apply(args=(job.pk,))
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "LLMFatal: The LLM endpoint refused the key (HTTP 401 Unauthorized)."
    assert "internal-detail" not in repr((job.error, job.message, job.result))
    # the full detail is in the worker's log
    assert "internal-detail" in caplog.text
    assert "Traceback" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_server_that_refuses_json_schema_gets_the_json_object_form(spam_project, settings):
    """llama-cpp-python's server: a 500 for OpenAI's json_schema form, the schema accepted as
    json_object + schema, log-probabilities only with top_logprobs."""
    texts = ["win a free cruise, call now", "see you at lunch", "cash prize for you"]
    make_items(spam_project, texts)
    truth = {texts[0]: "spam", texts[1]: "ham", texts[2]: "spam"}
    with LLMServer(truth=truth, formats=("json_object",), needs_top_logprobs=True) as server:
        _configure(spam_project, server, settings, llm_concurrency=1)
        job = _run(spam_project)
        refused = server.stats["refused json_schema"]
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["valid"] == 3, job.result
    predictions = Prediction.objects.filter(source_kind="llm").select_related("item")
    assert {p.item.text: p.labels for p in predictions} == {t: [truth[t]] for t in texts}
    assert {p.details["confidence_kind"] for p in predictions} == {"logprobs"}
    # the refused form was tried once; the rest of the job used the one that worked
    assert refused == 1


def test_the_structured_output_form_can_be_pinned(spam_project):
    with LLMServer(formats=("json_object",), refuse_status=422) as server:
        client = LLMClient(
            base_url=server.base_url,
            api_key="",
            model="m",
            max_attempts=1,
            response_format="json_schema",
        )
        result = client.label("k", [{"role": "user", "content": "Text:\nhi"}], ["spam", "ham"])
        client.close()
        with pytest.raises(ValueError, match="response_format"):
            LLMClient(base_url=server.base_url, api_key="", model="m", response_format="xml")
    assert result.answer is None
    assert result.error == "HTTP 422 Unprocessable Entity"
    assert server.stats["refused json_schema"] == 1


class RedirectingServer(RecordingServer):
    """An allowed endpoint that answers every request with a redirect to `target`."""

    def __init__(self, *, target: str, **kwargs):
        super().__init__(**kwargs)
        self.target = target

    def _handle(self, handler):
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        handler.send_response(307)
        handler.send_header("Location", self.target + "/chat/completions")
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@pytest.mark.django_db(transaction=True)
def test_a_redirect_from_the_allowed_endpoint_is_not_followed(spam_project, settings):
    make_items(spam_project, ["win a free cruise, call now"])
    with (
        RecordingServer(truth=TEXTS) as elsewhere,
        RedirectingServer(target=elsewhere.base_url) as allowed,
    ):
        _configure(spam_project, allowed, settings)
        job = llm_run(job_id=llm_job_create(project=spam_project).pk)
    assert elsewhere.authorization == []  # neither the prompt nor the key went there
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["errors"] == 1  # the item's answer: an error, no prediction
    assert not Prediction.objects.filter(source_kind="llm").exists()
