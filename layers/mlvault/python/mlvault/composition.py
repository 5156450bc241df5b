"""The composition root: each function's domain objects, wired once per execution environment from its frozen
settings (mlvault.config) and the files bundled with its code. The only place boto3 clients are made for the
library; handlers call one builder and one method."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

import boto3

from mlvault.config import (
    IngestSettings,
    PipelineSettings,
    ReconcileSettings,
    RollbackSettings,
    RolloutSettings,
    TriggerSettings,
    bundled,
)
from mlvault.ledger import Ledger

if TYPE_CHECKING:  # each builder imports its own domain: a function loads only what it runs (lean cold starts)
    from mlvault.ingest.reconcile import Reconciler
    from mlvault.ingest.review import Reviewer
    from mlvault.ingest.verify import Destinations, Verifier
    from mlvault.rollback.responder import Rollback
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


@cache
def default_pipeline() -> Pipeline:
    from mlvault.training.gates import Gates
    from mlvault.training.params import TrainingParams
    from mlvault.training.pipeline import Pipeline, PipelineConfig

    s = PipelineSettings.from_env()
    config = PipelineConfig(
        model_bucket=s.model_bucket,
        ledger_table=s.ledger_table,
        registry_table=s.registry_table,
        contracts_dir=bundled(s.contracts_dir),
        signing_key_arn=s.signing_key_arn,
        gates=Gates.from_config(json.loads(s.gates_json)),
        params=TrainingParams(**json.loads(s.training_json)),
    )
    return Pipeline(s3=boto3.client("s3"), dynamodb=boto3.client("dynamodb"), kms=boto3.client("kms"), config=config)


@cache
def default_rollout() -> Rollout:
    from mlvault.rollout.canary import Rollout, RolloutConfig, canary_from_json

    s = RolloutSettings.from_env()
    config = RolloutConfig(
        function_name=s.serve_function,
        alias=s.serve_alias,
        signing_key_arn=s.signing_key_arn,
        canary=canary_from_json(s.canary_json),
        alarms=tuple(a for a in s.alarms.split(",") if a),
        registry_table=s.registry_table,
    )
    return Rollout(
        s3=boto3.client("s3"),
        kms=boto3.client("kms"),
        lambda_client=boto3.client("lambda"),
        cloudwatch=boto3.client("cloudwatch"),
        dynamodb=boto3.client("dynamodb"),
        config=config,
        stepfunctions=boto3.client("stepfunctions"),
    )


@cache
def default_rollback() -> Rollback:
    from mlvault.rollback.responder import Rollback, RollbackConfig

    s = RollbackSettings.from_env()
    config = RollbackConfig(
        function_name=s.serve_function,
        alias=s.serve_alias,
        signing_key_arn=s.signing_key_arn,
        registry_table=s.registry_table,
        ledger_table=s.ledger_table,
        alert_topic_arn=s.alert_topic_arn,
        cooldown_seconds=s.cooldown_seconds,
    )
    return Rollback(
        s3=boto3.client("s3"),
        kms=boto3.client("kms"),
        lambda_client=boto3.client("lambda"),
        events=boto3.client("events"),
        sns=boto3.client("sns"),
        dynamodb=boto3.client("dynamodb"),
        config=config,
    )


@cache
def trigger_settings() -> TriggerSettings:
    return TriggerSettings.from_env()
