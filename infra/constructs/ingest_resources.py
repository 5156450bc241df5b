"""What the ingest functions (verify, reconcile, review) work on, the environment that names it to them
(mlvault.config.IngestSettings) and the access to it they share."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.functions import SecureFunction
from infra.constructs.storage import bucket_name
from infra.policy.spec import BucketRole
from infra.settings import StageSettings
from mlvault.wiring import Bundle, Env

LEDGER_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
]


@dataclass(frozen=True)
class IngestResources:
    ingest_bucket: str  # fixed bucket names (infra.constructs.storage.bucket_name), in the consuming stack
    lake_bucket: str
    quarantine_bucket: str
    ledger: dynamodb.ITable
    queue: sqs.IQueue  # the ingest event queue (S3 notifications; the reconciler re-drives into it)
    alerts: sns.ITopic
    max_upload_bytes: int

    @classmethod
    def of(
        cls,
        scope: Construct,
        *,
        settings: StageSettings,
        ledger: dynamodb.ITable,
        queue: sqs.IQueue,
        alerts: sns.ITopic,
    ) -> IngestResources:
        return cls(
            ingest_bucket=bucket_name(scope, settings, BucketRole.INGEST),
            lake_bucket=bucket_name(scope, settings, BucketRole.LAKE),
            quarantine_bucket=bucket_name(scope, settings, BucketRole.QUARANTINE),
            ledger=ledger,
            queue=queue,
            alerts=alerts,
            max_upload_bytes=settings.max_upload_bytes,
        )

    @property
    def environment(self) -> dict[str, str]:
        return {
            Env.INGEST_BUCKET: self.ingest_bucket,
            Env.LAKE_BUCKET: self.lake_bucket,
            Env.QUARANTINE_BUCKET: self.quarantine_bucket,
            Env.LEDGER_TABLE: self.ledger.table_name,
            Env.MAX_UPLOAD_BYTES: str(self.max_upload_bytes),
            Env.ALERT_TOPIC_ARN: self.alerts.topic_arn,
            Env.TRUST_FILE: Bundle.TRUST_FILE,
            Env.CONTRACTS_DIR: Bundle.CONTRACTS_DIR,
            Env.INGEST_QUEUE_URL: self.queue.queue_url,
        }

    def allow_verdicts(self, fn: SecureFunction) -> None:
        """What recording and announcing a verdict takes: the ledger, the data key, the alert topic and the
        default event bus."""
        fn.allow(LEDGER_ACTIONS, [self.ledger.table_arn])
        fn.allow_data_key()
        fn.allow(["sns:Publish"], [self.alerts.topic_arn])
        fn.allow_events()
