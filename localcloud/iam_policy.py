"""Evaluation of IAM policy documents as AWS evaluates them for a request of the same account (gap 3, gap 14).

`evaluate` is the decision: an explicit Deny in any applicable policy (the caller's identity policies, the
resource's policy, a session policy) wins; otherwise the request needs an Allow. Same-account rules, as in the IAM
User Guide's policy evaluation logic: an Allow of an identity policy suffices, and so does an Allow of the
resource's policy that names the caller (its role or user ARN, or `*`); an Allow that names only the account
(`arn:aws:iam::<account>:root`) delegates to the caller's identity policies. Two resource policies are required
rather than sufficient: a KMS key policy (`requires_resource_allow`: without an Allow of the key policy, for the
caller or delegating to the account, identity policies grant nothing) and a role's trust policy for
sts:AssumeRole. Statements are matched on Principal, Action/NotAction, Resource/NotResource and Condition.

Supported conditions: the String, Arn, Numeric, Date and Bool operators, their IfExists forms, Null, and the
ForAnyValue:/ForAllValues: set operators. NotPrincipal, policy variables (`${...}`) and other operators fail
loudly (UnsupportedError): the local cloud never guesses what a policy means.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from localcloud.intrinsics import UnsupportedError


@dataclass(frozen=True)
class Request:
    principal_arn: str
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)  # condition keys present (a value or a list)
    service: str = ""  # set when an AWS service (not a principal of the account) makes the request


class Grade(IntEnum):
    """How a resource-policy statement's Principal matches the caller."""

    NONE = 0
    ACCOUNT = 1  # through the account (root): delegates to the caller's identity policies
    EXPLICIT = 2  # the caller itself, or "*"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "allowed", "explicit deny" or "no allow"
    policy: str = ""  # where the deciding statement is: "identity-based", "resource-based", "session"
    statement: Mapping[str, Any] | None = None

    @property
    def sid(self) -> str:
        return str((self.statement or {}).get("Sid", ""))


@dataclass(frozen=True)
class Policies:
    """The policies that apply to one request."""

    identity: Sequence[Mapping[str, Any]] = ()
    resource: Mapping[str, Any] | None = None
    session: Mapping[str, Any] | None = None  # an AssumeRole session policy limits the identity policies
    requires_resource_allow: bool = False  # KMS key policies and role trust policies


ADMINISTRATOR = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def evaluate(request: Request, policies: Policies) -> Decision:
    for kind, documents in (
        ("identity-based", policies.identity),
        ("resource-based", [policies.resource] if policies.resource else []),
        ("session", [policies.session] if policies.session else []),
    ):
        for document in documents:
            denied = _first(document, request, "Deny", identity=kind != "resource-based")
            if denied is not None:
                return Decision(False, "explicit deny", kind, denied[0])
    identity = next(
        (hit for document in policies.identity if (hit := _first(document, request, "Allow", identity=True))), None
    )
    if identity is not None and policies.session is not None:
        identity = _first(policies.session, request, "Allow", identity=True)
    resource = _best_allow(policies.resource, request)
    if policies.requires_resource_allow:
        if resource is None:
            return Decision(False, "no allow", "resource-based")
        if resource[1] is Grade.EXPLICIT:
            return Decision(True, "allowed", "resource-based", resource[0])
        if identity is None:
            return Decision(False, "no allow", "identity-based")
        return Decision(True, "allowed", "identity-based", identity[0])
    if identity is not None:
        return Decision(True, "allowed", "identity-based", identity[0])
    if resource is not None and resource[1] is Grade.EXPLICIT:
        return Decision(True, "allowed", "resource-based", resource[0])
    return Decision(False, "no allow", "identity-based")


def denying_statement(policy: Mapping[str, Any] | None, request: Request) -> Mapping[str, Any] | None:
    """The first Deny statement of the (resource) policy that applies to the request, or None."""
    hit = _first(policy, request, "Deny", identity=False)
    return hit[0] if hit else None


def allowing_statement(policy: Mapping[str, Any] | None, request: Request) -> Mapping[str, Any] | None:
    """The first Allow statement of the (resource) policy that applies to the request, or None (used where AWS
    itself checks a resource policy before acting, e.g. S3 validating a notification destination)."""
    hit = _first(policy, request, "Allow", identity=False)
    return hit[0] if hit else None


def _best_allow(policy: Mapping[str, Any] | None, request: Request) -> tuple[Mapping[str, Any], Grade] | None:
    best = None
    for statement in _statements(policy):
        if statement.get("Effect") != "Allow":
            continue
        grade = _statement_grade(statement, request, identity=False)
        if grade and (best is None or grade > best[1]):
            best = (statement, grade)
    return best


def _first(
    policy: Mapping[str, Any] | None, request: Request, effect: str, *, identity: bool
) -> tuple[Mapping[str, Any], Grade] | None:
    for statement in _statements(policy):
        if statement.get("Effect") == effect:
            grade = _statement_grade(statement, request, identity=identity)
            if grade:
                return statement, grade
    return None


def _statements(policy: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not policy:
        return []
    return _as_list(policy.get("Statement", []))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str) -> bool:
    if "${" in pattern:
        raise UnsupportedError(f"policy variable in {pattern!r}")
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) >= 6 else ""


