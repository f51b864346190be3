"""LLM pre-labels without Django: the prompt, the structured-output request, validation of the
answer, confidence from log-probabilities, retries with backoff, and bounded concurrency.

The service (`weak_supervision.services.llm`) loads items, the cache and the project's
settings, calls `run_bounded` with `LLMClient.label`, and writes results in batches.

Any OpenAI-compatible endpoint works (OpenAI, vLLM, llama.cpp server, Ollama, LiteLLM ...):
the request is a plain chat completion with ``response_format`` = a JSON schema whose ``label``
is an enum of the label set, ``temperature`` 0 and, unless switched off, ``logprobs`` (with
``top_logprobs``: llama-cpp-python returns none without it). llama-cpp-python's server refuses
OpenAI's ``{"type": "json_schema"}`` form (a 500 naming the field) and takes the same schema as
``{"type": "json_object", "schema": ...}``; with ``response_format="auto"`` the client falls
back to that form when the endpoint refuses the first one (400, 422 or 500) before it has ever
accepted it, and keeps the form that worked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

PROMPT_TEMPLATE_VERSION = "1"
MAX_RAW_CHARS = 2000


def normalise_base_url(url: str) -> str:
    """``scheme://host:port/path`` (lower-case scheme and host, the port always written, no
    trailing slash): the form endpoints are compared in. ValueError if it is not a plain
    http(s) URL (credentials, a query or a fragment are refused too)."""
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError("Not a valid URL.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("The URL must start with http:// or https:// and name a host.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("The URL must not contain credentials, a query or a fragment.")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = port or (443 if scheme == "https" else 80)
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def allowed_endpoints(global_url: str, extra: Iterable[str]) -> set[str]:
    """The normalised endpoints a project may use: the global one (when set) and the
    operator's list. Unparseable entries are ignored (they can match nothing)."""
    out = set()
    for url in [global_url, *extra]:
        if url and url.strip():
            try:
                out.add(normalise_base_url(url))
            except ValueError:
                logger.warning("Ignoring an unparseable allowed LLM endpoint %r.", url)
    return out


def http_reason(status_code: int) -> str:
    """``HTTP 503 Service Unavailable``: a status line, never the response body."""
    try:
        return f"HTTP {status_code} {HTTPStatus(status_code).phrase}"
    except ValueError:
        return f"HTTP {status_code}"


@dataclass(frozen=True)
class Prompt:
    system: str
    examples: tuple[tuple[str, str], ...]
    labels: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(
            {
                "template": PROMPT_TEMPLATE_VERSION,
                "system": self.system,
                "examples": self.examples,
                "labels": self.labels,
            },
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


def build_prompt(
    *,
    guidelines: str,
    labels: Sequence[str],
    examples: Sequence[tuple[str, str]] = (),
    example_chars: int = 600,
) -> Prompt:
    """The system message states the task, the guidelines and the allowed labels; few-shot
    examples (text, label) become user/assistant turns before the item."""
    label_list = ", ".join(json.dumps(label, ensure_ascii=False) for label in labels)
    system = (
        "You label texts for a data set. Choose exactly one label from this list: "
        f"{label_list}.\n"
        'Answer with JSON only: {"label": <one of the labels>, "confidence": <your '
        "probability that the label is right, between 0 and 1>}.\n"
    )
    if guidelines.strip():
        system += f"\nAnnotation guidelines:\n{guidelines.strip()}\n"
    clipped = tuple((_clip(text, example_chars), label) for text, label in examples)
    return Prompt(system=system, examples=clipped, labels=tuple(labels))


def build_messages(prompt: Prompt, text: str, *, text_chars: int = 8000) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": prompt.system}]
    for example_text, example_label in prompt.examples:
        messages.append({"role": "user", "content": f"Text:\n{example_text}"})
        messages.append(
            {
                "role": "assistant",
                "content": json.dumps({"label": example_label, "confidence": 1.0}),
            }
        )
    messages.append({"role": "user", "content": f"Text:\n{_clip(text, text_chars)}"})
    return messages


RESPONSE_FORMATS = ("auto", "json_schema", "json_object")
TOP_LOGPROBS = 1
FALLBACK_STATUSES = (400, 422, 500)


def response_format(labels: Sequence[str], kind: str = "json_schema") -> dict[str, Any]:
    """The structured-output request: OpenAI's ``json_schema`` form, or ``json_object`` with
    the schema beside it (llama-cpp-python's server, which compiles it into a grammar)."""
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": list(labels)},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["label", "confidence"],
        "additionalProperties": False,
    }
    if kind == "json_object":
        return {"type": "json_object", "schema": schema}
    return {
        "type": "json_schema",
        "json_schema": {"name": "label_answer", "strict": True, "schema": schema},
    }


