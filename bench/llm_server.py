"""A small OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

It plays an LLM of known quality: given the true label of each text (``truth``: text -> label)
it answers correctly with the configured per-class probability (``accuracy``), else with another
label, with a confidence that is high when right and spread lower when wrong (or a fixed one).
It can also misbehave on request, per text: put a marker in the item's text and a list of
behaviours in ``plan[marker]``; each request for a text containing the marker consumes one:

    ok         a normal answer
    429        HTTP 429 with Retry-After: 0
    500        HTTP 500
    timeout    sleep ``hang_seconds`` before answering (longer than the client's timeout)
    malformed  content that is not JSON
    outside    a label that is not in the label set
    fence      valid JSON inside a Markdown code fence

``formats`` lists the structured-output forms it accepts (``json_schema``, ``json_object`` with
a ``schema``); any other is answered with ``refuse_status`` (500, as llama-cpp-python's server
answers ``json_schema``).
``needs_top_logprobs`` mimics that server too: log-probabilities only when ``top_logprobs`` is
given.

Usage in a test::

    with LLMServer(latency=0.0, truth={...}) as server:
        settings.LLM_BASE_URL = server.base_url

From a shell (a separate process, as the throughput benchmark does)::

    python -m bench.llm_server --port 8799 --latency 0.2

Only the standard library; it binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _unit(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")


class LLMServer:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        truth: dict[str, str] | None = None,
        accuracy: float | dict[str, float] = 1.0,
        logprobs: bool = True,
        fixed_confidence: float | None = None,
        plan: dict[str, list[str]] | None = None,
        hang_seconds: float = 5.0,
        seed: int = 0,
        port: int = 0,
        formats: tuple[str, ...] = ("json_schema", "json_object"),
        needs_top_logprobs: bool = False,
        refuse_status: int = 500,
    ) -> None:
        self.formats = formats
        self.refuse_status = refuse_status
        self.needs_top_logprobs = needs_top_logprobs
        self.latency = latency
        self.truth = truth or {}
        self.accuracy = accuracy
        self.logprobs = logprobs
        self.fixed_confidence = fixed_confidence
        self.plan = {marker: list(steps) for marker, steps in (plan or {}).items()}
        self.hang_seconds = hang_seconds
        self.seed = seed
        self.stats: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.request_queue_size = 128
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # --- the simulated model -----------------------------------------------------------------
    def _behaviour(self, text: str) -> str:
        with self._lock:
            for marker, steps in self.plan.items():
                if marker in text:
                    return steps.pop(0) if steps else "ok"
        return "ok"

    def _accuracy_for(self, label: str) -> float:
        if isinstance(self.accuracy, dict):
            return float(self.accuracy.get(label, 1.0))
        return float(self.accuracy)

    def _answer(self, text: str, labels: list[str]) -> tuple[str, float]:
        true = self.truth.get(text)
        key = f"{self.seed}:{text}"
        if true is None or true not in labels:
            true = labels[int(_unit(key + ":guess") * len(labels))] if labels else "?"
        right = _unit(key + ":right") < self._accuracy_for(true)
        if right or len(labels) < 2:
            label = true
        else:
            others = [x for x in labels if x != true]
            label = others[int(_unit(key + ":other") * len(others))]
        if self.fixed_confidence is not None:
            return label, self.fixed_confidence
        u = _unit(key + ":conf")
        confidence = 0.80 + 0.199 * u if right else 0.30 + 0.65 * u
        return label, confidence

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        try:
            body = json.loads(handler.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(handler, 400, {"error": {"message": "bad JSON"}})
            return
        messages = body.get("messages") or []
        last = messages[-1]["content"] if messages else ""
        text = last.split("Text:\n", 1)[1] if "Text:\n" in last else last
        requested = body.get("response_format") or {}
        kind = requested.get("type")
        if kind not in self.formats:
            with self._lock:
                self.stats[f"refused {kind}"] += 1
            message = f"validation error: response_format.type {kind!r}"
            self._send(handler, self.refuse_status, {"error": {"message": message}})
            return
        if kind == "json_object":
            schema = requested.get("schema") or {}
        else:
            schema = (requested.get("json_schema") or {}).get("schema") or {}
        labels = list(((schema.get("properties") or {}).get("label") or {}).get("enum") or [])
        behaviour = self._behaviour(text)
        with self._lock:
            self.stats["requests"] += 1
            self.stats[behaviour] += 1
            self.requests.append({"text": text, "behaviour": behaviour, "model": body.get("model")})
        if self.latency:
            time.sleep(self.latency)
        if behaviour == "429":
            self._send(handler, 429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
            return
        if behaviour == "500":
            self._send(handler, 500, {"error": {"message": "server error"}})
            return
        if behaviour == "timeout":
            time.sleep(self.hang_seconds)
        label, confidence = self._answer(text, labels)
        if behaviour == "malformed":
            content = "Sure! The label is probably " + label
        elif behaviour == "outside":
            content = json.dumps({"label": "definitely-not-a-label", "confidence": 0.99})
        elif behaviour == "fence":
            content = "```json\n" + json.dumps({"label": label, "confidence": 0.5}) + "\n```"
        else:
            content = json.dumps({"label": label, "confidence": round(confidence, 3)})
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
            "logprobs": None,
        }
        wants_logprobs = body.get("logprobs") and (
            body.get("top_logprobs") is not None or not self.needs_top_logprobs
        )
        if self.logprobs and wants_logprobs and behaviour == "ok":
            choice["logprobs"] = {"content": self._token_logprobs(content, label, confidence)}
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
        payload = {
            "id": f"chatcmpl-{self.stats['requests']}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "simulated",
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(content) // 4 + 1,
                "total_tokens": prompt_tokens + len(content) // 4 + 1,
            },
        }
        self._send(handler, 200, payload)

    @staticmethod
    def _token_logprobs(content: str, label: str, confidence: float) -> list[dict[str, Any]]:
        """Split the content into tokens; the label's tokens share log(confidence)."""
        tokens = _TOKEN.findall(content)
        start = content.find('"label": "') + len('"label": "')
        end = start + len(label)
        spans = []
        position = 0
        for token in tokens:
            spans.append((token, position, position + len(token)))
            position += len(token)
        in_label = [t for t in spans if t[2] > start and t[1] < end]
        share = math.log(max(confidence, 1e-9)) / max(1, len(in_label))
        out = []
        for token, a, b in spans:
            lp = share if (b > start and a < end) else 0.0
            out.append(
                {"token": token, "logprob": lp, "bytes": list(token.encode()), "top_logprobs": []}
            )
        return out

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--accuracy", type=float, default=0.9)
    args = parser.parse_args()
    server = LLMServer(latency=args.latency, accuracy=args.accuracy, port=args.port).start()
    print(f"listening on {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
