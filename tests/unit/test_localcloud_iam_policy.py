"""The local cloud's policy evaluation (localcloud/iam_policy.py, gaps 3 and 14), on the statements mlvault deploys
and on the same-account rules AWS applies: explicit Deny wins, an identity or resource Allow grants, key policies
and trust policies are required."""

from __future__ import annotations

import pytest

from localcloud.iam_policy import ADMINISTRATOR, Policies, Request, allowing_statement, denying_statement, evaluate
from localcloud.intrinsics import UnsupportedError

BREAK_GLASS = "arn:aws:iam::123456789012:role/mlvault-break-glass"
DEVELOPER = "arn:aws:iam::123456789012:user/dev"
LAKE = "arn:aws:s3:::lake"
POLICY = {
    "Statement": [
        {
            "Sid": "Tls",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:*",
            "Resource": [LAKE, f"{LAKE}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "NoDelete",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention"],
            "Resource": f"{LAKE}/*",
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": BREAK_GLASS}},
        },
        {
            "Sid": "Floor",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:PutObject",
            "Resource": f"{LAKE}/*",
            "Condition": {"NumericLessThan": {"s3:object-lock-remaining-retention-days": "7"}},
        },
        {
            "Sid": "Outside",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:PutObject",
            "NotResource": f"{LAKE}/producers/*",
        },
    ]
}
SECURE = {"aws:SecureTransport": "true"}


def sid(principal, action, resource, **context):
    statement = denying_statement(POLICY, Request(principal, action, resource, {**SECURE, **context}))
    return statement and statement["Sid"]


def test_tls_only_denies_insecure_transport_and_nothing_else():
    assert sid(DEVELOPER, "s3:GetObject", f"{LAKE}/producers/a", **{"aws:SecureTransport": "false"}) == "Tls"
    assert sid(DEVELOPER, "s3:GetObject", f"{LAKE}/producers/a") is None


def test_deletes_are_denied_to_everyone_but_break_glass():
    assert (
        sid(DEVELOPER, "s3:DeleteObjectVersion", f"{LAKE}/producers/a", **{"aws:PrincipalArn": DEVELOPER}) == "NoDelete"
    )
    assert (
        sid(BREAK_GLASS, "s3:DeleteObjectVersion", f"{LAKE}/producers/a", **{"aws:PrincipalArn": BREAK_GLASS}) is None
    )


def test_a_negated_condition_on_a_missing_key_matches_as_aws_evaluates_it():
    assert sid(DEVELOPER, "s3:DeleteObject", f"{LAKE}/producers/a") == "NoDelete"


def test_retention_floor_applies_only_when_the_writer_asks_for_retention():
    assert sid(DEVELOPER, "s3:PutObject", f"{LAKE}/producers/a") is None
    assert (
        sid(DEVELOPER, "s3:PutObject", f"{LAKE}/producers/a", **{"s3:object-lock-remaining-retention-days": "2"})
        == "Floor"
    )
    assert (
        sid(DEVELOPER, "s3:PutObject", f"{LAKE}/producers/a", **{"s3:object-lock-remaining-retention-days": "30"})
        is None
    )


def test_not_resource():
    assert sid(DEVELOPER, "s3:PutObject", f"{LAKE}/elsewhere/a") == "Outside"


def test_service_principals_need_a_matching_allow():
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": "arn:aws:sqs:r:1:q",
                "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::ingest"}},
            }
        ]
    }
    ok = Request(
        "", "sqs:SendMessage", "arn:aws:sqs:r:1:q", {"aws:SourceArn": "arn:aws:s3:::ingest"}, service="s3.amazonaws.com"
    )
    other = Request(
        "", "sqs:SendMessage", "arn:aws:sqs:r:1:q", {"aws:SourceArn": "arn:aws:s3:::other"}, service="s3.amazonaws.com"
    )
    assert allowing_statement(policy, ok) is not None
    assert allowing_statement(policy, other) is None
    assert allowing_statement(policy, Request(DEVELOPER, "sqs:SendMessage", "arn:aws:sqs:r:1:q")) is None


@pytest.mark.parametrize(
    "condition", [{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"ForEachValue:StringEquals": {"k": "v"}}]
)
def test_unsupported_condition_operators_fail_loudly(condition):
    policy = {
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*", "Condition": condition}]
    }
    with pytest.raises(UnsupportedError):
        denying_statement(policy, Request(DEVELOPER, "s3:GetObject", LAKE, {"k": "v"}))


def test_policy_variables_fail_loudly():
    policy = {
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "arn:aws:s3:::b/${aws:username}/*"}
        ]
    }
    with pytest.raises(UnsupportedError, match="policy variable"):
        denying_statement(policy, Request(DEVELOPER, "s3:GetObject", "arn:aws:s3:::b/x"))


# --- evaluate: the decision (gap 14) --------------------------------------------------------------------------

ROLE = "arn:aws:iam::123456789012:role/producer"
OBJECT = "arn:aws:s3:::ingest/producers/acme/a.csv"


