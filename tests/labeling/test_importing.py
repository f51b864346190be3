"""The pure import module: streaming readers, row validation, hashing, error records (no DB)."""

import hashlib
import io
import json

import pytest

from labeling.importing import (
    MAX_REPORTED_ERRORS,
    ErrorReport,
    ImportFileError,
    Limits,
    Mapping,
    RecordReader,
    RowError,
    RowValidator,
    content_hash,
    csv_header_errors,
    derived_external_id,
    guess_format,
    parse_labels,
)

LABELS = ["pos", "neg", "neutral"]


def read(data: bytes | str, fmt: str, **kwargs):
    raw = data.encode() if isinstance(data, str) else data
    reader = RecordReader(io.BytesIO(raw), fmt, **kwargs)
    return reader, list(reader)


def check_all(data, fmt, *, mapping=None, limits=None, labels=LABELS, multi_label=False):
    """(valid rows, errors as (row, field, reason) tuples) of a whole file."""
    reader = RecordReader(io.BytesIO(data.encode() if isinstance(data, str) else data), fmt)
    validator = RowValidator(
        mapping=mapping or Mapping(),
        limits=limits or Limits(),
        labels=labels,
        multi_label=multi_label,
        columns=reader.columns,
    )
    valid, errors = [], []
    for record in reader:
        row, row_errors = validator.check(record)
        if row is not None:
            valid.append(row)
        errors.extend(row_errors)
    return valid, errors


# ---- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("data.csv", b"", "csv"),
        ("DATA.TSV", b"", "csv"),
        ("x.jsonl", b"", "jsonl"),
        ("x.ndjson", b"", "jsonl"),
        ("x.json", b"", "json"),
        ("upload", b'  [{"text": "a"}]', "json"),
        ("upload", b'{"text": "a"}\n{"text": "b"}\n', "jsonl"),
        ("upload", b'{"items": [{"text": "a"}]}', "json"),
        ("upload", b"\xef\xbb\xbftext,id\n", "csv"),
        ("upload", b"", None),
    ],
)
def test_guess_format_from_name_then_content(name, head, expected):
    assert guess_format(name, head) == expected


def test_csv_rows_with_guessed_delimiter_bom_quotes_and_line_numbers():
    # given a semicolon CSV with a byte order mark, a quoted field spanning two lines, a blank
    # line and a short row
    data = '\ufeffid;text;source\r\n1;hello;web\r\n2;"two\nlines; quoted";mail\r\n\r\n3;short\r\n'

    # when it is read
    reader, records = read(data, "csv")

    # then the header has no BOM, rows are numbered from 1 after the header, each row knows the
    # line it starts on, and the short row is padded
    assert reader.columns == ["id", "text", "source"]
    assert [(r.row, r.line) for r in records] == [(1, 2), (2, 3), (3, 6)]
    assert records[1].values == ["2", "two\nlines; quoted", "mail"]
    assert records[2].values == ["3", "short", ""]


def test_csv_row_with_too_many_values_is_an_unreadable_row():
    _, records = read("id,text\n1,a\n2,b,extra\n", "csv")

    assert records[1].values is None
    assert records[1].error == "The row has 3 values but the header has 2 columns."
    assert (records[1].row, records[1].line) == (2, 3)


def test_csv_without_header_is_a_file_error():
    with pytest.raises(ImportFileError, match="no header"):
        read("\n\n", "csv")


def test_jsonl_skips_blank_lines_and_reports_malformed_and_non_object_lines():
    data = '{"text": "a"}\n\n{"text": broken}\n[1, 2]\n   \n{"text": "b"}'

    _, records = read(data, "jsonl")

    assert [(r.row, r.line) for r in records] == [(1, 1), (2, 3), (3, 4), (4, 6)]
    assert records[0].values == {"text": "a"}
    assert records[1].values is None
    assert records[1].error.startswith("Malformed JSON")
    assert records[2].error == "Expected a JSON object, got an array."
    assert records[3].values == {"text": "b"}


