"""What the model functions (pipeline, sign, deploy, serve, rollback) work on, and the access to it they share."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.constructs.functions import SecureFunction
from infra.constructs.storage import bucket_name
from infra.policy.spec import BucketRole
from infra.settings import StageSettings

REGISTRY_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Scan",
]


@dataclass(frozen=True)
class ModelResources:
    model_bucket: str  # its fixed name (infra.constructs.storage.bucket_name), in the consuming stack
    registry: dynamodb.ITable  # runs, models and the deployment lock
    ledger: dynamodb.ITable
    signing_key: kms.IKey  # the model signing key, pinned by ARN

    @classmethod
    def of(
        cls,
        scope: Construct,
        *,
        settings: StageSettings,
        registry: dynamodb.ITable,
        ledger: dynamodb.ITable,
        signing_key: kms.IKey,
    ) -> ModelResources:
        return cls(
            model_bucket=bucket_name(scope, settings, BucketRole.MODEL),
            registry=registry,
            ledger=ledger,
            signing_key=signing_key,
        )

    def allow_registry(self, fn: SecureFunction) -> None:
        fn.allow(REGISTRY_ACTIONS, [self.registry.table_arn])

    def allow_objects(self, fn: SecureFunction, actions: list[str], prefixes: list[str], why: str) -> None:
        """Actions on the model bucket's objects under each prefix (`<prefix>/*`); `why` completes "The <function>
        function ..." in the acknowledgement of each wildcard."""
        reason = f"The {fn.node.id.lower()} function {why}; keys are content-addressed or per model."
        fn.allow_objects(actions, BucketRole.MODEL, {f"/{prefix}/*": reason for prefix in prefixes})

    def allow_verification(self, fn: SecureFunction, why: str) -> None:
        """What verifying a model takes: the signing key's public key, the artifact and its signature."""
        fn.allow(["kms:GetPublicKey"], [self.signing_key.key_arn])
        self.allow_objects(fn, ["s3:GetObject", "s3:GetObjectVersion"], ["models", "signatures"], why)
