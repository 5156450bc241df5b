"""ODCS quality rules as mlvault checks (for odcs_import): a library metric with zero tolerance maps to a column's
nullability, uniqueness, allowed values or pattern, or to the row bounds; any other rule is refused with its path
(docs/contracts.md, "ODCS")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlvault_tools.contract_errors import OdcsReason
from mlvault_tools.odcs_map import OPERATORS, RULE_ANNOTATIONS, Problems

if TYPE_CHECKING:
    from mlvault_tools.odcs_columns import ColumnRules, PropertyMapper

PROPERTY_METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues")
RULE_ALIASES = {"duplicateCount": "duplicateValues", "validValues": "invalidValues"}  # v3.0.x `rule` names
RULE_FIELDS = {"type", "metric", "rule", "arguments", "unit", "severity", "validValues", *OPERATORS, *RULE_ANNOTATIONS}
SUPPORTED_RULES = (
    "library metrics with zero tolerance (mustBe: 0): nullValues, missingValues, invalidValues (validValues, "
    "pattern), duplicateValues on properties; rowCount and single-property duplicateValues on schema objects"
)


def finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Rule:
    metric: str
    operator: str
    value: Any
    unit: str
    arguments: dict[str, Any]


def parse_rule(rule: Any, path: str, problems: Problems) -> Rule | None:
    """A library rule's metric, operator and arguments; None (and a problem) for anything else."""
    if not isinstance(rule, dict):
        problems.add(OdcsReason.NOT_ODCS, path, "a quality rule is a mapping")
        return None
    kind = rule.get("type", "library")
    if kind in ("text", "sql", "custom"):
        problems.add(OdcsReason.NOT_ENFORCEABLE, f"{path}.type", f"a {kind} rule: mlvault enforces {SUPPORTED_RULES}")
        return None
    if kind != "library":
        problems.add(OdcsReason.NOT_ODCS, f"{path}.type", f"{kind!r}: ODCS rule types are library, text, sql, custom")
        return None
    unknown = sorted(set(rule) - RULE_FIELDS)
    for key in unknown:
        problems.add(OdcsReason.NOT_ODCS, f"{path}.{key}", "not a field of an ODCS library rule")
    named = rule.get("metric") or rule.get("rule")
    metric = RULE_ALIASES.get(named, named)
    if not isinstance(metric, str):
        problems.add(OdcsReason.NOT_ODCS, path, "a library rule names its metric")
        return None
    if metric not in (*PROPERTY_METRICS, "rowCount"):
        problems.add(OdcsReason.NOT_ENFORCEABLE, f"{path}.metric", f"{named!r}: mlvault enforces {SUPPORTED_RULES}")
        return None
    if rule.get("severity", "error") != "error":
        problems.add(
            OdcsReason.NOT_ENFORCEABLE,
            f"{path}.severity",
            f"{rule['severity']!r}: mlvault refuses every file that breaks a rule; a rule that only reports cannot "
            "be expressed (make it severity error, or remove it)",
        )
    unit = rule.get("unit", "rows")
    if unit not in ("rows", "percent"):
        problems.add(OdcsReason.NOT_ENFORCEABLE, f"{path}.unit", f"{unit!r}: units are rows and percent")
    arguments = rule.get("arguments", {})
    if not isinstance(arguments, dict):
        problems.add(OdcsReason.NOT_ODCS, f"{path}.arguments", "arguments is a mapping")
        arguments = {}
    if "validValues" in rule:  # v3.0.x: `rule: validValues` with the list beside it
        arguments = {**arguments, "validValues": rule["validValues"]}
    operators = [k for k in OPERATORS if k in rule]
    if not operators and named == "validValues":
        operators, rule = ["mustBe"], {**rule, "mustBe": 0}  # v3.0.x: valid values, no operator: all valid
    if len(operators) != 1:
        problems.add(
            OdcsReason.NOT_ODCS, path, f"one comparison operator per rule ({', '.join(OPERATORS)}), got {operators}"
        )
        return None
    return Rule(metric, operators[0], rule[operators[0]], unit, arguments)


