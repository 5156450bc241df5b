"""The ODCS JSON schemas shipped under tests/fixtures/odcs (the standard's own, see its README) and a validator."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures/odcs"
EXAMPLES = FIXTURES / "examples"


@cache
def validator(version: str) -> jsonschema.protocols.Validator:
    schema = json.loads((FIXTURES / f"odcs-json-schema-{version}.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(doc: dict[str, Any], version: str | None = None) -> list[str]:
    """Where and why a document does not validate against the ODCS JSON schema of its version ([] if it does)."""
    plain = json.loads(json.dumps(doc))  # what a JSON consumer sees (no tuples, only JSON types)
    errors = validator(version or doc["apiVersion"]).iter_errors(plain)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors)
