"""A contract as the canonical JSON of `contracts/<dataset>.json`: what `mlvault contract import` and `mlvault
contract init` write. The library's `parse_contract` is the one definition of a valid contract: this module writes
what it parsed (a `Contract`), and reads back the descriptions a parsed `Contract` does not keep.

Canonical: the keys in the order of docs/contracts.md, two-space indentation, defaults left out (a column says only
what differs from `Column`'s defaults, `screening` only the thresholds that differ), except the CSV dialect, which
is always written in full (the dialect is what a reviewer must see)."""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from mlvault.contracts.schema import Column, Contract, load_contract

# The fields of `Contract` this module writes; a field added to the library's format must be added here (and to
# the ODCS mapping, mlvault_tools.odcs_export): `contract_document` refuses to drop one silently.
CONTRACT_FIELDS = {
    "dataset",
    "version",
    "format",
    "columns",
    "csv",
    "max_bytes",
    "min_rows",
    "max_rows",
    "forbidden_columns",
    "allow_extra_columns",
    "label",
    "protected_attributes",
    "screening",
}


@dataclass
class Descriptions:
    """The free-text descriptions of a contract file: the dataset's and each column's (by name)."""

    dataset: str | None = None
    columns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Descriptions:
        """Read from a contract's JSON (which `parse_contract` validated)."""
        columns = {c["name"]: c["description"] for c in raw.get("columns", []) if c.get("description")}
        return cls(raw.get("description") or None, columns)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def non_defaults(obj: Any) -> dict[str, Any]:
    """The fields of a dataclass instance that differ from their defaults, in declaration order (JSON values)."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        default = f.default if f.default is not MISSING else MISSING
        if default is MISSING and f.default_factory is not MISSING:
            default = f.default_factory()
        if default is MISSING or value != default:
            out[f.name] = _plain(value)
    return out


def column_document(column: Column, description: str | None = None) -> dict[str, Any]:
    data = non_defaults(column)  # name and type have no default: always first
    if description:
        data["description"] = description
    return data


def contract_document(contract: Contract, descriptions: Descriptions | None = None) -> dict[str, Any]:
    """The canonical JSON of a parsed contract (with its descriptions): `parse_contract` of it gives it back."""
    unknown = sorted({f.name for f in fields(contract)} - CONTRACT_FIELDS)
    if unknown:  # a bug, not bad input: this module must learn the library's new field(s)
        raise RuntimeError(f"mlvault_tools.contract_file does not know Contract field(s) {unknown}")
    descriptions = descriptions or Descriptions()
    data: dict[str, Any] = {"dataset": contract.dataset, "version": contract.version}
    if descriptions.dataset:
        data["description"] = descriptions.dataset
    data["format"] = contract.format
    if contract.format == "csv":
        data["csv"] = {f.name: _plain(getattr(contract.csv, f.name)) for f in fields(contract.csv)}
    if contract.max_bytes is not None:
        data["max_bytes"] = contract.max_bytes
    data["rows"] = {"min": contract.min_rows} | ({"max": contract.max_rows} if contract.max_rows is not None else {})
    data["columns"] = [column_document(c, descriptions.columns.get(c.name)) for c in contract.columns]
    if contract.forbidden_columns:
        data["forbidden_columns"] = list(contract.forbidden_columns)
    if contract.allow_extra_columns:
        data["allow_extra_columns"] = True
    if contract.label is not None:
        data["label"] = contract.label
    if contract.protected_attributes:
        data["protected_attributes"] = list(contract.protected_attributes)
    screening = non_defaults(contract.screening)
    if screening:
        data["screening"] = screening
    return data


def column_summary(column: Column) -> str:
    """One line a reviewer reads: the column's name, type and checks."""
    parts = [column.type]
    if column.nullable:
        parts.append("nullable")
    if not column.required:
        parts.append("may be absent")
    if column.unique:
        parts.append("unique" if column.unique is True else 'unique "increasing"')
    parts += [f"{bound} {getattr(column, bound)}" for bound in ("min", "max") if getattr(column, bound) is not None]
    if column.allowed is not None:
        parts.append(f"allowed {list(column.allowed)}")
    if column.pattern is not None:
        parts.append(f"pattern {column.pattern!r}")
    return f"{column.name}: {', '.join(parts)}"


def contract_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def contract_path(directory: str | Path, dataset: str) -> Path:
    return Path(directory) / f"{dataset}.json"


def read_contract(directory: str | Path, dataset: str) -> tuple[Contract, Descriptions]:
    """A contract of the directory, validated as at synth (`load_contract`), with its descriptions."""
    contract = load_contract(directory, dataset)
    raw = json.loads(contract_path(directory, dataset).read_text())
    return contract, Descriptions.of(raw)


def write_new(path: Path, text: str, *, force: bool) -> None:
    """Write a file the command creates; an existing one (a reviewed contract) only with --force."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (a reviewed file): give --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
