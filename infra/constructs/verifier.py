"""The verify function: fed by the ingest event queue, it judges each upload (signature, digest, data contract,
poisoning screen) and copies it into the lake, the quarantine or the held area."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from infra.constructs.concern import Concern
from infra.constructs.functions import (
    ONE_VCPU_MB,
    FunctionPlatform,
    SecureFunction,
    contract_files,
    spool_storage_mib,
)
from infra.constructs.ingest_resources import IngestResources
from infra.policy.spec import INGEST_PRODUCER_PREFIX, BucketRole
from infra.settings import ROOT
from mlvault.trust.producers import ProducerRegistry
from mlvault.wiring import Bundle

BATCH_SIZE = 10
# Read an upload and tag it with its verdict (every version and the current one).
UPLOAD_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"]
UPLOADS = f"/{INGEST_PRODUCER_PREFIX}*"


def policy_files(trust_file: Path) -> dict[str, Path]:
    """The verifier's policy files, bundled with its code: the stage's trust registry and every data contract (with
    pinned baselines), all reviewed in the repo and validated at synth."""
    return {Bundle.TRUST_FILE: trust_file, **contract_files()}


def verifying_function(
    scope: Construct,
    construct_id: str,
    *,
    platform: FunctionPlatform,
    ingest: IngestResources,
    name: str,
    description: str,
    environment: dict[str, str] | None = None,
) -> SecureFunction:
    """A function that runs the verifier (the verify function, and the reconciler that re-drives it). Its data
    contracts read CSV, JSON Lines and Parquet with pyarrow: one full vCPU, and /tmp for an upload of the stage's
    largest size (Parquet is spooled to a file)."""
    settings = platform.settings
    return SecureFunction(
        scope,
        construct_id,
        platform=platform,
        name=name,
        description=description,
        environment={**ingest.environment, **(environment or {})},
        timeout=Duration.minutes(5),
        extra_files=policy_files(ROOT / settings.trust_file),
        with_arrow=True,
        memory_size=ONE_VCPU_MB,
        ephemeral_storage_mib=spool_storage_mib(settings.max_upload_bytes),
    )


class Verifier(Concern):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: FunctionPlatform,
        ingest: IngestResources,
        registry: ProducerRegistry,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = fn = verifying_function(
            self,
            "Verify",
            platform=platform,
            ingest=ingest,
            name="verify",
            description="Verifies each upload (signature, digest, data contract, poisoning screen): lake, "
            "quarantine or held",
        )
        fn.function.add_event_source(
            sources.SqsEventSource(
                ingest.queue,
                batch_size=BATCH_SIZE,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
            )
        )
        fn.allow_objects(
            UPLOAD_ACTIONS,
            BucketRole.INGEST,
            {
                UPLOADS: "The verifier reads and tags any upload under the producer prefixes; keys are not known "
                "in advance."
            },
        )
        fn.allow_objects(
            ["s3:GetObject", "s3:PutObject"],
            BucketRole.LAKE,
            {
                "/datasets/*": "Accepted files land under content-addressed keys "
                "(datasets/<dataset>/<producer>/sha256=...)."
            },
        )
        fn.allow_objects(
            ["s3:PutObject", "s3:PutObjectTagging"],
            BucketRole.QUARANTINE,
            {
                "/rejected/*": "Rejected uploads are copied under rejected/<ingest key>/<version>; keys are not known "
                "in advance.",
                "/held/*": "Held uploads (poisoning screen) are copied under held/<ingest key>/<version> until "
                "reviewed.",
            },
        )
        ingest.allow_verdicts(fn)
        kms_keys = sorted(
            {k.kms_key_arn for p in registry.producers.values() for k in p.keys.values() if k.kms_key_arn}
        )
        if kms_keys:  # producers who sign with KMS keys: verified by KMS
            fn.allow(["kms:GetPublicKey", "kms:Verify"], kms_keys)
