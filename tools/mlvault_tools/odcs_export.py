"""`mlvault contract export`: an mlvault contract as an ODCS v3.1.0 document (docs/contracts.md, "ODCS").

Everything the contract says is in the document: the types, nullability and uniqueness as the standard's own
fields, ranges and patterns as logicalTypeOptions, allowed values and row bounds as library quality rules, and what
only mlvault has (format, CSV dialect with the formula-injection policy, size cap, forbidden and extra columns,
label, protected attributes, screening thresholds, columns that may be absent, increasing keys) as customProperties.
`mlvault contract import` reads it back to the same contract. The metadata an import kept (owner, team,
classification, servers, ...) is merged back in."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from mlvault.contracts.schema import Column, Contract
from mlvault_tools.contract_file import CONTRACT_FIELDS, Descriptions, non_defaults
from mlvault_tools.odcs_map import EXPORT_VERSION, KIND, LOGICAL, RULE_ANNOTATIONS, anchored, default_id, dump_yaml

COLUMN_FIELDS = {"name", "type", "nullable", "required", "min", "max", "allowed", "pattern", "unique"}
GENERATED_PROPERTY = ("name", "logicalType", "physicalType", "required", "unique", "description")
GENERATED_OBJECT = ("logicalType", "properties", "description")
GENERATED_ROOT = ("apiVersion", "kind", "version", "schema")
HEAD_ANNOTATIONS = ("id", "name", "description")


def _guard(contract: Contract) -> None:
    """A field added to the library's contract format must be mapped here: never exported without a word."""
    unknown = sorted(
        ({f.name for f in fields(Column)} - COLUMN_FIELDS) | ({f.name for f in fields(contract)} - CONTRACT_FIELDS)
    )
    if unknown:
        raise RuntimeError(f"mlvault_tools.odcs_export has no ODCS mapping for contract field(s) {unknown}")


def _custom(name: str, value: Any, description: str) -> dict[str, Any]:
    return {"property": name, "value": value, "description": description}


def object_custom_properties(contract: Contract) -> list[dict[str, Any]]:
    """mlvault's dataset-level features, as the schema object's customProperties."""
    out = [_custom("mlvaultFormat", contract.format, "mlvault: the file format (csv, parquet or jsonl)")]
    if contract.format == "csv":
        dialect = {f.name: getattr(contract.csv, f.name) for f in fields(contract.csv)}
        dialect["null_values"] = list(dialect["null_values"])
        out.append(
            _custom(
                "mlvaultCsv",
                dialect,
                "mlvault: the CSV dialect (only these null tokens; formula_injection: reject or allow)",
            )
        )
    if contract.max_bytes is not None:
        out.append(_custom("mlvaultMaxBytes", contract.max_bytes, "mlvault: the largest file accepted, in bytes"))
    if contract.forbidden_columns:
        out.append(
            _custom(
                "mlvaultForbiddenColumns", list(contract.forbidden_columns), "mlvault: columns a file must not have"
            )
        )
    if contract.allow_extra_columns:
        out.append(_custom("mlvaultAllowExtraColumns", True, "mlvault: columns not declared here are accepted"))
    if contract.label is not None:
        out.append(_custom("mlvaultLabel", contract.label, "mlvault: the label the models learn"))
    if contract.protected_attributes:
        out.append(
            _custom(
                "mlvaultProtectedAttributes",
                list(contract.protected_attributes),
                "mlvault: the attributes the fairness gate and the poisoning screen audit",
            )
        )
    screening = non_defaults(contract.screening)
    if screening:
        out.append(_custom("mlvaultScreening", screening, "mlvault: the poisoning screen's thresholds and action"))
    return out


def column_rule(maps_to: str, column: Column) -> dict[str, Any] | None:
    """The quality rule a column's check is, when it is one (None: the column does not have that check)."""
    if maps_to == "allowed" and column.allowed is not None:
        return {"metric": "invalidValues", "arguments": {"validValues": list(column.allowed)}, "mustBe": 0}
    if maps_to == "pattern" and column.pattern is not None:
        return {"metric": "invalidValues", "arguments": {"pattern": anchored(column.pattern)}, "mustBe": 0}
    if maps_to == "nullable" and not column.nullable:
        return {"metric": "nullValues", "mustBe": 0}
    if maps_to == "unique" and column.unique:
        return {"metric": "duplicateValues", "mustBe": 0}
    return None


def object_rule(maps_to: str, contract: Contract) -> dict[str, Any] | None:
    if maps_to == "rows.min":
        return {"metric": "rowCount", "mustBeGreaterOrEqualTo": contract.min_rows}
    if maps_to == "rows.max" and contract.max_rows is not None:
        return {"metric": "rowCount", "mustBeLessOrEqualTo": contract.max_rows}
    return None


