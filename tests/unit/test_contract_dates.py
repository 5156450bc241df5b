"""Dates in JSON Lines, and allowed values only where they can be compared (found by the ODCS round trip)."""

from __future__ import annotations

import io
import re

import pytest

from mlvault.contracts.schema import ContractError, parse_contract
from mlvault.contracts.validate import validate_stream
from mlvault.errors import ContractReason, VerificationError

EVENTS = {
    "dataset": "events",
    "version": "1",
    "format": "jsonl",
    "rows": {"max": 100},
    "max_bytes": 10_000,
    "columns": [{"name": "day", "type": "date32", "nullable": True}, {"name": "n", "type": "int64"}],
}


def validate(data: bytes):
    return validate_stream(io.BytesIO(data), parse_contract(EVENTS), size=len(data))


def test_an_iso_date_in_json_lines_is_a_date():
    report = validate(b'{"day": "2024-01-02", "n": 1}\n{"day": "2024-02-29", "n": 2}\n{"day": null, "n": 3}\n')
    assert report.rows == 3


@pytest.mark.parametrize(
    ("value", "shown"),
    [('"2024-02-30"', "'2024-02-30'"), ('"02/01/2024"', "'02/01/2024'"), ('"2024-1-2"', "'2024-1-2'")],
)
def test_a_date_that_is_not_an_iso_date_is_a_type_mismatch_naming_the_column_and_row(value, shown):
    with pytest.raises(VerificationError) as err:
        validate(b'{"day": "2024-01-02", "n": 1}\n{"day": ' + value.encode() + b', "n": 2}\n')
    assert err.value.reason == ContractReason.TYPE_MISMATCH
    assert err.value.detail == f"column day: value {shown} is not date32 (an ISO date YYYY-MM-DD; row 2)"


@pytest.mark.parametrize("type_", ["date32", "timestamp[ms]"])
def test_allowed_values_on_a_time_column_are_refused_when_the_contract_loads(type_):
    contract = {**EVENTS, "columns": [{"name": "day", "type": type_, "allowed": ["2024-01-01"]}]}
    with pytest.raises(
        ContractError, match=re.escape(f"allowed applies to numeric, string and bool columns, not {type_}")
    ):
        parse_contract(contract)
