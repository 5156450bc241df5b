"""The stateless ingest stack: the verify function consuming the ingest event queue."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from infra.constructs.functions import FunctionPlatform, SecureFunction
from infra.policy.nag import acknowledge
from infra.policy.spec import INGEST_PRODUCER_PREFIX
from infra.settings import StageSettings
from infra.stacks.storage_stack import StorageStack, ingest_bucket_name

VERIFY_BATCH_SIZE = 10


class IngestStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StageSettings, storage: StorageStack, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.platform = FunctionPlatform(self, "Platform", settings=settings, data_key=storage.data_key)
        self.verify = SecureFunction(
            self,
            "Verify",
            platform=self.platform,
            name="verify",
            description="Verifies each upload to the ingest bucket and records it in the ledger",
            environment={
                "MLVAULT_INGEST_BUCKET": ingest_bucket_name(self, settings),
                "MLVAULT_LAKE_BUCKET": storage.lake_bucket.bucket_name,
                "MLVAULT_QUARANTINE_BUCKET": storage.quarantine_bucket.bucket_name,
                "MLVAULT_LEDGER_TABLE": storage.ledger_table.table_name,
                "MLVAULT_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
            },
            timeout=Duration.minutes(2),
        )
        fn = self.verify.function
        fn.add_event_source(
            sources.SqsEventSource(
                storage.ingest_queue,
                batch_size=VERIFY_BATCH_SIZE,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
            )
        )
        uploads = f"arn:{self.partition}:s3:::{ingest_bucket_name(self, settings)}/{INGEST_PRODUCER_PREFIX}*"
        self.verify.allow(
            [
                "s3:GetObject",
                "s3:GetObjectVersion",
                "s3:GetObjectAttributes",
                "s3:GetObjectVersionAttributes",
            ],
            [uploads],
        )
        acknowledge(
            self.verify.role,
            # partition and region are literals here (target-partitions flag, explicit stage region)
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{settings.prefix}-ingest-<AWS::AccountId>-"
            f"{settings.region}/{INGEST_PRODUCER_PREFIX}*]",
            "The verifier reads any upload under the producer prefixes; keys are not known in advance.",
        )
        self.verify.allow(
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
            [storage.ledger_table.table_arn],
        )
        self.verify.allow(["kms:Decrypt", "kms:GenerateDataKey"], [storage.data_key.key_arn])
