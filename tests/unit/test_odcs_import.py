"""`mlvault contract import` (issue 15): ODCS v3 documents written from the standard's documentation become mlvault
contracts; their metadata is kept next to the contract; what does not map is refused with the element's path and
what is supported (exit 1), every such element at once, and nothing is written."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from mlvault.contracts.schema import load_contract, parse_contract
from mlvault.contracts.validate import validate_file
from mlvault.errors import VerificationError
from mlvault_tools.cli import main
from mlvault_tools.contract_errors import OdcsError, OdcsReason
from mlvault_tools.odcs_import import import_odcs
from mlvault_tools.odcs_map import load_yaml
from tests.unit.odcs_schema import EXAMPLES, schema_errors

ORDERS = EXAMPLES / "orders-v3.1.0.odcs.yaml"
PAYMENTS = EXAMPLES / "payments-v3.0.2.odcs.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# --- the standard's documents, imported ----------------------------------------------------------------------


def test_the_examples_are_valid_odcs():
    for path in (ORDERS, PAYMENTS):
        doc = load_yaml(path.read_text())
        assert schema_errors(doc) == [], path


def test_a_v310_document_maps_to_the_contract(capsys, tmp_path):
    code, out, _ = run(capsys, "contract", "import", str(ORDERS), "--dataset", "orders", "--contracts", str(tmp_path))
    assert code == 0, out
    data = json.loads((tmp_path / "orders.json").read_text())
    assert data == {
        "dataset": "orders",
        "version": "2.1.0",
        "description": "One row per web shop order.",
        "format": "csv",  # from servers[0].format
        "csv": {
            "delimiter": ",",
            "header": True,
            "encoding": "utf-8",
            "null_values": [""],
            "formula_injection": "reject",
        },
        "max_bytes": 134217728,  # customProperty mlvaultMaxBytes
        "rows": {"min": 1, "max": 5000000},  # rowCount rules
        "columns": [
            # primaryKey -> unique; varchar(12) implied by the anchored pattern, which loses its anchors
            {"name": "order_id", "type": "string", "pattern": "ORD-[0-9]{8}", "unique": True},
            {"name": "ordered_at", "type": "timestamp[ms]"},
            # required: false -> nullable; exclusiveMaximum 131 on an integer -> max 130
            {"name": "customer_age", "type": "int64", "nullable": True, "min": 18, "max": 130},
            {"name": "amount", "type": "float64", "min": 0, "max": 100000},
            # invalidValues/validValues -> allowed; `no` stays a string (YAML 1.2)
            {"name": "status", "type": "string", "allowed": ["placed", "shipped", "delivered", "no"]},
            {"name": "gift", "type": "bool", "nullable": True},  # no `required`: ODCS's default, may be null
            {
                "name": "coupon",
                "type": "string",
                "nullable": True,
                "unique": True,
                "description": "The coupon code, when one was used.",
            },
        ],
    }
    assert parse_contract(data) == load_contract(tmp_path, "orders")
    assert "imported" in out
    assert "note: format csv: from servers[].format" in out
    assert "nullable (no `required`: ODCS's default is that a property may be null): gift, coupon" in out


def test_metadata_is_kept_next_to_the_contract_not_dropped(tmp_path):
    assert main(["contract", "import", str(ORDERS), "--dataset", "orders", "--contracts", str(tmp_path)]) == 0
    kept = tmp_path / "orders.odcs-metadata.yaml"
    assert kept.read_text().startswith("# ODCS metadata of")
    meta = yaml.safe_load(kept.read_text())
    assert meta["apiVersion"] == "v3.1.0"
    assert meta["contract"]["id"] == "0b6f5a52-9c1e-4a5e-8c47-2f8d3e6a1b90"
    assert meta["contract"]["team"]["members"][0] == {"username": "aowner", "name": "Ada Owner", "role": "Owner"}
    assert meta["contract"]["description"]["purpose"].startswith("Orders placed")
    assert meta["contract"]["slaProperties"][0] == {"property": "latency", "value": 1, "unit": "d"}
    assert meta["contract"]["customProperties"] == [{"property": "refRulesetName", "value": "retail.orders"}]
    assert meta["object"]["physicalName"] == "orders_v2"
    assert meta["properties"]["order_id"]["classification"] == "internal"
    assert meta["properties"]["order_id"]["primaryKey"] is True
    assert meta["properties"]["customer_age"] == {"classification": "confidential"}
    assert meta["properties"]["ordered_at"]["logicalTypeOptions"] == {
        "format": "yyyy-MM-dd HH:mm:ss",
        "defaultTimezone": "UTC",
    }
    # a mapped rule's annotations, by what it became
    assert meta["properties"]["status"]["quality"] == [
        {"mapsTo": "allowed", "id": "status_valid", "dimension": "conformity", "severity": "error"}
    ]
    assert meta["object"]["quality"] == [
        {"mapsTo": "rows.min", "id": "orders_row_count_min", "name": "At least one order a day"}
    ]
    # never read as a contract, never shipped: not *.json
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["orders.json"]


def test_a_v302_document_in_the_v30_forms(tmp_path, capsys):
    code, out, _ = run(
        capsys, "contract", "import", str(PAYMENTS), "--dataset", "payments", "--contracts", str(tmp_path)
    )
    assert code == 0, out
    data = json.loads((tmp_path / "payments.json").read_text())
    assert data["format"] == "jsonl"  # servers: format json, delimiter new_line
    assert data["rows"] == {"min": 1, "max": 1000000}  # mustBeBetween [0, 1000001]: exclusive, as ODCS defines it
    assert data["columns"] == [
        {"name": "payment_id", "type": "int64", "min": 1, "unique": "increasing"},  # exclusiveMinimum: true
        {"name": "currency", "type": "string", "allowed": ["EUR", "USD", "GBP"]},  # rule: validValues
        {"name": "amount", "type": "float64"},  # physicalType float is ambiguous; format f64 decides
        {"name": "paid_on", "type": "date32", "nullable": True},
        {"name": "reference", "type": "string", "nullable": True, "pattern": "(?s:.{0,18})", "unique": True},
    ]
    assert "mustBeBetween [0, 1000001]: exclusive" in out
    assert "date32 in JSON Lines (paid_on)" in out  # a limit of the reader, said when it matters
    meta = yaml.safe_load((tmp_path / "payments.odcs-metadata.yaml").read_text())
    assert meta["contract"]["team"][1] == {"username": "mhopper", "role": "Owner", "dateIn": "2022-10-01"}
    assert meta["properties"]["reference"]["quality"] == [{"mapsTo": "unique", "name": "No reference twice"}]


def test_the_imported_contract_checks_files(tmp_path):
    assert main(["contract", "import", str(ORDERS), "--dataset", "orders", "--contracts", str(tmp_path)]) == 0
    contract = load_contract(tmp_path, "orders")
    header = "order_id,ordered_at,customer_age,amount,status,gift,coupon\n"
    good = tmp_path / "good.csv"
    good.write_text(header + "ORD-00000001,2024-03-01 10:00:00,,19.5,placed,true,\n")
    assert validate_file(good, contract).rows == 1
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "ORD-1,2024-03-01 10:00:00,40,19.5,lost,,X\n")
    with pytest.raises(VerificationError, match="PATTERN_MISMATCH"):
        validate_file(bad, contract)


def test_an_existing_contract_is_not_overwritten_without_force(tmp_path, capsys):
    argv = ["contract", "import", str(ORDERS), "--dataset", "orders", "--contracts", str(tmp_path)]
    assert main(argv) == 0
    (tmp_path / "orders.json").write_text("reviewed")
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert "exists" in err
    assert "--force" in err
    assert (tmp_path / "orders.json").read_text() == "reviewed"
    assert main([*argv, "--force"]) == 0


def test_several_objects_need_a_choice(tmp_path, capsys):
    doc = load_yaml(ORDERS.read_text())
    doc["schema"].append({**copy.deepcopy(doc["schema"][0]), "name": "returns"})
    path = tmp_path / "two.odcs.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, _, err = run(capsys, "contract", "import", str(path), "--dataset", "orders", "--contracts", str(tmp_path))
    assert code == 1
    assert "--object NAME" in err
    assert "['orders', 'returns']" in err
    assert (
        main(
            [
                "contract",
                "import",
                str(path),
                "--dataset",
                "returns",
                "--object",
                "returns",
                "--contracts",
                str(tmp_path),
            ]
        )
        == 0
    )


# --- what does not map: refused, with the path and what is supported ---------------------------------------

BASE: dict[str, Any] = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "t-1",
    "version": "1",
    "status": "active",
    "schema": [
        {
            "name": "t",
            "customProperties": [{"property": "mlvaultFormat", "value": "csv"}],
            "quality": [{"metric": "rowCount", "mustBeLessOrEqualTo": 1000}],
            "properties": [
                {"name": "id", "logicalType": "integer", "required": True},
                {"name": "label", "logicalType": "string", "required": True},
            ],
        }
    ],
}


def imported(doc: dict[str, Any] | str, **options: Any):
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    return import_odcs(text, dataset="tt", source="t.odcs.yaml", **options)


def refused(doc: dict[str, Any] | str, **options: Any) -> OdcsError:
    with pytest.raises(OdcsError) as err:
        imported(doc, **options)
    return err.value


def with_(path: str, value: Any) -> dict[str, Any]:
    """BASE with `value` at a dotted path ("schema.0.properties.1.logicalType"); None deletes it."""
    doc = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = int(last) if isinstance(node, list) else last
    if value is None:
        del node[key]
    elif isinstance(node, list) and key == len(node):
        node.append(value)
    else:
        node[key] = value
    return doc


def prop(**fields: Any) -> dict[str, Any]:
    return with_("schema.0.properties.1", {"name": "label", "logicalType": "string", "required": True, **fields})


def test_the_base_document_imports():
    assert [c.name for c in imported(BASE).contract.columns] == ["id", "label"]


P = "schema[0].properties[1]"
REFUSALS = {
    # not ODCS
    "not yaml": ("a: [1, 2", OdcsReason.NOT_ODCS, "", "not YAML"),
    "a list": ("- 1\n- 2\n", OdcsReason.NOT_ODCS, "", "not a mapping"),
    "duplicate keys": ("apiVersion: v3.1.0\nkind: DataContract\nkind: X\n", OdcsReason.NOT_ODCS, "", "duplicate key"),
    "datacontract.com": (
        {"dataContractSpecification": "1.1.0", "id": "x", "models": {}},
        OdcsReason.NOT_ODCS,
        "dataContractSpecification",
        "datacontract export --format odcs",
    ),
    "no kind": (with_("kind", None), OdcsReason.NOT_ODCS, "kind", "kind: DataContract"),
    "unknown root field": (with_("owner", "me"), OdcsReason.NOT_ODCS, "owner", "not a field of ODCS v3.1.0"),
    "version a number": (with_("version", 1.0), OdcsReason.NOT_ODCS, "version", "quote it"),
    "no id": (with_("id", None), OdcsReason.NOT_ODCS, "id", "ODCS requires id"),
    "unknown property field": (prop(nullable=True), OdcsReason.NOT_ODCS, f"{P}.nullable", "not a property field"),
    "unknown mlvault property": (
        with_("schema.0.customProperties.0", {"property": "mlvaultColour", "value": 1}),
        OdcsReason.NOT_ODCS,
        "schema[0].customProperties[0].property",
        "known: ['mlvaultAllowExtraColumns'",
    ),
    "mlvault at the root": (
        with_("customProperties", [{"property": "mlvaultLabel", "value": "id"}]),
        OdcsReason.NOT_ODCS,
        "customProperties[0].property",
        "belong to the schema object (schema[0].customProperties)",
    ),
    "option of another type": (
        prop(logicalTypeOptions={"minimum": 1}),
        OdcsReason.NOT_ODCS,
        f"{P}.logicalTypeOptions.minimum",
        "options: ['format', 'maxLength'",
    ),
    # versions
    "v3.2.0": (with_("apiVersion", "v3.2.0"), OdcsReason.UNSUPPORTED_VERSION, "apiVersion", "v3.0.2, v3.1.0"),
    "v3.0.1": (with_("apiVersion", "v3.0.1"), OdcsReason.UNSUPPORTED_VERSION, "apiVersion", "set apiVersion: v3.0.2"),
    "v2.2.2": (with_("apiVersion", "v2.2.2"), OdcsReason.UNSUPPORTED_VERSION, "apiVersion", "migrate it to v3"),
    # types
    "time": (prop(logicalType="time"), OdcsReason.NO_TYPE_MAPPING, f"{P}.logicalType", "int32 (int, integer"),
    "array": (
        prop(logicalType="array", items={"logicalType": "string"}),
        OdcsReason.NO_TYPE_MAPPING,
        f"{P}.logicalType",
        "flat values",
    ),
    "decimal": (
        prop(logicalType="number", physicalType="decimal(10,2)"),
        OdcsReason.NO_TYPE_MAPPING,
        f"{P}.physicalType",
        "has no mlvault column type; supported: int32",
    ),
    "ambiguous float": (
        prop(logicalType="number", physicalType="FLOAT"),
        OdcsReason.NO_TYPE_MAPPING,
        f"{P}.physicalType",
        "ambiguous",
    ),
    "types disagree": (prop(physicalType="bigint"), OdcsReason.NO_TYPE_MAPPING, f"{P}.physicalType", "disagree"),
    "no type": (prop(logicalType=None), OdcsReason.NO_TYPE_MAPPING, P, "no logicalType and no physicalType"),
    "unsigned": (
        prop(logicalType="integer", logicalTypeOptions={"format": "u64"}),
        OdcsReason.NO_TYPE_MAPPING,
        f"{P}.logicalTypeOptions.format",
        "i32 (int32)",
    ),
    "microseconds": (
        prop(logicalType="timestamp", physicalType="timestamp(6)"),
        OdcsReason.NO_TYPE_MAPPING,
        f"{P}.physicalType",
        "the parameter (6)",
    ),
    # rules mlvault cannot enforce
    "sql": (
        prop(quality=[{"type": "sql", "query": "SELECT 1", "mustBe": 1}]),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.quality[0].type",
        "mlvault enforces library metrics",
    ),
    "text": (
        prop(quality=[{"type": "text", "description": "verified"}]),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.quality[0].type",
        "a text rule",
    ),
    "custom": (
        prop(quality=[{"type": "custom", "engine": "soda", "implementation": "x"}]),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.quality[0].type",
        "a custom rule",
    ),
    "tolerance": (
        prop(
            quality=[
                {
                    "metric": "invalidValues",
                    "arguments": {"validValues": ["a"]},
                    "mustBeLessOrEqualTo": 5,
                    "unit": "percent",
                }
            ]
        ),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.quality[0].mustBeLessOrEqualTo",
        "only zero tolerance maps (mustBe: 0)",
    ),
    "warning only": (
        prop(quality=[{"metric": "nullValues", "mustBe": 0, "severity": "warning"}]),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.quality[0].severity",
        "a rule that only reports cannot be expressed",
    ),
    "unknown metric": (
        prop(quality=[{"metric": "freshness", "mustBe": 0}]),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.quality[0].metric",
        "nullValues, missingValues",
    ),
    "missing values": (
        prop(quality=[{"metric": "missingValues", "arguments": {"missingValues": [None, "N/A"]}, "mustBe": 0}]),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.quality[0].arguments.missingValues",
        "--null-value",
    ),
    "composite duplicates": (
        with_(
            "schema.0.quality",
            [{"metric": "duplicateValues", "mustBe": 0, "arguments": {"properties": ["id", "label"]}}],
        ),
        OdcsReason.NOT_ENFORCEABLE,
        "schema[0].quality[0].arguments.properties",
        "single-column uniqueness",
    ),
    "composite key": (
        with_(
            "schema.0.properties",
            [
                {"name": "a", "logicalType": "integer", "primaryKey": True},
                {"name": "b", "logicalType": "integer", "primaryKey": True},
            ],
        ),
        OdcsReason.NOT_ENFORCEABLE,
        "schema[0].properties",
        "composite primary key (a, b)",
    ),
    "row count not": (
        with_("schema.0.quality.0", {"metric": "rowCount", "mustNotBe": 0}),
        OdcsReason.NOT_ENFORCEABLE,
        "schema[0].quality[0].mustNotBe",
        "below and above",
    ),
    "multipleOf": (
        with_("schema.0.properties.0.logicalTypeOptions", {"multipleOf": 5}),
        OdcsReason.NOT_ENFORCEABLE,
        "schema[0].properties[0].logicalTypeOptions.multipleOf",
        "ranges",
    ),
    "string format": (
        prop(logicalTypeOptions={"format": "email"}),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.logicalTypeOptions.format",
        "a pattern",
    ),
    "float exclusive": (
        prop(logicalType="number", logicalTypeOptions={"exclusiveMinimum": 0}),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.logicalTypeOptions.exclusiveMinimum",
        "inclusive",
    ),
    "date bounds": (
        prop(logicalType="date", logicalTypeOptions={"minimum": "2020-01-01"}),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.logicalTypeOptions.minimum",
        "no bounds on dates",
    ),
    "zoned timestamp": (
        prop(logicalType="timestamp", logicalTypeOptions={"timezone": True}),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.logicalTypeOptions.timezone",
        "no zone",
    ),
    "zoned format": (
        prop(logicalType="timestamp", logicalTypeOptions={"format": "yyyy-MM-ddTHH:mm:ssZ"}),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.logicalTypeOptions.format",
        "without a zone",
    ),
    "foreign key": (
        prop(relationships=[{"to": "other.id"}]),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.relationships",
        "foreign key",
    ),
    "lookahead": (
        prop(logicalTypeOptions={"pattern": "^(?=a)a+$"}),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.logicalTypeOptions.pattern",
        "RE2",
    ),
    "pattern and length": (
        prop(physicalType="varchar(2)", logicalTypeOptions={"pattern": "^[A-Z]+$"}),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.physicalType",
        "fold the length into the pattern",
    ),
    "two patterns": (
        prop(
            logicalTypeOptions={"pattern": "^a+$"},
            quality=[{"metric": "invalidValues", "arguments": {"pattern": "^b+$"}, "mustBe": 0}],
        ),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.quality[0].arguments.pattern",
        "one per column",
    ),
    "renamed column": (prop(physicalName="lbl"), OdcsReason.NOT_ENFORCEABLE, f"{P}.physicalName", "by name"),
    "dates allowed": (
        prop(
            logicalType="date",
            quality=[{"metric": "invalidValues", "arguments": {"validValues": ["2020-01-01"]}, "mustBe": 0}],
        ),
        OdcsReason.NOT_ENFORCEABLE,
        f"{P}.quality[0].arguments.validValues",
        "numbers, strings and booleans",
    ),
    # maps, but not to a valid contract
    "a YAML boolean": (
        "apiVersion: v3.1.0\nkind: DataContract\nid: t\nversion: '1'\nstatus: active\nschema:\n- name: t\n"
        "  customProperties: [{property: mlvaultFormat, value: csv}]\n  properties:\n"
        "  - {name: ok, logicalType: string, quality: [{metric: invalidValues, mustBe: 0,\n"
        "     arguments: {validValues: [yes, true]}}]}\n",
        OdcsReason.INVALID_CONTRACT,
        "schema[0].properties[0].quality[0].arguments.validValues[1]",
        "True is not a string value (a YAML boolean: quote it)",
    ),
    "no format": (with_("schema.0.customProperties", None), OdcsReason.INVALID_CONTRACT, "servers", "--format"),
    "screening": (
        with_("schema.0.customProperties.1", {"property": "mlvaultScreening", "value": {"label_flip": 2}}),
        OdcsReason.INVALID_CONTRACT,
        "",
        "label_flip is a share of labels, below 1",
    ),
    "unbounded unique text": (prop(unique=True), OdcsReason.INVALID_CONTRACT, "", "needs max_bytes"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_what_does_not_map_is_refused_with_its_path(case):
    doc, reason, path, fragment = REFUSALS[case]
    err = refused(doc)
    assert err.reason == reason, err
    where = f"t.odcs.yaml: {path}: " if path else "t.odcs.yaml: "
    assert err.detail.startswith(where) or f"  {reason} {path}: " in err.detail, err.detail
    assert fragment in err.detail, err.detail


def test_every_problem_is_named_at_once():
    doc = copy.deepcopy(BASE)
    doc["schema"][0]["properties"] += [
        {"name": "t", "logicalType": "time"},
        {"name": "s", "logicalType": "string", "quality": [{"type": "sql", "query": "SELECT 1", "mustBe": 1}]},
        {"name": "n", "logicalType": "number", "logicalTypeOptions": {"multipleOf": 2}},
    ]
    err = refused(doc)
    assert "3 elements cannot be imported (nothing written)" in err.detail
    assert "NO_TYPE_MAPPING schema[0].properties[2].logicalType" in err.detail
    assert "NOT_ENFORCEABLE schema[0].properties[3].quality[0].type" in err.detail
    assert "NOT_ENFORCEABLE schema[0].properties[4].logicalTypeOptions.multipleOf" in err.detail


def test_the_cli_refuses_with_exit_3_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "bad.odcs.yaml"
    path.write_text(yaml.safe_dump(prop(logicalType="time")))
    code, out, _ = run(capsys, "contract", "import", str(path), "--dataset", "tt", "--contracts", str(tmp_path / "c"))
    assert code == 3
    assert out.startswith(f"REFUSED NO_TYPE_MAPPING: {path}: schema[0].properties[1].logicalType: time: ")
    assert "logicalType integer, number, string, boolean, date or timestamp" in out
    assert not (tmp_path / "c").exists()


def test_yaml_is_read_strictly():
    # YAML 1.1 would turn these into booleans, 8 and a date: allowed values must stay what was written
    doc = load_yaml("a: [yes, no, on, off, 010, 2024-01-01, 1:30, 0x1f, 1e3, true]")
    assert doc == {"a": ["yes", "no", "on", "off", 10, "2024-01-01", "1:30", 31, 1000.0, True]}
    with pytest.raises(yaml.YAMLError, match="duplicate key 'a'"):
        load_yaml("a: 1\na: 2\n")
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: !!python/object:os.system ls\n")  # a safe loader


@pytest.mark.parametrize(
    ("options", "rows"),
    [
        ({"mustBe": 10}, {"min": 10, "max": 10}),
        ({"mustBeGreaterThan": 9}, {"min": 10}),
        ({"mustBeGreaterOrEqualTo": 9.5}, {"min": 10}),
        ({"mustBeLessThan": 11}, {"min": 1, "max": 10}),
        ({"mustBeLessOrEqualTo": 10.5}, {"min": 1, "max": 10}),
        ({"mustBeBetween": [9, 11]}, {"min": 10, "max": 10}),  # exclusive, as the standard defines it
    ],
)
def test_row_count_operators(options, rows):
    doc = with_("schema.0.quality.0", {"metric": "rowCount", **options})
    assert imported(doc).document["rows"] == rows


def test_zero_tolerance_forms_and_their_checks():
    quality = [
        {"metric": "nullValues", "mustBeLessThan": 1},
        {"metric": "duplicateValues", "mustBeLessOrEqualTo": 0, "unit": "percent"},
        {"metric": "invalidValues", "arguments": {"validValues": ["a", "b", "c"]}, "mustBe": 0},
        {"metric": "invalidValues", "arguments": {"validValues": ["b", "c", "d"]}, "mustBe": 0},  # both hold
        {"metric": "missingValues", "arguments": {"missingValues": [None, ""]}, "mustBe": 0},  # '' is a CSV null
    ]
    doc = prop(required=False, quality=quality)
    doc["schema"][0]["customProperties"].append({"property": "mlvaultMaxBytes", "value": 1000})
    column = imported(doc).document["columns"][1]
    assert column == {"name": "label", "type": "string", "unique": True, "allowed": ["b", "c"]}


def test_null_tokens_are_for_csv():
    doc = with_("schema.0.customProperties.0", {"property": "mlvaultFormat", "value": "parquet"})
    err = refused(doc, null_values=["NA"])
    assert err.reason == OdcsReason.INVALID_CONTRACT
    assert "--null-value applies to CSV; the format is parquet" in err.detail
    assert imported(BASE, null_values=["", "NA"]).contract.csv.null_values == ("", "NA")
