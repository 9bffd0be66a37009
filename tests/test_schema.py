"""The committed JSON Schema is the code's, and what the pipeline emits validates against it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema

from tasks.record import ArticleRecord, DeadLetter, Entity, json_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema" / "record.schema.json"


def committed_schema() -> dict[str, object]:
    """The schema file as committed."""
    loaded: dict[str, object] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def validate_record(document: dict[str, object]) -> None:
    """Raise if ``document`` is not a valid record by the committed schema."""
    jsonschema.Draft202012Validator(committed_schema()).validate(document)


def validate_dead_letter(document: dict[str, object]) -> None:
    """Raise if ``document`` is not a valid dead letter by the committed schema."""
    schema = committed_schema()
    letter_schema = {"$ref": "#/$defs/DeadLetter", "$defs": schema["$defs"]}
    jsonschema.Draft202012Validator(letter_schema).validate(document)


def test_committed_schema_is_the_code_schema() -> None:
    assert committed_schema() == json.loads(json.dumps(json_schema())), (
        "refresh it: ingest schema > schema/record.schema.json, and note the change in schema/CHANGELOG.md"
    )


def test_schema_rejects_what_is_not_a_record() -> None:
    good = ArticleRecord(
        id="a" * 32,
        url="https://example.org/a",
        entities=[Entity(text="Paris", label="LOC", count=1, first_offset=0, method="rule:x")],
    ).model_dump(mode="json")
    validate_record(good)
    for broken in ({**good, "entities": [{"text": "x", "label": "PLACE"}]}, {"url": "u"}):
        try:
            validate_record(broken)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"accepted {broken}")
    letter = DeadLetter(
        id=None,
        url="x",
        batch="b",
        stage="fetch",
        reason="bad_url",
        error="e",
        attempts=1,
        failed_at=datetime.now(UTC),
    ).model_dump(mode="json")
    validate_dead_letter(letter)
