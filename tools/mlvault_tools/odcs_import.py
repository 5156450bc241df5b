"""`mlvault contract import`: an ODCS v3 document (bitol-io Open Data Contract Standard) as an mlvault contract.

Every element of the document is mapped, kept as metadata, or refused with its path (docs/contracts.md, "ODCS"):
nothing is dropped without a word. Types and checks map to the contract; descriptive fields (owner, team,
classification, tags, servers, SLA, ...) are kept in the metadata file next to it, which `mlvault contract export`
merges back; a rule mlvault cannot enforce, a type it has no column type for, or an element the standard does not
define refuses the whole document, and every such element is listed. The contract is then validated by the
library's own `parse_contract`, the one definition of a valid contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlvault.contracts.schema import Contract, ContractError, parse_contract
from mlvault_tools.contract_errors import OdcsError, OdcsReason
from mlvault_tools.contract_file import Descriptions, contract_document
from mlvault_tools.odcs_columns import ColumnRules, PropertyMapper
from mlvault_tools.odcs_map import (
    ELEMENT_FIELDS,
    KIND,
    OBJECT_PROPERTIES,
    PREFIX,
    PROPERTY_V31_FIELDS,
    SUPPORTED_VERSIONS,
    Problems,
    default_id,
    load_yaml,
)
from mlvault_tools.odcs_rules import rows_from_rules

ROOT_FIELDS = {
    "version",
    "kind",
    "apiVersion",
    "id",
    "name",
    "tenant",
    "tags",
    "status",
    "servers",
    "dataProduct",
    "description",
    "domain",
    "schema",
    "support",
    "price",
    "team",
    "roles",
    "slaDefaultElement",
    "slaProperties",
    "authoritativeDefinitions",
    "customProperties",
    "contractCreatedTs",
}
OBJECT_FIELDS = ELEMENT_FIELDS | {"logicalType", "physicalName", "dataGranularityDescription", "properties", "quality"}
SERVER_FORMATS = {"csv": "csv", "parquet": "parquet"}  # servers[].format -> mlvault format (json: see _format)


@dataclass
class Imported:
    """An imported contract: its canonical JSON, the parsed contract, the metadata to keep next to it (None: none)
    and notes for the reviewer (what was mapped, defaulted or interpreted)."""

    document: dict[str, Any]
    contract: Contract
    metadata: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)

    def metadata_summary(self) -> list[str]:
        """What the metadata holds, element by element."""
        meta = self.metadata or {}
        out = [f"{part}: {', '.join(meta[part])}" for part in ("contract", "object") if meta.get(part)]
        out += [f"{name}: {', '.join(fields)}" for name, fields in (meta.get("properties") or {}).items()]
        return out


MAX_DOCUMENT_BYTES = 16 * 2**20


def read_document(path: Path) -> str:
    """The text of an ODCS document (UTF-8, at most MAX_DOCUMENT_BYTES)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        raise OdcsError(OdcsReason.NOT_ODCS, f"{path}: over {MAX_DOCUMENT_BYTES} bytes: not a data contract")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise OdcsError(OdcsReason.NOT_ODCS, f"{path}: not UTF-8 text ({err})") from None