def allow(action, resource, **extra):
    return {"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource, **extra}]}


def decide(identity=(), resource=None, *, action="s3:PutObject", target=OBJECT, principal=ROLE, **kwargs):
    request = Request(principal, action, target, {"aws:PrincipalArn": principal, **SECURE})
    return evaluate(request, Policies(identity=list(identity), resource=resource, **kwargs))


def test_an_identity_allow_grants_and_nothing_else_does():
    assert decide([allow("s3:PutObject", "arn:aws:s3:::ingest/producers/acme/*")]).allowed
    refused = decide([allow("s3:PutObject", "arn:aws:s3:::ingest/producers/globex/*")])
    assert (refused.allowed, refused.reason, refused.policy) == (False, "no allow", "identity-based")
    assert not decide([]).allowed


def test_an_explicit_deny_anywhere_wins_over_any_allow():
    bucket_deny = {"Statement": [{"Sid": "No", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}
    decision = decide([ADMINISTRATOR], bucket_deny)
    assert (decision.allowed, decision.reason, decision.policy, decision.sid) == (
        False,
        "explicit deny",
        "resource-based",
        "No",
    )
    identity_deny = {"Statement": [{"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}]}
    assert decide([ADMINISTRATOR, identity_deny]).policy == "identity-based"


def test_a_resource_policy_naming_the_caller_grants_one_naming_the_account_delegates():
    naming = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "s3:PutObject", "Resource": "*"}]}
    assert decide([], naming).allowed
    account = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "*", "Resource": "*"}
        ]
    }
    assert not decide([], account).allowed
    assert decide([allow("s3:PutObject", "*")], account).allowed


def test_a_key_policy_is_required_and_identity_policies_count_only_where_it_delegates():
    key = "arn:aws:kms:eu-west-1:123456789012:key/k"
    delegating = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ]
    }
    sign = allow("kms:Sign", key)
    assert decide([sign], delegating, action="kms:Sign", target=key, requires_resource_allow=True).allowed
    assert not decide([], delegating, action="kms:Sign", target=key, requires_resource_allow=True).allowed
    assert not decide([sign], None, action="kms:Sign", target=key, requires_resource_allow=True).allowed
    lone = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:Sign", "Resource": "*"}]}
    assert decide([], lone, action="kms:Sign", target=key, requires_resource_allow=True).allowed
    assert not decide([ADMINISTRATOR], lone, action="kms:Sign", target=key, principal=DEVELOPER,
                      requires_resource_allow=True).allowed  # fmt: skip


def test_a_session_policy_limits_the_identity_policies():
    wide = allow("s3:*", "*")
    narrow = allow("s3:PutObject", "arn:aws:s3:::ingest/producers/acme/*")
    assert decide([wide], session=narrow).allowed
    assert not decide([wide], session=narrow, action="s3:DeleteObject").allowed


def test_identity_statements_need_a_resource_and_honour_not_resource():
    assert not decide([{"Statement": [{"Effect": "Allow", "Action": "s3:PutObject"}]}]).allowed
    everything_but_locked = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::lake/*"}]}
    assert decide([everything_but_locked]).allowed
    assert not decide([everything_but_locked], target="arn:aws:s3:::lake/x").allowed


def test_condition_keys_are_case_insensitive_as_in_aws():
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "lambda:InvokeFunction",
                "Resource": "*",
                "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:events:eu-west-1:123456789012:rule/r"}},
            }
        ]
    }
    source = {"aws:SourceArn": "arn:aws:events:eu-west-1:123456789012:rule/r"}
    request = Request("", "lambda:InvokeFunction", "arn:aws:lambda:f", source, service="events.amazonaws.com")
    assert allowing_statement(policy, request) is not None


@pytest.mark.parametrize(
    ("operator", "expected", "actual", "holds"),
    [
        ("ForAnyValue:StringEquals", ["a", "b"], ["b", "c"], True),
        ("ForAnyValue:StringEquals", ["a"], ["b", "c"], False),
        ("ForAllValues:StringEquals", ["a", "b"], ["a", "b"], True),
        ("ForAllValues:StringEquals", ["a"], ["a", "b"], False),
        ("DateLessThan", "2030-01-01T00:00:00Z", "2029-12-31T23:59:59Z", True),
        ("DateGreaterThan", "2030-01-01T00:00:00Z", "2029-12-31T23:59:59Z", False),
        ("NumericGreaterThanEquals", "7", "7", True),
        ("StringNotLike", "producers/*", "elsewhere/a", True),
    ],
)
def test_condition_operators(operator, expected, actual, holds):
    policy = {
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {operator: {"k": expected}}}]
    }
    request = Request(ROLE, "x:Y", "*", {"k": actual})
    assert (evaluate(request, Policies(identity=[policy])).allowed) is holds


def test_for_all_values_of_an_absent_key_holds_and_for_any_value_does_not():
    for operator, holds in (("ForAllValues:StringEquals", True), ("ForAnyValue:StringEquals", False)):
        policy = {
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {operator: {"k": "v"}}}]
        }
        assert evaluate(Request(ROLE, "x:Y", "*", {}), Policies(identity=[policy])).allowed is holds
