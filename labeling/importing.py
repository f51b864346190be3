"""Reading and checking import files: pure Python, no Django.

Formats (all UTF-8; a leading byte order mark is ignored)
- ``csv``: a header row, then one row per item. The delimiter is guessed from the header line
  (``,`` ``;`` tab ``|``, the most frequent wins) unless given. Quoted fields may span lines.
- ``jsonl``: one JSON object per line; blank lines are ignored.
- ``json``: an array of objects, or an object whose ``"items"`` member is that array. The array is
  parsed element by element from a bounded buffer, never loaded whole.

Every reader streams from a binary file object and yields `Record`s; memory is bounded by the
largest single record (`Limits.max_record_chars`), whatever the size of the file.

Row numbers in reports
- ``row`` is the 1-based number of the data row: the first item of the file is row 1 in every
  format. A CSV header is not a row; blank JSONL lines are not rows.
- ``line`` is the line of the file on which that row starts (a CSV header is line 1, so CSV row 1
  usually starts on line 2). Problems with the file as a whole have ``row`` None.

Column mapping (`Mapping`)
- ``text`` (default ``"text"``): the item's text, required and non-empty.
- ``id``: the external id. When not given, the column ``"id"`` is used if the file has one (the CSV
  header, or the first JSON object); otherwise the id is derived from the text as
  ``"sha256:" + the first 20 hex digits of its content hash``, so re-importing the same file is
  idempotent and equal texts get equal ids. When an id column is in use, every row needs an id.
- ``label``: optional column of existing labels. Empty means no label. Multi-label projects may give
  several, as a JSON list (``["a", "b"]``, in JSON files also a real list) or separated by
  ``label_delimiter`` (default ``"|"``); a value that is itself a label is never split.
- Every other column goes into the item's metadata. A JSON member ``"metadata"`` holding an object
  is merged into it rather than nested.

Validation (`RowValidator`): each problem is a `RowError` (row, line, field, reason): missing or
empty text, missing id, duplicate id within the file, invalid UTF-8, a NUL character (which neither
PostgreSQL text nor JSON can store), text over ``max_text_chars``, id over ``max_id_chars``, any
other field over ``max_field_chars``, unknown label, several labels in a single-label project, a
malformed JSON line, JSON nested more than ``max_json_depth`` levels, a CSV row with more values
than the header has columns.

Problems with the file as a whole (`ImportFileError`, fatal): no header, a header of more than
``max_columns`` columns (or a header line over ``max_record_chars``), a CSV quote that is never
closed (reported with the row and line where it opened), a JSON array that cannot be read on.

Duplicate ids are found with a set of Python's 64-bit string hashes (about 70 bytes per row, not the
ids themselves); two different ids share a hash with probability n²/2⁶⁵, about 3·10⁻⁸ for a
million rows.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import orjson

FORMATS = ("csv", "jsonl", "json")
CSV_DELIMITERS = (",", ";", "\t", "|")
MAX_REPORTED_ERRORS = 1000
DERIVED_ID_PREFIX = "sha256:"
DERIVED_ID_HEX_DIGITS = 20
_MAPPING_KEYS = {"text", "id", "label", "delimiter", "label_delimiter"}
_READ_CHARS = 1 << 16
_BOM = codecs.BOM_UTF8


class ImportFileError(Exception):
    """The file cannot be read (any further): no header, not a JSON array, broken quoting...
    Always fatal, whatever `skip_invalid` says, because the rows after it are unknown."""

    def __init__(self, error: RowError) -> None:
        super().__init__(error.reason)
        self.error = error


@dataclass(frozen=True, slots=True)
class RowError:
    row: int | None
    field: str | None
    reason: str
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "line": self.line, "field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Limits:
    max_text_chars: int = 100_000
    max_field_chars: int = 10_000
    max_id_chars: int = 255  # Item.external_id
    max_columns: int = 1000
    # Nesting of a JSON value in a row (metadata), and of a label cell's JSON list. Deeper values
    # would also reach the recursion limits of json, orjson and the validator itself.
    max_json_depth: int = 100

    @property
    def max_record_chars(self) -> int:
        """Largest single record a reader buffers before giving up on it (JSON escapes and
        many metadata columns make a record several times longer than its text)."""
        return 8 * self.max_text_chars + 100 * self.max_field_chars + (1 << 20)


@dataclass(frozen=True, slots=True)
class Mapping:
    text: str = "text"
    id: str | None = None
    label: str | None = None
    delimiter: str | None = None  # CSV only; None: guess from the header line
    label_delimiter: str = "|"

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Mapping:
        """Build from user input; raises ValueError naming the bad key."""
        data = {k: v for k, v in (data or {}).items() if v not in (None, "")}
        unknown = set(data) - _MAPPING_KEYS
        if unknown:
            raise ValueError(f"Unknown mapping key(s): {', '.join(sorted(unknown))}.")
        for key, value in data.items():
            if not isinstance(value, str):
                raise ValueError(f"Mapping '{key}' must be a string.")
        delimiter = data.get("delimiter")
        if delimiter is not None and len(delimiter) != 1:
            raise ValueError("The CSV delimiter must be one character.")
        columns = [data.get("text", "text"), data.get("id"), data.get("label")]
        named = [c for c in columns if c]
        if len(set(named)) != len(named):
            raise ValueError("The text, id and label columns must be different columns.")
        return cls(**data)

    def as_dict(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("text", self.text),
                ("id", self.id),
                ("label", self.label),
                ("delimiter", self.delimiter),
                ("label_delimiter", self.label_delimiter),
            )
            if v is not None
        }


@dataclass(slots=True)
class Record:
    """One row as read from the file: its values, or why it could not be read."""

    row: int
    line: int | None
    # A dict (JSON formats), a list in the order of `RecordReader.columns` (CSV), or None.
    values: dict[str, Any] | list[str] | None
    error: str | None = None
    # The values hold only what strict JSON (RFC 8259) can: no NaN or Infinity, no integer
    # beyond 64 bits. Such a record's values are encoded back to JSON with orjson.
    strict: bool = False
    # Every string in the values (keys and nested ones too) is known to be valid UTF-8 without
    # NUL, so the validator need not look for either.
    clean: bool = False


@dataclass(slots=True)
class ValidRow:
    row: int
    external_id: str
    text: str
    content_hash: str
    labels: list[str]
    metadata: dict[str, Any]
    id_derived: bool = False

    def as_tuple(self) -> tuple[Any, ...]:
        """The fields in order (``ValidRow(*row.as_tuple())`` rebuilds it); plain data that
        ``marshal`` and ``json`` can store."""
        return (
            self.row,
            self.external_id,
            self.text,
            self.content_hash,
            self.labels,
            self.metadata,
            self.id_derived,
        )


def content_hash(text: str) -> str:
    """sha256 of the UTF-8 text, hex: the key for duplicate-content detection."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def derived_external_id(text_hash: str) -> str:
    return DERIVED_ID_PREFIX + text_hash[:DERIVED_ID_HEX_DIGITS]