@pytest.mark.parametrize(
    "line",
    [
        b'{"text": "a", "n": 123456789012345678901234567890, "f": 0.5}',  # beyond 64 bits
        b'{"text": "a", "deep": {"n": -9223372036854775809}}',
        b'{"text": "a", "n": 18446744073709551615, "big": 1e400}',  # inf, as json reads it
        b'{"text": "a", "x": NaN}',
        b'{"text": "a", "s": "\\ud800"}',  # a lone surrogate escape
        b'{"text": "a", "nul": "x\\u0000y", "k": [1, 2.5, "z"]}',
        b'{"text": "caf\xc3\xa9", "id": 7, "m": {"a": null, "b": true}}',
    ],
)
def test_jsonl_values_are_what_the_json_module_reads(line):
    # The fast parser must never change a value: whatever it reads, the json module reads alike.
    _, records = read(line + b"\n", "jsonl")

    (record,) = records
    expected = json.loads(line.decode())
    assert record.values == expected
    assert repr(record.values) == repr(expected)  # same types too (int stays int)


def test_jsonl_invalid_utf8_and_nul_are_still_reported_per_field():
    data = (
        b'{"text": "ok", "id": "1"}\n'
        b'{"text": "bad \xff", "id": "2"}\n'
        b'{"text": "n\\u0000", "id": "3"}\n'
    )
    _, records = read(data, "jsonl")
    validator = RowValidator(mapping=Mapping(), limits=Limits(), labels=LABELS, multi_label=False)

    results = [validator.check(record) for record in records]

    assert results[0][0] is not None
    assert [e.as_dict() for e in results[1][1]] == [
        {"row": 2, "line": 2, "field": "text", "reason": "text has invalid UTF-8"}
    ]
    assert (results[2][1][0].row, results[2][1][0].field) == (3, "text")
    assert "NUL character" in results[2][1][0].reason


def test_jsonl_line_longer_than_the_record_limit_is_one_bad_row():
    # given a limit of ~1 MiB per record and a 6 MiB line between two good ones
    limits = Limits(max_text_chars=10, max_field_chars=10)
    huge = '{"text": "' + "x" * (6 * limits.max_record_chars) + '"}'
    data = '{"text": "a"}\n' + huge + '\n{"text": "b"}\n'

    # when it is read
    _, records = read(data, "jsonl", limits=limits)

    # then the long line is reported and reading carries on after it
    assert [r.values for r in records] == [{"text": "a"}, None, {"text": "b"}]
    assert "longer than" in records[1].error


def test_json_array_is_streamed_across_chunk_boundaries_with_line_numbers():
    # given a pretty-printed array whose elements straddle the reader's 64 KiB chunks
    rows = [{"id": n, "text": f"text {n} " + "w" * (n * 997 % 70_000)} for n in range(40)]
    data = json.dumps(rows, indent=2)

    # when it is read
    _, records = read(data, "json")

    # then every element comes back in order, each with the line it starts on
    assert [r.values for r in records] == rows
    lines = data.splitlines()
    assert all(lines[r.line - 1].strip() == "{" for r in records)
    assert records[0].line == 2


def test_json_object_with_an_items_array():
    data = '{"name": "export", "meta": {"n": [1, 2]}, "items": [{"text": "a"}, {"text": "b"}]}'

    _, records = read(data, "json")

    assert [r.values for r in records] == [{"text": "a"}, {"text": "b"}]


def test_json_numbers_split_by_a_chunk_boundary_are_read_whole():
    # given a number placed so that it ends exactly where the first 64 KiB chunk ends
    prefix = '[{"text": "' + "a" * (65536 - 22) + '", "n": '
    data = prefix + "123456789}]"
    assert len(prefix) < 65536 < len(prefix) + 9

    _, records = read(data, "json")

    assert records[0].values["n"] == 123456789


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ('{"text": "a"}', "Expected a JSON array"),
        ('[{"text": "a"}, {"text": ', "Malformed JSON element"),
        ('[{"text": "a"} {"text": "b"}]', "Expected ',' or ']' after element 1"),
        ('[{"text": "a"},', "not closed"),
    ],
)
def test_broken_json_array_is_a_file_error(data, reason):
    with pytest.raises(ImportFileError, match=reason):
        read(data, "json")


def test_json_array_of_non_objects_reports_those_rows():
    _, records = read('[{"text": "a"}, "just a string", 3]', "json")

    assert [r.error for r in records] == [
        None,
        "Expected a JSON object, got a string.",
        "Expected a JSON object, got a number.",
    ]


# ---- validation --------------------------------------------------------------------------


