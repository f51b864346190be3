"""Reading crowd label files: rows of (item id, annotator id, label[, gold]). No Django.

CSV (delimiter sniffed from the header line unless given) or JSON Lines. Column names are
options, so files from any platform load as they are. Errors name the line and column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quality.aggregation import Triples

__all__ = ["CrowdFileError", "CrowdRows", "crowd_rows_read", "crowd_rows_to_triples"]


class CrowdFileError(ValueError):
    def __init__(self, message: str, *, line: int | None = None, column: str | None = None):
        where = []
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.line = line
        self.column = column


@dataclass
class CrowdRows:
    items: list[str]
    workers: list[str]
    labels: list[str]
    gold: dict[str, str]  # item -> gold label (may be empty)
    lines: list[int]  # source line of each row, for error messages later on


def _records(
    text_stream: io.TextIOBase, *, fmt: str, delimiter: str | None
) -> Iterator[tuple[int, dict]]:
    if fmt == "jsonl":
        for number, line in enumerate(text_stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CrowdFileError(f"not valid JSON ({exc.msg})", line=number) from None
            if not isinstance(record, dict):
                raise CrowdFileError("each line must be a JSON object", line=number)
            yield number, record
        return
    header = text_stream.readline()
    if not header:
        raise CrowdFileError("the file is empty")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(header, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.DictReader(_prepend(header, text_stream), delimiter=delimiter, strict=True)
    try:
        for record in reader:
            yield reader.line_num, record
    except csv.Error as exc:
        raise CrowdFileError(str(exc), line=reader.line_num) from None


def _prepend(first: str, rest: Iterable[str]) -> Iterator[str]:
    yield first
    yield from rest


def crowd_rows_read(
    source: str | Path | io.TextIOBase,
    *,
    item_column: str = "item",
    worker_column: str = "worker",
    label_column: str = "label",
    gold_column: str | None = None,
    fmt: str | None = None,
    delimiter: str | None = None,
) -> CrowdRows:
    """Read every row; raise CrowdFileError naming the first bad line and column."""
    if isinstance(source, str | Path):
        path = Path(source)
        fmt = fmt or ("jsonl" if path.suffix.lower() in {".jsonl", ".ndjson"} else "csv")
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return crowd_rows_read(
                handle,
                item_column=item_column,
                worker_column=worker_column,
                label_column=label_column,
                gold_column=gold_column,
                fmt=fmt,
                delimiter=delimiter,
            )
    fmt = fmt or "csv"
    if fmt not in {"csv", "jsonl"}:
        raise CrowdFileError(f"unknown format {fmt!r} (csv or jsonl)")
    wanted = [item_column, worker_column, label_column] + ([gold_column] if gold_column else [])
    rows = CrowdRows(items=[], workers=[], labels=[], gold={}, lines=[])
    seen_pairs: dict[tuple[str, str], int] = {}
    for number, record in _records(source, fmt=fmt, delimiter=delimiter):
        values = []
        for column in wanted:
            if column not in record:
                raise CrowdFileError(
                    f"missing column; the file has {sorted(map(str, record))}",
                    line=number,
                    column=column,
                )
            value = record[column]
            value = "" if value is None else str(value).strip()
            if column != gold_column and value == "":
                raise CrowdFileError("empty value", line=number, column=column)
            values.append(value)
        item, worker, label = values[:3]
        pair = (item, worker)
        if pair in seen_pairs:
            raise CrowdFileError(
                f"annotator {worker!r} labels item {item!r} twice (first on line "
                f"{seen_pairs[pair]})",
                line=number,
            )
        seen_pairs[pair] = number
        if gold_column and values[3] != "":
            previous = rows.gold.setdefault(item, values[3])
            if previous != values[3]:
                raise CrowdFileError(
                    f"item {item!r} has two gold labels ({previous!r} and {values[3]!r})",
                    line=number,
                    column=gold_column,
                )
        rows.items.append(item)
        rows.workers.append(worker)
        rows.labels.append(label)
        rows.lines.append(number)
    if not rows.items:
        raise CrowdFileError("the file has no rows")
    return rows


def crowd_rows_to_triples(rows: CrowdRows):
    """Integer codes for the rows: (triples, item names, worker names, label names, gold codes
    per item with -1 where unknown). Gold labels never given by any annotator are added to the
    label set so they can still be scored."""
    item_names, item_codes = np.unique(
        np.asarray(rows.items, dtype=object).astype(str), return_inverse=True
    )
    worker_names, worker_codes = np.unique(np.asarray(rows.workers, dtype=str), return_inverse=True)
    label_names = np.unique(np.asarray(rows.labels + list(rows.gold.values()), dtype=str))
    label_codes = np.searchsorted(label_names, np.asarray(rows.labels, dtype=str))
    gold = np.full(item_names.size, -1, dtype=np.int64)
    if rows.gold:
        index = {name: i for i, name in enumerate(item_names.tolist())}
        for item, value in rows.gold.items():
            gold[index[item]] = int(np.searchsorted(label_names, value))
    triples = Triples.of(
        item=item_codes,
        worker=worker_codes,
        label=label_codes,
        n_items=item_names.size,
        n_workers=worker_names.size,
        n_labels=label_names.size,
    )
    return triples, item_names, worker_names, label_names, gold