def guess_format(name: str, head: bytes = b"") -> str | None:
    """The format from a file name, else from the first bytes; None if neither tells."""
    lower = name.lower()
    for suffixes, fmt in (
        ((".csv", ".tsv", ".txt"), "csv"),
        ((".jsonl", ".ndjson"), "jsonl"),
        ((".json",), "json"),
    ):
        if lower.endswith(suffixes):
            return fmt
    start = head.removeprefix(_BOM).lstrip()
    if start.startswith(b"["):
        return "json"
    if start.startswith(b"{"):
        # One object per line, or one object holding "items"? A JSON Lines file has a second
        # object starting at the beginning of a later line.
        return "jsonl" if re.search(rb"\}\s*\n\s*\{", start) else "json"
    return "csv" if start else None


# ---- readers ------------------------------------------------------------------------------


def _text_stream(stream: BinaryIO) -> io.TextIOWrapper:
    # surrogateescape keeps undecodable bytes as lone surrogates, so the row that holds them is
    # reported (by the validator) instead of the whole file failing at the first bad byte.
    binary = cast(io.BufferedIOBase, stream)
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")


def sniff_delimiter(header_line: str) -> str:
    best, best_count = ",", 0
    for candidate in CSV_DELIMITERS:
        count = header_line.count(candidate)
        if count > best_count:
            best, best_count = candidate, count
    return best