def test_valid_rows_get_hash_metadata_and_labels():
    data = "id,text,label,source,lang\n a-1 ,Hello world,pos,web,en\n"

    valid, errors = check_all(data, "csv", mapping=Mapping(label="label"))

    assert errors == []
    (row,) = valid
    assert row.external_id == "a-1"  # surrounding blanks of ids are dropped
    assert row.text == "Hello world"
    assert row.content_hash == hashlib.sha256(b"Hello world").hexdigest() == content_hash(row.text)
    assert row.labels == ["pos"]
    assert row.metadata == {"source": "web", "lang": "en"}
    assert not row.id_derived


def test_without_an_id_column_the_id_is_derived_from_the_text():
    valid, errors = check_all('{"text": "same"}\n{"text": "same"}\n', "jsonl")

    # equal texts get equal ids; that is duplicate content, not a duplicate-id error
    assert errors == []
    assert [r.external_id for r in valid] == [derived_external_id(content_hash("same"))] * 2
    assert valid[0].external_id == "sha256:" + content_hash("same")[:20]
    assert valid[0].id_derived


def test_json_metadata_member_is_merged_and_other_members_kept():
    data = '{"id": 7, "text": "t", "metadata": {"source": "bbc"}, "score": 0.5, "tags": ["x"]}\n'

    valid, errors = check_all(data, "jsonl")

    assert errors == []
    assert valid[0].external_id == "7"
    assert valid[0].metadata == {"source": "bbc", "score": 0.5, "tags": ["x"]}


def test_every_error_kind_names_row_field_and_reason():
    # given a JSON Lines file with one problem per row (row 1 is fine)
    limits = Limits(max_text_chars=20, max_field_chars=8)
    lines = [
        b'{"id": "1", "text": "fine", "label": "pos"}',
        b'{"id": "2", "label": "pos"}',  # row 2: missing text
        b'{"id": "3", "text": "   "}',  # row 3: empty text
        b'{"id": "1", "text": "again"}',  # row 4: duplicate id
        b'{"id": "5", "text": "bad \xff byte"}',  # row 5: invalid UTF-8
        b'{"id": "6", "text": "' + b"x" * 21 + b'"}',  # row 6: text too long
        b'{"id": "7", "text": "ok", "note": "123456789"}',  # row 7: field too long
        b'{"id": "8", "text": "ok", "label": "maybe"}',  # row 8: unknown label
        b'{"text": "no id"}',  # row 9: missing id
        b'{"id": "10", "text": broken}',  # row 10: malformed JSON
        b'{"id": "11", "text": "nul \\u0000 here"}',  # row 11: NUL character
        b'{"id": "' + b"i" * 256 + b'", "text": "long id"}',  # row 12: id too long
        b'{"id": "13", "text": "two", "label": ["pos", "neg"]}',  # row 13: two labels
    ]

    # when it is validated for a single-label project
    valid, errors = check_all(
        b"\n".join(lines), "jsonl", mapping=Mapping(label="label"), limits=limits
    )

    # then row 1 is valid and every other row has exactly its error, with the right field
    assert [r.row for r in valid] == [1]
    found = {(e.row, e.field): e.reason for e in errors}
    assert len(errors) == len(found) == 12
    assert found[(2, "text")] == "missing text"
    assert found[(3, "text")] == "missing text (empty)"
    assert found[(4, "id")] == "duplicate id '1': an earlier row has it"
    assert found[(5, "text")] == "text has invalid UTF-8"
    assert found[(6, "text")] == "text is 21 characters long; the limit is 20"
    assert found[(7, "note")] == "field is 9 characters long; the limit is 8"
    assert found[(8, "label")].startswith("unknown label 'maybe'; the project's labels are: ")
    assert found[(9, "id")] == "missing id"
    assert found[(10, None)].startswith("Malformed JSON: Expecting value")
    assert found[(11, "text")] == "text has a NUL character, which cannot be stored"
    assert found[(12, "id")] == "id is 256 characters long; the limit is 255"
    assert found[(13, "label")] == "2 labels given, but the project is single-label"
    # and each error knows its line in the file
    assert all(e.line == e.row for e in errors)


def test_invalid_utf8_in_a_csv_metadata_column_names_that_column():
    data = b"id,text,source\n1,fine,ok\n2,also fine,caf\xe9\n"

    valid, errors = check_all(data, "csv")

    assert [r.row for r in valid] == [1]
    assert errors == [RowError(2, "source", "field has invalid UTF-8", 3)]


