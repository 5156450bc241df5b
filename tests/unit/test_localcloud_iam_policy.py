"""The local cloud's resource-policy evaluation (localcloud/iam_policy.py, gap 3), on the statements mlvault
deploys."""

from __future__ import annotations

import pytest

from localcloud.iam_policy import Request, allowing_statement, denying_statement
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


@pytest.mark.parametrize("condition", [{"ForAnyValue:StringEquals": {"k": "v"}}, {"DateLessThan": {"k": "v"}}])
def test_unsupported_condition_operators_fail_loudly(condition):
    policy = {
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*", "Condition": condition}]
    }
    with pytest.raises(UnsupportedError):
        denying_statement(policy, Request(DEVELOPER, "s3:GetObject", LAKE, {"k": "v"}))
