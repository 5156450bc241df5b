"""What mlvault's guarantees rest on, enforced as AWS enforces it (gaps 3, 14, 15, 16 of localcloud/gaps.py): IAM
for every request, S3 requests by their real actions, Object Lock and metadata rules, KMS key policies and key
state. Each refusal is shown with AWS's error and the acceptance next to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from localcloud import control
from tests.localcloud.app.stack import BREAK_GLASS, build_gaps_app, guarantees


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("iam")
    build_gaps_app(root / "cdk.out", extra=guarantees)
    handle = control.up(cdk_out=root / "cdk.out", state_dir=root / "state", alarm_scale=60)
    try:
        yield handle
    finally:
        control.down(root / "state")


def account(cloud):
    return cloud.state["account"]


def as_role(cloud, name, service, session="test"):
    """A client of the service signed with an STS session of the role (as a producer or an operator gets one)."""
    arn = f"arn:aws:iam::{account(cloud)}:role/{name}"
    creds = cloud.client("sts").assume_role(RoleArn=arn, RoleSessionName=session)["Credentials"]
    return cloud.client(
        service,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def error(call):
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"], refused.value.response["ResponseMetadata"]["HTTPStatusCode"]


def bucket(cloud, logical):
    return cloud.physical_id("gaps", "AWS::S3::Bucket", logical)


# --- 14. identity policies: a producer writes only under its own prefix -----------------------------------


def test_a_producer_writes_under_its_own_prefix_and_nowhere_else(cloud):
    s3 = as_role(cloud, "gaps-producer-alpha", "s3")
    ingest = bucket(cloud, "Ingest")
    version = s3.put_object(Bucket=ingest, Key="producers/alpha/a.csv", Body=b"1")["VersionId"]
    assert version
    assert error(lambda: s3.put_object(Bucket=ingest, Key="producers/beta/a.csv", Body=b"1")) == ("AccessDenied", 403)
    (denied,) = [e for e in cloud.events("s3-denied") if e["resource"].endswith("/producers/beta/a.csv")]
    assert denied["action"] == "s3:PutObject"
    assert denied["principal"] == f"arn:aws:iam::{account(cloud)}:role/gaps-producer-alpha"
    assert (denied["reason"], denied["policy"]) == ("no allow", "identity-based")
    developer = cloud.client("s3")
    with pytest.raises(ClientError):
        developer.head_object(Bucket=ingest, Key="producers/beta/a.csv")  # nothing was written
    # a producer cannot read back, not even its own upload: nothing allows s3:GetObject
    assert error(lambda: s3.get_object(Bucket=ingest, Key="producers/alpha/a.csv"))[0] == "AccessDenied"


def test_the_error_names_the_caller_action_and_resource_as_aws_does(cloud):
    sqs = as_role(cloud, "gaps-producer-alpha", "sqs", session="alice")
    with pytest.raises(ClientError) as refused:
        sqs.list_queues()
    message = refused.value.response["Error"]["Message"]
    assert message == (
        f"User: arn:aws:sts::{account(cloud)}:assumed-role/gaps-producer-alpha/alice is not authorized to perform: "
        "sqs:ListQueues on resource: * because no identity-based policy allows the sqs:ListQueues action"
    )


@pytest.mark.parametrize(
    ("service", "call", "expected"),
    [
        ("sqs", lambda c: c.list_queues(), ("AccessDenied", 403)),
        ("sns", lambda c: c.list_topics(), ("AuthorizationError", 403)),
        ("dynamodb", lambda c: c.list_tables(), ("AccessDeniedException", 400)),
        ("kms", lambda c: c.list_keys(), ("AccessDeniedException", 400)),
        ("lambda", lambda c: c.list_functions(), ("AccessDeniedException", 403)),
        ("events", lambda c: c.list_rules(), ("AccessDeniedException", 400)),
        ("stepfunctions", lambda c: c.list_state_machines(), ("AccessDeniedException", 400)),
        ("cloudwatch", lambda c: c.describe_alarms(), ("AccessDenied", 403)),
        ("logs", lambda c: c.describe_log_groups(), ("AccessDeniedException", 400)),
        ("ssm", lambda c: c.describe_parameters(), ("AccessDeniedException", 400)),
        ("signer", lambda c: c.list_signing_jobs(), ("AccessDeniedException", 403)),
        ("iam", lambda c: c.list_roles(), ("AccessDenied", 403)),
    ],
)
def test_each_service_refuses_with_its_own_error(cloud, service, call, expected):
    assert error(lambda: call(as_role(cloud, "gaps-producer-beta", service))) == expected


def test_caller_identity_needs_no_permission(cloud):
    identity = as_role(cloud, "gaps-producer-beta", "sts", session="who").get_caller_identity()
    assert identity["Arn"].endswith("assumed-role/gaps-producer-beta/who")


def test_unknown_access_keys_are_refused(cloud):
    def client(service):
        return boto3.client(
            service,
            endpoint_url=cloud.endpoint,
            region_name=cloud.region,
            aws_access_key_id="AKIAUNKNOWNUNKNOWN00",
            aws_secret_access_key="x",
        )

    assert error(lambda: client("s3").list_buckets()) == ("InvalidAccessKeyId", 403)
    assert error(lambda: client("dynamodb").list_tables()) == ("UnrecognizedClientException", 400)
    assert error(lambda: client("sts").get_caller_identity()) == ("InvalidClientTokenId", 403)


def test_assume_role_needs_the_role_and_its_trust(cloud):
    sts = cloud.client("sts")
    missing = f"arn:aws:iam::{account(cloud)}:role/no-such-role"
    assert error(lambda: sts.assume_role(RoleArn=missing, RoleSessionName="probe")) == ("AccessDenied", 403)
    lambda_only = cloud.client("lambda").get_function_configuration(
        FunctionName=cloud.physical_id("gaps", "AWS::Lambda::Function", "Echo")
    )["Role"]  # trusts lambda.amazonaws.com only: the developer, an administrator, cannot assume it
    assert error(lambda: sts.assume_role(RoleArn=lambda_only, RoleSessionName="probe")) == ("AccessDenied", 403)
    assert sts.assume_role(RoleArn=f"arn:aws:iam::{account(cloud)}:role/gaps-reader", RoleSessionName="probe")


def test_a_session_policy_limits_what_the_role_allows(cloud):
    sts = cloud.client("sts")
    role = f"arn:aws:iam::{account(cloud)}:role/gaps-producer-alpha"
    session_policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:PutObject", "kms:GenerateDataKey"], "Resource": "*"}],
    }
    creds = sts.assume_role(RoleArn=role, RoleSessionName="narrow", Policy=json.dumps(session_policy))["Credentials"]
    s3 = cloud.client(
        "s3",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    ingest = bucket(cloud, "Ingest")
    s3.put_object(Bucket=ingest, Key="producers/alpha/session.csv", Body=b"1")  # both allow it
    # the session policy allows any key, the role only its prefix: the intersection applies
    assert error(lambda: s3.put_object(Bucket=ingest, Key="producers/beta/session.csv", Body=b"1"))[0] == "AccessDenied"
    # and S3's use of the data key on the session's behalf needs kms:GenerateDataKey in both
    creds = sts.assume_role(
        RoleArn=role,
        RoleSessionName="no-kms",
        Policy=json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]}),
    )["Credentials"]
    no_kms = cloud.client(
        "s3",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    assert (
        error(lambda: no_kms.put_object(Bucket=ingest, Key="producers/alpha/no-kms.csv", Body=b"1"))[0]
        == "AccessDenied"
    )
    assert [e for e in cloud.events("access-denied") if e["action"] == "kms:GenerateDataKey"]


def test_s3_uses_the_data_key_on_the_callers_behalf(cloud):
    ingest = bucket(cloud, "Ingest")
    cloud.client("s3").put_object(Bucket=ingest, Key="producers/alpha/read.csv", Body=b"secret")
    reader = as_role(cloud, "gaps-reader", "s3")  # s3:GetObject, but no kms:Decrypt on the data key
    assert error(lambda: reader.get_object(Bucket=ingest, Key="producers/alpha/read.csv")) == ("AccessDenied", 403)
    (denied,) = [e for e in cloud.events("access-denied") if e["principal"].endswith("role/gaps-reader")]
    assert denied["action"] == "kms:Decrypt"
    assert denied["resource"].startswith(f"arn:aws:kms:{cloud.region}:{account(cloud)}:key/")
    assert reader.head_object(Bucket=ingest, Key="producers/alpha/read.csv")["ContentLength"] == 6  # no decryption


def test_passing_a_role_to_a_function_needs_iam_pass_role(cloud):
    lam = as_role(cloud, "gaps-deployer", "lambda")
    model = cloud.physical_id("gaps", "AWS::Lambda::Function", "Model")
    other_role = cloud.client("lambda").get_function_configuration(
        FunctionName=cloud.physical_id("gaps", "AWS::Lambda::Function", "Echo")
    )["Role"]
    lam.update_function_configuration(FunctionName=model, Description="allowed")  # configuration: allowed
    assert error(lambda: lam.update_function_configuration(FunctionName=model, Role=other_role)) == (
        "AccessDeniedException",
        403,
    )
    assert [e for e in cloud.events("access-denied") if e["action"] == "iam:PassRole"][-1]["resource"] == other_role
    assert cloud.client("lambda").get_function_configuration(FunctionName=model)["Role"] != other_role


# --- 3. S3 actions by their real names --------------------------------------------------------------------


def test_a_verifier_cannot_touch_retention_or_legal_hold_of_a_lake_version(cloud):
    lake = bucket(cloud, "Lake")
    s3 = as_role(cloud, "gaps-verifier", "s3")
    version = s3.put_object(Bucket=lake, Key="datasets/a.csv", Body=b"1")["VersionId"]
    s3.put_object_tagging(
        Bucket=lake, Key="datasets/a.csv", VersionId=version, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )  # s3:PutObjectVersionTagging, allowed
    soon = datetime.now(UTC) + timedelta(days=1)
    for call in (
        lambda: s3.put_object_retention(
            Bucket=lake,
            Key="datasets/a.csv",
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon},
        ),
        lambda: s3.put_object_legal_hold(
            Bucket=lake, Key="datasets/a.csv", VersionId=version, LegalHold={"Status": "ON"}
        ),
        lambda: s3.delete_object(Bucket=lake, Key="datasets/a.csv", VersionId=version),
    ):
        assert error(call) == ("AccessDenied", 403)
    denied = [e for e in cloud.events("s3-denied") if e["resource"].endswith("/datasets/a.csv")]
    assert [(e["action"], e["statement"]) for e in denied] == [
        ("s3:PutObjectRetention", "DenyUnlockExceptBreakGlass"),
        ("s3:PutObjectLegalHold", "DenyUnlockExceptBreakGlass"),
        ("s3:DeleteObjectVersion", "DenyUnlockExceptBreakGlass"),
    ]
    head = cloud.client("s3").head_object(Bucket=lake, Key="datasets/a.csv", VersionId=version)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert "ObjectLockLegalHoldStatus" not in head


# --- 15. Object Lock and metadata --------------------------------------------------------------------------


def lock_version(cloud, key, mode, days):
    vault = bucket(cloud, "Vault")
    until = datetime.now(UTC) + timedelta(days=days)
    s3 = cloud.client("s3")
    version = s3.put_object(
        Bucket=vault,
        Key=key,
        Body=b"1",
        ObjectLockMode=mode,
        ObjectLockRetainUntilDate=until,
        ChecksumAlgorithm="SHA256",
    )["VersionId"]
    return s3, vault, version, until


def test_compliance_retention_can_be_extended_but_never_shortened_removed_or_made_governance(cloud):
    s3, vault, version, until = lock_version(cloud, "c.csv", "COMPLIANCE", 2)

    def retain(mode, when):
        return lambda: s3.put_object_retention(
            Bucket=vault, Key="c.csv", VersionId=version, Retention={"Mode": mode, "RetainUntilDate": when}
        )

    assert error(retain("COMPLIANCE", until - timedelta(hours=1))) == ("AccessDenied", 403)
    assert error(retain("GOVERNANCE", until + timedelta(days=1))) == ("AccessDenied", 403)
    assert error(lambda: s3.put_object_retention(Bucket=vault, Key="c.csv", VersionId=version, Retention={})) == (
        "AccessDenied",
        403,
    )
    assert s3.head_object(Bucket=vault, Key="c.csv", VersionId=version)[
        "ObjectLockRetainUntilDate"
    ] >= until - timedelta(seconds=1)
    refused = [e["reason"] for e in cloud.events("s3-object-lock-refused") if e["key"] == "c.csv"]
    assert refused[0] == "a COMPLIANCE retention cannot be shortened"
    later = until + timedelta(days=3)
    retain("COMPLIANCE", later)()
    assert s3.head_object(Bucket=vault, Key="c.csv", VersionId=version)["ObjectLockRetainUntilDate"] > until


def test_governance_retention_is_shortened_only_with_the_bypass_header(cloud):
    s3, vault, version, until = lock_version(cloud, "g.csv", "GOVERNANCE", 3)
    sooner = {"Mode": "GOVERNANCE", "RetainUntilDate": until - timedelta(days=1)}
    assert error(lambda: s3.put_object_retention(Bucket=vault, Key="g.csv", VersionId=version, Retention=sooner)) == (
        "AccessDenied",
        403,
    )
    s3.put_object_retention(
        Bucket=vault, Key="g.csv", VersionId=version, Retention=sooner, BypassGovernanceRetention=True
    )
    s3.put_object_retention(  # made COMPLIANCE: stricter, allowed
        Bucket=vault, Key="g.csv", VersionId=version, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until}
    )
    assert s3.head_object(Bucket=vault, Key="g.csv", VersionId=version)["ObjectLockMode"] == "COMPLIANCE"


def test_versioning_of_an_object_lock_bucket_cannot_be_suspended(cloud):
    s3 = cloud.client("s3")
    vault = bucket(cloud, "Vault")
    assert error(lambda: s3.put_bucket_versioning(Bucket=vault, VersioningConfiguration={"Status": "Suspended"})) == (
        "InvalidBucketState",
        409,
    )
    assert s3.get_bucket_versioning(Bucket=vault)["Status"] == "Enabled"
    other = bucket(cloud, "Notified")  # no Object Lock: suspending is allowed
    s3.put_bucket_versioning(Bucket=other, VersioningConfiguration={"Status": "Suspended"})
    s3.put_bucket_versioning(Bucket=other, VersioningConfiguration={"Status": "Enabled"})


def test_user_metadata_is_limited_to_2_kb(cloud):
    s3 = cloud.client("s3")
    vault = bucket(cloud, "Vault")
    fits = {"k": "v" * (2048 - 1)}  # 1 + 2047 bytes
    s3.put_object(Bucket=vault, Key="meta/fits", Body=b"1", Metadata=fits, ChecksumAlgorithm="SHA256")
    too_large = {"k": "v" * 2048}
    assert error(
        lambda: s3.put_object(Bucket=vault, Key="meta/large", Body=b"1", Metadata=too_large, ChecksumAlgorithm="SHA256")
    ) == ("MetadataTooLarge", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=vault, Key="meta/large")


# --- 16 and 14. KMS key state and key policies -------------------------------------------------------------


def guarded_key(cloud):
    return cloud.physical_id("gaps", "AWS::KMS::Key", "Guarded")


def sign(kms, key):
    return kms.sign(KeyId=key, Message=b"model", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")


def test_a_key_policy_deny_holds_against_an_administrator(cloud):
    kms = cloud.client("kms")
    key = guarded_key(cloud)
    for call in (
        lambda: kms.disable_key(KeyId=key),
        lambda: kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7),
        lambda: kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps({"Statement": []})),
        lambda: kms.create_grant(KeyId=key, GranteePrincipal="arn:aws:iam::123456789012:root", Operations=["Sign"]),
    ):
        assert error(call) == ("AccessDeniedException", 400)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    denied = [e for e in cloud.events("access-denied") if e["resource"].endswith(key)]
    assert {e["statement"] for e in denied} == {"DenyDestructionExceptBreakGlass"}


def test_identity_policies_count_where_the_key_policy_delegates_to_the_account(cloud):
    key = guarded_key(cloud)
    assert sign(as_role(cloud, "gaps-key-user", "kms"), key)["Signature"]  # identity Allow, root delegation
    assert sign(as_role(cloud, "gaps-key-named", "kms"), key)["Signature"]  # named by the key policy itself
    assert error(lambda: sign(as_role(cloud, "gaps-reader", "kms"), key)) == ("AccessDeniedException", 400)
    kms = cloud.client("kms")
    # a key whose policy does not delegate to the account: the administrator's identity policy counts for nothing
    lone = kms.create_key(
        KeySpec="ECC_NIST_P256",
        KeyUsage="SIGN_VERIFY",
        BypassPolicyLockoutSafetyCheck=True,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{account(cloud)}:role/gaps-key-named"},
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ],
            }
        ),
    )["KeyMetadata"]["KeyId"]
    assert error(lambda: sign(kms, lone)) == ("AccessDeniedException", 400)
    assert sign(as_role(cloud, "gaps-key-named", "kms"), lone)["Signature"]


def test_a_disabled_key_or_one_pending_deletion_signs_nothing(cloud):
    key = guarded_key(cloud)
    break_glass = as_role(cloud, BREAK_GLASS, "kms")
    arn = break_glass.describe_key(KeyId=key)["KeyMetadata"]["Arn"]
    break_glass.disable_key(KeyId=arn)  # the key policy's one exception (by ARN, as AWS takes it)
    try:
        for call in (lambda: sign(break_glass, key), lambda: break_glass.get_public_key(KeyId=key)):
            with pytest.raises(ClientError) as refused:
                call()
            assert refused.value.response["Error"]["Code"] == "DisabledException"
            assert refused.value.response["Error"]["Message"].endswith(f"key/{key} is disabled.")
        assert error(lambda: sign(as_role(cloud, "gaps-key-user", "kms"), key)) == ("DisabledException", 400)
    finally:
        break_glass.enable_key(KeyId=arn)
    signature = sign(break_glass, key)["Signature"]
    kms = cloud.client("kms")
    created = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    doomed = created["KeyId"]
    kms.schedule_key_deletion(KeyId=created["Arn"], PendingWindowInDays=7)
    for call in (
        lambda: sign(kms, doomed),
        lambda: kms.verify(
            KeyId=doomed, Message=b"model", Signature=signature, SigningAlgorithm="ECDSA_SHA_256", MessageType="RAW"
        ),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "KMSInvalidStateException"
        assert refused.value.response["Error"]["Message"].endswith("is pending deletion.")