@dataclass
class Answer:
    status: str  # valid | invalid | malformed
    label: str = ""
    confidence: float | None = None
    confidence_kind: str = ""  # logprobs | self_reported | ""
    error: str = ""
    raw: str = ""


_LABEL_VALUE = re.compile(r'"label"\s*:\s*"')


def logprob_confidence(
    content: str, tokens: Sequence[tuple[str, float]] | None, label: str
) -> float | None:
    """P(label) from the log-probabilities of the tokens that spell the label's value in the
    answer (the product of their probabilities). None when the tokens do not line up with the
    text or the value cannot be found."""
    if not tokens:
        return None
    if "".join(token for token, _ in tokens) != content:
        return None
    match = _LABEL_VALUE.search(content)
    if match is None:
        return None
    start = match.end()
    end = start + len(json.dumps(label, ensure_ascii=False)) - 2
    if content[start:end] != json.dumps(label, ensure_ascii=False)[1:-1]:
        return None
    total = 0.0
    position = 0
    used = False
    for token, logprob in tokens:
        token_end = position + len(token)
        if token_end > start and position < end:
            total += logprob
            used = True
        position = token_end
        if position >= end:
            break
    if not used:
        return None
    return min(1.0, max(0.0, math.exp(total)))


def parse_answer(
    content: str | None,
    labels: Sequence[str],
    tokens: Sequence[tuple[str, float]] | None = None,
) -> Answer:
    """Validate an answer against the schema. A label outside the set is ``invalid`` (kept as
    evidence, never as a label); anything that is not the requested JSON is ``malformed``."""
    raw = (content or "")[:MAX_RAW_CHARS]
    text = (content or "").strip()
    # Some servers wrap JSON in a Markdown fence despite response_format.
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return Answer(status="malformed", error="The answer is not JSON.", raw=raw)
    if not isinstance(data, dict) or not isinstance(data.get("label"), str):
        return Answer(status="malformed", error='The answer has no string "label".', raw=raw)
    label = data["label"].strip()
    if label not in labels:
        return Answer(
            status="invalid",
            error=f"The label {label[:100]!r} is not in the label set.",
            raw=raw,
        )
    confidence = logprob_confidence(content or "", tokens, data["label"])
    kind = "logprobs" if confidence is not None else ""
    if confidence is None:
        reported = data.get("confidence")
        is_number = isinstance(reported, int | float) and not isinstance(reported, bool)
        if is_number and 0.0 <= float(reported) <= 1.0:
            confidence, kind = float(reported), "self_reported"
    return Answer(status="valid", label=label, confidence=confidence, confidence_kind=kind, raw=raw)


def cost_usd(
    prompt_tokens: int, completion_tokens: int, price_input: float, price_output: float
) -> float:
    """Price per million tokens."""
    return (prompt_tokens * price_input + completion_tokens * price_output) / 1_000_000


class LLMFatal(RuntimeError):
    """An error that every further request would repeat (bad key, unknown model): stop."""


@dataclass
class CallResult:
    key: Any
    answer: Answer | None = None  # None: no answer (error after retries)
    error: str = ""
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0


