"""What mlvault's contract format and the Open Data Contract Standard (ODCS v3, bitol-io) share: the versions
accepted, the types, the custom properties that carry mlvault-only features, the refusal codes, strict YAML, and
patterns (docs/contracts.md, "ODCS"). Used by `mlvault contract import` (odcs_import) and `export` (odcs_export)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import yaml

from mlvault_tools.contract_errors import OdcsError

EXPORT_VERSION = "v3.1.0"  # the standard's current release (v3.2.0 is in development upstream)
SUPPORTED_VERSIONS = ("v3.0.2", EXPORT_VERSION)
KIND = "DataContract"


class Problems:
    """Every element that cannot be imported, with its path; raised together (nothing is written)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.found: list[tuple[str, str, str]] = []

    def add(self, reason: str, path: str, message: str) -> None:
        self.found.append((reason, path, message))

    def fatal(self, reason: str, path: str, message: str) -> OdcsError:
        self.add(reason, path, message)
        return self.error()

    def error(self) -> OdcsError:
        if len(self.found) == 1:
            reason, path, message = self.found[0]
            return OdcsError(reason, f"{self.source}: {path + ': ' if path else ''}{message}")
        lines = [f"  {reason} {path + ': ' if path else ''}{message}" for reason, path, message in self.found]
        return OdcsError(
            self.found[0][0],
            f"{self.source}: {len(self.found)} elements cannot be imported (nothing written):\n" + "\n".join(lines),
        )

    def raise_any(self) -> None:
        if self.found:
            raise self.error()


# the fields every schema element has (objects and properties); v3.1.0 added `id` and `relationships`
ELEMENT_FIELDS = {
    "name",
    "physicalType",
    "description",
    "businessName",
    "authoritativeDefinitions",
    "tags",
    "customProperties",
}
PROPERTY_V31_FIELDS = {"id", "relationships"}


# --- mlvault-only features, as ODCS customProperties (on the schema object, and on its properties) -----------

OBJECT_PROPERTIES = {
    "mlvaultFormat": "format",  # csv | parquet | jsonl
    "mlvaultCsv": "csv",  # the CSV dialect, mlvault's object as is (delimiter, header, encoding, null_values,
    # formula_injection)
    "mlvaultMaxBytes": "max_bytes",
    "mlvaultForbiddenColumns": "forbidden_columns",
    "mlvaultAllowExtraColumns": "allow_extra_columns",
    "mlvaultLabel": "label",
    "mlvaultProtectedAttributes": "protected_attributes",
    "mlvaultScreening": "screening",  # the poisoning screen's thresholds, mlvault's object as is
}
COLUMN_PROPERTIES = {
    "mlvaultRequired": "required",  # false: the column may be absent from a file (ODCS `required` is nullability)
    "mlvaultUnique": "unique",  # "increasing": unique by strictly increasing values (constant memory)
}
PREFIX = "mlvault"

# --- types ----------------------------------------------------------------------------------------------------

# mlvault column type -> ODCS logicalType; physicalType is the mlvault (Arrow) type name itself
LOGICAL = {
    "int32": "integer",
    "int64": "integer",
    "float32": "number",
    "float64": "number",
    "string": "string",
    "bool": "boolean",
    "date32": "date",
    "timestamp[ms]": "timestamp",
}
LOGICAL_TYPES = ("string", "date", "timestamp", "time", "number", "integer", "object", "array", "boolean")
LOGICAL_DEFAULT = {  # a logicalType without a physicalType
    "integer": "int64",
    "number": "float64",
    "string": "string",
    "boolean": "bool",
    "date": "date32",
    "timestamp": "timestamp[ms]",
}
# physicalType (lower case, parameters apart) -> mlvault type; only names with one meaning across sources
PHYSICAL = {
    **{t: t for t in LOGICAL},
    "int": "int32",
    "integer": "int32",
    "int4": "int32",
    "bigint": "int64",
    "long": "int64",
    "real": "float32",
    "float4": "float32",
    "double": "float64",
    "double precision": "float64",
    "float8": "float64",
    "varchar": "string",
    "character varying": "string",
    "nvarchar": "string",
    "text": "string",
    "utf8": "string",
    "boolean": "bool",
    "date": "date32",
    "timestamp": "timestamp[ms]",
    "datetime": "timestamp[ms]",
    "timestamp_ntz": "timestamp[ms]",
    "timestamp without time zone": "timestamp[ms]",
}
AMBIGUOUS_PHYSICAL = {
    "float": "32 bits in Spark and Hive, 64 in SQL Server and PostgreSQL: say float32 (real) or float64 (double)",
    "int8": "8 bits in Arrow and Spark, 64 in PostgreSQL: say int64 (bigint) or a wider integer",
    "number": "Oracle and Snowflake NUMBER is a decimal: say int64 or float64",
}
LENGTH_TYPES = ("varchar", "character varying", "nvarchar")  # a (n) parameter: a maximum length
NUMBER_FORMATS = {"i32": "int32", "i64": "int64", "f32": "float32", "f64": "float64"}  # logicalTypeOptions.format
DATE_FORMATS = ("yyyy-MM-dd",)  # what mlvault's reader parses (ISO 8601)
TIMESTAMP_FORMATS = tuple(
    f"yyyy-MM-dd{sep}HH:mm{sec}" for sep in ("'T'", "T", " ") for sec in ("", ":ss", ":ss.S", ":ss.SS", ":ss.SSS")
)
RE2_MAX_REPEAT = 1000  # RE2 (pyarrow's regex engine) refuses {n,m} above this

