"""Stateful building blocks: KMS keys and buckets with mlvault's secure defaults.

Every bucket carries its role in CloudFormation metadata (infra/policy/spec.py) so that our own policy rules
know which ones must be locked.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.policy.nag import acknowledge
from infra.policy.spec import (
    GRANT_FOR_AWS_RESOURCE_CONDITION_KEY,
    INGEST_PRODUCER_PREFIX,
    KEY_DESTRUCTION_ACTIONS,
    KEY_GRANT_ACTIONS,
    KEY_POLICY_ACTIONS,
    PROTECTED_BUCKET_ACTIONS,
    PROTECTED_OBJECT_ACTIONS,
    RETENTION_DAYS_CONDITION_KEY,
    ROLE_METADATA_KEY,
    BucketRole,
)
from infra.settings import StageSettings
from mlvault.wiring import Tag


def role_arn(scope: Construct, role_name: str) -> str:
    """ARN of an IAM role of this stack's account, by name (no account id is ever written in the repo)."""
    stack = Stack.of(scope)
    return f"arn:{stack.partition}:iam::{stack.account}:role/{role_name}"


def deployment_role_arn(scope: Construct, qualifier: str) -> str:
    """The CloudFormation execution role created by `cdk bootstrap` with this qualifier."""
    stack = Stack.of(scope)
    return role_arn(scope, f"cdk-{qualifier}-cfn-exec-role-{stack.account}-{stack.region}")


def bucket_name(scope: Construct, settings: StageSettings, role: str) -> str:
    """A bucket's fixed name, in the account and region of the stack `scope` is in.

    Fixed so that the ingest bucket's notification and its queue's policy can name each other without a
    CloudFormation cycle, and so that stateless stacks name buckets (and scope policies to them) without
    cross-stack exports.
    """
    stack = Stack.of(scope)
    return f"{settings.prefix}-{role}-{stack.account}-{stack.region}"


def bucket_arn_ack(settings: StageSettings, role: str, suffix: str) -> str:
    """How cdk-nag prints such a bucket's ARN in an IAM5 finding (partition and region are literals here)."""
    return f"arn:aws:s3:::{settings.prefix}-{role}-<AWS::AccountId>-{settings.region}{suffix}"


def guard_key(key: kms.Key, break_glass_arn: str, deployer_arn: str) -> None:
    """Guards in the key's own policy, which no IAM policy can override (an explicit Deny wins): no principal but
    break-glass may schedule the key's deletion, disable it, stop its rotation or create grants on it (except the
    grants AWS services create for their resources); its policy changes only by break-glass or a `cdk deploy`
    (CloudFormation, as the CDK deployment role, updates the KeyPolicy). Checked by MLV-KMS-GUARDS."""
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyKeyDestructionExceptBreakGlass",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(KEY_DESTRUCTION_ACTIONS),
            resources=["*"],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": break_glass_arn}},
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyKeyPolicyChangesExceptBreakGlassAndDeployer",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(KEY_POLICY_ACTIONS),
            resources=["*"],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": [break_glass_arn, deployer_arn]}},
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyGrantsExceptBreakGlass",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(KEY_GRANT_ACTIONS),
            resources=["*"],
            conditions={
                "ArnNotEquals": {"aws:PrincipalArn": break_glass_arn},
                "Bool": {GRANT_FOR_AWS_RESOURCE_CONDITION_KEY: "false"},
            },
        )
    )


def mark_role(bucket: s3.Bucket, role: str) -> None:
    if role not in BucketRole.ALL:
        raise ValueError(f"unknown bucket role {role!r}; allowed: {', '.join(BucketRole.ALL)}")
    bucket.node.default_child.add_metadata(ROLE_METADATA_KEY, role)


def _acknowledge_no_replication(bucket: s3.Bucket) -> None:
    acknowledge(
        bucket,
        "NIST.800.53.R5-S3BucketReplicationEnabled",
        "Cross-region replication is a per-organisation DR decision; mlvault keeps one region per "
        "stage and relies on Object Lock, versioning and PITR for durability.",
    )


def access_log_bucket(
    scope: Construct, construct_id: str, *, expiration_days: int, bucket_name: str | None = None
) -> s3.Bucket:
    """Target of the other buckets' server access logs. A locked or KMS-encrypted bucket cannot be one."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        bucket_name=bucket_name,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.RETAIN,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs",
                expiration=Duration.days(expiration_days),
                noncurrent_version_expiration=Duration.days(1),
            )
        ],
    )
    mark_role(bucket, BucketRole.ACCESS_LOGS)
    acknowledge(
        bucket,
        "AwsSolutions-S1",
        "This is the server access log target; logging it into itself would loop.",
    )
    acknowledge(
        bucket,
        "NIST.800.53.R5-S3BucketLoggingEnabled",
        "This is the server access log target; logging it into itself would loop.",
    )
    acknowledge(
        bucket,
        "NIST.800.53.R5-S3DefaultEncryptionKMS",
        "S3 server access logging only delivers to SSE-S3 buckets; SSE-KMS targets are unsupported.",
    )
    _acknowledge_no_replication(bucket)
    return bucket


def _kms_bucket(
    scope: Construct,
    construct_id: str,
    *,
    bucket_name: str,
    key: kms.IKey,
    logs: s3.IBucket,
    logs_prefix: str,
    **extra: Any,
) -> s3.Bucket:
    """A bucket of the stage's data: SSE-KMS with the data key (bucket keys), no public access, TLS only,
    versioned, owner-enforced, access-logged under `logs_prefix`, retained; `extra`: the bucket's own settings."""
    return s3.Bucket(
        scope,
        construct_id,
        bucket_name=bucket_name,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=logs,
        server_access_logs_prefix=logs_prefix,
        removal_policy=RemovalPolicy.RETAIN,
        **extra,
    )


