"""Embedding throughput through the product's pipeline against a bare
`SentenceTransformer.encode` over the same texts, in the same run.

Pipeline = the embedding job (`embeddings_run`): read the project's items without a vector,
de-duplicate by content hash, encode in chunks, store float32 rows, rebuild the vector snapshot.
Bare = `SentenceTransformer(path).encode(texts, batch_size=64, normalize_embeddings=True)`.
Both use an already-loaded model (load time excluded) and alternate, `--reps` times each.

    .venv/bin/python -m bench.embedding_throughput [--texts 600] [--reps 2]
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import django_setup, ensure_database, machine_line

BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flywheel_al_bench"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    os.environ.pop("EMBEDDING_MODEL", None)
    ensure_database(BENCH_URL)
    django_setup(BENCH_URL)

    import torch
    from django.conf import settings
    from sentence_transformers import SentenceTransformer

    from active_learning.simulation import bbc_news
    from labeling.models import Item, Job, Project
    from labeling.services.jobs import job_create
    from labeling.services.projects import project_create
    from models_app.ml.embedding import content_hash, embedder_load, embedding_key_parse
    from models_app.models import Embedding
    from models_app.services.config import embedding_model_name
    from models_app.services.embeddings import embeddings_run

    print(machine_line(), "· torch threads", torch.get_num_threads())
    print("load average before:", os.getloadavg())
    texts, _ = bbc_news()
    texts = texts[: args.texts]
    model_name = embedding_model_name()
    chars = sum(len(t) for t in texts)
    print(f"{len(texts)} BBC articles, {chars / len(texts):.0f} characters on average")

    Project.objects.filter(name="bench-embedding").delete()
    project = project_create(name="bench-embedding", labels=["a", "b"])
    Item.objects.bulk_create(
        Item(project=project, external_id=str(n), text=t, content_hash=content_hash(t))
        for n, t in enumerate(texts)
    )
    hashes = [content_hash(t) for t in texts]
    # the key names the backend too (EMBEDDING_BACKEND); bare is always torch on the same model
    bare_model = SentenceTransformer(embedding_key_parse(model_name)[0], device="cpu")
    embedder_load(model_name, settings.EMBEDDING_BATCH_SIZE)  # load once, like a warm worker

    bare_times, pipe_times = [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        bare_model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        bare_times.append(time.perf_counter() - t0)

        Embedding.objects.filter(model_name=model_name, content_hash__in=hashes).delete()
        job = job_create(kind=Job.Kind.EMBED, project=project, params={"then_rank": False})
        t0 = time.perf_counter()
        embeddings_run(job_id=job.pk)
        pipe_times.append(time.perf_counter() - t0)
        job.refresh_from_db()
        assert job.status == Job.Status.SUCCEEDED, job.error
        assert job.result["embedded"] == len(texts)

    bare, pipe = min(bare_times), min(pipe_times)
    print(f"bare encode: {[round(t, 1) for t in bare_times]} s -> {len(texts) / bare:.1f} texts/s")
    print(f"pipeline:    {[round(t, 1) for t in pipe_times]} s -> {len(texts) / pipe:.1f} texts/s")
    print(f"pipeline / bare time (best of {args.reps}): {pipe / bare:.3f}")
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
