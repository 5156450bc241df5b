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

    ALL = (INGEST, LAKE, QUARANTINE, MODEL, ACCESS_LOGS)
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
