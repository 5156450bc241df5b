"""The producers' roles: one per producer of the trust registry, allowed to upload only under its own prefix."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.storage import bucket_arn_ack, bucket_name
from infra.policy.nag import acknowledge
from infra.policy.spec import INGEST_PRODUCER_PREFIX, BucketRole
from infra.settings import StageSettings


class ProducerRoles(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        producers: Iterable[str],
        data_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        ingest = bucket_name(self, settings, BucketRole.INGEST)
        self.roles: dict[str, iam.Role] = {}
        for producer in sorted(producers):
            own = f"/{INGEST_PRODUCER_PREFIX}{producer}/*"
            role = iam.Role(
                self,
                f"Producer{''.join(w.title() for w in producer.split('-'))}",
                role_name=f"{settings.prefix}-producer-{producer}"[:64],
                assumed_by=iam.AccountRootPrincipal(),
                description=f"mlvault {settings.stage}: producer {producer} uploads signed files",
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                    resources=[f"arn:{Stack.of(self).partition}:s3:::{ingest}{own}"],
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[data_key.key_arn])
            )
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::{bucket_arn_ack(settings, BucketRole.INGEST, own)}]",
                "A producer writes any file name, but only under its own prefix.",
            )
            acknowledge(
                role,
                "NIST.800.53.R5-IAMNoInlinePolicy",
                "The policy is attached to this producer's role only and lists exact actions and resources.",
            )
            self.roles[producer] = role