@dataclass
class LLMClient:
    """One endpoint and model, with retries. Thread-safe (the openai client is)."""

    base_url: str
    api_key: str = field(repr=False)
    model: str
    timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    logprobs: bool = True
    concurrency: int = 8
    response_format: str = "auto"  # one of RESPONSE_FORMATS
    sleep: Callable[[float], None] = time.sleep
    _client: Any = field(default=None, repr=False)
    _format: str = field(default="json_schema", repr=False)
    _may_fall_back: bool = field(default=True, repr=False)

    def __post_init__(self) -> None:
        import openai  # here, not at the top: web processes need not load the SDK

        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}.")
        self._format = "json_object" if self.response_format == "json_object" else "json_schema"
        self._may_fall_back = self.response_format == "auto"

        # The SDK's own retries are off: ours are explicit, counted and bounded. Redirects are
        # not followed: the operator allowed this endpoint, not wherever it points next (an
        # internal address, with the prompt re-sent there).
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key or "not-needed",
            timeout=self.timeout,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(timeout=self.timeout, follow_redirects=False),
        )

    def close(self) -> None:
        self._client.close()

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.backoff_max, max(0.0, float(retry_after)))
            except ValueError:
                pass
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)

    def _create(self, messages: list[dict[str, str]], labels: Sequence[str], kind: str) -> Any:
        return self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            temperature=0,
            max_tokens=200,
            response_format=response_format(labels, kind),
            **({"logprobs": True, "top_logprobs": TOP_LOGPROBS} if self.logprobs else {}),
        )

    def _complete(self, messages: list[dict[str, str]], labels: Sequence[str]) -> Any:
        """One request in the current structured-output form. In ``auto``, an endpoint that
        refuses the json_schema form (400, 422, or llama-cpp-python's 500) is asked once more in
        the json_object form; if that answers, the client keeps it. Once json_schema has worked,
        nothing falls back (a later error is the endpoint's, retried as usual)."""
        import openai

        kind = self._format
        try:
            response = self._create(messages, labels, kind)
        except openai.APIStatusError as exc:
            if not (self._may_fall_back and kind == "json_schema"):
                raise
            if exc.status_code not in FALLBACK_STATUSES:
                raise
            logger.info("LLM endpoint refused json_schema (%s); trying json_object.", exc)
            response = self._create(messages, labels, "json_object")
            if self._may_fall_back:
                logger.info("LLM endpoint takes json_object with a schema: using it.")
            self._format, self._may_fall_back = "json_object", False
            return response
        if kind == "json_schema":
            self._may_fall_back = False
        return response

    def label(self, key: Any, messages: list[dict[str, str]], labels: Sequence[str]) -> CallResult:
        """Ask for one item's label; retries 429, 5xx, timeouts and connection errors with
        exponential backoff (honouring Retry-After), and one malformed answer once."""
        import openai

        result = CallResult(key=key)
        malformed_retries = 1
        while True:
            result.attempts += 1
            started = time.perf_counter()
            retry_after = None
            try:
                response = self._complete(messages, labels)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                logger.warning("LLM endpoint refused the key: %s", exc)
                raise LLMFatal(
                    f"The LLM endpoint refused the key ({http_reason(exc.status_code)})."
                ) from exc
            except openai.NotFoundError as exc:
                logger.warning("LLM endpoint: unknown model or path: %s", exc)
                raise LLMFatal(
                    f"Unknown model or endpoint path ({http_reason(exc.status_code)})."
                ) from exc
            except openai.APITimeoutError as exc:
                logger.info("LLM request timed out: %r", exc)
                error = "Timeout"
            except openai.APIConnectionError as exc:
                logger.info("LLM connection error: %r", exc.__cause__ or exc)
                error = "Connection error"
            except openai.APIStatusError as exc:
                # The body goes to the worker log only: it is the remote server's text.
                logger.warning("LLM endpoint answered %s: %s", exc.status_code, exc)
                if exc.status_code != 429 and exc.status_code < 500:
                    result.error = http_reason(exc.status_code)
                    return result
                error = http_reason(exc.status_code)
                retry_after = exc.response.headers.get("retry-after")
            else:
                result.latency_ms += int((time.perf_counter() - started) * 1000)
                usage = getattr(response, "usage", None)
                if usage is not None:
                    result.prompt_tokens += int(usage.prompt_tokens or 0)
                    result.completion_tokens += int(usage.completion_tokens or 0)
                answer = self._answer(response, labels)
                if answer.status == "malformed" and malformed_retries > 0:
                    malformed_retries -= 1
                    continue
                result.answer = answer
                result.error = ""
                return result
            result.latency_ms += int((time.perf_counter() - started) * 1000)
            result.error = error[:500]
            if result.attempts >= self.max_attempts:
                return result
            self.sleep(self._backoff(result.attempts, retry_after))

    @staticmethod
    def _answer(response: Any, labels: Sequence[str]) -> Answer:
        if not getattr(response, "choices", None):
            return Answer(status="malformed", error="The response has no choices.")
        choice = response.choices[0]
        content = choice.message.content if choice.message else None
        tokens = None
        logprobs = getattr(choice, "logprobs", None)
        if logprobs is not None and getattr(logprobs, "content", None):
            tokens = [(t.token, float(t.logprob)) for t in logprobs.content]
        return parse_answer(content, labels, tokens)


def run_bounded(
    jobs: Iterable[Any],
    call: Callable[[Any], CallResult],
    *,
    concurrency: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[CallResult]:
    """Run ``call`` on every job with at most ``concurrency`` in flight; yield results as they
    complete (in this thread, so the caller can write to the database). ``should_stop`` is
    asked before each new request (the budget): running requests finish, no new one starts.
    An LLMFatal raised by a call stops everything and is re-raised."""
    iterator = iter(jobs)
    pending: set[Future] = set()
    stopped = False
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="llm") as pool:

        def fill() -> None:
            nonlocal stopped
            while not stopped and len(pending) < concurrency:
                if should_stop():
                    stopped = True
                    return
                try:
                    job = next(iterator)
                except StopIteration:
                    stopped = True
                    return
                pending.add(pool.submit(call, job))

        try:
            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.discard(future)
                    yield future.result()
                fill()
        finally:
            stopped = True
            for future in pending:
                future.cancel()