def test_a_row_with_several_problems_reports_them_all():
    _, errors = check_all(
        '{"id": "", "text": "", "label": "nope"}\n', "jsonl", mapping=Mapping(label="label")
    )

    assert {e.field for e in errors} == {"id", "text", "label"}


def test_explicit_id_column_makes_every_row_need_an_id_and_default_uses_id_if_present():
    # an explicit id column
    _, errors = check_all(
        '{"key": "a", "text": "x"}\n{"text": "y"}\n', "jsonl", mapping=Mapping(id="key")
    )
    assert [(e.row, e.field, e.reason) for e in errors] == [(2, "key", "missing id")]

    # no id column given, but the first object has "id": it is used for the whole file
    _, errors = check_all('{"id": "a", "text": "x"}\n{"text": "y"}\n', "jsonl")
    assert [(e.row, e.field) for e in errors] == [(2, "id")]

    # a CSV without an "id" column: derived ids
    valid, errors = check_all("text,other\nx,1\n", "csv")
    assert errors == []
    assert valid[0].id_derived


def test_integer_ids_and_numeric_texts_are_accepted_as_strings():
    valid, errors = check_all('[{"id": 42, "text": 3.5}]', "json")

    assert errors == []
    assert (valid[0].external_id, valid[0].text) == ("42", "3.5")


@pytest.mark.parametrize(
    ("value", "multi_label", "expected"),
    [
        ("pos", False, (["pos"], None)),
        ("", False, ([], None)),
        (None, False, ([], None)),
        (" neg ", False, (["neg"], None)),
        ('["pos"]', False, (["pos"], None)),
        (["pos", "neg"], True, (["pos", "neg"], None)),
        ("pos|neg", True, (["pos", "neg"], None)),
        ('["neg", "pos", "neg"]', True, (["neg", "pos"], None)),
        ("a|b", True, (["a|b"], None)),  # a label that contains the delimiter is not split
        ("pos|neg", False, ([], "unknown label 'pos|neg'")),
        ('["pos", 1.5]', True, ([], "labels must be strings, got a number")),
        ({"x": 1}, True, ([], "labels must be a string or a list of strings, got")),
        ("[oops", True, ([], "are not a valid JSON list")),
    ],
)
def test_parse_labels(value, multi_label, expected):
    labels, reason = parse_labels(
        value, allowed=frozenset(["pos", "neg", "a|b"]), multi_label=multi_label
    )

    assert labels == expected[0]
    if expected[1] is None:
        assert reason is None
    else:
        assert expected[1] in reason


def test_csv_header_errors_name_the_missing_column():
    errors = csv_header_errors(["id", "body"], Mapping(label="gold"))

    assert [(e.row, e.line, e.field) for e in errors] == [(None, 1, "text"), (None, 1, "gold")]
    assert "not in the header (columns: 'id', 'body')" in errors[0].reason
    assert csv_header_errors(["text", "text"], Mapping())[0].reason.startswith(
        "The header names column 'text' twice"
    )


def test_mapping_from_user_input():
    assert Mapping.from_dict({"text": "body", "id": "", "label": None}) == Mapping(text="body")
    with pytest.raises(ValueError, match="Unknown mapping key"):
        Mapping.from_dict({"txt": "body"})
    with pytest.raises(ValueError, match="different columns"):
        Mapping.from_dict({"text": "a", "id": "a"})
    with pytest.raises(ValueError, match="one character"):
        Mapping.from_dict({"delimiter": ";;"})


def test_error_report_counts_everything_and_keeps_the_first_thousand():
    report = ErrorReport()
    for row in range(1, 1502):
        report.add([RowError(row, "text", "missing text"), RowError(row, "id", "missing id")])
    report.add_fatal(RowError(1502, None, "The CSV cannot be read from here on"))

    assert report.invalid_rows == 1501
    assert report.error_count == 3003
    assert len(report.as_dicts()) == MAX_REPORTED_ERRORS
    assert report.as_dicts()[0] == {
        "row": 1,
        "line": None,
        "field": "text",
        "reason": "missing text",
    }
    assert report.as_dicts()[-1]["reason"] == "The CSV cannot be read from here on"
