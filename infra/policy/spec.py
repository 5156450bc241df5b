"""What mlvault's own policy rules require. The constructs build to this spec; infra/policy/rules.py
checks it.

Kept in one place so the rules and the constructs cannot disagree about, for example, which actions are
protected on locked buckets.
"""

from __future__ import annotations

# CloudFormation metadata key naming a bucket's role; every bucket must carry one.
ROLE_METADATA_KEY = "mlvault:role"


class BucketRole:
    INGEST = "ingest"
    LAKE = "lake"
    QUARANTINE = "quarantine"
    MODEL = "model"
    ACCESS_LOGS = "access-logs"
    SIGNED_CODE = "signed-code"  # the signer's bucket: staged and signed Lambda code (evidence, never deleted)

    ALL = (INGEST, LAKE, QUARANTINE, MODEL, ACCESS_LOGS, SIGNED_CODE)
    # Buckets whose objects are evidence or trusted artefacts: Object Lock COMPLIANCE, deletes denied.
    LOCKED = (LAKE, QUARANTINE, MODEL)


# Object-level actions no principal but break-glass may perform on a locked bucket.
PROTECTED_OBJECT_ACTIONS = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:BypassGovernanceRetention",
)

# Bucket-level actions that could weaken the lock or its policy: only break-glass and the CDK deployment
# role (a reviewed `cdk deploy`) may perform them.
PROTECTED_BUCKET_ACTIONS = (
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
)

# Condition key bounding the retention a writer may ask for on a locked bucket.
RETENTION_DAYS_CONDITION_KEY = "s3:object-lock-remaining-retention-days"

# Uploads land under producers/<producer-id>/...; everything else in the ingest bucket is refused.
INGEST_PRODUCER_PREFIX = "producers/"

# --- code signing (infra/constructs/signed_code.py builds it, infra/policy/lambda_rules.py checks it) ----------

# The custom resource type that signs one Lambda asset (function code or layer) with the stage's Signer profile.
SIGNED_CODE_RESOURCE_TYPE = "Custom::MlvaultSignedCode"
# The attributes of a signed-code resource a function's Code (or a layer's Content) must take, all from one resource.
SIGNED_CODE_ATTRIBUTES = {"S3Bucket": "Bucket", "S3Key": "Key", "S3ObjectVersion": "Version"}
# CloudFormation metadata key that marks the one function allowed to run unsigned code: the signer itself (the
# bootstrapping exception, infra/constructs/code_signer.py). The rule accepts exactly one such function, alone in its
# stack, without layers, and it must be the provider of every signed-code resource.
CODE_SIGNING_EXCEPTION_METADATA_KEY = "mlvault:code-signing-exception"
CODE_SIGNING_EXCEPTION_SIGNER = "signer"
SIGNING_PLATFORM = "AWSLambda-SHA384-ECDSA"
# Signed code is staged and signed under these prefixes of the signed-code bucket (the signer writes nothing else).
STAGING_PREFIX = "unsigned/"
SIGNED_PREFIX = "signed/"

# --- KMS key guards (infra/constructs/storage.py guard_key builds them, infra/policy/kms_rules.py checks them) -----

# No principal but break-glass may destroy or disable a key, or stop its rotation.
KEY_DESTRUCTION_ACTIONS = (
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:DeleteImportedKeyMaterial",
)
# Changing the key policy: break-glass, and the CDK deployment role (CloudFormation updates the KeyPolicy).
KEY_POLICY_ACTIONS = ("kms:PutKeyPolicy",)
# Creating grants directly: break-glass only. Grants an integrated AWS service creates for the caller (DynamoDB for
# a table, Lambda for encrypted environment variables: kms:GrantIsForAWSResource true) are not denied.
KEY_GRANT_ACTIONS = ("kms:CreateGrant",)
GRANT_FOR_AWS_RESOURCE_CONDITION_KEY = "kms:GrantIsForAWSResource"