def zero_tolerance(rule: Rule, path: str, problems: Problems) -> bool:
    """The rule allows no offending row (mlvault refuses a file at the first one)."""
    op, value, rows = rule.operator, rule.value, rule.unit == "rows"
    ok = finite_number(value) and (
        (op == "mustBe" and value == 0)
        or (op == "mustBeLessOrEqualTo" and (0 <= value < 1 if rows else value == 0))
        or (op == "mustBeLessThan" and rows and 0 < value <= 1)
    )
    if not ok:
        problems.add(
            OdcsReason.NOT_ENFORCEABLE,
            f"{path}.{op}",
            f"{op}: {value!r} ({rule.unit}) tolerates offending rows; mlvault refuses a file at the first one: "
            "only zero tolerance maps (mustBe: 0)",
        )
    return ok


def property_rule(rule: Rule, where: str, col: ColumnRules, mapper: PropertyMapper) -> str | None:
    """What a property's zero-tolerance rule maps to (nullable, unique, allowed, pattern); None: refused."""
    add, args = mapper.problems.add, rule.arguments
    if rule.metric == "nullValues":
        col.nullable = False
        return "nullable"
    if rule.metric == "missingValues":
        missing = args.get("missingValues", [None])
        if not isinstance(missing, list) or not all(v is None or v in mapper.null_tokens for v in missing):
            add(
                OdcsReason.NOT_ENFORCEABLE,
                f"{where}.arguments.missingValues",
                f"{missing!r}: mlvault forbids nulls (for CSV, the null tokens {mapper.null_tokens}), not other "
                "values: declare them as CSV null tokens (--null-value) or list the valid values instead",
            )
            return None
        col.nullable = False
        return "nullable"
    if rule.metric == "duplicateValues":
        if args:
            add(OdcsReason.NOT_ODCS, f"{where}.arguments", "a property's duplicateValues takes no arguments")
            return None
        col.unique = col.unique or True
        return "unique"
    maps_to = None  # invalidValues
    if "validValues" in args:
        values = _valid_values(mapper, args["validValues"], f"{where}.arguments.validValues", col)
        if values is not None:
            col.allowed = values if col.allowed is None else [v for v in col.allowed if v in values]
            maps_to = "allowed"
    if "pattern" in args:
        mapper.pattern(args["pattern"], f"{where}.arguments.pattern", col)
        maps_to = maps_to or "pattern"
    for key in sorted(set(args) - {"validValues", "pattern"}):
        add(OdcsReason.NOT_ODCS, f"{where}.arguments.{key}", "invalidValues takes validValues or pattern")
    if not {"validValues", "pattern"} & set(args):
        add(OdcsReason.NOT_ODCS, f"{where}.arguments", "invalidValues needs validValues or pattern")
    return maps_to


def _valid_values(mapper: PropertyMapper, values: Any, path: str, col: ColumnRules) -> list[Any] | None:
    add = mapper.problems.add
    if not isinstance(values, list) or not values:
        add(OdcsReason.NOT_ODCS, path, "validValues is a non-empty list")
        return None
    if col.type in ("date32", "timestamp[ms]"):
        add(OdcsReason.NOT_ENFORCEABLE, path, "mlvault checks allowed values of numbers, strings and booleans")
        return None
    if any(v is None for v in values):
        add(OdcsReason.NOT_ENFORCEABLE, path, "null is not a value: a property may be null unless it is required")
        return None
    fits = {
        "string": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "int32": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float32": finite_number,
    }
    fits["int64"], fits["float64"] = fits["int32"], fits["float32"]
    wrong = [(k, v) for k, v in enumerate(values) if not fits[col.type](v)]
    for k, v in wrong:
        hint = " (a YAML boolean: quote it)" if isinstance(v, bool) else ""
        add(OdcsReason.INVALID_CONTRACT, f"{path}[{k}]", f"{v!r} is not a {col.type} value{hint}")
    return None if wrong else values


