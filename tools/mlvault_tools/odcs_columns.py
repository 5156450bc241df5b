"""ODCS properties as mlvault columns (for odcs_import): the type, nullability, uniqueness, logicalTypeOptions and
custom properties of each property are mapped, kept as metadata, or refused with the element's path and what is
supported (docs/contracts.md, "ODCS")."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from mlvault_tools.contract_errors import OdcsReason
from mlvault_tools.odcs_map import (
    AMBIGUOUS_PHYSICAL,
    COLUMN_PROPERTIES,
    DATE_FORMATS,
    ELEMENT_FIELDS,
    LENGTH_TYPES,
    LOGICAL,
    LOGICAL_DEFAULT,
    LOGICAL_TYPES,
    NUMBER_FORMATS,
    PHYSICAL,
    PREFIX,
    RE2_MAX_REPEAT,
    RULE_ANNOTATIONS,
    TIMESTAMP_FORMATS,
    Problems,
    full_match,
    re2_problem,
)
from mlvault_tools.odcs_rules import finite_number, parse_rule, property_rule, zero_tolerance

PROPERTY_FIELDS = ELEMENT_FIELDS | {
    "primaryKey",
    "primaryKeyPosition",
    "logicalType",
    "logicalTypeOptions",
    "physicalName",
    "required",
    "unique",
    "partitioned",
    "partitionKeyPosition",
    "classification",
    "encryptedName",
    "transformSourceObjects",
    "transformLogic",
    "transformDescription",
    "examples",
    "criticalDataElement",
    "quality",
    "items",
    "properties",
}
MAPPED = {
    "name",
    "logicalType",
    "physicalType",
    "required",
    "unique",
    "description",
    "logicalTypeOptions",
    "quality",
    "customProperties",
    "relationships",
    "items",
    "properties",
}
OPTIONS = {
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "format"},
    "string": {"minLength", "maxLength", "pattern", "format"},
    "date": {"format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "timestamp": {
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "timezone",
        "defaultTimezone",
    },
    "boolean": set(),
}
OPTIONS["number"] = OPTIONS["integer"]
SUPPORTED_TYPES = (
    "int32 (int, integer, int4), int64 (bigint, long), float32 (real, float4), float64 (double, float8), "
    "string (string, varchar[(n)], text), bool (boolean), date32 (date), timestamp[ms] (timestamp, datetime, "
    "timestamp_ntz)"
)


@dataclass
class ColumnRules:
    """One property as it maps to an mlvault column (and its metadata)."""

    name: str
    path: str
    type: str | None = None
    nullable: bool = True  # ODCS `required` defaults to false: a property may be null
    required: bool = True
    unique: bool | str = False
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    pattern: str | None = None
    description: str | None = None
    primary_key: bool = False
    lengths: tuple[int, int | None] | None = None
    length_path: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.nullable:
            data["nullable"] = True
        if not self.required:
            data["required"] = False
        if self.unique is not False:
            data["unique"] = self.unique
        for key in ("min", "max", "allowed", "pattern"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def annotate(self, maps_to: str, rule: dict[str, Any]) -> None:
        """Keep a mapped rule's annotations (name, description, dimension, ...): export puts them back."""
        annotations = {k: rule[k] for k in RULE_ANNOTATIONS if k in rule}
        if annotations:
            self.metadata.setdefault("quality", []).append({"mapsTo": maps_to, **annotations})


