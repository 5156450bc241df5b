"""import(export(c)) == c (issue 15): for every contract in contracts/ and for generated contracts (hypothesis), an
exported ODCS document validates against the standard's schema and imports back to the same contract, with the same
descriptions and no metadata; and the ODCS examples survive import -> export -> import."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlvault.contracts.schema import TYPES, ContractError, load_all, parse_contract
from mlvault.trust.producers import ID_PATTERN
from mlvault_tools.contract_file import Descriptions, contract_document, contract_text, read_contract
from mlvault_tools.odcs_export import export_odcs, export_text
from mlvault_tools.odcs_import import import_odcs
from mlvault_tools.odcs_map import load_yaml
from tests.unit.odcs_schema import EXAMPLES, schema_errors

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"


def round_trip(contract, descriptions: Descriptions):
    """export -> YAML text -> import: the imported contract, and the exported document."""
    doc, warnings = export_odcs(contract, descriptions)
    assert warnings == []
    text = export_text(doc, "round trip")
    assert schema_errors(load_yaml(text)) == []
    return import_odcs(text, dataset=contract.dataset, source="exported.odcs.yaml"), doc


@pytest.mark.parametrize("dataset", sorted(load_all(CONTRACTS)))
def test_every_shipped_contract_round_trips(dataset):
    contract, descriptions = read_contract(CONTRACTS, dataset)
    imported, doc = round_trip(contract, descriptions)
    assert imported.contract == contract
    assert Descriptions.of(imported.document) == descriptions
    assert imported.metadata is None  # nothing beyond the contract: no metadata file
    assert imported.document == contract_document(contract, descriptions)  # the canonical JSON
    again, doc_again = round_trip(imported.contract, Descriptions.of(imported.document))
    assert (again.document, doc_again) == (imported.document, doc)  # a fixed point


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.odcs.yaml")))
def test_the_examples_survive_import_export_import(example):
    first = import_odcs((EXAMPLES / example).read_text(), dataset="example", source=example)
    doc, warnings = export_odcs(first.contract, Descriptions.of(first.document), first.metadata)
    assert warnings == []
    assert schema_errors(doc) == []
    second = import_odcs(export_text(doc, "again"), dataset="example", source=example)
    assert second.contract == first.contract
    assert second.document == first.document
    strip = lambda meta: {k: v for k, v in meta.items() if k != "apiVersion"}  # noqa: E731 - the source's version
    assert strip(second.metadata) == strip(first.metadata)


def test_the_canonical_json_is_what_the_library_parses():
    for dataset in load_all(CONTRACTS):
        contract, descriptions = read_contract(CONTRACTS, dataset)
        document = contract_document(contract, descriptions)
        assert parse_contract(json.loads(contract_text(document))) == contract


# --- generated contracts --------------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
PATTERNS = ("[a-z]{2}-[0-9]{2}", "ev-[0-9a-f]{8}", "(?s:.{0,5})", "a|b", "(a)(b)?", "^x$", "[^,]*", "\\d+\\.\\d+")
FLOATS = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
SCREENING = {
    "feature_psi": st.floats(0.01, 5),
    "label_psi": st.floats(0.01, 5),
    "parity_increase": st.floats(0.01, 1),
    "label_flip": st.floats(0.001, 0.9),
    "action": st.sampled_from(["hold", "reject"]),
    "baseline_rows": st.integers(1, 10**6),
    "min_rows": st.integers(1, 10**4),
}


@st.composite
def columns(draw) -> list[dict[str, Any]]:
    names = draw(st.lists(TEXT, min_size=1, max_size=6, unique=True))
    out = []
    for name in names:
        type_ = draw(st.sampled_from(TYPES))
        column: dict[str, Any] = {"name": name, "type": type_}
        for flag in ("nullable", "required"):
            if draw(st.booleans()):
                column[flag] = draw(st.booleans())
        integer, numeric = type_ in ("int32", "int64"), type_.startswith(("int", "float"))
        if numeric and draw(st.booleans()):
            bounds = sorted(draw(st.lists(st.integers(-(10**9), 10**9) if integer else FLOATS, min_size=2, max_size=2)))
            column.update(dict(zip(("min", "max"), bounds, strict=True)))
            if draw(st.booleans()):
                del column[draw(st.sampled_from(["min", "max"]))]
        values = {
            "string": TEXT,
            "bool": st.booleans(),
            "int32": st.integers(-(2**31), 2**31 - 1),
            "int64": st.integers(-(2**63), 2**63 - 1),
            "float32": FLOATS,
            "float64": FLOATS,
        }.get(type_)
        if values is not None and draw(st.booleans()):
            column["allowed"] = draw(st.lists(values, min_size=1, max_size=4, unique=True))
        if type_ == "string" and draw(st.booleans()):
            column["pattern"] = draw(st.sampled_from(PATTERNS))
        unique = draw(st.sampled_from([None, False, True, "increasing"]))
        if (
            unique is not None
            and not (unique == "increasing" and not (numeric or type_ in ("date32", "timestamp[ms]")))
            and not (unique is True and type_ == "bool")
        ):
            column["unique"] = unique
        if draw(st.booleans()):
            column["description"] = draw(TEXT)
        out.append(column)
    return out


@st.composite
def contracts(draw) -> dict[str, Any]:
    cols = draw(columns())
    names = [c["name"] for c in cols]
    fmt = draw(st.sampled_from(["csv", "parquet", "jsonl"]))
    data: dict[str, Any] = {
        "dataset": draw(st.from_regex(ID_PATTERN, fullmatch=True)),
        "version": draw(st.text(string.ascii_letters + string.digits + ".-", min_size=1, max_size=8)),
        "format": fmt,
        "columns": cols,
    }
    if draw(st.booleans()):
        data["description"] = draw(TEXT)
    if fmt == "csv":
        data["csv"] = {
            "delimiter": draw(st.sampled_from([",", ";", "|", "\t"])),
            "null_values": draw(st.lists(st.sampled_from(["", "NA", "null", "-", "yes"]), unique=True)),
            "formula_injection": draw(st.sampled_from(["reject", "allow"])),
        }
    low = draw(st.integers(0, 100))
    data["rows"] = {"min": low} | ({"max": low + draw(st.integers(0, 10**6))} if draw(st.booleans()) else {})
    if any(c.get("unique") is True for c in cols):
        data["rows"]["max"] = min(data["rows"].get("max", 1000), 10**6) or 1
        data["max_bytes"] = draw(st.integers(1, 10**8))
    elif draw(st.booleans()):
        data["max_bytes"] = draw(st.integers(1, 2**40))
    forbidden = draw(st.lists(TEXT.filter(lambda n: n not in names), max_size=3, unique=True))
    if forbidden:
        data["forbidden_columns"] = forbidden
    if draw(st.booleans()):
        data["allow_extra_columns"] = draw(st.booleans())
    if draw(st.booleans()):
        data["label"] = draw(st.sampled_from(names))
    if draw(st.booleans()):
        data["protected_attributes"] = draw(st.lists(st.sampled_from(names), unique=True))
    screening = {k: draw(v) for k, v in SCREENING.items() if draw(st.booleans())}
    if screening:
        data["screening"] = screening
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=contracts())
def test_generated_contracts_round_trip(data):
    try:
        contract = parse_contract(data)
    except ContractError:
        assume(False)
    descriptions = Descriptions.of(data)
    imported, _ = round_trip(contract, descriptions)
    assert imported.contract == contract
    assert Descriptions.of(imported.document) == descriptions
    assert imported.metadata is None
