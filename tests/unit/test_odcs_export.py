"""`mlvault contract export` (issue 15): every contract becomes an ODCS v3.1.0 document that validates against the
standard's JSON schema (tests/fixtures/odcs), with mlvault-only features as customProperties, and the metadata an
import kept merged back."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlvault.contracts.schema import load_all
from mlvault_tools import odcs_export
from mlvault_tools.cli import main
from mlvault_tools.contract_file import read_contract
from mlvault_tools.odcs_export import export_odcs
from mlvault_tools.odcs_map import EXPORT_VERSION, load_yaml
from tests.unit.odcs_schema import EXAMPLES, schema_errors

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
DATASETS = sorted(load_all(CONTRACTS))


def exported(dataset: str, directory: Path = CONTRACTS) -> dict:
    contract, descriptions = read_contract(directory, dataset)
    doc, warnings = export_odcs(contract, descriptions)
    assert warnings == []
    return doc


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_contract_exports_valid_odcs(dataset, capsys):
    assert main(["contract", "export", dataset, "--contracts", str(CONTRACTS)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# ODCS {EXPORT_VERSION} data contract of mlvault dataset {dataset}")
    doc = load_yaml(text)
    assert doc["apiVersion"] == EXPORT_VERSION
    assert doc["kind"] == "DataContract"
    assert schema_errors(doc) == []


def test_the_schema_check_is_not_vacuous():
    doc = exported("iris")
    broken = copy.deepcopy(doc)
    broken["owner"] = "me"  # not a field of the standard
    broken["schema"][0]["properties"][0]["logicalType"] = "int"
    broken["schema"][0]["quality"][0]["mustBe"] = 1  # two operators in one rule
    errors = schema_errors(broken)
    assert any(e.startswith(": Additional properties") or "owner" in e for e in errors), errors
    assert any("schema/0/properties/0" in e for e in errors), errors
    assert any("schema/0/quality/0" in e for e in errors), errors


def custom(element: dict) -> dict:
    return {p["property"]: p["value"] for p in element.get("customProperties", [])}


def test_the_mapping_of_iris():
    doc = exported("iris")
    (obj,) = doc["schema"]
    props = {p["name"]: p for p in obj["properties"]}
    assert props["sample_id"]["unique"] is True
    assert custom(props["sample_id"]) == {"mlvaultUnique": "increasing"}
    assert props["sample_id"]["logicalTypeOptions"] == {"minimum": 1}
    assert (props["sepal_length"]["logicalType"], props["sepal_length"]["physicalType"]) == ("number", "float64")
    assert props["sepal_length"]["required"] is True  # ODCS `required`: no nulls
    assert props["site"]["logicalTypeOptions"] == {"pattern": "^(?:[a-z]{2}-[0-9]{2})$"}  # ODCS patterns search
    assert props["notes"]["required"] is False
    assert custom(props["notes"]) == {"mlvaultRequired": False}
    assert props["species"]["quality"] == [
        {"metric": "invalidValues", "arguments": {"validValues": ["setosa", "versicolor", "virginica"]}, "mustBe": 0}
    ]
    assert obj["quality"] == [
        {"metric": "rowCount", "mustBeGreaterOrEqualTo": 1},
        {"metric": "rowCount", "mustBeLessOrEqualTo": 50000000},
    ]
    assert custom(obj) == {
        "mlvaultFormat": "csv",
        "mlvaultCsv": {
            "delimiter": ",",
            "header": True,
            "encoding": "utf-8",
            "null_values": [""],
            "formula_injection": "reject",
        },
        "mlvaultMaxBytes": 1073741824,
        "mlvaultForbiddenColumns": ["ssn", "email"],
        "mlvaultLabel": "species",
        "mlvaultProtectedAttributes": ["site"],
        "mlvaultScreening": {"parity_increase": 0.15},  # only what differs from mlvault's defaults
    }
    assert obj["description"].startswith("Iris measurements")


def test_parquet_and_json_lines_have_no_csv_dialect():
    for dataset, fmt in (("sales", "parquet"), ("events", "jsonl")):
        assert custom(exported(dataset)["schema"][0])["mlvaultFormat"] == fmt
        assert "mlvaultCsv" not in custom(exported(dataset)["schema"][0])


@pytest.mark.parametrize("example", ["orders-v3.1.0.odcs.yaml", "payments-v3.0.2.odcs.yaml"])
def test_imported_metadata_is_exported_again(tmp_path, capsys, example):
    dataset = example.split("-")[0]
    assert (
        main(["contract", "import", str(EXAMPLES / example), "--dataset", dataset, "--contracts", str(tmp_path)]) == 0
    )
    capsys.readouterr()
    out = tmp_path / "out.odcs.yaml"
    assert main(["contract", "export", dataset, "--contracts", str(tmp_path), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    doc = load_yaml(out.read_text())
    assert schema_errors(doc) == []
    source = load_yaml((EXAMPLES / example).read_text())
    for key in ("id", "name", "version", "status", "description", "team", "servers", "tags"):
        assert doc[key] == source[key], key
    props = {p["name"]: p for p in doc["schema"][0]["properties"]}
    for prop in source["schema"][0]["properties"]:
        for key in ("classification", "tags", "examples", "businessName", "primaryKey"):
            if key in prop:
                assert props[prop["name"]][key] == prop[key], (prop["name"], key)


def test_rule_annotations_come_back_on_the_rule_they_mapped_to(tmp_path):
    assert (
        main(
            [
                "contract",
                "import",
                str(EXAMPLES / "orders-v3.1.0.odcs.yaml"),
                "--dataset",
                "orders",
                "--contracts",
                str(tmp_path),
            ]
        )
        == 0
    )
    contract, descriptions = read_contract(tmp_path, "orders")
    meta = yaml.safe_load((tmp_path / "orders.odcs-metadata.yaml").read_text())
    doc, warnings = export_odcs(contract, descriptions, meta)
    assert warnings == []
    props = {p["name"]: p for p in doc["schema"][0]["properties"]}
    assert props["status"]["quality"] == [
        {
            "id": "status_valid",
            "metric": "invalidValues",
            "arguments": {"validValues": ["placed", "shipped", "delivered", "no"]},
            "mustBe": 0,
            "dimension": "conformity",
            "severity": "error",
        }
    ]
    assert props["amount"]["quality"] == [  # a nullValues rule with a description: kept as a rule
        {"description": "Every order has an amount.", "metric": "nullValues", "mustBe": 0, "dimension": "completeness"}
    ]
    assert doc["schema"][0]["quality"][0] == {
        "id": "orders_row_count_min",
        "name": "At least one order a day",
        "metric": "rowCount",
        "mustBeGreaterOrEqualTo": 1,
    }


def test_metadata_that_no_longer_matches_is_named_not_exported(tmp_path):
    contract, descriptions = read_contract(CONTRACTS, "iris")
    meta = {
        "contract": {"apiVersion": "v9", "team": {"name": "flowers"}},
        "properties": {
            "petals": {"classification": "public"},  # no such column
            "species": {"required": False, "quality": [{"mapsTo": "unique", "name": "one each"}]},
            "site": {"primaryKey": True},  # not unique in the contract
        },
    }
    doc, warnings = export_odcs(contract, descriptions, meta)
    assert doc["team"] == {"name": "flowers"}
    assert doc["apiVersion"] == EXPORT_VERSION
    assert any("metadata for column petals" in w for w in warnings)
    assert any("column species: metadata field required" in w for w in warnings)
    assert any("column species: metadata rule annotations" in w for w in warnings)
    assert any("column site: metadata primaryKey" in w for w in warnings)
    assert any("the contract: metadata field apiVersion" in w for w in warnings)
    props = {p["name"]: p for p in doc["schema"][0]["properties"]}
    assert props["species"]["required"] is True
    assert "primaryKey" not in props["site"]
    assert schema_errors(doc) == []


def test_a_field_the_mapping_does_not_know_fails_loudly(monkeypatch):
    monkeypatch.setattr(odcs_export, "COLUMN_FIELDS", odcs_export.COLUMN_FIELDS - {"pattern"})
    contract, descriptions = read_contract(CONTRACTS, "iris")
    with pytest.raises(RuntimeError, match=r"no ODCS mapping for contract field\(s\) \['pattern'\]"):
        export_odcs(contract, descriptions)


def test_out_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "iris.odcs.yaml"
    out.write_text("mine")
    assert main(["contract", "export", "iris", "--contracts", str(CONTRACTS), "--out", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "mine"
    assert main(["contract", "export", "iris", "--contracts", str(CONTRACTS), "--out", str(out), "--force"]) == 0
    assert schema_errors(load_yaml(out.read_text())) == []
