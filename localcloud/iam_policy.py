"""Evaluation of resource-policy statements (bucket and queue policies), as AWS evaluates them.

moto treats any conditional Deny in a bucket policy as unconditional and ignores principals, so a bucket
with a TLS-only or retention-floor statement would refuse every request. The local cloud evaluates bucket
policies here instead (services/s3.py, gap 3, checks every S3 request with `denying_statement`): principals,
Action/NotAction, Resource/NotResource and conditions. Requests need no Allow: the local cloud does not enforce
identity policies, so nothing is denied for lack of one. Allow statements are evaluated only where AWS itself
checks a resource policy before acting (`allowing_statement`: S3 validating a notification destination, gap 2).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from localcloud.intrinsics import UnsupportedError


@dataclass(frozen=True)
class Request:
    principal_arn: str
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)  # condition keys present in the request
    service: str = ""  # set when an AWS service (not a principal of the account) makes the request


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _principal_matches(principal: Any, request: Request) -> bool:
    if principal == "*":
        return True  # includes services acting on behalf of the account
    if not isinstance(principal, Mapping):
        raise UnsupportedError(f"policy Principal {principal!r}")
    if request.service:
        return request.service in _as_list(principal.get("Service", []))
    aws = principal.get("AWS")
    if aws is None:
        return False  # Service / Federated principals never make a signed user request
    for candidate in _as_list(aws):
        if candidate == "*" or candidate == request.principal_arn:
            return True
        account = request.principal_arn.split(":")[4] if request.principal_arn.count(":") >= 5 else ""
        if candidate in (account, f"arn:aws:iam::{account}:root"):
            return True
    return False


def _matches_any(patterns: Any, value: str, *, case_sensitive: bool) -> bool:
    for pattern in _as_list(patterns):
        p, v = (pattern, value) if case_sensitive else (str(pattern).lower(), value.lower())
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
}


def _compare(operator: str, expected: str, actual: str) -> bool:
    if operator in ("StringEquals", "StringNotEquals"):
        return actual == expected
    if operator in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if operator in ("StringLike", "StringNotLike", "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike"):
        return _like(expected, actual)
    if operator == "Bool":
        return actual.lower() == str(expected).lower()
    if operator.startswith("Numeric"):
        a, e = float(actual), float(expected)
        return {
            "NumericEquals": a == e,
            "NumericNotEquals": a == e,
            "NumericLessThan": a < e,
            "NumericLessThanEquals": a <= e,
            "NumericGreaterThan": a > e,
            "NumericGreaterThanEquals": a >= e,
        }[operator]
    raise UnsupportedError(f"policy condition operator {operator}")


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    if operator.startswith(("ForAnyValue:", "ForAllValues:")):
        raise UnsupportedError(f"policy condition set operator {operator}")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base == "Null":
        return (key not in context) == (str(expected).lower() == "true")
    actual = context.get(key)
    if actual is None:
        return if_exists or base in _NEGATED
    hit = any(_compare(base, str(e), actual) for e in _as_list(expected))
    return not hit if base in _NEGATED else hit


def _statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "NotPrincipal" in statement:
        raise UnsupportedError("policy NotPrincipal")
    if not _principal_matches(statement.get("Principal"), request):
        return False
    if "Action" in statement:
        if not _matches_any(statement["Action"], request.action, case_sensitive=False):
            return False
    elif _matches_any(statement.get("NotAction", []), request.action, case_sensitive=False):
        return False
    if "Resource" in statement:
        if not _matches_any(statement["Resource"], request.resource, case_sensitive=True):
            return False
    elif _matches_any(statement.get("NotResource", []), request.resource, case_sensitive=True):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not _condition_holds(operator, key, expected, request.context):
                return False
    return True


def denying_statement(policy: Mapping[str, Any] | None, request: Request) -> Mapping[str, Any] | None:
    """The first Deny statement of the policy that applies to the request, or None."""
    return _first_statement(policy, request, "Deny")


def allowing_statement(policy: Mapping[str, Any] | None, request: Request) -> Mapping[str, Any] | None:
    """The first Allow statement of the policy that applies to the request, or None (used where AWS itself
    checks a resource policy before acting, e.g. S3 validating a notification destination)."""
    return _first_statement(policy, request, "Allow")


def _first_statement(policy: Mapping[str, Any] | None, request: Request, effect: str) -> Mapping[str, Any] | None:
    if not policy:
        return None
    for statement in _as_list(policy.get("Statement", [])):
        if statement.get("Effect") == effect and _statement_applies(statement, request):
            return statement
    return None