class RecordReader:
    """Iterate `Record`s of a file. `columns` is the CSV header (None for JSON formats)."""

    columns: list[str] | None

    def __init__(
        self,
        stream: BinaryIO,
        fmt: str,
        *,
        limits: Limits | None = None,
        csv_delimiter: str | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"Unknown format '{fmt}'; expected one of {', '.join(FORMATS)}.")
        self.fmt = fmt
        self.limits = limits or Limits()
        self.columns = None
        self._iterator: Iterator[Record]
        if fmt == "csv":
            self._iterator = self._csv(stream, csv_delimiter)
        elif fmt == "jsonl":
            self._iterator = self._jsonl(stream)
        else:
            self._iterator = self._json(stream)

    def __iter__(self) -> Iterator[Record]:
        return self._iterator

    # CSV ---------------------------------------------------------------------------------
    def _csv(self, stream: BinaryIO, delimiter: str | None) -> Iterator[Record]:
        text = _text_stream(stream)
        limit = self.limits.max_record_chars
        first = text.readline(limit)
        if not first.strip():
            raise ImportFileError(RowError(None, None, "The CSV file has no header row.", 1))
        if len(first) >= limit and not first.endswith(("\n", "\r")):
            reason = f"The CSV header line is longer than {limit} characters."
            raise ImportFileError(RowError(None, None, reason, 1))
        delimiter = delimiter or sniff_delimiter(first)
        max_columns = self.limits.max_columns
        if first.count(delimiter) >= max_columns:
            # Counted on the raw line (quoted delimiters included: an upper bound) before the
            # csv module builds a list of a million names.
            header_columns = len(next(csv.reader([first], delimiter=delimiter, strict=False)))
            if header_columns > max_columns:
                reason = (
                    f"The CSV header has {header_columns} columns; the limit is {max_columns} "
                    "(IMPORT_MAX_COLUMNS)."
                )
                raise ImportFileError(RowError(None, None, reason, 1))
        if csv.field_size_limit() < limit:
            csv.field_size_limit(limit)
        lines = _LinesToTheEnd(first, text)
        reader = csv.reader(lines, delimiter=delimiter, strict=False)
        try:
            header = next(reader)
        except csv.Error as exc:
            error = RowError(None, None, f"Unreadable CSV header: {exc}.", 1)
            raise ImportFileError(error) from exc
        if lines.ended:
            raise ImportFileError(_unclosed_quote(None, 1))
        columns = [name.strip() for name in header]
        self.columns = columns
        return self._csv_rows(reader, columns, lines)

    @staticmethod
    def _csv_rows(reader: Any, columns: list[str], lines: _LinesToTheEnd) -> Iterator[Record]:
        width = len(columns)
        row = 0
        line_end = reader.line_num
        while True:
            line = line_end + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(
                    RowError(
                        row + 1,
                        None,
                        f"The CSV cannot be read from here on ({exc}); an unclosed quote in "
                        f"row {row + 1} (line {line})?",
                        line,
                    )
                ) from exc
            line_end = reader.line_num
            if lines.ended:
                # A record that ends properly is returned before the reader asks for another
                # line; one that needed the end of the file was inside a quote that never
                # closed, and swallowed every line after the one it opened on.
                raise ImportFileError(_unclosed_quote(row + 1, line))
            if not values:
                continue  # blank line
            row += 1
            if len(values) > width:
                yield Record(
                    row,
                    line,
                    None,
                    f"The row has {len(values)} values but the header has {width} columns.",
                )
                continue
            if len(values) < width:
                values.extend([""] * (width - len(values)))
            # A list in header order; the validator maps it (cheaper than a dict per row).
            yield Record(row, line, values, None, True)

    # JSON Lines --------------------------------------------------------------------------
    def _jsonl(self, stream: BinaryIO) -> Iterator[Record]:
        limit_bytes = 4 * self.limits.max_record_chars
        decode = json.loads
        strict_decode = orjson.loads
        row = 0
        line = 0
        while True:
            raw = stream.readline(limit_bytes)
            if not raw:
                return
            line += 1
            if line == 1:
                raw = raw.removeprefix(_BOM)
            if len(raw) >= limit_bytes and not raw.endswith(b"\n"):
                while (rest := stream.readline(limit_bytes)) and not rest.endswith(b"\n"):
                    pass
                row += 1
                yield Record(row, line, None, f"The line is longer than {limit_bytes} bytes.")
                continue
            if raw.isspace():
                continue
            row += 1
            # orjson parses strict JSON in valid UTF-8 to the values the json module gives,
            # several times faster. It refuses the rest (invalid UTF-8, which the validator
            # reports per field; NaN; lone surrogate escapes) and reads integers beyond 64 bits
            # as floats: those lines go through the json module, as before.
            try:
                value = strict_decode(raw)
                strict = not (type(value) is dict and _may_have_rounded(value, raw))
            except orjson.JSONDecodeError:
                strict = False
            if not strict:
                try:
                    value = decode(raw.decode("utf-8", "surrogateescape"))
                except json.JSONDecodeError as exc:
                    reason = f"Malformed JSON: {exc.msg} at column {exc.colno}."
                    yield Record(row, line, None, reason)
                    continue
                except RecursionError:
                    yield Record(row, line, None, _TOO_DEEP)
                    continue
            if type(value) is not dict:
                yield Record(row, line, None, f"Expected a JSON object, got {_json_type(value)}.")
                continue
            # orjson accepts only valid UTF-8 and no lone surrogate escape; the one way left
            # to a NUL is its escape (a raw control character is malformed JSON).
            clean = strict and b"\\u0000" not in raw
            yield Record(row, line, value, None, strict, clean)

    # JSON array --------------------------------------------------------------------------
    def _json(self, stream: BinaryIO) -> Iterator[Record]:
        parser = _JsonArrayParser(_text_stream(stream), self.limits.max_record_chars)
        row = 0
        for line, value in parser:
            row += 1
            if value is _NESTED_TOO_DEEPLY:
                yield Record(row, line, None, _TOO_DEEP)
                continue
            if not isinstance(value, dict):
                yield Record(row, line, None, f"Expected a JSON object, got {_json_type(value)}.")
                continue
            yield Record(row, line, value)