# annotations of a quality rule (not what it checks): kept as metadata when the rule maps
RULE_ANNOTATIONS = (
    "id",
    "name",
    "description",
    "dimension",
    "method",
    "severity",
    "businessImpact",
    "tags",
    "authoritativeDefinitions",
    "customProperties",
    "scheduler",
    "schedule",
)
OPERATORS = (
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
)


def default_id(dataset: str) -> str:
    """The ODCS `id` of an exported contract without one of its own: stable per dataset."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:mlvault:contract:{dataset}"))


def metadata_path(directory: str | Path, dataset: str) -> Path:
    """The ODCS metadata kept next to an imported contract (not *.json: never read as a contract or shipped)."""
    return Path(directory) / f"{dataset}.odcs-metadata.yaml"


def metadata_header(contract: Path, source: str) -> str:
    return (
        f"# ODCS metadata of {contract} that mlvault's contract format has no field for (owner, team,\n"
        f"# classification, servers, rule names, ...), kept by `mlvault contract import` from {Path(source).name}.\n"
        "# `mlvault contract export` merges it back; the verifier never reads it. Review it like the contract.\n"
    )


def load_metadata(path: Path) -> dict[str, Any]:
    """The metadata file an import wrote (ValueError when it is not a mapping)."""
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping (contract, object, properties)")
    return data


# --- patterns: mlvault's are full matches (RE2), ODCS's are ECMA-262 searches ---------------------------------


def anchored(pattern: str) -> str:
    """An mlvault pattern (full match) as an ODCS pattern (a search): anchored at both ends."""
    return f"^(?:{pattern})$"


def _top_level_alternation(pattern: str) -> bool:
    depth, i, klass = 0, 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if klass:
            klass = char != "]"
        elif char == "[":
            klass = True
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        i += 1
    return False


def full_match(pattern: str) -> tuple[str, bool]:
    """An ODCS pattern (searched for in the value) as an mlvault pattern (a full match) and whether it had to be
    wrapped in `.*` (it was not anchored at both ends)."""
    inner = re.fullmatch(r"\^\(\?:(.*)\)\$", pattern, re.DOTALL)
    if inner:
        try:
            re.compile(inner[1])
        except re.error:
            pass
        else:
            return inner[1], False
    backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    if (
        len(pattern) >= 2
        and pattern.startswith("^")
        and pattern.endswith("$")
        and backslashes % 2 == 0
        and not _top_level_alternation(pattern[1:-1])
    ):
        return pattern[1:-1], False
    return f"(?s:.*)(?:{pattern})(?s:.*)", True


def re2_problem(pattern: str) -> str | None:
    """Why RE2 (what mlvault's verifier matches with) cannot compile the pattern; None if it can."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""]), pattern=f"^(?:{pattern})$")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        return str(err)
    return None


# --- YAML: safe, and strict (YAML 1.2 core scalars, no duplicate keys) ---------------------------------------


class StrictLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (no object construction) with YAML 1.2 core scalars and duplicate keys refused. YAML 1.1
    would silently turn `yes`/`no`/`on`/`off` into booleans, `010` into 8, `1:30` into 90 and `2024-01-01` into a
    date; PyYAML keeps the last of two equal keys. In an allowed-values list, those are contract changes."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if text.startswith(("0x", "0o")):
            return int(text[2:], 16 if text[1] == "x" else 8)
        return int(text, 10)


_TAG = "tag:yaml.org,2002:"
_REPLACED = {_TAG + t for t in ("bool", "int", "float", "timestamp")}
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_STRICT_SCALARS = (
    (_TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (_TAG + "int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")),
    (
        _TAG + "float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    ),
)
for _tag, _regexp, _first in _STRICT_SCALARS:
    StrictLoader.add_implicit_resolver(_tag, _regexp, _first)
StrictLoader.add_constructor(_TAG + "int", StrictLoader.construct_yaml_int)


def load_yaml(text: str) -> Any:
    """A YAML (or JSON) document, strictly (StrictLoader); yaml.YAMLError on anything else."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader


class StrictDumper(yaml.SafeDumper):
    """PyYAML's SafeDumper, which also quotes a string that YAML 1.2 would read as something else (`08`, `1e3`):
    what it writes reads back the same with StrictLoader and with any YAML 1.1 reader. A string with a character
    YAML folds or drops (the line breaks NEL, LS, PS; controls) is written double-quoted, where it is escaped."""

    def represent_str(self, data: str):
        if any(ch in "\x85\u2028\u2029" or (not ch.isprintable() and ch != "\n") for ch in data):
            return self.represent_scalar(_TAG + "str", data, style='"')
        return super().represent_str(data)


StrictDumper.add_representer(str, StrictDumper.represent_str)
for _tag, _regexp, _first in _STRICT_SCALARS:
    StrictDumper.add_implicit_resolver(_tag, _regexp, _first)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=StrictDumper, sort_keys=False, allow_unicode=True, width=120)
