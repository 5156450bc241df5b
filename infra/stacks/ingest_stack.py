"""The stateless ingest stack: the verify function on the ingest event queue, the alert topic, the producer
roles of the trust registry and the reconciler."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.discovery import publish
from infra.constructs.functions import ONE_VCPU_MB, FunctionPlatform, SecureFunction, spool_storage_mib
from infra.policy.nag import acknowledge
from infra.policy.spec import INGEST_PRODUCER_PREFIX, BucketRole
from infra.settings import ROOT, StageSettings
from infra.stacks.storage_stack import StorageStack, bucket_arn_ack, bucket_name, ingest_bucket_name
from mlvault.trust.producers import load_registry

VERIFY_BATCH_SIZE = 10
TRUST_FILE_IN_BUNDLE = "trust/producers.json"
CONTRACTS_IN_BUNDLE = "contracts"
CONTRACTS_DIR = ROOT / "contracts"
RECONCILE_EVERY = Duration.minutes(15)


class IngestStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StageSettings, storage: StorageStack, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        registry = load_registry(ROOT / settings.trust_file)
        self.platform = FunctionPlatform(self, "Platform", settings=settings, data_key=storage.data_key)
        self.alerts = sns.Topic(
            self,
            "Alerts",
            display_name=f"mlvault {settings.stage} alerts",
            master_key=storage.data_key,
            enforce_ssl=True,
        )
        ingest_name = ingest_bucket_name(self, settings)
        lake_name = bucket_name(self, settings, BucketRole.LAKE)
        quarantine_name = bucket_name(self, settings, BucketRole.QUARANTINE)
        ingest_objects_ack = bucket_arn_ack(settings, BucketRole.INGEST, f"/{INGEST_PRODUCER_PREFIX}*")
        quarantined_ack = bucket_arn_ack(settings, BucketRole.QUARANTINE, "/rejected/*")
        uploads = f"arn:{self.partition}:s3:::{ingest_name}/{INGEST_PRODUCER_PREFIX}*"
        lake_datasets = f"arn:{self.partition}:s3:::{lake_name}/datasets/*"
        quarantined = f"arn:{self.partition}:s3:::{quarantine_name}/rejected/*"
        held = f"arn:{self.partition}:s3:::{quarantine_name}/held/*"
        held_ack = bucket_arn_ack(settings, BucketRole.QUARANTINE, "/held/*")
        # The verifier's policy files travel with its code: the trust registry and every data contract (with
        # pinned baselines), all reviewed in the repo and validated at synth.
        bundle = {TRUST_FILE_IN_BUNDLE: ROOT / settings.trust_file}
        bundle |= {f"{CONTRACTS_IN_BUNDLE}/{p.relative_to(CONTRACTS_DIR)}": p for p in CONTRACTS_DIR.rglob("*.json")}
        common_env = {
            "MLVAULT_INGEST_BUCKET": ingest_name,
            "MLVAULT_LAKE_BUCKET": lake_name,
            "MLVAULT_QUARANTINE_BUCKET": quarantine_name,
            "MLVAULT_LEDGER_TABLE": storage.ledger_table.table_name,
            "MLVAULT_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
            "MLVAULT_ALERT_TOPIC_ARN": self.alerts.topic_arn,
            "MLVAULT_TRUST_FILE": TRUST_FILE_IN_BUNDLE,
            "MLVAULT_CONTRACTS_DIR": CONTRACTS_IN_BUNDLE,
            "MLVAULT_INGEST_QUEUE_URL": storage.ingest_queue.queue_url,
        }
        # Both functions run the verifier, whose data contracts read CSV, JSON Lines and Parquet with pyarrow:
        # one full vCPU, and /tmp for an upload of the stage's largest size (Parquet is spooled to a file).
        verifier = {
            "with_arrow": True,
            "memory_size": ONE_VCPU_MB,
            "ephemeral_storage_mib": spool_storage_mib(settings.max_upload_bytes),
        }

        # --- verify ---------------------------------------------------------------------------------
        self.verify = SecureFunction(
            self,
            "Verify",
            platform=self.platform,
            name="verify",
            description="Verifies each upload (signature, digest, data contract, poisoning screen): lake, "
            "quarantine or held",
            environment=common_env,
            timeout=Duration.minutes(5),
            extra_files=bundle,
            **verifier,
        )
        self.verify.function.add_event_source(
            sources.SqsEventSource(
                storage.ingest_queue,
                batch_size=VERIFY_BATCH_SIZE,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
            )
        )
        self.verify.allow(
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"], [uploads]
        )
        acknowledge(
            self.verify.role,
            f"AwsSolutions-IAM5[Resource::{ingest_objects_ack}]",
            "The verifier reads and tags any upload under the producer prefixes; keys are not known in advance.",
        )
        self.verify.allow(["s3:GetObject", "s3:PutObject"], [lake_datasets])
        acknowledge(
            self.verify.role,
            f"AwsSolutions-IAM5[Resource::{bucket_arn_ack(settings, BucketRole.LAKE, '/datasets/*')}]",
            "Accepted files land under content-addressed keys (datasets/<dataset>/<producer>/sha256=...).",
        )
        self.verify.allow(["s3:PutObject", "s3:PutObjectTagging"], [quarantined, held])
        acknowledge(
            self.verify.role,
            f"AwsSolutions-IAM5[Resource::{quarantined_ack}]",
            "Rejected uploads are copied under rejected/<ingest key>/<version>; keys are not known in advance.",
        )
        acknowledge(
            self.verify.role,
            f"AwsSolutions-IAM5[Resource::{held_ack}]",
            "Held uploads (poisoning screen) are copied under held/<ingest key>/<version> until reviewed.",
        )
        self._ledger_access(self.verify, storage)
        self.verify.allow(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], [storage.data_key.key_arn])
        self.verify.allow(["sns:Publish"], [self.alerts.topic_arn])
        self.verify.allow(
            ["events:PutEvents"], [f"arn:{self.partition}:events:{self.region}:{self.account}:event-bus/default"]
        )
        kms_keys = sorted(
            {k.kms_key_arn for p in registry.producers.values() for k in p.keys.values() if k.kms_key_arn}
        )
        if kms_keys:
            self.verify.allow(["kms:GetPublicKey", "kms:Verify"], kms_keys)

        # --- reconciler -----------------------------------------------------------------------------
        self.reconcile = SecureFunction(
            self,
            "Reconcile",
            platform=self.platform,
            name="reconcile",
            description="Finds ingest versions without a verdict after the deadline; re-drives or quarantines them",
            environment={
                **common_env,
                "MLVAULT_RECONCILE_DEADLINE_SECONDS": "900",
                "MLVAULT_RECONCILE_MAX_REDRIVES": "3",
            },
            timeout=Duration.minutes(5),
            extra_files=bundle,
            **verifier,
        )
        events.Rule(
            self,
            "ReconcileSchedule",
            schedule=events.Schedule.rate(RECONCILE_EVERY),
            targets=[targets.LambdaFunction(self.reconcile.function)],
        )
        self.reconcile.allow(["s3:ListBucketVersions"], [f"arn:{self.partition}:s3:::{ingest_name}"])
        self.reconcile.allow(
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"], [uploads]
        )
        acknowledge(
            self.reconcile.role,
            f"AwsSolutions-IAM5[Resource::{ingest_objects_ack}]",
            "The reconciler looks at every upload under the producer prefixes.",
        )
        self.reconcile.allow(["s3:PutObject", "s3:PutObjectTagging"], [quarantined, held])
        acknowledge(
            self.reconcile.role,
            f"AwsSolutions-IAM5[Resource::{quarantined_ack}]",
            "Versions that never reached a verdict are quarantined under rejected/<ingest key>/<version>.",
        )
        acknowledge(
            self.reconcile.role,
            f"AwsSolutions-IAM5[Resource::{held_ack}]",
            "A re-driven verification may hold an upload under held/<ingest key>/<version>.",
        )
        self._ledger_access(self.reconcile, storage)
        self.reconcile.allow(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], [storage.data_key.key_arn])
        self.reconcile.allow(["sqs:SendMessage"], [storage.ingest_queue.queue_arn])
        self.reconcile.allow(["sns:Publish"], [self.alerts.topic_arn])
        self.reconcile.allow(
            ["events:PutEvents"], [f"arn:{self.partition}:events:{self.region}:{self.account}:event-bus/default"]
        )
        self.reconcile.allow(["cloudwatch:PutMetricData"], ["*"])
        acknowledge(
            self.reconcile.role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData supports no resource-level permissions (the Unaccounted metric).",
        )

        # --- producers: one role each, allowed to write only its own prefix -------------------------
        self.producer_roles: dict[str, iam.Role] = {}
        for producer in sorted(registry.producers):
            role = iam.Role(
                self,
                f"Producer{''.join(w.title() for w in producer.split('-'))}",
                role_name=f"{settings.prefix}-producer-{producer}"[:64],
                assumed_by=iam.AccountRootPrincipal(),
                description=f"mlvault {settings.stage}: producer {producer} uploads signed files",
            )
            own = f"arn:{self.partition}:s3:::{ingest_name}/{INGEST_PRODUCER_PREFIX}{producer}/*"
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], resources=[own]
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[storage.data_key.key_arn]
                )
            )
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{settings.prefix}-ingest-<AWS::AccountId>-"
                f"{settings.region}/{INGEST_PRODUCER_PREFIX}{producer}/*]",
                "A producer writes any file name, but only under its own prefix.",
            )
            acknowledge(
                role,
                "NIST.800.53.R5-IAMNoInlinePolicy",
                "The policy is attached to this producer's role only and lists exact actions and resources.",
            )
            self.producer_roles[producer] = role

        # --- review -------------------------------------------------------------------------------
        self.review = SecureFunction(
            self,
            "Review",
            platform=self.platform,
            name="review",
            description="A human's decision on a held upload: releases the exact held bytes to the lake, or rejects",
            environment=common_env,
            timeout=Duration.minutes(5),
        )
        self.review.allow(["s3:GetObject", "s3:GetObjectVersion"], [held])
        acknowledge(
            self.review.role,
            f"AwsSolutions-IAM5[Resource::{held_ack}]",
            "A release copies the held version of the upload under review; keys are not known in advance.",
        )
        self.review.allow(["s3:GetObject", "s3:PutObject"], [lake_datasets])
        acknowledge(
            self.review.role,
            f"AwsSolutions-IAM5[Resource::{bucket_arn_ack(settings, BucketRole.LAKE, '/datasets/*')}]",
            "Released files land under the content-addressed key an acceptance would have used.",
        )
        self._ledger_access(self.review, storage)
        self.review.allow(["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], [storage.data_key.key_arn])
        self.review.allow(["sns:Publish"], [self.alerts.topic_arn])
        self.review.allow(
            ["events:PutEvents"], [f"arn:{self.partition}:events:{self.region}:{self.account}:event-bus/default"]
        )

        publish(
            self,
            settings,
            {
                "alert-topic": self.alerts.topic_arn,
                "review-function": self.review.function.function_name,
                "verify-function": self.verify.function.function_name,
                "reconcile-function": self.reconcile.function.function_name,
                **{f"producer-role/{p}": r.role_arn for p, r in self.producer_roles.items()},
            },
        )

    @staticmethod
    def _ledger_access(function: SecureFunction, storage: StorageStack) -> None:
        function.allow(
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:BatchGetItem"],
            [storage.ledger_table.table_arn],
        )