def _rules(annotated: list[Any], defaults: tuple[str, ...], make, where: str, warnings: list[str]) -> list[dict]:
    """The rules of an element: those the metadata annotates (name, description, ...), then the defaults."""
    out, done = [], set()
    for entry in annotated if isinstance(annotated, list) else []:
        maps_to = entry.get("mapsTo") if isinstance(entry, dict) else None
        rule = make(maps_to) if isinstance(maps_to, str) else None
        if rule is None or maps_to in done:
            warnings.append(f"{where}: metadata rule annotations {entry!r} match no check of the contract now")
            continue
        annotations = {k: v for k, v in entry.items() if k in RULE_ANNOTATIONS}
        head = {k: annotations.pop(k) for k in HEAD_ANNOTATIONS if k in annotations}
        out.append({**head, **rule, **annotations})
        done.add(maps_to)
    out += [r for m in defaults if m not in done and (r := make(m)) is not None]
    return out


def _drop_generated(meta: dict[str, Any], keys: tuple[str, ...], where: str, warnings: list[str]) -> None:
    for key in keys:
        if key in meta:
            warnings.append(f"{where}: metadata field {key} is written from the contract; the metadata's is ignored")
            del meta[key]


def _property(column: Column, description: str | None, meta: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    where = f"column {column.name}"
    meta = dict(meta)
    prop: dict[str, Any] = {
        "name": column.name,
        "logicalType": LOGICAL[column.type],
        "physicalType": column.type,
        "required": not column.nullable,  # ODCS `required`: no nulls
    }
    if column.unique:
        prop["unique"] = True
    if description:
        prop["description"] = description
    options: dict[str, Any] = {}
    if column.min is not None:
        options["minimum"] = column.min
    if column.max is not None:
        options["maximum"] = column.max
    if column.pattern is not None:
        options["pattern"] = anchored(column.pattern)
    for key, value in (meta.pop("logicalTypeOptions", None) or {}).items():
        if key in options:
            warnings.append(f"{where}: metadata logicalTypeOptions.{key} is written from the contract; ignored")
        else:
            options[key] = value
    if options:
        prop["logicalTypeOptions"] = options
    quality = _rules(meta.pop("quality", []), ("allowed",), lambda m: column_rule(m, column), where, warnings)
    custom = []
    if not column.required:
        custom.append(_custom("mlvaultRequired", False, "mlvault: the column may be absent from a file"))
    if column.unique == "increasing":
        custom.append(_custom("mlvaultUnique", "increasing", "mlvault: unique as strictly increasing values"))
    custom += meta.pop("customProperties", None) or []
    if not column.unique and "primaryKey" in meta:
        warnings.append(f"{where}: metadata primaryKey, but the contract's column is not unique: not exported")
        meta.pop("primaryKey")
        meta.pop("primaryKeyPosition", None)
    _drop_generated(meta, GENERATED_PROPERTY, where, warnings)
    prop.update(meta)
    if quality:
        prop["quality"] = quality
    if custom:
        prop["customProperties"] = custom
    return prop


def export_odcs(
    contract: Contract, descriptions: Descriptions | None = None, metadata: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The ODCS document of a contract (and of the metadata an import kept), and warnings about metadata that no
    longer matches the contract (not exported)."""
    _guard(contract)
    descriptions = descriptions or Descriptions()
    warnings: list[str] = []
    meta = metadata or {}
    root = dict(meta.get("contract") or {})
    obj_meta = dict(meta.get("object") or {})
    props_meta = meta.get("properties") or {}
    doc: dict[str, Any] = {
        "apiVersion": EXPORT_VERSION,
        "kind": KIND,
        "id": root.pop("id", default_id(contract.dataset)),
        "name": root.pop("name", contract.dataset),
        "version": contract.version,
        "status": root.pop("status", "active"),
    }
    _drop_generated(root, GENERATED_ROOT, "the contract", warnings)
    doc.update(root)
    obj: dict[str, Any] = {
        "name": obj_meta.pop("name", contract.dataset),
        "logicalType": "object",
        "physicalType": obj_meta.pop("physicalType", "file"),
    }
    if descriptions.dataset:
        obj["description"] = descriptions.dataset
    quality = _rules(
        obj_meta.pop("quality", []), ("rows.min", "rows.max"), lambda m: object_rule(m, contract), "rows", warnings
    )
    custom = object_custom_properties(contract) + (obj_meta.pop("customProperties", None) or [])
    _drop_generated(obj_meta, GENERATED_OBJECT, "the schema object", warnings)
    obj.update(obj_meta)
    names = {c.name for c in contract.columns}
    for name in sorted(set(props_meta) - names):
        warnings.append(f"metadata for column {name}: the contract has no such column; not exported")
    obj["properties"] = [
        _property(c, descriptions.columns.get(c.name), props_meta.get(c.name) or {}, warnings) for c in contract.columns
    ]
    obj["quality"] = quality
    obj["customProperties"] = custom
    doc["schema"] = [obj]
    return doc, warnings


def export_text(doc: dict[str, Any], header: str) -> str:
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + dump_yaml(doc)
