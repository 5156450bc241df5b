"""The composition root: each function's domain objects, wired once per execution environment from its frozen
settings (mlvault.config) and the files bundled with its code (the trust anchors: whom the model functions trust,
mlvault.trust.anchors; the serving document: where each model is served, its alarms and lock,
mlvault.trust.serving_map). The only place boto3 clients are made for the library; handlers call one builder and
one method."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3

from mlvault.config import (
    IngestSettings,
    PipelineSettings,
    ReconcileSettings,
    RevokeSettings,
    RollbackSettings,
    RolloutSettings,
    TriggerSettings,
    bundled,
)
from mlvault.ledger import Ledger
from mlvault.trust.anchors import TrustAnchors, load_anchors
from mlvault.trust.serving_map import ServingMap, load_serving
from mlvault.wiring import Bundle

if TYPE_CHECKING:  # each builder imports its own domain: a function loads only what it runs (lean cold starts)
    from mlvault.ingest.reconcile import Reconciler
    from mlvault.ingest.review import Reviewer
    from mlvault.ingest.verify import Destinations, Verifier
    from mlvault.rollback.responder import Rollback
    from mlvault.rollback.revocation import Revocation
    from mlvault.rollout.canary import Rollout
    from mlvault.training.pipeline import Pipeline


# --- ingest ----------------------------------------------------------------------------------------------


@cache
def ingest_settings() -> IngestSettings:
    return IngestSettings.from_env()


def destinations(s: IngestSettings) -> Destinations:
    from mlvault.ingest.verify import Destinations

    return Destinations(
        ingest_bucket=s.ingest_bucket,
        lake_bucket=s.lake_bucket,
        quarantine_bucket=s.quarantine_bucket,
        max_upload_bytes=s.max_upload_bytes,
        alert_topic_arn=s.alert_topic_arn,
    )


@cache
def default_verifier() -> Verifier:
    from mlvault.contracts.gate import ContentGate  # pyarrow, in the functions that verify only
    from mlvault.ingest.verify import Verifier
    from mlvault.trust.producers import load_registry

    s = ingest_settings()
    ledger = Ledger(boto3.client("dynamodb"), s.ledger_table)
    return Verifier(
        s3=boto3.client("s3"),
        kms=boto3.client("kms"),
        events=boto3.client("events"),
        sns=boto3.client("sns"),
        ledger=ledger,
        registry=load_registry(bundled(s.trust_file)),
        destinations=destinations(s),
        gate=ContentGate(bundled(s.contracts_dir), ledger),
    )


@cache
def default_reviewer() -> Reviewer:
    from mlvault.ingest.review import Reviewer

    s = ingest_settings()
    return Reviewer(
        s3=boto3.client("s3"),
        events=boto3.client("events"),
        sns=boto3.client("sns"),
        ledger=Ledger(boto3.client("dynamodb"), s.ledger_table),
        destinations=destinations(s),
    )


@cache
def default_reconciler() -> Reconciler:
    from mlvault.ingest.reconcile import Reconciler

    s = ingest_settings()
    return Reconciler(
        s3=boto3.client("s3"),
        sqs=boto3.client("sqs"),
        cloudwatch=boto3.client("cloudwatch"),
        ledger=Ledger(boto3.client("dynamodb"), s.ledger_table),
        verifier=default_verifier(),
        settings=s,
        reconcile=ReconcileSettings.from_env(),
    )


# --- models ----------------------------------------------------------------------------------------------


def anchors(stage: str) -> TrustAnchors:
    """The trust anchors bundled with this function's code (TrustAnchorError when missing, malformed or of another
    stage: fail closed)."""
    return load_anchors(bundled(Bundle.ANCHORS), stage=stage)


def serving(stage: str) -> ServingMap:
    """Where each model is served, bundled with this function's code (TrustAnchorError, SERVING_*, when missing,
    malformed or of another stage: fail closed). Read once per execution environment, by the cached builders."""
    return load_serving(bundled(Bundle.SERVING), stage=stage)


def _pipeline(*, signing: bool) -> Pipeline:
    from mlvault.training.pipeline import Pipeline, PipelineConfig
    from mlvault.training.specs import load_specs

    s = PipelineSettings.from_env()
    # The stage's models with their gates, from the signed bundle only (TrustAnchorError, MODELS_MISSING, without
    # it: fail closed, before any client is made); never the environment.
    models = load_specs(bundled(Bundle.MODELS))
    config = PipelineConfig(
        model_bucket=s.model_bucket,
        ledger_table=s.ledger_table,
        registry_table=s.registry_table,
        contracts_dir=bundled(s.contracts_dir),
        models=models,
        signing_key=anchors(s.stage).model_signing_key if signing else None,
        stage=s.stage,
        alert_topic_arn=s.alert_topic_arn,
    )
    kms = boto3.client("kms", region_name=config.signing_key.region) if config.signing_key else boto3.client("kms")
    return Pipeline(
        s3=boto3.client("s3"),
        dynamodb=boto3.client("dynamodb"),
        kms=kms,
        config=config,
        events=boto3.client("events"),
        sns=boto3.client("sns"),
    )


@cache
def default_pipeline() -> Pipeline:
    """The pipeline function's steps (train | prepare, collect, evaluate, register, the end of a failed run): no
    signing key."""
    return _pipeline(signing=False)


@cache
def default_sign_step() -> Pipeline:
    """The sign function's step: signs with the bundled model-signing key only."""
    return _pipeline(signing=True)


