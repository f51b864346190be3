"""Per-project vector snapshots: the stored embeddings of a project's items as one float32
matrix file under MEDIA_ROOT, shared by web and workers.

The Embedding table is the durable store (one row per text and model). Scoring a million items
from a million bytea rows costs a full table read per re-rank; the snapshot is read with
``np.load(mmap_mode="r")`` instead. It is rebuilt when the project's items change (count or
largest id differ) and is written to a new directory that a pointer file then names, so readers
never see a half-written matrix.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max

from labeling.errors import ApplicationError
from labeling.models import Item, Project
from models_app.models import Embedding

_READ_CHUNK = 20_000


class VectorsMissing(ApplicationError):
    """Some items of the project have no vector under the model yet: embed them first."""


@dataclass
class VectorSet:
    model_name: str
    item_ids: np.ndarray  # sorted ascending
    matrix: np.ndarray  # (n, dim) float32, row i belongs to item_ids[i]

    def rows(self, item_ids) -> np.ndarray:
        """Row index of each item id (all must be in the set)."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        rows = np.searchsorted(self.item_ids, item_ids)
        if len(item_ids) and (
            rows.max(initial=0) >= len(self.item_ids) or (self.item_ids[rows] != item_ids).any()
        ):
            raise VectorsMissing("Some items are not in the project's vector snapshot.")
        return rows

    def vectors(self, item_ids) -> np.ndarray:
        return np.asarray(self.matrix[self.rows(item_ids)], dtype=np.float32)


def _project_dir(project_id: int, model_name: str) -> Path:
    slug = sha1(model_name.encode(), usedforsecurity=False).hexdigest()[:16]
    return Path(settings.MEDIA_ROOT) / "vectors" / f"project-{project_id}" / slug


def _items_signature(project: Project) -> dict:
    """What the snapshot must match: the item count and largest id (items are only added or
    deleted, never re-texted), and the project's creation time (a recreated project with a
    reused id is another project)."""
    agg = Item.objects.filter(project_id=project.pk).aggregate(n=Count("id"), max_id=Max("id"))
    return {
        "n": agg["n"] or 0,
        "max_id": agg["max_id"] or 0,
        "project": project.created_at.isoformat(),
    }


def _matches(meta: dict, signature: dict) -> bool:
    return all(meta.get(key) == value for key, value in signature.items())


def _current(directory: Path) -> dict | None:
    pointer = directory / "current.json"
    try:
        return json.loads(pointer.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def vectors_load(*, project: Project, model_name: str, rebuild_if_stale: bool = True) -> VectorSet:
    """The project's vectors under `model_name`. Raises VectorsMissing if some items have no
    stored embedding yet."""
    directory = _project_dir(project.pk, model_name)
    meta = _current(directory)
    signature = _items_signature(project)
    if meta is None or (rebuild_if_stale and not _matches(meta, signature)):
        embedded = _embedded_count(project.pk, model_name)
        if embedded < signature["n"]:  # don't write a whole snapshot only to throw it away
            raise VectorsMissing(
                f"{signature['n'] - embedded} items of project {project.pk} have no vector "
                f"under {model_name} yet; embed them first.",
                {"missing": signature["n"] - embedded},
            )
        meta = vectors_rebuild(project=project, model_name=model_name, signature=signature)
    folder = directory / meta["dir"]
    return VectorSet(
        model_name=model_name,
        item_ids=np.load(folder / "ids.npy"),
        matrix=np.load(folder / "vectors.npy", mmap_mode="r"),
    )


def _embedded_count(project_id: int, model_name: str) -> int:
    """How many of the project's items have a stored vector (one query, no vectors read)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT COUNT(*) FROM {Item._meta.db_table} i
                 WHERE i.project_id = %s AND EXISTS (
                       SELECT 1 FROM {Embedding._meta.db_table} e
                        WHERE e.content_hash = i.content_hash AND e.model_name = %s)""",
            [project_id, model_name],
        )
        return int(cursor.fetchone()[0])