def ingest_bucket(
    scope: Construct,
    construct_id: str,
    *,
    bucket_name: str,
    key: kms.IKey,
    logs: s3.IBucket,
    verdict_expiration_days: int,
) -> s3.Bucket:
    """Where producers upload signed files, each under producers/<producer-id>/.

    Versions expire only after the verifier tagged them with a verdict: an unverified version is never lost.
    """
    bucket = _kms_bucket(
        scope,
        construct_id,
        bucket_name=bucket_name,
        key=key,
        logs=logs,
        logs_prefix="ingest/",
        lifecycle_rules=[
            s3.LifecycleRule(id="abort-incomplete-multipart", abort_incomplete_multipart_upload_after=Duration.days(7)),
            s3.LifecycleRule(
                id="expire-after-verdict",
                tag_filters={Tag.VERDICT: Tag.VERDICT_RECORDED},
                expiration=Duration.days(verdict_expiration_days),
                noncurrent_version_expiration=Duration.days(verdict_expiration_days),
            ),
        ],
    )
    mark_role(bucket, BucketRole.INGEST)
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyWritesOutsideProducerPrefixes",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            not_resources=[bucket.arn_for_objects(f"{INGEST_PRODUCER_PREFIX}*")],
        )
    )
    _acknowledge_no_replication(bucket)
    return bucket


def locked_bucket(
    scope: Construct,
    construct_id: str,
    *,
    role: str,
    retention_days: int,
    key: kms.IKey,
    logs: s3.IBucket,
    break_glass_arn: str,
    deployer_arn: str,
    bucket_name: str | None = None,
) -> s3.Bucket:
    """A bucket whose versions cannot be deleted or unlocked: Object Lock COMPLIANCE plus explicit denies."""
    if role not in BucketRole.LOCKED:
        raise ValueError(f"locked_bucket is for roles {', '.join(BucketRole.LOCKED)}, not {role!r}")
    bucket = _kms_bucket(
        scope,
        construct_id,
        bucket_name=bucket_name,
        key=key,
        logs=logs,
        logs_prefix=f"{role}/",
        object_lock_enabled=True,
        object_lock_default_retention=s3.ObjectLockRetention.compliance(Duration.days(retention_days)),
    )
    mark_role(bucket, role)
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyDeleteAndUnlockExceptBreakGlass",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(PROTECTED_OBJECT_ACTIONS),
            resources=[bucket.arn_for_objects("*")],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": break_glass_arn}},
        )
    )
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyLockAndPolicyChangesExceptBreakGlassAndDeployer",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=list(PROTECTED_BUCKET_ACTIONS),
            resources=[bucket.bucket_arn],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": [break_glass_arn, deployer_arn]}},
        )
    )
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyWritesBelowRetentionFloor",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject", "s3:PutObjectRetention"],
            resources=[bucket.arn_for_objects("*")],
            conditions={"NumericLessThan": {RETENTION_DAYS_CONDITION_KEY: str(retention_days)}},
        )
    )
    _acknowledge_no_replication(bucket)
    return bucket


def signed_code_bucket(
    scope: Construct, construct_id: str, *, bucket_name: str, key: kms.IKey, logs: s3.IBucket, break_glass_arn: str
) -> s3.Bucket:
    """The signer's bucket: the zips it stages (unsigned/) and the signed code AWS Signer writes (signed/), from
    which every function and layer is deployed by object version. Signed code is evidence of what ran: versioned,
    never expired, and no principal but break-glass may delete a version."""
    bucket = _kms_bucket(
        scope,
        construct_id,
        bucket_name=bucket_name,
        key=key,
        logs=logs,
        logs_prefix=f"{BucketRole.SIGNED_CODE}/",
    )
    mark_role(bucket, BucketRole.SIGNED_CODE)
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyDeletingSignedCodeExceptBreakGlass",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:DeleteObject", "s3:DeleteObjectVersion"],
            resources=[bucket.arn_for_objects("*")],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": break_glass_arn}},
        )
    )
    _acknowledge_no_replication(bucket)
    return bucket


def allow_access_logs_from(logs: s3.Bucket, *, source_bucket: str, prefix: str) -> None:
    """Let S3 deliver the server access logs of a bucket of another stack (by its fixed name, so that neither stack
    refers to the other's resources) under `prefix` of the access-log bucket."""
    stack = Stack.of(logs)
    logs.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
            actions=["s3:PutObject"],
            resources=[logs.arn_for_objects(f"{prefix}*")],
            conditions={
                "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:s3:::{source_bucket}"},
                "StringEquals": {"aws:SourceAccount": stack.account},
            },
        )
    )