@cache
def default_rollout() -> Rollout:
    from mlvault.rollout.canary import Rollout, RolloutConfig, canary_from_json

    s = RolloutSettings.from_env()
    trusted = anchors(s.stage)
    config = RolloutConfig(
        serving=serving(s.stage),
        signing_key=trusted.model_signing_key,
        canary=canary_from_json(s.canary_json),
        registry_table=s.registry_table,
        stage=s.stage,
        alert_topic_arn=s.alert_topic_arn,
    )
    return Rollout(
        s3=boto3.client("s3"),
        kms=boto3.client("kms", region_name=trusted.model_signing_key.region),
        lambda_client=boto3.client("lambda"),
        cloudwatch=boto3.client("cloudwatch"),
        dynamodb=boto3.client("dynamodb"),
        config=config,
        stepfunctions=boto3.client("stepfunctions"),
        events=boto3.client("events"),
        sns=boto3.client("sns"),
    )


def _rollback(
    *,
    stage: str,
    registry_table: str,
    alert_topic_arn: str,
    cooldown_seconds: int,
    with_alarms: bool,
) -> Rollback:
    from mlvault.rollback.responder import Rollback, RollbackConfig

    trusted = anchors(stage)
    config = RollbackConfig(
        serving=serving(stage),
        signing_key=trusted.model_signing_key,
        registry_table=registry_table,
        alert_topic_arn=alert_topic_arn,
        cooldown_seconds=cooldown_seconds,
        stage=stage,
    )
    return Rollback(
        s3=boto3.client("s3"),
        kms=boto3.client("kms", region_name=trusted.model_signing_key.region),
        lambda_client=boto3.client("lambda"),
        events=boto3.client("events"),
        sns=boto3.client("sns"),
        dynamodb=boto3.client("dynamodb"),
        config=config,
        cloudwatch=boto3.client("cloudwatch") if with_alarms else None,
    )


@cache
def default_rollback() -> Rollback:
    """The rollback function: each model's own alarms, judged by CloudWatch, roll that model back."""
    s = RollbackSettings.from_env()
    return _rollback(
        stage=s.stage,
        registry_table=s.registry_table,
        alert_topic_arn=s.alert_topic_arn,
        cooldown_seconds=s.cooldown_seconds,
        with_alarms=True,
    )


@cache
def default_revocation() -> Revocation:
    """The revoke function: a key's revocation and its blast radius (rolls back only the models whose live model it
    revoked, each on its own function). The keys it may revoke are the bundled trust registry's (TrustAnchorError,
    PRODUCERS_MISSING or PRODUCERS_MALFORMED, without a sound one: fail closed, before any client is made); never a
    file the environment names."""
    from mlvault.rollback.revocation import Revocation
    from mlvault.trust.producers import load_bundled_registry

    producers = load_bundled_registry(bundled(Bundle.TRUST_FILE))
    s = RevokeSettings.from_env()
    rollback = _rollback(
        stage=s.stage,
        registry_table=s.registry_table,
        alert_topic_arn=s.alert_topic_arn,
        cooldown_seconds=0,
        with_alarms=False,
    )
    return Revocation(rollback=rollback, ledger=Ledger(boto3.client("dynamodb"), s.ledger_table), producers=producers)


@cache
def trigger_settings() -> TriggerSettings:
    return TriggerSettings.from_env()
