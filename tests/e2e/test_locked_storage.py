"""The locked buckets as deployed: Object Lock COMPLIANCE plus bucket-policy denies, enforced on the local
cloud for the caller's principal (gaps.py, item 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import break_glass


@pytest.fixture(scope="module")
def lake(ingest):
    return ingest.lake


def code_of(call) -> str:
    try:
        call()
    except Exception as err:  # noqa: BLE001 - the code is what we assert
        return err.response["Error"]["Code"]
    return "OK"


def test_new_lake_versions_get_compliance_retention(ingest, lake):
    version = ingest.s3.put_object(Bucket=lake, Key="t/a.csv", Body=b"1")["VersionId"]
    head = ingest.s3.head_object(Bucket=lake, Key="t/a.csv", VersionId=version)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=6)


def test_deleting_a_lake_version_is_denied_by_the_bucket_policy(ingest, lake):
    version = ingest.s3.put_object(Bucket=lake, Key="t/b.csv", Body=b"1")["VersionId"]
    assert code_of(lambda: ingest.s3.delete_object(Bucket=lake, Key="t/b.csv", VersionId=version)) == "AccessDenied"
    denied = [e for e in ingest.cloud.events("s3-denied") if e["resource"].endswith("/t/b.csv")]
    assert denied[-1]["action"] == "s3:DeleteObjectVersion"
    assert denied[-1]["statement"] == "DenyDeleteAndUnlockExceptBreakGlass"
    assert ingest.s3.head_object(Bucket=lake, Key="t/b.csv", VersionId=version)["ContentLength"] == 1


def test_shortening_retention_is_denied(ingest, lake):
    version = ingest.s3.put_object(Bucket=lake, Key="t/c.csv", Body=b"1")["VersionId"]
    soon = datetime.now(UTC) + timedelta(days=1)
    assert (
        code_of(
            lambda: ingest.s3.put_object_retention(
                Bucket=lake,
                Key="t/c.csv",
                VersionId=version,
                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": soon},
                BypassGovernanceRetention=True,
            )
        )
        == "AccessDenied"
    )


def test_writes_asking_for_less_than_the_floor_are_denied(ingest, lake):
    soon = datetime.now(UTC) + timedelta(days=2)
    assert (
        code_of(
            lambda: ingest.s3.put_object(
                Bucket=lake,
                Key="t/short.csv",
                Body=b"1",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=soon,
                ChecksumAlgorithm="SHA256",
            )
        )
        == "AccessDenied"
    )
    later = datetime.now(UTC) + timedelta(days=30)
    assert (
        code_of(
            lambda: ingest.s3.put_object(
                Bucket=lake,
                Key="t/long.csv",
                Body=b"1",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=later,
                ChecksumAlgorithm="SHA256",
            )
        )
        == "OK"
    )


def test_the_lake_policy_cannot_be_replaced_by_the_developer(ingest, lake):
    assert code_of(lambda: ingest.s3.put_bucket_policy(Bucket=lake, Policy='{"Statement": []}')) == "AccessDenied"
    assert code_of(lambda: ingest.s3.delete_bucket_policy(Bucket=lake)) == "AccessDenied"
    assert "DenyDeleteAndUnlockExceptBreakGlass" in ingest.s3.get_bucket_policy(Bucket=lake)["Policy"]


def test_break_glass_passes_the_policy_but_compliance_lock_still_holds(ingest, lake, cloud):
    version = ingest.s3.put_object(Bucket=lake, Key="t/d.csv", Body=b"1")["VersionId"]
    s3 = break_glass(cloud, "s3", "s3:*")
    before = len(cloud.events("s3-denied"))
    assert code_of(lambda: s3.delete_object(Bucket=lake, Key="t/d.csv", VersionId=version)) == "AccessDenied"
    assert len(cloud.events("s3-denied")) == before  # not the policy: Object Lock COMPLIANCE refused it
    assert ingest.s3.head_object(Bucket=lake, Key="t/d.csv", VersionId=version)["ContentLength"] == 1