def _physical(text: str) -> tuple[str | None, int | None, str]:
    """mlvault type and maximum length of a physicalType; (None, None, why) when there is none."""
    normal = " ".join(text.strip().lower().split())
    if normal in PHYSICAL:
        return PHYSICAL[normal], None, ""
    parts = re.fullmatch(r"([a-z_][a-z0-9_ ]*?) ?(?:\( ?([0-9]+) ?\))?", normal)
    base = parts[1] if parts else normal
    if base in AMBIGUOUS_PHYSICAL:
        return None, None, f"{text!r} is ambiguous ({AMBIGUOUS_PHYSICAL[base]})"
    if not parts or base not in PHYSICAL:
        return None, None, f"{text!r} has no mlvault column type; supported: {SUPPORTED_TYPES}"
    if parts[2] is None:
        return PHYSICAL[base], None, ""
    if base in LENGTH_TYPES:
        return PHYSICAL[base], int(parts[2]), ""
    if PHYSICAL[base] == "timestamp[ms]" and int(parts[2]) <= 3:
        return PHYSICAL[base], None, ""
    return None, None, f"{text!r}: the parameter ({parts[2]}) has no mlvault equivalent; supported: {SUPPORTED_TYPES}"


def _width(pattern: str) -> tuple[int, int] | None:
    """The (min, max) length of the texts a pattern matches, from Python's parser; None if unknown."""
    try:
        from re import _parser  # CPython's regex parser (3.11+)

        low, high = _parser.parse(pattern).getwidth()
    except Exception:  # noqa: BLE001 - only an optimisation: unknown width means "not implied"
        return None
    return low, high