def _stream_rows(project_id: int, model_name: str):
    """(item id, vector bytes) of every item with a stored vector, by item id."""
    item_table = Item._meta.db_table
    emb_table = Embedding._meta.db_table
    sql = f"""
        SELECT i.id, e.vector FROM {item_table} i
          JOIN {emb_table} e ON e.content_hash = i.content_hash AND e.model_name = %s
         WHERE i.project_id = %s ORDER BY i.id"""
    if connection.vendor == "postgresql":
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.connection.cursor(name=f"vectors_{uuid.uuid4().hex}") as named,
        ):
            named.itersize = _READ_CHUNK
            named.execute(sql, [model_name, project_id])
            while rows := named.fetchmany(_READ_CHUNK):
                yield rows
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, [model_name, project_id])
            while rows := cursor.fetchmany(_READ_CHUNK):
                yield rows


def vectors_rebuild(*, project: Project, model_name: str, signature: dict | None = None) -> dict:
    """Write a fresh snapshot of the project's vectors and point readers at it."""
    signature = signature or _items_signature(project)
    directory = _project_dir(project.pk, model_name)
    directory.mkdir(parents=True, exist_ok=True)
    dim_row = Embedding.objects.filter(model_name=model_name).values_list("dim", flat=True).first()
    n = signature["n"]
    if n and dim_row is None:
        raise VectorsMissing(f"No item of project {project.pk} is embedded yet.", {"missing": n})
    dim = int(dim_row or 1)
    name = uuid.uuid4().hex
    folder = directory / name
    folder.mkdir()
    ids = np.zeros(n, dtype=np.int64)
    matrix = np.lib.format.open_memmap(
        folder / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, dim)
    )
    filled = 0
    try:
        for rows in _stream_rows(project.pk, model_name):
            block = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype="<f4")
            if filled + len(rows) > n:
                raise VectorsMissing("Items were added while the vector snapshot was written.")
            matrix[filled : filled + len(rows)] = block.reshape(len(rows), dim)
            ids[filled : filled + len(rows)] = [r[0] for r in rows]
            filled += len(rows)
        if filled != n:
            raise VectorsMissing(
                f"{n - filled} items of project {project.pk} have no vector under "
                f"{model_name} yet; embed them first.",
                {"missing": n - filled},
            )
        matrix.flush()
        del matrix
        np.save(folder / "ids.npy", ids)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    meta = {"dir": name, "dim": dim, **signature}
    tmp = directory / f"current.{name}.tmp"
    tmp.write_text(json.dumps(meta))
    previous = _current(directory)
    os.replace(tmp, directory / "current.json")
    # Keep the previous snapshot (a reader may still map it); remove older ones.
    keep = {name, previous["dir"] if previous else None}
    for child in directory.iterdir():
        if child.is_dir() and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
    return meta


def vectors_available(*, project: Project, model_name: str) -> VectorSet:
    """The vectors of the project's items that are embedded so far, in memory (no snapshot):
    what rankings and trainings read while an embedding job is still running. Embedding jobs
    store items in a random order, so this is a uniform sample of the project."""
    dim_row = Embedding.objects.filter(model_name=model_name).values_list("dim", flat=True).first()
    dim = int(dim_row or 1)
    ids: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    for rows in _stream_rows(project.pk, model_name):
        blocks.append(
            np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype="<f4").reshape(len(rows), dim)
        )
        ids.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
    if not blocks:
        return VectorSet(
            model_name=model_name,
            item_ids=np.zeros(0, dtype=np.int64),
            matrix=np.zeros((0, dim), dtype=np.float32),
        )
    return VectorSet(
        model_name=model_name,
        item_ids=np.concatenate(ids),
        matrix=np.concatenate(blocks).astype(np.float32, copy=False),
    )