def rows_from_rules(
    rules: Any, path: str, columns: list[ColumnRules], problems: Problems, notes: list[str]
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The row bounds of a schema object's rules (rowCount), and single-property duplicateValues as `unique`;
    returns the rows and the rules' annotations (metadata)."""
    low: int | None = None
    high: int | None = None
    kept: list[dict[str, Any]] = []
    if rules is None:
        return {}, kept
    if not isinstance(rules, list):
        problems.add(OdcsReason.NOT_ODCS, path, "quality is a list of rules")
        return {}, kept
    by_name = {c.name: c for c in columns}
    for i, raw in enumerate(rules):
        where = f"{path}[{i}]"
        rule = parse_rule(raw, where, problems)
        if rule is None:
            continue
        if rule.metric == "duplicateValues":
            names = rule.arguments.get("properties")
            if not isinstance(names, list) or not names:
                problems.add(OdcsReason.NOT_ODCS, f"{where}.arguments.properties", "the properties to compare")
            elif len(names) > 1:
                problems.add(
                    OdcsReason.NOT_ENFORCEABLE,
                    f"{where}.arguments.properties",
                    f"{names}: mlvault checks single-column uniqueness, not combinations",
                )
            elif names[0] not in by_name:
                problems.add(OdcsReason.NOT_ODCS, f"{where}.arguments.properties[0]", f"no property {names[0]!r}")
            elif zero_tolerance(rule, where, problems):
                column = by_name[names[0]]
                column.unique = column.unique or True
                column.annotate("unique", raw)
            continue
        if rule.metric != "rowCount":
            problems.add(OdcsReason.NOT_ODCS, f"{where}.metric", f"{rule.metric} is a property's metric")
            continue
        bounds = _row_bounds(rule, where, problems)
        if bounds is None:
            continue
        if rule.operator == "mustBeBetween":
            notes.append(
                f"{where} mustBeBetween {rule.value}: exclusive, as ODCS defines it (the equivalent of "
                f"mustBeGreaterThan and mustBeLessThan): rows {bounds[0]} to {bounds[1]}"
            )
        lo, hi = bounds
        low = lo if low is None or (lo is not None and lo > low) else low
        high = hi if high is None or (hi is not None and hi < high) else high
        annotations = {k: raw[k] for k in RULE_ANNOTATIONS if k in raw}
        if annotations:
            kept.append({"mapsTo": "rows.min" if lo is not None else "rows.max", **annotations})
    rows = ({"min": low} if low is not None else {}) | ({"max": high} if high is not None else {})
    return rows, kept


def _row_bounds(rule: Rule, where: str, problems: Problems) -> tuple[int | None, int | None] | None:
    op, value = rule.operator, rule.value
    if rule.unit != "rows":
        problems.add(OdcsReason.NOT_ENFORCEABLE, f"{where}.unit", "a row count in percent has no reference")
        return None
    pair = op in ("mustBeBetween", "mustNotBeBetween")
    if (pair and not (isinstance(value, list) and len(value) == 2 and all(map(finite_number, value)))) or (
        not pair and not finite_number(value)
    ):
        problems.add(OdcsReason.NOT_ODCS, f"{where}.{op}", f"{value!r} is not a number" + (" pair" if pair else ""))
        return None
    if op == "mustBe":
        if value != int(value) or value < 0:
            problems.add(OdcsReason.INVALID_CONTRACT, f"{where}.{op}", f"{value!r} rows: a count is a whole number")
            return None
        return int(value), int(value)
    if op == "mustBeGreaterThan":
        return math.floor(value) + 1, None
    if op == "mustBeGreaterOrEqualTo":
        return math.ceil(value), None
    if op == "mustBeLessThan":
        return None, math.ceil(value) - 1
    if op == "mustBeLessOrEqualTo":
        return None, math.floor(value)
    if op == "mustBeBetween":  # ODCS: "the equivalent to mustBeGreaterThan and mustBeLessThan" (exclusive)
        return math.floor(value[0]) + 1, math.ceil(value[1]) - 1
    problems.add(OdcsReason.NOT_ENFORCEABLE, f"{where}.{op}", "mlvault bounds the row count from below and above")
    return None