class PropertyMapper:
    """Maps the properties of one schema object, recording problems and notes."""

    def __init__(self, version: str, problems: Problems, notes: list[str], *, null_tokens: list[str]) -> None:
        self.version = version
        self.problems = problems
        self.notes = notes
        self.null_tokens = null_tokens
        self.defaulted_nullable: list[str] = []

    def column(self, prop: Any, path: str, extra_fields: set[str]) -> ColumnRules:
        add = self.problems.add
        if not isinstance(prop, dict) or not isinstance(prop.get("name"), str) or not prop["name"]:
            add(OdcsReason.NOT_ODCS, path, "a property is a mapping with a name")
            return ColumnRules(name=f"#{path}", path=path)
        col = ColumnRules(name=prop["name"], path=path)
        for key in sorted(set(prop) - PROPERTY_FIELDS - extra_fields):
            add(OdcsReason.NOT_ODCS, f"{path}.{key}", f"not a property field of ODCS {self.version}")
        col.type = self._type(prop, path, col)
        if prop.get("physicalName", col.name) != col.name:
            add(
                OdcsReason.NOT_ENFORCEABLE,
                f"{path}.physicalName",
                f"{prop['physicalName']!r} differs from name {col.name!r}: mlvault matches a file's columns by name "
                "(name the property as the file does)",
            )
        for flag in ("required", "unique", "primaryKey"):
            if flag in prop and not isinstance(prop[flag], bool):
                add(OdcsReason.NOT_ODCS, f"{path}.{flag}", f"{flag} is true or false")
        if prop.get("required") is True:
            col.nullable = False
        elif "required" not in prop:
            self.defaulted_nullable.append(col.name)
        if prop.get("unique") is True or prop.get("primaryKey") is True:
            col.unique = True
        col.primary_key = prop.get("primaryKey") is True
        if "relationships" in prop:
            add(
                OdcsReason.NOT_ENFORCEABLE,
                f"{path}.relationships",
                "mlvault checks each file on its own: a foreign key to other data cannot be checked",
            )
        if isinstance(prop.get("description"), str):
            col.description = prop["description"]
        self._options(prop.get("logicalTypeOptions"), f"{path}.logicalTypeOptions", col)
        self._rules(prop.get("quality"), f"{path}.quality", col)
        self._custom(prop.get("customProperties"), f"{path}.customProperties", col)
        self._lengths(col)
        col.metadata.update({k: v for k, v in prop.items() if k not in MAPPED})
        return col

    # --- the type ---------------------------------------------------------------------------------------------

    def _type(self, prop: dict, path: str, col: ColumnRules) -> str | None:
        add = self.problems.add
        logical, physical = prop.get("logicalType"), prop.get("physicalType")
        options = prop.get("logicalTypeOptions") if isinstance(prop.get("logicalTypeOptions"), dict) else {}
        if logical is not None and logical not in LOGICAL_TYPES:
            add(OdcsReason.NOT_ODCS, f"{path}.logicalType", f"{logical!r}; ODCS logical types: {LOGICAL_TYPES}")
            return None
        if logical in ("time", "object", "array") or "items" in prop or "properties" in prop:
            add(
                OdcsReason.NO_TYPE_MAPPING,
                f"{path}.logicalType",
                f"{logical or 'nested'}: mlvault columns are flat values: logicalType integer, number, string, "
                f"boolean, date or timestamp ({SUPPORTED_TYPES})",
            )
            return None
        number_format = options.get("format") if logical in ("integer", "number") else None
        from_format = NUMBER_FORMATS.get(number_format) if number_format is not None else None
        if number_format is not None and from_format is None:
            add(
                OdcsReason.NO_TYPE_MAPPING,
                f"{path}.logicalTypeOptions.format",
                f"{number_format!r}; mlvault widths: {', '.join(f'{k} ({v})' for k, v in NUMBER_FORMATS.items())}",
            )
            return None
        from_physical = None
        if physical is not None:
            if not isinstance(physical, str):
                add(OdcsReason.NOT_ODCS, f"{path}.physicalType", "physicalType is a string")
                return None
            from_physical, length, why = _physical(physical)
            if from_physical is None and from_format is not None and "ambiguous" in why:
                self.notes.append(f"{path}.physicalType {physical!r} is ambiguous: format {number_format} decides")
            elif from_physical is None:
                add(OdcsReason.NO_TYPE_MAPPING, f"{path}.physicalType", why)
                return None
            if length is not None:
                col.lengths, col.length_path = (0, length), f"{path}.physicalType"
        if from_physical and from_format and from_physical != from_format:
            add(
                OdcsReason.NO_TYPE_MAPPING,
                f"{path}.logicalTypeOptions.format",
                f"format {number_format} ({from_format}) disagrees with physicalType {physical} ({from_physical})",
            )
            return None
        chosen = from_physical or from_format or LOGICAL_DEFAULT.get(logical)
        if chosen is None:
            add(OdcsReason.NO_TYPE_MAPPING, path, f"no logicalType and no physicalType: supported {SUPPORTED_TYPES}")
            return None
        family = LOGICAL[chosen]
        if logical is not None and logical != family and not (logical == "number" and family == "integer"):
            add(
                OdcsReason.NO_TYPE_MAPPING,
                f"{path}.physicalType",
                f"logicalType {logical} and physicalType {physical!r} ({chosen}) disagree",
            )
            return None
        if physical is None and from_format is None and logical in ("integer", "number"):
            self.notes.append(f"{path} ({col.name}): logicalType {logical} without a width: {chosen}")
        return chosen

    # --- logicalTypeOptions -----------------------------------------------------------------------------------

    def _options(self, options: Any, path: str, col: ColumnRules) -> None:
        if options is None or col.type is None:
            return
        add = self.problems.add
        if not isinstance(options, dict):
            add(OdcsReason.NOT_ODCS, path, "logicalTypeOptions is a mapping")
            return
        family = LOGICAL[col.type]
        for key in sorted(set(options) - OPTIONS[family]):
            add(OdcsReason.NOT_ODCS, f"{path}.{key}", f"not an option of {family}; options: {sorted(OPTIONS[family])}")
        kept: dict[str, Any] = {}
        if family in ("integer", "number"):
            self._bounds(options, path, col)
            if "multipleOf" in options:
                add(OdcsReason.NOT_ENFORCEABLE, f"{path}.multipleOf", "mlvault checks ranges, not multiples")
        elif family == "string":
            if "pattern" in options:
                self.pattern(options["pattern"], f"{path}.pattern", col)
            if "minLength" in options or "maxLength" in options:
                low, high = options.get("minLength", 0), options.get("maxLength")
                if not isinstance(low, int) or not (high is None or isinstance(high, int)) or low < 0:
                    add(OdcsReason.NOT_ODCS, path, "minLength and maxLength are non-negative integers")
                else:
                    if col.lengths is not None and col.lengths[1] is not None:
                        high = col.lengths[1] if high is None else min(high, col.lengths[1])
                    col.lengths, col.length_path = (low, high), path
            if "format" in options:
                add(
                    OdcsReason.NOT_ENFORCEABLE,
                    f"{path}.format",
                    f"{options['format']!r}: mlvault checks a pattern (logicalTypeOptions.pattern), not named formats",
                )
        elif family in ("date", "timestamp"):
            formats = DATE_FORMATS if family == "date" else TIMESTAMP_FORMATS
            if "format" in options:
                if options["format"] in formats:
                    kept["format"] = options["format"]
                else:
                    add(
                        OdcsReason.NOT_ENFORCEABLE,
                        f"{path}.format",
                        f"{options['format']!r}: mlvault reads {family}s as ISO 8601 without a zone ({formats[0]}"
                        + (", ..." if len(formats) > 1 else "")
                        + ")",
                    )
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if key in options:
                    add(OdcsReason.NOT_ENFORCEABLE, f"{path}.{key}", f"mlvault has no bounds on {family}s")
            if options.get("timezone") is True:
                add(OdcsReason.NOT_ENFORCEABLE, f"{path}.timezone", "mlvault timestamps have no zone (timestamp[ms])")
            for key in ("timezone", "defaultTimezone"):
                if key in options and options[key] is not True:
                    kept[key] = options[key]
        if kept:
            col.metadata["logicalTypeOptions"] = kept

    def _bounds(self, options: dict, path: str, col: ColumnRules) -> None:
        add, integer = self.problems.add, col.type in ("int32", "int64")
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            value = options.get(key)
            if value is not None and not finite_number(value) and not isinstance(value, bool):
                add(OdcsReason.NOT_ODCS, f"{path}.{key}", f"{key} is a number, got {value!r}")
                return
        low, high = options.get("minimum"), options.get("maximum")
        exclusive = {
            "exclusiveMinimum": options.get("exclusiveMinimum"),
            "exclusiveMaximum": options.get("exclusiveMaximum"),
        }
        for key, bound in (("exclusiveMinimum", low), ("exclusiveMaximum", high)):
            if exclusive[key] is True:  # v3.0.x: a flag that makes minimum / maximum exclusive
                if bound is None:
                    add(OdcsReason.NOT_ODCS, f"{path}.{key}", f"{key}: true needs {key[9:].lower()}imum")
                    exclusive[key] = None
                    continue
                exclusive[key] = bound
                low, high = (None, high) if key == "exclusiveMinimum" else (low, None)
            elif exclusive[key] is False:
                exclusive[key] = None
        for key, value in exclusive.items():
            if value is None:
                continue
            if not integer:
                add(
                    OdcsReason.NOT_ENFORCEABLE,
                    f"{path}.{key}",
                    "mlvault's bounds are inclusive: an exclusive bound on a float column has no exact equivalent",
                )
            elif key == "exclusiveMinimum":
                low = math.floor(value) + 1 if low is None else max(low, math.floor(value) + 1)
            else:
                high = math.ceil(value) - 1 if high is None else min(high, math.ceil(value) - 1)
            if integer:
                self.notes.append(f"{path}.{key} {options[key]!r} on an integer column: an inclusive bound")
        col.min, col.max = low, high

    def pattern(self, value: Any, path: str, col: ColumnRules) -> None:
        add = self.problems.add
        if col.type != "string":
            add(OdcsReason.NOT_ENFORCEABLE, path, f"a pattern on a {col.type} column: mlvault matches strings only")
            return
        if not isinstance(value, str):
            add(OdcsReason.NOT_ODCS, path, "a pattern is a string")
            return
        converted, wrapped = full_match(value)
        problem = re2_problem(converted)
        if problem is None:
            try:
                re.compile(converted)
            except re.error as err:
                problem = str(err)
        if problem is not None:
            add(OdcsReason.NOT_ENFORCEABLE, path, f"{value!r}: RE2 (mlvault's regex engine) cannot use it: {problem}")
            return
        if col.pattern is not None and col.pattern != converted:
            add(OdcsReason.NOT_ENFORCEABLE, path, f"a second pattern for {col.name}: mlvault checks one per column")
            return
        if wrapped:
            self.notes.append(
                f"{path} {value!r} is searched for in the value (ECMA-262, not anchored at both ends): mlvault "
                f"matches whole values, so it becomes {converted!r}"
            )
        col.pattern = converted

    def _lengths(self, col: ColumnRules) -> None:
        """A maximum or minimum length (varchar(n), minLength, maxLength) as a full-match pattern."""
        if col.lengths is None or col.type != "string":
            return
        low, high = col.lengths
        if col.pattern is not None:
            width = _width(col.pattern)
            if width is not None and width[0] >= low and (high is None or width[1] <= high):
                self.notes.append(f"{col.length_path}: the length is implied by the pattern {col.pattern!r}")
                return
            self.problems.add(
                OdcsReason.NOT_ENFORCEABLE,
                col.length_path,
                f"a length ({low} to {high}) and a pattern {col.pattern!r} that does not imply it: mlvault checks one "
                "full-match pattern per column; fold the length into the pattern (e.g. [A-Z]{2} for two capitals)",
            )
            return
        if max(low, high or 0) > RE2_MAX_REPEAT:
            self.problems.add(
                OdcsReason.NOT_ENFORCEABLE,
                col.length_path,
                f"a length bound above {RE2_MAX_REPEAT} (RE2's largest repetition): mlvault checks a length as a "
                "pattern",
            )
            return
        col.pattern = f"(?s:.{{{low},{'' if high is None else high}}})"
        self.notes.append(f"{col.length_path}: lengths {low} to {high} become the pattern {col.pattern!r}")

    # --- quality rules and custom properties ------------------------------------------------------------------

    def _rules(self, rules: Any, path: str, col: ColumnRules) -> None:
        if rules is None:
            return
        if not isinstance(rules, list):
            self.problems.add(OdcsReason.NOT_ODCS, path, "quality is a list of rules")
            return
        for i, raw in enumerate(rules):
            where = f"{path}[{i}]"
            rule = parse_rule(raw, where, self.problems)
            if rule is None or col.type is None:
                continue
            if rule.metric == "rowCount":
                self.problems.add(OdcsReason.NOT_ODCS, f"{where}.metric", "rowCount is a schema object's metric")
                continue
            if not zero_tolerance(rule, where, self.problems):
                continue
            maps_to = property_rule(rule, where, col, self)
            if maps_to:
                col.annotate(maps_to, raw)

    def _custom(self, raw: Any, path: str, col: ColumnRules) -> None:
        if raw is None:
            return
        if not isinstance(raw, list):
            self.problems.add(OdcsReason.NOT_ODCS, path, "customProperties is a list of {property, value}")
            return
        others = []
        for i, item in enumerate(raw):
            name = item.get("property") if isinstance(item, dict) else None
            if not (isinstance(name, str) and name.startswith(PREFIX)):
                others.append(item)
                continue
            value = item.get("value")
            if name == "mlvaultRequired" and isinstance(value, bool):
                col.required = value
            elif name == "mlvaultUnique" and value == "increasing":
                col.unique = "increasing"
            else:
                self.problems.add(
                    OdcsReason.NOT_ODCS,
                    f"{path}[{i}]",
                    f"{name} {value!r}: a property's mlvault custom properties are {sorted(COLUMN_PROPERTIES)} "
                    "(mlvaultRequired: true|false, mlvaultUnique: increasing)",
                )
        if others:
            col.metadata["customProperties"] = others
