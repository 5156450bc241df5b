"""Template assertions on the stateful stack: properties, never hashed logical ids (except the pinned list
of stateful ids, whose whole point is that they never change)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.policy.spec import PROTECTED_BUCKET_ACTIONS, PROTECTED_OBJECT_ACTIONS, ROLE_METADATA_KEY

STATEFUL_TYPES = ("AWS::S3::Bucket", "AWS::KMS::Key", "AWS::DynamoDB::Table", "AWS::SQS::Queue")


@pytest.fixture(scope="module")
def storage(synthesized):
    return synthesized.template("-storage")


def resources(template, type_):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def bucket(template, role):
    (found,) = [
        (k, v)
        for k, v in resources(template, "AWS::S3::Bucket").items()
        if v.get("Metadata", {}).get(ROLE_METADATA_KEY) == role
    ]
    return found


def policy_statements(template, bucket_id):
    (policy,) = [
        p
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_stateful_logical_ids_never_change(storage):
    pinned = json.loads((Path(__file__).parent / "stateful_logical_ids.json").read_text())
    now = {k: v["Type"] for k, v in storage["Resources"].items() if v["Type"] in STATEFUL_TYPES}
    assert now == pinned, (
        "a stateful resource's logical id changed: CloudFormation would replace it (and RETAIN orphans the old "
        "data). Keep construct ids stable; a deliberate change needs a migration plan."
    )


def test_stateful_resources_are_retained(storage):
    for logical_id, resource in storage["Resources"].items():
        if resource["Type"] in STATEFUL_TYPES:
            assert resource.get("DeletionPolicy") == "Retain", logical_id
            assert resource.get("UpdateReplacePolicy") == "Retain", logical_id


def test_stateful_and_stateless_stacks_are_separate(synthesized):
    ingest = synthesized.template("-ingest")
    assert not [
        r
        for r in ingest["Resources"].values()
        if r["Type"] in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::KMS::Key")
    ]


@pytest.mark.parametrize(("role", "days"), [("lake", 7), ("quarantine", 7), ("model", 7)])
def test_locked_buckets_have_compliance_object_lock(storage, role, days):
    _, props = bucket(storage, role)
    props = props["Properties"]
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}},
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["LoggingConfiguration"]["LogFilePrefix"] == f"{role}/"


@pytest.mark.parametrize("role", ["lake", "quarantine", "model"])
def test_locked_bucket_policy_denies_deletes_and_unlocks_to_all_but_break_glass(storage, role):
    bucket_id, _ = bucket(storage, role)
    statements = {s.get("Sid"): s for s in policy_statements(storage, bucket_id)}
    objects = statements["DenyDeleteAndUnlockExceptBreakGlass"]
    assert objects["Effect"] == "Deny"
    assert objects["Principal"] == {"AWS": "*"}
    assert sorted(objects["Action"]) == sorted(PROTECTED_OBJECT_ACTIONS)
    assert set(PROTECTED_OBJECT_ACTIONS) >= {
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:PutObjectRetention",
        "s3:PutObjectLegalHold",
        "s3:BypassGovernanceRetention",
    }
    exempt = json.dumps(objects["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
    assert exempt.endswith(':role/mlvault-break-glass"]]}')
    bucket_level = statements["DenyLockAndPolicyChangesExceptBreakGlassAndDeployer"]
    assert sorted(bucket_level["Action"]) == sorted(PROTECTED_BUCKET_ACTIONS)
    assert {"s3:PutBucketObjectLockConfiguration", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"} <= set(
        PROTECTED_BUCKET_ACTIONS
    )
    floor = statements["DenyWritesBelowRetentionFloor"]
    assert floor["Condition"] == {"NumericLessThan": {"s3:object-lock-remaining-retention-days": "7"}}
    tls = [s for s in statements.values() if s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")]
    assert tls
    assert tls[0]["Effect"] == "Deny"


def test_ingest_bucket(storage):
    bucket_id, resource = bucket(storage, "ingest")
    props = resource["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "ObjectLockEnabled" not in props
    assert props["BucketName"] == {"Fn::Join": ["", ["mlvault-dev-ingest-", {"Ref": "AWS::AccountId"}, "-eu-west-1"]]}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-multipart"] == {
        "Id": "abort-incomplete-multipart",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        "Status": "Enabled",
    }
    expiring = rules["expire-after-verdict"]
    assert expiring["TagFilters"] == [{"Key": "mlvault:verdict", "Value": "recorded"}]
    (notification,) = props["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Filter"] == {"S3Key": {"Rules": [{"Name": "prefix", "Value": "producers/"}]}}
    statements = {s.get("Sid"): s for s in policy_statements(storage, bucket_id)}
    outside = statements["DenyWritesOutsideProducerPrefixes"]
    assert outside["Effect"] == "Deny"
    assert outside["Action"] == "s3:PutObject"


def test_ingest_queue_has_dlq_and_only_accepts_the_ingest_bucket(storage):
    queues = resources(storage, "AWS::SQS::Queue")
    with_redrive = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    (queue,) = with_redrive
    assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5
    assert queue["Properties"]["KmsMasterKeyId"] == {
        "Fn::GetAtt": [next(iter(resources(storage, "AWS::KMS::Key"))), "Arn"]
    }
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"] for p in resources(storage, "AWS::SQS::QueuePolicy").values()
    ]
    s3_allow = [
        s for statements in policies for s in statements if s.get("Principal") == {"Service": "s3.amazonaws.com"}
    ]
    (allow,) = s3_allow
    assert "aws:SourceArn" in allow["Condition"]["ArnEquals"]


def test_access_log_bucket_receives_the_others_logs(storage):
    logs_id, logs = bucket(storage, "access-logs")
    assert (
        logs["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
            "SSEAlgorithm"
        ]
        == "AES256"
    )
    assert "ObjectLockEnabled" not in logs["Properties"]
    for role in ("ingest", "lake", "quarantine", "model"):
        _, other = bucket(storage, role)
        assert other["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}


def test_keys(storage):
    keys = list(resources(storage, "AWS::KMS::Key").values())
    data = [k for k in keys if k["Properties"].get("EnableKeyRotation")]
    signing = [k for k in keys if k["Properties"].get("KeySpec") == "ECC_NIST_P256"]
    assert len(data) == 1
    assert len(signing) == 1
    assert signing[0]["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    for key in (data[0], signing[0]):
        denies = {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"] if s["Effect"] == "Deny"}
        assert set(denies) == {
            "DenyKeyDestructionExceptBreakGlass",
            "DenyKeyPolicyChangesExceptBreakGlassAndDeployer",
            "DenyGrantsExceptBreakGlass",
        }
        assert all(d["Principal"] == {"AWS": "*"} and d["Resource"] == "*" for d in denies.values())
        destruction = denies["DenyKeyDestructionExceptBreakGlass"]
        assert {"kms:ScheduleKeyDeletion", "kms:DisableKey"} <= set(destruction["Action"])
        assert json.dumps(destruction["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]).endswith(
            ':role/mlvault-break-glass"]]}'
        )
        policy = denies["DenyKeyPolicyChangesExceptBreakGlassAndDeployer"]
        assert policy["Action"] == "kms:PutKeyPolicy"
        exempt = json.dumps(policy["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
        assert ":role/mlvault-break-glass" in exempt
        assert ":role/cdk-hnb659fds-cfn-exec-role-" in exempt
        grants = denies["DenyGrantsExceptBreakGlass"]
        assert grants["Action"] == "kms:CreateGrant"
        assert grants["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "false"}


def test_tables(storage):
    tables = resources(storage, "AWS::DynamoDB::Table")
    assert len(tables) == 2
    for table in tables.values():
        props = table["Properties"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["SSESpecification"]["SSEType"] == "KMS"
        assert props["DeletionProtectionEnabled"] is True
        assert props["KeySchema"] == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