def _principal_grade(principal: Any, request: Request) -> Grade:
    if principal == "*":
        return Grade.EXPLICIT  # includes services acting on behalf of the account
    if not isinstance(principal, Mapping):
        raise UnsupportedError(f"policy Principal {principal!r}")
    aws = principal.get("AWS")
    if aws == "*" or (isinstance(aws, list) and "*" in aws):
        return Grade.EXPLICIT  # {"AWS": "*"} is the same as "*"
    if request.service:
        return Grade.EXPLICIT if request.service in _as_list(principal.get("Service", [])) else Grade.NONE
    if aws is None:
        return Grade.NONE  # Service / Federated principals never make a signed user request
    best = Grade.NONE
    account = _account_of(request.principal_arn)
    for candidate in _as_list(aws):
        if candidate == "*" or candidate == request.principal_arn:
            return Grade.EXPLICIT
        if account and candidate in (account, f"arn:aws:iam::{account}:root"):
            best = Grade.ACCOUNT
    return best


def _matches_any(patterns: Any, value: str, *, case_sensitive: bool) -> bool:
    for pattern in _as_list(patterns):
        p, v = (str(pattern), value) if case_sensitive else (str(pattern).lower(), value.lower())
        if _like(p, v):
            return True
    return False


_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
    "NumericNotEquals",
    "DateNotEquals",
}
_OPERATORS = {
    "Null",
    "Bool",
    *(f"{kind}{negation}{test}" for kind in ("String",) for negation in ("", "Not") for test in ("Equals", "Like")),
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    *(f"Arn{test}" for test in ("Equals", "NotEquals", "Like", "NotLike")),
    *(
        f"{kind}{test}"
        for kind in ("Numeric", "Date")
        for test in ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals")
    ),
}
_ORDER = {
    "Equals": lambda a, e: a == e,
    "NotEquals": lambda a, e: a == e,  # negated by the caller
    "LessThan": lambda a, e: a < e,
    "LessThanEquals": lambda a, e: a <= e,
    "GreaterThan": lambda a, e: a > e,
    "GreaterThanEquals": lambda a, e: a >= e,
}


def _date(value: str) -> datetime:
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text)).astimezone()
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _compare(operator: str, expected: str, actual: str) -> bool:
    if operator in ("StringEquals", "StringNotEquals"):
        return actual == expected
    if operator in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if operator in ("StringLike", "StringNotLike", "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike"):
        return _like(expected, actual)
    if operator == "Bool":
        return actual.lower() == str(expected).lower()
    if operator.startswith("Numeric") and operator[7:] in _ORDER:
        return _ORDER[operator[7:]](float(actual), float(expected))
    if operator.startswith("Date") and operator[4:] in _ORDER:
        return _ORDER[operator[4:]](_date(actual), _date(expected))
    raise UnsupportedError(f"policy condition operator {operator}")


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    set_operator, _, base = operator.rpartition(":")
    if set_operator and set_operator not in ("ForAnyValue", "ForAllValues"):
        raise UnsupportedError(f"policy condition set operator {operator}")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in _OPERATORS:
        raise UnsupportedError(f"policy condition operator {operator}")
    actual = _lookup(context, key)
    if base == "Null":
        return (actual is None) == (str(expected).lower() == "true")
    if actual is None:
        if set_operator == "ForAllValues":
            return True  # vacuously true for an absent key, as AWS evaluates it
        if set_operator == "ForAnyValue":
            return False
        return if_exists or base in _NEGATED
    negated = base in _NEGATED
    values = [str(v) for v in _as_list(actual)]

    def matches(value: str) -> bool:
        hit = any(_compare(base, str(e), value) for e in _as_list(expected))
        return not hit if negated else hit

    if set_operator == "ForAllValues":
        return all(matches(v) for v in values)
    return any(matches(v) for v in values)


def _lookup(context: Mapping[str, Any], key: str) -> Any:
    """A condition key's value: keys are case-insensitive (moto writes `AWS:SourceArn`, CDK `aws:SourceArn`)."""
    if key in context:
        return context[key]
    wanted = key.lower()
    return next((v for k, v in context.items() if k.lower() == wanted), None)


def _statement_grade(statement: Mapping[str, Any], request: Request, *, identity: bool) -> Grade:
    if "NotPrincipal" in statement:
        raise UnsupportedError("policy NotPrincipal")
    grade = Grade.EXPLICIT if identity else _principal_grade(statement.get("Principal"), request)
    if not grade:
        return Grade.NONE
    if "Action" in statement:
        if not _matches_any(statement["Action"], request.action, case_sensitive=False):
            return Grade.NONE
    elif _matches_any(statement.get("NotAction", []), request.action, case_sensitive=False):
        return Grade.NONE
    if "Resource" in statement:
        if not _matches_any(statement["Resource"], request.resource, case_sensitive=True):
            return Grade.NONE
    elif "NotResource" in statement:
        if _matches_any(statement["NotResource"], request.resource, case_sensitive=True):
            return Grade.NONE
    elif identity:
        return Grade.NONE  # an identity policy statement without Resource grants nothing
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not _condition_holds(operator, key, expected, request.context):
                return Grade.NONE
    return grade