_LONG_NUMBER = re.compile(rb"[0-9]{19}").search
_TOO_DEEP = "Malformed JSON: nested too deeply to read."


class _LinesToTheEnd:
    """The CSV file's lines for `csv.reader` (the header line first), noting when they run out:
    a record still being read then was inside a quote that was never closed."""

    def __init__(self, first: str, rest: Iterable[str]) -> None:
        self.first = first
        self.rest = rest
        self.ended = False

    def __iter__(self) -> Iterator[str]:
        yield self.first
        yield from self.rest
        self.ended = True


def _unclosed_quote(row: int | None, line: int) -> RowError:
    where = f"row {row} (line {line})" if row is not None else f"the header (line {line})"
    return RowError(
        row,
        None,
        f"A quote opened in {where} is never closed: it would swallow every line after it.",
        line,
    )


def _deeper_than(value: Any, limit: int) -> bool:
    """Is the JSON value nested more than `limit` levels (a scalar is level 0)? Iterative:
    no recursion limit to reach."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if type(item) is dict else item
        stack.extend((c, depth + 1) for c in children if type(c) is dict or type(c) is list)
    return False


def _may_have_rounded(value: dict[str, Any], raw: bytes) -> bool:
    """Could orjson have read an integer of more than 64 bits (19+ digits) in `raw` as a float?
    Only if the object holds a float somewhere; the scan of the line runs only then."""
    for item in value.values():
        kind = type(item)
        if kind is float or kind is dict or kind is list:
            return _LONG_NUMBER(raw) is not None
    return False


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return "a number"


_WS = re.compile(r"[ \t\n\r]*")
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{}]', re.DOTALL)
_NESTED_TOO_DEEPLY: Any = object()


class _JsonArrayParser:
    """Yield (line, element) for each element of a top-level JSON array, reading the text in
    chunks. Each element is decoded by the C scanner (`raw_decode`) from a buffer that holds at
    most one element plus one chunk."""

    def __init__(self, text: io.TextIOBase, max_element_chars: int) -> None:
        self.text = text
        self.max_element = max_element_chars
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line number at self.counted
        self.counted = 0  # buffer offset up to which newlines have been counted

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.text.read(_READ_CHARS)
        if not chunk:
            self.eof = True
            return False
        if self.pos:
            self.line += self.buf.count("\n", self.counted, self.pos)
            self.buf = self.buf[self.pos :]
            self.counted = 0
            self.pos = 0
        self.buf += chunk
        return True

    def _skip_ws(self) -> str:
        """Skip whitespace; return the next character ('' at the end of the file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def _line_at(self, pos: int) -> int:
        self.line += self.buf.count("\n", self.counted, pos)
        self.counted = pos
        return self.line

    def _fatal(self, reason: str, row: int | None) -> ImportFileError:
        return ImportFileError(RowError(row, None, reason, self._line_at(self.pos)))

    def _value(self, row: int | None) -> Any:
        self._skip_ws()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except RecursionError:
                # Too deep for the decoder: find where the element ends by matching brackets,
                # so that it is one bad row and the rest of the file can still be read.
                if row and self._skip_nested():
                    return _NESTED_TOO_DEEPLY
                where = "element" if row else "value"
                raise self._fatal(
                    f"The JSON {where} is nested too deeply to read (the file cannot be read "
                    "past it).",
                    row,
                ) from None
            except json.JSONDecodeError as exc:
                # Probably cut off at the end of the buffer: read more, up to the element limit.
                if len(self.buf) - self.pos < self.max_element and self._fill():
                    continue
                where = "element" if row else "value"
                raise self._fatal(
                    f"Malformed JSON {where}: {exc.msg} (the file cannot be read past it).", row
                ) from exc
            # A number at the end of the buffer may continue in the next chunk.
            if end == len(self.buf) and not self.eof and self._fill():
                continue
            self.pos = end
            return value

    def _skip_nested(self) -> bool:
        """Move past the array or object at `pos` by matching its brackets outside strings;
        False if it does not end within the element limit."""
        depth = 0
        offset = 0  # from self.pos, which `_fill` moves
        while True:
            buf, start = self.buf, self.pos
            for match in _JSON_TOKEN.finditer(buf, start + offset):
                token = match[0]
                if token == '"':  # a string that goes on in the next chunk
                    offset = match.start() - start
                    break
                if token[0] == '"':
                    continue
                depth += 1 if token in "[{" else -1
                if depth == 0:
                    self.pos = match.end()
                    return True
            else:
                offset = len(buf) - start
            if len(self.buf) - self.pos >= self.max_element or not self._fill():
                return False

    def _expect(self, char: str, row: int | None) -> None:
        if self._skip_ws() != char:
            found = self.buf[self.pos : self.pos + 20] or "the end of the file"
            raise self._fatal(f"Expected '{char}' in the JSON, found {found!r}.", row)
        self.pos += 1

    def _enter_array(self) -> None:
        first = self._skip_ws()
        if first == "[":
            self.pos += 1
            return
        if first == "{":
            # {"items": [...], ...}: find the "items" member; other members are read whole.
            self.pos += 1
            while True:
                nxt = self._skip_ws()
                if nxt == "}" or nxt == "":
                    break
                key = self._value(None)
                self._expect(":", None)
                if key == "items" and self._skip_ws() == "[":
                    self.pos += 1
                    return
                self._value(None)
                if self._skip_ws() == ",":
                    self.pos += 1
        raise self._fatal(
            'Expected a JSON array of objects (or an object with an "items" array).', None
        )

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        self._fill()
        self._enter_array()
        row = 0
        if self._skip_ws() == "]":
            return
        while True:
            row += 1
            if self._skip_ws() == "":
                raise self._fatal("The JSON array is not closed.", row)
            line = self._line_at(self.pos)
            value = self._value(row)
            yield line, value
            nxt = self._skip_ws()
            if nxt == ",":
                self.pos += 1
            elif nxt == "]":
                return
            else:
                raise self._fatal(
                    f"Expected ',' or ']' after element {row}, found "
                    f"{self.buf[self.pos : self.pos + 20] or 'the end of the file'!r}.",
                    row,
                )


# ---- validation -----------------------------------------------------------------------------


def _string_problem(value: str) -> str | None:
    """Why a string cannot be stored, or None. Lone surrogates are bytes that were not UTF-8."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid UTF-8"
    if "\x00" in value:
        return "a NUL character, which cannot be stored"
    return None


def _nested_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _string_problem(key) or _nested_problem(item)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _nested_problem(item)
            if problem:
                return problem
    return None


def parse_labels(
    value: Any, *, allowed: frozenset[str], multi_label: bool, delimiter: str = "|"
) -> tuple[list[str], str | None]:
    """Labels from a label cell: (labels, None) or ([], reason). Empty means no label."""
    if value is None:
        return [], None
    if isinstance(value, bool | dict | float):
        return [], f"labels must be a string or a list of strings, got {_json_type(value)}"
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return [], None
        if stripped in allowed:
            values: list[Any] = [stripped]
        elif stripped.startswith("["):
            try:
                values = json.loads(stripped)
            except json.JSONDecodeError:
                return [], f"labels {stripped[:80]!r} are not a valid JSON list"
            except RecursionError:
                return [], "labels are a JSON list nested too deeply"
            if not isinstance(values, list):
                return [], "labels must be a list of strings"
        elif multi_label and delimiter in stripped:
            values = [part.strip() for part in stripped.split(delimiter)]
        else:
            values = [stripped]
    else:
        values = value
    labels: list[str] = []
    for item in values:
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            return [], f"labels must be strings, got {_json_type(item)}"
        item = item.strip()
        if item and item not in labels:
            labels.append(item)
    unknown = [label for label in labels if label not in allowed]
    if unknown:
        known = sorted(allowed)
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        names = ", ".join(repr(u[:100]) for u in unknown[:5])
        return [], f"unknown label {names}; the project's labels are: {shown}"
    if len(labels) > 1 and not multi_label:
        return [], f"{len(labels)} labels given, but the project is single-label"
    return labels, None


def csv_header_errors(columns: list[str], mapping: Mapping) -> list[RowError]:
    """Problems with a CSV header under a mapping (all fatal: no row could be read right)."""
    errors = []
    shown = ", ".join(repr(c) for c in columns[:30])
    seen: set[str] = set()
    for name in columns:  # one pass: a header may have as many columns as IMPORT_MAX_COLUMNS
        if name in seen:
            errors.append(RowError(None, name, f"The header names column {name!r} twice.", 1))
            break
        seen.add(name)
    for role, name in (("text", mapping.text), ("id", mapping.id), ("label", mapping.label)):
        if name and name not in columns:
            errors.append(
                RowError(
                    None,
                    name,
                    f"The {role} column {name!r} is not in the header (columns: {shown}).",
                    1,
                )
            )
    for name in columns:
        problem = _string_problem(name)
        if problem:
            errors.append(RowError(None, name, f"A column name has {problem}.", 1))
            break
    return errors


def _strings_clean(strings: Iterable[str]) -> bool:
    """True if every string can be stored: valid UTF-8 (no lone surrogates) and no NUL. One
    join and one encode for the whole row; the per-field search runs only when this fails."""
    blob = "".join(strings)
    if "\x00" in blob:
        return False
    if blob.isascii():
        return True
    try:
        blob.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_UNRESOLVED: Any = object()


class RowValidator:
    """Check rows one by one, remembering what duplicate detection needs (a set of 64-bit
    hashes of the ids seen). Feed it the records of one file in order; one validator per pass.

    `columns` is the CSV header (`RecordReader.columns`); records are then lists in that order.
    """

    def __init__(
        self,
        *,
        mapping: Mapping,
        limits: Limits,
        labels: Iterable[str],
        multi_label: bool,
        columns: list[str] | None = None,
    ) -> None:
        self.mapping = mapping
        self.limits = limits
        self.allowed = frozenset(labels)
        self.multi_label = multi_label
        self._seen_ids: set[int] = set()
        self.id_field: Any = mapping.id or _UNRESOLVED
        if columns is not None:
            self._resolve_id("id" in columns)
            index = {name: i for i, name in enumerate(columns)}
            self._text_index = index.get(mapping.text)
            self._id_index = index.get(self.id_field) if self.id_field else None
            self._label_index = index.get(mapping.label) if mapping.label else None
            reserved = {mapping.text, self.id_field, mapping.label}
            self._meta_columns = [(n, i) for i, n in enumerate(columns) if n not in reserved]

    def _resolve_id(self, file_has_id: bool) -> None:
        if self.id_field is _UNRESOLVED:
            # Default: the "id" column if the file has one (CSV header, first JSON object).
            self.id_field = "id" if file_has_id else None

    def check(self, record: Record) -> tuple[ValidRow | None, list[RowError]]:
        """(the row ready to write, []) or (None, its errors)."""
        row, line, values = record.row, record.line, record.values
        if values is None:
            return None, [RowError(row, None, record.error or "unreadable row", line)]
        mapping = self.mapping
        if type(values) is list:
            ti, ii, li = self._text_index, self._id_index, self._label_index
            raw_text: Any = values[ti] if ti is not None else None
            raw_id: Any = values[ii] if ii is not None else None
            raw_label: Any = values[li] if li is not None else None
            metadata: dict[str, Any] = {name: values[i] for name, i in self._meta_columns}
            clean = _strings_clean(values)
        else:
            assert isinstance(values, dict)
            too_deep = self._too_deep(values, row, line)
            if too_deep:
                return None, too_deep
            self._resolve_id("id" in values)
            raw_text = values.get(mapping.text)
            raw_id = values.get(self.id_field) if self.id_field else None
            raw_label = values.get(mapping.label) if mapping.label else None
            metadata = self._metadata(values)
            clean = record.clean or self._dict_clean(values)

        errors: list[RowError] = []
        limits = self.limits
        text_field = mapping.text
        text = self._text(raw_text, row, line, errors)
        if text is not None and not clean:
            problem = _string_problem(text)
            if problem:
                errors.append(RowError(row, text_field, f"text has {problem}", line))
                text = None
        external_id = self._external_id(raw_id, clean, row, line, errors)

        labels: list[str] = []
        if raw_label is not None and raw_label != "":
            if type(raw_label) is str and raw_label in self.allowed:
                labels = [raw_label]
            else:
                labels, reason = parse_labels(
                    raw_label,
                    allowed=self.allowed,
                    multi_label=self.multi_label,
                    delimiter=mapping.label_delimiter,
                )
                if reason:
                    errors.append(RowError(row, mapping.label, reason, line))

        max_field = limits.max_field_chars
        for key, value in metadata.items():
            kind = type(value)
            if kind is str:
                size = len(value)
            elif kind is dict or kind is list:
                size = len(json.dumps(value, ensure_ascii=False))
            else:
                continue
            if size > max_field:
                errors.append(
                    RowError(
                        row, key, f"field is {size} characters long; the limit is {max_field}", line
                    )
                )
            elif not clean:
                problem = _string_problem(key) or _nested_problem(value)
                if problem:
                    errors.append(RowError(row, key, f"field has {problem}", line))

        if errors or text is None:
            return None, errors
        text_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return (
            ValidRow(
                row=row,
                external_id=external_id or derived_external_id(text_hash),
                text=text,
                content_hash=text_hash,
                labels=labels,
                metadata=metadata,
                id_derived=external_id is None,
            ),
            [],
        )

    def _too_deep(self, values: dict[str, Any], row: int, line: int | None) -> list[RowError]:
        """The members nested deeper than `Limits.max_json_depth` (the row itself is level 1)."""
        limit = self.limits.max_json_depth
        for key, value in values.items():
            kind = type(value)
            if (kind is dict or kind is list) and _deeper_than(value, limit - 1):
                reason = f"JSON nested more than {limit} levels deep"
                return [RowError(row, str(key)[:100], reason, line)]
        return []

    @staticmethod
    def _dict_clean(values: dict[str, Any]) -> bool:
        strings = []
        containers = []
        for value in values.values():
            kind = type(value)
            if kind is str:
                strings.append(value)
            elif kind is dict or kind is list:
                containers.append(value)
        return (
            _strings_clean(strings)
            and _strings_clean(values)
            and not any(_nested_problem(c) for c in containers)
        )

    def _metadata(self, values: dict[str, Any]) -> dict[str, Any]:
        reserved = (self.mapping.text, self.id_field, self.mapping.label)
        nested = values.get("metadata")
        if type(nested) is dict and "metadata" not in reserved:
            metadata = dict(nested)
            reserved = (*reserved, "metadata")
        else:
            metadata = {}
        for key, value in values.items():
            if key not in reserved:
                metadata[key] = value
        return metadata

    def _text(self, raw: Any, row: int, line: int | None, errors: list[RowError]) -> str | None:
        field_name = self.mapping.text
        if type(raw) is str:
            text = raw
        elif raw is None:
            errors.append(RowError(row, field_name, "missing text", line))
            return None
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            text = str(raw)
        else:
            reason = f"text must be a string, got {_json_type(raw)}"
            errors.append(RowError(row, field_name, reason, line))
            return None
        if not text or text.isspace():
            errors.append(RowError(row, field_name, "missing text (empty)", line))
            return None
        limit = self.limits.max_text_chars
        if len(text) > limit:
            reason = f"text is {len(text)} characters long; the limit is {limit}"
            errors.append(RowError(row, field_name, reason, line))
            return None
        return text

    def _external_id(
        self, raw: Any, clean: bool, row: int, line: int | None, errors: list[RowError]
    ) -> str | None:
        field_name = self.id_field
        if field_name is None:
            return None
        if type(raw) is int:
            raw = str(raw)
        if raw is None or (type(raw) is str and (not raw or raw.isspace())):
            errors.append(RowError(row, field_name, "missing id", line))
            return None
        if type(raw) is not str:
            reason = f"id must be a string or an integer, got {_json_type(raw)}"
            errors.append(RowError(row, field_name, reason, line))
            return None
        candidate = raw.strip()
        limit = self.limits.max_id_chars
        if len(candidate) > limit:
            reason = f"id is {len(candidate)} characters long; the limit is {limit}"
            errors.append(RowError(row, field_name, reason, line))
            return None
        problem = None if clean else _string_problem(candidate)
        if problem:
            errors.append(RowError(row, field_name, f"id has {problem}", line))
            return None
        key = hash(candidate)
        if key in self._seen_ids:
            reason = f"duplicate id {candidate[:100]!r}: an earlier row has it"
            errors.append(RowError(row, field_name, reason, line))
            return None
        self._seen_ids.add(key)
        return candidate


@dataclass
class ErrorReport:
    """Counts every problem, keeps the first `limit` for the report."""

    limit: int = MAX_REPORTED_ERRORS
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    invalid_rows: int = 0
    # Valid rows whose text an earlier row of the file has: skipped, not errors.
    duplicate_content: int = 0

    def add(self, errors: list[RowError]) -> None:
        if not errors:
            return
        self.invalid_rows += 1
        self.error_count += len(errors)
        room = self.limit - len(self.errors)
        if room > 0:
            self.errors.extend(errors[:room])

    def add_fatal(self, error: RowError) -> None:
        """The error that stopped the reading: always reported, as the last entry."""
        self.error_count += 1
        if len(self.errors) >= self.limit:
            self.errors.pop()
        self.errors.append(error)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [error.as_dict() for error in self.errors]
