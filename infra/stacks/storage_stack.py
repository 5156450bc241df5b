"""The stateful stack: keys, buckets, tables and the ingest event queue. RETAIN everywhere; logical ids of
these resources are part of the contract with deployed stages and must never change."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.parameters import publish
from infra.constructs.storage import (
    access_log_bucket,
    allow_access_logs_from,
    bucket_name,
    deployment_role_arn,
    guard_key,
    ingest_bucket,
    locked_bucket,
    role_arn,
)
from infra.policy.nag import acknowledge
from infra.policy.spec import INGEST_PRODUCER_PREFIX, BucketRole
from infra.settings import StageSettings


class StorageStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StageSettings, **kwargs) -> None:
        super().__init__(scope, construct_id, termination_protection=settings.stage == "prod", **kwargs)
        self.settings = settings
        break_glass = role_arn(self, settings.break_glass_role_name)
        deployer = deployment_role_arn(self, settings.cdk_qualifier)

        # --- keys -------------------------------------------------------------------------------------
        self.data_key = kms.Key(
            self,
            "DataKey",
            description=f"mlvault {settings.stage}: encrypts buckets, tables, queues and logs",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        guard_key(self.data_key, break_glass, deployer)
        self.data_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowS3ToSendEncryptedNotifications",
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        self.data_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForMlvaultLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:"
                            f"{settings.log_group_prefix}*"
                        )
                    }
                },
            )
        )
        self.signing_key = kms.Key(
            self,
            "ModelSigningKey",
            description=f"mlvault {settings.stage}: signs model artefacts (ECDSA P-256)",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        guard_key(self.signing_key, break_glass, deployer)
        for rule in ("AwsSolutions-KMS5", "NIST.800.53.R5-KMSBackingKeyRotationEnabled"):
            acknowledge(
                self.signing_key,
                rule,
                "Asymmetric KMS keys do not support automatic rotation; models pin the key by ARN and "
                "a new signing key is introduced by a reviewed change.",
            )

        # --- buckets ----------------------------------------------------------------------------------
        self.access_logs = access_log_bucket(
            self,
            "AccessLogBucket",
            bucket_name=bucket_name(self, settings, BucketRole.ACCESS_LOGS),
            expiration_days=settings.access_log_expiration_days,
        )
        # the signing stack's bucket logs here too (by name: the signing stack is deployed after this one)
        allow_access_logs_from(
            self.access_logs,
            source_bucket=bucket_name(self, settings, BucketRole.SIGNED_CODE),
            prefix=f"{BucketRole.SIGNED_CODE}/",
        )
        ingest_name = bucket_name(self, settings, BucketRole.INGEST)
        self.ingest_bucket = ingest_bucket(
            self,
            "IngestBucket",
            bucket_name=ingest_name,
            key=self.data_key,
            logs=self.access_logs,
            verdict_expiration_days=settings.ingest_verdict_expiration_days,
        )
        common = {
            "key": self.data_key,
            "logs": self.access_logs,
            "break_glass_arn": break_glass,
            "deployer_arn": deployer,
        }
        self.lake_bucket = locked_bucket(
            self,
            "LakeBucket",
            role=BucketRole.LAKE,
            retention_days=settings.lake_retention_days,
            bucket_name=bucket_name(self, settings, BucketRole.LAKE),
            **common,
        )
        self.quarantine_bucket = locked_bucket(
            self,
            "QuarantineBucket",
            role=BucketRole.QUARANTINE,
            retention_days=settings.quarantine_retention_days,
            bucket_name=bucket_name(self, settings, BucketRole.QUARANTINE),
            **common,
        )
        self.model_bucket = locked_bucket(
            self,
            "ModelBucket",
            role=BucketRole.MODEL,
            retention_days=settings.model_retention_days,
            bucket_name=bucket_name(self, settings, BucketRole.MODEL),
            **common,
        )

        # --- ingest events: S3 -> SQS (DLQ). Here, not in the ingest stack, so that the bucket's
        # notification configuration never points at a stateless stack. -------------------------------
        self.ingest_dlq = sqs.Queue(
            self,
            "IngestEventsDlq",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.data_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.ingest_dlq,
            "AwsSolutions-SQS3",
            "This queue is the dead-letter queue of the ingest event queue.",
        )
        self.ingest_queue = sqs.Queue(
            self,
            "IngestEventsQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.data_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            # >= 6x the verify function's timeout, as AWS recommends for SQS event sources.
            visibility_timeout=Duration.minutes(15),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.ingest_dlq, max_receive_count=5),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The bucket's ARN is built from its fixed name so that queue policy and notification do not
        # reference each other (a CloudFormation cycle).
        ingest_arn = f"arn:{self.partition}:s3:::{ingest_name}"
        self.ingest_queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowIngestBucketNotifications",
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self.ingest_queue.queue_arn],
                conditions={
                    "ArnEquals": {"aws:SourceArn": ingest_arn},
                    "StringEquals": {"aws:SourceAccount": self.account},
                },
            )
        )
        cfn_ingest = self.ingest_bucket.node.default_child
        cfn_ingest.notification_configuration = {
            "queueConfigurations": [
                {
                    "event": "s3:ObjectCreated:*",
                    "queue": self.ingest_queue.queue_arn,
                    "filter": {"s3Key": {"rules": [{"name": "prefix", "value": INGEST_PRODUCER_PREFIX}]}},
                }
            ]
        }
        policy = self.ingest_queue.node.find_child("Policy")
        cfn_ingest.node.add_dependency(policy)

        # --- tables -----------------------------------------------------------------------------------
        self.ledger_table = self._table("LedgerTable")
        self.registry_table = self._table("RegistryTable")

        publish(
            self,
            settings,
            {
                "ingest-bucket": self.ingest_bucket.bucket_name,
                "lake-bucket": self.lake_bucket.bucket_name,
                "quarantine-bucket": self.quarantine_bucket.bucket_name,
                "model-bucket": self.model_bucket.bucket_name,
                "ledger-table": self.ledger_table.table_name,
                "registry-table": self.registry_table.table_name,
                "ingest-queue-url": self.ingest_queue.queue_url,
            },
        )

    def _table(self, construct_id: str) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            construct_id,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.data_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            table,
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "Point-in-time recovery (35 days, continuous) plus deletion protection; an AWS Backup plan "
            "is an organisation-level choice layered on top.",
        )
        return table