def import_odcs(
    text: str,
    *,
    dataset: str,
    source: str = "document",
    format_: str | None = None,
    object_name: str | None = None,
    null_values: list[str] | None = None,
    contracts_dir: Path | None = None,
) -> Imported:
    """The mlvault contract of an ODCS document's schema object (the only one, or `object_name`); OdcsError
    naming every element that does not map."""
    problems = Problems(source)
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as err:
        raise problems.fatal(OdcsReason.NOT_ODCS, "", f"not YAML: {' '.join(str(err).split())}") from None
    version = _check_document(doc, problems)
    notes: list[str] = []
    index, obj = _pick_object(doc["schema"], object_name, problems)
    where = f"schema[{index}]"
    known = OBJECT_FIELDS | (PROPERTY_V31_FIELDS if version != "v3.0.2" else set())
    for key in sorted(set(obj) - known):
        problems.add(OdcsReason.NOT_ODCS, f"{where}.{key}", f"not a schema object field of ODCS {version}")
    if obj.get("logicalType", "object") != "object":
        problems.add(OdcsReason.NO_TYPE_MAPPING, f"{where}.logicalType", "a schema object's logicalType is object")
    if "relationships" in obj:
        problems.add(
            OdcsReason.NOT_ENFORCEABLE,
            f"{where}.relationships",
            "mlvault checks each file on its own: relationships (foreign keys) to other data cannot be checked",
        )
    mlvault, object_meta = _custom_properties(
        obj.get("customProperties"), f"{where}.customProperties", OBJECT_PROPERTIES, problems
    )
    for i, item in enumerate(doc.get("customProperties") or []):
        name = item.get("property") if isinstance(item, dict) else None
        if isinstance(name, str) and name.startswith(PREFIX):
            problems.add(
                OdcsReason.NOT_ODCS,
                f"customProperties[{i}].property",
                f"{name}: mlvault's custom properties belong to the schema object ({where}.customProperties) and its "
                "properties, not to the document",
            )
    fmt = _format(doc, mlvault, format_, problems, notes, where)
    if null_values is not None and fmt != "csv":
        problems.add(OdcsReason.INVALID_CONTRACT, "", f"--null-value applies to CSV; the format is {fmt}")
    csv = _csv_dialect(fmt, mlvault, null_values, notes)
    properties = obj.get("properties")
    if not isinstance(properties, list) or not properties:
        raise problems.fatal(OdcsReason.NOT_ODCS, f"{where}.properties", "an mlvault contract needs the columns")
    mapper = PropertyMapper(version, problems, notes, null_tokens=csv.get("null_values", []) if csv else [])
    columns: list[ColumnRules] = [
        mapper.column(prop, f"{where}.properties[{j}]", PROPERTY_V31_FIELDS if version != "v3.0.2" else set())
        for j, prop in enumerate(properties)
    ]
    keys = [c for c in columns if c.primary_key]
    if len(keys) > 1:
        problems.add(
            OdcsReason.NOT_ENFORCEABLE,
            f"{where}.properties",
            f"a composite primary key ({', '.join(c.name for c in keys)}): mlvault checks single-column uniqueness",
        )
    rows, object_rules = rows_from_rules(obj.get("quality"), f"{where}.quality", columns, problems, notes)
    if mapper.defaulted_nullable:
        notes.append(
            f"nullable (no `required`: ODCS's default is that a property may be null): "
            f"{', '.join(mapper.defaulted_nullable)}"
        )
    problems.raise_any()
    data: dict[str, Any] = {"dataset": dataset, "version": doc["version"], "format": fmt}
    if csv:
        data["csv"] = csv
    data.update({OBJECT_PROPERTIES[k]: v for k, v in mlvault.items() if OBJECT_PROPERTIES[k] not in ("format", "csv")})
    data["rows"] = rows
    data["columns"] = [c.document() for c in columns]
    descriptions = Descriptions(
        obj.get("description") or None, {c.name: c.description for c in columns if c.description}
    )
    try:
        contract = parse_contract(data, f"as mlvault contract {dataset}")
        if contract.screening.baseline and contracts_dir is not None:
            from mlvault.contracts.screen import load_baseline

            load_baseline(contracts_dir, contract)  # a pinned baseline must exist and profile the features
    except ContractError as err:
        raise problems.fatal(OdcsReason.INVALID_CONTRACT, "", str(err)) from None
    dates = [c.name for c in contract.columns if c.type == "date32"]
    if fmt == "jsonl" and dates:
        notes.append(
            f"date32 in JSON Lines ({', '.join(dates)}): mlvault's JSON reader (pyarrow) does not parse date text "
            "into date32, so files with ISO dates would be refused: consider timestamp[ms] (physicalType)"
        )
    document = contract_document(contract, descriptions)
    metadata = _metadata(doc, obj, object_meta, object_rules, columns, dataset, version, source)
    return Imported(document, contract, metadata, notes)


def _check_document(doc: Any, problems: Problems) -> str:
    """The document is ODCS of a supported version (fatal otherwise); its root fields, checked."""
    if not isinstance(doc, dict):
        raise problems.fatal(OdcsReason.NOT_ODCS, "", f"the document is a {type(doc).__name__}, not a mapping")
    if "dataContractSpecification" in doc:
        raise problems.fatal(
            OdcsReason.NOT_ODCS,
            "dataContractSpecification",
            "a Data Contract Specification document (datacontract.com), not ODCS: convert it first "
            "(datacontract export --format odcs)",
        )
    if doc.get("kind") != KIND or "apiVersion" not in doc:
        got = f"kind {doc['kind']!r}" if "kind" in doc else "no kind"
        raise problems.fatal(OdcsReason.NOT_ODCS, "kind", f"{got}: an ODCS document has kind: {KIND} and an apiVersion")
    version = doc["apiVersion"]
    if version not in SUPPORTED_VERSIONS:
        hint = ""
        if isinstance(version, str) and version.startswith("v3.0."):
            hint = " (v3.0.x documents are compatible: set apiVersion: v3.0.2)"
        elif isinstance(version, str) and version.startswith("v2."):
            hint = " (migrate it to v3 first)"
        raise problems.fatal(
            OdcsReason.UNSUPPORTED_VERSION,
            "apiVersion",
            f"{version!r} is not supported; supported: {', '.join(SUPPORTED_VERSIONS)}{hint}",
        )
    for key in sorted(set(doc) - ROOT_FIELDS):
        problems.add(OdcsReason.NOT_ODCS, key, f"not a field of ODCS {version}; fields: {sorted(ROOT_FIELDS)}")
    for key in ("id", "version", "status"):
        if key not in doc:
            problems.add(OdcsReason.NOT_ODCS, key, f"missing: ODCS requires {key}")
        elif not isinstance(doc[key], str) or not doc[key]:
            problems.add(
                OdcsReason.NOT_ODCS, key, f"must be a non-empty string, got {doc[key]!r} (quote it in YAML: '1.0')"
            )
    schema = doc.get("schema")
    if not isinstance(schema, list) or not schema or not all(isinstance(o, dict) for o in schema):
        problems.add(OdcsReason.NOT_ODCS, "schema", "a list of schema objects is needed: it holds the columns")
        raise problems.error()
    return version


def _pick_object(schema: list[dict], name: str | None, problems: Problems) -> tuple[int, dict]:
    names = [o.get("name") for o in schema]
    if name is not None:
        if name not in names:
            raise ValueError(f"no schema object named {name!r}; the document has {names}")
        return names.index(name), schema[names.index(name)]
    if len(schema) > 1:
        raise ValueError(
            f"the document has {len(schema)} schema objects {names}: an mlvault contract describes one dataset; "
            "give --object NAME (and import each with its own --dataset)"
        )
    if not isinstance(names[0], str) or not names[0]:
        problems.add(OdcsReason.NOT_ODCS, "schema[0].name", "a schema object needs a name")
    return 0, schema[0]


def _custom_properties(
    raw: Any, where: str, known: dict[str, str], problems: Problems
) -> tuple[dict[str, Any], list[Any]]:
    """mlvault's custom properties (by name) and the others (kept as metadata)."""
    mlvault: dict[str, Any] = {}
    others: list[Any] = []
    if raw is None:
        return mlvault, others
    if not isinstance(raw, list):
        problems.add(OdcsReason.NOT_ODCS, where, "customProperties is a list of {property, value}")
        return mlvault, others
    for i, item in enumerate(raw):
        name = item.get("property") if isinstance(item, dict) else None
        if isinstance(name, str) and name.startswith(PREFIX):
            if name not in known:
                problems.add(
                    OdcsReason.NOT_ODCS,
                    f"{where}[{i}].property",
                    f"unknown mlvault custom property {name!r} here; known: {sorted(known)}",
                )
            elif name in mlvault:
                problems.add(OdcsReason.NOT_ODCS, f"{where}[{i}].property", f"{name} is given twice")
            else:
                mlvault[name] = item.get("value")
        else:
            others.append(item)
    return mlvault, others


def _format(doc: dict, mlvault: dict, option: str | None, problems: Problems, notes: list[str], where: str) -> str:
    declared = mlvault.get("mlvaultFormat")
    if declared is not None and option is not None and declared != option:
        problems.add(
            OdcsReason.INVALID_CONTRACT,
            f"{where}.customProperties",
            f"mlvaultFormat {declared!r} but --format {option}",
        )
    if declared is not None or option is not None:
        return declared if declared is not None else option
    found = set()
    for server in doc.get("servers") or []:
        if not isinstance(server, dict):
            continue
        fmt = server.get("format")
        if fmt in SERVER_FORMATS:
            found.add(SERVER_FORMATS[fmt])
        elif fmt == "json" and server.get("delimiter") == "new_line":
            found.add("jsonl")
    if len(found) == 1:
        (fmt,) = found
        notes.append(f"format {fmt}: from servers[].format")
        return fmt
    problems.add(
        OdcsReason.INVALID_CONTRACT,
        "servers",
        "the file format is not in the document (servers name "
        + (f"several: {sorted(found)}" if found else "none")
        + "): give --format csv|parquet|jsonl, or the mlvaultFormat custom property",
    )
    return "csv"


def _csv_dialect(fmt: str, mlvault: dict, null_values: list[str] | None, notes: list[str]) -> dict | None:
    if fmt != "csv":
        return None
    if "mlvaultCsv" in mlvault:
        dialect = mlvault["mlvaultCsv"]
        if null_values is not None and isinstance(dialect, dict):
            dialect = {**dialect, "null_values": null_values}
            notes.append(f"csv.null_values {null_values}: from --null-value, over the document's mlvaultCsv")
        return dialect
    tokens = null_values if null_values is not None else [""]
    notes.append(
        f"csv dialect: not in the document; mlvault's: delimiter ',', a header, UTF-8, null tokens {tokens} "
        "(--null-value), formula_injection reject"
    )
    return {"delimiter": ",", "header": True, "encoding": "utf-8", "null_values": tokens, "formula_injection": "reject"}


def _metadata(
    doc: dict,
    obj: dict,
    object_custom: list,
    object_rules: list[dict],
    columns: list[ColumnRules],
    dataset: str,
    version: str,
    source: str,
) -> dict[str, Any] | None:
    """What the contract has no field for, in the shape `odcs_export` merges back; None when that is nothing but
    what export would write anyway (a document exported by mlvault)."""
    contract = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "version", "schema")}
    for key, default in (("id", default_id(dataset)), ("status", "active"), ("name", dataset)):
        if contract.get(key) == default:
            del contract[key]
    kept = {
        k: v
        for k, v in obj.items()
        if k not in ("logicalType", "properties", "quality", "customProperties", "description")
    }
    if kept.get("name") == dataset:
        del kept["name"]
    if kept.get("physicalType") == "file":
        del kept["physicalType"]
    if object_custom:
        kept["customProperties"] = object_custom
    if object_rules:
        kept["quality"] = object_rules
    properties = {c.name: c.metadata for c in columns if c.metadata}
    if not (contract or kept or properties):
        return None
    out: dict[str, Any] = {"source": source.rsplit("/", 1)[-1], "apiVersion": version}
    if contract:
        out["contract"] = contract
    if kept:
        out["object"] = kept
    if properties:
        out["properties"] = properties
    return out
